/* ResNet-18 (torchvision topology) as a fixed sequence of backend ops: building the layers,
 * the forward pass, the loss and the backward pass. The graph is written once for every
 * backend; parameters are views into the model's flat buffers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model_internal.h"

static dt_tensor *new_tensor(dt_model *m, int c, int h, int w, dt_error *err) {
    return dt_backend_tensor_create(&m->backend, m->batch, c, h, w, err);
}

static void free_tensor(dt_model *m, dt_tensor **t) {
    if (*t) dt_backend_tensor_destroy(&m->backend, *t);
    *t = NULL;
}

static void free_layer(dt_model *m, dt_layer **l) {
    if (*l) dt_backend_layer_destroy(&m->backend, *l);
    *l = NULL;
}

/* The offset of "<prefix>.<suffix>" in the state layout (nn/state_dict.c), which must name every
 * tensor the graph uses: a missing name is an error naming the key. */
static int param_offset(dt_model *m, const char *prefix, const char *suffix, size_t *offset,
                        dt_error *err) {
    char name[64];
    snprintf(name, sizeof name, "%s.%s", prefix, suffix);
    const dt_state_entry *e = dt_state_layout_find(&m->layout, name);
    if (!e) return dt_fail(err, "internal: the state layout has no tensor %s", name);
    *offset = e->offset;
    return 0;
}

/* The span covering every parameter whose name starts with one of the prefixes (each ending in
 * "."); they must be contiguous in the flat buffer, as the state layout orders them. */
static int param_span(dt_model *m, const char *const *prefixes, int n_prefixes, dt_param_span *span,
                      dt_error *err) {
    size_t begin = (size_t)-1, end = 0, total = 0;
    for (size_t i = 0; i < m->layout.n_entries; i++) {
        const dt_state_entry *e = &m->layout.entries[i];
        if (e->role != DT_TENSOR_PARAMETER) continue;
        int match = 0;
        for (int k = 0; k < n_prefixes && !match; k++)
            match = strncmp(e->name, prefixes[k], strlen(prefixes[k])) == 0;
        if (!match) continue;
        if (e->offset < begin) begin = e->offset;
        if (e->offset + e->count > end) end = e->offset + e->count;
        total += e->count;
    }
    if (total == 0 || end - begin != total)
        return dt_fail(err, "internal: the parameters of %s are not one contiguous span",
                       prefixes[0]);
    span->offset = begin;
    span->count = total;
    return 0;
}

/* The convolution of a conv-BN unit: the stem (in_c 3, the images) never computes dx, and a
 * frozen backbone runs no backward at all. */
static dt_conv_desc unit_conv_desc(int batch, int freeze_backbone, int in_c, int out_c, int in_hw,
                                   int kernel, int stride, int padding) {
    return (dt_conv_desc){.batch = batch,
                          .in_channels = in_c,
                          .out_channels = out_c,
                          .in_height = in_hw,
                          .in_width = in_hw,
                          .kernel = kernel,
                          .stride = stride,
                          .padding = padding,
                          .no_input_grad = in_c == 3,
                          .no_backward = freeze_backbone};
}

static int conv_out_hw(int in_hw, int kernel, int stride, int padding) {
    return (in_hw + 2 * padding - kernel) / stride + 1;
}

int dt_model_conv_descs(const dt_model_options *opt, dt_conv_desc *out, int max) {
    int n = 0, b = opt->batch, frozen = opt->freeze_backbone;
#define DT_ADD_CONV(...)                                                                           \
    do {                                                                                           \
        dt_conv_desc d_ = unit_conv_desc(b, frozen, __VA_ARGS__);                                  \
        if (n < max) out[n] = d_;                                                                  \
        n++;                                                                                       \
    } while (0)
    DT_ADD_CONV(3, 64, opt->image_size, 7, 2, 3);
    int in_hw = conv_out_hw(conv_out_hw(opt->image_size, 7, 2, 3), 3, 2, 1), in_c = 64;
    for (int stage = 0; stage < 4; stage++) {
        int out_c = 64 << stage;
        for (int i = 0; i < 2; i++) {
            int c = i == 0 ? in_c : out_c, stride = (i == 0 && stage > 0) ? 2 : 1;
            int out_hw = conv_out_hw(in_hw, 3, stride, 1);
            DT_ADD_CONV(c, out_c, in_hw, 3, stride, 1);
            DT_ADD_CONV(out_c, out_c, out_hw, 3, 1, 1);
            if (stride != 1 || c != out_c) DT_ADD_CONV(c, out_c, in_hw, 1, stride, 0);
            in_hw = out_hw;
        }
        in_c = out_c;
    }
#undef DT_ADD_CONV
    return n;
}

/* conv (no bias) followed by BatchNorm, optionally with the ReLU fused into the BN. */
static int conv_bn_create(dt_model *m, dt_conv_bn *u, const char *conv_name, const char *bn_name,
                          int in_c, int out_c, int in_hw, int kernel, int stride, int padding,
                          int relu, dt_error *err) {
    memset(u, 0, sizeof *u);
    int out_hw = conv_out_hw(in_hw, kernel, stride, padding);
    dt_conv_desc cd =
        unit_conv_desc(m->batch, m->freeze_backbone, in_c, out_c, in_hw, kernel, stride, padding);
    dt_batchnorm_desc bd = {.batch = m->batch,
                            .channels = out_c,
                            .height = out_hw,
                            .width = out_hw,
                            .momentum = 0.1f,
                            .epsilon = 1e-5f,
                            .fuse_relu = relu};
    u->out_hw = out_hw;
    if (param_offset(m, conv_name, "weight", &u->weight, err) ||
        param_offset(m, bn_name, "weight", &u->gamma, err) ||
        param_offset(m, bn_name, "bias", &u->beta, err) ||
        param_offset(m, bn_name, "running_mean", &u->running_mean, err) ||
        param_offset(m, bn_name, "running_var", &u->running_var, err) ||
        !(u->conv = dt_backend_conv_create(&m->backend, &cd, err)) ||
        !(u->bn = dt_backend_batchnorm_create(&m->backend, &bd, err)) ||
        !(u->conv_out = new_tensor(m, out_c, out_hw, out_hw, err)) ||
        !(u->bn_out = new_tensor(m, out_c, out_hw, out_hw, err)))
        return dt_error_prefix(err, "creating %s", conv_name);
    return 0;
}

static void conv_bn_destroy(dt_model *m, dt_conv_bn *u) {
    free_layer(m, &u->conv);
    free_layer(m, &u->bn);
    free_tensor(m, &u->conv_out);
    free_tensor(m, &u->bn_out);
}

static int conv_bn_forward(dt_model *m, dt_conv_bn *u, const dt_tensor *x, int training,
                           dt_error *err) {
    float *p = m->params, *s = m->stats;
    if (dt_backend_conv_forward(&m->backend, u->conv, p + u->weight, x, u->conv_out, err))
        return -1;
    return dt_backend_batchnorm_forward(&m->backend, u->bn, p + u->gamma, p + u->beta,
                                        s + u->running_mean, s + u->running_var, training,
                                        u->conv_out, u->bn_out, err);
}

/* dy is the gradient w.r.t. bn_out; bn_grad receives the gradient w.r.t. conv_out (it may be dy
 * itself); dx (may be NULL) receives the gradient w.r.t. the conv input x. The parameter
 * gradients go to m->grads, added to it when accumulate is set. */
static int conv_bn_backward(dt_model *m, dt_conv_bn *u, int accumulate, const dt_tensor *x,
                            const dt_tensor *dy, dt_tensor *bn_grad, dt_tensor *dx, dt_error *err) {
    float *p = m->params, *g = m->grads;
    if (dt_backend_batchnorm_backward(&m->backend, u->bn, p + u->gamma, p + u->beta, u->conv_out,
                                      u->bn_out, dy, bn_grad, g + u->gamma, g + u->beta, accumulate,
                                      err))
        return -1;
    return dt_backend_conv_backward(&m->backend, u->conv, p + u->weight, x, bn_grad, dx,
                                    g + u->weight, accumulate, err);
}

static int block_create(dt_model *m, dt_block *b, int stage, int index, int in_c, int out_c,
                        int in_hw, dt_error *err) {
    char prefix[32], conv[64], bn[64];
    snprintf(prefix, sizeof prefix, "layer%d.%d", stage + 1, index);
    int stride = (index == 0 && stage > 0) ? 2 : 1;
    b->has_downsample = stride != 1 || in_c != out_c;
    char block_prefix[40];
    snprintf(block_prefix, sizeof block_prefix, "%s.", prefix);
    const char *block_prefixes[] = {block_prefix};
    if (param_span(m, block_prefixes, 1, &b->params, err)) return -1;
    snprintf(conv, sizeof conv, "%s.conv1", prefix);
    snprintf(bn, sizeof bn, "%s.bn1", prefix);
    if (conv_bn_create(m, &b->unit1, conv, bn, in_c, out_c, in_hw, 3, stride, 1, 1, err)) return -1;
    int out_hw = b->unit1.out_hw;
    snprintf(conv, sizeof conv, "%s.conv2", prefix);
    snprintf(bn, sizeof bn, "%s.bn2", prefix);
    if (conv_bn_create(m, &b->unit2, conv, bn, out_c, out_c, out_hw, 3, 1, 1, 0, err)) return -1;
    if (b->has_downsample) {
        snprintf(conv, sizeof conv, "%s.downsample.0", prefix);
        snprintf(bn, sizeof bn, "%s.downsample.1", prefix);
        if (conv_bn_create(m, &b->downsample, conv, bn, in_c, out_c, in_hw, 1, stride, 0, 0, err))
            return -1;
    }
    if (m->freeze_backbone) return 0;
    if (!(b->grad_sum = new_tensor(m, out_c, out_hw, out_hw, err)) ||
        !(b->grad_work = new_tensor(m, out_c, out_hw, out_hw, err)) ||
        !(b->grad_mid = new_tensor(m, out_c, out_hw, out_hw, err)) ||
        !(b->grad_in = new_tensor(m, in_c, in_hw, in_hw, err)))
        return dt_error_prefix(err, "creating %s gradients", prefix);
    if (b->has_downsample && !(b->grad_in_downsample = new_tensor(m, in_c, in_hw, in_hw, err)))
        return dt_error_prefix(err, "creating %s gradients", prefix);
    return 0;
}

static void block_destroy(dt_model *m, dt_block *b) {
    conv_bn_destroy(m, &b->unit1);
    conv_bn_destroy(m, &b->unit2);
    conv_bn_destroy(m, &b->downsample);
    free_tensor(m, &b->grad_sum);
    free_tensor(m, &b->grad_work);
    free_tensor(m, &b->grad_mid);
    free_tensor(m, &b->grad_in);
    free_tensor(m, &b->grad_in_downsample);
}

/* out = relu(bn2(conv2(relu(bn1(conv1(x))))) + identity(x)), stored in unit2.bn_out. */
static int block_forward(dt_model *m, dt_block *b, const dt_tensor *x, int training,
                         dt_error *err) {
    if (conv_bn_forward(m, &b->unit1, x, training, err) ||
        conv_bn_forward(m, &b->unit2, b->unit1.bn_out, training, err))
        return -1;
    const dt_tensor *identity = x;
    if (b->has_downsample) {
        if (conv_bn_forward(m, &b->downsample, x, training, err)) return -1;
        identity = b->downsample.bn_out;
    }
    return dt_backend_add_relu_forward(&m->backend, b->unit2.bn_out, identity, err);
}

/* dy: gradient w.r.t. the block output. Leaves the gradient w.r.t. x in b->grad_in and the
 * parameter gradients in m->grads. */
static int block_backward(dt_model *m, dt_block *b, int accumulate, const dt_tensor *x,
                          const dt_tensor *dy, dt_error *err) {
    if (dt_backend_relu_backward(&m->backend, b->unit2.bn_out, dy, b->grad_sum, err)) return -1;
    if (conv_bn_backward(m, &b->unit2, accumulate, b->unit1.bn_out, b->grad_sum, b->grad_work,
                         b->grad_mid, err))
        return -1;
    if (conv_bn_backward(m, &b->unit1, accumulate, x, b->grad_mid, b->grad_mid, b->grad_in, err))
        return -1;
    if (b->has_downsample) {
        if (conv_bn_backward(m, &b->downsample, accumulate, x, b->grad_sum, b->grad_work,
                             b->grad_in_downsample, err))
            return -1;
        return dt_backend_tensor_add(&m->backend, b->grad_in, b->grad_in_downsample, err);
    }
    return dt_backend_tensor_add(&m->backend, b->grad_in, b->grad_sum, err);
}

int dt_resnet18_build(dt_model *m, dt_error *err) {
    int size = m->image_size;
    if (conv_bn_create(m, &m->stem, "conv1", "bn1", 3, 64, size, 7, 2, 3, 1, err)) return -1;
    int hw = m->stem.out_hw;
    int pooled_hw = (hw + 2 * 1 - 3) / 2 + 1;
    dt_pool_desc pd = {.batch = m->batch,
                       .channels = 64,
                       .in_height = hw,
                       .in_width = hw,
                       .kernel = 3,
                       .stride = 2,
                       .padding = 1};
    if (!(m->input = new_tensor(m, 3, size, size, err)) ||
        !(m->maxpool = dt_backend_maxpool_create(&m->backend, &pd, err)) ||
        !(m->pool_out = new_tensor(m, 64, pooled_hw, pooled_hw, err)))
        return dt_error_prefix(err, "creating the stem");
    if (!m->freeze_backbone && !(m->grad_stem = new_tensor(m, 64, hw, hw, err)))
        return dt_error_prefix(err, "creating the stem gradient");

    int in_c = 64, in_hw = pooled_hw;
    for (int stage = 0; stage < 4; stage++) {
        int out_c = 64 << stage;
        for (int i = 0; i < 2; i++) {
            dt_block *b = &m->blocks[stage * 2 + i];
            if (block_create(m, b, stage, i, i == 0 ? in_c : out_c, out_c, in_hw, err)) return -1;
            in_hw = b->unit1.out_hw;
        }
        in_c = out_c;
    }
    dt_linear_desc ld = {.batch = m->batch, .in_features = 512, .out_features = m->n_classes};
    if (!(m->features = new_tensor(m, 512, 1, 1, err)) ||
        !(m->grad_features = new_tensor(m, 512, 1, 1, err)) ||
        !(m->fc = dt_backend_linear_create(&m->backend, &ld, err)) ||
        !(m->logits = new_tensor(m, m->n_classes, 1, 1, err)) ||
        !(m->grad_logits = new_tensor(m, m->n_classes, 1, 1, err)))
        return dt_error_prefix(err, "creating the classifier");
    if (!m->freeze_backbone && !(m->grad_last = new_tensor(m, 512, in_hw, in_hw, err)))
        return dt_error_prefix(err, "creating the classifier gradient");
    const char *stem_prefixes[] = {"conv1.", "bn1."}, *fc_prefixes[] = {"fc."};
    if (param_offset(m, "fc", "weight", &m->fc_weight, err) ||
        param_offset(m, "fc", "bias", &m->fc_bias, err) ||
        param_span(m, stem_prefixes, 2, &m->stem_params, err) ||
        param_span(m, fc_prefixes, 1, &m->fc_params, err))
        return -1;
    return 0;
}

void dt_resnet18_free(dt_model *m) {
    conv_bn_destroy(m, &m->stem);
    free_layer(m, &m->maxpool);
    free_layer(m, &m->fc);
    for (int i = 0; i < DT_RESNET18_BLOCKS; i++) block_destroy(m, &m->blocks[i]);
    free_tensor(m, &m->input);
    free_tensor(m, &m->pool_out);
    free_tensor(m, &m->grad_stem);
    free_tensor(m, &m->features);
    free_tensor(m, &m->grad_features);
    free_tensor(m, &m->logits);
    free_tensor(m, &m->grad_logits);
    free_tensor(m, &m->grad_last);
}

static const dt_tensor *block_output(const dt_model *m, int i) {
    return i < 0 ? m->pool_out : m->blocks[i].unit2.bn_out;
}

int dt_model_forward(dt_model *m, const uint8_t *pixels_nhwc, const float mean[3],
                     const float std[3], int training, dt_error *err) {
    int backbone_training = training && !m->freeze_backbone;
    if (dt_backend_tensor_from_images(&m->backend, m->input, pixels_nhwc, mean, std, err) ||
        conv_bn_forward(m, &m->stem, m->input, backbone_training, err) ||
        dt_backend_maxpool_forward(&m->backend, m->maxpool, m->stem.bn_out, m->pool_out, err))
        return dt_error_prefix(err, "forward (stem)");
    for (int i = 0; i < DT_RESNET18_BLOCKS; i++)
        if (block_forward(m, &m->blocks[i], block_output(m, i - 1), backbone_training, err))
            return dt_error_prefix(err, "forward (layer%d.%d)", i / 2 + 1, i % 2);
    float *p = m->params;
    if (dt_backend_avgpool_forward(&m->backend, block_output(m, DT_RESNET18_BLOCKS - 1),
                                   m->features, err) ||
        dt_backend_linear_forward(&m->backend, m->fc, p + m->fc_weight, p + m->fc_bias, m->features,
                                  m->logits, err))
        return dt_error_prefix(err, "forward (classifier)");
    if (backbone_training) m->batches_tracked++;
    m->forward_was_training = training;
    return 0;
}

int dt_model_loss(dt_model *m, const int32_t *labels, const float *weights, float grad_scale,
                  int32_t *predictions, dt_error *err) {
    dt_tensor *dlogits = grad_scale != 0.0f ? m->grad_logits : NULL;
    if (dt_backend_softmax_cross_entropy(&m->backend, m->logits, labels, weights, dlogits,
                                         grad_scale, predictions, err))
        return dt_error_prefix(err, "loss");
    m->have_logit_grad = dlogits != NULL;
    return 0;
}

/* Tells the trainer that a layer group's gradients are final (report set). */
static int report_ready(dt_model *m, int report, dt_param_span span, dt_error *err) {
    if (!report || !m->grads_ready) return 0;
    return m->grads_ready(m->grads_ready_user, span.offset, span.count, err);
}

int dt_model_backward(dt_model *m, int accumulate, int report, dt_error *err) {
    if (!m->forward_was_training || !m->have_logit_grad)
        return dt_fail(err, "internal: backward needs a training forward and a loss gradient");
    float *p = m->params, *g = m->grads;
    int frozen = m->freeze_backbone;
    if (dt_backend_linear_backward(&m->backend, m->fc, p + m->fc_weight, m->features,
                                   m->grad_logits, frozen ? NULL : m->grad_features,
                                   g + m->fc_weight, g + m->fc_bias, accumulate, err) ||
        report_ready(m, report, m->fc_params, err))
        return dt_error_prefix(err, "backward (classifier)");
    if (frozen) return 0;
    if (dt_backend_avgpool_backward(&m->backend, m->grad_features, m->grad_last, err))
        return dt_error_prefix(err, "backward (avgpool)");
    const dt_tensor *dy = m->grad_last;
    for (int i = DT_RESNET18_BLOCKS - 1; i >= 0; i--) {
        dt_block *b = &m->blocks[i];
        if (block_backward(m, b, accumulate, block_output(m, i - 1), dy, err) ||
            report_ready(m, report, b->params, err))
            return dt_error_prefix(err, "backward (layer%d.%d)", i / 2 + 1, i % 2);
        dy = b->grad_in;
    }
    if (dt_backend_maxpool_backward(&m->backend, m->maxpool, dy, m->grad_stem, err) ||
        conv_bn_backward(m, &m->stem, accumulate, m->input, m->grad_stem, m->grad_stem, NULL,
                         err) ||
        report_ready(m, report, m->stem_params, err))
        return dt_error_prefix(err, "backward (stem)");
    return 0;
}

int dt_model_logits(dt_model *m, float *host_logits, dt_error *err) {
    return dt_backend_tensor_download(&m->backend, m->logits, host_logits, err);
}
