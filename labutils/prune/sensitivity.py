"""Layer sensitivity: how much accuracy each layer loses when it alone is pruned, and per-layer
ratios chosen from that scan (robust layers pruned harder, fragile layers spared)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .masks import check_share, magnitude_scores, masks_from_scores
from ..train import evaluate, progress

DEFAULT_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@torch.no_grad()
def sensitivity_scan(model: nn.Module, params: dict[str, torch.Tensor], loader,
                     sparsities=DEFAULT_LEVELS) -> dict:
    """Accuracy on ``loader`` with each layer pruned alone (smallest magnitudes first) at each of
    ``sparsities``; every layer is restored afterwards.

    Returns {"sparsities": [...], "baseline": accuracy, "sizes": {layer: weights},
    "layers": {layer: [accuracy per sparsity]}}.
    """
    # Every level before the first evaluation: 1.0 failed only after the baseline and a layer.
    levels = [check_share(s, "sensitivity level") for s in sparsities]
    if any(b <= a for a, b in zip(levels, levels[1:])):  # the drops are read in order of sparsity
        raise ValueError(f"sensitivity levels {levels} must increase from one entry to the next, "
                         f"e.g. {list(DEFAULT_LEVELS)}")
    scores = magnitude_scores(params)
    result = {"sparsities": levels, "baseline": evaluate(model, loader)["accuracy"],
              "sizes": {n: p.numel() for n, p in params.items()}, "layers": {}}
    for name in progress(list(params), desc="sensitivity", unit="layer"):
        p = params[name]
        original = p.detach().clone()
        accs = []
        for s in result["sparsities"]:
            keep = masks_from_scores({name: scores[name]}, s, "layer")[name]
            try:  # an interrupted evaluation (Ctrl-C, a failing loader) must not leave the layer pruned
                p.mul_(keep.to(p.device, p.dtype))
                accs.append(evaluate(model, loader)["accuracy"])
            finally:
                p.copy_(original)
        result["layers"][name] = accs
    return result


class SensitivityScope:
    """A pruning scope (``target -> {layer: share}``) built from a :func:`sensitivity_scan`.

    For an accuracy-drop tolerance d, each layer may be pruned as far as its scan stays within d
    of the baseline (linear between scanned levels, at most the last level scanned). d is chosen by
    bisection so these shares remove the ``target`` share of all weights, but at most 80% of the last
    level scanned: beyond that every layer would sit at the last level and the scan's ranking
    would be lost. A last common rescaling of the keep fractions makes the total exact (and takes
    targets beyond the scan's range, keeping the layers' relative robustness); a layer it would
    take past keeping everything stays whole, and the others are rescaled again.
    """

    def __init__(self, scan: dict):
        # Levels in ascending order, each layer's accuracies with them: a scan written in another
        # order would have its drops accumulated, and interpolated, in the wrong order.
        order = np.argsort(scan["sparsities"], kind="stable")
        self.levels = np.array([0.0] + [scan["sparsities"][i] for i in order])
        self.names = list(scan["layers"])
        self.sizes = np.array([scan["sizes"][n] for n in self.names], dtype=float)
        base = scan["baseline"]
        # Drop in accuracy, made non-decreasing in sparsity (a lucky noisy point must not let a
        # layer jump past a level where it already hurt).
        accuracies = {n: [base] + [scan["layers"][n][i] for i in order] for n in self.names}
        self.drops = np.array([np.maximum.accumulate(base - np.array(accuracies[n])) for n in self.names])

    def _shares(self, tolerance: float) -> np.ndarray:
        out = np.empty(len(self.names))
        for i, drop in enumerate(self.drops):
            ok = np.flatnonzero(drop <= tolerance)
            j = ok[-1]  # level 0 always qualifies: its drop is 0
            if j + 1 < len(drop) and drop[j + 1] > drop[j]:  # go part of the way to the next level
                frac = (tolerance - drop[j]) / (drop[j + 1] - drop[j])
                out[i] = self.levels[j] + min(max(frac, 0.0), 1.0) * (self.levels[j + 1] - self.levels[j])
            else:
                out[i] = self.levels[j]
        return out

    def __call__(self, target: float) -> dict[str, float]:
        target = check_share(target, "target sparsity")
        total, want_kept = self.sizes.sum(), (1.0 - target) * self.sizes.sum()
        reach_kept = (1.0 - min(target, 0.8 * self.levels[-1])) * total
        lo, hi = 0.0, float(self.drops.max()) + 1e-9
        for _ in range(40):  # kept weights fall as the tolerance grows: bisect for reach_kept
            mid = (lo + hi) / 2
            kept = ((1.0 - self._shares(mid)) * self.sizes).sum()
            lo, hi = (mid, hi) if kept > reach_kept else (lo, mid)
        keep = 1.0 - self._shares(hi)
        whole = np.zeros(len(keep), dtype=bool)  # layers that reached keep 1: no further share
        for _ in range(len(keep)):  # rescale the others to the target until none passes 1
            rest = (keep * self.sizes)[~whole].sum()
            if rest <= 0:
                break
            keep[~whole] *= (want_kept - self.sizes[whole].sum()) / rest
            over = ~whole & (keep >= 1.0)
            if not over.any():
                break
            whole |= over
            keep[whole] = 1.0
        keep = np.clip(keep, 0.0, 1.0)
        return {n: float(1.0 - k) for n, k in zip(self.names, keep)}
