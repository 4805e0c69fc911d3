#include "domain/order_status.h"

#include <stddef.h>
#include <string.h>

static const struct {
    const char *name;
    int         holds_stock;
} statuses[JT_ORDER__COUNT] = {
    [JT_ORDER_PAID]            = { "PAID", 1 },
    [JT_ORDER_CANCELLED]       = { "CANCELLED", 0 },
    [JT_ORDER_PAYMENT_PENDING] = { "PAYMENT_PENDING", 1 },   /* reserved while the buyer pays */
    [JT_ORDER_PAYMENT_FAILED]  = { "PAYMENT_FAILED", 0 },
    [JT_ORDER_PAYMENT_EXPIRED] = { "PAYMENT_EXPIRED", 0 },
    [JT_ORDER_CANCEL_PENDING]  = { "CANCEL_PENDING", 1 },    /* given back with the refund */
    [JT_ORDER_OUT_OF_STOCK]    = { "OUT_OF_STOCK", 0 },
};

/* Every move an order can make, and who makes it. Points orders use the
 * first row only; the rest are card payments (domain/payments.h tells the
 * whole story of each). */
static const struct {
    jt_order_status from, to;
    int             by;
} moves[] = {
    { JT_ORDER_PAID,            JT_ORDER_CANCELLED,       JT_BY_BUYER },
    /* a card order being paid */
    { JT_ORDER_PAYMENT_PENDING, JT_ORDER_PAID,            JT_BY_SERVER | JT_BY_SWEEPER },
    { JT_ORDER_PAYMENT_PENDING, JT_ORDER_PAYMENT_FAILED,  JT_BY_SERVER | JT_BY_SWEEPER },
    { JT_ORDER_PAYMENT_PENDING, JT_ORDER_PAYMENT_EXPIRED, JT_BY_SWEEPER },
    /* paid after its hold ran out: sold if the stock is still there */
    { JT_ORDER_PAYMENT_EXPIRED, JT_ORDER_PAID,            JT_BY_SERVER | JT_BY_SWEEPER },
    { JT_ORDER_PAYMENT_EXPIRED, JT_ORDER_OUT_OF_STOCK,    JT_BY_SERVER | JT_BY_SWEEPER },
    /* cancelling a card order: the refund first */
    { JT_ORDER_PAID,            JT_ORDER_CANCEL_PENDING,  JT_BY_BUYER },
    { JT_ORDER_CANCEL_PENDING,  JT_ORDER_CANCELLED,       JT_BY_BUYER | JT_BY_SWEEPER },
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
jt_order_may(jt_order_status from, jt_order_status to, jt_order_actor by)
{
    size_t i;

    for (i = 0; i < sizeof(moves) / sizeof(moves[0]); i++) {
        if (moves[i].from == from && moves[i].to == to && (moves[i].by & (int) by)) {
            return 1;
        }
    }
    return 0;
}
