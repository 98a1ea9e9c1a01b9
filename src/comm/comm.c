/* Picks the communication layer at start-up: MPI when dtrain was built with it and a launcher
 * (mpirun, mpiexec, srun) started this process, otherwise a single process that never touches
 * MPI. Also reads rank and size from the launcher's environment before any MPI call.
 *
 * The launch rule, in order:
 *   - OMPI_COMM_WORLD_SIZE (Open MPI), PMI_SIZE / PMI_RANK (MPICH, Intel MPI, Slurm's pmi2),
 *     PMIX_RANK (any PMIx launcher: Open MPI 4+, srun --mpi=pmix), MV2_COMM_WORLD_SIZE
 *     (MVAPICH2): launched.
 *   - Slurm without any of those: launched only inside a job step (SLURM_STEP_ID and
 *     SLURM_PROCID are set, which srun does and a batch script or salloc shell does not) of more
 *     than one task (SLURM_STEP_NUM_TASKS, else SLURM_NTASKS). A one-task step runs single.
 *   - Anything else: not launched. */
#include "dtrain/comm.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

/* Parses a non-negative int environment variable; returns 1 and fills out when it is one. */
static int read_env_count(const char *name, int *out) {
    const char *text = getenv(name);
    if (!text || !*text) return 0;
    errno = 0;
    char *end = NULL;
    long value = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || value < 0 || value > INT_MAX) return 0;
    *out = (int)value;
    return 1;
}

static int env_is_set(const char *name) {
    const char *text = getenv(name);
    return text && *text;
}

/* Tasks in the current srun step, or 0 when this process is not inside a job step. */
static int slurm_step_task_count(void) {
    if (!env_is_set("SLURM_STEP_ID") || !env_is_set("SLURM_PROCID")) return 0;
    int tasks = 0;
    if (read_env_count("SLURM_STEP_NUM_TASKS", &tasks)) return tasks;
    if (read_env_count("SLURM_NTASKS", &tasks)) return tasks;
    return 0;
}

int dt_comm_launched_by_mpi(void) {
    static const char *const launcher_variables[] = {
        "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK", "MV2_COMM_WORLD_SIZE",
    };
    for (size_t i = 0; i < sizeof launcher_variables / sizeof launcher_variables[0]; i++)
        if (env_is_set(launcher_variables[i])) return 1;
    return slurm_step_task_count() > 1;
}

/* The MPI launchers' own variables come before Slurm's: when mpirun runs inside a Slurm job it
 * starts its daemons with srun, so SLURM_PROCID then numbers daemons, not ranks. */
int dt_comm_env_rank(void) {
    static const char *const rank_variables[] = {
        "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK", "SLURM_PROCID",
    };
    for (size_t i = 0; i < sizeof rank_variables / sizeof rank_variables[0]; i++) {
        int rank = 0;
        if (read_env_count(rank_variables[i], &rank)) return rank;
    }
    return 0;
}

int dt_comm_env_size(void) {
    static const char *const size_variables[] = {
        "OMPI_COMM_WORLD_SIZE",
        "PMI_SIZE",
        "MV2_COMM_WORLD_SIZE",
    };
    for (size_t i = 0; i < sizeof size_variables / sizeof size_variables[0]; i++) {
        int size = 0;
        if (read_env_count(size_variables[i], &size) && size > 0) return size;
    }
    return slurm_step_task_count();
}

/* True when some MPI launcher (mpirun, or srun with a PMIx/PMI plugin) set up this process. */
static int mpi_launcher_variables_set(void) {
    static const char *const names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK",
                                        "MV2_COMM_WORLD_SIZE",  "PMI_FD"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (env_is_set(names[i])) return 1;
    return 0;
}

int dt_comm_init(int *argc, char ***argv, dt_comm *comm, dt_error *err) {
    if (!dt_comm_launched_by_mpi()) return dt_comm_single_init(comm);
    /* srun without a PMI plugin (--mpi=none, or a default without one) starts N processes that
     * MPI_Init cannot join; Open MPI then ends with its own unhelpful error */
    if (slurm_step_task_count() > 1 && !mpi_launcher_variables_set())
        return dt_fail_usage(err,
                             "srun started %d tasks without a PMIx environment, so MPI cannot "
                             "connect them: use srun --mpi=pmix (see `srun --mpi=list`), or "
                             "mpirun inside the allocation (cluster/multi-node-mpirun.sbatch)",
                             slurm_step_task_count());
#ifdef DTRAIN_HAVE_MPI
    return dt_comm_mpi_init(argc, argv, comm, err);
#else
    /* Several copies each believing to be rank 0 would all write the same output directory. */
    int launcher_size = dt_comm_env_size();
    if (launcher_size > 1)
        return dt_fail_usage(err,
                             "started by a launcher as one of %d processes, but this dtrain was "
                             "built without MPI (see `dtrain --version`); rebuild with "
                             "-DDTRAIN_MPI=ON or run it as a single process",
                             launcher_size);
    return dt_comm_single_init(comm);
#endif
}
