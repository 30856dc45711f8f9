"""Figures of notebook 03 (unstructured pruning). Each returns the figure; with ``path`` it is
saved with the run's caption through :func:`labutils.plots.finish`."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..plots import finish


def _short(layer: str) -> str:
    return layer.removesuffix(".weight").replace("blocks.", "b").replace("layer", "L")


def _axes(n: int, width: float = 5.0, height: float = 3.6):
    fig, axes = plt.subplots(1, max(n, 1), figsize=(width * max(n, 1), height), squeeze=False)
    return fig, axes[0]


def sensitivity_curves(scans: dict[str, dict], path=None, caption=None):
    """Accuracy with each layer pruned alone, one line per layer (darker = deeper)."""
    fig, axes = _axes(len(scans))
    for ax, (name, scan) in zip(axes, scans.items()):
        layers = list(scan["layers"])
        colors = plt.cm.viridis(np.linspace(0, 0.95, len(layers)))
        x = [0.0] + scan["sparsities"]
        for color, layer in zip(colors, layers):
            ax.plot([100 * v for v in x], [100 * a for a in [scan["baseline"]] + scan["layers"][layer]],
                    color=color, lw=1, label=_short(layer))
        ax.set(title=f"{name}: each layer pruned alone", xlabel="sparsity of that layer (%)",
               ylabel="probe accuracy (%)")
        ax.grid(alpha=0.3)
        if len(layers) <= 24:
            ax.legend(fontsize=5, ncol=2)
    return finish(fig, path, caption)


def accuracy_vs_sparsity(sweeps: dict[str, dict], path=None, caption=None):
    """Accuracy after one-shot pruning without fine-tuning, one line per scope/criterion."""
    fig, axes = _axes(len(sweeps))
    for ax, (name, sw) in zip(axes, sweeps.items()):
        for label, accs in sw["accuracy"].items():
            ax.plot([100 * v for v in sw["sparsities"]], [100 * a for a in accs], "o-", ms=3, label=label)
        ax.axhline(100 * sw["baseline"], color="0.3", ls="--", lw=0.8, label="dense")
        ax.set(title=f"{name}: no fine-tuning", xlabel="sparsity (%)", ylabel="probe accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return finish(fig, path, caption)


def layer_bars(curves: dict[str, dict[str, float]], title: str = "", ax=None):
    """Grouped bars: per-layer sparsity for each labelled pruning (e.g. global vs layer-wise)."""
    fig = None
    if ax is None:
        layers = len(next(iter(curves.values())))
        fig, ax = plt.subplots(figsize=(max(6, 0.3 * layers), 3.4))
    width = 0.8 / len(curves)
    for k, (label, layers) in enumerate(curves.items()):
        x = np.arange(len(layers))
        ax.bar(x + (k - (len(curves) - 1) / 2) * width, [100 * v for v in layers.values()], width, label=label)
    names = list(next(iter(curves.values())))
    ax.set_xticks(np.arange(len(names)), [_short(n) for n in names], rotation=90, fontsize=6)
    # Headroom above 100% so the legend sits over the bars, not on them.
    ax.set(ylabel="sparsity (%)", title=title, ylim=(0, 118), yticks=range(0, 101, 20))
    ax.legend(fontsize=7, ncol=3, loc="upper left")
    return fig if fig is not None else ax.figure


def layer_sparsity(data: dict[str, dict[str, dict[str, float]]], level: float, path=None, caption=None):
    """Per-layer sparsity at ``level`` overall: global threshold vs uniform vs sensitivity ratios."""
    fig, axes = plt.subplots(len(data), 1, figsize=(11, 3.4 * len(data)), squeeze=False)
    for ax, (name, curves) in zip(axes[:, 0], data.items()):
        layer_bars(curves, title=f"{name}: per-layer sparsity at {level:.0%} overall", ax=ax)
    return finish(fig, path, caption)


def study(studies: dict[str, list[dict]], baselines: dict[str, float], path=None, caption=None):
    """The course's comparison: accuracy after fine-tuning against sparsity, per method and budget."""
    fig, axes = _axes(len(studies))
    styles = {"one_shot": "o-", "iterative": "s--", "gradual": "^:"}
    for ax, (name, rows) in zip(axes, studies.items()):
        budgets = sorted({r["epochs"] for r in rows})
        for method, style in styles.items():
            for j, e in enumerate(budgets):
                pts = sorted((r["sparsity"], r["accuracy"], *r.get("ci95", (r["accuracy"],) * 2))
                             for r in rows if r["method"] == method and r["epochs"] == e)
                if pts:
                    # Error bars: each point's 95% interval; a shift within them is noise.
                    ax.errorbar([100 * p[0] + 0.4 * (j - 0.5) for p in pts], [100 * p[1] for p in pts],
                                yerr=[[100 * (p[1] - p[2]) for p in pts], [100 * (p[3] - p[1]) for p in pts]],
                                fmt=style, ms=4, capsize=2, lw=1,
                                color=f"C{list(styles).index(method)}", alpha=0.5 + 0.5 * j / max(len(budgets) - 1, 1),
                                label=f"{method.replace('_', '-')}, {e} epochs")
        ax.axhline(100 * baselines[name], color="0.3", ls="--", lw=0.8, label="dense")
        ax.set(title=f"{name}: prune + fine-tune (95% intervals)", xlabel="sparsity (%)",
               ylabel="test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    return finish(fig, path, caption)


def frontier(results: dict[str, dict], path=None, caption=None):
    """The frontier search: each trial's sparsity and accuracy, the threshold, the winner."""
    fig, axes = _axes(len(results))
    for ax, (name, res) in zip(axes, results.items()):
        for t in res["trials"]:
            ax.scatter(100 * t["sparsity"], 100 * t["accuracy"], color="C2" if t["passed"] else "C3", zorder=3)
            start = (100 * t["from_sparsity"], 100 * t["accuracy"])
            ax.annotate("", (100 * t["sparsity"], 100 * t["accuracy"]), start,
                        arrowprops={"arrowstyle": "->", "color": "0.6", "lw": 0.6})
            ax.update_datalim([start])  # annotations do not widen the axes: keep each arrow inside
        ax.axhline(100 * res["threshold"], color="C3", ls="--", lw=0.8, label=f"threshold ({res['threshold_rule']})")
        ax.axvline(100 * res["frontier_sparsity"], color="C2", lw=0.8,
                   label=f"frontier {res['frontier_sparsity']:.2%} at {res['frontier_accuracy']:.2%}")
        # The frontier point itself, so the axes always hold it and every arrow's start.
        ax.scatter(100 * res["frontier_sparsity"], 100 * res["frontier_accuracy"], marker="*", s=120,
                   color="C2", zorder=4)
        ax.margins(x=0.1, y=0.15)
        ax.set(title=f"{name}: highest sparsity meeting the threshold", xlabel="sparsity (%)",
               ylabel="test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return finish(fig, path, caption)
