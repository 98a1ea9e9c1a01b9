/* Choosing the device comm for a backend (host or NCCL) and its hang deadline. */
#include "dtrain/device_comm.h"

#include <stdlib.h>
#include <string.h>

double dt_device_comm_timeout_seconds(void) {
    const char *text = getenv("DTRAIN_NCCL_TIMEOUT_S");
    double value = text ? strtod(text, NULL) : 0.0;
    return value > 0.0 ? value : DT_NCCL_DEFAULT_TIMEOUT_S;
}

int dt_device_comm_create(dt_comm *host, const dt_backend *backend, int device, dt_device_comm *out,
                          dt_error *err) {
    if (host->size == 1 || dt_backend_has(backend, DT_BACKEND_HOST_MEMORY))
        return dt_device_comm_host_create(host, backend, out, err);
    const dt_nccl_api *api = dt_nccl_api_load(err);
    if (!api)
        return dt_error_prefix(err,
                               "%d ranks on the %s backend need NCCL for the gradient all-reduce "
                               "(or run one rank: one GPU needs no NCCL)",
                               host->size, dt_backend_name(backend));
    return dt_device_comm_nccl_create(host, backend, device, api, dt_device_comm_timeout_seconds(),
                                      out, err);
}

#ifndef DTRAIN_HAVE_NCCL
const dt_nccl_api *dt_nccl_api_load(dt_error *err) {
    dt_fail_usage(err, "this dtrain was built without NCCL's header (libnccl.so.2 is loaded at "
                       "run time): rebuild with NCCL_ROOT set (see README)");
    return NULL;
}

int dt_nccl_loaded_version(void) {
    return 0;
}
#endif
