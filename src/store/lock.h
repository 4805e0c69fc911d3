/* Distributed lock on Redis: SET key token NX PX lease, released by a Lua
 * compare-and-delete so a holder whose lease expired can never delete the
 * next holder's lock. Several keys are always taken in sorted order (no
 * lock-order deadlocks). Waiting polls with jittered, growing sleeps.
 *
 * The lock is an optimisation, not the guarantee: every write it protects
 * is also fenced by a row version in MariaDB, so an expired lease or a
 * Redis outage costs retries, never correctness. */
#ifndef JT_LOCK_H
#define JT_LOCK_H

#include <stdint.h>

#include "core/arena.h"
#include "store/redis.h"

#define JT_LOCK_MAX 64

typedef enum {
    JT_LOCK_OK = 0,
    JT_LOCK_TIMEOUT,     /* waited wait_ms: answer 503 LOCK_TIMEOUT */
    JT_LOCK_DEGRADED     /* Redis unreachable: proceed on the version fence alone */
} jt_lock_rc;

typedef struct {
    const char *keys[JT_LOCK_MAX];
    char        tokens[JT_LOCK_MAX][33];
    int         held[JT_LOCK_MAX];
    int         n;
    int         degraded;
} jt_lockset;

/* keys need not be sorted or unique; they are copied. */
jt_lock_rc jt_lock_acquire_all(jt_redis *r, jt_arena *a, jt_lockset *ls, const char *const *keys, int n,
                               int64_t wait_ms, int64_t lease_ms);
/* Releases every held lock (after COMMIT, never before). Returns how many
 * had already lost their lease. */
int jt_lock_release_all(jt_redis *r, jt_arena *a, jt_lockset *ls);

/* Compare-and-delete of one key held with token: 1 deleted, 0 it was no
 * longer ours (expired, taken over), -1 Redis unreachable. */
int jt_lock_release_one(jt_redis *r, jt_arena *a, const char *key, const char *token);

/* Sorts and de-duplicates keys in place; returns the new count. */
int jt_lock_sort_keys(const char **keys, int n);

/* Sleeps a random time in [0, cap_ms] (full jitter). */
void jt_sleep_jitter_ms(int64_t cap_ms);

#endif
