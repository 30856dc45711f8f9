"""One run, one folder, one truth (issue 19): a lock and an identity for every run, data checked
when read and read without running code, no hanging download, checkpoints that are what their
name says, a resume that checks what it skips, one-line errors for a folder that cannot be written,
and files written with the process's umask. Pipeline tests replace papermill with a stand-in that
writes a notebook, so they take no kernel time."""
import errno
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
import traceback
import urllib.error
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from labutils import data as D
from labutils import pipeline
from labutils.artifacts import git_commit, write_json
from labutils.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from labutils.cli import main
from labutils.models import build_model
from labutils.runlock import LOCK_NAME, RunLock, RunLocked, check_free
from labutils.data import describe_data
from labutils.session import Session

ROOT = Path(__file__).resolve().parents[1]
ALL_BOOKS = [p.name for p in pipeline.available_notebooks().values()]


@pytest.fixture()
def ran(monkeypatch):
    """papermill replaced: each "executed" notebook is a valid empty notebook (02's leaves a baseline
    record, which later notebooks run alone start from); returns the names run."""
    import papermill

    names = []

    def execute(src, dst, parameters, **kw):
        names.append(Path(src).name)
        if names[-1].startswith("02"):
            write_json(Path(dst).parents[1] / "metrics" / "cnn_before_pruning.json", {"produced": True})
        nbformat.write(nbformat.v4.new_notebook(), dst)

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    return names


def run(out, *args):
    return main(["run", "--profile", "smoke", "--out", str(out), *args])


# -- 1. one run at a time per folder ---------------------------------------------------------
def test_a_second_run_into_a_locked_folder_is_refused_with_the_holders_run_and_pid(tmp_path, ran, capsys):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from labutils.runlock import RunLock\n"
         f"with RunLock({str(tmp_path)!r}) as lock:\n"
         "    lock.name_run('smoke-holder'); print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert run(tmp_path, "--notebooks", "01") == 1
        err = capsys.readouterr().err
        assert "smoke-holder" in err and f"PID {holder.pid}" in err and len(err.splitlines()) == 1
        assert ran == [] and not (tmp_path / "metrics").exists()
    finally:
        holder.communicate("")  # closes its stdin: it releases the lock and exits
    assert holder.returncode == 0 and not (tmp_path / LOCK_NAME).exists()
    assert run(tmp_path, "--notebooks", "01") == 0  # free again


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, RuntimeError])
def test_the_lock_is_released_on_any_exit(tmp_path, monkeypatch, interrupt):
    import papermill

    def execute(*args, **kw):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
        raise interrupt("stop")

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    if interrupt is KeyboardInterrupt:
        assert run(tmp_path, "--notebooks", "01") == 130
    else:
        with pytest.raises(RuntimeError):
            run(tmp_path, "--notebooks", "01")
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_stale_lock_of_a_dead_process_is_reported_and_taken_over(tmp_path, ran, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_json(tmp_path / LOCK_NAME, {"pid": dead.pid, "host": socket.gethostname(), "run_id": "smoke-killed",
                                      "started": "2026-01-01T00:00:00+00:00", "token": "x"})
    assert run(tmp_path, "--notebooks", "01") == 0
    err = capsys.readouterr().err
    assert "stale lock" in err and "smoke-killed" in err and f"PID {dead.pid}" in err
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_lock_whose_pid_went_to_a_later_process_is_stale(tmp_path, ran, capsys):
    """A run killed in a container that restarts: its PID (often 1) runs again, in another process.
    Judged by the PID alone, the lock was refused as "in use, wait for it" forever."""
    write_json(tmp_path / LOCK_NAME, {"pid": os.getpid(), "host": socket.gethostname(), "run_id": "smoke-killed",
                                      "started": "2020-01-01T00:00:00+00:00", "token": "x"})
    assert run(tmp_path, "--notebooks", "01") == 0  # this process started after that lock: not its holder
    assert "taking over the stale lock of run smoke-killed" in capsys.readouterr().err


def test_a_lock_from_another_host_is_not_broken(tmp_path, ran, capsys):
    lock = {"pid": 1, "host": "elsewhere", "run_id": "smoke-remote", "started": "then", "token": "x"}
    write_json(tmp_path / LOCK_NAME, lock)
    assert run(tmp_path, "--notebooks", "01") == 1
    assert "another host" in capsys.readouterr().err
    assert json.loads((tmp_path / LOCK_NAME).read_text()) == lock


def test_a_lock_of_a_live_process_is_kept_by_the_one_that_fails_to_take_it(tmp_path):
    with RunLock(tmp_path) as first:
        with pytest.raises(RuntimeError, match=f"PID {os.getpid()}"):
            RunLock(tmp_path).__enter__()
        assert json.loads((tmp_path / LOCK_NAME).read_text())["token"] == first.info["token"]
    assert not (tmp_path / LOCK_NAME).exists()


def test_two_runs_never_both_take_over_the_same_stale_lock(tmp_path, monkeypatch):
    """Both see the stale lock; without the folder's flock the second deleted the lock the first
    had just created, and both ran (9 of 30 trials). Between reading the lock and replacing it each
    run waits for the other: without the flock both are there, meet, and both take over, every time;
    with it only one is, and its wait times out."""
    import threading
    from labutils import runlock

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    real_runs = runlock._runs

    def replaced():
        try:
            return json.loads((tmp_path / LOCK_NAME).read_text())["token"] != "x"
        except (OSError, ValueError):
            return False

    def meeting_runs(holder):
        try:
            if inside.wait() == 0:  # both got here: this one goes on once the other has replaced the lock
                deadline = time.monotonic() + 2
                while not replaced() and time.monotonic() < deadline:
                    time.sleep(0.005)
        except threading.BrokenBarrierError:  # alone inside (the flock works), or the one after it
            pass
        return real_runs(holder)

    monkeypatch.setattr(runlock, "_runs", meeting_runs)
    for trial in range(2):
        write_json(tmp_path / LOCK_NAME, {"pid": dead.pid, "host": socket.gethostname(), "run_id": "killed",
                                          "started": "then", "token": "x"})
        start, inside, outcomes = threading.Barrier(2), threading.Barrier(2, timeout=0.5), []

        def take():
            lock = RunLock(tmp_path)
            start.wait()
            try:
                lock.__enter__()
                outcomes.append(lock)
            except RunLocked as refused:
                outcomes.append(refused)

        threads = [threading.Thread(target=take) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        held = [o for o in outcomes if isinstance(o, RunLock)]
        assert len(held) == 1, outcomes
        assert json.loads((tmp_path / LOCK_NAME).read_text())["token"] == held[0].info["token"]
        held[0].release()


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or sys.platform == "win32", reason="POSIX signals")
def test_sigterm_ends_the_run_with_143_and_removes_its_lock(tmp_path):
    """timeout, Slurm and a container stop send SIGTERM: by default it ended the process at once
    (status -15) and left the lock, against the README's "removed on any exit". The run now unwinds
    as on Ctrl-C (the lock removed, papermill's kernel stopped) and exits with the shell's status for
    SIGTERM, 128 + 15, saying how to continue. papermill is replaced by a notebook that never ends."""
    out, ready = tmp_path / "out", tmp_path / "notebook-started"
    code = ("import pathlib, runpy, sys, time, papermill\n"
            "def execute(*args, **kwargs):\n"
            f"    pathlib.Path({str(ready)!r}).touch()\n"
            "    time.sleep(120)  # the test's SIGTERM comes first\n"
            "papermill.execute_notebook = execute\n"
            f"sys.argv = ['labutils', 'run', '--profile', 'smoke', '--notebooks', '01', '--out', {str(out)!r}]\n"
            "runpy.run_module('labutils', run_name='__main__')\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        deadline = time.monotonic() + 120  # importing torch on a loaded machine
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), proc.communicate(timeout=1) if proc.poll() is not None else "no notebook started"
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == proc.pid  # the run holds its folder
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert not (out / LOCK_NAME).exists()
    assert "terminated (SIGTERM): continue this run with: python -m labutils run --resume" in err


def test_the_lock_is_written_whole_before_it_takes_its_name(tmp_path, monkeypatch):
    """Created empty and then written, a kill between the two left an empty lock that no run took
    over ("exists but cannot be read ... delete it"), and a notebook reading it in that moment was
    told to delete a live lock. While the lock is being written, a reader finds no lock at all."""
    real_fdopen = os.fdopen
    seen = []

    def watched(fd, *args, **kwargs):  # the lock's JSON is about to be written: a notebook looks now
        check_free(tmp_path)
        seen.append((tmp_path / LOCK_NAME).exists())
        return real_fdopen(fd, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", watched)
    with RunLock(tmp_path) as lock:
        assert seen == [False]
        assert json.loads((tmp_path / LOCK_NAME).read_text()) == lock.info
        with pytest.raises(RunLocked, match=f"PID {os.getpid()}"):  # a lock that exists still refuses
            RunLock(tmp_path).__enter__()
        assert json.loads((tmp_path / LOCK_NAME).read_text())["token"] == lock.info["token"]
        assert [p.name for p in tmp_path.iterdir()] == [LOCK_NAME]  # no temporary file left beside it
    assert list(tmp_path.iterdir()) == []


def test_the_lock_is_still_taken_where_hard_links_are_not_supported(tmp_path, monkeypatch):
    """Some FUSE mounts, SMB shares and FAT refuse os.link: the lock is then created and written
    as before, and still refuses a second run."""
    def no_links(src, dst, *args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted", str(src))

    monkeypatch.setattr(os, "link", no_links)
    with RunLock(tmp_path) as lock:
        assert json.loads((tmp_path / LOCK_NAME).read_text()) == lock.info
        with pytest.raises(RunLocked, match=f"PID {os.getpid()}"):
            RunLock(tmp_path).__enter__()
        assert [p.name for p in tmp_path.iterdir()] == [LOCK_NAME]
    assert list(tmp_path.iterdir()) == []


def test_a_stale_lock_is_taken_over_where_flock_fails(tmp_path, monkeypatch, capsys):
    """NFS without its lock daemon answers flock with ENOLCK: the takeover crashed with it, where
    the folder's flock is documented as held only where it can be."""
    import fcntl

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_json(tmp_path / LOCK_NAME, {"pid": dead.pid, "host": socket.gethostname(), "run_id": "smoke-killed",
                                      "started": "2026-01-01T00:00:00+00:00", "token": "x"})
    monkeypatch.setattr(fcntl, "flock", no_locks)
    with RunLock(tmp_path) as lock:
        assert json.loads((tmp_path / LOCK_NAME).read_text())["token"] == lock.info["token"]
    assert "taking over the stale lock of run smoke-killed" in capsys.readouterr().err


def test_a_notebook_is_not_told_to_wait_for_a_lock_of_another_host(tmp_path):
    """Its process cannot be checked from here (a Colab VM that died leaves such a lock on Drive):
    the notebook said "wait for it to finish", which may be forever."""
    write_json(tmp_path / LOCK_NAME, {"pid": 1, "host": "elsewhere", "run_id": "smoke-remote",
                                      "started": "then", "token": "x"})
    with pytest.raises(RunLocked) as refused:
        check_free(tmp_path)
    assert str(refused.value) == (f"{tmp_path} is locked by run smoke-remote (PID 1 on elsewhere, started then); a "
                                  f"process on another host cannot be checked from here: if it no longer runs, "
                                  f"delete {tmp_path / LOCK_NAME}")


# -- 2. one identity per run folder ----------------------------------------------------------
def test_later_notebooks_alone_continue_only_a_run_of_the_same_identity(tmp_path, ran, capsys):
    assert run(tmp_path, "--notebooks", "01,02") == 0
    before = json.loads((tmp_path / "metrics" / "pipeline.json").read_text())
    capsys.readouterr()
    assert run(tmp_path, "--notebooks", "04", "--models", "cnn", "--seed", "5") == 1
    err = capsys.readouterr().err
    assert before["run_id"] in err and "seed 0" in err and "seed 5" in err and "model list ['cnn']" in err
    assert "--seed 0" in err and "--models cnn,vit,vit_scratch" in err and "another --out" in err
    assert json.loads((tmp_path / "metrics" / "pipeline.json").read_text()) == before
    assert ran == ["01_data.ipynb", "02_baseline_training.ipynb"]
    assert run(tmp_path, "--notebooks", "04") == 0  # the same options continue it
    after = json.loads((tmp_path / "metrics" / "pipeline.json").read_text())
    assert after["run_id"] == before["run_id"] and after["finished"] == ALL_BOOKS[:2] + [ALL_BOOKS[3]]
    # The same models in another order, or one named twice, are the same model list.
    assert run(tmp_path, "--notebooks", "04", "--models", "vit_scratch,cnn,vit,cnn") == 0


def test_a_new_run_over_another_runs_folder_is_refused_but_newer_code_may_replace_it(tmp_path, ran, capsys):
    assert run(tmp_path, "--notebooks", "01,02") == 0
    capsys.readouterr()
    assert run(tmp_path, "--seed", "1") == 1
    err = capsys.readouterr().err
    assert "One folder holds one run" in err and "--seed 0" in err and f"delete {tmp_path}" in err
    # A run made by other code: a new run replaces it, notebooks alone may not continue it.
    marker = tmp_path / "metrics" / "pipeline.json"
    write_json(marker, json.loads(marker.read_text()) | {"git_commit": "0123456789ab"})
    assert run(tmp_path, "--notebooks", "04") == 1
    assert "commit '0123456789ab'" in capsys.readouterr().err
    assert run(tmp_path, "--notebooks", "01,02") == 0
    assert json.loads(marker.read_text())["git_commit"] == git_commit()


# -- 3. data validated when read, naming the file --------------------------------------------
def _rewrite(root, file, **changes):
    path = root / D.BATCH_DIR / file
    with open(path, "rb") as f:
        batch = pickle.load(f)
    batch.update(changes)
    with open(path, "wb") as f:
        pickle.dump(batch, f)


def _fewer_labels(root):
    _rewrite(root, "data_batch_1", labels=list(range(10)) * 3 + [0] * 6)  # 36 labels, 40 images


def _bigger_images(root):
    _rewrite(root, "data_batch_1", data=np.zeros((40, 64 * 64 * 3), np.uint8))


def _labels_out_of_range(root):
    _rewrite(root, "data_batch_1", labels=[-1, 10, 42] + [0] * 37)


def _width_3000(root):
    _rewrite(root, "data_batch_1", data=np.zeros((40, 3000), np.uint8))


def _empty_test_batch(root):
    (root / D.BATCH_DIR / "test_batch").write_bytes(b"")


def _folder_for_a_batch(root):
    (root / D.BATCH_DIR / "test_batch").unlink()
    (root / D.BATCH_DIR / "test_batch").mkdir()


@pytest.mark.parametrize("spoil, file, found", [
    (_fewer_labels, "data_batch_1", "36 labels (int64) for 40 images"),
    (_bigger_images, "data_batch_1", "[40, 12288] uint8"),
    (_labels_out_of_range, "data_batch_1", "labels outside 0-9: -1, 10, 42"),
    (_width_3000, "data_batch_1", "[40, 3000] uint8"),
    (_empty_test_batch, "test_batch", "the file is empty"),
    (_folder_for_a_batch, "test_batch", "it is a folder"),
], ids=lambda v: v.__name__.strip("_") if callable(v) else None)
def test_invalid_data_is_refused_naming_the_file(synthetic_root, spoil, file, found):
    spoil(synthetic_root)
    train = file != "test_batch"
    with pytest.raises(D.DataError) as info:
        D.load_cifar10(synthetic_root, train=train)  # download allowed: it must not be attempted
    message = str(info.value)
    assert str(synthetic_root / D.BATCH_DIR / file) in message and found in message
    assert "write_cifar10" in message and "Fetch the data again" in message


def test_a_copy_smaller_than_the_profile_takes_is_refused(synthetic_root, tmp_path):
    s = Session("cpu", tmp_path / "out", data_root=synthetic_root, device="cpu")
    with pytest.raises(D.DataError, match="uses 10,000 training images, but .* holds 200"):
        s.arrays(True)


# -- 4. data pickles cannot run code -------------------------------------------------------------
class _Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (str(self.path),)


@pytest.mark.parametrize("file", ["test_batch", "batches.meta"])
def test_a_crafted_data_pickle_is_refused_without_running_it(synthetic_root, tmp_path, file):
    proof = tmp_path / "it-ran"
    with open(synthetic_root / D.BATCH_DIR / file, "wb") as f:
        pickle.dump({"data": _Payload(proof), "labels": [0], "filenames": _Payload(proof),
                     "label_names": _Payload(proof)}, f)
    if file == "test_batch":
        with pytest.raises(D.DataError, match="posix.mkdir|os.mkdir|nt.mkdir"):
            D.load_cifar10(synthetic_root, train=False)
        assert describe_data(synthetic_root) == "unknown"
    else:
        with pytest.raises(D.DataError, match="batches.meta is not a valid .* could run code"):
            D.class_names(synthetic_root)
    assert not proof.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_the_restricted_reader_reads_real_batches(tmp_path, protocol):
    """Every protocol a CIFAR-10 batch is found in (the official one is protocol 2)."""
    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    batch = {"batch_label": "testing batch 1 of 1", "labels": [3, np.int64(7)], "data": data,
             "filenames": ["a.png", "b.png"]}
    (tmp_path / "b").write_bytes(pickle.dumps(batch, protocol=protocol))
    images, labels = D._read_batch(tmp_path / "b")
    assert np.array_equal(images.reshape(2, 3072), data) and labels.tolist() == [3, 7]


# -- 5. the download cannot hang --------------------------------------------------------------
def test_a_server_that_never_answers_ends_the_download_with_a_timeout(tmp_path, monkeypatch):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts connections into its backlog and never answers
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(D, "CIFAR10_URL", f"http://127.0.0.1:{silent.getsockname()[1]}/cifar-10-python.tar.gz")
    monkeypatch.setenv("LABUTILS_DOWNLOAD_TIMEOUT", "0.5")
    before = socket.getdefaulttimeout()
    try:
        with pytest.raises(D.DataNotFoundError, match=r"no answer within 0.5 s"):
            D.load_cifar10(tmp_path)
    finally:
        silent.close()
    assert socket.getdefaulttimeout() == before


def test_no_data_and_no_network_is_a_short_error_that_leads_with_the_instructions(tmp_path, monkeypatch):
    import torchvision.datasets.utils as U

    def offline(*args, **kwargs):
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except OSError as err:
            raise urllib.error.URLError(err)

    monkeypatch.setattr(U, "download_and_extract_archive", offline)
    (tmp_path / "data").mkdir()  # a folder that exists (one that does not is said first: test_data)
    with pytest.raises(D.DataNotFoundError) as info:
        Session("cpu", tmp_path / "out", data_root=tmp_path / "data", device="cpu").arrays(True)
    err = info.value
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    assert len(text.splitlines()) < 25 and "During handling" not in text and "URLError" not in text.split("\n")[-4]
    shown = err._render_traceback_()  # what IPython shows in a notebook cell instead of a traceback
    assert shown[0].startswith("DataNotFoundError: CIFAR-10 is not in") and "Name or service not known" in shown[0]
    assert shown[1].startswith("Put it there by hand") and len(shown) == 2
    assert text.rstrip().endswith(shown[-1])


# -- 6. a checkpoint is what its name says ---------------------------------------------------------
def test_a_vit_named_cnn_is_refused_by_notebooks_and_evaluate(tmp_path, capsys):
    s = Session("smoke", tmp_path, device="cpu")
    vit = build_model("vit_scratch", embed_dim=48, depth=1, num_heads=3)
    save_checkpoint(s.dirs.checkpoint("cnn", "before_pruning"), vit)
    with pytest.raises(CheckpointError, match="named for 'cnn' \\(resnet18\\) but holds a vit_scratch"):
        s.load("cnn", "before_pruning")
    assert main(["evaluate", str(s.dirs.checkpoint("cnn", "before_pruning")), "--no-accuracy"]) == 1
    assert "named for 'cnn'" in capsys.readouterr().err
    save_checkpoint(s.dirs.checkpoint("vit_scratch", "before_pruning"), vit)
    with pytest.raises(CheckpointError, match="not a checkpoint this run .* recorded"):  # no record: not this run's
        s.load("vit_scratch", "before_pruning")
    s.save(vit, "vit_scratch", "before_pruning", {"accuracy": 0.1})
    model, ckpt = s.load("vit_scratch", "before_pruning")  # the right name, saved by the run, loads
    other = tmp_path / "my_experiment.pth"  # outside the course's names: no check
    save_checkpoint(other, vit)
    assert load_checkpoint(other)[1]["arch"] == "vit_scratch"


def test_a_checkpoint_its_record_does_not_name_is_refused(tmp_path, monkeypatch):
    """An interrupt between the checkpoint's write and its record's left new weights beside the old
    numbers, and a checkpoint copied from another run loaded without a word: the report then gave
    one model's accuracy for another's weights."""
    import shutil

    from labutils import session as session_module
    from labutils.artifacts import file_sha256, read_json
    from labutils.session import Session

    s = Session("smoke", tmp_path / "a", device="cpu", models=["cnn"])
    model = s.new_model("cnn")
    s.save(model, "cnn", "before_pruning", {"accuracy": 0.1})
    s.load("cnn", "before_pruning")  # its own: loads
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    real = session_module.write_json
    calls = []

    def interrupted(path, payload):
        calls.append(payload.get("produced"))
        if payload.get("produced"):  # the final record: the checkpoint is already replaced
            raise KeyboardInterrupt
        return real(path, payload)

    monkeypatch.setattr(session_module, "write_json", interrupted)
    with pytest.raises(KeyboardInterrupt):
        s.save(model, "cnn", "before_pruning", {"accuracy": 0.9})
    monkeypatch.setattr(session_module, "write_json", real)
    assert calls == [False, True]  # "not produced" first, then the checkpoint, then the record
    record = s.metrics("cnn", "before_pruning")
    assert record["produced"] is False and "its save did not finish" in record["reason"]
    assert not s.available("cnn")
    with pytest.raises(CheckpointError, match=r"not produced: its save did not finish"):
        s.load("cnn", "before_pruning")

    # The record of the first save beside the second checkpoint: the SHA-256 tells them apart.
    s.save(s.new_model("cnn"), "cnn", "before_pruning", {"accuracy": 0.1})
    kept = read_json(s.dirs.metrics_file("cnn", "before_pruning"))
    s.save(model, "cnn", "before_pruning", {"accuracy": 0.9})
    write_json(s.dirs.metrics_file("cnn", "before_pruning"), kept)
    assert file_sha256(s.dirs.checkpoint("cnn", "before_pruning")) != kept["checkpoint"]["sha256"]
    with pytest.raises(CheckpointError, match=r"is not the checkpoint cnn_before_pruning.json records .*replaced, "
                                              r"or its save was interrupted; run notebook 02 of this run again"):
        s.load("cnn", "before_pruning")

    # Both files copied from another run's folder: its record is another run's, and so is the checkpoint.
    other = Session("smoke", tmp_path / "b", device="cpu", models=["cnn"])
    for src, dst in ((s.dirs.checkpoint("cnn", "before_pruning"), other.dirs.checkpoint("cnn", "before_pruning")),
                     (s.dirs.metrics_file("cnn", "before_pruning"), other.dirs.metrics_file("cnn", "before_pruning"))):
        shutil.copy(src, dst)
    with pytest.raises(CheckpointError, match=f"its record cnn_before_pruning.json: run {s.run_id}'s"):
        other.load("cnn", "before_pruning")
    # The record made this run's by hand: the checkpoint still names the run that wrote it.
    record = read_json(other.dirs.metrics_file("cnn", "before_pruning"))
    record["run"]["run_id"] = other.run_id
    write_json(other.dirs.metrics_file("cnn", "before_pruning"), record)
    with pytest.raises(CheckpointError, match=f"was written by run {s.run_id}, not this run"):
        other.load("cnn", "before_pruning")


def test_metrics_that_are_tensors_or_numpy_numbers_are_saved_as_numbers(tmp_path):
    """(pred == y).float().mean() was refused with the text about NaN and a diverged training, and a
    numpy float with torch's wording about safe loads."""
    from labutils.session import Session

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    record = s.save(s.new_model("cnn"), "cnn", "before_pruning",
                    {"accuracy": torch.tensor([1.0, 0.0]).mean(), "test_loss": np.float64(0.5),
                     "n": np.int64(3), "history": [{"loss": torch.tensor(2.0)}]})
    assert record["accuracy"] == 0.5 and record["test_loss"] == 0.5 and record["n"] == 3
    assert record["history"] == [{"loss": 2.0}] and type(record["n"]) is int
    _, ckpt = s.load("cnn", "before_pruning")
    assert ckpt["metrics"]["accuracy"] == 0.5 and ckpt["metrics"]["test_loss"] == 0.5
    with pytest.raises(TypeError, match=r"nothing was saved\. Pass plain numbers \(x\.item\(\), float\(x\)\)") as info:
        s.save(s.new_model("cnn"), "cnn", "before_pruning", {"accuracy": torch.tensor([0.5, 0.5])})
    assert "diverged" not in str(info.value)


@pytest.mark.parametrize("name, stage", [("resnet", "before_pruning"), ("cnn", "before_prunning"),
                                         ("../../escape", "before_pruning"), ("cnn", "../x")])
def test_a_model_or_stage_no_notebook_reads_is_refused(tmp_path, name, stage):
    """'before_prunning' was written where no notebook reads it, '../../escape' outside the run."""
    from labutils.session import Session

    s = Session("smoke", tmp_path / "run", device="cpu", models=["cnn"])
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for call in (lambda: s.save(s.new_model("cnn"), name, stage, {"accuracy": 0.1}),
                 lambda: s.record_missing(name, stage, "why")):
        with pytest.raises(ValueError, match=r"unknown (model|stage) .*choose from .*nothing was written"):
            call()
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_a_lock_of_another_pid_namespace_is_not_taken_over_but_one_of_another_boot_is(tmp_path, capsys):
    """A container sharing the host's name (docker --network host) has its own PIDs: the holder's
    was not there, so a live run's lock was taken over."""
    from labutils import runlock

    if runlock.PID_NAMESPACE is None or runlock.BOOT_ID is None:
        pytest.skip("no /proc to tell PID namespaces and boots apart")
    lock = {"pid": 999_999_999, "host": socket.gethostname(), "run_id": "smoke-container", "token": "x",
            "started": "2020-01-01T00:00:00+00:00", "pid_ns": runlock.PID_NAMESPACE + 1, "boot_id": runlock.BOOT_ID}
    write_json(tmp_path / LOCK_NAME, lock)
    for attempt in (lambda: check_free(tmp_path), lambda: RunLock(tmp_path).__enter__()):
        with pytest.raises(RunLocked, match="a process in another PID namespace of this host .*cannot be checked"):
            attempt()
    assert json.loads((tmp_path / LOCK_NAME).read_text()) == lock
    write_json(tmp_path / LOCK_NAME, lock | {"pid": os.getpid(), "boot_id": "another-boot"})  # restarted since
    check_free(tmp_path)
    with RunLock(tmp_path) as taken:
        assert json.loads((tmp_path / LOCK_NAME).read_text())["token"] == taken.info["token"]
    assert "taking over the stale lock of run smoke-container" in capsys.readouterr().err


@pytest.mark.parametrize("pid", [0, -1])
def test_a_lock_with_a_pid_no_process_has_is_unreadable(tmp_path, pid):
    """psutil's ValueError ("pid must be a positive integer") came out of the notebook's Session."""
    write_json(tmp_path / LOCK_NAME, {"pid": pid, "host": socket.gethostname(), "run_id": "x",
                                      "started": "2020-01-01T00:00:00+00:00", "token": "x"})
    for attempt in (lambda: check_free(tmp_path), lambda: RunLock(tmp_path).__enter__()):
        with pytest.raises(RunLocked, match="exists but cannot be read; .*delete it"):
            attempt()


# -- 7. resume checks what it skips ----------------------------------------------------------
def _write_extras(out, *numbers):
    """What notebooks 05 and 06 leave besides metrics records: stand-ins, whole and readable."""
    if "05" in numbers:
        write_json(out / "report.json", {})
        write_json(out / "report_details.json", {})
    if "06" in numbers:
        write_json(out / "metrics" / "quantization.json", {})
        save_checkpoint(out / "models_saved" / "quantization" / "resnet20_baseline.pth", build_model("resnet20", width=4))


def _produce_cnn_outputs(out):
    """What 02-04 leave for a produced cnn: a record and a (stand-in, whole) checkpoint per stage."""
    for stage in ("before_pruning", "after_unstructured_pruning", "after_structured_pruning"):
        write_json(out / "metrics" / f"cnn_{stage}.json", {"produced": True})
        save_checkpoint(out / "models_saved" / f"cnn_{stage}.pth", build_model("resnet20", width=4))


def test_resume_runs_again_from_the_notebook_whose_checkpoint_is_gone(tmp_path, ran, capsys):
    out = tmp_path
    assert run(out, "--models", "cnn", "--notebooks", "01,02,03,04") == 0
    _produce_cnn_outputs(out)
    (out / "models_saved" / "cnn_after_unstructured_pruning.pth").unlink()
    ran.clear()
    capsys.readouterr()
    assert run(out, "--models", "cnn", "--resume") == 0
    assert ran == ALL_BOOKS[2:]
    printed = capsys.readouterr().out
    assert "cnn_after_unstructured_pruning.pth of 03_unstructured_pruning.ipynb is gone" in printed
    assert "2 notebook(s) already finished" in printed


@pytest.mark.parametrize("damaged, first", [("models_saved/cnn_after_structured_pruning.pth", 3),
                                            ("metrics/cnn_after_unstructured_pruning.json", 2),
                                            ("report.json", 4)])
def test_resume_runs_again_from_the_notebook_whose_output_is_damaged(tmp_path, ran, capsys, damaged, first):
    """A file cut short after it was written (a copy interrupted, a disk error) does not count as
    finished: a checkpoint without its zip directory, JSON that does not parse."""
    out = tmp_path
    assert run(out, "--models", "cnn", "--notebooks", "01,02,03,04,05") == 0
    _produce_cnn_outputs(out)
    _write_extras(out, "05")
    path = out / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    ran.clear()
    capsys.readouterr()
    assert run(out, "--models", "cnn", "--notebooks", "01,02,03,04,05", "--resume") == 0
    assert ran == ALL_BOOKS[first:5]
    assert f"{path.name} of {ALL_BOOKS[first]} is damaged: running again" in capsys.readouterr().out


def test_resume_with_vit_weights_after_02_went_without_them_says_they_are_not_used(tmp_path, ran, capsys):
    """01-02 ran offline, so the pretrained ViT was not produced; resumed with --vit-weights, 02 was
    skipped and the weights silently ignored."""
    import timm
    import torch

    weights = tmp_path / "w.pth"
    torch.save(timm.create_model("vit_tiny_patch16_224").state_dict(), weights)
    out = tmp_path / "run"
    assert run(out, "--models", "cnn,vit", "--notebooks", "01,02") == 0
    write_json(out / "metrics" / "cnn_before_pruning.json", {"produced": False})  # no checkpoint to find
    write_json(out / "metrics" / "vit_before_pruning.json", {"produced": False, "reason": "no weights"})
    capsys.readouterr()
    assert run(out, "--models", "cnn,vit", "--notebooks", "01,02", "--resume", "--vit-weights", str(weights)) == 0
    err = capsys.readouterr().err
    assert "warning: --vit-weights is not used: notebook 02 finished without the pretrained ViT" in err
    assert "run again without --resume, with the same options" in err
    write_json(out / "metrics" / "vit_before_pruning.json", {"produced": True})
    assert run(out, "--models", "cnn,vit", "--notebooks", "01,02", "--resume", "--vit-weights", str(weights)) == 0
    assert "--vit-weights is not used" not in capsys.readouterr().err  # 02 runs again (no checkpoint): used


@pytest.mark.parametrize("gone, first", [("metrics/cnn_after_structured_pruning.json", 3), ("report.json", 4),
                                         ("report_details.json", 4), ("metrics/quantization.json", 5),
                                         ("models_saved/quantization/resnet20_baseline.pth", 5)])
def test_resume_runs_again_from_the_notebook_whose_record_is_gone(tmp_path, ran, capsys, gone, first):
    """A metrics record, the report or its sidecar, the quantization study or its ResNet-20
    deleted: the notebook that wrote it runs again, and every later one (the sidecar and ResNet-20
    went unnoticed: check and the hand-in then lacked them)."""
    out = tmp_path
    assert run(out, "--models", "cnn") == 0
    for stage in ("before_pruning", "after_unstructured_pruning", "after_structured_pruning"):
        write_json(out / "metrics" / f"cnn_{stage}.json", {"produced": False})
    _write_extras(out, "05", "06")
    assert run(out, "--models", "cnn", "--resume") == 0  # nothing gone: nothing runs
    assert ran == ALL_BOOKS
    ran.clear()
    (out / gone).unlink()
    capsys.readouterr()
    assert run(out, "--models", "cnn", "--resume") == 0
    assert ran == ALL_BOOKS[first:]
    assert f"{gone.split('/')[-1]} of {ALL_BOOKS[first]} is gone" in capsys.readouterr().out


# -- 8. one-line errors for folders that cannot be written; nothing half-written --------------
def test_out_that_is_a_file_is_a_one_line_error(tmp_path, ran, capsys):
    (tmp_path / "file").write_text("mine")
    assert run(tmp_path / "file", "--notebooks", "01") == 1
    err = capsys.readouterr().err
    assert err == (f"error: the output folder {tmp_path / 'file'} cannot be used: {tmp_path / 'file'} is a file. "
                   f"Set OUT_DIR (--out) to a folder\n")
    assert run(tmp_path / "file" / "sub", "--notebooks", "01") == 1
    assert capsys.readouterr().err == (f"error: the output folder {tmp_path / 'file' / 'sub'} cannot be used: "
                                       f"{tmp_path / 'file'} is a file. Set OUT_DIR (--out) to a folder\n")
    assert (tmp_path / "file").read_text() == "mine"


def test_out_that_cannot_be_written_is_a_one_line_error(read_only_dir, ran, capsys):
    for out in (read_only_dir / "out", read_only_dir / "out" / "sub", read_only_dir):
        assert run(out, "--notebooks", "01") == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: cannot write into the output folder {out} (") and len(err.splitlines()) == 1
        assert "Read-only file system" in err or "Permission denied" in err
        assert err.endswith("): pass --out a folder you can write to\n")


def test_an_output_folder_refused_names_the_folder_not_the_locks_file(tmp_path, monkeypatch, ran, capsys):
    """--out /sys/kernel named the lock's temporary file (.labutils.lock.<hex>.tmp: Permission denied),
    and --out /proc/x (a folder that cannot be made) said "No such file or directory", neither with
    what to do. Refused here by a patched os.open and mkdir: chmod does not stop root."""
    real_open, real_mkdir = os.open, Path.mkdir

    def refuse(path, *args, **kwargs):
        if Path(path).parent == tmp_path:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    def cannot_make(self, *args, **kwargs):
        if self == tmp_path / "proc":
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    monkeypatch.setattr(Path, "mkdir", cannot_make)
    for out, cause in ((tmp_path, "Permission denied"), (tmp_path / "proc" / "x", "No such file or directory")):
        assert run(out, "--notebooks", "01") == 1
        assert capsys.readouterr().err == (f"error: cannot write into the output folder {out} ({cause}): "
                                           f"pass --out a folder you can write to\n")
    assert ran == []


def test_disk_full_is_one_line_and_keeps_earlier_files(tmp_path, monkeypatch, ran, capsys):
    import papermill

    assert run(tmp_path, "--notebooks", "01") == 0
    executed = tmp_path / "notebooks" / "01_data.ipynb"
    earlier = {p: p.read_bytes() for p in (executed, tmp_path / "metrics" / "pipeline.json")}

    def disk_full(src, dst, parameters, **kw):
        Path(dst).write_text('{"cells": [')  # half a notebook, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(papermill, "execute_notebook", disk_full)
    capsys.readouterr()
    assert run(tmp_path, "--notebooks", "01") == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write {executed}: No space left on device (") and "--resume" in err
    assert len(err.splitlines()) == 1
    assert executed.read_bytes() == earlier[executed]  # the earlier notebook, whole
    assert not list((tmp_path / "notebooks").glob(".*"))  # no half-written notebook
    json.loads((tmp_path / "metrics" / "pipeline.json").read_text())


def test_generated_data_is_written_atomically(tmp_path, monkeypatch):
    D.write_synthetic_cifar10(tmp_path, n_train=50, n_test=20, seed=0)
    folder = tmp_path / D.BATCH_DIR
    earlier = {p.name: p.read_bytes() for p in folder.iterdir()}
    real_dump = pickle.dump

    def dump(obj, f, protocol=None):
        if obj.get("batch_label", "").startswith("testing"):
            f.write(b"\x80\x04half")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_dump(obj, f, protocol=protocol)

    monkeypatch.setattr(pickle, "dump", dump)
    with pytest.raises(OSError, match="No space left"):
        D.write_synthetic_cifar10(tmp_path, n_train=50, n_test=20, seed=1)
    assert (folder / "test_batch").read_bytes() == earlier["test_batch"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(earlier)  # no temporary file left


def test_figures_are_written_atomically(tmp_path):
    import matplotlib.pyplot as plt

    from labutils.plots import finish

    path = tmp_path / "figures" / "03_study.png"
    finish(plt.figure(), path, caption="run one")
    earlier = path.read_bytes()
    assert earlier.startswith(b"\x89PNG")
    def disk_full_halfway(f, **kw):
        f.write(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device")

    fig = plt.figure()
    fig.savefig = disk_full_halfway
    with pytest.raises(OSError, match="No space left"):
        finish(fig, path, caption="run two")
    assert path.read_bytes() == earlier  # the earlier figure, whole
    assert [p.name for p in path.parent.iterdir()] == ["03_study.png"]  # no temporary file left
    plt.close("all")


def test_a_checkpoint_that_meets_a_full_disk_names_its_file_and_what_to_do(tmp_path, monkeypatch, capsys):
    """torch.save says only "unexpected pos 704 vs 598" (a RuntimeError) when the disk fills."""
    from labutils import artifacts
    from labutils.artifacts import WriteFailed
    from labutils.cli import describe_os_error

    real_fdopen = os.fdopen

    class FillsUp:  # a disk with room for 4 kB
        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, b):
            if self.n + len(b) > 4096:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.n += len(b)
            return self.f.write(b)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(artifacts.os, "fdopen", lambda fd, mode: FillsUp(real_fdopen(fd, mode)))
    path = tmp_path / "models_saved" / "cnn_before_pruning.pth"
    with pytest.raises(WriteFailed) as failed:
        save_checkpoint(path, build_model("resnet20", width=4))
    message = str(failed.value)
    assert message.startswith(f"cannot write {path}: No space left on device (") and "MiB left there)" in message
    assert "OUT_DIR" in message and "--resume" in message
    assert "unexpected pos" in str(failed.value.__cause__)  # torch's own words stay in the chain
    assert failed.value.errno == errno.ENOSPC and failed.value._render_traceback_() == [f"WriteFailed: {message}"]
    assert describe_os_error(failed.value, None) == message
    assert list(path.parent.iterdir()) == []  # no temporary file left

    with pytest.raises(RuntimeError, match="not a write error") as other:  # other failures pass unchanged
        artifacts.atomic_write_bytes(path, lambda f: (_ for _ in ()).throw(RuntimeError("not a write error")))
    assert type(other.value) is RuntimeError


# -- 9. files written with the process's umask ---------------------------------------------------
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        report = write_json(tmp_path / "report.json", {"a": 1})
        ckpt = save_checkpoint(tmp_path / "m.pth", build_model("resnet20", width=4))
        batches = D.write_synthetic_cifar10(tmp_path, n_train=20, n_test=10)
    finally:
        os.umask(previous)
    for path in (report, ckpt, batches / "test_batch"):
        assert path.stat().st_mode & 0o777 == mode, path


def _fake_notebooks(monkeypatch, interrupt=(), after_saving=False):
    """papermill replaced: each notebook writes the outputs --resume checks for (not-produced
    records, the report, the quantization metrics); a name in ``interrupt`` is Ctrl-C instead
    (``after_saving``: once it has written its stage's records)."""
    import papermill

    from labutils.course import MODEL_NAMES, STAGES

    ran = []

    def execute(src, dst, parameters, cwd, **kw):
        name = Path(src).name
        out = Path(cwd).parent
        stage = dict(zip(("02", "03", "04"), STAGES)).get(name[:2])
        if name[:2] in interrupt:
            for model in MODEL_NAMES if stage and after_saving else ():
                write_json(out / "metrics" / f"{model}_{stage}.json", {"produced": False})
            raise KeyboardInterrupt
        ran.append(name[:2])
        for model in MODEL_NAMES if stage else ():
            write_json(out / "metrics" / f"{model}_{stage}.json", {"produced": False})
        _write_extras(out, name[:2])
        nbformat.write(nbformat.v4.new_notebook(), dst)

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    return ran


def test_a_notebook_run_again_counts_as_finished_only_once_it_has(tmp_path, monkeypatch):
    """A later notebook run alone and interrupted (Ctrl-C, a GPU session ending) once it has saved
    a record is not recorded as finished from its earlier run; --resume then runs it again, and every
    notebook after it, whose outputs were made from the ones it replaces. (Interrupted before it
    replaced anything, the run stays as it was: tests/test_pipeline.py.)"""
    ran = _fake_notebooks(monkeypatch)
    assert run(tmp_path) == 0 and ran == ["01", "02", "03", "04", "05", "06"]
    _fake_notebooks(monkeypatch, interrupt=("03",), after_saving=True)
    assert run(tmp_path, "--notebooks", "03") == 130
    finished = json.loads((tmp_path / "metrics" / "pipeline.json").read_text())["finished"]
    assert [n[:2] for n in finished] == ["01", "02", "04", "05", "06"]
    ran = _fake_notebooks(monkeypatch)
    assert run(tmp_path, "--resume") == 0
    assert ran == ["03", "04", "05", "06"]
    summary = json.loads((tmp_path / "metrics" / "pipeline.json").read_text())
    assert [n[:2] for n in summary["finished"]] == ["01", "02", "03", "04", "05", "06"]


def test_an_interrupted_run_prints_the_command_that_continues_it(tmp_path, monkeypatch, capsys):
    """It said 'continue with --resume (and the same --out)': a run with --data-root and --notebooks,
    continued as told, was refused (another data copy) or ran every notebook after them."""
    import shlex

    from labutils.cli import main as cli_main

    _fake_notebooks(monkeypatch, interrupt=("02",))
    args = ["run", "--profile", "smoke", "--out", str(tmp_path / "my run"), "--notebooks", "01,02", "--seed", "3"]
    assert cli_main(args) == 130
    told = capsys.readouterr().err.strip().splitlines()[-1]
    prefix = "interrupted: continue this run with: python -m labutils "
    assert told.startswith(prefix) and "'" in told  # the folder's space quoted
    again = shlex.split(told.removeprefix(prefix))
    assert again == ["run", "--resume", "--profile", "smoke", "--out", str(tmp_path / "my run"), "--seed", "3",
                     "--notebooks", "01,02"]
    ran = _fake_notebooks(monkeypatch)
    assert cli_main(again) == 0 and ran == ["02"]  # as told: the run goes on where it stopped, and no further
    out = capsys.readouterr().out
    assert "open next:" in out and "the executed notebooks, to read or re-run:" in out


def test_resume_commands_survive_odd_values_and_a_report_is_named_only_when_the_run_made_it(tmp_path):
    import argparse
    import shlex

    from labutils.cli import build_parser, resume_command, what_to_open

    args = argparse.Namespace(out="-odd dir", data_root=None, vit_weights=None, device="auto", seed=0,
                              models=["cnn", "vit", "vit_scratch"], notebooks=None)
    again = shlex.split(resume_command(args, "cpu"))
    assert build_parser().parse_args(again[3:]).out == "-odd dir"  # --out=-odd dir, not a lost option
    (tmp_path / "report.json").write_text("{}")  # left by another run (the committed reference run)
    assert "report" not in what_to_open(tmp_path, report=False)
    assert f"the report: {tmp_path / 'report.json'}" in what_to_open(tmp_path, report=True)


def test_a_kernel_that_does_not_start_is_one_line_with_how_to_go_on(tmp_path, monkeypatch, capsys):
    import papermill

    def dies(*args, **kwargs):  # nbclient's error for a kernel that died while starting
        raise RuntimeError("Kernel died before replying to kernel_info")

    monkeypatch.setattr(papermill, "execute_notebook", dies)
    assert run(tmp_path, "--notebooks", "01") == 1
    err = capsys.readouterr().err
    assert "01_data.ipynb: its kernel did not start (Kernel died before replying to kernel_info)" in err
    assert "Traceback" not in err and "continue the run with: python -m labutils run --resume" in err


def test_kernels_print_plain_progress_but_the_caller_keeps_its_bars(tmp_path, monkeypatch):
    import papermill

    seen = []

    def execute(src, dst, parameters, **kw):
        seen.append(os.environ.get("LABUTILS_PLAIN_PROGRESS"))  # what a kernel started now inherits
        nbformat.write(nbformat.v4.new_notebook(), dst)

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    monkeypatch.delenv("LABUTILS_PLAIN_PROGRESS", raising=False)
    assert run(tmp_path, "--notebooks", "01") == 0
    assert seen == ["1"] and "LABUTILS_PLAIN_PROGRESS" not in os.environ


# -- 8. bad values are refused before the folder's run is touched -------------------------------
@pytest.mark.parametrize("option, message", [(["--device", "gpu"], "unknown DEVICE (--device) 'gpu'"),
                                             (["--device", "mps"], "MPS is not available"),
                                             (["--models", ","], "--models names no model"),
                                             (["--notebooks", ","], "--notebooks names no notebook"),
                                             (["--notebooks", " "], "--notebooks names no notebook"),
                                             (["--vit-weights", "no_such_file.pth"], "which does not exist: check the path"),
                                             # checked though no vit runs: it was accepted without a word
                                             (["--models", "cnn", "--vit-weights", "no_such_file.pth"],
                                              "which does not exist: check the path"),
                                             (["--seed", "-1"], "--seed: SEED = -1: use a whole number from 0 to")])
def test_a_bad_option_leaves_the_folders_run_as_it_was(tmp_path, ran, capsys, option, message):
    """A bad --device failed in notebook 01 after the run had been replaced: a new run id, nothing
    finished, so --resume would have started over."""
    assert run(tmp_path, "--notebooks", "01,02") == 0
    before = (tmp_path / "metrics" / "pipeline.json").read_text()
    capsys.readouterr()
    assert run(tmp_path, *option) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert (tmp_path / "metrics" / "pipeline.json").read_text() == before
    assert ran == ["01_data.ipynb", "02_baseline_training.ipynb"]


def test_smoke_is_synthetic_whatever_data_folder_is_named(tmp_path, synthetic_root, capsys):
    """--data-root reached smoke's notebooks only when it was not the default folder, so the same
    data read as synthetic or as CIFAR-10 depending on how its path was spelled."""
    out = tmp_path / "out"
    s = Session("smoke", out, synthetic_root, device="cpu")
    assert s.data_root == (out / "data-synthetic").resolve()
    assert "DATA_ROOT is not used" in capsys.readouterr().out
    assert "DATA_ROOT" not in pipeline.injected_parameters(out, "smoke", synthetic_root)
    assert pipeline.injected_parameters(out, "cpu", synthetic_root)["DATA_ROOT"]


def test_a_session_of_another_profile_does_not_take_over_the_folders_run(tmp_path):
    first = Session("smoke", tmp_path, device="cpu").run_id
    with pytest.raises(ValueError, match=f"holds run {first} made with PROFILE = 'smoke', not 'cpu': set PROFILE = 'smoke'"):
        Session("cpu", tmp_path, device="cpu")
    assert Session("smoke", tmp_path, device="cpu").run_id == first


def test_a_damaged_record_is_named(tmp_path, ran, capsys):
    assert run(tmp_path, "--notebooks", "01") == 0
    (tmp_path / "metrics" / "pipeline.json").write_text("{\"run_id\": ")
    capsys.readouterr()
    assert run(tmp_path, "--resume") == 1
    assert f"{tmp_path / 'metrics' / 'pipeline.json'} is not valid JSON" in capsys.readouterr().err


def test_evaluate_refuses_a_bad_device_or_an_unwritable_json_before_measuring(read_only_dir, tmp_path, capsys,
                                                                               monkeypatch):
    """Both were tracebacks; the unwritable --json one came after every measurement was done."""
    import labutils.evaluate

    model = tmp_path / "m.pth"
    save_checkpoint(model, build_model("vit_scratch", embed_dim=48, depth=1, num_heads=3))
    with monkeypatch.context() as refusing:  # any measurement before the refusal fails the test
        refusing.setattr(labutils.evaluate, "evaluate_each",
                         lambda *args, **kw: pytest.fail("evaluate measured before refusing"))
        assert main(["evaluate", str(model), "--no-accuracy", "--device", "gpu"]) == 2
        assert "unknown DEVICE (--device) 'gpu'" in capsys.readouterr().err
        assert main(["evaluate", str(model), "--no-accuracy", "--json", str(read_only_dir / "r.json")]) == 2
        out = capsys.readouterr()
        assert "cannot write" in out.err and "[1/" not in out.err
        assert main(["evaluate", str(model), "--no-accuracy", "--json", str(tmp_path)]) == 2  # a folder
        out = capsys.readouterr()
        assert f"cannot write {tmp_path}: it is a folder; give a file name" in out.err and "[1/" not in out.err
    assert main(["evaluate", str(model), "--no-accuracy", "--json", str(tmp_path / "new" / "r.json")]) == 0
    assert (tmp_path / "new" / "r.json").is_file()  # a folder that does not exist yet is made, as before


def test_each_command_lists_its_exit_statuses_and_returns_them(tmp_path, capsys):
    """check's help and README said "1 when a check fails, else 0", though check exits 2 for a folder it
    refuses, and README listed only run's 143; evaluate's and check's --device had no help."""
    for command in ("run", "evaluate", "check", "results-table"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        shown = capsys.readouterr().out
        assert "exit status: 0 " in shown and (command == "results-table" or "cuda:1, mps" in shown)
    readme = (ROOT / "README.md").read_text()
    assert all(f"- `{status}`: " in readme for status in (0, 1, 2, 130, 143))  # 0, 130, 143: tested elsewhere
    assert main(["check", str(tmp_path)]) == 1  # a check failed: no report.json
    assert main(["check", str(tmp_path / "nope")]) == 2
    assert main(["check", str(tmp_path), "--device", "gpu"]) == 2
    assert main(["results-table", "--root", str(tmp_path)]) == 1
    assert main(["run", "--profile", "smoke", "--out", str(tmp_path / "run"), "--resume"]) == 1  # no run to continue
    assert main(["run", "--profile", "smoke", "--out", str(tmp_path / "run"), "--seed", "-1"]) == 2


def test_check_says_data_root_is_not_used_without_measure(tmp_path, capsys):
    """It was ignored without a word, as if the checkpoints had been measured on it."""
    assert main(["check", str(tmp_path), "--data-root", str(tmp_path / "nope")]) == 1
    assert "note: --data-root is read only with --measure; it is not used" in capsys.readouterr().err
    # evaluate's likewise with --no-accuracy (review); the missing file still fails as before
    assert main(["evaluate", str(tmp_path / "none.pth"), "--no-accuracy", "--data-root", str(tmp_path / "nope")]) == 1
    assert "note: --data-root is read only for the accuracy; with --no-accuracy it is not used" in capsys.readouterr().err


def test_uncommitted_changes_to_labutils_are_part_of_the_commit_a_run_records(tmp_path, monkeypatch):
    """A recipe edited in profiles.py and not committed ran under the commit's name: the report
    said 9e6b346edc4a, whose recipe it was not. Edited notebooks do not count: a full run writes
    the repository's own."""
    from labutils import pipeline
    from labutils.artifacts import UNCOMMITTED
    from tiny import committed_repo

    monkeypatch.delenv("LABUTILS_GIT_COMMIT", raising=False)
    committed_repo(tmp_path, ("labutils", "notebooks"))
    commit = git_commit.__wrapped__(tmp_path)  # not the cached value of this checkout
    assert commit and not commit.endswith(UNCOMMITTED)
    (tmp_path / "notebooks" / "f.txt").write_text("executed")
    (tmp_path / "labutils" / "new.py").write_text("untracked")
    assert git_commit.__wrapped__(tmp_path) == commit
    (tmp_path / "labutils" / "f.txt").write_text("edited")
    edited = git_commit.__wrapped__(tmp_path)
    assert edited.startswith(commit + UNCOMMITTED + ".") and len(edited) == len(commit + UNCOMMITTED) + 9
    assert git_commit.__wrapped__(tmp_path) == edited  # the same edit, the same code
    (tmp_path / "labutils" / "f.txt").write_text("edited otherwise")  # another edit: another code
    other = git_commit.__wrapped__(tmp_path)
    assert other.startswith(commit + UNCOMMITTED) and other != edited
    said = pipeline._option("git_commit", edited)
    assert f"commit {commit} with the same uncommitted changes" in said and edited[-8:] in said
    assert "commit or stash" in pipeline._option("git_commit", commit)


def test_the_edit_fingerprint_is_the_same_whatever_the_users_git_config(tmp_path, monkeypatch):
    """diff.noprefix or color.diff=always changed the diff's text, so the same edit ran as another
    code on a machine configured otherwise, and --resume refused it."""
    from tiny import committed_repo

    monkeypatch.delenv("LABUTILS_GIT_COMMIT", raising=False)
    committed_repo(tmp_path, ("labutils",))
    (tmp_path / "labutils" / "f.txt").write_text("edited")
    plain = git_commit.__wrapped__(tmp_path)
    for key, value in (("diff.noprefix", "true"), ("color.diff", "always"), ("color.ui", "always")):
        subprocess.run(["git", "config", key, value], cwd=tmp_path, check=True)
        assert git_commit.__wrapped__(tmp_path) == plain, key


def test_a_metrics_record_that_cannot_be_written_saves_no_checkpoint(tmp_path):
    """A NaN loss (a diverged training) failed the metrics write after the checkpoint's, leaving a
    checkpoint without its record, and an error naming neither file nor cause."""
    from labutils.session import Session

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    with pytest.raises(ValueError, match="cnn's before_pruning metrics cannot be written .*nothing was saved"):
        s.save(s.new_model("cnn"), "cnn", "before_pruning", {"accuracy": 0.1, "test_loss": float("nan")})
    assert not list(s.dirs.models.glob("*.pth")) and not s.dirs.metrics_file("cnn", "before_pruning").exists()
    with pytest.raises(ValueError, match=r"cannot write .*x\.json: it would hold NaN or an infinity"):
        write_json(tmp_path / "x.json", {"loss": float("inf")})


def test_a_file_system_that_refuses_modes_still_takes_the_write(tmp_path, monkeypatch):
    """vfat or some SMB mounts refuse chmod: every checkpoint and JSON write failed on it."""
    from labutils import artifacts

    def refuse(*a):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(artifacts.os, "fchmod", refuse)
    write_json(tmp_path / "a.json", {"v": 1})
    assert json.loads((tmp_path / "a.json").read_text()) == {"v": 1} and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_lock_that_cannot_be_written_is_not_left_behind(tmp_path, monkeypatch):
    """On a full disk the lock file was created empty and stayed: every later run was refused
    ("exists but cannot be read") after space was freed."""
    real_fdopen = os.fdopen

    def full_disk(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        f.write = lambda text: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device"))
        return f

    monkeypatch.setattr(os, "fdopen", full_disk)
    with pytest.raises(OSError, match="No space left"):
        RunLock(tmp_path).__enter__()
    monkeypatch.setattr(os, "fdopen", real_fdopen)
    assert list(tmp_path.iterdir()) == []  # neither the lock nor its temporary file
    with RunLock(tmp_path):  # space freed: the next run takes the folder
        assert (tmp_path / LOCK_NAME).exists()


def test_a_checkpoint_write_that_fails_keeps_the_earlier_model_and_its_record(tmp_path, monkeypatch):
    """The record was marked not produced before the checkpoint's write; a full disk then left the
    earlier, whole checkpoint counted as not produced (diff review)."""
    import errno

    from labutils import Session
    from labutils import session as S
    from labutils.artifacts import WriteFailed
    from labutils.errors import SettingsError

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    model = s.new_model("cnn")
    earlier = s.save(model, "cnn", "before_pruning", {"accuracy": 0.5})

    def full(path, *args, **kwargs):
        raise WriteFailed(OSError(errno.ENOSPC, "No space left on device"), path)

    monkeypatch.setattr(S, "save_checkpoint", full)
    with pytest.raises(WriteFailed, match="No space left"):
        s.save(model, "cnn", "before_pruning", {"accuracy": 0.6})
    assert s.metrics("cnn", "before_pruning") == earlier and s.available("cnn")
    monkeypatch.undo()
    monkeypatch.setattr("tempfile.mkstemp", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(SettingsError) as info:
        Session("smoke", tmp_path / "other", device="cpu")
    assert "No space left on device" in str(info.value) and "folder you can write to" not in str(info.value)


def test_the_full_profile_on_a_partial_copy_says_so(tmp_path, capsys):
    """A 10,000 / 2,000 copy ran as "profile full" (all of CIFAR-10) with no sign it used a fifth of
    the data; a toy full run on synthetic images (test_full_profile.py) still runs, without the note.
    The data description stays the same whether or not the images were read: records written
    before and after would otherwise name two datasets, and notebook 05 see two runs."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(70, 3, 32, 32), dtype=np.uint8)
    D.write_cifar10(tmp_path / "copy", images[:50], np.arange(50) % 10, images[50:], np.arange(20) % 10,
                    name="cifar10")
    s = Session("full", tmp_path / "out", data_root=tmp_path / "copy", device="cpu")
    before = s.data_description
    capsys.readouterr()
    images, _ = s.arrays(False)
    assert len(images) == 20 and len(s.arrays(True)[0]) == 50  # refused not: trained and scored on
    out = capsys.readouterr().out
    folder = tmp_path / "copy" / D.BATCH_DIR
    assert out.count("note: ") == 2 and (f"note: the full profile uses all 10,000 test images of CIFAR-10, but "
                                         f"{folder} holds 20: this run is on a partial copy") in out
    assert f"uses all 50,000 training images of CIFAR-10, but {folder} holds 50" in out
    assert s.data_description == before == s.info["data"]
    D.write_synthetic_cifar10(tmp_path / "synthetic", n_train=50, n_test=20)
    toy = Session("full", tmp_path / "out2", data_root=tmp_path / "synthetic", device="cpu")
    capsys.readouterr()  # its note on the full profile on a CPU
    toy.arrays(True), toy.arrays(False)
    assert "note: " not in capsys.readouterr().out and toy.data_description == D.SYNTHETIC
