/* The moves of a card order (payments.h: T3 and E release a reservation,
 * S settles a paid payment, R records a refund) and the gateway calls
 * between them, shared by the routes (payments.c) and the sweeper
 * (payment_sweep.c): each body runs in the request's write path or in the
 * sweeper's own transactions alike (pay_tx). */
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
static const char SQL_ORDER_MOVE[] =
    "UPDATE orders SET status = ?, version = version + 1 WHERE id = ? AND version = ? AND status = ?";
static const char SQL_EVENT_INSERT[] =
    "INSERT INTO order_events (order_id, from_status, to_status, at, actor, actor_id) VALUES (?, ?, ?, ?, ?, ?)";
static const char SQL_ORDER_MOVE_PAID[] =
    "UPDATE orders SET status = ?, paid_at = ?, version = version + 1 WHERE id = ? AND version = ? AND status = ?";
static const char SQL_ORDER_MOVE_CANCELLED[] =
    "UPDATE orders SET status = ?, cancelled_at = NOW(6), version = version + 1"
    " WHERE id = ? AND version = ? AND status = ?";
/* the order has left PAYMENT_PENDING: nothing more for the sweeper, or
 * (an expired hold) one more look for a late payment at due_at */
static const char SQL_CARD_DONE[] =
    "UPDATE card_payments SET due_at = ?, failure_code = ?, version = version + 1"
    " WHERE order_id = ? AND version = ?";
static const char SQL_GP_GET[] =
    "SELECT state, amount, refunded, order_id, version, COALESCE(reason, '') FROM gateway_payments WHERE imp_uid = ?";
enum { G_STATE, G_AMOUNT, G_REFUNDED, G_ORDER, G_VERSION, G_REASON };
static const char SQL_GP_INSERT[] =
    "INSERT INTO gateway_payments (imp_uid, order_id, merchant_uid, amount, state, reason, card_name, paid_at, due_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
static const char SQL_GP_REFUNDED[] =
    "UPDATE gateway_payments SET refunded = ?, state = ?, due_at = ?, version = version + 1"
    " WHERE imp_uid = ? AND version = ? AND state = 'REFUND_DUE'";
static const char SQL_REFUND_RECORD[] =
    "INSERT INTO card_refunds (imp_uid, order_id, amount, checksum, reason) VALUES (?, ?, ?, ?, ?)"
    " ON DUPLICATE KEY UPDATE id = id";
static const char SQL_GP_DUE_OF_ORDER[] =
    "SELECT COUNT(*) FROM gateway_payments WHERE order_id = ? AND state = 'REFUND_DUE'";

/* ---------------------------------------------------------------- where transactions run */

void
pay_env_of_request(pay_env *e, jt_req *r, jt_write *w)
{
    memset(e, 0, sizeof(*e));
    e->conf = r->conf;
    e->db = r->db;
    e->redis = r->redis;
    e->pg = r->pg;
    e->a = r->arena;
    e->r = r;
    e->w = w;
    e->by = JT_BY_BUYER;
}

void
pay_env_of_sweeper(pay_env *e, const jt_pay_env *s)
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

jt_tx_step
pay_refuse(pay_refusal *f, jt_err code, const char *detail)
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

jt_db_rc
pay_load_lines(pay_env *e, int64_t order_id, pay_lines *out)
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
const char **
pay_lock_keys(jt_arena *a, int64_t order_id, const pay_lines *ls, int *n)
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

/* Runs body in one transaction under the locks: through the request's
 * write path (PAY_FINAL commits the request's answer; a PAY_STEP commits
 * without it and lets the locks go at once), or in the sweeper with its own
 * lock set. A refusal comes back as f->code, answered (requests) or not. */
jt_err
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

jt_db_rc
pay_read_card_order(jt_db *db, jt_arena *a, int64_t id, card_order *o)
{
    jt_val p[1] = { JT_VI(id) };
    jt_rows rows;
    jt_db_rc rc = jt_db_exec(db, a, SQL_CARD_ORDER, p, 1, &rows);

    if (rc == JT_DB_OK) {
        card_order_of(&rows, o);
    }
    return rc;
}

/* Moves an order from -> to, fenced by its version, and records the move
 * in its history (order_events, as every lifecycle move is: the audit
 * holds each order's status to its last row); a move that is not in the
 * status table is a bug (rolled back, logged). Entering PAID stamps
 * paid_at (business time): the lifecycle's scheduler counts from it. */
jt_tx_step
pay_order_move(jt_tx *tx, int64_t id, int64_t version, jt_order_status from, jt_order_status to, jt_order_actor by,
               int64_t actor_id)
{
    int64_t now_us = jt_clock_now_us();
    jt_sql_time_buf now;
    jt_val p[6];
    jt_rows rows;
    int k = 0;

    if (!jt_order_may(from, to, by)) {
        jt_log_error("payments: order %lld: %s -> %s is not a move (a bug); rolled back", (long long) id,
                     jt_order_status_name(from), jt_order_status_name(to));
        tx->db_rc = JT_DB_ERROR;
        return JT_TX_DBERR;
    }
    p[k++] = JT_VS(jt_order_status_name(to));
    if (to == JT_ORDER_PAID) {
        p[k++] = jt_sql_time(&now, now_us);
    }
    p[k++] = JT_VI(id);
    p[k++] = JT_VI(version);
    p[k++] = JT_VS(jt_order_status_name(from));
    JT_TX_EXEC(tx, to == JT_ORDER_CANCELLED ? SQL_ORDER_MOVE_CANCELLED
                   : to == JT_ORDER_PAID    ? SQL_ORDER_MOVE_PAID
                                            : SQL_ORDER_MOVE, p, k, &rows);
    if (rows.affected != 1) {
        return JT_TX_CONFLICT;
    }
    p[0] = JT_VI(id);
    p[1] = JT_VS(jt_order_status_name(from));
    p[2] = JT_VS(jt_order_status_name(to));
    p[3] = jt_sql_time(&now, now_us);
    p[4] = JT_VS(by == JT_BY_BUYER ? "BUYER" : by == JT_BY_ADMIN ? "ADMIN" : by == JT_BY_SWEEPER ? "SWEEPER" : "PAYMENT");
    p[5] = actor_id > 0 ? JT_VI(actor_id) : JT_VNULL;
    JT_TX_EXEC(tx, SQL_EVENT_INSERT, p, 6, &rows);
    return JT_TX_COMMIT;
}

jt_tx_step
pay_outbox(jt_tx *tx, const char *topic, int64_t order_id, const char *fmt, long long a, long long b)
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
pay_card_done_at(jt_tx *tx, const card_order *o, int64_t order_id, const char *failure, int64_t recheck_ms)
{
    jt_sql_time_buf due;
    jt_val p[4] = { recheck_ms >= 0 ? pay_due_in(&due, recheck_ms) : JT_VNULL, failure ? JT_VS(failure) : JT_VNULL,
                    JT_VI(order_id), JT_VI(o->card_version) };
    jt_rows rows;

    JT_TX_EXEC(tx, SQL_CARD_DONE, p, 4, &rows);
    return rows.affected == 1 ? JT_TX_COMMIT : JT_TX_CONFLICT;
}

jt_tx_step
pay_card_done(jt_tx *tx, const card_order *o, int64_t order_id, const char *failure)
{
    return pay_card_done_at(tx, o, order_id, failure, -1);
}

/* Writes one stock row, fenced by the version read (and, for an option
 * priced at its product's version, by that: pversion >= 0). */
jt_tx_step
pay_stock_set(jt_tx *tx, int64_t product_id, int64_t option_id, int64_t stock, int64_t version, int64_t pversion)
{
    jt_val p[4] = { JT_VI(stock), JT_VI(option_id ? option_id : product_id), JT_VI(version), JT_VI(pversion) };
    jt_rows rows;

    const char *sql = !option_id ? SQL_PRODUCT_STOCK_WRITE : pversion >= 0 ? SQL_TAKE_OPTION_WRITE : SQL_OPTION_STOCK_WRITE;

    JT_TX_EXEC(tx, sql, p, option_id && pversion >= 0 ? 4 : 3, &rows);
    return rows.affected == 1 ? JT_TX_COMMIT : JT_TX_CONFLICT;
}

/* Moves every line's units: back (dir +1) to each row still there, or
 * out again (dir -1) from live rows only, all or none: *is_short when one
 * has too few, and then nothing is written. Each write is fenced by the
 * version read. */
static jt_tx_step
stock_move(jt_tx *tx, const pay_lines *ls, int dir, int *is_short)
{
    int64_t stock[JT_ORDER_MAX_ITEMS], version[JT_ORDER_MAX_ITEMS];
    int there[JT_ORDER_MAX_ITEMS];
    jt_val p[1];
    jt_rows rows;
    jt_tx_step s;
    int i;

    *is_short = 0;
    for (i = 0; i < ls->n; i++) {
        const pay_line *l = &ls->l[i];
        p[0] = JT_VI(l->option_id ? l->option_id : l->product_id);
        JT_TX_EXEC(tx, dir > 0 ? (l->option_id ? SQL_ANY_OPTION : SQL_ANY_PRODUCT)
                               : (l->option_id ? SQL_LIVE_OPTION : SQL_LIVE_PRODUCT), p, 1, &rows);
        there[i] = rows.nrows != 0;
        if (dir < 0 && (!there[i] || jt_cell(&rows, 0, 0)->i < l->quantity)) {
            *is_short = 1;
            return JT_TX_COMMIT;
        }
        stock[i] = there[i] ? jt_cell(&rows, 0, 0)->i : 0;
        version[i] = there[i] ? jt_cell(&rows, 0, 1)->i : 0;
    }
    for (i = 0; i < ls->n; i++) {
        const pay_line *l = &ls->l[i];
        if (there[i]
            && (s = pay_stock_set(tx, l->product_id, l->option_id, stock[i] + dir * l->quantity, version[i], -1))
                   != JT_TX_COMMIT) {
            return s;
        }
    }
    return JT_TX_COMMIT;
}

static jt_tx_step
stock_give_back(jt_tx *tx, const pay_lines *ls)
{
    int unused;
    return stock_move(tx, ls, +1, &unused);
}

jt_pg_rc
pay_found(jt_pg_rc rc, jt_pg_payment *p)
{
    if (rc == JT_PG_NOT_FOUND) {
        memset(p, 0, sizeof(*p));
        p->status = JT_PG_STATUS_UNKNOWN;
        return JT_PG_OK;
    }
    return rc;
}

jt_db_rc
pay_read_gp(jt_db *db, jt_arena *a, const char *imp_uid, gp_row *g)
{
    jt_val v[1] = { JT_VS(imp_uid) };
    jt_rows rows;
    jt_db_rc rc = jt_db_exec(db, a, SQL_GP_GET, v, 1, &rows);

    memset(g, 0, sizeof(*g));
    if (rc == JT_DB_OK && rows.nrows == 1) {
        g->found = 1;
        g->refund_due = strcmp(jt_cell(&rows, 0, G_STATE)->s, "REFUND_DUE") == 0;
        g->amount = jt_cell(&rows, 0, G_AMOUNT)->i;
        g->refunded = jt_cell(&rows, 0, G_REFUNDED)->i;
        g->order_id = jt_cell(&rows, 0, G_ORDER)->i;
        g->version = jt_cell(&rows, 0, G_VERSION)->i;
        g->reason = jt_cell(&rows, 0, G_REASON)->s;
    }
    return rc;
}

/* Due for the sweeper `ms` from now, in business time. */
jt_val
pay_due_in(jt_sql_time_buf *b, int64_t ms)
{
    return jt_sql_time(b, jt_clock_now_us() + ms * 1000);
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
    tx->db_rc = pay_read_card_order(tx->db, tx->arena, rl->order_id, &o);
    if (tx->db_rc != JT_DB_OK) {
        return JT_TX_DBERR;
    }
    if (!o.found || o.status != JT_ORDER_PAYMENT_PENDING) {
        return JT_TX_COMMIT;
    }
    if ((s = pay_order_move(tx, rl->order_id, o.version, o.status, rl->to, rl->by, 0)) != JT_TX_COMMIT
        || (s = pay_card_done_at(tx, &o, rl->order_id, rl->failure,
                             rl->to == JT_ORDER_PAYMENT_EXPIRED ? rl->e->conf->pg_hold_seconds * 1000 : -1))
               != JT_TX_COMMIT
        || (s = stock_give_back(tx, rl->lines)) != JT_TX_COMMIT
        || (s = pay_outbox(tx, rl->to == JT_ORDER_PAYMENT_EXPIRED ? "order.payment_expired" : "order.payment_failed",
                       rl->order_id, "{\"orderId\":%lld,\"total\":%lld}", (long long) rl->order_id,
                       (long long) o.total)) != JT_TX_COMMIT) {
        return s;
    }
    rl->moved = 1;
    return JT_TX_COMMIT;
}

jt_err
pay_release(pay_env *e, int64_t order_id, jt_order_status to, jt_order_actor by, const char *failure, int *moved)
{
    pay_lines ls;
    release_tx rl = { e, order_id, &ls, to, by, failure, 0 };
    pay_refusal f;
    const char **keys;
    jt_err x;
    int n;

    if (pay_load_lines(e, order_id, &ls) != JT_DB_OK) {
        return JT_E_DATABASE_UNAVAILABLE;
    }
    if ((keys = pay_lock_keys(e->a, order_id, &ls, &n)) == NULL) {
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
    v[8] = due_ms >= 0 ? pay_due_in(&due, due_ms) : JT_VNULL;
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
    card_order o;
    gp_row g;
    jt_tx_step s;
    int is_short;

    st->refund = 0;
    if ((tx->db_rc = pay_read_gp(tx->db, tx->arena, p->imp_uid, &g)) != JT_DB_OK) {
        return JT_TX_DBERR;
    }
    if (g.found) {
        st->outcome = SETTLE_KNOWN;
        st->refund = g.refund_due;
        return JT_TX_COMMIT;
    }
    tx->db_rc = pay_read_card_order(tx->db, tx->arena, st->order_id, &o);
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
        if ((s = pay_order_move(tx, st->order_id, o.version, o.status, JT_ORDER_PAID, JT_BY_SERVER, 0)) != JT_TX_COMMIT
            || (s = pay_card_done(tx, &o, st->order_id, NULL)) != JT_TX_COMMIT
            || (s = gp_insert(tx, st, "CAPTURED", NULL, -1)) != JT_TX_COMMIT) {
            return s;
        }
        return pay_outbox(tx, "order.paid", st->order_id, "{\"orderId\":%lld,\"total\":%lld}", (long long) st->order_id,
                      (long long) o.total);
    }
    if (o.status == JT_ORDER_PAYMENT_PENDING) {
        st->outcome = SETTLE_MISMATCH;
        st->refund = 1;
        if ((s = pay_order_move(tx, st->order_id, o.version, o.status, JT_ORDER_PAYMENT_FAILED, JT_BY_SERVER, 0))
                != JT_TX_COMMIT
            || (s = pay_card_done(tx, &o, st->order_id, "PAYMENT_AMOUNT_MISMATCH")) != JT_TX_COMMIT
            || (s = stock_give_back(tx, st->lines)) != JT_TX_COMMIT
            || (s = gp_insert(tx, st, "REFUND_DUE", "PAYMENT_AMOUNT_MISMATCH", claim)) != JT_TX_COMMIT) {
            return s;
        }
        return pay_outbox(tx, "order.payment_failed", st->order_id, "{\"orderId\":%lld,\"paid\":%lld}",
                      (long long) st->order_id, (long long) p->amount);
    }
    if (o.status == JT_ORDER_PAYMENT_EXPIRED && !st->foreign && p->amount == o.amount) {
        if ((s = stock_move(tx, st->lines, -1, &is_short)) != JT_TX_COMMIT) {
            return s;
        }
        if (!is_short) {
            st->outcome = SETTLE_LATE_SOLD;
            if ((s = pay_order_move(tx, st->order_id, o.version, o.status, JT_ORDER_PAID, JT_BY_SERVER, 0)) != JT_TX_COMMIT
                || (s = pay_card_done(tx, &o, st->order_id, NULL)) != JT_TX_COMMIT
                || (s = gp_insert(tx, st, "CAPTURED", NULL, -1)) != JT_TX_COMMIT) {
                return s;
            }
            return pay_outbox(tx, "order.paid", st->order_id, "{\"orderId\":%lld,\"total\":%lld}",
                          (long long) st->order_id, (long long) o.total);
        }
        st->outcome = SETTLE_LATE_SHORT;
        st->refund = 1;
        if ((s = pay_order_move(tx, st->order_id, o.version, o.status, JT_ORDER_OUT_OF_STOCK, JT_BY_SERVER, 0))
                != JT_TX_COMMIT
            || (s = pay_card_done(tx, &o, st->order_id, "OUT_OF_STOCK")) != JT_TX_COMMIT
            || (s = gp_insert(tx, st, "REFUND_DUE", "OUT_OF_STOCK", claim)) != JT_TX_COMMIT) {
            return s;
        }
        return pay_outbox(tx, "order.out_of_stock", st->order_id, "{\"orderId\":%lld,\"paid\":%lld}",
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
    jt_val v[5];
    jt_rows rows;
    int64_t amount, refunded, order_id, version;
    const char *reason;
    card_order o;
    jt_tx_step s;
    gp_row g;

    rf->done = rf->completed = 0;
    if ((tx->db_rc = pay_read_gp(tx->db, tx->arena, rf->imp_uid, &g)) != JT_DB_OK) {
        return JT_TX_DBERR;
    }
    if (!g.found || !g.refund_due) {
        return JT_TX_COMMIT;   /* recorded by another actor */
    }
    amount = g.amount;
    refunded = g.refunded;
    order_id = g.order_id;
    version = g.version;
    reason = g.reason;
    if (rf->cancelled <= refunded) {
        return JT_TX_COMMIT;   /* nothing new */
    }
    if (rf->cancelled > amount) {
        rf->cancelled = amount;
    }
    v[0] = JT_VI(rf->cancelled);
    v[1] = JT_VS(rf->cancelled == amount ? "REFUNDED" : "REFUND_DUE");
    v[2] = rf->cancelled == amount ? JT_VNULL : pay_due_in(&due, 0);
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

    tx->db_rc = pay_read_card_order(tx->db, tx->arena, order_id, &o);
    if (tx->db_rc != JT_DB_OK) {
        return JT_TX_DBERR;
    }
    if (o.found && o.status == JT_ORDER_CANCEL_PENDING) {
        v[0] = JT_VI(order_id);
        JT_TX_EXEC(tx, SQL_GP_DUE_OF_ORDER, v, 1, &rows);
        if (jt_val_int(jt_cell(&rows, 0, 0)) == 0) {
            /* the buyer's cancel request finishes it, or the sweeper later */
            if ((s = pay_order_move(tx, order_id, o.version, o.status, JT_ORDER_CANCELLED,
                                    rf->e->r != NULL ? rf->e->by : JT_BY_SWEEPER, rf->e->r != NULL ? rf->e->actor_id : 0))
                    != JT_TX_COMMIT
                || (s = stock_give_back(tx, rf->lines)) != JT_TX_COMMIT
                || (s = pay_outbox(tx, "order.cancelled", order_id, "{\"orderId\":%lld,\"refund\":%lld}",
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
    jt_val v[3] = { pay_due_in(&due, c->claim_ms), c->key, JT_VI(c->version) };
    jt_rows rows;

    JT_TX_EXEC(tx, c->sql, v, 3, &rows);
    c->won = rows.affected == 1;
    return JT_TX_COMMIT;
}

int
pay_claim(pay_env *e, const char *sql, jt_val key, int64_t version)
{
    claim_tx c = { sql, key, version, e->conf->pg_sweep_claim_ms, 0 };

    return jt_tx_run(e->db, e->a, &e->pol, claim_body, &c) == JT_TX_OK && c.won;
}

/* Refunds what is still refundable of one REFUND_DUE payment, then records
 * it (R). The cancel carries checksum = the refundable amount: if an
 * earlier attempt refunded and died before R, the gateway refuses this one
 * (nothing is refundable any more) and a lookup shows the refund, which R
 * then records. Anything else leaves the row due for the sweeper. */
jt_err
pay_refund_one(pay_env *e, const char *imp_uid, int *completed)
{
    jt_pg_payment p;
    jt_pg_result res;
    gp_row g;
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
    if (pay_read_gp(e->db, e->a, imp_uid, &g) != JT_DB_OK) {
        return JT_E_DATABASE_UNAVAILABLE;
    }
    if (!g.found || !g.refund_due) {
        return JT_OK;
    }
    amount = g.amount;
    refunded = g.refunded;
    order_id = g.order_id;
    reason = g.reason;
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
    if (pay_load_lines(e, order_id, &ls) != JT_DB_OK) {
        return JT_E_DATABASE_UNAVAILABLE;
    }
    if ((keys = pay_lock_keys(e->a, order_id, &ls, &n)) == NULL) {
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
jt_db_rc
pay_order_of_merchant(pay_env *e, const char *merchant_uid, int64_t *order_id)
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
jt_err
pay_settle(pay_env *e, const jt_pg_payment *p, int64_t asked, settle_outcome *outcome)
{
    pay_lines ls;
    settle_tx st;
    pay_refusal f;
    const char **keys;
    int64_t owner;
    jt_err x;
    int n;

    *outcome = SETTLE_KNOWN;
    if (pay_order_of_merchant(e, p->merchant_uid, &owner) != JT_DB_OK) {
        return JT_E_DATABASE_UNAVAILABLE;
    }
    if (asked != 0 && owner != 0 && owner != asked) {
        *outcome = SETTLE_MISMATCH;
        return pay_release(e, asked, JT_ORDER_PAYMENT_FAILED, JT_BY_SERVER, "PAYMENT_AMOUNT_MISMATCH", NULL);
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
    if (pay_load_lines(e, st.order_id, &ls) != JT_DB_OK) {
        return JT_E_DATABASE_UNAVAILABLE;
    }
    if ((keys = pay_lock_keys(e->a, st.order_id, &ls, &n)) == NULL) {
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
        (void) pay_refund_one(e, p->imp_uid, NULL);   /* else the sweeper's, after the claim */
    }
    return JT_OK;
}

