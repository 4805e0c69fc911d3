#include "store/redis.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"

static struct timeval
ms_tv(int64_t ms)
{
    struct timeval tv = { (time_t) (ms / 1000), (suseconds_t) ((ms % 1000) * 1000) };
    return tv;
}

void
jt_redis_init(jt_redis *r, const jt_conf *conf)
{
    memset(r, 0, sizeof(*r));
    r->conf = conf;
}

void
jt_redis_close(jt_redis *r)
{
    if (r->ctx != NULL) {
        redisFree(r->ctx);
        r->ctx = NULL;
    }
}

static void
redis_failed(jt_redis *r, const char *why)
{
    r->errors++;
    JT_METRIC_INC(redis_errors);
    jt_log_warn("redis: %s; degraded for %lld ms", why, (long long) r->conf->redis_retry_interval_ms);
    jt_redis_close(r);
    r->retry_at_ms = jt_clock_mono_ms() + r->conf->redis_retry_interval_ms;
}

/* Asks the Sentinels, in turn from the one that answered last, for the
 * address of the primary named [redis] master_name; each is given
 * sentinel_timeout_ms to connect and as much to answer, so a dead Sentinel
 * costs one timeout, not an outage. 0 with host and *port set, or -1. */
static int
sentinel_resolve(jt_redis *r, char *host, size_t hlen, int *port)
{
    const jt_conf *c = r->conf;
    int k, n = c->redis_nsentinels;

    for (k = 0; k < n; k++) {
        int i = (r->sentinel + k) % n;
        const jt_node *s = &c->redis_sentinel_nodes[i];
        redisContext *sc = redisConnectWithTimeout(s->host, s->port, ms_tv(c->redis_sentinel_timeout_ms));
        redisReply *rep = NULL;

        if (sc != NULL && !sc->err && redisSetTimeout(sc, ms_tv(c->redis_sentinel_timeout_ms)) == REDIS_OK) {
            rep = redisCommand(sc, "SENTINEL get-master-addr-by-name %s", c->redis_master_name);
        }
        if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2
            && rep->element[0]->type == REDIS_REPLY_STRING && rep->element[1]->type == REDIS_REPLY_STRING
            && rep->element[0]->len < hlen) {
            memcpy(host, rep->element[0]->str, rep->element[0]->len);
            host[rep->element[0]->len] = '\0';
            *port = atoi(rep->element[1]->str);
            r->sentinel = i;
            freeReplyObject(rep);
            redisFree(sc);
            return *port > 0 ? 0 : -1;
        }
        jt_log_warn("redis: sentinel %s:%d gave no primary for '%s'%s%s", s->host, s->port, c->redis_master_name,
                    sc != NULL && sc->err ? ": " : "", sc != NULL && sc->err ? sc->errstr : "");
        if (rep != NULL) {
            freeReplyObject(rep);
        }
        if (sc != NULL) {
            redisFree(sc);
        }
    }
    return -1;
}

/* Whether c is a primary: a Sentinel's answer may be a moment old (the
 * primary it names was just demoted, or is still being promoted), and
 * writing to a replica would fail on every command. */
static int
is_primary(redisContext *c)
{
    redisReply *rep = redisCommand(c, "ROLE");
    int ok = rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0
             && rep->element[0]->type == REDIS_REPLY_STRING && !strcmp(rep->element[0]->str, "master");

    if (rep != NULL) {
        freeReplyObject(rep);
    }
    return ok;
}

int
jt_redis_ready(jt_redis *r)
{
    redisContext *c;
    char host[256] = "";
    int port = 0;

    if (r->ctx != NULL) {
        return 0;
    }
    if (jt_clock_mono_ms() < r->retry_at_ms) {
        return -1;
    }
    if (r->conf->redis_nsentinels > 0) {
        if (sentinel_resolve(r, host, sizeof(host), &port) != 0) {
            redis_failed(r, "no sentinel named a primary");
            return -1;
        }
        c = redisConnectWithTimeout(host, port, ms_tv(r->conf->redis_connect_timeout_ms));
    } else if (r->conf->redis_socket[0]) {
        c = redisConnectUnixWithTimeout(r->conf->redis_socket, ms_tv(r->conf->redis_connect_timeout_ms));
    } else {
        c = redisConnectWithTimeout(r->conf->redis_host, (int) r->conf->redis_port,
                                    ms_tv(r->conf->redis_connect_timeout_ms));
    }
    if (c == NULL || c->err) {
        char why[160];
        snprintf(why, sizeof(why), "cannot connect: %s", c ? c->errstr : "out of memory");
        if (c) {
            redisFree(c);
        }
        redis_failed(r, why);
        return -1;
    }
    if (redisSetTimeout(c, ms_tv(r->conf->redis_timeout_ms)) != REDIS_OK) {
        redisFree(c);
        redis_failed(r, "cannot set timeout");
        return -1;
    }
    if (r->conf->redis_nsentinels > 0 && !is_primary(c)) {
        char why[320];
        snprintf(why, sizeof(why), "%s:%d, named by a sentinel, is not a primary (yet)", host, port);
        redisFree(c);
        redis_failed(r, why);
        return -1;
    }
    r->ctx = c;
    r->reconnects++;
    JT_METRIC_INC(redis_reconnects);
    return 0;
}

static void
free_reply(void *p)
{
    freeReplyObject(p);
}

/* An error reply that means "this server cannot take writes now": a
 * replica (READONLY, also inside a script's error), a replica cut off
 * from its primary (MASTERDOWN), or a server loading its data (LOADING). */
static int
demoted(const char *err)
{
    return strstr(err, "READONLY") != NULL || !strncmp(err, "MASTERDOWN", 10) || !strncmp(err, "LOADING", 7);
}

static redisReply *
adopt(jt_redis *r, jt_arena *a, redisReply *reply)
{
    if (reply == NULL) {
        char why[160];
        snprintf(why, sizeof(why), "command failed: %s", r->ctx ? r->ctx->errstr : "?");
        redis_failed(r, why);
        return NULL;
    }
    if (jt_arena_on_reset(a, free_reply, reply) != 0) {
        freeReplyObject(reply);
        return NULL;
    }
    if (reply->type == REDIS_REPLY_ERROR && demoted(reply->str)) {
        /* the server we hold was demoted in a failover (or is loading):
         * this command failed like a dead Redis, and the next one asks the
         * Sentinels again */
        char why[160];
        snprintf(why, sizeof(why), "not the primary any more: %.100s", reply->str);
        redis_failed(r, why);
    }
    return reply;
}

redisReply *
jt_redis_cmd(jt_redis *r, jt_arena *a, const char *fmt, ...)
{
    va_list ap;
    redisReply *reply;

    if (jt_redis_ready(r) != 0) {
        return NULL;
    }
    va_start(ap, fmt);
    reply = redisvCommand(r->ctx, fmt, ap);
    va_end(ap);
    return adopt(r, a, reply);
}

redisReply *
jt_redis_argv(jt_redis *r, jt_arena *a, int argc, const char **argv, const size_t *lens)
{
    if (jt_redis_ready(r) != 0) {
        return NULL;
    }
    return adopt(r, a, redisCommandArgv(r->ctx, argc, argv, lens));
}

int
jt_redis_pipeline(jt_redis *r, jt_arena *a, int n, const int *argc, const char **const *argv,
                  const size_t *const *lens, redisReply **replies)
{
    int i;

    for (i = 0; i < n; i++) {
        replies[i] = NULL;
    }
    if (jt_redis_ready(r) != 0) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (redisAppendCommandArgv(r->ctx, argc[i], argv[i], lens[i]) != REDIS_OK) {
            redis_failed(r, "cannot queue a command");
            return -1;
        }
    }
    for (i = 0; i < n; i++) {
        void *rep = NULL;
        if (redisGetReply(r->ctx, &rep) != REDIS_OK || rep == NULL) {
            adopt(r, a, NULL);   /* drops the connection, logs why */
            return -1;
        }
        if ((replies[i] = adopt(r, a, rep)) == NULL) {
            return -1;
        }
    }
    return 0;
}

static int
script_load(jt_redis *r, jt_arena *a, jt_redis_script *s)
{
    redisReply *rep = jt_redis_cmd(r, a, "SCRIPT LOAD %s", s->body);

    if (rep == NULL || rep->type != REDIS_REPLY_STRING || rep->len != 40) {
        return -1;
    }
    memcpy(s->sha, rep->str, 40);
    s->sha[40] = '\0';
    s->loaded_on = r->ctx;
    return 0;
}

redisReply *
jt_redis_eval(jt_redis *r, jt_arena *a, jt_redis_script *s, int nkeys, int nargs, const char **args)
{
    const char *small_argv[16], **argv = small_argv;
    size_t small_lens[16], *lens = small_lens;
    char nk[12];
    redisReply *rep;
    int i, attempt;

    if (nargs < 0 || jt_redis_ready(r) != 0) {
        return NULL;
    }
    if (nargs + 3 > 16) {
        /* a lock set of many keys: its key names plus their wake lists */
        argv = jt_palloc(a, sizeof(char *) * (size_t) (nargs + 3));
        lens = jt_palloc(a, sizeof(size_t) * (size_t) (nargs + 3));
        if (argv == NULL || lens == NULL) {
            return NULL;
        }
    }
    snprintf(nk, sizeof(nk), "%d", nkeys);
    for (attempt = 0; attempt < 2; attempt++) {
        if ((s->loaded_on != r->ctx || s->sha[0] == '\0') && script_load(r, a, s) != 0) {
            return NULL;
        }
        argv[0] = "EVALSHA";
        argv[1] = s->sha;
        argv[2] = nk;
        for (i = 0; i < nargs; i++) {
            argv[3 + i] = args[i];
        }
        for (i = 0; i < nargs + 3; i++) {
            lens[i] = strlen(argv[i]);
        }
        rep = jt_redis_argv(r, a, nargs + 3, argv, lens);
        if (rep != NULL && rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "NOSCRIPT", 8)) {
            s->sha[0] = '\0';   /* Redis restarted or flushed its scripts */
            continue;
        }
        return rep;
    }
    return NULL;
}

redisReply *
jt_redis_blpop(jt_redis *r, jt_arena *a, const char *key, int64_t ms)
{
    return jt_redis_blpop_any(r, a, &key, 1, ms);
}

redisReply *
jt_redis_blpop_any(jt_redis *r, jt_arena *a, const char *const *keys, int n, int64_t ms)
{
    int64_t need = ms + JT_REDIS_BLOCK_LATE_MS;
    const char *argv[6];
    size_t lens[6];
    int stretch, i;
    char secs[32];
    redisReply *rep;

    if (ms <= 0 || n < 1 || n > 4 || jt_redis_ready(r) != 0) {
        return NULL;    /* 0 would block for ever */
    }
    /* a block longer than the command timeout is not a dead Redis: stretch
     * the timeout for this one call (the default leaves room, so no syscall) */
    stretch = need > r->conf->redis_timeout_ms;
    if (stretch && redisSetTimeout(r->ctx, ms_tv(need + r->conf->redis_timeout_ms)) != REDIS_OK) {
        redis_failed(r, "cannot set timeout");
        return NULL;
    }
    snprintf(secs, sizeof(secs), "%lld.%03lld", (long long) (ms / 1000), (long long) (ms % 1000));
    argv[0] = "BLPOP";
    for (i = 0; i < n; i++) {
        argv[i + 1] = keys[i];
    }
    argv[n + 1] = secs;
    for (i = 0; i < n + 2; i++) {
        lens[i] = strlen(argv[i]);
    }
    rep = jt_redis_argv(r, a, n + 2, argv, lens);
    if (stretch && r->ctx != NULL && redisSetTimeout(r->ctx, ms_tv(r->conf->redis_timeout_ms)) != REDIS_OK) {
        redis_failed(r, "cannot set timeout");
    }
    return rep;
}
