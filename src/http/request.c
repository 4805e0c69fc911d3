#include "http/request.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

const char *
jt_req_sanitize_id(jt_arena *a, const char *given)
{
    unsigned char rnd[16];
    char *out;
    size_t i, n;

    if (given != NULL) {
        n = strlen(given);
        if (n >= 1 && n <= 64) {
            for (i = 0; i < n; i++) {
                unsigned char c = (unsigned char) given[i];
                if (!(isalnum(c) || c == '-' || c == '_' || c == '.' || c == ':')) {
                    break;
                }
            }
            if (i == n) {
                return given;
            }
        }
    }
    randombytes_buf(rnd, sizeof(rnd));
    out = jt_palloc(a, 33);
    if (out == NULL) {
        return "-";
    }
    sodium_bin2hex(out, 33, rnd, sizeof(rnd));
    return out;
}

int
jt_hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes %XX and '+' into a fresh arena string. A %00 or malformed escape
 * yields NULL: such a value can only be an attack or a bug. */
static char *
url_decode(jt_arena *a, const char *s, size_t n)
{
    char *out = jt_palloc(a, n + 1), *o = out;
    size_t i;

    if (out == NULL) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        if (s[i] == '%') {
            int h, l;
            if (i + 2 >= n) {
                return NULL;
            }
            h = jt_hexval((unsigned char) s[i + 1]);
            l = h < 0 ? -1 : jt_hexval((unsigned char) s[i + 2]);
            if (h < 0 || l < 0 || (h == 0 && l == 0)) {
                return NULL;
            }
            *o++ = (char) (h * 16 + l);
            i += 2;
        } else if (s[i] == '+') {
            *o++ = ' ';
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

/* Finds name=value in the query string: 1 with the raw value (not yet
 * decoded; "" for a bare name) or 0 when absent. */
static int
query_find(jt_req *r, const char *name, const char **val, size_t *vlen)
{
    const char *p = r->query, *amp, *eq;
    size_t nlen = strlen(name);

    while (p != NULL && *p) {
        amp = strchr(p, '&');
        if (amp == NULL) {
            amp = p + strlen(p);
        }
        eq = memchr(p, '=', (size_t) (amp - p));
        if (eq == NULL) {
            eq = amp;
        }
        if ((size_t) (eq - p) == nlen && !memcmp(p, name, nlen)) {
            *val = eq == amp ? eq : eq + 1;
            *vlen = (size_t) (amp - *val);
            return 1;
        }
        p = *amp ? amp + 1 : NULL;
    }
    return 0;
}

const char *
jt_req_query(jt_req *r, const char *name)
{
    const char *v;
    size_t n;

    return query_find(r, name, &v, &n) ? url_decode(r->arena, v, n) : NULL;
}

int
jt_parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (s == NULL || *s == '\0' || strlen(s) > 20) {
        return -1;
    }
    for (; *s; s++) {
        unsigned d;
        if (*s < '0' || *s > '9') {
            return -1;
        }
        d = (unsigned) (*s - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return -1;
        }
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

jt_err
jt_req_query_str(jt_req *r, const char *name, const char **out)
{
    const char *v;
    size_t n;

    *out = NULL;
    if (!query_find(r, name, &v, &n)) {
        return JT_OK;
    }
    *out = url_decode(r->arena, v, n);
    if (*out == NULL) {
        return jt_fail(r, JT_E_INVALID_REQUEST,
                       "query parameter '%s' has a malformed or NUL %%-escape", name);
    }
    return JT_OK;
}

jt_err
jt_req_query_int(jt_req *r, const char *name, int64_t def, int64_t lo, int64_t hi, int64_t *out)
{
    const char *v;
    uint64_t u;
    int neg = 0;
    jt_err e;

    if ((e = jt_req_query_str(r, name, &v)) != JT_OK) {
        return e;
    }
    if (v == NULL) {
        *out = def;
        return JT_OK;
    }
    if (*v == '-') {
        neg = 1;
        v++;
    }
    if (jt_parse_u64(v, &u) != 0 || u > (uint64_t) INT64_MAX) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "query parameter '%s' must be an integer", name);
    }
    *out = neg ? -(int64_t) u : (int64_t) u;
    if (*out < lo || *out > hi) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "query parameter '%s' must be between %lld and %lld",
                       name, (long long) lo, (long long) hi);
    }
    return JT_OK;
}

int64_t
jt_req_param_id(jt_req *r, const char *name)
{
    int i;
    for (i = 0; i < r->nparams; i++) {
        if (!strcmp(r->params[i].name, name)) {
            return r->params[i].id;
        }
    }
    return 0;
}

const char *
jt_req_param(jt_req *r, const char *name)
{
    int i;
    for (i = 0; i < r->nparams; i++) {
        if (!strcmp(r->params[i].name, name)) {
            return r->params[i].raw;
        }
    }
    return NULL;
}

void
jt_reply_json(jt_req *r, int status, const jt_buf *body)
{
    r->status = status;
    r->resp_type = "application/json";
    r->resp_body = *body;
    r->answered = 1;
}

void
jt_reply_text(jt_req *r, int status, const char *type, const char *text, size_t len)
{
    r->status = status;
    r->resp_type = type;
    jt_buf_init(&r->resp_body, r->arena, len + 1);
    jt_buf_add(&r->resp_body, text, len);
    r->answered = 1;
}

void
jt_reply_header(jt_req *r, const char *name, const char *value)
{
    if (r->resp_headers.data == NULL) {
        jt_buf_init(&r->resp_headers, r->arena, 128);
    }
    jt_buf_adds(&r->resp_headers, name);
    jt_buf_add(&r->resp_headers, ": ", 2);
    jt_buf_adds(&r->resp_headers, value);
    jt_buf_add(&r->resp_headers, "\r\n", 2);
}

jt_err
jt_fail(jt_req *r, jt_err e, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    r->problem_detail = jt_pstrdup(r->arena, tmp);
    return e;
}

void
jt_reply_problem(jt_req *r, jt_err e)
{
    const jt_err_info *info = jt_err_lookup(e);
    jt_buf b;
    jt_json w;
    char ra[16];

    jt_buf_init(&b, r->arena, 256);
    jw_init(&w, &b);
    jw_obj_open(&w);
    jw_kstr(&w, "type", "about:blank");
    jw_kstr(&w, "title", info->title);
    jw_kint(&w, "status", info->status);
    jw_kstr(&w, "detail", r->problem_detail ? r->problem_detail : info->title);
    jw_kstr(&w, "code", info->code);
    if (r->request_id) {
        jw_kstr(&w, "instance", r->request_id);
    }
    if (r->problem_extra) {
        jt_buf_addc(&b, ',');
        jt_buf_adds(&b, r->problem_extra);
    }
    jw_obj_close(&w);

    r->status = info->status;
    r->resp_type = "application/problem+json";
    r->resp_body = b;
    r->answered = 1;
    if (info->retry_after > 0) {
        snprintf(ra, sizeof(ra), "%d", r->retry_after_s > 0 ? r->retry_after_s : info->retry_after);
        jt_reply_header(r, "Retry-After", ra);
    }
}

void
jt_reply_serialize(jt_req *r, jt_buf *out)
{
    jt_buf_init(out, r->arena, r->resp_body.len + 256);
    jt_buf_addf(out, "Status: %d %s\r\n", r->status, jt_http_reason(r->status));
    if (r->status != 204) {
        jt_buf_addf(out, "Content-Type: %s\r\nContent-Length: %zu\r\n",
                    r->resp_type ? r->resp_type : "application/json", r->resp_body.len);
    }
    if (r->request_id) {
        jt_buf_addf(out, "X-Request-Id: %s\r\n", r->request_id);
    }
    jt_buf_adds(out, "Cache-Control: no-store\r\n");
    if (r->resp_headers.data) {
        jt_buf_add(out, r->resp_headers.data, r->resp_headers.len);
    }
    jt_buf_add(out, "\r\n", 2);
    if (r->method != JT_HEAD) {
        jt_buf_add(out, r->resp_body.data, r->resp_body.len);
    }
}
