#include "store/authcache.h"

#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "store/redis.h"

typedef struct {
    uint32_t           seq;          /* the slot's seqlock */
    uint32_t           unused;
    uint64_t           epoch;        /* the host's epoch it was filled in */
    int64_t            until_ms;     /* monotonic: the last moment it may be read */
    unsigned char      hash[32];
    jt_authcache_entry e;
} auth_slot;

typedef struct {
    uint64_t  epoch;       /* bumped: every entry is gone */
    int64_t   polled_ms;   /* monotonic, the last poll of auth:epoch begun */
    int64_t   remote;      /* auth:epoch as last read */
    int32_t   remote_ok;   /* 0: Redis unread since start or since a failure */
    uint32_t  nslots;
    auth_slot slots[];
} auth_table;

static auth_table *table;

int
jt_authcache_init_shared(int nslots)
{
    table = jt_shared_zalloc(sizeof(auth_table) + sizeof(auth_slot) * (size_t) nslots);
    if (table == NULL) {
        return -1;
    }
    table->nslots = (uint32_t) nslots;
    table->epoch = 1;   /* a zeroed slot (epoch 0) is never read */
    return 0;
}

/* Every entry of this host is gone: none is of the new epoch. */
static void
forget_all(void)
{
    if (table != NULL) {
        __atomic_fetch_add(&table->epoch, 1, __ATOMIC_ACQ_REL);
    }
}

static uint64_t
epoch_now(void)
{
    return __atomic_load_n(&table->epoch, __ATOMIC_ACQUIRE);
}

/* At most once per cache_poll_ms on this host (the request that wins the
 * stamp reads Redis): auth:epoch changed, or could not be read, means
 * another host revoked something, or may have; either way this host
 * forgets. Answers whether the cache may be used now. */
static int
poll_remote(const jt_conf *c, struct jt_redis *redis, jt_arena *a)
{
    int64_t now = jt_clock_mono_ms(), last = __atomic_load_n(&table->polled_ms, __ATOMIC_ACQUIRE);
    redisReply *rep;
    int64_t value;

    if (now - last < c->auth_cache_poll_ms
        || !__atomic_compare_exchange_n(&table->polled_ms, &last, now, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        return __atomic_load_n(&table->remote_ok, __ATOMIC_ACQUIRE);
    }
    rep = jt_redis_ready(redis) == 0 ? jt_redis_cmd(redis, a, "GET %s", JT_AUTHCACHE_KEY) : NULL;
    if (rep == NULL || (rep->type != REDIS_REPLY_STRING && rep->type != REDIS_REPLY_NIL)) {
        if (__atomic_exchange_n(&table->remote_ok, 0, __ATOMIC_ACQ_REL)) {
            forget_all();
            JT_METRIC_INC(auth_cache_flushes);
        }
        return 0;
    }
    value = rep->type == REDIS_REPLY_STRING ? strtoll(rep->str, NULL, 10) : 0;
    if (!__atomic_load_n(&table->remote_ok, __ATOMIC_ACQUIRE)
        || value != __atomic_load_n(&table->remote, __ATOMIC_ACQUIRE)) {
        /* the stale entries go before the cache is used again */
        forget_all();
        JT_METRIC_INC(auth_cache_flushes);
        __atomic_store_n(&table->remote, value, __ATOMIC_RELEASE);
        __atomic_store_n(&table->remote_ok, 1, __ATOMIC_RELEASE);
    }
    return 1;
}

static auth_slot *
slot_of(const unsigned char hash[32])
{
    uint32_t h;

    memcpy(&h, hash, sizeof(h));   /* a SHA-256: uniform */
    return &table->slots[h % table->nslots];
}

int
jt_authcache_get(const jt_conf *c, struct jt_redis *redis, jt_arena *a, const unsigned char hash[32],
                 jt_authcache_entry *out, uint64_t *ticket)
{
    auth_slot *s, copy;
    uint32_t seq;
    uint64_t epoch;

    *ticket = 0;
    if (table == NULL || c->auth_cache_ttl_ms == 0 || !poll_remote(c, redis, a)) {
        return 0;
    }
    epoch = epoch_now();
    s = slot_of(hash);
    seq = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
    if ((seq & 1) == 0) {
        memcpy(&copy, s, sizeof(copy));
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&s->seq, __ATOMIC_RELAXED) == seq && copy.epoch == epoch
            && jt_clock_mono_ms() < copy.until_ms && memcmp(copy.hash, hash, 32) == 0) {
            *out = copy.e;
            out->role[JT_AUTHCACHE_ROLE - 1] = '\0';
            JT_METRIC_INC(auth_cache_hits);
            return 1;
        }
    }
    JT_METRIC_INC(auth_cache_misses);
    *ticket = epoch;
    return 0;
}

void
jt_authcache_put(const jt_conf *c, uint64_t ticket, const unsigned char hash[32], const jt_authcache_entry *e,
                 int64_t valid_ms)
{
    auth_slot *s;
    uint32_t seq;

    if (ticket == 0 || valid_ms <= 0 || epoch_now() != ticket) {
        return;   /* not asked for, no time left, or revoked meanwhile */
    }
    if (valid_ms > c->auth_cache_ttl_ms) {
        valid_ms = c->auth_cache_ttl_ms;
    }
    s = slot_of(hash);
    seq = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
    if ((seq & 1) != 0 || !__atomic_compare_exchange_n(&s->seq, &seq, seq + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
        return;   /* another worker is writing it */
    }
    __atomic_thread_fence(__ATOMIC_RELEASE);
    memcpy(s->hash, hash, 32);
    s->e = *e;
    s->until_ms = jt_clock_mono_ms() + valid_ms;
    s->epoch = ticket;
    __atomic_store_n(&s->seq, seq + 2, __ATOMIC_RELEASE);
}

int64_t
jt_authcache_tell(struct jt_redis *redis, jt_arena *a)
{
    redisReply *rep = jt_redis_ready(redis) == 0 ? jt_redis_cmd(redis, a, "INCR %s", JT_AUTHCACHE_KEY) : NULL;

    return rep != NULL && rep->type == REDIS_REPLY_INTEGER ? (int64_t) rep->integer : -1;
}

void
jt_authcache_revoked(struct jt_redis *redis, jt_arena *a)
{
    int64_t now, seen;

    forget_all();
    if ((now = jt_authcache_tell(redis, a)) < 0) {
        jt_log_warn("auth: could not tell the other hosts of a revocation (Redis); their caches forget it"
                    " within [auth] cache_ttl_ms");
        return;
    }
    if (table != NULL) {
        /* ours was the only move since the last poll: this host forgot
         * already, and its next poll need not forget again */
        seen = now - 1;
        (void) __atomic_compare_exchange_n(&table->remote, &seen, now, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
    }
}
