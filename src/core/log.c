#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"

static char error_path[512];
static char access_path[512];
static int  error_fd = STDERR_FILENO;
static int  access_fd = STDERR_FILENO;
static int  max_level = JT_LOG_INFO;
static char request_id[72] = "-";

static const char *level_names[] = { "error", "warn", "info", "debug" };

static int
open_append(const char *path, int fallback)
{
    int fd;

    if (path[0] == '\0') {
        return fallback;
    }
    if (!strcmp(path, "off")) {
        return -1;
    }
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    return fd;
}

static void
swap_fd(int *slot, int fd)
{
    int old = *slot;
    *slot = fd;
    if (old > STDERR_FILENO && old != fd) {
        close(old);
    }
}

int
jt_log_open(const char *epath, const char *apath, const char *level)
{
    int i, efd, afd;

    for (i = 0; i < 4; i++) {
        if (!strcmp(level, level_names[i])) {
            max_level = i;
        }
    }
    snprintf(error_path, sizeof(error_path), "%s", epath);
    snprintf(access_path, sizeof(access_path), "%s", apath);
    efd = open_append(error_path, STDERR_FILENO);
    afd = open_append(access_path, STDERR_FILENO);
    if ((error_path[0] && efd < 0) || (access_path[0] && strcmp(access_path, "off") && afd < 0)) {
        return -1;
    }
    swap_fd(&error_fd, efd);
    swap_fd(&access_fd, afd);
    return 0;
}

/* SIGUSR1: logrotate has moved the files away; open new ones. On failure the
 * old descriptors stay in use, so no line is lost. */
int
jt_log_reopen(void)
{
    int efd = open_append(error_path, STDERR_FILENO);
    int afd = open_append(access_path, STDERR_FILENO);

    if (error_path[0] && efd >= 0) {
        swap_fd(&error_fd, efd);
    }
    if (access_path[0] && strcmp(access_path, "off") && afd >= 0) {
        swap_fd(&access_fd, afd);
    }
    return 0;
}

void
jt_log_set_request_id(const char *id)
{
    snprintf(request_id, sizeof(request_id), "%s", id ? id : "-");
}

static size_t
stamp(char *out, size_t len)
{
    int64_t us = jt_clock_wall_us();
    time_t secs = (time_t) (us / 1000000);
    struct tm tm;
    size_t n;

    gmtime_r(&secs, &tm);
    n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t) snprintf(out + n, len - n, ".%06ldZ", (long) (us % 1000000));
    return n;
}

static void
write_line(int fd, char *line, size_t n, size_t cap)
{
    if (fd < 0) {
        return;
    }
    if (n >= cap) {
        n = cap - 1;
    }
    line[n++] = '\n';
    /* one write per line; a short write on a regular file means the disk is
     * full, and there is nowhere better to report that */
    while (write(fd, line, n) < 0 && errno == EINTR) {
    }
}

void
jt_log(int level, const char *fmt, ...)
{
    char line[2048];
    size_t n;
    va_list ap;
    int r;

    if (level > max_level) {
        return;
    }
    n = stamp(line, sizeof(line));
    n += (size_t) snprintf(line + n, sizeof(line) - n, " [%s] pid=%d req=%s ",
                           level_names[level], (int) getpid(), request_id);
    va_start(ap, fmt);
    r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (r > 0) {
        n += (size_t) r;
    }
    write_line(error_fd, line, n, sizeof(line));
}

void
jt_log_access(const char *method, const char *path, int status, int64_t usec)
{
    char line[1024];
    size_t n;
    int r;

    if (access_fd < 0) {
        return;     /* access_log = off: not even the clock and getpid() */
    }
    n = stamp(line, sizeof(line));
    r = snprintf(line + n, sizeof(line) - n, " %s %s %.200s %d %lldus pid=%d",
                 request_id, method, path, status, (long long) usec, (int) getpid());
    if (r > 0) {
        n += (size_t) r;
    }
    write_line(access_fd, line, n, sizeof(line));
}
