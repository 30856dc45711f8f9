"""What every figure with several series must allow: telling them apart without colour (a reader
with a colour-vision deficiency, a grey print). Each labelled series of an axes must differ from
the others in marker, line style, filled or open markers, or hatch."""
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgba
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.lines import Line2D


def look(handle) -> tuple:
    """A legend handle's look, colour left out."""
    if isinstance(handle, ErrorbarContainer):
        handle = handle[0]
    if isinstance(handle, Line2D):
        face = to_rgba(handle.get_markerfacecolor())
        open_marker = face[3] == 0 or face[:3] == (1.0, 1.0, 1.0) or handle.get_fillstyle() == "none"
        return ("line", handle.get_marker(), handle.get_linestyle(), open_marker, handle.get_fillstyle())
    if isinstance(handle, BarContainer):
        return ("bars", handle.patches[0].get_hatch())
    if isinstance(handle, PathCollection):
        return ("dots", handle.get_paths()[0].vertices.round(3).tobytes())
    return ("other", type(handle).__name__)


def assert_series_apart(fig) -> int:
    """Fails naming the series an axes or a legend tells apart by colour alone; returns how many
    it checked. A legend shared by several panels (in a spare axes, or beside the last panel) is
    checked with the series it lists, drawn in whichever panel."""
    drawn = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            drawn.setdefault(label, handle)
    checked = 0
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is not None:
            labels = [t.get_text() for t in legend.get_texts()]
            handles = [drawn[label] for label in labels if label in drawn]
        else:
            handles, labels = ax.get_legend_handles_labels()
        by_look: dict[tuple, list[str]] = {}
        for handle, label in zip(handles, labels):
            by_look.setdefault(look(handle), []).append(label)
        same = [names for names in by_look.values() if len(names) > 1]
        assert not same, f"{ax.get_title()!r}: series told apart by colour alone: {same}"
        checked += len(handles)
    return checked
