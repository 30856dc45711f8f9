#!/usr/bin/env bash
# Here, after the session: file results.tar (collect.sh's) into the repository, then check README's
# results table against it. What is adopted, and what is refused: benchmarks/gpu/adopt.py.
#
#   bash benchmarks/gpu/adopt.sh PATH/results.tar [FOLDER]
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 benchmarks/gpu/adopt.py "$@"
python3 -m pytest -q tests/test_results.py
