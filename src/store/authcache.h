/* The bearer tokens' cache: one anonymous shared mapping made by the master
 * before it forks, so every worker of a host reads what any of them looked
 * up. It spares an authenticated request its MariaDB round trip (the token
 * joined to its user), which on a hot product was a third of the database's
 * statements per order (bench/RESULTS.md, issue 18).
 *
 * MariaDB stays the truth; an entry is only a copy, and every copy dies:
 *  - at its fill time plus [auth] cache_ttl_ms, at the token's expiry, and
 *    when the token's lastUsedAt stamp falls due (the next request then
 *    reads MariaDB and writes it), whichever comes first;
 *  - at once on this host, for every entry, when a request here revokes a
 *    token (a logout, a password change, a session revoked): the host's
 *    epoch is bumped after the COMMIT, and an entry of an older epoch is
 *    not read;
 *  - within [auth] cache_poll_ms on every other host: the revoker also
 *    INCRs the Redis key auth:epoch, which each host reads at most once per
 *    poll; a changed value bumps the host's epoch;
 *  - while Redis cannot be read, the cache is not used at all, and the
 *    failed poll bumps the epoch: a revocation made meanwhile is in MariaDB,
 *    which every request then reads.
 * A change made outside the API (a role or an expiry edited in SQL) is seen
 * after `jangteo-admin auth-flush` (the same INCR), or after cache_ttl_ms.
 *
 * Concurrency: each slot is a seqlock (even: stable, odd: being written).
 * A writer takes a slot with a compare-and-swap to odd and gives it back
 * even; a reader copies the slot and keeps the copy only when the sequence
 * was even and unchanged around it. A worker SIGKILLed between the two
 * leaves its slot odd: that slot is never read again (a miss, not a wrong
 * answer). An entry is written with the epoch read before its lookup, so
 * a revocation that commits while the lookup runs makes it stale at once. */
#ifndef JT_AUTHCACHE_H
#define JT_AUTHCACHE_H

#include <stdint.h>

#include "core/arena.h"
#include "core/config.h"

struct jt_redis;

#define JT_AUTHCACHE_KEY "auth:epoch"
#define JT_AUTHCACHE_ROLE 16

typedef struct {
    int64_t user_id;
    int64_t token_id;
    char    role[JT_AUTHCACHE_ROLE];
} jt_authcache_entry;

/* The master, before it forks; without it (the admin tool) nothing is cached. */
int jt_authcache_init_shared(int nslots);

/* 1 and *out when the token is cached and fresh; else 0, with *ticket to
 * hand to jt_authcache_put after the lookup (0: do not cache). */
int jt_authcache_get(const jt_conf *c, struct jt_redis *redis, jt_arena *a, const unsigned char hash[32],
                     jt_authcache_entry *out, uint64_t *ticket);
/* After MariaDB said the token is good for valid_ms more. */
void jt_authcache_put(const jt_conf *c, uint64_t ticket, const unsigned char hash[32], const jt_authcache_entry *e,
                      int64_t valid_ms);
/* After a COMMIT that revoked tokens: this host at once, the others
 * through Redis (a failure is logged; they then see it within cache_ttl_ms). */
void jt_authcache_revoked(struct jt_redis *redis, jt_arena *a);
/* Only the Redis half (jangteo-admin auth-flush): INCR auth:epoch, so every
 * host forgets within cache_poll_ms. The new value, or -1 (Redis down). */
int64_t jt_authcache_tell(struct jt_redis *redis, jt_arena *a);

#endif
