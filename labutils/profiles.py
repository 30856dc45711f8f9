"""Run profiles: one place that says how big each run is.

* ``smoke`` - seconds on a CPU: synthetic data, narrow models, a few steps. For tests and CI.
* ``cpu``   - the main job on a machine without a GPU: real CIFAR-10 subsets, reduced widths,
              every artifact produced in about half an hour on 2 cores; labelled a reduced run.
* ``full``  - the real recipe for one GPU.

Each notebook reads its own section (``train``, ``unstructured``, ``structured``, ``quant``...).
"""
from __future__ import annotations

import copy

PROFILES: dict[str, dict] = {
    "smoke": {
        "description": "smoke test: synthetic data, narrow models, a few steps (numbers mean nothing)",
        "reduced": True,
        "data": {"source": "synthetic", "n_train": 1000, "n_test": 400},
        "models": {  # architecture overrides per course model
            "cnn": {"width": 8},
            "vit": {"img_size": 32},
            "vit_scratch": {"embed_dim": 48, "depth": 2},
        },
        "train": {
            "cnn": {"epochs": 2, "batch_size": 64, "lr": 0.05, "optimizer": "sgd",
                    "schedule": "onecycle", "weight_decay": 5e-4},
            "vit": {"epochs": 1, "batch_size": 64, "lr": 0.01, "optimizer": "sgd",
                    "schedule": "cosine", "weight_decay": 0.0},
            "vit_scratch": {"epochs": 2, "batch_size": 64, "lr": 1e-3, "optimizer": "adamw",
                            "schedule": "cosine", "weight_decay": 0.05},
        },
    },
    "cpu": {
        "description": ("reduced CPU run: 10k/5k-image CIFAR-10 subsets, ResNet-18 at 1/4 width, "
                        "ViT-Tiny at half width and depth, few epochs"),
        "reduced": True,
        "data": {"source": "cifar10", "n_train": 10000, "n_test": 5000},
        "models": {
            "cnn": {"width": 16},
            "vit": {},
            "vit_scratch": {"embed_dim": 96, "depth": 6},
        },
        "train": {
            "cnn": {"epochs": 6, "batch_size": 128, "lr": 0.1, "optimizer": "sgd",
                    "schedule": "onecycle", "weight_decay": 5e-4},
            "vit": {"epochs": 1, "batch_size": 64, "lr": 0.01, "optimizer": "sgd",
                    "schedule": "cosine", "weight_decay": 0.0},
            "vit_scratch": {"epochs": 6, "batch_size": 128, "lr": 1e-3, "optimizer": "adamw",
                            "schedule": "cosine", "weight_decay": 0.05, "warmup": 0.1},
        },
    },
    "full": {
        "description": "full recipe on one GPU: all of CIFAR-10, full-size models",
        "reduced": False,
        "data": {"source": "cifar10", "n_train": None, "n_test": None},
        "models": {"cnn": {}, "vit": {}, "vit_scratch": {}},
        "train": {
            # One-cycle SGD + label smoothing: the usual fast ResNet-18 CIFAR recipe.
            "cnn": {"epochs": 30, "batch_size": 512, "lr": 0.3, "optimizer": "sgd",
                    "schedule": "onecycle", "weight_decay": 5e-4, "warmup": 0.15},
            # Fine-tuning from ImageNet weights at 224x224: a few epochs suffice.
            "vit": {"epochs": 5, "batch_size": 256, "lr": 0.02, "optimizer": "sgd",
                    "schedule": "cosine", "weight_decay": 0.0, "warmup": 0.1, "grad_clip": 1.0},
            # From scratch a ViT needs strong regularisation: Mixup/CutMix, drop-path, AdamW.
            "vit_scratch": {"epochs": 150, "batch_size": 512, "lr": 1e-3, "optimizer": "adamw",
                            "schedule": "cosine", "weight_decay": 0.05, "warmup": 0.05,
                            "mixup": 0.8, "grad_clip": 1.0},
        },
    },
}


def get_profile(name: str) -> dict:
    """A copy of profile ``name`` (callers may change it freely), with its name recorded."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    profile = copy.deepcopy(PROFILES[name])
    profile["name"] = name
    return profile


def auto_profile() -> str:
    """``full`` where a CUDA GPU is visible, else ``cpu``: what the README's main command runs."""
    import torch

    return "full" if torch.cuda.is_available() else "cpu"
