#!/usr/bin/env bash
# Every benchmark in one go, for one GPU booking (about 7 minutes on an H100, estimated; cut at
# BENCH_BUDGET seconds in all, 560 by default, under a device call's 600): where the ViT's training step goes (torch.profiler, compiled, batch 512 and
# 1024, and 512 with TrivialAugment; about 2 minutes, taken from the training benchmark's time
# limit), training images/s per
# mode (eager, compiled, CUDA graphs, both), inference images/s against batch size (dense vs
# pruned, eager vs graphs), and the cost of keeping masks.
#
#   bash benchmarks/run_all.sh benchmarks/results/h100-YYYY-MM-DD     # logs and JSON land there
#   BENCH_SMOKE=1 bash benchmarks/run_all.sh /tmp/bench               # ~3 minutes on 2 CPU cores: the code paths
#   BENCH_TAR=$OUT/bench.tar bash benchmarks/run_all.sh /tmp/bench     # on the device machine (below)
#
# BENCH_TAR: the folder is tarred there after each benchmark. The device tool brings back at most
# 8 files from $OUT (this writes about 17), and a call stopped at its time limit still brings back
# what is in $OUT: the tar then holds every benchmark that finished.
# RESULTS_FOLDER: what an earlier run_all.sh wrote there is removed first (the tar must not mix two
# runs); a folder holding anything else is refused. Where .gpu/MANIFEST is (prepare.sh's; the device
# call carries .gpu/COMMIT and .gpu/MANIFEST), the tree must be the commit it records, which names it.
#
# Exit status: 0 when every benchmark ran; 1 when one failed (bench_train's or bench_infer's exit
# status 3 too: a cell failed) or was cut at the budget, or the folder, the tree or BENCH_BUDGET was
# refused (before anything ran); 4 when none failed but the budget ran out before one started
# (skipped: the last line names it). A benchmark that exits 5 (a cell fell back to another mode, whose
# number it gave) ran: the last line, also in elapsed.txt, lists it under "fell back". BENCH_TAR is
# written whatever the status once the benchmarks have started.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bash benchmarks/run_all.sh RESULTS_FOLDER}
budget=${BENCH_BUDGET:-560}
# Checked before an earlier run's results are removed: "9min" removed them, then every stage failed.
if ! [[ $budget =~ ^[1-9][0-9]*$ ]]; then
  echo "error: BENCH_BUDGET=$budget: give whole seconds for all the benchmarks, e.g. 560 (the default)" >&2
  exit 1
fi
# The device machine's copy has no git metadata, and LABUTILS_GIT_COMMIT typed by hand named a tree
# edited since as the clean commit: there, prepare.sh's commit names the code once its hashes show
# this tree is that commit (tree_commit.sh, as run_on_gpu.sh). Where git can name the tree (a run
# here, after later commits too), it does, and .gpu/ (another commit's, perhaps) is not read.
if [[ -f .gpu/MANIFEST ]] && ! git rev-parse --git-dir >/dev/null 2>&1; then
  LABUTILS_GIT_COMMIT=$(bash benchmarks/gpu/tree_commit.sh)
  export LABUTILS_GIT_COMMIT
fi
# An earlier run's files (the device's /tmp/bench reused after a failed call, say) would be packed
# beside this run's: this script's own outputs are removed (their atomic writes' temporary files
# too), nothing else, and a folder holding anything else is refused before anything is removed.
dir=$(realpath -m -- "$out")
if [[ $dir == / || $dir == "$(pwd -P)" || $dir == "$(realpath -m -- "${HOME:-/}")" ]]; then
  echo "error: $out is /, the repository or your home folder: give a folder of its own, e.g. /tmp/bench" >&2
  exit 1
fi
own=() foreign=()
shopt -s nullglob dotglob
for f in "$dir"/*; do
  case ${f##*/} in
  profile_*|bench_*|elapsed.txt|.profile_*.tmp|.bench_*.tmp) if [[ -f $f ]]; then own+=("$f"); else foreign+=("${f##*/}"); fi ;;
  *) foreign+=("${f##*/}") ;;
  esac
done
shopt -u nullglob dotglob
if [[ ${#foreign[@]} -gt 0 ]]; then
  echo "error: $out holds what run_all.sh does not write (${foreign[*]:0:5}): give a new or empty folder" >&2
  exit 1
fi
rm -f -- "${own[@]}"
mkdir -p "$out"
# Written beside and renamed (as gpu/collect.sh does): a call stopped mid-tar still brings back the
# last whole tar. GNU tar exits 1 when a log grew while it read it: that tar is whole, so it is kept.
pack() {
  [[ -n "${BENCH_TAR:-}" ]] || return 0
  local status=0
  tar cf "$BENCH_TAR.partial" -C "$(dirname "$out")" "$(basename "$out")" || status=$?
  if [[ $status -le 1 ]]; then mv -f "$BENCH_TAR.partial" "$BENCH_TAR" || true; else rm -f "$BENCH_TAR.partial"; fi
}
trap pack EXIT  # whatever stops the script, the tar holds the logs so far (a failure's traceback too)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" LABUTILS_PLAIN_PROGRESS=1
if [[ -n "${BENCH_SMOKE:-}" ]]; then
  profile=(--smoke --warmup 2 --steps 2) cases=(32 64 32:trivialaugment)
  train=(--smoke --epochs 2 --modes eager,graphs) infer=(--smoke) masks=(--smoke)
else
  profile=(--mode compiled --steps 5) cases=(512 1024 512:trivialaugment)
  train=(--epochs 2 --images 25000 --modes eager,compiled,graphs,compiled+graphs) infer=(--time-limit 75) masks=()
fi
SECONDS=0 failed=() skipped=() fell_back=()
# A stage is cut at what is left of the budget (its log keeps what it printed) and, with under 10 s
# left, the stages after it are skipped: the scripts' own time limits only stop starting cases.
limited() {
  local left=$((budget - SECONDS))
  if ((left < 10)); then echo "skipped: under 10 s of the ${budget} s budget (BENCH_BUDGET) left"; return 125; fi
  timeout "$left" "$@"
}
# After a stage's non-zero status: skipped (125, above), fell back (5: measured, but in another mode
# for some cells), cut at the budget (124) or failed (the scripts' 3: a cell failed).
count() {
  local status=$1 stage=$2
  if ((status == 125)); then skipped+=("$stage"); return; fi
  if ((status == 5)); then echo "$stage: some of it fell back to another mode, whose numbers it gave: see its log"
    fell_back+=("$stage"); return; fi
  if ((status == 124)); then echo "$stage cut at the ${budget} s budget: see its log"
  elif ((status == 3)); then echo "$stage: a cell failed: see its log"; else echo "$stage failed: see its log"; fi
  failed+=("$stage")
}
# The profile compiles into a cache of its own, so the training benchmark's compile times stay
# comparable with earlier runs; a profile that fails does not stop the benchmarks after it.
cache=$(mktemp -d)
for case in "${cases[@]}"; do  # BATCH or BATCH:POLICY
  batch=${case%%:*} extra=() name=b$batch
  if [[ $case == *:* ]]; then extra=(--augment "${case#*:}") name=${name}_${case#*:}; fi
  if [[ $case == "${cases[0]}" ]]; then extra+=(--trace); fi  # one small chrome trace
  limited env TORCHINDUCTOR_CACHE_DIR="$cache/inductor" TRITON_CACHE_DIR="$cache/triton" python3 benchmarks/profile_step.py \
    "${profile[@]}" --batch-size "$batch" --out "$out" "${extra[@]}" --json "$out/profile_vit_scratch_$name.json" \
    2>&1 | tee "$out/profile_vit_scratch_$name.log" || count $? "profile $case"
  pack
done
rm -rf "$cache"
if [[ -z "${BENCH_SMOKE:-}" ]]; then  # what the profile took comes off the training benchmark's limit
  limit=$((420 - SECONDS)); train+=(--time-limit $((limit > 60 ? limit : 60)))
fi
# A benchmark that fails does not stop the ones after it; its log keeps the traceback.
bench() {
  local name=$1; shift
  limited python3 "benchmarks/bench_$name.py" "$@" --json "$out/bench_$name.json" 2>&1 | tee "$out/bench_$name.log" \
    || count $? "bench_$name"
  pack
}
bench train "${train[@]}"
bench infer "${infer[@]}"
bench masks "${masks[@]}"
# Named as the benchmarks' JSON names it (one function: uncommitted edits and a copy without git too).
commit=$(python3 -c 'from labutils.artifacts import git_commit; print(git_commit(paths=("labutils", "benchmarks")))' \
  2>/dev/null || echo unknown)
not_run="; not run, the ${budget} s budget (BENCH_BUDGET) spent: ${skipped[*]}"
fell="; fell back (cells that measured another mode than their column's: see the logs): ${fell_back[*]}"
echo "all benchmarks: ${SECONDS} s (commit $commit)${failed[*]:+; failed: ${failed[*]}}${fell_back[*]:+$fell}${skipped[*]:+$not_run}" \
  | tee "$out/elapsed.txt"
if ((${#failed[@]})); then exit 1; fi
if ((${#skipped[@]})); then exit 4; fi  # a rehearsal that skipped a stage has not passed
