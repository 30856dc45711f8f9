"""Inference throughput against batch size, dense vs structurally pruned, eager vs CUDA graphs.

Models (architectures of the ``full`` profile, random weights: speed does not depend on them):

* ``resnet18``     dense | half of every channel group removed (``labutils.prune.structured``, L1)
* ``vit_scratch``  dense | a third of the heads and MLP neurons removed

Each point is ``labutils.measure.measure_latency`` (eval, no_grad, the device's mixed precision,
channels_last on CUDA; median of ``--iters`` passes after warm-up). ``graphs`` replays each pass
from a CUDA graph: what is left is the GPU's own work, where the pruned model's fewer MACs can
show. The table gives images/s and the pruned model's speed-up (dense time / pruned time) per
batch size and mode; a mode that cannot run here reads "n/a (needs CUDA)".

    python benchmarks/bench_infer.py                 # CUDA: batch 1 ... 4096; CPU: 1 ... 256
    python benchmarks/bench_infer.py --smoke         # seconds on a CPU: narrow models, two batch sizes
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
import warnings
from pathlib import Path

import torch

from labutils.accel import graphs_unavailable, precision_for
from labutils.artifacts import device_name, git_commit, write_json
from labutils.cli import positive, unwritable_json
from labutils.errors import one_line
from labutils.measure import NOISY_WHY, count_macs, measure_latency
from labutils.models import build_model, count_parameters
from labutils.prune import structured as S
from labutils.train import seed_everything

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import device_or_error  # noqa: E402  (beside this file)

MODELS = {"resnet18": 0.5, "vit_scratch": 0.34}  # model -> share of units removed
MODES = ("eager", "graphs")
BATCHES = {"cuda": [1, 4, 16, 64, 256, 1024, 4096], "cpu": [1, 4, 16, 64, 256], "smoke": [1, 4]}
POINT_FAILED, FELL_BACK = 3, 5  # exit statuses (EPILOG)
EPILOG = ("exit status: 0 every point measured (or n/a here, out of memory, or skipped at --time-limit); 1 an "
          "error ended the run; 2 a bad option, refused before any work; 3 a point failed; 5 none failed, but a "
          "graphs point fell back to eager. Failed and fallen-back points are listed on stderr at the end.")


def positives(text: str) -> list[int]:
    """argparse type: comma-separated whole numbers of 1 or more."""
    values = [positive(b.strip()) for b in text.split(",") if b.strip()]
    if not values:
        raise argparse.ArgumentTypeError("give at least one batch size, e.g. 1,4,16")
    return values


def pair(name: str, smoke: bool) -> dict:
    """{"dense": model, "pruned": model}: the pruned one made by physically removing units."""
    seed_everything(0)
    kw = ({"width": 8} if name == "resnet18" else {"embed_dim": 48, "depth": 2}) if smoke else {}
    dense = build_model(name, **kw).eval()
    keep = S.select(S.importance(dense, "l1"), MODELS[name])
    return {"dense": dense, "pruned": S.remove_units(dense, keep).eval()}


def point(model, mode: str, batch: int, device, iters: int) -> dict:
    """One measurement, or why it has none."""
    if mode == "graphs" and (reason := graphs_unavailable(device)):
        return {"images_per_second": None, "note": "n/a (needs CUDA)", "reason": reason}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            r = measure_latency(model, 32, batch, device, warmup=3, iters=iters, graphs=mode == "graphs")
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            return {"images_per_second": None, "note": "out of memory"}
        except Exception as err:  # one point that breaks (a CPU out of memory, a capture error) ends only its cell
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            return {"images_per_second": None, "note": "failed",
                    "reason": one_line(err)}
    if mode == "graphs" and not r["graphs"]:
        return {"images_per_second": None, "note": "fell back to eager",
                "reason": next((str(w.message) for w in caught if "CUDA graphs" in str(w.message)), "")}
    return r


# What measure_latency's "noisy" means (measure.is_noisy), under every table that marks a cell.
NOISY_NOTE = f"* noisy: {NOISY_WHY}"


def _flag(*points: dict) -> str:
    return "*" if any(r.get("noisy") for r in points) else ""


def _ips(r: dict) -> str:
    return f"{r['images_per_second']:,.0f}{_flag(r)}" if r.get("images_per_second") else r.get("note", "-")


def _speedup(d: dict, p: dict) -> str:
    return f"{p['images_per_second'] / d['images_per_second']:.2f}x{_flag(d, p)}" if d.get("images_per_second") \
        and p.get("images_per_second") else "-"


def table(rows: list[dict], modes: list[str]) -> str:
    """Markdown, per model: one line per batch size; dense, pruned and speed-up per mode."""
    out = []
    for name in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == name]
        head = " | ".join(f"dense {m} | pruned {m} | speed-up {m}" for m in modes)
        out += [f"\n{name} ({mine[0]['mac_ratio']:.2f}x fewer MACs pruned), images/s",
                f"| batch | {head} |", "|---|" + "---|" * (3 * len(modes))]
        for batch in dict.fromkeys(r["batch_size"] for r in mine):
            cells = []
            for m in modes:
                r = next(r for r in mine if r["batch_size"] == batch and r["mode"] == m)
                cells += [_ips(r["dense"]), _ips(r["pruned"]), _speedup(r["dense"], r["pruned"])]
            out.append(f"| {batch} | " + " | ".join(cells) + " |")
    if any(_flag(r["dense"], r["pruned"]) for r in rows):
        out.append(f"\n{NOISY_NOTE}")
    return "\n".join(out)


def _points(rows: list[dict]):
    """(label, point) of every measurement: dense and pruned of each row."""
    return [(f"{r['model']} {variant} batch {r['batch_size']} {r['mode']}", r[variant])
            for r in rows for variant in ("dense", "pruned")]


def problems(rows: list[dict]) -> list[str]:
    """A line for each point that failed or fell back, for stderr at the end."""
    return [f"{p['note']}: {label}" + (f": {p['reason']}" if p.get("reason") else "") for label, p in _points(rows)
            if p.get("note") == "failed" or p.get("note", "").startswith("fell back")]


def exit_status(rows: list[dict]) -> int:
    notes = [p.get("note", "") for _, p in _points(rows)]
    return POINT_FAILED if "failed" in notes else FELL_BACK if any(n.startswith("fell back") for n in notes) else 0


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=EPILOG)
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ",".join(MODELS))
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of " + ",".join(MODES))
    ap.add_argument("--batches", type=positives, default=None,
                    help="comma-separated batch sizes (default: CUDA 1..4096, CPU 1..256, smoke 1,4)")
    ap.add_argument("--iters", type=positive, default=None, help="timed passes per point (default 20; smoke 2)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--smoke", action="store_true", help="narrow models, two batch sizes (CPU tests)")
    ap.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                    help="measure no point after this many seconds (the rest are recorded as skipped)")
    ap.add_argument("--json", metavar="FILE", default=None, help="results, rewritten after every batch size")
    args = ap.parse_args(argv)
    if args.json and (problem := unwritable_json(args.json, "bench_infer.json")):  # before, not after, the work
        ap.error(problem)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if unknown := [m for m in models if m not in MODELS] + [m for m in modes if m not in MODES]:
        ap.error(f"unknown model(s) or mode(s) {unknown}; models: {', '.join(MODELS)}; modes: {', '.join(MODES)}")
    device = device_or_error(ap, args.device)
    batches = args.batches or BATCHES["smoke" if args.smoke else "cuda" if device.type == "cuda" else "cpu"]
    iters = args.iters if args.iters is not None else 2 if args.smoke else 20
    info = {"device": device_name(device), "torch": torch.__version__, "python": platform.python_version(),
            "precision": precision_for(device), "threads": torch.get_num_threads(),
            "git_commit": git_commit(paths=("labutils", "benchmarks")),  # an edited script is not the commit
            "smoke": args.smoke}  # narrow models: not the numbers of the real ones
    print(" | ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    info["argv"] = sys.argv[1:] if argv is None else list(argv)
    start, rows = time.perf_counter(), []
    for name in models:
        models_ = pair(name, args.smoke)
        mac_ratio = count_macs(models_["dense"], 32) / count_macs(models_["pruned"], 32)
        size = {variant: count_parameters(model) for variant, model in models_.items()}  # smoke's are narrow
        for batch in batches:
            for mode in modes:
                row = {"model": name, "batch_size": batch, "mode": mode, "mac_ratio": mac_ratio,
                       "parameters": dict(size)}
                for variant, model in models_.items():  # dense and pruned in turn, alike under load
                    if args.time_limit is not None and time.perf_counter() - start > args.time_limit:
                        row[variant] = {"images_per_second": None, "note": "skipped: time limit"}
                    else:
                        row[variant] = point(model, mode, batch, device, iters)
                rows.append(row)
                print(f"{name:12s} batch {batch:5d} {mode:7s} dense {_ips(row['dense']):>16s}  "
                      f"pruned {_ips(row['pruned']):>16s}  speed-up {_speedup(row['dense'], row['pruned']):>6s} "
                      f"[{time.perf_counter() - start:.0f} s elapsed]", flush=True)
            if args.json:
                write_json(args.json, {"settings": info, "iters": iters, "rows": rows})
    print(table(rows, modes), flush=True)
    print(f"elapsed {time.perf_counter() - start:.0f} s", flush=True)
    for line in problems(rows):  # after the table, not only among the progress lines above it
        print(line, file=sys.stderr, flush=True)
    return rows


if __name__ == "__main__":
    sys.exit(exit_status(main()))
