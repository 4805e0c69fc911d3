/* Operations: Prometheus metrics (ops_metrics.c). */
#ifndef JT_OPS_METRICS_H
#define JT_OPS_METRICS_H

#include "http/request.h"

/* GET /metrics: every counter of every worker, in the Prometheus text
 * exposition format (0.0.4). nginx exposes it to loopback only. */
jt_err metrics_render(jt_req *r);

#endif
