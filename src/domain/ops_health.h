/* Operations: liveness and readiness probes (ops_health.c). */
#ifndef JT_OPS_HEALTH_H
#define JT_OPS_HEALTH_H

#include "http/request.h"

jt_err health_live(jt_req *r);
jt_err health_ready(jt_req *r);

#endif
