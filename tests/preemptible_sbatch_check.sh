#!/bin/bash
# Runs cluster/preemptible.sbatch outside Slurm with stand-ins for srun, scontrol and dtrain,
# and checks its decisions: no --resume on a fresh start, --resume when output.dir has a
# complete checkpoint (with or without `latest`), --overwrite of its own run when a restarted job
# has none, never of another job's run, SIGUSR1 forwarded to the job step, requeue on exit 75 (and only then), dtrain's
# exit code kept otherwise, a missing binary refused.
# Usage: preemptible_sbatch_check.sh PATH/TO/cluster/preemptible.sbatch
set -u
script=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")

# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/testlib/check.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/submit/build"
log=$work/calls.log

cat >"$work/bin/scontrol" <<'FAKE'
#!/bin/bash
echo "scontrol $*" >>"$CALLS_LOG"
FAKE
cat >"$work/bin/srun" <<'FAKE'
#!/bin/bash
while [[ $1 == --* ]]; do shift; done
exec "$@"
FAKE
# dtrain stand-in: --print-config prints output.dir; training waits for SIGUSR1 when FAKE_WAIT
# is set (then exits 75), else exits FAKE_EXIT.
cat >"$work/submit/build/dtrain" <<'FAKE'
#!/bin/bash
for a in "$@"; do
    if [[ $a == --print-config ]]; then
        printf 'output:\n  dir: runs/long\n  log_every: 20\n'
        exit 0
    fi
done
echo "dtrain $*" >>"$CALLS_LOG"
if [[ -n ${FAKE_WAIT:-} ]]; then
    trap 'echo "dtrain got USR1" >>"$CALLS_LOG"; exit 75' USR1
    touch "$FAKE_WAIT"
    for _ in $(seq 100); do sleep 0.1; done
    exit 1
fi
exit "${FAKE_EXIT:-0}"
FAKE
chmod +x "$work/bin/"* "$work/submit/build/dtrain"

run_job() { # run_job EXIT_CODE ARGS...
    local code=$1
    shift
    : >"$log"
    (cd "$work/submit" && PATH="$work/bin:$PATH" CALLS_LOG="$log" FAKE_EXIT="$code" \
        SLURM_JOB_ID=500 SLURM_SUBMIT_DIR="$work/submit" bash "$script" "$@" >/dev/null 2>&1)
}

run_job 0 cfg.yaml output.dir=runs/long
expect "a finished run exits 0" "$?" 0
expect "a fresh start does not resume" "$(cat "$log")" "dtrain cfg.yaml output.dir=runs/long"

run_job 2 cfg.yaml
expect "a config error keeps exit code 2" "$?" 2
expect "no requeue on a config error" "$(grep -c scontrol "$log")" 0

run_job 75 cfg.yaml
expect "exit 75 requeues" "$(grep scontrol "$log")" "scontrol requeue 500"

checkpoints=$work/submit/runs/long/checkpoints
mkdir -p "$checkpoints/step-00000010"
echo step-00000010 >"$checkpoints/latest"
run_job 0 cfg.yaml
expect "a checkpoint in output.dir resumes" "$(grep dtrain "$log")" "dtrain --resume cfg.yaml"
# a complete step folder without `latest` (a node lost between the two writes) resumes too
rm "$checkpoints/latest"
run_job 0 cfg.yaml
expect "a step folder without latest resumes" "$(grep dtrain "$log")" "dtrain --resume cfg.yaml"
# a requeued job (node failure) with no complete checkpoint yet starts its own run again; a run
# that another job started there is never replaced (dtrain then refuses it)
rm -r "$checkpoints/step-00000010"
expect "the first start named its job in output.dir" \
    "$(cat "$work/submit/runs/long/.slurm-job")" 500
SLURM_RESTART_COUNT=1 run_job 0 cfg.yaml
expect "a restart without a checkpoint starts again" "$(grep dtrain "$log")" \
    "dtrain --overwrite cfg.yaml"
echo 499 >"$work/submit/runs/long/.slurm-job"
SLURM_RESTART_COUNT=1 run_job 0 cfg.yaml
expect "another job's run is not replaced" "$(grep dtrain "$log")" "dtrain cfg.yaml"

# SIGUSR1 to the batch shell (what --signal=B:USR1 sends) reaches dtrain, then requeue
: >"$log"
ready=$work/ready
(cd "$work/submit" && PATH="$work/bin:$PATH" CALLS_LOG="$log" FAKE_WAIT="$ready" \
    SLURM_JOB_ID=501 SLURM_SUBMIT_DIR="$work/submit" bash "$script" cfg.yaml >/dev/null 2>&1) &
job=$!
for _ in $(seq 100); do [[ -e $ready ]] && break; sleep 0.1; done
batch_shell=$(pgrep -P "$job" -f "$script" | head -n 1)
kill -USR1 "${batch_shell:-$job}"
wait "$job"
expect "SIGUSR1 then exit 0 after requeueing" "$?" 0
expect "dtrain got the forwarded SIGUSR1" "$(grep -c 'got USR1' "$log")" 1
expect "requeued after the signal" "$(grep scontrol "$log")" "scontrol requeue 501"

rm "$work/submit/build/dtrain"
run_job 0 cfg.yaml
expect "a missing binary is a usage error" "$?" 2

check_summary preemptible_sbatch
