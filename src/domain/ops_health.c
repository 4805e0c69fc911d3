/* Liveness and readiness probes. */
#include "domain/ops_health.h"

#include "domain/common.h"
#include "store/db.h"
#include "store/redis.h"

static const char SQL_PING[] = "SELECT 1";

jt_err
health_live(jt_req *r)
{
    static const char ok[] = "{\"status\":\"ok\"}";
    jt_reply_text(r, 200, "application/json", ok, sizeof(ok) - 1);
    return JT_OK;
}

/* Ready when both MariaDB and Redis answer now; 503 names the one that did
 * not. Redis being down degrades jangteo rather than breaking it, but a load
 * balancer should still prefer a node that has it. */
jt_err
health_ready(jt_req *r)
{
    jt_rows rows;
    redisReply *pong;
    int db_ok, redis_ok;
    jt_buf b;
    jt_json w;

    db_ok = jt_db_exec(r->db, r->arena, SQL_PING, NULL, 0, &rows) == JT_DB_OK;
    pong = jt_redis_cmd(r->redis, r->arena, "PING");
    redis_ok = pong != NULL && pong->type == REDIS_REPLY_STATUS;

    jt_json_begin(r, &b, &w, 128);
    jw_obj_open(&w);
    jw_kstr(&w, "status", db_ok && redis_ok ? "ready" : "unavailable");
    jw_kstr(&w, "mariadb", db_ok ? "ok" : "down");
    jw_kstr(&w, "redis", redis_ok ? "ok" : "down");
    jw_obj_close(&w);
    jt_reply_json(r, db_ok && redis_ok ? 200 : 503, &b);
    if (!(db_ok && redis_ok)) {
        jt_reply_header(r, "Retry-After", "1");
    }
    return JT_OK;
}
