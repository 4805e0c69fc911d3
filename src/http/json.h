/* JSON request bodies: parsed with json-c in strict mode (UTF-8 checked,
 * nesting capped), tied to the request arena, read through typed getters
 * that turn every wrong type into a 400 naming the field. */
#ifndef JT_JSON_H
#define JT_JSON_H

#include <json-c/json.h>
#include <stdint.h>

#include "http/request.h"

#define JT_JSON_MAX_DEPTH 16

/* Parses r->body, which must be sent as JSON (415 otherwise) and be one
 * strict JSON object (INVALID_JSON / INVALID_REQUEST otherwise). */
jt_err jt_json_body(jt_req *r, json_object **out);
typedef enum {
    JT_JSON_FINE = 0,
    JT_JSON_SYNTAX,          /* not RFC 8259 JSON (or not one value) */
    JT_JSON_TOO_DEEP,        /* nested deeper than JT_JSON_MAX_DEPTH */
    JT_JSON_BAD_UTF8,        /* malformed UTF-8, or an unpaired \u surrogate */
    JT_JSON_DUPLICATE_KEY    /* an object names one key twice */
} jt_json_fault;

/* Checks that text is exactly one strict RFC 8259 value: no single quotes,
 * NaN, comments or trailing commas, strings in shortest-form UTF-8 without
 * surrogates, nesting within JT_JSON_MAX_DEPTH. *members is the number of
 * object members in the text. Needs no memory. */
jt_json_fault jt_json_check(const char *text, size_t len, size_t *members);
/* Checks, then parses any JSON text (used by tests and fuzzers); a
 * duplicate key is refused. NULL with *fault set on error. */
json_object *jt_json_parse(const char *s, size_t len, jt_json_fault *fault);
/* jt_json_parse, the result freed with the arena; NULL on any fault. */
json_object *jt_json_parse_in(jt_arena *a, const char *s, size_t len);
/* Is this Content-Type JSON (application/json or +json, UTF-8)? */
int jt_json_media_type(const char *content_type);

enum { JT_OPTIONAL = 0, JT_REQUIRED = 1 };

/* Each returns JT_OK with *present set (when not NULL), or a 400. An
 * integer field accepts only a JSON integer (no floats, no strings). */
jt_err jt_json_int(jt_req *r, json_object *o, const char *key, int required, int64_t lo, int64_t hi,
                   int64_t *out, int *present);
jt_err jt_json_str(jt_req *r, json_object *o, const char *key, int required, size_t minlen,
                   size_t maxlen, const char **out);
jt_err jt_json_bool(jt_req *r, json_object *o, const char *key, int required, int *out, int *present);

/* 400 INVALID_REQUEST naming the first member of object o that is not in
 * the NULL-terminated list `known`; `where` names o in the detail ("" for
 * the body itself, or e.g. "items[0]"). A body that moves money or stock
 * takes nothing it does not understand: a misspelt or newer field is
 * refused, never silently dropped. */
jt_err jt_json_only(jt_req *r, json_object *o, const char *where, const char *const *known);



/* Canonical form of a JSON value: object keys sorted bytewise, no
 * whitespace, numbers as json-c prints them. Two bodies that mean the same
 * thing have the same canonical form (the idempotency fingerprint). */
void jt_json_canonical(jt_buf *b, json_object *o);
#endif
