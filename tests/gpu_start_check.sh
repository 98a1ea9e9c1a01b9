#!/bin/bash
# Start-up of a CUDA build on a machine without what a GPU run needs.
#   gpu_start_check.sh linkage DTRAIN
#     no DT_NEEDED entry on libnccl in dtrain (NCCL is dlopened), none on cuDNN or cuBLAS either
#     (the CUDA module beside it links those), and `dtrain --version` runs when libnccl.so.2
#     cannot be loaded, saying so.
#   gpu_start_check.sh device DTRAIN MAKE_LEARNABLE_IMAGEFOLDER CC
#     on a machine without a usable GPU (exit 77 where nvidia-smi lists one): runtime.device=cuda
#     is exit 2 with the reason, auto trains on the CPU after one line with it (training and
#     dtrain predict).
#   gpu_start_check.sh module DTRAIN MAKE_LEARNABLE_IMAGEFOLDER CC
#     a CUDA build whose CUDA module (libdtrain_cuda.so) cannot load, as on a machine without
#     cuDNN or cuBLAS (DTRAIN_CUDA_MODULE points at stand-ins that need a library that is
#     nowhere): auto trains on the CPU after one line naming the library and its pip wheel, cuda
#     is exit 2 with that line, and so are dtrain predict and --version; a GPU does not matter.
#   gpu_start_check.sh check SOURCE_DIR
#     tools/gpu-check.sh on a machine without a GPU (exit 77 where one is visible): exit 1 with
#     the reason in its one summary block, and nothing said to have passed.
set -u
mode=$1
dtrain=$2

# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/testlib/check.sh"

if [[ $mode == linkage ]]; then
    needed=$(readelf -d "$dtrain" 2>&1)
    expect_match "readelf -d dtrain runs" "$needed" "*Dynamic section*"
    expect "libnccl in the DT_NEEDED entries of dtrain" \
        "$(grep NEEDED <<<"$needed" | grep -c libnccl)" 0
    expect "libcudnn or libcublas in the DT_NEEDED entries of dtrain" \
        "$(grep NEEDED <<<"$needed" | grep -c 'libcudnn\|libcublas')" 0
    cuda_module=$(dirname "$(readlink -f "$dtrain")")/libdtrain_cuda.so
    needed=$(readelf -d "$cuda_module" 2>&1)
    expect "the CUDA module links cuDNN" "$(grep NEEDED <<<"$needed" | grep -c libcudnn)" 1
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
[[ $mode == device || $mode == module ]] ||
    { echo "gpu_start_check.sh: unknown mode $mode" >&2 && exit 2; }
make_imagefolder=$3
cc=$4
if [[ $mode == device ]] && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
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
if [[ $mode == module ]]; then
    # Stand-ins for the CUDA module: linked against an empty libcudnn.so.99 or libcublas.so.99
    # that is then removed (a real libcudnn.so.9 may be installed here), a file that is not a
    # dtrain module, and no file at all.
    mkdir -p "$work/fake"
    echo 'int dtrain_fake(void) { return 0; }' >"$work/fake/empty.c"
    for lib in cudnn cublas; do
        "$cc" -shared -fPIC -o "$work/fake/lib$lib.so.99" -Wl,-soname,"lib$lib.so.99" \
            "$work/fake/empty.c" &&
            "$cc" -shared -fPIC -o "$work/fake/needs-$lib.so" "$work/fake/empty.c" \
                -Wl,--no-as-needed "$work/fake/lib$lib.so.99" || exit 1
        rm "$work/fake/lib$lib.so.99"
    done
    "$cc" -shared -fPIC -o "$work/fake/not-dtrain.so" "$work/fake/empty.c" || exit 1
    wheel_cudnn='pip install nvidia-cudnn-cu1[0-9]'
    wheel_cublas='pip install nvidia-cublas'
    for case in "needs-cudnn.so;libcudnn.so.99 (needed by dtrain's CUDA module) could not be loaded; provide *$wheel_cudnn*" \
        "needs-cublas.so;libcublas.so.99 (needed by dtrain's CUDA module) could not be loaded; provide *$wheel_cublas*" \
        "not-dtrain.so;the CUDA module $work/fake/not-dtrain.so is not this dtrain's*" \
        "missing.so;the CUDA module $work/fake/missing.so could not be loaded: *No such file*"; do
        file=${case%%;*}
        want=${case#*;}
        export DTRAIN_CUDA_MODULE=$work/fake/$file
        out=$("$dtrain" "$work/run.yaml" runtime.device=cuda output.dir="$work/cuda-$file" 2>&1)
        expect "$file: runtime.device=cuda exit code" "$?" 2
        expect_match "$file: runtime.device=cuda names why" "$out" \
            "*dtrain: error: runtime.device: 'cuda', but $want"
        out=$("$dtrain" "$work/run.yaml" runtime.device=auto output.dir="$work/auto-$file" 2>&1)
        expect "$file: runtime.device=auto exit code" "$?" 0
        expect "$file: runtime.device=auto trains on the CPU after one line saying why" \
            "$(grep -cF "on cpu (no GPU: ${want%%\**}" <<<"$out")" 1
        expect_match "$file: runtime.device=auto: the line names it all" "$out" \
            "*on cpu (no GPU: $want"
        out=$("$dtrain" --version 2>&1)
        expect "$file: dtrain --version exit code" "$?" 0
        expect_match "$file: dtrain --version says why" "$out" "*GPU: not usable: $want"
        image=$(find "$work/data" -name '*.png' -o -name '*.jpg' | head -1)
        out=$("$dtrain" predict "$work/auto-$file/model.safetensors" "$image" --device cuda 2>&1)
        expect "$file: predict --device cuda exit code" "$?" 2
        out=$("$dtrain" predict "$work/auto-$file/model.safetensors" "$image" --device auto 2>&1)
        expect "$file: predict --device auto exit code" "$?" 0
        unset DTRAIN_CUDA_MODULE
    done
    check_summary gpu_start_module
    exit
fi
out=$("$dtrain" "$work/run.yaml" runtime.device=cuda 2>&1)
expect "runtime.device=cuda without a usable GPU: exit code" "$?" 2
expect_match "runtime.device=cuda names the reason" "$out" \
    "*dtrain: error: runtime.device: 'cuda', but *"
reason=$(sed -n "s/.*runtime.device: 'cuda', but //p" <<<"$out")
out=$("$dtrain" "$work/run.yaml" runtime.device=auto output.dir="$work/auto" 2>&1)
expect "runtime.device=auto without a usable GPU: exit code" "$?" 0
# the reason is in the one start-up summary line (DTRAIN_VERBOSE=1 prints it on a line of its own)
expect "runtime.device=auto: one line with the same reason" \
    "$(grep -cF "on cpu (no GPU: ${reason:-no reason}" <<<"$out")" 1
# dtrain predict and eval make the same check
image=$(find "$work/data" -name '*.png' -o -name '*.jpg' | head -1)
out=$("$dtrain" predict "$work/auto/model.safetensors" "$image" --device cuda 2>&1)
expect "predict --device cuda without a usable GPU: exit code" "$?" 2
expect_match "predict --device cuda names the reason" "$out" "*'cuda', but ${reason:-no reason}*"
out=$("$dtrain" predict "$work/auto/model.safetensors" "$image" --device auto 2>&1)
expect "predict --device auto without a usable GPU: exit code" "$?" 0

check_summary gpu_start_device
