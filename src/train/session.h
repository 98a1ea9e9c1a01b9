/* What training, `dtrain eval` and `dtrain predict` set up alike, so that the three follow one
 * rule for each: the data (rank 0 scans, the others receive the list), the split, the display
 * names, the thread plan (affinity, cgroup quota, the node's other ranks, OMP_NUM_THREADS),
 * the device (runtime.device, one GPU per rank, the same refusals), the backend, the model and
 * the loader. */
#ifndef DTRAIN_TRAIN_SESSION_H
#define DTRAIN_TRAIN_SESSION_H

#include "device_choice.h"
#include "dtrain/backend.h"
#include "dtrain/comm.h"
#include "dtrain/config.h"
#include "dtrain/data.h"
#include "dtrain/error.h"
#include "dtrain/model.h"
#include "progress.h"

/* What the caller asks of the backend. */
typedef struct dt_session_request {
    dt_device_kind device;       /* runtime.device (--device for predict) */
    dt_precision_kind precision; /* auto: resolved for the device */
    int deterministic;           /* runtime.deterministic */
    int threads, workers;        /* runtime.threads, data.workers; 0: this rank's share */
    int gradient_comm;           /* training with several ranks: NCCL is needed on GPUs */
} dt_session_request;

typedef struct dt_session {
    dt_comm *comm;
    int is_root;
    dt_progress *log; /* rank 0's start-up lines (device, thread plan); NULL: none */
    int threads, workers;
    dt_device_choice device;
    dt_precision_kind precision; /* resolved for the device (never auto) */
    dt_backend backend;
    int have_backend;
    dt_dataset ds;
    dt_split split;
    char **display_names; /* per label: data.class_names' name, else the folder */
    dt_model *model;
    dt_loader *loader;
} dt_session;

/* log may be NULL (nothing printed). */
void dt_session_init(dt_session *s, dt_comm *comm, dt_progress *log);

/* The thread plan (every rank: the ranks compare their CPU masks); with DTRAIN_VERBOSE rank 0
 * logs how the counts were chosen and the OpenMP wait policy. */
int dt_session_plan_threads(dt_session *s, const dt_session_request *req, dt_error *err);

/* The dataset under root (key names it in errors: "data.root", "--data"): rank 0 reads it and
 * broadcasts the file list to the other ranks. */
int dt_session_open_data(dt_session *s, const char *key, const char *root, dt_error *err);
/* data.val_root's folder as the validation part, else the seeded data.val_fraction split. */
int dt_session_split(dt_session *s, const dt_config *cfg, dt_error *err);
/* data.class_names' name of each class folder, else the folder name; warn_unused: rank 0 warns
 * about a data.class_names entry that names no class folder. */
int dt_session_display_names(dt_session *s, const dt_config *cfg, int warn_unused, dt_error *err);

/* The device rule of every command, pure (gpus as data, so that every case is tested without a
 * GPU): runtime.device against the GPUs and this rank's place on its node (dt_device_choose). */
int dt_session_choose_device(dt_device_kind kind, const dt_comm *comm, int cuda_backend_built,
                             const dt_gpu_query *gpus, dt_device_choice *out, dt_error *err);
/* The device (GPUs queried only when runtime.device is not cpu; with several ranks, every
 * rank's GPU gathered and two ranks of a node on one GPU refused), the precision resolved for
 * it, and its backend with the planned compute threads. */
int dt_session_create_backend(dt_session *s, const dt_session_request *req, dt_error *err);
/* The backend's name ("cpu", "cuda") for the start-up lines. */
const char *dt_session_backend_name(const dt_session *s);
int dt_session_create_model(dt_session *s, const dt_model_options *opt, dt_error *err);
/* The loader over s->ds; batches in the backend's host buffers; opt->workers 0: the plan's. */
int dt_session_create_loader(dt_session *s, dt_loader_options *opt, dt_error *err);

/* Frees what the session holds (loader, model, backend, names, split, data). */
void dt_session_close(dt_session *s);

#endif
