#include "domain/testing.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "domain/common.h"
#include "http/json.h"

/* GET /test/sleep?ms=N: a request that takes N ms (process-manager tests). */
jt_err
testing_sleep(jt_req *r)
{
    int64_t ms;
    jt_buf b;
    jt_json w;
    jt_err e;

    if ((e = jt_req_query_int(r, "ms", 0, 0, 600000, &ms)) != JT_OK) {
        return e;
    }
    jt_clock_sleep_ms(ms);
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

/* POST /test/clock {"offsetMs": N}: moves business time (core/clock.h) of
 * every worker and consumer by N ms from the wall clock; 0 puts it back. */
jt_err
testing_clock(jt_req *r)
{
    json_object *o;
    int64_t off;
    jt_buf b;
    jt_json w;
    jt_err e;

    if ((e = jt_json_body(r, &o)) != JT_OK
        || (e = jt_json_int(r, o, "offsetMs", JT_REQUIRED, -86400000LL * 365, 86400000LL * 365, &off, NULL))
               != JT_OK) {
        return e;
    }
    jt_clock_set_test_offset_ms(off);
    jt_json_begin(r, &b, &w, 64);
    jw_obj_open(&w);
    jw_kint(&w, "offsetMs", off);
    jw_kint(&w, "nowMs", jt_clock_now_ms());
    jw_obj_close(&w);
    jt_reply_json(r, 200, &b);
    return JT_OK;
}

/* POST /test/leak: loses 64 bytes on purpose, once per call. A sanitizer
 * build's workers run LeakSanitizer as they exit (jt_child_exit); t/83
 * calls this in a throwaway stack to prove that check is really watching,
 * before it trusts the check's silence about everything else. */
jt_err
testing_leak(jt_req *r)
{
    static void *volatile lost;

    lost = malloc(64);
    if (lost != NULL) {
        memset(lost, 0x5a, 64);
    }
    lost = NULL;
    jt_reply_text(r, 204, "application/json", "", 0);
    return JT_OK;
}
