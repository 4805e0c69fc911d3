/* Route matching: method + path pattern. A pattern is '/'-separated
 * segments; `{name}` matches one segment that must be a positive 63-bit
 * integer (400 otherwise), `{name:str}` any non-empty segment. When several
 * patterns match a path the one with the most literal segments wins, so
 * `/products/popular` beats `/products/{id}`. */
#ifndef JT_ROUTER_H
#define JT_ROUTER_H

#include <stddef.h>

#include "http/request.h"

typedef jt_err (*jt_handler)(jt_req *r);

#define JT_ROUTE_TEST 1   /* exists only when [server] enable_test_routes */

typedef struct jt_route {
    int         method;
    const char *pattern;
    jt_handler  handler;
    int         flags;
} jt_route;

/* Finds the route for r (setting r->route and r->params). Returns the route
 * or NULL with *err set to NOT_FOUND, METHOD_NOT_ALLOWED (and an Allow
 * header) or INVALID_REQUEST (a malformed typed parameter). */
const jt_route *jt_route_find(const jt_route *routes, size_t n, int with_test, jt_req *r, jt_err *err);

int jt_method_from_name(const char *name);
/* The name of one JT_* method; NULL for anything else. */
const char *jt_method_name(int m);

#endif
