/* Orders paid with points (orders.c): placing, reading, listing and
 * cancelling them. */
#ifndef JT_ORDERS_H
#define JT_ORDERS_H

#include <json-c/json.h>

#include "http/request.h"

#define JT_ORDER_MAX_ITEMS 50
#define JT_ORDER_MAX_QTY 999
#define JT_FREE_SHIPPING_FROM 30000
#define JT_SHIPPING_FEE 3000

jt_err orders_validate(jt_req *r, json_object *o);
jt_err orders_place(jt_req *r);
jt_err orders_get(jt_req *r);
jt_err orders_list(jt_req *r);
jt_err orders_cancel(jt_req *r);

#endif
