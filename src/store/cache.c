#include "store/cache.h"

#include <stdio.h>
#include <string.h>

static jt_redis_script get_script = {
    "local g = redis.call('GET', KEYS[1]) or '0' "
    "return {g, redis.call('GET', ARGV[1] .. ':' .. g)}",
    "", NULL
};

const char *
jt_cache_get(jt_redis *r, jt_arena *a, const char *gen_key, const char *prefix, jt_cache_slot *slot,
             size_t *len)
{
    redisReply *rep;
    const char *gen = "0";

    slot->redis_ok = 0;
    slot->key[0] = '\0';
    {
        const char *args[2] = { gen_key, prefix };
        rep = jt_redis_eval(r, a, &get_script, 1, 2, args);
    }
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
        return NULL;
    }
    slot->redis_ok = 1;
    if (rep->element[0]->type == REDIS_REPLY_STRING) {
        gen = rep->element[0]->str;
    }
    snprintf(slot->key, sizeof(slot->key), "%s:%s", prefix, gen);
    if (rep->element[1]->type != REDIS_REPLY_STRING) {
        return NULL;
    }
    *len = rep->element[1]->len;
    return rep->element[1]->str;
}

void
jt_cache_put(jt_redis *r, jt_arena *a, const jt_cache_slot *slot, const char *data, size_t len,
             int64_t ttl_ms)
{
    if (!slot->redis_ok || slot->key[0] == '\0' || ttl_ms <= 0) {
        return;
    }
    (void) jt_redis_cmd(r, a, "SET %s %b PX %lld", slot->key, data, len, (long long) ttl_ms);
}

void
jt_cache_bump(jt_redis *r, jt_arena *a, const char *const *gen_keys, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        (void) jt_redis_cmd(r, a, "INCR %s", gen_keys[i]);
    }
}
