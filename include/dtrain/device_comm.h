/* Collectives on gradients in backend memory (the device comm), beside the host comm of comm.h
 * that keeps metrics, hashes, flags and weight broadcasts. Created after the backend (the host
 * comm exists first: it gives the ranks and carries NCCL's unique id). Two implementations:
 *  - host: the backend's buffers are host memory (CPU) or there is one rank: the host comm's
 *    all-reduce, done when the call returns;
 *  - nccl: one GPU per rank; all-reduces queued on a communication stream ordered after the
 *    backend's compute stream, so that they overlap the rest of backward, and the compute
 *    stream ordered after them before the optimizer. Failures (ncclCommGetAsyncError) and hangs
 *    (a host-side deadline) end every rank: ncclCommAbort, then the host comm's abort. */
#ifndef DTRAIN_DEVICE_COMM_H
#define DTRAIN_DEVICE_COMM_H

#include <stddef.h>

#include "dtrain/backend.h"
#include "dtrain/comm.h"
#include "dtrain/error.h"

typedef struct dt_device_comm_ops {
    const char *name; /* "host", "nccl" */
    /* Sums count floats of backend memory over the ranks, in place, in the compute stream's
     * order: every op queued on the backend after this call sees the sum. */
    int (*allreduce_sum_float)(void *ctx, float *buffer, size_t count, dt_error *err);
    /* Orders the compute stream after every all-reduce issued so far (before the optimizer
     * reads the gradients), without waiting on the host for the newest ones. */
    int (*wait)(void *ctx, dt_error *err);
    /* Blocks the host until every issued all-reduce has completed (before the host reads
     * results, e.g. at a log line), ending the job if one fails or passes the deadline. */
    int (*drain)(void *ctx, dt_error *err);
    /* Ends every rank of the job with this exit code; does not return. */
    void (*abort)(void *ctx, int exit_code);
    /* Error paths and the watchdog, before the host comm's abort: ends this rank's part in the
     * collectives at once (ncclCommAbort, never the blocking ncclCommDestroy), so that no
     * collective is left waiting; safe from another thread; destroy still frees. */
    void (*abort_collectives)(void *ctx);
    void (*destroy)(void *ctx);
} dt_device_comm_ops;

typedef struct dt_device_comm {
    int rank, size;
    const dt_device_comm_ops *ops;
    void *ctx;
} dt_device_comm;

/* Seconds an NCCL all-reduce may take before the job is ended as hung: DTRAIN_NCCL_TIMEOUT_S
 * from the environment when set (> 0), else this default. */
#define DT_NCCL_DEFAULT_TIMEOUT_S 300.0
double dt_device_comm_timeout_seconds(void);

/* The device comm for this backend and host comm: host when the backend keeps its buffers in
 * host memory or host->size == 1 (no NCCL initialised), else NCCL on GPU `device` (an error
 * naming the ranks when this build has no NCCL). host and backend must outlive it. */
int dt_device_comm_create(dt_comm *host, const dt_backend *backend, int device, dt_device_comm *out,
                          dt_error *err);

/* The host implementation over host (see above). */
int dt_device_comm_host_create(dt_comm *host, const dt_backend *backend, dt_device_comm *out,
                               dt_error *err);

/* The NCCL and CUDA calls of the NCCL device comm, as a table so that tests can replace them
 * (tests/test_device_comm.c). Handles are opaque; each call returns 0, or -1 with a message
 * naming the call and NCCL's or CUDA's error string in err. */
typedef struct dt_nccl_api {
    size_t unique_id_bytes; /* sizeof(ncclUniqueId) */
    int (*get_unique_id)(void *id, dt_error *err);
    /* cudaSetDevice(device), then ncclCommInitRank */
    int (*comm_init_rank)(void **comm, int nranks, const void *id, int rank, int device,
                          dt_error *err);
    /* ncclAllReduce in place, float, sum, queued on stream */
    int (*all_reduce_sum_float)(float *buffer, size_t count, void *comm, void *stream,
                                dt_error *err);
    /* *failed = 1 (err filled) when the communicator has an asynchronous error */
    int (*comm_get_async_error)(void *comm, int *failed, dt_error *err);
    void (*comm_abort)(void *comm);
    void (*comm_destroy)(void *comm);
    int (*stream_create)(void **stream, dt_error *err);
    void (*stream_destroy)(void *stream);
    int (*event_create)(void **event, dt_error *err);
    void (*event_destroy)(void *event);
    int (*event_record)(void *event, void *stream, dt_error *err);
    int (*stream_wait_event)(void *stream, void *event, dt_error *err);
    /* *done = 1 when the work before the event's record has completed */
    int (*event_query)(void *event, int *done, dt_error *err);
} dt_nccl_api;

/* The real table (NCCL and the CUDA runtime). NCCL is loaded at the first call (dlopen of
 * libnccl.so.2, or the file DTRAIN_NCCL_LIBRARY names) and needs version 2.18 or newer; NULL with
 * a usage error saying how to provide it when it cannot be loaded or this dtrain was built
 * without NCCL's header. */
const dt_nccl_api *dt_nccl_api_load(dt_error *err);
/* ncclGetVersion of the loaded NCCL (e.g. 22703), loading it if needed; 0 when it cannot be. */
int dt_nccl_loaded_version(void);

/* NCCL over api: rank 0's unique id broadcast over host, then ncclCommInitRank on device,
 * all-reduces on a stream of its own ordered with events against backend's compute stream.
 * timeout_s: the host-side deadline for an issued all-reduce to complete. */
int dt_device_comm_nccl_create(dt_comm *host, const dt_backend *backend, int device,
                               const dt_nccl_api *api, double timeout_s, dt_device_comm *out,
                               dt_error *err);

#endif
