/* Descending-price auctions. The price and status are computed from the
 * clock on every request (auction_price.c). A bid goes through the same
 * write path as an order — idempotency, locks on the auction's stock and
 * both balances, one fenced transaction — either in the request (sync) or,
 * by default, in a consumer process fed by a Redis Stream (async): the
 * request then records a PENDING receipt, queues its uuid and answers 202.
 * The receipt's status is the fence that makes a redelivered message a
 * no-op. */
#include "domain/auctions.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "core/log.h"
#include "core/timefmt.h"
#include "core/metrics.h"
#include "domain/auction_price.h"
#include "domain/auth.h"
#include "domain/common.h"
#include "domain/points.h"
#include "domain/write.h"
#include "http/json.h"
#include "store/db.h"
#include "store/lock.h"
#include "store/redis.h"

#define AUCTION_COLS                                                                        \
    "SELECT id, seller_id, product_name, origin_price, initial_stock, stock, max_per_buyer," \
    " policy, variation_width, discount_rate_bp, variation_seconds, starts_at_ms, ends_at_ms, show_stock, version" \
    " FROM auctions"
enum { A_ID, A_SELLER, A_NAME, A_ORIGIN, A_INITIAL, A_STOCK, A_MAX, A_POLICY, A_WIDTH, A_RATE, A_VAR, A_START,
       A_END, A_SHOW, A_VERSION };

static const char SQL_AUCTION_GET[] = AUCTION_COLS " WHERE id = ? AND deleted_at IS NULL";
static const char SQL_AUCTION_PAGE[] =
    AUCTION_COLS " WHERE deleted_at IS NULL ORDER BY starts_at_ms DESC, id DESC LIMIT ? OFFSET ?";
static const char SQL_AUCTION_INSERT[] =
    "INSERT INTO auctions (seller_id, product_name, origin_price, initial_stock, stock, max_per_buyer, policy,"
    " variation_width, discount_rate_bp, variation_seconds, starts_at_ms, ends_at_ms, show_stock)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
static const char SQL_AUCTION_DELETE[] =
    "UPDATE auctions SET deleted_at = NOW(6), version = version + 1 WHERE id = ? AND version = ?";
static const char SQL_AUCTION_STOCK[] =
    "UPDATE auctions SET stock = ?, version = version + 1 WHERE id = ? AND version = ?";
static const char SQL_BOUGHT[] =
    "SELECT COALESCE(SUM(quantity), 0) FROM receipts WHERE auction_id = ? AND buyer_id = ? AND status = 'PURCHASED'";
static const char SQL_RECEIPT_INSERT[] =
    "INSERT INTO receipts (uuid, auction_id, buyer_id, seller_id, product_name, price, quantity, status,"
    " accepted_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
#define RECEIPT_COLS                                                                        \
    "SELECT id, uuid, auction_id, buyer_id, seller_id, product_name, price, quantity, status, failure_code," \
    " accepted_at_ms, version, DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%s.%fZ')," \
    " DATE_FORMAT(updated_at, '%Y-%m-%dT%H:%i:%s.%fZ') FROM receipts"
enum { R_ID, R_UUID, R_AUCTION, R_BUYER, R_SELLER, R_NAME, R_PRICE, R_QTY, R_STATUS, R_FAILURE, R_ACCEPTED,
       R_VERSION, R_CREATED, R_UPDATED };
static const char SQL_RECEIPT_BY_UUID[] = RECEIPT_COLS " WHERE uuid = ?";
static const char SQL_RECEIPT_BY_ID[] = RECEIPT_COLS " WHERE id = ?";
static const char SQL_RECEIPTS_BUYER[] = RECEIPT_COLS " WHERE buyer_id = ? AND id < ? ORDER BY id DESC LIMIT ?";
static const char SQL_RECEIPTS_SELLER[] = RECEIPT_COLS " WHERE seller_id = ? AND id < ? ORDER BY id DESC LIMIT ?";
static const char SQL_RECEIPT_SETTLE[] =
    "UPDATE receipts SET status = ?, failure_code = ?, version = version + 1"
    " WHERE id = ? AND version = ? AND status = ?";
static const char SQL_RECEIPT_STATE[] = "SELECT status, version FROM receipts WHERE id = ?";
static const char SQL_EARLIER_PENDING[] =
    "SELECT uuid FROM receipts WHERE status = 'PENDING' AND auction_id = ? AND id < ? ORDER BY id LIMIT 32";
static const char SQL_STALE_PENDING[] =
    "SELECT uuid FROM receipts WHERE status = 'PENDING' AND accepted_at_ms < ? ORDER BY id LIMIT ?";

/* --- clock and rules ---------------------------------------------------------- */

int64_t
auctions_now_ms(const jt_conf *c)
{
    return jt_wall_ms() + (c->enable_test_routes ? __atomic_load_n(&jt_metrics_get()->test_clock_offset_ms,
                                                                   __ATOMIC_RELAXED)
                                                 : 0);
}

/* POST /test/clock {"offsetMs": N} — test-only: shifts the auction clock of
 * every worker and consumer. */
jt_err
testing_clock(jt_req *r)
{
    json_object *o;
    int64_t off;
    jt_err e;

    if ((e = jt_json_body(r, &o)) != JT_OK
        || (e = jt_json_int(r, o, "offsetMs", JT_REQUIRED, -86400000LL * 365, 86400000LL * 365, &off, NULL))
               != JT_OK) {
        return e;
    }
    __atomic_store_n(&jt_metrics_get()->test_clock_offset_ms, off, __ATOMIC_RELAXED);
    {
        jt_buf b;
        jt_json w;
        jt_json_begin(r, &b, &w, 64);
        jw_obj_open(&w);
        jw_kint(&w, "offsetMs", off);
        jw_kint(&w, "nowMs", auctions_now_ms(r->conf));
        jw_obj_close(&w);
        jt_reply_json(r, 200, &b);
    }
    return JT_OK;
}

static void
rule_of(const jt_rows *rows, int i, jt_auction_rule *a)
{
    a->policy = !strcmp(jt_cell(rows, i, A_POLICY)->s, "CONSTANT") ? JT_POLICY_CONSTANT : JT_POLICY_PERCENTAGE;
    a->origin = jt_cell(rows, i, A_ORIGIN)->i;
    a->width = jt_cell(rows, i, A_WIDTH)->type == JT_V_NULL ? 0 : jt_cell(rows, i, A_WIDTH)->i;
    a->rate_bp = jt_cell(rows, i, A_RATE)->type == JT_V_NULL ? 0 : jt_cell(rows, i, A_RATE)->i;
    a->variation_s = jt_cell(rows, i, A_VAR)->i;
    a->starts_ms = jt_cell(rows, i, A_START)->i;
    a->ends_ms = jt_cell(rows, i, A_END)->i;
}

static void
write_ms_time(jt_json *w, const char *key, int64_t ms)
{
    char buf[96];
    time_t t = (time_t) (ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int) (ms % 1000));
    jw_kstr(w, key, buf);
}

/* "2026-11-23T12:00:00Z" (optionally with a fraction) → epoch ms */
static int
parse_ms(const char *s, int64_t *out)
{
    int64_t us;

    if (jt_parse_utc(s, &us) != 0) {
        return -1;
    }
    *out = us / 1000;
    return 0;
}

static void
write_auction(jt_json *w, const jt_rows *rows, int i, int64_t now, int detail)
{
    jt_auction_rule a;
    int64_t stock = jt_cell(rows, i, A_STOCK)->i, k, steps;
    int status;

    rule_of(rows, i, &a);
    status = jt_auction_status(&a, stock, now);
    jw_obj_open(w);
    jw_kint(w, "id", jt_cell(rows, i, A_ID)->i);
    jw_kstr(w, "productName", jt_cell(rows, i, A_NAME)->s);
    write_ms_time(w, "startsAt", a.starts_ms);
    write_ms_time(w, "endsAt", a.ends_ms);
    jw_kint(w, "originPrice", a.origin);
    jw_kint(w, "currentPrice", jt_auction_price_at(&a, now));
    jw_kstr(w, "status", jt_auction_status_name(status));
    jw_kint(w, "remainingSeconds",
            status == JT_AUCTION_FINISHED ? 0 : ((now < a.starts_ms ? a.ends_ms - a.starts_ms : a.ends_ms - now) + 999) / 1000);
    if (detail) {
        if (jt_cell(rows, i, A_SHOW)->i) {
            jw_kint(w, "stock", stock);
        }
        jw_kint(w, "maxPerBuyer", jt_cell(rows, i, A_MAX)->i);
        jw_kint(w, "sellerId", jt_cell(rows, i, A_SELLER)->i);
        jw_key(w, "pricePolicy");
        jw_obj_open(w);
        if (a.policy == JT_POLICY_CONSTANT) {
            jw_kstr(w, "type", "CONSTANT");
            jw_kint(w, "variationWidth", a.width);
        } else {
            char rate[32];
            jw_kstr(w, "type", "PERCENTAGE");
            snprintf(rate, sizeof(rate), "%lld.%02lld", (long long) (a.rate_bp / 100), (long long) (a.rate_bp % 100));
            jw_key(w, "discountRate");
            jw_raw(w, rate, strlen(rate));
        }
        jw_obj_close(w);
        jw_kint(w, "variationSeconds", a.variation_s);
        /* the instant the price and status above were computed for: a
         * client counting down to nextDropAt sets its clock by it */
        write_ms_time(w, "asOf", now);
        k = jt_auction_step_at(&a, now);
        steps = jt_auction_steps(&a);
        if (status != JT_AUCTION_FINISHED && (now < a.starts_ms || k + 1 < steps)) {
            int64_t next_k = now < a.starts_ms ? 0 : k + 1;
            write_ms_time(w, "nextDropAt", now < a.starts_ms ? a.starts_ms : a.starts_ms + next_k * a.variation_s * 1000);
            jw_kint(w, "nextPrice", jt_auction_price_of_step(&a, next_k));
        } else {
            jw_knull(w, "nextDropAt");
            jw_knull(w, "nextPrice");
        }
    }
    jw_obj_close(w);
}

static jt_err
load_auction(jt_req *r, int64_t id, jt_rows *rows)
{
    jt_val p[1] = { JT_VI(id) };
    jt_db_rc rc;

    if ((rc = jt_db_exec(r->db, r->arena, SQL_AUCTION_GET, p, 1, rows)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    if (rows->nrows == 0) {
        return jt_fail(r, JT_E_AUCTION_NOT_FOUND, "auction %lld does not exist", (long long) id);
    }
    return JT_OK;
}

/* --- creating and deleting ------------------------------------------------------ */

/* The body of POST /api/v1/auctions, validated against every rule (no
 * database involved). */
static jt_err
parse_auction(jt_req *r, json_object *o, int64_t now, jt_auction_rule *a, const char **name, int64_t *stock,
              int64_t *maxpb, int *show)
{
    json_object *pp, *v;
    const char *type, *starts, *ends;
    int has_show;
    jt_err e;

    memset(a, 0, sizeof(*a));
    *show = 1;
    if ((e = jt_json_str(r, o, "productName", JT_REQUIRED, 1, 100, name)) != JT_OK
        || (e = jt_json_int(r, o, "originPrice", JT_REQUIRED, 1, 1000000000, &a->origin, NULL)) != JT_OK
        || (e = jt_json_int(r, o, "stock", JT_REQUIRED, -1000000000, 10000000, stock, NULL)) != JT_OK
        || (e = jt_json_int(r, o, "maxPerBuyer", JT_REQUIRED, -1000000000, 10000000, maxpb, NULL)) != JT_OK
        || (e = jt_json_int(r, o, "variationSeconds", JT_REQUIRED, 1, 3600, &a->variation_s, NULL)) != JT_OK
        || (e = jt_json_str(r, o, "startsAt", JT_REQUIRED, 20, 40, &starts)) != JT_OK
        || (e = jt_json_str(r, o, "endsAt", JT_REQUIRED, 20, 40, &ends)) != JT_OK
        || (e = jt_json_bool(r, o, "showStock", JT_OPTIONAL, show, &has_show)) != JT_OK) {
        return e;
    }
    if (parse_ms(starts, &a->starts_ms) != 0 || parse_ms(ends, &a->ends_ms) != 0) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'startsAt' and 'endsAt' must be UTC times like 2026-12-01T09:00:00Z");
    }
    if (!json_object_object_get_ex(o, "pricePolicy", &pp) || pp == NULL
        || !json_object_is_type(pp, json_type_object)
        || (e = jt_json_str(r, pp, "type", JT_REQUIRED, 1, 16, &type)) != JT_OK) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'pricePolicy' must be {\"type\":\"CONSTANT\"|\"PERCENTAGE\", ...}");
    }
    if (!strcmp(type, "CONSTANT")) {
        a->policy = JT_POLICY_CONSTANT;
        if ((e = jt_json_int(r, pp, "variationWidth", JT_REQUIRED, INT32_MIN, 1000000000, &a->width, NULL)) != JT_OK) {
            return e;
        }
    } else if (!strcmp(type, "PERCENTAGE")) {
        double rate;
        a->policy = JT_POLICY_PERCENTAGE;
        if (!json_object_object_get_ex(pp, "discountRate", &v) || v == NULL
            || !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int))) {
            return jt_fail(r, JT_E_INVALID_REQUEST, "'pricePolicy.discountRate' must be a number");
        }
        rate = json_object_get_double(v);
        if (!(rate > 0 && rate <= 50) || !isfinite(rate)) {
            return jt_fail(r, JT_E_AUCTION_RATE_INVALID, "discountRate must be above 0 and at most 50");
        }
        a->rate_bp = llround(rate * 100);
        if (fabs(rate * 100 - (double) a->rate_bp) > 1e-6 || a->rate_bp < 1) {
            return jt_fail(r, JT_E_AUCTION_RATE_INVALID, "discountRate has at most two decimals");
        }
    } else {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'pricePolicy.type' must be CONSTANT or PERCENTAGE");
    }

    /* the rules, each with its own code */
    if (a->ends_ms <= a->starts_ms) {
        return jt_fail(r, JT_E_AUCTION_WINDOW_INVALID, "startsAt must be before endsAt");
    }
    if (a->ends_ms - a->starts_ms > 3600000 || (a->ends_ms - a->starts_ms) % 60000 != 0) {
        return jt_fail(r, JT_E_AUCTION_DURATION_INVALID, "the duration must be whole minutes, at most one hour");
    }
    if ((a->ends_ms - a->starts_ms) % (a->variation_s * 1000) != 0) {
        return jt_fail(r, JT_E_AUCTION_VARIATION_INVALID, "the duration must be divisible by variationSeconds");
    }
    if (a->starts_ms < now - 1000) {
        return jt_fail(r, JT_E_AUCTION_START_IN_PAST, "startsAt is in the past");
    }
    if (!(*maxpb >= 1 && *stock >= *maxpb)) {
        return jt_fail(r, JT_E_AUCTION_STOCK_INVALID, "need stock >= maxPerBuyer >= 1");
    }
    if (a->policy == JT_POLICY_CONSTANT && !(a->width > 0 && a->origin > a->width)) {
        return jt_fail(r, JT_E_AUCTION_WIDTH_INVALID, "need variationWidth > 0 and originPrice > variationWidth");
    }
    if (jt_auction_price_of_step(a, jt_auction_steps(a) - 1) <= 0) {
        return jt_fail(r, JT_E_AUCTION_FINAL_PRICE_INVALID, "the price after the last drop would be %lld",
                       (long long) jt_auction_price_of_step(a, jt_auction_steps(a) - 1));
    }

    return JT_OK;
}

jt_err
auctions_validate_create(jt_req *r, json_object *o)
{
    jt_auction_rule a;
    const char *name;
    int64_t stock, maxpb;
    int show;

    return parse_auction(r, o, jt_wall_ms(), &a, &name, &stock, &maxpb, &show);
}

/* POST /api/v1/auctions */
jt_err
auctions_create(jt_req *r)
{
    const jt_conf *c = r->conf;
    jt_principal who;
    json_object *o;
    const char *name;
    int64_t stock, maxpb, id, now = auctions_now_ms(c);
    jt_auction_rule a;
    int show;
    jt_val p[13];
    jt_rows rows;
    jt_db_rc rc;
    jt_err e;

    if ((e = auth_require(r, &who)) != JT_OK) {
        return e;
    }
    if (!who.is_admin && strcmp(who.role, "SELLER") != 0) {
        return jt_fail(r, JT_E_FORBIDDEN, "only sellers and admins create auctions");
    }
    if ((e = jt_json_body(r, &o)) != JT_OK
        || (e = parse_auction(r, o, now, &a, &name, &stock, &maxpb, &show)) != JT_OK) {
        return e;
    }

    p[0] = JT_VI(who.user_id);
    p[1] = JT_VS(name);
    p[2] = JT_VI(a.origin);
    p[3] = JT_VI(stock);
    p[4] = JT_VI(stock);
    p[5] = JT_VI(maxpb);
    p[6] = JT_VS(a.policy == JT_POLICY_CONSTANT ? "CONSTANT" : "PERCENTAGE");
    p[7] = a.policy == JT_POLICY_CONSTANT ? JT_VI(a.width) : JT_VNULL;
    p[8] = a.policy == JT_POLICY_PERCENTAGE ? JT_VI(a.rate_bp) : JT_VNULL;
    p[9] = JT_VI(a.variation_s);
    p[10] = JT_VI(a.starts_ms);
    p[11] = JT_VI(a.ends_ms);
    p[12] = JT_VI(show ? 1 : 0);
    if ((rc = jt_db_exec(r->db, r->arena, SQL_AUCTION_INSERT, p, 13, &rows)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    id = (int64_t) rows.insert_id;
    if ((e = load_auction(r, id, &rows)) != JT_OK) {
        return e;
    }
    {
        jt_buf b;
        jt_json w;
        char loc[64];
        jt_json_begin(r, &b, &w, 512);
        write_auction(&w, &rows, 0, now, 1);
        snprintf(loc, sizeof(loc), "/api/v1/auctions/%lld", (long long) id);
        jt_reply_header(r, "Location", loc);
        jt_reply_json(r, 201, &b);
    }
    return JT_OK;
}

/* DELETE /api/v1/auctions/{id}: its seller, before it starts */
jt_err
auctions_delete(jt_req *r)
{
    int64_t id = jt_req_param_id(r, "id");
    jt_principal who;
    jt_rows rows;
    jt_val p[2];
    jt_db_rc rc;
    jt_err e;

    if ((e = auth_require(r, &who)) != JT_OK || (e = load_auction(r, id, &rows)) != JT_OK) {
        return e;
    }
    if (jt_cell(&rows, 0, A_SELLER)->i != who.user_id && !who.is_admin) {
        return jt_fail(r, JT_E_FORBIDDEN, "only its seller may delete auction %lld", (long long) id);
    }
    if (auctions_now_ms(r->conf) >= jt_cell(&rows, 0, A_START)->i) {
        return jt_fail(r, JT_E_AUCTION_ALREADY_STARTED, "auction %lld has started", (long long) id);
    }
    p[0] = JT_VI(id);
    p[1] = JT_VI(jt_cell(&rows, 0, A_VERSION)->i);
    if ((rc = jt_db_exec(r->db, r->arena, SQL_AUCTION_DELETE, p, 2, &rows)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    if (rows.affected != 1) {
        return jt_fail(r, JT_E_AUCTION_ALREADY_STARTED, "auction %lld changed meanwhile", (long long) id);
    }
    jt_reply_text(r, 204, "application/json", "", 0);
    return JT_OK;
}

/* --- reading ----------------------------------------------------------------------- */

/* GET /api/v1/auctions?status=&page=&size= */
jt_err
auctions_list(jt_req *r)
{
    const char *status;
    int64_t page, size, now = auctions_now_ms(r->conf);
    int want = 0, i;
    jt_val p[2];
    jt_rows rows;
    jt_db_rc rc;
    jt_buf b;
    jt_json w;
    jt_err e;

    if ((e = jt_req_query_int(r, "page", 1, 1, 1000000, &page)) != JT_OK
        || (e = jt_req_query_int(r, "size", 20, 1, 100, &size)) != JT_OK
        || (e = jt_req_query_str(r, "status", &status)) != JT_OK) {
        return e;
    }
    if (status != NULL) {
        for (want = JT_AUCTION_WAITING; want <= JT_AUCTION_FINISHED; want++) {
            if (!strcmp(status, jt_auction_status_name(want))) {
                break;
            }
        }
        if (want > JT_AUCTION_FINISHED) {
            return jt_fail(r, JT_E_INVALID_REQUEST, "'status' must be WAITING, RUNNING, SOLD_OUT or FINISHED");
        }
    }
    /* status depends on the clock, so it is filtered here: read a bounded
     * window (status filter: at most 1000 recent auctions) */
    p[0] = JT_VI(status ? 1000 : size);
    p[1] = JT_VI(status ? 0 : (page - 1) * size);
    if ((rc = jt_db_exec(r->db, r->arena, SQL_AUCTION_PAGE, p, 2, &rows)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    jt_json_begin(r, &b, &w, 128 + (size_t) rows.nrows * 256);
    jw_arr_open(&w);
    {
        int64_t skip = status ? (page - 1) * size : 0, shown = 0;
        for (i = 0; i < rows.nrows && shown < size; i++) {
            if (status) {
                jt_auction_rule a;
                rule_of(&rows, i, &a);
                if (jt_auction_status(&a, jt_cell(&rows, i, A_STOCK)->i, now) != want) {
                    continue;
                }
                if (skip > 0) {
                    skip--;
                    continue;
                }
            }
            write_auction(&w, &rows, i, now, 0);
            shown++;
        }
    }
    jw_arr_close(&w);
    jt_reply_json(r, 200, &b);
    return JT_OK;
}

/* GET /api/v1/auctions/{id} */
jt_err
auctions_get(jt_req *r)
{
    jt_rows rows;
    jt_buf b;
    jt_json w;
    jt_err e;

    if ((e = load_auction(r, jt_req_param_id(r, "id"), &rows)) != JT_OK) {
        return e;
    }
    jt_json_begin(r, &b, &w, 512);
    write_auction(&w, &rows, 0, auctions_now_ms(r->conf), 1);
    jt_reply_json(r, 200, &b);
    return JT_OK;
}

static void
write_receipt(jt_json *w, const jt_rows *rows, int i)
{
    jw_obj_open(w);
    jw_kstr(w, "receiptId", jt_cell(rows, i, R_UUID)->s);
    jw_kint(w, "auctionId", jt_cell(rows, i, R_AUCTION)->i);
    jw_kstr(w, "productName", jt_cell(rows, i, R_NAME)->s);
    jw_kint(w, "price", jt_cell(rows, i, R_PRICE)->i);
    jw_kint(w, "quantity", jt_cell(rows, i, R_QTY)->i);
    jw_kstr(w, "status", jt_cell(rows, i, R_STATUS)->s);
    if (jt_cell(rows, i, R_FAILURE)->type == JT_V_NULL) {
        jw_knull(w, "failureCode");
    } else {
        jw_kstr(w, "failureCode", jt_cell(rows, i, R_FAILURE)->s);
    }
    jw_kint(w, "buyerId", jt_cell(rows, i, R_BUYER)->i);
    jw_kint(w, "sellerId", jt_cell(rows, i, R_SELLER)->i);
    jw_kstr(w, "createdAt", jt_cell(rows, i, R_CREATED)->s);
    jw_kstr(w, "updatedAt", jt_cell(rows, i, R_UPDATED)->s);
    jw_obj_close(w);
}

/* a receipt its buyer or seller (or an admin) may see; 404 otherwise */
static jt_err
load_receipt(jt_req *r, const jt_principal *who, const char *uuid, jt_rows *rows)
{
    jt_val p[1] = { JT_VS(uuid) };
    jt_db_rc rc;

    if (strlen(uuid) != 36) {
        return jt_fail(r, JT_E_RECEIPT_NOT_FOUND, "no such receipt");
    }
    if ((rc = jt_db_exec(r->db, r->arena, SQL_RECEIPT_BY_UUID, p, 1, rows)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    if (rows->nrows == 0
        || (!who->is_admin && jt_cell(rows, 0, R_BUYER)->i != who->user_id
            && jt_cell(rows, 0, R_SELLER)->i != who->user_id)) {
        return jt_fail(r, JT_E_RECEIPT_NOT_FOUND, "no such receipt");
    }
    return JT_OK;
}

/* GET /api/v1/receipts/{receiptId} */
jt_err
receipts_get(jt_req *r)
{
    jt_principal who;
    jt_rows rows;
    jt_buf b;
    jt_json w;
    jt_err e;

    if ((e = auth_require(r, &who)) != JT_OK
        || (e = load_receipt(r, &who, jt_req_param(r, "receiptId"), &rows)) != JT_OK) {
        return e;
    }
    jt_json_begin(r, &b, &w, 512);
    write_receipt(&w, &rows, 0);
    jt_reply_json(r, 200, &b);
    return JT_OK;
}

/* GET /api/v1/users/{userId}/receipts?role=buyer|seller&cursor=&limit= */
jt_err
receipts_list(jt_req *r)
{
    int64_t uid = jt_req_param_id(r, "userId"), cursor, limit;
    const char *role;
    jt_principal who;
    jt_val p[3];
    jt_rows rows;
    jt_db_rc rc;
    jt_buf b;
    jt_json w;
    jt_err e;
    int i, more;

    if ((e = auth_require_user(r, &who, uid)) != JT_OK
        || (e = jt_req_query_int(r, "cursor", INT64_MAX, 1, INT64_MAX, &cursor)) != JT_OK
        || (e = jt_req_query_int(r, "limit", 20, 1, 100, &limit)) != JT_OK
        || (e = jt_req_query_str(r, "role", &role)) != JT_OK) {
        return e;
    }
    if (role != NULL && strcmp(role, "buyer") && strcmp(role, "seller")) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'role' must be buyer or seller");
    }
    p[0] = JT_VI(uid);
    p[1] = JT_VI(cursor);
    p[2] = JT_VI(limit + 1);
    rc = jt_db_exec(r->db, r->arena, role && !strcmp(role, "seller") ? SQL_RECEIPTS_SELLER : SQL_RECEIPTS_BUYER, p,
                    3, &rows);
    if (rc != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    more = rows.nrows > limit;
    if (more) {
        rows.nrows = (int) limit;
    }
    jt_json_begin(r, &b, &w, 128 + (size_t) rows.nrows * 320);
    jw_obj_open(&w);
    jw_key(&w, "items");
    jw_arr_open(&w);
    for (i = 0; i < rows.nrows; i++) {
        write_receipt(&w, &rows, i);
    }
    jw_arr_close(&w);
    if (more) {
        jw_kint(&w, "nextCursor", jt_cell(&rows, rows.nrows - 1, R_ID)->i);
    } else {
        jw_knull(&w, "nextCursor");
    }
    jw_obj_close(&w);
    jt_reply_json(r, 200, &b);
    return JT_OK;
}

/* --- bidding ------------------------------------------------------------------------ */

typedef struct {
    jt_req     *r;             /* NULL in a consumer */
    jt_arena   *arena;
    int64_t     auction_id, buyer, seller, price, quantity, accepted_ms;
    const char *uuid;
    const char *name;
    int64_t     receipt_id;    /* a queued bid's receipt; 0: insert one (sync) */
    int64_t     receipt_version;
    int         queue_only;    /* async accept: record PENDING, apply nothing */
    int         settled;       /* a queued receipt was settled by someone else */
    jt_idem    *idem;
    int64_t     ttl;
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
        write_receipt(&w, rows, 0);
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
    jt_val p[9];
    jt_rows rows;
    int64_t stock, aversion, maxpb, bought, amount;
    jt_tx_step step;
    jt_err why;

    if (t->queue_only) {
        p[0] = JT_VS(t->uuid);
        p[1] = JT_VI(t->auction_id);
        p[2] = JT_VI(t->buyer);
        p[3] = JT_VI(t->seller);
        p[4] = JT_VS(t->name);
        p[5] = JT_VI(t->price);
        p[6] = JT_VI(t->quantity);
        p[7] = JT_VS("PENDING");
        p[8] = JT_VI(t->accepted_ms);
        JT_TX_EXEC(tx, SQL_RECEIPT_INSERT, p, 9, &rows);
        t->receipt_id = (int64_t) rows.insert_id;
        jt_buf_init(&t->body, tx->arena, 96);
        jt_buf_addf(&t->body, "{\"receiptId\":\"%s\",\"status\":\"PENDING\"}", t->uuid);
        goto record;
    }

    if (t->receipt_id != 0) {
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

    if (t->receipt_id == 0) {
        p[0] = JT_VS(t->uuid);
        p[1] = JT_VI(t->auction_id);
        p[2] = JT_VI(t->buyer);
        p[3] = JT_VI(t->seller);
        p[4] = JT_VS(t->name);
        p[5] = JT_VI(t->price);
        p[6] = JT_VI(t->quantity);
        p[7] = JT_VS("PURCHASED");
        p[8] = JT_VI(t->accepted_ms);
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
record:
    if (t->idem != NULL) {
        return jt_idem_record(tx, t->idem, t->queue_only ? 202 : 201, t->body.data, t->body.len, "RECEIPT",
                              t->receipt_id, t->ttl);
    }
    return JT_TX_COMMIT;
}

static const char **
bid_lock_keys(jt_arena *a, int64_t auction, int64_t buyer, int64_t seller)
{
    const char **keys = jt_palloc(a, sizeof(char *) * 3);
    char tmp[64];

    if (keys == NULL) {
        return NULL;
    }
    snprintf(tmp, sizeof(tmp), "lock:auction:%lld", (long long) auction);
    keys[0] = jt_pstrdup(a, tmp);
    snprintf(tmp, sizeof(tmp), "lock:balance:%lld", (long long) buyer);
    keys[1] = jt_pstrdup(a, tmp);
    snprintf(tmp, sizeof(tmp), "lock:balance:%lld", (long long) seller);
    keys[2] = jt_pstrdup(a, tmp);
    return keys;
}

/* POST /api/v1/auctions/{id}/bids {"price","quantity"} */
jt_err
auctions_bid(jt_req *r)
{
    const jt_conf *c = r->conf;
    int64_t id = jt_req_param_id(r, "id"), now = auctions_now_ms(c), current;
    jt_principal who;
    json_object *o;
    jt_rows rows;
    jt_auction_rule a;
    bid_tx *t;
    jt_write wr;
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
    t = jt_pcalloc(r->arena, sizeof(*t));
    if (t == NULL) {
        return JT_E_INTERNAL;
    }
    if ((e = jt_json_body(r, &o)) != JT_OK
        || (e = jt_json_int(r, o, "price", JT_REQUIRED, 1, 1000000000, &t->price, NULL)) != JT_OK
        || (e = jt_json_int(r, o, "quantity", JT_REQUIRED, 1, 10000000, &t->quantity, NULL)) != JT_OK
        || (e = load_auction(r, id, &rows)) != JT_OK) {
        return e;
    }
    rule_of(&rows, 0, &a);
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
    t->ttl = c->idem_ttl;
    new_uuid(uuid);
    t->uuid = uuid;

    if ((e = jt_write_begin(r, &wr, who.user_id, o, JT_WRITE_KEY_OPTIONAL)) != JT_OK || wr.replayed) {
        return e;
    }
    t->idem = wr.has_key ? &wr.idem : NULL;

    if (c->auction_async && jt_redis_ready(r->redis) == 0) {
        /* accept: record the PENDING receipt (and the key) durably, queue it */
        t->queue_only = 1;
        if ((e = jt_write_run(r, &wr, bid_body, t, &t->refusal)) != JT_OK || wr.replayed) {
            return e;
        }
        if (jt_redis_cmd(r->redis, r->arena, "XADD " JT_BID_STREAM " * receipt %s", uuid) != NULL) {
            JT_METRIC_INC(bids_accepted);
            jt_write_finish(r, &wr, 202, &t->body);
            return JT_OK;
        }
        /* Redis went away between the two steps: the sweeper in the
         * consumers will apply the receipt from MariaDB; answer as queued */
        jt_log_warn("auctions: could not queue receipt %s; the sweeper will apply it", uuid);
        jt_write_finish(r, &wr, 202, &t->body);
        return JT_OK;
    }

    /* synchronous: apply now under the locks */
    keys = bid_lock_keys(r->arena, id, t->buyer, t->seller);
    if (keys == NULL) {
        return JT_E_INTERNAL;
    }
    if ((e = jt_write_lock(r, &wr, keys, 3)) != JT_OK) {
        return e;
    }
    e = jt_write_run(r, &wr, bid_body, t, &t->refusal);
    if (e != JT_OK || wr.replayed) {
        return e;
    }
    JT_METRIC_INC(bids_purchased);
    jt_write_finish(r, &wr, 201, &t->body);
    return JT_OK;
}

/* --- the consumer side -------------------------------------------------------------- */

static jt_tx_step
fail_body(jt_tx *tx)
{
    bid_tx *t = tx->data;
    jt_val p[5];
    jt_rows rows;

    p[0] = JT_VI(t->receipt_id);
    JT_TX_EXEC(tx, SQL_RECEIPT_STATE, p, 1, &rows);
    if (rows.nrows == 0 || strcmp(jt_cell(&rows, 0, 0)->s, "PENDING") != 0) {
        t->settled = 1;
        return JT_TX_ABORT;
    }
    p[0] = JT_VS("FAILED");
    p[1] = JT_VS(jt_err_lookup(t->refusal)->code);
    p[2] = JT_VI(t->receipt_id);
    p[3] = JT_VI(jt_cell(&rows, 0, 1)->i);
    p[4] = JT_VS("PENDING");
    JT_TX_EXEC(tx, SQL_RECEIPT_SETTLE, p, 5, &rows);
    return rows.affected == 1 ? JT_TX_COMMIT : JT_TX_CONFLICT;
}

/* Settles one PENDING receipt: PURCHASED, or FAILED with the reason. */
static int
apply_one(const jt_conf *c, struct jt_db *db, struct jt_redis *redis, jt_arena *a, const char *uuid)
{
    jt_tx_policy pol = { c->tx_max_attempts, c->tx_deadline_ms, c->tx_backoff_base_ms, c->tx_backoff_max_ms,
                         c->enable_test_routes ? c->test_tx_delay_ms : 0 };
    jt_val p[1] = { JT_VS(uuid) };
    jt_rows rows, ar;
    jt_auction_rule rule;
    jt_lockset locks;
    const char **keys;
    bid_tx t;
    jt_tx_rc rc;
    int status;

    if (jt_db_exec(db, a, SQL_RECEIPT_BY_UUID, p, 1, &rows) != JT_DB_OK) {
        return -1;
    }
    if (rows.nrows == 0 || strcmp(jt_cell(&rows, 0, R_STATUS)->s, "PENDING") != 0) {
        return 0;   /* unknown or already settled: a redelivery changes nothing */
    }
    memset(&t, 0, sizeof(t));
    t.arena = a;
    t.uuid = uuid;
    t.receipt_id = jt_cell(&rows, 0, R_ID)->i;
    t.receipt_version = jt_cell(&rows, 0, R_VERSION)->i;
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
        return -1;
    }
    if (ar.nrows == 0) {
        t.refusal = JT_E_AUCTION_NOT_FOUND;
    } else {
        rule_of(&ar, 0, &rule);
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
            return -1;
        }
        switch (jt_lock_acquire_all(redis, a, &locks, keys, 3, c->lock_wait_ms, c->lock_lease_ms)) {
        case JT_LOCK_TIMEOUT:
            return -1;   /* stays pending; retried */
        default:
            break;
        }
        rc = jt_tx_run(db, a, &pol, bid_body, &t);
        jt_lock_release_all(redis, a, &locks);
        if (rc == JT_TX_OK) {
            JT_METRIC_INC(bids_purchased);
            return 0;
        }
        if (rc != JT_TX_ABORTED) {
            return -1;
        }
        if (t.settled) {
            return 0;   /* somebody else applied or failed it: done */
        }
        if (t.refusal == JT_OK) {
            t.refusal = JT_E_INTERNAL;
        }
    }
    /* a business refusal: the receipt says why, once */
    rc = jt_tx_run(db, a, &pol, fail_body, &t);
    if (rc == JT_TX_OK) {
        JT_METRIC_INC(bids_failed);
        return 0;
    }
    return rc == JT_TX_ABORTED && t.settled ? 0 : -1;
}

/* Consumers take entries from the stream in order but apply them side by
 * side, so a buyer's second bid could take the stock (or the purchase
 * limit) before the first one did. A receipt is therefore settled only
 * after every earlier PENDING receipt of its auction: whoever meets them
 * first applies them, oldest first; the receipt's status makes the second
 * application of one a no-op. An earlier one that cannot be settled now
 * keeps this one pending too (retried, never reordered). */
int
auctions_apply_queued(const jt_conf *c, struct jt_db *db, struct jt_redis *redis, jt_arena *a, const char *uuid)
{
    jt_val p[2] = { JT_VS(uuid) };
    jt_rows rows, earlier;
    int i;

    if (jt_db_exec(db, a, SQL_RECEIPT_BY_UUID, p, 1, &rows) != JT_DB_OK) {
        return -1;
    }
    if (rows.nrows == 0 || strcmp(jt_cell(&rows, 0, R_STATUS)->s, "PENDING") != 0) {
        return 0;   /* unknown or already settled: a redelivery changes nothing */
    }
    p[0] = JT_VI(jt_cell(&rows, 0, R_AUCTION)->i);
    p[1] = JT_VI(jt_cell(&rows, 0, R_ID)->i);
    if (jt_db_exec(db, a, SQL_EARLIER_PENDING, p, 2, &earlier) != JT_DB_OK) {
        return -1;
    }
    for (i = 0; i < earlier.nrows; i++) {
        if (apply_one(c, db, redis, a, jt_cell(&earlier, i, 0)->s) != 0) {
            return -1;
        }
    }
    return apply_one(c, db, redis, a, uuid);
}

int
auctions_stale_pending(const jt_conf *c, struct jt_db *db, jt_arena *a, const char **uuids, int max)
{
    jt_val p[2] = { JT_VI(auctions_now_ms(c) - c->auction_sweep_after_ms), JT_VI(max) };
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

/* --- refunds ---------------------------------------------------------------------- */

typedef struct {
    jt_req  *r;
    int64_t  receipt_id;
    jt_err   refusal;
    jt_buf   body;
} refund_tx;

static jt_tx_step
refund_body(jt_tx *tx)
{
    refund_tx *t = tx->data;
    jt_val p[5];
    jt_rows rc, ar, rows;
    int64_t amount, qty, stock, buyer, seller;
    jt_tx_step step;
    jt_err why;
    jt_json w;

    p[0] = JT_VI(t->receipt_id);
    JT_TX_EXEC(tx, SQL_RECEIPT_BY_ID, p, 1, &rc);
    if (rc.nrows == 0) {
        t->refusal = jt_fail(t->r, JT_E_RECEIPT_NOT_FOUND, "no such receipt");
        return JT_TX_ABORT;
    }
    if (!strcmp(jt_cell(&rc, 0, R_STATUS)->s, "REFUNDED")) {
        t->refusal = jt_fail(t->r, JT_E_ALREADY_REFUNDED, "this receipt was refunded already");
        return JT_TX_ABORT;
    }
    if (strcmp(jt_cell(&rc, 0, R_STATUS)->s, "PURCHASED") != 0) {
        t->refusal = jt_fail(t->r, JT_E_INVALID_REQUEST, "only a PURCHASED receipt can be refunded");
        return JT_TX_ABORT;
    }
    qty = jt_cell(&rc, 0, R_QTY)->i;
    amount = jt_cell(&rc, 0, R_PRICE)->i * qty;
    buyer = jt_cell(&rc, 0, R_BUYER)->i;
    seller = jt_cell(&rc, 0, R_SELLER)->i;

    p[0] = JT_VI(jt_cell(&rc, 0, R_AUCTION)->i);
    JT_TX_EXEC(tx, SQL_AUCTION_GET, p, 1, &ar);
    if (ar.nrows == 0) {
        t->refusal = jt_fail(t->r, JT_E_AUCTION_NOT_FOUND, "the auction is gone");
        return JT_TX_ABORT;
    }
    {
        jt_auction_rule rule;
        rule_of(&ar, 0, &rule);
        if (auctions_now_ms(t->r->conf) < rule.ends_ms) {
            t->refusal = jt_fail(t->r, JT_E_AUCTION_NOT_FINISHED, "refunds open when the auction has finished");
            return JT_TX_ABORT;
        }
    }
    p[0] = JT_VS("REFUNDED");
    p[1] = JT_VNULL;
    p[2] = JT_VI(t->receipt_id);
    p[3] = JT_VI(jt_cell(&rc, 0, R_VERSION)->i);
    p[4] = JT_VS("PURCHASED");
    JT_TX_EXEC(tx, SQL_RECEIPT_SETTLE, p, 5, &rows);
    if (rows.affected != 1) {
        return JT_TX_CONFLICT;
    }
    /* stock back, never above the original */
    stock = jt_cell(&ar, 0, A_STOCK)->i + qty;
    if (stock > jt_cell(&ar, 0, A_INITIAL)->i) {
        stock = jt_cell(&ar, 0, A_INITIAL)->i;
    }
    p[0] = JT_VI(stock);
    p[1] = JT_VI(jt_cell(&ar, 0, A_ID)->i);
    p[2] = JT_VI(jt_cell(&ar, 0, A_VERSION)->i);
    JT_TX_EXEC(tx, SQL_AUCTION_STOCK, p, 3, &rows);
    if (rows.affected != 1) {
        return JT_TX_CONFLICT;
    }
    /* the money back: seller pays back (must be able to), buyer is credited */
    step = points_apply(tx, seller, -amount, "AUCTION_REVERSAL", t->receipt_id, NULL, NULL, &why);
    if (step == JT_TX_ABORT) {
        t->refusal = jt_fail(t->r, why, why == JT_E_INSUFFICIENT_BALANCE
                                            ? "the seller's balance cannot cover the refund"
                                            : "the seller does not exist");
        return step;
    }
    if (step != JT_TX_COMMIT) {
        return step;
    }
    step = points_apply(tx, buyer, amount, "AUCTION_REFUND", t->receipt_id, NULL, NULL, &why);
    if (step == JT_TX_ABORT) {
        t->refusal = jt_fail(t->r, why, why == JT_E_BALANCE_LIMIT
                                            ? "the refund would take the balance over its limit"
                                            : "the buyer does not exist");
        return step;
    }
    if (step != JT_TX_COMMIT) {
        return step;
    }

    p[0] = JT_VI(t->receipt_id);
    JT_TX_EXEC(tx, SQL_RECEIPT_BY_ID, p, 1, &rows);
    jt_buf_init(&t->body, tx->arena, 512);
    jw_init(&w, &t->body);
    write_receipt(&w, &rows, 0);
    return JT_TX_COMMIT;
}

/* POST /api/v1/receipts/{receiptId}/refund — by its buyer */
jt_err
receipts_refund(jt_req *r)
{
    jt_principal who;
    jt_rows rows;
    refund_tx t;
    jt_write wr;
    const char **keys;
    jt_err e;

    if ((e = auth_require(r, &who)) != JT_OK
        || (e = load_receipt(r, &who, jt_req_param(r, "receiptId"), &rows)) != JT_OK) {
        return e;
    }
    if (jt_cell(&rows, 0, R_BUYER)->i != who.user_id) {
        return jt_fail(r, JT_E_FORBIDDEN, "only the buyer may ask for a refund");
    }
    memset(&t, 0, sizeof(t));
    t.r = r;
    t.receipt_id = jt_cell(&rows, 0, R_ID)->i;
    if ((e = jt_write_begin(r, &wr, who.user_id, NULL, JT_WRITE_KEY_IGNORED)) != JT_OK) {
        return e;
    }
    keys = bid_lock_keys(r->arena, jt_cell(&rows, 0, R_AUCTION)->i, jt_cell(&rows, 0, R_BUYER)->i,
                         jt_cell(&rows, 0, R_SELLER)->i);
    if (keys == NULL) {
        return JT_E_INTERNAL;
    }
    if ((e = jt_write_lock(r, &wr, keys, 3)) != JT_OK) {
        return e;
    }
    if ((e = jt_write_run(r, &wr, refund_body, &t, &t.refusal)) != JT_OK) {
        return e;
    }
    jt_write_finish(r, &wr, 200, &t.body);
    return JT_OK;
}
