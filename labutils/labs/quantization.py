"""Notebook 06 · quantization: the course's fixed-point study on ResNet-20 (post-training
quantization, quantization-aware fine-tuning, 80% pruning then quantization), the same on the
pruned ResNet-18, the seed study's numbers for comparison, and the figures.

What it teaches: what each bit costs in accuracy, how much fine-tuning with a straight-through
estimator buys back, and that pruning and quantization compose (zeros stay zero). Library pieces:
``quant`` (quantizers, fake quantization, size accounting), ``prune`` (masks and schedules),
``train.fit``.

Accuracies are fractions, as is ``config.prune.sparsity``; ``pruning_percentage`` and
``sparsity_all_parameters`` are percents (of the prunable weights, of every parameter), as in every
record of the course (``prune.sparsity_report``, ``report_details.json``). Every dict keyed by bit
width uses string keys ("4") so it is JSON.
"""
from __future__ import annotations

import copy
import math
import numbers
import time
from contextlib import closing
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from ..accel import memory_format
from ..artifacts import as_stored, write_json
from ..checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from ..data import augmentation_of, fit_arguments
from ..errors import SettingsError
from ..models import build_model, count_parameters
from ..plots import COLORS, FLOAT_COLOR, finish, log_tick_labels, named_styles, panels, style_for
from ..profile_check import check_settings, whole
from ..prune import prunable_parameters, sparsity_report
from ..prune.masks import left_dense
from ..prune.schedules import check_growable, check_scope, iterative_prune, round_targets, steps_budget
from ..quant import FakeQuantizer, QuantSpec, model_size_bits, quantized_copy, quantized_parameters
from ..session import Session
from ..train import evaluate, fit, progress, quiet_progress, seed_everything

# The seed study (ResNet-20 on the full CIFAR-10, fp32 91.51%), as fractions by bit width.
SEED_RESULTS = {
    "fp32": 0.9151,
    "ptq": {"asymmetric": {6: 0.9144, 5: 0.9113, 4: 0.8973, 3: 0.7660, 2: 0.0899},
            "symmetric": {6: 0.9134, 5: 0.9071, 4: 0.8532, 3: 0.7151, 2: 0.1000}},
    "qat": {"asymmetric": {5: 0.9156, 4: 0.9140, 3: 0.9058, 2: 0.8597}},
    "pruned80_qat": {5: 0.9032, 4: 0.8994, 3: 0.8715, 2: 0.3348},
}
# Below this both the seed's and our accuracy are near chance (10%): no "ok" is given there.
NEAR_CHANCE = 0.2
# Beside the course's nine, in a folder of its own: models_saved/ holds exactly those nine files.
BASELINE_FILE = Path("quantization") / "resnet20_baseline.pth"
PRUNED_CNN = ("cnn", "after_unstructured_pruning")


def config(s: Session) -> dict:
    """A copy of the profile's ``quant`` section (the notebook may change it). The notebook's cells
    pass it to the functions below that take ``cfg`` (without one they read the profile), and
    ``write_results`` records it, so an edit reaches the runs and the results file alike."""
    return copy.deepcopy(s.profile["quant"])


def _cfg(s: Session, cfg: dict | None) -> dict:
    return config(s) if cfg is None else check_config(cfg)


def check_config(cfg: dict) -> dict:
    """``cfg`` if its keys are the profile's ``quant`` keys and the values no later check reads
    follow the profile's rules, else a SettingsError before any work: "eval_image" was silently
    ignored, and "refresh_evry" failed in fit after the whole pruning study had run. Other values are
    checked where they are used, and keep an exercise's freedom (half an epoch)."""
    check_settings("quant", cfg, "cfg")
    if isinstance(cfg.get("qat"), dict):
        _check_refresh(cfg["qat"], "cfg['qat']")
    if whole(1, none=True)(_plain(cfg.get("eval_images"))) is not None:
        raise SettingsError("cfg['eval_images'] is a number of test images, a whole number of at least 1, or "
                            f"None for the whole test set: got {cfg['eval_images']!r}")
    names = (cfg.get("prune") or {}).get("qat_variants", [])
    if not (isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names)):
        # A string was read letter by letter: "names ['g', 'l', 'o', ...] not among the variants".
        example = [names] if isinstance(names, str) else ["global_iterative"]
        raise SettingsError(f"cfg['prune']['qat_variants'] is a list of variant names, e.g. {example!r}: "
                            f"got {names!r}")
    return cfg


def _plain(value):
    """numpy's whole numbers as Python's: an exercise may pass np.int64(100), which the code takes."""
    return int(value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value


def _check_refresh(recipe: dict, what: str) -> None:
    """A QAT recipe's ``refresh_every``, by the profile's rule (0 or 2.5 reached the quantizer)."""
    every = recipe.get("refresh_every", 100)
    if whole(1)(_plain(every)) is not None:
        raise SettingsError(f"{what}: refresh_every is a whole number of at least 1 (optimizer steps between "
                            f"clipping-range searches): got {every!r}")


def _check_qat_recipe(recipe: dict, what: str) -> None:
    """A QAT recipe passed by itself, by the profile's QAT rules: a misspelt key failed in fit,
    after the bit widths before it had trained."""
    if isinstance(recipe, dict):
        check_settings("quant", recipe, what, part="qat")
        _check_refresh(recipe, what)


def _made_with(cfg: dict) -> dict:
    """The settings ResNet-20's checkpoint records, as stored (its reuse compares them)."""
    return as_stored({"resnet20": cfg["resnet20"], "train": cfg["train"]})


def _one_length(recipe: dict, what: str) -> None:
    """SettingsError for a recipe that gives both ``steps`` and ``epochs``: steps won and epochs
    were ignored (cfg["qat"] | {"epochs": 3} ran the profile's steps, and the results file recorded
    epochs 3 for them). Checked on the recipe as written, before any per-bit-width value is read."""
    if isinstance(recipe, dict) and recipe.get("steps") is not None and recipe.get("epochs") is not None:
        raise SettingsError(
            f"{what} gives both steps and epochs (steps would win, epochs be ignored): keep one, e.g. "
            f"{{k: v for k, v in recipe.items() if k != 'steps'}} | {{'epochs': 3}} for epochs, or "
            f"{{k: v for k, v in recipe.items() if k != 'epochs'}} | {{'steps': 100}} for steps; got {recipe!r}")


def _steps(recipe: dict, loader, what: str = "a fine-tuning recipe") -> int:
    """A recipe gives either ``steps`` or ``epochs`` (converted with the loader's length)."""
    _one_length(recipe, what)
    steps = recipe.get("steps")
    if steps is not None:
        # int() made 2.7 two steps and True one.
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
            raise SettingsError(f"{what}: steps is a whole number of at least 1: got {steps!r} ({recipe!r})")
        return int(steps)
    epochs = recipe.get("epochs")
    if epochs is None:
        raise SettingsError(f"{what} needs its length, 'steps' or 'epochs': got {recipe!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Real) or not math.isfinite(epochs):
        raise SettingsError(f"{what}: epochs is a number of epochs, such as 2 or 0.5: got {epochs!r} ({recipe!r})")
    n = round(float(epochs) * len(loader))
    if n < 1:  # 0 failed later inside fit, -1 gave -4 steps
        raise SettingsError(f"{what}: epochs={epochs!r} is {n} optimizer steps at {len(loader)} batches an epoch "
                            f"({recipe!r}): give at least {0.5 / len(loader):.2g} epochs, or 'steps'")
    return n


def at_bits(recipe: dict, bits: int) -> dict:
    """The recipe for one bit width: ``steps`` or ``epochs`` may be a dict keyed by bits
    ({"5": 1, "2": 4}), since low bit widths need longer fine-tuning than high ones."""
    out = dict(recipe)
    for key in ("steps", "epochs"):
        if isinstance(out.get(key), dict):
            per_bits = {str(b): v for b, v in out[key].items()}  # {"5": 1} as in the profiles, or {5: 1}
            if str(bits) not in per_bits:
                raise SettingsError(f"the QAT recipe's {key} has no entry for {bits} bits: {out[key]}")
            out[key] = per_bits[str(bits)]
    return out


def _bit_widths(bits, who: str, name: str = "bits") -> list[int]:
    """``bits`` as a list of ints: a non-empty list, tuple, range or 1-D NumPy array of whole
    numbers (as QuantSpec takes them: np.arange's). The message names it ``{who}'s {name}``."""
    one_d_array = isinstance(bits, np.ndarray) and bits.ndim == 1
    if not ((isinstance(bits, (list, tuple, range)) or one_d_array)
            and all(isinstance(b, numbers.Integral) and not isinstance(b, bool) for b in bits)):
        raise SettingsError(f"{who}'s {name} is a list of bit widths, such as [4, 2]: got {bits!r}")
    if len(bits) == 0:  # [] ran nothing and returned empty results without a word
        raise SettingsError(f"{who}'s {name} is empty: give at least one bit width, such as [4, 2]")
    return [int(b) for b in bits]


def _one_method(method, who: str) -> str:
    if not isinstance(method, str):
        raise SettingsError(f"{who} takes one method, a string such as 'asymmetric/channel/mse' "
                            f"(ptq_sweep takes a list of them): got {method!r}")
    return method


def _fit_options(recipe: dict) -> dict:
    """The recipe's ``fit`` arguments (its length and our own keys taken out)."""
    return {k: v for k, v in fit_arguments(recipe).items() if k not in ("steps", "epochs", "refresh_every")}


def _train(model: nn.Module, train, recipe: dict, steps: int, callback=None, desc="fine-tune"):
    """``steps`` optimizer steps of the recipe (ResNet-20's training and every fine-tune), the
    seeds reset first: a cell run twice, or after an exercise, gives the same numbers."""
    seed_everything(train.seed, train)
    return fit(model, train, None, callback=callback, desc=desc, **steps_budget(steps, train), **_fit_options(recipe))


def _acc(model: nn.Module, test) -> float:
    # In full fp32 on every device (no autocast, no TF32): a GPU's bf16 autocast would move a grid's
    # weights (up to a tenth of a step at 6 bits, half a step at 8), TF32 less, and score another
    # model than the one quantized.
    return evaluate(model, test, precision="fp32")["accuracy"]


def zero_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """Keep-masks (weight != 0) of every quantized weight that holds zeros: the pruned entries."""
    return {n: p.detach() != 0 for n, p in quantized_parameters(model).items() if bool((p == 0).any())}


# ----------------------------------------------------------------------------------------
# ResNet-20 baseline
# ----------------------------------------------------------------------------------------
def resnet20_baseline(s: Session, cfg: dict | None = None) -> tuple[nn.Module, dict]:
    """Train ResNet-20 with ``cfg``'s recipe (default: the profile's) and save
    ``models_saved/quantization/resnet20_baseline.pth``. A checkpoint this run already wrote with
    the same recipe is reused (re-running the notebook cell by cell); one of an edited recipe,
    another run's or an unreadable one is trained again."""
    cfg = _cfg(s, cfg)
    path = s.dirs.models / BASELINE_FILE
    made_with = _made_with(cfg)
    if path.is_file():
        try:  # its run and recipe first: a file that will be trained again is not built
            ckpt = read_checkpoint(path)
            this_run = (ckpt.get("meta") or {}).get("run_id") == s.run_id
            if this_run and (ckpt.get("metrics") or {}).get("made_with") == made_with:
                model, ckpt = load_checkpoint(path, s.device)
                print(f"reusing {path.name} from this run: {ckpt['metrics']['accuracy']:.2%}")
                return model, dict(ckpt["metrics"], reused=True)
            if this_run:
                print(f"{path.name} of this run was trained with another recipe than cfg's resnet20 and train now: "
                      f"training again")
        except CheckpointError as err:  # truncated, an older format: it would be replaced anyway
            print(f"{path.name} unreadable ({err}); training again")
    recipe = dict(cfg["train"])
    train, test = s.loaders("cnn", recipe["batch_size"], augmentation_of(recipe))  # its own, not the CNN's
    steps = _steps(recipe, train, "cfg['train'] (ResNet-20's training)")
    seed_everything(s.seed)
    model = build_model("resnet20", **cfg["resnet20"]).to(s.device, memory_format=memory_format(s.device))
    start = time.perf_counter()
    _train(model, train, recipe, steps, desc="resnet20")
    seconds = time.perf_counter() - start
    metrics = {"accuracy": _acc(model, test), "parameters": count_parameters(model),
               "train_seconds": seconds, "test_images": len(test.labels), "reused": False, "made_with": made_with}
    s.check_still_this_run()
    save_checkpoint(path, model, metrics=metrics, meta=s.info)
    print(f"resnet20: {metrics['accuracy']:.2%} on {metrics['test_images']} test images, "
          f"{metrics['parameters']:,} parameters, trained in {seconds:.0f}s -> {path.relative_to(s.dirs.root)}")
    return model, metrics


# ----------------------------------------------------------------------------------------
# Sweeps
# ----------------------------------------------------------------------------------------
def ptq_sweep(model: nn.Module, test, methods: list[str], bits: list[int],
              masks: dict | None = None) -> dict:
    """Post-training quantization: {method: {"accuracy": {bits: acc}, "size_bits": {bits: n}}}."""
    bits, out = _check_ptq(methods, bits), {}
    for method in methods:
        acc, size = {}, {}
        for b in progress(bits, desc=f"PTQ {method}"):
            spec = QuantSpec.parse(method, b)
            q = quantized_copy(model, spec, masks)
            acc[str(b)], size[str(b)] = _acc(q, test), model_size_bits(q, spec)["total_bits"]
        out[method] = {"accuracy": acc, "size_bits": size}
        print(f"PTQ {method:28s} " + "  ".join(f"{b}b {a:.2%}" for b, a in acc.items()))
    return out


def _check_ptq(methods: list[str], bits, who: str = "ptq_sweep", names: tuple[str, str] = ("methods", "bits")) -> list[int]:
    """Every method and bit width of a PTQ sweep, before the first one is evaluated: a typo in the
    last one threw the others' work away. Returns the bit widths as ints. The messages name them
    ``{who}'s {names[0]}`` and ``{who}'s {names[1]}``."""
    if not (isinstance(methods, (list, tuple)) and all(isinstance(m, str) for m in methods)):  # a string: its letters
        raise SettingsError(f"{who}'s {names[0]} is a list of strings, such as ['asymmetric/channel/mse']: "
                            f"got {methods!r}")
    if not methods:  # [] returned an empty sweep without a word
        raise SettingsError(f"{who}'s {names[0]} is empty: give at least one method, such as ['asymmetric/channel/mse']")
    bits = _bit_widths(bits, who, names[1])
    for method in methods:
        for b in bits:
            QuantSpec.parse(method, b)
    return bits


def _check_qat(method: str, bits: list[int], recipe: dict, train, what: str) -> None:
    """Every bit width's grid and fine-tuning length, and the recipe's keys, before the first one trains."""
    _check_qat_recipe(recipe, what)
    _one_length(recipe, what)
    for b in bits:
        QuantSpec.parse(method, b)
        _steps(at_bits(recipe, b), train, f"{what} at {b} bits")


def qat(model: nn.Module, train, test, spec: QuantSpec, recipe: dict,
        masks: dict | None = None) -> tuple[nn.Module, float]:
    """Quantization-aware fine-tuning of a copy of ``model``: (quantized copy, test accuracy)."""
    q = copy.deepcopy(model)
    fq = FakeQuantizer(q, spec, masks, refresh_every=recipe.get("refresh_every", 100))
    _train(q, train, recipe, _steps(recipe, train), callback=fq, desc=f"QAT {spec.bits}b")
    fq.finish()
    return q, _acc(q, test)


def qat_sweep(model: nn.Module, train, test, method: str, bits: list[int], recipe: dict,
              masks: dict | None = None) -> dict:
    """{"method", "accuracy": {bits: acc}, "size_bits": {bits: n}, "zeros_kept": bool}."""
    method, bits = _one_method(method, "qat_sweep"), _bit_widths(bits, "qat_sweep")
    _check_qat(method, bits, recipe, train, "qat_sweep's recipe")
    acc, size, kept = {}, {}, True
    for b in bits:
        spec = QuantSpec.parse(method, b)
        q, acc[str(b)] = qat(model, train, test, spec, at_bits(recipe, b), masks)
        size[str(b)] = model_size_bits(q, spec)["total_bits"]
        if masks:
            params = quantized_parameters(q)
            kept &= all(bool((params[n][~m.to(params[n].device)] == 0).all()) for n, m in masks.items())
    print(f"QAT {method:28s} " + "  ".join(f"{b}b {a:.2%}" for b, a in acc.items()))
    return {"method": method, "accuracy": acc, "size_bits": size,
            **({"zeros_kept": kept} if masks else {})}


def float_control(model: nn.Module, train, test, bits: list[int], recipe: dict) -> dict:
    """The control for QAT: the same fine-tune (recipe, steps and seeds of each bit width) of a
    float copy, with no quantization. QAT's accuracy mixes recovering from rounding with plain
    extra training; this measures the second alone. One fit per distinct length.
    {"accuracy": {bits: acc}, "steps": {bits: n}}."""
    acc, by_steps = {}, {}
    bits = _bit_widths(bits, "float_control")
    _check_qat_recipe(recipe, "float_control's recipe")
    _one_length(recipe, "float_control's recipe")
    # Every width's length first: one missing from a per-bits dict failed after the others trained.
    steps = {str(b): _steps(at_bits(recipe, b), train, f"float_control's recipe at {b} bits") for b in bits}
    for b in bits:
        r, n = at_bits(recipe, b), steps[str(b)]
        if n not in by_steps:
            f = copy.deepcopy(model)
            _train(f, train, r, n, desc=f"float {n} steps")
            by_steps[n] = _acc(f, test)
        acc[str(b)] = by_steps[n]
    print("fp32 control, QAT's fine-tune without quantization: "
          + "  ".join(f"{b}b {a:.2%}" for b, a in acc.items()))
    return {"accuracy": acc, "steps": steps}


def print_qat_against_control(qat: dict, control: dict) -> None:
    """What quantization itself costs at each width once the extra training is accounted for."""
    for b, a in qat["accuracy"].items():
        c = control["accuracy"][b]
        print(f"{b}b: QAT {a:.2%}, float with the same fine-tune {c:.2%}: the grid costs {100 * (c - a):+.2f} pp")


# ----------------------------------------------------------------------------------------
# Pruning then quantization
# ----------------------------------------------------------------------------------------
def prune(model: nn.Module, train, sparsity: float, scope: str, rounds: int, recipe: dict):
    """Magnitude pruning of a copy to ``sparsity`` of the prunable weights in ``rounds`` rounds
    (1 = one-shot) with ``labutils.prune.schedules.iterative_prune``: each round prunes, then
    fine-tunes with the mask enforced. The total fine-tuning is the same whatever the rounds.
    Returns (pruned copy, masks)."""
    round_targets(sparsity, rounds)  # rounds=0 divided by zero below
    model = copy.deepcopy(model)
    seed_everything(train.seed, train)  # as _train: the same numbers whatever ran before
    epochs_per_round = _steps(recipe, train, "cfg['prune']['finetune']") / rounds / len(train)
    masks, _ = iterative_prune(model, train, None, sparsity, rounds, epochs_per_round, scope,
                               desc=f"{scope} prune", **_fit_options(recipe))
    return model, masks


def _check_pruning_study(cfg: dict, train) -> None:
    """SettingsError for any variant, bit width or recipe the study would fail on, before the first
    variant prunes and fine-tunes: a bad last variant threw away the others' work."""
    check_config(cfg)
    p = cfg["prune"]
    # variants={} returned an empty study, and the figure's pruning panel then failed (StopIteration).
    if not isinstance(p["variants"], dict) or not p["variants"]:
        raise SettingsError(f"cfg['prune']['variants'] is a dict of at least one pruning variant, such as "
                            f"{{'global_iterative': {{'scope': 'global', 'rounds': 3}}}}: got {p['variants']!r}")
    for name, variant in p["variants"].items():
        where = f"cfg['prune']['variants'][{name!r}]"
        if not isinstance(variant, dict) or {"scope", "rounds"} - set(variant):
            raise SettingsError(f"{where} is a dict with 'scope' and 'rounds', such as "
                                f"{{'scope': 'global', 'rounds': 3}}: got {variant!r}")
        try:
            check_scope(variant["scope"])
            check_growable(variant["scope"], "iterative")
            round_targets(p["sparsity"], variant["rounds"])
        except ValueError as err:
            raise SettingsError(f"{where}: {err}") from err
    unknown = [n for n in p["qat_variants"] if n not in p["variants"]]
    if unknown:  # a misspelt name skipped its QAT without a word
        raise SettingsError(f"cfg['prune']['qat_variants'] names {unknown}, not among the variants "
                            f"{list(p['variants'])}")
    _steps(p["finetune"], train, "cfg['prune']['finetune']")
    bits = _bit_widths(p["bits"], "cfg['prune']")
    if p["qat_variants"]:
        _check_qat(cfg["qat_method"], bits, cfg["qat"], train, "cfg['qat'] (the pruned models' QAT)")
    for b in bits:
        QuantSpec.parse(cfg["qat_method"], b)


def pruning_study(model: nn.Module, train, test, cfg: dict) -> dict:
    """For each pruning variant: prune + fine-tune (float), then PTQ and QAT at each bit width.
    A record's ``pruning_percentage`` and ``sparsity_all_parameters`` are percents."""
    _check_pruning_study(cfg, train)
    p = cfg["prune"]
    out = {}
    # One bar for the study and its printed lines; the fits and sweeps inside show no bar of their own.
    with closing(progress(total=len(p["variants"]), desc="pruning study", unit="variant")) as bar:
        for name, variant in p["variants"].items():
            start = time.perf_counter()
            with quiet_progress():
                pruned, masks = prune(model, train, p["sparsity"], variant["scope"], variant["rounds"], p["finetune"])
            report = sparsity_report(pruned, prunable_parameters(pruned), masks)
            record = {"scope": variant["scope"], "rounds": variant["rounds"], "accuracy": _acc(pruned, test),
                      "pruning_percentage": report["pruning_percentage"],
                      "sparsity_all_parameters": report["sparsity_all_parameters"],
                      "size_bits_fp32": model_size_bits(pruned)["total_bits"]}
            print(f"{name}: {record['pruning_percentage']:.1f}% pruned, float {record['accuracy']:.2%}")
            with quiet_progress():
                record["ptq"] = ptq_sweep(pruned, test, [cfg["qat_method"]], p["bits"], masks)[cfg["qat_method"]]
                if name in p["qat_variants"]:
                    record["qat"] = qat_sweep(pruned, train, test, cfg["qat_method"], p["bits"], cfg["qat"], masks)
            record["seconds"] = time.perf_counter() - start
            out[name] = record
            bar.update()
    return out


def loaders(s: Session, cfg: dict | None = None):
    """(train, test) loaders for the study; the test set is cut to ``cfg``'s (default: the
    profile's) ``eval_images`` (class-balanced) when set, since every sweep point is an evaluation."""
    cfg = _cfg(s, cfg)
    train, test = s.loaders("cnn", cfg["train"]["batch_size"], augmentation_of(cfg["train"]))
    n = cfg.get("eval_images")
    if n and n < len(test.labels):
        test = s.test_subset_loader(n, test.batch_size, test.size)
    return train, test


class Results(dict):
    """Notebook 06's ``r20``: a cell that reads a part no cell has filled in yet (after a restart,
    or out of order) says which cell fills it, not a bare KeyError."""

    FILLED_BY = {"ptq": "Post-training quantization", "qat": "Quantization-aware fine-tuning",
                 "qat_control": "A control: the same fine-tune without quantization",
                 "pruning": "80% pruning, then quantization"}

    def __missing__(self, key):
        if key in self.FILLED_BY:
            raise SettingsError(f"r20 has no {key!r} results in this kernel yet: run the cell under "
                                f"'{self.FILLED_BY[key]}' first")
        raise KeyError(key)


def start_results(model: nn.Module, baseline: dict, test) -> Results:
    """The ResNet-20 results dict the sweeps fill in: fp32 accuracy on the sweeps' test images
    (``baseline["accuracy"]`` is on the whole test set) and size."""
    return Results(fp32_accuracy=_acc(model, test), test_images=len(test.labels), baseline=baseline,
                   size_bits_fp32=model_size_bits(model)["total_bits"])


def _pruned_cnn_missing(s: Session) -> str | None:
    """Why notebook 03's pruned ResNet-18 cannot be studied, or None when it can."""
    name = "_".join(PRUNED_CNN)
    m = s.metrics(*PRUNED_CNN)
    run_models = s.pipeline_summary().get("models")
    if run_models and "cnn" not in run_models and not s.of_this_run(m):
        # Notebook 03 prunes the run's models only: "run notebook 03 first" would never help.
        return (f"this run's models ({', '.join(run_models)}) leave out cnn: start a run that includes cnn "
                f"to quantize the pruned ResNet-18")
    if not m:
        return f"notebook 03 has not written {name} (no metrics/{name}.json): run notebook 03 first"
    if not s.of_this_run(m):
        return (f"notebook 03 has not written {name} in this run (metrics/{name}.json is from run "
                f"{(m.get('run') or {}).get('run_id')}): run notebook 03 in this run first")
    if not m.get("produced"):
        return m.get("reason") or f"notebook 03 recorded {name} as not produced in this run"
    path = s.dirs.checkpoint(*PRUNED_CNN)
    if not path.is_file():
        return (f"notebook 03 produced {name} in this run, but its checkpoint "
                f"{path.relative_to(s.dirs.root)} is missing: run notebook 03 again")
    if not s.available(*PRUNED_CNN):  # a condition of the Session's own beyond the above
        return f"notebook 03's {name} is not available in this run"
    return None


def pruned_cnn_study(s: Session, cfg: dict | None = None) -> dict:
    """PTQ and QAT of notebook 03's pruned ResNet-18 with its zeros kept, with ``cfg``'s settings
    (default: the profile's); skipped, saying why, when this run has none."""
    cfg = _cfg(s, cfg)
    reason = _pruned_cnn_missing(s)
    if not reason:
        try:
            model, ckpt = s.load(*PRUNED_CNN)
        except (CheckpointError, FileNotFoundError) as err:  # cut short, say: the ResNet-20 results still get written
            path = s.dirs.checkpoint(*PRUNED_CNN).relative_to(s.dirs.root)
            reason = f"notebook 03's checkpoint {path} cannot be loaded ({err}): run notebook 03 again"
    if reason:
        print(f"pruned ResNet-18 section skipped: {reason}")
        return {"skipped": True, "reason": reason}
    masks = zero_masks(model)
    train, test = s.loaders("cnn", s.train_config("cnn")["batch_size"])
    # Every PTQ and QAT point before the first evaluation: cnn_qat_bits = [1] failed only after the
    # whole PTQ sweep had run.
    _check_ptq(cfg["ptq_methods"], cfg["ptq_bits"], "cfg", ("ptq_methods", "ptq_bits"))
    qat_method = _one_method(cfg["qat_method"], "cfg's qat_method")
    _check_qat(qat_method, _bit_widths(cfg["cnn_qat_bits"], "cfg", "cnn_qat_bits"), cfg["qat"], train,
               "cfg['qat'] (the pruned ResNet-18's QAT)")
    test = loaders(s, cfg)[1] if cfg.get("eval_images") else test
    before = sparsity_report(model, quantized_parameters(model))
    out = {"accuracy": _acc(model, test), "test_images": len(test.labels), "recorded_accuracy": ckpt["metrics"].get("accuracy"),
           "zeros": before["prunable_zeros"], "weights": before["prunable_total"],
           "size_bits_fp32": model_size_bits(model)["total_bits"]}
    recorded, dense = ckpt["metrics"], left_dense((s.metrics(*PRUNED_CNN) or {}).get("recipe", {}))
    print(f"pruned ResNet-18: {out['accuracy']:.2%} on {out['test_images']:,} test images (notebook 03: "
          f"{recorded.get('accuracy', float('nan')):.2%} on {recorded.get('test_images', 0):,}); "
          f"{out['zeros'] / out['weights']:.1%} of all its conv/linear weights zero"
          + (f" (notebook 03's {recorded.get('pruning_percentage', float('nan')):.1f}% leaves out the dense "
             f"{' and '.join(dense)})" if dense else ""))
    out["ptq"] = ptq_sweep(model, test, cfg["ptq_methods"], cfg["ptq_bits"], masks)
    out["qat"] = qat_sweep(model, train, test, cfg["qat_method"], cfg["cnn_qat_bits"], cfg["qat"], masks)
    return out


# ----------------------------------------------------------------------------------------
# Comparison, results file, figures
# ----------------------------------------------------------------------------------------
def _best(methods: dict, scheme: str, bits: int) -> tuple[str | None, float | None]:
    scored = [(r["accuracy"][str(bits)], m) for m, r in methods.items()
              if m.startswith(scheme) and str(bits) in r["accuracy"]]
    return (max(scored)[1], max(scored)[0]) if scored else (None, None)


def comparison(r20: dict) -> list[dict]:
    """Each seed row next to our best matching number: same scheme, bits and fine-tuning, the best
    over our calibration methods of that scheme (named in ``ours_from``)."""
    rows = []

    def add(row, seed, ours, how):
        if ours is not None:
            rows.append({"row": row, "seed": seed, "ours": ours, "ours_from": how,
                         "delta": ours - seed, "matches_or_beats": ours >= seed,
                         # Each model's loss from its own fp32: comparable where the fp32s differ.
                         "seed_drop": SEED_RESULTS["fp32"] - seed, "ours_drop": r20["fp32_accuracy"] - ours,
                         "near_chance": max(seed, ours) < NEAR_CHANCE})

    add("fp32", SEED_RESULTS["fp32"], r20["fp32_accuracy"], "resnet20 baseline")
    for scheme, by_bits in SEED_RESULTS["ptq"].items():
        for b, seed in by_bits.items():
            method, acc = _best(r20["ptq"], scheme, b)
            add(f"PTQ {scheme} {b}b", seed, acc, method)
    # The seed's QAT rows are asymmetric, its pruned ones at 80%: a profile that changes qat_method
    # or the sparsity has no number to set beside them (its own rows stay in the results).
    if not r20["qat"]["method"].startswith("asymmetric"):
        return rows
    for b, seed in SEED_RESULTS["qat"]["asymmetric"].items():
        add(f"QAT asymmetric {b}b", seed, r20["qat"]["accuracy"].get(str(b)), r20["qat"]["method"])
    for b, seed in SEED_RESULTS["pruned80_qat"].items():
        scored = [(v["qat"]["accuracy"][str(b)], n) for n, v in r20["pruning"].items()
                  if "qat" in v and str(b) in v["qat"]["accuracy"] and abs(v["pruning_percentage"] - 80) < 0.5]
        if scored:
            add(f"pruned 80% + QAT {b}b", seed, max(scored)[0], max(scored)[1])
    return rows


def print_comparison(rows: list[dict], reduced: bool) -> None:
    if reduced:
        print("reduced run: smaller data, model and training than the seed study, so the "
              "comparison only shows the workflow")
    print("ok: ours at least the seed's; ~: both near chance (10 classes), where neither means much. "
          "Lost: points below each study's own fp32, comparable where the two fp32s differ.")
    print(f"   {'':24s} {'seed':>7s} {'ours':>7s} {'diff':>7s} {'lost: seed':>11s} {'ours':>6s}  ours from")
    for r in rows:
        mark = "~  " if r["near_chance"] else "ok " if r["matches_or_beats"] else "   "
        lost = f"{'':11s} {'':6s}" if r["row"] == "fp32" else f"{100 * r['seed_drop']:11.2f} {100 * r['ours_drop']:6.2f}"
        print(f"{mark}{r['row']:24s} {r['seed']:7.2%} {r['ours']:7.2%} {100 * r['delta']:+7.2f} {lost}  {r['ours_from']}")
    print("(diff and lost in percentage points)")


def seed_table() -> dict:
    """SEED_RESULTS with string keys (for JSON)."""
    def conv(v):
        return {str(k): conv(x) for k, x in v.items()} if isinstance(v, dict) else v
    return conv(SEED_RESULTS)


def write_results(s: Session, r20: dict, cnn: dict, cfg: dict | None = None) -> dict:
    """``metrics/quantization.json``: run info, the settings the notebook ran with (``cfg``;
    default: the profile's section), seed table, results, comparison."""
    s.check_still_this_run()
    cfg = _cfg(s, cfg)
    made_with = (r20.get("baseline") or {}).get("made_with")
    if made_with and made_with != _made_with(cfg):
        print("note: ResNet-20 was trained with other resnet20/train settings than cfg's (the file keeps both: "
              "resnet20.baseline.made_with); lab.resnet20_baseline(s, cfg) trains it with cfg's")
    payload = {"run": s.info, "config": cfg, "seed_study": seed_table(), "resnet20": r20,
               "cnn_after_unstructured_pruning": cnn, "comparison_with_seed": comparison(r20)}
    path = write_json(s.dirs.metrics / "quantization.json", payload)
    print(f"wrote {path.relative_to(s.dirs.root)}")
    return payload


def _line(ax, by_bits: dict, **kw):
    bits = sorted(int(b) for b in by_bits)
    ax.plot(bits, [100 * by_bits[str(b)] if str(b) in by_bits else 100 * by_bits[b] for b in bits], **kw)


# The pruning variants' keys as the figures name them.
VARIANT_NAMES = {"layer_one_shot": "layer-wise one-shot", "layer_iterative": "layer-wise iterative",
                 "global_iterative": "global iterative"}
# One style per PTQ method, per pruning variant, and for QAT, in every figure of the notebook;
# reddish purple is float: the fp32 lines and the control.
PTQ_STYLES = named_styles(["symmetric/tensor/minmax", "asymmetric/tensor/minmax", "symmetric/channel/mse",
                           "asymmetric/channel/mse"])
VARIANT_STYLES = named_styles(VARIANT_NAMES)
QAT_STYLE = {"color": COLORS[4], "marker": "s", "ls": "-", "lw": 2}
CONTROL_STYLE = {"color": FLOAT_COLOR, "marker": "^", "ls": "--"}


def _style(styles: dict, name: str, names, **changes) -> dict:
    return dict(style_for(styles, name, names), **changes)


def _bits_axis(ax, *records):
    """Ticks at the bit widths measured (every profile stops at 6: 7 and 8 were empty columns)."""
    bits = sorted({int(b) for rec in records for b in rec})
    ax.set_xticks(range(bits[0], bits[-1] + 1))


def plot_bits(r20: dict, path=None, caption=None):
    """Accuracy vs bits: PTQ methods, QAT, pruned + quantized; the seed's numbers dashed black."""
    # Two panels a row (three made it 15 in wide, halved in a notebook), one accuracy scale.
    fig, axes, _ = panels(3, height=4.2)
    for ax in axes[1:]:
        ax.sharey(axes[0])
    seed = SEED_RESULTS
    ax = axes[0]
    for method, r in r20["ptq"].items():
        _line(ax, r["accuracy"], label=method, **_style(PTQ_STYLES, method, r20["ptq"]))
    for scheme, ls in (("asymmetric", "--"), ("symmetric", ":")):
        _line(ax, seed["ptq"][scheme], ls=ls, color="k", marker="x", label=f"seed {scheme}")
    ax.set_title("post-training quantization (no fine-tuning)")
    ax = axes[1]
    method = r20["qat"]["method"]
    _line(ax, r20["ptq"].get(method, {"accuracy": {}})["accuracy"] or {}, label=f"PTQ {method}",
          **_style(PTQ_STYLES, method, [*r20["ptq"], method]))
    _line(ax, r20["qat"]["accuracy"], label=f"QAT {method}", **QAT_STYLE)
    if "qat_control" in r20:  # runs before this control was added lack it
        _line(ax, r20["qat_control"]["accuracy"], label="fp32, same fine-tune (control)", **CONTROL_STYLE)
    _line(ax, seed["qat"]["asymmetric"], ls="--", color="k", marker="x", label="seed asymmetric QAT")
    ax.set_title("quantization-aware fine-tuning")
    ax = axes[2]
    for name, v in r20["pruning"].items():
        _line(ax, v["ptq"]["accuracy"], label=f"{VARIANT_NAMES.get(name, name)} + PTQ",
              **_style(VARIANT_STYLES, name, r20["pruning"], ls=":", mfc="white"))  # open markers, dotted: no fine-tuning
        if "qat" in v:
            _line(ax, v["qat"]["accuracy"], label=f"{VARIANT_NAMES.get(name, name)} + QAT",
                  **_style(VARIANT_STYLES, name, r20["pruning"], ls="-", lw=2))
    _line(ax, seed["pruned80_qat"], ls="--", color="k", marker="x", label="seed pruned 80% + QAT")
    ax.set_title(f"{next(iter(r20['pruning'].values()))['pruning_percentage']:.0f}% pruned, then quantized")
    for ax in axes:
        ax.axhline(100 * r20["fp32_accuracy"], color=FLOAT_COLOR, lw=1, label="our fp32")
        ax.axhline(100 * seed["fp32"], color="k", lw=0.6, ls="-.", label="seed fp32")
        ax.set(xlabel="weight bits")
        _bits_axis(ax, *(r["accuracy"] for r in r20["ptq"].values()), r20["qat"]["accuracy"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.set_ylabel("test accuracy (%)")
    return finish(fig, path, caption)


def plot_size(r20: dict, path=None, caption=None):
    """Accuracy vs storage (kilobytes: values x bits + sparse index + scales + float BN)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))

    def pts(rec, **kw):
        bits = sorted(rec["accuracy"], key=int)
        ax.plot([rec["size_bits"][b] / 8000 for b in bits], [100 * rec["accuracy"][b] for b in bits], **kw)
        for b in bits:
            ax.annotate(f"{b}b", (rec["size_bits"][b] / 8000, 100 * rec["accuracy"][b]), fontsize=6,
                        xytext=(2, 2), textcoords="offset points")

    ax.plot([r20["size_bits_fp32"] / 8000], [100 * r20["fp32_accuracy"]], "k*", ms=10, label="fp32 dense")
    pts(r20["qat"], label="dense + QAT", **QAT_STYLE)
    for name, v in r20["pruning"].items():
        pts(v.get("qat", v["ptq"]), label=f"{VARIANT_NAMES.get(name, name)} + {'QAT' if 'qat' in v else 'PTQ'}",
            **_style(VARIANT_STYLES, name, r20["pruning"]))
    ax.set(xscale="log", xlabel="model size (kB, log scale)", ylabel="test accuracy (%)",
           title="ResNet-20: accuracy vs storage")
    log_tick_labels(ax.xaxis)  # plain numbers, at least two whatever the sizes' range
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return finish(fig, path, caption)


def plot_cnn(cnn: dict, path=None, caption=None):
    """Pruned ResNet-18: PTQ per method and QAT vs bits. A skipped study (``pruned_cnn_study``: no
    pruned CNN in this run) draws nothing, removes an earlier execution's figure at ``path`` (it
    would stand beside results that say "skipped") and returns None."""
    if cnn.get("skipped"):
        old = path is not None and Path(path).is_file()
        if path is not None:
            Path(path).unlink(missing_ok=True)
        print("no figure: the pruned ResNet-18 section was skipped (the line above says why)"
              + (f"; removed the earlier {Path(path).name}" if old else ""))
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for method, r in cnn["ptq"].items():
        _line(ax, r["accuracy"], label=f"PTQ {method}", **_style(PTQ_STYLES, method, cnn["ptq"]))
    _line(ax, cnn["qat"]["accuracy"], label=f"QAT {cnn['qat']['method']}", **QAT_STYLE)
    ax.axhline(100 * cnn["accuracy"], color=FLOAT_COLOR, lw=1, label="pruned, float")
    _bits_axis(ax, *(r["accuracy"] for r in cnn["ptq"].values()), cnn["qat"]["accuracy"])
    ax.set(xlabel="weight bits", ylabel="test accuracy (%)",
           title=f"pruned ResNet-18 ({100 * cnn['zeros'] / cnn['weights']:.0f}% of weights zero), quantized")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return finish(fig, path, caption)
