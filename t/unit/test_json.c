#include "http/json.h"
#include "tap.h"

static jt_arena arena;

/* A strict-JSON case: the body, and whether it must be accepted. */
static const struct {
    const char *body;
    int         good;
    const char *name;
} strict[] = {
    { "{\"a\":\"\xea\xb9\x80\xf0\x9f\x98\x80\"}", 1, "3- and 4-byte UTF-8" },
    { "{\"a\":\"\\ud83d\\ude00 \\u00e9\\u0000\"}", 1, "escaped surrogate pair, \\u0000" },
    { " {\"a\" : [ 1 , -0.5e+3 , true , null , {} ] } \n", 1, "whitespace everywhere" },
    { "{\"a\":{\"b\":1},\"b\":{\"b\":1}}", 1, "one key name in two objects" },
    { "{'a':1}", 0, "single-quoted key" },
    { "{\"a\":NaN}", 0, "NaN" },
    { "{\"a\":-Infinity}", 0, "-Infinity" },
    { "{\"a\":+1}", 0, "leading plus" },
    { "{\"a\":.5}", 0, "bare fraction" },
    { "{\"a\":1.}", 0, "empty fraction" },
    { "{\"a\":01}", 0, "leading zero" },
    { "{\"a\":1e}", 0, "empty exponent" },
    { "{\"a\":tru}", 0, "truncated literal" },
    { "{\"a\":\"\t\"}", 0, "raw control character in a string" },
    { "{\"a\":\"\\x41\"}", 0, "unknown escape" },
    { "{\"a\":\"\\u12G4\"}", 0, "bad \\u escape" },
    { "{\"a\":\"\xc0\xaf\"}", 0, "overlong 2-byte UTF-8" },
    { "{\"a\":\"\xe0\x80\xaf\"}", 0, "overlong 3-byte UTF-8" },
    { "{\"a\":\"\xed\xa0\x80\"}", 0, "UTF-8-encoded surrogate" },
    { "{\"a\":\"\xf4\x90\x80\x80\"}", 0, "UTF-8 past U+10FFFF" },
    { "{\"a\":\"\xea\xb0\"}", 0, "truncated UTF-8" },
    { "{\"a\":\"\x80\"}", 0, "lone continuation byte" },
    { "{\"a\":\"\\ud800\"}", 0, "lone high surrogate escape" },
    { "{\"a\":\"\\udc00\"}", 0, "lone low surrogate escape" },
    { "{\"a\":\"\\ud800\\u0041\"}", 0, "high surrogate escape then not a low one" },
    { "{\"a\":1,\"a\":2}", 0, "duplicate key" },
    { "{\"a\":1,\"\\u0061\":2}", 0, "duplicate key spelled with an escape" },
    { "{\"x\":[{\"k\":[],\"k\":1}]}", 0, "duplicate key in a nested object" },
    { "{\"a\":{\"x\":1},\"a\":{\"y\":2,\"z\":3}}", 0, "duplicate key, values of different size" },
    { "{\"a\":1,}", 0, "trailing comma" },
    { "[1,,2]", 0, "empty array element" },
    { "{\"a\" 1}", 0, "missing colon" },
    { "{\"a\":1}{}", 0, "two values" },
    { "{\"a\":/*c*/1}", 0, "comment" },
};

static jt_err
parse(jt_req *r, const char *body, json_object **o)
{
    memset(r, 0, sizeof(*r));
    r->arena = &arena;
    r->body = jt_pstrdup(&arena, body);
    r->body_len = strlen(body);
    r->content_type = "application/json";
    return jt_json_body(r, o);
}

int
main(void)
{
    jt_req r;
    json_object *o;
    int64_t v;
    const char *s;
    int present;
    char deep[200];
    size_t members;
    int i;

    jt_arena_init(&arena, 4096);

    ok(parse(&r, "{\"amount\":1000,\"name\":\"김치\",\"f\":1.5,\"s\":\"12\",\"n\":null,\"big\":"
                 "99999999999999999999,\"neg\":-5}", &o) == JT_OK, "object parses");
    ok(jt_json_int(&r, o, "amount", JT_REQUIRED, 1000, 1000000, &v, NULL) == JT_OK && v == 1000, "int");
    ok(jt_json_int(&r, o, "f", JT_REQUIRED, 0, 10, &v, NULL) == JT_E_INVALID_REQUEST, "float refused");
    ok(jt_json_int(&r, o, "s", JT_REQUIRED, 0, 100, &v, NULL) == JT_E_INVALID_REQUEST, "string refused");
    ok(jt_json_int(&r, o, "n", JT_REQUIRED, 0, 100, &v, NULL) == JT_E_INVALID_REQUEST, "null is missing");
    ok(jt_json_int(&r, o, "big", JT_REQUIRED, 0, INT64_MAX - 1, &v, NULL) == JT_E_INVALID_REQUEST,
       "beyond int64 refused");
    ok(jt_json_int(&r, o, "neg", JT_REQUIRED, 0, 100, &v, NULL) == JT_E_INVALID_REQUEST, "range");
    ok(jt_json_int(&r, o, "nope", JT_OPTIONAL, 0, 100, &v, &present) == JT_OK && !present, "optional");
    ok(jt_json_str(&r, o, "name", JT_REQUIRED, 1, 2, &s) == JT_OK && !strcmp(s, "김치"),
       "string length counts characters");
    ok(jt_json_str(&r, o, "name", JT_REQUIRED, 3, 10, &s) == JT_E_INVALID_REQUEST, "too short");

    ok(parse(&r, "{\"a\":1", &o) == JT_E_INVALID_JSON, "truncated");
    ok(parse(&r, "{\"a\":1} x", &o) == JT_E_INVALID_JSON, "trailing garbage");
    ok(parse(&r, "[1,2]", &o) == JT_E_INVALID_REQUEST, "array is not an object");
    ok(parse(&r, "{\"a\":\"\xff\xfe\"}", &o) == JT_E_INVALID_JSON, "invalid UTF-8");
    ok(parse(&r, "{\"a\":'x'}", &o) == JT_E_INVALID_JSON, "single-quoted value (strict)");
    ok(parse(&r, "", &o) == JT_E_INVALID_JSON, "empty body");
    for (i = 0; i < 100; i++) {
        deep[i] = '[';
    }
    deep[100] = '\0';
    ok(parse(&r, deep, &o) == JT_E_INVALID_JSON && strstr(r.problem_detail, "deep"), "depth limit");
    memset(deep, 0, sizeof(deep));
    for (i = 0; i < JT_JSON_MAX_DEPTH; i++) {
        deep[i] = '[';
        deep[2 * JT_JSON_MAX_DEPTH - 1 - i] = ']';
    }
    ok(jt_json_check(deep, strlen(deep), &members) == JT_JSON_FINE, "exactly the depth limit parses");

    for (i = 0; i < (int) (sizeof(strict) / sizeof(strict[0])); i++) {
        jt_err e = parse(&r, strict[i].body, &o);
        if (strict[i].good) {
            ok(e == JT_OK, "strict: %s is accepted", strict[i].name);
        } else {
            ok(e == JT_E_INVALID_JSON || e == JT_E_INVALID_REQUEST, "strict: %s is refused (%s)",
               strict[i].name, e == JT_OK ? "accepted" : r.problem_detail);
        }
    }
    ok(parse(&r, "{\"a\":1,\"a\":1}", &o) == JT_E_INVALID_JSON && strstr(r.problem_detail, "twice"),
       "a duplicate key is named as such");
    ok(parse(&r, "{\"a\":\"\xc0\xaf\"}", &o) == JT_E_INVALID_JSON && strstr(r.problem_detail, "UTF-8"),
       "bad UTF-8 is named as such");

    /* Content-Type */
    ok(jt_json_media_type("application/json"), "application/json");
    ok(jt_json_media_type("Application/JSON; charset=UTF-8"), "case and charset=UTF-8");
    ok(jt_json_media_type("application/json;charset=\"utf-8\""), "quoted charset");
    ok(jt_json_media_type("application/problem+json"), "+json suffix");
    ok(!jt_json_media_type(NULL), "no Content-Type");
    ok(!jt_json_media_type("text/plain"), "text/plain");
    ok(!jt_json_media_type("application/jsonx"), "application/jsonx");
    ok(!jt_json_media_type("application/x-www-form-urlencoded"), "form");
    ok(!jt_json_media_type("application/json; charset=latin1"), "another charset");
    ok(!jt_json_media_type("application/+json"), "a bare +json");
    memset(&r, 0, sizeof(r));
    r.arena = &arena;
    r.body = jt_pstrdup(&arena, "{\"a\":1}");
    r.body_len = 7;
    r.content_type = "text/plain";
    ok(jt_json_body(&r, &o) == JT_E_UNSUPPORTED_MEDIA_TYPE, "a text/plain body is 415");
    r.content_type = NULL;
    ok(jt_json_body(&r, &o) == JT_E_UNSUPPORTED_MEDIA_TYPE, "a body without Content-Type is 415");

    jt_arena_reset(&arena);
    jt_arena_destroy(&arena);
    return done_testing();
}
