/* Operations: the PHP-FPM-style status page (ops_status.c). */
#ifndef JT_OPS_STATUS_H
#define JT_OPS_STATUS_H

#include "http/request.h"

/* GET /status: the scoreboard, as PHP-FPM's status page (text, ?json). */
jt_err status_render(jt_req *r);

#endif
