/* Model lifetime and state: creation (the builder is nn/resnet.c), flat buffers, torchvision's
 * initialisation, accessors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/rng.h"
#include "nn/model_internal.h"

/* The model's fields from opt, its layers built (or only described when backend is NULL). */
static int model_build(const dt_backend *backend, const dt_model_options *opt, dt_model **out,
                       dt_error *err) {
    *out = NULL;
    const dt_resnet_arch *arch = dt_resnet_arch_find(opt->arch);
    if (!arch) return dt_fail(err, "model: unknown architecture '%s'", opt->arch);
    if (opt->batch < 1 || opt->n_classes < 2 || opt->image_size < 16)
        return dt_fail(err,
                       "model: needs batch >= 1, at least 2 classes and image_size >= 16 "
                       "(got batch %d, %d classes, image_size %d)",
                       opt->batch, opt->n_classes, opt->image_size);
    dt_model *m = calloc(1, sizeof *m);
    if (!m) return dt_fail(err, "model: out of memory");
    if (backend) m->backend = *backend;
    m->arch = arch;
    m->batch = opt->batch;
    m->image_size = opt->image_size;
    m->n_classes = opt->n_classes;
    m->freeze_backbone = opt->freeze_backbone;
    m->zero_init_residual = opt->zero_init_residual;
    m->oihw_weights = opt->oihw_weights;
    if (dt_resnet_build(m, err)) {
        dt_model_destroy(m);
        return -1;
    }
    *out = m;
    return 0;
}

int dt_model_create(const dt_backend *backend, const dt_model_options *opt, dt_model **out,
                    dt_error *err) {
    dt_model *m;
    if (model_build(backend, opt, &m, err)) return -1;
    size_t n = m->layout.n_params;
    if (!(m->params = dt_backend_buffer_alloc(backend, n, err)) ||
        !(m->grads = dt_backend_buffer_alloc(backend, n, err)) ||
        !(m->momentum = dt_backend_buffer_alloc(backend, n, err)) ||
        !(m->stats = dt_backend_buffer_alloc(backend, m->layout.n_stats, err))) {
        dt_error_prefix(err, "model: allocating %zu parameters", n);
        dt_model_destroy(m);
        return -1;
    }
    *out = m;
    return 0;
}

int dt_model_describe(const dt_model_options *opt, dt_model **out, dt_error *err) {
    return model_build(NULL, opt, out, err);
}

int dt_model_conv_descs(const dt_model_options *opt, dt_conv_desc *out, int max) {
    dt_model *m;
    dt_error err = {{0}, 0};
    if (dt_model_describe(opt, &m, &err)) return -1;
    int n = m->n_convs;
    for (int i = 0; i < n && i < max; i++) out[i] = m->conv_descs[i];
    dt_model_destroy(m);
    return n;
}

void dt_model_destroy(dt_model *m) {
    if (!m) return;
    dt_resnet_free(m);
    float *buffers[] = {m->params, m->grads,        m->momentum,
                        m->stats,  m->stats_backup, m->second_moment};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++)
        if (buffers[i]) dt_backend_buffer_free(&m->backend, buffers[i]);
    free(m->own_layouts);
    free(m);
}

const char *dt_model_arch(const dt_model *m) {
    return m->arch->name;
}

const dt_backend *dt_model_backend(const dt_model *m) {
    return &m->backend;
}

static void init_entry(const dt_model *m, const dt_state_entry *e, uint64_t seed, size_t index,
                       float *params, float *stats) {
    dt_rng rng = dt_rng_seeded(dt_rng_mix(seed, index));
    if (e->role == DT_TENSOR_RUNNING_MEAN || e->role == DT_TENSOR_RUNNING_VAR) {
        float value = e->role == DT_TENSOR_RUNNING_VAR ? 1.0f : 0.0f;
        for (size_t i = 0; i < e->count; i++) stats[e->offset + i] = value;
        return;
    }
    if (e->role != DT_TENSOR_PARAMETER) return;
    float *dst = params + e->offset;
    size_t len = strlen(e->name);
    int is_weight = len > 7 && strcmp(e->name + len - 7, ".weight") == 0;
    if (e->in_classifier) {
        /* nn.Linear default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias */
        double bound = 1.0 / sqrt((double)m->features);
        for (size_t i = 0; i < e->count; i++)
            dst[i] = (float)((2.0 * dt_rng_uniform_double(&rng) - 1.0) * bound);
    } else if (e->ndim == 4) {
        /* kaiming_normal_(mode="fan_out", nonlinearity="relu"): std = sqrt(2 / fan_out) */
        double fan_out = (double)(e->shape[0] * e->shape[2] * e->shape[3]);
        double sd = sqrt(2.0 / fan_out);
        for (size_t i = 0; i < e->count; i++) dst[i] = (float)(dt_rng_normal(&rng) * sd);
    } else {
        /* BatchNorm: weight 1 (0 for a block's last with zero_init_residual), bias 0 */
        float weight = e->residual_gamma && m->zero_init_residual ? 0.0f : 1.0f;
        for (size_t i = 0; i < e->count; i++) dst[i] = is_weight ? weight : 0.0f;
    }
}

int dt_model_init_weights(dt_model *m, uint64_t seed, dt_error *err) {
    if (!m->backend.ops) return dt_fail(err, "internal: a described-only model has no weights");
    float *params = calloc(m->layout.n_params, sizeof *params);
    float *stats = calloc(m->layout.n_stats, sizeof *stats);
    int rc = -1;
    if (!params || !stats) {
        dt_fail(err, "model: out of memory initialising weights");
        goto done;
    }
    for (size_t i = 0; i < m->layout.n_entries; i++)
        init_entry(m, &m->layout.entries[i], seed, i, params, stats);
    if (dt_model_param_buffer_upload(m, m->params, params, err) ||
        dt_backend_buffer_upload(&m->backend, m->stats, stats, m->layout.n_stats, err))
        goto done;
    dt_backend_params_changed(&m->backend);
    m->batches_tracked = 0;
    rc = 0;
done:
    free(params);
    free(stats);
    return rc;
}

const dt_state_entry *dt_model_state(const dt_model *m, size_t *n_entries) {
    *n_entries = m->layout.n_entries;
    return m->layout.entries;
}

const dt_state_entry *dt_model_find(const dt_model *m, const char *name) {
    return dt_state_layout_find(&m->layout, name);
}

float *dt_model_params(dt_model *m) {
    return m->params;
}
float *dt_model_grads(dt_model *m) {
    return m->grads;
}
float *dt_model_momentum(dt_model *m) {
    return m->momentum;
}
float *dt_model_stats(dt_model *m) {
    return m->stats;
}
size_t dt_model_param_count(const dt_model *m) {
    return m->layout.n_params;
}
size_t dt_model_stats_count(const dt_model *m) {
    return m->layout.n_stats;
}

void dt_model_trainable_span(const dt_model *m, size_t *offset, size_t *count) {
    if (!m->freeze_backbone) {
        *offset = 0;
        *count = m->layout.n_params;
        return;
    }
    /* fc.weight and fc.bias are the last parameters, contiguous */
    *offset = m->fc_weight;
    *count = m->layout.n_params - m->fc_weight;
}

int64_t dt_model_batches_tracked(const dt_model *m) {
    return m->batches_tracked;
}

void dt_model_set_batches_tracked(dt_model *m, int64_t value) {
    m->batches_tracked = value;
}

int dt_model_download_state(dt_model *m, float *host_params, float *host_stats, dt_error *err) {
    if (dt_model_param_buffer_download(m, host_params, m->params, err) ||
        dt_backend_buffer_download(&m->backend, host_stats, m->stats, m->layout.n_stats, err))
        return dt_error_prefix(err, "model: reading weights back");
    return 0;
}

int dt_model_upload_state(dt_model *m, const float *host_params, const float *host_stats,
                          dt_error *err) {
    if (dt_model_param_buffer_upload(m, m->params, host_params, err) ||
        dt_backend_buffer_upload(&m->backend, m->stats, host_stats, m->layout.n_stats, err))
        return dt_error_prefix(err, "model: loading weights");
    dt_backend_params_changed(&m->backend);
    return 0;
}

void dt_model_set_grads_ready(dt_model *m, dt_grads_ready_fn fn, void *user) {
    m->grads_ready = fn;
    m->grads_ready_user = user;
}
