#include "store/waitq.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>


/* KEYS: queue, payload key, then the lock keys; ARGV: id, payload, wait ms,
 * ttl ms, token, lease ms. Answers {0, entries queued} (every lock taken) or
 * {1, element, first lock was free}; the entry's deadline is Redis's clock
 * plus wait ms. */
static jt_redis_script join_script = {
    "local got = 0\n"
    "for i = 3, #KEYS do\n"
    "  if redis.call('set', KEYS[i], ARGV[5], 'NX', 'PX', ARGV[6]) then got = got + 1 else break end\n"
    "end\n"
    "if got == #KEYS - 2 then return {0, redis.call('llen', KEYS[1])} end\n"
    "for i = 3, 2 + got do redis.call('del', KEYS[i]) end\n"
    "local t = redis.call('time')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "redis.call('set', KEYS[2], ARGV[2], 'PX', ARGV[4])\n"
    "local el = tostring(now + tonumber(ARGV[3])) .. '|' .. ARGV[1]\n"
    "redis.call('rpush', KEYS[1], el)\n"
    "redis.call('pexpire', KEYS[1], ARGV[4])\n"
    "return {1, el, got >= 1 and 1 or 0}",
    "", NULL
};

/* KEYS: queue, payload key; ARGV: element */
static jt_redis_script withdraw_script = {
    "if redis.call('lrem', KEYS[1], 1, ARGV[1]) == 1 then\n"
    "  redis.call('del', KEYS[2])\n"
    "  return 1\n"
    "end\n"
    "return 0",
    "", NULL
};

/* KEYS: queue; ARGV: max, reply ttl ms. Answers [element, payload, ...]
 * of the live entries taken; an expired one gets the reply "X" instead. */
static jt_redis_script claim_script = {
    "local t = redis.call('time')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local out = {}\n"
    "local max = tonumber(ARGV[1])\n"
    "while #out < 2 * max do\n"
    "  local el = redis.call('lpop', KEYS[1])\n"
    "  if not el then break end\n"
    "  local sep = string.find(el, '|', 1, true)\n"
    "  local id = sep and string.sub(el, sep + 1) or ''\n"
    "  local due = sep and tonumber(string.sub(el, 1, sep - 1)) or 0\n"
    "  local p = due > now and redis.call('get', 'wq:p:' .. id) or false\n"
    "  if p then\n"
    "    out[#out + 1] = el\n"
    "    out[#out + 1] = p\n"
    "  else\n"
    "    redis.call('rpush', 'wq:r:' .. id, 'X')\n"
    "    redis.call('pexpire', 'wq:r:' .. id, ARGV[2])\n"
    "    redis.call('del', 'wq:p:' .. id)\n"
    "  end\n"
    "end\n"
    "return out",
    "", NULL
};

/* KEYS: queue; ARGV: elements in queue order, pushed back at the head */
static jt_redis_script requeue_script = {
    "for i = #ARGV, 1, -1 do redis.call('lpush', KEYS[1], ARGV[i]) end\n"
    "return #ARGV",
    "", NULL
};

/* KEYS: n reply keys, n payload keys, then a lock set's (lock.h); ARGV: n,
 * the replies' ttl ms, n answers, then the set's. */
static jt_redis_script answer_script = {
    "local na = tonumber(ARGV[1])\n"
    "for i = 1, na do\n"
    "  redis.call('rpush', KEYS[i], ARGV[2 + i])\n"
    "  redis.call('pexpire', KEYS[i], ARGV[2])\n"
    "  redis.call('del', KEYS[na + i])\n"
    "end\n"
    "local K0, A0 = 2 * na, na + 2\n"
    JT_LOCK_RELEASE_LUA,
    "", NULL
};

static void
keys_of(const char *id, char *reply, size_t rlen, char *payload, size_t plen)
{
    snprintf(reply, rlen, "wq:r:%s", id);
    snprintf(payload, plen, "wq:p:%s", id);
}


jt_waitq_join_rc
jt_waitq_join(jt_redis *r, jt_arena *a, const char *queue, jt_waitq_entry *e, const char *payload, int64_t wait_ms,
              int64_t ttl_ms, const char *const *locks, int nlocks, const char *token, int64_t lease_ms,
              int *first_free)
{
    unsigned char rnd[16];
    char wait[24], ttl[24], lease[24];
    const char *args[12];
    redisReply *rep;
    int i;

    if (nlocks < 1 || nlocks > 4) {
        return JT_WAITQ_JOIN_DOWN;
    }
    if (e->id[0] == '\0') {
        randombytes_buf(rnd, sizeof(rnd));
        sodium_bin2hex(e->id, sizeof(e->id), rnd, sizeof(rnd));
    }
    keys_of(e->id, e->reply_key, sizeof(e->reply_key), e->payload_key, sizeof(e->payload_key));
    snprintf(wait, sizeof(wait), "%lld", (long long) wait_ms);
    snprintf(ttl, sizeof(ttl), "%lld", (long long) ttl_ms);
    snprintf(lease, sizeof(lease), "%lld", (long long) lease_ms);
    args[0] = queue;
    args[1] = e->payload_key;
    for (i = 0; i < nlocks; i++) {
        args[2 + i] = locks[i];
    }
    args[2 + nlocks] = e->id;
    args[3 + nlocks] = payload;
    args[4 + nlocks] = wait;
    args[5 + nlocks] = ttl;
    args[6 + nlocks] = token;
    args[7 + nlocks] = lease;
    rep = jt_redis_eval(r, a, &join_script, 2 + nlocks, 8 + nlocks, args);
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1
        || rep->element[0]->type != REDIS_REPLY_INTEGER) {
        return JT_WAITQ_JOIN_DOWN;
    }
    if (rep->element[0]->integer == 0) {
        /* no answer of the count (a script of an older release) reads as
         * "maybe someone waits": the leader then claims, as it always did */
        e->queued = rep->elements < 2 || rep->element[1]->type != REDIS_REPLY_INTEGER || rep->element[1]->integer != 0;
        return JT_WAITQ_JOIN_LOCKED;
    }
    if (rep->elements != 3 || rep->element[1]->type != REDIS_REPLY_STRING
        || rep->element[1]->len >= sizeof(e->element)) {
        return JT_WAITQ_JOIN_DOWN;
    }
    memcpy(e->element, rep->element[1]->str, rep->element[1]->len);
    e->element[rep->element[1]->len] = '\0';
    *first_free = rep->element[2]->type == REDIS_REPLY_INTEGER && rep->element[2]->integer == 1;
    return JT_WAITQ_JOIN_QUEUED;
}

int
jt_waitq_withdraw(jt_redis *r, jt_arena *a, const char *queue, const jt_waitq_entry *e)
{
    const char *args[3] = { queue, e->payload_key, e->element };
    redisReply *rep = jt_redis_eval(r, a, &withdraw_script, 2, 3, args);

    if (rep == NULL || rep->type != REDIS_REPLY_INTEGER) {
        return -1;
    }
    return rep->integer == 1 ? 1 : 0;
}

int
jt_waitq_claim(jt_redis *r, jt_arena *a, const char *queue, int max, int64_t reply_ttl_ms, jt_waitq_item *out)
{
    char smax[16], ttl[24];
    const char *args[3];
    redisReply *rep;
    size_t i;
    int n = 0;

    if (max > JT_WAITQ_MAX_CLAIM) {
        max = JT_WAITQ_MAX_CLAIM;
    }
    if (max <= 0) {
        return 0;
    }
    snprintf(smax, sizeof(smax), "%d", max);
    snprintf(ttl, sizeof(ttl), "%lld", (long long) reply_ttl_ms);
    args[0] = queue;
    args[1] = smax;
    args[2] = ttl;
    rep = jt_redis_eval(r, a, &claim_script, 1, 3, args);
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        return -1;
    }
    for (i = 0; i + 1 < rep->elements && n < max; i += 2) {
        redisReply *el = rep->element[i], *pl = rep->element[i + 1];
        const char *sep;
        char *rk, *pk;

        if (el->type != REDIS_REPLY_STRING || pl->type != REDIS_REPLY_STRING
            || (sep = memchr(el->str, '|', el->len)) == NULL) {
            continue;
        }
        rk = jt_palloc(a, 48);
        pk = jt_palloc(a, 48);
        if (rk == NULL || pk == NULL) {
            return -1;
        }
        out[n].element = el->str;
        out[n].id = sep + 1;
        out[n].payload = pl->str;
        keys_of(sep + 1, rk, 48, pk, 48);
        out[n].reply_key = rk;
        out[n].payload_key = pk;
        n++;
    }
    return n;
}

jt_waitq_rc
jt_waitq_requeue(jt_redis *r, jt_arena *a, const char *queue, const jt_waitq_item *items, int n)
{
    const char *args[JT_WAITQ_MAX_CLAIM + 1];
    redisReply *rep;
    int i;

    if (n <= 0) {
        return JT_WAITQ_OK;
    }
    args[0] = queue;
    for (i = 0; i < n && i < JT_WAITQ_MAX_CLAIM; i++) {
        args[i + 1] = items[i].element;
    }
    rep = jt_redis_eval(r, a, &requeue_script, 1, i + 1, args);
    return rep != NULL && rep->type == REDIS_REPLY_INTEGER ? JT_WAITQ_OK : JT_WAITQ_DOWN;
}

jt_waitq_rc
jt_waitq_answer(jt_redis *r, jt_arena *a, const jt_waitq_item *const *items, const char *const *answers, int n,
                int64_t ttl_ms, jt_lockset *ls)
{
    const char *args[3 * JT_WAITQ_MAX_CLAIM + 2 * JT_LOCK_MAX + 4], **set;
    char ttl[24], na[12], wake_ttl[24];
    redisReply *rep;
    int i, m;

    if (n > JT_WAITQ_MAX_CLAIM) {
        n = JT_WAITQ_MAX_CLAIM;
    }
    if (n <= 0) {
        n = 0;
        if (jt_lock_held_count(ls) == 0) {
            return JT_WAITQ_OK;
        }
    }
    m = jt_lock_held_count(ls);
    snprintf(na, sizeof(na), "%d", n);
    snprintf(ttl, sizeof(ttl), "%lld", (long long) ttl_ms);
    set = args + 2 * n + 2 * m;   /* the ARGV: n, ttl, answers, then the set's */
    for (i = 0; i < n; i++) {
        args[i] = items[i]->reply_key;
        args[n + i] = items[i]->payload_key;
        set[2 + i] = answers[i];
    }
    set[0] = na;
    set[1] = ttl;
    (void) jt_lock_release_args(ls, args + 2 * n, set + 2 + n, wake_ttl);
    rep = jt_redis_eval(r, a, &answer_script, 2 * n + 2 * m, 2 * n + 2 * m + n + 4, args);
    (void) jt_lock_released(ls, rep, m);
    return rep != NULL && rep->type == REDIS_REPLY_ARRAY ? JT_WAITQ_OK : JT_WAITQ_DOWN;
}

int
jt_waitq_answer_now(jt_redis *r, jt_arena *a, const jt_waitq_entry *e, const char **answer)
{
    redisReply *rep = jt_redis_cmd(r, a, "LPOP %s", e->reply_key);

    if (rep == NULL) {
        return -1;
    }
    if (rep->type != REDIS_REPLY_STRING) {
        return 0;
    }
    *answer = rep->str;
    return 1;
}

jt_waitq_wait
jt_waitq_await(jt_redis *r, jt_arena *a, const jt_waitq_entry *e, const char *wake_key, int64_t ms,
               const char **answer)
{
    const char *keys[2] = { e->reply_key, wake_key };
    redisReply *rep;

    rep = jt_redis_blpop_any(r, a, keys, 2, ms);
    if (rep == NULL) {
        return JT_WAITQ_GONE;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 || rep->element[0]->type != REDIS_REPLY_STRING
        || rep->element[1]->type != REDIS_REPLY_STRING) {
        return JT_WAITQ_QUIET;
    }
    if (strcmp(rep->element[0]->str, e->reply_key) == 0) {
        *answer = rep->element[1]->str;
        return JT_WAITQ_ANSWERED;
    }
    return JT_WAITQ_WOKEN;
}
