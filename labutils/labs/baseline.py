"""Notebook 02 · baseline training: train (or fine-tune) each course model and save it as
``models_saved/<model>_before_pruning.pth``, then draw the learning curves.

What it teaches: a pruning experiment is only as good as its dense starting point, and each model
family needs its own recipe (one-cycle SGD for the ResNet, AdamW with Mixup/CutMix for a ViT from
scratch). Library pieces: ``Session`` (data, models, checkpoints), ``train.fit`` (the training loop),
``profiles`` (the recipes).
"""
from __future__ import annotations

import inspect
import math
import numbers
import time

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from ..course import BEFORE_PRUNING_MIN, CIFAR10_IMAGES
from ..data import AUGMENTATION, augmentation_of, fit_arguments
from ..errors import SettingsError, TrainingDiverged
from ..models import PretrainedWeightsUnavailable, build_model, check_vit_weights, count_parameters
from ..plots import MODEL_STYLES, finish, minimum_line, style_for
from ..profile_check import recipe_problems
from ..profiles import format_settings
from ..session import Session
from ..train import fit, seed_everything


def _train(session: Session, name: str, model, recipe: dict, desc: str, stop_if_diverged: bool = False):
    """``model`` trained with ``recipe`` (batch size, augmentation and ``fit``'s arguments) on the
    session's data: (history, test loader, seconds: the wall time, the per-epoch scoring of the test
    split included). The baseline and ``try_recipe`` share it; the baseline stops a diverged run
    (``stop_if_diverged``: its record could not be saved anyway, after the whole run), where a
    tried recipe's history is shown, diverged or not."""
    train, test = session.loaders(name, recipe["batch_size"], augmentation_of(recipe))
    start = time.perf_counter()
    history = fit(model, train, test, device=session.device, desc=desc, stop_if_diverged=stop_if_diverged,
                  **fit_arguments(recipe))
    return history, test, time.perf_counter() - start


def check_weights(vit_weights: str, models) -> None:
    """A VIT_WEIGHTS file checked where the notebook starts (``models.check_vit_weights``), not
    when the ViT's turn comes after the CNN has trained; checked even when MODELS leaves out
    "vit", as --vit-weights is: a typo would otherwise wait for the day "vit" is added."""
    if vit_weights and (untrained := check_vit_weights(vit_weights)) and "vit" in models:
        print(f"warning: VIT_WEIGHTS {untrained}")


def train_baseline(session: Session, name: str, pretrained_weights: str | None = None) -> dict:
    """Train ``name`` with the profile's recipe, save checkpoint + metrics, return the metrics.

    If the pretrained ViT weights cannot be had from timm's hub, nothing is trained under the name
    ``vit``: the metrics record says it was not produced, and why. A weights file given by name that
    fails is an error (a typo in VIT_WEIGHTS is fixed, not recorded), as on the command line.
    """
    try:
        model = session.new_model(name, pretrained_weights)
    except PretrainedWeightsUnavailable as err:
        if pretrained_weights:
            raise
        print(f"'{name}' NOT PRODUCED: {err}")
        return session.record_missing(name, "before_pruning", str(err))
    try:
        history, test, seconds = _train(session, name, model, session.train_config(name), desc=name,
                                        stop_if_diverged=True)
    except TrainingDiverged as err:
        # Notebook 02 trains MODELS in one loop: those after this one were skipped without a word.
        later = session.models[session.models.index(name) + 1:] if name in session.models else []
        skipped = f"; {', '.join(later)}, after it in MODELS, not trained yet" if later else ""
        raise TrainingDiverged(f"{err}: nothing saved for {name}{skipped}") from None
    final = history[-1]  # fit evaluates the test split after the last epoch
    record = session.save(model, name, "before_pruning", {
        "accuracy": final["test_accuracy"], "test_loss": final["test_loss"], "test_images": len(test.labels),
        # train_seconds: the training steps alone, as in each epoch of the history (images_per_second's
        # time); seconds: the wall time, the per-epoch scoring of the test split included.
        "parameters": count_parameters(model), "train_seconds": sum(h["train_seconds"] for h in history),
        "seconds": seconds,
        "images_per_second": sum(h["images"] for h in history) / sum(h["train_seconds"] for h in history),
        # ran: the speed modes that ran; train_config's compile and graphs are those asked (either
        # falls back to eager with a warning alone, and images_per_second is the eager speed then).
        "train_config": effective_recipe(session.train_config(name)), "ran": final["ran"],
        "arch": model.arch, "history": history,
        "initial_weights": getattr(model, "initial_weights", f"random (seed {session.seed})")})
    print(f"{name}: test accuracy {record['accuracy']:.2%} on {record['test_images']} images{_train_accuracy(history)} "
          f"after {len(history)} epoch{'s' * (len(history) != 1)} in {seconds:.0f}s -> {record['checkpoint']['path']}")
    if hasattr(model, "initial_weights"):
        print(f"{name}: started from {model.initial_weights}")
    return record


def _train_accuracy(history: list[dict]) -> str:
    """The last epoch's accuracy on the (augmented) training images, to set beside the test's: the
    gap is overfitting. None is measured under Mixup/CutMix, whose targets are mixed."""
    last = history[-1]
    return (f" (augmented training batches, last epoch: {last['train_accuracy']:.2%})" if "train_accuracy" in last
            else " (no training accuracy: Mixup/CutMix mixes the targets)")


# What try_recipe may change: fit's recipe arguments, the batch size and the loader's augmentation.
RECIPE_KEYS = tuple(name for name, p in inspect.signature(fit).parameters.items()
                    if p.kind is p.KEYWORD_ONLY
                    and name not in ("callback", "device", "desc", "max_steps", "num_classes", "stop_if_diverged")
                    ) + ("batch_size",) + AUGMENTATION


def fit_defaults(recipe: dict) -> dict:
    """``fit``'s defaults for the recipe keys ``recipe`` leaves out (label smoothing 0.1, warm-up
    0.2, momentum 0.9...): settings the model trains with that no profile names. Plain values
    only (numbers, strings, bools); a None default (grad_clip, precision) sets nothing."""
    unused = set() if recipe.get("optimizer", "sgd") == "sgd" else {"momentum"}  # SGD's alone
    return {k: p.default for k, p in inspect.signature(fit).parameters.items()
            if k in RECIPE_KEYS and k not in recipe and k not in unused and isinstance(p.default, (numbers.Number, str))}


def effective_recipe(recipe: dict) -> dict:
    """``recipe`` with ``fit_defaults``: what the model trained with, as its metrics record it."""
    return recipe | fit_defaults(recipe)


def try_recipe(session: Session, name: str, pretrained_weights: str | None = None, model=None,
               arch: dict | None = None, **changes) -> list[dict]:
    """Train a fresh ``name`` with its profile's recipe changed by ``changes`` (``epochs=12``,
    ``label_smoothing=0.0``, ``cutout=16``, ``augment="trivialaugment"``...) and say how it compares
    with this run's baseline. ``arch`` (a model's ``.arch`` record, such as a pruned model's) trains
    that architecture from new random weights, drawn from the session's seed; ``model`` trains that
    model as it is. Nothing is saved: the run's checkpoints, metrics and figures stay as
    ``train_baseline`` wrote them. Returns the history (one dict per epoch, as ``fit``'s)."""
    unknown = sorted(set(changes) - set(RECIPE_KEYS))
    if unknown:
        raise ValueError(f"try_recipe cannot change {', '.join(unknown)}: a recipe holds "
                         f"{', '.join(RECIPE_KEYS)}")
    wrong = recipe_problems(changes)  # checked as a profile's recipe is: epochs=0 was an IndexError at the end
    if wrong:
        raise SettingsError(f"try_recipe: {'; '.join(wrong)}")
    # n_train None: the whole training split
    n_train, batch = session.profile["data"]["n_train"] or CIFAR10_IMAGES[True], changes.get("batch_size")
    if isinstance(batch, int) and batch > n_train:  # fit's ValueError named no count
        raise SettingsError(f"try_recipe: batch_size={batch} is more than the profile's {n_train:,} training images: "
                            f"an epoch would hold no whole batch; use at most {n_train:,}")
    if sum(x is not None for x in (model, arch, pretrained_weights or None)) > 1:
        raise SettingsError("try_recipe: give one of model, arch and pretrained_weights, not several")
    if arch is not None and not (isinstance(arch, dict) and {"name", "kwargs"} <= arch.keys()):
        raise SettingsError(f"try_recipe: arch is a model's .arch record, such as small.arch: got {arch!r}")
    if arch is not None:  # seeded here: weights built before the call hung on what ran before (30.00% vs 28.50%)
        seed_everything(session.seed)
        model = build_model(arch["name"], **arch["kwargs"])
        what = f"{name} (the architecture given, new random weights)"
    elif model is not None:  # new_model reseeds; without it the augmentation and drop-path draws hung on
        seed_everything(session.seed)  # what ran before (_train's loaders are new, seeded by the session)
        what = f"{name} (the model given)"
    else:
        model, what = session.new_model(name, pretrained_weights), name
    history, _, seconds = _train(session, name, model, session.train_config(name) | changes, desc=f"{name} (try)")
    baseline = recorded(session).get(name, {})  # another run's file in the folder is not this run's baseline
    than = (f"this run's baseline: {baseline['accuracy']:.2%}" if baseline.get("produced")
            else "no baseline in this run to compare with")
    changed = ", ".join(f"{k}={v!r}" for k, v in changes.items()) or "the recipe unchanged"
    if not math.isfinite(history[-1]["train_loss"]):  # fit warned; the accuracy below is chance's
        changed += " (diverged: its training loss is not a number)"
    print(f"{what} with {changed}: {history[-1]['test_accuracy']:.2%}{_train_accuracy(history)} after {len(history)} epoch{'s' * (len(history) != 1)} in "
          f"{seconds:.0f}s ({than}); nothing saved")
    return history


def print_recipes(session: Session, models: list[str]) -> None:
    """Each model's training recipe and architecture overrides, as the profile sets them, and the
    settings it takes from ``fit``'s defaults."""
    for name in models:
        overrides = session.model_overrides(name)
        recipe = session.train_config(name)
        print(f"{name:12s} {format_settings(recipe)}")
        if defaults := fit_defaults(recipe):
            print(f"{'':12s} fit's defaults: {format_settings(defaults, indent=29)}")
        if overrides:
            print(f"{'':12s} model: {format_settings(overrides, indent=20)}")


def recorded(session: Session) -> dict[str, dict]:
    """This run's baseline record of each model (``Session.recorded``): the results, the learning
    curves and the exercises also work after a kernel restart, without training again."""
    return session.recorded("before_pruning", "not trained in this run yet: run the cell under 'Train' first")


def print_results(results: dict[str, dict]) -> None:
    """One line per model: accuracy against the course minimum, size, time and throughput."""
    for name, r in results.items():
        if not r["produced"]:
            print(f"{name:12s} not produced: {r['reason'].splitlines()[0]}")
            continue
        verdict = "meets" if r["accuracy"] >= BEFORE_PRUNING_MIN[name] else "below"
        # A record of an earlier version has no "seconds" (its train_seconds was the wall time).
        wall = f"; {r['seconds']:.0f}s with the test split's scoring" if "seconds" in r else ""
        print(f"{name:12s} {r['accuracy']:.2%} ({verdict} the {BEFORE_PRUNING_MIN[name]:.0%} minimum), "
              f"{r['parameters'] / 1e6:.2f}M parameters, trained in {r['train_seconds']:.0f}s "
              f"({r['images_per_second']:,.0f} training images/s{wall})")


# -- figures -------------------------------------------------------------------------------------
def plot_learning_curves(histories: dict[str, list[dict] | dict], targets: dict[str, float] | None = BEFORE_PRUNING_MIN,
                         path=None, caption=None):
    """Training loss and test accuracy per epoch for each model; dashed lines mark the minimums.
    ``histories``: {name: the epochs of ``fit``}, or the records of ``recorded`` (notebook 02's
    ``results``), of which those produced are drawn. With no model trained (no history) it says so
    and returns None: no blank figure."""
    histories = {n: h["history"] if isinstance(h, dict) else h for n, h in histories.items()
                 if not isinstance(h, dict) or h.get("produced", True)}  # a record without the key has run
    if not histories:
        print("no figure: no model was trained in this run (the results above say why)")
        return None
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, history in histories.items():
        style = style_for(MODEL_STYLES, name, histories)  # two try_recipe runs: two looks, not one grey
        epochs = [h["epoch"] for h in history]
        # A one-epoch run is a single point, no line: a larger open ring, visible over the others.
        point = {"ms": 7, "mfc": "none", "mew": 1.5} if len(history) == 1 else {"ms": 4}
        ax_loss.plot(epochs, [h["train_loss"] for h in history], label=name, **style, **point)
        tested = [h for h in history if "test_accuracy" in h]
        ax_acc.plot([h["epoch"] for h in tested], [100 * h["test_accuracy"] for h in tested],
                    label=name, **style, **point)
        if targets and name in targets:
            minimum_line(ax_acc, name, 100 * targets[name])
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="training loss")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)",
               title="test accuracy (dashed: course minimum)")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no 1.2, 1.4 ticks
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return finish(fig, path, caption)
