"""A recipe sweep: train candidate recipes for one model, each scored on a validation set (5,000
class-balanced images held out of the training split; ``--holdout``), within a time budget, and
write the table as JSON and markdown. The test split plays no part: a recipe chosen on the test
images would flatter itself when the workbook's run scores it on them. ``--holdout 0`` scores on
the whole test split instead, and the table says so.

Each candidate overrides the ``full`` profile's recipe of the model (``labutils/profiles.py``:
``TRAIN`` for cnn and vit_scratch, ``QUANT`` for resnet20; trained on the training split less the
held-out images), or another profile's with ``--profile`` (``cpu``: its reduced models, trained on
10,000 class-balanced images drawn from the rest)::

    {"name": "cutout+ema", "train": {"cutout": 16, "ema": 0.999}, "model": {"drop_path_rate": 0.2}}

``train`` keys are those a profile's training recipe takes (``labutils.train.fit``'s arguments:
epochs, lr, weight_decay, label_smoothing, mixup, ema, ...; the training loader's: ``batch_size``
and ``labutils.data.AUGMENTATION``: ``cutout``, ``augment`` = trivialaugment | randaugment |
autoaugment, ``repeats``) and ``tta_flip`` (True or False); ``model`` keys are those a profile
takes for the architecture (``drop_path_rate``...). Every candidate is checked before any runs:
each value by its rule, then the profile with the candidate in it by ``labutils.profile_check``'s
cross-checks (a ViT's width that its heads do not split, a batch larger than the training images;
with ``--smoke``, on smoke's widths as well, which the candidate's model keys override). Names
are strings, one per candidate. A candidate whose training loss went NaN or infinite is done,
with the note "diverged (training loss nan): scores at chance"; one that raises is a failed row,
and the sweep goes on.
A winner enters the ``full`` profile as the same keys, except ``tta_flip``: a sweep-only scoring
option (``evaluate(tta_flip=True)``, the mean of each image's and its mirror's logits) that no
profile key sets, so the workbook's run does not score that way.
Columns: accuracy on the held-out images with its Wilson 95% interval, epochs, seconds of
training (the first epoch's warm-up and compilation included: torch.compile's first compile falls
in the first compiling candidate of a process; the JSON splits ``first_epoch_seconds`` from
``later_epochs_seconds``; wall time with building and scoring in each row's ``wall_seconds``) and training images/s.
``{"name": "airbench94", "airbench": true}`` (or airbench96) runs the airbench peer on the same
data: trained on the candidates' training images, scored on the same held-out images
(``benchmarks/airbench_peer.py``; CUDA only, otherwise the row says why it did not run).

Built-in lists per model (``CANDIDATES``), or ``--candidates FILE`` (a JSON list, or a Python
file defining ``CANDIDATES``: a list, or a dict of lists by model like the built-in one);
``--only NAME`` keeps the named ones. The budget's clock starts after the airbench rows; when it is
spent no new candidate starts (the rest are listed as skipped), but none is cut: a sweep lasts its
budget plus the longest candidate started before it ran out, and a row that ended after it says by
how much (the sweep's own wall time is in the header and the JSON's ``wall_seconds``). A table of
the model already in ``--out`` is refused unless ``--force``.

Exit status: 0 when no row failed (rows not run or skipped included), 3 when some row failed, 1
when some failed and none is done, or when sweep.py refuses the candidate list or a value (--out,
--jobs, --budget-s, --holdout, --only, a table already in --out), 2 when argparse refuses the command
line (an unknown option or --model, a missing --out or --data-root, --jobs that is no whole number...).

``--jobs N`` trains N candidates at a time on the device, each in a process of its own: these
models are too small to keep a large GPU busy (a training step is bound by kernel launches, not
arithmetic), so several at once finish a list sooner. Each still sees its own seed and data; its
seconds and images/s are then those of a shared device, not comparable with a run alone (the
table says so). The airbench rows always run alone, first.

    python benchmarks/sweep.py --model cnn --data-root data --out runs/sweep --budget-s 300 --airbench
    python benchmarks/sweep.py --model vit_scratch --data-root data --out runs/sweep --jobs 3
    python benchmarks/sweep.py --model resnet20 --smoke --out runs/sweep    # seconds on a CPU
    python benchmarks/sweep.py --model cnn --profile cpu --data-root data --out runs/sweep-cpu
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import inspect
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from labutils.artifacts import atomic_write_bytes, device_name, git_commit, write_json
from labutils.data import (AUGMENTATION, DeviceLoader, augmentation_of, describe_data, fit_arguments, load_cifar10,
                           subset, subset_indices, write_synthetic_cifar10)
from labutils.errors import one_line
from labutils.measure import accuracy_interval
from labutils.models import build_model, course_model
from labutils.profile_check import flag, problems, schema
from labutils.profiles import PROFILES, get_profile
from labutils.train import evaluate, fit, seed_everything

sys.path.insert(0, str(Path(__file__).resolve().parent))
import airbench_peer  # noqa: E402  (beside this file)
from bench_train import device_or_error  # noqa: E402

MODELS = ("cnn", "vit_scratch", "resnet20")
LOADER_KEYS, EVAL_KEYS = {"batch_size", *AUGMENTATION}, {"tta_flip"}
FIT_KEYS = set(inspect.signature(fit).parameters) - {"model", "train_loader", "test_loader", "callback",
                                                     "device", "desc"}  # what the sweep may pass fit
AIRBENCH = [{"name": "airbench94", "airbench": True}, {"name": "airbench96", "airbench": True}]
SOME_FAILED, NONE_DONE = 3, 1  # exit statuses (0: no row failed)
CANDIDATE_KEYS = {"name", "train", "model", "airbench"}
HOLDOUT = 5000  # training images held out to score the candidates on (--holdout)
SMOKE_HOLDOUT = 100  # of the smoke data's 200

# Candidates worth a few points each according to public recipes (issue: the write-up).
CANDIDATES = {
    "cnn": [
        {"name": "today", "train": {}},
        {"name": "cutout 16", "train": {"cutout": 16}},
        {"name": "ema 0.999", "train": {"ema": 0.999}},
        {"name": "flip TTA", "train": {"tta_flip": True}},
        {"name": "label smoothing 0.2", "train": {"label_smoothing": 0.2}},
        {"name": "50 epochs", "train": {"epochs": 50}},
        {"name": "cutout+ema+TTA, 50 epochs", "train": {"cutout": 16, "ema": 0.999, "tta_flip": True, "epochs": 50}},
    ],
    # Compared at a short horizon (30 epochs); extrapolate only what wins there. The public
    # ViT-from-scratch CIFAR-10 recipes (91-94%) all use a policy augmentation, erasing and
    # label smoothing; repeated augmentation comes from DeiT.
    "vit_scratch": [
        {"name": "today at 30 epochs", "train": {"epochs": 30}},
        {"name": "trivialaugment", "train": {"epochs": 30, "augment": "trivialaugment"}},
        {"name": "randaugment 2/9", "train": {"epochs": 30, "augment": "randaugment"}},
        {"name": "autoaugment (CIFAR-10 policy)", "train": {"epochs": 30, "augment": "autoaugment"}},
        {"name": "trivialaugment + cutout 8", "train": {"epochs": 30, "augment": "trivialaugment", "cutout": 8}},
        {"name": "repeated augmentation x3", "train": {"epochs": 30, "repeats": 3}},
        {"name": "stochastic depth 0.2", "train": {"epochs": 30}, "model": {"drop_path_rate": 0.2}},
        {"name": "ema 0.999", "train": {"epochs": 30, "ema": 0.999}},
        {"name": "flip TTA", "train": {"epochs": 30, "tta_flip": True}},
        {"name": "no mixup, label smoothing 0.1", "train": {"epochs": 30, "mixup": 0.0}},
    ],
    "resnet20": [
        {"name": "today", "train": {}},
        {"name": "weight decay 1e-4", "train": {"weight_decay": 1e-4}},
        {"name": "classic: batch 128, lr 0.1, wd 1e-4", "train": {"batch_size": 128, "lr": 0.1, "weight_decay": 1e-4}},
        {"name": "120 epochs, wd 1e-4", "train": {"epochs": 120, "weight_decay": 1e-4}},
        {"name": "cutout 16, flip TTA", "train": {"cutout": 16, "tta_flip": True}},
    ],
}

# The cpu profile's recipes on its 10,000 images: the same epochs (so about the same minutes)
# with another step size or more, smaller steps, and one longer run to show what time buys.
# benchmarks/results/cpu-sweep-2026-12-06 swept the recipes before their step sizes doubled.
CPU_CANDIDATES = {
    "cnn": [
        {"name": "today", "train": {}},
        {"name": "lr 0.1 (before 2026-12-06)", "train": {"lr": 0.1}},
        {"name": "lr 0.4", "train": {"lr": 0.4}},
        {"name": "batch 64", "train": {"batch_size": 64}},
        {"name": "batch 32, lr 0.1", "train": {"batch_size": 32, "lr": 0.1}},
        {"name": "no label smoothing", "train": {"label_smoothing": 0.0}},
        {"name": "9 epochs", "train": {"epochs": 9}},
    ],
    "vit_scratch": [
        {"name": "today", "train": {}},
        {"name": "lr 1e-3 (before 2026-12-06)", "train": {"lr": 1e-3}},
        {"name": "lr 4e-3", "train": {"lr": 4e-3}},
        {"name": "batch 64", "train": {"batch_size": 64}},
        {"name": "9 epochs", "train": {"epochs": 9}},
    ],
    "resnet20": [
        {"name": "today", "train": {}},
        {"name": "lr 0.1 (before 2026-12-06)", "train": {"lr": 0.1}},
        {"name": "lr 0.4", "train": {"lr": 0.4}},
        {"name": "batch 64", "train": {"batch_size": 64}},
    ],
}


class SweepError(ValueError):
    """A candidate list the sweep cannot run (unknown keys, no name...)."""


def base_recipe(model: str, profile: str = "full") -> tuple[dict, dict]:
    """(training recipe, architecture overrides) of ``model`` in ``profile``."""
    recipes = get_profile(profile)
    if model == "resnet20":
        return dict(recipes["quant"]["train"]), dict(recipes["quant"]["resnet20"])
    return dict(recipes["train"][model]), dict(recipes["models"][model])


def model_rules(model: str) -> dict:
    """The architecture keys a profile takes for ``model`` (from its builder), each with its rule."""
    node = schema().rules["quant"].rules["resnet20"] if model == "resnet20" else schema().rules["models"].rules[model]
    return node.rules


def train_rules(model: str) -> dict:
    """The training keys a candidate may set for ``model``, each with its rule: the profile's recipe
    keys (profile_check's: not num_classes or stop_if_diverged, the caller's) that fit or the
    loader takes (not QUANT's "steps"), and ``tta_flip`` (bool("False") is true)."""
    node = schema().rules["quant"].rules["train"] if model == "resnet20" else schema().rules["train"].rules[model]
    return {k: rule for k, rule in node.rules.items() if k in FIT_KEYS | LOADER_KEYS} | {"tta_flip": flag}


def smoke_widths(model: str) -> dict:
    """The smoke profile's narrow architecture of ``model``."""
    smoke = get_profile("smoke")
    return dict(smoke["quant"]["resnet20"] if model == "resnet20" else smoke["models"][model])


def candidate_profile(model: str, candidate: dict, profile: str, smoke: bool) -> dict:
    """``profile`` with ``candidate``'s overrides in ``model``'s recipe and architecture (on smoke's
    widths with ``smoke``, as train_candidate builds its model; the recipe keeps the candidate's
    batch size, which smoke's training replaces), for profile_check's cross-checks."""
    applied = get_profile(profile)  # a copy
    recipe = applied["quant"]["train"] if model == "resnet20" else applied["train"][model]
    recipe.update({k: v for k, v in candidate.get("train", {}).items() if k not in EVAL_KEYS})
    archs = applied["quant"] if model == "resnet20" else applied["models"]
    archs[model] = (smoke_widths(model) if smoke else archs[model]) | candidate.get("model", {})
    return applied


def check(candidates: list[dict], model: str, profile: str = "full", smoke: bool = False) -> list[dict]:
    """Refuse, naming the candidate, what the sweep could not run (before any candidate runs): each
    key by its rule, then the candidate in ``profile`` by profile_check's cross-checks."""
    if not all(isinstance(c, dict) for c in candidates):
        raise SweepError(f"every candidate is a dict such as {{'name': 'cutout', 'train': {{'cutout': 16}}}}; "
                         f"got {candidates}")
    names = [c.get("name") for c in candidates]  # a string: --only and the job folders (--jobs) take it
    if not all(isinstance(n, str) and n.strip() for n in names) or len(set(names)) != len(names):
        raise SweepError(f"every candidate needs a name of its own, a non-empty string such as 'cutout 16'; "
                         f"got {names}")
    arch = model_rules(model)  # a misspelt key failed its row only after the candidates before it had run
    rules = train_rules(model)
    for c in candidates:
        if extra := set(c) - CANDIDATE_KEYS:  # a misspelt "train" would run the base recipe under the new name
            raise SweepError(f"candidate {c['name']!r}: unknown key(s) {sorted(extra)}; known: {sorted(CANDIDATE_KEYS)}")
        if not all(isinstance(c.get(k, {}), dict) for k in ("train", "model")):
            raise SweepError(f"candidate {c['name']!r}: 'train' and 'model' are dicts of overrides")
        if unknown := set(c.get("train", {})) - set(rules):
            raise SweepError(f"candidate {c['name']!r}: unknown train key(s) {sorted(unknown)}; known: {sorted(rules)}")
        if unknown := set(c.get("model", {})) - set(arch):
            raise SweepError(f"candidate {c['name']!r}: unknown model key(s) {sorted(unknown)} for {model}; "
                             f"known: {sorted(arch)}")
        if bad := [f"{k}={v!r} {why}" for k, v in c.get("model", {}).items() if (why := arch[k](v))]:
            raise SweepError(f"candidate {c['name']!r}: {'; '.join(bad)}")
        recipe = base_recipe(model, profile)[0] | c.get("train", {})  # a bad value failed only at its turn
        if bad := [f"{k}={v!r} {why}" for k, v in recipe.items() if rules.get(k) and (why := rules[k](v))]:
            raise SweepError(f"candidate {c['name']!r}: {'; '.join(bad)}")
        # What no single value shows (a ViT width its heads do not split, a batch larger than the
        # data) failed with a bare AssertionError that ended the sweep; smoke runs on smoke's widths.
        for on_smoke in (False, True) if smoke else (False,):
            if found := problems(candidate_profile(model, c, profile, on_smoke)):
                where = f"the {profile} profile" + (" with smoke's widths" if on_smoke else "")
                raise SweepError(f"candidate {c['name']!r} on {where}: {'; '.join(found)}; change the candidate")
        if c.get("airbench") and c["name"] not in airbench_peer.VARIANTS:
            raise SweepError(f"candidate {c['name']!r}: an airbench row is named one of {airbench_peer.VARIANTS}")
    return candidates


def load_candidates(path: str, model: str) -> list[dict]:
    """A JSON list, or a Python file defining ``CANDIDATES``; either may be a dict of lists by
    model (as ``CANDIDATES`` here), of which ``model``'s is taken."""
    try:
        if path.endswith(".py"):
            spec = importlib.util.spec_from_file_location("sweep_candidates", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            candidates = getattr(module, "CANDIDATES", None)
        else:
            candidates = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise SweepError(f"{path} is not valid JSON ({err}): fix it, or write a Python file defining CANDIDATES")
    except (OSError, UnicodeDecodeError) as err:  # a folder, a missing or binary file
        raise SweepError(f"cannot read {path} ({type(err).__name__}: {err}): pass a JSON or Python file")
    if isinstance(candidates, dict) and "name" in candidates:
        raise SweepError(f"{path} holds a single candidate: put it in a list, [{{'name': {candidates['name']!r}, ...}}]")
    if isinstance(candidates, dict):
        if model not in candidates:
            raise SweepError(f"{path} lists candidates for {sorted(candidates)}, not {model}: add a {model!r} entry")
        candidates = candidates[model]
    if not isinstance(candidates, (list, tuple)) or not all(isinstance(c, dict) for c in candidates):
        what = "define CANDIDATES as" if path.endswith(".py") else "hold"
        raise SweepError(f"{path} must {what} a list of dicts (or a dict of such lists by model), "
                         f"such as [{{'name': 'cutout', 'train': {{'cutout': 16}}}}]")
    return list(candidates)


def build(model: str, arch: dict) -> torch.nn.Module:
    return build_model("resnet20", **arch) if model == "resnet20" else course_model(model, **arch)


def sweep_data(data_root: Path, profile: str, holdout: int) -> dict:
    """The candidates' training images ("train") and the images that score them ("scored"): with
    ``holdout`` > 0, that many class-balanced images of the training split score them and the
    profile's training images come from the rest; with 0, the whole test split scores them."""
    images, labels = load_cifar10(data_root, True, download=False)
    n_train = get_profile(profile)["data"]["n_train"]
    if not 0 <= holdout <= len(labels) // 2:
        raise SweepError(f"--holdout takes 0 (score on the test split) to {len(labels) // 2:,} "
                         f"(half the {len(labels):,} training images); got {holdout}")
    if not holdout:
        return {"train": subset(images, labels, n_train), "scored": load_cifar10(data_root, False, download=False),
                "scored_on": "the whole test split"}
    held = subset_indices(labels, holdout)
    rest = np.setdiff1d(np.arange(len(labels)), held)
    return {"train": subset(images[rest], labels[rest], n_train), "scored": (images[held], labels[held]),
            "scored_on": f"{holdout:,} class-balanced images held out of the training split (none of the test split)"}


def train_candidate(model_name: str, candidate: dict, data: dict, device: torch.device, smoke: bool,
                    profile: str = "full") -> dict:
    """Train one candidate from ``profile``'s recipe and score it on ``data["scored"]``."""
    recipe, arch = base_recipe(model_name, profile)
    recipe.update(candidate.get("train", {}))
    if smoke:  # a couple of steps, narrow models: the workflow, not the numbers
        recipe.update(epochs=1, max_steps=2, batch_size=32, compile=False)
        arch = smoke_widths(model_name)  # under the candidate's keys: they are what it tries
    arch.update(candidate.get("model", {}))
    tta = bool(recipe.pop("tta_flip", False))
    seed_everything(0)
    train = DeviceLoader(*data["train"], recipe["batch_size"], True, device, seed=0, **augmentation_of(recipe))
    scored = DeviceLoader(*data["scored"], 500, False, device)
    model = build(model_name, arch).to(device)
    history = fit(model, train, None, device=device, desc=f"{model_name} {candidate['name']}",
                  **fit_arguments(recipe))
    score = evaluate(model, scored, device, tta_flip=tta)
    seconds = sum(h["train_seconds"] for h in history)
    row = {"accuracy": score["accuracy"], "interval": list(accuracy_interval(score["accuracy"], score["n"])),
           "scored_images": score["n"], "epochs": len(history), "seconds": seconds,
           "images_per_second": sum(h["images"] for h in history) / seconds,
           # the first epoch holds the warm-up and any compile: the later ones are the steady state
           "first_epoch_seconds": history[0]["train_seconds"],
           "later_epochs_seconds": seconds - history[0]["train_seconds"]}
    # fit's warning went to stderr (a child's log with --jobs): the table read as a finished recipe.
    if lost := [h["train_loss"] for h in history if not math.isfinite(h["train_loss"])]:
        row["note"] = f"diverged (training loss {lost[0]}): scores at chance"
    return row


def run_row(model_name: str, candidate: dict, data: dict, device, smoke: bool, airbench_dir,
            profile: str = "full") -> dict:
    """One row of the table: done (with numbers), not run (airbench off CUDA) or failed (why)."""
    row = {"name": candidate["name"], "overrides": overrides(candidate)}
    start = time.perf_counter()
    try:
        if candidate.get("airbench"):
            reason = airbench_peer.not_run_reason()
            row |= {"status": "not run", "note": reason} if reason else airbench_peer.run_airbench(
                candidate["name"], airbench_dir())
        else:
            row |= {"status": "done", **train_candidate(model_name, candidate, data, device, smoke, profile)}
    except Exception as err:  # out of memory, a bad value...: one failed row; the sweep goes on (not on Ctrl-C)
        row |= {"status": "failed", "note": one_line(err)}
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    finally:  # every row, airbench's too, carries it
        row["wall_seconds"] = time.perf_counter() - start
    return row


def overrides(candidate: dict) -> dict:
    return {k: v for k, v in candidate.items() if k != "name"}


def sweep(model_name: str, candidates: list[dict], data_root: Path, out: Path, budget_s: float,
          device, smoke: bool = False, jobs: int = 1, profile: str = "full", holdout: int = HOLDOUT,
          force: bool = False) -> dict:
    """Run the candidates in order until the budget is spent (``jobs`` at a time, each in a
    process of its own, when more than one); write the JSON and markdown tables. A table of
    ``model_name`` already in ``out`` is refused unless ``force``: the first row would replace it."""
    check(candidates, model_name, profile, smoke)
    if jobs < 1:
        raise SweepError(f"--jobs must be 1 or more, got {jobs}")
    if math.isnan(budget_s) or budget_s < 0:
        raise SweepError(f"--budget-s takes 0 or more seconds (inf: no limit), got {budget_s}")
    if not force and (held := [p for p in table_paths(out, model_name) if p.exists()]):
        raise SweepError(f"{held[0]} already holds a {model_name} sweep: pass --force to replace it, or another --out")
    data = sweep_data(data_root, profile, holdout)
    airbench_folder = []

    def airbench_dir() -> Path:  # written once, when the first airbench row runs: the candidates' data
        if not airbench_folder:
            splits = {"train": data["train"], "test": data["scored"]}
            airbench_folder.append(airbench_peer.write_airbench_data(data_root, out / "airbench", splits).parent)
        return airbench_folder[0]

    result = {"model": model_name, "profile": profile, "smoke": smoke, "device": device_name(device),
              "data": describe_data(data_root), "git_commit": git_commit(paths=("labutils", "benchmarks")),
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "torch": torch.__version__,
              "budget_seconds": None if math.isinf(budget_s) else budget_s, "jobs": jobs,  # null: no limit
              "training_images": len(data["train"][1]), "holdout": holdout, "scored_on": data["scored_on"],
              "base_recipe": dict(zip(("train", "model"), base_recipe(model_name, profile))),
              "wall_seconds": 0.0, "rows": []}
    began = time.perf_counter()

    def add(row: dict) -> None:
        result["rows"].append(row)
        result["wall_seconds"] = time.perf_counter() - began  # the budget cuts no candidate: the whole sweep's
        print(format_row(row), flush=True)
        write_tables(result, out)  # after every row: a run cut short keeps what it measured

    def skipped(candidate: dict) -> dict | None:
        spent = time.perf_counter() - start
        if spent < budget_s:
            return None
        return {"name": candidate["name"], "overrides": overrides(candidate), "status": "skipped",
                "note": f"time budget spent ({spent:.0f} of {budget_s:.0f} s)", "wall_seconds": 0.0}

    def ended(row: dict) -> dict:  # started within the budget, it ran to its end: say by how much it overran
        over = time.perf_counter() - start - budget_s
        if over > 0 and row["status"] != "skipped":
            row["note"] = "; ".join(filter(None, (row.get("note"), f"ended {over:.0f} s after the budget")))
        return row

    for candidate in [c for c in candidates if c.get("airbench")]:  # alone, first, outside the budget
        add(run_row(model_name, candidate, data, device, smoke, airbench_dir, profile))
    start = time.perf_counter()
    trained = [c for c in candidates if not c.get("airbench")]
    if jobs == 1:
        for candidate in trained:
            add(skipped(candidate) or ended(run_row(model_name, candidate, data, device, smoke, airbench_dir, profile)))
    else:
        for row in run_in_processes(model_name, trained, data_root, out, device, smoke,
                                    jobs, skipped, profile, holdout, ended):
            add(row)
    return result


def exit_status(result: dict) -> int:
    """0 when no row failed (rows not run or skipped included); otherwise SOME_FAILED, or NONE_DONE
    when no row is done either: a failed sweep must not read as a finished one."""
    statuses = [r["status"] for r in result["rows"]]
    if "failed" not in statuses:
        return 0
    return SOME_FAILED if "done" in statuses else NONE_DONE


def job_folders(candidates: list[dict], out: Path, model_name: str) -> dict[str, Path]:
    """Each candidate's folder under ``out/jobs/MODEL/`` (the sweeps of several models share
    ``out``): its place in the list, then its name."""
    return {c["name"]: out / "jobs" / model_name / f"{i + 1:02d}_{re.sub(r'[^A-Za-z0-9.+-]+', '_', c['name'])}"
            for i, c in enumerate(candidates)}


def run_in_processes(model_name: str, candidates: list[dict], data_root: Path, out: Path,
                     device, smoke: bool, jobs: int, skipped, profile: str, holdout: int, ended):
    """Yield the candidates' rows in their order, training ``jobs`` at a time: each in a child
    ``sweep.py --only NAME`` writing its own table and log under ``out/jobs/MODEL/``, read back when
    it ends (and passed to ``ended`` then, not when its turn in the order comes)."""
    listed = write_json(out / "jobs" / model_name / "candidates.json", candidates)
    folders = job_folders(candidates, out, model_name)
    base = [sys.executable, str(Path(__file__).resolve()), "--model", model_name, "--candidates", str(listed),
            "--data-root", str(data_root), "--device", str(device), "--budget-s", "inf",  # this clock decides
            "--profile", profile, "--holdout", str(holdout), "--force"]  # a rerun's folders: this sweep's now
    base += ["--smoke"] if smoke else []
    rows: dict[str, dict] = {}
    running: dict[str, subprocess.Popen] = {}
    started: dict[str, float] = {}
    waiting, given = list(candidates), 0
    try:
        while given < len(candidates):
            while waiting and len(running) < jobs:
                candidate = waiting.pop(0)
                if (row := skipped(candidate)) is not None:
                    rows[candidate["name"]] = row
                    continue
                folder = folders[candidate["name"]]
                folder.mkdir(parents=True, exist_ok=True)
                for stale in table_paths(folder, model_name):  # an earlier run's table is not this child's row
                    stale.unlink(missing_ok=True)
                with open(folder / "log.txt", "wb") as log:  # its epochs, not interleaved with the others'
                    running[candidate["name"]] = subprocess.Popen(base + ["--only", candidate["name"], "--out", str(folder)],
                                                                  stdout=log, stderr=subprocess.STDOUT)
                started[candidate["name"]] = time.perf_counter()
                print(f"{candidate['name']}: started (log: {(folder / 'log.txt').relative_to(out)})", flush=True)
            for name, child in list(running.items()):
                if child.poll() is not None:
                    del running[name]
                    rows[name] = _child_row(name, child.returncode, folders[name], model_name)
                    rows[name].setdefault("wall_seconds", time.perf_counter() - started[name])
                    rows[name].setdefault("overrides", overrides(next(c for c in candidates if c["name"] == name)))
                    ended(rows[name])
            while given < len(candidates) and candidates[given]["name"] in rows:  # in order, once known
                yield rows[candidates[given]["name"]]
                given += 1
            time.sleep(0.2)
    finally:
        for child in running.values():  # interrupted: no orphan keeps the device busy
            child.terminate()


def _child_row(name: str, returncode: int, child_out: Path, model_name: str) -> dict:
    table = child_out / f"sweep_{model_name}.json"
    if returncode in (0, SOME_FAILED, NONE_DONE) and table.is_file():  # a failed row exits non-zero too
        return json.loads(table.read_text())["rows"][0]
    tail = (child_out / "log.txt").read_text(errors="replace").strip().splitlines()[-1:] or [""]
    return {"name": name, "status": "failed",
            "note": f"its process ended with exit status {returncode}: {tail[0]} (log: jobs/{model_name}/{child_out.name}/log.txt)"}


def format_row(row: dict) -> str:
    if row["status"] != "done":
        return f"{row['name']}: {row['status']} ({row.get('note', '')})"
    lo, hi = row["interval"]
    return (f"{row['name']}: {row['accuracy']:.2%} [{lo:.2%}, {hi:.2%}] on {row['scored_images']} images, "
            f"{row['epochs']:g} epochs, {row['seconds']:.0f} s, {row['images_per_second']:,.0f} images/s"
            + (f" ({row['note']})" if row.get("note") else ""))


def markdown(result: dict) -> str:
    lines = [f"# Recipe sweep: {result['model']}", "",
             f"{result['device']}, {result['data']}, the {result.get('profile', 'full')} profile's recipe on "
             f"{result.get('training_images', 0):,} training images, scored on {result['scored_on']}, "
             f"commit `{result['git_commit']}`, {result['date'][:10]}, "
             f"torch {result['torch']}, "
             + ("no time budget" if result["budget_seconds"] is None else
                f"budget {result['budget_seconds']:.0f} s, counted after the airbench rows (no candidate is cut: "
                f"one started within it runs to its end)")
             + (f", {result['wall_seconds']:.0f} s in all" if "wall_seconds" in result else "")
             + "; seconds include the first epoch (warm-up; torch.compile's first compile falls in the first "
               "compiling candidate of a process: the JSON's first_epoch_seconds)"
             + (f", {result['jobs']} candidates at a time on the one device (seconds and images/s are "
                f"shared-device figures; the airbench rows ran alone)" if result.get("jobs", 1) > 1 else "")
             + (" (smoke: a couple of steps, narrow models; the numbers mean nothing)" if result["smoke"] else ""),
             "", "| candidate | accuracy | 95% interval | epochs | seconds | images/s | note |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        if r["status"] == "done":
            lo, hi = r["interval"]
            lines.append(f"| {r['name']} | {r['accuracy']:.2%} | {lo:.2%} - {hi:.2%} | {r['epochs']:g} | "
                         f"{r['seconds']:.0f} | {r['images_per_second']:,.0f} | {r.get('note', '')} |")
        else:
            lines.append(f"| {r['name']} | {r['status']} | | | | | {r.get('note', '')} |")
    return "\n".join(lines) + "\n"


def table_paths(out: Path, model: str) -> tuple[Path, Path]:
    return out / f"sweep_{model}.json", out / f"sweep_{model}.md"


def write_tables(result: dict, out: Path) -> tuple[Path, Path]:
    """The JSON first (write_json refuses NaN): no markdown table without the JSON beside it."""
    js, md = table_paths(out, result["model"])
    write_json(js, result)
    text = markdown(result)
    return js, atomic_write_bytes(md, lambda f: f.write(text.encode()))


def make_out_folder(out: Path) -> None:
    """Make ``out``, or say why it cannot be the tables' folder: a file there was found only when the
    first row's table was written, after its training."""
    if out.exists() and not out.is_dir():
        raise SweepError(f"--out {out} is a file: give a folder (sweep_MODEL.json and .md go into it)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SweepError(f"cannot make the folder --out {out} ({err.strerror or err}): give a folder you can write to")
    if not os.access(out, os.W_OK):
        raise SweepError(f"cannot write into --out {out}: give a folder you can write to")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=MODELS)
    ap.add_argument("--candidates", metavar="FILE", default=None,
                    help="JSON list or Python file with CANDIDATES (default: the built-in list of --model)")
    ap.add_argument("--data-root", metavar="DIR", default=None,
                    help="folder holding cifar-10-batches-py")
    ap.add_argument("--out", metavar="DIR", required=True, help="where sweep_MODEL.json and .md go")
    ap.add_argument("--budget-s", type=float, default=540.0,
                    help="start no candidate after this many seconds, counted after the airbench rows "
                         "(default 540; inf: no limit); a candidate started runs to its end")
    ap.add_argument("--force", action="store_true", help="replace a table of --model already in --out")
    ap.add_argument("--airbench", action="store_true", help="add airbench94 and airbench96 rows first (CUDA)")
    ap.add_argument("--only", metavar="NAME", action="append", default=None,
                    help="run only this candidate of the list (repeat for more)")
    ap.add_argument("--jobs", type=int, default=1,
                    help="candidates trained at a time on the device, each in a process of its own (default 1)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--profile", default="full", choices=[p for p in PROFILES if p != "smoke"],
                    help="whose recipe and models the candidates change (default full; cpu: the reduced "
                         "models on its 10,000 training images, and its own built-in candidates)")
    ap.add_argument("--holdout", type=int, default=None,
                    help=f"class-balanced training images held out to score every candidate on (default {HOLDOUT:,}, "
                         f"{SMOKE_HOLDOUT} with --smoke); 0 scores on the whole test split")
    ap.add_argument("--smoke", action="store_true",
                    help="synthetic data, narrow models, two steps per candidate (tests, CPU)")
    args = ap.parse_args(argv)
    os.environ.setdefault("LABUTILS_PLAIN_PROGRESS", "1")  # one printed line per epoch in the log
    if not (args.data_root or args.smoke):
        ap.error("--data-root is required (or --smoke)")
    device = device_or_error(ap, args.device)  # a GPU this machine lacks: one line (exit 2), not a traceback
    out = Path(args.out)
    holdout = args.holdout if args.holdout is not None else SMOKE_HOLDOUT if args.smoke else HOLDOUT
    try:
        make_out_folder(out)
        data_root = Path(args.data_root) if args.data_root else out / "data-synthetic"
        if not args.data_root and not (data_root / "cifar-10-batches-py" / "test_batch").is_file():
            write_synthetic_cifar10(data_root, n_train=200, n_test=100, seed=0)
        built_in = CPU_CANDIDATES if args.profile == "cpu" else CANDIDATES
        if not args.candidates and args.model not in built_in:
            raise SweepError(f"no built-in {args.profile} candidates for {args.model}: pass --candidates FILE")
        candidates = load_candidates(args.candidates, args.model) if args.candidates else built_in[args.model]
        candidates = (AIRBENCH if args.airbench else []) + list(candidates)
        if args.only:
            known = [c.get("name") for c in candidates]
            if unknown := [n for n in args.only if n not in known]:
                raise SweepError(f"--only {', '.join(unknown)}: no such candidate; the list has {known}")
            candidates = [c for c in candidates if c.get("name") in args.only]
        return sweep(args.model, candidates, data_root, out, args.budget_s, device,
                     args.smoke, args.jobs, args.profile, holdout, args.force)
    except (SweepError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    sys.exit(exit_status(main()))
