#include "server/master.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "core/breaker.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/pii.h"
#include "server/consumer.h"
#include "server/hooks.h"
#include "server/listen.h"
#include "server/notifier.h"
#include "server/relay.h"
#include "server/scheduler.h"
#include "server/sweeper.h"
#include "core/scoreboard.h"
#include "server/worker.h"
#include "store/authcache.h"
#include "store/pg.h"

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#else
#define sd_notify(u, s) ((void) 0)
#define sd_notifyf(u, ...) ((void) 0)
#endif

#define MAX_CHILDREN 660     /* two generations of the largest pool and consumers, plus room */
#define AUTH_CACHE_SLOTS 16384   /* tokens a host keeps (store/authcache.h), about 1.4 MB */

typedef struct {
    pid_t    pid;
    int      slot;
    uint32_t generation;
    int      quitting;       /* SIGQUIT sent: do not replace */
    int      killed;         /* SIGKILL sent by us (request_timeout) */
    int      kind;           /* JT_KIND_* */
} child;

static volatile sig_atomic_t sig_term, sig_quit, sig_hup, sig_usr1, sig_chld;

static jt_conf      conf;           /* current generation's settings */
static const char  *conf_path;
static child        children[MAX_CHILDREN];
static int          nchildren;
static uint32_t     generation;
static int          listen_fd = -1;
static char         socket_path[JT_PATH_MAX];

/* crash-loop guard */
static int64_t      crash_times[64];
static int          crash_count;
static int64_t      spawn_not_before_ms;
static int64_t      backoff_ms;

static void on_signal(int sig)
{
    switch (sig) {
    case SIGTERM: case SIGINT: sig_term = 1; break;
    case SIGQUIT: sig_quit = 1; break;
    case SIGHUP:  sig_hup = 1; break;
    case SIGUSR1: sig_usr1 = 1; break;
    case SIGCHLD: sig_chld = 1; break;
    }
}

static void
setup_signals(sigset_t *wait_mask)
{
    struct sigaction sa;
    sigset_t block;
    int sigs[] = { SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGCHLD };
    size_t i;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigemptyset(&block);
    for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        sigaction(sigs[i], &sa, NULL);
        sigaddset(&block, sigs[i]);
    }
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigprocmask(SIG_BLOCK, &block, wait_mask);
    sigdelset(wait_mask, SIGTERM);
    sigdelset(wait_mask, SIGINT);
    sigdelset(wait_mask, SIGQUIT);
    sigdelset(wait_mask, SIGHUP);
    sigdelset(wait_mask, SIGUSR1);
    sigdelset(wait_mask, SIGCHLD);
}

/* The process names ps shows (at most 15 characters). */
static const char *const kind_names[JT_KIND__COUNT] = {
    [JT_KIND_WORKER] = "jangteod-worker",   [JT_KIND_CONSUMER] = "jangteod-bids",
    [JT_KIND_SCHEDULER] = "jangteod-sched", [JT_KIND_RELAY] = "jangteod-relay",
    [JT_KIND_NOTIFIER] = "jangteod-notify", [JT_KIND_HOOKS] = "jangteod-hooks",
    [JT_KIND_SWEEPER] = "jangteod-pays",
};

static int
spawn(int kind)
{
    jt_scoreboard *sb = jt_scoreboard_get();
    jt_worker_args args;
    int slot;
    pid_t pid;

    if (nchildren >= MAX_CHILDREN) {
        return -1;
    }
    slot = jt_scoreboard_alloc_slot(sb);
    if (slot < 0) {
        jt_log_error("master: scoreboard full, cannot start a worker");
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        jt_log_error("master: fork: %s", strerror(errno));
        sb->slots[slot].state = JT_SLOT_FREE;
        return -1;
    }
    if (pid == 0) {
        /* die with the master rather than serve on as an orphan */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == 1) {
            _exit(0);
        }
        sb->slots[slot].pid = getpid();
        sb->slots[slot].generation = generation;
        sb->slots[slot].kind = kind;
        /* ps and tests tell the kinds apart by name */
        prctl(PR_SET_NAME, kind_names[kind], 0, 0, 0);
        if (kind != JT_KIND_WORKER) {
            close(listen_fd);
        }
        switch (kind) {
        case JT_KIND_CONSUMER:  jt_consumer_run(&conf, slot);
        case JT_KIND_SCHEDULER: jt_scheduler_run(&conf, slot);
        case JT_KIND_RELAY:     jt_relay_run(&conf, slot);
        case JT_KIND_NOTIFIER:  jt_notifier_run(&conf, slot);
        case JT_KIND_HOOKS:     jt_hooks_run(&conf, slot);
        case JT_KIND_SWEEPER:   jt_sweeper_run(&conf, slot);
        default:                break;
        }
        args.conf = &conf;
        args.listen_fd = listen_fd;
        args.slot = slot;
        args.generation = generation;
        jt_worker_run(&args);
    }
    sb->slots[slot].pid = pid;
    sb->slots[slot].generation = generation;
    sb->slots[slot].kind = kind;
    children[nchildren].kind = kind;
    children[nchildren].pid = pid;
    children[nchildren].slot = slot;
    children[nchildren].generation = generation;
    children[nchildren].quitting = 0;
    children[nchildren].killed = 0;
    nchildren++;
    if (kind == JT_KIND_WORKER) {
        JT_SB_INC(sb->worker_starts);
    }
    return 0;
}

static int
count_current(int kind)
{
    int i, n = 0;
    for (i = 0; i < nchildren; i++) {
        if (children[i].kind == kind && children[i].generation == generation && !children[i].quitting) {
            n++;
        }
    }
    return n;
}

/* Too many abnormal exits in crash_guard_interval: stop forking for a while
 * (doubling up to 30 s) instead of fork-bombing a broken dependency. */
static void
note_abnormal_exit(void)
{
    int64_t t = jt_clock_mono_ms(), window = conf.crash_guard_interval * 1000;
    int i, recent = 0, cap = (int) (sizeof(crash_times) / sizeof(crash_times[0]));

    crash_times[crash_count++ % cap] = t;
    for (i = 0; i < cap && i < crash_count; i++) {
        if (t - crash_times[i] <= window) {
            recent++;
        }
    }
    if (recent >= conf.crash_guard_exits || recent >= cap) {
        backoff_ms = backoff_ms ? backoff_ms * 2 : 1000;
        if (backoff_ms > 30000) {
            backoff_ms = 30000;
        }
        spawn_not_before_ms = t + backoff_ms;
        jt_log_error("master: CRASH LOOP: %d abnormal worker exits in %lld s; "
                     "not starting workers for %lld ms",
                     recent, (long long) conf.crash_guard_interval, (long long) backoff_ms);
    }
}

static void
reap(void)
{
    jt_scoreboard *sb = jt_scoreboard_get();
    int status, i;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (i = 0; i < nchildren; i++) {
            if (children[i].pid == pid) {
                break;
            }
        }
        if (i == nchildren) {
            continue;
        }
        if (sb->slots[children[i].slot].state == JT_SLOT_BUSY) {
            /* died mid-request: it will never leave the busy count itself */
            __atomic_sub_fetch(&sb->busy, 1, __ATOMIC_RELAXED);
        }
        memset(&sb->slots[children[i].slot], 0, sizeof(jt_slot));
        /* a worker killed inside a gateway call gives its place back */
        jt_breaker_forget(jt_breaker_get(), (int32_t) pid);
        if (WIFSIGNALED(status) && !children[i].killed
            && !(WTERMSIG(status) == SIGTERM && (sig_term || children[i].quitting))) {
            jt_log_error("master: worker %d killed by signal %d", (int) pid, WTERMSIG(status));
            JT_SB_INC(sb->abnormal_exits);
            note_abnormal_exit();
        } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
            jt_log_error("master: worker %d exited with status %d", (int) pid, WEXITSTATUS(status));
            JT_SB_INC(sb->abnormal_exits);
            note_abnormal_exit();
        }
        children[i] = children[--nchildren];
    }
}

static void
signal_all(int sig, int only_old)
{
    int i;
    for (i = 0; i < nchildren; i++) {
        if (only_old && children[i].generation == generation) {
            continue;
        }
        if (sig == SIGQUIT) {
            children[i].quitting = 1;
        }
        kill(children[i].pid, sig);
    }
}

/* request_timeout: kill the worker, log what it was doing. */
static void
check_timeouts(void)
{
    jt_scoreboard *sb = jt_scoreboard_get();
    int64_t limit = conf.request_timeout * 1000000, t = jt_clock_mono_us();
    int i;

    if (limit <= 0) {
        return;
    }
    for (i = 0; i < nchildren; i++) {
        jt_slot *s = &sb->slots[children[i].slot];
        int64_t start = __atomic_load_n(&s->req_start_us, __ATOMIC_ACQUIRE);
        if (children[i].killed || start == 0 || s->state != JT_SLOT_BUSY || t - start < limit) {
            continue;
        }
        jt_log_error("master: request_timeout (%lld s): killing worker %d serving \"%s %.200s\" req=%s",
                     (long long) conf.request_timeout, (int) children[i].pid, s->method, s->uri,
                     s->request_id[0] ? s->request_id : "-");
        children[i].killed = 1;
        JT_SB_INC(sb->timeout_kills);
        kill(children[i].pid, SIGKILL);
    }
}

/* Brings the current generation up to the configured number of each kind:
 * workers, bid consumers, the scheduler, the relay, the event consumers
 * and the payment sweepers (when a gateway is configured). */
static void
spawn_missing(void)
{
    int64_t want[JT_KIND__COUNT];
    int kind;

    want[JT_KIND_WORKER] = conf.workers;
    want[JT_KIND_CONSUMER] = conf.auction_async ? conf.auction_consumers : 0;
    want[JT_KIND_SCHEDULER] = conf.lc_scheduler ? 1 : 0;
    want[JT_KIND_RELAY] = conf.ev_relay ? 1 : 0;
    want[JT_KIND_NOTIFIER] = conf.ev_consumers;
    want[JT_KIND_HOOKS] = conf.ev_webhook_consumers;
    want[JT_KIND_SWEEPER] = conf.pg_url[0] != '\0' ? conf.pg_sweepers : 0;
    for (kind = 0; kind < JT_KIND__COUNT; kind++) {
        while (count_current(kind) < want[kind] && spawn(kind) == 0) {
        }
    }
}

static void
reload(void)
{
    jt_conf next;
    char err[256];

    sd_notify(0, "RELOADING=1");
    if (jt_conf_load(&next, conf_path, err, sizeof(err)) != 0) {
        jt_log_error("master: reload: %s; keeping the running configuration", err);
        sd_notify(0, "READY=1");
        return;
    }
    if (strcmp(next.listen, conf.listen) != 0) {
        jt_log_warn("master: reload: a new 'listen' takes effect only on restart");
        memcpy(next.listen, conf.listen, sizeof(next.listen));
    }
    if (next.workers * 2 + 4 > MAX_CHILDREN) {
        next.workers = (MAX_CHILDREN - 4) / 2;
    }
    if (jt_pii_load(next.pii_key_file, err, sizeof(err)) != 0) {
        jt_log_error("master: reload: %s; keeping the running configuration", err);
        (void) jt_pii_load(conf.pii_key_file, err, sizeof(err));
        sd_notify(0, "READY=1");
        return;
    }
    conf = next;
    if (jt_pg_init_shared(&conf) != 0) {
        jt_log_error("master: reload: cannot set up the payment gateway client");
    }
    if (jt_log_open(conf.error_log, conf.access_log, conf.log_level) != 0) {
        jt_log_error("master: reload: cannot open log files");
    }
    jt_scoreboard_get()->configured_workers = (int) conf.workers;
    jt_clock_use_test_offset(conf.enable_test_routes);
    /* New generation first, then the old one finishes what it holds and
     * leaves: the listening socket is shared, so no request is dropped. */
    generation++;
    spawn_not_before_ms = 0;
    spawn_missing();
    signal_all(SIGQUIT, 1);
    jt_log_info("master: reloaded: generation %u, %lld workers", generation, (long long) conf.workers);
    sd_notify(0, "READY=1");
}

static void
write_pid_file(void)
{
    FILE *f;

    if (conf.pid_file[0] == '\0') {
        return;
    }
    f = fopen(conf.pid_file, "we");
    if (f == NULL) {
        jt_log_warn("master: cannot write %s: %s", conf.pid_file, strerror(errno));
        return;
    }
    fprintf(f, "%d\n", (int) getpid());
    fclose(f);
}

int
jt_master_run(const char *path)
{
    char err[256];
    sigset_t wait_mask;
    jt_scoreboard *sb;
    int stopping = 0;          /* 1 graceful, 2 fast */
    int64_t stop_deadline = 0, last_status = 0;

    conf_path = path;
    if (jt_conf_load(&conf, path, err, sizeof(err)) != 0) {
        fprintf(stderr, "jangteod: %s\n", err);
        return 1;
    }
    if (jt_log_open(conf.error_log, conf.access_log, conf.log_level) != 0) {
        fprintf(stderr, "jangteod: cannot open log files %s / %s\n", conf.error_log, conf.access_log);
        return 1;
    }
    listen_fd = jt_listen_open(&conf, socket_path, sizeof(socket_path), err, sizeof(err));
    if (listen_fd < 0) {
        jt_log_error("master: %s", err);
        fprintf(stderr, "jangteod: %s\n", err);
        return 1;
    }
    /* personal data is never stored in the clear: no key, no start */
    if (jt_pii_load(conf.pii_key_file, err, sizeof(err)) != 0) {
        jt_log_error("master: %s", err);
        fprintf(stderr, "jangteod: %s\n", err);
        return 1;
    }
    sb = jt_scoreboard_create(MAX_CHILDREN);
    if (sb == NULL || jt_metrics_init_shared() != 0 || jt_clock_init_shared() != 0
        || jt_breaker_init_shared(jt_clock_mono_ms()) != 0 || jt_pg_init_shared(&conf) != 0
        || jt_authcache_init_shared(AUTH_CACHE_SLOTS) != 0) {
        jt_log_error("master: cannot create the scoreboard");
        return 1;
    }
    sb->configured_workers = (int) conf.workers;
    jt_clock_use_test_offset(conf.enable_test_routes);
    setup_signals(&wait_mask);
    write_pid_file();
    jt_log_info("master: started, listen=%s workers=%lld", conf.listen, (long long) conf.workers);

    spawn_missing();
    sd_notify(0, "READY=1");

    for (;;) {
        struct timespec tick = { 0, 200 * 1000000 };
        int64_t t;

        ppoll(NULL, 0, &tick, &wait_mask);
        t = jt_clock_mono_ms();

        if (sig_chld) {
            sig_chld = 0;
            reap();
        }
        if (sig_term && stopping != 2) {
            stopping = 2;
            jt_log_info("master: fast stop");
            sd_notify(0, "STOPPING=1");
            signal_all(SIGTERM, 0);
            stop_deadline = t + 5000;
        }
        if (sig_quit && !stopping) {
            stopping = 1;
            jt_log_info("master: graceful stop");
            sd_notify(0, "STOPPING=1");
            signal_all(SIGQUIT, 0);
            stop_deadline = t + conf.graceful_timeout * 1000;
        }
        if (sig_hup) {
            sig_hup = 0;
            if (!stopping) {
                reload();
            }
        }
        if (sig_usr1) {
            sig_usr1 = 0;
            jt_log_reopen();
            signal_all(SIGUSR1, 0);
        }
        check_timeouts();

        if (stopping) {
            if (nchildren == 0) {
                break;
            }
            if (t >= stop_deadline) {
                jt_log_warn("master: %d workers still running at the stop deadline: killing", nchildren);
                signal_all(SIGKILL, 0);
                stop_deadline = t + 60000;
            }
            continue;
        }
        if (t >= spawn_not_before_ms) {
            spawn_missing();
        }
        if (t - last_status >= 5000) {
            int active, idle, total;
            last_status = t;
            jt_scoreboard_count(sb, &active, &idle, &total);
            sd_notifyf(0, "STATUS=active %d, idle %d, accepted %llu", active, idle,
                       (unsigned long long) sb->accepted);
        }
    }

    if (socket_path[0]) {
        unlink(socket_path);
    }
    if (conf.pid_file[0]) {
        unlink(conf.pid_file);
    }
    jt_log_info("master: stopped");
    return 0;
}
