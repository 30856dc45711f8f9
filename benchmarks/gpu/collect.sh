#!/usr/bin/env bash
# Tar what the write-up needs into $OUT/results.tar: the executed notebooks, figures, report.json,
# report_details.json, the metrics JSON, the sweep's tables and the logs; no checkpoints, no data.
#
#   bash benchmarks/gpu/collect.sh
set -euo pipefail
WORK=${WORK:-/tmp/gpu}
dest=${OUT:?OUT is not set: run this as a device command, whose \$OUT comes back}/results.tar
# run_on_gpu.sh makes $WORK only once the tree passed its checks: a refused call leaves none.
cd "$WORK" 2>/dev/null || { echo "error: nothing to collect: $WORK is missing: the stages never started" \
    "(see the error above), or this is a fresh machine (the one that ran them went back)" >&2; exit 2; }
want=(run.log stages full/notebooks full/figures full/report.json full/report_details.json full/metrics sweep)
have=()
for p in "${want[@]}"; do [ -e "$p" ] && have+=("$p"); done
# tar refuses an empty list with a message of its own that says nothing of why.
if [ ${#have[@]} -eq 0 ]; then echo "error: nothing to collect: the stages never started (see the error above)" >&2; exit 2; fi
# Written beside and renamed: wait.sh refreshes it while the run goes on, and a call stopped at its
# time limit must still bring back a whole tar (the last one).
# GNU tar exits 1 when a file changed while it read it (run.log grows, papermill rewrites the
# notebook it runs): that tar is whole and current, so it is kept; any other failure is not.
status=0
tar cf "$dest.partial" --exclude='*.pth' --exclude='sweep/data-synthetic' --exclude='sweep/airbench' "${have[@]}" || status=$?
if [ "$status" -gt 1 ]; then rm -f "$dest.partial"; echo "error: tar failed ($status)" >&2; exit "$status"; fi
mv "$dest.partial" "$dest"
size=$(stat -c %s "$dest")
echo "wrote results.tar: ${have[*]} ($((size / 1024)) KiB)"
[ "$size" -lt $((16 * 1024 * 1024)) ] || echo "warning: over 16 MiB, it will not come back: leave out full/notebooks' figures?" >&2
