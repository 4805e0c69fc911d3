/* The write path every money- or stock-moving handler follows, in order:
 *
 *   jt_write_begin   Idempotency-Key: parse, fingerprint, replay or mark in flight
 *   jt_write_lock    START TRANSACTION, then the Redis locks on every row to
 *                    be written (all or none; a waiter is woken by the
 *                    release, see store/lock.h)
 *   jt_write_run     the transaction, retried by store/tx on conflicts
 *   jt_write_finish  after COMMIT: cache the answer, drop the marker,
 *                    release the locks, answer
 *
 * Any error on the way releases what was taken and stores nothing, so the
 * client may fix the cause and retry with the same key. */
#ifndef JT_WRITE_H
#define JT_WRITE_H

#include <json-c/json.h>
#include <stdint.h>

#include "http/request.h"
#include "store/idem.h"
#include "store/lock.h"
#include "store/tx.h"

/* KEY_IGNORED: the route does not take Idempotency-Key (naturally
 * idempotent, or not a money flow); the header is not looked at. */
enum { JT_WRITE_KEY_OPTIONAL = 0, JT_WRITE_KEY_REQUIRED = 1, JT_WRITE_KEY_IGNORED = 2 };

typedef struct {
    jt_idem      idem;
    int          has_key;
    int          replayed;     /* the answer is a replay: the handler is done */
    jt_lockset   locks;
    jt_tx_policy policy;
} jt_write;

jt_err jt_write_begin(jt_req *r, jt_write *w, int64_t principal, json_object *body, int key_mode);
jt_err jt_write_lock(jt_req *r, jt_write *w, const char *const *keys, int n);
/* JT_OK when committed (or replayed: check w->replayed); otherwise the
 * error to answer, with everything released. `refusal` is the body's
 * reason when it aborted. */
jt_err jt_write_run(jt_req *r, jt_write *w, jt_tx_body body, void *data, const jt_err *refusal);
void   jt_write_finish(jt_req *r, jt_write *w, int status, const jt_buf *answer);

#endif
