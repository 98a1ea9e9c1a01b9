#!/bin/bash
# What the CPU backend chooses at run time from the instruction set oneDNN dispatches to, checked
# by short training runs of the dtrain executable, uncapped and with ONEDNN_MAX_CPU_ISA=AVX2 (so
# an AVX-512 machine also runs the AVX2 path):
#   cpu_isa_check.sh fp32 DTRAIN MAKE_LEARNABLE_IMAGEFOLDER
#     the start-up line names the ISA and the layout that follows from it (nChw16c on AVX-512,
#     nChw8c below), both runs compute the same first loss (the forward from the same initial
#     weights; later steps drift apart, as batch norm over 8 images amplifies rounding), 'bf16'
#     under the AVX2 cap is an exit-2 error naming AVX512-BF16, and the old 'tf32' runs as
#     winograd with a note. fp32 keeps some convolutions' weights in the backend's own layouts
#     (the start-up log counts them); winograd keeps all in OIHW. With mpirun (the arguments after
#     the third) and an AVX-512 CPU, two ranks of which one is capped at AVX2 choose different
#     layouts: every rank falls back to OIHW with a note and the run trains.
#   cpu_isa_check.sh bf16 DTRAIN MAKE_LEARNABLE_IMAGEFOLDER
#     bf16 training where oneDNN has bf16 kernels (AVX512-BF16 or AMX): it runs, logs bf16 and
#     its first loss is near fp32's, and with runtime.deterministic two runs repeat exactly;
#     SKIPPED (exit 77) with the reason elsewhere.
set -u
mode=$1
dtrain=$2
make_imagefolder=$3
mpirun=("${@:4}")

# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/testlib/check.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$make_imagefolder" "$work/data" 2 16 64 >/dev/null || exit 1
cat >"$work/run.yaml" <<YAML
data: {root: $work/data, image_size: 64, val_fraction: 0.25, workers: 1}
train: {epochs: 1, batch_size: 8, seed: 3, lr: 0.01}
runtime: {device: cpu, threads: 2}
output: {log_every: 1}
YAML

# train NAME [overrides]: runs into $work/NAME with the start-up details; sets rc and log
train() {
    local name=$1
    shift
    log=$(env -u ONEDNN_MAX_CPU_ISA DTRAIN_VERBOSE=1 ${isa_cap:+ONEDNN_MAX_CPU_ISA=$isa_cap} \
        "$dtrain" "$work/run.yaml" output.dir="$work/$name" "$@" 2>&1)
    rc=$?
}
# the training losses of a run, one per line
losses() { grep -o '"event":"train"[^}]*"loss":[^,]*' "$work/$1/metrics.jsonl" | sed 's/.*"loss"://'; }
# first_loss_close A B RTOL: run A's first loss within RTOL (relative) of run B's, and both runs
# logged every step with finite losses
first_loss_close() {
    local a b
    a=$(losses "$1") b=$(losses "$2")
    [[ $(wc -l <<<"$a") == 3 && $(wc -l <<<"$b") == 3 ]] || return 1
    paste <(echo "$a") <(echo "$b") | awk -v tol="$3" '
        $1 != $1 + 0 || $2 != $2 + 0 || $1 ~ /nan|inf/ { bad = 1 }
        NR == 1 { d = $1 - $2; if (d < 0) d = -d; if (d > tol * ($2 < 0 ? -$2 : $2)) bad = 1 }
        END { exit bad }'
}
backend_line() { grep -m1 '^CPU backend: ' <<<"$log"; }
weights_line() { grep -m1 '^convolution weights: ' <<<"$log"; }

isa_cap=''
train native
expect "exit code, uncapped" "$rc" 0
native_line=$(backend_line)
case $native_line in
*"dispatches to avx512_core"*) layout=nChw16c ;;
*) layout=nChw8c ;;
esac
expect_match "start-up line, uncapped" "$native_line" \
    "CPU backend: oneDNN dispatches to *; activations in $layout (* blocks), precision fp32"
expect_match "own weight layouts, uncapped" "$(weights_line)" \
    "convolution weights: [1-9]* of 20 in the backend's own layouts"

if [[ $mode == bf16 ]]; then
    if [[ $native_line != *"dispatches to avx512_core_bf16"* && $native_line != *"dispatches to avx512_core_amx"* ]]; then
        echo "SKIPPED: bf16 training needs AVX512-BF16 or AMX; ${native_line#CPU backend: }"
        exit 77
    fi
    train bf16 runtime.precision=bf16
    expect "exit code, bf16" "$rc" 0
    expect_match "start-up line, bf16" "$(backend_line)" "*activations in $layout *, precision bf16"
    expect_match "summary line, bf16" "$log" "*precision bf16,*"
    # bf16 inputs to the convolutions: a per cent from fp32, not more
    check "bf16 first loss within 1% of fp32's" first_loss_close bf16 native 0.01
    # runtime.deterministic: no timed choices, so two runs give the same losses
    train det1 runtime.precision=bf16 runtime.deterministic=true
    expect "exit code, deterministic bf16" "$rc" 0
    train det2 runtime.precision=bf16 runtime.deterministic=true
    expect "deterministic bf16 runs repeat" "$(losses det2)" "$(losses det1)"
    check_summary cpu_isa_bf16
    exit
fi

isa_cap=AVX2
train avx2
expect "exit code, AVX2 cap" "$rc" 0
expect_match "start-up line, AVX2 cap" "$(backend_line)" \
    "CPU backend: oneDNN dispatches to avx2; activations in nChw8c (8-channel blocks), precision fp32"
expect_match "own weight layouts, AVX2 cap" "$(weights_line)" \
    "convolution weights: [1-9]* of 20 in the backend's own layouts"
# the same arithmetic in another kernel and layout: rounding differences only
check "AVX2 first loss matches the uncapped run's" first_loss_close avx2 native 1e-5

# two ranks, one capped at AVX2: other weight layouts on that rank, so all ranks use OIHW
if ((${#mpirun[@]} == 0)); then
    echo "not checked: ranks with different layouts (no mpirun given)"
elif [[ $native_line != *"dispatches to avx512"* ]]; then
    echo "not checked: ranks with different layouts (no AVX-512 here: a rank capped at AVX2 chooses the same ones)"
else
    log=$(env -u ONEDNN_MAX_CPU_ISA DTRAIN_VERBOSE=1 OMP_NUM_THREADS=1 "${mpirun[@]}" \
        -np 1 -x ONEDNN_MAX_CPU_ISA=AVX2 "$dtrain" "$work/run.yaml" output.dir="$work/mixed" \
        runtime.threads=1 : -np 1 "$dtrain" "$work/run.yaml" output.dir="$work/mixed" \
        runtime.threads=1 2>&1)
    rc=$?
    expect "exit code, ranks with different layouts" "$rc" 0
    expect_match "ranks with different layouts: a note" "$log" \
        "*rank 1's backend keeps convolution weights in other layouts than rank 0's*every rank uses OIHW weights*"
    expect_match "ranks with different layouts: all OIHW" "$(weights_line)" \
        "convolution weights: 0 of 20 in the backend's own layouts (all OIHW)"
    check "ranks with different layouts: finite losses" bash -c "[[ -s $work/mixed/metrics.jsonl ]] && ! grep -qi nan $work/mixed/metrics.jsonl"
    log=$(env -u ONEDNN_MAX_CPU_ISA DTRAIN_VERBOSE=1 OMP_NUM_THREADS=1 "${mpirun[@]}" -np 2 \
        "$dtrain" "$work/run.yaml" output.dir="$work/same" runtime.threads=1 2>&1)
    rc=$?
    expect "exit code, ranks with the same layouts" "$rc" 0
    expect_match "ranks with the same layouts keep them" "$(weights_line)" \
        "convolution weights: [1-9]* of 20 in the backend's own layouts"
fi

train avx2_bf16 runtime.precision=bf16
expect "exit code of bf16 under the AVX2 cap" "$rc" 2
expect_match "bf16 refusal names the instruction set" "$log" \
    "*runtime.precision: 'bf16' on the CPU needs the AVX512-BF16 instruction set*avx2*ONEDNN_MAX_CPU_ISA=AVX2*"

isa_cap=''
train old_name runtime.precision=tf32
expect "exit code, tf32 on the CPU" "$rc" 0
expect_match "tf32 on the CPU: a note, run as winograd" "$log" "*'tf32' on the CPU is now called 'winograd'*"
expect_match "start-up line, tf32 on the CPU" "$(backend_line)" "*, precision winograd"
check "winograd first loss near fp32's" first_loss_close old_name native 1e-4
expect_match "winograd keeps OIHW weights" "$(weights_line)" \
    "convolution weights: 0 of 20 in the backend's own layouts (all OIHW)"
check_summary cpu_isa_fp32
