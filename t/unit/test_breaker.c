/* The circuit breaker's state machine, driven by a clock of the test's own:
 * exact transitions at exact counts, with Bootakhae's settings. */
#include <sys/wait.h>
#include <unistd.h>

#include "core/breaker.h"
#include "tap.h"

static const jt_breaker_conf conf = {
    .window = 100, .min_calls = 50, .failure_rate = 20, .slow_rate = 10, .slow_ms = 3000,
    .open_ms = 6000, .half_open_calls = 10, .trial_timeout_ms = 20000,
};

static jt_breaker b;
static int64_t now = 1000000;

static int
state(void)
{
    jt_breaker_view v;
    jt_breaker_inspect(&b, &conf, &v);
    return v.state;
}

/* One call that ends as o after ms milliseconds; returns whether it was
 * let through. */
static int
call(jt_call_outcome o, int64_t ms)
{
    jt_breaker_permit p = jt_breaker_acquire(&b, &conf, now);
    if (!p.allowed) {
        return 0;
    }
    jt_breaker_record(&b, &conf, &p, o, ms, now);
    return 1;
}

static int
calls(int n, jt_call_outcome o, int64_t ms)
{
    int i, let = 0;
    for (i = 0; i < n; i++) {
        let += call(o, ms);
    }
    return let;
}

static void
fresh(void)
{
    jt_breaker_reset(&b);
    now += 100000;
}

/* Opens the breaker with 50 failures; returns the time it opened. */
static int64_t
open_it(void)
{
    fresh();
    calls(50, JT_CALL_FAILED, 10);
    return now;
}

int
main(void)
{
    jt_breaker_permit p, stale, trials[10];
    jt_breaker_view v;
    int64_t t0;
    int i;

    /* --- CLOSED: the minimum number of calls */
    fresh();
    is_int(calls(49, JT_CALL_FAILED, 10), 49, "49 failures all go through");
    is_int(state(), JT_BREAKER_CLOSED, "49 failures (< min_calls 50): still closed");
    call(JT_CALL_FAILED, 10);
    is_int(state(), JT_BREAKER_OPEN, "the 50th failure opens it (100 %% of 50 calls)");

    /* --- the failure rate: 45 good calls, then failures */
    fresh();
    calls(45, JT_CALL_OK, 10);
    calls(11, JT_CALL_FAILED, 10);
    jt_breaker_inspect(&b, &conf, &v);
    is_int(v.calls, 56, "56 calls in the window");
    is_int(v.failed, 11, "11 of them failed");
    is_int(v.state, JT_BREAKER_CLOSED, "11 of 56 failed (19.6 %%): closed");
    call(JT_CALL_FAILED, 10);
    is_int(state(), JT_BREAKER_OPEN, "12 of 57 (21 %%): open, at exactly the 57th call");

    /* --- the window slides: the oldest call leaves as a new one comes */
    fresh();
    calls(100, JT_CALL_OK, 10);
    calls(19, JT_CALL_FAILED, 10);
    jt_breaker_inspect(&b, &conf, &v);
    is_int(v.calls, 100, "the window holds 100 calls, not 119");
    is_int(v.state, JT_BREAKER_CLOSED, "19 failures in the last 100: closed");
    call(JT_CALL_FAILED, 10);
    is_int(state(), JT_BREAKER_OPEN, "the 20th failure in the last 100 opens it");

    /* --- refusals (4xx, code != 0) are answers, not failures */
    fresh();
    is_int(calls(100, JT_CALL_REFUSED, 10), 100, "100 refusals go through");
    is_int(state(), JT_BREAKER_CLOSED, "100 refusals: closed");
    calls(19, JT_CALL_FAILED, 10);
    is_int(state(), JT_BREAKER_CLOSED, "refusals count as good calls: 19 failures in 100 stay closed");

    /* --- slow calls: slower than slow_ms, whatever the outcome */
    fresh();
    calls(45, JT_CALL_OK, 10);
    calls(4, JT_CALL_OK, 3001);
    call(JT_CALL_OK, 3000);
    jt_breaker_inspect(&b, &conf, &v);
    is_int(v.slow, 4, "a call of exactly slow_ms is not slow");
    is_int(v.state, JT_BREAKER_CLOSED, "4 slow of 50 (8 %%): closed");
    call(JT_CALL_OK, 3001);
    is_int(state(), JT_BREAKER_CLOSED, "5 slow of 51 (9.8 %%): closed");
    call(JT_CALL_REFUSED, 4000);
    is_int(state(), JT_BREAKER_OPEN, "6 slow of 52 (11.5 %%): open, though no call failed");

    /* --- the peek a card checkout makes before any work of its own */
    t0 = open_it();
    is_int(jt_breaker_refusing(&b, &conf, t0 + 1000, 0), 5000, "refusing: open, 5,000 ms left, nothing counted");
    is_int(b.calls_rejected, 0, "a peek without count is not a rejection");
    is_int(jt_breaker_refusing(&b, &conf, t0 + 1000, 1), 5000, "a peek with count: the caller gave the call up");
    is_int(b.calls_rejected, 1, "... counted as rejected");
    is_int(jt_breaker_refusing(&b, &conf, t0 + 6000, 1), 0, "at open_ms: not refusing (the next call is a trial)");
    is_int(state(), JT_BREAKER_OPEN, "and the peek moved nothing: still open");
    fresh();
    is_int(jt_breaker_refusing(&b, &conf, now, 1), 0, "closed: not refusing");

    /* --- OPEN: refused at once for open_ms, then one trial */
    t0 = open_it();
    p = jt_breaker_acquire(&b, &conf, t0 + 1);
    ok(!p.allowed, "open: a call is refused");
    is_int(p.retry_after_ms, 5999, "and told to come back when open_ms is over");
    p = jt_breaker_acquire(&b, &conf, t0 - 5);
    ok(!p.allowed, "open: a clock reading a little earlier than the opening is refused too");
    is_int(b.calls_rejected, 2, "two refusals counted");
    p = jt_breaker_acquire(&b, &conf, t0 + 5999);
    ok(!p.allowed && p.retry_after_ms == 1, "open at open_ms - 1: refused, 1 ms to go");
    p = jt_breaker_acquire(&b, &conf, t0 + 6000);
    ok(p.allowed && p.trial, "at open_ms the next call goes through, as a trial");
    is_int(state(), JT_BREAKER_HALF_OPEN, "half-open");

    /* --- HALF_OPEN: ten trials, the eleventh refused */
    now = t0 + 6000;
    trials[0] = p;
    for (i = 1; i < 10; i++) {
        trials[i] = jt_breaker_acquire(&b, &conf, now);
    }
    ok(trials[9].allowed && trials[9].trial, "ten trials let through");
    p = jt_breaker_acquire(&b, &conf, now);
    ok(!p.allowed, "the eleventh call is refused while the trials run");
    for (i = 0; i < 8; i++) {
        jt_breaker_record(&b, &conf, &trials[i], JT_CALL_OK, 10, now);
    }
    jt_breaker_record(&b, &conf, &trials[8], JT_CALL_FAILED, 10, now);
    is_int(state(), JT_BREAKER_HALF_OPEN, "9 of 10 trials recorded: no verdict yet");
    jt_breaker_record(&b, &conf, &trials[9], JT_CALL_FAILED, 10, now);
    is_int(state(), JT_BREAKER_OPEN, "2 of 10 trials failed (20 %%): open again");
    is_int(b.opened, 2, "opened twice");

    /* second round: one failure in ten closes it */
    now += 6000;
    for (i = 0; i < 10; i++) {
        trials[i] = jt_breaker_acquire(&b, &conf, now);
    }
    ok(trials[0].allowed && trials[9].allowed, "after another open_ms: ten new trials");
    for (i = 0; i < 10; i++) {
        jt_breaker_record(&b, &conf, &trials[i], i == 3 ? JT_CALL_FAILED : JT_CALL_OK, 10, now);
    }
    is_int(state(), JT_BREAKER_CLOSED, "1 of 10 trials failed (10 %%): closed");
    is_int(b.closed, 1, "closed once");

    /* CLOSED again starts from an empty window */
    jt_breaker_inspect(&b, &conf, &v);
    is_int(v.calls, 0, "the new window is empty (the 50 old failures are not in it)");
    calls(49, JT_CALL_FAILED, 10);
    is_int(state(), JT_BREAKER_CLOSED, "49 failures after closing: closed");
    call(JT_CALL_FAILED, 10);
    is_int(state(), JT_BREAKER_OPEN, "the 50th opens it again");

    /* --- slow trials reopen it too */
    t0 = open_it();
    now = t0 + 6000;
    for (i = 0; i < 10; i++) {
        trials[i] = jt_breaker_acquire(&b, &conf, now);
    }
    for (i = 0; i < 10; i++) {
        jt_breaker_record(&b, &conf, &trials[i], JT_CALL_OK, i == 0 ? 3500 : 10, now);
    }
    is_int(state(), JT_BREAKER_OPEN, "1 slow trial of 10 (10 %%): open again");

    /* --- a permit from an earlier state changes nothing */
    fresh();
    stale = jt_breaker_acquire(&b, &conf, now);
    calls(50, JT_CALL_FAILED, 10);
    t0 = now;
    now = t0 + 6000;
    for (i = 0; i < 10; i++) {
        trials[i] = jt_breaker_acquire(&b, &conf, now);
    }
    jt_breaker_record(&b, &conf, &stale, JT_CALL_FAILED, 4000, now);
    jt_breaker_inspect(&b, &conf, &v);
    is_int(v.calls, 0, "a failure granted while closed does not count as a trial");
    for (i = 0; i < 10; i++) {
        jt_breaker_record(&b, &conf, &trials[i], i < 1 ? JT_CALL_FAILED : JT_CALL_OK, 10, now);
    }
    is_int(state(), JT_BREAKER_CLOSED, "the trials alone decide: 1 of 10 failed, closed");
    jt_breaker_record(&b, &conf, &trials[1], JT_CALL_FAILED, 10, now);
    jt_breaker_inspect(&b, &conf, &v);
    is_int(v.calls, 0, "a trial recorded after its round does not enter the new window");

    /* --- a trial lost with its worker: the round restarts after trial_timeout_ms */
    t0 = open_it();
    now = t0 + 6000;
    for (i = 0; i < 10; i++) {
        trials[i] = jt_breaker_acquire(&b, &conf, now);
    }
    for (i = 0; i < 9; i++) {
        jt_breaker_record(&b, &conf, &trials[i], JT_CALL_OK, 10, now);
    }
    p = jt_breaker_acquire(&b, &conf, now + 19999);
    ok(!p.allowed, "one trial unrecorded: refused until trial_timeout_ms");
    p = jt_breaker_acquire(&b, &conf, now + 20000);
    ok(p.allowed && p.trial, "at trial_timeout_ms a new round starts with this call");
    jt_breaker_inspect(&b, &conf, &v);
    is_int(v.calls, 0, "the new round has no recorded trial");
    jt_breaker_record(&b, &conf, &trials[9], JT_CALL_OK, 10, now + 20001);
    jt_breaker_inspect(&b, &conf, &v);
    is_int(v.calls, 0, "the lost trial, recorded late, does not count in it");
    is_int(b.half_opened, 2, "half-opened twice");

    /* --- counters by outcome */
    fresh();
    calls(3, JT_CALL_OK, 10);
    calls(2, JT_CALL_REFUSED, 10);
    calls(1, JT_CALL_FAILED, 5000);
    ok(b.calls_ok == 3 && b.calls_refused == 2 && b.calls_failed == 1 && b.calls_slow == 1,
       "calls counted by outcome: ok 3, refused 2, failed 1, slow 1");

    /* --- a small window */
    {
        jt_breaker_conf small = conf;
        small.window = 10;
        small.min_calls = 5;
        fresh();
        for (i = 0; i < 4; i++) {
            p = jt_breaker_acquire(&b, &small, now);
            jt_breaker_record(&b, &small, &p, JT_CALL_FAILED, 10, now);
        }
        jt_breaker_inspect(&b, &small, &v);
        is_int(v.state, JT_BREAKER_CLOSED, "window 10, min 5: 4 failures, closed");
        p = jt_breaker_acquire(&b, &small, now);
        jt_breaker_record(&b, &small, &p, JT_CALL_FAILED, 10, now);
        jt_breaker_inspect(&b, &small, &v);
        is_int(v.state, JT_BREAKER_OPEN, "the 5th opens it");
    }
    /* --- the bulkhead: at most `limit` places, given back, never leaked */
    fresh();
    {
        int32_t me = (int32_t) getpid(), a, c, d, dead;
        pid_t kid;

        a = jt_breaker_enter(&b, 2, me);
        c = jt_breaker_enter(&b, 2, me);
        ok(a == 0 && c == 1, "limit 2: two places (0 and 1)");
        is_int(jt_breaker_in_flight(&b), 2, "two in flight");
        is_int(jt_breaker_enter(&b, 3, me), 2, "a limit of 3 has one more");
        jt_breaker_leave(&b, 2, me);
        is_int(jt_breaker_enter(&b, 2, me), -1, "a third caller finds no place");
        jt_breaker_leave(&b, a, me);
        is_int(jt_breaker_enter(&b, 2, me), 0, "a place given back is taken again");
        jt_breaker_leave(&b, c, me + 1);
        is_int(jt_breaker_in_flight(&b), 2, "leave by another pid gives nothing back");
        jt_breaker_forget(&b, me);
        is_int(jt_breaker_in_flight(&b), 0, "the master's forget frees every place of a reaped pid");

        /* a holder that died without leaving (not yet reaped by anyone's
         * forget): its place is taken over */
        kid = fork();
        if (kid == 0) {
            _exit(0);
        }
        waitpid(kid, NULL, 0);
        dead = (int32_t) kid;
        d = jt_breaker_enter(&b, 1, dead);
        is_int(d, 0, "a process (now dead) holds the one place");
        is_int(jt_breaker_enter(&b, 1, me), 0, "the next caller takes the dead one's place over");
        jt_breaker_leave(&b, 0, dead);
        is_int(jt_breaker_in_flight(&b), 1, "and the dead one's late leave does not free it");
    }

    return done_testing();
}
