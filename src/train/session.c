/* The set-up shared by training, `dtrain eval` and `dtrain predict` (session.h): one rule for
 * the data, the threads, the device and the backend, whichever command runs. */
#include "train/session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dtrain/device_comm.h"
#include "dtrain/log.h"
#include "dtrain/threads.h"

void dt_session_init(dt_session *s, dt_comm *comm, dt_progress *log) {
    memset(s, 0, sizeof *s);
    s->comm = comm;
    s->is_root = comm->rank == 0;
    s->log = log;
}

/* A start-up line on rank 0, when the session has a log. */
static void say(const dt_session *s, const char *line) {
    if (s->is_root && s->log) dt_progress_line(s->log, NULL, "%s", line);
}

int dt_session_plan_threads(dt_session *s, const dt_session_request *req, dt_error *err) {
    dt_thread_plan plan;
    if (dt_thread_plan_for(req->threads, req->workers, s->comm, &plan, err)) return -1;
    s->threads = plan.threads;
    s->workers = plan.workers;
    if (dt_progress_verbose()) { /* else training counts them in its one summary line */
        char waits[160];
        dt_openmp_wait_policy_describe(waits, sizeof waits);
        say(s, plan.why);
        say(s, waits);
    }
    return 0;
}

/* ---- data ---- */

int dt_session_open_data(dt_session *s, const char *key, const char *root, dt_error *err) {
    dt_comm *comm = s->comm;
    dt_dataset *ds = &s->ds;
    if (comm->size == 1) return dt_dataset_scan_key(key, root, ds, err);
    uint64_t header[2] = {0, 0}; /* ok, byte count */
    uint8_t *bytes = NULL;
    size_t size = 0;
    int rc = 0;
    if (comm->rank == 0) {
        rc = dt_dataset_scan_key(key, root, ds, err);
        if (rc == 0) rc = dt_dataset_pack_bytes(ds, &bytes, &size, err);
        header[0] = rc == 0;
        header[1] = size;
    }
    dt_error comm_err = {{0}, 0};
    if (comm->ops->broadcast(comm->ctx, header, sizeof header, 0, &comm_err)) {
        free(bytes);
        *err = comm_err;
        return -1;
    }
    if (!header[0]) {
        if (comm->rank == 0) return -1;
        return dt_fail_usage(err, "%s: rank 0 could not read the data (its message says why)",
                             root);
    }
    if (comm->rank != 0 && !(bytes = malloc((size_t)header[1] ? (size_t)header[1] : 1)))
        return dt_fail(err, "out of memory for the file list (%llu bytes)",
                       (unsigned long long)header[1]);
    if (comm->ops->broadcast(comm->ctx, bytes, (size_t)header[1], 0, err)) {
        free(bytes);
        return dt_error_prefix(err, "sharing the file list of %s", root);
    }
    if (comm->rank != 0) rc = dt_dataset_unpack_bytes(bytes, (size_t)header[1], ds, err);
    free(bytes);
    return rc;
}

int dt_session_split(dt_session *s, const dt_config *cfg, dt_error *err) {
    if (cfg->data.val_root)
        return dt_dataset_add_val_root(&s->ds, cfg->data.val_root, &s->split, err);
    return dt_split_make(s->ds.n_files, cfg->data.val_fraction, cfg->data.split_seed, &s->split,
                         err);
}

int dt_session_display_names(dt_session *s, const dt_config *cfg, int warn_unused, dt_error *err) {
    int n = s->ds.n_classes;
    if (!(s->display_names = calloc(n > 0 ? (size_t)n : 1, sizeof *s->display_names)))
        return dt_fail(err, "out of memory");
    for (int i = 0; i < n; i++)
        if (!(s->display_names[i] = strdup(dt_config_display_name(cfg, s->ds.class_names[i]))))
            return dt_fail(err, "out of memory");
    if (!s->is_root || !warn_unused) return 0;
    for (int k = 0; k < cfg->data.n_class_names; k++) {
        const char *folder = cfg->data.class_names[k].folder;
        int found = 0;
        for (int i = 0; i < n && !found; i++) found = strcmp(s->ds.class_names[i], folder) == 0;
        if (!found)
            dt_warn("data.class_names: '%s' is not a class folder under %s; its name is unused",
                    folder, cfg->data.root);
    }
    return 0;
}

/* ---- device and backend ---- */

int dt_session_choose_device(dt_device_kind kind, const dt_comm *comm, int cuda_backend_built,
                             const dt_gpu_query *gpus, dt_device_choice *out, dt_error *err) {
    dt_device_request request = {.kind = kind,
                                 .local_rank = comm->local_rank,
                                 .local_size = comm->local_size,
                                 .cuda_backend_built = cuda_backend_built,
                                 .cuda_visible_devices = getenv("CUDA_VISIBLE_DEVICES")};
    return dt_device_choose(&request, gpus, out, err);
}

/* Every rank's chosen GPU (empty on the CPU), gathered: rank 0 logs each one once, and two
 * ranks of a node on one GPU, or ranks that chose different kinds of device, are errors. */
static int gather_devices(dt_session *s, dt_error *err) {
    typedef struct rank_device {
        dt_rank_gpu id;
        dt_gpu_info info;
        int kind, device;
    } rank_device;
    dt_comm *comm = s->comm;
    rank_device mine;
    memset(&mine, 0, sizeof mine);
    mine.kind = (int)s->device.kind;
    mine.device = s->device.device;
    if (s->device.kind == DT_DEVICE_CUDA) {
        if (dt_backend_cuda_device_info(s->device.device, &mine.info, err)) return -1;
        if (gethostname(mine.id.host, sizeof mine.id.host - 1) != 0)
            snprintf(mine.id.host, sizeof mine.id.host, "localhost");
        snprintf(mine.id.pci_bus, sizeof mine.id.pci_bus, "%s", mine.info.pci_bus);
        mine.id.node = comm->node;
    }
    rank_device *all = calloc((size_t)comm->size, sizeof *all);
    dt_rank_gpu *ids = calloc((size_t)comm->size, sizeof *ids);
    int rc = -1;
    if (!all || !ids) {
        dt_fail(err, "out of memory");
        goto done;
    }
    if (comm->ops->allgather(comm->ctx, &mine, all, sizeof mine, err)) goto done;
    for (int r = 0; r < comm->size; r++) {
        ids[r] = all[r].id;
        if (all[r].kind != mine.kind) {
            dt_fail_usage(err,
                          "rank %d trains on the %s and rank %d on the %s: every rank needs "
                          "the same kind of device (set runtime.device)",
                          r, all[r].kind == DT_DEVICE_CUDA ? "GPU" : "CPU", comm->rank,
                          mine.kind == DT_DEVICE_CUDA ? "GPU" : "CPU");
            goto done;
        }
    }
    if (mine.kind == DT_DEVICE_CUDA) {
        for (int r = 0; r < comm->size; r++) {
            char line[400];
            snprintf(line, sizeof line, "rank %d: GPU %d %s, %.1f GiB, PCI %s on %s", r,
                     all[r].device, all[r].info.name,
                     (double)all[r].info.total_bytes / (1024.0 * 1024.0 * 1024.0),
                     all[r].info.pci_bus, all[r].id.host);
            say(s, line);
        }
        if (dt_device_check_distinct(ids, comm->size, comm->local_size, err)) goto done;
    }
    rc = 0;
done:
    free(all);
    free(ids);
    return rc;
}

int dt_session_create_backend(dt_session *s, const dt_session_request *req, dt_error *err) {
    const dt_comm *comm = s->comm;
    dt_gpu_query gpus;
    memset(&gpus, 0, sizeof gpus);
    /* asked only when runtime.device is not cpu: counting the GPUs starts the CUDA runtime */
    if (req->device != DT_DEVICE_CPU) {
        dt_backend_cuda_query(&gpus);
        gpus.nccl_needed = req->gradient_comm && comm->size > 1; /* NCCL between the GPUs */
        if (gpus.nccl_needed && gpus.status == DT_GPU_AVAILABLE)
            gpus.nccl_version = dt_nccl_loaded_version();
        dt_gpu_query_check(&gpus);
    }
    if (dt_session_choose_device(req->device, comm, dt_backend_cuda_training_available(), &gpus,
                                 &s->device, err))
        return -1;
    /* without DTRAIN_VERBOSE training folds the reason into its start-up summary */
    if (s->device.fallback_reason[0] && dt_progress_verbose()) say(s, s->device.fallback_reason);
    if (comm->size > 1 && gather_devices(s, err)) return -1;
    dt_backend_options opt = {
        .threads = s->threads, .device = s->device.device, .deterministic = req->deterministic};
    int gpu_has_tf32 = 0;
    dt_gpu_info info;
    if (s->device.kind == DT_DEVICE_CUDA) {
        if (dt_backend_cuda_device_info(s->device.device, &info, err)) return -1;
        gpu_has_tf32 = info.compute_major >= 8; /* Ampere and newer */
        if (comm->size == 1) {
            char line[400];
            snprintf(line, sizeof line, "GPU %d: %s, %.1f GiB, PCI %s", s->device.device, info.name,
                     (double)info.total_bytes / (1024.0 * 1024.0 * 1024.0), info.pci_bus);
            say(s, line);
        }
    }
    s->precision = dt_precision_resolve(req->precision, gpu_has_tf32);
    if (s->device.kind == DT_DEVICE_CUDA && s->precision == DT_PRECISION_WINOGRAD)
        return dt_fail_usage(err, "runtime.precision: 'winograd' is a CPU mode; on a GPU use "
                                  "tf32, fp32 or bf16");
    if (s->device.kind != DT_DEVICE_CUDA && s->precision == DT_PRECISION_TF32) {
        if (comm->rank == 0)
            fprintf(stderr, "dtrain: note: runtime.precision: 'tf32' on the CPU is now called "
                            "'winograd' (TensorFloat-32 is a GPU format); running winograd\n");
        s->precision = DT_PRECISION_WINOGRAD;
    }
    opt.precision = (int)s->precision;
    if (s->device.kind == DT_DEVICE_CUDA) {
        if (dt_backend_cuda_create(&opt, &s->backend, err)) return -1;
    } else {
        if (dt_backend_cpu_create(&opt, &s->backend, err)) return -1;
        if (dt_progress_verbose()) {
            char line[256];
            dt_backend_cpu_describe(&s->backend, line, sizeof line);
            say(s, line);
        }
    }
    s->have_backend = 1;
    return 0;
}

/* ---- model and loader ---- */

const char *dt_session_backend_name(const dt_session *s) {
    return dt_backend_name(&s->backend);
}

/* The ranks' models must place every parameter alike for the gradient all-reduce and the
 * broadcasts: when their backends chose different weight layouts of their own (nodes with
 * different instruction sets), every rank builds its model again with OIHW weights. */
static int say_weight_layouts(dt_session *s) {
    if (!dt_progress_verbose()) return 0;
    int total, own = dt_model_own_layout_count(s->model, &total);
    char line[160];
    snprintf(line, sizeof line, "convolution weights: %d of %d in the backend's own layouts%s", own,
             total, own ? "" : " (all OIHW)");
    say(s, line);
    return 0;
}

int dt_session_create_model(dt_session *s, const dt_model_options *opt, dt_error *err) {
    if (dt_model_create(&s->backend, opt, &s->model, err)) return -1;
    dt_comm *comm = s->comm;
    if (comm->size == 1 || opt->oihw_weights) return say_weight_layouts(s);
    const uint64_t mine = dt_model_weight_layout(s->model);
    uint64_t *all = calloc((size_t)comm->size, sizeof *all);
    if (!all) return dt_fail(err, "out of memory");
    if (comm->ops->allgather(comm->ctx, &mine, all, sizeof mine, err)) {
        free(all);
        return dt_error_prefix(err, "comparing the ranks' weight layouts");
    }
    int differing = 0;
    for (int r = 1; r < comm->size && !differing; r++)
        if (all[r] != all[0]) differing = r;
    free(all);
    if (!differing) return say_weight_layouts(s);
    if (s->is_root)
        fprintf(stderr,
                "dtrain: note: rank %d's backend keeps convolution weights in other layouts than "
                "rank 0's (a different instruction set?); every rank uses OIHW weights, which "
                "costs a few percent of each step on the CPU\n",
                differing);
    dt_model_destroy(s->model);
    s->model = NULL;
    dt_model_options oihw = *opt;
    oihw.oihw_weights = 1;
    return dt_model_create(&s->backend, &oihw, &s->model, err) ? -1 : say_weight_layouts(s);
}

int dt_session_create_loader(dt_session *s, dt_loader_options *opt, dt_error *err) {
    if (opt->workers <= 0) opt->workers = s->workers;
    opt->pixel_alloc = dt_backend_host_alloc_hook;
    opt->pixel_free = dt_backend_host_free_hook;
    opt->pixel_alloc_user = &s->backend;
    return dt_loader_create(&s->ds, opt, &s->loader, err);
}

void dt_session_close(dt_session *s) {
    if (s->loader) dt_loader_destroy(s->loader);
    if (s->model) dt_model_destroy(s->model);
    if (s->have_backend) dt_backend_free(&s->backend);
    if (s->display_names)
        for (int i = 0; i < s->ds.n_classes; i++) free(s->display_names[i]);
    free(s->display_names);
    dt_split_free(&s->split);
    dt_dataset_free(&s->ds);
    s->loader = NULL;
    s->model = NULL;
    s->have_backend = 0;
    s->display_names = NULL;
}
