/* Redis lock keys: every key a write path locks is built here, one function
 * per kind, so two routes exclude each other exactly when they name the same
 * business row, never because two format strings happen to agree.
 *
 * This module is in domain/, not store/: store/lock.c takes and releases any
 * set of keys and knows nothing of products or balances, while which rows a
 * write touches, and so which writers must wait for each other, is a rule of
 * the business. A key names one row (or one owner's rows) and nothing else:
 *
 *   lock:stock:p:<product>   a product and every stock row it has: its own
 *                            (a product without options) and its options'.
 *                            Taken by: an order line on the product or on
 *                            any of its options, the cancel that gives the
 *                            units back, a restock or correction of either
 *                            stock, and PATCH and DELETE of the product. So
 *                            a price, window or deletion never commits in
 *                            the middle of an order of the product, whether
 *                            the order names an option or not (an option's
 *                            price is the product's price plus its extra).
 *                            The fence behind it: an option line's UPDATE
 *                            joins the product row and matches its version,
 *                            which also holds a share lock on that row until
 *                            COMMIT (orders.c).
 *   lock:balance:<user>      a user's balance. Taken by every write of a
 *                            balance: a charge, an order (the buyer), a
 *                            cancel (the buyer's refund), a bid and a refund
 *                            (the buyer and the seller).
 *   lock:auction:<auction>   an auction's stock. Taken by every bid, sync or
 *                            applied by a consumer, and every refund of one
 *                            of its receipts.
 *
 *   lock:order:<order>       an order's status and its card payment rows
 *                            (card_payments, gateway_payments). Taken by
 *                            every move of the order (domain/lifecycle.c):
 *                            a seller's or an admin's transition, a buyer's
 *                            cancel or return request, the scheduler's
 *                            moves; and for a card order the verify, the
 *                            webhook and the sweeper settling a payment,
 *                            an expiry, a cancel and its refund. A move
 *                            that gives stock back or refunds (CANCELLED,
 *                            RETURNED, CANCEL_PENDING) also takes the stock
 *                            keys of every line, and the buyer's balance
 *                            when the refund is in points.
 *
 *   popular:lock             not a row: the single-flight refresh of the
 *                            popular-products answer (catalog_read.c), held
 *                            by the one request that runs the query.
 *   lifecycle:sweep:lock     not a row: one scheduler sweep at a time across
 *                            every host (server/scheduler.c); only saves
 *                            work, each move is fenced by the order's row.
 *
 * A cart or a wishlist has no key: its head row in MariaDB is the lock its
 * writers queue on and the fence of an order made from it (basket.h); that
 * order takes the order's keys, like any other.
 *
 * Kinds to come are rows of the kind table in lockkey.c and a function
 * here, named for the row they protect.
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
    JT_LOCKKEY_BALANCE,
    JT_LOCKKEY_AUCTION,
    JT_LOCKKEY_ORDER,
    JT_LOCKKEY__COUNT
} jt_lockkey_kind;

#define JT_LOCKKEY_POPULAR "popular:lock"
#define JT_LOCKKEY_SWEEP   "lifecycle:sweep:lock"

/* The key of one row of a kind, in arena memory; NULL when out of memory. */
const char *jt_lockkey(jt_arena *a, jt_lockkey_kind kind, int64_t id);

#define jt_lockkey_product(a, product_id) jt_lockkey((a), JT_LOCKKEY_PRODUCT, (product_id))
#define jt_lockkey_balance(a, user_id)    jt_lockkey((a), JT_LOCKKEY_BALANCE, (user_id))
#define jt_lockkey_auction(a, auction_id) jt_lockkey((a), JT_LOCKKEY_AUCTION, (auction_id))
#define jt_lockkey_order(a, order_id)     jt_lockkey((a), JT_LOCKKEY_ORDER, (order_id))

/* The key of the stock an order line takes units from. It is its
 * product's key whether or not the line names an option (see above): the
 * option id is taken so that callers say what they lock, not how. */
const char *jt_lockkey_stock(jt_arena *a, int64_t product_id, int64_t option_id);

#endif
