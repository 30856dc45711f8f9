#!/usr/bin/env bash
# Here, after the session: make the full run in results.tar the repository's reference run.
#
#   bash benchmarks/gpu/adopt.sh PATH/results.tar [FOLDER]
#
# Refuses a reduced run or a report without its sidecar. Copies the executed notebooks over
# notebooks/ (without papermill's injected-parameters cell, which would override the parameters
# cell a student edits; the values stay in their metadata), the figures into figures/, report.json and report_details.json into the root, the
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
if ! python3 -m labutils results-table --root "$tmp/full" > /dev/null; then  # refuses a reduced run
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
cp "$tmp"/full/notebooks/*.ipynb notebooks/
# The committed notebooks are also the ones students open: their parameters cell must govern.
python3 -c 'import sys; from labutils.pipeline import as_workbook_notebook as w; [w(p) for p in sys.argv[1:]]' notebooks/*.ipynb
mkdir -p figures "$folder"
cp "$tmp"/full/figures/*.png figures/
cp "$tmp"/full/report.json "$tmp"/full/report_details.json .
cp "$tmp"/full/metrics/pipeline.json "$tmp"/run.log "$tmp"/stages "$folder"/
[ -d "$tmp/sweep" ] && cp "$tmp"/sweep/*.json "$tmp"/sweep/*.md "$folder"/
python3 -m labutils results-table --write-readme
python3 -m pytest -q tests/test_results.py
echo "adopted: notebooks/, figures/, report.json, report_details.json, README.md, $folder/"
echo "next: write $folder/README.md (machine, data, commit, what the sweep showed), review git diff, commit"
