/* JSON request bodies: parsed with json-c in strict mode (UTF-8 checked,
 * nesting capped), tied to the request arena, read through typed getters
 * that turn every wrong type into a 400 naming the field. */
#ifndef JT_JSON_H
#define JT_JSON_H

#include <json-c/json.h>
#include <stdint.h>

#include "http/request.h"

#define JT_JSON_MAX_DEPTH 16

/* Parses r->body; the top level must be an object. */
jt_err jt_json_body(jt_req *r, json_object **out);
/* Parses any JSON text (used by tests and fuzzers). NULL on error. */
json_object *jt_json_parse(const char *s, size_t len, int *depth_exceeded);

enum { JT_OPTIONAL = 0, JT_REQUIRED = 1 };

/* Each returns JT_OK with *present set (when not NULL), or a 400. An
 * integer field accepts only a JSON integer (no floats, no strings). */
jt_err jt_json_int(jt_req *r, json_object *o, const char *key, int required, int64_t lo, int64_t hi,
                   int64_t *out, int *present);
jt_err jt_json_str(jt_req *r, json_object *o, const char *key, int required, size_t minlen,
                   size_t maxlen, const char **out);
jt_err jt_json_bool(jt_req *r, json_object *o, const char *key, int required, int *out, int *present);



/* Canonical form of a JSON value: object keys sorted bytewise, no
 * whitespace, numbers as json-c prints them. Two bodies that mean the same
 * thing have the same canonical form (the idempotency fingerprint). */
void jt_json_canonical(jt_buf *b, json_object *o);
#endif
