"""Importance scores for unstructured pruning (bigger = more important), one tensor per weight.

* ``magnitude`` - |w|, needs no data;
* ``taylor``    - first-order Taylor estimate of the loss change when a weight is zeroed,
                  |w * g| per mini-batch, averaged over a few (Molchanov et al. 2019 square the
                  term instead: the same ranking within a batch, more weight on outlier batches;
                  their squared group form is notebook 04's structured ``taylor``);
* ``fisher``    - second-order (OBD, LeCun et al., 1990): the loss change 1/2 * H_ii * w^2 with the
                  Hessian diagonal H_ii approximated by squared *mini-batch* gradients, averaged
                  over batches ("Hessian-based" in the course's words). Not the empirical Fisher,
                  which squares per-example gradients: a batch of B gives about F_ii / B plus the
                  squared mean gradient. One gradient per batch keeps it cheap; it only ranks weights.

Data-aware scores run the model in eval mode (BatchNorm statistics and the weights are left
untouched) and take gradients with ``torch.autograd.grad``, so ``.grad`` is not disturbed either.
A weight that is already zero scores 0 under every criterion, so pruned weights stay pruned.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .masks import magnitude_scores
from ..accel import autocast, unscaled_precision
from ..train import to_device

def batch_gradients(model: nn.Module, params: dict[str, torch.Tensor], loader, batches: int):
    """Yield {name: gradient of the mean cross-entropy of one batch} for ``batches`` batches."""
    if batches < 1:
        raise ValueError(f"need at least one batch to score weights, got batches={batches}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    names, tensors = list(params), list(params.values())
    seen = 0
    try:
        for x, y in loader:
            x, y = to_device(x, y, device)
            with autocast(device, unscaled_precision(device)):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
            grads = torch.autograd.grad(loss, tensors)
            yield {n: g.detach().float() for n, g in zip(names, grads)}
            seen += 1
            if seen >= batches:
                break
    finally:
        model.train(was_training)
    if seen == 0:
        raise ValueError("the loader yielded no batches; scores need data")


def taylor_scores(model: nn.Module, params: dict[str, torch.Tensor], loader,
                  batches: int = 4) -> dict[str, torch.Tensor]:
    """Mean over ``batches`` mini-batches of |w * dL/dw|. The absolute value is taken per batch:
    near a minimum the signed gradient averages to ~0 and would say nothing."""
    total = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    count = 0
    for grads in batch_gradients(model, params, loader, batches):
        for n, p in params.items():
            total[n] += (p.detach().float() * grads[n]).abs()
        count += 1
    return {n: t / count for n, t in total.items()}


def fisher_scores(model: nn.Module, params: dict[str, torch.Tensor], loader,
                  batches: int = 4) -> dict[str, torch.Tensor]:
    """1/2 * F_ii * w^2 with F_ii = mean over ``batches`` mini-batches of (dL/dw)^2, dL/dw being
    the batch's mean gradient (see the module docstring: a stand-in for the empirical Fisher)."""
    fisher = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    count = 0
    for grads in batch_gradients(model, params, loader, batches):
        for n in params:
            fisher[n] += grads[n] ** 2
        count += 1
    return {n: 0.5 * (fisher[n] / count) * p.detach().float() ** 2 for n, p in params.items()}


# A criterion is one entry: its name, its scoring function (model, params, loader, batches), and
# whether it needs data. CRITERIA, the profiles' check and the notebooks' choices follow from it.
SCORERS = {
    "magnitude": (lambda model, params, loader, batches: magnitude_scores(params), False),
    "taylor": (taylor_scores, True),
    "fisher": (fisher_scores, True),
}
CRITERIA = tuple(SCORERS)


def compute_scores(criterion: str, model: nn.Module, params: dict[str, torch.Tensor],
                   loader=None, batches: int = 4) -> dict[str, torch.Tensor]:
    """Scores by name, one of ``SCORERS``: "magnitude" (no data), "taylor" or "fisher" (need ``loader``)."""
    if criterion not in SCORERS:
        raise ValueError(f"unknown criterion {criterion!r}; choose one of {CRITERIA}")
    score, needs_data = SCORERS[criterion]
    if needs_data and loader is None:
        raise ValueError(f"criterion {criterion!r} needs a data loader to compute gradients")
    return score(model, params, loader, batches)
