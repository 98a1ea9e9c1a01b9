/* The moving average of a model's weights (train.ema_decay), as timm's ModelEmaV2 keeps it: a
 * second copy of every state-dict entry in backend memory, parameters and BatchNorm running
 * statistics alike, updated after each optimizer step as decay * ema + (1 - decay) * live;
 * num_batches_tracked is copied (timm's ModelEmaV3 does; V2 would blend the integer). The average
 * is evaluated, saved and checkpointed by swapping it into the model for the time of one call,
 * so every path that reads or writes a model (evaluation, the safetensors writer and loader)
 * works on it unchanged. */
#ifndef DTRAIN_MODEL_EMA_H
#define DTRAIN_MODEL_EMA_H

#include <stdint.h>

#include "dtrain/error.h"
#include "dtrain/model.h"

typedef struct dt_model_ema {
    dt_model *model;       /* the live model; NULL: no average kept */
    float *params, *stats; /* backend memory; the live model's while swapped in */
    int64_t batches_tracked;
    float decay, one_minus_decay; /* one_minus_decay: 1 - decay in double, rounded (torch) */
    int swapped;                  /* the average is the model's state now */
} dt_model_ema;

/* Starts the average as a copy of the model's state now (decay in (0, 1)). */
int dt_model_ema_init(dt_model_ema *ema, dt_model *model, double decay, dt_error *err);
/* After an optimizer step, in stream order (no wait): every entry moves towards the live
 * model's; guarded: not when the non-finite guard skipped the step (dt_backend_ema_update). */
int dt_model_ema_update(dt_model_ema *ema, int guarded, dt_error *err);
/* Exchanges the model's state with the average's (buffers and num_batches_tracked; no copy):
 * called again, it exchanges them back. */
void dt_model_ema_swap(dt_model_ema *ema);
/* Host copies of the average (a checkpoint's), and its replacement from host copies. */
int dt_model_ema_download(dt_model_ema *ema, float *host_params, float *host_stats, dt_error *err);
int dt_model_ema_upload(dt_model_ema *ema, const float *host_params, const float *host_stats,
                        int64_t batches_tracked, dt_error *err);
void dt_model_ema_free(dt_model_ema *ema);

/* A checkpoint's ema.safetensors tensor list (the state dict's names, as model.safetensors) over
 * p's host copies ema_params and ema_stats, num_batches_tracked p->ema_batches_tracked. */
struct dt_ckpt_payload;
int dt_model_ema_checkpoint_tensors(const dt_model_ema *ema, struct dt_ckpt_payload *p,
                                    dt_error *err);

#endif
