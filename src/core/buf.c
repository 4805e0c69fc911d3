#include "core/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

void
jt_buf_init(jt_buf *b, jt_arena *a, size_t cap)
{
    b->arena = a;
    b->len = 0;
    b->oom = 0;
    b->cap = cap ? cap : 256;
    b->data = jt_palloc(a, b->cap);
    if (b->data == NULL) {
        b->oom = 1;
        b->cap = 0;
    }
}

static int
buf_reserve(jt_buf *b, size_t extra)
{
    size_t need, ncap;
    char *nd;

    if (b->oom) {
        return -1;
    }
    if (extra > SIZE_MAX / 4) {
        b->oom = 1;
        return -1;
    }
    if (b->len + extra + 1 <= b->cap) {
        return 0;
    }
    need = b->len + extra + 1;
    ncap = b->cap * 2;
    if (ncap < need) {
        ncap = need;
    }
    /* arena memory is not freed one by one; the old block is simply left
     * behind until the request ends */
    nd = jt_palloc(b->arena, ncap);
    if (nd == NULL) {
        b->oom = 1;
        return -1;
    }
    if (b->len) {
        memcpy(nd, b->data, b->len);
    }
    b->data = nd;
    b->cap = ncap;
    return 0;
}

void
jt_buf_add(jt_buf *b, const void *p, size_t n)
{
    if (n == 0 || buf_reserve(b, n) != 0) {
        return;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void
jt_buf_adds(jt_buf *b, const char *s)
{
    jt_buf_add(b, s, strlen(s));
}

void
jt_buf_addc(jt_buf *b, char c)
{
    jt_buf_add(b, &c, 1);
}

void
jt_buf_addf(jt_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0 || buf_reserve(b, (size_t) n) != 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t) n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t) n;
}

void
jt_buf_add_i64(jt_buf *b, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%lld", (long long) v);
    jt_buf_add(b, tmp, (size_t) n);
}

const char *
jt_buf_cstr(jt_buf *b)
{
    if (b->oom || b->data == NULL) {
        return "";
    }
    b->data[b->len] = '\0';
    return b->data;
}

void
jt_json_escape(jt_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, run = 0;

    jt_buf_addc(b, '"');
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f) {
            run++;
            continue;
        }
        jt_buf_add(b, s + i - run, run);
        run = 0;
        switch (c) {
        case '"':  jt_buf_add(b, "\\\"", 2); break;
        case '\\': jt_buf_add(b, "\\\\", 2); break;
        case '\n': jt_buf_add(b, "\\n", 2); break;
        case '\r': jt_buf_add(b, "\\r", 2); break;
        case '\t': jt_buf_add(b, "\\t", 2); break;
        default: {
            char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
            jt_buf_add(b, u, 6);
        }
        }
    }
    jt_buf_add(b, s + n - run, run);
    jt_buf_addc(b, '"');
}

/* JSON writer */

void
jw_init(jt_json *w, jt_buf *b)
{
    w->b = b;
    w->depth = 0;
    w->first = 1;
}

static void
jw_sep(jt_json *w)
{
    uint64_t bit = (uint64_t) 1 << (w->depth & 63);
    if (w->first & bit) {
        w->first &= ~bit;
    } else {
        jt_buf_addc(w->b, ',');
    }
}

static void
jw_open(jt_json *w, char c)
{
    jw_sep(w);
    jt_buf_addc(w->b, c);
    w->depth++;
    w->first |= (uint64_t) 1 << (w->depth & 63);
}

static void
jw_close(jt_json *w, char c)
{
    jt_buf_addc(w->b, c);
    w->depth--;
}

void jw_obj_open(jt_json *w)  { jw_open(w, '{'); }
void jw_obj_close(jt_json *w) { jw_close(w, '}'); }
void jw_arr_open(jt_json *w)  { jw_open(w, '['); }
void jw_arr_close(jt_json *w) { jw_close(w, ']'); }

void
jw_key(jt_json *w, const char *k)
{
    jw_sep(w);
    jt_json_escape(w->b, k, strlen(k));
    jt_buf_addc(w->b, ':');
    /* the value that follows must not emit another separator */
    w->first |= (uint64_t) 1 << (w->depth & 63);
}

void
jw_strn(jt_json *w, const char *s, size_t n)
{
    jw_sep(w);
    jt_json_escape(w->b, s, n);
}

void
jw_str(jt_json *w, const char *s)
{
    if (s == NULL) {
        jw_null(w);
        return;
    }
    jw_strn(w, s, strlen(s));
}

void
jw_int(jt_json *w, int64_t v)
{
    jw_sep(w);
    jt_buf_add_i64(w->b, v);
}

void
jw_bool(jt_json *w, int v)
{
    jw_sep(w);
    jt_buf_adds(w->b, v ? "true" : "false");
}

void
jw_null(jt_json *w)
{
    jw_sep(w);
    jt_buf_adds(w->b, "null");
}

void
jw_raw(jt_json *w, const char *s, size_t n)
{
    jw_sep(w);
    jt_buf_add(w->b, s, n);
}

void jw_kstr(jt_json *w, const char *k, const char *s) { jw_key(w, k); jw_str(w, s); }
void jw_kint(jt_json *w, const char *k, int64_t v)     { jw_key(w, k); jw_int(w, v); }
void jw_kbool(jt_json *w, const char *k, int v)        { jw_key(w, k); jw_bool(w, v); }
void jw_knull(jt_json *w, const char *k)               { jw_key(w, k); jw_null(w); }
