"""benchmarks/profile_step.py: the profiled steps of fit in smoke size on the CPU, and its CUDA
accounting on hand-made profiler events (no GPU here)."""
import gzip
import json

import pytest
from torch.autograd import DeviceType
from torch.autograd.profiler_util import FunctionEvent

from test_bench_train import _bench


def _check_shares(result):
    cats = result["categories"]
    assert set(cats) == {"data", "mixup", "optimizer", "grad_clip", "loss", "attention", "layer_norm", "gelu",
                         "drop_path", "other"}
    assert all(0.0 <= c["share"] <= 1.0 for c in cats.values())
    assert sum(c["share"] for c in cats.values()) == pytest.approx(1.0)
    assert sum(c["ms_per_step"] for c in cats.values()) == pytest.approx(result["busy_ms_per_step"])


def test_profile_vit_scratch_on_cpu_finds_its_attention_and_every_part_of_the_step(tmp_path, capsys):
    prof = _bench("profile_step")
    out = tmp_path / "p.json"
    r = prof.main(["--smoke", "--device", "cpu", "--batch-size", "16", "--warmup", "2", "--steps", "2",
                   "--json", str(out), "--out", str(tmp_path / "tables"), "--trace"])
    assert r["model"] == "vit_scratch" and r["mode"] == "eager" and r["compile_mode"] is None
    assert r["batch_size"] == 16 and r["steps"] == r["profiled_steps"] == 2
    assert r["step_ms"] > 0 and r["images_per_second"] == pytest.approx(16 / r["step_ms"] * 1e3)
    assert r["time_basis"] == "self CPU time of ops" and r["launches_per_step"] > 100
    _check_shares(r)
    # the ViT recipe: mixup, AdamW, clipping, cross-entropy on soft targets, drop-path in block 2
    for part in ("data", "mixup", "optimizer", "grad_clip", "loss", "attention", "layer_norm", "gelu",
                 "drop_path"):
        assert r["categories"][part]["share"] > 0, part
    # SDPA on a CPU runs its own flash kernel, forward and backward
    assert r["attention"]["kinds"] == ["flash"]
    assert {"aten::_scaled_dot_product_flash_attention_for_cpu",
            "aten::_scaled_dot_product_flash_attention_for_cpu_backward"} <= set(r["attention"]["names"])
    ms = [t["ms_per_step"] for t in r["top"]]
    assert ms == sorted(ms, reverse=True) and sum(t["share"] for t in r["top"]) == pytest.approx(1.0)
    assert json.loads(out.read_text())["categories"] == r["categories"]
    # a smoke profile says so: in its settings, with the command line, and in its files' names
    assert r["settings"]["smoke"] is True and r["settings"]["argv"][:2] == ["--smoke", "--device"]
    table = (tmp_path / "tables" / "profile_vit_scratch_eager_b16_smoke.txt").read_text()
    assert table.startswith("| op | category | calls/step | ms/step | share |")
    assert "attention kernels: flash" in table
    trace = json.loads(gzip.open(tmp_path / "tables" / "profile_vit_scratch_eager_b16_smoke.trace.json.gz").read())
    assert sum(e.get("name", "").startswith("ProfilerStep") for e in trace["traceEvents"]) == 2
    assert "| op | category |" in capsys.readouterr().out


def test_profile_resnet20_graphs_falls_back_and_finds_no_attention(monkeypatch):
    prof = _bench("profile_step")
    # bench_train's settings, which profile_step records: the code of labutils and of the benchmarks
    monkeypatch.setitem(prof.settings.__globals__, "git_commit", lambda root=None, paths=("labutils",): "+".join(paths))
    r = prof.main(["--smoke", "--device", "cpu", "--model", "resnet20", "--mode", "graphs", "--steps", "1"])
    assert r["settings"]["git_commit"] == "labutils+benchmarks"
    assert r["note"].startswith("fell back to eager: CUDA graphs not used")
    assert r["profiled_steps"] == 1 and r["attention"] == {"kinds": [], "names": []}
    # no attention in a ResNet, no mixup in its recipe
    assert r["categories"]["attention"]["share"] == r["categories"]["mixup"]["share"] == 0
    _check_shares(r)


def test_profile_compiled_graphs_that_drop_the_graphs_say_compiled_ran(monkeypatch, capsys):
    """Only the CUDA graphs failed, yet the note said "fell back to eager" while the compiled code ran
    (review): the note and the headline name the mode that ran, and the script exits 5."""
    import runpy
    import sys

    import torch

    monkeypatch.setattr(torch, "compile", lambda model, mode=None: model)  # compiles, in no time
    args = ["--smoke", "--device", "cpu", "--model", "resnet20", "--mode", "compiled+graphs", "--steps", "1"]
    r = _bench("profile_step").main(args)
    assert r["note"].startswith("fell back to compiled, without CUDA graphs: CUDA graphs not used")
    assert r["ran_mode"] == "compiled" and "resnet20 compiled, asked for compiled+graphs, batch 32" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["profile_step.py", *args])
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(_bench("profile_step").__file__), run_name="__main__")
    assert exit_.value.code == 5 and "fell back to compiled, without CUDA graphs" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--model", "resnet50"], "invalid choice: 'resnet50'"),
    (["--mode", "eager", "--compile-mode", "max-autotune"], "--compile-mode needs a compiling --mode"),
    (["--mode", "graphs", "--warmup", "3"], "fit captures the step at its 4th"),
    (["--trace"], "--trace needs --out DIR"),
    # a misspelt mode was a traceback after building the model, offering True and False
    (["--mode", "compiled", "--compile-mode", "max_autotune"], "--compile-mode must be one of default, "),
    (["--mode", "compiled", "--compile-mode", ""], "--compile-mode must be one of"),
])
def test_profile_step_refuses_bad_arguments_and_says_why(argv, message, capsys):
    with pytest.raises(SystemExit):
        _bench("profile_step").main(argv)
    assert message in capsys.readouterr().err


def test_profile_step_refuses_an_out_that_is_a_file_before_profiling(tmp_path, monkeypatch, capsys):
    """--out naming a file: a FileExistsError traceback after the whole profile, and --json never written."""
    prof = _bench("profile_step")
    monkeypatch.setattr(prof, "profile_case", lambda *a: pytest.fail("profiled before refusing --out"))
    blocker = tmp_path / "file"
    blocker.write_text("kept")
    for out, said in ((blocker, f"--out {blocker} is a file: give a folder"),
                      (blocker / "tables", f"cannot make the folder --out {blocker / 'tables'} (Not a directory)")):
        with pytest.raises(SystemExit) as exit_:
            prof.main(["--smoke", "--device", "cpu", "--out", str(out), "--json", str(tmp_path / "p.json")])
        assert exit_.value.code == 2 and said in capsys.readouterr().err
    assert blocker.read_text() == "kept"


def test_profile_step_writes_its_json_before_the_tables(tmp_path, monkeypatch):
    """A table that could not be written (a full disk, say) took the profile's --json result with it."""
    prof = _bench("profile_step")

    def full_disk(path, write):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(prof, "atomic_write_bytes", full_disk)
    with pytest.raises(OSError, match="No space left"):
        prof.main(["--smoke", "--device", "cpu", "--model", "resnet20", "--warmup", "2", "--steps", "1",
                   "--out", str(tmp_path / "tables"), "--json", str(tmp_path / "p.json")])
    assert json.loads((tmp_path / "p.json").read_text())["model"] == "resnet20"


def _event(name, start, end, parent=None, device=DeviceType.CPU, annotation=False):
    e = FunctionEvent(id=0, name=name, thread=0, start_us=start, end_us=end, device_type=device,
                      use_device="cuda", is_user_annotation=annotation)
    if parent is not None:
        e.cpu_parent = parent
        parent.append_cpu_child(e)
    return e


def test_device_time_is_split_by_kernel_and_by_the_ops_that_launched_them():
    """What the profiler hands back on a GPU, made by hand: kernels linked to their ops, the step's
    range mirrored on the device (not a kernel), one kernel linked to no op."""
    prof = _bench("profile_step")
    step = _event("ProfilerStep*", 0, 1000, annotation=True)
    data = _event(prof.DATA, 0, 100, step, annotation=True)
    index = _event("aten::index", 10, 20, data)
    sdpa = _event("aten::_scaled_dot_product_flash_attention", 200, 220, step)
    norm = _event("aten::native_layer_norm", 300, 310, step)
    loss = _event("aten::_log_softmax", 320, 330, step)
    opt = _event("Optimizer.step#AdamW.step", 400, 500, step, annotation=True)
    adam = _event("aten::_fused_adamw_", 410, 420, opt)
    kernels = [(index, "index_elementwise_kernel", 10), (sdpa, "pytorch_flash::flash_fwd_kernel<Flash_fwd>", 30),
               (norm, "vectorized_layer_norm_kernel", 20),
               (loss, "cunn_SoftMaxForward<4, float, float, float, LogSoftMaxForwardEpilogue>", 5),
               (adam, "multi_tensor_apply_kernel<FusedAdamMathFunctor<float, 4>>", 15)]
    device = [_event("ProfilerStep*", 0, 900, device=DeviceType.CUDA, annotation=True)]
    for op, name, us in kernels:
        op.append_kernel(name, 0, us)
        device.append(_event(name, 0, us, device=DeviceType.CUDA))
    device.append(_event("void graph_kernel", 0, 20, device=DeviceType.CUDA))  # linked to no op
    step.append_kernel("ProfilerStep*", 0, 900)  # the mirrored range, never a kernel
    r = prof.analyse([step, data, index, sdpa, norm, loss, opt, adam] + device, steps=1, on_device=True)
    assert r["launches_per_step"] == 6 and r["busy_ms_per_step"] == pytest.approx(0.1)
    shares = {c: v["share"] for c, v in r["categories"].items()}
    assert shares == pytest.approx({"data": 0.1, "mixup": 0.0, "optimizer": 0.15, "grad_clip": 0.0, "loss": 0.05,
                                    "attention": 0.3, "layer_norm": 0.2, "gelu": 0.0, "drop_path": 0.0,
                                    "other": 0.2})
    assert r["attention"] == {"kinds": ["flash"], "names": ["pytorch_flash::flash_fwd_kernel<Flash_fwd>"]}
    assert r["top"][0]["name"] == "pytorch_flash::flash_fwd_kernel<Flash_fwd>"
    assert {"name": "(device time linked to no op)", "category": "other", "calls_per_step": 1,
            "ms_per_step": pytest.approx(0.02), "share": pytest.approx(0.2)} in r["top"]


@pytest.mark.parametrize("names, category, kind", [
    (["fmha_cutlassF_bf16_aligned_64x64_rf_sm80", "aten::_efficient_attention_forward"], "attention",
     "mem-efficient"),
    (["cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16", "aten::_scaled_dot_product_cudnn_attention"],
     "attention", "cudnn"),
    (["aten::bmm", "aten::matmul"], "attention", "math"),
    (["triton_per_fused__softmax_5", "CompiledFunction"], "attention", "math"),
    (["triton_per_fused_native_layer_norm_7", "CompiledFunction"], "layer_norm", None),
    (["triton_poi_fused_gelu_3"], "gelu", None),
    (["aten::_log_softmax_backward_data", "LogSoftmaxBackward0"], "loss", None),
    (["aten::mul", "Optimizer.step#SGD.step"], "optimizer", None),
    (["aten::addmm", "aten::linear"], "other", None),
])
def test_names_decide_the_category_and_the_attention_kernel(names, category, kind):
    prof = _bench("profile_step")
    assert prof.categorise(names) == category
    if category == "attention":  # the kind is asked of attention's kernels only
        assert prof.attention_kind(names)[0] == kind


def test_profile_with_a_policy_counts_its_cost_as_data(tmp_path):
    prof = _bench("profile_step")
    common = ["--smoke", "--device", "cpu", "--model", "resnet20", "--batch-size", "16", "--warmup", "2",
              "--steps", "2", "--out", str(tmp_path)]
    plain = prof.main(common)
    strong = prof.main(common + ["--augment", "trivialaugment"])
    assert plain["augment"] is None and strong["augment"] == "trivialaugment"
    # 16 policy calls per batch on top of crop and flip: more data ops a step. Counted, not timed: on a
    # shared CPU the plain run's data took 9.3 ms a step and the policy's 4.2 (CI, 2026-12-07).
    def data_calls(result):
        return sum(t["calls_per_step"] for t in result["top"] if t["category"] == "data")

    assert data_calls(strong) > data_calls(plain)
    assert (tmp_path / "profile_resnet20_eager_b16_trivialaugment_smoke.txt").is_file()
    assert ", trivialaugment" in (tmp_path / "profile_resnet20_eager_b16_trivialaugment_smoke.txt").read_text()
