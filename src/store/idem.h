/* Idempotency-Key (IETF httpapi draft semantics, stricter where it is
 * silent). Scope is (user, key); the fingerprint is SHA-256 over method,
 * request path (not the route template: the same key on another user's
 * resource is another request) and the canonical JSON body.
 *
 *   begin    replay from Redis, else replay from MariaDB (the durable row),
 *            else take the in-flight marker (SET NX) or answer 409.
 *   record   inside the effect's transaction: insert the durable row.
 *   finish   after COMMIT: cache the response, then drop the marker.
 *   abandon  on any failure: drop the marker, store nothing.
 *
 * Redis holds only a cache and a marker; the unique (user, key) row written
 * with the effect is what makes a second application impossible. */
#ifndef JT_IDEM_H
#define JT_IDEM_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "store/db.h"
#include "store/lock.h"
#include "store/redis.h"
#include "store/tx.h"

typedef enum {
    JT_IDEM_PROCEED = 0,
    JT_IDEM_REPLAY,       /* replay_status / replay_body are set */
    JT_IDEM_IN_FLIGHT,
    JT_IDEM_MISMATCH,     /* same key, different payload */
    JT_IDEM_DB_DOWN,
    JT_IDEM_ERROR
} jt_idem_rc;

typedef struct {
    int64_t        user_id;
    const char    *key;
    size_t         key_len;
    unsigned char  fp[32];
    char           cache_key[96];
    char           marker_key[96];
    char           token[33];
    int            marker_held;
    int            replay_status;
    const char    *replay_body;
    size_t         replay_len;
} jt_idem;

/* Parses an Idempotency-Key header: an sf-string ("...", with \" and \\
 * escapes) or a bare token, 1..255 visible ASCII. 0 or -1. */
int jt_idem_parse_key(jt_arena *a, const char *header, const char **key, size_t *len);

void jt_idem_fingerprint(const char *method, const char *path, const char *canonical, size_t len,
                         unsigned char out[32]);

/* Fills id for a request of user_id with this key and fingerprint (and
 * its Redis keys) without looking anything up. */
void jt_idem_identify(jt_idem *id, int64_t user_id, const char *key, size_t key_len, const unsigned char fp[32]);

/* The cached answer (REPLAY, MISMATCH), else the in-flight marker taken
 * (PROCEED) or held by another request (IN_FLIGHT), after a look at the
 * durable record; with `late`, that look is skipped when the marker was
 * taken (the caller finds a committed row when it inserts its own). */
jt_idem_rc jt_idem_begin(jt_idem *id, jt_db *db, jt_redis *r, jt_arena *a, int64_t user_id,
                         const char *key, size_t key_len, const unsigned char fp[32], int64_t marker_ms,
                         int late);

/* Inside the transaction. A duplicate-key error means another request with
 * the same key committed first: jt_tx_run returns JT_TX_DUPLICATE and the
 * caller replays with jt_idem_lookup(). */
jt_tx_step jt_idem_record(jt_tx *tx, jt_idem *id, int status, const char *body, size_t len,
                          const char *ref_kind, int64_t ref_id, int64_t ttl_s);

/* The durable row, if any: REPLAY, MISMATCH, PROCEED (none) or DB_DOWN. */
jt_idem_rc jt_idem_lookup(jt_idem *id, jt_db *db, jt_arena *a);

/* The same as a locking read, outside any transaction: it waits for a
 * transaction that has inserted this key's row and not yet committed, and
 * then sees what it did. IN_FLIGHT when that wait timed out. */
jt_idem_rc jt_idem_settle(jt_idem *id, jt_db *db, jt_arena *a);

/* A batch of answers (domain/combine.c): the durable rows, in the batch's
 * transaction, and after its COMMIT the cache entries, one round trip
 * each. */
typedef struct {
    const jt_idem *id;
    int            status;
    const char    *body;
    size_t         len;
    const char    *ref_kind;
    int64_t        ref_id;
    int64_t        ttl_s;      /* how long the row is kept */
} jt_idem_row;

jt_tx_step jt_idem_record_many(jt_tx *tx, const jt_idem_row *rows, int n);
void       jt_idem_cache_many(jt_redis *r, jt_arena *a, const jt_idem_row *rows, int n);

/* After COMMIT, in one round trip: answer (NULL: none) cached under the key
 * with its status, the in-flight marker dropped, then ls (NULL: none)
 * released as jt_lock_release_all does. */
void jt_idem_finish(jt_idem *id, jt_redis *r, jt_arena *a, const jt_buf *answer, int status, int64_t ttl_s,
                    jt_lockset *ls);
void jt_idem_abandon(jt_idem *id, jt_redis *r, jt_arena *a);

#endif
