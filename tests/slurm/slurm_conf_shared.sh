# shellcheck shell=bash
# The slurm.conf settings both test clusters use (the one-node Slurm of throwaway_slurm.sh and
# the namespace cluster of tests/multinode/cluster.sh): root daemons, munge on a private socket,
# a quick scheduler and no accounting. Each script adds its own names, ports, paths and nodes.
#
#   slurm_conf_shared MUNGE_SOCKET   prints the lines
# cred_expire: a requeued job waits that long before it may start again (default 120 s);
# sched_interval: the periodic scheduling pass that starts it (default 60 s).
slurm_conf_shared() {
    cat <<EOF
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$1,cred_expire=5
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
EOF
}
