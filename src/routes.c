#include "routes.h"

#include "domain/catalog.h"
#include "domain/health.h"
#include "domain/testing.h"
#include "server/status.h"

const jt_route jt_routes[] = {
    /* operations */
    { JT_GET,    "/healthz",                          health_live,        0 },
    { JT_GET,    "/readyz",                           health_ready,       0 },
    { JT_GET,    "/status",                           status_render,      0 },

    /* catalog */
    { JT_GET,    "/api/v1/products",                  catalog_list,       0 },
    { JT_GET,    "/api/v1/products/{id}",             catalog_get,        0 },

    /* test-only: present only with [server] enable_test_routes = yes */
    { JT_GET,    "/test/sleep",                       testing_sleep,      JT_ROUTE_TEST },
    { JT_POST,   "/test/echo",                        testing_echo,       JT_ROUTE_TEST },
};

const size_t jt_nroutes = sizeof(jt_routes) / sizeof(jt_routes[0]);
