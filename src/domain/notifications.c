#include "domain/notifications.h"

#include <string.h>

#include "core/metrics.h"
#include "domain/accounts.h"
#include "domain/common.h"
#include "domain/cursor.h"
#include "domain/events.h"
#include "domain/write.h"
#include "store/db.h"

#define TIME(col) "DATE_FORMAT(" col ", '%Y-%m-%dT%H:%i:%s.%fZ')"
#define NOTIFICATION_COLUMNS \
    "SELECT id, event_id, topic, ref_id, message, " TIME("created_at") ", " TIME("read_at") " FROM notifications"

static const char SQL_PAGE[] = NOTIFICATION_COLUMNS " WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?";
static const char SQL_PAGE_UNREAD[] =
    NOTIFICATION_COLUMNS " WHERE user_id = ? AND read_at IS NULL AND id < ? ORDER BY id DESC LIMIT ?";
static const char SQL_GET[] = NOTIFICATION_COLUMNS " WHERE id = ? AND user_id = ?";
static const char SQL_MARK_READ[] =
    "UPDATE notifications SET read_at = NOW(6) WHERE id = ? AND user_id = ? AND read_at IS NULL";

/* the consumer's side: the batch's events (one notified before is told
 * again, and the insert of its rows is a no-op) */
static const char SQL_EVENTS[] =
    "SELECT x.id, x.topic, x.aggregate_id, x.payload, " JT_EVENT_RECIPIENT("x") " FROM outbox x"
    " JOIN JSON_TABLE(?, " JT_EVENT_IDS_TABLE ") j ON j.id = x.id";
/* the batch's notifications in one statement: a JSON array of
 * {e: event, u: user, t: topic, r: ref, m: message} */
static const char SQL_INSERT[] =
    "INSERT INTO notifications (event_id, user_id, topic, ref_id, message) SELECT j.e, j.u, j.t, j.r, j.m"
    " FROM JSON_TABLE(?, '$[*]' COLUMNS (n FOR ORDINALITY, e BIGINT UNSIGNED PATH '$.e', u BIGINT UNSIGNED PATH '$.u',"
    " t VARCHAR(64) PATH '$.t', r BIGINT UNSIGNED PATH '$.r', m VARCHAR(500) PATH '$.m')) j ORDER BY j.n"
    " ON DUPLICATE KEY UPDATE notifications.id = notifications.id";
/* lost: an event with a recipient and no notification (the audit's
 * event_notifications in the other direction) */
static const char SQL_LOST[] = JT_EVENTS_LOST_SQL(
    "NOT EXISTS (SELECT 1 FROM notifications n WHERE n.event_id = x.id) AND " JT_EVENT_RECIPIENT("x") " IS NOT NULL");

enum { N_ID, N_EVENT, N_TOPIC, N_REF, N_MESSAGE, N_CREATED, N_READ };

static void
write_notification(jt_json *w, const jt_rows *rows, int i)
{
    jw_obj_open(w);
    jw_kint(w, "id", jt_cell(rows, i, N_ID)->i);
    jw_kint(w, "eventId", jt_cell(rows, i, N_EVENT)->i);
    jw_kstr(w, "type", jt_cell(rows, i, N_TOPIC)->s);
    jw_kint(w, "refId", jt_cell(rows, i, N_REF)->i);
    jw_kstr(w, "message", jt_cell(rows, i, N_MESSAGE)->s);
    jw_kstr(w, "createdAt", jt_cell(rows, i, N_CREATED)->s);
    if (jt_cell(rows, i, N_READ)->type == JT_V_NULL) {
        jw_knull(w, "readAt");
    } else {
        jw_kstr(w, "readAt", jt_cell(rows, i, N_READ)->s);
    }
    jw_obj_close(w);
}

static jt_err
notification_item(jt_req *r, jt_json *w, const jt_rows *rows, int i)
{
    (void) r;
    write_notification(w, rows, i);
    return JT_OK;
}

/* GET /api/v1/users/{userId}/notifications?cursor=&limit=&unread=true —
 * newest first; unread=true only those not read yet */
jt_err
notifications_list(jt_req *r)
{
    int64_t uid = jt_req_param_id(r, "userId");
    jt_val p[1] = { JT_VI(uid) };
    const char *unread;
    jt_principal who;
    jt_cursor c;
    jt_err e;

    if ((e = auth_require_user(r, &who, uid)) != JT_OK || (e = jt_cursor_parse(r, &c, 100)) != JT_OK
        || (e = jt_req_query_str(r, "unread", &unread)) != JT_OK) {
        return e;
    }
    if (unread != NULL && strcmp(unread, "true") != 0 && strcmp(unread, "false") != 0) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'unread' must be true or false");
    }
    return jt_cursor_answer(r, &c, unread != NULL && !strcmp(unread, "true") ? SQL_PAGE_UNREAD : SQL_PAGE, p, 1,
                            N_ID, 400, notification_item);
}

typedef struct {
    jt_req  *r;
    int64_t  id;
    int64_t  user;
    jt_err   refusal;
    jt_buf   body;
} read_tx;

/* Marking read is idempotent by nature: a second time finds it read and
 * answers it as it is. */
static jt_tx_step
read_body(jt_tx *tx)
{
    read_tx *t = tx->data;
    jt_val p[2] = { JT_VI(t->id), JT_VI(t->user) };
    jt_rows rows;
    jt_json w;

    JT_TX_EXEC(tx, SQL_MARK_READ, p, 2, &rows);
    JT_TX_EXEC(tx, SQL_GET, p, 2, &rows);
    if (rows.nrows == 0) {
        t->refusal = jt_fail(t->r, JT_E_NOTIFICATION_NOT_FOUND, "user %lld has no notification %lld",
                             (long long) t->user, (long long) t->id);
        return JT_TX_ABORT;
    }
    jt_json_begin(t->r, &t->body, &w, 512);
    write_notification(&w, &rows, 0);
    jt_write_answer(tx, 200, &t->body, "NOTIFICATION", t->id);
    return JT_TX_COMMIT;
}

/* POST /api/v1/users/{userId}/notifications/{notificationId}/read */
jt_err
notifications_read(jt_req *r)
{
    jt_principal who;
    jt_write *wr;
    read_tx *t;
    jt_err e;

    if ((t = jt_pcalloc(r->arena, sizeof(*t))) == NULL) {
        return JT_E_INTERNAL;
    }
    t->r = r;
    t->user = jt_req_param_id(r, "userId");
    t->id = jt_req_param_id(r, "notificationId");
    if ((e = auth_require_user(r, &who, t->user)) != JT_OK
        || (e = jt_write_begin(r, &wr, who.user_id, NULL, JT_WRITE_KEY_IGNORED)) != JT_OK
        || (e = jt_write_run(r, wr, read_body, t, &t->refusal)) != JT_OK) {
        return e;
    }
    jt_write_finish(r, wr);
    return JT_OK;
}

/* --- the consumer's side ---------------------------------------------------------- */

typedef struct {
    int                  n;
    const jt_event_copy *copies;   /* n of them, or NULL: read every event */
    const int64_t       *read;     /* the events to read from MariaDB */
    int                  nread;
    int64_t              created;
} record_tx;

/* A copy a notification can be made from: type, payload and recipient. */
static int
whole(const jt_event_copy *cp)
{
    return cp->topic != NULL && cp->payload != NULL && cp->has_recipient;
}

/* A notification of event `id` to `user` as SQL_INSERT takes it (a
 * writer out of memory says so in its buffer's oom); 1 when there is one
 * to make, 0 when the event tells nobody. */
static int
notification_row(jt_arena *a, jt_json *w, int64_t id, const char *topic, int64_t aggregate, const char *payload,
                  int64_t user)
{
    const char *text;

    if (user <= 0) {
        return 0;
    }
    if ((text = events_message(a, topic, aggregate, payload)) == NULL) {
        return 0;   /* nobody to tell */
    }
    jw_obj_open(w);
    jw_kint(w, "e", id);
    jw_kint(w, "u", user);
    jw_kstr(w, "t", topic);
    jw_kint(w, "r", aggregate);
    jw_kstr(w, "m", text);
    jw_obj_close(w);
    return 1;
}

/* One attempt: a row per recipient of each event of the batch, in one
 * statement (notifications.h). */
static jt_tx_step
record_body(jt_tx *tx)
{
    record_tx *t = tx->data;
    const char *ids;
    jt_val p[1];
    jt_rows ev, rows;
    jt_buf batch;
    jt_json w;
    int i, told = 0;

    /* the events to read: those without a whole copy (with a recipient) */
    if ((ids = events_ids_json(tx->arena, t->read, t->nread)) == NULL) {
        tx->db_rc = JT_DB_ERROR;
        return JT_TX_DBERR;
    }
    t->created = 0;
    ev.nrows = 0;
    if (t->nread > 0) {
        p[0] = JT_VS(ids);
        JT_TX_EXEC(tx, SQL_EVENTS, p, 1, &ev);
    }
    jt_buf_init(&batch, tx->arena, 64 + (size_t) t->n * 256);
    jw_init(&w, &batch);
    jw_arr_open(&w);
    for (i = 0; t->copies != NULL && i < t->n; i++) {
        const jt_event_copy *cp = &t->copies[i];

        if (whole(cp)) {
            told += notification_row(tx->arena, &w, cp->id, cp->topic, cp->aggregate, cp->payload, cp->recipient);
        }
    }
    for (i = 0; i < ev.nrows; i++) {
        told += notification_row(tx->arena, &w, jt_cell(&ev, i, 0)->i, jt_cell(&ev, i, 1)->s, jt_cell(&ev, i, 2)->i,
                                  jt_cell(&ev, i, 3)->s,
                                  jt_cell(&ev, i, 4)->type == JT_V_NULL ? 0 : jt_val_int(jt_cell(&ev, i, 4)));
    }
    jw_arr_close(&w);
    if (batch.oom) {
        tx->db_rc = JT_DB_ERROR;
        return JT_TX_DBERR;
    }
    if (told > 0) {
        p[0] = JT_VB(batch.data, batch.len);
        JT_TX_EXEC(tx, SQL_INSERT, p, 1, &rows);
        t->created = (int64_t) rows.affected;
    }
    return JT_TX_COMMIT;
}

jt_tx_rc
notifications_record(const jt_conf *c, struct jt_db *db, jt_arena *a, const int64_t *ids, int n,
                     const jt_event_copy *copies, int64_t *created)
{
    record_tx t = { n, copies, ids, n, 0 };
    jt_tx_policy pol;
    jt_tx_rc rc;
    int64_t *read;
    int i;

    *created = 0;
    if (n <= 0) {
        return JT_TX_OK;
    }
    /* from the copies, those that are whole (an event twice in a batch is
     * told once: the pair is unique, the insert's duplicate a no-op); the
     * rest are read */
    if (copies != NULL) {
        if ((read = jt_palloc(a, sizeof(*read) * (size_t) n)) == NULL) {
            return JT_TX_DB_ERROR;   /* out of memory: not acknowledged, read again */
        }
        t.nread = 0;
        for (i = 0; i < n; i++) {
            if (!whole(&copies[i])) {
                read[t.nread++] = ids[i];
            }
        }
        t.read = read;
    }
    jt_tx_policy_init(&pol, c);
    rc = jt_tx_run(db, a, &pol, record_body, &t);
    if (rc == JT_TX_OK) {
        *created = t.created;
        JT_METRIC_ADD(notifications_created, t.created);
    }
    return rc;
}

void
notifications_lost_sweep(jt_event_sweep *sw)
{
    sw->name = "notifications";
    sw->sql = SQL_LOST;
}
