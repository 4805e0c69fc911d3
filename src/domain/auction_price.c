#include "domain/auction_price.h"

int64_t
jt_auction_steps(const jt_auction_rule *a)
{
    if (a->variation_s <= 0 || a->ends_ms <= a->starts_ms) {
        return 1;
    }
    return (a->ends_ms - a->starts_ms) / (a->variation_s * 1000);
}

int64_t
jt_auction_step_at(const jt_auction_rule *a, int64_t now_ms)
{
    int64_t steps = jt_auction_steps(a), k;

    if (now_ms <= a->starts_ms || a->variation_s <= 0) {
        return 0;
    }
    k = (now_ms - a->starts_ms) / (a->variation_s * 1000);
    return k >= steps ? steps - 1 : k;
}

int64_t
jt_auction_price_of_step(const jt_auction_rule *a, int64_t k)
{
    int64_t p = a->origin, i;

    if (a->policy == JT_POLICY_CONSTANT) {
        return a->origin - k * a->width;
    }
    for (i = 0; i < k; i++) {
        /* p <= 1e9 and 10000 - rate_bp <= 9999: no overflow */
        p = p * (10000 - a->rate_bp) / 10000;
    }
    return p;
}

int64_t
jt_auction_price_at(const jt_auction_rule *a, int64_t now_ms)
{
    return jt_auction_price_of_step(a, jt_auction_step_at(a, now_ms));
}

int
jt_auction_status(const jt_auction_rule *a, int64_t stock, int64_t now_ms)
{
    if (now_ms < a->starts_ms) {
        return JT_AUCTION_WAITING;
    }
    if (now_ms >= a->ends_ms) {
        return JT_AUCTION_FINISHED;
    }
    return stock > 0 ? JT_AUCTION_RUNNING : JT_AUCTION_SOLD_OUT;
}

const char *
jt_auction_status_name(int status)
{
    switch (status) {
    case JT_AUCTION_WAITING:  return "WAITING";
    case JT_AUCTION_RUNNING:  return "RUNNING";
    case JT_AUCTION_SOLD_OUT: return "SOLD_OUT";
    default:                  return "FINISHED";
    }
}
