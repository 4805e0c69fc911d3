/* Points: charging a balance and reading the ledger. The charge is the
 * simplest money flow and shows the whole write path in one place:
 * validate → idempotency begin → lock → transaction (retried by store/tx)
 * → commit → cache the answer → unlock → answer. */
#include "domain/points.h"

#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/metrics.h"
#include "domain/accounts.h"
#include "domain/events.h"
#include "domain/common.h"
#include "domain/cursor.h"
#include "domain/lockkey.h"
#include "domain/write.h"
#include "http/json.h"
#include "store/db.h"
#include "store/idem.h"
#include "store/lock.h"
#include "store/tx.h"

static const char SQL_BALANCE_READ[] =
    "SELECT balance, version FROM users WHERE id = ?";
static const char SQL_BALANCE_WRITE[] =
    "UPDATE users SET balance = ?, version = version + 1 WHERE id = ? AND version = ?";
static const char SQL_LEDGER_INSERT[] =
    "INSERT INTO point_ledger (user_id, delta, balance_after, kind, ref_id) VALUES (?, ?, ?, ?, ?)";
static const char SQL_LEDGER_INSERT_MANY[] =
    "INSERT INTO point_ledger (user_id, delta, balance_after, kind, ref_id)"
    " SELECT j.u, j.d, j.a, j.k, j.r FROM JSON_TABLE(?, '$[*]' COLUMNS (n FOR ORDINALITY, u BIGINT PATH '$.u',"
    " d BIGINT PATH '$.d', a BIGINT PATH '$.a', k VARCHAR(16) PATH '$.k', r BIGINT PATH '$.r')) j ORDER BY j.n";
static const char SQL_LEDGER_PAGE[] =
    "SELECT id, delta, balance_after, kind, ref_id, DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%s.%fZ')"
    " FROM point_ledger WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?";

typedef struct {
    int64_t     user_id;
    int64_t     amount;
    jt_err      refusal;       /* on JT_TX_ABORT */
    /* results */
    int64_t     balance;
    int64_t     ledger_id;
    jt_buf      body;
    jt_req     *r;
} charge_tx;

jt_tx_step
points_bound(int64_t balance, int64_t delta, int64_t *after, jt_err *why)
{
    /* |delta| is bounded by its callers far below INT64_MAX - cap */
    *after = balance + delta;
    if (*after < 0) {
        *why = JT_E_INSUFFICIENT_BALANCE;
        return JT_TX_ABORT;
    }
    if (*after > JT_BALANCE_MAX) {
        *why = JT_E_BALANCE_LIMIT;
        return JT_TX_ABORT;
    }
    return JT_TX_COMMIT;
}

jt_tx_step
points_record(jt_tx *tx, int64_t user_id, int64_t delta, int64_t after, const char *kind, int64_t ref_id,
              int64_t *ledger_id)
{
    jt_val p[5] = { JT_VI(user_id), JT_VI(delta), JT_VI(after), JT_VS(kind), ref_id ? JT_VI(ref_id) : JT_VNULL };
    jt_rows rows;

    JT_TX_EXEC(tx, SQL_LEDGER_INSERT, p, 5, &rows);
    if (ledger_id) {
        *ledger_id = (int64_t) rows.insert_id;
    }
    return JT_TX_COMMIT;
}

jt_tx_step
points_record_many(jt_tx *tx, const points_entry *e, int n)
{
    jt_val p[1];
    jt_rows rows;
    jt_buf b;
    jt_json w;
    int i;

    if (n == 0) {
        return JT_TX_COMMIT;
    }
    jt_buf_init(&b, tx->arena, 96 * (size_t) n);
    jw_init(&w, &b);
    jw_arr_open(&w);
    for (i = 0; i < n; i++) {
        jw_obj_open(&w);
        jw_kint(&w, "u", e[i].user_id);
        jw_kint(&w, "d", e[i].delta);
        jw_kint(&w, "a", e[i].after);
        jw_kstr(&w, "k", e[i].kind);
        if (e[i].ref_id) {
            jw_kint(&w, "r", e[i].ref_id);
        } else {
            jw_knull(&w, "r");
        }
        jw_obj_close(&w);
    }
    jw_arr_close(&w);
    if (b.oom) {
        tx->db_rc = JT_DB_ERROR;
        return JT_TX_DBERR;
    }
    p[0] = JT_VB(b.data, b.len);
    JT_TX_EXEC(tx, SQL_LEDGER_INSERT_MANY, p, 1, &rows);
    return rows.affected == (uint64_t) n ? JT_TX_COMMIT : (tx->db_rc = JT_DB_ERROR, JT_TX_DBERR);
}

jt_tx_step
points_apply(jt_tx *tx, int64_t user_id, int64_t delta, const char *kind, int64_t ref_id,
             int64_t *balance_after, int64_t *ledger_id, jt_err *why)
{
    jt_val p[3];
    jt_rows rows;
    int64_t version, after;

    p[0] = JT_VI(user_id);
    JT_TX_EXEC(tx, SQL_BALANCE_READ, p, 1, &rows);
    if (rows.nrows == 0) {
        *why = JT_E_USER_NOT_FOUND;
        return JT_TX_ABORT;
    }
    version = jt_cell(&rows, 0, 1)->i;
    if (points_bound(jt_cell(&rows, 0, 0)->i, delta, &after, why) != JT_TX_COMMIT) {
        return JT_TX_ABORT;
    }
    p[0] = JT_VI(after);
    p[1] = JT_VI(user_id);
    p[2] = JT_VI(version);
    JT_TX_EXEC(tx, SQL_BALANCE_WRITE, p, 3, &rows);
    if (rows.affected != 1) {
        return JT_TX_CONFLICT;
    }
    if (balance_after) {
        *balance_after = after;
    }
    return points_record(tx, user_id, delta, after, kind, ref_id, ledger_id);
}

/* One attempt at a charge: the balance moves (fenced), then the answer and
 * the idempotency record. */
static jt_tx_step
charge_body(jt_tx *tx)
{
    charge_tx *c = tx->data;
    jt_tx_step step;
    jt_json w;
    jt_err why;

    step = points_apply(tx, c->user_id, c->amount, "CHARGE", 0, &c->balance, &c->ledger_id, &why);
    if (step == JT_TX_ABORT) {
        c->refusal = why == JT_E_BALANCE_LIMIT
                         ? jt_fail(c->r, why, "a balance may not exceed %lld", JT_BALANCE_MAX)
                         : jt_fail(c->r, why, "user %lld does not exist", (long long) c->user_id);
    }
    if (step != JT_TX_COMMIT) {
        return step;
    }
    jt_json_begin(c->r, &c->body, &w, 128);
    jw_obj_open(&w);
    jw_kint(&w, "userId", c->user_id);
    jw_kint(&w, "balance", c->balance);
    jw_kint(&w, "charged", c->amount);
    jw_kint(&w, "ledgerId", c->ledger_id);
    jw_obj_close(&w);
    if ((step = events_emit(tx, "points.charged", c->ledger_id, c->body.data, c->body.len)) != JT_TX_COMMIT) {
        return step;
    }
    jt_write_answer(tx, 200, &c->body, "CHARGE", c->ledger_id);
    return JT_TX_COMMIT;
}

/* The charge body: {"amount": integer KRW in [1,000, 1,000,000]}. */
jt_err
points_parse_amount(jt_req *r, json_object *o, int64_t *amount)
{
    static const char *const known[] = { "amount", NULL };
    json_object *v;
    jt_err e;

    if ((e = jt_json_only(r, o, "", known)) != JT_OK) {
        return e;
    }
    if (!json_object_object_get_ex(o, "amount", &v) || v == NULL || !json_object_is_type(v, json_type_int)) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'amount' must be an integer number of KRW");
    }
    *amount = json_object_get_int64(v);
    if (*amount < JT_CHARGE_MIN) {
        return jt_fail(r, JT_E_AMOUNT_TOO_SMALL, "the smallest charge is %d", JT_CHARGE_MIN);
    }
    if (*amount > JT_CHARGE_MAX) {
        return jt_fail(r, JT_E_AMOUNT_TOO_LARGE, "the largest charge is %d", JT_CHARGE_MAX);
    }
    return JT_OK;
}

/* POST /api/v1/users/{userId}/charge */
jt_err
points_charge(jt_req *r)
{
    int64_t uid = jt_req_param_id(r, "userId");
    jt_principal who;
    json_object *o;
    jt_write *wr;
    charge_tx *c;
    const char *keys[1];
    jt_err e;

    /* authenticate, parse; then the key (a committed charge replays
     * whatever has changed since); then validate */
    if ((e = auth_require_user(r, &who, uid)) != JT_OK || (e = jt_json_body(r, &o)) != JT_OK
        || (e = jt_write_begin(r, &wr, who.user_id, o, JT_WRITE_KEY_REQUIRED)) != JT_OK || wr->replayed) {
        return e;
    }
    if ((c = jt_pcalloc(r->arena, sizeof(*c))) == NULL) {
        return JT_E_INTERNAL;
    }
    if ((e = points_parse_amount(r, o, &c->amount)) != JT_OK) {
        return e;
    }
    c->user_id = uid;
    c->r = r;
    if ((keys[0] = jt_lockkey_balance(r->arena, uid)) == NULL) {
        return JT_E_INTERNAL;
    }
    if ((e = jt_write_lock(r, wr, keys, 1)) != JT_OK
        || (e = jt_write_run(r, wr, charge_body, c, &c->refusal)) != JT_OK || wr->replayed) {
        return e;
    }
    JT_METRIC_INC(charges);
    JT_METRIC_ADD(points_charged, c->amount);
    jt_write_finish(r, wr);
    return JT_OK;
}

/* One ledger row as the API shows it. */
static jt_err
write_ledger_row(jt_req *r, jt_json *w, const jt_rows *rows, int i)
{
    (void) r;
    jw_obj_open(w);
    jw_kint(w, "id", jt_cell(rows, i, 0)->i);
    jw_kint(w, "delta", jt_cell(rows, i, 1)->i);
    jw_kint(w, "balanceAfter", jt_cell(rows, i, 2)->i);
    jw_kstr(w, "kind", jt_cell(rows, i, 3)->s);
    if (jt_cell(rows, i, 4)->type == JT_V_NULL) {
        jw_knull(w, "refId");
    } else {
        jw_kint(w, "refId", jt_cell(rows, i, 4)->i);
    }
    jw_kstr(w, "createdAt", jt_cell(rows, i, 5)->s);
    jw_obj_close(w);
    return JT_OK;
}

/* GET /api/v1/users/{userId}/points?cursor=&limit= — newest first. */
jt_err
points_ledger(jt_req *r)
{
    return jt_cursor_user_list(r, 100, SQL_LEDGER_PAGE, 0, 160, write_ledger_row);
}
