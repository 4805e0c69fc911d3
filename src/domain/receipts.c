/* Receipts of auction bids: reading them (the buyer's, the seller's) and
 * refunding a purchase once its auction has finished. */
#include "domain/receipts.h"

#include <string.h>

#include "core/clock.h"
#include "domain/accounts.h"
#include "domain/auction_price.h"
#include "domain/auction_rows.h"
#include "domain/bids.h"
#include "domain/common.h"
#include "domain/events.h"
#include "domain/cursor.h"
#include "domain/points.h"
#include "domain/write.h"
#include "http/json.h"
#include "store/db.h"
#include "store/lock.h"

const char SQL_RECEIPT_BY_UUID[] = RECEIPT_COLS " WHERE uuid = ?";
const char SQL_RECEIPT_BY_ID[] = RECEIPT_COLS " WHERE id = ?";
static const char SQL_RECEIPTS_BUYER[] = RECEIPT_COLS " WHERE buyer_id = ? AND id < ? ORDER BY id DESC LIMIT ?";
static const char SQL_RECEIPTS_SELLER[] = RECEIPT_COLS " WHERE seller_id = ? AND id < ? ORDER BY id DESC LIMIT ?";
const char SQL_RECEIPT_SETTLE[] =
    "UPDATE receipts SET status = ?, failure_code = ?, version = version + 1"
    " WHERE id = ? AND version = ? AND status = ?";

void
receipt_write(jt_json *w, const jt_rows *rows, int i)
{
    jw_obj_open(w);
    jw_kstr(w, "receiptId", jt_cell(rows, i, R_UUID)->s);
    jw_kint(w, "auctionId", jt_cell(rows, i, R_AUCTION)->i);
    jw_kstr(w, "productName", jt_cell(rows, i, R_NAME)->s);
    jw_kint(w, "price", jt_cell(rows, i, R_PRICE)->i);
    jw_kint(w, "quantity", jt_cell(rows, i, R_QTY)->i);
    jw_kstr(w, "status", jt_cell(rows, i, R_STATUS)->s);
    if (jt_cell(rows, i, R_FAILURE)->type == JT_V_NULL) {
        jw_knull(w, "failureCode");
    } else {
        jw_kstr(w, "failureCode", jt_cell(rows, i, R_FAILURE)->s);
    }
    jw_kint(w, "buyerId", jt_cell(rows, i, R_BUYER)->i);
    jw_kint(w, "sellerId", jt_cell(rows, i, R_SELLER)->i);
    jw_kstr(w, "createdAt", jt_cell(rows, i, R_CREATED)->s);
    jw_kstr(w, "updatedAt", jt_cell(rows, i, R_UPDATED)->s);
    jw_obj_close(w);
}

/* a receipt its buyer or seller (or an admin) may see; 404 otherwise */
static jt_err
load_receipt(jt_req *r, const jt_principal *who, const char *uuid, jt_rows *rows)
{
    jt_val p[1] = { JT_VS(uuid) };
    jt_db_rc rc;

    if (strlen(uuid) != 36) {
        return jt_fail(r, JT_E_RECEIPT_NOT_FOUND, "no such receipt");
    }
    if ((rc = jt_db_exec(r->db, r->arena, SQL_RECEIPT_BY_UUID, p, 1, rows)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    if (rows->nrows == 0
        || (!who->is_admin && jt_cell(rows, 0, R_BUYER)->i != who->user_id
            && jt_cell(rows, 0, R_SELLER)->i != who->user_id)) {
        return jt_fail(r, JT_E_RECEIPT_NOT_FOUND, "no such receipt");
    }
    return JT_OK;
}

/* GET /api/v1/receipts/{receiptId} */
jt_err
receipts_get(jt_req *r)
{
    jt_principal who;
    jt_rows rows;
    jt_buf b;
    jt_json w;
    jt_err e;

    if ((e = auth_require(r, &who)) != JT_OK
        || (e = load_receipt(r, &who, jt_req_param(r, "receiptId"), &rows)) != JT_OK) {
        return e;
    }
    jt_json_begin(r, &b, &w, 512);
    receipt_write(&w, &rows, 0);
    jt_reply_json(r, 200, &b);
    return JT_OK;
}

static jt_err
receipt_item(jt_req *r, jt_json *w, const jt_rows *rows, int i)
{
    (void) r;
    receipt_write(w, rows, i);
    return JT_OK;
}

/* GET /api/v1/users/{userId}/receipts?role=buyer|seller&cursor=&limit= */
jt_err
receipts_list(jt_req *r)
{
    int64_t uid = jt_req_param_id(r, "userId");
    jt_val p[1] = { JT_VI(uid) };
    const char *role;
    jt_principal who;
    jt_cursor c;
    jt_err e;

    if ((e = auth_require_user(r, &who, uid)) != JT_OK || (e = jt_cursor_parse(r, &c, 100)) != JT_OK
        || (e = jt_req_query_str(r, "role", &role)) != JT_OK) {
        return e;
    }
    if (role != NULL && strcmp(role, "buyer") && strcmp(role, "seller")) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'role' must be buyer or seller");
    }
    return jt_cursor_answer(r, &c, role && !strcmp(role, "seller") ? SQL_RECEIPTS_SELLER : SQL_RECEIPTS_BUYER,
                            p, 1, R_ID, 320, receipt_item);
}

/* --- refunds ---------------------------------------------------------------------- */

typedef struct {
    jt_req  *r;
    int64_t  receipt_id;
    jt_err   refusal;
    jt_buf   body;
} refund_tx;

static jt_tx_step
refund_body(jt_tx *tx)
{
    refund_tx *t = tx->data;
    jt_val p[5];
    jt_rows rc, ar, rows;
    int64_t amount, qty, stock, buyer, seller;
    jt_tx_step step;
    jt_err why;
    jt_json w;

    p[0] = JT_VI(t->receipt_id);
    JT_TX_EXEC(tx, SQL_RECEIPT_BY_ID, p, 1, &rc);
    if (rc.nrows == 0) {
        t->refusal = jt_fail(t->r, JT_E_RECEIPT_NOT_FOUND, "no such receipt");
        return JT_TX_ABORT;
    }
    if (!strcmp(jt_cell(&rc, 0, R_STATUS)->s, "REFUNDED")) {
        t->refusal = jt_fail(t->r, JT_E_ALREADY_REFUNDED, "this receipt was refunded already");
        return JT_TX_ABORT;
    }
    if (strcmp(jt_cell(&rc, 0, R_STATUS)->s, "PURCHASED") != 0) {
        t->refusal = jt_fail(t->r, JT_E_INVALID_REQUEST, "only a PURCHASED receipt can be refunded");
        return JT_TX_ABORT;
    }
    qty = jt_cell(&rc, 0, R_QTY)->i;
    amount = jt_cell(&rc, 0, R_PRICE)->i * qty;
    buyer = jt_cell(&rc, 0, R_BUYER)->i;
    seller = jt_cell(&rc, 0, R_SELLER)->i;

    p[0] = JT_VI(jt_cell(&rc, 0, R_AUCTION)->i);
    JT_TX_EXEC(tx, SQL_AUCTION_GET, p, 1, &ar);
    if (ar.nrows == 0) {
        t->refusal = jt_fail(t->r, JT_E_AUCTION_NOT_FOUND, "the auction is gone");
        return JT_TX_ABORT;
    }
    {
        jt_auction_rule rule;
        auction_rule_of(&ar, 0, &rule);
        if (jt_clock_now_ms() < rule.ends_ms) {
            t->refusal = jt_fail(t->r, JT_E_AUCTION_NOT_FINISHED, "refunds open when the auction has finished");
            return JT_TX_ABORT;
        }
    }
    p[0] = JT_VS("REFUNDED");
    p[1] = JT_VNULL;
    p[2] = JT_VI(t->receipt_id);
    p[3] = JT_VI(jt_cell(&rc, 0, R_VERSION)->i);
    p[4] = JT_VS("PURCHASED");
    JT_TX_EXEC(tx, SQL_RECEIPT_SETTLE, p, 5, &rows);
    if (rows.affected != 1) {
        return JT_TX_CONFLICT;
    }
    /* stock back, never above the original */
    stock = jt_cell(&ar, 0, A_STOCK)->i + qty;
    if (stock > jt_cell(&ar, 0, A_INITIAL)->i) {
        stock = jt_cell(&ar, 0, A_INITIAL)->i;
    }
    p[0] = JT_VI(stock);
    p[1] = JT_VI(jt_cell(&ar, 0, A_ID)->i);
    p[2] = JT_VI(jt_cell(&ar, 0, A_VERSION)->i);
    JT_TX_EXEC(tx, SQL_AUCTION_STOCK, p, 3, &rows);
    if (rows.affected != 1) {
        return JT_TX_CONFLICT;
    }
    /* the money back: seller pays back (must be able to), buyer is credited */
    step = points_apply(tx, seller, -amount, "AUCTION_REVERSAL", t->receipt_id, NULL, NULL, &why);
    if (step == JT_TX_ABORT) {
        t->refusal = jt_fail(t->r, why, why == JT_E_INSUFFICIENT_BALANCE
                                            ? "the seller's balance cannot cover the refund"
                                            : "the seller does not exist");
        return step;
    }
    if (step != JT_TX_COMMIT) {
        return step;
    }
    step = points_apply(tx, buyer, amount, "AUCTION_REFUND", t->receipt_id, NULL, NULL, &why);
    if (step == JT_TX_ABORT) {
        t->refusal = jt_fail(t->r, why, why == JT_E_BALANCE_LIMIT
                                            ? "the refund would take the balance over its limit"
                                            : "the buyer does not exist");
        return step;
    }
    if (step != JT_TX_COMMIT) {
        return step;
    }

    p[0] = JT_VI(t->receipt_id);
    JT_TX_EXEC(tx, SQL_RECEIPT_BY_ID, p, 1, &rows);
    jt_buf_init(&t->body, tx->arena, 512);
    jw_init(&w, &t->body);
    receipt_write(&w, &rows, 0);
    if ((step = events_emit(tx, "receipt.refunded", t->receipt_id, t->body.data, t->body.len)) != JT_TX_COMMIT) {
        return step;
    }
    jt_write_answer(tx, 200, &t->body, "RECEIPT", t->receipt_id);
    return JT_TX_COMMIT;
}

/* POST /api/v1/receipts/{receiptId}/refund — by its buyer */
jt_err
receipts_refund(jt_req *r)
{
    jt_principal who;
    jt_rows rows;
    refund_tx t;
    jt_write *wr;
    const char **keys;
    jt_err e;

    if ((e = auth_require(r, &who)) != JT_OK
        || (e = load_receipt(r, &who, jt_req_param(r, "receiptId"), &rows)) != JT_OK) {
        return e;
    }
    if (jt_cell(&rows, 0, R_BUYER)->i != who.user_id) {
        return jt_fail(r, JT_E_FORBIDDEN, "only the buyer may ask for a refund");
    }
    memset(&t, 0, sizeof(t));
    t.r = r;
    t.receipt_id = jt_cell(&rows, 0, R_ID)->i;
    if ((e = jt_write_begin(r, &wr, who.user_id, NULL, JT_WRITE_KEY_IGNORED)) != JT_OK) {
        return e;
    }
    keys = bid_lock_keys(r->arena, jt_cell(&rows, 0, R_AUCTION)->i, jt_cell(&rows, 0, R_BUYER)->i,
                         jt_cell(&rows, 0, R_SELLER)->i);
    if (keys == NULL) {
        return JT_E_INTERNAL;
    }
    if ((e = jt_write_lock(r, wr, keys, 3)) != JT_OK || (e = jt_write_run(r, wr, refund_body, &t, &t.refusal)) != JT_OK) {
        return e;
    }
    jt_write_finish(r, wr);
    return JT_OK;
}
