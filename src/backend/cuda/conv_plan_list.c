/* The plans a run builds (conv_plan_list.h). */
#include "conv_plan_list.h"

#include <string.h>

int dt_conv_layer_passes(const dt_conv_desc *d, dt_conv_pass out[3]) {
    int n = 0;
    out[n++] = DT_CONV_FORWARD;
    if (d->no_backward) return n;
    out[n++] = DT_CONV_BACKWARD_FILTER;
    if (!d->no_input_grad) out[n++] = DT_CONV_BACKWARD_DATA;
    return n;
}

dt_conv_plan_key dt_conv_plan_key_of(const dt_conv_desc *d, dt_conv_pass pass) {
    dt_conv_plan_key k;
    memset(&k, 0, sizeof k); /* padding too: keys compare field by field below */
    k.shape = *d;
    k.shape.no_input_grad = 0;
    k.shape.no_backward = 0;
    k.pass = pass;
    return k;
}

static int same_shape(const dt_conv_desc *a, const dt_conv_desc *b) {
    return a->batch == b->batch && a->in_channels == b->in_channels &&
           a->out_channels == b->out_channels && a->in_height == b->in_height &&
           a->in_width == b->in_width && a->kernel == b->kernel && a->stride == b->stride &&
           a->padding == b->padding;
}

int dt_conv_plan_key_equal(const dt_conv_plan_key *a, const dt_conv_plan_key *b) {
    return a->pass == b->pass && same_shape(&a->shape, &b->shape);
}

int dt_conv_plan_list(const dt_conv_desc *layers, int n, dt_conv_plan_key *out, int max) {
    int count = 0;
    for (int i = 0; i < n; i++) {
        dt_conv_pass passes[3];
        int np = dt_conv_layer_passes(&layers[i], passes);
        for (int p = 0; p < np; p++) {
            dt_conv_plan_key k = dt_conv_plan_key_of(&layers[i], passes[p]);
            int known = 0;
            for (int j = 0; j < count && !known; j++) known = dt_conv_plan_key_equal(&out[j], &k);
            if (known) continue;
            if (count == max) return -1;
            out[count++] = k;
        }
    }
    return count;
}

int dt_conv_plan_list_shapes(const dt_conv_plan_key *keys, int n) {
    int shapes = 0;
    for (int i = 0; i < n; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) seen = same_shape(&keys[j].shape, &keys[i].shape);
        shapes += !seen;
    }
    return shapes;
}
