#include "http/json.h"
#include "tap.h"

static jt_arena arena;

static jt_err
parse(jt_req *r, const char *body, json_object **o)
{
    memset(r, 0, sizeof(*r));
    r->arena = &arena;
    r->body = jt_pstrdup(&arena, body);
    r->body_len = strlen(body);
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

    jt_arena_reset(&arena);
    jt_arena_destroy(&arena);
    return done_testing();
}
