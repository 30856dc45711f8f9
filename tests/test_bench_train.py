"""The training benchmark in smoke size: every model and variant reports a positive throughput."""
import importlib.util
import json

import torch

from labutils.artifacts import REPO_ROOT


def _bench():
    spec = importlib.util.spec_from_file_location("bench_train", REPO_ROOT / "benchmarks" / "bench_train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_train_measures_every_case(tmp_path, capsys):
    bench = _bench()
    out = tmp_path / "bench.json"
    rows = bench.main(["--smoke", "--epochs", "2", "--json", str(out)])
    assert {(r["model"], r["variant"]) for r in rows} == set(bench.cases())
    assert {r["model"] for r in rows} == set(bench.MODELS)
    for r in rows:
        assert r["images_per_second"] > 0 and r["steady_epoch_seconds"] > 0 and r["compile_mode"] is None
    saved = json.loads(out.read_text())
    assert saved["settings"]["torch"] == torch.__version__ and saved["settings"]["device"].startswith("cpu")
    printed = capsys.readouterr().out
    assert "torch " + torch.__version__ in printed and printed.count("images/s") == len(rows)


def test_bench_train_uses_the_full_profile_recipes():
    bench = _bench()
    from labutils.profiles import get_profile

    full = get_profile("full")
    assert bench._recipe("resnet18", smoke=False)["batch_size"] == full["train"]["cnn"]["batch_size"]
    assert bench._recipe("vit_scratch", smoke=False)["mixup"] == full["train"]["vit_scratch"]["mixup"]
    assert bench._recipe("resnet20", smoke=False)["lr"] == full["quant"]["train"]["lr"]
