/* The NCCL device comm: one communicator per job (rank 0's unique id broadcast over the host
 * comm), gradient all-reduces queued on a communication stream that waits for the compute
 * stream at each bucket (so they overlap the rest of backward) and that the compute stream
 * waits for before the optimizer. The host never blocks on the newest all-reduce inside a step:
 * wait() polls the previous step's. Every NCCL or CUDA failure, an asynchronous NCCL error
 * (ncclCommGetAsyncError) or an all-reduce outlasting the deadline ends the job: ncclCommAbort,
 * then the host comm's abort, so no rank is left hanging in a collective. The NCCL and CUDA
 * calls go through dt_nccl_api so that tests can stand in for them. */
#include "dtrain/device_comm.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "dtrain/platform.h"

typedef struct nccl_device_comm {
    dt_comm *host;
    dt_backend backend; /* its host waits poll nccl_wait_check */
    atomic_int aborted; /* ncclCommAbort done (abort_collectives): never destroy the comm */
    const dt_nccl_api *api;
    double timeout_s;
    void *comm;
    void *compute_stream, *comm_stream;
    void *ready_event;    /* recorded on the compute stream before each bucket */
    void *done_event[2];  /* recorded on the comm stream by wait(), alternately */
    int done_recorded[2]; /* done_event[i] has been recorded (and not yet seen complete) */
    int next_done;        /* the done_event that wait() records next */
    int issued;           /* all-reduces queued since the last done record */
} nccl_device_comm;

/* Ends the job: every rank's NCCL work is aborted with the communicator, then the host comm's
 * abort ends the processes. */
static void nccl_abort_collectives(void *opaque) {
    nccl_device_comm *ctx = opaque;
    if (ctx->comm && !atomic_exchange(&ctx->aborted, 1)) ctx->api->comm_abort(ctx->comm);
}

static void nccl_fatal(nccl_device_comm *ctx, const dt_error *err) {
    fprintf(stderr, "dtrain: rank %d: error: NCCL gradient all-reduce: %s; ending the job\n",
            ctx->host->rank, err->message);
    fflush(NULL);
    nccl_abort_collectives(ctx);
    ctx->host->ops->abort(ctx->host->ctx, DT_EXIT_RUNTIME);
    exit(DT_EXIT_RUNTIME); /* abort does not return; this only keeps the promise if it did */
}

static void pause_briefly(void) {
    struct timespec pause = {0, 200 * 1000};
    nanosleep(&pause, NULL);
}

/* Polls until the work before event has completed; an asynchronous error or the deadline ends
 * the job. */
static void poll_complete(nccl_device_comm *ctx, void *event) {
    dt_error err = {{0}, 0};
    double start = dt_monotonic_seconds();
    for (;;) {
        int done = 0, failed = 0;
        if (ctx->api->event_query(event, &done, &err)) nccl_fatal(ctx, &err);
        if (done) return;
        if (ctx->api->comm_get_async_error(ctx->comm, &failed, &err) || failed)
            nccl_fatal(ctx, &err);
        if (dt_monotonic_seconds() - start > ctx->timeout_s) {
            dt_fail(&err,
                    "an all-reduce did not complete within %g s (DTRAIN_NCCL_TIMEOUT_S): a peer "
                    "is hung or gone",
                    ctx->timeout_s);
            nccl_fatal(ctx, &err);
        }
        pause_briefly();
    }
}

/* The backend's host waits (a read at a log line, a download, the input copy) poll this: they
 * may wait on work ordered after an all-reduce, so they get its deadline and error check. */
static int nccl_wait_check(void *user, double waited_seconds, dt_error *err) {
    nccl_device_comm *ctx = user;
    int failed = 0;
    if (ctx->api->comm_get_async_error(ctx->comm, &failed, err) || failed) nccl_fatal(ctx, err);
    if (waited_seconds > ctx->timeout_s) {
        dt_fail(err,
                "the GPU did not finish its work within %g s (DTRAIN_NCCL_TIMEOUT_S): a peer of "
                "its all-reduce is hung or gone",
                ctx->timeout_s);
        nccl_fatal(ctx, err);
    }
    return 0;
}

static int nccl_allreduce_sum_float(void *opaque, float *buffer, size_t count, dt_error *err) {
    nccl_device_comm *ctx = opaque;
    const dt_nccl_api *api = ctx->api;
    (void)err;
    dt_error failure = {{0}, 0};
    if (api->event_record(ctx->ready_event, ctx->compute_stream, &failure) ||
        api->stream_wait_event(ctx->comm_stream, ctx->ready_event, &failure) ||
        api->all_reduce_sum_float(buffer, count, ctx->comm, ctx->comm_stream, &failure))
        nccl_fatal(ctx, &failure);
    ctx->issued = 1;
    return 0;
}

/* Records a done event after the queued all-reduces and orders the compute stream after it;
 * returns the index of the event recorded before it (-1: none). */
static int record_done(nccl_device_comm *ctx) {
    const dt_nccl_api *api = ctx->api;
    int current = ctx->next_done, previous = 1 - current;
    if (!ctx->issued) return -1;
    dt_error failure = {{0}, 0};
    if (api->event_record(ctx->done_event[current], ctx->comm_stream, &failure) ||
        api->stream_wait_event(ctx->compute_stream, ctx->done_event[current], &failure))
        nccl_fatal(ctx, &failure);
    ctx->done_recorded[current] = 1;
    ctx->issued = 0;
    ctx->next_done = previous;
    return ctx->done_recorded[previous] ? previous : -1;
}

static int nccl_wait(void *opaque, dt_error *err) {
    nccl_device_comm *ctx = opaque;
    (void)err;
    /* the previous step's all-reduces: by now normally long done; a hang is caught here */
    int previous = record_done(ctx);
    if (previous >= 0) {
        poll_complete(ctx, ctx->done_event[previous]);
        ctx->done_recorded[previous] = 0;
    }
    return 0;
}

static int nccl_drain(void *opaque, dt_error *err) {
    nccl_device_comm *ctx = opaque;
    (void)err;
    record_done(ctx);
    for (int i = 0; i < 2; i++)
        if (ctx->done_recorded[i]) {
            poll_complete(ctx, ctx->done_event[i]);
            ctx->done_recorded[i] = 0;
        }
    return 0;
}

static void nccl_abort(void *opaque, int exit_code) {
    nccl_abort_collectives(opaque);
    ((nccl_device_comm *)opaque)
        ->host->ops->abort(((nccl_device_comm *)opaque)->host->ctx, exit_code);
}

static void nccl_destroy(void *opaque) {
    nccl_device_comm *ctx = opaque;
    if (!ctx) return;
    const dt_nccl_api *api = ctx->api;
    if (ctx->backend.ops) dt_backend_set_wait_check(&ctx->backend, NULL, NULL);
    if (ctx->comm && !atomic_load(&ctx->aborted)) api->comm_destroy(ctx->comm);
    for (int i = 0; i < 2; i++)
        if (ctx->done_event[i]) api->event_destroy(ctx->done_event[i]);
    if (ctx->ready_event) api->event_destroy(ctx->ready_event);
    if (ctx->comm_stream) api->stream_destroy(ctx->comm_stream);
    free(ctx);
}

static const dt_device_comm_ops nccl_ops = {
    .name = "nccl",
    .allreduce_sum_float = nccl_allreduce_sum_float,
    .wait = nccl_wait,
    .drain = nccl_drain,
    .abort = nccl_abort,
    .abort_collectives = nccl_abort_collectives,
    .destroy = nccl_destroy,
};

/* Rank 0 makes the unique id and broadcasts it over the host comm, behind a flag byte that says
 * whether it could, so that every rank fails (rather than waits) when it could not. */
static int share_unique_id(dt_comm *host, const dt_nccl_api *api, unsigned char *message,
                           dt_error *err) {
    dt_error id_err = {{0}, 0};
    if (host->rank == 0) message[0] = api->get_unique_id(message + 1, &id_err) == 0;
    if (host->ops->broadcast(host->ctx, message, api->unique_id_bytes + 1, 0, err))
        return dt_error_prefix(err, "sharing the NCCL unique id");
    if (message[0]) return 0;
    if (host->rank == 0) {
        *err = id_err;
        return dt_error_prefix(err, "creating the NCCL unique id");
    }
    return dt_fail(err, "rank 0 could not create the NCCL unique id (see its message)");
}

int dt_device_comm_nccl_create(dt_comm *host, const dt_backend *backend, int device,
                               const dt_nccl_api *api, double timeout_s, dt_device_comm *out,
                               dt_error *err) {
    nccl_device_comm *ctx = calloc(1, sizeof *ctx);
    unsigned char *message = calloc(1, api->unique_id_bytes + 1);
    if (!ctx || !message) {
        free(ctx);
        free(message);
        return dt_fail(err, "out of memory creating the NCCL comm");
    }
    ctx->host = host;
    ctx->api = api;
    ctx->timeout_s = timeout_s;
    ctx->compute_stream = dt_backend_compute_stream(backend);
    int rc = share_unique_id(host, api, message, err);
    if (rc == 0 &&
        api->comm_init_rank(&ctx->comm, host->size, message + 1, host->rank, device, err))
        rc = dt_error_prefix(err, "rank %d of %d on GPU %d", host->rank, host->size, device);
    free(message);
    if (rc == 0 &&
        (api->stream_create(&ctx->comm_stream, err) || api->event_create(&ctx->ready_event, err) ||
         api->event_create(&ctx->done_event[0], err) ||
         api->event_create(&ctx->done_event[1], err)))
        rc = dt_error_prefix(err, "creating the NCCL comm's stream and events");
    if (rc) {
        nccl_destroy(ctx);
        return -1;
    }
    ctx->backend = *backend;
    dt_backend_set_wait_check(backend, nccl_wait_check, ctx);
    *out = (dt_device_comm){.rank = host->rank, .size = host->size, .ops = &nccl_ops, .ctx = ctx};
    return 0;
}
