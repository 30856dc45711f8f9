"""``report.json`` from the metrics files of notebooks 02-04, validated before it is written.

The report has exactly the course's keys (../shared/SPEC.md): accuracies as fractions, the pruning
percentages as percents. A model that was not produced (no pretrained weights, say) gets ``null``
values, never a made-up number; ``report_details.json`` beside it says why, and carries the extra
measurements and the run's identity. Metrics from different runs or profiles are never combined.
"""
from __future__ import annotations

import os
from pathlib import Path

import jsonschema

from .artifacts import RunDirs, read_json, write_json
from .course import AFTER_PRUNING_MIN, BEFORE_PRUNING_MIN, MODEL_NAMES, SPARSITY_MIN

FRACTION = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
PERCENT = {"type": ["number", "null"], "minimum": 0, "maximum": 100}
_ENTRY = {"type": "object", "additionalProperties": False,
          "required": ["original_accuracy", "pruned_accuracy", "pruning_percentage"],
          "properties": {"original_accuracy": FRACTION, "pruned_accuracy": FRACTION,
                         "pruning_percentage": PERCENT}}
_PER_MODEL = {"type": "object", "additionalProperties": False, "required": list(MODEL_NAMES),
              "properties": {m: _ENTRY for m in MODEL_NAMES}}
REPORT_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object", "additionalProperties": False,
    "required": ["initial_accuracies", "unstructured_pruning", "structured_pruning"],
    "properties": {
        "initial_accuracies": {
            "type": "object", "additionalProperties": False,
            "required": [f"{m}_before_pruning" for m in MODEL_NAMES],
            "properties": {f"{m}_before_pruning": FRACTION for m in MODEL_NAMES}},
        "unstructured_pruning": _PER_MODEL,
        "structured_pruning": _PER_MODEL,
    },
}
SECTIONS = {"unstructured_pruning": "after_unstructured_pruning",
            "structured_pruning": "after_structured_pruning"}
NOTEBOOK_OF_STAGE = {"before_pruning": "02", "after_unstructured_pruning": "03",
                     "after_structured_pruning": "04"}


class ReportError(ValueError):
    """The metrics cannot make one honest report (mixed runs, invalid values)."""


def validate_report(report: dict) -> None:
    """Raise ReportError naming the first problem (missing key, percent given as a fraction...)."""
    try:
        jsonschema.validate(report, REPORT_SCHEMA)
    except jsonschema.ValidationError as err:
        where = "/".join(str(p) for p in err.absolute_path) or "the top level"
        raise ReportError(f"report.json is invalid at {where}: {err.message}") from None


def load_records(dirs: RunDirs, models=MODEL_NAMES) -> dict:
    """{(model, stage): record}; a missing file becomes a not-produced record saying which
    notebook would have written it."""
    records = {}
    for model in models:
        for stage, notebook in NOTEBOOK_OF_STAGE.items():
            path = dirs.metrics_file(model, stage)
            records[model, stage] = read_json(path) if path.is_file() else {
                "model": model, "stage": stage, "produced": False,
                "reason": f"no metrics file {path.name}: notebook {notebook} did not run for {model}"}
    return records


def check_one_run(records: dict) -> dict:
    """The run all records share; ReportError if they come from different runs or profiles."""
    runs = {}
    for (model, stage), r in records.items():
        if "run" in r:
            runs.setdefault((r["run"]["run_id"], r["run"]["profile"]), []).append(f"{model}_{stage}")
    if not runs:
        raise ReportError("no metrics files found: run notebooks 02-04 first")
    if len(runs) > 1:
        listing = "; ".join(f"run {rid} (profile {prof}): {', '.join(files)}"
                            for (rid, prof), files in runs.items())
        raise ReportError(f"the metrics come from {len(runs)} different runs and will not be combined: "
                          f"{listing}. Re-run the notebooks of one run (python -m labutils run) "
                          f"or delete the stale metrics files.")
    return next(r["run"] for r in records.values() if "run" in r)


def _value(record: dict, key: str):
    return record.get(key) if record.get("produced") else None


def build_report(records: dict) -> dict:
    """The course's report.json from the records (no validation; see ``validate_report``)."""
    report = {"initial_accuracies": {f"{m}_before_pruning": _value(records[m, "before_pruning"], "accuracy")
                                     for m in MODEL_NAMES}}
    for section, stage in SECTIONS.items():
        report[section] = {}
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
        keep = ("produced", "reason", "accuracy", "original_accuracy", "pruning_percentage",
                "sparsity_all_parameters", "weights_removed_percentage", "parameters",
                "nonzero_parameters", "parameters_original", "macs", "macs_original", "latency",
                "checkpoint", "train_seconds")
        entries[f"{model}_{stage}"] = {k: r[k] for k in keep if k in r}
    return {"run": run, "minimums": {"before_pruning": BEFORE_PRUNING_MIN, "after_pruning": AFTER_PRUNING_MIN,
                                     "sparsity_percent": SPARSITY_MIN},
            "entries": entries, "checkpoints": checkpoints or [], "timings": timings or {}}


def write_report(out: str | os.PathLike, report: dict, details: dict) -> tuple[Path, Path]:
    """Validate, then write ``report.json`` and ``report_details.json`` atomically."""
    validate_report(report)
    out = Path(out)
    return write_json(out / "report.json", report), write_json(out / "report_details.json", details)


def meets_minimums(report: dict) -> dict:
    """{section: {model: True/False/None}}: accuracy and sparsity minimums met (None: not produced)."""
    verdict = {"initial_accuracies": {
        m: None if report["initial_accuracies"][f"{m}_before_pruning"] is None
        else report["initial_accuracies"][f"{m}_before_pruning"] >= BEFORE_PRUNING_MIN[m] for m in MODEL_NAMES}}
    for section, kind in (("unstructured_pruning", "unstructured"), ("structured_pruning", "structured")):
        verdict[section] = {}
        for m in MODEL_NAMES:
            e = report[section][m]
            verdict[section][m] = None if e["pruned_accuracy"] is None else (
                e["pruned_accuracy"] >= AFTER_PRUNING_MIN[m] and e["pruning_percentage"] >= SPARSITY_MIN[kind])
    return verdict


def checkpoint_table(rows: list[dict], records: dict) -> tuple[list[str], list[list[str]]]:
    """Columns and text rows for the table of checkpoints. "removed" is the share of the dense
    model's parameters that are zero (unstructured) or gone (structured), from the metrics."""
    columns = ["checkpoint", "accuracy", "removed", "params", "nonzero", "MMACs", "size (MB)", "ms/image"]
    table = []
    for r in rows:
        model, stage = next(k for k in records if f"{k[0]}_{k[1]}" == r["name"])
        removed = records[model, stage].get("sparsity_all_parameters", 0.0)
        table.append([r["name"], f"{r['accuracy']:.2%}", f"{removed:.1f}%", f"{r['parameters'] / 1e6:.2f}M",
                      f"{r['nonzero_parameters'] / 1e6:.2f}M", f"{r['macs'] / 1e6:.1f}",
                      f"{r['size_bytes'] / 1e6:.2f}", f"{r['ms_per_image']:.2f}"])
    return columns, table
