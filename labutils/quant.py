"""Fixed-point weight quantization, written by hand with tensor ops (no ``torch.ao``).

A weight tensor ``w`` is mapped to integers ``q`` on a grid of at most 2^bits levels and back::

    q = clamp(round(w / scale) + zero_point, qmin, qmax)        w_hat = (q - zero_point) * scale

* ``symmetric``  - q in [-(2^(b-1) - 1), 2^(b-1) - 1], zero_point 0: 2^b - 1 levels mirrored
  around zero (the most negative code is left out so the grid stays symmetric);
* ``asymmetric`` - q in [0, 2^b - 1] spread over [min(w, 0), max(w, 0)]; the zero-point is
  rounded to an integer ("nudged"), so 0.0 is exactly on the grid.

Either way a zero weight maps to exactly zero, so a pruned model stays pruned; with a mask the
result is also multiplied by it. ``granularity`` is one scale for the whole tensor ("tensor") or
one per output channel ("channel", dim 0 of a conv/linear weight). ``clip`` "minmax" spans the
full range; "mse" shrinks the range (of each channel, or of the tensor) by the factor (from a grid)
that minimises the squared quantization error - at 2-3 bits a few outliers otherwise waste most of the levels.

Quantization-aware fine-tuning keeps float "shadow" weights as the parameters and quantizes them in
each forward pass (``FakeQuantizer``); the straight-through estimator passes the gradient unchanged
to weights inside the clipping range and blocks it outside. BatchNorm and biases stay in float
(weights-only quantization, as in the seed study).
"""
from __future__ import annotations

import copy
import numbers
import types
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .prune import MaskEnforcer, apply_masks, prunable_parameters

SCHEMES = ("symmetric", "asymmetric")
GRANULARITIES = ("tensor", "channel")
CLIPS = ("minmax", "mse")
# Shares of the full range the MSE search tries (1.0 = plain min/max).
CLIP_GRID = torch.linspace(0.15, 1.0, 35).tolist()


MIN_BITS, MAX_BITS = 2, 8  # the bit widths a grid may have (profile_check reads them too)


@dataclass(frozen=True)
class QuantSpec:
    """How to quantize: ``QuantSpec(4, "asymmetric", "channel", "mse")``."""

    bits: int
    scheme: str = "asymmetric"
    granularity: str = "channel"
    clip: str = "mse"

    def __post_init__(self):
        if isinstance(self.bits, numbers.Integral) and not isinstance(self.bits, bool):
            object.__setattr__(self, "bits", int(self.bits))  # numpy's integers too (np.arange's)
        if not (isinstance(self.bits, int) and MIN_BITS <= self.bits <= MAX_BITS):
            raise ValueError(f"bits must be an integer from {MIN_BITS} to {MAX_BITS}, got {self.bits!r}")
        for value, allowed, what in ((self.scheme, SCHEMES, "scheme"),
                                     (self.granularity, GRANULARITIES, "granularity"),
                                     (self.clip, CLIPS, "clip")):
            if value not in allowed:
                raise ValueError(f"unknown {what} {value!r}; choose one of {allowed}")

    @classmethod
    def parse(cls, method: str, bits: int) -> "QuantSpec":
        """``"asymmetric/channel/mse"`` (scheme/granularity/clip) at ``bits``."""
        if not isinstance(method, str):
            raise TypeError(f"a method is one string such as 'asymmetric/channel/mse' (then the bits), "
                            f"got {method!r}")
        parts = method.split("/")
        if len(parts) != 3:
            raise ValueError(f"method {method!r} must read scheme/granularity/clip, "
                             f"e.g. 'asymmetric/channel/mse'")
        return cls(bits, *parts)

    @property
    def method(self) -> str:
        return f"{self.scheme}/{self.granularity}/{self.clip}"

    @property
    def qrange(self) -> tuple[int, int]:
        if self.scheme == "symmetric":
            return -(2 ** (self.bits - 1) - 1), 2 ** (self.bits - 1) - 1
        return 0, 2 ** self.bits - 1


# ----------------------------------------------------------------------------------------
# Quantizer
# ----------------------------------------------------------------------------------------
def _range(w: torch.Tensor, granularity: str) -> tuple[torch.Tensor, torch.Tensor]:
    """min(w, 0) and max(w, 0) per output channel (shape [C, 1, ...]) or for the tensor."""
    w = w.detach().float()
    flat = w.reshape(w.shape[0], -1) if granularity == "channel" and w.ndim > 1 else w.reshape(1, -1)
    lo, hi = flat.min(1).values.clamp(max=0), flat.max(1).values.clamp(min=0)
    shape = (-1,) + (1,) * (w.ndim - 1) if granularity == "channel" and w.ndim > 1 else (1,) * max(w.ndim, 1)
    return lo.view(shape), hi.view(shape)


def qparams(w: torch.Tensor, spec: QuantSpec, ratio: torch.Tensor | float = 1.0):
    """(scale, zero_point), broadcastable to ``w``, for the range shrunk by ``ratio``."""
    lo, hi = _range(w, spec.granularity)
    return _scale_zero(lo * ratio, hi * ratio, spec)


def _scale_zero(lo: torch.Tensor, hi: torch.Tensor, spec: QuantSpec):
    """(scale, zero_point) of the grid spanning [lo, hi] (any broadcastable shapes)."""
    qmin, qmax = spec.qrange
    if spec.scheme == "symmetric":
        scale = torch.maximum(-lo, hi) / qmax
    else:
        scale = (hi - lo) / (qmax - qmin)
    # An all-zero channel has no range: any positive scale maps it to zero.
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    if spec.scheme == "symmetric":
        return scale, torch.zeros_like(scale)
    # The nudge: an integer zero-point puts 0.0 exactly on the grid.
    return scale, torch.clamp(torch.round(qmin - lo / scale), qmin, qmax)


def _levels(w: torch.Tensor, scale, zero, qmin: int, qmax: int) -> torch.Tensor:
    return torch.clamp(torch.round(w / scale) + zero, qmin, qmax)


class _STEQuantize(torch.autograd.Function):
    """Forward: fake-quantize. Backward: identity inside the clipping range, zero outside."""

    @staticmethod
    def forward(ctx, w, scale, zero, qmin, qmax):
        x = w / scale + zero
        ctx.save_for_backward((x >= qmin - 0.5) & (x <= qmax + 0.5))
        # _levels' rounding, not round(x): a tie (x.5) rounds to even, so with an odd zero-point the
        # two would put the weight on neighbouring levels, and QAT would train another grid than it bakes.
        return (_levels(w, scale, zero, qmin, qmax) - zero) * scale

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None, None


def fake_quantize(w: torch.Tensor, scale, zero, spec: QuantSpec) -> torch.Tensor:
    """``w`` on the grid (float tensor), differentiable through the straight-through estimator."""
    qmin, qmax = spec.qrange
    return _STEQuantize.apply(w, scale.to(w.dtype), zero.to(w.dtype), qmin, qmax)


def _refuse_non_finite(w: torch.Tensor, name: str = "a weight tensor") -> None:
    """A NaN range falls back to scale 1 (every weight rounded to an integer), an inf one to NaN
    everywhere: say so rather than score a silently ruined model."""
    if not torch.isfinite(w).all():
        raise ValueError(f"{name} holds NaN or inf (did its training diverge?): quantize a model "
                         f"whose weights are finite, e.g. reload its checkpoint")


@torch.no_grad()
def search_clip(w: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """The range-shrinking ratio (per channel or for the tensor) that minimises the squared
    error of quantizing ``w``; 1.0 for ``clip="minmax"``."""
    lo, hi = _range(w, spec.granularity)
    if spec.clip == "minmax":
        return torch.ones_like(lo)
    qmin, qmax = spec.qrange
    w = w.detach().float()
    flat = w.reshape(lo.shape[0], -1)                          # [groups, n]
    ratios = torch.tensor(CLIP_GRID, device=w.device).view(-1, 1, 1)
    shape = lo.shape
    lo, hi = lo.reshape(1, -1, 1) * ratios, hi.reshape(1, -1, 1) * ratios  # [R, groups, 1]
    scale, zero = _scale_zero(lo, hi, spec)  # all candidate ranges at once
    err = ((_levels(flat, scale, zero, qmin, qmax) - zero) * scale - flat).pow(2).sum(-1)  # [R, groups]
    best = err.argmin(0)  # the first (smallest) ratio among equals
    return ratios.flatten()[best].view(shape)


@torch.no_grad()
def quantize_tensor(w: torch.Tensor, spec: QuantSpec, mask: torch.Tensor | None = None,
                    ratio: torch.Tensor | None = None, name: str = "a weight tensor") -> torch.Tensor:
    """``w`` rounded onto ``spec``'s grid (float values); masked-out entries exactly zero. Weights
    that are not finite are refused where the grid is searched for them (post-training); a QAT
    run that diverges bakes its NaNs, scored at chance, as the other runs of its sweep go on."""
    if ratio is None:
        _refuse_non_finite(w, name)
        ratio = search_clip(w, spec)
    scale, zero = qparams(w, spec, ratio)
    qmin, qmax = spec.qrange
    out = ((_levels(w.float(), scale, zero, qmin, qmax) - zero) * scale).to(w.dtype)
    return out * mask.to(out.device, out.dtype) if mask is not None else out


def quantized_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Every conv and linear weight, the first conv and the classifier included."""
    return prunable_parameters(model, include_first=True, include_classifier=True)


@torch.no_grad()
def quantize_model_(model: nn.Module, spec: QuantSpec, masks: dict | None = None) -> nn.Module:
    """Post-training quantization in place: every conv/linear weight rounded onto its grid."""
    for name, p in quantized_parameters(model).items():
        p.copy_(quantize_tensor(p, spec, (masks or {}).get(name), name=name))
    return model


def quantized_copy(model: nn.Module, spec: QuantSpec, masks: dict | None = None) -> nn.Module:
    """A post-training-quantized copy; ``model`` is left as it was."""
    return quantize_model_(copy.deepcopy(model), spec, masks)


# ----------------------------------------------------------------------------------------
# Quantization-aware fine-tuning
# ----------------------------------------------------------------------------------------
def _quantized_forward(self, x):
    """Forward of a conv/linear layer with its weight fake-quantized (bound per instance)."""
    w = self._labutils_fq(self.weight)
    if isinstance(self, nn.Conv2d):
        return self._conv_forward(x, w, self.bias)
    return F.linear(x, w, self.bias)


class _LayerQuantizer:
    def __init__(self, spec: QuantSpec, mask: torch.Tensor | None):
        self.spec, self.mask, self.ratio, self.stale = spec, mask, None, True

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        if self.stale:  # searched here, not when asked: the ratio baked is the one last trained with
            self.ratio, self.stale = search_clip(w, self.spec), False
        # Scale and zero-point follow the shadow weights' current range (no gradient through them).
        scale, zero = qparams(w, self.spec, self.ratio)
        out = fake_quantize(w, scale, zero, self.spec)
        if self.mask is not None:
            self.mask = self.mask.to(out.device)
            out = out * self.mask
        return out


class FakeQuantizer:
    """Quantize conv/linear weights in every forward pass while the optimizer updates float shadow
    weights; also a ``fit`` callback (keeps pruned weights at zero through a ``MaskEnforcer`` and
    re-searches the clipping ranges every ``refresh_every`` steps).

    Parameter names and the state dict do not change, so masks, optimizers and checkpoints work
    as usual. ``finish()`` writes the quantized weights into the parameters and restores the
    layers' own forward.

    >>> fq = FakeQuantizer(model, QuantSpec(3), masks)             # doctest: +SKIP
    >>> fit(model, train, epochs=2, lr=0.01, callback=fq); fq.finish()  # doctest: +SKIP
    """

    def __init__(self, model: nn.Module, spec: QuantSpec, masks: dict | None = None,
                 refresh_every: int = 100):
        self.model, self.spec, self.refresh_every = model, spec, refresh_every
        self.enforcer = MaskEnforcer(masks) if masks else None
        names = set(quantized_parameters(model))
        self.layers: dict[str, nn.Module] = {}
        for name, module in model.named_modules():
            weight_name = f"{name}.weight" if name else "weight"
            if weight_name in names:
                module._labutils_fq = _LayerQuantizer(spec, (masks or {}).get(weight_name))
                module.forward = types.MethodType(_quantized_forward, module)
                self.layers[weight_name] = module
        if self.enforcer:
            # Start from exactly-zero pruned weights, whatever the model held.
            apply_masks(model, masks)

    def before_step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        if self.enforcer:
            self.enforcer.before_step(model, optimizer)

    def __call__(self, model: nn.Module, optimizer: torch.optim.Optimizer, step: int) -> None:
        if self.enforcer:
            self.enforcer(model, optimizer, step)
        if self.refresh_every and step % self.refresh_every == 0:
            # Searched again at the next forward: a refresh on the last step would otherwise bake
            # ratios no step trained with (and BatchNorm never saw).
            for module in self.layers.values():
                module._labutils_fq.stale = True

    @torch.no_grad()
    def finish(self) -> nn.Module:
        """Bake the quantized weights into the parameters and detach from the model."""
        for name, module in self.layers.items():
            quant = module._labutils_fq
            module.weight.copy_(quantize_tensor(module.weight, self.spec, quant.mask, quant.ratio))
            del module.forward, module._labutils_fq
        self.layers = {}
        return self.model


# ----------------------------------------------------------------------------------------
# Size accounting
# ----------------------------------------------------------------------------------------
def relative_index_entries(positions: torch.Tensor, index_bits: int) -> int:
    """Entries needed to store nonzeros at sorted flat ``positions`` with ``index_bits``-bit gaps
    (Deep Compression style): a gap of g zeros too long for the field needs g // 2^k filler
    entries (each filler is a stored zero that also covers 2^k - 1 skipped positions)."""
    if positions.numel() == 0:
        return 0
    gaps = torch.diff(positions, prepend=positions.new_tensor([-1])) - 1
    return int(positions.numel() + (gaps // (2 ** index_bits)).sum())


def tensor_size_bits(w: torch.Tensor, bits: int, qparam_bits: int = 0) -> dict:
    """Bits to store ``w`` at ``bits`` per value: the cheapest of dense (every entry), bitmask
    (nonzeros + 1 bit per entry) and relative indices (nonzeros + fillers, each value + a k-bit
    gap, best k from 1 to 16); plus ``qparam_bits`` for scales and zero-points."""
    n = w.numel()
    positions = torch.nonzero(w.detach().flatten() != 0).flatten()
    nnz = positions.numel()
    options = {"dense": n * bits, "bitmask": nnz * bits + n}
    if nnz < n:
        options.update({f"relative{k}": relative_index_entries(positions, k) * (bits + k)
                        for k in range(1, 17)})
    encoding = min(options, key=lambda k: (options[k], k != "dense"))
    return {"numel": n, "nonzeros": nnz, "bits": bits, "encoding": encoding,
            "weight_bits": options[encoding], "qparam_bits": qparam_bits,
            "total_bits": options[encoding] + qparam_bits}


def model_size_bits(model: nn.Module, spec: QuantSpec | None = None, float_bits: int = 32) -> dict:
    """Storage of ``model`` in bits: quantized conv/linear weights (values + indices when sparse
    + a 32-bit scale and, asymmetric, a ``bits``-bit zero-point per channel or tensor) and every
    other parameter/buffer in float. ``spec=None``: weights in float too (the fp32 reference)."""
    quantized = quantized_parameters(model)
    layers, weight_total = {}, 0
    for name, p in quantized.items():
        bits = spec.bits if spec else float_bits
        groups = (p.shape[0] if spec.granularity == "channel" else 1) if spec else 0
        per_group = (32 + (spec.bits if spec.scheme == "asymmetric" else 0)) if spec else 0
        layers[name] = tensor_size_bits(p, bits, groups * per_group)
        weight_total += layers[name]["total_bits"]
    ids = {id(p) for p in quantized.values()}
    others = sum(t.numel() for t in list(model.parameters()) + list(model.buffers())
                 if id(t) not in ids and t.is_floating_point())
    total = weight_total + others * float_bits
    return {"total_bits": total, "quantized_weight_bits": weight_total, "float_bits": others * float_bits,
            "kilobytes": total / 8 / 1000, "layers": layers}
