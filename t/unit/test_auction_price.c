#include "domain/auction_price.h"
#include "tap.h"

int
main(void)
{
    /* PERCENTAGE 10 % on 10,000 over 10 steps of 60 s */
    jt_auction_rule p = { JT_POLICY_PERCENTAGE, 10000, 0, 1000, 60, 1000000, 1000000 + 600000 };
    jt_auction_rule c = { JT_POLICY_CONSTANT, 10000, 100, 0, 60, 1000000, 1000000 + 600000 };
    static const int64_t expect[10] = { 10000, 9000, 8100, 7290, 6561, 5904, 5313, 4781, 4302, 3871 };
    int k;

    is_int(jt_auction_steps(&p), 10, "10 steps");
    for (k = 0; k < 10; k++) {
        is_int(jt_auction_price_of_step(&p, k), expect[k], "PERCENTAGE step %d (floor at every step)", k);
    }
    is_int(jt_auction_price_at(&p, 1000000), 10000, "at start: origin");
    is_int(jt_auction_price_at(&p, 1000000 + 59999), 10000, "1 ms before the first drop");
    is_int(jt_auction_price_at(&p, 1000000 + 60000), 9000, "exactly at the first drop");
    is_int(jt_auction_price_at(&p, 1000000 + 599999), 3871, "last millisecond: last step");
    is_int(jt_auction_price_at(&p, 1000000 + 900000), 3871, "after the end: clamped to the last step");
    is_int(jt_auction_price_at(&p, 0), 10000, "before start: origin");

    is_int(jt_auction_price_at(&c, 1000000 + 60000 * 3), 9700, "CONSTANT step 3");
    is_int(jt_auction_price_at(&c, 1000000 + 60000 * 3 - 1), 9800, "CONSTANT just before step 3");
    is_int(jt_auction_price_of_step(&c, 9), 9100, "CONSTANT last step");

    is_int(jt_auction_status(&c, 5, 999999), JT_AUCTION_WAITING, "WAITING before start");
    is_int(jt_auction_status(&c, 5, 1000000), JT_AUCTION_RUNNING, "RUNNING at start");
    is_int(jt_auction_status(&c, 0, 1000001), JT_AUCTION_SOLD_OUT, "SOLD_OUT when stock is 0");
    is_int(jt_auction_status(&c, 5, 1600000), JT_AUCTION_FINISHED, "FINISHED at endsAt");
    is_str(jt_auction_status_name(JT_AUCTION_SOLD_OUT), "SOLD_OUT", "status names");

    {
        jt_auction_rule tiny = { JT_POLICY_PERCENTAGE, 3, 0, 5000, 60, 0, 3600000 };
        is_int(jt_auction_price_of_step(&tiny, 59), 0, "50 %% on 3 over 60 steps reaches 0 (refused at creation)");
    }
    return done_testing();
}
