/* The training run: set-up (data, split, backend, model, loader, outputs), the epoch loop with
 * gradient accumulation, all-reduce and SGD, rank-0 evaluation, and the final files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dtrain/backend.h"
#include "dtrain/data.h"
#include "dtrain/export.h"
#include "dtrain/log.h"
#include "dtrain/metrics.h"
#include "dtrain/model.h"
#include "dtrain/platform.h"
#include "dtrain/rng.h"
#include "dtrain/schedule.h"
#include "dtrain/signals.h"
#include "dtrain/threads.h"
#include "dtrain/train.h"
#include "train/progress.h"
#include "train/trainer_internal.h"

/* Every rank's chosen GPU (empty on the CPU), gathered: rank 0 logs each one once, and two
 * ranks of a node on one GPU, or ranks that chose different kinds of device, are errors. */
static int gather_devices(dt_trainer *t, dt_error *err) {
    typedef struct rank_device {
        dt_rank_gpu id;
        dt_gpu_info info;
        int kind, device;
    } rank_device;
    dt_comm *comm = t->comm;
    rank_device mine;
    memset(&mine, 0, sizeof mine);
    mine.kind = (int)t->device.kind;
    mine.device = t->device.device;
    if (t->device.kind == DT_DEVICE_CUDA) {
        if (dt_backend_cuda_device_info(t->device.device, &mine.info, err)) return -1;
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
        if (t->is_root)
            for (int r = 0; r < comm->size; r++)
                dt_progress_line(&t->progress, NULL, "rank %d: GPU %d %s, %.1f GiB, PCI %s on %s",
                                 r, all[r].device, all[r].info.name,
                                 (double)all[r].info.total_bytes / (1024.0 * 1024.0 * 1024.0),
                                 all[r].info.pci_bus, all[r].id.host);
        if (dt_device_check_distinct(ids, comm->size, comm->local_size, err)) goto done;
    }
    rc = 0;
done:
    free(all);
    free(ids);
    return rc;
}

/* runtime.device against the GPUs (asked only when it is not cpu: counting them starts the CUDA
 * runtime), then that backend. */
static int create_backend(dt_trainer *t, dt_error *err) {
    const dt_config *cfg = t->cfg;
    const dt_comm *comm = t->comm;
    dt_device_request request = {.kind = cfg->runtime.device,
                                 .local_rank = comm->local_rank,
                                 .local_size = comm->local_size,
                                 .cuda_backend_built = dt_backend_cuda_training_available(),
                                 .cuda_visible_devices = getenv("CUDA_VISIBLE_DEVICES")};
    dt_gpu_query gpus;
    memset(&gpus, 0, sizeof gpus);
    if (request.kind != DT_DEVICE_CPU) {
        dt_backend_cuda_query(&gpus);
        gpus.nccl_needed = comm->size > 1; /* one GPU per rank: NCCL between them */
        if (gpus.nccl_needed && gpus.status == DT_GPU_AVAILABLE)
            gpus.nccl_version = dt_nccl_loaded_version();
        dt_gpu_query_check(&gpus);
    }
    if (dt_device_choose(&request, &gpus, &t->device, err)) return -1;
    /* without DTRAIN_VERBOSE the reason is folded into the start-up summary (run) */
    if (t->is_root && t->device.fallback_reason[0] && dt_progress_verbose())
        dt_progress_line(&t->progress, NULL, "%s", t->device.fallback_reason);
    if (comm->size > 1 && gather_devices(t, err)) return -1;
    dt_backend_options opt = {.threads = t->threads,
                              .device = t->device.device,
                              .deterministic = cfg->runtime.deterministic};
    int gpu_has_tf32 = 0;
    dt_gpu_info info;
    if (t->device.kind == DT_DEVICE_CUDA) {
        if (dt_backend_cuda_device_info(t->device.device, &info, err)) return -1;
        gpu_has_tf32 = info.compute_major >= 8; /* Ampere and newer */
        if (comm->size == 1)
            dt_progress_line(&t->progress, NULL, "GPU %d: %s, %.1f GiB, PCI %s", t->device.device,
                             info.name, (double)info.total_bytes / (1024.0 * 1024.0 * 1024.0),
                             info.pci_bus);
    }
    t->precision = dt_precision_resolve(cfg->runtime.precision, gpu_has_tf32);
    if (t->device.kind == DT_DEVICE_CUDA && t->precision == DT_PRECISION_WINOGRAD)
        return dt_fail_usage(err, "runtime.precision: 'winograd' is a CPU mode; on a GPU use "
                                  "tf32, fp32 or bf16");
    if (t->device.kind != DT_DEVICE_CUDA && t->precision == DT_PRECISION_TF32) {
        if (t->is_root)
            fprintf(stderr, "dtrain: note: runtime.precision: 'tf32' on the CPU is now called "
                            "'winograd' (TensorFloat-32 is a GPU format); running winograd\n");
        t->precision = DT_PRECISION_WINOGRAD;
    }
    opt.precision = (int)t->precision;
    if (t->device.kind == DT_DEVICE_CUDA) return dt_backend_cuda_create(&opt, &t->backend, err);
    if (dt_backend_cpu_create(&opt, &t->backend, err)) return -1;
    if (t->is_root && dt_progress_verbose()) {
        char line[256];
        dt_backend_cpu_describe(&t->backend, line, sizeof line);
        dt_progress_line(&t->progress, NULL, "%s", line);
    }
    return 0;
}

/* The grads-ready callback: all-reduces every bucket that backward has just completed. */
static int issue_ready_buckets(void *user, size_t offset, size_t count, dt_error *err) {
    dt_trainer *t = user;
    const dt_backend_ops *ops = t->backend.ops;
    int first, n;
    if (dt_bucket_plan_ready(&t->buckets, offset, count, &first, &n, err)) return -1;
    float *grads = dt_model_grads(t->model);
    size_t span_offset, span_count;
    dt_model_trainable_span(t->model, &span_offset, &span_count);
    for (int k = first; k < first + n; k++) {
        const dt_bucket *b = &t->buckets.buckets[k];
        /* the test switch's NaN goes into the first trained value, as on one rank */
        if (b->offset <= span_offset && span_offset < b->offset + b->count &&
            dt_rel_before_allreduce(t, t->step_in_progress, grads + span_offset, err))
            return -1;
        if (ops->phase_mark(t->backend.ctx, DT_PHASE_ALLREDUCE, err) ||
            t->dcomm.ops->allreduce_sum_float(t->dcomm.ctx, grads + b->offset, b->count, err) ||
            ops->phase_mark(t->backend.ctx, DT_PHASE_COMPUTE, err))
            return dt_error_prefix(err, "all-reduce of gradient bucket %d (%zu floats)", k,
                                   b->count);
    }
    return 0;
}

/* The device comm, and with several ranks the bucket plan over the trained parameters, hooked
 * to the model's backward. */
static int setup_gradient_allreduce(dt_trainer *t, dt_error *err) {
    if (dt_device_comm_create(t->comm, &t->backend, t->device.device, &t->dcomm, err))
        return dt_error_prefix(err, "gradient all-reduce");
    t->have_dcomm = 1;
    dt_watchdog_set_abort_hook(t->rel.watchdog, t->dcomm.ops->abort_collectives, t->dcomm.ctx);
    if (t->comm->size == 1) return 0;
    size_t span_offset, span_count, n_entries;
    dt_model_trainable_span(t->model, &span_offset, &span_count);
    const dt_state_entry *entries = dt_model_state(t->model, &n_entries);
    dt_param_extent *params = calloc(n_entries, sizeof *params);
    if (!params) return dt_fail(err, "out of memory");
    int n = 0;
    for (size_t i = 0; i < n_entries; i++)
        if (entries[i].role == DT_TENSOR_PARAMETER && entries[i].offset >= span_offset)
            params[n++] = (dt_param_extent){entries[i].offset, entries[i].count};
    int rc = dt_bucket_plan_make(params, n, dt_bucket_floats_for_mb(t->cfg->runtime.bucket_mb),
                                 &t->buckets, err);
    free(params);
    if (rc) return dt_error_prefix(err, "planning the gradient buckets");
    dt_model_set_grads_ready(t->model, issue_ready_buckets, t);
    return 0;
}

/* Appends ",r" (or "r" first) to a comma-separated list of ranks. */
static void append_rank(char *list, size_t size, int rank) {
    size_t used = strlen(list);
    snprintf(list + used, size - used, "%s%d", used ? "," : "", rank);
}

/* Every rank must run the same config on the same files: compare hashes of the config, of the
 * file list (names and labels) and of the file sizes, and name the ranks that differ from rank
 * 0. A different list or different sizes is a setup error (exit 2), like missing data. */
static int check_consistency(dt_trainer *t, dt_error *err) {
    dt_comm *comm = t->comm;
    if (comm->size == 1) return 0;
    enum { CONFIG, NAMES, SIZES, HASHES };
    uint64_t mine[HASHES] = {dt_config_hash(t->cfg), dt_dataset_hash(&t->ds), 0};
    /* Rank 0 scanned data.root and shared its file list (dt_train_open_dataset): the sizes are
     * checked by rank 0 and by one rank on each other node, where a node-local copy could
     * differ or be missing; 0 means "not checked here" (the ranks on rank 0's node read the
     * same files as rank 0). */
    if ((comm->rank == 0 || (comm->local_rank == 0 && comm->node != 0)) &&
        dt_dataset_size_hash(&t->ds, &mine[SIZES], err))
        return dt_error_prefix(err, "data.root %s on this node", t->cfg->data.root);
    const char *salt = getenv("DTRAIN_TEST_HASH_SALT_RANK"); /* test-only fault switch */
    if (salt && atoi(salt) == comm->rank) mine[CONFIG] ^= 0x5bd1e995u;
    uint64_t *all = calloc((size_t)comm->size * HASHES, sizeof *all);
    if (!all) return dt_fail(err, "out of memory");
    if (comm->ops->allgather(comm->ctx, mine, all, sizeof mine, err)) {
        free(all);
        return -1;
    }
    char ranks[HASHES][256] = {"", "", ""};
    for (int r = 1; r < comm->size; r++)
        for (int h = 0; h < HASHES; h++)
            if (all[HASHES * r + h] != all[h] && (h != SIZES || all[HASHES * r + h] != 0))
                append_rank(ranks[h], sizeof ranks[h], r);
    free(all);
    if (ranks[CONFIG][0])
        return dt_fail(err,
                       "rank%s %s resolved a different config than rank 0 (compare their "
                       "config files and overrides)",
                       strchr(ranks[CONFIG], ',') ? "s" : "", ranks[CONFIG]);
    int several = strchr(ranks[NAMES], ',') != NULL;
    if (ranks[NAMES][0])
        return dt_fail_usage(err,
                             "rank%s %s see%s a different file list under %s than rank 0 (is "
                             "data.root the same shared folder on every node?)",
                             several ? "s" : "", ranks[NAMES], several ? "" : "s",
                             t->cfg->data.root);
    several = strchr(ranks[SIZES], ',') != NULL;
    if (ranks[SIZES][0])
        return dt_fail_usage(err,
                             "rank%s %s see%s the same file names under %s as rank 0 but files "
                             "of other sizes (a node-local copy that differs? data.root must "
                             "be the same shared folder on every node)",
                             several ? "s" : "", ranks[SIZES], several ? "" : "s",
                             t->cfg->data.root);
    return 0;
}

/* Rank 0's weights and statistics become every rank's (the others' buffers are only written). */
static int broadcast_model(dt_trainer *t, dt_error *err) {
    dt_comm *comm = t->comm;
    if (comm->size == 1) return 0;
    size_t np = dt_model_param_count(t->model), ns = dt_model_stats_count(t->model);
    float *params = malloc(np * sizeof *params), *stats = malloc(ns * sizeof *stats);
    int rc = -1;
    if (!params || !stats) {
        dt_fail(err, "out of memory");
        goto done;
    }
    if ((t->is_root && dt_model_download_state(t->model, params, stats, err)) ||
        comm->ops->broadcast(comm->ctx, params, np * sizeof *params, 0, err) ||
        comm->ops->broadcast(comm->ctx, stats, ns * sizeof *stats, 0, err) ||
        dt_model_upload_state(t->model, params, stats, err))
        goto done;
    rc = 0;
done:
    free(params);
    free(stats);
    return rc;
}

/* The names shown to users (start-up log, the "classes" metadata of the exported models):
 * data.class_names' display name of each class folder, else the folder name. classes.txt keeps
 * the folder names. */
static int make_display_names(dt_trainer *t, dt_error *err) {
    const dt_config *cfg = t->cfg;
    int n = t->ds.n_classes;
    if (!(t->display_names = calloc(n > 0 ? (size_t)n : 1, sizeof *t->display_names)))
        return dt_fail(err, "out of memory");
    for (int i = 0; i < n; i++)
        if (!(t->display_names[i] = strdup(dt_config_display_name(cfg, t->ds.class_names[i]))))
            return dt_fail(err, "out of memory");
    if (!t->is_root) return 0;
    for (int k = 0; k < cfg->data.n_class_names; k++) {
        const char *folder = cfg->data.class_names[k].folder;
        int found = 0;
        for (int i = 0; i < n && !found; i++) found = strcmp(t->ds.class_names[i], folder) == 0;
        if (!found)
            dt_warn("data.class_names: '%s' is not a class folder under %s; its name is unused",
                    folder, cfg->data.root);
    }
    return 0;
}

/* "classes: dog (cane), cavallo, ..." on rank 0: display names, the folder in parentheses where
 * it differs; elided past a few hundred characters. */
static void print_classes(dt_trainer *t) {
    char line[512] = "";
    size_t used = 0;
    int n = t->ds.n_classes, shown = 0;
    for (; shown < n; shown++) {
        const char *name = t->display_names[shown], *folder = t->ds.class_names[shown];
        char item[300];
        if (strcmp(name, folder) != 0)
            snprintf(item, sizeof item, "%s%s (%s)", shown ? ", " : "", name, folder);
        else
            snprintf(item, sizeof item, "%s%s", shown ? ", " : "", name);
        if (used + strlen(item) + 32 >= sizeof line) break;
        memcpy(line + used, item, strlen(item) + 1);
        used += strlen(item);
    }
    if (shown < n)
        dt_progress_line(&t->progress, NULL, "classes: %s, ... (%d more)", line, n - shown);
    else
        dt_progress_line(&t->progress, NULL, "classes: %s", line);
}

static int open_outputs(dt_trainer *t, dt_error *err) {
    if (!t->is_root) return 0;
    const char *dir = t->cfg->output.dir;
    char path[DT_PATH_BYTES];
    if (dt_path_join(path, sizeof path, dir, "config.yaml", err) ||
        dt_export_config(path, t->cfg, err))
        return -1;
    if (dt_path_join(path, sizeof path, dir, "classes.txt", err) ||
        dt_export_classes(path, t->ds.class_names, t->ds.n_classes, err))
        return -1;
    int metrics = t->rel.resume
                      ? dt_metrics_open_resume(&t->metrics, dir, t->rel.last_checkpoint_step, err)
                      : dt_metrics_open(&t->metrics, dir, err);
    return metrics || dt_run_outputs_open(t, err) ? -1 : 0;
}

static int setup(dt_trainer *t, dt_error *err) {
    const dt_config *cfg = t->cfg;
    dt_comm *comm = t->comm;
    dt_thread_plan plan;
    if (dt_thread_plan_make(cfg, comm, &plan, err)) return -1;
    t->threads = plan.threads;
    t->workers = plan.workers;
    if (t->is_root && dt_progress_verbose()) { /* else the counts are in one summary line */
        char waits[160];
        dt_openmp_wait_policy_describe(waits, sizeof waits);
        dt_progress_line(&t->progress, NULL, "%s", plan.why);
        dt_progress_line(&t->progress, NULL, "%s", waits);
    }
    if (dt_rel_setup(t, err)) return -1;
    if (dt_train_open_dataset(comm, cfg->data.root, &t->ds, err)) return -1;
    if (dt_train_check_dataset_shape(t, err)) return -1;
    if (cfg->data.val_root ? dt_dataset_add_val_root(&t->ds, cfg->data.val_root, &t->split, err)
                           : dt_split_make(t->ds.n_files, cfg->data.val_fraction,
                                           cfg->data.split_seed, &t->split, err))
        return -1;
    if (check_consistency(t, err) || make_display_names(t, err)) return -1;
    if (dt_train_global_batch(cfg, comm->size, &t->global_batch, err)) return -1;
    if (t->split.n_train < (size_t)cfg->train.batch_size * (size_t)comm->size)
        return dt_fail_usage(err,
                             "%s: the training part has %zu images, fewer than one batch per rank "
                             "(train.batch_size %d x %d ranks); lower train.batch_size or "
                             "data.val_fraction, or use fewer ranks",
                             cfg->data.root, t->split.n_train, cfg->train.batch_size, comm->size);
    t->steps_per_epoch = (long)((t->split.n_train + t->global_batch - 1) / t->global_batch);
    dt_lr_schedule_from_config(cfg, t->steps_per_epoch, &t->schedule);

    if (create_backend(t, err)) return -1;
    t->have_backend = 1;
    dt_model_options mo = {.batch = cfg->train.batch_size,
                           .image_size = cfg->data.image_size,
                           .n_classes = t->ds.n_classes,
                           .freeze_backbone = cfg->model.freeze == DT_FREEZE_BACKBONE};
    if (dt_model_create(&t->backend, &mo, &t->model, err)) return -1;
    /* Rank 0 initialises (and loads model.pretrained): broadcast_model overwrites every parameter
     * and statistic of the other ranks, and nothing else they keep derives from either (the
     * batches_tracked counter is only exported by rank 0). A bad pretrained file fails rank 0,
     * which ends the job like any rank-0 failure. */
    if (t->is_root && (dt_model_init_weights(t->model, cfg->train.seed, err) ||
                       (cfg->model.pretrained && dt_train_load_pretrained(t, err))))
        return -1;
    /* output.dir is locked (and refused if it holds another run) only once every input check
     * has passed: a refused run leaves nothing behind */
    if (dt_rel_claim_output_dir(t, err) || dt_rel_check_output_shared(t, err) ||
        dt_rel_resume(t, err) || broadcast_model(t, err) || setup_gradient_allreduce(t, err) ||
        dt_rel_guard_start(t, err))
        return -1;

    dt_loader_options lo = {.batch_size = cfg->train.batch_size,
                            .image_size = cfg->data.image_size,
                            .resize = cfg->data.resize,
                            .augment = cfg->data.augment,
                            .workers = t->workers,
                            .prefetch_batches = dt_train_prefetch_batches(cfg),
                            .seed = dt_rng_mix(cfg->train.seed, 0xA06u),
                            .cache = cfg->data.cache,
                            .pixel_alloc = t->backend.ops->host_alloc,
                            .pixel_free = t->backend.ops->host_free,
                            .pixel_alloc_user = t->backend.ctx};
    if (dt_loader_create(&t->ds, &lo, &t->loader, err)) return -1;
    size_t b = (size_t)cfg->train.batch_size;
    t->n_rank_indices = (size_t)t->steps_per_epoch * b * (size_t)cfg->train.accumulate;
    if (!(t->weights = calloc(b, sizeof *t->weights)) ||
        !(t->rank_indices = malloc(t->n_rank_indices * sizeof *t->rank_indices)))
        return dt_fail(err, "out of memory");
    return open_outputs(t, err);
}

/* failed: the collectives are aborted first (the caller's host-comm abort follows) */
static void teardown(dt_trainer *t, int failed) {
    dt_rel_teardown(t);
    if (t->loader) dt_loader_destroy(t->loader);
    if (t->have_dcomm && failed) t->dcomm.ops->abort_collectives(t->dcomm.ctx);
    if (t->have_dcomm) t->dcomm.ops->destroy(t->dcomm.ctx);
    dt_bucket_plan_free(&t->buckets);
    if (t->model) dt_model_destroy(t->model);
    if (t->have_backend) t->backend.ops->destroy(t->backend.ctx);
    if (t->is_root) dt_metrics_close(&t->metrics);
    dt_run_outputs_close(t);
    if (t->display_names)
        for (int i = 0; i < t->ds.n_classes; i++) free(t->display_names[i]);
    free(t->display_names);
    dt_split_free(&t->split);
    dt_dataset_free(&t->ds);
    free(t->weights);
    free(t->rank_indices);
}

/* This rank's samples for the epoch: the global order cut into global batches; inside each,
 * micro-batch j = rank * accumulate + m (a contiguous slice per rank). */
static int plan_epoch(dt_trainer *t, int epoch, dt_error *err) {
    uint32_t *order = NULL;
    size_t n_order;
    if (dt_epoch_order(&t->split, t->cfg->train.seed, epoch, t->cfg->train.shuffle, t->global_batch,
                       &order, &n_order, err))
        return -1;
    size_t b = (size_t)t->cfg->train.batch_size, accumulate = (size_t)t->cfg->train.accumulate;
    size_t per_rank = b * accumulate;
    size_t steps = n_order / t->global_batch;
    if ((long)steps != t->steps_per_epoch) {
        free(order);
        return dt_fail(err, "internal: epoch order has %zu steps, expected %ld", steps,
                       t->steps_per_epoch);
    }
    for (size_t s = 0; s < steps; s++)
        memcpy(t->rank_indices + s * per_rank,
               order + s * t->global_batch + (size_t)t->comm->rank * per_rank,
               per_rank * sizeof *t->rank_indices);
    free(order);
    return 0;
}

/* Test-only fault switch: DTRAIN_TEST_FAIL_RANK=r DTRAIN_TEST_FAIL_STEP=s makes rank r fail at
 * optimizer step s. Returns that step for this rank, or -1. */
static long injected_fault_step(const dt_comm *comm) {
    const char *rank = getenv("DTRAIN_TEST_FAIL_RANK"), *step = getenv("DTRAIN_TEST_FAIL_STEP");
    return rank && step && atoi(rank) == comm->rank ? atol(step) : -1;
}

int dt_train_forward_loss(dt_trainer *t, const dt_batch *batch, int training, float grad_scale,
                          dt_error *err) {
    const dt_config *cfg = t->cfg;
    int b = batch->batch_size;
    for (int i = 0; i < b; i++) t->weights[i] = batch->counts[i] ? 1.0f : 0.0f;
    if (dt_model_forward(t->model, batch->pixels, cfg->data.mean, cfg->data.std, training, err) ||
        dt_model_loss(t->model, batch->labels, t->weights, grad_scale, NULL, err))
        return -1;
    return 0;
}

int dt_train_release_batch(dt_trainer *t, const dt_batch *batch, dt_error *err) {
    int rc = t->backend.ops->input_wait(t->backend.ctx, err);
    dt_loader_release(t->loader, batch);
    return rc;
}

/* One micro-batch: forward, loss, backward (accumulating after the first). The loss is the
 * mean over this micro-batch; the optimizer step divides the sum over micro-batches and ranks
 * by their number (see optimizer_step). */
static int train_micro_batch(dt_trainer *t, const dt_batch *batch, int micro, dt_error *err) {
    int counted = batch->n_counted > 0 ? batch->n_counted : 1;
    /* the step's last backward hands each bucket to the all-reduce as it completes */
    int report = t->comm->size > 1 && micro + 1 == t->cfg->train.accumulate;
    if (report) dt_bucket_plan_reset(&t->buckets);
    if (dt_train_forward_loss(t, batch, 1, 1.0f / (float)counted, err)) return -1;
    return dt_model_backward(t->model, micro > 0, report, err);
}

/* Queues the update without waiting for the device: the backend's non-finite guard decides
 * whether it applies (dt_rel_guard_step); the host learns it at the next guard_sync. */
static int optimizer_step(dt_trainer *t, long global_step, dt_window *w, dt_error *err) {
    size_t offset, count;
    dt_model_trainable_span(t->model, &offset, &count);
    float *grads = dt_model_grads(t->model) + offset;
    const dt_backend_ops *ops = t->backend.ops;
    /* the buckets were all-reduced during backward (the test switch's NaN went into the one
     * holding the first trained value); the update waits for the last of them */
    if (t->comm->size == 1 && dt_rel_before_allreduce(t, global_step, grads, err)) return -1;
    if (t->comm->size > 1 && (dt_bucket_plan_check_done(&t->buckets, err) ||
                              ops->phase_mark(t->backend.ctx, DT_PHASE_ALLREDUCE, err) ||
                              t->dcomm.ops->wait(t->dcomm.ctx, err) ||
                              ops->phase_mark(t->backend.ctx, DT_PHASE_COMPUTE, err)))
        return dt_error_prefix(err, "all-reduce of gradients");
    if (dt_rel_guard_step(t, global_step, grads, count, err)) return -1;
    const dt_config *cfg = t->cfg;
    double lr = dt_lr_at(&t->schedule, global_step);
    /* grads hold the sum of (ranks x accumulate) micro-batch means: average them inside the
     * update, one multiplication for both, so that N ranks and N accumulation steps do the same
     * arithmetic up to the order of the summation */
    dt_sgd_params p = {.grad_scale = 1.0f / ((float)t->comm->size * (float)cfg->train.accumulate),
                       .lr = (float)lr,
                       .momentum = (float)cfg->train.momentum,
                       .weight_decay = (float)cfg->train.weight_decay,
                       .nesterov = cfg->train.nesterov,
                       .first_step = global_step == 0,
                       .guarded = 1};
    w->lr = lr;
    return t->backend.ops->sgd_step(t->backend.ctx, &p, dt_model_params(t->model) + offset, grads,
                                    dt_model_momentum(t->model) + offset, count, err);
}

static void window_start(dt_trainer *t, dt_window *w, double now) {
    memset(w, 0, sizeof *w);
    w->start = now;
    w->wait_start = dt_loader_wait_seconds(t->loader);
}

/* The console state after global_step steps (step_in_epoch of epoch): position, ETA from the
 * remaining steps at step_seconds each, and the last log line's loss, accuracy and speed. */
static dt_progress_state progress_state(const dt_trainer *t, int epoch, long step_in_epoch,
                                        long global_step, double step_seconds) {
    dt_progress_state s = t->last_progress;
    s.epoch = epoch;
    s.epochs = t->cfg->train.epochs;
    s.step_in_epoch = step_in_epoch;
    s.steps_per_epoch = t->steps_per_epoch;
    s.global_step = global_step;
    s.total_steps = t->schedule.total_steps;
    s.eta_s = (double)(t->schedule.total_steps - global_step) * step_seconds;
    return s;
}

/* All ranks: read the window's statistics from the backend (the one wait for the device in a
 * log window) and sum them over ranks, then rank 0 logs them. */
static int log_window(dt_trainer *t, int epoch, long step_in_epoch, long global_step, dt_window *w,
                      dt_error *err) {
    double stats[DT_LOSS_STATS], phases[DT_PHASE_COUNT] = {0};
    if (t->dcomm.ops->drain(t->dcomm.ctx, err) ||
        t->backend.ops->loss_stats_read(t->backend.ctx, stats, 1, err) ||
        t->backend.ops->phase_read(t->backend.ctx, phases, 1, err))
        return dt_error_prefix(err, "reading the training statistics");
    double data_wait = dt_loader_wait_seconds(t->loader) - w->wait_start;
    double sums[6] = {stats[DT_LOSS_SUM],
                      stats[DT_LOSS_CORRECT],
                      stats[DT_LOSS_COUNT],
                      phases[DT_PHASE_ALLREDUCE],
                      data_wait,
                      stats[DT_LOSS_NONFINITE]};
    dt_rel_phase(t, "statistics all-reduce", global_step, 0);
    if (t->comm->ops->allreduce_double(t->comm->ctx, sums, 6, DT_REDUCE_SUM, err))
        return dt_error_prefix(err, "all-reduce of training statistics");
    double now = dt_monotonic_seconds();
    double seconds = now - w->start;
    if (sums[2] == 0) { /* every file of the window failed to decode: no loss to report */
        dt_train_report_empty_window(t, w, epoch, global_step);
        window_start(t, w, now);
        return 0;
    }
    double loss = sums[0] / sums[2];
    if (sums[5] > 0 && isfinite(loss)) loss = NAN; /* a non-finite sample loss cancelled out */
    if (!isfinite(loss) && t->cfg->train.nonfinite != DT_NONFINITE_SKIP)
        return dt_fail(err,
                       "training diverged: the loss is %s at epoch %d step %ld (try a lower "
                       "train.lr)",
                       isnan(loss) ? "NaN" : "infinite", epoch, global_step);
    if (t->is_root) {
        double imgs = (double)w->steps * (double)t->global_batch;
        double img_per_s = seconds > 0 ? imgs / seconds : 0;
        t->step_seconds_avg = w->steps > 0 ? seconds / w->steps : t->step_seconds_avg;
        dt_progress_state s =
            progress_state(t, epoch, step_in_epoch, global_step, t->step_seconds_avg);
        s.loss = loss;
        s.acc = sums[1] / sums[2];
        s.img_per_s = img_per_s;
        s.lr = w->lr;
        s.has_stats = 1;
        dt_progress_log(&t->progress, &s);
        t->last_progress = s;
        dt_train_row row = {.epoch = epoch,
                            .step = global_step,
                            .loss = loss,
                            .acc = sums[1] / sums[2],
                            .lr = w->lr,
                            .img_per_s = img_per_s,
                            .elapsed_s = now - t->start};
        if (dt_metrics_train(&t->metrics, &row, err) || dt_run_outputs_train(t, &row, err))
            return -1;
        t->allreduce_total_s += sums[3] / t->comm->size;
        t->data_wait_total_s += sums[4] / t->comm->size;
        t->window_total_s += seconds;
    }
    window_start(t, w, now);
    return 0;
}

/* Takes the next micro-batch of the epoch from the loader and starts its copy to the device,
 * so that the copy overlaps the rest of this step (the optimizer included) instead of starting
 * at the next forward. Called once the current batch is released: one batch held at a time. */
static int prefetch_batch(dt_trainer *t, const dt_batch **next, dt_error *err) {
    if (dt_loader_next(t->loader, next, err)) return -1;
    if (!*next) return dt_fail(err, "internal: the loader ran out of batches early");
    size_t side = (size_t)t->cfg->data.image_size;
    size_t bytes = (size_t)(*next)->batch_size * side * side * 3;
    return t->backend.ops->input_prefetch(t->backend.ctx, (*next)->pixels, bytes, err);
}

static int train_epoch_steps(dt_trainer *t, int epoch, long first, const dt_batch **pending,
                             dt_error *err);

/* Steps first.. of the epoch (first > 0 after a resume). */
static int train_epoch(dt_trainer *t, int epoch, long first, dt_error *err) {
    const dt_config *cfg = t->cfg;
    size_t skipped = (size_t)first * (size_t)cfg->train.batch_size * (size_t)cfg->train.accumulate;
    if (plan_epoch(t, epoch, err) || dt_loader_start(t->loader, t->rank_indices + skipped,
                                                     t->n_rank_indices - skipped, epoch, 1, err))
        return -1;
    const dt_batch *pending = NULL; /* the next micro-batch, its copy started */
    int rc = train_epoch_steps(t, epoch, first, &pending, err);
    if (pending) { /* a step failed or stopped after the prefetch: its copy ends first */
        dt_error release_err = {{0}, 0};
        if (dt_train_release_batch(t, pending, rc ? &release_err : err)) rc = -1;
    }
    return rc;
}

static int train_epoch_steps(dt_trainer *t, int epoch, long first, const dt_batch **pending,
                             dt_error *err) {
    const dt_config *cfg = t->cfg;
    dt_window w;
    window_start(t, &w, dt_monotonic_seconds());
    for (long s = first; s < t->steps_per_epoch; s++) {
        long global_step = (long)(epoch - 1) * t->steps_per_epoch + s;
        t->step_in_progress = global_step;
        if (global_step == t->fault_step)
            return dt_fail(err, "test fault injected at step %ld (DTRAIN_TEST_FAIL_RANK)",
                           global_step);
        if (dt_rel_before_step(t, global_step, err)) return -1;
        for (int m = 0; m < cfg->train.accumulate; m++) {
            const dt_batch *batch = *pending;
            *pending = NULL;
            if (!batch && dt_loader_next(t->loader, &batch, err)) return -1;
            if (!batch) return dt_fail(err, "internal: the loader ran out of batches early");
            dt_error release_err = {{0}, 0};
            int rc = train_micro_batch(t, batch, m, err);
            if (dt_train_release_batch(t, batch, rc ? &release_err : err)) rc = -1;
            /* forward and backward (with the all-reduce) are queued: the next batch's copy goes
             * before this step's optimizer */
            int more = m + 1 < cfg->train.accumulate || s + 1 < t->steps_per_epoch;
            if (!rc && more && prefetch_batch(t, pending, err)) rc = -1;
            if (rc) return dt_error_prefix(err, "epoch %d step %ld", epoch, global_step);
        }
        if (optimizer_step(t, global_step, &w, err)) return -1;
        w.steps++;
        long done = global_step + 1;
        int last = s + 1 == t->steps_per_epoch;
        if (done % cfg->output.log_every == 0 || last) {
            if (dt_rel_guard_sync(t, &w.skipped, err) || log_window(t, epoch, s + 1, done, &w, err))
                return -1;
        } else if (t->is_root && t->progress.live) {
            /* before the first log line: the seconds per step of this window so far */
            double step_seconds = t->step_seconds_avg > 0
                                      ? t->step_seconds_avg
                                      : (dt_monotonic_seconds() - w.start) / (double)w.steps;
            dt_progress_state live = progress_state(t, epoch, s + 1, done, step_seconds);
            dt_progress_live(&t->progress, &live);
        }
        if (dt_rel_step_end(t, epoch, s + 1, done, err)) return -1;
    }
    const dt_batch *end = NULL;
    if (dt_loader_next(t->loader, &end, err)) return -1;
    if (end) return dt_fail(err, "internal: the loader has batches left at the end of the epoch");
    return 0;
}

static int finish(dt_trainer *t, dt_error *err) {
    /* distinct undecodable files over all ranks */
    size_t n = t->ds.n_files;
    double *bad = calloc(n ? n : 1, sizeof *bad);
    if (!bad) return dt_fail(err, "out of memory");
    const uint8_t *flags = dt_loader_bad_files(t->loader);
    for (size_t i = 0; i < n; i++) bad[i] = flags[i];
    int rc = t->comm->ops->allreduce_double(t->comm->ctx, bad, n, DT_REDUCE_SUM, err);
    long skipped = 0;
    uint8_t *bad_files = calloc(n ? n : 1, 1);
    for (size_t i = 0; bad_files && i < n; i++) skipped += (bad_files[i] = bad[i] > 0);
    skipped += (long)t->ds.n_skipped_members; /* shard members refused while indexing */
    if (!rc)
        rc = bad_files ? dt_run_outputs_done(t, bad_files, err) : dt_fail(err, "out of memory");
    free(bad_files);
    free(bad);
    if (rc) return -1;
    if (dt_rel_finish(t, err)) return -1;
    if (!t->is_root) return 0;
    int finite = 0;
    if (dt_rel_weights_finite(t, &finite, err)) return -1;
    if (!finite)
        return dt_fail(err, "the final weights are not finite (NaN or Inf): model.safetensors "
                            "not written; try a lower train.lr");
    if (dt_train_write_model(t, "model.safetensors", err)) return -1;
    double elapsed = dt_monotonic_seconds() - t->start;
    double best = t->best_val_acc >= 0 ? t->best_val_acc : 0; /* every epoch evaluates */
    dt_done_row done = {.epochs = t->cfg->train.epochs,
                        .best_val_acc = best,
                        .skipped_files = skipped,
                        .elapsed_s = elapsed,
                        .precision = dt_precision_name(t->precision)};
    if (dt_metrics_done(&t->metrics, &done, err)) return -1;
    double window = t->window_total_s > 0 ? t->window_total_s : 1;
    dt_progress_line(&t->progress, NULL,
                     "time: %.1f s in all; of training steps %.1f%% waiting for data, %.1f%% in "
                     "all-reduce",
                     elapsed, 100.0 * t->data_wait_total_s / window,
                     100.0 * t->allreduce_total_s / window);
    if (skipped)
        dt_progress_line(&t->progress, NULL, "skipped %ld undecodable file%s", skipped,
                         skipped == 1 ? "" : "s");
    dt_progress_line(&t->progress, "\033[1;32m",
                     "done: final validation accuracy %.4f (best %.4f); outputs in %s/",
                     t->last_val_acc, best, t->cfg->output.dir);
    return 0;
}

int dt_train_write_model(dt_trainer *t, const char *name, dt_error *err) {
    char path[DT_PATH_BYTES];
    if (dt_path_join(path, sizeof path, t->cfg->output.dir, name, err)) return -1;
    return dt_export_trained_model(t->model, path, t->display_names, t->ds.n_classes, t->cfg, err);
}

/* The start-up summary, one line: data, ranks, device (and why not a GPU, unless
 * DTRAIN_VERBOSE printed it already), threads and steps. */
static void print_summary(dt_trainer *t) {
    char device[320];
    const char *why = t->device.fallback_reason, *tail = strstr(why, "training on the CPU: ");
    if (why[0] && !dt_progress_verbose())
        snprintf(device, sizeof device, "%s (no GPU: %s)", t->backend.ops->name,
                 tail ? tail + strlen("training on the CPU: ") : why);
    else
        snprintf(device, sizeof device, "%s", t->backend.ops->name);
    dt_progress_line(
        &t->progress, NULL,
        "dtrain: %zu images in %d classes (%zu train, %zu val), %d rank%s on %s, "
        "precision %s%s, %d compute thread%s + %d decode worker%s per rank, %ld "
        "steps/epoch of %zu images",
        t->ds.n_files, t->ds.n_classes, t->split.n_train, t->split.n_val, t->comm->size,
        t->comm->size == 1 ? "" : "s", device, dt_precision_name(t->precision),
        t->cfg->runtime.precision == DT_PRECISION_AUTO ? " (runtime.precision: auto)" : "",
        t->threads, t->threads == 1 ? "" : "s", t->workers, t->workers == 1 ? "" : "s",
        t->steps_per_epoch, t->global_batch);
}

static int run(dt_trainer *t, dt_error *err) {
    if (setup(t, err)) return -1;
    if (t->is_root) print_summary(t);
    if (t->is_root) print_classes(t);
    int classes_checked = 0;
    for (int epoch = t->rel.start_epoch; epoch <= t->cfg->train.epochs; epoch++) {
        long first = epoch == t->rel.start_epoch ? t->rel.start_step : 0;
        long end_step = (long)epoch * t->steps_per_epoch;
        if (first < t->steps_per_epoch && train_epoch(t, epoch, first, err)) return -1;
        /* after one whole pass, every training file has been tried once */
        if (first == 0 && !classes_checked++ && dt_train_check_decodable_classes(t, err)) return -1;
        dt_rel_epoch_end_begins(t, epoch);
        if (dt_rel_sync_writer(t, err) || dt_train_evaluate(t, epoch, end_step, err) ||
            dt_rel_checkpoint(t, epoch, end_step, t->steps_per_epoch, 1, 0, err) ||
            dt_rel_epoch_end_stop(t, epoch, end_step, err))
            return -1;
    }
    return finish(t, err);
}

int dt_train_run(const dt_config *cfg, dt_comm *comm, dt_error *err) {
    dt_train_options defaults = {0};
    return dt_train_run_with(cfg, &defaults, comm, err);
}

int dt_train_run_with(const dt_config *cfg, const dt_train_options *opt, dt_comm *comm,
                      dt_error *err) {
    dt_trainer t;
    memset(&t, 0, sizeof t);
    t.rel.resume = opt->resume;
    t.rel.resume_path = opt->resume_path;
    t.rel.overwrite = opt->overwrite;
    t.cfg = cfg;
    t.comm = comm;
    t.is_root = comm->rank == 0;
    t.start = dt_monotonic_seconds();
    t.fault_step = injected_fault_step(comm);
    dt_log_set_rank(comm->rank, comm->size);
    dt_signals_set_rank(comm->rank);
    t.best_val_acc = -1;
    dt_progress_init(&t.progress, stdout, dt_comm_launched_by_mpi());
    int rc = run(&t, err);
    teardown(&t, rc != 0);
    return rc;
}
