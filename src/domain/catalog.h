/* The catalog: reads (catalog_read.c, cached) and management
 * (catalog_write.c, the owning seller or an admin). */
#ifndef JT_CATALOG_H
#define JT_CATALOG_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "http/request.h"
#include "store/tx.h"

#define JT_PRODUCT_PRICE_MAX 100000000LL
#define JT_PRODUCT_STOCK_MAX 10000000LL
#define JT_PRODUCT_MAX_OPTIONS 50

/* reads (cached) */
jt_err catalog_list(jt_req *r);
jt_err catalog_get(jt_req *r);
jt_err catalog_popular(jt_req *r);

/* management (admin, or the seller who owns the product) */
jt_err catalog_create(jt_req *r);
jt_err catalog_patch(jt_req *r);
jt_err catalog_restock(jt_req *r);
jt_err catalog_delete(jt_req *r);

/* Validation without the database (fuzzing). */
jt_err catalog_validate_create(jt_req *r, json_object *o);

/* Shared with the admin tool (load-products): a product without options,
 * inserted as POST /api/v1/products inserts it (its INITIAL stock movement
 * and its name's search grams), inside the caller's transaction. */
jt_tx_step catalog_insert_simple(jt_tx *tx, const char *name, int64_t price, int64_t stock, int64_t *id);

/* Shared by catalog_read.c and catalog_write.c. */

/* The guard of every list page (and of popular): any catalog write may
 * change any page. */
#define JT_CATALOG_LIST_GUARD "plg"

/* The guard of one product's detail entry ("pg:<id>"), into out. */
void catalog_product_guard(char *out, size_t len, int64_t id);

/* Builds the detail answer of one product from MariaDB into b: JT_OK, or
 * the answer to give (PRODUCT_NOT_FOUND, or the database's failure). */
jt_err catalog_product_from_db(jt_req *r, int64_t id, jt_buf *b, int64_t *next_change);
/* The product's detail answer, as GET /api/v1/products/{id} gives it: from
 * the cache when warm (*warm 1), else from MariaDB, filling the cache the
 * way a read does (store/cache.h). Its price, name, options and sale status
 * are never older than the last committed catalog write (the cache's
 * proof), so the order path prices from it before it takes any lock; only
 * its stock may lag, by the cache's TTL. */
jt_err catalog_product_json(jt_req *r, int64_t id, const char **data, size_t *len, int *warm);
/* ETag: W/"<version>" for a product answer (its "version" member). */
void   catalog_reply_etag(jt_req *r, const char *body, size_t len);

#endif
