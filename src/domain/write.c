#include "domain/write.h"

#include <string.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "http/json.h"
#include "store/db.h"
#include "store/redis.h"

/* How far ahead of the marker's expiry a transaction must be when it
 * inserts its idempotency row: the insert is one statement, and after it
 * a same-key newcomer waits for (or replays) this transaction. */
#define JT_WRITE_MARKER_MARGIN_MS 1000

static void
reply_replay(jt_req *r, jt_write *w)
{
    jt_buf b;

    jt_buf_init(&b, r->arena, w->idem.replay_len + 1);
    jt_buf_add(&b, w->idem.replay_body, w->idem.replay_len);
    jt_reply_json(r, w->idem.replay_status, &b);
    if (!w->internal_key) {
        jt_reply_header(r, "Idempotent-Replayed", "true");   /* the client's own key */
    }
    w->replayed = 1;
    r->on_error = NULL;
}

static void
release_all(jt_req *r, jt_write *w)
{
    if (r->db->in_tx) {
        jt_db_rollback(r->db);   /* opened by jt_write_lock, or left by a failed run */
    }
    jt_lock_release_all(r->redis, r->arena, &w->locks);
    if (w->has_key) {
        jt_idem_abandon(&w->idem, r->redis, r->arena);
    }
}

/* Every error a handler returns after jt_write_begin comes here before it
 * is answered (the dispatcher calls jt_req.on_error). Whatever the request
 * held is released. A keyed request then looks for a committed answer under
 * its key, waiting for a same-key transaction still in flight (write.h says
 * why that makes overlapping requests end with one committed answer); only
 * when there is none is the error answered. */
static jt_err
write_failed(jt_req *r, jt_err e, void *data)
{
    jt_write *w = data;
    int keyed = w->has_key;

    r->on_error = NULL;
    release_all(r, w);
    w->has_key = 0;
    if (!keyed || e == JT_E_DATABASE_UNAVAILABLE) {
        return e;
    }
    switch (jt_idem_settle(&w->idem, r->db, r->arena)) {
    case JT_IDEM_REPLAY:
        reply_replay(r, w);
        return JT_OK;
    case JT_IDEM_MISMATCH:
        return jt_fail(r, JT_E_IDEMPOTENCY_KEY_REUSED, "this Idempotency-Key was used with a different request");
    case JT_IDEM_IN_FLIGHT:
        return jt_fail(r, JT_E_IDEMPOTENCY_IN_FLIGHT, "a request with this Idempotency-Key is in flight");
    case JT_IDEM_PROCEED:
        return e;   /* nothing committed under the key: the error is the answer */
    default:
        /* The lookup failed (the database went away, or its answer did not
         * come in time): whether a same-key transaction committed is
         * unknown, so the business error may be a lie (an order committed
         * by a batch, then refused here as sold out). Retry with the key. */
        return jt_fail(r, JT_E_DATABASE_UNAVAILABLE,
                       "could not tell whether a request with this Idempotency-Key committed; retry with the same key");
    }
}

jt_err
jt_write_begin(jt_req *r, jt_write **out, int64_t principal, json_object *body, jt_write_key_mode mode)
{
    return jt_write_begin_for(r, out, principal, body, mode, 0);
}

jt_err
jt_write_begin_for(jt_req *r, jt_write **out, int64_t principal, json_object *body, jt_write_key_mode mode,
                   int64_t extra_ms)
{
    const jt_conf *c = r->conf;
    const char *key;
    size_t key_len;
    unsigned char fp[32];
    int64_t marker_ms, started;
    jt_buf canon;
    jt_write *w;

    if ((w = *out = jt_pcalloc(r->arena, sizeof(*w))) == NULL) {
        return JT_E_INTERNAL;
    }
    jt_tx_policy_init(&w->policy, c);
    w->idem_ttl = c->idem_ttl;
    r->on_error = write_failed;
    r->on_error_data = w;

    if (mode == JT_WRITE_KEY_IGNORED) {
        return JT_OK;
    }
    if (r->idempotency_key == NULL) {
        if (mode == JT_WRITE_KEY_REQUIRED) {
            return jt_fail(r, JT_E_IDEMPOTENCY_KEY_MISSING, "this request needs an Idempotency-Key header");
        }
        return JT_OK;
    }
    if (jt_idem_parse_key(r->arena, r->idempotency_key, &key, &key_len) != 0) {
        return jt_fail(r, JT_E_IDEMPOTENCY_KEY_INVALID,
                       "Idempotency-Key must be 1 to 255 visible ASCII characters, bare or quoted");
    }
    jt_buf_init(&canon, r->arena, r->body_len + 16);
    jt_json_canonical(&canon, body);
    if (canon.oom) {
        return JT_E_INTERNAL;
    }
    /* the path, not the route template: an admin reusing a key on another
     * user's resource is a different request, not a replay */
    jt_idem_fingerprint(r->method_name, r->path, canon.data, canon.len, fp);

    /* The marker covers the request's whole life: its checks, the lock
     * wait, every attempt, and the margin before the row insert; the body
     * wrapper stops a transaction that would insert later than that. */
    marker_ms = c->lock_wait_ms + c->tx_deadline_ms + c->lock_lease_ms + 2 * JT_WRITE_MARKER_MARGIN_MS
                + w->policy.test_delay_ms + (extra_ms > 0 ? extra_ms : 0);
    started = jt_clock_mono_ms();
    switch (jt_idem_begin(&w->idem, r->db, r->redis, r->arena, principal, key, key_len, fp, marker_ms,
                          mode == JT_WRITE_KEY_OPTIONAL_LOOKUP_LATE)) {
    case JT_IDEM_PROCEED:
        w->has_key = 1;
        w->marker_until_ms = started + marker_ms - JT_WRITE_MARKER_MARGIN_MS;
        return JT_OK;
    case JT_IDEM_REPLAY:
        reply_replay(r, w);
        return JT_OK;
    case JT_IDEM_IN_FLIGHT:
        return jt_fail(r, JT_E_IDEMPOTENCY_IN_FLIGHT, "a request with this Idempotency-Key is in flight");
    case JT_IDEM_MISMATCH:
        return jt_fail(r, JT_E_IDEMPOTENCY_KEY_REUSED,
                       "this Idempotency-Key was used with a different request");
    case JT_IDEM_DB_DOWN:
        return jt_fail(r, JT_E_DATABASE_UNAVAILABLE, "the database is unavailable; retry later");
    default:
        return jt_fail(r, JT_E_INTERNAL, "idempotency lookup failed");
    }
}

jt_err
jt_write_lock(jt_req *r, jt_write *w, const char *const *keys, int n)
{
    const jt_conf *c = r->conf;

    /* START TRANSACTION takes no snapshot and no row lock until the first
     * statement, so it is sent before the wait: one round trip fewer while
     * the locks are held. If it fails, jt_write_run's own begin reports. */
    (void) jt_db_begin(r->db);
    switch (jt_lock_acquire_all(r->redis, r->arena, &w->locks, keys, n, c->lock_wait_ms, c->lock_lease_ms)) {
    case JT_LOCK_OK:
        return JT_OK;
    case JT_LOCK_DEGRADED:
        jt_log_warn("write: Redis unavailable; relying on the version fence");
        return JT_OK;
    default:
        return jt_fail(r, JT_E_LOCK_TIMEOUT, "too busy: could not get the lock in %lld ms",
                       (long long) c->lock_wait_ms);
    }
}

void
jt_write_adopt_locks(jt_req *r, jt_write *w, const jt_lockset *held)
{
    (void) jt_db_begin(r->db);
    w->locks = *held;
}

void
jt_write_answer(jt_tx *tx, int status, const jt_buf *answer, const char *ref_kind, int64_t ref_id)
{
    jt_write *w = tx->write;

    if (w == NULL) {
        return;
    }
    w->status = status;
    w->answer = *answer;
    w->ref_kind = ref_kind;
    w->ref_id = ref_id;
}

/* One attempt of the handler's body inside the write path. Every attempt
 * starts from nothing: the answer of a rolled-back attempt is forgotten.
 * A body that decides to commit must have named its answer; then, for a
 * keyed request, the durable idempotency row goes in with it, unless the
 * marker may have lapsed, in which case nothing commits (503). */
static jt_tx_step
write_body(jt_tx *tx)
{
    jt_write *w = tx->write;
    jt_tx_step step;

    w->status = 0;
    w->ref_kind = NULL;
    w->ref_id = 0;
    jt_buf_init(&w->answer, tx->arena, 0);
    step = w->body(tx);
    if (step != JT_TX_COMMIT || w->stepping) {
        return step;
    }
    if (w->status == 0) {
        jt_log_error("write: a transaction decided to commit without an answer (a bug); rolled back");
        tx->db_rc = JT_DB_ERROR;
        return JT_TX_DBERR;
    }
    if (!w->has_key) {
        return JT_TX_COMMIT;
    }
    if (w->idem.marker_held && jt_clock_mono_ms() >= w->marker_until_ms) {
        w->late = 1;
        return JT_TX_ABORT;
    }
    return jt_idem_record(tx, &w->idem, w->status, w->answer.data, w->answer.len,
                          w->ref_kind ? w->ref_kind : "", w->ref_id, w->idem_ttl);
}

jt_err
jt_write_run(jt_req *r, jt_write *w, jt_tx_body body, void *data, const jt_err *refusal)
{
    jt_tx_rc rc;

    w->body = body;
    w->data = data;
    rc = jt_tx_run_for(r->db, r->arena, &w->policy, write_body, data, w);
    switch (rc) {
    case JT_TX_OK:
        return JT_OK;
    case JT_TX_ABORTED:
        if (w->late) {
            return jt_fail(r, JT_E_CONFLICT_RETRY_EXHAUSTED, "too busy: the request ran out of time; retry");
        }
        return *refusal;
    case JT_TX_EXHAUSTED:
        return jt_fail(r, JT_E_CONFLICT_RETRY_EXHAUSTED, "too busy: concurrent updates kept conflicting");
    case JT_TX_DB_DOWN:
        return jt_fail(r, JT_E_DATABASE_UNAVAILABLE, "the database is unavailable; retry later");
    case JT_TX_DUPLICATE:
        /* another request with the same key committed first: write_failed
         * finds its row and answers as it did */
        if (w->has_key) {
            return jt_fail(r, JT_E_IDEMPOTENCY_IN_FLIGHT, "a request with this Idempotency-Key committed first");
        }
        return jt_fail(r, JT_E_INTERNAL, "unexpected duplicate row");
    default:
        return jt_fail(r, JT_E_INTERNAL, "database error");
    }
}

jt_err
jt_write_step(jt_req *r, jt_write *w, jt_tx_body body, void *data, const jt_err *refusal)
{
    jt_err e;

    w->stepping = 1;
    e = jt_write_run(r, w, body, data, refusal);
    w->stepping = 0;
    return e;
}

void
jt_write_unlock(jt_req *r, jt_write *w)
{
    jt_lock_release_all(r->redis, r->arena, &w->locks);
}

void
jt_write_finish(jt_req *r, jt_write *w)
{
    const jt_conf *c = r->conf;

    r->on_error = NULL;
    if (w->has_key) {
        jt_idem_finish(&w->idem, r->redis, r->arena, w->cached || w->internal_key ? NULL : &w->answer,
                       w->status, c->idem_ttl, &w->locks);
    }
    jt_lock_release_all(r->redis, r->arena, &w->locks);   /* unkeyed: still held */
    if (w->status == 204) {
        jt_reply_text(r, 204, "application/json", "", 0);
    } else {
        jt_reply_json(r, w->status, &w->answer);
    }
}
