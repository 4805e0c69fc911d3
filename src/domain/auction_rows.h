/* The auction and receipt rows as auctions.c, bids.c and receipts.c read
 * them: the column lists with their indexes, the statements more than one
 * of them runs (each defined once, in the file named: a statement's text
 * address keys the prepared-statement cache), and the helpers on a row.
 * Auction windows and a bid's acceptance are business times: DATETIME(6)
 * in the rows (sql/008), epoch milliseconds in C (auction_price.h). */
#ifndef JT_AUCTION_ROWS_H
#define JT_AUCTION_ROWS_H

#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "domain/auction_price.h"
#include "domain/common.h"
#include "http/request.h"
#include "store/db.h"

#define AUCTION_COLS                                                                        \
    "SELECT id, seller_id, product_name, origin_price, initial_stock, stock, max_per_buyer," \
    " policy, variation_width, discount_rate_bp, variation_seconds, " JT_SQL_EPOCH_MS("starts_at") ","        \
    " " JT_SQL_EPOCH_MS("ends_at") ", show_stock, version"                                  \
    " FROM auctions"
enum { A_ID, A_SELLER, A_NAME, A_ORIGIN, A_INITIAL, A_STOCK, A_MAX, A_POLICY, A_WIDTH, A_RATE, A_VAR, A_START,
       A_END, A_SHOW, A_VERSION };

#define RECEIPT_COLS                                                                        \
    "SELECT id, uuid, auction_id, buyer_id, seller_id, product_name, price, quantity, status, failure_code," \
    " " JT_SQL_EPOCH_MS("accepted_at") ", version, DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%s.%fZ')," \
    " DATE_FORMAT(updated_at, '%Y-%m-%dT%H:%i:%s.%fZ') FROM receipts"
enum { R_ID, R_UUID, R_AUCTION, R_BUYER, R_SELLER, R_NAME, R_PRICE, R_QTY, R_STATUS, R_FAILURE, R_ACCEPTED,
       R_VERSION, R_CREATED, R_UPDATED };

extern const char SQL_AUCTION_GET[];      /* auctions.c */
extern const char SQL_AUCTION_STOCK[];    /* auctions.c */
extern const char SQL_RECEIPT_BY_UUID[];  /* receipts.c */
extern const char SQL_RECEIPT_BY_ID[];    /* receipts.c */
extern const char SQL_RECEIPT_SETTLE[];   /* receipts.c */

/* The price rule of row i (auctions.c). */
void   auction_rule_of(const jt_rows *rows, int i, jt_auction_rule *a);
/* A live auction, or 404 AUCTION_NOT_FOUND (auctions.c). */
jt_err auction_load(jt_req *r, int64_t id, jt_rows *rows);
/* Receipt row i as the API shows it (receipts.c). */
void   receipt_write(jt_json *w, const jt_rows *rows, int i);

#endif
