/* The order statuses and their moves (domain/order_status.c): every name
 * round-trips, the lists the fixed SQL uses are the table's, and the moves
 * are the card payment story of payments.h and the delivery lifecycle of
 * lifecycle.h, in one table. */
#include <stdio.h>
#include <string.h>

#include "domain/order_status.h"
#include "tap.h"

/* The SQL list of the statuses for which has() is true, in table order. */
static const char *
sql_list(char *out, size_t n, int (*has)(jt_order_status))
{
    int i, k = 0;

    out[0] = '\0';
    for (i = 0; i < JT_ORDER__COUNT; i++) {
        if (has((jt_order_status) i)) {
            snprintf(out + strlen(out), n - strlen(out), "%s'%s'", k++ ? "," : "", jt_order_status_name((jt_order_status) i));
        }
    }
    return out;
}

int
main(void)
{
    char list[256];
    int i;

    for (i = 0; i < JT_ORDER__COUNT; i++) {
        const char *name = jt_order_status_name((jt_order_status) i);
        is_int(jt_order_status_of(name), i, "%s round-trips", name);
    }
    is_str(sql_list(list, sizeof(list), jt_order_status_holds_stock), JT_ORDER_STOCK_HOLDING_SQL,
           "JT_ORDER_STOCK_HOLDING_SQL is the table's stock-holding statuses");
    is_str(sql_list(list, sizeof(list), jt_order_status_sold), JT_ORDER_SOLD_SQL,
           "JT_ORDER_SOLD_SQL is the table's sold statuses");
    is_str(sql_list(list, sizeof(list), jt_order_status_refunded), JT_ORDER_REFUNDED_SQL,
           "JT_ORDER_REFUNDED_SQL is the table's refunded statuses");
    is_int(JT_ORDER__COUNT, 12, "twelve statuses: the card payments' seven and the lifecycle's five more");
    is_int(jt_order_status_of("NOPE"), JT_ORDER_UNKNOWN, "an unknown name is UNKNOWN");
    is_int(jt_order_status_of(NULL), JT_ORDER_UNKNOWN, "NULL is UNKNOWN");
    is_str(jt_order_status_name(JT_ORDER_UNKNOWN), "UNKNOWN", "UNKNOWN's name");

    /* points orders: one move */
    ok(jt_order_may(JT_ORDER_PAID, JT_ORDER_CANCELLED, JT_BY_BUYER), "PAID -> CANCELLED by the buyer");
    ok(!jt_order_may(JT_ORDER_CANCELLED, JT_ORDER_PAID, JT_BY_BUYER | JT_BY_SERVER | JT_BY_SWEEPER),
       "CANCELLED is final");
    /* a card order being paid */
    ok(jt_order_may(JT_ORDER_PAYMENT_PENDING, JT_ORDER_PAID, JT_BY_SERVER), "PENDING -> PAID by a verify or the webhook");
    ok(jt_order_may(JT_ORDER_PAYMENT_PENDING, JT_ORDER_PAID, JT_BY_SWEEPER), "... or by the sweeper");
    ok(!jt_order_may(JT_ORDER_PAYMENT_PENDING, JT_ORDER_PAID, JT_BY_BUYER), "never by the buyer's own word");
    ok(jt_order_may(JT_ORDER_PAYMENT_PENDING, JT_ORDER_PAYMENT_FAILED, JT_BY_SERVER), "PENDING -> FAILED");
    ok(jt_order_may(JT_ORDER_PAYMENT_PENDING, JT_ORDER_PAYMENT_EXPIRED, JT_BY_SWEEPER), "PENDING -> EXPIRED by the sweeper");
    ok(!jt_order_may(JT_ORDER_PAYMENT_PENDING, JT_ORDER_PAYMENT_EXPIRED, JT_BY_SERVER), "... by the sweeper only");
    ok(jt_order_may(JT_ORDER_PAYMENT_EXPIRED, JT_ORDER_PAID, JT_BY_SERVER), "EXPIRED -> PAID (paid late, stock there)");
    ok(jt_order_may(JT_ORDER_PAYMENT_EXPIRED, JT_ORDER_OUT_OF_STOCK, JT_BY_SWEEPER), "EXPIRED -> OUT_OF_STOCK");
    ok(!jt_order_may(JT_ORDER_PAYMENT_FAILED, JT_ORDER_PAID, JT_BY_SERVER | JT_BY_SWEEPER), "FAILED is final");
    ok(!jt_order_may(JT_ORDER_OUT_OF_STOCK, JT_ORDER_PAID, JT_BY_SERVER | JT_BY_SWEEPER), "OUT_OF_STOCK is final");
    /* cancelling a card order */
    ok(jt_order_may(JT_ORDER_PAID, JT_ORDER_CANCEL_PENDING, JT_BY_BUYER), "PAID -> CANCEL_PENDING by the buyer");
    ok(jt_order_may(JT_ORDER_CANCEL_PENDING, JT_ORDER_CANCELLED, JT_BY_SWEEPER), "CANCEL_PENDING -> CANCELLED by the sweeper");
    ok(jt_order_may(JT_ORDER_PAID, JT_ORDER_CANCEL_PENDING, JT_BY_ADMIN)
       && jt_order_may(JT_ORDER_CANCEL_PENDING, JT_ORDER_CANCELLED, JT_BY_ADMIN),
       "an admin cancels a card order as a buyer does (and is recorded as the admin)");
    ok(!jt_order_may(JT_ORDER_PAID, JT_ORDER_CANCEL_PENDING, JT_BY_SELLER | JT_BY_SCHEDULER),
       "... a seller or the scheduler does not");
    ok(!jt_order_may(JT_ORDER_CANCEL_PENDING, JT_ORDER_PAID, JT_BY_BUYER | JT_BY_SERVER | JT_BY_SWEEPER),
       "a refund once asked for is not taken back");
    /* the delivery lifecycle, for points and card orders alike */
    ok(jt_order_may(JT_ORDER_PAID, JT_ORDER_PREPARING, JT_BY_SELLER), "PAID -> PREPARING by the seller");
    ok(jt_order_may(JT_ORDER_PAID, JT_ORDER_PREPARING, JT_BY_SCHEDULER), "... or the scheduler");
    ok(!jt_order_may(JT_ORDER_PAID, JT_ORDER_PREPARING, JT_BY_BUYER), "... never the buyer");
    ok(!jt_order_may(JT_ORDER_PAYMENT_PENDING, JT_ORDER_PREPARING, JT_BY_STAFF | JT_BY_SERVER | JT_BY_SWEEPER),
       "an order not yet paid is not prepared");
    ok(!jt_order_is_move(JT_ORDER_PAYMENT_PENDING, JT_ORDER_CANCELLED), "nor cancelled by the lifecycle");
    ok(jt_order_may(JT_ORDER_PREPARING, JT_ORDER_SHIPPING, JT_BY_ADMIN), "PREPARING -> SHIPPING");
    ok(jt_order_may(JT_ORDER_SHIPPING, JT_ORDER_DELIVERED, JT_BY_SCHEDULER), "SHIPPING -> DELIVERED");
    ok(jt_order_may(JT_ORDER_DELIVERED, JT_ORDER_RETURN_REQUESTED, JT_BY_BUYER), "DELIVERED -> RETURN_REQUESTED");
    ok(jt_order_may(JT_ORDER_RETURN_REQUESTED, JT_ORDER_RETURNED, JT_BY_SELLER), "RETURN_REQUESTED -> RETURNED");
    ok(jt_order_may(JT_ORDER_PREPARING, JT_ORDER_CANCELLED, JT_BY_BUYER), "a points order cancelled while PREPARING");
    ok(!jt_order_is_move(JT_ORDER_SHIPPING, JT_ORDER_CANCELLED), "not once it ships");
    ok(jt_order_may(JT_ORDER_PREPARING, JT_ORDER_CANCEL_PENDING, JT_BY_BUYER),
       "a card order cancelled while PREPARING: the refund first");
    ok(!jt_order_is_move(JT_ORDER_SHIPPING, JT_ORDER_CANCEL_PENDING), "... not once it ships");
    ok(!jt_order_is_move(JT_ORDER_RETURNED, JT_ORDER_CANCELLED), "RETURNED is final");
    /* what holds stock */
    ok(jt_order_status_holds_stock(JT_ORDER_PAYMENT_PENDING), "a reservation holds stock");
    ok(jt_order_status_holds_stock(JT_ORDER_CANCEL_PENDING), "so does a cancel waiting for its refund");
    ok(!jt_order_status_holds_stock(JT_ORDER_PAYMENT_EXPIRED), "an expired one does not");
    return done_testing();
}
