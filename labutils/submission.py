"""Check a hand-in: a run's folder (``report.json``, ``models_saved/``) against itself and the course.

Used by ``python -m labutils check DIR``, for instructors grading and for students before they
hand in. Every number of report.json is traced to the checkpoint it names and recomputed from its
weights where the weights can say it:

* report.json has exactly the course's keys and valid values (``course.report_problem``);
* ``models_saved/`` holds the course's file names, one for each entry with numbers, and no others;
* every checkpoint loads safely, holds the architecture its name says, and comes from one run;
* ``original_accuracy`` is the model's ``initial_accuracies`` entry, which is its baseline's;
* each accuracy is the one its checkpoint recorded, and (``measure``) the one its weights give on
  the run's test images, to within ``IMAGES_OF_SLACK`` images;
* an unstructured pruning_percentage is the share of zeros among the checkpoint's prunable weights
  (conv and linear, first conv and classifier left out: the workbook's convention); a structured
  one is the share of channels the checkpoint lacks against its baseline (``prune.structured``);
* a baseline is dense.

Then the course's minimums, met or not, from the numbers that held.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .artifacts import read_json
from .course import (AFTER_PRUNING_MIN, BEFORE_PRUNING_MIN, MODEL_NAMES, REPORT_SECTIONS, SPARSITY_MIN,
                     STAGES, checkpoint_names, meets_minimum, report_problem)

# A model trained and scored on a GPU and scored again on a CPU may differ by an image or two:
# the two run slightly different arithmetic (notebook 05 says the same of its table).
IMAGES_OF_SLACK = 2
PERCENT_TOLERANCE = 0.01  # percentage points: report.json rounds nothing, so this is float error only
BASELINE_MAX_ZEROS = 1.0  # percent of prunable weights; a trained dense model has next to none


@dataclass
class Finding:
    ok: bool
    what: str
    about: tuple[str, str] | None = None  # the (model, stage) whose report entry it concerns

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.what}"


def _stage_of(section: str) -> str:
    return {"unstructured_pruning": "after_unstructured_pruning", "structured_pruning": "after_structured_pruning"}[section]


def _reported(report: dict) -> dict[tuple[str, str], dict]:
    """{(model, stage): {"accuracy", "pruning_percentage"?, "original_accuracy"?}} of every entry
    with numbers."""
    out = {}
    for m in MODEL_NAMES:
        acc = report["initial_accuracies"][f"{m}_before_pruning"]
        if acc is not None:
            out[m, "before_pruning"] = {"accuracy": acc}
        for section in REPORT_SECTIONS:
            e = report[section][m]
            if e["pruned_accuracy"] is not None:
                out[m, _stage_of(section)] = {"accuracy": e["pruned_accuracy"], "pruning_percentage": e["pruning_percentage"],
                                              "original_accuracy": e["original_accuracy"]}
    return out


def _close(a: float, b: float, tolerance: float) -> bool:
    return a is not None and b is not None and abs(a - b) <= tolerance


def check_report_file(root: Path) -> tuple[dict | None, list[Finding]]:
    path = root / "report.json"
    if not path.is_file():
        return None, [Finding(False, f"{path} is missing: notebook 05 writes it")]
    try:
        report = read_json(path)
    except ValueError as err:
        return None, [Finding(False, f"report.json is not valid JSON: {err}")]
    problem = report_problem(report)
    if problem:
        return None, [Finding(False, f"report.json breaks the course's format at {problem}")]
    findings = [Finding(True, "report.json has exactly the course's keys, accuracies as fractions, percentages as percents")]
    for m in MODEL_NAMES:
        initial = report["initial_accuracies"][f"{m}_before_pruning"]
        for section in REPORT_SECTIONS:
            original = report[section][m]["original_accuracy"]
            if original is not None and original != initial:
                findings.append(Finding(False, f"{section}/{m}/original_accuracy is {original}, but "
                                               f"initial_accuracies/{m}_before_pruning is {initial}",
                                        (m, _stage_of(section))))
    return report, findings


def check_file_names(root: Path, reported: dict) -> tuple[list[str], list[Finding]]:
    """The course's names present in models_saved/, and findings on missing and foreign files."""
    folder = root / "models_saved"
    present = sorted(p.name for p in folder.glob("*.pth")) if folder.is_dir() else []
    expected = checkpoint_names()
    findings = []
    for m, s in reported:
        if f"{m}_{s}.pth" not in present:
            findings.append(Finding(False, f"report.json has numbers for {m}_{s}, but models_saved/{m}_{s}.pth "
                                           f"is missing", (m, s)))
    foreign = [n for n in present if n not in expected]
    if foreign:
        findings.append(Finding(False, f"models_saved/ holds files outside the course's nine names: {', '.join(foreign)}"))
    unreported = [n for n in present if n in expected and _model_stage(n) not in reported]
    if unreported:
        findings.append(Finding(False, f"models_saved/ holds {', '.join(unreported)}, whose entries in report.json are empty"))
    if not findings:
        findings.append(Finding(True, f"models_saved/ holds the {len(reported)} course files report.json has numbers for, "
                                      f"and nothing else"))
    return [n for n in expected if n in present], findings  # in the course's order


def _model_stage(name: str) -> tuple[str, str]:
    stem = name[:-4]
    return next((m, s) for m in MODEL_NAMES for s in STAGES if stem == f"{m}_{s}")


def _measured_accuracy(path: Path, model, ckpt: dict, device, data_root) -> tuple[float, int]:
    from .evaluate import test_loader_for
    from .train import evaluate

    result = evaluate(model, test_loader_for(ckpt, model, device, data_root, path), device)
    return result["accuracy"], result["n"]


def check_checkpoints(root: Path, names: list[str], reported: dict, measure: bool = False,
                      data_root=None, device="cpu", progress=None) -> list[Finding]:
    """Each present checkpoint against its report entry, recomputed from its weights."""
    from .checkpoint import load_checkpoint
    from .prune import prunable_parameters, sparsity_report
    from .prune import structured as S

    findings, loaded, run_ids = [], {}, {}
    for name in names:
        path = root / "models_saved" / name
        try:
            model, ckpt = load_checkpoint(path, device)
        except Exception as err:  # report it by name and go on with the others
            findings.append(Finding(False, f"{name} does not load: {type(err).__name__}: {err}", _model_stage(name)))
            continue
        loaded[_model_stage(name)] = (model, ckpt)
        run_ids.setdefault(ckpt.get("meta", {}).get("run_id"), []).append(name)
    details = root / "report_details.json"
    report_run = (read_json(details).get("run") or {}).get("run_id") if details.is_file() else None
    if len(run_ids) > 1:
        findings.append(Finding(False, "the checkpoints come from different runs: " + "; ".join(
            f"{rid}: {', '.join(n)}" for rid, n in run_ids.items())))
    elif run_ids:
        rid = next(iter(run_ids))
        meta = next(iter(loaded.values()))[1].get("meta", {})
        findings.append(Finding(True, f"every checkpoint loads and comes from run {rid} (profile {meta.get('profile')}"
                                      + (", a reduced run: its numbers are not the course's results)" if meta.get("reduced")
                                         else ")")))
        if report_run and report_run != rid:
            findings.append(Finding(False, f"report.json was written by run {report_run} (report_details.json), "
                                           f"the checkpoints by run {rid}"))

    for (m, stage), (model, ckpt) in loaded.items():
        name, entry = f"{m}_{stage}", reported.get((m, stage))
        if entry is None:
            continue  # already said: a file whose entry is empty

        def say(ok: bool, what: str) -> None:
            findings.append(Finding(ok, f"{name}: {what}", (m, stage)))

        recorded = ckpt.get("metrics", {}).get("accuracy")
        say(_close(entry["accuracy"], recorded, 1e-9),
            f"report.json says {entry['accuracy']:.2%}, the checkpoint recorded "
            + (f"{recorded:.2%}" if recorded is not None else "no accuracy"))
        if measure:
            if progress:
                progress(name)
            try:
                got, n = _measured_accuracy(root / "models_saved" / f"{name}.pth", model, ckpt, device, data_root)
            except Exception as err:  # no data, another run's data folder: said, and the others go on
                say(False, f"could not measure its accuracy: {err}")
            else:  # on --data-root's whole split the numbers differ by design: shown, not compared
                say(abs(got - entry["accuracy"]) <= IMAGES_OF_SLACK / n or bool(data_root),
                    f"measured {got:.2%} on {n} test images"
                    + (" (the whole test split of --data-root, not the run's own)" if data_root else "")
                    + f", report.json {entry['accuracy']:.2%}")
        zeros = sparsity_report(model, prunable_parameters(model))["pruning_percentage"]
        if stage == "before_pruning":
            say(zeros <= BASELINE_MAX_ZEROS, f"{zeros:.1f}% of its prunable weights are zero"
                + ("" if zeros <= BASELINE_MAX_ZEROS else ": not a dense baseline (a pruned model under its name?)"))
            continue
        said = entry["pruning_percentage"]
        if stage == "after_unstructured_pruning":
            got, how = zeros, "of its prunable weights are zero (first conv and classifier left out)"
        elif (m, "before_pruning") in loaded:
            dense = loaded[m, "before_pruning"][0]
            got = S.channel_share_removed(S.widths(dense), S.widths(model), S.channel_groups(dense))
            how = f"of {m}_before_pruning's channels are gone"
        else:
            say(False, f"no {m}_before_pruning.pth to count its removed channels against")
            continue
        say(_close(got, said, PERCENT_TOLERANCE), f"report.json says {said:.2f}% removed; {got:.2f}% {how}")
    return findings


def minimums(report: dict, findings: list[Finding] = ()) -> list[str]:
    """The course's minimums against report.json, one line per entry with numbers; an entry a
    failed check concerns is marked as not to be trusted."""
    doubtful = {f.about for f in findings if not f.ok}

    def verdict(ok: bool, about: tuple[str, str]) -> str:
        return ("met" if ok else "NOT met") + (" (unverified: a check above failed)" if about in doubtful else "")

    lines = []
    for m in MODEL_NAMES:
        acc = report["initial_accuracies"][f"{m}_before_pruning"]
        if acc is not None:
            lines.append(f"  {m:12s} dense        {acc:7.2%} (minimum {BEFORE_PRUNING_MIN[m]:.0%}): "
                         + verdict(acc >= BEFORE_PRUNING_MIN[m], (m, "before_pruning")))
        for section, kind in REPORT_SECTIONS.items():
            e = report[section][m]
            if e["pruned_accuracy"] is None:
                continue
            ok = meets_minimum(m, kind, e["pruned_accuracy"], e["pruning_percentage"])
            lines.append(f"  {m:12s} {kind:12s} {e['pruned_accuracy']:7.2%} at {e['pruning_percentage']:.1f}% removed "
                         f"(minimum {AFTER_PRUNING_MIN[m]:.0%} at {SPARSITY_MIN[kind]:.0f}%): "
                         + verdict(ok, (m, _stage_of(section))))
    return lines


def check_submission(root: str | os.PathLike, measure: bool = False, data_root=None, device="cpu",
                     progress=None) -> tuple[list[Finding], dict | None]:
    """(findings, report or None): every check above, in order."""
    root = Path(root)
    report, findings = check_report_file(root)
    if report is None:
        return findings, None
    reported = _reported(report)
    names, found = check_file_names(root, reported)
    findings += found
    findings += check_checkpoints(root, names, reported, measure, data_root, device, progress)
    return findings, report
