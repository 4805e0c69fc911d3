/* The order lifecycle (lifecycle.h says what is guaranteed and why): the
 * transition table, the one move transaction, the routes that ask for a
 * move, and the scheduler's sweep. */
#include "domain/lifecycle.h"

#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timefmt.h"
#include "domain/accounts.h"
#include "domain/common.h"
#include "domain/events.h"
#include "domain/lockkey.h"
#include "domain/order_place.h"
#include "domain/order_status.h"
#include "domain/orders.h"
#include "domain/payments.h"
#include "domain/points.h"
#include "domain/write.h"
#include "http/conditional.h"
#include "http/json.h"
#include "store/db.h"
#include "store/lock.h"
#include "store/redis.h"
#include "store/tx.h"

/* who may take a move: the bits of the one move table (order_status.h) */
#define ACT_BUYER     JT_BY_BUYER
#define ACT_SELLER    JT_BY_SELLER
#define ACT_ADMIN     JT_BY_ADMIN
#define ACT_SCHEDULER JT_BY_SCHEDULER

static const char *
actor_name(unsigned a)
{
    switch (a) {
    case ACT_BUYER:  return "BUYER";
    case ACT_SELLER: return "SELLER";
    case ACT_ADMIN:  return "ADMIN";
    default:         return "SCHEDULER";
    }
}

/* The move's fenced UPDATE: the new status, the time of the move (and its
 * detail where the row keeps one), matched on the version and the status
 * it was read at. */
#define MOVE_SQL(to, col, extra)                                                                        \
    "UPDATE orders SET status = '" to "', " col " = ?" extra ", version = version + 1"                 \
    " WHERE id = ? AND version = ? AND status = ?"

/* How this module writes a move into each status it moves orders to.
 * Which moves exist and who may take them is not here: it is the one
 * table of domain/order_status.c, with card payments' statuses and moves
 * (a move of that table into a status without a row here, such as
 * CANCEL_PENDING, is payments.c's, never this module's). */
typedef struct {
    const char *from;      /* the status the order was in (set per move) */
    const char *to;
    const char *topic;     /* the event every such move writes */
    int         refund;    /* every line's units back and the total refunded, in the move */
    int         detail;    /* the statement stores the move's detail (tracking number, reason) */
    const char *sql;
} transition;

static const transition writes[] = {
    { NULL, "PREPARING", "order.preparing", 0, 0, MOVE_SQL("PREPARING", "preparing_at", "") },
    { NULL, "SHIPPING", "order.shipping", 0, 1,
      MOVE_SQL("SHIPPING", "shipped_at", ", tracking_number = COALESCE(?, tracking_number)") },
    { NULL, "DELIVERED", "order.delivered", 0, 0, MOVE_SQL("DELIVERED", "delivered_at", "") },
    { NULL, "RETURN_REQUESTED", "order.return_requested", 0, 1,
      MOVE_SQL("RETURN_REQUESTED", "return_requested_at", ", return_reason = ?") },
    { NULL, "RETURNED", "order.returned", 1, 0, MOVE_SQL("RETURNED", "returned_at", "") },
    { NULL, "CANCELLED", "order.cancelled", 1, 0, MOVE_SQL("CANCELLED", "cancelled_at", "") },
};

#define NWRITES (sizeof(writes) / sizeof(writes[0]))

int
lifecycle_is_status(const char *s)
{
    return jt_order_status_of(s) != JT_ORDER_UNKNOWN;
}

static const transition *
find_target(const char *to)
{
    size_t i;

    for (i = 0; i < NWRITES; i++) {
        if (!strcmp(writes[i].to, to)) {
            return &writes[i];
        }
    }
    return NULL;
}

/* The move from -> to when the table has it and this module writes it
 * (out is filled in), else NULL. */
static const transition *
find_transition(const char *from, const char *to, transition *out)
{
    const transition *t = find_target(to);

    if (t == NULL || !jt_order_is_move(jt_order_status_of(from), jt_order_status_of(to))) {
        return NULL;
    }
    *out = *t;
    out->from = from;
    return out;
}

/* Does a move into `to` refund? (Decides the locks before the status is
 * known: every move into CANCELLED or RETURNED does.) */
static int
target_refunds(const char *to)
{
    const transition *t = find_target(to);

    return t != NULL && t->refund;
}

/* --- the move --------------------------------------------------------------------- */

static const char SQL_MOVE_READ[] =
    "SELECT o.status, o.version, o.total, o.user_id,"
    " o.delivered_at IS NOT NULL AND clk.now < o.delivered_at + INTERVAL ? SECOND, o.payment_method = 'CARD'"
    " FROM " JT_SQL_CLOCK ", orders o WHERE o.id = ?";
static const char SQL_EVENT_INSERT[] =
    "INSERT INTO order_events (order_id, from_status, to_status, at, actor, actor_id) VALUES (?, ?, ?, ?, ?, ?)";
static const char SQL_LINES[] =
    "SELECT i.product_id, i.option_id, i.quantity, p.seller_id FROM order_items i"
    " LEFT JOIN products p ON p.id = i.product_id WHERE i.order_id = ? ORDER BY i.line_no LIMIT 50";
/* the rows a refund gives units back to (deleted or not) */
static const char SQL_STOCK_PRODUCT[] = "SELECT stock, version FROM products WHERE id = ?";
static const char SQL_STOCK_OPTION[] = "SELECT stock, version FROM product_options WHERE id = ?";
static const char SQL_STOCK_PRODUCT_WRITE[] =
    "UPDATE products SET stock = ?, version = version + 1 WHERE id = ? AND version = ?";
static const char SQL_STOCK_OPTION_WRITE[] =
    "UPDATE product_options SET stock = ?, version = version + 1 WHERE id = ? AND version = ?";

typedef struct {
    int64_t product_id;
    int64_t option_id;      /* 0: none */
    int64_t quantity;
    int64_t seller_id;      /* 0: none */
} move_line;

typedef struct {
    jt_req        *r;               /* NULL in a sweep */
    const jt_conf *conf;
    int64_t        order_id;
    const char    *to;
    const char    *expect_from;     /* a sweep moves only from this status */
    unsigned       actor;
    int64_t        actor_id;        /* 0: the scheduler */
    const char    *detail;          /* tracking number or return reason */
    int            has_if_match;
    int64_t        if_match;
    int64_t        buyer;
    const char    *seen;            /* the status a request's order had when loaded */
    move_line      lines[JT_ORDER_MAX_ITEMS];
    int            n;
    int            card;            /* paid by card: the refund is at the gateway */
    jt_arena      *arena;           /* outlives the transaction's attempts */
    transition     tr;              /* the move being made (check_move) */
    /* outputs, set afresh by every attempt */
    const char    *refund_imp;      /* a card return: the payment now due for a refund */
    jt_err         refusal;
    int            gone;            /* a sweep: the order left expect_from first */
    jt_buf         body;
} move;

/* A refusal: with a detail for a request's answer, the bare code in a
 * sweep (which logs it). */
static jt_tx_step
refuse(move *m, jt_err e, const char *detail)
{
    m->refusal = m->r != NULL ? jt_fail(m->r, e, "%s", detail) : e;
    return JT_TX_ABORT;
}

/* The row of the table for a move of order m from `status` to m->to by
 * m->actor; otherwise NULL with the refusal set. */
static const transition *
check_move(move *m, const char *status)
{
    const transition *t = find_transition(status, m->to, &m->tr);
    char why[160];

    if (t == NULL) {
        if (!strcmp(status, "CANCELLED") && !strcmp(m->to, "CANCELLED")) {
            snprintf(why, sizeof(why), "order %lld is already cancelled", (long long) m->order_id);
            refuse(m, JT_E_ORDER_NOT_CANCELLABLE, why);
            return NULL;
        }
        snprintf(why, sizeof(why), "order %lld is %s: it cannot move to %s", (long long) m->order_id, status,
                 m->to);
        refuse(m, JT_E_INVALID_TRANSITION, why);
        if (m->r != NULL) {
            jt_buf x;
            jt_buf_init(&x, m->r->arena, 48);
            jt_buf_addf(&x, "\"currentStatus\":\"%s\"", status);
            m->r->problem_extra = jt_buf_cstr(&x);
        }
        return NULL;
    }
    if (!jt_order_may(jt_order_status_of(status), jt_order_status_of(m->to), (int) m->actor)) {
        snprintf(why, sizeof(why), "a %s may not move an order from %s to %s", actor_name(m->actor), status, m->to);
        refuse(m, JT_E_FORBIDDEN, why);
        return NULL;
    }
    return t;
}

/* Every line's units back into its stock row, each write fenced by the
 * row's version. A row that is gone has nothing to take them back. */
static jt_tx_step
restock(jt_tx *tx, move *m)
{
    jt_val p[3];
    jt_rows rows;
    int i;

    for (i = 0; i < m->n; i++) {
        move_line *l = &m->lines[i];
        int64_t id = l->option_id ? l->option_id : l->product_id;

        p[0] = JT_VI(id);
        JT_TX_EXEC(tx, l->option_id ? SQL_STOCK_OPTION : SQL_STOCK_PRODUCT, p, 1, &rows);
        if (rows.nrows == 0) {
            continue;
        }
        p[0] = JT_VI(jt_cell(&rows, 0, 0)->i + l->quantity);
        p[1] = JT_VI(id);
        p[2] = JT_VI(jt_cell(&rows, 0, 1)->i);
        JT_TX_EXEC(tx, l->option_id ? SQL_STOCK_OPTION_WRITE : SQL_STOCK_PRODUCT_WRITE, p, 3, &rows);
        if (rows.affected != 1) {
            return JT_TX_CONFLICT;
        }
    }
    return JT_TX_COMMIT;
}

/* The event's payload: what moved, when, by whom, and the figures its
 * notification names. No personal data (webhooks carry it out). */
static void
move_payload(jt_buf *b, const move *m, const transition *t, int64_t now_us, int64_t total, int64_t buyer)
{
    char at[JT_UTC_MS_LEN];
    jt_json w;

    jt_format_utc_ms(at, now_us / 1000);
    jw_init(&w, b);
    jw_obj_open(&w);
    jw_kint(&w, "orderId", m->order_id);
    jw_kint(&w, "userId", buyer);
    jw_kstr(&w, "from", t->from);
    jw_kstr(&w, "to", t->to);
    jw_kstr(&w, "at", at);
    jw_kstr(&w, "actor", actor_name(m->actor));
    if (m->actor_id) {
        jw_kint(&w, "actorId", m->actor_id);
    } else {
        jw_knull(&w, "actorId");
    }
    jw_kint(&w, "total", total);
    if (t->refund) {
        jw_kint(&w, "refund", total);
    }
    if (!strcmp(t->to, "SHIPPING") && m->detail != NULL) {
        jw_kstr(&w, "trackingNumber", m->detail);
    }
    jw_obj_close(&w);
}

/* One attempt of a move (lifecycle.h walks through the interleavings). */
static jt_tx_step
move_body(jt_tx *tx)
{
    move *m = tx->data;
    int64_t now_us = jt_clock_now_us(), version, total, buyer;
    const transition *t;
    jt_sql_time_buf now;
    const char *status;
    jt_tx_step step;
    jt_val p[6];
    jt_rows rows;
    jt_buf payload;
    jt_err why;
    int k = 0, card;

    m->gone = 0;
    m->refusal = JT_OK;
    m->refund_imp = NULL;
    p[0] = JT_VI(m->conf->lc_return_window);
    p[1] = jt_sql_time(&now, now_us);
    p[2] = JT_VI(m->order_id);
    JT_TX_EXEC(tx, SQL_MOVE_READ, p, 3, &rows);
    if (rows.nrows == 0) {
        return refuse(m, JT_E_ORDER_NOT_FOUND, "no such order");
    }
    status = jt_pstrdup(tx->arena, jt_cell(&rows, 0, 0)->s);
    version = jt_cell(&rows, 0, 1)->i;
    total = jt_cell(&rows, 0, 2)->i;
    buyer = jt_cell(&rows, 0, 3)->i;
    card = jt_val_int(jt_cell(&rows, 0, 5)) != 0;
    if (m->expect_from != NULL && strcmp(status, m->expect_from) != 0) {
        m->gone = 1;   /* moved by someone else since the sweep read it */
        return JT_TX_ABORT;
    }
    if ((t = check_move(m, status)) == NULL) {
        return JT_TX_ABORT;
    }
    if (m->has_if_match && m->if_match != version) {
        char why_s[120];
        snprintf(why_s, sizeof(why_s), "order %lld is at version %lld, not %lld", (long long) m->order_id,
                 (long long) version, (long long) m->if_match);
        return refuse(m, JT_E_VERSION_MISMATCH, why_s);
    }
    if (!strcmp(t->to, "RETURN_REQUESTED") && jt_val_int(jt_cell(&rows, 0, 4)) == 0) {
        char why_s[120];
        snprintf(why_s, sizeof(why_s), "order %lld could be returned for %lld s after delivery", (long long) m->order_id,
                 (long long) m->conf->lc_return_window);
        return refuse(m, JT_E_RETURN_WINDOW_CLOSED, why_s);
    }

    /* the fenced move: zero rows means someone else moved it first */
    p[k++] = jt_sql_time(&now, now_us);
    if (t->detail) {
        p[k++] = m->detail != NULL ? JT_VS(m->detail) : JT_VNULL;
    }
    p[k++] = JT_VI(m->order_id);
    p[k++] = JT_VI(version);
    p[k++] = JT_VS(status);
    JT_TX_EXEC(tx, t->sql, p, k, &rows);
    if (rows.affected != 1) {
        return JT_TX_CONFLICT;
    }
    p[0] = JT_VI(m->order_id);
    p[1] = JT_VS(t->from);
    p[2] = JT_VS(t->to);
    p[3] = jt_sql_time(&now, now_us);
    p[4] = JT_VS(actor_name(m->actor));
    p[5] = m->actor_id ? JT_VI(m->actor_id) : JT_VNULL;
    JT_TX_EXEC(tx, SQL_EVENT_INSERT, p, 6, &rows);

    if (t->refund && card) {
        /* a card order: its cancel is payments.c's (lifecycle_cancel hands
         * it over, so this is never reached by one); its return gives the
         * units back here and its payment becomes due for a refund of all
         * of it, which the mover makes after COMMIT (payments.h: RT) */
        if (strcmp(t->to, "RETURNED") != 0) {
            return refuse(m, JT_E_ORDER_NOT_CANCELLABLE, "a card order is cancelled through its payment");
        }
        if ((step = restock(tx, m)) != JT_TX_COMMIT
            || (step = payments_return_due(tx, m->arena, m->order_id, m->r != NULL ? m->conf->pg_sweep_claim_ms : 0,
                                           &m->refund_imp)) != JT_TX_COMMIT) {
            return step;
        }
    } else if (t->refund) {
        if ((step = restock(tx, m)) != JT_TX_COMMIT) {
            return step;
        }
        step = points_apply(tx, buyer, total, "ORDER_REFUND", m->order_id, NULL, NULL, &why);
        if (step == JT_TX_ABORT) {
            return refuse(m, why, why == JT_E_BALANCE_LIMIT ? "the refund would take the balance over its limit"
                                                            : "the buyer does not exist");
        }
        if (step != JT_TX_COMMIT) {
            return step;
        }
    }
    jt_buf_init(&payload, tx->arena, 256);
    move_payload(&payload, m, t, now_us, total, buyer);
    if (payload.oom) {
        tx->db_rc = JT_DB_ERROR;
        return JT_TX_DBERR;
    }
    if ((step = events_emit(tx, t->topic, m->order_id, payload.data, payload.len)) != JT_TX_COMMIT) {
        return step;
    }

    /* the answer: the order as this transaction leaves it, with its history */
    if (m->r != NULL) {
        if (order_answer_read(tx, m->r, m->order_id, &m->body) != JT_OK) {
            return JT_TX_DBERR;
        }
        jt_write_answer(tx, 200, &m->body, "ORDER_MOVE", m->order_id);
    }
    return JT_TX_COMMIT;
}

/* The lines of order m (and whether `user` sells every one of them). */
static jt_db_rc
load_lines(jt_db *db, jt_arena *a, move *m, int64_t user, int *sells_all)
{
    jt_val p[1] = { JT_VI(m->order_id) };
    jt_rows rows;
    jt_db_rc rc;
    int i;

    if ((rc = jt_db_exec(db, a, SQL_LINES, p, 1, &rows)) != JT_DB_OK) {
        return rc;
    }
    *sells_all = rows.nrows > 0;
    for (i = 0; i < rows.nrows && i < JT_ORDER_MAX_ITEMS; i++) {
        move_line *l = &m->lines[i];
        l->product_id = jt_cell(&rows, i, 0)->i;
        l->option_id = jt_cell(&rows, i, 1)->type == JT_V_NULL ? 0 : jt_cell(&rows, i, 1)->i;
        l->quantity = jt_cell(&rows, i, 2)->i;
        l->seller_id = jt_cell(&rows, i, 3)->type == JT_V_NULL ? 0 : jt_cell(&rows, i, 3)->i;
        *sells_all &= user != 0 && l->seller_id == user;
    }
    m->n = i;
    return JT_DB_OK;
}

/* The rows a move writes: the order, and for a refund every line's stock
 * and the buyer's balance (domain/lockkey.h). NULL when out of memory. */
static const char **
move_lock_keys(jt_arena *a, const move *m, int *n)
{
    const char **keys = jt_palloc(a, sizeof(char *) * (size_t) (m->n + 2));
    int i, k = 0;

    if (keys == NULL || (keys[k++] = jt_lockkey_order(a, m->order_id)) == NULL) {
        return NULL;
    }
    if (target_refunds(m->to)) {
        for (i = 0; i < m->n; i++) {
            if ((keys[k++] = jt_lockkey_stock(a, m->lines[i].product_id, m->lines[i].option_id)) == NULL) {
                return NULL;
            }
        }
        if ((keys[k++] = jt_lockkey_balance(a, m->buyer)) == NULL) {
            return NULL;
        }
    }
    *n = k;
    return keys;
}

/* --- the routes --------------------------------------------------------------------- */

/* The order a request names, and who the principal is to it: its buyer,
 * the seller of every line, an admin. Anyone else gets 404 (ids cannot be
 * probed); *actor is then 0. */
static jt_err
load_for(jt_req *r, const jt_principal *who, move *m, int sellers_too)
{
    jt_rows o;
    jt_db_rc rc;
    int sells_all = 0;

    if ((rc = orders_fetch(r->db, r->arena, r->conf, m->order_id, &o)) != JT_DB_OK
        || (rc = load_lines(r->db, r->arena, m, who->user_id, &sells_all)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    m->actor = 0;
    if (o.nrows == 1) {
        m->buyer = jt_cell(&o, 0, JT_ORDER_COL_USER)->i;
        m->seen = jt_cell(&o, 0, JT_ORDER_COL_STATUS)->s;
        m->card = !strcmp(jt_cell(&o, 0, JT_ORDER_COL_METHOD)->s, "CARD");
        if (who->is_admin) {
            m->actor = ACT_ADMIN;
        } else if (sellers_too && sells_all) {
            m->actor = ACT_SELLER;
        } else if (m->buyer == who->user_id) {
            m->actor = ACT_BUYER;
        }
    }
    if (m->actor == 0) {
        return jt_fail(r, JT_E_ORDER_NOT_FOUND, "order %lld does not exist", (long long) m->order_id);
    }
    m->actor_id = who->user_id;
    return JT_OK;
}

static move *
new_move(jt_req *r, const char *to)
{
    move *m = jt_pcalloc(r->arena, sizeof(*m));

    if (m != NULL) {
        m->r = r;
        m->conf = r->conf;
        m->arena = r->arena;
        m->order_id = jt_req_param_id(r, "orderId");
        m->to = to;
    }
    return m;
}

/* Locks, the move's transaction, and the answer after COMMIT. */
static jt_err
run_move(jt_req *r, jt_write *wr, move *m)
{
    const char **keys;
    jt_err e;
    int n;

    if ((keys = move_lock_keys(r->arena, m, &n)) == NULL) {
        return JT_E_INTERNAL;
    }
    if ((e = jt_write_lock(r, wr, keys, n)) != JT_OK || (e = jt_write_run(r, wr, move_body, m, &m->refusal)) != JT_OK
        || wr->replayed) {
        return e;
    }
    JT_METRIC_INC(order_moves);
    if (!strcmp(m->to, "CANCELLED")) {
        JT_METRIC_INC(orders_cancelled);
    }
    jt_write_finish(r, wr);
    if (m->refund_imp != NULL) {
        /* a card return: the refund at the gateway now that the move is
         * committed and its locks are gone; a gateway that will not now
         * leaves the payment due for the sweeper */
        jt_pay_env env = { r->conf, r->db, r->redis, r->pg, r->arena };
        payments_refund_now(&env, m->refund_imp);
    }
    return JT_OK;
}

/* A move asked for with a body: the key (a keyed retry replays the
 * committed answer), the order and who the principal is to it, the move. */
static jt_err
request_move(jt_req *r, const jt_principal *who, json_object *body, move *m, int sellers_too)
{
    jt_write *wr;
    jt_err e;

    if ((e = jt_write_begin(r, &wr, who->user_id, body, JT_WRITE_KEY_OPTIONAL)) != JT_OK || wr->replayed
        || (e = load_for(r, who, m, sellers_too)) != JT_OK) {
        return e;
    }
    return run_move(r, wr, m);
}

/* A tracking number as carriers print them: letters, digits, dashes. */
static int
valid_tracking(const char *s)
{
    size_t i, n = strlen(s);

    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '-')) {
            return 0;
        }
    }
    return n >= 1 && n <= 64;
}

/* POST /api/v1/orders/{orderId}/transitions {"to", "trackingNumber"?}:
 * the seller of every line, or an admin, moves the order on (and may
 * complete a return at once). If-Match: the version the client saw. */
jt_err
lifecycle_transition(jt_req *r)
{
    static const char *const known[] = { "to", "trackingNumber", NULL };
    static const char *const targets[] = { "PREPARING", "SHIPPING", "DELIVERED", "RETURNED", NULL };
    const char *to, *tracking = NULL;
    jt_principal who;
    json_object *o;
    jt_err e;
    move *m;
    int i;

    if ((e = auth_require(r, &who)) != JT_OK || (e = jt_json_body(r, &o)) != JT_OK
        || (e = jt_json_only(r, o, "", known)) != JT_OK
        || (e = jt_json_str(r, o, "to", JT_REQUIRED, 1, 24, &to)) != JT_OK
        || (e = jt_json_str(r, o, "trackingNumber", JT_OPTIONAL, 1, 64, &tracking)) != JT_OK) {
        return e;
    }
    for (i = 0; targets[i] != NULL && strcmp(targets[i], to) != 0; i++) {
    }
    if (targets[i] == NULL) {
        return jt_fail(r, JT_E_INVALID_REQUEST,
                       "'to' must be PREPARING, SHIPPING, DELIVERED or RETURNED (a cancel or a return request has "
                       "its own route)");
    }
    if (tracking != NULL && (strcmp(to, "SHIPPING") != 0 || !valid_tracking(tracking))) {
        return jt_fail(r, JT_E_INVALID_REQUEST,
                       "'trackingNumber' goes with \"to\":\"SHIPPING\" and is 1 to 64 letters, digits or dashes");
    }
    if ((m = new_move(r, jt_pstrdup(r->arena, to))) == NULL) {
        return JT_E_INTERNAL;
    }
    m->detail = tracking ? jt_pstrdup(r->arena, tracking) : NULL;
    switch (jt_http_parse_if_match(r->if_match, &m->if_match)) {
    case JT_IF_MATCH_MALFORMED:
        return jt_fail(r, JT_E_INVALID_REQUEST, "If-Match must be the order's version, e.g. \"3\"");
    case JT_IF_MATCH_VERSION:
        m->has_if_match = 1;
        break;
    default:
        break;
    }
    return request_move(r, &who, o, m, 1);
}

/* POST /api/v1/orders/{orderId}/return {"reason"}: the buyer, within
 * [lifecycle] return_window of delivery. */
jt_err
lifecycle_return(jt_req *r)
{
    static const char *const known[] = { "reason", NULL };
    const char *reason;
    jt_principal who;
    json_object *o;
    jt_err e;
    move *m;

    if ((e = auth_require(r, &who)) != JT_OK || (e = jt_json_body(r, &o)) != JT_OK
        || (e = jt_json_only(r, o, "", known)) != JT_OK
        || (e = jt_json_str(r, o, "reason", JT_REQUIRED, 1, 500, &reason)) != JT_OK) {
        return e;
    }
    if ((m = new_move(r, "RETURN_REQUESTED")) == NULL || (m->detail = jt_pstrdup(r->arena, reason)) == NULL) {
        return JT_E_INTERNAL;
    }
    return request_move(r, &who, o, m, 0);
}

/* POST /api/v1/orders/{orderId}/cancel: the buyer (or an admin), from PAID
 * or PREPARING; every line's units back and the total refunded. Cancelling
 * is idempotent by nature (a second cancel is a 409 that changes nothing):
 * the route takes no Idempotency-Key. */
jt_err
lifecycle_cancel(jt_req *r)
{
    jt_principal who;
    jt_write *wr;
    jt_err e;
    move *m;

    if ((e = auth_require(r, &who)) != JT_OK) {
        return e;
    }
    if ((m = new_move(r, "CANCELLED")) == NULL) {
        return JT_E_INTERNAL;
    }
    if ((e = load_for(r, &who, m, 0)) != JT_OK) {
        return e;
    }
    if (m->card) {
        /* the refund goes through the gateway first: CANCEL_PENDING, the
         * refund, CANCELLED (payments.h: K and R), from PAID or PREPARING
         * alike (the move table's), or again from CANCEL_PENDING. Any
         * other status is refused as a points order's is (409
         * INVALID_TRANSITION naming it, ORDER_NOT_CANCELLABLE once
         * cancelled); payments.c checks again on the row it fences. */
        jt_order_status st = jt_order_status_of(m->seen);
        if (st != JT_ORDER_CANCEL_PENDING && !jt_order_may(st, JT_ORDER_CANCEL_PENDING, JT_BY_BUYER)
            && check_move(m, m->seen) == NULL) {
            return m->refusal;
        }
        return payments_cancel(r, &who, m->order_id);
    }
    /* refused before any lock when it cannot be: the transaction checks
     * again, on the row it fences */
    if (check_move(m, m->seen) == NULL) {
        return m->refusal;
    }
    if ((e = jt_write_begin(r, &wr, who.user_id, NULL, JT_WRITE_KEY_IGNORED)) != JT_OK) {
        return e;
    }
    return run_move(r, wr, m);
}

/* --- the sweep ------------------------------------------------------------------------ */

/* Due orders of one status, oldest first, after the cursor (time, id). */
static const char SQL_DUE_PAID[] =
    "SELECT id, paid_at FROM orders WHERE status = ? AND paid_at <= ? AND (paid_at > ? OR (paid_at = ? AND id > ?))"
    " ORDER BY paid_at, id LIMIT ?";
static const char SQL_DUE_RETURN[] =
    "SELECT id, return_requested_at FROM orders WHERE status = ? AND return_requested_at <= ?"
    " AND (return_requested_at > ? OR (return_requested_at = ? AND id > ?)) ORDER BY return_requested_at, id LIMIT ?";

static const char SQL_ORDER_BUYER[] = "SELECT user_id FROM orders WHERE id = ?";

enum { DUE_SHIP, DUE_DELIVER, DUE_RETURN };

/* In graph order, so an order due for all of them moves PAID → PREPARING
 * → SHIPPING → DELIVERED in one sweep, one transaction per move. */
static const struct {
    const char *from;
    const char *to;
    const char *sql;
    int         due;
} rules[] = {
    { "PAID", "PREPARING", SQL_DUE_PAID, DUE_SHIP },
    { "PREPARING", "SHIPPING", SQL_DUE_PAID, DUE_SHIP },
    { "SHIPPING", "DELIVERED", SQL_DUE_PAID, DUE_DELIVER },
    { "RETURN_REQUESTED", "RETURNED", SQL_DUE_RETURN, DUE_RETURN },
};

/* One move by the scheduler: locks, the transaction, the outcome. */
static void
sweep_one(const jt_conf *c, jt_db *db, jt_redis *redis, jt_arena *a, int64_t id, const char *from, const char *to,
          jt_sweep_report *out)
{
    jt_tx_policy pol;
    jt_lockset locks;
    const char **keys;
    jt_tx_rc rc;
    move m;
    int n, sells_all;

    memset(&m, 0, sizeof(m));
    m.conf = c;
    m.order_id = id;
    m.to = to;
    m.expect_from = from;
    m.actor = ACT_SCHEDULER;
    m.arena = a;
    if (load_lines(db, a, &m, 0, &sells_all) != JT_DB_OK) {
        out->failed++;
        return;
    }
    if (target_refunds(to)) {
        jt_val p[1] = { JT_VI(id) };
        jt_rows rows;
        if (jt_db_exec(db, a, SQL_ORDER_BUYER, p, 1, &rows) != JT_DB_OK || rows.nrows != 1) {
            out->failed++;
            return;
        }
        m.buyer = jt_cell(&rows, 0, 0)->i;
    }
    if ((keys = move_lock_keys(a, &m, &n)) == NULL
        || jt_lock_acquire_all(redis, a, &locks, keys, n, c->lock_wait_ms, c->lock_lease_ms) == JT_LOCK_TIMEOUT) {
        out->failed++;   /* busy: the next sweep tries again */
        return;
    }
    jt_tx_policy_init(&pol, c);
    rc = jt_tx_run(db, a, &pol, move_body, &m);
    jt_lock_release_all(redis, a, &locks);
    if (rc == JT_TX_OK) {
        out->moved++;
        JT_METRIC_INC(order_moves);
    } else if (rc == JT_TX_ABORTED) {
        out->skipped++;
        if (!m.gone) {
            jt_log_warn("sweep: order %lld was not moved from %s to %s: %s", (long long) id, from, to,
                        jt_err_lookup(m.refusal)->code);
        }
    } else {
        out->failed++;
    }
}

jt_err
lifecycle_sweep(const jt_conf *c, jt_db *db, jt_redis *redis, jt_arena *a, jt_sweep_report *out)
{
    int64_t deadline = jt_clock_mono_ms() + c->lc_sweep_deadline * 1000;
    const char *sweep_key[1] = { JT_LOCKKEY_SWEEP };
    jt_lockset sweep_lock;
    size_t k;

    jt_arena scratch;
    jt_err result = JT_OK;

    memset(out, 0, sizeof(*out));
    if (jt_db_ready(db) != JT_DB_OK) {
        return JT_E_DATABASE_UNAVAILABLE;
    }
    if (jt_lock_acquire_all(redis, a, &sweep_lock, sweep_key, 1, 0, c->lc_sweep_deadline * 1000 + 5000)
        == JT_LOCK_TIMEOUT) {
        out->locked_out = 1;
        return JT_OK;
    }
    /* each move's memory (rows, answers, Redis replies) is dropped after
     * it: a sweep of many moves stays small */
    if (jt_arena_init(&scratch, 64 * 1024) != 0) {
        jt_lock_release_all(redis, a, &sweep_lock);
        return JT_E_INTERNAL;
    }
    for (k = 0; k < sizeof(rules) / sizeof(rules[0]) && !out->out_of_time; k++) {
        int64_t after = rules[k].due == DUE_SHIP      ? c->lc_ship_after
                        : rules[k].due == DUE_DELIVER ? c->lc_deliver_after
                                                      : c->lc_return_complete_after;
        char last_at[JT_SQL_TIME_LEN] = "1000-01-01 00:00:00.000000";
        int64_t last_id = 0;

        for (;;) {
            jt_sql_time_buf due;
            jt_val p[6];
            jt_rows rows;
            int64_t ids[JT_LC_BATCH_MAX];
            int i, n;

            p[0] = JT_VS(rules[k].from);
            p[1] = jt_sql_time(&due, jt_clock_now_us() - after * 1000000);
            p[2] = JT_VS(last_at);
            p[3] = JT_VS(last_at);
            p[4] = JT_VI(last_id);
            p[5] = JT_VI(c->lc_batch < JT_LC_BATCH_MAX ? c->lc_batch : JT_LC_BATCH_MAX);
            jt_arena_reset(&scratch);
            if (jt_db_exec(db, &scratch, rules[k].sql, p, 6, &rows) != JT_DB_OK) {
                result = JT_E_DATABASE_UNAVAILABLE;
                goto done;
            }
            n = rows.nrows;
            for (i = 0; i < n; i++) {
                ids[i] = jt_cell(&rows, i, 0)->i;
            }
            if (n > 0) {
                snprintf(last_at, sizeof(last_at), "%s", jt_cell(&rows, n - 1, 1)->s);
                last_id = ids[n - 1];
            }
            for (i = 0; i < n; i++) {
                if (jt_clock_mono_ms() >= deadline) {
                    out->out_of_time = 1;
                    break;
                }
                jt_arena_reset(&scratch);
                sweep_one(c, db, redis, &scratch, ids[i], rules[k].from, rules[k].to, out);
            }
            if (out->out_of_time || n < p[5].i) {
                break;
            }
        }
    }
done:
    jt_arena_destroy(&scratch);
    jt_lock_release_all(redis, a, &sweep_lock);
    return result;
}
