#include "domain/testing.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "domain/common.h"
#include "http/json.h"
#include "store/pg.h"

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

static void
write_payment(jt_json *w, const jt_pg_payment *p)
{
    jw_key(w, "payment");
    jw_obj_open(w);
    jw_kstr(w, "impUid", p->imp_uid);
    jw_kstr(w, "merchantUid", p->merchant_uid);
    jw_kint(w, "amount", p->amount);
    jw_kint(w, "cancelAmount", p->cancel_amount);
    jw_kstr(w, "status", jt_pg_status_name(p->status));
    jw_kstr(w, "currency", p->currency);
    jw_kstr(w, "cardName", p->card_name);
    jw_kint(w, "paidAt", p->paid_at);
    jw_kint(w, "cancelledAt", p->cancelled_at);
    jw_obj_close(w);
}

/* POST /test/pg {"op", "impUid", "merchantUid", "amount", "checksum",
 * "reason"}: one call of the gateway client, made by the worker that
 * serves it, so the tests drive the real thing: the worker's libcurl
 * handle, the token and the circuit breaker every worker shares. Answers
 * the typed result and what the call saw (attempts, token fetches,
 * whether the breaker refused it). op: token, lookup, find, prepare,
 * prepared, cancel (checksum -1 = none). */
jt_err
testing_pg(jt_req *r)
{
    const char *op, *imp = NULL, *mu = NULL, *reason = NULL;
    int64_t amount = 0, checksum = JT_PG_NO_CHECKSUM, prepared = 0;
    jt_pg_payment p;
    jt_pg_result res;
    json_object *o;
    jt_buf b;
    jt_json w;
    jt_err e;
    int with_payment = 0;

    if ((e = jt_json_body(r, &o)) != JT_OK || (e = jt_json_str(r, o, "op", JT_REQUIRED, 1, 16, &op)) != JT_OK
        || (e = jt_json_str(r, o, "impUid", JT_OPTIONAL, 0, 200, &imp)) != JT_OK
        || (e = jt_json_str(r, o, "merchantUid", JT_OPTIONAL, 0, 200, &mu)) != JT_OK
        || (e = jt_json_str(r, o, "reason", JT_OPTIONAL, 0, 200, &reason)) != JT_OK
        || (e = jt_json_int(r, o, "amount", JT_OPTIONAL, 0, INT64_C(1000000000000), &amount, NULL)) != JT_OK
        || (e = jt_json_int(r, o, "checksum", JT_OPTIONAL, -1, INT64_C(1000000000000), &checksum, NULL)) != JT_OK) {
        return e;
    }
    memset(&p, 0, sizeof(p));
    if (!strcmp(op, "token")) {
        jt_pg_token(r->pg, &res);
    } else if (!strcmp(op, "lookup")) {
        jt_pg_lookup(r->pg, imp ? imp : "", &p, &res);
        with_payment = 1;
    } else if (!strcmp(op, "find")) {
        jt_pg_find(r->pg, mu ? mu : "", &p, &res);
        with_payment = 1;
    } else if (!strcmp(op, "prepare")) {
        jt_pg_prepare(r->pg, mu ? mu : "", amount, &res);
    } else if (!strcmp(op, "prepared")) {
        jt_pg_prepared(r->pg, mu ? mu : "", &prepared, &res);
    } else if (!strcmp(op, "cancel")) {
        jt_pg_cancel(r->pg, imp ? imp : "", amount, checksum, reason, &p, &res);
        with_payment = 1;
    } else {
        return jt_fail(r, JT_E_INVALID_REQUEST, "op: token, lookup, find, prepare, prepared or cancel");
    }
    jt_json_begin(r, &b, &w, 1024);
    jw_obj_open(&w);
    jw_kstr(&w, "rc", jt_pg_rc_name(res.rc));
    jw_kint(&w, "httpStatus", res.http_status);
    jw_kint(&w, "code", res.code);
    jw_kint(&w, "attempts", res.attempts);
    jw_kint(&w, "tokenFetches", res.token_fetches);
    jw_kbool(&w, "rejected", res.rejected);
    jw_kint(&w, "retryAfterMs", res.retry_after_ms);
    jw_kstr(&w, "message", res.message);
    if (with_payment && res.rc == JT_PG_OK) {
        write_payment(&w, &p);
    }
    if (!strcmp(op, "prepared")) {
        jw_kint(&w, "amount", prepared);
    }
    jw_obj_close(&w);
    jt_reply_json(r, 200, &b);
    return JT_OK;
}
