"""One checkpoint format for every model in the workbook.

A checkpoint is a plain dict that ``torch.load(..., weights_only=True)`` can read (tensors,
numbers, strings, lists, dicts only)::

    {"format": "labutils.checkpoint", "version": 1,
     "arch": "resnet18", "arch_kwargs": {...},      # enough to rebuild, pruned widths included
     "encoding": "dense" | "sparse",                # sparse: nonzeros + a bitmask per tensor
     "state_dict": {...}, "metrics": {...}, "meta": {...}}

Files are written to a temporary name and renamed, so a crash never leaves half a checkpoint.
"""
from __future__ import annotations

import io
import math
import os
import pickle
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .accel import memory_format
from .artifacts import atomic_write_bytes
from .course import MODEL_NAMES, STAGES
from .models import COURSE_MODELS, build_model

FORMAT, VERSION = "labutils.checkpoint", 1
# Packing a tensor pays once more than 1/32 of it is zero (one mask bit against 32 value bits);
# below a quarter the saving is too small to be worth the unpacking.
SPARSE_MIN_ZERO_FRACTION = 0.25


class CheckpointError(ValueError):
    """A file that is not a readable labutils checkpoint."""


def pack_sparse(state_dict: dict) -> dict:
    """Store each float tensor at least ``SPARSE_MIN_ZERO_FRACTION`` of whose entries are zero as its
    nonzero values plus a bitmask."""
    packed = {}
    for name, t in state_dict.items():
        t = t.detach().cpu()
        if t.is_floating_point() and t.numel() and (t == 0).float().mean() >= SPARSE_MIN_ZERO_FRACTION:
            mask = (t != 0).flatten()
            packed[name] = {"shape": list(t.shape), "values": t.flatten()[mask].clone(),
                            "bitmask": torch.from_numpy(np.packbits(mask.numpy()))}
        else:
            packed[name] = t.clone()
    return packed


def unpack_sparse(packed: dict) -> dict:
    state = {}
    for name, v in packed.items():
        if isinstance(v, dict):
            n = int(np.prod(v["shape"]))
            mask = torch.from_numpy(np.unpackbits(v["bitmask"].numpy(), count=n).astype(bool))
            dense = torch.zeros(n, dtype=v["values"].dtype)
            dense[mask] = v["values"]
            state[name] = dense.view(v["shape"])
        else:
            state[name] = v
    return state


def save_checkpoint(path: str | os.PathLike, model: nn.Module, metrics: dict | None = None,
                    meta: dict | None = None, sparse: bool = False) -> Path:
    """Write ``model`` (built by ``build_model``) with its metrics; ``sparse`` packs zeros away.
    0-d tensors and numpy scalars in ``metrics`` and ``meta`` are stored as Python numbers; a NaN or
    infinite metric is refused (ValueError), nothing written."""
    arch = getattr(model, "arch", None)
    if not arch:
        raise ValueError("the model has no .arch record; build it with labutils.models.build_model")
    metrics, meta = plain_numbers(metrics or {}), plain_numbers(meta or {})
    if bad := _not_finite(metrics):
        raise ValueError(f"metric {bad[0]} is {bad[1]}: nothing was written. NaN or an infinity comes from a "
                         f"diverged training (lower the learning rate)")
    _safely_loadable({"arch_kwargs": arch["kwargs"], "metrics": metrics, "meta": meta})
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "version": VERSION, "arch": arch["name"],
               "arch_kwargs": arch["kwargs"], "encoding": "sparse" if sparse else "dense",
               "state_dict": pack_sparse(state) if sparse else state,
               "metrics": metrics, "meta": meta}
    return atomic_write_bytes(path, lambda f: torch.save(payload, f))


def plain_numbers(value):
    """``value`` with 0-d tensors and numpy scalars made Python numbers, in dicts and lists too:
    JSON and a safe checkpoint load take plain numbers only."""
    if isinstance(value, dict):
        return {k: plain_numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_numbers(v) for v in value]
    if (isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim == 0) or isinstance(value, np.generic):
        return value.item()
    return value


def _not_finite(value, where: str = "") -> tuple[str, float] | None:
    """(where, value) of the first NaN or infinity in ``value`` (after ``plain_numbers``), or None."""
    if isinstance(value, dict):
        items = ((f"{where}[{k!r}]" if where else repr(k), v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(value))
    else:
        return (where, value) if isinstance(value, float) and not math.isfinite(value) else None
    return next(filter(None, (_not_finite(v, w) for w, v in items)), None)


def _safely_loadable(small: dict) -> None:
    """TypeError now where the checkpoint's records hold what ``torch.load(weights_only=True)``
    refuses (a numpy float among the metrics): it was written, then unreadable for good."""
    buf = io.BytesIO()
    torch.save(small, buf)
    buf.seek(0)
    try:
        torch.load(buf, weights_only=True)
    except pickle.UnpicklingError as err:
        raise TypeError(f"the checkpoint's arch_kwargs, metrics or meta hold a value a safe load refuses "
                        f"({str(err).splitlines()[-1][:200]}): pass plain numbers, strings, lists and dicts "
                        f"(x.tolist() for a numpy array); nothing was written") from err


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint's dict (state dict unpacked), after checking it is one of ours."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder: give the checkpoint files in it (such as {path}/*.pth)")
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; run the notebook that writes it first")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch's own text can be a bare number (pickle's opcode): name the type
        # A safe load's refusal: torch's text has ANSI codes and advice to load unsafely, so only its reason is kept.
        refused = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", str(err))
        if refused and refused[1].startswith("Unsupported global"):  # random bytes are "Unsupported operand 103"
            raise CheckpointError(f"{path} holds Python objects a safe load refuses (a whole pickled model, "
                                  f"numpy values): save models with labutils.checkpoint.save_checkpoint, which "
                                  f"stores weights and plain numbers only") from err
        reason = refused[1] if refused else str(err)
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt, truncated or not a torch "
                              f"file: {type(err).__name__}: {reason[:200]}); delete it and re-run the "
                              f"notebook that writes it") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        keys = sorted(map(str, ckpt))[:6] if isinstance(ckpt, dict) else type(ckpt).__name__  # keys of any type
        raise CheckpointError(f"{path} was not written by labutils (found {keys}); "
                              f"save models with labutils.checkpoint.save_checkpoint")
    if ckpt.get("version") != VERSION:
        newer = isinstance(ckpt.get("version"), int) and ckpt["version"] > VERSION
        raise CheckpointError(f"{path} has checkpoint version {ckpt.get('version')}, "
                              f"this labutils reads version {VERSION}: "
                              + ("it was written by a newer labutils: update this one (git pull; python -m pip "
                                 "install -e .), or re-run the notebook that writes it" if newer else
                                 "delete it and re-run the notebook that writes it"))
    missing = [k for k in ("arch", "arch_kwargs", "state_dict") if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} lacks {missing}: it was damaged or edited; delete it and re-run the "
                              f"notebook that writes it")
    if ckpt.get("encoding") == "sparse":
        try:
            ckpt["state_dict"] = unpack_sparse(ckpt["state_dict"])
        except Exception as err:  # a packed entry whose values, bitmask and shape disagree
            raise CheckpointError(f"{path}: its packed weights do not unpack ({type(err).__name__}: "
                                  f"{str(err)[:200]}); delete it and re-run the notebook that writes it") from err
    return ckpt


def course_model_of(path: str | os.PathLike) -> str | None:
    """The course model a file name says it holds (``vit_scratch_before_pruning.pth`` ->
    "vit_scratch"), or None for a name outside the ``<model>_<stage>.pth`` convention."""
    stem = Path(path).stem
    return next((m for m in MODEL_NAMES for st in STAGES if stem == f"{m}_{st}"), None)


def check_architecture(path: str | os.PathLike, ckpt: dict, model: str) -> None:
    """CheckpointError unless the checkpoint holds the architecture of course model ``model``."""
    expected = COURSE_MODELS[model]["arch"]
    if ckpt.get("arch") != expected:
        raise CheckpointError(f"{path} is named for {model!r} ({expected}) but holds a {ckpt.get('arch')} "
                              f"model; it was renamed or copied from another model. Delete it and re-run "
                              f"the notebook that writes it")


def _misfit(saved: dict, expected: dict, err: RuntimeError) -> str:
    """How many of the saved tensors do not fit the model's, with the first of each kind: torch's
    own text lists every one (a hundred lines for a ResNet-18 of another width)."""
    def shape(t):
        return list(t.shape) if isinstance(t, torch.Tensor) else f"a {type(t).__name__}"

    def tensors(names: list) -> str:
        return f"{len(names)} tensor{'s' if len(names) > 1 else ''}"

    other = [k for k in expected if k in saved and shape(saved[k]) != shape(expected[k])]
    missing = [k for k in expected if k not in saved]
    unknown = [k for k in saved if k not in expected]
    parts = [f"{tensors(other)} of another shape, such as {other[0]} {shape(saved[other[0]])} where the "
             f"architecture has {shape(expected[other[0]])}"] if other else []
    parts += [f"{tensors(missing)} missing, such as {missing[0]}"] if missing else []
    parts += [f"{tensors(unknown)} the architecture does not have, such as {unknown[0]}"] if unknown else []
    lines = str(err).splitlines()  # nothing found above: torch's first complaint
    return ", ".join(parts) or (lines[1] if len(lines) > 1 else lines[0] if lines else type(err).__name__).strip()[:200]


def load_checkpoint(path: str | os.PathLike, device="cpu", expect_model: str | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the model a checkpoint describes and load its weights: (model, checkpoint dict).

    The model is in eval mode, ready to score (no drop-path, BatchNorm's stored statistics kept);
    call ``model.train()`` before training it.

    The architecture must be that of ``expect_model`` (a course model name), or, by default, of
    the model the file's name says (``cnn_*`` a ResNet-18, ...): a checkpoint renamed to another
    model's name is refused."""
    ckpt = read_checkpoint(path)
    model_name = expect_model or course_model_of(path)
    if model_name:
        check_architecture(path, ckpt, model_name)
    try:
        model = build_model(ckpt["arch"], **ckpt["arch_kwargs"])
    except (TypeError, ValueError) as err:  # an architecture this labutils lacks, an argument it does not take
        raise CheckpointError(f"{path}: its architecture {ckpt['arch']!r} {ckpt['arch_kwargs']} cannot be built "
                              f"({type(err).__name__}: {err}); it was damaged or edited, or written by another "
                              f"labutils: delete it and re-run the notebook that writes it") from err
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        misfit = _misfit(ckpt["state_dict"], model.state_dict(), err)
        raise CheckpointError(f"{path}: its weights do not fit its architecture {ckpt['arch']} {ckpt['arch_kwargs']}: "
                              f"{misfit}; it was damaged or edited, or written by another labutils: delete it and "
                              f"re-run the notebook that writes it") from err
    # The training memory format: the same layout gives the same arithmetic.
    return model.to(device, memory_format=memory_format(device)).eval(), ckpt
