"""Notebook 04 in the smoke profile, continuing the shared smoke run (01-02): checkpoints of the
smaller models, metrics with the structured accounting, figures; vit recorded as not produced."""
import json
from pathlib import Path

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
        cpu = r["throughput"]["cpu"]
        r["throughput"]["cuda"] = dict(cpu, graphs=True, graphs_per_batch=[True] * len(cpu["batch_sizes"]))
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
            assert xs == [0] + [p["pruning_percentage"] for p in points]
            if unit == "heads":  # whole heads, in the star's unit: not head channels plus neurons
                assert r["pruning_percentage"] == pytest.approx(r["removed_by_kind"]["heads"])
                assert all(x * heads / 100 == pytest.approx(round(x * heads / 100)) for x in xs), (criterion, xs)
                assert any(p["channels_removed_percentage"] != pytest.approx(p["pruning_percentage"]) for p in points)
            else:
                assert all(p["channels_removed_percentage"] == p["pruning_percentage"] for p in points)


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
    # As recorded now: pruning_percentage the heads, as at the top of the record (a file from before
    # the rename, above, reads the same).
    now = {"share": 0.5, "pruning_percentage": 33.3, "channels_removed_percentage": 46.9, "accuracy": 0.25}
    assert _point(now, "heads") == "47% removed (50% asked; 33% of heads): 25.00%"


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


def test_the_throughput_sweep_times_dense_and_pruned_in_turns_at_each_batch_size(monkeypatch):
    """Each round swept the dense model over every batch size, then the pruned one: a burst of load
    hit one side of a point only (a smoke run on a loaded CPU showed 7.03x at batch 8 with 3.90x
    fewer MACs, and 0.10x at batch 1). Like compare_latency, the two now take turns at each size."""
    from torch import nn

    from labutils.labs import structured as lab

    calls = []  # (model, batch size) of every forward pass, the deep copies' included

    def recording(tag):
        class Recorded(nn.Module):
            def forward(self, x):
                calls.append((tag, x.shape[0]))
                return x
        return Recorded()

    monkeypatch.setattr(lab, "count_macs", lambda model, size: 1)  # no passes of its own
    cfg = {"throughput": {"cpu": [1, 8]}, "throughput_iters": 1, "latency_rounds": 2}
    out = lab.throughput(recording("dense"), recording("pruned"), 8, cfg)["cpu"]
    timed = [c for i, c in enumerate(calls) if i == 0 or c != calls[i - 1]]  # one per measurement
    assert len(timed) == 2 * 2 * 2  # rounds x batch sizes x models
    assert all(d == ("dense", b) and p == ("pruned", b)
               for (d, p) in zip(timed[0::2], timed[1::2]) for b in [d[1]]), timed
    assert out["batch_sizes"] == [1, 8] and len(out["dense"]) == len(out["pruned"]) == len(out["speedup"]) == 2


def test_the_timings_explain_a_noisy_timing_once(monkeypatch, capsys):
    """The latency comparison and the throughput sweep each printed the whole noisy-timing paragraph
    under their lines: twice a model, four times in a cpu run's notebook 04."""
    from torch import nn

    from labutils import measure
    from labutils.labs import structured as lab

    monkeypatch.setattr(measure, "is_noisy", lambda *args, **kwargs: True)
    monkeypatch.setattr(lab, "count_macs", lambda model, size: 1)
    cfg = {"throughput": {"cpu": [1]}, "throughput_iters": 1, "latency_rounds": 1, "latency": {"cpu": [1]},
           "latency_warmup": 0, "latency_iters": 1}
    out = lab.timings(nn.Identity(), nn.Identity(), 8, cfg, mac_ratio=1.0)
    said = capsys.readouterr().out
    assert out["latency"]["cpu_batch1"]["noisy"] and out["throughput"]["cpu"]["noisy"]
    assert said.count(measure.NOISY_WHY) == 1 and said.rstrip().endswith(measure.NOISY_WHY), said


def _session_with_a_cnn_baseline(tmp_path):
    """A smoke Session with an untrained CNN saved as its baseline and a lighter recipe (one
    criterion, one CPU batch size): prune_structured in seconds, without the shared smoke run."""
    from labutils import Session

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    s.save(s.new_model("cnn"), "cnn", "before_pruning", {"accuracy": 0.1})
    s.profile["structured"]["cnn"].update(compare=["l1"], latency={"cpu": [1], "cuda": [1]},
                                          throughput={"cpu": [1], "cuda": [1]})
    return s


def test_an_interrupted_timing_keeps_the_fine_tuned_model_and_a_record_the_report_reads(tmp_path, monkeypatch,
                                                                                      capsys):
    """The timing ran before the save: an interrupt of a slow CPU sweep lost the fine-tuned model
    (review). Now it is saved first, its record saying the timing is missing."""
    from labutils.labs import report
    from labutils.labs import structured as lab

    s = _session_with_a_cnn_baseline(tmp_path)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(lab, "compare_latency", interrupt)
    with pytest.raises(KeyboardInterrupt):
        lab.prune_structured(s, "cnn")
    # The call for that model, not the cell: run again, it prunes the models it finished again (review).
    said = capsys.readouterr().out
    assert "lab.prune_structured(s, 'cnn') times the saved model without pruning it again" in said
    assert "the cell, run again, would prune and fine-tune again the models it finished" in said
    assert s.available("cnn", lab.STAGE)
    model, _ = s.load("cnn", lab.STAGE)  # the checkpoint its record names
    record = s.metrics("cnn", lab.STAGE)
    assert record["produced"] and count_parameters(model) == record["parameters"] < record["parameters_original"]
    assert record["latency"] == {"cpu": lab.TIMING_PENDING, "cuda": lab.TIMING_PENDING}
    assert set(record["throughput"]) == {"cpu", "cuda"} and lab.TIMING_PENDING.startswith("not measured")
    records = report.load_records(s.dirs, ["cnn"])
    entry = report.build_report(records)["structured_pruning"]["cnn"]
    assert entry["pruned_accuracy"] == record["accuracy"] and entry["pruning_percentage"] == record["pruning_percentage"]
    details = report.build_details(records, record["run"])["entries"]["cnn_after_structured_pruning"]
    assert details["latency"]["cpu"].startswith("not measured: the timing did not finish")
    for plot in (lab.plot_speed_vs_macs, lab.plot_throughput):  # the figures say it, not a KeyError
        title = plot({"cnn": record}).axes[0].get_title()
        assert title == "cnn\n(not measured on cpu, cuda: the timing did not finish)"  # not 190 characters twice
    assert lab.plot_speed_vs_macs({"cnn": record}).axes[0].get_legend() is None  # no bars to name

    monkeypatch.undo()  # the timing finishes: written into the saved record, the checkpoint as it was
    saved = s.dirs.checkpoint("cnn", lab.STAGE).read_bytes()
    monkeypatch.setattr(lab, "cut_and_finetune", interrupt)  # the saved model is timed, not pruned again
    done = lab.prune_structured(s, "cnn")
    assert s.dirs.checkpoint("cnn", lab.STAGE).read_bytes() == saved and done["checkpoint"] == record["checkpoint"]
    assert done == s.metrics("cnn", lab.STAGE) and done["latency"]["cpu_batch1"]["speedup"] > 0
    assert done["throughput"]["cpu"]["batch_sizes"] == [1]
    assert s.load("cnn", lab.STAGE)[1] is not None
    # finetune_seconds is the fine-tuning's, as in notebook 03; prune_seconds the whole cut-and-fine-tune.
    assert done["finetune_seconds"] == sum(step["seconds"] for step in done["steps"])
    assert done["prune_seconds"] > done["finetune_seconds"] > 0


def test_the_advice_after_an_interrupted_timing_names_the_call_for_that_model_only():
    """'Run the cell again to time the saved model without pruning it again': the cell prunes,
    fine-tunes and saves again every model it had finished; only the one whose timing is pending
    is just timed (review)."""
    from labutils.labs import structured as lab

    cells = json.loads((Path(__file__).parents[1] / "notebooks" / "04_structured_pruning.ipynb").read_text())["cells"]
    text = next("".join(c["source"]) for c in cells if "".join(c["source"]).startswith("## Prune, fine-tune, save"))
    assert 'times the saved model\nwithout pruning it again' in text
    assert '`lab.prune_structured(s, "<that model>")` times' in text
    assert "run the cell again" not in text.lower().replace("\n", " ")
    assert "Running the cell again\nprunes and fine-tunes again every model it had finished" in text
    assert "lab.prune_structured(s, name) for this model times the saved one" in lab.TIMING_PENDING


def _session_with_a_vit_scratch_baseline(tmp_path):
    """As ``_session_with_a_cnn_baseline``, for the smoke vit_scratch (3 heads per block)."""
    from labutils import Session

    s = Session("smoke", tmp_path, device="cpu", models=["vit_scratch"])
    s.save(s.new_model("vit_scratch"), "vit_scratch", "before_pruning", {"accuracy": 0.1})
    s.profile["structured"]["vit_scratch"].update(compare=["l1"], criterion="l1", latency={"cpu": [1], "cuda": [1]},
                                                  throughput={"cpu": [1], "cuda": [1]})
    return s


def test_a_step_that_removes_no_head_or_channel_is_refused_before_fine_tuning_and_saving(tmp_path, monkeypatch):
    """vit_scratch, steps [0.1]: 'cut 1 removes 0.0% of heads (and 9.9% of MLP neurons)', fine-tuned,
    then saved over the pruned model and its metrics as a 0.0% result; scope "global" alike (review).
    Only the last step is checked, the one saved: steps [0.1, 0.34] (MLP neurons only, then a third
    of the heads) were refused at their first cut (review)."""
    from labutils.errors import SettingsError
    from labutils.labs import structured as lab

    s = _session_with_a_vit_scratch_baseline(tmp_path)
    s.save(s.new_model("vit_scratch"), "vit_scratch", lab.STAGE, {"accuracy": 0.5})  # pruned before
    saved = s.dirs.checkpoint("vit_scratch", lab.STAGE).read_bytes(), s.metrics("vit_scratch", lab.STAGE)

    def never(*args, **kwargs):
        raise AssertionError("refused before this")

    monkeypatch.setattr(lab, "fit", never)
    recipe = s.profile["structured"]["vit_scratch"]
    recipe["steps"] = [0.05, 0.1]  # the last step removes no head: the model saved would be a 0.0% one
    with monkeypatch.context() as m:  # uniform: its counts need no scores, refused before the loaders
        m.setattr(s, "loaders", never)
        with pytest.raises(SettingsError, match=r"^vit_scratch: step 0.1 removes no head \(3 heads per block: one "
                                                r"head is 33%\): use a share of at least 0.17; nothing was"):
            lab.prune_structured(s, "vit_scratch")
    recipe["scope"] = "global"  # its ranking removed MLP neurons only: refused at the last cut, before its fit
    with pytest.raises(SettingsError, match=r"step 0.1 removes no head .*: scope 'global' ranked no head low "
                                            r"enough: use a larger share, or scope 'uniform' with at least 0.17"):
        lab.prune_structured(s, "vit_scratch")
    assert (s.dirs.checkpoint("vit_scratch", lab.STAGE).read_bytes(), s.metrics("vit_scratch", lab.STAGE)) == saved

    recipe.update(steps=[0.1, 0.34], scope="uniform")  # MLP neurons only, then a third of the heads: accepted

    class PastTheCheck(Exception):
        pass

    def past_the_check(*args, **kwargs):
        raise PastTheCheck

    with monkeypatch.context() as m:  # the uniform pre-check lets it through to the loaders
        m.setattr(s, "loaders", past_the_check)
        with pytest.raises(PastTheCheck):
            lab.prune_structured(s, "vit_scratch")
    train, test = s.loaders("vit_scratch", recipe["batch_size"])
    _, steps = lab.cut_and_finetune(s.new_model("vit_scratch").eval(), train, test,
                                    recipe | {"finetune": recipe["finetune"] | {"epochs": 0}}, "cpu")
    assert [step["pruning_percentage"] for step in steps] == [0, pytest.approx(100 / 3)]

    cnn = s.new_model("cnn").eval()  # a ResNet's channels: 0.5% of 64 rounds to none
    train, test = s.loaders("cnn", 64)
    with pytest.raises(SettingsError, match=r"^cnn 0.5%: step 0.005 removes no channel \(up to 64 channels per "
                                            r"group: one channel is 1.6%\): use a share of at least 0.01;"):
        lab.cut_and_finetune(cnn, train, test, s.profile["structured"]["cnn"] | {"steps": [0.005]}, "cpu",
                             desc="cnn 0.5%")


def test_a_criterion_in_compare_that_does_not_fit_the_model_is_refused_like_the_criterion(tmp_path, monkeypatch):
    """bn_scale in a ViT's compare was dropped without a word; as its criterion it was refused (review)."""
    from labutils.errors import SettingsError
    from labutils.labs import structured as lab

    s = _session_with_a_vit_scratch_baseline(tmp_path)
    monkeypatch.setattr(s, "loaders", lambda *args, **kwargs: pytest.fail("refused before the loaders"))
    s.profile["structured"]["vit_scratch"]["compare"] = ["l1", "bn_scale"]
    for call in (lambda: lab.print_recipes(s, ["vit_scratch"]), lambda: lab.prune_structured(s, "vit_scratch")):
        with pytest.raises(SettingsError, match=r"^vit_scratch: criterion 'bn_scale' in compare needs BatchNorm "
                                                r"\(the CNN only\); choose one of \('l1', 'l2', 'taylor'\)$"):
            call()
    assert not s.available("vit_scratch", lab.STAGE)
    lab.check_recipe(s.profile["structured"]["cnn"] | {"compare": ["l1", "bn_scale"]}, "cnn")  # the CNN has BatchNorms
    # The exercises' way in, compare_criteria: it dropped bn_scale for a ViT, without a word (review).
    with pytest.raises(SettingsError, match=r"^vit_scratch: criterion 'bn_scale' in compare needs BatchNorm"):
        lab.compare_criteria(s.new_model("vit_scratch").eval(), None, None, s.profile["structured"]["vit_scratch"])


def test_a_bad_steps_scope_or_multiple_is_refused_before_the_loaders_and_the_study(tmp_path, monkeypatch, capsys):
    """Refused only after the criteria study had printed its first line and the loaders were built
    (review): now by the recipe check, with the same messages."""
    from labutils.errors import SettingsError
    from labutils.labs import structured as lab

    s = _session_with_a_cnn_baseline(tmp_path)
    monkeypatch.setattr(s, "loaders", lambda *args, **kwargs: pytest.fail("refused before the loaders"))
    good = s.profile["structured"]["cnn"]
    for key, value, why in (("steps", [], "must be a non-empty list"), ("scope", "globl", "must be one of"),
                            ("multiple", 0, "must be")):
        s.profile["structured"]["cnn"] = good | {key: value}
        for call in (lambda: lab.print_recipes(s, ["cnn"]), lambda: lab.prune_structured(s, "cnn")):
            with pytest.raises(SettingsError, match=rf'^cfg\["{key}"\] = .* {why}'):
                call()
    assert capsys.readouterr().out == ""
    assert not s.available("cnn", lab.STAGE)


def test_notebook_04_before_02_stops_and_records_nothing(tmp_path):
    """Its loop printed "'cnn' NOT PRODUCED: ... run notebook 02 first" for each model, wrote their
    records and finished (interactive review): the first model now stops it, nothing written."""
    from labutils import Session
    from labutils.errors import SettingsError
    from labutils.labs import structured as lab

    s = Session("smoke", tmp_path, device="cpu", models=["cnn", "vit"])  # notebook 01 ran here, not 02
    with pytest.raises(SettingsError, match=r"no baseline of this run .* for MODELS \(cnn, vit\) .*: run notebook 02 "
                                            r"first"):
        lab.prune_structured(s, "cnn")
    assert sorted(p.name for p in s.dirs.metrics.iterdir()) == ["run.json"]
    s.record_missing("vit", "before_pruning", "no pretrained weights")  # notebook 02, offline: per model
    assert [lab.prune_structured(s, m)["produced"] for m in s.models] == [False, False]


def test_a_misspelt_model_name_writes_nothing(tmp_path):
    """prune_structured(s, "resnet") wrote a "not produced" record saying to run notebook 02; the
    equivalence check said "no baseline in this run" (review)."""
    from labutils import Session
    from labutils.errors import SettingsError
    from labutils.labs import structured as lab

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    before = sorted(p.name for p in (tmp_path / "metrics").iterdir())
    for call in (lambda: lab.prune_structured(s, "resnet"), lambda: lab.equivalence_check(s, "resnet")):
        with pytest.raises(ValueError, match=r"unknown model 'resnet'; choose from \['cnn', 'vit', 'vit_scratch'\]"):
            call()
    for call in (lambda: lab.equivalence_checks(s, ["cnn", "resnet"]), lambda: lab.print_recipes(s, ["resnet"])):
        with pytest.raises(SettingsError, match="unknown"):
            call()
    assert sorted(p.name for p in (tmp_path / "metrics").iterdir()) == before
    assert not (tmp_path / "models_saved" / "resnet_after_structured_pruning.pth").exists()


def test_a_recipe_whose_steps_are_empty_or_go_down_is_refused_before_any_cut():
    """steps=[] returned the dense model itself, unfine-tuned; [0.5, 0.25] made a second cut that
    removed nothing, recorded as "share 0.25" (review)."""
    import numpy as np

    from labutils.errors import SettingsError
    from labutils.labs import structured as lab
    from labutils.profiles import get_profile

    cfg = get_profile("smoke")["structured"]["cnn"]
    for steps, why in (([], "must be a non-empty list"), ([0.5, 0.25], "must increase"),
                       ([0.0, 0.5], "must be a number in")):
        with pytest.raises(SettingsError, match=rf'cfg\["steps"\] = .* {why}'):
            lab.cut_and_finetune(None, None, None, cfg | {"steps": steps}, "cpu")  # refused before the model is read
    with pytest.raises(SettingsError, match=r'cfg\["compare_shares"\] = \[\] must be a non-empty list'):
        lab.compare_criteria(None, None, None, cfg | {"compare_shares": []})
    with pytest.raises(SettingsError, match=r'cfg\["scope"\] = .globl. must be one of'):
        lab.check_values(cfg | {"scope": "globl"})
    lab.check_values(cfg | {"steps": np.array([0.25, 0.5]), "step_epochs": 0.5})  # an exercise's numpy, half an epoch
    lab.check_values(cfg | {"compare_shares": np.linspace(0, 0.75, 4)})  # 0: the dense point, as it always was
    lab.check_values(cfg | {"multiple": np.int64(8)})  # from a loop over np.array([1, 4, 8]) (diff review)
    with pytest.raises(SettingsError) as info:
        lab.check_values(cfg | {"compare_shares": [0.5, 0.25]})
    assert "must increase" in str(info.value) and "steps:" not in str(info.value)  # the hint is for steps


def test_one_key_means_one_share_in_a_vits_steps_and_criteria_study(tmp_path):
    """pruning_percentage was the share of heads at the top of a ViT's record (report.json's) but
    head channels plus MLP neurons in its steps and study points (review)."""
    from labutils import Session
    from labutils.labs import structured as lab
    from labutils.prune import structured as S

    s = Session("smoke", tmp_path, device="cpu", models=["vit_scratch"])
    model = s.new_model("vit_scratch").eval()
    groups, original = S.channel_groups(model), S.widths(model)
    cfg = s.profile["structured"]["vit_scratch"] | {"compare": ["l1"], "steps": [0.34]}
    cfg["finetune"] = cfg["finetune"] | {"max_steps": 1}
    train, test = s.loaders("vit_scratch", cfg["batch_size"])
    small, steps = lab.cut_and_finetune(model, train, test, cfg, "cpu")
    point = lab.compare_criteria(model, train, test, cfg)["criteria"]["l1"][0]
    kept = S.widths(small)
    for record in (steps[0], point):
        assert record["pruning_percentage"] == S.reported_share_removed(original, kept, groups) == pytest.approx(100 / 3)
        assert record["channels_removed_percentage"] == S.channel_share_removed(original, kept, groups)
        assert record["channels_removed_percentage"] != pytest.approx(record["pruning_percentage"])
    # The figure's x is the share of heads, from this record and from one written before the rename.
    old = dict(point, pruning_percentage=point["channels_removed_percentage"],
               reported_percentage=point["pruning_percentage"])
    del old["channels_removed_percentage"]
    assert lab._shares(point) == lab._shares(old)
    assert lab._point(point, "heads") == lab._point(old, "heads")


def test_a_cut_run_twice_on_the_same_loaders_gives_the_same_model_and_study(tmp_path):
    """Exercise 2 reused exercise 1's loader: each run scored, re-estimated and fine-tuned on later
    batches, so the cell run again gave another model (25.75% then 40.75%) and exercise 3's
    comparison another winner (interactive review); notebooks 03 and 06 reset the seeds."""
    from labutils import Session
    from labutils.labs import structured as lab

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    model = s.new_model("cnn").eval()
    cfg = s.profile["structured"]["cnn"] | {"criterion": "taylor", "compare": ["taylor"], "steps": [0.5]}
    cfg["finetune"] = cfg["finetune"] | {"max_steps": 2}
    train, test = s.loaders("cnn", cfg["batch_size"])
    runs = [lab.cut_and_finetune(model, train, test, cfg, "cpu")[0].state_dict() for _ in range(2)]
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    studies = [lab.compare_criteria(model, train, test, cfg)["criteria"] for _ in range(2)]
    assert studies[0] == studies[1]


def test_the_throughput_sweep_marks_the_points_that_fell_back_to_eager(monkeypatch, capsys):
    """The sweep's "CUDA graphs" label and record came from its first point: a capture that failed
    at a larger batch (out of memory at 4096) timed that point eagerly, and the line, the figure and
    the metrics still said "CUDA graphs" (review). Faked here: capture works at batch 1, fails at 8."""
    from torch import nn

    from labutils import measure
    from labutils.labs import structured as lab

    def graphed_call(fn, device, warmup=3):  # as accel.graphed_call: (call, None) or (fn, why not)
        return (fn, None) if fn().shape[0] == 1 else (fn, "capture failed: OutOfMemoryError: CUDA out of memory")

    monkeypatch.setattr(lab, "graphs_unavailable", lambda device: None)  # as on a GPU
    monkeypatch.setattr(measure, "graphed_call", graphed_call)
    monkeypatch.setattr(lab, "count_macs", lambda model, size: 1)
    cfg = {"throughput": {"cpu": [1, 8]}, "throughput_iters": 1, "latency_rounds": 2}
    sweep = lab.throughput(nn.Identity(), nn.Identity(), 8, cfg)["cpu"]
    assert sweep["graphs"] is False and sweep["graphs_per_batch"] == [True, False]
    assert "cpu (CUDA graphs except batch 8: eager) images/s dense -> pruned: batch 1" in capsys.readouterr().out
    fig = lab.plot_throughput({"cnn": {"produced": True, "throughput": {"cpu": dict(sweep, noisy=False)}}})
    top, bottom = fig.axes[:2]
    assert "cpu (CUDA graphs except batch 8: eager) dense" in top.get_legend_handles_labels()[1]
    assert [(t.get_text(), t.xy[0]) for t in bottom.texts] == [("eager", 8)]  # the point that fell back
    # Every point graphed: "CUDA graphs", no point marked; a record of an earlier version, one flag.
    assert lab._graphs_note(dict(sweep, graphs=True, graphs_per_batch=[True, True])) == " (CUDA graphs)"
    assert lab._graphs_note({"batch_sizes": [1, 8], "graphs": True}) == " (CUDA graphs)"
    assert lab._graphs_note({"batch_sizes": [1, 8], "graphs": False, "graphs_per_batch": [False, False]}) == ""
    assert lab._graphs_note(dict(sweep, graphs_per_batch=[False, True, False], batch_sizes=[1, 8, 64])) == (
        " (CUDA graphs except batches 1, 64: eager)")


def test_the_pruned_record_says_which_speed_modes_its_fine_tunes_ran(tmp_path, monkeypatch):
    """The recipe's compile=True was recorded where torch.compile failed and the fine-tunes ran
    eagerly (review): the record's "ran" says what ran."""
    from labutils.labs import structured as lab

    def broken_compile(model, mode=None):
        def call(x):
            raise RuntimeError("no C++ compiler found")
        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr(lab, "timings", lambda *args, **kwargs: {})  # not what is tested: no timing
    s = _session_with_a_cnn_baseline(tmp_path)
    s.profile["structured"]["cnn"]["finetune"]["compile"] = True
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        record = lab.prune_structured(s, "cnn")
    assert record["recipe"]["finetune"]["compile"] is True  # asked
    assert record["ran"] == {"compile": False, "graphs": False,
                             "why": "compile: torch.compile failed on the first step (RuntimeError: no C++ compiler found)"}
    assert all(step["history"][-1]["ran"] == record["ran"] for step in record["steps"] if step["history"])
