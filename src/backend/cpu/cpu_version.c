/* The version string of the CPU backend's library (oneDNN), read from the loaded library. */
#include "cpu_internal.h"

#include <pthread.h>
#include <stdio.h>

static char version_text[64];
static pthread_once_t version_once = PTHREAD_ONCE_INIT;

static void format_version(void) {
    const dnnl_version_t *v = dnnl_version();
    snprintf(version_text, sizeof version_text, "oneDNN %d.%d.%d", v->major, v->minor, v->patch);
}

const char *dt_backend_cpu_library_version(void) {
    pthread_once(&version_once, format_version);
    return version_text;
}
