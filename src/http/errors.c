#include "http/errors.h"

static const jt_err_info table[JT_E__COUNT] = {
    [JT_OK]                          = { 200, "OK", "OK", 0 },
    [JT_E_INVALID_REQUEST]           = { 400, "INVALID_REQUEST", "The request is invalid", 0 },
    [JT_E_INVALID_JSON]              = { 400, "INVALID_JSON", "The body is not valid JSON", 0 },
    [JT_E_NOT_FOUND]                 = { 404, "NOT_FOUND", "No such resource", 0 },
    [JT_E_METHOD_NOT_ALLOWED]        = { 405, "METHOD_NOT_ALLOWED", "Method not allowed", 0 },
    [JT_E_PAYLOAD_TOO_LARGE]         = { 413, "PAYLOAD_TOO_LARGE", "The body is too large", 0 },
    [JT_E_UNSUPPORTED_MEDIA_TYPE]    = { 415, "UNSUPPORTED_MEDIA_TYPE", "The body must be application/json", 0 },
    [JT_E_UNAUTHORIZED]              = { 401, "UNAUTHORIZED", "Authentication required", 0 },
    [JT_E_INVALID_CREDENTIALS]       = { 401, "INVALID_CREDENTIALS", "Wrong email or password", 0 },
    [JT_E_FORBIDDEN]                 = { 403, "FORBIDDEN", "Not allowed", 0 },
    [JT_E_RATE_LIMITED]              = { 429, "RATE_LIMITED", "Too many requests", 1 },
    [JT_E_PRODUCT_NOT_FOUND]         = { 404, "PRODUCT_NOT_FOUND", "No such product", 0 },
    [JT_E_OPTION_NOT_FOUND]          = { 404, "OPTION_NOT_FOUND", "No such product option", 0 },
    [JT_E_USER_NOT_FOUND]            = { 404, "USER_NOT_FOUND", "No such user", 0 },
    [JT_E_ORDER_NOT_FOUND]           = { 404, "ORDER_NOT_FOUND", "No such order", 0 },
    [JT_E_EMAIL_TAKEN]               = { 409, "EMAIL_TAKEN", "The email is already registered", 0 },
    [JT_E_AMOUNT_TOO_SMALL]          = { 400, "AMOUNT_TOO_SMALL", "The amount is below the minimum", 0 },
    [JT_E_AMOUNT_TOO_LARGE]          = { 400, "AMOUNT_TOO_LARGE", "The amount is above the maximum", 0 },
    [JT_E_BALANCE_LIMIT]             = { 409, "BALANCE_LIMIT", "The balance would exceed its limit", 0 },
    [JT_E_INSUFFICIENT_BALANCE]      = { 409, "INSUFFICIENT_BALANCE", "The balance is too low", 0 },
    [JT_E_OUT_OF_STOCK]              = { 409, "OUT_OF_STOCK", "Not enough stock", 0 },
    [JT_E_PRICE_CHANGED]             = { 409, "PRICE_CHANGED", "The total has changed", 0 },
    [JT_E_ORDER_NOT_CANCELLABLE]     = { 409, "ORDER_NOT_CANCELLABLE", "The order cannot be cancelled", 0 },
    [JT_E_NOT_ON_SALE_YET]           = { 409, "NOT_ON_SALE_YET", "The sale has not started", 0 },
    [JT_E_SALE_ENDED]                = { 409, "SALE_ENDED", "The sale has ended", 0 },
    [JT_E_VERSION_MISMATCH]          = { 412, "VERSION_MISMATCH", "The resource has changed", 0 },
    [JT_E_IDEMPOTENCY_KEY_MISSING]   = { 400, "IDEMPOTENCY_KEY_MISSING", "Idempotency-Key header required", 0 },
    [JT_E_IDEMPOTENCY_KEY_INVALID]   = { 400, "IDEMPOTENCY_KEY_INVALID", "Idempotency-Key is malformed", 0 },
    [JT_E_IDEMPOTENCY_IN_FLIGHT]     = { 409, "IDEMPOTENCY_IN_FLIGHT", "A request with this key is in flight", 1 },
    [JT_E_IDEMPOTENCY_KEY_REUSED]    = { 422, "IDEMPOTENCY_KEY_REUSED", "The key was used with another payload", 0 },
    [JT_E_AUCTION_NOT_FOUND]         = { 404, "AUCTION_NOT_FOUND", "No such auction", 0 },
    [JT_E_AUCTION_NOT_RUNNING]       = { 409, "AUCTION_NOT_RUNNING", "The auction is not running", 0 },
    [JT_E_AUCTION_ALREADY_STARTED]   = { 409, "AUCTION_ALREADY_STARTED", "The auction has started", 0 },
    [JT_E_AUCTION_NOT_FINISHED]      = { 409, "AUCTION_NOT_FINISHED", "The auction has not finished", 0 },
    [JT_E_PRICE_MISMATCH]            = { 409, "PRICE_MISMATCH", "The price is not the current price", 0 },
    [JT_E_PURCHASE_LIMIT]            = { 409, "PURCHASE_LIMIT", "More than a buyer may buy", 0 },
    [JT_E_RECEIPT_NOT_FOUND]         = { 404, "RECEIPT_NOT_FOUND", "No such receipt", 0 },
    [JT_E_ALREADY_REFUNDED]          = { 409, "ALREADY_REFUNDED", "The receipt is already refunded", 0 },
    [JT_E_AUCTION_DURATION_INVALID]  = { 400, "AUCTION_DURATION_INVALID", "Duration must be whole minutes, at most an hour", 0 },
    [JT_E_AUCTION_VARIATION_INVALID] = { 400, "AUCTION_VARIATION_INVALID", "Duration must be divisible by variationSeconds", 0 },
    [JT_E_AUCTION_START_IN_PAST]     = { 400, "AUCTION_START_IN_PAST", "startsAt is in the past", 0 },
    [JT_E_AUCTION_WINDOW_INVALID]    = { 400, "AUCTION_WINDOW_INVALID", "startsAt must be before endsAt", 0 },
    [JT_E_AUCTION_STOCK_INVALID]     = { 400, "AUCTION_STOCK_INVALID", "Need stock >= maxPerBuyer >= 1", 0 },
    [JT_E_AUCTION_WIDTH_INVALID]     = { 400, "AUCTION_WIDTH_INVALID", "Need variationWidth > 0 and originPrice > variationWidth", 0 },
    [JT_E_AUCTION_RATE_INVALID]      = { 400, "AUCTION_RATE_INVALID", "Need 0 < discountRate <= 50", 0 },
    [JT_E_AUCTION_FINAL_PRICE_INVALID] = { 400, "AUCTION_FINAL_PRICE_INVALID", "The price after the last drop must stay above 0", 0 },
    [JT_E_INVALID_TRANSITION]        = { 409, "INVALID_TRANSITION", "The order cannot make this move now", 0 },
    [JT_E_RETURN_WINDOW_CLOSED]      = { 409, "RETURN_WINDOW_CLOSED", "The return window has closed", 0 },
    [JT_E_NOTIFICATION_NOT_FOUND]    = { 404, "NOTIFICATION_NOT_FOUND", "No such notification", 0 },
    [JT_E_WEBHOOK_NOT_FOUND]         = { 404, "WEBHOOK_NOT_FOUND", "No such webhook", 0 },
    [JT_E_CART_EMPTY]                = { 409, "CART_EMPTY", "The cart is empty", 0 },
    [JT_E_CART_CHANGED]              = { 409, "CART_CHANGED", "The cart changed during checkout", 0 },
    [JT_E_CART_FULL]                 = { 409, "CART_FULL", "The cart has its 50 lines", 0 },
    [JT_E_CART_ITEM_NOT_FOUND]       = { 404, "CART_ITEM_NOT_FOUND", "No such cart line", 0 },
    [JT_E_WISHLIST_EMPTY]            = { 409, "WISHLIST_EMPTY", "The wishlist is empty", 0 },
    [JT_E_WISHLIST_CHANGED]          = { 409, "WISHLIST_CHANGED", "The wishlist changed during the order", 0 },
    [JT_E_WISHLIST_FULL]             = { 409, "WISHLIST_FULL", "The wishlist has its 100 items", 0 },
    [JT_E_WISHLIST_ITEM_NOT_FOUND]   = { 404, "WISHLIST_ITEM_NOT_FOUND", "No such wishlist item", 0 },
    [JT_E_PASSWORD_WRONG]            = { 403, "PASSWORD_WRONG", "The current password is wrong", 0 },
    [JT_E_TOKEN_NOT_FOUND]           = { 404, "TOKEN_NOT_FOUND", "No such session", 0 },
    [JT_E_PAYMENT_NOT_FOUND]         = { 409, "PAYMENT_NOT_FOUND", "The gateway has no such payment", 0 },
    [JT_E_PAYMENT_AMOUNT_MISMATCH]   = { 409, "PAYMENT_AMOUNT_MISMATCH", "The payment does not match the order", 0 },
    [JT_E_PAYMENT_NOT_PENDING]       = { 409, "PAYMENT_NOT_PENDING", "The order is not awaiting this payment", 0 },
    [JT_E_INTERNAL]                  = { 500, "INTERNAL_ERROR", "Internal error", 0 },
    [JT_E_DATABASE_UNAVAILABLE]      = { 503, "DATABASE_UNAVAILABLE", "The database is unavailable", 2 },
    [JT_E_LOCK_TIMEOUT]              = { 503, "LOCK_TIMEOUT", "Too busy: lock wait timed out", 1 },
    [JT_E_CONFLICT_RETRY_EXHAUSTED]  = { 503, "CONFLICT_RETRY_EXHAUSTED", "Too busy: conflicting updates", 1 },
    [JT_E_PAYMENT_GATEWAY_REFUSED]   = { 502, "PAYMENT_GATEWAY_REFUSED", "The payment gateway refused the request", 0 },
    /* Retry-After: the breaker's own figure when it is open (jt_req.retry_after_s) */
    [JT_E_PAYMENT_GATEWAY_UNAVAILABLE] = { 503, "PAYMENT_GATEWAY_UNAVAILABLE", "The payment gateway is unavailable", 2 },
};

const jt_err_info *
jt_err_lookup(jt_err e)
{
    if ((int) e < 0 || e >= JT_E__COUNT || table[e].code == 0) {
        return &table[JT_E_INTERNAL];
    }
    return &table[e];
}

const char *
jt_http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default:  return "Unknown";
    }
}
