/* Bids on auctions (bids.c): placed by a request, applied in it (sync) or
 * queued on the Redis Stream JT_BID_STREAM and applied by the consumers
 * (server/consumer.c) through bids_apply_queued. */
#ifndef JT_BIDS_H
#define JT_BIDS_H

#include <stdint.h>

#include "core/arena.h"
#include "core/config.h"
#include "http/request.h"

struct jt_db;
struct jt_redis;

#define JT_BID_STREAM "bids"
#define JT_BID_GROUP "bidders"

/* POST /api/v1/auctions/{id}/bids */
jt_err bids_place(jt_req *r);

typedef enum {
    JT_BID_SETTLED = 0,   /* PURCHASED or FAILED (now or before): acknowledge */
    JT_BID_PENDING        /* not now (database down, lock busy): keep it, retry */
} jt_bid_apply;

/* Applies one queued bid (by receipt uuid): PURCHASED or FAILED, exactly
 * once whatever happens around it. */
jt_bid_apply bids_apply_queued(const jt_conf *c, struct jt_db *db, struct jt_redis *redis, jt_arena *a,
                               const char *uuid);
/* PENDING receipts older than sweep_after_ms (their stream entry was lost):
 * their uuids, at most max. */
int bids_stale_pending(const jt_conf *c, struct jt_db *db, jt_arena *a, const char **uuids, int max);

/* The rows a bid or a refund writes: the auction's stock and both balances
 * (domain/lockkey.h), NULL when out of memory. */
const char **bid_lock_keys(jt_arena *a, int64_t auction, int64_t buyer, int64_t seller);

#endif
