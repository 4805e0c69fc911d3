#include "domain/testing.h"

#include <json-c/json.h>
#include <string.h>
#include <time.h>

#include "domain/common.h"
#include "http/json.h"

/* GET /test/sleep?ms=N: a request that takes N ms (process-manager tests). */
jt_err
testing_sleep(jt_req *r)
{
    int64_t ms;
    struct timespec ts;
    jt_buf b;
    jt_json w;
    jt_err e;

    if ((e = jt_req_query_int(r, "ms", 0, 0, 600000, &ms)) != JT_OK) {
        return e;
    }
    ts.tv_sec = (time_t) (ms / 1000);
    ts.tv_nsec = (long) (ms % 1000) * 1000000;
    while (nanosleep(&ts, &ts) != 0) {
    }
    jt_json_begin(r, &b, &w, 32);
    jw_obj_open(&w);
    jw_kint(&w, "slept", ms);
    jw_obj_close(&w);
    jt_reply_json(r, 200, &b);
    return JT_OK;
}

/* POST /test/echo: parses the body and answers {"echo": body}. */
jt_err
testing_echo(jt_req *r)
{
    json_object *o;
    jt_buf b;
    jt_json w;
    jt_err e;

    if ((e = jt_json_body(r, &o)) != JT_OK) {
        return e;
    }
    jt_json_begin(r, &b, &w, r->body_len + 16);
    jw_obj_open(&w);
    jw_key(&w, "echo");
    jw_raw(&w, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
           strlen(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)));
    jw_obj_close(&w);
    jt_reply_json(r, 200, &b);
    return JT_OK;
}
