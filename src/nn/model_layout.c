/* The convolution weights' layouts in the model's parameter-shaped buffers: which layers keep a
 * layout of their own (the CPU backend keeps its kernels' formats, so that no step reorders
 * weights or gradients), the model's identifier of them, and the conversions to and from the
 * OIHW host arrays that files, broadcasts and tests use. */
#include <stdlib.h>
#include <string.h>

#include "dtrain/bytes.h"
#include "nn/model_internal.h"

int dt_model_note_weight_layout(dt_model *m, dt_layer *conv, size_t offset, size_t count,
                                dt_error *err) {
    const uint64_t layout = dt_backend_conv_weight_layout(&m->backend, conv);
    /* FNV-1a over (index, layout) of every convolution, kept 0 while all are OIHW */
    if (layout || m->weight_layout) {
        const uint64_t entry[2] = {(uint64_t)m->n_convs, layout};
        const uint64_t hash =
            dt_fnv1a64(m->weight_layout ? m->weight_layout : DT_FNV1A64_INIT, entry, sizeof entry);
        m->weight_layout = hash ? hash : 1;
    }
    if (!layout) return 0;
    dt_own_layout *grown =
        realloc(m->own_layouts, (size_t)(m->n_own_layouts + 1) * sizeof *m->own_layouts);
    if (!grown) return dt_fail(err, "model: out of memory");
    m->own_layouts = grown;
    m->own_layouts[m->n_own_layouts++] = (dt_own_layout){conv, offset, count};
    if (count > m->own_layout_max) m->own_layout_max = count;
    return 0;
}

uint64_t dt_model_weight_layout(const dt_model *m) {
    return m->weight_layout;
}

int dt_model_own_layout_count(const dt_model *m, int *total) {
    *total = m->n_convs;
    return m->n_own_layouts;
}

int dt_model_param_buffer_download(dt_model *m, float *host, const float *buffer, dt_error *err) {
    if (dt_backend_buffer_download(&m->backend, host, buffer, m->layout.n_params, err)) return -1;
    if (!m->n_own_layouts) return 0;
    float *layer = malloc(m->own_layout_max * sizeof *layer);
    if (!layer) return dt_fail(err, "model: out of memory converting weight layouts");
    int rc = 0;
    for (int i = 0; i < m->n_own_layouts && !rc; i++) {
        const dt_own_layout *o = &m->own_layouts[i];
        memcpy(layer, host + o->offset, o->count * sizeof *layer);
        rc = dt_backend_conv_weights_convert(&m->backend, o->conv, host + o->offset, layer, 0, err);
    }
    free(layer);
    return rc ? dt_error_prefix(err, "model: converting weights to OIHW") : 0;
}

int dt_model_param_buffer_upload(dt_model *m, float *buffer, const float *host, dt_error *err) {
    if (!m->n_own_layouts)
        return dt_backend_buffer_upload(&m->backend, buffer, host, m->layout.n_params, err);
    float *converted = malloc(m->layout.n_params * sizeof *converted);
    if (!converted) return dt_fail(err, "model: out of memory converting weight layouts");
    memcpy(converted, host, m->layout.n_params * sizeof *converted);
    int rc = 0;
    for (int i = 0; i < m->n_own_layouts && !rc; i++) {
        const dt_own_layout *o = &m->own_layouts[i];
        rc = dt_backend_conv_weights_convert(&m->backend, o->conv, converted + o->offset,
                                             host + o->offset, 1, err);
    }
    if (rc)
        dt_error_prefix(err, "model: converting weights from OIHW");
    else
        rc = dt_backend_buffer_upload(&m->backend, buffer, converted, m->layout.n_params, err);
    free(converted);
    return rc;
}
