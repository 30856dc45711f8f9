"""What keeping 90% of ResNet-18's weights pruned costs per training step, two ways.

* ``after-step``: weights and optimizer state (momentum) re-masked after every optimizer step: the
  enforcement the workbook used before (one multi-tensor multiply over twice the weights).
* ``gradients``: ``MaskEnforcer`` as ``fit`` uses it now: the gradients masked before the step
  (one multi-tensor multiply over the weights' size), weights and state only when masks change.

Two measurements: training images/s through ``labutils.train.fit`` (dense, and each way; the first
epoch is warm-up and not timed), and the enforcement alone (milliseconds per call, device
synchronised), as a share of a dense step. A timing that other processes on the cores may have
slowed is marked ``*`` (``labutils.measure.is_noisy``) and recorded under ``noisy``.

    python benchmarks/bench_masks.py                       # CUDA: width 64, batch 512
    python benchmarks/bench_masks.py --width 16 --batch 128 --images 2560   # a 2-core CPU (the default there)
    python benchmarks/bench_masks.py --smoke         # seconds: the code path only
    python benchmarks/bench_masks.py --ops-only --threads 1 --width 64 --batch 32   # a shared CPU
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from labutils.artifacts import device_name, git_commit, write_json
from labutils.cli import positive, unwritable_json
from labutils.data import DeviceLoader
from labutils.measure import NOISY_WHY, busy_elsewhere, cpu_snapshot, is_noisy
from labutils.models import build_model
from labutils.prune import MaskEnforcer, one_shot_prune
from labutils.train import fit, make_optimizer, seed_everything

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import device_or_error  # noqa: E402  (beside this file)


class AfterStepOnly:
    """The older enforcement: no gradient hook, so weights and state are re-masked every step."""

    def __init__(self, masks):
        self.enforcer = MaskEnforcer(masks)

    def __call__(self, model, optimizer, step):
        self.enforcer(model, optimizer, step)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_rate(device, width, batch, images, epochs, how) -> float:
    """Training images/s after the first epoch, dense (``how`` None) or 90% masks kept ``how``."""
    seed_everything(0)
    model = build_model("resnet18", width=width).to(device)
    gen = torch.Generator().manual_seed(0)
    loader = DeviceLoader(torch.randint(0, 256, (images, 3, 32, 32), dtype=torch.uint8, generator=gen),
                          torch.randint(0, 10, (images,), generator=gen), batch, True, device)
    callback = None
    if how is not None:
        masks = one_shot_prune(model, 0.9)
        callback = MaskEnforcer(masks) if how == "gradients" else AfterStepOnly(masks)
    history = fit(model, loader, None, epochs=epochs, lr=0.05, callback=callback, device=device,
                  desc=f"resnet18 {how or 'dense'}")
    timed = history[1:]
    return sum(h["images"] for h in timed) / sum(h["train_seconds"] for h in timed)


def op_ms(device, width, batch, repeats) -> dict:
    """Milliseconds per call of each enforcement alone, on a model with gradients and momentum."""
    model = build_model("resnet18", width=width).to(device)
    enforcer = MaskEnforcer(one_shot_prune(model, 0.9))
    opt = make_optimizer(model, "sgd", 0.05)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    F.cross_entropy(model(x), y).backward()
    enforcer.before_step(model, opt)
    opt.step()  # momentum buffers exist from here on
    out = {}
    for name, call in (("after-step", lambda: enforcer.enforce(opt)),
                       ("gradients", lambda: enforcer.before_step(model, opt))):
        for _ in range(3):
            call()
        _sync(device)
        start = time.perf_counter()
        for _ in range(repeats):
            call()
        _sync(device)
        out[name] = 1000 * (time.perf_counter() - start) / repeats
    return out


def step_ms(device, width, batch, steps=4) -> float:
    """Median milliseconds of a dense training step (forward, backward, SGD), after one warm-up."""
    model = build_model("resnet18", width=width).to(device)
    opt = make_optimizer(model, "sgd", 0.05)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    times = []
    for _ in range(steps):
        _sync(device)
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        _sync(device)
        times.append(1000 * (time.perf_counter() - start))
    return sorted(times[1:])[len(times[1:]) // 2]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--width", type=positive, default=None, help="ResNet-18 width (default 64 on CUDA, 16 elsewhere)")
    ap.add_argument("--batch", type=positive, default=None, help="default 512 on CUDA, 128 elsewhere")
    ap.add_argument("--images", type=positive, default=None,
                    help="images per epoch (default 25,000 on CUDA, 2,560 elsewhere)")
    ap.add_argument("--epochs", type=positive, default=None, help="the first is not timed (default 3)")
    ap.add_argument("--repeats", type=positive, default=None, help="calls timed per enforcement (default 50)")
    ap.add_argument("--threads", type=positive, default=None, help="CPU threads (1 keeps a shared CPU's timings steady)")
    ap.add_argument("--ops-only", action="store_true",
                    help="time the enforcements and one dense step only (no training runs: fast on a CPU)")
    ap.add_argument("--smoke", action="store_true",
                    help="width 8, batch 32, 128 images, 2 epochs, 5 repeats where not given (seconds)")
    ap.add_argument("--json", metavar="FILE", default=None)
    args = ap.parse_args(argv)
    if args.json and (problem := unwritable_json(args.json, "bench_masks.json")):  # before, not after, the work
        ap.error(problem)
    if args.smoke:  # the values given still count: --smoke --width 16 measures width 16
        for name, value in (("width", 8), ("batch", 32), ("images", 128), ("epochs", 2), ("repeats", 5)):
            if getattr(args, name) is None:
                setattr(args, name, value)
    epochs = 3 if args.epochs is None else args.epochs
    repeats = 50 if args.repeats is None else args.repeats
    if epochs < 2 and not args.ops_only:  # else a whole dense run, then nothing to time
        ap.error("--epochs must be at least 2: the first epoch is warm-up")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = device_or_error(ap, args.device)
    cuda = device.type == "cuda"
    width = (64 if cuda else 16) if args.width is None else args.width
    batch = (512 if cuda else 128) if args.batch is None else args.batch
    images = (25_000 if cuda else 2_560) if args.images is None else args.images
    if images < batch and not args.ops_only:  # else fit's error, naming a batch_size this script has no flag for
        ap.error(f"--images {images} is fewer than one batch ({batch}, --batch): give --images {batch} or more")
    start = time.perf_counter()
    print(f"device {device_name(device)} | torch {torch.__version__} | threads {torch.get_num_threads()} | "
          f"resnet18 width {width} batch {batch} | 90% masks", flush=True)
    rates, noisy = {}, {}
    result = {"device": device_name(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "git_commit": git_commit(paths=("labutils", "benchmarks")),  # an edited script is not the commit
              "smoke": args.smoke, "argv": sys.argv[1:] if argv is None else list(argv),
              "width": width, "batch_size": batch, "images_per_epoch": images, "epochs": epochs, "repeats": repeats,
              "images_per_second": rates, "enforcement_ms": {}, "dense_step_ms": None, "noisy": noisy}

    def timed(name, call):
        """``call()``, flagged noisy as measure_latency flags a timing (other processes on the cores,
        the load average; these timings keep no per-pass spread)."""
        since = cpu_snapshot()
        value = call()
        noisy[name] = is_noisy(0.0, device, busy_elsewhere(since))
        return value

    def save():  # after every measurement: a run cut short keeps what it measured
        result["seconds"] = time.perf_counter() - start
        if args.json:
            write_json(args.json, result)

    if not args.ops_only:
        for how in (None, "after-step", "gradients"):
            rates[how or "dense"] = timed(how or "dense", lambda: train_rate(device, width, batch, images,
                                                                           epochs, how))
            save()
    result["enforcement_ms"] = ops = timed("enforcement", lambda: op_ms(device, width, batch, repeats))
    save()
    if rates:
        result["dense_step_ms"] = dense_ms = 1000 * batch / rates["dense"]
    else:
        result["dense_step_ms"] = dense_ms = timed("dense", lambda: step_ms(device, width, batch))
    mark = lambda *names: "*" if any(noisy.get(n) for n in names) else ""  # noqa: E731
    rate = lambda how: f"{rates[how]:,.0f}{mark(how)}" if rates else "-"  # noqa: E731
    print(f"{'':12s} {'images/s':>10s} {'vs dense':>10s} {'enforcement alone':>18s}")
    print(f"{'dense':12s} {rate('dense'):>10s} {'':>10s} {'':>18s}   (a step: {dense_ms:.2f} ms{mark('dense')})")
    for how in ("after-step", "gradients"):
        vs = f"{rates[how] / rates['dense'] - 1:+.1%}{mark('dense', how)}" if rates else "-"
        print(f"{how:12s} {rate(how):>10s} {vs:>10s} "
              f"{ops[how]:9.3f} ms{mark('enforcement'):1s} = {ops[how] / dense_ms:5.1%} of a dense step")
    if any(noisy.values()):
        print(f"* noisy: {NOISY_WHY}")
    save()
    print(f"elapsed {result['seconds']:.0f} s", flush=True)
    return result


if __name__ == "__main__":
    main()
