"""What a reader can read off the labs' figures, drawn from small made-up records (no run): the
caption whole on the figure, at least two numbers on a log axis, labels the reference line does
not cross, no blank figure, widths a notebook does not halve, budgets told apart."""
import matplotlib
import matplotlib.pyplot as plt
import pytest

from figure_check import assert_series_apart, assert_tick_labels_apart, assert_within_figure, visible_tick_labels
from labutils.errors import SettingsError
from labutils.labs import baseline as B
from labutils.labs import quantization as Q
from labutils.labs import structured as S
from labutils.labs import unstructured as U
from labutils.plots import finish

matplotlib.use("Agg")

# A full-profile caption as Session.caption writes it, measured again elsewhere (notebook 05).
FULL_CAPTION = ("profile full | CIFAR-10 (50,000 training and 10,000 test images) | NVIDIA H100 80GB HBM3 "
                "| run full-20250131T120000-4f2a9c | measured again on NVIDIA H100 80GB HBM3")
SMOKE_CAPTION = ("profile smoke (reduced run) | synthetic CIFAR-shaped data | cpu (x86_64, 16 cores) "
                 "| run smoke-20250131T120000-4f2a9c")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("width, caption", [(5, SMOKE_CAPTION), (5, FULL_CAPTION), (8, FULL_CAPTION)])
def test_the_caption_is_wrapped_to_lie_whole_on_the_figure(width, caption):
    """One unwrapped 7 pt line ran off both sides of a 5 in figure (a smoke caption is ~5.8 in),
    and of an 8 in one with a full-profile caption."""
    fig, ax = plt.subplots(figsize=(width, 3.6))
    ax.plot([1, 2], [3, 4])
    ax.set_xlabel("sparsity (%)")
    finish(fig, caption=caption)
    text = fig.texts[-1]
    assert text.get_text().split() == caption.split()  # every word, on as many lines as it takes
    assert_within_figure(fig, text)
    # Above it the panels: the x label ends above the caption's top line.
    assert ax.get_tightbbox().y0 >= text.get_window_extent().y1


def test_a_caption_that_fits_stays_one_line():
    fig, _ = plt.subplots(figsize=(10, 3.6))
    finish(fig, caption=SMOKE_CAPTION)
    assert fig.texts[-1].get_text() == SMOKE_CAPTION


def throughput_record(low, high, devices=("cpu",)):
    """A record of notebook 04 whose images/s run from ``low`` (dense, batch 1) to ``high``."""
    dense, pruned = [low, 1.2 * low, 1.4 * low], [high / 1.4, high / 1.2, high]
    sweep = {"batch_sizes": [1, 8, 64], "dense": dense, "pruned": pruned, "graphs": False, "mac_ratio": 1.6,
             "speedup": [p / d for p, d in zip(pruned, dense)]}
    return {"produced": True, "throughput": {d: dict(sweep) for d in devices}}


@pytest.mark.parametrize("low, high", [(56.0, 170.0), (15.0, 68.0), (120.0, 900.0)])
def test_a_throughput_axis_within_one_decade_shows_two_numbers(low, high):
    """51.8 to 156.3 images/s showed a single label, "100": minor ticks were labelled at 2, 3 and 5
    of a decade only."""
    fig = S.plot_throughput({"cnn": throughput_record(low, high)})
    top = fig.axes[0]
    assert top.get_yscale() == "log"
    assert len(visible_tick_labels(top.yaxis)) >= 2, visible_tick_labels(top.yaxis)
    assert_tick_labels_apart(top.yaxis)


@pytest.mark.parametrize("low, high", [(56.0, 170.0), (12.0, 19.0), (3.0, 14.0), (20.0, 30000.0)])
def test_the_size_axis_shows_two_numbers_that_do_not_run_together(low, high):
    fig = Q.plot_size(r20(low, high))
    axis = fig.axes[0].xaxis
    assert len(visible_tick_labels(axis)) >= 2, visible_tick_labels(axis)
    assert_tick_labels_apart(axis)


def r20(low=56.0, high=170.0):
    """A ResNet-20 record of notebook 06, its sizes from ``low`` to ``high`` kB."""
    bits = ["2", "4", "6"]
    acc = {"2": 0.5, "4": 0.8, "6": 0.85}
    sizes = dict(zip(bits, [8000 * low, 8000 * (low * high) ** 0.5, 8000 * high]))
    rec = {"accuracy": acc, "size_bits": sizes}
    return {"fp32_accuracy": 0.9, "size_bits_fp32": 8000 * high * 1.05,
            "ptq": {m: {"accuracy": acc} for m in Q.PTQ_STYLES},
            "qat": dict(rec, method="symmetric/channel/mse"), "qat_control": {"accuracy": acc},
            "pruning": {v: {"ptq": rec, "qat": rec, "pruning_percentage": 80.0} for v in Q.VARIANT_NAMES}}


def test_the_speed_up_labels_lie_over_the_reference_line():
    """The black 1.0x line ran through the label of a bar near 1.0x."""
    point = {"mac_ratio": 1.02, "speedup": 0.98, "device": "cpu", "batch_size": 1}
    fig = S.plot_speed_vs_macs({"cnn": {"produced": True, "latency": {"cpu_batch1": point}}})
    ax = fig.axes[0]
    line = next(ln for ln in ax.get_lines() if list(ln.get_ydata()) == [1.0, 1.0])
    labels = [t for t in ax.texts if t.get_text().endswith("x")]
    assert len(labels) == 2
    for label in labels:
        patch = label.get_bbox_patch()
        assert label.get_zorder() > line.get_zorder() and patch is not None
        assert tuple(patch.get_facecolor()) == (1.0, 1.0, 1.0, 1.0)


def test_no_learning_curves_without_a_trained_model(capsys):
    """Only the ViT asked, its pretrained weights unavailable: a blank figure with an empty legend
    and a matplotlib warning."""
    figures = plt.get_fignums()
    assert B.plot_learning_curves({}) is None
    assert capsys.readouterr().out.startswith("no figure: no model was trained in this run")
    assert plt.get_fignums() == figures


def sensitivity_scan():
    return {"sparsities": [0.5, 0.9], "baseline": 0.6, "layers": {"a": [0.6, 0.3], "b": [0.5, 0.2]}, "images": 100}


@pytest.mark.parametrize("draw", ["bits", "throughput", "sensitivity"])
def test_figures_of_three_are_at_most_two_panels_wide(draw):
    """15 in wide, a notebook showed them at half size, their 7 pt text at 3 or 4."""
    models = ("cnn", "vit", "vit_scratch")
    fig = {"bits": lambda: Q.plot_bits(r20()),
           "throughput": lambda: S.plot_throughput({n: throughput_record(50.0, 600.0, ("cpu", "cuda")) for n in models}),
           "sensitivity": lambda: U.plot_sensitivity({n: sensitivity_scan() for n in models})}[draw]()
    assert fig.get_figwidth() <= 10.5
    if draw != "sensitivity":
        assert assert_series_apart(fig) >= 6


def test_the_study_takes_no_more_budgets_than_its_figure_tells_apart():
    """STUDY_EPOCHS = [1, ..., 7]: the markers' fills repeat after four halves, budgets 2 and 6
    looked alike."""
    with pytest.raises(SettingsError, match="at most 6 different budgets"):
        U.check_study([0.5, 0.9], [1, 2, 3, 4, 5, 6, 7])
    budgets = [1, 2, 3, 4, 5, 6]
    U.check_study([0.5, 0.9], budgets)
    rows = [{"method": m, "epochs": e, "sparsity": s, "accuracy": 0.5, "ci95": (0.45, 0.55)}
            for m in ("one_shot", "iterative", "gradual") for e in budgets for s in (0.5, 0.9)]
    fig = U.plot_study({"cnn": rows}, {"cnn": 0.6}, caption=FULL_CAPTION)
    fig.canvas.draw()  # a list of 3 x 6 series ran past the panel's foot, down onto the caption
    legend, panel = fig.axes[0].get_legend().get_window_extent(), fig.axes[0].get_window_extent()
    assert legend.y0 >= panel.y0, f"legend down to y {legend.y0:.0f} px, the panel to {panel.y0:.0f}"
    # The key: dense, 3 methods, 6 budgets; then the panel's 3 x 6 series and the dense line.
    assert assert_series_apart(fig) == (1 + 3 + 6) + (3 * 6 + 1)
    key = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert key[:5] == ["dense", "one-shot", "iterative", "gradual", "fine-tuned 1 epoch"]


def test_the_study_figure_says_the_steps_a_reduced_profile_ran_for_its_budgets():
    """A cpu run's legend said "fine-tuned 3 epochs / 5 epochs" for 12 and 20 steps (an epoch capped
    at 4), a smoke run's for 1 and 2: its printed lines said so, its figure did not."""
    def rows(steps):
        return [{"method": m, "epochs": e, "steps": n, "sparsity": s, "accuracy": 0.5, "ci95": (0.45, 0.55)}
                for m in ("one_shot", "iterative", "gradual") for e, n in steps.items() for s in (0.5, 0.9)]

    fig = U.plot_study({"cnn": rows({3: 12, 5: 20}), "vit_scratch": rows({3: 12, 5: 16})},
                       {"cnn": 0.6, "vit_scratch": 0.6}, caption=FULL_CAPTION)
    legend = fig.axes[-1].get_legend()
    assert [t.get_text() for t in legend.get_texts()][4:] == ["fine-tuned 3 ep budget = 12 steps",
                                                             "fine-tuned 5 ep budget = 16-20 steps"]
    assert "one-shot, 5 ep budget = 16 steps" in fig.axes[1].get_legend_handles_labels()[1]
    fig.canvas.draw()
    assert legend.get_window_extent().x1 <= fig.bbox.x1  # the longer labels stay on the figure
    fig = U.plot_study({"cnn": rows({1: 1})}, {"cnn": 0.6})
    assert fig.axes[0].get_legend().get_texts()[-1].get_text() == "fine-tuned 1 ep budget = 1 step"


def test_the_study_figure_keeps_each_levels_points_nearest_that_level():
    """Each method sat a fixed 1.2 points aside: at the exercise's levels 0.95 and 0.98, gradual's 95%
    point fell 0.6 points from one-shot's 98%, and the ticks misread (review). Then one slot for all
    levels, from the closest gap, squeezed the points at 50% and 90% onto each other (review): each
    level's slot comes from its own nearest level."""
    for levels in ([0.95, 0.98], [0.5, 0.9, 0.95, 0.98]):
        rows = [{"method": m, "epochs": e, "sparsity": s, "accuracy": 0.5, "ci95": (0.45, 0.55)}
                for m in ("one_shot", "iterative", "gradual") for e in (1, 3, 5) for s in levels]
        fig = U.plot_study({"cnn": rows}, {"cnn": 0.6})
        series = fig.axes[0].containers
        assert len(series) == 3 * 3
        for bars in series:
            for x, level in zip(bars.lines[0].get_xdata(), levels):
                nearest = min(levels, key=lambda other: abs(x - 100 * other))
                assert nearest == level, f"{bars.get_label()}: its {level:.0%} point drawn at {x:.2f}"
    # At 50% (40 points from 90%) the whole 1.2-point slot: a method 1.2 aside, a budget 0.4 within it.
    at_50 = sorted(bars.lines[0].get_xdata()[0] - 50 for bars in series)
    assert at_50 == pytest.approx([1.2 * (m + b / 3) for m in (-1, 0, 1) for b in (-1, 0, 1)])


def test_notebook_01s_image_grids_draw_a_single_row_or_column():
    """One image, or one image per class (a natural try in notebook 01's exercises), crashed on
    matplotlib's squeezed axes: 'too many indices for array'."""
    import numpy as np

    from labutils.labs import data as lab

    images = np.random.default_rng(0).integers(0, 255, (4, 3, 32, 32), dtype=np.uint8)
    fig = lab.plot_augmentation(images[:1], lab.augmentation_draws(images[:1], draws=2))
    assert len(fig.axes) == 1 + 2
    fig = lab.plot_samples(images, np.array([0, 1, 0, 1]), ["a", "b"], per_class=1)
    assert len(fig.axes) == 2 and all(ax.images for ax in fig.axes)


def test_figures_of_empty_or_nan_records_say_so_or_draw_a_dash(capsys):
    """A model scanned over no layers crashed on min() of an empty sequence, a NaN probe accuracy on
    round(), a model without layer sparsities on a division by zero, notebook 01's grids of no class
    or no image on matplotlib's "Number of rows must be a positive integer" (review)."""
    import numpy as np

    from labutils.labs import data as lab

    figures = plt.get_fignums()
    empty = sensitivity_scan() | {"layers": {}}
    assert U.plot_sensitivity({"cnn": empty, "vit": sensitivity_scan() | {"layers": {"a": []}}}) is None
    assert U.plot_layer_sparsity({"cnn": {}, "vit": {"global": {}}}, 0.5) is None
    assert lab.plot_samples(np.zeros((0, 3, 32, 32), np.uint8), np.zeros(0, int), []) is None
    assert lab.plot_augmentation(np.zeros((0, 3, 32, 32), np.uint8), []) is None
    said = capsys.readouterr().out.splitlines()
    assert len(said) == 4 and all(line.startswith("no figure: ") for line in said)
    assert plt.get_fignums() == figures
    # Beside a model with something to draw: that one drawn, a NaN cell shown as a dash.
    scan = sensitivity_scan()
    scan["layers"]["b"] = [float("nan"), 0.2]
    fig = U.plot_sensitivity({"cnn": empty, "vit": scan})
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(fig.axes) == 2 and texts == ["0", "30", "\u2013", "40"]  # one panel and its colour bar
    fig = U.plot_layer_sparsity({"cnn": {}, "vit": {"global": {"a": 0.5}, "layer": {}}}, 0.5)
    assert len(fig.axes) == 1 and len(fig.axes[0].patches) == 1


def test_the_sweep_figure_says_which_curves_are_drawn_as_one():
    """A model at chance under every criterion drew its five curves on one another: the legend
    listed five, the reader saw one and could not tell which it was."""
    at_chance = {"sparsities": [0.5, 0.9], "baseline": 0.1,
                 "accuracy": {name: [0.1, 0.1] for name in ("global magnitude", "layer magnitude", "global taylor")}}
    apart = {"sparsities": [0.5, 0.9], "baseline": 0.6,
             "accuracy": {"global magnitude": [0.6, 0.3], "layer magnitude": [0.58, 0.2], "global taylor": [0.6, 0.3]}}
    fig = U.plot_accuracy_vs_sparsity({"cnn": apart, "vit_scratch": at_chance})
    titles = [ax.get_legend().get_title().get_text().replace("\u00a0", " ").replace("\n", " ") for ax in fig.axes[:2]]
    assert titles == ["drawn as one: global magnitude = global taylor",
                      "drawn as one: global magnitude = layer magnitude = global taylor"]
    apart["accuracy"]["global taylor"] = [0.6, 0.31]  # a point apart: its own curve
    fig = U.plot_accuracy_vs_sparsity({"cnn": apart})
    assert fig.axes[0].get_legend().get_title().get_text() == ""
