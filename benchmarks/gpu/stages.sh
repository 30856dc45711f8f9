#!/usr/bin/env bash
# The background body of run_on_gpu.sh (which sets WORK, PROFILE, DRY_RUN, MODELS and the environment):
# each stage in turn; $WORK/stages records when each started and ended, and how.
set -uo pipefail
cd "$(dirname "$0")/../.."
note() { echo "$(date -u +%FT%TZ) $*" | tee -a "$WORK/stages"; }
stage() {
    local name=$1; shift
    note "start $name: $*"
    "$@"
    note "end $name: exit status $?"
}
for s in ${STAGES:-full}; do
    case $s in
    sweep)
        for model in ${SWEEP_MODELS:-cnn}; do
            args=(--model "$model" --out "$WORK/sweep" --budget-s "${SWEEP_BUDGET_S:-180}" --jobs "${SWEEP_JOBS:-3}")
            [ "$model" = cnn ] && args+=(--airbench)
            if [ "$DRY_RUN" = 1 ]; then args+=(--smoke); else args+=(--data-root "$LABUTILS_DATA"); fi
            stage "sweep-$model" python3 benchmarks/sweep.py "${args[@]}"
        done ;;
    full)
        # A run already started in $WORK/full (an earlier call on this machine) is continued.
        resume=(); [ -f "$WORK/full/metrics/pipeline.json" ] && resume=(--resume)
        stage full python3 -m labutils run --profile "$PROFILE" --models "$MODELS" \
            --out "$WORK/full" "${resume[@]}" ;;
    *) note "unknown stage $s (sweep, full): skipped" ;;
    esac
done
note "all stages ended"
