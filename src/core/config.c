#include "core/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

enum { T_INT, T_STR, T_BOOL, T_OCTAL };

typedef struct {
    const char *section;
    const char *name;
    int         type;
    size_t      offset;
    size_t      size;       /* for strings */
    const char *def;
    int64_t     min, max;
    const char *comment;
} setting;

#define S(sec, name, field, def, comment) \
    { sec, name, T_STR, offsetof(jt_conf, field), sizeof(((jt_conf *) 0)->field), def, 0, 0, comment }
#define I(sec, name, field, def, lo, hi, comment) \
    { sec, name, T_INT, offsetof(jt_conf, field), 0, def, lo, hi, comment }
#define B(sec, name, field, def, comment) \
    { sec, name, T_BOOL, offsetof(jt_conf, field), 0, def, 0, 1, comment }
#define O(sec, name, field, def, comment) \
    { sec, name, T_OCTAL, offsetof(jt_conf, field), 0, def, 0, 0777, comment }

static const setting settings[] = {
    S("server", "listen", listen, "unix:/run/jangteo/jangteod.sock",
      "unix:PATH to bind, IPv4:PORT (TCP, e.g. 10.0.0.11:9000), fd:0 for an inherited socket (spawn-fcgi, StandardInput=socket), or systemd"),
    S("server", "fastcgi_allow", fastcgi_allow, "127.0.0.1",
      "on a TCP listen: comma-separated IPv4 addresses of the web servers allowed to connect (FCGI_WEB_SERVER_ADDRS); any other peer is closed before a byte is read"),
    O("server", "listen_mode", listen_mode, "0660", "permissions of the unix socket"),
    I("server", "listen_backlog", listen_backlog, "511", 1, 65535, "listen(2) backlog"),
    I("server", "workers", workers, "4", 1, 256, "pre-forked worker processes"),
    I("server", "max_requests", max_requests, "10000", 0, INT64_MAX,
      "a worker exits and is replaced after this many requests (0 = never)"),
    I("server", "request_timeout", request_timeout, "30", 0, 86400,
      "seconds: the master kills a worker stuck longer than this on one request (0 = off)"),
    I("server", "graceful_timeout", graceful_timeout, "60", 1, 86400,
      "seconds a graceful stop waits for busy workers before killing them"),
    I("server", "crash_guard_exits", crash_guard_exits, "10", 1, 100000,
      "abnormal worker exits within crash_guard_interval that make the master back off"),
    I("server", "crash_guard_interval", crash_guard_interval, "10", 1, 3600, "seconds, see crash_guard_exits"),
    I("server", "body_max", body_max, "65536", 1024, 16777216,
      "largest request body in bytes (413 beyond; keep nginx client_max_body_size >= this)"),
    I("server", "slow_request", slow_request, "5", 0, 86400,
      "seconds after which a request counts as slow in /status (0 = off)"),
    S("server", "pid_file", pid_file, "", "master pid file (empty = none)"),
    S("server", "error_log", error_log, "", "error log file (empty = stderr, e.g. journald)"),
    S("server", "access_log", access_log, "", "access log file (empty = stderr, off = none)"),
    S("server", "log_level", log_level, "info", "error, warn, info or debug"),

    S("mariadb", "host", db_host, "127.0.0.1", "MariaDB host (ignored when socket is set)"),
    I("mariadb", "port", db_port, "3306", 1, 65535, "MariaDB TCP port"),
    S("mariadb", "socket", db_socket, "", "MariaDB unix socket (preferred on the same host)"),
    S("mariadb", "hosts", db_hosts, "",
      "Galera: comma-separated host:port nodes, the first this host's preferred one; a dead or unsynced node fails over to the next (overrides host, port, socket)"),
    I("mariadb", "failback_interval", db_failback_interval, "30", 1, 86400,
      "seconds a worker stays on a node other than the first of hosts before it tries the first again (between requests)"),
    I("mariadb", "sync_wait", db_sync_wait, "1", 0, 15,
      "Galera wsrep_sync_wait of the app's sessions: 1 = every read and transaction sees every commit the cluster made before it (idempotency lookups, tokens, an order read after its write); 0 = off"),
    S("mariadb", "database", db_name, "jangteo", "schema name"),
    S("mariadb", "user", db_user, "jangteo", "account with SELECT, INSERT, UPDATE, DELETE only"),
    S("mariadb", "password", db_password, "", "password (prefer password_file)"),
    S("mariadb", "password_file", db_password_file, "", "file holding the password"),
    I("mariadb", "connect_timeout", db_connect_timeout, "3", 1, 60, "seconds"),
    I("mariadb", "read_timeout", db_read_timeout, "10", 1, 3600, "seconds per read"),
    I("mariadb", "write_timeout", db_write_timeout, "10", 1, 3600, "seconds per write"),
    I("mariadb", "statement_cache", db_stmt_cache, "160", 1, 160,
      "prepared statements kept per connection; a statement beyond them is prepared, run and closed"),

    S("migrate", "user", mig_user, "", "account used by `jangteo-admin migrate` (DDL rights)"),
    S("migrate", "password", mig_password, "", "password (prefer password_file)"),
    S("migrate", "password_file", mig_password_file, "", "file holding the password"),
    S("migrate", "sql_dir", mig_sql_dir, JT_SQL_DIR, "directory of NNN_name.sql migrations"),

    S("redis", "host", redis_host, "127.0.0.1", "Redis host (ignored when socket is set)"),
    I("redis", "port", redis_port, "6379", 1, 65535, "Redis TCP port"),
    S("redis", "socket", redis_socket, "", "Redis unix socket (preferred on the same host: every cached read is a round trip)"),
    S("redis", "sentinels", redis_sentinels, "",
      "comma-separated host:port Redis Sentinels; when set the primary is asked of them (master_name) and host, port, socket are ignored"),
    S("redis", "master_name", redis_master_name, "jangteo", "the Sentinel name of the monitored primary"),
    I("redis", "sentinel_timeout_ms", redis_sentinel_timeout_ms, "200", 1, 60000,
      "milliseconds for connecting to, and for each answer of, one Sentinel"),
    I("redis", "connect_timeout_ms", redis_connect_timeout_ms, "200", 1, 60000, "milliseconds"),
    I("redis", "timeout_ms", redis_timeout_ms, "500", 1, 60000, "milliseconds per command"),
    I("redis", "retry_interval_ms", redis_retry_interval_ms, "1000", 0, 600000,
      "after a failure, milliseconds before a worker tries Redis again (meanwhile: degraded mode)"),

    I("lock", "wait_ms", lock_wait_ms, "2000", 1, 60000,
      "how long a request waits for a Redis lock before 503 LOCK_TIMEOUT"),
    I("lock", "lease_ms", lock_lease_ms, "5000", 1, 600000,
      "lock lease; keep it longer than tx.deadline_ms (the version check fences expiries anyway)"),

    I("tx", "max_attempts", tx_max_attempts, "8", 1, 100,
      "attempts of one transaction on version conflicts, deadlocks and lock-wait timeouts"),
    I("tx", "deadline_ms", tx_deadline_ms, "3000", 1, 600000,
      "total time for all attempts (then 503 CONFLICT_RETRY_EXHAUSTED); shorter than lock.lease_ms"),
    I("tx", "backoff_base_ms", tx_backoff_base_ms, "2", 0, 10000, "first retry backoff (full jitter)"),
    I("tx", "backoff_max_ms", tx_backoff_max_ms, "100", 0, 60000, "largest retry backoff"),

    I("orders", "combine_max", combine_max, "32", 1, 64,
      "orders queued on one busy product that its lock holder commits in one transaction (1 = off)"),

    I("idempotency", "ttl", idem_ttl, "86400", 60, 2592000, "seconds an Idempotency-Key is remembered"),

    I("auth", "token_ttl", token_ttl, "86400", 60, 31536000, "seconds a bearer token lives"),
    I("auth", "kdf_opslimit", kdf_opslimit, "2", 1, 20, "argon2id passes for new password hashes"),
    I("auth", "kdf_memlimit_kib", kdf_memlimit_kib, "65536", 8, 4194304,
      "argon2id memory (KiB) for new password hashes"),
    I("auth", "touch_interval", token_touch_interval, "60", 0, 86400,
      "seconds: a token's lastUsedAt (GET /api/v1/users/{id}/tokens) is written at most this often"),
    I("auth", "cache_ttl_ms", auth_cache_ttl_ms, "10000", 0, 600000,
      "a looked-up token is served from the host's shared cache this long; bounds how late a change made"
      " outside the API is seen (0 = off; revocations through the API are seen at once)"),
    I("auth", "cache_poll_ms", auth_cache_poll_ms, "200", 10, 60000,
      "how often a host reads Redis' auth:epoch: another host's revocation is seen within this"),

    I("catalog", "cache_ttl_ms", cache_ttl_ms, "1000", 0, 1000,
      "product detail/list cache lifetime; bounds how stale stock sold by orders may look (0 = off)"),
    I("catalog", "popular_ttl", popular_ttl, "60", 1, 3600, "seconds the popular-products answer is cached"),

    B("auctions", "async", auction_async, "yes",
      "bids are queued on a Redis Stream and applied by consumer processes (202); no = applied in the request (201)"),
    I("auctions", "consumers", auction_consumers, "2", 0, 64, "bid consumer processes the master keeps running"),
    I("auctions", "claim_idle_ms", auction_claim_idle_ms, "5000", 100, 3600000,
      "a pending bid idle this long in another consumer's hands is reclaimed"),
    I("auctions", "sweep_after_ms", auction_sweep_after_ms, "5000", 1000, 3600000,
      "a PENDING receipt this old with no stream entry (Redis lost it) is applied from MariaDB"),

    I("lifecycle", "ship_after", lc_ship_after, "86400", 1, 31536000,
      "seconds after payment the scheduler moves a PAID or PREPARING order nobody moved to SHIPPING"),
    I("lifecycle", "deliver_after", lc_deliver_after, "172800", 1, 31536000,
      "seconds after payment the scheduler moves a SHIPPING order to DELIVERED"),
    I("lifecycle", "return_window", lc_return_window, "86400", 1, 31536000,
      "seconds after delivery the buyer may ask to return an order (then 409 RETURN_WINDOW_CLOSED)"),
    I("lifecycle", "return_complete_after", lc_return_complete_after, "259200", 1, 31536000,
      "seconds after a return request the scheduler completes it (RETURNED: stock back, total refunded)"),
    B("lifecycle", "scheduler", lc_scheduler, "yes",
      "the daemon runs the scheduler process (no: a systemd timer runs `jangteo-admin sweep` instead)"),
    I("lifecycle", "sweep_interval", lc_sweep_interval, "60", 1, 86400, "seconds between two sweeps of the scheduler"),
    I("lifecycle", "batch", lc_batch, "100", 1, 1000, "orders read per batch of a sweep"),
    I("lifecycle", "sweep_deadline", lc_sweep_deadline, "30", 1, 3600,
      "seconds one sweep may run; what is left waits for the next"),

    B("events", "relay", ev_relay, "yes",
      "the daemon runs the relay process: committed outbox rows to the Redis Stream 'events'"),
    I("events", "relay_interval_ms", ev_relay_interval_ms, "200", 10, 60000,
      "milliseconds the relay waits when it found nothing to publish"),
    I("events", "batch", ev_batch, "100", 1, 1000, "events published, or consumed, per transaction"),
    I("events", "linger_ms", ev_linger_ms, "50", 0, 1000,
      "a consumer that read less than a batch waits this long before reading again, so that under load a"
      " transaction carries many events, not one"),
    I("events", "retention", ev_retention, "604800", 60, 31536000, "seconds a published outbox row is kept"),
    I("events", "stream_maxlen", ev_stream_maxlen, "100000", 1000, 100000000,
      "the stream is trimmed to about this many entries (a consumer later than that finds its events in MariaDB)"),
    I("events", "consumers", ev_consumers, "1", 0, 64, "notification consumer processes the master keeps running"),
    I("events", "webhook_consumers", ev_webhook_consumers, "1", 0, 64,
      "webhook consumer processes the master keeps running"),
    I("events", "claim_idle_ms", ev_claim_idle_ms, "10000", 100, 3600000,
      "an event idle this long in another consumer's hands is reclaimed"),
    I("events", "lost_after", ev_lost_after, "30", 1, 86400,
      "seconds after publication an event no consumer recorded is taken from MariaDB (Redis lost it)"),
    I("events", "audit_grace", ev_audit_grace, "300", 0, 86400,
      "seconds after publication the audit expects an event's notifications"),
    I("events", "webhook_max_attempts", wh_max_attempts, "8", 1, 100,
      "attempts of one webhook delivery before it is marked FAILED"),
    I("events", "webhook_connect_timeout_ms", wh_connect_timeout_ms, "2000", 10, 60000,
      "milliseconds to connect to a webhook receiver"),
    I("events", "webhook_timeout_ms", wh_timeout_ms, "5000", 10, 300000,
      "milliseconds one webhook call may take in all (connect, send, answer)"),
    I("events", "webhook_backoff_base_ms", wh_backoff_base_ms, "1000", 1, 3600000,
      "wait before the second attempt; it doubles per attempt (half of it random)"),
    I("events", "webhook_backoff_max_ms", wh_backoff_max_ms, "3600000", 1, 86400000, "longest wait between two attempts"),
    I("events", "webhook_concurrency", wh_concurrency, "16", 1, 256,
      "webhook calls in flight per consumer process, all receivers together"),
    I("events", "webhook_per_receiver", wh_per_receiver, "4", 1, 64,
      "webhook calls in flight to one receiver per consumer process (a receiver that hangs holds no more)"),

    S("pii", "key_file", pii_key_file, "",
      "file of 'ID HEX64' lines: keys sealing personal data; the last line encrypts, all decrypt"),

    S("payments", "pg_url", pg_url, "",
      "PortOne REST V1 base URL (https://api.iamport.kr) or the simulator's; empty = card payments off"),
    S("payments", "imp_key", imp_key, "", "REST API key of the merchant account (imp_key)"),
    S("payments", "imp_secret_file", imp_secret_file, "",
      "file holding the REST API secret (imp_secret); never logged"),
    S("payments", "pay_url", pay_url, "",
      "the simulator's pay page, the merchant uid appended (empty with a real gateway: its browser SDK pays)"),
    I("payments", "connect_timeout_ms", pg_connect_timeout_ms, "1000", 1, 60000,
      "milliseconds to connect to the gateway, per attempt"),
    I("payments", "timeout_ms", pg_timeout_ms, "5000", 1, 120000,
      "milliseconds one attempt may take in all (connect, send, answer)"),
    I("payments", "deadline_ms", pg_deadline_ms, "15000", 1, 300000,
      "milliseconds for every attempt of one call, its token fetch and the pauses; keep below [server] request_timeout"),
    I("payments", "retry_attempts", pg_retry_attempts, "3", 1, 10,
      "attempts of an idempotent call (lookup, token, cancel with checksum); others are tried once"),
    I("payments", "retry_interval_ms", pg_retry_interval_ms, "500", 0, 60000,
      "pause between attempts, with +-50 % jitter"),
    I("payments", "hold_seconds", pg_hold_seconds, "900", 60, 86400,
      "seconds a card order holds its stock while the buyer pays"),
    I("payments", "breaker_window", breaker_window, "100", 1, 1000,
      "circuit breaker: the last N gateway calls it judges by"),
    I("payments", "breaker_min_calls", breaker_min_calls, "50", 1, 1000,
      "circuit breaker: calls in the window before it may open (at most breaker_window)"),
    I("payments", "breaker_failure_rate", breaker_failure_rate, "20", 1, 100,
      "circuit breaker: opens when this percentage of the window failed (5xx, timeout, no answer)"),
    I("payments", "breaker_slow_rate", breaker_slow_rate, "10", 1, 100,
      "circuit breaker: ... or when this percentage was slower than breaker_slow_ms"),
    I("payments", "breaker_slow_ms", breaker_slow_ms, "3000", 1, 600000,
      "circuit breaker: a call slower than this counts as slow (keep below timeout_ms to see any)"),
    I("payments", "breaker_open_ms", breaker_open_ms, "6000", 1, 3600000,
      "circuit breaker: milliseconds it stays open (every call fails at once) before half-opening"),
    I("payments", "breaker_half_open_calls", breaker_half_open_calls, "10", 1, 100,
      "circuit breaker: trial calls let through half-open; their verdict closes or reopens it"),
    I("payments", "max_calls_in_flight", pg_max_in_flight, "0", 0, 64,
      "workers inside a gateway call at once (0 = a quarter of [server] workers, at least 1): a gateway that hangs holds no more"),
    I("payments", "in_flight_wait_ms", pg_in_flight_wait_ms, "250", 0, 10000,
      "milliseconds a call waits for a place when all are taken, then 503 (a healthy gateway frees them sooner)"),
    I("payments", "sweepers", pg_sweepers, "1", 0, 16,
      "payment sweeper processes (expired holds, pending refunds) the master keeps running when pg_url is set"),
    I("payments", "sweep_interval_ms", pg_sweep_interval_ms, "1000", 50, 600000,
      "milliseconds between two sweeps of one sweeper"),
    I("payments", "sweep_batch", pg_sweep_batch, "32", 1, 1000, "orders and refunds one sweep takes at most"),
    I("payments", "sweep_claim_ms", pg_sweep_claim_ms, "60000", 1000, 3600000,
      "a sweeper owns an order or refund it took this long, then another may (keep above 2 x deadline_ms)"),
    S("payments", "webhook_allow", webhook_allow, "127.0.0.1",
      "comma-separated source addresses the gateway's webhook may come from (a real gateway publishes its own)"),
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

/* Settings that exist only for tests; never printed in the shipped config. */
static const setting test_settings[] = {
    B("server", "enable_test_routes", enable_test_routes, "no",
      "test-only routes (/test/...): never in production"),
    I("testing", "tx_delay_ms", test_tx_delay_ms, "0", 0, 60000,
      "sleep inside every write transaction (lease-expiry tests)"),
    B("testing", "fail_after_commit", test_fail_after_commit, "no",
      "the first statement after a COMMIT within one request fails as if the database went away"),
};

typedef struct {
    jt_conf *c;
    char    *err;
    size_t   errlen;
    int      failed;
} parse_ctx;

static int
set_value(jt_conf *c, const setting *s, const char *v, char *err, size_t errlen)
{
    char *p = (char *) c + s->offset;
    char *end;
    long long n;

    switch (s->type) {
    case T_STR:
        if (strlen(v) >= s->size) {
            snprintf(err, errlen, "[%s] %s: value too long", s->section, s->name);
            return -1;
        }
        strcpy(p, v);
        return 0;
    case T_BOOL:
        if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "on")) {
            *(int *) p = 1;
        } else if (!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcmp(v, "0")
                   || !strcasecmp(v, "off")) {
            *(int *) p = 0;
        } else {
            snprintf(err, errlen, "[%s] %s: expected yes or no", s->section, s->name);
            return -1;
        }
        return 0;
    case T_INT:
    case T_OCTAL:
        errno = 0;
        n = strtoll(v, &end, s->type == T_OCTAL ? 8 : 10);
        if (errno || end == v || *end != '\0' || n < s->min || n > s->max) {
            snprintf(err, errlen, "[%s] %s: expected an integer in %lld..%lld",
                     s->section, s->name, (long long) s->min, (long long) s->max);
            return -1;
        }
        *(int64_t *) p = n;
        return 0;
    }
    return -1;
}

static const setting *
find_setting(const char *section, const char *name)
{
    size_t i;

    for (i = 0; i < NSETTINGS; i++) {
        if (!strcmp(settings[i].section, section) && !strcmp(settings[i].name, name)) {
            return &settings[i];
        }
    }
    for (i = 0; i < sizeof(test_settings) / sizeof(test_settings[0]); i++) {
        if (!strcmp(test_settings[i].section, section) && !strcmp(test_settings[i].name, name)) {
            return &test_settings[i];
        }
    }
    return NULL;
}

static int
on_ini(void *user, const char *section, const char *name, const char *value)
{
    parse_ctx *ctx = user;
    const setting *s;

    if (ctx->failed) {
        return 0;
    }
    s = find_setting(section, name);
    if (s == NULL) {
        snprintf(ctx->err, ctx->errlen, "unknown setting [%s] %s", section, name);
        ctx->failed = 1;
        return 0;
    }
    if (set_value(ctx->c, s, value, ctx->err, ctx->errlen) != 0) {
        ctx->failed = 1;
        return 0;
    }
    return 1;
}

void
jt_conf_defaults(jt_conf *c)
{
    char err[128];
    size_t i;

    memset(c, 0, sizeof(*c));
    for (i = 0; i < NSETTINGS; i++) {
        (void) set_value(c, &settings[i], settings[i].def, err, sizeof(err));
    }
    for (i = 0; i < sizeof(test_settings) / sizeof(test_settings[0]); i++) {
        (void) set_value(c, &test_settings[i], test_settings[i].def, err, sizeof(err));
    }
}

/* Reads a secret from a file: first line, trailing newline stripped. */
static int
read_secret(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
    FILE *f;
    size_t n;

    f = fopen(path, "re");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read secret file %s: %s", path, strerror(errno));
        return -1;
    }
    n = fread(out, 1, outlen - 1, f);
    fclose(f);
    out[n] = '\0';
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

/* [payments] rules that span settings. A gateway needs its credentials;
 * the breaker's minimum must fit in its window; every webhook source must
 * be an address (a typo must not silently open or close the door). */
static int
check_payments(const jt_conf *c, char *err, size_t errlen)
{
    char list[sizeof(c->webhook_allow)], *tok, *save = NULL;
    unsigned char addr[sizeof(struct in6_addr)];

    if (c->pg_url[0]) {
        if (strncmp(c->pg_url, "http://", 7) && strncmp(c->pg_url, "https://", 8)) {
            snprintf(err, errlen, "[payments] pg_url: expected an http:// or https:// URL");
            return -1;
        }
        if (c->imp_key[0] == '\0' || c->imp_secret[0] == '\0') {
            snprintf(err, errlen, "[payments] pg_url is set: imp_key and imp_secret_file are needed too");
            return -1;
        }
    }
    if (c->breaker_min_calls > c->breaker_window) {
        snprintf(err, errlen, "[payments] breaker_min_calls: at most breaker_window (%lld)",
                 (long long) c->breaker_window);
        return -1;
    }
    memcpy(list, c->webhook_allow, sizeof(list));
    for (tok = strtok_r(list, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save)) {
        if (inet_pton(AF_INET, tok, addr) != 1 && inet_pton(AF_INET6, tok, addr) != 1) {
            snprintf(err, errlen, "[payments] webhook_allow: '%.64s' is not an IP address", tok);
            return -1;
        }
    }
    return 0;
}

/* Parses "host:port, host:port" into out[] (at most JT_MAX_NODES). A host
 * is a name or an IPv4 address; ports are 1..65535. Returns the count, or
 * -1 with a reason in err naming the setting. */
static int
parse_nodes(const char *what, const char *list, jt_node *out, char *err, size_t errlen)
{
    const char *p = list;
    int n = 0;

    while (*p) {
        const char *end, *colon;
        size_t hl;
        char *pe;
        long port;

        p += strspn(p, " \t,");
        if (*p == '\0') {
            break;
        }
        end = p + strcspn(p, ",");
        while (end > p && (end[-1] == ' ' || end[-1] == '\t')) {
            end--;
        }
        colon = memchr(p, ':', (size_t) (end - p));
        if (colon == NULL || colon == p) {
            snprintf(err, errlen, "%s: expected host:port, got '%.*s'", what, (int) (end - p), p);
            return -1;
        }
        hl = (size_t) (colon - p);
        port = strtol(colon + 1, &pe, 10);
        if (pe != end || port < 1 || port > 65535 || hl >= sizeof(out[0].host)) {
            snprintf(err, errlen, "%s: expected host:port, got '%.*s'", what, (int) (end - p), p);
            return -1;
        }
        if (n == JT_MAX_NODES) {
            snprintf(err, errlen, "%s: at most %d entries", what, JT_MAX_NODES);
            return -1;
        }
        memcpy(out[n].host, p, hl);
        out[n].host[hl] = '\0';
        out[n].port = (int) port;
        n++;
        p = end;
    }
    return n;
}

/* fastcgi_allow in the form libfcgi compares (no spaces, every entry a
 * dotted IPv4 address): libfcgi treats an empty list as "allow all", so an
 * empty or unparsable one is refused here rather than silently opened. */
static int
canon_allow(jt_conf *c, char *err, size_t errlen)
{
    char out[sizeof(c->fastcgi_allow)];
    const char *p = c->fastcgi_allow;
    size_t len = 0;

    out[0] = '\0';
    while (*p) {
        char one[INET_ADDRSTRLEN];
        struct in_addr a;
        size_t l;

        p += strspn(p, " \t,");
        l = strcspn(p, " \t,");
        if (l == 0) {
            break;
        }
        if (l >= sizeof(one)) {
            snprintf(err, errlen, "[server] fastcgi_allow: not an IPv4 address: '%.*s'", (int) l, p);
            return -1;
        }
        memcpy(one, p, l);
        one[l] = '\0';
        if (inet_pton(AF_INET, one, &a) != 1) {
            snprintf(err, errlen, "[server] fastcgi_allow: not an IPv4 address: '%s'", one);
            return -1;
        }
        len += (size_t) snprintf(out + len, sizeof(out) - len, "%s%s", len ? "," : "", one);
        p += l;
    }
    if (len == 0) {
        snprintf(err, errlen, "[server] fastcgi_allow: name at least one web server address");
        return -1;
    }
    memcpy(c->fastcgi_allow, out, len + 1);
    return 0;
}

int
jt_conf_load(jt_conf *c, const char *path, char *err, size_t errlen)
{
    parse_ctx ctx = { c, err, errlen, 0 };
    int rc;

    jt_conf_defaults(c);
    if (path != NULL) {
        rc = ini_parse(path, on_ini, &ctx);
        if (rc < 0) {
            snprintf(err, errlen, "cannot open %s", path);
            return -1;
        }
        if (ctx.failed) {
            return -1;
        }
        if (rc > 0) {
            snprintf(err, errlen, "%s: syntax error on line %d", path, rc);
            return -1;
        }
    }
    if (c->db_password_file[0]
        && read_secret(c->db_password_file, c->db_password, sizeof(c->db_password), err, errlen) != 0) {
        return -1;
    }
    if (c->mig_password_file[0]
        && read_secret(c->mig_password_file, c->mig_password, sizeof(c->mig_password), err, errlen) != 0) {
        return -1;
    }
    if (c->imp_secret_file[0]
        && read_secret(c->imp_secret_file, c->imp_secret, sizeof(c->imp_secret), err, errlen) != 0) {
        return -1;
    }
    if (check_payments(c, err, errlen) != 0) {
        return -1;
    }
    if (strcmp(c->log_level, "error") && strcmp(c->log_level, "warn") && strcmp(c->log_level, "info")
        && strcmp(c->log_level, "debug")) {
        snprintf(err, errlen, "[server] log_level: expected error, warn, info or debug");
        return -1;
    }
    if (canon_allow(c, err, errlen) != 0) {
        return -1;
    }
    c->db_nnodes = parse_nodes("[mariadb] hosts", c->db_hosts, c->db_nodes, err, errlen);
    if (c->db_nnodes < 0) {
        return -1;
    }
    c->redis_nsentinels = parse_nodes("[redis] sentinels", c->redis_sentinels, c->redis_sentinel_nodes, err, errlen);
    if (c->redis_nsentinels < 0) {
        return -1;
    }
    return 0;
}

void
jt_conf_print_defaults(FILE *out)
{
    const char *section = "";
    size_t i;

    fprintf(out, "; jangteod configuration: every setting with its default.\n");
    for (i = 0; i < NSETTINGS; i++) {
        const setting *s = &settings[i];
        if (strcmp(section, s->section)) {
            section = s->section;
            fprintf(out, "\n[%s]\n", section);
        }
        fprintf(out, "; %s\n%s = %s\n", s->comment, s->name, s->def);
    }
}
