#!/usr/bin/env bash
# bf16 against fp32 on the CPU: trains ResNet-18 from scratch on the first LIMIT Fashion-MNIST
# training images with configs/fashion-mnist.yaml (batch 64, SGD lr 0.01 momentum 0.9, 3 epochs)
# at runtime.precision fp32 and bf16 for each seed, on the same files and split, and prints both
# validation accuracies, their difference and both wall times. bf16 on the CPU needs AVX512-BF16
# or AMX: elsewhere the script says so and exits 0 without measuring.
#
#   bench/bench_bf16_accuracy.sh BUILD_DIR [SIZE ...]     (default SIZE: 32)
#
# Environment: SEEDS="0 1 2", LIMIT=12000, EPOCHS=3, THREADS=2, WORKERS=1, DATA=DIR (an existing
# ImageFolder), KEEP=1 (keep the temporary folder). BUILD_DIR holds dtrain and
# fashion_mnist_to_imagefolder (Debian's dataset-fashion-mnist package provides the images).
set -euo pipefail

build=${1:?usage: bench/bench_bf16_accuracy.sh BUILD_DIR [SIZE ...]}
shift
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(32)
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR
source "$here/bench_lib.sh"
repo=$(cd "$here/.." && pwd)
limit=${LIMIT:-12000}
epochs=${EPOCHS:-3}
threads=${THREADS:-2}
workers=${WORKERS:-1}
read -r -a seeds <<<"${SEEDS:-0 1 2}"

workdir=""
use_workdir dtrain-bf16-accuracy "${KEEP:-0}"
work=$workdir
fashion_mnist_data "$build" "$limit"

now() { date +%s.%N; }
# train RUN PRECISION SIZE SEED: prints "val_acc seconds"; exit 2 (bf16 refused) is passed on
train() {
    local out="$work/$1" t0 t1 status=0
    t0=$(now)
    "$build/dtrain" "$repo/configs/fashion-mnist.yaml" "data.root=$data" "data.image_size=$3" \
        "train.epochs=$epochs" "train.seed=$4" runtime.device=cpu "runtime.threads=$threads" \
        "runtime.precision=$2" "data.workers=$workers" "output.dir=$out" output.log_every=50 \
        >"$work/$1.log" 2>&1 || status=$?
    t1=$(now)
    [ $status -eq 0 ] || { cat "$work/$1.log" >&2; return $status; }
    local acc
    acc=$(grep '"event":"eval"' "$out/metrics.jsonl" | tail -n 1 | sed 's/.*"val_acc":\([0-9.]*\).*/\1/')
    echo "$acc $(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')"
}

echo "machine: $(cpu_model); $(machine_load); $limit images, $epochs epochs"
results=()
for size in "${sizes[@]}"; do
    for seed in "${seeds[@]}"; do
        echo "== size $size, seed $seed"
        status=0
        bf16=$(train "bf16-$size-$seed" bf16 "$size" "$seed") || status=$?
        if [ $status -eq 2 ]; then
            echo "bf16 is refused on this CPU (see above): nothing to compare"
            exit 0
        fi
        [ $status -eq 0 ] || exit $status
        fp32=$(train "fp32-$size-$seed" fp32 "$size" "$seed")
        read -r fa ft <<<"$fp32"
        read -r ba bt <<<"$bf16"
        results+=("$(awk -v s="$size" -v seed="$seed" -v fa="$fa" -v ba="$ba" -v ft="$ft" -v bt="$bt" \
            'BEGIN{printf "%5d %5d %9.4f %9.4f %+8.4f %8.1f %8.1f", s, seed, fa, ba, ba-fa, ft, bt}')")
        echo "${results[-1]}"
    done
done
echo
echo "size  seed  fp32_acc  bf16_acc     diff   fp32_s   bf16_s"
printf '%s\n' "${results[@]}"
printf '%s\n' "${results[@]}" | awk '{n[$1]++; f[$1]+=$3; b[$1]+=$4; d[$1]+=($4-$3); if (($4-$3)^2 > m[$1]) m[$1]=($4-$3)^2}
    END {for (s in n) printf "%5d  mean fp32 %.4f  bf16 %.4f  diff %+.4f  largest |diff| %.4f\n",
         s, f[s]/n[s], b[s]/n[s], d[s]/n[s], sqrt(m[s])}' | sort -n
echo "machine at the end: $(machine_load)"
