#!/usr/bin/env bash
# The background body of run_on_gpu.sh (which sets WORK, PROFILE, DRY_RUN, MODELS and the environment):
# each stage in turn; $WORK/stages records when each started and ended, and how.
#
#   bash benchmarks/gpu/stages.sh --check    # STAGES and MODELS alone: exit 2, saying why, where wrong
set -uo pipefail
cd "$(dirname "$0")/../.."
# The stages the case below knows, and MODELS as the CLI's --models reads it. run_on_gpu.sh checks
# both before anything starts, a dry run too: an unknown STAGES word was only "skipped", and
# MODELS="cnn vit_scratch" (spaces, as SWEEP_MODELS) failed the full run with exit status 2, both
# found on the device after the machine had started.
known_stages="sweep full"
check_settings() {
    local s named=() unknown=() full=0
    for s in ${STAGES:-full}; do
        named+=("$s")
        if [[ " $known_stages " == *" $s "* ]]; then [ "$s" = full ] && full=1; else unknown+=("$s"); fi
    done
    if [ ${#unknown[@]} -gt 0 ] || [ ${#named[@]} -eq 0 ]; then
        echo "error: STAGES='${STAGES:-}' names ${unknown[*]:+unknown stage(s) }${unknown[*]:-no stage}: give space-separated words of:" \
             "$known_stages (e.g. STAGES=\"sweep full\"; unset, it is full)" >&2
        return 2
    fi
    [ $full = 1 ] || return 0  # a sweep alone does not use MODELS
    # course.py run alone, with no torch to import: its MODEL_NAMES are the names --models takes.
    python3 - "${MODELS:-}" <<'EOF'
import runpy, sys
names = runpy.run_path("labutils/course.py")["MODEL_NAMES"]
given = [m.strip() for m in sys.argv[1].split(",") if m.strip()]  # as labutils.cli's _csv
unknown = [m for m in given if m not in names]
if unknown or not given:
    print(f"error: MODELS={sys.argv[1]!r} names {'unknown model(s) ' + repr(unknown) if unknown else 'no model'}:"
          f" give comma-separated names of: {','.join(names)} (e.g. MODELS=cnn,vit_scratch; unset, all three)",
          file=sys.stderr)
    sys.exit(2)
EOF
}
if [ "${1:-}" = --check ]; then check_settings; exit; fi
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
