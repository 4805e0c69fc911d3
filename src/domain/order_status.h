/* Order statuses and the moves between them: the one list (order_status.c),
 * so that every status an order can have is named once, with what it means
 * for its stock and money, and every move any module makes is a row of one
 * table with who may make it. Both issue 16's card payments
 * (PAYMENT_PENDING, PAYMENT_FAILED, PAYMENT_EXPIRED, CANCEL_PENDING,
 * OUT_OF_STOCK; domain/payments.h) and issue 14's delivery lifecycle
 * (PREPARING, SHIPPING, DELIVERED, RETURN_REQUESTED, RETURNED;
 * domain/lifecycle.h) read it: lifecycle.c keeps only how it writes a move
 * into each of its targets, payment_moves.c only its transactions, and
 * neither has a list of its own.
 *
 * The database keeps the name (orders.status is text, sql/010 and 012); C
 * code binds it from here and never spells one in SQL, except in fixed
 * statements (the audit, the sweeps, popular products), which use the lists
 * below (t/unit/test_order_status holds each list to the table). */
#ifndef JT_ORDER_STATUS_H
#define JT_ORDER_STATUS_H

typedef enum {
    JT_ORDER_PAID = 0,
    JT_ORDER_CANCELLED,
    JT_ORDER_PAYMENT_PENDING,
    JT_ORDER_PAYMENT_FAILED,
    JT_ORDER_PAYMENT_EXPIRED,
    JT_ORDER_CANCEL_PENDING,
    JT_ORDER_OUT_OF_STOCK,
    JT_ORDER_PREPARING,
    JT_ORDER_SHIPPING,
    JT_ORDER_DELIVERED,
    JT_ORDER_RETURN_REQUESTED,
    JT_ORDER_RETURNED,
    JT_ORDER__COUNT,
    JT_ORDER_UNKNOWN = -1
} jt_order_status;

/* Who makes a move (for the table; a route checks its own caller). */
typedef enum {
    JT_BY_BUYER = 1,       /* the buyer's request */
    JT_BY_SERVER = 2,      /* the request that placed or verifies a card order, the webhook */
    JT_BY_SWEEPER = 4,     /* the payment sweeper */
    JT_BY_SELLER = 8,      /* the seller of every line of the order */
    JT_BY_ADMIN = 16,      /* an admin, by hand */
    JT_BY_SCHEDULER = 32   /* the lifecycle's scheduler */
} jt_order_actor;

#define JT_BY_STAFF (JT_BY_SELLER | JT_BY_ADMIN | JT_BY_SCHEDULER)

/* The statuses whose order lines hold stock: the units are taken from the
 * stock rows when the order enters one and given back when it leaves them
 * all. The audit's stock checks count these. */
#define JT_ORDER_STOCK_HOLDING_SQL \
    "'PAID','PAYMENT_PENDING','CANCEL_PENDING','PREPARING','SHIPPING','DELIVERED','RETURN_REQUESTED'"
/* The statuses of an order that sold its units (paid, not cancelled or
 * returned): popular products count these. */
#define JT_ORDER_SOLD_SQL "'PAID','CANCEL_PENDING','PREPARING','SHIPPING','DELIVERED','RETURN_REQUESTED'"
/* The statuses whose order has been refunded exactly once, all of it. */
#define JT_ORDER_REFUNDED_SQL "'CANCELLED','RETURNED'"

const char     *jt_order_status_name(jt_order_status s);
jt_order_status jt_order_status_of(const char *name);
/* Do the order's lines hold stock in this status? */
int             jt_order_status_holds_stock(jt_order_status s);
/* Has an order in this status sold its units? */
int             jt_order_status_sold(jt_order_status s);
/* Has an order in this status been refunded (once, in full)? */
int             jt_order_status_refunded(jt_order_status s);
/* Is from -> to a move one of `by` (JT_BY_* bits) may make? */
int             jt_order_may(jt_order_status from, jt_order_status to, int by);
/* Is from -> to a move at all (by anyone)? */
int             jt_order_is_move(jt_order_status from, jt_order_status to);

#endif
