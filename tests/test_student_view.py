"""Details a student sees in the notebooks: the data named once it exists, charts that say what
they draw, whole-epoch ticks, notebooks saved as JupyterLab saves them."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from figure_check import assert_series_apart
from labutils import Session
from labutils.errors import SettingsError
from labutils.data import DeviceLoader
from labutils.labs import baseline as B
from labutils.labs import unstructured as U

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_session_shown_before_its_data_names_the_data_once_prepared(tmp_path):
    s = Session("smoke", tmp_path)
    before = repr(s)  # notebook 01 shows the session before prepare_data writes the data
    assert "not prepared yet" in before and "unknown" not in before
    # Never in a record: records written before and after the data was prepared named two runs of one id.
    assert s.record_missing("cnn", "before_pruning", "x")["run"]["data"] == "synthetic CIFAR-shaped data"
    s.prepare_data()
    assert s.data_description == "synthetic CIFAR-shaped data"
    assert "synthetic CIFAR-shaped data" in s.caption() and "not prepared" not in s.caption()


def test_layer_sparsity_chart_draws_the_level_it_names():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 16, 3), nn.Conv2d(16, 16, 3), nn.Flatten(),
                          nn.LazyLinear(10))
    model(torch.zeros(1, 3, 32, 32))
    x = np.zeros((8, 3, 32, 32), dtype=np.uint8)
    loader = DeviceLoader(x, np.zeros(8, dtype=np.int64), 4, False)
    cfg = {"include_first": False, "include_classifier": False}
    subject = U.Subject("cnn", model, loader, loader, loader, 0.5, cfg)
    subject.results["sweep"] = {"sparsities": [0.5, 0.9]}  # the sweep's levels do not matter
    level, data = U.layer_bars_data({"cnn": subject}, 0.8)
    assert level == 0.8 and set(data["cnn"]) == {"global magnitude", "layer magnitude"}
    sizes = {n: p.numel() for n, p in subject.params(model).items()}
    for curve, layers in data["cnn"].items():
        overall = sum(layers[n] * sizes[n] for n in sizes) / sum(sizes.values())
        assert overall == pytest.approx(0.8, abs=1e-3), curve
    assert all(v == pytest.approx(0.8, abs=0.01) for v in data["cnn"]["layer magnitude"].values())
    fig = U.plot_layer_sparsity(data, level)
    assert fig.axes[0].get_title() == "cnn: per-layer sparsity at 80% overall"
    assert assert_series_apart(fig) == 2  # hatched as well as coloured
    assert all(bool((p != 0).all()) for p in subject.params(subject.model).values())  # the dense model untouched


def test_study_figure_tells_any_number_of_budgets_apart_and_lists_every_panels():
    """STUDY_EPOCHS = [1, 3, 5] drew the two smaller budgets alike (open markers), and the shared
    legend listed only the first panel's budgets (review of the figure change)."""
    def rows(budgets):
        return [{"method": m, "epochs": e, "sparsity": s, "accuracy": 0.5, "ci95": (0.45, 0.55)}
                for m in ("one_shot", "iterative", "gradual") for e in budgets for s in (0.5, 0.9)]

    fig = U.plot_study({"cnn": rows([1, 3, 5]), "vit_scratch": rows([2])}, {"cnn": 0.6, "vit_scratch": 0.6})
    labels = fig.axes[-1].get_legend().get_texts()
    assert [t.get_text() for t in labels] == ["dense", "one-shot", "iterative", "gradual", "fine-tuned 1 epoch",
                                              "fine-tuned 2 epochs", "fine-tuned 3 epochs", "fine-tuned 5 epochs"]
    assert assert_series_apart(fig) >= 9 + 3


def test_the_sensitivity_map_says_the_probe_it_was_scored_on():
    """Its titles gave a 'dense' accuracy that was the probe's, not the baseline's (student's reading)."""
    scan = {"sparsities": [0.5, 0.9], "baseline": 0.618, "sizes": {"a": 10}, "layers": {"a": [0.6, 0.3]}, "images": 400}
    fig = U.plot_sensitivity({"cnn": scan, "vit_scratch": scan})
    assert fig.axes[0].get_title() == "cnn: each layer pruned alone\n(dense 61.8% on 400 probe images)"
    # On one line the two panels' titles ran into each other and the second off the figure (cpu run).
    fig.canvas.draw()
    boxes = [ax.title.get_window_extent() for ax in fig.axes[:2]]
    assert boxes[0].x1 < boxes[1].x0 and boxes[1].x1 <= fig.bbox.x1


def test_the_class_counts_tell_train_from_test_without_colour():
    """Plain bars in matplotlib's default blue and orange: the README says every figure reads in grey."""
    from labutils.labs import data as lab

    labels = np.repeat(np.arange(10), 5)
    fig = lab.plot_class_counts(labels, labels[:20], [f"class {i}" for i in range(10)])
    assert assert_series_apart(fig) == 2


def test_the_study_ends_with_a_table_a_reader_can_scan():
    """57 printed lines and a verdict that pointed at 'the table', which did not exist (a student's
    reading of the cpu run)."""
    rows = [{"method": m, "epochs": e, "sparsity": s, "accuracy": a}
            for (m, e, s, a) in (("one_shot", 3, 0.5, 0.632), ("one_shot", 3, 0.9, 0.264), ("gradual", 3, 0.5, 0.606))]
    lines = U.study_table(rows).splitlines()
    assert lines[1].split() == ["50%", "90%"]
    assert lines[2].split() == ["one-shot,", "3", "ep", "63.2", "26.4"]
    assert lines[3].split() == ["gradual,", "3", "ep", "60.6", "-"]


def test_learning_curves_tick_whole_epochs_and_tell_models_apart_without_colour():
    history = [{"epoch": e, "train_loss": 2.0 / e, "test_accuracy": 0.1 * e} for e in (1, 2)]
    fig = B.plot_learning_curves({"cnn": history, "vit": history[:1], "vit_scratch": history})
    assert assert_series_apart(fig) == 6  # three models, two panels: not by colour alone
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if 1 <= t <= 2]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_learning_curves_take_notebook_02s_records_as_they_are(capsys):
    """Notebook 02's cell built {name: history} of the produced records itself (logic in a cell):
    the records go in whole now, the models not produced left out; an epochs dict still works."""
    history = [{"epoch": e, "train_loss": 2.0 / e, "test_accuracy": 0.1 * e} for e in (1, 2)]
    records = {"cnn": {"produced": True, "history": history},
               "vit": {"produced": False, "reason": "no VIT_WEIGHTS"},
               "vit_scratch": {"produced": True, "history": history[:1]}}
    labels = [t.get_text() for t in B.plot_learning_curves(records).axes[0].get_legend().get_texts()]
    assert labels == ["cnn", "vit_scratch"]
    assert B.plot_learning_curves({"vit": records["vit"]}) is None
    assert capsys.readouterr().out.startswith("no figure: no model was trained in this run")
    assert B.plot_learning_curves({"cnn": {"history": history}}) is not None  # a record that says nothing of it ran


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_carry_the_metadata_jupyterlab_writes(path):
    """Without it JupyterLab adds it when a kernel starts and marks the notebook modified."""
    meta = json.loads(path.read_text())["metadata"]
    assert meta["kernelspec"] == {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    info = meta["language_info"]
    assert info["codemirror_mode"] == {"name": "ipython", "version": 3}
    assert {k: info[k] for k in ("file_extension", "mimetype", "name", "nbconvert_exporter", "pygments_lexer")} == {
        "file_extension": ".py", "mimetype": "text/x-python", "name": "python",
        "nbconvert_exporter": "python", "pygments_lexer": "ipython3"}
    assert info["version"].startswith("3.")


def test_sensitivity_scan_reads_a_class_balanced_slice_of_the_probe(monkeypatch):
    """The probe is ordered by image index: its first images were not balanced (a cpu run's first
    400 held 35 to 47 of a class), unlike every other slice the notebook scores on."""
    labels = np.repeat(np.arange(10), 20)  # sorted by class: the first 40 are two classes
    loader = DeviceLoader(np.zeros((200, 3, 32, 32), dtype=np.uint8), labels, 50, False)
    cfg = {"include_first": False, "include_classifier": False, "sensitivity_images": 40,
           "sensitivity_levels": [0.5]}
    seen = {}
    monkeypatch.setattr(U, "sensitivity_scan", lambda model, params, probe, levels: seen.setdefault("probe", probe))
    U.sensitivity(U.Subject("cnn", nn.Sequential(nn.Flatten(), nn.Linear(3072, 10)), loader, loader, loader, 0.5, cfg))
    assert np.bincount(seen["probe"].labels.numpy(), minlength=10).tolist() == [4] * 10


def test_final_recipe_after_a_restart_says_what_stands_in_and_keeps_the_runs_analyses(tmp_path, capsys):
    """Run after a kernel restart, without the study's cell, the final recipe silently fell back
    from the study's winner to gradual, and its record dropped the study, sweep, sensitivity and
    frontier notebook 03 had recorded for this baseline (interactive review)."""
    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    cfg = dict(U.settings(s), final_method="best")
    train, test = s.loaders("cnn", 64)

    def subject():
        return U.Subject("cnn", s.new_model("cnn"), train, test, test, 0.5, cfg, s.seed)

    first = subject()
    first.results["study"] = [{"method": "one_shot", "sparsity": 0.5, "epochs": 1, "accuracy": 0.2}]
    U.final_recipe(first)
    first.results["frontier"] = {"frontier_sparsity": 0.9}  # searched from this final model
    U.save_final(s, first)
    assert "no study in this kernel" not in capsys.readouterr().out
    again = subject()  # a new kernel: nothing in results
    assert U.final_recipe(again)["method"] == "gradual"
    U.save_final(s, again)
    out = capsys.readouterr().out
    assert "no study in this kernel, so no winner to take: pruning with gradual" in out
    assert "kept from this run's earlier record: study (not run in this kernel)" in out
    assert "not kept from this run's earlier record: frontier (searched from an earlier final model)" in out
    record = s.metrics("cnn", U.STAGE)
    assert record["recipe"]["method"] == "gradual" and record["study"] == first.results["study"]
    assert "frontier" not in record


def test_training_prints_the_training_accuracy_beside_the_test_accuracy(tmp_path, capsys):
    """Notebook 02's exercise compares them, but in JupyterLab only the test accuracy was shown
    (the training accuracy went to papermill's per-epoch lines alone) (interactive review)."""
    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    history = B.try_recipe(s, "cnn", epochs=1, mixup=0.0)
    assert f"(augmented training batches, last epoch: {history[-1]['train_accuracy']:.2%})" in capsys.readouterr().out
    B.try_recipe(s, "cnn", epochs=1, mixup=0.8)
    assert "(no training accuracy: Mixup/CutMix mixes the targets)" in capsys.readouterr().out


@pytest.mark.parametrize("changes, said", [
    ({"epochs": 0}, "epochs=0 must be a whole number >= 1"),  # was IndexError at history[-1]
    ({"epochs": 0.5}, "epochs=0.5 must be a whole number >= 1"),  # was a TypeError inside fit
    ({"cutout": 0.5}, "cutout=0.5 must be a whole number from 0 to 32"),  # was accepted
    ({"weight_decay": 5}, "weight_decay=5 must be a number in [0, 1)"),
    # fit's ValueError, named no image count (review)
    ({"batch_size": 5000}, "batch_size=5000 is more than the profile's 1,000 training images")])
def test_try_recipe_checks_its_values_as_a_profile_is_checked(tmp_path, changes, said):

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    with pytest.raises(SettingsError, match=re.escape(f"try_recipe: {said}")):
        B.try_recipe(s, "cnn", **changes)


def test_try_recipe_counts_the_full_profiles_training_images(tmp_path):
    """The full profile's n_train is None (the whole split): the batch_size check was skipped (review)."""
    s = Session("full", tmp_path, device="cpu", models=["cnn"])
    with pytest.raises(SettingsError, match="batch_size=60000 is more than the profile's 50,000 training images"):
        B.try_recipe(s, "cnn", batch_size=60000)


def test_notebook_03_cells_run_out_of_order_say_what_to_run_first(tmp_path):
    """The study's chart read the sweep's baseline (KeyError: 'sweep' after the whole study had
    run), and the cell after the final recipe failed with KeyError: 'final' (interactive review)."""

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    train, test = s.loaders("cnn", 64)
    subject = U.Subject("cnn", s.new_model("cnn"), train, test, test, 0.5, U.settings(s), s.seed)
    rows = U.study(subject, [0.5], [1])
    U.plot_study({"cnn": rows}, {"cnn": subject.dense_probe_accuracy()})  # no sweep in this kernel
    with pytest.raises(SettingsError, match="no final model in this kernel yet; run the final recipe's cell"):
        U.print_layer_sparsity(subject)


def test_structured_figures_with_no_pruned_model_say_so_and_draw_nothing(capsys):
    """Notebook 04 guarded each of its four figures with its own condition; the lab now says why
    there is no figure (every baseline missing) and the cells are one call each."""
    import matplotlib.pyplot as plt

    from labutils.labs import structured as S

    results = {"cnn": {"produced": False, "reason": "baseline not produced"}}
    figures = plt.get_fignums()
    for plot in (S.plot_channels_kept, S.plot_criteria, S.plot_speed_vs_macs, S.plot_throughput):
        assert plot(results) is None
    assert capsys.readouterr().out.count("no figure: no model was pruned in this run") == 4
    assert plt.get_fignums() == figures


def test_notebook_03_with_no_baseline_draws_nothing_and_an_exercise_says_why(tmp_path, capsys):
    """Notebook 03's cells held an ``if`` each for a run without baselines; the lab's figures now
    skip themselves, and an exercise's ``subjects["cnn"]`` said only KeyError: 'cnn'."""
    import matplotlib.pyplot as plt

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    s.record_missing("cnn", "before_pruning", "diverged")  # notebook 02 ran, and produced no baseline
    subjects = U.load_subjects(s, ["cnn"])
    assert not subjects and "cnn          skipped: " in capsys.readouterr().out
    figures = plt.get_fignums()
    level, bars = U.layer_bars_data(subjects, 0.8)
    assert U.plot_layer_sparsity(bars, level) is None
    assert U.plot_study({}, U.dense_accuracies(subjects)) is None
    for plot in (U.plot_sensitivity, U.plot_accuracy_vs_sparsity, U.plot_frontier):
        assert plot({}) is None
    assert capsys.readouterr().out.count("no figure: no model to draw") == 5
    assert plt.get_fignums() == figures
    assert U.playground(subjects, enabled=False) is None
    assert "playground off (PLAYGROUND = False" in capsys.readouterr().out
    with pytest.raises(KeyError, match="^no 'cnn' subject here; its baseline was not loaded: ") as err:
        subjects["cnn"]
    assert err.value._render_traceback_()[0].startswith("NotInModels: no 'cnn'")  # words, not a traceback
    with pytest.raises(KeyError, match=r"'vit' subject here; it was not asked for \(loaded from \['cnn'\]\)"):
        subjects["vit"]
    with pytest.raises(KeyError, match="the course's models are cnn, vit, vit_scratch"):
        subjects["resnet"]
    with pytest.raises(SettingsError, match="PLAYGROUND = 'yes': use True or False"):
        U.playground(subjects, enabled="yes")


def test_loading_a_model_the_run_recorded_as_not_produced_gives_its_reason(tmp_path):
    """Notebook 04's exercise, s.load("vit", "before_pruning") with no pretrained weights, said
    "no checkpoint at ...; run the notebook that writes it first", and notebook 02 again would not help."""
    from labutils.checkpoint import CheckpointError

    s = Session("smoke", tmp_path, device="cpu", models=["cnn", "vit"])
    s.record_missing("vit", "before_pruning", "no pretrained ViT-Tiny weights: set VIT_WEIGHTS in notebook 02")
    said = (r"^vit_before_pruning: this run \(.+\) recorded it as not produced: no pretrained ViT-Tiny weights: "
            r"set VIT_WEIGHTS in notebook 02 \(its record vit_before_pruning.json\)$")
    with pytest.raises(CheckpointError, match=said):
        s.load("vit", "before_pruning")
    with pytest.raises(FileNotFoundError, match="run the notebook that writes it first"):  # no record: not run yet
        s.load("cnn", "before_pruning")


def test_loading_a_recorded_model_whose_checkpoint_was_deleted_names_the_notebook_to_run_again(tmp_path):
    """Notebook 03's frontier after a kernel restart, its saved model deleted: "run the notebook that
    writes it first" sent the student, already in that notebook, off to look for another one."""
    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    s.save(s.new_model("cnn"), "cnn", "after_unstructured_pruning", {"accuracy": 0.1})
    s.dirs.checkpoint("cnn", "after_unstructured_pruning").unlink()
    said = (r"^no checkpoint at .+cnn_after_unstructured_pruning\.pth, though this run's record "
            r"cnn_after_unstructured_pruning\.json names it \(deleted\?\): run notebook 03 of this run again$")
    with pytest.raises(FileNotFoundError, match=said):
        s.load("cnn", "after_unstructured_pruning")


def test_the_smoke_profile_scores_taylor_and_fisher_so_they_rank_weights_apart():
    """On one batch 0.5*mean(g^2)*w^2 is 0.5*|w*g|^2: the same ranking as Taylor, and notebook 03's
    smoke figure drew "global taylor" exactly under "global fisher" (identical accuracies)."""
    from labutils.prune import masks_from_scores, prunable_parameters
    from labutils.prune.criteria import compute_scores
    from labutils.profiles import get_profile
    from labutils.train import seed_everything
    from tiny import tiny_cnn, tiny_loaders

    batches = get_profile("smoke")["unstructured"]["score_batches"]
    model, (train, _) = tiny_cnn(), tiny_loaders()
    assert len(train) >= batches  # every batch it asks for is there (smoke's own loaders: 15 or more)
    params, masks = prunable_parameters(model), {}
    for c in ("taylor", "fisher"):
        seed_everything(0, train)  # both on the same batches, as notebook 03 scores them (Subject.reseed)
        masks[c] = masks_from_scores(compute_scores(c, model, params, train, batches), 0.5, "global")
    differ = sum(int((masks["taylor"][n] != masks["fisher"][n]).sum()) for n in params)
    assert differ > 0, f"taylor and fisher prune the same weights on {batches} scoring batch(es)"


def test_learning_curves_tell_try_recipe_histories_apart_without_colour():
    """Every name that is not a course model was drawn grey, "x", solid: two try_recipe runs of
    notebook 02's exercises looked the same (review)."""
    history = [{"epoch": e, "train_loss": 2.0 / e, "test_accuracy": 0.1 * e} for e in (1, 2)]
    fig = B.plot_learning_curves({"cnn": history, "cnn, 12 epochs": history, "cnn, cutout 16": history})
    assert assert_series_apart(fig) == 6
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert lines["cnn"].get_marker() == "o"  # a course model keeps its own look
