/* Distributed lock on Redis: SET key token NX PX lease, released by a Lua
 * compare-and-delete so a holder whose lease expired can never delete the
 * next holder's lock. A set of keys is taken all or none in one script
 * (sorted, nothing held while waiting: no lock-order deadlocks) and
 * released in one script. A waiter does not poll: it blocks (BLPOP) on
 * the busy key's wake list, which every release pushes one token onto,
 * so the lock passes to the next waiter in about one round trip; each
 * block is short (an expired lease is noticed soon) and ends before the
 * wait deadline, whose last stretch polls with jittered sleeps.
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

#define JT_LOCK_WAKE_MAX_MS  100    /* longest single block on a wake list */
#define JT_LOCK_WAKE_MIN_MS  10     /* shorter than this: poll instead */
#define JT_LOCK_WAKE_TTL_MS  1000   /* an unclaimed wake token's life */

typedef enum {
    JT_LOCK_OK = 0,
    JT_LOCK_TIMEOUT,     /* waited wait_ms: answer 503 LOCK_TIMEOUT */
    JT_LOCK_DEGRADED     /* Redis unreachable: proceed on the version fence alone */
} jt_lock_rc;

typedef struct {
    const char *keys[JT_LOCK_MAX];    /* sorted, unique */
    const char *wakes[JT_LOCK_MAX];   /* each key's wake list: "KEY:wake" */
    char        token[33];            /* one per set: every key holds it */
    int         held;                 /* all of keys, or none */
    int         n;
    int         degraded;
} jt_lockset;

/* keys need not be sorted or unique; they are copied. */
jt_lock_rc jt_lock_acquire_all(jt_redis *r, jt_arena *a, jt_lockset *ls, const char *const *keys, int n,
                               int64_t wait_ms, int64_t lease_ms);
/* Takes, without waiting, each of keys that is free now: a set whose keys
 * are taken one by one, so a busy one does not keep the others (the
 * combining leader of domain/combine.c takes its batch's balances so: a
 * buyer whose balance is busy waits for the next batch, the rest go on).
 * ls holds the keys taken (release with jt_lock_release_all); got[i] tells
 * whether keys[i] is one of them. JT_LOCK_DEGRADED, nothing taken, when
 * Redis is unreachable. */
jt_lock_rc jt_lock_try_each(jt_redis *r, jt_arena *a, jt_lockset *ls, const char *const *keys, int n,
                            int64_t lease_ms, int *got);

/* A fresh lock token (32 hex and a NUL). */
void jt_lock_new_token(char out[33]);
/* ls holds keys, all taken with token by a script of the caller's own
 * (domain/combine.c takes them together with its queue entry), released
 * like any set with jt_lock_release_all. -1 when out of memory. */
int jt_lock_adopt(jt_arena *a, jt_lockset *ls, const char *const *keys, int n, const char *token);

/* Moves every key of ls but `keep` into rest (same token, still held), so
 * that the two parts are released apart. */
void jt_lock_split(jt_lockset *ls, const char *keep, jt_lockset *rest);

/* Releases every held lock (after COMMIT, never before). Returns how many
 * had already lost their lease. */
int jt_lock_release_all(jt_redis *r, jt_arena *a, jt_lockset *ls);

/* Every lock of a set released in one round trip, as the tail of a script
 * that defines K0 and A0 first (how many keys and arguments of its own come
 * before the set's). KEYS[K0+1..K0+n]: the n lock keys, then their n wake
 * lists; ARGV[A0+1]: the token, ARGV[A0+2]: the wake ttl ms. A key still
 * ours is deleted (compare-and-delete); a key now free (ours deleted, or
 * our lease ran out) gets one wake token for the next waiter, kept to one
 * entry and short-lived: a waiter that misses the push by a moment still
 * finds it, and a stale token costs one spurious wake, no more. A key
 * somebody else holds gets none: its holder will push when it lets go.
 * Answers, per key, 1 released or 0 the lease had already expired.
 * (store/idem.c caches an answer and releases its locks in one script.) */
#define JT_LOCK_RELEASE_LUA                                              \
    "local n = (#KEYS - K0) / 2\n"                                       \
    "local out = {}\n"                                                   \
    "for i = 1, n do\n"                                                  \
    "  local v = redis.call('get', KEYS[K0 + i])\n"                      \
    "  out[i] = 0\n"                                                     \
    "  if v == ARGV[A0 + 1] then redis.call('del', KEYS[K0 + i]); out[i] = 1 end\n" \
    "  if v == ARGV[A0 + 1] or not v then\n"                             \
    "    redis.call('lpush', KEYS[K0 + n + i], '1')\n"                   \
    "    redis.call('ltrim', KEYS[K0 + n + i], 0, 0)\n"                  \
    "    redis.call('pexpire', KEYS[K0 + n + i], ARGV[A0 + 2])\n"        \
    "  end\n"                                                            \
    "end\n"                                                              \
    "return out"

/* How many keys ls holds (0 for NULL or a released set). */
int jt_lock_held_count(const jt_lockset *ls);
/* For such a script: fills keys (2n: the locks, then their wake lists) and
 * argv (2: token, wake ttl, written into ttl) of the set, marks it released,
 * and returns n = jt_lock_held_count(ls). ls may be NULL (n = 0: the loop
 * runs no turn). */
int jt_lock_release_args(jt_lockset *ls, const char **keys, const char **argv, char ttl[24]);
/* The script's answer (NULL: Redis is gone, the leases run out): how many of
 * the n locks had already lost their lease, each counted and logged (ls may
 * be NULL when n is 0). */
int jt_lock_released(const jt_lockset *ls, const redisReply *rep, int n);

typedef enum {
    JT_UNLOCK_RELEASED = 0,   /* it was ours, and is deleted */
    JT_UNLOCK_NOT_OURS,       /* expired or taken over: left alone */
    JT_UNLOCK_UNREACHABLE     /* Redis did not answer: the lease runs out */
} jt_unlock_rc;

/* Compare-and-delete of one key held with token. */
jt_unlock_rc jt_lock_release_one(jt_redis *r, jt_arena *a, const char *key, const char *token);

/* Sorts and de-duplicates keys in place; returns the new count. */
int jt_lock_sort_keys(const char **keys, int n);

/* Sleeps a random time in [0, cap_ms] (full jitter). */
void jt_sleep_jitter_ms(int64_t cap_ms);

#endif
