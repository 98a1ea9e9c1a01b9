/* The device a rank trains on (see device_choice.h): runtime.device against the GPUs reported
 * and the rank's place on its node, with the reasons for falling back or failing. */
#include "train/device_choice.h"

#include <stdio.h>
#include <string.h>

/* " (CUDA_VISIBLE_DEVICES=...)" when the variable is set, so that a hidden GPU is explained. */
static void visible_note(const dt_device_request *req, char *buf, size_t size) {
    buf[0] = 0;
    if (req->cuda_visible_devices)
        snprintf(buf, size, " (CUDA_VISIBLE_DEVICES=%s)", req->cuda_visible_devices);
}

int dt_device_choose(const dt_device_request *req, const dt_gpu_query *gpus, dt_device_choice *out,
                     dt_error *err) {
    memset(out, 0, sizeof *out);
    out->kind = DT_DEVICE_CPU;
    if (req->kind == DT_DEVICE_CPU) return 0;

    char reason[700], visible[96];
    visible_note(req, visible, sizeof visible);
    int usable = req->cuda_backend_built && gpus->count > 0 && gpus->status == DT_GPU_AVAILABLE;
    if (!usable) {
        if (!req->cuda_backend_built)
            snprintf(reason, sizeof reason, "this dtrain was built without the CUDA backend");
        else
            dt_gpu_query_reason(gpus, reason, sizeof reason);
        if (req->kind == DT_DEVICE_CUDA)
            return dt_fail_usage(err, "runtime.device: 'cuda', but %s%s", reason, visible);
        snprintf(out->fallback_reason, sizeof out->fallback_reason,
                 "runtime.device=auto: training on the CPU: %s%s", reason, visible);
        return 0;
    }

    int local = req->local_rank, ranks = req->local_size > 0 ? req->local_size : 1;
    if (gpus->count >= ranks) {
        out->device = local; /* each rank of the node its own GPU */
    } else if (gpus->count == 1) {
        out->device = 0; /* a launcher binding one GPU per rank: checked distinct later */
    } else {
        return dt_fail_usage(err,
                             "%d ranks on this node but %d GPUs visible to each%s: run at most "
                             "one rank per GPU",
                             ranks, gpus->count, visible);
    }
    out->kind = DT_DEVICE_CUDA;
    return 0;
}

int dt_device_check_distinct(const dt_rank_gpu *ranks, int n_ranks, int local_size_hint,
                             dt_error *err) {
    for (int a = 0; a < n_ranks; a++)
        for (int b = a + 1; b < n_ranks; b++)
            if (ranks[a].node == ranks[b].node && strcmp(ranks[a].pci_bus, ranks[b].pci_bus) == 0)
                return dt_fail_usage(err,
                                     "ranks %d and %d on %s would share GPU %s: more ranks on "
                                     "the node (%d) than GPUs given to them; run one rank per "
                                     "GPU (e.g. srun --gpus-per-task=1, or fewer ranks)",
                                     a, b, ranks[a].host, ranks[a].pci_bus, local_size_hint);
    return 0;
}
