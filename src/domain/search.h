/* Product search by name (search.c): a name is indexed by its distinct 1-
 * and 2-character grams; a query is narrowed through the gram index, then
 * checked by LIKE on the whole name. */
#ifndef JT_SEARCH_H
#define JT_SEARCH_H

#include <stdint.h>

#include "core/arena.h"
#include "store/tx.h"

/* Rewrites the search n-grams of one product inside a transaction. */
jt_tx_step search_index_name(jt_tx *tx, int64_t product_id, const char *name);

/* Splits a name into distinct 1- and 2-character grams (lower-cased ASCII,
 * whitespace skipped). Returns the count; grams point into arena memory. */
int search_grams(jt_arena *a, const char *name, const char **grams, int max, int bigrams_only);

#endif
