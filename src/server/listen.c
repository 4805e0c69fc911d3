#include "server/listen.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "config.h"
#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

static int
is_listening_socket(int fd)
{
    int v = 0;
    socklen_t len = sizeof(v);
    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v;
}

static int
bind_unix(const jt_conf *c, const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "socket path too long: %s", path);
        return -1;
    }
    /* remove a stale socket left by a crash, but never a regular file */
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "%s exists and is not a socket", path);
            return -1;
        }
        unlink(path);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path);
    if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
        snprintf(err, errlen, "bind %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (chmod(path, (mode_t) c->listen_mode) != 0) {
        snprintf(err, errlen, "chmod %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    if (listen(fd, (int) c->listen_backlog) != 0) {
        snprintf(err, errlen, "listen %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    return fd;
}

/* "A.B.C.D:PORT" into sa; 0, or -1 when it is not of that form. */
static int
parse_tcp(const char *s, struct sockaddr_in *sa)
{
    char host[INET_ADDRSTRLEN];
    const char *colon = strrchr(s, ':');
    char *end;
    long port;

    if (colon == NULL || (size_t) (colon - s) >= sizeof(host)) {
        return -1;
    }
    memcpy(host, s, (size_t) (colon - s));
    host[colon - s] = '\0';
    port = strtol(colon + 1, &end, 10);
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t) port);
    if (*end != '\0' || end == colon + 1 || port < 1 || port > 65535
        || inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
        return -1;
    }
    return 0;
}

/* IPv4 only, on purpose: libfcgi applies FCGI_WEB_SERVER_ADDRS (our
 * fastcgi_allow) to IPv4 peers alone, so an IPv6 listener would take any
 * peer. */
static int
bind_tcp(const jt_conf *c, const struct sockaddr_in *sa, char *err, size_t errlen)
{
    int fd, on = 1;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    /* a restarted master rebinds at once, past the old TIME_WAITs */
    (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (bind(fd, (const struct sockaddr *) sa, sizeof(*sa)) != 0) {
        snprintf(err, errlen, "bind %s: %s", c->listen, strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, (int) c->listen_backlog) != 0) {
        snprintf(err, errlen, "listen %s: %s", c->listen, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int
jt_listen_is_tcp(const jt_conf *c)
{
    struct sockaddr_in sa;

    return parse_tcp(c->listen, &sa) == 0;
}

int
jt_listen_open(const jt_conf *c, char *unlink_path, size_t plen, char *err, size_t errlen)
{
    int fd = -1, flags;

    unlink_path[0] = '\0';
    if (!strncmp(c->listen, "unix:", 5)) {
        fd = bind_unix(c, c->listen + 5, err, errlen);
        if (fd >= 0) {
            snprintf(unlink_path, plen, "%s", c->listen + 5);
        }
    } else if (!strncmp(c->listen, "fd:", 3)) {
        char *end;
        long n = strtol(c->listen + 3, &end, 10);
        if (*end != '\0' || n < 0 || n > 1024 || !is_listening_socket((int) n)) {
            snprintf(err, errlen, "listen = %s: not an inherited listening socket", c->listen);
            return -1;
        }
        fd = (int) n;
    } else if (!strcmp(c->listen, "systemd")) {
#ifdef HAVE_SYSTEMD
        int n = sd_listen_fds(1);
        if (n != 1) {
            snprintf(err, errlen, "listen = systemd: expected 1 socket from systemd, got %d", n);
            return -1;
        }
        fd = SD_LISTEN_FDS_START;
#else
        snprintf(err, errlen, "listen = systemd: built without libsystemd");
        return -1;
#endif
    } else {
        struct sockaddr_in sa;
        if (parse_tcp(c->listen, &sa) != 0) {
            snprintf(err, errlen, "listen = %s: expected unix:PATH, IPv4:PORT, fd:N or systemd", c->listen);
            return -1;
        }
        fd = bind_tcp(c, &sa, err, errlen);
    }
    if (fd < 0) {
        return -1;
    }
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
        snprintf(err, errlen, "fcntl: %s", strerror(errno));
        return -1;
    }
    return fd;
}
