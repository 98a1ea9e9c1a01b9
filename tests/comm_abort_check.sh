#!/bin/bash
# Runs comm_abort_check under an MPI launcher and checks the abort contract: the job ends with a
# non-zero exit code in under 20 seconds and none of its ranks is left running.
# Usage: comm_abort_check.sh RANKS LAUNCHER [LAUNCHER ARGS...] -- PROGRAM
set -u

ranks=$1
shift
launcher=()
while [[ $# -gt 0 && $1 != -- ]]; do
    launcher+=("$1")
    shift
done
shift
program=$1

# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/testlib/check.sh"

pid_directory=$(mktemp -d)
trap 'rm -rf "$pid_directory"' EXIT

start_ns=$(date +%s%N)
timeout -k 5 60 "${launcher[@]}" "$program" "$pid_directory"
status=$?
elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))
echo "comm_abort_check.sh: launcher exit code $status after ${elapsed_ms} ms"

check "the job exits non-zero (got $status)" test "$status" -ne 0
# Open MPI's mpirun exits with the code given to MPI_Abort.
if "${launcher[0]}" --version 2>/dev/null | grep -qE 'Open MPI|OpenRTE|open-mpi'; then
    check "mpirun exits with the abort code 3 (got $status)" test "$status" -eq 3
fi
check "the job was not killed by the 60 s watchdog (got $status)" test "$status" -ne 124 -a "$status" -ne 137
check "the job ends within 20 s (took ${elapsed_ms} ms)" test "$elapsed_ms" -lt 20000

shopt -s nullglob # no pid file at all counts 0, not the pattern
pid_files=("$pid_directory"/rank-*.pid)
shopt -u nullglob
check "every rank wrote its pid (${#pid_files[@]} of $ranks)" test "${#pid_files[@]}" -eq "$ranks"

# A rank that is gone, or a zombie nobody has reaped yet, no longer runs.
still_running() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}
sleep 1 # let the launcher's SIGKILL land
for pid_file in "${pid_files[@]}"; do
    [[ -f $pid_file ]] || continue
    pid=$(<"$pid_file")
    if still_running "$pid"; then
        check "rank with pid $pid ($(basename "$pid_file")) is gone" false
        kill -9 "$pid" 2>/dev/null
    else
        check "rank with pid $pid is gone" true
    fi
done

check_summary comm_abort
