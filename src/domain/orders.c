/* Orders paid with points. Read orders_place() top to bottom: validate and
 * price outside any lock → idempotency → locks on every stock row and the
 * balance → one transaction (read versions, check, fenced UPDATEs, order,
 * lines, ledger, outbox, idempotency row) retried as a whole on conflict →
 * commit → cache the answer → unlock → answer. */
#include "domain/orders.h"
#include "domain/order_place.h"
#include "domain/combine.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/metrics.h"
#include "core/pii.h"
#include "domain/accounts.h"
#include "domain/catalog.h"
#include "domain/common.h"
#include "domain/cursor.h"
#include "domain/events.h"
#include "domain/lifecycle.h"
#include "domain/lockkey.h"
#include "domain/payments.h"
#include "domain/points.h"
#include "domain/write.h"
#include "http/json.h"
#include "store/db.h"

/* inside the transaction: the rows an order takes stock from (live ones);
 * the first line's are read with the buyer's balance and its version, and
 * written back with it, fenced, in one statement (one round trip, not two,
 * while the locks are held; the rules and the ledger row stay in points).
 *
 * An option line is priced by its product (price + extra) but writes only
 * the option's row, so its UPDATE also joins the product row and matches
 * the product version it was priced at: a PATCH or DELETE that committed
 * since is a conflict (re-read, re-price), and because a multi-table UPDATE
 * reads the joined row with a share lock held to COMMIT, one that comes
 * after waits for this order. Either way an option is never sold at a price
 * or on a product that is no longer so when the order commits. */
static const char SQL_ORDER_STOCK_PRODUCT[] =
    "SELECT p.price, p.stock, p.version, " WINDOW_EXPR " FROM " JT_SQL_CLOCK ", products p"
    " WHERE p.id = ? AND p.deleted_at IS NULL";
static const char SQL_ORDER_STOCK_OPTION[] =
    "SELECT p.price + o.extra_price, o.stock, o.version, " WINDOW_EXPR ", p.version FROM " JT_SQL_CLOCK ", product_options o"
    " JOIN products p ON p.id = o.product_id WHERE o.id = ? AND p.deleted_at IS NULL";
static const char SQL_ORDER_STOCK_PRODUCT_BALANCE[] =
    "SELECT p.price, p.stock, p.version, " WINDOW_EXPR ", u.balance, u.version FROM " JT_SQL_CLOCK ", products p"
    " JOIN users u WHERE p.id = ? AND p.deleted_at IS NULL AND u.id = ?";
static const char SQL_ORDER_STOCK_OPTION_BALANCE[] =
    "SELECT p.price + o.extra_price, o.stock, o.version, " WINDOW_EXPR ", u.balance, u.version, p.version"
    " FROM " JT_SQL_CLOCK ", product_options o JOIN products p ON p.id = o.product_id JOIN users u"
    " WHERE o.id = ? AND p.deleted_at IS NULL AND u.id = ?";
static const char SQL_STOCK_PRODUCT_BALANCE_WRITE[] =
    "UPDATE products s JOIN users u SET s.stock = ?, s.version = s.version + 1,"
    " u.balance = ?, u.version = u.version + 1 WHERE s.id = ? AND s.version = ? AND u.id = ? AND u.version = ?";
static const char SQL_STOCK_OPTION_BALANCE_WRITE[] =
    "UPDATE product_options s JOIN products p ON p.id = s.product_id JOIN users u SET s.stock = ?,"
    " s.version = s.version + 1, u.balance = ?, u.version = u.version + 1"
    " WHERE s.id = ? AND s.version = ? AND p.version = ? AND u.id = ? AND u.version = ?";
static const char SQL_ORDER_OPTION_WRITE[] =
    "UPDATE product_options s JOIN products p ON p.id = s.product_id SET s.stock = ?, s.version = s.version + 1"
    " WHERE s.id = ? AND s.version = ? AND p.version = ?";
static const char SQL_STOCK_PRODUCT_WRITE[] =
    "UPDATE products SET stock = ?, version = version + 1 WHERE id = ? AND version = ?";
/* RETURNING: the id and the time the row was stamped with, in the same
 * round trip as the insert; paid_at is business time (the scheduler counts
 * from it, domain/lifecycle.c) */
static const char SQL_ORDER_INSERT[] =
    "INSERT INTO orders (user_id, status, items_total, shipping_fee, total, shipping_enc, paid_at)"
    " VALUES (?, 'PAID', ?, ?, ?, ?, ?) RETURNING id, DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%s.%fZ')";
/* an order's lines go in ITEM_BATCH rows per statement; one text per row
 * count, since the prepared-statement cache is keyed by the text's address */
#define ITEM_BATCH 8
#define ITEM_INSERT                                                                             \
    "INSERT INTO order_items (order_id, line_no, product_id, option_id, name, unit_price, quantity," \
    " line_total) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
#define ITEM_ROW ", (?, ?, ?, ?, ?, ?, ?, ?)"
static const char *const SQL_ITEM_INSERT[ITEM_BATCH + 1] = {
    NULL,
    ITEM_INSERT,
    ITEM_INSERT ITEM_ROW,
    ITEM_INSERT ITEM_ROW ITEM_ROW,
    ITEM_INSERT ITEM_ROW ITEM_ROW ITEM_ROW,
    ITEM_INSERT ITEM_ROW ITEM_ROW ITEM_ROW ITEM_ROW,
    ITEM_INSERT ITEM_ROW ITEM_ROW ITEM_ROW ITEM_ROW ITEM_ROW,
    ITEM_INSERT ITEM_ROW ITEM_ROW ITEM_ROW ITEM_ROW ITEM_ROW ITEM_ROW,
    ITEM_INSERT ITEM_ROW ITEM_ROW ITEM_ROW ITEM_ROW ITEM_ROW ITEM_ROW ITEM_ROW,
};
/* reads: an order as the API shows it (the column order is enum
 * jt_order_col, orders.h); the first parameter is the return window, for
 * returnableUntil */
#define TIME(col) "DATE_FORMAT(" col ", '%Y-%m-%dT%H:%i:%s.%fZ')"
#define ORDER_COLUMNS                                                                                    \
    "SELECT id, user_id, status, items_total, shipping_fee, total, shipping_enc, " TIME("created_at") ", " \
    TIME("cancelled_at") ", version, " TIME("paid_at") ", " TIME("preparing_at") ", " TIME("shipped_at")   \
    ", " TIME("delivered_at") ", " TIME("return_requested_at") ", " TIME("returned_at") ", tracking_number," \
    " return_reason, " TIME("delivered_at + INTERVAL ? SECOND") ", payment_method FROM orders"
static const char SQL_ORDER_GET[] = ORDER_COLUMNS " WHERE id = ?";
static const char SQL_ORDER_PAGE[] = ORDER_COLUMNS " WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?";
static const char SQL_ORDER_PAGE_STATUS[] =
    ORDER_COLUMNS " WHERE user_id = ? AND status = ? AND id < ? ORDER BY id DESC LIMIT ?";
static const char SQL_ITEMS_GET[] =
    "SELECT product_id, option_id, name, unit_price, quantity, line_total FROM order_items"
    " WHERE order_id = ? ORDER BY line_no";
static const char SQL_HISTORY[] =
    "SELECT from_status, to_status, " TIME("at") ", actor, actor_id FROM order_events WHERE order_id = ?"
    " ORDER BY id LIMIT 64";

#define O_ID          JT_ORDER_COL_ID
#define O_USER        JT_ORDER_COL_USER
#define O_STATUS      JT_ORDER_COL_STATUS
#define O_ITEMS_TOTAL JT_ORDER_COL_ITEMS_TOTAL
#define O_FEE         JT_ORDER_COL_FEE
#define O_TOTAL       JT_ORDER_COL_TOTAL
#define O_SHIP        JT_ORDER_COL_SHIP
#define O_CREATED     JT_ORDER_COL_CREATED
#define O_METHOD      JT_ORDER_COL_METHOD


/* --- validation ---------------------------------------------------------- */

static jt_err
parse_items(jt_req *r, json_object *o, order_tx *t)
{
    json_object *items;
    size_t n, i, j;

    if (!json_object_object_get_ex(o, "items", &items) || items == NULL
        || !json_object_is_type(items, json_type_array)) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'items' must be an array");
    }
    n = json_object_array_length(items);
    if (n < 1 || n > JT_ORDER_MAX_ITEMS) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "an order has 1 to %d items", JT_ORDER_MAX_ITEMS);
    }
    for (i = 0; i < n; i++) {
        json_object *it = json_object_array_get_idx(items, i), *opt;
        order_line *l = &t->lines[i];
        jt_err e;

        static const char *const known[] = { "productId", "optionId", "quantity", NULL };
        char where[32];

        if (it == NULL || !json_object_is_type(it, json_type_object)) {
            return jt_fail(r, JT_E_INVALID_REQUEST, "items[%zu] must be an object", i);
        }
        snprintf(where, sizeof(where), "items[%zu]", i);
        if ((e = jt_json_only(r, it, where, known)) != JT_OK) {
            return e;
        }
        if ((e = jt_json_int(r, it, "productId", JT_REQUIRED, 1, INT64_MAX - 1, &l->product_id, NULL)) != JT_OK
            || (e = jt_json_int(r, it, "quantity", JT_REQUIRED, 1, JT_ORDER_MAX_QTY, &l->quantity, NULL))
                   != JT_OK) {
            return e;
        }
        l->option_id = 0;
        if (json_object_object_get_ex(it, "optionId", &opt) && opt != NULL
            && (e = jt_json_int(r, it, "optionId", JT_REQUIRED, 1, INT64_MAX - 1, &l->option_id, NULL))
                   != JT_OK) {
            return e;
        }
        for (j = 0; j < i; j++) {
            if (t->lines[j].product_id == l->product_id && t->lines[j].option_id == l->option_id) {
                return jt_fail(r, JT_E_INVALID_REQUEST, "items[%zu] repeats an earlier product/option", i);
            }
        }
    }
    t->n = (int) n;
    return JT_OK;
}

/* Validates the shipping block and seals it (personal data at rest). */
static jt_err
seal_shipping(jt_req *r, json_object *o, order_tx *t)
{
    json_object *s;
    const char *recipient, *phone, *zip, *address, *request = NULL;
    jt_buf b;
    jt_json w;
    jt_err e;
    int i;

    static const char *const known[] = { "recipient", "phone", "zipCode", "address", "request", NULL };

    if (!json_object_object_get_ex(o, "shipping", &s) || s == NULL
        || !json_object_is_type(s, json_type_object)) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'shipping' must be an object");
    }
    if ((e = jt_json_only(r, s, "shipping", known)) != JT_OK
        || (e = jt_json_str(r, s, "recipient", JT_REQUIRED, 1, 50, &recipient)) != JT_OK
        || (e = jt_json_str(r, s, "phone", JT_REQUIRED, 10, 13, &phone)) != JT_OK
        || (e = jt_json_str(r, s, "zipCode", JT_REQUIRED, 5, 5, &zip)) != JT_OK
        || (e = jt_json_str(r, s, "address", JT_REQUIRED, 1, 200, &address)) != JT_OK
        || (e = jt_json_str(r, s, "request", JT_OPTIONAL, 0, 200, &request)) != JT_OK) {
        return e;
    }
    if (!accounts_valid_phone(phone)) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'shipping.phone' must look like 010-1234-5678");
    }
    for (i = 0; i < 5; i++) {
        if (!isdigit((unsigned char) zip[i])) {
            return jt_fail(r, JT_E_INVALID_REQUEST, "'shipping.zipCode' must be 5 digits");
        }
    }
    jt_json_begin(r, &b, &w, 256);
    jw_obj_open(&w);
    jw_kstr(&w, "recipient", recipient);
    jw_kstr(&w, "phone", phone);
    jw_kstr(&w, "zipCode", zip);
    jw_kstr(&w, "address", address);
    jw_kstr(&w, "request", request ? request : "");
    jw_obj_close(&w);
    if (b.oom || (t->ship_sealed = jt_pii_seal(r->arena, "orders.shipping", b.data, b.len, &t->ship_len))
                     == NULL) {
        return jt_fail(r, JT_E_INTERNAL, "cannot seal shipping data");
    }
    return JT_OK;
}

/* The lines a source gives (a cart's, a wishlist's) take the place of
 * the body's "items", under the same bounds; they are unique by the
 * source's own key (user, product, option). */
static jt_err
source_items(jt_req *r, const jt_order_source *src, order_tx *t)
{
    int i;

    if (src->n == 0) {
        return jt_fail(r, src->empty, "%s", src->empty_detail);
    }
    if (src->n < 0 || src->n > JT_ORDER_MAX_ITEMS) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "an order has 1 to %d items; this one would have %d",
                       JT_ORDER_MAX_ITEMS, src->n);
    }
    for (i = 0; i < src->n; i++) {
        t->lines[i].product_id = src->items[i].product_id;
        t->lines[i].option_id = src->items[i].option_id;
        t->lines[i].quantity = src->items[i].quantity;
    }
    t->n = src->n;
    return JT_OK;
}

/* The body of an order from any source: its members, the lines (the
 * body's, or the source's once the body is known to be good), the
 * expected total and the shipping block, sealed. */
static jt_err
parse_order(jt_req *r, json_object *o, const jt_order_source *src, order_tx *t)
{
    jt_err e;

    if ((e = jt_json_only(r, o, "", src->known)) != JT_OK || (e = payments_parse_method(r, o, NULL)) != JT_OK
        || (src->items == NULL && (e = parse_items(r, o, t)) != JT_OK)
        || (e = jt_json_int(r, o, "expectedTotal", JT_OPTIONAL, 0, INT64_MAX - 1, &t->expected, &t->has_expected))
               != JT_OK
        || (e = seal_shipping(r, o, t)) != JT_OK) {
        return e;
    }
    return src->items == NULL ? JT_OK : source_items(r, src, t);
}

/* POST /api/v1/orders's own source: the lines are the body's. */
static const char *const ORDER_MEMBERS[] = { "items", "shipping", "expectedTotal", "payment", NULL };

/* The order body, validated without touching the database (fuzzing). */
jt_err
orders_validate(jt_req *r, json_object *o)
{
    jt_order_source src = { ORDER_MEMBERS, NULL, 0, JT_OK, "", 0, NULL, NULL };
    order_tx *t = jt_pcalloc(r->arena, sizeof(*t));

    if (t == NULL) {
        return JT_E_INTERNAL;
    }
    t->r = r;
    return parse_order(r, o, &src, t);
}

/* The product's detail answer, parsed: its status, price and options are
 * what a line is priced by (catalog_product_json: warm from the cache, or
 * from MariaDB). Kept per request, so lines of one product parse it once. */
typedef struct {
    int64_t      id;
    json_object *o;
} priced_product;

static jt_err
product_for_pricing(jt_req *r, priced_product *seen, int *nseen, int64_t id, json_object **out)
{
    const char *data;
    size_t len;
    int i, warm;
    jt_err e;

    for (i = 0; i < *nseen; i++) {
        if (seen[i].id == id) {
            *out = seen[i].o;
            return JT_OK;
        }
    }
    if ((e = catalog_product_json(r, id, &data, &len, &warm)) != JT_OK) {
        return e == JT_E_PRODUCT_NOT_FOUND ? jt_fail(r, e, "product %lld does not exist", (long long) id) : e;
    }
    if ((*out = jt_json_parse_in(r->arena, data, len)) == NULL) {
        return jt_fail(r, JT_E_INTERNAL, "an unreadable product answer");
    }
    seen[*nseen].id = id;
    seen[(*nseen)++].o = *out;
    return JT_OK;
}

static int64_t
member_int(json_object *o, const char *k)
{
    json_object *v;

    return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;
}

static const char *
member_str(json_object *o, const char *k)
{
    json_object *v;

    return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v) : "";
}

/* Prices every line by its product as the catalog answers it now (never by
 * the client), before any lock is taken. The transaction prices again from
 * the rows it locks: this is the early refusal, and the snapshot names. */
static jt_err
price_lines(jt_req *r, order_tx *t)
{
    priced_product seen[JT_ORDER_MAX_ITEMS];
    int i, nseen = 0;

    t->items_total = 0;
    for (i = 0; i < t->n; i++) {
        order_line *l = &t->lines[i];
        json_object *p, *opts = NULL;
        const char *status;
        size_t nopts;
        jt_err e;

        if ((e = product_for_pricing(r, seen, &nseen, l->product_id, &p)) != JT_OK) {
            return e;
        }
        l->name = member_str(p, "name");
        l->unit_price = member_int(p, "price");
        status = member_str(p, "status");
        if (strcmp(status, "COMING_SOON") == 0) {
            return jt_fail(r, JT_E_NOT_ON_SALE_YET, "product %lld is not on sale yet", (long long) l->product_id);
        }
        if (strcmp(status, "ENDED") == 0) {
            return jt_fail(r, JT_E_SALE_ENDED, "the sale of product %lld has ended", (long long) l->product_id);
        }
        nopts = json_object_object_get_ex(p, "options", &opts) && json_object_is_type(opts, json_type_array)
                    ? json_object_array_length(opts) : 0;
        if (nopts > 0 && l->option_id == 0) {
            return jt_fail(r, JT_E_INVALID_REQUEST, "product %lld is ordered by option: 'optionId' is required",
                           (long long) l->product_id);
        }
        if (l->option_id != 0) {
            json_object *op = NULL;
            size_t k;
            char *name;
            size_t n;
            for (k = 0; k < nopts && op == NULL; k++) {
                json_object *c = json_object_array_get_idx(opts, k);
                op = member_int(c, "id") == l->option_id ? c : NULL;
            }
            if (op == NULL) {
                return jt_fail(r, JT_E_OPTION_NOT_FOUND, "product %lld has no option %lld",
                               (long long) l->product_id, (long long) l->option_id);
            }
            n = strlen(l->name) + strlen(member_str(op, "name")) + 4;
            if ((name = jt_palloc(r->arena, n)) == NULL) {
                return JT_E_INTERNAL;
            }
            snprintf(name, n, "%s / %s", l->name, member_str(op, "name"));
            l->name = name;
            if (__builtin_add_overflow(l->unit_price, member_int(op, "extraPrice"), &l->unit_price)) {
                return jt_fail(r, JT_E_INVALID_REQUEST, "the price is out of range");
            }
        }
        if (__builtin_mul_overflow(l->unit_price, l->quantity, &l->line_total)
            || __builtin_add_overflow(t->items_total, l->line_total, &t->items_total)) {
            return jt_fail(r, JT_E_INVALID_REQUEST, "the order total is out of range");
        }
    }
    t->shipping_fee = orders_shipping_fee(t->items_total);
    if (__builtin_add_overflow(t->items_total, t->shipping_fee, &t->total)) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "the order total is out of range");
    }
    return JT_OK;
}

/* Validation and pricing, outside any lock, for an order from any source;
 * PRICE_CHANGED when the buyer's expectedTotal is not the total. */
static jt_err
prepare_from(jt_req *r, json_object *o, const jt_order_source *src, order_tx *t)
{
    jt_err e;

    if ((e = parse_order(r, o, src, t)) != JT_OK || (e = price_lines(r, t)) != JT_OK) {
        return e;
    }
    if (t->has_expected && t->expected != t->total) {
        jt_buf x;
        jt_buf_init(&x, r->arena, 64);
        jt_buf_addf(&x, "\"currentTotal\":%lld", (long long) t->total);
        r->problem_extra = jt_buf_cstr(&x);
        return jt_fail(r, JT_E_PRICE_CHANGED, "the total is now %lld", (long long) t->total);
    }
    return JT_OK;
}

jt_err
order_prepare(jt_req *r, json_object *o, order_tx *t)
{
    jt_order_source src = { ORDER_MEMBERS, NULL, 0, JT_OK, "", t->buyer, NULL, NULL };

    return prepare_from(r, o, &src, t);
}

/* --- the transaction ------------------------------------------------------- */

/* The order's lines, ITEM_BATCH to a statement (t->order_id is set). */
jt_tx_step
order_insert_lines(jt_tx *tx, const order_tx *t)
{
    jt_rows rows;
    int i;

    for (i = 0; i < t->n; i += ITEM_BATCH) {
        jt_val v[8 * ITEM_BATCH], *q = v;
        int j, k = t->n - i < ITEM_BATCH ? t->n - i : ITEM_BATCH;
        for (j = i; j < i + k; j++, q += 8) {
            const order_line *l = &t->lines[j];
            q[0] = JT_VI(t->order_id);
            q[1] = JT_VI(j + 1);
            q[2] = JT_VI(l->product_id);
            q[3] = l->option_id ? JT_VI(l->option_id) : JT_VNULL;
            q[4] = JT_VS(l->name);
            q[5] = JT_VI(l->unit_price);
            q[6] = JT_VI(l->quantity);
            q[7] = JT_VI(l->line_total);
        }
        JT_TX_EXEC(tx, SQL_ITEM_INSERT[k], v, 8 * k, &rows);
    }
    return JT_TX_COMMIT;
}


jt_err
order_totals(order_tx *t)
{
    int64_t items = 0;
    int i;

    for (i = 0; i < t->n; i++) {
        if (__builtin_add_overflow(items, t->lines[i].line_total, &items)) {
            return JT_E_INVALID_REQUEST;
        }
    }
    t->items_total = items;
    t->shipping_fee = orders_shipping_fee(items);
    return __builtin_add_overflow(items, t->shipping_fee, &t->total) ? JT_E_INVALID_REQUEST : JT_OK;
}

static void
write_items_json(jt_json *w, const order_line *lines, int n)
{
    int i;

    jw_key(w, "items");
    jw_arr_open(w);
    for (i = 0; i < n; i++) {
        jw_obj_open(w);
        jw_kint(w, "productId", lines[i].product_id);
        if (lines[i].option_id) {
            jw_kint(w, "optionId", lines[i].option_id);
        } else {
            jw_knull(w, "optionId");
        }
        jw_kstr(w, "name", lines[i].name);
        jw_kint(w, "unitPrice", lines[i].unit_price);
        jw_kint(w, "quantity", lines[i].quantity);
        jw_kint(w, "lineTotal", lines[i].line_total);
        jw_obj_close(w);
    }
    jw_arr_close(w);
}

void
order_items_json(jt_json *w, const order_line *lines, int n)
{
    write_items_json(w, lines, n);
}

void
order_answer_body(jt_arena *a, order_tx *t)
{
    jt_json w;

    jt_buf_init(&t->body, a, 256 + (size_t) t->n * 160);
    jw_init(&w, &t->body);
    jw_obj_open(&w);
    jw_kint(&w, "orderId", t->order_id);
    jw_kstr(&w, "status", "PAID");
    jw_kint(&w, "itemsTotal", t->items_total);
    jw_kint(&w, "shippingFee", t->shipping_fee);
    jw_kint(&w, "total", t->total);
    write_items_json(&w, t->lines, t->n);
    jw_kint(&w, "balance", t->balance);
    jw_kstr(&w, "createdAt", t->created_at);
    jw_obj_close(&w);
}

static jt_tx_step
place_body(jt_tx *tx)
{
    order_tx *t = tx->data;
    int64_t stock[JT_ORDER_MAX_ITEMS], version[JT_ORDER_MAX_ITEMS], pversion[JT_ORDER_MAX_ITEMS];
    int64_t balance = 0, balance_version = 0;
    jt_tx_step step;
    jt_err why;
    jt_sql_time_buf now;
    jt_val p[8];
    jt_rows rows;
    jt_buf shorts;
    int i, nshort = 0, repriced = 0;

    jt_buf_init(&shorts, tx->arena, 64);

    /* 0. the source's rows first (a cart's lines are deleted here): they
     * commit or roll back with the order */
    if (t->hook != NULL && (step = t->hook(tx, t->hook_data, &t->refusal)) != JT_TX_COMMIT) {
        return step;
    }

    /* 1. read every stock row with its version (the first with the buyer's
     * balance); check prices, stock and the balance */
    for (i = 0; i < t->n; i++) {
        order_line *l = &t->lines[i];
        const char *plain = l->option_id ? SQL_ORDER_STOCK_OPTION : SQL_ORDER_STOCK_PRODUCT;
        p[0] = jt_sql_now(&now);
        p[1] = JT_VI(l->option_id ? l->option_id : l->product_id);
        p[2] = JT_VI(t->buyer);
        if (i > 0) {
            JT_TX_EXEC(tx, plain, p, 2, &rows);
        } else {
            JT_TX_EXEC(tx, l->option_id ? SQL_ORDER_STOCK_OPTION_BALANCE : SQL_ORDER_STOCK_PRODUCT_BALANCE, p, 3,
                       &rows);
            if (rows.nrows == 0) {
                /* the product is gone, or (hardly ever) the buyer: which? */
                JT_TX_EXEC(tx, plain, p, 2, &rows);
                if (rows.nrows != 0) {
                    t->refusal = jt_fail(t->r, JT_E_USER_NOT_FOUND, "the buyer does not exist");
                    return JT_TX_ABORT;
                }
            } else {
                balance = jt_cell(&rows, 0, 4)->i;
                balance_version = jt_cell(&rows, 0, 5)->i;
            }
        }
        /* the option's product version: column 4 alone, 6 beside the balance */
        pversion[i] = l->option_id && rows.nrows ? jt_cell(&rows, 0, rows.ncols - 1)->i : 0;
        if (rows.nrows == 0) {
            t->refusal = jt_fail(t->r, l->option_id ? JT_E_OPTION_NOT_FOUND : JT_E_PRODUCT_NOT_FOUND,
                                 "product %lld is gone", (long long) l->product_id);
            return JT_TX_ABORT;
        }
        /* the window is checked again at commit time: exact to the second */
        if (jt_cell(&rows, 0, 3)->i != SALE_OPEN) {
            t->refusal = jt_fail(t->r, jt_cell(&rows, 0, 3)->i == SALE_NOT_YET ? JT_E_NOT_ON_SALE_YET : JT_E_SALE_ENDED,
                                 "product %lld is not on sale now", (long long) l->product_id);
            return JT_TX_ABORT;
        }
        if (jt_cell(&rows, 0, 0)->i != l->unit_price) {
            /* the price moved while we waited for the lock: the database's
             * price wins; the buyer's expectedTotal (if any) is checked below */
            l->unit_price = jt_cell(&rows, 0, 0)->i;
            if (__builtin_mul_overflow(l->unit_price, l->quantity, &l->line_total)) {
                t->refusal = jt_fail(t->r, JT_E_INVALID_REQUEST, "the order total is out of range");
                return JT_TX_ABORT;
            }
            repriced = 1;
        }
        stock[i] = jt_cell(&rows, 0, 1)->i;
        version[i] = jt_cell(&rows, 0, 2)->i;
        if (stock[i] < l->quantity) {
            int j, seen = 0;
            for (j = 0; j < i; j++) {
                seen |= t->lines[j].product_id == l->product_id && stock[j] < t->lines[j].quantity;
            }
            if (!seen) {
                jt_buf_addf(&shorts, "%s%lld", nshort++ ? "," : "", (long long) l->product_id);
            }
        }
    }
    if (repriced) {
        if (order_totals(t) != JT_OK) {
            t->refusal = jt_fail(t->r, JT_E_INVALID_REQUEST, "the order total is out of range");
            return JT_TX_ABORT;
        }
        if (t->has_expected && t->expected != t->total) {
            jt_buf x;
            jt_buf_init(&x, tx->arena, 48);
            jt_buf_addf(&x, "\"currentTotal\":%lld", (long long) t->total);
            t->r->problem_extra = jt_buf_cstr(&x);
            t->refusal = jt_fail(t->r, JT_E_PRICE_CHANGED, "the total is now %lld", (long long) t->total);
            return JT_TX_ABORT;
        }
    }
    if (nshort > 0) {
        t->refusal = jt_fail(t->r, JT_E_OUT_OF_STOCK, "not enough stock for product(s) %s",
                             jt_buf_cstr(&shorts));
        {
            jt_buf x;
            jt_buf_init(&x, tx->arena, 64);
            jt_buf_addf(&x, "\"productIds\":[%s]", jt_buf_cstr(&shorts));
            t->r->problem_extra = jt_buf_cstr(&x);
        }
        return JT_TX_ABORT;
    }
    if (points_bound(balance, -t->total, &t->balance, &why) != JT_TX_COMMIT) {
        t->refusal = why == JT_E_INSUFFICIENT_BALANCE
                         ? jt_fail(t->r, why, "the order costs %lld: the balance is too low", (long long) t->total)
                         : jt_fail(t->r, why, "the balance is out of range");
        return JT_TX_ABORT;
    }

    /* 2. fenced writes: each matches only the versions read above; the
     * first line's carries the balance (both rows changed, or a conflict) */
    for (i = 0; i < t->n; i++) {
        order_line *l = &t->lines[i];
        int64_t id = l->option_id ? l->option_id : l->product_id;
        p[0] = JT_VI(stock[i] - l->quantity);
        if (i > 0) {
            p[1] = JT_VI(id);
            p[2] = JT_VI(version[i]);
            p[3] = JT_VI(pversion[i]);
            JT_TX_EXEC(tx, l->option_id ? SQL_ORDER_OPTION_WRITE : SQL_STOCK_PRODUCT_WRITE, p,
                       l->option_id ? 4 : 3, &rows);
        } else if (l->option_id) {
            p[1] = JT_VI(t->balance);
            p[2] = JT_VI(id);
            p[3] = JT_VI(version[i]);
            p[4] = JT_VI(pversion[i]);
            p[5] = JT_VI(t->buyer);
            p[6] = JT_VI(balance_version);
            JT_TX_EXEC(tx, SQL_STOCK_OPTION_BALANCE_WRITE, p, 7, &rows);
        } else {
            p[1] = JT_VI(t->balance);
            p[2] = JT_VI(id);
            p[3] = JT_VI(version[i]);
            p[4] = JT_VI(t->buyer);
            p[5] = JT_VI(balance_version);
            JT_TX_EXEC(tx, SQL_STOCK_PRODUCT_BALANCE_WRITE, p, 6, &rows);
        }
        if (rows.affected != (i > 0 ? 1u : 2u)) {
            return JT_TX_CONFLICT;
        }
    }

    /* 3. the order and its lines */
    p[0] = JT_VI(t->buyer);
    p[1] = JT_VI(t->items_total);
    p[2] = JT_VI(t->shipping_fee);
    p[3] = JT_VI(t->total);
    p[4] = JT_VB(t->ship_sealed, t->ship_len);
    p[5] = jt_sql_now(&now);
    JT_TX_EXEC(tx, SQL_ORDER_INSERT, p, 6, &rows);
    if (rows.nrows != 1) {
        tx->db_rc = JT_DB_ERROR;
        return JT_TX_DBERR;
    }
    t->order_id = jt_cell(&rows, 0, 0)->i;
    t->created_at = jt_cell(&rows, 0, 1)->s;
    if ((step = order_insert_lines(tx, t)) != JT_TX_COMMIT) {
        return step;
    }

    /* 4. the payment's ledger row (the balance was written with the stock) */
    step = points_record(tx, t->buyer, -t->total, t->balance, "ORDER_PAYMENT", t->order_id, NULL);
    if (step != JT_TX_COMMIT) {
        return step;
    }

    /* 5. the answer and the outbox event */
    order_answer_body(tx->arena, t);

    if ((step = events_emit(tx, "order.paid", t->order_id, t->body.data, t->body.len)) != JT_TX_COMMIT) {
        return step;
    }

    jt_write_answer(tx, 201, &t->body, "ORDER", t->order_id);
    return JT_TX_COMMIT;
}

static const char **
stock_lock_keys(jt_req *r, const order_line *lines, int n, int64_t buyer, int *nkeys)
{
    const char **keys = jt_palloc(r->arena, sizeof(char *) * (size_t) (n + 1));
    int i;

    if (keys == NULL) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        keys[i] = jt_lockkey_stock(r->arena, lines[i].product_id, lines[i].option_id);
        if (keys[i] == NULL) {
            return NULL;
        }
    }
    keys[n] = jt_lockkey_balance(r->arena, buyer);
    if (keys[n] == NULL) {
        return NULL;
    }
    *nkeys = n + 1;
    return keys;
}

/* POST /api/v1/orders */
jt_err
orders_place(jt_req *r)
{
    jt_principal who;
    json_object *o;
    jt_write *wr;
    jt_err e;

    /* 1. authenticate, parse, and the key: a committed order replays its
     * answer whatever has changed since (price, window, stock, deletion).
     * An order paid by card reserves its stock and waits for the gateway:
     * payments.c, not this path. */
    if ((e = auth_require(r, &who)) != JT_OK || (e = jt_json_body(r, &o)) != JT_OK) {
        return e;
    }
    if (payments_card_requested(o)) {
        return payments_place(r, &who, o);
    }
    if ((e = jt_write_begin(r, &wr, who.user_id, o, JT_WRITE_KEY_OPTIONAL_LOOKUP_LATE)) != JT_OK
        || wr->replayed) {
        return e;
    }
    {
        jt_order_source src = { ORDER_MEMBERS, NULL, 0, JT_OK, "", who.user_id, NULL, NULL };
        return orders_place_from(r, wr, o, &src);
    }
}

/* Steps 2 to 5 of placing an order, whichever source its lines come from
 * (orders.h): POST /api/v1/orders, a cart's checkout and a wishlist's
 * order all run exactly this. */
jt_err
orders_place_from(jt_req *r, jt_write *wr, json_object *o, const jt_order_source *src)
{
    order_tx *t;
    int nkeys;
    const char **keys;
    jt_err e;

    t = jt_pcalloc(r->arena, sizeof(*t));
    if (t == NULL) {
        return JT_E_INTERNAL;
    }
    t->r = r;
    t->buyer = src->buyer;
    t->hook = src->hook;
    t->hook_data = src->hook_data;

    /* 2. validate and price, outside any lock */
    if ((e = prepare_from(r, o, src, t)) != JT_OK) {
        return e;
    }

    /* 3. a hot product's orders are combined: its lock holder commits the
     * queued ones in one transaction (combine.c); an order that fits no
     * batch runs on its own, as here */
    if (combine_eligible(r, t)) {
        switch (combine_place(r, wr, t, &e)) {
        case COMBINE_DONE:
            return e;
        case COMBINE_ALONE_LOCKED:
            goto locked;
        case COMBINE_ALONE:
            break;
        }
    }

    /* 4. the locks on every stock row and the balance */
    keys = stock_lock_keys(r, t->lines, t->n, t->buyer, &nkeys);
    if (keys == NULL) {
        return JT_E_INTERNAL;
    }
    if ((e = jt_write_lock(r, wr, keys, nkeys)) != JT_OK) {
        return e;
    }
locked:

    /* 5. the transaction, retried as a whole on conflicts */
    e = jt_write_run(r, wr, place_body, t, &t->refusal);
    if (e != JT_OK || wr->replayed) {
        if (e == JT_E_OUT_OF_STOCK) {
            JT_METRIC_INC(orders_out_of_stock);
        }
        return e;
    }

    /* 6. after COMMIT: cache, unlock, answer */
    JT_METRIC_INC(orders_paid);
    JT_METRIC_INC(order_commits);
    JT_METRIC_INC(combine_batch[0]);
    JT_METRIC_INC(combine_batch_sum);
    order_reply_created(r, wr, t->order_id);
    return JT_OK;
}

void
order_reply_created(jt_req *r, jt_write *w, int64_t order_id)
{
    char loc[64];

    snprintf(loc, sizeof(loc), "/api/v1/orders/%lld", (long long) order_id);
    jt_reply_header(r, "Location", loc);
    jt_write_finish(r, w);
}

/* --- reading ----------------------------------------------------------- */

jt_db_rc
orders_fetch(jt_db *db, jt_arena *a, const jt_conf *c, int64_t id, jt_rows *out)
{
    jt_val p[2] = { JT_VI(c->lc_return_window), JT_VI(id) };

    return jt_db_exec(db, a, SQL_ORDER_GET, p, 2, out);
}

static void
kstr_or_null(jt_json *w, const char *k, const jt_val *v)
{
    if (v->type == JT_V_NULL) {
        jw_knull(w, k);
    } else {
        jw_kstr(w, k, v->s);
    }
}

/* An order's moves, oldest first (at most 64: the graph has fewer). */
static jt_err
write_history(jt_req *r, jt_json *w, int64_t id)
{
    jt_val p[1] = { JT_VI(id) };
    jt_rows h;
    jt_db_rc rc;
    int i;

    if ((rc = jt_db_exec(r->db, r->arena, SQL_HISTORY, p, 1, &h)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    jw_key(w, "history");
    jw_arr_open(w);
    for (i = 0; i < h.nrows; i++) {
        jw_obj_open(w);
        jw_kstr(w, "from", jt_cell(&h, i, 0)->s);
        jw_kstr(w, "to", jt_cell(&h, i, 1)->s);
        jw_kstr(w, "at", jt_cell(&h, i, 2)->s);
        jw_kstr(w, "actor", jt_cell(&h, i, 3)->s);
        if (jt_cell(&h, i, 4)->type == JT_V_NULL) {
            jw_knull(w, "actorId");
        } else {
            jw_kint(w, "actorId", jt_cell(&h, i, 4)->i);
        }
        jw_obj_close(w);
    }
    jw_arr_close(w);
    return JT_OK;
}

/* Writes one order (row of ORDER_COLUMNS) with its lines, the decrypted
 * shipping block (whoever may see the order may see where it goes: its
 * buyer, an admin, the seller who ships it) and the times of its moves;
 * with its history when `history` (one order, not a list). */
jt_err
orders_write(jt_req *r, jt_json *w, const jt_rows *o, int row, int history)
{
    jt_val p[1] = { JT_VI(jt_cell(o, row, O_ID)->i) };
    jt_rows items;
    jt_db_rc rc;
    const char *ship;
    jt_err e;
    int i;

    if ((rc = jt_db_exec(r->db, r->arena, SQL_ITEMS_GET, p, 1, &items)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    ship = jt_pii_open(r->arena, "orders.shipping", (const unsigned char *) jt_cell(o, row, O_SHIP)->s,
                       jt_cell(o, row, O_SHIP)->len);
    if (ship == NULL) {
        return jt_fail(r, JT_E_INTERNAL, "shipping data cannot be opened with the configured keys");
    }
    jw_obj_open(w);
    jw_kint(w, "orderId", jt_cell(o, row, O_ID)->i);
    jw_kint(w, "userId", jt_cell(o, row, O_USER)->i);
    jw_kstr(w, "status", jt_cell(o, row, O_STATUS)->s);
    jw_kint(w, "version", jt_cell(o, row, JT_ORDER_COL_VERSION)->i);
    jw_kint(w, "itemsTotal", jt_cell(o, row, O_ITEMS_TOTAL)->i);
    jw_kint(w, "shippingFee", jt_cell(o, row, O_FEE)->i);
    jw_kint(w, "total", jt_cell(o, row, O_TOTAL)->i);
    jw_key(w, "items");
    jw_arr_open(w);
    for (i = 0; i < items.nrows; i++) {
        jw_obj_open(w);
        jw_kint(w, "productId", jt_cell(&items, i, 0)->i);
        if (jt_cell(&items, i, 1)->type == JT_V_NULL) {
            jw_knull(w, "optionId");
        } else {
            jw_kint(w, "optionId", jt_cell(&items, i, 1)->i);
        }
        jw_kstr(w, "name", jt_cell(&items, i, 2)->s);
        jw_kint(w, "unitPrice", jt_cell(&items, i, 3)->i);
        jw_kint(w, "quantity", jt_cell(&items, i, 4)->i);
        jw_kint(w, "lineTotal", jt_cell(&items, i, 5)->i);
        jw_obj_close(w);
    }
    jw_arr_close(w);
    jw_key(w, "shipping");
    jw_raw(w, ship, strlen(ship));
    jw_kstr(w, "createdAt", jt_cell(o, row, O_CREATED)->s);
    kstr_or_null(w, "paidAt", jt_cell(o, row, JT_ORDER_COL_PAID));
    kstr_or_null(w, "preparingAt", jt_cell(o, row, JT_ORDER_COL_PREPARING));
    kstr_or_null(w, "shippedAt", jt_cell(o, row, JT_ORDER_COL_SHIPPED));
    kstr_or_null(w, "deliveredAt", jt_cell(o, row, JT_ORDER_COL_DELIVERED));
    kstr_or_null(w, "returnableUntil", jt_cell(o, row, JT_ORDER_COL_RETURNABLE_UNTIL));
    kstr_or_null(w, "returnRequestedAt", jt_cell(o, row, JT_ORDER_COL_RETURN_REQUESTED));
    kstr_or_null(w, "returnedAt", jt_cell(o, row, JT_ORDER_COL_RETURNED));
    kstr_or_null(w, "cancelledAt", jt_cell(o, row, JT_ORDER_COL_CANCELLED));
    kstr_or_null(w, "trackingNumber", jt_cell(o, row, JT_ORDER_COL_TRACKING));
    kstr_or_null(w, "returnReason", jt_cell(o, row, JT_ORDER_COL_RETURN_REASON));
    if (history && (e = write_history(r, w, jt_cell(o, row, O_ID)->i)) != JT_OK) {
        return e;
    }
    if (strcmp(jt_cell(o, row, O_METHOD)->s, "CARD") == 0
        && (e = payments_write_block(r, w, jt_cell(o, row, O_ID)->i)) != JT_OK) {
        return e;
    }
    jw_obj_close(w);
    return JT_OK;
}

/* The order as a transaction is about to commit it, read inside it (a
 * read after COMMIT may fail, and a move that is done must not answer
 * 5xx: the client's retry would then meet a 409). On failure tx->db_rc
 * says why (the body returns JT_TX_DBERR). */
jt_err
order_answer_read(jt_tx *tx, jt_req *r, int64_t order_id, jt_buf *out)
{
    jt_rows rows;
    jt_json w;
    jt_err e = JT_OK;

    tx->db_rc = orders_fetch(tx->db, tx->arena, r->conf, order_id, &rows);
    if (tx->db_rc != JT_DB_OK) {
        return JT_E_DATABASE_UNAVAILABLE;
    }
    jt_json_begin(r, out, &w, 1536);
    if (rows.nrows != 1 || (e = orders_write(r, &w, &rows, 0, 1)) != JT_OK) {
        tx->db_rc = rows.nrows == 1 && e == JT_E_DATABASE_UNAVAILABLE ? JT_DB_DOWN : JT_DB_ERROR;
        return e != JT_OK ? e : JT_E_INTERNAL;
    }
    return JT_OK;
}

static jt_err
write_order_item(jt_req *r, jt_json *w, const jt_rows *o, int row)
{
    return orders_write(r, w, o, row, 0);
}

/* Loads an order the principal may see; 404 otherwise (ids cannot be probed). */
static jt_err
load_visible_order(jt_req *r, const jt_principal *who, int64_t id, jt_rows *o)
{
    jt_db_rc rc;

    if ((rc = orders_fetch(r->db, r->arena, r->conf, id, o)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    if (o->nrows == 0 || (jt_cell(o, 0, O_USER)->i != who->user_id && !who->is_admin)) {
        return jt_fail(r, JT_E_ORDER_NOT_FOUND, "order %lld does not exist", (long long) id);
    }
    return JT_OK;
}

/* GET /api/v1/orders/{orderId}: the order, its status and its history */
jt_err
orders_get(jt_req *r)
{
    jt_principal who;
    jt_rows o;
    jt_buf b;
    jt_json w;
    jt_err e;

    if ((e = auth_require(r, &who)) != JT_OK
        || (e = load_visible_order(r, &who, jt_req_param_id(r, "orderId"), &o)) != JT_OK) {
        return e;
    }
    jt_json_begin(r, &b, &w, 1536);
    if ((e = orders_write(r, &w, &o, 0, 1)) != JT_OK) {
        return e;
    }
    jt_reply_json(r, 200, &b);
    return JT_OK;
}

/* GET /api/v1/users/{userId}/orders?status=&cursor=&limit= — newest first */
jt_err
orders_list(jt_req *r)
{
    int64_t uid = jt_req_param_id(r, "userId");
    jt_val p[3] = { JT_VI(((const jt_conf *) r->conf)->lc_return_window), JT_VI(uid) };
    const char *status;
    jt_principal who;
    jt_cursor c;
    jt_err e;

    if ((e = auth_require_user(r, &who, uid)) != JT_OK || (e = jt_cursor_parse(r, &c, 50)) != JT_OK
        || (e = jt_req_query_str(r, "status", &status)) != JT_OK) {
        return e;
    }
    if (status == NULL) {
        return jt_cursor_answer(r, &c, SQL_ORDER_PAGE, p, 2, O_ID, 640, write_order_item);
    }
    if (!lifecycle_is_status(status)) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'status' must be an order status, e.g. SHIPPING");
    }
    p[2] = JT_VS(status);
    return jt_cursor_answer(r, &c, SQL_ORDER_PAGE_STATUS, p, 3, O_ID, 640, write_order_item);
}
