/* The catalog: product reads served from Redis when warm (store/cache.c),
 * popular products with single-flight refresh, and product management under
 * the same lock + version discipline as orders. */
#include "domain/catalog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timefmt.h"
#include "domain/auth.h"
#include "domain/common.h"
#include "domain/write.h"
#include "http/json.h"
#include "store/cache.h"
#include "store/db.h"
#include "store/lock.h"

#define TS_FMT "'%Y-%m-%dT%H:%i:%s.%fZ'"
/* the sale status, computed from the clock on every read: no job flips it */
#define STATUS_EXPR                                                                 \
    "CASE WHEN p.sale_starts_at IS NOT NULL AND p.sale_starts_at > NOW(6) THEN 'COMING_SOON'" \
    " WHEN p.sale_ends_at IS NOT NULL AND p.sale_ends_at <= NOW(6) THEN 'ENDED' ELSE 'ON_SALE' END"
/* milliseconds until the status can next change (capped at 1000): a cached
 * answer must not outlive the second its sale opens or closes */
#define NEXT_CHANGE_MS                                                              \
    "LEAST(COALESCE(IF(p.sale_starts_at > NOW(6), TIMESTAMPDIFF(MICROSECOND, NOW(6), p.sale_starts_at) DIV 1000, NULL), 1000)," \
    " COALESCE(IF(p.sale_ends_at > NOW(6), TIMESTAMPDIFF(MICROSECOND, NOW(6), p.sale_ends_at) DIV 1000, NULL), 1000))"
#define STOCK_EXPR "COALESCE((SELECT SUM(o.stock) FROM product_options o WHERE o.product_id = p.id), p.stock)"

/* one round trip: the product, and one row per option (NULLs when none) */
static const char SQL_PRODUCT_GET[] =
    "SELECT p.id, p.name, p.price, p.stock, p.version, p.description, p.seller_id, " STATUS_EXPR ", "
    NEXT_CHANGE_MS ", DATE_FORMAT(p.sale_starts_at, " TS_FMT "), DATE_FORMAT(p.sale_ends_at, " TS_FMT "),"
    " o.id, o.name, o.extra_price, o.stock"
    " FROM products p LEFT JOIN product_options o ON o.product_id = p.id"
    " WHERE p.id = ? AND p.deleted_at IS NULL ORDER BY o.id";

/* listing: 2 (q or not) x 4 (status filter) statements, all index-backed */
#define LIST_COLS                                                                   \
    "SELECT p.id, p.name, p.price, " STOCK_EXPR ", " STATUS_EXPR ", " NEXT_CHANGE_MS \
    " FROM products p WHERE p.deleted_at IS NULL"
#define COUNT_COLS "SELECT COUNT(*) FROM products p WHERE p.deleted_at IS NULL"
/* Each gram is its own index lookup: grams compare under the name's
 * collation (sql/007), where two grams of one query may be equal ('É' and
 * 'é'), so "has all of them" cannot be a count of distinct matches. */
#define Q_GRAM " AND p.id IN (SELECT g.product_id FROM product_name_grams g WHERE g.gram = ?)"
#define Q_COND Q_GRAM Q_GRAM Q_GRAM Q_GRAM " AND p.name LIKE ? ESCAPE '!'"
#define S_ON " AND (p.sale_starts_at IS NULL OR p.sale_starts_at <= NOW(6)) AND (p.sale_ends_at IS NULL OR p.sale_ends_at > NOW(6))"
#define S_SOON " AND p.sale_starts_at > NOW(6)"
#define S_END " AND p.sale_ends_at <= NOW(6)"
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
 * closes, not only the ones on it: how long until the next such instant */
static const char SQL_NEXT_BOUNDARY_MS[] =
    "SELECT COALESCE(MIN(ms), 1000) FROM ("
    " SELECT TIMESTAMPDIFF(MICROSECOND, NOW(6), MIN(sale_starts_at)) DIV 1000 AS ms FROM products"
    "  WHERE deleted_at IS NULL AND sale_starts_at > NOW(6)"
    " UNION ALL SELECT TIMESTAMPDIFF(MICROSECOND, NOW(6), MIN(sale_ends_at)) DIV 1000 FROM products"
    "  WHERE deleted_at IS NULL AND sale_ends_at > NOW(6)) t";

static const char SQL_POPULAR[] =
    "SELECT oi.product_id, p.name, p.price, SUM(oi.quantity) AS sold"
    " FROM orders o JOIN order_items oi ON oi.order_id = o.id JOIN products p ON p.id = oi.product_id"
    " WHERE o.status = 'PAID' AND o.created_at >= NOW(6) - INTERVAL 3 DAY AND p.deleted_at IS NULL"
    " GROUP BY oi.product_id ORDER BY sold DESC, oi.product_id LIMIT 5";

/* management */
static const char SQL_PRODUCT_INSERT[] =
    "INSERT INTO products (seller_id, name, description, price, stock, sale_starts_at, sale_ends_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)";
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
static const char SQL_GRAMS_DELETE[] = "DELETE FROM product_name_grams WHERE product_id = ?";
static const char SQL_GRAMS_INSERT[] =
    "INSERT IGNORE INTO product_name_grams (gram, product_id) VALUES"
    " (?, ?), (?, ?), (?, ?), (?, ?), (?, ?), (?, ?), (?, ?), (?, ?)";

/* the guard of every list page: any catalog write may change any page */
#define LIST_GUARD "plg"

/* --- search grams ----------------------------------------------------------- */

static size_t
utf8_len(unsigned char c)
{
    return c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
}

int
catalog_grams(jt_arena *a, const char *name, const char **grams, int max, int bigrams_only)
{
    const char *chars[256];
    size_t lens[256];
    int n = 0, g = 0, i, j;
    const char *p = name;

    while (*p && n < 256) {
        size_t l = utf8_len((unsigned char) *p);
        size_t k;
        for (k = 1; k < l; k++) {
            if (p[k] == '\0') {
                l = k;
                break;
            }
        }
        if (!(l == 1 && (*p == ' ' || *p == '\t'))) {
            chars[n] = p;
            lens[n] = l;
            n++;
        }
        p += l;
    }
    for (i = 0; i < n && g < max; i++) {
        for (j = 1; j <= 2 && g < max; j++) {
            char *s;
            size_t len;
            int k, dup = 0;

            if (i + j > n || (bigrams_only && j == 1 && n > 1)) {
                continue;
            }
            len = lens[i] + (j == 2 ? lens[i + 1] : 0);
            s = jt_palloc(a, len + 1);
            if (s == NULL) {
                return g;
            }
            memcpy(s, chars[i], lens[i]);
            if (j == 2) {
                memcpy(s + lens[i], chars[i + 1], lens[i + 1]);
            }
            s[len] = '\0';
            for (k = 0; s[k]; k++) {
                if (s[k] >= 'A' && s[k] <= 'Z') {
                    s[k] = (char) (s[k] - 'A' + 'a');
                }
            }
            for (k = 0; k < g; k++) {
                if (!strcmp(grams[k], s)) {
                    dup = 1;
                    break;
                }
            }
            if (!dup) {
                grams[g++] = s;
            }
        }
    }
    return g;
}

jt_tx_step
catalog_index_name(jt_tx *tx, int64_t product_id, const char *name)
{
    const char *grams[600];
    jt_val p[16];
    jt_rows rows;
    int n, i, k;

    p[0] = JT_VI(product_id);
    JT_TX_EXEC(tx, SQL_GRAMS_DELETE, p, 1, &rows);
    n = catalog_grams(tx->arena, name, grams, 600, 0);
    for (i = 0; i < n; i += 8) {
        for (k = 0; k < 8; k++) {
            /* pad the last batch by repeating a gram: INSERT IGNORE drops it */
            const char *gram = grams[i + k < n ? i + k : i];
            p[2 * k] = JT_VS(gram);
            p[2 * k + 1] = JT_VI(product_id);
        }
        JT_TX_EXEC(tx, SQL_GRAMS_INSERT, p, 16, &rows);
    }
    return JT_TX_COMMIT;
}

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
    return ttl - (jt_now_us() - r->start_us + 999) / 1000;
}

/* A warm read: the bytes as Redis gave them. */
static jt_err
answer_cached(jt_req *r, const char *data, size_t len)
{
    JT_METRIC_INC(cache_hits);
    jt_reply_text(r, 200, "application/json", data, len);
    return JT_OK;
}

/* GET /api/v1/products?page=&size=&q=&status= */
jt_err
catalog_list(jt_req *r)
{
    const char *q, *status, *cached;
    const char *grams[64];
    int64_t page, size, min_change = 1000;
    int variant = 0, ngrams = 0, i, np;
    jt_val p[10];
    jt_rows rows, count;
    jt_cache_slot slot = { "", "", 0 };
    char key[160], qhash[17] = "-";
    size_t clen;
    jt_db_rc rc;
    jt_buf b;
    jt_json w;
    jt_err e;

    if ((e = jt_req_query_int(r, "page", 1, 1, 10000000, &page)) != JT_OK
        || (e = jt_req_query_int(r, "size", 20, 1, 100, &size)) != JT_OK
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
        ngrams = catalog_grams(r->arena, q, grams, 64, 1);
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
    cached = cache_on(r) ? jt_cache_get(r->redis, r->arena, key, LIST_GUARD, &slot, &clen) : NULL;
    if (cached != NULL) {
        return answer_cached(r, cached, clen);
    }
    JT_METRIC_INC(cache_misses);

    np = 0;
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
        jw_obj_open(&w);
        jw_kint(&w, "id", jt_cell(&rows, i, 0)->i);
        jw_kstr(&w, "name", jt_cell(&rows, i, 1)->s);
        jw_kint(&w, "price", jt_cell(&rows, i, 2)->i);
        jw_kint(&w, "stock", strtoll(jt_cell(&rows, i, 3)->s ? jt_cell(&rows, i, 3)->s : "0", NULL, 10));
        jw_kstr(&w, "status", jt_cell(&rows, i, 4)->s);
        jw_obj_close(&w);
        {
            int64_t nc = jt_cell(&rows, i, 5)->type == JT_V_INT ? jt_cell(&rows, i, 5)->i
                                                               : strtoll(jt_cell(&rows, i, 5)->s, NULL, 10);
            if (nc < min_change) {
                min_change = nc;
            }
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
        if (jt_db_exec(r->db, r->arena, SQL_NEXT_BOUNDARY_MS, NULL, 0, &nb) != JT_DB_OK || nb.nrows == 0) {
            min_change = 0;   /* unknown: do not cache */
        } else {
            jt_val *v = jt_cell(&nb, 0, 0);
            int64_t ms = v->type == JT_V_INT ? v->i : v->s ? strtoll(v->s, NULL, 10) : 0;
            if (ms < min_change) {
                min_change = ms;
            }
        }
    }
    jt_cache_put(r->redis, r->arena, &slot, b.data, b.len, cache_ttl(r, min_change));
    jt_reply_json(r, 200, &b);
    return JT_OK;
}

/* Builds the detail answer of one product from MariaDB. 0 ok, 1 not found,
 * else the failed statement's code (negated). */
static int
product_from_db(jt_req *r, int64_t id, jt_buf *b, int64_t *next_change)
{
    jt_val p[1] = { JT_VI(id) };
    jt_rows rows;
    jt_db_rc rc;
    jt_json w;
    int64_t stock;
    int i, has_options;

    if ((rc = jt_db_exec(r->db, r->arena, SQL_PRODUCT_GET, p, 1, &rows)) != JT_DB_OK) {
        return -(int) rc;
    }
    if (rows.nrows == 0) {
        return 1;
    }
    *next_change = jt_cell(&rows, 0, 8)->type == JT_V_INT ? jt_cell(&rows, 0, 8)->i
                                                          : strtoll(jt_cell(&rows, 0, 8)->s, NULL, 10);
    /* a product with options keeps its stock on them: show their sum */
    has_options = jt_cell(&rows, 0, 11)->type != JT_V_NULL;
    stock = has_options ? 0 : jt_cell(&rows, 0, 3)->i;
    for (i = 0; has_options && i < rows.nrows; i++) {
        stock += jt_cell(&rows, i, 14)->i;
    }
    jt_json_begin(r, b, &w, 256 + (size_t) rows.nrows * 96);
    jw_obj_open(&w);
    jw_kint(&w, "id", jt_cell(&rows, 0, 0)->i);
    jw_kstr(&w, "name", jt_cell(&rows, 0, 1)->s);
    jw_kint(&w, "price", jt_cell(&rows, 0, 2)->i);
    jw_kint(&w, "stock", stock);
    jw_kint(&w, "version", jt_cell(&rows, 0, 4)->i);
    jw_kstr(&w, "description", jt_cell(&rows, 0, 5)->s);
    if (jt_cell(&rows, 0, 6)->type == JT_V_NULL) {
        jw_knull(&w, "sellerId");
    } else {
        jw_kint(&w, "sellerId", jt_cell(&rows, 0, 6)->i);
    }
    jw_kstr(&w, "status", jt_cell(&rows, 0, 7)->s);
    jw_kstr(&w, "saleStartsAt", jt_cell(&rows, 0, 9)->s);
    jw_kstr(&w, "saleEndsAt", jt_cell(&rows, 0, 10)->s);
    jw_key(&w, "options");
    jw_arr_open(&w);
    for (i = 0; has_options && i < rows.nrows; i++) {
        jw_obj_open(&w);
        jw_kint(&w, "id", jt_cell(&rows, i, 11)->i);
        jw_kstr(&w, "name", jt_cell(&rows, i, 12)->s);
        jw_kint(&w, "extraPrice", jt_cell(&rows, i, 13)->i);
        jw_kint(&w, "stock", jt_cell(&rows, i, 14)->i);
        jw_obj_close(&w);
    }
    jw_arr_close(&w);
    jw_obj_close(&w);
    return b->oom ? -(int) JT_DB_ERROR : 0;
}

/* GET /api/v1/products/{id} */
jt_err
catalog_get(jt_req *r)
{
    int64_t id = jt_req_param_id(r, "id"), next_change = 1000;
    char guard[48], key[48];
    jt_cache_slot slot = { "", "", 0 };
    const char *cached;
    size_t clen;
    jt_buf b;
    int rc;

    snprintf(guard, sizeof(guard), "pg:%lld", (long long) id);
    snprintf(key, sizeof(key), "pd:%lld", (long long) id);
    cached = cache_on(r) ? jt_cache_get(r->redis, r->arena, key, guard, &slot, &clen) : NULL;
    if (cached != NULL) {
        return answer_cached(r, cached, clen);
    }
    JT_METRIC_INC(cache_misses);
    rc = product_from_db(r, id, &b, &next_change);
    if (rc == 1) {
        return jt_fail(r, JT_E_PRODUCT_NOT_FOUND, "product %lld does not exist", (long long) id);
    }
    if (rc < 0) {
        return jt_db_fail(r, (jt_db_rc) -rc);
    }
    jt_cache_put(r->redis, r->arena, &slot, b.data, b.len, cache_ttl(r, next_change));
    jt_reply_json(r, 200, &b);
    return JT_OK;
}

/* --- popular products -------------------------------------------------------- */

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
        jw_obj_open(&w);
        jw_kint(&w, "id", jt_cell(&rows, i, 0)->i);
        jw_kstr(&w, "name", jt_cell(&rows, i, 1)->s);
        jw_kint(&w, "price", jt_cell(&rows, i, 2)->i);
        jw_kint(&w, "salesCount", strtoll(jt_cell(&rows, i, 3)->s ? jt_cell(&rows, i, 3)->s : "0", NULL, 10));
        jw_obj_close(&w);
    }
    jw_arr_close(&w);
    return b->oom ? JT_E_INTERNAL : JT_OK;
}

/* Popular rows carry names and prices, so they hang on the list guard too:
 * any catalog write re-tags it, and a renamed, repriced or deleted product
 * is never shown from the cache. 1 hit, 0 miss (the slot can fill it), -1
 * Redis is down. */
static int
popular_cached(jt_req *r, jt_buf *b, jt_cache_slot *slot)
{
    const char *data;
    size_t len;

    data = jt_cache_get(r->redis, r->arena, "popular", LIST_GUARD, slot, &len);
    if (data == NULL) {
        return slot->armed ? 0 : -1;
    }
    jt_buf_init(b, r->arena, len + 1);
    jt_buf_add(b, data, len);
    return 1;
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
    const char *keys[1] = { "popular:lock" };
    jt_buf b;
    jt_err e;
    int got, i;

    got = popular_cached(r, &b, &slot);
    if (got == 1) {
        JT_METRIC_INC(cache_hits);
        jt_reply_json(r, 200, &b);
        return JT_OK;
    }
    JT_METRIC_INC(cache_misses);
    for (i = 0; got == 0 && i < 300; i++) {
        switch (jt_lock_acquire_all(r->redis, r->arena, &lock, keys, 1, 1, 5000)) {
        case JT_LOCK_OK:
            /* the refresher: check again (the previous holder may just
             * have filled it), else query and fill */
            e = JT_OK;
            if ((got = popular_cached(r, &b, &slot)) != 1 && (e = popular_query(r, &b)) == JT_OK) {
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
            got = -1;
            break;
        }
    }
    if (got == 1) {
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

/* --- management ------------------------------------------------------------- */

/* A strict UTC time (core/timefmt.c) → SQL DATETIME(6) text and epoch µs. */
static int
parse_time(jt_arena *a, const char *s, const char **sql, int64_t *epoch_us)
{
    struct tm tm;
    time_t t;
    char *out;

    if (jt_parse_utc(s, epoch_us) != 0 || (out = jt_palloc(a, 80)) == NULL) {
        return -1;
    }
    t = (time_t) (*epoch_us / 1000000);
    gmtime_r(&t, &tm);
    snprintf(out, 80, "%04d-%02d-%02d %02d:%02d:%02d.%06d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (int) (*epoch_us % 1000000));
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

/* If-Match: 3, "3" or W/"3". 0 absent, 1 parsed, -1 malformed. */
int
catalog_parse_if_match(const char *h, int64_t *v)
{
    char digits[24];
    size_t n = 0;
    uint64_t u;

    if (h == NULL) {
        return 0;
    }
    if (!strncmp(h, "W/", 2)) {
        h += 2;
    }
    if (*h == '"') {
        h++;
    }
    while (*h >= '0' && *h <= '9' && n < sizeof(digits) - 1) {
        digits[n++] = *h++;
    }
    digits[n] = '\0';
    if (*h == '"') {
        h++;
    }
    if (*h != '\0' || jt_parse_u64(digits, &u) != 0 || u > INT64_MAX) {
        return -1;
    }
    *v = (int64_t) u;
    return 1;
}

/* After COMMIT: the product's detail and every list page get fresh tags. */
static void
bump_product(jt_req *r, int64_t id)
{
    char guard[48];
    const char *guards[2] = { guard, LIST_GUARD };

    snprintf(guard, sizeof(guard), "pg:%lld", (long long) id);
    jt_cache_invalidate(r->redis, r->arena, guards, 2);
}

/* After a committed write: the product as it now is (fresh from MariaDB). */
static jt_err
answer_product(jt_req *r, jt_write *wr, int64_t id, int status)
{
    int64_t next;
    jt_buf b;
    int rc;

    bump_product(r, id);
    rc = product_from_db(r, id, &b, &next);
    if (rc != 0) {
        jt_lock_release_all(r->redis, r->arena, &wr->locks);
        return rc == 1 ? jt_fail(r, JT_E_PRODUCT_NOT_FOUND, "product %lld is gone", (long long) id)
                       : jt_db_fail(r, (jt_db_rc) -rc);
    }
    jt_write_finish(r, wr, status, &b);
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

static jt_tx_step
create_body(jt_tx *tx)
{
    create_tx *c = tx->data;
    jt_val p[7];
    jt_rows rows;
    int i;

    p[0] = c->seller ? JT_VI(c->seller) : JT_VNULL;
    p[1] = JT_VS(c->name);
    p[2] = c->description ? JT_VS(c->description) : JT_VNULL;
    p[3] = JT_VI(c->price);
    p[4] = JT_VI(c->nopts ? 0 : c->stock);
    p[5] = c->starts ? JT_VS(c->starts) : JT_VNULL;
    p[6] = c->ends ? JT_VS(c->ends) : JT_VNULL;
    JT_TX_EXEC(tx, SQL_PRODUCT_INSERT, p, 7, &rows);
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
    return catalog_index_name(tx, c->id, c->name);
}

/* Shared with the admin tool (load-products): a product without options,
 * inserted exactly as POST /api/v1/products inserts it (its INITIAL stock
 * movement and its name's grams), inside the caller's transaction. */
jt_tx_step
catalog_insert_simple(jt_tx *tx, const char *name, int64_t price, int64_t stock, int64_t *id)
{
    void *caller = tx->data;
    create_tx c;
    jt_tx_step step;

    memset(&c, 0, sizeof(c));
    c.name = name;
    c.price = price;
    c.stock = stock;
    tx->data = &c;
    step = create_body(tx);
    tx->data = caller;
    *id = c.id;
    return step;
}

/* The body of POST /api/v1/products, validated (no database involved). */
static jt_err
parse_create(jt_req *r, json_object *o, create_tx *c)
{
    json_object *opts;
    int has_stock, ps, pe;
    int64_t us_s = 0, us_e = 0;
    jt_err e;

    if ((e = jt_json_str(r, o, "name", JT_REQUIRED, 1, 100, &c->name)) != JT_OK
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
            if (op == NULL || !json_object_is_type(op, json_type_object)) {
                return jt_fail(r, JT_E_INVALID_REQUEST, "options[%zu] must be an object", i);
            }
            if ((e = jt_json_str(r, op, "name", JT_REQUIRED, 1, 100, &c->opt_name[i])) != JT_OK
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
    jt_write wr;
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

    if ((e = jt_write_begin(r, &wr, who.user_id, o, JT_WRITE_KEY_IGNORED)) != JT_OK || wr.replayed) {
        return e;
    }
    e = jt_write_run(r, &wr, create_body, c, &c->refusal);
    if (e != JT_OK || wr.replayed) {
        return e;
    }
    {
        char loc[64];
        snprintf(loc, sizeof(loc), "/api/v1/products/%lld", (long long) c->id);
        jt_reply_header(r, "Location", loc);
    }
    return answer_product(r, &wr, c->id, 201);
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

static int64_t
sql_time_us(const char *s)
{
    struct tm tm;
    int us = 0;

    memset(&tm, 0, sizeof(tm));
    if (s == NULL || sscanf(s, "%d-%d-%d %d:%d:%d.%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                            &tm.tm_min, &tm.tm_sec, &us) < 6) {
        return 0;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t) timegm(&tm) * 1000000 + us;
}

static jt_tx_step
patch_body(jt_tx *tx)
{
    patch_tx *c = tx->data;
    jt_val p[7];
    jt_rows rows;
    const char *name, *desc, *starts, *ends;
    int64_t price, version;

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
    if (starts && ends && sql_time_us(ends) <= sql_time_us(starts)) {
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
    if (c->set_name) {
        return catalog_index_name(tx, c->id, name);
    }
    return JT_TX_COMMIT;
}

static jt_err
if_match_of(jt_req *r, int *has, int64_t *v)
{
    int rc = catalog_parse_if_match(r->if_match, v);
    if (rc < 0) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "If-Match must be the product version, e.g. \"3\"");
    }
    *has = rc;
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
    jt_write wr;
    jt_err e;

    if ((e = jt_write_begin(r, &wr, principal, o, JT_WRITE_KEY_IGNORED)) != JT_OK || wr.replayed) {
        return e;
    }
    if ((e = jt_write_lock(r, &wr, keys, 1)) != JT_OK) {
        return e;
    }
    e = jt_write_run(r, &wr, body, data, refusal);
    if (e != JT_OK || wr.replayed) {
        return e;
    }
    return answer_product(r, &wr, id, 200);
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
    char key[64];
    jt_err e;

    if ((e = require_seller(r, &who)) != JT_OK || (e = jt_json_body(r, &o)) != JT_OK
        || (e = writable_product(r, &who, id, &rows)) != JT_OK) {
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
    /* the same lock orders take on this product's stock row: a price change
     * and an order never interleave (the version fence would catch it anyway) */
    snprintf(key, sizeof(key), "lock:stock:p:%lld", (long long) id);
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
    return JT_TX_COMMIT;
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
    char key[64];
    int has_opt;
    jt_err e;

    if ((e = require_seller(r, &who)) != JT_OK || (e = jt_json_body(r, &o)) != JT_OK
        || (e = writable_product(r, &who, id, &rows)) != JT_OK) {
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
    if (c->option_id) {
        snprintf(key, sizeof(key), "lock:stock:o:%lld", (long long) c->option_id);
    } else {
        snprintf(key, sizeof(key), "lock:stock:p:%lld", (long long) id);
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
    return rows.affected == 1 ? JT_TX_COMMIT : JT_TX_CONFLICT;
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
    jt_write wr;
    char key[64];
    const char *keys[1] = { key };
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
    memset(&wr, 0, sizeof(wr));
    if ((e = jt_write_begin(r, &wr, who.user_id, NULL, JT_WRITE_KEY_IGNORED)) != JT_OK || wr.replayed) {
        return e;
    }
    snprintf(key, sizeof(key), "lock:stock:p:%lld", (long long) id);
    if ((e = jt_write_lock(r, &wr, keys, 1)) != JT_OK) {
        return e;
    }
    e = jt_write_run(r, &wr, delete_body, &c, &c.refusal);
    if (e != JT_OK || wr.replayed) {
        return e;
    }
    bump_product(r, id);
    jt_lock_release_all(r->redis, r->arena, &wr.locks);
    jt_reply_text(r, 204, "application/json", "", 0);
    return JT_OK;
}
