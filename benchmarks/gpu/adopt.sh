#!/usr/bin/env bash
# Here, after the session: make the full run in results.tar the repository's reference run.
#
#   bash benchmarks/gpu/adopt.sh PATH/results.tar [FOLDER]
#
# Refuses a reduced run or a report without its sidecar. Copies the executed notebooks the run
# finished over notebooks/ (without papermill's injected-parameters cell, which would override the
# parameters cell a student edits; the values stay in their metadata; the others lose their outputs),
# the figures into figures/ (replacing the earlier run's), report.json and report_details.json into the root, the
# sweep's tables, the logs and metrics/pipeline.json into benchmarks/results/FOLDER/ (default
# <gpu>-<date>, which must not exist yet);
# regenerates README's results table and runs its test. Review with git diff, then commit.
set -euo pipefail
cd "$(dirname "$0")/../.."
tar=${1:?usage: bash benchmarks/gpu/adopt.sh PATH/results.tar}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar xf "$tar" -C "$tmp"
if [ ! -f "$tmp/full/report.json" ]; then
    echo "error: $tar holds no full/report.json: the run did not reach notebook 05" >&2
    exit 1
fi
if ! python3 - "$tmp/full" <<'PY'
import sys
from labutils.results import ResultsError, load_reference
try:
    load_reference(sys.argv[1])  # refuses a reduced run, or a report without its sidecar
except (ResultsError, ValueError) as err:
    sys.exit(f"error: {err}")
PY
then
    echo "error: $tar is not adopted (the reason is above); nothing was changed" >&2
    exit 1
fi
folder=benchmarks/results/${2:-$(python3 - "$tmp/full/report_details.json" <<'PY'
import json, re, sys
run = json.load(open(sys.argv[1]))["run"]
name = re.sub(r"[^a-z0-9]+", "-", run["device"].lower().replace("nvidia", "")).strip("-")
print(f"{name.split('-')[0]}-{run['date'][:10]}")
PY
)}
if [ -e "$folder" ]; then
    echo "error: $folder exists already: name another folder as the second argument" >&2
    exit 1
fi
# Only the notebooks the run finished: one cut short (the booking ran out in notebook 06, say)
# would show a half-run, and the repository's own copy may hold another run's outputs, so its
# outputs are cleared instead. Likewise only their figures, and none of an earlier run, stay.
python3 - "$tmp/full" <<'PY'
import json, shutil, sys
from pathlib import Path
import nbformat
from labutils.pipeline import as_workbook_notebook
run = Path(sys.argv[1])
finished = json.loads((run / "metrics" / "pipeline.json").read_text())["finished"]
for path in sorted(Path("notebooks").glob("*.ipynb")):
    if path.name in finished:
        shutil.copy(run / "notebooks" / path.name, path)
        as_workbook_notebook(path)  # students open these too: their parameters cell must govern
        continue
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, path)
    print(f"note: {path.name} did not finish in this run: its outputs in notebooks/ are cleared")
figures = Path("figures")
figures.mkdir(exist_ok=True)
for old in figures.glob("*.png"):
    old.unlink()
for fig in sorted((run / "figures").glob("*.png")):  # "03_study.png" comes from 03_*.ipynb
    if any(name.startswith(fig.name[:3]) for name in finished):
        shutil.copy(fig, figures / fig.name)
PY
mkdir -p "$folder"
cp "$tmp"/full/report.json "$tmp"/full/report_details.json .
cp "$tmp"/full/metrics/pipeline.json "$tmp"/run.log "$tmp"/stages "$folder"/
[ -d "$tmp/sweep" ] && cp "$tmp"/sweep/*.json "$tmp"/sweep/*.md "$folder"/
python3 -m labutils results-table --write-readme
python3 -m pytest -q tests/test_results.py
echo "adopted: notebooks/, figures/, report.json, report_details.json, README.md, $folder/"
echo "next: write $folder/README.md (machine, data, commit, what the sweep showed), review git diff, commit"
