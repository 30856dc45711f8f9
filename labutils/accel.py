"""Speed on the device: the settings and wrappers that make a training step fast.

* ``memory_format(device)`` - channels_last on CUDA, the default layout elsewhere.
* ``tune_backends(device)`` - cuDNN picks the fastest convolution for each shape it meets
  (the workbook's batches have fixed shapes) and fp32 matmuls may use TF32.
* ``fused_optimizer(model)`` - whether the optimizers should use their fused CUDA kernels (one
  launch for all parameters instead of several per tensor: tiny models are launch-bound).
* ``CompiledForward`` - ``torch.compile`` of a model's forward (and, through it, backward) with a
  fallback: where compilation is unavailable or fails, training goes on eagerly with a warning.

Compiling pays off only for long runs: the first step of each new shape costs seconds to a
minute, later copies of the same architecture reuse the compiled graph (inductor also caches it
on disk between processes). Profiles switch it on per recipe (``"compile": True``), measured by
``benchmarks/bench_train.py``.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn


def memory_format(device) -> torch.memory_format:
    """channels_last on CUDA, where the tensor cores want NHWC; the default layout elsewhere. On a
    CPU channels_last gains little, and oneDNN's channels_last backward of some tiny pruned convs
    never finishes (seen with torch 2.14 on x86: a 1x1 stride-2 conv from 4 to 8 channels at 32x32)."""
    return torch.channels_last if torch.device(device).type == "cuda" else torch.contiguous_format


def tune_backends(device: torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def fused_optimizer(model: nn.Module) -> bool:
    """Fused optimizer kernels where every parameter lives on a CUDA device."""
    return all(p.is_cuda for p in model.parameters())


class CompiledForward:
    """Call ``model`` through ``torch.compile``; on the first call, fall back to the eager model
    if compilation fails (no compiler toolchain, an unsupported platform or operator).

    The wrapper shares the model's parameters, so optimizers, masks and callbacks that act on
    ``model`` act on what the compiled code runs.
    """

    def __init__(self, model: nn.Module, mode: str | None = None):
        self.model, self.mode = model, mode
        self.compiled = torch.compile(model, mode=mode)  # lazy: nothing is compiled until the first call
        self.working: bool | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.working is False:
            return self.model(x)
        if self.mode == "reduce-overhead":
            # CUDA graphs: each training step is a new generation (earlier outputs may be reused).
            torch.compiler.cudagraph_mark_step_begin()
        try:
            out = self.compiled(x)
        except Exception as err:  # compiler errors surface at the first call
            if self.working:
                raise
            warnings.warn(f"torch.compile is not available here ({type(err).__name__}: "
                          f"{str(err).splitlines()[0][:200]}); training continues without it",
                          RuntimeWarning, stacklevel=2)
            self.working = False
            return self.model(x)
        self.working = True
        return out


def forward_runner(model: nn.Module, compile: bool | str):
    """What ``fit`` calls for a training forward pass: the model itself, or its compiled form.
    ``compile`` is False, True (torch.compile's default mode) or a mode name such as
    ``"reduce-overhead"`` (CUDA graphs: removes the per-kernel launch cost that bounds small models
    on a slow host, not yet measured for this workbook)."""
    if not compile:
        return model
    return CompiledForward(model, None if compile is True else compile)
