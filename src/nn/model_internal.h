/* The model's private structure, shared by the graph builder, the passes and the accessors. */
#ifndef DTRAIN_NN_MODEL_INTERNAL_H
#define DTRAIN_NN_MODEL_INTERNAL_H

#include "dtrain/model.h"
#include "nn/state_dict.h"

#define DT_RESNET18_BLOCKS 8

/* conv -> BatchNorm (-> fused ReLU): offsets point into the flat buffers */
typedef struct dt_conv_bn {
    dt_layer *conv, *bn;
    dt_tensor *conv_out, *bn_out;
    int out_hw;
    size_t weight, gamma, beta;       /* into params/grads */
    size_t running_mean, running_var; /* into stats */
} dt_conv_bn;

/* A contiguous span of the flat parameter buffer: one layer group's parameters. */
typedef struct dt_param_span {
    size_t offset, count;
} dt_param_span;

typedef struct dt_block {
    dt_conv_bn unit1, unit2, downsample; /* downsample used when has_downsample */
    int has_downsample;
    dt_param_span params; /* every parameter of the block */
    /* gradient scratch: w.r.t. the sum before the final ReLU, BN-internal, the middle
     * activation, the block input, and the block input via the downsample path */
    dt_tensor *grad_sum, *grad_work, *grad_mid, *grad_in, *grad_in_downsample;
} dt_block;

struct dt_model {
    dt_backend backend;
    int batch, image_size, n_classes, freeze_backbone;
    dt_state_layout layout;
    float *params, *grads, *momentum, *stats; /* backend memory */
    float *stats_backup; /* dt_model_stats_snapshot's copy (model_stats.c); NULL until then */
    int64_t batches_tracked;
    int forward_was_training, have_logit_grad;

    dt_tensor *input;
    dt_conv_bn stem;
    dt_param_span stem_params, fc_params;
    dt_grads_ready_fn grads_ready;
    void *grads_ready_user;
    dt_layer *maxpool;
    dt_tensor *pool_out, *grad_stem;
    dt_block blocks[DT_RESNET18_BLOCKS];
    dt_tensor *features, *grad_features, *grad_last;
    dt_layer *fc;
    size_t fc_weight, fc_bias;
    dt_tensor *logits, *grad_logits;
};

int dt_resnet18_build(dt_model *m, dt_error *err);
void dt_resnet18_free(dt_model *m);

#endif
