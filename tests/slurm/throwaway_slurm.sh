# shellcheck shell=bash
# A throwaway one-node Slurm for the cluster-script tests (tests/slurm/cluster_scripts_check.sh):
# munged, slurmctld and slurmd started as plain processes (no systemd, no system config touched)
# with every file under one folder, on free local ports; jobs run as an ordinary user.
#
#   slurm_start DIR CPUS   starts it, exports SLURM_CONF; 0 when the node is idle
#   slurm_stop             stops the daemons and any process left of the jobs
# Needs root (slurmd starts job steps as the submitting user).

# shellcheck source-path=SCRIPTDIR source=slurm_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/slurm_lib.sh"

slurm_dir=""

# A TCP port no local socket uses (listening or not), from /proc/net/tcp{,6}.
slurm_free_port() {
    local port hex
    for _ in $(seq 50); do
        port=$((20000 + RANDOM % 30000))
        printf -v hex ':%04X ' "$port"
        grep -qi -- "$hex" /proc/net/tcp /proc/net/tcp6 2>/dev/null || {
            echo "$port"
            return 0
        }
    done
    return 1
}

# slurm_start_failed WHAT: says what did not start, with the end of each daemon's log.
slurm_start_failed() {
    local log
    echo "throwaway Slurm: $1" >&2
    for log in "$slurm_dir/munge-key/log" "$slurm_dir"/log/*.log; do
        [[ -f $log ]] && echo "--- $log" >&2 && tail -n 15 "$log" >&2
    done
    return 1
}

slurm_start() {
    local dir=$1 cpus=$2 host ctld_port slurmd_port
    slurm_dir=$dir
    host=$(hostname -s)
    mkdir -p "$dir/munge-key" "$dir/munge" "$dir/state" "$dir/spool" "$dir/log"
    # munged wants its key private and its socket folder reachable by every user
    chmod 700 "$dir/munge-key"
    chmod 755 "$dir" "$dir/munge"
    head -c 1024 /dev/urandom >"$dir/munge-key/key"
    chmod 600 "$dir/munge-key/key"
    munged --socket="$dir/munge/socket" --key-file="$dir/munge-key/key" \
        --log-file="$dir/munge-key/log" --pid-file="$dir/munge-key/pid" \
        --seed-file="$dir/munge-key/seed" || slurm_start_failed "munged did not start" || return 1

    ctld_port=$(slurm_free_port) && slurmd_port=$(slurm_free_port) ||
        slurm_start_failed "no free TCP port" || return 1
    cat >"$dir/slurm.conf" <<EOF
ClusterName=dtraintest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=4000 State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
$(slurm_conf_shared "$dir/munge/socket")
EOF
    chmod 644 "$dir/slurm.conf"
    export SLURM_CONF=$dir/slurm.conf
    slurmctld -i || slurm_start_failed "slurmctld did not start" || return 1
    slurmd || slurm_start_failed "slurmd did not start" || return 1
    local state
    for _ in $(seq 150); do
        state=$(sinfo -h -o %t 2>/dev/null)
        [[ $state == idle ]] && return 0
        sleep 0.2
    done
    slurm_start_failed "node not idle after 30 s (state '$state')"
}

# Kills the process whose pid file is given, waiting up to 10 s before SIGKILL.
slurm_kill_pidfile() {
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 0
    [[ -n $pid ]] || return 0
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null
}

slurm_stop() { # slurm_stop [USER]: also ends whatever USER still runs
    [[ -n $slurm_dir ]] || return 0
    # jobs first, so that their slurmstepd processes (which outlive slurmd) end too
    scancel --full --quiet --partition=test 2>/dev/null
    for _ in $(seq 100); do
        [[ -z $(squeue -h -t running,completing -o %i 2>/dev/null) ]] && break
        sleep 0.1
    done
    slurm_kill_pidfile "$slurm_dir/slurmd.pid"
    slurm_kill_pidfile "$slurm_dir/slurmctld.pid"
    [[ -n ${1:-} ]] && pkill -9 -u "$1" 2>/dev/null
    slurm_kill_pidfile "$slurm_dir/munge-key/pid"
    return 0
}
