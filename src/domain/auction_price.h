/* Descending prices, as pure functions of the auction's rule and a clock
 * reading (unit-tested in t/unit/test_auction_price.c).
 *
 *   k     = floor((now - startsAt) / variationSeconds), clamped to 0..steps-1
 *   steps = (endsAt - startsAt) / variationSeconds
 *   CONSTANT    price = origin - k * width
 *   PERCENTAGE  price = origin, then k times p = floor(p * (10000 - rate_bp) / 10000)
 *               where rate_bp is the rate in hundredths of a percent
 *               (10.0 % = 1000): exact integer arithmetic, rounding down at
 *               every step. */
#ifndef JT_AUCTION_PRICE_H
#define JT_AUCTION_PRICE_H

#include <stdint.h>

enum { JT_POLICY_CONSTANT = 1, JT_POLICY_PERCENTAGE = 2 };
enum { JT_AUCTION_WAITING = 1, JT_AUCTION_RUNNING, JT_AUCTION_SOLD_OUT, JT_AUCTION_FINISHED };

typedef struct {
    int     policy;
    int64_t origin;
    int64_t width;          /* CONSTANT */
    int64_t rate_bp;        /* PERCENTAGE */
    int64_t variation_s;
    int64_t starts_ms;
    int64_t ends_ms;
} jt_auction_rule;

int64_t     jt_auction_steps(const jt_auction_rule *a);
int64_t     jt_auction_step_at(const jt_auction_rule *a, int64_t now_ms);
int64_t     jt_auction_price_of_step(const jt_auction_rule *a, int64_t k);
int64_t     jt_auction_price_at(const jt_auction_rule *a, int64_t now_ms);
int         jt_auction_status(const jt_auction_rule *a, int64_t stock, int64_t now_ms);
const char *jt_auction_status_name(int status);

#endif
