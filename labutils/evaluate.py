"""Evaluate saved checkpoints: test accuracy, sparsity, size, MACs and time per image.

Used by ``python -m labutils evaluate PATH...`` (the course's "evaluate pruned models") and by the
report notebook's table of checkpoints. A missing, corrupt or foreign file is reported by name and
the others still run; a checkpoint whose test images are not found keeps its other numbers.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from . import data as D
from .artifacts import read_json
from .checkpoint import load_checkpoint, plain_numbers
from .measure import NOISY_WHY, count_macs, measure_latency
from .models import count_parameters, input_size
from .prune import sparsity_report
from .prune.masks import prunable_under
from .session import EVAL_BATCH_SIZE
from .train import evaluate


def _run_of(folder: Path) -> str | None:
    path = folder / "metrics" / "run.json"
    return read_json(path).get("run_id") if path.is_file() else None


def run_folder_of(checkpoint: str | os.PathLike) -> Path:
    """The run folder of a checkpoint: the folder above the nearest ``models_saved/`` it lies in
    (notebook 06's ResNet-20 lies in ``models_saved/quantization/``), else two levels above it."""
    path = Path(checkpoint).resolve()
    return next((p.parent for p in path.parents if p.name == "models_saved"), path.parent.parent)


def test_loader_for(ckpt: dict, model, device, data_root: str | os.PathLike | None = None,
                    checkpoint: str | os.PathLike | None = None, run_subset: bool = False):
    """The test images the checkpoint was measured on (its run's data folder and test subset), or,
    given ``data_root``, the whole test split found there (``run_subset``: the run's subset of it,
    the images its accuracy was recorded on, as ``labutils check --measure`` compares). A run
    records its data folder relative to the run folder, the parent of the ``checkpoint``'s
    ``models_saved/``."""
    meta = ckpt.get("meta", {})
    root = data_root or meta.get("data_root")
    if not root:
        raise ValueError("the checkpoint does not say which data it was measured on; pass --data-root")
    if not data_root and not Path(root).is_absolute():
        if checkpoint is None:
            raise ValueError(f"the checkpoint's data folder {root!r} is relative to its run folder: "
                             f"give the checkpoint's path, or pass --data-root")
        run_folder = run_folder_of(checkpoint)
        where = ("the folder above its models_saved/" if "models_saved" in Path(checkpoint).resolve().parts
                 else "two levels above this file")
        if not (run_folder / "metrics" / "run.json").is_file():
            # A checkpoint copied out of its run's models_saved/: say so, not "download CIFAR-10".
            raise ValueError(f"the checkpoint's run read its test images from {root!r}, relative to the run "
                             f"folder, but {run_folder} ({where}) holds no run. "
                             f"Evaluate the checkpoint where its run left it (RUN/models_saved/), or pass --data-root")
        root = run_folder / root
    try:
        split = D.load_cifar10(root, train=False, download=False)
    except D.DataNotFoundError as err:
        folder_run = checkpoint and _run_of(run_folder_of(checkpoint))
        if not data_root and folder_run and folder_run == meta.get("run_id") and meta.get("data") == D.SYNTHETIC:
            # Not "download CIFAR-10": real images would score a model trained on synthetic ones (8% for 54%).
            run = str(run_folder_of(checkpoint))
            rewrite = (f"from labutils import Session; Session({meta.get('profile')!r}, {run!r}, "
                       f"seed={meta.get('seed', 0)}, start_run=False).prepare_data()")
            raise D.DataNotFoundError(f"the checkpoint's run measured it on synthetic images, written into {root}, "
                                      f"which are gone: any notebook of the run writes the same images again, as "
                                      f"does python -c \"{rewrite}\"") from None
        if data_root or not folder_run or folder_run == meta.get("run_id"):
            raise
        # Its data folder is relative to its own run's folder, which this one is not: not "download it".
        raise ValueError(f"the checkpoint comes from run {meta.get('run_id')}, but the folder it lies in holds "
                         f"run {folder_run}, whose data is not the checkpoint's ({root}): evaluate it in its own "
                         f"run's folder, or pass --data-root") from err
    n_test = meta.get("n_test") if run_subset or not data_root else None
    images, labels = D.subset(*split, n_test)  # as the run drew it: the same for every seed
    return D.DeviceLoader(images, labels, EVAL_BATCH_SIZE, False, device, input_size(model))


def _recipe_of(path: Path, ckpt: dict) -> dict:
    """The unstructured recipe the checkpoint's run recorded beside it (which layers it pruned), or
    {} (the defaults) for a checkpoint out of its run's folder or of another stage."""
    try:
        record = read_json(run_folder_of(path) / "metrics" / f"{path.stem}.json")
    except (OSError, ValueError):  # none there, or damaged: the checkpoint is still measured
        return {}
    same_run = record.get("run", {}).get("run_id") == ckpt.get("meta", {}).get("run_id")
    return record.get("recipe") or {} if same_run and "unstructured" in path.stem else {}


def _finite_number(value) -> float | None:
    """``value`` as a float, or None where it is no finite real number: files written before
    save_checkpoint refused them may hold a tensor or a NaN, which a JSON file cannot."""
    value = plain_numbers(value)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def evaluate_checkpoint(path: str | os.PathLike, device="cpu", data_root=None, accuracy: bool = True,
                        latency_batch: int = 1) -> dict:
    """One checkpoint's numbers. Raises (FileNotFoundError, CheckpointError, ...) on a bad file."""
    path = Path(path)
    device = torch.device(device)
    model, ckpt = load_checkpoint(path, device)
    model.eval()
    size = input_size(model)
    prunable = sparsity_report(model, prunable_under(model, _recipe_of(path, ckpt)))
    row = {"checkpoint": str(path), "name": path.stem, "arch": ckpt["arch"],
           "profile": ckpt.get("meta", {}).get("profile"), "run_id": ckpt.get("meta", {}).get("run_id"),
           "recorded_accuracy": _finite_number(ckpt.get("metrics", {}).get("accuracy")),
           "parameters": count_parameters(model),
           "nonzero_parameters": prunable["all_total"] - prunable["all_zeros"],
           "sparsity_all_parameters": prunable["sparsity_all_parameters"],
           "prunable_sparsity": prunable["pruning_percentage"],
           "macs": count_macs(model, size), "size_bytes": path.stat().st_size, "input_size": size}
    if accuracy:
        try:
            loader = test_loader_for(ckpt, model, device, data_root, path)
        except (ValueError, OSError) as err:  # no test images found: the other numbers need none, so keep them
            row.update(accuracy=None, accuracy_error=f"accuracy not measured: {type(err).__name__}: {err}")
        else:
            result = evaluate(model, loader, device)
            row.update(accuracy=result["accuracy"], test_images=result["n"])
    timing = measure_latency(model, size, latency_batch, device)
    # How it was timed: a time per image means little without the batch, device, precision and threads.
    row.update(ms_per_image=timing["ms_per_image"], timing_noisy=timing["noisy"], latency_batch=timing["batch_size"],
               device=timing["device"], precision=timing["precision"], threads=torch.get_num_threads())
    return row


def evaluate_each(paths, device="cpu", data_root=None, accuracy: bool = True):
    """For each path, as it is done: (path, row, error); the row is None where the checkpoint could not
    be measured (missing, corrupt, foreign), the error (text) None unless something went wrong. A row
    whose test images were not found comes with its error: its accuracy None, its other numbers measured."""
    for p in paths:
        try:
            row = evaluate_checkpoint(p, device, data_root, accuracy)
        except Exception as err:  # report it by name and go on with the others
            yield p, None, f"{type(err).__name__}: {err}"
        else:
            yield p, row, row.get("accuracy_error")


def evaluate_paths(paths, device="cpu", data_root=None, accuracy: bool = True) -> tuple[list[dict], list[dict]]:
    """(rows, failures): every path is tried; a failure is {"checkpoint", "error"} (a row without its
    accuracy is in both)."""
    rows, failures = [], []
    for p, row, error in evaluate_each(paths, device, data_root, accuracy):
        if row:
            rows.append(row)
        if error:
            failures.append({"checkpoint": str(p), "error": error})
    return rows, failures


def format_table(rows: list[dict]) -> str:
    """A plain-text table (one line per checkpoint). "images": the test images its accuracy is
    on; "zeros": the share of the checkpoint's own parameters that are zero (a structurally pruned
    model has few: its channels are gone)."""
    head = (f"{'checkpoint':42s} {'acc':>7s} {'images':>6s} {'zeros':>8s} {'params':>9s} {'nonzero':>9s} "
            f"{'MMACs':>8s} {'size MB':>8s} {'ms/img':>7s}")
    lines = [head, "-" * len(head)]
    for r in rows:
        acc = f"{r['accuracy']:.2%}" if r.get("accuracy") is not None else "-"
        lines.append(f"{r['name']:42s} {acc:>7s} {r.get('test_images') or '-':>6} {r['sparsity_all_parameters']:7.1f}% "
                     f"{r['parameters'] / 1e6:8.2f}M {r['nonzero_parameters'] / 1e6:8.2f}M "
                     f"{r['macs'] / 1e6:8.1f} {r['size_bytes'] / 1e6:8.2f} {r['ms_per_image']:7.2f}"
                     + (" *" if r.get("timing_noisy") else ""))
    if any(r.get("timing_noisy") for r in rows):
        lines.append(f"* noisy timing: {NOISY_WHY}")
    return "\n".join(lines)
