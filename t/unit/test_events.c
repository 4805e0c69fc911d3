/* What an event says and how a webhook call is signed: the Korean text of
 * every topic from its payload, amounts as won with commas, the Standard
 * Webhooks signature against the specification's own example, and the
 * order statuses the transition table knows. */
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "domain/events.h"
#include "domain/lifecycle.h"
#include "domain/webhooks.h"
#include "tap.h"

int
main(void)
{
    jt_arena a;
    char won[32], sig[96];
    int i;

    static const struct {
        const char *topic, *payload, *text;
    } cases[] = {
        { "order.paid", "{\"orderId\":17,\"total\":23000}", "주문이 완료되었습니다. 주문번호 17, 결제금액 23,000원" },
        { "order.preparing", "{\"orderId\":17}", "주문하신 상품을 준비하고 있습니다. 주문번호 17" },
        { "order.shipping", "{\"orderId\":17,\"trackingNumber\":\"CJ-1234\"}",
          "배송이 시작되었습니다. 주문번호 17, 운송장번호 CJ-1234" },
        { "order.shipping", "{\"orderId\":17}", "배송이 시작되었습니다. 주문번호 17" },
        { "order.delivered", "{\"orderId\":17}", "배송이 완료되었습니다. 주문번호 17" },
        { "order.cancelled", "{\"orderId\":17,\"refund\":1234567}",
          "주문이 취소되었습니다. 1,234,567원이 환불되었습니다. 주문번호 17" },
        { "order.return_requested", "{\"orderId\":17}", "반품 신청이 접수되었습니다. 주문번호 17" },
        { "order.returned", "{\"orderId\":17,\"refund\":9000}", "반품이 완료되었습니다. 9,000원이 환불되었습니다. 주문번호 17" },
        { "points.charged", "{\"charged\":50000,\"balance\":1050000}", "포인트 50,000원이 충전되었습니다. 잔액 1,050,000원" },
        { "bid.purchased", "{\"price\":8750,\"quantity\":2}", "경매 상품을 구매했습니다. 결제금액 17,500원" },
        { "receipt.refunded", "{\"price\":8750,\"quantity\":1}", "경매 구매가 환불되었습니다. 8,750원이 환불되었습니다." },
    };

    if (jt_arena_init(&a, 4096) != 0) {
        return 1;
    }
    for (i = 0; i < (int) (sizeof(cases) / sizeof(cases[0])); i++) {
        is_str(events_message(&a, cases[i].topic, 17, cases[i].payload), cases[i].text, "%s: its message",
               cases[i].topic);
        ok(events_known_topic(cases[i].topic), "%s is a topic", cases[i].topic);
    }
    is_str(events_message(&a, "order.paid", 42, "not json"), "주문이 완료되었습니다. 주문번호 42, 결제금액 0원",
           "a payload that is not JSON: the aggregate's id, no figures");
    is_str(events_message(&a, "order.shipping", 5, "{\"trackingNumber\":7}"), "배송이 시작되었습니다. 주문번호 5",
           "a tracking number that is not a string is left out");
    ok(events_message(&a, "order.teleported", 1, "{}") == NULL, "an unknown topic tells nobody anything");
    ok(!events_known_topic("order.teleported") && !events_known_topic(""), "and is not a topic");

    events_won(won, 0);
    is_str(won, "0", "0 won");
    events_won(won, 999);
    is_str(won, "999", "999 won");
    events_won(won, 1000);
    is_str(won, "1,000", "1,000 won");
    events_won(won, 100000000);
    is_str(won, "100,000,000", "the balance cap");
    events_won(won, -23000);
    is_str(won, "-23,000", "a negative amount keeps its sign");

    is_str(events_ids_json(&a, (const int64_t[]) { 1, 22, 333 }, 3), "[1,22,333]", "event ids as a JSON array");
    is_str(events_ids_json(&a, NULL, 0), "[]", "no ids: []");

    /* https://www.standardwebhooks.com: the specification's example */
    ok(webhooks_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                     "{\"test\": 2432232314}", 20, sig, sizeof(sig)) == 0, "signing the example");
    is_str(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "the example's signature, exactly");
    ok(webhooks_sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "m", "1", "{}", 2, sig, sizeof(sig)) != 0,
       "a secret without whsec_ does not sign");
    ok(webhooks_sign("whsec_c2hvcnQ=", "m", "1", "{}", 2, sig, sizeof(sig)) != 0, "nor does a key under 24 bytes");
    ok(webhooks_sign("whsec_!!!!", "m", "1", "{}", 2, sig, sizeof(sig)) != 0, "nor one that is not base64");
    ok(webhooks_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "m", "1", "{}", 2, sig, 10) != 0,
       "nor into a buffer too small");

    for (i = 0; i < 7; i++) {
        static const char *const st[] = { "PAID", "PREPARING", "SHIPPING", "DELIVERED", "RETURN_REQUESTED", "RETURNED",
                                           "CANCELLED" };
        ok(lifecycle_is_status(st[i]), "%s is a status", st[i]);
    }
    ok(!lifecycle_is_status("paid") && !lifecycle_is_status("SHIPPED") && !lifecycle_is_status(""),
       "paid, SHIPPED and the empty string are not");

    jt_arena_destroy(&a);
    return done_testing();
}
