"""One run at a time per output folder: ``out/.labutils.lock`` is held for the whole run.

The lock is a file holding {pid, host, run_id, started, token}, written whole under a temporary name
and hard-linked to its own (atomic, and refused where a lock exists), so it is never seen empty. A
second run into the folder is refused with the holder's run id and PID. A lock left by a process of
this host that no longer runs (killed with SIGKILL, or the machine restarted: its PID gone, or given
to a process started after the lock, or the lock names another boot of the machine) is reported and
taken over; one from another host, or from another PID namespace of this one (a container sharing the
host's name), cannot be checked and is refused.
Taking over happens under an flock of the folder, so two runs cannot both take over the same stale lock.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import sys
import uuid
from pathlib import Path

import psutil

from .errors import Explained

LOCK_NAME = ".labutils.lock"
# The pipeline hands its lock's token to the kernels it starts, so its own notebooks may write.
RUN_TOKEN_ENV = "LABUTILS_RUN_TOKEN"


class RunLocked(Explained, RuntimeError):
    """Another run holds the output folder."""


def check_free(out_dir: str | os.PathLike) -> None:
    """RunLocked when a live run other than the caller's holds ``out_dir``: a notebook opened by
    hand while ``python -m labutils run`` writes into the same folder would overwrite its files, and
    the report would mix the two. A stale lock is left for the next run to take over."""
    path = Path(out_dir) / LOCK_NAME
    holder = _holder(path)
    if holder is None or (holder.get("token") is not None and holder["token"] == os.environ.get(RUN_TOKEN_ENV)):
        return
    if where := _unreachable(holder):
        raise RunLocked(_elsewhere(path, holder, where))
    if not _runs(holder):
        return
    raise RunLocked(f"{path.parent} is being written by {_describe(holder)}; wait for it to finish, or set "
                    f"OUT_DIR to another folder (if that process no longer runs, delete {path})")


def _runs(holder: dict) -> bool:
    """Whether the lock's process still runs: its PID is alive, and was not given since to a process
    that started after the lock (a restarted container hands a killed run's PID on, often 1)."""
    if holder.get("boot_id") and BOOT_ID and holder["boot_id"] != BOOT_ID:  # the machine restarted since
        return False
    try:
        created = psutil.Process(holder["pid"]).create_time()
    except psutil.NoSuchProcess:
        return False
    except (psutil.Error, OSError):
        return True  # cannot tell: assume it runs (refusing is the safe side)
    try:
        started = _dt.datetime.fromisoformat(holder["started"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return True
    # The holder wrote "started" (to the second) after it was created; 2 s for the rounding and
    # the boot time psutil counts process starts from (whole seconds).
    return created <= started + 2


def _holder(path: Path) -> dict | None:
    """The lock's contents (its "pid" an int), None when there is no lock; RunLocked when unreadable."""
    try:
        holder = json.loads(path.read_text())
        pid = int(holder["pid"])
        if pid < 1:  # psutil raises ValueError for it: no process ever has it
            raise ValueError(pid)
        return holder | {"pid": pid}
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError, KeyError, TypeError):
        raise RunLocked(f"{path} exists but cannot be read; if no run is writing into {path.parent}, "
                        f"delete it and start again") from None


def _describe(holder: dict) -> str:
    run = f"run {holder['run_id']}" if holder.get("run_id") else "a run"
    return f"{run} (PID {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')})"


def _pid_namespace() -> int | None:
    """This process's PID namespace (its inode), None where /proc does not say (not Linux)."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def _boot_id() -> str | None:
    """This boot of the machine, None where Linux's /proc does not say."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


PID_NAMESPACE, BOOT_ID = _pid_namespace(), _boot_id()


def _unreachable(holder: dict) -> str | None:
    """Where the lock's process is when its PID cannot be checked from here ("on another host"),
    else None. A container sharing the host's name (docker --network host) has its own PIDs: the
    holder's is not there, and a live run would be judged dead."""
    if holder.get("host") != socket.gethostname():
        return "on another host"
    if holder.get("boot_id") and BOOT_ID and holder["boot_id"] != BOOT_ID:
        return None  # another boot: gone (``_runs``), whatever namespace it had
    if holder.get("pid_ns") and PID_NAMESPACE and holder["pid_ns"] != PID_NAMESPACE:
        return "in another PID namespace of this host (another container)"
    return None


def _elsewhere(path: Path, holder: dict, where: str = "on another host") -> str:
    """The refusal for a lock of another host: its PID cannot be checked, so not "wait for it"."""
    return (f"{path.parent} is locked by {_describe(holder)}; a process {where} cannot be checked "
            f"from here: if it no longer runs, delete {path}")


class RunLock:
    """``with RunLock(out_dir) as lock: ... lock.name_run(run_id)``; released on any exit."""

    def __init__(self, out_dir: str | os.PathLike):
        self.path = Path(out_dir) / LOCK_NAME
        self.info = {"pid": os.getpid(), "host": socket.gethostname(), "run_id": None,
                     "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                     "token": uuid.uuid4().hex, "pid_ns": PID_NAMESPACE, "boot_id": BOOT_ID}

    def __enter__(self) -> "RunLock":
        if not self._create() and not self._take_over_if_stale():
            raise RunLocked(f"{self.path.parent} is being written by another run that started just now; "
                            f"wait for it to finish or use another --out folder")
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def name_run(self, run_id: str) -> None:
        """Record the run id once it is known, so a refused run can name the holder."""
        self.info["run_id"] = run_id
        tmp = self.path.with_name(f"{LOCK_NAME}.{self.info['token']}.tmp")
        tmp.write_text(json.dumps(self.info))
        os.replace(tmp, self.path)  # the lock path exists throughout, so no one can take it

    def release(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(self.path.read_text()).get("token") == self.info["token"]:
                self.path.unlink()

    def _create(self) -> bool:
        """Create the lock, False where one exists. Written whole under a temporary name, then
        hard-linked to the lock's name: created empty and then written, a kill in between left an
        empty lock that no run took over, and a notebook reading it meanwhile was told to delete it."""
        tmp = self.path.with_name(f"{LOCK_NAME}.{self.info['token']}.tmp")
        try:
            self._write_new(tmp)  # a full disk: raised here, nothing left behind
            try:
                os.link(tmp, self.path)  # atomic; FileExistsError where a lock exists
            except FileExistsError:
                return False
            except OSError:  # no hard links on this file system (some FUSE mounts, SMB, FAT)
                return self._write_new(self.path, exists_ok=True)
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def _write_new(self, path: Path, exists_ok: bool = False) -> bool:
        """Write the lock's JSON into ``path``, which must not exist (False where it does and
        ``exists_ok``). A write that fails removes the file: an empty lock would refuse every later run."""
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if exists_ok:
                return False
            raise
        try:
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(self.info))
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return True

    def _take_over_if_stale(self) -> bool:
        """Replace a lock whose process is gone with this one (saying so); raise RunLocked for a live
        one. False when another run created the lock meanwhile. The check and the replacement happen
        under the folder's flock: otherwise two runs that both saw the stale lock could each delete
        it, the second deleting the lock the first had just created, and both would run."""
        with _folder_flock(self.path.parent):
            holder = _holder(self.path)
            if holder is None:
                return self._create()  # released meanwhile
            if where := _unreachable(holder):
                raise RunLocked(_elsewhere(self.path, holder, where))
            if _runs(holder):
                raise RunLocked(f"{self.path.parent} is in use by {_describe(holder)}; wait for it to "
                                f"finish, or write this run into another --out folder")
            print(f"warning: taking over the stale lock of {_describe(holder)}: that process no longer "
                  f"runs (it was killed or crashed)", file=sys.stderr)
            self.path.unlink(missing_ok=True)
            return self._create()


@contextlib.contextmanager
def _folder_flock(folder: Path):
    """An exclusive flock on the folder itself (no extra file to leave behind); where flock is
    missing (Windows), the folder cannot be opened for it or flock fails (NFS), nothing is held."""
    try:
        import fcntl
        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # ENOLCK: NFS without its lock daemon; the takeover goes on unguarded
            pass
        yield
    finally:
        os.close(fd)  # closing releases the flock
