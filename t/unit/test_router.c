#include "http/router.h"
#include "tap.h"

static jt_err h_list(jt_req *r) { (void) r; return JT_OK; }
static jt_err h_get(jt_req *r) { (void) r; return JT_OK; }
static jt_err h_popular(jt_req *r) { (void) r; return JT_OK; }
static jt_err h_del(jt_req *r) { (void) r; return JT_OK; }
static jt_err h_test(jt_req *r) { (void) r; return JT_OK; }
static jt_err h_key(jt_req *r) { (void) r; return JT_OK; }

static const jt_route routes[] = {
    { JT_GET, "/api/v1/products", h_list, 0 },
    { JT_GET, "/api/v1/products/{id}", h_get, 0 },
    { JT_DELETE, "/api/v1/products/{id}", h_del, 0 },
    { JT_GET, "/api/v1/products/popular", h_popular, 0 },
    { JT_GET, "/api/v1/receipts/{rid:str}", h_key, 0 },
    { JT_GET, "/test/sleep", h_test, JT_ROUTE_TEST },
};
#define N (sizeof(routes) / sizeof(routes[0]))

static jt_arena arena;

static const jt_route *
find(int method, const char *path, int with_test, jt_err *e, jt_req *r)
{
    memset(r, 0, sizeof(*r));
    r->arena = &arena;
    r->method = method;
    r->path = path;
    return jt_route_find(routes, N, with_test, r, e);
}

int
main(void)
{
    jt_req r;
    jt_err e;
    const jt_route *rt;

    jt_arena_init(&arena, 4096);

    rt = find(JT_GET, "/api/v1/products", 0, &e, &r);
    ok(rt && rt->handler == h_list && e == JT_OK, "literal route");
    rt = find(JT_GET, "/api/v1/products/42", 0, &e, &r);
    ok(rt && rt->handler == h_get, "param route");
    is_int(jt_req_param_id(&r, "id"), 42, "typed id parsed");
    is_str(r.route, "/api/v1/products/{id}", "route template recorded");
    rt = find(JT_GET, "/api/v1/products/popular", 0, &e, &r);
    ok(rt && rt->handler == h_popular, "literal beats param");
    rt = find(JT_DELETE, "/api/v1/products/7", 0, &e, &r);
    ok(rt && rt->handler == h_del, "method picks the route");

    rt = find(JT_POST, "/api/v1/products/7", 0, &e, &r);
    ok(rt == NULL && e == JT_E_METHOD_NOT_ALLOWED, "wrong method is 405");
    ok(r.resp_headers.data && strstr(jt_buf_cstr(&r.resp_headers), "Allow: GET, HEAD, DELETE") != NULL,
       "405 lists Allow: %s", r.resp_headers.data ? jt_buf_cstr(&r.resp_headers) : "");
    rt = find(JT_POST, "/api/v1/products/popular", 0, &e, &r);
    ok(rt == NULL && e == JT_E_METHOD_NOT_ALLOWED
       && strstr(jt_buf_cstr(&r.resp_headers), "DELETE") == NULL,
       "405 on a literal route lists only its own methods");

    {
        static const char *bad[] = { "abc", "0", "-1", "1.5", "9223372036854775808",
                                     "18446744073709551616", "99999999999999999999999", "1abc", "+1",
                                     "%31", " 1" };
        size_t i;
        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            char path[128];
            snprintf(path, sizeof(path), "/api/v1/products/%s", bad[i]);
            rt = find(JT_GET, path, 0, &e, &r);
            ok(rt == NULL && e == JT_E_INVALID_REQUEST, "id '%s' is a 400", bad[i]);
        }
    }
    rt = find(JT_GET, "/api/v1/products/9223372036854775807", 0, &e, &r);
    ok(rt != NULL && jt_req_param_id(&r, "id") == INT64_MAX, "largest id accepted");

    rt = find(JT_GET, "/api/v1/nope", 0, &e, &r);
    ok(rt == NULL && e == JT_E_NOT_FOUND, "unknown path is 404");
    rt = find(JT_GET, "/api/v1/products/", 0, &e, &r);
    ok(rt == NULL && e == JT_E_NOT_FOUND, "trailing slash is 404");
    rt = find(JT_GET, "/api/v1/products/1/x", 0, &e, &r);
    ok(rt == NULL && e == JT_E_NOT_FOUND, "extra segment is 404");
    rt = find(JT_GET, "", 0, &e, &r);
    ok(rt == NULL && e == JT_E_NOT_FOUND, "empty path is 404");

    rt = find(JT_GET, "/api/v1/receipts/ab-12", 0, &e, &r);
    ok(rt && rt->handler == h_key, "str param route");
    is_str(jt_req_param(&r, "rid"), "ab-12", "str param value");

    rt = find(JT_GET, "/test/sleep", 0, &e, &r);
    ok(rt == NULL && e == JT_E_NOT_FOUND, "test routes are absent by default");
    rt = find(JT_GET, "/test/sleep", 1, &e, &r);
    ok(rt && rt->handler == h_test, "test routes when enabled");

    rt = find(0, "/api/v1/products", 0, &e, &r);
    ok(rt == NULL && e == JT_E_METHOD_NOT_ALLOWED, "unknown method is 405");

    jt_arena_destroy(&arena);
    return done_testing();
}
