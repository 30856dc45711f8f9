"""Notebook 03's live pruning playground: the logic without a browser (smoke-sized models trained
for a few steps here), the widget wiring in-process, and the papermill / no-model skips."""
import gc
import sys
import weakref

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn

from figure_check import assert_series_apart
from labutils import Session
from labutils.labs import playground as P
from labutils.labs import unstructured as lab
from labutils.labs.playground import Playground
from labutils.prune.criteria import CRITERIA, SCORERS
from labutils.train import evaluate, fit
from tiny import tiny_cnn, tiny_loaders

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def subjects(tmp_path_factory):
    s = Session("smoke", tmp_path_factory.mktemp("playground"), device="cpu")
    cfg, out = lab.settings(s), {}
    for name, recipe in {"cnn": {"lr": 0.05, "optimizer": "sgd"},
                         "vit_scratch": {"lr": 1e-3, "optimizer": "adamw"}}.items():
        model = s.new_model(name)
        train, test = s.loaders(name, 64)
        fit(model, train, epochs=1, max_steps=15, **recipe)
        probe = s.test_subset_loader(cfg["probe_images"], 128, s.input_size(name))
        out[name] = lab.Subject(name, model, train, test, probe, evaluate(model, probe)["accuracy"], cfg, s.seed)
    return out


@pytest.fixture(scope="module")
def pg(subjects):
    return Playground(subjects, probe_images=48)


def tiny_subject(name="tiny", model=None):
    """A Subject on tests/tiny.py's model and data: updates in milliseconds."""
    train, test = tiny_loaders()
    cfg = {"include_first": False, "include_classifier": False, "score_batches": 1}
    return lab.Subject(name, model or tiny_cnn(), train, test, test, 0.1, cfg, 0)


def dense_copy(subject):
    return {n: p.detach().clone() for n, p in subject.params(subject.model).items()}


@pytest.mark.parametrize("name", ["cnn", "vit_scratch"])
def test_loss_moves_with_sparsity_and_sparsity_is_measured(pg, name):
    runs = {sp: pg.update(name, "magnitude", "global", sp) for sp in (0.0, 0.5, 0.9)}
    assert runs[0.0]["accuracy"] == runs[0.0]["dense_accuracy"]
    # What is scored is the pruned model: its loss moves (its accuracy need not, for a model this
    # barely trained: dense and pruned may both name one class for every image of a balanced slice).
    assert runs[0.9]["loss"] != runs[0.0]["loss"]
    assert runs[0.0]["images"] == 48
    live = pg.live(name)
    labels = live.probe.labels.cpu().numpy()
    assert np.bincount(labels).max() - np.bincount(labels).min() <= 1  # class-balanced slice
    total = sum(p.numel() for p in live.params.values())
    for sp, r in runs.items():
        assert r["measured_sparsity"] == pytest.approx(sp, abs=1 / total)  # one weight of rounding
        assert r["layers"].keys() == live.params.keys()


def test_dense_weights_restored_exactly_and_the_subject_untouched(pg, subjects):
    before = dense_copy(subjects["cnn"])
    live = pg.live("cnn")
    for criterion, scope, sp in [("magnitude", "global", 0.9), ("taylor", "layer", 0.7),
                                 ("magnitude", "layer", 0.3), ("taylor", "global", 0.95)]:
        pg.update("cnn", criterion, scope, sp)
        assert all(torch.equal(p, live.dense[n]) for n, p in live.params.items())
    # No drift: the same request twice gives the same answer, and the notebook's model is as it was.
    first, again = pg.update("cnn", "magnitude", "global", 0.6), pg.update("cnn", "magnitude", "global", 0.6)
    assert first["accuracy"] == again["accuracy"] and first["layers"] == again["layers"]
    after = dense_copy(subjects["cnn"])
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert all(torch.equal(before[n], live.dense[n]) for n in before)


def test_taylor_and_magnitude_remove_different_weights(pg):
    mag, tay = pg.update("cnn", "magnitude", "global", 0.5), pg.update("cnn", "taylor", "global", 0.5)
    assert any(not torch.equal(mag["masks"][n], tay["masks"][n]) for n in mag["masks"])
    assert pg.scores("cnn", "taylor") is pg.scores("cnn", "taylor")  # computed once, then cached


def test_scopes_global_threshold_and_equal_layer_shares(pg):
    glob, layer = pg.update("cnn", "magnitude", "global", 0.7), pg.update("cnn", "magnitude", "layer", 0.7)
    live = pg.live("cnn")
    for n, share in layer["layers"].items():
        assert share == pytest.approx(0.7, abs=1 / live.params[n].numel())
    assert layer["threshold"] is None and len(set(layer["thresholds"].values())) > 1
    # One global cut: every removed |w| is at or below it, every kept one at or above.
    t = glob["threshold"]
    assert t == max(glob["thresholds"].values())
    for n, mask in glob["masks"].items():
        w = live.dense[n].abs()
        assert w[~mask].max() <= t <= w[mask].min()
    assert max(glob["layers"].values()) - min(glob["layers"].values()) > 0.05


def test_figure_has_the_histogram_threshold_and_layer_bars(pg):
    import matplotlib.pyplot as plt

    fig = pg.figure(pg.update("cnn", "magnitude", "global", 0.7))
    hist, bars = fig.axes
    assert hist.get_xscale() == "log" and any("threshold" in t.get_text() for t in hist.get_legend().get_texts())
    # Kept and removed differed by colour alone (both filled stairs): removed is hatched too.
    assert assert_series_apart(fig) >= 3
    assert len(bars.patches) == len(pg.live("cnn").params)
    plt.close(fig)


def test_widget_updates_the_accuracy_line_when_the_slider_moves(subjects):
    import ipywidgets as W
    import matplotlib.pyplot as plt

    figures = plt.get_fignums()
    pg = Playground(subjects, probe_images=48)
    box = pg.widget()
    assert isinstance(box, W.VBox) and pg.controls["sparsity"].continuous_update is False
    start = pg.label.value
    assert start.startswith("probe accuracy") and "at 50.0% sparsity" in start
    pg.controls["sparsity"].value = 0.95  # observers run synchronously in-process
    assert pg.label.value.startswith("probe accuracy") and pg.label.value != start
    assert "at 95.0% sparsity" in pg.label.value
    cnn_line = pg.label.value
    pg.controls["model"].value = "vit_scratch"
    # The line is vit_scratch's at these settings (all but the timing), not the cnn line left over.
    want = pg.describe(pg.update("vit_scratch", pg.controls["criterion"].value, pg.controls["scope"].value, 0.95))
    got = pg.label.value
    assert got.rsplit(" · ", 1)[0] == want.rsplit(" · ", 1)[0] != cnn_line.rsplit(" · ", 1)[0]
    assert "at 95.0% sparsity" in got
    # Every criterion of SCORERS, one an instructor adds there too (it offered magnitude and Taylor only).
    assert pg.controls["criterion"].options == CRITERIA == tuple(SCORERS)
    pg.controls["criterion"].value = "fisher"
    assert pg.label.value.startswith("probe accuracy") and ("cnn", "fisher") not in pg._scores
    assert ("vit_scratch", "fisher") in pg._scores
    assert plt.get_fignums() == figures  # every drawn figure was closed


def test_skipped_under_papermill_and_without_models(subjects, monkeypatch, capsys):
    monkeypatch.setenv("LABUTILS_PLAIN_PROGRESS", "1")
    assert lab.playground(subjects) is None
    assert "runs only interactively" in capsys.readouterr().out
    monkeypatch.delenv("LABUTILS_PLAIN_PROGRESS")
    assert lab.playground({}) is None
    assert "no baseline" in capsys.readouterr().out


def test_under_the_pipeline_it_names_the_runs_copy_of_the_notebook(tmp_path, monkeypatch, capsys):
    """A pipeline run told the student to open the workbook's notebooks/03_...: its parameters cell
    names no run, and it failed with "OUT_DIR .../runs/cpu holds no run"."""
    monkeypatch.setenv("LABUTILS_PLAIN_PROGRESS", "1")
    run = tmp_path / "runs" / "cpu"
    (run / "metrics").mkdir(parents=True)
    (run / "metrics" / "run.json").write_text("{}")
    (run / "notebooks").mkdir()
    monkeypatch.chdir(run / "notebooks")  # where the pipeline's kernel runs the notebook
    assert P.show({}) is None
    said = capsys.readouterr().out  # outside the repository: named from the run's folder, no machine path
    assert f"(jupyter lab notebooks/{P.NOTEBOOK} of the run's folder)" in said and str(tmp_path) not in said
    monkeypatch.setattr(P, "REPO_ROOT", tmp_path.resolve())  # a run inside the repository: shown from there
    P.show({})
    assert "(jupyter lab runs/cpu/notebooks/03_unstructured_pruning.ipynb)" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)  # not a run's folder (papermill by hand): the workbook's own
    P.show({})
    assert "(jupyter lab notebooks/03_unstructured_pruning.ipynb)" in capsys.readouterr().out


def test_under_the_pipeline_it_says_which_cells_to_run_before_it(monkeypatch, capsys):
    """It said "open this notebook ... and run this cell": in a fresh kernel that cell alone failed
    with NameError ('lab' not defined) (review)."""
    import json

    from labutils.pipeline import available_notebooks

    monkeypatch.setenv("LABUTILS_PLAIN_PROGRESS", "1")
    P.show({})
    assert ("or Colab, run its cells from the top through the one that loads the subjects (lab.load_subjects), "
            "then this one (the sensitivity and sweep cells can be skipped)") in capsys.readouterr().out
    # The cells it names, in the notebook's order: only the scans and sweeps lie between.
    code = ["".join(c["source"]) for c in json.loads(open(available_notebooks()["03"]).read())["cells"]
            if c["cell_type"] == "code"]
    loads = next(i for i, c in enumerate(code) if "lab.load_subjects(s, s.models)" in c)
    shows = next(i for i, c in enumerate(code) if "lab.playground(" in c)
    assert [c.split(" = ")[0] for c in code[loads + 1:shows]] == ["scans", "sweeps"]


def test_without_ipywidgets_it_says_so_in_a_line_and_a_run_all_goes_on(monkeypatch, capsys):
    """A kernel built outside the workbook's install stopped a Run All with ModuleNotFoundError (review)."""
    monkeypatch.delenv("LABUTILS_PLAIN_PROGRESS", raising=False)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets raises ImportError
    assert lab.playground({"tiny": tiny_subject()}) is None
    said = capsys.readouterr().out
    assert said.count("\n") == 1 and said.startswith("pruning playground skipped: ipywidgets is not installed")
    assert "pip install ipywidgets" in said and "set PLAYGROUND = False" in said


def test_unknown_scope_is_refused(pg):
    with pytest.raises(ValueError, match="scope"):
        pg.update("cnn", "magnitude", "2:4", 0.5)


def test_no_frontier_when_not_even_the_dense_model_meets_the_threshold(subjects, monkeypatch, tmp_path):
    """The frontier is the highest sparsity meeting the threshold: with none meeting it, the dense
    start included, there is none to report (it was reported as 0% at the baseline's accuracy)."""
    s = Session("smoke", tmp_path, device="cpu")
    monkeypatch.setattr(lab, "frontier_threshold", lambda session, subject: (1.01, "above any accuracy"))
    result = lab.frontier(s, subjects["cnn"])
    assert result["trials"] and not any(t["passed"] for t in result["trials"])
    assert result["frontier_sparsity"] is None and result["frontier_accuracy"] is None
    lab.plot_frontier({"cnn": result})  # draws the trials and the threshold, no frontier line


def test_the_sweeps_criteria_are_scored_on_the_same_batches_whatever_the_process(subjects, monkeypatch):
    """The criteria were scored in the order of a set of strings, which changes with each Python
    process (hash seed), on batches that followed one another: a restarted kernel drew other
    Taylor and Fisher curves (swapped, in smoke size)."""
    import dataclasses

    subject = dataclasses.replace(subjects["cnn"], results={})
    subject.cfg = {**subject.cfg, "criteria": ["magnitude", "taylor", "fisher"], "sweep_levels": [0.5]}
    seen, real = [], lab.compute_scores

    def spy(criterion, model, params, loader, batches):
        seen.append((criterion, loader.generator.get_state().clone()))
        return real(criterion, model, params, loader, batches)

    monkeypatch.setattr(lab, "compute_scores", spy)
    lab.sweep(subject)
    assert [c for c, _ in seen] == ["magnitude", "taylor", "fisher"]  # the profile's order, every time
    assert all(torch.equal(state, seen[0][1]) for _, state in seen)  # each from the same batches


def test_the_frontier_records_the_nearest_failure(subjects, monkeypatch, tmp_path):
    """Its "first_failure" held whichever failure came last; the bound a reader wants is the lowest
    sparsity that failed, where the frontier ends."""
    import dataclasses

    subject = dataclasses.replace(subjects["cnn"], results={})
    subject.cfg = {**subject.cfg, "frontier": {**subject.cfg["frontier"], "refine": 2, "max_trials": 8}}

    def sparsity(model):
        params = subject.params(model)
        return sum(int((p == 0).sum()) for p in params.values()) / sum(p.numel() for p in params.values())

    monkeypatch.setattr(lab, "frontier_threshold", lambda session, subj: (0.85, "test"))
    monkeypatch.setattr(lab, "finetune_masked", lambda *args, **kwargs: None)
    monkeypatch.setattr(lab, "evaluate", lambda model, loader: {"accuracy": 0.9 if sparsity(model) <= 0.925 else 0.8})
    result = lab.frontier(Session("smoke", tmp_path, device="cpu"), subject)
    failures = [t["sparsity"] for t in result["trials"] if not t["passed"]]
    assert len(failures) >= 2 and result["nearest_failure"] == min(failures) > result["frontier_sparsity"]
    assert result["cut_short"] is False and result["at_ceiling"] is False  # a failure bounds it: no "at least"


def test_rerunning_the_cell_frees_the_previous_playground(monkeypatch, capsys):
    """ipywidgets keeps every widget until it is closed, and with it (through the controls'
    callback) each earlier playground, its model copies and cached scores."""
    monkeypatch.delenv("LABUTILS_PLAIN_PROGRESS", raising=False)
    subjects = {"tiny": tiny_subject()}
    first = lab.playground(subjects)
    refs = [weakref.ref(first), weakref.ref(first.live("tiny").model)]
    del first
    second = lab.playground(subjects)  # the cell run again
    gc.collect()
    assert all(ref() is None for ref in refs)
    other = lab.playground({"other": tiny_subject()})  # another model, in a cell of its own
    assert second.box.comm is not None, "showing other models closed this one"
    second.close()
    assert P._shown[("tiny",)] is second and not second._live and all(w.comm is None for w in second.box.children)
    other.close()


def test_a_failed_update_says_so_and_leaves_no_old_result_or_figure(monkeypatch):
    """An update that failed (say, out of memory) left the previous result's line and figure
    under the new settings."""
    import IPython.display
    import matplotlib.pyplot as plt

    figures, events = plt.get_fignums(), []

    def display(obj):
        if events:
            raise RuntimeError("no frontend")

    monkeypatch.setattr(IPython.display, "display", display)
    pg = Playground({"tiny": tiny_subject()}, probe_images=32)
    pg.widget()
    live = pg.live("tiny")
    monkeypatch.setattr(pg.output, "clear_output", lambda **kwargs: events.append("cleared"))

    def out_of_memory(*args):
        events.append(pg.label.value)
        raise RuntimeError("out of memory\nTried to allocate 2 GiB")

    with monkeypatch.context() as m:
        m.setattr(P, "sparsity_report", out_of_memory)  # fails after pruning: the weights must come back
        with pytest.raises(RuntimeError, match="out of memory"):  # outside a kernel the Output re-raises
            pg.controls["sparsity"].value = 0.9
    assert events == ["cleared", "updating tiny · magnitude · global · 90%…"]
    assert pg.label.value == ("update failed (RuntimeError: out of memory); dense weights restored"
                              " — change a control to retry")
    assert all(torch.equal(p, live.dense[n]) for n, p in live.params.items())
    with pytest.raises(RuntimeError, match="no frontend"):  # now drawing fails
        pg.controls["sparsity"].value = 0.8
    assert pg.label.value.startswith("update failed (RuntimeError: no frontend)")
    assert plt.get_fignums() == figures  # the figure was closed all the same
    pg.close()


def test_in_a_kernel_a_failed_update_leaves_its_failure_in_the_label(monkeypatch):
    """In a kernel the Output widget shows an error and swallows it: the line after it ran, and
    wrote a success line over the failure (or failed itself on the first update)."""
    import IPython.display
    from IPython.core.interactiveshell import InteractiveShell

    assert not InteractiveShell.initialized()
    monkeypatch.setattr(IPython.display, "display", lambda obj: None)
    monkeypatch.setattr(InteractiveShell.instance(), "showtraceback", lambda *args, **kwargs: None)
    try:
        pg = Playground({"tiny": tiny_subject()}, probe_images=32)
        with monkeypatch.context() as m:
            m.setattr(P, "sparsity_report", lambda *args: (_ for _ in ()).throw(RuntimeError("out of memory")))
            pg.widget()  # the first update fails: the cell still shows the widget
        assert pg.label.value.startswith("update failed (RuntimeError: out of memory)")
        monkeypatch.setattr(pg, "figure", lambda r: (_ for _ in ()).throw(RuntimeError("drawing failed")))
        pg.controls["sparsity"].value = 0.8
        assert pg.label.value.startswith("update failed (RuntimeError: drawing failed)")
        pg.close()
    finally:
        InteractiveShell.clear_instance()  # the other tests run outside a kernel


def test_the_playground_takes_only_the_dict_of_subjects(subjects):
    for wrong, got in [(subjects["cnn"], "got Subject"), (subjects["cnn"].model, "got ResNet"),
                       (["cnn"], "got list"), ({"cnn": subjects["cnn"].model}, "got a dict of ResNet")]:
        with pytest.raises(TypeError, match=f"{got}.*lab.playground\\(subjects\\)"):
            lab.playground(wrong)
        with pytest.raises(TypeError, match="lab.load_subjects"):
            Playground(wrong)


def test_an_unknown_model_or_one_without_prunable_weights_is_refused(pg):
    with pytest.raises(ValueError, match=r"no model 'vit' in this playground; it has \['cnn', 'vit_scratch'\]"):
        pg.update("vit")
    linear = Playground({"linear": tiny_subject("linear", nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)))})
    with pytest.raises(ValueError, match="linear has no prunable weights .*include_first / include_classifier"):
        linear.update("linear")


def test_the_histogram_counts_the_weights_already_zero():
    """Its title counted the nonzero weights only: zeros have no bin on the log axis."""
    import matplotlib.pyplot as plt

    model = tiny_cnn()
    with torch.no_grad():
        model[2].weight[0] = 0  # 72 of the 576 + 128 prunable weights
    pg = Playground({"tiny": tiny_subject(model=model)}, probe_images=32)
    fig = pg.figure(pg.update("tiny", "magnitude", "global", 0.5))
    assert fig.axes[0].get_title() == "tiny: 704 prunable weights (72 already zero)"
    plt.close(fig)
    pg = Playground({"tiny": tiny_subject()}, probe_images=32)
    fig = pg.figure(pg.update("tiny", "magnitude", "global", 0.5))
    assert fig.axes[0].get_title() == "tiny: 704 prunable weights"
    plt.close(fig)
