#include "server/relay.h"

#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "domain/events.h"
#include "server/child.h"
#include "server/worker.h"
#include "store/db.h"
#include "store/redis.h"

#define PURGE_EVERY_MS 60000

void
jt_relay_run(const jt_conf *c, int slot)
{
    int64_t next_purge = jt_clock_mono_ms() + PURGE_EVERY_MS;
    jt_child_res res;

    jt_child_setup(slot, "RELAY");
    jt_child_open(&res, c);

    while (!jt_child_quitting()) {
        int n = -1;

        jt_arena_reset(&res.arena);
        if (jt_redis_ready(&res.redis) == 0 && jt_db_ready(&res.db) == JT_DB_OK) {
            n = events_publish(c, &res.db, &res.redis, &res.arena);
        }
        if (jt_clock_mono_ms() >= next_purge) {
            int64_t gone = events_purge(c, &res.db, &res.arena);
            if (gone > 0) {
                jt_log_info("relay: purged %lld published events older than %lld s", (long long) gone,
                            (long long) c->ev_retention);
            }
            next_purge = jt_clock_mono_ms() + PURGE_EVERY_MS;
        }
        /* a full batch: more are waiting, go on at once */
        if (n < c->ev_batch) {
            jt_clock_sleep_ms(c->ev_relay_interval_ms);
        }
    }
    jt_child_close(&res);
}
