/* Which device a rank trains on (runtime.device, the GPUs the CUDA runtime reports, the rank's
 * place on its node), and the reasons given when there is no usable GPU. Pure C: the GPU query
 * comes in as data (src/backend/cuda/cuda_device.c makes it), so every case is tested without a
 * GPU (tests/test_device_choice.c). */
#ifndef DTRAIN_TRAIN_DEVICE_CHOICE_H
#define DTRAIN_TRAIN_DEVICE_CHOICE_H

#include "dtrain/backend.h"
#include "dtrain/config.h"
#include "dtrain/error.h"
#include "dtrain/gpu.h"

typedef struct dt_device_request {
    dt_device_kind kind;              /* runtime.device */
    int local_rank, local_size;       /* this rank's place among the ranks of its node */
    int cuda_backend_built;           /* this dtrain has the CUDA training backend */
    const char *cuda_visible_devices; /* the environment's value, NULL when unset */
} dt_device_request;

typedef struct dt_device_choice {
    dt_device_kind kind; /* DT_DEVICE_CPU or DT_DEVICE_CUDA */
    int device;          /* CUDA: ordinal among the visible GPUs */
    /* auto without a usable GPU: why it trains on the CPU (one line; empty otherwise) */
    char fallback_reason[900];
} dt_device_choice;

/* The choice for req given the GPUs (ignored for runtime.device=cpu, which must not start the
 * CUDA runtime to ask):
 *  - cpu: the CPU;
 *  - auto/cuda without a usable GPU (none built, no driver, driver too old, no device): auto
 *    trains on the CPU with the reason in fallback_reason; cuda is a usage error with it;
 *  - as many visible GPUs as ranks on the node or more: GPU local_rank (each rank its own);
 *    one visible GPU: GPU 0 (a launcher that binds one GPU per rank shows each rank its own;
 *    ranks that would share one are found by dt_device_check_distinct);
 *    more than one but fewer than the node's ranks: a usage error naming both counts. */
int dt_device_choose(const dt_device_request *req, const dt_gpu_query *gpus, dt_device_choice *out,
                     dt_error *err);

/* One rank's GPU as every rank sees it after an all-gather (dt_device_check_distinct). */
typedef struct dt_rank_gpu {
    char host[64];    /* node name, for the messages */
    char pci_bus[32]; /* PCI bus id of the GPU the rank chose */
    int node;         /* the node (dt_comm.node): host names may repeat across nodes */
} dt_rank_gpu;

/* A usage error naming the two ranks and the node when two ranks on one node chose the same
 * GPU (same PCI bus id). */
int dt_device_check_distinct(const dt_rank_gpu *ranks, int n_ranks, int local_size_hint,
                             dt_error *err);

#endif
