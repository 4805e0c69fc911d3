/* A worker: accept a FastCGI request, serve it, reset the arena, repeat —
 * until told to quit, recycled by max_requests, or killed. */
#ifndef JT_WORKER_H
#define JT_WORKER_H

#include <stdint.h>

#include "core/config.h"

typedef struct {
    const jt_conf *conf;
    int            listen_fd;
    int            slot;
    uint32_t       generation;
} jt_worker_args;

void jt_worker_run(const jt_worker_args *a) __attribute__((noreturn));

/* How a master's child (worker, bid consumer) ends after a clean shutdown.
 * _exit, so nothing inherited from the master is flushed twice; in a
 * sanitizer build it first runs LeakSanitizer's check, which _exit would
 * skip, and exits 23 with a report on stderr if the child leaked. */
void jt_child_exit(int status) __attribute__((noreturn));

#endif
