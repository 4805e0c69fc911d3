#ifndef JT_POINTS_H
#define JT_POINTS_H

#include "http/request.h"

#define JT_BALANCE_MAX 100000000LL
#define JT_CHARGE_MIN 1000
#define JT_CHARGE_MAX 1000000

#include <json-c/json.h>
#include <stdint.h>

jt_err points_parse_amount(jt_req *r, json_object *o, int64_t *amount);
jt_err points_charge(jt_req *r);
jt_err points_ledger(jt_req *r);

#endif
