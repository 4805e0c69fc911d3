#include "domain/write.h"

#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "http/json.h"
#include "store/db.h"
#include "store/redis.h"

static void
reply_replay(jt_req *r, jt_write *w)
{
    jt_buf b;

    jt_buf_init(&b, r->arena, w->idem.replay_len + 1);
    jt_buf_add(&b, w->idem.replay_body, w->idem.replay_len);
    jt_reply_json(r, w->idem.replay_status, &b);
    jt_reply_header(r, "Idempotent-Replayed", "true");
    w->replayed = 1;
}

static void
release_all(jt_req *r, jt_write *w)
{
    if (r->db->in_tx) {
        jt_db_rollback(r->db);   /* opened by jt_write_lock, never used */
    }
    jt_lock_release_all(r->redis, r->arena, &w->locks);
    if (w->has_key) {
        jt_idem_abandon(&w->idem, r->redis, r->arena);
    }
}

jt_err
jt_write_begin(jt_req *r, jt_write *w, int64_t principal, json_object *body, int key_mode)
{
    const jt_conf *c = r->conf;
    const char *key;
    size_t key_len;
    unsigned char fp[32];
    jt_buf canon;

    memset(w, 0, sizeof(*w));
    w->policy.max_attempts = c->tx_max_attempts;
    w->policy.deadline_ms = c->tx_deadline_ms;
    w->policy.backoff_base_ms = c->tx_backoff_base_ms;
    w->policy.backoff_max_ms = c->tx_backoff_max_ms;
    w->policy.test_delay_ms = c->enable_test_routes ? c->test_tx_delay_ms : 0;

    if (key_mode == JT_WRITE_KEY_IGNORED) {
        return JT_OK;
    }
    if (r->idempotency_key == NULL) {
        if (key_mode == JT_WRITE_KEY_REQUIRED) {
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
    w->has_key = 1;

    switch (jt_idem_begin(&w->idem, r->db, r->redis, r->arena, principal, key, key_len, fp,
                          c->lock_wait_ms + c->tx_deadline_ms + c->lock_lease_ms)) {
    case JT_IDEM_PROCEED:
        return JT_OK;
    case JT_IDEM_REPLAY:
        reply_replay(r, w);
        return JT_OK;
    case JT_IDEM_IN_FLIGHT:
        w->has_key = 0;
        return jt_fail(r, JT_E_IDEMPOTENCY_IN_FLIGHT, "a request with this Idempotency-Key is in flight");
    case JT_IDEM_MISMATCH:
        w->has_key = 0;
        return jt_fail(r, JT_E_IDEMPOTENCY_KEY_REUSED,
                       "this Idempotency-Key was used with a different request");
    case JT_IDEM_DB_DOWN:
        w->has_key = 0;
        return jt_fail(r, JT_E_DATABASE_UNAVAILABLE, "the database is unavailable; retry later");
    default:
        w->has_key = 0;
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
        release_all(r, w);
        return jt_fail(r, JT_E_LOCK_TIMEOUT, "too busy: could not get the lock in %lld ms",
                       (long long) c->lock_wait_ms);
    }
}

jt_err
jt_write_run(jt_req *r, jt_write *w, jt_tx_body body, void *data, const jt_err *refusal)
{
    jt_tx_rc rc = jt_tx_run(r->db, r->arena, &w->policy, body, data);

    if (rc == JT_TX_OK) {
        return JT_OK;
    }
    release_all(r, w);
    switch (rc) {
    case JT_TX_ABORTED:
        return *refusal;
    case JT_TX_EXHAUSTED:
        return jt_fail(r, JT_E_CONFLICT_RETRY_EXHAUSTED, "too busy: concurrent updates kept conflicting");
    case JT_TX_DB_DOWN:
        return jt_fail(r, JT_E_DATABASE_UNAVAILABLE, "the database is unavailable; retry later");
    case JT_TX_DUPLICATE:
        /* another request with the same key committed first: answer as it did */
        if (w->has_key) {
            switch (jt_idem_lookup(&w->idem, r->db, r->arena)) {
            case JT_IDEM_REPLAY:
                reply_replay(r, w);
                return JT_OK;
            case JT_IDEM_MISMATCH:
                return jt_fail(r, JT_E_IDEMPOTENCY_KEY_REUSED,
                               "this Idempotency-Key was used with a different request");
            case JT_IDEM_DB_DOWN:
                return jt_fail(r, JT_E_DATABASE_UNAVAILABLE, "the database is unavailable; retry later");
            default:
                break;
            }
        }
        return jt_fail(r, JT_E_INTERNAL, "unexpected duplicate row");
    default:
        return jt_fail(r, JT_E_INTERNAL, "database error");
    }
}

void
jt_write_finish(jt_req *r, jt_write *w, int status, const jt_buf *answer)
{
    const jt_conf *c = r->conf;

    if (w->has_key) {
        jt_idem_finish(&w->idem, r->redis, r->arena, status, answer->data, answer->len, c->idem_ttl);
    }
    jt_lock_release_all(r->redis, r->arena, &w->locks);
    jt_reply_json(r, status, answer);
}
