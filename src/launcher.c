/* The dtrain executable: chooses the OpenMP wait policy, then loads the program proper
 * (libdtrain_main.so: next to this file in a build tree, in DTRAIN_MODULE_DIR relative to it once
 * installed, e.g. bin/../lib/dtrain) and runs it in this same process.
 *
 * Why a separate module: dtrain runs its decode threads beside the OpenMP compute threads, so a
 * compute thread that spins while waiting takes the core a decoder (or another rank) needs;
 * sleeping waits are several times faster on a loaded machine (bench/README.md). libgomp reads
 * OMP_WAIT_POLICY once, in its own initialiser, when it is loaded. Anything linked into this
 * executable (oneDNN, libgomp, MPI) is initialised before main, and the dynamic loader gives no
 * order between independent libraries, so no constructor of ours is guaranteed to run first;
 * the one hook that is (the executable's .preinit_array) runs before the C library has set up
 * its environment, which then replaces anything setenv wrote. Re-executing the program after
 * setenv works but renames the process ("exe" through /proc/self/exe), loads every library
 * twice and escapes valgrind. So this small executable links none of them: it sets the policy
 * and dlopens the module, whose libgomp then reads it. The process keeps its name and argv, and
 * valgrind and gdb follow the module like any shared library. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dtrain/backend.h"
#include "dtrain/error.h"
#include "dtrain/gpu.h"
#include "dtrain/platform.h"

#ifndef DTRAIN_CUDA_MAJOR
#define DTRAIN_CUDA_MAJOR 13 /* builds without the toolkit load no NVIDIA library */
#endif

/* Exported by libdtrain_main.so (src/main.c). */
typedef int dtrain_main_fn(int argc, char **argv, int wait_policy_chosen_by_dtrain);

int main(int argc, char **argv) {
    /* before any file is opened (the module and its libraries included) */
    if (dt_keep_standard_descriptors_open() != 0) return DT_EXIT_RUNTIME;
    /* The user's choice wins; otherwise sleeping waits (see above). */
    int chosen = 0;
    if (!getenv("OMP_WAIT_POLICY")) chosen = setenv("OMP_WAIT_POLICY", "PASSIVE", 1) == 0;

    /* Next to the real file of this executable (links resolved: a symlink on PATH finds the
     * install), else in the install's module folder relative to it. By full path: a dlopen
     * interposed by a sanitizer runtime would search that runtime's run path, not ours; the
     * bare name (this executable's run path, $ORIGIN) is the last fallback. RTLD_GLOBAL: Open
     * MPI's plugins, loaded later, resolve their symbols against libmpi, which the module brings
     * in. */
    static const char module_name[] = "libdtrain_main.so";
    char dir[4096] = "", path[sizeof dir + 64];
    ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
    if (n > 0) dir[n] = '\0';
    char *slash = n > 0 ? strrchr(dir, '/') : NULL;
    if (slash) slash[1] = '\0';
    const char *candidates[] = {"", DTRAIN_MODULE_DIR "/"};
    void *module = NULL;
    char first_error[1024] = "";
    for (size_t i = 0; slash && !module && i < sizeof candidates / sizeof candidates[0]; i++) {
        snprintf(path, sizeof path, "%s%s%s", dir, candidates[i], module_name);
        if (access(path, F_OK) != 0) continue;
        if (!(module = dlopen(path, RTLD_NOW | RTLD_GLOBAL)) && !first_error[0])
            snprintf(first_error, sizeof first_error, "%s", dlerror());
    }
    if (!module && !first_error[0]) module = dlopen(module_name, RTLD_NOW | RTLD_GLOBAL);
    if (!module) {
        /* "libcudnn.so.9: cannot open shared object file: ...": name the NVIDIA library and
         * how to provide it (a setup error, not a failure of the run) */
        const char *why = first_error[0] ? first_error : dlerror();
        char soname[128] = "", hint[512];
        if (why) sscanf(why, "%127[^:]", soname);
        if (why && dt_gpu_library_hint(soname, DTRAIN_CUDA_MAJOR, hint, sizeof hint) &&
            strstr(why, "cannot open")) {
            fprintf(stderr,
                    "dtrain: error: %s, which this dtrain's CUDA backend links, was not found "
                    "by the dynamic loader; provide %s\n",
                    soname, hint);
            return DT_EXIT_USAGE;
        }
        fprintf(stderr,
                "dtrain: error: cannot load the program module: %s (looked for %s next to %s "
                "and in %s%s)\n",
                why ? why : "unknown error", module_name, slash ? dir : "this executable",
                slash ? dir : "", DTRAIN_MODULE_DIR);
        return DT_EXIT_RUNTIME;
    }
    dtrain_main_fn *run = (dtrain_main_fn *)dlsym(module, "dtrain_main");
    if (!run) {
        fprintf(stderr, "dtrain: error: %s\n", dlerror());
        return DT_EXIT_RUNTIME;
    }
    /* The module stays loaded until exit: its threads and atexit handlers live in it. */
    return run(argc, argv, chosen);
}
