#include "server/notifier.h"

#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "domain/events.h"
#include "domain/notifications.h"
#include "server/child.h"
#include "server/stream.h"
#include "server/worker.h"
#include "store/db.h"
#include "store/redis.h"

#define BLOCK_MS 500
#define LOST_EVERY_MS 1000

void
jt_notifier_run(const jt_conf *c, int slot)
{
    static jt_stream_batch batch;
    int64_t next_lost = 0;
    jt_stream_reader reader;
    jt_child_res res;
    jt_conf rc;

    jt_child_setup(slot, "NOTIFY");
    jt_child_conf(&rc, c, BLOCK_MS);
    jt_stream_init(&reader, JT_EVENT_GROUP_NOTIFY, slot);
    jt_child_open(&res, &rc);

    while (!jt_child_quitting()) {
        int64_t created;

        jt_arena_reset(&res.arena);
        if (jt_redis_ready(&res.redis) != 0
            || jt_stream_read(&reader, &rc, &res.redis, &res.arena, BLOCK_MS, (int) rc.ev_batch, &batch) != 0) {
            jt_clock_sleep_ms(200);
        } else if (batch.n > 0) {
            if (notifications_record(&rc, &res.db, &res.arena, batch.ids, batch.n, batch.copies, &created) == JT_TX_OK) {
                jt_stream_ack(&reader, &res.redis, &res.arena, &batch);
            } else {
                /* unacknowledged: reclaimed after claim_idle_ms */
                jt_clock_sleep_ms(200);
            }
            /* less than a batch: let the next one gather (one commit for many) */
            if (batch.n < rc.ev_batch) {
                jt_clock_sleep_ms(rc.ev_linger_ms);
            }
        }
        if (jt_clock_mono_ms() >= next_lost) {
            int64_t ids[JT_STREAM_BATCH_MAX];
            jt_event_sweep sw;
            int n;

            notifications_lost_sweep(&sw);
            n = events_lost(&rc, &res.db, &res.arena, &sw, ids, (int) rc.ev_batch);
            if (n == 0 || (n > 0 && notifications_record(&rc, &res.db, &res.arena, ids, n, NULL, &created) == JT_TX_OK)) {
                if (n > 0) {
                    jt_log_warn("notifier: %d events Redis lost were taken from MariaDB", n);
                }
                events_lost_done(&rc, &res.db, &res.arena, &sw);
            }
            next_lost = jt_clock_mono_ms() + LOST_EVERY_MS;
        }
    }
    jt_child_close(&res);
}
