#include "server/consumer.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "domain/bids.h"
#include "server/child.h"
#include "server/worker.h"
#include "store/db.h"
#include "store/redis.h"

/* Applies every entry of an XREADGROUP / XAUTOCLAIM entry list; acks the
 * ones that are settled. */
static void
handle_entries(const jt_conf *c, jt_db *db, jt_redis *r, jt_arena *a, redisReply *entries)
{
    size_t i;

    if (entries == NULL || entries->type != REDIS_REPLY_ARRAY) {
        return;
    }
    for (i = 0; i < entries->elements && !jt_child_quitting(); i++) {
        redisReply *e = entries->element[i], *fields;
        const char *uuid = NULL;
        size_t k;

        if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements != 2) {
            continue;   /* an entry deleted meanwhile: nothing to do */
        }
        fields = e->element[1];
        if (fields == NULL || fields->type != REDIS_REPLY_ARRAY) {
            continue;
        }
        for (k = 0; k + 1 < fields->elements; k += 2) {
            if (!strcmp(fields->element[k]->str, "receipt")) {
                uuid = fields->element[k + 1]->str;
            }
        }
        if (uuid == NULL || bids_apply_queued(c, db, r, a, uuid) == JT_BID_SETTLED) {
            (void) jt_redis_cmd(r, a, "XACK " JT_BID_STREAM " " JT_BID_GROUP " %s", e->element[0]->str);
        }
    }
}

void
jt_consumer_run(const jt_conf *c, int slot)
{
    jt_child_res res;
    jt_conf rc;
    char name[32];
    int64_t next_claim = 0, next_sweep = 0;

    jt_child_setup(slot, "BIDS");
    /* XREADGROUP blocks up to 500 ms: the command timeout must exceed it */
    jt_child_conf(&rc, c, 500);
    snprintf(name, sizeof(name), "consumer-%d", slot);
    jt_child_open(&res, &rc);

    while (!jt_child_quitting()) {
        redisReply *rep;
        int64_t now = jt_clock_mono_ms();

        jt_arena_reset(&res.arena);
        if (jt_redis_ready(&res.redis) != 0) {
            jt_clock_sleep_ms(200);
        } else {
            rep = jt_redis_cmd(&res.redis, &res.arena, "XGROUP CREATE " JT_BID_STREAM " " JT_BID_GROUP " 0 MKSTREAM");
            (void) rep;   /* BUSYGROUP once it exists */
            rep = jt_redis_cmd(&res.redis, &res.arena, "XREADGROUP GROUP " JT_BID_GROUP " %s COUNT 16 BLOCK 500 STREAMS "
                               JT_BID_STREAM " >", name);
            if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 1
                && rep->element[0]->type == REDIS_REPLY_ARRAY && rep->element[0]->elements == 2) {
                handle_entries(&rc, &res.db, &res.redis, &res.arena, rep->element[0]->element[1]);
            }
            if (now >= next_claim) {
                /* entries another consumer took and never acknowledged */
                rep = jt_redis_cmd(&res.redis, &res.arena, "XAUTOCLAIM " JT_BID_STREAM " " JT_BID_GROUP " %s %lld 0-0 COUNT 16",
                                   name, (long long) rc.auction_claim_idle_ms);
                if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2) {
                    handle_entries(&rc, &res.db, &res.redis, &res.arena, rep->element[1]);
                }
                next_claim = now + (rc.auction_claim_idle_ms / 4 > 100 ? rc.auction_claim_idle_ms / 4 : 100);
            }
        }
        if (now >= next_sweep) {
            const char *uuids[32];
            int n = bids_stale_pending(&rc, &res.db, &res.arena, uuids, 32), i;
            for (i = 0; i < n && !jt_child_quitting(); i++) {
                (void) bids_apply_queued(&rc, &res.db, &res.redis, &res.arena, uuids[i]);
            }
            next_sweep = now + 1000;
        }
    }
    jt_child_close(&res);
}
