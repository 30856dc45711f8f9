"""Training and evaluation: bf16 autocast on CUDA, channels_last, label smoothing, one-cycle or
cosine schedules, SGD or AdamW, and a callback after every optimizer step (pruning masks use it
to keep removed weights at zero)."""
from __future__ import annotations

import math
import os
import random
import sys
import time
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .accel import forward_runner, fused_optimizer, memory_format, tune_backends

StepCallback = Callable[[nn.Module, torch.optim.Optimizer, int], None]


def get_device(preference: str | torch.device = "auto") -> torch.device:
    """"auto" picks CUDA when present, else Apple's MPS, else the CPU; never assumes CUDA."""
    if str(preference) != "auto":
        device = torch.device(preference)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"DEVICE={preference!r} but no CUDA GPU is visible; use DEVICE='auto' or 'cpu'")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def plain_progress() -> bool:
    """True under papermill (the pipeline sets LABUTILS_PLAIN_PROGRESS): print a line per epoch
    instead of redrawing bars, which would pile up in the executed notebook."""
    return os.environ.get("LABUTILS_PLAIN_PROGRESS", "") not in ("", "0")


def progress(iterable: Iterable | None = None, **kwargs):
    """tqdm.auto's bar (a widget in Jupyter), or a silent pass-through under papermill."""
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=plain_progress() or kwargs.pop("disable", False), **kwargs)


def autocast(device: torch.device):
    # bf16 on CUDA only: on CPU it is slower than fp32 for these small convolutions.
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def _to_device(x: torch.Tensor, y: torch.Tensor, device: torch.device):
    if x.device != device:
        x = x.to(device, non_blocking=True).contiguous(memory_format=memory_format(device))
        y = y.to(device, non_blocking=True)
    return x, y


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device | None = None, tta_flip: bool = False) -> dict:
    """{"accuracy": fraction correct, "loss": mean cross-entropy, "n": examples seen}. With
    ``tta_flip`` the logits are the mean of each image's and its mirror image's (test-time
    augmentation: twice the work)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct, loss, n = 0, 0.0, 0
    for x, y in loader:
        x, y = _to_device(x, y, device)
        with autocast(device):
            logits = model(x)
            if tta_flip:
                logits = (logits.float() + model(x.flip(-1)).float()) / 2
        # Summed on the device: one host sync at the end, not two per batch.
        loss += F.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
        n += len(y)
    model.train(was_training)
    return {"accuracy": int(correct) / max(n, 1), "loss": float(loss) / max(n, 1), "n": n}


def make_optimizer(model: nn.Module, name: str = "sgd", lr: float = 0.1,
                   weight_decay: float = 5e-4, momentum: float = 0.9,
                   betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.Optimizer:
    """SGD (Nesterov) or AdamW; biases, norms and embeddings (1-D or token tensors) get no decay.
    On CUDA the fused kernels update every parameter in one launch."""
    decay, no_decay = [], []
    for pname, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or "pos_embed" in pname or "cls_token" in pname else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    fused = {"fused": True} if fused_optimizer(model) else {}
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0, **fused)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, **fused)
    raise ValueError(f"unknown optimizer {name!r}; use 'sgd' or 'adamw'")


def make_schedule(optimizer, schedule: str, total_steps: int, warmup: float = 0.1):
    """"onecycle" (linear up for ``warmup`` of the steps, then linear down to zero), "cosine"
    (linear warm-up, cosine decay) or "constant"; as a LambdaLR stepped every batch."""
    warm = max(1, int(warmup * total_steps))

    def factor(step: int) -> float:
        if schedule == "constant":
            return 1.0
        if step < warm:
            return (step + 1) / warm
        t = min(1.0, (step - warm) / max(1, total_steps - warm))
        if schedule == "onecycle":
            return 1.0 - t
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * t))
        raise ValueError(f"unknown schedule {schedule!r}; use 'onecycle', 'cosine' or 'constant'")

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def mix_batch(x: torch.Tensor, y: torch.Tensor, num_classes: int, alpha: float,
              label_smoothing: float):
    """Mixup or CutMix (one of the two, at random) with soft targets: the regularisation a ViT
    trained from scratch on 50k images needs."""
    target = F.one_hot(y, num_classes).float() * (1 - label_smoothing) + label_smoothing / num_classes
    lam = float(np.random.beta(alpha, alpha))
    perm = torch.randperm(len(x), device=x.device)
    if np.random.rand() < 0.5:  # mixup
        x = lam * x + (1 - lam) * x[perm]
    else:  # cutmix: paste a box from the partner image, weight targets by its area
        h, w = x.shape[-2:]
        ch, cw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
        cy, cx = np.random.randint(h), np.random.randint(w)
        y0, y1, x0, x1 = max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[..., y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    return x, lam * target + (1 - lam) * target[perm]


def fit(model: nn.Module, train_loader, test_loader=None, *, epochs: int, lr: float,
        optimizer: str = "sgd", schedule: str = "onecycle", weight_decay: float = 5e-4,
        momentum: float = 0.9, warmup: float = 0.2, label_smoothing: float = 0.1,
        mixup: float = 0.0, num_classes: int = 10, grad_clip: float | None = None,
        callback: StepCallback | None = None, device: torch.device | None = None,
        desc: str = "train", eval_every: int = 1, max_steps: int | None = None,
        compile: bool | str = False, ema: float = 0.0) -> list[dict]:
    """Train ``model`` and return its history: one dict per epoch (losses, accuracies, lr, time).

    ``callback(model, optimizer, step)`` runs after every optimizer step. ``mixup`` > 0 mixes
    batches (Mixup or CutMix with Beta(mixup, mixup) weights). ``test_loader`` is
    evaluated every ``eval_every`` epochs and after the last. ``max_steps`` stops early
    (smoke runs and tests). ``compile`` (True or a torch.compile mode name) runs the training
    forward through ``torch.compile`` (eager if that fails; worth it for long runs only, see
    ``labutils.accel``). ``ema`` > 0 keeps an exponential moving average of the weights (and
    BatchNorm statistics) with that decay per step; it is what gets evaluated, and it is copied
    into ``model`` at the end (dense training only: an average does not keep pruned weights at
    zero). The step loop
    never waits for the device: losses and counts are summed there and read once per epoch.
    """
    device = device or next(model.parameters()).device
    tune_backends(device)
    model.to(device, memory_format=memory_format(device)).train()
    forward = forward_runner(model, compile)
    opt = make_optimizer(model, optimizer, lr, weight_decay, momentum)
    total = epochs * len(train_loader) if max_steps is None else min(max_steps, epochs * len(train_loader))
    sched = make_schedule(opt, schedule, total, warmup)
    averaged = weight_average(model, ema) if ema else None
    scored = averaged.module if averaged is not None else model
    history, step = [], 0
    epoch_bar = progress(range(epochs), desc=desc, unit="epoch")
    for epoch in epoch_bar:
        start, seen, correct, loss_sum = time.perf_counter(), 0, 0, 0.0
        for x, y in progress(train_loader, desc=f"epoch {epoch + 1}", leave=False, unit="batch"):
            x, y = _to_device(x, y, device)
            target = y
            if mixup:
                x, target = mix_batch(x, y, num_classes, mixup, label_smoothing)
            with autocast(device):
                logits = forward(x)
                loss = F.cross_entropy(logits.float(), target,
                                       label_smoothing=0.0 if mixup else label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            sched.step()
            step += 1
            if callback is not None:
                callback(model, opt, step)
            if averaged is not None:
                averaged.update_parameters(model)
            loss_sum += loss.detach() * len(y)  # no .item(): a sync per step would stall the GPU
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            if step >= total:
                break
        record = {"epoch": epoch + 1, "train_loss": float(loss_sum) / max(seen, 1),
                  "images": seen, "train_seconds": time.perf_counter() - start, "lr": sched.get_last_lr()[0]}
        if not mixup:  # against mixed targets, accuracy on the unmixed labels means little
            record["train_accuracy"] = float(correct) / max(seen, 1)
        last = epoch == epochs - 1 or step >= total
        if test_loader is not None and ((epoch + 1) % eval_every == 0 or last):
            ev = evaluate(scored, test_loader, device)
            record.update(test_accuracy=ev["accuracy"], test_loss=ev["loss"])
        record["seconds"] = time.perf_counter() - start
        history.append(record)
        _report(desc, epochs, record, epoch_bar)
        if step >= total:
            break
    if averaged is not None:
        model.load_state_dict(averaged.module.state_dict())
    return history


def weight_average(model: nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """An exponential moving average of ``model``'s weights and buffers, updated in one
    multi-tensor operation per step."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _report(desc: str, epochs: int, record: dict, bar) -> None:
    test = f" test {record['test_accuracy']:.2%}" if "test_accuracy" in record else ""
    train = f" train {record['train_accuracy']:.2%}" if "train_accuracy" in record else ""
    line = (f"{desc}: epoch {record['epoch']}/{epochs} loss {record['train_loss']:.3f}"
            f"{train}{test} ({record['seconds']:.1f}s)")
    if plain_progress():
        print(line, file=sys.stdout, flush=True)
    else:
        bar.set_postfix_str(line.split(": ", 1)[1])
