/* Points (points.c): charging a balance, reading its ledger, and the one
 * place any balance changes (points_apply, points_bound + points_record). */
#ifndef JT_POINTS_H
#define JT_POINTS_H

#include <json-c/json.h>
#include <stdint.h>

#include "http/request.h"
#include "store/tx.h"

#define JT_BALANCE_MAX 100000000LL
#define JT_CHARGE_MIN 1000
#define JT_CHARGE_MAX 1000000

jt_err points_parse_amount(jt_req *r, json_object *o, int64_t *amount);

/* Moves `delta` points on a user's balance inside a transaction: reads the
 * balance with its version, refuses to go below zero or above the cap,
 * writes it back fenced by the version and appends the ledger row (kind,
 * ref_id; ref_id 0 = none) — the only place balances change. On JT_TX_ABORT
 * *why is USER_NOT_FOUND, INSUFFICIENT_BALANCE or BALANCE_LIMIT. */
jt_tx_step points_apply(jt_tx *tx, int64_t user_id, int64_t delta, const char *kind, int64_t ref_id,
                        int64_t *balance_after, int64_t *ledger_id, jt_err *why);

/* points_apply's rules without its statements, for a write that reads the
 * balance (with its version) and writes it back fenced in the statements
 * that read and write its own rows (orders: one round trip each, not two).
 * points_bound: the balance after delta, or JT_TX_ABORT with *why
 * INSUFFICIENT_BALANCE or BALANCE_LIMIT. points_record: the ledger row. */
jt_tx_step points_bound(int64_t balance, int64_t delta, int64_t *after, jt_err *why);
jt_tx_step points_record(jt_tx *tx, int64_t user_id, int64_t delta, int64_t after, const char *kind,
                         int64_t ref_id, int64_t *ledger_id);

/* Many ledger rows in one statement, in the order given (a combined batch
 * of orders, domain/combine.c): each row as points_record would write it. */
typedef struct {
    int64_t     user_id;
    int64_t     delta;
    int64_t     after;
    const char *kind;
    int64_t     ref_id;
} points_entry;
jt_tx_step points_record_many(jt_tx *tx, const points_entry *e, int n);
jt_err points_charge(jt_req *r);
jt_err points_ledger(jt_req *r);

#endif
