/* The one error vocabulary. Every handler returns a jt_err; JT_OK means the
 * handler has written its answer, anything else is turned into an RFC 9457
 * problem+json by the dispatcher using the table in errors.c. Codes are
 * stable: clients switch on them. */
#ifndef JT_ERRORS_H
#define JT_ERRORS_H

typedef enum {
    JT_OK = 0,
    /* 4xx: the client's fault, nothing changed */
    JT_E_INVALID_REQUEST,
    JT_E_INVALID_JSON,
    JT_E_NOT_FOUND,
    JT_E_METHOD_NOT_ALLOWED,
    JT_E_PAYLOAD_TOO_LARGE,
    JT_E_UNSUPPORTED_MEDIA_TYPE,
    JT_E_UNAUTHORIZED,
    JT_E_INVALID_CREDENTIALS,
    JT_E_FORBIDDEN,
    JT_E_RATE_LIMITED,
    JT_E_PRODUCT_NOT_FOUND,
    JT_E_OPTION_NOT_FOUND,
    JT_E_USER_NOT_FOUND,
    JT_E_ORDER_NOT_FOUND,
    JT_E_EMAIL_TAKEN,
    JT_E_AMOUNT_TOO_SMALL,
    JT_E_AMOUNT_TOO_LARGE,
    JT_E_BALANCE_LIMIT,
    JT_E_INSUFFICIENT_BALANCE,
    JT_E_OUT_OF_STOCK,
    JT_E_PRICE_CHANGED,
    JT_E_ORDER_NOT_CANCELLABLE,
    JT_E_NOT_ON_SALE_YET,
    JT_E_SALE_ENDED,
    JT_E_VERSION_MISMATCH,
    JT_E_IDEMPOTENCY_KEY_MISSING,
    JT_E_IDEMPOTENCY_KEY_INVALID,
    JT_E_IDEMPOTENCY_IN_FLIGHT,
    JT_E_IDEMPOTENCY_KEY_REUSED,
    JT_E_AUCTION_NOT_FOUND,
    JT_E_AUCTION_NOT_RUNNING,
    JT_E_AUCTION_ALREADY_STARTED,
    JT_E_AUCTION_NOT_FINISHED,
    JT_E_PRICE_MISMATCH,
    JT_E_PURCHASE_LIMIT,
    JT_E_RECEIPT_NOT_FOUND,
    JT_E_ALREADY_REFUNDED,
    JT_E_AUCTION_DURATION_INVALID,
    JT_E_AUCTION_VARIATION_INVALID,
    JT_E_AUCTION_START_IN_PAST,
    JT_E_AUCTION_WINDOW_INVALID,
    JT_E_AUCTION_STOCK_INVALID,
    JT_E_AUCTION_WIDTH_INVALID,
    JT_E_AUCTION_RATE_INVALID,
    JT_E_AUCTION_FINAL_PRICE_INVALID,
    JT_E_INVALID_TRANSITION,
    JT_E_RETURN_WINDOW_CLOSED,
    JT_E_NOTIFICATION_NOT_FOUND,
    JT_E_WEBHOOK_NOT_FOUND,
    JT_E_CART_EMPTY,
    JT_E_CART_CHANGED,
    JT_E_CART_FULL,
    JT_E_CART_ITEM_NOT_FOUND,
    JT_E_WISHLIST_EMPTY,
    JT_E_WISHLIST_CHANGED,
    JT_E_WISHLIST_FULL,
    JT_E_WISHLIST_ITEM_NOT_FOUND,
    JT_E_PASSWORD_WRONG,
    JT_E_TOKEN_NOT_FOUND,
    JT_E_PAYMENT_NOT_FOUND,
    JT_E_PAYMENT_AMOUNT_MISMATCH,
    JT_E_PAYMENT_NOT_PENDING,
    /* 5xx */
    JT_E_INTERNAL,
    JT_E_DATABASE_UNAVAILABLE,
    JT_E_LOCK_TIMEOUT,
    JT_E_CONFLICT_RETRY_EXHAUSTED,
    JT_E_PAYMENT_GATEWAY_REFUSED,
    JT_E_PAYMENT_GATEWAY_UNAVAILABLE,
    JT_E__COUNT
} jt_err;

typedef struct {
    int         status;
    const char *code;          /* stable upper-snake identifier */
    const char *title;         /* short, human, constant per code */
    int         retry_after;   /* seconds for Retry-After, 0 = none */
} jt_err_info;

const jt_err_info *jt_err_lookup(jt_err e);
const char *jt_http_reason(int status);

#endif
