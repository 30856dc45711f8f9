"""benchmarks/gpu/adopt.py: what a GPU session's results.tar becomes in the repository. It runs once
at the end of a scarce booking, so every refusal must leave the repository as it was."""
import importlib.util
import io
import json
import shutil
import subprocess
import tarfile

import nbformat
import pytest

from labutils.artifacts import REPO_ROOT
from labutils.results import START

spec = importlib.util.spec_from_file_location("adopt", REPO_ROOT / "benchmarks" / "gpu" / "adopt.py")
adopt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(adopt)

NOTEBOOKS = sorted(p.name for p in (REPO_ROOT / "notebooks").glob("*.ipynb"))
NONE = {"original_accuracy": None, "pruned_accuracy": None, "pruning_percentage": None}
REPORT = {"initial_accuracies": {"cnn_before_pruning": 0.91, "vit_before_pruning": None,
                                 "vit_scratch_before_pruning": None},
          "unstructured_pruning": {"cnn": {"original_accuracy": 0.91, "pruned_accuracy": 0.9,
                                           "pruning_percentage": 95.0}, "vit": NONE, "vit_scratch": NONE},
          "structured_pruning": {"cnn": {"original_accuracy": 0.91, "pruned_accuracy": 0.9,
                                         "pruning_percentage": 50.0}, "vit": NONE, "vit_scratch": NONE}}


def executed(name: str) -> bytes:
    """The workbook's notebook as papermill leaves it: an injected cell, outputs, its metadata."""
    nb = nbformat.read(REPO_ROOT / "notebooks" / name, as_version=4)
    nb.cells.insert(1, nbformat.v4.new_code_cell('PROFILE = "full"', metadata={"tags": ["injected-parameters"]}))
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", text=f"ran {name}\n")]
            cell.metadata["papermill"] = {"status": "completed"}
    nb.metadata["papermill"] = {"parameters": {"PROFILE": "full"}}
    return nbformat.writes(nb).encode()


def git(root, *args):
    return subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", "-c",
                           "commit.gpgsign=false", *args], check=True, capture_output=True, text=True).stdout.strip()


def make_tar(path, finished=NOTEBOOKS[:5], profile="full", report_run="R1", full=True, sweep=False, lacking=(),
             run_profile=None, smoke_sweep=False, extra=None, commit=None, report=True):
    files = {"run.log": b"log\n", "stages": b"start full\n"}
    if full:
        commit = commit or git(path.parent / "repo", "rev-parse", "--short=12", "HEAD")  # the repo fixture's HEAD
        details = {"run": {"run_id": report_run, "profile": profile, "device": "NVIDIA H100 80GB HBM3",
                           "date": "2026-12-06T01:00:00+00:00", "data": "CIFAR-10", "git_commit": commit,
                           "reduced": profile != "full"},
                   "entries": {"cnn_before_pruning": {"produced": True, "accuracy": 0.91}}
                   | {f"cnn_after_{s}": {"produced": True, "accuracy": 0.9, "original_accuracy": 0.91,
                                         "pruning_percentage": REPORT[s]["cnn"]["pruning_percentage"]}
                      for s in ("unstructured_pruning", "structured_pruning")}}
        files |= {"full/report.json": json.dumps(REPORT).encode(),
                  "full/report_details.json": json.dumps(details).encode(),
                  "full/metrics/pipeline.json": json.dumps({"run_id": "R1", "profile": run_profile or profile,
                                                            "finished": list(finished)}).encode(),
                  "full/figures/03_study.png": b"png", "full/figures/06_accuracy_vs_bits.png": b"png"}
        if not report:  # a run stopped before notebook 05
            del files["full/report.json"], files["full/report_details.json"]
        files |= {f"full/notebooks/{n}": executed(n) for n in finished if n not in lacking}
    if sweep:
        files |= {"sweep/sweep_cnn.json": json.dumps({"smoke": smoke_sweep}).encode(), "sweep/sweep_cnn.md": b"| a |"}
    files |= extra or {}
    with tarfile.open(path, "w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def repo(tmp_path):
    """A repository as adopt finds it: the workbook's notebooks and README, an older figure, committed
    (the run's commit is HEAD unless a test says otherwise)."""
    root = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "notebooks", root / "notebooks")
    shutil.copy(REPO_ROOT / "README.md", root / "README.md")
    (root / "figures").mkdir()
    (root / "figures" / "04_old_run.png").write_bytes(b"old")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "the run's commit")
    return root


def snapshot(root):
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file() and ".git" not in p.parts}


def test_a_full_run_becomes_the_reference_and_only_its_finished_notebooks_show(repo, tmp_path):
    folder = adopt.adopt(make_tar(tmp_path / "r.tar", sweep=True), repo=repo)
    assert folder == repo / "benchmarks" / "results" / "h100-2026-12-06"
    assert sorted(p.name for p in folder.iterdir()) == ["pipeline.json", "run.log", "stages",
                                                        "sweep_cnn.json", "sweep_cnn.md"]
    report = nbformat.read(repo / "notebooks" / "05_report.ipynb", as_version=4)
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in report.cells)
    assert "ran 05_report.ipynb" in json.dumps(report.cells[-1].outputs)
    quant = nbformat.read(repo / "notebooks" / "06_quantization.ipynb", as_version=4)  # not finished
    assert all(not c.get("outputs") and "papermill" not in c.metadata for c in quant.cells)
    assert "papermill" not in quant.metadata
    assert sorted(p.name for p in (repo / "figures").iterdir()) == ["03_study.png"]
    assert json.loads((repo / "report.json").read_text()) == REPORT
    readme = (repo / "README.md").read_text()
    assert "Run `R1`: profile full on NVIDIA H100 80GB HBM3" in readme[readme.index(START):]


@pytest.mark.parametrize("tar_args, message", [
    (dict(finished=NOTEBOOKS[:4]), "05_report.ipynb did not finish in this run"),
    (dict(report_run="R0"), "report_details.json names run R0, but pipeline.json run R1"),
    (dict(lacking=["05_report.ipynb"]), "pipeline.json says 05_report.ipynb finished, but the tar lacks"),
    (dict(profile="cpu"), "comes from a 'cpu' run"),
    (dict(full=False), "neither a run"),
    (dict(full=False, sweep=True), "a sweep alone names no device or date"),
    # Review of adopt: the sidecar alone said "full"; a dry run's smoke sweep; a member escaping the folder.
    (dict(run_profile="smoke"), "its pipeline.json says profile 'smoke'"),
    (dict(sweep=True, smoke_sweep=True), "come from a --smoke sweep"),
    (dict(extra={"../escaped.txt": b"x"}), "cannot be unpacked safely|would land outside"),
    (dict(lacking=["04_structured_pruning.ipynb"]), "pipeline.json says 04_structured_pruning.ipynb finished"),
])
def test_refused_with_nothing_changed(repo, tmp_path, tar_args, message):
    before = snapshot(repo)
    with pytest.raises(adopt.Refused, match=message):
        adopt.adopt(make_tar(tmp_path / "r.tar", **tar_args), repo=repo)
    assert snapshot(repo) == before


def test_a_folder_argument_is_one_name_inside_benchmarks_results(repo, tmp_path):
    """An absolute FOLDER (the tool's files_at, say) filed the logs outside the repository, adopted
    the run, then crashed before the results test."""
    before = snapshot(repo)
    for name in (str(tmp_path / "outside"), "../../x", ".."):
        with pytest.raises(adopt.Refused, match="must be one folder name"):
            adopt.adopt(make_tar(tmp_path / "r.tar"), name, repo=repo)
    assert snapshot(repo) == before and not (tmp_path / "outside").exists()


def test_a_notebook_after_05_the_tar_missed_counts_as_unfinished(repo, tmp_path):
    """06 renamed into place after collect.sh read the notebooks: 01-05 were refused outright."""
    adopt.adopt(make_tar(tmp_path / "r.tar", finished=NOTEBOOKS, lacking=["06_quantization.ipynb"]), repo=repo)
    quant = nbformat.read(repo / "notebooks" / "06_quantization.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in quant.cells)
    # 01-05 were adopted: the tar's executed notebooks, the injected cell dropped, and their figures.
    for name in NOTEBOOKS[:5]:
        nb = nbformat.read(repo / "notebooks" / name, as_version=4)
        assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
        outputs = [c.outputs for c in nb.cells if c.cell_type == "code"]
        assert outputs and all(f"ran {name}" in json.dumps(o) for o in outputs), name
    assert sorted(p.name for p in (repo / "figures").iterdir()) == ["03_study.png"]  # 06's stays out


def test_a_sweep_alone_files_its_tables_and_touches_nothing_else(repo, tmp_path):
    before = snapshot(repo)
    folder = adopt.adopt(make_tar(tmp_path / "r.tar", full=False, sweep=True), "h100-2026-12-06-sweep", repo=repo)
    assert sorted(p.name for p in folder.iterdir()) == ["run.log", "stages", "sweep_cnn.json", "sweep_cnn.md"]
    assert {k: v for k, v in snapshot(repo).items() if "benchmarks" not in k.parts} == before


def test_an_existing_results_folder_is_refused(repo, tmp_path):
    (repo / "benchmarks" / "results" / "h100-2026-12-06").mkdir(parents=True)
    with pytest.raises(adopt.Refused, match="exists already"):
        adopt.adopt(make_tar(tmp_path / "r.tar"), repo=repo)
    assert (repo / "figures" / "04_old_run.png").exists()


def test_a_run_whose_notebooks_changed_since_its_commit_is_refused(repo, tmp_path):
    """A fix committed to a notebook after the run's commit was silently undone: adopting copies the
    run's executed notebooks over notebooks/ (a dry run of a GPU session)."""
    tar = make_tar(tmp_path / "r.tar")
    path = repo / "notebooks" / "03_unstructured_pruning.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[2].source += "\nA fix added after the run's commit."
    nbformat.write(nb, path)
    before = snapshot(repo)
    with pytest.raises(adopt.Refused, match=r"03_unstructured_pruning.ipynb changed since the run's commit \w+ "
                                            r"\(cell 2 first\): adopting the run would put its older text back"):
        adopt.adopt(tar, repo=repo)
    assert snapshot(repo) == before


def test_a_readme_without_the_results_section_is_refused_with_nothing_changed(repo, tmp_path):
    """The run's files were copied, then write_readme raised ResultsError: a half-adopted repository."""
    (repo / "README.md").write_text("# no results markers\n")
    before = snapshot(repo)
    with pytest.raises(adopt.Refused, match="README.md cannot take the run's results .*no results section"):
        adopt.adopt(make_tar(tmp_path / "r.tar"), repo=repo)
    assert snapshot(repo) == before and not (repo / "benchmarks").exists()


def test_a_report_edited_apart_from_its_sidecar_is_refused(repo, tmp_path, monkeypatch):
    before = snapshot(repo)
    monkeypatch.setitem(REPORT["initial_accuracies"], "cnn_before_pruning", 0.95)
    with pytest.raises(adopt.Refused, match="from different runs"):
        adopt.adopt(make_tar(tmp_path / "r.tar"), repo=repo)
    assert snapshot(repo) == before


def test_a_missing_tar_is_named_and_a_relative_path_is_the_callers(repo, tmp_path, capsys):
    """adopt.sh cd'd to the repository before passing the path on: a relative PATH was looked for
    there, and the error read "it cannot be unpacked safely (FileNotFoundError ...)"."""
    import subprocess

    missing = tmp_path / "nowhere.tar"
    with pytest.raises(adopt.Refused, match=f"^no such file: {missing}$"):
        adopt.adopt(missing, repo=repo)
    assert adopt.main([str(missing)]) == 1
    assert capsys.readouterr().err == f"error: no such file: {missing}\n"
    script = REPO_ROOT / "benchmarks" / "gpu" / "adopt.sh"
    lost = subprocess.run(["bash", str(script), "nowhere.tar"], cwd=tmp_path, capture_output=True, text=True)
    assert lost.returncode == 1 and lost.stderr == f"error: no such file: {missing.resolve()}\n"
    make_tar(tmp_path / "r.tar", full=False)  # found in the caller's folder, then refused: nothing changed
    found = subprocess.run(["bash", str(script), "r.tar"], cwd=tmp_path, capture_output=True, text=True)
    assert found.returncode == 1 and "it holds neither a run (full/) nor a sweep" in found.stderr


def test_a_run_that_did_not_reach_05_still_files_the_sweep_before_it(repo, tmp_path, monkeypatch, capsys):
    """STAGES="sweep full" in a 15-minute booking: the full run stopped before 05, and the whole tar
    was refused, the finished sweep with it (review)."""
    tar = make_tar(tmp_path / "r.tar", finished=NOTEBOOKS[:3], report=False, sweep=True)
    before = snapshot(repo)
    with pytest.raises(adopt.Refused, match="did not reach notebook 05; its sweep can be filed alone: name the folder"):
        adopt.adopt(tar, repo=repo)
    assert snapshot(repo) == before
    with pytest.raises(adopt.SweepFiledAlone, match="did not reach notebook 05") as filed:
        adopt.adopt(tar, "h100-2026-12-06-sweep", repo=repo)
    assert filed.value.folder == repo / "benchmarks" / "results" / "h100-2026-12-06-sweep"
    assert sorted(p.name for p in filed.value.folder.iterdir()) == ["pipeline.json", "run.log", "stages",
                                                                   "sweep_cnn.json", "sweep_cnn.md"]
    assert {k: v for k, v in snapshot(repo).items() if "benchmarks" not in k.parts} == before
    # The command says so by its exit status: 2, neither adopted (0) nor refused with nothing changed (1).
    original = adopt.adopt
    monkeypatch.setattr(adopt, "REPO", repo)
    monkeypatch.setattr(adopt, "adopt", lambda tar, folder: original(tar, folder, repo=repo))
    assert adopt.main([str(tar), "h100-2026-12-07-sweep"]) == 2
    out, err = capsys.readouterr()
    assert "error: the run in" in err and "is not adopted: it holds no full/report.json" in err
    assert "filed its sweep alone in benchmarks/results/h100-2026-12-07-sweep/" in out


@pytest.mark.parametrize("change, message", [
    ("made-up", r"its commit 0123456789ab is not a commit of this repository \(HEAD \w{12}\): .* run again on HEAD"),
    ("code", r"labutils/ or notebooks/ here \(HEAD \w{12}, with any uncommitted edits\) differ from the run's "
             r"commit (\w{12}): .*Adopt it in a checkout of \1"),
    # Uncommitted: the next commit would have filed the results as its code's (review).
    ("uncommitted", r"labutils/ or notebooks/ here \(HEAD \w{12}, with any uncommitted edits\) differ"),
    ("no-git", r"it ran code that was no commit \(no-git.0123: uncommitted changes, or no git\)"),
    ("+changes", r"it ran code that was no commit \(0123456789ab\+changes.3fa2: uncommitted changes"),
])
def test_a_run_of_another_code_than_head_is_refused(repo, tmp_path, change, message):
    """adopt compared only the notebooks' text: a made-up commit was adopted and written into README,
    and a run of an earlier commit after labutils/course.py changed, without a word (review)."""
    commit = {"made-up": "0123456789ab", "no-git": "no-git.0123", "+changes": "0123456789ab+changes.3fa2"}.get(change)
    if change in ("code", "uncommitted"):
        commit = git(repo, "rev-parse", "--short=12", "HEAD")
        (repo / "labutils").mkdir()
        (repo / "labutils" / "course.py").write_text("FIXED = True\n")
        git(repo, "add", "labutils")
        if change == "code":
            git(repo, "commit", "-qm", "a fix after the run")
    tar = make_tar(tmp_path / "r.tar", commit=commit)
    before = snapshot(repo)
    with pytest.raises(adopt.Refused, match=message):
        adopt.adopt(tar, repo=repo)
    assert snapshot(repo) == before


def test_a_docs_only_commit_after_the_run_is_fine(repo, tmp_path):
    tar = make_tar(tmp_path / "r.tar")
    (repo / "NOTES.md").write_text("written after the run\n")
    git(repo, "add", "NOTES.md")
    git(repo, "commit", "-qm", "docs")
    adopt.adopt(tar, repo=repo)
    assert json.loads((repo / "report.json").read_text()) == REPORT


def test_a_notebook_renamed_since_the_run_is_refused_not_a_traceback(repo, tmp_path):
    tar = make_tar(tmp_path / "r.tar")
    notebooks = repo / "notebooks"
    (notebooks / "03_unstructured_pruning.ipynb").rename(notebooks / "03_pruning.ipynb")
    before = snapshot(repo)
    with pytest.raises(adopt.Refused, match=r"03_unstructured_pruning.ipynb finished in the run but is not in "
                                            r"notebooks/: it was renamed or removed since the run's commit \w{12}"):
        adopt.adopt(tar, repo=repo)
    assert snapshot(repo) == before


def test_prepare_names_the_pack_it_needs_when_given_a_cifar10_folder(tmp_path):
    """`prepare.sh /tmp/data` (a CIFAR-10 data root, the natural guess) failed with cp's "cannot stat"."""
    root = tmp_path / "repo"
    (root / "benchmarks" / "gpu").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "benchmarks" / "gpu" / "prepare.sh", root / "benchmarks" / "gpu")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "c")
    data = tmp_path / "data"
    (data / "cifar-10-batches-py").mkdir(parents=True)
    done = subprocess.run(["bash", str(root / "benchmarks" / "gpu" / "prepare.sh"), str(data)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1 and not (root / ".gpu").exists()
    assert done.stderr == (f"error: {data} has no cifar10_q75.npz: PACK_DIR must hold cifar10_q75.npz and "
                           f"make_cifar10.py (the course's offline CIFAR-10 pack); a cifar-10-batches-py folder is "
                           f"not it\n")
