/* The real dt_nccl_api: NCCL and CUDA runtime calls behind the table the NCCL device comm
 * uses, each failure turned into a message naming the call and NCCL's or CUDA's error string.
 * Built when NCCL is found. */
#include <cuda_runtime_api.h>
#include <nccl.h>
#include <string.h>

#include "dtrain/device_comm.h"

static int nccl_check(ncclResult_t result, dt_error *err, const char *call) {
    if (result == ncclSuccess) return 0;
    return dt_fail(err, "%s: %s", call, ncclGetErrorString(result));
}

static int cuda_check(cudaError_t result, dt_error *err, const char *call) {
    if (result == cudaSuccess) return 0;
    return dt_fail(err, "%s: %s", call, cudaGetErrorString(result));
}

static int api_get_unique_id(void *id, dt_error *err) {
    return nccl_check(ncclGetUniqueId((ncclUniqueId *)id), err, "ncclGetUniqueId");
}

static int api_comm_init_rank(void **comm, int nranks, const void *id, int rank, int device,
                              dt_error *err) {
    ncclUniqueId unique;
    memcpy(&unique, id, sizeof unique);
    ncclComm_t handle = NULL;
    if (cuda_check(cudaSetDevice(device), err, "cudaSetDevice") ||
        nccl_check(ncclCommInitRank(&handle, nranks, unique, rank), err, "ncclCommInitRank"))
        return -1;
    *comm = handle;
    return 0;
}

static int api_all_reduce_sum_float(float *buffer, size_t count, void *comm, void *stream,
                                    dt_error *err) {
    return nccl_check(ncclAllReduce(buffer, buffer, count, ncclFloat32, ncclSum, (ncclComm_t)comm,
                                    (cudaStream_t)stream),
                      err, "ncclAllReduce");
}

static int api_comm_get_async_error(void *comm, int *failed, dt_error *err) {
    ncclResult_t async = ncclSuccess;
    *failed = 0;
    if (nccl_check(ncclCommGetAsyncError((ncclComm_t)comm, &async), err, "ncclCommGetAsyncError"))
        return -1;
    if (async == ncclSuccess || async == ncclInProgress) return 0;
    *failed = 1;
    return dt_fail(err, "asynchronous error: %s", ncclGetErrorString(async));
}

static void api_comm_abort(void *comm) {
    ncclCommAbort((ncclComm_t)comm);
}

static void api_comm_destroy(void *comm) {
    ncclCommDestroy((ncclComm_t)comm);
}

static int api_stream_create(void **stream, dt_error *err) {
    cudaStream_t handle = NULL;
    if (cuda_check(cudaStreamCreateWithFlags(&handle, cudaStreamNonBlocking), err,
                   "cudaStreamCreateWithFlags"))
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

const dt_nccl_api *dt_nccl_api_default(void) {
    return &real_api;
}
