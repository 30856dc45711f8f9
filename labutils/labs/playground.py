"""Notebook 03's live pruning playground: one-shot pruning without fine-tuning, redrawn as the
student moves the controls (model, criterion, scope, sparsity). ``unstructured.playground`` shows it;
:class:`Playground` holds the logic, usable and tested without a browser."""
from __future__ import annotations

import copy
import importlib.util
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from .unstructured import Subject, layer_bars
from ..artifacts import REPO_ROOT
from ..data import DeviceLoader
from ..plots import BAD_COLOR, COLORS
from ..prune.criteria import CRITERIA, compute_scores
from ..prune.masks import sparsity_report
from ..prune.schedules import one_shot_prune
from ..train import evaluate, plain_progress

SCOPES = ("global", "layer")


@dataclass
class _Live:
    """One model in the playground: a private copy, its dense prunable weights, the probe slice."""

    model: nn.Module
    params: dict[str, nn.Parameter]
    dense: dict[str, torch.Tensor]
    probe: DeviceLoader
    dense_accuracy: float
    bins: tuple | None = None  # (log-spaced |w| edges, bin of each weight or -1 for a zero)

    @torch.no_grad()
    def restore(self) -> None:
        for n, p in self.params.items():
            p.copy_(self.dense[n])


def _weight_bins(dense: dict[str, torch.Tensor], count: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Log-spaced |w| bins over all prunable weights, and each weight's bin (-1 for exact zeros),
    computed once per model so an update only counts the removed weights."""
    w = torch.cat([t.detach().abs().flatten().float().cpu() for t in dense.values()]).numpy()
    nonzero = w[w > 0]
    # From the 0.1% quantile: the few tiniest weights would stretch the axis; they go in bin 0.
    edges = np.logspace(np.log10(np.quantile(nonzero, 0.001)), np.log10(nonzero.max()), count + 1)
    bins = np.clip(np.searchsorted(edges, w, side="right") - 1, 0, count - 1)
    return edges, np.where(w > 0, bins, -1)


def _check_subjects(subjects) -> None:
    """TypeError unless ``subjects`` is a dict of name -> Subject (anything else failed deep inside)."""
    if isinstance(subjects, Mapping) and all(isinstance(v, Subject) for v in subjects.values()):
        return
    got = (f"a dict of {', '.join(sorted({type(v).__name__ for v in subjects.values()}))}"
           if isinstance(subjects, Mapping) else type(subjects).__name__)
    raise TypeError(f"the playground takes the dict from lab.load_subjects, got {got}: pass that dict, "
                    "e.g. lab.playground(subjects) or lab.playground({'cnn': subjects['cnn']})")


class Playground:
    """Live one-shot pruning without fine-tuning: the logic behind :func:`playground`, usable (and
    tested) without a browser.

    Each model is copied once. An update prunes the copy with the workbook's masks
    (``one_shot_prune`` on cached scores), counts sparsity from its zeros, scores it on a fixed
    class-balanced slice of the probe (``probe_images``) and copies the dense weights back, so
    updates never drift. Data-aware scores are computed once per model and criterion on the dense
    weights, with a private copy of the training loader: the notebook's other cells see the same
    batches whether the playground ran or not.
    """

    def __init__(self, subjects: dict[str, Subject], probe_images: int = 256):
        _check_subjects(subjects)
        self.subjects, self.probe_images = subjects, probe_images
        self._live: dict[str, _Live] = {}
        self._scores: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
        self.controls: dict = {}
        self.label = self.output = self.box = None

    def live(self, name: str) -> _Live:
        if name not in self._live:
            if name not in self.subjects:
                raise ValueError(f"no model {name!r} in this playground; it has {list(self.subjects)}")
            subj = self.subjects[name]
            if not subj.params(subj.model):
                raise ValueError(f"{name} has no prunable weights (the first conv and the classifier stay dense "
                                 "unless the profile's include_first / include_classifier)")
            model = copy.deepcopy(subj.model)
            params = subj.params(model)
            probe = subj.probe_slice(self.probe_images)
            self._live[name] = _Live(model, params, {n: p.detach().clone() for n, p in params.items()},
                                     probe, evaluate(model, probe)["accuracy"])
        return self._live[name]

    def scores(self, name: str, criterion: str) -> dict[str, torch.Tensor]:
        if (name, criterion) not in self._scores:
            live, subj = self.live(name), self.subjects[name]
            loader = copy.copy(subj.train)  # the same images, its own crops and order
            loader.generator = torch.Generator(device=loader.device).manual_seed(subj.seed)
            self._scores[name, criterion] = compute_scores(criterion, live.model, live.params, loader,
                                                           subj.cfg["score_batches"])
        return self._scores[name, criterion]

    def update(self, name: str, criterion: str = "magnitude", scope: str = "global",
               sparsity: float = 0.5) -> dict:
        """Prune ``name`` to ``sparsity`` and measure it; the dense weights are back afterwards.

        Returns accuracy, loss and dense_accuracy (on the probe slice of ``images``), measured_sparsity
        (from the zeros), layers {layer: sparsity}, thresholds {layer: highest removed score},
        threshold (the one global cut; None in the layer scope or when nothing goes), the masks
        and the seconds the update took (the first one per model and criterion includes scoring).
        """
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}; the playground offers {SCOPES}")
        start = time.perf_counter()
        live, scores = self.live(name), self.scores(name, criterion)
        try:
            masks = one_shot_prune(live.model, sparsity, scope, scores, live.params)
            report = sparsity_report(live.model, live.params, masks)
            measured = evaluate(live.model, live.probe)
        finally:
            live.restore()
        thresholds = {n: float(scores[n][~m].max()) for n, m in masks.items() if not m.all()}
        return {"model": name, "criterion": criterion, "scope": scope, "sparsity": sparsity,
                "accuracy": measured["accuracy"], "loss": measured["loss"], "dense_accuracy": live.dense_accuracy,
                "images": len(live.probe.labels),
                "measured_sparsity": report["pruning_percentage"] / 100,
                "layers": {n: v["sparsity"] for n, v in report["layers"].items()},
                "threshold": max(thresholds.values()) if scope == "global" and thresholds else None,
                "thresholds": thresholds, "masks": masks, "seconds": time.perf_counter() - start}

    @staticmethod
    def describe(r: dict) -> str:
        return (f"probe accuracy {r['accuracy']:.1%} at {r['measured_sparsity']:.1%} sparsity (counted from zeros)"
                f" · dense {r['dense_accuracy']:.1%} · {r['images']} probe images · {r['seconds']:.2f} s")

    def figure(self, r: dict):
        """|w| of the prunable weights (removed ones stacked in red, hatched) with the magnitude threshold(s),
        and the per-layer sparsity."""
        live = self.live(r["model"])
        live.bins = live.bins or _weight_bins(live.dense)
        edges, bins = live.bins
        removed = torch.cat([~m.flatten() for m in r["masks"].values()]).cpu().numpy()
        total = np.bincount(bins[bins >= 0], minlength=len(edges) - 1)  # exact zeros have no place on a log axis
        zeros = int((bins < 0).sum())
        cut = np.bincount(bins[(bins >= 0) & removed], minlength=len(edges) - 1)
        fig, (hist, bars) = plt.subplots(1, 2, figsize=(13, 3.6), gridspec_kw={"width_ratios": [1, 2]})
        hist.stairs(total - cut, edges, fill=True, color=COLORS[0], label="kept")
        # Hatched as well as red: kept and removed are told apart without colour too.
        hist.stairs(total, edges, baseline=total - cut, fill=True, color=BAD_COLOR, alpha=0.8, hatch="////",
                    edgecolor="white", label="removed")
        if r["criterion"] != "magnitude":
            hist.plot([], [], " ", label=f"{r['criterion']} cuts its own score, not |w|")
        elif r["threshold"] is not None:
            hist.axvline(r["threshold"], color="k", lw=1, label=f"global threshold {r['threshold']:.2g}")
        elif r["thresholds"]:
            cuts = list(r["thresholds"].values())
            for i, t in enumerate(cuts):
                hist.axvline(t, color="k", lw=0.7, alpha=0.4,
                             label=None if i else f"{len(cuts)} per-layer thresholds, {min(cuts):.2g} to {max(cuts):.2g}")
        already = f" ({zeros:,} already zero)" if zeros else ""
        hist.set(xscale="log", xlabel="|w| (log scale)", ylabel="weights",
                 title=f"{r['model']}: {len(bins):,} prunable weights{already}")
        hist.legend(fontsize=7, loc="upper left")
        layer_bars({f"{r['scope']} {r['criterion']}, {r['measured_sparsity']:.1%} overall": r["layers"]},
                   title=f"{r['model']}: per-layer sparsity", ax=bars)
        # Fixed margins (room for the rotated layer names): tight_layout would double the drawing time.
        fig.subplots_adjust(left=0.07, right=0.99, top=0.9, bottom=0.3, wspace=0.14)
        return fig

    def widget(self):
        """The controls, the accuracy line and the figures, wired to :meth:`update`."""
        import ipywidgets as W
        from IPython.display import display

        self.controls = {
            "model": W.Dropdown(options=list(self.subjects), description="model"),
            "criterion": W.ToggleButtons(options=list(CRITERIA), description="criterion"),
            "scope": W.ToggleButtons(options=list(SCOPES), description="scope"),
            # Released, not dragged: one update per move instead of a queue of them.
            "sparsity": W.FloatSlider(value=0.5, min=0.0, max=0.99, step=0.01, description="sparsity",
                                      continuous_update=False, readout_format=".0%"),
        }
        self.label, self.output = W.Label(), W.Output()

        def show(*_):
            c = {k: w.value for k, w in self.controls.items()}
            self.label.value = f"updating {c['model']} · {c['criterion']} · {c['scope']} · {c['sparsity']:.0%}…"
            # The next output replaces the old figure, a failure's traceback included.
            self.output.clear_output(wait=True)
            with self.output:  # an error shows here, not in a log the student never opens
                try:
                    r = self.update(c["model"], c["criterion"], c["scope"], c["sparsity"])
                    fig = self.figure(r)
                    try:
                        display(fig)
                    finally:
                        plt.close(fig)  # drawn once into the output; pyplot keeps nothing
                    self.label.value = self.describe(r)
                except Exception as e:
                    why = f"{type(e).__name__}: {e}".splitlines()[0]
                    self.label.value = f"update failed ({why}); dense weights restored — change a control to retry"
                    raise  # in a kernel the Output shows the traceback and swallows it

        for w in self.controls.values():
            w.observe(show, names="value")
        show()
        self.box = W.VBox([*self.controls.values(), self.label, self.output])
        return self.box

    def close(self) -> None:
        """Close the widgets and drop the model copies and scores: ipywidgets keeps a widget, and
        through its callbacks this playground, until it is closed."""
        if self.box is not None:
            for w in self.box.children:
                w.close()
            self.box.close()
        self._live.clear()
        self._scores.clear()


# The playground shown for each set of models: showing the same models again (a re-run of the
# cell) closes the earlier one, while one per model in cells of their own stay open.
_shown: dict[tuple[str, ...], Playground] = {}


NOTEBOOK = "03_unstructured_pruning.ipynb"


def _executed_copy() -> str:
    """The notebook as it lies in the run's folder, relative to the repository where it is inside:
    the pipeline runs it in ``<run>/notebooks/``, and that copy carries the run's PROFILE and OUT_DIR,
    where the workbook's own (its defaults) names no run, or another. The workbook's own elsewhere."""
    here = Path.cwd()
    if here.name != "notebooks" or not (here.parent / "metrics" / "run.json").is_file():
        return f"notebooks/{NOTEBOOK}"
    path = here.resolve() / NOTEBOOK
    # Named from the repository, or from the run's folder: an executed notebook names no folder
    # of the machine that ran it (the README's promise, which a test checks).
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else f"notebooks/{NOTEBOOK} of the run's folder"


def show(subjects: dict[str, Subject], probe_images: int = 256) -> Playground | None:
    """The playground's widget shown in the notebook (``unstructured.playground``); under papermill
    one line instead: widgets need a live kernel."""
    _check_subjects(subjects)
    if (earlier := _shown.pop(tuple(subjects), None)) is not None:
        earlier.close()
    if plain_progress():
        # Names the setup cells too: this cell alone, in a fresh kernel, fails on the undefined `lab`.
        print(f"the pruning playground runs only interactively: open this notebook in JupyterLab "
              f"(jupyter lab {_executed_copy()}) or Colab, run its cells from the top through the one that "
              f"loads the subjects (lab.load_subjects), then this one (the sensitivity and sweep cells can be skipped)")
        return None
    if not subjects:
        print("pruning playground skipped: no baseline to prune (run notebook 02 first)")
        return None
    if importlib.util.find_spec("ipywidgets") is None:  # a kernel not from the workbook's install: Run All goes on
        print("pruning playground skipped: ipywidgets is not installed in this kernel "
              "(pip install ipywidgets, then restart the kernel), or set PLAYGROUND = False")
        return None
    from IPython.display import display

    _shown[tuple(subjects)] = playground = Playground(subjects, probe_images)
    display(playground.widget())
    return playground
