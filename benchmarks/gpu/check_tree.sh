#!/usr/bin/env bash
# From the repository root: is this tree the commit prepare.sh recorded? Checked against .gpu/MANIFEST
# (its tracked files' hashes) by run_on_gpu.sh and run_all.sh: the device's copy has no git to say so,
# and a tree edited after prepare.sh must not run under that commit's name.
#
#   bash benchmarks/gpu/check_tree.sh COMMIT      # exit 1, naming the changed files, where it is not
set -euo pipefail
commit=${1:?usage: bash benchmarks/gpu/check_tree.sh COMMIT (the commit the run names)}
if ! changed=$(sha256sum --quiet -c .gpu/MANIFEST 2>/dev/null); then
    echo "error: this tree is not commit $commit, which prepare.sh recorded; changed since:" \
         "$(echo "$changed" | head -5 | tr '\n' ' ')- commit, run prepare.sh again, then call again" >&2
    exit 1
fi
