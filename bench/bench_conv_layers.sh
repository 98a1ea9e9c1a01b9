#!/usr/bin/env bash
# The convolution shapes of ResNet-18 at SIZE px through the CPU backend's two implementations,
# oneDNN's direct convolution and the per-tap matrix products of the smallest maps
# (src/backend/cpu/cpu_conv_gemm.c), on the CPU as it is and under ONEDNN_MAX_CPU_ISA=AVX2 (the
# path of AVX2-only CPUs); prints the CPU, its instruction sets, the load, and per shape the
# times of each pass (forward, backward-data, backward-weights) both ways, the ratio of the sums
# and which passes dtrain's shape rule gives the per-tap products.
#
#   bench/bench_conv_layers.sh BUILD_DIR [SIZE=64] [BATCH=64] [THREADS=2]
set -euo pipefail

build=${1:?usage: bench_conv_layers.sh BUILD_DIR [SIZE] [BATCH] [THREADS]}
size=${2:-64}
batch=${3:-64}
threads=${4:-2}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR
source "$here/bench_lib.sh"
require_bench_tools "$build" bench_conv_layers

echo "cpu: $(cpu_model)"
echo "cpu flags: $(cpu_isa_flags)"
echo "machine: $(machine_load); $(omp_note)"
for cap in '' AVX2; do
  echo
  echo "ONEDNN_MAX_CPU_ISA=${cap:-unset}"
  if [[ -n $cap ]]; then set -- env ONEDNN_MAX_CPU_ISA="$cap"; else set -- env -u ONEDNN_MAX_CPU_ISA; fi
  "$@" OMP_NUM_THREADS="$threads" \
    "$build/bench/bench_conv_layers" --size "$size" --batch "$batch" --threads "$threads"
done
echo
echo "machine at the end: $(machine_load)"
