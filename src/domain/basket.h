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
 * of lines (the 50/100 caps) is never raced by another's insert. A PUT
 * stamps the line it writes with the head's new version: a new line's id
 * (its lineId) and every line's rev, the version that last set it. The
 * bump needs no version check of its own: a PUT sets a quantity whatever
 * the list held, and the lock orders it after whatever committed first.
 *
 * Revs grow in commit order: a rev is handed out under the head's lock,
 * which the next writer gets only after this one's COMMIT. So a line that
 * was not yet committed when a reader read the list has a rev above every
 * rev the reader saw.
 *
 * An order from a list (cart checkout, wishlist order) reads the lines and
 * their highest rev R (one statement), prices and locks like any order,
 * and then, first in the order's transaction (the hook):
 *
 *   take (cart; wishlist with "clear"):
 *     DELETE lines WHERE user AND rev <= R, which must delete all n;
 *   keep (wishlist): SELECT COUNT(*) ... WHERE rev <= R LOCK IN SHARE MODE
 *     must be n.
 *
 * Every line of rev <= R was read (by the order above), so n of them is
 * exactly the lines read, unchanged.
 *
 * Invariant: an order commits only together with the removal (or the
 * share-locked presence) of exactly the lines it was priced from, and a
 * refused order leaves the list as it was (the hook's rows roll back with
 * the order). Interleavings:
 *
 *   - a PUT set a line again, or a DELETE removed one, between the read and
 *     the hook: that line's rev is now above R, or the line is gone; fewer
 *     than n match and the order is refused (CHANGED, or EMPTY if the list
 *     is now empty); nothing was ordered that the list did not hold as read.
 *   - a PUT added a line after the read: its rev is above R; the order takes
 *     the lines it read and the new one stays (it was not in what the buyer
 *     checked out).
 *   - a PUT is in flight when the hook runs: the hook waits for the rows it
 *     locked (InnoDB rereads the committed row and finds its new rev); a PUT
 *     that comes after the hook waits for the rows the hook holds (deleted:
 *     it then adds the line to the emptied list; share-locked: it waits for
 *     the order's COMMIT).
 *   - two checkouts of one cart (the Redis lock on the buyer's balance
 *     usually runs them one after the other; with Redis down they overlap):
 *     both read the same n lines; the first's DELETE takes their exclusive
 *     locks, the second's waits for them and, after the first commits,
 *     finds them gone: 0 deleted, the cart is empty, 409 CART_EMPTY (or a
 *     replay, if both carried one Idempotency-Key). Exactly one order per
 *     reading of a cart.
 *
 * An order never touches the head row: it costs the read and the hook's
 * one statement, nothing more (bench/cart.pl).
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
