"""Here, after a GPU session: file what results.tar (from collect.sh) brought back.

    python3 benchmarks/gpu/adopt.py PATH/results.tar [FOLDER]     (adopt.sh runs this, then the test)

A full run becomes the repository's reference run: the notebooks it finished replace
``notebooks/`` (without papermill's injected-parameters cell, which would override the
``parameters`` cell a student edits; its values stay in the notebook's metadata), the others lose
their outputs, so no notebook shows a half-run or an earlier run; ``figures/`` becomes the
finished notebooks' figures; ``report.json`` and ``report_details.json`` go to the root; README's
results table is written again. The sweep's tables, the logs and ``pipeline.json`` go to
``benchmarks/results/FOLDER/`` (default ``<gpu>-<date>``; an existing folder is refused).

A tar with the sweep alone (``STAGES=sweep``) files just that folder (FOLDER is then required).
Refused, with nothing changed: a reduced run (by its sidecar or its pipeline.json), a --smoke
sweep, a report without its sidecar, a run whose notebook 05 did not finish, a report of another
run than the pipeline's, a run whose commit is not one of this repository's or whose labutils/ or
notebooks/ changed since (a docs-only commit after it is fine), a run whose notebooks' text is not
the repository's (edited since, or renamed), a tar whose members would land outside its folder,
a FOLDER that is not one name.

A run refused for itself (it did not reach notebook 05, say: ``STAGES="sweep full"`` in a short
booking) does not lose the sweep before it: the sweep's tables are filed alone in FOLDER (required,
as for a sweep alone), nothing else changes, and the exit status is 2 (0: adopted or a sweep alone
filed; 1: refused, nothing changed).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # this checkout's labutils, whatever is installed

import nbformat  # noqa: E402

from labutils.pipeline import as_workbook_notebook  # noqa: E402
from labutils.results import ResultsError, load_reference, updated_readme, write_readme  # noqa: E402

REPORT_NOTEBOOK = "05_report.ipynb"


class Refused(Exception):
    """The tar cannot be adopted; nothing was changed."""


class SweepFiledAlone(Exception):
    """The tar's run was refused (the message says why), but its sweep was filed in ``folder``."""

    def __init__(self, folder: Path, reason: str):
        super().__init__(reason)
        self.folder = folder


def default_folder(details: dict) -> str:
    """``h100-2026-11-23`` from the run's device and date."""
    run = details["run"]
    name = re.sub(r"[^a-z0-9]+", "-", run["device"].lower().replace("nvidia", "")).strip("-")
    return f"{name.split('-')[0]}-{run['date'][:10]}"


def check_run(run: Path) -> tuple[dict, list[str]]:
    """(details, finished notebooks) of a run that may become the reference, else Refused."""
    if not (run / "report.json").is_file():
        raise Refused("it holds no full/report.json: the run did not reach notebook 05")
    try:
        _, details = load_reference(run)  # a full run, with its sidecar
    except (ResultsError, ValueError) as err:
        raise Refused(str(err)) from None
    summary_path = run / "metrics" / "pipeline.json"
    if not summary_path.is_file():
        raise Refused("it holds no full/metrics/pipeline.json: which notebooks finished is unknown")
    summary = json.loads(summary_path.read_text())
    if summary.get("profile") != "full":  # the sidecar alone could be edited (load_reference read it)
        raise Refused(f"its pipeline.json says profile {summary.get('profile')!r}: only a full run becomes "
                      f"the reference")
    if REPORT_NOTEBOOK not in summary.get("finished", []):
        raise Refused(f"{REPORT_NOTEBOOK} did not finish in this run: its report.json may be incomplete")
    missing = [n for n in summary["finished"] if not (run / "notebooks" / n).is_file()]
    if [n for n in missing if n <= REPORT_NOTEBOOK]:  # a tar taken while a notebook was being renamed into place, say
        raise Refused(f"pipeline.json says {', '.join(missing)} finished, but the tar lacks the executed notebook")
    for name in missing:  # 06 renamed into place after the tar read the notebooks: 01-05 still stand
        print(f"note: {name} finished after the tar took the notebooks: it counts as not finished")
    if details["run"].get("run_id") != summary.get("run_id"):
        raise Refused(f"report_details.json names run {details['run'].get('run_id')}, but pipeline.json "
                      f"run {summary.get('run_id')}: the report is not this run's")
    return details, [n for n in summary["finished"] if n not in missing]


def check_commit(repo: Path, commit: str | None) -> None:
    """Refused unless ``commit`` is a commit of ``repo`` whose labutils/ and notebooks/ are this working
    tree's: the results README and report.json would otherwise credit other code to this checkout (an
    uncommitted edit too: the next commit would file the results as its code's)."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)

    head = git("rev-parse", "--short=12", "HEAD").stdout.strip() or "unknown (no git checkout)"
    if re.fullmatch(r"[0-9a-f]{7,40}\+changes\..*|no-git\..*", str(commit)):
        raise Refused(f"it ran code that was no commit ({commit}: uncommitted changes, or no git): its code is "
                      f"unknown here. Commit, run prepare.sh, and run again")
    # Hex only: nothing reaches git as an option.
    if not re.fullmatch(r"[0-9a-f]{7,40}", str(commit)) or git("rev-parse", "--quiet", "--verify",
                                                              f"{commit}^{{commit}}").returncode:
        raise Refused(f"its commit {commit} is not a commit of this repository (HEAD {head}): the run's code is "
                      f"unknown here. Fetch that commit and adopt again, or run again on HEAD")
    if git("diff", "--quiet", commit, "--", "labutils", "notebooks").returncode:  # against the working tree
        raise Refused(f"labutils/ or notebooks/ here (HEAD {head}, with any uncommitted edits) differ from the "
                      f"run's commit {commit}: its results would be filed as this code's. Adopt it in a checkout "
                      f"of {commit} (git worktree add DIR {commit}), or run again on this code")


def sources(path: Path) -> list[tuple[str, str]]:
    """A notebook's text: each cell's type and source, papermill's injected cell left out."""
    nb = nbformat.read(path, as_version=4)
    return [(c.cell_type, c.source) for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]


def check_sources(run: Path, repo: Path, finished: list[str], commit: str) -> None:
    """Refused when a finished notebook's text differs from the repository's: the workbook's
    notebooks changed since the run's commit, and adopting it would put their older text back."""
    for name in finished:
        if not (repo / "notebooks" / name).is_file():
            raise Refused(f"{name} finished in the run but is not in notebooks/: it was renamed or removed since "
                          f"the run's commit {commit}. Adopt it in a checkout of {commit}, or run again")
        ran, now = sources(run / "notebooks" / name), sources(repo / "notebooks" / name)
        if ran != now:
            cell = next((i for i, (a, b) in enumerate(zip(ran, now)) if a != b), min(len(ran), len(now)))
            raise Refused(f"{name} changed since the run's commit {commit} (cell {cell} first): adopting the run "
                          f"would put its older text back. Adopt it in a checkout of {commit}, or run again")


def clear_outputs(path: Path) -> None:
    """A notebook with no outputs and no trace of an execution (papermill's times and status)."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        for key in ("papermill", "execution"):
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, path)


def adopt_notebooks(run: Path, repo: Path, finished: list[str]) -> None:
    for path in sorted((repo / "notebooks").glob("*.ipynb")):
        if path.name in finished:
            shutil.copy(run / "notebooks" / path.name, path)
            as_workbook_notebook(path)  # students open these too: their parameters cell must govern
        else:
            clear_outputs(path)
            print(f"note: {path.name} did not finish in this run: its outputs in notebooks/ are cleared")
    figures = repo / "figures"
    figures.mkdir(exist_ok=True)
    for old in figures.glob("*.png"):
        old.unlink()
    for fig in sorted((run / "figures").glob("*.png")):  # "03_study.png" comes from 03_*.ipynb
        if any(name.startswith(fig.name[:3]) for name in finished):
            shutil.copy(fig, figures / fig.name)


def file_logs(unpacked: Path, folder: Path) -> None:
    """The sweep's tables, the logs and the run's timings, kept with the session's results."""
    folder.mkdir(parents=True)
    for name in ("run.log", "stages", "full/metrics/pipeline.json"):
        if (unpacked / name).is_file():
            shutil.copy(unpacked / name, folder)
    for table in [*(unpacked / "sweep").glob("*.json"), *(unpacked / "sweep").glob("*.md")]:
        shutil.copy(table, folder)


def _table(path: Path) -> dict:
    """A sweep's JSON table, Refused where it cannot be read."""
    try:
        table = json.loads(path.read_text())
    except ValueError as err:
        raise Refused(f"its sweep table {path.name} is not valid JSON ({err})") from None
    return table if isinstance(table, dict) else {}


def unpack(tar: Path, into: Path) -> None:
    """Refused for a tar that is no tar, or whose members would land outside ``into`` or are
    links or devices: the "data" filter, from Python 3.10.12 / 3.11.4, or the same checks by hand."""
    try:
        with tarfile.open(tar) as t:
            if hasattr(tarfile, "data_filter"):
                t.extractall(into, filter="data")
                return
            for member in t.getmembers():
                parts = Path(member.name).parts
                if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
                    raise Refused(f"its member {member.name!r} would land outside the folder, or is not a "
                                  f"plain file")
            t.extractall(into)
    except (tarfile.TarError, OSError) as err:
        raise Refused(f"it cannot be unpacked safely ({type(err).__name__}: {err})") from None


def adopt(tar: Path, folder_name: str | None = None, repo: Path = REPO) -> Path:
    """File ``tar`` into ``repo``; the results folder it wrote. Refused: nothing changed."""
    if not Path(tar).is_file():  # tarfile's FileNotFoundError read as an unsafe tar
        raise Refused(f"no such file: {tar}")
    if folder_name is not None and (Path(folder_name).name != folder_name or folder_name in ("", ".", "..")):
        raise Refused(f"FOLDER {folder_name!r} must be one folder name, such as h100-2026-12-07: it is made "
                      f"in benchmarks/results/ (the tar's own folder goes first)")
    with tempfile.TemporaryDirectory() as tmp:
        unpacked = Path(tmp)
        unpack(tar, unpacked)
        smoke = [p.name for p in sorted((unpacked / "sweep").glob("*.json")) if _table(p).get("smoke")]
        if smoke:
            raise Refused(f"its sweep tables {', '.join(smoke)} come from a --smoke sweep (synthetic data, "
                          f"numbers that mean nothing)")
        run = unpacked / "full"
        not_adopted = None  # why the run is refused where its sweep is filed alone
        if not run.is_dir():
            if not (unpacked / "sweep").is_dir():
                raise Refused("it holds neither a run (full/) nor a sweep (sweep/)")
            if not folder_name:
                raise Refused("a sweep alone names no device or date: name the folder, "
                              "e.g. h100-2026-12-06-sweep")
            details, finished = None, []
        else:
            try:
                details, finished = check_run(run)
            except Refused as err:  # a run that did not finish must not take a finished sweep with it
                if not list((unpacked / "sweep").glob("*.json")):
                    raise
                if not folder_name:
                    raise Refused(f"{err}; its sweep can be filed alone: name the folder as the second argument, "
                                  f"e.g. h100-2026-12-06-sweep") from None
                details, finished, not_adopted = None, [], str(err)
        folder = repo / "benchmarks" / "results" / (folder_name or default_folder(details))
        if folder.exists():
            raise Refused(f"{folder.relative_to(repo)} exists already: name another folder as the second argument")
        if details is not None:
            # The notebooks first: their refusal names the cell that changed.
            check_sources(run, repo, finished, details["run"].get("git_commit"))
            check_commit(repo, details["run"].get("git_commit"))
            try:  # README's new text before anything is copied: a README it cannot be written into is refused
                readme = updated_readme(repo, run)
            except (ResultsError, OSError) as err:
                raise Refused(f"README.md cannot take the run's results ({err})") from None
            adopt_notebooks(run, repo, finished)
            for name in ("report.json", "report_details.json"):
                shutil.copy(run / name, repo / name)
            print(f"wrote the results section of {write_readme(repo, readme)}")
        file_logs(unpacked, folder)
    if not_adopted:
        raise SweepFiledAlone(folder, not_adopted)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tar", type=Path, help="results.tar from collect.sh")
    parser.add_argument("folder", nargs="?", help="benchmarks/results/FOLDER (default: <gpu>-<date>)")
    args = parser.parse_args(argv)
    if not args.tar.is_file():
        print(f"error: no such file: {args.tar}", file=sys.stderr)
        return 1
    try:
        folder = adopt(args.tar, args.folder).relative_to(REPO)
    except Refused as err:
        print(f"error: {args.tar} is not adopted: {err}; nothing was changed", file=sys.stderr)
        return 1
    except SweepFiledAlone as err:
        folder = err.folder.relative_to(REPO)
        print(f"error: the run in {args.tar} is not adopted: {err}; notebooks/, figures/, report.json and "
              f"README.md are unchanged", file=sys.stderr)
        print(f"filed its sweep alone in {folder}/")
        print(f"next: write {folder}/README.md (machine, data, commit, what the sweep showed), review git diff, commit")
        return 2
    if (REPO / folder / "pipeline.json").exists():
        print(f"adopted: notebooks/, figures/, report.json, report_details.json, README.md, {folder}/")
    else:
        print(f"filed the sweep alone in {folder}/")
    print(f"next: write {folder}/README.md (machine, data, commit, what the sweep showed), review git diff, commit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
