"""Tiny models, data and git repositories shared by the unit tests: a few steps of them run in
milliseconds."""
import subprocess

import numpy as np
import torch
from torch import nn

from labutils.data import DeviceLoader


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 10))


def tiny_loaders(n=64, batch=16):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (n, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 10, n)
    return DeviceLoader(x, y, batch, True), DeviceLoader(x, y, 2 * batch, False)


def committed_repo(root, folders, name="f.txt") -> None:
    """A git repository in ``root`` with one committed file ``name`` in each of ``folders``."""
    def git(*args):
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)
    for folder in folders:
        (root / folder).mkdir()
        (root / folder / name).write_text("committed")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
