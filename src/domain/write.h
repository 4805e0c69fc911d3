/* The write path every money- or stock-moving handler follows, in order:
 *
 *   authenticate, parse the body
 *   jt_write_begin   Idempotency-Key: parse, fingerprint, replay a committed
 *                    answer or take the in-flight marker. It comes before
 *                    any check on state that changes (prices, sale windows,
 *                    auction status, stock, balance, limits): a committed
 *                    key replays its answer whatever has changed since.
 *   validate, price, check       (a refusal is simply returned, see below)
 *   jt_write_lock    START TRANSACTION, then the Redis locks on every row to
 *                    be written (all or none; a waiter is woken by the
 *                    release, see store/lock.h)
 *   jt_write_run     the transaction, retried by store/tx on conflicts. The
 *                    body decides, and names its answer with
 *                    jt_write_answer(); when it decides to commit, the write
 *                    path itself inserts the durable idempotency row with
 *                    that answer, in the same transaction, and commits. No
 *                    handler writes that row, so none can forget it or put
 *                    it in the wrong place.
 *   jt_write_finish  after COMMIT: cache the answer, drop the marker,
 *                    release the locks, answer
 *
 * Any error a handler returns after jt_write_begin reaches the write path
 * before it is answered (jt_req.on_error): what was taken is released and
 * nothing is stored, so the client may fix the cause and retry with the
 * same key. And a keyed request that is about to be refused first asks the
 * durable record, with a locking read that waits for a same-key transaction
 * still in flight: if another request with this key committed, this one
 * answers with that committed answer (or 409 IDEMPOTENCY_IN_FLIGHT while it
 * cannot tell). So two overlapping requests with one key end with one
 * committed answer, never with a business refusal, even when the in-flight
 * marker is gone (Redis down or restarted):
 *
 *   - both reach COMMIT: the unique (user, key) row lets one commit; the
 *     other's insert fails (or waits, then fails), it rolls back and replays;
 *   - the later one is refused because the earlier one's effect is visible
 *     (the balance spent, the stock gone): that effect is visible only once
 *     committed, so its row is there and the refusal becomes a replay;
 *   - the later one is refused while the earlier one is inside its
 *     transaction past its row insert: the locking read waits for it.
 *
 * What is left is a refusal for a reason of its own (say the sale closed
 * between the two) while the other is still before its row insert and its
 * marker is gone; the marker is therefore held for the whole life of a
 * request and no transaction reaches its row insert after the marker may
 * have lapsed (it stops with 503 instead), so this needs Redis itself to
 * lose the marker.
 *
 * A request that must ask another service between two transactions (a card
 * checkout registers its amount at the payment gateway after reserving the
 * stock) runs its earlier transactions as steps: jt_write_step commits
 * without the idempotency row, jt_write_unlock lets the locks go before the
 * call (no lock, no transaction is ever held across it), and the last
 * transaction, jt_write_run, commits the answer with the row as always. Its
 * marker is taken for the calls too (jt_write_begin_for). A step is
 * therefore never an answer: a keyed retry replays only what the last
 * transaction committed, and a request that stops after a step (refused by
 * the gateway, or killed) has left state that must be complete in itself,
 * which the caller's own design must make true (payments.h says how card
 * orders do). */
#ifndef JT_WRITE_H
#define JT_WRITE_H

#include <json-c/json.h>
#include <stdint.h>

#include "core/buf.h"
#include "http/request.h"
#include "store/idem.h"
#include "store/lock.h"
#include "store/tx.h"

/* KEY_IGNORED: the route does not take Idempotency-Key (naturally
 * idempotent, or not a money flow); the header is not looked at. */
typedef enum {
    JT_WRITE_KEY_OPTIONAL = 0,
    JT_WRITE_KEY_REQUIRED,
    JT_WRITE_KEY_IGNORED,
    /* OPTIONAL, and the durable record is not read before the work when
     * Redis has neither a cached answer nor another request in flight under
     * the key. Only for a route whose every effect is in its transaction
     * (a points order): the idempotency row's insert finds a committed
     * answer (and rolls the work back), and so does every refusal
     * (write_failed); no gateway or other outside call may come before. */
    JT_WRITE_KEY_OPTIONAL_LOOKUP_LATE
} jt_write_key_mode;

typedef struct jt_write {
    jt_idem       idem;
    int           has_key;
    int           replayed;        /* the answer is a replay: the handler is done */
    jt_lockset    locks;
    jt_tx_policy  policy;
    int64_t       marker_until_ms; /* monotonic: past this our marker may be gone */
    int           late;            /* the transaction stopped at marker_until_ms */
    int           stepping;        /* jt_write_step: commit without the row */
    int64_t       idem_ttl;        /* s */
    int           cached;          /* the answer is in the idempotency cache already */
    int           internal_key;    /* the key is the order queue's own, not the client's */
    /* the answer the transaction decided on (jt_write_answer), reset at
     * the start of every attempt */
    int           status;
    jt_buf        answer;
    const char   *ref_kind;
    int64_t       ref_id;
    /* the handler's transaction, run by jt_write_run */
    jt_tx_body    body;
    void         *data;
} jt_write;

/* *out is the request's write (arena memory: the dispatcher may call back
 * into it after the handler has returned). */
jt_err jt_write_begin(jt_req *r, jt_write **out, int64_t principal, json_object *body, jt_write_key_mode mode);
/* The same, for a request that spends up to extra_ms in calls to another
 * service between its transactions: its in-flight marker lasts that much
 * longer. */
jt_err jt_write_begin_for(jt_req *r, jt_write **out, int64_t principal, json_object *body, jt_write_key_mode mode,
                          int64_t extra_ms);
jt_err jt_write_lock(jt_req *r, jt_write *w, const char *const *keys, int n);
/* JT_OK when committed (or replayed: check w->replayed); otherwise the
 * error to answer. `refusal` is the body's reason when it aborted. */
jt_err jt_write_run(jt_req *r, jt_write *w, jt_tx_body body, void *data, const jt_err *refusal);
/* A transaction that is not the request's answer: committed without the
 * idempotency row (the body may name no answer). Same results as
 * jt_write_run, never `replayed`. */
jt_err jt_write_step(jt_req *r, jt_write *w, jt_tx_body body, void *data, const jt_err *refusal);
/* After a step's COMMIT: releases the locks (before a call that must not
 * hold them); the next jt_write_lock takes a new set. */
void   jt_write_unlock(jt_req *r, jt_write *w);
/* Inside the body: the answer if it commits (status, body bytes in arena
 * memory, and what the idempotency row refers to). A body run outside the
 * write path (a bid consumer) has no write: the call does nothing. */
void   jt_write_answer(jt_tx *tx, int status, const jt_buf *answer, const char *ref_kind, int64_t ref_id);
/* The write holds `held`, taken by its caller (domain/combine.c), as if
 * jt_write_lock had taken it: START TRANSACTION is sent, the locks are
 * released with the write's. */
void   jt_write_adopt_locks(jt_req *r, jt_write *w, const jt_lockset *held);
/* After COMMIT: cache the committed answer, release, reply with it. */
void   jt_write_finish(jt_req *r, jt_write *w);

#endif
