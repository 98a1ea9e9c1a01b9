#!/usr/bin/env bash
# Training throughput benchmark: dtrain end to end from JPEG files (decode, resize, forward,
# loss, backward, SGD) at each precision against PyTorch's compute-only training step on random
# tensors (the same torchvision model, bench/pytorch_train_step.py): Debian's PyTorch 1.13 (fp32) and
# PyPI's current PyTorch 2.x (fp32, and bf16 autocast), same batch and thread count, run one after
# the other in this invocation, at each image size asked for, with the ratios.
#
#   bench/bench_train.sh BUILD_DIR [options]
#
# Options:
#   --arch resnet18    the network on both sides (model.arch; torchvision.models.ARCH): resnet18,
#                      resnet34, resnet50, resnet101 or resnet152
#   --sizes 64,224     image sizes (data.image_size) to measure
#   --steps 10,6       measured steps per size (one number applies to every size)
#   --warmup 2         steps run before measuring (dtrain: excluded from its metrics.jsonl rows)
#   --torch-steps N    measured PyTorch steps per size (default: the same as --steps)
#   --batch 64         batch size (train.batch_size)
#   --threads 2        compute threads on both sides (runtime.threads, torch.set_num_threads)
#   --workers N        data.workers for dtrain (default: dtrain's own choice, 0)
#   --precisions fp32,winograd,bf16
#                      dtrain's runtime.precision values; one this CPU refuses (bf16 where oneDNN
#                      has no AVX512-BF16/AMX kernels) is shown as "refused"
#   --peers debian,pypi
#                      PyTorch peers: debian (python3-torch 1.13: fp32), pypi (PyPI's torch 2.x
#                      in a virtual environment of the benchmarks' own, installed on first use:
#                      fp32, and bf16 autocast on CPUs with AVX-512-BF16 or AMX, or with
#                      DTRAIN_BENCH_BF16=1)
#   --workdir DIR      where images and runs go (default: a temporary folder, removed at exit)
#   --keep             keep the temporary folder
#   --no-torch         skip the PyTorch side
#   --set KEY=VALUE    an extra dtrain override (repeatable), e.g. --set data.augment=flip
# Environment: PYTHON (the debian peer, default /usr/bin/python3), DTRAIN_BENCH_TORCH_VENV (the
# pypi peer's virtual environment, see bench_lib.sh), DTRAIN_BIN (default BUILD_DIR/dtrain). Needs
# BUILD_DIR/bench/bench_make_photos (cmake --build BUILD_DIR --target dtrain bench_make_photos).
# OMP_WAIT_POLICY, OMP_NUM_THREADS and the like reach both sides: on a shared, loaded machine
# OMP_WAIT_POLICY=passive changes both sides' numbers a lot.
#
# dtrain's img/s is global batch x measured steps / their wall time, from the elapsed_s of the
# train rows (output.log_every=1) after the warm-up steps; "data wait" is the share of all
# training-step time spent waiting for decoded batches, from dtrain's final "time:" line.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR
source "$here/bench_lib.sh"
passive_waits_unless_set
usage_unless_args "$@"
build=$1
shift
arch=resnet18 sizes=64,224 steps=10,6 warmup=2 torch_steps='' batch=64 threads=2 workers='' workdir='' keep=0
run_torch=1 precisions=fp32,winograd,bf16 peers=debian,pypi
extra=()
while [[ $# -gt 0 ]]; do
  case $1 in
  --arch) arch=${2:?} && shift 2 ;;
  --sizes) sizes=${2:?} && shift 2 ;;
  --steps) steps=${2:?} && shift 2 ;;
  --warmup) warmup=${2:?} && shift 2 ;;
  --torch-steps) torch_steps=${2:?} && shift 2 ;;
  --batch) batch=${2:?} && shift 2 ;;
  --threads) threads=${2:?} && shift 2 ;;
  --workers) workers=${2:?} && shift 2 ;;
  --precisions) precisions=${2:?} && shift 2 ;;
  --peers) peers=${2:?} && shift 2 ;;
  --workdir) workdir=${2:?} && shift 2 ;;
  --keep) keep=1 && shift ;;
  --no-torch) run_torch=0 && shift ;;
  --set) extra+=("${2:?}") && shift 2 ;;
  -h | --help) usage && exit 0 ;;
  *) die "unknown option $1 (see --help)" ;;
  esac
done
for v in "$warmup" "$batch" "$threads"; do
  [[ $v =~ ^[0-9]+$ ]] || die "--warmup, --batch and --threads want whole numbers, got '$v'"
done
[[ $warmup -ge 1 && $batch -ge 1 && $threads -ge 1 ]] || die "--warmup, --batch, --threads must be >= 1"

[[ $arch =~ ^resnet(18|34|50|101|152)$ ]] ||
  die "--arch takes resnet18, resnet34, resnet50, resnet101, resnet152; not '$arch'"
IFS=, read -r -a precision_list <<<"$precisions"
for p in "${precision_list[@]}"; do
  [[ $p == fp32 || $p == winograd || $p == tf32 || $p == bf16 ]] ||
    die "--precisions takes fp32, winograd, bf16 (tf32: winograd's old name); not '$p'"
done
find_dtrain "$build"
require_bench_tools "$build" bench_make_photos
echo "CPU: $(cpu_model); instruction sets: $(cpu_isa_flags)"
echo "machine: $(machine_load); $(omp_note)"
# The PyTorch peers: "label python mode" per line, mode fp32 or bf16 (autocast).
torch_runs=()
if [[ $run_torch -eq 1 ]]; then
  IFS=, read -r -a peer_list <<<"$peers"
  for peer in "${peer_list[@]}"; do
    case $peer in
    debian)
      python=${PYTHON:-/usr/bin/python3}
      if "$python" -c 'import torch, torchvision' 2>/dev/null; then
        torch_runs+=("debian $python fp32")
      else
        echo "note: $python has no torch/torchvision (apt-get install python3-torchvision); no debian peer" >&2
      fi
      ;;
    pypi)
      if python=$(pypi_torch_python); then
        torch_runs+=("pypi $python fp32")
        # Without bf16 instructions PyTorch emulates bf16 autocast, about 30x slower than fp32
        # (bench/README.md): a 224 px run would take many minutes and measure nothing useful.
        if grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo || [[ ${DTRAIN_BENCH_BF16:-} == 1 ]]; then
          torch_runs+=("pypi $python bf16")
        else
          echo "note: this CPU has no AVX-512-BF16 or AMX: no bf16 autocast peer (DTRAIN_BENCH_BF16=1 runs it)" >&2
        fi
      else
        echo "note: no PyPI torch; no pypi peer" >&2
      fi
      ;;
    *) die "--peers takes debian, pypi; not '$peer'" ;;
    esac
  done
fi

IFS=, read -r -a size_list <<<"$sizes"
# shellcheck disable=SC2034 # read through steps_for
IFS=, read -r -a step_list <<<"$steps"
# shellcheck disable=SC2034
IFS=, read -r -a torch_step_list <<<"${torch_steps:-$steps}"
steps_for() { # LIST_NAME INDEX: the INDEX-th entry, or the last one
  local -n list=$1
  local i=$2
  [[ $i -lt ${#list[@]} ]] || i=$((${#list[@]} - 1))
  echo "${list[$i]}"
}

use_workdir dtrain-bench-train "$keep"

classes=10
n_val=$classes # a token validation set: rank 0 evaluates it once, after the measured steps
max_train=0
for i in "${!size_list[@]}"; do
  n=$(steps_for step_list "$i")
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "--steps wants positive whole numbers, got '$n'"
  total=$((batch * (warmup + n)))
  [[ $total -le $max_train ]] || max_train=$total
done
per_class=$(((max_train + n_val + classes - 1) / classes))
echo "generating $((per_class * classes)) JPEGs (10 classes, 60..300 px, quality 90) in $workdir"
make_photo_pool "$build" "$workdir/pool" "$classes" "$per_class" 60 300

declare -A rate # "size what" -> img/s, what: dtrain-fp32, torch-debian-fp32, torch-pypi-bf16, ...
declare -A version wait_share
for i in "${!size_list[@]}"; do
  size=${size_list[$i]}
  n_steps=$(steps_for step_list "$i")
  n_torch=$(steps_for torch_step_list "$i")
  total=$((batch * (warmup + n_steps) + n_val))
  root=$workdir/data$size
  make_imagefolder "$workdir/pool" "$root" "$classes" "$total"
  for precision in "${precision_list[@]}"; do
    run_dir=$workdir/run$size-$precision
    rm -rf "$run_dir"
    overrides=(data.root="$root" data.image_size="$size"
      data.val_fraction="$(val_fraction_for "$total" "$n_val")" train.epochs=1
      model.arch="$arch" train.batch_size="$batch" runtime.device=cpu runtime.threads="$threads"
      runtime.precision="$precision" output.dir="$run_dir" output.log_every=1)
    [[ -n $workers ]] && overrides+=(data.workers="$workers")
    overrides+=(${extra[@]+"${extra[@]}"})
    config=$workdir/bench_train.yaml
    printf 'data:\n  root: %s\n' "$root" >"$config"

    echo "size $size: dtrain $arch $precision, $warmup + $n_steps steps of $batch ($(machine_load))"
    log=$workdir/dtrain$size-$precision.log
    status=0
    DTRAIN_VERBOSE=1 "$dtrain" "$config" "${overrides[@]}" >"$log" 2>&1 || status=$?
    if [[ $status -eq 2 && $precision == bf16 ]]; then
      echo "  refused: $(grep -a -m1 'bf16' "$log")"
      rate["$size dtrain-$precision"]=refused
      continue
    elif [[ $status -ne 0 ]]; then
      cat "$log" >&2
      die "dtrain failed at size $size, $precision (log above)"
    fi
    read -r dtrain_rate _ _ _ < <(steady_rate "$run_dir/metrics.jsonl" "$batch" "$warmup")
    read -r data_wait _ < <(time_shares "$log")
    grep -a '^time:' "$log" | sed 's/^/  dtrain /'
    grep -a -m1 '^CPU backend:' "$log" | sed 's/^/  /' || true
    rate["$size dtrain-$precision"]=$dtrain_rate
    echo "  dtrain img_per_s=$dtrain_rate"
    wait_share["$size $precision"]=$data_wait
  done

  for run in ${torch_runs[@]+"${torch_runs[@]}"}; do
    read -r peer python mode <<<"$run"
    echo "size $size: pytorch ($peer) $arch $mode, $warmup + $n_torch steps of $batch ($(machine_load))"
    mode_args=()
    [[ $mode == bf16 ]] && mode_args=(--bf16-autocast)
    torch_out=$("$python" "$here/pytorch_train_step.py" --arch "$arch" --size "$size" --batch "$batch" \
      --threads "$threads" --steps "$n_torch" --warmup "$warmup" --classes "$classes" \
      ${mode_args[@]+"${mode_args[@]}"})
    echo "  $torch_out"
    rate["$size torch-$peer-$mode"]=$(sed -n 's/.*img_per_s=\([0-9.]*\).*/\1/p' <<<"$torch_out")
    version[$peer]=$(sed -n 's/.*torch=\([^ ]*\).*/\1/p' <<<"$torch_out")
  done
done

echo
echo "training throughput, batch $batch, $threads threads, $arch, 10 classes, img/s"
echo "(dtrain: JPEG files end to end; pytorch: compute only on random tensors)"
echo "($(machine_load) at the end; $(omp_note))"
columns=()
for precision in "${precision_list[@]}"; do columns+=("dtrain-$precision"); done
for run in ${torch_runs[@]+"${torch_runs[@]}"}; do
  read -r peer _ mode <<<"$run"
  columns+=("torch-$peer-$mode")
done
header=$(printf '%6s' size)
for c in "${columns[@]}"; do
  label=$c
  [[ $c == torch-* ]] && label="${c/-debian-/-${version[debian]:-debian}-}" && label="${label/-pypi-/-${version[pypi]:-pypi}-}"
  header+=$(printf ' %20s' "$label")
done
echo "$header"
for size in "${size_list[@]}"; do
  line=$(printf '%6s' "$size")
  for c in "${columns[@]}"; do line+=$(printf ' %20s' "${rate["$size $c"]:-n/a}"); done
  echo "$line"
done
echo
echo "ratios"
for size in "${size_list[@]}"; do
  for pair in "dtrain-fp32 torch-pypi-fp32" "dtrain-fp32 torch-debian-fp32" \
    "dtrain-winograd torch-pypi-fp32" "dtrain-bf16 torch-pypi-bf16" \
    "dtrain-winograd torch-pypi-bf16" "dtrain-bf16 dtrain-fp32" "dtrain-winograd dtrain-fp32"; do
    read -r a b <<<"$pair"
    [[ -n ${rate["$size $a"]:-} && -n ${rate["$size $b"]:-} ]] || continue
    printf '%6s  %-12s / %-18s %6s\n' "$size" "$a" "$b" "$(ratio "${rate["$size $a"]}" "${rate["$size $b"]}")"
  done
done
for size in "${size_list[@]}"; do
  for precision in "${precision_list[@]}"; do
    [[ -n ${wait_share["$size $precision"]:-} ]] &&
      echo "data wait, $size px $precision: ${wait_share["$size $precision"]}% of step time"
  done
done
