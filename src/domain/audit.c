#include "domain/audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/accounts.h"
#include "domain/common.h"
#include "domain/events.h"
#include "domain/lifecycle.h"
#include "domain/order_status.h"
#include "domain/payments.h"

/* Each check is two statements: how many rows it looked at, and the
 * offending ids (at most a few, plus their count). */
typedef struct {
    const char *name;
    const char *invariant;
    const char *count_sql;
    const char *bad_sql;       /* SELECT id ... : every row is a violation */
    int         grace;         /* bad_sql binds [events] audit_grace (seconds) */
} check_def;

/* units held by orders: those in a status whose lines hold stock (paid,
 * reserved for a card payment, or waiting for a card refund) */
#define STOCK_SOLD_PRODUCT                                                                      \
    "(SELECT COALESCE(SUM(oi.quantity), 0) FROM order_items oi JOIN orders o ON o.id = oi.order_id" \
    " WHERE o.status IN (" JT_ORDER_STOCK_HOLDING_SQL ") AND oi.product_id = p.id AND oi.option_id IS NULL)"
#define STOCK_MOVED_PRODUCT                                                                     \
    "(SELECT COALESCE(SUM(m.delta), 0) FROM stock_movements m WHERE m.product_id = p.id AND m.option_id IS NULL)"
#define STOCK_SOLD_OPTION                                                                       \
    "(SELECT COALESCE(SUM(oi.quantity), 0) FROM order_items oi JOIN orders o ON o.id = oi.order_id" \
    " WHERE o.status IN (" JT_ORDER_STOCK_HOLDING_SQL ") AND oi.option_id = po.id)"
#define STOCK_MOVED_OPTION                                                                      \
    "(SELECT COALESCE(SUM(m.delta), 0) FROM stock_movements m WHERE m.option_id = po.id)"
#define HAS_OPTIONS "EXISTS (SELECT 1 FROM product_options x WHERE x.product_id = p.id)"

static const check_def checks[] = {
    { "balances", "for every user: balance = sum of ledger deltas",
      "SELECT COUNT(*) FROM users",
      "SELECT u.id FROM users u LEFT JOIN (SELECT user_id, SUM(delta) s FROM point_ledger GROUP BY user_id) l"
      " ON l.user_id = u.id WHERE u.balance <> COALESCE(l.s, 0) ORDER BY u.id", 0 },
    { "no_negative_balance", "no user has a negative balance",
      "SELECT COUNT(*) FROM users",
      "SELECT id FROM users WHERE balance < 0 ORDER BY id", 0 },
    { "ledger_running_balance", "every ledger row's balanceAfter continues the previous one",
      "SELECT COUNT(*) FROM point_ledger",
      "SELECT t.id FROM (SELECT id, balance_after,"
      " SUM(delta) OVER (PARTITION BY user_id ORDER BY id) AS running FROM point_ledger) t"
      " WHERE t.balance_after <> t.running ORDER BY t.id", 0 },
    { "product_stock", "for every product without options: initial + restocks - units held by orders = stock",
      "SELECT COUNT(*) FROM products p WHERE NOT " HAS_OPTIONS,
      "SELECT p.id FROM products p WHERE NOT " HAS_OPTIONS
      " AND p.stock <> " STOCK_MOVED_PRODUCT " - " STOCK_SOLD_PRODUCT " ORDER BY p.id", 0 },
    { "option_stock", "for every option: initial + restocks - units held by orders = stock",
      "SELECT COUNT(*) FROM product_options",
      "SELECT po.id FROM product_options po WHERE po.stock <> " STOCK_MOVED_OPTION " - " STOCK_SOLD_OPTION
      " ORDER BY po.id", 0 },
    { "has_options", "every product's has_options flag says whether it has options",
      "SELECT COUNT(*) FROM products",
      "SELECT p.id FROM products p WHERE p.has_options <> " HAS_OPTIONS " ORDER BY p.id", 0 },
    { "wish_count", "every product's wishCount (product_wishes) is the number of buyers with it in their wishlist",
      "SELECT COUNT(*) FROM products",
      "SELECT p.id FROM products p LEFT JOIN product_wishes pw ON pw.product_id = p.id"
      " WHERE COALESCE(pw.wishers, 0) <> (SELECT COUNT(DISTINCT w.user_id) FROM wishlist_items w WHERE w.product_id = p.id)"
      " ORDER BY p.id", 0 },
    { "no_negative_stock", "no product or option has negative stock",
      "SELECT (SELECT COUNT(*) FROM products) + (SELECT COUNT(*) FROM product_options)",
      "SELECT id FROM products WHERE stock < 0 UNION ALL SELECT id FROM product_options WHERE stock < 0", 0 },
    /* by ref_id (its index, forced: with a buyer of many orders MariaDB
     * would walk the buyer's whole ledger for each of them) */
    { "order_payments", "every points order has exactly one payment ledger row of its total; a card order none",
      "SELECT COUNT(*) FROM orders",
      "SELECT o.id FROM orders o WHERE (SELECT COUNT(*) FROM point_ledger l FORCE INDEX (point_ledger_ref) WHERE l.kind = 'ORDER_PAYMENT'"
      " AND l.ref_id = o.id AND l.user_id = o.user_id AND l.delta = -o.total) <> IF(o.payment_method = 'POINTS', 1, 0)"
      " OR (SELECT COUNT(*) FROM point_ledger l FORCE INDEX (point_ledger_ref) WHERE l.kind = 'ORDER_PAYMENT' AND l.ref_id = o.id)"
      " <> IF(o.payment_method = 'POINTS', 1, 0) ORDER BY o.id", 0 },
    { "order_refunds", "every CANCELLED or RETURNED points order has exactly one refund ledger row of its total; any "
      "other order (a card order's refund is at the gateway) none",
      "SELECT COUNT(*) FROM orders",
      "SELECT o.id FROM orders o WHERE (SELECT COUNT(*) FROM point_ledger l FORCE INDEX (point_ledger_ref) WHERE l.kind = 'ORDER_REFUND'"
      " AND l.ref_id = o.id AND l.user_id = o.user_id AND l.delta = o.total)"
      " <> IF(o.status IN (" JT_ORDER_REFUNDED_SQL ") AND o.payment_method = 'POINTS', 1, 0)"
      " OR (SELECT COUNT(*) FROM point_ledger l FORCE INDEX (point_ledger_ref) WHERE l.kind = 'ORDER_REFUND' AND l.ref_id = o.id)"
      " <> IF(o.status IN (" JT_ORDER_REFUNDED_SQL ") AND o.payment_method = 'POINTS', 1, 0) ORDER BY o.id", 0 },
    /* a card order's history starts when it is placed, PAYMENT_PENDING;
     * a points order's PAID */
    { "order_status_history", "every order's status is the last move of its history (PAID, or PAYMENT_PENDING for a "
      "card order, with none)",
      "SELECT COUNT(*) FROM orders",
      "SELECT o.id FROM orders o LEFT JOIN order_events e ON e.id = (SELECT MAX(x.id) FROM order_events x"
      " WHERE x.order_id = o.id) WHERE o.status <> COALESCE(e.to_status,"
      " IF(o.payment_method = 'CARD', 'PAYMENT_PENDING', 'PAID')) ORDER BY o.id", 0 },
    { "order_history_path", "every move of an order starts where the one before it ended (PAID, or PAYMENT_PENDING "
      "for a card order, first)",
      "SELECT COUNT(*) FROM order_events",
      "SELECT t.id FROM (SELECT e.id, e.from_status, COALESCE(LAG(e.to_status) OVER (PARTITION BY e.order_id ORDER BY e.id),"
      " IF(o.payment_method = 'CARD', 'PAYMENT_PENDING', 'PAID')) AS prev FROM order_events e"
      " JOIN orders o ON o.id = e.order_id) t WHERE t.from_status <> t.prev ORDER BY t.id", 0 },
    { "event_notifications", "every event published before the grace has been consumed, with one notification "
      "for its recipient",
      "SELECT COUNT(*) FROM outbox WHERE published_at IS NOT NULL",
      "SELECT x.id FROM outbox x WHERE x.published_at IS NOT NULL AND x.published_at < NOW(6) - INTERVAL ? SECOND"
      " AND ((SELECT COUNT(*) FROM notifications n WHERE n.event_id = x.id) <> IF(" JT_EVENT_RECIPIENT("x")
      " IS NULL, 0, 1) OR EXISTS (SELECT 1 FROM notifications n WHERE n.event_id = x.id AND n.user_id <> "
      JT_EVENT_RECIPIENT("x") ")) ORDER BY x.id", 1 },
    /* paid and not being refunded: PAID and the lifecycle's statuses after it */
    { "card_paid", "every paid card order (PAID up to RETURN_REQUESTED) has exactly one gateway payment, of its "
      "total, nothing refunded",
      "SELECT COUNT(*) FROM orders WHERE payment_method = 'CARD' AND status IN (" JT_ORDER_SOLD_SQL ")"
      " AND status <> 'CANCEL_PENDING'",
      "SELECT o.id FROM orders o WHERE o.payment_method = 'CARD' AND o.status IN (" JT_ORDER_SOLD_SQL ")"
      " AND o.status <> 'CANCEL_PENDING'"
      " AND ((SELECT COUNT(*) FROM gateway_payments g WHERE g.order_id = o.id AND g.state = 'CAPTURED'"
      " AND g.amount = o.total AND g.refunded = 0) <> 1"
      " OR (SELECT COUNT(*) FROM gateway_payments g WHERE g.order_id = o.id AND g.state = 'CAPTURED') <> 1)"
      " ORDER BY o.id", 0 },
    { "card_refunded", "every cancelled, returned, failed, expired or out-of-stock card order was refunded in full "
      "or never paid",
      "SELECT COUNT(*) FROM orders WHERE payment_method = 'CARD'"
      " AND status IN ('CANCELLED', 'RETURNED', 'PAYMENT_FAILED', 'PAYMENT_EXPIRED', 'OUT_OF_STOCK')",
      "SELECT o.id FROM orders o WHERE o.payment_method = 'CARD'"
      " AND o.status IN ('CANCELLED', 'RETURNED', 'PAYMENT_FAILED', 'PAYMENT_EXPIRED', 'OUT_OF_STOCK')"
      " AND EXISTS (SELECT 1 FROM gateway_payments g WHERE g.order_id = o.id"
      " AND (g.state <> 'REFUNDED' OR g.refunded <> g.amount)) ORDER BY o.id", 0 },
    /* the gateway's refund of a cancel or a return: exactly one, of the
     * order's total (a stray second payment's refund has its own reason) */
    { "card_refund_once", "every CANCELLED or RETURNED card order has exactly one gateway refund of its total "
      "for the cancel or the return",
      "SELECT COUNT(*) FROM orders WHERE payment_method = 'CARD' AND status IN (" JT_ORDER_REFUNDED_SQL ")",
      "SELECT o.id FROM orders o WHERE o.payment_method = 'CARD' AND o.status IN (" JT_ORDER_REFUNDED_SQL ")"
      " AND (SELECT COUNT(*) FROM gateway_payments g WHERE g.order_id = o.id AND g.reason IN ('CANCELLED', 'RETURNED')"
      " AND g.state = 'REFUNDED' AND g.amount = o.total AND g.refunded = o.total) <> 1 ORDER BY o.id", 0 },
    { "card_refund_records", "every gateway payment's refunds (one row per checksum) add up to what it refunded",
      "SELECT COUNT(*) FROM gateway_payments",
      "SELECT g.order_id FROM gateway_payments g WHERE g.refunded <> (SELECT COALESCE(SUM(f.amount), 0)"
      " FROM card_refunds f WHERE f.imp_uid = g.imp_uid) ORDER BY g.order_id", 0 },
    { "card_orders", "every card order has its card payment row, of its total",
      "SELECT COUNT(*) FROM orders WHERE payment_method = 'CARD'",
      "SELECT o.id FROM orders o LEFT JOIN card_payments c ON c.order_id = o.id"
      " WHERE o.payment_method = 'CARD' AND (c.order_id IS NULL OR c.amount <> o.total) ORDER BY o.id", 0 },
    { "order_totals", "every order's total = sum of its lines + shipping fee",
      "SELECT COUNT(*) FROM orders",
      "SELECT o.id FROM orders o WHERE o.items_total <> (SELECT COALESCE(SUM(oi.line_total), 0) FROM order_items oi"
      " WHERE oi.order_id = o.id) OR o.total <> o.items_total + o.shipping_fee ORDER BY o.id", 0 },
    { "idempotent_charges", "every stored charge answer matches the ledger row it names",
      "SELECT COUNT(*) FROM idempotency_keys WHERE ref_kind = 'CHARGE'",
      "SELECT k.id FROM idempotency_keys k LEFT JOIN point_ledger l ON l.id = k.ref_id AND l.kind = 'CHARGE'"
      " WHERE k.ref_kind = 'CHARGE' AND (l.id IS NULL"
      " OR JSON_VALUE(CAST(k.body AS CHAR), '$.ledgerId') <> l.id"
      " OR JSON_VALUE(CAST(k.body AS CHAR), '$.charged') <> l.delta"
      " OR JSON_VALUE(CAST(k.body AS CHAR), '$.userId') <> l.user_id"
      " OR JSON_VALUE(CAST(k.body AS CHAR), '$.balance') <> l.balance_after) ORDER BY k.id", 0 },
    { "idempotent_orders", "every stored order answer matches the order it names",
      "SELECT COUNT(*) FROM idempotency_keys WHERE ref_kind = 'ORDER'",
      "SELECT k.id FROM idempotency_keys k LEFT JOIN orders o ON o.id = k.ref_id"
      " WHERE k.ref_kind = 'ORDER' AND (o.id IS NULL"
      " OR JSON_VALUE(CAST(k.body AS CHAR), '$.orderId') <> o.id"
      " OR JSON_VALUE(CAST(k.body AS CHAR), '$.total') <> o.total"
      " OR k.user_id <> o.user_id) ORDER BY k.id", 0 },
    { "auction_stock", "for every auction: initial stock - units in PURCHASED receipts = stock",
      "SELECT COUNT(*) FROM auctions",
      "SELECT a.id FROM auctions a WHERE a.stock <> a.initial_stock - (SELECT COALESCE(SUM(r.quantity), 0)"
      " FROM receipts r WHERE r.auction_id = a.id AND r.status = 'PURCHASED') OR a.stock < 0 ORDER BY a.id", 0 },
    { "auction_seller_credits", "for every auction: seller credits = purchased receipts - refunds",
      "SELECT COUNT(*) FROM auctions",
      "SELECT a.id FROM auctions a WHERE (SELECT COALESCE(SUM(l.delta), 0) FROM point_ledger l JOIN receipts r"
      " ON r.id = l.ref_id WHERE r.auction_id = a.id AND l.kind IN ('AUCTION_SALE', 'AUCTION_REVERSAL')"
      " AND l.user_id = a.seller_id) <> (SELECT COALESCE(SUM(r.price * r.quantity), 0) FROM receipts r"
      " WHERE r.auction_id = a.id AND r.status = 'PURCHASED') ORDER BY a.id", 0 },
    { "receipt_payments", "every settled receipt has its ledger rows: one purchase and one sale; a refund pair if REFUNDED",
      "SELECT COUNT(*) FROM receipts",
      "SELECT r.id FROM receipts r WHERE"
      " (SELECT COUNT(*) FROM point_ledger l WHERE l.ref_id = r.id AND l.kind = 'AUCTION_PURCHASE'"
      "  AND l.user_id = r.buyer_id AND l.delta = -r.price * r.quantity)"
      "   <> IF(r.status IN ('PURCHASED', 'REFUNDED'), 1, 0)"
      " OR (SELECT COUNT(*) FROM point_ledger l WHERE l.ref_id = r.id AND l.kind = 'AUCTION_SALE'"
      "  AND l.user_id = r.seller_id AND l.delta = r.price * r.quantity)"
      "   <> IF(r.status IN ('PURCHASED', 'REFUNDED'), 1, 0)"
      " OR (SELECT COUNT(*) FROM point_ledger l WHERE l.ref_id = r.id AND l.kind IN ('AUCTION_REFUND', 'AUCTION_REVERSAL'))"
      "   <> IF(r.status = 'REFUNDED', 2, 0) ORDER BY r.id", 0 },
};

jt_db_rc
audit_run(jt_db *db, jt_arena *a, int64_t grace_s, jt_audit *out)
{
    size_t i;

    memset(out, 0, sizeof(*out));
    for (i = 0; i < sizeof(checks) / sizeof(checks[0]) && i < JT_AUDIT_MAX_CHECKS; i++) {
        jt_audit_check *c = &out->checks[out->n++];
        jt_rows rows;
        jt_db_rc rc;
        jt_buf s;
        int k;

        c->name = checks[i].name;
        c->invariant = checks[i].invariant;
        if ((rc = jt_db_exec(db, a, checks[i].count_sql, NULL, 0, &rows)) != JT_DB_OK) {
            return rc;
        }
        c->checked = rows.nrows ? (jt_cell(&rows, 0, 0)->type == JT_V_INT ? jt_cell(&rows, 0, 0)->i
                                                                         : atoll(jt_cell(&rows, 0, 0)->s))
                                : 0;
        jt_val grace[1] = { JT_VI(grace_s) };

        if ((rc = jt_db_exec(db, a, checks[i].bad_sql, grace, checks[i].grace ? 1 : 0, &rows)) != JT_DB_OK) {
            return rc;
        }
        c->violations = rows.nrows;
        out->violations += rows.nrows;
        jt_buf_init(&s, a, 64);
        for (k = 0; k < rows.nrows && k < JT_AUDIT_SAMPLES; k++) {
            jt_buf_addf(&s, "%s%lld", k ? "," : "", (long long) jt_cell(&rows, k, 0)->i);
        }
        c->samples = jt_buf_cstr(&s);
    }
    return JT_DB_OK;
}

jt_db_rc
audit_run_gateway(jt_pay_env *env, int64_t max, jt_audit *out)
{
    jt_db_rc rc = audit_run(env->db, env->arena, env->conf->ev_audit_grace, out);
    jt_audit_check *c;
    jt_buf s;

    if (rc != JT_DB_OK || !jt_pg_configured(env->pg) || out->n >= JT_AUDIT_MAX_CHECKS) {
        return rc;
    }
    c = &out->checks[out->n++];
    c->name = "gateway_payments";
    c->invariant = "every card order agrees with the gateway: PAID = paid once, its total;"
                   " cancelled, failed or expired = refunded or never paid";
    jt_buf_init(&s, env->arena, 64);
    if (payments_audit_gateway(env, max, &c->checked, &c->violations, &s) != 0) {
        /* no verdict is not a clean one */
        c->violations = 1;
        jt_buf_init(&s, env->arena, 64);
        jt_buf_adds(&s, "the gateway could not be asked");
    }
    c->samples = jt_buf_cstr(&s);
    out->violations += c->violations;
    return JT_DB_OK;
}

/* GET /api/v1/admin/audit */
jt_err
audit_http(jt_req *r)
{
    jt_principal who;
    jt_audit report;
    jt_db_rc rc;
    jt_buf b;
    jt_json w;
    jt_err e;
    int i;

    if ((e = auth_require(r, &who)) != JT_OK) {
        return e;
    }
    if (!who.is_admin) {
        return jt_fail(r, JT_E_FORBIDDEN, "the audit is for admins");
    }
    {
        /* the newest card orders against the gateway too (bounded: this is
         * a request; jangteo-admin audit checks every one) */
        jt_pay_env env = { r->conf, r->db, r->redis, r->pg, r->arena };
        if ((rc = audit_run_gateway(&env, 200, &report)) != JT_DB_OK) {
            return jt_db_fail(r, rc);
        }
    }
    jt_json_begin(r, &b, &w, 2048);
    jw_obj_open(&w);
    jw_kbool(&w, "clean", report.violations == 0);
    jw_kint(&w, "violations", report.violations);
    jw_key(&w, "checks");
    jw_arr_open(&w);
    for (i = 0; i < report.n; i++) {
        jw_obj_open(&w);
        jw_kstr(&w, "name", report.checks[i].name);
        jw_kstr(&w, "invariant", report.checks[i].invariant);
        jw_kint(&w, "checked", report.checks[i].checked);
        jw_kint(&w, "violations", report.checks[i].violations);
        jw_kstr(&w, "sampleIds", report.checks[i].samples);
        jw_obj_close(&w);
    }
    jw_arr_close(&w);
    jw_obj_close(&w);
    jt_reply_json(r, 200, &b);
    return JT_OK;
}
