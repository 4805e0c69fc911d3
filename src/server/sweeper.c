#include "server/sweeper.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/scoreboard.h"
#include "domain/payments.h"
#include "server/worker.h"
#include "store/db.h"
#include "store/pg.h"
#include "store/redis.h"

static volatile sig_atomic_t quit_requested;

static void
on_quit(int sig)
{
    (void) sig;
    quit_requested = 1;
}

/* QUIT and HUP end the loop after the sweep in hand (a graceful stop or a
 * reload's retirement); TERM and INT end the process at once, which the
 * design allows anywhere (payments.h). The pause between sweeps is slept
 * in short steps so that a stop is seen within 100 ms. */
void
jt_sweeper_run(const jt_conf *c, int slot)
{
    jt_scoreboard *sb = jt_scoreboard_get();
    jt_arena arena;
    jt_db db;
    jt_redis redis;
    jt_pg pg;
    jt_pay_env env;

    jt_child_signals(on_quit);

    if (jt_arena_init(&arena, 64 * 1024) != 0 || jt_pg_init(&pg, c) != 0) {
        _exit(2);
    }
    pg.in_flight_limit = 0;   /* the sweeper holds no worker: not the bulkhead's to limit */
    jt_db_init(&db, c, c->db_user, c->db_password);
    jt_redis_init(&redis, c);
    env.conf = c;
    env.db = &db;
    env.redis = &redis;
    env.pg = &pg;
    env.arena = &arena;
    sb->slots[slot].started_at = jt_clock_wall_ms() / 1000;
    snprintf(sb->slots[slot].method, sizeof(sb->slots[slot].method), "PAYS");
    __atomic_store_n(&sb->slots[slot].state, JT_SLOT_IDLE, __ATOMIC_RELEASE);

    while (!quit_requested) {
        int64_t next = jt_clock_mono_ms() + c->pg_sweep_interval_ms, left;
        int moved;

        jt_arena_reset(&arena);
        if (jt_db_ready(&db) == JT_DB_OK) {
            (void) jt_redis_ready(&redis);   /* the locks are an optimisation: on without Redis */
            moved = payments_sweep(&env);
            if (moved > 0) {
                jt_log_info("sweeper: %d card orders or refunds settled", moved);
            }
        }
        while (!quit_requested && (left = next - jt_clock_mono_ms()) > 0) {
            jt_clock_sleep_ms(left < 100 ? left : 100);
        }
    }
    jt_pg_close(&pg);
    jt_db_close(&db);
    jt_redis_close(&redis);
    jt_arena_destroy(&arena);
    jt_child_exit(0);
}
