/* The set-up of a training run (data, split, threads, device, backend and model through the
 * shared session; output.dir, resume, the gradient all-reduce, outputs), its start-up lines,
 * and its teardown. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/export.h"
#include "dtrain/log.h"
#include "dtrain/platform.h"
#include "dtrain/rng.h"
#include "train/trainer_internal.h"

/* The grads-ready callback: all-reduces every bucket that backward has just completed. */
static int issue_ready_buckets(void *user, size_t offset, size_t count, dt_error *err) {
    dt_trainer *t = user;
    int first, n;
    if (dt_bucket_plan_ready(&t->buckets, offset, count, &first, &n, err)) return -1;
    float *grads = dt_model_grads(t->session.model);
    size_t span_offset, span_count;
    dt_model_trainable_span(t->session.model, &span_offset, &span_count);
    for (int k = first; k < first + n; k++) {
        const dt_bucket *b = &t->buckets.buckets[k];
        /* the test switch's NaN goes into the first trained value, as on one rank */
        if (b->offset <= span_offset && span_offset < b->offset + b->count &&
            dt_train_before_allreduce(t, t->step_in_progress, grads + span_offset, err))
            return -1;
        if (dt_model_phase_mark(t->session.model, DT_PHASE_ALLREDUCE, err) ||
            t->dcomm.ops->allreduce_sum_float(t->dcomm.ctx, grads + b->offset, b->count, err) ||
            dt_model_phase_mark(t->session.model, DT_PHASE_COMPUTE, err))
            return dt_error_prefix(err, "all-reduce of gradient bucket %d (%zu floats)", k,
                                   b->count);
    }
    return 0;
}

/* The device comm, and with several ranks the bucket plan over the trained parameters, hooked
 * to the model's backward. */
static int setup_gradient_allreduce(dt_trainer *t, dt_error *err) {
    if (dt_device_comm_create(t->comm, &t->session.backend, t->session.device.device, &t->dcomm,
                              err))
        return dt_error_prefix(err, "gradient all-reduce");
    t->have_dcomm = 1;
    dt_watchdog_set_abort_hook(t->watchdog, t->dcomm.ops->abort_collectives, t->dcomm.ctx);
    if (t->comm->size == 1) return 0;
    size_t span_offset, span_count, n_entries;
    dt_model_trainable_span(t->session.model, &span_offset, &span_count);
    const dt_state_entry *entries = dt_model_state(t->session.model, &n_entries);
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
    dt_model_set_grads_ready(t->session.model, issue_ready_buckets, t);
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
    uint64_t mine[HASHES] = {dt_config_hash(t->cfg), dt_dataset_hash(&t->session.ds), 0};
    /* Rank 0 scanned data.root and shared its file list (dt_session_open_data): the sizes are
     * checked by rank 0 and by one rank on each other node, where a node-local copy could
     * differ or be missing; 0 means "not checked here" (the ranks on rank 0's node read the
     * same files as rank 0). */
    if ((comm->rank == 0 || (comm->local_rank == 0 && comm->node != 0)) &&
        dt_dataset_size_hash(&t->session.ds, &mine[SIZES], err))
        return dt_error_prefix(err, "data.root %s on this node", t->cfg->data.root);
    if (t->faults.salt_config_hash) mine[CONFIG] ^= 0x5bd1e995u; /* test-only fault switch */
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
    size_t np = dt_model_param_count(t->session.model), ns = dt_model_stats_count(t->session.model);
    float *params = malloc(np * sizeof *params), *stats = malloc(ns * sizeof *stats);
    int rc = -1;
    if (!params || !stats) {
        dt_fail(err, "out of memory");
        goto done;
    }
    if ((t->is_root && dt_model_download_state(t->session.model, params, stats, err)) ||
        comm->ops->broadcast(comm->ctx, params, np * sizeof *params, 0, err) ||
        comm->ops->broadcast(comm->ctx, stats, ns * sizeof *stats, 0, err) ||
        dt_model_upload_state(t->session.model, params, stats, err))
        goto done;
    rc = 0;
done:
    free(params);
    free(stats);
    return rc;
}

/* "classes: dog (cane), cavallo, ..." on rank 0: display names, the folder in parentheses where
 * it differs; elided past a few hundred characters. */
void dt_train_print_classes(dt_trainer *t) {
    char line[512] = "";
    size_t used = 0;
    int n = t->session.ds.n_classes, shown = 0;
    for (; shown < n; shown++) {
        const char *name = t->session.display_names[shown],
                   *folder = t->session.ds.class_names[shown];
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

/* The start-up summary, one line: data, ranks, device (and why not a GPU, unless
 * DTRAIN_VERBOSE printed it already), threads and steps. */
void dt_train_print_summary(dt_trainer *t) {
    char device[320];
    const char *why = t->session.device.fallback_reason,
               *tail = strstr(why, "training on the CPU: ");
    if (why[0] && !dt_progress_verbose())
        snprintf(device, sizeof device, "%s (no GPU: %s)", dt_session_backend_name(&t->session),
                 tail ? tail + strlen("training on the CPU: ") : why);
    else
        snprintf(device, sizeof device, "%s", dt_session_backend_name(&t->session));
    dt_progress_line(&t->progress, NULL,
                     "dtrain: %zu images in %d classes (%zu train, %zu val), %d rank%s on %s, "
                     "precision %s%s, %d compute thread%s + %d decode worker%s per rank, %ld "
                     "steps/epoch of %zu images",
                     t->session.ds.n_files, t->session.ds.n_classes, t->session.split.n_train,
                     t->session.split.n_val, t->comm->size, t->comm->size == 1 ? "" : "s", device,
                     dt_precision_name(t->session.precision),
                     t->cfg->runtime.precision == DT_PRECISION_AUTO ? " (runtime.precision: auto)"
                                                                    : "",
                     t->session.threads, t->session.threads == 1 ? "" : "s", t->session.workers,
                     t->session.workers == 1 ? "" : "s", t->steps_per_epoch, t->global_batch);
}

static int open_outputs(dt_trainer *t, dt_error *err) {
    if (!t->is_root) return 0;
    const char *dir = t->cfg->output.dir;
    char path[DT_PATH_BYTES];
    if (dt_path_join(path, sizeof path, dir, "config.yaml", err) ||
        dt_export_config(path, t->cfg, err))
        return -1;
    if (dt_path_join(path, sizeof path, dir, "classes.txt", err) ||
        dt_export_classes(path, t->session.ds.class_names, t->session.ds.n_classes, err))
        return -1;
    int metrics = t->ckpt.resume ? dt_metrics_open_resume(&t->metrics, dir, t->ckpt.last_step, err)
                                 : dt_metrics_open(&t->metrics, dir, err);
    return metrics || dt_run_outputs_open(t, err) ? -1 : 0;
}

int dt_train_setup(dt_trainer *t, dt_error *err) {
    const dt_config *cfg = t->cfg;
    dt_comm *comm = t->comm;
    dt_session *ses = &t->session;
    dt_session_init(ses, comm, &t->progress);
    dt_session_request request = {.device = cfg->runtime.device,
                                  .precision = cfg->runtime.precision,
                                  .deterministic = cfg->runtime.deterministic,
                                  .threads = cfg->runtime.threads,
                                  .workers = cfg->data.workers,
                                  .gradient_comm = 1};
    if (dt_session_plan_threads(ses, &request, err)) return -1;
    if (dt_watchdog_start(comm, cfg->runtime.timeout_s, &t->watchdog, err)) return -1;
    dt_checkpoints_init(&t->ckpt, cfg, comm, &t->progress, t->watchdog, t->options.resume,
                        t->options.resume_path, t->options.overwrite);
    if (dt_session_open_data(ses, "data.root", cfg->data.root, err) ||
        dt_train_check_dataset_shape(t, err) || dt_session_split(ses, cfg, err) ||
        check_consistency(t, err) || dt_session_display_names(ses, cfg, 1, err))
        return -1;
    if (dt_train_global_batch(cfg, comm->size, &t->global_batch, err)) return -1;
    if (t->session.split.n_train < (size_t)cfg->train.batch_size * (size_t)comm->size)
        return dt_fail_usage(err,
                             "%s: the training part has %zu images, fewer than one batch per rank "
                             "(train.batch_size %d x %d ranks); lower train.batch_size or "
                             "data.val_fraction, or use fewer ranks",
                             cfg->data.root, t->session.split.n_train, cfg->train.batch_size,
                             comm->size);
    t->steps_per_epoch = (long)((t->session.split.n_train + t->global_batch - 1) / t->global_batch);
    dt_lr_schedule_from_config(cfg, t->steps_per_epoch, &t->schedule);

    if (dt_session_create_backend(ses, &request, err)) return -1;
    dt_model_options mo = {.arch = cfg->model.arch,
                           .batch = cfg->train.batch_size,
                           .image_size = cfg->data.image_size,
                           .n_classes = t->session.ds.n_classes,
                           .freeze_backbone = cfg->model.freeze == DT_FREEZE_BACKBONE,
                           .zero_init_residual = cfg->model.zero_init_residual};
    if (dt_session_create_model(ses, &mo, err) ||
        dt_optimizer_init(&t->optimizer, cfg, ses->model, err))
        return -1;
    /* Rank 0 initialises (and loads model.pretrained): broadcast_model overwrites every parameter
     * and statistic of the other ranks, and nothing else they keep derives from either (the
     * batches_tracked counter is only exported by rank 0). A bad pretrained file fails rank 0,
     * which ends the job like any rank-0 failure. */
    if (t->is_root && (dt_model_init_weights(t->session.model, cfg->train.seed, err) ||
                       (cfg->model.pretrained && dt_train_load_pretrained(t, err))))
        return -1;
    /* the weights' average starts as a copy of the model; a resume replaces it with the
     * checkpoint's, a new run copies the broadcast weights below */
    if (cfg->train.ema_decay > 0 &&
        (!(t->ema = calloc(1, sizeof *t->ema))
             ? dt_fail(err, "out of memory")
             : dt_model_ema_init(t->ema, ses->model, cfg->train.ema_decay, err)))
        return -1;
    /* output.dir is locked (and refused if it holds another run) only once every input check
     * has passed: a refused run leaves nothing behind */
    dt_ckpt_run run = dt_train_ckpt_run(t);
    if (dt_checkpoints_claim_output_dir(&t->ckpt, err) ||
        dt_checkpoints_check_output_shared(&t->ckpt, err) ||
        dt_checkpoints_resume(&t->ckpt, ses->model, &run, &t->resumed, err))
        return -1;
    t->best_val_acc = t->resumed.best_val_acc;
    t->last_val_acc = t->resumed.last_val_acc;
    t->early_stop = (dt_early_stop){.patience = cfg->train.early_stop_patience,
                                    .best = t->resumed.early_stop_best,
                                    .best_epoch = t->resumed.early_stop_best_epoch,
                                    .wait = t->resumed.early_stop_wait};
    if (broadcast_model(t, err) || setup_gradient_allreduce(t, err) ||
        dt_guard_start(&t->guard, cfg, t->is_root, t->steps_per_epoch, t->resumed.skipped_in_row,
                       t->resumed.skipped_total, ses->model, err))
        return -1;
    if (t->ema && !t->ckpt.resume &&
        dt_model_ema_init(t->ema, ses->model, cfg->train.ema_decay, err))
        return -1;

    dt_loader_options lo = {.batch_size = cfg->train.batch_size,
                            .image_size = cfg->data.image_size,
                            .resize = cfg->data.resize,
                            .augment = cfg->data.augment,
                            .prefetch_batches = dt_train_prefetch_batches(cfg),
                            .seed = dt_rng_mix(cfg->train.seed, 0xA06u),
                            .cache = cfg->data.cache,
                            .mix = {.mixup_alpha = cfg->train.mixup_alpha,
                                    .cutmix_alpha = cfg->train.cutmix_alpha,
                                    .prob = cfg->train.mix_prob,
                                    .switch_prob = cfg->train.mix_switch_prob},
                            .mix_ranks = t->comm->size,
                            .mix_rank = t->comm->rank,
                            .mix_accumulate = cfg->train.accumulate};
    dt_pixel_augment_from_config(cfg, &lo.pixel_augment);
    if (dt_session_create_loader(ses, &lo, err)) return -1;
    size_t b = (size_t)cfg->train.batch_size;
    t->n_rank_indices = (size_t)t->steps_per_epoch * b * (size_t)cfg->train.accumulate;
    if (!(t->weights = calloc(b, sizeof *t->weights)) ||
        !(t->rank_indices = malloc(t->n_rank_indices * sizeof *t->rank_indices)))
        return dt_fail(err, "out of memory");
    return open_outputs(t, err);
}

/* failed: the collectives are aborted first (the caller's host-comm abort follows) */
void dt_train_teardown(dt_trainer *t, int failed) {
    if (t->pending) { /* a step failed or stopped after the prefetch: its copy ends first */
        dt_error ignored = {{0}, 0};
        dt_train_release_batch(t, t->pending, &ignored);
        t->pending = NULL;
    }
    dt_checkpoints_close(&t->ckpt);
    if (t->watchdog) dt_watchdog_stop(t->watchdog);
    t->watchdog = NULL;
    if (t->have_dcomm && failed) t->dcomm.ops->abort_collectives(t->dcomm.ctx);
    if (t->have_dcomm) t->dcomm.ops->destroy(t->dcomm.ctx);
    dt_bucket_plan_free(&t->buckets);
    dt_optimizer_free(&t->optimizer);
    if (t->is_root) dt_metrics_close(&t->metrics);
    dt_run_outputs_close(t);
    if (t->ema) dt_model_ema_free(t->ema); /* before the model and backend it lives in */
    free(t->ema);
    t->ema = NULL;
    dt_session_close(&t->session);
    free(t->weights);
    free(t->rank_indices);
}
