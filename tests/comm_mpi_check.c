/* Checks the MPI communication layer on a real multi-rank job (registered to run under
 * `mpirun -np 3`; any size >= 2 on one node works): sums and averages with known per-rank values,
 * a 5M-element all-reduce with and without forced chunking, broadcasts from two roots,
 * all-gather order, node-local ranks and the barrier. Rank 0 prints the job-wide
 * "N passed, N failed" line; every rank exits non-zero when any rank failed. */
#include "dtrain/comm.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"

#define LARGE_COUNT 5000000

/* Rank r contributes (r + 1) * weight(i): the job-wide sum is triangle(size) * weight(i). */
static double weight(size_t i) {
    return (double)(i % 7 + 1);
}

static double triangle(int size) {
    return (double)size * (size + 1) / 2.0;
}

static void check_layout(const dt_comm *comm) {
    CHECK_STR_EQ(comm->ops->name, "mpi");
    CHECK(comm->size >= 2);
    CHECK_INT_EQ(comm->size, dt_comm_env_size());
    CHECK_INT_EQ(comm->rank, dt_comm_env_rank());
    CHECK(comm->rank >= 0 && comm->rank < comm->size);
    /* All ranks share one node here. */
    CHECK_INT_EQ(comm->local_size, comm->size);
    CHECK_INT_EQ(comm->local_rank, comm->rank);
    const char *version = dt_comm_mpi_library_version();
    CHECK_MSG(strstr(version, "MPI") != NULL && strchr(version, '\n') == NULL,
              "library version \"%s\"", version);
}

static void check_small_allreduce(const dt_comm *comm) {
    dt_error err = {0};
    enum { N = 10 };
    float sums[N], averages[N];
    double double_sums[N], double_averages[N];
    for (size_t i = 0; i < N; i++) {
        sums[i] = averages[i] = (float)((comm->rank + 1) * weight(i));
        /* quarters and integers are exact in binary, so the expected results are too */
        double_sums[i] = double_averages[i] = (comm->rank + 1) * 0.25 + (double)i;
    }
    CHECK_INT_EQ(comm->ops->allreduce_float(comm->ctx, sums, N, DT_REDUCE_SUM, &err), 0);
    CHECK_INT_EQ(comm->ops->allreduce_float(comm->ctx, averages, N, DT_REDUCE_AVG, &err), 0);
    CHECK_INT_EQ(comm->ops->allreduce_double(comm->ctx, double_sums, N, DT_REDUCE_SUM, &err), 0);
    CHECK_INT_EQ(comm->ops->allreduce_double(comm->ctx, double_averages, N, DT_REDUCE_AVG, &err),
                 0);
    double ranks = comm->size, sum_of_ranks = triangle(comm->size);
    for (size_t i = 0; i < N; i++) {
        CHECK_CLOSE(sums[i], sum_of_ranks * weight(i), 0, 0);
        CHECK_CLOSE(averages[i], (ranks + 1) / 2 * weight(i), 0, 0);
        CHECK_CLOSE(double_sums[i], 0.25 * sum_of_ranks + ranks * (double)i, 0, 0);
        CHECK_CLOSE(double_averages[i], 0.25 * (ranks + 1) / 2 + (double)i, 0, 0);
    }
}

/* Counts elements of a large reduced buffer that differ from rank-sum * weight / divisor. */
static size_t count_wrong(const float *buffer, size_t count, double sum_of_ranks, double divisor) {
    size_t wrong = 0;
    for (size_t i = 0; i < count; i++)
        if (buffer[i] != (float)(sum_of_ranks * weight(i) / divisor)) wrong++;
    return wrong;
}

static void fill_contribution(float *buffer, size_t count, int rank) {
    for (size_t i = 0; i < count; i++) buffer[i] = (float)((rank + 1) * weight(i));
}

static void check_large_allreduce(dt_comm *comm) {
    dt_error err = {0};
    float *buffer = malloc(LARGE_COUNT * sizeof *buffer);
    CHECK(buffer != NULL);
    if (!buffer) return;
    double sum_of_ranks = triangle(comm->size);

    fill_contribution(buffer, LARGE_COUNT, comm->rank);
    CHECK_INT_EQ(comm->ops->allreduce_float(comm->ctx, buffer, LARGE_COUNT, DT_REDUCE_SUM, &err),
                 0);
    CHECK_INT_EQ(count_wrong(buffer, LARGE_COUNT, sum_of_ranks, 1), 0);

    /* A prime chunk limit: five full chunks and a ragged last one. */
    dt_comm_mpi_set_chunk_limit(comm, 999983);
    fill_contribution(buffer, LARGE_COUNT, comm->rank);
    CHECK_INT_EQ(comm->ops->allreduce_float(comm->ctx, buffer, LARGE_COUNT, DT_REDUCE_AVG, &err),
                 0);
    CHECK_INT_EQ(count_wrong(buffer, LARGE_COUNT, sum_of_ranks, comm->size), 0);
    fill_contribution(buffer, LARGE_COUNT, comm->rank);
    CHECK_INT_EQ(comm->ops->allreduce_float(comm->ctx, buffer, LARGE_COUNT, DT_REDUCE_SUM, &err),
                 0);
    CHECK_INT_EQ(count_wrong(buffer, LARGE_COUNT, sum_of_ranks, 1), 0);
    dt_comm_mpi_set_chunk_limit(comm, (size_t)-1);
    free(buffer);
}

static void check_broadcast_from(dt_comm *comm, int root) {
    dt_error err = {0};
    enum { BYTES = 101 };
    unsigned char data[BYTES];
    for (int i = 0; i < BYTES; i++)
        data[i] = comm->rank == root ? (unsigned char)(i * 7 + root) : (unsigned char)0xee;
    CHECK_INT_EQ(comm->ops->broadcast(comm->ctx, data, BYTES, root, &err), 0);
    int wrong = 0;
    for (int i = 0; i < BYTES; i++) wrong += data[i] != (unsigned char)(i * 7 + root);
    CHECK_MSG(wrong == 0, "broadcast from rank %d: %d wrong bytes on rank %d", root, wrong,
              comm->rank);
}

static void check_broadcast(dt_comm *comm) {
    int last = comm->size - 1, second_root = last < 2 ? last : 2;
    check_broadcast_from(comm, 0);
    check_broadcast_from(comm, second_root);
    dt_comm_mpi_set_chunk_limit(comm, 7); /* 101 bytes in 15 pieces */
    check_broadcast_from(comm, 0);
    check_broadcast_from(comm, second_root);
    dt_comm_mpi_set_chunk_limit(comm, (size_t)-1);

    dt_error err = {0};
    char byte = 0;
    CHECK_INT_EQ(comm->ops->broadcast(comm->ctx, &byte, 1, comm->size, &err), -1);
    CHECK_MSG(strstr(err.message, "does not exist") != NULL, "message: %s", err.message);
}

static void check_allgather_once(dt_comm *comm) {
    dt_error err = {0};
    int send[3] = {comm->rank, comm->rank * 10 + 1, -comm->rank - 5};
    int *recv = calloc((size_t)comm->size * 3, sizeof *recv);
    CHECK(recv != NULL);
    if (!recv) return;
    CHECK_INT_EQ(comm->ops->allgather(comm->ctx, send, recv, sizeof send, &err), 0);
    int wrong = 0;
    for (int r = 0; r < comm->size; r++)
        wrong += recv[3 * r] != r || recv[3 * r + 1] != r * 10 + 1 || recv[3 * r + 2] != -r - 5;
    CHECK_MSG(wrong == 0, "allgather: %d blocks out of order on rank %d", wrong, comm->rank);
    free(recv);
}

static void check_allgather(dt_comm *comm) {
    check_allgather_once(comm);
    dt_comm_mpi_set_chunk_limit(comm, 5); /* 12-byte blocks gathered 5 + 5 + 2 bytes at a time */
    check_allgather_once(comm);
    dt_comm_mpi_set_chunk_limit(comm, (size_t)-1);
    dt_error err = {0};
    CHECK_INT_EQ(comm->ops->allgather(comm->ctx, NULL, NULL, 0, &err), 0);
}

static void check_barrier(dt_comm *comm) {
    dt_error err = {0};
    for (int i = 0; i < 3; i++) CHECK_INT_EQ(comm->ops->barrier(comm->ctx, &err), 0);
}

int main(int argc, char **argv) {
    dt_comm comm;
    dt_error err = {0};
    if (dt_comm_init(&argc, &argv, &comm, &err)) {
        fprintf(stderr, "comm_mpi_check: %s\n", err.message);
        return 1;
    }
    if (strcmp(comm.ops->name, "mpi") != 0) {
        fprintf(stderr, "comm_mpi_check: not started by an MPI launcher (got \"%s\")\n",
                comm.ops->name);
        return 1;
    }
    check_layout(&comm);
    check_small_allreduce(&comm);
    check_large_allreduce(&comm);
    check_broadcast(&comm);
    check_allgather(&comm);
    check_barrier(&comm);

    double totals[2] = {dt_test_passed, dt_test_failed};
    if (comm.ops->allreduce_double(comm.ctx, totals, 2, DT_REDUCE_SUM, &err)) {
        fprintf(stderr, "comm_mpi_check: rank %d: %s\n", comm.rank, err.message);
        comm.ops->abort(comm.ctx, 1);
    }
    int exit_code = totals[1] == 0 ? 0 : 1;
    if (comm.rank == 0) {
        dt_test_passed = (int)totals[0];
        dt_test_failed = (int)totals[1];
        printf("(%d ranks) ", comm.size);
        exit_code = dt_test_summary("comm_mpi");
    }
    comm.ops->finalize(comm.ctx);
    return exit_code;
}
