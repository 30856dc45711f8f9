"""A notebook's parameters cell is where students type: every value that cannot work is refused by
the Session (or the lab's first cell) with a message naming the parameter, before any folder or file
is written, and a folder keeps holding one run."""
import json
import os
import re
import socket
import subprocess
import sys

import nbformat
import numpy as np
import pytest
import torch

from labutils import data as D
from labutils import pipeline
from labutils.artifacts import REPO_ROOT, read_json, write_json
from labutils.errors import SettingsError
from labutils.labs import baseline, unstructured
from labutils.models import PretrainedWeightsUnavailable
from labutils.runlock import RUN_TOKEN_ENV, RunLock, RunLocked, check_free
from labutils.session import Session


@pytest.mark.parametrize("seed", ["1", -1, 1.5, True, 2**32])
def test_a_seed_numpy_cannot_take_is_refused_before_any_folder_exists(tmp_path, seed):
    with pytest.raises(SettingsError, match=r"SEED = .*whole number from 0 to 4294967295"):
        Session("smoke", tmp_path / "out", device="cpu", seed=seed)
    assert not (tmp_path / "out").exists()


def test_a_profile_typo_is_one_line_naming_the_parameter(tmp_path):
    with pytest.raises(SettingsError, match=r"unknown PROFILE \(--profile\) 'smok'") as err:
        Session("smok", tmp_path / "out", device="cpu")
    assert len(err.value._render_traceback_()) == 1 and not (tmp_path / "out").exists()


@pytest.mark.parametrize("profile", [["smoke"], {"smoke"}, None])
def test_a_profile_that_is_not_a_string_is_one_line_naming_the_parameter(tmp_path, profile):
    """PROFILE = ["smoke"] gave a bare TypeError: unhashable type: 'list'."""
    with pytest.raises(SettingsError, match=rf"^PROFILE \(--profile\) = {re.escape(repr(profile))}: give one "
                                            r"profile's name as a string, one of \['cpu', 'full', 'smoke'\]") as err:
        Session(profile, tmp_path / "out", device="cpu")
    assert len(err.value._render_traceback_()) == 1 and not (tmp_path / "out").exists()


def test_the_report_of_a_folder_without_a_run_points_at_out_dir_and_writes_nothing(tmp_path, monkeypatch):
    """An executed notebook 05 re-run from another folder reads OUT_DIR = ".." from there: it must
    say so, and leave no run.json that would tie that folder to its profile and seed."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError, match=r"OUT_DIR .*elsewhere holds no run \(no metrics/run.json\): set OUT_DIR "
                                            r"to the folder of a run \(a relative one is read from the working "
                                            r"folder, .*\), or run notebooks 01 and 02 there first") as err:
        Session("smoke", "elsewhere", device="cpu", start_run=False)
    assert len(err.value._render_traceback_()) == 1 and not (tmp_path / "elsewhere").exists()


def test_the_report_of_an_absolute_folder_without_a_run_does_not_talk_of_relative_paths(tmp_path):
    with pytest.raises(SettingsError, match=r"holds no run \(no metrics/run.json\): set OUT_DIR to the folder of "
                                            r"a run, or run notebooks 01 and 02 there first$"):
        Session("smoke", tmp_path / "empty", device="cpu", start_run=False)
    assert not (tmp_path / "empty").exists()


def test_an_empty_out_dir_without_a_run_says_it_follows_profile(tmp_path, monkeypatch):
    """PROFILE = "smoke" set in notebooks 01-02 and not in 03: OUT_DIR "" looked in another
    profile's folder, and the message spoke of OUT_DIR only."""
    import labutils.session as session_module

    monkeypatch.setattr(session_module, "resolve_out_dir", lambda profile, out=None: tmp_path / "runs" / profile)
    with pytest.raises(SettingsError, match=r"there first; an empty OUT_DIR is the cpu profile's folder: set "
                                            r"PROFILE as the run's notebooks 01 and 02 had it$"):
        Session("cpu", "", device="cpu", start_run=False)


def test_the_report_of_a_run_without_metrics_points_at_out_dir(tmp_path, monkeypatch):
    from labutils.labs import report

    monkeypatch.chdir(tmp_path)
    Session("smoke", "elsewhere", device="cpu")  # notebook 01 ran there, nothing else
    with pytest.raises(report.ReportError, match=r"holds no metrics of notebooks 02-04 for cnn, vit, vit_scratch: "
                                                 r"if the run is elsewhere, set OUT_DIR") as err:
        report.load_run(Session("smoke", "elsewhere", device="cpu", start_run=False))
    assert len(err.value._render_traceback_()) == 1


def test_the_report_of_a_pipeline_run_takes_that_runs_models(tmp_path):
    """Notebook 05 by hand with a MODELS that leaves out a model the pipeline ran: that model
    would read as left out of the run."""
    from labutils.artifacts import write_json
    from labutils.labs import report

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    write_json(s.dirs.metrics / "pipeline.json", {"run_id": s.run_id, "models": ["cnn", "vit_scratch"]})
    with pytest.raises(report.ReportError, match=r"was made for MODELS = \['cnn', 'vit_scratch'\] \(its "
                                                 r"metrics/pipeline.json\), but MODELS leaves out "
                                                 r"vit_scratch: add it to MODELS"):
        report.load_run(Session("smoke", tmp_path, device="cpu", models=["cnn"], start_run=False))
    # More models than the pipeline's: narrowed to the run's (see the next test), not refused.
    with pytest.raises(report.ReportError, match="holds no metrics of notebooks 02-04 for cnn, vit_scratch:"):
        report.load_run(Session("smoke", tmp_path, device="cpu", start_run=False))


def test_the_report_of_a_run_made_by_hand_takes_the_models_it_trained(tmp_path):
    """Without the pipeline's pipeline.json, notebook 05 with MODELS = ["cnn"] reported a trained
    vit_scratch as "not in this run" (interactive review)."""
    from labutils.labs import report

    s = Session("smoke", tmp_path, device="cpu", models=["cnn", "vit_scratch"])
    for name in ("cnn", "vit_scratch"):
        s.record_missing(name, "before_pruning", "stand-in for a trained baseline")
    with pytest.raises(report.ReportError, match=r"notebook 02 of run .* recorded vit_scratch \(trained, or not "
                                                 r"produced and why\), but MODELS leaves it out: add it to MODELS"):
        report.load_run(Session("smoke", tmp_path, device="cpu", models=["cnn"], start_run=False))


def test_the_report_says_when_its_records_come_from_different_code(tmp_path, capsys):
    """A notebook re-run by hand after an edit of labutils is allowed into the run, but the report
    said nothing of the mix (left open in the last note)."""
    from labutils.artifacts import read_json, write_json
    from labutils.labs import report

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    s.record_missing("cnn", "before_pruning", "stand-in")
    s.record_missing("cnn", "after_unstructured_pruning", "stand-in")
    path = s.dirs.metrics_file("cnn", "after_unstructured_pruning")
    record = read_json(path)
    record["run"]["git_commit"] = "0123456789ab+changes.feedf00d"
    write_json(path, record)
    records, run = report.load_run(Session("smoke", tmp_path, device="cpu", models=["cnn"], start_run=False))
    out = capsys.readouterr().out
    assert "note: these metrics were written by 2 versions of the code" in out
    assert "0123456789ab+changes.feedf00d: cnn_after_unstructured_pruning" in out
    details = report.build_details(records, run)
    assert details["entries"]["cnn_after_unstructured_pruning"]["git_commit"] == "0123456789ab+changes.feedf00d"


def test_the_report_narrows_models_to_the_runs_own(tmp_path, capsys):
    """The committed notebook 05 of a --models cnn run lists all three models in its parameters
    cell: re-run, it must report the others as not in this run, not as failures; a model trained
    by hand beside the pipeline's stays in."""
    from labutils.artifacts import write_json
    from labutils.labs import report

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    run = {"run_id": s.run_id, "profile": "smoke", "data": "d", "device": "cpu", "git_commit": "x", "seed": 0}
    write_json(s.dirs.metrics / "pipeline.json", {"run_id": s.run_id, "models": ["cnn"]})
    write_json(s.dirs.metrics_file("cnn", "before_pruning"), {"produced": True, "accuracy": 0.5, "run": run})
    again = Session("smoke", tmp_path, device="cpu", start_run=False)
    records, _ = report.load_run(again)
    assert again.models == ["cnn"] and "vit, vit_scratch left out, as not in this run" in capsys.readouterr().out
    assert records["vit_scratch", "before_pruning"]["reason"] == "not in this run: its models are cnn"
    write_json(s.dirs.metrics_file("vit_scratch", "before_pruning"), {"produced": True, "accuracy": 0.4, "run": run})
    again = Session("smoke", tmp_path, device="cpu", start_run=False)
    records, _ = report.load_run(again)
    assert again.models == ["cnn", "vit_scratch"] and records["vit_scratch", "before_pruning"]["produced"]


def test_a_bad_device_is_refused_before_any_folder_exists(tmp_path):
    with pytest.raises(SettingsError, match=r"unknown DEVICE \(--device\) 'gpu'"):
        Session("smoke", tmp_path / "out", device="gpu")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("models, message", [("cnn", r"use a list of course models"),
                                             ("cnn,vit", r"is a string: .*\['cnn', 'vit'\] \(with papermill: "
                                                         r"-y \"MODELS: \[cnn, vit\]\"\)"),
                                             ([], "it names no model"),
                                             (["cnn", "resnet"], r"unknown \['resnet'\]")])
def test_models_that_are_not_a_list_of_course_models_are_refused(tmp_path, models, message):
    with pytest.raises(SettingsError, match=message):
        Session("smoke", tmp_path / "out", device="cpu", models=models)
    assert not (tmp_path / "out").exists()


def test_models_are_kept_in_order_once_each(tmp_path):
    assert Session("smoke", tmp_path, device="cpu", models=("vit_scratch", "cnn", "vit_scratch")).models == [
        "vit_scratch", "cnn"]


def test_another_seed_does_not_continue_the_folders_run(tmp_path):
    """Notebook 02 run again with SEED = 1 would have paired new baselines with the old pruned models."""
    first = Session("smoke", tmp_path, device="cpu", seed=0).run_id
    assert read_json(tmp_path / "metrics" / "run.json")["seed"] == 0
    with pytest.raises(SettingsError, match=f"holds run {first} made with SEED = 0, not 1: set SEED = 0"):
        Session("smoke", tmp_path, device="cpu", seed=1)
    assert Session("smoke", tmp_path, device="cpu", seed=0).run_id == first


def test_notebooks_run_alone_by_the_pipeline_with_another_seed_are_refused(tmp_path, monkeypatch, capsys):
    import papermill
    from labutils.artifacts import write_json
    from labutils.cli import main

    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("a notebook ran"))
    s = Session("smoke", tmp_path, device="cpu", seed=0)  # notebooks 01-02 by hand
    write_json(s.dirs.metrics_file("cnn", "before_pruning"), {"produced": True, "run": {"run_id": s.run_id}})
    assert main(["run", "--profile", "smoke", "--out", str(tmp_path), "--notebooks", "03", "--seed", "1"]) == 1
    assert "made with SEED = 0, not 1: set SEED = 0 (--seed)" in capsys.readouterr().err


def test_home_is_expanded_in_out_dir_and_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    s = Session("cpu", "~/run", "~/data", device="cpu")
    assert s.dirs.root == tmp_path / "run" and s.data_root == tmp_path / "data"
    assert not any(p.name == "~" for p in tmp_path.rglob("*"))


def test_an_out_dir_that_is_a_file_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("mine")
    with pytest.raises(SettingsError, match=r"file is a file\. Set OUT_DIR"):
        Session("smoke", tmp_path / "file" / "run", device="cpu")
    assert (tmp_path / "file").read_text() == "mine"


def test_an_out_dir_that_cannot_be_written_is_one_clear_error(read_only_dir):
    with pytest.raises(SettingsError, match=r"cannot create the run's folders in .*: set OUT_DIR"):
        Session("smoke", read_only_dir / "run", device="cpu")


def test_errors_that_say_what_to_do_are_shown_without_a_traceback():
    assert SettingsError("SEED = -1: use ...")._render_traceback_() == ["SettingsError: SEED = -1: use ..."]
    assert RunLocked("busy")._render_traceback_() == ["RunLocked: busy"]
    assert PretrainedWeightsUnavailable("no")._render_traceback_() == ["PretrainedWeightsUnavailable: no"]


def test_a_relative_out_dir_that_starts_a_new_run_says_where(tmp_path, monkeypatch, capsys):
    """An executed notebook re-run from another folder (papermill without --cwd) reads OUT_DIR = ".."
    from there: it would start a new run elsewhere without a word."""
    monkeypatch.chdir(tmp_path)
    Session("smoke", "runs/mine", device="cpu")
    assert f"a new run starts in {tmp_path / 'runs' / 'mine'}" in capsys.readouterr().out
    Session("smoke", "runs/mine", device="cpu")
    assert "new run" not in capsys.readouterr().out


# -- one run at a time ------------------------------------------------------------------------
def test_a_notebook_is_refused_while_another_run_writes_the_folder(tmp_path, monkeypatch):
    with RunLock(tmp_path) as lock:
        lock.name_run("smoke-running")
        with pytest.raises(RunLocked, match="being written by run smoke-running"):
            Session("smoke", tmp_path, device="cpu")
        monkeypatch.setenv(RUN_TOKEN_ENV, lock.info["token"])  # the run's own kernels carry its token
        Session("smoke", tmp_path, device="cpu")


def test_a_notebook_run_with_other_code_into_a_pipeline_run_says_so(tmp_path, monkeypatch, capsys):
    """Notebook 04 run by hand with edited labutils into a run the pipeline made from a clean commit
    wrote records of another code, silently (instructor review)."""
    from labutils import session as session_module

    s = Session("smoke", tmp_path, device="cpu")
    write_json(s.dirs.metrics / "pipeline.json", {"run_id": s.run_id, "git_commit": "9ea14151ae9f"})
    monkeypatch.setattr(session_module, "git_commit", lambda: "9ea14151ae9f")
    capsys.readouterr()
    Session("smoke", tmp_path, device="cpu", start_run=False)
    assert "made with the code of commit" not in capsys.readouterr().out  # the same code: nothing to say
    monkeypatch.setattr(session_module, "git_commit", lambda: "9ea14151ae9f+changes.3fa2b1c0")
    Session("smoke", tmp_path, device="cpu", start_run=False)
    out = capsys.readouterr().out
    assert "made with the code of commit 9ea14151ae9f; this kernel's labutils is 9ea14151ae9f+changes.3fa2b1c0" in out


def test_a_stale_lock_does_not_stop_a_notebook(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with RunLock(tmp_path) as lock:
        lock.info["pid"] = dead.pid
        lock.name_run("smoke-killed")
        Session("smoke", tmp_path, device="cpu")


def test_a_live_lock_without_a_token_still_stops_a_notebook(tmp_path, monkeypatch):
    """Outside the pipeline no token is set: a lock that names none (written by hand, or by an
    older version) matched it, None == None, and the folder counted as the notebook's own."""
    monkeypatch.delenv(RUN_TOKEN_ENV, raising=False)
    (tmp_path / ".labutils.lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    with pytest.raises(RunLocked, match="is being written by"):
        check_free(tmp_path)


def test_a_notebook_left_open_stops_writing_once_another_run_takes_its_folder(tmp_path, monkeypatch):
    """The lock and the run id were checked when the Session was made, not when it saved: a
    notebook left open trained and saved into a folder a pipeline run had taken meanwhile, and
    notebook 05 later found two runs (interactive review)."""
    from labutils.artifacts import record_run

    monkeypatch.delenv(RUN_TOKEN_ENV, raising=False)
    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    model = s.new_model("cnn")
    with RunLock(tmp_path) as lock:  # a pipeline run holds the folder now
        lock.info["token"] = "the pipeline's"
        lock.name_run("smoke-pipeline")
        with pytest.raises(RunLocked, match="is being written by run smoke-pipeline"):
            s.save(model, "cnn", "before_pruning", {"accuracy": 0.5})
        with pytest.raises(RunLocked, match="is being written by run smoke-pipeline"):
            s.figure("01_samples.png")  # a figure the pipeline's notebook 01 writes too
        record_run(s.dirs.metrics, "smoke-pipeline", "smoke", 0)
    from labutils.labs import quantization
    for write in (lambda: s.save(model, "cnn", "before_pruning", {"accuracy": 0.5}),
                  lambda: s.figure("03_study.png"),
                  lambda: s.record_missing("cnn", "after_structured_pruning", "why"),
                  lambda: s.add_to_record("cnn", "after_unstructured_pruning", {"latency": {}}),  # notebook 03's later cells
                  lambda: quantization.write_results(s, {}, {})):  # notebook 06's results file
        with pytest.raises(SettingsError, match=f"now holds run smoke-pipeline, not run {s.run_id} of this notebook's"):
            write()
    assert not list(s.dirs.metrics.glob("cnn_*.json")) and not list(s.dirs.models.glob("*.pth"))
    assert not (s.dirs.metrics / "quantization.json").exists()


def test_the_notebooks_write_their_figures_where_the_session_checks_the_folder_first():
    """Figures went to ``s.dirs.figure(...)``, checked by nobody: a notebook left open drew over
    the pipeline's figures, with its own run's caption (review, reproduced)."""
    for notebook in sorted((REPO_ROOT / "notebooks").glob("*.ipynb")):
        code = "".join("".join(c["source"]) for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code")
        assert "dirs.figure(" not in code, notebook.name
        assert "path=s.figure(" in code or "path=" not in code, notebook.name


def test_runs_of_any_seed_get_the_same_synthetic_images(tmp_path):
    """The smoke profile's data was written with the run's seed: seeds 0 and 1 trained and scored
    on different images, against the README's promise."""
    a, b = (Session("smoke", tmp_path / f"run{seed}", device="cpu", seed=seed) for seed in (0, 1))
    for train in (True, False):
        assert all(np.array_equal(x, y) for x, y in zip(a.arrays(train), b.arrays(train)))


def test_the_pipelines_own_notebooks_may_write_the_folder_it_locks(tmp_path, monkeypatch):
    import papermill
    from labutils.cli import main

    def execute(src, dst, parameters, **kw):
        check_free(tmp_path)  # what each notebook's Session checks
        nbformat.write(nbformat.v4.new_notebook(), dst)

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    assert main(["run", "--profile", "smoke", "--out", str(tmp_path), "--notebooks", "01"]) == 0


# -- a baseline trained again outdates what was made from it ------------------------------------
def test_what_is_measured_after_a_save_joins_only_the_record_of_that_checkpoint(tmp_path):
    """Notebook 04 times its model after the save: a model saved again meanwhile (another kernel)
    would have the first model's timing written beside its own numbers."""
    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    model, stage = s.new_model("cnn"), "after_structured_pruning"
    first = s.save(model, "cnn", stage, {"accuracy": 0.5})["checkpoint"]["sha256"]
    added = s.add_to_record("cnn", stage, {"latency": {"cpu": np.float64(1.5)}}, first)
    assert added["latency"] == {"cpu": 1.5} and read_json(s.dirs.metrics_file("cnn", stage)) == added
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    s.save(model, "cnn", stage, {"accuracy": 0.4})  # saved again in another kernel
    with pytest.raises(SettingsError, match="no longer records the model this cell saved"):
        s.add_to_record("cnn", stage, {"latency": {"cpu": 9.9}}, first)
    assert "latency" not in read_json(s.dirs.metrics_file("cnn", stage))


def test_a_baseline_saved_again_outdates_the_later_notebooks_for_resume(tmp_path):
    s = Session("smoke", tmp_path, device="cpu")
    books = [p.name for p in pipeline.available_notebooks().values()]
    write_json(s.dirs.metrics / "pipeline.json", {"run_id": s.run_id, "finished": books, "notebooks": {}})
    model = s.new_model("cnn")
    s.save(model, "cnn", "after_structured_pruning", {"accuracy": 0.5})
    assert read_json(s.dirs.metrics / "pipeline.json")["finished"] == [b for b in books if b[:2] <= "04"]
    s.save(model, "cnn", "before_pruning", {"accuracy": 0.5})
    assert read_json(s.dirs.metrics / "pipeline.json")["finished"] == [b for b in books if b[:2] <= "02"]
    write_json(s.dirs.metrics / "pipeline.json", {"run_id": s.run_id, "finished": books, "notebooks": {}})
    s.record_missing("vit", "before_pruning", "no weights")  # not produced now: outdates just the same
    assert read_json(s.dirs.metrics / "pipeline.json")["finished"] == [b for b in books if b[:2] <= "02"]


def test_notebook_03s_cells_run_again_leave_a_finished_run_finished(tmp_path):
    """Its baselines cell, run again after a restart (as notebook 03 says), wrote the same "not
    produced" record of the offline vit again, which marked 04-06 unfinished: --resume reran them."""
    s = Session("smoke", tmp_path, device="cpu")  # notebook 02: vit not produced, offline
    s.record_missing("vit", "before_pruning", "no VIT_WEIGHTS")
    stage, books = unstructured.STAGE, [p.name for p in pipeline.available_notebooks().values()]
    unstructured.load_subjects(s, s.models)  # notebook 03 in the run: the records are written once
    record, marker = s.dirs.metrics_file("vit", stage), s.dirs.metrics / "pipeline.json"
    assert read_json(record)["produced"] is False and "no VIT_WEIGHTS" in read_json(record)["reason"]
    write_json(marker, {"run_id": s.run_id, "finished": books, "notebooks": {}})  # the run finished
    os.utime(record, ns=(10**18, 10**18))  # a rewrite shows even where mtimes are coarse
    before = [(p.read_bytes(), p.stat().st_mtime_ns) for p in (record, marker)]

    again = Session("smoke", tmp_path, device="cpu", models=["cnn", "vit", "vit_scratch"], start_run=False)
    unstructured.load_subjects(again, again.models)  # after a kernel restart
    assert [(p.read_bytes(), p.stat().st_mtime_ns) for p in (record, marker)] == before

    again.record_missing("vit", stage, "another reason")  # a changed record is still written, and outdates
    assert read_json(record)["reason"] == "another reason"
    assert read_json(marker)["finished"] == [b for b in books if b[:2] <= "03"]
    write_json(marker, {"run_id": s.run_id, "finished": books, "notebooks": {}})
    write_json(record, read_json(record) | {"run": {"run_id": "smoke-another-run"}})  # another run's record
    again.record_missing("vit", stage, "another reason")
    assert read_json(record)["run"]["run_id"] == s.run_id
    assert read_json(marker)["finished"] == [b for b in books if b[:2] <= "03"]


def test_the_pipeline_keeps_what_a_notebook_outdated(tmp_path, monkeypatch, capsys):
    """Notebook 03 run alone saves its stage, which marks 04-06 unfinished on disk; the pipeline's
    summary, kept in memory from before, wrote them back as finished, so --resume kept the old report."""
    import papermill
    from labutils.artifacts import write_json
    from labutils.cli import main

    ran = []

    def execute(src, dst, parameters, **kw):
        ran.append(src.split("/")[-1][:2])
        if ran[-1] == "02":  # a baseline, for 03 alone to start from
            write_json(tmp_path / "metrics" / "cnn_before_pruning.json", {"produced": True})
        if ran[-1] == "03":
            Session("smoke", tmp_path, device="cpu")._outdate_later_notebooks("after_unstructured_pruning")
        nbformat.write(nbformat.v4.new_notebook(), dst)

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    monkeypatch.setattr(pipeline, "_first_missing_output", lambda *a: None)  # no real outputs here
    run = ["run", "--profile", "smoke", "--out", str(tmp_path)]
    assert main(run) == 0 and main(run + ["--notebooks", "03"]) == 0
    ran.clear()
    assert main(run + ["--resume"]) == 0
    assert ran == ["04", "05", "06"]


# -- notebook 02's VIT_WEIGHTS and 03's study lists ------------------------------------------------
def test_a_named_vit_weights_file_that_fails_stops_notebook_02(tmp_path):
    s = Session("smoke", tmp_path / "out", device="cpu")
    with pytest.raises(PretrainedWeightsUnavailable, match="which does not exist: check the path"):
        baseline.train_baseline(s, "vit", str(tmp_path / "vit_tiyn.pth"))
    assert s.metrics("vit", "before_pruning") is None  # not recorded as "not produced": it is a typo


@pytest.mark.parametrize("sparsities, epochs, name", [([], [3], "STUDY_SPARSITIES"), (0.5, [3], "STUDY_SPARSITIES"),
                                                      ([0.5, 1.0], [3], "STUDY_SPARSITIES"),
                                                      ([0.5], [-1], "STUDY_EPOCHS"), ([0.5], [0], "STUDY_EPOCHS"),
                                                      ([0.5], "3", "STUDY_EPOCHS")])
def test_study_lists_that_cannot_run_are_refused(sparsities, epochs, name):
    with pytest.raises(SettingsError, match=f"^{name} = "):
        unstructured.check_study(sparsities, epochs)


@pytest.mark.parametrize("notebook, check", [("02", "lab.check_weights(VIT_WEIGHTS, MODELS)"),
                                             ("03", "lab.check_study(STUDY_SPARSITIES, STUDY_EPOCHS)")])
def test_a_notebooks_own_parameters_are_checked_before_its_session_writes(notebook, check):
    cells = json.loads(open(pipeline.available_notebooks()[notebook]).read())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert -1 < code.find(check) < code.find("s = Session(")


def test_the_default_study_lists_pass():
    unstructured.check_study([0.5, 0.75, 0.9], [3, 5])


def test_a_vit_weights_file_is_checked_even_when_the_vit_is_not_trained(tmp_path):
    """As --vit-weights is: a typo with MODELS ["cnn"] passed until "vit" was added (review rv123)."""
    for models in (["cnn", "vit"], ["cnn", "vit_scratch"]):
        with pytest.raises(PretrainedWeightsUnavailable, match="which does not exist: check the path"):
            baseline.check_weights(str(tmp_path / "typo.pth"), models)
    baseline.check_weights("", ["vit"])


def test_an_older_notebooks_run_id_in_models_place_names_the_change(tmp_path):
    for old in (None, "smoke-20261201T000000-abcdef"):
        with pytest.raises(SettingsError, match=r"sixth argument is MODELS.*RUN_ID is gone"):
            Session("smoke", tmp_path / "out", None, "cpu", 0, old)


@pytest.mark.parametrize("models", ['["cnn","vit"]', "cnn vit", "vit-scratch", "smoke"])
def test_a_models_string_that_is_no_run_id_says_to_pass_a_list(tmp_path, models):
    """papermill's -p MODELS '["cnn","vit"]' passes a string: it was told of RUN_ID and old notebooks."""
    with pytest.raises(SettingsError, match=r"is a string: use a list of course models, such as "
                                            r"\['cnn', 'vit', 'vit_scratch'\] \(with papermill: -y") as info:
        Session("smoke", tmp_path / "out", None, "cpu", 0, models)
    assert "RUN_ID" not in str(info.value) and not (tmp_path / "out").exists()


def test_out_dir_at_the_repository_root_and_a_device_that_is_no_string_are_one_line(tmp_path):
    """A plain ValueError (resolve_out_dir outside the try) and torch's multi-line TypeError."""
    with pytest.raises(SettingsError, match="may not write into the repository root"):
        Session("smoke", REPO_ROOT, device="cpu")
    for device in (None, 0):
        with pytest.raises(SettingsError, match=r"DEVICE = .*: use auto, cpu, cuda, cuda:N or mps") as info:
            Session("smoke", tmp_path / "out", device=device)
        assert len(str(info.value).splitlines()) == 1
    assert not (tmp_path / "out").exists()
    # pathlib's bare TypeError ("expected str, bytes or os.PathLike object, not int") named no parameter
    for name, kw in (("OUT_DIR", {"out_dir": 5}), ("DATA_ROOT", {"out_dir": tmp_path / "out", "data_root": ["d"]})):
        with pytest.raises(SettingsError, match=rf"^{name} = .+: a folder's path, as a string"):
            Session("smoke", device="cpu", **kw)
    assert not (tmp_path / "out").exists()


def test_an_out_dir_whose_files_cannot_be_written_names_the_file_not_a_temporary_one(tmp_path, monkeypatch):
    """mkdir and mkstemp sat outside the write's try: a raw PermissionError named
    '.run.json.54r3fzb7.tmp', and the Session passed it on."""
    import tempfile

    from labutils.artifacts import WriteFailed

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / ".x.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(WriteFailed) as info:
        write_json(tmp_path / "metrics" / "run.json", {})
    assert str(info.value).startswith(f"cannot write {tmp_path / 'metrics' / 'run.json'}: Permission denied")
    assert ".tmp" not in str(info.value) and "choose a folder you can write to" in str(info.value)
    with pytest.raises(SettingsError, match=r"cannot write into OUT_DIR .*run\.json: Permission denied\): set OUT_DIR "
                                            r"to a folder you can write to"):
        Session("smoke", tmp_path / "run", device="cpu")


def test_a_damaged_run_json_says_how_to_keep_the_run(tmp_path, monkeypatch, capsys):
    """'delete it' alone orphaned the run: a new id, and every record then another run's."""
    import papermill

    from labutils.cli import main

    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("a notebook ran"))
    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    s.record_missing("cnn", "before_pruning", "stand-in")
    (s.dirs.metrics / "run.json").write_text('{"run_id": ')
    with pytest.raises(SettingsError) as info:
        Session("smoke", tmp_path, device="cpu", models=["cnn"])
    text = str(info.value)
    assert f'Write it again as {{"run_id": "{s.run_id}", "profile": "smoke", "seed": 0}}' in text
    assert "delete it to start a new run there: every record in the folder then counts as another run's" in text
    assert main(["run", "--profile", "smoke", "--out", str(tmp_path), "--notebooks", "03"]) == 1  # the pipeline alike
    assert f'Write it again as {{"run_id": "{s.run_id}"' in capsys.readouterr().err


def test_another_runs_leftovers_are_not_this_runs_baselines(tmp_path, capsys):
    """After a new run started in a folder, notebooks 03, 04 and 06 pruned the previous run's baseline
    (available() did not check the run) and recorded the result under the new run's id."""
    from labutils.artifacts import run_id_for
    from labutils.labs import structured

    a = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    a.save(a.new_model("cnn"), "cnn", "before_pruning", {"accuracy": 0.5})
    assert a.available("cnn")
    run_id_for(a.dirs.metrics, "smoke", 0, fresh=True)  # a new run starts there (pipeline, or --notebooks 01)
    b = Session("smoke", tmp_path, device="cpu", start_run=False)
    assert not b.available("cnn") and not b.recorded("before_pruning", "x")["cnn"]["produced"]
    assert b.models == ["cnn", "vit", "vit_scratch"]  # no pipeline.json: nothing narrowed
    with pytest.raises(SettingsError, match=rf"no baseline of this run \({b.run_id}\) for MODELS"):
        structured.prune_structured(b, "cnn")  # notebook 04 before this run's 02: nothing recorded
    assert not b.dirs.metrics_file("cnn", "after_structured_pruning").exists()
    b.record_missing("vit", "before_pruning", "no weights")  # 02 ran for this run: the leftover is named
    record = structured.prune_structured(b, "cnn")
    assert record["produced"] is False and record["run"]["run_id"] == b.run_id
    assert record["reason"] == (f"baseline not produced: cnn_before_pruning is left from run {a.run_id}, not this "
                                f"run ({b.run_id}): run notebook 02 of this run first")
    # A pipeline run of cnn alone: another run's vit record does not bring vit back into MODELS.
    write_json(b.dirs.metrics / "pipeline.json", {"run_id": b.run_id, "models": ["cnn"]})
    write_json(b.dirs.metrics_file("vit", "before_pruning"), {"produced": True, "run": {"run_id": a.run_id}})
    assert Session("smoke", tmp_path, device="cpu", start_run=False).models == ["cnn"]


def test_the_repr_and_caption_name_the_seed_and_models(tmp_path):
    """The injected cell that named SEED is removed from executed notebooks: nothing showed it."""
    s = Session("smoke", tmp_path, device="cpu", seed=3, models=["cnn"])
    assert "seed=3" in repr(s) and "models=['cnn']" in repr(s)
    assert s.caption().endswith(f"run {s.run_id} | seed 3")
    assert s.caption({"profile": "smoke", "data": "d", "device": "cpu", "run_id": "r", "seed": 2}).endswith(
        "run r | seed 2")
    assert "seed" not in Session("smoke", tmp_path / "zero", device="cpu").caption()  # the default says nothing


def test_the_cli_refuses_a_bad_seed_before_writing_anything(tmp_path, capsys):
    from labutils.cli import main

    assert main(["run", "--profile", "smoke", "--out", str(tmp_path / "out"), "--seed", "-1"]) == 2
    assert "SEED = -1" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_the_cli_expands_home_in_vit_weights(tmp_path, monkeypatch, capsys):
    from labutils.cli import main

    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["run", "--profile", "smoke", "--out", str(tmp_path / "out"), "--vit-weights=~/w.pth"]) == 2
    assert f"'{tmp_path / 'w.pth'}', which does not exist" in capsys.readouterr().err


# -- DATA_ROOT ---------------------------------------------------------------------------------
def test_data_root_naming_the_batches_folder_itself_says_to_use_the_one_above(synthetic_root):
    with pytest.raises(D.DataNotFoundError, match=f"folder above it, {synthetic_root}$"):
        D.cifar10_dir(synthetic_root / D.BATCH_DIR)


def test_data_root_that_is_a_file_says_so(tmp_path):
    (tmp_path / "data").write_text("")
    with pytest.raises(D.DataNotFoundError, match="is a file: set DATA_ROOT"):
        D.cifar10_dir(tmp_path / "data")


def test_run_refuses_a_wrong_data_root_before_writing_anything(synthetic_root, tmp_path, capsys):
    """Found by notebook 01 or 02, the mistake used to replace the folder's run with a failed one."""
    from labutils.cli import main

    (tmp_path / "a-file").write_text("")
    for data, said in ((synthetic_root / D.BATCH_DIR, f"folder above it, {synthetic_root}"),
                       (tmp_path / "a-file", "is a file: set DATA_ROOT (--data-root)")):
        assert main(["run", "--profile", "cpu", "--out", str(tmp_path / "out"), "--data-root", str(data)]) == 2
        assert said in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    # A folder that cannot even be looked at: one line, not a traceback (review of this change)
    assert main(["run", "--profile", "cpu", "--out", str(tmp_path / "out"), "--data-root", str(tmp_path / ("a" * 300))]) == 2
    assert "File name too long" in capsys.readouterr().err


def test_notebooks_03_to_05_continue_a_run_and_take_its_models(tmp_path, capsys):
    """Opened before notebooks 01-02 ran, 03 or 04 used to start a run of "not produced" records
    that notebook 05 later refused to mix with 02's; opened on a --models cnn run with all three in
    the parameters cell, they recorded vit and vit_scratch as not produced."""
    import json

    from labutils.artifacts import REPO_ROOT, write_json

    for book in ("03_unstructured_pruning", "04_structured_pruning", "05_report"):
        cells = json.loads((REPO_ROOT / "notebooks" / f"{book}.ipynb").read_text())["cells"]
        assert any("Session(" in "".join(c["source"]) and "start_run=False" in "".join(c["source"])
                   for c in cells), book
    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])  # notebook 01 of the pipeline
    write_json(s.dirs.metrics / "pipeline.json", {"run_id": s.run_id, "models": ["cnn"]})
    later = Session("smoke", tmp_path, device="cpu", start_run=False)
    assert later.models == ["cnn"] and "vit, vit_scratch left out, as not in this run" in capsys.readouterr().out
    assert Session("smoke", tmp_path, device="cpu").models == ["cnn", "vit", "vit_scratch"]  # 01 and 02 start runs


def test_a_models_list_of_none_of_the_runs_models_is_refused_naming_them(tmp_path, capsys):
    """Notebook 04 with MODELS = ["vit_scratch"] on a --models cnn run said "this run trained none of
    MODELS" and two cells later "MODELS = []: it names no model", a value nobody typed."""
    from labutils.artifacts import write_json

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    write_json(s.dirs.metrics / "pipeline.json", {"run_id": s.run_id, "models": ["cnn"]})
    with pytest.raises(SettingsError) as refused:
        Session("smoke", tmp_path, device="cpu", models=["vit_scratch"], start_run=False)
    assert str(refused.value) == ("MODELS = ['vit_scratch']: this run trained ['cnn']: set MODELS = ['cnn'], or "
                                  "train vit_scratch in notebook 02 of this run first")


def test_recipe_mistakes_are_refused_before_any_work(tmp_path):
    """They surfaced after the sensitivity scans and the study (notebook 03, 2 minutes in smoke), or
    after the criteria comparison (notebook 04)."""
    from labutils.labs import structured, unstructured

    s = Session("smoke", tmp_path, device="cpu")
    s.profile["unstructured"]["final"]["vit_scratch"]["sparsity"] = 0.6
    with pytest.raises(ValueError, match=r"final sparsity 0.6 of vit_scratch is below the course's 70.0% minimum"):
        unstructured.load_subjects(s, s.models)
    s.profile["unstructured"]["final"]["vit_scratch"]["sparsity"] = 0.8
    s.profile["unstructured"]["final_method"] = "gradually"
    with pytest.raises(ValueError, match=r"unknown final_method 'gradually'"):
        unstructured.load_subjects(s, s.models)
    s.profile["structured"]["cnn"]["compare"] = ["l1", "L2"]
    with pytest.raises(ValueError, match=r"cnn: unknown criterion 'L2' in the profile's structured recipe"):
        structured.print_recipes(s, s.models)
    s.profile["structured"]["cnn"]["compare"] = ["l1", "bn_scale"]  # compared on the CNN only: allowed
    s.profile["structured"]["vit"]["criterion"] = "bn_scale"
    with pytest.raises(ValueError, match=r"vit: criterion 'bn_scale' needs BatchNorm \(the CNN only\)"):
        structured.print_recipes(s, s.models)


def test_a_new_run_beside_another_profiles_run_says_how_to_go_on_with_that_one(tmp_path, monkeypatch, capsys):
    """PROFILE = "smoke" set in notebook 01 alone: notebook 02, left at "auto" (cpu on a CPU), started
    a cpu run in runs/cpu, with a CIFAR-10 download and minutes of training, without a word (review)."""
    from labutils import artifacts

    monkeypatch.setattr(artifacts, "REPO_ROOT", tmp_path)
    Session("smoke", device="cpu")  # notebook 01's, in runs/smoke
    assert "note: a new" not in capsys.readouterr().out  # no other run yet
    Session("cpu", device="cpu")
    said = capsys.readouterr().out
    assert ("note: a new cpu run starts in its profile's folder, beside a run of profile 'smoke': to go on with "
            "that one, set PROFILE as in its notebooks (PROFILE = 'smoke') in this notebook's parameters cell") in said
    assert str(tmp_path) not in said  # the note stays in the executed notebook: no machine path
    Session("cpu", device="cpu")  # that run again: not new
    Session("smoke", tmp_path / "elsewhere", device="cpu")  # a folder of its own choosing
    assert "note: a new" not in capsys.readouterr().out


def test_a_record_whose_run_is_null_is_not_this_runs(tmp_path):
    """Copies of the run check read record.get("run", {}): a damaged record with "run": null raised
    AttributeError in recorded() where of_this_run says False (dead-code review)."""
    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    write_json(s.dirs.metrics_file("cnn", "before_pruning"), {"produced": True, "run": None, "accuracy": 0.5})
    assert not s.of_this_run(s.metrics("cnn", "before_pruning"))
    assert s.recorded("before_pruning", "run notebook 02")["cnn"]["produced"] is False


def test_a_model_outside_models_says_so_in_recorded_and_load(tmp_path):
    """A --models vit_scratch run: notebook 02's exercise 1 failed with a bare KeyError('cnn') after
    minutes of training, and notebook 04's s.load("cnn", ...) sent the student back to notebook 02,
    which had run, to "run the notebook that writes it first" (review)."""
    s = Session("smoke", tmp_path, device="cpu", models=["vit_scratch"])
    results = s.recorded("before_pruning", "run the cell under 'Train' first")
    with pytest.raises(KeyError) as err:
        results["cnn"]
    assert str(err.value) == ("no 'cnn' record: cnn is not in this run's MODELS (vit_scratch): add it to MODELS "
                              "and run notebook 02 again")
    assert err.value._render_traceback_() == [f"NotInModels: {err.value}"]  # the words, not a traceback
    assert results.get("cnn") is None and "cnn" not in results and list(results) == ["vit_scratch"]
    with pytest.raises(KeyError, match=r"the course's models are cnn, vit, vit_scratch"):
        results["resnet"]
    with pytest.raises(FileNotFoundError) as err:
        s.load("cnn", "before_pruning")
    assert str(err.value) == ("no cnn_before_pruning.pth in this run: cnn is not in this run's MODELS (vit_scratch): "
                              "add it to MODELS and run notebook 02 again")
    # Notebooks 03-05 narrow MODELS to the run's: cnn is in their MODELS, but notebook 02 left it out.
    write_json(s.dirs.metrics / "pipeline.json", {"run_id": s.run_id, "models": ["vit_scratch"]})
    s.record_missing("vit_scratch", "before_pruning", "stand-in")
    later = Session("smoke", tmp_path, device="cpu", start_run=False)
    with pytest.raises(FileNotFoundError, match=r"^no cnn_before_pruning.pth in this run: cnn is in MODELS, but "
                                                r"notebook 02 of this run left it out: add it to notebook 02's "
                                                r"MODELS and run the notebooks from 02 again$"):
        later.load("cnn", "before_pruning")
    with pytest.raises(KeyError, match=r"no 'cnn' record: cnn is in MODELS, but notebook 02 of this run left it out"):
        later.recorded("after_structured_pruning", "x")["cnn"]
    # A model of MODELS whose notebook has not run yet keeps checkpoint.py's advice.
    with pytest.raises(FileNotFoundError, match=r"run the notebook that writes it first"):
        s.load("vit_scratch", "after_structured_pruning")


def test_the_session_line_names_models_only_where_the_notebook_passes_them(tmp_path):
    """Notebooks 01 and 06 pass no MODELS: their Session line of a --models cnn run said
    models=['cnn', 'vit', 'vit_scratch'] under the injected MODELS = ["cnn"] (review)."""
    assert "models=['cnn']" in repr(Session("smoke", tmp_path, device="cpu", models=["cnn"]))
    assert "models=" not in repr(Session("smoke", tmp_path, device="cpu"))
