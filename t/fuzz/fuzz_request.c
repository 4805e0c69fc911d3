/* Request parsing: "METHOD\nURI\nBODY" → routing (typed path params, 404,
 * 405), query decoding and integer parameters, JSON body parsing and its
 * canonical form. */
#include "fuzz_common.h"

#include "http/json.h"
#include "http/router.h"
#include "routes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nl1, *nl2, *end = (const char *) data + size, *s = (const char *) data;
    static const char *names[] = { "page", "size", "q", "status", "cursor", "limit", "role", "json", "ms" };
    jt_req r;
    jt_err e;
    json_object *o;
    size_t i;
    int64_t v;

    fuzz_init();
    nl1 = memchr(s, '\n', size);
    nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t) (end - nl1 - 1)) : NULL;
    if (nl2 == NULL) {
        return 0;
    }
    fuzz_req(&r, (const uint8_t *) nl2 + 1, (size_t) (end - nl2 - 1));
    r.method_name = jt_pstrndup(&fuzz_arena, s, (size_t) (nl1 - s));
    r.method = jt_method_from_name(r.method_name);
    {
        char *uri = jt_pstrndup(&fuzz_arena, nl1 + 1, (size_t) (nl2 - nl1 - 1));
        char *q = strchr(uri, '?');
        if (q) {
            *q = '\0';
            r.query = q + 1;
        }
        r.path = uri;
    }
    (void) jt_route_find(jt_routes, jt_nroutes, 1, &r, &e);
    fuzz_check(e);
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        (void) jt_req_query(&r, names[i]);
        fuzz_check(jt_req_query_int(&r, names[i], 1, -1000, 1000, &v));
    }
    e = jt_json_body(&r, &o);
    fuzz_check(e);
    if (e == JT_OK) {
        jt_buf b;
        jt_buf_init(&b, &fuzz_arena, 64);
        jt_json_canonical(&b, o);
    }
    jt_reply_problem(&r, JT_E_INVALID_REQUEST);
    jt_arena_reset(&fuzz_arena);
    return 0;
}
