# shellcheck shell=bash
# What both test clusters share (the one-node Slurm of throwaway_slurm.sh with its checks in
# cluster_scripts_check.sh, and the namespace cluster of tests/multinode):
#
#   slurm_conf_shared MUNGE_SOCKET   prints the slurm.conf settings: root daemons, munge on a
#                                    private socket, a quick scheduler and no accounting (each
#                                    cluster adds its own names, ports, paths and nodes)
#   slurm_wait_job ID SECONDS        prints "STATE EXITCODE" once the job has ended, reading
#                                    the job with the caller's job_field ID NAME
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

slurm_wait_job() {
    local state
    for _ in $(seq $(($2 * 4))); do
        state=$(job_field "$1" JobState)
        case $state in
        COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE)
            echo "$state $(job_field "$1" ExitCode)"
            return 0
            ;;
        esac
        sleep 0.25
    done
    echo "still ${state:-unknown} after $2 s"
}
