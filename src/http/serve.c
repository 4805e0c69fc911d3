#include "http/serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "http/request.h"
#include "http/router.h"

static const char *
param(FCGX_Request *f, const char *name)
{
    return FCGX_GetParam(name, f->envp);
}

/* A header that decides who pays, how often, or how the body is read must
 * come once: sent twice, which one did the client mean? nginx 1.22 hands
 * both to us as separate params (FCGX_GetParam would silently pick the
 * first); later nginx joins them with ", ", which the parsers refuse. */
static const char *
param_once(FCGX_Request *f, const char *name, const char *header, const char **twice)
{
    size_t n = strlen(name);
    const char *found = NULL;
    char **e;

    for (e = f->envp; e != NULL && *e != NULL; e++) {
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') {
            if (found != NULL) {
                *twice = header;
                return found;
            }
            found = *e + n + 1;
        }
    }
    return found;
}

/* Reads exactly CONTENT_LENGTH bytes, refusing more than body_max. */
static jt_err
read_body(jt_req *r, FCGX_Request *f, const jt_conf *c)
{
    const char *cl = param(f, "CONTENT_LENGTH");
    uint64_t n = 0;
    size_t got = 0;

    if (cl == NULL || *cl == '\0') {
        return JT_OK;
    }
    if (jt_parse_u64(cl, &n) != 0) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "malformed Content-Length");
    }
    if (n > (uint64_t) c->body_max) {
        return jt_fail(r, JT_E_PAYLOAD_TOO_LARGE, "the body may be at most %lld bytes",
                       (long long) c->body_max);
    }
    r->body = jt_palloc(r->arena, (size_t) n + 1);
    if (r->body == NULL) {
        return JT_E_INTERNAL;
    }
    while (got < n) {
        int k = FCGX_GetStr(r->body + got, (int) (n - got), f->in);
        if (k <= 0) {
            return jt_fail(r, JT_E_INVALID_REQUEST, "truncated body");
        }
        got += (size_t) k;
    }
    r->body[got] = '\0';
    r->body_len = got;
    return JT_OK;
}

static void
split_uri(jt_req *r, const char *uri)
{
    const char *q;

    if (uri == NULL || *uri != '/') {
        uri = "/";
    }
    q = strchr(uri, '?');
    if (q != NULL) {
        r->path = jt_pstrndup(r->arena, uri, (size_t) (q - uri));
        r->query = q + 1;
    } else {
        r->path = uri;
        r->query = "";
    }
}

/* A request on the worker's connections and arena, nothing read yet. */
static void
req_init(jt_req *r, const jt_http_ctx *ctx)
{
    memset(r, 0, sizeof(*r));
    r->arena = ctx->arena;
    r->db = ctx->db;
    r->redis = ctx->redis;
    r->pg = ctx->pg;
    r->conf = ctx->conf;
    r->routes = ctx->routes;
    r->nroutes = ctx->nroutes;
    r->start_us = jt_clock_mono_us();
}

void
jt_http_serve(jt_http_ctx *ctx, FCGX_Request *f, char *req_id_out, size_t req_id_len)
{
    jt_req req, *r = &req;
    const jt_route *route = NULL;
    const char *twice = NULL;
    jt_err e = JT_OK;
    jt_buf out;
    int64_t us;

    JT_METRIC_INC(in_flight);

    req_init(r, ctx);

    r->request_id = jt_req_sanitize_id(r->arena, param(f, "REQUEST_ID") ? param(f, "REQUEST_ID")
                                                                         : param(f, "HTTP_X_REQUEST_ID"));
    snprintf(req_id_out, req_id_len, "%s", r->request_id);
    jt_log_set_request_id(r->request_id);

    r->method_name = param(f, "REQUEST_METHOD");
    if (r->method_name == NULL) {
        r->method_name = "-";
    }
    r->method = jt_method_from_name(r->method_name);
    split_uri(r, param(f, "REQUEST_URI"));
    r->content_type = param_once(f, "CONTENT_TYPE", "Content-Type", &twice);
    r->authorization = param_once(f, "HTTP_AUTHORIZATION", "Authorization", &twice);
    r->idempotency_key = param_once(f, "HTTP_IDEMPOTENCY_KEY", "Idempotency-Key", &twice);
    r->if_match = param_once(f, "HTTP_IF_MATCH", "If-Match", &twice);
    r->remote_addr = param(f, "REMOTE_ADDR");

    if (r->path == NULL) {
        e = JT_E_INTERNAL;
    } else if (twice != NULL) {
        e = jt_fail(r, JT_E_INVALID_REQUEST, "the %s header was sent more than once", twice);
    } else {
        /* an unknown method (0) matches no route: 405 with Allow, or 404 */
        route = jt_route_find(ctx->routes, ctx->nroutes, ctx->conf->enable_test_routes, r, &e);
        if (route != NULL) {
            e = read_body(r, f, ctx->conf);
            if (e == JT_OK) {
                e = route->handler(r);
            }
            if (e != JT_OK && r->on_error != NULL) {
                e = r->on_error(r, e, r->on_error_data);
            }
        }
    }

    if (e != JT_OK || !r->answered) {
        if (e == JT_OK) {
            e = jt_fail(r, JT_E_INTERNAL, "handler gave no answer");
        }
        if (jt_err_lookup(e)->status >= 500) {
            jt_log_error("%s %s: %s: %s", r->method_name, r->route ? r->route : r->path,
                         jt_err_lookup(e)->code, r->problem_detail ? r->problem_detail : "");
        }
        jt_reply_problem(r, e);
    }

    jt_reply_serialize(r, &out);
    if (!out.oom) {
        FCGX_PutStr(out.data, (int) out.len, f->out);
    }
    us = jt_clock_mono_us() - r->start_us;
    jt_log_access(r->method_name, r->path ? r->path : "-", r->status, us);
    jt_metrics_request(route ? (int) (route - ctx->routes) : -1, r->status, us);
    __atomic_fetch_sub(&jt_metrics_get()->in_flight, 1, __ATOMIC_RELAXED);
    jt_log_set_request_id(NULL);
    ctx->after = r->after;
    ctx->after_data = r->after_data;
}

void
jt_http_after(jt_http_ctx *ctx)
{
    void (*fn)(jt_req *, void *) = ctx->after;
    jt_req req, *r = &req;

    if (fn == NULL) {
        return;
    }
    ctx->after = NULL;
    req_init(r, ctx);
    r->request_id = "-";
    r->method_name = "-";
    fn(r, ctx->after_data);
}
