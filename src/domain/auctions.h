/* Descending-price auctions (auctions.c): created by sellers, read by
 * anyone; bids are domain/bids.h, receipts domain/receipts.h. */
#ifndef JT_AUCTIONS_H
#define JT_AUCTIONS_H

#include <json-c/json.h>

#include "http/request.h"

jt_err auctions_validate_create(jt_req *r, json_object *o);
jt_err auctions_create(jt_req *r);
jt_err auctions_delete(jt_req *r);
jt_err auctions_list(jt_req *r);
jt_err auctions_get(jt_req *r);

#endif
