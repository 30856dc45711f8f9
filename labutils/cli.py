"""python -m labutils: run the workbook headlessly, evaluate checkpoints, check a hand-in, or print the
results table."""
from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from .course import MODEL_NAMES, NOTEBOOKS
from .profiles import PROFILES


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m labutils", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute the notebooks in order with papermill",
                         description="Execute the workbook's notebooks in order with papermill. "
                                     "Writes DIR/notebooks (executed), DIR/models_saved, "
                                     "DIR/figures, DIR/metrics and, with notebook 05, DIR/report.json.",
                         epilog="exit status: 0 done; 1 a notebook failed, or the run was refused or could not "
                                "write (its error says why); 2 a bad option, refused before anything is written; "
                                "130 Ctrl-C; 143 SIGTERM (both: the run can be continued, or run again, with the command its "
                                "message prints)")
    run.add_argument("--profile", default="auto", choices=["auto", *PROFILES],
                     help="auto (default): full on a CUDA GPU, cpu otherwise")
    run.add_argument("--out", metavar="DIR", default=None,
                     help="output folder (default: the repository root for full, runs/PROFILE otherwise)")
    run.add_argument("--data-root", metavar="DIR", default=None,
                     help="folder holding cifar-10-batches-py (default: $LABUTILS_DATA, else the "
                          "repository's data/ folder)")
    run.add_argument("--models", type=_csv, default=list(MODEL_NAMES),
                     help="comma-separated subset of cnn,vit,vit_scratch (default: all)")
    run.add_argument("--notebooks", type=_csv, default=None,
                     help="comma-separated notebook numbers, e.g. 01,02 (default: all); later ones "
                          "alone continue the run in --out (same profile, commit, models, seed and data)")
    run.add_argument("--resume", action="store_true",
                     help="continue the run in --out: skip the notebooks it finished (same profile, "
                          "commit, models, seed and data, else refused)")
    run.add_argument("--seed", type=int, default=0,
                     help="the run's random seed: initial weights, data order, augmentation (default: 0)")
    run.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, mps")
    run.add_argument("--vit-weights", metavar="FILE", default=None,
                     help="local file with timm's pretrained vit_tiny_patch16_224 weights "
                          "(default: timm's hub, or its local cache)")
    ev = sub.add_parser("evaluate", help="measure saved checkpoints",
                        description="Load each checkpoint safely and measure test accuracy, sparsity, "
                                    "parameters, MACs, size on disk and time per image. A missing, "
                                    "corrupt or foreign file is reported by name; the others still run. "
                                    "Ctrl-C stops and shows (and writes to --json) the finished ones.",
                        epilog="exit status: 0 every checkpoint measured; 1 a checkpoint failed, or its accuracy "
                               "was not measured, or --json could not be written; 2 a bad option (--device, --json, "
                               "--data-root), refused before any work; 130 Ctrl-C")
    ev.add_argument("paths", nargs="+", metavar="PATH", help="checkpoint files (.pth)")
    ev.add_argument("--data-root", metavar="DIR", default=None,
                    help="evaluate on the whole test split in DIR (default: the data and test subset "
                         "each checkpoint was measured on)")
    ev.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, mps")
    ev.add_argument("--no-accuracy", action="store_true", help="skip the test-set pass")
    ev.add_argument("--json", metavar="FILE", default=None, help="also write the results as JSON")
    chk = sub.add_parser("check", help="check a hand-in: report.json against its checkpoints and the course",
                         description="Check a run's folder as an instructor grading it would: report.json "
                                     "has the course's format; models_saved/ holds the course's file names "
                                     "for its entries and nothing else; every checkpoint loads and comes "
                                     "from one run; every accuracy is the one its checkpoint recorded, and "
                                     "every share removed is the one its weights show; baselines are dense; a vit "
                                     "started from pretrained weights; "
                                     "the executed notebooks show no error and show the report's run. "
                                     "Then the course's minimums, met or not.",
                         epilog="exit status: 0 no check failed: a minimum not met (a model not produced, an "
                                "accuracy too low) does not change it; 1 a check failed; 2 a bad option or folder "
                                "(DIR, --notebook-dir, --data-root, --device), refused before any check")
    chk.add_argument("root", metavar="DIR", help="the run's folder (report.json and models_saved/ inside)")
    chk.add_argument("--measure", action="store_true",
                     help="also measure each checkpoint's accuracy on its run's test images (minutes on a CPU)")
    chk.add_argument("--data-root", metavar="DIR", default=None,
                     help="with --measure: the folder holding cifar-10-batches-py when the run's own data "
                          "folder is not beside it (the run's test images are taken from it)")
    chk.add_argument("--notebook-dir", metavar="NB_DIR", default=None,
                     help="the folder of the executed notebooks (default: DIR/notebooks, where python -m "
                          "labutils run writes them; a run made by hand in JupyterLab: the workbook's notebooks/)")
    chk.add_argument("--device", default="auto",
                     help="where the checkpoints are loaded and measured: auto (default), cpu, cuda, cuda:1, mps")
    res = sub.add_parser("results-table", help="the README's results table from report.json",
                         description="Print the results section (for every number of report.json, "
                                     "the course's minimum and the project's goal, and whether each "
                                     "is met) from report.json and report_details.json in DIR.",
                         epilog="exit status: 0 printed (or written; at the repository root, with no report.json, the goals "
                                "a run will be held to); 1 a --root DIR without report.json, a damaged one, or "
                                "--write-readme with another --root")
    res.add_argument("--root", metavar="DIR", default=None,
                     help="a run's folder holding report.json (a reduced run is shown, marked as one; "
                          "default: the repository root, whose reference run must be a full one)")
    res.add_argument("--write-readme", action="store_true",
                     help="write the section into the repository's README.md between its markers")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "evaluate":
        return _evaluate(args)
    if args.command == "results-table":
        return _results_table(args)
    if args.command == "check":
        return _check(args)
    return 2


def positive(text: str) -> int:
    """argparse type: a whole number of 1 or more (0 passes or 0 images measure nothing)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return value


def unwritable_json(path: str | os.PathLike, example: str = "results.json") -> str | None:
    """Why a results file cannot be written at ``path`` (a folder, a place this process cannot
    write to), or None: for a command to say before its work, not after it. ``example``: a file
    name to suggest inside a folder given instead of a file."""
    if Path(path).is_dir():
        return f"cannot write {path}: it is a folder; give a file name, e.g. {Path(path) / example}"
    folder = Path(path).resolve().parent
    while not folder.exists():  # the writer makes missing folders: check where it would start
        folder = folder.parent
    if not (folder.is_dir() and os.access(folder, os.W_OK)):
        return f"cannot write {path}: {folder} is not a folder this process can write to"
    return None


def _evaluate(args) -> int:
    import time

    from .artifacts import device_name, git_commit, write_json
    from .data import TEST_FILES, cifar10_dir
    from .evaluate import evaluate_each, format_table
    from .train import get_device

    try:
        device = get_device(args.device)
    except (RuntimeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json and (problem := unwritable_json(args.json, "evaluate.json")):  # before, not after, the work
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.data_root and args.no_accuracy:  # as check's note without --measure
        print("note: --data-root is read only for the accuracy; with --no-accuracy it is not used", file=sys.stderr)
    if args.data_root and not args.no_accuracy:  # every checkpoint's test images come from it: checked once, now
        try:
            cifar10_dir(args.data_root, download=False, files=TEST_FILES)
        except (ValueError, OSError) as err:  # DataNotFoundError is an OSError
            print(f"error: --data-root {args.data_root}: {err}\nOr pass --no-accuracy: the other numbers need no "
                  f"test images", file=sys.stderr)
            return 2
    rows, failures, done, interrupted = [], [], 0, False
    total = len(args.paths)
    print(f"evaluating {total} checkpoint(s) on {device}; Ctrl-C stops and shows those finished",
          file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        for path, row, error in evaluate_each(args.paths, device, args.data_root, accuracy=not args.no_accuracy):
            done += 1
            rows += [row] if row else []
            failures += [{"checkpoint": str(path), "error": error}] if error else []
            print(f"[{done}/{total}] {Path(path).stem}: {_evaluated(row, error)}, "
                  f"{time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
            started = time.perf_counter()
    except KeyboardInterrupt:  # keep what is finished: each checkpoint takes seconds to minutes
        interrupted = True
    not_evaluated = args.paths[done:] if interrupted else []
    if rows:
        print(format_table(rows))
    for f in failures:
        print(f"error: {f['checkpoint']}: {f['error']}", file=sys.stderr)
    if any(r.get("accuracy_error") for r in rows):
        print("the table shows the other numbers of the checkpoints whose accuracy was not measured "
              "(--no-accuracy leaves accuracy out)", file=sys.stderr)
    if interrupted:
        print(f"interrupted: {len(not_evaluated)} of {total} checkpoint(s) not evaluated: {shlex.join(not_evaluated)}",
              file=sys.stderr)
    if args.json:
        try:
            # How the times were taken: on which machine, with which code (each row: batch, precision, threads).
            write_json(args.json, {"device": device_name(device), "git_commit": git_commit(),
                                   "results": rows, "failures": failures,
                                   "interrupted": interrupted, "not_evaluated": not_evaluated})
        except OSError as err:
            print(f"error: {describe_os_error(err, args.json)}", file=sys.stderr)
            return 130 if interrupted else 1
        except (TypeError, ValueError) as err:  # a value JSON cannot hold (NaN, an object): one line, no traceback
            problem = err if isinstance(err, ValueError) else f"cannot write {args.json}: {err}"  # json_text names the file
            print(f"error: {problem}; nothing was written to it, the results are printed above", file=sys.stderr)
            return 130 if interrupted else 1
    return 130 if interrupted else 1 if failures else 0


def _evaluated(row: dict | None, error: str | None) -> str:
    """How one checkpoint's evaluation ended, for its progress line (the errors follow the table)."""
    if row is None:
        return "failed (see below)"
    if error:
        return "accuracy not measured (see below)"
    if row.get("accuracy") is None:
        return "measured (--no-accuracy)"
    return f"{row['accuracy']:.2%} on {row['test_images']} images"


def _check(args) -> int:
    from .results import models_left_out
    from .submission import _read, check_submission, minimums
    from .train import get_device

    root = Path(args.root)
    if not root.is_dir():
        print(f"error: {root} is not a folder: pass a run's folder (the one holding report.json)", file=sys.stderr)
        return 2
    if args.notebook_dir and not Path(args.notebook_dir).is_dir():
        print(f"error: --notebook-dir {args.notebook_dir} is not a folder: pass the folder holding the executed "
              f"notebooks", file=sys.stderr)
        return 2
    if args.measure and args.data_root and not Path(args.data_root).is_dir():  # said now, not once per checkpoint
        print(f"error: --data-root {args.data_root} is not a folder: pass the folder holding cifar-10-batches-py "
              f"(for a smoke run, its data-synthetic/)", file=sys.stderr)
        return 2
    if args.data_root and not args.measure:  # as run's note for a profile that does not read it
        print("note: --data-root is read only with --measure; it is not used", file=sys.stderr)
    try:
        device = get_device(args.device)
    except (RuntimeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    findings, report = check_submission(root, args.measure, args.data_root, device,
                                        progress=lambda name: print(f"  measuring {name} ...", flush=True),
                                        notebooks=args.notebook_dir)
    for f in findings:
        print(f.line())
    failed = sum(not f.ok for f in findings)
    if report is not None:
        details = _read(root / "report_details.json")[0] or {}  # which models the run left out, if it says
        print("\nthe course's minimums, from report.json:")
        print("\n".join(minimums(report, findings, models_left_out(details))))
    print(f"\n{len(findings)} checks, {failed} failed" + ("" if args.measure else
          " (accuracies compared with what the checkpoints recorded; --measure measures them again)"))
    return 1 if failed else 0


def _results_table(args) -> int:
    from .artifacts import REPO_ROOT
    from .results import ResultsError, results_section, write_readme

    try:
        if args.write_readme:
            if args.root and Path(args.root).resolve() != REPO_ROOT:
                raise ResultsError("--write-readme writes the repository's own run: copy the run's "
                                   "files into the repository root first, and leave out --root.")
            print(f"wrote the results section of {write_readme(REPO_ROOT)}")
        else:
            if args.root and not (Path(args.root) / "report.json").is_file():
                raise ResultsError(f"{args.root} holds no report.json: pass the folder of a run "
                                   f"(notebook 05 writes report.json there)")
            # Any run's folder may be shown; the repository root must hold a full run.
            print(results_section(args.root or REPO_ROOT, full_only=not args.root))
    except (ResultsError, ValueError) as err:  # ValueError: a damaged JSON file, named
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _run(args) -> int:
    from .artifacts import resolve_out_dir
    from .data import DataNotFoundError, check_data_folder, run_data_root
    from .models import check_vit_weights
    from .pipeline import NotebookFailed, NotebooksNotFound, format_seconds, run_pipeline
    from .profile_check import check_profile
    from .profiles import auto_profile, get_profile
    from .runlock import RunLocked
    from .train import check_seed, get_device

    unknown = [m for m in args.models if m not in MODEL_NAMES]
    if unknown or not args.models:
        print(f"error: unknown model(s) {unknown}; choose from {', '.join(MODEL_NAMES)}" if unknown else
              f"error: --models names no model; choose from {', '.join(MODEL_NAMES)}", file=sys.stderr)
        return 2
    if args.notebooks == []:  # "--notebooks ," would otherwise mean all of them
        print(f"error: --notebooks names no notebook; choose from {', '.join(NOTEBOOKS)} "
              f"(or leave it out to run all)", file=sys.stderr)
        return 2
    if args.notebooks:  # "1" is notebook 01; the numbers are those in notebooks/ (a 07 of one's own too)
        from .pipeline import available_notebooks

        args.notebooks = [n.zfill(2) if n.isdigit() else n for n in args.notebooks]
        try:
            known = available_notebooks()
        except ValueError as err:  # two notebooks of one number
            print(f"error: {err}", file=sys.stderr)
            return 2
        if known and (unknown := [n for n in args.notebooks if n not in known]):
            print(f"error: unknown notebook(s) {unknown}; available: {', '.join(known)}", file=sys.stderr)
            return 2
    for flag, value in (("--out", args.out), ("--data-root", args.data_root), ("--vit-weights", args.vit_weights)):
        if value is not None and not value.strip():  # --out "$OUT" with OUT unset meant the default folder
            print(f"error: {flag} is empty: give a folder, or leave {flag} out for the default", file=sys.stderr)
            return 2
    # One model list, in the course's order: "vit_scratch,cnn" is the same run as "cnn,vit_scratch".
    args.models = [m for m in MODEL_NAMES if m in args.models]
    # Checked before anything is written: a bad value found by a notebook would have replaced the
    # folder's run (its id, its finished notebooks) with a failed one.
    try:
        get_device(args.device)
        try:
            check_seed(args.seed)
        except ValueError as err:  # it names the notebooks' SEED: say the option given here, as argparse would
            raise ValueError(f"--seed: {err}") from None
        # ~ too: the shell leaves --vit-weights=~/w.pth as it is; --data-root is sent to the kernels (they run elsewhere)
        for option, key in (("--vit-weights", "vit_weights"), ("--data-root", "data_root")):
            if getattr(args, key):
                setattr(args, key, _expanded(option, getattr(args, key)))
        # Checked whatever --models: a file that is not there is a mistake even where no vit runs
        if args.vit_weights and (untrained := check_vit_weights(args.vit_weights)) and "vit" in args.models:
            print(f"warning: --vit-weights {untrained}", file=sys.stderr)
        # "auto" follows the device asked for: --device cpu on a GPU machine is the cpu profile
        profile = auto_profile(args.device) if args.profile == "auto" else args.profile
        check_profile(get_profile(profile))  # a recipe's typo now, not minutes into the run
        source = get_profile(profile)["data"]["source"]
        if source != "synthetic":  # a file, or the batches' own folder: now, not after replacing the run
            # Named by --data-root: no other origin to give; else the default, perhaps $LABUTILS_DATA's
            check_data_folder(run_data_root(source, args.out or ".", args.data_root), "" if args.data_root else None)
    except (RuntimeError, ValueError, DataNotFoundError) as err:  # PretrainedWeightsUnavailable: a RuntimeError
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a data folder that cannot be read (permission denied, a name too long)
        print(f"error: {describe_os_error(err, args.data_root)}", file=sys.stderr)
        return 2
    if args.data_root and source == "synthetic":
        print(f"note: the {profile} profile writes and reads its own synthetic data in the run's folder; "
              f"--data-root is not used", file=sys.stderr)
    try:
        with _sigterm_unwinds():
            summary = run_pipeline(profile, args.out, args.data_root, args.models, args.notebooks,
                                   args.seed, args.device,
                                   args.vit_weights,
                                   resume=args.resume)
    except NotebookFailed as err:
        print(f"error: {err}\nTo go on from there, continue the run with: "
              f"{resume_command(args, profile, failed=True)}", file=sys.stderr)
        return 1
    except (NotebooksNotFound, RunLocked, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # stdout closed (| head): not a problem of the output folder
        print(f"error: the output stream was closed, so the run stopped; {_go_on(args, profile)}", file=sys.stderr)
        return 1
    except OSError as err:  # not a directory, read-only, no space left: one line, no traceback
        print(f"error: {describe_os_error(err, args.out, resolve_out_dir(profile, args.out))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted: {_go_on(args, profile)}", file=sys.stderr)
        return 130
    except Terminated as stop:
        print(f"terminated (SIGTERM): {_go_on(args, profile)}", file=sys.stderr)
        return stop.code
    times = ", ".join(f"{k[:2]} {format_seconds(v)}" for k, v in summary["notebooks"].items())
    print(f"done: profile {profile}, run {summary['run_id']}, {format_seconds(summary['total_seconds'])} "
          f"({times}); outputs in {summary['out']}")
    for line in _not_produced(Path(summary["out"]), summary["run_id"], args.models):  # a log's tail says it too
        print(line)
    if outdated := summary.get("outdated"):  # finished before this command, no longer: say what to run
        again = resume_command(argparse.Namespace(**{**vars(args), "notebooks": None}), profile)
        stale = " and report.json are" if any(n[:2] == "05" for n in outdated) else " are"
        print(f"note: notebook(s) {', '.join(n[:2] for n in outdated)} no longer count as finished (a notebook "
              f"before them saved again what they read): their executed notebooks{stale} out of date until they "
              f"run again, with: {again}")
    if summary.get("left"):  # a new run beside the replaced one's executed notebooks: say which
        print(_left_note(summary, args, profile))
    print(what_to_open(Path(summary["out"]), report="05_report.ipynb" in summary["finished"]))
    return 0


def _expanded(option: str, value: str) -> str:
    """``value`` with ~ expanded, absolute; ValueError naming ``option`` where ~user names no user
    (pathlib's own text, "Could not determine home directory.", named neither)."""
    try:
        return str(Path(value).expanduser().resolve())
    except RuntimeError:
        raise ValueError(f"{option} {value}: the ~ in it names no user of this machine; give the full path") from None


def _left_note(summary: dict, args, profile: str) -> str:
    """The note after a command that started a new run over another (--notebooks 02 after a whole
    run): which executed notebooks are still the replaced run's, and what --resume would run."""
    left, rest = [n[:2] for n in summary["left"]], [n[:2] for n in summary.get("resume_runs", [])]
    old = f"run {summary['replaced_run']}" if summary.get("replaced_run") else "an earlier run"
    report = " (and report.json)" if "05" in left else ""
    note = (f"note: this started run {summary['run_id']}; the executed notebook(s) {', '.join(left)} in "
            f"notebooks/{report} are still those of {old}, which it replaced, until they run again")
    if not rest:
        return note
    again = [n for n in rest if n in {f[:2] for f in summary["finished"]}]
    why = (f"; {', '.join(again)} again too, as this run has not finished {rest[0]} before "
           f"{'it' if len(again) == 1 else 'them'}" if again else "")
    command = resume_command(argparse.Namespace(**{**vars(args), "notebooks": None}), profile)
    return f"{note}. To run the rest of this run: {command} (it runs {', '.join(rest)}{why})"


def _go_on(args, profile: str) -> str:
    """How to go on after a run stopped: with --resume where the folder records a run to continue
    (metrics/pipeline.json); stopped before it wrote that, --resume would find nothing to resume.
    Stopped before the notebooks asked for replaced anything, they count finished as before, and
    --resume would run nothing: the same command again is what runs them."""
    from .artifacts import read_json_object, resolve_out_dir
    from .pipeline import available_notebooks

    marker = resolve_out_dir(profile, args.out) / "metrics" / "pipeline.json"
    if not marker.is_file():
        return (f"nothing of this run was recorded yet; run it again with: "
                f"{resume_command(args, profile, resume=False)}")
    finished = {n[:2] for n in (read_json_object(marker) or {}).get("finished", [])}
    asked = args.notebooks or list(available_notebooks())
    if asked and set(asked) <= finished:
        return (f"{', '.join(asked)} had replaced nothing yet, so the run is as it was ({', '.join(asked)} "
                f"still finished); to run {'it' if len(asked) == 1 else 'them'} again: "
                f"{resume_command(args, profile, resume=False)}")
    return f"continue this run with: {resume_command(args, profile)}"


def _not_produced(out: Path, run_id: str, models: list[str]) -> list[str]:
    """A line for each model of the run whose baseline this run recorded as not produced (say, the
    pretrained ViT offline), which the "done" line above would otherwise hide."""
    from .artifacts import read_json_object

    lines = []
    for name in models:
        record = read_json_object(out / "metrics" / f"{name}_before_pruning.json") or {}  # 02 not run: nothing
        if (record.get("run") or {}).get("run_id") == run_id and not record.get("produced"):
            why = (str(record.get("reason") or "").splitlines() or ["no reason recorded"])[0]
            lines.append(f"not produced: {name} ({why})")
    return lines


class Terminated(SystemExit):
    """SIGTERM during a run, raised where the run is (``_sigterm_unwinds``)."""


@contextlib.contextmanager
def _sigterm_unwinds():
    """SIGTERM (``timeout``, Slurm, a container stop) raises ``Terminated`` in the main thread, so
    the run unwinds as on Ctrl-C: its lock is removed and papermill stops its kernel. By default
    SIGTERM ends the process at once and leaves the lock behind. A second SIGTERM acts as it did
    before (the shutdown may hang); a handler of the caller's own, or SIGTERM ignored, is left as it is."""
    previous = signal.getsignal(signal.SIGTERM) if hasattr(signal, "SIGTERM") else None
    if previous is not signal.SIG_DFL or threading.current_thread() is not threading.main_thread():
        yield  # signal.signal works in the main thread only
        return

    def stop(signum, frame):
        signal.signal(signal.SIGTERM, previous)
        raise Terminated(128 + signum)  # the shell's status for a process ended by the signal: 143

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def resume_command(args, profile: str, failed: bool = False, resume: bool = True) -> str:
    """The command that continues this run: the same options, with --resume (a profile that was
    "auto" named as the one it chose, so the machine's GPU cannot change it). After a ``failed``
    notebook, --notebooks also names the finished ones before it: the cause may be one of their
    outputs, damaged since, which --resume runs again only when they are asked for (else it
    refuses, and the same command would fail the same way). ``resume`` False: the same command without
    --resume (no run recorded yet to continue)."""
    notebooks = args.notebooks
    if failed and notebooks:
        from .artifacts import read_json_object, resolve_out_dir

        saved = read_json_object(resolve_out_dir(profile, args.out) / "metrics" / "pipeline.json") or {}
        notebooks = sorted(set(notebooks) | {n[:2] for n in saved.get("finished", []) if n[:2] < max(notebooks)})
    parts = ["python", "-m", "labutils", "run", *(["--resume"] if resume else []), "--profile", profile]
    for option, value in (("--out", args.out), ("--data-root", args.data_root), ("--vit-weights", args.vit_weights),
                          ("--device", None if args.device == "auto" else args.device),
                          ("--seed", str(args.seed) if args.seed else None),
                          ("--models", None if args.models == list(MODEL_NAMES) else ",".join(args.models)),
                          ("--notebooks", ",".join(notebooks) if notebooks else None)):
        if value:  # --out=-x: argparse takes a separate '-x' for an option
            parts += [f"{option}={value}"] if value.startswith("-") else [option, value]
    return shlex.join(parts)


def what_to_open(out: Path, report: bool) -> str:
    """Where a run's results are, as paths from here when they lie below it; ``report``: the run
    has written its report (a report.json left by another run is not this one's)."""
    def shown(path: Path) -> str:
        return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd().resolve()) else str(path)

    lines = [f"  the report: {shown(out / 'report.json')}"] if report else []
    lines += [f"  the executed notebooks, to read or re-run: {shown(out / 'notebooks')}/",
              f"  the figures: {shown(out / 'figures')}/"]
    return "open next:\n" + "\n".join(lines)


# Errors that mean the run could not write where it was told to.
_WRITE_ERRORS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EEXIST,
                 errno.EISDIR, errno.EDQUOT, errno.EFBIG}


# Errors that mean the output folder itself cannot be written or made: the fix is another --out.
_FOLDER_ERRORS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT}


def describe_os_error(err: OSError, out: str | None, out_dir: Path | None = None) -> str:
    """``cannot write /x/y: No space left on device``: the path and the cause in one line.
    ``out_dir``: a run's output folder, named instead of a file in it (its lock's temporary file)."""
    from .artifacts import WriteFailed

    if isinstance(err, WriteFailed):  # it already names its file and what to do
        return str(err)
    path = err.filename or out or "the output folder"
    cause = err.strerror or str(err)
    if out_dir and err.filename and err.errno in _FOLDER_ERRORS:
        where = Path(os.path.abspath(err.filename))
        # ENOENT: only the folder or one above it, which could not be made (a file read may be missing)
        if out_dir.is_relative_to(where) or (err.errno != errno.ENOENT and where.is_relative_to(out_dir)):
            return f"cannot write into the output folder {out_dir} ({cause}): pass --out a folder you can write to"
    return f"cannot write {path}: {cause}" if err.errno in _WRITE_ERRORS else f"{path}: {cause}"


if __name__ == "__main__":
    sys.exit(main())
