/* The payment sweeper's work (server/sweeper.c runs it) and the audit of
 * card orders against the gateway's own records. */
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
static const char SQL_CARD_CLAIM[] =
    "UPDATE card_payments SET due_at = ?, version = version + 1 WHERE order_id = ? AND version = ?"
    " AND due_at IS NOT NULL";
static const char SQL_GP_CLAIM[] =
    "UPDATE gateway_payments SET due_at = ?, version = version + 1 WHERE imp_uid = ? AND version = ?"
    " AND state = 'REFUND_DUE'";

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

    tx->db_rc = pay_read_card_order(tx->db, tx->arena, rc->order_id, &o);
    if (tx->db_rc != JT_DB_OK) {
        return JT_TX_DBERR;
    }
    if (!o.found || o.status != JT_ORDER_PAYMENT_EXPIRED) {
        return JT_TX_COMMIT;
    }
    return pay_card_done(tx, &o, rc->order_id, NULL);
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

    if (!pay_claim(e, SQL_CARD_CLAIM, JT_VI(order_id), version)) {
        return 0;
    }
    if (pay_read_card_order(e->db, e->a, order_id, &o) != JT_DB_OK || !o.found
        || (o.status != JT_ORDER_PAYMENT_PENDING && o.status != JT_ORDER_PAYMENT_EXPIRED)) {
        return 0;
    }
    if (pay_found(jt_pg_find(e->pg, o.merchant_uid, &p, &res), &p) != JT_PG_OK) {
        /* the claim runs out and a later sweep asks again */
        jt_log_warn("payments: sweep: order %lld: %s", (long long) order_id, res.message);
        return 0;
    }
    if (p.status == JT_PG_PAID) {
        return pay_settle(e, &p, 0, &out) == JT_OK && out != SETTLE_KNOWN;
    }
    if (o.status == JT_ORDER_PAYMENT_EXPIRED) {
        (void) jt_tx_run(e->db, e->a, &e->pol, recheck_done_body, &rc);
        return 0;
    }
    (void) pay_release(e, order_id, JT_ORDER_PAYMENT_EXPIRED, JT_BY_SWEEPER, NULL, &moved);
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

    pay_env_of_sweeper(e, s);
    if (!jt_pg_configured(e->pg)) {
        return 0;
    }
    JT_METRIC_INC(pay_sweeps);
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
            if (pay_claim(e, SQL_GP_CLAIM, JT_VS(imp), jt_cell(&rows, i, 1)->i)
                && pay_refund_one(e, imp, NULL) == JT_OK) {
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
        if (pay_found(jt_pg_find(s->pg, jt_cell(&rows, i, 3)->s, &p, &res), &p) != JT_PG_OK) {
            return -1;   /* the gateway cannot be asked: no verdict */
        }
        if (jt_order_status_sold(st)) {
            /* paid and not given back (PAID and the lifecycle's statuses
             * up to RETURN_REQUESTED, order_status.c): exactly its one
             * payment, its total, nothing refunded */
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
