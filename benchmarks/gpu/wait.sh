#!/usr/bin/env bash
# Poll the background stages for up to SECONDS (default 540: one call stays under 10 minutes),
# then print where they stand. Call it again at once while they run: an idle machine goes back.
# Where $OUT is set (a device call), $OUT/results.tar is refreshed every minute meanwhile, so a
# call stopped at its time limit still brings back the run as it was a minute before.
#
#   bash benchmarks/gpu/wait.sh [SECONDS]
#
# Exit status: 0 the stages ended (whether or not they succeeded: see the stages' lines), 3 still
# running, 2 no run on this machine. Chain collect.sh with ";", not "&&": it must run in every case.
WORK=${WORK:-/tmp/gpu}
end=$((SECONDS + ${1:-540})) collected=$SECONDS
if [ ! -f "$WORK/stages.pid" ]; then  # a fresh machine: the one that ran the stages went back
    echo "NO RUN ON THIS MACHINE: $WORK/stages.pid is missing (a fresh machine? the run and its outputs are lost)"
    exit 2
fi
# The lines of the stages the last run_on_gpu.sh started (run.log.offset: where they begin): run.log
# is appended to, and a resumed run's earlier lines, or a refused second sweep's first scores, were
# shown as current.
from=$(cat "$WORK/run.log.offset" 2>/dev/null || echo 0)
log() { tail -c +"$((from + 1))" "$WORK/run.log" 2>/dev/null; }
# Alive and not a zombie (ended, not yet reaped: kill -0 still finds it).
running() { kill -0 "$(cat "$WORK/stages.pid")" 2>/dev/null &&
            [ "$(awk '{print $3}' "/proc/$(cat "$WORK/stages.pid")/stat" 2>/dev/null)" != Z ]; }
while running && [ $SECONDS -lt $end ]; do
    sleep 10
    if [ -n "${OUT:-}" ] && [ $((SECONDS - collected)) -ge 60 ]; then
        bash "$(dirname "$0")/collect.sh" > /dev/null 2>&1 || true
        collected=$SECONDS
    fi
done
echo "--- stages"; cat "$WORK/stages" 2>/dev/null
# The pipeline's notebook lines, then the sweep's per candidate (sweep.py: "NAME: started (log: ...)",
# then "NAME: 93.10% [92.60%, 93.58%] on 10000 images, ..." or "NAME: failed (...)", "skipped (...)",
# "not run (...)"), each tailed on its own: notebook 03's 18 study lines ("...: 15.62% [...]") must
# not push the notebooks' lines out.
echo "--- progress"; log | grep -E "^== |^done:|^error|: error:|Error" | tail -12  # ": error:": argparse's
log | grep -E ": [0-9.]+% \[[0-9.]+%, [0-9.]+%\] on [0-9]+ images|: (started \(log:|failed \(|skipped \(|not run \()" |
    tail -12
echo "--- last lines"; log | tail -n 4
if running; then echo "STILL RUNNING: call wait.sh again now"; exit 3; fi
echo "FINISHED: run collect.sh"
