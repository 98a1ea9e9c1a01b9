/* The real dt_nccl_api: NCCL and CUDA runtime calls behind the table the NCCL device comm
 * uses, each failure turned into a message naming the call and NCCL's or CUDA's error string.
 * NCCL is loaded at run time (dlopen of libnccl.so.2, or DTRAIN_NCCL_LIBRARY), on first use:
 * dtrain --version and single-GPU runs need no NCCL, and several GPU ranks without it get an
 * error that says how to provide it. Built when the CUDA toolkit and NCCL's header are found;
 * nccl.h gives the types, nothing is linked. */
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <nccl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda_module.h"
#include "dtrain/device_comm.h"
#include "dtrain/gpu.h"

/* NCCL's functions, resolved from the library by name */
typedef struct nccl_functions {
    ncclResult_t (*get_version)(int *);
    const char *(*get_error_string)(ncclResult_t);
    ncclResult_t (*get_unique_id)(ncclUniqueId *);
    ncclResult_t (*comm_init_rank)(ncclComm_t *, int, ncclUniqueId, int);
    ncclResult_t (*all_reduce)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t,
                               ncclComm_t, cudaStream_t);
    ncclResult_t (*comm_get_async_error)(ncclComm_t, ncclResult_t *);
    ncclResult_t (*comm_abort)(ncclComm_t);
    ncclResult_t (*comm_destroy)(ncclComm_t);
} nccl_functions;

static nccl_functions nccl;
static pthread_once_t nccl_once = PTHREAD_ONCE_INIT;
static int nccl_loaded_version;    /* ncclGetVersion's, once loaded */
static char nccl_load_error[1024]; /* why it did not load: empty when it did */
static const char *nccl_library_name(void) {
    const char *name = getenv("DTRAIN_NCCL_LIBRARY");
    return name && name[0] ? name : "libnccl.so.2";
}

static void *resolve(void *handle, const char *symbol, int *missing) {
    void *fn = dlsym(handle, symbol);
    if (!fn && !*missing) {
        *missing = 1;
        snprintf(nccl_load_error, sizeof nccl_load_error, "%s has no %s (not NCCL 2?)",
                 nccl_library_name(), symbol);
    }
    return fn;
}

static void load_nccl(void) {
    const char *name = nccl_library_name();
    /* RTLD_LOCAL: NCCL's own dependencies stay out of the global namespace */
    void *handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    char hint[512];
    dt_gpu_library_hint("libnccl.so.2", CUDART_VERSION / 1000, hint, sizeof hint);
    if (!handle) {
        const char *why = dlerror();
        snprintf(nccl_load_error, sizeof nccl_load_error,
                 "NCCL could not be loaded (%s); provide %s", why ? why : name, hint);
        return;
    }
    int missing = 0;
    nccl_functions f;
    *(void **)&f.get_version = resolve(handle, "ncclGetVersion", &missing);
    *(void **)&f.get_error_string = resolve(handle, "ncclGetErrorString", &missing);
    *(void **)&f.get_unique_id = resolve(handle, "ncclGetUniqueId", &missing);
    *(void **)&f.comm_init_rank = resolve(handle, "ncclCommInitRank", &missing);
    *(void **)&f.all_reduce = resolve(handle, "ncclAllReduce", &missing);
    *(void **)&f.comm_get_async_error = resolve(handle, "ncclCommGetAsyncError", &missing);
    *(void **)&f.comm_abort = resolve(handle, "ncclCommAbort", &missing);
    *(void **)&f.comm_destroy = resolve(handle, "ncclCommDestroy", &missing);
    int version = 0;
    if (!missing && f.get_version(&version) != ncclSuccess) version = 0;
    if (!missing && version < DT_NCCL_MIN_VERSION) {
        snprintf(nccl_load_error, sizeof nccl_load_error,
                 "%s is NCCL %d.%d.%d; dtrain needs %d.%d or newer: provide %s", name,
                 version / 10000, (version % 10000) / 100, version % 100,
                 DT_NCCL_MIN_VERSION / 10000, (DT_NCCL_MIN_VERSION % 10000) / 100, hint);
        missing = 1;
    }
    if (missing) {
        dlclose(handle);
        return;
    }
    nccl = f;
    nccl_loaded_version = version;
}

static int nccl_check(ncclResult_t result, dt_error *err, const char *call) {
    if (result == ncclSuccess) return 0;
    return dt_fail(err, "%s: %s", call, nccl.get_error_string(result));
}

static int cuda_check(cudaError_t result, dt_error *err, const char *call) {
    if (result == cudaSuccess) return 0;
    return dt_fail(err, "%s: %s", call, cudaGetErrorString(result));
}

static int api_get_unique_id(void *id, dt_error *err) {
    return nccl_check(nccl.get_unique_id((ncclUniqueId *)id), err, "ncclGetUniqueId");
}

static int api_comm_init_rank(void **comm, int nranks, const void *id, int rank, int device,
                              dt_error *err) {
    ncclUniqueId unique;
    memcpy(&unique, id, sizeof unique);
    ncclComm_t handle = NULL;
    if (cuda_check(cudaSetDevice(device), err, "cudaSetDevice") ||
        nccl_check(nccl.comm_init_rank(&handle, nranks, unique, rank), err, "ncclCommInitRank"))
        return -1;
    *comm = handle;
    return 0;
}

static int api_all_reduce_sum_float(float *buffer, size_t count, void *comm, void *stream,
                                    dt_error *err) {
    return nccl_check(nccl.all_reduce(buffer, buffer, count, ncclFloat32, ncclSum, (ncclComm_t)comm,
                                      (cudaStream_t)stream),
                      err, "ncclAllReduce");
}

static int api_comm_get_async_error(void *comm, int *failed, dt_error *err) {
    ncclResult_t async = ncclSuccess;
    *failed = 0;
    if (nccl_check(nccl.comm_get_async_error((ncclComm_t)comm, &async), err,
                   "ncclCommGetAsyncError"))
        return -1;
    if (async == ncclSuccess || async == ncclInProgress) return 0;
    *failed = 1;
    return dt_fail(err, "asynchronous error: %s", nccl.get_error_string(async));
}

static void api_comm_abort(void *comm) {
    nccl.comm_abort((ncclComm_t)comm);
}

static void api_comm_destroy(void *comm) {
    nccl.comm_destroy((ncclComm_t)comm);
}

/* The collectives' stream gets the greatest priority, so that the all-reduce kernels of
 * completed buckets run as soon as an SM frees instead of queuing behind backward's. */
static int api_stream_create(void **stream, dt_error *err) {
    cudaStream_t handle = NULL;
    int least = 0, greatest = 0;
    if (cuda_check(cudaDeviceGetStreamPriorityRange(&least, &greatest), err,
                   "cudaDeviceGetStreamPriorityRange") ||
        cuda_check(cudaStreamCreateWithPriority(&handle, cudaStreamNonBlocking, greatest), err,
                   "cudaStreamCreateWithPriority"))
        return -1;
    *stream = handle;
    return 0;
}

static void api_stream_destroy(void *stream) {
    cudaStreamDestroy((cudaStream_t)stream);
}

static int api_event_create(void **event, dt_error *err) {
    cudaEvent_t handle = NULL;
    if (cuda_check(cudaEventCreateWithFlags(&handle, cudaEventDisableTiming), err,
                   "cudaEventCreateWithFlags"))
        return -1;
    *event = handle;
    return 0;
}

static void api_event_destroy(void *event) {
    cudaEventDestroy((cudaEvent_t)event);
}

static int api_event_record(void *event, void *stream, dt_error *err) {
    return cuda_check(cudaEventRecord((cudaEvent_t)event, (cudaStream_t)stream), err,
                      "cudaEventRecord");
}

static int api_stream_wait_event(void *stream, void *event, dt_error *err) {
    return cuda_check(cudaStreamWaitEvent((cudaStream_t)stream, (cudaEvent_t)event, 0), err,
                      "cudaStreamWaitEvent");
}

static int api_event_query(void *event, int *done, dt_error *err) {
    cudaError_t status = cudaEventQuery((cudaEvent_t)event);
    *done = status == cudaSuccess;
    if (status == cudaSuccess || status == cudaErrorNotReady) return 0;
    return cuda_check(status, err, "cudaEventQuery");
}

static const dt_nccl_api real_api = {
    .unique_id_bytes = sizeof(ncclUniqueId),
    .get_unique_id = api_get_unique_id,
    .comm_init_rank = api_comm_init_rank,
    .all_reduce_sum_float = api_all_reduce_sum_float,
    .comm_get_async_error = api_comm_get_async_error,
    .comm_abort = api_comm_abort,
    .comm_destroy = api_comm_destroy,
    .stream_create = api_stream_create,
    .stream_destroy = api_stream_destroy,
    .event_create = api_event_create,
    .event_destroy = api_event_destroy,
    .event_record = api_event_record,
    .stream_wait_event = api_stream_wait_event,
    .event_query = api_event_query,
};

const dt_nccl_api *cuda_nccl_api_load(dt_error *err) {
    pthread_once(&nccl_once, load_nccl);
    if (nccl_load_error[0]) {
        dt_fail_usage(err, "%s", nccl_load_error);
        return NULL;
    }
    return &real_api;
}

int cuda_nccl_loaded_version(void) {
    dt_error ignored = {{0}, 0};
    return cuda_nccl_api_load(&ignored) ? nccl_loaded_version : 0;
}
