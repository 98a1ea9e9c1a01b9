/* The host device comm: gradients in host memory (CPU backend) or a single rank. Each
 * all-reduce waits for the backend's queued work and sums over the host comm (MPI), so it is
 * complete when it returns and wait/drain have nothing left to do. */
#include "dtrain/device_comm.h"

#include <stdlib.h>

typedef struct host_device_comm {
    dt_comm *host;
    dt_backend backend;
} host_device_comm;

static int host_allreduce_sum_float(void *opaque, float *buffer, size_t count, dt_error *err) {
    host_device_comm *ctx = opaque;
    if (ctx->host->size == 1) return 0;
    if (dt_backend_synchronize(&ctx->backend, err)) return -1;
    return ctx->host->ops->allreduce_float(ctx->host->ctx, buffer, count, DT_REDUCE_SUM, err);
}

static int host_wait(void *opaque, dt_error *err) {
    (void)opaque;
    (void)err;
    return 0;
}

static void host_abort(void *opaque, int exit_code) {
    host_device_comm *ctx = opaque;
    ctx->host->ops->abort(ctx->host->ctx, exit_code);
}

/* host collectives end with the host comm's abort */
static void host_abort_collectives(void *opaque) {
    (void)opaque;
}

static void host_destroy(void *opaque) {
    free(opaque);
}

static const dt_device_comm_ops host_ops = {
    .name = "host",
    .allreduce_sum_float = host_allreduce_sum_float,
    .wait = host_wait,
    .drain = host_wait,
    .abort = host_abort,
    .abort_collectives = host_abort_collectives,
    .destroy = host_destroy,
};

int dt_device_comm_host_create(dt_comm *host, const dt_backend *backend, dt_device_comm *out,
                               dt_error *err) {
    host_device_comm *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return dt_fail(err, "out of memory creating the device comm");
    ctx->host = host;
    ctx->backend = *backend;
    *out = (dt_device_comm){.rank = host->rank, .size = host->size, .ops = &host_ops, .ctx = ctx};
    return 0;
}
