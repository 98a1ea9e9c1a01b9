#!/bin/bash
# dtrain across nodes on a throwaway cluster of Linux namespaces (cluster.sh beside this file):
# three nodes with their own network, hostname, /tmp and /dev/shm, a head node with slurmctld,
# slurmd on each node, shared storage, and Open MPI's launch agent. Tiny data (48 images of
# 20 px, trained at 16 px), CPU only.
#
# usage: multinode_check.sh SOURCE_DIR DTRAIN_BIN MAKE_IMAGEFOLDER quick|faults
#   quick:  mpirun with a hostfile (2 nodes x 1 rank, 3 x 1, 2 x 2) against one process with
#           train.accumulate, ranks per node (also on two nodes with one host name); Slurm's
#           multi-node.sbatch (srun --mpi=pmix) and multi-node-mpirun.sbatch with 2 x 2 ranks,
#           a failing rank on node 2; storage mistakes (data missing on one node, the same names
#           with other bytes on one node, output.dir on rank 0's local disk).
#   faults: a node crashing before and after the first checkpoint under multi-node.sbatch and
#           preemptible.sbatch (Slurm requeues the job; it starts again or resumes, to the
#           uninterrupted run's weights); a node cut from the network during training under
#           srun and under launch/dtrain-run (the job ends within runtime.timeout_s plus a
#           bounded margin, nothing left running).
# Every case ends with no dtrain left on any node; at the end the cluster is taken down and
# checked to leave no process, namespace, mount or interface behind. Exits 77 (skipped) where
# the cluster cannot be built (not root, a tool missing, namespaces refused).
set -u
shopt -s extglob
src=$(cd "$1" && pwd)
dtrain_bin=$2 make_imagefolder=$3 set=$4
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR
source "$here/../testlib/check.sh"
# shellcheck source-path=SCRIPTDIR
source "$here/../slurm/slurm_lib.sh"
# the start-up details (threads, ranks on this node) that the checks below read are printed
# with DTRAIN_VERBOSE; sbatch and srun pass the environment on, mpirun to its local ranks
export DTRAIN_VERBOSE=1

if [[ $(id -u) -ne 0 ]]; then
    echo "SKIPPED: the namespace cluster needs root"
    exit 77
fi
for tool in ip unshare nsenter pgrep python3 mpirun munged slurmctld slurmd sbatch scontrol; do
    if ! PATH=$PATH:/usr/sbin command -v "$tool" >/dev/null; then
        echo "SKIPPED: no $tool (tools/test.sh installs Open MPI, slurm-wlm and munge)"
        exit 77
    fi
done
if ! refused=$(unshare --net --uts --mount --pid --ipc --fork true 2>&1); then
    echo "SKIPPED: this machine refuses new namespaces: $refused"
    exit 77
fi

# Not under /tmp: each node has a /tmp of its own.
work=$(mktemp -d /var/tmp/dtrain-multinode.XXXXXX)
chmod 755 "$work"
cluster=(bash "$here/cluster.sh" "$work/cluster")
finish() {
    trap - EXIT INT TERM
    if ! "${cluster[@]}" down; then
        check_fail "the cluster left something behind (above)"
    else
        check_passed=$((check_passed + 1))
    fi
    if [[ $check_failed -eq 0 ]]; then
        rm -rf "$work"
    else
        echo "kept $work for inspection" >&2
    fi
    check_summary "multinode_$set"
    exit $?
}
trap finish EXIT
trap 'exit 1' INT TERM

nodes=(n1 n2 n3)
if ! "${cluster[@]}" up --slurm "${nodes[@]}"; then
    check_fail "the namespace cluster did not come up (above)"
    for log in "$work"/cluster/slurm/*.log "$work"/cluster/nodes/*/log; do
        [[ -f $log ]] && echo "--- $log" >&2 && tail -n 15 "$log" >&2
    done
    exit 1
fi
agent=$("${cluster[@]}" agent)
shared=$work/shared
mkdir -p "$shared/build" "$shared/submit"
cp "$dtrain_bin" "$shared/build/"
cuda_module=$(dirname "$dtrain_bin")/libdtrain_cuda.so # a CUDA build's, found beside dtrain
[[ ! -f $cuda_module ]] || cp "$cuda_module" "$shared/build/"
dtrain=$shared/build/dtrain
cp -r "$src/cluster" "$src/launch" "$shared/submit/"
"$make_imagefolder" "$shared/data" 4 12 20 5 >/dev/null || exit 1

# 48 images, 12 held out: 36 training images
cat >"$shared/submit/tiny.yaml" <<EOF
data:
  root: $shared/data
  image_size: 16
  val_fraction: 0.25
  workers: 1
train:
  epochs: 1
  batch_size: 2
  lr: 0.02
  momentum: 0.9
runtime:
  device: cpu
  threads: 1
output:
  log_every: 1
  checkpoint_every: 0
EOF
submit=$shared/submit
config=$submit/tiny.yaml

# on NODE CMD...: CMD on NODE, in the submit folder, as a user there would run it (mpirun's
# transports and launch agent set, root allowed to run Open MPI, Slurm's config)
on() {
    local node=$1
    shift
    (cd "$submit" && "${cluster[@]}" exec "$node" env SLURM_CONF="$work/cluster/slurm/slurm.conf" \
        OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
        OMPI_MCA_plm_rsh_agent="$agent" OMPI_MCA_btl=self,vader,tcp \
        OMPI_MCA_btl_tcp_if_include=eth0 OMPI_MCA_oob_tcp_if_include=eth0 \
        OMPI_MCA_btl_vader_single_copy_mechanism=none DTRAIN_BIN="$dtrain" "$@")
}
hostfile() { # hostfile NAME SLOTS NODE...: a hostfile in the submit folder
    local name=$1 slots=$2
    shift 2
    printf '%s slots='"$slots"'\n' "$@" >"$submit/$name"
}
# mpirun_hosts HOSTFILE RANKS_PER_NODE RANKS OUTPUT LOG [overrides...]: dtrain under mpirun from n1
mpirun_hosts() {
    local hosts=$1 per_node=$2 ranks=$3 out=$4 log=$5
    shift 5
    on n1 mpirun -np "$ranks" --hostfile "$hosts" --map-by "ppr:$per_node:node" --bind-to none \
        "$dtrain" "$config" output.dir="runs/$out" "$@" >"$submit/$log" 2>&1
}
single() { # single OUTPUT LOG [overrides...]: one process on n1
    local out=$1 log=$2
    shift 2
    on n1 "$dtrain" "$config" output.dir="runs/$out" "$@" >"$submit/$log" 2>&1
}
same_weights() { python3 "$here/same_weights.py" "$submit/runs/$1/model.safetensors" "$submit/runs/$2/model.safetensors" >/dev/null; }
log_of() { cat "$submit/$1" 2>/dev/null; }
no_warning() { # no_warning DESCRIPTION LOG TEXT: LOG does not hold TEXT
    local log
    log=$(log_of "$2")
    check "$1" test "${log/"$3"/}" == "$log"
}
# nothing_left: no dtrain (nor mpirun, orted) on any node that is up
nothing_left() {
    local node left=""
    for node in "${nodes[@]}"; do
        left+=$("${cluster[@]}" exec "$node" pgrep -a -x 'dtrain|mpirun|orted' 2>/dev/null)
    done
    [[ -z $left ]] || echo "left running: $left" >&2
    [[ -z $left ]]
}
# wait_nothing_left SECONDS: nothing_left within SECONDS
wait_nothing_left() {
    for _ in $(seq $(($1 * 4))); do
        nothing_left 2>/dev/null && return 0
        sleep 0.25
    done
    nothing_left
}

job_field() { on n1 scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p"; }
submit_job() { on n1 sbatch --parsable "$@"; } # prints the job id
# CPU nodes: no GPU request, one core per rank
cpu_job=(--cpus-per-task=1 --gpus-per-task=0)

quick_set() {
    # ---- mpirun with a hostfile against one process with train.accumulate ----
    hostfile hosts-2x1 1 n1 n2
    hostfile hosts-3x1 1 n1 n2 n3
    hostfile hosts-2x2 2 n1 n2
    single acc2 acc2.log train.accumulate=2
    expect "one process, accumulate 2: exit 0" "$?" 0
    mpirun_hosts hosts-2x1 1 2 m2x1 m2x1.log
    expect "mpirun 2 nodes x 1 rank: exit 0" "$?" 0
    expect_match "mpirun 2 x 1: one rank on each node" "$(log_of m2x1.log)" \
        "*1 rank on this node*2 ranks on cpu*"
    check "mpirun 2 x 1: trainable weights bitwise equal to one process with accumulate 2" \
        same_weights acc2 m2x1
    no_warning "mpirun 2 x 1: output.dir (relative, shared) seen by every rank" m2x1.log "not shared"

    single acc3 acc3.log train.accumulate=3
    mpirun_hosts hosts-3x1 1 3 m3x1 m3x1.log
    expect "mpirun 3 nodes x 1 rank: exit 0" "$?" 0
    check "mpirun 3 x 1: trainable weights bitwise equal to one process with accumulate 3" \
        same_weights acc3 m3x1

    mpirun_hosts hosts-2x2 2 4 m2x2 m2x2.log
    expect "mpirun 2 nodes x 2 ranks: exit 0" "$?" 0
    expect_match "mpirun 2 x 2: two ranks on each node" "$(log_of m2x2.log)" \
        "*2 ranks on this node*4 ranks on cpu*"
    check "mpirun: nothing left on any node" nothing_left

    # ---- node membership from MPI, not the host name: n3 named like n2 ----
    "${cluster[@]}" exec n3 hostname n2
    hostfile hosts-samename 1 n2 n3
    on n2 mpirun -np 2 --hostfile hosts-samename --bind-to none "$dtrain" "$config" \
        output.dir=runs/samename runtime.threads=0 >"$submit/samename.log" 2>&1
    expect "two nodes with one host name: exit 0" "$?" 0
    expect_match "two nodes with one host name: each rank alone on its node" \
        "$(log_of samename.log)" "*share of 2 usable cores*1 rank on this node*"
    "${cluster[@]}" exec n3 hostname n3

    # ---- Slurm: both multi-node scripts with 2 nodes x 2 ranks, a failing rank ----
    local srun mpi fail
    srun=$(submit_job "${cpu_job[@]}" --nodes=2 --ntasks-per-node=2 cluster/multi-node.sbatch \
        tiny.yaml output.dir=runs/srun2x2)
    mpi=$(submit_job --nodes=2 --ntasks-per-node=2 --cpus-per-task=1 --gpus-per-node=0 \
        cluster/multi-node-mpirun.sbatch tiny.yaml output.dir=runs/mpi2x2)
    expect "multi-node.sbatch 2 x 2: exit 0" "$(slurm_wait_job "$srun" 180)" "COMPLETED 0:0"
    expect_match "multi-node.sbatch 2 x 2: 4 ranks on 2 nodes" "$(log_of "dtrain-$srun.out")" \
        "*4 ranks on 2 nodes (n*2 ranks on this node*"
    check "multi-node.sbatch 2 x 2: weights bitwise equal to mpirun's 2 x 2" same_weights m2x2 srun2x2
    no_warning "multi-node.sbatch 2 x 2: output.dir seen by every rank" "dtrain-$srun.out" "not shared"
    expect "multi-node-mpirun.sbatch 2 x 2: exit 0" "$(slurm_wait_job "$mpi" 180)" "COMPLETED 0:0"
    expect_match "multi-node-mpirun.sbatch 2 x 2: through mpirun" "$(log_of "dtrain-$mpi.out")" \
        "*4 ranks on 2 nodes via mpirun*2 ranks on this node*"
    check "multi-node-mpirun.sbatch 2 x 2: weights bitwise equal to mpirun's 2 x 2" \
        same_weights m2x2 mpi2x2

    fail=$(submit_job "${cpu_job[@]}" --nodes=2 --ntasks-per-node=2 \
        --export=ALL,DTRAIN_TEST_FAIL_RANK=3,DTRAIN_TEST_FAIL_STEP=2 cluster/multi-node.sbatch \
        tiny.yaml output.dir=runs/fail)
    expect "a failing rank on node 2: the job fails with exit 1" "$(slurm_wait_job "$fail" 120)" \
        "FAILED 1:0"
    expect_match "a failing rank on node 2: named" "$(log_of "dtrain-$fail.out")" \
        "*rank 3: error: test fault injected at step 2*"
    check "a failing rank: nothing left on any node" wait_nothing_left 20

    # ---- storage mistakes ----
    # data.root on each node's own disk (/tmp), missing on n2
    "${cluster[@]}" exec n1 cp -r "$shared/data" /tmp/data
    mpirun_hosts hosts-2x1 1 2 local-missing local-missing.log data.root=/tmp/data
    expect "data missing on node 2: exit 2" "$?" 2
    expect_match "data missing on node 2: rank 1 says so" "$(log_of local-missing.log)" \
        "*rank 1: error:*/tmp/data*"
    # the same names with other bytes on n2 (one image re-encoded larger)
    "${cluster[@]}" exec n2 cp -r "$shared/data" /tmp/data
    # shellcheck disable=SC2016 # expanded on the node
    "${cluster[@]}" exec n2 bash -c 'f=$(ls /tmp/data/class01/* | head -n 1) && cat "$f" "$f" >/tmp/x && mv /tmp/x "$f"'
    mpirun_hosts hosts-2x1 1 2 local-other local-other.log data.root=/tmp/data
    expect "other bytes on node 2: exit 2" "$?" 2
    expect_match "other bytes on node 2: named" "$(log_of local-other.log)" \
        "*rank 1 sees the same file names under /tmp/data as rank 0 but files of other sizes*"
    # output.dir on rank 0's local disk: the run is written there, and only there
    on n1 mpirun -np 2 --hostfile hosts-2x1 --bind-to none "$dtrain" "$config" \
        output.dir=/tmp/out >"$submit/local-out.log" 2>&1
    expect "output.dir on rank 0's disk: exit 0" "$?" 0
    check "output.dir on rank 0's disk: the model on node 1" \
        "${cluster[@]}" exec n1 test -s /tmp/out/model.safetensors
    check "output.dir on rank 0's disk: nothing on node 2" \
        "${cluster[@]}" exec n2 test ! -e /tmp/out
    expect_match "output.dir on rank 0's disk: warned" "$(log_of local-out.log)" \
        "*output.dir /tmp/out is not shared: rank 1 does not see rank 0's*"
    check "storage cases: nothing left on any node" wait_nothing_left 20
}

# ---- faults: crashes and requeues, network cuts ----

# The fault runs: 2 nodes x 1 rank, 2 epochs of 9 steps, a checkpoint every 6 steps, steps
# slowed to 0.6 s so that a fault lands inside the run.
fault_args=(train.epochs=2 output.checkpoint_every=6)
slow=DTRAIN_TEST_STEP_DELAY_MS=600

wait_for() { # wait_for SECONDS COMMAND...: COMMAND succeeds within SECONDS
    for _ in $(seq $(($1 * 4))); do
        "${@:2}" && return 0
        sleep 0.25
    done
    return 1
}
gone() { ! kill -0 "$1" 2>/dev/null; } # gone PID: the process has ended
log_has() { grep -qF -- "$2" "$submit/$1" 2>/dev/null; } # log_has LOG TEXT
all_idle() { [[ $(on n1 sinfo -h -N -o %t | sort -u) == idle ]]; }
# the allocated node that does not run the batch script
other_node() {
    local node batch
    batch=$(job_field "$1" BatchHost)
    for node in $(on n1 scontrol show hostnames "$(job_field "$1" NodeList)"); do
        [[ $node != "$batch" ]] && echo "$node" && return 0
    done
}

# crash_case SCRIPT before|after: a node of the job crashes before (at step 2) or after the
# first checkpoint (step 6); Slurm requeues the job, which starts again (before) or resumes
# (after) on the nodes left, to the uninterrupted run's weights.
crash_case() {
    local script=$1 when=$2 out=crash-${1%.sbatch}-$2 id victim name
    name="$script, a node crashing $when the first checkpoint"
    id=$(submit_job "${cpu_job[@]}" --nodes=2 --ntasks-per-node=1 --export=ALL,$slow \
        "cluster/$script" tiny.yaml "${fault_args[@]}" runtime.timeout_s=120 output.dir="runs/$out")
    local log=dtrain-$id.out
    [[ $script == preemptible.sbatch ]] && log=dtrain-preemptible-$id.out
    if [[ $when == before ]]; then
        check "$name: training started" wait_for 120 log_has "$log" " step 2/"
    else
        check "$name: first checkpoint written" \
            wait_for 120 test -e "$submit/runs/$out/checkpoints/step-00000006/state.json"
    fi
    victim=$(other_node "$id")
    "${cluster[@]}" crash "$victim"
    expect "$name: requeued, then done" "$(slurm_wait_job "$id" 300)" "COMPLETED 0:0"
    local restarts
    restarts=$(job_field "$id" Restarts)
    check "$name: requeued by Slurm (Restarts=$restarts)" test "${restarts:-0}" -ge 1
    if [[ $when == before ]]; then
        expect_match "$name: started again" "$(log_of "$log")" \
            "*job $id (restart 1): no complete checkpoint in runs/$out: starting the run again*"
    else
        expect_match "$name: resumed" "$(log_of "$log")" \
            "*job $id (restart 1): resuming from runs/$out/checkpoints/step-*"
    fi
    expect_match "$name: one log for both attempts" "$(log_of "$log")" \
        "*48 images in 4 classes*restart 1*48 images in 4 classes*done: final validation*"
    no_warning "$name: the rank that srun ended promised no checkpoint" "$log" \
        "SIGTERM received: stopping"
    check "$name: weights bitwise equal to the uninterrupted run's" same_weights uninterrupted "$out"
    "${cluster[@]}" reboot "$victim"
    check "$name: $victim back in Slurm after its reboot" wait_for 60 all_idle
}

faults_set() {
    hostfile hosts-2x1 1 n1 n2
    mpirun_hosts hosts-2x1 1 2 uninterrupted uninterrupted.log "${fault_args[@]}"
    expect "the uninterrupted run: exit 0" "$?" 0

    crash_case multi-node.sbatch before
    crash_case multi-node.sbatch after
    crash_case preemptible.sbatch before
    crash_case preemptible.sbatch after

    # A cut under srun: the job (not requeued) ends within runtime.timeout_s plus Slurm's
    # time to declare the node down (SlurmdTimeout, 10 s here), and the ranks of both sides end.
    local id victim start elapsed
    id=$(submit_job "${cpu_job[@]}" --nodes=2 --ntasks-per-node=1 --no-requeue \
        --export=ALL,$slow cluster/multi-node.sbatch tiny.yaml "${fault_args[@]}" \
        runtime.timeout_s=10 output.dir=runs/cut-srun)
    check "cut under srun: training started" wait_for 120 log_has "dtrain-$id.out" " step 3/"
    victim=$(other_node "$id")
    "${cluster[@]}" cut "$victim"
    start=$SECONDS
    expect_match "cut under srun: the job fails" "$(slurm_wait_job "$id" 120)" "@(FAILED|NODE_FAIL) *"
    elapsed=$((SECONDS - start))
    echo "cut under srun: the job ended $elapsed s after the cut (runtime.timeout_s 10)"
    check "cut under srun: ended within runtime.timeout_s + 50 s ($elapsed s)" test "$elapsed" -le 60
    check "cut under srun: nothing left on the nodes" wait_nothing_left 30
    "${cluster[@]}" reboot "$victim"
    check "cut under srun: $victim back after its reboot" wait_for 60 all_idle

    # A cut under launch/dtrain-run (mpirun across nodes): dtrain's watchdog ends the ranks after
    # runtime.timeout_s; mpirun, waiting for the silent node, is killed DTRAIN_ABORT_GRACE_S later.
    on n1 env DTRAIN_MPIRUN_ARGS="--hostfile hosts-2x1 --map-by ppr:1:node" \
        DTRAIN_ABORT_GRACE_S=10 DTRAIN_TEST_STEP_DELAY_MS=600 launch/dtrain-run -n 2 tiny.yaml \
        "${fault_args[@]}" runtime.timeout_s=10 output.dir=runs/cut-mpirun \
        >"$submit/cut-mpirun.log" 2>&1 &
    local run=$!
    check "cut under dtrain-run: training started" wait_for 120 log_has cut-mpirun.log " step 3/"
    "${cluster[@]}" cut n2
    start=$SECONDS
    local status=0
    wait_for 120 gone "$run"
    wait "$run" || status=$?
    elapsed=$((SECONDS - start))
    echo "cut under dtrain-run: it ended $elapsed s after the cut (runtime.timeout_s 10, DTRAIN_ABORT_GRACE_S 10)"
    expect "cut under dtrain-run: exit 1" "$status" 1
    expect_match "cut under dtrain-run: the watchdog said why" "$(log_of cut-mpirun.log)" \
        "*error: no progress for * s (runtime.timeout_s 10) in *"
    expect_match "cut under dtrain-run: mpirun, waiting for the silent node, killed" \
        "$(log_of cut-mpirun.log)" "*mpirun still running 10 s after a rank failed (a node unreachable?)*"
    check "cut under dtrain-run: ended within timeout + grace + 40 s ($elapsed s)" test "$elapsed" -le 60
    check "cut under dtrain-run: nothing left on the nodes" wait_nothing_left 30
    "${cluster[@]}" reboot n2
}

case $set in
quick) quick_set ;;
faults) faults_set ;;
*) check_fail "unknown set '$set' (quick or faults)" ;;
esac
