"""The papermill pipeline through the CLI: notebooks 01-02 in the smoke profile."""
import json
import os
from pathlib import Path

import nbformat
import pytest

from labutils import pipeline
from labutils.artifacts import REPO_ROOT, read_json
from labutils.checkpoint import load_checkpoint
from labutils.cli import main


def test_smoke_run_of_01_02(smoke_run):
    executed = smoke_run / "notebooks"
    # Later notebooks' tests continue this run, so more notebooks may be there.
    assert {"01_data.ipynb", "02_baseline_training.ipynb"} <= {p.name for p in executed.iterdir()}
    nb = nbformat.read(executed / "02_baseline_training.ipynb", 4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    for fig in ("01_samples.png", "01_class_counts.png", "01_augmentation.png", "01_strong_augmentation.png", "02_learning_curves.png"):
        assert (smoke_run / "figures" / fig).stat().st_size > 5000
    run_id = json.loads((smoke_run / "metrics" / "run.json").read_text())["run_id"]
    # 01 prepared the data: the run's identity now names it, so a resume must find the same.
    assert json.loads((smoke_run / "metrics" / "pipeline.json").read_text())["data"] == "synthetic CIFAR-shaped data"
    for name in ("cnn", "vit_scratch"):
        record = json.loads((smoke_run / "metrics" / f"{name}_before_pruning.json").read_text())
        assert record["produced"] and record["run"]["run_id"] == run_id
        assert record["run"]["profile"] == "smoke" and record["run"]["data"].startswith("synthetic")
        model, ckpt = load_checkpoint(smoke_run / "models_saved" / f"{name}_before_pruning.pth")
        assert ckpt["metrics"]["accuracy"] == record["accuracy"]
        assert 0.0 <= record["accuracy"] <= 1.0 and len(record["history"]) >= 1
    # Offline there are no pretrained weights: vit is recorded as not produced, with the reason.
    vit = json.loads((smoke_run / "metrics" / "vit_before_pruning.json").read_text())
    assert vit["produced"] is False and "VIT_WEIGHTS" in vit["reason"]
    assert not (smoke_run / "models_saved" / "vit_before_pruning.pth").exists()


def test_cnn_learns_something_in_smoke(smoke_run):
    record = json.loads((smoke_run / "metrics" / "cnn_before_pruning.json").read_text())
    assert record["accuracy"] > 0.2  # chance is 0.1 on the synthetic blobs
    assert record["initial_weights"] == "random (seed 0)"  # a pretrained ViT's names its file or the hub


def test_notebook_02s_results_cells_read_this_runs_records_back_after_a_restart(smoke_run, tmp_path, capsys):
    """Notebook 02's results, learning curves and first exercise needed the `results` its training
    cell left in the kernel: after a restart (or in a run's executed notebook opened later) only
    training again, minutes on a CPU, gave it back. They now read the run's records back, and
    another run's are not taken for this one's."""
    import shutil

    from labutils import Session
    from labutils.labs import baseline as lab
    from run_copies import make_another_runs

    copy = shutil.copytree(smoke_run, tmp_path / "run")
    s = Session("smoke", copy)  # a fresh kernel in notebook 02: it continues the run in its folder
    results = lab.recorded(s)
    assert results["cnn"] == read_json(copy / "metrics" / "cnn_before_pruning.json")
    assert results["vit"]["produced"] is False and "VIT_WEIGHTS" in results["vit"]["reason"]
    lab.print_results(results)
    out = capsys.readouterr().out
    assert f"cnn          {results['cnn']['accuracy']:.2%}" in out and "vit          not produced" in out
    histories = {n: r["history"] for n, r in results.items() if r["produced"]}
    assert set(histories) == {"cnn", "vit_scratch"}
    assert lab.plot_learning_curves(histories, path=tmp_path / "c.png") is not None and (tmp_path / "c.png").is_file()

    make_another_runs(copy / "metrics" / "cnn_before_pruning.json")
    again = lab.recorded(s)["cnn"]
    assert again["produced"] is False and "run the cell under 'Train'" in again["reason"]


def test_reduced_profiles_never_write_into_the_repository_root(capsys):
    assert main(["run", "--profile", "smoke", "--out", str(REPO_ROOT), "--notebooks", "01"]) == 1
    assert "may not write into the repository root" in capsys.readouterr().err


def test_failing_notebook_is_named_with_its_cell(tmp_path, monkeypatch, capsys):
    books = tmp_path / "books"
    books.mkdir()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("PROFILE = 'smoke'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("raise ValueError('boom')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, books / "01_fails.ipynb")
    nbformat.write(nb, books / "02_never.ipynb")
    monkeypatch.setattr(pipeline, "NOTEBOOK_DIR", books)
    assert main(["run", "--profile", "smoke", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "01_fails.ipynb failed in cell" in err and "ValueError: boom" in err
    assert err.rstrip().endswith(f"continue the run with: python -m labutils run --resume --profile smoke --out {tmp_path / 'out'}")
    assert not (tmp_path / "out" / "notebooks" / "02_never.ipynb").exists()
    summary = json.loads((tmp_path / "out" / "metrics" / "pipeline.json").read_text())
    assert summary["failed"] == "01_fails.ipynb"


def test_a_kernel_that_dies_is_named_in_one_line_with_how_to_go_on(tmp_path, monkeypatch, capfd):
    """Killed (the out-of-memory killer, say), it printed nbclient's 40-line traceback and left
    pipeline.json without the failed notebook. The kernel process's own log (its stderr: a
    traceback of closing sockets when a run is interrupted) stays off the terminal; a dead kernel's
    last lines come with its error."""
    books = tmp_path / "books"
    books.mkdir()
    log = "import sys; print('kernel log: {}', file=sys.__stderr__, flush=True)"
    for name, code in (("01_fine", log.format("fine")),
                       ("02_killed", log.format("last words") + "; import os, signal; os.kill(os.getpid(), signal.SIGKILL)")):
        nb = nbformat.v4.new_notebook()
        params = nbformat.v4.new_code_cell("PROFILE = 'smoke'")
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params, nbformat.v4.new_code_cell(code)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, books / f"{name}.ipynb")
    monkeypatch.setattr(pipeline, "NOTEBOOK_DIR", books)
    assert main(["run", "--profile", "smoke", "--out", str(tmp_path / "out")]) == 1
    err = capfd.readouterr().err
    assert "02_killed.ipynb stopped: its kernel died" in err
    assert "To go on from there, continue the run with: python -m labutils run --resume --profile smoke" in err
    assert "Traceback" not in err and "kernel log: fine" not in err
    assert "The kernel's last log lines:\nkernel log: last words" in err
    summary = json.loads((tmp_path / "out" / "metrics" / "pipeline.json").read_text())
    assert summary["failed"] == "02_killed.ipynb" and summary["finished"] == ["01_fine.ipynb"]
    assert not list((tmp_path / "out" / "notebooks").glob(".*partial*"))

    # What a kill while writing leaves (a checkpoint's temporary file, the notebook's partial) goes
    # at the next run, which holds the folder; other files stay.
    out = tmp_path / "out"
    (out / "models_saved" / "quantization").mkdir(parents=True, exist_ok=True)
    left = [out / "models_saved" / ".cnn_before_pruning.pth.ab12.tmp", out / "notebooks" / ".02_killed.partial.ipynb",
            out / "models_saved" / "quantization" / ".resnet20_baseline.pth.cd34.tmp",
            out / "data-synthetic" / "cifar-10-batches-py" / ".data_batch_1.ef56.tmp"]
    for path in left + [out / "models_saved" / "keep.pth"]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    assert main(["run", "--profile", "smoke", "--out", str(out), "--notebooks", "01"]) == 0
    assert not any(p.exists() for p in left) and (out / "models_saved" / "keep.pth").exists()
    assert "removed 4 temporary file(s) an interrupted run left" in capfd.readouterr().out


def test_kernels_import_the_labutils_that_runs_the_pipeline(tmp_path, monkeypatch):
    """Another labutils earlier on the caller's PYTHONPATH (a second checkout, a stale install)
    would otherwise run in the kernels while this one writes the run's records."""
    other = tmp_path / "other" / "labutils"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("raise ImportError('the other labutils')\n")
    monkeypatch.setenv("PYTHONPATH", str(other.parent))
    books = tmp_path / "books"
    books.mkdir()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("PROFILE = 'smoke'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "import os, labutils\nprint(labutils.__file__)\nprint(os.environ['PYTHONPATH'])")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, books / "01_which.ipynb")
    monkeypatch.setattr(pipeline, "NOTEBOOK_DIR", books)
    assert main(["run", "--profile", "smoke", "--out", str(tmp_path / "out")]) == 0
    executed = nbformat.read(tmp_path / "out" / "notebooks" / "01_which.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for o in executed.cells[-1].outputs).splitlines()
    assert Path(printed[0]) == REPO_ROOT / "labutils" / "__init__.py"
    assert printed[1].split(os.pathsep) == [str(REPO_ROOT), str(other.parent)]  # the caller's entries stay
    assert os.environ["PYTHONPATH"] == str(other.parent)  # restored after the run


def test_unknown_notebook_and_model_are_refused(tmp_path, capsys):
    assert main(["run", "--profile", "smoke", "--out", str(tmp_path), "--notebooks", "99"]) == 2  # a usage error
    assert "unknown notebook" in capsys.readouterr().err
    assert main(["run", "--profile", "smoke", "--out", str(tmp_path), "--models", "mlp"]) == 2
    capsys.readouterr()
    for empty in (",", "", " "):  # parsed to no notebook, which meant all of them
        assert main(["run", "--profile", "smoke", "--out", str(tmp_path / "out"), "--notebooks", empty]) == 2
        assert capsys.readouterr().err == ("error: --notebooks names no notebook; choose from 01, 02, 03, 04, 05, "
                                           "06 (or leave it out to run all)\n")
    assert not (tmp_path / "out").exists()


def test_a_labutils_without_its_notebooks_says_how_to_install(tmp_path, monkeypatch, capsys):
    """pip install . (not -e) copies labutils alone: a run found no notebooks, ran none and said done."""
    monkeypatch.setattr(pipeline, "NOTEBOOK_DIR", tmp_path / "site-packages" / "notebooks")
    assert main(["run", "--profile", "smoke", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "no notebooks in" in err and "pip install -e ." in err
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_kernels_get_paths_relative_to_the_executed_notebook(tmp_path, monkeypatch):
    """Kernels run in OUT/notebooks, where the executed notebook lies: paths given on the command
    line reach them relative to that folder, and only what differs from the defaults is injected."""
    import papermill

    seen = {}
    monkeypatch.setattr(papermill, "execute_notebook",
                        lambda src, dst, parameters, **kw: seen.update(parameters))
    monkeypatch.setattr(pipeline, "_forget_machine_paths", lambda path, name: None)
    monkeypatch.chdir(tmp_path)
    import timm
    import torch
    torch.save(timm.create_model("vit_tiny_patch16_224").state_dict(), "w.pth")  # checked before the run
    assert main(["run", "--profile", "cpu", "--out", "out", "--notebooks", "01",
                 "--data-root", "data", "--vit-weights", "w.pth", "--seed", "3"]) == 0
    assert seen == {"PROFILE": "cpu", "OUT_DIR": "..", "DATA_ROOT": "../../data",
                    "VIT_WEIGHTS": "../../w.pth", "SEED": 3}
    notebooks = tmp_path / "out" / "notebooks"
    assert (notebooks / seen["DATA_ROOT"]).resolve() == tmp_path / "data"


def test_defaults_are_not_injected():
    from labutils.data import DEFAULT_DATA_ROOT

    out = REPO_ROOT / "runs" / "smoke"  # the smoke profile's default folder
    assert pipeline.injected_parameters(out, "smoke", DEFAULT_DATA_ROOT) == {"PROFILE": "smoke"}
    assert pipeline.injected_parameters(out, "smoke", models=["cnn"], device="cpu") == {
        "PROFILE": "smoke", "MODELS": ["cnn"], "DEVICE": "cpu"}


def test_an_edited_parameters_cell_still_gets_the_runs_values(tmp_path):
    """An instructor's MODELS = ["cnn"] in notebook 02's cell: the run's three models used to be
    left out of the injected cell (they equal the usual defaults), so 02 trained the cnn alone
    while pipeline.json said all three."""
    book = pipeline.NOTEBOOK_DIR / "02_baseline_training.ipynb"
    assert pipeline.notebook_defaults(book) == pipeline.NOTEBOOK_DEFAULTS
    nb = nbformat.read(book, 4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = cell.source.replace('MODELS = ["cnn", "vit", "vit_scratch"]', 'MODELS = ["cnn"]')
    cell.source = cell.source.replace('SEED = 0', 'SEED = 1 + 1')  # not a literal: always injected
    edited = tmp_path / book.name
    nbformat.write(nb, edited)
    defaults = pipeline.notebook_defaults(edited)
    assert defaults["MODELS"] == ["cnn"] and "SEED" not in defaults
    out = REPO_ROOT / "runs" / "smoke"
    assert pipeline.injected_parameters(out, "smoke", defaults=defaults) == {
        "PROFILE": "smoke", "MODELS": ["cnn", "vit", "vit_scratch"], "SEED": 0}


def test_a_relative_labutils_data_reaches_the_kernels_as_the_folder_it_names_here(tmp_path, monkeypatch):
    """Kernels work in OUT/notebooks: LABUTILS_DATA=mydata must not be read from there."""
    import subprocess
    import sys

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LABUTILS_DATA", "mydata")
    imported = subprocess.run([sys.executable, "-c", "from labutils.data import DEFAULT_DATA_ROOT as d; print(d)"],
                              capture_output=True, text=True, check=True).stdout.strip()
    assert imported == str(tmp_path / "mydata")
    monkeypatch.setattr(pipeline, "DEFAULT_DATA_ROOT", Path(imported))

    class Lock:
        info = {"token": "t"}
    with pipeline._kernel_environment(Lock()):
        assert os.environ["LABUTILS_DATA"] == str(tmp_path / "mydata")
    assert os.environ["LABUTILS_DATA"] == "mydata"


@pytest.mark.parametrize("book", [p.name for p in pipeline.available_notebooks().values()])
def test_notebook_defaults_match_every_parameters_cell(book):
    nb = nbformat.read(pipeline.NOTEBOOK_DIR / book, 4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values = {}
    exec(cell.source, {}, values)
    assert {k: values[k] for k in pipeline.NOTEBOOK_DEFAULTS} == pipeline.NOTEBOOK_DEFAULTS


def test_executed_notebooks_name_no_folder_of_the_machine(smoke_run):
    """Neither the run's folder (where the synthetic data lies too) nor the repository's appears
    anywhere in an executed notebook: not in the injected cell, the metadata or the outputs."""
    for book in (smoke_run / "notebooks").glob("*.ipynb"):
        text = book.read_text()
        assert str(smoke_run) not in text and str(smoke_run.resolve()) not in text, book.name
        assert str(REPO_ROOT) not in text, book.name
    nb = nbformat.read(smoke_run / "notebooks" / "02_baseline_training.ipynb", 4)
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert 'OUT_DIR = ".."' in injected.source and "RUN_ID" not in injected.source
    assert injected.source.startswith(pipeline.INJECTED_NOTE + "\n")  # a reader learns it overrides the cell above
    assert nb.metadata.papermill.output_path == "02_baseline_training.ipynb"


def test_executed_notebooks_carry_no_warning_on_stderr(smoke_run):
    """No cell wrote to stderr: a warning there is committed with the notebooks. (Without
    ipywidgets, timm's import of tqdm.auto warns "IProgress not found" in every kernel; a
    rehearsal of the GPU machine's Python without it showed one in each of notebooks 02-06.)"""
    for book in (smoke_run / "notebooks").glob("*.ipynb"):
        nb = nbformat.read(book, 4)
        stderr = [o.text for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.output_type == "stream" and o.name == "stderr"]
        assert not stderr, (book.name, stderr)


def test_run_id_is_shared_by_a_folder_until_a_new_run_starts(tmp_path):
    from labutils.artifacts import run_id_for

    first = run_id_for(tmp_path, "smoke")
    assert first.startswith("smoke-") and run_id_for(tmp_path, "smoke") == first
    assert run_id_for(tmp_path, "smoke", fresh=True) != first
    with pytest.raises(ValueError, match="made with PROFILE = 'smoke', not 'cpu'"):  # no silent takeover
        run_id_for(tmp_path, "cpu")
    other = run_id_for(tmp_path, "cpu", fresh=True)  # a new run, as the pipeline starts one
    assert other.startswith("cpu-") and run_id_for(tmp_path, "cpu") == other


ALL_BOOKS = [p.name for p in pipeline.available_notebooks().values()]


def test_resume_after_02_gives_the_report_of_an_uninterrupted_run(tmp_path, capfd):
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert main(["run", "--profile", "smoke", "--out", str(whole)]) == 0
    # The kernels write to this process's stderr (file descriptor 2): six kernel starts, and none
    # warns that its channels are unencrypted (the pipeline asks for CurveZMQ keys).
    whole_output = capfd.readouterr()
    assert "== 06_quantization.ipynb done" in whole_output.out
    assert "without encryption" not in whole_output.out + whole_output.err
    assert main(["run", "--profile", "smoke", "--out", str(split), "--notebooks", "01,02"]) == 0
    stopped = json.loads((split / "metrics" / "pipeline.json").read_text())
    assert stopped["finished"] == ALL_BOOKS[:2]
    capfd.readouterr()

    assert main(["run", "--profile", "smoke", "--out", str(split), "--resume"]) == 0
    out = capfd.readouterr().out
    assert "2 notebook(s) already finished" in out and "== 01_data.ipynb" not in out
    assert "== 03_unstructured_pruning.ipynb" in out and "run total" in out
    summary = json.loads((split / "metrics" / "pipeline.json").read_text())
    assert summary["run_id"] == stopped["run_id"] and summary["finished"] == ALL_BOOKS
    # The earlier session's times count towards the run's total.
    assert summary["notebooks"]["02_baseline_training.ipynb"] == stopped["notebooks"]["02_baseline_training.ipynb"]
    assert summary["total_seconds"] == pytest.approx(sum(summary["notebooks"].values()))
    assert json.loads((split / "report.json").read_text()) == json.loads((whole / "report.json").read_text())

    # Nothing is left: a second resume runs nothing and keeps the run.
    assert main(["run", "--profile", "smoke", "--out", str(split), "--resume"]) == 0
    assert "0 to run" in capfd.readouterr().out
    # Nor does one of a few notebooks forget the others (it left finished: [05], and the next
    # --resume trained everything again).
    assert main(["run", "--profile", "smoke", "--out", str(split), "--resume", "--notebooks", "05"]) == 0
    assert json.loads((split / "metrics" / "pipeline.json").read_text())["finished"] == ALL_BOOKS


@pytest.mark.parametrize("notebooks", ["04", "03,04,05", "05,06"])
@pytest.mark.parametrize("after_06_alone", [False, True])
def test_later_notebooks_alone_on_a_folder_without_baselines_are_refused(tmp_path, capsys, notebooks,
                                                                         after_06_alone):
    """They would record every model as not produced and report success: on an empty folder, and
    after notebook 06 alone, which starts a run but trains no baseline."""
    from labutils.artifacts import record_run

    out = tmp_path / "out"
    if after_06_alone:
        (out / "metrics").mkdir(parents=True)
        record_run(out / "metrics", "smoke-06-alone", "smoke", 0)
    assert main(["run", "--profile", "smoke", "--out", str(out), "--notebooks", notebooks]) == 1
    err = capsys.readouterr().err
    assert "holds no baselines of notebook 02 for" in err and "Run 01 and 02 there first" in err
    assert (out / "metrics" / "run.json").exists() == after_06_alone and not (out / "notebooks").exists()


@pytest.mark.parametrize("later", ["03", "05"])
def test_notebook_01_before_later_ones_on_a_folder_without_baselines_is_refused_alike(tmp_path, monkeypatch,
                                                                                      capsys, later):
    """01 starts a run but trains no baseline: ``--notebooks 01,03`` recorded every model as not
    produced and succeeded, and ``01,05`` failed in 05 with a --resume hint that could never succeed."""
    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("a notebook ran"))
    out = tmp_path / "out"
    assert main(["run", "--profile", "smoke", "--out", str(out), "--notebooks", later]) == 1
    alone = capsys.readouterr().err
    assert main(["run", "--profile", "smoke", "--out", str(out), "--notebooks", f"01,{later}"]) == 1
    assert capsys.readouterr().err == alone and "holds no baselines of notebook 02 for" in alone
    assert not out.exists()  # refused before anything was written


def test_resuming_later_notebooks_after_01_alone_is_refused_without_baselines(tmp_path, monkeypatch, capsys):
    """--resume --notebooks 03 on a run that finished only 01 recorded every model as not produced."""
    import papermill

    def execute(src, dst, parameters, **kw):
        assert Path(src).name.startswith("01"), "a notebook after 01 ran"
        nbformat.write(nbformat.v4.new_notebook(), dst)

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    out = str(tmp_path / "out")
    assert main(["run", "--profile", "smoke", "--out", out, "--notebooks", "01"]) == 0
    assert main(["run", "--resume", "--profile", "smoke", "--out", out, "--notebooks", "03"]) == 1
    assert "holds no baselines of notebook 02 for 03_unstructured_pruning.ipynb" in capsys.readouterr().err


@pytest.mark.parametrize("notebooks", ["01,02,03", "01,06", "06"])
def test_notebooks_that_make_their_own_models_still_start_a_run(tmp_path, monkeypatch, notebooks):
    """02 trains the baselines 03-05 start from; 06 trains its own ResNet-20."""
    import papermill

    ran = []

    def execute(src, dst, parameters, **kw):
        ran.append(Path(src).name[:2])
        nbformat.write(nbformat.v4.new_notebook(), dst)

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    assert main(["run", "--profile", "smoke", "--out", str(tmp_path / "out"), "--notebooks", notebooks]) == 0
    assert ran == notebooks.split(",")


def test_resume_refuses_what_it_must_not_continue(tmp_path, capsys):
    from labutils.artifacts import git_commit, write_json

    assert main(["run", "--profile", "smoke", "--out", str(tmp_path / "typo"), "--resume"]) == 1
    assert "nothing to resume" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()  # the refused run left no folder behind
    assert main(["run", "--profile", "smoke", "--out", str(tmp_path), "--resume"]) == 1
    assert "nothing to resume" in capsys.readouterr().err and tmp_path.is_dir()  # nor removed one it found
    saved = {"run_id": "smoke-earlier", "profile": "smoke", "git_commit": git_commit(),
             "models": ["cnn", "vit", "vit_scratch"], "seed": 0, "notebooks": {"01_data.ipynb": 3.0},
             "finished": ["01_data.ipynb"]}
    for change, word in (({"profile": "cpu"}, "profile 'cpu'"), ({"git_commit": "0123456789ab"}, "commit '0123456789ab'"),
                         ({"seed": 3}, "seed 3"), ({"models": ["cnn"]}, "model list ['cnn']")):
        write_json(tmp_path / "metrics" / "pipeline.json", saved | change)
        assert main(["run", "--profile", "smoke", "--out", str(tmp_path), "--resume"]) == 1
        err = capsys.readouterr().err
        assert "cannot resume run smoke-earlier" in err and word in err and "without --resume" in err


def test_a_run_is_continued_only_on_the_same_data(tmp_path, capsys):
    """A run resumed or continued with another data copy, or with none (a later notebook would
    download the official one), would mix two datasets in one report."""
    from labutils.artifacts import git_commit, write_json
    from labutils.data import write_synthetic_cifar10

    other = tmp_path / "other"
    write_synthetic_cifar10(other, n_train=20, n_test=10)  # another copy than the run's
    out = tmp_path / "run"
    saved = {"run_id": "cpu-earlier", "profile": "cpu", "git_commit": git_commit(),
             "models": ["cnn", "vit", "vit_scratch"], "seed": 0, "notebooks": {"01_data.ipynb": 3.0},
             "finished": ["01_data.ipynb"], "data": "CIFAR-10 (offline JPEG-q75 copy)"}
    write_json(out / "metrics" / "pipeline.json", saved)
    for data, shown in ((other, "this invocation has data copy 'synthetic CIFAR-shaped data'"),
                        (tmp_path / "empty", "this invocation has no data yet (its data folder holds no batches")):
        for how in (["--resume"], ["--notebooks", "03"]):
            assert main(["run", "--profile", "cpu", "--out", str(out), "--data-root", str(data), *how]) == 1
            err = capsys.readouterr().err
            assert "'CIFAR-10 (offline JPEG-q75 copy)'" in err and shown in err
            assert "--data-root of a folder holding CIFAR-10 (offline JPEG-q75 copy)" in err
    assert not (out / "notebooks" / "03_unstructured_pruning.ipynb").exists()
    assert read_json(out / "metrics" / "pipeline.json") == saved  # the run's record untouched

    # A run recorded before data was part of its identity matches any; data not prepared yet
    # matches only a new run (notebook 01 prepares it).
    identity = pipeline._identity("smoke", ["cnn"], 0, "synthetic CIFAR-shaped data")
    assert not pipeline._differs("data", {}, identity, continuing=True)
    assert pipeline._differs("data", {"data": "CIFAR-10"}, identity | {"data": None}, continuing=True)
    assert pipeline._differs("data", {"data": "CIFAR-10"}, identity, continuing=False)
    # A new run whose data folder is empty will hold what notebook 01 prepares: the official
    # copy (downloaded) for CIFAR-10 profiles, synthetic batches for smoke.
    cpu = pipeline._identity("cpu", ["cnn"], 0, None)
    assert not pipeline._differs("data", {"data": "CIFAR-10"}, cpu, continuing=False)
    assert pipeline._differs("data", {"data": "CIFAR-10 (offline JPEG-q75 copy)"}, cpu, continuing=False)
    assert not pipeline._differs("data", {"data": "synthetic CIFAR-shaped data"}, identity | {"data": None},
                                 continuing=False)


def test_a_new_run_on_an_empty_data_folder_is_refused_over_a_run_on_another_copy(tmp_path, capsys):
    """Notebook 01 would download the official CIFAR-10 into the empty folder, and the new run
    would replace a q75 run notebook by notebook: a failure half-way leaves two datasets in one folder."""
    from labutils.artifacts import write_json

    out = tmp_path / "run"
    saved = {"run_id": "cpu-earlier", "profile": "cpu", "git_commit": "0" * 12,
             "models": ["cnn", "vit", "vit_scratch"], "seed": 0, "notebooks": {"01_data.ipynb": 3.0},
             "finished": ["01_data.ipynb"], "data": "CIFAR-10 (offline JPEG-q75 copy)"}
    write_json(out / "metrics" / "pipeline.json", saved)
    for notebooks in ("01", "02"):
        assert main(["run", "--profile", "cpu", "--out", str(out), "--data-root", str(tmp_path / "empty"),
                     "--notebooks", notebooks]) == 1
        err = capsys.readouterr().err
        assert "notebook 01 would prepare 'CIFAR-10'" in err
        assert "--data-root of a folder holding CIFAR-10 (offline JPEG-q75 copy)" in err
    assert read_json(out / "metrics" / "pipeline.json") == saved and not (out / "notebooks").exists()
    assert "data-synthetic/" in pipeline._option("data", "synthetic CIFAR-shaped data")  # never --data-root


def test_an_adopted_notebook_is_governed_by_its_parameters_cell_again(smoke_run, tmp_path):
    """The committed run's notebooks are the ones students open: papermill's injected cell below the
    parameters cell would override a student's PROFILE with the run's."""
    executed = smoke_run / "notebooks" / "01_data.ipynb"
    adopted = tmp_path / "01_data.ipynb"
    adopted.write_bytes(executed.read_bytes())
    before = nbformat.read(adopted, 4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in before.cells)
    pipeline.as_workbook_notebook(adopted)
    after = nbformat.read(adopted, 4)
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in after.cells)
    assert len(after.cells) == len(before.cells) - 1
    kept = [c for c in before.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    assert [c.get("outputs") for c in after.cells] == [c.get("outputs") for c in kept]  # the write-up stays
    assert after.metadata.papermill.parameters["PROFILE"] == "smoke"  # the run's values, recorded
    params = next(c for c in after.cells if "parameters" in c.metadata.get("tags", []))
    assert 'PROFILE = "auto"' in params.source


def test_a_students_copy_beside_a_workbook_notebook_is_not_run_in_its_place(tmp_path, monkeypatch):
    """``03_unstructured_pruning_mine.ipynb`` sorts after the workbook's 03 and was run instead of
    it, and ``check`` then asked the hand-in for the copy. Two notebooks of a number that is not
    the workbook's are refused, naming both."""
    from labutils.course import NOTEBOOKS
    from labutils.submission import check_notebooks

    books = tmp_path / "books"
    books.mkdir()
    for name in ("01_data.ipynb", "03_unstructured_pruning.ipynb", "03_unstructured_pruning_mine.ipynb", "07_extra.ipynb"):
        (books / name).write_text("{}")
    monkeypatch.setattr(pipeline, "NOTEBOOK_DIR", books)
    assert [p.name for p in pipeline.select_notebooks(None)] == ["01_data.ipynb", "03_unstructured_pruning.ipynb",
                                                                  "07_extra.ipynb"]
    (books / "07_extra_v2.ipynb").write_text("{}")
    with pytest.raises(ValueError, match=r"holds 2 notebooks numbered 07 \(07_extra.ipynb, 07_extra_v2.ipynb\) "
                                         r"and a run executes one: rename all but one"):
        pipeline.select_notebooks(None)
    assert list(NOTEBOOKS.values()) == sorted(p.name for p in (REPO_ROOT / "notebooks").glob("*.ipynb"))
    handed_in = tmp_path / "hand-in"
    handed_in.mkdir()
    (handed_in / "03_unstructured_pruning_v2.ipynb").write_text("{}")
    missing = check_notebooks(handed_in, None)[0].what
    assert "lacks 01_data.ipynb, 02_baseline_training.ipynb, 03_unstructured_pruning.ipynb," in missing


def test_a_refused_run_names_the_options_to_pass_readably(tmp_path):
    """cpu into a smoke run's folder said "pass --profile smoke the run folder's own synthetic data
    (...) to continue it": the items ran together, and the data follows from --profile smoke."""
    from labutils.artifacts import git_commit, write_json

    saved = {"run_id": "smoke-earlier", "profile": "smoke", "git_commit": git_commit(),
             "models": ["cnn", "vit", "vit_scratch"], "seed": 1, "data": "synthetic CIFAR-shaped data"}
    write_json(tmp_path / "metrics" / "pipeline.json", saved)
    cpu = pipeline._identity("cpu", saved["models"], 1, "CIFAR-10")
    with pytest.raises(pipeline.RunRefused, match="pass --profile smoke to continue it, or write into"):
        pipeline.check_same_run(tmp_path, cpu, starts=False)
    with pytest.raises(pipeline.RunRefused, match="pass --profile smoke and --seed 1 to replace it"):
        pipeline.check_same_run(tmp_path, cpu | {"seed": 0}, starts=True)
    with pytest.raises(pipeline.RunRefused, match="pass --profile smoke, --models cnn,vit,vit_scratch and "
                                                  "--seed 1 to replace it"):
        pipeline.check_same_run(tmp_path, cpu | {"seed": 0, "models": ["cnn"]}, starts=True)


def test_a_run_started_over_a_hand_run_of_another_profile_or_seed_is_refused(tmp_path):
    """Notebooks run by hand leave only metrics/run.json: check_same_run read pipeline.json alone,
    and the pipeline's new run replaced the hand run without a word."""
    from labutils.artifacts import record_run

    record_run(tmp_path / "metrics", "cpu-20260101T000000-abcdef", "cpu", 0)
    smoke = pipeline._identity("smoke", ["cnn"], 0, None)
    with pytest.raises(pipeline.RunRefused, match=r"holds run cpu-20260101T000000-abcdef made with profile "
                                                  r"'cpu'.* pass --profile cpu to replace it"):
        pipeline.check_same_run(tmp_path, smoke, starts=True)
    record_run(tmp_path / "metrics", "smoke-20260101T000000-abcdef", "smoke", 2)
    with pytest.raises(pipeline.RunRefused, match="made with seed 2; .* pass --seed 2 to replace it"):
        pipeline.check_same_run(tmp_path, smoke, starts=True)
    record_run(tmp_path / "metrics", "smoke-20260101T000000-abcdef", "smoke", 0)
    pipeline.check_same_run(tmp_path, smoke, starts=True)  # the same profile and seed: no refusal


@pytest.mark.parametrize("death", ["kernel", "interrupt"])
def test_a_notebook_that_dies_leaves_no_earlier_runs_notebook_under_its_name(tmp_path, monkeypatch, death):
    """After a kernel death (out of memory) or Ctrl-C, the previous run's executed notebook stayed
    under the final name, looking like this run's; the partial one, with the outputs up to the death,
    was deleted."""
    import papermill
    from nbclient.exceptions import DeadKernelError

    out = tmp_path / "out"
    (out / "notebooks").mkdir(parents=True)
    (out / "notebooks" / "01_data.ipynb").write_text("OLD-RUN")

    def execute(src, dst, parameters, **kw):
        partial = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
        partial.metadata["papermill"] = {"input_path": str(src), "output_path": str(dst)}
        nbformat.write(partial, dst)  # papermill writes after every cell
        raise DeadKernelError("Kernel died") if death == "kernel" else KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    if death == "kernel":
        assert main(["run", "--profile", "smoke", "--out", str(out), "--notebooks", "01"]) == 1
        kept = nbformat.read(out / "notebooks" / "01_data.ipynb", 4)
        assert kept.cells[0].source == "x = 1" and kept.metadata.papermill.output_path == "01_data.ipynb"
    else:
        with pytest.raises(KeyboardInterrupt):
            pipeline.run_pipeline("smoke", out, notebooks=["01"])
        assert not (out / "notebooks" / "01_data.ipynb").exists()
    assert not list((out / "notebooks").glob(".*"))


def test_another_runs_baselines_do_not_let_later_notebooks_start(tmp_path, monkeypatch, capsys):
    """The "has baselines" check globbed any run's records: 03 after --notebooks 01 (a new run) pruned
    the earlier run's baselines and recorded them under the new run's id."""
    import papermill

    from labutils.artifacts import record_run, write_json

    ran = []

    def execute(src, dst, parameters, **kw):
        ran.append(Path(src).name[:2])
        nbformat.write(nbformat.v4.new_notebook(), dst)

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    out = tmp_path / "out"
    record_run(out / "metrics", "smoke-earlier", "smoke", 0)
    write_json(out / "metrics" / "cnn_before_pruning.json", {"produced": True, "run": {"run_id": "smoke-earlier"}})
    assert main(["run", "--profile", "smoke", "--out", str(out), "--notebooks", "01,03"]) == 1
    err = capsys.readouterr().err
    assert "holds no baselines of notebook 02 for 03_unstructured_pruning.ipynb to start from (those there are " \
           "left from another run)" in err and ran == []
    assert main(["run", "--profile", "smoke", "--out", str(out), "--notebooks", "03"]) == 0  # the folder's run: its own
    assert ran == ["03"]
    assert main(["run", "--profile", "smoke", "--out", str(out), "--notebooks", "01"]) == 0  # a new run
    assert main(["run", "--profile", "smoke", "--out", str(out), "--notebooks", "03"]) == 1
    assert "left from another run" in capsys.readouterr().err and ran == ["03", "01"]


def test_an_interrupt_never_deletes_the_workbooks_own_notebook(tmp_path, monkeypatch):
    """A full run into the repository root executes the notebooks in place: Ctrl-C deleted the
    source notebook, and a --resume then ran without it and said done (review)."""
    import shutil

    import papermill

    # The --out folder is the workbook: its notebooks/ is NOTEBOOK_DIR, so the executed notebook is the source.
    out = tmp_path / "out"
    books = out / "notebooks"
    books.mkdir(parents=True)
    source = books / "01_data.ipynb"
    shutil.copy(REPO_ROOT / "notebooks" / "01_data.ipynb", source)
    text = source.read_bytes()
    monkeypatch.setattr(pipeline, "NOTEBOOK_DIR", books)
    ran = []

    def execute(src, dst, parameters, **kw):  # Ctrl-C while the kernel runs: no real kernel
        ran.append(Path(src).name)
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    assert main(["run", "--profile", "smoke", "--out", str(out), "--notebooks", "01"]) == 130
    assert ran == ["01_data.ipynb"]
    assert source.read_bytes() == text  # the workbook's own notebook is still there, untouched
    assert not list(books.glob(".*"))  # no partial left either


def test_the_run_command_says_what_it_replaces_and_what_was_not_produced(tmp_path, monkeypatch, capsys):
    """The same command again silently started over a finished run; "done" hid a model not
    produced; "--notebooks 1" was unknown, an empty --out meant the default folder (review)."""
    books = tmp_path / "books"
    books.mkdir()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("PROFILE = 'smoke'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("x = 1")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, books / "01_data.ipynb")
    monkeypatch.setattr(pipeline, "NOTEBOOK_DIR", books)
    out = tmp_path / "out"
    assert main(["run", "--profile", "smoke", "--out", str(out), "--notebooks", "1"]) == 0
    run_id = json.loads((out / "metrics" / "pipeline.json").read_text())["run_id"]
    (out / "metrics" / "vit_before_pruning.json").write_text(json.dumps(
        {"model": "vit", "produced": False, "reason": "no pretrained weights offline\nmore", "run": {"run_id": run_id}}))
    from labutils.cli import _not_produced
    assert _not_produced(out, run_id, ["cnn", "vit"]) == ["not produced: vit (no pretrained weights offline)"]
    capsys.readouterr()
    assert main(["run", "--profile", "smoke", "--out", str(out), "--notebooks", "01"]) == 0
    assert f"note: replacing run {run_id} in {out} (it finished 01)" in capsys.readouterr().out
    for flag in ("--out", "--data-root"):
        assert main(["run", "--profile", "smoke", flag, ""]) == 2
        assert f"error: {flag} is empty" in capsys.readouterr().err
    assert main(["run", "--profile", "smoke", "--out", str(out), "--notebooks", "7"]) == 2
    assert "unknown notebook(s) ['07']; available: 01" in capsys.readouterr().err
    nbformat.write(nb, books / "07_my_extension.ipynb")  # a notebook of one's own is a notebook of the run
    assert main(["run", "--profile", "smoke", "--out", str(out), "--notebooks", "7"]) == 0
    assert main(["run", "--profile", "smoke", "--out", str(out), "--data-root", "~nosuchuser/data"]) == 2
    err = capsys.readouterr().err  # one line naming the option, not a traceback nor pathlib's bare words
    assert err == "error: --data-root ~nosuchuser/data: the ~ in it names no user of this machine; give the full path\n"


def test_the_kernels_run_this_python_whatever_python3_kernelspec_is_installed(tmp_path, monkeypatch):
    """A "python3" kernelspec installed for another Python (`ipykernel install --user` from
    elsewhere) ran the notebooks in that Python, which has no labutils. The spec is ipykernel's own
    (its argv puts -Xfrozen_modules=off before -m), pointed at another interpreter."""
    import io
    import sys

    from ipykernel.kernelspec import install

    spec = Path(install(prefix=str(tmp_path)))
    described = json.loads((spec / "kernel.json").read_text())
    described["argv"][0] = "/elsewhere/python3.9"
    (spec / "kernel.json").write_text(json.dumps(described))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))
    manager = pipeline.kernel_manager_logging_to(io.BytesIO())(kernel_name="python3")
    manager._launch_args = {}  # what start_kernel sets before it formats the command
    assert manager.kernel_spec.argv[0] == "/elsewhere/python3.9"
    command = manager.format_kernel_cmd()
    assert command[0] == sys.executable and command[1:-2] == described["argv"][1:-2]


@pytest.fixture()
def fake_books(monkeypatch):
    """papermill replaced by notebooks that only write what the real ones leave for the cnn (a
    record naming its run and its whole checkpoint's SHA-256 per stage, the report and its sidecar
    of the run, 06's files; the synthetic data if gone); 03-05 fail, as the real ones do, on a baseline
    checkpoint that is not whole or not the one its record names. Returns the numbers of those run."""
    import zipfile

    import papermill

    ran = []

    def checkpoint(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("data.pkl", "weights")

    def execute(src, dst, parameters, **kw):
        from labutils.artifacts import file_sha256, read_json_object, write_json
        from labutils.data import write_synthetic_cifar10

        number, out = Path(src).name[:2], Path(dst).parents[1]
        ran.append(number)
        baseline = out / "models_saved" / "cnn_before_pruning.pth"
        if number in ("03", "04", "05") and not zipfile.is_zipfile(baseline):
            raise papermill.PapermillExecutionError(3, 2, "model = load_checkpoint(...)", "BadZipFile",
                                                    "File is not a zip file", [])
        recorded = (read_json_object(out / "metrics" / "cnn_before_pruning.json") or {}).get("checkpoint", {})
        if number in ("03", "04", "05") and file_sha256(baseline) != recorded.get("sha256"):
            raise papermill.PapermillExecutionError(3, 2, "model = s.load(...)", "CheckpointError",
                                                    "not the checkpoint its record records (another SHA-256)", [])
        if not (out / "data-synthetic").is_dir():  # as every notebook's Session.prepare_data does
            write_synthetic_cifar10(out / "data-synthetic", n_train=20, n_test=10)
        stage = dict(zip(("02", "03", "04"), ("before_pruning", "after_unstructured_pruning",
                                              "after_structured_pruning"))).get(number)
        run = {"run_id": read_json_object(out / "metrics" / "run.json")["run_id"]}
        if stage:
            checkpoint(ckpt := out / "models_saved" / f"cnn_{stage}.pth")
            write_json(out / "metrics" / f"cnn_{stage}.json", {"run": run, "produced": True,
                                                               "checkpoint": {"sha256": file_sha256(ckpt)}})
        if number == "05":
            write_json(out / "report.json", {})
            write_json(out / "report_details.json", {"run": run, "timings": {}})
        if number == "06":
            write_json(out / "metrics" / "quantization.json", {"run": run})
            checkpoint(out / "models_saved" / "quantization" / "resnet20_baseline.pth")
        nbformat.write(nbformat.v4.new_notebook(), dst)

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    return ran


def smoke(out, *args):
    return main(["run", "--profile", "smoke", "--models", "cnn", "--out", str(out), *args])


def test_resuming_later_notebooks_alone_checks_the_earlier_notebooks_outputs(tmp_path, fake_books, capsys):
    """--resume --notebooks 05 looked only at 05's own outputs: with 03's checkpoint deleted it said
    done and kept 03 finished (review). It now refuses, naming the file and what repairs it."""
    out = tmp_path / "out"
    assert smoke(out) == 0
    finished = read_json(out / "metrics" / "pipeline.json")["finished"]
    (out / "models_saved" / "cnn_after_unstructured_pruning.pth").unlink()
    fake_books.clear()
    capsys.readouterr()
    assert smoke(out, "--resume", "--notebooks", "05") == 1
    err = capsys.readouterr().err
    assert "cnn_after_unstructured_pruning.pth of 03_unstructured_pruning.ipynb is gone" in err
    assert "Resume without --notebooks (it runs 03_unstructured_pruning.ipynb again" in err
    assert "or with --notebooks 03,04,05." in err
    assert fake_books == [] and read_json(out / "metrics" / "pipeline.json")["finished"] == finished
    # What it advises works.
    assert smoke(out, "--resume", "--notebooks", "03,04,05") == 0 and fake_books == ["03", "04", "05"]

    # The resume line counts the finished notebooks kept, --notebooks or not (it said "0 already
    # finished (none)" though 01-04 were kept).
    (out / "report.json").write_text("{cut short")
    capsys.readouterr()
    assert smoke(out, "--resume", "--notebooks", "05") == 0
    assert "4 notebook(s) already finished and kept (01, 02, 03, 04), 1 to run" in capsys.readouterr().out

    # Only what the notebooks asked for read (course.READS): 06 reads 02's and 03's, not 05's report
    # (--notebooks 06 was refused over a damaged report.json, and told to run 05 again; diff review).
    (out / "report.json").write_text("{cut short")
    fake_books.clear()
    assert smoke(out, "--resume", "--notebooks", "06") == 0 and fake_books == ["06"]
    (out / "models_saved" / "cnn_after_unstructured_pruning.pth").unlink()
    assert smoke(out, "--resume", "--notebooks", "06") == 1
    assert "cnn_after_unstructured_pruning.pth of 03_unstructured_pruning.ipynb is gone" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["cut short", "bytes flipped"])
def test_the_advice_after_a_failure_is_a_command_that_gets_past_it(tmp_path, fake_books, capsys, damage):
    """03 failing on a damaged checkpoint of 02 advised --resume --notebooks 03, which repeated the
    failure forever: the advice names the finished notebooks before it, so --resume checks them.
    Bytes flipped inside a checkpoint leave a readable zip: --resume compares its record's SHA-256."""
    import shlex

    out = tmp_path / "out"
    assert smoke(out, "--notebooks", "01,02") == 0
    ckpt = out / "models_saved" / "cnn_before_pruning.pth"
    if damage == "cut short":  # a copy cut short
        ckpt.write_bytes(ckpt.read_bytes()[:20])
    else:  # a disk error inside the weights
        ckpt.write_bytes(ckpt.read_bytes().replace(b"weights", b"weighTs"))
    assert smoke(out, "--notebooks", "03") == 1
    advice = capsys.readouterr().err.rstrip().splitlines()[-1]
    assert advice.endswith("--notebooks 01,02,03"), advice
    fake_books.clear()
    command = shlex.split(advice.partition("continue the run with: ")[2])
    assert main(command[3:]) == 0 and fake_books == ["02", "03"]


@pytest.mark.parametrize("summary", ["gone", "damaged"])
def test_a_resume_without_its_pipeline_json_names_the_notebooks_that_continue_the_run(tmp_path, fake_books, capsys,
                                                                                     summary):
    """It said "nothing to resume ... Start the run without --resume" (or, damaged, "delete it and run
    again what wrote it"), which trains everything again, though the records and checkpoints were
    whole and later notebooks run alone continue the run (review)."""
    out = tmp_path / "out"
    assert smoke(out, "--notebooks", "01,02,03") == 0
    marker = out / "metrics" / "pipeline.json"
    run_id = read_json(marker)["run_id"]
    if summary == "gone":
        marker.unlink()
    else:
        marker.write_text('{"run_id": ')
    fake_books.clear()
    capsys.readouterr()
    assert smoke(out, "--resume") == 1
    err = capsys.readouterr().err
    assert "--resume cannot tell which notebooks" in err and "Its notebooks 01, 02 and 03 left their outputs whole" in err
    assert err.rstrip().endswith("run the same command without --resume, with --notebooks 04,05,06.")
    # What it advises continues the same run.
    assert smoke(out, "--notebooks", "04,05,06") == 0 and fake_books == ["04", "05", "06"]
    assert read_json(marker)["run_id"] == run_id and read_json(marker)["finished"] == ALL_BOOKS
    # From the first notebook whose outputs are not whole; without whole baselines, start over.
    marker.unlink()
    (out / "models_saved" / "cnn_after_unstructured_pruning.pth").unlink()
    assert smoke(out, "--resume") == 1 and "with --notebooks 03,04,05,06." in capsys.readouterr().err
    (out / "models_saved" / "cnn_before_pruning.pth").unlink()
    assert smoke(out, "--resume") == 1
    assert "baselines of notebook 02 are not all there either: start the run again" in capsys.readouterr().err


def test_later_notebooks_that_continue_a_run_without_its_pipeline_json_keep_the_earlier_ones_finished(
        tmp_path, fake_books, capsys):
    """Following the advice (--notebooks 05,06) wrote a pipeline.json that counted 05 and 06 alone
    finished: the next --resume said "0 kept, 6 to run" and trained everything again, and the
    results table gave 05-06's minutes as the run's (review). The earlier notebooks whose outputs of
    the run are whole stay finished, their time unknown."""
    from labutils.results import run_line

    out = tmp_path / "out"
    assert smoke(out, "--notebooks", "01,02,03,04") == 0
    marker = out / "metrics" / "pipeline.json"
    marker.unlink()
    assert smoke(out, "--notebooks", "05,06") == 0
    summary = read_json(marker)
    assert summary["finished"] == ALL_BOOKS and summary["untimed"] == ALL_BOOKS[:4]
    assert [summary["notebooks"][n] for n in ALL_BOOKS[:4]] == [None] * 4
    assert "(not counting 01, 02, 03, 04: their time is unknown)" in run_line(read_json(out / "report_details.json"))
    fake_books.clear()
    capsys.readouterr()
    assert smoke(out, "--resume") == 0 and fake_books == []
    assert "6 notebook(s) already finished and kept" in capsys.readouterr().out


def test_a_resume_without_its_pipeline_json_counts_only_the_outputs_of_its_run(tmp_path, fake_books, capsys):
    """After a new run replaced 01-02, the old run's 03-06 outputs still there counted as whole:
    the advice said "nothing is left to run" (review)."""
    out = tmp_path / "out"
    assert smoke(out) == 0
    assert smoke(out, "--notebooks", "01,02") == 0  # a new run
    marker = out / "metrics" / "pipeline.json"
    marker.unlink()
    capsys.readouterr()
    assert smoke(out, "--resume") == 1
    err = capsys.readouterr().err
    assert "Its notebooks 01 and 02 left their outputs whole" in err, err
    assert err.rstrip().endswith("with --notebooks 03,04,05,06."), err
    # Later notebooks alone count the new run's 01 and 02 finished, not the old run's 03.
    assert smoke(out, "--notebooks", "04,05,06") == 0
    assert read_json(marker)["finished"] == ALL_BOOKS[:2] + ALL_BOOKS[3:]


def test_a_resume_without_its_pipeline_json_names_the_runs_profile_seed_and_models(tmp_path, fake_books, capsys):
    """The advice ignored the command's options: with the default models on a --models cnn run it said
    start again (training three models), with --profile cpu on a smoke run "nothing is left to run" (review)."""
    out = tmp_path / "out"
    assert smoke(out, "--notebooks", "01,02,03") == 0
    (out / "metrics" / "pipeline.json").unlink()
    capsys.readouterr()
    assert main(["run", "--profile", "smoke", "--seed", "1", "--out", str(out), "--resume"]) == 1
    err = capsys.readouterr().err
    assert "It was made with seed 0, model list ['cnn']; this command has seed 1, model list" in err, err
    assert err.rstrip().endswith("with --notebooks 04,05,06, --seed 0 and --models cnn."), err
    assert smoke(out, "--notebooks", "04,05,06") == 0
    (out / "metrics" / "pipeline.json").unlink()
    assert main(["run", "--profile", "cpu", "--models", "cnn", "--out", str(out), "--resume"]) == 1
    err = capsys.readouterr().err
    assert "It was made with profile 'smoke'; this command has profile 'cpu'." in err, err
    assert "pass --notebooks with its number and --profile smoke, without --resume" in err, err


def test_a_record_left_by_a_save_that_did_not_finish_runs_its_notebook_again(tmp_path, fake_books, capsys):
    """A kernel killed inside Session.save (notebook 02 run again by hand) leaves the record that says
    so, which pipeline.json does not know of: --resume counted 02 and the later ones finished."""
    from labutils.artifacts import write_json
    from labutils.session import SAVE_NOT_FINISHED

    out = tmp_path / "out"
    assert smoke(out) == 0
    write_json(out / "metrics" / "cnn_before_pruning.json", {  # as Session.save writes it before the checkpoint
        "model": "cnn", "stage": "before_pruning", "produced": False,
        "reason": f"{SAVE_NOT_FINISHED} (interrupted, or the disk was full): run notebook 02 again"})
    fake_books.clear()
    capsys.readouterr()
    assert smoke(out, "--resume") == 0 and fake_books == ["02", "03", "04", "05", "06"]
    assert "cnn_before_pruning.json of 02_baseline_training.ipynb is left by a save that did not finish" in (
        capsys.readouterr().out)


def test_the_reports_timings_are_those_of_the_run_that_made_it(tmp_path, fake_books, capsys):
    """A failed --notebooks 03 after a whole run gave the report's sidecar its own few minutes (the
    results table said "6 min 18 s for the notebooks" of a 22-minute run). A later session that
    finishes with 05 still finished (06 alone) adds its time."""
    out = tmp_path / "out"
    assert smoke(out) == 0
    details = out / "report_details.json"
    assert read_json(details)["timings"] == read_json(out / "metrics" / "pipeline.json")
    assert read_json(details)["timings"]["finished"] == ALL_BOOKS
    before = details.read_bytes()
    ckpt = out / "models_saved" / "cnn_before_pruning.pth"
    ckpt.write_bytes(ckpt.read_bytes()[:20])  # 03 fails on it
    assert smoke(out, "--notebooks", "03") == 1
    assert details.read_bytes() == before
    assert smoke(out, "--resume") == 0
    assert smoke(out, "--notebooks", "06") == 0
    assert read_json(details)["timings"] == read_json(out / "metrics" / "pipeline.json")


def test_a_smoke_run_whose_synthetic_data_was_deleted_resumes(tmp_path, fake_books, capsys):
    """Refused with advice no option follows ("pass the run folder's own synthetic data"), even with
    nothing left to run: any notebook writes the same synthetic images again (review)."""
    import shutil

    out = tmp_path / "out"
    assert smoke(out, "--notebooks", "01,02,03") == 0
    shutil.rmtree(out / "data-synthetic")
    fake_books.clear()
    assert smoke(out, "--resume") == 0 and fake_books == ["04", "05", "06"]
    assert read_json(out / "metrics" / "pipeline.json")["data"] == "synthetic CIFAR-shaped data"
    shutil.rmtree(out / "data-synthetic")
    assert smoke(out, "--resume") == 0 and "0 to run" in capsys.readouterr().out
    # Damaged, it is refused with advice that can be followed: delete it.
    (out / "data-synthetic" / "cifar-10-batches-py").mkdir(parents=True)
    (out / "data-synthetic" / "cifar-10-batches-py" / "test_batch").write_bytes(b"cut short")
    assert smoke(out, "--resume") == 1
    assert "resume it with --profile smoke with the run folder's data-synthetic/ deleted" in capsys.readouterr().err
    shutil.rmtree(out / "data-synthetic")
    assert smoke(out, "--resume") == 0


def test_an_interrupted_session_records_its_time_up_to_the_interrupt(tmp_path, monkeypatch):
    """pipeline.json's session_seconds kept the value of its last write, after notebook 01 (review)."""
    import time

    import papermill

    def execute(src, dst, parameters, **kw):
        if Path(src).name.startswith("02"):
            time.sleep(0.5)
            raise KeyboardInterrupt
        nbformat.write(nbformat.v4.new_notebook(), dst)

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    assert smoke(tmp_path / "out", "--notebooks", "01,02") == 130
    summary = read_json(tmp_path / "out" / "metrics" / "pipeline.json")
    assert summary["session_seconds"] >= 0.5 and summary["finished"] == ALL_BOOKS[:1]


def test_an_interrupt_does_not_end_with_the_leftover_cell_tasks_traceback(tmp_path, monkeypatch, caplog):
    """Ctrl-C sometimes ended with asyncio's "Task exception was never retrieved ... DeadKernelError"
    after the "continue this run with" line: papermill's cell task, collected late. Other errors stay."""
    import asyncio
    import gc

    import papermill
    from nbclient.exceptions import DeadKernelError

    left = []

    def execute(src, dst, parameters, **kw):
        loop = asyncio.new_event_loop()

        async def fails(error):
            raise error

        left.extend(loop.create_task(fails(e)) for e in (DeadKernelError("Kernel died"), ValueError("other")))
        loop.run_until_complete(asyncio.sleep(0))  # the tasks end with their errors, never retrieved
        loop.close()
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    assert smoke(tmp_path / "out", "--notebooks", "01") == 130
    left.clear()
    gc.collect()  # the tasks go, and asyncio logs what they never delivered
    logged = [r.exc_info[1] for r in caplog.records if r.name == "asyncio" and r.exc_info]
    assert [type(e) for e in logged] == [ValueError]


def test_an_interrupt_before_a_notebook_replaced_anything_keeps_its_earlier_executed_copy(tmp_path, fake_books,
                                                                                           monkeypatch, capsys):
    """Ctrl-C 20 s into --notebooks 03 of a finished run, before 03 saved anything, deleted its executed
    notebook (checkpoint and record untouched), and `check` then failed on it (review). The run stays as
    it was; once a notebook has replaced one of its outputs, its earlier copy goes, as before."""
    import shlex

    import papermill

    from labutils.artifacts import write_json

    out = tmp_path / "out"
    assert smoke(out) == 0
    marker, executed = out / "metrics" / "pipeline.json", out / "notebooks" / "03_unstructured_pruning.ipynb"
    before, text = read_json(marker), executed.read_bytes()
    fake = papermill.execute_notebook

    def interrupted(src, dst, parameters, **kw):  # 03 draws its first figure, then Ctrl-C before its first save
        (out / "figures").mkdir(exist_ok=True)
        (out / "figures" / "03_sensitivity.png").write_bytes(b"drawn again from the same inputs")
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", interrupted)
    assert smoke(out, "--notebooks", "03,04") == 130
    assert executed.read_bytes() == text
    after = read_json(marker)
    assert after["finished"] == before["finished"] == ALL_BOOKS and after["notebooks"] == before["notebooks"]
    # --resume would run nothing (both count finished): the advice is the same command again (review)
    err = capsys.readouterr().err
    assert "interrupted: 03, 04 had replaced nothing yet, so the run is as it was (03, 04 still finished); to run " \
           "them again: python -m labutils run --profile smoke" in err, err
    command = shlex.split(err.partition("to run them again: ")[2].splitlines()[0])
    assert "--resume" not in command and command[command.index("--notebooks") + 1] == "03,04"

    def saves_then_interrupted(src, dst, parameters, **kw):  # Session.save's first write, then Ctrl-C
        write_json(out / "metrics" / "cnn_after_unstructured_pruning.json", {"produced": False})
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", saves_then_interrupted)
    assert smoke(out, "--notebooks", "03") == 130
    assert not executed.exists() and executed.name not in read_json(marker)["finished"]
    assert "interrupted: continue this run with: python -m labutils run --resume" in capsys.readouterr().err
    monkeypatch.setattr(papermill, "execute_notebook", fake)  # the command advised first runs 03 and 04
    fake_books.clear()
    assert main(command[3:]) == 0 and fake_books == ["03", "04"]


def test_a_notebook_run_again_names_the_later_ones_it_outdated_and_how_to_run_them(tmp_path, fake_books,
                                                                                 monkeypatch, capsys):
    """--notebooks 04 on a finished run left 05 and 06 unfinished and report.json stale without a word;
    `check` then failed ("saved again since report.json was written") (review)."""
    import shlex

    import papermill

    from labutils.artifacts import write_json

    out = tmp_path / "out"
    assert smoke(out) == 0
    fake = papermill.execute_notebook

    def execute(src, dst, parameters, **kw):  # as Session.save marks the notebooks after a stage unfinished
        fake(src, dst, parameters, **kw)
        number, marker = Path(src).name[:2], out / "metrics" / "pipeline.json"
        if number in ("02", "03", "04"):
            saved = read_json(marker)
            write_json(marker, saved | {"finished": [n for n in saved["finished"] if n[:2] <= number]})

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    capsys.readouterr()
    assert smoke(out, "--notebooks", "04") == 0
    printed = capsys.readouterr().out
    assert "note: notebook(s) 05, 06 no longer count as finished" in printed, printed
    assert "their executed notebooks and report.json are out of date until they run again" in printed
    command = shlex.split(printed.partition("run again, with: ")[2].splitlines()[0])
    assert "--resume" in command and "--notebooks" not in command and command[command.index("--models") + 1] == "cnn"
    fake_books.clear()
    assert main(command[3:]) == 0 and fake_books == ["05", "06"]
    assert "no longer count" not in capsys.readouterr().out
    assert read_json(out / "metrics" / "pipeline.json")["finished"] == ALL_BOOKS


def test_a_resume_with_nothing_to_run_writes_nothing(tmp_path, fake_books, capsys):
    """It rewrote pipeline.json and the report's timings: session_seconds 290.73 became 0.0007 (review)."""
    out = tmp_path / "out"
    assert smoke(out) == 0
    run_id = read_json(out / "metrics" / "pipeline.json")["run_id"]
    files = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert smoke(out, "--resume") == 0
    printed = capsys.readouterr().out
    assert "6 notebook(s) already finished and kept" in printed and "0 to run" in printed
    assert f"done: profile smoke, run {run_id}" in printed
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()} == files


def test_an_interrupt_before_the_run_wrote_anything_advises_the_same_command_again(tmp_path, fake_books,
                                                                                  monkeypatch, capsys):
    """The advice was --resume, which then failed "nothing to resume" (review)."""
    import shlex

    def interrupted(*args):
        raise KeyboardInterrupt

    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "_identity", interrupted)  # Ctrl-C before the run's first write
        assert smoke(out, "--notebooks", "01,02") == 130
    assert not out.exists()
    err = capsys.readouterr().err
    assert "nothing of this run was recorded yet; run it again with: python -m labutils run --profile" in err
    command = shlex.split(err.partition("run it again with: ")[2].splitlines()[0])
    assert "--resume" not in command
    assert main(command[3:]) == 0 and fake_books == ["01", "02"]


def test_a_refused_resume_names_every_setting_that_differs(tmp_path, fake_books, capsys):
    """--resume --seed 2 on a --models cnn seed-0 run named the model list alone; the seed came next time."""
    out = tmp_path / "out"
    assert smoke(out, "--notebooks", "01") == 0
    capsys.readouterr()
    assert main(["run", "--profile", "smoke", "--seed", "2", "--out", str(out), "--resume"]) == 1
    err = capsys.readouterr().err
    assert ("it was made with model list ['cnn'], seed 0; this invocation has model list "
            "['cnn', 'vit', 'vit_scratch'], seed 2.") in err, err
    assert "resume it with --models cnn and --seed 0, or start a new run without --resume in another --out" in err


@pytest.mark.parametrize("asked, left, runs", [("02", "01, 03, 04, 05, 06", "01, 02, 03, 04, 05, 06"),
                                                ("01,02", "03, 04, 05, 06", "03, 04, 05, 06")])
def test_a_new_run_over_a_finished_one_names_the_executed_notebooks_it_left_and_what_resume_runs(
        tmp_path, fake_books, capsys, asked, left, runs):
    """--notebooks 02 on a finished run started a new run and left the old run's executed 01, 03-06
    in notebooks/ without a word at the end (review)."""
    import shlex

    out = tmp_path / "out"
    assert smoke(out) == 0
    old_id = read_json(out / "metrics" / "pipeline.json")["run_id"]
    capsys.readouterr()
    assert smoke(out, "--notebooks", asked) == 0
    printed = capsys.readouterr().out
    new_id = read_json(out / "metrics" / "pipeline.json")["run_id"]
    assert new_id != old_id
    assert (f"note: this started run {new_id}; the executed notebook(s) {left} in notebooks/ (and report.json) are "
            f"still those of run {old_id}, which it replaced, until they run again") in printed, printed
    assert f"(it runs {runs}" in printed
    assert ("02 again too, as this run has not finished 01 before it" in printed) == (asked == "02")
    command = shlex.split(printed.partition("To run the rest of this run: ")[2].partition(" (it runs")[0])
    assert "--resume" in command and "--notebooks" not in command
    fake_books.clear()
    assert main(command[3:]) == 0 and ", ".join(fake_books) == runs  # what the note said it runs
    assert "still those of" not in capsys.readouterr().out
    assert read_json(out / "metrics" / "pipeline.json")["finished"] == ALL_BOOKS
