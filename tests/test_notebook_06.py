"""Notebook 06 (quantization) continues the shared smoke run and writes its study and figures."""
import json

import pytest

from figure_check import assert_series_apart
from labutils.checkpoint import load_checkpoint
from labutils.course import checkpoint_names
from labutils.pipeline import run_pipeline
from labutils.profiles import get_profile
from labutils.labs.quantization import SEED_RESULTS


@pytest.fixture(scope="module")
def with_pruned_cnn(smoke_run):
    """The shared run with notebook 03's pruned CNN, for 06's pruned-CNN (QAT) study: run alone,
    06 found none and skipped that study. In the whole suite 03's tests have already run it."""
    if not (smoke_run / "models_saved" / "cnn_after_unstructured_pruning.pth").exists():
        assert run_pipeline("smoke", smoke_run, notebooks=["03"])["failed"] is None
    return smoke_run


def test_notebook_06_smoke(with_pruned_cnn):
    smoke_run = with_pruned_cnn
    summary = run_pipeline("smoke", smoke_run, notebooks=["06"])
    assert summary["failed"] is None
    cfg = get_profile("smoke")["quant"]
    results = json.loads((smoke_run / "metrics" / "quantization.json").read_text())
    run = json.loads((smoke_run / "metrics" / "run.json").read_text())
    assert results["run"]["run_id"] == run["run_id"] and results["run"]["profile"] == "smoke"

    r20 = results["resnet20"]
    assert 0.0 <= r20["fp32_accuracy"] <= 1.0
    assert set(r20["ptq"]) == set(cfg["ptq_methods"])
    for method in cfg["ptq_methods"]:
        assert set(r20["ptq"][method]["accuracy"]) == {str(b) for b in cfg["ptq_bits"]}
        sizes = [r20["ptq"][method]["size_bits"][str(b)] for b in sorted(cfg["ptq_bits"])]
        assert sizes == sorted(sizes) and sizes[-1] < r20["size_bits_fp32"]  # fewer bits, smaller model
    assert set(r20["qat"]["accuracy"]) == {str(b) for b in cfg["qat_bits"]}
    assert set(r20["qat_control"]["accuracy"]) == set(r20["qat"]["accuracy"])
    assert set(r20["pruning"]) == set(cfg["prune"]["variants"])
    for name, v in r20["pruning"].items():
        assert abs(v["pruning_percentage"] - 100 * cfg["prune"]["sparsity"]) < 0.5
        assert ("qat" in v) == (name in cfg["prune"]["qat_variants"])
        if "qat" in v:
            assert v["qat"]["zeros_kept"] is True
            # Pruned + quantized beats dense + quantized on storage at the same bits.
            b = str(cfg["prune"]["bits"][-1])
            assert v["qat"]["size_bits"][b] < r20["qat"]["size_bits"][b]

    rows = {r["row"]: r for r in results["comparison_with_seed"]}
    assert rows["fp32"]["seed"] == SEED_RESULTS["fp32"]
    assert "QAT asymmetric 2b" in rows and "PTQ symmetric 6b" in rows
    assert results["seed_study"]["pruned80_qat"]["2"] == SEED_RESULTS["pruned80_qat"][2]

    cnn = results["cnn_after_unstructured_pruning"]
    # Notebook 03's pruned CNN is in the run (with_pruned_cnn): 06 studies it.
    assert "qat" in cnn and not cnn.get("skipped")

    model, ckpt = load_checkpoint(smoke_run / "models_saved" / "quantization" / "resnet20_baseline.pth")
    assert model.arch["name"] == "resnet20" and ckpt["meta"]["run_id"] == run["run_id"]
    # models_saved/ itself holds only the course's nine names (SPEC: exact names, 9 files)
    assert {p.name for p in (smoke_run / "models_saved").iterdir() if p.is_file()} <= set(checkpoint_names())
    assert ckpt["metrics"]["accuracy"] == r20["baseline"]["accuracy"]
    assert r20["test_images"] == cfg["eval_images"]
    for fig in ("06_accuracy_vs_bits.png", "06_accuracy_vs_size.png"):
        assert (smoke_run / "figures" / fig).stat().st_size > 10_000
    assert (smoke_run / "figures" / "06_pruned_cnn_quantized.png").is_file()
    # Redrawn here: every series can be told apart without its colour.
    from labutils.labs import quantization as lab
    assert assert_series_apart(lab.plot_bits(r20)) >= 12 and assert_series_apart(lab.plot_size(r20)) >= 4
    assert assert_series_apart(lab.plot_cnn(cnn)) >= 3


def test_resnet20_is_reused_only_for_the_recipe_it_was_trained_with(tmp_path, capsys):
    """After an edit of the QAT table's ResNet-20 (width, steps), a re-run reused the old model and
    recorded the new recipe beside it (interactive review)."""
    from labutils import Session
    from labutils.labs import quantization as lab

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    _, first = lab.resnet20_baseline(s)
    _, again = lab.resnet20_baseline(s)
    assert not first["reused"] and again["reused"] and "reusing resnet20_baseline.pth" in capsys.readouterr().out
    s.profile["quant"]["resnet20"] = dict(s.profile["quant"]["resnet20"], width=4)
    model, edited = lab.resnet20_baseline(s)
    assert not edited["reused"] and edited["made_with"]["resnet20"]["width"] == 4
    assert edited["parameters"] < first["parameters"]
    assert "trained with another recipe than cfg's resnet20 and train now: training again" in capsys.readouterr().out


def test_qat_and_pruning_give_the_same_model_when_run_twice(tmp_path):
    """Notebook 06's cells run twice (or after an exercise) gave other numbers: the seeds were
    not reset before its fine-tunes, as notebooks 03 and 04 reset them (interactive review)."""
    import torch

    from labutils import Session
    from labutils.labs import quantization as lab
    from labutils.quant import QuantSpec

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    cfg = lab.config(s)
    model, _ = lab.resnet20_baseline(s)
    train, test = lab.loaders(s)
    spec, variant, p = QuantSpec.parse(cfg["qat_method"], 4), next(iter(cfg["prune"]["variants"].values())), cfg["prune"]
    for make in (lambda: lab.qat(model, train, test, spec, lab.at_bits(cfg["qat"], 4))[0],
                 lambda: lab.prune(model, train, p["sparsity"], variant["scope"], variant["rounds"], p["finetune"])[0]):
        first, second = make().state_dict(), make().state_dict()
        assert all(torch.equal(first[k], second[k]) for k in first)


def test_float_control_is_qats_fine_tune_without_the_grid(tmp_path, monkeypatch, capsys):
    """QAT's gain mixed adapting to the grid with plain extra training; the control isolates the
    second: the same recipe and steps per bit width, one fit per distinct length."""
    import copy

    import torch

    from labutils import Session
    from labutils.labs import quantization as lab

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    model, _ = lab.resnet20_baseline(s)
    train, test = lab.loaders(s)
    recipe = dict(lab.config(s)["qat"], steps={"4": 2, "3": 2, "2": 3})
    fits = []
    real_train = lab._train
    monkeypatch.setattr(lab, "_train", lambda m, t, r, n, **kw: fits.append(n) or real_train(m, t, r, n, **kw))
    control = lab.float_control(model, train, test, [4, 3, 2], recipe)
    assert fits == [2, 3] and control["steps"] == {"4": 2, "3": 2, "2": 3}
    assert control["accuracy"]["4"] == control["accuracy"]["3"]
    # Exactly what QAT's recipe does to a float copy, and a copy that trained (not the baseline).
    again = copy.deepcopy(model)
    real_train(again, train, lab.at_bits(recipe, 2), 3)
    assert control["accuracy"]["2"] == lab._acc(again, test)
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    lab.print_qat_against_control({"accuracy": {"2": control["accuracy"]["2"] - 0.01}}, control)
    assert "the grid costs +1.00 pp" in capsys.readouterr().out


def test_methods_the_figures_do_not_name_take_no_named_methods_look():
    """A profile's own PTQ method fell back to the style of a named one by its position
    (review of the figure change)."""
    from labutils.labs import quantization as lab

    acc = {"accuracy": {"4": 0.5, "2": 0.1}, "size_bits": {"4": 10, "2": 5}}
    r20 = {"fp32_accuracy": 0.6, "size_bits_fp32": 40,
           "ptq": {"asymmetric/tensor/minmax": acc, "symmetric/channel/minmax": acc, "symmetric/tensor/mse": acc},
           "qat": dict(acc, method="asymmetric/tensor/minmax"),
           "pruning": {"global_iterative": {"pruning_percentage": 80.0, "ptq": acc, "qat": acc}}}
    assert assert_series_apart(lab.plot_bits(r20)) >= 3 + 2


def test_the_seed_comparison_gives_each_studys_loss_and_no_ok_near_chance(capsys):
    """A reduced run's 63% ResNet-20 against the seed's 91.5%: absolute numbers only said 'ours
    is lower'; and 15.56% against the seed's 8.99% at 2 bits was marked ok (student's reading)."""
    from labutils.labs import quantization as lab

    r20 = {"fp32_accuracy": 0.63, "qat": {"method": "asymmetric/channel/mse", "accuracy": {}}, "pruning": {},
           "ptq": {"asymmetric/channel/mse": {"accuracy": {"2": 0.1556, "4": 0.5876}}}}
    rows = {r["row"]: r for r in lab.comparison(r20)}
    assert rows["PTQ asymmetric 2b"]["near_chance"] and not rows["PTQ asymmetric 4b"]["near_chance"]
    assert rows["PTQ asymmetric 4b"]["ours_drop"] == pytest.approx(0.63 - 0.5876)
    assert rows["PTQ asymmetric 4b"]["seed_drop"] == pytest.approx(0.9151 - 0.8973)
    lab.print_comparison(list(rows.values()), reduced=True)
    out = capsys.readouterr().out
    assert "~  PTQ asymmetric 2b" in out and "ok PTQ asymmetric 2b" not in out
    line = next(x for x in out.splitlines() if "PTQ asymmetric 4b" in x)
    assert line.split() == ["PTQ", "asymmetric", "4b", "89.73%", "58.76%", "-30.97", "1.78", "4.24",
                            "asymmetric/channel/mse"]


def test_the_seed_comparison_sets_only_the_same_scheme_and_sparsity_beside_the_seeds_rows():
    """The seed's QAT rows are asymmetric and its pruned ones at 80%: a profile's symmetric QAT, or
    a 60% pruning, was set beside them under their names and marked ok."""
    from labutils.labs import quantization as lab

    qat = {"accuracy": {"4": 0.9, "2": 0.9}}
    r20 = {"fp32_accuracy": 0.92, "ptq": {}, "qat": dict(qat, method="asymmetric/channel/mse"),
           "pruning": {"global_iterative": {"pruning_percentage": 80.0, "qat": qat},
                       "layer_one_shot": {"pruning_percentage": 60.0, "qat": {"accuracy": {"4": 0.95, "2": 0.95}}}}}
    rows = {r["row"]: r for r in lab.comparison(r20)}
    assert rows["QAT asymmetric 4b"]["ours_from"] == "asymmetric/channel/mse"
    assert rows["pruned 80% + QAT 4b"]["ours"] == 0.9  # the 60% variant's 95% is not an 80% row
    symmetric = lab.comparison(r20 | {"qat": dict(qat, method="symmetric/tensor/minmax")})
    assert [r["row"] for r in symmetric] == ["fp32"]


def test_r20_read_before_its_cell_ran_names_the_cell():
    """After a restart, notebook 06's later cells (comparison, figures, results file) failed with a
    bare KeyError: 'ptq' when the sweeps' cells had not run in this kernel."""
    from labutils.errors import SettingsError
    from labutils.labs import quantization as lab

    r20 = lab.Results(fp32_accuracy=0.6, test_images=100)
    with pytest.raises(SettingsError, match="r20 has no 'ptq' results in this kernel yet: run the cell under "
                                            "'Post-training quantization' first"):
        lab.comparison(r20)
    with pytest.raises(SettingsError, match="'Quantization-aware fine-tuning'"):
        r20["qat"]
    with pytest.raises(KeyError):
        r20["nothing"]
    assert "qat" not in r20 and r20.get("qat") is None  # membership and get are a dict's


def test_a_skipped_pruned_cnn_section_draws_nothing_and_says_so(tmp_path, capsys):
    """Notebook 06's cell guarded plot_cnn with `if not cnn.get("skipped")` (logic in a cell)."""
    from labutils.labs import quantization as lab

    assert lab.plot_cnn({"skipped": True, "reason": "no pruned cnn"}, tmp_path / "f.png") is None
    assert capsys.readouterr().out.startswith("no figure: the pruned ResNet-18 section was skipped")
    assert not (tmp_path / "f.png").exists()


def test_a_skipped_pruned_cnn_section_removes_an_earlier_figure(tmp_path, capsys):
    """An earlier execution's figure stayed beside a results file saying "skipped" (review, reproduced)."""
    from labutils.labs import quantization as lab

    old = tmp_path / "06_pruned_cnn_quantized.png"
    old.write_bytes(b"an earlier run's figure")
    assert lab.plot_cnn({"skipped": True, "reason": "no pruned cnn"}, old) is None
    assert not old.exists()
    assert "removed the earlier 06_pruned_cnn_quantized.png" in capsys.readouterr().out


def test_an_unreadable_resnet20_checkpoint_is_trained_again(tmp_path, capsys):
    """A truncated baseline file raised CheckpointError although it would be retrained anyway."""
    from labutils import Session
    from labutils.labs import quantization as lab

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    path = s.dirs.models / lab.BASELINE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PK\x03\x04 cut off")
    _, metrics = lab.resnet20_baseline(s)
    assert not metrics["reused"] and "resnet20_baseline.pth unreadable (" in capsys.readouterr().out
    assert load_checkpoint(path)[1]["meta"]["run_id"] == s.run_id  # replaced by a readable one


def test_cfg_edits_reach_the_studies_and_the_results_file(tmp_path, monkeypatch, capsys):
    """The results file recorded a fresh copy of the profile and pruned_cnn_study, loaders and
    resnet20_baseline re-read it: cfg["ptq_bits"] = [3] was recorded as [6, 5, 4, 3, 2] (review)."""
    from labutils import Session
    from labutils.labs import quantization as lab

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    cfg = lab.config(s)
    cfg["ptq_bits"], cfg["qat"]["lr"], cfg["eval_images"] = [3], 0.5, 50
    cfg["train"] = dict(cfg["train"], steps=1)
    assert len(lab.loaders(s, cfg)[1].labels) == 50
    _, baseline = lab.resnet20_baseline(s, cfg)
    assert baseline["made_with"]["train"]["steps"] == 1
    r20 = {"fp32_accuracy": 0.5, "baseline": baseline, "ptq": {}, "pruning": {},
           "qat": {"method": "symmetric/channel/mse", "accuracy": {}}}
    written = lab.write_results(s, r20, {"skipped": True, "reason": "none"}, cfg)
    saved = json.loads((s.dirs.metrics / "quantization.json").read_text())
    assert saved["config"]["ptq_bits"] == [3] and saved["config"]["qat"]["lr"] == 0.5 == written["config"]["qat"]["lr"]
    assert "note:" not in capsys.readouterr().out
    lab.write_results(s, r20, {"skipped": True, "reason": "none"})  # the profile's: not what ResNet-20 ran
    assert "note: ResNet-20 was trained with other resnet20/train settings than cfg's" in capsys.readouterr().out
    # pruned_cnn_study sweeps with cfg's settings, not the profile's
    seen = {}
    monkeypatch.setattr(lab, "_pruned_cnn_missing", lambda s: None)
    monkeypatch.setattr(s, "load", lambda *a: (lab.build_model("resnet20", width=4), {"metrics": {}}))
    monkeypatch.setattr(lab, "ptq_sweep", lambda m, t, methods, bits, masks: seen.update(ptq=bits, images=len(t.labels)))
    monkeypatch.setattr(lab, "qat_sweep", lambda m, tr, t, method, bits, recipe, masks: seen.update(lr=recipe["lr"]))
    lab.pruned_cnn_study(s, cfg)
    assert seen == {"ptq": [3], "images": 50, "lr": 0.5}


def _record(s, **record):
    from labutils.artifacts import write_json

    write_json(s.dirs.metrics_file("cnn", "after_unstructured_pruning"), record)


def test_a_missing_pruned_cnn_says_which_way_it_is_missing(tmp_path):
    """A produced record whose .pth was gone was skipped as "notebook 03 has not written
    cnn_after_unstructured_pruning in this run" (review, reproduced)."""
    from labutils import Session
    from labutils.labs import quantization as lab

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    assert "(no metrics/cnn_after_unstructured_pruning.json): run notebook 03 first" in lab.pruned_cnn_study(s)["reason"]
    _record(s, run=dict(s.info, run_id="another-run"), produced=True)
    s.dirs.checkpoint("cnn", "after_unstructured_pruning").write_bytes(b"another run's weights")
    assert "has not written cnn_after_unstructured_pruning in this run" in lab.pruned_cnn_study(s)["reason"]
    s.dirs.checkpoint("cnn", "after_unstructured_pruning").unlink()
    _record(s, run=s.info, produced=False, reason="its pruning diverged")
    assert lab.pruned_cnn_study(s) == {"skipped": True, "reason": "its pruning diverged"}
    _record(s, run=s.info, produced=True)
    out = lab.pruned_cnn_study(s)
    assert out["skipped"] and "its checkpoint models_saved/cnn_after_unstructured_pruning.pth is missing" in out["reason"]


def test_an_unreadable_pruned_cnn_checkpoint_skips_the_section(tmp_path, capsys):
    """A cut-off cnn_after_unstructured_pruning.pth failed the cell with a CheckpointError, so
    write_results never ran and quantization.json (all the ResNet-20 results) was lost (review)."""
    from labutils import Session
    from labutils.labs import quantization as lab

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    s.save(s.new_model("cnn"), "cnn", "after_unstructured_pruning", {"accuracy": 0.1})
    path = s.dirs.checkpoint("cnn", "after_unstructured_pruning")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    out = lab.pruned_cnn_study(s)
    assert out["skipped"] and out["reason"].startswith(
        "notebook 03's checkpoint models_saved/cnn_after_unstructured_pruning.pth cannot be loaded (")
    assert out["reason"].endswith("run notebook 03 again")
    assert "pruned ResNet-18 section skipped: notebook 03's checkpoint" in capsys.readouterr().out


def test_a_run_without_cnn_says_so_where_the_pruned_cnn_is_missing(tmp_path):
    """A --models vit_scratch run was told "run notebook 03 first", though 03 prunes the run's models only."""
    from labutils import Session
    from labutils.artifacts import write_json
    from labutils.labs import quantization as lab

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"])
    write_json(s.dirs.metrics / "pipeline.json", {"run_id": s.run_id, "models": ["vit_scratch"]})
    assert lab.pruned_cnn_study(s)["reason"] == ("this run's models (vit_scratch) leave out cnn: start a run that "
                                                 "includes cnn to quantize the pruned ResNet-18")
