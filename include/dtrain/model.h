/* The ResNet models (torchvision's resnet18/34/50/101/152): torchvision's exact topology and
 * parameter names, the parameters in one flat buffer (gradients and momentum likewise), and
 * forward/backward written once over the backend interface. Saving and loading torchvision state
 * dicts (safetensors) live here too. */
#ifndef DTRAIN_MODEL_H
#define DTRAIN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "dtrain/backend.h"
#include "dtrain/error.h"

typedef enum {
    DT_TENSOR_PARAMETER,      /* trainable: lives in model->params (grads, momentum alike) */
    DT_TENSOR_RUNNING_MEAN,   /* BatchNorm buffer: lives in model->stats */
    DT_TENSOR_RUNNING_VAR,    /* BatchNorm buffer: lives in model->stats */
    DT_TENSOR_BATCHES_TRACKED /* BatchNorm num_batches_tracked: int64 scalar, host counter */
} dt_tensor_role;

/* One entry of the model's state dict, in torchvision's state_dict() order. */
typedef struct dt_state_entry {
    char name[64]; /* e.g. "layer2.0.downsample.1.running_var" */
    dt_tensor_role role;
    int ndim;
    int64_t shape[4];
    size_t offset; /* in floats, into params (PARAMETER) or stats (RUNNING_*) */
    size_t count;
    int in_classifier;  /* 1 for fc.weight and fc.bias */
    int residual_gamma; /* the weight of a residual block's last BN (zero_init_residual) */
} dt_state_entry;

typedef struct dt_model dt_model;

typedef struct dt_model_options {
    const char *arch; /* "resnet18" (also when NULL), "resnet34", "resnet50", ... */
    int batch;        /* every forward/backward runs at this batch size */
    int image_size;   /* square input side */
    int n_classes;
    int freeze_backbone;    /* train fc only; backbone BN in inference mode */
    int zero_init_residual; /* torchvision's option: each block's last BN weight starts at 0 */
    /* 1: every convolution keeps OIHW weights in the flat buffers (for ranks whose backends
     * chose different layouts of their own); 0: each may keep its backend's own layout */
    int oihw_weights;
} dt_model_options;

/* The architectures dt_model_create builds, by torchvision's names: index 0 .. count-1. */
int dt_model_arch_count(void);
const char *dt_model_arch_name(int index);
/* 1 when name is one of them. */
int dt_model_arch_known(const char *name);

int dt_model_create(const dt_backend *backend, const dt_model_options *opt, dt_model **out,
                    dt_error *err);
/* The same model without a backend: its state dict (names, shapes, offsets) and convolutions are
 * known, nothing can run. For plans and layouts (tests, the cuDNN plan list). */
int dt_model_describe(const dt_model_options *opt, dt_model **out, dt_error *err);
/* The convolution layers dt_model_create creates for opt, in creation order (the same
 * descriptions it passes to conv_create): their number, the first max of them in out; -1 when
 * opt is not a model dt_model_create builds. */
int dt_model_conv_descs(const dt_model_options *opt, dt_conv_desc *out, int max);
void dt_model_destroy(dt_model *model);
/* The backend the model was created on. */
const dt_backend *dt_model_backend(const dt_model *model);
/* The architecture's name ("resnet50"). */
const char *dt_model_arch(const dt_model *model);

/* torchvision's initialisation (conv: kaiming_normal fan_out relu; BN: 1, 0, or 0 for each
 * block's last BN weight with zero_init_residual; fc: nn.Linear's default uniform), drawn from
 * the documented generator in rng.h seeded with seed. */
int dt_model_init_weights(dt_model *model, uint64_t seed, dt_error *err);

const dt_state_entry *dt_model_state(const dt_model *model, size_t *n_entries);
const dt_state_entry *dt_model_find(const dt_model *model, const char *name);

/* Flat buffers in backend memory. The parameter-shaped ones (params, grads, momentum, the
 * second moment, an average's params) hold each convolution's weights in its layer's layout
 * (dt_backend_conv_weight_layout), which may differ from OIHW: element-wise arithmetic and
 * collectives between ranks with the same dt_model_weight_layout may use them as they are, and
 * host copies go through the download/upload functions below, which convert to and from
 * OIHW. */
float *dt_model_params(dt_model *model);
float *dt_model_grads(dt_model *model);
float *dt_model_momentum(dt_model *model);
float *dt_model_stats(dt_model *model);
size_t dt_model_param_count(const dt_model *model);
size_t dt_model_stats_count(const dt_model *model);
/* The span of the parameter buffer that is trained: all, or fc only when frozen. */
void dt_model_trainable_span(const dt_model *model, size_t *offset, size_t *count);
int64_t dt_model_batches_tracked(const dt_model *model);
void dt_model_set_batches_tracked(dt_model *model, int64_t value);

/* Forward pass on a uint8 NHWC batch (batch x size x size x 3), normalised with mean/std.
 * training: BN batch statistics (running stats updated), activations kept for backward. */
int dt_model_forward(dt_model *model, const uint8_t *pixels_nhwc, const float mean[3],
                     const float std[3], int training, dt_error *err);

/* Loss on the last forward's logits: softmax cross-entropy with labels and per-sample weights.
 * The weighted loss sum, correct count and sample count are added to the backend's loss
 * statistics (dt_model_loss_stats_read); predictions (may be NULL) receives the argmax
 * per sample. When grad_scale != 0 the logits gradient (grad_scale * weight_i * (softmax -
 * onehot)) is kept for dt_model_backward. */
int dt_model_loss(dt_model *model, const int32_t *labels, const float *weights, float grad_scale,
                  int32_t *predictions, dt_error *err);
/* The same with the training loss's targets: mixed labels and label smoothing
 * (dt_loss_targets; the gradient is grad_scale * weight_i * (softmax - target_i)). */
int dt_model_loss_targets(dt_model *model, const dt_loss_targets *targets, float grad_scale,
                          int32_t *predictions, dt_error *err);

/* Called by dt_model_backward with report_ready set, once per layer group (the classifier, each
 * residual block, the stem; last first), as soon as the parameter gradients [offset, offset +
 * count) of the flat buffer are final for this step (their backward ops are queued). The spans
 * are disjoint, descending, and together cover dt_model_trainable_span. Nonzero return: the
 * backward stops and fails with err. */
typedef int (*dt_grads_ready_fn)(void *user, size_t offset, size_t count, dt_error *err);
void dt_model_set_grads_ready(dt_model *model, dt_grads_ready_fn fn, void *user);

/* Backward pass after a training forward and dt_model_loss with grad_scale != 0. Writes the
 * gradients into the flat grads buffer (overwriting), or adds them when accumulate is set.
 * report_ready: this is the step's last micro-batch; call the grads-ready callback (if set). */
int dt_model_backward(dt_model *model, int accumulate, int report_ready, dt_error *err);

/* 0 when every convolution keeps OIHW weights, else an identifier of the layouts of all of
 * them: models of the same description with the same identifier place every parameter at the
 * same index of the flat buffers. */
uint64_t dt_model_weight_layout(const dt_model *model);
/* How many of the model's convolutions keep their weights in a layout of their own; *total:
 * how many it has. */
int dt_model_own_layout_count(const dt_model *model, int *total);
/* A parameter-shaped buffer of the model (count dt_model_param_count) to or from a host array
 * in OIHW order, the order of the state dict's entries. */
int dt_model_param_buffer_download(dt_model *model, float *host, const float *buffer,
                                   dt_error *err);
int dt_model_param_buffer_upload(dt_model *model, float *buffer, const float *host, dt_error *err);

/* Host copies of the whole parameter and running-statistics buffers. */
int dt_model_download_state(dt_model *model, float *host_params, float *host_stats, dt_error *err);
/* Replaces both buffers from host copies (pretrained weights, broadcasts). */
int dt_model_upload_state(dt_model *model, const float *host_params, const float *host_stats,
                          dt_error *err);

/* Host copies of the momentum buffer (checkpoints, resume). */
int dt_model_download_momentum(dt_model *model, float *host_momentum, dt_error *err);
int dt_model_upload_momentum(dt_model *model, const float *host_momentum, dt_error *err);

/* A second optimizer buffer beside the momentum (AdamW: the momentum buffer holds exp_avg, this
 * one exp_avg_sq), one float per parameter: allocated zero-filled by the first use call;
 * dt_model_second_moment is NULL before. Host copies as for the momentum (upload allocates). */
int dt_model_use_second_moment(dt_model *model, dt_error *err);
float *dt_model_second_moment(dt_model *model);
int dt_model_download_second_moment(dt_model *model, float *host, dt_error *err);
int dt_model_upload_second_moment(dt_model *model, const float *host, dt_error *err);

/* Before a training step: keeps a copy of the running statistics in backend memory. */
int dt_model_stats_snapshot(dt_model *model, dt_error *err);
/* After the step's non-finite check (dt_model_guard_check): queues the restore of the
 * snapshot, applied by the backend only when the guard skips the step. */
int dt_model_stats_restore_if_skipped(dt_model *model, dt_error *err);
/* *finite: every parameter and running statistic is finite (a wait for the device). */
int dt_model_state_finite(dt_model *model, int *finite, dt_error *err);

/* The step's device-side bookkeeping on the model's backend (nn/model_step.c), so that training
 * needs no backend calls of its own. Loss statistics (added by dt_model_loss): read, and reset
 * when reset is set; waits for the queued work. */
int dt_model_loss_stats_read(dt_model *model, double stats[DT_LOSS_STATS], int reset,
                             dt_error *err);
/* The step's phases (dt_phase): mark, in stream order, that phase starts here; read the seconds
 * per phase since the last reset. */
int dt_model_phase_mark(dt_model *model, int phase, dt_error *err);
int dt_model_phase_read(dt_model *model, double seconds[DT_PHASE_COUNT], int reset, dt_error *err);
/* Starts the copy of the next batch's pixels (bytes of NHWC uint8) to the device, taken by the
 * next dt_model_forward on the same pixels; the buffer stays untouched until
 * dt_model_input_wait returns, which also forgets a prefetch not used by then. */
int dt_model_input_prefetch(dt_model *model, const uint8_t *pixels_nhwc, size_t bytes,
                            dt_error *err);
int dt_model_input_wait(dt_model *model, dt_error *err);
/* Sets count gradient values from offset (in floats, into dt_model_grads) to value. */
int dt_model_grads_fill(dt_model *model, size_t offset, size_t count, float value, dt_error *err);
/* The non-finite guard (dt_guard_state in backend.h): reset to state, halting after halt_after
 * non-finite steps in a row; check count gradients (a span of dt_model_grads) of step in
 * stream order; read (a wait) and clear its records. */
int dt_model_guard_reset(dt_model *model, const dt_guard_state *state, int64_t halt_after,
                         dt_error *err);
int dt_model_guard_check(dt_model *model, const float *grads, size_t count, int64_t step,
                         dt_error *err);
int dt_model_guard_read(dt_model *model, dt_guard_state *out, dt_error *err);

/* Loads a torchvision/timm state dict of the model's architecture from a safetensors file (F32,
 * F16, BF16 or F64 tensors; num_batches_tracked optional, bn1's value becomes the model's counter).
 * Every other tensor must be present with the right shape and finite values, and nothing else may
 * be in the file. With allow_classifier_mismatch, a classifier (fc.weight, fc.bias) of another
 * shape is left as it is (freshly initialised) and *classifier_replaced (may be NULL) is set to 1.
 * Problems with the file are usage errors (exit code 2) naming it and the tensors at fault; on
 * any error the model is left unchanged. */
int dt_model_load_safetensors(dt_model *model, const char *path, int allow_classifier_mismatch,
                              int *classifier_replaced, dt_error *err);

/* The architecture whose backbone tensor names are exactly those of st (classifier and
 * num_batches_tracked aside), or NULL: for files without an "arch" metadata value. */
struct dt_safetensors;
const char *dt_model_arch_of_state_dict(const struct dt_safetensors *st);

/* Logits of the last forward, host copy (batch x n_classes). */
int dt_model_logits(dt_model *model, float *host_logits, dt_error *err);

/* Writes the model's state dict to path (F32 tensors; num_batches_tracked as I64 scalars) with
 * metadata {format: pt, arch: the architecture, classes: names joined by '\n', config_hash:
 * hex}; with preprocessing (may be NULL), also the values `dtrain predict` defaults to:
 * image_size ("224"), resize ("squash" or "center"), mean and std ("0.485,0.456,0.406"). */
typedef struct dt_model_preprocessing {
    int image_size;
    const char *resize;
    float mean[3], std[3];
} dt_model_preprocessing;
int dt_model_save_safetensors(dt_model *model, const char *path, char *const *class_names,
                              int n_classes, uint64_t config_hash,
                              const dt_model_preprocessing *preprocessing, dt_error *err);

/* A checkpoint's tensor lists (model.safetensors: the state dict; optimizer.safetensors: the
 * momentum of each parameter, or with p->second_moment AdamW's NAME.exp_avg and NAME.exp_avg_sq)
 * over p's host copies params, stats and momentum, and its arch; num_batches_tracked is
 * p->state.batches_tracked, so call it once the state is filled. */
struct dt_ckpt_payload;
int dt_model_checkpoint_tensors(const dt_model *model, struct dt_ckpt_payload *p, dt_error *err);

#endif
