#include "server/scheduler.h"

#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "domain/lifecycle.h"
#include "server/child.h"
#include "server/worker.h"
#include "store/db.h"
#include "store/redis.h"

void
jt_scheduler_run(const jt_conf *c, int slot)
{
    int64_t next = 0;
    jt_child_res res;

    jt_child_setup(slot, "SWEEP");
    jt_child_open(&res, c);

    while (!jt_child_quitting()) {
        int64_t now = jt_clock_mono_ms();
        jt_sweep_report rep;

        if (now < next) {
            /* short naps: a graceful stop is noticed within 200 ms */
            jt_clock_sleep_ms(next - now < 200 ? next - now : 200);
            continue;
        }
        jt_arena_reset(&res.arena);
        if (lifecycle_sweep(c, &res.db, &res.redis, &res.arena, &rep) == JT_OK) {
            JT_METRIC_INC(sweeps);
            if (rep.moved || rep.failed || rep.out_of_time) {
                jt_log_info("scheduler: sweep moved %lld orders (%lld skipped, %lld to retry%s)",
                            (long long) rep.moved, (long long) rep.skipped, (long long) rep.failed,
                            rep.out_of_time ? ", deadline reached" : "");
            }
        } else {
            jt_log_warn("scheduler: MariaDB unavailable; sweeping again in %lld s", (long long) c->lc_sweep_interval);
        }
        next = jt_clock_mono_ms() + c->lc_sweep_interval * 1000;
    }
    jt_child_close(&res);
}
