#!/usr/bin/env bash
# Loader benchmark: images/s of the batch loader alone at 224 px with crop_flip, per source, on
# the same generated photos (300..500 px JPEGs, quality 90): a JPEG ImageFolder, tar shards of
# the same files, shards pre-resized to 256 px (`dtrain pack --resize 256`), and data.cache in
# memory; against PyTorch's DataLoader + torchvision (ImageFolder, and webdataset on the same
# shards) with the same transforms and worker counts; the cache's crop step alone per code path
# (bench_loader crop). Then the start-up (opening data.root) of N_STARTUP tiny files as a folder
# and as shards.
#
#   bench/bench_loader.sh BUILD_DIR [N_IMAGES=2000] [EPOCHS=3] [N_STARTUP=100000]
#
# Needs bench_loader and bench_make_photos built, dtrain, /usr/bin/python3 with torch and
# torchvision (Debian's python3-torchvision) for the peers; webdataset goes into a venv of its own
# that sees those (DTRAIN_BENCH_WDS_VENV, default /var/cache/dtrain/bench-webdataset). Prints the
# CPU, the load, the numbers and the ratios. WORKERS (default "1 2") sets the thread counts tried.
set -euo pipefail

build=${1:?usage: bench_loader.sh BUILD_DIR [N_IMAGES] [EPOCHS] [N_STARTUP]}
n_images=${2:-2000}
epochs=${3:-3}
n_startup=${4:-100000}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR
source "$here/bench_lib.sh"
require_bench_tools "$build" bench_loader bench_make_photos
find_dtrain "$build"
workdir=""
use_workdir dtrain-bench-loader "${KEEP:-0}"
workers_list=${WORKERS:-"1 2"}

echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
echo "cpu flags: $(grep -m1 -ow -E 'avx2|avx512f|avx512bw|avx512vbmi|avx512_bf16|amx_bf16|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "machine: $(machine_load); shared with other jobs: expect noise"

make_photo_pool "$build" "$workdir/pool" 10 $(((n_images + 9) / 10)) 300 500
make_imagefolder "$workdir/pool" "$workdir/folder" 10 "$n_images"
"$dtrain" pack "$workdir/folder" "$workdir/shards" --shard-size 64 >/dev/null
"$dtrain" pack "$workdir/folder" "$workdir/shards256" --shard-size 64 --resize 256 --quality 90 >/dev/null
echo "images: $n_images, $(du -sh "$workdir/folder" | cut -f1) as JPEGs; $epochs epochs, steady = epochs 2.."

value() { sed -n "s/^$1=//p"; }
dtrain_run() { # ROOT WORKERS CACHE: prints "IMG_PER_S IMG_PER_CPU_S"
  local out
  out=$("$build/bench/bench_loader" load "$1" 224 crop_flip "$2" "$epochs" "$3")
  echo "$(value steady_img_per_s <<<"$out") $(value steady_img_per_cpu_s <<<"$out")"
}

python=/usr/bin/python3
have_torch=0
"$python" -c 'import torch, torchvision' 2>/dev/null && have_torch=1
wds_python=""
if ((have_torch)); then
  venv=${DTRAIN_BENCH_WDS_VENV:-/var/cache/dtrain/bench-webdataset}
  if ! "$venv/bin/python" -c 'import webdataset, torch' 2>/dev/null; then
    { "$python" -m venv --system-site-packages "$venv" &&
      "$venv/bin/pip" install -q --disable-pip-version-check webdataset==1.0.2; } >&2 || true
  fi
  "$venv/bin/python" -c 'import webdataset, torch' 2>/dev/null && wds_python=$venv/bin/python
  echo "peers: torch $("$python" -c 'import torch; print(torch.__version__)'), torchvision" \
    "$("$python" -c 'import torchvision; print(torchvision.__version__)')," \
    "webdataset $([[ -n $wds_python ]] && echo 1.0.2 || echo n/a)"
else
  echo "torch/torchvision not found for $python: the PyTorch peers are n/a"
fi
torch_run() { # folder|webdataset ROOT WORKERS: prints "IMG_PER_S IMG_PER_CPU_S" (CPU: 0 workers)
  local py=$python out
  [[ $1 == webdataset ]] && py=$wds_python
  if [[ -z $py ]] || ((!have_torch)); then
    echo "n/a n/a"
    return
  fi
  out=$("$py" "$here/bench_loader_torch.py" "$1" "$2" 224 "$3" "$epochs" 2>/dev/null) || out=""
  echo "$(value steady_img_per_s <<<"$out") $(value steady_img_per_cpu_s <<<"$out")"
}

# Per core: one decode thread (dtrain) or all work in the main process (PyTorch, 0 workers),
# images per second of the process's CPU time.
read -r _ folder_cpu <<<"$(dtrain_run "$workdir/folder" 1 none)"
read -r _ shards_cpu <<<"$(dtrain_run "$workdir/shards" 1 none)"
read -r _ resized_cpu <<<"$(dtrain_run "$workdir/shards256" 1 none)"
read -r _ cached_cpu <<<"$(dtrain_run "$workdir/shards" 1 memory)"
read -r _ torch_cpu <<<"$(torch_run folder "$workdir/folder" 0)"
read -r _ wds_cpu <<<"$(torch_run webdataset "$workdir/shards" 0)"
echo
echo "loader alone, crop_flip at 224, per core (images per CPU second, steady epochs):"
printf '  %-46s %9s\n' "dtrain, JPEG ImageFolder" "$folder_cpu" \
  "dtrain, tar shards (original JPEGs)" "$shards_cpu" \
  "dtrain, shards pre-resized to 256 px" "$resized_cpu" \
  "dtrain, data.cache=memory" "$cached_cpu" \
  "PyTorch, torchvision ImageFolder (0 workers)" "$torch_cpu" \
  "PyTorch, webdataset on the same shards" "$wds_cpu"
echo "  vs the dtrain JPEG folder: shards $(ratio "$shards_cpu" "$folder_cpu"), pre-resized" \
  "$(ratio "$resized_cpu" "$folder_cpu"), cache $(ratio "$cached_cpu" "$folder_cpu")"
echo "  vs PyTorch: dtrain folder $(ratio "$folder_cpu" "$torch_cpu"), cache" \
  "$(ratio "$cached_cpu" "$torch_cpu"); dtrain shards / webdataset $(ratio "$shards_cpu" "$wds_cpu")"
echo "  the cache's crop alone, us of CPU per crop from one hot square / from $n_images squares" \
  "(bench_loader crop):"
crop_out=$("$build/bench/bench_loader" crop "$n_images" 3)
for path in scalar avx2 avx512; do
  printf '    %-8s %s / %s\n' "$path" "$(value "crop_us_${path}_hot" <<<"$crop_out")" \
    "$(value "crop_us_${path}_cold" <<<"$crop_out")"
done

for w in $workers_list; do
  read -r folder _ <<<"$(dtrain_run "$workdir/folder" "$w" none)"
  read -r shards _ <<<"$(dtrain_run "$workdir/shards" "$w" none)"
  read -r resized _ <<<"$(dtrain_run "$workdir/shards256" "$w" none)"
  read -r cached _ <<<"$(dtrain_run "$workdir/shards" "$w" memory)"
  read -r torch_folder _ <<<"$(torch_run folder "$workdir/folder" "$w")"
  read -r torch_wds _ <<<"$(torch_run webdataset "$workdir/shards" "$w")"
  echo
  echo "loader alone, crop_flip at 224, $w worker(s), wall clock img/s ($(machine_load)):"
  printf '  %-46s %9s\n' "dtrain, JPEG ImageFolder" "$folder" \
    "dtrain, tar shards (original JPEGs)" "$shards" \
    "dtrain, shards pre-resized to 256 px" "$resized" \
    "dtrain, data.cache=memory" "$cached" \
    "PyTorch DataLoader + torchvision ImageFolder" "$torch_folder" \
    "PyTorch DataLoader + webdataset" "$torch_wds"
  echo "  vs the dtrain JPEG folder: cache $(ratio "$cached" "$folder"); vs PyTorch: folder" \
    "$(ratio "$folder" "$torch_folder"), cache $(ratio "$cached" "$torch_folder")"
done

# Start-up: N_STARTUP tiny JPEGs (copies of one 8x8 image) in 100 class folders.
mkdir -p "$workdir/tiny-src"
"$build/bench/bench_make_photos" "$workdir/tiny-src" 1 8 8 90 1 >/dev/null
python3 - "$workdir/tiny-src" "$workdir/many" "$n_startup" <<'PY'
import os, sys
data = open(os.path.join(sys.argv[1], sorted(os.listdir(sys.argv[1]))[0]), "rb").read()
root, n = sys.argv[2], int(sys.argv[3])
for i in range(n):
    d = os.path.join(root, f"c{i % 100:03d}")
    if i < 100: os.makedirs(d)
    with open(os.path.join(d, f"{i:07d}.jpg"), "wb") as f: f.write(data)
PY
"$dtrain" pack "$workdir/many" "$workdir/many-shards" --shard-size 256 >/dev/null
startup() { "$build/bench/bench_loader" startup "$1" | value open_s; }
folder_s=$(startup "$workdir/many")
rm -f "$workdir"/many-shards/*.idx
shards_cold=$(startup "$workdir/many-shards")
shards_s=$(startup "$workdir/many-shards")
echo
echo "start-up, $n_startup files (page cache warm; a parallel file system makes the folder slower):"
printf '  %-44s %9s s\n' "ImageFolder scan" "$folder_s" \
  "shards, index rebuilt from the tar headers" "$shards_cold" \
  "shards, with their .idx files" "$shards_s"
echo "  folder / shards with index: $(ratio "$folder_s" "$shards_s")"
