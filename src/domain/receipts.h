/* Receipts of bids (receipts.c): read by their buyer or seller, refunded
 * by their buyer once the auction has finished. */
#ifndef JT_RECEIPTS_H
#define JT_RECEIPTS_H

#include "http/request.h"

jt_err receipts_get(jt_req *r);
jt_err receipts_list(jt_req *r);
jt_err receipts_refund(jt_req *r);

#endif
