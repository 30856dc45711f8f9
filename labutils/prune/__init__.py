"""Pruning, written by hand with tensor operations (``torch.nn.utils.prune`` is not used)."""
from .masks import (MaskEnforcer, apply_masks, magnitude_scores, masks_from_scores,
                    prunable_parameters, sparsity_report)

__all__ = ["MaskEnforcer", "apply_masks", "magnitude_scores", "masks_from_scores",
           "prunable_parameters", "sparsity_report"]
