"""Check a hand-in: a run's folder (``report.json``, ``models_saved/``) against itself and the course.

Used by ``python -m labutils check DIR``, for instructors grading and for students before they
hand in. Every number of report.json is traced to the checkpoint it names and recomputed from its
weights where the weights can say it:

* report.json has exactly the course's keys and valid values (``course.report_problem``), each
  entry all numbers or all empty, and ``report_details.json`` beside it names the run and holds
  report.json's numbers (``results.check_same_run``);
* ``models_saved/`` holds the course's file names, one for each entry with numbers, and nothing
  else (notebook 06's ``quantization/`` folder aside);
* every checkpoint loads safely, holds the architecture its name says, and comes from the run that
  wrote report.json: the very file it wrote, when report_details.json or ``metrics/`` records its SHA-256;
* ``original_accuracy`` is the model's ``initial_accuracies`` entry, and each pruned checkpoint was
  made from the baseline beside it (the baseline accuracy it recorded; the baseline file's SHA-256
  its metrics record names, when ``metrics/`` is handed in);
* report_details.json's profile, seed and data are the checkpoints';
* each accuracy is the one its checkpoint recorded, and (``measure``) the one its weights give on
  the run's test images, to within ``IMAGES_OF_SLACK`` images;
* an unstructured pruning_percentage is the share of zeros among the checkpoint's prunable weights
  (conv and linear, first conv and classifier left out unless the run's recipe included them); a
  structured one is the share of channels (a ViT's heads) the checkpoint lacks against its
  baseline (``prune.structured.reported_share_removed``);
* a baseline is dense;
* a ``vit`` started from pretrained weights (its baseline's ``initial_weights`` do not say "NOT pretrained");
* the write-up (the executed notebooks, ``notebooks/`` or another folder): 01-05 are there, each
  shows no error, and each shows the run that wrote report.json (06 too, when it was run).

Then the course's minimums, met or not, from the numbers that held.
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .artifacts import read_json
from .course import (AFTER_PRUNING_MIN, BEFORE_PRUNING_MIN, MODEL_NAMES, NOTEBOOKS, REMOVED_TOLERANCE, REPORT_ENTRY_KEYS,
                     NOTEBOOK_OF_STAGE, REPORT_SECTIONS, SPARSITY_MIN, STAGES, accuracy_text, checkpoint_names, empty_entry,
                     half_empty_entries, meets_minimum, not_pretrained, removed_text, report_problem, subset_text)
from .profile_check import real_number
from .results import ResultsError, check_same_run, sidecar_problem

# A model trained and scored on a GPU and scored again on a CPU may differ by an image or two:
# the two run slightly different arithmetic (notebook 05 says the same of its table).
IMAGES_OF_SLACK = 2
# Percentage points: report.json rounds nothing, so this is float error only, and no wider than the
# verdict's own tolerance (course.removed_at_least): a claim within it cannot cross a minimum.
PERCENT_TOLERANCE = REMOVED_TOLERANCE
BASELINE_MAX_ZEROS = 1.0  # percent of prunable weights; a trained dense model has next to none
ALLOWED_FOLDERS = {"quantization"}  # notebook 06's ResNet-20, kept apart from the course's nine
WRITE_UP = ("01", "02", "03", "04", "05")  # the notebooks that make report.json; 06 is extra
SESSION_RUN = re.compile(r"run_id='([^']+)'")  # as every notebook's Session cell shows its run
NOT_RUN = "has no outputs: it was saved without being run (run it from the top, then save it)"


@dataclass
class Finding:
    ok: bool
    what: str
    about: tuple[str, str] | None = None  # the (model, stage) whose report entry it concerns

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.what}"


EVERY_ENTRY = ("*", "*")  # a Finding's ``about`` when it concerns every entry of report.json


def _model_stage(name: str) -> tuple[str, str] | None:
    """("cnn", "before_pruning") for "cnn_before_pruning.pth"; None for another name."""
    return next(((m, s) for m in MODEL_NAMES for s in STAGES if name == f"{m}_{s}.pth"), None)


def _entries(report: dict):
    """(model, stage, entry) of every pruning entry of report.json."""
    for section in REPORT_SECTIONS:
        for m in MODEL_NAMES:
            yield m, f"after_{section}", report[section][m]


def _reported(report: dict) -> dict[tuple[str, str], dict]:
    """{(model, stage): {"accuracy", "pruning_percentage"?}} of every entry with all its numbers."""
    out = {(m, "before_pruning"): {"accuracy": report["initial_accuracies"][f"{m}_before_pruning"]}
           for m in MODEL_NAMES if report["initial_accuracies"][f"{m}_before_pruning"] is not None}
    for m, stage, e in _entries(report):
        if all(e[k] is not None for k in REPORT_ENTRY_KEYS):
            out[m, stage] = {"accuracy": e["pruned_accuracy"], "pruning_percentage": e["pruning_percentage"]}
    return out


def _not_a(kind: str, value, where: str) -> str:
    """What a FAIL line says of a damaged value: "metrics/x.json's recipe is 'oops' (str), not an object"."""
    return (f"{where} is {value!r} ({type(value).__name__}), not {kind}: the file was edited or damaged (re-run "
            f"the notebook that writes it)")


def _exactly(accuracy: float) -> str:
    """An accuracy as the verdicts read it, then as the file holds it: two that differ past the
    second decimal (0.53501 and 0.535) both read "53.50%"."""
    return f"{accuracy_text(accuracy)} ({accuracy!r})"


def _read(path: Path) -> tuple[dict | None, str | None]:
    """(JSON object, None) or (None, what is wrong with the file)."""
    if not path.is_file():  # a folder of that name was called missing
        return None, "is not a file" if path.exists() else "is missing"
    try:
        data = read_json(path)
    except ValueError as err:  # its text names the file and says it again: only json's own reason here
        reason = str(err.__context__ or err).splitlines()[0]
        return None, f"is not valid JSON ({reason})"
    return (data, None) if isinstance(data, dict) else (None, "does not hold a JSON object")


def check_report_file(root: Path) -> tuple[dict | None, dict, list[Finding]]:
    """(report or None, the run report_details.json names ({} when none), findings)."""
    report, wrong = _read(root / "report.json")
    if wrong:
        return None, {}, [Finding(False, f"report.json {wrong}: notebook 05 writes it")]
    problem = report_problem(report)
    if problem:
        return None, {}, [Finding(False, f"report.json breaks the course's format at {problem}")]
    # What the schema checks: it cannot tell an accuracy of 0.7% from one of 70% (0.007 and 0.7 are both fractions).
    findings = [Finding(True, "report.json has exactly the course's keys, and values in range (accuracies 0 to 1, "
                              "percentages 0 to 100)")]
    findings += [Finding(False, f"{m}_after_{section}: report.json has numbers and nulls in one entry "
                                f"({', '.join(empty)} empty): all three or none", (m, f"after_{section}"))
                 for section, m, empty in half_empty_entries(report)]
    for m, stage, e in _entries(report):
        initial = report["initial_accuracies"][f"{m}_before_pruning"]
        if e["original_accuracy"] is not None and e["original_accuracy"] != initial:
            findings.append(Finding(False, f"{m}_{stage}: original_accuracy is {e['original_accuracy']}, but "
                                           f"initial_accuracies/{m}_before_pruning is {initial}", (m, stage)))
    details, wrong = _read(root / "report_details.json")
    run = details.get("run") if details else None
    run_id = run.get("run_id") if isinstance(run, dict) else None
    if not run_id:
        findings.append(Finding(False, f"report_details.json {wrong or 'names no run'} (notebook 05 writes it "
                                       f"beside report.json): which run wrote the report cannot be checked"))
    damaged = sidecar_problem(details) if details else None
    if damaged:
        findings.append(Finding(False, f"report_details.json is damaged: its {damaged} (run notebook 05 again to "
                                       f"write it): which models the run left out cannot be read"))
    elif run_id and all(f.ok for f in findings):  # a problem already named is not said twice
        # An edited sidecar number passed check, then results-table refused it: the same cross-check.
        try:
            check_same_run(report, details, root, remedy="hand in both files of one run (notebook 05 writes them "
                                                         "together)")
        except ResultsError as err:  # the entry it names is not to be trusted, whichever file was edited
            findings.append(Finding(False, str(err), _entry_named(str(err))))
    return report, run if run_id else {}, findings


def _entry_named(text: str) -> tuple[str, str]:
    """The (model, stage) of the one report.json entry ``check_same_run``'s text names (": vit_scratch/..."),
    or every entry when it names none or several."""
    named = [(m, "before_pruning") for m in MODEL_NAMES if f" initial_accuracies/{m}_before_pruning " in text]
    named += [(m, f"after_{s}") for s in REPORT_SECTIONS for m in MODEL_NAMES if f" {s}/{m}/" in text]
    return named[0] if len(named) == 1 else EVERY_ENTRY


def check_files(root: Path, reported: dict, half_empty=()) -> tuple[list[str], list[Finding]]:
    """The course's names present in models_saved/ (in the course's order), and findings on
    missing and foreign files (``half_empty``: entries already failed for mixing numbers and nulls)."""
    folder = root / "models_saved"
    present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    findings = []
    if reported and not any(_model_stage(n) for n in present):  # one line, not one per checkpoint
        where = ("holds none of them" if folder.is_dir() else "is a file, not a folder" if folder.exists()
                 else "is missing")
        findings.append(Finding(False, f"report.json has numbers for {len(reported)} checkpoints, but models_saved/ "
                                       f"{where}: a hand-in keeps them there, beside report.json (a clone of the "
                                       f"workbook's repository has none: git does not keep checkpoints)", EVERY_ENTRY))
    else:
        findings += [Finding(False, f"report.json has numbers for {m}_{s}, but models_saved/{m}_{s}.pth is missing", (m, s))
                     for m, s in reported if f"{m}_{s}.pth" not in present]
    foreign = [n for n in present if not (_model_stage(n) and (folder / n).is_file())
               and not (n in ALLOWED_FOLDERS and (folder / n).is_dir()) and not n.startswith(".")]
    if foreign:
        findings.append(Finding(False, f"models_saved/ holds what is not one of the course's nine files: {', '.join(foreign)}"))
    unreported = [n for n in present if _model_stage(n) and _model_stage(n) not in reported
                  and _model_stage(n) not in half_empty]
    if unreported:
        findings.append(Finding(False, f"models_saved/ holds {', '.join(unreported)}, whose entries in report.json are empty"))
    if not findings:
        findings.append(Finding(True, f"models_saved/ holds the {len(reported)} course files report.json has numbers for, "
                                      f"and nothing else"))
    return [n for n in checkpoint_names() if n in present and (folder / n).is_file()], findings


def _measured(root: Path, name: str, model, ckpt: dict, device, data_root) -> tuple[int, int]:
    """(images right, images) on the run's own test images, in ``data_root`` when given."""
    from .evaluate import test_loader_for
    from .train import evaluate

    loader = test_loader_for(ckpt, model, device, data_root, root / "models_saved" / name, run_subset=True)
    result = evaluate(model, loader, device)
    return round(result["accuracy"] * result["n"]), result["n"]


def _checkpoint_sha256(record) -> str | None:
    """The checkpoint SHA-256 a metrics record or a sidecar entry names (None when it names none)."""
    written = record.get("checkpoint") if isinstance(record, dict) else None
    return written.get("sha256") if isinstance(written, dict) else None


def _unstructured_recipe(root: Path, m: str) -> tuple[dict, str | None]:
    """(``m``'s unstructured recipe from the run's metrics ({} when they are not there: the
    workbook's defaults), what is wrong with it or None)."""
    record, _ = _read(root / "metrics" / f"{m}_after_unstructured_pruning.json")
    recipe = (record or {}).get("recipe") or {}
    if not isinstance(recipe, dict):
        return {}, _not_a("an object", recipe, f"metrics/{m}_after_unstructured_pruning.json's recipe")
    return recipe, None


def _baseline_problem(root: Path, m: str, stage: str, ckpt: dict, reported: dict,
                      baseline_loads: bool = True) -> str | None:
    """Why the pruned checkpoint ``m``_``stage`` was not made from the baseline handed in beside it,
    or None: the baseline's accuracy it recorded, and the baseline file's SHA-256 its metrics
    record names (when ``metrics/`` is handed in and the baseline file loads)."""
    from .artifacts import file_sha256

    pruned_from = ckpt.get("metrics", {}).get("original_accuracy")
    if pruned_from is not None and not real_number(pruned_from):
        return _not_a("a number", pruned_from, f"models_saved/{m}_{stage}.pth's metrics.original_accuracy")
    baseline = reported.get((m, "before_pruning"), {}).get("accuracy")
    if pruned_from is not None and baseline is not None and abs(pruned_from - baseline) > 1e-9:
        return (f"was pruned from a baseline at {_exactly(pruned_from)}, but {m}_before_pruning is at "
                f"{_exactly(baseline)}: another baseline's pruned model")
    record, _ = _read(root / "metrics" / f"{m}_{stage}.json")
    sha = (record or {}).get("baseline_sha256")
    if sha is not None and not isinstance(sha, str):
        return _not_a("a SHA-256 (a string)", sha, f"metrics/{m}_{stage}.json's baseline_sha256")
    path = root / "models_saved" / f"{m}_before_pruning.pth"
    # A baseline that does not load (corrupt, empty, another model's) is failed once, by name: its
    # SHA-256 differs for that reason alone, not because the baseline "was trained again".
    if not (sha and baseline_loads and path.is_file()):
        return None
    found = file_sha256(path)  # read once: a dense baseline is tens of MB
    if found != sha:
        return (f"was pruned from another file than models_saved/{m}_before_pruning.pth (its record "
                f"metrics/{m}_{stage}.json names a baseline of SHA-256 {sha[:12]}..., the file's is "
                f"{found[:12]}...): the baseline was trained or replaced again since")
    return None


def check_checkpoints(root: Path, names: list[str], reported: dict, report_run: str | None, measure: bool = False,
                      data_root=None, device="cpu", progress=None, run_info: dict | None = None
                      ) -> tuple[list[Finding], str | None]:
    """(findings, the run the checkpoints should come from): each present checkpoint against its
    report entry, recomputed from its weights (``run_info``: report_details.json's run, whose
    profile, seed and data the checkpoints must share)."""
    from .artifacts import file_sha256
    from .checkpoint import load_checkpoint
    from .prune import prunable_parameters, sparsity_report
    from .prune.masks import prunable_under
    from .prune.masks import left_dense
    from .prune import structured as S

    findings, loaded, broken = [], {}, set()
    details, _ = _read(root / "report_details.json")
    sidecar = details.get("entries") if details else None
    sidecar = sidecar if isinstance(sidecar, dict) else {}  # a damaged one is failed by check_report_file
    unmeasured: dict[str, list[tuple[str, str]]] = {}  # why -> the checkpoints it stopped
    for name in names:
        try:
            model, ckpt = load_checkpoint(root / "models_saved" / name, device)
            if damaged := next((k for k in ("metrics", "meta") if not isinstance(ckpt.get(k, {}), dict)), None):
                raise ValueError(_not_a("an object", ckpt[damaged], f"its {damaged}"))  # every check below reads them
            loaded[_model_stage(name)] = model, ckpt
        except Exception as err:  # reported by name; the others go on
            broken.add(_model_stage(name))
            findings.append(Finding(False, f"{name} does not load: {type(err).__name__}: {err}", _model_stage(name)))
    runs = {key: ckpt.get("meta", {}).get("run_id") for key, (_, ckpt) in loaded.items()}
    # Without report_details.json's run: the one most checkpoints name (a tie: the first, in course order).
    expected_run = report_run or (Counter(runs.values()).most_common(1)[0][0] if runs else None)
    whose = "report.json" if report_run else "most checkpoints"
    for (m, stage), rid in runs.items():
        if rid != expected_run:
            findings.append(Finding(False, f"{m}_{stage}.pth comes from run {rid}, {whose} from run {expected_run}",
                                    (m, stage)))
    if loaded and not broken and all(rid == expected_run for rid in runs.values()):
        meta = next(iter(loaded.values()))[1].get("meta", {})
        subset = subset_text(meta)  # a full profile scored on part of the test split is no more the course's
        reduced = (", a reduced run: its numbers are not the course's results" if meta.get("reduced") else
                   f", {subset}: its numbers are not the course's results" if subset else "")
        findings.append(Finding(True, f"every checkpoint loads and comes from run {expected_run} "
                                      f"(profile {meta.get('profile')}{reduced})"))
        differ = [f"{key} {run_info.get(key)!r} where its checkpoints say {meta.get(key)!r}"
                  for key in ("profile", "seed", "data") if run_info and run_info.get(key) != meta.get(key)]
        if differ:
            findings.append(Finding(False, f"report_details.json names {'; '.join(differ)}: the sidecar was "
                                           f"edited, or comes from another run", EVERY_ENTRY))

    for (m, stage), (model, ckpt) in loaded.items():
        name, entry = f"{m}_{stage}", reported.get((m, stage))
        if entry is None:
            continue  # already said: a file whose entry is empty

        def say(ok: bool, what: str) -> None:
            findings.append(Finding(ok, f"{name}: {what}", (m, stage)))

        try:
            # The run recorded each checkpoint's SHA-256 (an older labutils did not): a file changed since is not its.
            recorded_sha = {where: sha for where, sha in (
                ("report_details.json", _checkpoint_sha256(sidecar.get(name))),
                (f"metrics/{name}.json", _checkpoint_sha256(_read(root / "metrics" / f"{name}.json")[0])))
                if sha is not None}
            found = file_sha256(root / "models_saved" / f"{name}.pth") if recorded_sha else None
            if differs := [where for where, sha in recorded_sha.items() if sha != found]:
                if differs == ["report_details.json"] and len(recorded_sha) == 2:  # metrics/ names this file
                    say(False, f"saved again since report.json was written (its SHA-256 {found[:12]}... is the one "
                               f"metrics/{name}.json records, not report_details.json's: notebook "
                               f"{NOTEBOOK_OF_STAGE[stage]} ran again after 05): run notebook 05 again")
                else:
                    say(False, f"not the file run {expected_run} wrote (its SHA-256 {found[:12]}... differs from "
                               f"{' / '.join(differs)}): it was changed since; hand in the run's own file")
            recorded = ckpt.get("metrics", {}).get("accuracy")
            if recorded is not None and not real_number(recorded):
                say(False, _not_a("a number", recorded, f"models_saved/{name}.pth's metrics.accuracy"))
            else:
                same = recorded is not None and abs(entry["accuracy"] - recorded) < 1e-9
                shown = accuracy_text if same else _exactly  # a difference is shown, never rounded away
                say(same, f"report.json says {shown(entry['accuracy'])}, the checkpoint recorded "
                    + (shown(recorded) if recorded is not None else "no accuracy"))
            if m == "vit" and (untrained := not_pretrained(_initial_weights(m, ckpt, loaded))):
                say(False, untrained)
            if measure:
                if progress:
                    progress(name)
                try:
                    right, n = _measured(root, f"{name}.pth", model, ckpt, device, data_root)
                except Exception as err:  # no data, another copy of it: said once below, and the others go on
                    unmeasured.setdefault(_why_unmeasured(err, ckpt, data_root, root), []).append((m, stage))
                else:  # in images, not rounded first (2.4 images off passed): 2 of 5,000 is not always 0.0004
                    close = abs(right - entry["accuracy"] * n) <= IMAGES_OF_SLACK + 1e-6
                    say(close,
                        f"measured {accuracy_text(right / n)} ({right:,} of {n:,} test images), "
                        f"report.json {accuracy_text(entry['accuracy'])}"
                        + ("" if close or not data_root else
                           f"; the run used {ckpt.get('meta', {}).get('data')}: is the copy in --data-root the same?"))
            if stage != "before_pruning" and (problem := _baseline_problem(
                    root, m, stage, ckpt, reported, baseline_loads=(m, "before_pruning") not in broken)):
                say(False, problem)
            if stage == "before_pruning":
                zeros = sparsity_report(model, prunable_parameters(model))["pruning_percentage"]
                dense_enough = zeros <= BASELINE_MAX_ZEROS
                say(dense_enough, f"{zeros:.1f}% of its prunable weights are zero"
                    + ("" if dense_enough else ": not a dense baseline (a pruned model under its name?)"))
                continue
            if stage == "after_unstructured_pruning":
                recipe, damaged = _unstructured_recipe(root, m)
                if damaged:
                    say(False, f"its pruned weights cannot be counted: {damaged}")
                    continue
                got = sparsity_report(model, prunable_under(model, recipe))["pruning_percentage"]
                left_out = left_dense(recipe)
                how = "of its prunable weights are zero" + (f" ({' and '.join(left_out)} left out)" if left_out else "")
            elif (m, "before_pruning") in loaded:
                dense = loaded[m, "before_pruning"][0]
                groups, original, kept = S.channel_groups(dense), S.widths(dense), S.widths(model)
                unit = S.reported_unit(groups)
                got = S.reported_share_removed(original, kept, groups)
                how = f"of {m}_before_pruning's {unit} are gone"
                if unit == "heads" and abs(S.channel_share_removed(original, kept, groups)
                                           - entry["pruning_percentage"]) <= PERCENT_TOLERANCE:
                    # a run made before the course's definition was followed
                    how += (" (report.json counts heads and MLP neurons together, as labutils did before "
                            "2026-12-07; the course counts a ViT's heads: run notebooks 04 and 05 again)")
            else:
                why = "does not load" if (m, "before_pruning") in broken else "is missing"
                say(False, f"its removed channels cannot be counted: {m}_before_pruning.pth {why}")
                continue
            said = entry["pruning_percentage"]
            say(abs(got - said) <= PERCENT_TOLERANCE,
                f"report.json says {removed_text(said)} removed; {removed_text(got)} {how}")
        except Exception as err:  # a damaged value no check above foresaw: this checkpoint fails, the others go on
            say(False, f"its checks stopped at an unexpected {type(err).__name__}: {err} (models_saved/{name}.pth or "
                       f"its records in metrics/ were edited or damaged)")
    for why, keys in unmeasured.items():  # one missing data folder: one line, not one per checkpoint
        which = ", ".join(f"{m}_{stage}" for m, stage in keys)
        findings.append(Finding(False, f"{which}: could not measure its accuracy: {why}", keys[0]) if len(keys) == 1
                        else Finding(False, f"could not measure the accuracies of {which}: {why}", EVERY_ENTRY))
    return findings, expected_run


def _initial_weights(m: str, ckpt: dict, loaded: dict) -> str | None:
    """Where ``m``'s weights started, as its checkpoint recorded it, or for a pruned one its
    baseline's (pruning records none of its own); None when neither says."""
    baseline = loaded.get((m, "before_pruning"), (None, {}))[1]
    return (ckpt.get("metrics", {}).get("initial_weights")
            or baseline.get("metrics", {}).get("initial_weights"))


def _why_unmeasured(err: Exception, ckpt: dict, data_root, root: Path) -> str:
    """Why a checkpoint could not be measured: for a run on synthetic data whose images are not
    there, where to find them (CIFAR-10's download instructions would not bring them back)."""
    from .data import SYNTHETIC, DataNotFoundError

    meta = ckpt.get("meta", {})
    if isinstance(err, DataNotFoundError) and meta.get("data") == SYNTHETIC:
        where = data_root or root / meta.get("data_root", "")  # the run records it relative to its folder
        return (f"its run was on synthetic data, whose test images are not in {where}: pass --data-root with the "
                f"run's synthetic data folder (a smoke run writes it as data-synthetic/ in its folder; python -m "
                f"labutils run --profile smoke --notebooks 01 --out ANOTHER_FOLDER writes the same images there)")
    return str(err)


def minimums(report: dict, findings: list[Finding] = (), left_out=()) -> list[str]:
    """The course's minimums against report.json, one line per entry (an entry without numbers, a
    model not produced, is not met; one of ``left_out``, the models the run left out on purpose,
    says so too, as notebook 05 does); an entry a failed check concerns is marked as not to be
    trusted."""
    doubtful = {f.about for f in findings if not f.ok}

    def verdict(ok: bool, about: tuple[str, str]) -> str:
        unverified = about in doubtful or EVERY_ENTRY in doubtful
        return ("met" if ok else "NOT met") + (" (unverified: a check above failed)" if unverified else "")

    reported, lines = _reported(report), []
    incomplete = {(m, f"after_{section}"): empty for section, m, empty in half_empty_entries(report)}
    for m in MODEL_NAMES:
        for stage, kind in (("before_pruning", "dense"), *((f"after_{s}", k) for s, k in REPORT_SECTIONS.items())):
            entry = reported.get((m, stage))
            if entry is None:  # said, not skipped: a hand-in without a model listed it nowhere
                # Left out on purpose (the sidecar says so) or not: the course's minimum is not met.
                why = (empty_entry(False) if m in left_out else
                       f"incomplete entry ({', '.join(incomplete[m, stage])} empty)" if (m, stage) in incomplete else
                       "not produced (report.json holds no numbers)")
                lines.append(f"  {m:12s} {kind:12s} {why}: NOT met")
                continue
            # Rounded down, as the verdicts read it: 0.89996 showed "90.00%" beside a missed 90% minimum.
            accuracy = f"{accuracy_text(entry['accuracy']):>7s}"
            if kind == "dense":
                lines.append(f"  {m:12s} dense        {accuracy} (minimum {BEFORE_PRUNING_MIN[m]:.0%}): "
                             + verdict(entry["accuracy"] >= BEFORE_PRUNING_MIN[m], (m, stage)))
            else:
                ok = meets_minimum(m, kind, entry["accuracy"], entry["pruning_percentage"])
                lines.append(f"  {m:12s} {kind:12s} {accuracy} at {removed_text(entry['pruning_percentage'])} "
                             f"removed (minimum {AFTER_PRUNING_MIN[m]:.0%} at {SPARSITY_MIN[kind]:.0f}%): "
                             + verdict(ok, (m, stage)))
    return lines


def _output_text(output: dict) -> str:
    """What one output shows as text: a stream's text, or a result's text/plain."""
    text = output.get("text") if output.get("output_type") == "stream" else output.get("data", {}).get("text/plain")
    return "".join(text) if isinstance(text, list) else str(text or "")


def _notebook_problem(path: Path, run_id: str | None) -> tuple[str | None, set[str]]:
    """(what is wrong with one executed notebook or None, the runs its Session cell shows)."""
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        outputs = [(c, o) for c in code for o in c["outputs"]]
        shown = set(SESSION_RUN.findall("".join(_output_text(o) for _, o in outputs)))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        return (f"is not a notebook in Jupyter's format (nbformat 4) ({type(err).__name__}: {err}): hand in the "
                f"notebook as Jupyter saved it"), set()
    if not outputs:
        return NOT_RUN, set()

    def first_line(cell) -> str:
        return next((line for line in "".join(cell.get("source", "")).splitlines() if line.strip()), "").strip()[:60]

    error = next(((c, o) for c, o in outputs if o.get("output_type") == "error"), None)
    if error:
        cell, out = error
        return (f"shows an error in cell [{cell.get('execution_count') or ' '}] ({first_line(cell)!r}): "
                f"{out.get('ename')}: {out.get('evalue')}; fix it and run the notebook again from the top"), shown
    # A run that stopped partway (its error output cleared afterwards) left its last cells unrun.
    # Only a trailing block counts: the Colab-only first cell may be skipped by hand.
    ran = [i for i, c in enumerate(code) if c.get("execution_count") is not None or c["outputs"]]
    if never := next((c for c in code[ran[-1] + 1:] if first_line(c)), None) if ran else None:
        return (f"stopped before cell {code.index(never) + 1} of its {len(code)} code cells ({first_line(never)!r}) "
                f"ran: run the notebook again from the top"), shown
    if not shown:
        return ("shows no run: its Session cell's output is gone, so it cannot be tied to report.json "
                "(run it from the top, then save it)"), shown
    if run_id and shown != {run_id}:
        return (f"is run {', '.join(sorted(shown - {run_id}))}'s, not this hand-in's run {run_id}: another run's "
                f"write-up (run it again in this run, or leave it out)"), shown
    return None, shown


def check_notebooks(folder: Path, run_id: str | None) -> list[Finding]:
    """The write-up: the workbook's notebooks 01-05 (06 when it was run) executed, without errors,
    all of one run, ``run_id`` when known."""
    books = {n: folder / name for n, name in NOTEBOOKS.items() if (folder / name).is_file()}
    missing = [NOTEBOOKS[n] for n in WRITE_UP if n not in books]
    if missing:
        return [Finding(False, f"{folder} lacks {', '.join(missing)}: hand in the executed notebooks of the run (one "
                               f"run by hand in JupyterLab leaves them in the workbook's notebooks/, one on Colab "
                               f"in your own copies of them: put those in one folder; pass that folder with "
                               f"--notebook-dir)")]
    findings, runs, unrun = [], set(), []
    for number, book in books.items():
        problem, shown = _notebook_problem(book, run_id)
        if number not in WRITE_UP and problem == NOT_RUN:
            unrun.append(number)  # an extra notebook (06) not run: no part of this write-up
            continue
        runs |= shown
        if problem:
            findings.append(Finding(False, f"notebooks: {book.name} {problem}"))
    if not findings and len(runs) > 1:
        findings.append(Finding(False, f"notebooks: they show {len(runs)} runs ({', '.join(sorted(runs))}): one "
                                       f"write-up is one run"))
    if not findings:
        ran = [n for n in books if n not in unrun]
        findings.append(Finding(True, f"notebooks {', '.join(ran)}: executed, no error, each showing run "
                                      f"{runs.pop()}" + (f" ({', '.join(unrun)} not run)" if unrun else "")))
    return findings


def check_submission(root: str | os.PathLike, measure: bool = False, data_root=None, device="cpu",
                     progress=None, notebooks=None) -> tuple[list[Finding], dict | None]:
    """(findings, report or None): every check above, in order (``notebooks``: the folder of the
    executed notebooks, ``root/notebooks`` by default)."""
    root = Path(root)
    report, run_info, findings = check_report_file(root)
    if report is None:
        return findings, None
    reported = _reported(report)
    half_empty = {(m, f"after_{section}") for section, m, _ in half_empty_entries(report)}
    names, found = check_files(root, reported, half_empty)
    findings += found
    found, expected_run = check_checkpoints(root, names, reported, run_info.get("run_id"), measure, data_root, device,
                                            progress, run_info)
    findings += found  # expected_run: report_details.json's run, else the checkpoints' most common one
    findings += check_notebooks(Path(notebooks) if notebooks else root / "notebooks", expected_run)
    return findings, report
