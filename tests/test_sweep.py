"""The recipe sweep and the airbench peer in smoke size (CPU, synthetic data)."""
import importlib.util
import json
import pickle
import sys

import pytest
import torch

from labutils.artifacts import REPO_ROOT
from labutils.data import load_cifar10


def _module(name):
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sweep = _module("sweep")
peer = _module("airbench_peer")


@pytest.mark.parametrize("model", sweep.MODELS)
def test_smoke_sweep_scores_every_candidate_with_its_interval(model, tmp_path):
    result = sweep.main(["--model", model, "--smoke", "--out", str(tmp_path), "--airbench", "--device", "cpu"])
    names = [r["name"] for r in result["rows"]]
    assert names == ["airbench94", "airbench96"] + [c["name"] for c in sweep.CANDIDATES[model]]
    saved = json.loads((tmp_path / f"sweep_{model}.json").read_text())
    table = (tmp_path / f"sweep_{model}.md").read_text()
    assert saved["rows"] == result["rows"] and saved["base_recipe"]["train"]["epochs"] > 1
    for row in saved["rows"]:
        assert f"| {row['name']} |" in table
        if row["name"].startswith("airbench"):
            assert row["status"] == "not run" and row["note"] == "airbench needs a CUDA GPU: not run"
            continue
        assert row["status"] == "done", row
        lo, hi = row["interval"]
        assert 0 <= lo <= row["accuracy"] <= hi <= 1 and hi - lo > 0.05  # 100 test images: a wide interval
        assert row["scored_images"] == 100 and row["epochs"] == 1 and row["images_per_second"] > 0


def test_no_candidate_starts_once_the_budget_is_spent(tmp_path):
    result = sweep.main(["--model", "resnet20", "--smoke", "--out", str(tmp_path), "--budget-s", "0"])
    assert [r["status"] for r in result["rows"]] == ["skipped"] * len(sweep.CANDIDATES["resnet20"])
    assert "time budget spent" in (tmp_path / "sweep_resnet20.md").read_text()


def test_jobs_train_candidates_side_by_side_and_keep_their_order(tmp_path):
    """--jobs 2: each candidate in a child process of its own (its table under jobs/), the rows
    in the list's order in one table that says they shared the device; airbench rows run first,
    in this process."""
    names = [c["name"] for c in sweep.CANDIDATES["resnet20"]][:3]
    only = [arg for name in names for arg in ("--only", name)]
    result = sweep.main(["--model", "resnet20", "--smoke", "--out", str(tmp_path), "--device", "cpu",
                         "--airbench", "--jobs", "2", *only, "--only", "airbench94"])
    assert [r["name"] for r in result["rows"]] == ["airbench94"] + names
    assert [r["status"] for r in result["rows"]] == ["not run"] + ["done"] * 3
    assert result["jobs"] == 2 and "2 candidates at a time on the one device" in (tmp_path / "sweep_resnet20.md").read_text()
    folders = sweep.job_folders(sweep.CANDIDATES["resnet20"][:3], tmp_path, "resnet20")
    assert [f.name for f in folders.values()] == ["01_today", "02_weight_decay_1e-4", "03_classic_batch_128_lr_0.1_wd_1e-4"]
    # Under the model's name: the sweeps of cnn and resnet20 into one --out wrote into each other's folders.
    assert {f.parent for f in folders.values()} == {tmp_path / "jobs" / "resnet20"}
    for row in result["rows"][1:]:  # what each child measured and wrote is what the table holds
        child = json.loads((folders[row["name"]] / "sweep_resnet20.json").read_text())
        assert child["rows"] == [row] and child["jobs"] == 1 and row["scored_images"] == 100
        assert "epoch 1/1" in (folders[row["name"]] / "log.txt").read_text()


def test_a_job_that_fails_is_a_failed_row_saying_why(tmp_path):
    bad = tmp_path / "bad.json"  # a value fit refuses, in the child
    bad.write_text(json.dumps([{"name": "fine", "train": {}}, {"name": "broken", "train": {"optimizer": "lion"}}]))
    result = sweep.main(["--model", "resnet20", "--smoke", "--out", str(tmp_path / "out"), "--device", "cpu",
                         "--candidates", str(bad), "--jobs", "2"])
    fine, broken = result["rows"]
    assert fine["status"] == "done" and broken["status"] == "failed" and "lion" in broken["note"]
    # A child that dies (killed, out of memory) leaves no table: its row names the exit and the log's end.
    dead = tmp_path / "dead"
    dead.mkdir()
    (dead / "log.txt").write_text("epoch 1/30 ...\nKilled\n")
    row = sweep._child_row("broken", -9, dead, "resnet20")
    assert row["status"] == "failed" and row["note"].startswith("its process ended with exit status -9: Killed")
    assert row["note"].endswith("(log: jobs/resnet20/dead/log.txt)")


def test_only_refuses_a_name_not_in_the_list(tmp_path, capsys):
    with pytest.raises(SystemExit):
        sweep.main(["--model", "resnet20", "--smoke", "--out", str(tmp_path), "--only", "todya"])
    assert "--only todya: no such candidate; the list has ['today'" in capsys.readouterr().err


def test_candidates_from_a_file_and_unknown_keys_refused(tmp_path, capsys):
    good = tmp_path / "mine.json"
    good.write_text(json.dumps([{"name": "short", "train": {"epochs": 2, "cutout": 4, "tta_flip": True}}]))
    result = sweep.main(["--model", "resnet20", "--smoke", "--out", str(tmp_path), "--candidates", str(good)])
    assert [r["status"] for r in result["rows"]] == ["done"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"name": "typo", "train": {"epoch": 2}}]))
    with pytest.raises(SystemExit):
        sweep.main(["--model", "resnet20", "--smoke", "--out", str(tmp_path), "--candidates", str(bad)])
    assert "candidate 'typo': unknown train key(s) ['epoch']" in capsys.readouterr().err
    # A misspelt "train" trained the base recipe under the candidate's name, without a word.
    bad.write_text(json.dumps([{"name": "lr 0.4", "trian": {"lr": 0.4}}]))
    with pytest.raises(SystemExit):
        sweep.main(["--model", "resnet20", "--smoke", "--out", str(tmp_path), "--candidates", str(bad)])
    assert "candidate 'lr 0.4': unknown key(s) ['trian']" in capsys.readouterr().err


def test_candidates_are_scored_on_held_out_training_images_never_on_the_test_split(synthetic_root, tmp_path):
    """A recipe chosen on the test images would flatter itself when the run scores it on them: the
    sweep scores on class-balanced images held out of the training split, which no candidate (and
    no airbench row) trains on; --holdout 0 scores on the test split, and the table says so."""
    import numpy as np

    images, labels = load_cifar10(synthetic_root, True, download=False)
    data = sweep.sweep_data(synthetic_root, "full", 60)
    (train_x, train_y), (held_x, held_y) = data["train"], data["scored"]
    assert len(held_y) == 60 and len(train_y) == len(labels) - 60 and np.bincount(held_y).tolist() == [6] * 10
    as_rows = lambda x: {bytes(row) for row in x.reshape(len(x), -1)}  # noqa: E731 (the synthetic images are distinct)
    assert as_rows(train_x).isdisjoint(as_rows(held_x)) and as_rows(train_x) | as_rows(held_x) == as_rows(images)
    folder = peer.write_airbench_data(synthetic_root, tmp_path, {"train": data["train"], "test": data["scored"]})
    assert torch.equal(torch.load(folder / "test.pt", weights_only=True)["labels"], torch.from_numpy(held_y))
    assert len(torch.load(folder / "train.pt", weights_only=True)["labels"]) == len(train_y)

    result = sweep.main(["--model", "resnet20", "--smoke", "--out", str(tmp_path / "held"), "--only", "today"])
    assert result["rows"][0]["scored_images"] == sweep.SMOKE_HOLDOUT and result["training_images"] == 100
    assert "scored on 100 class-balanced images held out of the training split" in (tmp_path / "held" / "sweep_resnet20.md").read_text()
    result = sweep.main(["--model", "resnet20", "--smoke", "--out", str(tmp_path / "test"), "--only", "today",
                         "--holdout", "0"])
    assert result["rows"][0]["scored_images"] == 100 and result["training_images"] == 200
    assert "scored on the whole test split" in (tmp_path / "test" / "sweep_resnet20.md").read_text()
    with pytest.raises(sweep.SweepError, match="--holdout takes 0"):
        sweep.sweep_data(synthetic_root, "full", 150)


def test_airbench_files_are_what_airbench_reads(synthetic_root, tmp_path):
    """airbench 0.1.8's CifarLoader: torch.load(path)['images'|'labels'|'classes'], images uint8
    NHWC (torchvision CIFAR10.data), labels int64; the pixels are the data root's."""
    folder = peer.write_airbench_data(synthetic_root, tmp_path)
    assert folder == tmp_path / "cifar10"
    for split, train, n in (("train", True, 200), ("test", False, 100)):
        data = torch.load(folder / f"{split}.pt", weights_only=True)
        assert sorted(data) == sorted(peer.KEYS)
        images, labels = load_cifar10(synthetic_root, train, download=False)
        assert data["images"].dtype == torch.uint8 and data["images"].shape == (n, 32, 32, 3)
        assert data["labels"].dtype == torch.int64 and data["labels"].shape == (n,)
        assert torch.equal(data["images"].permute(0, 3, 1, 2), torch.from_numpy(images))
        assert torch.equal(data["labels"], torch.from_numpy(labels))
    with open(synthetic_root / "cifar-10-batches-py" / "batches.meta", "rb") as f:
        assert data["classes"] == pickle.load(f, encoding="latin1")["label_names"]


def test_airbench_loader_reads_the_files_where_installed(synthetic_root, tmp_path):
    airbench = pytest.importorskip("airbench", reason="airbench is not installed: pip install -e '.[test]'")
    peer.write_airbench_data(synthetic_root, tmp_path)
    with peer.working_folder(tmp_path):
        loader = airbench.CifarLoader("cifar10", train=False, batch_size=50, gpu="cpu")
    assert loader.images.shape == (100, 3, 32, 32) and len(loader.classes) == 10


def test_a_cpu_profile_sweep_trains_its_recipe_on_its_images_in_every_process(tmp_path):
    """--profile cpu: the cpu recipe and models, on the profile's 10,000 class-balanced training
    images (drawn from those not held out); a child process (--jobs) sweeps the same profile."""
    from labutils.data import write_synthetic_cifar10
    from labutils.profiles import get_profile

    data = tmp_path / "data"
    write_synthetic_cifar10(data, n_train=10_200, n_test=100, seed=0)
    names = [c["name"] for c in sweep.CPU_CANDIDATES["cnn"]][:2]
    only = [arg for name in names for arg in ("--only", name)]
    result = sweep.main(["--model", "cnn", "--profile", "cpu", "--smoke", "--data-root", str(data),
                         "--out", str(tmp_path / "out"), "--device", "cpu", "--jobs", "2", *only])
    assert result["profile"] == "cpu" and result["training_images"] == 10_000
    assert result["base_recipe"]["train"] == get_profile("cpu")["train"]["cnn"]
    assert [r["status"] for r in result["rows"]] == ["done", "done"]
    child = json.loads(next((tmp_path / "out" / "jobs" / "cnn").glob("02_*/sweep_cnn.json")).read_text())
    assert child["profile"] == "cpu" and child["training_images"] == 10_000
    assert "the cpu profile's recipe on 10,000 training images" in (tmp_path / "out" / "sweep_cnn.md").read_text()
    with pytest.raises(SystemExit):  # the smoke profile has no recipe worth sweeping
        sweep.main(["--model", "cnn", "--profile", "smoke", "--smoke", "--out", str(tmp_path / "x")])
