#include "server/hooks.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "domain/events.h"
#include "domain/webhooks.h"
#include "server/child.h"
#include "server/stream.h"
#include "server/worker.h"
#include "store/db.h"
#include "store/redis.h"

#define BLOCK_MS 200
#define CLAIM_EVERY_MS 200
#define LOST_EVERY_MS 1000
#define ANSWER_MAX (64 * 1024)   /* what we read of a receiver's answer, then stop */
#define MAX_CALLS 256

/* One call in flight. A slot keeps its curl handle from call to call
 * (reset before each): making one costs more than the call itself when
 * the receiver answers at once. */
typedef struct {
    CURL              *easy;
    struct curl_slist *headers;
    jt_webhook_call    call;
    int64_t            started_ms;
    size_t             answered;   /* bytes of the answer read */
    int                used;
} slot_call;

static size_t
discard(char *p, size_t size, size_t n, void *data)
{
    slot_call *s = data;

    (void) p;
    s->answered += size * n;
    return s->answered > ANSWER_MAX ? 0 : size * n;
}

static struct curl_slist *
call_headers(const jt_webhook_call *k)
{
    char h[4][160];
    const char *lines[] = { "Content-Type: application/json", "User-Agent: jangteo-webhooks/1", "Expect:", h[0],
                            h[1], h[2], NULL };
    struct curl_slist *l = NULL, *t;
    int i;

    snprintf(h[0], sizeof(h[0]), "webhook-id: %s", k->id_header);
    snprintf(h[1], sizeof(h[1]), "webhook-timestamp: %s", k->ts_header);
    snprintf(h[2], sizeof(h[2]), "webhook-signature: %s", k->sig_header);
    for (i = 0; lines[i] != NULL; i++) {
        if ((t = curl_slist_append(l, lines[i])) == NULL) {
            curl_slist_free_all(l);
            return NULL;
        }
        l = t;
    }
    return l;
}

/* Starts the call in s (its jt_webhook_call filled): 0, or -1 when curl
 * cannot even begin it (recorded as an attempt without an answer). */
static int
start_call(const jt_conf *c, CURLM *multi, slot_call *s)
{
    const jt_webhook_call *k = &s->call;

    if (s->easy != NULL) {
        curl_easy_reset(s->easy);
    } else if ((s->easy = curl_easy_init()) == NULL) {
        return -1;
    }
    if ((s->headers = call_headers(k)) == NULL) {
        return -1;
    }
    curl_easy_setopt(s->easy, CURLOPT_URL, k->url);
    curl_easy_setopt(s->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(s->easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(s->easy, CURLOPT_PROXY, "");          /* no proxy from the environment */
    curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT_MS, (long) c->wh_connect_timeout_ms);
    curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, (long) c->wh_timeout_ms);
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(s->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, k->body);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) k->body_len);
    curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
    s->started_ms = jt_clock_mono_ms();
    s->answered = 0;
    return curl_multi_add_handle(multi, s->easy) == CURLM_OK ? 0 : -1;
}

/* Ends the call in s; its handle stays for the slot's next call. */
static void
end_call(CURLM *multi, slot_call *s)
{
    CURL *easy = s->easy;

    if (easy != NULL) {
        curl_multi_remove_handle(multi, easy);
    }
    curl_slist_free_all(s->headers);
    webhooks_call_free(&s->call);
    memset(s, 0, sizeof(*s));
    s->easy = easy;
}

/* Outcomes wait here to be recorded together, a batch per transaction:
 * at most FINISH_EVERY_MS after the first, or FINISH_MAX of them. A call's
 * slot is free at once (its receiver may be called again: the version its
 * claim wrote fences the record either way); a consumer killed before it
 * recorded them calls those again once their leases lapse, as after any
 * crash: at least once. */
#define FINISH_MAX 64
#define FINISH_EVERY_MS 50

typedef struct {
    jt_webhook_call    calls[FINISH_MAX];
    jt_webhook_outcome out[FINISH_MAX];
    int                n;
    int64_t            since_ms;
} finished;

static void
flush_finished(const jt_conf *c, jt_db *db, jt_arena *a, finished *f)
{
    webhooks_finish(c, db, a, f->out, f->n);
    f->n = 0;
}

/* Takes every call curl has finished into f (recording f when it is full)
 * and frees their slots; how many. *dry: one of them was the last call
 * queued to its webhook (none of its calls waits in ready[0..nready-1]). */
static int
reap_calls(const jt_conf *c, jt_db *db, jt_arena *a, CURLM *multi, finished *f, const jt_webhook_call *ready,
           int nready, int *dry)
{
    CURLMsg *msg;
    int left, k, n = 0;

    while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
        slot_call *s = NULL;
        long code = 0;

        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &s);
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
        if (s == NULL) {
            continue;
        }
        if (f->n == FINISH_MAX) {
            flush_finished(c, db, a, f);
        }
        if (f->n == 0) {
            f->since_ms = jt_clock_mono_ms();
        }
        /* an answer's status counts even if we stopped reading its body */
        f->calls[f->n] = s->call;
        f->calls[f->n].body = NULL;   /* freed with the slot: the record needs no body */
        f->out[f->n].call = &f->calls[f->n];
        f->out[f->n].status_code = (int) code;
        f->out[f->n].error = code > 0 ? NULL : curl_easy_strerror(msg->data.result);
        f->out[f->n].duration_ms = jt_clock_mono_ms() - s->started_ms;
        f->n++;
        for (k = 0; k < nready && ready[k].webhook_id != s->call.webhook_id; k++) {
        }
        *dry |= k == nready;
        end_call(multi, s);
        n++;
    }
    return n;
}

/* How many calls to this webhook are in flight. */
static int
calling(const slot_call *calls, int64_t webhook)
{
    int i, n = 0;

    for (i = 0; i < MAX_CALLS; i++) {
        n += calls[i].used && calls[i].call.webhook_id == webhook;
    }
    return n;
}

/* Starts ready calls in claim order, as long as there are free slots and
 * their webhook has fewer than webhook_per_receiver in flight; how many it
 * started. One pass: a webhook found full is remembered for the rest of
 * it, and the calls left wait in order, each moved once (a call is a few
 * kilobytes, and hundreds may wait for one busy receiver). */
static int
start_ready(const jt_conf *c, jt_db *db, jt_arena *a, CURLM *multi, slot_call *calls, int cap, int *inflight,
            jt_webhook_call *ready, int *nready)
{
    int64_t full[MAX_CALLS];
    int i, k, f, nfull = 0, kept = 0, started = 0;

    for (i = 0; i < *nready; i++) {
        for (f = 0; f < nfull && full[f] != ready[i].webhook_id; f++) {
        }
        if (*inflight < cap && f == nfull && calling(calls, ready[i].webhook_id) >= c->wh_per_receiver) {
            full[nfull++] = ready[i].webhook_id;
        }
        if (*inflight >= cap || f < nfull) {
            if (kept != i) {
                ready[kept] = ready[i];
            }
            kept++;
            continue;
        }
        for (k = 0; calls[k].used; k++) {
        }
        calls[k].used = 1;
        calls[k].call = ready[i];
        if (start_call(c, multi, &calls[k]) != 0) {
            jt_webhook_outcome o = { &calls[k].call, 0, "cannot start the call", 0 };
            webhooks_finish(c, db, a, &o, 1);
            end_call(multi, &calls[k]);
            continue;
        }
        (*inflight)++;
        started++;
    }
    *nready = kept;
    return started;
}

/* A webhook id per call queued or in flight, into out; how many. */
static int
queued_calls(const slot_call *calls, const jt_webhook_call *ready, int nready, int64_t *out)
{
    int i, n = 0;

    for (i = 0; i < MAX_CALLS; i++) {
        if (calls[i].used) {
            out[n++] = calls[i].call.webhook_id;
        }
    }
    for (i = 0; i < nready; i++) {
        out[n++] = ready[i].webhook_id;
    }
    return n;
}

void
jt_hooks_run(const jt_conf *c, int slot)
{
    static jt_stream_batch batch;
    static slot_call calls[MAX_CALLS];
    static jt_webhook_call ready[MAX_CALLS];
    static finished done;
    int64_t busy[2 * MAX_CALLS], queued[2 * MAX_CALLS];
    int64_t next_lost = 0, next_claim = 0, next_read = 0;
    int cap, i, inflight = 0, nready = 0, due = 1, more;
    jt_stream_reader reader;
    jt_child_res res;
    CURLM *multi;
    jt_conf rc;

    jt_child_setup(slot, "HOOKS");
    jt_child_conf(&rc, c, BLOCK_MS);
    cap = rc.wh_concurrency < MAX_CALLS ? (int) rc.wh_concurrency : MAX_CALLS;
    jt_stream_init(&reader, JT_EVENT_GROUP_HOOKS, slot);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || (multi = curl_multi_init()) == NULL) {
        _exit(2);
    }
    jt_child_open(&res, &rc);

    /* a graceful stop claims nothing more, gives back what it claimed and
     * did not call, and lets the calls in flight end (each is bounded by
     * webhook_timeout_ms) */
    while (!jt_child_quitting() || inflight > 0) {
        int64_t now = jt_clock_mono_ms();
        int n, running = 0, idle = inflight == 0 && nready == 0;



        jt_arena_reset(&res.arena);
        if (!jt_child_quitting()) {
            /* new events: their deliveries (blocking on Redis only when
             * there is nothing else to do) */
            if (now >= next_read) {
                if (jt_redis_ready(&res.redis) == 0
                    && jt_stream_read(&reader, &rc, &res.redis, &res.arena, idle ? BLOCK_MS : 0, (int) rc.ev_batch,
                                      &batch) == 0) {
                    if (batch.n > 0
                        && webhooks_hook(&rc, &res.db, &res.arena, batch.ids, batch.n, batch.copies, queued,
                                         queued_calls(calls, ready, nready, queued), ready + nready,
                                         MAX_CALLS - nready, &n, &more) == JT_TX_OK) {
                        jt_stream_ack(&reader, &res.redis, &res.arena, &batch);
                        nready += n;
                        if (more) {
                            due = 1, next_claim = 0;
                        }
                    }
                    /* less than a batch: let the next one gather (one commit for many) */
                    next_read = batch.n < rc.ev_batch ? jt_clock_mono_ms() + rc.ev_linger_ms : 0;
                } else if (idle) {
                    jt_clock_sleep_ms(BLOCK_MS);
                }
            }
            now = jt_clock_mono_ms();
            if (now >= next_lost) {
                int64_t ids[JT_STREAM_BATCH_MAX];
                jt_event_sweep sw;

                webhooks_lost_sweep(&sw);
                n = events_lost(&rc, &res.db, &res.arena, &sw, ids, (int) rc.ev_batch);
                if (n == 0) {
                    events_lost_done(&rc, &res.db, &res.arena, &sw);
                } else if (n > 0
                           && webhooks_hook(&rc, &res.db, &res.arena, ids, n, NULL, queued,
                                            queued_calls(calls, ready, nready, queued), ready + nready,
                                            MAX_CALLS - nready, &i, &more) == JT_TX_OK) {
                    jt_log_warn("webhooks: %d events Redis lost were taken from MariaDB", n);
                    events_lost_done(&rc, &res.db, &res.arena, &sw);
                    nready += i;
                    if (more) {
                        due = 1, next_claim = 0;
                    }
                }
                next_lost = now + LOST_EVERY_MS;
            }
            /* due deliveries of the webhooks with nothing queued and room
             * for another call */
            if (now >= next_claim && nready < MAX_CALLS) {
                int nbusy = 0;
                for (i = 0; i < MAX_CALLS; i++) {
                    if (calls[i].used && calling(calls, calls[i].call.webhook_id) >= rc.wh_per_receiver) {
                        busy[nbusy++] = calls[i].call.webhook_id;
                    }
                }
                for (i = 0; i < nready; i++) {
                    busy[nbusy++] = ready[i].webhook_id;
                }
                n = webhooks_claim(&rc, &res.db, &res.arena, busy, nbusy, ready + nready, MAX_CALLS - nready);
                nready += n;
                /* while claims find work (or passed over a webhook that
                 * was busy), claim again as soon as a webhook's queue runs
                 * dry; else every CLAIM_EVERY_MS (retries come due, and
                 * the leases of a consumer that died run out) */
                due = n > 0 || nbusy > 0;
                next_claim = n > 0 ? 0 : now + CLAIM_EVERY_MS;
            }
            start_ready(&rc, &res.db, &res.arena, multi, calls, cap, &inflight, ready, &nready);
        } else if (nready > 0) {
            static jt_webhook_outcome back[MAX_CALLS];
            for (i = 0; i < nready; i++) {
                back[i].call = &ready[i];
            }
            webhooks_release(&rc, &res.db, &res.arena, back, nready);
            for (i = 0; i < nready; i++) {
                webhooks_call_free(&ready[i]);
            }
            nready = 0;
        }
        if (inflight > 0) {
            int dry = 0;

            curl_multi_perform(multi, &running);
            n = reap_calls(&rc, &res.db, &res.arena, multi, &done, ready, nready, &dry);
            inflight -= n;
            if (dry && due) {
                next_claim = 0;   /* a webhook's queue ran dry: claim more for it at once */
            }
            /* a finished call frees its webhook: its next ready call goes at once */
            if (!jt_child_quitting()) {
                start_ready(&rc, &res.db, &res.arena, multi, calls, cap, &inflight, ready, &nready);
            }
            if (inflight > 0) {
                curl_multi_poll(multi, NULL, 0, 50, NULL);
            }
        }
        if (done.n > 0
            && (inflight == 0 || jt_child_quitting() || jt_clock_mono_ms() - done.since_ms >= FINISH_EVERY_MS)) {
            flush_finished(&rc, &res.db, &res.arena, &done);
        }
        if (inflight == 0 && !jt_child_quitting()) {
            /* nothing in flight: nap until the next read or claim is due */
            int64_t wake = next_read < next_claim ? next_read : next_claim, d = wake - jt_clock_mono_ms();
            jt_clock_sleep_ms(d < 50 ? d : 50);
        }
    }
    if (done.n > 0) {
        flush_finished(&rc, &res.db, &res.arena, &done);
    }
    for (i = 0; i < MAX_CALLS; i++) {
        if (calls[i].easy != NULL) {
            curl_easy_cleanup(calls[i].easy);
        }
    }
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    jt_child_close(&res);
}
