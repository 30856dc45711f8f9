"""Notebook 03 end to end in the smoke profile, continuing the shared 01-02 smoke run."""
import pytest

from figure_check import assert_series_apart, assert_within_figure
from labutils.artifacts import read_json
from labutils.checkpoint import load_checkpoint
from labutils.models import count_parameters
from labutils.pipeline import run_pipeline


@pytest.fixture(scope="module")
def run03(smoke_run):
    summary = run_pipeline("smoke", smoke_run, notebooks=["03"])
    assert summary["failed"] is None
    return smoke_run


@pytest.mark.parametrize("name", ["cnn", "vit_scratch"])
def test_pruned_checkpoint_and_metrics(run03, name):
    m = read_json(run03 / "metrics" / f"{name}_after_unstructured_pruning.json")
    before = read_json(run03 / "metrics" / f"{name}_before_pruning.json")
    assert m["produced"] and m["run"]["run_id"] == before["run"]["run_id"]
    assert m["pruning_percentage"] >= 70 and 0.0 <= m["accuracy"] <= 1.0
    assert m["original_accuracy"] == before["accuracy"]
    path = run03 / "models_saved" / f"{name}_after_unstructured_pruning.pth"
    model, ckpt = load_checkpoint(path)
    assert ckpt["encoding"] == "sparse" and m["reload_exact"]
    assert m["checkpoint"]["bytes"] == path.stat().st_size < m["dense_checkpoint_bytes"]
    # The recorded counts agree with the weights in the file.
    assert m["parameters"] == count_parameters(model)
    zeros = sum(int((p == 0).sum()) for p in model.parameters())
    assert m["nonzero_parameters"] == m["parameters"] - zeros
    assert m["sparsity_all_parameters"] == pytest.approx(100 * zeros / m["parameters"])
    state = dict(model.named_parameters())
    layer_zeros = {n: float((state[n] == 0).float().mean()) for n in m["layer_sparsity"]}
    assert layer_zeros == pytest.approx(m["layer_sparsity"])
    assert 0 < m["sparsity_all_parameters"] < m["pruning_percentage"]  # dense first conv, norms, head
    f = m["frontier"]
    assert 0.0 <= f["frontier_sparsity"] < 1.0 and f["trials"]
    assert all(t["passed"] == (t["accuracy"] >= f["threshold"]) for t in f["trials"])
    assert {r["method"] for r in m["study"]} == {"one_shot", "iterative", "gradual"}
    # Dense against pruned time per image, measured on this machine's CPU (no GPU: said so).
    assert set(m["latency"]) == {"cpu_batch1", "cpu_batch64", "cuda"} and m["latency"]["cuda"].startswith("not measured")
    for point in (m["latency"]["cpu_batch1"], m["latency"]["cpu_batch64"]):
        assert point["speedup"] == pytest.approx(point["dense"]["ms_per_batch"] / point["pruned"]["ms_per_batch"])
        assert point["pruned"]["ms_per_image"] > 0 and point["mac_ratio"] is None


def test_the_executed_notebook_names_no_folder_of_the_machine(run03):
    """The playground's line under the pipeline named the run's copy of the notebook by its
    absolute path (a review of 2026-12-07), which the README says an executed notebook never holds."""
    text = (run03 / "notebooks" / "03_unstructured_pruning.ipynb").read_text()
    assert str(run03) not in text and str(run03.resolve()) not in text
    assert "of the run's folder) or Colab" in text


def test_vit_recorded_as_not_produced(run03):
    m = read_json(run03 / "metrics" / "vit_after_unstructured_pruning.json")
    assert m["produced"] is False and m["reason"].startswith("baseline not produced")
    assert not (run03 / "models_saved" / "vit_after_unstructured_pruning.pth").exists()


def test_figures_written(run03):
    for fig in ("sensitivity", "accuracy_vs_sparsity", "layer_sparsity", "study", "frontier"):
        assert (run03 / "figures" / f"03_{fig}.png").stat().st_size > 10_000


def test_every_cell_keeps_its_outputs_few(run03):
    """The study and the frontier search print a line per point, not a bar or lines per fine-tune:
    no cell needs "Show more outputs", and the study's figure sits in its own cell's outputs."""
    import nbformat

    def shown(outputs):  # as JupyterLab shows them: consecutive prints to one stream form one output
        return [o for i, o in enumerate(outputs) if not (o.output_type == "stream" and i
                and outputs[i - 1].output_type == "stream" and outputs[i - 1].name == o.name)]

    book = nbformat.read(run03 / "notebooks" / "03_unstructured_pruning.ipynb", as_version=4)
    code = [c for c in book.cells if c.cell_type == "code"]
    assert max(len(shown(c.outputs)) for c in code) <= 6, [len(shown(c.outputs)) for c in code]
    study = next(c for c in code if "lab.study(" in c.source)
    assert any("image/png" in o.get("data", {}) for o in study.outputs)
    text = "".join(o.get("text", "") for o in study.outputs if o.output_type == "stream")
    # Per model: a line per point, then a table of its points (a row per method and budget) and a verdict.
    assert text.count("study: ") == 2 and text.count("accuracy (%) by sparsity:") == 2 and len(text.splitlines()) <= 60
    layers = next(c for c in code if "lab.print_layer_sparsity(" in c.source)
    text = "".join(o.get("text", "") for o in layers.outputs if o.output_type == "stream")
    m = read_json(run03 / "metrics" / "cnn_after_unstructured_pruning.json")
    printed = [line.split() for line in text.splitlines() if line.strip().split(" ")[0] in m["layer_sparsity"]]
    assert len(printed) >= len(m["layer_sparsity"])  # every pruned layer of the cnn, with its share
    assert all(row[-1].endswith("%") for row in printed) and "ms/image" in text


def test_the_frontier_search_gives_the_same_trials_when_run_again(run03):
    """Run twice in one session (a cell run again), the search started from the final model with
    the loader where the last fine-tune left it: 80%, then 87.5%, then 90% for vit_scratch."""
    from labutils import Session
    from labutils.labs import unstructured as lab

    s = Session("smoke", run03, models=["vit_scratch"])
    subject = lab.load_subjects(s, s.models)["vit_scratch"]
    lab.final_recipe(subject)
    first, again = lab.frontier(s, subject), lab.frontier(s, subject)
    assert first["trials"] and first["trials"] == again["trials"]


def test_figures_tell_series_apart_without_colour(run03):
    """The sweep's five curves, the study's methods and budgets, the frontier's passes and failures
    were told apart by colour alone, merging for colour-blind readers and in grey prints."""
    from labutils.labs import unstructured as lab

    records = {n: read_json(run03 / "metrics" / f"{n}_after_unstructured_pruning.json") for n in ("cnn", "vit_scratch")}
    sweeps = {n: r["sweep"] for n, r in records.items()}
    assert len(next(iter(sweeps.values()))["accuracy"]) >= 4
    assert assert_series_apart(lab.plot_accuracy_vs_sparsity(sweeps)) >= 8
    studies = {n: r["study"] for n, r in records.items() if r.get("study")}
    assert assert_series_apart(lab.plot_study(studies, {n: sweeps[n]["baseline"] for n in studies})) >= 6
    frontiers = {n: r["frontier"] for n, r in records.items()}
    assert assert_series_apart(lab.plot_frontier(frontiers)) >= 8


def test_the_summary_reads_this_runs_records_only(run03, tmp_path, capsys):
    """The Results cell's rows came from whatever metrics file lay in the folder, another run's too."""
    import shutil

    from labutils import Session
    from labutils.labs import unstructured as lab
    from run_copies import make_another_runs

    copy = shutil.copytree(run03, tmp_path / "run")
    s = Session("smoke", copy, start_run=False)
    rows = {r["model"]: r for r in lab.summary(s, s.models)}
    record = make_another_runs(copy / "metrics" / "cnn_after_unstructured_pruning.json")
    assert rows["cnn"]["produced"] and rows["cnn"]["accuracy"] == record["accuracy"]
    capsys.readouterr()
    rows = {r["model"]: r for r in lab.summary(s, s.models)}
    assert rows["cnn"]["produced"] is False
    assert "cnn          not produced: not pruned in this run yet: run the cells from 'The baselines'" in capsys.readouterr().out


# -- save_final, latency and a restarted kernel, on a baseline saved by hand (no smoke run needed) --
def _one_baseline(tmp_path, session=None):
    """A Session of a fresh run with an untrained cnn saved as its baseline, and its subjects."""
    from labutils import Session
    from labutils.labs import unstructured as lab

    s = session or Session("smoke", tmp_path, device="cpu", models=["cnn"])
    if session is None:
        s.save(s.new_model("cnn"), "cnn", "before_pruning", {"accuracy": 0.5})
    return s, lab.load_subjects(s, ["cnn"])


def test_notebook_03_before_02_stops_and_records_nothing(tmp_path, capsys):
    """Run before notebook 02 it recorded every model as not produced and finished, and notebook 05
    reported nine empty entries (interactive review); with some baseline recorded (the vit offline),
    a model without one is still recorded as not produced."""
    from labutils import Session
    from labutils.errors import SettingsError
    from labutils.labs import unstructured as lab

    s = Session("smoke", tmp_path, device="cpu", models=["cnn", "vit"])  # notebook 01 ran here, not 02
    with pytest.raises(SettingsError, match=rf"no baseline of this run \({s.run_id}\) for MODELS \(cnn, vit\) in "
                                            rf".*: run notebook 02 first"):
        lab.load_subjects(s, s.models)
    assert sorted(p.name for p in s.dirs.metrics.iterdir()) == ["run.json"]
    s.record_missing("vit", "before_pruning", "no pretrained weights")  # notebook 02, offline
    assert not lab.load_subjects(s, s.models) and "vit          skipped: baseline not produced: no pretrained" in (
        capsys.readouterr().out)
    assert read_json(s.dirs.metrics_file("cnn", lab.STAGE))["produced"] is False


# The study's rows as its cell records them (no per-image scores): one_shot wins at its top point.
STUDY_ROWS = [{"method": m, "sparsity": 0.9, "epochs": 1, "accuracy": a, "test_images": 64}
              for m, a in (("one_shot", 0.4), ("iterative", 0.2), ("gradual", 0.3))]


def test_a_failed_reload_check_leaves_no_record_that_reads_as_a_result(tmp_path, monkeypatch):
    """The record was written with produced True before the reload check: its failure raised, and
    notebook 05 reported the model as normal (review)."""
    from labutils.labs import unstructured as lab

    s, subjects = _one_baseline(tmp_path)
    lab.final_recipe(subjects["cnn"])
    monkeypatch.setattr(lab, "_same_bits", lambda a, b: False)
    with pytest.raises(AssertionError, match="load back identical"):
        lab.save_final(s, subjects["cnn"])
    m = s.metrics("cnn", lab.STAGE)
    assert m["produced"] is False and "did not load back identical" in m["reason"]
    assert not s.dirs.checkpoint("cnn", lab.STAGE).exists()


def test_the_recipe_says_how_its_method_was_chosen(tmp_path):
    from labutils.labs import unstructured as lab

    s, subjects = _one_baseline(tmp_path)
    subjects["cnn"].results["study"] = STUDY_ROWS
    lab.final_recipe(subjects["cnn"])
    recipe = lab.save_final(s, subjects["cnn"])["recipe"]
    assert recipe["method"] == "one_shot" and recipe["final_method"] == "best"
    assert "probe" in recipe["chosen_on"] and "test split" in recipe["chosen_on"]


def test_latency_is_added_only_to_the_record_of_the_model_it_measured(tmp_path, monkeypatch):
    """It measured, then crashed with FileNotFoundError without a saved record, or merged its numbers
    into the record of another saved model (review)."""
    from labutils.errors import SettingsError
    from labutils.labs import unstructured as lab

    monkeypatch.setattr(lab, "compare_latency", lambda *args: {"cpu_batch1": "measured"})
    s, subjects = _one_baseline(tmp_path)
    subject = subjects["cnn"]
    lab.final_recipe(subject, "one_shot")
    with pytest.raises(SettingsError, match=r"run lab.save_final\(s, subjects\['cnn'\]\) first"):
        lab.latency_dense_vs_pruned(s, subject)  # nothing saved yet
    lab.save_final(s, subject)
    assert lab.latency_dense_vs_pruned(s, subject) == s.metrics("cnn", lab.STAGE)["latency"]
    saved = s.metrics("cnn", lab.STAGE)
    lab.final_recipe(subject, "gradual")  # another model, not saved
    with pytest.raises(SettingsError, match="not the one saved"):
        lab.latency_dense_vs_pruned(s, subject)
    assert s.metrics("cnn", lab.STAGE) == saved


def test_after_a_restart_best_takes_the_recorded_study_and_an_old_frontier_is_not_kept(tmp_path, capsys):
    """After a kernel restart "best" fell back to gradual while the record kept the study (whose
    winner was another method) and the frontier searched from the earlier final model (review)."""
    from labutils import Session
    from labutils.labs import unstructured as lab

    s, subjects = _one_baseline(tmp_path)
    subjects["cnn"].results["study"] = STUDY_ROWS
    lab.final_recipe(subjects["cnn"])
    lab.save_final(s, subjects["cnn"])
    s.add_to_record("cnn", lab.STAGE, {"frontier": {"trials": []}})
    # A restarted kernel: a new Session of the same run, the study's cell not run again.
    s, subjects = _one_baseline(tmp_path, Session("smoke", tmp_path, device="cpu", models=["cnn"]))
    assert subjects["cnn"].results["study"] == STUDY_ROWS
    assert lab.final_recipe(subjects["cnn"])["method"] == "one_shot"
    m = lab.save_final(s, subjects["cnn"])
    assert m["recipe"]["method"] == "one_shot" and m["frontier"] == {"trials": []}  # the same recipe: kept
    subjects["cnn"].cfg = {**subjects["cnn"].cfg, "final": {**subjects["cnn"].cfg["final"],
                                                            "cnn": {"sparsity": 0.8, "epochs": 1}}}
    lab.final_recipe(subjects["cnn"])
    capsys.readouterr()
    m = lab.save_final(s, subjects["cnn"])
    assert "frontier" not in m and m["study"] == STUDY_ROWS
    assert "not kept from this run's earlier record: frontier" in capsys.readouterr().out


def test_the_frontier_is_recorded_only_with_the_model_it_started_from(tmp_path, monkeypatch, capsys):
    """After a kernel restart the search started from the dense model and wrote a frontier below
    the saved model's own sparsity into its record; a frontier searched before a new final model
    was saved beside that other model (review)."""
    from labutils import Session
    from labutils.labs import unstructured as lab

    monkeypatch.setattr(lab, "frontier_threshold", lambda s, subject: (0.0, "any accuracy"))
    s, subjects = _one_baseline(tmp_path)
    subject = subjects["cnn"]
    subject.cfg["frontier"]["max_trials"] = 1
    assert s.profile["unstructured"]["frontier"]["max_trials"] > 1  # each subject edits its own copy
    lab.final_recipe(subject, "one_shot")
    assert lab.frontier(s, subject)["start"] == "the final model"
    assert s.metrics("cnn", lab.STAGE) is None and "frontier kept in this kernel" in capsys.readouterr().out
    lab.final_recipe(subject, "gradual")  # another final model: the search above is not its frontier
    assert "frontier" not in subject.results and "frontier searched from the earlier" in capsys.readouterr().out
    saved = lab.save_final(s, subject)
    assert "frontier" not in saved
    # A restarted kernel: the search starts from the saved model and is recorded with it.
    s, subjects = _one_baseline(tmp_path, Session("smoke", tmp_path, device="cpu", models=["cnn"]))
    subjects["cnn"].cfg["frontier"]["max_trials"] = 1
    result = lab.frontier(s, subjects["cnn"])
    assert result["start"] == "this run's saved final model"
    assert result["trials"][0]["from_sparsity"] == pytest.approx(saved["pruning_percentage"] / 100)
    assert result["trials"][0]["sparsity"] > saved["pruning_percentage"] / 100
    assert s.metrics("cnn", lab.STAGE)["frontier"] == result


def test_sparsity_labels_tell_levels_above_99_percent_apart(tmp_path, capsys):
    from labutils.labs import unstructured as lab

    rows = [{"method": "one_shot", "sparsity": level, "epochs": 5, "accuracy": 0.1, "test_images": 64}
            for level in (0.9, 0.99, 0.995, 0.999)]
    assert lab.study_table(rows).splitlines()[1].split() == ["90%", "99%", "99.5%", "99.9%"]
    assert lab.best_method(rows, None)[1].startswith("the study's best at 99.9%, 5 ep: one_shot")
    _, subjects = _one_baseline(tmp_path)
    subject = subjects["cnn"]
    subject.results["sensitivity"] = {"layers": {"conv1.weight": [0.1]}, "sparsities": [0.5], "baseline": 0.1}
    assert "sensitivity" not in subject.magnitude_scopes()  # a scan of other layers than the prunable ones
    assert "sensitivity-chosen curves left out" in capsys.readouterr().out


def test_a_frontier_said_dropped_is_not_kept_from_the_record_either(tmp_path, monkeypatch, capsys):
    """Running the final recipe's cell again said the frontier was dropped, and save_final then kept
    the record's copy of it (diff review)."""
    from labutils.labs import unstructured as lab

    monkeypatch.setattr(lab, "frontier_threshold", lambda s, subject: (0.0, "any accuracy"))
    s, subjects = _one_baseline(tmp_path)
    subject = subjects["cnn"]
    subject.cfg["frontier"]["max_trials"] = 1
    lab.final_recipe(subject, "one_shot")
    lab.save_final(s, subject)
    lab.frontier(s, subject)
    assert "frontier" in s.metrics("cnn", lab.STAGE)
    lab.final_recipe(subject, "one_shot")  # the same cell again
    capsys.readouterr()
    assert "frontier" not in lab.save_final(s, subject)
    assert "not kept from this run's earlier record: frontier (searched from an earlier final model)" in capsys.readouterr().out


def test_a_frontier_searched_from_the_dense_baseline_outlives_a_new_final_model_that_falls_short(tmp_path, capsys):
    """After a restart, the frontier (searched from the dense baseline: the saved final model fell
    short) was dropped, "searched from the earlier final model", when the final recipe's cell ran
    after it, though the search did not start from that model (interactive review)."""
    from labutils.labs import unstructured as lab

    s, subjects = _one_baseline(tmp_path)
    subject = subjects["cnn"]
    for start, threshold, kept in (("the dense baseline", 2.0, True), ("the dense baseline", -1.0, False),
                                   ("the final model", 2.0, False), ("this run's saved final model", 2.0, False)):
        searched = {"start": start, "threshold": threshold, "frontier_sparsity": 0.5}
        subject.results["frontier"] = searched
        lab.final_recipe(subject, "one_shot")  # below 2.0 always; above -1.0: the search would start from it
        assert (subject.results.get("frontier") is searched) == kept, (start, threshold)
        assert ("is dropped" in capsys.readouterr().out) != kept
    # The record's copy too, for a final model of another recipe that also falls short.
    subject.results["frontier"] = {"start": "the dense baseline", "threshold": 2.0, "frontier_sparsity": 0.5}
    lab.final_recipe(subject, "one_shot")
    lab.save_final(s, subject)
    lab.final_recipe(subject, "gradual")
    subject.results.pop("frontier")  # a restarted kernel: only the record holds it
    assert lab.save_final(s, subject)["frontier"]["start"] == "the dense baseline"
    assert "kept from this run's earlier record: frontier" in capsys.readouterr().out


def test_a_frontier_search_where_every_trial_passed_says_it_is_a_lower_bound(tmp_path, monkeypatch, capsys):
    """The search stopped after its trials with none failed, and the last pass was printed,
    recorded and drawn as "the highest sparsity meeting the threshold" (review of a smoke run:
    vit_scratch 50 -> 75 -> 87.5%, all passing, shown as the frontier 87.50%)."""
    from labutils.labs import unstructured as lab

    monkeypatch.setattr(lab, "frontier_threshold", lambda s, subject: (0.0, "any accuracy"))
    s, subjects = _one_baseline(tmp_path)
    subject = subjects["cnn"]
    subject.cfg["frontier"]["max_trials"] = 2
    lab.final_recipe(subject, "one_shot")
    lab.save_final(s, subject)
    capsys.readouterr()
    result = lab.frontier(s, subject)
    assert result["cut_short"] is True and result["nearest_failure"] is None and len(result["trials"]) == 2
    assert s.metrics("cnn", lab.STAGE)["frontier"]["cut_short"] is True
    at_least = f"frontier at least {result['frontier_sparsity']:.2%} at {result['frontier_accuracy']:.2%}"
    why = "(the search stopped after its 2 trials, none failed)"
    assert f"cnn          {at_least} {why}" in capsys.readouterr().out
    lab.summary(s, ["cnn"])
    assert f"; {at_least} (threshold 0.00%) {why}" in capsys.readouterr().out
    ax = lab.plot_frontier({"cnn": result}).axes[0]
    assert at_least in [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.get_title() == f"cnn: frontier at least {result['frontier_sparsity']:.2%}\n{why}"
    # Trials enough to reach the ceiling, none failing: not cut short, but still a lower bound, since
    # sparser models were not tried (it was drawn as "highest sparsity meeting the threshold").
    subject.cfg["frontier"]["max_trials"] = 8
    result = lab.frontier(s, subject)
    assert result["frontier_sparsity"] == pytest.approx(subject.cfg["frontier"]["max_sparsity"], abs=1e-3)
    assert result["cut_short"] is False and result["at_ceiling"] is True
    ceiling = "(the search's ceiling: sparser was not tried)"
    at_least = f"frontier at least {result['frontier_sparsity']:.2%} at {result['frontier_accuracy']:.2%}"
    assert f"cnn          {at_least} {ceiling}" in capsys.readouterr().out
    lab.summary(s, ["cnn"])
    assert f"; {at_least} (threshold 0.00%) {ceiling}" in capsys.readouterr().out
    ax = lab.plot_frontier({"cnn": result}).axes[0]
    assert ax.get_title() == f"cnn: frontier at least {result['frontier_sparsity']:.2%}\n{ceiling}"
    # Side by side (a cpu run's two models), each title whole on the figure and clear of the other's:
    # a longer note ran off the right edge and into the left panel's title (review).
    fig = lab.plot_frontier({"cnn": result, "vit_scratch": result})
    titles = [ax.title for ax in fig.axes[:2]]
    for title in titles:
        assert_within_figure(fig, title)
    assert not titles[0].get_window_extent().overlaps(titles[1].get_window_extent())


def test_the_frontier_arrows_start_at_the_model_each_trial_pruned(tmp_path, monkeypatch):
    """Every arrow was drawn flat from (its start's sparsity, the trial's own accuracy): the first
    from 0% at the trial's accuracy, not the dense model's, and a failure from its own accuracy,
    not the pass it pruned further; the dense start was not drawn (review)."""
    from matplotlib.text import Annotation

    from labutils.labs import unstructured as lab

    s, subjects = _one_baseline(tmp_path)
    subject = subjects["cnn"]
    subject.cfg["frontier"]["max_trials"] = 4

    def sparsity(model):
        params = subject.params(model)
        return sum(int((p == 0).sum()) for p in params.values()) / sum(p.numel() for p in params.values())

    monkeypatch.setattr(lab, "frontier_threshold", lambda session, subj: (0.6, "test"))
    monkeypatch.setattr(lab, "finetune_masked", lambda *args, **kwargs: None)
    monkeypatch.setattr(lab, "evaluate", lambda model, loader: {"accuracy": 0.9 if sparsity(model) <= 0.8 else 0.1})
    result = lab.frontier(s, subject)
    trials = result["trials"]
    assert result["start"] == "the dense baseline" and [t["passed"] for t in trials] == [True, True, False, False]
    # Each trial started from the dense baseline (the first) or the last trial that passed.
    started = [subject.baseline, 0.9, 0.9, 0.9]
    assert [t["from_accuracy"] for t in trials] == started
    ax = lab.plot_frontier({"cnn": result}).axes[0]
    arrows = [a for a in ax.texts if isinstance(a, Annotation)]
    assert [a.xyann for a in arrows] == [pytest.approx((100 * t["from_sparsity"], 100 * a)) for t, a in zip(trials, started)]
    assert [a.xy for a in arrows] == [pytest.approx((100 * t["sparsity"], 100 * t["accuracy"])) for t in trials]
    start = next(c for c in ax.collections if c.get_label() == "start: the dense baseline")
    assert start.get_offsets().tolist() == [pytest.approx([0.0, 100 * subject.baseline])]


def _notebook_cells() -> list[dict]:
    import json

    from labutils.pipeline import available_notebooks

    return json.loads(open(available_notebooks()["03"]).read())["cells"]


def test_a_playground_setting_that_is_no_bool_is_refused_before_the_sweeps():
    """papermill's -p PLAYGROUND false stays the string 'false': it was refused only in the
    playground's cell, after the sensitivity scans and sweeps had run (review)."""
    from labutils.errors import SettingsError
    from labutils.labs import unstructured as lab

    with pytest.raises(SettingsError, match=r"^PLAYGROUND = 'false': use True or False .*-p PLAYGROUND False"):
        lab.check_playground("false")
    lab.check_playground(False)
    code = "\n".join("".join(c["source"]) for c in _notebook_cells() if c["cell_type"] == "code")
    assert -1 < code.find("lab.check_playground(PLAYGROUND)") < code.find("s = Session(") < code.find("lab.sensitivity(")


@pytest.mark.parametrize("sparsities, epochs, said", [
    ([0.5, 0.5], [3], r"^STUDY_SPARSITIES = \[0.5, 0.5\]: 0.5 is listed more than once"),
    ([0.5, 0.9], [3, 5, 3.0], r"^STUDY_EPOCHS = \[3, 5, 3.0\]: 3.0 is listed more than once"),
    ([0.5], [float("inf")], r"^STUDY_EPOCHS = \[inf\]: inf epochs would never end: use finite epoch counts"),
])
def test_study_lists_with_a_repeat_or_endless_epochs_are_refused_before_any_fit(sparsities, epochs, said):
    """[0.5, 0.5] or [3, 3] ran the same fine-tunes twice ("ahead of iterative and iterative"), and
    [inf] was refused only at the study's first fine-tune, after the sweeps (review)."""
    from labutils.errors import SettingsError
    from labutils.labs import unstructured as lab

    with pytest.raises(SettingsError, match=said):
        lab.check_study(sparsities, epochs)
    with pytest.raises(SettingsError, match=said):
        lab.study(None, sparsities, epochs)  # refused before it reads its subject


def test_the_frontier_says_its_sparsest_model_is_not_saved():
    """A student looked for the frontier's best model among the checkpoints (review): the saved
    model and report.json are the final recipe's."""
    markdown = ("".join(c["source"]) for c in _notebook_cells() if c["cell_type"] == "markdown")
    text = next(m for m in markdown if m.startswith("## Extra credit: the sparsity frontier"))
    assert "its sparsest passing model is not saved" in text
    assert "`models_saved/<model>_after_unstructured_pruning.pth`" in text and "the final recipe's model" in text
