"""What a student sees while the workbook runs: every progress bar ends finished (full and green,
never tqdm's red failure state), a loop of fits shows one bar and a line per point, the plain path
(papermill) prints one line per epoch. The widget path is tested with tqdm's own notebook bars."""
import re

import pytest

from labutils.labs import unstructured as U
from labutils.prune import iterative_prune
from labutils.train import fit, quiet_progress
from tiny import tiny_cnn, tiny_loaders


@pytest.fixture()
def bars(monkeypatch):
    """Every visible bar ``progress`` makes, as tqdm.notebook's widget bars (JupyterLab's path),
    each shown through a display handle that records what replaces the widget."""
    import IPython.display
    import tqdm.auto
    import tqdm.notebook

    class Handle:
        def __init__(self, obj):
            self.shown, self.updates = obj, []

        def update(self, obj, **kwargs):
            self.updates.append(obj)

    monkeypatch.setattr(IPython.display, "display", lambda obj, **kwargs: Handle(obj))
    made = []

    class Recording(tqdm.notebook.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if not self.disable:
                made.append(self)

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)
    monkeypatch.delenv("LABUTILS_PLAIN_PROGRESS", raising=False)
    return made


def assert_finished(bar):
    """Closed, kept on screen, full (or without a total) and green: tqdm paints a bar closed short red."""
    widget = bar.container.children[1]
    assert bar.disable, f"{bar.desc}: never closed"
    assert bar.leave is not False, f"{bar.desc}: leave=False leaves a dead widget in a saved notebook"
    assert bar.total is None or bar.n == bar.total, f"{bar.desc}: closed at {bar.n}/{bar.total}"
    assert widget.bar_style == "success" and widget.value == widget.max, (bar.desc, widget.bar_style)
    # Closed, the widget gives way to a static copy (a saved notebook renders it without a kernel).
    assert bar._handle.shown is bar.container and len(bar._handle.updates) == 1
    static = bar._handle.updates[0]
    assert 'data-style="success" data-fill="1.000"' in static["text/html"]
    assert bar.desc in static["text/plain"] and ("100%" in static["text/plain"] or bar.total is None)


def test_fit_shows_one_bar_that_ends_full_when_max_steps_stops_inside_an_epoch(bars):
    train, test = tiny_loaders()  # 4 batches per epoch; 6 steps end in the middle of epoch 2
    history = fit(tiny_cnn(), train, test, epochs=3, lr=0.01, max_steps=6, desc="tiny")
    assert [h["images"] for h in history] == [64, 32]
    assert len(bars) == 1, [b.desc for b in bars]  # no nested per-batch bar
    (bar,) = bars
    assert (bar.n, bar.total) == (6, 6)
    assert_finished(bar)
    postfix = bar.postfix
    assert postfix.startswith("epoch 2/2 loss") and "test" in postfix
    assert len(postfix) <= 40  # a longer postfix wraps the widget onto a second line


def test_iterative_pruning_shows_one_bar_for_its_rounds(bars):
    train, _ = tiny_loaders()
    iterative_prune(tiny_cnn(), train, None, 0.7, rounds=3, epochs_per_round=0.5, lr=0.01, desc="iter")
    assert [b.desc for b in bars] == ["iter"]
    assert (bars[0].n, bars[0].total) == (3, 3)
    assert_finished(bars[0])


def tiny_subject() -> U.Subject:
    train, test = tiny_loaders()
    cfg = {"include_first": False, "include_classifier": False, "study_epoch_scale": 1.0, "epoch_steps": 2,
           "rounds": 2, "gradual_end": 0.7, "finetune": {"cnn": {"lr": 0.01}},
           "frontier": {"step_keep": 0.5, "refine": 1, "max_trials": 3, "max_sparsity": 0.995,
                        "epochs": 0.5, "epoch_steps": 2, "drop": 0.5}}
    return U.Subject("cnn", tiny_cnn(), train, test, test, 0.1, cfg)


def test_study_shows_one_bar_and_one_line_per_point(bars, capsys):
    rows = U.study(tiny_subject(), [0.5, 0.8], [1])
    assert len(rows) == 6
    assert [b.desc for b in bars] == ["cnn study"]  # the 6 fine-tunes (and their rounds) stay silent
    assert (bars[0].n, bars[0].total) == (6, 6)
    assert_finished(bars[0])
    out = capsys.readouterr().out.splitlines()
    points = [line for line in out if line.startswith("cnn ") and re.search(r" ep \(\d+ steps?\): ", line)]
    assert len(points) == 6 and out[-1].startswith("study: 6 points")


def test_frontier_search_shows_one_bar(bars, capsys):
    class Run:  # the two things frontier reads from a Session
        profile = {"reduced": True}

        @staticmethod
        def metrics(*_):
            return None

    U.frontier(Run(), tiny_subject())
    assert [b.desc for b in bars] == ["cnn frontier"]
    assert_finished(bars[0])


def test_plain_path_prints_a_line_per_epoch_and_nothing_inside_quiet_progress(monkeypatch, capsys):
    monkeypatch.setenv("LABUTILS_PLAIN_PROGRESS", "1")
    train, _ = tiny_loaders()
    fit(tiny_cnn(), train, None, epochs=3, lr=0.01, max_steps=6, desc="tiny")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" loss")[0] for line in lines] == ["tiny: epoch 1/2", "tiny: epoch 2/2"]
    with quiet_progress():
        fit(tiny_cnn(), train, None, epochs=1, lr=0.01, desc="quiet")
    assert capsys.readouterr().out == ""


def test_a_long_epoch_on_the_plain_path_says_it_is_alive(monkeypatch, capsys):
    """A cpu-profile epoch of ResNet-18 took 2 to 3.5 minutes with nothing printed (a first-time
    user thought the run had hung): past HEARTBEAT_SECONDS without a line, a step line is printed."""
    from labutils import train as T

    monkeypatch.setenv("LABUTILS_PLAIN_PROGRESS", "1")
    monkeypatch.setattr(T, "HEARTBEAT_SECONDS", 0.0)
    train, _ = tiny_loaders()
    fit(tiny_cnn(), train, None, epochs=1, lr=0.01, max_steps=2, desc="tiny")
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(rf"tiny: epoch 1/1, step 1/{len(train)} \(\d+s into the epoch\)", lines[0])
    assert lines[1].startswith("tiny: epoch 1/1, step 2/") and lines[-1].startswith("tiny: epoch 1/1 loss")
    with quiet_progress():
        fit(tiny_cnn(), train, None, epochs=1, lr=0.01, max_steps=2, desc="quiet")
    monkeypatch.delenv("LABUTILS_PLAIN_PROGRESS")
    fit(tiny_cnn(), train, None, epochs=1, lr=0.01, max_steps=2, desc="bar")  # the bar moves instead
    assert "step" not in capsys.readouterr().out


def test_a_bar_left_with_leave_false_is_cleared(bars):
    from labutils.train import progress

    for _ in progress(range(3), desc="transient", leave=False):
        pass
    assert bars[0]._handle.updates == [{"text/plain": ""}]  # the widget's output emptied, not a dead widget
