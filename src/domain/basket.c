/* The cart and the wishlist: one mechanism over two tables. Read a write
 * top to bottom: owner → body → jt_write_begin → (product check) → one
 * transaction that locks the list's head row first and stamps what it
 * writes with the head's new version (basket.h) → answer.
 * An order from a list hands its lines and a hook to orders_place_from,
 * the one order path. */
#include "domain/basket.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/accounts.h"
#include "domain/common.h"
#include "domain/orders.h"
#include "domain/write.h"
#include "http/json.h"
#include "store/db.h"

#define TS_FMT "'%Y-%m-%dT%H:%i:%s.%fZ'"
#define SALE_OPEN                                                                     \
    "(p.sale_starts_at IS NULL OR p.sale_starts_at <= clk.now)"                       \
    " AND (p.sale_ends_at IS NULL OR p.sale_ends_at > clk.now)"

/* The statements of one list's table T (head kind K). One text per table:
 * the prepared-statement cache is keyed by the text's address. */

/* the lines priced now: id, product, option, quantity, product name,
 * option name, unit price, stock, orderable (live, on sale, and the option
 * is there when the product has options), added at */
#define SQL_VIEW(T)                                                                   \
    "SELECT l.id, l.product_id, l.option_id, l.quantity, p.name, o.name,"             \
    " p.price + COALESCE(o.extra_price, 0), IF(l.option_id = 0, p.stock, COALESCE(o.stock, 0)),"  \
    " p.deleted_at IS NULL AND " SALE_OPEN " AND IF(l.option_id = 0,"                 \
    " NOT EXISTS (SELECT 1 FROM product_options x WHERE x.product_id = p.id), o.id IS NOT NULL),"  \
    " DATE_FORMAT(l.created_at, " TS_FMT ")"                                          \
    " FROM " JT_SQL_CLOCK ", " T " l JOIN products p ON p.id = l.product_id"          \
    " LEFT JOIN product_options o ON o.id = l.option_id AND o.product_id = l.product_id" \
    " WHERE l.user_id = ? ORDER BY l.id LIMIT 101"
/* the head, created (at version 1) or bumped, and locked to COMMIT: the
 * list's writers queue here (basket.h); then the version it now has */
#define SQL_HEAD(K)                                                                   \
    "INSERT INTO baskets (user_id, kind, version) VALUES (?, '" K "', 1)"             \
    " ON DUPLICATE KEY UPDATE version = version + 1"
#define SQL_HEAD_VERSION(K) "SELECT version FROM baskets WHERE user_id = ? AND kind = '" K "'"
/* the lines an order is made of, with their revs (the primary key's range:
 * in the order they were added) */
#define SQL_FOR_ORDER(T) "SELECT id, rev, product_id, option_id, quantity FROM " T " WHERE user_id = ? LIMIT 101"
#define SQL_COUNT(T)                                                                  \
    "SELECT COUNT(*), COALESCE(SUM(product_id = ? AND option_id = ?), 0) FROM " T " WHERE user_id = ?"
/* a new line gets the version as its id and rev; a line set again keeps
 * its id and takes the version as its rev */
#define SQL_SET(T)                                                                    \
    "INSERT INTO " T " (user_id, id, rev, product_id, option_id, quantity) VALUES (?, ?, ?, ?, ?, ?)" \
    " ON DUPLICATE KEY UPDATE quantity = VALUES(quantity), rev = VALUES(rev)"
#define SQL_UNSET(T) "DELETE FROM " T " WHERE user_id = ? AND product_id = ? AND option_id = ?"
#define SQL_UNSET_ID(T) "DELETE FROM " T " WHERE user_id = ? AND id = ?"
#define SQL_CLEAR(T) "DELETE FROM " T " WHERE user_id = ?"
/* an order takes the lines it read (rev <= the highest rev it read), or
 * share-locks them in place */
#define SQL_TAKE(T) "DELETE FROM " T " WHERE user_id = ? AND rev <= ?"
#define SQL_KEEP(T) "SELECT COUNT(*) FROM " T " WHERE user_id = ? AND rev <= ? LOCK IN SHARE MODE"
#define SQL_LINES(T) "SELECT COUNT(*) FROM " T " WHERE user_id = ?"

/* The wishCount of the product detail (sql/015): product_wishes counts the
 * buyers who wish for each product under any option. Every write of a
 * wishlist holds its head row (basket.h) from its first statement to
 * COMMIT, so within it the set of products the buyer wishes for is exact:
 * read before the change and after it, a product that joined the set is
 * +1, one that left it -1, each an atomic upsert that waits only for another
 * buyer's change of the same product (the upserts go in product order, so
 * two of them never deadlock). An order from the wishlist takes the head's
 * lock for this before it reads (order_hook): its lines are fenced by their
 * revs, but the count needs the set of the buyer's products to stay put.
 * The audit compares the counts with wishlist_items. */
static const char SQL_WISHED[] =
    "SELECT DISTINCT product_id FROM wishlist_items WHERE user_id = ? ORDER BY product_id LIMIT 101";
static const char SQL_WISHLIST_LOCK[] = "SELECT version FROM baskets WHERE user_id = ? AND kind = 'WISHLIST' FOR UPDATE";
static const char SQL_WISHERS_INC[] =
    "INSERT INTO product_wishes (product_id, wishers) VALUES (?, 1) ON DUPLICATE KEY UPDATE wishers = wishers + 1";
/* (not an upsert of -1: the row to insert would fail the table's CHECK) */
static const char SQL_WISHERS_DEC[] = "UPDATE product_wishes SET wishers = wishers - 1 WHERE product_id = ?";

/* the product a line names: its option count, and whether the option given
 * is one of them */
static const char SQL_PRODUCT_CHECK[] =
    "SELECT (SELECT COUNT(*) FROM product_options o WHERE o.product_id = p.id),"
    " (SELECT COUNT(*) FROM product_options o WHERE o.product_id = p.id AND o.id = ?)"
    " FROM products p WHERE p.id = ? AND p.deleted_at IS NULL";

enum { V_ID, V_PRODUCT, V_OPTION, V_QTY, V_PNAME, V_ONAME, V_UNIT, V_STOCK, V_ORDERABLE, V_ADDED };

#define READ_MAX 101   /* LIMIT of the reads: above either list's cap */

typedef struct {
    const char         *what;              /* "cart", "wishlist" */
    const char         *lines_key;         /* the answer's array */
    int                 max_lines;
    int64_t             min_quantity;      /* 0: a PUT of 0 removes the line */
    int                 quantity_required;
    int                 keep_unless_clear; /* an order keeps the lines unless "clear" */
    int                 counts_wishers;    /* keeps product_wishes (the wishlist) */
    jt_err              empty, changed, full, not_found;
    const char         *empty_detail;
    const char *const  *order_members;
    const char *sql_view, *sql_head, *sql_head_version, *sql_for_order, *sql_count, *sql_set, *sql_unset,
               *sql_unset_id, *sql_clear, *sql_take, *sql_keep, *sql_lines;
} basket_kind;

static const char *const CART_ORDER_MEMBERS[] = { "shipping", "expectedTotal", NULL };
static const char *const WISHLIST_ORDER_MEMBERS[] = { "shipping", "expectedTotal", "clear", NULL };

#define BASKET_SQL(T, K)                                                              \
    SQL_VIEW(T), SQL_HEAD(K), SQL_HEAD_VERSION(K), SQL_FOR_ORDER(T), SQL_COUNT(T), SQL_SET(T), \
    SQL_UNSET(T), SQL_UNSET_ID(T), SQL_CLEAR(T), SQL_TAKE(T), SQL_KEEP(T), SQL_LINES(T)

static const basket_kind CART = {
    "cart", "lines", JT_CART_MAX_LINES, 0, 1, 0, 0,
    JT_E_CART_EMPTY, JT_E_CART_CHANGED, JT_E_CART_FULL, JT_E_CART_ITEM_NOT_FOUND, "the cart is empty",
    CART_ORDER_MEMBERS, BASKET_SQL("cart_items", "CART")
};
static const basket_kind WISHLIST = {
    "wishlist", "items", JT_WISHLIST_MAX_ITEMS, 1, 0, 1, 1,
    JT_E_WISHLIST_EMPTY, JT_E_WISHLIST_CHANGED, JT_E_WISHLIST_FULL, JT_E_WISHLIST_ITEM_NOT_FOUND,
    "the wishlist is empty", WISHLIST_ORDER_MEMBERS, BASKET_SQL("wishlist_items", "WISHLIST")
};

/* One write of a list, as its transaction sees it. */
typedef struct {
    jt_req             *r;
    const basket_kind  *k;
    int64_t             uid;
    int64_t             product_id;
    int64_t             option_id;     /* 0: none */
    int64_t             quantity;      /* 0: remove */
    int64_t             line_id;       /* remove by id when > 0 */
    int                 all;           /* remove every line */
    jt_err              refusal;
} basket_tx;

/* --- reading ------------------------------------------------------------------ */

/* The list of uid, priced now, as its answer: each line, then the totals
 * the order's rule gives (an empty list costs nothing, shipping included).
 * Inside a write's transaction it reads what that transaction wrote. */
static jt_err
basket_view(jt_req *r, const basket_kind *k, int64_t uid, jt_buf *b)
{
    jt_sql_time_buf now;
    jt_val p[2] = { jt_sql_now(&now), JT_VI(uid) };
    int64_t items = 0, fee;
    jt_rows rows;
    jt_db_rc rc;
    jt_json w;
    int i;

    if ((rc = jt_db_exec(r->db, r->arena, k->sql_view, p, 2, &rows)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    jt_json_begin(r, b, &w, 128 + (size_t) rows.nrows * 320);
    jw_obj_open(&w);
    jw_key(&w, k->lines_key);
    jw_arr_open(&w);
    for (i = 0; i < rows.nrows; i++) {
        int64_t unit = jt_val_int(jt_cell(&rows, i, V_UNIT)), qty = jt_cell(&rows, i, V_QTY)->i;
        int64_t stock = jt_val_int(jt_cell(&rows, i, V_STOCK)), option = jt_cell(&rows, i, V_OPTION)->i;
        int64_t line;

        if (__builtin_mul_overflow(unit, qty, &line) || __builtin_add_overflow(items, line, &items)) {
            return jt_fail(r, JT_E_INTERNAL, "a %s total is out of range", k->what);
        }
        jw_obj_open(&w);
        jw_kint(&w, "lineId", jt_cell(&rows, i, V_ID)->i);
        jw_kint(&w, "productId", jt_cell(&rows, i, V_PRODUCT)->i);
        if (option == 0) {
            jw_knull(&w, "optionId");
        } else {
            jw_kint(&w, "optionId", option);
        }
        if (jt_cell(&rows, i, V_ONAME)->type == JT_V_NULL) {
            jw_kstr(&w, "name", jt_cell(&rows, i, V_PNAME)->s);
        } else {
            /* the name an order gives the line: "product / option" */
            size_t n = jt_cell(&rows, i, V_PNAME)->len + jt_cell(&rows, i, V_ONAME)->len + 4;
            char *name = jt_palloc(r->arena, n);
            if (name == NULL) {
                return JT_E_INTERNAL;
            }
            snprintf(name, n, "%s / %s", jt_cell(&rows, i, V_PNAME)->s, jt_cell(&rows, i, V_ONAME)->s);
            jw_kstr(&w, "name", name);
        }
        jw_kint(&w, "unitPrice", unit);
        jw_kint(&w, "quantity", qty);
        jw_kint(&w, "lineTotal", line);
        jw_kbool(&w, "available", jt_val_int(jt_cell(&rows, i, V_ORDERABLE)) != 0 && stock >= qty);
        jw_kint(&w, "stock", stock);
        jw_kstr(&w, "addedAt", jt_cell(&rows, i, V_ADDED)->s);
        jw_obj_close(&w);
    }
    jw_arr_close(&w);
    fee = rows.nrows ? orders_shipping_fee(items) : 0;
    jw_kint(&w, "itemsTotal", items);
    jw_kint(&w, "shippingFee", fee);
    jw_kint(&w, "total", items + fee);
    jw_obj_close(&w);
    return b->oom ? jt_fail(r, JT_E_INTERNAL, "out of memory") : JT_OK;
}

static jt_err
basket_get(jt_req *r, const basket_kind *k)
{
    int64_t uid = jt_req_param_id(r, "userId");
    jt_principal who;
    jt_buf b;
    jt_err e;

    if ((e = auth_require_owner(r, &who, uid, k->what)) != JT_OK || (e = basket_view(r, k, uid, &b)) != JT_OK) {
        return e;
    }
    jt_reply_json(r, 200, &b);
    return JT_OK;
}

/* --- writing ------------------------------------------------------------------ */

/* The products uid wishes for, in order, before a wishlist's change
 * (nothing is read for a cart). */
static jt_tx_step
wished_before(jt_tx *tx, const basket_kind *k, int64_t uid, jt_rows *before)
{
    jt_val p[1] = { JT_VI(uid) };

    memset(before, 0, sizeof(*before));
    if (k->counts_wishers) {
        JT_TX_EXEC(tx, SQL_WISHED, p, 1, before);
    }
    return JT_TX_COMMIT;
}

/* After the change: +1 for every product that joined uid's set, -1 for
 * every one that left it (both lists sorted: one merge walk). */
static jt_tx_step
wished_after(jt_tx *tx, const basket_kind *k, int64_t uid, const jt_rows *before)
{
    jt_val p[1] = { JT_VI(uid) }, pid[1];
    jt_rows after, rows;
    int i = 0, j = 0;

    if (!k->counts_wishers) {
        return JT_TX_COMMIT;
    }
    JT_TX_EXEC(tx, SQL_WISHED, p, 1, &after);
    while (i < before->nrows || j < after.nrows) {
        int64_t b = i < before->nrows ? jt_val_int(jt_cell(before, i, 0)) : INT64_MAX;
        int64_t a = j < after.nrows ? jt_val_int(jt_cell(&after, j, 0)) : INT64_MAX;
        if (a == b) {
            i++;
            j++;
            continue;
        }
        pid[0] = JT_VI(a < b ? a : b);
        JT_TX_EXEC(tx, a < b ? SQL_WISHERS_INC : SQL_WISHERS_DEC, pid, 1, &rows);
        if (a < b) {
            j++;
        } else if (rows.affected != 1) {
            /* a buyer who wished for it had no count: a bug, never a
             * silent drift (the audit's wish_count says where) */
            tx->db_rc = JT_DB_ERROR;
            return JT_TX_DBERR;
        } else {
            i++;
        }
    }
    return JT_TX_COMMIT;
}

/* The last step of a list's write: its answer, read inside the
 * transaction (a read after COMMIT that failed would answer 5xx for a
 * change that was made). */
static jt_tx_step
answer(jt_tx *tx, basket_tx *t, int status)
{
    jt_buf b;
    jt_err e;

    if (status == 204) {
        jt_buf_init(&b, tx->arena, 0);
    } else if ((e = basket_view(t->r, t->k, t->uid, &b)) != JT_OK) {
        tx->db_rc = e == JT_E_DATABASE_UNAVAILABLE ? JT_DB_DOWN : JT_DB_ERROR;
        return JT_TX_DBERR;
    }
    jt_write_answer(tx, status, &b, "BASKET", t->uid);
    return JT_TX_COMMIT;
}

/* PUT: the head first (the list's writers queue on it), then the line,
 * stamped with the head's new version. */
static jt_tx_step
put_body(jt_tx *tx)
{
    basket_tx *t = tx->data;
    const basket_kind *k = t->k;
    jt_val p[3] = { JT_VI(t->uid), JT_VI(t->product_id), JT_VI(t->option_id) };
    jt_val c[3] = { JT_VI(t->product_id), JT_VI(t->option_id), JT_VI(t->uid) };
    jt_val set[6];
    jt_rows rows, before;
    jt_tx_step step;
    int64_t version;

    JT_TX_EXEC(tx, k->sql_head, p, 1, &rows);
    if ((step = wished_before(tx, k, t->uid, &before)) != JT_TX_COMMIT) {
        return step;
    }
    if (t->quantity == 0) {
        JT_TX_EXEC(tx, k->sql_unset, p, 3, &rows);
        if ((step = wished_after(tx, k, t->uid, &before)) != JT_TX_COMMIT) {
            return step;
        }
        return answer(tx, t, 200);
    }
    JT_TX_EXEC(tx, k->sql_head_version, p, 1, &rows);
    if (rows.nrows != 1) {
        tx->db_rc = JT_DB_ERROR;
        return JT_TX_DBERR;
    }
    version = jt_cell(&rows, 0, 0)->i;
    JT_TX_EXEC(tx, k->sql_count, c, 3, &rows);
    if (jt_val_int(jt_cell(&rows, 0, 1)) == 0 && jt_val_int(jt_cell(&rows, 0, 0)) >= k->max_lines) {
        t->refusal = jt_fail(t->r, k->full, "the %s holds %d lines; remove one first", k->what, k->max_lines);
        return JT_TX_ABORT;
    }
    set[0] = JT_VI(t->uid);
    set[1] = JT_VI(version);
    set[2] = JT_VI(version);
    set[3] = JT_VI(t->product_id);
    set[4] = JT_VI(t->option_id);
    set[5] = JT_VI(t->quantity);
    JT_TX_EXEC(tx, k->sql_set, set, 6, &rows);
    if ((step = wished_after(tx, k, t->uid, &before)) != JT_TX_COMMIT) {
        return step;
    }
    return answer(tx, t, 200);
}

/* DELETE of one line (by id, or by product and option) or of all. */
static jt_tx_step
remove_body(jt_tx *tx)
{
    basket_tx *t = tx->data;
    const basket_kind *k = t->k;
    jt_val p[3] = { JT_VI(t->uid), JT_VI(t->product_id), JT_VI(t->option_id) };
    jt_val byid[2] = { JT_VI(t->uid), JT_VI(t->line_id) };
    jt_rows rows, before;
    jt_tx_step step;

    JT_TX_EXEC(tx, k->sql_head, p, 1, &rows);
    if ((step = wished_before(tx, k, t->uid, &before)) != JT_TX_COMMIT) {
        return step;
    }
    if (t->all) {
        JT_TX_EXEC(tx, k->sql_clear, p, 1, &rows);
        if ((step = wished_after(tx, k, t->uid, &before)) != JT_TX_COMMIT) {
            return step;
        }
        return answer(tx, t, 204);
    }
    if (t->line_id > 0) {
        JT_TX_EXEC(tx, k->sql_unset_id, byid, 2, &rows);
    } else {
        JT_TX_EXEC(tx, k->sql_unset, p, 3, &rows);
    }
    if (rows.affected == 0) {
        t->refusal = t->line_id > 0
                         ? jt_fail(t->r, k->not_found, "the %s has no line %lld", k->what, (long long) t->line_id)
                         : jt_fail(t->r, k->not_found, "the %s has no product %lld (option %lld)", k->what,
                                   (long long) t->product_id, (long long) t->option_id);
        return JT_TX_ABORT;
    }
    if ((step = wished_after(tx, k, t->uid, &before)) != JT_TX_COMMIT) {
        return step;
    }
    return answer(tx, t, 204);
}

/* A line may name a product that exists (not deleted) by the order's rule:
 * a product with options is kept by option, one without by itself. Its
 * sale window does not matter here (a coming sale may be wished for); the
 * order checks it. */
static jt_err
check_product(jt_req *r, int64_t product_id, int64_t option_id)
{
    jt_val p[2] = { JT_VI(option_id), JT_VI(product_id) };
    jt_rows rows;
    jt_db_rc rc;

    if ((rc = jt_db_exec(r->db, r->arena, SQL_PRODUCT_CHECK, p, 2, &rows)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    if (rows.nrows == 0) {
        return jt_fail(r, JT_E_PRODUCT_NOT_FOUND, "product %lld does not exist", (long long) product_id);
    }
    if (option_id == 0 && jt_val_int(jt_cell(&rows, 0, 0)) > 0) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "product %lld is ordered by option: 'optionId' is required",
                       (long long) product_id);
    }
    if (option_id != 0 && jt_val_int(jt_cell(&rows, 0, 1)) == 0) {
        return jt_fail(r, JT_E_OPTION_NOT_FOUND, "product %lld has no option %lld", (long long) product_id,
                       (long long) option_id);
    }
    return JT_OK;
}

/* Runs one write of a list through the write path. Lists take no
 * Idempotency-Key: setting a quantity or removing a line twice is the
 * same as once. */
static jt_err
basket_write(jt_req *r, int64_t principal, json_object *o, basket_tx *t, jt_tx_body body)
{
    jt_write *wr;
    jt_err e;

    if ((e = jt_write_begin(r, &wr, principal, o, JT_WRITE_KEY_IGNORED)) != JT_OK
        || (t->quantity > 0 && (e = check_product(r, t->product_id, t->option_id)) != JT_OK)
        || (e = jt_write_run(r, wr, body, t, &t->refusal)) != JT_OK) {
        return e;
    }
    jt_write_finish(r, wr);
    return JT_OK;
}

/* The PUT body: a product, its option when it has them, a quantity by
 * the list's rule (the cart's 0 removes; the wishlist's defaults to 1). */
static jt_err
parse_line(jt_req *r, json_object *o, const basket_kind *k, basket_tx *t)
{
    static const char *const known[] = { "productId", "optionId", "quantity", NULL };
    jt_err e;

    if ((e = jt_json_only(r, o, "", known)) != JT_OK
        || (e = jt_json_int(r, o, "productId", JT_REQUIRED, 1, INT64_MAX - 1, &t->product_id, NULL)) != JT_OK
        || (e = jt_json_int(r, o, "optionId", JT_OPTIONAL, 1, INT64_MAX - 1, &t->option_id, NULL)) != JT_OK
        || (e = jt_json_int(r, o, "quantity", k->quantity_required, k->min_quantity, JT_ORDER_MAX_QTY, &t->quantity,
                            NULL)) != JT_OK) {
        return e;
    }
    return JT_OK;
}

jt_err
basket_validate_line(jt_req *r, json_object *o, int wishlist)
{
    basket_tx t = { r, wishlist ? &WISHLIST : &CART, 0, 0, 0, 1, 0, 0, JT_OK };

    return parse_line(r, o, t.k, &t);
}

static jt_err
basket_put(jt_req *r, const basket_kind *k)
{
    basket_tx t = { r, k, jt_req_param_id(r, "userId"), 0, 0, 1, 0, 0, JT_OK };
    jt_principal who;
    json_object *o;
    jt_err e;

    if ((e = auth_require_owner(r, &who, t.uid, k->what)) != JT_OK || (e = jt_json_body(r, &o)) != JT_OK
        || (e = parse_line(r, o, k, &t)) != JT_OK) {
        return e;
    }
    return basket_write(r, who.user_id, o, &t, put_body);
}

static jt_err
basket_remove(jt_req *r, const basket_kind *k, int all)
{
    basket_tx t = { r, k, jt_req_param_id(r, "userId"), 0, 0, 0, 0, all, JT_OK };
    jt_principal who;
    jt_err e;

    if ((e = auth_require_owner(r, &who, t.uid, k->what)) != JT_OK) {
        return e;
    }
    if (!all && jt_req_param(r, "lineId") != NULL) {
        t.line_id = jt_req_param_id(r, "lineId");
    } else if (!all) {
        t.product_id = jt_req_param_id(r, "productId");
        if ((e = jt_req_query_int(r, "optionId", 0, 1, INT64_MAX - 1, &t.option_id)) != JT_OK) {
            return e;
        }
    }
    return basket_write(r, who.user_id, NULL, &t, remove_body);
}

/* --- ordering ---------------------------------------------------------------- */

typedef struct {
    jt_req             *r;
    const basket_kind  *k;
    int64_t             uid;
    int64_t             max_rev;   /* the highest rev of the lines read */
    int                 n;
    int                 take;      /* delete the lines (else: keep them, share-locked) */
} basket_hook;

/* First in the order's transaction (orders.h): the lines the order was
 * priced from are taken (or share-locked in place), exactly those: every
 * line of rev <= max_rev is one that was read, so n of them means none
 * changed or went since. Otherwise the order is refused and nothing
 * changes (basket.h walks through the interleavings). */
static jt_tx_step
order_hook(jt_tx *tx, void *data, jt_err *refusal)
{
    basket_hook *h = data;
    const basket_kind *k = h->k;
    jt_val p[2] = { JT_VI(h->uid), JT_VI(h->max_rev) };
    jt_rows rows, before;
    jt_tx_step step;

    if (h->take) {
        if (k->counts_wishers) {
            JT_TX_EXEC(tx, SQL_WISHLIST_LOCK, p, 1, &rows);
        }
        if ((step = wished_before(tx, k, h->uid, &before)) != JT_TX_COMMIT) {
            return step;
        }
        JT_TX_EXEC(tx, k->sql_take, p, 2, &rows);
        if (rows.affected == (uint64_t) h->n) {
            return wished_after(tx, k, h->uid, &before);
        }
        if (rows.affected != 0) {
            *refusal = jt_fail(h->r, k->changed, "the %s changed while the order was placed; read it again", k->what);
            return JT_TX_ABORT;
        }
    } else {
        JT_TX_EXEC(tx, k->sql_keep, p, 2, &rows);
        if (jt_val_int(jt_cell(&rows, 0, 0)) == h->n) {
            return JT_TX_COMMIT;
        }
    }
    /* the list moved since it was read (and this transaction changed
     * nothing of it): what is there now says which refusal */
    JT_TX_EXEC(tx, k->sql_lines, p, 1, &rows);
    *refusal = jt_val_int(jt_cell(&rows, 0, 0)) == 0
                   ? jt_fail(h->r, k->empty, "%s", k->empty_detail)
                   : jt_fail(h->r, k->changed, "the %s changed while the order was placed; read it again", k->what);
    return JT_TX_ABORT;
}

typedef struct {
    int64_t       id;
    jt_order_item item;
} basket_line;

static int
by_line_id(const void *a, const void *b)
{
    int64_t x = ((const basket_line *) a)->id, y = ((const basket_line *) b)->id;

    return x < y ? -1 : x > y;
}

/* The lines, outside any lock, in the order they were added, and the
 * highest rev among them. */
static jt_err
read_for_order(jt_req *r, basket_hook *h, jt_order_item *items)
{
    jt_val p[1] = { JT_VI(h->uid) };
    basket_line lines[READ_MAX];
    jt_rows rows;
    jt_db_rc rc;
    int i;

    if ((rc = jt_db_exec(r->db, r->arena, h->k->sql_for_order, p, 1, &rows)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    h->n = 0;
    h->max_rev = 0;
    for (i = 0; i < rows.nrows && i < READ_MAX; i++) {
        lines[i].id = jt_cell(&rows, i, 0)->i;
        if (jt_cell(&rows, i, 1)->i > h->max_rev) {
            h->max_rev = jt_cell(&rows, i, 1)->i;
        }
        lines[i].item.product_id = jt_cell(&rows, i, 2)->i;
        lines[i].item.option_id = jt_cell(&rows, i, 3)->i;
        lines[i].item.quantity = jt_cell(&rows, i, 4)->i;
        h->n++;
    }
    qsort(lines, (size_t) h->n, sizeof(lines[0]), by_line_id);
    for (i = 0; i < h->n; i++) {
        items[i] = lines[i].item;
    }
    return JT_OK;
}

/* POST: the key first (a committed order replays whatever the list holds
 * now), then the lines, then the one order path. */
static jt_err
basket_order(jt_req *r, const basket_kind *k)
{
    jt_principal who;
    json_object *o;
    jt_write *wr;
    basket_hook *h;
    jt_order_item *items;
    jt_order_source src;
    int clear = 0;
    jt_err e;

    if ((h = jt_pcalloc(r->arena, sizeof(*h))) == NULL
        || (items = jt_palloc(r->arena, sizeof(*items) * READ_MAX)) == NULL) {
        return JT_E_INTERNAL;
    }
    h->r = r;
    h->k = k;
    h->uid = jt_req_param_id(r, "userId");
    if ((e = auth_require_owner(r, &who, h->uid, k->what)) != JT_OK || (e = jt_json_body(r, &o)) != JT_OK
        || (e = jt_write_begin(r, &wr, who.user_id, o, JT_WRITE_KEY_OPTIONAL)) != JT_OK || wr->replayed) {
        return e;
    }
    if ((k->keep_unless_clear && (e = jt_json_bool(r, o, "clear", JT_OPTIONAL, &clear, NULL)) != JT_OK)
        || (e = read_for_order(r, h, items)) != JT_OK) {
        return e;
    }
    h->take = !k->keep_unless_clear || clear;
    src.known = k->order_members;
    src.items = items;
    src.n = h->n;
    src.empty = k->empty;
    src.empty_detail = k->empty_detail;
    src.buyer = h->uid;
    src.hook = order_hook;
    src.hook_data = h;
    return orders_place_from(r, wr, o, &src);
}

/* --- the routes -------------------------------------------------------------- */

jt_err cart_get(jt_req *r) { return basket_get(r, &CART); }
jt_err cart_put(jt_req *r) { return basket_put(r, &CART); }
jt_err cart_remove(jt_req *r) { return basket_remove(r, &CART, 0); }
jt_err cart_clear(jt_req *r) { return basket_remove(r, &CART, 1); }
jt_err cart_checkout(jt_req *r) { return basket_order(r, &CART); }

jt_err wishlist_get(jt_req *r) { return basket_get(r, &WISHLIST); }
jt_err wishlist_put(jt_req *r) { return basket_put(r, &WISHLIST); }
jt_err wishlist_remove(jt_req *r) { return basket_remove(r, &WISHLIST, 0); }
jt_err wishlist_order(jt_req *r) { return basket_order(r, &WISHLIST); }
