"""Run profiles: how big each run is, one small table per notebook with the three profiles side by side.

* ``smoke`` - about 1.5 minutes on an idle 2-core CPU: synthetic data, narrow models, a few steps. For tests and CI.
* ``cpu``   - the main job on a machine without a GPU: real CIFAR-10 subsets, reduced widths,
              every artifact produced in 26 to 34 minutes on 2 cores without the pretrained ViT's
              weights (37.5 with them, measured at an earlier commit); labelled a reduced run.
* ``full``  - the real recipe for one GPU.

A student tuning one notebook reads one table: ``TRAIN`` (notebook 02), ``UNSTRUCTURED`` (03),
``STRUCTURED`` (04), ``QUANT`` (06); ``DATA`` and ``MODELS`` size the data and the architectures.
``PROFILES`` assembles them per profile, and each notebook reads its own section of it
(``session.profile["unstructured"]``...). Plain data only.
"""
from __future__ import annotations

import copy

from .errors import SettingsError

DESCRIPTIONS = {
    "smoke": "smoke test: synthetic data, narrow models, a few steps (numbers mean nothing)",
    "cpu": ("reduced CPU run: 10k/5k-image CIFAR-10 subsets, ResNet-18 at 1/4 width, "
            "ViT-Tiny from scratch at half width and depth, pretrained ViT-Tiny at 64 px, few epochs"),
    "full": "full recipe on one GPU: all of CIFAR-10, full-size models",
}

REDUCED = {"smoke": True, "cpu": True, "full": False}

# -- data: which images, how many (None: the whole split) --------------------------------------
DATA = {
    "smoke": {"source": "synthetic", "n_train": 1000, "n_test": 400},
    "cpu": {"source": "cifar10", "n_train": 10000, "n_test": 5000},
    "full": {"source": "cifar10", "n_train": None, "n_test": None},
}

# -- architecture overrides per course model ---------------------------------------------------
MODELS = {
    "smoke": {
        "cnn": {"width": 8},
        "vit": {"img_size": 32},
        "vit_scratch": {"embed_dim": 48, "depth": 2},
    },
    "cpu": {
        "cnn": {"width": 16},
        # Full size, fed 64-px images (16 tokens, not 196): at 224 px one training step of 64
        # images took 6-11 s on 2 cores and scoring 5,000 images 4 minutes, hours in all.
        "vit": {"img_size": 64},
        "vit_scratch": {"embed_dim": 96, "depth": 6},
    },
    "full": {"cnn": {}, "vit": {}, "vit_scratch": {}},
}

# -- notebook 02: baseline training recipes (arguments of labutils.train.fit; batch_size and ----
# the data.AUGMENTATION keys go to the model's training loader, in notebooks 03/04 too) ------
TRAIN = {
    "smoke": {
        "cnn": {"epochs": 2, "batch_size": 64, "lr": 0.05, "optimizer": "sgd",
                "schedule": "onecycle", "weight_decay": 5e-4},
        "vit": {"epochs": 1, "batch_size": 64, "lr": 0.01, "optimizer": "sgd",
                "schedule": "cosine", "weight_decay": 0.0},
        "vit_scratch": {"epochs": 2, "batch_size": 64, "lr": 1e-3, "optimizer": "adamw",
                        "schedule": "cosine", "weight_decay": 0.05},
    },
    "cpu": {  # step sizes from benchmarks/results/cpu-sweep-2026-12-06 (+2.5, +2.1 pp at the same minutes)
        "cnn": {"epochs": 6, "batch_size": 128, "lr": 0.2, "optimizer": "sgd",
                "schedule": "onecycle", "weight_decay": 5e-4},
        "vit": {"epochs": 1, "batch_size": 64, "lr": 0.01, "optimizer": "sgd",
                "schedule": "cosine", "weight_decay": 0.0},
        "vit_scratch": {"epochs": 6, "batch_size": 128, "lr": 2e-3, "optimizer": "adamw",
                        "schedule": "cosine", "weight_decay": 0.05, "warmup": 0.1},
    },
    "full": {
        # Eager or compiled for now: whole-step CUDA graphs (fit's graphs=True) are built and tested
        # on CPU but not measured on a GPU. The next GPU session measures bench_train.py's graphs
        # column (README, Benchmarks) and switches a recipe only where it beats these numbers.
        # One-cycle SGD + label smoothing: the usual fast ResNet-18 CIFAR recipe.
        "cnn": {"epochs": 30, "batch_size": 512, "lr": 0.3, "optimizer": "sgd",
                "schedule": "onecycle", "weight_decay": 5e-4, "warmup": 0.15},
        # Fine-tuning from ImageNet weights at 224x224: a few epochs suffice.
        "vit": {"epochs": 5, "batch_size": 256, "lr": 0.02, "optimizer": "sgd",
                "schedule": "cosine", "weight_decay": 0.0, "warmup": 0.1, "grad_clip": 1.0},
        # From scratch a ViT needs strong regularisation: Mixup/CutMix, drop-path, AdamW.
        # Compiled: 18.0k against 13.0k images/s eager on an H100 (benchmarks/bench_train.py),
        # which repays the compiler's half minute many times over in 150 epochs.
        "vit_scratch": {"epochs": 150, "batch_size": 512, "lr": 1e-3, "optimizer": "adamw",
                        "schedule": "cosine", "weight_decay": 0.05, "warmup": 0.05,
                        "mixup": 0.8, "grad_clip": 1.0, "compile": True},
    },
}

# -- notebook 03: unstructured pruning ---------------------------------------------------------
UNSTRUCTURED = {
    "smoke": {  # an "epoch" of fine-tuning is capped at epoch_steps steps
        "include_first": False, "include_classifier": False,
        "probe_images": 64, "sensitivity_images": 64, "criteria": ["magnitude", "taylor", "fisher"],
        # Two, not one: on one batch Fisher's 0.5*g^2*w^2 ranks weights as Taylor's |w*g| does, and
        # their curves lay one on the other.
        "score_batches": 2,
        "sensitivity_levels": [0.5, 0.9], "sweep_levels": [0.5, 0.9],
        "epoch_steps": 1, "study_epoch_scale": 0.4, "rounds": 3, "gradual_end": 0.7,
        "finetune": {"cnn": {"lr": 0.01, "optimizer": "sgd", "schedule": "cosine", "weight_decay": 5e-4},
                     "vit": {"lr": 0.003, "optimizer": "sgd", "schedule": "cosine", "weight_decay": 0.0},
                     "vit_scratch": {"lr": 3e-4, "optimizer": "adamw", "schedule": "cosine",
                                     "weight_decay": 0.05}},
        "final_method": "best", "final_epoch_steps": 2,
        "final": {"cnn": {"sparsity": 0.9, "epochs": 2}, "vit": {"sparsity": 0.8, "epochs": 2},
                  "vit_scratch": {"sparsity": 0.8, "epochs": 2}},
        "frontier": {"step_keep": 0.5, "refine": 1, "max_trials": 3, "max_sparsity": 0.995,
                     "epochs": 1, "epoch_steps": 2, "drop": 0.02},
        # Dense against pruned time per image (the zeros are stored dense: no speed-up expected).
        # A model's first few CPU passes can take 100x longer on a busy machine: 8 untimed ones.
        "latency": {"cpu": [1, 64], "cuda": [1, 256]}, "latency_warmup": 8, "latency_iters": 3, "latency_rounds": 1,
    },
    "cpu": {  # about 8 minutes for cnn + vit_scratch on 2 cores
        "include_first": False, "include_classifier": False,
        "probe_images": 500, "sensitivity_images": 400, "criteria": ["magnitude", "taylor", "fisher"],
        "score_batches": 4, "sensitivity_levels": [0.3, 0.6, 0.9],
        "sweep_levels": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
        # The study fine-tunes on slices: one "epoch" is 4 steps (512 images at batch 128, 256 for vit).
        "epoch_steps": 4, "study_epoch_scale": 1.0, "rounds": 3, "gradual_end": 0.7,
        "finetune": {"cnn": {"lr": 0.02, "optimizer": "sgd", "schedule": "cosine", "weight_decay": 5e-4},
                     "vit": {"lr": 0.003, "optimizer": "sgd", "schedule": "cosine", "weight_decay": 0.0},
                     "vit_scratch": {"lr": 5e-4, "optimizer": "adamw", "schedule": "cosine",
                                     "weight_decay": 0.05}},
        "final_method": "best", "final_epoch_steps": None,
        "final": {"cnn": {"sparsity": 0.9, "epochs": 3}, "vit": {"sparsity": 0.8, "epochs": 1},
                  "vit_scratch": {"sparsity": 0.8, "epochs": 2}},
        "frontier": {"step_keep": 0.5, "refine": 1, "max_trials": 4, "max_sparsity": 0.995,
                     "epochs": 1, "epoch_steps": 20, "drop": 0.03},
        # Dense against pruned time per image (the zeros are stored dense: no speed-up expected).
        "latency": {"cpu": [1, 64], "cuda": [1, 256]}, "latency_warmup": 2, "latency_iters": 5, "latency_rounds": 3,
    },
    "full": {  # the GPU recipe (goals, results.PROJECT_GOALS: cnn 95% sparse within 0.5 pp of dense, vit_scratch 90% at 86%)
        # Studies and sweeps are scored on the whole test split (an evaluation costs well under
        # a second here); the 18-run study is kept to the CNN, the course's comparison.
        "include_first": False, "include_classifier": False, "study_models": ["cnn"],
        "probe_images": None, "sensitivity_images": 2000, "criteria": ["magnitude", "taylor", "fisher"],
        "score_batches": 16,
        "sensitivity_levels": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
        "sweep_levels": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
        "epoch_steps": None, "study_epoch_scale": 1.0, "rounds": 3, "gradual_end": 0.7,
        "finetune": {"cnn": {"lr": 0.05, "optimizer": "sgd", "schedule": "cosine", "weight_decay": 5e-4,
                             "warmup": 0.05},
                     "vit": {"lr": 0.005, "optimizer": "sgd", "schedule": "cosine", "weight_decay": 0.0,
                             "warmup": 0.05, "grad_clip": 1.0},
                     "vit_scratch": {"lr": 5e-4, "optimizer": "adamw", "schedule": "cosine",
                                     "weight_decay": 0.05, "warmup": 0.05, "mixup": 0.8, "grad_clip": 1.0,
                                     "compile": True}},
        # Gradual pruning over a long fine-tune: the cubic ramp for 70% of it, recovery after.
        "final_method": "gradual", "final_epoch_steps": None,
        "final": {"cnn": {"sparsity": 0.95, "epochs": 30}, "vit": {"sparsity": 0.8, "epochs": 10},
                  "vit_scratch": {"sparsity": 0.9, "epochs": 40}},
        "frontier": {"step_keep": 0.5, "refine": 1, "max_trials": 4, "max_sparsity": 0.998,
                     "epochs": 5, "epoch_steps": None, "drop": 0.02},
        # Dense against pruned time per image (the zeros are stored dense: no speed-up expected).
        "latency": {"cpu": [1, 64], "cuda": [1, 256]}, "latency_warmup": 3, "latency_iters": 10, "latency_rounds": 3,
    },
}

# -- notebook 04: structured pruning -----------------------------------------------------------
STRUCTURED = {
    "smoke": {  # channels / heads + MLP neurons physically removed
        "cnn": {"criterion": "taylor", "scope": "uniform", "steps": [0.5], "step_epochs": 0,
                "batch_size": 64, "taylor_batches": 1, "bn_batches": 2, "multiple": 1,
                "finetune": {"epochs": 1, "lr": 0.02, "optimizer": "sgd", "schedule": "cosine",
                             "weight_decay": 5e-4, "warmup": 0.1, "max_steps": 8},
                "compare": ["l1", "l2", "bn_scale", "taylor"], "compare_shares": [0.5],
                "compare_images": 200, "latency": {"cpu": [1, 64], "cuda": [1, 256]},
                "latency_warmup": 8, "latency_iters": 3, "latency_rounds": 1,
                "throughput": {"cpu": [1, 8], "cuda": [1, 64]}, "throughput_iters": 2},
        "vit": {"criterion": "taylor", "scope": "uniform", "steps": [0.34], "step_epochs": 0,
                "batch_size": 64, "taylor_batches": 1, "bn_batches": 0, "multiple": 1,
                "finetune": {"epochs": 1, "lr": 0.005, "optimizer": "sgd", "schedule": "cosine",
                             "weight_decay": 0.0, "warmup": 0.1, "max_steps": 8},
                "compare": ["l1", "l2", "taylor"], "compare_shares": [0.34],
                "compare_images": 200, "latency": {"cpu": [1, 64], "cuda": [1, 256]},
                "latency_warmup": 8, "latency_iters": 3, "latency_rounds": 1,
                "throughput": {"cpu": [1, 8], "cuda": [1, 64]}, "throughput_iters": 2},
        "vit_scratch": {"criterion": "taylor", "scope": "uniform", "steps": [0.34], "step_epochs": 0,
                        "batch_size": 64, "taylor_batches": 1, "bn_batches": 0, "multiple": 1,
                        "finetune": {"epochs": 1, "lr": 5e-4, "optimizer": "adamw", "schedule": "cosine",
                                     "weight_decay": 0.05, "warmup": 0.1, "max_steps": 8},
                        "compare": ["l1", "l2", "taylor"], "compare_shares": [0.34],
                        "compare_images": 200, "latency": {"cpu": [1, 64], "cuda": [1, 256]},
                        "latency_warmup": 8, "latency_iters": 3, "latency_rounds": 1,
                        "throughput": {"cpu": [1, 8], "cuda": [1, 64]}, "throughput_iters": 2},
    },
    "cpu": {  # cnn + vit_scratch within about 7 minutes on 2 cores
        # Iterative: cut a quarter, recover an epoch, cut to half, fine-tune.
        "cnn": {"criterion": "taylor", "scope": "uniform", "steps": [0.25, 0.5], "step_epochs": 1,
                "batch_size": 128, "taylor_batches": 8, "bn_batches": 20, "multiple": 1,
                "finetune": {"epochs": 8, "lr": 0.05, "optimizer": "sgd", "schedule": "onecycle",
                             "weight_decay": 5e-4, "warmup": 0.15},
                "compare": ["l1", "l2", "bn_scale", "taylor"], "compare_shares": [0.25, 0.5, 0.75],
                "compare_images": 2000, "latency": {"cpu": [1, 64], "cuda": [1, 256]},
                "latency_warmup": 3, "latency_iters": 10, "latency_rounds": 3,
                "throughput": {"cpu": [1, 4, 16, 64, 256], "cuda": [1, 16, 256, 1024, 4096]}, "throughput_iters": 5},
        "vit": {"criterion": "taylor", "scope": "uniform", "steps": [0.34], "step_epochs": 0,
                "batch_size": 64, "taylor_batches": 8, "bn_batches": 0, "multiple": 1,
                "finetune": {"epochs": 1, "lr": 0.005, "optimizer": "sgd", "schedule": "cosine",
                             "weight_decay": 0.0, "warmup": 0.1, "grad_clip": 1.0},
                "compare": ["l1", "l2", "taylor"], "compare_shares": [0.34, 0.5],
                "compare_images": 1000, "latency": {"cpu": [1, 64], "cuda": [1, 256]},
                "latency_warmup": 2, "latency_iters": 5, "latency_rounds": 3,
                "throughput": {"cpu": [1, 4, 16, 64], "cuda": [1, 16, 256, 1024, 4096]}, "throughput_iters": 3},
        "vit_scratch": {"criterion": "taylor", "scope": "uniform", "steps": [0.34], "step_epochs": 0,
                        "batch_size": 128, "taylor_batches": 8, "bn_batches": 0, "multiple": 1,
                        "finetune": {"epochs": 5, "lr": 5e-4, "optimizer": "adamw", "schedule": "cosine",
                                     "weight_decay": 0.05, "warmup": 0.1},
                        "compare": ["l1", "l2", "taylor"], "compare_shares": [0.25, 0.34, 0.5],
                        "compare_images": 2000, "latency": {"cpu": [1, 64], "cuda": [1, 256]},
                        "latency_warmup": 3, "latency_iters": 10, "latency_rounds": 3,
                        "throughput": {"cpu": [1, 4, 16, 64, 256], "cuda": [1, 16, 256, 1024, 4096]}, "throughput_iters": 5},
    },
    "full": {  # aims at >= 50% channels / >= 33% heads+neurons removed
        # throughput: images/s against batch size, dense vs pruned (CUDA graphs on the GPU).
        # Half of every channel group in three cuts with recovery in between, then a long
        # one-cycle fine-tune; widths stay multiples of 8 for the tensor cores.
        "cnn": {"criterion": "taylor", "scope": "uniform", "steps": [0.2, 0.35, 0.5], "step_epochs": 3,
                "batch_size": 512, "taylor_batches": 32, "bn_batches": 50, "multiple": 8,
                "finetune": {"epochs": 25, "lr": 0.2, "optimizer": "sgd", "schedule": "onecycle",
                             "weight_decay": 5e-4, "warmup": 0.15},
                "compare": ["l1", "l2", "bn_scale", "taylor"], "compare_shares": [0.25, 0.5, 0.625, 0.75],
                "compare_images": 10000, "latency": {"cpu": [1, 64], "cuda": [1, 256]},
                "latency_warmup": 10, "latency_iters": 50, "latency_rounds": 3,
                "throughput": {"cpu": [1, 16, 256], "cuda": [1, 4, 16, 64, 256, 1024, 4096]}, "throughput_iters": 10},
        "vit": {"criterion": "taylor", "scope": "uniform", "steps": [0.2, 0.34], "step_epochs": 1,
                "batch_size": 256, "taylor_batches": 32, "bn_batches": 0, "multiple": 8,
                "finetune": {"epochs": 4, "lr": 0.01, "optimizer": "sgd", "schedule": "cosine",
                             "weight_decay": 0.0, "warmup": 0.1, "grad_clip": 1.0},
                "compare": ["l1", "l2", "taylor"], "compare_shares": [0.34, 0.5, 0.67],
                "compare_images": 5000, "latency": {"cpu": [1, 64], "cuda": [1, 256]},
                "latency_warmup": 10, "latency_iters": 50, "latency_rounds": 3,
                "throughput": {"cpu": [1, 4, 16], "cuda": [1, 4, 16, 64, 256, 1024, 4096]}, "throughput_iters": 5},
        # A third of the heads (one of three per block) and of the MLP neurons. Heads go whole: 20% of
        # 3 rounds to one head, so the first cut takes them all; the neurons go in both cuts.
        "vit_scratch": {"criterion": "taylor", "scope": "uniform", "steps": [0.2, 0.34], "step_epochs": 5,
                        "batch_size": 512, "taylor_batches": 32, "bn_batches": 0, "multiple": 8,
                        "finetune": {"epochs": 30, "lr": 5e-4, "optimizer": "adamw", "schedule": "cosine",
                                     "weight_decay": 0.05, "warmup": 0.05, "mixup": 0.8, "grad_clip": 1.0},
                        "compare": ["l1", "l2", "taylor"], "compare_shares": [0.34, 0.5, 0.67],
                        "compare_images": 10000, "latency": {"cpu": [1, 64], "cuda": [1, 256]},
                        "latency_warmup": 10, "latency_iters": 50, "latency_rounds": 3,
                        "throughput": {"cpu": [1, 16, 256], "cuda": [1, 4, 16, 64, 256, 1024, 4096]}, "throughput_iters": 10},
    },
}

# -- notebook 06: quantization -----------------------------------------------------------------
QUANT = {
    "smoke": {  # the fixed-point study on ResNet-20
        "resnet20": {"width": 8},
        "train": {"steps": 8, "batch_size": 32, "lr": 0.05, "optimizer": "sgd",
                  "schedule": "onecycle", "weight_decay": 5e-4},
        "eval_images": 200,  # test images per sweep point (every point is an evaluation)
        "ptq_bits": [6, 5, 4, 3, 2],
        "ptq_methods": ["symmetric/tensor/minmax", "asymmetric/channel/mse"],
        "qat_method": "asymmetric/channel/mse",
        "qat_bits": [4, 2],
        "qat": {"steps": 2, "lr": 0.01, "optimizer": "sgd", "schedule": "cosine", "weight_decay": 5e-4,
                "warmup": 0.0, "refresh_every": 2},
        "prune": {"sparsity": 0.8, "bits": [4, 2],
                  "variants": {"layer_one_shot": {"scope": "layer", "rounds": 1},
                               "layer_iterative": {"scope": "layer", "rounds": 2},
                               "global_iterative": {"scope": "global", "rounds": 2}},
                  "qat_variants": ["global_iterative"],
                  "finetune": {"steps": 2, "lr": 0.01, "optimizer": "sgd", "schedule": "cosine",
                               "weight_decay": 5e-4, "warmup": 0.0}},
        "cnn_qat_bits": [4, 2],
    },
    "cpu": {  # the fixed-point study on ResNet-20 (notebook 06: about 7 minutes on 2 cores)
        "resnet20": {"width": 16},
        "train": {"epochs": 7, "batch_size": 128, "lr": 0.2, "optimizer": "sgd",  # +2.2 pp (the cpu sweep)
                  "schedule": "onecycle", "weight_decay": 5e-4},
        "eval_images": 2500,  # test images per sweep point (every point is an evaluation)
        "ptq_bits": [6, 5, 4, 3, 2],
        "ptq_methods": ["symmetric/tensor/minmax", "asymmetric/tensor/minmax",
                        "symmetric/channel/mse", "asymmetric/channel/mse"],
        "qat_method": "asymmetric/channel/mse",
        "qat_bits": [5, 4, 3, 2],
        "qat": {"steps": 30, "lr": 0.01, "optimizer": "sgd", "schedule": "cosine", "weight_decay": 5e-4,
                "warmup": 0.05, "refresh_every": 10},
        "prune": {"sparsity": 0.8, "bits": [5, 4, 3, 2],
                  "variants": {"layer_one_shot": {"scope": "layer", "rounds": 1},
                               "layer_iterative": {"scope": "layer", "rounds": 3},
                               "global_iterative": {"scope": "global", "rounds": 3}},
                  "qat_variants": ["global_iterative"],
                  "finetune": {"steps": 60, "lr": 0.02, "optimizer": "sgd", "schedule": "cosine",
                               "weight_decay": 5e-4, "warmup": 0.05}},
        "cnn_qat_bits": [4, 2],
    },
    "full": {  # the fixed-point study on ResNet-20 (seed: fp32 91.51%); notebook 06 took 3 m 16 s on an H100
        "resnet20": {"width": 16},
        # Eager: compiling does not speed ResNet-20 up (37k against 38.5k images/s on an H100).
        # CUDA graphs (graphs=True), the fix for its launch-bound step, are not measured yet.
        "train": {"epochs": 60, "batch_size": 512, "lr": 0.4, "optimizer": "sgd",
                  "schedule": "onecycle", "weight_decay": 5e-4, "warmup": 0.15},
        "ptq_bits": [6, 5, 4, 3, 2],
        "ptq_methods": ["symmetric/tensor/minmax", "asymmetric/tensor/minmax",
                        "symmetric/channel/mse", "asymmetric/channel/mse"],
        "qat_method": "asymmetric/channel/mse",
        "qat_bits": [5, 4, 3, 2],
        # Short QAT runs from the float model, longer where fewer bits lose more; scales
        # re-searched every 100 steps.
        "qat": {"epochs": {"5": 1, "4": 1, "3": 2, "2": 4}, "lr": 0.04, "optimizer": "sgd",
                "schedule": "cosine", "weight_decay": 5e-4, "warmup": 0.05, "refresh_every": 100},
        "prune": {"sparsity": 0.8, "bits": [5, 4, 3, 2],
                  "variants": {"layer_one_shot": {"scope": "layer", "rounds": 1},
                               "layer_iterative": {"scope": "layer", "rounds": 3},
                               "global_iterative": {"scope": "global", "rounds": 3}},
                  "qat_variants": ["global_iterative"],
                  # The same total fine-tuning whatever the rounds (split evenly among them).
                  "finetune": {"epochs": 12, "lr": 0.05, "optimizer": "sgd", "schedule": "cosine",
                               "weight_decay": 5e-4, "warmup": 0.05}},
        "cnn_qat_bits": [4, 2],
    },
}

SECTIONS = {"data": DATA, "models": MODELS, "train": TRAIN, "unstructured": UNSTRUCTURED,
            "structured": STRUCTURED, "quant": QUANT}
# A new profile is a name in DESCRIPTIONS and REDUCED and an entry in every table above.
_missing = [f"{table_name} has no entry for profile {name!r}" for name in DESCRIPTIONS
            for table_name, table in zip(("REDUCED", "DATA", "MODELS", "TRAIN", "UNSTRUCTURED", "STRUCTURED",
                                          "QUANT"), (REDUCED, *SECTIONS.values())) if name not in table]
if _missing:
    raise ValueError("labutils/profiles.py: " + "; ".join(_missing))
PROFILES: dict[str, dict] = {
    name: {"description": DESCRIPTIONS[name], "reduced": REDUCED[name],
           **{section: table[name] for section, table in SECTIONS.items()}}
    for name in DESCRIPTIONS
}


def get_profile(name: str) -> dict:
    """A copy of profile ``name`` (callers may change it freely), with its name recorded."""
    if not isinstance(name, str):  # PROFILE = ["smoke"] gave a bare TypeError (unhashable type: 'list')
        raise SettingsError(f"PROFILE (--profile) = {name!r}: give one profile's name as a string, one of "
                            f"{sorted(PROFILES)}, such as PROFILE = \"smoke\"")
    if name not in PROFILES:
        raise ValueError(f"unknown PROFILE (--profile) {name!r}; choose one of {sorted(PROFILES)}")
    profile = copy.deepcopy(PROFILES[name])
    profile["name"] = name
    return profile


def auto_profile(device="auto") -> str:
    """``full`` where the run's device is a CUDA GPU (``"auto"``: one is visible), else ``cpu``:
    what the README's main command runs. ``--device cpu`` on a GPU machine gets the cpu profile."""
    from .train import get_device

    return "full" if get_device(device).type == "cuda" else "cpu"


def format_settings(settings: dict, indent: int = 13, width: int = 100) -> str:
    """A profile section as ``key=value`` pairs wrapped at ``width`` characters, for a line that
    starts after a label of ``indent`` characters (continuation lines indented to match):
    readable in a notebook where a dict's repr runs off the screen. Lines break between pairs,
    not inside a value (``latency={'cpu': [1,`` / ``64]}`` read as two settings) unless one value is
    longer than a line."""
    import textwrap

    lines, line = [], ""
    for pair in (f"{k}={v}" for k, v in settings.items()):
        joined = f"{line}, {pair}" if line else pair
        if line and indent + len(joined) + 1 > width:  # + 1: the comma that ends a full line
            lines.append(line + ",")
            line = pair
        else:
            line = joined
        if indent + len(line) > width:  # one setting longer than a line (a nested recipe): wrapped inside
            *full, line = textwrap.wrap(line, width - indent, break_long_words=False, break_on_hyphens=False)
            lines += full
    return ("\n" + " " * indent).join([*lines, line])
