/* The thread counts of a rank and the reasons for them (logged at start-up): runtime.threads,
 * else OMP_NUM_THREADS, else this rank's share of the cores it may use; data.workers, else
 * that share. Ranks on one node compare their affinity masks, so ranks that the launcher bound
 * to their own cores (srun --cpus-per-task, mpirun --bind-to core) get all of them, and ranks
 * that share cores split them. Also the OpenMP wait policy for the log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dtrain/threads.h"

/* The most threads of either kind (the limit of runtime.threads and data.workers). */
enum { DT_MAX_THREADS = 1024 };

double dt_cpu_share(const dt_cpu_record *records, int n_ranks, int me, int *ranks_here) {
    const dt_cpu_record *mine = &records[me];
    int here = 0;
    for (int r = 0; r < n_ranks; r++) here += records[r].node == mine->node;
    double share = 0;
    for (int cpu = 0; cpu < 64 * DT_CPU_MASK_WORDS; cpu++) {
        uint64_t bit = 1ull << (cpu % 64);
        if (!(mine->mask[cpu / 64] & bit)) continue;
        int users = 0;
        for (int r = 0; r < n_ranks; r++)
            users += records[r].node == mine->node && (records[r].mask[cpu / 64] & bit);
        share += 1.0 / users;
    }
    if (ranks_here) *ranks_here = here;
    return share;
}

/* OMP_NUM_THREADS as OpenMP reads it: the first entry of the list; 0 when unset or invalid. */
static int omp_num_threads_from_env(void) {
    const char *text = getenv("OMP_NUM_THREADS");
    if (!text || !*text) return 0;
    char *end;
    long n = strtol(text, &end, 10);
    if (end == text || (*end && *end != ',') || n < 1) return 0;
    return n > DT_MAX_THREADS ? DT_MAX_THREADS : (int)n;
}

int dt_thread_plan_make(const dt_config *cfg, const dt_comm *comm, dt_thread_plan *plan,
                        dt_error *err) {
    return dt_thread_plan_for(cfg->runtime.threads, cfg->data.workers, comm, plan, err);
}

int dt_thread_plan_for(int threads, int workers, const dt_comm *comm, dt_thread_plan *plan,
                       dt_error *err) {
    memset(plan, 0, sizeof *plan);
    dt_cpu_limits limits;
    dt_cpu_limits_read(&limits);
    dt_cpu_record me = {.node = comm->node};
    memcpy(me.mask, limits.mask, sizeof me.mask);
    dt_cpu_record *all = calloc((size_t)comm->size, sizeof *all);
    if (!all) return dt_fail(err, "out of memory comparing the ranks' CPU masks");
    if (comm->ops->allgather(comm->ctx, &me, all, sizeof me, err)) {
        free(all);
        return dt_error_prefix(err, "comparing the ranks' CPU masks");
    }
    int ranks_here = 1;
    double share = dt_cpu_share(all, comm->size, comm->rank, &ranks_here);
    free(all);
    if (limits.affinity > 64 * DT_CPU_MASK_WORDS) /* beyond the compared processors */
        share = (double)limits.affinity / ranks_here;
    int cores = (int)(share + 1e-9);
    /* The quota is the cgroup's, which the node's ranks are taken to share. */
    if (limits.quota > 0) {
        int quota_share = (int)(limits.quota / ranks_here + 1e-9);
        if (quota_share < cores) cores = quota_share;
    }
    if (cores < 1) cores = 1;
    if (cores > DT_MAX_THREADS) cores = DT_MAX_THREADS;

    char quota[48] = "no cgroup CPU limit";
    if (limits.quota > 0) snprintf(quota, sizeof quota, "cgroup CPU limit %.2f", limits.quota);
    char from_share[200];
    snprintf(from_share, sizeof from_share,
             "share of %d usable core%s: affinity mask %d of %d online, %s, %d rank%s on this "
             "node",
             cores, cores == 1 ? "" : "s", limits.affinity, limits.online, quota, ranks_here,
             ranks_here == 1 ? "" : "s");

    int omp = omp_num_threads_from_env();
    const char *threads_why;
    if (threads > 0) {
        plan->threads = threads;
        threads_why = "runtime.threads";
    } else if (omp > 0) {
        plan->threads = omp;
        threads_why = "OMP_NUM_THREADS";
    } else {
        plan->threads = cores;
        threads_why = "this rank's share of the cores";
    }
    plan->workers = workers > 0 ? workers : cores;
    snprintf(plan->why, sizeof plan->why, "threads: %d compute (%s), %d decode (%s); %s",
             plan->threads, threads_why, plan->workers,
             workers > 0 ? "data.workers" : "this rank's share of the cores", from_share);
    return 0;
}

static int wait_policy_set_by_dtrain;

void dt_openmp_wait_policy_record(int set_by_dtrain) {
    wait_policy_set_by_dtrain = set_by_dtrain;
}

void dt_openmp_wait_policy_describe(char *out, size_t size) {
    const char *policy = getenv("OMP_WAIT_POLICY");
    if (wait_policy_set_by_dtrain)
        snprintf(out, size,
                 "OpenMP waits: PASSIVE (dtrain's default, idle threads sleep; "
                 "OMP_WAIT_POLICY=ACTIVE makes them spin)");
    else if (policy)
        snprintf(out, size, "OpenMP waits: %s (OMP_WAIT_POLICY from the environment)", policy);
    else
        snprintf(out, size, "OpenMP waits: the OpenMP library's default (spin, then sleep)");
}
