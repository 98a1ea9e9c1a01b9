#!/usr/bin/env bash
# Decode benchmark: per-core images/s of dtrain's decode + resize(224) + normalise path against
# the PyTorch tutorial's PIL + torchvision path and against libjpeg-turbo's own tjbench, on the
# same Animals-10-like JPEGs (generated: random sizes 60..300 px, quality 90). Single-threaded.
#
#   bench/bench_decode.sh BUILD_DIR [N_IMAGES=300] [REPEAT=3]
#
# Needs the bench targets built (cmake --build BUILD_DIR --target bench_decode bench_make_photos),
# /usr/bin/python3 with torch + torchvision (Debian packages), and tjbench (libjpeg-turbo-progs).
# Environment: KEEP=1 keeps the generated images; TJ_BENCHTIME (default 0.05 s per file);
# MIN_SIDE, MAX_SIDE (default 60, 300) the range of image sides.
set -euo pipefail

build=${1:?usage: bench_decode.sh BUILD_DIR [N_IMAGES] [REPEAT]}
n_images=${2:-300}
repeat=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR
source "$here/bench_lib.sh"
python=${PYTHON:-/usr/bin/python3}
tj_time=${TJ_BENCHTIME:-0.05}
min_side=${MIN_SIDE:-60}
max_side=${MAX_SIDE:-300}

require_bench_tools "$build" bench_decode bench_make_photos

images=$(mktemp -d "${TMPDIR:-/tmp}/dtrain-bench-decode.XXXXXX")
if [[ ${KEEP:-0} != 1 ]]; then trap 'rm -rf "$images"' EXIT; fi
"$build/bench/bench_make_photos" "$images" "$n_images" "$min_side" "$max_side" 90 1

value() { sed -n "s/^$1=//p"; }

export OMP_NUM_THREADS=1
dtrain_out=$("$build/bench/bench_decode" "$images" 224 "$repeat")
dtrain_pipeline=$(value dtrain_pipeline_img_per_s <<<"$dtrain_out")
dtrain_decode=$(value dtrain_decode_img_per_s <<<"$dtrain_out")
dtrain_scaled=$(value dtrain_pipeline_dct_scaled_img_per_s <<<"$dtrain_out")
dtrain_memory=$(value dtrain_decode_memory_img_per_s <<<"$dtrain_out")
dtrain_hot=$(value dtrain_decode_memory_hot_img_per_s <<<"$dtrain_out")
resize_us=$(value dtrain_resize_us <<<"$dtrain_out")
normalise_us=$(value dtrain_normalise_us <<<"$dtrain_out")
mean_pixels=$(value mean_pixels <<<"$dtrain_out")

torch_pipeline=n/a
pil_decode=n/a
if "$python" -c 'import torch, torchvision' 2>/dev/null; then
  torch_out=$("$python" "$here/bench_decode_torchvision.py" "$images" 224 "$repeat")
  torch_pipeline=$(value torchvision_pipeline_img_per_s <<<"$torch_out")
  pil_decode=$(value pil_decode_img_per_s <<<"$torch_out")
else
  echo "note: $python has no torch/torchvision; skipping the PyTorch path" >&2
fi

# tjbench reports frames per second per file; the set's rate is N / sum(1 / fps).
tj_decode=n/a
if command -v tjbench >/dev/null; then
  tj_decode=$(for f in "$images"/*.jpg; do
      tjbench "$f" -rgb -nowrite -benchtime "$tj_time" -warmup 0.01 2>/dev/null |
        sed -n 's/^Decompress.*Frame rate: *\([0-9.]*\) fps.*/\1/p'
    done | awk '{ t += 1 / $1; n++ } END { if (n) printf "%.1f", n / t; else print "n/a" }')
fi

echo "decode benchmark: $n_images JPEGs, $min_side..$max_side px (mean $mean_pixels pixels), quality 90, one thread, $repeat passes"
printf '  %-56s %9s img/s\n' \
  "dtrain decode + resize 224 + normalise" "$dtrain_pipeline" \
  "PIL + torchvision Resize((224,224)) ToTensor Normalize" "$torch_pipeline" \
  "dtrain, loader option jpeg_dct_scaling (needs >= 448 px)" "$dtrain_scaled" \
  "dtrain decode only (libjpeg), from the files" "$dtrain_decode" \
  "dtrain decode only, from memory, the files in turn" "$dtrain_memory" \
  "dtrain decode only, from memory, each file repeated" "$dtrain_hot" \
  "PIL decode only (ImageFolder loader)" "$pil_decode" \
  "tjbench decode only (TurboJPEG)" "$tj_decode"
echo "  ratio dtrain / torchvision pipeline: $(ratio "$dtrain_pipeline" "$torch_pipeline")"
echo "  ratio dtrain pipeline / tjbench decode-only: $(ratio "$dtrain_pipeline" "$tj_decode")"
echo "  ratio dtrain decode / tjbench decode: $(ratio "$dtrain_decode" "$tj_decode")"
echo "  ratio dtrain decode, each file repeated as tjbench does / tjbench: $(ratio "$dtrain_hot" "$tj_decode")"
echo "  resize to 224 alone: $resize_us us/image; normalise alone: $normalise_us us/image"
# The most the pipeline ratio could be if decoding cost exactly tjbench's time per image and
# resize + normalise kept their measured cost: t_tj / (t_tj + t_resize + t_normalise).
awk -v tj="$tj_decode" -v r="$resize_us" -v m="$normalise_us" 'BEGIN {
  if (tj ~ /^[0-9.]+$/ && tj > 0) {
    t = 1e6 / tj
    printf "  bound with decode at tjbench speed: %.1f / (%.1f + %.1f + %.1f) us = %.2f\n", t, t, r, m, t / (t + r + m)
  } }'
