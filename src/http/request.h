/* One HTTP request as FastCGI hands it to us, and the answer being built.
 * Everything hangs off the request's arena. */
#ifndef JT_REQUEST_H
#define JT_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "http/errors.h"

struct jt_db;
struct jt_redis;
struct jt_pg;
struct jt_route;

enum { JT_GET = 1, JT_POST = 2, JT_PUT = 4, JT_PATCH = 8, JT_DELETE = 16, JT_HEAD = 32 };

#define JT_MAX_PARAMS 4

typedef struct {
    const char *name;
    const char *raw;
    int64_t     id;      /* for {id}-typed params: > 0 */
} jt_path_param;

typedef struct jt_req {
    jt_arena       *arena;

    /* request */
    int             method;
    const char     *method_name;
    const char     *path;           /* without the query string */
    const char     *query;          /* may be "" */
    const char     *request_id;
    const char     *content_type;
    const char     *authorization;
    const char     *idempotency_key;
    const char     *if_match;
    const char     *remote_addr;
    char           *body;           /* NUL-terminated copy, body_len bytes */
    size_t          body_len;
    int64_t         start_us;       /* jt_clock_mono_us() */
    const char     *route;          /* matched route template, for logs/metrics */
    jt_path_param   params[JT_MAX_PARAMS];
    int             nparams;

    /* the worker's connections, settings and route table */
    struct jt_db    *db;
    struct jt_redis *redis;
    struct jt_pg    *pg;            /* the payment gateway client */
    const void      *conf;          /* const jt_conf * */
    const struct jt_route *routes;  /* the table this request was routed by */
    size_t          nroutes;

    /* answer */
    int             status;
    const char     *resp_type;
    jt_buf          resp_body;
    jt_buf          resp_headers;   /* extra "Name: value\r\n" lines */
    const char     *problem_detail; /* detail for an error answer */
    const char     *problem_extra;  /* extra members: `"a":1,"b":2` */
    int             retry_after_s;  /* > 0: the problem's Retry-After, not the table's */
    int             answered;

    /* Called by the dispatcher with the error a handler returns, before it
     * is answered (nginx's cleanup-handler idea): the write path releases
     * what it holds there, and may answer with a committed replay instead
     * (returning JT_OK). */
    jt_err        (*on_error)(struct jt_req *r, jt_err e, void *data);
    void           *on_error_data;

    /* Work that follows the answer (jt_http_after): the worker runs it once
     * the client has its response and before it takes the next request, on
     * the same connections and arena (a combining leader goes on leading
     * while its product's queue is not empty, domain/combine.c). Bounded
     * by whoever sets it. */
    void          (*after)(struct jt_req *r, void *data);
    void           *after_data;
} jt_req;

/* Request id: a client or nginx value if it is sane, else a fresh one. */
const char *jt_req_sanitize_id(jt_arena *a, const char *given);

/* The value of one query parameter, percent-decoded; NULL when absent or
 * undecodable (a malformed or NUL %-escape). Enough for flags. */
const char *jt_req_query(jt_req *r, const char *name);
/* The same for a value that matters: *out NULL when absent, a 400 naming
 * the parameter when it is there but undecodable. */
jt_err jt_req_query_str(jt_req *r, const char *name, const char **out);
/* The value of one hex digit, or -1. */
int jt_hexval(int c);
/* Strict unsigned decimal: digits only, no sign, no overflow. */
int jt_parse_u64(const char *s, uint64_t *out);
/* Integer query parameter in [lo, hi]; absent → def. JT_E_INVALID_REQUEST
 * with a detail naming the parameter otherwise. */
jt_err jt_req_query_int(jt_req *r, const char *name, int64_t def, int64_t lo, int64_t hi,
                        int64_t *out);

int64_t jt_req_param_id(jt_req *r, const char *name);
const char *jt_req_param(jt_req *r, const char *name);

/* Answers. A handler writes exactly one of these and returns JT_OK, or
 * returns an error code and lets the dispatcher answer. */
void jt_reply_json(jt_req *r, int status, const jt_buf *body);
void jt_reply_text(jt_req *r, int status, const char *type, const char *text, size_t len);
void jt_reply_header(jt_req *r, const char *name, const char *value);
void jt_reply_problem(jt_req *r, jt_err e);
/* printf-style detail for the coming error answer */
jt_err jt_fail(jt_req *r, jt_err e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The full response (FastCGI "Status:" header block + body) as bytes. */
void jt_reply_serialize(jt_req *r, jt_buf *out);

#endif
