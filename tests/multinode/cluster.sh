#!/bin/bash
# A throwaway cluster of Linux namespaces on this machine, for the multi-node tests
# (multinode_check.sh). Each node has its own network, hostname, mounts, PIDs and IPC (so its
# own address, /tmp and /dev/shm); the nodes are joined by a bridge in a network namespace of its
# own; every folder of the machine outside /tmp (the tests' DIR among them) is the shared storage
# that every node sees. Nothing is added to the machine's own network namespace (no interface,
# address or route) and the nodes have no default route: all traffic stays between them.
#
#   cluster.sh DIR up [--slurm] NODE...  start the nodes (names also their hostnames; NODE=HOST
#                                        gives node NODE the hostname HOST); --slurm adds node
#                                        "head" with munged and slurmctld, and slurmd on each node
#   cluster.sh DIR exec NODE CMD...      run CMD on NODE (from the machine, with its environment)
#   cluster.sh DIR crash NODE            kill everything of NODE at once, as a power failure
#   cluster.sh DIR cut NODE              unplug NODE from the network (its processes run on)
#   cluster.sh DIR reboot NODE           crash NODE if it is up, then start it again (and slurmd)
#   cluster.sh DIR down                  stop every node, then check that no process, namespace,
#                                        mount or interface of the cluster is left (exit 1 if so)
#   cluster.sh DIR agent                 the path of the launch agent for Open MPI
#                                        (plm_rsh_agent: `agent NODE COMMAND`, like ssh: the
#                                        command runs with a login environment, node_shell.py)
# Needs root, ip, unshare, nsenter and python3; Slurm's daemons and munged for --slurm.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../slurm/slurm_lib.sh
source "$here/../slurm/slurm_lib.sh"
subnet=10.231.7
die() {
    echo "cluster.sh: $*" >&2
    exit 1
}

[[ $# -ge 2 ]] || die "usage: cluster.sh DIR up|exec|crash|cut|reboot|down|agent ..."
dir=$1 action=$2
shift 2
mkdir -p "$dir/nodes"
dir=$(cd "$dir" && pwd)
case $dir in /tmp | /tmp/*) die "DIR must be outside /tmp (every node has its own /tmp)" ;; esac

node_pid() { cat "$dir/nodes/$1/pid" 2>/dev/null; } # the node's init, as the machine sees it
node_up() {
    local pid
    pid=$(node_pid "$1") && [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}
in_node() { # in_node NODE CMD...: CMD in every namespace of NODE
    local pid
    pid=$(node_pid "$1") || die "no node $1"
    shift
    # --root: the node's root directory too, not only its mount namespace (entering a mount
    # namespace resets the root to the namespace's, which leaves a chroot such as a test root)
    nsenter --target "$pid" --net --uts --mount --pid --ipc --root --wd="$PWD" -- "$@"
}
switch_net() { nsenter --target "$(cat "$dir/switch.pid")" --net -- "$@"; }

# The address of node NAME: its line in DIR/hosts, added when first seen.
node_address() {
    local name=$1 address count
    address=$(awk -v n="$name" '$2 == n {print $1}' "$dir/hosts" 2>/dev/null)
    if [[ -z $address ]]; then
        count=$(grep -c "^$subnet\." "$dir/hosts" 2>/dev/null)
        address=$subnet.$((10 + count))
        echo "$address $name" >>"$dir/hosts"
    fi
    echo "$address"
}

start_switch() {
    [[ -f $dir/switch.pid ]] && kill -0 "$(cat "$dir/switch.pid")" 2>/dev/null && return 0
    setsid unshare --net sleep infinity </dev/null >/dev/null 2>&1 &
    echo $! >"$dir/switch.pid"
    local pid=$!
    for _ in $(seq 50); do
        [[ $(readlink /proc/$pid/ns/net) != "$(readlink /proc/self/ns/net)" ]] && break
        sleep 0.05
    done
    readlink "/proc/$pid/ns/net" >>"$dir/namespaces"
    if ! { switch_net ip link set lo up && switch_net ip link add br0 type bridge &&
        switch_net ip link set br0 up; }; then
        die "the bridge did not come up"
    fi
}

# start_node NAME HOSTNAME: a new node (namespaces, mounts, address, remote shell).
start_node() {
    local name=$1 host=$2 node=$dir/nodes/$1 holder pid address mac
    mkdir -p "$node"
    echo "$host" >"$node/hostname"
    rm -f "$node/pid" "$node/ready" "$node/shell.sock"
    address=$(node_address "$name")
    # inside: hostname, a /tmp and /dev/shm of its own, the cluster's hosts file, the shell
    # shellcheck disable=SC2016 # expanded by the node's shell
    setsid unshare --net --uts --mount --pid --ipc --fork --mount-proc --propagation private \
        bash -c '
            hostname "$1" && mount -t tmpfs -o mode=1777 tmpfs /tmp &&
                mount -t tmpfs -o mode=1777 tmpfs /dev/shm &&
                mount --bind "$2/hosts" /etc/hosts || exit 1
            /usr/bin/python3 "$3/node_shell.py" serve "$2/nodes/$4/shell.sock" \
                </dev/null >>"$2/nodes/$4/log" 2>&1 &
            touch "$2/nodes/$4/ready"
            trap "" TERM HUP INT
            while :; do sleep 3600 & wait $!; done' \
        node-init "$host" "$dir" "$here" "$name" </dev/null >>"$node/log" 2>&1 &
    holder=$!
    for _ in $(seq 100); do
        [[ -S $node/shell.sock && -f $node/ready ]] && break
        sleep 0.05
    done
    pid=$(cat "/proc/$holder/task/$holder/children" 2>/dev/null)
    pid=${pid%% *}
    [[ -n $pid && -f $node/ready ]] || die "node $name did not start (log: $node/log)"
    echo "$pid" >"$node/pid"
    readlink "/proc/$pid/ns/net" >>"$dir/namespaces"
    # the cable: a veth pair made in the switch, one end moved into the node as eth0, with a MAC
    # address of its own that a reboot keeps (as a NIC does: the other nodes' ARP caches stay
    # right, and a rebooted node is reachable at once)
    mac=$(printf '02:00:0a:e7:07:%02x' "${address##*.}")
    switch_net ip link del "v-$name" 2>/dev/null
    if ! { switch_net ip link add "v-$name" type veth peer name eth0 netns "$pid" &&
        switch_net ip link set "v-$name" master br0 && switch_net ip link set "v-$name" up &&
        in_node "$name" ip link set lo up &&
        in_node "$name" ip link set eth0 address "$mac" &&
        in_node "$name" ip addr add "$address/24" dev eth0 &&
        in_node "$name" ip link set eth0 up; }; then
        die "node $name: network setup failed"
    fi
}

compute_nodes() { awk -v net="$subnet." 'index($1, net) == 1 && $2 != "head" {print $2}' "$dir/hosts"; }

slurm_conf() { # the Slurm configuration of the nodes in DIR/hosts
    local nodes
    nodes=$(compute_nodes)
    cat <<EOF
ClusterName=dtrainmn
SlurmctldHost=head($(node_address head))
StateSaveLocation=$dir/slurm/state
SlurmdSpoolDir=$dir/slurm/spool-%n
SlurmctldPidFile=$dir/slurm/slurmctld.pid
SlurmdPidFile=$dir/slurm/slurmd-%n.pid
SlurmctldLogFile=$dir/slurm/slurmctld.log
SlurmdLogFile=$dir/slurm/slurmd-%n.log
SlurmdTimeout=10
MessageTimeout=5
KillWait=5
InactiveLimit=0
$(slurm_conf_shared "$dir/munge/socket")
EOF
    for node in $nodes; do
        echo "NodeName=$node NodeAddr=$(node_address "$node") CPUs=2 RealMemory=2000 State=UNKNOWN"
    done
    echo "PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
}

start_slurmd() { in_node "$1" env SLURM_CONF="$dir/slurm/slurm.conf" slurmd -N "$1"; }

start_slurm() {
    mkdir -p "$dir/munge" "$dir/munge-key" "$dir/slurm/state"
    chmod 700 "$dir/munge-key"
    chmod 755 "$dir/munge"
    head -c 1024 /dev/urandom >"$dir/munge-key/key"
    chmod 600 "$dir/munge-key/key"
    slurm_conf >"$dir/slurm/slurm.conf"
    in_node head munged --socket="$dir/munge/socket" --key-file="$dir/munge-key/key" \
        --log-file="$dir/munge-key/log" --pid-file="$dir/munge-key/pid" \
        --seed-file="$dir/munge-key/seed" || die "munged did not start"
    in_node head env SLURM_CONF="$dir/slurm/slurm.conf" slurmctld -i ||
        die "slurmctld did not start ($dir/slurm/slurmctld.log)"
    local node
    for node in $(compute_nodes); do
        start_slurmd "$node" || die "slurmd of $node did not start ($dir/slurm/slurmd-$node.log)"
    done
    local states
    for _ in $(seq 150); do
        states=$(in_node head env SLURM_CONF="$dir/slurm/slurm.conf" sinfo -h -N -o %t | sort -u)
        [[ $states == idle ]] && return 0
        sleep 0.2
    done
    die "Slurm nodes not idle after 30 s (states: $(echo "$states" | tr '\n' ' '))"
}

crash_node() {
    local pid
    pid=$(node_pid "$1") || return 0
    kill -KILL "$pid" 2>/dev/null # the init of a PID namespace takes all of it along
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    rm -f "$dir/nodes/$1/pid" "$dir/nodes/$1/ready"
}

# What is left of the cluster on this machine: processes in its namespaces, its mounts seen
# from here, interfaces or addresses it would have added here.
leftovers() {
    local ns proc
    if [[ -f $dir/namespaces ]]; then
        for proc in /proc/[0-9]*; do
            ns=$(readlink "$proc/ns/net" 2>/dev/null) || continue
            grep -qxF "$ns" "$dir/namespaces" &&
                echo "process ${proc#/proc/} ($(tr '\0' ' ' <"$proc/cmdline" | cut -c1-80)) in $ns"
        done
    fi
    grep -F " $dir" /proc/self/mountinfo | sed 's/^/mount: /'
    ip -o link show | grep -E ' (v-[^:@]*|br0)[:@]' | sed 's/^/interface: /'
    ip -o addr show | grep -F " $subnet." | sed 's/^/address: /'
    return 0
}

case $action in
up)
    slurm=0
    [[ ${1:-} == --slurm ]] && slurm=1 && shift
    [[ $# -ge 1 ]] || die "up: name at least one node"
    : >"$dir/hosts"
    echo "127.0.0.1 localhost" >"$dir/hosts"
    # the launch agent, like ssh: agent [-options] NODE COMMAND...
    cat >"$dir/agent" <<EOF
#!/bin/bash
while [[ \${1:-} == -* ]]; do shift; done
node=\$1
shift
exec /usr/bin/python3 "$here/node_shell.py" run "$dir/nodes/\$node/shell.sock" "\$@"
EOF
    chmod 755 "$dir/agent"
    start_switch
    ((slurm)) && start_node head head
    for spec in "$@"; do
        name=${spec%%=*} host=${spec#*=}
        node_address "$name" >/dev/null
        start_node "$name" "$host"
    done
    if ((slurm)); then
        echo 1 >"$dir/slurm-enabled"
        start_slurm
    fi
    ;;
exec)
    [[ $# -ge 2 ]] || die "exec NODE CMD..."
    node=$1
    shift
    node_up "$node" || die "node $node is down"
    in_node "$node" "$@"
    ;;
crash) crash_node "${1:?crash NODE}" ;;
cut) switch_net ip link set "v-${1:?cut NODE}" down ;;
reboot)
    node=${1:?reboot NODE}
    crash_node "$node"
    start_node "$node" "$(cat "$dir/nodes/$node/hostname" 2>/dev/null || echo "$node")"
    if [[ -f $dir/slurm-enabled ]]; then
        start_slurmd "$node" || die "slurmd of $node did not start"
    fi
    ;;
agent) echo "$dir/agent" ;;
down)
    for node in "$dir"/nodes/*/; do
        [[ -d $node ]] && crash_node "$(basename "$node")"
    done
    if [[ -f $dir/switch.pid ]]; then
        kill -KILL "$(cat "$dir/switch.pid")" 2>/dev/null
        for _ in $(seq 100); do
            kill -0 "$(cat "$dir/switch.pid")" 2>/dev/null || break
            sleep 0.05
        done
        rm -f "$dir/switch.pid"
    fi
    left=""
    for _ in $(seq 50); do # a killed namespace's processes take a moment to be reaped
        left=$(leftovers)
        [[ -z $left ]] && break
        sleep 0.1
    done
    if [[ -n $left ]]; then
        echo "cluster.sh: left after down:" >&2
        echo "$left" >&2
        exit 1
    fi
    ;;
*) die "unknown action $action" ;;
esac
