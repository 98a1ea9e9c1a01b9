#!/usr/bin/env bash
# bench_train.sh ROUNDS times in a row, for machines whose speed drifts between sittings: each
# round measures dtrain and its peers back to back, so each round's ratio is a paired figure;
# prints every round's ratios and, per ratio, the lowest, the median and the highest.
#
#   bench/bench_train_repeat.sh BUILD_DIR ROUNDS [bench_train.sh options]
#   e.g. bench/bench_train_repeat.sh build 5 --peers pypi --precisions fp32 --sizes 64
set -euo pipefail

build=${1:?usage: bench_train_repeat.sh BUILD_DIR ROUNDS [bench_train.sh options]}
rounds=${2:?usage: bench_train_repeat.sh BUILD_DIR ROUNDS [bench_train.sh options]}
shift 2
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "bench_train_repeat.sh: ROUNDS must be a positive number" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR
source "$here/bench_lib.sh"
all=$(mktemp)
trap 'rm -f "$all"' EXIT

for ((round = 1; round <= rounds; round++)); do
  out=$("$here/bench_train.sh" "$build" "$@" 2>&1) || { echo "$out" >&2; exit 1; }
  [[ $round -eq 1 ]] && echo "$out" | sed -n '1,2p'
  echo "round $round: $(echo "$out" | grep -m1 'load average .* at the end' | tr -d '()')"
  # the throughput table and the ratio lines of this round
  echo "$out" | sed -n '/^  size /,/^$/p' | sed '/^$/d; s/^/  /'
  echo "$out" | sed -n '/^ratios$/,/^data wait/p' | grep -Ev '^(ratios|data wait)' | tee -a "$all" |
    sed 's/^/  /'

done

echo
echo "ratios over $rounds rounds: lowest, median, highest"
while read -r key; do
  values=$(awk -v key="$key" '$1 "  " $2 " / " $4 == key { printf " %s", $5 }' "$all")
  # shellcheck disable=SC2086 # one number a word
  read -r lowest median highest < <(spread $values)
  printf '%-44s %5.2f %5.2f %5.2f  (%s)\n' "$key" "$lowest" "$median" "$highest" "${values# }"
done < <(awk '{ print $1 "  " $2 " / " $4 }' "$all" | sort -u)
