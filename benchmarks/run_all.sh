#!/usr/bin/env bash
# Every benchmark in one go, for one GPU booking (about 7 minutes on an H100, bounded under 10 by
# the time limits): training images/s per mode (eager, compiled, CUDA graphs, both), inference
# images/s against batch size (dense vs pruned, eager vs graphs), and the cost of keeping masks.
#
#   bash benchmarks/run_all.sh benchmarks/results/h100-YYYY-MM-DD     # logs and JSON land there
#   BENCH_SMOKE=1 bash benchmarks/run_all.sh /tmp/bench               # seconds on a CPU: the code paths
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bash benchmarks/run_all.sh RESULTS_FOLDER}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" LABUTILS_PLAIN_PROGRESS=1
if [[ -n "${BENCH_SMOKE:-}" ]]; then
  train=(--smoke --epochs 2 --modes eager,graphs) infer=(--smoke) masks=(--smoke)
else
  train=(--epochs 2 --images 25000 --modes eager,compiled,graphs,compiled+graphs --time-limit 420)
  infer=(--time-limit 75) masks=()
fi
SECONDS=0
python benchmarks/bench_train.py "${train[@]}" --json "$out/bench_train.json" 2>&1 | tee "$out/bench_train.log"
python benchmarks/bench_infer.py "${infer[@]}" --json "$out/bench_infer.json" 2>&1 | tee "$out/bench_infer.log"
python benchmarks/bench_masks.py "${masks[@]}" --json "$out/bench_masks.json" 2>&1 | tee "$out/bench_masks.log"
echo "all benchmarks: ${SECONDS} s (commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))" | tee "$out/elapsed.txt"
