"""Notebook 02's work: train (or fine-tune) one course model and save it as ``*_before_pruning``."""
from __future__ import annotations

import time

from .models import PretrainedWeightsUnavailable, count_parameters
from .session import Session
from .train import fit


def train_baseline(session: Session, name: str, pretrained_weights: str | None = None) -> dict:
    """Train ``name`` with the profile's recipe, save checkpoint + metrics, return the metrics.

    If the pretrained ViT weights cannot be had, nothing is trained under the name ``vit``:
    the metrics record says it was not produced, and why.
    """
    try:
        model = session.new_model(name, pretrained_weights)
    except PretrainedWeightsUnavailable as err:
        print(f"'{name}' NOT PRODUCED: {err}")
        return session.record_missing(name, "before_pruning", str(err))
    config = session.train_config(name)
    train, test = session.loaders(name, config.pop("batch_size"))
    start = time.perf_counter()
    history = fit(model, train, test, device=session.device, desc=name, **config)
    seconds = time.perf_counter() - start
    final = history[-1]  # fit evaluates the test split after the last epoch
    record = session.save(model, name, "before_pruning", {
        "accuracy": final["test_accuracy"], "test_loss": final["test_loss"], "test_images": len(test.labels),
        "parameters": count_parameters(model), "train_seconds": seconds,
        "images_per_second": sum(h["images"] for h in history) / sum(h["train_seconds"] for h in history),
        "train_config": session.train_config(name), "arch": model.arch, "history": history})
    print(f"{name}: test accuracy {record['accuracy']:.2%} on {record['test_images']} images "
          f"after {len(history)} epochs in {seconds:.0f}s -> {record['checkpoint']['path']}")
    return record
