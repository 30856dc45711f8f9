#!/usr/bin/env bash
# Here, after the session: file results.tar (collect.sh's) into the repository, then check README's
# results table against it. What is adopted, and what is refused: benchmarks/gpu/adopt.py.
#
#   bash benchmarks/gpu/adopt.sh PATH/results.tar [FOLDER]
#
# Exit status: 0 adopted (or a sweep alone filed), then the results test's; 1 refused, nothing changed;
# 2 the run refused but the sweep before it filed in FOLDER (nothing else changed, so no test is run).
set -euo pipefail
# PATH is the caller's: made absolute before the cd to the repository root (-m: a missing one too,
# for adopt.py to name it).
if [ $# -ge 1 ] && [[ $1 != -* ]]; then set -- "$(realpath -m -- "$1")" "${@:2}"; fi
cd "$(dirname "$0")/../.."
python3 benchmarks/gpu/adopt.py "$@"
python3 -m pytest -q tests/test_results.py
