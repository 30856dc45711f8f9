"""Speed on the device: the settings and wrappers that make a training step fast.

* ``memory_format(device)`` - channels_last on CUDA, the default layout elsewhere.
* ``tune_backends(device)`` - cuDNN picks the fastest convolution for each shape it meets
  (the workbook's batches have fixed shapes) and fp32 matmuls may use TF32.
* ``fused_optimizer(model)`` - whether the optimizers should use their fused CUDA kernels (one
  launch for all parameters instead of several per tensor: tiny models are launch-bound).
* ``CompiledForward`` - ``torch.compile`` of a model's forward (and, through it, backward) with a
  fallback: where compilation is unavailable or fails, training goes on eagerly with a warning
  (an unknown mode name is refused, not fallen back from).
* ``precision_for(device)`` - the ONE place that decides the mixed precision: "bf16" on CUDA GPUs
  with native bf16 (compute capability >= 8.0), "fp16" with a gradient scaler on older ones
  (Colab's T4 is 7.5), "fp32" on CPU and MPS. ``autocast`` and ``grad_scaler`` follow it; training,
  evaluation and latency measurement all use them, and a run's metadata records it.
* ``GraphedStep`` / ``graphed_call`` - CUDA graphs: a whole training step (forward, backward,
  gradient masks, optimizer step) or an inference forward captured once and replayed, one launch
  instead of hundreds for the launch-bound small models. Eager, with a warning, where capture is
  unavailable (CPU, MPS) or fails.

Compiling pays off only for long runs: the first step of each new shape costs seconds to a
minute, later copies of the same architecture reuse the compiled graph (inductor also caches it
on disk between processes). Profiles switch it on per recipe (``"compile": True``), measured by
``benchmarks/bench_train.py``.
"""
from __future__ import annotations

import contextlib
import warnings
from collections import Counter
from typing import Callable

import torch
from torch import nn

from .errors import one_line


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


@contextlib.contextmanager
def full_float32():
    """Float32 matmuls and convolutions in full precision, not TF32 (which ``tune_backends`` allows
    for speed): a comparison meant to show float rounding (1e-7) would show TF32's 1e-3 instead."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


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
        # A misspelt mode is the caller's mistake, not the platform's: refused, not trained eagerly.
        if mode is not None and not known_compile_mode(mode):
            raise ValueError(f"compile={mode!r} is not a torch.compile mode: use True (its default mode), "
                             f"False (no compilation) or one of {', '.join(map(repr, compile_modes()))}")
        self.model = model
        self.working: bool | None = None
        self.reason: str | None = None  # why it fell back to the eager model (fit's history records it)
        self.cudagraphs = compile_uses_cudagraphs(mode)  # fixed by the mode: not looked up every step
        param = next(model.parameters(), None)
        if self.cudagraphs and (reason := graphs_unavailable(param.device if param is not None else "cpu")):
            # inductor drops the graphs off CUDA by itself, silently: say so, as fit(graphs=True) does
            warnings.warn(f"torch.compile mode {mode!r} uses CUDA graphs ({reason}); compiled without them",
                          RuntimeWarning, stacklevel=3)
            self.cudagraphs = False
        try:  # lazy: nothing is compiled until the first call, but the platform is checked now
            self.compiled = torch.compile(model, mode=mode)
        except Exception as err:  # torch.compile refuses this Python (3.15+, a free-threaded build)
            self._fall_back("torch.compile is not available here", err)

    def _fall_back(self, what: str, err: Exception) -> None:
        self.reason = f"{what} ({one_line(err, 200)})"
        warnings.warn(f"{self.reason}; training continues without it", RuntimeWarning, stacklevel=3)
        self.working = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.working is False:
            return self.model(x)
        if self.cudagraphs:
            # CUDA graphs: each training step is a new generation (earlier outputs may be reused).
            torch.compiler.cudagraph_mark_step_begin()
        try:
            out = self.compiled(x)
        except Exception as err:  # compiler errors surface at the first call
            if self.working:
                raise
            failure = err
        else:
            self.working = True
            return out
        # Eager first, outside the handler: a model that fails by itself (a wrong Linear width)
        # raises its own error here, not a compile warning with torch's traceback above it.
        out = self.model(x)
        self._fall_back("torch.compile failed on the first step", failure)
        return out


# torch.compile's documented modes: the names known where inductor's own table cannot be read.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_modes() -> tuple[str, ...]:
    """The mode names this torch.compile accepts: inductor's table, else ``COMPILE_MODES``."""
    try:
        from torch._inductor import list_mode_options
        return tuple(list_mode_options())
    except Exception:  # no inductor, or one without the table
        return COMPILE_MODES


def known_compile_mode(mode) -> bool:
    """Whether ``mode`` is a torch.compile mode name. The documented ones need no import of
    inductor (a second or more): only other names are looked up in its table."""
    return isinstance(mode, str) and (mode in COMPILE_MODES or mode in compile_modes())


def compile_uses_cudagraphs(mode: bool | str | None) -> bool:
    """Whether ``torch.compile``'s ``mode`` captures CUDA graphs itself ("reduce-overhead", and
    "max-autotune" too): each step must then mark its start, and no graph of ours may wrap it."""
    if mode in (None, False, True, "default"):
        return False
    try:
        from torch._inductor import list_mode_options
        return bool(list_mode_options(mode).get("triton.cudagraphs"))
    except Exception:  # an unknown mode, or an inductor without the table: the names we know
        return mode in ("reduce-overhead", "max-autotune")


def forward_runner(model: nn.Module, compile: bool | str):
    """What ``fit`` calls for a training forward pass: the model itself, or its compiled form.
    ``compile`` is False, True (torch.compile's default mode) or a mode name such as
    ``"reduce-overhead"`` (CUDA graphs: removes the per-kernel launch cost that bounds small models
    on a slow host, not yet measured for this workbook)."""
    if not compile:
        return model
    return CompiledForward(model, None if compile is True else compile)


# -- mixed precision ----------------------------------------------------------------------------
PRECISIONS = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def precision_for(device) -> str:
    """The precision ``device`` trains and measures in: "bf16" on CUDA GPUs that run it natively
    (compute capability >= 8.0: A100, H100, RTX 30xx and later), "fp16" on older CUDA GPUs (a T4,
    7.5, has fp16 tensor cores but no bf16 ones; training then needs a gradient scaler), "fp32" on
    CPU and MPS (autocast there is slower than fp32 for these small convolutions)."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return "fp32"
    major, _ = torch.cuda.get_device_capability(device)
    return "bf16" if major >= 8 else "fp16"


def _checked(precision: str | None, device) -> str:
    precision = precision or precision_for(device)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)} (or None: auto)")
    return precision


def autocast(device, precision: str | None = None, cache: bool = True):
    """Autocast to ``precision`` (None: ``precision_for(device)``); a no-op context for "fp32".
    ``cache=False`` inside CUDA graph capture (cast copies must be recomputed at each replay)."""
    device = torch.device(device)
    precision = _checked(precision, device)
    return torch.autocast(device.type, dtype=PRECISIONS[precision], enabled=precision != "fp32",
                          cache_enabled=cache)


def unscaled_precision(device) -> str:
    """For a backward pass without a gradient scaler (pruning scores): the device's precision, but
    fp32 where that is fp16, whose small gradients would underflow unscaled."""
    precision = precision_for(device)
    return "fp32" if precision == "fp16" else precision


def grad_scaler(device, precision: str | None = None) -> torch.amp.GradScaler:
    """A gradient scaler, enabled for fp16 only (bf16 has fp32's range: nothing underflows).
    Disabled, its ``scale``/``step``/``update`` are plain pass-throughs."""
    device = torch.device(device)
    fp16 = _checked(precision, device) == "fp16"
    return torch.amp.GradScaler(device.type if fp16 else "cpu", enabled=fp16)


# -- CUDA graphs --------------------------------------------------------------------------------
def graphs_unavailable(device) -> str | None:
    """None where CUDA graphs can be captured on ``device``, else why not (one line)."""
    device = torch.device(device)
    if device.type != "cuda":
        return f"CUDA graphs need a CUDA device, this is {device.type}"
    if not torch.cuda.is_available():
        return "CUDA graphs need a CUDA GPU and none is visible"
    return None


def _fallback_warning(reason: str) -> None:
    warnings.warn(f"CUDA graphs not used ({reason}); running eagerly", RuntimeWarning, stacklevel=3)


class _SideStream:
    """Eager calls before a capture run on a side stream, as CUDA graph capture requires."""

    def __init__(self):
        self.stream = torch.cuda.Stream()

    def __call__(self, fn: Callable, *args):
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            out = fn(*args)
        torch.cuda.current_stream().wait_stream(self.stream)
        return out


def _capture(fn: Callable, *static_inputs):
    """(graph, outputs): ``fn(*static_inputs)`` recorded, not run (the caller replays it). If the
    capture fails, the caller's stream is made current again before the error goes on:
    ``torch.cuda.graph`` leaves its capture stream current when ending the capture raises, and the
    eager fallback must not run there."""
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.current_stream()
    try:
        with torch.cuda.graph(graph):
            out = fn(*static_inputs)
    except BaseException:
        torch.cuda.set_stream(stream)
        raise
    return graph, out


def _capture_failure(err: BaseException) -> str:
    """Why a capture failed, as its first error says: ending a capture that an operation broke
    raises again ("capture invalidated") on top of the error that names the operation."""
    while err.__context__ is not None:
        err = err.__context__
    return f"capture failed: {type(err).__name__}: {(str(err).splitlines() or [''])[0][:200]}"


class GraphedStep:
    """Call ``step(*inputs)`` through CUDA graphs: per input shape, ``warmup`` eager calls on a side
    stream (cuDNN autotuning, optimizer state, compilation), then one capture into static input
    buffers, then for every later call: copy the inputs in, replay, return the static outputs
    (overwritten by the next call: use them before calling again).

    ``step`` must do tensor work only: no host synchronisation (``.item()``, printing a tensor), no
    Python decision that depends on tensor values or on a step count (it runs once, at capture).
    ``version()``, when given, names what the capture depends on beyond the inputs (a mask
    enforcer's layout): when it changes, the graphs are dropped and captured again.

    Where graphs are unavailable (not CUDA) or a capture fails, ``step`` runs eagerly from then on,
    with a warning; ``self.reason`` says why (None while graphs are in use). ``self.replayed``
    counts the calls a graph ran (0: every call ran eagerly).
    """

    def __init__(self, step: Callable, device, warmup: int = 3, version: Callable | None = None):
        self.step, self.warmup, self.version = step, max(1, warmup), version
        self.reason = graphs_unavailable(device)
        if self.reason:
            _fallback_warning(self.reason)
        self.graphs: dict = {}  # input shapes -> (graph, static inputs, static outputs)
        self.calls: Counter = Counter()
        self._version = None
        self._side = None
        self.replayed = 0

    def __call__(self, *inputs):
        if self.reason:
            return self.step(*inputs)
        if self.version is not None and self.version() != self._version:
            self._version, self.graphs, self.calls = self.version(), {}, Counter()
        key = tuple((t.shape, t.dtype) for t in inputs)
        if key in self.graphs:
            graph, static_in, out = self.graphs[key]
            for buffer, t in zip(static_in, inputs):
                buffer.copy_(t)
            graph.replay()
            self.replayed += 1
            return out
        if self.calls[key] < self.warmup:
            self.calls[key] += 1
            self._side = self._side or _SideStream()
            return self._side(self.step, *inputs)
        static_in = [t.clone() for t in inputs]
        try:
            graph, out = _capture(self.step, *static_in)
        except Exception as err:  # an operation that cannot be captured
            self.reason = _capture_failure(err)
            _fallback_warning(self.reason)
            return self.step(*inputs)
        self.graphs[key] = (graph, static_in, out)
        graph.replay()  # capturing records the step without running it: run it now
        self.replayed += 1
        return out


def graphed_call(fn: Callable, device, warmup: int = 3) -> tuple[Callable, str | None]:
    """(call, reason): ``fn()`` (no arguments: it reads tensors it closes over) captured in a CUDA
    graph after ``warmup`` eager calls, ``call`` replaying it; or ``fn`` itself with the reason
    graphs are not used (warned). For timing inference at a fixed batch."""
    reason = graphs_unavailable(device)
    if reason is None:
        try:
            side = _SideStream()
            for _ in range(max(1, warmup)):
                side(fn)
            graph, out = _capture(fn)

            def replay():
                graph.replay()
                return out
            return replay, None
        except Exception as err:
            reason = _capture_failure(err)
    _fallback_warning(reason)
    return fn, reason
