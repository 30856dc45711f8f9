"""The ``full`` profile's own settings, rehearsed at toy size on the CPU.

The GPU recipe takes paths the smoke and cpu profiles never do: gradual final pruning, the study
kept to ``study_models``, probes and fine-tunes over whole splits (``None`` sizes, no step caps),
channel widths in multiples of 8, QAT epochs per bit width, a compiled ViT. A GPU booking is
short and rare: a path that fails only there would lose it. Here every notebook's code cells run
in this process, in order, on ``full`` with its switches kept and only its sizes shrunk
(``toy_full``): synthetic images in CIFAR-10's layout, smoke's narrow models, epochs and batches
cut down.
"""
import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

import labutils.profiles as P
from labutils.artifacts import read_json
from labutils.data import write_synthetic_cifar10

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
MODELS = ["cnn", "vit_scratch"]  # vit needs pretrained weights, which cannot be downloaded here

# Counts of images, batches and timing passes: a few, whatever the full recipe asks.
SMALL = {"batch_size": 32, "sensitivity_images": 64, "compare_images": 64, "score_batches": 1,
         "taylor_batches": 1, "bn_batches": 1, "max_trials": 2, "latency_warmup": 1, "latency_iters": 1,
         "latency_rounds": 1, "throughput_iters": 1, "refresh_every": 4}
# Lists of points (levels, shares, bit widths): the first and the last.
SHORTER = ("sensitivity_levels", "sweep_levels", "compare_shares", "ptq_bits", "qat_bits", "bits", "cnn_qat_bits")


def toy_full(value, key=None):
    """The full profile with its switches kept and its sizes shrunk: epochs to at most 2 (keyed
    dicts such as QAT's epochs per bit keep their keys), the counts in SMALL, smoke's model widths."""
    if key == "models":
        return P.MODELS["smoke"]
    if key == "epochs" and isinstance(value, dict):
        return {k: 1 for k in value}
    if isinstance(value, dict):
        return {k: toy_full(v, k) for k, v in value.items()}
    if key == "epochs" and isinstance(value, int):
        return min(value, 2)
    if key in SMALL and isinstance(value, int) and value:
        return min(value, SMALL[key])
    if key in ("cpu", "cuda") and isinstance(value, list):  # latency and throughput batch sizes
        return [b for b in value if b <= 16]
    if key in SHORTER and isinstance(value, list):  # every point costs evaluations or a fine-tune
        return value[:1] + value[-1:]
    return value


def run_cells(book: str, parameters: dict) -> dict:
    """Execute a notebook's code cells here, its ``parameters`` cell followed by ``parameters``
    (as papermill injects them); the Colab cell is skipped. Returns the notebook's namespace."""
    cells = json.loads((NOTEBOOKS / book).read_text())["cells"]
    namespace: dict = {}
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] != "code" or "google.colab" in source:
            continue
        exec(compile(source, f"{book}[{cells.index(cell)}]", "exec"), namespace)
        if "parameters" in cell["metadata"].get("tags", []):
            namespace.update(parameters)
    plt.close("all")  # a kernel's inline backend closes what it shows; this process keeps them open
    return namespace


@pytest.fixture(scope="module")
def toy_full_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy_full")
    write_synthetic_cifar10(folder / "data", n_train=256, n_test=128, seed=0)
    toy = toy_full({k: v for k, v in P.PROFILES["full"].items()})
    parameters = {"PROFILE": "full", "DEVICE": "cpu", "DATA_ROOT": str(folder / "data"),
                  "OUT_DIR": str(folder / "out"), "MODELS": MODELS, "STUDY_EPOCHS": [1],
                  "STUDY_SPARSITIES": [0.5, 0.9], "PLAYGROUND": False}
    spaces = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(P.PROFILES, "full", toy)
        for book in sorted(p.name for p in NOTEBOOKS.glob("0*.ipynb")):
            spaces[book[:2]] = run_cells(book, parameters)
    return folder / "out", spaces


def test_toy_full_keeps_every_switch_of_the_full_recipe():
    full, toy = P.PROFILES["full"], toy_full(P.PROFILES["full"])
    assert toy["unstructured"]["final_method"] == "gradual" and toy["unstructured"]["study_models"] == ["cnn"]
    assert toy["unstructured"]["probe_images"] is None and toy["unstructured"]["epoch_steps"] is None
    assert toy["structured"]["cnn"]["multiple"] == 8 and toy["train"]["vit_scratch"]["compile"] is True
    assert set(toy["quant"]["qat"]["epochs"]) == set(full["quant"]["qat"]["epochs"])
    assert toy["data"] == full["data"] and toy["reduced"] is False
    assert toy["train"]["cnn"]["epochs"] == 2 and full["train"]["cnn"]["epochs"] == 30  # the original is untouched


def test_every_notebook_runs_the_full_recipe_and_reports(toy_full_run):
    out, spaces = toy_full_run
    report = read_json(out / "report.json")
    assert set(report) == {"initial_accuracies", "unstructured_pruning", "structured_pruning"}
    for name in MODELS:
        for stage in ("before_pruning", "after_unstructured_pruning", "after_structured_pruning"):
            assert read_json(out / "metrics" / f"{name}_{stage}.json")["produced"], (name, stage)
            assert (out / "models_saved" / f"{name}_{stage}.pth").is_file()
        assert report["unstructured_pruning"][name]["pruning_percentage"] == pytest.approx(
            100 * P.PROFILES["full"]["unstructured"]["final"][name]["sparsity"], abs=0.5)
    # The study is kept to the CNN, and its methods include gradual pruning.
    assert set(spaces["03"]["studies"]) == {"cnn"}
    # Widths in multiples of 8 where the layer has more than 8 channels.
    kept = spaces["04"]["results"]["cnn"]
    assert kept["produced"] and kept["pruning_percentage"] > 0
    quant = read_json(out / "metrics" / "quantization.json")
    assert {str(b) for b in quant["resnet20"]["qat"]["accuracy"]} == {"5", "2"}  # QAT's epochs looked up per bit width
    assert math.isfinite(quant["resnet20"]["fp32_accuracy"])
