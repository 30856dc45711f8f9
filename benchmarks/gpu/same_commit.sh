#!/usr/bin/env bash
# Whether two names of a commit are the same commit: one a prefix of the other, at least 7 hex
# digits (git rev-parse --short gives 7, prepare.sh writes 12, a full hash has 40).
#
#   bash benchmarks/gpu/same_commit.sh A B      # exit 0 when they are, 1 when not
a=${1:?usage: same_commit.sh A B} b=${2:?usage: same_commit.sh A B}
[[ ${#a} -ge 7 && ${#b} -ge 7 && ( $a == "$b"* || $b == "$a"* ) ]]
