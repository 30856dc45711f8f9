"""A peer on the same data: airbench (PyPI ``airbench``, Keller Jordan's fast CIFAR-10 trainings)
run on the CIFAR-10 copy the workbook uses, so its accuracy tells what a tuned recipe reaches on
these pixels (the offline JPEG-q75 copy, say), beside the workbook's own recipes.

airbench 0.1.8 (``airbench/utils.py``, ``CifarLoader``) reads ``cifar10/train.pt`` and
``cifar10/test.pt`` relative to the working folder, each a dict of ``images`` (uint8 tensor
[N, 32, 32, 3], NHWC as torchvision's ``CIFAR10.data``), ``labels`` (int64 tensor [N]) and
``classes`` (list of names), and downloads the official images only when a file is missing. Its
``train94()`` / ``train96()`` build their loaders from the relative path ``cifar10``, so they run
from the folder that holds it. They need a CUDA GPU (the networks are built with ``.cuda()``).

    python benchmarks/airbench_peer.py --data-root data --out runs/airbench     # writes the files
    python benchmarks/airbench_peer.py --data-root data --out runs/airbench --run airbench94,airbench96

airbench is not a dependency of the workbook: install it only where this runs (``pip install airbench``).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

from labutils.artifacts import WriteFailed, atomic_write_bytes
from labutils.data import DataError, DataNotFoundError, class_names, load_cifar10
from labutils.measure import accuracy_interval

VARIANTS = ("airbench94", "airbench96")
KEYS = ("images", "labels", "classes")  # what airbench's CifarLoader reads from each file


def write_airbench_data(data_root: str | os.PathLike, out: str | os.PathLike, splits: dict | None = None) -> Path:
    """``out/cifar10/train.pt`` and ``test.pt`` in airbench's format, from the official batches in
    ``data_root/cifar-10-batches-py``, or from ``splits`` ({"train": (images, labels), "test": ...},
    NCHW uint8 arrays: the sweep's own training images and the images it scores on); returns
    ``out/cifar10``."""
    folder = Path(out) / "cifar10"
    classes = class_names(data_root)
    for split, train in (("train", True), ("test", False)):
        images, labels = splits[split] if splits else load_cifar10(data_root, train, download=False)
        payload = {"images": torch.from_numpy(images).permute(0, 2, 3, 1).contiguous(),  # NCHW -> NHWC
                   "labels": torch.from_numpy(labels).to(torch.int64), "classes": list(classes)}
        atomic_write_bytes(folder / f"{split}.pt", lambda f, p=payload: torch.save(p, f))
    return folder


@contextlib.contextmanager
def working_folder(path: Path):
    """airbench opens ``cifar10/...`` relative to the working folder."""
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def not_run_reason() -> str | None:
    """Why airbench cannot run here, or None."""
    if not torch.cuda.is_available():
        return "airbench needs a CUDA GPU: not run"
    if importlib.util.find_spec("airbench") is None:
        return "airbench is not installed (pip install airbench): not run"
    return None


def run_airbench(variant: str, folder: str | os.PathLike) -> dict:
    """Train ``variant`` once from ``folder`` (which holds ``cifar10/``) and score it on all of
    ``cifar10/test.pt`` with airbench's own test-time augmentation. The warm-up first (airbench's
    ``warmup94``/``warmup96``: one step when verbose, which prints a line) and the training
    loader's reading of ``train.pt`` are not timed; airbench's ``train()`` reads ``test.pt``
    inside the time (30 MB for the whole test split)."""
    number = variant.removeprefix("airbench")
    airbench = importlib.import_module("airbench")
    lib = importlib.import_module(f"airbench.lib_airbench{number}")
    hyp = lib.hyp
    with working_folder(Path(folder)):
        getattr(airbench, f"warmup{number}")()
        # The loader train94/96 would build, built here so that reading the file is not timed.
        train = airbench.CifarLoader("cifar10", train=True, batch_size=hyp["opt"]["batch_size"], aug=hyp["aug"],
                                     altflip=True)
        torch.cuda.synchronize()
        start = time.perf_counter()
        model = getattr(airbench, f"train{number}")(train, verbose=False)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        test = airbench.CifarLoader("cifar10", train=False, batch_size=2000)
        accuracy = airbench.evaluate(model, test, tta_level=hyp["net"]["tta_level"])
    # The images it trained on: airbench drops each epoch's last partial batch and runs
    # ceil(steps per epoch x epochs) steps in all (airbench 0.1.8, utils.py).
    steps = math.ceil(len(train) * hyp["opt"]["train_epochs"])
    n = len(test.labels)
    return {"name": variant, "status": "done", "accuracy": accuracy,
            "interval": list(accuracy_interval(accuracy, n)), "scored_images": n,
            "training_images": len(train.labels), "epochs": hyp["opt"]["train_epochs"],
            "seconds": seconds, "images_per_second": steps * hyp["opt"]["batch_size"] / seconds,
            "note": f"airbench {importlib.metadata.version('airbench')}, its test-time augmentation "
                    f"(tta_level {hyp['net']['tta_level']}), on the sweep's {len(train.labels):,} training images"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True, help="folder holding cifar-10-batches-py")
    ap.add_argument("--out", required=True, help="folder to write cifar10/train.pt and test.pt into")
    ap.add_argument("--run", default="", help=f"comma-separated subset of {','.join(VARIANTS)} to train (CUDA)")
    args = ap.parse_args(argv)
    variants = [v.strip() for v in args.run.split(",") if v.strip()]
    if unknown := [v for v in variants if v not in VARIANTS]:  # before any data is written or trained on
        ap.error(f"--run: unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    try:
        print(f"wrote {write_airbench_data(args.data_root, args.out)}")
    except (DataNotFoundError, DataError) as err:  # the message says what to do; a traceback buried it
        print(f"error: {err}", file=sys.stderr)
        return 1
    except WriteFailed as err:  # --out a file, say
        print(f"error: {err}{'' if err.advice else ': give --out a folder you can write to'}", file=sys.stderr)
        return 1
    for variant in variants:
        reason = not_run_reason()
        print(json.dumps({"name": variant, "status": "not run", "note": reason} if reason
                         else run_airbench(variant, args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
