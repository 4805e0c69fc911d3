#include "routes.h"

#include "domain/audit.h"
#include "domain/auctions.h"
#include "domain/bids.h"
#include "domain/accounts.h"
#include "domain/basket.h"
#include "domain/catalog.h"
#include "domain/lifecycle.h"
#include "domain/notifications.h"
#include "domain/ops_health.h"
#include "domain/orders.h"
#include "domain/payments.h"
#include "domain/points.h"
#include "domain/profile.h"
#include "domain/receipts.h"
#include "domain/testing.h"
#include "domain/webhooks.h"
#include "domain/ops_metrics.h"
#include "domain/ops_status.h"

const jt_route jt_routes[] = {
    /* operations */
    { JT_GET,    "/healthz",                          health_live,        0 },
    { JT_GET,    "/readyz",                           health_ready,       0 },
    { JT_GET,    "/status",                           status_render,      0 },
    { JT_GET,    "/metrics",                          metrics_render,     0 },

    /* accounts and points */
    { JT_POST,   "/api/v1/users",                     accounts_create,    0 },
    { JT_GET,    "/api/v1/users/{userId}",            accounts_get,       0 },
    { JT_POST,   "/api/v1/users/{userId}/charge",     points_charge,      0 },
    { JT_GET,    "/api/v1/users/{userId}/points",     points_ledger,      0 },
    { JT_POST,   "/api/v1/auth/tokens",               auth_token_create,  0 },
    { JT_DELETE, "/api/v1/auth/tokens/current",       auth_token_revoke,  0 },

    /* the buyer's own account */
    { JT_PATCH,  "/api/v1/users/{userId}",            profile_patch,      0 },
    { JT_POST,   "/api/v1/users/{userId}/password",   profile_password,   0 },
    { JT_GET,    "/api/v1/users/{userId}/tokens",     profile_tokens,     0 },
    { JT_DELETE, "/api/v1/users/{userId}/tokens/{tokenId}", profile_token_revoke, 0 },

    /* cart and wishlist */
    { JT_GET,    "/api/v1/users/{userId}/cart",       cart_get,           0 },
    { JT_DELETE, "/api/v1/users/{userId}/cart",       cart_clear,         0 },
    { JT_PUT,    "/api/v1/users/{userId}/cart/items", cart_put,           0 },
    { JT_DELETE, "/api/v1/users/{userId}/cart/items/{lineId}", cart_remove, 0 },
    { JT_POST,   "/api/v1/users/{userId}/cart/checkout", cart_checkout,   0 },
    { JT_GET,    "/api/v1/users/{userId}/wishlist",   wishlist_get,       0 },
    { JT_PUT,    "/api/v1/users/{userId}/wishlist/items", wishlist_put,   0 },
    { JT_DELETE, "/api/v1/users/{userId}/wishlist/items/{productId}", wishlist_remove, 0 },
    { JT_POST,   "/api/v1/users/{userId}/wishlist/order", wishlist_order, 0 },

    /* orders */
    { JT_POST,   "/api/v1/orders",                    orders_place,       0 },
    { JT_GET,    "/api/v1/orders/{orderId}",          orders_get,         0 },
    { JT_POST,   "/api/v1/orders/{orderId}/cancel",   lifecycle_cancel,   0 },
    { JT_POST,   "/api/v1/orders/{orderId}/transitions", lifecycle_transition, 0 },
    { JT_POST,   "/api/v1/orders/{orderId}/return",   lifecycle_return,   0 },
    { JT_GET,    "/api/v1/users/{userId}/orders",     orders_list,        0 },
    { JT_POST,   "/api/v1/orders/{orderId}/payments", payments_verify,    0 },
    { JT_POST,   "/api/v1/payments/webhook",          payments_webhook,   0 },

    /* notifications */
    { JT_GET,    "/api/v1/users/{userId}/notifications", notifications_list, 0 },
    { JT_POST,   "/api/v1/users/{userId}/notifications/{notificationId}/read", notifications_read, 0 },

    /* catalog */
    { JT_GET,    "/api/v1/products",                  catalog_list,       0 },
    { JT_GET,    "/api/v1/products/{id}",             catalog_get,        0 },
    { JT_GET,    "/api/v1/products/popular",          catalog_popular,    0 },
    { JT_POST,   "/api/v1/products",                  catalog_create,     0 },
    { JT_PATCH,  "/api/v1/products/{id}",             catalog_patch,      0 },
    { JT_DELETE, "/api/v1/products/{id}",             catalog_delete,     0 },
    { JT_POST,   "/api/v1/products/{id}/stock",       catalog_restock,    0 },

    /* auctions */
    { JT_POST,   "/api/v1/auctions",                  auctions_create,    0 },
    { JT_GET,    "/api/v1/auctions",                  auctions_list,      0 },
    { JT_GET,    "/api/v1/auctions/{id}",             auctions_get,       0 },
    { JT_DELETE, "/api/v1/auctions/{id}",             auctions_delete,    0 },
    { JT_POST,   "/api/v1/auctions/{id}/bids",        bids_place,         0 },
    { JT_GET,    "/api/v1/receipts/{receiptId:str}",  receipts_get,       0 },
    { JT_POST,   "/api/v1/receipts/{receiptId:str}/refund", receipts_refund, 0 },
    { JT_GET,    "/api/v1/users/{userId}/receipts",   receipts_list,      0 },

    /* administration */
    { JT_GET,    "/api/v1/admin/audit",               audit_http,         0 },
    { JT_POST,   "/api/v1/admin/webhooks",            webhooks_create,    0 },
    { JT_GET,    "/api/v1/admin/webhooks",            webhooks_list,      0 },
    { JT_GET,    "/api/v1/admin/webhooks/{webhookId}/deliveries", webhooks_deliveries, 0 },

    /* test-only: present only with [server] enable_test_routes = yes */
    { JT_GET,    "/test/sleep",                       testing_sleep,      JT_ROUTE_TEST },
    { JT_POST,   "/test/echo",                        testing_echo,       JT_ROUTE_TEST },
    { JT_POST,   "/test/leak",                        testing_leak,       JT_ROUTE_TEST },
    { JT_POST,   "/test/clock",                       testing_clock,      JT_ROUTE_TEST },
    { JT_POST,   "/test/pg",                          testing_pg,         JT_ROUTE_TEST },
};

const size_t jt_nroutes = sizeof(jt_routes) / sizeof(jt_routes[0]);
