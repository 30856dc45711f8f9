"""Training throughput of every model the workbook trains, dense and pruned, in each speed mode.

Each case runs ``labutils.train.fit`` itself (the loop the notebooks use: device-side data and
augmentation, the device's mixed precision, channels_last and fused optimizers on CUDA, the
profile's recipe) on random uint8 images kept on the device. The first epoch pays for warm-up
(cuDNN autotuning, compilation, graph capture); images/s is counted over the later epochs only.

Cases (recipes from the ``full`` profile, batch sizes included):

* ``resnet18``     dense | ``unstructured-90``: 90% magnitude masks enforced every step |
                   ``structured-50``: half of every channel group removed (notebook 04's target)
* ``vit_scratch``  dense | ``unstructured-90`` | ``structured-33``: 2 of 3 heads, 512 of 768 MLP neurons
* ``resnet20``     dense | ``qat-4bit``: fake-quantized weights (notebook 06's fine-tuning)

Modes, one column each: ``eager``; ``compiled`` (torch.compile, default mode); ``reduce-overhead``
(torch.compile with CUDA graphs for forward and backward); ``graphs`` (``fit(graphs=True)``: the
whole step, optimizer included, captured in a CUDA graph); ``compiled+graphs``. A mode that cannot
run here says so ("n/a (needs CUDA)"); one where ``fit`` dropped part of it says what ran instead
("fell back to eager", "fell back to compiled, without CUDA graphs") in place of a number: that
number, the other mode's, is in the JSON as ``fallback_images_per_second`` beside ``fallback_mode``.

    python benchmarks/bench_train.py                      # CUDA: eager, compiled, graphs; CPU: eager, graphs (n/a)
    python benchmarks/bench_train.py --models resnet20 --modes eager,reduce-overhead --json bench.json
    python benchmarks/bench_train.py --smoke               # seconds on a CPU: narrow models, few images
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
import warnings

import torch

from labutils import train
from labutils.accel import compile_uses_cudagraphs, graphs_unavailable, precision_for
from labutils.artifacts import device_name, git_commit, write_json
from labutils.cli import positive, unwritable_json
from labutils.data import DeviceLoader
from labutils.errors import one_line
from labutils.models import build_model
from labutils.profiles import get_profile
from labutils.prune import MaskEnforcer, one_shot_prune
from labutils.quant import FakeQuantizer, QuantSpec
from labutils.train import fit, seed_everything

MODELS = ("resnet18", "vit_scratch", "resnet20")


def _recipe(model: str, smoke: bool) -> dict:
    """The ``full`` profile's recipe for ``model`` (what a real run trains with)."""
    full = get_profile("full")
    recipe = dict(full["quant"]["train"] if model == "resnet20" else
                  full["train"]["cnn" if model == "resnet18" else "vit_scratch"])
    recipe.pop("epochs", None)
    recipe.pop("compile", None)
    if smoke:
        recipe["batch_size"] = 32
    return recipe


def _arch(model: str, variant: str, smoke: bool) -> dict:
    """Architecture arguments of a case (narrow in smoke size)."""
    if model == "resnet18":
        width = 8 if smoke else 64
        kw = {"width": width}
        if variant.startswith("structured"):
            stages = [width // 2 * m for m in (1, 2, 4, 8)]
            kw = {"stages": stages, "inner": [[s, s] for s in stages]}
        return kw
    if model == "vit_scratch":
        kw = {"embed_dim": 48, "depth": 2} if smoke else {}
        depth = kw.get("depth", 12)
        if variant.startswith("structured"):
            kw.update(heads=[2] * depth, mlp_hidden=[kw.get("embed_dim", 192) * 4 * 2 // 3] * depth)
        return kw
    return {"width": 8 if smoke else 16}


def cases(models=MODELS) -> list[tuple[str, str]]:
    variants = {"resnet18": ("dense", "unstructured-90", "structured-50"),
                "vit_scratch": ("dense", "unstructured-90", "structured-33"),
                "resnet20": ("dense", "qat-4bit")}
    return [(m, v) for m in models for v in variants[m]]


def measure(model_name: str, variant: str, device: torch.device, compile: bool | str, images: int,
            epochs: int, smoke: bool = False, graphs: bool = False) -> dict:
    """Train one case for ``epochs`` epochs of ``images`` random images; images/s after the first."""
    seed_everything(0)
    recipe = _recipe(model_name, smoke)
    batch = recipe.pop("batch_size")
    model = build_model(model_name, **_arch(model_name, variant, smoke)).to(device)
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (images, 3, 32, 32), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 10, (images,), generator=gen)
    loader = DeviceLoader(pixels, labels, batch, True, device)
    callback, fq = None, None
    if variant.startswith("unstructured"):
        callback = MaskEnforcer(one_shot_prune(model, 0.9))
    elif variant.startswith("qat"):
        callback = fq = FakeQuantizer(model, QuantSpec(4), refresh_every=100)
    history = fit(model, loader, None, epochs=epochs, callback=callback, device=device,
                  desc=f"{model_name} {variant}", compile=compile, graphs=graphs, **recipe)
    if fq is not None:
        fq.finish()
    timed = history[1:] or history
    rate = sum(h["images"] for h in timed) / sum(h["train_seconds"] for h in timed)
    return {"model": model_name, "variant": variant,
            "compile_mode": (None if compile is False else "default" if compile is True else compile),
            "batch_size": batch,
            "optimizer": recipe["optimizer"], "mixup": recipe.get("mixup", 0.0),
            "parameters": sum(p.numel() for p in model.parameters()),
            "images_per_second": rate, "first_epoch_seconds": history[0]["train_seconds"],
            "steady_epoch_seconds": sum(h["train_seconds"] for h in timed) / len(timed),
            "steps_per_epoch": len(loader)}


MODES = {"eager": {}, "compiled": {"compile": True}, "reduce-overhead": {"compile": "reduce-overhead"},
         "graphs": {"graphs": True}, "compiled+graphs": {"compile": True, "graphs": True}}
FALLBACKS = ("CUDA graphs not used", "torch.compile is not available", "torch.compile failed")
CELL_FAILED, FELL_BACK = 3, 5  # exit statuses (EPILOG)
EPILOG = ("exit status: 0 every cell measured (or n/a here, or skipped at --time-limit); 1 an error ended the run; "
          "2 a bad option, refused before any work; 3 a cell failed; 5 none failed, but a cell fell back to "
          "another mode (its number is that mode's). Failed and fallen-back cells are listed on stderr at the end.")


def device_or_error(ap: argparse.ArgumentParser, preference: str):
    """The device --device names, or the parser's one-line error (exit status 2) saying what to use
    (no CUDA GPU, an unknown name): the benchmarks' other bad options end that way too."""
    try:
        return train.get_device(preference)  # looked up at the call: tests replace it
    except (RuntimeError, ValueError) as err:
        ap.error(str(err))


def fallback(mode: str, warned: list[str]) -> tuple[str, str]:
    """(the mode that ran, its note) where ``warned`` (messages starting with FALLBACKS) dropped part
    of ``mode``: a step whose CUDA graphs were dropped still ran the compiled code, and one whose
    compilation failed still ran in CUDA graphs."""
    graphs = MODES[mode].get("graphs") and not any(w.startswith(FALLBACKS[0]) for w in warned)
    compiled = MODES[mode].get("compile") and not any(w.startswith(FALLBACKS[1:]) for w in warned)
    if compiled:
        return "compiled", "fell back to compiled, without CUDA graphs"
    if graphs:
        return "graphs", "fell back to graphs, without torch.compile"
    return "eager", "fell back to eager"


def run_mode(model_name: str, variant: str, mode: str, device: torch.device, images: int, epochs: int,
             smoke: bool) -> dict:
    """One cell of the table: the case trained in ``mode``, or why it has no number."""
    kwargs = MODES[mode]
    # reduce-overhead is torch.compile with CUDA graphs: off CUDA it would time plain compiled code.
    uses_graphs = kwargs.get("graphs") or compile_uses_cudagraphs(kwargs.get("compile"))
    if uses_graphs and (reason := graphs_unavailable(device)):
        return {"model": model_name, "variant": variant, "mode": mode, "images_per_second": None,
                "note": "n/a (needs CUDA)", "reason": reason}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            row = measure(model_name, variant, device, kwargs.get("compile", False), images, epochs, smoke,
                          graphs=kwargs.get("graphs", False))
        except Exception as err:  # one case that breaks (out of memory, a compiler error) ends only its cell
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            return {"model": model_name, "variant": variant, "mode": mode, "images_per_second": None,
                    "note": "failed", "reason": one_line(err)}
    fallbacks = [str(w.message) for w in caught if str(w.message).startswith(FALLBACKS)]
    row["mode"] = mode
    if fallbacks:  # what ran was another mode: its number does not belong in this column
        ran, note = fallback(mode, fallbacks)
        row.update(fallback_images_per_second=row["images_per_second"], fallback_mode=ran, images_per_second=None,
                   note=note, reason=fallbacks[0])
    return row


def _cell(row: dict) -> str:
    return f"{row['images_per_second']:,.0f}" if row.get("images_per_second") else row.get("note", "-")


def table(rows: list[dict], modes: list[str]) -> str:
    """Markdown: one line per case, one column per mode (images/s)."""
    cells = {(r["model"], r["variant"], r["mode"]): _cell(r) for r in rows}
    lines = ["| model | case | " + " | ".join(modes) + " |", "|---|---|" + "---|" * len(modes)]
    for model_name, variant in dict.fromkeys((r["model"], r["variant"]) for r in rows):
        lines.append(f"| {model_name} | {variant} | "
                     + " | ".join(cells.get((model_name, variant, m), "-") for m in modes) + " |")
    return "\n".join(lines)


def problems(rows: list[dict]) -> list[str]:
    """A line for each cell that failed or fell back, for stderr at the end."""
    return [f"{r['note']}: {r['model']} {r['variant']} {r['mode']}" + (f": {r['reason']}" if r.get("reason") else "")
            for r in rows if r.get("note") == "failed" or r.get("note", "").startswith("fell back")]


def exit_status(rows: list[dict]) -> int:
    notes = [r.get("note", "") for r in rows]
    return CELL_FAILED if "failed" in notes else FELL_BACK if any(n.startswith("fell back") for n in notes) else 0


def settings(device: torch.device, smoke: bool = False) -> dict:
    """What the numbers were measured with (``smoke``: narrow models, not the real ones' numbers)."""
    cuda = device.type == "cuda"
    return {"device": device_name(device), "torch": torch.__version__, "python": platform.python_version(),
            "precision": precision_for(device), "memory_format": "channels_last" if cuda else "contiguous",
            "cudnn_benchmark": cuda, "fused_optimizer": cuda, "threads": torch.get_num_threads(),
            "git_commit": git_commit(paths=("labutils", "benchmarks")),  # an edited script is not the commit
            "smoke": smoke}


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=EPILOG)
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ",".join(MODELS))
    ap.add_argument("--modes", default="auto",
                    help="comma-separated subset of " + ",".join(MODES) + "; auto (default): eager, compiled, "
                         "graphs on CUDA; eager and graphs elsewhere (graphs then reads n/a)")
    ap.add_argument("--images", type=positive, default=None, help="images per epoch (default 50,000; smoke 128)")
    ap.add_argument("--epochs", type=positive, default=3, help="epochs per case; the first is not timed")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--smoke", action="store_true", help="narrow models and few images (CPU tests)")
    ap.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                    help="start no case after this many seconds (the rest are recorded as skipped)")
    ap.add_argument("--json", metavar="FILE", default=None, help="results, rewritten after every case")
    args = ap.parse_args(argv)
    if args.json and (problem := unwritable_json(args.json, "bench_train.json")):  # before, not after, the work
        ap.error(problem)

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        ap.error(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    if args.epochs < 2:
        ap.error("--epochs must be at least 2: the first epoch is warm-up")
    device = device_or_error(ap, args.device)
    modes = ((["eager", "compiled", "graphs"] if device.type == "cuda" else ["eager", "graphs"])
             if args.modes == "auto" else [m.strip() for m in args.modes.split(",") if m.strip()])
    if unknown := [m for m in modes if m not in MODES]:
        ap.error(f"unknown mode(s) {unknown}; choose from {', '.join(MODES)}")
    images = (128 if args.smoke else 50_000) if args.images is None else args.images
    # Fewer images than a batch train nothing: every cell would fail, telling of a batch_size there is no flag for.
    batch, model_name = max(((_recipe(m, args.smoke)["batch_size"], m) for m in models), default=(0, ""))
    if images < batch:
        ap.error(f"--images {images} is fewer than one batch of {model_name} ({batch}): give --images {batch} or more")
    info = settings(device, args.smoke)
    print(" | ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    info["argv"] = sys.argv[1:] if argv is None else list(argv)
    start, rows = time.perf_counter(), []
    for model_name, variant in cases(models):
        for mode in modes:
            began = time.perf_counter()
            if args.time_limit is not None and began - start > args.time_limit:
                row = {"model": model_name, "variant": variant, "mode": mode, "images_per_second": None,
                       "note": "skipped: time limit"}
            else:
                row = run_mode(model_name, variant, mode, device, images, args.epochs, args.smoke)
            row["wall_seconds"] = time.perf_counter() - began
            rows.append(row)
            detail = (f"(first epoch {row['first_epoch_seconds']:.1f}s, then {row['steady_epoch_seconds']:.2f}s)"
                      if row.get("images_per_second") else row.get("reason", ""))
            print(f"{model_name:12s} {variant:16s} {mode:16s} {_cell(row):>18s} images/s {detail} "
                  f"[{time.perf_counter() - start:.0f} s elapsed]", flush=True)
            if args.json:  # atomically, after every case: a run cut short keeps the cases done so far
                write_json(args.json, {"settings": info, "images_per_epoch": images, "epochs": args.epochs,
                                       "modes": modes, "rows": rows})
    print("\ntraining images/s (the first epoch not counted)\n" + table(rows, modes), flush=True)
    print(f"elapsed {time.perf_counter() - start:.0f} s", flush=True)
    for line in problems(rows):  # after the table, not only among the progress lines above it
        print(line, file=sys.stderr, flush=True)
    return rows


if __name__ == "__main__":
    sys.exit(exit_status(main()))
