/* What the three files of card payments share (payments.h is the story):
 * payments.c the routes, payment_moves.c the transactions that move a card
 * order and the gateway calls between them, payment_sweep.c the sweeper's
 * work and the audit at the gateway. Private to them, as auction_rows.h is
 * to the auction files. */
#ifndef JT_PAYMENT_ROWS_H
#define JT_PAYMENT_ROWS_H

#include <stdint.h>

#include "core/config.h"
#include "domain/common.h"
#include "domain/order_status.h"
#include "domain/orders.h"
#include "domain/payments.h"
#include "domain/write.h"
#include "store/db.h"
#include "store/pg.h"
#include "store/tx.h"

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
    jt_order_actor by;     /* a request's moves: whose (JT_BY_BUYER, or JT_BY_ADMIN) */
    int64_t        actor_id;   /* and the user's id (0: none) */
} pay_env;

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

typedef enum { PAY_STEP = 0, PAY_FINAL = 1 } pay_tx_kind;

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

/* A gateway payment as we recorded it (gateway_payments). */
typedef struct {
    int         found;
    int         refund_due;   /* state REFUND_DUE */
    int64_t     amount, refunded, order_id, version;
    const char *reason;
} gp_row;

typedef enum {
    SETTLE_KNOWN = 0,    /* this payment was settled before: nothing to do */
    SETTLE_CAPTURED,     /* it pays its order: PAID */
    SETTLE_MISMATCH,     /* another amount, or another merchant uid: PAYMENT_FAILED, refund */
    SETTLE_LATE_SOLD,    /* paid after the hold, the stock taken again: PAID */
    SETTLE_LATE_SHORT,   /* paid after the hold, the stock gone: OUT_OF_STOCK, refund */
    SETTLE_STRAY         /* a payment its order does not want: refund, status kept */
} settle_outcome;

/* where transactions run */
void        pay_env_of_request(pay_env *e, jt_req *r, jt_write *w);
void        pay_env_of_sweeper(pay_env *e, const jt_pay_env *s);
/* Runs body in one transaction under the locks: through the request's
 * write path (PAY_FINAL commits the request's answer; a PAY_STEP commits
 * without it and lets the locks go at once), or in the sweeper with its own
 * lock set. A refusal comes back as f->code, answered (requests) or not. */
jt_err      pay_tx(pay_env *e, const char **keys, int nkeys, jt_tx_body body, void *data, pay_refusal *f,
                   pay_tx_kind kind);
jt_tx_step  pay_refuse(pay_refusal *f, jt_err code, const char *detail);

/* rows */
jt_db_rc    pay_load_lines(pay_env *e, int64_t order_id, pay_lines *out);
/* lock:order:<id> and the stock key of every line */
const char **pay_lock_keys(jt_arena *a, int64_t order_id, const pay_lines *ls, int *n);
jt_db_rc    pay_read_card_order(jt_db *db, jt_arena *a, int64_t id, card_order *o);
jt_db_rc    pay_read_gp(jt_db *db, jt_arena *a, const char *imp_uid, gp_row *g);
/* The order a merchant uid belongs to, or 0. */
jt_db_rc    pay_order_of_merchant(pay_env *e, const char *merchant_uid, int64_t *order_id);
/* A gateway read's answer, where "no such payment" is an answer too:
 * JT_PG_NOT_FOUND becomes JT_PG_OK with status unknown (not paid). */
jt_pg_rc    pay_found(jt_pg_rc rc, jt_pg_payment *p);
/* Due for the sweeper `ms` from now, in business time. */
jt_val      pay_due_in(jt_sql_time_buf *b, int64_t ms);

/* pieces of transactions */
jt_tx_step  pay_order_move(jt_tx *tx, int64_t id, int64_t version, jt_order_status from, jt_order_status to,
                           jt_order_actor by, int64_t actor_id);
jt_tx_step  pay_outbox(jt_tx *tx, const char *topic, int64_t order_id, const char *fmt, long long a, long long b);
jt_tx_step  pay_card_done(jt_tx *tx, const card_order *o, int64_t order_id, const char *failure);
jt_tx_step  pay_stock_set(jt_tx *tx, int64_t product_id, int64_t option_id, int64_t stock, int64_t version,
                          int64_t pversion);

/* the moves (payments.h: T3/E, S, R, and a sweeper's claim) */
jt_err      pay_release(pay_env *e, int64_t order_id, jt_order_status to, jt_order_actor by, const char *failure,
                        int *moved);
jt_err      pay_settle(pay_env *e, const jt_pg_payment *p, int64_t asked, settle_outcome *outcome);
jt_err      pay_refund_one(pay_env *e, const char *imp_uid, int *completed);
int         pay_claim(pay_env *e, const char *sql, jt_val key, int64_t version);

#endif
