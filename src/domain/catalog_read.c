/* Catalog reads: product detail and list pages served from Redis when warm
 * (store/cache.c, tagged entries), popular products with single-flight
 * refresh, and the detail answer the writes reuse after COMMIT. */
#include "domain/catalog.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/metrics.h"
#include "core/timefmt.h"
#include "domain/common.h"
#include "domain/order_status.h"
#include "domain/cursor.h"
#include "domain/lockkey.h"
#include "domain/search.h"
#include "http/json.h"
#include "store/cache.h"
#include "store/db.h"
#include "store/lock.h"

#define TS_FMT "'%Y-%m-%dT%H:%i:%s.%fZ'"
/* The sale status, computed from the app's clock (clk.now, JT_SQL_CLOCK)
 * on every read: no job flips it. Every statement below joins clk and
 * binds jt_sql_now() as its first parameter. */
#define STATUS_EXPR                                                                 \
    "CASE WHEN p.sale_starts_at IS NOT NULL AND p.sale_starts_at > clk.now THEN 'COMING_SOON'" \
    " WHEN p.sale_ends_at IS NOT NULL AND p.sale_ends_at <= clk.now THEN 'ENDED' ELSE 'ON_SALE' END"
/* milliseconds until the status can next change (capped at 1000): a cached
 * answer must not outlive the second its sale opens or closes */
#define NEXT_CHANGE_MS                                                              \
    "LEAST(COALESCE(IF(p.sale_starts_at > clk.now, TIMESTAMPDIFF(MICROSECOND, clk.now, p.sale_starts_at) DIV 1000, NULL), 1000)," \
    " COALESCE(IF(p.sale_ends_at > clk.now, TIMESTAMPDIFF(MICROSECOND, clk.now, p.sale_ends_at) DIV 1000, NULL), 1000))"
#define STOCK_EXPR "COALESCE((SELECT SUM(o.stock) FROM product_options o WHERE o.product_id = p.id), p.stock)"

/* The product, and its options in a second round trip when it has some
 * (has_options, sql/013; a join for every product costs more than a second
 * query for the few with options). The columns come back raw and the status, its next change and the ISO
 * times are made here from the app's clock (the same rules as STATUS_EXPR
 * and NEXT_CHANGE_MS): the product detail is the catalog's hottest read,
 * and expressions cost MariaDB more than they cost a worker. Last, how many
 * buyers wish for it (under any option): the count the wishlist keeps
 * (sql/015, basket.c), by primary key; counting wishlist_items here cost
 * the uncached detail a quarter of its rate. */
static const char SQL_PRODUCT_GET[] =
    "SELECT id, name, price, stock, version, description, seller_id, sale_starts_at, sale_ends_at, has_options,"
    " COALESCE(pw.wishers, 0)"
    " FROM products LEFT JOIN product_wishes pw ON pw.product_id = products.id"
    " WHERE products.id = ? AND products.deleted_at IS NULL";
static const char SQL_PRODUCT_OPTIONS[] =
    "SELECT id, name, extra_price, stock FROM product_options WHERE product_id = ? ORDER BY id";
enum { PG_ID, PG_NAME, PG_PRICE, PG_STOCK, PG_VERSION, PG_DESC, PG_SELLER, PG_STARTS, PG_ENDS, PG_HAS_OPTIONS, PG_WISHES };
enum { PO_ID, PO_NAME, PO_EXTRA, PO_STOCK };

/* A sale-window bound as epoch µs; 0 when NULL (or unreadable). */
static int64_t
window_us(const jt_val *v)
{
    int64_t us;

    return v->type != JT_V_NULL && v->s != NULL && jt_parse_sql_time(v->s, &us) == 0 ? us : 0;
}

/* STATUS_EXPR, NEXT_CHANGE_MS and DATE_FORMAT(TS_FMT), in C. */
static void
write_window(jt_json *w, int64_t starts, int64_t ends, int64_t now, int64_t *next_change)
{
    int64_t next = 1000;
    char iso[JT_UTC_US_LEN];

    if (starts && starts > now && (starts - now) / 1000 < next) {
        next = (starts - now) / 1000;
    }
    if (ends && ends > now && (ends - now) / 1000 < next) {
        next = (ends - now) / 1000;
    }
    *next_change = next;
    jw_kstr(w, "status", starts && starts > now ? "COMING_SOON" : ends && ends <= now ? "ENDED" : "ON_SALE");
    if (starts) {
        jt_format_utc_us(iso, starts);
        jw_kstr(w, "saleStartsAt", iso);
    } else {
        jw_knull(w, "saleStartsAt");
    }
    if (ends) {
        jt_format_utc_us(iso, ends);
        jw_kstr(w, "saleEndsAt", iso);
    } else {
        jw_knull(w, "saleEndsAt");
    }
}

/* listing: 2 (q or not) x 4 (status filter) statements, all index-backed */
#define LIST_COLS                                                                   \
    "SELECT p.id, p.name, p.price, " STOCK_EXPR ", " STATUS_EXPR ", " NEXT_CHANGE_MS \
    " FROM " JT_SQL_CLOCK ", products p WHERE p.deleted_at IS NULL"
#define COUNT_COLS "SELECT COUNT(*) FROM " JT_SQL_CLOCK ", products p WHERE p.deleted_at IS NULL"
/* Each gram is its own index lookup: grams compare under the name's
 * collation (sql/007), where two grams of one query may be equal ('É' and
 * 'é'), so "has all of them" cannot be a count of distinct matches. */
#define Q_GRAM " AND p.id IN (SELECT g.product_id FROM product_name_grams g WHERE g.gram = ?)"
#define Q_COND Q_GRAM Q_GRAM Q_GRAM Q_GRAM " AND p.name LIKE ? ESCAPE '!'"
#define S_ON " AND (p.sale_starts_at IS NULL OR p.sale_starts_at <= clk.now) AND (p.sale_ends_at IS NULL OR p.sale_ends_at > clk.now)"
#define S_SOON " AND p.sale_starts_at > clk.now"
#define S_END " AND p.sale_ends_at <= clk.now"
#define PAGE " ORDER BY p.id LIMIT ? OFFSET ?"

static const char *const SQL_LIST[8] = {
    LIST_COLS PAGE, LIST_COLS S_ON PAGE, LIST_COLS S_SOON PAGE, LIST_COLS S_END PAGE,
    LIST_COLS Q_COND PAGE, LIST_COLS Q_COND S_ON PAGE, LIST_COLS Q_COND S_SOON PAGE, LIST_COLS Q_COND S_END PAGE,
};
static const char *const SQL_COUNT[8] = {
    COUNT_COLS, COUNT_COLS S_ON, COUNT_COLS S_SOON, COUNT_COLS S_END,
    COUNT_COLS Q_COND, COUNT_COLS Q_COND S_ON, COUNT_COLS Q_COND S_SOON, COUNT_COLS Q_COND S_END,
};

/* a status-filtered page can change when any live product's sale opens or
 * closes, not only the ones on it: how long until the next such instant
 * (the clock is bound twice, once per arm) */
static const char SQL_NEXT_BOUNDARY_MS[] =
    "SELECT COALESCE(MIN(ms), 1000) FROM ("
    " SELECT TIMESTAMPDIFF(MICROSECOND, clk.now, MIN(sale_starts_at)) DIV 1000 AS ms FROM " JT_SQL_CLOCK ", products"
    "  WHERE deleted_at IS NULL AND sale_starts_at > clk.now"
    " UNION ALL SELECT TIMESTAMPDIFF(MICROSECOND, clk.now, MIN(sale_ends_at)) DIV 1000 FROM " JT_SQL_CLOCK ", products"
    "  WHERE deleted_at IS NULL AND sale_ends_at > clk.now) t";

/* created_at is MariaDB's stamp, so "the last three days" is counted on
 * its clock (domain/common.h); an order sold its units until it is
 * cancelled or returned, whatever its delivery says */
static const char SQL_POPULAR[] =
    "SELECT oi.product_id, p.name, p.price, SUM(oi.quantity) AS sold"
    " FROM orders o JOIN order_items oi ON oi.order_id = o.id JOIN products p ON p.id = oi.product_id"
    " WHERE o.status IN (" JT_ORDER_SOLD_SQL ") AND o.created_at >= NOW(6) - INTERVAL 3 DAY"
    " AND p.deleted_at IS NULL"
    " GROUP BY oi.product_id ORDER BY sold DESC, oi.product_id LIMIT 5";

/* --- reading ------------------------------------------------------------------ */

/* [catalog] cache_ttl_ms = 0 turns the read cache off: no Redis call at all */
static int
cache_on(const jt_req *r)
{
    return ((const jt_conf *) r->conf)->cache_ttl_ms > 0;
}

/* How long a fill may live: cache_ttl_ms, or less when the sale status can
 * change sooner, counted from the start of the request (before its MariaDB
 * read), so stock an order commits away is never shown for longer than
 * cache_ttl_ms. <= 0: do not cache. */
static int64_t
cache_ttl(const jt_req *r, int64_t next_change_ms)
{
    const jt_conf *c = r->conf;
    int64_t ttl = c->cache_ttl_ms;

    if (next_change_ms < ttl) {
        ttl = next_change_ms;
    }
    return ttl - (jt_clock_mono_us() - r->start_us + 999) / 1000;
}

/* A warm read: the bytes as Redis gave them. */
static jt_err
answer_cached(jt_req *r, const char *data, size_t len)
{
    JT_METRIC_INC(cache_hits);
    jt_reply_text(r, 200, "application/json", data, len);
    return JT_OK;
}

/* The first members of a product in a list or in popular: id, name, price
 * and a count (its stock, or the units sold), columns 0 to 3 of the row;
 * the caller adds what else it shows and closes the object. */
static void
write_summary(jt_json *w, const jt_rows *rows, int i, const char *count_key)
{
    jw_obj_open(w);
    jw_kint(w, "id", jt_cell(rows, i, 0)->i);
    jw_kstr(w, "name", jt_cell(rows, i, 1)->s);
    jw_kint(w, "price", jt_cell(rows, i, 2)->i);
    jw_kint(w, count_key, jt_val_int(jt_cell(rows, i, 3)));
}

/* GET /api/v1/products?page=&size=&q=&status= */
jt_err
catalog_list(jt_req *r)
{
    const char *q, *status, *cached;
    const char *grams[64];
    int64_t page, size, min_change = 1000;
    int variant = 0, ngrams = 0, i, np;
    jt_sql_time_buf now;
    jt_val p[10];
    jt_rows rows, count;
    jt_cache_slot slot = { "", "", 0 };
    char key[160], qhash[17] = "-";
    size_t clen;
    jt_db_rc rc;
    jt_buf b;
    jt_json w;
    jt_err e;

    if ((e = jt_page_parse(r, 10000000, &page, &size)) != JT_OK
        || (e = jt_req_query_str(r, "q", &q)) != JT_OK
        || (e = jt_req_query_str(r, "status", &status)) != JT_OK) {
        return e;
    }
    if (status != NULL) {
        if (!strcmp(status, "ON_SALE")) variant = 1;
        else if (!strcmp(status, "COMING_SOON")) variant = 2;
        else if (!strcmp(status, "ENDED")) variant = 3;
        else return jt_fail(r, JT_E_INVALID_REQUEST, "'status' must be ON_SALE, COMING_SOON or ENDED");
    }
    if (q != NULL) {
        size_t ql = strlen(q);
        if (ql == 0 || ql > 100 || memchr(q, '\0', ql) != NULL) {
            return jt_fail(r, JT_E_INVALID_REQUEST, "'q' must be 1 to 100 characters");
        }
        ngrams = search_grams(r->arena, q, grams, 64, 1);
        if (ngrams == 0) {
            return jt_fail(r, JT_E_INVALID_REQUEST, "'q' must contain a non-blank character");
        }
        variant += 4;
        {
            unsigned char h[8];
            crypto_generichash(h, sizeof(h), (const unsigned char *) q, ql, NULL, 0);
            sodium_bin2hex(qhash, sizeof(qhash), h, sizeof(h));
        }
    }

    snprintf(key, sizeof(key), "pl:%lld:%lld:%d:%s", (long long) page, (long long) size, variant, qhash);
    cached = cache_on(r) ? jt_cache_get(r->redis, r->arena, key, JT_CATALOG_LIST_GUARD, &slot, &clen) : NULL;
    if (cached != NULL) {
        return answer_cached(r, cached, clen);
    }
    JT_METRIC_INC(cache_misses);

    np = 0;
    p[np++] = jt_sql_now(&now);
    if (q != NULL) {
        /* up to four grams spread over the query narrow the candidates
         * through the index; LIKE then checks the whole substring */
        for (i = 0; i < 4; i++) {
            p[np++] = JT_VS(grams[ngrams == 1 ? 0 : (i * (ngrams - 1)) / 3]);
        }
        {
            size_t ql = strlen(q), k;
            char *like = jt_palloc(r->arena, ql * 2 + 3), *o = like;
            if (like == NULL) {
                return JT_E_INTERNAL;
            }
            *o++ = '%';
            for (k = 0; k < ql; k++) {
                if (q[k] == '%' || q[k] == '_' || q[k] == '!') {
                    *o++ = '!';
                }
                *o++ = q[k];
            }
            *o++ = '%';
            *o = '\0';
            p[np++] = JT_VS(like);
        }
    }
    if ((rc = jt_db_exec(r->db, r->arena, SQL_COUNT[variant], p, np, &count)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    p[np++] = JT_VI(size);
    p[np++] = JT_VI((page - 1) * size);
    if ((rc = jt_db_exec(r->db, r->arena, SQL_LIST[variant], p, np, &rows)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }

    jt_json_begin(r, &b, &w, 128 + (size_t) rows.nrows * 128);
    jw_obj_open(&w);
    jw_key(&w, "items");
    jw_arr_open(&w);
    for (i = 0; i < rows.nrows; i++) {
        write_summary(&w, &rows, i, "stock");
        jw_kstr(&w, "status", jt_cell(&rows, i, 4)->s);
        jw_obj_close(&w);
        if (jt_val_int(jt_cell(&rows, i, 5)) < min_change) {
            min_change = jt_val_int(jt_cell(&rows, i, 5));
        }
    }
    jw_arr_close(&w);
    jw_kint(&w, "page", page);
    jw_kint(&w, "size", size);
    jw_kint(&w, "total", count.nrows ? jt_cell(&count, 0, 0)->i : 0);
    jw_obj_close(&w);
    if (b.oom) {
        return JT_E_INTERNAL;
    }
    if (status != NULL) {
        jt_rows nb;
        jt_val nbp[2] = { p[0], p[0] };   /* the instant the page was read at */
        if (jt_db_exec(r->db, r->arena, SQL_NEXT_BOUNDARY_MS, nbp, 2, &nb) != JT_DB_OK || nb.nrows == 0) {
            min_change = 0;   /* unknown: do not cache */
        } else {
            int64_t ms = jt_val_int(jt_cell(&nb, 0, 0));
            if (ms < min_change) {
                min_change = ms;
            }
        }
    }
    jt_cache_put(r->redis, r->arena, &slot, b.data, b.len, cache_ttl(r, min_change));
    jt_reply_json(r, 200, &b);
    return JT_OK;
}

void
catalog_product_guard(char *out, size_t len, int64_t id)
{
    snprintf(out, len, "pg:%lld", (long long) id);
}

/* One round trip for the product and its options (a LEFT JOIN: one row per
 * option, NULLs without), read at the app's clock; *next_change says when
 * its sale status next flips, which caps how long the answer may be
 * cached. */
jt_err
catalog_product_from_db(jt_req *r, int64_t id, jt_buf *b, int64_t *next_change)
{
    jt_val p[1] = { JT_VI(id) };
    jt_rows rows, opts;
    jt_db_rc rc;
    jt_json w;
    int64_t stock;
    int i;

    if ((rc = jt_db_exec(r->db, r->arena, SQL_PRODUCT_GET, p, 1, &rows)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    if (rows.nrows == 0) {
        return jt_fail(r, JT_E_PRODUCT_NOT_FOUND, "product %lld does not exist", (long long) id);
    }
    memset(&opts, 0, sizeof(opts));
    if (jt_cell(&rows, 0, PG_HAS_OPTIONS)->i
        && (rc = jt_db_exec(r->db, r->arena, SQL_PRODUCT_OPTIONS, p, 1, &opts)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    /* a product with options keeps its stock on them: show their sum */
    stock = opts.nrows > 0 ? 0 : jt_cell(&rows, 0, PG_STOCK)->i;
    for (i = 0; i < opts.nrows; i++) {
        stock += jt_cell(&opts, i, PO_STOCK)->i;
    }
    jt_json_begin(r, b, &w, 256 + (size_t) opts.nrows * 96);
    jw_obj_open(&w);
    jw_kint(&w, "id", jt_cell(&rows, 0, PG_ID)->i);
    jw_kstr(&w, "name", jt_cell(&rows, 0, PG_NAME)->s);
    jw_kint(&w, "price", jt_cell(&rows, 0, PG_PRICE)->i);
    jw_kint(&w, "stock", stock);
    jw_kint(&w, "version", jt_cell(&rows, 0, PG_VERSION)->i);
    jw_kstr(&w, "description", jt_cell(&rows, 0, PG_DESC)->s);
    if (jt_cell(&rows, 0, PG_SELLER)->type == JT_V_NULL) {
        jw_knull(&w, "sellerId");
    } else {
        jw_kint(&w, "sellerId", jt_cell(&rows, 0, PG_SELLER)->i);
    }
    write_window(&w, window_us(jt_cell(&rows, 0, PG_STARTS)), window_us(jt_cell(&rows, 0, PG_ENDS)),
                 jt_clock_now_us(), next_change);
    jw_key(&w, "options");
    jw_arr_open(&w);
    for (i = 0; i < opts.nrows; i++) {
        jw_obj_open(&w);
        jw_kint(&w, "id", jt_cell(&opts, i, PO_ID)->i);
        jw_kstr(&w, "name", jt_cell(&opts, i, PO_NAME)->s);
        jw_kint(&w, "extraPrice", jt_cell(&opts, i, PO_EXTRA)->i);
        jw_kint(&w, "stock", jt_cell(&opts, i, PO_STOCK)->i);
        jw_obj_close(&w);
    }
    jw_arr_close(&w);
    /* wishlist writes re-tag nothing: the count is as stale as the entry
     * may be (cache_ttl_ms), like the stock orders sell */
    jw_kint(&w, "wishCount", jt_val_int(jt_cell(&rows, 0, PG_WISHES)));
    jw_obj_close(&w);
    return b->oom ? jt_fail(r, JT_E_INTERNAL, "out of memory") : JT_OK;
}

/* ETag: W/"<version>" of a product answer, read back from the answer itself
 * (so a warm read carries the same tag as the fill that stored it). Weak:
 * the stock shown can change without the product row's version (options,
 * the cache's TTL). If-Match takes it back, or the bare version. */
void
catalog_reply_etag(jt_req *r, const char *body, size_t len)
{
    static const char key[] = ",\"version\":";
    const char *v = memmem(body, len, key, sizeof(key) - 1), *end = body + len;
    char tag[32];
    int n = 0;

    if (v == NULL) {
        return;
    }
    v += sizeof(key) - 1;
    while (v + n < end && n < 19 && v[n] >= '0' && v[n] <= '9') {
        n++;
    }
    if (n > 0) {
        snprintf(tag, sizeof(tag), "W/\"%.*s\"", n, v);
        jt_reply_header(r, "ETag", tag);
    }
}

/* GET /api/v1/products/{id} */
jt_err
catalog_get(jt_req *r)
{
    const char *data;
    size_t len;
    int warm;
    jt_err e;

    if ((e = catalog_product_json(r, jt_req_param_id(r, "id"), &data, &len, &warm)) != JT_OK) {
        return e;
    }
    catalog_reply_etag(r, data, len);
    if (warm) {
        return answer_cached(r, data, len);
    }
    jt_reply_text(r, 200, "application/json", data, len);
    return JT_OK;
}

jt_err
catalog_product_json(jt_req *r, int64_t id, const char **data, size_t *len, int *warm)
{
    int64_t next_change = 1000;
    char guard[48], key[48];
    jt_cache_slot slot = { "", "", 0 };
    const char *cached;
    size_t clen;
    jt_buf b;
    jt_err e;

    catalog_product_guard(guard, sizeof(guard), id);
    snprintf(key, sizeof(key), "pd:%lld", (long long) id);
    cached = cache_on(r) ? jt_cache_get(r->redis, r->arena, key, guard, &slot, &clen) : NULL;
    if (cached != NULL) {
        *data = cached;
        *len = clen;
        *warm = 1;
        return JT_OK;
    }
    JT_METRIC_INC(cache_misses);
    if ((e = catalog_product_from_db(r, id, &b, &next_change)) != JT_OK) {
        return e;
    }
    jt_cache_put(r->redis, r->arena, &slot, b.data, b.len, cache_ttl(r, next_change));
    *data = b.data;
    *len = b.len;
    *warm = 0;
    return JT_OK;
}

/* --- popular products -------------------------------------------------------- */

/* The five best sellers of the last three days (PAID orders), counted by
 * MariaDB: the query the cache and its single flight exist to spare. */
static jt_err
popular_query(jt_req *r, jt_buf *b)
{
    jt_rows rows;
    jt_db_rc rc;
    jt_json w;
    int i;

    JT_METRIC_INC(popular_queries);
    if ((rc = jt_db_exec(r->db, r->arena, SQL_POPULAR, NULL, 0, &rows)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    jt_json_begin(r, b, &w, 64 + (size_t) rows.nrows * 128);
    jw_arr_open(&w);
    for (i = 0; i < rows.nrows; i++) {
        write_summary(&w, &rows, i, "salesCount");
        jw_obj_close(&w);
    }
    jw_arr_close(&w);
    return b->oom ? JT_E_INTERNAL : JT_OK;
}

typedef enum {
    POPULAR_HIT,        /* b holds the cached answer */
    POPULAR_MISS,       /* the slot can fill it */
    POPULAR_NO_CACHE    /* Redis is down (or not ours): ask MariaDB */
} popular_lookup;

/* Popular rows carry names and prices, so they hang on the list guard too:
 * any catalog write re-tags it, and a renamed, repriced or deleted product
 * is never shown from the cache. */
static popular_lookup
popular_cached(jt_req *r, jt_buf *b, jt_cache_slot *slot)
{
    const char *data;
    size_t len;

    data = jt_cache_get(r->redis, r->arena, "popular", JT_CATALOG_LIST_GUARD, slot, &len);
    if (data == NULL) {
        return slot->armed ? POPULAR_MISS : POPULAR_NO_CACHE;
    }
    jt_buf_init(b, r->arena, len + 1);
    jt_buf_add(b, data, len);
    return POPULAR_HIT;
}

/* GET /api/v1/products/popular — cached for popular_ttl; on a cold cache
 * one request (holding popular:lock) runs the query while the others wait
 * for its answer, so a crowd costs one query, not one each. A waiter that
 * finds the lock free and the cache still cold (the refresher failed, or a
 * write re-tagged its answer) becomes the refresher. */
jt_err
catalog_popular(jt_req *r)
{
    const jt_conf *c = r->conf;
    jt_cache_slot slot = { "", "", 0 };
    jt_lockset lock;
    const char *keys[1] = { JT_LOCKKEY_POPULAR };
    jt_buf b;
    jt_err e;
    popular_lookup got;
    int i;

    got = popular_cached(r, &b, &slot);
    if (got == POPULAR_HIT) {
        JT_METRIC_INC(cache_hits);
        jt_reply_json(r, 200, &b);
        return JT_OK;
    }
    JT_METRIC_INC(cache_misses);
    for (i = 0; got == POPULAR_MISS && i < 300; i++) {
        switch (jt_lock_acquire_all(r->redis, r->arena, &lock, keys, 1, 1, 5000)) {
        case JT_LOCK_OK:
            /* the refresher: check again (the previous holder may just
             * have filled it), else query and fill */
            e = JT_OK;
            if ((got = popular_cached(r, &b, &slot)) != POPULAR_HIT && (e = popular_query(r, &b)) == JT_OK) {
                jt_cache_put(r->redis, r->arena, &slot, b.data, b.len, c->popular_ttl * 1000);
            }
            jt_lock_release_all(r->redis, r->arena, &lock);
            if (e != JT_OK) {
                return e;
            }
            jt_reply_json(r, 200, &b);
            return JT_OK;
        case JT_LOCK_TIMEOUT:
            /* somebody else is refreshing: wait for the answer (bounded) */
            jt_sleep_jitter_ms(20);
            got = popular_cached(r, &b, &slot);
            break;
        default:
            got = POPULAR_NO_CACHE;
            break;
        }
    }
    if (got == POPULAR_HIT) {
        jt_reply_json(r, 200, &b);
        return JT_OK;
    }
    /* Redis is down, or the refresher never delivered: ask MariaDB */
    if ((e = popular_query(r, &b)) != JT_OK) {
        return e;
    }
    jt_reply_json(r, 200, &b);
    return JT_OK;
}
