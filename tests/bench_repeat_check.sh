#!/bin/bash
# bench/bench_train_repeat.sh's summary, run against a stand-in bench_train.sh that prints the
# real one's table and ratio lines with a different ratio each round: every round's ratios, then
# per ratio the lowest, the median and the highest. Usage: bench_repeat_check.sh SOURCE_DIR
set -u
source_dir=$1

# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/testlib/check.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$source_dir/bench/bench_train_repeat.sh" "$source_dir/bench/bench_lib.sh" "$work/"
# the stand-in: round N (counted in a file) prints ratio values[N] for fp32, 1.10 for bf16
cat >"$work/bench_train.sh" <<'STANDIN'
#!/bin/bash
here=$(dirname "$0")
round=$(($(cat "$here/count" 2>/dev/null || echo 0) + 1))
echo "$round" >"$here/count"
values=(0 1.63 1.42 1.55 1.71)
echo "CPU: stand-in; instruction sets: avx2"
echo "machine: load average 0.10 on 2 cores; OMP_WAIT_POLICY=PASSIVE"
echo
echo "training throughput, batch 64, 2 threads, resnet18, 10 classes, img/s"
echo "(load average 0.20 on 2 cores at the end; OMP_WAIT_POLICY=PASSIVE)"
printf '%6s %20s %20s\n' size dtrain-fp32 torch-2.15-fp32
printf '%6s %20s %20s\n' 64 250.00 160.00
echo
echo "ratios"
printf '%6s  %-12s / %-18s %6s\n' 64 dtrain-fp32 torch-pypi-fp32 "${values[$round]}"
printf '%6s  %-12s / %-18s %6s\n' 64 dtrain-bf16 dtrain-fp32 1.10
echo "data wait, 64 px fp32: 0.4% of step time"
STANDIN
chmod +x "$work/bench_train.sh"

out=$(bash "$work/bench_train_repeat.sh" "$work" 4 --sizes 64 2>&1)
expect "exit code" "$?" 0
expect "rounds printed" "$(grep -c '^round [0-9]*: load average 0.20 on 2 cores at the end' <<<"$out")" 4
expect_match "header once" "$out" "CPU: stand-in; instruction sets: avx2*"
expect "summary, fp32 ratio" "$(grep '^64  dtrain-fp32 / torch-pypi-fp32 ' <<<"$out" | tail -1 | tr -s ' ')" \
    "64 dtrain-fp32 / torch-pypi-fp32 1.42 1.59 1.71 (1.63 1.42 1.55 1.71)"
expect "summary, bf16 / fp32" "$(grep '^64  dtrain-bf16 / dtrain-fp32 ' <<<"$out" | tail -1 | tr -s ' ')" \
    "64 dtrain-bf16 / dtrain-fp32 1.10 1.10 1.10 (1.10 1.10 1.10 1.10)"
bash "$work/bench_train_repeat.sh" "$work" 0 >/dev/null 2>&1
expect "ROUNDS 0 refused" "$?" 2
check_summary bench_repeat
