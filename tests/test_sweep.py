"""The recipe sweep and the airbench peer in smoke size (CPU, synthetic data)."""
import json
import pickle
import subprocess
import sys
import time

import pytest
import torch

from labutils.artifacts import REPO_ROOT
from labutils.data import load_cifar10
from test_bench_train import _bench


sweep = _bench("sweep")
peer = _bench("airbench_peer")
# vit_scratch overrides that pass check() and fail at the first step (timm: "Input height (32) doesn't
# match model (64)"); if a rule comes to refuse them, any other such value will do.
BROKEN = {"model": {"img_size": 64}}


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
    bad = tmp_path / "bad.json"  # values no rule refuses, that fail in training, in the child
    bad.write_text(json.dumps([{"name": "fine", "train": {}}, {"name": "broken", **BROKEN}]))
    result = sweep.main(["--model", "vit_scratch", "--smoke", "--out", str(tmp_path / "out"), "--device", "cpu",
                         "--candidates", str(bad), "--jobs", "2"])
    fine, broken = result["rows"]
    assert fine["status"] == "done" and broken["status"] == "failed" and "Input height" in broken["note"]
    # The child exits non-zero on its failed row (exit_status): its own row is still the one read back.
    child = json.loads(next((tmp_path / "out" / "jobs" / "vit_scratch").glob("02_*/sweep_vit_scratch.json")).read_text())
    assert broken == child["rows"][0] and broken["note"].startswith("AssertionError: ")
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


def test_a_budget_must_be_a_number_of_seconds_and_inf_means_no_limit(tmp_path, capsys):
    """-1 skipped every candidate with rc 0, nan too and then crashed; inf trained and then could not
    write its JSON (an infinity), leaving the markdown table alone."""
    for budget in ("-1", "nan"):
        with pytest.raises(SystemExit):
            sweep.main(["--model", "resnet20", "--smoke", "--out", str(tmp_path / budget), "--budget-s", budget])
        assert "--budget-s takes 0 or more seconds" in capsys.readouterr().err
        assert not list((tmp_path / budget).glob("sweep_*"))
    result = sweep.main(["--model", "resnet20", "--smoke", "--out", str(tmp_path / "inf"), "--budget-s", "inf",
                         "--only", "today"])
    assert [r["status"] for r in result["rows"]] == ["done"]
    assert json.loads((tmp_path / "inf" / "sweep_resnet20.json").read_text())["budget_seconds"] is None
    assert "no time budget" in (tmp_path / "inf" / "sweep_resnet20.md").read_text()


def test_tables_write_the_json_first_so_no_markdown_stands_without_it(tmp_path):
    result = {"model": "cnn", "profile": "full", "smoke": False, "device": "cpu", "data": "CIFAR-10",
              "git_commit": "abc", "date": "2026-12-06", "torch": "2", "budget_seconds": 60.0, "jobs": 1,
              "training_images": 10, "scored_on": "x", "rows": [{"name": "diverged", "status": "done",
              "accuracy": float("nan"), "interval": [0.0, 1.0], "epochs": 1, "seconds": 1.0, "images_per_second": 1.0}]}
    with pytest.raises(ValueError, match="NaN or an infinity"):
        sweep.write_tables(result, tmp_path)
    assert not (tmp_path / "sweep_cnn.md").exists()


def test_a_rerun_into_the_same_folder_refuses_the_table_there_unless_forced(tmp_path, capsys):
    """The first row of a rerun (--only today) replaced a whole table without a word."""
    out = tmp_path / "out"
    sweep.main(["--model", "resnet20", "--smoke", "--out", str(out), "--device", "cpu", "--jobs", "2",
                "--only", "today", "--only", "weight decay 1e-4"])
    before = (out / "sweep_resnet20.json").read_text()
    with pytest.raises(SystemExit):
        sweep.main(["--model", "resnet20", "--smoke", "--out", str(out), "--only", "today"])
    err = capsys.readouterr().err
    assert f"{out / 'sweep_resnet20.json'} already holds a resnet20 sweep" in err
    assert "--force to replace it, or another --out" in err
    assert (out / "sweep_resnet20.json").read_text() == before
    sweep.main(["--model", "cnn", "--smoke", "--out", str(out), "--budget-s", "0"])  # another model's table: its own
    # --force replaces it; the children (--jobs) replace their own tables of the earlier run too.
    result = sweep.main(["--model", "resnet20", "--smoke", "--out", str(out), "--device", "cpu", "--jobs", "2",
                         "--only", "today", "--force"])
    assert [r["status"] for r in result["rows"]] == ["done"], result["rows"]
    assert len(json.loads((out / "sweep_resnet20.json").read_text())["rows"]) == 1


def test_an_out_that_is_a_file_is_refused_before_any_training(tmp_path, synthetic_root, monkeypatch, capsys):
    """--out naming a file: the first candidate trained, then a WriteFailed traceback (with --smoke
    and no --data-root, a NotADirectoryError writing the synthetic data)."""
    monkeypatch.setattr(sweep, "train_candidate", lambda *a, **k: pytest.fail("trained before refusing --out"))
    blocker = tmp_path / "file"
    blocker.write_text("kept")
    for out, said in ((blocker, f"--out {blocker} is a file: give a folder"),
                      (blocker / "sub", f"cannot make the folder --out {blocker / 'sub'} (Not a directory)")):
        for data in ([], ["--data-root", str(synthetic_root)]):
            with pytest.raises(SystemExit) as exit_:
                sweep.main(["--model", "resnet20", "--smoke", "--out", str(out), "--only", "today", *data])
            assert exit_.value.code == 1 and said in capsys.readouterr().err, (out, data)
    assert blocker.read_text() == "kept"


def test_model_keys_are_checked_before_any_candidate_runs(tmp_path, capsys):
    """A misspelt drop_path_rate became a failed row after the candidates before it had trained."""
    bad = tmp_path / "bad.json"
    for model, arch, said in (
            ("vit_scratch", {"drop_pth_rate": 0.2}, "unknown model key(s) ['drop_pth_rate'] for vit_scratch"),
            ("resnet20", {"width": 0}, "width=0 must be a whole number >= 1")):
        bad.write_text(json.dumps([{"name": "fine", "train": {}}, {"name": "sd", "model": arch}]))
        with pytest.raises(SystemExit):
            sweep.main(["--model", model, "--smoke", "--out", str(tmp_path / model), "--candidates", str(bad)])
        assert f"candidate 'sd': {said}" in capsys.readouterr().err
        assert not list((tmp_path / model).glob("sweep_*"))


def test_a_candidates_file_is_a_list_or_a_dict_of_lists_by_model(tmp_path, capsys):
    def refused(path, said):
        with pytest.raises(SystemExit):
            sweep.main(["--model", "cnn", "--smoke", "--out", str(tmp_path / "out"), "--candidates", str(path),
                        "--budget-s", "0"])
        assert said in capsys.readouterr().err

    empty = tmp_path / "empty.py"
    empty.write_text("OTHER = []\n")
    refused(empty, f"{empty} must define CANDIDATES as a list of dicts")
    broken = tmp_path / "broken.json"
    broken.write_text('[{"name": "a",}]')
    refused(broken, f"{broken} is not valid JSON")
    single = tmp_path / "single.json"  # one candidate without its list
    single.write_text('{"name": "cutout", "train": {"cutout": 16}}')
    refused(single, f"{single} holds a single candidate: put it in a list")
    refused(tmp_path, f"cannot read {tmp_path} (IsADirectoryError")
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00[")
    refused(binary, f"cannot read {binary} (UnicodeDecodeError")
    by_model = tmp_path / "by_model.py"  # the layout of sweep.py's own CANDIDATES
    by_model.write_text('CANDIDATES = {"resnet20": [{"name": "short", "train": {"epochs": 2}}]}\n')
    refused(by_model, f"{by_model} lists candidates for ['resnet20'], not cnn")
    result = sweep.main(["--model", "resnet20", "--smoke", "--out", str(tmp_path / "out"), "--candidates",
                         str(by_model), "--budget-s", "0"])
    assert [r["name"] for r in result["rows"]] == ["short"]


def test_every_row_carries_the_same_keys(tmp_path):
    """Airbench and skipped rows had no wall_seconds, skipped ones no overrides."""
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps([{"name": "fine", "train": {}}, {"name": "broken", **BROKEN}]))
    ran = sweep.main(["--model", "vit_scratch", "--smoke", "--out", str(tmp_path / "ran"), "--candidates", str(mine),
                      "--airbench", "--only", "airbench94", "--only", "fine", "--only", "broken"])["rows"]
    skipped = sweep.main(["--model", "vit_scratch", "--smoke", "--out", str(tmp_path / "skipped"), "--candidates",
                          str(mine), "--budget-s", "0"])["rows"]
    assert [r["status"] for r in ran + skipped] == ["not run", "done", "failed", "skipped", "skipped"]
    for row in ran + skipped:
        assert {"name", "overrides", "status", "wall_seconds"} <= set(row), row
    assert skipped[1]["overrides"] == BROKEN


def test_a_smoke_table_names_the_data_it_ran_on(tmp_path, synthetic_root, monkeypatch):
    """--smoke on a --data-root said "on synthetic data" whatever the data."""
    monkeypatch.setattr(sweep, "describe_data", lambda root: "CIFAR-10")
    sweep.main(["--model", "resnet20", "--smoke", "--data-root", str(synthetic_root), "--out", str(tmp_path / "o"),
                "--budget-s", "0"])
    table = (tmp_path / "o" / "sweep_resnet20.md").read_text()
    assert "CIFAR-10" in table and "synthetic" not in table and "(smoke: " in table


def test_airbench_peer_refuses_an_unknown_variant_before_anything_runs(synthetic_root, tmp_path, capsys):
    """--run airbench94,airbench95 wrote the data and ran airbench94 before refusing airbench95."""
    with pytest.raises(SystemExit):
        peer.main(["--data-root", str(synthetic_root), "--out", str(tmp_path / "ab"), "--run", "airbench94,airbench95"])
    captured = capsys.readouterr()
    assert "unknown variant(s) airbench95; choose from airbench94, airbench96" in captured.err
    assert captured.out == "" and not (tmp_path / "ab").exists()


def test_airbench_peer_says_missing_data_or_an_unwritable_out_without_a_traceback(synthetic_root, tmp_path, capsys):
    """Run on its own, a missing dataset (DataNotFoundError) and --out naming a file (WriteFailed) were tracebacks."""
    empty = tmp_path / "empty"
    empty.mkdir()
    assert peer.main(["--data-root", str(empty), "--out", str(tmp_path / "ab")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: CIFAR-10 is not in {empty}") and "Traceback" not in err
    blocker = tmp_path / "file"
    blocker.write_text("kept")
    assert peer.main(["--data-root", str(synthetic_root), "--out", str(blocker)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write {blocker / 'cifar10' / 'train.pt'}: ")
    assert err.rstrip().endswith("give --out a folder you can write to") and blocker.read_text() == "kept"


def _done_in(seconds):
    """train_candidate's stand-in: a done row after ``seconds`` (the budget's tests need time, not training)."""
    def train(model_name, candidate, data, device, smoke, profile="full"):
        time.sleep(seconds)
        return {"accuracy": 0.5, "interval": [0.4, 0.6], "scored_images": 100, "epochs": 1, "seconds": seconds,
                "images_per_second": 1.0, "first_epoch_seconds": seconds, "later_epochs_seconds": 0.0}
    return train


def _listed(tmp_path, *candidates):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(list(candidates)))
    return str(path)


def test_a_row_that_ended_after_the_budget_says_so_and_the_table_gives_the_sweeps_wall_time(tmp_path, monkeypatch):
    """The budget cuts no candidate: one ran 23 s past a 1 s budget, and neither table nor JSON said so."""
    monkeypatch.setattr(sweep, "train_candidate", _done_in(1.6))
    mine = _listed(tmp_path, {"name": "long", "train": {}}, {"name": "short", "train": {}})
    long, short = sweep.main(["--model", "resnet20", "--smoke", "--out", str(tmp_path / "one"), "--candidates", mine,
                              "--budget-s", "1"])["rows"]
    assert long["status"] == "done" and long["note"].startswith("ended ") and long["note"].endswith(" s after the budget")
    assert short["status"] == "skipped"
    saved = json.loads((tmp_path / "one" / "sweep_resnet20.json").read_text())
    assert saved["rows"][0]["note"] == long["note"] and saved["wall_seconds"] >= 1.6
    table = (tmp_path / "one" / "sweep_resnet20.md").read_text()
    assert f"{saved['wall_seconds']:.0f} s in all" in table and "no candidate is cut" in table
    assert f"| {long['note']} |" in table
    # --jobs: the parent's clock, not the child's (which has no budget of its own), dates the row's end.
    monkeypatch.undo()
    row, = sweep.main(["--model", "resnet20", "--smoke", "--out", str(tmp_path / "jobs"), "--device", "cpu",
                       "--jobs", "2", "--only", "today", "--budget-s", "0.2"])["rows"]
    assert row["status"] == "done" and row["note"].startswith("ended ") and row["note"].count("after the budget") == 1


def test_the_budget_clock_starts_after_the_airbench_rows(tmp_path, monkeypatch):
    """Two 1.2 s airbench rows spent a 1 s budget: every candidate was skipped."""
    def airbench(variant, folder):
        time.sleep(1.2)
        return {"name": variant, "status": "done", "accuracy": 0.9, "interval": [0.8, 0.95], "scored_images": 100,
                "epochs": 1, "seconds": 1.2, "images_per_second": 1.0}

    monkeypatch.setattr(sweep.airbench_peer, "not_run_reason", lambda: None)
    monkeypatch.setattr(sweep.airbench_peer, "run_airbench", airbench)
    monkeypatch.setattr(sweep, "train_candidate", _done_in(0.0))
    result = sweep.main(["--model", "resnet20", "--smoke", "--out", str(tmp_path), "--airbench",
                         "--only", "airbench94", "--only", "airbench96", "--only", "today", "--budget-s", "1"])
    assert [r["status"] for r in result["rows"]] == ["done", "done", "done"], result["rows"]
    assert result["wall_seconds"] >= 2.4 and "note" not in result["rows"][2]
    assert "budget 1 s, counted after the airbench rows" in (tmp_path / "sweep_resnet20.md").read_text()


def test_the_exit_status_says_whether_a_row_failed(tmp_path):
    """Every candidate failed, and the sweep exited 0."""
    rows = lambda *statuses: {"rows": [{"status": s} for s in statuses]}  # noqa: E731
    assert sweep.exit_status(rows("done", "not run", "skipped")) == 0 and sweep.exit_status(rows()) == 0
    assert sweep.exit_status(rows("done", "failed", "skipped")) == sweep.SOME_FAILED == 3
    assert sweep.exit_status(rows("not run", "failed", "skipped")) == sweep.NONE_DONE == 1
    mine = _listed(tmp_path, {"name": "fine", "train": {}}, {"name": "broken", **BROKEN})
    ran = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "sweep.py"), "--model", "vit_scratch", "--smoke",
                          "--out", str(tmp_path / "out"), "--device", "cpu", "--candidates", mine],
                         capture_output=True, text=True)
    assert ran.returncode == 3, ran.stderr[-2000:]
    assert "broken: failed (AssertionError" in ran.stdout
    assert "Exit status: 0 when no row failed" in sweep.__doc__


def test_the_docstring_gives_the_exit_status_of_each_refusal(tmp_path):
    """It said 1 "when the list or an option is refused", but argparse's refusals exit 2."""
    def status(*args):
        with pytest.raises(SystemExit) as exit_:
            sweep.main(["--smoke", "--out", str(tmp_path / "out"), *args])
        return exit_.value.code

    assert status("--model", "resnet99") == status("--model", "resnet20", "--jobs", "two") == 2  # argparse's
    assert status("--model", "resnet20", "--jobs", "0") == status("--model", "resnet20", "--only", "nope") == 1
    doc = " ".join(sweep.__doc__.split())
    assert "1 when some failed and none is done, or when sweep.py refuses the candidate list or a value" in doc
    assert "2 when argparse refuses the command line" in doc


def test_rows_split_the_first_epoch_from_the_steady_ones(tmp_path, monkeypatch):
    """torch.compile's first compile fell in whichever candidate compiled first (23 s, then 10 s, 10 s)."""
    real_fit = sweep.fit

    def two_epochs(model, *args, **kwargs):  # a smoke run trains one epoch: give it a warm-up and a steady one
        real_fit(model, *args, **kwargs)
        return [{"train_seconds": 3.0, "images": 60, "train_loss": 2.0},
                {"train_seconds": 1.0, "images": 60, "train_loss": 1.5}]

    monkeypatch.setattr(sweep, "fit", two_epochs)
    row, = sweep.main(["--model", "resnet20", "--smoke", "--out", str(tmp_path), "--only", "today"])["rows"]
    assert (row["seconds"], row["first_epoch_seconds"], row["later_epochs_seconds"]) == (4.0, 3.0, 1.0)
    table = (tmp_path / "sweep_resnet20.md").read_text()
    assert "torch.compile's first compile falls in the first compiling candidate" in table


def test_training_values_are_checked_before_any_candidate_runs(tmp_path, capsys):
    """A misspelt augment policy or a negative step size failed only at its turn, after the rows before it."""
    for name, train, said in (("typo", {"augment": "trivalaugment"}, "augment='trivalaugment' must be one of"),
                              ("negative lr", {"lr": -0.1}, "lr=-0.1 ")):
        mine = _listed(tmp_path, {"name": "fine", "train": {}}, {"name": name, "train": train})
        with pytest.raises(SystemExit):
            sweep.main(["--model", "vit_scratch", "--smoke", "--out", str(tmp_path / "out"), "--candidates", mine])
        assert f"candidate {name!r}: {said}" in capsys.readouterr().err
        assert not list((tmp_path / "out").glob("sweep_*"))
    with pytest.raises(sweep.SweepError, match="candidate 'big cutout': cutout=40 "):
        sweep.check([{"name": "big cutout", "train": {"cutout": 40}}], "resnet20", "cpu")


def test_the_cpu_sweep_write_up_says_its_gains_were_scored_on_the_split_that_chose_them():
    """Its tables were scored on the whole test split (no scored_on), and its before/after on the cpu
    run's 5,000 test images drawn from that split: the write-up compared them without a word."""
    folder = REPO_ROOT / "benchmarks" / "results" / "cpu-sweep-2026-12-06"
    assert all("scored_on" not in json.loads(p.read_text()) for p in folder.glob("sweep_*.json"))
    text = " ".join((folder / "README.md").read_text().split())
    assert "chosen on the test split" in text and "flatter" in text


def test_the_cpu_sweep_write_up_gives_the_commit_its_commands_ran_at():
    """Its "Commands, one per table" no longer made its tables at a later commit (another holdout
    default, the cpu profile's step sizes, CPU_CANDIDATES), and it did not say where they do."""
    folder = REPO_ROOT / "benchmarks" / "results" / "cpu-sweep-2026-12-06"
    tables = {p.stem: json.loads(p.read_text()) for p in folder.glob("sweep_*.json")}
    assert {t["git_commit"] for t in tables.values()} == {"ac707227fac1"}
    text = " ".join((folder / "README.md").read_text().split())
    assert "Commands, one per table, as run at commit `ac70722` (the tables' `git_commit`)" in text
    assert "git worktree add ../sweep-ac70722 ac70722" in text and "PYTHONPATH=$PWD" in text
    for model in (t["model"] for t in tables.values()):
        assert f"--model {model} --profile cpu" in text, model


def test_candidates_the_profile_check_would_refuse_are_refused_before_any_runs(tmp_path, capsys, monkeypatch):
    """A ViT width its heads do not split passed check() and ended the sweep with a bare
    AssertionError; a batch larger than the cpu profile's 10,000 images too; with --smoke, smoke's
    widths replaced the candidate's model keys, so it read as done."""
    too_big = "batch_size\"] = 20000 is more than the profile's 10,000 training images"
    for model, candidate, said in (
            ("vit_scratch", {"model": {"embed_dim": 100}}, "embed_dim 100 does not split into num_heads 3"),
            ("cnn", {"train": {"batch_size": 20000}}, too_big), ("resnet20", {"train": {"batch_size": 20000}}, too_big)):
        with pytest.raises(sweep.SweepError, match=f"candidate 'c' on the cpu profile: .*{said}"):
            sweep.check([{"name": "c", **candidate}], model, "cpu")
    monkeypatch.setattr(sweep, "train_candidate", lambda *a, **k: pytest.fail("trained before refusing"))
    for heads, widths in ((5, ""), (64, " with smoke's widths")):  # 192 splits into 64 heads, smoke's 48 does not
        mine = _listed(tmp_path, {"name": "fine", "train": {}}, {"name": "heads", "model": {"num_heads": heads}})
        with pytest.raises(SystemExit):
            sweep.main(["--model", "vit_scratch", "--smoke", "--out", str(tmp_path / "out"), "--candidates", mine])
        assert f"candidate 'heads' on the full profile{widths}: " in capsys.readouterr().err
    assert not list((tmp_path / "out").glob("sweep_*"))
    monkeypatch.undo()
    built = []
    monkeypatch.setattr(sweep, "build", lambda model, arch: built.append(arch) or sweep.course_model(model, **arch))
    mine = _listed(tmp_path, {"name": "width 96", "model": {"embed_dim": 96}})  # smoke's is 48
    row, = sweep.main(["--model", "vit_scratch", "--smoke", "--out", str(tmp_path / "ok"), "--candidates", mine])["rows"]
    assert row["status"] == "done" and built == [{"embed_dim": 96, "depth": 2}]


def test_train_keys_are_the_profiles_and_a_row_that_raises_anything_fails_alone(tmp_path, monkeypatch):
    """stop_if_diverged (and num_classes), which the profile check leaves to the caller, passed;
    the TrainingDiverged (a FloatingPointError) it raised was no caught error: a traceback, and
    the later candidates never ran."""
    for key, value in (("stop_if_diverged", True), ("num_classes", 2)):
        with pytest.raises(sweep.SweepError, match=f"candidate 'c': unknown train key\\(s\\) \\['{key}'\\]"):
            sweep.check([{"name": "c", "train": {"lr": 1e30, key: value}}], "cnn", "cpu")

    def train(model_name, candidate, data, device, smoke, profile="full"):
        if candidate["name"] == "raises":
            raise FloatingPointError("diverged")
        if candidate["name"] == "interrupted":
            raise KeyboardInterrupt
        return _done_in(0.0)(model_name, candidate, data, device, smoke, profile)

    monkeypatch.setattr(sweep, "train_candidate", train)
    mine = _listed(tmp_path, {"name": "raises", "train": {}}, {"name": "after", "train": {}},
                   {"name": "interrupted", "train": {}})
    args = ["--model", "resnet20", "--smoke", "--candidates", mine, "--only", "raises", "--only", "after"]
    rows = sweep.main([*args, "--out", str(tmp_path / "a")])["rows"]
    assert [(r["status"], r.get("note")) for r in rows] == [("failed", "FloatingPointError: diverged"), ("done", None)]
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C still stops the sweep
        sweep.main([*args, "--only", "interrupted", "--out", str(tmp_path / "b")])


def test_a_diverged_candidate_is_done_with_a_note_saying_so(tmp_path):
    """lr 1e30 (loss nan) read as a finished recipe at 10%: fit's warning went to stderr only."""
    mine = _listed(tmp_path, {"name": "huge lr", "train": {"lr": 1e30}})
    with pytest.warns(RuntimeWarning, match="training diverged"):  # fit's warning, on stderr only
        row, = sweep.main(["--model", "resnet20", "--smoke", "--out", str(tmp_path), "--candidates", mine])["rows"]
    assert row["status"] == "done" and row["note"] == "diverged (training loss nan): scores at chance"
    assert "| diverged (training loss nan): scores at chance |" in (tmp_path / "sweep_resnet20.md").read_text()


def test_tta_flip_and_names_are_checked_before_any_candidate_runs():
    """tta_flip "False" turned TTA on (bool("False")) and 0.5 passed; a name 5 passed and crashed
    job_folders (--jobs) with a TypeError."""
    for value in ("False", 0.5):
        with pytest.raises(sweep.SweepError, match=f"candidate 'c': tta_flip={value!r} must be True or False"):
            sweep.check([{"name": "c", "train": {"tta_flip": value}}], "cnn")
    for name in (5, "", None):
        with pytest.raises(sweep.SweepError, match="every candidate needs a name of its own, a non-empty string"):
            sweep.check([{"name": name, "train": {}}], "cnn")


@pytest.mark.parametrize("device, said", [("cuda", "no CUDA GPU is visible: use auto or cpu"),
                                          ("tpu", "unknown DEVICE (--device) 'tpu'")])
def test_a_device_the_machine_lacks_is_one_line_before_any_folder_is_made(tmp_path, monkeypatch, capsys, device, said):
    """--device cuda on a machine without a GPU was a traceback after the output folder was made (review rv129)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_:
        sweep.main(["--model", "resnet20", "--smoke", "--out", str(tmp_path / "out"), "--device", device])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and said in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
