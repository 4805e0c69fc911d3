/* The payment gateway client: PortOne (iamport) REST V1 over libcurl.
 *
 * Every call goes through the shared circuit breaker (core/breaker.h),
 * one breaker call per HTTP attempt, and has a connect timeout and a total
 * timeout per attempt ([payments] connect_timeout_ms, timeout_ms) inside a
 * deadline for the whole call, token fetch and pauses included
 * ([payments] deadline_ms). Idempotent calls — the token, a lookup, a
 * prepared-amount lookup and a cancel that carries `checksum` — are tried
 * up to retry_attempts times, retry_interval_ms apart (+-50 % jitter),
 * while the answer is a failure (no answer, 5xx, garbled) and the breaker
 * lets them. Anything else is sent once.
 *
 * The access token is shared by every worker (shared memory, like the
 * breaker) and used until 60 s before the gateway's `expired_at`, measured
 * against the gateway's own `now` so that a skewed local clock does not
 * matter. A 401 drops it and the call is tried once more with a new one.
 * The secret comes from [payments] imp_secret_file; it is sent in the body
 * of the token request only, and never logged.
 *
 * Results are typed: OK (the parsed answer), REFUSED (the gateway said no:
 * `code != 0` or a 4xx; `message` is its reason), NOT_FOUND (no such
 * payment) or UNAVAILABLE (no proper answer, or the breaker is open:
 * `rejected` says so and `retry_after_ms` when to come back). UNAVAILABLE
 * from a call that is not idempotent (prepare, a cancel without checksum)
 * means the gateway may or may not have done it: look before redoing it. */
#ifndef JT_PG_H
#define JT_PG_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/breaker.h"
#include "core/config.h"

#define JT_PG_UID_MAX    64          /* imp_uid is String(32), merchant_uid String(40) */
#define JT_PG_ANSWER_MAX (64 * 1024) /* a longer answer is not PortOne's */
#define JT_PG_NO_CHECKSUM (-1)

typedef enum {
    JT_PG_OK = 0,
    JT_PG_REFUSED,
    JT_PG_NOT_FOUND,
    JT_PG_UNAVAILABLE
} jt_pg_rc;

typedef enum {
    JT_PG_STATUS_UNKNOWN = 0,
    JT_PG_READY,
    JT_PG_PAID,
    JT_PG_CANCELLED,
    JT_PG_FAILED
} jt_pg_status;

typedef struct {
    char         imp_uid[JT_PG_UID_MAX + 1];
    char         merchant_uid[JT_PG_UID_MAX + 1];
    int64_t      amount;
    int64_t      cancel_amount;
    jt_pg_status status;
    char         currency[8];
    char         card_name[64];
    int64_t      paid_at;         /* unix seconds, 0 = not paid */
    int64_t      cancelled_at;    /* unix seconds, 0 = not cancelled */
} jt_pg_payment;

typedef struct {
    jt_pg_rc rc;
    int      http_status;     /* of the last attempt; 0 = no answer */
    int      code;            /* PortOne's `code` of the last answer */
    int      attempts;        /* HTTP requests sent, token fetches included */
    int      token_fetches;   /* of which getToken */
    int      rejected;        /* the breaker refused an attempt */
    int64_t  retry_after_ms;  /* with rejected: when it may let calls through */
    char     message[256];    /* why, when not OK (the gateway's words on REFUSED) */
} jt_pg_result;

typedef struct jt_pg {
    const jt_conf   *conf;
    jt_breaker_conf  breaker;
    void            *curl;     /* CURL *, made on first use */
    jt_arena         arena;    /* request bodies; reset per call */
    char            *answer;   /* JT_PG_ANSWER_MAX + 1 bytes */
    size_t           answer_len;
    int              answer_overflow;
    int              in_flight_limit; /* the bulkhead (core/breaker.h); 0 = none (the sweeper, the admin tool) */
    char             token[128];   /* the token in use */
    int64_t          token_until;  /* wall s: our own copy is good until then */
} jt_pg;

/* Master (before it forks, and on reload): the shared token cache, and
 * libcurl's global set-up once a gateway is configured. */
int  jt_pg_init_shared(const jt_conf *c);
/* The breaker settings of [payments]. */
void jt_pg_breaker_conf(const jt_conf *c, jt_breaker_conf *out);

/* A worker's client; cheap until the first call. Its calls take a place
 * in the bulkhead ([payments] max_calls_in_flight); a background process
 * sets in_flight_limit to 0 after init, it holds no worker. */
int  jt_pg_init(jt_pg *pg, const jt_conf *c);
void jt_pg_close(jt_pg *pg);
int  jt_pg_configured(const jt_pg *pg);

/* The calls. `res` is always filled; the return value is res->rc. */
jt_pg_rc jt_pg_token(jt_pg *pg, jt_pg_result *res);
jt_pg_rc jt_pg_lookup(jt_pg *pg, const char *imp_uid, jt_pg_payment *out, jt_pg_result *res);
/* The latest payment made for merchant_uid (PortOne's GET
 * /payments/find/{merchant_uid}): how a payment is found when its imp_uid
 * never reached us (the buyer closed the tab, the webhook was lost). */
jt_pg_rc jt_pg_find(jt_pg *pg, const char *merchant_uid, jt_pg_payment *out, jt_pg_result *res);
/* Would the breaker refuse a call now? 0, or ms until it may let one
 * through (jt_breaker_refusing; `count`: the caller gives up the call, so
 * it counts as rejected). */
int64_t  jt_pg_refusing(jt_pg *pg, int count);
jt_pg_rc jt_pg_prepare(jt_pg *pg, const char *merchant_uid, int64_t amount, jt_pg_result *res);
jt_pg_rc jt_pg_prepared(jt_pg *pg, const char *merchant_uid, int64_t *amount, jt_pg_result *res);
/* Refunds `amount` of imp_uid; `checksum` is what we believe is still
 * refundable (JT_PG_NO_CHECKSUM: none, and then no retry). */
jt_pg_rc jt_pg_cancel(jt_pg *pg, const char *imp_uid, int64_t amount, int64_t checksum, const char *reason,
                      jt_pg_payment *out, jt_pg_result *res);

/* Parsing PortOne answers (exposed for the unit tests). Each takes the
 * HTTP status and body of one answer, fills res->rc, code and message, and
 * returns what the breaker should count it as. */
jt_call_outcome jt_pg_parse_payment(int http_status, const char *body, size_t len, jt_pg_payment *out,
                                    jt_pg_result *res);
jt_call_outcome jt_pg_parse_token(int http_status, const char *body, size_t len, char *token, size_t tokenlen,
                                  int64_t *expired_at, int64_t *now, jt_pg_result *res);
jt_call_outcome jt_pg_parse_prepare(int http_status, const char *body, size_t len, char *merchant_uid,
                                    int64_t *amount, jt_pg_result *res);

/* Is addr (REMOTE_ADDR, as nginx passes it) one of [payments]
 * webhook_allow? Addresses are compared as addresses, not as text
 * ("::1" is "0:0::1"); anything that does not parse is refused. */
int jt_pg_webhook_allowed(const jt_conf *c, const char *addr);

const char *jt_pg_rc_name(jt_pg_rc rc);
const char *jt_pg_status_name(jt_pg_status s);

#endif
