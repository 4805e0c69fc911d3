/* A growable byte string in an arena, and a small JSON writer on top of it.
 * Responses are written straight into one of these: no intermediate DOM, so
 * the bytes stored for an idempotent replay are exactly the bytes sent. */
#ifndef JT_BUF_H
#define JT_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"

typedef struct {
    jt_arena *arena;
    char     *data;
    size_t    len;
    size_t    cap;
    int       oom;      /* sticky: set once an allocation failed */
} jt_buf;

void jt_buf_init(jt_buf *b, jt_arena *a, size_t cap);
void jt_buf_add(jt_buf *b, const void *p, size_t n);
void jt_buf_adds(jt_buf *b, const char *s);
void jt_buf_addc(jt_buf *b, char c);
void jt_buf_addf(jt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void jt_buf_add_i64(jt_buf *b, int64_t v);
/* NUL-terminated view (always valid unless oom). */
const char *jt_buf_cstr(jt_buf *b);

/* JSON writer: call jw_key() before every member value inside an object;
 * commas are inserted automatically. */
typedef struct {
    jt_buf *b;
    int     depth;
    uint64_t first;   /* bit i set: nothing written yet at depth i */
} jt_json;

void jw_init(jt_json *w, jt_buf *b);
void jw_obj_open(jt_json *w);
void jw_obj_close(jt_json *w);
void jw_arr_open(jt_json *w);
void jw_arr_close(jt_json *w);
void jw_key(jt_json *w, const char *k);
void jw_str(jt_json *w, const char *s);
void jw_strn(jt_json *w, const char *s, size_t n);
void jw_int(jt_json *w, int64_t v);
void jw_bool(jt_json *w, int v);
void jw_null(jt_json *w);
/* Raw, already-valid JSON text (e.g. a stored fragment). */
void jw_raw(jt_json *w, const char *s, size_t n);

/* Shorthands for "key": value pairs. */
void jw_kstr(jt_json *w, const char *k, const char *s);
void jw_kint(jt_json *w, const char *k, int64_t v);
void jw_kbool(jt_json *w, const char *k, int v);
void jw_knull(jt_json *w, const char *k);

/* Append s as a JSON string literal (quotes included) to b. */
void jt_json_escape(jt_buf *b, const char *s, size_t n);

#endif
