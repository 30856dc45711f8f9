"""Notebook 04's figures, drawn from the metrics records that ``prune_structured`` returns (the same
records are saved as metrics/*_after_structured_pruning.json)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..plots import finish


def _produced(results: dict[str, dict]) -> dict[str, dict]:
    produced = {n: r for n, r in results.items() if r.get("produced")}
    if not produced:
        raise ValueError("no model was pruned in this run (see the records' reasons); nothing to draw")
    return produced


def channels_kept(results: dict[str, dict], path=None, caption=None):
    """Per model, each group's original width (light) and what is kept (dark)."""
    produced = _produced(results)
    fig, axes = plt.subplots(len(produced), 1, figsize=(10, 2.8 * len(produced)), squeeze=False)
    for ax, (name, r) in zip(axes[:, 0], produced.items()):
        groups = list(r["widths_original"])
        x = np.arange(len(groups))
        ax.bar(x, [r["widths_original"][g] for g in groups], color="0.85", label="original")
        ax.bar(x, [r["widths"][g] for g in groups], color="C0", label="kept")
        ax.set_xticks(x, groups, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("units (channels, heads, neurons)")
        ax.set_title(f"{name}: {r['pruning_percentage']:.1f}% of channels removed "
                     f"({r['criterion']}, {r['scope']})", fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    return finish(fig, path, caption)


def criteria_curves(results: dict[str, dict], minimums: dict[str, float] | None = None,
                    path=None, caption=None):
    """Accuracy right after a one-shot cut (no fine-tuning) vs share removed, one line per
    criterion; the star is the final model after iterative pruning and fine-tuning."""
    produced = _produced(results)
    fig, axes = plt.subplots(1, len(produced), figsize=(5 * len(produced), 3.6), squeeze=False)
    for ax, (name, r) in zip(axes[0], produced.items()):
        study = r["criteria_study"]
        for i, (criterion, points) in enumerate(study["criteria"].items()):
            ax.plot([0] + [p["pruning_percentage"] for p in points],
                    [100 * study["dense_accuracy"]] + [100 * p["accuracy"] for p in points],
                    "o-", ms=3, color=f"C{i}", label=criterion)
        ax.plot(r["pruning_percentage"], 100 * r["accuracy"], "*", ms=12, color="k",
                label=f"{r['criterion']} + fine-tuning")
        if minimums and name in minimums:
            ax.axhline(100 * minimums[name], color="0.5", ls="--", lw=0.8, label="course minimum")
        ax.set(xlabel="channels removed (%)", ylabel="test accuracy (%)",
               title=f"{name}: one-shot cut, no fine-tuning ({study['images']} images)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return finish(fig, path, caption)


def speed_vs_macs(results: dict[str, dict], path=None, caption=None):
    """Measured speedup of the pruned model next to the theoretical one (MAC ratio), per device
    and batch size."""
    produced = _produced(results)
    fig, axes = plt.subplots(1, len(produced), figsize=(5 * len(produced), 3.6), squeeze=False)
    for ax, (name, r) in zip(axes[0], produced.items()):
        runs = {k: v for k, v in r["latency"].items() if isinstance(v, dict)}
        x = np.arange(len(runs))
        ax.bar(x - 0.2, [v["mac_ratio"] for v in runs.values()], 0.4, color="0.7", label="fewer MACs (theory)")
        bars = ax.bar(x + 0.2, [v["speedup"] for v in runs.values()], 0.4, color="C2", label="measured speedup")
        ax.bar_label(bars, fmt="%.2fx", fontsize=7)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(x, [f"{v['device']}\nbatch {v['batch_size']}" for v in runs.values()], fontsize=8)
        skipped = [f"{k}: {v}" for k, v in r["latency"].items() if not isinstance(v, dict)]
        ax.set(ylabel="dense time / pruned time", title=f"{name}" + (f"\n({'; '.join(skipped)})" if skipped else ""))
        ax.title.set_fontsize(9)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    return finish(fig, path, caption)
