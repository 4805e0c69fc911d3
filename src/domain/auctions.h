#ifndef JT_AUCTIONS_H
#define JT_AUCTIONS_H

#include "core/arena.h"
#include "core/config.h"
#include "http/request.h"

struct jt_db;
struct jt_redis;

#define JT_BID_STREAM "bids"
#define JT_BID_GROUP "bidders"

#include <json-c/json.h>

jt_err auctions_validate_create(jt_req *r, json_object *o);
jt_err auctions_create(jt_req *r);
jt_err auctions_delete(jt_req *r);
jt_err auctions_list(jt_req *r);
jt_err auctions_get(jt_req *r);
jt_err auctions_bid(jt_req *r);
jt_err receipts_get(jt_req *r);
jt_err receipts_list(jt_req *r);
jt_err receipts_refund(jt_req *r);

/* Applies one queued bid (by receipt uuid): PURCHASED or FAILED, exactly
 * once whatever happens around it. 0 when the message can be acknowledged,
 * -1 when it must stay pending (database down, lock busy). */
int auctions_apply_queued(const jt_conf *c, struct jt_db *db, struct jt_redis *redis, jt_arena *a,
                          const char *uuid);
/* PENDING receipts older than sweep_after_ms (their stream entry was lost):
 * their uuids, at most max. */
int auctions_stale_pending(const jt_conf *c, struct jt_db *db, jt_arena *a, const char **uuids, int max);

#endif
