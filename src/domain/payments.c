/* Card payments: the routes (read payments.h first: the states between
 * the steps and who moves each). The checkout's own transactions (T1, T2),
 * the cancel's (K) and the final answers live here, beside the handlers that
 * run them; the moves every actor shares are in payment_moves.c. */
#include "domain/payments.h"
#include "domain/payment_rows.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timefmt.h"
#include "domain/common.h"
#include "domain/lockkey.h"
#include "domain/order_place.h"
#include "domain/order_status.h"
#include "domain/write.h"
#include "http/json.h"
#include "store/lock.h"

/* ---------------------------------------------------------------- SQL */

/* the checkout: every line's stock row, priced and in its sale window */
static const char SQL_TAKE_PRODUCT[] =
    "SELECT p.price, p.stock, p.version, " WINDOW_EXPR " FROM " JT_SQL_CLOCK ", products p"
    " WHERE p.id = ? AND p.deleted_at IS NULL";
static const char SQL_TAKE_OPTION[] =
    "SELECT p.price + o.extra_price, o.stock, o.version, " WINDOW_EXPR ", p.version FROM " JT_SQL_CLOCK
    ", product_options o JOIN products p ON p.id = o.product_id WHERE o.id = ? AND p.deleted_at IS NULL";
static const char SQL_ORDER_INSERT[] =
    "INSERT INTO orders (user_id, status, payment_method, items_total, shipping_fee, total, shipping_enc, paid_at)"
    " VALUES (?, ?, 'CARD', ?, ?, ?, ?, NULL) RETURNING id, DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%s.%fZ')";
static const char SQL_CARD_INSERT[] =
    "INSERT INTO card_payments (order_id, merchant_uid, card_company, amount, hold_expires_at, due_at)"
    " VALUES (?, ?, ?, ?, ?, ?)";
static const char SQL_ORDER_METHOD[] = "SELECT payment_method, user_id FROM orders WHERE id = ?";
static const char SQL_CARD_PREPARED[] =
    "UPDATE card_payments SET prepared = 1, due_at = hold_expires_at, version = version + 1"
    " WHERE order_id = ? AND version = ? AND prepared = 0";
static const char SQL_GP_CAPTURED_OF[] =
    "SELECT imp_uid, version FROM gateway_payments WHERE order_id = ? AND state = 'CAPTURED'";
static const char SQL_GP_TO_REFUND[] =
    "UPDATE gateway_payments SET state = 'REFUND_DUE', reason = ?, due_at = ?, version = version + 1"
    " WHERE imp_uid = ? AND version = ? AND state = 'CAPTURED'";
static const char SQL_GP_DUE_LIST[] =
    "SELECT imp_uid FROM gateway_payments WHERE order_id = ? AND state = 'REFUND_DUE'";
/* the payment block of an answer */
static const char SQL_GP_OF_ORDER[] =
    "SELECT imp_uid, amount, refunded, state, card_name FROM gateway_payments WHERE order_id = ?"
    " ORDER BY created_at, imp_uid";
static const char *const CARD_COMPANIES[] = { "NH", "SHINHAN", "KAKAOBANK", NULL };

/* ---------------------------------------------------------------- T1, T2: the checkout */

typedef struct {
    pay_env     *e;
    order_tx    *t;
    const char  *company;
    char         merchant_uid[JT_MERCHANT_UID_LEN + 1];
    int64_t      hold_us;       /* business time */
    int64_t      life_ms;
    pay_refusal  f;
    jt_buf       shorts;
    /* T2 */
    int64_t      card_version;
    jt_buf       answer;
} reserve_tx;

/* T1: the units of every line are taken at the price and in the window of
 * this instant (re-read under the locks: a price that moved since pricing
 * wins, and the buyer's expectedTotal is held to it), the order is
 * inserted PAYMENT_PENDING with its lines and its card payment row. */
static jt_tx_step
reserve_body(jt_tx *tx)
{
    reserve_tx *rt = tx->data;
    order_tx *t = rt->t;
    int64_t stock[JT_ORDER_MAX_ITEMS], version[JT_ORDER_MAX_ITEMS], pversion[JT_ORDER_MAX_ITEMS], items = 0;
    jt_sql_time_buf now, hold, due;
    jt_val p[8];
    jt_rows rows;
    int i, nshort = 0;

    rt->f.extra = NULL;
    jt_buf_init(&rt->shorts, tx->arena, 64);
    for (i = 0; i < t->n; i++) {
        order_line *l = &t->lines[i];
        p[0] = jt_sql_now(&now);
        p[1] = JT_VI(l->option_id ? l->option_id : l->product_id);
        JT_TX_EXEC(tx, l->option_id ? SQL_TAKE_OPTION : SQL_TAKE_PRODUCT, p, 2, &rows);
        if (rows.nrows == 0) {
            return pay_refuse(&rt->f, l->option_id ? JT_E_OPTION_NOT_FOUND : JT_E_PRODUCT_NOT_FOUND,
                              "a product is gone");
        }
        if (jt_cell(&rows, 0, 3)->i != SALE_OPEN) {
            return pay_refuse(&rt->f, jt_cell(&rows, 0, 3)->i == SALE_NOT_YET ? JT_E_NOT_ON_SALE_YET : JT_E_SALE_ENDED,
                          "a product is not on sale now");
        }
        if (jt_cell(&rows, 0, 0)->i != l->unit_price) {
            l->unit_price = jt_cell(&rows, 0, 0)->i;
            if (__builtin_mul_overflow(l->unit_price, l->quantity, &l->line_total)) {
                return pay_refuse(&rt->f, JT_E_INVALID_REQUEST, "the order total is out of range");
            }
        }
        if (__builtin_add_overflow(items, l->line_total, &items)) {
            return pay_refuse(&rt->f, JT_E_INVALID_REQUEST, "the order total is out of range");
        }
        stock[i] = jt_cell(&rows, 0, 1)->i;
        version[i] = jt_cell(&rows, 0, 2)->i;
        pversion[i] = l->option_id ? jt_cell(&rows, 0, 4)->i : 0;
        if (stock[i] < l->quantity) {
            int j, seen = 0;
            for (j = 0; j < i; j++) {
                seen |= t->lines[j].product_id == l->product_id && stock[j] < t->lines[j].quantity;
            }
            if (!seen) {
                jt_buf_addf(&rt->shorts, "%s%lld", nshort++ ? "," : "", (long long) l->product_id);
            }
        }
    }
    if (items != t->items_total) {
        t->items_total = items;
        t->shipping_fee = items >= JT_FREE_SHIPPING_FROM ? 0 : JT_SHIPPING_FEE;
        t->total = items + t->shipping_fee;
        if (t->has_expected && t->expected != t->total) {
            jt_buf x;
            jt_buf_init(&x, tx->arena, 48);
            jt_buf_addf(&x, "\"currentTotal\":%lld", (long long) t->total);
            rt->f.extra = jt_buf_cstr(&x);
            snprintf(rt->f.detail, sizeof(rt->f.detail), "the total is now %lld", (long long) t->total);
            rt->f.code = JT_E_PRICE_CHANGED;
            return JT_TX_ABORT;
        }
    }
    if (nshort > 0) {
        jt_buf x;
        jt_buf_init(&x, tx->arena, 64);
        jt_buf_addf(&x, "\"productIds\":[%s]", jt_buf_cstr(&rt->shorts));
        rt->f.extra = jt_buf_cstr(&x);
        snprintf(rt->f.detail, sizeof(rt->f.detail), "not enough stock for product(s) %s", jt_buf_cstr(&rt->shorts));
        rt->f.code = JT_E_OUT_OF_STOCK;
        return JT_TX_ABORT;
    }
    for (i = 0; i < t->n; i++) {
        order_line *l = &t->lines[i];
        jt_tx_step s = pay_stock_set(tx, l->product_id, l->option_id, stock[i] - l->quantity, version[i], pversion[i]);
        if (s != JT_TX_COMMIT) {
            return s;
        }
    }

    p[0] = JT_VI(t->buyer);
    p[1] = JT_VS(jt_order_status_name(JT_ORDER_PAYMENT_PENDING));
    p[2] = JT_VI(t->items_total);
    p[3] = JT_VI(t->shipping_fee);
    p[4] = JT_VI(t->total);
    p[5] = JT_VB(t->ship_sealed, t->ship_len);
    JT_TX_EXEC(tx, SQL_ORDER_INSERT, p, 6, &rows);
    if (rows.nrows != 1) {
        tx->db_rc = JT_DB_ERROR;
        return JT_TX_DBERR;
    }
    t->order_id = jt_cell(&rows, 0, 0)->i;
    t->created_at = jt_cell(&rows, 0, 1)->s;
    {
        jt_tx_step s = order_insert_lines(tx, t);
        if (s != JT_TX_COMMIT) {
            return s;
        }
    }
    rt->hold_us = jt_clock_now_us() + rt->e->conf->pg_hold_seconds * INT64_C(1000000);
    p[0] = JT_VI(t->order_id);
    p[1] = JT_VS(rt->merchant_uid);
    p[2] = JT_VS(rt->company);
    p[3] = JT_VI(t->total);
    p[4] = jt_sql_time(&hold, rt->hold_us);
    p[5] = pay_due_in(&due, rt->life_ms);
    JT_TX_EXEC(tx, SQL_CARD_INSERT, p, 6, &rows);
    return pay_outbox(tx, "order.payment_pending", t->order_id, "{\"orderId\":%lld,\"total\":%lld}",
                  (long long) t->order_id, (long long) t->total);
}

/* The "payment" member: what the buyer needs to pay, and what was paid. */
static void
write_payment_block(pay_env *e, jt_json *w, const char *company, const char *merchant_uid, int64_t amount,
                    int64_t hold_ms, int pending, const char *imp_uid, int64_t refunded, const char *failure)
{
    char hold[JT_UTC_MS_LEN];

    jw_key(w, "payment");
    jw_obj_open(w);
    jw_kstr(w, "method", "CARD");
    jw_kstr(w, "cardCompany", company);
    jw_kstr(w, "merchantUid", merchant_uid);
    jw_kint(w, "amount", amount);
    jt_format_utc_ms(hold, hold_ms);
    jw_kstr(w, "holdExpiresAt", hold);
    /* the simulator's pay page; a real gateway's browser SDK takes its place */
    if (pending && e->conf->pay_url[0] != '\0') {
        size_t n = strlen(e->conf->pay_url) + strlen(merchant_uid) + 1;
        char *u = jt_palloc(e->a, n);
        if (u != NULL) {
            snprintf(u, n, "%s%s", e->conf->pay_url, merchant_uid);
            jw_kstr(w, "payUrl", u);
        }
    }
    if (imp_uid != NULL) {
        jw_kstr(w, "impUid", imp_uid);
    } else {
        jw_knull(w, "impUid");
    }
    jw_kint(w, "refunded", refunded);
    if (failure != NULL && failure[0] != '\0') {
        jw_kstr(w, "failure", failure);
    } else {
        jw_knull(w, "failure");
    }
    jw_obj_close(w);
}

/* T2: the gateway holds the amount; the hold starts counting for the
 * sweeper, and the 201 answer (with the idempotency row) names the
 * merchant uid. The sweeper may have expired the order meanwhile (only if
 * this request outlived its own life): then the checkout failed. */
static jt_tx_step
prepared_body(jt_tx *tx)
{
    reserve_tx *rt = tx->data;
    order_tx *t = rt->t;
    card_order o;
    jt_val p[2];
    jt_rows rows;
    jt_json w;

    tx->db_rc = pay_read_card_order(tx->db, tx->arena, t->order_id, &o);
    if (tx->db_rc != JT_DB_OK) {
        return JT_TX_DBERR;
    }
    if (!o.found || o.status != JT_ORDER_PAYMENT_PENDING || o.prepared) {
        return pay_refuse(&rt->f, JT_E_PAYMENT_GATEWAY_UNAVAILABLE,
                      "the payment gateway answered too late: the order has been released");
    }
    p[0] = JT_VI(t->order_id);
    p[1] = JT_VI(o.card_version);
    JT_TX_EXEC(tx, SQL_CARD_PREPARED, p, 2, &rows);
    if (rows.affected != 1) {
        return JT_TX_CONFLICT;
    }
    jt_json_begin(rt->e->r, &rt->answer, &w, 512 + (size_t) t->n * 160);
    jw_obj_open(&w);
    jw_kint(&w, "orderId", t->order_id);
    jw_kstr(&w, "status", jt_order_status_name(JT_ORDER_PAYMENT_PENDING));
    jw_kint(&w, "itemsTotal", t->items_total);
    jw_kint(&w, "shippingFee", t->shipping_fee);
    jw_kint(&w, "total", t->total);
    order_items_json(&w, t->lines, t->n);
    write_payment_block(rt->e, &w, rt->company, rt->merchant_uid, t->total, rt->hold_us / 1000, 1, NULL, 0, NULL);
    jw_kstr(&w, "createdAt", t->created_at);
    jw_obj_close(&w);
    jt_write_answer(tx, 201, &rt->answer, "ORDER", t->order_id);
    return JT_TX_COMMIT;
}

/* The gateway's answer as a request's error: 503 with the breaker's
 * Retry-After when it is open, 502 when the gateway refused. */
static jt_err
gateway_failed(jt_req *r, const jt_pg_result *res, const char *what)
{
    if (res->rejected) {
        r->retry_after_s = (int) ((res->retry_after_ms + 999) / 1000);
    }
    if (res->rc == JT_PG_REFUSED) {
        return jt_fail(r, JT_E_PAYMENT_GATEWAY_REFUSED, "%s: the payment gateway refused: %s", what, res->message);
    }
    return jt_fail(r, JT_E_PAYMENT_GATEWAY_UNAVAILABLE, "%s: %s", what,
                   res->rejected ? res->message : "the payment gateway did not answer");
}

/* 503 at once while the breaker is open: no work of ours, no call. */
static jt_err
breaker_open(jt_req *r)
{
    int64_t ms = jt_pg_refusing(r->pg, 1);

    if (ms <= 0) {
        return JT_OK;
    }
    JT_METRIC_INC(card_breaker_fast_fails);
    r->retry_after_s = (int) ((ms + 999) / 1000);
    return jt_fail(r, JT_E_PAYMENT_GATEWAY_UNAVAILABLE,
                   "the payment gateway is failing or busy: card payments are refused for now (points work)");
}

/* ---------------------------------------------------------------- the final answers */

typedef enum { ANSWER_VERIFY, ANSWER_CANCEL, ANSWER_WEBHOOK } answer_kind;

typedef struct {
    pay_env     *e;
    int64_t      order_id;
    answer_kind  kind;
    pay_refusal  f;
    jt_buf       body;
} answer_tx;

/* The request's answer, read from the committed state inside the last
 * transaction (the idempotency row goes in with it): whichever actor made
 * the move, and however often the request is repeated, it answers alike. */
static jt_tx_step
answer_body(jt_tx *tx)
{
    answer_tx *at = tx->data;
    card_order o;
    jt_json w;

    at->f.extra = NULL;
    tx->db_rc = pay_read_card_order(tx->db, tx->arena, at->order_id, &o);
    if (tx->db_rc != JT_DB_OK) {
        return JT_TX_DBERR;
    }
    if (!o.found) {
        return pay_refuse(&at->f, JT_E_ORDER_NOT_FOUND, "no such order");
    }
    if (at->kind == ANSWER_WEBHOOK) {
        jt_json_begin(at->e->r, &at->body, &w, 128);
        jw_obj_open(&w);
        jw_kint(&w, "orderId", at->order_id);
        jw_kstr(&w, "status", jt_order_status_name(o.status));
        jw_obj_close(&w);
        jt_write_answer(tx, 200, &at->body, "ORDER", at->order_id);
        return JT_TX_COMMIT;
    }
    /* paid, and perhaps moved on since (PREPARING ... RETURN_REQUESTED,
     * order_status.c): a verify answers with the order; anything else
     * says why it is not paid */
    if (at->kind == ANSWER_VERIFY && (!jt_order_status_sold(o.status) || o.status == JT_ORDER_CANCEL_PENDING)) {
        if (o.status == JT_ORDER_OUT_OF_STOCK) {
            return pay_refuse(&at->f, JT_E_OUT_OF_STOCK,
                          "paid after the hold ran out, and the stock is gone: the payment is refunded");
        }
        if (strcmp(o.failure, "PAYMENT_AMOUNT_MISMATCH") == 0) {
            return pay_refuse(&at->f, JT_E_PAYMENT_AMOUNT_MISMATCH,
                          "the payment does not match the order: it is cancelled and the stock released");
        }
        if (o.status == JT_ORDER_PAYMENT_PENDING) {
            return pay_refuse(&at->f, JT_E_PAYMENT_NOT_FOUND, "the gateway has no paid payment for this order yet");
        }
        snprintf(at->f.detail, sizeof(at->f.detail), "the order is %s", jt_order_status_name(o.status));
        at->f.code = JT_E_PAYMENT_NOT_PENDING;
        return JT_TX_ABORT;
    }
    if (order_answer_read(tx, at->e->r, at->order_id, &at->body) != JT_OK) {
        return JT_TX_DBERR;
    }
    jt_write_answer(tx, at->kind == ANSWER_CANCEL && o.status == JT_ORDER_CANCEL_PENDING ? 202 : 200, &at->body,
                    "ORDER", at->order_id);
    return JT_TX_COMMIT;
}

static jt_err
answer(pay_env *e, int64_t order_id, answer_kind kind)
{
    answer_tx at;
    jt_err x;

    memset(&at, 0, sizeof(at));
    at.e = e;
    at.order_id = order_id;
    at.kind = kind;
    if ((x = pay_tx(e, NULL, 0, answer_body, &at, &at.f, PAY_FINAL)) != JT_OK) {
        return x;
    }
    jt_write_finish(e->r, e->w);
    return JT_OK;
}

/* ---------------------------------------------------------------- parsing */

int
payments_card_requested(json_object *o)
{
    json_object *p, *m;

    return o != NULL && json_object_object_get_ex(o, "payment", &p) && json_object_is_type(p, json_type_object)
           && json_object_object_get_ex(p, "method", &m) && json_object_is_type(m, json_type_string)
           && strcmp(json_object_get_string(m), "CARD") == 0;
}

jt_err
payments_parse_method(jt_req *r, json_object *o, const char **card)
{
    static const char *const known[] = { "method", "cardCompany", NULL };
    json_object *p;
    const char *method, *company = NULL;
    jt_err e;
    int i;

    if (card != NULL) {
        *card = NULL;
    }
    if (!json_object_object_get_ex(o, "payment", &p)) {
        return JT_OK;
    }
    if (p == NULL || !json_object_is_type(p, json_type_object)) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'payment' must be an object");
    }
    if ((e = jt_json_only(r, p, "payment", known)) != JT_OK) {
        return e;
    }
    if (!json_object_object_get_ex(p, "method", NULL)) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'payment.method' is required: POINTS or CARD");
    }
    if ((e = jt_json_str(r, p, "method", JT_REQUIRED, 1, 16, &method)) != JT_OK) {
        return e;
    }
    if (strcmp(method, "POINTS") == 0) {
        if (json_object_object_get_ex(p, "cardCompany", NULL)) {
            return jt_fail(r, JT_E_INVALID_REQUEST, "'payment.cardCompany' is for card payments only");
        }
        return JT_OK;
    }
    if (strcmp(method, "CARD") != 0) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'payment.method' must be POINTS or CARD");
    }
    if (!json_object_object_get_ex(p, "cardCompany", NULL)) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'payment.cardCompany' is required for a card payment");
    }
    if ((e = jt_json_str(r, p, "cardCompany", JT_REQUIRED, 1, 16, &company)) != JT_OK) {
        return e;
    }
    for (i = 0; CARD_COMPANIES[i] != NULL; i++) {
        if (strcmp(company, CARD_COMPANIES[i]) == 0) {
            if (card != NULL) {
                *card = CARD_COMPANIES[i];
            }
            return JT_OK;
        }
    }
    return jt_fail(r, JT_E_INVALID_REQUEST, "'payment.cardCompany' must be NH, SHINHAN or KAKAOBANK");
}

/* A gateway's uid as a client sends it: what store/pg takes in a URL. */
static int
uid_ok(const char *s)
{
    size_t i, n = strlen(s);

    if (n == 0 || n > JT_PG_UID_MAX) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'
              || c == '.')) {
            return 0;
        }
    }
    return 1;
}

/* ---------------------------------------------------------------- POST /api/v1/orders (card) */

/* Read top to bottom: validate and price as a points order is → the key
 * (its marker covers the gateway call too) → 503 at once if the breaker is
 * open → T1 under the stock locks (released right after) → prepare at the
 * gateway, with no lock and no transaction held → T2, the 201 answer; or,
 * if the gateway refused or did not answer, T3 and 503. */
jt_err
payments_place(jt_req *r, const jt_principal *who, json_object *o)
{
    const jt_conf *c = r->conf;
    unsigned char rnd[16];
    reserve_tx *rt;
    order_tx *t;
    pay_env env;
    jt_pg_result res;
    const char **keys;
    jt_write *wr;
    jt_err e;
    int i;

    if ((e = jt_write_begin_for(r, &wr, who->user_id, o, JT_WRITE_KEY_OPTIONAL,
                                c->pg_deadline_ms + c->lock_wait_ms + c->tx_deadline_ms)) != JT_OK
        || wr->replayed) {
        return e;
    }
    t = jt_pcalloc(r->arena, sizeof(*t));
    rt = jt_pcalloc(r->arena, sizeof(*rt));
    if (t == NULL || rt == NULL) {
        return JT_E_INTERNAL;
    }
    t->r = r;
    t->buyer = who->user_id;
    if ((e = order_prepare(r, o, t)) != JT_OK || (e = payments_parse_method(r, o, &rt->company)) != JT_OK) {
        return e;
    }
    if (!jt_pg_configured(r->pg)) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "card payments are not available on this server");
    }
    if ((e = breaker_open(r)) != JT_OK) {
        return e;
    }
    pay_env_of_request(&env, r, wr);
    rt->e = &env;
    rt->t = t;
    randombytes_buf(rnd, sizeof(rnd));
    memcpy(rt->merchant_uid, "jt", 2);
    for (i = 0; i < 16; i++) {
        snprintf(rt->merchant_uid + 2 + 2 * i, 3, "%02x", rnd[i]);
    }
    /* until T2, the sweeper leaves the order to this request for as long
     * as the request can live */
    rt->life_ms = c->lock_wait_ms + 3 * (c->tx_deadline_ms + c->lock_wait_ms) + c->pg_deadline_ms + 5000;

    /* T1: the reservation, under the locks of its stock rows */
    keys = jt_palloc(r->arena, sizeof(char *) * (size_t) t->n);
    for (i = 0; keys != NULL && i < t->n; i++) {
        if ((keys[i] = jt_lockkey_stock(r->arena, t->lines[i].product_id, t->lines[i].option_id)) == NULL) {
            keys = NULL;
        }
    }
    if (keys == NULL) {
        return JT_E_INTERNAL;
    }
    if ((e = pay_tx(&env, keys, t->n, reserve_body, rt, &rt->f, PAY_STEP)) != JT_OK) {
        if (e == JT_E_OUT_OF_STOCK) {
            JT_METRIC_INC(orders_out_of_stock);
        }
        return e;
    }
    JT_METRIC_INC(card_reserved);

    /* the amount at the gateway, between two transactions */
    if (jt_pg_prepare(r->pg, rt->merchant_uid, t->total, &res) != JT_PG_OK) {
        jt_log_warn("payments: order %lld: prepare failed (%s): released", (long long) t->order_id, res.message);
        (void) pay_release(&env, t->order_id, JT_ORDER_PAYMENT_FAILED, JT_BY_SERVER,
                       res.rc == JT_PG_REFUSED ? "PAYMENT_GATEWAY_REFUSED" : "PAYMENT_GATEWAY_UNAVAILABLE", NULL);
        return gateway_failed(r, &res, "the order was not placed");
    }

    /* T2: the answer */
    if ((e = pay_tx(&env, NULL, 0, prepared_body, rt, &rt->f, PAY_FINAL)) != JT_OK || wr->replayed) {
        return e;
    }
    order_reply_created(r, wr, t->order_id);
    return JT_OK;
}

/* ---------------------------------------------------------------- verify, webhook, cancel */

/* A card order the principal may act on; 404 otherwise (ids cannot be
 * probed), 409 for an order paid by points. */
static jt_err
load_card_order(jt_req *r, const jt_principal *who, int64_t id, card_order *o)
{
    jt_val p[1] = { JT_VI(id) };
    jt_rows rows;
    jt_db_rc rc;

    if ((rc = jt_db_exec(r->db, r->arena, SQL_ORDER_METHOD, p, 1, &rows)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    if (rows.nrows == 0 || (jt_cell(&rows, 0, 1)->i != who->user_id && !who->is_admin)) {
        return jt_fail(r, JT_E_ORDER_NOT_FOUND, "order %lld does not exist", (long long) id);
    }
    if (strcmp(jt_cell(&rows, 0, 0)->s, "CARD") != 0) {
        return jt_fail(r, JT_E_PAYMENT_NOT_PENDING, "order %lld is paid with points", (long long) id);
    }
    if ((rc = pay_read_card_order(r->db, r->arena, id, o)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    return o->found ? JT_OK : jt_fail(r, JT_E_ORDER_NOT_FOUND, "order %lld does not exist", (long long) id);
}

/* POST /api/v1/orders/{orderId}/payments {"impUid"}: the payment is read
 * at the gateway by imp_uid and settled (S, and the refund it may make
 * due); the answer is the order as that leaves it. */
jt_err
payments_verify(jt_req *r)
{
    static const char *const known[] = { "impUid", NULL };
    const jt_conf *c = r->conf;
    int64_t id = jt_req_param_id(r, "orderId");
    const char *imp;
    jt_principal who;
    json_object *o;
    card_order co;
    jt_pg_payment p;
    jt_pg_result res;
    settle_outcome out;
    gp_row g;
    pay_env env;
    jt_write *wr;
    jt_err e;

    if ((e = auth_require(r, &who)) != JT_OK || (e = jt_json_body(r, &o)) != JT_OK
        || (e = jt_json_only(r, o, "", known)) != JT_OK
        || (e = jt_json_str(r, o, "impUid", JT_REQUIRED, 1, JT_PG_UID_MAX, &imp)) != JT_OK) {
        return e;
    }
    if (!uid_ok(imp)) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'impUid' is 1 to %d letters, digits, '_', '-' or '.'", JT_PG_UID_MAX);
    }
    if ((e = jt_write_begin_for(r, &wr, who.user_id, o, JT_WRITE_KEY_REQUIRED, 3 * c->pg_deadline_ms))
            != JT_OK || wr->replayed) {
        return e;
    }
    if ((e = load_card_order(r, &who, id, &co)) != JT_OK) {
        return e;
    }
    pay_env_of_request(&env, r, wr);

    /* a payment settled before needs no call: the answer is the state */
    if (pay_read_gp(r->db, r->arena, imp, &g) != JT_DB_OK) {
        return jt_fail(r, JT_E_DATABASE_UNAVAILABLE, "the database is unavailable; retry later");
    }
    if (g.found && g.order_id == id) {
        if (g.refund_due) {
            (void) pay_refund_one(&env, imp, NULL);
        }
        return answer(&env, id, ANSWER_VERIFY);
    }
    if (!jt_pg_configured(r->pg)) {
        return jt_fail(r, JT_E_PAYMENT_GATEWAY_UNAVAILABLE, "no payment gateway is configured");
    }
    if ((e = breaker_open(r)) != JT_OK) {
        return e;
    }
    switch (jt_pg_lookup(r->pg, imp, &p, &res)) {
    case JT_PG_OK:
        break;
    case JT_PG_NOT_FOUND:
        return jt_fail(r, JT_E_PAYMENT_NOT_FOUND, "the gateway has no payment %s", imp);
    default:
        return gateway_failed(r, &res, "the payment could not be looked up");
    }
    if (p.status != JT_PG_PAID) {
        return jt_fail(r, JT_E_PAYMENT_NOT_FOUND, "payment %s is %s at the gateway, not paid", imp,
                       jt_pg_status_name(p.status));
    }
    if ((e = pay_settle(&env, &p, id, &out)) != JT_OK) {
        return e;
    }
    return answer(&env, id, ANSWER_VERIFY);
}

/* POST /api/v1/payments/webhook: the gateway's notification. Only from
 * [payments] webhook_allow; the body is a hint, never the truth: the
 * payment is read back from the gateway and settled by its own merchant
 * uid. Answers 200 for anything that needs no retry from the gateway. */
jt_err
payments_webhook(jt_req *r)
{
    static const char *const known[] = { "imp_uid", "merchant_uid", "status", NULL };
    const jt_conf *c = r->conf;
    const char *imp, *mu = NULL, *status = NULL;
    json_object *o;
    jt_pg_payment p;
    jt_pg_result res;
    settle_outcome out;
    int64_t order_id;
    pay_env env;
    jt_write *wr;
    jt_buf b;
    jt_json w;
    jt_err e;

    if (!jt_pg_webhook_allowed(r->conf, r->remote_addr)) {
        return jt_fail(r, JT_E_FORBIDDEN, "not an address the payment gateway's notifications come from");
    }
    if ((e = jt_json_body(r, &o)) != JT_OK || (e = jt_json_only(r, o, "", known)) != JT_OK
        || (e = jt_json_str(r, o, "imp_uid", JT_REQUIRED, 1, JT_PG_UID_MAX, &imp)) != JT_OK
        || (e = jt_json_str(r, o, "merchant_uid", JT_OPTIONAL, 1, JT_PG_UID_MAX, &mu)) != JT_OK
        || (e = jt_json_str(r, o, "status", JT_OPTIONAL, 1, 32, &status)) != JT_OK) {
        return e;
    }
    if (!uid_ok(imp) || (mu != NULL && !uid_ok(mu))) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'imp_uid' and 'merchant_uid' are gateway uids");
    }
    if (!jt_pg_configured(r->pg)) {
        return jt_fail(r, JT_E_PAYMENT_GATEWAY_UNAVAILABLE, "no payment gateway is configured");
    }
    if ((e = jt_write_begin_for(r, &wr, 0, NULL, JT_WRITE_KEY_IGNORED, 3 * c->pg_deadline_ms)) != JT_OK) {
        return e;
    }
    if (pay_found(jt_pg_lookup(r->pg, imp, &p, &res), &p) != JT_PG_OK) {
        return gateway_failed(r, &res, "the payment could not be looked up");
    }
    pay_env_of_request(&env, r, wr);
    order_id = 0;
    if (p.status == JT_PG_PAID) {
        if ((e = pay_settle(&env, &p, 0, &out)) != JT_OK) {
            return e;
        }
        if (pay_order_of_merchant(&env, p.merchant_uid, &order_id) != JT_DB_OK) {
            return jt_fail(r, JT_E_DATABASE_UNAVAILABLE, "the database is unavailable; retry later");
        }
    }
    if (order_id != 0) {
        return answer(&env, order_id, ANSWER_WEBHOOK);
    }
    /* not paid, not found, or not ours: nothing to do, nothing to retry */
    r->on_error = NULL;
    jt_json_begin(r, &b, &w, 128);
    jw_obj_open(&w);
    jw_knull(&w, "orderId");
    jw_kstr(&w, "status", "IGNORED");
    jw_obj_close(&w);
    jt_reply_json(r, 200, &b);
    return JT_OK;
}

typedef struct {
    pay_env     *e;
    int64_t      order_id;
    const char  *imp_uid;     /* out: the payment to refund */
    pay_refusal  f;
} cancel_tx;

/* K: PAID -> CANCEL_PENDING, its payment due for a refund. The stock
 * stays taken until the refund is confirmed (R gives it back). */
static jt_tx_step
cancel_body(jt_tx *tx)
{
    cancel_tx *ct = tx->data;
    jt_sql_time_buf due;
    jt_val v[4] = { JT_VI(ct->order_id) };
    jt_rows rows;
    card_order o;
    jt_tx_step s;

    tx->db_rc = pay_read_card_order(tx->db, tx->arena, ct->order_id, &o);
    if (tx->db_rc != JT_DB_OK) {
        return JT_TX_DBERR;
    }
    if (!o.found || !jt_order_may(o.status, JT_ORDER_CANCEL_PENDING, JT_BY_BUYER)) {
        return pay_refuse(&ct->f, JT_E_ORDER_NOT_CANCELLABLE, "only a PAID or PREPARING order can be cancelled");
    }
    JT_TX_EXEC(tx, SQL_GP_CAPTURED_OF, v, 1, &rows);
    if (rows.nrows != 1) {
        jt_log_error("payments: PAID card order %lld has %d captured payments", (long long) ct->order_id, rows.nrows);
        tx->db_rc = JT_DB_ERROR;
        return JT_TX_DBERR;
    }
    ct->imp_uid = jt_pstrdup(ct->e->a, jt_cell(&rows, 0, 0)->s);
    v[0] = JT_VS("CANCELLED");
    v[1] = pay_due_in(&due, ct->e->conf->pg_sweep_claim_ms);
    v[2] = JT_VS(ct->imp_uid);
    v[3] = JT_VI(jt_cell(&rows, 0, 1)->i);
    JT_TX_EXEC(tx, SQL_GP_TO_REFUND, v, 4, &rows);
    if (rows.affected != 1) {
        return JT_TX_CONFLICT;
    }
    s = pay_order_move(tx, ct->order_id, o.version, o.status, JT_ORDER_CANCEL_PENDING, ct->e->by, ct->e->actor_id);
    if (s != JT_TX_COMMIT) {
        return s;
    }
    return pay_outbox(tx, "order.cancel_pending", ct->order_id, "{\"orderId\":%lld,\"refund\":%lld}",
                  (long long) ct->order_id, (long long) o.total);
}

/* POST /api/v1/orders/{orderId}/cancel of a card order: K, then the
 * refund at the gateway and R (200, CANCELLED); if the gateway refuses or
 * is down the order waits in CANCEL_PENDING (202) and the sweeper finishes
 * it. A cancel of a CANCEL_PENDING order tries the refund again. */
jt_err
payments_cancel(jt_req *r, const jt_principal *who, int64_t order_id)
{
    const jt_conf *c = r->conf;
    cancel_tx ct;
    card_order co;
    pay_lines ls;
    pay_env env;
    const char **keys;
    jt_val v[1] = { JT_VI(order_id) };
    jt_rows rows;
    jt_write *wr;
    jt_err e;
    int n;

    if ((e = load_card_order(r, who, order_id, &co)) != JT_OK) {
        return e;
    }
    /* the statuses a buyer's cancel starts from are the move table's
     * (order_status.c: PAID and PREPARING) */
    if (!jt_order_may(co.status, JT_ORDER_CANCEL_PENDING, JT_BY_BUYER) && co.status != JT_ORDER_CANCEL_PENDING) {
        return jt_fail(r, JT_E_ORDER_NOT_CANCELLABLE,
                       "only a PAID or PREPARING order can be cancelled (this one is %s)",
                       jt_order_status_name(co.status));
    }
    if ((e = jt_write_begin_for(r, &wr, who->user_id, NULL, JT_WRITE_KEY_IGNORED, 2 * c->pg_deadline_ms))
        != JT_OK) {
        return e;
    }
    pay_env_of_request(&env, r, wr);
    /* whose cancel it is, as the lifecycle's moves say: an admin's, else
     * the buyer's (load_card_order let nobody else this far) */
    env.by = who->is_admin ? JT_BY_ADMIN : JT_BY_BUYER;
    env.actor_id = who->user_id;
    if (co.status != JT_ORDER_CANCEL_PENDING) {
        if (pay_load_lines(&env, order_id, &ls) != JT_DB_OK) {
            return jt_fail(r, JT_E_DATABASE_UNAVAILABLE, "the database is unavailable; retry later");
        }
        if ((keys = pay_lock_keys(r->arena, order_id, &ls, &n)) == NULL) {
            return JT_E_INTERNAL;
        }
        memset(&ct, 0, sizeof(ct));
        ct.e = &env;
        ct.order_id = order_id;
        if ((e = pay_tx(&env, keys, n, cancel_body, &ct, &ct.f, PAY_STEP)) != JT_OK) {
            return e;
        }
    }
    /* every payment of the order that is due goes back (a gateway that
     * will not now leaves CANCEL_PENDING to the sweeper) */
    if (jt_db_exec(r->db, r->arena, SQL_GP_DUE_LIST, v, 1, &rows) == JT_DB_OK) {
        int i;
        for (i = 0; i < rows.nrows; i++) {
            (void) pay_refund_one(&env, jt_cell(&rows, i, 0)->s, NULL);
        }
    }
    r->retry_after_s = 0;
    return answer(&env, order_id, ANSWER_CANCEL);
}

/* A card order's return (RETURN_REQUESTED -> RETURNED, lifecycle.c), in
 * that move's transaction: its one captured payment becomes due for a
 * refund of all of it, as a cancel's does (K), claimed for claim_ms by the
 * mover that refunds it after COMMIT (0: the sweeper's at once). The
 * refund itself is R, the same path as a cancel's: pay_refund_one. */
jt_tx_step
payments_return_due(jt_tx *tx, jt_arena *a, int64_t order_id, int64_t claim_ms, const char **imp_uid)
{
    jt_sql_time_buf due;
    jt_val v[4] = { JT_VI(order_id) };
    jt_rows rows;

    JT_TX_EXEC(tx, SQL_GP_CAPTURED_OF, v, 1, &rows);
    if (rows.nrows != 1) {
        jt_log_error("payments: returned card order %lld has %d captured payments", (long long) order_id, rows.nrows);
        tx->db_rc = JT_DB_ERROR;
        return JT_TX_DBERR;
    }
    *imp_uid = jt_pstrdup(a, jt_cell(&rows, 0, 0)->s);
    v[0] = JT_VS("RETURNED");
    v[1] = pay_due_in(&due, claim_ms);
    v[2] = JT_VS(*imp_uid);
    v[3] = JT_VI(jt_cell(&rows, 0, 1)->i);
    JT_TX_EXEC(tx, SQL_GP_TO_REFUND, v, 4, &rows);
    return rows.affected == 1 ? JT_TX_COMMIT : JT_TX_CONFLICT;
}

void
payments_refund_now(const jt_pay_env *s, const char *imp_uid)
{
    pay_env env;

    pay_env_of_sweeper(&env, s);
    (void) pay_refund_one(&env, imp_uid, NULL);   /* not now: the sweeper's */
}

/* The "payment" member of a card order's answer (GET, list, cancel). */
jt_err
payments_write_block(jt_req *r, jt_json *w, int64_t order_id)
{
    pay_env env;
    card_order o;
    jt_val v[1] = { JT_VI(order_id) };
    jt_rows rows;
    const char *imp = NULL;
    int64_t refunded = 0;
    jt_db_rc rc;
    int i;

    pay_env_of_request(&env, r, NULL);
    if ((rc = pay_read_card_order(r->db, r->arena, order_id, &o)) != JT_DB_OK
        || (rc = jt_db_exec(r->db, r->arena, SQL_GP_OF_ORDER, v, 1, &rows)) != JT_DB_OK) {
        return rc == JT_DB_DOWN ? JT_E_DATABASE_UNAVAILABLE : JT_E_INTERNAL;
    }
    if (!o.found) {
        return JT_E_INTERNAL;
    }
    /* the payment that pays the order, else the last one made (refunded) */
    for (i = 0; i < rows.nrows; i++) {
        if (imp == NULL || i == rows.nrows - 1 || strcmp(jt_cell(&rows, i, 3)->s, "CAPTURED") == 0) {
            imp = jt_cell(&rows, i, 0)->s;
        }
        refunded += jt_cell(&rows, i, 2)->i;
    }
    write_payment_block(&env, w, o.company, o.merchant_uid, o.amount, o.hold_ms,
                        o.status == JT_ORDER_PAYMENT_PENDING && o.prepared, imp, refunded, o.failure);
    return JT_OK;
}

