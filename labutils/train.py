"""Training and evaluation: mixed precision chosen per device (``accel.precision_for``: bf16 on
recent GPUs, fp16 with a gradient scaler on older ones, fp32 on CPU), channels_last, label
smoothing, one-cycle or cosine schedules, SGD or AdamW, a callback after every optimizer step and
its optional gradient hook before it (pruning masks use them to keep removed weights at zero), and
optionally the whole step captured in a CUDA graph."""
from __future__ import annotations

import copy
import itertools
import math
import numbers
import os
import random
import sys
import time
import warnings
from contextlib import closing, contextmanager, nullcontext
from contextvars import ContextVar
from html import unescape
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .accel import (CompiledForward, GraphedStep, autocast, compile_uses_cudagraphs, forward_runner, full_float32,
                    fused_optimizer, grad_scaler, graphs_unavailable, memory_format, precision_for, tune_backends)
from .errors import SettingsError, TrainingDiverged

StepCallback = Callable[[nn.Module, torch.optim.Optimizer, int], None]


def get_device(preference: str | torch.device = "auto") -> torch.device:
    """"auto" picks CUDA when present, else Apple's MPS, else the CPU; never assumes CUDA."""
    if str(preference) != "auto":
        try:
            device = torch.device(preference)
        except RuntimeError:  # torch's message lists a dozen backends the workbook does not use
            raise ValueError(f"unknown DEVICE (--device) {str(preference)!r}: use auto, cpu, cuda, cuda:N "
                             f"or mps") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"DEVICE (--device) {str(preference)!r}, but no CUDA GPU is visible: use auto or cpu")
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise RuntimeError(f"DEVICE (--device) {str(preference)!r}, but this machine has {torch.cuda.device_count()} CUDA "
                               f"GPU(s), numbered from 0")
        mps = getattr(torch.backends, "mps", None)
        if device.type == "mps" and not (mps and mps.is_available()):
            raise RuntimeError(f"DEVICE (--device) {str(preference)!r}, but Apple's MPS is not available here: use auto or cpu")
        if device.type not in ("cpu", "cuda", "mps"):
            raise ValueError(f"device {str(preference)!r} is not one the workbook runs on: use auto, cpu, cuda, cuda:N or mps")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def check_seed(seed) -> int:
    """The seed, or SettingsError: numpy takes only whole numbers from 0 to 2**32 - 1, and would
    say so only after the run's folders were written."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**32:
        raise SettingsError(f"SEED = {seed!r}: use a whole number from 0 to {2**32 - 1}")
    return int(seed)


def seed_everything(seed: int, *loaders) -> None:
    """Python's, NumPy's and torch's generators, and the ``loaders``' own (their shuffles and
    crops), reset: what runs next draws the same whatever ran before it. A loader without a
    generator of its own (a torch DataLoader built without one, as ``data.get_loaders`` does)
    shuffles from torch's global generator, which ``torch.manual_seed`` resets here; its workers
    seed their crops and flips from it too when they start (persistent workers would not restart)."""
    for loader in loaders:
        if getattr(loader, "generator", None) is not None:
            loader.generator.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def plain_progress() -> bool:
    """True under papermill (the pipeline sets LABUTILS_PLAIN_PROGRESS): print a line per epoch
    instead of redrawing bars, which would pile up in the executed notebook."""
    return os.environ.get("LABUTILS_PLAIN_PROGRESS", "") not in ("", "0")


_quiet = ContextVar("labutils_quiet_progress", default=False)


def progress(iterable: Iterable | None = None, **kwargs):
    """tqdm.auto's bar, or a silent pass-through under papermill and inside ``quiet_progress``.

    In Jupyter the bar is a widget while it runs; once closed it gives way to a static copy of its
    last state (HTML and text), because a widget in a saved notebook renders only while its kernel
    lives ("Error displaying widget: model not found" after a reload or restart). A closed bar
    must be full or have no total: tqdm paints one closed short red, its failure colour.
    """
    from tqdm.auto import tqdm
    from tqdm.notebook import tqdm_notebook

    disable = kwargs.pop("disable", False) or plain_progress() or _quiet.get()
    if not disable and issubclass(tqdm, tqdm_notebook):
        tqdm = _settling(tqdm)
    return tqdm(iterable, disable=disable, **kwargs)


_SETTLING: dict[type, type] = {}


def _settling(notebook_bar: type) -> type:
    """tqdm's notebook bar class, made to replace its widget by ``_static_copy`` when it closes
    (by nothing when leave=False: the bar is then gone)."""
    if notebook_bar not in _SETTLING:
        from IPython.display import display

        class Settling(notebook_bar):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, display=False, **kwargs)
                # display() returns None outside a kernel: then there is nothing to replace.
                self._handle = None if self.disable else display(self.container, display_id=True)

            def close(self):
                was_open = not self.disable
                super().close()
                if was_open and self._handle is not None:
                    self._handle.update(_static_copy(self) if self.leave else {"text/plain": ""}, raw=True)

        _SETTLING[notebook_bar] = Settling
    return _SETTLING[notebook_bar]


def _static_copy(bar) -> dict:
    """A notebook bar's last state (text, colour, fill) as HTML and plain text: renders anywhere."""
    left, widget, right = bar.container.children
    share = widget.value / widget.max if widget.max else 1.0
    colour = {"success": "#388e3c", "danger": "#d32f2f"}.get(widget.bar_style, "#1976d2")
    html = (f'<div class="labutils-bar" data-style="{widget.bar_style}" data-fill="{share:.3f}" '
            f'style="display:flex;align-items:center;gap:0.6em;white-space:nowrap">'
            f'<span>{left.value}</span><span style="display:inline-block;width:20em;height:1.1em;'
            f'background:#e0e0e0"><span style="display:block;height:100%;width:{100 * share:.1f}%;'
            f'background:{colour}"></span></span><span>{right.value}</span></div>')
    return {"text/html": html, "text/plain": unescape(f"{left.value} {right.value}").replace("\u2007", " ")}


@contextmanager
def quiet_progress():
    """Silence the bars and per-epoch lines of the fits run inside: a loop of fits (a study, a
    search) shows one bar of its own and one line per point instead of a bar per fit."""
    token = _quiet.set(True)
    try:
        yield
    finally:
        _quiet.reset(token)


def to_device(x: torch.Tensor, y: torch.Tensor, device: torch.device):
    if x.device != device:
        x = x.to(device, non_blocking=True).contiguous(memory_format=memory_format(device))
        y = y.to(device, non_blocking=True)
    return x, y


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device | None = None, tta_flip: bool = False,
             precision: str | None = None, per_image: bool = False) -> dict:
    """{"accuracy": fraction correct, "loss": mean cross-entropy, "n": examples seen}. With
    ``tta_flip`` the logits are the mean of each image's and its mirror image's (test-time
    augmentation: twice the work). ``precision``: the autocast's (None: the device's, bf16 on
    recent GPUs; "fp32" to score the weights exactly as they are: no autocast, and no TF32 either,
    which training allows on GPUs). With ``per_image``, also "correct": a bool per image in the
    loader's order, on the CPU (for paired tests)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct, loss, n, hits = 0, 0.0, 0, []
    try:  # an interrupt or error mid-way must not leave a training model in eval mode
        for x, y in loader:
            x, y = to_device(x, y, device)
            with full_float32() if precision == "fp32" else nullcontext(), autocast(device, precision):
                logits = model(x)
                if tta_flip:
                    logits = (logits.float() + model(x.flip(-1)).float()) / 2
            # Summed on the device: one host sync at the end, not two per batch.
            loss += F.cross_entropy(logits.float(), y, reduction="sum")
            right = logits.argmax(1) == y
            correct += right.sum()
            n += len(y)
            if per_image:
                hits.append(right)
    finally:
        model.train(was_training)
    if n == 0:  # an accuracy of 0.0 would read as a broken model, not as an empty split
        raise ValueError("no images to score: the loader gave no batches; check its split and that batch_size "
                         "is not more than its images (a loader that drops its last partial batch then gives none)")
    out = {"accuracy": int(correct) / n, "loss": float(loss) / n, "n": n}
    if per_image:
        out["correct"] = torch.cat(hits).cpu() if hits else torch.zeros(0, dtype=torch.bool)
    return out


OPTIMIZERS = ("sgd", "adamw")


def make_optimizer(model: nn.Module, name: str = "sgd", lr: float = 0.1,
                   weight_decay: float = 5e-4, momentum: float = 0.9,
                   betas: tuple[float, float] = (0.9, 0.999), graphs: bool = False) -> torch.optim.Optimizer:
    """SGD (Nesterov) or AdamW; biases, norms and embeddings (1-D or token tensors) get no decay.
    On CUDA the fused kernels update every parameter in one launch.

    ``graphs`` (for a step captured in a CUDA graph): the learning rate lives in a device tensor
    that the schedule overwrites in place, so the replayed step reads the current one, and AdamW
    keeps its step count on the device (``capturable``)."""
    decay, no_decay = [], []
    for pname, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or "pos_embed" in pname or "cls_token" in pname else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    fused = {"fused": True} if fused_optimizer(model) else {}
    if graphs:
        device = next(p.device for g in groups for p in g["params"])
        for g in groups:  # one tensor per group: the schedule writes each in place
            g["lr"] = torch.tensor(float(lr), device=device)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0, **fused)
    if name == "adamw":
        capturable = {"capturable": True} if graphs and fused else {}
        return torch.optim.AdamW(groups, lr=lr, betas=betas, **fused, **capturable)
    raise ValueError(f"unknown optimizer {name!r}; use {' or '.join(map(repr, OPTIMIZERS))}")


SCHEDULES = ("onecycle", "cosine", "constant")


def make_schedule(optimizer, schedule: str, total_steps: int, warmup: float = 0.1):
    """"onecycle" (linear up for ``warmup`` of the steps, then linear down toward zero), "cosine"
    (linear warm-up, cosine decay) or "constant"; as a LambdaLR stepped every batch (with tensor
    learning rates, ``make_optimizer(graphs=True)``, it fills them in place: same values)."""
    if schedule not in SCHEDULES:  # now: the warm-up would not read the name, and it would fail after it
        raise ValueError(f"unknown schedule {schedule!r}; use {', '.join(map(repr, SCHEDULES))}")
    _check_fraction(warmup, "warmup")  # 20 (for 20%) trained at a fraction of the lr, -0.1 as 0
    # Rounded as prune.schedules.budget_steps rounds: int() made 0.29 * 100 = 28.999... 28 steps.
    warm = max(1, int(round(warmup * total_steps)))

    def factor(step: int) -> float:
        if schedule == "constant":
            return 1.0
        if step < warm:
            return (step + 1) / warm
        # Step warm - 1 is the peak; the step after the last would reach the end, 0: a last step at 0
        # changed no weight (a 2-step fine-tune made one update).
        t = min(1.0, (step - warm + 1) / (total_steps - warm + 1))
        if schedule == "onecycle":
            return 1.0 - t
        return 0.5 * (1 + math.cos(math.pi * t))  # cosine

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
        compile: bool | str = False, precision: str | None = None, graphs: bool = False,
        ema: float = 0.0, stop_if_diverged: bool = False) -> list[dict]:
    """Train ``model`` and return its history: one dict per epoch (losses, accuracies, lr, time).

    ``callback(model, optimizer, step)`` runs after every optimizer step; a callback with a
    ``before_step(model, optimizer)`` method has it run between the backward pass and the
    optimizer step (``MaskEnforcer`` masks the gradients there). ``mixup`` > 0 mixes
    batches (Mixup or CutMix with Beta(mixup, mixup) weights). ``test_loader`` is
    evaluated every ``eval_every`` epochs and after the last. ``max_steps`` stops early
    (smoke runs and tests). ``compile`` (True or a torch.compile mode name; another name is
    refused) runs the training forward through ``torch.compile`` (eager if that fails; worth it
    for long runs only, see ``labutils.accel``). ``precision`` ("bf16", "fp16" with a gradient scaler, "fp32"; None:
    ``accel.precision_for(device)``) sets the autocast. ``graphs`` captures the whole step in a
    CUDA graph (``accel.GraphedStep``; eager, with a warning, where it cannot be: see
    ``_graphs_obstacle``). ``ema`` > 0 keeps an exponential moving average of the weights (and
    BatchNorm statistics) with that decay per step, after a warm-up
    (``WeightAverage.decay_at``: update t, from 0, decays by min(ema, (1 + t) / (10 + t)), so the
    average of a short run is not its first step's weights); it is what gets evaluated, and it is copied
    into ``model`` at the end; a callback's ``masks`` (``MaskEnforcer``, ``GradualPruner``) are
    applied to the average after every update, so weights pruned during the run are zero in it
    too. The step loop
    never waits for the device: losses and counts are summed there and read once per epoch.

    The last epoch's record also holds "ran" (``_speed_modes_ran``): whether the compiled forward
    and the captured step actually ran, and "why" where one asked fell back to eager.

    An epoch whose training loss is NaN or infinite (a diverged run: it will score at chance) is
    warned of once; ``stop_if_diverged`` raises ``TrainingDiverged`` (a FloatingPointError) there instead. It is off by
    default: a sweep (notebook 06's) goes on past a diverged run and reports it.
    """
    _check_lengths(epochs, max_steps, eval_every)
    _check_rates(lr, weight_decay, momentum, warmup, label_smoothing, mixup, grad_clip, ema)
    if len(train_loader) == 0:  # it drops a last partial batch: it trained nothing, with a loss of 0
        raise ValueError(f"the training loader holds no whole batch: batch_size "
                         f"{getattr(train_loader, 'batch_size', '?')} is more than its images; use a smaller batch_size")
    if test_loader is not None and len(test_loader) == 0:  # now, not at the first scoring after epochs of training
        raise ValueError("the test loader gives no batch: check its split, and that batch_size is not more than its "
                         "images where it drops a last partial batch; to score none, pass test_loader=None")
    # A device given is checked by get_device: torch's own error for a missing GPU names its driver.
    device = get_device(device) if device is not None else next(model.parameters()).device
    tune_backends(device)
    model.to(device, memory_format=memory_format(device)).train()
    forward = forward_runner(model, compile)
    precision = precision or precision_for(device)
    graphs_asked, obstacle = graphs, None
    if graphs and (obstacle := _graphs_obstacle(device, precision, callback, compile)):
        warnings.warn(f"CUDA graphs not used ({obstacle}); training eagerly", RuntimeWarning, stacklevel=2)
        graphs = False
    opt = make_optimizer(model, optimizer, lr, weight_decay, momentum, graphs=graphs)
    train_step = make_train_step(model, forward, opt, device, precision, grad_clip,
                                 0.0 if mixup else label_smoothing, getattr(callback, "before_step", None),
                                 graphs)
    if graphs:
        train_step = GraphedStep(train_step, device, version=getattr(callback, "graph_version", None))
    total = epochs * len(train_loader) if max_steps is None else min(max_steps, epochs * len(train_loader))
    sched = make_schedule(opt, schedule, total, warmup)
    averaged = WeightAverage(model, ema) if ema else None
    # The masks of a pruning callback (MaskEnforcer, GradualPruner), which it may change as it runs.
    masks = getattr(callback, "masks", None) if averaged is not None else None
    if masks is not None:
        from .prune.masks import apply_masks  # here: labutils.prune imports this module
    scored = averaged.module if averaged is not None else model
    history, step, warned = [], 0, False
    beat, shown_epochs = Heartbeat(desc), math.ceil(total / max(len(train_loader), 1))
    # One bar counting optimizer steps, updated by hand: it ends full even when max_steps stops
    # the run inside an epoch (a bar wrapping the loops would close short, in red). Closed however
    # the loop ends: an interrupted or failed cell kept a live widget, which a saved notebook shows
    # as "Error displaying widget" (closed short, the bar turns red instead).
    with closing(progress(total=total, desc=desc, unit="step")) as bar:
        for epoch in range(epochs):
            start, seen, correct, loss_sum = time.perf_counter(), 0, 0, 0.0
            beat.restart()
            for i, (x, y) in enumerate(train_loader, 1):
                x, y = to_device(x, y, device)
                target = y
                if mixup:
                    x, target = mix_batch(x, y, num_classes, mixup, label_smoothing)
                loss, logits = train_step(x, target)
                sched.step()
                step += 1
                bar.update()
                beat(f"epoch {epoch + 1}/{shown_epochs}, step {i}/{len(train_loader)}")
                if callback is not None:
                    callback(model, opt, step)
                if averaged is not None:
                    averaged.update_parameters(model)
                    if masks:  # the average still holds weights pruned since it began: zero them there too
                        apply_masks(averaged.module, masks)
                loss_sum += loss.detach() * len(y)  # no .item(): a sync per step would stall the GPU
                correct += (logits.argmax(1) == y).sum()
                seen += len(y)
                if step >= total:
                    break
            last_lr = float(sched.base_lrs[0]) * sched.lr_lambdas[0](step - 1)  # this epoch's last step's (get_last_lr: the next's)
            record = {"epoch": epoch + 1, "train_loss": float(loss_sum) / max(seen, 1),
                      "images": seen, "train_seconds": time.perf_counter() - start, "lr": last_lr}
            if not mixup:  # against mixed targets, accuracy on the unmixed labels means little
                record["train_accuracy"] = float(correct) / max(seen, 1)
            if not math.isfinite(record["train_loss"]):  # read once an epoch above: no sync of its own
                where = (f"{desc}: training diverged at epoch {epoch + 1} of {shown_epochs} (training loss "
                         f"{record['train_loss']}; lower lr, or set grad_clip)")
                if stop_if_diverged:
                    raise TrainingDiverged(f"{where}; stopped")
                if not warned:  # once: the epochs after it say the same
                    warnings.warn(f"{where}; training on, the model will score at chance", RuntimeWarning, stacklevel=2)
                    warned = True
            last = epoch == epochs - 1 or step >= total
            if test_loader is not None and ((epoch + 1) % eval_every == 0 or last):
                ev = evaluate(scored, test_loader, device, precision=precision)  # as it trains
                record.update(test_accuracy=ev["accuracy"], test_loss=ev["loss"])
            record["seconds"] = time.perf_counter() - start
            history.append(record)
            _report(desc, shown_epochs, record, bar)
            if step >= total:
                break
    history[-1]["ran"] = _speed_modes_ran(forward, train_step, compile, graphs_asked, obstacle)
    if averaged is not None:
        model.load_state_dict(averaged.module.state_dict())
    return history


def _speed_modes_ran(forward, train_step, compile, graphs_asked: bool, obstacle: str | None) -> dict:
    """{"compile", "graphs"}: whether the compiled forward and the captured step ran (not whether
    they were asked: both fall back to eager with a warning alone), and "why" where one asked did not."""
    compiled = isinstance(forward, CompiledForward) and forward.working is True
    graphed = isinstance(train_step, GraphedStep) and train_step.reason is None and train_step.replayed > 0
    why = []
    if compile and not compiled:
        why.append(f"compile: {getattr(forward, 'reason', None) or 'the compiled forward never ran'}")
    if graphs_asked and not graphed:
        reason = obstacle or getattr(train_step, "reason", None) or (
            f"the run ended before a step was captured (each batch shape first runs "
            f"{train_step.warmup} eager warm-up steps)")
        why.append(f"graphs: {reason}")
    return {"compile": compiled, "graphs": graphed} | ({"why": "; ".join(why)} if why else {})


def speed_modes_ran(*histories: list[dict]) -> dict | None:
    """What ran of the speed modes over several fits (their histories' last "ran"): compiled or
    graphed only where every fit was, with each distinct "why"; None where no fit ran (or none
    recorded it: an older record)."""
    ran = [h[-1]["ran"] for h in histories if h and "ran" in h[-1]]
    if not ran:
        return None
    why = list(dict.fromkeys(r["why"] for r in ran if r.get("why")))
    return ({"compile": all(r["compile"] for r in ran), "graphs": all(r["graphs"] for r in ran)}
            | ({"why": "; ".join(why)} if why else {}))


def _whole(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1


def _check_lengths(epochs, max_steps, eval_every) -> None:
    """ValueError for a length ``fit`` cannot run: epochs=0 returned no history (callers then
    failed at history[-1]), 1.5 was a TypeError, max_steps=0 still trained a step, and
    eval_every=0 divided by zero after a whole epoch."""
    if not _whole(epochs):
        raise ValueError(f"epochs={epochs!r} must be a whole number >= 1; for part of an epoch give max_steps "
                         f"too (prune.schedules.fit_budget(epochs, train_loader) gives both)")
    if max_steps is not None and not _whole(max_steps):
        raise ValueError(f"max_steps={max_steps!r} must be a whole number >= 1 (optimizer steps), or None "
                         f"for no limit")
    if not _whole(eval_every):
        raise ValueError(f"eval_every={eval_every!r} must be a whole number >= 1 (epochs between scores of "
                         f"the test split); to score none, pass test_loader=None")


def _check_fraction(value, name: str) -> None:
    """ValueError unless 0 <= value <= 1: "warmup 20 is not a share: give 0.2 for 20%"."""
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (number and 0 <= value <= 1):
        hint = f"give {value / 100:g} for {value:g}%" if number and 1 < value <= 100 else "give a number from 0 to 1"
        raise ValueError(f"{name} {value!r} is not a share: {hint}")


def _check_rates(lr, weight_decay, momentum, warmup, label_smoothing, mixup, grad_clip, ema=0.0) -> None:
    """ValueError for an optimizer setting that would train wrongly without a word: a negative
    grad_clip reversed the gradients, a negative weight_decay grew the weights, momentum >= 1
    diverged, and mixup < 0 or lr="0.1" failed only at the first step, in numpy's or torch's words."""
    def real(v):  # a number, or a one-element float tensor (graphs=True keeps lr in one)
        return (isinstance(v, numbers.Real) and not isinstance(v, bool)) or (
            isinstance(v, torch.Tensor) and v.numel() == 1 and v.is_floating_point())

    if not (real(lr) and 0 < lr < math.inf):
        raise ValueError(f"lr={lr!r} must be a positive number (for example 0.1; a number, not a string)")
    if not (real(weight_decay) and 0 <= weight_decay < math.inf):
        raise ValueError(f"weight_decay={weight_decay!r} must be a number >= 0 (for example 5e-4; 0 for none)")
    if not (real(momentum) and 0 <= momentum < 1):
        raise ValueError(f"momentum={momentum!r} must be a number from 0 up to, not including, 1 "
                         f"(for example 0.9; 0 for none)")
    if grad_clip is not None and not (real(grad_clip) and 0 <= grad_clip < math.inf):
        raise ValueError(f"grad_clip={grad_clip!r} must be a number > 0 (the largest gradient norm let through), "
                         f"or None or 0 for no clipping")
    if not (real(mixup) and 0 <= mixup < math.inf):
        raise ValueError(f"mixup={mixup!r} must be a number >= 0 (the Beta distribution's alpha, for example "
                         f"0.2; 0 for no mixing)")
    _check_fraction(warmup, "warmup")
    _check_fraction(label_smoothing, "label_smoothing")
    if label_smoothing == 1:  # every target uniform over the classes: nothing left to learn
        raise ValueError(f"label_smoothing={label_smoothing!r} must be a number in [0, 1) (for example 0.1; "
                         f"0 for none)")
    # As the profiles allow it: ema='0.99' failed inside, "'<' not supported", and True averaged nothing.
    if not (isinstance(ema, numbers.Real) and not isinstance(ema, bool) and 0 <= ema < 1):
        raise ValueError(f"ema={ema!r} must be a number in [0, 1) (the average's decay per step, for example "
                         f"0.999; 0 for no average)")


def make_train_step(model: nn.Module, forward, opt: torch.optim.Optimizer, device: torch.device,
                    precision: str, grad_clip: float | None = None, label_smoothing: float = 0.0,
                    before_step=None, graphs: bool = False):
    """One training step as a function ``(images, targets) -> (loss, logits)``, both detached:
    forward under autocast, backward (scaled for fp16), ``before_step`` (gradient masks), clipping
    (on unscaled gradients), optimizer step. Tensor work only, never a host sync, so
    ``GraphedStep`` can capture it whole."""
    scaler = grad_scaler(device, precision)

    def step(x: torch.Tensor, target: torch.Tensor):
        with autocast(device, precision, cache=not graphs):
            logits = forward(x)
            loss = F.cross_entropy(logits.float(), target, label_smoothing=label_smoothing)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if before_step is not None:
            before_step(model, opt)
        if grad_clip:
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(opt)  # skipped by the scaler when fp16 gradients overflowed
        scaler.update()
        return loss.detach(), logits.detach()

    return step


def _graphs_obstacle(device: torch.device, precision: str, callback, compile) -> str | None:
    """Why ``fit(graphs=True)`` must run eagerly, or None."""
    if reason := graphs_unavailable(device):
        return reason
    if precision == "fp16":
        return "the fp16 gradient scaler decides on the host whether to step"
    if compile_uses_cudagraphs(compile):
        return f"compile={compile!r} already uses CUDA graphs for the forward and backward"
    if callback is not None and not getattr(callback, "graph_safe", False):
        return (f"the step callback {type(callback).__name__} is not marked graph_safe (it may "
                f"replace tensors the captured step reads)")
    return None


class WeightAverage:
    """An exponential moving average of a model's weights and buffers (``.module``), updated
    after each step by one multi-tensor lerp, with no host sync: torch's ``AveragedModel`` reads
    its step count on the host at every update (``bool(n_averaged == 0)``, a device-to-host copy
    that waits for the GPU: pytorch/pytorch#157705). The first update copies the weights; integer
    buffers (BatchNorm's batch counts) are copied, not averaged.

    The decay warms up (``decay_at``: the num_updates rule of TensorFlow's ExponentialMovingAverage):
    with 0.999 from the start, a 150-step run still held 86% of the first step's weights, and scored
    at chance."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema must lie between 0 and 1 (for example 0.999), got {decay}")
        self.module, self.decay, self.updates = copy.deepcopy(model), decay, 0
        # Which tensors are averaged and which copied is fixed by the copy: sorted once, not per step.
        tensors = list(itertools.chain(self.module.parameters(), self.module.buffers()))
        self._lerp_at = [i for i, t in enumerate(tensors) if t.is_floating_point()]
        self._copy_at = [i for i, t in enumerate(tensors) if not t.is_floating_point()]
        self._lerped = [tensors[i] for i in self._lerp_at]
        self._copied = [tensors[i] for i in self._copy_at]
        self._all = tensors

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        # The live model's tensors are read every time: a callback may have replaced them.
        current = list(itertools.chain(model.parameters(), model.buffers()))
        t, self.updates = self.updates, self.updates + 1
        if t == 0:  # the first update copies everything
            torch._foreach_copy_(self._all, current)
            return
        if self._copied:  # integer buffers (BatchNorm's batch counts)
            torch._foreach_copy_(self._copied, [current[i] for i in self._copy_at])
        if self._lerped:  # a host float: no sync
            torch._foreach_lerp_(self._lerped, [current[i] for i in self._lerp_at], 1.0 - self.decay_at(t))

    def decay_at(self, t: int) -> float:
        """The decay of update ``t`` (counted from 0; update 0 copies the weights):
        min(decay, (1 + t) / (10 + t)), so the average follows the model early in a run
        (0.18 at update 1, 0.5 at 8, 0.9 at 80, 0.99 at 890) instead of keeping its first weights."""
        return min(self.decay, (1 + t) / (10 + t))


HEARTBEAT_SECONDS = 60.0


class Heartbeat:
    """On the plain path (papermill), a line when ``HEARTBEAT_SECONDS`` of an epoch pass without
    one: a CPU epoch can take minutes, and the run's log said nothing meanwhile. Silent elsewhere
    (the bar moves) and inside ``quiet_progress``."""

    def __init__(self, desc: str):
        self.desc, self.every = desc, HEARTBEAT_SECONDS
        self.on = plain_progress() and not _quiet.get()
        self.restart()

    def restart(self) -> None:
        self.start = self.last = time.perf_counter()

    def __call__(self, where: str) -> None:
        if self.on and (now := time.perf_counter()) - self.last >= self.every:
            self.last = now
            print(f"{self.desc}: {where} ({now - self.start:.0f}s into the epoch)", flush=True)


def _report(desc: str, epochs: int, record: dict, bar) -> None:
    test = f" test {record['test_accuracy']:.2%}" if "test_accuracy" in record else ""
    train = f" train {record['train_accuracy']:.2%}" if "train_accuracy" in record else ""
    epoch = f"epoch {record['epoch']}/{epochs} loss {record['train_loss']:.3f}"
    report_progress(bar, desc, epoch + test, f"{epoch}{train}{test} ({record['seconds']:.1f}s)")


def report_progress(bar, desc: str, short: str, line: str | None = None) -> None:
    """A finished unit's numbers (an epoch, a round): ``desc: line`` printed on the plain path,
    ``short`` as the bar's postfix otherwise (a long postfix wraps the widget onto a second
    line); nothing inside ``quiet_progress``."""
    if _quiet.get():
        return
    if plain_progress():
        print(f"{desc}: {line or short}", file=sys.stdout, flush=True)
    else:
        bar.set_postfix_str(short)
