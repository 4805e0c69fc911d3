/* A buyer's kept lines: the cart and the wishlist are one mechanism over
 * two tables (basket.c), and their routes are here. A line is (product,
 * option, quantity); prices are read at every GET and the order made from
 * a list is priced by the order path (orders_place_from), never from the
 * list.
 *
 * The head row. Each list has one row in `baskets` (user, kind) whose
 * version counts its changes. Every write of a list (PUT, DELETE of a line
 * or of all) starts its transaction with
 *
 *     INSERT INTO baskets ... ON DUPLICATE KEY UPDATE version = version + 1
 *
 * which creates or bumps the head and holds its exclusive row lock to
 * COMMIT: the writers of one list queue on that row, so a writer's count
 * of lines (the 50/100 cap) is never raced by another's insert. The bump
 * needs no version check of its own: a PUT sets a quantity whatever the
 * list held, and the lock orders it after whatever committed first.
 *
 * An order from a list (cart checkout, wishlist order) reads the head's
 * version and the lines in one statement (one snapshot), prices and locks
 * like any order, and then, first in the order's transaction (the hook):
 *
 *   take (cart; wishlist with "clear"):
 *     DELETE lines JOIN head WHERE user AND head.version = <read>
 *     and exactly the lines read must go (affected = n);
 *   keep (wishlist): SELECT version ... LOCK IN SHARE MODE = <read>.
 *
 * Invariant: an order commits only together with the removal (or the
 * share-locked presence) of exactly the lines it was priced from, and a
 * refused order leaves the list as it was (the hook's rows roll back with
 * the order). Interleavings:
 *
 *   - a PUT commits between the read and the hook: the version moved, the
 *     DELETE matches nothing and the order is refused (CHANGED, or EMPTY if
 *     the list is now empty); nothing was ordered that the buyer did not
 *     have in the list when it was read.
 *   - a PUT comes after the hook: the DELETE's join read the head with a
 *     share lock (and the keeping fence takes one), so the PUT's bump waits
 *     for the order's COMMIT; it then sees the list the order left.
 *   - two checkouts of one cart (the Redis lock on the buyer's balance
 *     usually runs them one after the other; with Redis down they overlap):
 *     both read version v and n lines; the first's DELETE takes the lines'
 *     exclusive locks, the second's waits for them, and after the first
 *     commits it finds them gone: affected 0, the cart is empty, 409
 *     CART_EMPTY (or a replay, if both carried one Idempotency-Key). A
 *     checkout does not bump the version: the lines it deleted are the
 *     change, and no later reader can find them at v again. Exactly one
 *     order per read of a cart.
 *   - a checkout and a PUT lock the head and the lines in opposite orders
 *     (the DELETE may lock a line before the head): InnoDB may then report
 *     a deadlock, which store/tx.c retries like any conflict.
 *
 * The version is the fence, as everywhere: no Redis lock guards a list. */
#ifndef JT_BASKET_H
#define JT_BASKET_H

#include <json-c/json.h>
#include <stdint.h>

#include "http/request.h"

#define JT_CART_MAX_LINES 50
#define JT_WISHLIST_MAX_ITEMS 100

/* GET /api/v1/users/{userId}/cart: every line priced now (unitPrice,
 * lineTotal, available, stock), then itemsTotal, shippingFee and total by
 * the order's rule. Only the owner or an admin: anyone else 404. */
jt_err cart_get(jt_req *r);
/* PUT .../cart/items {"productId","optionId"?,"quantity"}: sets the
 * line's quantity (1..999; 0 removes it); 200 with the cart. */
jt_err cart_put(jt_req *r);
/* DELETE .../cart/items/{lineId} and DELETE .../cart: 204. */
jt_err cart_remove(jt_req *r);
jt_err cart_clear(jt_req *r);
/* POST .../cart/checkout {"shipping","expectedTotal"?}: one order of
 * every line through orders_place_from; the lines are deleted in the
 * order's transaction. */
jt_err cart_checkout(jt_req *r);

/* The wishlist (찜): the same, with a quantity that defaults to 1, 100
 * items, removal by product (DELETE .../wishlist/items/{productId}
 * [?optionId=]), and an order that keeps the items unless the body says
 * "clear": true (then they are deleted in the order's transaction). */
jt_err wishlist_get(jt_req *r);
jt_err wishlist_put(jt_req *r);
jt_err wishlist_remove(jt_req *r);
jt_err wishlist_order(jt_req *r);

/* A PUT .../items body of the cart (wishlist 0) or the wishlist, validated
 * without the database (fuzzing). */
jt_err basket_validate_line(jt_req *r, json_object *o, int wishlist);

#endif
