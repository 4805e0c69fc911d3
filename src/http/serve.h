/* Serving one FastCGI request: read the parameters and body into a jt_req,
 * route it, run the handler, turn an error into problem+json, write the
 * answer and one access-log line. */
#ifndef JT_SERVE_H
#define JT_SERVE_H

#include <fcgiapp.h>
#include <stddef.h>

#include "core/arena.h"
#include "core/config.h"
#include "http/router.h"

struct jt_db;
struct jt_req;
struct jt_redis;
struct jt_pg;

/* What a worker hands the protocol layer: its settings, connections and
 * arena, and the route table (routes.c), so http/ links no handler. */
typedef struct {
    const jt_conf   *conf;
    struct jt_db    *db;
    struct jt_redis *redis;
    struct jt_pg    *pg;
    jt_arena        *arena;
    const jt_route  *routes;
    size_t           nroutes;
    /* the answered request's jt_req.after, for jt_http_after */
    void           (*after)(struct jt_req *r, void *data);
    void            *after_data;
} jt_http_ctx;

/* req_id_out receives the request id (for the scoreboard). */
void jt_http_serve(jt_http_ctx *ctx, FCGX_Request *f, char *req_id_out, size_t req_id_len);

/* After FCGX_Finish_r (the client has its answer) and before the arena is
 * reset: runs the work the request left (jt_req.after), if any, on a
 * request of its own with the same connections and no client. */
void jt_http_after(jt_http_ctx *ctx);

#endif
