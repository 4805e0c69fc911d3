/* Bids on descending-price auctions. A bid goes through the same write
 * path as an order (idempotency, locks on the auction's stock and both
 * balances, one fenced transaction), either in the request (sync) or, by
 * default, in a consumer process fed by a Redis Stream (async): the request
 * then records a PENDING receipt, queues its uuid and answers 202, and the
 * consumer settles it here. The receipt's status is the fence that makes a
 * redelivered message a no-op. */
#include "domain/bids.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "domain/accounts.h"
#include "domain/auction_price.h"
#include "domain/auction_rows.h"
#include "domain/common.h"
#include "domain/events.h"
#include "domain/lockkey.h"
#include "domain/points.h"
#include "domain/write.h"
#include "http/json.h"
#include "store/db.h"
#include "store/lock.h"
#include "store/redis.h"

static const char SQL_BOUGHT[] =
    "SELECT COALESCE(SUM(quantity), 0) FROM receipts WHERE auction_id = ? AND buyer_id = ? AND status = 'PURCHASED'";
static const char SQL_RECEIPT_INSERT[] =
    "INSERT INTO receipts (uuid, auction_id, buyer_id, seller_id, product_name, price, quantity, status,"
    " accepted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
static const char SQL_RECEIPT_STATE[] = "SELECT status, version FROM receipts WHERE id = ?";
static const char SQL_EARLIER_PENDING[] =
    "SELECT uuid FROM receipts WHERE status = 'PENDING' AND auction_id = ? AND id < ? ORDER BY id LIMIT 32";
/* how long settle_earlier may keep settling before it gives up (for now) */
#define JT_BIDS_EARLIER_BUDGET_MS 10000
static const char SQL_STALE_PENDING[] =
    "SELECT uuid FROM receipts WHERE status = 'PENDING' AND accepted_at < ? ORDER BY id LIMIT ?";

/* --- bidding ------------------------------------------------------------------------ */

typedef struct {
    jt_req     *r;             /* NULL in a consumer */
    jt_arena   *arena;
    int64_t     auction_id, buyer, seller, price, quantity, accepted_ms;
    const char *uuid;
    const char *name;
    int64_t     queued_id;     /* input: a queued bid's receipt; 0: insert one (sync) */
    int         queue_only;    /* async accept: record PENDING, apply nothing */
    /* outputs, set afresh by every attempt (a rolled-back attempt's
     * receipt does not exist: nothing of it may survive into the next) */
    int64_t     receipt_id;
    int64_t     receipt_version;
    int         settled;       /* a queued receipt was settled by someone else */
    jt_err      refusal;
    jt_buf      body;
} bid_tx;

static void
new_uuid(char out[37])
{
    unsigned char b[16];
    char hex[33];

    randombytes_buf(b, sizeof(b));
    b[6] = (unsigned char) ((b[6] & 0x0f) | 0x40);   /* version 4 */
    b[8] = (unsigned char) ((b[8] & 0x3f) | 0x80);   /* RFC 4122 variant */
    sodium_bin2hex(hex, sizeof(hex), b, sizeof(b));
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

static jt_tx_step
refuse(bid_tx *t, jt_err e, const char *detail)
{
    t->refusal = t->r ? jt_fail(t->r, e, "%s", detail) : e;
    return JT_TX_ABORT;
}

static jt_tx_step
receipt_answer(jt_tx *tx, bid_tx *t, jt_rows *rows)
{
    jt_val p[1] = { JT_VS(t->uuid) };
    jt_json w;

    JT_TX_EXEC(tx, SQL_RECEIPT_BY_UUID, p, 1, rows);
    jt_buf_init(&t->body, tx->arena, 512);
    jw_init(&w, &t->body);
    if (rows->nrows) {
        receipt_write(&w, rows, 0);
    }
    return JT_TX_COMMIT;
}

/* One attempt at a bid: check limit, stock and balances against their
 * versions, move stock and points with fenced UPDATEs, and settle (or
 * create) the receipt. */
static jt_tx_step
bid_body(jt_tx *tx)
{
    bid_tx *t = tx->data;
    jt_sql_time_buf accepted;
    jt_val p[9];
    jt_rows rows;
    int64_t stock, aversion, maxpb, bought, amount;
    jt_tx_step step;
    jt_err why;

    t->receipt_id = t->queued_id;
    t->receipt_version = 0;
    t->settled = 0;
    if (t->queue_only) {
        p[0] = JT_VS(t->uuid);
        p[1] = JT_VI(t->auction_id);
        p[2] = JT_VI(t->buyer);
        p[3] = JT_VI(t->seller);
        p[4] = JT_VS(t->name);
        p[5] = JT_VI(t->price);
        p[6] = JT_VI(t->quantity);
        p[7] = JT_VS("PENDING");
        p[8] = jt_sql_time(&accepted, t->accepted_ms * 1000);
        JT_TX_EXEC(tx, SQL_RECEIPT_INSERT, p, 9, &rows);
        t->receipt_id = (int64_t) rows.insert_id;
        jt_buf_init(&t->body, tx->arena, 96);
        jt_buf_addf(&t->body, "{\"receiptId\":\"%s\",\"status\":\"PENDING\"}", t->uuid);
        goto record;
    }

    if (t->queued_id != 0) {
        /* a queued bid: read its receipt afresh on every attempt; another
         * consumer (or the sweeper) may have settled it meanwhile */
        p[0] = JT_VI(t->receipt_id);
        JT_TX_EXEC(tx, SQL_RECEIPT_STATE, p, 1, &rows);
        if (rows.nrows == 0 || strcmp(jt_cell(&rows, 0, 0)->s, "PENDING") != 0) {
            t->settled = 1;
            return JT_TX_ABORT;
        }
        t->receipt_version = jt_cell(&rows, 0, 1)->i;
    }
    p[0] = JT_VI(t->auction_id);
    JT_TX_EXEC(tx, SQL_AUCTION_GET, p, 1, &rows);
    if (rows.nrows == 0) {
        return refuse(t, JT_E_AUCTION_NOT_FOUND, "the auction is gone");
    }
    stock = jt_cell(&rows, 0, A_STOCK)->i;
    aversion = jt_cell(&rows, 0, A_VERSION)->i;
    maxpb = jt_cell(&rows, 0, A_MAX)->i;
    /* earlier successful bids count against maxPerBuyer */
    p[0] = JT_VI(t->auction_id);
    p[1] = JT_VI(t->buyer);
    JT_TX_EXEC(tx, SQL_BOUGHT, p, 2, &rows);
    bought = rows.nrows ? strtoll(jt_cell(&rows, 0, 0)->s ? jt_cell(&rows, 0, 0)->s : "0", NULL, 10) : 0;
    if (bought + t->quantity > maxpb) {
        return refuse(t, JT_E_PURCHASE_LIMIT, "this buyer would exceed maxPerBuyer");
    }
    if (stock < t->quantity) {
        return refuse(t, JT_E_OUT_OF_STOCK, "not enough stock left");
    }
    amount = t->price * t->quantity;   /* price <= 1e9, quantity <= 1e7 */
    p[0] = JT_VI(stock - t->quantity);
    p[1] = JT_VI(t->auction_id);
    p[2] = JT_VI(aversion);
    JT_TX_EXEC(tx, SQL_AUCTION_STOCK, p, 3, &rows);
    if (rows.affected != 1) {
        return JT_TX_CONFLICT;
    }

    if (t->queued_id == 0) {
        p[0] = JT_VS(t->uuid);
        p[1] = JT_VI(t->auction_id);
        p[2] = JT_VI(t->buyer);
        p[3] = JT_VI(t->seller);
        p[4] = JT_VS(t->name);
        p[5] = JT_VI(t->price);
        p[6] = JT_VI(t->quantity);
        p[7] = JT_VS("PURCHASED");
        p[8] = jt_sql_time(&accepted, t->accepted_ms * 1000);
        JT_TX_EXEC(tx, SQL_RECEIPT_INSERT, p, 9, &rows);
        t->receipt_id = (int64_t) rows.insert_id;
    } else {
        /* the fence of a queued bid: only a PENDING receipt is applied */
        p[0] = JT_VS("PURCHASED");
        p[1] = JT_VNULL;
        p[2] = JT_VI(t->receipt_id);
        p[3] = JT_VI(t->receipt_version);
        p[4] = JT_VS("PENDING");
        JT_TX_EXEC(tx, SQL_RECEIPT_SETTLE, p, 5, &rows);
        if (rows.affected != 1) {
            return JT_TX_CONFLICT;
        }
    }
    /* the money: buyer pays, seller is credited, both fenced and journalled */
    step = points_apply(tx, t->buyer, -amount, "AUCTION_PURCHASE", t->receipt_id, NULL, NULL, &why);
    if (step == JT_TX_COMMIT) {
        step = points_apply(tx, t->seller, amount, "AUCTION_SALE", t->receipt_id, NULL, NULL, &why);
    }
    if (step == JT_TX_ABORT) {
        return refuse(t, why, why == JT_E_INSUFFICIENT_BALANCE ? "the balance is too low"
                              : why == JT_E_BALANCE_LIMIT ? "the seller's balance would exceed its limit"
                                                          : "a party to the sale does not exist");
    }
    if (step != JT_TX_COMMIT) {
        return step;
    }
    if (receipt_answer(tx, t, &rows) != JT_TX_COMMIT) {
        return JT_TX_DBERR;
    }
    if ((step = events_emit(tx, "bid.purchased", t->receipt_id, t->body.data, t->body.len)) != JT_TX_COMMIT) {
        return step;
    }
record:
    jt_write_answer(tx, t->queue_only ? 202 : 201, &t->body, "RECEIPT", t->receipt_id);
    return JT_TX_COMMIT;
}

/* The rows a bid or a refund writes: the auction's stock and both balances
 * (domain/lockkey.h), NULL when out of memory. */
const char **
bid_lock_keys(jt_arena *a, int64_t auction, int64_t buyer, int64_t seller)
{
    const char **keys = jt_palloc(a, sizeof(char *) * 3);

    if (keys == NULL) {
        return NULL;
    }
    keys[0] = jt_lockkey_auction(a, auction);
    keys[1] = jt_lockkey_balance(a, buyer);
    keys[2] = jt_lockkey_balance(a, seller);
    return keys[0] && keys[1] && keys[2] ? keys : NULL;
}

static jt_bid_apply settle_earlier(const jt_conf *c, struct jt_db *db, struct jt_redis *redis, jt_arena *a,
                                int64_t auction_id, int64_t before_id);

/* POST /api/v1/auctions/{id}/bids {"price","quantity"} */
jt_err
bids_place(jt_req *r)
{
    static const char *const known[] = { "price", "quantity", NULL };
    const jt_conf *c = r->conf;
    int64_t id = jt_req_param_id(r, "id"), now = jt_clock_now_ms(), current;
    jt_principal who;
    json_object *o;
    jt_rows rows;
    jt_auction_rule a;
    bid_tx *t;
    jt_write *wr;
    const char **keys;
    char uuid[37];
    int status;
    jt_err e;

    if ((e = auth_require(r, &who)) != JT_OK) {
        return e;
    }
    if (strcmp(who.role, "BUYER") != 0) {
        return jt_fail(r, JT_E_FORBIDDEN, "only buyers bid");
    }
    /* the key before any check on the auction: a committed bid replays its
     * answer after the price drops, the auction sells out or it ends */
    if ((e = jt_json_body(r, &o)) != JT_OK
        || (e = jt_write_begin(r, &wr, who.user_id, o, JT_WRITE_KEY_OPTIONAL)) != JT_OK || wr->replayed) {
        return e;
    }
    t = jt_pcalloc(r->arena, sizeof(*t));
    if (t == NULL) {
        return JT_E_INTERNAL;
    }
    if ((e = jt_json_only(r, o, "", known)) != JT_OK
        || (e = jt_json_int(r, o, "price", JT_REQUIRED, 1, 1000000000, &t->price, NULL)) != JT_OK
        || (e = jt_json_int(r, o, "quantity", JT_REQUIRED, 1, 10000000, &t->quantity, NULL)) != JT_OK
        || (e = auction_load(r, id, &rows)) != JT_OK) {
        return e;
    }
    auction_rule_of(&rows, 0, &a);
    status = jt_auction_status(&a, jt_cell(&rows, 0, A_STOCK)->i, now);
    if (status == JT_AUCTION_WAITING || status == JT_AUCTION_FINISHED) {
        return jt_fail(r, JT_E_AUCTION_NOT_RUNNING, "auction %lld is %s", (long long) id,
                       jt_auction_status_name(status));
    }
    current = jt_auction_price_at(&a, now);
    if (t->price != current) {
        jt_buf x;
        jt_buf_init(&x, r->arena, 48);
        jt_buf_addf(&x, "\"currentPrice\":%lld", (long long) current);
        r->problem_extra = jt_buf_cstr(&x);
        return jt_fail(r, JT_E_PRICE_MISMATCH, "the current price is %lld", (long long) current);
    }
    if (t->quantity > jt_cell(&rows, 0, A_MAX)->i) {
        return jt_fail(r, JT_E_PURCHASE_LIMIT, "at most %lld per buyer", (long long) jt_cell(&rows, 0, A_MAX)->i);
    }
    if (status == JT_AUCTION_SOLD_OUT) {
        return jt_fail(r, JT_E_OUT_OF_STOCK, "auction %lld is sold out", (long long) id);
    }
    t->r = r;
    t->arena = r->arena;
    t->auction_id = id;
    t->buyer = who.user_id;
    t->seller = jt_cell(&rows, 0, A_SELLER)->i;
    t->name = jt_cell(&rows, 0, A_NAME)->s;
    t->accepted_ms = now;
    new_uuid(uuid);
    t->uuid = uuid;

    if (c->auction_async && jt_redis_ready(r->redis) == 0) {
        /* accept: record the PENDING receipt (and the key) durably, queue it */
        t->queue_only = 1;
        if ((e = jt_write_run(r, wr, bid_body, t, &t->refusal)) != JT_OK || wr->replayed) {
            return e;
        }
        if (jt_redis_cmd(r->redis, r->arena, "XADD " JT_BID_STREAM " * receipt %s", uuid) != NULL) {
            JT_METRIC_INC(bids_accepted);
        } else {
            /* Redis went away between the two steps: the sweeper in the
             * consumers will apply the receipt from MariaDB; answer as queued */
            jt_log_warn("auctions: could not queue receipt %s; the sweeper will apply it", uuid);
        }
        jt_write_finish(r, wr);
        return JT_OK;
    }

    /* synchronous: first every bid of this auction accepted before this one
     * and still queued (a buyer's earlier bid, accepted while Redis was up,
     * must take the stock and the purchase limit first), then this one, now,
     * under the locks */
    if (settle_earlier(c, r->db, r->redis, r->arena, id, INT64_MAX) != JT_BID_SETTLED) {
        return jt_fail(r, JT_E_LOCK_TIMEOUT, "earlier bids on auction %lld are still being settled; retry",
                       (long long) id);
    }
    keys = bid_lock_keys(r->arena, id, t->buyer, t->seller);
    if (keys == NULL) {
        return JT_E_INTERNAL;
    }
    if ((e = jt_write_lock(r, wr, keys, 3)) != JT_OK || (e = jt_write_run(r, wr, bid_body, t, &t->refusal)) != JT_OK
        || wr->replayed) {
        return e;
    }
    JT_METRIC_INC(bids_purchased);
    jt_write_finish(r, wr);
    return JT_OK;
}

/* --- the consumer side -------------------------------------------------------------- */

static jt_tx_step
fail_body(jt_tx *tx)
{
    bid_tx *t = tx->data;
    jt_val p[5];
    jt_rows rows;

    p[0] = JT_VI(t->queued_id);
    JT_TX_EXEC(tx, SQL_RECEIPT_STATE, p, 1, &rows);
    if (rows.nrows == 0 || strcmp(jt_cell(&rows, 0, 0)->s, "PENDING") != 0) {
        t->settled = 1;
        return JT_TX_ABORT;
    }
    p[0] = JT_VS("FAILED");
    p[1] = JT_VS(jt_err_lookup(t->refusal)->code);
    p[2] = JT_VI(t->queued_id);
    p[3] = JT_VI(jt_cell(&rows, 0, 1)->i);
    p[4] = JT_VS("PENDING");
    JT_TX_EXEC(tx, SQL_RECEIPT_SETTLE, p, 5, &rows);
    return rows.affected == 1 ? JT_TX_COMMIT : JT_TX_CONFLICT;
}

/* Settles one PENDING receipt: PURCHASED, or FAILED with the reason. */
static jt_bid_apply
apply_one(const jt_conf *c, struct jt_db *db, struct jt_redis *redis, jt_arena *a, const char *uuid)
{
    jt_tx_policy pol;
    jt_val p[1] = { JT_VS(uuid) };
    jt_rows rows, ar;
    jt_auction_rule rule;
    jt_lockset locks;
    const char **keys;
    bid_tx t;
    jt_tx_rc rc;
    int status;

    jt_tx_policy_init(&pol, c);
    if (jt_db_exec(db, a, SQL_RECEIPT_BY_UUID, p, 1, &rows) != JT_DB_OK) {
        return JT_BID_PENDING;
    }
    if (rows.nrows == 0 || strcmp(jt_cell(&rows, 0, R_STATUS)->s, "PENDING") != 0) {
        return JT_BID_SETTLED;   /* unknown or already settled: a redelivery changes nothing */
    }
    memset(&t, 0, sizeof(t));
    t.arena = a;
    t.uuid = uuid;
    t.queued_id = jt_cell(&rows, 0, R_ID)->i;
    t.auction_id = jt_cell(&rows, 0, R_AUCTION)->i;
    t.buyer = jt_cell(&rows, 0, R_BUYER)->i;
    t.seller = jt_cell(&rows, 0, R_SELLER)->i;
    t.price = jt_cell(&rows, 0, R_PRICE)->i;
    t.quantity = jt_cell(&rows, 0, R_QTY)->i;
    t.accepted_ms = jt_cell(&rows, 0, R_ACCEPTED)->i;

    /* the price and the running window were checked when the bid was
     * accepted; check them again at that instant, never at "now" */
    p[0] = JT_VI(t.auction_id);
    if (jt_db_exec(db, a, SQL_AUCTION_GET, p, 1, &ar) != JT_DB_OK) {
        return JT_BID_PENDING;
    }
    if (ar.nrows == 0) {
        t.refusal = JT_E_AUCTION_NOT_FOUND;
    } else {
        auction_rule_of(&ar, 0, &rule);
        status = jt_auction_status(&rule, 1, t.accepted_ms);
        if (status != JT_AUCTION_RUNNING) {
            t.refusal = JT_E_AUCTION_NOT_RUNNING;
        } else if (jt_auction_price_at(&rule, t.accepted_ms) != t.price) {
            t.refusal = JT_E_PRICE_MISMATCH;
        }
    }
    if (t.refusal == JT_OK) {
        keys = bid_lock_keys(a, t.auction_id, t.buyer, t.seller);
        if (keys == NULL) {
            return JT_BID_PENDING;
        }
        switch (jt_lock_acquire_all(redis, a, &locks, keys, 3, c->lock_wait_ms, c->lock_lease_ms)) {
        case JT_LOCK_TIMEOUT:
            return JT_BID_PENDING;   /* stays pending; retried */
        default:
            break;
        }
        rc = jt_tx_run(db, a, &pol, bid_body, &t);
        jt_lock_release_all(redis, a, &locks);
        if (rc == JT_TX_OK) {
            JT_METRIC_INC(bids_purchased);
            return JT_BID_SETTLED;
        }
        if (rc != JT_TX_ABORTED) {
            return JT_BID_PENDING;
        }
        if (t.settled) {
            return JT_BID_SETTLED;   /* somebody else applied or failed it: done */
        }
        if (t.refusal == JT_OK) {
            t.refusal = JT_E_INTERNAL;
        }
    }
    /* a business refusal: the receipt says why, once */
    rc = jt_tx_run(db, a, &pol, fail_body, &t);
    if (rc == JT_TX_OK) {
        JT_METRIC_INC(bids_failed);
        return JT_BID_SETTLED;
    }
    return rc == JT_TX_ABORTED && t.settled ? JT_BID_SETTLED : JT_BID_PENDING;
}

/* Settles every PENDING receipt of the auction older than before_id, oldest
 * first, 32 at a time until none is left: there is no cap on how many come
 * first. Each round settles at least one or stops (apply_one leaves no
 * receipt PENDING when it answers SETTLED), so it ends; a time budget bounds it
 * all the same. SETTLED when none is left, PENDING when one could not be
 * settled now: it stays pending, and so must whatever came after it. */
static jt_bid_apply
settle_earlier(const jt_conf *c, struct jt_db *db, struct jt_redis *redis, jt_arena *a, int64_t auction_id,
               int64_t before_id)
{
    int64_t give_up = jt_clock_mono_ms() + JT_BIDS_EARLIER_BUDGET_MS;

    for (;;) {
        jt_val p[2] = { JT_VI(auction_id), JT_VI(before_id) };
        jt_rows earlier;
        int i;

        if (jt_db_exec(db, a, SQL_EARLIER_PENDING, p, 2, &earlier) != JT_DB_OK) {
            return JT_BID_PENDING;
        }
        if (earlier.nrows == 0) {
            return JT_BID_SETTLED;
        }
        for (i = 0; i < earlier.nrows; i++) {
            if (apply_one(c, db, redis, a, jt_cell(&earlier, i, 0)->s) != JT_BID_SETTLED) {
                return JT_BID_PENDING;
            }
        }
        if (jt_clock_mono_ms() > give_up) {
            jt_log_warn("bids: auction %lld has more earlier PENDING receipts than one pass settles",
                        (long long) auction_id);
            return JT_BID_PENDING;
        }
    }
}

/* Consumers take entries from the stream in order but apply them side by
 * side, so a buyer's second bid could take the stock (or the purchase
 * limit) before the first one did. A receipt is therefore settled only
 * after every earlier PENDING receipt of its auction: whoever meets them
 * first applies them, oldest first; the receipt's status makes the second
 * application of one a no-op. An earlier one that cannot be settled now
 * keeps this one pending too (retried, never reordered). */
jt_bid_apply
bids_apply_queued(const jt_conf *c, struct jt_db *db, struct jt_redis *redis, jt_arena *a, const char *uuid)
{
    jt_val p[2] = { JT_VS(uuid) };
    jt_rows rows;

    if (jt_db_exec(db, a, SQL_RECEIPT_BY_UUID, p, 1, &rows) != JT_DB_OK) {
        return JT_BID_PENDING;
    }
    if (rows.nrows == 0 || strcmp(jt_cell(&rows, 0, R_STATUS)->s, "PENDING") != 0) {
        return JT_BID_SETTLED;   /* unknown or already settled: a redelivery changes nothing */
    }
    if (settle_earlier(c, db, redis, a, jt_cell(&rows, 0, R_AUCTION)->i, jt_cell(&rows, 0, R_ID)->i)
        != JT_BID_SETTLED) {
        return JT_BID_PENDING;
    }
    return apply_one(c, db, redis, a, uuid);
}

int
bids_stale_pending(const jt_conf *c, struct jt_db *db, jt_arena *a, const char **uuids, int max)
{
    jt_sql_time_buf before;
    jt_val p[2] = { jt_sql_time(&before, (jt_clock_now_ms() - c->auction_sweep_after_ms) * 1000), JT_VI(max) };
    jt_rows rows;
    int i;

    if (jt_db_exec(db, a, SQL_STALE_PENDING, p, 2, &rows) != JT_DB_OK) {
        return 0;
    }
    for (i = 0; i < rows.nrows && i < max; i++) {
        uuids[i] = jt_cell(&rows, i, 0)->s;
    }
    return i;
}
