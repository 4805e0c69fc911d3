/* Orders paid with points (orders.c): placing, reading and listing them.
 * What happens to an order after it is paid (moves, cancel, return) is
 * domain/lifecycle.c; both show an order the same way (orders_write). */
#ifndef JT_ORDERS_H
#define JT_ORDERS_H

#include <json-c/json.h>

#include "core/buf.h"
#include "core/config.h"
#include "http/request.h"
#include "store/db.h"

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
    JT_ORDER_COL_RETURNABLE_UNTIL
};

jt_err orders_validate(jt_req *r, json_object *o);
jt_err orders_place(jt_req *r);
jt_err orders_get(jt_req *r);
jt_err orders_list(jt_req *r);

/* One order's row (no row: it does not exist), on db's connection: inside
 * the caller's transaction when one is open. */
jt_db_rc orders_fetch(jt_db *db, jt_arena *a, const jt_conf *c, int64_t id, jt_rows *out);
/* Writes row `row` of an orders_fetch result as the API shows an order,
 * with its history when `history`. */
jt_err   orders_write(jt_req *r, jt_json *w, const jt_rows *o, int row, int history);

#endif
