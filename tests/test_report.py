"""report.json: schema, refusal to mix runs, and the whole smoke pipeline 01 -> 05 through the CLI."""
import copy
import json
import shutil

import pytest
import timm
import torch

from figure_check import assert_series_apart
from labutils.labs import report as R
from labutils.artifacts import RunDirs, write_json
from labutils.cli import main
from labutils.course import checkpoint_names
from labutils.pipeline import NOTEBOOK_DIR

GOOD = {
    "initial_accuracies": {"cnn_before_pruning": 0.912, "vit_before_pruning": None,
                           "vit_scratch_before_pruning": 0.862},
    "unstructured_pruning": {
        "cnn": {"original_accuracy": 0.912, "pruned_accuracy": 0.861, "pruning_percentage": 93.5},
        "vit": {"original_accuracy": None, "pruned_accuracy": None, "pruning_percentage": None},
        "vit_scratch": {"original_accuracy": 0.862, "pruned_accuracy": 0.85, "pruning_percentage": 90.0}},
    "structured_pruning": {
        "cnn": {"original_accuracy": 0.912, "pruned_accuracy": 0.9, "pruning_percentage": 50.0},
        "vit": {"original_accuracy": None, "pruned_accuracy": None, "pruning_percentage": None},
        "vit_scratch": {"original_accuracy": 0.862, "pruned_accuracy": 0.85, "pruning_percentage": 33.0}},
}


def test_schema_accepts_the_spec_format():
    R.validate_report(GOOD)


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r["unstructured_pruning"].pop("vit_scratch"), "'vit_scratch' is a required property"),
    (lambda r: r["initial_accuracies"].update(cnn_before_pruning=91.2), "initial_accuracies/cnn_before_pruning"),
    (lambda r: r["structured_pruning"]["cnn"].update(pruning_percentage=150.0), "pruning_percentage"),
    (lambda r: r["structured_pruning"]["cnn"].update(pruned_accuracy=-0.1), "pruned_accuracy"),
    (lambda r: r.update(extra={}), "Additional properties"),
    (lambda r: r["unstructured_pruning"]["cnn"].update(pruned_accuracy="0.86"), "pruned_accuracy"),
])
def test_schema_rejects(mutate, message):
    bad = copy.deepcopy(GOOD)
    mutate(bad)
    with pytest.raises(R.ReportError, match=message):
        R.validate_report(bad)


def _record(model, stage, run_id, profile="smoke", **values):
    return {"model": model, "stage": stage, "produced": True,
            "run": {"run_id": run_id, "profile": profile}, **values}


def test_mixed_runs_are_refused(tmp_path):
    dirs = RunDirs(tmp_path)
    write_json(dirs.metrics_file("cnn", "before_pruning"), _record("cnn", "before_pruning", "A", accuracy=0.9))
    write_json(dirs.metrics_file("cnn", "after_unstructured_pruning"),
               _record("cnn", "after_unstructured_pruning", "B", accuracy=0.8, pruning_percentage=80.0))
    with pytest.raises(R.ReportError, match="2 different runs"):
        R.check_one_run(R.load_records(dirs))


def test_mixed_profiles_are_refused(tmp_path):
    dirs = RunDirs(tmp_path)
    write_json(dirs.metrics_file("cnn", "before_pruning"), _record("cnn", "before_pruning", "A", "cpu", accuracy=0.9))
    write_json(dirs.metrics_file("vit_scratch", "before_pruning"),
               _record("vit_scratch", "before_pruning", "A", "full", accuracy=0.9))
    with pytest.raises(R.ReportError, match="will not be combined"):
        R.check_one_run(R.load_records(dirs))


def test_one_run_on_two_data_copies_is_refused(tmp_path):
    """A run resumed with another data folder keeps its run id: its records still name their data."""
    dirs = RunDirs(tmp_path)
    q75, official = "CIFAR-10 (offline JPEG-q75 copy)", "CIFAR-10"
    first = _record("cnn", "before_pruning", "A", accuracy=0.9)
    first["run"]["data"] = q75
    later = _record("cnn", "after_unstructured_pruning", "A", accuracy=0.8, pruning_percentage=80.0)
    later["run"]["data"] = official
    write_json(dirs.metrics_file("cnn", "before_pruning"), first)
    write_json(dirs.metrics_file("cnn", "after_unstructured_pruning"), later)
    with pytest.raises(R.ReportError, match=r"data CIFAR-10 \(offline JPEG-q75 copy\).*data CIFAR-10\)"):
        R.check_one_run(R.load_records(dirs))


def test_records_an_older_labutils_wrote_in_the_same_run_are_named_not_called_another_run(tmp_path):
    """Records without data and seed beside this labutils' records of the same run id read as "2 different
    runs" with one run id twice; the files to write again are the older ones."""
    dirs = RunDirs(tmp_path)
    now = _record("cnn", "before_pruning", "A", accuracy=0.9)
    now["run"].update(data="CIFAR-10", seed=0)
    write_json(dirs.metrics_file("cnn", "before_pruning"), now)
    write_json(dirs.metrics_file("cnn", "after_unstructured_pruning"),
               _record("cnn", "after_unstructured_pruning", "A", accuracy=0.8, pruning_percentage=80.0))
    with pytest.raises(R.ReportError) as refused:
        R.check_one_run(R.load_records(dirs))
    assert str(refused.value) == (
        "metrics/cnn_after_unstructured_pruning.json record no data copy or seed (written by an older labutils), "
        "the rest of run A do: run notebook 03 again for cnn")


@pytest.mark.parametrize("baseline, message", [
    ({"produced": True, "accuracy": 0.93}, r"baseline at 91\.00%.* now at 93\.00% \(trained again after it\)"),
    ({"produced": False, "reason": "no weights"}, r"baseline at 91\.00%.* is not produced now \(no weights\)")])
def test_pruned_models_of_another_baseline_are_refused(tmp_path, baseline, message):
    """Notebook 02 re-run by hand keeps the run id, but its new baseline is not the one notebook 03 pruned."""
    dirs = RunDirs(tmp_path)
    write_json(dirs.metrics_file("cnn", "before_pruning"), _record("cnn", "before_pruning", "A") | baseline)
    write_json(dirs.metrics_file("cnn", "after_unstructured_pruning"),
               _record("cnn", "after_unstructured_pruning", "A", accuracy=0.9, original_accuracy=0.91,
                       pruning_percentage=80.0))
    with pytest.raises(R.ReportError, match=message + ": run notebook 03 again for cnn"):
        R.check_one_run(R.load_records(dirs))


def test_pruned_models_of_a_baseline_trained_again_at_the_same_accuracy_are_refused(tmp_path):
    """A recipe changed by hand in notebook 02 gave a new vit_scratch baseline at the very accuracy of
    the old (19.75% on 400 images): the accuracy check passed, and the report paired the new
    baseline with models pruned from the old. Each pruned record names its baseline's checkpoint."""
    from labutils import Session

    s = Session("smoke", tmp_path, device="cpu")
    s.save(s.new_model("cnn"), "cnn", "before_pruning", {"accuracy": 0.5})
    baseline, _ = s.load("cnn", "before_pruning")
    pruned = s.save(baseline, "cnn", "after_unstructured_pruning",
                    {"accuracy": 0.4, "original_accuracy": 0.5, "pruning_percentage": 80.0})
    assert pruned["baseline_sha256"] == s.metrics("cnn", "before_pruning")["checkpoint"]["sha256"]
    R.check_one_run(R.load_records(s.dirs))  # the same baseline: accepted
    with torch.no_grad():
        next(baseline.parameters()).add_(1.0)  # trained again: other weights, the same accuracy
    s.save(baseline, "cnn", "before_pruning", {"accuracy": 0.5})
    with pytest.raises(R.ReportError, match=r"cnn_after_unstructured_pruning was pruned from a baseline at 50\.00%, "
                                            r"but cnn_before_pruning is another checkpoint now, at the same accuracy"):
        R.check_one_run(R.load_records(s.dirs))


def test_a_model_skipped_before_its_baseline_existed_is_refused(tmp_path):
    """Notebook 03 run before 02 had trained the cnn recorded it as not produced; notebook 05 then
    reported that as the result, with "run notebook 02 first" as the reason (interactive review)."""
    dirs = RunDirs(tmp_path)
    write_json(dirs.metrics_file("cnn", "before_pruning"), _record("cnn", "before_pruning", "A") | {"accuracy": 0.93})
    write_json(dirs.metrics_file("cnn", "after_unstructured_pruning"),
               _record("cnn", "after_unstructured_pruning", "A") | {
                   "produced": False, "reason": "baseline not produced: no before_pruning checkpoint in this run"})
    with pytest.raises(R.ReportError, match=r"cnn_before_pruning is there now \(at 93\.00%; notebook 02 ran after "
                                            r"notebook 03\): run notebook 03 again for cnn"):
        R.check_one_run(R.load_records(dirs))


def test_a_model_skipped_before_the_data_was_prepared_gets_the_advice_not_two_runs(tmp_path):
    """Its record named the data "... (not prepared yet)": notebook 05 said "the metrics come from 2
    different runs", naming the same run id twice (interactive review)."""
    dirs = RunDirs(tmp_path)
    run = {"run_id": "A", "profile": "smoke", "data": "synthetic CIFAR-shaped data", "seed": 0}
    write_json(dirs.metrics_file("cnn", "before_pruning"), _record("cnn", "before_pruning", "A", accuracy=0.93) | {
        "run": run})
    write_json(dirs.metrics_file("cnn", "after_structured_pruning"), {
        "model": "cnn", "stage": "after_structured_pruning", "produced": False,
        "reason": "baseline not produced: no before_pruning checkpoint in this run; run notebook 02 first",
        "run": run | {"data": "synthetic CIFAR-shaped data (not prepared yet)"}})
    with pytest.raises(R.ReportError, match=r"cnn_before_pruning is there now .*: run notebook 04 again for cnn"):
        R.check_one_run(R.load_records(dirs))


def test_an_older_labutils_records_of_data_not_prepared_yet_are_the_same_run(tmp_path):
    """An older labutils recorded vit's 'not produced' baseline, written before the data was prepared,
    with "(not prepared yet)": its report still said "2 different runs" of one run id (review)."""
    dirs = RunDirs(tmp_path)
    run = {"run_id": "A", "profile": "smoke", "data": "synthetic CIFAR-shaped data", "seed": 0}
    write_json(dirs.metrics_file("cnn", "before_pruning"), _record("cnn", "before_pruning", "A", accuracy=0.93) | {
        "run": run})
    write_json(dirs.metrics_file("vit", "before_pruning"), {
        "model": "vit", "stage": "before_pruning", "produced": False, "reason": "no weights",
        "run": run | {"data": "synthetic CIFAR-shaped data (not prepared yet)"}})
    assert R.check_one_run(R.load_records(dirs))["run_id"] == "A"


def test_two_seeds_under_one_run_id_are_refused(tmp_path):
    dirs = RunDirs(tmp_path)
    for model, seed in (("cnn", 0), ("vit_scratch", 1)):
        record = _record(model, "before_pruning", "A", accuracy=0.9)
        record["run"]["seed"] = seed
        write_json(dirs.metrics_file(model, "before_pruning"), record)
    with pytest.raises(R.ReportError, match=r"seed 0\): cnn_before_pruning; .*seed 1\): vit_scratch_before_pruning"):
        R.check_one_run(R.load_records(dirs))


def test_missing_entries_stay_null_with_a_reason(tmp_path):
    dirs = RunDirs(tmp_path)
    write_json(dirs.metrics_file("cnn", "before_pruning"), _record("cnn", "before_pruning", "A", accuracy=0.9))
    write_json(dirs.metrics_file("vit", "before_pruning"),
               {"model": "vit", "stage": "before_pruning", "produced": False, "reason": "no weights",
                "run": {"run_id": "A", "profile": "smoke"}})
    records = R.load_records(dirs)
    report = R.build_report(records)
    R.validate_report(report)
    assert report["initial_accuracies"] == {"cnn_before_pruning": 0.9, "vit_before_pruning": None,
                                            "vit_scratch_before_pruning": None}
    assert report["unstructured_pruning"]["cnn"] == {"original_accuracy": None, "pruned_accuracy": None,
                                                     "pruning_percentage": None}
    details = R.build_details(records, R.check_one_run(records))
    assert details["entries"]["vit_before_pruning"]["reason"] == "no weights"
    assert "notebook 03" in details["entries"]["cnn_after_unstructured_pruning"]["reason"]


def test_models_outside_the_runs_models_are_not_in_the_report(tmp_path):
    """A run of MODELS = ["cnn"] reports the other models as not in the run, even where an older
    file of theirs lies in the folder."""
    dirs = RunDirs(tmp_path)
    for model in ("cnn", "vit_scratch"):
        write_json(dirs.metrics_file(model, "before_pruning"), _record(model, "before_pruning", "A", accuracy=0.9))
    records = R.load_records(dirs, ["cnn"])
    report = R.build_report(records)
    assert report["initial_accuracies"] == {"cnn_before_pruning": 0.9, "vit_before_pruning": None,
                                            "vit_scratch_before_pruning": None}
    assert records["vit_scratch", "before_pruning"]["reason"] == "not in this run: its models are cnn"
    assert "notebook 03 did not run for cnn" in records["cnn", "after_unstructured_pruning"]["reason"]
    # MODELS naming a model the run did not train: the reason names the run's, as report_details.json keeps it
    records = R.load_records(dirs, ["cnn", "vit"])
    assert records["vit_scratch", "before_pruning"]["reason"] == "not in this run: its models are cnn"


def test_the_verdict_and_the_figure_tell_a_model_left_out_from_one_not_produced(capsys, tmp_path):
    report = copy.deepcopy(GOOD)  # vit not produced; vit_scratch left out of a run of cnn and vit
    report["initial_accuracies"]["vit_scratch_before_pruning"] = None
    for section in ("unstructured_pruning", "structured_pruning"):
        report[section]["vit_scratch"] = dict.fromkeys(report[section]["vit_scratch"])
    R.print_verdict(report, reduced=False, models=["cnn", "vit"])
    assert "cnn: met  vit: not produced  vit_scratch: not in this run" in capsys.readouterr().out
    fig = R.plot_accuracy_vs_sparsity(report, path=tmp_path / "f.png", models=["cnn", "vit"])
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[1:] == ["vit: not produced", "vit_scratch: not in this run"]
    assert assert_series_apart(fig) == 6


def _minimums_drawn(ax) -> list[str]:
    """Whose course minimums ``ax`` draws: ``minimum_line``'s dashed line and right-edge marker are
    placed in axes/data coordinates, not data ones, in the model's colour (once each per model)."""
    from matplotlib.colors import to_rgba

    from labutils.plots import MODEL_STYLES

    whose = {to_rgba(style["color"]): model for model, style in MODEL_STYLES.items()}
    return sorted(whose[to_rgba(line.get_color())] for line in ax.get_lines()
                  if line.get_transform() is not ax.transData and to_rgba(line.get_color()) in whose)


def test_the_figure_draws_a_minimum_only_for_a_model_with_an_accuracy_to_compare(tmp_path):
    """vit, not produced, had its minimum drawn in both panels beside "vit: not produced" (review);
    notebook 02's learning curves draw minimums for the models produced only. A baseline alone (its
    pruned model not produced) keeps its minimum, beside its dense point."""
    fig = R.plot_accuracy_vs_sparsity(GOOD, path=tmp_path / "f.png")  # vit not produced
    assert [_minimums_drawn(ax) for ax in fig.axes] == [["cnn", "cnn", "vit_scratch", "vit_scratch"]] * 2
    report = copy.deepcopy(GOOD)
    for section in ("unstructured_pruning", "structured_pruning"):
        report[section]["vit_scratch"] = dict.fromkeys(report[section]["vit_scratch"])
    fig = R.plot_accuracy_vs_sparsity(report)
    assert [_minimums_drawn(ax) for ax in fig.axes] == [["cnn", "cnn", "vit_scratch", "vit_scratch"]] * 2


def test_the_figures_axes_name_what_the_reports_percentages_count(tmp_path):
    """The structured panel said "channels / heads / neurons" where a ViT's pruning_percentage
    counts its heads only (review)."""
    fig = R.plot_accuracy_vs_sparsity(GOOD, path=tmp_path / "f.png")
    assert [ax.get_xlabel() for ax in fig.axes] == ["share of prunable weights removed (%)",
                                                   "share of channels (CNN) / heads (ViT) removed (%)"]


def test_a_report_whose_models_leave_out_two_of_the_pipelines_says_add_them(tmp_path):
    """"add it to MODELS" when two models were left out (review)."""
    from labutils import Session

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    write_json(s.dirs.metrics / "pipeline.json", {"run_id": s.run_id, "models": ["cnn", "vit", "vit_scratch"]})
    with pytest.raises(R.ReportError, match=r"MODELS leaves out vit, vit_scratch: add them to MODELS so that"):
        R.load_run(Session("smoke", tmp_path, device="cpu", models=["cnn"], start_run=False))


def test_a_run_without_checkpoints_gets_no_table_figure_and_goes_on(tmp_path, capsys):
    """A run whose only model was not produced (a --models vit run without the pretrained
    weights): matplotlib raised IndexError on the empty table, and notebook 05 stopped before
    writing report.json."""
    assert R.plot_table(["checkpoint", "accuracy"], [], "checkpoints", path=tmp_path / "t.png") is None
    assert "no figure: no checkpoint of this run to tabulate" in capsys.readouterr().out
    assert not (tmp_path / "t.png").exists()


def test_notebook_05_before_02_stops_and_its_last_cells_read_the_report_back(tmp_path, capsys):
    """Notebook 05 after 03-04 had run before 02 wrote nine "not produced" entries; with no checkpoint it
    said every checkpoint reproduces its accuracy; its last cells failed with NameError: 'report' after a
    kernel restart (interactive review)."""
    import json

    from labutils import Session
    from labutils.course import BASELINE_MISSING
    from labutils.errors import SettingsError

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    s.prepare_data()
    s.record_missing("cnn", "after_unstructured_pruning", f"{BASELINE_MISSING}: run notebook 02 first")  # an older 03
    with pytest.raises(SettingsError, match=r"no baseline of this run .* for MODELS \(cnn\) .*: run notebook 02 first"):
        R.load_run(s)
    cells = ["".join(c["source"]) for c in json.loads((NOTEBOOK_DIR / "05_report.ipynb").read_text())["cells"]]
    after_restart = {"s": s, "lab": R}  # the setup cells only
    with pytest.raises(R.ReportError, match=r"no report of this run .* yet: run the cells from 'One run, or nothing'"):
        exec(cells[14], after_restart)

    s.record_missing("cnn", "before_pruning", "diverged")  # notebook 02 ran: cnn not produced
    records, run = R.load_run(s)
    report = R.build_report(records)
    assert R.remeasure_checkpoints(s) == []
    said = capsys.readouterr().out
    assert "no checkpoint of this run to measure" in said and "reproduces" not in said
    R.write(s, report, records, run, [])
    for cell in (cells[14], cells[16]):
        exec(cell, after_restart)
    assert after_restart["report"] == report and (tmp_path / "figures" / "05_accuracy_vs_sparsity.png").is_file()
    assert "initial_accuracies     cnn: not produced  vit: not in this run" in capsys.readouterr().out


def test_invalid_report_is_not_written(tmp_path):
    bad = copy.deepcopy(GOOD)
    bad["initial_accuracies"]["cnn_before_pruning"] = 91.2
    with pytest.raises(R.ReportError):
        R.write_report(tmp_path, bad, {})
    assert not (tmp_path / "report.json").exists()


@pytest.fixture(scope="module")
def full_smoke_run(tmp_path_factory):
    """01 -> 05 in the smoke profile, with a stand-in ViT-Tiny weights file (random init) so that
    the `vit` path runs too. The file is a test fixture; real runs use timm's weights. Its class
    token is moved off timm's 1e-6 scale, as pretraining moves it: check fails a vit that was never
    pretrained (test_check.py), and this run is the whole run that passes."""
    out = tmp_path_factory.mktemp("full_smoke")
    weights = out / "vit_tiny_random_init.pth"
    state = timm.create_model("vit_tiny_patch16_224").state_dict()
    state["cls_token"].normal_(std=0.02)
    torch.save(state, weights)
    rc = main(["run", "--profile", "smoke", "--out", str(out), "--notebooks", "01,02,03,04,05",
               "--vit-weights", str(weights)])
    assert rc == 0
    return out


def test_all_nine_checkpoints_and_a_valid_report(full_smoke_run):
    saved = sorted(p.name for p in (full_smoke_run / "models_saved").glob("*.pth"))
    assert saved == sorted(checkpoint_names())
    assert checkpoint_names(["cnn"]) == [n for n in checkpoint_names() if n.startswith("cnn_")]  # notebook 05's
    report = json.loads((full_smoke_run / "report.json").read_text())
    R.validate_report(report)
    assert all(v is not None for v in report["initial_accuracies"].values())
    # Every number comes from its metrics file: the dense one from before_pruning, the rest from the stage.
    metric = lambda m, stage: json.loads((full_smoke_run / "metrics" / f"{m}_{stage}.json").read_text())
    for section, stage in (("unstructured_pruning", "after_unstructured_pruning"),
                           ("structured_pruning", "after_structured_pruning")):
        for m in ("cnn", "vit_scratch"):
            before, after = metric(m, "before_pruning"), metric(m, stage)
            assert report[section][m] == {"original_accuracy": before["accuracy"], "pruned_accuracy": after["accuracy"],
                                          "pruning_percentage": after["pruning_percentage"]}
            assert report["initial_accuracies"][f"{m}_before_pruning"] == before["accuracy"]
    details = json.loads((full_smoke_run / "report_details.json").read_text())
    assert details["run"]["profile"] == "smoke"
    assert set(details["timings"]["notebooks"]) >= {"01_data.ipynb", "05_report.ipynb"}
    vit = details["entries"]["vit_scratch_after_structured_pruning"]  # heads and neurons, each its own share
    assert set(vit["removed_by_kind"]) == {"heads", "mlp"} and "MLP hidden neurons" in vit["pruning_unit"]
    for fig in ("05_accuracy_vs_sparsity.png", "05_checkpoints.png"):
        assert (full_smoke_run / "figures" / fig).stat().st_size > 5000


def test_evaluate_reproduces_the_report_exactly(full_smoke_run, capsys):
    models = full_smoke_run / "models_saved"
    out = full_smoke_run / "evaluate.json"
    assert main(["evaluate", *sorted(str(p) for p in models.glob("*.pth")), "--device", "cpu",
                 "--json", str(out)]) == 0
    measured = {r["name"]: r["accuracy"] for r in json.loads(out.read_text())["results"]}
    report = json.loads((full_smoke_run / "report.json").read_text())
    for m in ("cnn", "vit", "vit_scratch"):
        assert measured[f"{m}_before_pruning"] == report["initial_accuracies"][f"{m}_before_pruning"]
        assert measured[f"{m}_after_unstructured_pruning"] == report["unstructured_pruning"][m]["pruned_accuracy"]
        assert measured[f"{m}_after_structured_pruning"] == report["structured_pruning"][m]["pruned_accuracy"]
    assert "cnn_after_structured_pruning" in capsys.readouterr().out


def test_evaluate_reports_bad_files_by_name_and_goes_on(full_smoke_run, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x00" * 100)
    good = full_smoke_run / "models_saved" / "cnn_before_pruning.pth"
    rc = main(["evaluate", str(tmp_path / "missing.pth"), str(corrupt), str(good), "--no-accuracy"])
    captured = capsys.readouterr()
    assert rc == 1
    assert "missing.pth" in captured.err and "corrupt.pth" in captured.err
    assert "cnn_before_pruning" in captured.out


def test_evaluate_finds_the_run_of_a_checkpoint_in_a_subfolder_of_models_saved(full_smoke_run, tmp_path, capsys):
    """Notebook 06's ResNet-20 lies in models_saved/quantization/: evaluate looked for its run in
    models_saved/ and told the user to evaluate it "where its run left it" (review)."""
    run = shutil.copytree(full_smoke_run, tmp_path / "run", ignore=shutil.ignore_patterns("notebooks", "figures"))
    nested = run / "models_saved" / "quantization" / "cnn_before_pruning.pth"
    nested.parent.mkdir(exist_ok=True)
    shutil.copy(run / "models_saved" / nested.name, nested)
    assert main(["evaluate", str(nested), "--device", "cpu"]) == 0
    report = json.loads((run / "report.json").read_text())
    assert f"{100 * report['initial_accuracies']['cnn_before_pruning']:.2f}%" in capsys.readouterr().out


def test_evaluate_of_a_checkpoint_copied_out_of_its_run_says_so(full_smoke_run, tmp_path, capsys):
    """Not "download CIFAR-10": the run's data folder is read relative to the run folder."""
    moved = tmp_path / "elsewhere" / "cnn_before_pruning.pth"
    moved.parent.mkdir()
    shutil.copy(full_smoke_run / "models_saved" / moved.name, moved)
    assert main(["evaluate", str(moved)]) == 1
    err = capsys.readouterr().err
    assert "read its test images from 'data-synthetic', relative to the run folder, but" in err
    assert "(two levels above this file) holds no run" in err  # it lies in no models_saved/
    assert "Evaluate the checkpoint where its run left it (RUN/models_saved/), or pass --data-root" in err
    assert "download" not in err


def test_evaluate_of_a_checkpoint_dropped_into_another_run_names_both_runs(full_smoke_run, tmp_path, capsys):
    """A checkpoint of one run put into another run's models_saved/ was told to download CIFAR-10
    into its own run's data folder, seen from the other run's (instructor review)."""
    other = tmp_path / "other_run"
    (other / "metrics").mkdir(parents=True)
    (other / "metrics" / "run.json").write_text(json.dumps({"run_id": "cpu-20260101T000000-abcdef"}))
    (other / "models_saved").mkdir()
    shutil.copy(full_smoke_run / "models_saved" / "cnn_before_pruning.pth", other / "models_saved")
    assert main(["evaluate", str(other / "models_saved" / "cnn_before_pruning.pth")]) == 1
    err = capsys.readouterr().err
    assert "the checkpoint comes from run smoke-" in err and "holds run cpu-20260101T000000-abcdef" in err


def test_evaluate_says_how_many_test_images_each_accuracy_is_on(full_smoke_run, capsys):
    """--data-root measures on the whole test split, not the run's: the table shows the count."""
    path = full_smoke_run / "models_saved" / "cnn_before_pruning.pth"
    for extra, images in (([], "400"), (["--no-accuracy"], "-")):
        assert main(["evaluate", str(path), *extra]) == 0
        head, _, row = capsys.readouterr().out.splitlines()[:3]
        assert head.split()[:3] == ["checkpoint", "acc", "images"] and row.split()[2] == images


def test_an_executed_notebook_re_executes_where_it_lies(full_smoke_run):
    """The executed report notebook runs again in place, with nothing passed: its injected cell
    holds relative paths, and the run id comes from the run's metrics/run.json."""
    import papermill as pm

    for executed in (full_smoke_run / "notebooks").glob("*.ipynb"):  # no machine path anywhere
        assert str(full_smoke_run) not in executed.read_text(), executed.name
    records = [full_smoke_run / "report_details.json", *(full_smoke_run / "metrics").glob("*.json")]
    for record in records:  # nor in the files committed with a run
        assert str(full_smoke_run) not in record.read_text(), record.name
    book = full_smoke_run / "notebooks" / "05_report.ipynb"
    before = json.loads((full_smoke_run / "report.json").read_text())
    pm.execute_notebook(str(book), str(book), kernel_name="python3", cwd=str(book.parent),
                        progress_bar=False)
    assert json.loads((full_smoke_run / "report.json").read_text()) == before
    assert str(full_smoke_run) not in "".join(
        str(o) for c in json.loads(book.read_text())["cells"] for o in c.get("outputs", []))


def test_the_report_refuses_metrics_of_another_run_or_without_their_checkpoints(full_smoke_run, tmp_path):
    """Notebook 05 alone after a new run had started in the folder reported the old run's numbers
    under the new run's name; with a checkpoint deleted it kept that checkpoint's numbers and said
    every checkpoint reproduces its accuracy."""
    import shutil

    from labutils import Session
    from labutils.artifacts import record_run
    from labutils.labs import report as lab

    folder = shutil.copytree(full_smoke_run, tmp_path / "run")
    (folder / "models_saved" / "cnn_after_unstructured_pruning.pth").unlink()
    s = Session("smoke", folder, start_run=False)
    with pytest.raises(lab.ReportError, match=r"the metrics say cnn_after_unstructured_pruning.pth were produced, "
                                              r"but .* does not hold them"):
        lab.remeasure_checkpoints(s)
    record_run(folder / "metrics", "smoke-new-run", "smoke", 0)  # notebook 01 of a new run
    with pytest.raises(lab.ReportError, match=r"the metrics in .* are run smoke-.*'s, but the folder now holds "
                                              r"run smoke-new-run"):
        lab.load_run(Session("smoke", folder, start_run=False))


def test_check_passes_a_whole_run_and_measures_it_again(full_smoke_run, capsys):
    """The instructor's check of a hand-in: every number of report.json traced to its checkpoint."""
    assert main(["check", str(full_smoke_run), "--measure"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and "0 failed" in out and "a reduced run" in out
    assert out.count(": measured ") == 9 and out.count("the checkpoint recorded") == 9  # measured and recorded
    assert "cnn          unstructured" in out and "minimum 85% at 70%" in out


def _failed_check(handin, capsys) -> tuple[str, str]:
    """(the output of a check that fails, its FAIL lines)."""
    assert main(["check", str(handin)]) == 1
    out = capsys.readouterr().out
    return out, "\n".join(line for line in out.splitlines() if line.startswith("FAIL"))


def test_check_names_every_tampering_and_distrusts_what_it_touches(full_smoke_run, tmp_path, capsys):
    """results-table took a report.json edited by hand, a pruned model saved as a baseline and a
    checkpoint under another name as they came; the check compares each with the weights."""
    handin = tmp_path / "handin"
    shutil.copytree(full_smoke_run, handin)
    report = json.loads((handin / "report.json").read_text())
    report["unstructured_pruning"]["cnn"]["pruned_accuracy"] = 0.99  # claimed, not earned
    report["structured_pruning"]["vit_scratch"]["pruning_percentage"] += 10.0
    report["structured_pruning"]["vit"]["original_accuracy"] = 0.5
    (handin / "report.json").write_text(json.dumps(report))
    models = handin / "models_saved"
    before, after = models / "cnn_before_pruning.pth", models / "cnn_after_unstructured_pruning.pth"
    before.rename(models / "swap.pth")
    after.rename(before)
    (models / "swap.pth").rename(after)
    (models / "vit_after_unstructured_pruning.pth").rename(models / "vit_unstructured.pth")

    out, fails = _failed_check(handin, capsys)
    for said in ("vit_after_structured_pruning: original_accuracy is 0.5",
                 "models_saved/vit_after_unstructured_pruning.pth is missing",
                 "not one of the course's nine files: vit_unstructured.pth",
                 "cnn_before_pruning: report.json says", "not a dense baseline",
                 "cnn_after_unstructured_pruning: report.json says 99.00%",
                 "vit_scratch_after_structured_pruning: report.json says",
                 "cnn_after_unstructured_pruning: was pruned from another file than models_saved/cnn_before_pruning.pth",
                 "cnn_after_structured_pruning: was pruned from another file than models_saved/cnn_before_pruning.pth"):
        assert said in fails, said
    for swapped in ("cnn_before_pruning", "cnn_after_unstructured_pruning"):  # their SHA-256 is the other's
        assert f"FAIL  {swapped}: not the file run " in fails, swapped
    # The nine above, the zeros the swap moved and the two files' SHA-256
    assert len(fails.splitlines()) == 12 and "12 failed" in out
    assert "cnn          unstructured  99.00%" in out and "met (unverified: a check above failed)" in out


def test_check_says_a_vits_share_counted_the_old_way_is_from_an_older_labutils(full_smoke_run, tmp_path, capsys):
    """Runs made before 2026-12-07 counted a ViT's heads and MLP neurons together; check now counts
    heads, as the course does, and says why such a report differs (review of the change)."""
    from labutils.checkpoint import load_checkpoint
    from labutils.prune import structured as S

    handin = shutil.copytree(full_smoke_run, tmp_path / "handin")
    models = handin / "models_saved"
    dense = load_checkpoint(models / "vit_scratch_before_pruning.pth")[0]
    pruned = load_checkpoint(models / "vit_scratch_after_structured_pruning.pth")[0]
    report = json.loads((handin / "report.json").read_text())
    report["structured_pruning"]["vit_scratch"]["pruning_percentage"] = S.channel_share_removed(
        S.widths(dense), S.widths(pruned), S.channel_groups(dense))
    (handin / "report.json").write_text(json.dumps(report))
    _, fails = _failed_check(handin, capsys)
    assert "of vit_scratch_before_pruning's heads are gone (report.json counts heads and MLP neurons together" in fails


def test_check_without_any_checkpoint_says_so_once_and_trusts_no_verdict(full_smoke_run, tmp_path, capsys):
    """A run without models_saved/ (a clone of the repository's reference run: git keeps no
    checkpoints) printed one FAIL per checkpoint, nine lines that read as nine faults."""
    handin = shutil.copytree(full_smoke_run, tmp_path / "handin", ignore=shutil.ignore_patterns("models_saved"))
    out, fails = _failed_check(handin, capsys)
    assert fails == ("FAIL  report.json has numbers for 9 checkpoints, but models_saved/ is missing: a hand-in keeps "
                     "them there, beside report.json (a clone of the workbook's repository has none: git does not "
                     "keep checkpoints)")
    verdicts = [line for line in out.splitlines() if "(minimum " in line]
    assert len(verdicts) == 9 and all(line.endswith("(unverified: a check above failed)") for line in verdicts)
    (handin / "models_saved").write_text("")  # it said "is missing" of a file (review)
    assert "models_saved/ is a file, not a folder:" in _failed_check(handin, capsys)[1]
    (handin / "models_saved").unlink()
    (handin / "models_saved").mkdir()
    assert "models_saved/ holds none of them:" in _failed_check(handin, capsys)[1]


def test_check_of_a_broken_report_or_a_wrong_folder_says_what_is_wrong(tmp_path, capsys):
    (tmp_path / "report.json").write_text(json.dumps({"initial_accuracies": {}}))
    assert main(["check", str(tmp_path)]) == 1
    assert "FAIL  report.json breaks the course's format at" in capsys.readouterr().out
    assert main(["check", str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def _forge(path, **metrics):
    """A checkpoint whose recorded numbers were edited (its weights untouched)."""
    ckpt = torch.load(path, weights_only=True)
    ckpt["metrics"].update(metrics)
    torch.save(ckpt, path)


def _record_sha256(handin, name):
    """The checkpoint's SHA-256 written into report_details.json and its metrics, as the run would."""
    from labutils.artifacts import file_sha256

    sha = file_sha256(handin / "models_saved" / f"{name}.pth")
    for path, entry in ((handin / "report_details.json", lambda d: d["entries"][name]),
                        (handin / "metrics" / f"{name}.json", lambda d: d)):
        data = json.loads(path.read_text())
        entry(data)["checkpoint"]["sha256"] = sha
        path.write_text(json.dumps(data))


def test_check_measure_counts_images_and_compares_on_a_data_root_too(full_smoke_run, tmp_path, capsys):
    """With --data-root every measured line passed, so a forged accuracy did too; and a 2-image
    difference failed half the time on float error (review of the check)."""
    handin = tmp_path / "handin"
    shutil.copytree(full_smoke_run, handin)
    # A pruned model's accuracy: a baseline's, forged, would also fail the check that the pruned
    # models were made from it.
    n = json.loads((handin / "metrics" / "cnn_after_structured_pruning.json").read_text())["test_images"]
    report = json.loads((handin / "report.json").read_text())
    details = json.loads((handin / "report_details.json").read_text())
    right = round(report["structured_pruning"]["cnn"]["pruned_accuracy"] * n)
    for off, passes in ((2, True), (2.4, False), (3, False)):  # 2.4 was rounded to 2 and passed
        forged = (right - off) / n  # recorded, reported and in the sidecar alike: only measuring finds it
        report["structured_pruning"]["cnn"]["pruned_accuracy"] = forged
        details["entries"]["cnn_after_structured_pruning"]["accuracy"] = forged
        (handin / "report.json").write_text(json.dumps(report))
        (handin / "report_details.json").write_text(json.dumps(details))
        _forge(handin / "models_saved" / "cnn_after_structured_pruning.pth", accuracy=forged)
        _record_sha256(handin, "cnn_after_structured_pruning")  # a forger who rewrites the records too
        assert main(["check", str(handin), "--measure", "--data-root", str(handin / "data-synthetic")]) == (0 if passes else 1)
        line = next(x for x in capsys.readouterr().out.splitlines() if "cnn_after_structured_pruning: measured" in x)
        assert line.startswith("ok  " if passes else "FAIL") and f"({right:,} of {n:,} test images)" in line


def test_check_refuses_pruned_models_of_another_baseline_and_a_sidecar_of_another_profile(full_smoke_run, tmp_path,
                                                                                          capsys):
    """check compared the report's accuracies with each other only: a baseline trained again (its
    new accuracy written into report.json) passed beside models pruned from the old one, and so did
    a report_details.json edited to say "full" (review of the check)."""
    handin = tmp_path / "handin"
    shutil.copytree(full_smoke_run, handin)
    baseline = handin / "models_saved" / "cnn_before_pruning.pth"
    ckpt = torch.load(baseline, weights_only=True)
    ckpt["metrics"]["accuracy"] = 0.505  # as another training would record it, weights moved too
    ckpt["state_dict"]["fc.bias"] = ckpt["state_dict"]["fc.bias"] + 1.0
    torch.save(ckpt, baseline)
    report = json.loads((handin / "report.json").read_text())
    report["initial_accuracies"]["cnn_before_pruning"] = 0.505
    for section in ("unstructured_pruning", "structured_pruning"):
        report[section]["cnn"]["original_accuracy"] = 0.505
    (handin / "report.json").write_text(json.dumps(report))
    details = json.loads((handin / "report_details.json").read_text())
    details["run"]["profile"] = "full"
    (handin / "report_details.json").write_text(json.dumps(details))

    out, fails = _failed_check(handin, capsys)
    for stage in ("unstructured", "structured"):
        assert f"cnn_after_{stage}_pruning: was pruned from a baseline at " in fails
    assert "report_details.json names profile 'full' where its checkpoints say 'smoke'" in fails
    # The same accuracy recorded again (a retraining that lands on it): the baseline's SHA-256 in
    # the pruned models' records still tells the files apart.
    ckpt["metrics"]["accuracy"] = json.loads((full_smoke_run / "report.json").read_text())["initial_accuracies"]["cnn_before_pruning"]
    torch.save(ckpt, baseline)
    shutil.copy(full_smoke_run / "report.json", handin / "report.json")
    shutil.copy(full_smoke_run / "report_details.json", handin / "report_details.json")
    out, fails = _failed_check(handin, capsys)
    assert "cnn_after_unstructured_pruning: was pruned from another file than models_saved/cnn_before_pruning.pth" in fails
    assert "FAIL  cnn_before_pruning: not the file run " in fails
    assert len(fails.splitlines()) == 3  # the two pruned models and the baseline's own SHA-256; nothing else


def test_check_counts_shares_as_strictly_as_the_verdict(full_smoke_run, tmp_path, capsys):
    """A share claimed 0.005 points above the weights' passed (0.01 points allowed), so a model at
    69.995% could be reported at 70.000% and meet the minimum (review of the check)."""
    handin = tmp_path / "handin"
    shutil.copytree(full_smoke_run, handin)
    report = json.loads((handin / "report.json").read_text())
    report["unstructured_pruning"]["cnn"]["pruning_percentage"] += 0.005
    (handin / "report.json").write_text(json.dumps(report))
    assert "cnn_after_unstructured_pruning: report.json says" in _failed_check(handin, capsys)[1]


def test_check_of_damaged_or_foreign_files_fails_without_a_traceback(full_smoke_run, tmp_path, capsys):
    """A half-empty entry and a damaged report_details.json raised tracebacks; files in subfolders
    of models_saved/ passed as 'nothing else'; a checkpoint of another run left its minimum trusted;
    a recipe that prunes the first conv was recounted without it (review of the check)."""
    handin = tmp_path / "handin"
    shutil.copytree(full_smoke_run, handin)
    report = json.loads((handin / "report.json").read_text())
    report["structured_pruning"]["cnn"]["pruning_percentage"] = None
    (handin / "report.json").write_text(json.dumps(report))
    (handin / "report_details.json").write_text("{")
    models = handin / "models_saved"
    (models / "old").mkdir()
    shutil.copy(models / "cnn_before_pruning.pth", models / "old")
    (models / "notes.txt").write_text("x")
    (models / "quantization").mkdir(exist_ok=True)  # notebook 06's folder is allowed
    other = torch.load(models / "vit_scratch_before_pruning.pth", weights_only=True)
    other["meta"]["run_id"] = "smoke-another-run"
    torch.save(other, models / "vit_scratch_before_pruning.pth")
    (models / "vit_after_structured_pruning.pth").write_bytes(b"\x00" * 100)  # damaged
    metrics = handin / "metrics" / "cnn_after_unstructured_pruning.json"
    record = json.loads(metrics.read_text())
    record["recipe"]["include_first"] = True  # as a run that pruned the first conv would record it
    metrics.write_text(json.dumps(record))

    out, fails = _failed_check(handin, capsys)
    for said in ("cnn_after_structured_pruning: report.json has numbers and nulls in one entry (pruning_percentage empty)",
                 "report_details.json is not valid JSON",
                 "not one of the course's nine files: notes.txt, old",
                 "vit_after_structured_pruning.pth does not load",
                 "vit_scratch_before_pruning.pth comes from run smoke-another-run, most checkpoints from run smoke-",
                 "cnn_after_unstructured_pruning: report.json says"):
        assert said in fails, said
    assert "(classifier left out)" in fails  # the first conv counted, as the recipe says
    assert "every checkpoint loads" not in out and "whose entries in report.json are empty" not in out
    assert "unverified" in next(line for line in out.splitlines() if line.startswith("  vit_scratch  dense"))
    assert "Traceback" not in out


def test_check_reads_the_write_up_and_names_each_notebook_that_is_not_this_runs(full_smoke_run, tmp_path, capsys):
    """check passed a hand-in whose notebooks were another run's, stopped at an error or were never
    run: the write-up was not looked at."""
    handin = tmp_path / "handin"
    shutil.copytree(full_smoke_run, handin)
    books = handin / "notebooks"
    run_id = json.loads((handin / "report_details.json").read_text())["run"]["run_id"]
    unrun = json.loads((NOTEBOOK_DIR / "06_quantization.ipynb").read_text())
    for cell in unrun["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = []  # as the repository held it before a reference run was committed
    (books / "06_quantization.ipynb").write_text(json.dumps(unrun))  # extra and unrun: no part of the write-up
    (books / "07_my_experiments.ipynb").write_text("{}")  # a student's own notebook: not the workbook's

    def edit(name, change):
        book = next(books.glob(f"{name}_*.ipynb"))
        nb = json.loads(book.read_text())
        change(nb)
        book.write_text(json.dumps(nb))

    def add_output(nb, output):
        [c for c in nb["cells"] if c["cell_type"] == "code"][-1]["outputs"].append(output)

    # A student's own line naming an earlier run is no other run's write-up.
    edit("05", lambda nb: add_output(nb, {"output_type": "stream", "name": "stdout",
                                          "text": ["vs my run\tcpu-20261201T101010-abcdef: +2 pp\n"]}))
    assert main(["check", str(handin)]) == 0
    assert f"ok    notebooks 01, 02, 03, 04, 05: executed, no error, each showing run {run_id} (06 not run)" \
        in capsys.readouterr().out

    edit("02", lambda nb: [c.update(outputs=[]) for c in nb["cells"] if c["cell_type"] == "code"])
    edit("03", lambda nb: add_output(nb, {"output_type": "error", "ename": "KeyboardInterrupt", "evalue": "",
                                          "traceback": []}))
    edit("04", lambda nb: nb.update(json.loads(json.dumps(nb).replace(run_id, "smoke-20260101T000000-abcdef"))))
    # Stopped partway, its error output cleared: the cells after it never ran.
    edit("05", lambda nb: [c.update(outputs=[], execution_count=None) for c in nb["cells"][-3:] if c["cell_type"] == "code"])
    (books / "01_data.ipynb").write_text(json.dumps({"cells": {"a": 1}}))  # damaged: said, no traceback
    out, fails = _failed_check(handin, capsys)
    assert "01_data.ipynb is not a notebook in Jupyter's format" in fails
    assert "02_baseline_training.ipynb has no outputs: it was saved without being run (run it from the top" in fails
    assert "03_unstructured_pruning.ipynb shows an error in cell [" in fails and "KeyboardInterrupt" in fails \
        and "fix it and run the notebook again from the top" in fails
    assert f"04_structured_pruning.ipynb is run smoke-20260101T000000-abcdef's, not this hand-in's run {run_id}" in fails
    assert "05_report.ipynb stopped before cell " in fails
    assert len(fails.splitlines()) == 5 and "5 failed" in out

    shutil.move(books, tmp_path / "by_hand")  # notebooks run in JupyterLab lie elsewhere
    out, fails = _failed_check(handin, capsys)
    assert "lacks 01_data.ipynb, 02_baseline_training.ipynb" in fails and "--notebook-dir" in fails
    assert main(["check", str(handin), "--notebook-dir", str(tmp_path / "by_hand")]) == 1  # the same five
    assert capsys.readouterr().out.count("FAIL  notebooks: ") == 5
    assert main(["check", str(handin), "--notebook-dir", str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_only_a_notebooks_last_cells_left_unrun_mean_it_stopped_partway(tmp_path):
    """The Colab-only first cell, skipped on a laptop, is no run that stopped; last cells never
    run are, their error's output cleared or not; papermill's metadata null is no damage."""
    from labutils.submission import _notebook_problem

    def cell(source, ran=True):
        out = [{"output_type": "stream", "name": "stdout", "text": ["Session(run_id='r1')"]}] if ran else []
        return {"cell_type": "code", "source": [source], "metadata": {}, "execution_count": 1 if ran else None,
                "outputs": out}

    book = tmp_path / "05_report.ipynb"
    for cells, said in (([cell("# Colab only", False), cell("s = Session()"), cell("", False)], None),
                        ([cell("s = Session()"), cell("lab.build(s)", False), cell("lab.write(s)", False)],
                         "stopped before cell 2 of its 3 code cells ('lab.build(s)') ran")):
        book.write_text(json.dumps({"cells": cells, "metadata": {"papermill": None}}))
        problem, shown = _notebook_problem(book, "r1")
        assert shown == {"r1"} and (problem is None if said is None else problem.startswith(said)), problem


def test_check_without_report_details_ties_the_notebooks_to_the_checkpoints_run(full_smoke_run, tmp_path, capsys):
    """With report_details.json gone, notebooks of another run passed: they were compared with nothing."""
    handin = tmp_path / "handin"
    shutil.copytree(full_smoke_run, handin)
    run_id = json.loads((handin / "report_details.json").read_text())["run"]["run_id"]
    (handin / "report_details.json").unlink()
    for book in (handin / "notebooks").glob("*.ipynb"):
        book.write_text(book.read_text().replace(run_id, "smoke-20260101T000000-bbbbbb"))
    out, fails = _failed_check(handin, capsys)
    assert f"is run smoke-20260101T000000-bbbbbb's, not this hand-in's run {run_id}" in fails


def test_the_reports_figures_name_the_run_reported_not_this_kernels_data_or_device(tmp_path):
    """Notebook 05 run by hand, with another DATA_ROOT or on another machine, footed its figures with
    its own data folder and device: a GPU run on the JPEG copy read "CIFAR-10 (not prepared yet) |
    cpu". The footers name the run from its metrics; re-measured numbers say where they were taken."""
    from labutils import Session

    out = tmp_path / "run"
    run = {"run_id": "cpu-X", "profile": "cpu", "data": "CIFAR-10 (offline JPEG-q75 copy)",
           "device": "NVIDIA H100", "date": "d", "git_commit": "abc", "seed": 0}
    write_json(RunDirs(out).metrics / "run.json", {"run_id": "cpu-X", "profile": "cpu", "seed": 0})
    write_json(RunDirs(out).metrics_file("cnn", "before_pruning"),
               {"model": "cnn", "stage": "before_pruning", "produced": True, "accuracy": 0.91, "run": run})
    s = Session("cpu", out, str(tmp_path / "elsewhere"), "cpu", 0, ["cnn"], start_run=False)
    _, loaded = R.load_run(s)
    assert "not prepared yet" in s.caption()  # this kernel's own view
    caption = s.caption(loaded)
    assert caption == "profile cpu (reduced run) | CIFAR-10 (offline JPEG-q75 copy) | NVIDIA H100 | run cpu-X"
    assert s.caption(loaded, measured_here=True).startswith(caption + " | measured again on cpu")
    assert "(reduced run)" not in s.caption(loaded | {"profile": "full"})


def test_check_lists_a_model_the_hand_in_lacks_as_not_met():
    """A hand-in without the pretrained ViT showed "0 failed" and no line for it at all (review)."""
    from labutils.submission import minimums

    entry = {"original_accuracy": 0.91, "pruned_accuracy": 0.9, "pruning_percentage": 80.0}
    empty = dict.fromkeys(entry)
    report = {"initial_accuracies": {"cnn_before_pruning": 0.91, "vit_before_pruning": None,
                                     "vit_scratch_before_pruning": 0.86},
              "unstructured_pruning": {"cnn": entry, "vit": empty, "vit_scratch": dict(entry, original_accuracy=0.86)},
              "structured_pruning": {"cnn": entry, "vit": empty, "vit_scratch": dict(entry, original_accuracy=0.86)}}
    lines = minimums(report)
    assert len(lines) == 9
    missing = [line for line in lines if line.split()[0] == "vit"]
    assert [line.split()[1] for line in missing] == ["dense", "unstructured", "structured"]
    assert all(line.endswith("not produced (report.json holds no numbers): NOT met") for line in missing)
    left_out = [line for line in minimums(report, left_out=["vit"]) if line.split()[0] == "vit"]
    assert len(left_out) == 3 and all(line.endswith(" not in this run: NOT met") for line in left_out)


def test_records_the_report_cannot_take_honestly_are_refused_naming_the_notebook(tmp_path):
    """A record without pruning_percentage made an entry of numbers and a null, which the verdict,
    the README table and check all failed on; a ViT's older structured record (heads and MLP
    neurons counted together) read as met with no head removed (review)."""
    dirs = RunDirs(tmp_path)
    base = _record("vit_scratch", "before_pruning", "A", accuracy=0.86)
    write_json(dirs.metrics_file("vit_scratch", "before_pruning"), base)
    pruned = _record("vit_scratch", "after_structured_pruning", "A", accuracy=0.81, original_accuracy=0.86,
                     pruning_percentage=26.0, removed_by_kind={"heads": 0.0, "mlp": 31.0})
    write_json(dirs.metrics_file("vit_scratch", "after_structured_pruning"), pruned)
    with pytest.raises(R.ReportError, match="counts heads and MLP neurons together.*run notebook 04 again for vit_scratch"):
        R.check_one_run(R.load_records(dirs))
    write_json(dirs.metrics_file("vit_scratch", "after_structured_pruning"),
               {k: v for k, v in pruned.items() if k != "pruning_percentage"})
    with pytest.raises(R.ReportError, match="has no pruning_percentage \\(written by an older labutils\\)"):
        R.check_one_run(R.load_records(dirs))
    write_json(dirs.metrics_file("vit_scratch", "after_structured_pruning"),
               dict(pruned, pruning_percentage=33.33, removed_by_kind={"heads": 33.33, "mlp": 31.0}))
    R.check_one_run(R.load_records(dirs))  # the course's count: taken
    mixed = copy.deepcopy(GOOD)
    mixed["unstructured_pruning"]["cnn"]["pruning_percentage"] = None
    with pytest.raises(R.ReportError, match="unstructured_pruning/cnn: pruning_percentage empty beside numbers"):
        R.validate_report(mixed)


def test_the_report_is_written_as_a_pair_or_not_at_all(tmp_path):
    """report.json was written before its sidecar: a sidecar refused (NaN) left the new report
    beside the previous run's sidecar (review)."""
    (tmp_path / "report.json").write_text("old")
    (tmp_path / "report_details.json").write_text("old")
    with pytest.raises(ValueError, match="cannot write .*report_details.json: it would hold NaN"):
        R.write_report(tmp_path, GOOD, {"run": {"run_id": "B"}, "timings": {"total": float("nan")}})
    assert (tmp_path / "report.json").read_text() == "old" == (tmp_path / "report_details.json").read_text()
    real = R.atomic_write_bytes

    def full_at_the_report(path, write):
        if path.name == "report.json":
            raise OSError(28, "No space left on device")
        return real(path, write)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(R, "atomic_write_bytes", full_at_the_report)
        with pytest.raises(OSError):
            R.write_report(tmp_path, GOOD, {"run": {"run_id": "B"}})
    assert (tmp_path / "report.json").read_text() == "old" == (tmp_path / "report_details.json").read_text()
    R.write_report(tmp_path, GOOD, {"run": {"run_id": "B"}})
    assert json.loads((tmp_path / "report.json").read_text()) == GOOD


def test_the_figure_and_check_round_a_share_or_accuracy_down_as_the_verdicts_do():
    """The legend showed 84.96% as "85.0%" beside a missed 85% minimum; a tolerance of 1e-4 pp (11
    of ResNet-18's weights) called 69.9999% removed "70.00%, met" (review)."""
    from labutils.course import meets_minimum, removed_text

    report = copy.deepcopy(GOOD)
    report["unstructured_pruning"]["cnn"].update(pruned_accuracy=4248 / 5000, pruning_percentage=70.0)
    fig = R.plot_accuracy_vs_sparsity(report)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "cnn: 84.96% at 70.00% removed" in labels
    total = 11_100_000
    short = 100 * (7_770_000 - 11) / total
    assert removed_text(short) == "69.99%" and not meets_minimum("cnn", "unstructured", 0.86, short)
    assert meets_minimum("cnn", "unstructured", 0.86, 100 * 7_770_000 / total)  # exactly 70%: met


def test_the_checkpoint_table_leaves_out_another_runs_leftover(tmp_path, capsys):
    """Every .pth of MODELS in the folder was re-measured and tabled under this run's caption, an
    earlier run's with "0.0%" removed (review)."""
    from labutils import Session

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    s.prepare_data()  # the synthetic test images the checkpoint is measured on
    s.save(s.new_model("cnn"), "cnn", "before_pruning", {"accuracy": 0.1})
    shutil.copy(s.dirs.checkpoint("cnn", "before_pruning"), s.dirs.checkpoint("cnn", "after_structured_pruning"))
    rows = R.remeasure_checkpoints(s)
    assert [r["name"] for r in rows] == ["cnn_before_pruning"]
    assert "not this run's, left out: cnn_after_structured_pruning.pth" in capsys.readouterr().out
    columns, table = R.checkpoint_table(rows, {("cnn", "before_pruning"): {}})
    assert table[0][columns.index("removed vs dense")] == "0.0%"  # a baseline removes nothing
    pruned = dict(rows[0], name="cnn_after_structured_pruning")
    columns, table = R.checkpoint_table([pruned], {("cnn", "after_structured_pruning"): {}})
    assert table[0][columns.index("removed vs dense")] == "-"  # a pruned record without its share: not "0.0%"


def test_the_report_writes_a_smoke_runs_synthetic_images_again_and_names_test_images_not_found(tmp_path, capsys,
                                                                                              monkeypatch):
    """With data-synthetic/ deleted (the README: the next notebook writes the same images again),
    notebook 05 timed every checkpoint, then said they "do not load"; so did a CIFAR-10 run whose
    test images are gone (review)."""
    from labutils import Session

    s = Session("smoke", tmp_path / "smoke", device="cpu", models=["cnn"])
    s.prepare_data()
    s.save(s.new_model("cnn"), "cnn", "before_pruning", {"accuracy": 0.1})
    measured = R.remeasure_checkpoints(s)[0]["accuracy"]
    shutil.rmtree(s.data_root)
    rows = R.remeasure_checkpoints(Session("smoke", tmp_path / "smoke", device="cpu", models=["cnn"], start_run=False))
    assert rows[0]["accuracy"] == measured and (s.data_root / "cifar-10-batches-py" / "test_batch").is_file()

    s = Session("cpu", tmp_path / "cpu", tmp_path / "gone", device="cpu", models=["cnn"])
    s.save(s.new_model("cnn"), "cnn", "before_pruning", {"accuracy": 0.1})
    s = Session("cpu", tmp_path / "cpu", tmp_path / "gone", device="cpu", start_run=False)
    with monkeypatch.context() as m:  # a checkpoint whose test images are not found, though its run's are
        m.setattr(R, "_prepare_test_images", lambda *args: None)
        with pytest.raises(R.ReportError, match=r"^test images not found for cnn_before_pruning: accuracy not "
                                                r"measured: DataNotFoundError: CIFAR-10 is not in "):
            R.remeasure_checkpoints(s)
    monkeypatch.setattr(R, "evaluate_paths", lambda *a, **k: pytest.fail("timed before its test images were found"))
    with pytest.raises(R.ReportError, match=f"^test images not found at {tmp_path / 'gone'}: CIFAR-10 is not in "):
        R.remeasure_checkpoints(s)
    assert not (tmp_path / "gone").exists()  # nothing downloaded: the run's own copy scored its checkpoints
