"""When and how much to prune: one-shot, iterative, gradual (Zhu & Gupta) and the N:M pattern.

Scopes (the ``scope`` argument everywhere):

* ``"global"``  - one threshold across all prunable weights (exact count, ties by position);
* ``"layer"``   - the same share in every layer;
* a callable ``target -> {layer: share}`` - per-layer shares, e.g. a
  :class:`labutils.prune.sensitivity.SensitivityScope` built from a sensitivity scan;
* ``"N:M"`` (e.g. ``"2:4"``) - in every group of M consecutive weights along the reduction
  dimension (a linear row's inputs; a conv's input channels at each kernel position), keep the N
  largest: the pattern sparse tensor cores accelerate. Its sparsity is 1-N/M, so it is pruned in
  one go (``one_shot_prune``); iterative and gradual pruning refuse it.

API used by other notebooks (06 prunes before quantising)::

    masks = one_shot_prune(model, sparsity, scope="global", scores=None)
    masks, history = iterative_prune(model, train_loader, test_loader, sparsity, rounds,
                                     epochs_per_round, scope="global", **fit_kwargs)

Both prune ``model`` in place and return keep-masks {parameter name: bool tensor}.
``fit_kwargs`` go to :func:`labutils.train.fit` (lr, optimizer, schedule, weight_decay, ...);
``epochs_per_round`` may be fractional (e.g. 0.25 = a quarter epoch via ``max_steps``); the rounds
together take the optimizer steps of ``epochs_per_round * rounds`` epochs, as one-shot pruning would.
"""
from __future__ import annotations

import math
import numbers
from contextlib import closing

import torch
from torch import nn

from .criteria import compute_scores
from .masks import (NO_PRUNABLE, Masks, MaskEnforcer, apply_masks, as_bool_masks, check_finite_scores,
                    check_fits_weights, check_share, magnitude_scores, masks_from_scores, prunable_parameters,
                    sparsity_report)
from ..train import evaluate, fit, progress, quiet_progress, report_progress

# The ways to reach a sparsity that notebook 03 compares (one_shot_prune, iterative_prune, gradual_prune).
METHODS = ("one_shot", "iterative", "gradual")

# -- masks under a scope ------------------------------------------------------------------
def parse_nm(scope) -> tuple[int, int] | None:
    """(N, M) for a scope like "2:4", else None."""
    if isinstance(scope, str) and ":" in scope:
        parts = scope.split(":")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts) or not 0 < int(parts[0]) < int(parts[1]):
            raise ValueError(f"N:M scope {scope!r} is not a pattern: give two whole numbers with 0 < N < M, "
                             f"e.g. '2:4' (keep 2 of every 4 weights)")
        return int(parts[0]), int(parts[1])
    return None


def nm_masks(scores: dict[str, torch.Tensor], n: int = 2, m: int = 4) -> Masks:
    """Keep the ``n`` highest scores in every group of ``m`` consecutive weights along the
    reduction dimension, as sparse GPU kernels read it: a linear row's inputs; for a conv, the
    input channels at one kernel position (channels_last, as NVIDIA's ASP groups them). A layer
    whose row length (in_features, or a conv's input channels) is not a multiple of ``m`` cannot
    carry the pattern and is left dense (all True)."""
    if not (isinstance(n, int) and isinstance(m, int) and 1 <= n <= m):
        raise ValueError(f"an N:M pattern keeps n of every m weights, 1 <= n <= m: got n={n!r}, m={m!r} (2:4 is n=2, m=4)")
    check_finite_scores(scores)  # topk would keep NaN as the largest
    masks = {}
    for name, s in scores.items():
        rows = s.permute(0, 2, 3, 1) if s.dim() == 4 else s.reshape(s.shape[0], -1)
        if rows.shape[-1] % m:
            masks[name] = torch.ones_like(s, dtype=torch.bool)
            continue
        groups = rows.reshape(-1, m).float()
        keep = torch.zeros_like(groups, dtype=torch.bool)
        keep.scatter_(1, groups.topk(n, dim=1).indices, True)
        keep = keep.view(rows.shape)
        masks[name] = keep.permute(0, 3, 1, 2).contiguous() if s.dim() == 4 else keep.view_as(s)
    return masks


def check_scope(scope) -> None:
    """ValueError unless ``scope`` is one of the four kinds (see the module docstring); a malformed
    N:M string gets ``parse_nm``'s words."""
    if callable(scope) or (isinstance(scope, str) and scope in ("global", "layer")) or parse_nm(scope):
        return
    raise ValueError(f"unknown scope {scope!r}: use 'global', 'layer', an N:M pattern such as '2:4', or a "
                     f"callable target -> {{layer: share}} (e.g. a SensitivityScope)")


def scope_masks(scores: dict[str, torch.Tensor], sparsity: float, scope="global") -> Masks:
    """Keep-masks for ``sparsity`` under ``scope`` (see the module docstring)."""
    check_scope(scope)
    nm = parse_nm(scope)
    if nm:
        if not scores:  # nm_masks would give {} without a word
            raise ValueError(NO_PRUNABLE)
        if sparsity is not None and abs(sparsity - (1 - nm[0] / nm[1])) > 1e-9:
            raise ValueError(f"scope {scope!r} means sparsity {1 - nm[0] / nm[1]:.2f}, "
                             f"but sparsity={sparsity} was asked; pass sparsity=None or the matching value")
        return nm_masks(scores, *nm)
    if callable(scope):
        return masks_from_scores(scores, scope(sparsity), "layer")
    return masks_from_scores(scores, sparsity, scope)


def check_growable(scope, method: str) -> None:
    """ValueError for an N:M scope given to a method whose sparsity grows round by round: its
    first round asked 21% of a pattern that is 50% sparse, deep into the run."""
    nm = parse_nm(scope)
    if nm:
        raise ValueError(f"scope {scope!r} is a fixed pattern ({1 - nm[0] / nm[1]:.0%} sparse), pruned in one go: "
                         f"use one_shot_prune (or nm_masks), not {method} pruning, whose sparsity grows step by step")


def nested_scores(scores: dict[str, torch.Tensor], masks: Masks | None) -> dict[str, torch.Tensor]:
    """Scores with already-pruned entries pushed below every other, so they are the first to go.
    -inf, not -1: a custom criterion may give negative scores. ``within`` still has to follow: a
    pattern (N:M) or a smaller per-layer share can keep fewer weights pruned than before."""
    if not masks:
        return scores
    masks = as_bool_masks(masks)  # ~ of a hand-made 0/1 mask is a TypeError or a bitwise NOT
    return {n: s.float().masked_fill(~masks[n].to(s.device), float("-inf")) if n in masks else s
            for n, s in scores.items()}


def within(masks: Masks, previous: Masks | None) -> Masks:
    """``masks`` with every weight ``previous`` pruned pruned again: masks never revive a weight,
    so the sparsity reached may exceed the target (it is counted from the zeros, never assumed)."""
    if not previous:
        return masks
    previous = as_bool_masks(previous)  # & with a float mask is a TypeError
    return {n: m & previous[n].to(m.device) if n in previous else m for n, m in masks.items()}


# -- one-shot ------------------------------------------------------------------------------
def one_shot_prune(model: nn.Module, sparsity: float | None, scope="global",
                   scores: dict[str, torch.Tensor] | None = None,
                   params: dict[str, torch.Tensor] | None = None,
                   previous: Masks | None = None) -> Masks:
    """Remove ``sparsity`` (0..1) of ``params`` (default: ``prunable_parameters(model)``) in one
    go and return the keep-masks. ``scores`` default to magnitude; ``previous`` masks stay pruned."""
    params = params if params is not None else prunable_parameters(model)
    scores = scores if scores is not None else compute_scores("magnitude", model, params)
    missing = set(params) - set(scores)
    if missing:
        raise ValueError(f"scores are missing for {sorted(missing)[:3]}...; score the same parameters you prune")
    # A per-filter score (8, 1, 1, 1) competed, summed, with per-weight ones under global scope.
    check_fits_weights({n: scores[n] for n in params}, params, "score")
    check_fits_weights({n: m for n, m in (previous or {}).items() if n in params}, params, "previous mask")
    masks = within(scope_masks(nested_scores({n: scores[n] for n in params}, previous), sparsity, scope), previous)
    apply_masks(model, masks)
    return masks


# -- fine-tuning budgets ---------------------------------------------------------------------
def check_epochs(value, name: str = "epochs", need_some: str | None = None) -> float:
    """``value`` as a float if it is a finite number of epochs >= 0; > 0 when ``need_some`` says why
    none will not do. -2 skipped the fine-tuning without a word, and nan passes no comparison."""
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)  # True is not one epoch
    if number and math.isfinite(value) and (value > 0 or (value == 0 and need_some is None)):
        return float(value)
    if need_some:
        raise ValueError(f"{name}={value!r}: {need_some}: give it more than 0 epochs (fractions allowed, e.g. 0.5)")
    raise ValueError(f"{name}={value!r} is not a fine-tuning length: give a number of epochs >= 0 "
                     f"(fractions allowed, e.g. 0.5; 0 skips the fine-tuning)")


def budget_steps(epochs: float, train_loader, epoch_steps: int | None = None) -> int:
    """Optimizer steps in ``epochs`` (possibly fractional) epochs, at least one; ``epoch_steps``
    caps what one epoch means (reduced profiles fine-tune on slices of the training set)."""
    per_epoch = len(train_loader) if not epoch_steps else min(epoch_steps, len(train_loader))
    return max(1, int(round(epochs * per_epoch)))


def steps_budget(steps: int, train_loader) -> dict:
    """``fit`` arguments for exactly ``steps`` optimizer steps."""
    return {"epochs": max(1, math.ceil(steps / len(train_loader))), "max_steps": steps}


def fit_budget(epochs: float, train_loader, epoch_steps: int | None = None) -> dict:
    """``fit`` arguments for ``epochs`` (possibly fractional) epochs (``budget_steps``)."""
    return steps_budget(budget_steps(epochs, train_loader, epoch_steps), train_loader)


def finetune_masked(model, train_loader, epochs, masks, desc, epoch_steps=None, callback=None, **fit_kwargs):
    """Fine-tune for ``epochs`` (fractions allowed; 0: not at all) while ``masks`` keep pruned
    weights at zero."""
    if check_epochs(epochs) == 0:
        return []
    return fit(model, train_loader, None, callback=callback or MaskEnforcer(masks), desc=desc,
               **fit_budget(epochs, train_loader, epoch_steps), **fit_kwargs)


# -- iterative -------------------------------------------------------------------------------
def round_targets(sparsity: float, rounds: int) -> list[float]:
    """Sparsity after each of ``rounds`` rounds when each keeps (1-s)^(1/k) of what is left."""
    if isinstance(rounds, bool) or not isinstance(rounds, numbers.Integral) or rounds < 1:
        raise ValueError(f"rounds={rounds!r} must be a whole number >= 1 (prune-and-fine-tune rounds, e.g. 3)")
    sparsity = check_share(sparsity)  # 90 would give complex targets, 1 a model of zeros
    keep = (1.0 - sparsity) ** (1.0 / rounds)
    return [1.0 - keep ** r for r in range(1, rounds + 1)][:-1] + [sparsity]


def iterative_prune(model: nn.Module, train_loader, test_loader, sparsity: float, rounds: int,
                    epochs_per_round: float, scope="global", *, criterion: str = "magnitude",
                    params: dict[str, torch.Tensor] | None = None, score_loader=None,
                    score_batches: int = 4, epoch_steps: int | None = None,
                    desc: str = "iterative", **fit_kwargs) -> tuple[Masks, list[dict]]:
    """``rounds`` rounds of (prune to the round's target, fine-tune ``epochs_per_round``).

    Each round keeps (1-s)^(1/rounds) of the remaining weights, so the last round lands on
    ``sparsity``. The fine-tuning steps of all rounds add up to those of ``epochs_per_round *
    rounds`` epochs in one go (``budget_steps``), so one-shot, iterative and gradual pruning
    compared at one budget train for the same number of steps. Scores are recomputed on the
    current weights every round (``score_loader``, default ``train_loader``, for data-aware criteria). ``test_loader`` (may be None) is evaluated
    after each round. Returns (masks, history: one dict per round).
    """
    params = params if params is not None else prunable_parameters(model)
    masks, history = None, []
    check_scope(scope)  # "Global" failed only after the bar was shown, at the first round
    check_growable(scope, "iterative")
    targets = round_targets(sparsity, rounds)  # checks the arguments before a bar is shown
    check_epochs(epochs_per_round, "epochs_per_round")  # 0: prune only, no fine-tuning
    # One bar for the rounds; the fine-tuning of each round runs without a bar of its own.
    # Rounding each round's share separately would give iterative pruning up to a step a round more.
    # Rounded to 9 places: (e / rounds) * rounds is not always e in floats (0.45 / 3 * 3 gave one
    # step fewer than one-shot's 0.45 epochs, where a budget lands on half a step).
    total = budget_steps(round(epochs_per_round * rounds, 9), train_loader, epoch_steps) if epochs_per_round > 0 else 0
    with closing(progress(total=rounds, desc=desc, unit="round")) as bar:
        for r, target in enumerate(targets, 1):
            scores = compute_scores(criterion, model, params, score_loader or train_loader, score_batches)
            masks = one_shot_prune(model, target, scope, scores, params, previous=masks)
            steps = total * r // rounds - total * (r - 1) // rounds  # this round's share of the total
            with quiet_progress():
                fits = fit(model, train_loader, None, callback=MaskEnforcer(masks), desc=f"{desc} round {r}/{rounds}",
                           **steps_budget(steps, train_loader), **fit_kwargs) if steps else []
            report = sparsity_report(model, params, masks)
            entry = {"round": r, "target_sparsity": target,
                     "measured_sparsity": report["pruning_percentage"] / 100, "fit": fits}
            if test_loader is not None:
                entry["accuracy"] = evaluate(model, test_loader)["accuracy"]
            history.append(entry)
            bar.update()
            report_progress(bar, desc, f"round {r}/{rounds} {entry['measured_sparsity']:.1%} zero")
    return masks, history


# -- gradual (Zhu & Gupta, 2017) -----------------------------------------------------------------
def cubic_sparsity(step: int, final: float, begin: int, end: int, initial: float = 0.0) -> float:
    """s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (t1 - t0))^3, held at s_i before t0, s_f after t1:
    prune fast while many redundant weights remain, slowly near the target."""
    if step >= end:  # first: a ramp that begins and ends at one step (a budget of a step or two) prunes
        return final
    if step <= begin:
        return initial
    return final + (initial - final) * (1.0 - (step - begin) / (end - begin)) ** 3


class GradualPruner:
    """``fit`` callback that raises sparsity on the cubic schedule and keeps pruned weights at zero.

    Every ``frequency`` optimizer steps between ``begin`` and ``end``, and at ``end``, it rescores the
    weights by magnitude and prunes to the schedule's sparsity; masks only grow. At ``begin`` the
    schedule is still ``initial``: with the default 0 that step prunes nothing and is no event. Its
    ``MaskEnforcer`` masks the gradients before every step and re-masks weights and optimizer state
    after the steps that changed the masks.
    """

    graph_safe = True  # new masks are copied into the enforcer's buffers; new buffers re-capture

    def __init__(self, params: dict[str, torch.Tensor], final: float, begin: int, end: int,
                 frequency: int = 1, scope="global", initial: float = 0.0):
        if end < begin:
            raise ValueError(f"gradual pruning must end after it begins (begin={begin}, end={end})")
        # Checked now, not at the first pruning event deep into fine-tuning.
        final, initial = check_share(final, "final sparsity"), check_share(initial, "initial sparsity")
        check_scope(scope)
        self.names, self.final, self.begin, self.end = list(params), final, begin, end
        self.frequency, self.scope, self.initial = max(1, frequency), scope, initial
        self.masks: Masks = {}
        self.enforcer = MaskEnforcer(self.masks)
        self.events: list[dict] = []

    def due(self, step: int) -> bool:
        if step == self.end:
            return True
        # An event at begin would prune to initial: nothing when that is 0, and one event fewer.
        start = self.begin if self.initial > 0 else self.begin + 1
        return start <= step < self.end and (step - self.begin) % self.frequency == 0

    def __call__(self, model: nn.Module, optimizer, step: int) -> None:
        if self.due(step):
            all_params = dict(model.named_parameters())
            params = {n: all_params[n] for n in self.names}
            target = cubic_sparsity(step, self.final, self.begin, self.end, self.initial)
            scores = nested_scores(magnitude_scores(params), self.masks)
            self.masks.update(within(scope_masks(scores, target, self.scope), self.masks))
            self.events.append({"step": step, "sparsity": target})
        if self.masks:
            self.enforcer(model, optimizer, step)

    def before_step(self, model: nn.Module, optimizer) -> None:
        if self.masks:
            self.enforcer.before_step(model, optimizer)

    def graph_version(self) -> tuple:
        return self.enforcer.graph_version()


def gradual_prune(model: nn.Module, train_loader, test_loader, sparsity: float, epochs: float,
                  scope="global", *, begin: float = 0.0, end: float = 0.7, prunings: int = 20,
                  params: dict[str, torch.Tensor] | None = None, epoch_steps: int | None = None,
                  desc: str = "gradual", **fit_kwargs) -> tuple[Masks, list[dict]]:
    """Fine-tune for ``epochs`` while the sparsity ramps from 0 to ``sparsity`` on the cubic schedule
    between fractions ``begin`` and ``end`` of the steps (at most ``prunings`` pruning events, evenly
    spaced, the last at ``end`` reaching ``sparsity``); the rest of the steps recover at the final
    sparsity. Returns (masks, history)."""
    check_share(sparsity)  # named as the caller knows it (GradualPruner says "final sparsity")
    # 0 (or -3) still trained a step, through budget_steps' "at least one".
    check_epochs(epochs, need_some="gradual pruning prunes while it fine-tunes")
    check_growable(scope, "gradual")
    if not 0 <= begin < end <= 1:  # end=70 (for 0.7) never reached its last step: nothing was pruned
        raise ValueError(f"the ramp runs between fractions of the steps: need 0 <= begin < end <= 1, "
                         f"got begin={begin}, end={end} (write 0.7 for 70%)")
    params = params if params is not None else prunable_parameters(model)
    budget = fit_budget(epochs, train_loader, epoch_steps)
    total = budget["max_steps"]
    first, last = max(1, int(begin * total)), max(1, int(end * total))
    # Rounded up: floor division gave 35 events for 20 at 50 steps (frequency 1). The event at
    # ``first`` is skipped (the schedule is 0 there), so ceil((last - first) / frequency) <= prunings.
    frequency = max(1, math.ceil((last - first) / max(prunings, 1)))
    pruner = GradualPruner(params, sparsity, first, last, frequency, scope)
    fits = fit(model, train_loader, None, callback=pruner, desc=desc, **budget, **fit_kwargs)
    # With ema, fit ends by loading its weight average, which began on the denser weights before
    # the last prunings: the masks hold again.
    apply_masks(model, pruner.masks)
    entry = {"fit": fits, "events": pruner.events,
             "measured_sparsity": sparsity_report(model, params, pruner.masks)["pruning_percentage"] / 100}
    if test_loader is not None:
        entry["accuracy"] = evaluate(model, test_loader)["accuracy"]
    return pruner.masks, [entry]
