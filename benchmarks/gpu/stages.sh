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
    local s named=() unknown=() full=0 sweep=0
    for s in ${STAGES:-full}; do
        named+=("$s")
        if [[ " $known_stages " == *" $s "* ]]; then
            [ "$s" = full ] && full=1
            [ "$s" = sweep ] && sweep=1
        else
            unknown+=("$s")
        fi
    done
    if [ ${#unknown[@]} -gt 0 ] || [ ${#named[@]} -eq 0 ]; then
        echo "error: STAGES='${STAGES:-}' names ${unknown[*]:+unknown stage(s) }${unknown[*]:-no stage}: give space-separated words of:" \
             "$known_stages (e.g. STAGES=\"sweep full\"; unset, it is full)" >&2
        return 2
    fi
    # course.py run alone and sweep.py's MODELS read from its text, with no torch to import: the names
    # --models and sweep.py's --model take. Each stage's settings only where it runs (a sweep alone
    # does not use MODELS); SWEEP_MODELS="cnn,vit_scratch" (commas, as MODELS) failed on the device too.
    python3 - "$full" "${MODELS:-}" "$sweep" "${SWEEP_MODELS:-cnn}" "${SWEEP_JOBS:-3}" "${SWEEP_BUDGET_S:-180}" <<'EOF'
import ast, math, runpy, sys
full, models, sweep, sweep_models, jobs, budget = sys.argv[1:]
problems = []
if full == "1":
    names = runpy.run_path("labutils/course.py")["MODEL_NAMES"]
    given = [m.strip() for m in models.split(",") if m.strip()]  # as labutils.cli's _csv
    unknown = [m for m in given if m not in names]
    if unknown or not given:
        problems.append(f"MODELS={models!r} names {'unknown model(s) ' + repr(unknown) if unknown else 'no model'}:"
                        f" give comma-separated names of: {','.join(names)} (e.g. MODELS=cnn,vit_scratch; unset, all three)")
if sweep == "1":
    tree = ast.parse(open("benchmarks/sweep.py", encoding="utf-8").read())
    names = next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                 and any(getattr(target, "id", None) == "MODELS" for target in node.targets))
    unknown = [m for m in sweep_models.split() if m not in names]
    if unknown or not sweep_models.split():
        problems.append(f"SWEEP_MODELS={sweep_models!r} names {'unknown model(s) ' + repr(unknown) if unknown else 'no model'}:"
                        f" give space-separated names of: {' '.join(names)} (e.g. SWEEP_MODELS=\"cnn vit_scratch\")")
    if not (jobs.isdigit() and int(jobs) >= 1):
        problems.append(f"SWEEP_JOBS={jobs!r}: a whole number of 1 or more (candidates trained at a time)")
    try:
        seconds = float(budget)
    except ValueError:
        seconds = math.nan
    if math.isnan(seconds) or seconds < 0:
        problems.append(f"SWEEP_BUDGET_S={budget!r}: 0 or more seconds a model (inf: no limit)")
for problem in problems:
    print(f"error: {problem}", file=sys.stderr)
sys.exit(2 if problems else 0)
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
