"""Shared fixtures. ``smoke_run`` executes notebooks 01-02 once per test session (smoke profile,
synthetic data) so the later notebooks' tests can continue that run in the same folder."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)
# The tests need no network: the pretrained ViT is looked for in an empty cache, and its hub is a
# local port that refuses at once (the smoke run dialled huggingface.co, and a machine with the
# weights cached would have fine-tuned a 224x224 ViT on its CPU). The kernels inherit this.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="labutils-tests-hf-")
os.environ["HF_ENDPOINT"] = "https://127.0.0.1:9"
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(autouse=True)
def _close_figures():
    """Figures a test drew and kept (to read their axes) are closed after it: they piled up past
    matplotlib's 20 and warned in a later test."""
    yield
    if (pyplot := sys.modules.get("matplotlib.pyplot")) is not None:
        pyplot.close("all")


@pytest.fixture(scope="session", autouse=True)
def _repository_outputs_untouched():
    """The suite writes its runs into temporary folders only: a test's Session without a folder left
    a cpu run in the repository's runs/cpu, and a student's next cpu run with another seed was refused."""
    root = Path(__file__).resolve().parents[1]

    def outputs():
        return {p for name in ("runs", "models_saved", "figures", "metrics") for p in (root / name).rglob("*")} | {
            p for p in (root / "report.json", root / "report_details.json") if p.exists()}

    before = outputs()
    yield
    assert not (added := sorted(str(p.relative_to(root)) for p in outputs() - before)), (
        f"the tests wrote into the repository: {added[:5]}")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    from labutils.cli import main

    out = tmp_path_factory.mktemp("smoke_run")
    assert main(["run", "--profile", "smoke", "--out", str(out), "--notebooks", "01,02"]) == 0
    return out


@pytest.fixture()
def synthetic_root(tmp_path):
    from labutils.data import write_synthetic_cifar10

    write_synthetic_cifar10(tmp_path, n_train=200, n_test=100, seed=0)
    return tmp_path


@pytest.fixture()
def read_only_dir(tmp_path):
    """A folder this process cannot write: a read-only tmpfs as root, else a chmod 555 folder."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                          capture_output=True).returncode != 0:
            pytest.skip("running as root and cannot mount a read-only tmpfs")
        yield folder
        subprocess.run(["umount", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
