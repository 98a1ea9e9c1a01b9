/* Writes checkpoint folders crash-safely (include/dtrain/checkpoint.h): files into
 * checkpoints/.tmp-step-N, fsync each, rename the folder, fsync checkpoints/, then replace
 * `latest` durably and remove checkpoints beyond the number to keep. */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dtrain/bytes.h"
#include "dtrain/checkpoint.h"
#include "dtrain/durable.h"
#include "dtrain/output_files.h"
#include "dtrain/platform.h"
#include "dtrain/safetensors.h"
#include "dtrain/signals.h"

void dt_ckpt_payload_free(dt_ckpt_payload *p) {
    if (!p) return;
    free(p->params);
    free(p->stats);
    free(p->momentum);
    free(p->second_moment);
    free(p->optimizer_names);
    free(p->config_yaml);
    free(p->classes);
    free(p->model_tensors);
    free(p->optimizer_tensors);
    free(p->ema_params);
    free(p->ema_stats);
    free(p->ema_tensors);
    memset(p, 0, sizeof *p);
}

static char test_crash_point[32];
static long test_crash_step = -1;

void dt_checkpoint_test_crash_set(const char *point, long step) {
    snprintf(test_crash_point, sizeof test_crash_point, "%s", point);
    test_crash_step = step;
}

/* Test-only: the writer dies here when DTRAIN_TEST_CKPT_CRASH names this point. */
static void crash_point(const char *point, long step) {
    if (test_crash_point[0] && strcmp(test_crash_point, point) == 0 &&
        (test_crash_step < 0 || test_crash_step == step))
        kill(getpid(), SIGKILL);
}

typedef struct file_record {
    const char *name;
    size_t bytes;
    uint64_t checksum;
} file_record;

/* Registered so that an immediate exit (second SIGINT) removes it; the folder's slot, taken
 * first, is removed last. Slots are released when the folder is renamed or removed. */
static int temp_slots[5], n_temp_slots;

static void forget_temporaries(void) {
    for (int i = 0; i < n_temp_slots; i++) dt_temp_forget(temp_slots[i]);
    n_temp_slots = 0;
}

static void remember_temporary(const char *path) {
    if (n_temp_slots < 5) temp_slots[n_temp_slots++] = dt_temp_register(path);
}

static int write_member(const char *dir, file_record *rec, const void *data, size_t size,
                        dt_error *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, rec->name);
    rec->bytes = size;
    rec->checksum = dt_fnv1a64(DT_FNV1A64_INIT, data, size);
    remember_temporary(path);
    return dt_write_file_synced(path, data, size, err);
}

static int write_safetensors(const char *dir, file_record *rec, dt_st_writer *w, dt_error *err) {
    uint8_t *bytes = NULL;
    size_t size = 0;
    if (dt_st_writer_serialize(w, &bytes, &size, err)) return dt_error_prefix(err, "%s", rec->name);
    int rc = write_member(dir, rec, bytes, size, err);
    free(bytes);
    return rc;
}

static int add_tensors(dt_st_writer *w, const dt_ckpt_tensor *tensors, size_t n, dt_error *err) {
    for (size_t i = 0; i < n; i++) {
        const dt_ckpt_tensor *t = &tensors[i];
        const void *data = t->dtype == DT_ST_I64 && t->ndim == 0 ? (const void *)&t->scalar
                                                                 : (const void *)t->data;
        if (dt_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, data, err)) return -1;
    }
    return 0;
}

static int add_model_tensors(dt_st_writer *w, const dt_ckpt_payload *p,
                             const dt_ckpt_tensor *tensors, size_t n, dt_error *err) {
    char hash[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)p->state.config_hash);
    if (dt_st_writer_add_metadata(w, "format", "pt", err) ||
        dt_st_writer_add_metadata(w, "arch", p->arch ? p->arch : "", err) ||
        dt_st_writer_add_metadata(w, "classes", p->classes ? p->classes : "", err) ||
        dt_st_writer_add_metadata(w, "config_hash", hash, err))
        return -1;
    return add_tensors(w, tensors, n, err);
}

static int add_momentum_tensors(dt_st_writer *w, const dt_ckpt_payload *p, dt_error *err) {
    int adamw = p->optimizer && strcmp(p->optimizer, "adamw") == 0;
    char step[32];
    snprintf(step, sizeof step, "%ld", p->optimizer_step);
    if (dt_st_writer_add_metadata(w, "format", "pt", err) ||
        dt_st_writer_add_metadata(w, "optimizer", adamw ? "adamw" : "sgd", err) ||
        dt_st_writer_add_metadata(
            w, "contents", adamw ? "AdamW exp_avg and exp_avg_sq" : "SGD momentum buffers", err) ||
        (adamw && dt_st_writer_add_metadata(w, "step", step, err)))
        return -1;
    return add_tensors(w, p->optimizer_tensors, p->n_optimizer_tensors, err);
}

/* state.json: one key per line; the last line's checksum covers every byte before it. */
static char *render_state(const dt_ckpt_state *s, const file_record *files, int n_files) {
    dt_text t = {0};
    dt_text_printf(&t,
                   "{\n  \"format\": \"dtrain-checkpoint-1\",\n  \"epoch\": %d,\n  \"step\": %ld,\n"
                   "  \"step_in_epoch\": %ld,\n  \"steps_per_epoch\": %ld,\n  \"evaluated\": %d,\n"
                   "  \"best_val_acc\": %.17g,\n  \"last_val_acc\": %.17g,\n"
                   "  \"batches_tracked\": %lld,\n  \"skipped_in_row\": %ld,\n"
                   "  \"skipped_total\": %ld,\n  \"train_seed\": %llu,\n"
                   "  \"config_hash\": \"%016llx\",\n  \"file_list_hash\": \"%016llx\",\n"
                   "  \"ranks\": %d,\n  \"global_batch\": %ld,\n",
                   s->epoch, s->step, s->step_in_epoch, s->steps_per_epoch, s->evaluated,
                   s->best_val_acc, s->last_val_acc, (long long)s->batches_tracked,
                   s->skipped_in_row, s->skipped_total, (unsigned long long)s->train_seed,
                   (unsigned long long)s->config_hash, (unsigned long long)s->file_list_hash,
                   s->ranks, s->global_batch);
    dt_text_printf(&t,
                   "  \"early_stop_best\": %.17g,\n  \"early_stop_best_epoch\": %d,\n"
                   "  \"early_stop_wait\": %ld,\n  \"files\": {",
                   s->early_stop_best, s->early_stop_best_epoch, s->early_stop_wait);
    for (int i = 0; i < n_files; i++)
        dt_text_printf(&t, "%s\n    \"%s\": {\"bytes\": %zu, \"fnv1a64\": \"%016llx\"}",
                       i ? "," : "", files[i].name, files[i].bytes,
                       (unsigned long long)files[i].checksum);
    dt_text_printf(&t, "\n  },\n");
    uint64_t sum = dt_fnv1a64(DT_FNV1A64_INIT, t.data, t.length);
    dt_text_printf(&t, "  \"checksum\": \"%016llx\"\n}\n", (unsigned long long)sum);
    if (t.failed) {
        free(t.data);
        return NULL;
    }
    return t.data;
}

/* Removes step-* folders beyond the newest `keep` (never the one just written). */
static void prune(const char *root, int keep, long current) {
    DIR *d = opendir(root);
    if (!d) return;
    long steps[4096];
    int n = dt_checkpoint_list_steps(d, NULL, steps, 4096);
    for (int i = keep; i < n; i++) {
        if (steps[i] == current) continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/step-%08ld", root, steps[i]);
        dt_remove_tree(path);
    }
}

int dt_checkpoint_write(const char *output_dir, const dt_ckpt_payload *p, int keep,
                        dt_ckpt_report *report, dt_error *err) {
    double t0 = dt_monotonic_seconds();
    char root[4200], tmp[4300], final[4300];
    snprintf(root, sizeof root, "%s/checkpoints", output_dir);
    /* a vanished output.dir is not created again, a symlinked checkpoints/ not followed */
    if (dt_output_dir_check(err) || dt_output_refuse_link(root, err) ||
        dt_make_directories(root, err))
        return -1;
    char name[64];
    snprintf(name, sizeof name, "step-%08ld", p->state.step);
    snprintf(tmp, sizeof tmp, "%s/.tmp-%s", root, name);
    snprintf(final, sizeof final, "%s/%s", root, name);
    dt_remove_tree(tmp);
    if (mkdir(tmp, 0755) != 0) return dt_fail(err, "creating %s: %s", tmp, strerror(errno));
    remember_temporary(tmp);
    file_record files[4] = {{"model.safetensors", 0, 0},
                            {"optimizer.safetensors", 0, 0},
                            {"config.yaml", 0, 0},
                            {"ema.safetensors", 0, 0}};
    int n_files = p->n_ema_tensors ? 4 : 3, rc = -1;
    char *state = NULL;
    dt_st_writer *model = dt_st_writer_create(), *optimizer = dt_st_writer_create(),
                 *ema = p->n_ema_tensors ? dt_st_writer_create() : NULL;
    if (!model || !optimizer || (p->n_ema_tensors && !ema)) {
        dt_fail(err, "writing %s: out of memory", tmp);
        goto done;
    }
    if (add_model_tensors(model, p, p->model_tensors, p->n_model_tensors, err) ||
        write_safetensors(tmp, &files[0], model, err))
        goto done;
    if (ema && (add_model_tensors(ema, p, p->ema_tensors, p->n_ema_tensors, err) ||
                write_safetensors(tmp, &files[3], ema, err)))
        goto done;
    crash_point("model", p->state.step);
    if (add_momentum_tensors(optimizer, p, err) ||
        write_safetensors(tmp, &files[1], optimizer, err))
        goto done;
    crash_point("optimizer", p->state.step);
    if (write_member(tmp, &files[2], p->config_yaml, p->config_length, err)) goto done;
    if (!(state = render_state(&p->state, files, n_files))) {
        dt_fail(err, "writing %s: out of memory", tmp);
        goto done;
    }
    file_record state_file = {"state.json", 0, 0};
    if (write_member(tmp, &state_file, state, strlen(state), err)) goto done;
    crash_point("state", p->state.step);
    if (dt_fsync_directory(tmp, err)) goto done;
    crash_point("before-rename", p->state.step);
    /* a folder of the same step from an interrupted earlier attempt is replaced */
    dt_remove_tree(final);
    if (rename(tmp, final) != 0) {
        dt_fail(err, "renaming %s to %s: %s", tmp, final, strerror(errno));
        goto done;
    }
    forget_temporaries();
    if (dt_fsync_directory(root, err)) goto done;
    crash_point("after-rename", p->state.step);
    char latest[4300], pointer[80];
    snprintf(latest, sizeof latest, "%s/latest", root);
    snprintf(pointer, sizeof pointer, "%s\n", name);
    if (dt_replace_file_durably(latest, pointer, strlen(pointer), err)) goto done;
    crash_point("after-latest", p->state.step);
    prune(root, keep, p->state.step);
    rc = 0;
    if (report) {
        snprintf(report->name, sizeof report->name, "%s", name);
        report->step = p->state.step;
        report->bytes =
            files[0].bytes + files[1].bytes + files[2].bytes + files[3].bytes + strlen(state);
        report->seconds = dt_monotonic_seconds() - t0;
    }
done:
    if (rc) dt_remove_tree(tmp);
    forget_temporaries();
    free(state);
    dt_st_writer_destroy(model);
    dt_st_writer_destroy(optimizer);
    if (ema) dt_st_writer_destroy(ema);
    return rc;
}

int dt_checkpoint_adopt(const char *output_dir, const char *dir, long step, dt_error *err) {
    char root[4200], parent[4400], real_root[PATH_MAX], real_parent[PATH_MAX], name[256];
    snprintf(root, sizeof root, "%s/checkpoints", output_dir);
    snprintf(parent, sizeof parent, "%s/..", dir);
    if (!realpath(root, real_root) || !realpath(parent, real_parent) ||
        strcmp(real_root, real_parent) != 0)
        return 0;
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    const char *base = dir + n;
    while (base > dir && base[-1] != '/') base--;
    snprintf(name, sizeof name, "%.*s\n", (int)(dir + n - base), base);
    char latest[4300];
    snprintf(latest, sizeof latest, "%s/latest", root);
    uint8_t *current = NULL;
    size_t size = 0;
    dt_error ignored = {{0}, 0};
    int same = dt_read_file(latest, 4096, &current, &size, &ignored) == 0 && size == strlen(name) &&
               memcmp(current, name, size) == 0;
    free(current);
    if (!same && dt_replace_file_durably(latest, name, strlen(name), err))
        return dt_error_prefix(err, "--resume: pointing latest at %s", dir);
    DIR *d = opendir(root);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long s;
        if (!dt_checkpoint_folder_step(e->d_name, &s) || s <= step) continue;
        char path[4500];
        snprintf(path, sizeof path, "%s/%s", root, e->d_name);
        if (dt_remove_tree(path) != 0) {
            int saved = errno;
            closedir(d);
            return dt_fail(err, "--resume: removing %s (newer than %s): %s", path, dir,
                           strerror(saved));
        }
    }
    closedir(d);
    return dt_fsync_directory(root, err);
}
