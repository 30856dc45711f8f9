"""Notebook 04 · structured pruning: whole channels, attention heads and MLP neurons physically
removed, so the pruned model is a smaller dense model that runs faster.

What it teaches: which units are coupled (residual streams), why masking a channel must also
silence its BatchNorm shift, how importance criteria compare, and where fewer MACs become
wall-clock speed (``throughput``: images/s against batch size, dense vs pruned, CUDA graphs on a
GPU). Library pieces: ``prune.structured`` (groups, importance, surgery), ``measure`` (MACs,
latency, throughput), ``train.fit``.

The recipe (``profile["structured"][name]``): ``steps`` are shares of the ORIGINAL units removed, cut after cut; after each cut
BatchNorm statistics are re-estimated (``bn_batches``) and the model fine-tuned (``step_epochs``
between cuts, ``finetune["epochs"]`` after the last), so the network recovers before it loses more.
"""
from __future__ import annotations

import copy
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from ..accel import full_float32, graphs_unavailable
from ..artifacts import as_stored
from ..course import AFTER_PRUNING_MIN, MODEL_NAMES, SPARSITY_MIN, meets_minimum
from ..errors import SettingsError
from ..measure import NOISY_WHY, compare_latency, count_macs, measure_latency, take_turns
from ..models import build_model, count_parameters
from ..plots import COLORS, finish, log_tick_labels, named_styles, panels, style_for
from ..profile_check import check_settings, schema
from ..profiles import format_settings
from ..prune import structured as S
from ..session import Session, check_model, check_models
from ..train import evaluate, fit, seed_everything, speed_modes_ran

STAGE = "after_structured_pruning"


def _weights(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def print_cnn_groups(session: Session) -> None:
    """The channel groups of the dense ``cnn`` architecture (this profile's width) and their widths."""
    for group, width in S.widths(build_model("resnet18", **session.model_overrides("cnn"))).items():
        print(f"{group:16s} {width}")


def print_recipes(session: Session, models: list[str]) -> None:
    """Each model's structured recipe (criterion, cuts, latency settings) and its fine-tuning,
    checked (``check_recipe``)."""
    for name in check_models(models):
        cfg = check_recipe(session.profile["structured"][name], name)
        print(f"{name:12s} {format_settings({k: v for k, v in cfg.items() if k != 'finetune'})}")
        print(f"{'':12s} fine-tuning: {format_settings(cfg['finetune'], indent=26)}")


def check_recipe(cfg: dict, name: str) -> dict:
    """``cfg`` if its criteria exist and fit ``name`` (bn_scale needs the CNN's BatchNorms, in
    ``criterion`` and in ``compare`` alike) and its keys and values pass (``check_settings``,
    ``check_values``), else a SettingsError now, before the loaders and the criteria comparison's minutes."""
    check_settings("structured", cfg)  # a key misspelt by hand
    unknown = [c for c in [cfg["criterion"], *cfg["compare"]] if c not in S.CRITERIA]
    if unknown:
        raise SettingsError(f"{name}: unknown criterion {unknown[0]!r} in the profile's structured recipe; "
                            f"choose from {S.CRITERIA}")
    if name != "cnn":  # a ViT has no BatchNorm: bn_scale in compare was dropped without a word
        for key, criteria in (("criterion", [cfg["criterion"]]), ("compare", cfg["compare"])):
            if unfit := [c for c in criteria if c in S.BATCHNORM_CRITERIA]:
                raise SettingsError(f"{name}: criterion {unfit[0]!r}{' in compare' if key == 'compare' else ''} "
                                    f"needs BatchNorm (the CNN only); choose one of {S.VIT_CRITERIA}")
    check_values(cfg)  # steps, scope, multiple: refused before the study prints, not after
    return cfg


# The recipe's values the cuts' logic rests on: an empty ``steps`` returned the dense model itself,
# unfine-tuned (exercise 3 then trained the baseline in place), and a share going down made a cut
# that removed nothing, recorded under the share asked. The profile check's rules, not a copy.
CHECKED_VALUES = ("criterion", "scope", "steps", "compare", "compare_shares", "multiple")


def check_values(cfg: dict, path: str = "cfg") -> None:
    """SettingsError naming each of ``CHECKED_VALUES`` in ``cfg`` that the profile check would
    refuse (``check_settings`` checks the keys only). Other values keep an exercise's freedom
    (half an epoch); a numpy array of shares is read as its list."""
    rules = schema().rules["structured"].rules[MODEL_NAMES[0]].rules
    found = []
    for key in CHECKED_VALUES:
        if key in cfg:
            # numpy's scalars too: a multiple from np.array([1, 4, 8]) is a whole number.
            value = cfg[key].tolist() if isinstance(cfg[key], (np.ndarray, np.generic, torch.Tensor)) else cfg[key]
            if key == "compare_shares" and isinstance(value, list):  # a 0 (np.linspace(0, ...)) is the dense point
                value = [v for v in value if v != 0] or value
            if (why := rules[key](value)) is not None:
                found.append((key, f'{path}["{key}"] = {cfg[key]!r} {why}'))
    if found:
        hint = (" (steps: shares of the ORIGINAL units, each above the one before, such as [0.25, 0.5])"
                if any(key == "steps" for key, _ in found) else "")
        raise SettingsError("\n".join(line for _, line in found) + f"\nnothing was cut: correct the recipe{hint}")


def compare_criteria(model: nn.Module, train, test, cfg: dict) -> dict:
    """Accuracy right after a one-shot cut (BN re-estimated, no fine-tuning) for each criterion
    and share in ``cfg["compare_shares"]``: which criterion picks the units that matter least.

    Returns {"dense_accuracy", "images" (how many test images scored it), "unit" (what
    ``pruning_percentage`` counts: "channels" or "heads"), "criteria": {criterion: [{"share",
    "pruning_percentage" (the share as report.json counts it, ``S.reported_share_removed``: a
    ViT's heads), "channels_removed_percentage" (``S.channel_share_removed``: a ViT's head
    channels and MLP neurons), "accuracy"}, ...]}}. Records written before the rename hold the
    channels under "pruning_percentage" and the heads under "reported_percentage" (``_shares``).
    A criterion that does not fit ``model`` (bn_scale on a ViT) is refused, as in ``check_recipe``.
    """
    check_settings("structured", cfg)  # an exercise's recipe, edited by hand
    check_values(cfg)
    if S.family(model) != "resnet":  # bn_scale in compare, on a ViT: refused as by the recipe, not dropped
        check_recipe(cfg, model.arch["name"])
    _reseed(train)
    groups, original = S.channel_groups(model), S.widths(model)
    unit = S.reported_unit(groups)
    study = {"dense_accuracy": evaluate(model, test)["accuracy"], "images": len(test.labels), "unit": unit,
             "criteria": {}}
    for criterion in cfg["compare"]:
        scores = S.importance(model, criterion, train, cfg["taylor_batches"])
        points = []
        for share in cfg["compare_shares"]:
            keep = S.select(scores, share, original, cfg["scope"], cfg["multiple"], groups=groups)
            small = S.recalibrate_batchnorm(S.remove_units(model, keep), train, cfg["bn_batches"])
            points.append({"share": share, **_removed(original, S.widths(small), groups),
                           "accuracy": evaluate(small, test)["accuracy"]})
        study["criteria"][criterion] = points
        print(f"  {criterion:8s} " + "  ".join(_point(p, unit) for p in points) + f"  ({study['images']:,} test images)")
    return study


def _reseed(train) -> None:
    """Seeds reset from the training loader's: a cut's Taylor scores, BatchNorm re-estimation and
    fine-tuning draw the same batches (and drop-path and Mixup the same numbers) whatever ran
    before, so a cell run twice gives the same model, as in notebooks 03 and 06 (an exercise that
    reused the loader got another model at each run, and its comparison another winner)."""
    seed_everything(getattr(train, "seed", 0), train)


def _removed(original: dict, kept: dict, groups: dict) -> dict:
    """A cut's shares removed, one key per meaning: "pruning_percentage" as report.json counts it
    (a ViT's heads; the key means that in every record of this notebook), and
    "channels_removed_percentage" (a ViT's head channels and MLP neurons; a ResNet's: the same)."""
    return {"pruning_percentage": S.reported_share_removed(original, kept, groups),
            "channels_removed_percentage": S.channel_share_removed(original, kept, groups)}


def _shares(p: dict) -> tuple[float, float | None]:
    """(channels removed, share as report.json counts it or None) of a study point or step record.
    Before "channels_removed_percentage" existed, "pruning_percentage" counted channels there and
    "reported_percentage" (if any) the heads."""
    if "channels_removed_percentage" in p:
        return p["channels_removed_percentage"], p["pruning_percentage"]
    return p["pruning_percentage"], p.get("reported_percentage")


def _point(p: dict, unit: str = "channels") -> str:
    """"34% removed: 61.2%", with the share asked where whole units could not give it, and for a
    ViT the share of heads (report.json's, the figure's x)."""
    channels, reported = _shares(p)
    notes = [f"{p['share']:.0%} asked"] if abs(channels - 100 * p["share"]) >= 1 else []
    if unit == "heads" and reported is not None:
        notes.append(f"{reported:.0f}% of heads")
    said = f" ({'; '.join(notes)})" if notes else ""
    return f"{channels:.0f}% removed{said}: {p['accuracy']:.2%}"


def cut_and_finetune(model: nn.Module, train, test, cfg: dict, device, desc: str = "prune"):
    """Cut and fine-tune per ``cfg["steps"]``; returns (pruned model, per-step records: "share"
    asked, "pruning_percentage" and "channels_removed_percentage" (``_removed``), accuracies,
    "epochs", "seconds" (of fine-tuning only) and the fit "history")."""
    check_settings("structured", cfg)  # an exercise's recipe, edited by hand
    check_values(cfg)
    _reseed(train)
    groups, original = S.channel_groups(model), S.widths(model)
    steps = []
    for i, share in enumerate(cfg["steps"]):
        last = i == len(cfg["steps"]) - 1
        scores = S.importance(model, cfg["criterion"], train, cfg["taylor_batches"])
        keep = S.select(scores, share, original, cfg["scope"], cfg["multiple"], groups=groups)
        if last:  # the model saved and reported; an earlier cut may remove MLP neurons only
            check_cut_removes_units(original, keep, groups, share, cfg["scope"], desc)
        model = S.recalibrate_batchnorm(S.remove_units(model, keep), train, cfg["bn_batches"])
        cut = evaluate(model, test)["accuracy"]
        epochs = cfg["finetune"]["epochs"] if last else cfg["step_epochs"]
        start = time.perf_counter()
        history = (fit(model, train, test, device=device, desc=f"{desc} cut {i + 1}",
                       **dict(cfg["finetune"], epochs=epochs)) if epochs else [])
        steps.append({"step": i + 1, "share": share, **_removed(original, S.widths(model), groups),
                      "accuracy_after_cut": cut,
                      "accuracy": history[-1]["test_accuracy"] if history else cut,
                      "epochs": epochs, "seconds": time.perf_counter() - start, "history": history})
        print(f"{desc}: cut {i + 1} removes {_cut_shares(original, S.widths(model), groups)} -> "
              f"{cut:.2%} right after the cut, {steps[-1]['accuracy']:.2%} after {_length(epochs, train, cfg)} "
              f"of fine-tuning (on {len(test.labels):,} test images)")
    return model, steps


def check_cut_removes_units(original: dict, keep: dict, groups: dict, share: float, scope: str, desc: str) -> None:
    """SettingsError where the last cut ``keep`` (its share of the original widths: all the cuts
    together) leaves every unit of the kind report.json counts (a ViT's heads, a ResNet's channels):
    it would be fine-tuned and saved as a 0.0% pruned model, over the one saved before. Earlier
    cuts are not checked: only the last step's model is saved, and a ViT's first cut may remove MLP
    neurons only (steps [0.1, 0.34]: the second removes a third of the heads)."""
    if S.reported_share_removed(original, {n: len(k) for n, k in keep.items()}, groups) > 0:
        return
    unit = S.reported_unit(groups)
    sizes = [original[n] for n, g in groups.items() if unit == "channels" or g.kind == "heads"]
    widest = max(sizes)
    # A group of w units loses one once w * (1 - share) rounds below w (half up): share > 0.5 / w.
    least = (50 // widest + 1) / 100
    per = f"{'' if min(sizes) == widest else 'up to '}{widest} {unit} per {'block' if unit == 'heads' else 'group'}"
    advice = (f"use a share of at least {least:g}" if scope == "uniform" else
              f"scope 'global' ranked no {unit[:-1]} low enough: use a larger share, or scope 'uniform' "
              f"with at least {least:g}")
    raise SettingsError(f"{desc}: step {share:g} removes no {unit[:-1]} ({per}: one {unit[:-1]} is "
                        f"{100 / widest:.2g}%): {advice}; nothing was fine-tuned or saved")


def _cut_shares(original: dict, kept: dict, groups: dict) -> str:
    """"25.0% of channels", or for a ViT "33.3% of heads (and 34.1% of MLP neurons)": heads first,
    the share report.json gives it; its channels would count heads and neurons together."""
    if S.reported_unit(groups) != "heads":
        return f"{S.channel_share_removed(original, kept, groups):.1f}% of channels"
    return (f"{S.kind_share_removed(original, kept, groups, 'heads'):.1f}% of heads "
            f"(and {S.kind_share_removed(original, kept, groups, 'mlp'):.1f}% of MLP neurons)")


def _length(epochs: int, train, cfg: dict) -> str:
    """"3 epochs", or "8 steps (max_steps; 3 epochs asked)" where the recipe caps them."""
    cap = cfg["finetune"].get("max_steps")
    if cap and cap < epochs * len(train):
        return f"{cap} step{'s' * (cap != 1)} (max_steps; {epochs} epoch{'s' * (epochs != 1)} asked)"
    return f"{epochs} epoch{'s' * (epochs != 1)}"


def throughput(dense: nn.Module, pruned: nn.Module, size: int, cfg: dict, explain_noise: bool = True) -> dict:
    """Images/s of dense and pruned at each batch size of ``cfg["throughput"][device]``, on each
    listed device that is present (CUDA graphs on a GPU: launch overhead removed). At each batch
    size dense and pruned take turns (``measure.take_turns``) for ``cfg["latency_rounds"]`` rounds;
    each point keeps its median round.

    Returns {device: {"batch_sizes", "dense", "pruned" (images/s), "speedup" (pruned / dense),
    "mac_ratio", "graphs" (every point replayed a CUDA graph), "graphs_per_batch" (per point: all
    its passes did; a capture that fails, as an out-of-memory one at a large batch, times that point
    eagerly), "precision", "threads", "noisy" (``measure.is_noisy`` for any pass)}}
    or {device: "not measured: ..."}."""
    mac_ratio = count_macs(dense, size) / count_macs(pruned, size)
    out = {}
    for device, batch_sizes in cfg["throughput"].items():
        if device == "cuda" and not torch.cuda.is_available():
            out[device] = "not measured: no CUDA GPU on this machine"
            continue
        # Two warm-up passes, not latency_warmup's: at the sweep's large batches one pass takes
        # seconds on a CPU, and a captured CUDA graph is warm after its first replay.
        kw = dict(warmup=2, iters=cfg["throughput_iters"], graphs=graphs_unavailable(device) is None)
        # Turns at each batch size, as compare_latency takes them: a round sweeping dense over every
        # size, then pruned, timed a point's two sides far apart, and a burst of load skewed it.
        runs = [take_turns(lambda m: measure_latency(m, size, b, device, **kw), dense, pruned,
                           cfg["latency_rounds"]) for b in batch_sizes]
        d = [float(np.median([r[0]["images_per_second"] for r in turns])) for turns in runs]
        p = [float(np.median([r[1]["images_per_second"] for r in turns])) for turns in runs]
        first = runs[0][0][0]
        noisy = any(r["noisy"] for turns in runs for pair in turns for r in pair)
        graphed = [all(r["graphs"] for pair in turns for r in pair) for turns in runs]
        out[device] = {"batch_sizes": list(batch_sizes), "dense": d, "pruned": p,
                       "speedup": [b / a for a, b in zip(d, p)], "mac_ratio": mac_ratio,
                       "graphs": all(graphed), "graphs_per_batch": graphed, "precision": first["precision"],
                       "threads": torch.get_num_threads(), "noisy": noisy}
        print(f"  {device}{_graphs_note(out[device])} images/s dense -> pruned: "
              + ", ".join(f"batch {b} {a:,.0f} -> {c:,.0f}" for b, a, c in zip(batch_sizes, d, p))
              + f" ({mac_ratio:.2f}x fewer MACs)" + (" *" if noisy else ""))
        if noisy and explain_noise:
            print(f"  * noisy: {NOISY_WHY}")
    return out


def _graphs_note(sweep: dict) -> str:
    """" (CUDA graphs)" where every point of a throughput sweep replayed one, " (CUDA graphs except
    batch 4096: eager)" where some fell back, "" where none did (a CPU, or every capture failed)."""
    # A record of an earlier version has one flag, "graphs" (it was the first point's).
    per = sweep.get("graphs_per_batch") or [sweep["graphs"]] * len(sweep["batch_sizes"])
    eager = [str(b) for b, g in zip(sweep["batch_sizes"], per) if not g]
    if len(eager) == len(per):
        return ""
    if not eager:
        return " (CUDA graphs)"
    return f" (CUDA graphs except batch{'es' * (len(eager) > 1)} {', '.join(eager)}: eager)"


def timings(dense: nn.Module, pruned: nn.Module, size: int, cfg: dict, mac_ratio: float) -> dict:
    """Measured latency (dense vs pruned) on each device of ``cfg["latency"]`` that is present, at
    the listed batch sizes, and the ``throughput`` sweep: {"latency", "throughput"}. ``mac_ratio``:
    dense MACs over pruned MACs, printed beside the measured speed-ups."""
    out = {"latency": compare_latency(dense, pruned, size, cfg, mac_ratio=mac_ratio, explain_noise=False),
           "throughput": throughput(dense, pruned, size, cfg, explain_noise=False)}
    # Once under both sweeps: each printed the whole paragraph (twice a model, 4 times in a cpu run's notebook 04).
    if any(isinstance(p, dict) and p["noisy"] for part in out.values() for p in part.values()):
        print(f"  * noisy: {NOISY_WHY}")
    return out


# What a record saved before its timing holds until the timing is written into it: an interrupted
# or failed timing leaves the model and its report numbers saved, and says what is missing in the
# figures and in report_details.json ("not measured: ..." is how a device not timed is recorded).
TIMING_PENDING = ("not measured: the timing did not finish (interrupted or failed) after the model was "
                  "saved; lab.prune_structured(s, name) for this model times the saved one")


def _timing_pending(session: Session, name: str, cfg: dict) -> dict | None:
    """This run's saved record of ``name`` whose timing did not finish, pruned with ``cfg`` from
    the baseline there now, or None: its model is timed, not pruned and fine-tuned again."""
    record = session.metrics(name, STAGE)
    if not session.available(name, STAGE) or record.get("recipe") != as_stored(cfg):
        return None
    before = ((session.metrics(name, "before_pruning") or {}).get("checkpoint") or {}).get("sha256")
    pending = any(v == TIMING_PENDING for key in ("latency", "throughput") for v in (record.get(key) or {}).values())
    return record if pending and record.get("baseline_sha256") == before else None


def prune_structured(session: Session, name: str) -> dict:
    """Prune ``name``'s baseline with the profile's recipe, fine-tune, save as
    ``{name}_after_structured_pruning`` and return the metrics record. A model whose baseline was
    not produced is recorded as missing (nothing else is pruned under its name).

    The checkpoint and its metrics are saved before the slow timing (latency, throughput sweep),
    which is then written into the record: an interrupt there keeps the fine-tuned model, its
    record saying the timing is missing (``TIMING_PENDING``)."""
    check_model(name)  # a misspelt name: before anything is written under it
    if not session.available(name, "before_pruning"):
        record = session.record_missing_baseline(name, STAGE)  # SettingsError where notebook 02 has not run
        print(f"'{name}' NOT PRODUCED: {record['reason'].splitlines()[0]}")
        return record
    cfg = check_recipe(session.profile["structured"][name], name)
    dense, _ = session.load(name, "before_pruning")
    dense.eval()
    if (saved := _timing_pending(session, name, cfg)) is not None:  # its timing was interrupted: only that
        print(f"{name}: saved by this run without its timing (interrupted): timing the saved model")
        model, _ = session.load(name, STAGE)
        measured = timings(dense, model, session.input_size(name), cfg, saved["macs_original"] / saved["macs"])
        return session.add_to_record(name, STAGE, measured, saved["checkpoint"]["sha256"])
    if cfg["scope"] == "uniform":  # its counts do not depend on the scores: a last cut removing nothing is
        # refused before the loaders and the criteria study (global scope: at the last cut, in cut_and_finetune)
        original = S.widths(dense)
        uniform = S.select({n: torch.zeros(w) for n, w in original.items()}, cfg["steps"][-1], original,
                           "uniform", cfg["multiple"])
        check_cut_removes_units(original, uniform, S.channel_groups(dense), cfg["steps"][-1], "uniform", name)
    train, test = session.loaders(name, cfg["batch_size"])
    study_test = session.test_subset_loader(cfg["compare_images"], 2 * cfg["batch_size"], session.input_size(name))
    print(f"{name}: criteria, one-shot cut without fine-tuning, on {len(study_test.labels)} test images")
    study = compare_criteria(dense, train, study_test, cfg)

    groups, original = S.channel_groups(dense), S.widths(dense)
    start = time.perf_counter()  # cut_and_finetune resets the seeds: the comparison above does not move it
    model, steps = cut_and_finetune(dense, train, test, cfg, session.device, desc=name)
    seconds = time.perf_counter() - start
    final = evaluate(model, test)
    kept = S.widths(model)
    size = session.input_size(name)
    cost = {"macs": count_macs(model, size), "macs_original": count_macs(dense, size)}  # cheap, unlike the timing
    pending = {key: {device: TIMING_PENDING for device in cfg[key]} for key in ("latency", "throughput")}
    params, params_dense = count_parameters(model), count_parameters(dense)
    removed_params = 100.0 * (1 - params / params_dense)
    metrics = {
        "accuracy": final["accuracy"], "test_loss": final["loss"], "test_images": final["n"],
        "original_accuracy": session.metrics(name, "before_pruning")["accuracy"],
        "pruning_percentage": S.reported_share_removed(original, kept, groups),
        "pruning_unit": ("conv output channels (a residual-stream channel counts once per conv writing it)"
                         if S.family(dense) == "resnet" else
                         "attention heads (MLP hidden neurons removed too: removed_by_kind['mlp'])"),
        "removed_by_kind": {k: S.kind_share_removed(original, kept, groups, k)
                            for k in dict.fromkeys(g.kind for g in groups.values())},
        "weights_removed_percentage": 100.0 * (1 - _weights(model) / _weights(dense)),
        "parameters": params, "parameters_original": params_dense, "nonzero_parameters": params,
        "sparsity_all_parameters": removed_params,
        "macs_removed_percentage": 100.0 * (1 - cost["macs"] / cost["macs_original"]),
        "theoretical_speedup": cost["macs_original"] / cost["macs"],
        **cost, **pending,
        "widths": kept, "widths_original": original, "arch": model.arch,
        "criterion": cfg["criterion"], "scope": cfg["scope"], "recipe": cfg,
        # As in notebook 03: the fine-tuning's time; prune_seconds adds scoring, surgery, BN
        # re-estimation and the evaluation after each cut.
        "steps": steps, "finetune_seconds": sum(step["seconds"] for step in steps), "prune_seconds": seconds,
        # The speed modes the fine-tunes ran (the recipe's compile and graphs are those asked).
        **({"ran": ran} if (ran := speed_modes_ran(*(step["history"] for step in steps))) else {}),
        "criteria_study": study,
    }
    record = session.save(model, name, STAGE, metrics)
    print(f"{name}: {metrics['pruning_percentage']:.1f}% of {S.reported_unit(groups)} removed "
          f"({metrics['weights_removed_percentage']:.1f}% of weights, {metrics['macs_removed_percentage']:.1f}% "
          f"of MACs), accuracy {final['accuracy']:.2%} (dense {metrics['original_accuracy']:.2%}) "
          f"-> {record['checkpoint']['path']}")
    try:
        measured = timings(dense, model, size, cfg, cost["macs_original"] / cost["macs"])
    except BaseException:
        print(f"{name}: the timing did not finish; the model and its metrics are saved, the record says the "
              f"timing is missing: lab.prune_structured(s, {name!r}) times the saved model without pruning it "
              f"again (the cell, run again, would prune and fine-tune again the models it finished)")
        raise
    return session.add_to_record(name, STAGE, measured, record["checkpoint"]["sha256"])


def recorded(session: Session) -> dict[str, dict]:
    """This run's structured-pruning record of each model (``Session.recorded``): the cells after
    'Prune, fine-tune, save' also work after a kernel restart."""
    return session.recorded(STAGE, "not pruned in this run yet: run the cell under 'Prune, fine-tune, save' first")


def equivalence_check(session: Session, name: str, share: float = 0.25) -> dict | None:
    """On ``name``'s baseline: largest output difference between (a) the BN-output / gate mask
    and physical removal, (b) the naive producer-only mask and physical removal."""
    check_model(name)  # a misspelt name is not a missing baseline
    if not session.available(name, "before_pruning"):
        print(f"{name}: no baseline in this run, nothing to check")
        return None
    dense, _ = session.load(name, "before_pruning")
    dense.eval()
    keep = S.select(S.importance(dense, "l1"), share)
    x = next(iter(session.loaders(name)[1]))[0][:16]
    with torch.no_grad(), full_float32():  # TF32 on a GPU would differ by 1e-3 by itself
        removed = S.remove_units(dense, keep).eval()(x).float()
        masked = S.apply_unit_masks(copy.deepcopy(dense), keep)(x).float()
        naive = S.zero_producers(copy.deepcopy(dense), keep)(x).float()
    result = {"masked_vs_removed": float((masked - removed).abs().max()),
              "naive_vs_removed": float((naive - removed).abs().max()),
              "logit_scale": float(removed.abs().max())}
    print(f"{name}: max |logit difference| masked vs removed {result['masked_vs_removed']:.2e}, "
          f"naive (weights only) vs removed {result['naive_vs_removed']:.2e} "
          f"(logits up to {result['logit_scale']:.1f})")
    return result


def equivalence_checks(session: Session, models: list[str]) -> dict[str, dict | None]:
    """``equivalence_check`` on each of ``models``' baselines (notebook 04: the session's MODELS):
    {name: its result, None where the run has no baseline}."""
    return {name: equivalence_check(session, name) for name in check_models(models)}


def _unit(record: dict) -> str:
    """What a record's ``pruning_percentage`` counts: a ViT's heads, a ResNet's channels."""
    return "heads" if "heads" in record.get("removed_by_kind", {}) else "channels"


def summary(results: dict[str, dict]) -> None:
    """One line per model: accuracy against the course minimum, share removed, costs."""
    for name, r in results.items():
        if not r.get("produced"):
            print(f"{name:12s} not produced: {r['reason'].splitlines()[0]}")
            continue
        ok = meets_minimum(name, "structured", r["accuracy"], r["pruning_percentage"])
        print(f"{name:12s} {r['accuracy']:.2%} (dense {r['original_accuracy']:.2%}), "
              f"{r['pruning_percentage']:.1f}% {_unit(r)} removed, params {r['parameters_original']:,} -> "
              f"{r['parameters']:,}, MACs {r['macs_original'] / 1e6:.1f}M -> {r['macs'] / 1e6:.1f}M "
              f"({'meets' if ok else 'misses'} the course minimum: >= {AFTER_PRUNING_MIN[name]:.0%} at "
              f">= {SPARSITY_MIN['structured']:.0f}%)")


# -- figures -------------------------------------------------------------------------------------
def _produced(results: dict[str, dict]) -> dict[str, dict]:
    """The models pruned in this run; none (every baseline missing) is said, and the figure skipped."""
    produced = {n: r for n, r in results.items() if r.get("produced")}
    if not produced:
        print("no figure: no model was pruned in this run (the records above say why)")
    return produced


def plot_channels_kept(results: dict[str, dict], path=None, caption=None):
    """Per model, the share of each group's units kept (dark) out of its original width (light),
    with kept/original written above: a ViT's 3 heads and its 768 neurons on one scale."""
    if not (produced := _produced(results)):
        return None
    fig, axes = plt.subplots(len(produced), 1, figsize=(10, 2.9 * len(produced)), squeeze=False)
    for ax, (name, r) in zip(axes[:, 0], produced.items()):
        groups = list(r["widths_original"])
        x = np.arange(len(groups))
        kept = [100 * r["widths"][g] / r["widths_original"][g] for g in groups]
        ax.bar(x, [100] * len(groups), color="0.85", label="original")
        ax.bar(x, kept, color=COLORS[0], hatch="//", edgecolor="white", linewidth=0, label="kept")
        for i, g in enumerate(groups):
            ax.text(i, 101, f"{r['widths'][g]}/{r['widths_original'][g]}", ha="center", va="bottom",
                    fontsize=6 if len(groups) > 16 else 7)
        ax.set_xticks(x, groups, rotation=45, ha="right", fontsize=7)
        ax.set(ylabel="units kept (%)", ylim=(0, 112))
        ax.set_title(f"{name}: {r['pruning_percentage']:.1f}% of {_unit(r)} removed "
                     f"({r['criterion']}, {r['scope']}); units: channels, heads or neurons", fontsize=9)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars, not on them
        ax.grid(axis="y", alpha=0.3)
    return finish(fig, path, caption)


# One style per criterion in every panel (taylor was red beside bn_scale, green without it).
CRITERION_STYLES = named_styles(["l1", "l2", "bn_scale", "taylor"])
DEVICE_STYLES = named_styles(["cpu", "cuda"])


def plot_criteria(results: dict[str, dict], minimums: dict[str, float] | None = AFTER_PRUNING_MIN,
                    path=None, caption=None):
    """Accuracy right after a one-shot cut (no fine-tuning) vs share removed, one line per
    criterion; the star is the final model after iterative pruning and fine-tuning. x, lines and
    star alike: the share as report.json counts it (a ViT's heads, not its MLP neurons)."""
    if not (produced := _produced(results)):
        return None
    fig, axes, _ = panels(len(produced))
    for ax, (name, r) in zip(axes, produced.items()):
        study = r["criteria_study"]
        if _unit(r) == "heads" and any(_shares(p)[1] is None for ps in study["criteria"].values() for p in ps):
            print(f"note: {name}'s criteria study was recorded without the share of heads: its lines count "
                  f"channels and MLP neurons, the star heads (run notebook 04 again for one unit)")
        for criterion, points in study["criteria"].items():
            # x: the share as report.json counts it, the star's unit (a ViT's heads, not its neurons);
            # a record older than that share has its channels only
            ax.plot([0] + [_shares(p)[1] if _shares(p)[1] is not None else _shares(p)[0] for p in points],
                    [100 * study["dense_accuracy"]] + [100 * p["accuracy"] for p in points],
                    ms=4, label=criterion, **style_for(CRITERION_STYLES, criterion, study["criteria"]))
        ax.plot(r["pruning_percentage"], 100 * r["accuracy"], "*", ms=12, color="k",
                label=f"{r['criterion']} + fine-tuning")
        if minimums and name in minimums:
            ax.axhline(100 * minimums[name], color="0.5", ls="--", lw=0.8, label="course minimum")
        ax.set(xlabel="channels (CNN) / heads (ViT) removed (%)", ylabel="test accuracy (%)",
               title=f"{name}: one-shot cut, no fine-tuning ({study['images']} images)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return finish(fig, path, caption)


def _not_timed(values: dict) -> str:
    """A panel title's second line naming the devices not timed, in a few words (the pending
    timing's whole text, twice, ran across the next panel); "" when every device was timed."""
    why = {device: "the timing did not finish" if v == TIMING_PENDING else str(v).removeprefix("not measured: ")
           for device, v in values.items() if not isinstance(v, dict)}
    if not why:
        return ""
    if len(set(why.values())) == 1:
        return f"\n(not measured on {', '.join(why)}: {next(iter(why.values()))})"
    return "\n(not measured: " + "; ".join(f"{device}: {v}" for device, v in why.items()) + ")"


def plot_speed_vs_macs(results: dict[str, dict], path=None, caption=None):
    """Measured speedup of the pruned model next to the theoretical one (MAC ratio), per device
    and batch size."""
    if not (produced := _produced(results)):
        return None
    fig, axes, _ = panels(len(produced))
    for ax, (name, r) in zip(axes, produced.items()):
        runs = {k: v for k, v in r["latency"].items() if isinstance(v, dict)}
        x = np.arange(len(runs))
        theory = ax.bar(x - 0.2, [v["mac_ratio"] for v in runs.values()], 0.4, color="0.7", label="fewer MACs (theory)")
        bars = ax.bar(x + 0.2, [v["speedup"] for v in runs.values()], 0.4, color=COLORS[0], hatch="//", edgecolor="white",
                      linewidth=0, label="measured speedup")
        # On white, over the 1.0x line: a bar near 1.0x had the line through its label.
        on_white = {"fmt": "%.2fx", "fontsize": 7, "padding": 2, "zorder": 4,
                    "bbox": {"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none"}}
        ax.bar_label(theory, **on_white)
        ax.bar_label(bars, **on_white)
        top = max([1.0] + [max(v["mac_ratio"], v["speedup"]) for v in runs.values()])
        ax.set_ylim(0, 1.3 * top)  # headroom: the legend sits above the bars, not on the theory bar
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(x, [f"{v['device']}\nbatch {v['batch_size']}"
                          + ("\n(noisy)" if v.get("noisy") else "")
                          for v in runs.values()], fontsize=8)
        ax.set(ylabel="dense time / pruned time", title=name + _not_timed(r["latency"]))
        ax.title.set_fontsize(9)
        ax.grid(axis="y", alpha=0.3)
        if runs:  # no legend for bars a panel does not have (its timing not measured)
            ax.legend(fontsize=7, loc="upper center", ncol=2)
    return finish(fig, path, caption)


def plot_throughput(results: dict[str, dict], path=None, caption=None):
    """Per model, left: images/s against batch size, dense (solid) and pruned (dashed, open markers),
    one colour and marker per device; right: the measured speed-up (pruned / dense images/s) against
    the MAC ratio. A row per model, so the figure stays 10 in wide (a notebook halved 15 in)."""
    if not (produced := _produced(results)):
        return None
    fig, axes, _ = panels(2 * len(produced))
    for row, (name, r) in enumerate(produced.items()):
        top, bottom = axes[2 * row], axes[2 * row + 1]
        sweeps = {d: v for d, v in r["throughput"].items() if isinstance(v, dict)}
        for device, v in sweeps.items():
            label = f"{device}{_graphs_note(v)}{' (noisy)' if v.get('noisy') else ''}"
            style = style_for(DEVICE_STYLES, device.split(":")[0], [d.split(":")[0] for d in sweeps])
            top.plot(v["batch_sizes"], v["dense"], ms=4, **dict(style, ls="-"), label=f"{label} dense")
            top.plot(v["batch_sizes"], v["pruned"], ms=4, **dict(style, ls="--"), mfc="white", label=f"{label} pruned")
            bottom.plot(v["batch_sizes"], v["speedup"], ms=4, label=label, **style)
            per = v.get("graphs_per_batch") or []
            if any(per) and not all(per):  # the points timed eagerly, where the others replayed a graph
                for b, graphed, speedup in zip(v["batch_sizes"], per, v["speedup"]):
                    if not graphed:
                        bottom.annotate("eager", (b, speedup), textcoords="offset points", xytext=(0, 6),
                                        ha="center", fontsize=7)
        ratio = next(iter(sweeps.values()))["mac_ratio"] if sweeps else None
        if ratio:
            bottom.axhline(ratio, color="0.4", ls=":", lw=1, label=f"fewer MACs ({ratio:.2f}x)")
        bottom.axhline(1.0, color="k", lw=0.8)
        top.set(yscale="log", ylabel="images / s", title=name + _not_timed(r["throughput"]))
        bottom.set(ylabel="speed-up (pruned / dense)", title=f"{name}: speed-up")
        for ax in (top, bottom):
            ax.title.set_fontsize(9)
        log_tick_labels(top.yaxis)  # plain numbers, at least two of them, as notebook 06's size axis
        sizes = sorted({b for v in sweeps.values() for b in v["batch_sizes"]})
        for ax in (top, bottom):
            ax.set(xscale="log", xlabel="batch size")
            ax.set_xticks(sizes, [str(b) for b in sizes], fontsize=8)
            ax.xaxis.set_minor_locator(plt.NullLocator())
            ax.grid(alpha=0.3, which="both")
            if ax.get_legend_handles_labels()[0]:  # none where the timing was not measured
                ax.legend(fontsize=7)
    return finish(fig, path, caption)
