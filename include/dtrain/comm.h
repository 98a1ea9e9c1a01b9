/* The communication layer: one small interface with a single-process implementation, an MPI
 * implementation (CPU backend) and, with the CUDA backend, an NCCL one. Buffers passed to
 * allreduce/broadcast live where the active backend keeps its flat buffers (host for CPU). */
#ifndef DTRAIN_COMM_H
#define DTRAIN_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "dtrain/error.h"

typedef enum { DT_REDUCE_SUM, DT_REDUCE_AVG } dt_reduce_op;

typedef struct dt_comm_ops {
    const char *name; /* "single", "mpi" (NCCL is a device comm: device_comm.h) */
    int (*allreduce_float)(void *ctx, float *buffer, size_t count, dt_reduce_op op, dt_error *err);
    int (*allreduce_double)(void *ctx, double *buffer, size_t count, dt_reduce_op op,
                            dt_error *err); /* host memory: metrics */
    int (*broadcast)(void *ctx, void *buffer, size_t bytes, int root, dt_error *err);
    /* host memory: every rank's bytes, in rank order, into recv (size * bytes) */
    int (*allgather)(void *ctx, const void *send, void *recv, size_t bytes, dt_error *err);
    int (*barrier)(void *ctx, dt_error *err);
    /* ends every rank of the job with this exit code; does not return */
    void (*abort)(void *ctx, int exit_code);
    void (*finalize)(void *ctx);
} dt_comm_ops;

typedef struct dt_comm {
    int rank, size;             /* world */
    int local_rank, local_size; /* ranks on this node */
    int node; /* the lowest world rank on this node: equal for the ranks that share a node */
    const dt_comm_ops *ops;
    void *ctx;
} dt_comm;

/* Chooses MPI when built with it and started by a launcher (mpirun, srun), else a single
 * process. Never initialises MPI when no launcher started us. Fails (usage error) when started
 * as one of several ranks by a build without MPI, or when MPI's world size differs from the
 * launcher's (srun without --mpi=pmix, another MPI's mpirun). The launch rule: src/comm/comm.c. */
int dt_comm_init(int *argc, char ***argv, dt_comm *comm, dt_error *err);

/* True when the environment says a launcher started this process (before dt_comm_init). */
int dt_comm_launched_by_mpi(void);
/* Rank as the launcher's environment says, or 0 (for error printing before init). */
int dt_comm_env_rank(void);
/* Number of ranks the launcher's environment announces, or 0 when it does not say. */
int dt_comm_env_size(void);

int dt_comm_single_init(dt_comm *comm);
#ifdef DTRAIN_HAVE_MPI
int dt_comm_mpi_init(int *argc, char ***argv, dt_comm *comm, dt_error *err);
const char *dt_comm_mpi_library_version(void);
/* Largest element (or byte) count handed to one MPI call; bigger transfers go in chunks of at
 * most this many. Defaults to INT_MAX; tests lower it to exercise the chunking. Clamped to
 * [1, INT_MAX]. Only for a comm made by dt_comm_mpi_init. */
void dt_comm_mpi_set_chunk_limit(dt_comm *comm, size_t max_count);
#endif

#endif
