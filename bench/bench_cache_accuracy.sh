#!/usr/bin/env bash
# Accuracy effect of data.cache with `augment: crop_flip`: the cache crops a copy of each image
# pre-resized to round(image_size * 8 / 7) square, the uncached loader crops the decoded image.
# Trains ResNet-18 on the first LIMIT Fashion-MNIST training images (configs/fashion-mnist.yaml,
# augment crop_flip) twice per seed, data.cache=none and data.cache=DIR, same seed and split,
# and prints the validation accuracy after each epoch and the difference of the last ones.
#
#   bench/bench_cache_accuracy.sh BUILD_DIR [SIZE=32]
#
# BUILD_DIR must hold dtrain and fashion_mnist_to_imagefolder (a Release build). Environment:
#   SEEDS="0 1 2" (train.seed) LIMIT=12000 EPOCHS=4 THREADS=2 WORKERS=1 DATA=DIR (reuse an
#   ImageFolder) KEEP=1 (keep the work folder)
set -euo pipefail

build=${1:?usage: bench/bench_cache_accuracy.sh BUILD_DIR [SIZE]}
size=${2:-32}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR
source "$here/bench_lib.sh"
repo=$(cd "$here/.." && pwd)
limit=${LIMIT:-12000}
epochs=${EPOCHS:-4}
threads=${THREADS:-2}
workers=${WORKERS:-1}
read -r -a seeds <<<"${SEEDS:-0 1 2}"
workdir=""
use_workdir dtrain-cache-accuracy "${KEEP:-0}"
fashion_mnist_data "$build" "$limit"

# per_epoch METRICS: the val_acc of every "eval" row, space separated
per_epoch() { sed -n 's/.*"event":"eval".*"val_acc":\([0-9.]*\).*/\1/p' "$1" | tr '\n' ' '; }

echo "machine: $(machine_load); $limit images, size $size, $epochs epochs, augment crop_flip"
results=()
for seed in "${seeds[@]}"; do
  accs=()
  for cache in none dir; do
    out=$workdir/run-$seed-$cache
    setting=data.cache=none
    if [[ $cache == dir ]]; then
      mkdir -p "$workdir/cache-$seed"
      setting=data.cache=$workdir/cache-$seed
    fi
    "$build/dtrain" "$repo/configs/fashion-mnist.yaml" "data.root=$data" "data.image_size=$size" \
      data.augment=crop_flip "$setting" "train.epochs=$epochs" "train.seed=$seed" \
      runtime.device=cpu "runtime.threads=$threads" "data.workers=$workers" "output.dir=$out" \
      output.log_every=50 >"$out.log" 2>&1 || { cat "$out.log" >&2; exit 1; }
    accs+=("$(per_epoch "$out/metrics.jsonl")")
    echo "seed $seed, cache $cache: val_acc per epoch ${accs[-1]}"
  done
  read -r -a no_cache <<<"${accs[0]}"
  read -r -a with_cache <<<"${accs[1]}"
  results+=("$seed ${no_cache[-1]} ${with_cache[-1]}")
done
echo
echo "seed  no_cache  cache     diff"
printf '%s\n' "${results[@]}" | awk '{printf "%4d  %.4f    %.4f  %+.4f\n", $1, $2, $3, $3-$2; a+=$2; b+=$3; n++}
  END {if (n > 1) printf "mean  %.4f    %.4f  %+.4f\n", a/n, b/n, (b-a)/n}'
