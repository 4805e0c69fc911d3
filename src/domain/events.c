#include "domain/events.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/metrics.h"
#include "store/redis.h"
#include "store/db.h"

const char *const jt_event_topics[] = {
    "order.paid",
    "order.preparing",
    "order.shipping",
    "order.delivered",
    "order.cancelled",
    "order.return_requested",
    "order.returned",
    "points.charged",
    "bid.purchased",
    "receipt.refunded",
    NULL,
};

static const char SQL_OUTBOX_INSERT[] = "INSERT INTO outbox (topic, aggregate_id, payload) VALUES (?, ?, ?)";
/* the relay: unpublished rows, oldest id first, locked until the
 * transaction that marks them ends (every session is READ COMMITTED,
 * store/db.c: no gap is locked, inserts of new events never wait) */
/* (the recipient's subquery reads without locking, in the statement's
 * read view: an event whose transaction committed while the locking read
 * waited for it may find no recipient yet; its entry then names none and
 * its consumer reads it from MariaDB) */
static const char SQL_UNPUBLISHED[] =
    "SELECT x.id, x.topic, x.aggregate_id, x.payload, DATE_FORMAT(x.created_at, '%Y-%m-%dT%H:%i:%s.%fZ'), "
    JT_EVENT_RECIPIENT("x") " FROM outbox x WHERE x.published_at IS NULL ORDER BY x.id LIMIT ? FOR UPDATE";
static const char SQL_PUBLISHED[] =
    "UPDATE outbox x JOIN JSON_TABLE(?, " JT_EVENT_IDS_TABLE ") j ON j.id = x.id SET x.published_at = NOW(6)"
    " WHERE x.published_at IS NULL";
static const char SQL_PURGE[] =
    "DELETE FROM outbox WHERE published_at < NOW(6) - INTERVAL ? SECOND ORDER BY published_at LIMIT 1000";

int
events_known_topic(const char *topic)
{
    int i;

    for (i = 0; jt_event_topics[i] != NULL; i++) {
        if (!strcmp(jt_event_topics[i], topic)) {
            return 1;
        }
    }
    return 0;
}

jt_tx_step
events_emit(jt_tx *tx, const char *topic, int64_t aggregate_id, const char *payload, size_t len)
{
    jt_val p[3] = { JT_VS(topic), JT_VI(aggregate_id), JT_VB(payload, len) };
    jt_rows rows;

    JT_TX_EXEC(tx, SQL_OUTBOX_INSERT, p, 3, &rows);
    return JT_TX_COMMIT;
}

const char *
events_ids_json(jt_arena *a, const int64_t *ids, int n)
{
    jt_buf b;
    int i;

    jt_buf_init(&b, a, 16 + (size_t) n * 21);
    jt_buf_addc(&b, '[');
    for (i = 0; i < n; i++) {
        if (i) {
            jt_buf_addc(&b, ',');
        }
        jt_buf_add_i64(&b, ids[i]);
    }
    jt_buf_addc(&b, ']');
    return b.oom ? NULL : jt_buf_cstr(&b);
}

typedef struct {
    const jt_conf   *conf;
    struct jt_redis *redis;
    int              published;
    int              redis_down;
} publish_tx;

/* One attempt: lock the oldest unpublished rows, XADD them all in id
 * order in one round trip (a pipeline), mark the ones XADD accepted up to
 * the first that failed. An entry is the row (id, type, aggregate, at,
 * payload) and, when the read found one, its recipient ("to": a user id). */
static jt_tx_step
publish_body(jt_tx *tx)
{
    enum { ARGS = 18 };
    publish_tx *t = tx->data;
    jt_val p[1] = { JT_VI(t->conf->ev_batch) };
    int64_t ids[1000];
    char maxlen[24], (*nums)[3][24];
    const char **argv, *json;
    const char **cmds[1000];
    const size_t *lenp[1000];
    redisReply **replies;
    int argc[1000], i, k, n;
    size_t *lens;
    jt_rows rows, done;

    t->published = 0;
    t->redis_down = 0;
    JT_TX_EXEC(tx, SQL_UNPUBLISHED, p, 1, &rows);
    if ((n = rows.nrows < 1000 ? rows.nrows : 1000) == 0) {
        return JT_TX_COMMIT;
    }
    argv = jt_palloc(tx->arena, sizeof(*argv) * ARGS * (size_t) n);
    lens = jt_palloc(tx->arena, sizeof(*lens) * ARGS * (size_t) n);
    nums = jt_palloc(tx->arena, sizeof(*nums) * (size_t) n);
    replies = jt_palloc(tx->arena, sizeof(*replies) * (size_t) n);
    if (argv == NULL || lens == NULL || nums == NULL || replies == NULL) {
        tx->db_rc = JT_DB_ERROR;
        return JT_TX_DBERR;
    }
    snprintf(maxlen, sizeof(maxlen), "%lld", (long long) t->conf->ev_stream_maxlen);
    for (i = 0; i < n; i++) {
        const char **v = argv + ARGS * i;
        size_t *l = lens + ARGS * i;

        snprintf(nums[i][0], sizeof(nums[i][0]), "%lld", (long long) jt_cell(&rows, i, 0)->i);
        snprintf(nums[i][1], sizeof(nums[i][1]), "%lld", (long long) jt_cell(&rows, i, 2)->i);
        snprintf(nums[i][2], sizeof(nums[i][2]), "%lld",
                 jt_cell(&rows, i, 5)->type == JT_V_NULL ? 0LL : (long long) jt_val_int(jt_cell(&rows, i, 5)));
        v[0] = "XADD", v[1] = JT_EVENT_STREAM, v[2] = "MAXLEN", v[3] = "~", v[4] = maxlen, v[5] = "*";
        v[6] = "id", v[7] = nums[i][0], v[8] = "type", v[9] = jt_cell(&rows, i, 1)->s;
        v[10] = "aggregate", v[11] = nums[i][1], v[12] = "at", v[13] = jt_cell(&rows, i, 4)->s;
        v[14] = "payload", v[15] = jt_cell(&rows, i, 3)->s;
        v[16] = "to", v[17] = nums[i][2];
        for (k = 0; k < ARGS; k++) {
            l[k] = strlen(v[k]);
        }
        l[15] = jt_cell(&rows, i, 3)->len;
        cmds[i] = v;
        lenp[i] = l;
        argc[i] = jt_cell(&rows, i, 5)->type == JT_V_NULL ? ARGS - 2 : ARGS;
    }
    (void) jt_redis_pipeline(t->redis, tx->arena, n, argc, cmds, lenp, replies);
    for (i = 0; i < n && replies[i] != NULL && replies[i]->type == REDIS_REPLY_STRING; i++) {
        ids[t->published++] = jt_cell(&rows, i, 0)->i;
    }
    t->redis_down = i < n;   /* what is not marked waits for the next step */
    if (t->published == 0) {
        return JT_TX_ABORT;
    }
    if ((json = events_ids_json(tx->arena, ids, t->published)) == NULL) {
        tx->db_rc = JT_DB_ERROR;
        return JT_TX_DBERR;
    }
    p[0] = JT_VS(json);
    JT_TX_EXEC(tx, SQL_PUBLISHED, p, 1, &done);
    return JT_TX_COMMIT;
}

int
events_publish(const jt_conf *c, struct jt_db *db, struct jt_redis *redis, jt_arena *a)
{
    publish_tx t = { c, redis, 0, 0 };
    jt_tx_policy pol;

    jt_tx_policy_init(&pol, c);
    if (jt_tx_run(db, a, &pol, publish_body, &t) != JT_TX_OK) {
        return -1;
    }
    JT_METRIC_ADD(events_published, t.published);
    return t.redis_down && t.published == 0 ? -1 : t.published;
}

int64_t
events_purge(const jt_conf *c, struct jt_db *db, jt_arena *a)
{
    jt_val p[1] = { JT_VI(c->ev_retention) };
    int64_t total = 0;
    int i;

    for (i = 0; i < 10; i++) {
        jt_rows rows;
        if (jt_db_exec(db, a, SQL_PURGE, p, 1, &rows) != JT_DB_OK) {
            break;
        }
        total += (int64_t) rows.affected;
        if (rows.affected < 1000) {
            break;
        }
    }
    return total;
}

void
events_won(char out[32], int64_t amount)
{
    char digits[24];
    int n, i, k = 0, neg = amount < 0;

    n = snprintf(digits, sizeof(digits), "%llu",
                 neg ? 0ULL - (unsigned long long) amount : (unsigned long long) amount);
    if (neg) {
        out[k++] = '-';
    }
    for (i = 0; i < n; i++) {
        out[k++] = digits[i];
        if ((n - i - 1) % 3 == 0 && i != n - 1) {
            out[k++] = ',';
        }
    }
    out[k] = '\0';
}

static int64_t
member_int(json_object *o, const char *key)
{
    json_object *v;

    return o != NULL && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_int)
               ? json_object_get_int64(v)
               : 0;
}

/* The texts, one per topic. A {name} is a figure of the payload: {orderId}
 * (the aggregate when absent) as it is, {total} {refund} {charged}
 * {balance} {amount} (price x quantity) as won with commas, {tracking}
 * ", 운송장번호 <trackingNumber>" when the payload has one (checked to be
 * [A-Za-z0-9-] when it was given, domain/lifecycle.c). */
static const struct {
    const char *topic;
    const char *text;
} messages[] = {
    { "order.paid", "주문이 완료되었습니다. 주문번호 {orderId}, 결제금액 {total}원" },
    { "order.preparing", "주문하신 상품을 준비하고 있습니다. 주문번호 {orderId}" },
    { "order.shipping", "배송이 시작되었습니다. 주문번호 {orderId}{tracking}" },
    { "order.delivered", "배송이 완료되었습니다. 주문번호 {orderId}" },
    { "order.cancelled", "주문이 취소되었습니다. {refund}원이 환불되었습니다. 주문번호 {orderId}" },
    { "order.return_requested", "반품 신청이 접수되었습니다. 주문번호 {orderId}" },
    { "order.returned", "반품이 완료되었습니다. {refund}원이 환불되었습니다. 주문번호 {orderId}" },
    { "points.charged", "포인트 {charged}원이 충전되었습니다. 잔액 {balance}원" },
    { "bid.purchased", "경매 상품을 구매했습니다. 결제금액 {amount}원" },
    { "receipt.refunded", "경매 구매가 환불되었습니다. {amount}원이 환불되었습니다." },
};

/* One {name} of a text, appended to b. */
static void
expand(jt_buf *b, json_object *o, const char *name, size_t n, int64_t aggregate_id)
{
    json_object *v;
    char won[32];

    if (n == 7 && !strncmp(name, "orderId", n)) {
        jt_buf_add_i64(b, member_int(o, "orderId") ? member_int(o, "orderId") : aggregate_id);
    } else if (n == 8 && !strncmp(name, "tracking", n)) {
        if (o != NULL && json_object_object_get_ex(o, "trackingNumber", &v) && json_object_is_type(v, json_type_string)
            && json_object_get_string_len(v) <= 64) {
            jt_buf_addf(b, ", 운송장번호 %s", json_object_get_string(v));
        }
    } else {
        char key[16];
        snprintf(key, sizeof(key), "%.*s", (int) n, name);
        events_won(won, !strcmp(key, "amount") ? member_int(o, "price") * member_int(o, "quantity")
                                               : member_int(o, key));
        jt_buf_adds(b, won);
    }
}

const char *
events_message(jt_arena *a, const char *topic, int64_t aggregate_id, const char *payload)
{
    const char *t = NULL, *p;
    json_object *o;
    size_t i;
    jt_buf b;

    for (i = 0; i < sizeof(messages) / sizeof(messages[0]); i++) {
        if (!strcmp(messages[i].topic, topic)) {
            t = messages[i].text;
        }
    }
    if (t == NULL) {
        return NULL;
    }
    o = payload ? json_tokener_parse(payload) : NULL;
    jt_buf_init(&b, a, 256);
    for (p = t; *p;) {
        const char *end = *p == '{' ? strchr(p, '}') : NULL;
        if (end != NULL) {
            expand(&b, o, p + 1, (size_t) (end - p - 1), aggregate_id);
            p = end + 1;
        } else {
            jt_buf_addc(&b, *p++);
        }
    }
    if (o != NULL) {
        json_object_put(o);
    }
    return b.oom ? NULL : jt_buf_cstr(&b);
}

/* the sweep's cursor (sql/016): every event up to it was consumed */
static const char SQL_CURSOR[] = "SELECT through_id FROM event_cursors WHERE name = ?";
static const char SQL_CURSOR_MOVE[] =
    "INSERT INTO event_cursors (name, through_id) VALUES (?, ?)"
    " ON DUPLICATE KEY UPDATE through_id = GREATEST(through_id, VALUES(through_id))";

#define LOST_CHUNK  1000   /* outbox rows read per statement */
#define LOST_CHUNKS 16     /* statements per sweep, while every row is old and consumed */

int
events_lost(const jt_conf *c, struct jt_db *db, jt_arena *a, jt_event_sweep *sw, int64_t *ids, int max)
{
    jt_val p[4] = { JT_VS(sw->name) };
    jt_rows rows;
    int i, k, n = 0;

    if (jt_db_exec(db, a, SQL_CURSOR, p, 1, &rows) != JT_DB_OK) {
        return -1;
    }
    sw->from = sw->through = rows.nrows > 0 ? jt_val_int(jt_cell(&rows, 0, 0)) : 0;
    for (k = 0; k < LOST_CHUNKS; k++) {
        p[0] = JT_VI(c->ev_lost_after);
        p[1] = JT_VI(c->ev_lost_after);
        p[2] = JT_VI(sw->through);
        p[3] = JT_VI(LOST_CHUNK);
        if (jt_db_exec(db, a, sw->sql, p, 4, &rows) != JT_DB_OK) {
            return -1;
        }
        for (i = 0; i < rows.nrows; i++) {
            /* not published, or not lost_after ago: the walk stops there,
             * the cursor must never pass an event that may still come */
            if (jt_cell(&rows, i, 1)->type == JT_V_NULL || jt_val_int(jt_cell(&rows, i, 1)) == 0) {
                return n;
            }
            if (jt_val_int(jt_cell(&rows, i, 2)) != 0) {
                if (n == max) {
                    return n;
                }
                ids[n++] = jt_cell(&rows, i, 0)->i;
            }
            sw->through = jt_cell(&rows, i, 0)->i;
        }
        if (rows.nrows < LOST_CHUNK) {
            break;   /* the end of the outbox */
        }
    }
    return n;
}

static jt_tx_step
cursor_body(jt_tx *tx)
{
    const jt_event_sweep *sw = tx->data;
    jt_val p[2] = { JT_VS(sw->name), JT_VI(sw->through) };
    jt_rows rows;

    JT_TX_EXEC(tx, SQL_CURSOR_MOVE, p, 2, &rows);
    return JT_TX_COMMIT;
}

void
events_lost_done(const jt_conf *c, struct jt_db *db, jt_arena *a, jt_event_sweep *sw)
{
    jt_tx_policy pol;

    if (sw->through > sw->from) {
        jt_tx_policy_init(&pol, c);
        (void) jt_tx_run(db, a, &pol, cursor_body, sw);   /* failing that, the next sweep walks it again */
    }
}
