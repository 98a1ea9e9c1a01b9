/* Checks of what the data and the derived sizes allow: at least two classes, a global batch that
 * fits, a bounded prefetch ring, and no class whose every image fails to decode (its loss would
 * be 0/0 and it could never be learnt). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/limits.h"
#include "dtrain/log.h"
#include "train/trainer_internal.h"

int dt_train_check_dataset_shape(dt_trainer *t, dt_error *err) {
    if (t->session.ds.n_classes >= 2) return 0;
    return dt_fail_usage(err,
                         "data.root %s: only one class folder ('%s'); a classifier needs at "
                         "least two (one sub-folder per class)",
                         t->session.ds.root,
                         t->session.ds.n_classes ? t->session.ds.class_names[0] : "");
}

int dt_train_global_batch(const dt_config *cfg, int ranks, size_t *global_batch, dt_error *err) {
    size_t batch = (size_t)cfg->train.batch_size, n = (size_t)(ranks > 0 ? ranks : 1);
    size_t accumulate = (size_t)cfg->train.accumulate;
    if (batch > SIZE_MAX / n || batch * n > SIZE_MAX / accumulate)
        return dt_fail_usage(err,
                             "train.batch_size %d x %d ranks x train.accumulate %d is too large",
                             cfg->train.batch_size, ranks, cfg->train.accumulate);
    *global_batch = batch * n * accumulate;
    return 0;
}

int dt_train_prefetch_batches(const dt_config *cfg) {
    /* Two optimizer steps ahead for small accumulations; beyond that the decode threads only
     * need to stay ahead of one micro-batch at a time, and each buffer costs a whole batch. */
    enum { MOST = 16 };
    int wanted = cfg->train.accumulate <= (MOST - 2) / 2 ? 2 * cfg->train.accumulate + 2 : MOST;
    return wanted <= DT_MAX_PREFETCH_BATCHES ? wanted : DT_MAX_PREFETCH_BATCHES;
}

void dt_train_report_empty_window(const dt_trainer *t, const dt_window *w, int epoch,
                                  long global_step) {
    if (!t->is_root) return;
    dt_warn("no decodable image in the last %ld step%s (epoch %d, up to step %ld): every file of "
            "those batches failed to decode (named above); they trained nothing",
            w->steps, w->steps == 1 ? "" : "s", epoch, global_step);
}

int dt_train_check_decodable_classes(dt_trainer *t, dt_error *err) {
    size_t n = t->session.ds.n_files;
    double *bad = calloc(n ? n : 1, sizeof *bad);
    size_t *tried = calloc((size_t)t->session.ds.n_classes, sizeof *tried);
    size_t *failed = calloc((size_t)t->session.ds.n_classes, sizeof *failed);
    int rc = 0;
    if (!bad || !tried || !failed) {
        rc = dt_fail(err, "out of memory");
        goto done;
    }
    /* each rank flags the files it decoded; together they tried every training file */
    const uint8_t *flags = dt_loader_bad_files(t->session.loader);
    for (size_t i = 0; i < n; i++) bad[i] = flags[i];
    if (t->comm->ops->allreduce_double(t->comm->ctx, bad, n, DT_REDUCE_SUM, err)) {
        rc = dt_error_prefix(err, "all-reduce of the undecodable files");
        goto done;
    }
    for (size_t k = 0; k < t->session.split.n_train; k++) {
        uint32_t file = t->session.split.train[k];
        int label = t->session.ds.files[file].label;
        tried[label]++;
        failed[label] += bad[file] > 0;
    }
    for (int c = 0; c < t->session.ds.n_classes && rc == 0; c++) {
        if (tried[c] == 0 || failed[c] < tried[c]) continue;
        rc = dt_fail(err,
                     "class '%s' (folder %s/%s) has no decodable image: all %zu of its training "
                     "images failed to decode (named in the warnings above); fix or remove them, "
                     "or remove the class folder",
                     t->session.display_names[c], t->session.ds.root, t->session.ds.class_names[c],
                     tried[c]);
    }
done:
    free(bad);
    free(tried);
    free(failed);
    return rc;
}
