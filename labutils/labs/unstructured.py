"""Notebook 03 · unstructured pruning: individual weights removed by hand-written masks, compared
across criteria, scopes and schedules, then the final pruned models and the sparsity frontier.

What it teaches: how much each choice (magnitude / Taylor / Fisher scores; global, per-layer or
sensitivity-chosen thresholds; one-shot, iterative or gradual schedules) costs in accuracy, which
differences are real against the noise of the measurement, and why zeros in dense tensors save
storage but not time. Library pieces: ``prune`` (masks, criteria, schedules, sensitivity),
``measure.accuracy_interval``, ``checkpoint`` (compact sparse checkpoints), ``train``.

Every experiment starts from a copy of the dense ``*_before_pruning`` model. Sweeps and studies
are scored on a fixed, class-balanced slice of the test split (``probe``); the saved model's
accuracy and the frontier are measured on the profile's whole test split. In reduced profiles
one fine-tuning "epoch" is capped at ``epoch_steps`` optimizer steps (see the profile section).
The live ``playground`` (JupyterLab, Colab) does the same at each move of its controls (one-shot, on
a slice of the probe).
"""
from __future__ import annotations

import copy
import itertools
import math
import numbers
import tempfile
import textwrap
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D
import numpy as np
import torch
from torch import nn

from ..checkpoint import load_checkpoint, save_checkpoint
from ..artifacts import as_stored
from ..course import AFTER_PRUNING_MIN, MODEL_NAMES, SPARSITY_MIN
from ..data import DeviceLoader, subset
from ..errors import SettingsError
from ..measure import accuracy_interval, compare_latency, holm, mcnemar_p
from ..models import count_parameters
from ..plots import BAD_COLOR, GOOD_COLOR, finish, named_styles, panels, style_for
from ..profile_check import check_settings
from ..prune.criteria import compute_scores
from ..prune.masks import prunable_parameters, sparsity_report
from ..prune.schedules import METHODS, budget_steps, finetune_masked, gradual_prune, iterative_prune, one_shot_prune
from ..prune.sensitivity import SensitivityScope, sensitivity_scan
from ..train import evaluate, progress, quiet_progress, seed_everything
from ..session import NotInModels, check_models

STAGE = "after_unstructured_pruning"


@dataclass
class Subject:
    """One course model ready to prune: the dense baseline and its data."""

    name: str
    model: nn.Module
    train: DeviceLoader
    test: DeviceLoader
    probe: DeviceLoader
    baseline: float
    cfg: dict
    seed: int = 0
    results: dict = field(default_factory=dict)

    def params(self, model: nn.Module) -> dict[str, nn.Parameter]:
        return prunable_parameters(model, self.cfg["include_first"], self.cfg["include_classifier"])

    def probe_slice(self, n: int) -> DeviceLoader:
        """A class-balanced ``n``-image slice of the probe, on the probe's device (the probe's own
        order is by index: its first images are not balanced)."""
        probe = self.probe
        images, labels = subset(probe.images.cpu().numpy(), probe.labels.cpu().numpy(), n)
        return DeviceLoader(images, labels, probe.batch_size, False, probe.device, probe.size)

    def probe_images(self) -> int:
        return len(self.probe.labels)

    def final(self) -> dict:
        """{"model", "masks", "row"} of ``final_recipe`` in this kernel."""
        if "final" not in self.results:
            raise SettingsError(f"{self.name}: no final model in this kernel yet; run the final recipe's cell "
                                f"(lab.final_recipe) first")
        return self.results["final"]

    def dense_probe_accuracy(self) -> float:
        """The dense baseline's accuracy on the probe, the line the sweep's and the study's charts
        compare with (measured once, whichever of their cells runs first)."""
        if "dense_probe_accuracy" not in self.results:
            self.results["dense_probe_accuracy"] = evaluate(self.model, self.probe)["accuracy"]
        return self.results["dense_probe_accuracy"]

    def magnitude_scopes(self) -> dict:
        """{label: scope} of the sweep's magnitude curves: global, layer-wise and, after a
        sensitivity scan, sensitivity-chosen."""
        scopes = {"global": "global", "layer": "layer"}
        scan = self.results.get("sensitivity")
        if scan and set(scan["layers"]) == set(self.params(self.model)):
            scopes["sensitivity"] = SensitivityScope(scan)
        elif scan:  # cfg's include_first/include_classifier changed since: its shares name other layers
            print(f"{self.name}: the sensitivity scan covers other layers than the prunable ones now; "
                  f"sensitivity-chosen curves left out (run lab.sensitivity again to draw them)")
        return scopes

    def fresh(self) -> tuple[nn.Module, dict[str, nn.Parameter]]:
        """A copy of the dense baseline (and its prunable weights), with the seeds reset; first,
        ``cfg`` checked, as an exercise may have edited it by hand."""
        check_settings("unstructured", self.cfg, f"{self.name}'s cfg")
        self.reseed()
        model = copy.deepcopy(self.model)
        return model, self.params(model)

    def reseed(self) -> None:
        """The global seeds and the loader's reset: every fine-tune sees the same batches, crops
        and drop-path draws, whatever ran before it (a cell run twice gives the same numbers)."""
        seed_everything(self.seed, self.train)

    @property
    def fit_kwargs(self) -> dict:
        return dict(self.cfg["finetune"][self.name])


def settings(s) -> dict:
    """The profile's ``unstructured`` section, its final recipe checked for every model of the
    session now: a mistake there would otherwise surface after the sensitivity scans and the study."""
    cfg = s.profile["unstructured"]
    for name in s.models:
        check_final(cfg, name)
    return cfg


def check_final(cfg: dict, name: str) -> None:
    """ValueError when the final recipe of ``name`` cannot meet the course or names no method."""
    sparsity = cfg["final"][name]["sparsity"]
    if sparsity * 100 < SPARSITY_MIN["unstructured"]:
        raise ValueError(f"final sparsity {sparsity} of {name} is below the course's "
                         f"{SPARSITY_MIN['unstructured']}% minimum; raise it in the profile")
    if cfg["final_method"] not in (*METHODS, "best"):
        raise ValueError(f"unknown final_method {cfg['final_method']!r}; choose one of {METHODS} or 'best'")


def _probe_loader(s, images: int, batch_size: int, size: int) -> DeviceLoader:
    return s.test_subset_loader(images, 2 * batch_size, size)


class Subjects(dict):
    """The loaded baselines by model name (``load_subjects``): asking for one that was not loaded
    says why in words, where a dict's bare KeyError('cnn') left a student guessing."""

    def __init__(self, asked: list[str], skipped: dict[str, str]):
        super().__init__()
        self.asked, self.skipped = list(asked), skipped

    def __missing__(self, name):
        if name in self.skipped:
            why = f"its baseline was not loaded: {self.skipped[name]}"
        elif name not in MODEL_NAMES:
            why = f"the course's models are {', '.join(MODEL_NAMES)}"
        else:
            why = (f"it was not asked for (loaded from {self.asked}): keep it in MODELS, or load it with "
                   f"lab.load_subjects(s, [{name!r}])")
        raise NotInModels(f"no {name!r} subject here; {why}")


def load_subjects(s, models: list[str]) -> Subjects:
    """Baselines of ``models``; a model of the run whose baseline was not produced is recorded as
    missing (an exercise's call for a model outside ``MODELS`` records nothing: it saves nothing).
    SettingsError, nothing recorded, where notebook 02 has not run in this run."""
    models = check_models(models)
    cfg, subjects = settings(s), Subjects(models, {})
    for name in models:
        if not s.available(name):
            why = (s.record_missing_baseline(name, STAGE)["reason"] if name in s.models else
                   (s.metrics(name, "before_pruning") or {}).get(
                       "reason", "no before_pruning checkpoint in this run (not in this run's MODELS)"))
            subjects.skipped[name] = why.splitlines()[0]
            print(f"{name:12s} skipped: {subjects.skipped[name]}")
            continue
        model, _ = s.load(name, "before_pruning")
        batch = s.train_config(name)["batch_size"]
        train, test = s.loaders(name, batch)
        probe = _probe_loader(s, cfg["probe_images"], batch, s.input_size(name))
        # A copy each: an edit by hand to one subject's settings changes neither the profile nor the others.
        subjects[name] = Subject(name, model, train, test, probe,
                                 s.metrics(name, "before_pruning")["accuracy"], copy.deepcopy(cfg), s.seed)
        earlier = _this_runs_record(s, subjects[name])
        if earlier.get("study"):  # after a restart, "best" takes the study this run recorded (untested lead)
            subjects[name].results["study"] = earlier["study"]
        print(f"{name:12s} baseline {subjects[name].baseline:.2%}, "
              f"{sum(p.numel() for p in subjects[name].params(model).values()):,} prunable weights "
              f"in {len(subjects[name].params(model))} layers, probe {len(probe.labels)} test images")
    return subjects


# -- sensitivity ----------------------------------------------------------------------------------
def sensitivity(subject: Subject) -> dict:
    """Accuracy of each layer pruned alone (magnitude) at the profile's levels, on a class-balanced
    slice of ``sensitivity_images`` of the probe (layers x levels evaluations add up)."""
    model, params = subject.fresh()
    loader = subject.probe_slice(subject.cfg["sensitivity_images"])
    scan = dict(sensitivity_scan(model, params, loader, subject.cfg["sensitivity_levels"]), images=len(loader.labels))
    subject.results["sensitivity"] = scan
    return scan


# -- accuracy against sparsity, no fine-tuning ------------------------------------------------------
def sweep(subject: Subject) -> dict:
    """One-shot pruning without fine-tuning at each sweep level, for every scope and criterion.

    Curves: global / layer-wise / sensitivity-chosen ratios with magnitude, and global Taylor and
    Fisher scores (computed once on the dense model). Per-layer sparsity (from actual zeros) is
    kept for each point.
    """
    cfg = subject.cfg
    model, params = subject.fresh()
    original = {n: p.detach().clone() for n, p in params.items()}
    scopes = subject.magnitude_scopes()
    curves = {f"{scope} magnitude": (scope, "magnitude") for scope in scopes}
    curves.update({f"global {c}": ("global", c) for c in cfg["criteria"] if c != "magnitude"})
    scores = {}
    for c in dict.fromkeys(crit for _, crit in curves.values()):  # in order: a set's changes with the process
        subject.reseed()  # every criterion scored on the same batches
        scores[c] = compute_scores(c, model, params, subject.train, cfg["score_batches"])
    levels = cfg["sweep_levels"]
    out = {"sparsities": levels, "baseline": subject.dense_probe_accuracy(),
           "accuracy": {}, "layers": {}}
    for label, (scope, crit) in curves.items():
        out["accuracy"][label], out["layers"][label] = [], []
        for level in levels:
            masks = one_shot_prune(model, level, scopes[scope], scores[crit], params)
            report = sparsity_report(model, params, masks)
            out["accuracy"][label].append(evaluate(model, subject.probe)["accuracy"])
            out["layers"][label].append({n: v["sparsity"] for n, v in report["layers"].items()})
            with torch.no_grad():
                for n, p in params.items():
                    p.copy_(original[n])
    subject.results["sweep"] = out
    return out


# -- the course's study: one-shot vs iterative vs gradual ----------------------------------------------
def prune_and_finetune(subject: Subject, method: str, sparsity: float, epochs: float,
                       epoch_steps: int | None, scope="global", eval_loader=None, per_image: bool = False):
    """A fresh copy pruned to ``sparsity`` by ``method`` with ``epochs`` of fine-tuning in total.
    Returns (model, masks, row) where row holds accuracy, measured sparsity and time (and with
    ``per_image`` the scored images' correctness, "correct", for paired tests)."""
    cfg, kw = subject.cfg, subject.fit_kwargs
    eval_loader = eval_loader or subject.probe
    model, params = subject.fresh()
    start = time.perf_counter()
    row = {"method": method, "sparsity": sparsity, "epochs": epochs}
    desc = f"{subject.name} {method} {_pct(sparsity)}"
    if method == "one_shot":
        masks = one_shot_prune(model, sparsity, scope, params=params)
        row["accuracy_before_finetune"] = evaluate(model, eval_loader)["accuracy"]
        finetune_masked(model, subject.train, epochs, masks, desc, epoch_steps, **kw)
    elif method == "iterative":
        rounds = cfg["rounds"]
        masks, history = iterative_prune(model, subject.train, None, sparsity, rounds, epochs / rounds,
                                         scope, params=params, epoch_steps=epoch_steps, desc=desc, **kw)
        row["round_sparsity"] = [h["measured_sparsity"] for h in history]
    elif method == "gradual":
        masks, _ = gradual_prune(model, subject.train, None, sparsity, epochs, scope, params=params,
                                 end=cfg["gradual_end"], epoch_steps=epoch_steps, desc=desc, **kw)
    else:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    report = sparsity_report(model, params, masks)  # raises if a pruned weight came back
    if report["pruning_percentage"] / 100 < sparsity - 0.005:  # a schedule that fell short: never saved as the target
        raise RuntimeError(f"{desc}: {report['pruning_percentage']:.2f}% of the weights removed, not the "
                           f"{_pct(sparsity)} asked; check the profile's rounds and gradual_end")
    scored = evaluate(model, eval_loader, per_image=per_image)
    if per_image:
        row["correct"] = scored["correct"]
    row.update(accuracy=scored["accuracy"], test_images=scored["n"],
               ci95=list(accuracy_interval(scored["accuracy"], scored["n"])),
               measured_sparsity=report["pruning_percentage"] / 100, seconds=time.perf_counter() - start)
    return model, masks, row


# The study figure's looks for its budgets (with the method's marker and line): open, four halves, full.
BUDGET_FILLS = ("none", "bottom", "left", "top", "right", "full")


def _pct(share: float) -> str:
    """A sparsity as a label: "90%", "99.5%", "99.9%" (whole percents printed 0.995 and 0.999 alike,
    as "100%")."""
    return f"{100 * share:.4g}%"


def check_study(sparsities, epochs) -> None:
    """SettingsError unless the study's lists can run; the notebook calls it where it starts, as
    the study itself comes after the sensitivity scans and sweeps."""
    _check_numbers("STUDY_SPARSITIES", sparsities, lambda v: 0 < v < 1, "fractions between 0 and 1, such as [0.5, 0.9]")
    _check_numbers("STUDY_EPOCHS", epochs, lambda v: v > 0, "epoch counts above 0, such as [3, 5]")
    if endless := [e for e in epochs if not math.isfinite(e)]:  # else refused only at the first fine-tune
        raise SettingsError(f"STUDY_EPOCHS = {epochs!r}: {endless[0]!r} epochs would never end: "
                            f"use finite epoch counts, such as [3, 5]")
    for name, values in (("STUDY_SPARSITIES", sparsities), ("STUDY_EPOCHS", epochs)):
        if repeated := [v for i, v in enumerate(values) if v in values[:i]]:
            raise SettingsError(f"{name} = {values!r}: {repeated[0]!r} is listed more than once: list each value "
                                f"once (a repeat runs the same fine-tunes again)")
    if len(epochs) > len(BUDGET_FILLS):  # its figure would draw two budgets alike
        raise SettingsError(f"STUDY_EPOCHS = {epochs!r}: at most {len(BUDGET_FILLS)} different budgets, "
                            f"the most the study's figure tells apart (by how much of a marker is filled)")


def check_playground(enabled) -> None:
    """SettingsError unless PLAYGROUND is True or False; the notebook calls it where it starts, as
    the playground comes after the sensitivity scans and sweeps."""
    if not isinstance(enabled, bool):  # papermill's -p passes "false" as a string
        raise SettingsError(f"PLAYGROUND = {enabled!r}: use True or False "
                            f"(with papermill: -p PLAYGROUND False, capitalised as in Python)")


def _check_numbers(name: str, values, ok, rule: str) -> None:
    if (isinstance(values, str) or not isinstance(values, (list, tuple)) or not values
            or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and ok(v) for v in values)):
        example = rule.rsplit("such as ", 1)[-1]
        hint = (f' (with papermill, a list goes with -y: -y "{name}: {example}"; -p passes a string)'
                if isinstance(values, str) else "")
        raise SettingsError(f"{name} = {values!r}: use a non-empty list of {rule}{hint}")


def study(subject: Subject, sparsities: list[float], epochs: list[float], record: bool = True) -> list[dict]:
    """Every method at every sparsity with every fine-tuning budget (same budget for all methods).
    Reduced profiles scale the budgets (``study_epoch_scale``) and cap an epoch (``epoch_steps``);
    rows keep the nominal epochs and record the steps actually run. With ``record`` the rows become
    the subject's study, which the final recipe ("best") and its saved metrics read; an exercise's
    extra study passes False and changes nothing."""
    check_study(sparsities, epochs)
    rows, correct, scale, cap = [], [], subject.cfg["study_epoch_scale"], subject.cfg["epoch_steps"]
    points = [(e, level, method) for e in epochs for level in sparsities for method in METHODS]
    # One bar for the study and a line per point: a bar per fine-tune would bury the figure.
    with closing(progress(total=len(points), desc=f"{subject.name} study", unit="fit")) as bar:
        for e, level, method in points:
            with quiet_progress():
                _, _, row = prune_and_finetune(subject, method, level, e * scale, cap, per_image=True)
            correct.append(row.pop("correct"))  # for the verdict's paired tests; not recorded
            row.update(epochs=e, steps=budget_steps(e * scale, subject.train, cap))  # the same for every method
            rows.append(row)
            bar.update()
            low, high = row["ci95"]
            print(f"{subject.name:12s} {method:9s} {_pct(level):>5s} {e} ep ({row['steps']} step{'s' * (row['steps'] != 1)}): {row['accuracy']:.2%} "
                  f"[{low:.2%}, {high:.2%}] ({row['seconds']:.0f}s)", flush=True)
    if record:  # the correctness stays in the kernel, for the final recipe's choice ("best")
        subject.results["study"], subject.results["study_correct"] = rows, correct
    print(study_table(rows))
    print(study_verdict(rows, correct))
    return rows


def study_table(rows: list[dict]) -> str:
    """The study at a glance: a row per method and budget, a column per sparsity, accuracy in %."""
    levels = sorted({r["sparsity"] for r in rows})
    keys = list(dict.fromkeys((r["method"], r["epochs"]) for r in rows))
    acc = {(r["method"], r["epochs"], r["sparsity"]): r["accuracy"] for r in rows}
    head = f"{'':22s}" + "".join(f"{_pct(level):>8s}" for level in levels)
    lines = [head] + [f"{method.replace('_', '-') + f', {e} ep':22s}"
                      + "".join(f"{100 * acc[method, e, level]:8.1f}" if (method, e, level) in acc else f"{'-':>8s}"
                                for level in levels) for method, e in keys]
    return "accuracy (%) by sparsity:\n" + "\n".join(lines)


def study_verdict(rows: list[dict], correct: list[torch.Tensor]) -> str:
    """Which points the study shows worse than its best: every pair of points compared by McNemar's
    test on the same images (``correct``: each row's per-image correctness), Holm-corrected for all
    the pairs. Comparing intervals treats the points as independent (too weak: they share the
    images); testing only the best against the rest, the best picked after looking, claimed a
    difference in about a fifth of studies of equal models."""
    pairs = list(itertools.combinations(range(len(rows)), 2))
    shown = {pair for pair, differs in zip(pairs, holm([mcnemar_p(correct[i], correct[j]) for i, j in pairs]))
             if differs}
    top = max(range(len(rows)), key=lambda i: rows[i]["accuracy"])
    best, worst = rows[top], min(rows, key=lambda r: r["accuracy"])
    worse = [r for i, r in enumerate(rows) if tuple(sorted((i, top))) in shown]
    head = (f"study: {len(rows)} points from {worst['accuracy']:.2%} to {best['accuracy']:.2%} on "
            f"{best['test_images']:,} test images; every pair compared by McNemar's test on the same images, "
            f"Holm-corrected for its {len(pairs)} pair{'s' * (len(pairs) != 1)}: {len(shown)} differ. ")
    named = f"the best ({best['method']} {_pct(best['sparsity'])}, {best['epochs']} ep)"
    if not shown:
        return head + "This study does not separate its methods, sparsities or budgets."
    if not worse:
        return head + f"None is shown worse than {named}; the pairs that differ are among the others."
    return head + (f"Shown worse than {named}: "
                   + ", ".join(f"{r['method']} {_pct(r['sparsity'])} {r['epochs']} ep" for r in worse[:6])
                   + ("..." if len(worse) > 6 else "") + "; the others are not separated from it. The test covers "
                   "the choice of test images, not of training seed: another seed moves every point.")


def study_subjects(subjects: dict[str, Subject]) -> dict[str, Subject]:
    """The models the profile runs the study on (``study_models``, default all): the study
    fine-tunes 18 times per model, so a time-boxed profile keeps it to the course's CNN."""
    chosen = [n for n in subjects if n in subjects[n].cfg.get("study_models", subjects)] if subjects else []
    skipped = [n for n in subjects if n not in chosen]
    if skipped:
        print(f"study skipped for {', '.join(skipped)} in this profile (study_models: {', '.join(chosen) or 'none'})")
    return {n: subjects[n] for n in chosen}


def dense_accuracies(subjects: dict[str, Subject]) -> dict[str, float]:
    """Each dense model's probe accuracy: the "dense" line of the study's figure."""
    return {name: subj.dense_probe_accuracy() for name, subj in subjects.items()}


def best_method(rows: list[dict], correct: list[torch.Tensor] | None) -> tuple[str, str]:
    """The method with the best accuracy at the study's highest sparsity and largest budget, and a
    line saying whether its lead is shown: McNemar's test on the same images (``correct``: each
    row's per-image correctness) against each other method there, Holm-corrected for those
    comparisons, as the study's verdict compares its points. Without ``correct`` (rows set by
    hand), the lead is not tested, and the line says so."""
    top_s, top_e = max(r["sparsity"] for r in rows), max(r["epochs"] for r in rows)
    top = [i for i, r in enumerate(rows) if r["sparsity"] == top_s and r["epochs"] == top_e]
    win = max(top, key=lambda i: rows[i]["accuracy"])
    others, best = [i for i in top if i != win], rows[win]
    # An exact tie has no higher point: the first method in the study's order is taken, and said so.
    level = [rows[i]["method"] for i in others if rows[i]["accuracy"] == best["accuracy"]]
    head = f"the study's best at {_pct(top_s)}, {top_e} ep: {best['method']} ({best['accuracy']:.2%})" + (
        f", level with {' and '.join(level)} (the first in the study's order taken)" if level else "")
    higher = "no higher point" if level else "the higher point"
    if not others:
        return best["method"], f"{head}; the only method run there"
    if correct is None:
        return best["method"], f"{head}; {higher}: no per-image scores in this kernel to test its lead"
    shown = holm([mcnemar_p(correct[win], correct[i]) for i in others])
    ahead = " and ".join(rows[i]["method"] for i, s in zip(others, shown) if s)
    tied = " and ".join(rows[i]["method"] for i, s in zip(others, shown) if not s)
    # Only the methods at this point, not the study's every pair: it can show a lead here that the
    # study's verdict, corrected for all its pairs, does not.
    test = (f"McNemar's test on the same images against the other methods at this point, Holm-corrected for "
            f"{len(others)} comparison{'s' * (len(others) != 1)}")
    if tied:
        lead = (f"{test}: not separated from {tied}, so it is {higher}, not a difference shown"
                + (f" (ahead of {ahead})" if ahead else ""))
    else:
        lead = f"{test}: ahead of {ahead}"
    return best["method"], f"{head}; {lead}"


# -- the final recipe -------------------------------------------------------------------------------
def final_recipe(subject: Subject, method: str | None = None) -> dict:
    """The profile's target for this model, pruned by ``method`` (default: the profile's choice,
    "best" meaning the study's winner) and fine-tuned; accuracy on the whole test split."""
    check_final(subject.cfg, subject.name)  # the recipe may have changed since the notebook's start
    cfg = subject.cfg["final"][subject.name]
    method = method or subject.cfg["final_method"]
    asked, chosen_on = method, None
    if method == "best" and subject.results.get("study"):
        method, why = best_method(subject.results["study"], subject.results.get("study_correct"))
        chosen_on = (f"the study's winner on its probe images ({subject.probe_images()} images of the test split), "
                     f"at its highest sparsity and largest budget")
        print(f"{subject.name:12s} {why}")
    elif method == "best":  # a kernel restarted, or the study's cell skipped: say what stands in
        method = "gradual"
        chosen_on = "no study in this run to take a winner from: gradual stood in"
        print(f"{subject.name:12s} no study in this kernel, so no winner to take: pruning with gradual "
              f"(run the study's cell first to prune with its winner)")
    model, masks, row = prune_and_finetune(subject, method, cfg["sparsity"], cfg["epochs"],
                                           subject.cfg["final_epoch_steps"], eval_loader=subject.test)
    subject.results["final"] = {"model": model, "masks": masks, "row": row, "final_method": asked,
                                "chosen_on": chosen_on}
    frontier = subject.results.pop("frontier", None)
    if frontier is not None and _frontier_holds(frontier, row):
        subject.results["frontier"] = frontier
    elif frontier is not None:  # searched from the model this one replaces
        subject.results["final"]["frontier_dropped"] = True  # nor is the record's copy of it kept
        print(f"{subject.name:12s} the frontier searched from the earlier final model is dropped: run its cell again")
    print(f"{subject.name:12s} {method} to {row['measured_sparsity']:.2%}: {row['accuracy']:.2%} "
          f"(baseline {subject.baseline:.2%}, minimum {AFTER_PRUNING_MIN[subject.name]:.0%}) "
          f"in {row['seconds']:.0f}s")
    return row


ANALYSES = ("sensitivity", "sweep", "study", "frontier")  # what notebook 03 records beside the final model


def _frontier_holds(frontier: dict, row: dict) -> bool:
    """Whether a frontier searched before this final model (``row``) was made still stands: one
    searched from the dense baseline does while the new model also falls short of its threshold
    (the search would start from the dense model again); one searched from a final model does not."""
    return frontier.get("start") == "the dense baseline" and row["accuracy"] < frontier["threshold"]


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal bit for bit: ``torch.equal`` with the sign of a float's zeros (-0.0 == 0.0 for it)."""
    return torch.equal(a, b) and (not a.is_floating_point() or torch.equal(a.signbit(), b.signbit()))


def save_final(s, subject: Subject) -> dict:
    """Save the final model as a compact (sparse) checkpoint with the metrics the report reads;
    check it loads back identical and record its size against a dense one."""
    final = subject.final()
    model, masks, row = final["model"], final["masks"], final["row"]
    report = sparsity_report(model, subject.params(model), masks)
    metrics = {
        "accuracy": row["accuracy"], "original_accuracy": subject.baseline,
        "pruning_percentage": report["pruning_percentage"],
        "parameters": count_parameters(model), "nonzero_parameters": report["all_total"] - report["all_zeros"],
        "sparsity_all_parameters": report["sparsity_all_parameters"],
        "meets_accuracy_minimum": row["accuracy"] >= AFTER_PRUNING_MIN[subject.name],
        "recipe": {"method": row["method"], "sparsity": row["sparsity"], "epochs": row["epochs"],
                   "scope": "global", "criterion": "magnitude",
                   "epoch_steps": subject.cfg["final_epoch_steps"],
                   "finetune": subject.fit_kwargs, "include_first": subject.cfg["include_first"],
                   "include_classifier": subject.cfg["include_classifier"],
                   "final_method": final.get("final_method", subject.cfg["final_method"])},
        "prunable_weights": report["prunable_total"], "pruned_weights": report["prunable_zeros"],
        "layer_sparsity": {n: v["sparsity"] for n, v in report["layers"].items()},
        "finetune_seconds": row["seconds"], "test_images": len(subject.test.labels),
    }
    if final.get("chosen_on"):
        metrics["recipe"]["chosen_on"] = final["chosen_on"]
    # The analyses of this kernel; those it did not run (restarted, cells skipped) are kept from
    # this run's earlier record of the same baseline, not dropped from the metrics. The frontier
    # starts from the final model: kept only when that model was made by the same recipe, or when it
    # started from the dense baseline and still would.
    earlier = _this_runs_record(s, subject)
    kept, dropped = [], []
    for key in ANALYSES:
        if key in subject.results:
            metrics[key] = subject.results[key]
        elif key in earlier and (key != "frontier" or (not final.get("frontier_dropped") and (
                earlier.get("recipe") == as_stored(metrics["recipe"]) or _frontier_holds(earlier[key], row)))):
            metrics[key] = earlier[key]
            kept.append(key)
        elif key in earlier:
            dropped.append(f"{key} (searched from an earlier final model)")
    if "latency" in earlier:
        dropped.append("latency (measured on the earlier model)")
    if kept:
        print(f"{subject.name:12s} kept from this run's earlier record: {', '.join(kept)} (not run in this kernel)")
    if dropped:
        print(f"{subject.name:12s} not kept from this run's earlier record: {', '.join(dropped)}; run its cell again")
    metrics["dense_checkpoint_bytes"] = _dense_bytes(model)
    record = s.save(model, subject.name, STAGE, metrics, sparse=True)
    path = s.dirs.checkpoint(subject.name, STAGE)
    reloaded, _ = load_checkpoint(path)
    ref = model.state_dict()
    exact = all(_same_bits(v.cpu(), ref[k].detach().cpu()) for k, v in reloaded.state_dict().items())
    if not exact:  # no record that reads as a result: notebook 05 would report it as one
        why = "its compact checkpoint did not load back identical"
        s.record_missing(subject.name, STAGE, why)
        path.unlink(missing_ok=True)
        raise AssertionError(f"{subject.name}: {why}; recorded as not produced")
    record = s.add_to_record(subject.name, STAGE, {"reload_exact": exact})
    final["saved_sha256"] = record["checkpoint"]["sha256"]  # which record latency_dense_vs_pruned may add to
    print(f"{subject.name:12s} saved {record['checkpoint']['path']}: "
          f"{record['checkpoint']['bytes'] / 1e6:.2f} MB (dense {metrics['dense_checkpoint_bytes'] / 1e6:.2f} MB), "
          f"{metrics['pruning_percentage']:.2f}% of prunable weights and "
          f"{metrics['sparsity_all_parameters']:.2f}% of all parameters zero; reloads exactly")
    return record


def print_layer_sparsity(subject: Subject) -> None:
    """The final model's sparsity layer by layer, counted from its zeros: where the global
    threshold took the weights."""
    model = subject.final()["model"]
    params = subject.params(model)
    layers = sparsity_report(model, params)["layers"]
    width = max(len(n) for n in layers)
    print(f"{subject.name}: {len(layers)} pruned layers")
    print(f"  {'layer':{width}s}  {'shape':>16s}  {'weights':>9s}  {'zero':>9s}  sparsity")
    for n, v in layers.items():
        shape = "x".join(map(str, params[n].shape))
        print(f"  {n:{width}s}  {shape:>16s}  {v['total']:9,d}  {v['zeros']:9,d}  {v['sparsity']:8.2%}")


def latency_dense_vs_pruned(s, subject: Subject) -> dict:
    """Time per image of the dense baseline and the final pruned model, which holds its zeros in
    dense tensors, at the profile's batch sizes on each device present; recorded in the model's
    metrics (``latency``). Dense kernels multiply the zeros too, so expect no speed-up."""
    final = subject.final()
    record = s.metrics(subject.name, STAGE) or {}
    if (not final.get("saved_sha256") or not record.get("produced")
            or not s.of_this_run(record)
            or (record.get("checkpoint") or {}).get("sha256") != final["saved_sha256"]):
        raise SettingsError(f"{subject.name}: the final model of this kernel is not the one saved in this run's "
                            f"record; run lab.save_final(s, subjects[{subject.name!r}]) first")
    print(f"{subject.name}: dense vs {_pct(final['row']['sparsity'])}-sparse, both stored dense")
    latency = compare_latency(subject.model, final["model"], s.input_size(subject.name), subject.cfg)
    s.add_to_record(subject.name, STAGE, {"latency": latency})
    return latency


def _this_runs_record(s, subject: Subject) -> dict:
    """This run's produced record of ``subject`` pruned from the same baseline, or {}."""
    earlier = s.metrics(subject.name, STAGE) or {}
    before = ((s.metrics(subject.name, "before_pruning") or {}).get("checkpoint") or {}).get("sha256")
    same = (earlier.get("produced") and s.of_this_run(earlier)
            and earlier.get("original_accuracy") == subject.baseline
            and earlier.get("baseline_sha256", before) == before)
    return earlier if same else {}


def _dense_bytes(model: nn.Module) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = save_checkpoint(Path(tmp) / "dense.pth", model)
        return path.stat().st_size


# -- the extra-credit frontier --------------------------------------------------------------------
def frontier_threshold(s, subject: Subject) -> tuple[float, str]:
    """The course's minimum; in reduced profiles, where the small baseline may sit below it,
    the baseline minus ``cfg["frontier"]["drop"]`` if that is lower (said so in the result)."""
    course = AFTER_PRUNING_MIN[subject.name]
    if not s.profile["reduced"]:
        return course, "course minimum"
    relative = subject.baseline - subject.cfg["frontier"]["drop"]
    if relative < course:
        return relative, f"reduced run: baseline {subject.baseline:.2%} minus {100 * subject.cfg['frontier']['drop']:g} points"
    return course, "course minimum"


def frontier(s, subject: Subject) -> dict:
    """Search the highest sparsity that still meets the accuracy threshold.

    Ascending steps, each keeping ``step_keep`` of the remaining weights and fine-tuning (global
    magnitude, masks nested), continue from the last model that passed: from the final model if
    it passes (after a kernel restart, the one this run saved), else from the dense baseline
    (``start`` says which). Recorded in this run's saved metrics when the saved model is the final
    model it started from or fell short of; otherwise kept in the kernel, for ``save_final``. After the first failure, bisection between the last
    pass and the nearest failure, until ``refine`` more trials have failed (or ``max_trials``).
    Accuracy on the whole test split. When nothing meets the threshold, the dense baseline
    included, there is no frontier: ``frontier_sparsity`` is None. ``nearest_failure``: the lowest
    sparsity that failed (the frontier lies between it and ``frontier_sparsity``), None if none did.
    ``cut_short``: every trial passed and the search ran out of trials below ``max_sparsity``, so
    ``frontier_sparsity`` is only a lower bound (said so wherever it is shown). ``at_ceiling``: no
    trial failed up to ``max_sparsity``, where the search stops: a lower bound too, since sparser
    models were not tried (the profiles' ceilings are at or above the cnn's 99.5% goal). Each trial records
    the sparsity and accuracy of the model it started from (``from_sparsity``, ``from_accuracy``).
    """
    cfg = subject.cfg["frontier"]
    threshold, rule = frontier_threshold(s, subject)
    current, start, saved = _frontier_start(s, subject, threshold)
    print(f"{subject.name:12s} frontier starts from {start} ({current[2]:.2%} sparse, {current[3]:.2%})")
    trials, failed = [], None
    # No total: the search stops when it may. Closed however it ends (an interrupt kept a live widget).
    with closing(progress(desc=f"{subject.name} frontier", unit="trial")) as bar:
        for _ in range(cfg["max_trials"]):
            level = current[2]
            if failed is None:
                target = min(1 - (1 - level) * cfg["step_keep"], cfg["max_sparsity"])
            else:
                target = (level + failed) / 2
            if target <= level + 1e-6:
                break
            subject.reseed()
            model = copy.deepcopy(current[0])
            params = subject.params(model)
            masks = one_shot_prune(model, target, "global", params=params, previous=current[1])
            with quiet_progress():
                finetune_masked(model, subject.train, cfg["epochs"], masks, f"{subject.name} frontier {target:.2%}",
                                cfg["epoch_steps"], **subject.fit_kwargs)
            measured = sparsity_report(model, params, masks)["pruning_percentage"] / 100
            acc = evaluate(model, subject.test)["accuracy"]
            passed = acc >= threshold
            trials.append({"from_sparsity": level, "from_accuracy": current[3], "sparsity": measured, "accuracy": acc,
                           "passed": passed})
            bar.update()
            print(f"{subject.name:12s} frontier {level:.2%} -> {measured:.2%}: {acc:.2%} "
                  f"({'meets' if passed else 'below'} {threshold:.2%})")
            if passed:
                current = (model, masks, measured, acc)
            else:
                failed = measured if failed is None else min(failed, measured)
                if len([t for t in trials if not t["passed"]]) > cfg["refine"]:
                    break
            if current[2] >= cfg["max_sparsity"] - 1e-9:
                break
    found = current[3] >= threshold  # False only when the dense start is below it and no trial passed
    if not found:
        print(f"{subject.name:12s} no frontier: the dense baseline ({current[3]:.2%}) is below the threshold "
              f"({threshold:.2%}) and no trial met it")
    # No failure yet below the ceiling: the search stopped for want of trials, not at the frontier.
    cut_short = bool(trials) and failed is None and current[2] < cfg["max_sparsity"] - 1e-9
    at_ceiling = found and failed is None and current[2] >= cfg["max_sparsity"] - 1e-9
    result = {"threshold": threshold, "threshold_rule": rule,
              "frontier_sparsity": current[2] if found else None,
              "frontier_accuracy": current[3] if found else None, "nearest_failure": failed, "cut_short": cut_short,
              "at_ceiling": at_ceiling, "trials": trials, "epochs_per_trial": cfg["epochs"], "epoch_steps": cfg["epoch_steps"], "start": start}
    if note := _bound_note(cut_short, at_ceiling, len(trials)):
        print(f"{subject.name:12s} frontier {_frontier_text(current[2], note)} at {current[3]:.2%}{note}")
    subject.results["frontier"] = result
    if saved:
        s.add_to_record(subject.name, STAGE, {"frontier": result})
    else:  # recorded by save_final with the model it was searched from, never beside another one
        print(f"{subject.name:12s} frontier kept in this kernel: the final model is not saved in this run yet "
              f"(lab.save_final records it with the frontier)")
    return result


def _frontier_text(sparsity: float, bound_note: str) -> str:
    """The frontier's sparsity, "at least ..." where ``_bound_note`` says why it is a lower bound."""
    return ("at least " if bound_note else "") + f"{sparsity:.2%}"


def _bound_note(cut_short: bool, at_ceiling: bool, trials: int) -> str:
    """Why a frontier is only a lower bound, or "" where it is not."""
    if cut_short:
        return f" (the search stopped after its {trials} trials, none failed)"
    if at_ceiling:
        return " (the search's ceiling: sparser was not tried)"  # fits a panel's title, as the note above
    return ""


def _frontier_start(s, subject: Subject, threshold: float) -> tuple[tuple, str, bool]:
    """Where the frontier search starts: ((model, masks, sparsity, accuracy), what it is, whether
    the result belongs in this run's saved record). The final model of this kernel if it meets
    the threshold; after a kernel restart, the one this run saved (a restart started from the dense
    model and wrote a frontier below the saved model's own sparsity into its record); else the
    dense baseline."""
    record = _this_runs_record(s, subject)
    sha = (record.get("checkpoint") or {}).get("sha256")
    final = subject.results.get("final")
    if final:
        saved = sha is not None and final.get("saved_sha256") == sha
        if final["row"]["accuracy"] >= threshold:
            return ((copy.deepcopy(final["model"]), dict(final["masks"]), final["row"]["measured_sparsity"],
                     final["row"]["accuracy"]), "the final model", saved)
    elif record and record["accuracy"] >= threshold:
        subject.reseed()
        model, _ = s.load(subject.name, STAGE)
        masks = {n: p.detach() != 0 for n, p in subject.params(model).items()}
        return ((model, masks, record["pruning_percentage"] / 100, record["accuracy"]),
                "this run's saved final model", True)
    else:
        saved = bool(record)
    model, _ = subject.fresh()
    return (model, None, 0.0, subject.baseline), "the dense baseline", saved


# -- per-layer sparsity at one level, and the summary ------------------------------------------------
def layer_bars_data(subjects: dict[str, Subject], level: float) -> tuple[float, dict]:
    """(``level``, {model: {curve: {layer: sparsity}}}): a copy of each dense model pruned to
    exactly ``level`` with magnitude scores under each scope of the sweep (global, layer-wise and,
    after a sensitivity scan, sensitivity-chosen), sparsity counted from the weights' zeros. Only
    magnitudes are needed, so this costs no evaluation whatever the sweep's levels."""
    out = {}
    for name, subj in subjects.items():
        out[name] = {}
        for label, scope in subj.magnitude_scopes().items():
            model = copy.deepcopy(subj.model)
            params = subj.params(model)
            masks = one_shot_prune(model, level, scope, params=params)
            report = sparsity_report(model, params, masks)
            out[name][f"{label} magnitude"] = {n: v["sparsity"] for n, v in report["layers"].items()}
    return level, out


def recorded(s) -> dict[str, dict]:
    """This run's unstructured-pruning record of each model (``Session.recorded``): another run's
    file in the folder is not taken for this one's."""
    return s.recorded(STAGE, "not pruned in this run yet: run the cells from 'The baselines' "
                             "to 'The final recipe' first")


def summary(s, models: list[str]) -> list[dict]:
    """One row per course model from this run's saved metrics (not produced ones say why)."""
    rows, records = [], recorded(s)
    for name in models:
        m = records.get(name) or {"produced": False, "reason": "not run"}
        if not m.get("produced"):
            rows.append({"model": name, "produced": False, "reason": m.get("reason", "")})
            continue
        f = m.get("frontier", {})
        rows.append({"model": name, "produced": True, "original_accuracy": m["original_accuracy"],
                     "accuracy": m["accuracy"], "pruning_percentage": m["pruning_percentage"],
                     "sparsity_all_parameters": m["sparsity_all_parameters"],
                     "checkpoint_mb": m["checkpoint"]["bytes"] / 1e6,
                     "dense_checkpoint_mb": m["dense_checkpoint_bytes"] / 1e6,
                     "frontier_sparsity": f.get("frontier_sparsity"), "frontier_accuracy": f.get("frontier_accuracy"),
                     "frontier_threshold": f.get("threshold"), "frontier_cut_short": bool(f.get("cut_short")),
                     "frontier_at_ceiling": bool(f.get("at_ceiling")),
                     "frontier_trials": len(f.get("trials", []))})
    for r in rows:
        if not r["produced"]:
            print(f"{r['model']:12s} not produced: {r['reason'].splitlines()[0] if r['reason'] else ''}")
            continue
        # Both False in records written before they were recorded.
        note = _bound_note(r["frontier_cut_short"], r["frontier_at_ceiling"], r["frontier_trials"])
        front = (f"; frontier {_frontier_text(r['frontier_sparsity'], note)} at {r['frontier_accuracy']:.2%} "
                 f"(threshold {r['frontier_threshold']:.2%}){note}"
                 if r["frontier_sparsity"] is not None else "")
        print(f"{r['model']:12s} {r['original_accuracy']:.2%} -> {r['accuracy']:.2%} at "
              f"{r['pruning_percentage']:.2f}% of prunable weights ({r['sparsity_all_parameters']:.2f}% of all), "
              f"checkpoint {r['checkpoint_mb']:.2f} MB vs dense {r['dense_checkpoint_mb']:.2f} MB{front}")
    return rows


# -- figures -------------------------------------------------------------------------------------
def _nothing_to_draw(data: dict) -> bool:
    """True, said in a line, when no model has anything to draw (every baseline missing): the
    figure is skipped, and its cell needs no condition of its own."""
    if not data:
        print("no figure: no model to draw (the lines above, or the baselines' cell, say why)")
    return not data


def _short(layer: str) -> str:
    return layer.removesuffix(".weight").replace("blocks.", "b").replace("layer", "L")


def plot_sensitivity(scans: dict[str, dict], path=None, caption=None):
    """Accuracy lost with each layer pruned alone: one row per layer, one column per sparsity, the
    colour and the number in percentage points below the dense model. A heat map reads at 19
    (ResNet-18) or 48 (ViT) layers, where as many lines and their legend would not."""
    # A model or layer with nothing scanned (no sparsities) has no cells: left out, not a crash.
    scans = {name: scan | {"layers": layers} for name, scan in scans.items()
             if (layers := {k: v for k, v in scan["layers"].items() if len(v)})}
    if _nothing_to_draw(scans):
        return None
    rows = max(len(scan["layers"]) for scan in scans.values())
    fig, axes, _ = panels(len(scans), width=5.2, height=max(3.6, 1.6 + 0.2 * rows))  # 2 a row at most
    lost_of = {name: 100 * (scan["baseline"] - np.array(list(scan["layers"].values()), dtype=float))
               for name, scan in scans.items()}
    # One colour scale for every panel, never below 5 pp: a layer's colour says how much accuracy it
    # costs, not how it ranks within its own model (1 pp, four probe images, drew dark red). NaN
    # (a diverged probe) is left out of it.
    vmax = max([5.0] + [v for lost in lost_of.values() for v in lost[np.isfinite(lost)]])
    for ax, (name, scan) in zip(axes, scans.items()):
        layers, lost = list(scan["layers"]), lost_of[name]
        image = ax.imshow(lost, cmap="Reds", vmin=0, vmax=vmax, aspect="auto")
        if lost.size <= 600:  # numbers stay legible up to the full profile's 48 x 9
            # White text from 0.67 of "Reds" on: there white and black contrast alike (4.6:1).
            for (i, j), v in np.ndenumerate(lost):
                ax.text(j, i, f"{round(v):d}" if np.isfinite(v) else "\u2013", ha="center", va="center",
                        fontsize=6, color="white" if v > 0.67 * image.get_clim()[1] else "black")  # no "-0"
        ax.set_xticks(range(len(scan["sparsities"])), [f"{100 * v:.0f}" for v in scan["sparsities"]])
        ax.set_yticks(range(len(layers)), [_short(layer) for layer in layers], fontsize=7)
        on = f" on {scan['images']:,} probe images" if "images" in scan else ""  # older runs did not record it
        # Two lines: on one, two panels' titles ran into each other and off the figure.
        ax.set(title=f"{name}: each layer pruned alone\n(dense {scan['baseline']:.1%}{on})",
               xlabel="sparsity of that layer (%)")
        fig.colorbar(image, ax=ax, shrink=0.8, label="probe accuracy lost (pp)")
    return finish(fig, path, caption)


# The sweep's curves look the same in both of its figures and in every panel.
SWEEP_STYLES = named_styles(["global magnitude", "layer magnitude", "sensitivity magnitude", "global taylor",
                             "global fisher"])
BAR_HATCHES = ["", "////", "...."]  # a second cue beside colour for the grouped bars


def plot_accuracy_vs_sparsity(sweeps: dict[str, dict], path=None, caption=None):
    """Accuracy after one-shot pruning without fine-tuning, one line per scope/criterion."""
    if _nothing_to_draw(sweeps):
        return None
    fig, axes, _ = panels(len(sweeps))
    for ax, (name, sw) in zip(axes, sweeps.items()):
        for label, accs in sw["accuracy"].items():
            ax.plot([100 * v for v in sw["sparsities"]], [100 * a for a in accs], ms=4, label=label,
                    **style_for(SWEEP_STYLES, label, sw["accuracy"]))
        ax.axhline(100 * sw["baseline"], color="0.3", ls="--", lw=0.8, label="dense")
        ax.axhline(10, color="0.6", ls=":", lw=0.8, label="chance (10 classes)")
        ax.set(title=f"{name}: no fine-tuning", xlabel="sparsity (%)", ylabel="probe accuracy (%)")
        ax.grid(alpha=0.3)
        same = coinciding_curves(sw["accuracy"])
        # Curves drawn on one another show as one: the legend says which, or five entries read as one
        # curve. Non-breaking spaces keep each name on one line.
        ax.legend(fontsize=7, title_fontsize=7,
                  title="\n".join(textwrap.fill("drawn as one: " + " = ".join(n.replace(" ", "\u00a0") for n in group), 40) for group in same) or None)
    return finish(fig, path, caption)


def coinciding_curves(accuracy: dict[str, list[float]]) -> list[list[str]]:
    """Groups of labels whose curves are the same at the plotted resolution (0.1 percentage
    point), in the order they are drawn; a model at chance under every criterion gives one group."""
    groups: dict[tuple, list[str]] = {}
    for label, accs in accuracy.items():
        groups.setdefault(tuple(round(100 * a, 1) for a in accs), []).append(label)
    return [labels for labels in groups.values() if len(labels) > 1]


def layer_bars(curves: dict[str, dict[str, float]], title: str = "", ax=None):
    """Grouped bars: per-layer sparsity for each labelled pruning (e.g. global vs layer-wise)."""
    fig = None
    if ax is None:
        layers = len(next(iter(curves.values())))
        fig, ax = plt.subplots(figsize=(max(6, 0.3 * layers), 3.4))
    width = 0.8 / len(curves)
    for k, (label, layers) in enumerate(curves.items()):
        x = np.arange(len(layers))
        ax.bar(x + (k - (len(curves) - 1) / 2) * width, [100 * v for v in layers.values()], width, label=label,
               color=style_for(SWEEP_STYLES, label, curves)["color"], hatch=BAR_HATCHES[k % len(BAR_HATCHES)], edgecolor="white",
               linewidth=0)
    names = list(next(iter(curves.values())))
    ax.set_xticks(np.arange(len(names)), [_short(n) for n in names], rotation=90, fontsize=6)
    # Headroom above 100% so the legend sits over the bars, not on them.
    ax.set(ylabel="sparsity (%)", title=title, ylim=(0, 118), yticks=range(0, 101, 20))
    ax.legend(fontsize=7, ncol=3, loc="upper left")
    return fig if fig is not None else ax.figure


def plot_layer_sparsity(data: dict[str, dict[str, dict[str, float]]], level: float, path=None, caption=None):
    """Per-layer sparsity at ``level`` overall: global threshold vs uniform vs sensitivity ratios."""
    # Labels and models without layers have no bars: left out (a model of none divided by zero).
    data = {name: kept for name, curves in data.items()
            if (kept := {label: layers for label, layers in curves.items() if layers})}
    if _nothing_to_draw(data):
        return None
    fig, axes = plt.subplots(len(data), 1, figsize=(11, 3.4 * len(data)), squeeze=False)
    for ax, (name, curves) in zip(axes[:, 0], data.items()):
        layer_bars(curves, title=f"{name}: per-layer sparsity at {_pct(level)} overall", ax=ax)
    return finish(fig, path, caption)


def _budget_fill(j: int, budgets: int) -> str:
    """The ``j``-th smallest of ``budgets`` fine-tuning budgets: the largest filled, the smallest
    open, any between half filled (4 halves: ``check_study`` allows no more budgets than
    ``BUDGET_FILLS``, as a fifth between would look like the first)."""
    return "full" if j == budgets - 1 else "none" if j == 0 else BUDGET_FILLS[1 + (j - 1) % 4]


def plot_study(studies: dict[str, list[dict]], baselines: dict[str, float], path=None, caption=None):
    """The course's comparison: accuracy after fine-tuning against sparsity, per method and budget."""
    if _nothing_to_draw(studies):
        return None
    fig, axes, spare = panels(len(studies))
    if not spare:
        fig.set_size_inches(fig.get_size_inches() + (2.2, 0))  # room for one legend beside the panels
    styles = named_styles(["one_shot", "iterative", "gradual"])
    # One look per budget across the panels, whose legend is shared: ranked over every study.
    budgets = sorted({r["epochs"] for rows in studies.values() for r in rows})
    # Each method's slot at a level: 1.2 points, or a fifth of the gap to its nearest level (0.95 beside
    # 0.98: 0.6 points), so a level's points stay nearer it than another level's (at most 0.3 of the
    # gap away), and apart where there is room (0.5 beside 0.9: 1.2 points, one slot for all squeezed them).
    levels = sorted({100 * r["sparsity"] for rows in studies.values() for r in rows})
    slots = {x: min([1.2] + [abs(x - other) / 5 for other in levels if other != x]) for x in levels}
    for ax, (name, rows) in zip(axes, studies.items()):
        for method, style in styles.items():
            for j, e in enumerate(budgets):
                pts = sorted((r["sparsity"], r["accuracy"], *r.get("ci95", (r["accuracy"],) * 2))
                             for r in rows if r["method"] == method and r["epochs"] == e)
                if pts:
                    # Error bars: each point's 95% interval; a shift within them is noise.
                    # Side by side at each sparsity (method, then budget), so no interval hides another.
                    # How many of the level's slots aside: the method's, then the budget's within it.
                    aside = list(styles).index(method) - 1 + (j - (len(budgets) - 1) / 2) / len(budgets)
                    ax.errorbar([100 * p[0] + slots[100 * p[0]] * aside for p in pts], [100 * p[1] for p in pts],
                                yerr=[[100 * (p[1] - p[2]) for p in pts], [100 * (p[3] - p[1]) for p in pts]],
                                ms=5, capsize=2, lw=1, **style, fillstyle=_budget_fill(j, len(budgets)),
                                label=f"{method.replace('_', '-')}, {_budget_text(e, rows)}")
        ax.axhline(100 * baselines[name], color="0.3", ls="--", lw=0.8, label="dense")
        ax.set(title=f"{name}: prune + fine-tune (95% intervals)", xlabel="sparsity (%)",
               ylabel="probe accuracy (%)")
        ax.grid(alpha=0.3)
    # The same styles in every panel: one legend, off the panels, so no error bar is hidden. A key,
    # not a list of series: a method's colour and marker, a budget's fill (3 + 6 entries where
    # 3 x 6 ran past the figure's foot onto the caption).
    methods = {r["method"] for rows in studies.values() for r in rows}
    every_row = [r for rows in studies.values() for r in rows]
    key = [Line2D([], [], color="0.3", ls="--", lw=0.8, label="dense")]
    key += [Line2D([], [], ms=5, lw=1, **style, label=method.replace("_", "-"))
            for method, style in styles.items() if method in methods]
    key += [Line2D([], [], color="0.3", marker="o", ls="none", ms=5, fillstyle=_budget_fill(j, len(budgets)),
                   label=f"fine-tuned {_budget_text(e, every_row)}") for j, e in enumerate(budgets)]
    if spare:
        spare[0].legend(handles=key, fontsize=8, loc="center")
    else:
        axes[-1].legend(handles=key, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return finish(fig, path, caption)


def _epochs_text(epochs: float) -> str:
    """"1 epoch", "0.5 epochs", "3 epochs"."""
    return f"{epochs:g} epoch" + ("" if epochs == 1 else "s")


def _budget_text(epochs: float, rows: list[dict]) -> str:
    """The budget as ``rows`` ran it: "3 ep budget = 12 steps" (a range where rows differ) where they
    record their optimizer steps, as the study's do: reduced profiles cap an epoch at a few steps, and
    "3 epochs" read as 3 passes over the training set; "3 epochs" where they record none."""
    steps = sorted({r["steps"] for r in rows if r["epochs"] == epochs and "steps" in r})
    if not steps:
        return _epochs_text(epochs)
    counts = str(steps[0]) if len(steps) == 1 else f"{steps[0]}-{steps[-1]}"
    return f"{epochs:g} ep budget = {counts} step" + ("" if counts == "1" else "s")


TRIAL_STYLES = {True: {"color": GOOD_COLOR, "marker": "o"}, False: {"color": BAD_COLOR, "marker": "X"}}
START_STYLE = {"color": "0.3", "marker": "s"}  # the model the search started from


def plot_frontier(results: dict[str, dict], path=None, caption=None):
    """The frontier search: the model it started from, each trial's sparsity and accuracy (an arrow
    from the model it started from), the threshold, the winner."""
    if _nothing_to_draw(results):
        return None
    fig, axes, _ = panels(len(results), height=4.6)
    for ax, (name, res) in zip(axes, results.items()):
        if res["trials"]:
            first = res["trials"][0]
            ax.scatter(100 * first["from_sparsity"], 100 * first["from_accuracy"], zorder=3,
                       label=f"start: {res['start']}", **START_STYLE)
        for t in res["trials"]:
            ax.scatter(100 * t["sparsity"], 100 * t["accuracy"], zorder=3, **TRIAL_STYLES[t["passed"]])
            # From the model the trial pruned further (the start, else the last pass), not its own accuracy.
            start = (100 * t["from_sparsity"], 100 * t["from_accuracy"])
            ax.annotate("", (100 * t["sparsity"], 100 * t["accuracy"]), start,
                        arrowprops={"arrowstyle": "->", "color": "0.6", "lw": 0.6})
            ax.update_datalim([start])  # annotations do not widen the axes: keep each arrow inside
        ax.axhline(100 * res["threshold"], color=BAD_COLOR, ls="--", lw=0.8, label=f"threshold ({res['threshold_rule']})")
        # Both False in records written before they were recorded.
        note = _bound_note(bool(res.get("cut_short")), bool(res.get("at_ceiling")), len(res["trials"]))
        title = f"{name}: highest sparsity meeting the threshold"
        if res["frontier_sparsity"] is not None:  # None: not even the dense model met the threshold
            ax.axvline(100 * res["frontier_sparsity"], color=GOOD_COLOR, lw=0.8,
                       label=f"frontier {_frontier_text(res['frontier_sparsity'], note)} at {res['frontier_accuracy']:.2%}")
            # The frontier point itself, so the axes always hold it and every arrow's start.
            ax.scatter(100 * res["frontier_sparsity"], 100 * res["frontier_accuracy"], marker="*", s=120,
                       color=GOOD_COLOR, zorder=4)
            if note:  # a lower bound, not the frontier (on two lines, to fit the panel)
                title = f"{name}: frontier at least {res['frontier_sparsity']:.2%}\n{note.strip()}"
        ax.margins(x=0.1, y=0.15)
        ax.set(title=title, xlabel="sparsity (%)", ylabel="test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.scatter([], [], label="trial that met it", **TRIAL_STYLES[True])  # legend entries for the dots
        ax.scatter([], [], label="trial that fell short", **TRIAL_STYLES[False])
        # Below the axes: trials land anywhere inside them, arrows included (which "best" ignores).
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    return finish(fig, path, caption)


def playground(subjects: dict[str, Subject], probe_images: int = 256, enabled: bool = True):
    """Show the live pruning playground (``labs/playground.py``): pick a model, a criterion, a scope
    and a sparsity; each change prunes a copy of the dense model one-shot and shows its accuracy
    on a fixed probe slice, the |w| histogram with the threshold and the per-layer sparsity.
    Under papermill (the pipeline) it prints one line instead: widgets need a live kernel.
    ``enabled=False`` (the notebook's ``PLAYGROUND``) shows nothing and says so."""
    check_playground(enabled)
    if not enabled:
        print("pruning playground off (PLAYGROUND = False in the parameters cell)")
        return None
    from .playground import show  # imported here: the playground builds on this module

    return show(subjects, probe_images)
