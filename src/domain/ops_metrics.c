#include "domain/ops_metrics.h"

#include <stdio.h>

#include "core/breaker.h"
#include "core/config.h"
#include "core/metrics.h"
#include "core/scoreboard.h"
#include "http/router.h"
#include "store/pg.h"

static uint64_t
get(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void
family(jt_buf *b, const char *name, const char *type, const char *help)
{
    jt_buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
counter(jt_buf *b, const char *name, const char *help, uint64_t v)
{
    family(b, name, "counter", help);
    jt_buf_addf(b, "%s %llu\n", name, (unsigned long long) v);
}

static void
histogram(jt_buf *b, const char *name, const char *labels, const jt_histogram *h)
{
    uint64_t cum = 0;
    int i;

    for (i = 0; i < JT_METRICS_BUCKETS; i++) {
        cum += get(&h->bucket[i]);
        jt_buf_addf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, labels[0] ? "," : "",
                    (double) jt_metrics_bucket_us[i] / 1e6, (unsigned long long) cum);
    }
    jt_buf_addf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, labels[0] ? "," : "",
                (unsigned long long) get(&h->count));
    jt_buf_addf(b, "%s_sum%s%s%s %.6f\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
                (double) get(&h->sum_us) / 1e6);
    jt_buf_addf(b, "%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
                (unsigned long long) get(&h->count));
}

/* route="...",method="..." for slot i of the request's route table */
static void
route_labels(const jt_req *r, char *out, size_t len, size_t i)
{
    if (i < r->nroutes) {
        const char *m = jt_method_name(r->routes[i].method);
        snprintf(out, len, "route=\"%s\",method=\"%s\"", r->routes[i].pattern, m ? m : "OTHER");
    } else {
        snprintf(out, len, "route=\"unmatched\",method=\"any\"");
    }
}

/* The payment gateway: the breaker's state (one-hot), what is in its
 * window, calls by outcome, transitions, retries and token fetches. */
static void
gateway(jt_buf *b, const jt_conf *c, const jt_metrics *m)
{
    static const int states[3] = { JT_BREAKER_CLOSED, JT_BREAKER_OPEN, JT_BREAKER_HALF_OPEN };
    jt_breaker *br = jt_breaker_get();
    jt_breaker_conf bc;
    jt_breaker_view v;
    int i;

    jt_pg_breaker_conf(c, &bc);
    jt_breaker_inspect(br, &bc, &v);
    family(b, "jangteo_pg_breaker_state", "gauge", "Payment gateway circuit breaker: 1 for the state it is in.");
    for (i = 0; i < 3; i++) {
        jt_buf_addf(b, "jangteo_pg_breaker_state{state=\"%s\"} %d\n", jt_breaker_state_name(states[i]),
                    v.state == states[i]);
    }
    family(b, "jangteo_pg_breaker_window_calls", "gauge",
           "Calls the breaker is judging now (its window when closed, the trials when half-open).");
    jt_buf_addf(b, "jangteo_pg_breaker_window_calls{kind=\"all\"} %lld\n", (long long) v.calls);
    jt_buf_addf(b, "jangteo_pg_breaker_window_calls{kind=\"failed\"} %lld\n", (long long) v.failed);
    jt_buf_addf(b, "jangteo_pg_breaker_window_calls{kind=\"slow\"} %lld\n", (long long) v.slow);
    family(b, "jangteo_pg_calls_total", "counter",
           "Payment gateway HTTP attempts by outcome (rejected: refused by the open breaker, never sent).");
    jt_buf_addf(b, "jangteo_pg_calls_total{outcome=\"ok\"} %llu\n", (unsigned long long) get(&br->calls_ok));
    jt_buf_addf(b, "jangteo_pg_calls_total{outcome=\"refused\"} %llu\n",
                (unsigned long long) get(&br->calls_refused));
    jt_buf_addf(b, "jangteo_pg_calls_total{outcome=\"failed\"} %llu\n", (unsigned long long) get(&br->calls_failed));
    jt_buf_addf(b, "jangteo_pg_calls_total{outcome=\"rejected\"} %llu\n",
                (unsigned long long) get(&br->calls_rejected));
    jt_buf_addf(b, "jangteo_pg_calls_total{outcome=\"crowded\"} %llu\n", (unsigned long long) get(&br->calls_crowded));
    family(b, "jangteo_pg_calls_in_flight", "gauge", "Workers inside a gateway call now (the bulkhead's places taken).");
    jt_buf_addf(b, "jangteo_pg_calls_in_flight %d\n", jt_breaker_in_flight(br));
    counter(b, "jangteo_pg_slow_calls_total", "Payment gateway attempts slower than breaker_slow_ms.",
            get(&br->calls_slow));
    family(b, "jangteo_pg_breaker_transitions_total", "counter", "Circuit breaker transitions by the state entered.");
    jt_buf_addf(b, "jangteo_pg_breaker_transitions_total{to=\"open\"} %llu\n", (unsigned long long) get(&br->opened));
    jt_buf_addf(b, "jangteo_pg_breaker_transitions_total{to=\"half_open\"} %llu\n",
                (unsigned long long) get(&br->half_opened));
    jt_buf_addf(b, "jangteo_pg_breaker_transitions_total{to=\"closed\"} %llu\n", (unsigned long long) get(&br->closed));
    counter(b, "jangteo_pg_retries_total", "Payment gateway attempts made after a failed one.", get(&m->pg_retries));
    counter(b, "jangteo_pg_token_fetches_total", "getToken requests sent.", get(&m->pg_token_fetches));
    family(b, "jangteo_card_orders_total", "counter", "Card orders by what became of them.");
    jt_buf_addf(b, "jangteo_card_orders_total{outcome=\"reserved\"} %llu\n", (unsigned long long) get(&m->card_reserved));
    jt_buf_addf(b, "jangteo_card_orders_total{outcome=\"paid\"} %llu\n", (unsigned long long) get(&m->card_paid));
    jt_buf_addf(b, "jangteo_card_orders_total{outcome=\"failed\"} %llu\n", (unsigned long long) get(&m->card_failed));
    jt_buf_addf(b, "jangteo_card_orders_total{outcome=\"expired\"} %llu\n", (unsigned long long) get(&m->card_expired));
    jt_buf_addf(b, "jangteo_card_orders_total{outcome=\"late_out_of_stock\"} %llu\n",
                (unsigned long long) get(&m->card_late_out_of_stock));
    counter(b, "jangteo_card_breaker_fast_fails_total", "Card requests refused at once: the breaker was open.",
            get(&m->card_breaker_fast_fails));
    counter(b, "jangteo_card_refunds_total", "Refunds the gateway confirmed.", get(&m->card_refunds));
    counter(b, "jangteo_card_refund_failures_total", "Refund attempts left to the sweeper.",
            get(&m->card_refunds_failed));
    counter(b, "jangteo_payment_sweeps_total", "Payment sweeps run.", get(&m->pay_sweeps));
}

jt_err
metrics_render(jt_req *r)
{
    static const char *classes[5] = { "1xx", "2xx", "3xx", "4xx", "5xx" };
    jt_metrics *m = jt_metrics_get();
    jt_scoreboard *sb = jt_scoreboard_get();
    int active = 0, idle = 0, total = 0;
    size_t i, slots[JT_METRICS_ROUTES], nslots = 0;
    char labels[256];
    jt_buf b;
    int c;

    /* slots to show: every route, plus "unmatched" */
    for (i = 0; i < r->nroutes && i < JT_METRICS_ROUTES - 1; i++) {
        slots[nslots++] = i;
    }
    slots[nslots++] = JT_METRICS_ROUTES - 1;

    jt_buf_init(&b, r->arena, 32768);

    family(&b, "jangteo_http_requests_total", "counter", "HTTP requests by route template and status class.");
    for (i = 0; i < nslots; i++) {
        route_labels(r, labels, sizeof(labels), slots[i]);
        for (c = 0; c < 5; c++) {
            uint64_t v = get(&m->routes[slots[i]].status[c]);
            if (v > 0 || c == 1) {
                jt_buf_addf(&b, "jangteo_http_requests_total{%s,status=\"%s\"} %llu\n", labels, classes[c],
                            (unsigned long long) v);
            }
        }
    }
    family(&b, "jangteo_http_request_duration_seconds", "histogram", "Request latency by route template.");
    for (i = 0; i < nslots; i++) {
        route_labels(r, labels, sizeof(labels), slots[i]);
        histogram(&b, "jangteo_http_request_duration_seconds", labels, &m->routes[slots[i]].latency);
    }
    family(&b, "jangteo_http_requests_in_flight", "gauge", "Requests being served now.");
    jt_buf_addf(&b, "jangteo_http_requests_in_flight %llu\n", (unsigned long long) get(&m->in_flight));

    counter(&b, "jangteo_lock_acquisitions_total", "Redis lock sets acquired.", get(&m->lock_acquired));
    family(&b, "jangteo_lock_wait_seconds", "histogram", "Time spent waiting for Redis locks.");
    histogram(&b, "jangteo_lock_wait_seconds", "", &m->lock_wait);
    counter(&b, "jangteo_lock_wait_timeouts_total", "Lock waits that timed out (503 LOCK_TIMEOUT).",
            get(&m->lock_wait_timeouts));
    counter(&b, "jangteo_lock_lease_expiries_total", "Locks whose lease had expired at release.",
            get(&m->lock_lease_expired));
    counter(&b, "jangteo_tx_conflict_retries_total",
            "Transactions restarted on a version conflict, deadlock or lock-wait timeout.", get(&m->tx_conflicts));
    counter(&b, "jangteo_tx_retries_exhausted_total", "Transactions that ran out of attempts or time.",
            get(&m->tx_exhausted));
    counter(&b, "jangteo_idempotent_replays_total", "Answers replayed for a repeated Idempotency-Key.",
            get(&m->idem_replays));
    counter(&b, "jangteo_idempotency_in_flight_conflicts_total", "409 IDEMPOTENCY_IN_FLIGHT answers.",
            get(&m->idem_in_flight));
    counter(&b, "jangteo_idempotency_payload_mismatches_total", "422 IDEMPOTENCY_KEY_REUSED answers.",
            get(&m->idem_mismatch));
    counter(&b, "jangteo_mariadb_errors_total", "MariaDB errors (connection and statement).", get(&m->db_errors));
    counter(&b, "jangteo_mariadb_reconnects_total", "MariaDB connections opened by workers.",
            get(&m->db_reconnects));
    counter(&b, "jangteo_redis_errors_total", "Redis connection and command failures.", get(&m->redis_errors));
    counter(&b, "jangteo_redis_reconnects_total", "Redis connections opened by workers.",
            get(&m->redis_reconnects));
    counter(&b, "jangteo_redis_degraded_operations_total",
            "Operations that went on without Redis (lock or idempotency cache).",
            get(&m->lock_degraded) + get(&m->idem_degraded));

    if (sb != NULL) {
        jt_scoreboard_count(sb, &active, &idle, &total);
        counter(&b, "jangteo_worker_starts_total", "Worker processes started.", get(&sb->worker_starts));
        counter(&b, "jangteo_worker_abnormal_exits_total", "Workers that crashed or exited with an error.",
                get(&sb->abnormal_exits));
        counter(&b, "jangteo_worker_recycles_total", "Workers retired by max_requests.", get(&sb->recycles));
        counter(&b, "jangteo_worker_request_timeout_kills_total", "Workers killed by request_timeout.",
                get(&sb->timeout_kills));
        counter(&b, "jangteo_accepted_requests_total", "Requests accepted by workers.", get(&sb->accepted));
        counter(&b, "jangteo_slow_requests_total", "Requests slower than slow_request.", get(&sb->slow_requests));
        family(&b, "jangteo_workers", "gauge", "Worker processes by state.");
        jt_buf_addf(&b, "jangteo_workers{state=\"busy\"} %d\njangteo_workers{state=\"idle\"} %d\n", active, idle);
    }

    counter(&b, "jangteo_orders_paid_total", "Orders paid.", get(&m->orders_paid));
    counter(&b, "jangteo_orders_cancelled_total", "Orders cancelled and refunded.", get(&m->orders_cancelled));
    counter(&b, "jangteo_orders_out_of_stock_total", "Orders refused with OUT_OF_STOCK.",
            get(&m->orders_out_of_stock));
    counter(&b, "jangteo_order_commits_total", "Order transactions committed, alone or combined.",
            get(&m->order_commits));
    counter(&b, "jangteo_orders_combined_total", "Orders committed in a batch with others.",
            get(&m->orders_combined));
    counter(&b, "jangteo_order_queue_expired_total", "Queued orders that reached their deadline unrun (503).",
            get(&m->combine_expired));
    counter(&b, "jangteo_order_leader_turns_chained_total",
            "Batches a leader took on after answering its own client, the product's lock kept.",
            get(&m->combine_chained));
    family(&b, "jangteo_order_batch_size", "histogram", "Orders per committed order transaction.");
    {
        uint64_t cum = 0;
        int k, le = 1;
        for (k = 0; k < 7; k++, le *= 2) {
            cum += get(&m->combine_batch[k]);
            jt_buf_addf(&b, "jangteo_order_batch_size_bucket{le=\"%d\"} %llu\n", le, (unsigned long long) cum);
        }
        cum += get(&m->combine_batch[7]);
        jt_buf_addf(&b, "jangteo_order_batch_size_bucket{le=\"+Inf\"} %llu\n", (unsigned long long) cum);
        jt_buf_addf(&b, "jangteo_order_batch_size_sum %llu\njangteo_order_batch_size_count %llu\n",
                    (unsigned long long) get(&m->combine_batch_sum), (unsigned long long) cum);
    }
    counter(&b, "jangteo_point_charges_total", "Successful point charges.", get(&m->charges));
    counter(&b, "jangteo_popular_queries_total", "Times the popular-products query ran (cache refreshes).",
            get(&m->popular_queries));
    counter(&b, "jangteo_cache_hits_total", "Catalog reads answered from Redis.", get(&m->cache_hits));
    counter(&b, "jangteo_cache_misses_total", "Catalog reads that went to MariaDB.", get(&m->cache_misses));
    counter(&b, "jangteo_auth_cache_hits_total", "Bearer tokens answered by the host's shared cache.",
            get(&m->auth_cache_hits));
    counter(&b, "jangteo_auth_cache_misses_total", "Bearer tokens looked up in MariaDB with the cache on.",
            get(&m->auth_cache_misses));
    counter(&b, "jangteo_auth_cache_flushes_total",
            "Times the host's token cache was emptied: auth:epoch moved or could not be read.",
            get(&m->auth_cache_flushes));
    counter(&b, "jangteo_bids_accepted_total", "Bids queued (202).", get(&m->bids_accepted));
    counter(&b, "jangteo_bids_purchased_total", "Bids applied: receipts PURCHASED.", get(&m->bids_purchased));
    counter(&b, "jangteo_bids_failed_total", "Bids refused after queueing: receipts FAILED.", get(&m->bids_failed));
    counter(&b, "jangteo_points_charged_won_total", "Points charged, in KRW.", get(&m->points_charged));
    counter(&b, "jangteo_order_moves_total", "Order lifecycle moves committed (by hand or by the scheduler).",
            get(&m->order_moves));
    counter(&b, "jangteo_lifecycle_sweeps_total", "Scheduler sweeps run.", get(&m->sweeps));
    counter(&b, "jangteo_events_published_total", "Outbox events the relay published to the stream.",
            get(&m->events_published));
    counter(&b, "jangteo_notifications_created_total", "Notifications written.", get(&m->notifications_created));
    counter(&b, "jangteo_webhook_attempts_total", "Webhook calls made.", get(&m->webhook_attempts));
    counter(&b, "jangteo_webhook_attempt_failures_total", "Webhook calls that got no 2xx answer.",
            get(&m->webhook_failures));
    counter(&b, "jangteo_webhook_deliveries_failed_total", "Webhook deliveries given up after max_attempts.",
            get(&m->webhook_deliveries_failed));
    gateway(&b, r->conf, m);

    if (b.oom) {
        return JT_E_INTERNAL;
    }
    jt_reply_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    return JT_OK;
}
