"""Unstructured pruning masks, written by hand (the course forbids PyTorch's built-in pruning module).

A mask is a bool tensor per prunable weight, True where the weight is kept. Masks come from
scores (bigger = more important) and a target sparsity, under one of two scopes:

* ``"global"`` - one threshold across all prunable weights: exactly round(sparsity * N) of the N
  weights go, ties broken by position, so the requested sparsity is hit to within one weight;
* ``"layer"``  - the same share removed in every layer (or per-layer shares given as a dict).

``MaskEnforcer`` is the training callback that keeps pruned weights at exactly zero during
fine-tuning: after every optimizer step it re-applies the masks and clears the optimizer's
momentum (and Adam moments) for pruned entries, so neither momentum nor weight decay can
revive them.
"""
from __future__ import annotations

import torch
from torch import nn

Masks = dict[str, torch.Tensor]


def prunable_parameters(model: nn.Module, include_first: bool = False,
                        include_classifier: bool = False) -> dict[str, nn.Parameter]:
    """Conv and linear weights, in model order. The first conv (few weights, every feature depends
    on it) and the final classifier are left dense unless asked for: the usual convention."""
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    params = {}
    for i, (name, module) in enumerate(layers):
        first, last = i == 0, i == len(layers) - 1
        if (first and not include_first) or (last and not include_classifier):
            continue
        params[f"{name}.weight" if name else "weight"] = module.weight
    return params


def magnitude_scores(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """|w|: the classic criterion."""
    return {n: p.detach().abs() for n, p in params.items()}


def masks_from_scores(scores: dict[str, torch.Tensor], sparsity: float | dict[str, float],
                      scope: str = "global") -> Masks:
    """Keep-masks removing the lowest-scoring weights.

    ``sparsity`` is the share to remove (0..1); with ``scope="layer"`` it may be a dict of
    per-layer shares. Already-zero scores count among the lowest, so masks only grow sparser.
    """
    if scope == "global":
        if isinstance(sparsity, dict):
            raise ValueError("a dict of per-layer sparsities needs scope='layer'")
        flat = torch.cat([s.flatten().float() for s in scores.values()])
        keep = _keep_lowest_removed(flat, sparsity)
        masks, start = {}, 0
        for name, s in scores.items():
            masks[name] = keep[start:start + s.numel()].view_as(s)
            start += s.numel()
        return masks
    if scope == "layer":
        return {name: _keep_lowest_removed(s.flatten().float(),
                                           sparsity[name] if isinstance(sparsity, dict) else sparsity).view_as(s)
                for name, s in scores.items()}
    raise ValueError(f"unknown scope {scope!r}; use 'global' or 'layer'")


def _keep_lowest_removed(flat: torch.Tensor, sparsity: float) -> torch.Tensor:
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be a share between 0 and 1, got {sparsity}")
    k = int(round(sparsity * flat.numel()))
    keep = torch.ones_like(flat, dtype=torch.bool)
    if k:
        # A stable sort ranks ties by position: exactly k entries go, whatever the ties.
        order = torch.sort(flat, stable=True).indices
        keep[order[:k]] = False
    return keep


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Masks) -> None:
    """Zero every masked-out weight in place."""
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        params[name].mul_(mask.to(params[name].device, params[name].dtype))


class MaskEnforcer:
    """``fit`` callback: after each optimizer step, re-zero pruned weights and their optimizer state.

    One multi-tensor multiply for all weights and one for all optimizer state (a handful of
    kernel launches per step, not several per layer).

    >>> fit(model, train, test, epochs=3, lr=0.01, callback=MaskEnforcer(masks))  # doctest: +SKIP
    """

    def __init__(self, masks: Masks):
        self.masks = masks
        self._factors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # name -> (mask, as p's dtype)

    def _factor(self, name: str, p: torch.Tensor) -> torch.Tensor:
        mask = self.masks[name]
        cached = self._factors.get(name)
        if cached is None or cached[0] is not mask or cached[1].dtype != p.dtype:
            cached = (mask, mask.to(p.device, p.dtype))
            self._factors[name] = cached
        return cached[1]

    @torch.no_grad()
    def __call__(self, model: nn.Module, optimizer: torch.optim.Optimizer, step: int) -> None:
        params = dict(model.named_parameters())
        tensors, factors = [], []
        for name in self.masks:
            p, factor = params[name], self._factor(name, params[name])
            tensors.append(p)
            factors.append(factor)
            for value in optimizer.state.get(p, {}).values():  # momentum_buffer, exp_avg, ...
                if torch.is_tensor(value) and value.shape == p.shape:
                    tensors.append(value)
                    factors.append(factor if value.dtype == p.dtype else factor.to(value.dtype))
        if tensors:
            torch._foreach_mul_(tensors, factors)


@torch.no_grad()
def sparsity_report(model: nn.Module, params: dict[str, torch.Tensor] | None = None,
                    masks: Masks | None = None) -> dict:
    """Sparsity counted from the weights' actual zeros (not from the masks).

    Returns {"layers": {name: {"zeros", "total", "sparsity"}}, "prunable_zeros", "prunable_total",
    "pruning_percentage" (percent of prunable weights that are zero), "all_zeros", "all_total",
    "sparsity_all_parameters" (percent of every parameter)}. With ``masks``, also checks that each
    masked-out weight is zero and raises if one is not.
    """
    params = params if params is not None else prunable_parameters(model)
    layers = {}
    for name, p in params.items():
        zeros = int((p == 0).sum())
        layers[name] = {"zeros": zeros, "total": p.numel(), "sparsity": zeros / p.numel()}
        if masks is not None and name in masks:
            revived = int((p[~masks[name].to(p.device)] != 0).sum())
            if revived:
                raise AssertionError(f"{name}: {revived} pruned weights are not zero")
    pz, pt = sum(v["zeros"] for v in layers.values()), sum(v["total"] for v in layers.values())
    az = sum(int((p == 0).sum()) for p in model.parameters())
    at = sum(p.numel() for p in model.parameters())
    return {"layers": layers, "prunable_zeros": pz, "prunable_total": pt,
            "pruning_percentage": 100.0 * pz / max(pt, 1), "all_zeros": az, "all_total": at,
            "sparsity_all_parameters": 100.0 * az / max(at, 1)}
