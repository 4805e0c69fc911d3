/* Card payments: read payments.h first (the states between the steps and
 * who moves each). This file is in four parts: the transactions (bodies
 * shared by the requests and the sweeper), the steps that call the gateway
 * between them, the HTTP handlers, and the sweeper's and the audit's work. */
#include "domain/payments.h"

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
/* an option's UPDATE also matches the product version it was priced at
 * (orders.c says why) */
static const char SQL_TAKE_OPTION_WRITE[] =
    "UPDATE product_options s JOIN products p ON p.id = s.product_id SET s.stock = ?, s.version = s.version + 1"
    " WHERE s.id = ? AND s.version = ? AND p.version = ?";
/* stock rows of an order being settled: live ones to take from again,
 * any to give back to */
static const char SQL_LIVE_PRODUCT[] =
    "SELECT stock, version FROM products WHERE id = ? AND deleted_at IS NULL";
static const char SQL_LIVE_OPTION[] =
    "SELECT o.stock, o.version FROM product_options o JOIN products p ON p.id = o.product_id"
    " WHERE o.id = ? AND p.deleted_at IS NULL";
static const char SQL_ANY_PRODUCT[] = "SELECT stock, version FROM products WHERE id = ?";
static const char SQL_ANY_OPTION[] = "SELECT stock, version FROM product_options WHERE id = ?";
static const char SQL_PRODUCT_STOCK_WRITE[] =
    "UPDATE products SET stock = ?, version = version + 1 WHERE id = ? AND version = ?";
static const char SQL_OPTION_STOCK_WRITE[] =
    "UPDATE product_options SET stock = ?, version = version + 1 WHERE id = ? AND version = ?";

static const char SQL_ORDER_INSERT[] =
    "INSERT INTO orders (user_id, status, payment_method, items_total, shipping_fee, total, shipping_enc)"
    " VALUES (?, ?, 'CARD', ?, ?, ?, ?) RETURNING id, DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%s.%fZ')";
static const char SQL_ITEM_INSERT[] =
    "INSERT INTO order_items (order_id, line_no, product_id, option_id, name, unit_price, quantity, line_total)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
static const char SQL_CARD_INSERT[] =
    "INSERT INTO card_payments (order_id, merchant_uid, card_company, amount, hold_expires_at, due_at)"
    " VALUES (?, ?, ?, ?, ?, ?)";
static const char SQL_OUTBOX_INSERT[] = "INSERT INTO outbox (topic, aggregate_id, payload) VALUES (?, ?, ?)";

static const char SQL_LINES[] =
    "SELECT product_id, COALESCE(option_id, 0), quantity FROM order_items WHERE order_id = ? ORDER BY line_no";
/* a card order and its card payment row */
static const char SQL_CARD_ORDER[] =
    "SELECT o.status, o.version, o.total, o.user_id, c.merchant_uid, c.amount, c.version, c.prepared,"
    " COALESCE(c.failure_code, ''), c.card_company, " JT_SQL_EPOCH_MS("c.hold_expires_at")
    " FROM orders o JOIN card_payments c ON c.order_id = o.id WHERE o.id = ?";
enum { C_STATUS, C_VERSION, C_TOTAL, C_USER, C_MUID, C_AMOUNT, C_CVERSION, C_PREPARED, C_FAILURE, C_COMPANY,
       C_HOLD_MS };
static const char SQL_ORDER_OF_MERCHANT[] = "SELECT order_id FROM card_payments WHERE merchant_uid = ?";
static const char SQL_ORDER_METHOD[] = "SELECT payment_method, user_id FROM orders WHERE id = ?";

static const char SQL_ORDER_MOVE[] =
    "UPDATE orders SET status = ?, version = version + 1 WHERE id = ? AND version = ? AND status = ?";
static const char SQL_ORDER_MOVE_CANCELLED[] =
    "UPDATE orders SET status = ?, cancelled_at = NOW(6), version = version + 1"
    " WHERE id = ? AND version = ? AND status = ?";
static const char SQL_CARD_PREPARED[] =
    "UPDATE card_payments SET prepared = 1, due_at = hold_expires_at, version = version + 1"
    " WHERE order_id = ? AND version = ? AND prepared = 0";
/* the order has left PAYMENT_PENDING: nothing more for the sweeper, or
 * (an expired hold) one more look for a late payment at due_at */
static const char SQL_CARD_DONE[] =
    "UPDATE card_payments SET due_at = ?, failure_code = ?, version = version + 1"
    " WHERE order_id = ? AND version = ?";
static const char SQL_CARD_CLAIM[] =
    "UPDATE card_payments SET due_at = ?, version = version + 1 WHERE order_id = ? AND version = ?"
    " AND due_at IS NOT NULL";

static const char SQL_GP_GET[] =
    "SELECT state, amount, refunded, order_id, version, COALESCE(reason, '') FROM gateway_payments WHERE imp_uid = ?";
enum { G_STATE, G_AMOUNT, G_REFUNDED, G_ORDER, G_VERSION, G_REASON };
static const char SQL_GP_INSERT[] =
    "INSERT INTO gateway_payments (imp_uid, order_id, merchant_uid, amount, state, reason, card_name, paid_at, due_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
static const char SQL_GP_CAPTURED_OF[] =
    "SELECT imp_uid, version FROM gateway_payments WHERE order_id = ? AND state = 'CAPTURED'";
static const char SQL_GP_TO_REFUND[] =
    "UPDATE gateway_payments SET state = 'REFUND_DUE', reason = ?, due_at = ?, version = version + 1"
    " WHERE imp_uid = ? AND version = ? AND state = 'CAPTURED'";
static const char SQL_GP_CLAIM[] =
    "UPDATE gateway_payments SET due_at = ?, version = version + 1 WHERE imp_uid = ? AND version = ?"
    " AND state = 'REFUND_DUE'";
static const char SQL_GP_REFUNDED[] =
    "UPDATE gateway_payments SET refunded = ?, state = ?, due_at = ?, version = version + 1"
    " WHERE imp_uid = ? AND version = ? AND state = 'REFUND_DUE'";
static const char SQL_REFUND_RECORD[] =
    "INSERT INTO card_refunds (imp_uid, order_id, amount, checksum, reason) VALUES (?, ?, ?, ?, ?)"
    " ON DUPLICATE KEY UPDATE id = id";
static const char SQL_GP_DUE_LIST[] =
    "SELECT imp_uid FROM gateway_payments WHERE order_id = ? AND state = 'REFUND_DUE'";
static const char SQL_GP_DUE_OF_ORDER[] =
    "SELECT COUNT(*) FROM gateway_payments WHERE order_id = ? AND state = 'REFUND_DUE'";
/* the payment block of an answer */
static const char SQL_GP_OF_ORDER[] =
    "SELECT imp_uid, amount, refunded, state, card_name FROM gateway_payments WHERE order_id = ?"
    " ORDER BY created_at, imp_uid";

/* the sweeper's work lists, oldest first; due_at is business time */
static const char SQL_DUE_ORDERS[] =
    "SELECT c.order_id, c.version FROM " JT_SQL_CLOCK ", card_payments c JOIN orders o ON o.id = c.order_id"
    " WHERE c.due_at <= clk.now AND o.status IN (?, ?) ORDER BY c.due_at LIMIT ?";
static const char SQL_DUE_REFUNDS[] =
    "SELECT g.imp_uid, g.version FROM " JT_SQL_CLOCK ", gateway_payments g"
    " WHERE g.state = 'REFUND_DUE' AND g.due_at <= clk.now ORDER BY g.due_at LIMIT ?";
static const char SQL_AUDIT_ORDERS[] =
    "SELECT o.id, o.status, o.total, c.merchant_uid,"
    " (SELECT g.imp_uid FROM gateway_payments g WHERE g.order_id = o.id AND g.state = 'CAPTURED' LIMIT 1)"
    " FROM orders o JOIN card_payments c ON c.order_id = o.id ORDER BY o.id DESC LIMIT ?";

static const char *const CARD_COMPANIES[] = { "NH", "SHINHAN", "KAKAOBANK", NULL };

/* ---------------------------------------------------------------- where transactions run */

/* A request runs its transactions through its write path (its locks, its
 * Idempotency-Key); the sweeper runs the same bodies with its own lock set
 * and retry policy. Bodies see only this and their own data. */
typedef struct {
    const jt_conf *conf;
    jt_db         *db;
    jt_redis      *redis;
    jt_pg         *pg;
    jt_arena      *a;
    jt_req        *r;      /* NULL in the sweeper */
    jt_write      *w;
    jt_tx_policy   pol;
} pay_env;

static void
env_of_request(pay_env *e, jt_req *r, jt_write *w)
{
    memset(e, 0, sizeof(*e));
    e->conf = r->conf;
    e->db = r->db;
    e->redis = r->redis;
    e->pg = r->pg;
    e->a = r->arena;
    e->r = r;
    e->w = w;
}

static void
env_of_sweeper(pay_env *e, const jt_pay_env *s)
{
    const jt_conf *c = s->conf;

    memset(e, 0, sizeof(*e));
    e->conf = c;
    e->db = s->db;
    e->redis = s->redis;
    e->pg = s->pg;
    e->a = s->arena;
    e->pol.max_attempts = c->tx_max_attempts;
    e->pol.deadline_ms = c->tx_deadline_ms;
    e->pol.backoff_base_ms = c->tx_backoff_base_ms;
    e->pol.backoff_max_ms = c->tx_backoff_max_ms;
}

typedef struct {
    int64_t product_id, option_id, quantity;
} pay_line;

typedef struct {
    pay_line l[JT_ORDER_MAX_ITEMS];
    int      n;
} pay_lines;

/* A refusal a body decided on, answered by the request (or logged by the
 * sweeper) after the rollback. */
typedef struct {
    jt_err      code;
    char        detail[200];
    const char *extra;          /* problem members, or NULL */
} pay_refusal;

static jt_tx_step
refuse(pay_refusal *f, jt_err code, const char *detail)
{
    f->code = code;
    snprintf(f->detail, sizeof(f->detail), "%s", detail);
    return JT_TX_ABORT;
}

static jt_err
answer_refusal(pay_env *e, const pay_refusal *f)
{
    if (e->r == NULL) {
        return f->code;
    }
    if (f->extra != NULL) {
        e->r->problem_extra = f->extra;
    }
    return jt_fail(e->r, f->code, "%s", f->detail);
}

static jt_db_rc
load_lines(pay_env *e, int64_t order_id, pay_lines *out)
{
    jt_val p[1] = { JT_VI(order_id) };
    jt_rows rows;
    jt_db_rc rc;
    int i;

    out->n = 0;
    if ((rc = jt_db_exec(e->db, e->a, SQL_LINES, p, 1, &rows)) != JT_DB_OK) {
        return rc;
    }
    for (i = 0; i < rows.nrows && i < JT_ORDER_MAX_ITEMS; i++) {
        out->l[i].product_id = jt_cell(&rows, i, 0)->i;
        out->l[i].option_id = jt_val_int(jt_cell(&rows, i, 1));
        out->l[i].quantity = jt_cell(&rows, i, 2)->i;
    }
    out->n = i;
    return JT_DB_OK;
}

/* lock:order:<id> and the stock key of every line */
static const char **
lock_keys(jt_arena *a, int64_t order_id, const pay_lines *ls, int *n)
{
    const char **k = jt_palloc(a, sizeof(char *) * (size_t) (ls->n + 1));
    int i;

    if (k == NULL || (k[0] = jt_lockkey_order(a, order_id)) == NULL) {
        return NULL;
    }
    for (i = 0; i < ls->n; i++) {
        if ((k[i + 1] = jt_lockkey_stock(a, ls->l[i].product_id, ls->l[i].option_id)) == NULL) {
            return NULL;
        }
    }
    *n = ls->n + 1;
    return k;
}

typedef enum { PAY_STEP = 0, PAY_FINAL = 1 } pay_tx_kind;

/* Runs body in one transaction under the locks: through the request's
 * write path (PAY_FINAL commits the request's answer; a PAY_STEP commits
 * without it and lets the locks go at once), or in the sweeper with its own
 * lock set. A refusal comes back as f->code, answered (requests) or not. */
static jt_err
pay_tx(pay_env *e, const char **keys, int nkeys, jt_tx_body body, void *data, pay_refusal *f, pay_tx_kind kind)
{
    jt_lockset ls;
    jt_tx_rc rc;
    jt_err x;

    f->code = JT_OK;
    if (e->r != NULL) {
        if (nkeys > 0 && (x = jt_write_lock(e->r, e->w, keys, nkeys)) != JT_OK) {
            return x;
        }
        x = kind == PAY_FINAL ? jt_write_run(e->r, e->w, body, data, &f->code)
                              : jt_write_step(e->r, e->w, body, data, &f->code);
        if (kind == PAY_STEP) {
            jt_write_unlock(e->r, e->w);   /* committed or rolled back: nothing is held past a step */
        }
        if (x == f->code && f->code != JT_OK) {
            return answer_refusal(e, f);
        }
        return x;
    }
    if (nkeys > 0 && jt_lock_acquire_all(e->redis, e->a, &ls, keys, nkeys, e->conf->lock_wait_ms,
                                         e->conf->lock_lease_ms) == JT_LOCK_TIMEOUT) {
        return JT_E_LOCK_TIMEOUT;
    }
    rc = jt_tx_run(e->db, e->a, &e->pol, body, data);
    if (nkeys > 0) {
        jt_lock_release_all(e->redis, e->a, &ls);
    }
    switch (rc) {
    case JT_TX_OK:        return JT_OK;
    case JT_TX_ABORTED:   return f->code;
    case JT_TX_EXHAUSTED: return JT_E_CONFLICT_RETRY_EXHAUSTED;
    case JT_TX_DB_DOWN:   return JT_E_DATABASE_UNAVAILABLE;
    default:              return JT_E_INTERNAL;
    }
}

/* ---------------------------------------------------------------- pieces of transactions */

static jt_val due_in(jt_sql_time_buf *b, int64_t ms);

/* A card order as the transaction reads it. */
typedef struct {
    int             found;
    jt_order_status status;
    int64_t         version, total, user_id;
    const char     *merchant_uid;
    int64_t         amount, card_version;
    int             prepared;
    const char     *failure;
    const char     *company;
    int64_t         hold_ms;       /* business time, epoch ms */
} card_order;

static void
card_order_of(const jt_rows *rows, card_order *o)
{
    memset(o, 0, sizeof(*o));
    if (rows->nrows != 1) {
        return;
    }
    o->found = 1;
    o->status = jt_order_status_of(jt_cell(rows, 0, C_STATUS)->s);
    o->version = jt_cell(rows, 0, C_VERSION)->i;
    o->total = jt_cell(rows, 0, C_TOTAL)->i;
    o->user_id = jt_cell(rows, 0, C_USER)->i;
    o->merchant_uid = jt_cell(rows, 0, C_MUID)->s;
    o->amount = jt_cell(rows, 0, C_AMOUNT)->i;
    o->card_version = jt_cell(rows, 0, C_CVERSION)->i;
    o->prepared = jt_cell(rows, 0, C_PREPARED)->i != 0;
    o->failure = jt_cell(rows, 0, C_FAILURE)->s;
    o->company = jt_cell(rows, 0, C_COMPANY)->s;
    o->hold_ms = jt_val_int(jt_cell(rows, 0, C_HOLD_MS));
}

static jt_db_rc
read_card_order(jt_db *db, jt_arena *a, int64_t id, card_order *o)
{
    jt_val p[1] = { JT_VI(id) };
    jt_rows rows;
    jt_db_rc rc = jt_db_exec(db, a, SQL_CARD_ORDER, p, 1, &rows);

    if (rc == JT_DB_OK) {
        card_order_of(&rows, o);
    }
    return rc;
}

/* Moves an order from -> to, fenced by its version; a move that is not
 * in the status table is a bug (rolled back, logged). */
static jt_tx_step
order_move(jt_tx *tx, int64_t id, int64_t version, jt_order_status from, jt_order_status to, jt_order_actor by)
{
    jt_val p[4] = { JT_VS(jt_order_status_name(to)), JT_VI(id), JT_VI(version), JT_VS(jt_order_status_name(from)) };
    jt_rows rows;

    if (!jt_order_may(from, to, by)) {
        jt_log_error("payments: order %lld: %s -> %s is not a move (a bug); rolled back", (long long) id,
                     jt_order_status_name(from), jt_order_status_name(to));
        tx->db_rc = JT_DB_ERROR;
        return JT_TX_DBERR;
    }
    JT_TX_EXEC(tx, to == JT_ORDER_CANCELLED ? SQL_ORDER_MOVE_CANCELLED : SQL_ORDER_MOVE, p, 4, &rows);
    return rows.affected == 1 ? JT_TX_COMMIT : JT_TX_CONFLICT;
}

static jt_tx_step
outbox(jt_tx *tx, const char *topic, int64_t order_id, const char *fmt, long long a, long long b)
{
    char payload[160];
    jt_val p[3];
    jt_rows rows;

    snprintf(payload, sizeof(payload), fmt, a, b);
    p[0] = JT_VS(topic);
    p[1] = JT_VI(order_id);
    p[2] = JT_VS(jt_pstrdup(tx->arena, payload));
    JT_TX_EXEC(tx, SQL_OUTBOX_INSERT, p, 3, &rows);
    return JT_TX_COMMIT;
}

/* The order leaves PAYMENT_PENDING: the sweeper has nothing more to do,
 * or (recheck_ms >= 0) it looks once more then, for a payment made late. */
static jt_tx_step
card_done_at(jt_tx *tx, const card_order *o, int64_t order_id, const char *failure, int64_t recheck_ms)
{
    jt_sql_time_buf due;
    jt_val p[4] = { recheck_ms >= 0 ? due_in(&due, recheck_ms) : JT_VNULL, failure ? JT_VS(failure) : JT_VNULL,
                    JT_VI(order_id), JT_VI(o->card_version) };
    jt_rows rows;

    JT_TX_EXEC(tx, SQL_CARD_DONE, p, 4, &rows);
    return rows.affected == 1 ? JT_TX_COMMIT : JT_TX_CONFLICT;
}

static jt_tx_step
card_done(jt_tx *tx, const card_order *o, int64_t order_id, const char *failure)
{
    return card_done_at(tx, o, order_id, failure, -1);
}

/* Gives every line's units back (a row that is gone has nothing to take
 * them), each write fenced by the version read. */
static jt_tx_step
stock_give_back(jt_tx *tx, const pay_lines *ls)
{
    jt_val p[3];
    jt_rows rows;
    int i;

    for (i = 0; i < ls->n; i++) {
        const pay_line *l = &ls->l[i];
        int64_t id = l->option_id ? l->option_id : l->product_id;
        p[0] = JT_VI(id);
        JT_TX_EXEC(tx, l->option_id ? SQL_ANY_OPTION : SQL_ANY_PRODUCT, p, 1, &rows);
        if (rows.nrows == 0) {
            continue;
        }
        p[0] = JT_VI(jt_cell(&rows, 0, 0)->i + l->quantity);
        p[1] = JT_VI(id);
        p[2] = JT_VI(jt_cell(&rows, 0, 1)->i);
        JT_TX_EXEC(tx, l->option_id ? SQL_OPTION_STOCK_WRITE : SQL_PRODUCT_STOCK_WRITE, p, 3, &rows);
        if (rows.affected != 1) {
            return JT_TX_CONFLICT;
        }
    }
    return JT_TX_COMMIT;
}

/* Takes every line's units again, all or none: *is_short when a live row
 * has fewer than its line needs (then nothing is written). */
static jt_tx_step
stock_take_again(jt_tx *tx, const pay_lines *ls, int *is_short)
{
    int64_t stock[JT_ORDER_MAX_ITEMS], version[JT_ORDER_MAX_ITEMS];
    jt_val p[3];
    jt_rows rows;
    int i;

    *is_short = 0;
    for (i = 0; i < ls->n; i++) {
        const pay_line *l = &ls->l[i];
        p[0] = JT_VI(l->option_id ? l->option_id : l->product_id);
        JT_TX_EXEC(tx, l->option_id ? SQL_LIVE_OPTION : SQL_LIVE_PRODUCT, p, 1, &rows);
        if (rows.nrows == 0 || jt_cell(&rows, 0, 0)->i < l->quantity) {
            *is_short = 1;
            return JT_TX_COMMIT;
        }
        stock[i] = jt_cell(&rows, 0, 0)->i;
        version[i] = jt_cell(&rows, 0, 1)->i;
    }
    for (i = 0; i < ls->n; i++) {
        const pay_line *l = &ls->l[i];
        p[0] = JT_VI(stock[i] - l->quantity);
        p[1] = JT_VI(l->option_id ? l->option_id : l->product_id);
        p[2] = JT_VI(version[i]);
        JT_TX_EXEC(tx, l->option_id ? SQL_OPTION_STOCK_WRITE : SQL_PRODUCT_STOCK_WRITE, p, 3, &rows);
        if (rows.affected != 1) {
            return JT_TX_CONFLICT;
        }
    }
    return JT_TX_COMMIT;
}

/* Due for the sweeper `ms` from now, in business time. */
static jt_val
due_in(jt_sql_time_buf *b, int64_t ms)
{
    return jt_sql_time(b, jt_clock_now_us() + ms * 1000);
}

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
            return refuse(&rt->f, l->option_id ? JT_E_OPTION_NOT_FOUND : JT_E_PRODUCT_NOT_FOUND, "a product is gone");
        }
        if (jt_cell(&rows, 0, 3)->i != SALE_OPEN) {
            return refuse(&rt->f, jt_cell(&rows, 0, 3)->i == SALE_NOT_YET ? JT_E_NOT_ON_SALE_YET : JT_E_SALE_ENDED,
                          "a product is not on sale now");
        }
        if (jt_cell(&rows, 0, 0)->i != l->unit_price) {
            l->unit_price = jt_cell(&rows, 0, 0)->i;
            if (__builtin_mul_overflow(l->unit_price, l->quantity, &l->line_total)) {
                return refuse(&rt->f, JT_E_INVALID_REQUEST, "the order total is out of range");
            }
        }
        if (__builtin_add_overflow(items, l->line_total, &items)) {
            return refuse(&rt->f, JT_E_INVALID_REQUEST, "the order total is out of range");
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
        p[0] = JT_VI(stock[i] - l->quantity);
        p[1] = JT_VI(l->option_id ? l->option_id : l->product_id);
        p[2] = JT_VI(version[i]);
        p[3] = JT_VI(pversion[i]);
        JT_TX_EXEC(tx, l->option_id ? SQL_TAKE_OPTION_WRITE : SQL_PRODUCT_STOCK_WRITE, p, l->option_id ? 4 : 3,
                   &rows);
        if (rows.affected != 1) {
            return JT_TX_CONFLICT;
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
    for (i = 0; i < t->n; i++) {
        order_line *l = &t->lines[i];
        p[0] = JT_VI(t->order_id);
        p[1] = JT_VI(i + 1);
        p[2] = JT_VI(l->product_id);
        p[3] = l->option_id ? JT_VI(l->option_id) : JT_VNULL;
        p[4] = JT_VS(l->name);
        p[5] = JT_VI(l->unit_price);
        p[6] = JT_VI(l->quantity);
        p[7] = JT_VI(l->line_total);
        JT_TX_EXEC(tx, SQL_ITEM_INSERT, p, 8, &rows);
    }
    rt->hold_us = jt_clock_now_us() + rt->e->conf->pg_hold_seconds * INT64_C(1000000);
    p[0] = JT_VI(t->order_id);
    p[1] = JT_VS(rt->merchant_uid);
    p[2] = JT_VS(rt->company);
    p[3] = JT_VI(t->total);
    p[4] = jt_sql_time(&hold, rt->hold_us);
    p[5] = due_in(&due, rt->life_ms);
    JT_TX_EXEC(tx, SQL_CARD_INSERT, p, 6, &rows);
    return outbox(tx, "order.payment_pending", t->order_id, "{\"orderId\":%lld,\"total\":%lld}",
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

    tx->db_rc = read_card_order(tx->db, tx->arena, t->order_id, &o);
    if (tx->db_rc != JT_DB_OK) {
        return JT_TX_DBERR;
    }
    if (!o.found || o.status != JT_ORDER_PAYMENT_PENDING || o.prepared) {
        return refuse(&rt->f, JT_E_PAYMENT_GATEWAY_UNAVAILABLE,
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

/* ---------------------------------------------------------------- T3, E: releasing a reservation */

typedef struct {
    pay_env         *e;
    int64_t          order_id;
    const pay_lines *lines;
    jt_order_status  to;
    jt_order_actor   by;
    const char      *failure;
    int              moved;     /* out: this transaction made the move */
} release_tx;

/* PAYMENT_PENDING -> to (PAYMENT_FAILED or PAYMENT_EXPIRED), the units
 * back. An order that has moved already is left as it is. An expired one
 * is looked at once more a hold later: a buyer may still pay at the
 * gateway's window after the hold, and if neither a verify nor the webhook
 * brings that payment, the sweeper must (to sell or to refund it). */
static jt_tx_step
release_body(jt_tx *tx)
{
    release_tx *rl = tx->data;
    card_order o;
    jt_tx_step s;

    rl->moved = 0;
    tx->db_rc = read_card_order(tx->db, tx->arena, rl->order_id, &o);
    if (tx->db_rc != JT_DB_OK) {
        return JT_TX_DBERR;
    }
    if (!o.found || o.status != JT_ORDER_PAYMENT_PENDING) {
        return JT_TX_COMMIT;
    }
    if ((s = order_move(tx, rl->order_id, o.version, o.status, rl->to, rl->by)) != JT_TX_COMMIT
        || (s = card_done_at(tx, &o, rl->order_id, rl->failure,
                             rl->to == JT_ORDER_PAYMENT_EXPIRED ? rl->e->conf->pg_hold_seconds * 1000 : -1))
               != JT_TX_COMMIT
        || (s = stock_give_back(tx, rl->lines)) != JT_TX_COMMIT
        || (s = outbox(tx, rl->to == JT_ORDER_PAYMENT_EXPIRED ? "order.payment_expired" : "order.payment_failed",
                       rl->order_id, "{\"orderId\":%lld,\"total\":%lld}", (long long) rl->order_id,
                       (long long) o.total)) != JT_TX_COMMIT) {
        return s;
    }
    rl->moved = 1;
    return JT_TX_COMMIT;
}

static jt_err
release(pay_env *e, int64_t order_id, jt_order_status to, jt_order_actor by, const char *failure, int *moved)
{
    pay_lines ls;
    release_tx rl = { e, order_id, &ls, to, by, failure, 0 };
    pay_refusal f;
    const char **keys;
    jt_err x;
    int n;

    if (load_lines(e, order_id, &ls) != JT_DB_OK) {
        return JT_E_DATABASE_UNAVAILABLE;
    }
    if ((keys = lock_keys(e->a, order_id, &ls, &n)) == NULL) {
        return JT_E_INTERNAL;
    }
    x = pay_tx(e, keys, n, release_body, &rl, &f, PAY_STEP);
    if (x == JT_OK && rl.moved) {
        if (to == JT_ORDER_PAYMENT_EXPIRED) {
            JT_METRIC_INC(card_expired);
        } else {
            JT_METRIC_INC(card_failed);
        }
    }
    if (moved != NULL) {
        *moved = x == JT_OK && rl.moved;
    }
    return x;
}

/* ---------------------------------------------------------------- S: settling a paid payment */

typedef enum {
    SETTLE_KNOWN = 0,    /* this payment was settled before: nothing to do */
    SETTLE_CAPTURED,     /* it pays its order: PAID */
    SETTLE_MISMATCH,     /* another amount, or another merchant uid: PAYMENT_FAILED, refund */
    SETTLE_LATE_SOLD,    /* paid after the hold, the stock taken again: PAID */
    SETTLE_LATE_SHORT,   /* paid after the hold, the stock gone: OUT_OF_STOCK, refund */
    SETTLE_STRAY         /* a payment its order does not want: refund, status kept */
} settle_outcome;

typedef struct {
    pay_env             *e;
    const jt_pg_payment *p;
    int64_t              order_id;
    const pay_lines     *lines;
    int                  foreign;    /* p's merchant uid is not this order's */
    settle_outcome       outcome;
    int                  refund;     /* out: a refund is now due for p */
} settle_tx;

static jt_tx_step
gp_insert(jt_tx *tx, settle_tx *st, const char *state, const char *reason, int64_t due_ms)
{
    const jt_pg_payment *p = st->p;
    jt_sql_time_buf paid, due;
    jt_val v[9];
    jt_rows rows;

    v[0] = JT_VS(p->imp_uid);
    v[1] = JT_VI(st->order_id);
    v[2] = JT_VS(p->merchant_uid);
    v[3] = JT_VI(p->amount);
    v[4] = JT_VS(state);
    v[5] = reason ? JT_VS(reason) : JT_VNULL;
    v[6] = JT_VS(p->card_name);
    v[7] = p->paid_at > 0 ? jt_sql_time(&paid, p->paid_at * INT64_C(1000000)) : JT_VNULL;
    v[8] = due_ms >= 0 ? due_in(&due, due_ms) : JT_VNULL;
    JT_TX_EXEC(tx, SQL_GP_INSERT, v, 9, &rows);
    return JT_TX_COMMIT;
}

/* One transaction decides what the gateway's payment p means for its
 * order, and records p once (its imp_uid is the key of gateway_payments:
 * two settlers of one payment cannot both insert it). A refund it makes
 * due is claimed by this settler for sweep_claim_ms (it refunds at once);
 * the sweeper takes over after that. */
static jt_tx_step
settle_body(jt_tx *tx)
{
    settle_tx *st = tx->data;
    const jt_pg_payment *p = st->p;
    int64_t claim = st->e->conf->pg_sweep_claim_ms;
    jt_val v[1] = { JT_VS(p->imp_uid) };
    jt_rows rows;
    card_order o;
    jt_tx_step s;
    int is_short;

    st->refund = 0;
    JT_TX_EXEC(tx, SQL_GP_GET, v, 1, &rows);
    if (rows.nrows == 1) {
        st->outcome = SETTLE_KNOWN;
        st->refund = strcmp(jt_cell(&rows, 0, G_STATE)->s, "REFUND_DUE") == 0;
        return JT_TX_COMMIT;
    }
    tx->db_rc = read_card_order(tx->db, tx->arena, st->order_id, &o);
    if (tx->db_rc != JT_DB_OK) {
        return JT_TX_DBERR;
    }
    if (!o.found) {
        tx->db_rc = JT_DB_ERROR;
        return JT_TX_DBERR;
    }
    if (st->foreign && o.status != JT_ORDER_PAYMENT_PENDING) {
        st->outcome = SETTLE_KNOWN;   /* not ours, and nothing of ours waits for it: left alone */
        return JT_TX_COMMIT;
    }
    if (o.status == JT_ORDER_PAYMENT_PENDING && !st->foreign && p->amount == o.amount) {
        st->outcome = SETTLE_CAPTURED;
        if ((s = order_move(tx, st->order_id, o.version, o.status, JT_ORDER_PAID, JT_BY_SERVER)) != JT_TX_COMMIT
            || (s = card_done(tx, &o, st->order_id, NULL)) != JT_TX_COMMIT
            || (s = gp_insert(tx, st, "CAPTURED", NULL, -1)) != JT_TX_COMMIT) {
            return s;
        }
        return outbox(tx, "order.paid", st->order_id, "{\"orderId\":%lld,\"total\":%lld}", (long long) st->order_id,
                      (long long) o.total);
    }
    if (o.status == JT_ORDER_PAYMENT_PENDING) {
        st->outcome = SETTLE_MISMATCH;
        st->refund = 1;
        if ((s = order_move(tx, st->order_id, o.version, o.status, JT_ORDER_PAYMENT_FAILED, JT_BY_SERVER))
                != JT_TX_COMMIT
            || (s = card_done(tx, &o, st->order_id, "PAYMENT_AMOUNT_MISMATCH")) != JT_TX_COMMIT
            || (s = stock_give_back(tx, st->lines)) != JT_TX_COMMIT
            || (s = gp_insert(tx, st, "REFUND_DUE", "PAYMENT_AMOUNT_MISMATCH", claim)) != JT_TX_COMMIT) {
            return s;
        }
        return outbox(tx, "order.payment_failed", st->order_id, "{\"orderId\":%lld,\"paid\":%lld}",
                      (long long) st->order_id, (long long) p->amount);
    }
    if (o.status == JT_ORDER_PAYMENT_EXPIRED && !st->foreign && p->amount == o.amount) {
        if ((s = stock_take_again(tx, st->lines, &is_short)) != JT_TX_COMMIT) {
            return s;
        }
        if (!is_short) {
            st->outcome = SETTLE_LATE_SOLD;
            if ((s = order_move(tx, st->order_id, o.version, o.status, JT_ORDER_PAID, JT_BY_SERVER)) != JT_TX_COMMIT
                || (s = card_done(tx, &o, st->order_id, NULL)) != JT_TX_COMMIT
                || (s = gp_insert(tx, st, "CAPTURED", NULL, -1)) != JT_TX_COMMIT) {
                return s;
            }
            return outbox(tx, "order.paid", st->order_id, "{\"orderId\":%lld,\"total\":%lld}",
                          (long long) st->order_id, (long long) o.total);
        }
        st->outcome = SETTLE_LATE_SHORT;
        st->refund = 1;
        if ((s = order_move(tx, st->order_id, o.version, o.status, JT_ORDER_OUT_OF_STOCK, JT_BY_SERVER))
                != JT_TX_COMMIT
            || (s = card_done(tx, &o, st->order_id, "OUT_OF_STOCK")) != JT_TX_COMMIT
            || (s = gp_insert(tx, st, "REFUND_DUE", "OUT_OF_STOCK", claim)) != JT_TX_COMMIT) {
            return s;
        }
        return outbox(tx, "order.out_of_stock", st->order_id, "{\"orderId\":%lld,\"paid\":%lld}",
                      (long long) st->order_id, (long long) p->amount);
    }
    /* a second payment of a paid order, or one for an order that will not
     * be paid any more: it goes back, the order stays as it is */
    st->outcome = SETTLE_STRAY;
    st->refund = 1;
    return gp_insert(tx, st, "REFUND_DUE", "PAYMENT_NOT_PENDING", claim);
}

/* ---------------------------------------------------------------- R: refunding */

typedef struct {
    pay_env         *e;
    const char      *imp_uid;
    int64_t          cancelled;   /* what the gateway says is refunded of it in all */
    int64_t          checksum;    /* the refundable amount we asked with */
    const pay_lines *lines;
    int              done;        /* out: recorded REFUNDED */
    int              completed;   /* out: the order's cancel completed */
} refund_tx;

/* Records what the gateway refunded; once nothing of a CANCEL_PENDING
 * order is due any more, it is CANCELLED and its units go back. */
static jt_tx_step
refund_body(jt_tx *tx)
{
    refund_tx *rf = tx->data;
    jt_sql_time_buf due;
    jt_val v[5] = { JT_VS(rf->imp_uid) };
    jt_rows rows;
    int64_t amount, refunded, order_id, version;
    const char *reason;
    card_order o;
    jt_tx_step s;

    rf->done = rf->completed = 0;
    JT_TX_EXEC(tx, SQL_GP_GET, v, 1, &rows);
    if (rows.nrows != 1 || strcmp(jt_cell(&rows, 0, G_STATE)->s, "REFUND_DUE") != 0) {
        return JT_TX_COMMIT;   /* recorded by another actor */
    }
    amount = jt_cell(&rows, 0, G_AMOUNT)->i;
    refunded = jt_cell(&rows, 0, G_REFUNDED)->i;
    order_id = jt_cell(&rows, 0, G_ORDER)->i;
    version = jt_cell(&rows, 0, G_VERSION)->i;
    reason = jt_pstrdup(tx->arena, jt_cell(&rows, 0, G_REASON)->s);
    if (rf->cancelled <= refunded) {
        return JT_TX_COMMIT;   /* nothing new */
    }
    if (rf->cancelled > amount) {
        rf->cancelled = amount;
    }
    v[0] = JT_VI(rf->cancelled);
    v[1] = JT_VS(rf->cancelled == amount ? "REFUNDED" : "REFUND_DUE");
    v[2] = rf->cancelled == amount ? JT_VNULL : due_in(&due, 0);
    v[3] = JT_VS(rf->imp_uid);
    v[4] = JT_VI(version);
    JT_TX_EXEC(tx, SQL_GP_REFUNDED, v, 5, &rows);
    if (rows.affected != 1) {
        return JT_TX_CONFLICT;
    }
    v[0] = JT_VS(rf->imp_uid);
    v[1] = JT_VI(order_id);
    v[2] = JT_VI(rf->cancelled - refunded);
    v[3] = JT_VI(rf->checksum > 0 ? rf->checksum : amount - refunded);
    v[4] = JT_VS(reason[0] ? reason : "REFUND");
    JT_TX_EXEC(tx, SQL_REFUND_RECORD, v, 5, &rows);
    rf->done = rf->cancelled == amount;

    tx->db_rc = read_card_order(tx->db, tx->arena, order_id, &o);
    if (tx->db_rc != JT_DB_OK) {
        return JT_TX_DBERR;
    }
    if (o.found && o.status == JT_ORDER_CANCEL_PENDING) {
        v[0] = JT_VI(order_id);
        JT_TX_EXEC(tx, SQL_GP_DUE_OF_ORDER, v, 1, &rows);
        if (jt_val_int(jt_cell(&rows, 0, 0)) == 0) {
            if ((s = order_move(tx, order_id, o.version, o.status, JT_ORDER_CANCELLED, JT_BY_SWEEPER)) != JT_TX_COMMIT
                || (s = stock_give_back(tx, rf->lines)) != JT_TX_COMMIT
                || (s = outbox(tx, "order.cancelled", order_id, "{\"orderId\":%lld,\"refund\":%lld}",
                               (long long) order_id, (long long) o.total)) != JT_TX_COMMIT) {
                return s;
            }
            rf->completed = 1;
        }
    }
    return JT_TX_COMMIT;
}

/* A sweeper's claim on a due row: its due_at moves sweep_claim_ms ahead,
 * fenced by the version it listed, so of several sweepers one wins. */
typedef struct {
    const char *sql;       /* SQL_CARD_CLAIM or SQL_GP_CLAIM: due_at, key, version */
    jt_val      key;
    int64_t     version;
    int64_t     claim_ms;
    int         won;
} claim_tx;

static jt_tx_step
claim_body(jt_tx *tx)
{
    claim_tx *c = tx->data;
    jt_sql_time_buf due;
    jt_val v[3] = { due_in(&due, c->claim_ms), c->key, JT_VI(c->version) };
    jt_rows rows;

    JT_TX_EXEC(tx, c->sql, v, 3, &rows);
    c->won = rows.affected == 1;
    return JT_TX_COMMIT;
}

static int
claim(pay_env *e, const char *sql, jt_val key, int64_t version)
{
    claim_tx c = { sql, key, version, e->conf->pg_sweep_claim_ms, 0 };

    return jt_tx_run(e->db, e->a, &e->pol, claim_body, &c) == JT_TX_OK && c.won;
}

/* Refunds what is still refundable of one REFUND_DUE payment, then records
 * it (R). The cancel carries checksum = the refundable amount: if an
 * earlier attempt refunded and died before R, the gateway refuses this one
 * (nothing is refundable any more) and a lookup shows the refund, which R
 * then records. Anything else leaves the row due for the sweeper. */
static jt_err
refund_one(pay_env *e, const char *imp_uid, int *completed)
{
    jt_val v[1] = { JT_VS(imp_uid) };
    jt_pg_payment p;
    jt_pg_result res;
    jt_rows rows;
    pay_lines ls;
    refund_tx rf;
    pay_refusal f;
    const char **keys;
    int64_t amount, refunded, order_id, refundable;
    const char *reason;
    jt_err x;
    int n;

    if (completed != NULL) {
        *completed = 0;
    }
    if (jt_db_exec(e->db, e->a, SQL_GP_GET, v, 1, &rows) != JT_DB_OK) {
        return JT_E_DATABASE_UNAVAILABLE;
    }
    if (rows.nrows != 1 || strcmp(jt_cell(&rows, 0, G_STATE)->s, "REFUND_DUE") != 0) {
        return JT_OK;
    }
    amount = jt_cell(&rows, 0, G_AMOUNT)->i;
    refunded = jt_cell(&rows, 0, G_REFUNDED)->i;
    order_id = jt_cell(&rows, 0, G_ORDER)->i;
    reason = jt_pstrdup(e->a, jt_cell(&rows, 0, G_REASON)->s);
    refundable = amount - refunded;

    jt_pg_cancel(e->pg, imp_uid, refundable, refundable, reason[0] ? reason : "jangteo refund", &p, &res);
    if (res.rc == JT_PG_REFUSED || res.rc == JT_PG_NOT_FOUND) {
        /* refused: perhaps because it is refunded already */
        char why[sizeof(res.message)];
        memcpy(why, res.message, sizeof(why));
        if (jt_pg_lookup(e->pg, imp_uid, &p, &res) == JT_PG_OK && p.cancel_amount > refunded) {
            res.rc = JT_PG_OK;
        } else {
            jt_log_warn("payments: refund of %s (order %lld) refused: %s", imp_uid, (long long) order_id, why);
            res.rc = JT_PG_REFUSED;
        }
    }
    if (res.rc != JT_PG_OK) {
        JT_METRIC_INC(card_refunds_failed);
        if (e->r != NULL && res.rejected) {
            e->r->retry_after_s = (int) ((res.retry_after_ms + 999) / 1000);
        }
        return res.rc == JT_PG_REFUSED ? JT_E_PAYMENT_GATEWAY_REFUSED : JT_E_PAYMENT_GATEWAY_UNAVAILABLE;
    }
    if (load_lines(e, order_id, &ls) != JT_DB_OK) {
        return JT_E_DATABASE_UNAVAILABLE;
    }
    if ((keys = lock_keys(e->a, order_id, &ls, &n)) == NULL) {
        return JT_E_INTERNAL;
    }
    memset(&rf, 0, sizeof(rf));
    rf.e = e;
    rf.imp_uid = imp_uid;
    rf.cancelled = p.cancel_amount > 0 ? p.cancel_amount : (p.status == JT_PG_CANCELLED ? amount : 0);
    rf.checksum = refundable;
    rf.lines = &ls;
    x = pay_tx(e, keys, n, refund_body, &rf, &f, PAY_STEP);
    if (x == JT_OK && rf.done) {
        JT_METRIC_INC(card_refunds);
    }
    if (completed != NULL) {
        *completed = x == JT_OK && rf.completed;
    }
    return x;
}

/* ---------------------------------------------------------------- the steps around a payment */

/* The order a merchant uid belongs to, or 0. */
static jt_db_rc
order_of_merchant(pay_env *e, const char *merchant_uid, int64_t *order_id)
{
    jt_val v[1] = { JT_VS(merchant_uid) };
    jt_rows rows;
    jt_db_rc rc = jt_db_exec(e->db, e->a, SQL_ORDER_OF_MERCHANT, v, 1, &rows);

    *order_id = rc == JT_DB_OK && rows.nrows == 1 ? jt_cell(&rows, 0, 0)->i : 0;
    return rc;
}

/* S, then the refund it made due (at once; the sweeper's later if the
 * gateway will not now). p is paid; `asked` is the order a verify named
 * (0 for the webhook and the sweeper, which go by p's merchant uid). An
 * imp_uid of another of our orders pays that order, never this one: the
 * order that was given it fails, and the payment is left to its own. */
static jt_err
settle(pay_env *e, const jt_pg_payment *p, int64_t asked, settle_outcome *outcome)
{
    pay_lines ls;
    settle_tx st;
    pay_refusal f;
    const char **keys;
    int64_t owner;
    jt_err x;
    int n;

    *outcome = SETTLE_KNOWN;
    if (order_of_merchant(e, p->merchant_uid, &owner) != JT_DB_OK) {
        return JT_E_DATABASE_UNAVAILABLE;
    }
    if (asked != 0 && owner != 0 && owner != asked) {
        *outcome = SETTLE_MISMATCH;
        return release(e, asked, JT_ORDER_PAYMENT_FAILED, JT_BY_SERVER, "PAYMENT_AMOUNT_MISMATCH", NULL);
    }
    if (owner == 0 && asked == 0) {
        return JT_OK;   /* not a merchant uid of ours: not ours to touch */
    }
    memset(&st, 0, sizeof(st));
    st.e = e;
    st.p = p;
    st.order_id = owner != 0 ? owner : asked;
    st.foreign = owner == 0;
    st.lines = &ls;
    if (load_lines(e, st.order_id, &ls) != JT_DB_OK) {
        return JT_E_DATABASE_UNAVAILABLE;
    }
    if ((keys = lock_keys(e->a, st.order_id, &ls, &n)) == NULL) {
        return JT_E_INTERNAL;
    }
    if ((x = pay_tx(e, keys, n, settle_body, &st, &f, PAY_STEP)) != JT_OK) {
        return x;
    }
    *outcome = st.outcome;
    switch (st.outcome) {
    case SETTLE_CAPTURED:
    case SETTLE_LATE_SOLD:
        JT_METRIC_INC(card_paid);
        break;
    case SETTLE_MISMATCH:
        JT_METRIC_INC(card_failed);
        break;
    case SETTLE_LATE_SHORT:
        JT_METRIC_INC(card_late_out_of_stock);
        break;
    default:
        break;
    }
    if (st.refund) {
        (void) refund_one(e, p->imp_uid, NULL);   /* else the sweeper's, after the claim */
    }
    return JT_OK;
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
                   res->rejected ? "the payment gateway is failing; its circuit breaker is open"
                                 : "the payment gateway did not answer");
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
                   "the payment gateway is failing; its circuit breaker is open (card payments only)");
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
    tx->db_rc = read_card_order(tx->db, tx->arena, at->order_id, &o);
    if (tx->db_rc != JT_DB_OK) {
        return JT_TX_DBERR;
    }
    if (!o.found) {
        return refuse(&at->f, JT_E_ORDER_NOT_FOUND, "no such order");
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
    if (at->kind == ANSWER_VERIFY && o.status != JT_ORDER_PAID) {
        if (o.status == JT_ORDER_OUT_OF_STOCK) {
            return refuse(&at->f, JT_E_OUT_OF_STOCK,
                          "paid after the hold ran out, and the stock is gone: the payment is refunded");
        }
        if (strcmp(o.failure, "PAYMENT_AMOUNT_MISMATCH") == 0) {
            return refuse(&at->f, JT_E_PAYMENT_AMOUNT_MISMATCH,
                          "the payment does not match the order: it is cancelled and the stock released");
        }
        if (o.status == JT_ORDER_PAYMENT_PENDING) {
            return refuse(&at->f, JT_E_PAYMENT_NOT_FOUND, "the gateway has no paid payment for this order yet");
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
    if ((e = jt_json_only(r, p, "payment", known)) != JT_OK
        || (e = jt_json_str(r, p, "method", JT_REQUIRED, 1, 16, &method)) != JT_OK) {
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
    env_of_request(&env, r, wr);
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
        (void) release(&env, t->order_id, JT_ORDER_PAYMENT_FAILED, JT_BY_SERVER,
                       res.rc == JT_PG_REFUSED ? "PAYMENT_GATEWAY_REFUSED" : "PAYMENT_GATEWAY_UNAVAILABLE", NULL);
        return gateway_failed(r, &res, "the order was not placed");
    }

    /* T2: the answer */
    if ((e = pay_tx(&env, NULL, 0, prepared_body, rt, &rt->f, PAY_FINAL)) != JT_OK || wr->replayed) {
        return e;
    }
    {
        char loc[64];
        snprintf(loc, sizeof(loc), "/api/v1/orders/%lld", (long long) t->order_id);
        jt_reply_header(r, "Location", loc);
    }
    jt_write_finish(r, wr);
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
    if ((rc = read_card_order(r->db, r->arena, id, o)) != JT_DB_OK) {
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
    int64_t id = jt_req_param_id(r, "orderId");
    const char *imp;
    jt_principal who;
    json_object *o;
    card_order co;
    jt_pg_payment p;
    jt_pg_result res;
    settle_outcome out;
    jt_val v[1];
    jt_rows rows;
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
    if ((e = jt_write_begin_for(r, &wr, who.user_id, o, JT_WRITE_KEY_REQUIRED, 3 * ((const jt_conf *) r->conf)->pg_deadline_ms))
            != JT_OK || wr->replayed) {
        return e;
    }
    if ((e = load_card_order(r, &who, id, &co)) != JT_OK) {
        return e;
    }
    env_of_request(&env, r, wr);

    /* a payment settled before needs no call: the answer is the state */
    v[0] = JT_VS(imp);
    if (jt_db_exec(r->db, r->arena, SQL_GP_GET, v, 1, &rows) != JT_DB_OK) {
        return jt_fail(r, JT_E_DATABASE_UNAVAILABLE, "the database is unavailable; retry later");
    }
    if (rows.nrows == 1 && jt_cell(&rows, 0, G_ORDER)->i == id) {
        if (strcmp(jt_cell(&rows, 0, G_STATE)->s, "REFUND_DUE") == 0) {
            (void) refund_one(&env, imp, NULL);
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
    if ((e = settle(&env, &p, id, &out)) != JT_OK) {
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
    if ((e = jt_write_begin_for(r, &wr, 0, NULL, JT_WRITE_KEY_IGNORED, 3 * ((const jt_conf *) r->conf)->pg_deadline_ms)) != JT_OK) {
        return e;
    }
    switch (jt_pg_lookup(r->pg, imp, &p, &res)) {
    case JT_PG_OK:
        break;
    case JT_PG_NOT_FOUND:
        p.status = JT_PG_STATUS_UNKNOWN;
        break;
    default:
        return gateway_failed(r, &res, "the payment could not be looked up");
    }
    env_of_request(&env, r, wr);
    order_id = 0;
    if (p.status == JT_PG_PAID) {
        if ((e = settle(&env, &p, 0, &out)) != JT_OK) {
            return e;
        }
        if (order_of_merchant(&env, p.merchant_uid, &order_id) != JT_DB_OK) {
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

    tx->db_rc = read_card_order(tx->db, tx->arena, ct->order_id, &o);
    if (tx->db_rc != JT_DB_OK) {
        return JT_TX_DBERR;
    }
    if (!o.found || o.status != JT_ORDER_PAID) {
        return refuse(&ct->f, JT_E_ORDER_NOT_CANCELLABLE, "only a PAID order can be cancelled");
    }
    JT_TX_EXEC(tx, SQL_GP_CAPTURED_OF, v, 1, &rows);
    if (rows.nrows != 1) {
        jt_log_error("payments: PAID card order %lld has %d captured payments", (long long) ct->order_id, rows.nrows);
        tx->db_rc = JT_DB_ERROR;
        return JT_TX_DBERR;
    }
    ct->imp_uid = jt_pstrdup(ct->e->a, jt_cell(&rows, 0, 0)->s);
    v[0] = JT_VS("CANCELLED");
    v[1] = due_in(&due, ct->e->conf->pg_sweep_claim_ms);
    v[2] = JT_VS(ct->imp_uid);
    v[3] = JT_VI(jt_cell(&rows, 0, 1)->i);
    JT_TX_EXEC(tx, SQL_GP_TO_REFUND, v, 4, &rows);
    if (rows.affected != 1) {
        return JT_TX_CONFLICT;
    }
    if ((s = order_move(tx, ct->order_id, o.version, o.status, JT_ORDER_CANCEL_PENDING, JT_BY_BUYER)) != JT_TX_COMMIT) {
        return s;
    }
    return outbox(tx, "order.cancel_pending", ct->order_id, "{\"orderId\":%lld,\"refund\":%lld}",
                  (long long) ct->order_id, (long long) o.total);
}

/* POST /api/v1/orders/{orderId}/cancel of a card order: K, then the
 * refund at the gateway and R (200, CANCELLED); if the gateway refuses or
 * is down the order waits in CANCEL_PENDING (202) and the sweeper finishes
 * it. A cancel of a CANCEL_PENDING order tries the refund again. */
jt_err
payments_cancel(jt_req *r, const jt_principal *who, int64_t order_id)
{
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
    if (co.status != JT_ORDER_PAID && co.status != JT_ORDER_CANCEL_PENDING) {
        return jt_fail(r, JT_E_ORDER_NOT_CANCELLABLE, "only a PAID order can be cancelled (this one is %s)",
                       jt_order_status_name(co.status));
    }
    if ((e = jt_write_begin_for(r, &wr, who->user_id, NULL, JT_WRITE_KEY_IGNORED, 2 * ((const jt_conf *) r->conf)->pg_deadline_ms))
        != JT_OK) {
        return e;
    }
    env_of_request(&env, r, wr);
    if (co.status == JT_ORDER_PAID) {
        if (load_lines(&env, order_id, &ls) != JT_DB_OK) {
            return jt_fail(r, JT_E_DATABASE_UNAVAILABLE, "the database is unavailable; retry later");
        }
        if ((keys = lock_keys(r->arena, order_id, &ls, &n)) == NULL) {
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
            (void) refund_one(&env, jt_cell(&rows, i, 0)->s, NULL);
        }
    }
    r->retry_after_s = 0;
    return answer(&env, order_id, ANSWER_CANCEL);
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

    env_of_request(&env, r, NULL);
    if ((rc = read_card_order(r->db, r->arena, order_id, &o)) != JT_DB_OK
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

/* ---------------------------------------------------------------- the sweeper */

typedef struct {
    int64_t order_id;
} recheck_tx;

/* An expired order's late look found no payment: nothing more to do. */
static jt_tx_step
recheck_done_body(jt_tx *tx)
{
    recheck_tx *rc = tx->data;
    card_order o;

    tx->db_rc = read_card_order(tx->db, tx->arena, rc->order_id, &o);
    if (tx->db_rc != JT_DB_OK) {
        return JT_TX_DBERR;
    }
    if (!o.found || o.status != JT_ORDER_PAYMENT_EXPIRED) {
        return JT_TX_COMMIT;
    }
    return card_done(tx, &o, rc->order_id, NULL);
}

/* A card order whose due_at has passed: PAYMENT_PENDING (its hold ran
 * out, or the request that placed it died) or PAYMENT_EXPIRED (the late
 * look). Claimed first, so one sweeper asks the gateway; then the payment
 * is found by merchant uid: paid -> S (which sells or refunds it), none ->
 * E for a pending order, done for an expired one. */
static int
sweep_order(pay_env *e, int64_t order_id, int64_t version)
{
    recheck_tx rc = { order_id };
    card_order o;
    jt_pg_payment p;
    jt_pg_result res;
    settle_outcome out;
    int moved = 0;

    if (!claim(e, SQL_CARD_CLAIM, JT_VI(order_id), version)) {
        return 0;
    }
    if (read_card_order(e->db, e->a, order_id, &o) != JT_DB_OK || !o.found
        || (o.status != JT_ORDER_PAYMENT_PENDING && o.status != JT_ORDER_PAYMENT_EXPIRED)) {
        return 0;
    }
    switch (jt_pg_find(e->pg, o.merchant_uid, &p, &res)) {
    case JT_PG_OK:
        if (p.status == JT_PG_PAID) {
            return settle(e, &p, 0, &out) == JT_OK && out != SETTLE_KNOWN;
        }
        break;
    case JT_PG_NOT_FOUND:
        break;
    default:
        /* the claim runs out and a later sweep asks again */
        jt_log_warn("payments: sweep: order %lld: %s", (long long) order_id, res.message);
        return 0;
    }
    if (o.status == JT_ORDER_PAYMENT_EXPIRED) {
        (void) jt_tx_run(e->db, e->a, &e->pol, recheck_done_body, &rc);
        return 0;
    }
    (void) release(e, order_id, JT_ORDER_PAYMENT_EXPIRED, JT_BY_SWEEPER, NULL, &moved);
    return moved;
}

int
payments_sweep(jt_pay_env *s)
{
    pay_env env, *e = &env;
    jt_sql_time_buf now;
    jt_val v[4];
    jt_rows rows;
    int i, moved = 0;

    env_of_sweeper(e, s);
    if (!jt_pg_configured(e->pg)) {
        return 0;
    }
    JT_METRIC_INC(sweeps);
    v[0] = jt_sql_now(&now);
    v[1] = JT_VS(jt_order_status_name(JT_ORDER_PAYMENT_PENDING));
    v[2] = JT_VS(jt_order_status_name(JT_ORDER_PAYMENT_EXPIRED));
    v[3] = JT_VI(e->conf->pg_sweep_batch);
    if (jt_db_exec(e->db, e->a, SQL_DUE_ORDERS, v, 4, &rows) == JT_DB_OK) {
        for (i = 0; i < rows.nrows && jt_pg_refusing(e->pg, 0) == 0; i++) {
            moved += sweep_order(e, jt_cell(&rows, i, 0)->i, jt_cell(&rows, i, 1)->i);
        }
    }
    v[0] = jt_sql_now(&now);
    v[1] = JT_VI(e->conf->pg_sweep_batch);
    if (jt_db_exec(e->db, e->a, SQL_DUE_REFUNDS, v, 2, &rows) == JT_DB_OK) {
        for (i = 0; i < rows.nrows && jt_pg_refusing(e->pg, 0) == 0; i++) {
            const char *imp = jt_cell(&rows, i, 0)->s;
            if (claim(e, SQL_GP_CLAIM, JT_VS(imp), jt_cell(&rows, i, 1)->i) && refund_one(e, imp, NULL) == JT_OK) {
                moved++;
            }
        }
    }
    return moved;
}

/* ---------------------------------------------------------------- the audit against the gateway */

int
payments_audit_gateway(jt_pay_env *s, int64_t max, int64_t *checked, int64_t *violations, jt_buf *samples)
{
    jt_val v[1] = { JT_VI(max) };
    jt_rows rows;
    int i, nsamples = 0;

    *checked = *violations = 0;
    if (!jt_pg_configured(s->pg) || jt_db_exec(s->db, s->arena, SQL_AUDIT_ORDERS, v, 1, &rows) != JT_DB_OK) {
        return -1;
    }
    for (i = 0; i < rows.nrows; i++) {
        jt_order_status st = jt_order_status_of(jt_cell(&rows, i, 1)->s);
        int64_t total = jt_cell(&rows, i, 2)->i;
        const jt_val *captured = jt_cell(&rows, i, 4);
        jt_pg_payment p;
        jt_pg_result res;
        int bad;

        if (st == JT_ORDER_PAYMENT_PENDING || st == JT_ORDER_CANCEL_PENDING) {
            continue;   /* on its way: the sweeper settles it */
        }
        (*checked)++;
        switch (jt_pg_find(s->pg, jt_cell(&rows, i, 3)->s, &p, &res)) {
        case JT_PG_OK:
            break;
        case JT_PG_NOT_FOUND:
            p.status = JT_PG_STATUS_UNKNOWN;
            break;
        default:
            return -1;   /* the gateway cannot be asked: no verdict */
        }
        if (st == JT_ORDER_PAID) {
            /* exactly its one payment, its total, nothing refunded */
            bad = p.status != JT_PG_PAID || p.amount != total || p.cancel_amount != 0 || captured->type == JT_V_NULL
                  || strcmp(captured->s, p.imp_uid) != 0;
        } else {
            /* refunded, or never paid */
            bad = p.status == JT_PG_PAID;
        }
        if (bad) {
            (*violations)++;
            if (nsamples++ < 5) {
                jt_buf_addf(samples, "%s%lld", nsamples > 1 ? "," : "", (long long) jt_cell(&rows, i, 0)->i);
            }
        }
    }
    return 0;
}
