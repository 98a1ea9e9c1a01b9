#!/bin/bash
# The job scripts of cluster/ on a real, throwaway one-node Slurm (throwaway_slurm.sh beside this
# file), submitted with sbatch as an ordinary user, on CPU with a tiny config:
#   - single-node.sbatch, multi-node.sbatch (on one node) and multi-node-mpirun.sbatch: 2 ranks,
#     exit 0, model written; a config error ends the job with exit 2; a missing binary is
#     refused with exit 2 before any srun;
#   - srun of 2 tasks without a PMI plugin (--mpi=none): exit 2 with "use srun --mpi=pmix";
#   - preemptible.sbatch under a 2-minute limit with the signal 110 s before it: exit 75 with a
#     checkpoint, requeue, --resume, and the final weights bitwise equal to the uninterrupted
#     single-node run's, with no step missing or repeated in metrics.jsonl;
#   - bench-scaling.sbatch on CPU: the table and CSV of 1 and 2 ranks.
# usage: cluster_scripts_check.sh SOURCE_DIR DTRAIN_BIN MAKE_IMAGEFOLDER BENCH_MAKE_PHOTOS
# Exits 77 (skipped) when not root or when Slurm or munge is not installed
# (tools/test.sh installs slurm-wlm and munge).
set -u
src=$(cd "$1" && pwd)
dtrain_bin=$2 make_imagefolder=$3 bench_make_photos=$4
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR
source "$here/../testlib/check.sh"
# shellcheck source-path=SCRIPTDIR
source "$here/throwaway_slurm.sh"

if [[ $(id -u) -ne 0 ]]; then
    echo "SKIPPED: starting slurmd (which runs jobs as their user) needs root"
    exit 77
fi
for tool in munged slurmctld slurmd sbatch srun scontrol runuser useradd; do
    if ! command -v "$tool" >/dev/null; then
        echo "SKIPPED: no $tool: install slurm-wlm and munge (tools/test.sh does)"
        exit 77
    fi
done

job_user=dtrain-slurm
getent passwd "$job_user" >/dev/null ||
    useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "$job_user" ||
    exit 1

# /tmp rather than TMPDIR: the job user must reach every folder on the way.
work=$(mktemp -d /tmp/dtrain-slurm.XXXXXX)
chmod 755 "$work"
submit=$work/submit
cleanup() {
    slurm_stop "$job_user"
    if [[ $check_failed -eq 0 ]]; then
        rm -rf "$work"
    else
        echo "kept $work for inspection" >&2
    fi
}
trap cleanup EXIT

# A submit folder as a user has it: the scripts, the build, data and config.
mkdir -p "$submit/build/bench" "$work/elsewhere"
cp -r "$src/cluster" "$src/bench" "$src/launch" "$submit/"
cp "$dtrain_bin" "$submit/build/"
cuda_module=$(dirname "$dtrain_bin")/libdtrain_cuda.so # a CUDA build's, found beside dtrain
[[ ! -f $cuda_module ]] || cp "$cuda_module" "$submit/build/"
cp "$bench_make_photos" "$submit/build/bench/"
"$make_imagefolder" "$submit/data" 4 12 20 5 >/dev/null || exit 1
# 48 images, 12 held out: 9 steps of global batch 4 (2 ranks x 2) per epoch, 36 in all
cat >"$submit/tiny.yaml" <<EOF
data:
  root: $submit/data
  image_size: 16
  val_fraction: 0.25
  workers: 1
train:
  epochs: 4
  batch_size: 2
  lr: 0.02
  momentum: 0.9
runtime:
  device: cpu
  threads: 1
output:
  log_every: 1
  checkpoint_every: 3
EOF
chown -R "$job_user:" "$submit" "$work/elsewhere"

if ! slurm_start "$work/slurm" 4; then
    check_fail "the throwaway Slurm did not start (above)"
    exit 1
fi

as_user() { # as_user DIR COMMAND...: runs COMMAND in DIR as the job user
    local dir=$1
    shift
    (cd "$dir" && runuser -u "$job_user" -- env SLURM_CONF="$SLURM_CONF" HOME="$dir" "$@")
}
# CPU nodes: no GPU request, 2 ranks of one core each
cpu_job=(--ntasks-per-node=2 --cpus-per-task=1 --gpus-per-task=0)
submit_job() { # submit_job [sbatch options] SCRIPT ARGS...: prints the job id
    as_user "$submit" sbatch --parsable "$@"
}
# job_field ID NAME: one field of scontrol show job (JobState, ExitCode, Restarts, ...)
job_field() {
    scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p"
}
job_log() { cat "$submit/$1" 2>/dev/null; } # job_log FILE: the job's output file
# a run's metrics.jsonl without its timings (img_per_s, elapsed_s): events, steps, losses, accuracies
metric_rows() {
    sed -e 's/,"img_per_s":[^,}]*//' -e 's/,"elapsed_s":[^,}]*//' "$submit/runs/$1/metrics.jsonl"
}
# same_tensors A B: two safetensors files with the same tensors, bit for bit, and the same header
# but for the config hash (output.dir is part of the hashed config)
same_tensors() {
    local header_bytes
    header_bytes=$(od -An -t u8 -N 8 "$1" | tr -d ' ')
    [[ $header_bytes == "$(od -An -t u8 -N 8 "$2" | tr -d ' ')" ]] || return 1
    cmp <(head -c $((8 + header_bytes)) "$1" | sed 's/"config_hash":"[0-9a-f]*"//') \
        <(head -c $((8 + header_bytes)) "$2" | sed 's/"config_hash":"[0-9a-f]*"//') &&
        cmp <(tail -c +$((9 + header_bytes)) "$1") <(tail -c +$((9 + header_bytes)) "$2")
}

# The preemptible job first: its steps are slowed to 1.5 s (36 steps, about 55 s) so that the
# signal, which slurmctld sends on its 30-second time-limit pass, lands inside the run; the
# requeued job resumes and may be signalled again before it is done.
preempt=$(submit_job "${cpu_job[@]}" --time=2 --signal=B:USR1@110 \
    --export=ALL,DTRAIN_TEST_STEP_DELAY_MS=1500 cluster/preemptible.sbatch tiny.yaml \
    output.dir=runs/preempted)
reference=$(submit_job "${cpu_job[@]}" cluster/single-node.sbatch tiny.yaml output.dir=runs/reference)

expect "single-node.sbatch: 2 ranks, exit 0" "$(slurm_wait_job "$reference" 120)" "COMPLETED 0:0"
expect_match "single-node.sbatch: dtrain ran 2 ranks" "$(job_log "dtrain-$reference.out")" \
    "*48 images in 4 classes (36 train, 12 val), 2 ranks on cpu*"
check "single-node.sbatch: model written" test -s "$submit/runs/reference/model.safetensors"

id=$(submit_job "${cpu_job[@]}" --nodes=1 cluster/multi-node.sbatch tiny.yaml train.epochs=1 \
    output.dir=runs/multi)
expect "multi-node.sbatch on one node: exit 0" "$(slurm_wait_job "$id" 120)" "COMPLETED 0:0"
expect_match "multi-node.sbatch: 2 ranks on 1 node" "$(job_log "dtrain-$id.out")" \
    "*2 ranks on 1 nodes*, 2 ranks on cpu*"

id=$(submit_job --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --gpus-per-node=0 \
    cluster/multi-node-mpirun.sbatch tiny.yaml train.epochs=1 output.dir=runs/mpirun)
expect "multi-node-mpirun.sbatch: exit 0" "$(slurm_wait_job "$id" 120)" "COMPLETED 0:0"
log=$(job_log "dtrain-$id.out")
expect_match "multi-node-mpirun.sbatch: 2 ranks through mpirun" "$log" "*2 ranks on cpu*"
check "multi-node-mpirun.sbatch: no Open MPI warning" test "${log/WARNING/}" == "$log"

id=$(submit_job "${cpu_job[@]}" cluster/single-node.sbatch tiny.yaml train.epochs=many \
    output.dir=runs/bad)
expect "a config error: exit 2" "$(slurm_wait_job "$id" 60)" "FAILED 2:0"
expect_match "a config error: named" "$(job_log "dtrain-$id.out")" "*train.epochs*"

# no build/ in the submit folder and none on PATH, or DTRAIN_BIN naming nothing
id=$(as_user "$work/elsewhere" sbatch --parsable "${cpu_job[@]}" \
    "$submit/cluster/single-node.sbatch" "$submit/tiny.yaml")
expect "no binary: exit 2" "$(slurm_wait_job "$id" 60)" "FAILED 2:0"
expect_match "no binary: said" "$(cat "$work/elsewhere/dtrain-$id.out")" "*no dtrain binary*"
id=$(submit_job "${cpu_job[@]}" --export=ALL,DTRAIN_BIN=/nonexistent/dtrain \
    cluster/preemptible.sbatch tiny.yaml output.dir=runs/nobin)
expect "DTRAIN_BIN naming nothing: exit 2" "$(slurm_wait_job "$id" 60)" "FAILED 2:0"
expect_match "DTRAIN_BIN naming nothing: said" "$(job_log "dtrain-preemptible-$id.out")" \
    "*DTRAIN_BIN=/nonexistent/dtrain is not an executable*"

id=$(submit_job "${cpu_job[@]}" --output=nopmi-%j.out \
    --wrap "srun --mpi=none build/dtrain tiny.yaml output.dir=runs/nopmi")
expect "srun --mpi=none with 2 tasks: exit 2" "$(slurm_wait_job "$id" 60)" "FAILED 2:0"
expect_match "srun --mpi=none: the advice" "$(job_log "nopmi-$id.out")" "*use srun --mpi=pmix*"

id=$(submit_job --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --gpus-per-task=0 \
    cluster/bench-scaling.sbatch --size 16 --steps 2 --warmup 1 --global-batch 4 \
    --modes strong)
expect "bench-scaling.sbatch on CPU: exit 0" "$(slurm_wait_job "$id" 180)" "COMPLETED 0:0"
csv="$submit/scaling-$id.csv"
check "bench-scaling.sbatch: CSV written" test -s "$csv"
expect "bench-scaling.sbatch: rows of 1 and 2 ranks" \
    "$(tail -n +2 "$csv" 2>/dev/null | cut -d, -f1-2 | tr '\n' ' ')" "1,strong 2,strong "

expect "preemptible.sbatch: finished after requeueing" "$(slurm_wait_job "$preempt" 300)" \
    "COMPLETED 0:0"
restarts=$(job_field "$preempt" Restarts)
check "preemptible.sbatch: requeued at least once (Restarts=$restarts)" test "${restarts:-0}" -ge 1
log=$(job_log "dtrain-preemptible-$preempt.out")
expect_match "preemptible.sbatch: signal passed on" "$log" \
    "*SIGUSR1 before the time limit: checkpoint and requeue*"
expect_match "preemptible.sbatch: dtrain stopped with a checkpoint" "$log" \
    "*stopped by a signal after step*"
expect_match "preemptible.sbatch: exit 75 requeued" "$log" \
    "*stopped with a checkpoint (exit 75): requeueing job $preempt*"
expect_match "preemptible.sbatch: the restart resumed" "$log" \
    "*job $preempt (restart 1): resuming from runs/preempted/checkpoints/step-*"
check "preemptible.sbatch: final weights bitwise equal to the uninterrupted run's" \
    same_tensors "$submit/runs/reference/model.safetensors" "$submit/runs/preempted/model.safetensors"
expect "preemptible.sbatch: metrics.jsonl as the uninterrupted run's (every step once, same losses)" \
    "$(metric_rows preempted | md5sum)" "$(metric_rows reference | md5sum)"
expect "preemptible.sbatch: metrics.jsonl rows (36 steps, 4 evaluations, the end)" \
    "$(metric_rows preempted | wc -l)" 41

check_summary cluster_scripts
