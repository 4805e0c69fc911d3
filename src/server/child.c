#include "server/child.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/scoreboard.h"
#include "server/worker.h"

static volatile sig_atomic_t quit_requested;

static void
on_quit(int sig)
{
    (void) sig;
    quit_requested = 1;
}

void
jt_child_setup(int slot, const char *label)
{
    jt_scoreboard *sb = jt_scoreboard_get();
    struct sigaction sa;
    sigset_t none;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_quit;
    sigaction(SIGQUIT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    sb->slots[slot].started_at = jt_clock_wall_ms() / 1000;
    snprintf(sb->slots[slot].method, sizeof(sb->slots[slot].method), "%s", label);
    __atomic_store_n(&sb->slots[slot].state, JT_SLOT_IDLE, __ATOMIC_RELEASE);
}

int
jt_child_quitting(void)
{
    return quit_requested != 0;
}

void
jt_child_conf(jt_conf *out, const jt_conf *c, int64_t block_ms)
{
    *out = *c;
    if (out->redis_timeout_ms < block_ms + 1500) {
        out->redis_timeout_ms = block_ms + 1500;
    }
}

void
jt_child_open(jt_child_res *res, const jt_conf *c)
{
    if (jt_arena_init(&res->arena, 64 * 1024) != 0) {
        _exit(2);
    }
    jt_db_init(&res->db, c, c->db_user, c->db_password);
    jt_redis_init(&res->redis, c);
}

void
jt_child_close(jt_child_res *res)
{
    jt_db_close(&res->db);
    jt_redis_close(&res->redis);
    jt_arena_destroy(&res->arena);
    jt_child_exit(0);
}
