/* Keeping descriptors 0, 1 and 2 occupied. Self-contained (the C library only): the dtrain
 * executable calls it first thing in main (src/main.c). */
#include "dtrain/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int dt_keep_standard_descriptors_open(void) {
    /* A descriptor 0, 1 or 2 closed by whoever started us would be handed to the next file
     * opened, and console lines would then be written into that file. */
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
        int opened = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (opened < 0) return -1;
        if (opened != fd) { /* a lower one was closed too and is taken: move it */
            int moved = dup2(opened, fd);
            close(opened);
            if (moved < 0) return -1;
        }
    }
    return 0;
}
