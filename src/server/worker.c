#include "server/worker.h"

#include <errno.h>
#include <fcgiapp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/log.h"
#include "http/serve.h"
#include "routes.h"
#include "core/scoreboard.h"
#include "store/db.h"
#include "store/pg.h"
#include "store/redis.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

static volatile sig_atomic_t quit_requested;
static volatile sig_atomic_t reopen_requested;

static void
on_quit(int sig)
{
    (void) sig;
    quit_requested = 1;
}

static void
on_reopen(int sig)
{
    (void) sig;
    reopen_requested = 1;
}

/* Signals are blocked at all times except inside ppoll(): a graceful stop
 * can then never interrupt a request half-way (no EINTR inside libfcgi's
 * reads and writes); it is noticed between requests. SIGTERM keeps its
 * default action: fast stop means now. */
static void
setup_signals(sigset_t *wait_mask)
{
    struct sigaction sa;
    sigset_t block;

    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_quit;
    sigaction(SIGQUIT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = on_reopen;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);

    sigemptyset(&block);
    sigaddset(&block, SIGQUIT);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_SETMASK, &block, NULL);
    sigemptyset(wait_mask);
}

static void
set_io_timeouts(int fd, int seconds)
{
    struct timeval tv = { seconds, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void
slot_begin(jt_scoreboard *sb, jt_slot *s, FCGX_Request *f)
{
    const char *m = FCGX_GetParam("REQUEST_METHOD", f->envp);
    const char *u = FCGX_GetParam("REQUEST_URI", f->envp);
    int64_t busy;

    snprintf(s->method, sizeof(s->method), "%s", m ? m : "-");
    /* the path only: the scoreboard feeds /status and the master's
     * request_timeout log line, and a query string may carry anything */
    snprintf(s->uri, sizeof(s->uri), "%.*s", u ? (int) strcspn(u, "?") : 1, u ? u : "-");
    s->request_id[0] = '\0';
    __atomic_store_n(&s->req_start_us, jt_clock_mono_us(), __ATOMIC_RELEASE);
    __atomic_store_n(&s->state, JT_SLOT_BUSY, __ATOMIC_RELEASE);
    JT_SB_INC(sb->accepted);

    /* O(1) on the hot path: a shared busy counter, not a scan of the slots */
    busy = __atomic_add_fetch(&sb->busy, 1, __ATOMIC_RELAXED);
    if ((uint64_t) busy > __atomic_load_n(&sb->max_active, __ATOMIC_RELAXED)) {
        __atomic_store_n(&sb->max_active, (uint64_t) busy, __ATOMIC_RELAXED);
    }
    if (busy >= sb->configured_workers) {
        JT_SB_INC(sb->max_children_reached);
    }
}

static void
slot_end(jt_scoreboard *sb, jt_slot *s, const jt_conf *c)
{
    int64_t d = jt_clock_mono_us() - s->req_start_us;

    s->last_duration_us = d;
    s->requests++;
    if (c->slow_request > 0 && d >= c->slow_request * 1000000) {
        JT_SB_INC(sb->slow_requests);
    }
    __atomic_store_n(&s->req_start_us, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&s->state, JT_SLOT_IDLE, __ATOMIC_RELEASE);
    __atomic_sub_fetch(&sb->busy, 1, __ATOMIC_RELAXED);
}

void
jt_worker_run(const jt_worker_args *a)
{
    const jt_conf *c = a->conf;
    jt_scoreboard *sb = jt_scoreboard_get();
    jt_slot *slot = &sb->slots[a->slot];

    jt_scoreboard_set_self(slot);
    sigset_t wait_mask;
    FCGX_Request freq;
    jt_arena arena;
    jt_db db;
    jt_redis redis;
    jt_pg pg;
    jt_http_ctx hctx;
    struct pollfd pfd;
    uint64_t served = 0;
    int io_timeout;

    setup_signals(&wait_mask);
    /* The allow-list is libfcgi's: FCGX_Init reads FCGI_WEB_SERVER_ADDRS,
     * and on every accept() of an IPv4 peer not in it, closes the
     * connection before reading a byte and accepts again. An absent or
     * empty list allows everyone, so it is always set (config.c refuses an
     * empty fastcgi_allow); unix-socket peers are not IPv4 and not checked. */
    if (setenv("FCGI_WEB_SERVER_ADDRS", c->fastcgi_allow, 1) != 0) {
        jt_log_error("worker: setenv: %s", strerror(errno));
        _exit(2);
    }
    /* libfcgi installs its own SIGUSR1 handler only where none is set, so
     * ours (above) must come first. */
    if (FCGX_Init() != 0 || FCGX_InitRequest(&freq, a->listen_fd, 0) != 0
        || jt_arena_init(&arena, 64 * 1024) != 0) {
        jt_log_error("worker: initialisation failed");
        _exit(2);
    }
    /* ...but it also claims SIGTERM where it finds the default, turning a
     * fast stop into a flag nobody reads: give TERM its default back. */
    {
        struct sigaction dfl;
        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        sigaction(SIGTERM, &dfl, NULL);
    }
    jt_db_init(&db, c, c->db_user, c->db_password);
    jt_redis_init(&redis, c);
    if (jt_pg_init(&pg, c) != 0) {
        jt_log_error("worker: initialisation failed");
        _exit(2);
    }
    (void) jt_db_ready(&db);
    (void) jt_redis_ready(&redis);

    memset(&hctx, 0, sizeof(hctx));
    hctx.conf = c;
    hctx.db = &db;
    hctx.redis = &redis;
    hctx.pg = &pg;
    hctx.arena = &arena;
    hctx.routes = jt_routes;
    hctx.nroutes = jt_nroutes;

    io_timeout = c->request_timeout > 0 ? (int) c->request_timeout : 60;
    pfd.fd = a->listen_fd;
    pfd.events = POLLIN;

    slot->started_at = jt_clock_wall_ms() / 1000;
    __atomic_store_n(&slot->state, JT_SLOT_IDLE, __ATOMIC_RELEASE);

    for (;;) {
        int rc;

        if (reopen_requested) {
            reopen_requested = 0;
            jt_log_reopen();
        }
        if (quit_requested) {
            break;
        }
        if (c->max_requests > 0 && served >= (uint64_t) c->max_requests) {
            JT_SB_INC(sb->recycles);
            break;
        }
        pfd.revents = 0;
        rc = ppoll(&pfd, 1, NULL, &wait_mask);
        if (rc < 0) {
            if (errno == EINTR) {
                continue;
            }
            jt_log_error("worker: ppoll: %s", strerror(errno));
            break;
        }
        rc = FCGX_Accept_r(&freq);
        if (rc < 0) {
            /* another worker won the race (EAGAIN) or the peer went away
             * before we read its request: nothing to answer */
            if (rc != -EAGAIN && rc != -EWOULDBLOCK && rc != -EINTR) {
                jt_log_debug("worker: accept failed: %d", rc);
            }
            continue;
        }
        /* A client that stops reading or writing must not pin us forever;
         * request_timeout in the master is the backstop. */
        set_io_timeouts(freq.ipcFd, io_timeout);

        slot_begin(sb, slot, &freq);
        db.fail_next = 0;
        jt_http_serve(&hctx, &freq, slot->request_id, sizeof(slot->request_id));
        FCGX_Finish_r(&freq);
        jt_http_after(&hctx);   /* the client has its answer; what it left */
        if (db.in_tx) {
            /* a bug: one request's transaction must never swallow the
             * statements of the next */
            jt_log_error("worker: a request left its transaction open; rolled back");
            jt_db_rollback(&db);
        }
        jt_arena_reset(&arena);
        served++;
        slot_end(sb, slot, c);
    }

    __atomic_store_n(&slot->state, JT_SLOT_EXITING, __ATOMIC_RELEASE);
    jt_db_close(&db);
    jt_redis_close(&redis);
    jt_pg_close(&pg);
    jt_arena_destroy(&arena);
    jt_child_exit(0);
}

void
jt_child_exit(int status)
{
#if defined(__SANITIZE_ADDRESS__)
    __lsan_do_leak_check();
#endif
    _exit(status);
}
