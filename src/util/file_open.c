/* Opening input files without ever blocking: a FIFO named where an image or a weight file is
 * expected would make a plain open() wait for a writer forever. */
#include "dtrain/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int dt_open_regular_file(const char *path, int *fd_out, uint64_t *size, dt_error *err) {
    *fd_out = -1;
    /* O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer; it changes
     * nothing for the regular files that are then accepted. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int cause = errno;
        dt_fail(err, "%s: cannot open: %s", path, strerror(cause));
        errno = cause;
        return -1;
    }
    struct stat info;
    int cause = 0;
    if (fstat(fd, &info) != 0) {
        cause = errno;
        dt_fail(err, "%s: cannot stat: %s", path, strerror(cause));
    } else if (S_ISDIR(info.st_mode)) {
        cause = EISDIR;
        dt_fail(err, "%s: not a regular file (a folder)", path);
    } else if (!S_ISREG(info.st_mode)) {
        cause = EINVAL;
        dt_fail(err, "%s: not a regular file (%s)", path,
                S_ISFIFO(info.st_mode)   ? "a FIFO"
                : S_ISSOCK(info.st_mode) ? "a socket"
                : S_ISCHR(info.st_mode)  ? "a character device"
                : S_ISBLK(info.st_mode)  ? "a block device"
                                         : "not a plain file");
    }
    if (cause) {
        close(fd);
        errno = cause;
        return -1;
    }
    *fd_out = fd;
    *size = (uint64_t)info.st_size;
    return 0;
}
