/* Order statuses and the moves between them: the one list (order_status.c),
 * so that every status an order can have is named once, with what it means
 * for its stock and money, and every move a module makes is a row of one
 * table. Card payments add PAYMENT_PENDING, PAYMENT_FAILED, PAYMENT_EXPIRED,
 * CANCEL_PENDING and OUT_OF_STOCK; the order lifecycle adds its own rows
 * (PREPARING, SHIPPING, ...) to the same two tables.
 *
 * The database keeps the name (orders.status is text, sql/012); C code
 * binds it from here and never spells one in SQL, except in the audit's
 * fixed statements, which use the lists below. */
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
    JT_ORDER__COUNT,
    JT_ORDER_UNKNOWN = -1
} jt_order_status;

/* Who makes a move (for the table; a route checks its own caller). */
typedef enum {
    JT_BY_BUYER = 1,      /* the buyer's request (or an admin's) */
    JT_BY_SERVER = 2,     /* the request that placed or verifies the order, the webhook */
    JT_BY_SWEEPER = 4     /* the payment sweeper */
} jt_order_actor;

/* The statuses whose order lines hold stock: the units are taken from the
 * stock rows when the order enters one and given back when it leaves them
 * all. The audit's stock checks count these (the unit test holds this
 * text to the table). */
#define JT_ORDER_STOCK_HOLDING_SQL "'PAID','PAYMENT_PENDING','CANCEL_PENDING'"

const char     *jt_order_status_name(jt_order_status s);
jt_order_status jt_order_status_of(const char *name);
/* Do the order's lines hold stock in this status? */
int             jt_order_status_holds_stock(jt_order_status s);
/* Is from -> to a move `by` may make? */
int             jt_order_may(jt_order_status from, jt_order_status to, jt_order_actor by);

#endif
