"""labutils: the importable half of the pruning workbook (data, models, training, pruning,
quantization, reports). The notebooks in notebooks/ call it; ``python -m labutils`` runs them."""
from .data import get_loaders
from .session import Session

__all__ = ["get_loaders", "Session"]
__version__ = "0.1.0"
