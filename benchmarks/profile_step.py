"""Where a training step's time goes: ``torch.profiler`` over a few steps of ``labutils.train.fit``.

The case is ``bench_train.py``'s: the ``full`` profile's recipe (mixup, AdamW and clipping for the
ViT), random uint8 images on the device through ``DeviceLoader``, the device's precision. The
first ``--warmup`` steps (compilation, cuDNN autotuning, CUDA graph capture) are not profiled; the
next ``--steps`` are, hooked in through fit's per-step callback. Time is the device's kernel time
on CUDA (share of the device's busy time; ``device_busy`` is that time over the step's wall time)
and the ops' self CPU time elsewhere. Each kernel or op falls in the first category that its name
or one of its callers' names matches: data (the loader's batch: shuffle, crop, flip), mixup,
optimizer, grad_clip, loss (cross-entropy), attention, layer_norm, gelu, drop_path (its
``bernoulli`` draws only), other. Names decide, so a kernel that inductor fused across two
categories counts in the first. Kernels inside a CUDA graph replay may be linked to no op.

    python benchmarks/profile_step.py                                     # vit_scratch, eager
    python benchmarks/profile_step.py --mode compiled --batch-size 1024 --out results/ --trace
    python benchmarks/profile_step.py --mode compiled --compile-mode max-autotune --json p.json
    python benchmarks/profile_step.py --mode compiled --augment trivialaugment   # the policy's cost
    python benchmarks/profile_step.py --smoke                             # seconds on a CPU
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function, schedule

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import FALLBACKS, FELL_BACK, MODES, _arch, _recipe, device_or_error, fallback, settings  # noqa: E402

from labutils import train  # noqa: E402
from labutils.accel import compile_modes, compile_uses_cudagraphs, known_compile_mode  # noqa: E402
from labutils.artifacts import atomic_write_bytes, write_json  # noqa: E402
from labutils.cli import positive, unwritable_json  # noqa: E402
from labutils.data import AUGMENT_POLICIES, DeviceLoader  # noqa: E402
from labutils.models import build_model  # noqa: E402

MODELS = ("vit_scratch", "resnet18", "resnet20")
DATA, MIXUP = "profile_step: data", "profile_step: mixup"  # our labels, matched whole
# (category, fragments of lower-cased names with "_" removed); the first match wins.
CATEGORIES = (("data", ()), ("mixup", ()),
              ("optimizer", ("optimizer.", "adam", "sgd")),
              ("grad_clip", ("foreachnorm", "foreachmul", "lpnorm", "vectornorm", "clipgrad")),
              ("loss", ("logsoftmax", "crossentropy", "nllloss")),  # before attention: its kernels say "SoftMax"
              ("attention", ("scaleddotproduct", "attention", "flashfwd", "flashbwd", "fmha", "sdpa",
                             "bmm", "softmax")),
              ("layer_norm", ("layernorm",)), ("gelu", ("gelu",)), ("drop_path", ("bernoulli",)))
ATTENTION_KINDS = (("cudnn", ("cudnnattention", "sdpa")),  # cuDNN's kernel names also say "flash"
                   ("flash", ("flashattention", "flashfwd", "flashbwd", "pytorchflash")),
                   ("mem-efficient", ("efficientattention", "fmha")),
                   ("math", ("attentionmath", "bmm", "softmax")))


def _key(name: str) -> str:
    return name.lower().replace("_", "")


def categorise(names: list[str]) -> str:
    """The category of a kernel or op given its name and its callers' (innermost first)."""
    keys = [_key(n) for n in names]
    for category, fragments in CATEGORIES:
        if (category == "data" and DATA in names) or (category == "mixup" and MIXUP in names) or \
                any(f in k for k in keys for f in fragments):
            return category
    return "other"


def attention_kind(names: list[str]) -> tuple[str, str] | None:
    """(kind, the name that tells it) of an attention kernel or op, its own name first, then its callers'."""
    for name in names:
        for kind, fragments in ATTENTION_KINDS:
            if any(f in _key(name) for f in fragments):
                return kind, name
    return None


def _callers(event) -> list[str]:
    names = []
    while event is not None:
        names.append(event.name)
        event = event.cpu_parent
    return names


class Labelled(DeviceLoader):
    """The loader, each batch made under a profiler label (its shuffle, crop and flip)."""

    def __iter__(self):
        batches = super().__iter__()
        while True:
            with record_function(DATA):
                batch = next(batches, None)
            if batch is None:
                return
            yield batch


def _labelled_mix(original):
    def mix_batch(*args, **kwargs):
        with record_function(MIXUP):
            return original(*args, **kwargs)
    return mix_batch


class StepMarker:
    """fit's callback: advances the profiler's schedule; times the profiled steps (device synchronised)."""
    graph_safe = True  # touches no tensor, so fit(graphs=True) still captures the step

    def __init__(self, prof, device, first: int, last: int):
        self.prof, self.device, self.first, self.last, self.times = prof, device, first, last, {}

    def __call__(self, model, optimizer, step: int):
        if step in (self.first, self.last):
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.times[step] = time.perf_counter()
        self.prof.step()


def analyse(events, steps: int, on_device: bool) -> dict:
    """Per-step time by category and by kernel (CUDA) or op (CPU) name, from the profiled events."""
    rows = defaultdict(lambda: [0.0, 0])  # (name, category) -> [us, calls]
    attention = defaultdict(float)  # (kind, name) -> us
    if on_device:  # kernels, memcpy and memset, each with the op that launched it and that op's callers
        device = [e for e in events if e.device_type != DeviceType.CPU]
        # record_function ranges are mirrored on the device's timeline: not kernels
        marks = {e.name for e in device if getattr(e, "is_user_annotation", False)
                 or getattr(e, "activity_type", None) == "gpu_user_annotation"}
        kernels = [e for e in device if e.name not in marks]
        items = [(k.duration, [k.name] + _callers(e)) for e in events if e.device_type == DeviceType.CPU
                 and not e.is_async for k in e.kernels if k.name not in marks]
        launches = len(kernels)
        unlinked = sum(e.time_range.elapsed_us() for e in kernels) - sum(us for us, _ in items)
        if unlinked > 0:
            items.append((unlinked, ["(device time linked to no op)"]))
    else:  # self CPU time of every op; the leaf aten ops stand for kernels
        items = [(e.self_cpu_time_total, _callers(e)) for e in events
                 if e.device_type == DeviceType.CPU and not e.is_async]
        launches = sum(1 for e in events if e.name.startswith("aten::")
                       and not any(c.name.startswith("aten::") for c in e.cpu_children))
    for us, names in items:
        category = categorise(names)
        row = rows[(names[0], category)]
        row[0], row[1] = row[0] + us, row[1] + 1
        if category == "attention" and (found := attention_kind(names)):
            attention[found] += us
    total = sum(r[0] for r in rows.values()) or 1.0
    shares = {c: 0.0 for c, _ in CATEGORIES} | {"other": 0.0}
    for (_, category), (us, _) in rows.items():
        shares[category] += us / total
    top = sorted(rows.items(), key=lambda kv: -kv[1][0])
    return {"busy_ms_per_step": total / 1e3 / steps, "launches_per_step": launches / steps,
            "categories": {c: {"share": s, "ms_per_step": s * total / 1e3 / steps} for c, s in shares.items()},
            "attention": {"kinds": sorted({k for k, _ in attention})
                          or (["unrecognised"] if shares["attention"] else []),
                          "names": [n for (_, n), _ in sorted(attention.items(), key=lambda kv: -kv[1])][:8]},
            "top": [{"name": n, "category": c, "calls_per_step": k / steps, "ms_per_step": us / 1e3 / steps,
                     "share": us / total} for (n, c), (us, k) in top]}


def profile_case(args, device: torch.device) -> dict:
    train.seed_everything(0)
    recipe = _recipe(args.model, args.smoke)
    batch = recipe["batch_size"] if args.batch_size is None else args.batch_size
    del recipe["batch_size"]
    kwargs = dict(MODES[args.mode])
    if args.compile_mode:
        kwargs["compile"] = args.compile_mode
    compile_mode = "default" if kwargs.get("compile") is True else kwargs.get("compile") or None
    model = build_model(args.model, **_arch(args.model, "dense", args.smoke)).to(device)
    total = args.warmup + args.steps
    gen = torch.Generator().manual_seed(0)
    loader = Labelled(torch.randint(0, 256, (batch * total, 3, 32, 32), dtype=torch.uint8, generator=gen),
                      torch.randint(0, 10, (batch * total,), generator=gen), batch, True, device,
                      augment=args.augment)
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    # Profiler step i is what runs after fit's callback i: fit's steps warmup+1 ... warmup+steps.
    plan = schedule(wait=args.warmup - 1, warmup=1, active=args.steps, repeat=1)
    original = train.mix_batch
    train.mix_batch = _labelled_mix(original)  # fit looks it up at each step
    try:
        with warnings.catch_warnings(record=True) as caught, profile(activities=activities, schedule=plan) as prof:
            warnings.simplefilter("always")
            marker = StepMarker(prof, device, args.warmup, total)
            train.fit(model, loader, None, epochs=1, max_steps=total, callback=marker, device=device,
                      desc=f"profile {args.model}", **kwargs, **recipe)
    finally:
        train.mix_batch = original
    events = prof.events()
    profiled = sum(1 for e in events if e.name.startswith("ProfilerStep"))  # "ProfilerStep*" in 2.x
    on_device = cuda and any(e.device_type == DeviceType.CUDA for e in events)
    step_s = (marker.times[total] - marker.times[args.warmup]) / args.steps
    result = {"settings": settings(device, args.smoke) | {"argv": getattr(args, "argv", None)},
              "model": args.model, "mode": args.mode, "compile_mode": compile_mode,
              "batch_size": batch, "augment": args.augment, "warmup_steps": args.warmup, "steps": args.steps, "profiled_steps": profiled,
              "step_ms": step_s * 1e3, "images_per_second": batch / step_s,
              "time_basis": "device kernel time" if on_device else "self CPU time of ops",
              "launch_unit": "device kernels" if on_device else "leaf aten ops"}
    result |= analyse(events, args.steps, on_device)
    if on_device:
        result["device_busy"] = result["busy_ms_per_step"] / result["step_ms"]
    elif cuda:
        result["note"] = "the profiler recorded no device kernel (CUPTI unavailable?): CPU time shown"
    if fallbacks := [str(w.message) for w in caught if str(w.message).startswith(FALLBACKS)]:
        result["ran_mode"], note = fallback(args.mode, fallbacks)  # the step time and images/s are its
        result["note"] = f"{note}: {fallbacks[0]}"
    elif dropped := [str(w.message) for w in caught if str(w.message).startswith("torch.compile mode")]:
        result["note"] = dropped[0]  # compiled, but without the CUDA graphs its mode names
    if args.json:  # before the tables: a table that cannot be written must not take the result with it
        write_json(args.json, result)
    if args.out:
        stem = (f"profile_{args.model}_{args.mode}{f'-{args.compile_mode}' if args.compile_mode else ''}_b{batch}"
                f"{f'_{args.augment}' if args.augment else ''}{'_smoke' if args.smoke else ''}")  # not a real run's
        if args.trace:
            prof.export_chrome_trace(str(args.out / f"{stem}.trace.json.gz"))
        text = report(result, args.top) + "\n"
        atomic_write_bytes(args.out / f"{stem}.txt", lambda f: f.write(text.encode()))
    return result


def report(r: dict, top: int = 15) -> str:
    unit = "kernel" if r["time_basis"].startswith("device") else "op"
    lines = [f"| {unit} | category | calls/step | ms/step | share |", "|---|---|---|---|---|"]
    lines += [f"| {t['name'][:90]} | {t['category']} | {t['calls_per_step']:.0f} | {t['ms_per_step']:.3f} | "
              f"{t['share']:.1%} |" for t in r["top"][:top]]
    busy = f", device busy {r['device_busy']:.0%} of it" if "device_busy" in r else ""
    # Labelled by what ran: compiled+graphs that dropped its graphs timed compiled code
    compiled = r["compile_mode"] not in (None, "default") and r.get("ran_mode", "compiled") == "compiled"
    mode = r.get("ran_mode", r["mode"]) + (f" ({r['compile_mode']})" if compiled else "")
    mode += f", asked for {r['mode']}" if r.get("ran_mode") else ""
    mode += f", {r['augment']}" if r.get("augment") else ""
    attn = r["attention"]
    lines += ["", f"{r['model']} {mode}, batch {r['batch_size']}, {r['settings']['device']} "
                  f"({r['settings']['precision']}): {r['step_ms']:.2f} ms/step, {r['images_per_second']:,.0f} "
                  f"images/s{busy}; {r['launches_per_step']:.0f} {r['launch_unit']}/step "
                  f"over {r['profiled_steps']} profiled steps",
              f"shares of {r['time_basis']}: " + ", ".join(
                  f"{c} {v['share']:.1%}" for c, v in r["categories"].items()),
              f"attention kernels: {', '.join(attn['kinds']) or 'none found'}"
              + (f" ({'; '.join(n[:80] for n in attn['names'][:4])})" if attn["names"] else "")]
    if r.get("note"):
        lines.append(f"note: {r['note']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="exit status: 0 profiled in --mode; 1 an error ended it; 2 a bad option, "
                                        "refused before any work; 5 fit fell back to another mode, which is what "
                                        "was profiled (the note says which, and why)")
    ap.add_argument("--model", default="vit_scratch", choices=MODELS)
    ap.add_argument("--mode", default="eager", choices=list(MODES), help="as bench_train.py names them")
    ap.add_argument("--compile-mode", default=None, metavar="NAME",
                    help="torch.compile mode of the compiling modes: max-autotune, max-autotune-no-cudagraphs...")
    ap.add_argument("--batch-size", type=positive, default=None, help="default: the recipe's (512; smoke 32)")
    ap.add_argument("--augment", default=None, choices=AUGMENT_POLICIES,
                    help="a policy on the loader's batches (its cost shows under data)")
    ap.add_argument("--warmup", type=int, default=5, help="steps run before profiling (compilation, capture)")
    ap.add_argument("--steps", type=int, default=5, help="profiled steps")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--smoke", action="store_true", help="narrow models, batch 32 (CPU tests)")
    ap.add_argument("--top", type=positive, default=15, help="rows of the table")
    ap.add_argument("--json", metavar="FILE", default=None)
    ap.add_argument("--out", type=Path, default=None, metavar="DIR", help="writes the table there")
    ap.add_argument("--trace", action="store_true", help="with --out: also a gzipped chrome trace")
    args = ap.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)  # recorded with the settings
    if args.json and (problem := unwritable_json(args.json, "profile.json")):  # before, not after, the profile
        ap.error(problem)
    if args.compile_mode is not None and not known_compile_mode(args.compile_mode):  # before building anything
        ap.error(f"--compile-mode must be one of {', '.join(compile_modes())}, not {args.compile_mode!r}")
    if args.steps < 1 or args.warmup < 2:
        ap.error("--steps must be at least 1 and --warmup at least 2 (one unprofiled step, one profiler warm-up)")
    if "graphs" in args.mode and args.warmup < 5:
        ap.error("--warmup must be at least 5 with CUDA graphs: fit captures the step at its 4th")
    if args.compile_mode and not MODES[args.mode].get("compile"):
        ap.error(f"--compile-mode needs a compiling --mode (compiled, compiled+graphs), not {args.mode}")
    if "graphs" in args.mode and compile_uses_cudagraphs(args.compile_mode):
        ap.error(f"--compile-mode {args.compile_mode} captures CUDA graphs itself: use --mode compiled "
                 f"with it, or max-autotune-no-cudagraphs with {args.mode}")
    if args.trace and not args.out:
        ap.error("--trace needs --out DIR")
    if args.out:  # after the other checks; a file there was found after the whole profile, and --json lost
        if args.out.exists() and not args.out.is_dir():
            ap.error(f"--out {args.out} is a file: give a folder (the table goes into it)")
        try:
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            ap.error(f"cannot make the folder --out {args.out} ({err.strerror or err}): give a folder you can write to")
    result = profile_case(args, device_or_error(ap, args.device))
    print(report(result, args.top), flush=True)
    if result.get("ran_mode"):
        print(result["note"], file=sys.stderr, flush=True)
    return result


if __name__ == "__main__":
    sys.exit(FELL_BACK if main().get("ran_mode") else 0)
