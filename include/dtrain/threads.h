/* How many compute threads and decode workers a rank runs, and why: the cores this process may
 * use (affinity mask, cgroup v2 CPU quota), shared with the other ranks on its node, unless
 * runtime.threads, OMP_NUM_THREADS or data.workers say otherwise. Also the OpenMP wait policy
 * in force, for the start-up log. */
#ifndef DTRAIN_THREADS_H
#define DTRAIN_THREADS_H

#include <stddef.h>
#include <stdint.h>

#include "dtrain/comm.h"
#include "dtrain/config.h"
#include "dtrain/error.h"

#define DT_CPU_MASK_WORDS 16 /* processors 0..1023 are compared between ranks */

/* What this process may run on. */
typedef struct dt_cpu_limits {
    int online;   /* online processors */
    int affinity; /* processors in the affinity mask (sched_getaffinity) */
    double quota; /* cgroup v2 cpu.max in cores, the smallest along the hierarchy; 0: none */
    uint64_t mask[DT_CPU_MASK_WORDS]; /* the affinity mask's processors 0..1023 */
} dt_cpu_limits;

/* Fills limits for the calling process (cgroup v2 mounted at /sys/fs/cgroup). */
void dt_cpu_limits_read(dt_cpu_limits *limits);

/* The cgroup v2 CPU quota in cores for the cgroup named by self_cgroup (the text of
 * /proc/self/cgroup, "0::/path"): the smallest cpu.max found from that cgroup up to the root of
 * the hierarchy mounted at cgroup_fs; 0 when none is set ("max") or nothing is readable. */
double dt_cgroup_cpu_quota(const char *cgroup_fs, const char *self_cgroup);

/* One rank's view, as exchanged between ranks. */
typedef struct dt_cpu_record {
    int64_t node; /* the rank's node (dt_comm.node, from MPI, not the host name) */
    uint64_t mask[DT_CPU_MASK_WORDS];
} dt_cpu_record;

/* The cores rank `me` may count as its own: each processor of its mask counts 1/k when k ranks
 * of the same node have it in their masks. ranks_here gets the number of ranks on me's node. */
double dt_cpu_share(const dt_cpu_record *records, int n_ranks, int me, int *ranks_here);

typedef struct dt_thread_plan {
    int threads;   /* OpenMP compute threads */
    int workers;   /* decode threads */
    char why[512]; /* one line for the start-up log */
} dt_thread_plan;

/* Chooses the thread counts (every rank calls it: the ranks compare their masks). */
int dt_thread_plan_make(const dt_config *cfg, const dt_comm *comm, dt_thread_plan *plan,
                        dt_error *err);
/* The same for explicit counts (runtime.threads, data.workers; 0: the rank's share). */
int dt_thread_plan_for(int threads, int workers, const dt_comm *comm, dt_thread_plan *plan,
                       dt_error *err);

/* Recorded by the dtrain executable before OpenMP starts: whether it set OMP_WAIT_POLICY. */
void dt_openmp_wait_policy_record(int set_by_dtrain);
/* "OpenMP waits: PASSIVE (...)": the policy in force and where it came from. */
void dt_openmp_wait_policy_describe(char *out, size_t size);

#endif
