/* What placing an order is made of, shared by the ways an order commits:
 * alone, paid by points in its own transaction (orders.c); combined with
 * the other orders queued on the same hot product, in the leader's one
 * transaction (combine.c); or reserved for a card payment (payments.c),
 * which waits for the gateway and is never combined. All read the same
 * parsed and priced order and apply the same rules to its lines; points
 * orders answer with the same bytes whichever way they went. */
#ifndef JT_ORDER_PLACE_H
#define JT_ORDER_PLACE_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "core/buf.h"
#include "domain/orders.h"
#include "http/request.h"
#include "store/tx.h"

/* the sale window, from the app's clock (clk.now: each statement that
 * reads it joins JT_SQL_CLOCK and binds jt_sql_now() first), as a
 * sale_window value */
enum sale_window { SALE_OPEN = 0, SALE_NOT_YET = 1, SALE_ENDED = 2 };
#define WINDOW_EXPR                                                                 \
    "CASE WHEN p.sale_starts_at IS NOT NULL AND p.sale_starts_at > clk.now THEN 1"  \
    " WHEN p.sale_ends_at IS NOT NULL AND p.sale_ends_at <= clk.now THEN 2 ELSE 0 END"

typedef struct {
    int64_t     product_id;
    int64_t     option_id;     /* 0: the product has no options */
    int64_t     quantity;
    const char *name;          /* snapshot */
    int64_t     unit_price;    /* price (+ extra price) when priced */
    int64_t     line_total;
} order_line;

typedef struct {
    jt_req         *r;
    int64_t         buyer;
    order_line      lines[JT_ORDER_MAX_ITEMS];
    int             n;
    int64_t         items_total;
    int64_t         shipping_fee;
    int64_t         total;
    int64_t         expected;      /* expectedTotal, when has_expected */
    int             has_expected;
    unsigned char  *ship_sealed;
    size_t          ship_len;
    jt_err          refusal;
    /* the source's step inside the transaction (orders.h), or NULL */
    jt_order_hook   hook;
    void           *hook_data;
    /* results */
    int64_t         order_id;
    int64_t         balance;
    const char     *created_at;
    jt_buf          body;
} order_tx;

/* The 201 answer of a placed order (also its order.paid outbox payload),
 * from t's lines, totals, order id, balance and created_at, in a's memory. */
void order_answer_body(jt_arena *a, order_tx *t);

/* items_total, shipping_fee and total from the lines' line_total; JT_OK, or
 * JT_E_INVALID_REQUEST when a sum is out of range. */
jt_err order_totals(order_tx *t);

/* Parses an order body (items, shipping, expectedTotal, payment) and
 * prices every line from the database, outside any lock; PRICE_CHANGED
 * when the buyer's expectedTotal is not the total. t->r and t->buyer must
 * be set. */
jt_err order_prepare(jt_req *r, json_object *o, order_tx *t);

/* A placed order's 201: its Location, then the write's finish (cache,
 * unlock, answer: write.h). */
void   order_reply_created(jt_req *r, jt_write *w, int64_t order_id);

/* Inside an order's transaction: its lines into order_items, a few rows to
 * a statement (t->order_id set). */
jt_tx_step order_insert_lines(jt_tx *tx, const order_tx *t);

/* The "items" member of an order answer, from the lines. */
void   order_items_json(jt_json *w, const order_line *lines, int n);

/* The order as GET /api/v1/orders/{id} shows it, read inside tx (so an
 * answer says what the transaction leaves), written into out. */
jt_err order_answer_read(jt_tx *tx, jt_req *r, int64_t order_id, jt_buf *out);

#endif
