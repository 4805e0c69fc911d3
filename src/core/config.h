/* Configuration: one table (config.c) lists every setting with its type,
 * default, bounds and a one-line comment; the parser, the validator and
 * `jangteod --print-config` all read that table. */
#ifndef JT_CONFIG_H
#define JT_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define JT_PATH_MAX 512
#define JT_SECRET_MAX 256
#define JT_MAX_NODES 8

/* One host:port of a list setting ([mariadb] hosts, [redis] sentinels). */
typedef struct {
    char host[256];
    int  port;
} jt_node;

typedef struct {
    /* [server] */
    char    listen[JT_PATH_MAX];
    char    fastcgi_allow[1024];  /* canonical: "a.b.c.d,e.f.g.h" */
    int64_t listen_mode;
    int64_t listen_backlog;
    int64_t workers;
    int64_t max_requests;
    int64_t request_timeout;      /* s, 0 = off */
    int64_t graceful_timeout;     /* s */
    int64_t crash_guard_exits;
    int64_t crash_guard_interval; /* s */
    int64_t body_max;
    int64_t slow_request;         /* s: counted as slow at/after this */
    char    pid_file[JT_PATH_MAX];
    char    error_log[JT_PATH_MAX];
    char    access_log[JT_PATH_MAX];
    char    log_level[16];
    int     enable_test_routes;

    /* [mariadb] */
    char    db_host[256];
    int64_t db_port;
    char    db_socket[JT_PATH_MAX];
    char    db_name[64];
    char    db_user[64];
    char    db_password[JT_SECRET_MAX];
    char    db_password_file[JT_PATH_MAX];
    int64_t db_connect_timeout;   /* s */
    int64_t db_read_timeout;      /* s */
    int64_t db_write_timeout;     /* s */
    int64_t db_stmt_cache;        /* prepared statements kept per connection */
    char    db_hosts[1024];
    int64_t db_failback_interval; /* s */
    int64_t db_sync_wait;
    jt_node db_nodes[JT_MAX_NODES];   /* parsed from db_hosts */
    int     db_nnodes;                /* 0: host/port/socket */

    /* [migrate] */
    char    mig_user[64];
    char    mig_password[JT_SECRET_MAX];
    char    mig_password_file[JT_PATH_MAX];
    char    mig_sql_dir[JT_PATH_MAX];

    /* [redis] */
    char    redis_host[256];
    int64_t redis_port;
    char    redis_socket[JT_PATH_MAX];
    int64_t redis_connect_timeout_ms;
    int64_t redis_timeout_ms;
    int64_t redis_retry_interval_ms;
    char    redis_sentinels[1024];
    char    redis_master_name[128];
    int64_t redis_sentinel_timeout_ms;
    jt_node redis_sentinel_nodes[JT_MAX_NODES];   /* parsed from redis_sentinels */
    int     redis_nsentinels;                     /* 0: host/port/socket */

    /* [lock] */
    int64_t lock_wait_ms;
    int64_t lock_lease_ms;

    /* [tx] */
    int64_t tx_max_attempts;
    int64_t tx_deadline_ms;
    int64_t tx_backoff_base_ms;
    int64_t tx_backoff_max_ms;

    /* [orders] */
    int64_t combine_max;

    /* [idempotency] */
    int64_t idem_ttl;             /* s */

    /* [auth] */
    int64_t token_ttl;            /* s */
    int64_t kdf_opslimit;
    int64_t kdf_memlimit_kib;
    int64_t token_touch_interval; /* s */
    int64_t auth_cache_ttl_ms;    /* 0: off */
    int64_t auth_cache_poll_ms;

    /* [catalog] */
    int64_t cache_ttl_ms;
    int64_t popular_ttl;          /* s */

    /* [auctions] */
    int     auction_async;
    int64_t auction_consumers;
    int64_t auction_claim_idle_ms;
    int64_t auction_sweep_after_ms;

    /* [lifecycle] */
    int64_t lc_ship_after;           /* s from paid */
    int64_t lc_deliver_after;        /* s from paid */
    int64_t lc_return_window;        /* s from delivered */
    int64_t lc_return_complete_after;/* s from return requested */
    int     lc_scheduler;            /* the daemon runs the scheduler process */
    int64_t lc_sweep_interval;       /* s */
    int64_t lc_batch;
    int64_t lc_sweep_deadline;       /* s */

    /* [events] */
    int     ev_relay;
    int64_t ev_relay_interval_ms;
    int64_t ev_batch;
    int64_t ev_linger_ms;
    int64_t ev_retention;            /* s */
    int64_t ev_stream_maxlen;
    int64_t ev_consumers;            /* notification consumers */
    int64_t ev_webhook_consumers;
    int64_t ev_claim_idle_ms;
    int64_t ev_lost_after;           /* s */
    int64_t ev_audit_grace;          /* s */
    int64_t wh_max_attempts;
    int64_t wh_connect_timeout_ms;
    int64_t wh_timeout_ms;
    int64_t wh_backoff_base_ms;
    int64_t wh_backoff_max_ms;
    int64_t wh_concurrency;
    int64_t wh_per_receiver;

    /* [pii] */
    char    pii_key_file[JT_PATH_MAX];

    /* [payments] */
    char    pg_url[JT_PATH_MAX];
    char    imp_key[128];
    char    imp_secret_file[JT_PATH_MAX];
    char    imp_secret[JT_SECRET_MAX];   /* read from imp_secret_file; never logged */
    char    pay_url[JT_PATH_MAX];
    int64_t pg_connect_timeout_ms;
    int64_t pg_timeout_ms;
    int64_t pg_deadline_ms;
    int64_t pg_retry_attempts;
    int64_t pg_retry_interval_ms;
    int64_t pg_hold_seconds;
    int64_t breaker_window;
    int64_t breaker_min_calls;
    int64_t breaker_failure_rate;        /* percent */
    int64_t breaker_slow_rate;           /* percent */
    int64_t breaker_slow_ms;
    int64_t breaker_open_ms;
    int64_t breaker_half_open_calls;
    int64_t pg_max_in_flight;
    int64_t pg_in_flight_wait_ms;
    int64_t pg_sweepers;
    int64_t pg_sweep_interval_ms;
    int64_t pg_sweep_batch;
    int64_t pg_sweep_claim_ms;
    char    webhook_allow[512];

    /* [testing] — test-only, never in the shipped configuration */
    int64_t test_tx_delay_ms;
    int     test_fail_after_commit;   /* the first statement after a COMMIT in a request fails */
} jt_conf;

/* Fills defaults, then reads path (if not NULL). On error returns -1 and
 * writes a one-line reason into err. Secrets named by *_file are read here. */
int  jt_conf_load(jt_conf *c, const char *path, char *err, size_t errlen);
void jt_conf_defaults(jt_conf *c);
/* Writes a commented config with every setting at its default. */
void jt_conf_print_defaults(FILE *out);

#endif
