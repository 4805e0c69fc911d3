#include "store/lock.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "core/log.h"
#include "core/metrics.h"

/* compare-and-delete: only the holder's token releases the lock */
static jt_redis_script release_script = {
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end",
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

static int64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
jt_sleep_jitter_ms(int64_t cap_ms)
{
    struct timespec ts;
    uint32_t us;

    if (cap_ms <= 0) {
        return;
    }
    us = randombytes_uniform((uint32_t) (cap_ms * 1000 + 1));
    ts.tv_sec = us / 1000000;
    ts.tv_nsec = (long) (us % 1000000) * 1000;
    nanosleep(&ts, NULL);
}

static void
new_token(char out[33])
{
    unsigned char rnd[16];
    randombytes_buf(rnd, sizeof(rnd));
    sodium_bin2hex(out, 33, rnd, sizeof(rnd));
}

jt_lock_rc
jt_lock_acquire_all(jt_redis *r, jt_arena *a, jt_lockset *ls, const char *const *keys, int n,
                    int64_t wait_ms, int64_t lease_ms)
{
    int64_t deadline = mono_ms() + wait_ms, sleep_cap = 2;
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
        new_token(ls->tokens[i]);
        for (;;) {
            redisReply *rep = jt_redis_cmd(r, a, "SET %s %s NX PX %lld", ls->keys[i], ls->tokens[i],
                                           (long long) lease_ms);
            if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
                /* Redis is gone: what we hold will expire by itself; the
                 * version fence carries correctness from here. */
                jt_lock_release_all(r, a, ls);
                ls->degraded = 1;
                JT_METRIC_INC(lock_degraded);
                return JT_LOCK_DEGRADED;
            }
            if (rep->type == REDIS_REPLY_STATUS) {
                ls->held[i] = 1;
                break;
            }
            if (mono_ms() >= deadline) {
                jt_lock_release_all(r, a, ls);
                JT_METRIC_INC(lock_wait_timeouts);
                return JT_LOCK_TIMEOUT;
            }
            /* jittered, growing polls: waiters spread out instead of
             * storming Redis in lock-step */
            jt_sleep_jitter_ms(sleep_cap);
            if (sleep_cap < 20) {
                sleep_cap *= 2;
            }
        }
    }
    JT_METRIC_INC(lock_acquired);
    jt_histogram_observe(&jt_metrics_get()->lock_wait, (mono_ms() - (deadline - wait_ms)) * 1000);
    return JT_LOCK_OK;
}

int
jt_lock_release_one(jt_redis *r, jt_arena *a, const char *key, const char *token)
{
    const char *args[2] = { key, token };
    redisReply *rep = jt_redis_eval(r, a, &release_script, 1, 2, args);

    if (rep == NULL || rep->type != REDIS_REPLY_INTEGER) {
        return -1;
    }
    return rep->integer == 1;
}

int
jt_lock_release_all(jt_redis *r, jt_arena *a, jt_lockset *ls)
{
    int i, expired = 0;

    for (i = ls->n - 1; i >= 0; i--) {
        if (!ls->held[i]) {
            continue;
        }
        ls->held[i] = 0;
        if (jt_lock_release_one(r, a, ls->keys[i], ls->tokens[i]) == 0) {
            expired++;
            JT_METRIC_INC(lock_lease_expired);
            jt_log_warn("lock: lease of %s expired before release (the version fence held)", ls->keys[i]);
        }
    }
    return expired;
}
