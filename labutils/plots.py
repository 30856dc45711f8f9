"""Figures shared by the notebooks. Each function returns the figure and, given a path, saves it
with a footer naming the run (profile, data, device) so a figure never travels without its source."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def finish(fig, path=None, caption: str | None = None):
    """Add the run caption, lay out, save (png, 120 dpi) when ``path`` is given; return ``fig``."""
    if caption:
        fig.text(0.5, 0.005, caption, ha="center", va="bottom", fontsize=7, color="0.4")
        fig.tight_layout(rect=(0, 0.03, 1, 1))
    else:
        fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def sample_grid(images: np.ndarray, labels: np.ndarray, classes: list[str], per_class: int = 8,
                path=None, caption=None):
    """``per_class`` images of each class, one row per class."""
    fig, axes = plt.subplots(len(classes), per_class, figsize=(per_class * 0.9, len(classes) * 0.95))
    for c, name in enumerate(classes):
        idx = np.flatnonzero(labels == c)[:per_class]
        for j in range(per_class):
            ax = axes[c, j]
            ax.axis("off")
            if j < len(idx):
                ax.imshow(images[idx[j]].transpose(1, 2, 0))
        axes[c, 0].set_title(name, fontsize=8, loc="left")
    return finish(fig, path, caption)


def class_counts(train_labels: np.ndarray, test_labels: np.ndarray, classes: list[str],
                 path=None, caption=None):
    """Images per class in each split, as grouped bars."""
    fig, ax = plt.subplots(figsize=(8, 3))
    x = np.arange(len(classes))
    for k, (labels, name) in enumerate([(train_labels, "train"), (test_labels, "test")]):
        counts = np.bincount(labels, minlength=len(classes))
        bars = ax.bar(x + (k - 0.5) * 0.4, counts, 0.4, label=f"{name} ({len(labels):,})")
        ax.bar_label(bars, fontsize=6)
    ax.set_xticks(x, classes, rotation=30, fontsize=8)
    ax.set_ylabel("images")
    ax.legend(fontsize=8)
    return finish(fig, path, caption)


def augmentation_preview(originals: np.ndarray, augmented: list[np.ndarray], path=None, caption=None):
    """Each original image next to several random crop+flip draws of it."""
    n, k = len(originals), len(augmented)
    fig, axes = plt.subplots(n, k + 1, figsize=((k + 1) * 1.1, n * 1.1))
    for i in range(n):
        axes[i, 0].imshow(originals[i].transpose(1, 2, 0))
        for j in range(k):
            axes[i, j + 1].imshow(augmented[j][i].transpose(1, 2, 0))
    for ax in axes.flat:
        ax.axis("off")
    axes[0, 0].set_title("original", fontsize=8)
    for j in range(k):
        axes[0, j + 1].set_title(f"draw {j + 1}", fontsize=8)
    return finish(fig, path, caption)


def learning_curves(histories: dict[str, list[dict]], targets: dict[str, float] | None = None,
                    path=None, caption=None):
    """Training loss and test accuracy per epoch for each model; dashed lines mark the minimums."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, (name, history) in enumerate(histories.items()):
        color = f"C{i}"
        epochs = [h["epoch"] for h in history]
        ax_loss.plot(epochs, [h["train_loss"] for h in history], color=color, label=name)
        tested = [h for h in history if "test_accuracy" in h]
        ax_acc.plot([h["epoch"] for h in tested], [100 * h["test_accuracy"] for h in tested],
                    "o-", ms=3, color=color, label=name)
        if targets and name in targets:
            ax_acc.axhline(100 * targets[name], color=color, ls="--", lw=0.8)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="training loss")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)",
               title="test accuracy (dashed: course minimum)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return finish(fig, path, caption)


def report_accuracy_vs_sparsity(report: dict, after_min: dict, sparsity_min: dict,
                                path=None, caption=None):
    """Each model's dense accuracy (at 0%) and pruned accuracy (at its pruning percentage), for
    unstructured and structured pruning; dashed lines are the course's minimums."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharey=True)
    for ax, (section, kind) in zip(axes, (("unstructured_pruning", "unstructured"),
                                          ("structured_pruning", "structured"))):
        for i, (model, e) in enumerate(report[section].items()):
            color = f"C{i}"
            ax.axhline(100 * after_min[model], color=color, ls="--", lw=0.8)
            if e["pruned_accuracy"] is None:
                ax.plot([], [], color=color, label=f"{model}: not produced")
                continue
            xs, ys = [0, e["pruning_percentage"]], [100 * e["original_accuracy"], 100 * e["pruned_accuracy"]]
            ax.plot(xs, ys, "o-", color=color, label=f"{model}: {ys[1]:.1f}% at {xs[1]:.1f}% removed")
        ax.axvline(sparsity_min[kind], color="0.5", ls=":", lw=1)
        what = "prunable weights" if kind == "unstructured" else "channels / heads / neurons"
        ax.set(title=f"{kind} pruning", xlabel=f"share of {what} removed (%)", xlim=(-3, 103))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    axes[0].set_ylabel("test accuracy (%)")
    fig.suptitle("dense (0%) to pruned; dashed: accuracy minimum after pruning, dotted: minimum share removed",
                 fontsize=9)
    return finish(fig, path, caption)


def table_figure(columns: list[str], rows: list[list[str]], title: str = "", path=None, caption=None):
    """A table as a figure, for the executed notebook and figures/."""
    widths = [max(len(str(v)) for v in [c, *(r[i] for r in rows)]) for i, c in enumerate(columns)]
    fig, ax = plt.subplots(figsize=(0.085 * sum(widths) + 0.5, 0.28 * len(rows) + 0.9))
    ax.axis("off")
    table = ax.table(cellText=rows, colLabels=columns, cellLoc="right", bbox=[0, 0, 1, 1],
                     colWidths=[w / sum(widths) for w in widths])
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    if title:
        ax.set_title(title, fontsize=10)
    return finish(fig, path, caption)
