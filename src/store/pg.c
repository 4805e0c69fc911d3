#include "store/pg.h"

#include "config.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <stdarg.h>
#include <json-c/json.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"

/* ---------------------------------------------------------------- the shared token
 *
 * One access token for every worker, in shared memory: a seqlock. A
 * writer makes `seq` odd (CAS from the even value it read), writes, and
 * makes it even again; a reader copies the token between two reads of an
 * even, unchanged `seq`, else it takes the cache as empty and fetches a
 * token itself (the gateway hands the same one back while it is valid, so
 * two workers fetching at once is harmless). Writers exclude each other
 * through the CAS: one that finds `seq` odd leaves the cache alone (the
 * writer inside has a token as good as its own). All fields are read and
 * written with atomics, so a reader never acts on a torn token. A writer
 * killed between its two stores would leave `seq` odd for good: then the
 * cache stays empty and each worker keeps the token it fetched itself
 * (jt_pg.token_until), which costs getToken calls, never correctness. */
typedef struct {
    uint64_t seq;
    int64_t  fresh_until;    /* wall s: use the token until then */
    uint64_t words[16];      /* the token, NUL-padded */
} pg_token_cache;

static pg_token_cache local_cache;
static pg_token_cache *token_cache = &local_cache;

static int
token_read(char out[128])
{
    uint64_t s1, s2, w[16];
    int64_t fresh;
    int i;

    s1 = __atomic_load_n(&token_cache->seq, __ATOMIC_ACQUIRE);
    if (s1 & 1) {
        return 0;
    }
    for (i = 0; i < 16; i++) {
        w[i] = __atomic_load_n(&token_cache->words[i], __ATOMIC_RELAXED);
    }
    fresh = __atomic_load_n(&token_cache->fresh_until, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    s2 = __atomic_load_n(&token_cache->seq, __ATOMIC_RELAXED);
    if (s1 != s2 || fresh <= jt_clock_wall_ms() / 1000) {
        return 0;
    }
    memcpy(out, w, 128);
    out[127] = '\0';
    return out[0] != '\0';
}

static void
token_write(const char *token, int64_t fresh_until)
{
    uint64_t s = __atomic_load_n(&token_cache->seq, __ATOMIC_ACQUIRE), w[16];
    int i;

    if ((s & 1) || !__atomic_compare_exchange_n(&token_cache->seq, &s, s + 1, 0, __ATOMIC_ACQ_REL,
                                                __ATOMIC_RELAXED)) {
        return;      /* another writer is inside */
    }
    __atomic_thread_fence(__ATOMIC_RELEASE);
    memset(w, 0, sizeof(w));
    memcpy(w, token, strnlen(token, 127));
    for (i = 0; i < 16; i++) {
        __atomic_store_n(&token_cache->words[i], w[i], __ATOMIC_RELAXED);
    }
    __atomic_store_n(&token_cache->fresh_until, fresh_until, __ATOMIC_RELAXED);
    __atomic_store_n(&token_cache->seq, s + 2, __ATOMIC_RELEASE);
    sodium_memzero(w, sizeof(w));
}

/* After a 401: forget the token, unless another worker has already put a
 * new one in its place. */
static void
token_drop(const char *bad)
{
    char cur[128];

    if (!token_read(cur) || strcmp(cur, bad) == 0) {
        token_write("", 0);
    }
    sodium_memzero(cur, sizeof(cur));
}

/* Safe to call again (the master does on every reload): the mapping is
 * made once, and libcurl is set up the first time a gateway is configured. */
int
jt_pg_init_shared(const jt_conf *c)
{
    static int curl_ready;
    void *p;

    if (token_cache == &local_cache) {
        if ((p = jt_shared_zalloc(sizeof(pg_token_cache))) == NULL) {
            return -1;
        }
        token_cache = p;
    }
    if (c->pg_url[0] != '\0' && !curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            return -1;
        }
        curl_ready = 1;
    }
    return 0;
}

void
jt_pg_breaker_conf(const jt_conf *c, jt_breaker_conf *out)
{
    out->window = c->breaker_window;
    out->min_calls = c->breaker_min_calls;
    out->failure_rate = c->breaker_failure_rate;
    out->slow_rate = c->breaker_slow_rate;
    out->slow_ms = c->breaker_slow_ms;
    out->open_ms = c->breaker_open_ms;
    out->half_open_calls = c->breaker_half_open_calls;
    /* no call that holds a trial outlives its deadline */
    out->trial_timeout_ms = c->pg_deadline_ms + 1000;
}

/* ---------------------------------------------------------------- small helpers */

/* Copies at most outlen - 1 bytes of s, cut at a UTF-8 character boundary. */
static void
copy_utf8(char *out, size_t outlen, const char *s)
{
    size_t n = strlen(s);

    if (n >= outlen) {
        n = outlen - 1;
        while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80) {
            n--;
        }
    }
    memcpy(out, s, n);
    out[n] = '\0';
}

static void
say(jt_pg_result *res, jt_pg_rc rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
say(jt_pg_result *res, jt_pg_rc rc, const char *fmt, ...)
{
    va_list ap;

    res->rc = rc;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof(res->message), fmt, ap);
    va_end(ap);
}

/* A uid goes into a URL path: letters, digits, '_', '-', '.' only. */
static int
valid_uid(const char *s)
{
    size_t i, n = s ? strlen(s) : 0;

    if (n == 0 || n > JT_PG_UID_MAX) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_'
              || ch == '-' || ch == '.')) {
            return 0;
        }
    }
    return 1;
}

/* ---------------------------------------------------------------- parsing answers */

static int
get_str(json_object *o, const char *key, char *out, size_t outlen, int required)
{
    json_object *v;
    const char *s;

    out[0] = '\0';
    if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
        return !required;
    }
    if (!json_object_is_type(v, json_type_string)) {
        return 0;
    }
    s = json_object_get_string(v);
    if (strlen(s) >= outlen) {
        return 0;
    }
    strcpy(out, s);
    return !required || out[0] != '\0';
}

/* A non-negative whole number, sent as an integer or as a double with no
 * fraction (PortOne's amounts are "number"). */
static int
get_whole(json_object *o, const char *key, int64_t *out, int required)
{
    json_object *v;
    double d;

    *out = 0;
    if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
        return !required;
    }
    if (json_object_is_type(v, json_type_int)) {
        *out = json_object_get_int64(v);
        return *out >= 0;
    }
    if (json_object_is_type(v, json_type_double)) {
        d = json_object_get_double(v);
        if (d >= 0 && d <= 1e15 && d == (double) (int64_t) d) {
            *out = (int64_t) d;
            return 1;
        }
    }
    return 0;
}

/* PortOne's envelope {code, message, response}. On JT_CALL_OK *resp is the
 * response object; *root (when not NULL) must be put by the caller. */
static jt_call_outcome
envelope(int http, const char *body, size_t len, json_object **root, json_object **resp, jt_pg_result *res)
{
    json_object *o = NULL, *v;
    json_tokener *tok;

    *root = *resp = NULL;
    res->http_status = http;
    res->code = 0;
    res->message[0] = '\0';
    if (http >= 500 || http < 100) {
        say(res, JT_PG_UNAVAILABLE, "the gateway answered HTTP %d", http);
        return JT_CALL_FAILED;
    }
    if (len > 0 && len <= JT_PG_ANSWER_MAX && (tok = json_tokener_new_ex(16)) != NULL) {
        /* strict JSON in valid UTF-8: the gateway's words reach our answers */
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        o = json_tokener_parse_ex(tok, body, (int) len);
        if (json_tokener_get_error(tok) != json_tokener_success) {
            json_object_put(o);
            o = NULL;
        }
        json_tokener_free(tok);
    }
    if (o == NULL || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, "code", &v)
        || !json_object_is_type(v, json_type_int)) {
        json_object_put(o);
        if (http >= 400) {
            say(res, http == 404 ? JT_PG_NOT_FOUND : JT_PG_REFUSED, "the gateway answered HTTP %d", http);
            return JT_CALL_REFUSED;
        }
        say(res, JT_PG_UNAVAILABLE, "the answer (HTTP %d) is not PortOne's JSON", http);
        return JT_CALL_FAILED;
    }
    *root = o;
    res->code = json_object_get_int(v);
    if (json_object_object_get_ex(o, "message", &v) && json_object_is_type(v, json_type_string)) {
        copy_utf8(res->message, sizeof(res->message), json_object_get_string(v));
    }
    if (http == 404 || http >= 400 || res->code != 0) {
        res->rc = http == 404 ? JT_PG_NOT_FOUND : JT_PG_REFUSED;
        if (res->message[0] == '\0') {
            snprintf(res->message, sizeof(res->message), "refused: HTTP %d, code %d", http, res->code);
        }
        return JT_CALL_REFUSED;
    }
    if (!json_object_object_get_ex(o, "response", resp) || !json_object_is_type(*resp, json_type_object)) {
        *resp = NULL;
        say(res, JT_PG_UNAVAILABLE, "code 0 but no response object in the answer");
        return JT_CALL_FAILED;
    }
    res->rc = JT_PG_OK;
    return JT_CALL_OK;
}

static jt_pg_status
status_of(const char *s)
{
    if (!strcmp(s, "ready")) {
        return JT_PG_READY;
    }
    if (!strcmp(s, "paid")) {
        return JT_PG_PAID;
    }
    if (!strcmp(s, "cancelled")) {
        return JT_PG_CANCELLED;
    }
    if (!strcmp(s, "failed")) {
        return JT_PG_FAILED;
    }
    return JT_PG_STATUS_UNKNOWN;
}

jt_call_outcome
jt_pg_parse_payment(int http_status, const char *body, size_t len, jt_pg_payment *out, jt_pg_result *res)
{
    json_object *root, *r, *v;
    jt_call_outcome o = envelope(http_status, body, len, &root, &r, res);
    char status[16];

    memset(out, 0, sizeof(*out));
    if (o == JT_CALL_OK) {
        if (!get_str(r, "imp_uid", out->imp_uid, sizeof(out->imp_uid), 1)
            || !get_str(r, "merchant_uid", out->merchant_uid, sizeof(out->merchant_uid), 1)
            || !get_whole(r, "amount", &out->amount, 1) || !get_whole(r, "cancel_amount", &out->cancel_amount, 0)
            || !get_str(r, "status", status, sizeof(status), 1)
            || !get_str(r, "currency", out->currency, sizeof(out->currency), 0)
            || !get_whole(r, "paid_at", &out->paid_at, 0) || !get_whole(r, "cancelled_at", &out->cancelled_at, 0)) {
            memset(out, 0, sizeof(*out));
            say(res, JT_PG_UNAVAILABLE, "the payment in the answer is malformed");
            o = JT_CALL_FAILED;
        } else {
            out->status = status_of(status);
            /* a display name only: cut rather than refuse */
            if (json_object_object_get_ex(r, "card_name", &v) && json_object_is_type(v, json_type_string)) {
                copy_utf8(out->card_name, sizeof(out->card_name), json_object_get_string(v));
            }
        }
    }
    json_object_put(root);
    return o;
}

jt_call_outcome
jt_pg_parse_token(int http_status, const char *body, size_t len, char *token, size_t tokenlen,
                  int64_t *expired_at, int64_t *now, jt_pg_result *res)
{
    json_object *root, *r;
    jt_call_outcome o = envelope(http_status, body, len, &root, &r, res);

    token[0] = '\0';
    *expired_at = *now = 0;
    if (o == JT_CALL_OK) {
        if (!get_str(r, "access_token", token, tokenlen, 1) || !get_whole(r, "expired_at", expired_at, 1)
            || !get_whole(r, "now", now, 0)) {
            sodium_memzero(token, tokenlen);
            say(res, JT_PG_UNAVAILABLE, "the token in the answer is malformed");
            o = JT_CALL_FAILED;
        } else if (*now == 0) {
            *now = jt_clock_wall_ms() / 1000;
        }
    }
    json_object_put(root);
    return o;
}

jt_call_outcome
jt_pg_parse_prepare(int http_status, const char *body, size_t len, char *merchant_uid, int64_t *amount,
                    jt_pg_result *res)
{
    json_object *root, *r;
    jt_call_outcome o = envelope(http_status, body, len, &root, &r, res);

    merchant_uid[0] = '\0';
    *amount = 0;
    if (o == JT_CALL_OK
        && (!get_str(r, "merchant_uid", merchant_uid, JT_PG_UID_MAX + 1, 1) || !get_whole(r, "amount", amount, 1))) {
        merchant_uid[0] = '\0';
        say(res, JT_PG_UNAVAILABLE, "the prepared amount in the answer is malformed");
        o = JT_CALL_FAILED;
    }
    json_object_put(root);
    return o;
}

/* ---------------------------------------------------------------- one HTTP attempt */

static size_t
on_answer(char *p, size_t size, size_t n, void *user)
{
    jt_pg *pg = user;
    size_t len = size * n;

    if (pg->answer_len + len > JT_PG_ANSWER_MAX) {
        pg->answer_overflow = 1;
        return 0;   /* libcurl stops with CURLE_WRITE_ERROR */
    }
    memcpy(pg->answer + pg->answer_len, p, len);
    pg->answer_len += len;
    pg->answer[pg->answer_len] = '\0';
    return len;
}

static CURL *
handle(jt_pg *pg)
{
    CURL *h = pg->curl;

    if (h != NULL) {
        return h;
    }
    h = curl_easy_init();
    if (h == NULL) {
        return NULL;
    }
    /* no signals (SIGALRM for DNS timeouts would hit a worker), no
     * redirects, no proxy from the environment: the gateway is reached
     * directly, as configured */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "jangteo/" PACKAGE_VERSION);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_answer);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, pg);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) JT_PG_ANSWER_MAX);
    pg->curl = h;
    return h;
}

typedef struct {
    int         post;
    const char *path;       /* after pg_url, e.g. /payments/imp_1 */
    const char *body;
    size_t      body_len;
    int         idempotent;
    int         is_token;
} pg_req;

/* Sends one request; *http is 0 when no answer came. */
static CURLcode
perform(jt_pg *pg, const pg_req *q, const char *bearer, int64_t timeout_ms, long *http, char *err, size_t errlen)
{
    const jt_conf *c = pg->conf;
    struct curl_slist *hdr = NULL, *h2;
    size_t base = strlen(c->pg_url);
    char url[JT_PATH_MAX + 2 * JT_PG_UID_MAX + 64], auth[160];
    /* Expect: none (no 100-continue round trip for a small body) */
    const char *lines[4] = { "Content-Type: application/json", "Accept: application/json", "Expect:", "" };
    CURL *h = handle(pg);
    CURLcode rc;
    size_t i;

    *http = 0;
    if (h == NULL) {
        snprintf(err, errlen, "cannot make a libcurl handle");
        return CURLE_FAILED_INIT;
    }
    while (base > 0 && c->pg_url[base - 1] == '/') {
        base--;
    }
    snprintf(url, sizeof(url), "%.*s%s", (int) base, c->pg_url, q->path);
    auth[0] = '\0';
    if (bearer != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer);
    }
    lines[3] = auth;
    for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        if (lines[i][0] == '\0') {
            continue;
        }
        if ((h2 = curl_slist_append(hdr, lines[i])) == NULL) {
            curl_slist_free_all(hdr);
            sodium_memzero(auth, sizeof(auth));
            snprintf(err, errlen, "out of memory");
            return CURLE_OUT_OF_MEMORY;
        }
        hdr = h2;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long) (c->pg_connect_timeout_ms < timeout_ms
                                                                ? c->pg_connect_timeout_ms : timeout_ms));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long) timeout_ms);
    if (q->post) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, q->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long) q->body_len);
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    pg->answer_len = 0;
    pg->answer_overflow = 0;
    pg->answer[0] = '\0';
    rc = curl_easy_perform(h);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, http);
    } else if (pg->answer_overflow) {
        snprintf(err, errlen, "the answer is longer than %d bytes", JT_PG_ANSWER_MAX);
    } else {
        snprintf(err, errlen, "%s", curl_easy_strerror(rc));
    }
    /* the headers (with the token) must not outlive the request */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdr);
    sodium_memzero(auth, sizeof(auth));
    return rc;
}

/* ---------------------------------------------------------------- the call loop */

/* The body built in b, or 0 (res filled) when it could not be built. */
static int
set_body(pg_req *q, const jt_buf *b, jt_pg_result *res)
{
    if (b->oom) {
        say(res, JT_PG_UNAVAILABLE, "out of memory");
        return 0;
    }
    q->body = b->data;
    q->body_len = b->len;
    return 1;
}

typedef jt_call_outcome (*pg_parse_fn)(jt_pg *pg, int http, void *out, jt_pg_result *res);

#define PLACE_NONE (-2)   /* -1: no bulkhead (jt_breaker_leave ignores it) */

/* A place in the bulkhead, waiting up to in_flight_wait_ms for one (a
 * healthy gateway frees places within milliseconds; a hanging one does not,
 * and then the caller is refused rather than queued behind it). */
static int
take_place(jt_pg *pg, jt_breaker *b, int32_t pid, int64_t deadline)
{
    int64_t until = jt_clock_mono_ms() + pg->conf->pg_in_flight_wait_ms;
    int place;

    if (pg->in_flight_limit <= 0) {
        return -1;
    }
    if (until > deadline) {
        until = deadline;
    }
    while ((place = jt_breaker_enter(b, pg->in_flight_limit, pid)) < 0) {
        if (jt_clock_mono_ms() >= until) {
            __atomic_fetch_add(&b->calls_crowded, 1, __ATOMIC_RELAXED);
            return PLACE_NONE;
        }
        jt_clock_sleep_ms(2);
    }
    return place;
}

static jt_pg_rc fetch_token(jt_pg *pg, int64_t deadline, jt_pg_result *res);

/* One call: token, breaker, attempts, pauses, all inside `deadline`. */
static jt_pg_rc
pg_call(jt_pg *pg, const pg_req *q, pg_parse_fn parse, void *out, int64_t deadline, jt_pg_result *res)
{
    const jt_conf *c = pg->conf;
    int attempt, reauthed = 0, place;
    jt_breaker *b = jt_breaker_get();
    int32_t pid = (int32_t) getpid();

    for (attempt = 1;; attempt++) {
        jt_breaker_permit permit;
        jt_call_outcome o;
        int64_t left, t0, took, pause;
        long http = 0;
        char err[128];
        CURLcode crc;

        if (!q->is_token && fetch_token(pg, deadline, res) != JT_PG_OK) {
            return res->rc;
        }
        left = deadline - jt_clock_mono_ms();
        if (left <= 0) {
            say(res, JT_PG_UNAVAILABLE, "no time left for the call (deadline_ms %lld)", (long long) c->pg_deadline_ms);
            return res->rc;
        }
        t0 = jt_clock_mono_ms();
        if ((place = take_place(pg, b, pid, deadline)) == PLACE_NONE) {
            res->rejected = 1;
            res->http_status = 0;
            res->retry_after_ms = 1000;
            say(res, JT_PG_UNAVAILABLE, "%d workers are waiting for the payment gateway already", pg->in_flight_limit);
            return res->rc;
        }
        permit = jt_breaker_acquire(b, &pg->breaker, t0);
        if (!permit.allowed) {
            jt_breaker_leave(b, place, pid);
            res->rejected = 1;
            res->http_status = 0;
            res->retry_after_ms = permit.retry_after_ms;
            say(res, JT_PG_UNAVAILABLE, "the payment gateway's circuit breaker is open");
            return res->rc;
        }
        res->attempts++;
        if (q->is_token) {
            res->token_fetches++;
            JT_METRIC_INC(pg_token_fetches);
        }
        crc = perform(pg, q, q->is_token ? NULL : pg->token, left < c->pg_timeout_ms ? left : c->pg_timeout_ms,
                      &http, err, sizeof(err));
        took = jt_clock_mono_ms() - t0;
        if (crc != CURLE_OK) {
            res->http_status = 0;
            res->code = 0;
            say(res, JT_PG_UNAVAILABLE, "%s", err);
            o = JT_CALL_FAILED;
        } else {
            o = parse(pg, (int) http, out, res);
        }
        jt_breaker_record(b, &pg->breaker, &permit, o, took, jt_clock_mono_ms());
        jt_breaker_leave(b, place, pid);

        if (!q->is_token && http == 401 && !reauthed) {
            /* the token expired early or the gateway forgot it: one more try */
            token_drop(pg->token);
            pg->token_until = 0;
            reauthed = 1;
            attempt--;
            continue;
        }
        if (o != JT_CALL_FAILED) {
            return res->rc;
        }
        jt_log_warn("pg: %s %s: attempt %d of %lld failed after %lld ms: %s", q->post ? "POST" : "GET", q->path,
                    attempt, (long long) (q->idempotent ? c->pg_retry_attempts : 1), (long long) took, res->message);
        if (!q->idempotent || attempt >= c->pg_retry_attempts) {
            return res->rc;
        }
        /* retry_interval_ms +- 50 % */
        pause = c->pg_retry_interval_ms / 2 + (c->pg_retry_interval_ms > 0
                                                   ? (int64_t) randombytes_uniform((uint32_t) c->pg_retry_interval_ms + 1)
                                                   : 0);
        if (jt_clock_mono_ms() + pause >= deadline) {
            return res->rc;
        }
        jt_clock_sleep_ms(pause);
        JT_METRIC_INC(pg_retries);
    }
}

typedef struct {
    char    token[128];
    int64_t expired_at, now;
} token_answer;

static jt_call_outcome
parse_token_cb(jt_pg *pg, int http, void *out, jt_pg_result *res)
{
    token_answer *t = out;
    return jt_pg_parse_token(http, pg->answer, pg->answer_len, t->token, sizeof(t->token), &t->expired_at,
                             &t->now, res);
}

static jt_call_outcome
parse_payment_cb(jt_pg *pg, int http, void *out, jt_pg_result *res)
{
    return jt_pg_parse_payment(http, pg->answer, pg->answer_len, out, res);
}

typedef struct {
    char    merchant_uid[JT_PG_UID_MAX + 1];
    int64_t amount;
} prepare_answer;

static jt_call_outcome
parse_prepare_cb(jt_pg *pg, int http, void *out, jt_pg_result *res)
{
    prepare_answer *p = out;
    return jt_pg_parse_prepare(http, pg->answer, pg->answer_len, p->merchant_uid, &p->amount, res);
}

/* The shared token if it is fresh, else a new one from getToken, used
 * until 60 s before it expires by the gateway's clock. */
static jt_pg_rc
fetch_token(jt_pg *pg, int64_t deadline, jt_pg_result *res)
{
    const jt_conf *c = pg->conf;
    token_answer t;
    pg_req q = { 1, "/users/getToken", NULL, 0, 1, 1 };
    jt_buf b;
    jt_pg_rc rc;

    if (token_read(pg->token) || (pg->token[0] != '\0' && pg->token_until > jt_clock_wall_ms() / 1000)) {
        return JT_PG_OK;
    }
    jt_buf_init(&b, &pg->arena, 64 + 2 * (strlen(c->imp_key) + strlen(c->imp_secret)));
    jt_buf_adds(&b, "{\"imp_key\":");
    jt_json_escape(&b, c->imp_key, strlen(c->imp_key));
    jt_buf_adds(&b, ",\"imp_secret\":");
    jt_json_escape(&b, c->imp_secret, strlen(c->imp_secret));
    jt_buf_addc(&b, '}');
    if (!set_body(&q, &b, res)) {
        return res->rc;
    }
    rc = pg_call(pg, &q, parse_token_cb, &t, deadline, res);
    sodium_memzero(b.data, b.len);
    if (rc != JT_PG_OK) {
        /* say which step failed; the gateway's own words stay */
        char why[sizeof(res->message)];
        memcpy(why, res->message, sizeof(why));
        snprintf(res->message, sizeof(res->message), "getToken: %.*s", (int) sizeof(why) - 12, why);
        pg->token[0] = '\0';
        return rc;
    }
    snprintf(pg->token, sizeof(pg->token), "%s", t.token);
    pg->token_until = jt_clock_wall_ms() / 1000 + (t.expired_at - t.now) - 60;
    token_write(t.token, pg->token_until);
    sodium_memzero(&t, sizeof(t));
    return JT_PG_OK;
}

/* ---------------------------------------------------------------- the API */

int
jt_pg_init(jt_pg *pg, const jt_conf *c)
{
    memset(pg, 0, sizeof(*pg));
    pg->conf = c;
    jt_pg_breaker_conf(c, &pg->breaker);
    pg->in_flight_limit = (int) (c->pg_max_in_flight > 0 ? c->pg_max_in_flight
                                 : c->workers / 4 > 1 ? c->workers / 4 : 1);
    if (jt_arena_init(&pg->arena, 4096) != 0) {
        return -1;
    }
    pg->answer = malloc(JT_PG_ANSWER_MAX + 1);
    if (pg->answer == NULL) {
        jt_arena_destroy(&pg->arena);
        return -1;
    }
    pg->answer[0] = '\0';
    return 0;
}

void
jt_pg_close(jt_pg *pg)
{
    if (pg->curl != NULL) {
        curl_easy_cleanup(pg->curl);
        pg->curl = NULL;
    }
    if (pg->answer != NULL) {
        free(pg->answer);
        pg->answer = NULL;
        jt_arena_destroy(&pg->arena);
    }
    sodium_memzero(pg->token, sizeof(pg->token));
}

int
jt_pg_configured(const jt_pg *pg)
{
    return pg->conf != NULL && pg->conf->pg_url[0] != '\0' && pg->answer != NULL;
}

/* Common start of every call: a clean result, a fresh arena, a deadline;
 * `uid` (when not NULL) checked, and prefix + uid as the path (when
 * `path` is not NULL). 0 with res filled when the call cannot go out. */
static int
begin(jt_pg *pg, jt_pg_result *res, int64_t *deadline, const char *uid, const char *prefix, const char **path)
{
    jt_buf p;

    memset(res, 0, sizeof(*res));
    if (!jt_pg_configured(pg)) {
        say(res, JT_PG_UNAVAILABLE, "no payment gateway is configured ([payments] pg_url)");
        return 0;
    }
    if (uid != NULL && !valid_uid(uid)) {
        say(res, JT_PG_REFUSED, "malformed uid (1 to %d letters, digits, '_', '-', '.')", JT_PG_UID_MAX);
        return 0;
    }
    jt_arena_reset(&pg->arena);
    *deadline = jt_clock_mono_ms() + pg->conf->pg_deadline_ms;
    if (path != NULL) {
        jt_buf_init(&p, &pg->arena, strlen(prefix) + strlen(uid) + 1);
        jt_buf_adds(&p, prefix);
        jt_buf_adds(&p, uid);
        if (p.oom) {
            say(res, JT_PG_UNAVAILABLE, "out of memory");
            return 0;
        }
        *path = jt_buf_cstr(&p);
    }
    return 1;
}

jt_pg_rc
jt_pg_token(jt_pg *pg, jt_pg_result *res)
{
    int64_t deadline;

    if (!begin(pg, res, &deadline, NULL, NULL, NULL)) {
        return res->rc;
    }
    return fetch_token(pg, deadline, res);
}

jt_pg_rc
jt_pg_lookup(jt_pg *pg, const char *imp_uid, jt_pg_payment *out, jt_pg_result *res)
{
    pg_req q = { 0, NULL, NULL, 0, 1, 0 };
    int64_t deadline;

    memset(out, 0, sizeof(*out));
    if (!begin(pg, res, &deadline, imp_uid, "/payments/", &q.path)) {
        return res->rc;
    }
    return pg_call(pg, &q, parse_payment_cb, out, deadline, res);
}

jt_pg_rc
jt_pg_find(jt_pg *pg, const char *merchant_uid, jt_pg_payment *out, jt_pg_result *res)
{
    pg_req q = { 0, NULL, NULL, 0, 1, 0 };
    int64_t deadline;

    memset(out, 0, sizeof(*out));
    if (!begin(pg, res, &deadline, merchant_uid, "/payments/find/", &q.path)) {
        return res->rc;
    }
    return pg_call(pg, &q, parse_payment_cb, out, deadline, res);
}

int64_t
jt_pg_refusing(jt_pg *pg, int count)
{
    jt_breaker *b = jt_breaker_get();

    if (!jt_pg_configured(pg)) {
        return 0;
    }
    return jt_breaker_refusing(b, &pg->breaker, jt_clock_mono_ms(), count);
}

jt_pg_rc
jt_pg_prepare(jt_pg *pg, const char *merchant_uid, int64_t amount, jt_pg_result *res)
{
    pg_req q = { 1, "/payments/prepare", NULL, 0, 0, 0 };
    prepare_answer a;
    int64_t deadline;
    jt_buf b;

    if (!begin(pg, res, &deadline, merchant_uid, NULL, NULL)) {
        return res->rc;
    }
    if (amount <= 0) {
        say(res, JT_PG_REFUSED, "the amount must be positive");
        return res->rc;
    }
    jt_buf_init(&b, &pg->arena, 64 + strlen(merchant_uid));
    jt_buf_addf(&b, "{\"merchant_uid\":\"%s\",\"amount\":%lld}", merchant_uid, (long long) amount);
    if (!set_body(&q, &b, res)) {
        return res->rc;
    }
    return pg_call(pg, &q, parse_prepare_cb, &a, deadline, res);
}

jt_pg_rc
jt_pg_prepared(jt_pg *pg, const char *merchant_uid, int64_t *amount, jt_pg_result *res)
{
    pg_req q = { 0, NULL, NULL, 0, 1, 0 };
    prepare_answer a;
    int64_t deadline;

    *amount = 0;
    if (!begin(pg, res, &deadline, merchant_uid, "/payments/prepare/", &q.path)) {
        return res->rc;
    }
    if (pg_call(pg, &q, parse_prepare_cb, &a, deadline, res) == JT_PG_OK) {
        *amount = a.amount;
    }
    return res->rc;
}

jt_pg_rc
jt_pg_cancel(jt_pg *pg, const char *imp_uid, int64_t amount, int64_t checksum, const char *reason,
             jt_pg_payment *out, jt_pg_result *res)
{
    pg_req q = { 1, "/payments/cancel", NULL, 0, checksum != JT_PG_NO_CHECKSUM, 0 };
    int64_t deadline;
    jt_buf b;

    memset(out, 0, sizeof(*out));
    if (!begin(pg, res, &deadline, imp_uid, NULL, NULL)) {
        return res->rc;
    }
    if (amount <= 0 || (checksum != JT_PG_NO_CHECKSUM && checksum < amount)) {
        say(res, JT_PG_REFUSED, "the amount must be positive and at most the checksum");
        return res->rc;
    }
    reason = reason ? reason : "";
    jt_buf_init(&b, &pg->arena, 128 + strlen(imp_uid) + 2 * strlen(reason));
    jt_buf_addf(&b, "{\"imp_uid\":\"%s\",\"amount\":%lld", imp_uid, (long long) amount);
    if (checksum != JT_PG_NO_CHECKSUM) {
        jt_buf_addf(&b, ",\"checksum\":%lld", (long long) checksum);
    }
    jt_buf_adds(&b, ",\"reason\":");
    jt_json_escape(&b, reason, strlen(reason));
    jt_buf_addc(&b, '}');
    if (!set_body(&q, &b, res)) {
        return res->rc;
    }
    return pg_call(pg, &q, parse_payment_cb, out, deadline, res);
}

static int
parse_addr(const char *s, unsigned char out[16], int *family)
{
    if (inet_pton(AF_INET, s, out) == 1) {
        *family = AF_INET;
        return 1;
    }
    if (inet_pton(AF_INET6, s, out) == 1) {
        *family = AF_INET6;
        return 1;
    }
    return 0;
}

int
jt_pg_webhook_allowed(const jt_conf *c, const char *addr)
{
    char list[sizeof(c->webhook_allow)], *tok, *save = NULL;
    unsigned char want[16], have[16];
    int fw, fh;

    if (addr == NULL || !parse_addr(addr, have, &fh)) {
        return 0;
    }
    memcpy(list, c->webhook_allow, sizeof(list));
    for (tok = strtok_r(list, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save)) {
        if (parse_addr(tok, want, &fw) && fw == fh && !memcmp(want, have, fw == AF_INET ? 4 : 16)) {
            return 1;
        }
    }
    return 0;
}

const char *
jt_pg_rc_name(jt_pg_rc rc)
{
    switch (rc) {
    case JT_PG_OK:        return "ok";
    case JT_PG_REFUSED:   return "refused";
    case JT_PG_NOT_FOUND: return "not_found";
    default:              return "unavailable";
    }
}

const char *
jt_pg_status_name(jt_pg_status s)
{
    switch (s) {
    case JT_PG_READY:     return "ready";
    case JT_PG_PAID:      return "paid";
    case JT_PG_CANCELLED: return "cancelled";
    case JT_PG_FAILED:    return "failed";
    default:              return "unknown";
    }
}
