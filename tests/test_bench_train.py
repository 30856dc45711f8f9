"""The benchmarks in smoke size: every case that can run here reports a positive throughput
(training: every model, variant and mode; inference: dense and pruned at each batch size)."""
import importlib.util
import sys
import json
import types
import warnings

import torch

from labutils.artifacts import REPO_ROOT


def _bench(name="bench_train"):
    """benchmarks/NAME.py, imported without leaving benchmarks/ on sys.path for the other tests
    (sweep.py and profile_step.py put their folder there to import the scripts beside them)."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    saved = list(sys.path)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    return module


def test_bench_train_measures_every_case_in_each_mode(tmp_path, capsys):
    bench = _bench()
    out = tmp_path / "bench.json"
    rows = bench.main(["--smoke", "--epochs", "2", "--json", str(out)])
    assert {(r["model"], r["variant"]) for r in rows} == set(bench.cases())
    assert {r["model"] for r in rows} == set(bench.MODELS)
    eager = [r for r in rows if r["mode"] == "eager"]
    assert len(eager) == len(bench.cases())
    for r in eager:
        assert r["images_per_second"] > 0 and r["steady_epoch_seconds"] > 0 and r["compile_mode"] is None
    graphs = [r for r in rows if r["mode"] == "graphs"]
    if torch.cuda.is_available():
        assert all(r["images_per_second"] or r["note"] == "fell back to eager" for r in graphs)
    else:
        assert len(graphs) == len(eager) and all(r["note"] == "n/a (needs CUDA)" for r in graphs)
    saved = json.loads(out.read_text())
    assert saved["settings"]["torch"] == torch.__version__ and saved["settings"]["device"].startswith("cpu")
    assert saved["settings"]["precision"] == "fp32" and len(saved["rows"]) == len(rows)
    printed = capsys.readouterr().out
    assert "torch " + torch.__version__ in printed and printed.count("images/s") == len(rows) + 1
    # the side-by-side table: one line per case, one column per mode
    assert "| model | case | eager | graphs |" in printed
    assert f"| resnet18 | dense | {eager[0]['images_per_second']:,.0f} | n/a (needs CUDA) |" in printed
    assert "elapsed" in printed


def test_bench_train_marks_a_fallback_and_honours_the_time_limit(tmp_path, monkeypatch):
    """A mode that fell back to eager reports no number of its own; cases past the time limit
    are recorded as skipped."""
    bench = _bench()
    monkeypatch.setattr(bench, "graphs_unavailable", lambda device: None)  # as if on a GPU
    rows = bench.main(["--smoke", "--epochs", "2", "--models", "resnet20", "--modes", "eager,graphs",
                       "--images", "64"])
    graphs = [r for r in rows if r["mode"] == "graphs"]
    assert all(r["images_per_second"] is None and r["note"] == "fell back to eager"
               and r["fallback_images_per_second"] > 0 for r in graphs)
    # A clock that jumps 100 s once the first case has started: the second case must not start.
    ticks = iter([0.0, 0.0])
    monkeypatch.setattr(bench, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks, 100.0)))
    rows = bench.main(["--smoke", "--epochs", "2", "--models", "resnet20", "--modes", "eager",
                       "--time-limit", "50"])
    assert rows[0]["images_per_second"] > 0 and rows[1]["note"] == "skipped: time limit"


def test_bench_train_marks_a_compile_that_fails_on_its_first_step(monkeypatch):
    """The warning's wording changed ("torch.compile failed on the first step"): its eager speed
    was filed as the compiled one (review of the change)."""
    bench = _bench()

    def failing(model, mode=None):
        def call(x):
            raise RuntimeError("inductor failed")
        return call

    monkeypatch.setattr(torch, "compile", failing)
    rows = bench.main(["--smoke", "--epochs", "2", "--models", "resnet20", "--modes", "compiled", "--images", "64"])
    assert rows and all(r["images_per_second"] is None and r["note"] == "fell back to eager"
                        and "torch.compile failed on the first step" in r["reason"] for r in rows)


def test_bench_train_a_case_that_breaks_ends_only_its_cell(tmp_path, monkeypatch):
    bench = _bench()
    real = bench.measure

    def out_of_memory_when_compiled(model_name, variant, device, compile, *args, **kw):
        if compile:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")
        return real(model_name, variant, device, compile, *args, **kw)

    monkeypatch.setattr(bench, "measure", out_of_memory_when_compiled)
    rows = bench.main(["--smoke", "--epochs", "2", "--models", "resnet20", "--modes", "compiled,eager",
                       "--images", "64"])
    compiled = [r for r in rows if r["mode"] == "compiled"]
    assert compiled and all(r["note"] == "failed" and r["images_per_second"] is None
                            and r["reason"] == "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"
                            for r in compiled)
    # Every case has both cells, in order: the failed compiled cell ended nothing else.
    assert [r["mode"] for r in rows] == ["compiled", "eager"] * len(compiled)
    assert all(r["images_per_second"] > 0 for r in rows if r["mode"] == "eager")


def test_bench_train_a_compile_mode_with_cuda_graphs_reads_na_off_cuda(monkeypatch, capsys):
    """reduce-overhead is torch.compile with CUDA graphs: on a CPU it reported a number (plain
    compiled code under its name)."""
    bench = _bench()
    row = {"images_per_second": 100.0, "first_epoch_seconds": 1.0, "steady_epoch_seconds": 1.0}
    monkeypatch.setattr(bench, "measure", lambda model, variant, *a, **k: row | {"model": model, "variant": variant})
    rows = bench.main(["--smoke", "--epochs", "2", "--models", "resnet20", "--modes", "reduce-overhead"])
    assert rows and all(r["images_per_second"] is None and r["note"] == "n/a (needs CUDA)"
                        and r["reason"].startswith("CUDA graphs need") for r in rows)
    assert "| resnet20 | dense | n/a (needs CUDA) |" in capsys.readouterr().out
    row = bench.run_mode("resnet20", "dense", "compiled", torch.device("cpu"), 64, 2, True)
    assert row["images_per_second"] == 100.0  # torch.compile's default mode captures no graphs


def test_bench_train_uses_the_full_profile_recipes():
    bench = _bench()
    from labutils.profiles import get_profile

    full = get_profile("full")
    assert bench._recipe("resnet18", smoke=False)["batch_size"] == full["train"]["cnn"]["batch_size"]
    assert bench._recipe("vit_scratch", smoke=False)["mixup"] == full["train"]["vit_scratch"]["mixup"]
    assert bench._recipe("resnet20", smoke=False)["lr"] == full["quant"]["train"]["lr"]


def test_bench_infer_sweeps_batch_sizes_dense_and_pruned(tmp_path, capsys):
    bench = _bench("bench_infer")
    out = tmp_path / "infer.json"
    rows = bench.main(["--smoke", "--json", str(out)])
    assert {(r["model"], r["batch_size"], r["mode"]) for r in rows} == {
        (m, b, mode) for m in bench.MODELS for b in bench.BATCHES["smoke"] for mode in bench.MODES}
    for r in rows:
        assert r["mac_ratio"] > 1.3  # the pruned model really is smaller
        if r["mode"] == "eager" or torch.cuda.is_available():
            assert r["dense"]["images_per_second"] > 0 and r["pruned"]["images_per_second"] > 0
        else:
            assert r["dense"]["note"] == r["pruned"]["note"] == "n/a (needs CUDA)"
    assert len(json.loads(out.read_text())["rows"]) == len(rows)
    printed = capsys.readouterr().out
    assert "| batch | dense eager | pruned eager | speed-up eager | dense graphs |" in printed
    assert "elapsed" in printed


def test_bench_masks_times_both_enforcements(tmp_path):
    result = _bench("bench_masks").main(["--smoke", "--json", str(tmp_path / "masks.json")])
    assert set(result["images_per_second"]) == {"dense", "after-step", "gradients"}
    assert min(result["images_per_second"].values()) > 0 and min(result["enforcement_ms"].values()) > 0
    assert json.loads((tmp_path / "masks.json").read_text())["dense_step_ms"] > 0


def test_benchmarks_write_json_through_the_atomic_writer(tmp_path, monkeypatch):
    """labutils.artifacts.write_json: a run cut short leaves no half-written file, and no file of
    a fixed temporary name (bench.tmp beside bench.json) is overwritten or taken."""
    from labutils import artifacts

    written, real = [], artifacts.atomic_write_bytes

    def spy(path, write):
        written.append(str(path))
        return real(path, write)

    monkeypatch.setattr(artifacts, "atomic_write_bytes", spy)
    for name, args in (("bench_masks", ["--smoke", "--ops-only"]),
                       # every case skipped by the time limit: only the writing is under test
                       ("bench_train", ["--smoke", "--epochs", "2", "--models", "resnet20", "--modes", "eager",
                                        "--time-limit", "-1"]),
                       ("bench_infer", ["--smoke", "--models", "resnet18", "--modes", "eager", "--time-limit", "-1"])):
        out, mine = tmp_path / f"{name}.json", tmp_path / f"{name}.tmp"
        mine.write_text("not the benchmark's")
        _bench(name).main(args + ["--json", str(out)])
        assert str(out) in written and json.loads(out.read_text()), name
        assert mine.read_text() == "not the benchmark's", name


def test_a_compile_mode_with_cuda_graphs_says_so_where_it_cannot_have_them(monkeypatch):
    """compile="reduce-overhead" on a CPU compiled without its CUDA graphs, silently, where
    fit(graphs=True) warns. The warning is not one of bench_train's fallbacks to eager: the code
    was still compiled."""
    import warnings

    import pytest

    from labutils.accel import CompiledForward
    from labutils.models import build_model

    monkeypatch.setattr(torch, "compile", lambda model, mode=None: model)
    for mode in ("reduce-overhead", "max-autotune"):
        with pytest.warns(RuntimeWarning) as caught:
            forward = CompiledForward(build_model("resnet20", width=4), mode)
        message = str(caught[0].message)
        assert message.startswith(f"torch.compile mode {mode!r} uses CUDA graphs (CUDA graphs need a CUDA device")
        assert message.endswith("; compiled without them") and not message.startswith(_bench().FALLBACKS)
        assert not forward.cudagraphs  # no step to mark for graphs that are not there
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a mode without CUDA graphs has nothing to say
        CompiledForward(build_model("resnet20", width=4), "max-autotune-no-cudagraphs")


def test_importing_a_benchmark_leaves_sys_path_as_it_was():
    """sweep.py and profile_step.py put benchmarks/ first on sys.path, and the tests that imported
    them left it there for every test after them."""
    before = list(sys.path)
    for name in ("sweep", "profile_step", "bench_train"):
        _bench(name)
        assert sys.path == before, name


def _run_as_script(name, args, monkeypatch, capsys):
    """benchmarks/NAME.py run as from the command line; (its exit status, its stderr)."""
    import runpy

    import pytest

    monkeypatch.setattr(sys, "argv", [f"{name}.py", *args])
    monkeypatch.setattr(sys, "path", list(sys.path))  # bench_infer puts benchmarks/ there
    with pytest.raises(SystemExit) as exit_:  # no SystemExit at all: it exited 0
        runpy.run_path(str(REPO_ROOT / "benchmarks" / f"{name}.py"), run_name="__main__")
    return exit_.value.code, capsys.readouterr().err


def test_bench_train_exits_3_when_a_cell_failed_and_5_when_one_fell_back(monkeypatch, capsys):
    """Every cell "failed" and it exited 0, so run_all.sh counted the stage as passed (review)."""
    from labutils import train

    real = train.fit

    def broken(*a, **k):
        raise RuntimeError("CUDA error: an illegal memory access")

    args = ["--smoke", "--epochs", "2", "--models", "resnet20", "--modes", "eager", "--images", "64"]
    monkeypatch.setattr(train, "fit", broken)  # bench_train imports it when run
    status, err = _run_as_script("bench_train", args, monkeypatch, capsys)
    assert status == 3 and "failed: resnet20 dense eager: RuntimeError: CUDA error: an illegal memory access" in err

    def graphs_dropped(*a, **k):
        warnings.warn("CUDA graphs not used (a test); training eagerly", RuntimeWarning)
        return real(*a, **k)

    monkeypatch.setattr(train, "fit", graphs_dropped)
    status, err = _run_as_script("bench_train", args, monkeypatch, capsys)
    assert status == 5 and "fell back to eager: resnet20 qat-4bit eager: CUDA graphs not used (a test)" in err


def test_bench_infer_exits_3_when_a_point_failed_and_5_when_one_fell_back(monkeypatch, capsys):
    from labutils import accel, measure

    def broken(*a, **k):
        raise RuntimeError("capture failed")

    args = ["--smoke", "--models", "resnet18", "--batches", "1"]
    monkeypatch.setattr(measure, "measure_latency", broken)  # bench_infer imports it when run
    status, err = _run_as_script("bench_infer", args + ["--modes", "eager"], monkeypatch, capsys)
    assert status == 3 and "failed: resnet18 dense batch 1 eager: RuntimeError: capture failed" in err
    monkeypatch.setattr(accel, "graphs_unavailable", lambda device: None)  # as if on a GPU
    monkeypatch.setattr(measure, "measure_latency", lambda *a, **k: {"images_per_second": 10.0, "graphs": False})
    status, err = _run_as_script("bench_infer", args + ["--modes", "graphs"], monkeypatch, capsys)
    assert status == 5 and "fell back to eager: resnet18 pruned batch 1 graphs" in err


def test_bench_train_labels_a_fallback_by_the_mode_that_ran(monkeypatch):
    """compiled+graphs whose graphs alone were dropped ran the compiled code, and said "fell back to
    eager", filing compiled images/s as eager's (review)."""
    bench = _bench()
    monkeypatch.setattr(bench, "graphs_unavailable", lambda device: None)  # fit still drops them on a CPU
    monkeypatch.setattr(torch, "compile", lambda model, mode=None: model)  # compiles, in no time
    row = bench.run_mode("resnet20", "dense", "compiled+graphs", torch.device("cpu"), 64, 2, True)
    assert row["note"] == "fell back to compiled, without CUDA graphs" and row["reason"].startswith("CUDA graphs not used")
    assert row["fallback_mode"] == "compiled" and row["fallback_images_per_second"] > 0
    assert row["images_per_second"] is None and row["compile_mode"] == "default"
    graphs, failed = "CUDA graphs not used (x)", "torch.compile failed on the first step (y)"
    assert bench.fallback("compiled+graphs", [failed]) == ("graphs", "fell back to graphs, without torch.compile")
    assert bench.fallback("compiled+graphs", [graphs, failed])[0] == bench.fallback("graphs", [graphs])[0] == "eager"
    assert bench.fallback("reduce-overhead", [failed]) == ("eager", "fell back to eager")
