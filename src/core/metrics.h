/* Counters shared by every worker: one anonymous shared mapping created by
 * the master before it forks (a process-local copy otherwise, e.g. in the
 * admin tool), incremented atomically, read by /status and /metrics. */
#ifndef JT_METRICS_H
#define JT_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define JT_METRICS_ROUTES 64            /* route slots; the last one is "unmatched" */
#define JT_METRICS_BUCKETS 12

/* Upper bounds of the latency histogram buckets, in microseconds. */
extern const int64_t jt_metrics_bucket_us[JT_METRICS_BUCKETS];

typedef struct {
    uint64_t bucket[JT_METRICS_BUCKETS];  /* not cumulative: rendered cumulatively */
    uint64_t sum_us;
    uint64_t count;
} jt_histogram;

typedef struct {
    uint64_t     status[5];               /* 1xx .. 5xx */
    jt_histogram latency;
} jt_route_metrics;

typedef struct {
    uint64_t in_flight;
    uint64_t db_errors;
    uint64_t db_reconnects;
    uint64_t redis_errors;
    uint64_t redis_reconnects;
    jt_histogram lock_wait;
    uint64_t lock_acquired;
    uint64_t lock_wait_timeouts;
    uint64_t lock_lease_expired;     /* release found the lease gone */
    uint64_t lock_degraded;          /* Redis down: ran on the version fence alone */
    uint64_t tx_conflicts;           /* version mismatch, deadlock, lock-wait timeout */
    uint64_t tx_exhausted;
    uint64_t idem_replays;
    uint64_t idem_in_flight;
    uint64_t idem_mismatch;
    uint64_t idem_degraded;
    uint64_t points_charged;         /* KRW */
    uint64_t charges;
    uint64_t orders_paid;
    uint64_t orders_cancelled;
    uint64_t orders_out_of_stock;
    uint64_t order_moves;            /* lifecycle moves committed (by hand or by the scheduler) */
    uint64_t sweeps;                 /* lifecycle scheduler sweeps run */
    uint64_t events_published;       /* outbox rows XADDed by the relay */
    uint64_t notifications_created;
    uint64_t webhook_attempts;
    uint64_t webhook_failures;       /* attempts that did not get a 2xx */
    uint64_t webhook_deliveries_failed; /* deliveries given up after max_attempts */
    uint64_t order_commits;          /* order transactions committed (alone or combined) */
    uint64_t orders_combined;        /* orders committed in a batch of more than one */
    uint64_t combine_batch[8];       /* commits by orders in them: <=1, 2, 4, 8, 16, 32, 64, more */
    uint64_t combine_batch_sum;      /* orders in those commits */
    uint64_t combine_expired;        /* queued orders that reached their deadline unrun */
    uint64_t combine_chained;        /* leader turns taken on after answering its client */
    uint64_t popular_queries;
    uint64_t bids_accepted;
    uint64_t bids_purchased;
    uint64_t bids_failed;
    uint64_t cache_hits;
    uint64_t cache_misses;
    uint64_t pg_retries;             /* gateway attempts after a failed one */
    uint64_t pg_token_fetches;       /* getToken requests */
    uint64_t card_reserved;          /* card orders that reserved stock (PAYMENT_PENDING) */
    uint64_t card_paid;              /* card orders PAID */
    uint64_t card_failed;            /* PAYMENT_FAILED (amount mismatch, gateway refused or down) */
    uint64_t card_expired;           /* PAYMENT_EXPIRED by the sweeper */
    uint64_t card_late_out_of_stock; /* paid after the hold, stock gone: OUT_OF_STOCK */
    uint64_t card_refunds;           /* refunds the gateway confirmed */
    uint64_t card_refunds_failed;    /* refund attempts left for the sweeper */
    uint64_t card_breaker_fast_fails; /* card checkouts refused at once: breaker open */
    uint64_t pay_sweeps;             /* payment sweeps run */
    uint64_t auth_cache_hits;        /* bearer tokens answered by the shared cache (store/authcache.h) */
    uint64_t auth_cache_misses;      /* looked up in MariaDB with the cache on */
    uint64_t auth_cache_flushes;     /* the host's cache emptied: auth:epoch moved, or Redis unread */
    jt_route_metrics routes[JT_METRICS_ROUTES];
} jt_metrics;

/* A zeroed anonymous shared mapping: every child forked after this call
 * shares it (metrics, the circuit breaker, the gateway token). NULL on
 * failure. */
void       *jt_shared_zalloc(size_t n);
int         jt_metrics_init_shared(void);
jt_metrics *jt_metrics_get(void);

#define JT_METRIC_ADD(name, n) __atomic_fetch_add(&jt_metrics_get()->name, (uint64_t) (n), __ATOMIC_RELAXED)
#define JT_METRIC_INC(name)    JT_METRIC_ADD(name, 1)

void jt_histogram_observe(jt_histogram *h, int64_t us);
/* One finished request: route slot (JT_METRICS_ROUTES - 1 when unmatched). */
void jt_metrics_request(int route, int status, int64_t us);

#endif
