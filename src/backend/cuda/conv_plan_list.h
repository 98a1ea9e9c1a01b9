/* Which cuDNN convolution plans a run builds: each conv layer's passes (forward; backward
 * filter and backward data unless the layer's description says backward never asks for them)
 * and one plan per distinct (shape, pass), shared by the layers of that shape. The CUDA backend
 * builds its plans by these rules and the deviceless plan test (tests/cuda/test_cudnn_plans.c)
 * lists the plans of a run with them, so that what it proves is what a run builds. */
#ifndef DTRAIN_CONV_PLAN_LIST_H
#define DTRAIN_CONV_PLAN_LIST_H

#include "cudnn_conv.h"
#include "dtrain/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dt_conv_plan_key {
    dt_conv_desc shape; /* the layer's description without its backward flags */
    dt_conv_pass pass;
} dt_conv_plan_key;

/* The passes a layer of d runs, into out; returns their number (1 to 3). */
int dt_conv_layer_passes(const dt_conv_desc *d, dt_conv_pass out[3]);
dt_conv_plan_key dt_conv_plan_key_of(const dt_conv_desc *d, dt_conv_pass pass);
int dt_conv_plan_key_equal(const dt_conv_plan_key *a, const dt_conv_plan_key *b);
/* The distinct plans of layers[0..n) into out in first-use order: their number, or -1 when
 * there are more than max. */
int dt_conv_plan_list(const dt_conv_desc *layers, int n, dt_conv_plan_key *out, int max);
/* The distinct layer shapes among keys[0..n). */
int dt_conv_plan_list_shapes(const dt_conv_plan_key *keys, int n);

#ifdef __cplusplus
}
#endif

#endif
