/* The canonical JSON an idempotency fingerprint is taken over: two bodies
 * that mean the same thing must hash the same, two that differ must not. */
#include "http/json.h"
#include "store/idem.h"
#include "tap.h"

#include <sodium.h>

static jt_arena arena;

/* Canonical text of s (parsed strictly), or "PARSE ERROR". */
static const char *
canon(const char *s)
{
    jt_json_fault fault;
    json_object *o = jt_json_parse(s, strlen(s), &fault);
    jt_buf b;

    if (o == NULL) {
        return "PARSE ERROR";
    }
    jt_buf_init(&b, &arena, 64);
    jt_json_canonical(&b, o);
    json_object_put(o);
    return jt_buf_cstr(&b);
}

static void
fingerprint(const char *method, const char *path, const char *body, unsigned char out[32])
{
    const char *c = canon(body);

    jt_idem_fingerprint(method, path, c, strlen(c), out);
}

int
main(void)
{
    unsigned char f1[32], f2[32];
    char hex[65];

    if (sodium_init() < 0 || jt_arena_init(&arena, 4096) != 0) {
        return 1;
    }

    /* key order: bytewise, whatever order they came in */
    is_str(canon("{\"b\":1,\"a\":2,\"B\":3,\"_\":4,\"\xc3\xa9\":5,\"aa\":6}"),
           "{\"B\":3,\"_\":4,\"a\":2,\"aa\":6,\"b\":1,\"\xc3\xa9\":5}",
           "keys sorted bytewise: upper case, '_', lower case, longer after its prefix, UTF-8 last");
    is_str(canon("{\"\\u0062\":1,\"a\":2}"), "{\"a\":2,\"b\":1}", "a key spelled with an escape sorts as its text");
    is_str(canon("{ \"a\" : 1 ,\n \"b\" : [ 1 , 2 ] }"), "{\"a\":1,\"b\":[1,2]}", "no whitespace survives");
    is_str(canon("{}"), "{}", "empty object");
    is_str(canon("[]"), "[]", "empty array");

    /* numbers: integers as integers, fractions as they were written */
    is_str(canon("{\"n\":[0,-1,-0,9223372036854775807,-9223372036854775808]}"),
           "{\"n\":[0,-1,0,9223372036854775807,-9223372036854775808]}",
           "integers in decimal, -0 as 0, the int64 limits exact");
    is_str(canon("{\"n\":[1.5,1.50,1.0,-0.0,1e3,1E+3,2.0e-5,0.1]}"),
           "{\"n\":[1.5,1.50,1.0,-0.0,1e3,1E+3,2.0e-5,0.1]}",
           "a fraction or exponent keeps its spelling (1.5 and 1.50 are two bodies)");

    /* strings: one escape per character that needs one, the rest raw */
    is_str(canon("{\"s\":\"q\\\"b\\\\s\\/\"}"), "{\"s\":\"q\\\"b\\\\s/\"}", "quote and backslash escaped, \\/ unescaped");
    is_str(canon("{\"s\":\"\\u0001\\n\\t\\u001f\\u007f\\u0000\"}"),
           "{\"s\":\"\\u0001\\n\\t\\u001f\\u007f\\u0000\"}", "control characters, DEL and NUL escaped");
    is_str(canon("{\"s\":\"\\u00e9\\ud83d\\ude00\"}"), "{\"s\":\"\xc3\xa9\xf0\x9f\x98\x80\"}",
           "\\u escapes of printable characters become UTF-8 (a surrogate pair one character)");
    is_str(canon("{\"s\":\"\\u00E9\"}"), canon("{\"s\":\"\xc3\xa9\"}"), "\\u00E9 and a raw é are the same body");

    /* nesting: sorted at every depth, arrays keep their order */
    is_str(canon("{\"x\":{\"z\":[{\"b\":null,\"a\":true}],\"y\":{}},\"w\":[],\"v\":false}"),
           "{\"v\":false,\"w\":[],\"x\":{\"y\":{},\"z\":[{\"a\":true,\"b\":null}]}}",
           "objects sorted at every depth, literals as written");
    is_str(canon("[3,{\"b\":1,\"a\":[2,1]}]"), "[3,{\"a\":[2,1],\"b\":1}]", "array order is meaning: kept");

    /* the fingerprint: method, path and canonical body */
    fingerprint("POST", "/api/v1/users/7/charge", "{\"amount\":5000,\"note\":\"x\"}", f1);
    fingerprint("POST", "/api/v1/users/7/charge", "{ \"note\" : \"x\", \"amount\" : 5000 }", f2);
    ok(memcmp(f1, f2, 32) == 0, "the same body in another order and spacing: the same fingerprint");
    sodium_bin2hex(hex, sizeof(hex), f1, 32);
    {
        /* SHA-256 of "POST /api/v1/users/7/charge\n{\"amount\":5000,\"note\":\"x\"}" */
        unsigned char want[32];
        char want_hex[65];
        const char *text = "POST /api/v1/users/7/charge\n{\"amount\":5000,\"note\":\"x\"}";
        crypto_hash_sha256(want, (const unsigned char *) text, strlen(text));
        sodium_bin2hex(want_hex, sizeof(want_hex), want, 32);
        is_str(hex, want_hex, "the fingerprint is SHA-256 of \"METHOD path\\ncanonical\"");
    }
    fingerprint("POST", "/api/v1/users/8/charge", "{\"amount\":5000,\"note\":\"x\"}", f2);
    ok(memcmp(f1, f2, 32) != 0, "another user's path: another fingerprint");
    fingerprint("PATCH", "/api/v1/users/7/charge", "{\"amount\":5000,\"note\":\"x\"}", f2);
    ok(memcmp(f1, f2, 32) != 0, "another method: another fingerprint");
    fingerprint("POST", "/api/v1/users/7/charge", "{\"amount\":5001,\"note\":\"x\"}", f2);
    ok(memcmp(f1, f2, 32) != 0, "another amount: another fingerprint");
    fingerprint("POST", "/api/v1/users/7/charge", "{\"amount\":5000,\"note\":\"x\",\"extra\":null}", f2);
    ok(memcmp(f1, f2, 32) != 0, "an extra member, even null: another fingerprint");

    jt_arena_destroy(&arena);
    return done_testing();
}
