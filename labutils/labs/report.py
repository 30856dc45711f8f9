"""Notebook 05 · the report: ``report.json`` from the metrics files of notebooks 02-04, validated
before it is written, every checkpoint measured again, and the figures of the whole run.

What it teaches: a result is a file that a program wrote from measurements, checked against a
schema and against the checkpoints it describes, never a number typed in by hand. Library pieces:
``artifacts`` (atomic writes), ``evaluate`` (re-measuring checkpoints), ``course`` (the minimums).

The report has exactly the course's keys (``labutils.course``): accuracies as fractions, the pruning
percentages as percents. A model that was not produced (no pretrained weights, say) gets ``null``
values, never a made-up number; ``report_details.json`` beside it says why, and carries the extra
measurements and the run's identity. Metrics from different runs or profiles are never combined.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib.pyplot as plt

from .. import data as D
from ..artifacts import RunDirs, atomic_write_bytes, json_text, read_json
from ..course import (AFTER_PRUNING_MIN, BASELINE_MISSING, BEFORE_PRUNING_MIN, MODEL_NAMES, NOT_IN_RUN, NOT_PREPARED,
                      NOTEBOOK_OF_STAGE, REPORT_SECTIONS, SPARSITY_MIN, accuracy_text, checkpoint_names, empty_entry,
                      half_empty_entries, meets_minimum, not_pretrained, removed_text, report_problem)
from ..errors import Explained
from ..evaluate import evaluate_paths, format_table
from ..plots import finish, minimum_line, model_style



class ReportError(Explained, ValueError):
    """The metrics cannot make one honest report (mixed runs, invalid values)."""


def validate_report(report: dict) -> None:
    """Raise ReportError naming the first problem (a missing or extra key, a value out of range
    such as an accuracy given as a percent). The schema cannot tell a percent given as a fraction
    (0.935 for 93.5%): build_report takes both from the metrics, which record percents."""
    problem = report_problem(report)
    if not problem and (mixed := half_empty_entries(report)):  # every reader refuses one: none is written
        section, model, empty = mixed[0]
        problem = f"{section}/{model}: {', '.join(empty)} empty beside numbers (an entry is all numbers or all empty)"
    if problem:
        raise ReportError(f"report.json is invalid at {problem}")


def load_records(dirs: RunDirs, models=MODEL_NAMES) -> dict:
    """{(model, stage): record} for every course model; a missing file becomes a not-produced
    record saying which notebook would have written it, and a model outside ``models`` (the
    notebook's MODELS) one saying that it is not in this run."""
    # The run's models are those notebook 02 recorded: MODELS may also name one it did not train.
    trained = [m for m in models if dirs.metrics_file(m, "before_pruning").is_file()]
    not_in_run = f"its models are {', '.join(trained)}" if trained else f"not in MODELS ({', '.join(models)})"
    records = {}
    for model in MODEL_NAMES:
        for stage, notebook in NOTEBOOK_OF_STAGE.items():
            path = dirs.metrics_file(model, stage)
            if model in models and path.is_file():
                records[model, stage] = read_json(path)
                continue
            reason = (f"no metrics file {path.name}: notebook {notebook} did not run for {model}" if model in models
                      else f"{NOT_IN_RUN}: {not_in_run}")
            records[model, stage] = {"model": model, "stage": stage, "produced": False, "reason": reason}
    return records


def check_one_run(records: dict) -> dict:
    """The run all records share; ReportError if they come from different runs, profiles or
    data. The pipeline refuses to continue a run on another data copy; this also catches records
    written by hand-run notebooks, which keep the folder's run id whatever data they read."""
    runs = {}
    for (model, stage), r in records.items():
        if "run" in r:
            data = r["run"].get("data")  # an older labutils recorded data not yet prepared as such: the same data
            key = (r["run"]["run_id"], r["run"]["profile"], data and data.removesuffix(NOT_PREPARED), r["run"].get("seed"))
            runs.setdefault(key, []).append((model, stage))
    if not runs:
        raise ReportError("no metrics files found: run notebooks 02-04 first")
    older = [ms for key, found in runs.items() if None in key[2:] for ms in found]
    if len({key[0] for key in runs}) == 1 and 0 < len(older) < sum(map(len, runs.values())):
        # One run, but an older labutils wrote some of its records without their data copy and seed:
        # files to write again, not "2 different runs".
        raise ReportError(f"{', '.join(f'metrics/{m}_{s}.json' for m, s in older)} record no data copy or seed "
                          f"(written by an older labutils), the rest of run {next(iter(runs))[0]} do: "
                          + "; ".join(f"run notebook {NOTEBOOK_OF_STAGE[s]} again for {m}" for m, s in older))
    # Notebook 03/04 ran before 02 had trained the model: its "not produced" record would stand for a
    # model that is there. Before the runs are compared: such a record written before the data was
    # prepared named it "... (not prepared yet)", and read as another run of the same run id.
    for (model, stage), r in records.items():
        before = records.get((model, "before_pruning"), {})
        if (stage != "before_pruning" and not r.get("produced") and before.get("produced")
                and r.get("reason", "").startswith(BASELINE_MISSING)
                and (r.get("run") or {}).get("run_id") == (before.get("run") or {}).get("run_id")):
            raise ReportError(f"{model}_{stage} was recorded as not produced because {model}'s baseline was "
                              f"missing, but {model}_before_pruning is there now (at {before['accuracy']:.2%}; "
                              f"notebook 02 ran after notebook {NOTEBOOK_OF_STAGE[stage]}): run notebook "
                              f"{NOTEBOOK_OF_STAGE[stage]} again for {model}")
    if len(runs) > 1:
        seeds_differ = len({key[3] for key in runs}) > 1
        listing = "; ".join(f"run {rid} (profile {prof}, data {data}{f', seed {seed}' if seeds_differ else ''}): "
                            f"{', '.join(f'{m}_{s}' for m, s in found)}" for (rid, prof, data, seed), found in runs.items())
        raise ReportError(f"the metrics come from {len(runs)} different runs and will not be combined: "
                          f"{listing}. Re-run the notebooks of one run (python -m labutils run) "
                          f"or delete the stale metrics files.")
    # One run id, but a baseline trained again by hand after its pruned models were made: the
    # report would pair the new baseline with pruned models of the old one.
    for (model, stage), r in records.items():
        before = records.get((model, "before_pruning"), {})
        if stage != "before_pruning" and r.get("produced"):
            if (problem := _older_record(model, stage, r)) is not None:
                raise ReportError(f"metrics/{model}_{stage}.json {problem} (written by an older labutils): run "
                                  f"notebook {NOTEBOOK_OF_STAGE[stage]} again for {model}")
        if not r.get("produced") or "original_accuracy" not in r:
            continue
        if not before.get("produced"):
            now = f"is not produced now ({before.get('reason', 'no reason recorded')})"
        elif before["accuracy"] != r["original_accuracy"]:
            now = f"is now at {before['accuracy']:.2%} (trained again after it)"
        elif r.get("baseline_sha256") and r["baseline_sha256"] != before.get("checkpoint", {}).get("sha256"):
            # On 400 test images a recipe changed by hand gave the same accuracy, and passed the check above.
            now = "is another checkpoint now, at the same accuracy (trained again after it)"
        else:
            continue
        raise ReportError(f"{model}_{stage} was pruned from a baseline at {r['original_accuracy']:.2%}, but "
                          f"{model}_before_pruning {now}: run notebook {NOTEBOOK_OF_STAGE[stage]} again for "
                          f"{model}, so both come from the same baseline")
    return next(r["run"] for r in records.values() if "run" in r)


def _older_record(model: str, stage: str, record: dict) -> str | None:
    """What a produced record of a pruned model lacks for the report, or None: a number the report
    needs (a half-empty entry, which the report's readers refuse), or, for a ViT's structured
    pruning, its share of heads (before 2026-12-07 heads and MLP neurons were counted together: an
    MLP-only cut read as met)."""
    lacking = [k for k in ("accuracy", "pruning_percentage") if record.get(k) is None]
    if lacking:
        return f"has no {' and '.join(lacking)}"
    heads = (record.get("removed_by_kind") or {}).get("heads")
    if stage == "after_structured_pruning" and model != "cnn" and (
            heads is None or abs(heads - record["pruning_percentage"]) > 1e-6):
        return "counts heads and MLP neurons together, where the course counts a ViT's heads"
    return None


def _value(record: dict, key: str):
    return record.get(key) if record.get("produced") else None


def build_report(records: dict) -> dict:
    """The course's report.json from the records (no validation; see ``validate_report``)."""
    report = {"initial_accuracies": {f"{m}_before_pruning": _value(records[m, "before_pruning"], "accuracy")
                                     for m in MODEL_NAMES}}
    for section in REPORT_SECTIONS:
        report[section], stage = {}, f"after_{section}"
        for m in MODEL_NAMES:
            after = records[m, stage]
            report[section][m] = {
                "original_accuracy": _value(records[m, "before_pruning"], "accuracy") if after.get("produced") else None,
                "pruned_accuracy": _value(after, "accuracy"),
                "pruning_percentage": _value(after, "pruning_percentage")}
    return report


def build_details(records: dict, run: dict, checkpoints: list[dict] | None = None,
                  timings: dict | None = None) -> dict:
    """The sidecar: why entries are empty, extra measurements, the run's identity and timings."""
    entries = {}
    for (model, stage), r in records.items():
        # removed_by_kind: a ViT's structured percentage counts its heads, as the course defines
        # it; the sidecar also gives the share of MLP neurons removed (and a ResNet's by kind).
        keep = ("produced", "reason", "accuracy", "original_accuracy", "pruning_percentage",
                "pruning_unit", "removed_by_kind", "sparsity_all_parameters", "weights_removed_percentage", "parameters",
                "nonzero_parameters", "parameters_original", "macs", "macs_original", "latency",
                "checkpoint", "train_seconds", "seconds", "initial_weights")  # a vit NOT pretrained says so
        entries[f"{model}_{stage}"] = {k: r[k] for k in keep if k in r}
        if "run" in r:  # notebooks re-run by hand after an edit: each entry says which code made it
            entries[f"{model}_{stage}"]["git_commit"] = r["run"].get("git_commit")
    return {"run": run, "minimums": {"before_pruning": BEFORE_PRUNING_MIN, "after_pruning": AFTER_PRUNING_MIN,
                                     "sparsity_percent": SPARSITY_MIN},
            "entries": entries, "checkpoints": checkpoints or [], "timings": timings or {}}


def write_report(out: str | os.PathLike, report: dict, details: dict) -> tuple[Path, Path]:
    """Validate, then write ``report.json`` and ``report_details.json`` atomically."""
    validate_report(report)
    out = Path(out)
    report_path, details_path = out / "report.json", out / "report_details.json"
    # Both made before either is written, the sidecar first; a report that cannot be written then
    # puts the earlier sidecar back: never a report beside another run's sidecar, nor none at all.
    texts = {report_path: json_text(report_path, report), details_path: json_text(details_path, details)}
    earlier = details_path.read_bytes() if details_path.is_file() else None
    atomic_write_bytes(details_path, lambda f: f.write(texts[details_path].encode()))
    try:
        atomic_write_bytes(report_path, lambda f: f.write(texts[report_path].encode()))
    except BaseException:
        if earlier is None:
            details_path.unlink(missing_ok=True)
        else:
            atomic_write_bytes(details_path, lambda f: f.write(earlier))
        raise
    return report_path, details_path


def meets_minimums(report: dict) -> dict:
    """{section: {model: True/False/None}}: accuracy and sparsity minimums met (None: not produced)."""
    verdict = {"initial_accuracies": {
        m: None if report["initial_accuracies"][f"{m}_before_pruning"] is None
        else report["initial_accuracies"][f"{m}_before_pruning"] >= BEFORE_PRUNING_MIN[m] for m in MODEL_NAMES}}
    for section, kind in REPORT_SECTIONS.items():
        verdict[section] = {}
        for m in MODEL_NAMES:
            e = report[section][m]
            verdict[section][m] = None if e["pruned_accuracy"] is None else meets_minimum(
                m, kind, e["pruned_accuracy"], e["pruning_percentage"])
    return verdict


def checkpoint_table(rows: list[dict], records: dict) -> tuple[list[str], list[list[str]]]:
    """Columns and text rows for the table of checkpoints. "removed vs dense" is the share of the dense
    model's parameters that are zero (unstructured) or gone (structured), from the metrics."""
    columns = ["checkpoint", "accuracy", "removed vs dense", "params", "nonzero", "MMACs", "size (MB)", "ms/image"]
    table = []
    for r in rows:
        model, stage = next(k for k in records if f"{k[0]}_{k[1]}" == r["name"])
        # A baseline removes nothing (notebook 02 records no share); a pruned record without one: "-".
        removed = records[model, stage].get("sparsity_all_parameters", 0.0 if stage == "before_pruning" else None)
        table.append([r["name"], f"{r['accuracy']:.2%}", "-" if removed is None else f"{removed:.1f}%", f"{r['parameters'] / 1e6:.2f}M",
                      f"{r['nonzero_parameters'] / 1e6:.2f}M", f"{r['macs'] / 1e6:.1f}",
                      f"{r['size_bytes'] / 1e6:.2f}",
                      f"{r['ms_per_image']:.2f}" + (" (noisy)" if r.get("timing_noisy") else "")])
    return columns, table


# -- the notebook's steps -------------------------------------------------------------------------
def load_run(session) -> tuple[dict, dict]:
    """The run's metrics records and its identity (refused if they come from several runs, if
    MODELS leaves out a model the pipeline ran: it would read as left out of the run, or if notebook
    02 has not run: every entry would be "not produced"). A session
    that continues a run (``start_run=False``) has already left out the models the run never trained."""
    ran = session.pipeline_summary()
    if ran:
        left_out = [m for m in ran.get("models", []) if m not in session.models]
        if left_out:
            raise ReportError(f"the run in {session.dirs.root} was made for MODELS = {ran['models']!r} (its "
                              f"metrics/pipeline.json), but MODELS leaves out "
                              f"{', '.join(left_out)}: add {'it' if len(left_out) == 1 else 'them'} to MODELS so that the "
                              f"report covers the run's models")
    # A run made by hand has no pipeline.json: its baselines' records say which models it trained.
    trained = [m for m in MODEL_NAMES if m not in session.models
               and session.of_this_run(session.metrics(m, "before_pruning"))]
    if trained:
        raise ReportError(f"notebook 02 of run {session.run_id} in {session.dirs.root} recorded "
                          f"{', '.join(trained)} (trained, or not produced and why), but MODELS leaves "
                          f"{'it' if len(trained) == 1 else 'them'} out: "
                          f"add {'it' if len(trained) == 1 else 'them'} to MODELS so that the report covers the "
                          f"run's models")
    records = load_records(session.dirs, session.models)
    if not any("run" in r for r in records.values()):
        raise ReportError(f"{session.dirs.metrics} holds no metrics of notebooks 02-04 for "
                          f"{', '.join(session.models)}: if the run is elsewhere, set OUT_DIR to its folder (a "
                          f"relative one is read from the working folder, {Path.cwd()}); else run notebooks 01-04 first")
    run = check_one_run(records)
    _say_if_codes_differ(records)
    if run["run_id"] != session.run_id:  # a run started here since (notebook 01 or 02 of a new run)
        raise ReportError(f"the metrics in {session.dirs.metrics} are run {run['run_id']}'s, but the folder now "
                          f"holds run {session.run_id} (its metrics/run.json): run notebooks 02-04 of that run "
                          f"before its report, or report on run {run['run_id']} from a folder of its own")
    session.check_baselines_recorded()  # notebooks 03-04 run before 02 recorded nothing but "not produced"
    print(f"run {run['run_id']}: profile {run['profile']}, {run['data']}, {run['device']}, "
          f"commit {run['git_commit']}")
    return records, run


def _say_if_codes_differ(records: dict) -> None:
    """One run, but records written by different code (a notebook re-run by hand after an edit of
    labutils): allowed, as a student fixes and re-runs, but the report says so."""
    codes: dict[str, list[str]] = {}
    for (model, stage), r in records.items():
        if "run" in r:
            codes.setdefault(str(r["run"].get("git_commit")), []).append(f"{model}_{stage}")
    if len(codes) > 1:
        print(f"note: these metrics were written by {len(codes)} versions of the code: "
              + "; ".join(f"{code}: {', '.join(files)}" for code, files in codes.items())
              + ". The report combines them (report_details.json names each entry's); for one version, "
                "run notebooks 02-04 again with the code as it is now")


def _rounded(value, digits: int = 4):
    """For display only: report.json keeps every digit (90.00005736049927 is 90.0001 here)."""
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    return round(value, digits) if isinstance(value, float) else value


def print_report(report: dict, records: dict) -> None:
    """The report as JSON (numbers rounded to 4 decimals for reading; the file keeps them whole),
    then each empty entry with the reason it is empty."""
    print(json.dumps(_rounded(report), indent=2))
    missing = {f"{m}_{st}": (r.get("reason") or "no reason recorded").splitlines()[0]
               for (m, st), r in records.items() if not r.get("produced")}
    for key, reason in missing.items():
        print(f"{key}: {reason}")
    print(f"{len(missing)} of {len(records)} entries not produced")
    if untrained := _vit_not_pretrained(records):
        print(f"vit: {untrained}")


def _vit_not_pretrained(records: dict | None) -> str | None:
    """What to say of vit when its baseline's record says its weights were never pretrained, else None."""
    baseline = (records or {}).get(("vit", "before_pruning")) or {}
    return not_pretrained(baseline.get("initial_weights")) if baseline.get("produced") else None


def remeasure_checkpoints(session) -> list[dict]:
    """Load every course checkpoint of MODELS back and measure it on the test images its notebook
    used, and print any difference from the recorded accuracy (that checks the files, not just the
    metrics). Raises ReportError when a checkpoint the metrics say was produced is missing or does not load,
    or its test images are not found (a smoke run's are written again first, as in notebooks 01-04)."""
    # This run's checkpoints only: another run's leftover would be tabled under this run's caption.
    produced = [(m, stage) for m in session.models for stage in NOTEBOOK_OF_STAGE if session.available(m, stage)]
    paths = [session.dirs.checkpoint(m, stage) for m, stage in produced]
    others = [n for n in checkpoint_names(session.models) if (session.dirs.models / n).is_file()
              and session.dirs.models / n not in paths]
    if others:
        print(f"not this run's, left out: {', '.join(others)}")
    gone = [session.dirs.checkpoint(m, stage).name for m in session.models for stage in NOTEBOOK_OF_STAGE
            if (session.metrics(m, stage) or {}).get("produced") and not session.available(m, stage)]
    if gone:  # the report would give the numbers of models that are not there
        raise ReportError(f"the metrics say {', '.join(gone)} were produced, but {session.dirs.models} does not "
                          f"hold them: run the notebooks that write them again (python -m labutils run --resume does)")
    _prepare_test_images(session, produced)
    rows, failures = evaluate_paths(paths, session.device)
    for r in rows:  # the rows go into the sidecar, which names no folder of the machine
        r["checkpoint"] = os.path.relpath(r["checkpoint"], session.dirs.root)
    print(format_table(rows))
    loaded = {r["name"] for r in rows}  # a row without its accuracy is among the failures too
    if not_loading := [f for f in failures if Path(f["checkpoint"]).stem not in loaded]:
        raise ReportError(f"checkpoints that do not load: {not_loading}")  # the metrics say they were produced
    if unmeasured := [f"{r['name']}: {r['accuracy_error']}" for r in rows if r.get("accuracy_error")]:
        raise ReportError(f"test images not found for {'; '.join(unmeasured)}")  # they load, unchecked
    differ = {r["name"]: (r["recorded_accuracy"], r["accuracy"]) for r in rows if r["accuracy"] != r["recorded_accuracy"]}
    if differ:
        print(f"recorded vs re-measured: {differ}")
    else:
        print("every checkpoint reproduces its recorded accuracy exactly" if rows else
              "no checkpoint of this run to measure")
    return rows


def _prepare_test_images(session, produced: list[tuple[str, str]]) -> None:
    """The test images every checkpoint is measured on, there before any is timed. A smoke run's synthetic
    images are written again where they are gone, as notebooks 01-04 do (``Session.prepare_data``); CIFAR-10
    is never downloaded here (the run's own copy scored the checkpoints): what is missing is said."""
    if session.profile["data"]["source"] == "synthetic":
        session.prepare_data()
        return
    recorded = {(session.metrics(m, stage) or {}).get("run", {}).get("data_root") for m, stage in produced}
    for folder in sorted({(session.dirs.root / r).resolve() for r in recorded if r}):  # relative to the run folder
        try:
            D.cifar10_dir(folder, download=False, files=D.TEST_FILES)
        except (ValueError, OSError) as err:  # DataNotFoundError is an OSError
            raise ReportError(f"test images not found at {folder}: {err}") from None


def write(session, report: dict, records: dict, run: dict, rows: list[dict]) -> tuple[Path, Path]:
    """``report.json`` and its sidecar ``report_details.json`` (with the run's timings so far)."""
    session.check_still_this_run()
    paths = write_report(session.dirs.root, report, build_details(records, run, rows, session.pipeline_summary()))
    for p in paths:
        print("wrote", p.relative_to(session.dirs.root))
    return paths


def recorded_report(session) -> tuple[dict, dict, dict]:
    """This run's ``report.json`` read back (checked as ``results.load_reference`` checks it), with the
    records it was made from and the run (as its sidecar keeps them), so the cells after 'Write the
    report' also work after a kernel restart."""
    from ..results import load_reference

    loaded = load_reference(session.dirs.root, full_only=False)
    if loaded is None or loaded[1]["run"].get("run_id") != session.run_id:
        raise ReportError(f"no report of this run ({session.run_id}) in {session.dirs.root} yet: run the cells "
                          f"from 'One run, or nothing' to 'Write the report' first")
    report, details = loaded
    entries = details["entries"]
    records = {(m, stage): entries.get(f"{m}_{stage}", {}) for m in MODEL_NAMES for stage in NOTEBOOK_OF_STAGE}
    return report, records, details["run"]


def print_verdict(report: dict, reduced: bool, models=MODEL_NAMES, records: dict | None = None) -> None:
    """Each entry against the course's minimums: met, NOT met, not produced, or not in this run
    (a model outside ``models``: one the run did not train, since ``load_run`` refuses a MODELS
    that leaves out one it trained); ``records``: the run's, whose vit baseline may say that its
    weights were never pretrained (said beside its verdicts)."""
    words = {True: "met", False: "NOT met"}
    untrained = _vit_not_pretrained(records)
    for section, verdicts in meets_minimums(report).items():
        print(f"{section:22s}",
              "  ".join(f"{m}: {words.get(v) or empty_entry(m in models)}"
                        + (" (NOT pretrained)" if m == "vit" and v is not None and untrained else "")
                        for m, v in verdicts.items()))
    if untrained:
        print(f"\nvit: {untrained}")
    if reduced:
        print("\nThis is a reduced run: its numbers are not the course's results.")


# -- figures -------------------------------------------------------------------------------------
def plot_accuracy_vs_sparsity(report: dict, after_min: dict = AFTER_PRUNING_MIN, sparsity_min: dict = SPARSITY_MIN,
                                path=None, caption=None, models=MODEL_NAMES):
    """Each model's dense accuracy (at 0%) and pruned accuracy (at its pruning percentage), for
    unstructured and structured pruning; dashed lines are the course's minimums (of the models
    with an accuracy to show)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharey=True)
    for ax, (section, kind) in zip(axes, REPORT_SECTIONS.items()):
        for model, e in report[section].items():
            style, dense = model_style(model), report["initial_accuracies"][f"{model}_before_pruning"]
            # A minimum where the model has an accuracy to compare with it (dense or pruned), as
            # notebook 02's curves: not for one left out of the run, nor for one not produced.
            if model in models and (dense is not None or e["pruned_accuracy"] is not None):
                minimum_line(ax, model, 100 * after_min[model])
            if e["pruned_accuracy"] is None and dense is not None and model in models:
                # dense (0%) without its pruned model: the point, not an empty panel under that title
                ax.plot([0], [100 * dense], label=f"{model}: dense {accuracy_text(dense)}, pruned "
                                                  f"{empty_entry(True)}", **style)
                continue
            if e["pruned_accuracy"] is None:
                ax.plot([], [], label=f"{model}: {empty_entry(model in models)}", **style)
                continue
            xs, ys = [0, e["pruning_percentage"]], [100 * e["original_accuracy"], 100 * e["pruned_accuracy"]]
            # Rounded down, as the verdicts read it: 84.96% showed "85.0%" beside a missed 85% minimum.
            ax.plot(xs, ys, label=f"{model}: {accuracy_text(e['pruned_accuracy'])} at {removed_text(xs[1])} removed", **style)
        ax.axvline(sparsity_min[kind], color="0.5", ls=":", lw=1)
        # What report.json's pruning_percentage counts: a ViT's heads only, not its MLP neurons.
        what = "prunable weights" if kind == "unstructured" else "channels (CNN) / heads (ViT)"
        ax.set(title=f"{kind} pruning", xlabel=f"share of {what} removed (%)", xlim=(-3, 103))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    axes[0].set_ylabel("test accuracy (%)")
    fig.suptitle("dense (0%) to pruned; dashed: accuracy minimum after pruning (marked at the right), "
                 "dotted: minimum share removed",
                 fontsize=9)
    return finish(fig, path, caption)


def plot_table(columns: list[str], rows: list[list[str]], title: str = "", path=None, caption=None):
    """A table as a figure, for the executed notebook and figures/; none when there are no rows
    (a run that produced no checkpoint: matplotlib cannot draw an empty table)."""
    if not rows:
        print("no figure: no checkpoint of this run to tabulate (the records above say why)")
        return None
    widths = [max(len(str(v)) for v in [c, *(r[i] for r in rows)]) for i, c in enumerate(columns)]
    fig, ax = plt.subplots(figsize=(0.085 * sum(widths) + 0.5, 0.28 * len(rows) + 0.9))
    ax.axis("off")
    table = ax.table(cellText=rows, colLabels=columns, cellLoc="right", bbox=[0, 0, 1, 1],
                     colWidths=[w / sum(widths) for w in widths])
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    if title:
        ax.set_title(title, fontsize=10)
    return finish(fig, path, caption)
