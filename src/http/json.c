#include "http/json.h"

#include <stdlib.h>
#include <string.h>

static void
put_json(void *p)
{
    json_object_put(p);
}

json_object *
jt_json_parse(const char *s, size_t len, int *depth_exceeded)
{
    json_tokener *tok;
    json_object *o;
    enum json_tokener_error jerr;

    *depth_exceeded = 0;
    if (len > INT32_MAX) {
        return NULL;
    }
    tok = json_tokener_new_ex(JT_JSON_MAX_DEPTH);
    if (tok == NULL) {
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    o = json_tokener_parse_ex(tok, s, (int) len);
    jerr = json_tokener_get_error(tok);
    if (jerr == json_tokener_error_depth) {
        *depth_exceeded = 1;
    }
    /* the whole body must be one value: trailing bytes are an error */
    if (o != NULL && (jerr != json_tokener_success || json_tokener_get_parse_end(tok) != len)) {
        json_object_put(o);
        o = NULL;
    }
    if (o == NULL && jerr == json_tokener_continue) {
        jerr = json_tokener_error_parse_eof;
    }
    json_tokener_free(tok);
    return o;
}

jt_err
jt_json_body(jt_req *r, json_object **out)
{
    json_object *o;
    int deep;
    size_t i;

    *out = NULL;
    if (r->body == NULL || r->body_len == 0) {
        return jt_fail(r, JT_E_INVALID_JSON, "a JSON body is required");
    }
    /* a NUL byte inside the body can only be an attack or a broken client */
    for (i = 0; i < r->body_len; i++) {
        if (r->body[i] == '\0') {
            return jt_fail(r, JT_E_INVALID_JSON, "the body contains a NUL byte");
        }
    }
    o = jt_json_parse(r->body, r->body_len, &deep);
    if (o == NULL) {
        return jt_fail(r, JT_E_INVALID_JSON, deep ? "the body is nested too deeply"
                                                  : "the body is not valid JSON");
    }
    if (jt_arena_on_reset(r->arena, put_json, o) != 0) {
        json_object_put(o);
        return JT_E_INTERNAL;
    }
    if (!json_object_is_type(o, json_type_object)) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "the body must be a JSON object");
    }
    *out = o;
    return JT_OK;
}

static jt_err
field(jt_req *r, json_object *o, const char *key, int required, json_object **v)
{
    *v = NULL;
    if (o == NULL || !json_object_object_get_ex(o, key, v) || *v == NULL) {
        *v = NULL;
        if (required) {
            return jt_fail(r, JT_E_INVALID_REQUEST, "'%s' is required", key);
        }
    }
    return JT_OK;
}

jt_err
jt_json_int(jt_req *r, json_object *o, const char *key, int required, int64_t lo, int64_t hi,
            int64_t *out, int *present)
{
    json_object *v;
    jt_err e = field(r, o, key, required, &v);
    int64_t n;

    if (present) {
        *present = v != NULL;
    }
    if (e != JT_OK || v == NULL) {
        return e;
    }
    if (!json_object_is_type(v, json_type_int)) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'%s' must be an integer", key);
    }
    /* json-c saturates out-of-range integers to INT64_MIN/MAX; both lie
     * outside every range we accept, so they are refused below. */
    n = json_object_get_int64(v);
    if (n == INT64_MAX || n == INT64_MIN) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'%s' is out of range", key);
    }
    if (n < lo || n > hi) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'%s' must be between %lld and %lld", key,
                       (long long) lo, (long long) hi);
    }
    *out = n;
    return JT_OK;
}

jt_err
jt_json_str(jt_req *r, json_object *o, const char *key, int required, size_t minlen, size_t maxlen,
            const char **out)
{
    json_object *v;
    jt_err e = field(r, o, key, required, &v);
    const char *s;
    size_t n, i, chars = 0;

    *out = NULL;
    if (e != JT_OK || v == NULL) {
        return e;
    }
    if (!json_object_is_type(v, json_type_string)) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'%s' must be a string", key);
    }
    s = json_object_get_string(v);
    n = (size_t) json_object_get_string_len(v);
    if (memchr(s, '\0', n) != NULL) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'%s' contains a NUL character", key);
    }
    for (i = 0; i < n; i++) {          /* length in characters, not bytes */
        if (((unsigned char) s[i] & 0xC0) != 0x80) {
            chars++;
        }
    }
    if (chars < minlen || chars > maxlen) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'%s' must be %zu to %zu characters long", key, minlen,
                       maxlen);
    }
    *out = s;
    return JT_OK;
}

jt_err
jt_json_bool(jt_req *r, json_object *o, const char *key, int required, int *out, int *present)
{
    json_object *v;
    jt_err e = field(r, o, key, required, &v);

    if (present) {
        *present = v != NULL;
    }
    if (e != JT_OK || v == NULL) {
        return e;
    }
    if (!json_object_is_type(v, json_type_boolean)) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'%s' must be true or false", key);
    }
    *out = json_object_get_boolean(v);
    return JT_OK;
}

static int
cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}

void
jt_json_canonical(jt_buf *b, json_object *o)
{
    switch (json_object_get_type(o)) {
    case json_type_null:
        jt_buf_adds(b, "null");
        return;
    case json_type_object: {
        size_t n = (size_t) json_object_object_length(o), i = 0;
        const char **keys = jt_palloc(b->arena, sizeof(char *) * (n ? n : 1));
        if (keys == NULL) {
            b->oom = 1;
            return;
        }
        json_object_object_foreach(o, k, v) {
            (void) v;
            keys[i++] = k;
        }
        qsort(keys, n, sizeof(char *), cmp_keys);
        jt_buf_addc(b, '{');
        for (i = 0; i < n; i++) {
            if (i) {
                jt_buf_addc(b, ',');
            }
            jt_json_escape(b, keys[i], strlen(keys[i]));
            jt_buf_addc(b, ':');
            jt_json_canonical(b, json_object_object_get(o, keys[i]));
        }
        jt_buf_addc(b, '}');
        return;
    }
    case json_type_array: {
        size_t n = json_object_array_length(o), i;
        jt_buf_addc(b, '[');
        for (i = 0; i < n; i++) {
            if (i) {
                jt_buf_addc(b, ',');
            }
            jt_json_canonical(b, json_object_array_get_idx(o, i));
        }
        jt_buf_addc(b, ']');
        return;
    }
    case json_type_string:
        jt_json_escape(b, json_object_get_string(o), (size_t) json_object_get_string_len(o));
        return;
    default:
        jt_buf_adds(b, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        return;
    }
}
