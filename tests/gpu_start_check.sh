#!/bin/bash
# Start-up of a CUDA build on a machine without what a GPU run needs.
#   gpu_start_check.sh linkage DTRAIN
#     no DT_NEEDED entry on libnccl in dtrain or its program module (NCCL is dlopened), and
#     `dtrain --version` runs when libnccl.so.2 cannot be loaded, saying so.
#   gpu_start_check.sh device DTRAIN MAKE_LEARNABLE_IMAGEFOLDER CC
#     on a machine without a usable GPU (exit 77 where nvidia-smi lists one): runtime.device=cuda
#     is exit 2 with the reason, auto trains on the CPU after one line with it (training and
#     dtrain predict); and a program
#     module that needs a libcudnn.so.9 the loader cannot find is exit 2 naming it and the wheel.
#   gpu_start_check.sh check SOURCE_DIR
#     tools/gpu-check.sh on a machine without a GPU (exit 77 where one is visible): exit 1 with
#     the reason in its one summary block, and nothing said to have passed.
set -u
mode=$1
dtrain=$2

# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/testlib/check.sh"

if [[ $mode == linkage ]]; then
    module=$(dirname "$(readlink -f "$dtrain")")/libdtrain_main.so
    for file in "$dtrain" "$module"; do
        needed=$(readelf -d "$file" 2>&1)
        expect_match "readelf -d $(basename "$file") runs" "$needed" "*Dynamic section*"
        expect "libnccl in the DT_NEEDED entries of $(basename "$file")" \
            "$(grep NEEDED <<<"$needed" | grep -c libnccl)" 0
    done
    out=$(DTRAIN_NCCL_LIBRARY=/nonexistent-dir/libnccl.so.2 "$dtrain" --version 2>&1)
    expect "dtrain --version without NCCL: exit code" "$?" 0
    expect_match "dtrain --version without NCCL names it" "$out" \
        "*CUDA: *nccl not loadable (libnccl.so.2: needed only by several GPU ranks)*"
    check_summary gpu_start_linkage
    exit
fi
if [[ $mode == check ]]; then
    if nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
        echo "a GPU is visible: the check's no-GPU verdict is not checked here"
        exit 77
    fi
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    source_dir=$2
    out=$(bash "$source_dir/tools/gpu-check.sh" "$work/out" 2>&1)
    expect "gpu-check.sh without a GPU: exit code" "$?" 1
    expect_match "gpu-check.sh says why" "$out" "*FAIL: the GPU cannot be used: no GPU visible*"
    expect "gpu-check.sh prints one summary block" \
        "$(grep -c '^==================== GPU CHECK SUMMARY' <<<"$out")" 1
    expect "gpu-check.sh says nothing passed" "$(grep -ci 'passed' <<<"$out")" 0
    expect_match "gpu-check.sh log" "$(cat "$work/out/gpu-check.log")" "*no GPU visible*"
    check_summary gpu_start_check
    exit
fi
[[ $mode == device ]] || { echo "gpu_start_check.sh: unknown mode $mode" >&2 && exit 2; }
make_imagefolder=$3
cc=$4
if nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    echo "a GPU is visible: the no-GPU start-up is not checked here"
    exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$make_imagefolder" "$work/data" 2 4 16 || exit 1
cat >"$work/run.yaml" <<YAML
data: {root: $work/data, image_size: 16, val_fraction: 0.25}
train: {epochs: 1, batch_size: 2}
output: {dir: $work/out, log_every: 100}
YAML
out=$("$dtrain" "$work/run.yaml" runtime.device=cuda 2>&1)
expect "runtime.device=cuda without a usable GPU: exit code" "$?" 2
expect_match "runtime.device=cuda names the reason" "$out" \
    "*dtrain: error: runtime.device: 'cuda', but *"
reason=$(sed -n "s/.*runtime.device: 'cuda', but //p" <<<"$out")
out=$("$dtrain" "$work/run.yaml" runtime.device=auto output.dir="$work/auto" 2>&1)
expect "runtime.device=auto without a usable GPU: exit code" "$?" 0
expect "runtime.device=auto: one line with the same reason" \
    "$(grep -c "^runtime.device=auto: training on the CPU: ${reason:-no reason}" <<<"$out")" 1
# dtrain predict and eval make the same check
image=$(find "$work/data" -name '*.png' -o -name '*.jpg' | head -1)
out=$("$dtrain" predict "$work/auto/model.safetensors" "$image" --device cuda 2>&1)
expect "predict --device cuda without a usable GPU: exit code" "$?" 2
expect_match "predict --device cuda names the reason" "$out" "*'cuda', but ${reason:-no reason}*"
out=$("$dtrain" predict "$work/auto/model.safetensors" "$image" --device auto 2>&1)
expect "predict --device auto without a usable GPU: exit code" "$?" 0

# A program module needing a cuDNN library that is nowhere (libcudnn.so.99: a real
# libcudnn.so.9 may be installed here): linked against an empty stand-in,
# which is then removed. The launcher is dtrain itself, copied beside that module.
mkdir -p "$work/fake/lib" "$work/fake/bin"
echo 'int dtrain_fake(void) { return 0; }' >"$work/fake/empty.c"
"$cc" -shared -fPIC -o "$work/fake/lib/libcudnn.so.99" -Wl,-soname,libcudnn.so.99 "$work/fake/empty.c" &&
    "$cc" -shared -fPIC -o "$work/fake/bin/libdtrain_main.so" "$work/fake/empty.c" \
        -Wl,--no-as-needed "$work/fake/lib/libcudnn.so.99" || exit 1
rm "$work/fake/lib/libcudnn.so.99"
cp "$dtrain" "$work/fake/bin/dtrain"
out=$("$work/fake/bin/dtrain" --version 2>&1)
expect "a module missing libcudnn.so.9: exit code" "$?" 2
expect_match "a module missing libcudnn.so.9: named with the wheel" "$out" \
    "dtrain: error: libcudnn.so.99, which this dtrain's CUDA backend links, was not found*pip install nvidia-cudnn-cu1[0-9]*"
check_summary gpu_start_device
