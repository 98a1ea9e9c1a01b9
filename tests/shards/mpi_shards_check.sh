#!/bin/bash
# Data-parallel runs from tar shards and the shared file list, under mpirun -np 2:
#  - 2 ranks from shards give bitwise the weights of 2 ranks from the ImageFolder they came from;
#  - only rank 0 reads data.root: rank 1 is started (MPMD) in a folder where the relative
#    data.root holds one more class than rank 0's; had it scanned its own, the ranks' file lists
#    would differ and the job would stop, so the run succeeds only with the list rank 0 sent,
#    and gives the weights of the run on rank 0's folder;
#  - data.cache=memory, one copy for both ranks, gives the weights of the uncached run (flip).
# Usage: mpi_shards_check.sh DTRAIN MAKE_LEARNABLE_IMAGEFOLDER MPIRUN [MPIRUN FLAGS...]
set -u
dtrain=$1
make_folder=$2
shift 2
mpirun=("$@")

# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/../testlib/check.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/dtrain-mpi-shards-XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rank0" "$work/rank1/data"
"$make_folder" "$work/rank0/data" 3 24 32 6 > /dev/null
"$dtrain" pack "$work/rank0/data" "$work/rank0/shards" --shard-size 0.02 > /dev/null
for class in class00 class01 class02; do ln -s "$work/rank0/data/$class" "$work/rank1/data/$class"; done
mkdir "$work/rank1/data/zz-extra"
cp "$work/rank0/data/class00/img0000.jpg" "$work/rank1/data/zz-extra/"
cat > "$work/cfg.yaml" <<CFG
data:
  root: unused
  val_fraction: 0.25
  image_size: 24
  workers: 1
  augment: crop_flip
train:
  epochs: 1
  batch_size: 6
  lr: 0.05
  momentum: 0.9
  seed: 2
runtime:
  device: cpu
  threads: 1
output:
  log_every: 5
  tensorboard: false
CFG

weights() { # the tensor bytes of a safetensors file, hashed
    python3 -c 'import hashlib, struct, sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]
print(hashlib.sha256(b[8 + n:]).hexdigest())' "$1" 2>/dev/null || echo "unreadable $1"
}

run() { # run NAME ARGS...: mpirun with the args, output to NAME.log; prints the exit code
    local name=$1
    shift
    OMP_NUM_THREADS=1 timeout 300 "${mpirun[@]}" "$@" > "$work/$name.log" 2>&1
    local rc=$?
    ((rc == 0)) || sed 's/^/    /' "$work/$name.log" >&2
    echo "$rc"
}

expect "2 ranks from shards" "$(run shards -np 2 "$dtrain" "$work/cfg.yaml" \
    data.root="$work/rank0/shards" output.dir="$work/run-shards")" 0
expect "2 ranks from the folder" "$(run folder -np 2 "$dtrain" "$work/cfg.yaml" \
    data.root="$work/rank0/data" output.dir="$work/run-folder")" 0
expect "shards and folder: the same weights" "$(weights "$work/run-shards/model.safetensors")" \
    "$(weights "$work/run-folder/model.safetensors")"

expect "rank 1 uses rank 0's list" "$(run shared \
    -np 1 --wdir "$work/rank0" "$dtrain" "$work/cfg.yaml" data.root=data output.dir="$work/run-shared" : \
    -np 1 --wdir "$work/rank1" "$dtrain" "$work/cfg.yaml" data.root=data output.dir="$work/run-shared")" 0
expect "the shared list gives rank 0's weights" "$(weights "$work/run-shared/model.safetensors")" \
    "$(weights "$work/run-folder/model.safetensors")"

# data.cache=memory shared by the 2 ranks of this node: the weights of the uncached run (flip)
expect "2 ranks, folder, flip" "$(run folder-flip -np 2 "$dtrain" "$work/cfg.yaml" \
    data.root="$work/rank0/data" data.augment=flip output.dir="$work/run-folder-flip")" 0
expect "2 ranks, shards, flip, memory cache" "$(run cache -np 2 "$dtrain" "$work/cfg.yaml" \
    data.root="$work/rank0/shards" data.augment=flip data.cache=memory output.dir="$work/run-cache")" 0
expect "the cache changes no weight" "$(weights "$work/run-cache/model.safetensors")" \
    "$(weights "$work/run-folder-flip/model.safetensors")"
check_summary mpi_shards
