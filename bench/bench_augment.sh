#!/usr/bin/env bash
# Decode-thread cost of the pixel augmentations (data.trivial_augment, data.color_jitter,
# data.random_erasing): each op alone on one core (bench_augment ops), then the loader with
# crop_flip at SIZE px on generated photos (300..500 px JPEGs, quality 90), without and with each
# augmentation, from the JPEG files and from data.cache=memory (where the per-sample work is a
# crop and the augmentations weigh most). Rates are images per CPU second of the process after
# the first epoch (per core; the load of other jobs moves them much less than wall-clock rates).
#
#   bench/bench_augment.sh BUILD_DIR [N_IMAGES=600] [EPOCHS=3] [SIZE=224]
#
# Needs bench_augment, bench_loader and bench_make_photos built; torchvision's rates of the same
# ops come from DTRAIN_BENCH_PYTHON (default python3) when it has torchvision. Prints the CPU, the load and the
# numbers.
set -euo pipefail

build=${1:?usage: bench_augment.sh BUILD_DIR [N_IMAGES] [EPOCHS] [SIZE]}
n_images=${2:-600}
epochs=${3:-3}
size=${4:-224}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR
source "$here/bench_lib.sh"
require_bench_tools "$build" bench_augment bench_loader bench_make_photos
workdir=""
use_workdir dtrain-bench-augment "${KEEP:-0}"

echo "cpu: $(cpu_model)"
echo "cpu flags: $(cpu_isa_flags)"
echo "machine: $(machine_load); shared with other jobs: expect noise"

echo "== each op alone, one thread, $size px (images per CPU second)"
"$build/bench/bench_augment" ops "$size"

python=${DTRAIN_BENCH_PYTHON:-python3}
if "$python" -c 'import torchvision' 2>/dev/null; then
  echo "== the same in torchvision $("$python" -c 'import torchvision; print(torchvision.__version__)'), one thread"
  "$python" "$here/bench_augment_torchvision.py" "$size"
fi

make_photo_pool "$build" "$workdir/pool" 10 $(((n_images + 9) / 10)) 300 500
make_imagefolder "$workdir/pool" "$workdir/folder" 10 "$n_images"
echo "== loader, crop_flip, $size px, 1 decode thread, $n_images images, $epochs epochs"
printf '%-8s %-8s %12s %10s\n' source setting img/cpu_s vs_off
for cache in none memory; do
  base=""
  for setting in off jitter erasing trivial all; do
    rate=$("$build/bench/bench_loader" load "$workdir/folder" "$size" crop_flip 1 "$epochs" \
      "$cache" "$setting" | sed -n 's/^steady_img_per_cpu_s=//p')
    [[ $setting == off ]] && base=$rate
    printf '%-8s %-8s %12s %10s\n' "$([[ $cache == none ]] && echo jpeg || echo cache)" \
      "$setting" "$rate" "$(ratio "$rate" "$base")"
  done
done
