#include "domain/webhooks.h"

#include <curl/curl.h>
#include <json-c/json.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/pii.h"
#include "domain/accounts.h"
#include "domain/common.h"
#include "domain/cursor.h"
#include "domain/events.h"
#include "domain/write.h"
#include "http/json.h"
#include "store/db.h"

#define TIME(col) "DATE_FORMAT(" col ", '%Y-%m-%dT%H:%i:%s.%fZ')"
#define SECRET_FIELD "webhooks.secret"
#define MAX_TOPICS 16

static const char SQL_INSERT[] =
    "INSERT INTO webhooks (url, events, secret_enc, created_by) VALUES (?, ?, ?, ?)"
    " RETURNING id, " TIME("created_at");
#define WEBHOOK_COLUMNS "SELECT id, url, events, active, " TIME("created_at") " FROM webhooks"
static const char SQL_PAGE[] = WEBHOOK_COLUMNS " WHERE 1 = ? AND id < ? ORDER BY id DESC LIMIT ?";
static const char SQL_EXISTS[] = "SELECT 1 FROM webhooks WHERE id = ?";
static const char SQL_DELIVERIES[] =
    "SELECT id, event_id, topic, status, attempts, last_status_code, " TIME("next_attempt_at") ", "
    TIME("delivered_at") ", " TIME("created_at") ", last_duration_ms FROM webhook_deliveries"
    " WHERE webhook_id = ? AND id < ?"
    " ORDER BY id DESC LIMIT ?";
static const char SQL_ATTEMPTS[] =
    "SELECT attempt_no, status_code, error, duration_ms, " TIME("at") " FROM webhook_attempts"
    " WHERE delivery_id = ? ORDER BY id LIMIT 100";

/* the consumer's side: the batch's events (read, not locked: what
 * serialises two consumers handed the same event is the delivery's unique
 * key, SQL_DELIVERY_INSERT) */
static const char SQL_EVENTS[] =
    "SELECT x.id, x.topic, x.payload, " TIME("x.created_at") " FROM outbox x JOIN JSON_TABLE(?, "
    JT_EVENT_IDS_TABLE ") j ON j.id = x.id";
static const char SQL_ACTIVE[] =
    "SELECT id, events, url, secret_enc FROM webhooks WHERE active = 1 ORDER BY id LIMIT 1000";
/* the batch's deliveries in one statement: [{w: webhook, e: event, t:
 * topic, l: the lease in microseconds when this consumer calls it at
 * once, else 0}]; those are inserted claimed (leased, version 1), as a
 * claim would leave them, the others due now for the next claim. A pair
 * made before (the event came again: a redelivery, a reclaim, a sweep) is
 * left as it is and not returned, so it is never called again from here;
 * a pair another consumer is inserting at the same moment waits on the
 * unique key until that one commits (then it is not returned either) or
 * rolls back. What it returns is what SQL_CLAIMABLE reads of a claim's
 * rows (id, event_id, attempts, the version before the claim: 0 for one
 * inserted leased, at version 1), plus the webhook and whether it was
 * leased (the version written). */
#define DELIVERY_TABLE                                                                                     \
    "JSON_TABLE(?, '$[*]' COLUMNS (n FOR ORDINALITY, w BIGINT UNSIGNED PATH '$.w', e BIGINT UNSIGNED PATH '$.e'," \
    " t VARCHAR(64) PATH '$.t', l BIGINT PATH '$.l')) j"
static const char SQL_DELIVERY_INSERT[] =
    "INSERT IGNORE INTO webhook_deliveries (webhook_id, event_id, topic, lease_until, next_attempt_at, version)"
    " SELECT j.w, j.e, j.t, IF(j.l > 0, NOW(6) + INTERVAL j.l MICROSECOND, NULL),"
    " IF(j.l > 0, NOW(6) + INTERVAL j.l MICROSECOND, NOW(6)), IF(j.l > 0, 1, 0) FROM " DELIVERY_TABLE
    " ORDER BY j.n RETURNING id, event_id, attempts, 0, webhook_id, version";
enum { L_ID, L_EVENT, L_ATTEMPTS, L_VERSION, L_WEBHOOK, L_LEASED };
/* lost: an event an active webhook registered before it wants, with no
 * delivery to that webhook (wants() in SQL: events is a comma-separated
 * list of topics) */
static const char SQL_LOST[] = JT_EVENTS_LOST_SQL(
    "EXISTS (SELECT 1 FROM webhooks w WHERE w.active = 1 AND w.created_at <= x.created_at"
    " AND FIND_IN_SET(x.topic, w.events) > 0 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d"
    " WHERE d.webhook_id = w.id AND d.event_id = x.id))");
/* A claim moves next_attempt_at to its lease's end (the earliest another
 * consumer may try, should this one die), so due is one index range of
 * webhook_deliveries_due: the deliveries in flight are not read over and
 * over by every claim. */
#define DUE "status = 'PENDING' AND next_attempt_at <= NOW(6)"
/* the webhooks with a due delivery nobody holds: the earliest next try of
 * their pending ones, one index entry read per webhook (the index's order,
 * ORDER BY ... LIMIT 1), compared outside. Written as EXISTS, the optimizer
 * materialises the semi-join, a scan of every delivery ever made; written
 * with the time inside the subquery, it reads every pending delivery of
 * the webhook (the time is no range there: w.id is not a constant), and
 * thousands in flight are pending. Then their oldest ones, locked (SKIP
 * LOCKED: another consumer claiming the same rows takes the next ones
 * instead of waiting) and leased in one transaction. */
static const char SQL_DUE_HOOKS[] =
    "SELECT w.id, w.events, w.url, w.secret_enc FROM webhooks w WHERE w.active = 1 AND (SELECT d.next_attempt_at"
    " FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.status = 'PENDING' ORDER BY d.next_attempt_at"
    " LIMIT 1) <= NOW(6) ORDER BY w.id LIMIT 1000";
static const char SQL_CLAIMABLE[] =
    "SELECT id, event_id, attempts, version FROM webhook_deliveries WHERE webhook_id = ? AND " DUE
    " ORDER BY next_attempt_at, id LIMIT ? FOR UPDATE SKIP LOCKED";
static const char SQL_CLAIM[] =
    "UPDATE webhook_deliveries d JOIN JSON_TABLE(?, " JT_EVENT_IDS_TABLE ") j ON j.id = d.id"
    " SET d.lease_until = NOW(6) + INTERVAL ? MICROSECOND, d.next_attempt_at = NOW(6) + INTERVAL ? MICROSECOND,"
    " d.version = d.version + 1";
static const char SQL_CALL_EVENTS[] =
    "SELECT x.id, x.topic, x.payload, " TIME("x.created_at") " FROM outbox x JOIN JSON_TABLE(?, "
    JT_EVENT_IDS_TABLE ") j ON j.id = x.id";
static const char SQL_RELEASE[] =
    "UPDATE webhook_deliveries SET lease_until = NULL, next_attempt_at = NOW(6), version = version + 1"
    " WHERE id = ? AND version = ?";
/* A batch's outcomes in two statements (one when all delivered), from one JSON array of
 * {d: delivery, v: the version its claim wrote, a: attempt, c: status code
 * or null, s: status, b: microseconds to the next try, e: error or null,
 * ms: duration}: each fenced by its version (one whose lease ran out and
 * was claimed again is not touched), then the attempt rows of exactly the
 * ones updated that failed: those now at v + 1 with the attempt count
 * written. No other write gives a delivery that pair: a claim or a release
 * bumps the version without counting an attempt. The attempt that
 * delivered has no row: it is the delivery row's last_status_code,
 * last_duration_ms and delivered_at. */
#define OUTCOME_TABLE                                                                                          \
    "JSON_TABLE(?, '$[*]' COLUMNS (n FOR ORDINALITY, d BIGINT UNSIGNED PATH '$.d', v BIGINT UNSIGNED PATH '$.v'," \
    " a INT PATH '$.a', c INT PATH '$.c', s VARCHAR(16) PATH '$.s', b BIGINT PATH '$.b',"                     \
    " e VARCHAR(120) PATH '$.e', ms BIGINT PATH '$.ms')) j"
static const char SQL_OUTCOMES[] =
    "UPDATE webhook_deliveries x JOIN " OUTCOME_TABLE " ON x.id = j.d AND x.version = j.v"
    " SET x.attempts = j.a, x.last_status_code = j.c, x.last_duration_ms = j.ms, x.status = j.s,"
    " x.next_attempt_at = NOW(6) + INTERVAL j.b"
    " MICROSECOND, x.lease_until = NULL, x.delivered_at = IF(j.s = 'DELIVERED', NOW(6), NULL), x.version = x.version + 1";
static const char SQL_ATTEMPTS_INSERT[] =
    "INSERT INTO webhook_attempts (delivery_id, attempt_no, status_code, error, duration_ms)"
    " SELECT j.d, j.a, j.c, j.e, j.ms FROM " OUTCOME_TABLE " JOIN webhook_deliveries x ON x.id = j.d"
    " AND x.version = j.v + 1 AND x.attempts = j.a WHERE j.s <> 'DELIVERED' ORDER BY j.n";

/* --- validation --------------------------------------------------------------------- */

/* An absolute http or https URL with a host, as curl parses it. */
static int
valid_url(const char *url)
{
    CURLU *h = curl_url();
    char *scheme = NULL, *host = NULL;
    int ok = 0;

    if (h == NULL) {
        return 0;
    }
    if (curl_url_set(h, CURLUPART_URL, url, 0) == CURLUE_OK
        && curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK
        && curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        ok = (!strcmp(scheme, "http") || !strcmp(scheme, "https")) && host[0] != '\0';
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(h);
    return ok && strspn(url, "!#$%&'()*+,-./0123456789:;=?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]_abcdefghijklmnopqrstuvwxyz~")
                     == strlen(url);
}

/* "whsec_" and the base64 of a 24..64-byte key (the Standard Webhooks
 * form): the key's bytes into key[64], their count, or -1. */
static int
secret_key(const char *secret, unsigned char key[64])
{
    size_t n;

    if (strncmp(secret, "whsec_", 6) != 0
        || sodium_base642bin(key, 64, secret + 6, strlen(secret + 6), NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL)
               != 0
        || n < 24) {
        return -1;
    }
    return (int) n;
}

int
webhooks_sign(const char *secret, const char *id, const char *ts, const char *body, size_t len, char *out,
              size_t outlen)
{
    crypto_auth_hmacsha256_state st;
    unsigned char key[64], mac[crypto_auth_hmacsha256_BYTES];
    int n = secret_key(secret, key);

    if (n < 0 || outlen < 3 + sodium_base64_ENCODED_LEN(sizeof(mac), sodium_base64_VARIANT_ORIGINAL)) {
        return -1;
    }
    crypto_auth_hmacsha256_init(&st, key, (size_t) n);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *) id, strlen(id));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *) ".", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *) ts, strlen(ts));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *) ".", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *) body, len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_memzero(key, sizeof(key));
    memcpy(out, "v1,", 3);
    sodium_bin2base64(out + 3, outlen - 3, mac, sizeof(mac), sodium_base64_VARIANT_ORIGINAL);
    return 0;
}

/* The topics: 1 to MAX_TOPICS known ones, no repeats, as "a,b,c". */
static jt_err
parse_topics(jt_req *r, json_object *o, const char **out)
{
    json_object *ev;
    size_t n, i, j;
    jt_buf b;

    if (!json_object_object_get_ex(o, "events", &ev) || ev == NULL || !json_object_is_type(ev, json_type_array)) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'events' must be an array of event types");
    }
    n = json_object_array_length(ev);
    if (n < 1 || n > MAX_TOPICS) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'events' names 1 to %d event types", MAX_TOPICS);
    }
    jt_buf_init(&b, r->arena, 256);
    for (i = 0; i < n; i++) {
        json_object *t = json_object_array_get_idx(ev, i);
        const char *s;

        if (t == NULL || !json_object_is_type(t, json_type_string)
            || !events_known_topic(s = json_object_get_string(t))) {
            return jt_fail(r, JT_E_INVALID_REQUEST, "events[%zu] is not an event type (e.g. order.paid)", i);
        }
        for (j = 0; j < i; j++) {
            if (!strcmp(json_object_get_string(json_object_array_get_idx(ev, j)), s)) {
                return jt_fail(r, JT_E_INVALID_REQUEST, "events[%zu] repeats an earlier one", i);
            }
        }
        jt_buf_addf(&b, "%s%s", i ? "," : "", s);
    }
    *out = jt_buf_cstr(&b);
    return b.oom ? JT_E_INTERNAL : JT_OK;
}

static void
write_topics(jt_json *w, const char *csv)
{
    const char *p = csv;

    jw_key(w, "events");
    jw_arr_open(w);
    while (*p) {
        size_t n = strcspn(p, ",");
        jw_strn(w, p, n);
        p += n + (p[n] == ',');
    }
    jw_arr_close(w);
}

static jt_err
require_admin(jt_req *r, jt_principal *who)
{
    jt_err e = auth_require(r, who);

    if (e == JT_OK && !who->is_admin) {
        return jt_fail(r, JT_E_FORBIDDEN, "webhooks are managed by admins");
    }
    return e;
}

/* --- the routes --------------------------------------------------------------------- */

typedef struct {
    jt_req        *r;
    const char    *url;
    const char    *topics;
    unsigned char *sealed;
    size_t         sealed_len;
    int64_t        admin;
    jt_buf         body;
} create_tx;

static jt_tx_step
create_body(jt_tx *tx)
{
    create_tx *t = tx->data;
    jt_val p[4] = { JT_VS(t->url), JT_VS(t->topics), JT_VB(t->sealed, t->sealed_len), JT_VI(t->admin) };
    jt_rows rows;
    jt_json w;

    JT_TX_EXEC(tx, SQL_INSERT, p, 4, &rows);
    if (rows.nrows != 1) {
        tx->db_rc = JT_DB_ERROR;
        return JT_TX_DBERR;
    }
    jt_json_begin(t->r, &t->body, &w, 512 + strlen(t->url));
    jw_obj_open(&w);
    jw_kint(&w, "id", jt_cell(&rows, 0, 0)->i);
    jw_kstr(&w, "url", t->url);
    write_topics(&w, t->topics);
    jw_kbool(&w, "active", 1);
    jw_kstr(&w, "createdAt", jt_cell(&rows, 0, 1)->s);
    jw_obj_close(&w);
    jt_write_answer(tx, 201, &t->body, "WEBHOOK", jt_cell(&rows, 0, 0)->i);
    return JT_TX_COMMIT;
}

/* POST /api/v1/admin/webhooks {"url","events":[...],"secret":"whsec_..."}.
 * The secret is kept sealed, to sign with; no answer ever shows it. */
jt_err
webhooks_create(jt_req *r)
{
    static const char *const known[] = { "url", "events", "secret", NULL };
    static const jt_err none = JT_E_INTERNAL;   /* the insert never refuses */
    unsigned char key[64];
    const char *secret;
    jt_principal who;
    json_object *o;
    jt_write *wr;
    create_tx *t;
    jt_err e;

    if ((t = jt_pcalloc(r->arena, sizeof(*t))) == NULL) {
        return JT_E_INTERNAL;
    }
    t->r = r;
    if ((e = require_admin(r, &who)) != JT_OK || (e = jt_json_body(r, &o)) != JT_OK
        || (e = jt_write_begin(r, &wr, who.user_id, o, JT_WRITE_KEY_OPTIONAL)) != JT_OK || wr->replayed
        || (e = jt_json_only(r, o, "", known)) != JT_OK
        || (e = jt_json_str(r, o, "url", JT_REQUIRED, 10, JT_WEBHOOK_URL_MAX, &t->url)) != JT_OK
        || (e = parse_topics(r, o, &t->topics)) != JT_OK
        || (e = jt_json_str(r, o, "secret", JT_REQUIRED, 38, 96, &secret)) != JT_OK) {
        return e;
    }
    if (!valid_url(t->url)) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'url' must be an absolute http or https URL");
    }
    if (secret_key(secret, key) < 0) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'secret' must be whsec_ and the base64 of 24 to 64 random bytes");
    }
    sodium_memzero(key, sizeof(key));
    t->admin = who.user_id;
    t->sealed = jt_pii_seal(r->arena, SECRET_FIELD, secret, strlen(secret), &t->sealed_len);
    if (t->sealed == NULL) {
        return jt_fail(r, JT_E_INTERNAL, "cannot seal the secret");
    }
    if ((e = jt_write_run(r, wr, create_body, t, &none)) != JT_OK) {
        return e;
    }
    jt_write_finish(r, wr);
    return JT_OK;
}

static jt_err
webhook_item(jt_req *r, jt_json *w, const jt_rows *rows, int i)
{
    (void) r;
    jw_obj_open(w);
    jw_kint(w, "id", jt_cell(rows, i, 0)->i);
    jw_kstr(w, "url", jt_cell(rows, i, 1)->s);
    write_topics(w, jt_cell(rows, i, 2)->s);
    jw_kbool(w, "active", jt_cell(rows, i, 3)->i != 0);
    jw_kstr(w, "createdAt", jt_cell(rows, i, 4)->s);
    jw_obj_close(w);
    return JT_OK;
}

/* GET /api/v1/admin/webhooks?cursor=&limit= (no secret, ever) */
jt_err
webhooks_list(jt_req *r)
{
    jt_val p[1] = { JT_VI(1) };
    jt_principal who;
    jt_cursor c;
    jt_err e;

    if ((e = require_admin(r, &who)) != JT_OK || (e = jt_cursor_parse(r, &c, 100)) != JT_OK) {
        return e;
    }
    return jt_cursor_answer(r, &c, SQL_PAGE, p, 1, 0, 2300, webhook_item);
}

static jt_err
delivery_item(jt_req *r, jt_json *w, const jt_rows *rows, int i)
{
    jt_val p[1] = { JT_VI(jt_cell(rows, i, 0)->i) };
    jt_rows at;
    jt_db_rc rc;
    int k;

    if ((rc = jt_db_exec(r->db, r->arena, SQL_ATTEMPTS, p, 1, &at)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    jw_obj_open(w);
    jw_kint(w, "id", jt_cell(rows, i, 0)->i);
    jw_kint(w, "eventId", jt_cell(rows, i, 1)->i);
    jw_kstr(w, "type", jt_cell(rows, i, 2)->s);
    jw_kstr(w, "status", jt_cell(rows, i, 3)->s);
    jw_kint(w, "attempts", jt_cell(rows, i, 4)->i);
    if (jt_cell(rows, i, 5)->type == JT_V_NULL) {
        jw_knull(w, "lastStatusCode");
    } else {
        jw_kint(w, "lastStatusCode", jt_cell(rows, i, 5)->i);
    }
    if (strcmp(jt_cell(rows, i, 3)->s, "PENDING") == 0) {
        jw_kstr(w, "nextAttemptAt", jt_cell(rows, i, 6)->s);
    } else {
        jw_knull(w, "nextAttemptAt");
    }
    if (jt_cell(rows, i, 7)->type == JT_V_NULL) {
        jw_knull(w, "deliveredAt");
    } else {
        jw_kstr(w, "deliveredAt", jt_cell(rows, i, 7)->s);
    }
    jw_kstr(w, "createdAt", jt_cell(rows, i, 8)->s);
    jw_key(w, "attemptLog");
    jw_arr_open(w);
    for (k = 0; k < at.nrows; k++) {
        jw_obj_open(w);
        jw_kint(w, "attempt", jt_cell(&at, k, 0)->i);
        if (jt_cell(&at, k, 1)->type == JT_V_NULL) {
            jw_knull(w, "statusCode");
        } else {
            jw_kint(w, "statusCode", jt_cell(&at, k, 1)->i);
        }
        if (jt_cell(&at, k, 2)->type == JT_V_NULL) {
            jw_knull(w, "error");
        } else {
            jw_kstr(w, "error", jt_cell(&at, k, 2)->s);
        }
        jw_kint(w, "durationMs", jt_cell(&at, k, 3)->i);
        jw_kstr(w, "at", jt_cell(&at, k, 4)->s);
        jw_obj_close(w);
    }
    /* the attempt that delivered, kept in the delivery row (sql/017; one
     * delivered before that has its row already) */
    if (strcmp(jt_cell(rows, i, 3)->s, "DELIVERED") == 0
        && (at.nrows == 0 || jt_cell(&at, at.nrows - 1, 0)->i < jt_cell(rows, i, 4)->i)) {
        jw_obj_open(w);
        jw_kint(w, "attempt", jt_cell(rows, i, 4)->i);
        jw_kint(w, "statusCode", jt_cell(rows, i, 5)->i);
        jw_knull(w, "error");
        jw_kint(w, "durationMs", jt_cell(rows, i, 9)->type == JT_V_NULL ? 0 : jt_cell(rows, i, 9)->i);
        jw_kstr(w, "at", jt_cell(rows, i, 7)->s);
        jw_obj_close(w);
    }
    jw_arr_close(w);
    jw_obj_close(w);
    return JT_OK;
}

/* GET /api/v1/admin/webhooks/{webhookId}/deliveries?cursor=&limit= —
 * newest first, each with its attempts and their status codes */
jt_err
webhooks_deliveries(jt_req *r)
{
    int64_t id = jt_req_param_id(r, "webhookId");
    jt_val p[1] = { JT_VI(id) };
    jt_principal who;
    jt_cursor c;
    jt_rows rows;
    jt_db_rc rc;
    jt_err e;

    if ((e = require_admin(r, &who)) != JT_OK || (e = jt_cursor_parse(r, &c, 50)) != JT_OK) {
        return e;
    }
    if ((rc = jt_db_exec(r->db, r->arena, SQL_EXISTS, p, 1, &rows)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    if (rows.nrows == 0) {
        return jt_fail(r, JT_E_WEBHOOK_NOT_FOUND, "webhook %lld does not exist", (long long) id);
    }
    return jt_cursor_answer(r, &c, SQL_DELIVERIES, p, 1, 0, 1200, delivery_item);
}

/* --- the consumer's side ---------------------------------------------------------- */

void
webhooks_lost_sweep(jt_event_sweep *sw)
{
    sw->name = "webhooks";
    sw->sql = SQL_LOST;
}

/* The wait before attempt `failed + 1`: base x 2^(failed - 1), capped,
 * the upper half of it random (so retries of many deliveries spread out,
 * and never come sooner than half the schedule). */
static int64_t
backoff_ms(const jt_conf *c, int failed)
{
    int64_t d = c->wh_backoff_base_ms, half;
    int i;

    for (i = 1; i < failed && d < c->wh_backoff_max_ms; i++) {
        d *= 2;
    }
    if (d > c->wh_backoff_max_ms) {
        d = c->wh_backoff_max_ms;
    }
    half = d / 2;
    return d - half + (half > 0 ? (int64_t) randombytes_uniform((uint32_t) (half < 0x7ffffffe ? half : 0x7ffffffe) + 1)
                                : 0);
}

static int
busy_with(const int64_t *busy, int nbusy, int64_t webhook)
{
    int i;

    for (i = 0; i < nbusy; i++) {
        if (busy[i] == webhook) {
            return 1;
        }
    }
    return 0;
}

/* The JSON a receiver gets: the event's id, type, time and payload. */
static char *
call_body(const char *id, const char *topic, const char *created, const char *payload, size_t *len)
{
    size_t n = strlen(id) + strlen(topic) + strlen(created) + strlen(payload) + 64;
    char *b = malloc(n);

    if (b == NULL) {
        return NULL;
    }
    *len = (size_t) snprintf(b, n, "{\"id\":\"%s\",\"type\":\"%s\",\"timestamp\":\"%s\",\"data\":%s}", id, topic,
                             created, payload);
    return b;
}

/* How long a call queued behind `ahead` others to its webhook may take to
 * be made: they go webhook_per_receiver at a time, each up to
 * webhook_timeout_ms; plus its own, plus 5 s (microseconds). A claim
 * leases all its deliveries for the last one's. */
static int64_t
lease_us(const jt_conf *c, int64_t ahead)
{
    return ((ahead / c->wh_per_receiver + 1) * c->wh_timeout_ms + 5000) * 1000;
}

/* How many times webhook is in list[0..n-1]. */
static int
count_of(const int64_t *list, int n, int64_t webhook)
{
    int i, k = 0;

    for (i = 0; i < n; i++) {
        k += list[i] == webhook;
    }
    return k;
}

/* One webhook's claim: its oldest due deliveries, locked and leased. */
typedef struct {
    int64_t  webhook;
    int      max;
    int64_t  lease_us;
    jt_rows  rows;        /* id, event_id, attempts, version (as read: +1 once claimed) */
} claim_tx;

static jt_tx_step
claim_body(jt_tx *tx)
{
    claim_tx *t = tx->data;
    jt_val p[3] = { JT_VI(t->webhook), JT_VI(t->max) };
    int64_t ids[JT_WEBHOOK_CLAIM_MAX];
    const char *json;
    jt_rows done;
    int i;

    JT_TX_EXEC(tx, SQL_CLAIMABLE, p, 2, &t->rows);
    if (t->rows.nrows == 0) {
        return JT_TX_COMMIT;
    }
    for (i = 0; i < t->rows.nrows; i++) {
        ids[i] = jt_cell(&t->rows, i, 0)->i;
    }
    if ((json = events_ids_json(tx->arena, ids, t->rows.nrows)) == NULL) {
        tx->db_rc = JT_DB_ERROR;
        return JT_TX_DBERR;
    }
    p[0] = JT_VS(json);
    p[1] = JT_VI(t->lease_us);
    p[2] = JT_VI(t->lease_us);
    JT_TX_EXEC(tx, SQL_CLAIM, p, 3, &done);
    return JT_TX_COMMIT;
}

/* Fills call k for delivery row i of a claim; 0, or -1 when it can never
 * be made (the event was purged, the secret cannot be opened). */
static int
make_call(jt_webhook_call *k, const jt_rows *d, int i, int64_t webhook, const char *url, const char *secret,
          const jt_rows *ev)
{
    int e;
    size_t len = 0;

    memset(k, 0, sizeof(*k));
    k->delivery_id = jt_cell(d, i, 0)->i;
    k->webhook_id = webhook;
    k->version = jt_cell(d, i, 3)->i + 1;
    k->attempt = (int) jt_cell(d, i, 2)->i + 1;
    snprintf(k->url, sizeof(k->url), "%s", url);
    snprintf(k->id_header, sizeof(k->id_header), "evt_%lld", (long long) jt_cell(d, i, 1)->i);
    snprintf(k->ts_header, sizeof(k->ts_header), "%lld", (long long) (jt_clock_wall_ms() / 1000));
    for (e = 0; e < ev->nrows && jt_cell(ev, e, 0)->i != jt_cell(d, i, 1)->i; e++) {
    }
    if (e == ev->nrows || secret == NULL
        || (k->body = call_body(k->id_header, jt_cell(ev, e, 1)->s, jt_cell(ev, e, 3)->s, jt_cell(ev, e, 2)->s, &len))
               == NULL
        || webhooks_sign(secret, k->id_header, k->ts_header, k->body, len, k->sig_header, sizeof(k->sig_header)) != 0) {
        webhooks_call_free(k);
        k->unsendable = 1;
        return -1;
    }
    k->body_len = len;
    return 0;
}

/* The calls of claimed delivery rows first..first+count-1 of d (shaped as
 * SQL_CLAIMABLE reads them) to one webhook, into calls[0..]; one that can
 * never be made is recorded FAILED at once. How many calls it filled. */
static int
make_calls(const jt_conf *c, struct jt_db *db, jt_arena *a, const jt_rows *d, int first, int count,
           const jt_rows *hooks, int h, const jt_rows *ev, jt_webhook_call *calls)
{
    const char *secret = jt_pii_open(a, SECRET_FIELD, (const unsigned char *) jt_cell(hooks, h, 3)->s,
                                     jt_cell(hooks, h, 3)->len);
    int64_t webhook = jt_cell(hooks, h, 0)->i;
    int i, n = 0;

    for (i = first; i < first + count; i++) {
        jt_webhook_outcome o = { &calls[n], 0, "cannot be sent", 0 };

        if (make_call(&calls[n], d, i, webhook, jt_cell(hooks, h, 2)->s, secret, ev) == 0) {
            n++;
            continue;
        }
        jt_log_error("webhooks: delivery %lld cannot be made (event gone or secret unreadable)",
                     (long long) calls[n].delivery_id);
        webhooks_finish(c, db, a, &o, 1);
    }
    return n;
}

int
webhooks_claim(const jt_conf *c, struct jt_db *db, jt_arena *a, const int64_t *busy, int nbusy,
               jt_webhook_call *calls, int max)
{
    jt_tx_policy pol;
    jt_rows hooks;
    int h, n = 0;

    if (max <= 0 || jt_db_exec(db, a, SQL_DUE_HOOKS, NULL, 0, &hooks) != JT_DB_OK) {
        return 0;
    }
    jt_tx_policy_init(&pol, c);
    for (h = 0; h < hooks.nrows && n < max; h++) {
        int64_t webhook = jt_cell(&hooks, h, 0)->i, eids[JT_WEBHOOK_CLAIM_MAX];
        claim_tx t = { webhook, max - n < JT_WEBHOOK_CLAIM_MAX ? max - n : JT_WEBHOOK_CLAIM_MAX,
                       lease_us(c, JT_WEBHOOK_CLAIM_MAX), { 0 } };
        const char *json;
        jt_val p[1];
        jt_rows ev;
        int i;

        if (busy_with(busy, nbusy, webhook) || jt_tx_run(db, a, &pol, claim_body, &t) != JT_TX_OK
            || t.rows.nrows == 0) {
            continue;
        }
        for (i = 0; i < t.rows.nrows; i++) {
            eids[i] = jt_cell(&t.rows, i, 1)->i;
        }
        if ((json = events_ids_json(a, eids, t.rows.nrows)) == NULL) {
            continue;   /* out of memory: the leases run out and they are claimed again */
        }
        p[0] = JT_VS(json);
        if (jt_db_exec(db, a, SQL_CALL_EVENTS, p, 1, &ev) != JT_DB_OK) {
            continue;
        }
        n += make_calls(c, db, a, &t.rows, 0, t.rows.nrows, &hooks, h, &ev, calls + n);
    }
    return n;
}

/* --- new events: their deliveries, and the first calls at once ------------------------ */

typedef struct {
    const jt_conf *conf;
    const int64_t *ids;
    int            n;
    int            copied;    /* ev is filled from the stream's copies: not read */
    const int64_t *queued;    /* a webhook id per call this consumer has queued or in flight */
    int            nqueued;
    int            max;
    jt_rows        ev;        /* SQL_EVENTS */
    jt_rows        hooks;     /* SQL_ACTIVE */
    jt_rows        made;      /* SQL_DELIVERY_INSERT: the deliveries inserted, by webhook */
    int            unleased;  /* deliveries left for a claim */
} hook_tx;

static int
wants(const char *csv, const char *topic)
{
    size_t n = strlen(topic);
    const char *p = csv;

    while (*p) {
        size_t k = strcspn(p, ",");
        if (k == n && !strncmp(p, topic, n)) {
            return 1;
        }
        p += k + (p[k] == ',');
    }
    return 0;
}

/* The batch's deliveries as SQL_DELIVERY_INSERT takes them: one for every
 * active webhook that wants each event (by webhook, then event: the order
 * the calls are made in), up to t->max of them leased now, each for the
 * calls queued ahead of it to its webhook. How many, or -1 (out of
 * memory). */
static int
delivery_batch(hook_tx *t, jt_buf *batch)
{
    jt_json w;
    int i, k, made = 0, leased = 0;

    t->unleased = 0;
    jw_init(&w, batch);
    jw_arr_open(&w);
    for (k = 0; k < t->hooks.nrows; k++) {
        int64_t webhook = jt_cell(&t->hooks, k, 0)->i;
        int ahead = count_of(t->queued, t->nqueued, webhook);

        for (i = 0; i < t->ev.nrows; i++) {
            int now;
            if (!wants(jt_cell(&t->hooks, k, 1)->s, jt_cell(&t->ev, i, 1)->s)) {
                continue;
            }
            now = leased < t->max;
            leased += now;
            t->unleased += !now;
            jw_obj_open(&w);
            jw_kint(&w, "w", webhook);
            jw_kint(&w, "e", jt_cell(&t->ev, i, 0)->i);
            jw_kstr(&w, "t", jt_cell(&t->ev, i, 1)->s);
            jw_kint(&w, "l", now ? lease_us(t->conf, ahead++) : 0);
            jw_obj_close(&w);
            made++;
        }
    }
    jw_arr_close(&w);
    return batch->oom ? -1 : made;
}

/* One attempt: the batch's events; the deliveries they want, inserted
 * (those leased now inserted claimed) unless made before. */
static jt_tx_step
hook_body(jt_tx *tx)
{
    hook_tx *t = tx->data;
    const char *ids = events_ids_json(tx->arena, t->ids, t->n);
    jt_val p[1];
    jt_buf batch;

    t->made.nrows = 0;
    t->unleased = 0;
    if (ids == NULL) {
        tx->db_rc = JT_DB_ERROR;
        return JT_TX_DBERR;
    }
    if (!t->copied) {
        p[0] = JT_VS(ids);
        JT_TX_EXEC(tx, SQL_EVENTS, p, 1, &t->ev);
    }
    if (t->ev.nrows == 0) {
        return JT_TX_COMMIT;
    }
    JT_TX_EXEC(tx, SQL_ACTIVE, NULL, 0, &t->hooks);
    jt_buf_init(&batch, tx->arena, 64 + (size_t) t->ev.nrows * 72);
    switch (delivery_batch(t, &batch)) {
    case -1:
        tx->db_rc = JT_DB_ERROR;
        return JT_TX_DBERR;
    case 0:
        return JT_TX_COMMIT;
    }
    p[0] = JT_VB(batch.data, batch.len);
    JT_TX_EXEC(tx, SQL_DELIVERY_INSERT, p, 1, &t->made);
    return JT_TX_COMMIT;
}

static int
cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;

    return (x > y) - (x < y);
}

static int
cmp_copy(const void *a, const void *b)
{
    return cmp_id(&((const jt_event_copy *) a)->id, &((const jt_event_copy *) b)->id);
}

/* The events of copies[0..n-1] as SQL_EVENTS reads them (id, topic,
 * payload, created), oldest first, each once, into ev and their ids into
 * *ids (arena memory); *n becomes their count. 0, or -1 when one has no
 * copy (or out of memory). */
static int
copied_events(jt_arena *a, const jt_event_copy *copies, int *n, jt_rows *ev, const int64_t **ids)
{
    jt_event_copy *s = jt_palloc(a, sizeof(*s) * (size_t) *n);
    jt_val *cells = jt_palloc(a, sizeof(*cells) * 4 * (size_t) *n);
    int64_t *u = jt_palloc(a, sizeof(*u) * (size_t) *n);
    int i, k = 0;

    if (s == NULL || cells == NULL || u == NULL) {
        return -1;
    }
    for (i = 0; i < *n; i++) {
        if (copies[i].topic == NULL) {
            return -1;
        }
    }
    memcpy(s, copies, sizeof(*s) * (size_t) *n);
    qsort(s, (size_t) *n, sizeof(*s), cmp_copy);
    for (i = 0; i < *n; i++) {
        jt_val *row = cells + 4 * k;

        if (k > 0 && u[k - 1] == s[i].id) {
            continue;
        }
        u[k] = s[i].id;
        row[0] = JT_VI(s[i].id);
        row[1] = JT_VS(s[i].topic);
        row[2] = JT_VB(s[i].payload, s[i].payload_len);
        row[3] = JT_VS(s[i].at);
        k++;
    }
    memset(ev, 0, sizeof(*ev));
    ev->nrows = k;
    ev->ncols = 4;
    ev->cells = cells;
    *ids = u;
    *n = k;
    return 0;
}

/* ids[0..*n-1] sorted, each once, in a copy from a; *n becomes their count. */
static const int64_t *
unique_ids(jt_arena *a, const int64_t *ids, int *n)
{
    int64_t *u = jt_palloc(a, sizeof(*u) * (size_t) *n);
    int i, k = 0;

    if (u == NULL) {
        return NULL;
    }
    memcpy(u, ids, sizeof(*u) * (size_t) *n);
    qsort(u, (size_t) *n, sizeof(*u), cmp_id);
    for (i = 0; i < *n; i++) {
        if (k == 0 || u[k - 1] != u[i]) {
            u[k++] = u[i];
        }
    }
    *n = k;
    return u;
}

jt_tx_rc
webhooks_hook(const jt_conf *c, struct jt_db *db, jt_arena *a, const int64_t *ids, int n,
              const jt_event_copy *copies, const int64_t *queued, int nqueued, jt_webhook_call *calls, int max,
              int *ncalls, int *more)
{
    hook_tx t = { c, ids, n, 0, queued, nqueued, max > 0 ? max : 0, { 0 }, { 0 }, { 0 }, 0 };
    jt_tx_policy pol;
    jt_tx_rc rc;
    int i, h, filled = 0;

    *ncalls = 0;
    *more = 0;
    if (n <= 0) {
        return JT_TX_OK;
    }
    /* each event once, oldest first: an event the relay published twice
     * (Redis took an XADD whose answer was lost) may be twice in a batch,
     * and would be called twice */
    if (copies != NULL && copied_events(a, copies, &t.n, &t.ev, &t.ids) == 0) {
        t.copied = 1;
    } else if ((t.ids = unique_ids(a, ids, &t.n)) == NULL) {
        return JT_TX_DB_ERROR;   /* out of memory: not acknowledged, read again */
    }
    jt_tx_policy_init(&pol, c);
    if ((rc = jt_tx_run(db, a, &pol, hook_body, &t)) != JT_TX_OK) {
        return rc;
    }
    /* committed: the calls of the deliveries inserted claimed, a webhook's
     * run of rows at a time (they come back in the order inserted: by
     * webhook) */
    for (i = 0; i < t.made.nrows;) {
        int64_t webhook = jt_cell(&t.made, i, L_WEBHOOK)->i;
        int run = 0;

        while (i + run < t.made.nrows && jt_cell(&t.made, i + run, L_WEBHOOK)->i == webhook
               && jt_cell(&t.made, i + run, L_LEASED)->i == 1) {
            run++;
        }
        if (run == 0) {
            i++;   /* left for a claim */
            continue;
        }
        for (h = 0; h < t.hooks.nrows && jt_cell(&t.hooks, h, 0)->i != webhook; h++) {
        }
        if (h < t.hooks.nrows) {
            filled += make_calls(c, db, a, &t.made, i, run, &t.hooks, h, &t.ev, calls + filled);
        }
        i += run;
    }
    *ncalls = filled;
    *more = t.unleased > 0;
    return JT_TX_OK;
}

typedef struct {
    const jt_conf            *conf;
    const jt_webhook_outcome *o;
    int                       n;
    int                       recorded;
} finish_tx;

/* One attempt: the outcomes and the rows of the attempts that failed, two
 * statements for the batch at most (SQL_OUTCOMES). */
static jt_tx_step
finish_body(jt_tx *tx)
{
    finish_tx *t = tx->data;
    jt_val p[1];
    jt_rows rows;
    jt_json w;
    jt_buf b;
    int i, failed = 0;

    jt_buf_init(&b, tx->arena, 128 * (size_t) t->n + 16);
    jw_init(&w, &b);
    jw_arr_open(&w);
    for (i = 0; i < t->n; i++) {
        const jt_webhook_outcome *o = &t->o[i];
        const jt_webhook_call *k = o->call;
        int ok = o->status_code >= 200 && o->status_code < 300;
        const char *status = ok ? "DELIVERED"
                             : k->unsendable || k->attempt >= t->conf->wh_max_attempts ? "FAILED"
                                                                                        : "PENDING";

        failed += !ok;
        jw_obj_open(&w);
        jw_kint(&w, "d", k->delivery_id);
        jw_kint(&w, "v", k->version);
        jw_kint(&w, "a", k->attempt);
        if (o->status_code > 0) {
            jw_kint(&w, "c", o->status_code);
        } else {
            jw_knull(&w, "c");
        }
        jw_kstr(&w, "s", status);
        jw_kint(&w, "b", strcmp(status, "PENDING") == 0 ? backoff_ms(t->conf, k->attempt) * 1000 : 0);
        if (o->error != NULL) {
            jw_kstr(&w, "e", o->error);
        } else {
            jw_knull(&w, "e");
        }
        jw_kint(&w, "ms", o->duration_ms);
        jw_obj_close(&w);
    }
    jw_arr_close(&w);
    if (b.oom) {
        tx->db_rc = JT_DB_ERROR;
        return JT_TX_DBERR;
    }
    p[0] = JT_VB(jt_buf_cstr(&b), b.len);
    JT_TX_EXEC(tx, SQL_OUTCOMES, p, 1, &rows);
    t->recorded = (int) rows.affected;
    if (rows.affected > 0 && failed > 0) {
        JT_TX_EXEC(tx, SQL_ATTEMPTS_INSERT, p, 1, &rows);
    }
    return JT_TX_COMMIT;
}

void
webhooks_finish(const jt_conf *c, struct jt_db *db, jt_arena *a, const jt_webhook_outcome *o, int n)
{
    finish_tx t = { c, o, n, 0 };
    jt_tx_policy pol;
    int i;

    for (i = 0; i < n; i++) {
        JT_METRIC_INC(webhook_attempts);
        if (o[i].status_code < 200 || o[i].status_code >= 300) {
            JT_METRIC_INC(webhook_failures);
            if (o[i].call->unsendable || o[i].call->attempt >= c->wh_max_attempts) {
                JT_METRIC_INC(webhook_deliveries_failed);
            }
        }
    }
    jt_tx_policy_init(&pol, c);
    if (n > 0 && jt_tx_run(db, a, &pol, finish_body, &t) != JT_TX_OK) {
        /* the leases lapse and the deliveries are tried again: at least once */
        jt_log_warn("webhooks: the outcomes of %d calls were not recorded", n);
    }
}

static jt_tx_step
release_body(jt_tx *tx)
{
    finish_tx *t = tx->data;
    jt_val p[2];
    jt_rows rows;
    int i;

    for (i = 0; i < t->n; i++) {
        p[0] = JT_VI(t->o[i].call->delivery_id);
        p[1] = JT_VI(t->o[i].call->version);
        JT_TX_EXEC(tx, SQL_RELEASE, p, 2, &rows);
    }
    return JT_TX_COMMIT;
}

void
webhooks_release(const jt_conf *c, struct jt_db *db, jt_arena *a, const jt_webhook_outcome *o, int n)
{
    finish_tx t = { c, o, n, 0 };
    jt_tx_policy pol;

    jt_tx_policy_init(&pol, c);
    if (n > 0) {
        (void) jt_tx_run(db, a, &pol, release_body, &t);   /* failing that, the leases run out */
    }
}

void
webhooks_call_free(jt_webhook_call *call)
{
    free(call->body);
    call->body = NULL;
}
