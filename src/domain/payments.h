/* Orders paid by card through the payment gateway (PortOne REST V1,
 * store/pg.h): the checkout, the verification, the gateway's webhook, the
 * sweeper's work, and cancelling with a refund. Points orders never come
 * here (orders.c hands a body with "payment":{"method":"CARD"} over).
 *
 * The rule every step keeps: no gateway call is made inside a transaction
 * or while holding a lock. Each call sits between two transactions, each
 * transaction leaves a state that is complete in itself, and each call is
 * idempotent by the merchant uid or the payment (a lookup or a find reads;
 * prepare registers a merchant uid that is new and known to nobody else; a
 * cancel carries `checksum`, the amount still refundable, so a repeated
 * cancel never refunds twice). So a crash between any two steps leaves a
 * state that the next actor finishes, and two actors racing on one order
 * (two verifies, a verify and the webhook, several sweepers on several
 * hosts) meet at the order's version: the first transaction moves it, the
 * second re-reads, sees the move and does nothing twice.
 *
 * The states between the steps, and who moves each (order status;
 * card_payments = C; gateway_payments row of a payment = G):
 *
 *  Checkout, POST /api/v1/orders (the request):
 *   T1  stock taken, order PAYMENT_PENDING, C not prepared, C.due_at = the
 *       request's whole life from now. Nobody outside knows the merchant
 *       uid yet, so nobody can have paid.
 *         -> the request (T2 or T3), or, if it died, the sweeper at C.due_at
 *            (it finds no payment: PAYMENT_EXPIRED, stock given back).
 *   --  prepare(merchant uid, total) at the gateway.
 *   T2  prepared: C.due_at = the hold's end; the 201 answer (with the
 *       idempotency row) names the merchant uid for the first time.
 *         -> a verify, the webhook, or the sweeper at the hold's end.
 *   T3  (prepare refused or the gateway down) PAYMENT_FAILED, stock back,
 *       503; the amount the gateway may hold is for a uid nobody knows.
 *
 *  Paying, from a verify (POST .../payments {impUid}), the webhook or the
 *  sweeper (which finds the payment by merchant uid):
 *   --  the gateway's payment is read (never the client's or the body's
 *       word): its merchant uid names the order, its amount is compared.
 *   S   one transaction settles it, once (G's primary key is the imp_uid):
 *       PAYMENT_PENDING + right amount       -> PAID, G CAPTURED;
 *       PAYMENT_PENDING + other amount       -> PAYMENT_FAILED, stock back,
 *                                               G REFUND_DUE;
 *       PAYMENT_EXPIRED + right amount       -> PAID if the stock can be
 *                                               taken again, else
 *                                               OUT_OF_STOCK, G REFUND_DUE;
 *       anything else (a second payment, a late one, a cancelled order)
 *                                            -> G REFUND_DUE, status kept.
 *       A crash before S leaves the gateway paid and us not: the sweeper
 *       finds the payment at the hold's end (or the webhook brings it
 *       sooner) and runs the same S.
 *   --  a G REFUND_DUE is refunded by whoever made it, at once; its due_at
 *       is a claim of sweep_claim_ms, after which the sweeper takes it:
 *   R   cancel(imp_uid, amount, checksum = refundable) -> G REFUNDED (one
 *       card_refunds row per (imp_uid, checksum)). A crash after the
 *       gateway refunded and before R: the next cancel with the same
 *       checksum is refused, and a lookup shows the refund: R records it.
 *
 *  Cancelling (the buyer, PAID or PREPARING; a return refunds the same way):
 *   K   PAID/PREPARING -> CANCEL_PENDING, G CAPTURED -> REFUND_DUE; stock
 *       still held.
 *   --  the refund as above; R also moves CANCEL_PENDING -> CANCELLED and
 *       gives the stock back once no refund of the order is due. A gateway
 *       that refuses or is down leaves CANCEL_PENDING (202) for the
 *       sweeper; a cancel repeated on CANCEL_PENDING tries again.
 *
 *  Returning (RETURN_REQUESTED -> RETURNED, lifecycle.c's move, by the
 *  seller, an admin or the scheduler):
 *   RT  the move's own transaction gives every line's units back and makes
 *       G CAPTURED -> REFUND_DUE (reason RETURNED); no points row. After
 *       COMMIT a request refunds at once (R; the order stays RETURNED);
 *       the scheduler, which has no gateway client, leaves it due now for
 *       the sweeper.
 *
 *  Expiring (the sweeper, C.due_at passed, order PAYMENT_PENDING):
 *   --  find(merchant uid) at the gateway: paid -> S; no payment ->
 *   E   PAYMENT_EXPIRED, stock back, C.due_at = a hold from now. A payment
 *       made after the find reaches S as "PAYMENT_EXPIRED + right amount",
 *       from a verify, the webhook, or the sweeper's one late look at
 *       C.due_at (find again: paid -> S, none -> C.due_at NULL, done).
 *
 * Several sweepers (on several hosts): a sweeper first claims a due row
 * by moving its due_at sweep_claim_ms ahead with a versioned UPDATE; only
 * the winner calls the gateway for it, and a claim left by a dead sweeper
 * runs out. The claim is an economy of gateway calls, not the guarantee:
 * S, E, K and R are versioned, so two actors on one row still commit one
 * move. Redis locks (lock:order plus the stock keys) are an optimisation
 * here as everywhere.
 *
 * The answers are read from the committed state (a final transaction of
 * the write path reads the order), so a repeated verify or cancel answers
 * as the first did, whichever actor made the move. */
#ifndef JT_PAYMENTS_H
#define JT_PAYMENTS_H

#include <json-c/json.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/config.h"
#include "domain/accounts.h"
#include "http/request.h"
#include "store/db.h"
#include "store/pg.h"
#include "store/redis.h"
#include "store/tx.h"

#define JT_MERCHANT_UID_LEN 34   /* "jt" + 32 hex digits: 128 random bits */

/* Does the order body ask for a card payment ("payment":{"method":"CARD"})? */
int    payments_card_requested(json_object *o);
/* Checks the body's "payment" member, if any: {"method":"POINTS"} or
 * {"method":"CARD","cardCompany":"NH"|"SHINHAN"|"KAKAOBANK"}; *card (when
 * not NULL) is the card company, or NULL for points. */
jt_err payments_parse_method(jt_req *r, json_object *o, const char **card);

/* POST /api/v1/orders with a card payment (orders.c hands it over). */
jt_err payments_place(jt_req *r, const jt_principal *who, json_object *o);
/* POST /api/v1/orders/{orderId}/payments {"impUid"} (Idempotency-Key) */
jt_err payments_verify(jt_req *r);
/* POST /api/v1/payments/webhook {imp_uid, merchant_uid, status} */
jt_err payments_webhook(jt_req *r);
/* POST /api/v1/orders/{orderId}/cancel of a card order (orders.c). */
jt_err payments_cancel(jt_req *r, const jt_principal *who, int64_t order_id);
/* A card order's return (lifecycle.c's RETURNED move), in the move's
 * transaction: its captured payment becomes due for a refund of all of it,
 * claimed for claim_ms by the mover (0: the sweeper's at once); *imp_uid
 * (in a) is the payment to refund. */
jt_tx_step payments_return_due(jt_tx *tx, jt_arena *a, int64_t order_id, int64_t claim_ms, const char **imp_uid);
struct jt_pay_env_s;
/* After that COMMIT, outside any lock: the refund at the gateway and its
 * record (R, as a cancel's); a gateway that will not now leaves it due for
 * the sweeper. */
void   payments_refund_now(const struct jt_pay_env_s *env, const char *imp_uid);
/* The "payment" member of a card order's answer. */
jt_err payments_write_block(jt_req *r, jt_json *w, int64_t order_id);

/* What the sweeper works with (server/sweeper.c owns the connections). */
typedef struct jt_pay_env_s {
    const jt_conf *conf;
    jt_db         *db;
    jt_redis      *redis;
    jt_pg         *pg;
    jt_arena      *arena;
} jt_pay_env;

/* One sweep: pending orders whose due_at has passed (expired holds, and
 * checkouts whose request died), then refunds that are due. At most
 * [payments] sweep_batch of each. Returns how many rows it moved. */
int    payments_sweep(jt_pay_env *env);

/* The audit against the gateway's own records: each card order looked up
 * by merchant uid (at most `max`, newest first). *checked and *violations
 * are counted; samples gets a few offending order ids. -1 when no gateway
 * is configured or the database failed. */
int    payments_audit_gateway(jt_pay_env *env, int64_t max, int64_t *checked, int64_t *violations,
                              jt_buf *samples);

#endif
