/* The MPI communication layer (CPU backend, and the bootstrap for NCCL later): world and
 * node-local ranks, in-place sum/average all-reduce, broadcast and all-gather split into chunks
 * that fit MPI's int counts, and an abort that ends every rank. MPI errors are returned (never
 * fatal inside MPI) and become dt_error messages carrying MPI_Error_string. */
#include "dtrain/comm.h"

#include <limits.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mpi_context {
    MPI_Comm world;       /* our own duplicate of MPI_COMM_WORLD, errors returned */
    int size;             /* ranks in world */
    size_t chunk_limit;   /* most elements (or bytes) passed to one MPI call */
    int initialized_here; /* we called MPI_Init_thread, so we call MPI_Finalize */
} mpi_context;

static const dt_comm_ops mpi_ops;

/* Formats "context: MPI's error text" into err and returns -1. */
static int mpi_fail(dt_error *err, int mpi_code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int mpi_fail(dt_error *err, int mpi_code, const char *fmt, ...) {
    char context[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(context, sizeof context, fmt, args);
    va_end(args);
    char mpi_text[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (MPI_Error_string(mpi_code, mpi_text, &length) != MPI_SUCCESS)
        snprintf(mpi_text, sizeof mpi_text, "MPI error code %d", mpi_code);
    return dt_fail(err, "%s: %s", context, mpi_text);
}

static size_t smaller(size_t a, size_t b) {
    return a < b ? a : b;
}

/* In-place MPI_SUM over `count` elements of `type`, at most chunk_limit elements per call. */
static int allreduce_sum_in_chunks(mpi_context *ctx, void *buffer, size_t count, MPI_Datatype type,
                                   size_t element_size, const char *type_name, dt_error *err) {
    char *bytes = buffer;
    for (size_t done = 0; done < count;) {
        size_t chunk = smaller(count - done, ctx->chunk_limit);
        int rc = MPI_Allreduce(MPI_IN_PLACE, bytes + done * element_size, (int)chunk, type, MPI_SUM,
                               ctx->world);
        if (rc != MPI_SUCCESS)
            return mpi_fail(err, rc, "MPI_Allreduce of %s %zu..%zu of %zu", type_name, done,
                            done + chunk, count);
        done += chunk;
    }
    return 0;
}

static int check_reduce_op(dt_reduce_op op, dt_error *err) {
    if (op != DT_REDUCE_SUM && op != DT_REDUCE_AVG)
        return dt_fail(err, "allreduce: unknown reduction %d", (int)op);
    return 0;
}

/* The average divides the sum (rather than multiplying by 1/size) so that it is the correctly
 * rounded quotient: ranks that all hold x get x back whenever their sum is exact. */
static int mpi_allreduce_float(void *opaque, float *buffer, size_t count, dt_reduce_op op,
                               dt_error *err) {
    mpi_context *ctx = opaque;
    if (check_reduce_op(op, err)) return -1;
    if (allreduce_sum_in_chunks(ctx, buffer, count, MPI_FLOAT, sizeof *buffer, "floats", err))
        return -1;
    if (op == DT_REDUCE_AVG) {
        float ranks = (float)ctx->size;
        for (size_t i = 0; i < count; i++) buffer[i] /= ranks;
    }
    return 0;
}

static int mpi_allreduce_double(void *opaque, double *buffer, size_t count, dt_reduce_op op,
                                dt_error *err) {
    mpi_context *ctx = opaque;
    if (check_reduce_op(op, err)) return -1;
    if (allreduce_sum_in_chunks(ctx, buffer, count, MPI_DOUBLE, sizeof *buffer, "doubles", err))
        return -1;
    if (op == DT_REDUCE_AVG) {
        double ranks = (double)ctx->size;
        for (size_t i = 0; i < count; i++) buffer[i] /= ranks;
    }
    return 0;
}

static int mpi_broadcast(void *opaque, void *buffer, size_t bytes, int root, dt_error *err) {
    mpi_context *ctx = opaque;
    if (root < 0 || root >= ctx->size)
        return dt_fail(err, "broadcast: root rank %d does not exist (%d ranks)", root, ctx->size);
    char *data = buffer;
    for (size_t done = 0; done < bytes;) {
        size_t chunk = smaller(bytes - done, ctx->chunk_limit);
        int rc = MPI_Bcast(data + done, (int)chunk, MPI_BYTE, root, ctx->world);
        if (rc != MPI_SUCCESS)
            return mpi_fail(err, rc, "MPI_Bcast from rank %d of bytes %zu..%zu of %zu", root, done,
                            done + chunk, bytes);
        done += chunk;
    }
    return 0;
}

/* Gathers bytes [offset, offset + chunk) of every rank's block: the receive type is `chunk`
 * bytes whose extent is a whole block, so rank r's piece lands at recv + offset + r * bytes. */
static int allgather_piece(mpi_context *ctx, const char *send, char *recv, size_t bytes,
                           size_t offset, size_t chunk, dt_error *err) {
    MPI_Datatype piece, block_strided;
    int rc = MPI_Type_contiguous((int)chunk, MPI_BYTE, &piece);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Type_contiguous(%zu bytes)", chunk);
    rc = MPI_Type_create_resized(piece, 0, (MPI_Aint)bytes, &block_strided);
    MPI_Type_free(&piece);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Type_create_resized(%zu)", bytes);
    rc = MPI_Type_commit(&block_strided);
    if (rc == MPI_SUCCESS)
        rc = MPI_Allgather(send + offset, (int)chunk, MPI_BYTE, recv + offset, 1, block_strided,
                           ctx->world);
    MPI_Type_free(&block_strided);
    if (rc != MPI_SUCCESS)
        return mpi_fail(err, rc, "MPI_Allgather of bytes %zu..%zu of %zu per rank", offset,
                        offset + chunk, bytes);
    return 0;
}

static int mpi_allgather(void *opaque, const void *send, void *recv, size_t bytes, dt_error *err) {
    mpi_context *ctx = opaque;
    if (bytes == 0) return 0;
    if (bytes <= ctx->chunk_limit) {
        int rc = MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, ctx->world);
        if (rc != MPI_SUCCESS)
            return mpi_fail(err, rc, "MPI_Allgather of %zu bytes per rank", bytes);
        return 0;
    }
    for (size_t done = 0; done < bytes;) {
        size_t chunk = smaller(bytes - done, ctx->chunk_limit);
        if (allgather_piece(ctx, send, recv, bytes, done, chunk, err)) return -1;
        done += chunk;
    }
    return 0;
}

static int mpi_barrier(void *opaque, dt_error *err) {
    mpi_context *ctx = opaque;
    int rc = MPI_Barrier(ctx->world);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Barrier");
    return 0;
}

static void mpi_abort(void *opaque, int exit_code) {
    fflush(NULL);
    MPI_Abort(MPI_COMM_WORLD, exit_code);
    exit(exit_code); /* MPI_Abort does not return; this only keeps the promise if it did */
}

static void mpi_finalize(void *opaque) {
    mpi_context *ctx = opaque;
    if (!ctx) return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) {
        MPI_Comm_free(&ctx->world);
        if (ctx->initialized_here) MPI_Finalize();
    }
    free(ctx);
}

static const dt_comm_ops mpi_ops = {
    .name = "mpi",
    .allreduce_float = mpi_allreduce_float,
    .allreduce_double = mpi_allreduce_double,
    .broadcast = mpi_broadcast,
    .allgather = mpi_allgather,
    .barrier = mpi_barrier,
    .abort = mpi_abort,
    .finalize = mpi_finalize,
};

static void discard_context(mpi_context *ctx) {
    MPI_Comm_free(&ctx->world);
    free(ctx);
}

/* Ranks sharing this node's memory give the local rank (which picks the GPU), size and the
 * node's identity (its lowest world rank): MPI knows the node, host names may repeat. */
static int find_local_ranks(mpi_context *ctx, int world_rank, dt_comm *comm, dt_error *err) {
    MPI_Comm node;
    int rc =
        MPI_Comm_split_type(ctx->world, MPI_COMM_TYPE_SHARED, world_rank, MPI_INFO_NULL, &node);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)");
    rc = MPI_Comm_rank(node, &comm->local_rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(node, &comm->local_size);
    if (rc == MPI_SUCCESS) rc = MPI_Allreduce(&world_rank, &comm->node, 1, MPI_INT, MPI_MIN, node);
    MPI_Comm_free(&node);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "node-local rank");
    return 0;
}

/* Data loader threads never call MPI, so MPI_THREAD_FUNNELED is all dtrain needs. A library
 * that grants less still runs correctly in practice, as only the main thread communicates. */
int dt_comm_mpi_init(int *argc, char ***argv, dt_comm *comm, dt_error *err) {
    int already_initialized = 0;
    MPI_Initialized(&already_initialized);
    if (!already_initialized) {
        int provided = 0;
        int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Init_thread");
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);

    mpi_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return dt_fail(err, "out of memory for the MPI communicator");
    ctx->initialized_here = !already_initialized;
    ctx->chunk_limit = INT_MAX;
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &ctx->world);
    if (rc != MPI_SUCCESS) {
        free(ctx);
        return mpi_fail(err, rc, "MPI_Comm_dup(MPI_COMM_WORLD)");
    }
    MPI_Comm_set_errhandler(ctx->world, MPI_ERRORS_RETURN);
    rc = MPI_Comm_rank(ctx->world, &comm->rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(ctx->world, &ctx->size);
    if (rc != MPI_SUCCESS) {
        discard_context(ctx);
        return mpi_fail(err, rc, "MPI rank and size");
    }
    comm->size = ctx->size;
    if (find_local_ranks(ctx, comm->rank, comm, err)) {
        discard_context(ctx);
        return -1;
    }

    /* srun without a PMI plugin, or a foreign mpirun, starts N unrelated one-rank worlds. */
    int launcher_size = dt_comm_env_size();
    if (launcher_size > 0 && launcher_size != ctx->size) {
        discard_context(ctx);
        return dt_fail_usage(err,
                             "the launcher started %d processes but MPI sees %d: with srun pass "
                             "--mpi=pmix, with mpirun use the one of the MPI dtrain was built "
                             "with (%s)",
                             launcher_size, comm->size, dt_comm_mpi_library_version());
    }
    comm->ops = &mpi_ops;
    comm->ctx = ctx;
    return 0;
}

void dt_comm_mpi_set_chunk_limit(dt_comm *comm, size_t max_count) {
    if (comm->ops != &mpi_ops) return;
    mpi_context *ctx = comm->ctx;
    if (max_count < 1) max_count = 1;
    if (max_count > INT_MAX) max_count = INT_MAX;
    ctx->chunk_limit = max_count;
}

/* MPI_Get_library_version may be called before MPI_Init. The text is kept in a static buffer
 * (one line, refilled on each call: call it from the main thread). */
const char *dt_comm_mpi_library_version(void) {
    static char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int length = 0;
    if (MPI_Get_library_version(version, &length) != MPI_SUCCESS) {
        snprintf(version, sizeof version, "MPI (unknown library version)");
        return version;
    }
    version[strcspn(version, "\r\n")] = '\0';
    size_t end = strlen(version);
    while (end > 0 && (version[end - 1] == ' ' || version[end - 1] == '\t')) version[--end] = '\0';
    return version;
}
