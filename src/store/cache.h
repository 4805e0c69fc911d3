/* Cache-aside on Redis with generation keys. A cached entry lives under
 * "<prefix>:<generation>"; a writer bumps the generation (INCR) after its
 * COMMIT, so every later reader looks under a new key and misses. A reader
 * that raced the writer may still store what it read under the old
 * generation, but nobody reads that key again: the cache can never serve
 * data older than the last committed write (bar the instant between COMMIT
 * and the bump). Entries also carry a short TTL, which bounds how stale
 * values that writes do not bump (stock sold by orders) can be.
 *
 * Every call degrades to a miss / no-op when Redis is down. */
#ifndef JT_CACHE_H
#define JT_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "store/redis.h"

typedef struct {
    char key[192];     /* the data key for the current generation */
    int  redis_ok;
} jt_cache_slot;

/* Looks up prefix under the generation held in gen_key (one round trip).
 * Returns the bytes (arena) or NULL on a miss; slot->key is then the key to
 * fill with jt_cache_put. */
const char *jt_cache_get(jt_redis *r, jt_arena *a, const char *gen_key, const char *prefix,
                         jt_cache_slot *slot, size_t *len);
void jt_cache_put(jt_redis *r, jt_arena *a, const jt_cache_slot *slot, const char *data, size_t len,
                  int64_t ttl_ms);
/* After COMMIT: invalidate everything cached under these generations. */
void jt_cache_bump(jt_redis *r, jt_arena *a, const char *const *gen_keys, int n);

#endif
