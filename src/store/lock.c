#include "store/lock.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"

/* compare-and-delete: only the holder's token releases the lock */
static jt_redis_script release_script = {
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end",
    "", NULL
};

/* All of a set's keys or none, in one round trip: SET NX each in sorted
 * order; on the first one held by somebody else, drop those just taken
 * (ours, never seen by anybody) and answer its index (1-based) so the
 * caller waits on that key's wake list. Nothing is held while waiting, so
 * no two sets can deadlock. ARGV: token, lease ms. */
static jt_redis_script acquire_script = {
    "for i = 1, #KEYS do\n"
    "  if not redis.call('set', KEYS[i], ARGV[1], 'NX', 'PX', ARGV[2]) then\n"
    "    for j = 1, i - 1 do redis.call('del', KEYS[j]) end\n"
    "    return i\n"
    "  end\n"
    "end\n"
    "return 0",
    "", NULL
};

static jt_redis_script release_all_script = {
    "local K0, A0 = 0, 0\n" JT_LOCK_RELEASE_LUA,
    "", NULL
};

/* Each key on its own: SET NX every one, keep whichever were free. ARGV:
 * token, lease ms. Answers 1 (taken) or 0 (busy) per key. */
static jt_redis_script try_each_script = {
    "local out = {}\n"
    "for i = 1, #KEYS do\n"
    "  out[i] = redis.call('set', KEYS[i], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0\n"
    "end\n"
    "return out",
    "", NULL
};

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}

int
jt_lock_sort_keys(const char **keys, int n)
{
    int i, m = 0;

    qsort(keys, (size_t) n, sizeof(char *), cmp_str);
    for (i = 0; i < n; i++) {
        if (m == 0 || strcmp(keys[m - 1], keys[i]) != 0) {
            keys[m++] = keys[i];
        }
    }
    return m;
}

void
jt_sleep_jitter_ms(int64_t cap_ms)
{
    if (cap_ms <= 0) {
        return;
    }
    jt_clock_sleep_us(randombytes_uniform((uint32_t) (cap_ms * 1000 + 1)));
}

static void
new_token(char out[33])
{
    unsigned char rnd[16];
    randombytes_buf(rnd, sizeof(rnd));
    sodium_bin2hex(out, 33, rnd, sizeof(rnd));
}

void
jt_lock_new_token(char out[33])
{
    new_token(out);
}

int
jt_lock_adopt(jt_arena *a, jt_lockset *ls, const char *const *keys, int n, const char *token)
{
    int i;

    memset(ls, 0, sizeof(*ls));
    if (n > JT_LOCK_MAX) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        if ((ls->keys[i] = jt_pstrdup(a, keys[i])) == NULL) {
            return -1;
        }
    }
    ls->n = jt_lock_sort_keys(ls->keys, n);
    for (i = 0; i < ls->n; i++) {
        size_t len = strlen(ls->keys[i]) + sizeof(":wake");
        char *w = jt_palloc(a, len);
        if (w == NULL) {
            return -1;
        }
        snprintf(w, len, "%s:wake", ls->keys[i]);
        ls->wakes[i] = w;
    }
    snprintf(ls->token, sizeof(ls->token), "%s", token);
    ls->held = 1;
    JT_METRIC_ADD(lock_acquired, (uint64_t) ls->n);
    return 0;
}

/* Waits for a wake token on the list of the key that was busy, or polls
 * near the deadline. A wait is at most JT_LOCK_WAKE_MAX_MS, so a lock
 * nobody will wake us for (a holder that died, a key deleted by hand) is
 * still retried soon; blocking stops JT_REDIS_BLOCK_LATE_MS before the
 * deadline, because Redis may answer a timeout that late. */
static void
wait_for_wake(jt_redis *r, jt_arena *a, const char *wake_key, int64_t left, int64_t *sleep_cap)
{
    int64_t block = left - JT_REDIS_BLOCK_LATE_MS;

    if (block >= JT_LOCK_WAKE_MIN_MS) {
        /* NULL (Redis gone) needs nothing here: the next attempt finds out */
        (void) jt_redis_blpop(r, a, wake_key, block < JT_LOCK_WAKE_MAX_MS ? block : JT_LOCK_WAKE_MAX_MS);
        return;
    }
    /* the last stretch: jittered, growing polls, waiters spread out
     * instead of storming Redis in lock-step */
    jt_sleep_jitter_ms(*sleep_cap < left ? *sleep_cap : left);
    if (*sleep_cap < 20) {
        *sleep_cap *= 2;
    }
}

jt_lock_rc
jt_lock_acquire_all(jt_redis *r, jt_arena *a, jt_lockset *ls, const char *const *keys, int n,
                    int64_t wait_ms, int64_t lease_ms)
{
    int64_t start = jt_clock_mono_ms(), deadline = start + wait_ms, sleep_cap = 2, left;
    const char *args[JT_LOCK_MAX + 2];
    char lease[24];
    redisReply *rep;
    int i;

    memset(ls, 0, sizeof(*ls));
    if (n > JT_LOCK_MAX) {
        n = JT_LOCK_MAX;
    }
    for (i = 0; i < n; i++) {
        /* copied: callers often build keys in short-lived buffers */
        ls->keys[i] = jt_pstrdup(a, keys[i]);
        if (ls->keys[i] == NULL) {
            return JT_LOCK_TIMEOUT;
        }
    }
    ls->n = jt_lock_sort_keys(ls->keys, n);
    for (i = 0; i < ls->n; i++) {
        size_t len = strlen(ls->keys[i]) + sizeof(":wake");
        char *w = jt_palloc(a, len);
        if (w == NULL) {
            return JT_LOCK_TIMEOUT;
        }
        snprintf(w, len, "%s:wake", ls->keys[i]);
        ls->wakes[i] = w;
        args[i] = ls->keys[i];
    }
    new_token(ls->token);
    snprintf(lease, sizeof(lease), "%lld", (long long) lease_ms);
    args[ls->n] = ls->token;
    args[ls->n + 1] = lease;

    for (;;) {
        rep = jt_redis_eval(r, a, &acquire_script, ls->n, ls->n + 2, args);
        if (rep == NULL || rep->type != REDIS_REPLY_INTEGER) {
            /* Redis is gone: whatever a broken script took expires by
             * itself; the version fence carries correctness from here. */
            ls->degraded = 1;
            JT_METRIC_INC(lock_degraded);
            return JT_LOCK_DEGRADED;
        }
        if (rep->integer == 0) {
            break;
        }
        left = deadline - jt_clock_mono_ms();
        if (left <= 0 || rep->integer < 1 || rep->integer > ls->n) {
            if (wait_ms > 0) {
                JT_METRIC_INC(lock_wait_timeouts);   /* a try (0) is not a wait */
            }
            return JT_LOCK_TIMEOUT;
        }
        wait_for_wake(r, a, ls->wakes[rep->integer - 1], left, &sleep_cap);
    }
    ls->held = 1;
    JT_METRIC_INC(lock_acquired);
    jt_histogram_observe(&jt_metrics_get()->lock_wait, (jt_clock_mono_ms() - start) * 1000);
    return JT_LOCK_OK;
}

jt_lock_rc
jt_lock_try_each(jt_redis *r, jt_arena *a, jt_lockset *ls, const char *const *keys, int n, int64_t lease_ms,
                 int *got)
{
    const char *args[JT_LOCK_MAX + 2];
    char lease[24];
    redisReply *rep;
    int i, j, m = 0;

    memset(ls, 0, sizeof(*ls));
    for (i = 0; i < n; i++) {
        got[i] = 0;
    }
    if (n > JT_LOCK_MAX) {
        n = JT_LOCK_MAX;
    }
    for (i = 0; i < n; i++) {
        if ((ls->keys[i] = jt_pstrdup(a, keys[i])) == NULL) {
            return JT_LOCK_TIMEOUT;
        }
    }
    ls->n = jt_lock_sort_keys(ls->keys, n);
    new_token(ls->token);
    snprintf(lease, sizeof(lease), "%lld", (long long) lease_ms);
    for (i = 0; i < ls->n; i++) {
        args[i] = ls->keys[i];
    }
    args[ls->n] = ls->token;
    args[ls->n + 1] = lease;
    rep = jt_redis_eval(r, a, &try_each_script, ls->n, ls->n + 2, args);
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || (int) rep->elements != ls->n) {
        ls->n = 0;
        ls->degraded = 1;
        JT_METRIC_INC(lock_degraded);
        return JT_LOCK_DEGRADED;
    }
    /* keep the taken keys (in their sorted order) with their wake lists */
    for (i = 0; i < ls->n; i++) {
        if (rep->element[i]->type == REDIS_REPLY_INTEGER && rep->element[i]->integer == 1) {
            size_t len = strlen(ls->keys[i]) + sizeof(":wake");
            char *w = jt_palloc(a, len);
            if (w == NULL) {
                continue;   /* its lease runs out by itself */
            }
            snprintf(w, len, "%s:wake", ls->keys[i]);
            ls->keys[m] = ls->keys[i];
            ls->wakes[m++] = w;
        }
    }
    ls->n = m;
    ls->held = m > 0;
    for (i = 0; i < n; i++) {
        for (j = 0; j < m && !got[i]; j++) {
            got[i] = strcmp(keys[i], ls->keys[j]) == 0;
        }
    }
    JT_METRIC_ADD(lock_acquired, (uint64_t) m);
    return JT_LOCK_OK;
}

jt_unlock_rc
jt_lock_release_one(jt_redis *r, jt_arena *a, const char *key, const char *token)
{
    const char *args[2] = { key, token };
    redisReply *rep = jt_redis_eval(r, a, &release_script, 1, 2, args);

    if (rep == NULL || rep->type != REDIS_REPLY_INTEGER) {
        return JT_UNLOCK_UNREACHABLE;
    }
    return rep->integer == 1 ? JT_UNLOCK_RELEASED : JT_UNLOCK_NOT_OURS;
}

void
jt_lock_split(jt_lockset *ls, const char *keep, jt_lockset *rest)
{
    int i, n = 0;

    memset(rest, 0, sizeof(*rest));
    memcpy(rest->token, ls->token, sizeof(rest->token));
    rest->held = ls->held;
    rest->degraded = ls->degraded;
    for (i = 0; i < ls->n; i++) {
        if (strcmp(ls->keys[i], keep) == 0) {
            ls->keys[n] = ls->keys[i];
            ls->wakes[n++] = ls->wakes[i];
        } else {
            rest->keys[rest->n] = ls->keys[i];
            rest->wakes[rest->n++] = ls->wakes[i];
        }
    }
    ls->n = n;
}

int
jt_lock_held_count(const jt_lockset *ls)
{
    return ls != NULL && ls->held ? ls->n : 0;
}

int
jt_lock_release_args(jt_lockset *ls, const char **keys, const char **argv, char ttl[24])
{
    int i, n = jt_lock_held_count(ls);

    for (i = 0; i < n; i++) {
        keys[i] = ls->keys[i];
        keys[n + i] = ls->wakes[i];
    }
    snprintf(ttl, 24, "%d", JT_LOCK_WAKE_TTL_MS);
    argv[0] = ls != NULL ? ls->token : "";
    argv[1] = ttl;
    if (ls != NULL) {
        ls->held = 0;
    }
    return n;
}

int
jt_lock_released(const jt_lockset *ls, const redisReply *rep, int n)
{
    int i, expired = 0;

    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        return 0;   /* Redis is gone: the leases run out by themselves */
    }
    for (i = 0; i < n && i < (int) rep->elements; i++) {
        if (rep->element[i]->type == REDIS_REPLY_INTEGER && rep->element[i]->integer == 0) {
            expired++;
            JT_METRIC_INC(lock_lease_expired);
            jt_log_warn("lock: lease of %s expired before release (the version fence held)", ls->keys[i]);
        }
    }
    return expired;
}

int
jt_lock_release_all(jt_redis *r, jt_arena *a, jt_lockset *ls)
{
    const char *args[2 * JT_LOCK_MAX + 2];
    char ttl[24];
    int n;

    if (!ls->held) {
        return 0;
    }
    n = jt_lock_release_args(ls, args, args + 2 * jt_lock_held_count(ls), ttl);
    return jt_lock_released(ls, jt_redis_eval(r, a, &release_all_script, 2 * n, 2 * n + 2, args), n);
}
