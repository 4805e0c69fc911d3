#ifndef JT_CATALOG_H
#define JT_CATALOG_H

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

#include <json-c/json.h>

/* Validation without the database (fuzzing). */
jt_err catalog_validate_create(jt_req *r, json_object *o);
int    catalog_parse_if_match(const char *header, int64_t *version);

/* Rewrites the search n-grams of one product inside a transaction. */
jt_tx_step catalog_index_name(jt_tx *tx, int64_t product_id, const char *name);

/* A product without options as POST /api/v1/products makes it (stock
 * movement, search grams), inside the caller's transaction. */
jt_tx_step catalog_insert_simple(jt_tx *tx, const char *name, int64_t price, int64_t stock, int64_t *id);

/* Splits a name into distinct 1- and 2-character grams (lower-cased ASCII,
 * whitespace skipped). Returns the count; grams point into arena memory. */
int catalog_grams(jt_arena *a, const char *name, const char **grams, int max, int bigrams_only);

#endif
