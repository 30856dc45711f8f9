#!/usr/bin/env bash
# On the GPU machine, from the repository root (the carried .gpu/ made by prepare.sh): install
# the wheels, write the data, then start the stages in the background, in their own process
# session, so they outlive this call while the machine stays warm. Returns at once.
#
#   bash benchmarks/gpu/run_on_gpu.sh                 # the full run, all models
#   MODELS=cnn bash benchmarks/gpu/run_on_gpu.sh      # the full run of cnn alone (and notebook 06): fits a 15-minute booking
#   STAGES="sweep full" bash benchmarks/gpu/run_on_gpu.sh   # the sweep (SWEEP_BUDGET_S), then the full run
#   DRY_RUN=1 bash benchmarks/gpu/run_on_gpu.sh       # on a CPU: smoke sizes, nothing installed
#
# Settings (environment): WORK (default /tmp/gpu: data, outputs, run.log), STAGES ("full"; "sweep full" runs the sweep first),
# MODELS (the full run's --models: "cnn,vit,vit_scratch" by default),
# SWEEP_MODELS ("cnn"; airbench94/96 join the cnn sweep), SWEEP_BUDGET_S (180 per model),
# SWEEP_JOBS (3: candidates trained at a time on the GPU, each in its own process).
# Then poll with wait.sh and bring the results back with collect.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
export WORK=${WORK:-/tmp/gpu} DRY_RUN=${DRY_RUN:-0} MODELS=${MODELS:-cnn,vit,vit_scratch}
# A mistyped STAGES or MODELS is refused first (stages.sh holds the words), and a dry run here
# refuses it as the device would, before the booking.
bash benchmarks/gpu/stages.sh --check || exit 2
if [ -f "$WORK/stages.pid" ] && kill -0 "$(cat "$WORK/stages.pid")" 2>/dev/null; then
    echo "error: the stages are already running (pid $(cat "$WORK/stages.pid")): poll with wait.sh" >&2
    exit 1
fi
# The copy sent to the GPU machine has no git metadata: prepare.sh's commit names the code there,
# once its hashes of that commit's files show this tree is it (tree_commit.sh; a typed
# LABUTILS_GIT_COMMIT of another commit is refused). A dry run here is named as a run here would
# be (git, or the files' fingerprint without it; a typed LABUTILS_GIT_COMMIT wins), and a .gpu/ of
# an earlier commit is not read where git names the tree.
if [ "$DRY_RUN" = 1 ] && { [ ! -d .gpu ] || git rev-parse --git-dir >/dev/null 2>&1; }; then
    LABUTILS_GIT_COMMIT=${LABUTILS_GIT_COMMIT:-$(python3 -c 'from labutils.artifacts import git_commit; print(git_commit())')}
else
    LABUTILS_GIT_COMMIT=$(bash benchmarks/gpu/tree_commit.sh)
fi
# Made only now: a refused tree leaves no $WORK, so collect.sh says the stages never started.
mkdir -p "$WORK"
export LABUTILS_GIT_COMMIT PYTHONUNBUFFERED=1
# The stages run a copy of the code: the device tool lays the tree anew at every call, and a later
# call must not change the code under a run in progress (the notebooks after it would run other code).
src="$WORK/src"
rm -rf "$src" && mkdir -p "$src" && cp -r labutils notebooks benchmarks pyproject.toml "$src/"
# The sweep (run as benchmarks/sweep.py, so not from the copy's root) imports the copy's labutils
# through it, not one installed from another checkout; the pipeline puts it first for its kernels.
export PYTHONPATH="$src${PYTHONPATH:+:$PYTHONPATH}"
if [ "$DRY_RUN" = 1 ]; then
    export PROFILE=smoke
else
    export PROFILE=full LABUTILS_DATA="$WORK/data"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/wheels/*.whl
    export PYTHONPATH="/tmp/site:$PYTHONPATH"
    [ -f "$WORK/data/cifar-10-batches-py/test_batch" ] || python3 .gpu/make_cifar10.py "$WORK/data"
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
fi
# Where this call's stages begin in run.log, which every call appends to: wait.sh reads their lines
# alone (it showed a resumed run's earlier lines, or a refused second sweep's scores, as current).
if [ -f "$WORK/run.log" ]; then stat -c %s "$WORK/run.log"; else echo 0; fi > "$WORK/run.log.offset"
setsid nohup bash "$src/benchmarks/gpu/stages.sh" >> "$WORK/run.log" 2>&1 < /dev/null &
echo $! > "$WORK/stages.pid"
# MODELS is the full run's: a sweep alone does not use it.
models=; for s in ${STAGES:-full}; do if [ "$s" = full ]; then models=", models $MODELS"; fi; done
echo "started stages '${STAGES:-full}' (pid $!, commit $LABUTILS_GIT_COMMIT, profile $PROFILE$models); log $WORK/run.log"
