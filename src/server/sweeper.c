#include "server/sweeper.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/log.h"
#include "domain/payments.h"
#include "server/child.h"
#include "store/db.h"
#include "store/pg.h"
#include "store/redis.h"

/* QUIT and HUP end the loop after the sweep in hand (a graceful stop or a
 * reload's retirement); TERM and INT end the process at once, which the
 * design allows anywhere (payments.h). The pause between sweeps is slept
 * in short steps so that a stop is seen within 100 ms. The signals, the
 * slot and the connections are server/child.c's, as for every child. */
void
jt_sweeper_run(const jt_conf *c, int slot)
{
    jt_child_res res;
    jt_pg pg;
    jt_pay_env env;

    jt_child_setup(slot, "PAYS");
    jt_child_open(&res, c);
    if (jt_pg_init(&pg, c) != 0) {
        _exit(2);
    }
    pg.in_flight_limit = 0;   /* the sweeper holds no worker: not the bulkhead's to limit */
    env.conf = c;
    env.db = &res.db;
    env.redis = &res.redis;
    env.pg = &pg;
    env.arena = &res.arena;

    while (!jt_child_quitting()) {
        int64_t next = jt_clock_mono_ms() + c->pg_sweep_interval_ms, left;
        int moved;

        jt_arena_reset(&res.arena);
        if (jt_db_ready(&res.db) == JT_DB_OK) {
            (void) jt_redis_ready(&res.redis);   /* the locks are an optimisation: on without Redis */
            moved = payments_sweep(&env);
            if (moved > 0) {
                jt_log_info("sweeper: %d card orders or refunds settled", moved);
            }
        }
        while (!jt_child_quitting() && (left = next - jt_clock_mono_ms()) > 0) {
            jt_clock_sleep_ms(left < 100 ? left : 100);
        }
    }
    jt_pg_close(&pg);
    jt_child_close(&res);
}
