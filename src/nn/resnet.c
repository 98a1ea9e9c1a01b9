/* The ResNet family in torchvision's shape: an architecture table (resnet18 = BasicBlock,
 * [2, 2, 2, 2], ...) and one builder, _make_layer(block, planes, blocks, stride), that creates
 * each layer and registers its state-dict tensors as it goes, so names, shapes and flat-buffer
 * offsets come from building the model. Then the forward pass, the loss and the backward pass as
 * a fixed sequence of backend ops, written once for every backend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model_internal.h"

static const dt_resnet_arch resnet_archs[] = {
    {"resnet18", DT_BLOCK_BASIC, {2, 2, 2, 2}},
    {"resnet34", DT_BLOCK_BASIC, {3, 4, 6, 3}},
    {"resnet50", DT_BLOCK_BOTTLENECK, {3, 4, 6, 3}},
    {"resnet101", DT_BLOCK_BOTTLENECK, {3, 4, 23, 3}},
    {"resnet152", DT_BLOCK_BOTTLENECK, {3, 8, 36, 3}},
};
enum { N_ARCHS = sizeof resnet_archs / sizeof resnet_archs[0] };

const dt_resnet_arch *dt_resnet_arch_find(const char *name) {
    for (int i = 0; i < N_ARCHS; i++)
        if (strcmp(resnet_archs[i].name, name ? name : "resnet18") == 0) return &resnet_archs[i];
    return NULL;
}

int dt_model_arch_count(void) {
    return N_ARCHS;
}

const char *dt_model_arch_name(int index) {
    return index >= 0 && index < N_ARCHS ? resnet_archs[index].name : NULL;
}

int dt_model_arch_known(const char *name) {
    return name && dt_resnet_arch_find(name) != NULL;
}

static int expansion(dt_block_kind kind) {
    return kind == DT_BLOCK_BOTTLENECK ? 4 : 1;
}

static int described_only(const dt_model *m) {
    return m->backend.ops == NULL;
}

static int new_tensor(dt_model *m, dt_tensor **t, int c, int h, int w, dt_error *err) {
    if (described_only(m)) return 0;
    return (*t = dt_backend_tensor_create(&m->backend, m->batch, c, h, w, err)) ? 0 : -1;
}

static void free_tensor(dt_model *m, dt_tensor **t) {
    if (*t) dt_backend_tensor_destroy(&m->backend, *t);
    *t = NULL;
}

static void free_layer(dt_model *m, dt_layer **l) {
    if (*l) dt_backend_layer_destroy(&m->backend, *l);
    *l = NULL;
}

/* The convolution of a conv-BN unit: the stem (in_c 3, the images) never computes dx, and a
 * frozen backbone runs no backward at all. */
static dt_conv_desc unit_conv_desc(const dt_model *m, int in_c, int out_c, int in_hw, int kernel,
                                   int stride, int padding) {
    return (dt_conv_desc){.batch = m->batch,
                          .in_channels = in_c,
                          .out_channels = out_c,
                          .in_height = in_hw,
                          .in_width = in_hw,
                          .kernel = kernel,
                          .stride = stride,
                          .padding = padding,
                          .no_input_grad = in_c == 3,
                          .no_backward = m->freeze_backbone,
                          .own_weight_layout = !m->oihw_weights};
}

static int conv_out_hw(int in_hw, int kernel, int stride, int padding) {
    return (in_hw + 2 * padding - kernel) / stride + 1;
}

static int record_conv(dt_model *m, const dt_conv_desc *d, dt_error *err) {
    if (m->n_convs == m->conv_capacity) {
        int capacity = m->conv_capacity ? 2 * m->conv_capacity : 64;
        dt_conv_desc *grown = realloc(m->conv_descs, (size_t)capacity * sizeof *grown);
        if (!grown) return dt_fail(err, "model: out of memory");
        m->conv_descs = grown;
        m->conv_capacity = capacity;
    }
    m->conv_descs[m->n_convs++] = *d;
    return 0;
}

/* conv (no bias) named conv_name followed by BatchNorm bn_name, optionally with the ReLU fused
 * into the BN; registers their tensors in the state dict. */
static int conv_bn_create(dt_model *m, dt_conv_bn *u, const char *conv_name, const char *bn_name,
                          int in_c, int out_c, int in_hw, int kernel, int stride, int padding,
                          int relu, int residual_gamma, dt_error *err) {
    memset(u, 0, sizeof *u);
    int out_hw = conv_out_hw(in_hw, kernel, stride, padding);
    dt_conv_desc cd = unit_conv_desc(m, in_c, out_c, in_hw, kernel, stride, padding);
    dt_batchnorm_desc bd = {.batch = m->batch,
                            .channels = out_c,
                            .height = out_hw,
                            .width = out_hw,
                            .momentum = 0.1f,
                            .epsilon = 1e-5f,
                            .fuse_relu = relu};
    u->out_c = out_c;
    u->out_hw = out_hw;
    if (dt_state_add_conv(&m->layout, conv_name, in_c, out_c, kernel, &u->weight, err) ||
        dt_state_add_batchnorm(&m->layout, bn_name, out_c, residual_gamma, &u->gamma, &u->beta,
                               &u->running_mean, &u->running_var, err) ||
        record_conv(m, &cd, err))
        return -1;
    if (described_only(m)) return 0;
    if (!(u->conv = dt_backend_conv_create(&m->backend, &cd, err)) ||
        dt_model_note_weight_layout(m, u->conv, u->weight,
                                    (size_t)out_c * (size_t)in_c * (size_t)kernel * kernel, err) ||
        !(u->bn = dt_backend_batchnorm_create(&m->backend, &bd, err)) ||
        new_tensor(m, &u->conv_out, out_c, out_hw, out_hw, err) ||
        new_tensor(m, &u->bn_out, out_c, out_hw, out_hw, err))
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

/* One residual block, torchvision's BasicBlock or Bottleneck with `planes`, in its order of
 * modules: conv1, bn1, conv2, bn2 (, conv3, bn3), downsample.0, downsample.1. */
static int block_create(dt_model *m, dt_block *b, int stage, int index, int in_c, int planes,
                        int stride, int in_hw, dt_error *err) {
    char prefix[32], conv[64], bn[64];
    snprintf(prefix, sizeof prefix, "layer%d.%d", stage + 1, index);
    b->stage = stage;
    b->index = index;
    size_t first_param = m->layout.n_params;
    int bottleneck = m->arch->block == DT_BLOCK_BOTTLENECK;
    int out_c = planes * expansion(m->arch->block);
    /* (in, out, kernel, stride, padding) of each conv: the stride sits in the 3x3 (v1.5) */
    int shape[DT_BLOCK_MAX_UNITS][5], n = 0;
    if (bottleneck) {
        memcpy(shape[n++], (int[5]){in_c, planes, 1, 1, 0}, sizeof shape[0]);
        memcpy(shape[n++], (int[5]){planes, planes, 3, stride, 1}, sizeof shape[0]);
        memcpy(shape[n++], (int[5]){planes, out_c, 1, 1, 0}, sizeof shape[0]);
    } else {
        memcpy(shape[n++], (int[5]){in_c, planes, 3, stride, 1}, sizeof shape[0]);
        memcpy(shape[n++], (int[5]){planes, out_c, 3, 1, 1}, sizeof shape[0]);
    }
    b->n_units = n;
    int hw = in_hw;
    for (int u = 0; u < n; u++) {
        int last = u == n - 1;
        snprintf(conv, sizeof conv, "%s.conv%d", prefix, u + 1);
        snprintf(bn, sizeof bn, "%s.bn%d", prefix, u + 1);
        if (conv_bn_create(m, &b->units[u], conv, bn, shape[u][0], shape[u][1], hw, shape[u][2],
                           shape[u][3], shape[u][4], !last, last, err))
            return -1;
        hw = b->units[u].out_hw;
    }
    int out_hw = hw;
    b->has_downsample = stride != 1 || in_c != out_c;
    if (b->has_downsample) {
        snprintf(conv, sizeof conv, "%s.downsample.0", prefix);
        snprintf(bn, sizeof bn, "%s.downsample.1", prefix);
        if (conv_bn_create(m, &b->downsample, conv, bn, in_c, out_c, in_hw, 1, stride, 0, 0, 0,
                           err))
            return -1;
    }
    b->params = (dt_param_span){first_param, m->layout.n_params - first_param};
    if (m->freeze_backbone || described_only(m)) return 0;
    if (new_tensor(m, &b->grad_sum, out_c, out_hw, out_hw, err) ||
        new_tensor(m, &b->grad_work, out_c, out_hw, out_hw, err) ||
        new_tensor(m, &b->grad_in, in_c, in_hw, in_hw, err))
        return dt_error_prefix(err, "creating %s gradients", prefix);
    for (int u = 0; u < n - 1; u++) {
        const dt_conv_bn *unit = &b->units[u];
        if (new_tensor(m, &b->grad_mid[u], unit->out_c, unit->out_hw, unit->out_hw, err))
            return dt_error_prefix(err, "creating %s gradients", prefix);
    }
    if (b->has_downsample && new_tensor(m, &b->grad_in_downsample, in_c, in_hw, in_hw, err))
        return dt_error_prefix(err, "creating %s gradients", prefix);
    return 0;
}

static void block_destroy(dt_model *m, dt_block *b) {
    for (int u = 0; u < DT_BLOCK_MAX_UNITS; u++) conv_bn_destroy(m, &b->units[u]);
    conv_bn_destroy(m, &b->downsample);
    free_tensor(m, &b->grad_sum);
    free_tensor(m, &b->grad_work);
    for (int u = 0; u < DT_BLOCK_MAX_UNITS - 1; u++) free_tensor(m, &b->grad_mid[u]);
    free_tensor(m, &b->grad_in);
    free_tensor(m, &b->grad_in_downsample);
}

/* torchvision's _make_layer: `blocks` blocks of `planes`, the first with `stride` (and the
 * downsample when the shape changes); *in_c and *hw advance to the stage's output. */
static int make_layer(dt_model *m, int stage, int planes, int blocks, int stride, int *in_c,
                      int *hw, dt_error *err) {
    for (int i = 0; i < blocks; i++) {
        dt_block *b = &m->blocks[m->n_blocks];
        if (block_create(m, b, stage, i, *in_c, planes, i == 0 ? stride : 1, *hw, err)) return -1;
        m->n_blocks++;
        *in_c = planes * expansion(m->arch->block);
        *hw = b->units[b->n_units - 1].out_hw;
    }
    return 0;
}

static const dt_tensor *block_output(const dt_model *m, int i) {
    if (i < 0) return m->pool_out;
    const dt_block *b = &m->blocks[i];
    return b->units[b->n_units - 1].bn_out;
}

/* out = relu(last unit's BN output + identity(x)), stored in the last unit's bn_out; the inner
 * units carry a fused ReLU. */
static int block_forward(dt_model *m, dt_block *b, const dt_tensor *x, int training,
                         dt_error *err) {
    const dt_tensor *in = x;
    for (int u = 0; u < b->n_units; u++) {
        if (conv_bn_forward(m, &b->units[u], in, training, err)) return -1;
        in = b->units[u].bn_out;
    }
    const dt_tensor *identity = x;
    if (b->has_downsample) {
        if (conv_bn_forward(m, &b->downsample, x, training, err)) return -1;
        identity = b->downsample.bn_out;
    }
    return dt_backend_add_relu_forward(&m->backend, b->units[b->n_units - 1].bn_out, identity, err);
}

/* dy: gradient w.r.t. the block output. Leaves the gradient w.r.t. x in b->grad_in and the
 * parameter gradients in m->grads. */
static int block_backward(dt_model *m, dt_block *b, int accumulate, const dt_tensor *x,
                          const dt_tensor *dy, dt_error *err) {
    int last = b->n_units - 1;
    if (dt_backend_relu_backward(&m->backend, b->units[last].bn_out, dy, b->grad_sum, err))
        return -1;
    /* the last unit (no ReLU of its own): from the sum's gradient to its input's */
    if (conv_bn_backward(m, &b->units[last], accumulate, b->units[last - 1].bn_out, b->grad_sum,
                         b->grad_work, b->grad_mid[last - 1], err))
        return -1;
    /* the inner units (fused ReLU): the BN gradient overwrites the incoming one */
    for (int u = last - 1; u >= 0; u--) {
        const dt_tensor *in = u == 0 ? x : b->units[u - 1].bn_out;
        dt_tensor *dx = u == 0 ? b->grad_in : b->grad_mid[u - 1];
        if (conv_bn_backward(m, &b->units[u], accumulate, in, b->grad_mid[u], b->grad_mid[u], dx,
                             err))
            return -1;
    }
    if (b->has_downsample) {
        if (conv_bn_backward(m, &b->downsample, accumulate, x, b->grad_sum, b->grad_work,
                             b->grad_in_downsample, err))
            return -1;
        return dt_backend_tensor_add(&m->backend, b->grad_in, b->grad_in_downsample, err);
    }
    return dt_backend_tensor_add(&m->backend, b->grad_in, b->grad_sum, err);
}

int dt_resnet_build(dt_model *m, dt_error *err) {
    const dt_resnet_arch *a = m->arch;
    int n_blocks = a->layers[0] + a->layers[1] + a->layers[2] + a->layers[3];
    if (!(m->blocks = calloc((size_t)n_blocks, sizeof *m->blocks)))
        return dt_fail(err, "model: out of memory");
    int size = m->image_size;
    if (conv_bn_create(m, &m->stem, "conv1", "bn1", 3, 64, size, 7, 2, 3, 1, 0, err)) return -1;
    m->stem_params = (dt_param_span){0, m->layout.n_params};
    int hw = m->stem.out_hw;
    int pooled_hw = conv_out_hw(hw, 3, 2, 1);
    dt_pool_desc pd = {.batch = m->batch,
                       .channels = 64,
                       .in_height = hw,
                       .in_width = hw,
                       .kernel = 3,
                       .stride = 2,
                       .padding = 1};
    if (!described_only(m) && (new_tensor(m, &m->input, 3, size, size, err) ||
                               !(m->maxpool = dt_backend_maxpool_create(&m->backend, &pd, err)) ||
                               new_tensor(m, &m->pool_out, 64, pooled_hw, pooled_hw, err)))
        return dt_error_prefix(err, "creating the stem");
    if (!m->freeze_backbone && new_tensor(m, &m->grad_stem, 64, hw, hw, err))
        return dt_error_prefix(err, "creating the stem gradient");

    int in_c = 64, in_hw = pooled_hw;
    for (int stage = 0; stage < 4; stage++)
        if (make_layer(m, stage, 64 << stage, a->layers[stage], stage == 0 ? 1 : 2, &in_c, &in_hw,
                       err))
            return -1;
    m->features = in_c;
    size_t fc_first = m->layout.n_params;
    if (dt_state_add_linear(&m->layout, "fc", in_c, m->n_classes, &m->fc_weight, &m->fc_bias, err))
        return -1;
    m->fc_params = (dt_param_span){fc_first, m->layout.n_params - fc_first};
    if (described_only(m)) return 0;
    dt_linear_desc ld = {.batch = m->batch, .in_features = in_c, .out_features = m->n_classes};
    if (new_tensor(m, &m->features_out, in_c, 1, 1, err) ||
        new_tensor(m, &m->grad_features, in_c, 1, 1, err) ||
        !(m->fc = dt_backend_linear_create(&m->backend, &ld, err)) ||
        new_tensor(m, &m->logits, m->n_classes, 1, 1, err) ||
        new_tensor(m, &m->grad_logits, m->n_classes, 1, 1, err))
        return dt_error_prefix(err, "creating the classifier");
    if (!m->freeze_backbone && new_tensor(m, &m->grad_last, in_c, in_hw, in_hw, err))
        return dt_error_prefix(err, "creating the classifier gradient");
    return 0;
}

void dt_resnet_free(dt_model *m) {
    if (!described_only(m)) {
        conv_bn_destroy(m, &m->stem);
        free_layer(m, &m->maxpool);
        free_layer(m, &m->fc);
        for (int i = 0; i < m->n_blocks; i++) block_destroy(m, &m->blocks[i]);
        /* a block whose creation failed half-way holds layers too */
        if (m->blocks && m->arch) {
            const int *l = m->arch->layers;
            int total = l[0] + l[1] + l[2] + l[3];
            if (m->n_blocks < total) block_destroy(m, &m->blocks[m->n_blocks]);
        }
        free_tensor(m, &m->input);
        free_tensor(m, &m->pool_out);
        free_tensor(m, &m->grad_stem);
        free_tensor(m, &m->features_out);
        free_tensor(m, &m->grad_features);
        free_tensor(m, &m->logits);
        free_tensor(m, &m->grad_logits);
        free_tensor(m, &m->grad_last);
    }
    free(m->blocks);
    m->blocks = NULL;
    m->n_blocks = 0;
    free(m->conv_descs);
    m->conv_descs = NULL;
    dt_state_layout_free(&m->layout);
}

static int not_runnable(const dt_model *m, dt_error *err) {
    return described_only(m) ? dt_fail(err, "internal: a described-only model cannot run") : 0;
}

int dt_model_forward(dt_model *m, const uint8_t *pixels_nhwc, const float mean[3],
                     const float std[3], int training, dt_error *err) {
    if (not_runnable(m, err)) return -1;
    int backbone_training = training && !m->freeze_backbone;
    if (dt_backend_tensor_from_images(&m->backend, m->input, pixels_nhwc, mean, std, err) ||
        conv_bn_forward(m, &m->stem, m->input, backbone_training, err) ||
        dt_backend_maxpool_forward(&m->backend, m->maxpool, m->stem.bn_out, m->pool_out, err))
        return dt_error_prefix(err, "forward (stem)");
    for (int i = 0; i < m->n_blocks; i++) {
        dt_block *b = &m->blocks[i];
        if (block_forward(m, b, block_output(m, i - 1), backbone_training, err))
            return dt_error_prefix(err, "forward (layer%d.%d)", b->stage + 1, b->index);
    }
    float *p = m->params;
    if (dt_backend_avgpool_forward(&m->backend, block_output(m, m->n_blocks - 1), m->features_out,
                                   err) ||
        dt_backend_linear_forward(&m->backend, m->fc, p + m->fc_weight, p + m->fc_bias,
                                  m->features_out, m->logits, err))
        return dt_error_prefix(err, "forward (classifier)");
    if (backbone_training) m->batches_tracked++;
    m->forward_was_training = training;
    return 0;
}

int dt_model_loss(dt_model *m, const int32_t *labels, const float *weights, float grad_scale,
                  int32_t *predictions, dt_error *err) {
    const dt_loss_targets targets = {.labels = labels, .weights = weights, .mix_lambda = 1.0f};
    return dt_model_loss_targets(m, &targets, grad_scale, predictions, err);
}

int dt_model_loss_targets(dt_model *m, const dt_loss_targets *targets, float grad_scale,
                          int32_t *predictions, dt_error *err) {
    if (not_runnable(m, err)) return -1;
    dt_tensor *dlogits = grad_scale != 0.0f ? m->grad_logits : NULL;
    if (dt_backend_softmax_cross_entropy_targets(&m->backend, m->logits, targets, dlogits,
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
    if (not_runnable(m, err)) return -1;
    if (!m->forward_was_training || !m->have_logit_grad)
        return dt_fail(err, "internal: backward needs a training forward and a loss gradient");
    float *p = m->params, *g = m->grads;
    int frozen = m->freeze_backbone;
    if (dt_backend_linear_backward(&m->backend, m->fc, p + m->fc_weight, m->features_out,
                                   m->grad_logits, frozen ? NULL : m->grad_features,
                                   g + m->fc_weight, g + m->fc_bias, accumulate, err) ||
        report_ready(m, report, m->fc_params, err))
        return dt_error_prefix(err, "backward (classifier)");
    if (frozen) return 0;
    if (dt_backend_avgpool_backward(&m->backend, m->grad_features, m->grad_last, err))
        return dt_error_prefix(err, "backward (avgpool)");
    const dt_tensor *dy = m->grad_last;
    for (int i = m->n_blocks - 1; i >= 0; i--) {
        dt_block *b = &m->blocks[i];
        if (block_backward(m, b, accumulate, block_output(m, i - 1), dy, err) ||
            report_ready(m, report, b->params, err))
            return dt_error_prefix(err, "backward (layer%d.%d)", b->stage + 1, b->index);
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
    if (not_runnable(m, err)) return -1;
    return dt_backend_tensor_download(&m->backend, m->logits, host_logits, err);
}
