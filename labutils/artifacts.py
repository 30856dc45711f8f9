"""Where a run's files go, how they are written (atomically), and what a run records about itself."""
from __future__ import annotations

import datetime as _dt
import errno
import functools
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from .errors import Explained, SettingsError

REPO_ROOT = Path(__file__).resolve().parents[1]


class WriteFailed(Explained, OSError):
    """A run's file could not be written: the file, the cause and what to do, in one line."""

    def __init__(self, err: OSError, path: Path):
        super().__init__(err.errno, err.strerror or str(err), str(path))
        self.advice = ""
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            free = _free_bytes(path.parent)
            left = f" ({free / 2**20:.0f} MiB left there)" if free is not None else ""
            self.advice = (f"{left}; free some space, or set OUT_DIR (--out) to a folder on another disk, "
                           f"then run it again (a pipeline run: add --resume)")
        elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            self.advice = f"; its folder {path.parent} cannot be written: choose a folder you can write to"

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror}{self.advice}"


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _os_error_behind(err: BaseException) -> OSError | None:
    """The OSError that made ``err``: torch.save reports a full disk as a RuntimeError ("unexpected
    pos 704 vs 598") whose context is the OSError it met."""
    for e in (err, err.__cause__, err.__context__):
        if isinstance(e, OSError) and not isinstance(e, WriteFailed):
            return e
    return None


def atomic_write_bytes(path: str | os.PathLike, write) -> Path:
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it into place,
    so an interrupted run never leaves a half-written checkpoint or report behind. A failed write
    (a full disk) is a WriteFailed that names ``path`` and its cause."""
    path = Path(path)
    try:  # an unwritable folder: name the file, not mkstemp's random temporary one
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise WriteFailed(err, path) from err
    try:
        with os.fdopen(fd, "wb") as f:
            try:  # mkstemp makes the file 0600; give it the mode any new file of this process gets
                os.fchmod(f.fileno(), 0o666 & ~process_umask())
            except OSError:  # a file system without modes (vfat, some SMB/FUSE mounts): the write still counts
                pass
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        cause = _os_error_behind(err)
        if cause is not None:
            raise WriteFailed(cause, path) from err
        raise
    return path


def process_umask() -> int:
    """The process's umask, read without changing it where Linux tells it (``/proc``); elsewhere
    it is set and restored at once (the only portable way to read it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def json_text(path: str | os.PathLike, payload) -> str:
    """``payload`` as the JSON text ``write_json`` writes to ``path``; NaN refused, naming the file."""
    try:
        return json.dumps(payload, indent=2, sort_keys=False, allow_nan=False) + "\n"
    except ValueError as err:  # "Out of range float values are not JSON compliant": say which file
        raise ValueError(f"cannot write {path}: it would hold NaN or an infinity ({err}); "
                         f"a diverged training gives them (lower the learning rate)") from err


def as_stored(value):
    """``value`` as a JSON file gives it back (tuples as lists): what a record read from disk is
    compared with."""
    return json.loads(json.dumps(value))


def write_json(path: str | os.PathLike, payload) -> Path:
    text = json_text(path, payload)
    return atomic_write_bytes(path, lambda f: f.write(text.encode()))


def file_sha256(path: str | os.PathLike) -> str:
    """The file's SHA-256, read a megabyte at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json_object(path: str | os.PathLike) -> dict | None:
    """The JSON object in ``path``; None where the file is missing, damaged or holds no object
    (a record that may not be there, read where its absence is an answer, not an error)."""
    try:
        data = read_json(path) if Path(path).is_file() else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def read_json(path: str | os.PathLike):
    """The JSON in ``path``; a damaged file is a ValueError that names it (json's own names none)."""
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:  # not text at all: damaged too
            raise ValueError(f"{path} is not valid JSON ({err}): it was damaged; delete it and run "
                             f"again what wrote it (the notebook, or the command)") from None


def resolve_out_dir(profile: str, out: str | os.PathLike | None = None) -> Path:
    """Where a run writes. ``full`` defaults to the repository root (the committed reference
    run); reduced profiles default to ``runs/<profile>`` and may never write into the root, so a
    smoke or CPU run cannot overwrite the reference notebooks, figures and report."""
    if not out:
        return REPO_ROOT if profile == "full" else REPO_ROOT / "runs" / profile
    path = Path(out).expanduser().resolve()
    if profile != "full" and path == REPO_ROOT:
        raise ValueError(f"a {profile!r} run may not write into the repository root {REPO_ROOT}: "
                         f"that holds the committed reference run. Leave the output folder unset "
                         f"(it becomes runs/{profile}) or choose another folder.")
    return path


def check_output_folder(path: Path) -> None:
    """SettingsError when ``path`` (or a folder above it) is an existing file."""
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                raise SettingsError(f"the output folder {path} cannot be used: {part} is a file. "
                                    f"Set OUT_DIR (--out) to a folder")
            return


class RunDirs:
    """The folders of one run: ``out/models_saved``, ``out/figures``, ``out/metrics``."""

    def __init__(self, out: str | os.PathLike = REPO_ROOT):
        self.root = Path(out).resolve()
        self.models = self.root / "models_saved"
        self.figures = self.root / "figures"
        self.metrics = self.root / "metrics"
        check_output_folder(self.root)
        try:
            for d in (self.models, self.figures, self.metrics):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SettingsError(f"cannot create the run's folders in {self.root} ({err.strerror or err}): "
                                f"set OUT_DIR (--out) to a folder you can write to") from None

    def checkpoint(self, model: str, stage: str) -> Path:
        """``models_saved/{model}_{stage}.pth`` (stage: before_pruning, after_..._pruning)."""
        return self.models / f"{model}_{stage}.pth"

    def metrics_file(self, model: str, stage: str) -> Path:
        return self.metrics / f"{model}_{stage}.json"

    def figure(self, name: str) -> Path:
        return self.figures / name

    def __repr__(self) -> str:
        return f"RunDirs({str(self.root)!r})"


# Appended to the commit where the checkout's labutils/ differs from it (a recipe edited in
# profiles.py and not committed), with a fingerprint of the difference: a run never passes edited
# code off as the commit, and two different edits are two different codes.
UNCOMMITTED = "+changes"


# What a copy of the tree without git (a downloaded ZIP, a Colab upload) names its code by, with a
# fingerprint of its files: edited code never continues a run of other code there either.
NO_GIT = "no-git"


@functools.lru_cache(maxsize=None)
def git_commit(root: Path = REPO_ROOT, paths: tuple[str, ...] = ("labutils",)) -> str:
    """The checkout's commit, with ``UNCOMMITTED`` and the first 8 hex digits of the SHA-256 of
    ``git diff HEAD -- <paths>`` appended (``9ea14151ae9f+changes.3fa2b1c0``) where tracked files
    under ``paths`` have uncommitted changes (the notebooks are left out: a full run writes the
    repository's own). ``paths`` defaults to ``labutils/`` alone: that is a run's identity, which
    --resume compares, and an edited benchmark must not change it; the benchmarks pass
    ``("labutils", "benchmarks")`` so their results never name a clean commit for an edited script.
    ``$LABUTILS_GIT_COMMIT`` names it where git cannot: a copy of the tree sent to a GPU machine
    has no git metadata, or stale metadata of an older commit. Without either, or where git does
    not track ``paths`` (a copy inside another repository), the code is named by its files
    (``no-git.`` and 12 hex digits, see ``code_fingerprint``)."""
    if os.environ.get("LABUTILS_GIT_COMMIT"):
        return os.environ["LABUTILS_GIT_COMMIT"]

    def git(*args: str) -> str | None:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else None

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        # No git metadata; or a copy that git does not track, unpacked inside another repository
        # (a student's own): it was named by that repository's commit, which no edit here changed.
        if not commit or not git("ls-files", "--", *paths):
            return code_fingerprint(root, paths)
        if not git("status", "--porcelain", "--untracked-files=no", "--", *paths):
            return commit
        # The same text whatever the user's git config (colour, prefixes, external diff tools).
        diff = git("diff", "--no-color", "--no-ext-diff", "--no-textconv", "--src-prefix=a/", "--dst-prefix=b/",
                   "HEAD", "--", *paths) or ""
        return f"{commit}{UNCOMMITTED}.{hashlib.sha256(diff.encode()).hexdigest()[:8]}"
    except (OSError, subprocess.SubprocessError):  # no git program
        return code_fingerprint(root, paths)


def code_fingerprint(root: Path, paths: tuple[str, ...]) -> str:
    """``NO_GIT`` and the first 12 hex digits of the SHA-256 of the ``.py`` files under ``paths``
    (relative names and contents, in sorted order): the same code, the same name; any edit, another.
    Hidden folders are left out: JupyterLab's .ipynb_checkpoints/ keep older copies of edited files."""
    files = sorted(p.relative_to(root).as_posix() for folder in paths for p in (root / folder).rglob("*.py")
                   if not any(part.startswith(".") for part in p.relative_to(root / folder).parts))
    digest = hashlib.sha256()
    for name in files:
        digest.update(f"{name}\0{hashlib.sha256((root / name).read_bytes()).hexdigest()}\n".encode())
    return f"{NO_GIT}.{digest.hexdigest()[:12]}"


def device_name(device) -> str:
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def run_info(profile: str, data: str, device, run_id: str | None = None) -> dict:
    """What a metrics file says about the run that made it (the report checks these agree)."""
    return {
        "run_id": run_id or new_run_id(profile),
        "profile": profile,
        "data": data,
        "device": device_name(device),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
    }


def run_id_for(metrics_dir: str | os.PathLike, profile: str, seed: int = 0, fresh: bool = False) -> str:
    """The run id of a folder: its ``metrics/run.json`` when that names the same profile and seed
    (so notebooks run one at a time still form one run); a new id recorded there when there is
    none or ``fresh`` (a run that starts); SettingsError when it names another profile or seed."""
    marker = Path(metrics_dir) / "run.json"
    if not fresh and marker.is_file():
        try:
            saved = read_json(marker)
        except ValueError:  # "delete it" alone would orphan the run: a new id, its records another run's
            raise SettingsError(damaged_run_marker(marker)) from None
        # Another profile's or seed's run: going on here would mix its records with this session's
        # (a report from one seed's baselines and another's pruned models), and the pipeline would
        # no longer know which notebooks that run finished. Older folders recorded no seed.
        for key, option, asked in (("profile", "PROFILE", profile), ("seed", "SEED", seed)):
            if saved.get(key, asked) != asked:
                folder = Path(metrics_dir).parent
                raise SettingsError(
                    f"{folder} holds run {saved.get('run_id')} made with {option} = {saved[key]!r}, not {asked!r}: "
                    f"set {option} = {saved[key]!r} (--{key}) to continue it, or another OUT_DIR (--out) for a "
                    f"new run (or delete {folder} to start over there)")
        return saved["run_id"]
    run_id = new_run_id(profile)
    record_run(metrics_dir, run_id, profile, seed)
    return run_id


def damaged_run_marker(marker: Path) -> str:
    """What to do about a damaged ``metrics/run.json``: write it again with the run id the folder's
    other files name (``pipeline.json``, a metrics record), where one does."""
    found = None
    for path in [marker.with_name("pipeline.json"), *sorted(marker.parent.glob("*_*.json"))]:
        try:
            saved = read_json(path) if path.is_file() else {}
        except (OSError, ValueError):
            continue
        run = saved.get("run", saved) if isinstance(saved, dict) else {}
        if isinstance(run, dict) and run.get("run_id") and run.get("profile"):
            found = {"run_id": run["run_id"], "profile": run["profile"], "seed": run.get("seed", 0)}
            break
    text = f"{marker} is damaged (not valid JSON): it names the run the folder holds. "
    if found:
        text += f"Write it again as {json.dumps(found)} ({path.name} names that run) to continue it; or "
    return text + ("delete it to start a new run there: every record in the folder then counts as another "
                   "run's, so run the notebooks again from 01")


def record_run(metrics_dir: str | os.PathLike, run_id: str, profile: str, seed: int) -> None:
    """``metrics/run.json``: the run a folder holds, which every notebook's session continues."""
    write_json(Path(metrics_dir) / "run.json", {"run_id": run_id, "profile": profile, "seed": seed})


def new_run_id(profile: str) -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{profile}-{stamp}-{uuid.uuid4().hex[:6]}"
