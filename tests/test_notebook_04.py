"""Notebook 04 in the smoke profile, continuing the shared smoke run (01-02): checkpoints of the
smaller models, metrics with the structured accounting, figures; vit recorded as not produced."""
import json

import pytest
import torch

from figure_check import assert_series_apart
from labutils.checkpoint import load_checkpoint
from labutils.models import count_parameters
from labutils.pipeline import run_pipeline


@pytest.fixture(scope="module")
def run04(smoke_run):
    summary = run_pipeline("smoke", smoke_run, notebooks=["04"])
    assert summary["failed"] is None
    return smoke_run


def test_pruned_models_are_smaller_and_rebuild_from_their_checkpoints(run04):
    for name in ("cnn", "vit_scratch"):
        m = json.loads((run04 / "metrics" / f"{name}_after_structured_pruning.json").read_text())
        assert m["produced"] and m["pruning_percentage"] >= 25
        if name == "vit_scratch":  # the course's share: heads (neurons apart, in removed_by_kind)
            assert m["pruning_percentage"] == pytest.approx(m["removed_by_kind"]["heads"])
            assert set(m["removed_by_kind"]) == {"heads", "mlp"}
        before = json.loads((run04 / "metrics" / f"{name}_before_pruning.json").read_text())
        assert 0 <= m["accuracy"] <= 1 and m["original_accuracy"] == before["accuracy"]
        assert m["parameters"] < m["parameters_original"] and m["macs"] < m["macs_original"]
        assert m["nonzero_parameters"] == m["parameters"]
        assert m["sparsity_all_parameters"] == pytest.approx(100 * (1 - m["parameters"] / m["parameters_original"]))
        assert m["weights_removed_percentage"] > 0
        assert m["latency"]["cpu_batch1"]["pruned"]["ms_per_batch"] > 0 and "cpu_batch64" in m["latency"]
        sweep = m["throughput"]["cpu"]  # the profile's batch sizes, dense and pruned
        assert sweep["batch_sizes"] == [1, 8] and min(sweep["dense"] + sweep["pruned"]) > 0
        assert sweep["speedup"] == pytest.approx([p / d for d, p in zip(sweep["dense"], sweep["pruned"])])
        assert sweep["mac_ratio"] == pytest.approx(m["macs_original"] / m["macs"]) and sweep["graphs"] is False
        if not torch.cuda.is_available():
            assert m["throughput"]["cuda"].startswith("not measured")
        assert sum(m["widths"].values()) < sum(m["widths_original"].values())
        model, ckpt = load_checkpoint(run04 / "models_saved" / f"{name}_after_structured_pruning.pth")
        assert count_parameters(model) == m["parameters"]
        assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    cnn = json.loads((run04 / "metrics" / "cnn_after_structured_pruning.json").read_text())
    assert cnn["arch"]["kwargs"]["stages"] == [cnn["widths"][f"layer{i}.stream"] for i in range(1, 5)]
    assert set(cnn["criteria_study"]["criteria"]) == {"l1", "l2", "bn_scale", "taylor"}


def test_vit_is_recorded_as_not_produced(run04):
    m = json.loads((run04 / "metrics" / "vit_after_structured_pruning.json").read_text())
    assert m["produced"] is False and m["reason"].startswith("baseline not produced")
    assert not (run04 / "models_saved" / "vit_after_structured_pruning.pth").exists()


def test_figures_written(run04):
    for fig in ("04_channels_kept.png", "04_criteria.png", "04_speed_vs_macs.png", "04_throughput.png"):
        assert (run04 / "figures" / fig).stat().st_size > 10_000


def test_figures_tell_series_apart_without_colour(run04):
    """The criteria's lines, and two devices' throughput lines, differed by colour alone."""
    from labutils.labs import structured as lab

    results = {n: json.loads((run04 / "metrics" / f"{n}_after_structured_pruning.json").read_text())
               for n in ("cnn", "vit_scratch")}
    assert assert_series_apart(lab.plot_criteria(results)) >= 6
    assert assert_series_apart(lab.plot_channels_kept(results)) == 2 * 2  # original and kept bars
    assert assert_series_apart(lab.plot_speed_vs_macs(results)) == 2 * 2  # theory and measured bars
    for r in results.values():  # as a GPU run records it: a second device beside the CPU
        r["throughput"]["cuda"] = dict(r["throughput"]["cpu"], graphs=True)
    assert assert_series_apart(lab.plot_throughput(results)) >= 2 * (4 + 3)


def test_the_criteria_figures_lines_and_star_count_the_same_units(run04):
    """For a ViT the lines counted head channels and MLP neurons, the star (report.json's share)
    heads only: a point and the star at the same x removed different things (review)."""
    from labutils.labs import structured as lab

    for name, unit in (("cnn", "channels"), ("vit_scratch", "heads")):
        r = json.loads((run04 / "metrics" / f"{name}_after_structured_pruning.json").read_text())
        study = r["criteria_study"]
        assert study["unit"] == unit
        heads = sum(w for g, w in r["widths_original"].items() if g.endswith("heads"))
        ax = lab.plot_criteria({name: r}).axes[0]
        assert ax.get_xlabel() == "channels (CNN) / heads (ViT) removed (%)"
        lines = {ln.get_label(): ln for ln in ax.get_lines()}
        star = lines[f"{r['criterion']} + fine-tuning"].get_xdata()[0]
        assert star == r["pruning_percentage"]
        for criterion, points in study["criteria"].items():
            xs = list(lines[criterion].get_xdata())
            assert xs == [0] + [p["reported_percentage"] for p in points]
            if unit == "heads":  # whole heads, in the star's unit: not head channels plus neurons
                assert r["pruning_percentage"] == pytest.approx(r["removed_by_kind"]["heads"])
                assert all(x * heads / 100 == pytest.approx(round(x * heads / 100)) for x in xs), (criterion, xs)
                assert any(p["reported_percentage"] != pytest.approx(p["pruning_percentage"]) for p in points)
            else:
                assert all(p["reported_percentage"] == p["pruning_percentage"] for p in points)


def test_a_pruned_vit_does_not_depend_on_what_ran_before(run04, tmp_path):
    """Its drop-path draws from the global generator: run again in one session (or after another
    model), notebook 04 gave 39.50%, then 41.25%."""
    import shutil

    from labutils import Session
    from labutils.labs import structured as lab

    copy = shutil.copytree(run04, tmp_path / "run")  # the shared run's records stay as they are
    s = Session("smoke", copy, models=["vit_scratch"])
    first, again = (lab.prune_structured(s, "vit_scratch") for _ in range(2))
    losses = [[[h["train_loss"] for h in step["history"]] for step in r["steps"]] for r in (first, again)]
    assert first["accuracy"] == again["accuracy"] and losses[0] == losses[1]


def test_the_results_cells_read_this_runs_records_back_after_a_restart(run04, tmp_path, capsys):
    """The cells after 'Prune, fine-tune, save' needed the `results` its cell left in the kernel
    (NameError after a restart); they now read the run's records back, and another run's are not
    taken for this one's."""
    import shutil

    from labutils import Session
    from labutils.artifacts import read_json
    from labutils.labs import structured as lab
    from run_copies import make_another_runs

    copy = shutil.copytree(run04, tmp_path / "run")
    s = Session("smoke", copy, start_run=False)  # a fresh kernel continuing the run
    results = lab.recorded(s)
    assert results["cnn"] == read_json(copy / "metrics" / "cnn_after_structured_pruning.json")
    assert results["vit"]["produced"] is False and results["vit"]["reason"].startswith("baseline not produced")
    lab.summary(results)
    assert "channels removed" in capsys.readouterr().out
    assert lab.plot_throughput(results, path=tmp_path / "t.png") is not None and (tmp_path / "t.png").is_file()

    make_another_runs(copy / "metrics" / "cnn_after_structured_pruning.json")
    again = lab.recorded(s)["cnn"]
    assert again["produced"] is False and "run the cell under 'Prune, fine-tune, save'" in again["reason"]


def test_a_criteria_point_says_the_share_asked_where_whole_units_could_not_give_it():
    """A ViT's '47% removed' beside a profile asking 50% read as a bug (student's reading)."""
    from labutils.labs.structured import _point

    assert _point({"share": 0.5, "pruning_percentage": 46.9, "accuracy": 0.25}) == "47% removed (50% asked): 25.00%"
    assert _point({"share": 0.25, "pruning_percentage": 25.0, "accuracy": 0.5}) == "25% removed: 50.00%"
    # A ViT's line also gives the share of heads, the figure's x and report.json's unit.
    vit = {"share": 0.5, "pruning_percentage": 46.9, "reported_percentage": 33.3, "accuracy": 0.25}
    assert _point(vit, "heads") == "47% removed (50% asked; 33% of heads): 25.00%"


def test_the_equivalence_check_finds_masked_and_removed_alike_and_the_naive_mask_off(run04, tmp_path):
    """Notebook 04's check prints its numbers; nothing asserted them (review)."""
    import shutil

    from labutils import Session
    from labutils.labs import structured as lab

    s = Session("smoke", shutil.copytree(run04, tmp_path / "run"), start_run=False)
    checks = lab.equivalence_checks(s, ["cnn", "vit", "vit_scratch"])  # notebook 04's cell
    assert checks["vit"] is None  # no baseline in the smoke run: nothing to check
    for name in ("cnn", "vit_scratch"):
        r = checks[name]
        assert r["masked_vs_removed"] <= 1e-4 * max(1.0, r["logit_scale"]), (name, r)
        assert r["naive_vs_removed"] > 100 * max(r["masked_vs_removed"], 1e-6), (name, r)


def test_a_cuts_line_says_how_long_a_capped_fine_tune_ran():
    """'after 3 epochs of fine-tuning' where max_steps stopped it after 8 steps (walkthrough)."""
    from labutils.labs.structured import _length

    assert _length(3, [None] * 10, {"finetune": {"max_steps": 8}}) == "8 steps (max_steps; 3 epochs asked)"
    assert _length(1, [None] * 5, {"finetune": {"max_steps": 8}}) == "1 epoch"
    assert _length(2, [None] * 5, {"finetune": {}}) == "2 epochs"
