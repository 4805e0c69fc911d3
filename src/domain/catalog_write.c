/* Catalog writes: create, PATCH, restock and DELETE of products, under the
 * same write path, lock and version discipline as orders; after COMMIT each
 * re-tags the product's cache guard and the list guard before it answers. */
#include "domain/catalog.h"

#include <stdio.h>
#include <string.h>

#include "core/timefmt.h"
#include "domain/accounts.h"
#include "domain/common.h"
#include "domain/lockkey.h"
#include "domain/search.h"
#include "domain/write.h"
#include "http/conditional.h"
#include "http/json.h"
#include "store/cache.h"
#include "store/db.h"
#include "store/lock.h"

/* management */
static const char SQL_PRODUCT_INSERT[] =
    "INSERT INTO products (seller_id, name, description, price, stock, has_options, sale_starts_at, sale_ends_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
static const char SQL_OPTION_INSERT[] =
    "INSERT INTO product_options (product_id, name, extra_price, stock) VALUES (?, ?, ?, ?)";
static const char SQL_MOVEMENT_INSERT[] =
    "INSERT INTO stock_movements (product_id, option_id, delta, kind) VALUES (?, ?, ?, ?)";
static const char SQL_PRODUCT_FOR_WRITE[] =
    "SELECT id, seller_id, version, name, price, description,"
    " DATE_FORMAT(sale_starts_at, '%Y-%m-%d %H:%i:%s.%f'), DATE_FORMAT(sale_ends_at, '%Y-%m-%d %H:%i:%s.%f'),"
    " stock, EXISTS (SELECT 1 FROM product_options o WHERE o.product_id = products.id)"
    " FROM products WHERE id = ? AND deleted_at IS NULL";
static const char SQL_PRODUCT_UPDATE[] =
    "UPDATE products SET name = ?, description = ?, price = ?, sale_starts_at = ?, sale_ends_at = ?,"
    " version = version + 1 WHERE id = ? AND version = ?";
static const char SQL_PRODUCT_STOCK[] =
    "UPDATE products SET stock = ?, version = version + 1 WHERE id = ? AND version = ?";
static const char SQL_OPTION_FOR_WRITE[] =
    "SELECT stock, version FROM product_options WHERE id = ? AND product_id = ?";
static const char SQL_OPTION_STOCK[] =
    "UPDATE product_options SET stock = ?, version = version + 1 WHERE id = ? AND version = ?";
static const char SQL_PRODUCT_DELETE[] =
    "UPDATE products SET deleted_at = NOW(6), version = version + 1"
    " WHERE id = ? AND version = ? AND deleted_at IS NULL";
/* --- management ------------------------------------------------------------- */

/* A strict UTC time (core/timefmt.c) → SQL DATETIME(6) text and epoch µs. */
static int
parse_time(jt_arena *a, const char *s, const char **sql, int64_t *epoch_us)
{
    char *out;

    if (jt_parse_utc(s, epoch_us) != 0 || (out = jt_palloc(a, JT_SQL_TIME_LEN)) == NULL) {
        return -1;
    }
    jt_format_sql_time(out, *epoch_us);
    *sql = out;
    return 0;
}

/* Reads an optional time field: absent → *present 0; null → set to NULL. */
static jt_err
time_field(jt_req *r, json_object *o, const char *key, int *present, const char **sql, int64_t *us)
{
    json_object *v;

    *present = 0;
    *sql = NULL;
    *us = 0;
    if (!json_object_object_get_ex(o, key, &v)) {
        return JT_OK;
    }
    *present = 1;
    if (v == NULL) {
        return JT_OK;
    }
    if (!json_object_is_type(v, json_type_string)
        || parse_time(r->arena, json_object_get_string(v), sql, us) != 0) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'%s' must be a UTC time like 2026-12-01T09:00:00Z", key);
    }
    return JT_OK;
}

static jt_err
require_seller(jt_req *r, jt_principal *who)
{
    jt_err e = auth_require(r, who);

    if (e != JT_OK) {
        return e;
    }
    if (!who->is_admin && strcmp(who->role, "SELLER") != 0) {
        return jt_fail(r, JT_E_FORBIDDEN, "only sellers and admins manage products");
    }
    return JT_OK;
}

/* After COMMIT: the product's detail and every list page get fresh tags. */
static void
bump_product(jt_req *r, int64_t id)
{
    char guard[48];
    const char *guards[2] = { guard, JT_CATALOG_LIST_GUARD };

    catalog_product_guard(guard, sizeof(guard), id);
    jt_cache_invalidate(r->redis, r->arena, guards, 2);
}

/* The last step of a catalog write's transaction: the product as this
 * transaction leaves it is the answer. It is read inside the transaction,
 * never after COMMIT: a read that fails after a committed write would
 * answer 5xx for a change that was made. */
static jt_tx_step
answer_product(jt_tx *tx, jt_req *r, int64_t id, int status)
{
    int64_t next;
    jt_buf b;
    jt_err e = catalog_product_from_db(r, id, &b, &next);

    if (e != JT_OK) {
        tx->db_rc = e == JT_E_DATABASE_UNAVAILABLE ? JT_DB_DOWN : JT_DB_ERROR;
        return JT_TX_DBERR;
    }
    jt_write_answer(tx, status, &b, "PRODUCT", id);
    return JT_TX_COMMIT;
}

/* After COMMIT: fresh cache tags, then the recorded answer. */
static jt_err
finish_product(jt_req *r, jt_write *wr, int64_t id)
{
    bump_product(r, id);
    catalog_reply_etag(r, wr->answer.data, wr->answer.len);
    jt_write_finish(r, wr);
    return JT_OK;
}

typedef struct {
    jt_req      *r;
    int64_t      seller;      /* 0: none */
    const char  *name, *description, *starts, *ends;
    int64_t      price, stock;
    int          nopts;
    const char  *opt_name[JT_PRODUCT_MAX_OPTIONS];
    int64_t      opt_extra[JT_PRODUCT_MAX_OPTIONS], opt_stock[JT_PRODUCT_MAX_OPTIONS];
    int64_t      id;
    jt_err       refusal;
} create_tx;

/* The rows of a new product (c->id set): the product, its options, an
 * INITIAL stock movement for each stock it holds and its name's search
 * grams. The part of create_body that needs no request, so the admin
 * tool's load-products makes its products with exactly these statements. */
static jt_tx_step
create_rows(jt_tx *tx, create_tx *c)
{
    jt_val p[8];
    jt_rows rows;
    int i;

    p[0] = c->seller ? JT_VI(c->seller) : JT_VNULL;
    p[1] = JT_VS(c->name);
    p[2] = c->description ? JT_VS(c->description) : JT_VNULL;
    p[3] = JT_VI(c->price);
    p[4] = JT_VI(c->nopts ? 0 : c->stock);
    p[5] = JT_VI(c->nopts > 0);
    p[6] = c->starts ? JT_VS(c->starts) : JT_VNULL;
    p[7] = c->ends ? JT_VS(c->ends) : JT_VNULL;
    JT_TX_EXEC(tx, SQL_PRODUCT_INSERT, p, 8, &rows);
    c->id = (int64_t) rows.insert_id;
    if (c->nopts == 0) {
        jt_val m[4] = { JT_VI(c->id), JT_VNULL, JT_VI(c->stock), JT_VS("INITIAL") };
        JT_TX_EXEC(tx, SQL_MOVEMENT_INSERT, m, 4, &rows);
    }
    for (i = 0; i < c->nopts; i++) {
        jt_val o[4] = { JT_VI(c->id), JT_VS(c->opt_name[i]), JT_VI(c->opt_extra[i]), JT_VI(c->opt_stock[i]) };
        jt_val m[4];
        JT_TX_EXEC(tx, SQL_OPTION_INSERT, o, 4, &rows);
        m[0] = JT_VI(c->id);
        m[1] = JT_VI((int64_t) rows.insert_id);
        m[2] = JT_VI(c->opt_stock[i]);
        m[3] = JT_VS("INITIAL");
        JT_TX_EXEC(tx, SQL_MOVEMENT_INSERT, m, 4, &rows);
    }
    return search_index_name(tx, c->id, c->name);
}

static jt_tx_step
create_body(jt_tx *tx)
{
    create_tx *c = tx->data;
    jt_tx_step step = create_rows(tx, c);

    return step == JT_TX_COMMIT ? answer_product(tx, c->r, c->id, 201) : step;
}

jt_tx_step
catalog_insert_simple(jt_tx *tx, const char *name, int64_t price, int64_t stock, int64_t *id)
{
    create_tx c;
    jt_tx_step step;

    memset(&c, 0, sizeof(c));
    c.name = name;
    c.price = price;
    c.stock = stock;
    step = create_rows(tx, &c);
    *id = c.id;
    return step;
}

/* The body of POST /api/v1/products, validated (no database involved). */
static jt_err
parse_create(jt_req *r, json_object *o, create_tx *c)
{
    static const char *const known[] = { "name", "price", "stock", "description", "saleStartsAt", "saleEndsAt",
                                         "options", NULL };
    static const char *const option_known[] = { "name", "extraPrice", "stock", NULL };
    json_object *opts;
    int has_stock, ps, pe;
    int64_t us_s = 0, us_e = 0;
    jt_err e;

    if ((e = jt_json_only(r, o, "", known)) != JT_OK
        || (e = jt_json_str(r, o, "name", JT_REQUIRED, 1, 100, &c->name)) != JT_OK
        || (e = jt_json_int(r, o, "price", JT_REQUIRED, 0, JT_PRODUCT_PRICE_MAX, &c->price, NULL)) != JT_OK
        || (e = jt_json_int(r, o, "stock", JT_OPTIONAL, 0, JT_PRODUCT_STOCK_MAX, &c->stock, &has_stock)) != JT_OK
        || (e = jt_json_str(r, o, "description", JT_OPTIONAL, 0, 2000, &c->description)) != JT_OK
        || (e = time_field(r, o, "saleStartsAt", &ps, &c->starts, &us_s)) != JT_OK
        || (e = time_field(r, o, "saleEndsAt", &pe, &c->ends, &us_e)) != JT_OK) {
        return e;
    }
    if (strspn(c->name, " \t") == strlen(c->name)) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'name' must not be blank");
    }
    if (c->starts && c->ends && us_e <= us_s) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'saleEndsAt' must be after 'saleStartsAt'");
    }
    if (json_object_object_get_ex(o, "options", &opts) && opts != NULL) {
        size_t n, i;
        if (!json_object_is_type(opts, json_type_array)
            || (n = json_object_array_length(opts)) > JT_PRODUCT_MAX_OPTIONS) {
            return jt_fail(r, JT_E_INVALID_REQUEST, "'options' must be an array of at most %d",
                           JT_PRODUCT_MAX_OPTIONS);
        }
        for (i = 0; i < n; i++) {
            json_object *op = json_object_array_get_idx(opts, i);
            char where[32];
            if (op == NULL || !json_object_is_type(op, json_type_object)) {
                return jt_fail(r, JT_E_INVALID_REQUEST, "options[%zu] must be an object", i);
            }
            snprintf(where, sizeof(where), "options[%zu]", i);
            if ((e = jt_json_only(r, op, where, option_known)) != JT_OK
                || (e = jt_json_str(r, op, "name", JT_REQUIRED, 1, 100, &c->opt_name[i])) != JT_OK
                || (e = jt_json_int(r, op, "extraPrice", JT_REQUIRED, 0, JT_PRODUCT_PRICE_MAX, &c->opt_extra[i],
                                    NULL)) != JT_OK
                || (e = jt_json_int(r, op, "stock", JT_REQUIRED, 0, JT_PRODUCT_STOCK_MAX, &c->opt_stock[i],
                                    NULL)) != JT_OK) {
                return e;
            }
        }
        c->nopts = (int) n;
    }
    if (!has_stock && c->nopts == 0) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'stock' is required for a product without options");
    }

    return JT_OK;
}

jt_err
catalog_validate_create(jt_req *r, json_object *o)
{
    create_tx *c = jt_pcalloc(r->arena, sizeof(*c));

    if (c == NULL) {
        return JT_E_INTERNAL;
    }
    c->r = r;
    return parse_create(r, o, c);
}

/* POST /api/v1/products */
jt_err
catalog_create(jt_req *r)
{
    jt_principal who;
    json_object *o;
    create_tx *c;
    jt_write *wr;
    jt_err e;

    if ((e = require_seller(r, &who)) != JT_OK || (e = jt_json_body(r, &o)) != JT_OK) {
        return e;
    }
    c = jt_pcalloc(r->arena, sizeof(*c));
    if (c == NULL) {
        return JT_E_INTERNAL;
    }
    c->r = r;
    c->seller = who.is_admin ? 0 : who.user_id;
    if ((e = parse_create(r, o, c)) != JT_OK) {
        return e;
    }

    if ((e = jt_write_begin(r, &wr, who.user_id, o, JT_WRITE_KEY_IGNORED)) != JT_OK
        || (e = jt_write_run(r, wr, create_body, c, &c->refusal)) != JT_OK) {
        return e;
    }
    {
        char loc[64];
        snprintf(loc, sizeof(loc), "/api/v1/products/%lld", (long long) c->id);
        jt_reply_header(r, "Location", loc);
    }
    return finish_product(r, wr, c->id);
}

/* Loads the product for a write and checks ownership: 404 when missing or
 * deleted, 403 for a seller who does not own it. */
static jt_err
writable_product(jt_req *r, const jt_principal *who, int64_t id, jt_rows *rows)
{
    jt_val p[1] = { JT_VI(id) };
    jt_db_rc rc;

    if ((rc = jt_db_exec(r->db, r->arena, SQL_PRODUCT_FOR_WRITE, p, 1, rows)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    if (rows->nrows == 0) {
        return jt_fail(r, JT_E_PRODUCT_NOT_FOUND, "product %lld does not exist", (long long) id);
    }
    if (!who->is_admin
        && (jt_cell(rows, 0, 1)->type == JT_V_NULL || jt_cell(rows, 0, 1)->i != who->user_id)) {
        return jt_fail(r, JT_E_FORBIDDEN, "only the seller who owns product %lld may change it", (long long) id);
    }
    return JT_OK;
}

typedef struct {
    jt_req      *r;
    int64_t      id;
    int          has_if_match;
    int64_t      if_match;
    /* requested changes: present flags and values */
    int          set_name, set_desc, set_price, set_starts, set_ends;
    const char  *name, *description, *starts, *ends;
    int64_t      price, starts_us, ends_us;
    jt_err       refusal;
} patch_tx;

static jt_tx_step
patch_body(jt_tx *tx)
{
    patch_tx *c = tx->data;
    jt_val p[7];
    jt_rows rows;
    jt_tx_step step;
    const char *name, *desc, *starts, *ends;
    int64_t price, version, starts_us, ends_us;

    p[0] = JT_VI(c->id);
    JT_TX_EXEC(tx, SQL_PRODUCT_FOR_WRITE, p, 1, &rows);
    if (rows.nrows == 0) {
        c->refusal = jt_fail(c->r, JT_E_PRODUCT_NOT_FOUND, "product %lld does not exist", (long long) c->id);
        return JT_TX_ABORT;
    }
    version = jt_cell(&rows, 0, 2)->i;
    if (c->has_if_match && c->if_match != version) {
        c->refusal = jt_fail(c->r, JT_E_VERSION_MISMATCH, "product %lld is at version %lld, not %lld",
                             (long long) c->id, (long long) version, (long long) c->if_match);
        return JT_TX_ABORT;
    }
    name = c->set_name ? c->name : jt_cell(&rows, 0, 3)->s;
    price = c->set_price ? c->price : jt_cell(&rows, 0, 4)->i;
    desc = c->set_desc ? c->description : jt_cell(&rows, 0, 5)->s;
    starts = c->set_starts ? c->starts : jt_cell(&rows, 0, 6)->s;
    ends = c->set_ends ? c->ends : jt_cell(&rows, 0, 7)->s;
    if (starts && ends && jt_parse_sql_time(starts, &starts_us) == 0 && jt_parse_sql_time(ends, &ends_us) == 0
        && ends_us <= starts_us) {
        c->refusal = jt_fail(c->r, JT_E_INVALID_REQUEST, "'saleEndsAt' must be after 'saleStartsAt'");
        return JT_TX_ABORT;
    }
    p[0] = JT_VS(name);
    p[1] = desc ? JT_VS(desc) : JT_VNULL;
    p[2] = JT_VI(price);
    p[3] = starts ? JT_VS(starts) : JT_VNULL;
    p[4] = ends ? JT_VS(ends) : JT_VNULL;
    p[5] = JT_VI(c->id);
    p[6] = JT_VI(version);
    JT_TX_EXEC(tx, SQL_PRODUCT_UPDATE, p, 7, &rows);
    if (rows.affected != 1) {
        return JT_TX_CONFLICT;
    }
    step = c->set_name ? search_index_name(tx, c->id, name) : JT_TX_COMMIT;
    return step == JT_TX_COMMIT ? answer_product(tx, c->r, c->id, 200) : step;
}

static jt_err
if_match_of(jt_req *r, int *has, int64_t *v)
{
    jt_if_match m = jt_http_parse_if_match(r->if_match, v);

    if (m == JT_IF_MATCH_MALFORMED) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "If-Match must be the product version, e.g. \"3\"");
    }
    *has = m == JT_IF_MATCH_VERSION;
    return JT_OK;
}

/* The write path of a single-row catalog change: begin (no key), the lock
 * an order would take on that stock row, the fenced transaction, then the
 * product as it now stands. */
static jt_err
write_one_row(jt_req *r, int64_t principal, json_object *o, const char *lock_key, jt_tx_body body, void *data,
              const jt_err *refusal, int64_t id)
{
    const char *keys[1] = { lock_key };
    jt_write *wr;
    jt_err e;

    if ((e = jt_write_begin(r, &wr, principal, o, JT_WRITE_KEY_IGNORED)) != JT_OK
        || (e = jt_write_lock(r, wr, keys, 1)) != JT_OK || (e = jt_write_run(r, wr, body, data, refusal)) != JT_OK) {
        return e;
    }
    return finish_product(r, wr, id);
}

/* PATCH /api/v1/products/{id} */
jt_err
catalog_patch(jt_req *r)
{
    int64_t id = jt_req_param_id(r, "id");
    jt_principal who;
    json_object *o, *v;
    jt_rows rows;
    patch_tx *c;
    const char *key;
    jt_err e;

    static const char *const known[] = { "name", "price", "description", "saleStartsAt", "saleEndsAt", NULL };

    if ((e = require_seller(r, &who)) != JT_OK || (e = jt_json_body(r, &o)) != JT_OK
        || (e = jt_json_only(r, o, "", known)) != JT_OK || (e = writable_product(r, &who, id, &rows)) != JT_OK) {
        return e;
    }
    c = jt_pcalloc(r->arena, sizeof(*c));
    if (c == NULL) {
        return JT_E_INTERNAL;
    }
    c->r = r;
    c->id = id;
    if ((e = if_match_of(r, &c->has_if_match, &c->if_match)) != JT_OK) {
        return e;
    }
    c->set_name = json_object_object_get_ex(o, "name", &v);
    c->set_price = json_object_object_get_ex(o, "price", &v);
    c->set_desc = json_object_object_get_ex(o, "description", &v);
    if ((c->set_name && (e = jt_json_str(r, o, "name", JT_REQUIRED, 1, 100, &c->name)) != JT_OK)
        || (c->set_price
            && (e = jt_json_int(r, o, "price", JT_REQUIRED, 0, JT_PRODUCT_PRICE_MAX, &c->price, NULL)) != JT_OK)
        || (c->set_desc && (e = jt_json_str(r, o, "description", JT_OPTIONAL, 0, 2000, &c->description)) != JT_OK)
        || (e = time_field(r, o, "saleStartsAt", &c->set_starts, &c->starts, &c->starts_us)) != JT_OK
        || (e = time_field(r, o, "saleEndsAt", &c->set_ends, &c->ends, &c->ends_us)) != JT_OK) {
        return e;
    }
    if (c->set_name && strspn(c->name, " \t") == strlen(c->name)) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'name' must not be blank");
    }
    if (!(c->set_name || c->set_price || c->set_desc || c->set_starts || c->set_ends)) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "nothing to change: give name, description, price or a sale window");
    }
    /* the lock every order of this product takes, with or without an
     * option: a price change and an order of it never interleave, and the
     * version fence orders them when the lock is lost (domain/lockkey.h) */
    if ((key = jt_lockkey_product(r->arena, id)) == NULL) {
        return JT_E_INTERNAL;
    }
    return write_one_row(r, who.user_id, o, key, patch_body, c, &c->refusal, id);
}

typedef struct {
    jt_req  *r;
    int64_t  id, option_id, delta;
    int      has_if_match;
    int64_t  if_match;
    jt_err   refusal;
} stock_tx;

static jt_tx_step
stock_body(jt_tx *tx)
{
    stock_tx *c = tx->data;
    jt_val p[4];
    jt_rows rows;
    int64_t stock, version;

    p[0] = JT_VI(c->id);
    JT_TX_EXEC(tx, SQL_PRODUCT_FOR_WRITE, p, 1, &rows);
    if (rows.nrows == 0) {
        c->refusal = jt_fail(c->r, JT_E_PRODUCT_NOT_FOUND, "product %lld does not exist", (long long) c->id);
        return JT_TX_ABORT;
    }
    if (jt_cell(&rows, 0, 9)->i && c->option_id == 0) {
        c->refusal = jt_fail(c->r, JT_E_INVALID_REQUEST, "product %lld keeps its stock on options: give 'optionId'",
                             (long long) c->id);
        return JT_TX_ABORT;
    }
    if (c->option_id) {
        p[0] = JT_VI(c->option_id);
        p[1] = JT_VI(c->id);
        JT_TX_EXEC(tx, SQL_OPTION_FOR_WRITE, p, 2, &rows);
        if (rows.nrows == 0) {
            c->refusal = jt_fail(c->r, JT_E_OPTION_NOT_FOUND, "product %lld has no option %lld",
                                 (long long) c->id, (long long) c->option_id);
            return JT_TX_ABORT;
        }
        stock = jt_cell(&rows, 0, 0)->i;
        version = jt_cell(&rows, 0, 1)->i;
    } else {
        stock = jt_cell(&rows, 0, 8)->i;
        version = jt_cell(&rows, 0, 2)->i;
    }
    if (c->has_if_match && c->if_match != version) {
        c->refusal = jt_fail(c->r, JT_E_VERSION_MISMATCH, "the stock row is at version %lld, not %lld",
                             (long long) version, (long long) c->if_match);
        return JT_TX_ABORT;
    }
    if (stock + c->delta < 0) {
        c->refusal = jt_fail(c->r, JT_E_OUT_OF_STOCK, "stock is %lld: it cannot go below zero", (long long) stock);
        return JT_TX_ABORT;
    }
    if (stock + c->delta > JT_PRODUCT_STOCK_MAX) {
        c->refusal = jt_fail(c->r, JT_E_INVALID_REQUEST, "stock may not exceed %lld", JT_PRODUCT_STOCK_MAX);
        return JT_TX_ABORT;
    }
    p[0] = JT_VI(stock + c->delta);
    p[1] = JT_VI(c->option_id ? c->option_id : c->id);
    p[2] = JT_VI(version);
    JT_TX_EXEC(tx, c->option_id ? SQL_OPTION_STOCK : SQL_PRODUCT_STOCK, p, 3, &rows);
    if (rows.affected != 1) {
        return JT_TX_CONFLICT;
    }
    p[0] = JT_VI(c->id);
    p[1] = c->option_id ? JT_VI(c->option_id) : JT_VNULL;
    p[2] = JT_VI(c->delta);
    p[3] = JT_VS(c->delta > 0 ? "RESTOCK" : "CORRECTION");
    JT_TX_EXEC(tx, SQL_MOVEMENT_INSERT, p, 4, &rows);
    return answer_product(tx, c->r, c->id, 200);
}

/* POST /api/v1/products/{id}/stock {"delta", "optionId"?} */
jt_err
catalog_restock(jt_req *r)
{
    int64_t id = jt_req_param_id(r, "id");
    jt_principal who;
    json_object *o;
    jt_rows rows;
    stock_tx *c;
    const char *key;
    int has_opt;
    jt_err e;
    static const char *const known[] = { "delta", "optionId", NULL };

    if ((e = require_seller(r, &who)) != JT_OK || (e = jt_json_body(r, &o)) != JT_OK
        || (e = jt_json_only(r, o, "", known)) != JT_OK || (e = writable_product(r, &who, id, &rows)) != JT_OK) {
        return e;
    }
    c = jt_pcalloc(r->arena, sizeof(*c));
    if (c == NULL) {
        return JT_E_INTERNAL;
    }
    c->r = r;
    c->id = id;
    if ((e = jt_json_int(r, o, "delta", JT_REQUIRED, -JT_PRODUCT_STOCK_MAX, JT_PRODUCT_STOCK_MAX, &c->delta, NULL))
            != JT_OK
        || (e = jt_json_int(r, o, "optionId", JT_OPTIONAL, 1, INT64_MAX - 1, &c->option_id, &has_opt)) != JT_OK
        || (e = if_match_of(r, &c->has_if_match, &c->if_match)) != JT_OK) {
        return e;
    }
    if (c->delta == 0) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'delta' must not be zero");
    }
    /* the very lock an order takes on this stock row */
    if ((key = jt_lockkey_stock(r->arena, id, c->option_id)) == NULL) {
        return JT_E_INTERNAL;
    }
    return write_one_row(r, who.user_id, o, key, stock_body, c, &c->refusal, id);
}

typedef struct {
    jt_req  *r;
    int64_t  id;
    int      has_if_match;
    int64_t  if_match;
    jt_err   refusal;
} delete_tx;

static jt_tx_step
delete_body(jt_tx *tx)
{
    delete_tx *c = tx->data;
    jt_val p[2];
    jt_rows rows;
    int64_t version;

    p[0] = JT_VI(c->id);
    JT_TX_EXEC(tx, SQL_PRODUCT_FOR_WRITE, p, 1, &rows);
    if (rows.nrows == 0) {
        c->refusal = jt_fail(c->r, JT_E_PRODUCT_NOT_FOUND, "product %lld does not exist", (long long) c->id);
        return JT_TX_ABORT;
    }
    version = jt_cell(&rows, 0, 2)->i;
    if (c->has_if_match && c->if_match != version) {
        c->refusal = jt_fail(c->r, JT_E_VERSION_MISMATCH, "product %lld is at version %lld, not %lld",
                             (long long) c->id, (long long) version, (long long) c->if_match);
        return JT_TX_ABORT;
    }
    p[1] = JT_VI(version);
    JT_TX_EXEC(tx, SQL_PRODUCT_DELETE, p, 2, &rows);
    if (rows.affected != 1) {
        return JT_TX_CONFLICT;
    }
    {
        jt_buf none;
        jt_buf_init(&none, tx->arena, 0);
        jt_write_answer(tx, 204, &none, "PRODUCT", c->id);
    }
    return JT_TX_COMMIT;
}

/* DELETE /api/v1/products/{id}: hidden from listings and orders; past
 * orders keep their snapshot. */
jt_err
catalog_delete(jt_req *r)
{
    int64_t id = jt_req_param_id(r, "id");
    jt_principal who;
    jt_rows rows;
    delete_tx c;
    jt_write *wr;
    const char *keys[1];
    jt_err e;

    if ((e = require_seller(r, &who)) != JT_OK || (e = writable_product(r, &who, id, &rows)) != JT_OK) {
        return e;
    }
    memset(&c, 0, sizeof(c));
    c.r = r;
    c.id = id;
    if ((e = if_match_of(r, &c.has_if_match, &c.if_match)) != JT_OK) {
        return e;
    }
    if ((e = jt_write_begin(r, &wr, who.user_id, NULL, JT_WRITE_KEY_IGNORED)) != JT_OK) {
        return e;
    }
    if ((keys[0] = jt_lockkey_product(r->arena, id)) == NULL) {
        return JT_E_INTERNAL;
    }
    if ((e = jt_write_lock(r, wr, keys, 1)) != JT_OK || (e = jt_write_run(r, wr, delete_body, &c, &c.refusal)) != JT_OK) {
        return e;
    }
    return finish_product(r, wr, id);
}
