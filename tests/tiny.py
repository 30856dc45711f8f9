"""Tiny models and data shared by the unit tests: a few steps of them run in milliseconds."""
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
