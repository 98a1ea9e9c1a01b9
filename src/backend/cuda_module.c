/* The program's side of the CUDA backend: every CUDA entry point of backend.h, gpu.h and
 * device_comm.h, answered by the CUDA module (src/backend/cuda_module.h). The module is loaded
 * on first use, so that a machine without cuDNN or cuBLAS runs dtrain on the CPU: its loading
 * failure ("libcudnn.so.9: cannot open shared object file") becomes the start-up check's
 * verdict, naming the library and the pip wheel that provides it, which runtime.device=auto logs
 * before training on the CPU and runtime.device=cuda reports as a usage error. A program that
 * links the CUDA objects in (the tests) uses them directly. Without the toolkit: no GPU, and that
 * is why. */
#include "cuda_module.h"

#include <stdio.h>
#include <string.h>

#ifdef DTRAIN_HAVE_CUDA
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#ifndef DTRAIN_CUDA_MAJOR
#define DTRAIN_CUDA_MAJOR 13
#endif
#ifndef DTRAIN_MODULE_DIR
#define DTRAIN_MODULE_DIR "../lib/dtrain"
#endif

/* defined only when the program links the module's objects */
extern const dt_cuda_module *dt_cuda_module_entry(void) __attribute__((weak));

static pthread_once_t module_once = PTHREAD_ONCE_INIT;
static const dt_cuda_module *module;
static char module_error[600];

/* dlerror's "libcudnn.so.9: cannot open shared object file: ..." as the start-up check says a
 * library is missing, with how to provide it; any other failure as it is */
static void record_failure(const char *path, const char *why) {
    char soname[128] = "", hint[400];
    if (why && sscanf(why, "%127[^:]", soname) == 1 && strstr(why, "cannot open") &&
        dt_gpu_library_hint(soname, DTRAIN_CUDA_MAJOR, hint, sizeof hint))
        snprintf(module_error, sizeof module_error,
                 "%s (needed by dtrain's CUDA module) could not be loaded; provide %s", soname,
                 hint);
    else
        snprintf(module_error, sizeof module_error, "the CUDA module %s could not be loaded: %s",
                 path, why ? why : "unknown error");
}

static void load_module(void) {
    if (dt_cuda_module_entry) {
        module = dt_cuda_module_entry();
        return;
    }
    /* DTRAIN_CUDA_MODULE names the file; else beside the executable's real file (a symlink on
     * PATH finds the install), then in the install's module folder relative to it. By full path,
     * so that the module's own run path finds the NVIDIA libraries it links. */
    char dir[4096] = "", path[sizeof dir + 128] = "";
    const char *chosen = getenv("DTRAIN_CUDA_MODULE");
    if (chosen && chosen[0]) {
        snprintf(path, sizeof path, "%s", chosen);
    } else {
        ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
        if (n > 0) dir[n] = '\0';
        char *slash = n > 0 ? strrchr(dir, '/') : NULL;
        if (slash) slash[1] = '\0';
        const char *folders[] = {"", DTRAIN_MODULE_DIR "/"};
        for (size_t i = 0; slash && i < sizeof folders / sizeof folders[0]; i++) {
            snprintf(path, sizeof path, "%s%s%s", dir, folders[i], DT_CUDA_MODULE_FILE);
            if (access(path, F_OK) == 0) break;
            path[0] = '\0';
        }
        if (!path[0]) {
            snprintf(module_error, sizeof module_error,
                     "the CUDA module %s is missing (looked beside %s and in %s%s)",
                     DT_CUDA_MODULE_FILE, slash ? dir : "the executable", slash ? dir : "",
                     DTRAIN_MODULE_DIR);
            return;
        }
    }
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        record_failure(path, dlerror());
        return;
    }
    const dt_cuda_module *(*entry)(void) = NULL;
    *(void **)&entry = dlsym(handle, "dt_cuda_module_entry");
    const dt_cuda_module *table = entry ? entry() : NULL;
    if (!table || table->abi != DT_CUDA_MODULE_ABI || table->table_bytes != sizeof *table) {
        snprintf(module_error, sizeof module_error,
                 "the CUDA module %s is not this dtrain's (rebuild and install both together)",
                 path);
        dlclose(handle);
        return;
    }
    module = table; /* stays loaded until exit: the backend's threads and streams live in it */
}

static const dt_cuda_module *cuda_module(void) {
    pthread_once(&module_once, load_module);
    return module;
}

int dt_backend_cuda_training_available(void) {
    return 1;
}

int dt_backend_cuda_create(const dt_backend_options *opt, dt_backend *out, dt_error *err) {
    const dt_cuda_module *m = cuda_module();
    if (!m) return dt_fail_usage(err, "runtime.device: 'cuda', but %s", module_error);
    return m->backend_create(opt, out, err);
}

int dt_backend_cuda_device_count(void) {
    const dt_cuda_module *m = cuda_module();
    return m ? m->device_count() : 0;
}

void dt_backend_cuda_query(dt_gpu_query *out) {
    const dt_cuda_module *m = cuda_module();
    if (m) {
        m->query(out);
        return;
    }
    memset(out, 0, sizeof *out);
    out->status = DT_GPU_LIBRARY_MISSING;
    snprintf(out->detail, sizeof out->detail, "%s", module_error);
}

int dt_backend_cuda_device_info(int device, dt_gpu_info *out, dt_error *err) {
    const dt_cuda_module *m = cuda_module();
    if (m) return m->device_info(device, out, err);
    memset(out, 0, sizeof *out);
    return dt_fail(err, "GPU %d: %s", device, module_error);
}

const char *dt_backend_cuda_library_versions(void) {
    static char text[sizeof module_error + 32];
    const dt_cuda_module *m = cuda_module();
    if (m) return m->library_versions();
    snprintf(text, sizeof text, "not loadable: %s", module_error);
    return text;
}

#ifdef DTRAIN_HAVE_NCCL
const dt_nccl_api *dt_nccl_api_load(dt_error *err) {
    const dt_cuda_module *m = cuda_module();
    if (!m) {
        dt_fail_usage(err, "%s", module_error);
        return NULL;
    }
    return m->nccl_api_load(err);
}

int dt_nccl_loaded_version(void) {
    const dt_cuda_module *m = cuda_module();
    return m ? m->nccl_loaded_version() : 0;
}
#endif

#else /* built without the CUDA toolkit */

int dt_backend_cuda_training_available(void) {
    return 0;
}

int dt_backend_cuda_create(const dt_backend_options *opt, dt_backend *out, dt_error *err) {
    (void)opt;
    (void)out;
    return dt_fail_usage(err, "runtime.device: 'cuda', but this dtrain was built without the "
                              "CUDA toolkit (it trains on the CPU: runtime.device=cpu)");
}

int dt_backend_cuda_device_count(void) {
    return 0;
}

void dt_backend_cuda_query(dt_gpu_query *out) {
    memset(out, 0, sizeof *out);
    out->status = DT_GPU_NOT_BUILT;
}

int dt_backend_cuda_device_info(int device, dt_gpu_info *out, dt_error *err) {
    memset(out, 0, sizeof *out);
    return dt_fail(err, "GPU %d: this dtrain was built without the CUDA toolkit", device);
}

const char *dt_backend_cuda_library_versions(void) {
    return "not built in";
}
#endif
