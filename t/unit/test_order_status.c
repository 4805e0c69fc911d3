/* The order statuses and their moves (domain/order_status.c): every name
 * round-trips, the stock-holding list the audit's SQL uses is the table's,
 * and the moves are exactly the card payment story of payments.h. */
#include <stdio.h>
#include <string.h>

#include "domain/order_status.h"
#include "tap.h"

int
main(void)
{
    char list[256] = "";
    int i, n = 0;

    for (i = 0; i < JT_ORDER__COUNT; i++) {
        const char *name = jt_order_status_name((jt_order_status) i);
        is_int(jt_order_status_of(name), i, "%s round-trips", name);
        if (jt_order_status_holds_stock((jt_order_status) i)) {
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s'%s'", n++ ? "," : "", name);
        }
    }
    is_str(list, JT_ORDER_STOCK_HOLDING_SQL, "JT_ORDER_STOCK_HOLDING_SQL is the table's stock-holding statuses");
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
    ok(!jt_order_may(JT_ORDER_CANCEL_PENDING, JT_ORDER_PAID, JT_BY_BUYER | JT_BY_SERVER | JT_BY_SWEEPER),
       "a refund once asked for is not taken back");
    /* what holds stock */
    ok(jt_order_status_holds_stock(JT_ORDER_PAYMENT_PENDING), "a reservation holds stock");
    ok(jt_order_status_holds_stock(JT_ORDER_CANCEL_PENDING), "so does a cancel waiting for its refund");
    ok(!jt_order_status_holds_stock(JT_ORDER_PAYMENT_EXPIRED), "an expired one does not");
    return done_testing();
}
