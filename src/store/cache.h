/* Cache-aside on Redis, guarded by generation tags.
 *
 * Every entry belongs to a guard: a key whose value (a random tag) changes
 * whenever a write could change what the entry shows. A product's detail
 * answer is guarded by "pg:<id>", every list page by "plg". An entry is
 * stored as "<tag>|<bytes>", where <tag> is the guard's value as the reader
 * saw it *before* it read MariaDB; a read fetches the entry and its guard in
 * one plain MGET (no Lua on the warm path) and accepts the entry only if
 * the tags match.
 *
 * Why that never serves data older than the last committed write: a writer
 * sets a fresh tag after its COMMIT. A reader that saw the old tag may have
 * read the old row, and may store it after the writer is done (the fill
 * race), but it stores it under the old tag, which no later read accepts.
 * A reader that saw the new tag saw it after the COMMIT, so its MariaDB read
 * sees the write. (Bar the instant between COMMIT and the new tag; the
 * writer answers its client only after setting it.) Guards carry no TTL, so
 * Redis must not evict keys (Debian's default: no maxmemory).
 *
 * Entries also carry a short TTL, which bounds how stale values that
 * writers do not re-tag (stock sold by orders, a product's wishCount moved
 * by wishlists) can be; callers count it from before their MariaDB read,
 * not from the fill.
 *
 * Every call degrades to a miss / no-op when Redis is down. */
#ifndef JT_CACHE_H
#define JT_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "store/redis.h"

#define JT_CACHE_TAG_MAX 40

typedef struct {
    char    key[192];                   /* the entry to fill */
    char    tag[JT_CACHE_TAG_MAX + 1];  /* the guard's value when the miss was seen */
    int     armed;                      /* Redis answered: a fill may follow */
} jt_cache_slot;

/* Looks up key under guard (one MGET). Returns the bytes (arena) or NULL on
 * a miss; the slot then says how to fill it with jt_cache_put. */
const char *jt_cache_get(jt_redis *r, jt_arena *a, const char *key, const char *guard, jt_cache_slot *slot,
                         size_t *len);
/* Stores what a miss read from MariaDB under the tag seen at the miss;
 * nothing when ttl_ms <= 0. */
void jt_cache_put(jt_redis *r, jt_arena *a, const jt_cache_slot *slot, const char *data, size_t len,
                  int64_t ttl_ms);
/* After COMMIT: a fresh tag on each guard (one MSET, at most 8 guards), so
 * no entry stored under an older tag is served again. */
void jt_cache_invalidate(jt_redis *r, jt_arena *a, const char *const *guards, int n);

#endif
