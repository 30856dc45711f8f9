#!/usr/bin/env bash
# From the repository root, on the device's copy (no git metadata to name it): print the commit
# prepare.sh recorded in .gpu/COMMIT once .gpu/MANIFEST (that commit's files' hashes) shows this
# tree is it. Called by run_on_gpu.sh and run_all.sh: a tree edited after prepare.sh never runs
# under that commit's name. A LABUTILS_GIT_COMMIT typed by hand must name the same commit (7, 12
# or 40 digits: the same commit where one is a prefix of the other).
#
#   commit=$(bash benchmarks/gpu/tree_commit.sh)     # exit 1, saying why on stderr, where it is not
set -euo pipefail
recorded=$(cat .gpu/COMMIT 2>/dev/null || true)
if [[ -z $recorded || ! -f .gpu/MANIFEST ]]; then
    echo "error: .gpu/COMMIT or .gpu/MANIFEST is missing: run benchmarks/gpu/prepare.sh and carry both" >&2
    exit 1
fi
typed=${LABUTILS_GIT_COMMIT:-}
if [[ -n $typed ]] && ! [[ ${#typed} -ge 7 && ${#recorded} -ge 7 && ( $typed == "$recorded"* || $recorded == "$typed"* ) ]]; then
    echo "error: LABUTILS_GIT_COMMIT is $typed, but prepare.sh recorded commit $recorded (.gpu/COMMIT):" \
         "leave the variable unset, the commit comes from .gpu" >&2
    exit 1
fi
if ! changed=$(sha256sum --quiet -c .gpu/MANIFEST 2>/dev/null); then
    echo "error: this tree is not commit $recorded, which prepare.sh recorded; changed since:" \
         "$(echo "$changed" | head -5 | tr '\n' ' ')- commit, run prepare.sh again, then call again" >&2
    exit 1
fi
# A file added since is code too (the device tool carries untracked files): the code's folders
# hold no file the commit lacks.
added=$(comm -13 <(sed 's/^[0-9a-f]*  //' .gpu/MANIFEST | sort) \
    <(find labutils benchmarks notebooks -type f \( -name '*.py' -o -name '*.sh' -o -name '*.ipynb' \) \
          -not -path '*/__pycache__/*' -not -path '*/.ipynb_checkpoints/*' 2>/dev/null | sort))
if [[ -n $added ]]; then
    echo "error: this tree is not commit $recorded, which prepare.sh recorded; added since:" \
         "$(echo "$added" | head -5 | tr '\n' ' ')- commit or remove them, run prepare.sh again, then call again" >&2
    exit 1
fi
echo "$recorded"
