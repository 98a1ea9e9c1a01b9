/* The model's private structure, shared by the builder and passes (nn/resnet.c), the lifetime
 * and accessors (nn/model.c), loading and saving. */
#ifndef DTRAIN_NN_MODEL_INTERNAL_H
#define DTRAIN_NN_MODEL_INTERNAL_H

#include "dtrain/checkpoint.h"
#include "dtrain/model.h"
#include "nn/state_dict.h"

/* torchvision's two residual blocks: BasicBlock (two 3x3 convs, expansion 1) and Bottleneck
 * (1x1, 3x3 carrying the stride as in ResNet v1.5, 1x1; expansion 4). */
typedef enum { DT_BLOCK_BASIC, DT_BLOCK_BOTTLENECK } dt_block_kind;

/* One row of the architecture table: torchvision's resnetNN = ResNet(block, layers). */
typedef struct dt_resnet_arch {
    const char *name;
    dt_block_kind block;
    int layers[4]; /* blocks per stage */
} dt_resnet_arch;

const dt_resnet_arch *dt_resnet_arch_find(const char *name);

/* Records conv's weight layout (model_layout.c): a layer not in OIHW joins own_layouts. */
int dt_model_note_weight_layout(dt_model *m, dt_layer *conv, size_t offset, size_t count,
                                dt_error *err);

enum { DT_BLOCK_MAX_UNITS = 3 };

/* conv -> BatchNorm (-> fused ReLU): offsets point into the flat buffers */
typedef struct dt_conv_bn {
    dt_layer *conv, *bn;
    dt_tensor *conv_out, *bn_out;
    int out_c, out_hw;
    size_t weight, gamma, beta;       /* into params/grads */
    size_t running_mean, running_var; /* into stats */
} dt_conv_bn;

/* A contiguous span of the flat parameter buffer: one layer group's parameters. */
typedef struct dt_param_span {
    size_t offset, count;
} dt_param_span;

/* A convolution whose weights its backend keeps in a layout of its own (not OIHW). */
typedef struct dt_own_layout {
    dt_layer *conv;
    size_t offset, count; /* its weights in the parameter-shaped buffers */
} dt_own_layout;

typedef struct dt_block {
    int stage, index;                     /* layer<stage + 1>.<index> */
    dt_conv_bn units[DT_BLOCK_MAX_UNITS]; /* conv1/bn1, conv2/bn2 (, conv3/bn3) */
    int n_units;
    dt_conv_bn downsample; /* used when has_downsample */
    int has_downsample;
    dt_param_span params; /* every parameter of the block */
    /* gradient scratch: w.r.t. the sum before the final ReLU, BN-internal, each inner unit's
     * output, the block input, and the block input via the downsample path */
    dt_tensor *grad_sum, *grad_work, *grad_mid[DT_BLOCK_MAX_UNITS - 1], *grad_in,
        *grad_in_downsample;
} dt_block;

struct dt_model {
    dt_backend backend; /* ops NULL: described only (dt_model_describe) */
    const dt_resnet_arch *arch;
    int batch, image_size, n_classes, freeze_backbone, zero_init_residual, oihw_weights;
    int features; /* the classifier's input width: 512 x the block's expansion */
    dt_state_layout layout;
    dt_conv_desc *conv_descs; /* every convolution, in creation order */
    int n_convs, conv_capacity;
    dt_own_layout *own_layouts; /* the convolutions not in OIHW, in creation order */
    int n_own_layouts;
    size_t own_layout_max;                    /* the largest weight count among them */
    uint64_t weight_layout;                   /* dt_model_weight_layout */
    float *params, *grads, *momentum, *stats; /* backend memory */
    float *stats_backup;  /* dt_model_stats_snapshot's copy (model_stats.c); NULL until then */
    float *second_moment; /* AdamW's exp_avg_sq (model_stats.c); NULL until asked for */
    int64_t batches_tracked;
    int forward_was_training, have_logit_grad;

    dt_tensor *input;
    dt_conv_bn stem;
    dt_param_span stem_params, fc_params;
    dt_grads_ready_fn grads_ready;
    void *grads_ready_user;
    dt_layer *maxpool;
    dt_tensor *pool_out, *grad_stem;
    dt_block *blocks;
    int n_blocks;
    dt_tensor *features_out, *grad_features, *grad_last;
    dt_layer *fc;
    size_t fc_weight, fc_bias;
    dt_tensor *logits, *grad_logits;
};

/* Builds the layers (only their state dict and convolution list when described only). */
int dt_resnet_build(dt_model *m, dt_error *err);
void dt_resnet_free(dt_model *m);

/* One state-dict entry as a checkpoint tensor over host copies of the parameter and statistics
 * buffers (num_batches_tracked as an int64 scalar); used for the model and for its EMA. */
dt_ckpt_tensor dt_model_state_tensor(const dt_state_entry *e, const float *params,
                                     const float *stats, int64_t batches_tracked);

#endif
