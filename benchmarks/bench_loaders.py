"""Training throughput: the fast device path against the course's standard DataLoader path.

Same model, same batch size, same number of optimizer steps; each path is warmed up first, then
timed over ``--steps`` steps (images/s = steps x batch / seconds). Reads the CIFAR-10 batches
from the data folder every labutils tool reads ($LABUTILS_DATA, else the repository's data/)
unless --data-root names another:

    python benchmarks/bench_loaders.py --arch resnet18 --width 16 --steps 40

On a GPU add --device cuda (and a larger --batch-size). Prints a table; --json FILE keeps it. A
timing that other processes on the cores may have slowed is marked ``*`` (``labutils.measure.is_noisy``;
the standard path's DataLoader workers are this run's own work) and recorded as ``noisy``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import psutil
import torch
import torch.nn.functional as F

from labutils.accel import memory_format
from labutils.artifacts import device_name, git_commit, write_json
from labutils.cli import positive, unwritable_json
from labutils.data import DEFAULT_DATA_ROOT, DataError, DataNotFoundError, DeviceLoader, get_loaders, load_cifar10
from labutils.measure import NOISY_WHY, busy_elsewhere, cpu_snapshot, is_noisy
from labutils.models import build_model
from labutils.train import autocast, make_optimizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import device_or_error  # noqa: E402  (beside this file)

ARCHS = ("resnet18", "resnet20")  # the architectures built from a width (--width)


def children_cpu_seconds() -> float:
    """CPU seconds this process's children (DataLoader workers) have spent, running or ended:
    ``busy_elsewhere`` counts them as other processes, though their work is this run's."""
    ended = os.times()
    total = ended.children_user + ended.children_system
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:  # ended since it was listed: its time is in os.times() from now on
            continue
        total += times.user + times.system
    return total


def time_steps(model, loader, device, steps: int, warmup: int) -> tuple[float, bool]:
    """(seconds for ``steps`` training steps after ``warmup`` untimed ones, loader included; whether
    other processes may have slowed them, as ``measure_latency`` flags a timing)."""
    opt = make_optimizer(model, "sgd", 0.01)
    it = iter(loader)

    def step():
        nonlocal it
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(loader)
            x, y = next(it)
        x = x.to(device, non_blocking=True).contiguous(memory_format=memory_format(device))
        y = y.to(device, non_blocking=True)
        with autocast(device):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    since, workers = cpu_snapshot(), children_cpu_seconds()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    elsewhere = max(busy_elsewhere(since) - (children_cpu_seconds() - workers) / seconds, 0.0)
    return seconds, is_noisy(0.0, device, elsewhere)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # "data" of the current folder was another folder than every other tool's outside the repository root
    ap.add_argument("--data-root", metavar="DIR", default=None,
                    help=f"folder holding cifar-10-batches-py (default: $LABUTILS_DATA, else the repository's "
                         f"data/, here {DEFAULT_DATA_ROOT})")
    ap.add_argument("--arch", default="resnet18", choices=ARCHS)
    ap.add_argument("--width", type=positive, default=16, help="ResNet width (64 = full ResNet-18)")
    ap.add_argument("--batch-size", type=positive, default=128)
    ap.add_argument("--steps", type=positive, default=40, help="timed steps per path")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps before them (0 or more)")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers for the standard path (0 or more)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", metavar="FILE", default=None)
    args = ap.parse_args(argv)
    if args.warmup < 0 or args.workers < 0:
        ap.error(f"--warmup and --workers take 0 or more, got {args.warmup} and {args.workers}")
    if args.json and (problem := unwritable_json(args.json, "bench_loaders.json")):  # before, not after, the work
        ap.error(problem)
    args.data_root = data_root = str(args.data_root or DEFAULT_DATA_ROOT)  # --json records the folder read

    device = device_or_error(ap, args.device)
    torch.manual_seed(0)
    try:
        images, labels = load_cifar10(data_root, train=True, download=False)
        standard, _ = get_loaders(args.batch_size, data_root, num_workers=args.workers, download=False)
    except (DataNotFoundError, DataError) as err:  # the message says what to do; a traceback buried it
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    fast = DeviceLoader(images, labels, args.batch_size, True, device)
    rows = []
    for name, loader in (("standard DataLoader", standard), ("fast device path", fast)):
        model = build_model(args.arch, width=args.width).to(device, memory_format=memory_format(device)).train()
        seconds, noisy = time_steps(model, loader, device, args.steps, args.warmup)
        rows.append({"path": name, "images_per_second": args.steps * args.batch_size / seconds,
                     "seconds": seconds, "noisy": noisy})
    speedup = rows[1]["images_per_second"] / rows[0]["images_per_second"]
    mark = lambda *rs: "*" if any(r["noisy"] for r in rs) else ""  # noqa: E731
    print(f"{args.arch} width {args.width}, batch {args.batch_size}, {args.steps} steps on "
          f"{device_name(device)}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    for r in rows:
        print(f"  {r['path']:20s} {r['images_per_second']:9.1f}{mark(r):1s} images/s  ({r['seconds']:.1f}s)")
    print(f"  fast / standard: {speedup:.2f}x{mark(*rows)}")
    if any(r["noisy"] for r in rows):
        print(f"* noisy: {NOISY_WHY}")
    if args.json:
        code = git_commit(paths=("labutils", "benchmarks"))  # an edited script is not the commit
        write_json(args.json, {"args": vars(args), "device": device_name(device), "torch": torch.__version__,
                               "threads": torch.get_num_threads(), "git_commit": code, "rows": rows, "speedup": speedup})


if __name__ == "__main__":
    main()
