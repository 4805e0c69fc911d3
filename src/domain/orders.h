/* Orders paid with points (orders.c): placing, reading and listing them.
 * What happens to an order after it is paid (moves, cancel, return) is
 * domain/lifecycle.c; both show an order the same way (orders_write). */
#ifndef JT_ORDERS_H
#define JT_ORDERS_H

#include <json-c/json.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "domain/write.h"
#include "http/request.h"
#include "store/db.h"
#include "store/tx.h"

#define JT_ORDER_MAX_ITEMS 50
#define JT_ORDER_MAX_QTY 999
#define JT_FREE_SHIPPING_FROM 30000
#define JT_SHIPPING_FEE 3000

/* The columns of an order as orders_fetch reads it. */
enum jt_order_col {
    JT_ORDER_COL_ID = 0,
    JT_ORDER_COL_USER,
    JT_ORDER_COL_STATUS,
    JT_ORDER_COL_ITEMS_TOTAL,
    JT_ORDER_COL_FEE,
    JT_ORDER_COL_TOTAL,
    JT_ORDER_COL_SHIP,
    JT_ORDER_COL_CREATED,
    JT_ORDER_COL_CANCELLED,
    JT_ORDER_COL_VERSION,
    JT_ORDER_COL_PAID,
    JT_ORDER_COL_PREPARING,
    JT_ORDER_COL_SHIPPED,
    JT_ORDER_COL_DELIVERED,
    JT_ORDER_COL_RETURN_REQUESTED,
    JT_ORDER_COL_RETURNED,
    JT_ORDER_COL_TRACKING,
    JT_ORDER_COL_RETURN_REASON,
    JT_ORDER_COL_RETURNABLE_UNTIL,
    JT_ORDER_COL_METHOD           /* POINTS or CARD */
};
/* The order rule for shipping: free from 30,000 of items. */
static inline int64_t
orders_shipping_fee(int64_t items_total)
{
    return items_total >= JT_FREE_SHIPPING_FROM ? 0 : JT_SHIPPING_FEE;
}

jt_err orders_validate(jt_req *r, json_object *o);
jt_err orders_place(jt_req *r);

/* Where an order's lines come from. POST /api/v1/orders takes them from
 * its body ("items"); a cart's checkout and a wishlist's order take them
 * from the buyer's rows, and change those rows inside the order's own
 * transaction through the hook. Either way the order is placed by the one
 * order path (orders_place_from): the same body rules for shipping and
 * expectedTotal, the same pricing, locks, version fence, all or nothing,
 * errors and idempotency. */
typedef struct {
    int64_t product_id;
    int64_t option_id;     /* 0: the product has no options */
    int64_t quantity;
} jt_order_item;

/* Runs first in every attempt of the order's transaction, before the order
 * reads a stock row, so what it writes commits with the order or rolls
 * back with it (a refusal, a conflict, a lost connection). JT_TX_COMMIT
 * lets the order go on; JT_TX_ABORT refuses it with *refusal (set with
 * jt_fail); JT_TX_CONFLICT and JT_TX_DBERR are what they are to any body. */
typedef jt_tx_step (*jt_order_hook)(jt_tx *tx, void *data, jt_err *refusal);

typedef struct {
    const char *const   *known;         /* the body's members (NULL-terminated) */
    const jt_order_item *items;         /* NULL: the body's "items" */
    int                  n;
    jt_err               empty;         /* the answer when n == 0 (CART_EMPTY...) */
    const char          *empty_detail;
    int64_t              buyer;         /* who pays, and whose balance is locked */
    jt_order_hook        hook;          /* NULL: none */
    void                *hook_data;
} jt_order_source;

/* Places the order for a write begun on body (jt_write_begin, not
 * replayed): validates the body, prices the lines, locks their stock and
 * the buyer's balance, runs the transaction (hook first) and answers 201
 * with the order, or returns the error to answer. */
jt_err orders_place_from(jt_req *r, jt_write *wr, json_object *body, const jt_order_source *src);
jt_err orders_get(jt_req *r);
jt_err orders_list(jt_req *r);

/* One order's row (no row: it does not exist), on db's connection: inside
 * the caller's transaction when one is open. */
jt_db_rc orders_fetch(jt_db *db, jt_arena *a, const jt_conf *c, int64_t id, jt_rows *out);
/* Writes row `row` of an orders_fetch result as the API shows an order,
 * with its history when `history`. */
jt_err   orders_write(jt_req *r, jt_json *w, const jt_rows *o, int row, int history);

#endif
