/* The order lifecycle: every move of an order after it is paid, by hand
 * (a seller, an admin, the buyer) or by the scheduler, through the one
 * table of statuses and moves (domain/order_status.c, shared with card
 * payments) and one move transaction.
 *
 *   PAID ──► PREPARING ──► SHIPPING ──► DELIVERED ──► RETURN_REQUESTED ──► RETURNED
 *     │          │                           (within return_window of delivery)
 *     └──────────┴──► CANCELLED   (the buyer or an admin: units back, total refunded)
 *
 * A card order (domain/payments.h) moves along the same graph once PAID;
 * its money goes back at the payment gateway, never as a points row: its
 * cancel (PAID or PREPARING) is payments.c's (CANCEL_PENDING, the refund,
 * CANCELLED), and its RETURNED move gives the units back here and makes
 * its payment due for a refund of all of it in the same transaction; the
 * refund follows the COMMIT (payments_refund_now, else the sweeper).
 *
 * Invariant. An order's status is the `to` of its last order_events row
 * (PAID when it has none), each row's `from` is the `to` of the one before
 * (so the rows are a path of the graph), and every move committed exactly
 * one events row and one outbox row with it; a move into CANCELLED or
 * RETURNED also committed every line's units back and exactly one refund
 * ledger row of the order's total. No status is entered twice.
 *
 * How. A move is one transaction, retried as a whole by store/tx.c: read
 * the order's status and version; find the row (status, target) of the
 * table; check who may take it, If-Match and the return window; then
 *
 *     UPDATE orders SET status = <to>, <to>_at = <now>, version = version + 1
 *      WHERE id = ? AND version = <read> AND status = <from>
 *
 * (zero rows: someone else moved it, CONFLICT, start again from the read),
 * the order_events row, the refund and restock when the row says so, the
 * outbox row, and the answer, built inside the transaction from what it is
 * about to commit. <now> is business time (core/clock.h, the test offset
 * included), like the times the scheduler and the window compare it with.
 *
 * Interleavings considered:
 *   - two movers of one order at once (two clicks, a seller and the
 *     scheduler, two schedulers on two hosts, a cancel racing PREPARING,
 *     ten return requests): both read version v, the first commits v + 1,
 *     the second's UPDATE matches nothing and it re-reads. It now sees the
 *     new status: a hand move is refused unless (new status, its target) is
 *     itself a move of the table (409 INVALID_TRANSITION naming the status,
 *     or ORDER_NOT_CANCELLABLE for a second cancel); the scheduler names
 *     the status it moves *from* and stops when the order has left it. An
 *     edge is taken only from its `from`, which taking it leaves, and the
 *     graph has no cycle: no status is entered twice, however many try.
 *   - the locks: lock:order:<id> (and, for a refund, every line's stock
 *     key and the buyer's balance, domain/lockkey.h) makes the usual race
 *     wait instead of retry; with Redis down or a lease lapsed the version
 *     fence above is the guarantee, as everywhere.
 *   - a refund beside an order or a restock of the same stock: the stock
 *     rows are written with their own versions (a conflict re-reads all).
 *   - the scheduler's list of due orders is read outside any transaction
 *     and may be stale by the time a move runs: the move re-reads, so a
 *     stale entry costs a no-op, never a second move.
 *   - a keyed retry (Idempotency-Key) of a move that committed replays its
 *     answer (domain/write.h); without a key a retry meets 409, which
 *     changes nothing.
 *
 * The sweep (the scheduler's one pass, also `jangteo-admin sweep`) moves
 * what nobody moved by hand, counted from the order's paid time: PAID →
 * PREPARING → SHIPPING after [lifecycle] ship_after, SHIPPING → DELIVERED
 * after deliver_after, RETURN_REQUESTED → RETURNED after
 * return_complete_after from the request; in batches of `batch` by
 * (time, id), with a deadline. A Redis lock on the sweep keeps a second
 * host from doing the same work at the same moment (an optimisation: with
 * Redis down both sweep, and the fence makes every move happen once). */
#ifndef JT_LIFECYCLE_H
#define JT_LIFECYCLE_H

#include <stdint.h>

#include "core/arena.h"
#include "core/config.h"
#include "domain/order_status.h"
#include "http/request.h"

struct jt_db;
struct jt_redis;

/* The largest batch of a sweep ([lifecycle] batch). */
#define JT_LC_BATCH_MAX 1000

/* Is s a status an order may have (domain/order_status.h)? */
int lifecycle_is_status(const char *s);

/* POST /api/v1/orders/{orderId}/transitions {"to", "trackingNumber"?} */
jt_err lifecycle_transition(jt_req *r);
/* POST /api/v1/orders/{orderId}/return {"reason"} */
jt_err lifecycle_return(jt_req *r);
/* POST /api/v1/orders/{orderId}/cancel */
jt_err lifecycle_cancel(jt_req *r);

typedef struct {
    int64_t moved;        /* moves committed */
    int64_t skipped;      /* due, but moved by someone else first (or refused: see the log) */
    int64_t failed;       /* not now: database down, lock busy; the next sweep tries again */
    int     locked_out;   /* another host holds the sweep lock: nothing was tried */
    int     out_of_time;  /* the deadline came first: the rest waits for the next sweep */
} jt_sweep_report;

/* One sweep. JT_OK when it ran (see the report), else the reason it could
 * not (JT_E_DATABASE_UNAVAILABLE). */
jt_err lifecycle_sweep(const jt_conf *c, struct jt_db *db, struct jt_redis *redis, jt_arena *a,
                       jt_sweep_report *out);

#endif
