"""Pruning, written by hand with tensor operations (PyTorch's built-in pruning module is not used)."""
from .masks import (MaskEnforcer, apply_masks, magnitude_scores, masks_from_scores,
                    prunable_parameters, sparsity_report)
from .criteria import compute_scores, fisher_scores, taylor_scores
from .schedules import (GradualPruner, cubic_sparsity, gradual_prune, iterative_prune, nm_masks,
                        one_shot_prune, round_targets)

__all__ = ["MaskEnforcer", "apply_masks", "magnitude_scores", "masks_from_scores",
           "prunable_parameters", "sparsity_report", "compute_scores", "fisher_scores",
           "taylor_scores", "GradualPruner", "cubic_sparsity", "gradual_prune", "iterative_prune",
           "nm_masks", "one_shot_prune", "round_targets"]
