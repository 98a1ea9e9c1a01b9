#!/usr/bin/env bash
# Data-parallel scaling benchmark: the same training config at several world sizes, in strong
# scaling (fixed global batch, per-rank batch = G / N) and weak scaling (fixed per-rank batch),
# on generated Animals-10-like JPEGs (or an ImageFolder you name). Prints world size, mode,
# batches, steady-state img/s, speed-up, efficiency, and the shares of step time in all-reduce and
# waiting for data; writes the same table as CSV with --csv.
#
#   bench/bench_scaling.sh BUILD_DIR [options]
#
# Options:
#   --ranks 1,2          world sizes; the first is the baseline of speed-up and efficiency
#                        (--device cuda: 1, 2, 4, ... up to the GPUs nvidia-smi lists here)
#   --modes strong,weak  which scalings to run
#   --global-batch 64    strong scaling's global batch (divisible by every world size)
#   --rank-batch 64      weak scaling's per-rank batch (when equal to the global batch, the
#                        1-rank run is shared by both modes)
#   --size 64            data.image_size (--device cuda: 224)
#   --steps 20           measured steps per run; --warmup 3 steps before them are not measured
#   --device cpu         runtime.device (cpu, cuda, auto)
#   --threads N          runtime.threads per rank (default 0: dtrain splits the cores)
#   --workers N          data.workers per rank (default 0: dtrain's choice)
#   --launcher L         dtrain-run (default, launch/dtrain-run -n N), mpirun (mpirun -np N),
#                        srun (srun --mpi=pmix -n N), or a command line where {n} stands for the
#                        world size, e.g. 'srun --mpi=pmi2 -n {n} --gpus-per-task=1'.
#                        Environment: DTRAIN_BENCH_LAUNCHER.
#   --launcher-args A    extra launcher arguments, split on spaces (e.g. --oversubscribe)
#   --data DIR           use this ImageFolder as is: one epoch per run over all its files
#   --val-fraction F     with --data: data.val_fraction (default 0.01)
#   --workdir DIR        images, configs, logs and runs (default: a temporary folder, removed at
#                        exit); on a cluster, a folder every node sees
#   --keep               keep the temporary folder
#   --csv PATH           also write the table as CSV
#   --repeat R           run every configuration R times, rounds interleaved; the table keeps
#                        each one's fastest round and notes the range (shared, noisy machines)
#   --set KEY=VALUE      an extra dtrain override (repeatable), e.g. --set runtime.precision=tf32
# Environment: DTRAIN_BIN (default BUILD_DIR/dtrain); dtrain-run's knobs (OMP_NUM_THREADS,
# DTRAIN_MPIRUN, DTRAIN_MPIRUN_ARGS, OMPI_MCA_*, NCCL_*) pass through.
#
# img/s is the global batch x measured steps / their wall time, from the elapsed_s of rank 0's
# train rows (output.log_every=1) after the warm-up; "median step" is the global batch / the
# median step time, less moved by bursts of load from other processes. Speed-up = img/s /
# baseline img/s of the same mode; efficiency = speed-up / (N / baseline N). The all-reduce and
# data-wait shares come from dtrain's final "time:" line (averaged over ranks, warm-up steps
# included): the all-reduce share is the time a step waits for gradient buckets that backward
# did not hide (on GPUs NCCL runs them beside the rest of backward), waiting for the slowest rank
# included. "last loss" is the
# loss of the last logged step: a sanity check that every world size trained alike.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source-path=SCRIPTDIR
source "$here/bench_lib.sh"
passive_waits_unless_set
usage_unless_args "$@"
build=$1
shift
ranks_list='' modes=strong,weak global_batch=64 rank_batch=64 size='' steps=20 warmup=3
device=cpu threads='' workers='' launcher=${DTRAIN_BENCH_LAUNCHER:-dtrain-run} launcher_args=''
data='' val_fraction=0.01 workdir='' keep=0 csv='' repeat=1
extra=()
while [[ $# -gt 0 ]]; do
  case $1 in
  --ranks) ranks_list=${2:?} && shift 2 ;;
  --modes) modes=${2:?} && shift 2 ;;
  --global-batch) global_batch=${2:?} && shift 2 ;;
  --rank-batch) rank_batch=${2:?} && shift 2 ;;
  --size) size=${2:?} && shift 2 ;;
  --steps) steps=${2:?} && shift 2 ;;
  --warmup) warmup=${2:?} && shift 2 ;;
  --device) device=${2:?} && shift 2 ;;
  --threads) threads=${2:?} && shift 2 ;;
  --workers) workers=${2:?} && shift 2 ;;
  --launcher) launcher=${2:?} && shift 2 ;;
  --launcher-args) launcher_args=${2:?} && shift 2 ;;
  --data) data=${2:?} && shift 2 ;;
  --val-fraction) val_fraction=${2:?} && shift 2 ;;
  --workdir) workdir=${2:?} && shift 2 ;;
  --keep) keep=1 && shift ;;
  --csv) csv=${2:?} && shift 2 ;;
  --repeat) repeat=${2:?} && shift 2 ;;
  --set) extra+=("${2:?}") && shift 2 ;;
  -h | --help) usage && exit 0 ;;
  *) die "unknown option $1 (see --help)" ;;
  esac
done

# On GPUs the defaults are the tutorial's input size and one rank per GPU of this node (1, 2,
# 4, ... up to their count): strong scaling then keeps each GPU's share of the global batch.
if [[ $device == cuda ]]; then
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
  [[ $gpus -ge 1 ]] || die "--device cuda: nvidia-smi lists no GPU on this node"
  if [[ -z $ranks_list ]]; then
    ranks_list=1
    for ((n = 2; n <= gpus; n *= 2)); do ranks_list+=",$n"; done
    ((gpus & (gpus - 1))) && ranks_list+=",$gpus"
  fi
  size=${size:-224}
fi
ranks_list=${ranks_list:-1,2} size=${size:-64}
IFS=, read -r -a world_sizes <<<"$ranks_list"
IFS=, read -r -a mode_list <<<"$modes"
for v in "${world_sizes[@]}" "$repeat" "$global_batch" "$rank_batch" "$size" "$steps"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || die "world sizes, batches, --size and --steps want positive whole numbers, got '$v'"
done
[[ $warmup =~ ^[1-9][0-9]*$ ]] || die "--warmup wants a positive whole number, got '$warmup'"
for m in "${mode_list[@]}"; do
  [[ $m == strong || $m == weak ]] || die "--modes takes strong and/or weak, not '$m'"
  if [[ $m == strong ]]; then
    for n in "${world_sizes[@]}"; do
      [[ $((global_batch % n)) -eq 0 ]] || die "--global-batch $global_batch is not divisible by $n ranks"
    done
  fi
done

find_dtrain "$build"
if [[ -z $data ]]; then
  require_bench_tools "$build" bench_make_photos
else
  [[ -d $data ]] || die "--data $data is not a folder"
fi
cores=$(nproc 2>/dev/null || echo 1)

use_workdir dtrain-bench-scaling "$keep"

# The launcher command line for N ranks, one word per line.
launch_words() {
  local n=$1 words=()
  case $launcher in
  dtrain-run) words=("$repo/launch/dtrain-run" -n "$n") ;;
  mpirun) words=("${DTRAIN_MPIRUN:-mpirun}" -np "$n") ;;
  srun) words=(srun --mpi=pmix -n "$n") ;;
  *) read -r -a words <<<"${launcher//\{n\}/$n}" ;;
  esac
  if [[ -n $launcher_args ]]; then
    local more
    read -r -a more <<<"$launcher_args"
    words+=("${more[@]}")
  fi
  [[ $launcher == dtrain-run ]] || words+=("$dtrain")
  printf '%s\n' "${words[@]}"
}

# The runs: "mode N per_rank_batch global_batch"; weak N=1 reuses strong N=1 when identical.
runs=()
for m in "${mode_list[@]}"; do
  for n in "${world_sizes[@]}"; do
    if [[ $m == strong ]]; then b=$((global_batch / n)); else b=$rank_batch; fi
    runs+=("$m $n $b $((b * n))")
  done
done

classes=10
n_val=$classes
if [[ -z $data ]]; then
  max_global=0
  for r in "${runs[@]}"; do
    read -r _ _ _ g <<<"$r"
    [[ $g -le $max_global ]] || max_global=$g
  done
  per_class=$(((max_global * (warmup + steps) + n_val + classes - 1) / classes))
  echo "generating $((per_class * classes)) JPEGs (10 classes, 60..300 px, quality 90) in $workdir"
  make_photo_pool "$build" "$workdir/pool" "$classes" "$per_class" 60 300
fi

# One run of "mode N per_rank_batch global_batch" in round R: fills the *_of arrays of its key
# when its img/s beats the rounds before (best of --repeat), and records every round's img/s.
declare -A made_root rate_of median_of loss_of reduce_of wait_of step_of measured_of rounds_of
measure() {
  local m=$1 n=$2 b=$3 g=$4 round=$5 key="$2 $3" run_dir root total config log
  local rate step_s measured median wait reduce
  run_dir=$workdir/runs/n$n-b$b-r$round
  rm -rf "$run_dir"
  mkdir -p "$run_dir"
  local overrides=(data.image_size="$size" train.epochs=1 train.batch_size="$b"
    runtime.device="$device" output.dir="$run_dir" output.log_every=1)
  if [[ -z $data ]]; then
    root=$workdir/data-g$g
    total=$((g * (warmup + steps) + n_val))
    if [[ -z ${made_root[$root]+set} ]]; then
      make_imagefolder "$workdir/pool" "$root" "$classes" "$total"
      made_root[$root]=1
    fi
    overrides+=(data.root="$root" data.val_fraction="$(val_fraction_for "$total" "$n_val")")
  else
    root=$data
    overrides+=(data.root="$root" data.val_fraction="$val_fraction")
  fi
  [[ -n $threads ]] && overrides+=(runtime.threads="$threads")
  [[ -n $workers ]] && overrides+=(data.workers="$workers")
  overrides+=(${extra[@]+"${extra[@]}"})
  config=$run_dir.yaml
  printf 'data:\n  root: %s\n' "$root" >"$config"
  local command
  mapfile -t command < <(launch_words "$n")
  log=$run_dir.log
  echo "round $round: $m scaling, $n rank(s), batch $b per rank ($g global): ${command[*]} ... ($(machine_load))"
  if ! DTRAIN_BIN=$dtrain DTRAIN_PROGRESS=plain "${command[@]}" "$config" "${overrides[@]}" \
    >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "the run with $n rank(s) failed (log: $log)"
  fi
  grep -a '^time:' "$log" | sed 's/^/  /'
  read -r rate step_s measured median < <(steady_rate "$run_dir/metrics.jsonl" "$g" "$warmup")
  read -r wait reduce < <(time_shares "$log")
  echo "  $rate img/s over $measured steps (median step: $median img/s)"
  rounds_of[$key]="${rounds_of[$key]:+${rounds_of[$key]} }$rate"
  if [[ -n ${rate_of[$key]+set} ]] && awk -v a="$rate" -v b="${rate_of[$key]}" \
    'BEGIN { exit !(b ~ /^[0-9.]+$/ && (a !~ /^[0-9.]+$/ || a + 0 <= b + 0)) }'; then
    return 0 # an earlier round was faster: keep it
  fi
  rate_of[$key]=$rate
  median_of[$key]=$median
  step_of[$key]=$step_s
  measured_of[$key]=$measured
  reduce_of[$key]=$reduce
  wait_of[$key]=$wait
  loss_of[$key]=$(grep -a '"event":"train"' "$run_dir/metrics.jsonl" | tail -n 1 |
    sed -n 's/.*"loss":\([^,}]*\).*/\1/p')
}

# Rounds interleave the configurations, so a change of load on the machine hits all of them.
for ((round = 1; round <= repeat; round++)); do
  declare -A done_this_round=()
  for r in "${runs[@]}"; do
    read -r m n b g <<<"$r"
    [[ -n ${done_this_round["$n $b"]+set} ]] && continue # weak and strong share the N=1 run
    done_this_round["$n $b"]=1
    measure "$m" "$n" "$b" "$g" "$round"
  done
done

spread() { # the lowest and highest img/s over the rounds: "lo-hi", or "" for one round
  tr ' ' '\n' <<<"$1" | awk '/^[0-9.]+$/ { v = $1 + 0; if (!k++ || v < lo) lo = v; if (v > hi) hi = v }
    END { if (k > 1) printf "%.1f-%.1f", lo, hi }'
}

header="world_size,mode,rank_batch,global_batch,steps,img_per_s,img_per_s_per_rank,median_step_img_per_s,step_s,speedup,efficiency,allreduce_pct,data_wait_pct,last_loss,rounds_img_per_s,note"
table=()
for m in "${mode_list[@]}"; do
  base_n=${world_sizes[0]}
  if [[ $m == strong ]]; then base_b=$((global_batch / base_n)); else base_b=$rank_batch; fi
  base_rate=${rate_of["$base_n $base_b"]}
  for n in "${world_sizes[@]}"; do
    if [[ $m == strong ]]; then b=$((global_batch / n)); else b=$rank_batch; fi
    key="$n $b"
    speedup=$(ratio "${rate_of[$key]}" "$base_rate")
    efficiency=$(awk -v s="$speedup" -v n="$n" -v n0="$base_n" \
      'BEGIN { if (s ~ /^[0-9.]+$/) printf "%.2f", s / (n / n0); else print "n/a" }')
    note=''
    if [[ $launcher == dtrain-run && $n -gt $cores ]]; then note="oversubscribed: $n ranks on $cores cores"; fi
    per_rank=$(awk -v r="${rate_of[$key]}" -v n="$n" 'BEGIN { if (r ~ /^[0-9.]+$/) printf "%.1f", r / n; else print "n/a" }')
    table+=("$n,$m,$b,$((b * n)),${measured_of[$key]},${rate_of[$key]},$per_rank,${median_of[$key]},${step_of[$key]},$speedup,$efficiency,${reduce_of[$key]},${wait_of[$key]},${loss_of[$key]},${rounds_of[$key]},$note")
  done
done

echo
echo "scaling: ResNet-18, image_size $size, device $device, launcher $launcher, $warmup warm-up + $steps measured steps per run"
echo "($(machine_load) at the end; $(omp_note))"
printf '%5s %6s %6s %7s %8s %8s %8s %6s %11s %10s %9s  %s\n' ranks mode "batch/" "global" \
  "img/s" "median" speed-up effic- "all-reduce" "data wait" "last" ""
printf '%5s %6s %6s %7s %8s %8s %8s %6s %11s %10s %9s  %s\n' "" "" rank batch "" "step" "" iency \
  "% of step" "% of step" loss "note"
for row in "${table[@]}"; do
  IFS=, read -r n m b g _ rate _ median _ speedup efficiency reduce wait loss rounds note <<<"$row"
  range=$(spread "$rounds")
  [[ -n $range ]] && note="rounds ${range} img/s${note:+; $note}"
  printf '%5s %6s %6s %7s %8s %8s %8s %6s %11s %10s %9s  %s\n' "$n" "$m" "$b" "$g" "$rate" \
    "$median" "$speedup" "$efficiency" "$reduce" "$wait" "$loss" "$note"
done
if [[ -n $csv ]]; then
  { echo "$header" && printf '%s\n' "${table[@]}"; } >"$csv"
  echo "wrote $csv"
fi
