"""Unstructured pruning masks, written by hand (the course forbids PyTorch's built-in pruning module).

A mask is a bool tensor per prunable weight, True where the weight is kept (one of 0s and 1s, made
by hand, is converted: ``as_bool_masks``). Masks come from
scores (bigger = more important) and a target sparsity, under one of two scopes:

* ``"global"`` - one threshold across all prunable weights: exactly ceil(sparsity * N) of the N
  weights go, ties broken by position, so the requested sparsity is met, never a weight short;
* ``"layer"``  - the same share removed in every layer (or per-layer shares given as a dict).

``MaskEnforcer`` is the training callback that keeps pruned weights at exactly zero during
fine-tuning: it masks the gradients before every optimizer step, and re-applies the masks to the
weights and the optimizer's momentum (and Adam moments) whenever they may have drifted, so neither
momentum nor weight decay can revive a pruned weight.
"""
from __future__ import annotations

import difflib
import math
import numbers

import torch
from torch import nn

from ..checkpoint import plain_numbers

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


def prunable_under(model: nn.Module, recipe: dict) -> dict[str, nn.Parameter]:
    """``prunable_parameters`` as a run's unstructured recipe chose them (its ``include_first`` and
    ``include_classifier``; the defaults when absent)."""
    return prunable_parameters(model, bool(recipe.get("include_first")), bool(recipe.get("include_classifier")))


def left_dense(recipe: dict) -> list[str]:
    """The layers ``prunable_parameters`` leaves out under a run's recipe (its ``include_first`` and
    ``include_classifier``, both False when absent), in words: ["first conv", "classifier"]."""
    return [what for what, key in (("first conv", "include_first"), ("classifier", "include_classifier"))
            if not recipe.get(key)]


def magnitude_scores(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """|w|: the classic criterion."""
    return {n: p.detach().abs() for n, p in params.items()}


def check_share(value, name: str = "sparsity") -> float:
    """``value`` as a float in [0, 1): the share of weights to remove. A percentage (90) is the
    usual slip; 1 would zero every weight, which no pruning schedule means. A 0-d tensor or numpy
    value (an element of ``torch.linspace``) counts as its number."""
    kind = type(value).__name__
    value = plain_numbers(value) if not isinstance(value, (list, tuple, dict)) else value
    if not isinstance(value, numbers.Real):  # a string, a list, a tensor of several values: the type is wrong
        raise ValueError(f"{name} {value!r} is a {kind}: give a number such as 0.5")
    number = not isinstance(value, bool)  # True is not 100%
    if number and 0.0 <= value < 1.0:
        return float(value)
    everything = number and value in (1, 100)  # 100 (for 100%) means 1, refused too
    what = "would remove every prunable weight" if everything else "is not a share"
    hint = (f"give {value / 100:g} for {value:g}%" if number and 1.0 < value <= 100.0 and not everything
            else "give a number from 0 up to, not including, 1 (0.9 for 90%)")
    raise ValueError(f"{name} {value!r} {what}: {hint}")


def as_bool_masks(masks: Masks) -> Masks:
    """``masks`` as bool tensors. A hand-made mask of 0s and 1s (``(w.abs() > t).float()``) is
    converted: ``~`` on it is a TypeError (float) or a bitwise NOT (int, -1 and -2 as indices)."""
    return {name: _as_bool_mask(mask, name) for name, mask in masks.items()}


def _as_bool_mask(mask: torch.Tensor, name: str) -> torch.Tensor:
    if mask.dtype == torch.bool:
        return mask
    if mask.is_complex() or not ((mask == 0) | (mask == 1)).all():
        raise ValueError(f"masks must be bool tensors (True = keep): {name}'s mask ({mask.dtype}) holds values "
                         f"other than 0 and 1; build it as a comparison, e.g. scores > threshold")
    return mask != 0


def check_fits_weights(masks: dict[str, torch.Tensor], params: dict[str, torch.Tensor],
                       what: str = "mask") -> None:
    """ValueError naming the layer unless each of ``masks`` (or scores: ``what``) names one of
    ``params`` and has its weight's shape. Shapes only, no values: cheap enough for every step.
    Without it a (192,) row mask broadcast across a (192, 192) weight's columns without a word."""
    for name, mask in masks.items():
        p = params.get(name)
        if p is None:
            raise ValueError(_not_a_weight(name, params, what))
        if mask.shape != p.shape:
            raise ValueError(f"{name}: {what} shape {tuple(mask.shape)} but the weight is {tuple(p.shape)}; "
                             f"a mask (or score) needs one entry per weight: {_expand_hint(mask, p)}")


def _not_a_weight(name: str, params: dict[str, torch.Tensor], what: str) -> str:
    close = difflib.get_close_matches(str(name), list(params), n=1)
    weights = [n for n, p in params.items() if n.endswith("weight") and p.dim() > 1] or list(params)  # conv, linear
    shown = weights if len(weights) <= 5 else weights[:5] + ["..."]
    guess = f" (did you mean {close[0]!r}?)" if close else ""
    return (f"{what} for {name!r}: the model has no such parameter{guess}; name layers as "
            f"model.named_parameters() does, e.g. {shown}")


def _expand_hint(mask: torch.Tensor, p: torch.Tensor) -> str:
    if mask.dim() == 1 and mask.numel() == p.numel():  # flattened
        return "reshape it with .view_as(weight)"
    if mask.dim() < p.dim() and mask.shape == p.shape[:mask.dim()]:  # per row / per filter, dims dropped
        kept = tuple(mask.shape) + (1,) * (p.dim() - mask.dim())
        return (f"expand a per-row or per-filter score with .reshape{kept}.expand_as(weight) "
                f"(or compute it with keepdim=True): .expand_as alone would spread it along the last dimension")
    return "expand a per-row or per-filter score with .expand_as(weight), or score each weight (weight.abs())"


def check_finite_scores(scores: dict[str, torch.Tensor]) -> None:
    """ValueError naming the first layer with a NaN or +inf score: a sort ranks NaN above every
    number, so its weights were kept as the most important. -inf passes: ``nested_scores`` marks
    the weights already pruned with it."""
    for name, s in scores.items():
        if (s.isnan() | s.isposinf()).any():
            raise ValueError(f"{name}: scores contain NaN/inf (a diverged model?): check the model's accuracy "
                             f"and losses, and prune a model that trained normally")


NO_PRUNABLE = ("no prunable weights: the first conv and the classifier stay dense unless include_first / "
               "include_classifier (prunable_parameters' arguments, or the profile's) ask for them")


def masks_from_scores(scores: dict[str, torch.Tensor], sparsity: float | dict[str, float],
                      scope: str = "global") -> Masks:
    """Keep-masks removing the lowest-scoring weights.

    ``sparsity`` is the share to remove (0..1); with ``scope="layer"`` it may be a dict of
    per-layer shares. Already-zero scores count among the lowest, so masks only grow sparser.
    """
    if scope not in ("global", "layer"):
        raise ValueError(f"unknown scope {scope!r}; use 'global' or 'layer'")
    if scope == "global" and isinstance(sparsity, dict):
        raise ValueError("a dict of per-layer sparsities needs scope='layer'")
    if not isinstance(sparsity, dict):
        check_share(sparsity)  # before the check below: 95 (for 0.95) is the slip to name first
    if not scores:
        raise ValueError(NO_PRUNABLE)
    check_finite_scores(scores)
    if isinstance(sparsity, dict):
        # A misspelt name was ignored (its layer then failed as a bare KeyError, or was pruned by
        # nobody's share): the names must match the scores' both ways.
        missing = [n for n in scores if n not in sparsity]
        unknown = [n for n in sparsity if n not in scores]
        if missing or unknown:
            wrong = [f"no share for {missing}"] if missing else []
            if unknown:
                wrong.append(f"{unknown} {'is not a scored layer' if len(unknown) == 1 else 'are not scored layers'}")
            names = list(scores)
            shown = names if len(names) <= 6 else names[:6] + ["..."]
            raise ValueError(f"per-layer sparsities must give one share for each scored layer: "
                             f"{'; '.join(wrong)}. Name the layers as the scores do: {shown}")
    if scope == "global":
        flat = torch.cat([s.flatten().float() for s in scores.values()])
        keep = _keep_lowest_removed(flat, sparsity)
        masks, start = {}, 0
        for name, s in scores.items():
            masks[name] = keep[start:start + s.numel()].view_as(s)
            start += s.numel()
        return masks
    if isinstance(sparsity, dict):
        return {name: _keep_lowest_removed(s.flatten().float(), sparsity[name], f"sparsity[{name!r}]",
                                           f"weights of layer {name}").view_as(s)
                for name, s in scores.items()}
    return {name: _keep_lowest_removed(s.flatten().float(), sparsity, what=f"weights of layer {name}").view_as(s)
            for name, s in scores.items()}


def _keep_lowest_removed(flat: torch.Tensor, sparsity: float, name: str = "sparsity",
                         what: str = "prunable weights") -> torch.Tensor:
    # At least the share asked, never a weight short: round() would leave 69.9999% of some layer
    # sizes for 70%, below the course's minimum. The tolerance absorbs float error (55 / 55296 *
    # 55296 = 55.00000000000001 would take one weight more); it grows with n, as that error does, and
    # stays far below one weight, which a fixed 1e-6 did not (0.7 + 1e-8 of 10 weights removed 7, not 8).
    n = flat.numel()
    k = math.ceil(check_share(sparsity, name) * n - n * 1e-12)
    if k == n > 0:  # a share just below 1 (0.999999) rounds up to every weight, as 1 would
        raise ValueError(f"{name} {sparsity!r} would remove all {n} {what}: "
                         f"give a lower share (at most {n - 1} of {n} may go)")
    keep = torch.ones_like(flat, dtype=torch.bool)
    if k:
        # A stable sort ranks ties by position: exactly k entries go, whatever the ties.
        order = torch.sort(flat, stable=True).indices
        keep[order[:k]] = False
    return keep


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Masks) -> None:
    """Zero every masked-out weight in place: +0.0, which a multiply by the mask would not give a
    negative weight (-0.0); a sparse checkpoint, which stores only the nonzeros, reloads it bit for bit."""
    params = dict(model.named_parameters())
    check_fits_weights(masks, params)
    for name, mask in as_bool_masks(masks).items():
        params[name].masked_fill_(~mask.to(params[name].device), 0.0)


class MaskEnforcer:
    """``fit`` callback that keeps pruned weights at exactly zero, for about one multiply per step.

    ``before_step`` (``fit`` runs it between backward and the optimizer step) multiplies the
    gradients by the masks: one multi-tensor kernel. A pruned weight that is zero, with a zero
    gradient and zero optimizer state, stays exactly zero under SGD (momentum, Nesterov, weight
    decay: decay of a zero weight is zero, its momentum never leaves zero) and AdamW (decoupled
    decay scales zero; both moments stay zero, so its update is 0 / (0 + eps) = 0). So the weights
    and the optimizer state (momentum, Adam moments) need re-masking only when that premise may not
    hold: the first step, a new optimizer, or masks that changed. Clipping then sees the gradient
    actually applied (pruned entries excluded from its norm).

    Called after the step (``__call__``), it re-masks weights and state in those cases, and after
    every step when ``before_step`` never ran (a training loop of one's own): always exact.

    The masks are kept as multiplicative factors laid out like their weights (channels_last
    included), so the multi-tensor kernels take their fast path; a mask replaced in the dict, or
    edited in place (``masks[n][...] = False``, ``masks[n] &= new``: seen by torch's version
    counter, with no device sync), is copied into the same buffer, which is what a captured CUDA
    graph reads (``graph_version`` changes only when the layout of the buffers does). An edit the
    counter does not see (through ``mask.data`` or ``mask.numpy()``) is copied when the next
    optimizer (the next ``fit``) arrives, not within a fit.

    >>> fit(model, train, test, epochs=3, lr=0.01, callback=MaskEnforcer(masks))  # doctest: +SKIP
    """

    graph_safe = True  # before_step is tensor work; masks changed later are copied in place

    def __init__(self, masks: Masks):
        self.masks = masks
        self.full_passes = 0  # how often weights and optimizer state were re-masked (tests)
        self._model: nn.Module | None = None
        self._optimizer = None  # the optimizer whose gradients before_step masks
        self._copied_for = None  # the optimizer whose arrival last copied every mask afresh
        self._held: dict[str, torch.Tensor] = {}  # name -> the mask its factor holds
        self._versions: dict[str, int | None] = {}  # name -> that mask's version when copied
        self._params: dict[str, torch.Tensor] = {}
        self._factors: dict[str, torch.Tensor] = {}  # name -> mask as p's dtype, device and strides
        self._layout: tuple = ()

    def _sync(self, model: nn.Module) -> bool:
        """Bring the factors up to date with the masks and ``model``; True if anything changed."""
        if model is not self._model:
            self._model, self._held, self._versions, self._params, self._factors = model, {}, {}, {}, {}
        changed = False
        if len(self._held) != len(self.masks) or any(self._stale(n, m) for n, m in self.masks.items()):
            params = dict(model.named_parameters())
            check_fits_weights({n: m for n, m in self.masks.items() if self._stale(n, m)}, params)
            for name in list(self._held):
                if name not in self.masks:
                    del self._held[name], self._versions[name], self._params[name], self._factors[name]
            for name, mask in self.masks.items():
                if self._stale(name, mask):
                    keep = _as_bool_mask(mask, name)  # a factor of 0.5 would scale, not mask
                    self._params[name] = params[name]
                    self._held[name], self._versions[name] = mask, _version(mask)
                    self._factor(name).copy_(keep)
            changed = True
        for name, p in self._params.items():  # moved or re-laid-out weights (model.to(...))
            f = self._factors[name]
            if f.device != p.device or f.dtype != p.dtype or f.stride() != p.stride():
                self._factor(name).copy_(self._held[name])
                changed = True
        if changed:
            self._layout = tuple((n, f.data_ptr()) for n, f in self._factors.items())
        return changed

    def _stale(self, name: str, mask: torch.Tensor) -> bool:
        """Whether ``mask`` is not what ``name``'s factor holds: another tensor, or the same one
        edited in place since (in-place ops bump its version; a check on the host, no device sync)."""
        held = self._versions.get(name)
        return self._held.get(name) is not mask or held is None or held != _version(mask)

    def _factor(self, name: str) -> torch.Tensor:
        p, f = self._params[name], self._factors.get(name)
        if f is None or f.device != p.device or f.dtype != p.dtype or f.stride() != p.stride():
            f = self._factors[name] = torch.empty_like(p, requires_grad=False)  # p's strides
        return f

    def graph_version(self) -> tuple:
        """Which factor buffers a captured step reads (new buffers need a new capture)."""
        return self._layout

    @torch.no_grad()
    def enforce(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Re-mask the weights and every per-weight optimizer state tensor (momentum_buffer,
        exp_avg, ...), all in one multi-tensor multiply."""
        tensors, factors = [], []
        for name, p in self._params.items():
            factor = self._factors[name]
            tensors.append(p)
            factors.append(factor)
            state = optimizer.state.get(p, {}) if optimizer is not None else {}
            for value in state.values():
                if torch.is_tensor(value) and value.shape == p.shape:
                    tensors.append(value)
                    factors.append(factor if value.dtype == p.dtype else factor.to(value.dtype))
        if tensors:
            torch._foreach_mul_(tensors, factors)
        self.full_passes += 1

    def _stale_for(self, model: nn.Module, optimizer) -> bool:
        """``_sync`` for a step of ``optimizer``; True if the weights and its state need re-masking.
        A new optimizer (a new fit) copies every mask afresh: an edit its version counter does not
        see (through ``mask.data`` or ``mask.numpy()``) is caught where students make them, between
        fits."""
        if optimizer is not self._copied_for:  # not _optimizer: a loop that only calls back never sets it
            self._versions.clear()
            self._copied_for = optimizer
        return self._sync(model) or optimizer is not self._optimizer

    @torch.no_grad()
    def before_step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        if self._stale_for(model, optimizer):
            self.enforce(optimizer)
            self._optimizer = optimizer
        pairs = [(p.grad, self._factors[n]) for n, p in self._params.items() if p.grad is not None]
        if pairs:
            torch._foreach_mul_([g for g, _ in pairs], [f for _, f in pairs])

    def __call__(self, model: nn.Module, optimizer: torch.optim.Optimizer, step: int) -> None:
        if self._stale_for(model, optimizer):
            self.enforce(optimizer)


def _version(mask: torch.Tensor) -> int | None:
    """``mask``'s in-place version counter; None for an inference tensor, which keeps none (it is
    then copied afresh at every sync: an edit of it inside ``torch.inference_mode`` is not missed)."""
    return None if mask.is_inference() else mask._version


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
    if masks is not None:  # masks for layers outside ``params`` are not checked here, as before
        check_fits_weights({n: m for n, m in masks.items() if n in params}, params)
    layers = {}
    for name, p in params.items():
        zeros = int((p == 0).sum())
        layers[name] = {"zeros": zeros, "total": p.numel(), "sparsity": zeros / p.numel()}
        if masks is not None and name in masks:
            revived = int((p[~_as_bool_mask(masks[name], name).to(p.device)] != 0).sum())
            if revived:
                raise AssertionError(f"{name}: {revived} pruned weights are not zero")
    pz, pt = sum(v["zeros"] for v in layers.values()), sum(v["total"] for v in layers.values())
    az = sum(int((p == 0).sum()) for p in model.parameters())
    at = sum(p.numel() for p in model.parameters())
    return {"layers": layers, "prunable_zeros": pz, "prunable_total": pt,
            "pruning_percentage": 100.0 * pz / max(pt, 1), "all_zeros": az, "all_total": at,
            "sparsity_all_parameters": 100.0 * az / max(at, 1)}
