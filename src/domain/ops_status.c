/* /status: the scoreboard in PHP-FPM's shape, as text (default, `?full` for
 * per-process rows) or JSON (`?json`). nginx exposes it to loopback only. */
#include "domain/ops_status.h"

#include <stdio.h>

#include "core/breaker.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/scoreboard.h"
#include "store/pg.h"

static const char *
state_name(int st)
{
    switch (st) {
    case JT_SLOT_STARTING: return "Starting";
    case JT_SLOT_IDLE:     return "Idle";
    case JT_SLOT_BUSY:     return "Running";
    case JT_SLOT_EXITING:  return "Finishing";
    default:               return "Free";
    }
}

/* The payment gateway's breaker, as /status shows it. */
static void
breaker_view(jt_req *r, jt_breaker_view *v, int64_t mono_us)
{
    jt_breaker_conf bc;

    jt_pg_breaker_conf(r->conf, &bc);
    jt_breaker_inspect(jt_breaker_get(), &bc, v);
    /* since_ms becomes the state's age */
    v->since_ms = v->since_ms >= 0 && mono_us / 1000 >= v->since_ms ? mono_us / 1000 - v->since_ms : -1;
}

jt_err
status_render(jt_req *r)
{
    jt_scoreboard *sb = jt_scoreboard_get();
    int64_t now = jt_clock_wall_ms() / 1000, mono = jt_clock_mono_us();
    int active, idle, total, i, as_json = jt_req_query(r, "json") != NULL,
        full = jt_req_query(r, "full") != NULL;
    const jt_conf *c = r->conf;
    jt_breaker_view bv;
    jt_buf b;
    jt_json w;

    if (sb == NULL) {
        return jt_fail(r, JT_E_INTERNAL, "no scoreboard");
    }
    jt_scoreboard_count(sb, &active, &idle, &total);
    breaker_view(r, &bv, mono);
    jt_buf_init(&b, r->arena, 1024);

    if (!as_json) {
        jt_buf_addf(&b,
                    "pool:                 jangteo\n"
                    "process manager:      static\n"
                    "start time:           %lld\n"
                    "start since:          %lld\n"
                    "accepted conn:        %llu\n"
                    "listen queue:         0\n"
                    "max listen queue:     0\n"
                    "idle processes:       %d\n"
                    "active processes:     %d\n"
                    "total processes:      %d\n"
                    "max active processes: %llu\n"
                    "max children reached: %llu\n"
                    "slow requests:        %llu\n",
                    (long long) sb->start_time, (long long) (now - sb->start_time),
                    (unsigned long long) sb->accepted, idle, active, total,
                    (unsigned long long) sb->max_active, (unsigned long long) sb->max_children_reached,
                    (unsigned long long) sb->slow_requests);
        jt_buf_addf(&b,
                    "payment gateway:      %s\n"
                    "gateway breaker:      %s for %lld ms\n"
                    "gateway window:       %lld calls, %lld failed, %lld slow\n",
                    c->pg_url[0] ? "configured" : "off", jt_breaker_state_name(bv.state), (long long) bv.since_ms,
                    (long long) bv.calls, (long long) bv.failed, (long long) bv.slow);
        for (i = 0; full && i < sb->nslots; i++) {
            jt_slot *s = &sb->slots[i];
            if (s->state == JT_SLOT_FREE || s->kind != JT_KIND_WORKER) {
                continue;
            }
            jt_buf_addf(&b, "\npid: %d\nstate: %s\nstart time: %lld\nrequests: %llu\n"
                            "request duration: %lld\nrequest method: %s\nrequest URI: %s\n",
                        (int) s->pid, state_name(s->state), (long long) s->started_at,
                        (unsigned long long) s->requests,
                        (long long) (s->req_start_us ? mono - s->req_start_us : s->last_duration_us),
                        s->method[0] ? s->method : "-", s->uri[0] ? s->uri : "-");
        }
        jt_reply_text(r, 200, "text/plain; charset=utf-8", b.data, b.len);
        return JT_OK;
    }

    jw_init(&w, &b);
    jw_obj_open(&w);
    jw_kstr(&w, "pool", "jangteo");
    jw_kstr(&w, "process_manager", "static");
    jw_kint(&w, "start_time", sb->start_time);
    jw_kint(&w, "start_since", now - sb->start_time);
    jw_kint(&w, "accepted_conn", (int64_t) sb->accepted);
    jw_kint(&w, "listen_queue", 0);
    jw_kint(&w, "max_listen_queue", 0);
    jw_kint(&w, "idle_processes", idle);
    jw_kint(&w, "active_processes", active);
    jw_kint(&w, "total_processes", total);
    jw_kint(&w, "configured_processes", sb->configured_workers);
    jw_kint(&w, "max_active_processes", (int64_t) sb->max_active);
    jw_kint(&w, "max_children_reached", (int64_t) sb->max_children_reached);
    jw_kint(&w, "slow_requests", (int64_t) sb->slow_requests);
    jw_kint(&w, "request_timeout_kills", (int64_t) sb->timeout_kills);
    jw_kint(&w, "worker_starts", (int64_t) sb->worker_starts);
    jw_kint(&w, "abnormal_exits", (int64_t) sb->abnormal_exits);
    jw_kint(&w, "recycles", (int64_t) sb->recycles);
    jw_key(&w, "payment_gateway");
    jw_obj_open(&w);
    jw_kbool(&w, "configured", c->pg_url[0] != '\0');
    jw_kstr(&w, "breaker", jt_breaker_state_name(bv.state));
    jw_kint(&w, "breaker_state_ms", bv.since_ms);
    jw_kint(&w, "window_calls", bv.calls);
    jw_kint(&w, "window_failed", bv.failed);
    jw_kint(&w, "window_slow", bv.slow);
    jw_obj_close(&w);
    jw_key(&w, "processes");
    jw_arr_open(&w);
    for (i = 0; i < sb->nslots; i++) {
        jt_slot *s = &sb->slots[i];
        if (s->state == JT_SLOT_FREE || s->kind != JT_KIND_WORKER) {
            continue;
        }
        jw_obj_open(&w);
        jw_kint(&w, "pid", s->pid);
        jw_kstr(&w, "state", state_name(s->state));
        jw_kint(&w, "generation", s->generation);
        jw_kint(&w, "start_time", s->started_at);
        jw_kint(&w, "requests", (int64_t) s->requests);
        jw_kint(&w, "request_duration", s->req_start_us ? mono - s->req_start_us : s->last_duration_us);
        jw_kstr(&w, "request_method", s->method[0] ? s->method : "-");
        jw_kstr(&w, "request_uri", s->uri[0] ? s->uri : "-");
        jw_kint(&w, "leading_batch", __atomic_load_n(&s->leading, __ATOMIC_RELAXED));
        jw_obj_close(&w);
    }
    jw_arr_close(&w);
    jw_obj_close(&w);
    jt_reply_json(r, 200, &b);
    return JT_OK;
}
