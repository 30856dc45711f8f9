"""What every figure with several series must allow: telling them apart without colour (a reader
with a colour-vision deficiency, a grey print). Each labelled series of an axes must differ from
the others in marker, line style, filled or open markers, or hatch. Also: what a reader can read
off a figure (its caption whole on it, the tick labels of an axis)."""
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgba
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.lines import Line2D
from matplotlib.patches import Patch


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
    if isinstance(handle, Patch):  # a filled area (stairs, fill_between's legend patch)
        return ("area", handle.get_hatch(), handle.get_linestyle(), handle.get_fill())
    if isinstance(handle, PathCollection):
        return ("dots", handle.get_paths()[0].vertices.round(3).tobytes())
    return ("other", type(handle).__name__)


def assert_series_apart(fig) -> int:
    """Fails naming the series an axes or a legend tells apart by colour alone; returns how many
    it checked. A legend shared by several panels (in a spare axes, or beside the last panel) is
    checked with the series it lists, drawn in whichever panel; a legend that is a key (proxy
    entries, not the series) is checked as drawn, and the series of its panel as well."""
    drawn = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            drawn.setdefault(label, handle)
    checked = 0
    for ax in fig.axes:
        own = ax.get_legend_handles_labels()
        legend = ax.get_legend()
        if legend is not None:
            labels = [t.get_text() for t in legend.get_texts()]
            # A key of proxies (one entry per method, one per budget) is checked as drawn in the legend.
            checked += _apart(ax, [drawn.get(label, proxy) for label, proxy in zip(labels, legend.legend_handles)], labels)
            if set(own[1]) <= set(labels):
                continue
        checked += _apart(ax, *own)  # series the legend does not list one by one
    return checked


def _apart(ax, handles, labels) -> int:
    by_look: dict[tuple, list[str]] = {}
    for handle, label in zip(handles, labels):
        by_look.setdefault(look(handle), []).append(label)
    same = [names for names in by_look.values() if len(names) > 1]
    assert not same, f"{ax.get_title()!r}: series told apart by colour alone: {same}"
    return len(handles)


def visible_tick_labels(axis) -> list[str]:
    """The non-empty tick labels ``axis`` draws (major and minor) within its view, as drawn."""
    lo, hi = sorted(axis.get_view_interval())
    labels = []
    for locs, formatter in ((axis.get_majorticklocs(), axis.get_major_formatter()),
                            (axis.get_minorticklocs(), axis.get_minor_formatter())):
        inside = [v for v in locs if lo <= v <= hi]
        labels += [t for t in formatter.format_ticks(inside) if t]
    return labels


def assert_tick_labels_apart(axis) -> None:
    """Fails where two drawn tick labels of ``axis`` overlap ("90100")."""
    axis.get_figure(root=True).canvas.draw()
    lo, hi = sorted(axis.get_view_interval())
    ticks = (axis.get_major_ticks(len(axis.get_majorticklocs()))
             + axis.get_minor_ticks(len(axis.get_minorticklocs())))
    boxes = [(t.label1.get_text(), t.label1.get_window_extent()) for t in ticks
             if lo <= t.get_loc() <= hi and t.label1.get_visible() and t.label1.get_text()]
    for i, (a, box) in enumerate(boxes):
        for b, other in boxes[i + 1:]:
            assert not box.overlaps(other), f"tick labels {a!r} and {b!r} overlap"


def assert_within_figure(fig, text) -> None:
    """Fails where ``text`` (a figure's caption) runs off ``fig`` as saved (no tight bounding box)."""
    fig.canvas.draw()
    box, page = text.get_window_extent(), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1, (
        f"caption spans x {box.x0:.0f} to {box.x1:.0f} and y {box.y0:.0f} to {box.y1:.0f} px, "
        f"the figure 0 to {page.x1:.0f} by 0 to {page.y1:.0f}")
