/* Catalog reads: product list and product detail. */
#include "domain/catalog.h"

#include <string.h>

#include "domain/common.h"
#include "store/db.h"

static const char SQL_PRODUCT_GET[] =
    "SELECT id, name, price, stock, version FROM products WHERE id = ?";
static const char SQL_PRODUCT_OPTIONS[] =
    "SELECT id, name, extra_price, stock FROM product_options WHERE product_id = ? ORDER BY id";
/* a product with options keeps its stock on them: show their sum */
static const char SQL_PRODUCT_PAGE[] =
    "SELECT p.id, p.name, p.price,"
    " COALESCE((SELECT SUM(o.stock) FROM product_options o WHERE o.product_id = p.id), p.stock)"
    " FROM products p ORDER BY p.id LIMIT ? OFFSET ?";
static const char SQL_PRODUCT_COUNT[] =
    "SELECT COUNT(*) FROM products";

#define PAGE_MAX 10000000

jt_err
catalog_list(jt_req *r)
{
    int64_t page, size;
    jt_rows rows, count;
    jt_val p[2];
    jt_db_rc rc;
    jt_buf b;
    jt_json w;
    jt_err e;
    int i;

    if ((e = jt_req_query_int(r, "page", 1, 1, PAGE_MAX, &page)) != JT_OK
        || (e = jt_req_query_int(r, "size", 20, 1, 100, &size)) != JT_OK) {
        return e;
    }
    p[0] = JT_VI(size);
    p[1] = JT_VI((page - 1) * size);
    if ((rc = jt_db_exec(r->db, r->arena, SQL_PRODUCT_PAGE, p, 2, &rows)) != JT_DB_OK
        || (rc = jt_db_exec(r->db, r->arena, SQL_PRODUCT_COUNT, NULL, 0, &count)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }

    jt_json_begin(r, &b, &w, 128 + (size_t) rows.nrows * 96);
    jw_obj_open(&w);
    jw_key(&w, "items");
    jw_arr_open(&w);
    for (i = 0; i < rows.nrows; i++) {
        jw_obj_open(&w);
        jw_kint(&w, "id", jt_cell(&rows, i, 0)->i);
        jw_kstr(&w, "name", jt_cell(&rows, i, 1)->s);
        jw_kint(&w, "price", jt_cell(&rows, i, 2)->i);
        jw_kint(&w, "stock", jt_cell(&rows, i, 3)->i);
        jw_obj_close(&w);
    }
    jw_arr_close(&w);
    jw_kint(&w, "page", page);
    jw_kint(&w, "size", size);
    jw_kint(&w, "total", count.nrows ? jt_cell(&count, 0, 0)->i : 0);
    jw_obj_close(&w);
    jt_reply_json(r, 200, &b);
    return JT_OK;
}

jt_err
catalog_get(jt_req *r)
{
    jt_val p[1] = { JT_VI(jt_req_param_id(r, "id")) };
    jt_rows rows, opts;
    int64_t stock;
    jt_db_rc rc;
    int i;
    jt_buf b;
    jt_json w;

    if ((rc = jt_db_exec(r->db, r->arena, SQL_PRODUCT_GET, p, 1, &rows)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    if (rows.nrows == 0) {
        return jt_fail(r, JT_E_PRODUCT_NOT_FOUND, "product %lld does not exist", (long long) p[0].i);
    }
    if ((rc = jt_db_exec(r->db, r->arena, SQL_PRODUCT_OPTIONS, p, 1, &opts)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    stock = jt_cell(&rows, 0, 3)->i;
    if (opts.nrows > 0) {
        stock = 0;
        for (i = 0; i < opts.nrows; i++) {
            stock += jt_cell(&opts, i, 3)->i;
        }
    }
    jt_json_begin(r, &b, &w, 192 + (size_t) opts.nrows * 96);
    jw_obj_open(&w);
    jw_kint(&w, "id", jt_cell(&rows, 0, 0)->i);
    jw_kstr(&w, "name", jt_cell(&rows, 0, 1)->s);
    jw_kint(&w, "price", jt_cell(&rows, 0, 2)->i);
    jw_kint(&w, "stock", stock);
    jw_kint(&w, "version", jt_cell(&rows, 0, 4)->i);
    jw_key(&w, "options");
    jw_arr_open(&w);
    for (i = 0; i < opts.nrows; i++) {
        jw_obj_open(&w);
        jw_kint(&w, "id", jt_cell(&opts, i, 0)->i);
        jw_kstr(&w, "name", jt_cell(&opts, i, 1)->s);
        jw_kint(&w, "extraPrice", jt_cell(&opts, i, 2)->i);
        jw_kint(&w, "stock", jt_cell(&opts, i, 3)->i);
        jw_obj_close(&w);
    }
    jw_arr_close(&w);
    jw_obj_close(&w);
    jt_reply_json(r, 200, &b);
    return JT_OK;
}
