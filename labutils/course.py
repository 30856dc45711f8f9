"""The course's fixed facts: model names, checkpoint stages and minimums (what they mean:
docs/course.md in the repository)."""
import math
from decimal import Decimal

MODEL_NAMES = ("cnn", "vit", "vit_scratch")
STAGES = ("before_pruning", "after_unstructured_pruning", "after_structured_pruning")
# The notebook that writes each stage (the notebooks after it read it).
NOTEBOOK_OF_STAGE = dict(zip(STAGES, ("02", "03", "04")))
# The workbook's notebooks by number: a student's copy beside one (03_unstructured_pruning_mine.ipynb)
# is not the workbook's, for a run or a hand-in.
NOTEBOOKS = {name[:2]: name for name in (
    "01_data.ipynb", "02_baseline_training.ipynb", "03_unstructured_pruning.ipynb",
    "04_structured_pruning.ipynb", "05_report.ipynb", "06_quantization.ipynb")}
# Which earlier notebooks' outputs each one reads (06: notebook 02's recipe for the CNN and 03's
# pruned CNN; its ResNet-20 is its own): a resume of some notebooks checks those.
READS = {"01": (), "02": ("01",), "03": ("01", "02"), "04": ("01", "02"), "05": ("01", "02", "03", "04"),
         "06": ("01", "02", "03")}
# How a record's reason begins for a model the run left out on purpose (MODELS, --models): the
# README's results table tells those from models that failed.
NOT_IN_RUN = "not in this run"
# How a pruned stage's reason begins when its baseline was not there: notebook 05 tells such a
# record, made before notebook 02 had trained the model, from a real failure.
BASELINE_MISSING = "baseline not produced"
# What a session's data description adds before the data is there: shown, never recorded (an older
# labutils recorded it, and notebook 05 takes such records for the same data).
NOT_PREPARED = " (not prepared yet)"


def empty_entry(in_run: bool) -> str:
    """How an entry without a number reads: a model of the run that was not produced, or one the
    run left out (notebook 05's verdict and figure, README's results table)."""
    return "not produced" if in_run else NOT_IN_RUN

# How notebook 02 marks a ViT that started from weights never pretrained (models.UNTRAINED_NOTE
# begins so): a baseline records it in its initial_weights.
NOT_PRETRAINED = "NOT pretrained"
# CIFAR-10's whole splits, keyed as load_cifar10's train: a run that recorded another test count
# (its n_test) scored on a subset; a full run reading fewer says so (Session.arrays).
CIFAR10_IMAGES = {True: 50_000, False: 10_000}


def not_pretrained(initial_weights) -> str | None:
    """What to say of a ViT whose baseline recorded ``initial_weights`` that were never pretrained
    (a stand-in file of timm's random initialisation: its numbers are a ViT's from scratch), None
    for any other (check, notebook 05's verdict)."""
    text = str(initial_weights or "")
    if NOT_PRETRAINED not in text:
        return None
    where = text.split(NOT_PRETRAINED)[0].rstrip(": ") or "no file named"
    return (f"its weights were {NOT_PRETRAINED} ({where}): not the course's pretrained ViT-Tiny; train it from "
            f"the pretrained weights (VIT_WEIGHTS, or --vit-weights)")


def subset_text(run: dict) -> str | None:
    """How a run's record (a checkpoint's meta, the sidecar's run) says it scored on part of the
    CIFAR-10 test split ("scored on 400 of the test images, not all 10,000"), None for the whole
    split: such numbers are not the course's, whatever the profile's name says. (Runs record their
    n_test, not their n_train.)"""
    n = run.get("n_test")
    return (f"scored on {n:,} of the test images, not all {CIFAR10_IMAGES[False]:,}"
            if isinstance(n, int) and n < CIFAR10_IMAGES[False] else None)


# Test accuracy (fraction) each model must reach before pruning ...
BEFORE_PRUNING_MIN = {"cnn": 0.90, "vit": 0.92, "vit_scratch": 0.85}
# ... and after pruning and fine-tuning.
AFTER_PRUNING_MIN = {"cnn": 0.85, "vit": 0.88, "vit_scratch": 0.80}
# Share removed (percent): of prunable weights (unstructured), of channels/heads (structured).
SPARSITY_MIN = {"unstructured": 70.0, "structured": 25.0}

# report.json's keys: "initial_accuracies" ({model}_before_pruning), then per section and model
# an entry of exactly these keys; accuracies are fractions, pruning percentages percents.
# Each section's kind of pruning (SPARSITY_MIN's key); a section reports the stage "after_" + section.
REPORT_SECTIONS = {"unstructured_pruning": "unstructured", "structured_pruning": "structured"}
REPORT_ENTRY_KEYS = ("original_accuracy", "pruned_accuracy", "pruning_percentage")
_FRACTION = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
_PER_MODEL = {"type": "object", "additionalProperties": False, "required": list(MODEL_NAMES),
              "properties": {m: {"type": "object", "additionalProperties": False,
                                 "required": list(REPORT_ENTRY_KEYS),
                                 "properties": {"original_accuracy": _FRACTION, "pruned_accuracy": _FRACTION,
                                                "pruning_percentage": {"type": ["number", "null"], "minimum": 0,
                                                                       "maximum": 100}}}
                             for m in MODEL_NAMES}}
REPORT_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object", "additionalProperties": False,
    "required": ["initial_accuracies", *REPORT_SECTIONS],
    "properties": {
        "initial_accuracies": {
            "type": "object", "additionalProperties": False,
            "required": [f"{m}_before_pruning" for m in MODEL_NAMES],
            "properties": {f"{m}_before_pruning": _FRACTION for m in MODEL_NAMES}},
        **{section: _PER_MODEL for section in REPORT_SECTIONS},
    },
}


def report_problem(report) -> str | None:
    """Where and how ``report`` breaks ``REPORT_SCHEMA`` ("structured_pruning/cnn: 'pruned_accuracy'
    is a required property"), None when it holds exactly the course's keys and valid values
    (notebook 05 before it writes report.json; the README's table before it reads one)."""
    import jsonschema

    try:
        jsonschema.validate(report, REPORT_SCHEMA)
    except jsonschema.ValidationError as err:
        hint = ""
        if err.validator == "maximum" and err.validator_value == 1 and isinstance(err.instance, (int, float)):
            # 90.4 for 90.4%: the schema's words alone did not say that accuracies are fractions
            hint = f": accuracies are fractions (write {err.instance / 100:.10g})"  # :g made 89.99996 "0.9"
        return f"{'/'.join(str(p) for p in err.absolute_path) or 'the top level'}: {err.message}{hint}"
    # The schema's bounds let NaN through (every comparison with it is false); JSON has no NaN.
    for path, value in [(f"initial_accuracies/{k}", v) for k, v in report["initial_accuracies"].items()] + \
            [(f"{section}/{m}/{k}", v) for section in REPORT_SECTIONS for m, e in report[section].items()
             for k, v in e.items()]:
        if isinstance(value, float) and not math.isfinite(value):
            return f"{path}: {value} is not a number (a failed measurement?)"
    return None


def half_empty_entries(report: dict) -> list[tuple[str, str, list[str]]]:
    """(section, model, its empty keys) of every entry of ``report`` with both numbers and nulls:
    an entry is all three numbers (a model pruned) or all null (not produced)."""
    return [(section, m, empty) for section in REPORT_SECTIONS for m, e in report[section].items()
            if 0 < len(empty := [k for k in REPORT_ENTRY_KEYS if e[k] is None]) < len(REPORT_ENTRY_KEYS)]


def accuracy_text(accuracy: float) -> str:
    """An accuracy (a fraction) as a percentage rounded down to 0.01 pp, so that 0.934951, which
    misses 93.5%, never shows as "93.50%". Floored from the decimal the JSON holds, so no float
    error can pull an accuracy that is on a goal below it."""
    return f"{math.floor(Decimal(repr(accuracy)) * 10000) / 100:.2f}%"


def removed_text(removed: float) -> str:
    """A share removed (percent) as the verdicts read it: rounded down (with ``removed_at_least``'s
    tolerance), so that 69.9998%, which misses 70%, never shows as "70.0%"."""
    return f"{math.floor((removed + REMOVED_TOLERANCE) * 100) / 100:.2f}%"


# Float error only, in a percentage computed from counts (about 1e-13): 1e-4 pp was 11 of ResNet-18's
# weights, enough to call 69.9999% "70.00%, met".
REMOVED_TOLERANCE = 1e-9


def removed_at_least(removed: float, minimum: float) -> bool:
    """A share removed (percent) against a minimum, the one rule every verdict uses. Masks remove
    at least the share asked (``prune.masks``); ``REMOVED_TOLERANCE`` absorbs float error only:
    69.95% is not 70%."""
    return removed + REMOVED_TOLERANCE >= minimum


def meets_minimum(model: str, kind: str, accuracy: float, removed: float) -> bool:
    """A pruned model against the course: its accuracy minimum and, for ``kind`` "unstructured" or
    "structured", the least share removed. Every verdict on a pruned model uses this one rule."""
    return accuracy >= AFTER_PRUNING_MIN[model] and removed_at_least(removed, SPARSITY_MIN[kind])


def checkpoint_names(models=MODEL_NAMES) -> list[str]:
    """The nine file names the course expects in models_saved/ (those of ``models``)."""
    return [f"{m}_{s}.pth" for m in MODEL_NAMES if m in models for s in STAGES]
