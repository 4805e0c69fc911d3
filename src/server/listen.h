/* The listening socket: bound by the master (unix:PATH, or IPv4:PORT for
 * app hosts behind a remote nginx, where only the peers of fastcgi_allow
 * are served: libfcgi closes any other right after accept, before reading
 * a byte, see worker.c) or inherited
 * (fd:N as spawn-fcgi and systemd StandardInput=socket give it, or
 * `systemd` for sd_listen_fds). Always left non-blocking: workers wait in
 * ppoll() and a lost accept race is just EAGAIN. */
#ifndef JT_LISTEN_H
#define JT_LISTEN_H

#include <stddef.h>

#include "core/config.h"

/* Returns the fd or -1 with a reason in err. *unlink_path is set to the
 * socket path the master must remove at exit ("" if inherited). */
int jt_listen_open(const jt_conf *c, char *unlink_path, size_t plen, char *err, size_t errlen);

/* Whether listen names a TCP address (IPv4:PORT). */
int jt_listen_is_tcp(const jt_conf *c);

#endif
