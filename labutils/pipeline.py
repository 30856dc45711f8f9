"""Run the workbook's notebooks in order with papermill (the batch way to use the workbook)."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from .artifacts import REPO_ROOT, resolve_out_dir, run_id_for, write_json
from .course import MODEL_NAMES

NOTEBOOK_DIR = REPO_ROOT / "notebooks"


class NotebookFailed(RuntimeError):
    """A notebook raised: the message names the notebook and the failing cell."""


def available_notebooks() -> dict[str, Path]:
    """{"01": notebooks/01_data.ipynb, ...} in order."""
    return {p.name[:2]: p for p in sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))}


def select_notebooks(ids: list[str] | None) -> list[Path]:
    books = available_notebooks()
    if not ids:
        return list(books.values())
    unknown = [i for i in ids if i not in books]
    if unknown:
        raise ValueError(f"unknown notebook(s) {unknown}; available: {', '.join(books)}")
    return [books[i] for i in sorted(ids)]


def run_pipeline(profile: str, out: str | os.PathLike | None = None, data_root: str | None = None,
                 models: list[str] | None = None, notebooks: list[str] | None = None,
                 seed: int = 0, device: str = "auto", vit_weights: str | None = None,
                 run_id: str | None = None) -> dict:
    """Execute the selected notebooks in order into ``out/notebooks``; stop at the first failure.

    Returns {"run_id", "out", "notebooks": {name: seconds}, "total_seconds"}; the same is
    written to ``out/metrics/pipeline.json``.
    """
    import papermill as pm

    out_dir = resolve_out_dir(profile, out)
    books = select_notebooks(notebooks)
    (out_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    # A run starts where the baseline is trained (notebook 01 or 02); later notebooks run alone
    # continue the run already in out_dir.
    starts = any(b.name[:2] in ("01", "02") for b in books)
    run_id = run_id or run_id_for(out_dir / "metrics", profile, fresh=starts)
    # Paths are made absolute here: the kernels run in out/notebooks, not in the caller's folder.
    params = {"PROFILE": profile, "OUT_DIR": str(out_dir), "DATA_ROOT": str(Path(data_root).resolve()) if data_root else "",
              "MODELS": list(models or MODEL_NAMES), "SEED": seed,
              "DEVICE": device, "RUN_ID": run_id, "VIT_WEIGHTS": str(vit_weights or "")}
    # The kernels inherit this: progress becomes one printed line per epoch, not redrawn bars.
    os.environ["LABUTILS_PLAIN_PROGRESS"] = "1"
    timings: dict[str, float] = {}
    summary = {"run_id": run_id, "profile": profile, "out": str(out_dir), "notebooks": timings}
    start = time.perf_counter()
    for book in books:
        target = out_dir / "notebooks" / book.name
        print(f"== {book.name} ({profile}) -> {target}", flush=True)
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(book), str(target), parameters=params, kernel_name="python3",
                                cwd=str(target.parent), progress_bar=False, log_output=True,
                                stdout_file=sys.stdout, stderr_file=sys.stderr)
        except pm.PapermillExecutionError as err:
            timings[book.name] = time.perf_counter() - t0
            _write_summary(out_dir, summary, start, failed=book.name)
            first_line = (err.source or "").strip().splitlines()[:1]
            raise NotebookFailed(
                f"{book.name} failed in cell {err.cell_index} (execution count {err.exec_count}"
                f"{': ' + first_line[0] if first_line else ''}): {err.ename}: {err.evalue}\n"
                f"The executed notebook with the full traceback is {target}") from None
        timings[book.name] = time.perf_counter() - t0
        print(f"== {book.name} done in {timings[book.name]:.0f}s", flush=True)
        # Written after each notebook, so the report notebook sees the earlier ones' times.
        _write_summary(out_dir, summary, start)
    return _write_summary(out_dir, summary, start)


def _write_summary(out_dir: Path, summary: dict, start: float, failed: str | None = None) -> dict:
    from .artifacts import read_json

    summary = dict(summary, total_seconds=time.perf_counter() - start, failed=failed)
    write_json(out_dir / "metrics" / "pipeline.json", summary)
    # The report's sidecar carries the run's timings; the report notebook cannot time itself.
    details = out_dir / "report_details.json"
    if details.is_file():
        sidecar = read_json(details)
        if sidecar.get("run", {}).get("run_id") == summary["run_id"]:
            write_json(details, dict(sidecar, timings=summary))
    return summary
