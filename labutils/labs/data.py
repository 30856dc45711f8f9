"""Notebook 01 · the data: check that CIFAR-10 is where the workbook expects it and show what the
models will see (images per class, class balance, the training augmentation, the two loaders).

What it teaches: the data pipeline every later notebook relies on, and why the training loops keep
a whole split on the device as one uint8 tensor. Library pieces: ``Session`` (which data, where),
``data`` (the batches, ``get_loaders``, ``DeviceLoader``, ``augment_batch``: crop and flip, and the
stronger augmentation a recipe may add).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..data import augment_batch, augment_policy, get_loaders
from ..errors import SettingsError
from ..plots import COLORS, finish
from ..profile_check import recipe_problems
from ..session import Session


def load(session: Session) -> dict:
    """Prepare the data and return both splits and the class names; print what was found."""
    session.prepare_data()
    train_x, train_y = session.arrays(train=True)
    test_x, test_y = session.arrays(train=False)
    print(f"{len(train_y):,} training and {len(test_y):,} test images, each {tuple(train_x.shape[1:])} uint8")
    print(f"data: {session.data_description}")
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y,
            "classes": session.class_names()}


def augmentation_draws(images: np.ndarray, draws: int = 5, augment: str | None = None,
                       cutout: int = 0) -> list[np.ndarray]:
    """``draws`` seeded random crop+flip versions of ``images`` (uint8 [N, 3, H, W]), then, as a
    recipe may ask (``data.AUGMENTATION``), a policy (``augment``, drawn per image here) and Cutout."""
    if wrong := recipe_problems({"cutout": cutout}):  # checked as a recipe's: "16" failed deep in the crop
        raise SettingsError(f"augmentation_draws: {wrong[0]}")
    originals = torch.from_numpy(images)
    policy = augment_policy(augment) if augment else None
    out = []
    for k in range(draws):
        torch.manual_seed(k)  # the policies draw from torch's global generator
        x = augment_batch(originals, torch.Generator().manual_seed(k), policy, len(originals), cutout)
        out.append(x.numpy())
    return out


def compare_loaders(session: Session, batch_size: int = 128) -> None:
    """One batch from the course's standard DataLoader and one from the fast device path: same
    shape, same normalisation."""
    train_loader, _ = get_loaders(batch_size, session.data_root, num_workers=0)
    fast_train, _ = session.loaders("cnn", batch_size=batch_size)
    if len(fast_train) == 0 or len(train_loader) == 0:  # whole batches only: a bare StopIteration said nothing
        raise SettingsError(f"batch_size {batch_size} is more than the {len(fast_train.labels):,} training images "
                            f"of the {session.name} profile: pass a smaller batch_size")
    x_std, _ = next(iter(train_loader))
    x_fast, _ = next(iter(fast_train))
    print(f"standard: {len(train_loader) * batch_size:,} images an epoch (the split's {len(train_loader.dataset):,}, "
          f"whole batches), batch {tuple(x_std.shape)}, "
          f"mean {x_std.mean():+.3f}, std {x_std.std():.3f}")
    print(f"fast:     {len(fast_train) * batch_size:,} images an epoch (the profile's {len(fast_train.labels):,}, "
          f"whole batches), batch {tuple(x_fast.shape)}, "
          f"mean {x_fast.mean():+.3f}, std {x_fast.std():.3f} on {x_fast.device}")


# -- figures -------------------------------------------------------------------------------------
def plot_samples(images: np.ndarray, labels: np.ndarray, classes: list[str], per_class: int = 8,
                path=None, caption=None):
    """``per_class`` images of each class, one row per class."""
    if not len(classes) or per_class < 1:  # matplotlib's "Number of rows must be a positive integer" said nothing
        print(f"no figure: nothing to draw ({len(classes)} classes, per_class={per_class}): pass the class names "
              f"(the data's \"classes\") and a per_class of 1 or more")
        return None
    fig, axes = plt.subplots(len(classes), per_class, figsize=(per_class * 0.9, len(classes) * 0.95), squeeze=False)
    for c, name in enumerate(classes):
        idx = np.flatnonzero(labels == c)[:per_class]
        for j in range(per_class):
            ax = axes[c, j]
            ax.axis("off")
            if j < len(idx):
                ax.imshow(images[idx[j]].transpose(1, 2, 0))
        axes[c, 0].set_title(name, fontsize=8, loc="left")
    return finish(fig, path, caption)


def plot_class_counts(train_labels: np.ndarray, test_labels: np.ndarray, classes: list[str],
                 path=None, caption=None):
    """Images per class in each split, as grouped bars."""
    fig, ax = plt.subplots(figsize=(8, 3))
    x = np.arange(len(classes))
    for k, (labels, name, hatch) in enumerate([(train_labels, "train", ""), (test_labels, "test", "////")]):
        counts = np.bincount(labels, minlength=len(classes))
        # Okabe and Ito's colours, and a hatch: the two splits read apart in grey too.
        bars = ax.bar(x + (k - 0.5) * 0.4, counts, 0.4, label=f"{name} ({len(labels):,})", color=COLORS[k],
                      hatch=hatch, edgecolor="white", linewidth=0)
        ax.bar_label(bars, fontsize=6)
    ax.set_xticks(x, classes, rotation=30, fontsize=8)
    ax.set_ylabel("images")
    ax.margins(y=0.25)  # headroom: the legend sits above the bars and their numbers
    ax.legend(fontsize=8, loc="upper center", ncol=2)
    return finish(fig, path, caption)


def plot_augmentation(originals: np.ndarray, augmented: list[np.ndarray], title: str | None = None,
                      path=None, caption=None):
    """Each original image next to several augmented draws of it (crop and flip, or whatever
    policy made ``augmented``, which ``title`` names: two such figures look alike on their own)."""
    n, k = len(originals), len(augmented)
    if not n:  # matplotlib's "Number of rows must be a positive integer" said nothing
        print("no figure: no original images to draw: pass at least one image")
        return None
    fig, axes = plt.subplots(n, k + 1, figsize=((k + 1) * 1.1, n * 1.1), squeeze=False)  # one image: a row still
    for i in range(n):
        axes[i, 0].imshow(originals[i].transpose(1, 2, 0))
        for j in range(k):
            axes[i, j + 1].imshow(augmented[j][i].transpose(1, 2, 0))
    for ax in axes.flat:
        ax.axis("off")
    axes[0, 0].set_title("original", fontsize=8)
    for j in range(k):
        axes[0, j + 1].set_title(f"draw {j + 1}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return finish(fig, path, caption)
