"""What the benchmark scripts record beside their numbers: the code that made them (an edited
script is not the commit), noisy timings marked, and bench_masks' arguments and partial results."""
import json
import sys

import pytest

from labutils.artifacts import REPO_ROOT, UNCOMMITTED, git_commit
from test_bench_train import _bench
from tiny import committed_repo


def _named_paths(root=REPO_ROOT, paths=("labutils",)):
    """Stands in for git_commit: says which folders the caller asked about."""
    return "+".join(paths)


def test_git_commit_of_benchmarks_sees_an_edited_script_but_a_run_does_not(tmp_path, monkeypatch):
    """A benchmark edited and not committed: its results named the clean commit. The run identity
    (labutils alone, compared by --resume) must not change with it."""
    monkeypatch.delenv("LABUTILS_GIT_COMMIT", raising=False)
    committed_repo(tmp_path, ("labutils", "benchmarks"), "f.py")
    both = ("labutils", "benchmarks")
    commit = git_commit.__wrapped__(tmp_path)  # not the cached value of this checkout
    assert commit and git_commit.__wrapped__(tmp_path, both) == commit
    (tmp_path / "benchmarks" / "f.py").write_text("edited")
    assert git_commit.__wrapped__(tmp_path) == commit  # the run's identity is unchanged
    edited = git_commit.__wrapped__(tmp_path, both)
    assert edited.startswith(commit + UNCOMMITTED + ".") and len(edited) == len(commit + UNCOMMITTED) + 9
    (tmp_path / "benchmarks" / "f.py").write_text("edited otherwise")  # another edit: another code
    assert git_commit.__wrapped__(tmp_path, both) not in (commit, edited)


@pytest.fixture()
def sweep_module():
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))  # sweep imports airbench_peer beside it
    try:
        yield _bench("sweep")
    finally:
        sys.path.remove(str(REPO_ROOT / "benchmarks"))


def test_every_benchmark_names_the_code_of_labutils_and_benchmarks(tmp_path, monkeypatch, sweep_module):
    """bench_masks, bench_train, bench_infer and the sweep (profile_step: tests/test_profile_step.py)."""
    masks = _bench("bench_masks")
    monkeypatch.setattr(masks, "git_commit", _named_paths)
    monkeypatch.setattr(masks, "op_ms", lambda *a: {"after-step": 1.0, "gradients": 1.0})
    monkeypatch.setattr(masks, "step_ms", lambda *a: 10.0)
    assert masks.main(["--smoke", "--ops-only"])["git_commit"] == "labutils+benchmarks"
    for name, args in (("bench_train", ["--smoke", "--models", "resnet20", "--modes", "eager"]),
                       ("bench_infer", ["--smoke", "--models", "resnet18", "--modes", "eager"])):
        bench, out = _bench(name), tmp_path / f"{name}.json"
        monkeypatch.setattr(bench, "git_commit", _named_paths)
        bench.main(args + ["--time-limit", "-1", "--json", str(out)])  # every case skipped: only the record
        assert json.loads(out.read_text())["settings"]["git_commit"] == "labutils+benchmarks", name
    monkeypatch.setattr(sweep_module, "git_commit", _named_paths)
    result = sweep_module.main(["--model", "resnet20", "--smoke", "--out", str(tmp_path / "sweep"),
                                "--budget-s", "0"])
    assert result["git_commit"] == "labutils+benchmarks"


def test_bench_masks_refuses_a_single_epoch_before_training(capsys):
    """--epochs 1 trained the whole dense run, then divided by the empty timed epochs."""
    with pytest.raises(SystemExit):
        _bench("bench_masks").main(["--width", "8", "--batch", "32", "--images", "32", "--epochs", "1"])
    assert "--epochs must be at least 2" in capsys.readouterr().err


def test_bench_masks_writes_its_json_after_every_measurement(tmp_path, monkeypatch):
    """A run cut short (here in the third training run) keeps the rates it measured."""
    bench, out = _bench("bench_masks"), tmp_path / "masks.json"

    def rate(device, width, batch, images, epochs, how):
        if how == "gradients":
            raise KeyboardInterrupt
        return {None: 100.0, "after-step": 90.0}[how]

    monkeypatch.setattr(bench, "train_rate", rate)
    with pytest.raises(KeyboardInterrupt):
        bench.main(["--smoke", "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["images_per_second"] == {"dense": 100.0, "after-step": 90.0} and saved["epochs"] == 2


@pytest.mark.parametrize("noisy", [True, False])
def test_bench_masks_marks_timings_other_processes_may_have_slowed(noisy, monkeypatch, capsys):
    bench = _bench("bench_masks")
    monkeypatch.setattr(bench, "is_noisy", lambda *a, **k: noisy)
    monkeypatch.setattr(bench, "op_ms", lambda *a: {"after-step": 1.0, "gradients": 2.0})
    monkeypatch.setattr(bench, "step_ms", lambda *a: 10.0)
    result = bench.main(["--smoke", "--ops-only"])
    assert result["noisy"] == {"enforcement": noisy, "dense": noisy}
    printed = capsys.readouterr().out
    assert ("(a step: 10.00 ms*)" in printed) == noisy and ("1.000 ms* =" in printed) == noisy
    assert (f"* noisy: {bench.NOISY_WHY}" in printed) == noisy


def test_bench_infer_marks_noisy_points_and_says_what_that_means(monkeypatch, capsys):
    """measure_latency flags a timing as noisy; the table printed its speed-up as if it were not."""
    bench = _bench("bench_infer")
    real = bench.measure_latency
    calls = iter([False, True] * 4)  # dense quiet, pruned noisy: the order point() measures them in
    monkeypatch.setattr(bench, "measure_latency", lambda *a, **k: real(*a, **k) | {"noisy": next(calls)})
    rows = bench.main(["--smoke", "--models", "resnet18", "--modes", "eager", "--batches", "1"])
    row = rows[0]
    assert not row["dense"]["noisy"] and row["pruned"]["noisy"] and "spread" in row["pruned"]
    printed = capsys.readouterr().out
    dense, pruned = f"{row['dense']['images_per_second']:,.0f}", f"{row['pruned']['images_per_second']:,.0f}"
    speedup = row["pruned"]["images_per_second"] / row["dense"]["images_per_second"]
    assert f"| 1 | {dense} | {pruned}* | {speedup:.2f}x* |" in printed
    assert f"pruned {pruned + '*':>16s}" in printed  # the console line too
    assert f"\n* noisy: {bench.NOISY_WHY}" in printed


@pytest.mark.parametrize("args, said", [(["--batches", "0"], "'0' is not a whole number of 1 or more"),
                                        (["--batches", "1,x"], "'x' is not a whole number of 1 or more"),
                                        (["--iters", "0"], "'0' is not a whole number of 1 or more")])
def test_bench_infer_refuses_batches_and_iters_below_one_before_building(args, said, monkeypatch, capsys):
    """--batches 0 failed after building the models, 1,x with int()'s traceback; --iters 0 became 20."""
    bench = _bench("bench_infer")
    monkeypatch.setattr(bench, "pair", lambda *a: pytest.fail("built models before checking the arguments"))
    with pytest.raises(SystemExit):
        bench.main(["--smoke", "--models", "resnet18", "--modes", "eager", *args])
    assert said in capsys.readouterr().err


def _no_work(monkeypatch, bench):
    """Any device looked up means the arguments were accepted and the work began."""
    from labutils import train

    def refuse(*a, **k):
        pytest.fail("began the work before refusing the arguments")
    monkeypatch.setattr(train, "get_device", refuse)  # profile_step looks it up in labutils.train
    if hasattr(bench, "get_device"):
        monkeypatch.setattr(bench, "get_device", refuse)


SCRIPTS = ("bench_train", "bench_masks", "bench_infer", "profile_step")


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_benchmark_refuses_an_unwritable_json_before_its_work(name, tmp_path, monkeypatch, capsys):
    """A folder or an unwritable place given to --json was found after the work: bench_train after
    its first case, bench_masks after the dense training, profile_step after the whole profile."""
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))  # profile_step imports bench_train beside it
    try:
        bench = _bench(name)
    finally:
        sys.path.remove(str(REPO_ROOT / "benchmarks"))
    _no_work(monkeypatch, bench)
    blocker = tmp_path / "file"
    blocker.write_text("")
    for path, said in ((tmp_path, f"cannot write {tmp_path}: it is a folder; give a file name"),
                       (blocker / "r.json", f"{blocker.resolve()} is not a folder this process can write to")):
        with pytest.raises(SystemExit):
            bench.main(["--smoke", "--json", str(path)])
        assert said in capsys.readouterr().err, (name, path)


@pytest.mark.parametrize("name, args", [
    ("bench_train", ["--images", "0"]), ("bench_train", ["--images", "-5"]), ("bench_train", ["--epochs", "0"]),
    ("bench_masks", ["--images", "0"]), ("bench_masks", ["--batch", "0"]), ("bench_masks", ["--width", "0"]),
    ("bench_masks", ["--repeats", "0"]), ("bench_masks", ["--threads", "-1"]), ("bench_masks", ["--epochs", "0"]),
    ("profile_step", ["--batch-size", "0"]), ("profile_step", ["--top", "0"])])
def test_benchmarks_refuse_counts_below_one_instead_of_taking_the_default(name, args, monkeypatch, capsys):
    """`args.x or default` made 0 the default (--images 0: 50,000 images); --repeats 0 divided by
    zero after three training runs; --threads -1 was torch's RuntimeError."""
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    try:
        bench = _bench(name)
    finally:
        sys.path.remove(str(REPO_ROOT / "benchmarks"))
    _no_work(monkeypatch, bench)
    with pytest.raises(SystemExit):
        bench.main(["--smoke", *args])
    assert f"{args[1]!r} is not a whole number of 1 or more" in capsys.readouterr().err


def test_bench_train_refuses_fewer_images_than_a_batch_naming_images(monkeypatch, capsys):
    """Every cell "failed" with "use a smaller batch_size", a flag bench_train does not have."""
    bench = _bench("bench_train")
    monkeypatch.setattr(bench, "run_mode", lambda *a: pytest.fail("trained with fewer images than a batch"))
    with pytest.raises(SystemExit):
        bench.main(["--smoke", "--models", "resnet20", "--modes", "eager", "--images", "16"])
    assert "--images 16 is fewer than one batch of resnet20 (32): give --images 32 or more" in capsys.readouterr().err


def test_benchmarks_record_smoke_the_command_line_and_the_model_size(tmp_path, monkeypatch):
    """A smoke result (ResNet-18 at width 8) was labelled just "resnet18": nothing in the JSON said
    it was one, nor how the script was called."""
    for name, args in (("bench_train", ["--smoke", "--models", "resnet20", "--modes", "eager"]),
                       ("bench_infer", ["--smoke", "--models", "resnet18", "--modes", "eager", "--batches", "1"])):
        bench, out = _bench(name), tmp_path / f"{name}.json"
        argv = args + ["--time-limit", "-1", "--json", str(out)]  # every case skipped: only the record
        bench.main(argv)
        saved = json.loads(out.read_text())
        assert saved["settings"]["smoke"] is True and saved["settings"]["argv"] == argv, name
    row = saved["rows"][0]  # bench_infer's: the size of what was measured, dense and pruned
    assert row["parameters"]["dense"] > row["parameters"]["pruned"] > 0
    assert row["parameters"]["dense"] < 1_000_000  # the narrow smoke model, not ResNet-18's 11 M


def test_bench_masks_smoke_keeps_the_values_given_and_records_repeats(tmp_path, monkeypatch):
    """--smoke --width 16 --batch 64 --repeats 50 measured width 8, batch 32, 5 repeats."""
    bench, calls = _bench("bench_masks"), []
    monkeypatch.setattr(bench, "op_ms", lambda *a: calls.append(a[1:]) or {"after-step": 1.0, "gradients": 1.0})
    monkeypatch.setattr(bench, "step_ms", lambda *a: 10.0)
    argv = ["--smoke", "--ops-only", "--width", "16", "--batch", "64", "--repeats", "7", "--json", str(tmp_path / "m.json")]
    result = bench.main(argv)
    assert calls == [(16, 64, 7)]
    saved = json.loads((tmp_path / "m.json").read_text())
    assert (saved["width"], saved["batch_size"], saved["repeats"], saved["epochs"]) == (16, 64, 7, 2)
    assert saved["smoke"] is True and saved["argv"] == argv and result["images_per_epoch"] == 128
    calls.clear()
    assert bench.main(["--smoke", "--ops-only"])["repeats"] == 5 and calls == [(8, 32, 5)]  # smoke fills the rest


def test_run_all_writes_its_tar_beside_and_renames_it(tmp_path):
    """pack() rewrote BENCH_TAR in place: a call stopped mid-tar brought back a broken one."""
    import subprocess

    script = (REPO_ROOT / "benchmarks" / "run_all.sh").read_text()
    pack = script[script.index("pack()"):script.index("trap pack EXIT")]
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    fake = bin_ / "tar"  # records the file it writes to; FAIL=2 fails as a broken tar does
    fake.write_text('#!/bin/bash\necho "$2" >> "$TAR_LOG"; echo new > "$2"; exit "${FAIL:-0}"\n')
    fake.chmod(0o755)
    tar, log = tmp_path / "bench.tar", tmp_path / "tar.log"
    tar.write_text("old\n")
    env = {"PATH": f"{bin_}:/usr/bin:/bin", "BENCH_TAR": str(tar), "TAR_LOG": str(log)}
    run = f'set -euo pipefail; out={tmp_path}/results; {pack}\npack'
    subprocess.run(["bash", "-c", run], env=env | {"FAIL": "2"}, check=True)
    assert log.read_text().split() == [f"{tar}.partial"] and tar.read_text() == "old\n"
    assert not (tmp_path / "bench.tar.partial").exists()
    subprocess.run(["bash", "-c", run], env=env, check=True)
    assert tar.read_text() == "new\n" and not (tmp_path / "bench.tar.partial").exists()


def test_run_all_cuts_its_stages_at_what_is_left_of_its_budget(tmp_path):
    """The docs said the benchmarks were bounded under 10 minutes, but two scripts had no limit and
    the others only stopped starting cases (review): each stage now runs under timeout."""
    import subprocess

    script = (REPO_ROOT / "benchmarks" / "run_all.sh").read_text()
    limited = script[script.index("limited() {"):script.index("\n}\n", script.index("limited() {")) + 3]

    def run(body: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-c", f"set -euo pipefail\n{limited}\n{body}"], capture_output=True, text=True)

    assert run("budget=100; SECONDS=0; limited true").returncode == 0
    spent = run("budget=100; SECONDS=95; limited touch " + str(tmp_path / "ran"))
    assert spent.returncode == 125 and "under 10 s of the 100 s budget (BENCH_BUDGET) left" in spent.stdout
    assert not (tmp_path / "ran").exists()
    assert "limited python \"benchmarks/bench_$name.py\"" in script and "limited env TORCHINDUCTOR" in script
