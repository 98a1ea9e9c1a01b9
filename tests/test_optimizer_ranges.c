/* The weight-decay ranges of the optimizer step (src/nn/optimizer.c, train.no_weight_decay):
 * for every architecture, norm_and_bias leaves weight decay on exactly the tensors of more than
 * one dimension (conv weights, fc.weight) and off every BN weight and bias and fc.bias, as timm's
 * param_groups_weight_decay; the ranges are maximal, ascending and cover the trainable span (the
 * classifier alone with a frozen backbone); none is one decayed range. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dtrain/model.h"
#include "dtrain/optimizer.h"

/* The range holding parameter offset `at`, or NULL. */
static const dt_decay_range *range_of(const dt_decay_range *r, int n, size_t at) {
    for (int i = 0; i < n; i++)
        if (at >= r[i].offset && at < r[i].offset + r[i].count) return &r[i];
    return NULL;
}

static void check_arch(const char *arch, int frozen) {
    dt_model_options opt = {
        .arch = arch, .batch = 2, .image_size = 64, .n_classes = 10, .freeze_backbone = frozen};
    dt_model *m = NULL;
    dt_error err = {{0}, 0};
    if (dt_model_describe(&opt, &m, &err)) {
        CHECK_MSG(0, "%s: %s", arch, err.message);
        return;
    }
    size_t offset, count, n;
    dt_model_trainable_span(m, &offset, &count);
    const dt_state_entry *e = dt_model_state(m, &n);
    dt_decay_range *r = NULL;
    int nr = 0;
    CHECK_MSG(dt_decay_ranges(m, DT_NO_WEIGHT_DECAY_NORM_AND_BIAS, &r, &nr, &err) == 0, "%s",
              err.message);
    size_t at = offset;
    for (int i = 0; i < nr; i++) {
        CHECK_MSG(r[i].offset == at && r[i].count > 0, "%s: range %d not contiguous", arch, i);
        if (i > 0) CHECK_MSG(r[i].decayed != r[i - 1].decayed, "%s: range %d not maximal", arch, i);
        at = r[i].offset + r[i].count;
    }
    CHECK_MSG(at == offset + count, "%s: ranges end at %zu, span at %zu", arch, at, offset + count);
    size_t decayed = 0, excluded = 0, trained = 0;
    for (size_t i = 0; i < n; i++) {
        if (e[i].role != DT_TENSOR_PARAMETER || e[i].offset < offset) continue;
        trained++;
        int want = e[i].ndim > 1;
        const dt_decay_range *first = range_of(r, nr, e[i].offset);
        const dt_decay_range *last = range_of(r, nr, e[i].offset + e[i].count - 1);
        CHECK_MSG(first && first == last && first->decayed == want, "%s: %s should%s decay", arch,
                  e[i].name, want ? "" : " not");
        if (want)
            decayed++;
        else
            excluded++;
        int is_bias =
            strlen(e[i].name) > 5 && strcmp(e[i].name + strlen(e[i].name) - 5, ".bias") == 0;
        if (is_bias) CHECK_MSG(!want, "%s: %s is a bias", arch, e[i].name);
    }
    CHECK(decayed > 0 && excluded > 0);
    if (frozen) CHECK_MSG(trained == 2 && nr == 2, "%s frozen: fc.weight, fc.bias", arch);
    free(r);
    CHECK(dt_decay_ranges(m, DT_NO_WEIGHT_DECAY_NONE, &r, &nr, &err) == 0);
    CHECK_MSG(nr == 1 && r[0].offset == offset && r[0].count == count && r[0].decayed,
              "%s: none is one decayed range", arch);
    free(r);
    dt_model_destroy(m);
}

int main(void) {
    for (int i = 0; i < dt_model_arch_count(); i++) check_arch(dt_model_arch_name(i), 0);
    check_arch("resnet18", 1);
    return dt_test_summary("optimizer_ranges");
}
