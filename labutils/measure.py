"""What a model costs: multiply-accumulates counted from its layers, and latency measured on a device.

* ``count_macs(model, input_size)`` - MACs for ONE image, from forward hooks on every ``Conv2d`` and
  ``Linear`` plus the two attention matmuls (q @ k^T and attn @ v) of timm's ViT attention. Bias
  adds, normalisation, activations and softmax are not counted (they are a rounding error next to
  the matmuls, and BatchNorm folds into the conv before it at deployment).
* ``measure_latency(model, input_size, batch_size, device)`` - the median time of a forward pass in
  inference conditions: eval mode, no_grad, channels_last on CUDA, the device's mixed precision
  (``accel.precision_for``: bf16 or fp16 on CUDA, fp32 elsewhere); CUDA events after a warm-up on
  GPU, ``time.perf_counter`` on CPU; optionally replayed from a CUDA graph (``graphs=True``).
* ``compare_latency(dense, pruned, input_size, cfg)`` - dense against pruned latency at a profile's
  batch sizes, the two taking turns, each keeping its median round (notebooks 03 and 04).
* ``take_turns(measure, dense, pruned, rounds)`` - the two models measured in turn, round after
  round: how ``compare_latency`` and notebook 04's throughput sweep time a pair.

The theoretical speedup of a structurally pruned model is ``count_macs(dense) / count_macs(pruned)``;
the measured one is the ratio of their ``ms_per_batch``. Only physically smaller tensors can make the
second follow the first (zeros in dense tensors cost as much as any other number).
"""
from __future__ import annotations

import copy
import math
import os
import statistics
import time

import psutil
import torch
from torch import nn

from .accel import autocast, graphed_call, memory_format, precision_for, tune_backends


def _input_shape(input_size) -> tuple[int, int, int]:
    """(channels, height, width) from an int side (RGB assumed) or a (C, H, W) / (N, C, H, W) shape."""
    if isinstance(input_size, int):
        return 3, input_size, input_size
    shape = tuple(int(v) for v in input_size)
    if len(shape) == 4:
        shape = shape[1:]
    if len(shape) != 3:
        raise ValueError(f"input_size must be an int side or a (C, H, W) shape, got {input_size!r}")
    return shape


def _is_timm_attention(module: nn.Module) -> bool:
    return all(hasattr(module, a) for a in ("qkv", "num_heads", "head_dim", "proj"))


@torch.no_grad()
def count_macs(model: nn.Module, input_size) -> int:
    """Multiply-accumulates of one forward pass of ONE image of ``input_size`` (int side or (C, H, W)).

    Conv2d: output elements x (in_channels / groups) x kernel area. Linear: output elements x
    in_features (tokens included, so a ViT's per-token layers count once per token). timm attention:
    2 x heads x tokens^2 x head_dim for the two matmuls that have no module of their own.
    """
    macs = [0]

    def conv_hook(m: nn.Conv2d, inputs, out):
        k = m.kernel_size[0] * m.kernel_size[1]
        macs[0] += out.numel() // out.shape[0] * (m.in_channels // m.groups) * k

    def linear_hook(m: nn.Linear, inputs, out):
        macs[0] += out.numel() // out.shape[0] * m.in_features

    def attention_hook(m: nn.Module, inputs, out):
        tokens = inputs[0].shape[1]
        macs[0] += 2 * m.num_heads * tokens * tokens * m.head_dim

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
        elif _is_timm_attention(m):
            handles.append(m.register_forward_hook(attention_hook))
    # Each module's own mode: model.train(flag) would also wake a BatchNorm the caller froze with .eval().
    was_training = {m: m.training for m in model.modules()}
    param = next(model.parameters())
    try:
        model.eval()
        model(torch.zeros(1, *_input_shape(input_size), device=param.device, dtype=param.dtype))
    finally:
        for h in handles:
            h.remove()
        for m, training in was_training.items():  # parents first: each child's own mode is set after its parent's
            m.train(training)
    return int(macs[0])


@torch.no_grad()
def measure_latency(model: nn.Module, input_size, batch_size: int, device="cpu", warmup: int = 3,
                    iters: int = 10, graphs: bool = False) -> dict:
    """Median latency of ``iters`` forward passes of a random batch, after ``warmup`` untimed ones.

    Runs on a copy of ``model`` moved to ``device`` (the caller's model is left where it is), in
    eval mode, under no_grad, with channels_last input on CUDA, under the device's autocast
    (``accel.precision_for``); on CUDA each pass is timed by CUDA events (from its first kernel's
    start to its last one's end: eager passes include the gaps where the GPU waits for the host's
    launches, which a busy host stretches; a replayed graph has none), after warm-up (cuDNN
    autotuning, allocator); the autocast cache is off, so eager and
    replayed passes both cast the weights. The median resists the odd slow pass
    (another process, a page fault). ``graphs``: the pass is captured once in a CUDA graph and
    replayed (no per-layer launch cost; eager with a warning where graphs are unavailable).

    Returns {"ms_per_batch", "ms_per_image", "images_per_second", "batch_size", "device", "iters",
    "precision", "graphs" (whether a CUDA graph was replayed), "spread" (the passes' interquartile
    range over their median), "noisy" (see ``is_noisy``)}.
    """
    if iters < 1 or batch_size < 1:
        raise ValueError(f"need iters >= 1 and batch_size >= 1, got iters={iters}, batch_size={batch_size}")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device} requested but no CUDA GPU is visible; measure on 'cpu'")
    net = copy.deepcopy(model).to(device, memory_format=memory_format(device)).eval()
    x = torch.randn(batch_size, *_input_shape(input_size), device=device)
    x = x.contiguous(memory_format=memory_format(device))
    cuda = device.type == "cuda"
    times_ms = []
    since = cpu_snapshot()  # from the warm-up on: a longer window counts the others' use more exactly
    tune_backends(device)  # cuDNN autotuning, as in training: the warm-up passes pick the kernels
    # No autocast cache in either mode: eager would cast the weights once and reuse the copies,
    # a replayed graph casts them every pass, and the two columns would not measure the same work.
    with autocast(device, cache=False):
        run, reason = graphed_call(lambda: net(x), device, warmup) if graphs else (lambda: net(x), "off")
        for _ in range(warmup):
            run()
        if cuda:
            torch.cuda.synchronize(device)
        for _ in range(iters):
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                run()
                end.record()
                end.synchronize()
                times_ms.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                run()
                times_ms.append(1000.0 * (time.perf_counter() - t0))
    ms = statistics.median(times_ms)
    q1, _, q3 = statistics.quantiles(times_ms, n=4, method="inclusive") if len(times_ms) > 1 else (ms, ms, ms)
    spread = (q3 - q1) / ms
    return {"ms_per_batch": ms, "ms_per_image": ms / batch_size,
            "images_per_second": 1000.0 * batch_size / ms, "batch_size": batch_size,
            "device": str(device), "iters": iters, "precision": precision_for(device),
            "graphs": reason is None, "spread": spread,
            "noisy": is_noisy(spread, device, busy_elsewhere(since))}


# The three reasons of is_noisy, in one wording for evaluate, the notebooks and the benchmarks.
NOISY_WHY = ("other work on this machine may have slowed the timing: its passes spread by more than 25% of "
             "their median, other processes used more of the cores than this run left free, or (on a CPU) "
             "the 1-minute load average exceeded the cores plus one; measure again when it is idle")

_TICK_S = 0.01  # the kernel counts CPU time per core in ticks of 1/100 s (Linux's USER_HZ)


def cpu_snapshot() -> tuple[float, float, float]:
    """(wall clock, CPU seconds all cores have spent busy, CPU seconds this process has spent), for
    ``busy_elsewhere``."""
    t = psutil.cpu_times()
    # Idle and waiting for I/O are not work; a guest's time is counted inside user time already.
    busy = sum(t) - t.idle - sum(getattr(t, k, 0.0) for k in ("iowait", "guest", "guest_nice"))
    own = psutil.Process().cpu_times()
    return time.perf_counter(), busy, own.user + own.system


def busy_elsewhere(since: tuple[float, float, float]) -> float:
    """How many cores other processes kept busy, on average, since the ``cpu_snapshot`` ``since``:
    all cores' busy time less this process's, over the wall time, minus what the counters' ticks can
    add by rounding (so a short window errs towards quiet). Measured over the very passes timed, it
    sees contention that began a second ago, which the load average takes a minute to show."""
    wall, busy, own = (end - start for start, end in zip(since, cpu_snapshot()))
    if wall <= 0:
        return 0.0
    rounding = _TICK_S * ((os.cpu_count() or 1) + torch.get_num_threads()) / wall
    return max((busy - own) / wall - rounding, 0.0)


def is_noisy(spread: float, device, elsewhere: float = 0.0) -> bool:
    """Whether a timing is not to be trusted, for any of three reasons:

    * its passes disagree (interquartile range above a quarter of the median);
    * other processes kept busy (``elsewhere``, from ``busy_elsewhere``) more than a quarter of a
      core beyond the cores this run leaves free: on a CPU it uses ``torch.get_num_threads()`` of
      them, on a GPU one (the host thread that launches the kernels, whose waits stretch eager passes);
    * on a CPU, the 1-minute load average is above the cores plus one: contention that stopped
      just before the passes can still have slowed the first ones (this run's own threads make
      about one per core).

    Two runs sharing two cores slowed every pass alike, 100-fold, which the spread alone does not
    show; a competing process started a second before the passes slowed them 39-fold before the
    load average rose."""
    cpu = torch.device(device).type == "cpu"
    cores = os.cpu_count() or 1
    free = max(cores - (torch.get_num_threads() if cpu else 1), 0)
    load = getattr(os, "getloadavg", None)  # not on Windows
    busy_load = cpu and load is not None and load()[0] > cores + 1
    return spread > 0.25 or elsewhere > free + 0.25 or busy_load


def take_turns(measure, dense: nn.Module, pruned: nn.Module, rounds: int) -> list[tuple]:
    """``rounds`` pairs (``measure(dense)``, ``measure(pruned)``), the two measured one right after
    the other in every round: a burst of load from elsewhere hits both alike. Timing all of one
    model's rounds (or sizes) before the other's lets it hit one side of the comparison only."""
    return [(measure(dense), measure(pruned)) for _ in range(rounds)]


def compare_latency(dense: nn.Module, pruned: nn.Module, input_size, cfg: dict,
                    mac_ratio: float | None = None, explain_noise: bool = True) -> dict:
    """Dense against pruned latency at each batch size of ``cfg["latency"]`` ({device: [sizes]}),
    on each listed device that is present, printing a line per point. The two take turns for
    ``cfg["latency_rounds"]`` rounds (a burst of load from elsewhere hits both alike) and each
    keeps its median round; ``cfg["latency_warmup"]`` and ``cfg["latency_iters"]`` go to
    ``measure_latency``. ``mac_ratio``: dense MACs over pruned MACs, recorded and printed beside
    the measured speed-up. ``explain_noise``: print ``NOISY_WHY`` under lines marked noisy (False:
    the caller prints it once for several sweeps).

    Returns {"<device>_batch<b>": {"device", "batch_size", "threads", "dense", "pruned" (the
    ``measure_latency`` records), "speedup" (dense time / pruned time), "mac_ratio"}}, and
    {"cuda": "not measured: ..."} where no GPU is visible."""
    latency = {}
    for device, batch_sizes in cfg["latency"].items():
        if device == "cuda" and not torch.cuda.is_available():
            latency[device] = "not measured: no CUDA GPU on this machine"
            continue
        for b in batch_sizes:
            kw = dict(warmup=cfg["latency_warmup"], iters=cfg["latency_iters"])
            runs = take_turns(lambda m: measure_latency(m, input_size, b, device, **kw), dense, pruned,
                              cfg["latency_rounds"])
            d = sorted((r[0] for r in runs), key=lambda r: r["ms_per_batch"])[len(runs) // 2]
            p = sorted((r[1] for r in runs), key=lambda r: r["ms_per_batch"])[len(runs) // 2]
            point = {"device": device, "batch_size": b, "threads": torch.get_num_threads(), "dense": d,
                     "pruned": p, "speedup": d["ms_per_batch"] / p["ms_per_batch"], "mac_ratio": mac_ratio,
                     "noisy": d["noisy"] or p["noisy"]}
            latency[f"{device}_batch{b}"] = point
            print(f"  {device} batch {b:3d}: dense {d['ms_per_batch']:.1f} ms ({d['ms_per_image']:.3f} ms/image), "
                  f"pruned {p['ms_per_batch']:.1f} ms ({p['ms_per_image']:.3f} ms/image) -> "
                  f"{point['speedup']:.2f}x measured"
                  + (f" ({mac_ratio:.2f}x fewer MACs)" if mac_ratio is not None else "")
                  + (" *" if point["noisy"] else ""))
    if explain_noise and any(isinstance(v, dict) and v["noisy"] for v in latency.values()):
        print(f"  * noisy: {NOISY_WHY}")  # once, under the lines it marks
    return latency


def accuracy_interval(accuracy: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson 95% interval of an accuracy measured on ``n`` test images: the range that sampling
    the test set alone could move it in. Two accuracies whose intervals overlap widely are not
    shown to differ."""
    if n <= 0:
        raise ValueError(f"an accuracy needs test images, got n={n}")
    if not 0.0 <= accuracy <= 1.0:  # NaN too
        raise ValueError(f"accuracy={accuracy!r} must be a fraction from 0 to 1 (91.2% is 0.912)")
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_p(correct_a, correct_b) -> float:
    """Two-sided exact McNemar test of two models scored on the SAME images (their per-image
    correctness, in one order). Only the images one model gets right and the other wrong count:
    with no difference between the models each is a fair coin's toss. Pairing the images makes it
    far more sensitive than comparing two intervals, which treats the scores as independent."""
    a, b = torch.as_tensor(correct_a, dtype=torch.bool), torch.as_tensor(correct_b, dtype=torch.bool)
    if a.shape != b.shape:
        raise ValueError(f"McNemar's test needs both models scored on the same images: {tuple(a.shape)} vs {tuple(b.shape)}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n, k = only_a + only_b, min(only_a, only_b)
    tail, term = 0, 1  # sum of C(n, i) for i <= k, in exact integers
    for i in range(k + 1):
        tail += term
        term = term * (n - i) // (i + 1)
    return min(1.0, 2 * tail / 2 ** n)


def holm(p_values: list[float], alpha: float = 0.05) -> list[bool]:
    """Which of several tests reject at family-wise level ``alpha`` (Holm's step-down): among many
    comparisons made at once some look different by chance; Holm keeps the chance of any false
    claim among them under ``alpha``."""
    if not all(0.0 <= p <= 1.0 for p in p_values):  # a NaN compared false with every bound: rejected
        raise ValueError(f"p-values must lie between 0 and 1: got {p_values!r}")
    order, rejected = sorted(range(len(p_values)), key=p_values.__getitem__), [False] * len(p_values)
    for rank, i in enumerate(order):
        if p_values[i] > alpha / (len(p_values) - rank):
            break
        rejected[i] = True
    return rejected
