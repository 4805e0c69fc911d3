/* The one table of order statuses and moves (order_status.h says who
 * reads it). */
#include "domain/order_status.h"

#include <stddef.h>
#include <string.h>

static const struct {
    const char *name;
    int         holds_stock;
    int         sold;
    int         refunded;
} statuses[JT_ORDER__COUNT] = {
    [JT_ORDER_PAID]             = { "PAID", 1, 1, 0 },
    [JT_ORDER_CANCELLED]        = { "CANCELLED", 0, 0, 1 },
    [JT_ORDER_PAYMENT_PENDING]  = { "PAYMENT_PENDING", 1, 0, 0 },   /* reserved while the buyer pays */
    [JT_ORDER_PAYMENT_FAILED]   = { "PAYMENT_FAILED", 0, 0, 0 },
    [JT_ORDER_PAYMENT_EXPIRED]  = { "PAYMENT_EXPIRED", 0, 0, 0 },
    [JT_ORDER_CANCEL_PENDING]   = { "CANCEL_PENDING", 1, 1, 0 },    /* given back with the refund */
    [JT_ORDER_OUT_OF_STOCK]     = { "OUT_OF_STOCK", 0, 0, 0 },
    [JT_ORDER_PREPARING]        = { "PREPARING", 1, 1, 0 },
    [JT_ORDER_SHIPPING]         = { "SHIPPING", 1, 1, 0 },
    [JT_ORDER_DELIVERED]        = { "DELIVERED", 1, 1, 0 },
    [JT_ORDER_RETURN_REQUESTED] = { "RETURN_REQUESTED", 1, 1, 0 },
    [JT_ORDER_RETURNED]         = { "RETURNED", 0, 0, 1 },          /* units back, refunded */
};

/* Every move an order can make, and who makes it; anything else is
 * refused (lifecycle: 409 INVALID_TRANSITION; payments: a bug, rolled
 * back). A points order's cancel is PAID/PREPARING -> CANCELLED in one
 * move; a card order's goes through CANCEL_PENDING while the gateway
 * refunds (lifecycle.c hands a card cancel to payments.c). */
static const struct {
    jt_order_status from, to;
    int             by;
} moves[] = {
    /* the delivery lifecycle (lifecycle.h), any order once PAID */
    { JT_ORDER_PAID,             JT_ORDER_PREPARING,        JT_BY_STAFF },
    { JT_ORDER_PREPARING,        JT_ORDER_SHIPPING,         JT_BY_STAFF },
    { JT_ORDER_SHIPPING,         JT_ORDER_DELIVERED,        JT_BY_STAFF },
    { JT_ORDER_DELIVERED,        JT_ORDER_RETURN_REQUESTED, JT_BY_BUYER },
    { JT_ORDER_RETURN_REQUESTED, JT_ORDER_RETURNED,         JT_BY_STAFF },
    /* a points order's cancel: units back and the total refunded at once */
    { JT_ORDER_PAID,             JT_ORDER_CANCELLED,        JT_BY_BUYER | JT_BY_ADMIN },
    { JT_ORDER_PREPARING,        JT_ORDER_CANCELLED,        JT_BY_BUYER | JT_BY_ADMIN },
    /* a card order being paid (payments.h) */
    { JT_ORDER_PAYMENT_PENDING,  JT_ORDER_PAID,             JT_BY_SERVER | JT_BY_SWEEPER },
    { JT_ORDER_PAYMENT_PENDING,  JT_ORDER_PAYMENT_FAILED,   JT_BY_SERVER | JT_BY_SWEEPER },
    { JT_ORDER_PAYMENT_PENDING,  JT_ORDER_PAYMENT_EXPIRED,  JT_BY_SWEEPER },
    /* paid after its hold ran out: sold if the stock is still there */
    { JT_ORDER_PAYMENT_EXPIRED,  JT_ORDER_PAID,             JT_BY_SERVER | JT_BY_SWEEPER },
    { JT_ORDER_PAYMENT_EXPIRED,  JT_ORDER_OUT_OF_STOCK,     JT_BY_SERVER | JT_BY_SWEEPER },
    /* cancelling a card order (PAID or PREPARING): the refund first */
    { JT_ORDER_PAID,             JT_ORDER_CANCEL_PENDING,   JT_BY_BUYER | JT_BY_ADMIN },
    { JT_ORDER_PREPARING,        JT_ORDER_CANCEL_PENDING,   JT_BY_BUYER | JT_BY_ADMIN },
    { JT_ORDER_CANCEL_PENDING,   JT_ORDER_CANCELLED,        JT_BY_BUYER | JT_BY_ADMIN | JT_BY_SWEEPER },
};

const char *
jt_order_status_name(jt_order_status s)
{
    return (int) s >= 0 && s < JT_ORDER__COUNT ? statuses[s].name : "UNKNOWN";
}

jt_order_status
jt_order_status_of(const char *name)
{
    int i;

    for (i = 0; name != NULL && i < JT_ORDER__COUNT; i++) {
        if (strcmp(statuses[i].name, name) == 0) {
            return (jt_order_status) i;
        }
    }
    return JT_ORDER_UNKNOWN;
}

int
jt_order_status_holds_stock(jt_order_status s)
{
    return (int) s >= 0 && s < JT_ORDER__COUNT && statuses[s].holds_stock;
}

int
jt_order_status_sold(jt_order_status s)
{
    return (int) s >= 0 && s < JT_ORDER__COUNT && statuses[s].sold;
}

int
jt_order_status_refunded(jt_order_status s)
{
    return (int) s >= 0 && s < JT_ORDER__COUNT && statuses[s].refunded;
}

int
jt_order_may(jt_order_status from, jt_order_status to, int by)
{
    size_t i;

    for (i = 0; i < sizeof(moves) / sizeof(moves[0]); i++) {
        if (moves[i].from == from && moves[i].to == to && (moves[i].by & by)) {
            return 1;
        }
    }
    return 0;
}

int
jt_order_is_move(jt_order_status from, jt_order_status to)
{
    return jt_order_may(from, to, ~0);
}
