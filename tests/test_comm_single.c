/* Tests the single-process communication layer (rank 0 of 1: reductions keep values, broadcast
 * needs root 0, all-gather copies, abort exits with its code) and the launcher detection that
 * decides between it and MPI. */
#include "dtrain/comm.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

/* Every variable the launcher detection reads; cleared before each scenario. */
static const char *const launcher_variables[] = {
    "OMPI_COMM_WORLD_SIZE",
    "OMPI_COMM_WORLD_RANK",
    "PMI_SIZE",
    "PMI_RANK",
    "PMIX_RANK",
    "MV2_COMM_WORLD_SIZE",
    "MV2_COMM_WORLD_RANK",
    "SLURM_STEP_ID",
    "SLURM_PROCID",
    "SLURM_STEP_NUM_TASKS",
    "PMI_FD",
    "SLURM_NTASKS",
    "SLURM_JOB_ID",
};

static void clear_launcher_environment(void) {
    for (size_t i = 0; i < sizeof launcher_variables / sizeof launcher_variables[0]; i++)
        unsetenv(launcher_variables[i]);
}

static void test_single_identity(void) {
    dt_comm comm;
    memset(&comm, 0xff, sizeof comm);
    CHECK_INT_EQ(dt_comm_single_init(&comm), 0);
    CHECK_INT_EQ(comm.rank, 0);
    CHECK_INT_EQ(comm.size, 1);
    CHECK_INT_EQ(comm.local_rank, 0);
    CHECK_INT_EQ(comm.local_size, 1);
    CHECK_STR_EQ(comm.ops->name, "single");
}

static void test_single_reductions_keep_values(void) {
    dt_comm comm;
    dt_comm_single_init(&comm);
    dt_error err = {0};
    float floats[5] = {1.5f, -2.25f, 0.0f, 3e30f, 1e-30f};
    const float floats_before[5] = {1.5f, -2.25f, 0.0f, 3e30f, 1e-30f};
    CHECK_INT_EQ(comm.ops->allreduce_float(comm.ctx, floats, 5, DT_REDUCE_SUM, &err), 0);
    CHECK(memcmp(floats, floats_before, sizeof floats) == 0);
    CHECK_INT_EQ(comm.ops->allreduce_float(comm.ctx, floats, 5, DT_REDUCE_AVG, &err), 0);
    CHECK(memcmp(floats, floats_before, sizeof floats) == 0);
    CHECK_INT_EQ(comm.ops->allreduce_float(comm.ctx, NULL, 0, DT_REDUCE_AVG, &err), 0);

    double doubles[3] = {0.1, 1e300, -7.0};
    CHECK_INT_EQ(comm.ops->allreduce_double(comm.ctx, doubles, 3, DT_REDUCE_AVG, &err), 0);
    CHECK_CLOSE(doubles[0], 0.1, 0, 0);
    CHECK_CLOSE(doubles[1], 1e300, 0, 0);
    CHECK_CLOSE(doubles[2], -7.0, 0, 0);
    CHECK_INT_EQ(comm.ops->allreduce_double(comm.ctx, doubles, 3, DT_REDUCE_SUM, &err), 0);
    CHECK_CLOSE(doubles[2], -7.0, 0, 0);

    CHECK_INT_EQ(comm.ops->allreduce_float(comm.ctx, floats, 5, (dt_reduce_op)42, &err), -1);
    CHECK_MSG(strstr(err.message, "unknown reduction") != NULL, "message: %s", err.message);
}

static void test_single_broadcast_and_barrier(void) {
    dt_comm comm;
    dt_comm_single_init(&comm);
    dt_error err = {0};
    char text[] = "unchanged";
    CHECK_INT_EQ(comm.ops->broadcast(comm.ctx, text, sizeof text, 0, &err), 0);
    CHECK_STR_EQ(text, "unchanged");
    CHECK_INT_EQ(comm.ops->broadcast(comm.ctx, text, sizeof text, 1, &err), -1);
    CHECK_MSG(strstr(err.message, "root rank 1") != NULL, "message: %s", err.message);
    CHECK_INT_EQ(err.exit_code, DT_EXIT_RUNTIME);
    CHECK_INT_EQ(comm.ops->barrier(comm.ctx, &err), 0);
}

static void test_single_allgather_copies(void) {
    dt_comm comm;
    dt_comm_single_init(&comm);
    dt_error err = {0};
    const int send[4] = {7, -1, 123456, 42};
    int recv[6] = {0, 0, 0, 0, 99, 99};
    CHECK_INT_EQ(comm.ops->allgather(comm.ctx, send, recv, sizeof send, &err), 0);
    CHECK_INT_EQ(recv[0], 7);
    CHECK_INT_EQ(recv[1], -1);
    CHECK_INT_EQ(recv[2], 123456);
    CHECK_INT_EQ(recv[3], 42);
    CHECK_INT_EQ(recv[4], 99); /* nothing written past size * bytes */
    CHECK_INT_EQ(comm.ops->allgather(comm.ctx, send, recv, 0, &err), 0);
}

/* abort must end the process with the given code, even with output still buffered. */
static void test_single_abort_exits_with_code(void) {
    fflush(NULL);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        dt_comm comm;
        dt_comm_single_init(&comm);
        comm.ops->abort(comm.ctx, 7);
        _exit(99); /* not reached when abort works */
    }
    int status = 0;
    CHECK_INT_EQ(waitpid(child, &status, 0), child);
    CHECK(WIFEXITED(status));
    CHECK_INT_EQ(WEXITSTATUS(status), 7);
}

static void test_launcher_detection(void) {
    clear_launcher_environment();
    CHECK_INT_EQ(dt_comm_launched_by_mpi(), 0);
    CHECK_INT_EQ(dt_comm_env_rank(), 0);
    CHECK_INT_EQ(dt_comm_env_size(), 0);

    setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
    setenv("OMPI_COMM_WORLD_RANK", "3", 1);
    CHECK_INT_EQ(dt_comm_launched_by_mpi(), 1);
    CHECK_INT_EQ(dt_comm_env_rank(), 3);
    CHECK_INT_EQ(dt_comm_env_size(), 4);
    clear_launcher_environment();

    setenv("PMIX_RANK", "5", 1);
    CHECK_INT_EQ(dt_comm_launched_by_mpi(), 1);
    CHECK_INT_EQ(dt_comm_env_rank(), 5);
    clear_launcher_environment();

    setenv("PMI_RANK", "2", 1);
    setenv("PMI_SIZE", "8", 1);
    CHECK_INT_EQ(dt_comm_launched_by_mpi(), 1);
    CHECK_INT_EQ(dt_comm_env_rank(), 2);
    CHECK_INT_EQ(dt_comm_env_size(), 8);
    clear_launcher_environment();

    setenv("MV2_COMM_WORLD_SIZE", "2", 1);
    setenv("MV2_COMM_WORLD_RANK", "1", 1);
    CHECK_INT_EQ(dt_comm_launched_by_mpi(), 1);
    CHECK_INT_EQ(dt_comm_env_rank(), 1);
    clear_launcher_environment();

    /* An salloc shell or a batch script: a job, no step. */
    setenv("SLURM_JOB_ID", "1234", 1);
    setenv("SLURM_NTASKS", "4", 1);
    CHECK_INT_EQ(dt_comm_launched_by_mpi(), 0);
    CHECK_INT_EQ(dt_comm_env_size(), 0);
    /* srun -n 4 without an MPI plugin: a step of four tasks. */
    setenv("SLURM_STEP_ID", "0", 1);
    setenv("SLURM_PROCID", "3", 1);
    setenv("SLURM_STEP_NUM_TASKS", "4", 1);
    CHECK_INT_EQ(dt_comm_launched_by_mpi(), 1);
    CHECK_INT_EQ(dt_comm_env_rank(), 3);
    CHECK_INT_EQ(dt_comm_env_size(), 4);
    /* srun -n 1: a one-task step runs single. */
    setenv("SLURM_STEP_NUM_TASKS", "1", 1);
    setenv("SLURM_PROCID", "0", 1);
    CHECK_INT_EQ(dt_comm_launched_by_mpi(), 0);
    clear_launcher_environment();

    /* mpirun inside a Slurm job: Open MPI's numbers win over the daemons' Slurm ones. */
    setenv("SLURM_STEP_ID", "1", 1);
    setenv("SLURM_PROCID", "1", 1);
    setenv("SLURM_STEP_NUM_TASKS", "2", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "8", 1);
    setenv("OMPI_COMM_WORLD_RANK", "6", 1);
    CHECK_INT_EQ(dt_comm_env_rank(), 6);
    CHECK_INT_EQ(dt_comm_env_size(), 8);
    clear_launcher_environment();

    /* Garbage is ignored, not half-parsed. */
    setenv("OMPI_COMM_WORLD_RANK", "3x", 1);
    setenv("SLURM_PROCID", "-1", 1);
    CHECK_INT_EQ(dt_comm_env_rank(), 0);
    setenv("OMPI_COMM_WORLD_SIZE", "", 1);
    CHECK_INT_EQ(dt_comm_launched_by_mpi(), 0);
    clear_launcher_environment();
}

/* Started plainly, dt_comm_init picks the single layer (and so makes no MPI call at all). */
static void test_init_without_launcher_is_single(void) {
    clear_launcher_environment();
    dt_comm comm;
    dt_error err = {0};
    int argc = 1;
    char program[] = "test_comm_single";
    char *args[] = {program, NULL};
    char **argv = args;
    CHECK_INT_EQ(dt_comm_init(&argc, &argv, &comm, &err), 0);
    CHECK_STR_EQ(comm.ops->name, "single");
    CHECK_INT_EQ(comm.size, 1);
    CHECK_INT_EQ(argc, 1);
    comm.ops->finalize(comm.ctx);
}

/* srun -n 2 without a PMIx/PMI plugin: refused before MPI_Init (exit 2, the advice named). */
static void test_srun_without_pmix_refuses(void) {
    clear_launcher_environment();
    setenv("SLURM_JOB_ID", "1234", 1);
    setenv("SLURM_STEP_ID", "0", 1);
    setenv("SLURM_PROCID", "1", 1);
    setenv("SLURM_STEP_NUM_TASKS", "2", 1);
    dt_comm comm;
    dt_error err = {0};
    CHECK_INT_EQ(dt_comm_init(NULL, NULL, &comm, &err), -1);
    CHECK_INT_EQ(err.exit_code, DT_EXIT_USAGE);
    CHECK_MSG(strstr(err.message, "use srun --mpi=pmix") != NULL, "message: %s", err.message);
    CHECK_MSG(strstr(err.message, "pmi2") == NULL, "message: %s", err.message);
    clear_launcher_environment();
}

#ifndef DTRAIN_HAVE_MPI
/* Without MPI, copies started as ranks of a bigger job must refuse rather than all act as rank 0
 * of 1 and write the same output directory. */
static void test_init_launched_without_mpi_refuses(void) {
    clear_launcher_environment();
    setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
    setenv("OMPI_COMM_WORLD_RANK", "1", 1);
    dt_comm comm;
    dt_error err = {0};
    CHECK_INT_EQ(dt_comm_init(NULL, NULL, &comm, &err), -1);
    CHECK_INT_EQ(err.exit_code, DT_EXIT_USAGE);
    CHECK_MSG(strstr(err.message, "built without MPI") != NULL, "message: %s", err.message);
    setenv("OMPI_COMM_WORLD_SIZE", "1", 1);
    CHECK_INT_EQ(dt_comm_init(NULL, NULL, &comm, &err), 0);
    CHECK_STR_EQ(comm.ops->name, "single");
    clear_launcher_environment();
}
#endif

int main(void) {
    test_single_identity();
    test_single_reductions_keep_values();
    test_single_broadcast_and_barrier();
    test_single_allgather_copies();
    test_single_abort_exits_with_code();
    test_launcher_detection();
    test_init_without_launcher_is_single();
    test_srun_without_pmix_refuses();
#ifndef DTRAIN_HAVE_MPI
    test_init_launched_without_mpi_refuses();
#endif
    return dt_test_summary("comm_single");
}
