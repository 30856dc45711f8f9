"""labutils.measure: MAC counts against hand counts, latency results' shape and consistency."""
import time
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from labutils.measure import compare_latency, count_macs, measure_latency
from labutils.models import build_model


def tiny_cnn():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),    # 8x8x8 outputs, 3*9 MACs each
        nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),      # 16x4x4 outputs, 8*9 MACs each
        nn.Conv2d(16, 16, 3, padding=1, groups=4),     # 16x4x4 outputs, (16/4)*9 MACs each
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(16, 10))                             # 10 outputs, 16 MACs each


def test_count_macs_matches_hand_count():
    hand = 8 * 8 * 8 * 3 * 9 + 16 * 4 * 4 * 8 * 9 + 16 * 4 * 4 * 4 * 9 + 10 * 16
    assert count_macs(tiny_cnn(), 8) == hand
    assert count_macs(tiny_cnn(), (3, 8, 8)) == hand


def test_count_macs_divides_grouped_and_depthwise_convs_by_their_groups():
    """Each output of a conv with g groups reads in_channels / g input channels (a depthwise conv: one)."""
    model = nn.Sequential(
        nn.Conv2d(4, 8, 3, padding=1, groups=4, bias=False),  # depthwise, x2: 8x6x6 outputs, 1*9 MACs each
        nn.Conv2d(8, 2, (1, 3), padding=(0, 1), groups=2))    # 2x6x6 outputs, (8/2)*3 MACs each
    assert count_macs(model, (4, 6, 6)) == 8 * 6 * 6 * 1 * 9 + 2 * 6 * 6 * 4 * 3


def test_count_macs_vit_includes_attention_matmuls():
    model = build_model("vit_scratch", embed_dim=24, depth=1, num_heads=3, img_size=8, patch_size=4)
    tokens, dim, hidden = 2 * 2 + 1, 24, 96
    patch = 4 * dim * (3 * 16)                        # 4 patches, each a 3x4x4 -> 24 projection
    block = tokens * (dim * 3 * dim + dim * dim + dim * hidden + hidden * dim)
    attention = 2 * 3 * tokens * tokens * (dim // 3)  # q @ k^T and attn @ v
    head = 10 * dim
    assert count_macs(model, 8) == patch + block + attention + head


def test_count_macs_leaves_model_state_alone():
    model = tiny_cnn().train()
    count_macs(model, 8)
    assert model.training
    assert not any(m._forward_hooks for m in model.modules())


def test_count_macs_leaves_a_frozen_batchnorm_frozen():
    """Only the top-level mode was saved: model.train(True) put a BatchNorm frozen with .eval()
    back into training, where it updates its running statistics again."""
    model = tiny_cnn().train()
    model[1].eval()
    before = [m.training for m in model.modules()]
    count_macs(model, 8)
    assert [m.training for m in model.modules()] == before and not model[1].training
    model.eval()
    model[6].train()  # and the other way round: one layer training inside a model in eval mode
    before = [m.training for m in model.modules()]
    count_macs(model, 8)
    assert [m.training for m in model.modules()] == before


def test_noisy_why_names_all_three_reasons_and_the_benchmarks_print_it():
    """is_noisy flags a timing for its spread, other processes' CPU time and the load average;
    NOISY_WHY named only the first two, and bench_infer and bench_masks had wordings of their own."""
    from labutils.measure import NOISY_WHY
    from test_bench_train import _bench

    assert "25% of their median" in NOISY_WHY and "other processes" in NOISY_WHY and "load average" in NOISY_WHY
    assert _bench("bench_infer").NOISY_NOTE == f"* noisy: {NOISY_WHY}"
    assert _bench("bench_masks").NOISY_WHY is NOISY_WHY


def test_measure_latency_reports_consistent_numbers():
    model = tiny_cnn()
    r = measure_latency(model, 8, batch_size=4, device="cpu", warmup=1, iters=3)
    assert r["ms_per_batch"] > 0
    assert r["ms_per_image"] == pytest.approx(r["ms_per_batch"] / 4)
    assert r["images_per_second"] == pytest.approx(4000.0 / r["ms_per_batch"])
    assert model.training  # the caller's model is untouched (a copy was measured)


def test_measure_latency_sweeps_batch_sizes_eagerly_on_cpu():
    rows = [measure_latency(tiny_cnn(), 8, b, "cpu", warmup=1, iters=2) for b in (1, 4, 16)]
    assert [r["batch_size"] for r in rows] == [1, 4, 16]
    assert all(r["images_per_second"] > 0 and r["graphs"] is False and r["precision"] == "fp32" for r in rows)
    with pytest.warns(RuntimeWarning, match="CUDA graphs not used .*CUDA device"):
        forced = measure_latency(tiny_cnn(), 8, 2, "cpu", warmup=1, iters=1, graphs=True)
    assert forced["graphs"] is False and forced["ms_per_batch"] > 0


def test_measure_latency_rejects_missing_cuda():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        measure_latency(tiny_cnn(), 8, 1, "cuda")


def test_accuracy_interval_is_wilsons():
    from labutils.measure import accuracy_interval

    low, high = accuracy_interval(0.5, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    low, high = accuracy_interval(0.9, 10_000)
    assert low < 0.9 < high and (high - low) / 2 == pytest.approx(0.0059, abs=2e-4)
    assert accuracy_interval(1.0, 50)[1] == 1.0 and accuracy_interval(0.0, 50)[0] == 0.0
    with pytest.raises(ValueError, match="test images"):
        accuracy_interval(0.5, 0)


def test_mcnemar_and_holm_on_hand_examples():
    from labutils.measure import holm, mcnemar_p

    right, wrong = [True] * 20, [False] * 20
    # 5 images only the first gets right, 15 only the second: 2 * P(Bin(20, 1/2) <= 5) = 0.0414
    assert mcnemar_p(right[:5] + wrong[:15] + right, wrong[:5] + right[:15] + right) == pytest.approx(0.041389, abs=1e-6)
    assert mcnemar_p(right[:10] + wrong[:10], wrong[:10] + right[:10]) == 1.0  # 10 against 10
    assert mcnemar_p(right, right) == 1.0  # no image tells them apart
    with pytest.raises(ValueError, match="the same images"):
        mcnemar_p(right, right[:5])
    assert holm([0.01, 0.04, 0.03]) == [True, False, False]  # 0.01 <= 0.05/3; 0.03 > 0.05/2 stops
    assert holm([0.01, 0.02, 0.03]) == [True, True, True] and holm([]) == []


def test_study_verdict_says_which_differences_the_paired_test_shows():
    """'Real differences' came from non-overlapping intervals of the best, picked after looking,
    against 17 others: about a third of studies of equal models claimed one, while a clear one-point
    gap between two models that agree on most images passed as noise (review, reproduced)."""
    import itertools

    from labutils.labs.unstructured import study_verdict
    from labutils.measure import accuracy_interval, holm, mcnemar_p

    def row(method, sparsity, correct):
        acc = float(correct.float().mean())
        return {"method": method, "sparsity": sparsity, "epochs": 3, "accuracy": acc, "test_images": len(correct),
                "ci95": list(accuracy_interval(acc, len(correct)))}

    base = torch.arange(2000) % 10 != 0  # 90% right
    better = base.clone()
    better[torch.arange(0, 2000, 10)[:20]] = True  # right on 20 more, wrong on none: 91%
    a, b = row("one_shot", 0.5, better), row("gradual", 0.5, base)
    assert a["ci95"][0] < b["ci95"][1]  # the intervals overlap: the old verdict called this noise
    real = study_verdict([a, b], [better, base])
    assert "Shown worse than the best (one_shot 50%, 3 ep): gradual 50% 3 ep" in real and "1 pair" in real
    same = study_verdict([a, row("gradual", 0.5, better)], [better, better])
    assert "This study does not separate its methods, sparsities or budgets." in same

    torch.manual_seed(0)  # 18 equal models (independent errors, 90% right): few studies may claim a difference
    claims = 0
    for _ in range(40):
        correct = [torch.rand(2000) < 0.9 for _ in range(18)]
        verdict = study_verdict([row("one_shot", 0.5, c) for c in correct], correct)
        claims += "This study does not separate" not in verdict
        pairs = list(itertools.combinations(range(18), 2))
        assert f"{sum(holm([mcnemar_p(correct[i], correct[j]) for i, j in pairs]))} differ" in verdict
    assert claims <= 6  # Holm over every pair: about 5% of such studies, not a third


def test_the_final_recipes_best_method_says_whether_its_lead_is_real():
    """'best' took the highest point at the study's top sparsity even when every interval overlapped
    (the cpu run's ViT: 28.0% against 25.0% and 26.8% on 500 images), and said nothing of it. Its
    line now tests the lead as the study's verdict does: paired, on the same images, Holm-corrected."""
    from labutils.labs.unstructured import best_method

    def row(method, acc, sparsity=0.9):
        return {"method": method, "sparsity": sparsity, "epochs": 5, "accuracy": acc}

    def first(k, n=500):  # right on the first k images: nested models, every disagreement one way
        return torch.arange(n) < k

    torch.manual_seed(0)
    independent = [torch.rand(500) < p for p in (0.25, 0.28, 0.268)]  # errors on different images
    rows = [row("one_shot", 0.25), row("iterative", 0.28), row("gradual", 0.268), row("one_shot", 0.60, sparsity=0.5)]
    method, why = best_method(rows, independent + [first(300)])
    assert method == "iterative" and "at 90%, 5 ep: iterative (28.00%)" in why
    assert ("McNemar's test on the same images against the other methods at this point, Holm-corrected for 2 "
            "comparisons: not separated from one_shot and gradual, so it is the higher point, not a difference shown") in why
    # The same accuracies, nested: 15 and 9 images, all one way. Intervals overlap; pairing shows it.
    method, why = best_method(rows, [first(125), first(140), first(134), first(300)])
    assert method == "iterative" and why.endswith("Holm-corrected for 2 comparisons: ahead of one_shot and gradual")
    method, why = best_method(rows, [first(125), first(140), first(137), first(300)])  # 3 images: not shown
    assert why.endswith("not separated from gradual, so it is the higher point, not a difference shown (ahead of one_shot)")
    assert best_method([row("gradual", 0.3)], [first(150)])[1].endswith("the only method run there")
    # Rows set by hand, without the study's per-image scores: the higher point, untested, and said so.
    assert best_method(rows, None)[1].endswith("the higher point: no per-image scores in this kernel to test its lead")
    # An exact tie at the top: no higher point, and the method taken is said to be the first in order.
    level = [row("one_shot", 0.28), row("iterative", 0.28), row("gradual", 0.25)]
    method, why = best_method(level, [first(140), first(140), first(125)])
    assert method == "one_shot" and "one_shot (28.00%), level with iterative (the first in the study's order taken)" in why
    assert "not separated from iterative, so it is no higher point, not a difference shown (ahead of gradual)" in why
    assert best_method(level, None)[1].endswith("no higher point: no per-image scores in this kernel to test its lead")


def test_the_statistics_refuse_values_outside_0_to_1():
    """holm counted a NaN p-value as a rejection; a percentage given as an accuracy was a math
    domain error."""
    from labutils.measure import accuracy_interval, holm

    for p_values in ([float("nan"), 0.001], [0.001, 1.5]):
        with pytest.raises(ValueError, match="p-values must lie between 0 and 1"):
            holm(p_values)
    for accuracy in (91.2, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"must be a fraction from 0 to 1 \(91.2% is 0.912\)"):
            accuracy_interval(accuracy, 100)


def test_timings_taken_while_the_machine_is_busy_are_marked(monkeypatch):
    """Two runs on two cores slowed every pass of a latency 100-fold alike (626 against 7.1 ms per
    image), and notebook 05's table showed it as a result. A timing is marked noisy when its passes
    disagree, or when the CPU's load is above its cores plus one; the table says why."""
    import os

    from labutils import measure
    from labutils.evaluate import format_table

    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    monkeypatch.setattr(os, "getloadavg", lambda: (0.5, 0.5, 0.5))
    assert measure.is_noisy(0.3, "cpu") and not measure.is_noisy(0.05, "cpu")
    monkeypatch.setattr(os, "getloadavg", lambda: (float(os.cpu_count() + 2), 0.0, 0.0))
    assert measure.is_noisy(0.05, "cpu") and not measure.is_noisy(0.05, "cuda")  # GPU time is its own
    record = measure_latency(model, 8, 4, "cpu", iters=3)
    assert record["noisy"] and 0 <= record["spread"]

    row = {"name": "cnn_before_pruning", "accuracy": 0.9, "sparsity_all_parameters": 0.0, "parameters": 1e6,
           "nonzero_parameters": 1e6, "macs": 1e6, "size_bytes": 1e6, "ms_per_image": 626.0}
    table = format_table([row | {"timing_noisy": True}, row | {"name": "quiet", "timing_noisy": False}])
    lines = table.splitlines()
    assert lines[2].endswith("626.00 *") and lines[3].endswith("626.00")
    assert lines[-1] == f"* noisy timing: {measure.NOISY_WHY}"
    assert "noisy" not in format_table([row | {"timing_noisy": False}])
    monkeypatch.delattr(os, "getloadavg")  # Windows has none: the spread alone decides
    assert not measure.is_noisy(0.05, "cpu") and measure.is_noisy(0.3, "cpu")
    # Three passes, one slower (the profiles time 2 to 5): the quartiles lie inside the passes.
    clock = iter([0, 0.010, 1, 1.010, 2, 2.013]).__next__
    monkeypatch.setattr(measure, "time", SimpleNamespace(perf_counter=clock))
    monkeypatch.setattr(measure, "cpu_snapshot", lambda: (0.0, 0.0, 0.0))  # the fake clock is the passes' only
    assert measure_latency(model, 8, 4, "cpu", warmup=0, iters=3)["spread"] == pytest.approx(0.15)


def test_other_processes_using_the_cores_mark_the_timing_at_once(monkeypatch):
    """A process started a second before the passes slowed them 39-fold while the load average,
    which lags by a minute, still said the machine was quiet. The CPU time other processes use
    during the very passes timed now marks them: cores busy beyond those this run leaves free."""
    import os
    import subprocess
    import sys

    from labutils import measure

    monkeypatch.delattr(os, "getloadavg", raising=False)  # the load average is not what decides here
    free_on_cpu = max((os.cpu_count() or 1) - torch.get_num_threads(), 0)
    assert measure.is_noisy(0.05, "cpu", elsewhere=free_on_cpu + 0.5)
    assert not measure.is_noisy(0.05, "cpu", elsewhere=free_on_cpu)
    assert not measure.is_noisy(0.05, "cuda", elsewhere=(os.cpu_count() or 1) - 1)  # a GPU run needs one core
    # Real processes spinning on every core: this process's counters see them.
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        since = measure.cpu_snapshot()
        deadline = time.perf_counter() + 1.0
        while time.perf_counter() < deadline:
            torch.randn(64, 64) @ torch.randn(64, 64)
        assert measure.busy_elsewhere(since) > free_on_cpu + 0.25
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    # Faked counters: a window where others kept every core busy marks a real measurement.
    monkeypatch.setattr(measure, "busy_elsewhere", lambda since: float(os.cpu_count() or 1))
    assert measure_latency(nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10)), 8, 4, "cpu", iters=3)["noisy"]


def _fake_clock(monkeypatch):
    """measure's clock made fake; returns ``taking(*ms)``: a model whose successive forward passes
    (its copies' included) each advance that clock by the next of ``ms`` milliseconds."""
    from labutils import measure

    now = [0.0]
    monkeypatch.setattr(measure, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    monkeypatch.setattr(measure, "cpu_snapshot", lambda: (0.0, 0.0, 0.0))

    def taking(*ms):
        passes = iter(ms)  # in the closure, not on the module: measure_latency times a deep copy

        class Timed(nn.Linear):
            def forward(self, x):
                now[0] += next(passes) / 1000
                return x

        return Timed(1, 1)

    return taking


def test_measure_latency_reports_the_median_pass(monkeypatch):
    """The median resists the odd slow pass, and is not the best one (min 1, mean 12, median 3 ms)."""
    taking = _fake_clock(monkeypatch)
    record = measure_latency(taking(4.0, 1.0, 3.0, 50.0, 2.0), 8, 2, "cpu", warmup=0, iters=5)
    assert record["ms_per_batch"] == pytest.approx(3.0) and record["ms_per_image"] == pytest.approx(1.5)


def test_compare_latency_keeps_each_models_median_round_and_speedup_is_dense_over_pruned(monkeypatch):
    """Rounds alternate dense and pruned; each keeps its median round (not the best, worst or mean),
    and the speed-up is dense time / pruned time, above 1 when the pruned model is faster."""
    taking = _fake_clock(monkeypatch)
    dense, pruned = taking(30.0, 10.0, 14.0), taking(4.0, 100.0, 7.0)  # medians 14 and 7 ms
    cfg = {"latency": {"cpu": [2]}, "latency_rounds": 3, "latency_warmup": 0, "latency_iters": 1}
    point = compare_latency(dense, pruned, 8, cfg, mac_ratio=3.0)["cpu_batch2"]
    assert point["dense"]["ms_per_batch"] == pytest.approx(14.0)
    assert point["pruned"]["ms_per_batch"] == pytest.approx(7.0)
    assert point["speedup"] == pytest.approx(2.0) and point["mac_ratio"] == 3.0


def test_evaluate_records_how_it_timed_each_checkpoint(tmp_path, capsys):
    """ms_per_image came without its batch, device, precision or threads, and the JSON named no
    machine and no code: two evaluations could not be told apart from the file."""
    import json

    from labutils.artifacts import device_name
    from labutils.checkpoint import save_checkpoint
    from labutils.cli import main

    model = save_checkpoint(tmp_path / "m.pth", build_model("resnet20", width=4))
    out = tmp_path / "evaluate.json"
    assert main(["evaluate", str(model), "--no-accuracy", "--device", "cpu", "--json", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["device"] == device_name("cpu") and "git_commit" in saved
    row = saved["results"][0]
    assert row["latency_batch"] == 1 and row["device"] == "cpu" and row["precision"] == "fp32"
    assert row["threads"] == torch.get_num_threads() and row["ms_per_image"] > 0


def test_evaluate_shows_each_checkpoint_as_it_finishes_and_keeps_them_on_ctrl_c(synthetic_root, capsys, monkeypatch):
    """Nothing was printed until every checkpoint was done (20 s each on a CPU), and Ctrl-C ended in
    a traceback, the finished rows and the --json lost (review)."""
    import json

    import labutils.evaluate as E
    from labutils.checkpoint import save_checkpoint
    from labutils.cli import main

    models = synthetic_root / "models"
    paths = [str(save_checkpoint(models / f"{name}.pth", build_model("resnet20", width=4))) for name in "abc"]
    real, said_before_b = E.evaluate_checkpoint, []

    def ctrl_c_at_b(path, *args, **kwargs):
        if path.endswith("b.pth"):
            said_before_b.append(capsys.readouterr().err)
            raise KeyboardInterrupt
        return real(path, *args, **kwargs)

    monkeypatch.setattr(E, "evaluate_checkpoint", ctrl_c_at_b)
    out = synthetic_root / "evaluate.json"
    try:
        rc = main(["evaluate", *paths, "--data-root", str(synthetic_root), "--device", "cpu", "--json", str(out)])
    except KeyboardInterrupt:  # not let through: it would stop the whole test session
        pytest.fail("Ctrl-C ended labutils evaluate in a traceback")
    assert rc == 130
    assert "\n[1/3] a: " in said_before_b[0] and "% on 100 images, " in said_before_b[0]  # as a finished
    captured = capsys.readouterr()
    assert captured.out.splitlines()[2].split()[0] == "a"  # the table of the finished one
    assert f"interrupted: 2 of 3 checkpoint(s) not evaluated: {paths[1]} {paths[2]}" in captured.err
    saved = json.loads(out.read_text())
    assert [r["name"] for r in saved["results"]] == ["a"] and saved["results"][0]["test_images"] == 100
    assert saved["interrupted"] is True and saved["not_evaluated"] == paths[1:]


def test_evaluate_keeps_the_other_numbers_of_a_checkpoint_whose_test_images_are_not_found(tmp_path, capsys):
    """Its whole row was dropped, though parameters, MACs, zeros and size need no test images; a
    --data-root without CIFAR-10 said so once per checkpoint, after the work (review)."""
    import json

    from labutils.checkpoint import save_checkpoint
    from labutils.cli import main

    model = str(save_checkpoint(tmp_path / "m.pth", build_model("resnet20", width=4)))  # records no data folder
    out = tmp_path / "evaluate.json"
    assert main(["evaluate", model, "--device", "cpu", "--json", str(out)]) == 1
    captured = capsys.readouterr()
    row = captured.out.splitlines()[2].split()
    assert row[:3] == ["m", "-", "-"] and row[3].endswith("%") and row[4].endswith("M")  # no accuracy, the rest
    assert (f"error: {model}: accuracy not measured: ValueError: the checkpoint does not say which data it was "
            f"measured on; pass --data-root") in captured.err
    assert "[1/1] m: accuracy not measured (see below)" in captured.err
    saved = json.loads(out.read_text())
    assert saved["results"][0]["accuracy"] is None and saved["results"][0]["parameters"] > 0
    assert saved["failures"][0]["error"].startswith("accuracy not measured: ValueError")
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", model, "--device", "cpu", "--data-root", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --data-root {tmp_path / 'empty'}: CIFAR-10 is not in")
    assert "Or pass --no-accuracy: the other numbers need no test images" in err and "evaluating" not in err


def test_evaluate_of_a_smoke_checkpoint_whose_synthetic_images_are_gone_says_how_to_write_them_again(tmp_path, capsys):
    """It said "CIFAR-10 is not in .../data-synthetic ... download" it: real images scored the
    synthetic model 8.00% for its recorded 53.75% (review)."""
    import re
    import shutil

    from labutils import Session
    from labutils.cli import main

    s = Session("smoke", tmp_path, device="cpu", models=["cnn"], seed=3)
    s.prepare_data()
    model = str(s.dirs.checkpoint("cnn", "before_pruning"))
    s.save(s.new_model("cnn"), "cnn", "before_pruning", {"accuracy": 0.1})
    assert main(["evaluate", model, "--device", "cpu"]) == 0
    measured = capsys.readouterr().out.splitlines()[2].split()[1]
    shutil.rmtree(s.data_root)
    assert main(["evaluate", model, "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert (f"accuracy not measured: DataNotFoundError: the checkpoint's run measured it on synthetic images, "
            f"written into {s.data_root}, which are gone: any notebook of the run writes the same images again, "
            f"as does python -c") in err
    assert "download" not in err and "CIFAR-10" not in err
    exec(re.search(r'python -c "(.*?)"', err).group(1))  # the advice, followed: the same images as the run's
    assert main(["evaluate", model, "--device", "cpu"]) == 0
    assert capsys.readouterr().out.splitlines()[2].split()[1] == measured
