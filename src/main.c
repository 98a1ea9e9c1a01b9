/* dtrain's command line: parses arguments, loads the config, starts the comm layer and runs the
 * training; maps errors to exit codes and makes a failing rank end the whole job.
 *
 * First it chooses the OpenMP wait policy. dtrain's decode threads share the cores with the
 * OpenMP compute threads, so a compute thread that spins while it waits takes the time a decoder
 * (or another rank) needs: sleeping waits (OMP_WAIT_POLICY=PASSIVE) unless the user chose.
 * libgomp reads the variable once, when it is loaded, before main; so when it is unset, main sets
 * it and executes this same program file again: same process id, arguments and name. That costs
 * a second start of the program, a few milliseconds (bench/README.md, "Start-up"), which is why
 * it replaced the former small launcher executable that set the variable and then dlopened the
 * program as a module: a second binary, Open MPI's plugins needing that module loaded
 * RTLD_GLOBAL, and LeakSanitizer crashing at the exit of the dlopened module, which had kept leak
 * checking off for the tests that run dtrain. Under valgrind, which would not follow the exec,
 * the policy is left to the OpenMP library (the log says so). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>
#include <yaml.h>

#include "cli/cli.h"
#include "dtrain/backend.h"
#include "dtrain/comm.h"
#include "dtrain/config.h"
#include "dtrain/gpu.h"
#include "dtrain/log.h"
#include "dtrain/platform.h"
#include "dtrain/signals.h"
#include "dtrain/text_escape.h"
#include "dtrain/threads.h"
#include "dtrain/train.h"

#define DT_STRINGIFY_(x) #x
#define DT_STRINGIFY(x) DT_STRINGIFY_(x)

static void print_usage(FILE *out) {
    fputs("usage: dtrain CONFIG.yaml [key.path=value ...]      train\n"
          "       dtrain CONFIG.yaml --resume [PATH] [overrides] continue from a checkpoint\n"
          "       dtrain CONFIG.yaml --overwrite [overrides]     replace the run in output.dir\n"
          "       dtrain CONFIG.yaml --print-config [overrides]  print the resolved config\n"
          "       mpirun -np N dtrain CONFIG.yaml                data-parallel on N ranks\n"
          "       dtrain predict MODEL.safetensors PATH... [options]\n"
          "                        classify images (options: dtrain predict --help)\n"
          "       dtrain eval CONFIG.yaml [--model FILE] [--data DIR] [--out DIR]\n"
          "                   [overrides]\n"
          "                        evaluate a model (options: dtrain eval --help)\n"
          "       dtrain pack SRC OUT [--shard-size MB] [--resize N] [--quality Q]\n"
          "                        pack an ImageFolder into tar shards\n"
          "       dtrain -V | --version  version, backends and library versions\n"
          "       dtrain -h | --help     this text (man dtrain: the manual)\n"
          "\n"
          "Overrides change any config key, e.g. train.epochs=1 runtime.device=cpu\n"
          "data.mean=[0.5,0.5,0.5]. Outputs go to output.dir: config.yaml, metrics.jsonl,\n"
          "metrics.csv, model.safetensors, best.safetensors, classes.txt, report.html,\n"
          "classification_report.txt, confusion_matrix.csv, predictions.csv, tensorboard/,\n"
          "checkpoints/; dtrain eval writes into output.dir/eval/<data folder>/.\n"
          "Environment: DTRAIN_VERBOSE=1 (start-up details: threads, OpenMP, GPUs),\n"
          "DTRAIN_PROGRESS=live|plain, NO_COLOR, OMP_NUM_THREADS, CUDA_VISIBLE_DEVICES.\n"
          "Exit codes: 0 done, 1 runtime failure, 2 usage or config error, 75 stopped by\n"
          "SIGTERM/SIGINT/SIGHUP/SIGUSR1 after writing a checkpoint (continue with\n"
          "--resume), 130 a second SIGINT.\n",
          out);
}

static void print_version(void) {
    printf("dtrain %s\n", DTRAIN_VERSION);
    printf("backends: cpu");
    if (dt_backend_cuda_training_available()) printf(" cuda");
#ifdef DTRAIN_HAVE_MPI
    printf(" mpi");
#endif
#ifdef DTRAIN_HAVE_NCCL
    printf(" nccl");
#endif
    printf("\n");
    printf("oneDNN: %s\n", dt_backend_cpu_library_version());
#ifdef LIBJPEG_TURBO_VERSION
    printf("libjpeg-turbo: %s\n", DT_STRINGIFY(LIBJPEG_TURBO_VERSION));
#endif
    printf("libpng: %s\n", png_get_libpng_ver(NULL));
    printf("libyaml: %s\n", yaml_get_version_string());
#ifdef DTRAIN_HAVE_MPI
    printf("MPI: %s\n", dt_comm_mpi_library_version());
#endif
#ifdef DTRAIN_HAVE_CUDA
    printf("CUDA: %s\n", dt_backend_cuda_library_versions());
    /* the start-up check runtime.device=cuda makes (driver, cuDNN, cuBLAS), in one line */
    dt_gpu_query gpus;
    char reason[1024];
    dt_backend_cuda_query(&gpus);
    printf("GPU: %s: %s\n", gpus.status == DT_GPU_AVAILABLE ? "usable" : "not usable",
           dt_gpu_query_reason(&gpus, reason, sizeof reason));
#endif
}

static void print_error(const dt_comm *comm, int env_rank, const dt_error *err) {
    int rank = comm ? comm->rank : env_rank;
    int size = comm ? comm->size : 1;
    char shown[4 * sizeof err->message]; /* names in messages may hold control characters */
    dt_escape_text(err->message, shown, sizeof shown);
    dt_log_end_live_line(); /* never "ETA 12sdtrain: error: ..." */
    if (size > 1 || rank != 0)
        fprintf(stderr, "dtrain: rank %d: error: %s\n", rank, shown);
    else
        fprintf(stderr, "dtrain: error: %s\n", shown);
}

/* Set in the environment of the second execution only, so that it knows the policy is dtrain's
 * (and never executes again); removed before anything else runs. */
static const char policy_mark[] = "DTRAIN_WAIT_POLICY_SET";

/* Returns 1 when OMP_WAIT_POLICY is dtrain's choice; executes the program again to make it so
 * when the user has not chosen (see the top of this file), and returns 0 when it cannot. */
static int choose_openmp_wait_policy(char **argv) {
    const char *mark = getenv(policy_mark);
    int second = mark != NULL;
    if (second) unsetenv(policy_mark);
    if (second || getenv("OMP_WAIT_POLICY")) return second && getenv("OMP_WAIT_POLICY");
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "vgpreload")) return 0; /* valgrind: no exec to follow */
    /* the real file (links resolved): the process keeps its name, argv[0] stays as typed */
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return 0;
    self[n] = '\0';
    if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) == 0 && setenv(policy_mark, "1", 1) == 0)
        execv(self, argv);
    unsetenv("OMP_WAIT_POLICY"); /* not executed: this process's library keeps its default */
    unsetenv(policy_mark);
    return 0;
}

int main(int argc, char **argv) {
    /* before any file is opened */
    if (dt_keep_standard_descriptors_open() != 0) return DT_EXIT_RUNTIME;
    dt_openmp_wait_policy_record(choose_openmp_wait_policy(argv));
    if (argc > 1 && strcmp(argv[1], "predict") == 0) return dt_cli_predict(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "eval") == 0) return dt_cli_eval(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "pack") == 0) return dt_cli_pack(argc - 1, argv + 1);
    const char *config_path = NULL;
    int print_config = 0, n_overrides = 0;
    dt_train_options options = {0};
    char **overrides = calloc((size_t)argc + 1, sizeof *overrides);
    if (!overrides) return DT_EXIT_RUNTIME;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_usage(stdout);
            free(overrides);
            return DT_EXIT_OK;
        } else if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            print_version();
            free(overrides);
            return DT_EXIT_OK;
        } else if (strcmp(a, "--print-config") == 0) {
            print_config = 1;
        } else if (strcmp(a, "--overwrite") == 0) {
            options.overwrite = 1;
        } else if (strcmp(a, "--resume") == 0) {
            options.resume = 1;
            /* an optional checkpoint folder follows (a folder: never a config file) */
            struct stat st;
            const char *next = i + 1 < argc ? argv[i + 1] : NULL;
            if (next && !strchr(next, '=') && next[0] != '-') {
                if (stat(next, &st) == 0 && S_ISDIR(st.st_mode)) {
                    options.resume_path = argv[++i];
                } else if (config_path) {
                    /* the config came first: this is meant as the checkpoint folder */
                    int missing = stat(next, &st) != 0;
                    char shown[512];
                    fprintf(stderr, "dtrain: --resume %s: %s\n",
                            dt_escape_text(next, shown, sizeof shown),
                            missing ? "no such checkpoint folder" : "not a checkpoint folder");
                    free(overrides);
                    return DT_EXIT_USAGE;
                }
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            char shown[512];
            fprintf(stderr, "dtrain: error: unknown option '%s' (see dtrain --help)\n",
                    dt_escape_text(a, shown, sizeof shown));
            free(overrides);
            return DT_EXIT_USAGE;
        } else if (!config_path && !strchr(a, '=')) {
            config_path = a;
        } else if (strchr(a, '=')) {
            overrides[n_overrides++] = argv[i];
        } else {
            char shown[512];
            fprintf(stderr,
                    "dtrain: error: unexpected argument '%s': overrides are key.path=value\n",
                    dt_escape_text(a, shown, sizeof shown));
            free(overrides);
            return DT_EXIT_USAGE;
        }
    }
    if (options.resume && options.overwrite) {
        fprintf(stderr, "dtrain: error: --resume and --overwrite exclude each other\n");
        free(overrides);
        return DT_EXIT_USAGE;
    }
    if (!config_path) {
        print_usage(stderr);
        free(overrides);
        return DT_EXIT_USAGE;
    }

    int env_rank = dt_comm_env_rank();
    dt_config cfg;
    dt_error err = {{0}, 0};
    if (dt_config_load(config_path, n_overrides, overrides, &cfg, &err)) {
        if (env_rank == 0) print_error(NULL, env_rank, &err);
        free(overrides);
        return err.exit_code ? err.exit_code : DT_EXIT_USAGE;
    }
    free(overrides);
    if (print_config) {
        int rc = env_rank == 0 ? dt_config_write_yaml(&cfg, stdout) : 0;
        dt_config_free(&cfg);
        return rc ? DT_EXIT_RUNTIME : DT_EXIT_OK;
    }

    dt_signals_install();
    dt_comm comm;
    if (dt_comm_init(&argc, &argv, &comm, &err)) {
        print_error(NULL, env_rank, &err);
        dt_config_free(&cfg);
        return err.exit_code ? err.exit_code : DT_EXIT_RUNTIME;
    }
    int rc = dt_train_run_with(&cfg, &options, &comm, &err);
    if (rc && err.exit_code == DT_EXIT_STOPPED) {
        /* every rank stopped at the same step: a clean end, not an abort */
        dt_log_end_live_line();
        if (comm.rank == 0)
            fprintf(stderr, "dtrain: %s\n", err.message);
        else
            fprintf(stderr, "dtrain: rank %d: %s\n", comm.rank, err.message);
        fflush(stdout);
        comm.ops->finalize(comm.ctx);
        dt_config_free(&cfg);
        return DT_EXIT_STOPPED;
    }
    if (rc) {
        int code = err.exit_code ? err.exit_code : DT_EXIT_RUNTIME;
        print_error(&comm, env_rank, &err);
        fflush(stdout);
        fflush(stderr);
        if (comm.size > 1) comm.ops->abort(comm.ctx, code); /* ends every rank */
        comm.ops->finalize(comm.ctx);
        dt_config_free(&cfg);
        return code;
    }
    comm.ops->finalize(comm.ctx);
    dt_config_free(&cfg);
    return DT_EXIT_OK;
}
