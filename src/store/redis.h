/* Redis: one connection per worker with connect and command timeouts. A
 * failed context is freed and replaced (never reused); after a failure the
 * worker waits retry_interval_ms before trying again, so a dead Redis costs
 * one timeout per interval, not one per request. Callers treat NULL as
 * "Redis is down" and degrade; correctness never depends on Redis.
 *
 * With [redis] sentinels the primary is found through Redis Sentinel
 * (hiredis has no client for it): each connect asks the Sentinels for
 * master_name's address, connects, and checks ROLE is master. A failover
 * shows as a dead connection or as a READONLY/MASTERDOWN/LOADING error
 * reply; either drops the connection like any failure, so the next attempt
 * (after retry_interval_ms) asks the Sentinels again. Meanwhile the worker
 * is degraded exactly as with Redis down: locks are not taken, writes go
 * on under the version fence, idempotency falls back to the durable rows. */
#ifndef JT_REDIS_H
#define JT_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "core/arena.h"
#include "core/config.h"

typedef struct jt_redis {
    redisContext  *ctx;
    const jt_conf *conf;
    int            sentinel;      /* [redis] sentinels: the one to ask first */
    int64_t        retry_at_ms;   /* no reconnect before this (jt_clock_mono_ms) */
    uint64_t       errors;
    uint64_t       reconnects;
} jt_redis;

void jt_redis_init(jt_redis *r, const jt_conf *conf);
int  jt_redis_ready(jt_redis *r);     /* 0 connected, -1 down */
void jt_redis_close(jt_redis *r);

/* Runs a command; the reply lives until the arena is reset. NULL when Redis
 * is unreachable (the connection is then dropped). Error replies are
 * returned as REDIS_REPLY_ERROR. */
redisReply *jt_redis_cmd(jt_redis *r, jt_arena *a, const char *fmt, ...);
redisReply *jt_redis_argv(jt_redis *r, jt_arena *a, int argc, const char **argv, const size_t *lens);

/* n commands in one round trip (hiredis's pipelining): command i is
 * argv[i][0..argc[i]-1] with lens[i]; replies[i] is its reply (living
 * until the arena is reset). 0, or -1 when Redis is unreachable (the
 * connection is then dropped; the replies read so far are kept, the
 * others NULL, and commands sent may have run). */
int jt_redis_pipeline(jt_redis *r, jt_arena *a, int n, const int *argc, const char **const *argv,
                      const size_t *const *lens, redisReply **replies);

/* A Lua script run with EVALSHA (loaded once per connection), so its body
 * is not sent and hashed on every call; NOSCRIPT reloads it. */
typedef struct {
    const char *body;
    char        sha[41];
    void       *loaded_on;   /* the context it was loaded on */
} jt_redis_script;

redisReply *jt_redis_eval(jt_redis *r, jt_arena *a, jt_redis_script *s, int nkeys, int nargs,
                          const char **args);

/* How late Redis may answer a blocking command's timeout: it checks them
 * from its cron (10 Hz by default) when no other traffic wakes it. */
#define JT_REDIS_BLOCK_LATE_MS 100

/* BLPOP key, blocking at most ms (> 0) plus Redis's lateness: the reply
 * (nil on timeout), or NULL when Redis is unreachable. The command timeout
 * is stretched for this call when it would be too short. */
redisReply *jt_redis_blpop(jt_redis *r, jt_arena *a, const char *key, int64_t ms);
/* The same on several lists (at most 4): the first that has an element
 * answers [key, element]. */
redisReply *jt_redis_blpop_any(jt_redis *r, jt_arena *a, const char *const *keys, int n, int64_t ms);

#endif
