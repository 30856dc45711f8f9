"""The README's results table, generated from a run's ``report.json`` and its sidecar
``report_details.json``: for every number, the course's minimum and the project's own goal, and
whether each is met. ``python -m labutils results-table --write-readme`` writes it into README.md
between the markers below, so the numbers in the docs cannot drift from the committed run.

The repository root holds the reference run, which must be a ``full`` run; a reduced (smoke or
cpu) report there is refused. Without any report the section says that no full GPU run is
committed yet.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .artifacts import REPO_ROOT, atomic_write_bytes, read_json
from .course import (AFTER_PRUNING_MIN, accuracy_text, BEFORE_PRUNING_MIN, MODEL_NAMES, NOT_IN_RUN, SPARSITY_MIN, empty_entry,
                     half_empty_entries, removed_at_least, removed_text, report_problem, subset_text)

START, END = "<!-- results:start -->", "<!-- results:end -->"

# The project's own goals on the q75 CIFAR-10 copy, whole test split: stretch goals beyond the
# course's minimums (labutils.course). Per model and stage: "accuracy" (least test accuracy, a
# fraction), "removed" (least share removed, percent), "max_drop" (largest loss against the
# model's dense accuracy, a fraction). A model without an entry has the course's minimums only.
PROJECT_GOALS = {
    "cnn": {"before_pruning": {"accuracy": 0.935},
            "unstructured": {"removed": 95.0, "max_drop": 0.005},
            "structured": {"removed": 50.0, "max_drop": 0.01}},
    "vit_scratch": {"before_pruning": {"accuracy": 0.90},
                    "unstructured": {"removed": 90.0, "accuracy": 0.86},
                    "structured": {"removed": 33.0, "accuracy": 0.86}},
}
# Project goals on numbers that report.json does not hold, and where to read them.
GOALS_ELSEWHERE = [
    "cnn dense at least airbench96's accuracy on the same data (the recipe sweep, `benchmarks/sweep.py`)",
    "cnn unstructured frontier: at least 99.5% of weights removed at >= 90% (notebook 03's frontier "
    "searches at the course's 85%: read the accuracy of its trials at 99.5% and beyond)",
    "ResNet-20 fp32 >= 91.5% (the seed's 91.51%), then the seed's quantization rows matched or beaten (notebook 06)",
]
TABLE_ROWS = (("before_pruning", "dense"), ("unstructured", "unstructured"), ("structured", "structured"))


class ResultsError(ValueError):
    """The files cannot give the reference results table (a reduced run, a missing sidecar...)."""


def course_goal(model: str, stage: str) -> dict:
    if stage == "before_pruning":
        return {"accuracy": BEFORE_PRUNING_MIN[model]}
    return {"accuracy": AFTER_PRUNING_MIN[model], "removed": SPARSITY_MIN[stage]}


def numbers(report: dict, model: str, stage: str) -> dict:
    """{"accuracy", "removed", "dense"} of one entry of report.json (None where not produced)."""
    dense = report["initial_accuracies"][f"{model}_before_pruning"]
    if stage == "before_pruning":
        return {"accuracy": dense, "removed": None, "dense": dense}
    entry = report[f"{stage}_pruning"][model]
    return {"accuracy": entry["pruned_accuracy"], "removed": entry["pruning_percentage"],
            "dense": entry["original_accuracy"]}


def met(goal: dict | None, got: dict) -> bool | None:
    """True / False; None when there is no goal or no number."""
    if not goal or got["accuracy"] is None:
        return None
    return (got["accuracy"] >= goal.get("accuracy", 0.0)
            and removed_at_least(got["removed"] or 0.0, goal.get("removed", 0.0))
            # accuracies are whole images out of n: an exact 0.5 pp drop is not float noise above it
            and round(got["dense"] - got["accuracy"], 9) <= goal.get("max_drop", 1.0))


def describe_goal(goal: dict | None) -> str:
    if not goal:
        return "-"
    parts = []
    if "accuracy" in goal:
        parts.append(f">= {goal['accuracy']:.1%}")
    if "max_drop" in goal:
        parts.append(f"within {100 * goal['max_drop']:.1f} pp of dense")
    if "removed" in goal:
        parts.append(f"at >= {goal['removed']:g}% removed")
    return " ".join(parts)


def _verdict(value: bool | None, produced: bool, in_run: bool = True) -> str:
    if not produced:
        return empty_entry(in_run)
    return {True: "**met**", False: "missed", None: "-"}[value]


def sidecar_problem(details: dict) -> str | None:
    """Which of report_details.json's keys is not what notebook 05 writes (a damaged or edited
    sidecar), or None: its readers then say so, not a traceback."""
    entries = details.get("entries", {})
    if not isinstance(entries, dict):
        return f'"entries" is {type(entries).__name__}, not an object'
    if bad := next((name for name, e in entries.items() if not isinstance(e, dict)), None):
        return f'"entries"/"{bad}" is {type(entries[bad]).__name__}, not an object'
    if not isinstance(details.get("timings", {}), dict):
        return f'"timings" is {type(details["timings"]).__name__}, not an object'
    return None


def _sidecar_entries(details: dict) -> dict:
    """The sidecar's entries that are objects ({} for a damaged "entries")."""
    entries = details.get("entries")
    return {k: e for k, e in entries.items() if isinstance(e, dict)} if isinstance(entries, dict) else {}


def models_left_out(details: dict) -> list[str]:
    """The course models a run left out on purpose (MODELS, --models), from the sidecar's reasons."""
    entries = _sidecar_entries(details)
    return [m for m in MODEL_NAMES
            if str(entries.get(f"{m}_before_pruning", {}).get("reason", "")).startswith(NOT_IN_RUN)]


def results_table(report: dict, left_out: list[str] = ()) -> str:
    """The markdown table: one row per model and stage, each number with both goals; a model in
    ``left_out`` (not in the run) says so instead of "not produced"."""
    rows = ["| model | stage | accuracy | removed | course minimum | met | project goal | met |",
            "|---|---|---|---|---|---|---|---|"]
    for model in MODEL_NAMES:
        for stage, label in TABLE_ROWS:
            got = numbers(report, model, stage)
            produced, in_run = got["accuracy"] is not None, model not in left_out
            course, project = course_goal(model, stage), PROJECT_GOALS.get(model, {}).get(stage)
            accuracy = accuracy_text(got["accuracy"]) if produced else "-"
            removed = removed_text(got["removed"]) if produced and got["removed"] is not None else "-"
            rows.append(f"| {model} | {label} | {accuracy} | {removed} | {describe_goal(course)} | "
                        f"{_verdict(met(course, got), produced, in_run)} | {describe_goal(project)} | "
                        f"{_verdict(met(project, got), produced, in_run) if project else '-'} |")
    return "\n".join(rows)


def goals_table() -> str:
    """The goals alone (no run to measure them yet): what a full run is held to, model by model."""
    rows = ["| model | stage | course minimum | project goal |", "|---|---|---|---|"]
    for model in MODEL_NAMES:
        for stage, label in TABLE_ROWS:
            rows.append(f"| {model} | {label} | {describe_goal(course_goal(model, stage))} | "
                        f"{describe_goal(PROJECT_GOALS.get(model, {}).get(stage))} |")
    return "\n".join(rows)


def run_line(details: dict) -> str:
    """Which run the table shows: profile, device, data, commit, date, run id and time."""
    run = details.get("run", {})
    timings = details.get("timings")
    total = timings.get("total_seconds") if isinstance(timings, dict) else None
    took = f", {int(total) // 60} min {int(total) % 60:02d} s for the notebooks" if total else ""
    untimed = timings.get("untimed") if isinstance(timings, dict) else None
    if took and isinstance(untimed, list) and untimed:  # finished in a session whose pipeline.json was lost
        took += f" (not counting {', '.join(str(n)[:2] for n in untimed)}: their time is unknown)"
    left_out = models_left_out(details)
    models = (f" Models: {', '.join(m for m in MODEL_NAMES if m not in left_out)} "
              f"({', '.join(left_out)} not in this run)." if left_out else "")
    return (f"Run `{run.get('run_id')}`: profile {run.get('profile')} on {run.get('device')}, "
            f"{run.get('data')}, commit `{run.get('git_commit')}`, {str(run.get('date', ''))[:10]}{took}.{models}")


def load_reference(root: str | os.PathLike = REPO_ROOT, full_only: bool = True) -> tuple[dict, dict] | None:
    """(report, details) of the run in ``root``, None when there is none; ResultsError when the
    report has no sidecar or, with ``full_only``, comes from a reduced profile (the reference must
    be a full run)."""
    root = Path(root)
    if not (root / "report.json").is_file():
        return None
    if not (root / "report_details.json").is_file():
        raise ResultsError(f"{root / 'report.json'} has no sidecar report_details.json: commit both "
                           f"files of one run (notebook 05 writes them together).")
    report, details = read_json(root / "report.json"), read_json(root / "report_details.json")
    problem = report_problem(report)
    if problem:
        raise ResultsError(f"{root / 'report.json'} is not a course report (at {problem}); run notebook 05 "
                           f"again to write it")
    if mixed := half_empty_entries(report):
        section, model, empty = mixed[0]
        raise ResultsError(f"{root / 'report.json'}: {section}/{model} has numbers and nulls ({', '.join(empty)} "
                           f"empty): an entry is all numbers or all null; run notebook 05 again to write it")
    if not isinstance(details, dict) or not isinstance(details.get("run"), dict):
        raise ResultsError(f"{root / 'report_details.json'} does not hold a run's details (no \"run\" "
                           f"entry); run notebook 05 again to write it")
    if problem := sidecar_problem(details):
        raise ResultsError(f"{root / 'report_details.json'} is damaged: its {problem}; run notebook 05 again to "
                           f"write it")
    check_same_run(report, details, root)
    profile = details["run"].get("profile")
    if full_only and profile != "full":
        raise ResultsError(f"the report in {root} comes from a {profile!r} run: the reference results "
                           f"must come from a full run (python -m labutils run --profile full).")
    if full_only and details["run"].get("reduced"):  # a reduced run whose profile alone was edited
        raise ResultsError(f"the report in {root} comes from a reduced run (its sidecar says \"reduced\": true, "
                           f"though its profile says {profile!r}): the reference results must come from a full "
                           f"run (python -m labutils run --profile full).")
    if full_only and (subset := subset_text(details["run"])):  # a full profile edited to score on part of the split
        raise ResultsError(f"the report in {root} was {subset} (its sidecar's run says so, though its profile says "
                           f"{profile!r}): the reference results must come from a full run (python -m labutils run "
                           f"--profile full).")
    return report, details


def _same(a, b) -> bool:
    # both files are written from the same records: equal up to float noise, or both null
    if a is None or b is None or not isinstance(b, (int, float)):  # a damaged sidecar's text is a mismatch too
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def check_same_run(report: dict, details: dict, root: str | os.PathLike = REPO_ROOT,
                   remedy: str = "commit both files of one run") -> None:
    """ResultsError unless every number of report.json is its sidecar's (notebook 05 writes both
    from the same records): a report of one run beside the sidecar of another, or an edited number,
    would show numbers that no run gave under another run's name. ``remedy``: what the message says
    to do (``check`` grades a hand-in, which is not committed)."""
    entries = details.get("entries")
    entries = entries if isinstance(entries, dict) else {}

    def sidecar(model: str, stage: str, key: str):
        entry = entries.get(f"{model}_{stage}")
        return entry.get(key) if isinstance(entry, dict) and entry.get("produced") else None

    pairs, dense_of = [], {}  # (where, report's number, sidecar's number); each model's dense accuracy
    for model in MODEL_NAMES:
        dense_of[model] = report["initial_accuracies"][f"{model}_before_pruning"]
        pairs.append((f"initial_accuracies/{model}_before_pruning", dense_of[model],
                      sidecar(model, "before_pruning", "accuracy")))
        for section in ("unstructured_pruning", "structured_pruning"):
            got, stage = report[section][model], f"after_{section}"
            pairs += [(f"{section}/{model}/{key}", got[key], sidecar(model, stage, side))
                      for key, side in (("pruned_accuracy", "accuracy"), ("pruning_percentage", "pruning_percentage"),
                                        ("original_accuracy", "original_accuracy"))]
    def shown(value) -> str:  # as the files spell it: "0.5" read "0.5 ... but 0.5", and null read None
        return "no number" if value is None else json.dumps(value)

    for where, got, expected in pairs:
        if not _same(got, expected):
            raise ResultsError(f"{Path(root) / 'report.json'}: {where} is {shown(got)} in report.json but "
                               f"{shown(expected)} in report_details.json: report.json and report_details.json are "
                               f"from different runs (or one was edited): {remedy}")
    for model in MODEL_NAMES:  # both files edited alike: a pruned entry's dense accuracy is still the dense one
        for section in ("unstructured_pruning", "structured_pruning"):
            original = report[section][model]["original_accuracy"]
            if original is not None and not _same(original, dense_of[model]):
                raise ResultsError(f"{Path(root) / 'report.json'}: {section}/{model}/original_accuracy is {original}, "
                                   f"but the dense accuracy is {dense_of[model]}: report.json and report_details.json "
                                   f"are from different runs (or one was edited): {remedy}")


def results_section(root: str | os.PathLike = REPO_ROOT, full_only: bool = True) -> str:
    """The README's section between the markers, for the run in ``root`` (or its absence);
    ``full_only=False`` also takes a reduced run, saying that it is one (a student's own run)."""
    reference = load_reference(root, full_only)
    if reference is None:
        body = ("No full GPU run is committed yet: the repository root holds no `report.json`, so "
                "there are no reference results to show. A full run's results appear here when one "
                "is committed (see `benchmarks/GPU_SESSION.md`). It will be held to these goals:\n\n"
                f"{goals_table()}")
    else:
        report, details = reference
        body = f"{run_line(details)}\n\n{results_table(report, models_left_out(details))}"
        reduced = details["run"].get("profile") != "full" or details["run"].get("reduced")
        subset = None if reduced else subset_text(details["run"])  # a reduced run's subset goes without saying
        if reduced or subset:
            body = (f"A reduced run (profile {details['run'].get('profile')}{f', {subset}' if subset else ''}): its "
                    f"numbers are not the course's results, and it cannot be the repository's reference run.\n\n{body}")
    elsewhere = "\n".join(f"- {goal}" for goal in GOALS_ELSEWHERE)
    return (f"{START}\n<!-- generated by `python -m labutils results-table --write-readme`; do not edit -->\n"
            f"{body}\n\nProject goals that report.json does not hold:\n\n{elsewhere}\n{END}")


def _marker_lines(text: str, marker: str) -> list[int]:
    """Where each line that is ``marker`` alone starts its marker (a marker quoted in prose is no boundary)."""
    found, offset = [], 0
    for line in text.splitlines(keepends=True):
        if line.strip() == marker:
            found.append(offset + line.index(marker))
        offset += len(line)
    return found


def _section_span(readme_text: str) -> tuple[int, int]:
    """(start, end) of the results section in README.md's text, markers included."""
    starts, ends = _marker_lines(readme_text, START), _marker_lines(readme_text, END)
    if not starts and not ends:
        raise ResultsError(f"README.md has no results section: add the lines {START} and {END}.")
    for marker, found in ((START, starts), (END, ends)):
        if not found:
            raise ResultsError(f"README.md has no line {marker}: put it, alone on its line, at the "
                               f"{'start' if marker == START else 'end'} of the results section.")
        if len(found) > 1:
            raise ResultsError(f"README.md has {len(found)} lines {marker}: keep one (write the marker inline, "
                               f"in backquotes, where the text mentions it).")
    if ends[0] < starts[0]:
        raise ResultsError(f"README.md's line {END} comes before its line {START}: put {START} first.")
    return starts[0], ends[0] + len(END)


def read_readme(path: str | os.PathLike) -> str:
    """README.md's text as it is on disk (newline="" keeps its CRLFs, so writing it back keeps them)."""
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def updated_readme(root: str | os.PathLike = REPO_ROOT, run: str | os.PathLike | None = None) -> str:
    """The text of README.md in ``root`` with the results section that the run in ``run`` (default
    ``root``) gives, in the file's own newline style; ResultsError where either cannot give it."""
    path = Path(root) / "README.md"
    if not path.is_file():  # a plain pip install: REPO_ROOT is in site-packages, where no README.md is
        raise ResultsError(f"there is no README.md at {path}: --write-readme writes the README of the "
                           f"repository's checkout; run it there, with labutils installed from it (pip install -e .)")
    text = read_readme(path)
    start, end = _section_span(text)
    newline = "\r\n" if "\r\n" in text else "\n"
    return text[:start] + results_section(root if run is None else run).replace("\n", newline) + text[end:]


def write_readme(root: str | os.PathLike = REPO_ROOT, text: str | None = None) -> Path:
    """Replace README.md's results section with the one the run in ``root`` gives (or write
    ``text``, an ``updated_readme`` made before the run's files were copied)."""
    path = Path(root) / "README.md"
    new = updated_readme(root) if text is None else text
    return atomic_write_bytes(path, lambda f: f.write(new.encode("utf-8")))
