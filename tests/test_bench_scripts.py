"""What the benchmark scripts record beside their numbers: the code that made them (an edited
script is not the commit), noisy timings marked, and bench_masks' arguments and partial results."""
import json
import sys

import pytest

from labutils.artifacts import REPO_ROOT, UNCOMMITTED, code_fingerprint, git_commit
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
    return _bench("sweep")


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


def test_bench_infer_keeps_the_other_points_when_one_fails(monkeypatch, capsys):
    """Only CUDA's out-of-memory was caught: a CPU allocation error at one batch size ended the
    script, and every later batch and model was lost (review)."""
    bench = _bench("bench_infer")
    real = bench.measure_latency

    def breaks_at_two_and_three(model, size, batch, *a, **k):
        if batch == 2:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory\nsecond line")
        if batch == 3:  # Python's own, with no message: the handler's splitlines()[0] raised IndexError
            raise MemoryError()
        return real(model, size, batch, *a, **k)

    monkeypatch.setattr(bench, "measure_latency", breaks_at_two_and_three)
    rows = bench.main(["--smoke", "--modes", "eager", "--batches", "1,2,3"])
    assert {(r["model"], r["batch_size"]) for r in rows} == {(m, b) for m in bench.MODELS for b in (1, 2, 3)}
    reasons = {2: "RuntimeError: DefaultCPUAllocator: can't allocate memory", 3: "MemoryError"}
    for r in rows:
        if r["batch_size"] in reasons:
            assert r["dense"] == {"images_per_second": None, "note": "failed", "reason": reasons[r["batch_size"]]}
        else:
            assert r["dense"]["images_per_second"] > 0
    printed = capsys.readouterr().out
    assert "| 2 | failed | failed |" in printed and "| 3 | failed | failed |" in printed
    from labutils.errors import one_line  # a message that starts with a newline keeps its words

    assert one_line(RuntimeError("\nCUDA error: out of memory\nmore")) == "RuntimeError: CUDA error: out of memory"


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
    bench = _bench(name)
    _no_work(monkeypatch, bench)
    blocker = tmp_path / "file"
    blocker.write_text("")
    for path, said in ((tmp_path, f"cannot write {tmp_path}: it is a folder; give a file name"),
                       (blocker / "r.json", f"{blocker.resolve()} is not a folder this process can write to")):
        with pytest.raises(SystemExit):
            bench.main(["--smoke", "--json", str(path)])
        assert said in capsys.readouterr().err, (name, path)


@pytest.mark.parametrize("name", [*SCRIPTS, "bench_loaders"])
@pytest.mark.parametrize("device, said", [("cuda", "error: DEVICE (--device) 'cuda', but no CUDA GPU is visible: use auto or cpu"),
                                          ("tpu", "error: unknown DEVICE (--device) 'tpu': use auto, cpu, cuda")])
def test_every_benchmark_refuses_a_device_it_cannot_use_in_one_line(name, device, said, monkeypatch, capsys):
    """--device cuda without a GPU was a 9-line traceback and exit status 1, where every other bad
    option is the parser's one line and exit status 2 (review)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_:
        _bench(name).main(["--device", device])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and said in err and "Traceback" not in err


@pytest.mark.parametrize("name, args", [
    ("bench_train", ["--images", "0"]), ("bench_train", ["--images", "-5"]), ("bench_train", ["--epochs", "0"]),
    ("bench_masks", ["--images", "0"]), ("bench_masks", ["--batch", "0"]), ("bench_masks", ["--width", "0"]),
    ("bench_masks", ["--repeats", "0"]), ("bench_masks", ["--threads", "-1"]), ("bench_masks", ["--epochs", "0"]),
    ("profile_step", ["--batch-size", "0"]), ("profile_step", ["--top", "0"])])
def test_benchmarks_refuse_counts_below_one_instead_of_taking_the_default(name, args, monkeypatch, capsys):
    """`args.x or default` made 0 the default (--images 0: 50,000 images); --repeats 0 divided by
    zero after three training runs; --threads -1 was torch's RuntimeError."""
    bench = _bench(name)
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


def test_bench_masks_refuses_fewer_images_than_a_batch_naming_images(monkeypatch, capsys):
    """It trained, then fit's traceback told of a batch_size, where its flag is --batch (review)."""
    bench = _bench("bench_masks")
    monkeypatch.setattr(bench, "fit", lambda *a, **k: pytest.fail("trained with fewer images than a batch"))
    with pytest.raises(SystemExit):
        bench.main(["--smoke", "--images", "16"])
    assert "--images 16 is fewer than one batch (32, --batch): give --images 32 or more" in capsys.readouterr().err


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


SKIPPED = 4  # run_all.sh's exit status when a stage was skipped (BENCH_BUDGET=5: every one)


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
    assert "limited python3 \"benchmarks/bench_$name.py\"" in script and "limited env TORCHINDUCTOR" in script


def _script_tree(root):
    """A copy of the GPU scripts, with one more tracked file, to run them where .gpu/ is the test's
    (and labutils, which names the code in run_all.sh's last line; sweep.py, whose models
    run_on_gpu.sh's check reads)."""
    import shutil

    (root / "benchmarks" / "gpu").mkdir(parents=True)
    shutil.copytree(REPO_ROOT / "labutils", root / "labutils", ignore=shutil.ignore_patterns("__pycache__"))
    for script in ("run_all.sh", "sweep.py"):
        shutil.copy(REPO_ROOT / "benchmarks" / script, root / "benchmarks")
    for script in (REPO_ROOT / "benchmarks" / "gpu").glob("*.sh"):
        shutil.copy(script, root / "benchmarks" / "gpu")
    (root / "f.py").write_text("committed\n")
    return root


def _bash(script, *args, cwd=None, **env):
    import os
    import subprocess

    keep = {k: v for k, v in os.environ.items() if k not in ("LABUTILS_GIT_COMMIT", "WORK", "OUT", "BENCH_TAR")}
    return subprocess.run(["bash", str(script), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=keep | {k: str(v) for k, v in env.items()}, timeout=60)


def _prepared(root, commit="abcdef123456"):
    """.gpu/ as prepare.sh leaves it: COMMIT and the tracked files' hashes."""
    import subprocess

    (root / ".gpu").mkdir()
    (root / ".gpu" / "COMMIT").write_text(commit + "\n")
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".gpu" not in p.parts)
    (root / ".gpu" / "MANIFEST").write_text(subprocess.run(["sha256sum", *files], cwd=root, check=True,
                                                           capture_output=True, text=True).stdout)


def test_run_all_names_prepares_commit_and_refuses_a_tree_edited_since(tmp_path):
    """LABUTILS_GIT_COMMIT typed by hand named an edited benchmark as the clean commit (review):
    run_all.sh now checks .gpu/MANIFEST as run_on_gpu.sh does, with the same script and message."""
    root = _script_tree(tmp_path / "repo")
    _prepared(root)
    run_all, out = root / "benchmarks" / "run_all.sh", tmp_path / "bench"
    quick = dict(BENCH_SMOKE=1, BENCH_BUDGET=5)  # every stage skipped: seconds
    done = _bash(run_all, out, **quick)
    assert done.returncode == SKIPPED, done.stderr
    assert "(commit abcdef123456)" in (out / "elapsed.txt").read_text()
    wrong = _bash(run_all, out, **quick, LABUTILS_GIT_COMMIT="68992e75ab12")
    assert wrong.returncode == 1
    assert "LABUTILS_GIT_COMMIT is 68992e75ab12, but prepare.sh recorded commit abcdef123456" in wrong.stderr
    (root / "f.py").write_text("edited\n")
    refused = "error: this tree is not commit abcdef123456, which prepare.sh recorded; changed since: f.py: FAILED"
    for env in ({}, {"LABUTILS_GIT_COMMIT": "abcdef123456"}):
        edited = _bash(run_all, tmp_path / "again", **quick, **env)
        assert edited.returncode == 1 and refused in edited.stderr, edited.stderr
        assert not (tmp_path / "again").exists()
    # run_on_gpu.sh's check is the same script: same refusal, and no $WORK left for collect.sh to tar
    work, results = tmp_path / "work", tmp_path / "out"
    results.mkdir()
    gpu = _bash(root / "benchmarks" / "gpu" / "run_on_gpu.sh", DRY_RUN=1, WORK=work)
    assert gpu.returncode == 1 and refused in gpu.stderr and not work.exists()
    collect = _bash(root / "benchmarks" / "gpu" / "collect.sh", WORK=work, OUT=results)
    assert collect.returncode == 2 and "nothing to collect" in collect.stderr and "tar failed" not in collect.stderr
    work.mkdir()  # made, then the wheels' install failed, say: empty
    collect = _bash(root / "benchmarks" / "gpu" / "collect.sh", WORK=work, OUT=results)
    assert collect.returncode == 2 and "error: nothing to collect: the stages never started" in collect.stderr
    assert "Cowardly" not in collect.stderr and not list(results.iterdir())


def test_commits_are_compared_by_prefix_and_git_names_a_tree_here_whatever_gpu_says(tmp_path):
    """run_all.sh refused a 7-digit LABUTILS_GIT_COMMIT of the very commit prepare.sh wrote with 12,
    and refused every local run once .gpu/ was a commit behind; run_on_gpu.sh took a typed commit
    other than .gpu/COMMIT (review)."""
    import subprocess

    root = _script_tree(tmp_path / "repo")
    _prepared(root)
    tree_commit = root / "benchmarks" / "gpu" / "tree_commit.sh"
    for typed, same in (("abcdef1", True), ("abcdef123456789", True), ("", True), ("abcdef0", False), ("abc", False)):
        named = _bash(tree_commit, cwd=root, LABUTILS_GIT_COMMIT=typed)
        assert (named.returncode, named.stdout) == ((0, "abcdef123456\n") if same else (1, "")), typed
    (root / "labutils" / "extra_patch.py").write_text("print('new code')\n")  # untracked: carried all the same
    added = _bash(tree_commit, cwd=root)
    assert added.returncode == 1 and "added since: labutils/extra_patch.py" in added.stderr
    (root / "labutils" / "extra_patch.py").unlink()
    # A dry run on a tree without git: .gpu/ names it, a typed commit included (review: a dry run
    # with a typed commit skipped the check), and a .gpu/ short of MANIFEST is named as such.
    gpu = root / "benchmarks" / "gpu" / "run_on_gpu.sh"
    dry = _bash(gpu, DRY_RUN=1, WORK=tmp_path / "w1", LABUTILS_GIT_COMMIT="deadbeef0000")
    assert dry.returncode == 1 and "but prepare.sh recorded commit abcdef123456" in dry.stderr
    assert not (tmp_path / "w1").exists()
    (root / ".gpu" / "MANIFEST").rename(root / "MANIFEST.away")
    partial = _bash(gpu, DRY_RUN=1, WORK=tmp_path / "w1")
    assert partial.returncode == 1 and "error: .gpu/COMMIT or .gpu/MANIFEST is missing" in partial.stderr
    (root / "MANIFEST.away").rename(root / ".gpu" / "MANIFEST")
    bare = _script_tree(tmp_path / "bare")  # no .gpu/: the real run is refused, a dry run named by its files
    (bare / "benchmarks" / "gpu" / "stages.sh").write_text("exit 0\n")  # no stage runs
    (bare / "notebooks").mkdir()
    (bare / "pyproject.toml").write_text("")
    refused = _bash(bare / "benchmarks" / "gpu" / "run_on_gpu.sh", WORK=tmp_path / "w0")
    assert refused.returncode == 1 and not (tmp_path / "w0").exists()
    assert "error: .gpu/COMMIT or .gpu/MANIFEST is missing: run benchmarks/gpu/prepare.sh" in refused.stderr
    started = _bash(bare / "benchmarks" / "gpu" / "run_on_gpu.sh", WORK=tmp_path / "w0", DRY_RUN=1)
    assert started.returncode == 0, started.stderr
    assert f"commit {code_fingerprint(bare, ('labutils',))}," in started.stdout
    quick = dict(BENCH_SMOKE=1, BENCH_BUDGET=5)
    typed = _bash(root / "benchmarks" / "run_all.sh", tmp_path / "b1", **quick, LABUTILS_GIT_COMMIT="abcdef1")
    assert typed.returncode == SKIPPED, typed.stderr
    typed = _bash(root / "benchmarks" / "gpu" / "run_on_gpu.sh", WORK=tmp_path / "w", LABUTILS_GIT_COMMIT="deadbeef0000")
    assert typed.returncode == 1 and "but prepare.sh recorded commit abcdef123456" in typed.stderr
    for command in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"]):
        subprocess.run(["git", *command], cwd=root, check=True)
    (root / "f.py").write_text("a later edit\n")  # .gpu/ is now another tree's: git names this one
    local = _bash(root / "benchmarks" / "run_all.sh", tmp_path / "b2", **quick)
    assert local.returncode == SKIPPED, local.stderr
    assert "abcdef123456" not in (tmp_path / "b2" / "elapsed.txt").read_text()


def test_run_all_names_the_code_as_the_benchmarks_json_does(tmp_path):
    """Its last line said "commit unknown" for a copy without git, and the clean commit for an
    edited benchmark, where every JSON beside it said no-git.<hash> or <commit>+changes (review)."""
    import subprocess


    root = _script_tree(tmp_path / "repo")
    quick = dict(BENCH_SMOKE=1, BENCH_BUDGET=5)
    assert _bash(root / "benchmarks" / "run_all.sh", tmp_path / "b1", **quick).returncode == SKIPPED
    named = code_fingerprint(root, ("labutils", "benchmarks"))
    assert f"(commit {named})" in (tmp_path / "b1" / "elapsed.txt").read_text()
    for command in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"]):
        subprocess.run(["git", *command], cwd=root, check=True)
    with open(root / "benchmarks" / "run_all.sh", "a") as script:
        script.write("# an edit\n")
    assert _bash(root / "benchmarks" / "run_all.sh", tmp_path / "b2", **quick).returncode == SKIPPED
    assert "+changes." in (tmp_path / "b2" / "elapsed.txt").read_text()


def test_run_all_clears_its_earlier_results_and_refuses_a_folder_it_did_not_write(tmp_path):
    """A second run into the same folder packed the first run's JSON beside its own logs (review)."""
    import subprocess

    root = _script_tree(tmp_path / "repo")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "."], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"], cwd=root, check=True)
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, check=True,
                          capture_output=True, text=True).stdout.strip()
    run_all, out, tar = root / "benchmarks" / "run_all.sh", tmp_path / "bench", tmp_path / "bench.tar"
    out.mkdir()
    earlier = ["bench_train.json", "bench_train.log", "profile_vit_scratch_b32.json",
               "profile_vit_scratch_compiled_b32_smoke.trace.json.gz", ".bench_infer.json.x1y2.tmp", "elapsed.txt"]
    for name in earlier:
        (out / name).write_text("earlier run")
    done = _bash(run_all, out, BENCH_SMOKE=1, BENCH_BUDGET=5, BENCH_TAR=tar)
    assert done.returncode == SKIPPED, done.stderr
    logs = {f"bench_{b}.log" for b in ("train", "infer", "masks")} | {
        f"profile_vit_scratch_{c}.log" for c in ("b32", "b64", "b32_trivialaugment")}  # "skipped: ..."
    assert {p.name for p in out.iterdir()} == logs | {"elapsed.txt"}
    assert all("earlier run" not in p.read_text() for p in out.iterdir())
    assert f"(commit {head})" in (out / "elapsed.txt").read_text()  # 12 digits, as the JSON's
    packed = subprocess.run(["tar", "tf", tar], capture_output=True, text=True).stdout.split()
    assert sorted(packed) == sorted(["bench/", "bench/elapsed.txt", *(f"bench/{n}" for n in logs)])
    (out / "README.md").write_text("written by hand")
    (out / "bench_masks.json").write_text("earlier run")
    foreign = _bash(run_all, out, BENCH_SMOKE=1, BENCH_BUDGET=5)
    assert foreign.returncode == 1 and "holds what run_all.sh does not write (README.md)" in foreign.stderr
    assert (out / "bench_masks.json").exists()  # refused before anything was removed
    home = tmp_path / "home"
    home.mkdir()
    for folder in ("/", root, ".", home):
        refused = _bash(run_all, folder, BENCH_SMOKE=1, BENCH_BUDGET=5, HOME=home)
        assert refused.returncode == 1 and "the repository or your home folder" in refused.stderr, folder


def _fake_benchmarks(root):
    """Stand-ins for the four scripts run_all.sh runs: SLEEP_<name> seconds, then exit status RC_<name>."""
    for name in ("profile_step", "bench_train", "bench_infer", "bench_masks"):
        (root / "benchmarks" / f"{name}.py").write_text(
            "import os, sys, time\n"
            f"time.sleep(float(os.environ.get('SLEEP_{name}', 0)))\n"
            f"print('{name} ran')\n"
            f"sys.exit(int(os.environ.get('RC_{name}', 0)))\n")
    return root


def test_run_all_exits_non_zero_when_a_stage_was_skipped_and_its_last_line_says_so(tmp_path):
    """A stage skipped for lack of budget exited 0: a smoke rehearsal "passed" that never ran bench_masks."""
    import subprocess

    root = _fake_benchmarks(_script_tree(tmp_path / "repo"))
    run_all = root / "benchmarks" / "run_all.sh"
    ran = _bash(run_all, tmp_path / "all", BENCH_SMOKE=1, BENCH_BUDGET=100)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.splitlines()[-1].startswith("all benchmarks: ") and "not run" not in ran.stdout.splitlines()[-1]
    # bench_infer leaves under 10 s of the 16: bench_masks is skipped, the tar still written
    tar = tmp_path / "bench.tar"
    short = _bash(run_all, tmp_path / "short", BENCH_SMOKE=1, BENCH_BUDGET=16, SLEEP_bench_infer=7, BENCH_TAR=tar)
    assert short.returncode == SKIPPED, short.stdout + short.stderr
    assert short.stdout.splitlines()[-1].endswith("; not run, the 16 s budget (BENCH_BUDGET) spent: bench_masks")
    assert "bench_infer ran" in (tmp_path / "short" / "bench_infer.log").read_text()
    packed = subprocess.run(["tar", "tf", tar], capture_output=True, text=True).stdout.split()
    assert "short/elapsed.txt" in packed and "short/bench_masks.log" in packed
    failed = _bash(run_all, tmp_path / "failed", BENCH_SMOKE=1, BENCH_BUDGET=100, RC_bench_train=1)
    assert failed.returncode == 1 and failed.stdout.splitlines()[-1].endswith("; failed: bench_train")
    doc = " ".join((REPO_ROOT / "benchmarks" / "GPU_SESSION.md").read_text().split())
    assert "exit status 4" in doc and "# Exit status: 0 when every benchmark ran" in run_all.read_text()


def test_run_all_counts_a_failed_cell_as_failed_and_lists_a_fallback(tmp_path):
    """bench_train and bench_infer exit 3 when a cell failed, 5 when one fell back to another mode
    (review: every cell "failed" and the run passed). 3 fails the run; 5 is listed, not failed."""
    root = _fake_benchmarks(_script_tree(tmp_path / "repo"))
    run_all = root / "benchmarks" / "run_all.sh"
    ran = _bash(run_all, tmp_path / "a", BENCH_SMOKE=1, BENCH_BUDGET=100, RC_bench_train=3, RC_bench_infer=5)
    last = ran.stdout.splitlines()[-1]
    assert ran.returncode == 1 and "; failed: bench_train;" in last, ran.stdout + ran.stderr
    assert last.endswith("; fell back (cells that measured another mode than their column's: see the logs): "
                         "bench_infer") and last == (tmp_path / "a" / "elapsed.txt").read_text().strip()
    assert "bench_train: a cell failed: see its log" in ran.stdout
    fell = _bash(run_all, tmp_path / "b", BENCH_SMOKE=1, BENCH_BUDGET=100, RC_bench_infer=5, RC_profile_step=5)
    assert fell.returncode == 0 and "failed" not in fell.stdout.splitlines()[-1], fell.stdout + fell.stderr
    assert fell.stdout.splitlines()[-1].endswith("profile 32 profile 64 profile 32:trivialaugment bench_infer")


@pytest.mark.parametrize("budget", ["9min", "abc", "0", "1.5", "-60", "0560"])
def test_run_all_refuses_a_budget_that_is_not_whole_seconds_before_removing_anything(budget, tmp_path):
    """BENCH_BUDGET=9min or abc removed the previous results, then every stage failed."""
    root = _script_tree(tmp_path / "repo")
    out = tmp_path / "bench"
    out.mkdir()
    (out / "bench_train.json").write_text("an earlier run")
    refused = _bash(root / "benchmarks" / "run_all.sh", out, BENCH_SMOKE=1, BENCH_BUDGET=budget)
    assert refused.returncode == 1
    assert f"error: BENCH_BUDGET={budget}: give whole seconds for all the benchmarks, e.g. 560" in refused.stderr
    assert [p.name for p in out.iterdir()] == ["bench_train.json"]


def test_the_gpu_scripts_call_python3():
    """run_all.sh called `python`, which the device machine may not have."""
    import re

    for path in [REPO_ROOT / "benchmarks" / "run_all.sh", *(REPO_ROOT / "benchmarks" / "gpu").glob("*.sh")]:
        assert not re.findall(r"(?<![\w./-])python(?![\w.-])", path.read_text()), path.name


def test_wait_says_still_running_by_its_status_and_shows_the_sweeps_progress(tmp_path):
    """wait.sh exited 0 whether the run had finished or not, and showed no line of a sweep."""
    import subprocess

    wait = REPO_ROOT / "benchmarks" / "gpu" / "wait.sh"
    work = tmp_path / "work"
    work.mkdir()
    # Notebook 03's 18 study lines ("...: 15.62% [...]") pushed the notebooks' lines out (review).
    study = "".join(f"cnn          one_shot    {p}% 5 ep (2 steps): 15.62% [12.1%, 19.9%] (3s)\n" for p in range(18))
    (work / "run.log").write_text("== 02_baseline_training.ipynb done in 35s\n" + study +
                                  "cutout 16: started (log: cnn/cutout_16/log.txt)\n"
                                  "today: 93.10% [92.60%, 93.58%] on 5000 images, 2 epochs, 9 s, 1,200 images/s\n"
                                  "airbench94: not run (no CUDA)\nepoch 2/5 loss 1.2\n")
    assert _bash(wait, 0, WORK=work).returncode == 2  # no stages.pid: a fresh machine
    child = subprocess.Popen(["sleep", "30"])
    try:
        (work / "stages.pid").write_text(f"{child.pid}\n")
        running = _bash(wait, 0, WORK=work)
    finally:
        child.kill()
        child.wait()
    assert running.returncode == 3 and "STILL RUNNING" in running.stdout
    progress = running.stdout.split("--- progress\n")[1].split("--- last lines")[0]
    assert progress.splitlines() == ["== 02_baseline_training.ipynb done in 35s",
                                     "cutout 16: started (log: cnn/cutout_16/log.txt)",
                                     "today: 93.10% [92.60%, 93.58%] on 5000 images, 2 epochs, 9 s, 1,200 images/s",
                                     "airbench94: not run (no CUDA)"]
    finished = _bash(wait, 0, WORK=work)  # the pid has ended
    assert finished.returncode == 0 and "FINISHED" in finished.stdout
    doc = (REPO_ROOT / "benchmarks" / "GPU_SESSION.md").read_text()
    assert "wait.sh 480; bash benchmarks/gpu/collect.sh" in doc and "wait.sh N; bash benchmarks/gpu/collect.sh" in doc


@pytest.mark.parametrize("stages, models", [("sweep", None), ("sweep full", "cnn"), ("full", "cnn")])
def test_run_on_gpu_names_the_models_only_for_a_full_run(stages, models, tmp_path):
    """A sweep alone was announced with "models cnn,vit,vit_scratch", which it does not run."""
    root = _script_tree(tmp_path / "repo")
    (root / "benchmarks" / "gpu" / "stages.sh").write_text("exit 0\n")  # no stage runs
    (root / "notebooks").mkdir()
    (root / "pyproject.toml").write_text("")
    env = dict(DRY_RUN=1, WORK=tmp_path / "work", STAGES=stages, LABUTILS_GIT_COMMIT="abcdef123456")
    if models:
        env["MODELS"] = models
    started = _bash(root / "benchmarks" / "gpu" / "run_on_gpu.sh", **env)
    assert started.returncode == 0, started.stderr
    assert ("models" in started.stdout) == bool(models)
    assert (f"profile smoke, models {models})" in started.stdout) == bool(models)


def test_bench_loaders_reads_the_default_data_folder_and_says_missing_data_without_a_traceback(
        tmp_path, monkeypatch, capsys):
    """--data-root defaulted to data/ of the current folder, not labutils' ($LABUTILS_DATA, else the
    repository's data/), and a missing dataset ended in a traceback."""
    from labutils.data import write_synthetic_cifar10

    bench = _bench("bench_loaders")
    default = tmp_path / "default"
    write_synthetic_cifar10(default, n_train=64, n_test=16)
    monkeypatch.setattr(bench, "DEFAULT_DATA_ROOT", default, raising=False)  # as read when labutils was imported
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no data/ here

    def run(*args):  # as from the command line
        monkeypatch.setattr(sys, "argv", ["bench_loaders.py", *args])
        bench.main()

    tiny = ["--width", "4", "--batch-size", "8", "--steps", "1", "--warmup", "0", "--workers", "0", "--device", "cpu"]
    run(*tiny)
    assert "fast / standard" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        run("--help")
    assert exit_.value.code == 0 and "$LABUTILS_DATA, else the repository's data/" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        run("--data-root", str(elsewhere), *tiny)
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and err.startswith(f"error: CIFAR-10 is not in {elsewhere}") and "Traceback" not in err


@pytest.mark.parametrize("args, said", [
    (["--arch", "resnet99"], "invalid choice: 'resnet99'"),
    (["--arch", "vit_scratch"], "invalid choice: 'vit_scratch'"),
    (["--width", "0"], "'0' is not a whole number of 1 or more"),
    (["--steps", "0"], "'0' is not a whole number of 1 or more"),
    (["--batch-size", "-2"], "'-2' is not a whole number of 1 or more"),
    (["--workers", "-1"], "--warmup and --workers take 0 or more"),
    (["--json", "."], "cannot write .: it is a folder; give a file name, e.g. bench_loaders.json")])
def test_bench_loaders_refuses_what_it_cannot_measure_before_loading_data(args, said, monkeypatch, capsys):
    """--arch resnet99 or vit_scratch were tracebacks after the data was loaded, --width 0 a ValueError,
    --steps 0 a ZeroDivisionError, --json naming a folder an error after the measurement."""
    bench = _bench("bench_loaders")
    _no_work(monkeypatch, bench)
    monkeypatch.setattr(bench, "load_cifar10", lambda *a, **k: pytest.fail("loaded the data before refusing"))
    with pytest.raises(SystemExit) as exit_:
        bench.main(args)
    assert exit_.value.code == 2 and said in capsys.readouterr().err


def test_bench_loaders_records_the_code_and_torch_it_measured(tmp_path, monkeypatch):
    """The benchmarks' README cites a commit and a torch version for its numbers; its JSON held neither."""
    import torch
    from labutils.data import write_synthetic_cifar10

    bench = _bench("bench_loaders")
    monkeypatch.setattr(bench, "git_commit", _named_paths)
    write_synthetic_cifar10(tmp_path / "data", n_train=64, n_test=16)
    out = tmp_path / "loaders.json"
    bench.main(["--data-root", str(tmp_path / "data"), "--arch", "resnet20", "--width", "4", "--batch-size", "8",
                "--steps", "1", "--warmup", "0", "--workers", "0", "--device", "cpu", "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["git_commit"] == "labutils+benchmarks" and saved["torch"] == torch.__version__
    assert [r["path"] for r in saved["rows"]] == ["standard DataLoader", "fast device path"]


@pytest.mark.parametrize("noisy", [True, False])
def test_bench_loaders_marks_timings_other_processes_may_have_slowed(noisy, tmp_path, monkeypatch, capsys):
    """The other benchmarks mark such timings `*`; bench_loaders marked none (review)."""
    from labutils.data import write_synthetic_cifar10

    bench = _bench("bench_loaders")
    monkeypatch.setattr(bench, "is_noisy", lambda *a, **k: noisy)
    write_synthetic_cifar10(tmp_path / "data", n_train=64, n_test=16)
    out = tmp_path / "loaders.json"
    bench.main(["--data-root", str(tmp_path / "data"), "--arch", "resnet20", "--width", "4", "--batch-size", "8",
                "--steps", "1", "--warmup", "0", "--workers", "0", "--device", "cpu", "--json", str(out)])
    assert [r["noisy"] for r in json.loads(out.read_text())["rows"]] == [noisy, noisy]
    printed = capsys.readouterr().out
    assert printed.count("* images/s") == (2 if noisy else 0) and ("x*\n" in printed) == noisy
    assert (f"* noisy: {bench.NOISY_WHY}" in printed) == noisy


def test_bench_loaders_counts_its_dataloader_workers_as_its_own_work(monkeypatch):
    """busy_elsewhere counts child processes as other work: the standard path's workers would mark
    its every timing noisy on a 2-core CPU."""
    import subprocess

    bench = _bench("bench_loaders")
    before = bench.children_cpu_seconds()
    burn = "import time\nwhile time.process_time() < 0.3: pass\nprint('done', flush=True)\ntime.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", burn], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "done\n"
        assert bench.children_cpu_seconds() - before >= 0.25  # running
    finally:
        child.kill()
        child.wait()
    assert bench.children_cpu_seconds() - before >= 0.25  # ended and reaped
    seen = []
    monkeypatch.setattr(bench, "busy_elsewhere", lambda since: 2.0)  # two cores busy, all of it the workers'
    monkeypatch.setattr(bench, "children_cpu_seconds", iter([0.0, 1e6]).__next__)
    monkeypatch.setattr(bench, "is_noisy", lambda spread, device, elsewhere: seen.append(elsewhere) or False)
    import torch

    loader = [(torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))]
    bench.time_steps(bench.build_model("resnet20", width=4), loader, torch.device("cpu"), 1, 0)
    assert seen == [0.0]


def _committed_script_tree(root):
    """_script_tree as a git checkout, everything committed (prepare.sh asks git)."""
    import subprocess

    _script_tree(root)
    (root / ".gitignore").write_text("/.gpu/\n.*.partial.ipynb\n__pycache__/\n")
    for command in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"]):
        subprocess.run(["git", *command], cwd=root, check=True)
    return root


def test_prepare_refuses_untracked_code_files_the_device_would_refuse(tmp_path):
    """prepare.sh checked tracked files only, but the device tool carries untracked files git does not
    ignore, and tree_commit.sh refused one there ("added since: benchmarks/scratch_note.py"), after
    the machine's start (review)."""
    root = _committed_script_tree(tmp_path / "repo")
    prepare, pack = root / "benchmarks" / "gpu" / "prepare.sh", tmp_path / "no-pack"
    (root / "benchmarks" / "scratch_note.py").write_text("print('not committed')\n")
    (root / "notebooks").mkdir()
    (root / "notebooks" / "99_mine.ipynb").write_text("{}\n")
    refused = _bash(prepare, pack)
    assert refused.returncode == 1 and not (root / ".gpu").exists()
    assert ("error: untracked code files, which the device tool would carry and run_on_gpu.sh refuse as not the"
            " commit: benchmarks/scratch_note.py notebooks/99_mine.ipynb - commit, delete or git-ignore them"
            in refused.stderr), refused.stderr
    # Not carried (ignored), or not code: accepted; it goes on to the pack, which this test lacks.
    (root / "benchmarks" / "scratch_note.py").unlink()
    (root / "notebooks" / "99_mine.ipynb").rename(root / "notebooks" / ".99_mine.partial.ipynb")
    (root / "benchmarks" / "notes.txt").write_text("a note\n")
    passed = _bash(prepare, pack)
    assert passed.returncode == 1 and "untracked code" not in passed.stderr and "cifar10_q75.npz" in passed.stderr
    (root / "notebooks" / "08_élagage.ipynb").write_text("{}\n")  # git quoted the name, and the filter missed it
    refused = _bash(prepare, pack)
    assert refused.returncode == 1 and "commit: notebooks/08_élagage.ipynb - commit, delete" in refused.stderr


@pytest.mark.parametrize("settings, said", [
    ({"MODELS": "cnn vit_scratch"}, "error: MODELS='cnn vit_scratch' names unknown model(s) ['cnn vit_scratch']: "
                                    "give comma-separated names of: cnn,vit,vit_scratch"),
    ({"MODELS": ","}, "error: MODELS=',' names no model"),
    ({"STAGES": "sweep fulll"}, "error: STAGES='sweep fulll' names unknown stage(s) fulll: "
                                "give space-separated words of: sweep full"),
    ({"STAGES": "sweep,full"}, "names unknown stage(s) sweep,full"),
    ({"STAGES": " "}, "error: STAGES=' ' names no stage"),
    ({"STAGES": "sweep", "SWEEP_MODELS": "cnn,vit_scratch"},  # commas, as MODELS: sweep.py refused it on the device
     "error: SWEEP_MODELS='cnn,vit_scratch' names unknown model(s) ['cnn,vit_scratch']: give space-separated names of: "
     "cnn vit_scratch resnet20"),
    ({"STAGES": "sweep full", "SWEEP_JOBS": "0"}, "error: SWEEP_JOBS='0': a whole number of 1 or more"),
    ({"STAGES": "sweep", "SWEEP_BUDGET_S": "3m"}, "error: SWEEP_BUDGET_S='3m': 0 or more seconds a model"),
])
def test_run_on_gpu_refuses_unknown_models_and_stages_before_anything_starts(settings, said, tmp_path):
    """MODELS="cnn vit_scratch" (spaces, as SWEEP_MODELS) failed the full run with exit status 2 and
    an unknown STAGES word was only "skipped", both on the device after the machine's start; the dry
    run here did the same, so its rehearsal did not catch them (review)."""
    root = _script_tree(tmp_path / "repo")
    work = tmp_path / "work"
    for dry_run in ("1", "0"):
        refused = _bash(root / "benchmarks" / "gpu" / "run_on_gpu.sh", DRY_RUN=dry_run, WORK=work,
                        LABUTILS_GIT_COMMIT="abcdef123456", **settings)
        assert refused.returncode == 2 and said in refused.stderr, refused.stderr
        assert not work.exists()


@pytest.mark.parametrize("stages, models", [("full", "cnn"), (None, "cnn, vit_scratch"), ("sweep full", "vit"),
                                            ("sweep", "any thing: unused"), ("  sweep\tfull ", None)])
def test_stages_check_accepts_what_the_stages_and_the_cli_take(stages, models):
    """The check refuses no call that would have run: MODELS as the CLI's --models reads it, and
    unused by a sweep alone."""
    env = {k: v for k, v in (("STAGES", stages), ("MODELS", models)) if v is not None}
    if "MODELS" not in env:
        env["MODELS"] = "cnn,vit,vit_scratch"  # run_on_gpu.sh's default
    checked = _bash(REPO_ROOT / "benchmarks" / "gpu" / "stages.sh", "--check", **env)
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")


def test_wait_shows_the_lines_of_the_stages_the_last_call_started(tmp_path):
    """run.log is appended to by every call: after a resume, or a refused second sweep, wait.sh showed
    the earlier stages' notebook and score lines as current (review)."""
    import os
    import time

    root = _script_tree(tmp_path / "repo")
    (root / "benchmarks" / "gpu" / "stages.sh").write_text(  # this call's stage: a refused sweep
        '[ "${1:-}" = --check ] && exit 0\necho "error: $WORK/sweep holds a sweep already"\n')
    (root / "notebooks").mkdir()
    (root / "pyproject.toml").write_text("")
    work = tmp_path / "work"
    work.mkdir()
    (work / "run.log").write_text("== 02_baseline_training.ipynb done in 35s\n"
                                  "today: 93.10% [92.60%, 93.58%] on 5000 images, 2 epochs, 9 s, 1,200 images/s\n"
                                  "epoch 2/5 loss 1.2\n")
    started = _bash(root / "benchmarks" / "gpu" / "run_on_gpu.sh", DRY_RUN=1, WORK=work, STAGES="sweep",
                    LABUTILS_GIT_COMMIT="abcdef123456")
    assert started.returncode == 0, started.stderr
    pid = int((work / "stages.pid").read_text())
    for _ in range(600):  # the fake stage ends at once (30 s: a loaded machine)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    waited = _bash(REPO_ROOT / "benchmarks" / "gpu" / "wait.sh", 0, WORK=work)
    assert waited.returncode == 0, waited.stdout
    progress = waited.stdout.split("--- progress\n")[1].split("--- last lines")[0]
    assert progress.splitlines() == [f"error: {work}/sweep holds a sweep already"]
    assert waited.stdout.split("--- last lines\n")[1].splitlines()[0] == f"error: {work}/sweep holds a sweep already"
    assert (work / "run.log").read_text().startswith("== 02_baseline_training.ipynb")  # still appended to
