/* The single-process communication layer: rank 0 of 1. Reductions over one rank leave the data
 * as it is (the sum and the average of one value are that value), a broadcast from rank 0 has
 * nothing to send, an all-gather copies, and abort simply exits. */
#include "dtrain/comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int single_allreduce_float(void *ctx, float *buffer, size_t count, dt_reduce_op op,
                                  dt_error *err) {
    if (op != DT_REDUCE_SUM && op != DT_REDUCE_AVG)
        return dt_fail(err, "allreduce: unknown reduction %d", (int)op);
    return 0;
}

static int single_allreduce_double(void *ctx, double *buffer, size_t count, dt_reduce_op op,
                                   dt_error *err) {
    if (op != DT_REDUCE_SUM && op != DT_REDUCE_AVG)
        return dt_fail(err, "allreduce: unknown reduction %d", (int)op);
    return 0;
}

static int single_broadcast(void *ctx, void *buffer, size_t bytes, int root, dt_error *err) {
    if (root != 0) return dt_fail(err, "broadcast: root rank %d does not exist (1 rank)", root);
    return 0;
}

static int single_allgather(void *ctx, const void *send, void *recv, size_t bytes, dt_error *err) {
    if (bytes > 0 && send != recv) memmove(recv, send, bytes);
    return 0;
}

static int single_barrier(void *ctx, dt_error *err) {
    return 0;
}

static void single_abort(void *ctx, int exit_code) {
    fflush(NULL);
    exit(exit_code);
}

static void single_finalize(void *ctx) {}

static const dt_comm_ops single_ops = {
    .name = "single",
    .allreduce_float = single_allreduce_float,
    .allreduce_double = single_allreduce_double,
    .broadcast = single_broadcast,
    .allgather = single_allgather,
    .barrier = single_barrier,
    .abort = single_abort,
    .finalize = single_finalize,
};

int dt_comm_single_init(dt_comm *comm) {
    comm->rank = 0;
    comm->size = 1;
    comm->local_rank = 0;
    comm->local_size = 1;
    comm->node = 0;
    comm->ops = &single_ops;
    comm->ctx = NULL;
    return 0;
}
