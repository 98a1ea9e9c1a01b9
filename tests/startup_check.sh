#!/bin/bash
# Start-up checks of the dtrain executable.
#   startup_check.sh threads DTRAIN MAKE_LEARNABLE_IMAGEFOLDER [MPIRUN FLAGS...]
#     the thread counts in the start-up log (taskset -c 0 picks 1, OMP_NUM_THREADS=3 picks 3,
#     runtime.threads wins over OMP_NUM_THREADS), the OpenMP wait policy in force (libgomp's own
#     report), and with MPIRUN: under mpirun -np 2 both ranks are processes named dtrain with
#     argv[0] as typed.
#   startup_check.sh inference DTRAIN MAKE_LEARNABLE_IMAGEFOLDER
#     dtrain eval and dtrain predict pick the thread counts training picks (taskset -c 0,
#     OMP_NUM_THREADS=3) and report them as training does.
#   startup_check.sh debuggers DTRAIN
#     dtrain --version runs to its end under valgrind and under gdb (when installed).
set -u
mode=$1
dtrain=$2

# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/testlib/check.sh"

work=$(mktemp -d)
mpirun_pid=""
cleanup() {
    [[ -n $mpirun_pid ]] && kill "$mpirun_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

if [[ $mode == debuggers ]]; then
    if command -v valgrind >/dev/null; then
        out=$(valgrind -q "$dtrain" --version 2>&1)
        expect "exit code under valgrind" "$?" 0
        expect_match "dtrain --version under valgrind" "$out" "*dtrain [0-9]*backends: cpu*"
    else
        echo "valgrind not installed: not checked"
    fi
    if command -v gdb >/dev/null; then
        out=$(gdb -q -batch -ex run -ex 'info inferiors' --args "$dtrain" --version 2>&1)
        expect_match "dtrain --version under gdb" "$out" "*dtrain [0-9]*backends: cpu*exited normally*"
    else
        echo "gdb not installed: not checked"
    fi
    ((check_passed + check_failed > 0)) || check_fail "neither valgrind nor gdb is installed"
    check_summary startup_debuggers
    exit
fi

make_imagefolder=$3 # ROOT CLASSES PER_CLASS SIDE
shift 3
mpirun=("$@")
"$make_imagefolder" "$work/data" 2 4 16 || exit 1
cat >"$work/run.yaml" <<YAML
data: {root: $work/data, image_size: 16, val_fraction: 0.25}
train: {epochs: 1000, batch_size: 2}
runtime: {device: cpu}
output: {dir: $work/out, log_every: 100}
YAML

if [[ $mode == inference ]]; then
    # dtrain eval and dtrain predict choose their threads as training does (the affinity mask,
    # the cgroup quota, OMP_NUM_THREADS), and say so on stderr with DTRAIN_VERBOSE=1.
    # training logs on stdout; eval and predict on stderr (predict's stdout is its results)
    verbose() { env -u OMP_NUM_THREADS -u OMP_WAIT_POLICY DTRAIN_VERBOSE=1 "$@" 2>&1; }
    stderr_of() { { env -u OMP_NUM_THREADS -u OMP_WAIT_POLICY DTRAIN_VERBOSE=1 "$@" >/dev/null; } 2>&1; }
    threads_line() { grep -m1 "^threads:" <<<"$1"; }
    env -u OMP_NUM_THREADS "$dtrain" "$work/run.yaml" train.epochs=1 >"$work/train.log" 2>&1
    expect "a one-epoch run for the model: exit code" "$?" 0
    model=$work/out/model.safetensors
    for case in "taskset -c 0" "OMP_NUM_THREADS=3"; do
        prefix=(taskset -c 0)
        [[ $case == OMP* ]] && prefix=(env "$case")
        train=$(threads_line "$(verbose "${prefix[@]}" "$dtrain" "$work/run.yaml" \
            train.batch_size=64 "output.dir=$work/refused")")
        expect_match "training's thread line ($case)" "$train" "threads: *"
        eval_out=$(stderr_of "${prefix[@]}" "$dtrain" eval "$work/run.yaml" --data "$work/data" \
            --out "$work/eval-${prefix[0]}")
        expect "dtrain eval's thread line equals training's ($case)" "$(threads_line "$eval_out")" \
            "$train"
        predict_out=$(stderr_of "${prefix[@]}" "$dtrain" predict "$model" "$work/data" --device cpu)
        expect "dtrain predict's thread line equals training's ($case)" \
            "$(threads_line "$predict_out")" "$train"
    done
    # the evaluation's report names the compute threads it used: 1 under taskset -c 0, not
    # every online core
    expect_match "eval report under taskset -c 0" \
        "$(grep -o "cpu, [0-9]* compute threads per rank" "$work/eval-taskset/report.html")" \
        "cpu, 1 compute threads per rank"
    check_summary startup_inference_threads
    exit
fi

# The thread counts are chosen and logged first thing: these runs stop right after, as a batch
# of 64 does not fit the 6 training images (exit code 2), to keep the test fast.
# DTRAIN_VERBOSE=1: the thread plan and the wait policy on lines of their own.
start() { env -u OMP_NUM_THREADS -u OMP_WAIT_POLICY DTRAIN_VERBOSE=1 "$@" "$work/run.yaml" train.batch_size=64 2>&1; }
line() { grep -m1 "^$1" <<<"$2"; }
too_big="*the training part has 6 images, fewer than one batch per rank*"

out=$(start taskset -c 0 "$dtrain")
expect "exit code with taskset -c 0" "$?" 2
expect_match "the run got past the start-up log" "$out" "$too_big"
expect_match "taskset -c 0 picks 1 thread of each kind" "$(line threads: "$out")" \
    "threads: 1 compute (this rank's share of the cores), 1 decode (this rank's share of the cores); share of 1 usable core: affinity mask 1 of * online, *, 1 rank on this node"

# Without DTRAIN_VERBOSE those details are not printed: the start-up summary counts the threads.
out=$(env -u OMP_NUM_THREADS -u DTRAIN_VERBOSE taskset -c 0 "$dtrain" "$work/run.yaml" train.epochs=1 \
    "output.dir=$work/summary" 2>&1 |
    head -n 1)
expect_match "one summary line first, singular counts" "$out" \
    "dtrain: 8 images in 2 classes (6 train, 2 val), 1 rank on cpu*, 1 compute thread + 1 decode worker per rank, 3 steps/epoch of 2 images"

out=$(start OMP_NUM_THREADS=3 "$dtrain")
expect_match "OMP_NUM_THREADS=3 picks 3 compute threads" "$(line threads: "$out")" \
    "threads: 3 compute (OMP_NUM_THREADS), * decode (this rank's share of the cores); *"
out=$(start OMP_NUM_THREADS=4,2 "$dtrain")
expect_match "a list in OMP_NUM_THREADS: its first entry" "$(line threads: "$out")" \
    "threads: 4 compute (OMP_NUM_THREADS), *"

out=$(start OMP_NUM_THREADS=3 "$dtrain" runtime.threads=2 data.workers=5)
expect_match "runtime.threads and data.workers win" "$(line threads: "$out")" \
    "threads: 2 compute (runtime.threads), 5 decode (data.workers); *"

# The policy in force, as libgomp itself reports it when it starts (OMP_DISPLAY_ENV): sleeping
# waits have a spin count of 0, the library default and ACTIVE a large one. When dtrain chooses
# the policy, libgomp reports twice (before and after dtrain executes itself again with it): the
# last report is the one of the process that trains.
out=$(start OMP_DISPLAY_ENV=verbose "$dtrain")
expect_match "dtrain's default policy is logged" "$(line "OpenMP waits" "$out")" \
    "OpenMP waits: PASSIVE (dtrain's default*"
expect_match "libgomp sleeps" "$(grep GOMP_SPINCOUNT <<<"$out" | tail -n1)" "*GOMP_SPINCOUNT = '0'"
out=$(start OMP_WAIT_POLICY=active OMP_DISPLAY_ENV=verbose "$dtrain")
expect "the user's policy is logged" "$(line "OpenMP waits" "$out")" \
    "OpenMP waits: active (OMP_WAIT_POLICY from the environment)"
expect_match "libgomp spins" "$(grep -m1 GOMP_SPINCOUNT <<<"$out")" "*GOMP_SPINCOUNT = '[1-9]*'"

if ((${#mpirun[@]} == 0)); then
    echo "no mpirun: the process-name check under mpirun is not run"
    check_summary startup_threads_and_name
    exit
fi

# Under mpirun both ranks are processes named dtrain (what pgrep, pkill -x, top and cluster
# monitoring look for), with argv[0] as typed. Run from the binary's folder as ./dtrain; the
# 1000 epochs keep the ranks alive while they are looked at, then they are stopped.
cd "$(dirname "$dtrain")" || exit 1
env -u OMP_NUM_THREADS -u OMP_WAIT_POLICY DTRAIN_VERBOSE=1 "${mpirun[@]}" -np 2 ./dtrain "$work/run.yaml" \
    >"$work/mpi.log" 2>&1 &
mpirun_pid=$! # env runs mpirun in its own process
ranks=()
for _ in $(seq 300); do
    mapfile -t ranks < <(pgrep -x -P "$mpirun_pid" dtrain)
    ((${#ranks[@]} >= 2)) && break
    sleep 0.2
done
expect "pgrep -x dtrain finds both ranks (children of mpirun)" "${#ranks[@]}" 2
for pid in "${ranks[@]}"; do
    expect "rank $pid /proc/PID/comm" "$(cat "/proc/$pid/comm")" dtrain
    expect "rank $pid argv[0]" "$(tr '\0' '\n' <"/proc/$pid/cmdline" | head -n1)" ./dtrain
done
# The ranks see each other; on 2 cores each takes one, whether mpirun bound them or not.
for _ in $(seq 150); do
    grep -q "^threads:" "$work/mpi.log" && break
    sleep 0.2
done
each="*"
(($(nproc) == 2)) && each=1
expect_match "2 ranks on this node share its cores" "$(grep -m1 "^threads:" "$work/mpi.log")" \
    "threads: $each compute (this rank's share of the cores), $each decode *, 2 ranks on this node"
kill "$mpirun_pid" 2>/dev/null
wait "$mpirun_pid" 2>/dev/null
mpirun_pid=""
check_summary startup_threads_and_name
