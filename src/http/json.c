#include "http/json.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void
put_json(void *p)
{
    json_object_put(p);
}

/* json-c is lenient where a money-moving API must not be: even in strict
 * mode it takes single-quoted strings, NaN and Infinity, lets a duplicate
 * key silently replace the first, and accepts any byte sequence that looks
 * like UTF-8 (overlong forms, surrogates, code points past U+10FFFF, which
 * MariaDB then refuses mid-transaction). So every body is first checked
 * against RFC 8259 here, and only then handed to json-c for its object
 * model. The checker also counts object members: json-c keeps one member
 * per distinct key, so a tree with fewer members than the text had a
 * duplicate key somewhere. */
typedef struct {
    const unsigned char *p, *end;
    int                  depth;
    size_t               members;
    jt_json_fault        fault;
} jt_json_scan;

static int scan_value(jt_json_scan *s);

static int
scan_fail(jt_json_scan *s, jt_json_fault f)
{
    if (s->fault == JT_JSON_FINE) {
        s->fault = f;
    }
    return -1;
}

static void
scan_ws(jt_json_scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) {
        s->p++;
    }
}

/* One UTF-8 sequence of 2..4 bytes starting at s->p (a lead byte >= 0x80),
 * shortest form only, no surrogates, nothing past U+10FFFF (RFC 3629). */
static int
scan_utf8(jt_json_scan *s)
{
    const unsigned char *p = s->p;
    unsigned char lo = 0x80, hi = 0xBF;
    int n, i;

    if (*p >= 0xC2 && *p <= 0xDF) {
        n = 1;
    } else if (*p >= 0xE0 && *p <= 0xEF) {
        n = 2;
        if (*p == 0xE0) lo = 0xA0;          /* overlong */
        if (*p == 0xED) hi = 0x9F;          /* U+D800..U+DFFF */
    } else if (*p >= 0xF0 && *p <= 0xF4) {
        n = 3;
        if (*p == 0xF0) lo = 0x90;          /* overlong */
        if (*p == 0xF4) hi = 0x8F;          /* past U+10FFFF */
    } else {
        return scan_fail(s, JT_JSON_BAD_UTF8);
    }
    if (s->end - p <= n) {
        return scan_fail(s, JT_JSON_BAD_UTF8);
    }
    for (i = 1; i <= n; i++) {
        unsigned char c = p[i];
        if (c < (i == 1 ? lo : 0x80) || c > (i == 1 ? hi : 0xBF)) {
            return scan_fail(s, JT_JSON_BAD_UTF8);
        }
    }
    s->p += n + 1;
    return 0;
}

static int
scan_hex4(jt_json_scan *s, unsigned *out)
{
    unsigned v = 0;
    int i;

    if (s->end - s->p < 4) {
        return scan_fail(s, JT_JSON_SYNTAX);
    }
    for (i = 0; i < 4; i++) {
        int h = jt_hexval(s->p[i]);
        if (h < 0) {
            return scan_fail(s, JT_JSON_SYNTAX);
        }
        v = v * 16 + (unsigned) h;
    }
    s->p += 4;
    *out = v;
    return 0;
}

/* A string, s->p at the opening quote. \u escapes must pair surrogates. */
static int
scan_string(jt_json_scan *s)
{
    unsigned u, lo;

    s->p++;
    while (s->p < s->end) {
        unsigned char c = *s->p;
        if (c == '"') {
            s->p++;
            return 0;
        }
        if (c < 0x20) {
            return scan_fail(s, JT_JSON_SYNTAX);
        }
        if (c >= 0x80) {
            if (scan_utf8(s) != 0) {
                return -1;
            }
            continue;
        }
        s->p++;
        if (c != '\\') {
            continue;
        }
        if (s->p >= s->end) {
            break;
        }
        c = *s->p++;
        if (strchr("\"\\/bfnrt", c) != NULL && c != '\0') {
            continue;
        }
        if (c != 'u' || scan_hex4(s, &u) != 0) {
            return scan_fail(s, JT_JSON_SYNTAX);
        }
        if (u >= 0xDC00 && u <= 0xDFFF) {
            return scan_fail(s, JT_JSON_BAD_UTF8);      /* a lone low surrogate */
        }
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u') {
                return scan_fail(s, JT_JSON_BAD_UTF8);
            }
            s->p += 2;
            if (scan_hex4(s, &lo) != 0) {
                return -1;
            }
            if (lo < 0xDC00 || lo > 0xDFFF) {
                return scan_fail(s, JT_JSON_BAD_UTF8);
            }
        }
    }
    return scan_fail(s, JT_JSON_SYNTAX);
}

static int
scan_digits(jt_json_scan *s)
{
    const unsigned char *from = s->p;

    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
        s->p++;
    }
    return s->p > from ? 0 : scan_fail(s, JT_JSON_SYNTAX);
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? : no NaN, no hex, no +1 */
static int
scan_number(jt_json_scan *s)
{
    if (*s->p == '-') {
        s->p++;
    }
    if (s->p < s->end && *s->p == '0') {
        s->p++;
    } else if (scan_digits(s) != 0) {
        return -1;
    }
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (scan_digits(s) != 0) {
            return -1;
        }
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-')) {
            s->p++;
        }
        if (scan_digits(s) != 0) {
            return -1;
        }
    }
    return 0;
}

static int
scan_word(jt_json_scan *s, const char *w)
{
    size_t n = strlen(w);

    if ((size_t) (s->end - s->p) < n || memcmp(s->p, w, n) != 0) {
        return scan_fail(s, JT_JSON_SYNTAX);
    }
    s->p += n;
    return 0;
}

/* An object or array, s->p at its opening bracket. */
static int
scan_container(jt_json_scan *s)
{
    int object = *s->p == '{';
    unsigned char close = object ? '}' : ']';

    if (++s->depth > JT_JSON_MAX_DEPTH) {
        return scan_fail(s, JT_JSON_TOO_DEEP);
    }
    s->p++;
    scan_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        s->depth--;
        return 0;
    }
    for (;;) {
        if (object) {
            if (s->p >= s->end || *s->p != '"' || scan_string(s) != 0) {
                return scan_fail(s, JT_JSON_SYNTAX);
            }
            scan_ws(s);
            if (s->p >= s->end || *s->p++ != ':') {
                return scan_fail(s, JT_JSON_SYNTAX);
            }
            s->members++;
        }
        if (scan_value(s) != 0) {
            return -1;
        }
        scan_ws(s);
        if (s->p >= s->end) {
            return scan_fail(s, JT_JSON_SYNTAX);
        }
        if (*s->p == close) {
            s->p++;
            s->depth--;
            return 0;
        }
        if (*s->p++ != ',') {
            return scan_fail(s, JT_JSON_SYNTAX);
        }
        scan_ws(s);
    }
}

static int
scan_value(jt_json_scan *s)
{
    scan_ws(s);
    if (s->p >= s->end) {
        return scan_fail(s, JT_JSON_SYNTAX);
    }
    switch (*s->p) {
    case '{':
    case '[':
        return scan_container(s);
    case '"':
        return scan_string(s);
    case 't':
        return scan_word(s, "true");
    case 'f':
        return scan_word(s, "false");
    case 'n':
        return scan_word(s, "null");
    default:
        if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) {
            return scan_number(s);
        }
        return scan_fail(s, JT_JSON_SYNTAX);
    }
}

jt_json_fault
jt_json_check(const char *text, size_t len, size_t *members)
{
    jt_json_scan s;

    s.p = (const unsigned char *) text;
    s.end = s.p + len;
    s.depth = 0;
    s.members = 0;
    s.fault = JT_JSON_FINE;
    if (scan_value(&s) == 0) {
        scan_ws(&s);
        if (s.p != s.end) {
            scan_fail(&s, JT_JSON_SYNTAX);     /* one value, nothing after it */
        }
    }
    *members = s.members;
    return s.fault;
}

static size_t
count_members(json_object *o)
{
    size_t n = 0, i, len;

    if (json_object_is_type(o, json_type_object)) {
        json_object_object_foreach(o, k, v) {
            (void) k;
            n += 1 + count_members(v);
        }
    } else if (json_object_is_type(o, json_type_array)) {
        len = json_object_array_length(o);
        for (i = 0; i < len; i++) {
            n += count_members(json_object_array_get_idx(o, i));
        }
    }
    return n;
}

json_object *
jt_json_parse(const char *s, size_t len, jt_json_fault *fault)
{
    json_tokener *tok;
    json_object *o;
    size_t members;

    *fault = len > INT32_MAX ? JT_JSON_SYNTAX : jt_json_check(s, len, &members);
    if (*fault != JT_JSON_FINE) {
        return NULL;
    }
    /* json-c's nesting limit counts one level more than ours */
    tok = json_tokener_new_ex(JT_JSON_MAX_DEPTH + 1);
    if (tok == NULL) {
        *fault = JT_JSON_SYNTAX;
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    o = json_tokener_parse_ex(tok, s, (int) len);
    if (o != NULL && (json_tokener_get_error(tok) != json_tokener_success
                      || json_tokener_get_parse_end(tok) != len)) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    if (o == NULL) {
        /* the checker passed it: a disagreement is json-c's stricter view */
        *fault = JT_JSON_SYNTAX;
        return NULL;
    }
    if (count_members(o) != members) {
        json_object_put(o);
        *fault = JT_JSON_DUPLICATE_KEY;
        return NULL;
    }
    return o;
}

/* application/json, or application/<x>+json, with parameters; a charset,
 * if named, must be UTF-8 (RFC 8259 allows nothing else). */
int
jt_json_media_type(const char *ct)
{
    const char *semi, *p;
    size_t n;

    if (ct == NULL) {
        return 0;
    }
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    semi = strchr(ct, ';');
    n = semi ? (size_t) (semi - ct) : strlen(ct);
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) {
        n--;
    }
    if (n < 16 || strncasecmp(ct, "application/", 12) != 0) {
        return 0;
    }
    if (!(n == 16 && strncasecmp(ct + 12, "json", 4) == 0)
        && !(n > 17 && strncasecmp(ct + n - 5, "+json", 5) == 0)) {
        return 0;
    }
    for (p = semi; p != NULL; p = strchr(p + 1, ';')) {
        const char *v = p + 1;
        while (*v == ' ' || *v == '\t') {
            v++;
        }
        if (strncasecmp(v, "charset=", 8) == 0) {
            v += 8;
            if (*v == '"') {
                v++;
            }
            if (strncasecmp(v, "utf-8", 5) != 0 || (v[5] != '\0' && v[5] != '"' && v[5] != ';'
                                                     && v[5] != ' ')) {
                return 0;
            }
        }
    }
    return 1;
}

jt_err
jt_json_body(jt_req *r, json_object **out)
{
    static const char *const why[] = {
        [JT_JSON_SYNTAX]        = "the body is not valid JSON",
        [JT_JSON_TOO_DEEP]      = "the body is nested too deeply",
        [JT_JSON_BAD_UTF8]      = "the body is not valid UTF-8",
        [JT_JSON_DUPLICATE_KEY] = "an object in the body has the same key twice",
    };
    json_object *o;
    jt_json_fault fault;

    *out = NULL;
    if (r->body == NULL || r->body_len == 0) {
        return jt_fail(r, JT_E_INVALID_JSON, "a JSON body is required");
    }
    if (!jt_json_media_type(r->content_type)) {
        return jt_fail(r, JT_E_UNSUPPORTED_MEDIA_TYPE,
                       "the body must be sent as Content-Type: application/json");
    }
    /* (a raw NUL byte is a control character: the checker refuses it) */
    o = jt_json_parse(r->body, r->body_len, &fault);
    if (o == NULL) {
        return jt_fail(r, JT_E_INVALID_JSON, "%s", why[fault]);
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

jt_err
jt_json_only(jt_req *r, json_object *o, const char *where, const char *const *known)
{
    struct json_object_iterator it, end;

    if (o == NULL || !json_object_is_type(o, json_type_object)) {
        return JT_OK;   /* the typed getters refuse a non-object */
    }
    it = json_object_iter_begin(o);
    end = json_object_iter_end(o);
    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        const char *name = json_object_iter_peek_name(&it);
        const char *const *k;

        for (k = known; *k != NULL && strcmp(*k, name) != 0; k++) {
        }
        if (*k == NULL) {
            /* at most 64 bytes of the name, cut between UTF-8 characters */
            int n = (int) strlen(name);
            if (n > 64) {
                n = 64;
                while (n > 0 && ((unsigned char) name[n] & 0xc0) == 0x80) {
                    n--;
                }
            }
            return jt_fail(r, JT_E_INVALID_REQUEST, "'%s%s%.*s' is not a member this API knows", where,
                           *where ? "." : "", n, name);
        }
    }
    return JT_OK;
}

json_object *
jt_json_parse_in(jt_arena *a, const char *s, size_t len)
{
    jt_json_fault fault;
    json_object *o = jt_json_parse(s, len, &fault);

    if (o != NULL && jt_arena_on_reset(a, put_json, o) != 0) {
        json_object_put(o);
        return NULL;
    }
    return o;
}
