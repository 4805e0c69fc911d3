/* Redis lock keys: every key a write path locks is built here, one function
 * per kind, so two routes exclude each other exactly when they name the same
 * business row, never because two format strings happen to agree.
 *
 * This module is in domain/, not store/: store/lock.c takes and releases any
 * set of keys and knows nothing of products or balances, while which rows a
 * write touches, and so which writers must wait for each other, is a rule of
 * the business. A key names one row (or one owner's rows) and nothing else:
 *
 *   lock:stock:p:<product>   a product's own stock row (a product without
 *                            options). Taken by: an order line on it, the
 *                            cancel that gives its units back, a restock or
 *                            correction of that stock, and PATCH and DELETE
 *                            of the product, so a price, window or deletion
 *                            never commits in the middle of an order of it.
 *   lock:stock:o:<option>    an option's stock row. Taken by: an order line
 *                            on the option, its cancel, a restock with
 *                            optionId. An option line takes only this key
 *                            today: PATCH/DELETE of its product (which take
 *                            lock:stock:p) are not ordered against it, and
 *                            the order does not write the product row, so
 *                            the version fence does not order them either.
 *   lock:balance:<user>      a user's balance. Taken by every write of a
 *                            balance: a charge, an order (the buyer), a
 *                            cancel (the buyer's refund), a bid and a refund
 *                            (the buyer and the seller).
 *   lock:auction:<auction>   an auction's stock. Taken by every bid, sync or
 *                            applied by a consumer, and every refund of one
 *                            of its receipts.
 *
 * Kinds to come (cart, order lifecycle, payment) are rows of the kind table
 * in lockkey.c and a function here, named for the row they protect.
 *
 * The lock is an optimisation (store/lock.h): the version column of each row
 * is the fence that makes a missing or expired lock cost retries, not
 * money. */
#ifndef JT_LOCKKEY_H
#define JT_LOCKKEY_H

#include <stdint.h>

#include "core/arena.h"

typedef enum {
    JT_LOCKKEY_PRODUCT = 0,
    JT_LOCKKEY_OPTION,
    JT_LOCKKEY_BALANCE,
    JT_LOCKKEY_AUCTION,
    JT_LOCKKEY__COUNT
} jt_lockkey_kind;

/* The key of one row of a kind, in arena memory; NULL when out of memory. */
const char *jt_lockkey(jt_arena *a, jt_lockkey_kind kind, int64_t id);

#define jt_lockkey_product(a, product_id) jt_lockkey((a), JT_LOCKKEY_PRODUCT, (product_id))
#define jt_lockkey_option(a, option_id)   jt_lockkey((a), JT_LOCKKEY_OPTION, (option_id))
#define jt_lockkey_balance(a, user_id)    jt_lockkey((a), JT_LOCKKEY_BALANCE, (user_id))
#define jt_lockkey_auction(a, auction_id) jt_lockkey((a), JT_LOCKKEY_AUCTION, (auction_id))

/* The stock row an order line takes units from: its option's row when it
 * names one (option_id > 0), else its product's own row. */
const char *jt_lockkey_stock(jt_arena *a, int64_t product_id, int64_t option_id);

#endif
