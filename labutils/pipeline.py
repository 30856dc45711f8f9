"""Run the workbook's notebooks in order with papermill (the batch way to use the workbook)."""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from .artifacts import (NO_GIT, REPO_ROOT, UNCOMMITTED, WriteFailed, atomic_write_bytes, check_output_folder,
                        damaged_run_marker, file_sha256, git_commit, read_json, read_json_object, record_run,
                        resolve_out_dir, run_id_for, write_json)
from .course import MODEL_NAMES, NOTEBOOKS, READS, STAGES
from .data import BATCH_DIR, DEFAULT_DATA_ROOT, SYNTHETIC, describe_prepared, describe_to_come, run_data_root
from .profiles import get_profile
from .runlock import RUN_TOKEN_ENV, RunLock
from .session import SAVE_NOT_FINISHED
from .train import check_seed

NOTEBOOK_DIR = REPO_ROOT / "notebooks"


class NotebookFailed(RuntimeError):
    """A notebook raised: the message names the notebook and the failing cell."""


class NotebooksNotFound(RuntimeError):
    """This labutils has no notebooks beside it: it was installed without its checkout."""


def available_notebooks() -> dict[str, Path]:
    """{"01": notebooks/01_data.ipynb, ...} in order: one notebook per number, the workbook's own
    (``course.NOTEBOOKS``) where a copy lies beside it; two others of one number are refused."""
    found: dict[str, list[Path]] = {}
    for p in sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb")):
        found.setdefault(p.name[:2], []).append(p)
    books = {}
    for number, paths in found.items():
        own = [p for p in paths if p.name == NOTEBOOKS.get(number)]
        if len(own or paths) > 1:
            raise ValueError(f"{NOTEBOOK_DIR} holds {len(paths)} notebooks numbered {number} "
                             f"({', '.join(p.name for p in paths)}) and a run executes one: rename all but one "
                             f"so that their names do not begin with {number}_")
        books[number] = (own or paths)[0]
    return books


def select_notebooks(ids: list[str] | None) -> list[Path]:
    books = available_notebooks()
    if not books:  # labutils installed without its checkout (pip install ., not -e): no notebooks
        raise NotebooksNotFound(
            f"no notebooks in {NOTEBOOK_DIR}: this labutils ({Path(__file__).parent}) is not the one in a "
            f"checkout of the workbook. Clone the repository and install it from there in editable mode "
            f"(python -m pip install -e .), then run python -m labutils run inside it.")
    if not ids:
        return list(books.values())
    unknown = [i for i in ids if i not in books]
    if unknown:
        raise ValueError(f"unknown notebook(s) {unknown}; available: {', '.join(books)}")
    return [books[i] for i in sorted(set(ids))]


class RunRefused(ValueError):
    """The output folder holds a run that this invocation must not continue or mix with."""


class ResumeRefused(RunRefused):
    """``--resume`` found no run to continue, or one that this invocation must not continue."""


def _identity(profile: str, models: list[str], seed: int, data: str | None = None) -> dict:
    """What must match for a run to be continued: same profile, code, models, seed and data
    (``data_of_run``; None while a CIFAR-10 profile's data is not there yet, see ``_differs``)."""
    return {"profile": profile, "git_commit": git_commit(), "models": list(models), "seed": seed,
            "data": data}


def data_of_run(profile: str, out_dir: Path, data_root=None) -> str | None:
    """What the run's data is (``describe_data``), or None before notebook 01 has prepared a
    CIFAR-10 profile's.
    Read from the files, not the folder's name: a run resumed on another machine may find the
    same data elsewhere, and the same folder may hold another copy. A smoke run's synthetic data
    is known before it is there: any notebook writes the same images where they are gone
    (``Session.prepare_data``, seed 0), so a deleted data-synthetic/ does not stop a resume."""
    source = get_profile(profile)["data"]["source"]
    prepared = describe_prepared(run_data_root(source, out_dir, data_root))
    return prepared or (SYNTHETIC if source == "synthetic" else None)


def _differs(key: str, saved: dict, identity: dict, continuing: bool) -> bool:
    """Whether a saved run and this invocation disagree on ``key``. A saved run that names no data
    (recorded before data was part of a run's identity) matches any. This invocation's data not
    there yet never matches a run it continues (a later notebook would download another copy into
    it); a new run replacing the folder's must come to the same data as it (``describe_to_come``:
    notebook 01 downloads the official copy), else the old run's files would be left beside
    those of a run on other data."""
    if key == "data" and saved.get("data") is None:
        return False
    if key == "data" and identity["data"] is None:
        source = get_profile(identity["profile"])["data"]["source"]
        return continuing or saved["data"] != describe_to_come(source)
    return saved.get(key) != identity[key]


def _asked(key: str, identity: dict) -> str:
    """What this invocation has for ``key``, as "this invocation has ..." goes on."""
    if key == "data" and identity["data"] is None:
        to_come = describe_to_come(get_profile(identity["profile"])["data"]["source"])
        return f"no data yet (its data folder holds no batches: notebook 01 would prepare {to_come!r})"
    return f"{_WORDS[key]} {identity[key]!r}"


def previous_run(out_dir: Path, identity: dict) -> dict:
    """The summary of the run in ``out_dir`` that ``--resume`` may continue, or ResumeRefused."""
    path = out_dir / "metrics" / "pipeline.json"
    if not path.is_file() and not (out_dir / "metrics" / "run.json").is_file():
        raise ResumeRefused(f"nothing to resume in {out_dir}: it has no metrics/pipeline.json. "
                            f"Start the run without --resume.")
    saved = read_json_object(path)
    if saved is None:  # gone or damaged, with the run's records and checkpoints perhaps whole
        problem = f"{path} is not valid JSON (damaged)" if path.is_file() else "it has no metrics/pipeline.json"
        raise ResumeRefused(f"--resume cannot tell which notebooks of the run in {out_dir} finished: {problem}. "
                            + _going_on_without_summary(out_dir, identity))
    if "finished" not in saved:
        raise ResumeRefused(f"the run in {out_dir} was made by an older version of the workbook that "
                            f"did not record finished notebooks; start it again without --resume.")
    differ = [k for k in _WORDS if _differs(k, saved, identity, continuing=True)]
    if differ:
        found, asked, same = _mismatch(saved, identity, differ)
        # Newer code may replace the folder's run; other settings would leave its files beside the new one's.
        elsewhere = "" if differ == ["git_commit"] else " in another --out folder"
        raise ResumeRefused(
            f"cannot resume run {saved.get('run_id')} in {out_dir}: it was made with {found}; this invocation has "
            f"{asked}. A report must come from one run's settings: resume it with {same}, or start a new run "
            f"without --resume{elsewhere}.")
    return saved


def _going_on_without_summary(out_dir: Path, identity: dict) -> str:
    """How to go on where pipeline.json is gone or damaged: later notebooks run alone (--notebooks,
    no --resume) continue the run of metrics/run.json, from the first notebook whose executed copy
    or outputs of that run are not whole; starting over would train every model again. The run's
    profile and seed (run.json) and models (its baselines' records) are named where the command's differ."""
    marker = _run_marker(out_dir, damaged_ok=True) or {}
    run_id = marker.get("run_id")
    models = _models_of_run(out_dir, run_id)
    whole = [n[:2] for n in _whole_notebooks(out_dir, models, run_id)]
    rest = [n for n in available_notebooks() if n not in whole]
    if not run_id or "02" not in whole or not models:
        return "Its baselines of notebook 02 are not all there either: start the run again without --resume."
    run = {"profile": marker.get("profile", identity["profile"]), "seed": marker.get("seed", identity["seed"]),
           "models": models}
    differ = [k for k in run if run[k] != identity[k]]
    made = (f"It was made with {', '.join(f'{_WORDS[k]} {run[k]!r}' for k in differ)}; this command has "
            f"{', '.join(_asked(k, identity) for k in differ)}. " if differ else "")
    options = [_option(k, run[k]) for k in differ]
    later = ",".join(rest)
    if not rest:
        return (f"{made}Its notebooks' outputs are all there: nothing is left to run (to run one again, pass "
                f"{_joined(['--notebooks with its number', *options])}, without --resume).")
    return (f"{made}Its notebooks {_joined(whole)} left their outputs whole, and later notebooks run alone "
            f"continue its run ({run_id}): run the same command without --resume, with "
            f"{_joined([f'--notebooks {later}', *options])}.")


def _whole_notebooks(out_dir: Path, models: list[str], run_id: str | None) -> list[str]:
    """The notebooks, from the first on, whose executed copy is there and whose outputs are whole
    outputs of run ``run_id``, up to the first that is not: what a run without its pipeline.json finished."""
    whole = []
    for book in available_notebooks().values():
        if not (out_dir / "notebooks" / book.name).is_file() or _first_missing_output(out_dir, [book.name], models,
                                                                                       run_id=run_id):
            break
        whole.append(book.name)
    return whole


def _models_of_run(out_dir: Path, run_id: str | None) -> list[str]:
    """The models notebook 02 of run ``run_id`` recorded (trained, or not produced and why)."""
    return [m for m in MODEL_NAMES if run_id and _run_named(out_dir / "metrics" / f"{m}_before_pruning.json") == run_id]


def _run_named(path: Path) -> str | None:
    """The run id a JSON output names (its ``run``), None where it names none or cannot be read."""
    return ((read_json_object(path) or {}).get("run") or {}).get("run_id")


_WORDS = {"profile": "profile", "git_commit": "commit", "models": "model list", "seed": "seed", "data": "data copy"}


def check_same_run(out_dir: Path, identity: dict, starts: bool) -> None:
    """RunRefused when ``out_dir`` holds a run this invocation would mix with.

    Later notebooks alone (``starts`` False) continue the folder's run, so profile, commit, models,
    seed and data must all match. A run that starts at 01 or 02 replaces the folder's run notebook by
    notebook: it may be made by newer code, but with another profile, model list, seed or data it would
    leave the old run's other files beside its own, so it is refused too. Notebooks run by hand leave
    no pipeline.json: a run that starts reads their run's profile and seed from metrics/run.json (later
    notebooks alone continue that run, and ``run_id_for`` refuses another profile or seed)."""
    # A damaged pipeline.json (timings only: run.json names the run) is written again, as a missing one.
    saved = read_json_object(out_dir / "metrics" / "pipeline.json") or {}
    marker = _run_marker(out_dir, damaged_ok=True) if starts else None
    if marker and saved.get("run_id") != marker.get("run_id"):  # a hand run, or one started since by hand
        saved = {k: marker[k] for k in ("run_id", "profile", "seed") if k in marker}
    keys = [k for k in _WORDS if k != "git_commit" or not starts]
    differ = [k for k in keys if k in saved and _differs(k, saved, identity, continuing=not starts)]
    if not differ:
        return
    found, asked, same = _mismatch(saved, identity, differ)
    raise RunRefused(
        f"{out_dir} holds run {saved.get('run_id')} made with {found}; this invocation has {asked}. "
        + ("One folder holds one run: " if starts else "Notebooks run alone continue the folder's run: ")
        + f"pass {same} to {'replace' if starts else 'continue'} it, or write into another --out folder"
        + (f" (or delete {out_dir} to start over there)." if starts else "."))


def _mismatch(saved: dict, identity: dict, differ: list[str]) -> tuple[str, str, str]:
    """(what the saved run was made with, what this invocation has, the options that match the run)
    for every key in ``differ``, as the refusals of ``check_same_run`` and ``previous_run`` name them."""
    found = ", ".join(f"{_WORDS[k]} {saved.get(k)!r}" for k in differ)
    asked = ", ".join(_asked(k, identity) for k in differ)
    # The saved profile brings back the run folder's own synthetic data: no second item for it.
    follows = "profile" in differ and str(saved.get("data", "")).startswith("synthetic")
    same = _joined([_option(k, saved.get(k)) for k in differ if not (follows and k == "data")])
    return found, asked, same


def _run_marker(out_dir: Path, damaged_ok: bool = False) -> dict | None:
    """The folder's ``metrics/run.json`` (its run), None where there is none (or, ``damaged_ok``, where
    it is damaged: a run that starts writes it again); RunRefused where it is damaged."""
    marker = out_dir / "metrics" / "run.json"
    if not marker.is_file():
        return None
    try:
        return read_json(marker)
    except ValueError:
        if damaged_ok:
            return None
        raise RunRefused(damaged_run_marker(marker)) from None


def _baselines_of(out_dir: Path, run_id: str | None) -> tuple[bool, bool]:
    """(whether ``out_dir`` holds notebook 02's records of run ``run_id``, whether it holds another
    run's). A record that names no run (not written by a Session) counts as the run's."""
    ours = others = False
    for path in (out_dir / "metrics").glob("*_before_pruning.json"):
        record = read_json_object(path) or {}  # damaged: --resume runs its notebook again
        named = (record.get("run") or {}).get("run_id")
        if named is None or (run_id is not None and named == run_id):
            ours = True
        else:
            others = True
    return ours, others


def _joined(items: list[str]) -> str:
    """Items as a sentence lists them: "a", "a and b", "a, b and c"."""
    return " and ".join(filter(None, [", ".join(items[:-1]), items[-1]]))


def _option(key: str, value) -> str:
    if key == "git_commit" and UNCOMMITTED in str(value):
        commit, _, fingerprint = str(value).partition(UNCOMMITTED)
        return (f"the code of commit {commit} with the same uncommitted changes to labutils/ "
                f"(fingerprint {fingerprint.lstrip('.')})")
    if key == "git_commit" and str(value).startswith(f"{NO_GIT}."):  # a copy without git: its files' fingerprint
        return f"the same labutils/ code as that run's (fingerprint {str(value).partition('.')[2]}: undo the edits since)"
    if key == "git_commit":
        return f"the code of commit {value} (check it out; commit or stash changes to labutils/)"
    if key == "models":
        return f"--models {','.join(value)}"
    if key == "data" and value.startswith("synthetic"):  # smoke: its own data-synthetic/, never --data-root
        # No option names it; the next notebook writes the same images into an empty folder.
        return ("--profile smoke with the run folder's data-synthetic/ deleted (the next notebook writes its "
                "images again)")
    if key == "data":
        return f"--data-root of a folder holding {value}"
    return f"--{key} {value}"


# What 05 and 06 leave besides metrics records, relative to the run's folder.
_OUTPUTS_BESIDE_RECORDS = {"05": ("report.json", "report_details.json"),
                           "06": ("metrics/quantization.json", "models_saved/quantization/resnet20_baseline.pth")}
# Those of them that name their run (report.json does not: its sidecar, written with it, does).
_NAMING_THEIR_RUN = ("report_details.json", "quantization.json")


def _first_missing_output(out_dir: Path, book_names: list[str], models: list[str],
                          run_id: str | None = None) -> tuple[str, Path, str] | None:
    """(notebook, file, what is wrong) for the first of ``book_names`` whose outputs are gone, cannot
    be read or are not what their record names, or None. 02-04 leave one metrics record per model,
    and a checkpoint for each one produced; 05 the report and its sidecar; 06 its metrics and
    ResNet-20. Files are written atomically, so a damaged one was damaged afterwards (a copy cut
    short, a disk error), and a record still saying its save did not finish was left by a kernel
    killed inside ``Session.save`` (a notebook run by hand, which pipeline.json still counts
    finished): neither must count as finished. Given ``run_id`` (no pipeline.json says which run
    finished them), records and outputs that name another run are not whole either."""
    stage_of = dict(zip(("02", "03", "04"), STAGES))
    for name in book_names:
        stage = stage_of.get(name[:2])
        for model in models if stage else ():
            record = out_dir / "metrics" / f"{model}_{stage}.json"
            ckpt = out_dir / "models_saved" / f"{model}_{stage}.pth"
            if fault := _fault(record):
                return name, record, fault
            if run_id and (named := _run_named(record)) != run_id:
                return name, record, f"of another run ({named})"
            saved = read_json_object(record) or {}
            if str(saved.get("reason", "")).startswith(SAVE_NOT_FINISHED):  # a kernel killed inside Session.save
                return name, record, "left by a save that did not finish"
            if saved.get("produced") and (fault := _fault(ckpt, (saved.get("checkpoint") or {}).get("sha256"))):
                return name, ckpt, fault
        for path in (out_dir / f for f in _OUTPUTS_BESIDE_RECORDS.get(name[:2], ())):
            if fault := _fault(path):
                return name, path, fault
            if run_id and path.name in _NAMING_THEIR_RUN and (named := _run_named(path)) != run_id:
                return name, path, f"of another run ({named})"
    return None


def _fault(path: Path, sha256: str | None = None) -> str | None:
    """"gone", "damaged" (JSON that does not parse, a checkpoint that is not a whole zip archive:
    torch.save's format ends with the archive's directory, or, given its record's ``sha256``, not
    that file: bytes flipped inside still make a readable zip), or None."""
    if not path.is_file():
        return "gone"
    if path.suffix == ".pth":
        if not zipfile.is_zipfile(path):
            return "damaged"
        return "damaged (not the SHA-256 its record names)" if sha256 and file_sha256(path) != sha256 else None
    try:
        read_json(path)
    except ValueError:  # UnicodeDecodeError too
        return "damaged"
    return None


# The notebooks' ``parameters`` cell (a test checks that every notebook's cell says the same).
# Every notebook has them all; MODELS is read by notebooks 02-05 (01 and 06 do not use it),
# VIT_WEIGHTS by notebook 02 only (03-05 load its checkpoints), as the cell's comments say.
NOTEBOOK_DEFAULTS = {"PROFILE": "auto", "DEVICE": "auto", "DATA_ROOT": "", "OUT_DIR": "",
                     "MODELS": list(MODEL_NAMES), "SEED": 0, "VIT_WEIGHTS": ""}


def notebook_defaults(book: Path) -> dict:
    """The values ``book``'s parameters cell sets (a value that is not a plain literal is left
    out, so it is always injected). An instructor may have edited the cell (``MODELS = ["cnn"]``):
    the run's own values must still reach the kernel."""
    import ast

    import papermill as pm

    found = {}
    for name, parameter in pm.inspect_notebook(str(book)).items():
        with contextlib.suppress(ValueError, SyntaxError, TypeError):
            found[name] = ast.literal_eval(parameter["default"])
    return found


def injected_parameters(out_dir: Path, profile: str, data_root=None, models=MODEL_NAMES, seed: int = 0,
                        device: str = "auto", vit_weights=None, defaults: dict = NOTEBOOK_DEFAULTS) -> dict:
    """What papermill injects: only the parameters that differ from ``defaults`` (the notebook's
    parameters cell, ``notebook_defaults``), with paths relative to ``out_dir/notebooks``, where the
    kernel runs and the executed notebook lies. So an executed notebook names no folder of the
    machine that ran it, and re-executes from where it lies (``OUT_DIR = ".."``: the run folder
    above it). The run id is not injected: the session reads it from ``out_dir/metrics/run.json``."""
    here = out_dir / "notebooks"

    def relative(path) -> str:
        return os.path.relpath(Path(path).resolve(), here) if path else ""

    # Injected only when it changes what the run reads (run_data_root): not the default folder (re-executed
    # elsewhere, that machine's default), and never for synthetic data, which lives in the run's folder.
    source = get_profile(profile)["data"]["source"]
    if run_data_root(source, out_dir, data_root) == run_data_root(source, out_dir):
        data_root = None
    wanted = {"PROFILE": profile, "DEVICE": device, "MODELS": list(models), "SEED": seed,
              "OUT_DIR": "" if out_dir == resolve_out_dir(profile) else relative(out_dir),
              "DATA_ROOT": relative(data_root), "VIT_WEIGHTS": relative(vit_weights)}
    return {k: v for k, v in wanted.items() if k not in defaults or v != defaults[k]}


# The first line of papermill's injected cell ("# Parameters" as papermill writes it): a reader who
# edits the parameters cell above it must learn that this cell overrides it.
INJECTED_NOTE = ("# Parameters of this run, injected by `python -m labutils run`: they override the "
                 "parameters cell above (delete this cell to use yours)")


def _forget_machine_paths(executed: Path, name: str) -> None:
    """papermill records the absolute paths it read and wrote in the notebook's metadata; keep
    them relative (to the repository, and to the executed notebook's folder). ``name``: the
    notebook's file name (``executed`` may be a temporary file). The injected cell says what it does."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    if "papermill" not in nb.metadata:  # not written by papermill: nothing of it to rewrite
        return
    nb.metadata.papermill.update(input_path=f"notebooks/{name}", output_path=name)
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []) and cell.source.startswith("# Parameters\n"):
            cell.source = INJECTED_NOTE + cell.source[len("# Parameters"):]
    atomic_write_bytes(executed, lambda f: f.write(nbformat.writes(nb).encode()))


def as_workbook_notebook(path: str | os.PathLike) -> None:
    """Make an executed notebook a notebook of the workbook again, outputs kept: the repository's
    ``notebooks/`` are both the write-up and what a student opens and runs. papermill's injected
    cell (``PROFILE = "full"``, ``OUT_DIR = ".."``) would override the ``parameters`` cell above it,
    so a student's ``PROFILE = "smoke"`` would still run the full recipe into the repository root.
    The injected values stay recorded in the notebook's metadata (``papermill.parameters``)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    if len(cells) != len(nb.cells):
        nb.cells = cells
        atomic_write_bytes(path, lambda f: f.write(nbformat.writes(nb).encode()))


def run_pipeline(profile: str, out: str | os.PathLike | None = None, data_root: str | None = None,
                 models: list[str] | None = None, notebooks: list[str] | None = None,
                 seed: int = 0, device: str = "auto", vit_weights: str | None = None,
                 resume: bool = False) -> dict:
    """Execute the selected notebooks in order into ``out/notebooks``; stop at the first failure.

    One run at a time writes into ``out`` (``out/.labutils.lock``, see ``runlock``), and a run
    never mixes with another: the run already in ``out`` is continued only by the same profile,
    commit, model list, seed and data (``check_same_run``; ``RunRefused``).

    With ``resume`` the run already in ``out`` continues: notebooks it finished are skipped (when
    their checkpoints and metrics are still there; else the run goes on from the first notebook
    whose outputs are gone), its run id is kept, and a run of another profile, commit, model list,
    seed or data is refused (``ResumeRefused``). So a long run can be split across several short GPU
    sessions that keep ``out`` (checkpoints included).

    Returns {"run_id", "out", "notebooks": {name: seconds}, "finished", "total_seconds", ...,
    "outdated": the notebooks finished before and no longer, "left": where this started a new run,
    the executed notebooks of the run it replaced that it did not run again ("replaced_run" its id),
    "resume_runs": the notebooks a plain --resume would now run}; the same but "out", "outdated",
    "left", "replaced_run" and "resume_runs" (no folder of the machine in the files) is written to
    ``out/metrics/pipeline.json`` after every notebook. A ``resume`` with nothing left to run writes
    nothing and returns the saved summary with "out" and an empty "outdated".
    """
    select_notebooks(notebooks)  # unknown ones, or none beside this labutils: refused before any write
    check_seed(seed)
    out_dir = resolve_out_dir(profile, out)
    check_output_folder(out_dir)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        with RunLock(out_dir) as lock, _kernel_environment(lock):
            return _run_pipeline(profile, out_dir, data_root, models, notebooks, seed, device, vit_weights,
                                 resume, lock)
    except BaseException:
        if created:  # a refused run (a mistyped --out with --resume) leaves no empty folder behind
            with contextlib.suppress(OSError):
                out_dir.rmdir()  # only where nothing was written: rmdir refuses a folder with files
        raise


@contextlib.contextmanager
def _kernel_environment(lock: RunLock):
    """The kernels papermill starts inherit this process's environment, set here for the run and
    restored afterwards (the caller's own progress bars stay):

    * progress becomes one printed line per epoch, not redrawn bars;
    * the lock's token lets the run's own kernels write into the folder it holds (``runlock.check_free``);
    * from a checkout, its folder comes first on ``PYTHONPATH``, so the kernels import the labutils
      that runs the pipeline: not another copy installed in the environment (a second checkout,
      an editable install pointing elsewhere), nor none at all (run from a checkout, not installed).
      One run is one version of the code. An installed labutils (no checkout) is left as it is;
    * ``$LABUTILS_DATA`` becomes the absolute folder it names from here: a kernel works in
      ``out/notebooks`` and would read a relative one from there."""
    settings = {"LABUTILS_PLAIN_PROGRESS": "1", RUN_TOKEN_ENV: lock.info["token"]}
    if os.environ.get("LABUTILS_DATA"):
        settings["LABUTILS_DATA"] = str(DEFAULT_DATA_ROOT)
    if (REPO_ROOT / "pyproject.toml").is_file():
        settings["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [
            entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry])
    before = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run_pipeline(profile: str, out_dir: Path, data_root: str | None, models: list[str] | None,
                  notebooks: list[str] | None, seed: int, device: str, vit_weights: str | None,
                  resume: bool, lock: RunLock) -> dict:
    import papermill as pm
    from nbclient.exceptions import DeadKernelError

    books = select_notebooks(notebooks)
    models = list(models or MODEL_NAMES)
    identity = _identity(profile, models, seed, data_of_run(profile, out_dir, data_root))
    earlier = read_json_object(out_dir / "metrics" / "pipeline.json") or {}  # damaged: as gone
    run_id, books, timings = (_plan_resume(out_dir, identity, books, models, vit_weights) if resume
                              else (None, books, {}))
    if resume and not books:  # nothing to run: the run stays as it is, its timings included
        return earlier | {"out": str(out_dir), "outdated": []}
    # A run starts where the baseline is trained (notebook 01 or 02); later notebooks run alone
    # continue the run already in out_dir.
    starts = not resume and any(b.name[:2] in ("01", "02") for b in books)
    if not resume:
        check_same_run(out_dir, identity, starts)
    # The same command again after a stop (or a finished run) starts over: say so, not silently.
    if starts and earlier.get("finished"):
        print(f"note: replacing run {earlier.get('run_id')} in {out_dir} (it finished "
              f"{', '.join(n[:2] for n in earlier['finished'])}); to continue it instead, stop this and "
              f"add --resume", flush=True)
    # The run the notebooks work in: a new one where 01 starts it, else the folder's.
    this_run = run_id if resume else None if starts else (_run_marker(out_dir) or {}).get("run_id")
    ours, others = _baselines_of(out_dir, this_run)
    if not any(b.name[:2] == "02" for b in books) and not ours:
        # 03-05 without 02 on a folder without its baselines would record every model as not
        # produced and succeed, with 01 before them too (01 prepares data, not baselines), or
        # resumed after 01 alone; 06 trains its own ResNet-20, so it may start a run. Another
        # run's baselines would be pruned and recorded under this run's id.
        needing = [b.name for b in books if b.name[:2] in ("03", "04", "05")]
        if needing:
            raise RunRefused(f"{out_dir} holds no baselines of notebook 02 for {', '.join(needing)} to start "
                             f"from{' (those there are left from another run)' if others else ''}. Run 01 and 02 "
                             f"there first (--notebooks 01,02,...), or pass the --out folder of a run")
    (out_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    run_id = run_id or run_id_for(out_dir / "metrics", profile, seed, fresh=starts)
    lock.name_run(run_id)
    _remove_leftovers(out_dir)
    if not resume and not starts:  # later notebooks alone: the run's earlier times still count
        if earlier.get("run_id") == run_id:
            timings = _finished_timings(earlier)
        else:  # its pipeline.json lost: the earlier notebooks whose outputs are whole stay finished, time unknown
            timings = {n: None for n in _whole_notebooks(out_dir, _models_of_run(out_dir, run_id), run_id)
                       if n < books[0].name}
    # Finished notebooks about to run again: not finished until they have (a kill must not say so),
    # unless interrupted before any output was replaced (``_outputs_state``): then the run is as it was.
    again = {b.name: timings.pop(b.name) for b in books if b.name in timings}
    record_run(out_dir / "metrics", run_id, profile, seed)  # the kernels read the run id there
    # No folder of this machine in the files: the run's folder is where they lie.
    summary = {"run_id": run_id, **identity, "notebooks": timings}
    start = time.perf_counter()
    _write_summary(out_dir, summary, start)  # the folder names its run from the start
    outputs = _outputs_state(out_dir)
    kernel = kernel_config()

    def record(name: str, t0: float, failed: str | None = None) -> dict:
        """The notebook's time into the summary, written (finished, or ``failed``)."""
        _forget_outdated(out_dir, timings, name)
        timings[name] = time.perf_counter() - t0
        written = _write_summary(out_dir, summary, start, failed=failed)
        if not failed:
            _time_the_report(out_dir, written)
        return written

    for book in books:
        final = out_dir / "notebooks" / book.name
        target = final.with_name(f".{final.stem}.partial.ipynb")  # renamed to final once papermill is done
        print(f"== {book.name} ({profile}) -> {final}", flush=True)
        params = injected_parameters(out_dir, profile, data_root, models, seed, device, vit_weights,
                                     defaults=notebook_defaults(book))
        t0 = time.perf_counter()
        kernel_log = tempfile.TemporaryFile()
        try:
            pm.execute_notebook(str(book), str(target), parameters=params, kernel_name="python3",
                                cwd=str(target.parent), progress_bar=False, log_output=True,
                                stdout_file=sys.stdout, stderr_file=sys.stderr, config=kernel,
                                kernel_manager_class=kernel_manager_logging_to(kernel_log))
        except pm.PapermillExecutionError as err:
            _keep_partial(target, final, book.name)  # the executed notebook, with the traceback
            record(book.name, t0, failed=book.name)
            first_line = (err.source or "").strip().splitlines()[:1]
            raise NotebookFailed(
                f"{book.name} failed in cell {err.cell_index} (execution count {err.exec_count}"
                f"{': ' + first_line[0] if first_line else ''}): {err.ename}: {err.evalue}\n"
                f"The executed notebook with the full traceback is {final}") from None
        except DeadKernelError as err:  # killed, or out of memory: no cell error to show
            kept = _keep_partial(target, final, book.name)  # its outputs up to the death
            record(book.name, t0, failed=book.name)
            raise NotebookFailed(
                f"{book.name} stopped: its kernel died ({err}), killed or out of memory. What the notebooks "
                f"before it finished is kept."
                + (f" Its executed notebook, up to the cell that was running, is {final}." if kept else "")
                + _last_words(kernel_log)) from None
        except BaseException as err:  # interrupted, or the disk is full: never leave half a notebook
            target.unlink(missing_ok=True)
            interrupted = isinstance(err, (KeyboardInterrupt, SystemExit))  # Ctrl-C, SIGTERM (cli.Terminated)
            # Nothing replaced since this session started: the earlier executed copy is still the run's own.
            untouched = interrupted and _same_outputs(out_dir, outputs)
            # Else an earlier run's would pass for this run's (a full disk keeps the earlier files whole,
            # as it promises).
            if not isinstance(err, OSError) and not (untouched and book.name in again):
                _discard(final)
            if interrupted:
                _quiet_leftover_cell_task()
                with contextlib.suppress(Exception):  # session_seconds up to now: the last write's was kept
                    if untouched:  # those not run again yet count finished again, as before this session
                        _restore(timings, again)
                    else:
                        _forget_outdated(out_dir, timings, book.name)
                    _write_summary(out_dir, summary, start)
            if isinstance(err, RuntimeError) and "Kernel died" in str(err):  # nbclient: died while starting
                record(book.name, t0, failed=book.name)
                raise NotebookFailed(f"{book.name}: its kernel did not start ({err})" + _last_words(kernel_log)) from None
            if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT) and not err.filename:
                raise WriteFailed(err, final) from err  # papermill's says neither the file nor what to do
            raise
        finally:
            kernel_log.close()
        _forget_machine_paths(target, book.name)
        _replace_if_written(target, final)
        if summary["data"] is None:  # notebook 01 has just prepared it: a resume must find the same
            summary["data"] = data_of_run(profile, out_dir, data_root)
        # Written after each notebook, so the report notebook sees the earlier ones' times.
        written = record(book.name, t0)
        print(f"== {book.name} done in {format_seconds(timings[book.name])} "
              f"(run total {format_seconds(written['total_seconds'])})", flush=True)
    _time_the_report(out_dir, written := _write_summary(out_dir, summary, start))
    # Finished before this session and no longer (a notebook before them saved again what they read).
    was = earlier.get("finished", []) if earlier.get("run_id") == run_id else []
    outdated = [n for n in was if n not in written["finished"] and (out_dir / "notebooks" / n).is_file()]
    # A new run over another: the executed notebooks this command did not run are the replaced run's.
    ran = {b.name for b in books}
    left = [b.name for b in select_notebooks(None) if starts and b.name not in ran
            and (out_dir / "notebooks" / b.name).is_file()]
    return written | {"out": str(out_dir), "outdated": outdated, "left": left,
                      "replaced_run": earlier.get("run_id") if left else None,
                      "resume_runs": _resume_runs(written["finished"])}


def _resume_runs(finished: list[str]) -> list[str]:
    """The notebooks a plain ``--resume`` would run (outputs whole): from the first one not finished
    on, every later one too (``_plan_resume``), finished or not."""
    names = [b.name for b in select_notebooks(None)]
    first = next((n for n in names if n not in finished), None)
    return [n for n in names if first is not None and n >= first]


def _plan_resume(out_dir: Path, identity: dict, books: list[Path], models: list[str], vit_weights=None
                 ) -> tuple[str, list[Path], dict[str, float]]:
    """(run id, notebooks still to run, timings of those that stay finished) for ``--resume``."""
    saved = previous_run(out_dir, identity)
    timings = _finished_timings(saved)
    skipped = [b.name for b in books if b.name in timings and (out_dir / "notebooks" / b.name).is_file()]
    missing = _first_missing_output(out_dir, skipped, models)
    if missing:  # a finished notebook's outputs were deleted or damaged: go on from that notebook
        print(f"{missing[1]} of {missing[0]} is {missing[2]}: running again from {missing[0]}", flush=True)
        skipped = [n for n in skipped if n < missing[0]]
    # Everything after the first notebook to run again runs again too: a later notebook
    # finished before it read the outputs it is about to replace (05's report from 03's metrics).
    first = min((b.name for b in books if b.name not in skipped), default=None)
    if first is not None:
        skipped = [n for n in skipped if n < first]
    # Finished notebooks left out of --notebooks stay finished unless they come after the first
    # to run again (which replaces what they read).
    asked = {b.name for b in books}
    timings = {n: t for n, t in timings.items()
               if n in skipped or (n not in asked and (first is None or n < first))}
    # Those kept that the ones asked for read (course.READS) must be whole too: --notebooks keeps
    # them finished, so a gone or damaged one is refused, not run again (06 reads neither 04 nor 05).
    read = {r for a in asked for r in READS[a[:2]]}
    for name in sorted(n for n in timings if n not in asked and n[:2] in read):
        executed = out_dir / "notebooks" / name  # gone: plain --resume runs it again, as it does here
        damaged = ((name, executed, "gone") if not executed.is_file()
                   else _first_missing_output(out_dir, [name], models))
        if damaged:
            on = ",".join(n for n in available_notebooks() if name[:2] <= n <= max(asked)[:2])
            raise ResumeRefused(
                f"{damaged[1]} of {name} is {damaged[2]}, and a notebook asked for (--notebooks) reads what "
                f"{name} made. Resume without --notebooks (it runs {name} again and those after it), or with "
                f"--notebooks {on}.")
    books = [b for b in books if b.name not in skipped]
    kept = sorted(timings)
    print(f"resuming run {saved['run_id']} in {out_dir}: {len(kept)} notebook(s) already finished and kept "
          f"({', '.join(n[:2] for n in kept) or 'none'}), {len(books)} to run", flush=True)
    if vit_weights and "vit" in models and any(n[:2] == "02" for n in skipped):
        _say_vit_weights_unused(out_dir)
    return saved["run_id"], books, timings


def _say_vit_weights_unused(out_dir: Path) -> None:
    """A run whose notebook 02 went without the pretrained ViT, resumed with --vit-weights: 02 stays
    finished (running it again trains every model again), so say the weights are not used, and how."""
    record = out_dir / "metrics" / "vit_before_pruning.json"
    if not _fault(record) and not read_json(record).get("produced"):
        print("warning: --vit-weights is not used: notebook 02 finished without the pretrained ViT "
              "(vit_before_pruning: not produced) and --resume keeps it. To train it, run again without "
              "--resume, with the same options: a new run, which trains every model of MODELS again",
              file=sys.stderr, flush=True)


def _remove_leftovers(out_dir: Path) -> None:
    """Temporary files of a run killed while writing: an atomic write's ``.NAME.*.tmp`` (a dense
    checkpoint's is tens of MB) and a notebook's ``.NAME.partial.ipynb``. This run holds the
    folder's lock, so no run is writing them."""
    folders = [out_dir] + [out_dir / d for d in ("models_saved", "models_saved/quantization", "metrics", "figures",
                                                 "notebooks")]
    folders.append(run_data_root("synthetic", out_dir) / BATCH_DIR)  # a smoke run's own data
    left = [p for folder in folders for p in folder.glob(".*.tmp")]
    left += (out_dir / "notebooks").glob(".*.partial.ipynb")
    for path in left:
        path.unlink(missing_ok=True)
    if left:
        print(f"removed {len(left)} temporary file(s) an interrupted run left: "
              f"{', '.join(os.path.relpath(p, out_dir) for p in left)}", flush=True)


def kernel_config():
    """The kernel manager's settings for papermill: encrypted kernel channels (CurveZMQ) where the
    kernel's spec says it supports them. ipykernel 7.4 logs "Kernel is running over TCP without
    encryption" on every start unless the manager provisions keys, which jupyter_client does only
    when asked (``transport_encryption``, off by default). Older versions neither warn nor know the
    setting: it is set only where it exists (traitlets warns of an unknown one) and pyzmq has Curve
    (else jupyter_client refuses it)."""
    import zmq
    from jupyter_client import KernelManager
    from traitlets.config import Config

    if "transport_encryption" not in KernelManager.class_trait_names() or not zmq.has("curve"):
        return Config()
    return Config({"KernelManager": {"transport_encryption": "auto"}})


def kernel_manager_logging_to(log):
    """papermill's kernel manager with the kernel process's own stderr (ipykernel's log, not the
    cells' output, which comes as messages) sent to ``log``: interrupted, a run said how to continue
    and then the kernel printed a 20-line traceback of its sockets closing under it."""
    from jupyter_client.manager import AsyncKernelManager

    class KernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            return await super().start_kernel(**{"stderr": log, **kw})

        def format_kernel_cmd(self, extra_arguments=None):
            # This interpreter, which imports labutils: a "python3" kernelspec installed for another
            # Python (`ipykernel install --user` elsewhere) ran the notebooks there, without it.
            cmd = super().format_kernel_cmd(extra_arguments)
            # ipykernel writes Python flags before "-m" (-Xfrozen_modules=off): looked for anywhere.
            if any(cmd[i:i + 2] == ["-m", "ipykernel_launcher"] for i in range(1, len(cmd))):
                cmd[0] = sys.executable
            return cmd

    return KernelManager


class _LeftoverCellTask(logging.Filter):
    """Drops asyncio's "Task exception was never retrieved" for a cell's task that failed with
    DeadKernelError: interrupted, papermill leaves nbclient's ``async_execute_cell`` task behind, and
    when it is collected (sometimes at exit) its traceback buried the "continue this run with" line.
    Any other error of asyncio's is still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        from nbclient.exceptions import DeadKernelError

        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, DeadKernelError)
                    and record.getMessage().startswith("Task exception was never retrieved"))


def _quiet_leftover_cell_task() -> None:
    """After an interrupt: the kernel is gone, so its leftover task's error says nothing new."""
    log = logging.getLogger("asyncio")  # where asyncio's default exception handler writes
    if not any(isinstance(f, _LeftoverCellTask) for f in log.filters):
        log.addFilter(_LeftoverCellTask())


def _last_words(log) -> str:
    """The end of a dead kernel's log, if it left one (a fatal error, say), for its error message."""
    log.seek(0)
    lines = log.read().decode(errors="replace").strip().splitlines()[-5:]
    return "\nThe kernel's last log lines:\n" + "\n".join(lines) if lines else ""


def _replace_if_written(partial: Path, final: Path) -> None:
    if partial.is_file():
        os.replace(partial, final)


def _discard(final: Path) -> None:
    """Remove an earlier run's executed notebook, unless it is the workbook's own: a full run into
    the repository root executes the notebooks in place, and Ctrl-C deleted the source notebook
    (a --resume then ran without it, and said done)."""
    if final.resolve().parent != NOTEBOOK_DIR.resolve():
        final.unlink(missing_ok=True)


def _keep_partial(partial: Path, final: Path, name: str) -> bool:
    """A failed notebook's executed copy (its outputs up to the failure) in place of ``final``;
    where papermill left none, or not a whole notebook, ``final`` is removed: an earlier run's
    there would pass for this run's. True when kept."""
    try:
        _forget_machine_paths(partial, name)
    except Exception:  # missing, or cut short: nbformat's errors are of many kinds
        partial.unlink(missing_ok=True)
        _discard(final)
        return False
    _replace_if_written(partial, final)
    return True


def format_seconds(seconds: float | None) -> str:
    """``95s`` or ``4m 05s`` (None: a notebook finished in a session whose pipeline.json was lost)."""
    if seconds is None:
        return "time unknown"
    seconds = int(round(seconds))
    return f"{seconds}s" if seconds < 60 else f"{seconds // 60}m {seconds % 60:02d}s"


def _forget_outdated(out_dir: Path, timings: dict[str, float], ran: str) -> None:
    """A notebook that saved a stage marked the notebooks after it unfinished in pipeline.json
    (``Session.save``), as they read what it replaced: the summary kept in memory must not count
    them finished again when it is next written."""
    finished = set(read_json(out_dir / "metrics" / "pipeline.json").get("finished", [])) | {ran}
    for name in [n for n in timings if n not in finished]:
        del timings[name]


def _outputs_state(out_dir: Path) -> dict[str, tuple[int, int, int]]:
    """What later notebooks and the report read of what the notebooks write (metrics records,
    checkpoints, the report and its sidecar) as each file's (inode, size, mtime): an atomic write
    renames a new file over the old one (another inode), a write in place changes its mtime.
    pipeline.json (the pipeline's own) and temporary files are left out; so are figures, which a
    notebook draws again from the same inputs before it saves anything."""
    files = [*out_dir.glob("*.json"), *(out_dir / "metrics").rglob("*"), *(out_dir / "models_saved").rglob("*")]
    state = {}
    for path in files:
        if path.name.startswith(".") or path == out_dir / "metrics" / "pipeline.json":
            continue
        with contextlib.suppress(OSError):  # gone meanwhile
            if path.is_file():
                st = path.stat()
                state[str(path)] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return state


def _same_outputs(out_dir: Path, before: dict) -> bool:
    """Whether the notebooks' outputs are those of ``_outputs_state`` ``before`` (False where unsure)."""
    try:
        return _outputs_state(out_dir) == before
    except OSError:
        return False


def _restore(timings: dict[str, float | None], again: dict[str, float | None]) -> None:
    """``again``'s notebooks that this session has not finished anew count finished again, with their
    earlier times; ``timings`` (the summary's, changed in place) in the notebooks' order."""
    merged = sorted((again | timings).items())
    timings.clear()
    timings.update(merged)


def _finished_timings(saved: dict) -> dict[str, float]:
    """{notebook: seconds} of the notebooks a saved summary says finished."""
    return {name: saved["notebooks"][name] for name in saved.get("finished", []) if name in saved["notebooks"]}


def _write_summary(out_dir: Path, summary: dict, start: float, failed: str | None = None) -> dict:
    # finished: every timed notebook but a failed one; total_seconds: all notebooks of the run,
    # earlier sessions included (--resume), but the untimed ones (None: finished in a session whose
    # pipeline.json was lost), so it is partial while there are any; session_seconds: this invocation's wall time.
    times = summary["notebooks"]
    summary = dict(summary, finished=[n for n in times if n != failed],
                   total_seconds=sum(t for t in times.values() if t is not None),
                   untimed=[n for n, t in times.items() if t is None],
                   session_seconds=time.perf_counter() - start, failed=failed)
    write_json(out_dir / "metrics" / "pipeline.json", summary)
    return summary


def _time_the_report(out_dir: Path, summary: dict) -> None:
    """The run's timings into the report's sidecar (the report notebook cannot time itself): called
    after a notebook finished, and only while the summary counts 05 finished. A failed session, or
    one that outdated the report (--notebooks 03 after a whole run), gave it its own few minutes."""
    details = out_dir / "report_details.json"
    if any(n[:2] == "05" for n in summary["finished"]) and details.is_file():
        sidecar = read_json(details)
        if sidecar.get("run", {}).get("run_id") == summary["run_id"]:
            write_json(details, dict(sidecar, timings=summary))
