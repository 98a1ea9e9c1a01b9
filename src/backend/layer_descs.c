/* The checks of the layer descriptions of include/dtrain/backend.h, shared by every backend, so
 * that a description is accepted or refused alike, with the same message, on the CPU and the GPU,
 * and the output sizes come from one formula; and the tensor shape checks of their ops. */
#include "dtrain/backend.h"

static int out_size(int in, int kernel, int stride, int padding) {
    return (in + 2 * padding - kernel) / stride + 1;
}

int dt_conv_desc_check(const dt_conv_desc *d, int *out_height, int *out_width, dt_error *err) {
    if (d->batch <= 0 || d->in_channels <= 0 || d->out_channels <= 0 || d->in_height <= 0 ||
        d->in_width <= 0 || d->kernel <= 0 || d->stride <= 0 || d->padding < 0)
        return dt_fail(err,
                       "conv_create: invalid description (batch %d, channels %d->%d, %dx%d, "
                       "kernel %d, stride %d, padding %d)",
                       d->batch, d->in_channels, d->out_channels, d->in_height, d->in_width,
                       d->kernel, d->stride, d->padding);
    if (d->in_height + 2 * d->padding < d->kernel || d->in_width + 2 * d->padding < d->kernel)
        return dt_fail(err, "conv_create: kernel %d is larger than the padded %dx%d input",
                       d->kernel, d->in_height, d->in_width);
    *out_height = out_size(d->in_height, d->kernel, d->stride, d->padding);
    *out_width = out_size(d->in_width, d->kernel, d->stride, d->padding);
    return 0;
}

/* Summed over the output positions of one axis: the taps whose input index is inside it. */
static double taps_inside(int in, int kernel, int stride, int padding) {
    const int out = out_size(in, kernel, stride, padding);
    double taps = 0;
    for (int o = 0; o < out; o++) {
        const int first = o * stride - padding, last = first + kernel - 1;
        taps += (last < in - 1 ? last : in - 1) - (first > 0 ? first : 0) + 1;
    }
    return taps;
}

double dt_conv_desc_macs(const dt_conv_desc *d, int with_padding) {
    const double channels = (double)d->batch * d->in_channels * d->out_channels;
    if (with_padding)
        return channels * out_size(d->in_height, d->kernel, d->stride, d->padding) *
               out_size(d->in_width, d->kernel, d->stride, d->padding) * d->kernel * d->kernel;
    return channels * taps_inside(d->in_height, d->kernel, d->stride, d->padding) *
           taps_inside(d->in_width, d->kernel, d->stride, d->padding);
}

int dt_pool_desc_check(const dt_pool_desc *d, int *out_height, int *out_width, dt_error *err) {
    /* torch's rule: padding at most half the kernel, so every window touches the input */
    if (d->batch <= 0 || d->channels <= 0 || d->in_height <= 0 || d->in_width <= 0 ||
        d->kernel <= 0 || d->stride <= 0 || d->padding < 0 || 2 * d->padding > d->kernel ||
        d->in_height + 2 * d->padding < d->kernel || d->in_width + 2 * d->padding < d->kernel)
        return dt_fail(err,
                       "maxpool_create: invalid description (%dx%dx%dx%d, kernel %d, stride %d, "
                       "padding %d)",
                       d->batch, d->channels, d->in_height, d->in_width, d->kernel, d->stride,
                       d->padding);
    *out_height = out_size(d->in_height, d->kernel, d->stride, d->padding);
    *out_width = out_size(d->in_width, d->kernel, d->stride, d->padding);
    return 0;
}

int dt_batchnorm_desc_check(const dt_batchnorm_desc *d, dt_error *err) {
    if (d->batch <= 0 || d->channels <= 0 || d->height <= 0 || d->width <= 0 ||
        !(d->epsilon > 0.0f) || !(d->momentum >= 0.0f && d->momentum <= 1.0f))
        return dt_fail(
            err, "batchnorm_create: invalid description (%dx%dx%dx%d, momentum %g, eps %g)",
            d->batch, d->channels, d->height, d->width, (double)d->momentum, (double)d->epsilon);
    return 0;
}

int dt_shape_expect(int n, int c, int h, int w, int want_n, int want_c, int want_h, int want_w,
                    const char *op, const char *name, dt_error *err) {
    if (n == want_n && c == want_c && h == want_h && w == want_w) return 0;
    return dt_fail(err, "%s: %s is %dx%dx%dx%d but the layer expects %dx%dx%dx%d", op, name, n, c,
                   h, w, want_n, want_c, want_h, want_w);
}

int dt_shapes_same(int n, int c, int h, int w, int other_n, int other_c, int other_h, int other_w,
                   const char *op, dt_error *err) {
    if (n == other_n && c == other_c && h == other_h && w == other_w) return 0;
    return dt_fail(err, "%s: shapes differ (%dx%dx%dx%d vs %dx%dx%dx%d)", op, n, c, h, w, other_n,
                   other_c, other_h, other_w);
}
