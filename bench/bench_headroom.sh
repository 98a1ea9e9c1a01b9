#!/usr/bin/env bash
# How close dtrain's and PyTorch's CPU training steps come to the CPU's fp32 multiply-add peak,
# which bounds every speed-up: bench_fma_peak (the widest vectors the CPU has, and under the
# AVX2 cap), then ROUNDS rounds of dtrain's compute-only fp32 step (bench_train_step) and PyTorch
# 2.x's (pytorch_train_step.py, the pypi peer of bench_train.sh) back to back, each as the
# GFLOP/s of the step's convolutions (the taps inside the input, as bench_train_step counts them,
# the same network on both sides) and its share of the peak; per round the ratio dtrain/PyTorch
# and its ceiling, peak/PyTorch: the ratio dtrain would reach at 100% of the peak.
#
#   bench/bench_headroom.sh BUILD_DIR [ROUNDS=5] [SIZE=64] [BATCH=64] [THREADS=2]
#
# Environment: DTRAIN_BENCH_TORCH_VENV (the PyTorch environment, see bench_lib.sh).
# OMP_WAIT_POLICY reaches both sides (default PASSIVE, as bench_train.sh).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR
source "$here/bench_lib.sh"
passive_waits_unless_set
usage_unless_args "$@"
build=$1
rounds=${2:-5}
size=${3:-64}
batch=${4:-64}
threads=${5:-2}
for value in "$rounds" "$size" "$batch" "$threads"; do
  [[ $value =~ ^[1-9][0-9]*$ ]] || die "ROUNDS, SIZE, BATCH and THREADS are positive numbers, not '$value'"
done
require_bench_tools "$build" bench_fma_peak bench_train_step
python=$(pypi_torch_python) || die "no PyPI torch: the PyTorch side cannot run"

echo "cpu: $(cpu_model)"
echo "cpu flags: $(cpu_isa_flags)"
echo "machine: $(machine_load); $(omp_note)"
peak_line=$("$build/bench/bench_fma_peak" --threads "$threads")
echo "$peak_line"
"$build/bench/bench_fma_peak" --threads "$threads" --isa avx2 2>/dev/null || true
peak=$(sed -n 's/.*gflops=\([0-9.]*\).*/\1/p' <<<"$peak_line")
[[ -n $peak ]] || die "bench_fma_peak printed no peak"

# field LINE KEY: the value of KEY=VALUE in LINE
field() { sed -n "s/.*[[:space:]]$2=\([^[:space:]]*\).*/\1/p" <<<" $1"; }
share() { awk -v a="$1" -v p="$peak" 'BEGIN { printf "%.0f%%", 100 * a / p }'; }

echo
echo "resnet18 fp32 training step, size $size, batch $batch, $threads threads, compute only"
printf '%-6s %13s %13s %8s %8s\n' round dtrain_GF/s torch_GF/s ratio ceiling
all=$(mktemp)
trap 'rm -f "$all"' EXIT
for ((round = 1; round <= rounds; round++)); do
  dt=$("$build/bench/bench_train_step" --size "$size" --batch "$batch" --threads "$threads" \
    --steps 10 --warmup 2)
  gflop=$(field "$dt" conv_gflop)
  dt_rate=$(field "$dt" conv_gflops)
  torch=$("$python" "$here/pytorch_train_step.py" --arch resnet18 --size "$size" \
    --batch "$batch" --threads "$threads" --steps 10 --warmup 2)
  torch_rate=$(awk -v f="$gflop" -v s="$(field "$torch" step_s)" 'BEGIN { printf "%.1f", f / s }')
  ratio=$(ratio "$dt_rate" "$torch_rate")
  ceiling=$(ratio "$peak" "$torch_rate")
  printf '%-6s %7s (%4s) %7s (%4s) %8s %8s\n' "$round" "$dt_rate" "$(share "$dt_rate")" \
    "$torch_rate" "$(share "$torch_rate")" "$ratio" "$ceiling"
  echo "$dt_rate $torch_rate $ratio $ceiling" >>"$all"
done
echo "convolution work per step: $gflop GFLOP; $(field "$torch" torch), fma peak $peak GFLOP/s"
# shellcheck disable=SC2046 # one number a word
{
  read -r _ dt_median _ < <(spread $(cut -d' ' -f1 "$all"))
  read -r _ torch_median _ < <(spread $(cut -d' ' -f2 "$all"))
  read -r _ ratio_median _ < <(spread $(cut -d' ' -f3 "$all"))
  read -r _ ceiling_median _ < <(spread $(cut -d' ' -f4 "$all"))
}
printf 'median: dtrain %.1f GFLOP/s (%s of peak), PyTorch %.1f (%s), ratio %.2f, ceiling %.2f\n' \
  "$dt_median" "$(share "$dt_median")" "$torch_median" "$(share "$torch_median")" \
  "$ratio_median" "$ceiling_median"
echo "machine at the end: $(machine_load)"
