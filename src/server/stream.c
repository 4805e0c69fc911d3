#include "server/stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "domain/events.h"

void
jt_stream_init(jt_stream_reader *s, const char *group, int slot)
{
    char host[64];

    memset(s, 0, sizeof(*s));
    s->group = group;
    if (gethostname(host, sizeof(host)) != 0) {
        snprintf(host, sizeof(host), "host");
    }
    host[sizeof(host) - 1] = '\0';
    snprintf(s->name, sizeof(s->name), "%s:%d", host, slot);
    snprintf(s->claim_cursor, sizeof(s->claim_cursor), "0-0");
}

/* The group from the start of the stream (MKSTREAM: also when there is no
 * stream yet); BUSYGROUP when it exists, which is as good. */
static int
ensure_group(jt_stream_reader *s, jt_redis *r, jt_arena *a)
{
    redisReply *rep;

    if (s->group_ready) {
        return 0;
    }
    rep = jt_redis_cmd(r, a, "XGROUP CREATE " JT_EVENT_STREAM " %s 0 MKSTREAM", s->group);
    if (rep == NULL) {
        return -1;
    }
    s->group_ready = 1;
    return 0;
}

/* Appends the entries of an XREADGROUP or XAUTOCLAIM list to the batch. */
static void
take_entries(jt_stream_batch *b, redisReply *entries, int max)
{
    size_t i, k;

    if (entries == NULL || entries->type != REDIS_REPLY_ARRAY) {
        return;
    }
    for (i = 0; i < entries->elements && b->n < max; i++) {
        redisReply *e = entries->element[i], *f;
        jt_event_copy *cp = &b->copies[b->n];

        if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING) {
            continue;   /* trimmed meanwhile: its event is found in MariaDB */
        }
        b->entries[b->n] = e->element[0]->str;
        b->ids[b->n] = 0;
        memset(cp, 0, sizeof(*cp));
        f = e->element[1];
        for (k = 0; f != NULL && f->type == REDIS_REPLY_ARRAY && k + 1 < f->elements; k += 2) {
            const redisReply *name = f->element[k], *v = f->element[k + 1];

            if (name->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
                continue;
            }
            if (!strcmp(name->str, "id")) {
                b->ids[b->n] = strtoll(v->str, NULL, 10);
            } else if (!strcmp(name->str, "type")) {
                cp->topic = v->str;
            } else if (!strcmp(name->str, "aggregate")) {
                cp->aggregate = strtoll(v->str, NULL, 10);
            } else if (!strcmp(name->str, "to")) {
                cp->has_recipient = 1;
                cp->recipient = strtoll(v->str, NULL, 10);
            } else if (!strcmp(name->str, "at")) {
                cp->at = v->str;
            } else if (!strcmp(name->str, "payload")) {
                cp->payload = v->str;
                cp->payload_len = v->len;
            }
        }
        cp->id = b->ids[b->n];
        if (cp->at == NULL || cp->payload == NULL) {
            cp->topic = NULL;   /* no whole copy: read from MariaDB */
        }
        b->n++;
    }
}

static int
is_error(redisReply *rep, const char *prefix)
{
    return rep != NULL && rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, prefix, strlen(prefix));
}

int
jt_stream_read(jt_stream_reader *s, const jt_conf *c, jt_redis *r, jt_arena *a, int64_t block_ms, int max,
               jt_stream_batch *b)
{
    int64_t now = jt_clock_mono_ms();
    redisReply *rep;

    b->n = 0;
    if (max > JT_STREAM_BATCH_MAX) {
        max = JT_STREAM_BATCH_MAX;
    }
    if (ensure_group(s, r, a) != 0) {
        return -1;
    }
    if (block_ms > 0) {
        rep = jt_redis_cmd(r, a, "XREADGROUP GROUP %s %s COUNT %d BLOCK %lld STREAMS " JT_EVENT_STREAM " >", s->group,
                           s->name, max, (long long) block_ms);
    } else {
        rep = jt_redis_cmd(r, a, "XREADGROUP GROUP %s %s COUNT %d STREAMS " JT_EVENT_STREAM " >", s->group, s->name,
                           max);
    }
    if (rep == NULL) {
        s->group_ready = 0;
        return -1;
    }
    if (is_error(rep, "NOGROUP")) {
        s->group_ready = 0;   /* Redis lost it: create it again next time */
        return 0;
    }
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 && rep->element[0]->type == REDIS_REPLY_ARRAY
        && rep->element[0]->elements == 2) {
        take_entries(b, rep->element[0]->element[1], max);
    }
    if (b->n == 0 && now >= s->next_claim_ms) {
        /* entries another member took and never acknowledged */
        rep = jt_redis_cmd(r, a, "XAUTOCLAIM " JT_EVENT_STREAM " %s %s %lld %s COUNT %d", s->group, s->name,
                           (long long) c->ev_claim_idle_ms, s->claim_cursor, max);
        if (rep == NULL) {
            return -1;
        }
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2) {
            if (rep->element[0]->type == REDIS_REPLY_STRING) {
                snprintf(s->claim_cursor, sizeof(s->claim_cursor), "%s", rep->element[0]->str);
            }
            take_entries(b, rep->element[1], max);
        } else if (is_error(rep, "NOGROUP")) {
            s->group_ready = 0;
        }
        /* the whole pending list is walked every claim_idle_ms / 4 at most */
        if (strcmp(s->claim_cursor, "0-0") == 0 || b->n == 0) {
            s->next_claim_ms = now + (c->ev_claim_idle_ms / 4 > 100 ? c->ev_claim_idle_ms / 4 : 100);
        }
    }
    return 0;
}

void
jt_stream_ack(jt_stream_reader *s, jt_redis *r, jt_arena *a, const jt_stream_batch *b)
{
    const char *argv[3 + JT_STREAM_BATCH_MAX];
    size_t lens[3 + JT_STREAM_BATCH_MAX];
    int i;

    if (b->n == 0) {
        return;
    }
    argv[0] = "XACK";
    argv[1] = JT_EVENT_STREAM;
    argv[2] = s->group;
    for (i = 0; i < b->n; i++) {
        argv[3 + i] = b->entries[i];
    }
    for (i = 0; i < 3 + b->n; i++) {
        lens[i] = strlen(argv[i]);
    }
    (void) jt_redis_argv(r, a, 3 + b->n, argv, lens);
}
