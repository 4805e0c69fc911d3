/* Test-only endpoints, compiled in but routed only when the configuration
 * says enable_test_routes = yes (never in the shipped configuration). */
#ifndef JT_TESTING_H
#define JT_TESTING_H

#include "http/request.h"

jt_err testing_sleep(jt_req *r);
jt_err testing_echo(jt_req *r);
jt_err testing_leak(jt_req *r);
jt_err testing_clock(jt_req *r);
jt_err testing_pg(jt_req *r);

#endif
