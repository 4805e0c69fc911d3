#include "http/request.h"
#include "tap.h"

#include <sodium.h>

int
main(void)
{
    jt_arena a;
    jt_req r;
    uint64_t u;
    int64_t v;
    jt_buf out;
    const char *id, *sv;

    if (sodium_init() < 0) {
        return 1;
    }
    jt_arena_init(&a, 4096);
    memset(&r, 0, sizeof(r));
    r.arena = &a;
    r.query = "page=2&size=&q=%EA%B9%80%EC%B9%98+x&bad=%0&nul=%00&neg=-3&big=99999999999999999999";

    is_str(jt_req_query(&r, "page"), "2", "query value");
    is_str(jt_req_query(&r, "size"), "", "empty value");
    is_str(jt_req_query(&r, "q"), "김치 x", "percent and plus decoding");
    ok(jt_req_query(&r, "missing") == NULL, "absent parameter");
    ok(jt_req_query(&r, "bad") == NULL, "truncated escape refused");
    ok(jt_req_query(&r, "nul") == NULL, "%%00 refused");
    ok(jt_req_query(&r, "pag") == NULL, "prefix of a name does not match");

    ok(jt_req_query_int(&r, "page", 1, 1, 100, &v) == JT_OK && v == 2, "int parameter");
    ok(jt_req_query_int(&r, "absent", 20, 1, 100, &v) == JT_OK && v == 20, "default");
    ok(jt_req_query_int(&r, "size", 20, 1, 100, &v) == JT_E_INVALID_REQUEST, "empty is 400");
    ok(jt_req_query_int(&r, "neg", 1, 1, 100, &v) == JT_E_INVALID_REQUEST, "below range is 400");
    ok(jt_req_query_int(&r, "neg", 1, -10, 100, &v) == JT_OK && v == -3, "negative when allowed");
    ok(jt_req_query_int(&r, "big", 1, 1, 100, &v) == JT_E_INVALID_REQUEST, "overflow is 400");
    ok(jt_req_query_int(&r, "q", 1, 1, 100, &v) == JT_E_INVALID_REQUEST, "text is 400");
    ok(jt_req_query_int(&r, "nul", 7, 1, 100, &v) == JT_E_INVALID_REQUEST,
       "int: %%00 is 400, not the default");
    ok(jt_req_query_str(&r, "nul", &sv) == JT_E_INVALID_REQUEST && strstr(r.problem_detail, "nul"),
       "str: %%00 is 400 naming the parameter");
    ok(jt_req_query_str(&r, "bad", &sv) == JT_E_INVALID_REQUEST, "str: truncated escape is 400");
    ok(jt_req_query_str(&r, "missing", &sv) == JT_OK && sv == NULL, "str: absent is NULL");
    ok(jt_req_query_str(&r, "q", &sv) == JT_OK && !strcmp(sv, "김치 x"), "str: decoded value");

    ok(jt_parse_u64("18446744073709551615", &u) == 0 && u == UINT64_MAX, "u64 max");
    ok(jt_parse_u64("18446744073709551616", &u) != 0, "u64 overflow");
    ok(jt_parse_u64("", &u) != 0 && jt_parse_u64("1 ", &u) != 0, "empty and trailing space");

    is_str(jt_req_sanitize_id(&a, "abc-123"), "abc-123", "sane request id kept");
    id = jt_req_sanitize_id(&a, "bad id\r\nX-Evil: 1");
    ok(strlen(id) == 32 && strchr(id, ' ') == NULL, "header injection replaced by a fresh id");
    id = jt_req_sanitize_id(&a, NULL);
    ok(strlen(id) == 32, "missing id generated");

    memset(&r, 0, sizeof(r));
    r.arena = &a;
    r.request_id = "rid1";
    r.method = JT_GET;
    jt_fail(&r, JT_E_DATABASE_UNAVAILABLE, "db %s", "down");
    jt_reply_problem(&r, JT_E_DATABASE_UNAVAILABLE);
    is_int(r.status, 503, "problem status from the table");
    jt_reply_serialize(&r, &out);
    ok(strstr(jt_buf_cstr(&out), "Status: 503 Service Unavailable\r\n") != NULL, "status line");
    ok(strstr(jt_buf_cstr(&out), "Content-Type: application/problem+json\r\n") != NULL, "problem type");
    ok(strstr(jt_buf_cstr(&out), "Retry-After: 2\r\n") != NULL, "Retry-After on 503");
    ok(strstr(jt_buf_cstr(&out), "\"code\":\"DATABASE_UNAVAILABLE\"") != NULL, "stable code");
    ok(strstr(jt_buf_cstr(&out), "\"detail\":\"db down\"") != NULL, "detail");
    ok(strstr(jt_buf_cstr(&out), "X-Request-Id: rid1\r\n") != NULL, "request id header");

    {
        int e, all = 1;
        for (e = 1; e < JT_E__COUNT; e++) {
            const jt_err_info *i = jt_err_lookup((jt_err) e);
            if (i->status < 400 || i->code == NULL || i->title == NULL) {
                all = 0;
            }
        }
        ok(all, "every error code has a 4xx/5xx status, a code and a title");
    }
    jt_arena_destroy(&a);
    return done_testing();
}
