"""How every figure is finished: the run's caption in its footer, a tight layout, and a PNG in the
run's ``figures/`` folder, so a figure never travels without its source. The figures themselves
live in the lab of the notebook that draws them (``labutils.labs``)."""
from __future__ import annotations

from pathlib import Path

from .artifacts import atomic_write_bytes


# One colour per course model in every figure, whatever models a run holds (by position, a run
# without the pretrained ViT drew vit_scratch in vit's colour).
MODEL_COLORS = {"cnn": "C0", "vit": "C1", "vit_scratch": "C2"}


def model_color(name: str) -> str:
    return MODEL_COLORS.get(name, "C7")


def finish(fig, path=None, caption: str | None = None):
    """Add the run caption, lay out, save (png, 120 dpi; a temporary file renamed) when ``path`` is
    given; return ``fig``."""
    if caption:
        fig.text(0.5, 0.005, caption, ha="center", va="bottom", fontsize=7, color="0.4")
        fig.tight_layout(rect=(0, 0.03, 1, 1))
    else:
        fig.tight_layout()
    if path is not None:  # written whole or not at all, as every file of a run
        fmt = Path(path).suffix.lstrip(".") or "png"
        atomic_write_bytes(path, lambda f: fig.savefig(f, dpi=120, format=fmt))
    return fig
