#include "store/cache.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

const char *
jt_cache_get(jt_redis *r, jt_arena *a, const char *key, const char *guard, jt_cache_slot *slot, size_t *len)
{
    const char *argv[3] = { "MGET", key, guard };
    size_t lens[3] = { 4, strlen(key), strlen(guard) };
    redisReply *rep, *entry, *tag;
    size_t tlen;

    slot->armed = 0;
    rep = jt_redis_argv(r, a, 3, argv, lens);
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
        return NULL;
    }
    entry = rep->element[0];
    tag = rep->element[1];
    tlen = tag->type == REDIS_REPLY_STRING ? tag->len : 0;
    if (tlen > JT_CACHE_TAG_MAX) {
        return NULL;                /* not a tag of ours: never fill */
    }
    if (entry->type == REDIS_REPLY_STRING && entry->len > tlen && entry->str[tlen] == '|'
        && (tlen == 0 || memcmp(entry->str, tag->str, tlen) == 0)) {
        *len = entry->len - tlen - 1;
        return entry->str + tlen + 1;
    }
    /* a miss, or an entry stored under an older tag */
    if (tlen > 0) {
        memcpy(slot->tag, tag->str, tlen);
    }
    slot->tag[tlen] = '\0';
    snprintf(slot->key, sizeof(slot->key), "%s", key);
    slot->armed = strlen(key) < sizeof(slot->key);
    return NULL;
}

void
jt_cache_put(jt_redis *r, jt_arena *a, const jt_cache_slot *slot, const char *data, size_t len, int64_t ttl_ms)
{
    if (!slot->armed || ttl_ms <= 0) {
        return;
    }
    (void) jt_redis_cmd(r, a, "SET %s %s|%b PX %lld", slot->key, slot->tag, data, len, (long long) ttl_ms);
}

void
jt_cache_invalidate(jt_redis *r, jt_arena *a, const char *const *guards, int n)
{
    const char *argv[1 + 2 * 8];
    size_t lens[1 + 2 * 8];
    unsigned char raw[8];
    char tag[2 * sizeof(raw) + 1];
    int i, argc = 1;

    if (n < 1 || n > 8) {
        return;
    }
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(tag, sizeof(tag), raw, sizeof(raw));
    argv[0] = "MSET";
    lens[0] = 4;
    for (i = 0; i < n; i++) {
        argv[argc] = guards[i];
        lens[argc++] = strlen(guards[i]);
        argv[argc] = tag;
        lens[argc++] = sizeof(tag) - 1;
    }
    (void) jt_redis_argv(r, a, argc, argv, lens);
}
