#!/usr/bin/env bash
# Training throughput benchmark: dtrain end to end from JPEG files (decode, resize, forward,
# loss, backward, SGD) against PyTorch's compute-only training step on random tensors
# (torchvision resnet18, bench/pytorch_train_step.py), fp32, same batch and thread count, run one
# after the other in this invocation, at each image size asked for.
#
#   bench/bench_train.sh BUILD_DIR [options]
#
# Options:
#   --sizes 64,224     image sizes (data.image_size) to measure
#   --steps 10,6       measured steps per size (one number applies to every size)
#   --warmup 2         steps run before measuring (dtrain: excluded from its metrics.jsonl rows)
#   --torch-steps N    measured PyTorch steps per size (default: the same as --steps)
#   --batch 64         batch size (train.batch_size)
#   --threads 2        compute threads on both sides (runtime.threads, torch.set_num_threads)
#   --workers N        data.workers for dtrain (default: dtrain's own choice, 0)
#   --workdir DIR      where images and runs go (default: a temporary folder, removed at exit)
#   --keep             keep the temporary folder
#   --no-torch         skip the PyTorch side
#   --set KEY=VALUE    an extra dtrain override (repeatable), e.g. --set data.augment=flip
# Environment: PYTHON (default /usr/bin/python3, needs torch + torchvision), DTRAIN_BIN (default
# BUILD_DIR/dtrain). Needs BUILD_DIR/bench/bench_make_photos (cmake --build BUILD_DIR --target
# dtrain bench_make_photos). OMP_WAIT_POLICY, OMP_NUM_THREADS and the like reach both sides:
# on a shared, loaded machine OMP_WAIT_POLICY=passive changes both sides' numbers a lot.
#
# dtrain's img/s is global batch x measured steps / their wall time, from the elapsed_s of the
# train rows (output.log_every=1) after the warm-up steps; "data wait" is the share of all
# training-step time spent waiting for decoded batches, from dtrain's final "time:" line.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR
source "$here/bench_lib.sh"
# dtrain sleeps rather than spins in OpenMP waits unless OMP_WAIT_POLICY is set (see
# src/main.c); give the PyTorch side the same policy so both are measured alike.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

[[ $# -ge 1 ]] || { usage >&2 && exit 2; }
[[ $1 == -h || $1 == --help ]] && { usage && exit 0; }
build=$1
shift
sizes=64,224 steps=10,6 warmup=2 torch_steps='' batch=64 threads=2 workers='' workdir='' keep=0
run_torch=1
extra=()
while [[ $# -gt 0 ]]; do
  case $1 in
  --sizes) sizes=${2:?} && shift 2 ;;
  --steps) steps=${2:?} && shift 2 ;;
  --warmup) warmup=${2:?} && shift 2 ;;
  --torch-steps) torch_steps=${2:?} && shift 2 ;;
  --batch) batch=${2:?} && shift 2 ;;
  --threads) threads=${2:?} && shift 2 ;;
  --workers) workers=${2:?} && shift 2 ;;
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

python=${PYTHON:-/usr/bin/python3}
find_dtrain "$build"
require_bench_tools "$build" bench_make_photos
if [[ $run_torch -eq 1 ]] && ! "$python" -c 'import torch, torchvision' 2>/dev/null; then
  echo "note: $python has no torch/torchvision; measuring dtrain only" >&2
  run_torch=0
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

rows=()
for i in "${!size_list[@]}"; do
  size=${size_list[$i]}
  n_steps=$(steps_for step_list "$i")
  n_torch=$(steps_for torch_step_list "$i")
  total=$((batch * (warmup + n_steps) + n_val))
  root=$workdir/data$size
  run_dir=$workdir/run$size
  make_imagefolder "$workdir/pool" "$root" "$classes" "$total"
  rm -rf "$run_dir"
  overrides=(data.root="$root" data.image_size="$size"
    data.val_fraction="$(val_fraction_for "$total" "$n_val")" train.epochs=1
    train.batch_size="$batch" runtime.device=cpu runtime.threads="$threads"
    runtime.precision=fp32 output.dir="$run_dir" output.log_every=1)
  [[ -n $workers ]] && overrides+=(data.workers="$workers")
  overrides+=(${extra[@]+"${extra[@]}"})
  config=$workdir/bench_train.yaml
  printf 'data:\n  root: %s\n' "$root" >"$config"

  echo "size $size: dtrain, $warmup + $n_steps steps of $batch ($(machine_load))"
  log=$workdir/dtrain$size.log
  if ! "$dtrain" "$config" "${overrides[@]}" >"$log" 2>&1; then
    cat "$log" >&2
    die "dtrain failed at size $size (log above)"
  fi
  read -r dtrain_rate _ measured _ < <(steady_rate "$run_dir/metrics.jsonl" "$batch" "$warmup")
  read -r data_wait _ < <(time_shares "$log")
  grep -a '^time:' "$log" | sed 's/^/  dtrain /'

  torch_rate=n/a
  if [[ $run_torch -eq 1 ]]; then
    echo "size $size: pytorch, $warmup + $n_torch steps of $batch ($(machine_load))"
    torch_out=$("$python" "$here/pytorch_train_step.py" --size "$size" --batch "$batch" \
      --threads "$threads" --steps "$n_torch" --warmup "$warmup" --classes "$classes")
    echo "  $torch_out"
    torch_rate=$(sed -n 's/.*img_per_s=\([0-9.]*\).*/\1/p' <<<"$torch_out")
  fi
  rows+=("$size $measured $dtrain_rate $torch_rate $(ratio "$dtrain_rate" "$torch_rate") $data_wait")
done

echo
echo "training throughput, fp32, batch $batch, $threads threads, ResNet-18, 10 classes"
echo "(dtrain: JPEG files end to end; pytorch: compute only on random tensors)"
echo "($(machine_load) at the end; $(omp_note))"
printf '%6s %6s %14s %14s %16s %14s\n' size steps "dtrain img/s" "pytorch img/s" \
  "dtrain/pytorch" "data wait %"
for row in "${rows[@]}"; do
  read -r size measured d p r w <<<"$row"
  printf '%6s %6s %14s %14s %16s %14s\n' "$size" "$measured" "$d" "$p" "$r" "$w"
done
