#!/bin/bash
# Checks the command lines launch/dtrain-run builds, with stand-ins for dtrain and mpirun: direct
# exec for one rank, mpirun flags for several, binary discovery, OMP_NUM_THREADS per rank, exit
# codes and argument errors. Usage: dtrain_run_check.sh PATH/TO/launch/dtrain-run
set -u
wrapper=$1

# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/testlib/check.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/repo/launch" "$work/repo/build" "$work/hydra"

# A dtrain stand-in: prints its arguments and thread count, exits with the code in FAKE_EXIT.
cat >"$work/bin/dtrain" <<'FAKE'
#!/bin/bash
echo "dtrain $* threads=$OMP_NUM_THREADS"
exit "${FAKE_EXIT:-0}"
FAKE
# mpirun stand-ins: one says it is Open MPI, one says it is MPICH's hydra.
cat >"$work/bin/mpirun" <<'FAKE'
#!/bin/bash
[[ $1 == --version ]] && echo "mpirun (Open MPI) 4.1.4" && exit 0
echo "mpirun $*"
FAKE
cat >"$work/hydra/mpirun" <<'FAKE'
#!/bin/bash
[[ $1 == --version ]] && echo "HYDRA build details:" && exit 0
echo "mpirun $*"
FAKE
chmod +x "$work/bin/dtrain" "$work/bin/mpirun" "$work/hydra/mpirun"
cp "$wrapper" "$work/repo/launch/dtrain-run"
cp "$work/bin/dtrain" "$work/repo/build/dtrain"

cores=$(nproc)
# Runs a command without the caller's launcher settings (OMP_NUM_THREADS, CUDA_VISIBLE_DEVICES, any
# DTRAIN_* or NCCL_* variable), which would change the command lines checked here.
run() {
    local cleared=(-u OMP_NUM_THREADS -u CUDA_VISIBLE_DEVICES) name
    for name in $(compgen -e); do
        [[ $name == DTRAIN_* || $name == NCCL_* ]] && cleared+=(-u "$name")
    done
    env "${cleared[@]}" PATH="$work/bin:$PATH" "$@" 2>&1
}

# One rank: dtrain itself, no mpirun, all arguments in order, threads = every core.
expect "one rank runs dtrain directly" \
    "$(run DTRAIN_BIN="$work/bin/dtrain" "$wrapper" cfg.yaml train.epochs=1 'data.mean=[0.5,0.5,0.5]')" \
    "dtrain cfg.yaml train.epochs=1 data.mean=[0.5,0.5,0.5] threads=$cores"
expect "OMP_NUM_THREADS set by the user is kept" \
    "$(run OMP_NUM_THREADS=3 DTRAIN_BIN="$work/bin/dtrain" "$wrapper" -n 1 cfg.yaml)" \
    "dtrain cfg.yaml threads=3"
expect "-- passes a dash-led argument through" \
    "$(run DTRAIN_BIN="$work/bin/dtrain" "$wrapper" -- --print-config x=1)" \
    "dtrain --print-config x=1 threads=$cores"
run DTRAIN_BIN="$work/bin/dtrain" FAKE_EXIT=1 "$wrapper" cfg.yaml >/dev/null
expect "dtrain's exit code comes back" "$?" 1

# Several ranks through an Open MPI mpirun.
root_flag=""
[[ $(id -u) -eq 0 ]] && root_flag=" --allow-run-as-root"
threads=$((cores / 4 > 0 ? cores / 4 : 1))
# (--oversubscribe depends on the physical cores here: ignored for 2 ranks, required for 100000)
expect "two ranks go through mpirun" \
    "$(run DTRAIN_BIN="$work/bin/dtrain" "$wrapper" -n 2 cfg.yaml a=b | sed 's/ --oversubscribe//')" \
    "mpirun -np 2 --bind-to none${root_flag} -x OMP_NUM_THREADS $work/bin/dtrain cfg.yaml a=b"
expect "--print shows the mpirun command without running it" \
    "$(run DTRAIN_BIN="$work/bin/dtrain" "$wrapper" --print -n100000 cfg.yaml)" \
    "mpirun -np 100000 --bind-to none${root_flag} --oversubscribe -x OMP_NUM_THREADS $work/bin/dtrain cfg.yaml"
# (the dtrain stand-in as launcher reports the OMP_NUM_THREADS the ranks would inherit)
expect "threads per rank are cores / ranks" \
    "$(run DTRAIN_BIN="$work/bin/dtrain" DTRAIN_MPIRUN="$work/bin/dtrain" "$wrapper" -n 4 cfg.yaml | sed 's/.*threads=//')" \
    "$threads"
expect "NCCL_* and DTRAIN_* variables are exported to every rank" \
    "$(run NCCL_DEBUG=INFO DTRAIN_BIN="$work/bin/dtrain" "$wrapper" -n 2 cfg.yaml | grep -o -- '-x [A-Z_]*' | sort | tr '\n' ' ')" \
    "-x NCCL_DEBUG -x OMP_NUM_THREADS "
expect_match "extra launcher arguments come from DTRAIN_MPIRUN_ARGS" \
    "$(run DTRAIN_MPIRUN_ARGS="--hostfile hosts --map-by ppr:2:node" DTRAIN_BIN="$work/bin/dtrain" "$wrapper" -n 2 cfg.yaml)" \
    "* --hostfile hosts --map-by ppr:2:node $work/bin/dtrain cfg.yaml"
expect "-n gpu counts CUDA_VISIBLE_DEVICES" \
    "$(run CUDA_VISIBLE_DEVICES=0,1,3 DTRAIN_BIN="$work/bin/dtrain" "$wrapper" -n gpu cfg.yaml | cut -d' ' -f1-3)" \
    "mpirun -np 3"

# Another MPI: no Open MPI-only flags.
expect "a non-Open MPI launcher gets only portable flags" \
    "$(run DTRAIN_MPIRUN="$work/hydra/mpirun" DTRAIN_BIN="$work/bin/dtrain" "$wrapper" -n 2 cfg.yaml)" \
    "mpirun -np 2 --bind-to none $work/bin/dtrain cfg.yaml"

# mpirun that keeps waiting after a rank's error (as for a node that went silent): killed, with
# its local rank, DTRAIN_ABORT_GRACE_S seconds later, exit 1. An mpirun that ends by itself
# after an error keeps its own exit code.
cat >"$work/hydra/hanging-mpirun" <<'FAKE'
#!/bin/bash
[[ $1 == --version ]] && echo "mpirun (Open MPI) 4.1.4" && exit 0
echo "dtrain: rank 1: error: no progress for 10 s (runtime.timeout_s 10)" >&2
[[ -n ${FAKE_EXIT:-} ]] && exit "$FAKE_EXIT"
sleep 300 &
echo $! >"$RANK_PID_FILE"
wait
FAKE
chmod +x "$work/hydra/hanging-mpirun"
start=$SECONDS
output=$(run RANK_PID_FILE="$work/rank.pid" DTRAIN_ABORT_GRACE_S=1 \
    DTRAIN_MPIRUN="$work/hydra/hanging-mpirun" DTRAIN_BIN="$work/bin/dtrain" "$wrapper" -n 2 cfg.yaml)
expect "mpirun waiting after a rank's error: exit 1" "$?" 1
expect_match "mpirun waiting after a rank's error: said" "$output" \
    "*rank 1: error: no progress*dtrain-run: mpirun still running 1 s after a rank failed (a node unreachable?): killing it and its local ranks*"
check "mpirun waiting after a rank's error: ended within 20 s" test $((SECONDS - start)) -le 20
rank_pid=$(cat "$work/rank.pid")
# (a zombie counts as ended: the init of a container may be slow to reap it)
check "mpirun waiting after a rank's error: its local rank killed too" \
    bash -c "[[ ! -e /proc/$rank_pid ]] || grep -q '^State:.*Z' /proc/$rank_pid/status"
output=$(run RANK_PID_FILE="$work/rank.pid" FAKE_EXIT=3 DTRAIN_ABORT_GRACE_S=1 \
    DTRAIN_MPIRUN="$work/hydra/hanging-mpirun" DTRAIN_BIN="$work/bin/dtrain" "$wrapper" -n 2 cfg.yaml)
expect "mpirun ending by itself after an error: its exit code" "$?" 3
output=$(run DTRAIN_ABORT_GRACE_S=soon DTRAIN_BIN="$work/bin/dtrain" "$wrapper" -n 2 cfg.yaml)
expect "DTRAIN_ABORT_GRACE_S not a number: exit 2" "$?" 2

# Finding dtrain: build/ of the script's repository first, then PATH.
expect "the repository's build/dtrain is found" \
    "$(run "$work/repo/launch/dtrain-run" --print cfg.yaml)" \
    "$work/repo/build/dtrain cfg.yaml"
rm "$work/repo/build/dtrain"
expect "dtrain on PATH is found" \
    "$(run "$work/repo/launch/dtrain-run" --print cfg.yaml)" \
    "$work/bin/dtrain cfg.yaml"

# Usage errors exit 2 with a message; --help exits 0.
for bad in "-n 0 cfg.yaml" "-n x cfg.yaml" "-n" "" "--bogus cfg.yaml"; do
    # shellcheck disable=SC2086 # split the case into arguments on purpose
    output=$(run DTRAIN_BIN="$work/bin/dtrain" "$wrapper" $bad)
    expect "'dtrain-run $bad' exits 2" "$?" 2
    expect_match "'dtrain-run $bad' says why" "$output" "dtrain-run: *"
done
output=$(run CUDA_VISIBLE_DEVICES= DTRAIN_BIN="$work/bin/dtrain" "$wrapper" -n gpu cfg.yaml)
expect "-n gpu without GPUs exits 2" "$?" 2
output=$(run DTRAIN_BIN="$work/missing" "$wrapper" cfg.yaml)
expect "a DTRAIN_BIN that does not exist exits 2" "$?" 2
output=$(run "$wrapper" --help)
expect "--help exits 0" "$?" 0
expect_match "--help shows the usage" "$output" "*dtrain-run \\[-n N\\]*"

check_summary dtrain_run
