/* The route table: every endpoint of the API in one place (routes.c). */
#ifndef JT_ROUTES_H
#define JT_ROUTES_H

#include <stddef.h>

#include "http/router.h"

extern const jt_route jt_routes[];
extern const size_t   jt_nroutes;

#endif
