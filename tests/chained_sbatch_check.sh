#!/bin/bash
# Runs cluster/chained.sbatch outside Slurm with stand-ins for sbatch, srun, scancel and dtrain,
# and checks its decisions: successor queued with afterany, cancelled when training finishes or
# the config is wrong, kept after a failure, the resume override passed only when a checkpoint
# file exists, and no successor beyond DTRAIN_CHAIN_MAX.
# Usage: chained_sbatch_check.sh PATH/TO/cluster/chained.sbatch
set -u
script=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")

# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/testlib/check.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/submit/build" "$work/submit/runs/long"
log=$work/calls.log

cat >"$work/bin/sbatch" <<'FAKE'
#!/bin/bash
echo "sbatch $*" >>"$CALLS_LOG"
echo "777;cluster"
FAKE
cat >"$work/bin/scancel" <<'FAKE'
#!/bin/bash
echo "scancel $*" >>"$CALLS_LOG"
FAKE
# srun stand-in: drop srun's own options, run the program.
cat >"$work/bin/srun" <<'FAKE'
#!/bin/bash
while [[ $1 == --* ]]; do shift; done
exec "$@"
FAKE
cat >"$work/submit/build/dtrain" <<'FAKE'
#!/bin/bash
echo "dtrain $*" >>"$CALLS_LOG"
exit "${FAKE_EXIT:-0}"
FAKE
chmod +x "$work/bin/"* "$work/submit/build/dtrain"

run_chain() { # run_chain EXIT_CODE [ENV...] -- ARGS...
    local code=$1
    shift
    local settings=()
    while [[ $1 != -- ]]; do
        settings+=("$1")
        shift
    done
    shift
    : >"$log"
    (cd "$work/submit" && env -u DTRAIN_CHAIN_INDEX -u DTRAIN_CHAIN_MAX -u DTRAIN_CHECKPOINT \
        PATH="$work/bin:$PATH" CALLS_LOG="$log" FAKE_EXIT="$code" SLURM_JOB_ID=500 \
        SLURM_SUBMIT_DIR="$work/submit" ${settings[@]+"${settings[@]}"} \
        bash "$script" "$@" >/dev/null 2>&1)
}

run_chain 0 -- cfg.yaml output.dir=runs/long
expect "finished training exits 0" "$?" 0
expect "a finished chain queues, trains, then cancels its successor" "$(cat "$log")" \
"sbatch --parsable --chdir=$work/submit --dependency=afterany:500 --export=ALL,DTRAIN_CHAIN_INDEX=2 $work/submit/cluster/chained.sbatch cfg.yaml output.dir=runs/long
dtrain cfg.yaml output.dir=runs/long
scancel 777"

run_chain 1 -- cfg.yaml
expect "a failure keeps dtrain's exit code" "$?" 1
expect "a failure leaves the successor to retry" "$(grep -c scancel "$log")" 0

run_chain 2 -- cfg.yaml
expect "a config error keeps exit code 2" "$?" 2
expect "a config error cancels the successor" "$(grep scancel "$log")" "scancel 777"

touch "$work/submit/runs/long/checkpoint.bin"
run_chain 0 -- cfg.yaml output.dir=runs/long
expect "an existing checkpoint is passed as the resume override" "$(grep dtrain "$log")" \
    "dtrain cfg.yaml output.dir=runs/long train.resume=runs/long/checkpoint.bin"
run_chain 0 DTRAIN_RESUME_KEY=--resume DTRAIN_CHECKPOINT=runs/long/checkpoint.bin -- cfg.yaml
expect "the resume key and checkpoint can be set" "$(grep dtrain "$log")" \
    "dtrain cfg.yaml --resume=runs/long/checkpoint.bin"

run_chain 1 DTRAIN_CHAIN_INDEX=3 DTRAIN_CHAIN_MAX=3 -- cfg.yaml
expect "the last job of the chain queues nothing" "$(grep -c sbatch "$log")" 0

run_chain 0 --
expect "no config is a usage error" "$?" 2

check_summary chained_sbatch
