"""How every figure is finished: the run's caption in its footer, a tight layout, and a PNG in the
run's ``figures/`` folder, so a figure never travels without its source. The figures themselves
live in the lab of the notebook that draws them (``labutils.labs``)."""
from __future__ import annotations

from pathlib import Path

from .artifacts import atomic_write_bytes


# Series styles for readers of any colour vision and for grey prints: Okabe and Ito's palette
# (matplotlib's default one merges orange with green, and green with red, for 1 man in 12), and a
# marker and line style of its own for every series, so no two series differ by colour alone.
# Black and grey are left to references (dense, chance, minimums, the seed study), yellow is too
# pale on white, and reddish purple marks float (unquantized) references in notebook 06.
COLORS = ["#0072B2", "#D55E00", "#56B4E9", "#E69F00", "#009E73"]  # blue, vermillion, sky blue, orange, green
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
LINES = ["-", "--", "-.", ":"]
FLOAT_COLOR = "#CC79A7"  # reddish purple: float references, not among COLORS
GOOD_COLOR, BAD_COLOR = COLORS[4], COLORS[1]  # met / fell short, also told apart by marker


def series_style(i: int) -> dict:
    """Colour, marker and line style of the ``i``-th series (matplotlib keyword arguments): the
    first 8 differ in marker whatever their colours."""
    return {"color": COLORS[i % len(COLORS)], "marker": MARKERS[i % len(MARKERS)], "ls": LINES[i % len(LINES)]}


def named_styles(names) -> dict[str, dict]:
    """A fixed style per name, so a name looks the same in every panel and figure whatever else
    a panel holds."""
    return {name: series_style(i) for i, name in enumerate(names)}


def style_for(styles: dict, name: str, names) -> dict:
    """``name``'s style in ``styles``; a name it lacks (a student's own criterion or method) gets
    the next style after the named ones, by its place among the unnamed of ``names`` (all the
    names of its figure), so it does not take a named series' look."""
    if name in styles:
        return dict(styles[name])
    unnamed = [n for n in dict.fromkeys(names) if n not in styles]
    return series_style(len(styles) + unnamed.index(name))


# One style per course model in every figure, whatever models a run holds (by position, a run
# without the pretrained ViT drew vit_scratch in vit's colour).
MODEL_STYLES = named_styles(["cnn", "vit", "vit_scratch"])


def model_style(name: str) -> dict:
    return dict(MODEL_STYLES.get(name, {"color": "0.5", "marker": "x", "ls": "-"}))


def minimum_line(ax, name: str, value: float) -> None:
    """A model's accuracy minimum: a dashed line in its colour, with its marker at the right edge,
    so each line can be told whose without telling colours apart."""
    style = model_style(name)
    ax.axhline(value, color=style["color"], ls="--", lw=0.8)
    ax.plot([1.0], [value], marker=style["marker"], color=style["color"], ms=5, ls="none", clip_on=False,
            transform=ax.get_yaxis_transform())  # x in axes fraction, y in data


def panels(n: int, width: float = 5.0, height: float = 3.6, columns: int = 2):
    """A figure of ``n`` panels (one per model), at most ``columns`` a row: (fig, axes, spare), the
    spare axes of the last row blanked, free for a shared legend. Three panels in a row made a
    figure 15 in wide that a notebook shrinks to half, and its 7 pt text to 3."""
    import matplotlib.pyplot as plt

    n = max(n, 1)
    cols = min(n, columns)
    rows = -(-n // cols)
    fig, grid = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    axes = list(grid.flat)
    for ax in axes[n:]:
        ax.axis("off")
    return fig, axes[:n], axes[n:]


def log_tick_labels(axis) -> None:
    """Plain numbers (200, 300, 1000, not 2x10^2 beside 10^3) on a log ``axis``, at least two of
    them whatever its range, none running into the next: minor ticks labelled at 2, 3 and 5 of
    each decade (all of them ran together, "90100"); every one where the axis spans less than 0.7
    of a decade (5x), where 2, 3 and 5 can leave a single label (52 to 156 images/s showed only
    "100"); none from 2 decades on, where the decades' own labels are two or more ("2000" ran
    into "3000")."""
    import math

    from matplotlib.ticker import FuncFormatter

    def minor(v, _):
        lo, hi = sorted(abs(x) for x in axis.get_view_interval())
        decades = math.log10(hi / lo) if lo > 0 else math.inf
        shown = decades < 0.7 or (decades < 2 and f"{v:.0e}"[0] in "235")
        return f"{v:g}" if shown else ""

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(minor))


CAPTION_SIZE = 7  # points


def _wrapped_caption(fig, caption: str):
    """The caption as a centred text at the foot of ``fig``, wrapped onto as many lines as its
    width needs (measured as drawn: one line of a full-profile caption ran off both sides of an
    8 in figure); returns the text."""
    import textwrap

    text = fig.text(0.5, 0.005, caption, ha="center", va="bottom", fontsize=CAPTION_SIZE, color="0.4")
    room = 0.96 * fig.bbox.width
    chars = max(len(line) for line in caption.splitlines() or [""])
    while text.get_window_extent().width > room and chars > 20:
        chars = max(20, min(chars - 1, int(chars * room / text.get_window_extent().width)))
        text.set_text("\n".join(textwrap.fill(line, chars) for line in caption.splitlines()))
    return text


def finish(fig, path=None, caption: str | None = None):
    """Add the run caption (wrapped to the figure's width), lay out, save (png, 120 dpi; a
    temporary file renamed) when ``path`` is given; return ``fig``."""
    if caption:
        text = _wrapped_caption(fig, caption)
        bottom = 0.01 + text.get_window_extent().height / fig.bbox.height  # its lines, above them the panels
        fig.tight_layout(rect=(0, bottom, 1, 1))
    else:
        fig.tight_layout()
    if path is not None:  # written whole or not at all, as every file of a run
        fmt = Path(path).suffix.lstrip(".") or "png"
        atomic_write_bytes(path, lambda f: fig.savefig(f, dpi=120, format=fmt))
    return fig
