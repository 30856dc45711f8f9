"""Shared fixtures. ``smoke_run`` executes notebooks 01-02 once per test session (smoke profile,
synthetic data) so the later notebooks' tests can continue that run in the same folder."""
import pytest
import torch

torch.set_num_threads(2)


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
