/* Descending-price auctions: the rules a new auction must meet, creating
 * and deleting one, and reading them. The price and status are computed
 * from the clock on every request (auction_price.c); bids are bids.c, the
 * receipts they leave and their refunds receipts.c. */
#include "domain/auctions.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/timefmt.h"
#include "domain/accounts.h"
#include "domain/auction_price.h"
#include "domain/auction_rows.h"
#include "domain/common.h"
#include "domain/cursor.h"
#include "http/json.h"
#include "store/db.h"

const char SQL_AUCTION_GET[] = AUCTION_COLS " WHERE id = ? AND deleted_at IS NULL";
static const char SQL_AUCTION_PAGE[] =
    AUCTION_COLS " WHERE deleted_at IS NULL ORDER BY starts_at DESC, id DESC LIMIT ? OFFSET ?";
static const char SQL_AUCTION_INSERT[] =
    "INSERT INTO auctions (seller_id, product_name, origin_price, initial_stock, stock, max_per_buyer, policy,"
    " variation_width, discount_rate_bp, variation_seconds, starts_at, ends_at, show_stock)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
static const char SQL_AUCTION_DELETE[] =
    "UPDATE auctions SET deleted_at = NOW(6), version = version + 1 WHERE id = ? AND version = ?";
const char SQL_AUCTION_STOCK[] =
    "UPDATE auctions SET stock = ?, version = version + 1 WHERE id = ? AND version = ?";

/* --- rules ---------------------------------------------------------------------- */

void
auction_rule_of(const jt_rows *rows, int i, jt_auction_rule *a)
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
    char buf[JT_UTC_MS_LEN];

    jt_format_utc_ms(buf, ms);
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

/* An auction as the API shows it at `now` (the app's clock): price,
 * status and the remaining time are computed from the rule, never stored,
 * and the detail adds the policy and the next drop. */
static void
write_auction(jt_json *w, const jt_rows *rows, int i, int64_t now, int detail)
{
    jt_auction_rule a;
    int64_t stock = jt_cell(rows, i, A_STOCK)->i, k, steps;
    int status;

    auction_rule_of(rows, i, &a);
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

jt_err
auction_load(jt_req *r, int64_t id, jt_rows *rows)
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
    static const char *const known[] = { "productName", "originPrice", "stock", "maxPerBuyer", "variationSeconds",
                                         "startsAt", "endsAt", "showStock", "pricePolicy", NULL };
    static const char *const constant_known[] = { "type", "variationWidth", NULL };
    static const char *const percentage_known[] = { "type", "discountRate", NULL };
    json_object *pp, *v;
    const char *type, *starts, *ends;
    int has_show;
    jt_err e;

    memset(a, 0, sizeof(*a));
    *show = 1;
    if ((e = jt_json_only(r, o, "", known)) != JT_OK
        || (e = jt_json_str(r, o, "productName", JT_REQUIRED, 1, 100, name)) != JT_OK
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
        if ((e = jt_json_only(r, pp, "pricePolicy", constant_known)) != JT_OK
            || (e = jt_json_int(r, pp, "variationWidth", JT_REQUIRED, INT32_MIN, 1000000000, &a->width, NULL)) != JT_OK) {
            return e;
        }
    } else if (!strcmp(type, "PERCENTAGE")) {
        double rate;
        a->policy = JT_POLICY_PERCENTAGE;
        if ((e = jt_json_only(r, pp, "pricePolicy", percentage_known)) != JT_OK) {
            return e;
        }
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

    return parse_auction(r, o, jt_clock_now_ms(), &a, &name, &stock, &maxpb, &show);
}

/* POST /api/v1/auctions */
jt_err
auctions_create(jt_req *r)
{
    jt_principal who;
    json_object *o;
    const char *name;
    int64_t stock, maxpb, id, now = jt_clock_now_ms();
    jt_auction_rule a;
    int show;
    jt_sql_time_buf starts, ends;
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
    p[10] = jt_sql_time(&starts, a.starts_ms * 1000);
    p[11] = jt_sql_time(&ends, a.ends_ms * 1000);
    p[12] = JT_VI(show ? 1 : 0);
    if ((rc = jt_db_exec(r->db, r->arena, SQL_AUCTION_INSERT, p, 13, &rows)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    id = (int64_t) rows.insert_id;
    if ((e = auction_load(r, id, &rows)) != JT_OK) {
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

    if ((e = auth_require(r, &who)) != JT_OK || (e = auction_load(r, id, &rows)) != JT_OK) {
        return e;
    }
    if (jt_cell(&rows, 0, A_SELLER)->i != who.user_id && !who.is_admin) {
        return jt_fail(r, JT_E_FORBIDDEN, "only its seller may delete auction %lld", (long long) id);
    }
    if (jt_clock_now_ms() >= jt_cell(&rows, 0, A_START)->i) {
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
    int64_t page, size, now = jt_clock_now_ms();
    int want = 0, i;
    jt_val p[2];
    jt_rows rows;
    jt_db_rc rc;
    jt_buf b;
    jt_json w;
    jt_err e;

    if ((e = jt_page_parse(r, 1000000, &page, &size)) != JT_OK
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
                auction_rule_of(&rows, i, &a);
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

    if ((e = auction_load(r, jt_req_param_id(r, "id"), &rows)) != JT_OK) {
        return e;
    }
    jt_json_begin(r, &b, &w, 512);
    write_auction(&w, &rows, 0, jt_clock_now_ms(), 1);
    jt_reply_json(r, 200, &b);
    return JT_OK;
}
