/* Parsing PortOne (iamport) REST V1 answers: what each one means for the
 * caller (ok / refused / not found / unavailable) and for the breaker
 * (a refusal is an answer, not a failure). */
#include <string.h>

#include "store/pg.h"
#include "tap.h"

#define BODY(s) s, strlen(s)

static const char PAID[] =
    "{\"code\":0,\"message\":null,\"response\":{\"imp_uid\":\"imp_123456789012\",\"merchant_uid\":\"jt-1-abc\","
    "\"pay_method\":\"card\",\"amount\":15000,\"cancel_amount\":0,\"currency\":\"KRW\",\"status\":\"paid\","
    "\"card_name\":\"신한카드\",\"paid_at\":1764547200,\"cancelled_at\":0,\"cancel_history\":[]}}";

int
main(void)
{
    jt_pg_payment p;
    jt_pg_result r;
    jt_call_outcome o;
    char token[128], mu[JT_PG_UID_MAX + 1];
    int64_t exp, now, amount;

    /* --- GET /payments/{imp_uid} */
    memset(&r, 0, sizeof(r));
    o = jt_pg_parse_payment(200, BODY(PAID), &p, &r);
    is_int(o, JT_CALL_OK, "paid: a good call");
    is_int(r.rc, JT_PG_OK, "paid: ok");
    is_str(p.imp_uid, "imp_123456789012", "imp_uid");
    is_str(p.merchant_uid, "jt-1-abc", "merchant_uid");
    is_int(p.amount, 15000, "amount");
    is_int(p.status, JT_PG_PAID, "status paid");
    is_str(p.currency, "KRW", "currency");
    is_str(p.card_name, "신한카드", "card_name (UTF-8)");
    is_int(p.paid_at, 1764547200, "paid_at");

    o = jt_pg_parse_payment(200,
                            BODY("{\"code\":0,\"message\":\"\",\"response\":{\"imp_uid\":\"imp_1\",\"merchant_uid\":\"m\","
                                 "\"amount\":15000.0,\"cancel_amount\":15000,\"status\":\"cancelled\",\"card_name\":null,"
                                 "\"cancelled_at\":1764547300}}"),
                            &p, &r);
    ok(o == JT_CALL_OK && r.rc == JT_PG_OK, "cancelled: ok");
    is_int(p.amount, 15000, "an amount sent as 15000.0 is 15000");
    is_int(p.cancel_amount, 15000, "cancel_amount");
    is_int(p.status, JT_PG_CANCELLED, "status cancelled");
    is_str(p.card_name, "", "card_name null is empty");

    o = jt_pg_parse_payment(200, BODY("{\"code\":0,\"response\":{\"imp_uid\":\"imp_1\",\"merchant_uid\":\"m\","
                                      "\"amount\":100,\"status\":\"ready\"}}"), &p, &r);
    ok(o == JT_CALL_OK && p.status == JT_PG_READY, "ready, without optional members: ok");
    o = jt_pg_parse_payment(200, BODY("{\"code\":0,\"response\":{\"imp_uid\":\"imp_1\",\"merchant_uid\":\"m\","
                                      "\"amount\":100,\"status\":\"weird\"}}"), &p, &r);
    ok(o == JT_CALL_OK && p.status == JT_PG_STATUS_UNKNOWN, "an unknown status is kept as unknown (never paid)");

    /* not found: 404 with PortOne's envelope */
    o = jt_pg_parse_payment(404, BODY("{\"code\":-1,\"message\":\"존재하지 않는 결제정보입니다.\",\"response\":null}"), &p, &r);
    is_int(o, JT_CALL_REFUSED, "404: an answer, not a failure");
    is_int(r.rc, JT_PG_NOT_FOUND, "404: not found");
    is_int(r.code, -1, "404: code -1");
    is_str(r.message, "존재하지 않는 결제정보입니다.", "404: the gateway's message");
    o = jt_pg_parse_payment(404, BODY("<html>not here</html>"), &p, &r);
    ok(o == JT_CALL_REFUSED && r.rc == JT_PG_NOT_FOUND, "404 without JSON: still not found");

    /* refusals */
    o = jt_pg_parse_payment(200, BODY("{\"code\":1,\"message\":\"이미 전액취소된 주문입니다.\",\"response\":null}"), &p, &r);
    ok(o == JT_CALL_REFUSED && r.rc == JT_PG_REFUSED && r.code == 1, "code 1 on HTTP 200: refused");
    is_str(r.message, "이미 전액취소된 주문입니다.", "refusal message");
    o = jt_pg_parse_payment(401, BODY("{\"code\":-1,\"message\":\"Unauthorized\",\"response\":null}"), &p, &r);
    ok(o == JT_CALL_REFUSED && r.rc == JT_PG_REFUSED && r.http_status == 401, "401: refused, not a failure");
    o = jt_pg_parse_payment(400, BODY(""), &p, &r);
    ok(o == JT_CALL_REFUSED && r.rc == JT_PG_REFUSED, "400 with no body: refused");

    /* failures: the gateway is not answering properly */
    o = jt_pg_parse_payment(500, BODY("{\"code\":-1,\"message\":\"Internal Server Error\"}"), &p, &r);
    ok(o == JT_CALL_FAILED && r.rc == JT_PG_UNAVAILABLE, "500: a failure, unavailable");
    o = jt_pg_parse_payment(503, BODY(""), &p, &r);
    ok(o == JT_CALL_FAILED && r.rc == JT_PG_UNAVAILABLE, "503: a failure");
    o = jt_pg_parse_payment(200, BODY("<html>maintenance</html>"), &p, &r);
    ok(o == JT_CALL_FAILED && r.rc == JT_PG_UNAVAILABLE, "200 with HTML: a failure (not PortOne's answer)");
    o = jt_pg_parse_payment(200, BODY("{\"code\":0,\"response\":{\"imp_uid\":\"imp_1\""), &p, &r);
    ok(o == JT_CALL_FAILED, "truncated JSON: a failure");
    o = jt_pg_parse_payment(200, BODY("{\"code\":\"0\",\"response\":{}}"), &p, &r);
    ok(o == JT_CALL_FAILED, "code as a string: a failure");
    o = jt_pg_parse_payment(200, BODY("{\"code\":0,\"response\":null}"), &p, &r);
    ok(o == JT_CALL_FAILED && r.rc == JT_PG_UNAVAILABLE, "code 0 with no response: a failure");
    o = jt_pg_parse_payment(200, BODY("{\"code\":0,\"response\":{\"imp_uid\":\"imp_1\",\"merchant_uid\":\"m\","
                                      "\"amount\":\"15000\",\"status\":\"paid\"}}"), &p, &r);
    ok(o == JT_CALL_FAILED && p.amount == 0, "amount as a string: malformed, nothing half-filled");
    o = jt_pg_parse_payment(200, BODY("{\"code\":0,\"response\":{\"imp_uid\":\"imp_1\",\"merchant_uid\":\"m\","
                                      "\"amount\":150.5,\"status\":\"paid\"}}"), &p, &r);
    ok(o == JT_CALL_FAILED, "a fractional amount: malformed");
    o = jt_pg_parse_payment(200, BODY("{\"code\":0,\"response\":{\"imp_uid\":\"imp_1\",\"merchant_uid\":\"m\","
                                      "\"amount\":-5,\"status\":\"paid\"}}"), &p, &r);
    ok(o == JT_CALL_FAILED, "a negative amount: malformed");
    o = jt_pg_parse_payment(200, BODY("{\"code\":0,\"response\":{\"merchant_uid\":\"m\",\"amount\":5,\"status\":\"paid\"}}"),
                            &p, &r);
    ok(o == JT_CALL_FAILED, "no imp_uid: malformed");
    {
        char deep[200];
        memset(deep, '[', 40);
        strcpy(deep + 40, "0");
        memset(deep + 41, ']', 40);
        deep[81] = '\0';
        o = jt_pg_parse_payment(200, deep, strlen(deep), &p, &r);
        ok(o == JT_CALL_FAILED, "nesting deeper than 16: a failure");
    }

    /* a long message is cut at a character boundary */
    {
        char body[1200], want[256];
        size_t i, n = 0;
        n += (size_t) snprintf(body, sizeof(body), "{\"code\":1,\"message\":\"");
        for (i = 0; i < 100; i++) {
            memcpy(body + n, "가", 3);     /* 3 bytes each: 300 bytes */
            n += 3;
        }
        strcpy(body + n, "\",\"response\":null}");
        jt_pg_parse_payment(200, body, strlen(body), &p, &r);
        is_int(strlen(r.message), 255, "a 300-byte message is cut to 255 bytes (85 whole characters)");
        memset(want, 0, sizeof(want));
        for (i = 0; i < 85; i++) {
            memcpy(want + 3 * i, "가", 3);
        }
        is_str(r.message, want, "and no character is cut in half");
    }

    /* --- POST /users/getToken */
    o = jt_pg_parse_token(200,
                          BODY("{\"code\":0,\"message\":null,\"response\":{\"access_token\":\"a9ace025c90c0da2161075da6ddd3492a2fca776\","
                               "\"now\":1512446940,\"expired_at\":1512448740}}"),
                          token, sizeof(token), &exp, &now, &r);
    ok(o == JT_CALL_OK && r.rc == JT_PG_OK, "token: ok");
    is_str(token, "a9ace025c90c0da2161075da6ddd3492a2fca776", "access_token");
    is_int(exp - now, 1800, "expired_at - now: 30 minutes");
    o = jt_pg_parse_token(401, BODY("{\"code\":-1,\"message\":\"imp_key, imp_secret 파라미터가 일치하지 않습니다.\",\"response\":null}"),
                          token, sizeof(token), &exp, &now, &r);
    ok(o == JT_CALL_REFUSED && r.rc == JT_PG_REFUSED && token[0] == '\0', "wrong key: refused, no token");
    o = jt_pg_parse_token(200, BODY("{\"code\":0,\"response\":{\"access_token\":\"\",\"expired_at\":1}}"), token,
                          sizeof(token), &exp, &now, &r);
    ok(o == JT_CALL_FAILED && r.rc == JT_PG_UNAVAILABLE, "an empty token: malformed");

    /* --- POST /payments/prepare, GET /payments/prepare/{merchant_uid} */
    o = jt_pg_parse_prepare(200, BODY("{\"code\":0,\"message\":null,\"response\":{\"merchant_uid\":\"jt-7\",\"amount\":30000}}"),
                            mu, &amount, &r);
    ok(o == JT_CALL_OK && r.rc == JT_PG_OK, "prepare: ok");
    is_str(mu, "jt-7", "prepare: merchant_uid");
    is_int(amount, 30000, "prepare: amount");
    o = jt_pg_parse_prepare(200, BODY("{\"code\":1,\"message\":\"이미 등록된 merchant_uid입니다.\",\"response\":null}"), mu,
                            &amount, &r);
    ok(o == JT_CALL_REFUSED && r.rc == JT_PG_REFUSED && amount == 0, "prepare again: refused with the reason");

    /* --- webhook source addresses */
    {
        jt_conf c;
        jt_conf_defaults(&c);
        ok(jt_pg_webhook_allowed(&c, "127.0.0.1"), "the default allows 127.0.0.1 (the local simulator)");
        ok(!jt_pg_webhook_allowed(&c, "127.0.0.2"), "and nothing else");
        strcpy(c.webhook_allow, "52.78.100.19, 52.78.48.223,::1");
        ok(jt_pg_webhook_allowed(&c, "52.78.48.223"), "a listed address");
        ok(jt_pg_webhook_allowed(&c, "0:0::1"), "an IPv6 address compared as an address");
        ok(!jt_pg_webhook_allowed(&c, "52.78.100.1"), "a prefix of a listed one is not it");
        ok(!jt_pg_webhook_allowed(&c, "127.0.0.1"), "127.0.0.1 once the list no longer has it");
        ok(!jt_pg_webhook_allowed(&c, "52.78.100.19 "), "a malformed address: refused");
        ok(!jt_pg_webhook_allowed(&c, NULL), "no address: refused");
        c.webhook_allow[0] = '\0';
        ok(!jt_pg_webhook_allowed(&c, "127.0.0.1"), "an empty list allows nobody");
    }

    is_str(jt_pg_rc_name(JT_PG_NOT_FOUND), "not_found", "rc names");
    is_str(jt_pg_status_name(JT_PG_PAID), "paid", "status names");
    return done_testing();
}
