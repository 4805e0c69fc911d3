#include "core/breaker.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

#include "core/metrics.h"

/* The state word, from the low bits up:
 *   2  state          8  trials issued     8  trials recorded
 *   8  trials failed  8  trials slow      30  epoch */
#define W_STATE(w)    ((int) ((w) & 3))
#define W_ISSUED(w)   ((int) (((w) >> 2) & 0xff))
#define W_DONE(w)     ((int) (((w) >> 10) & 0xff))
#define W_FAILED(w)   ((int) (((w) >> 18) & 0xff))
#define W_SLOW(w)     ((int) (((w) >> 26) & 0xff))
#define W_EPOCH(w)    ((uint32_t) ((w) >> 34))
#define EPOCH_MASK    0x3fffffffu

#define W_MAKE(state, issued, done, failed, slow, epoch)                                          \
    ((uint64_t) (state) | (uint64_t) (issued) << 2 | (uint64_t) (done) << 10                      \
     | (uint64_t) (failed) << 18 | (uint64_t) (slow) << 26 | (uint64_t) ((epoch) & EPOCH_MASK) << 34)

/* The time stamp: 16-bit epoch tag over 48 bits of milliseconds. */
#define S_TAG(e)      ((uint64_t) ((e) & 0xffff) << 48)
#define S_MS_MASK     ((UINT64_C(1) << 48) - 1)

/* A ring slot: 28-bit epoch tag, a "used" bit, slow, failed; 0 = empty. */
#define R_FAILED      1u
#define R_SLOW        2u
#define R_USED        4u
#define R_TAG(e)      (((uint32_t) (e) & 0x0fffffffu) << 3)
#define R_TAG_MASK    (~(uint32_t) 7)

static jt_breaker local_breaker;
static jt_breaker *breaker = &local_breaker;

int
jt_breaker_init_shared(int64_t now_ms)
{
    jt_breaker *p = jt_shared_zalloc(sizeof(jt_breaker));
    if (p == NULL) {
        return -1;
    }
    p->since = S_TAG(0) | ((uint64_t) now_ms & S_MS_MASK);
    breaker = p;
    return 0;
}

jt_breaker *
jt_breaker_get(void)
{
    return breaker;
}

void
jt_breaker_reset(jt_breaker *b)
{
    memset(b, 0, sizeof(*b));
}

const char *
jt_breaker_state_name(int state)
{
    switch (state) {
    case JT_BREAKER_OPEN:      return "open";
    case JT_BREAKER_HALF_OPEN: return "half_open";
    default:                   return "closed";
    }
}

static int64_t
window_of(const jt_breaker_conf *c)
{
    if (c->window < 1) {
        return 1;
    }
    return c->window > JT_BREAKER_MAX_WINDOW ? JT_BREAKER_MAX_WINDOW : c->window;
}

static int
rates_reached(const jt_breaker_conf *c, int64_t calls, int64_t failed, int64_t slow)
{
    return failed * 100 >= c->failure_rate * calls || slow * 100 >= c->slow_rate * calls;
}

/* Stamps the start of the state of epoch e, unless it already is. */
static void
stamp(jt_breaker *b, uint32_t e, int64_t now_ms)
{
    uint64_t old = __atomic_load_n(&b->since, __ATOMIC_ACQUIRE);

    while ((old & ~S_MS_MASK) != S_TAG(e)) {
        uint64_t want = S_TAG(e) | ((uint64_t) now_ms & S_MS_MASK);
        if (__atomic_compare_exchange_n(&b->since, &old, want, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            return;
        }
    }
}

/* Milliseconds since the state of epoch e began (stamping it now if the
 * transition's winner has not yet). */
static int64_t
age(jt_breaker *b, uint32_t e, int64_t now_ms)
{
    uint64_t s, d;

    stamp(b, e, now_ms);
    s = __atomic_load_n(&b->since, __ATOMIC_ACQUIRE);
    d = ((uint64_t) now_ms - s) & S_MS_MASK;
    /* another worker's clock reading may be a little later than ours: a
     * negative age is "just now", never "long ago" */
    return d >= (UINT64_C(1) << 47) ? 0 : (int64_t) d;
}

/* Moves from word `from` to `to` (a new epoch); the one caller whose CAS
 * succeeds stamps the time and counts the transition. */
static int
transition(jt_breaker *b, uint64_t *from, uint64_t to, int64_t now_ms)
{
    if (!__atomic_compare_exchange_n(&b->word, from, to, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        return 0;
    }
    stamp(b, W_EPOCH(to), now_ms);
    switch (W_STATE(to)) {
    case JT_BREAKER_OPEN:      __atomic_fetch_add(&b->opened, 1, __ATOMIC_RELAXED); break;
    case JT_BREAKER_HALF_OPEN: __atomic_fetch_add(&b->half_opened, 1, __ATOMIC_RELAXED); break;
    default:                   __atomic_fetch_add(&b->closed, 1, __ATOMIC_RELAXED); break;
    }
    return 1;
}

jt_breaker_permit
jt_breaker_acquire(jt_breaker *b, const jt_breaker_conf *c, int64_t now_ms)
{
    jt_breaker_permit p = { 0, 0, 0, 0 };
    uint64_t w = __atomic_load_n(&b->word, __ATOMIC_ACQUIRE);

    for (;;) {
        uint32_t e = W_EPOCH(w);
        int64_t a;

        switch (W_STATE(w)) {
        case JT_BREAKER_CLOSED:
            p.allowed = 1;
            p.epoch = e;
            return p;

        case JT_BREAKER_OPEN:
            a = age(b, e, now_ms);
            if (a < c->open_ms) {
                p.retry_after_ms = c->open_ms - a;
                goto refused;
            }
            /* the first call after open_ms is the first trial */
            if (transition(b, &w, W_MAKE(JT_BREAKER_HALF_OPEN, 1, 0, 0, 0, e + 1), now_ms)) {
                p.allowed = p.trial = 1;
                p.epoch = (e + 1) & EPOCH_MASK;
                return p;
            }
            continue;   /* w now holds the word another worker made */

        case JT_BREAKER_HALF_OPEN:
            if (W_ISSUED(w) < c->half_open_calls) {
                uint64_t next = w + ((uint64_t) 1 << 2);
                if (__atomic_compare_exchange_n(&b->word, &w, next, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                    p.allowed = p.trial = 1;
                    p.epoch = e;
                    return p;
                }
                continue;
            }
            /* every trial is out: wait for the verdict, unless one was
             * lost with its worker, then start the round again */
            a = age(b, e, now_ms);
            if (a >= c->trial_timeout_ms) {
                if (transition(b, &w, W_MAKE(JT_BREAKER_HALF_OPEN, 1, 0, 0, 0, e + 1), now_ms)) {
                    p.allowed = p.trial = 1;
                    p.epoch = (e + 1) & EPOCH_MASK;
                    return p;
                }
                continue;
            }
            p.retry_after_ms = c->trial_timeout_ms - a;
            goto refused;

        default:
            goto refused;
        }
    }

refused:
    if (p.retry_after_ms < 1) {
        p.retry_after_ms = 1;
    }
    __atomic_fetch_add(&b->calls_rejected, 1, __ATOMIC_RELAXED);
    return p;
}

int64_t
jt_breaker_refusing(jt_breaker *b, const jt_breaker_conf *c, int64_t now_ms, int count)
{
    uint64_t w = __atomic_load_n(&b->word, __ATOMIC_ACQUIRE);
    int64_t a, left = 0;

    switch (W_STATE(w)) {
    case JT_BREAKER_OPEN:
        a = age(b, W_EPOCH(w), now_ms);
        left = a < c->open_ms ? c->open_ms - a : 0;
        break;
    case JT_BREAKER_HALF_OPEN:
        if (W_ISSUED(w) >= c->half_open_calls) {
            a = age(b, W_EPOCH(w), now_ms);
            left = a < c->trial_timeout_ms ? c->trial_timeout_ms - a : 0;
        }
        break;
    default:
        break;
    }
    if (left > 0 && count) {
        __atomic_fetch_add(&b->calls_rejected, 1, __ATOMIC_RELAXED);
    }
    return left;
}

static int
places(int limit)
{
    return limit < 1 ? 1 : limit > JT_BREAKER_MAX_IN_FLIGHT ? JT_BREAKER_MAX_IN_FLIGHT : limit;
}

static int
gone(int32_t pid)
{
    return pid > 0 && kill((pid_t) pid, 0) != 0 && errno == ESRCH;
}

int
jt_breaker_enter(jt_breaker *b, int limit, int32_t pid)
{
    int i, n = places(limit);

    for (i = 0; i < n; i++) {
        int32_t free_cell = 0;
        if (__atomic_compare_exchange_n(&b->in_flight[i], &free_cell, pid, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            return i;
        }
    }
    /* all taken: one whose holder died (and was not reaped yet) is ours */
    for (i = 0; i < n; i++) {
        int32_t holder = __atomic_load_n(&b->in_flight[i], __ATOMIC_ACQUIRE);
        if (gone(holder)
            && __atomic_compare_exchange_n(&b->in_flight[i], &holder, pid, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            return i;
        }
    }
    return -1;
}

void
jt_breaker_leave(jt_breaker *b, int place, int32_t pid)
{
    int32_t me = pid;

    if (place >= 0 && place < JT_BREAKER_MAX_IN_FLIGHT) {
        /* only our own: a place taken over after we were presumed dead stays theirs */
        __atomic_compare_exchange_n(&b->in_flight[place], &me, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
    }
}

void
jt_breaker_forget(jt_breaker *b, int32_t pid)
{
    int i;

    for (i = 0; i < JT_BREAKER_MAX_IN_FLIGHT; i++) {
        int32_t holder = pid;
        __atomic_compare_exchange_n(&b->in_flight[i], &holder, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
    }
}

int
jt_breaker_in_flight(jt_breaker *b)
{
    int i, n = 0;

    for (i = 0; i < JT_BREAKER_MAX_IN_FLIGHT; i++) {
        n += __atomic_load_n(&b->in_flight[i], __ATOMIC_RELAXED) != 0;
    }
    return n;
}

/* Counts the current CLOSED period's calls in the ring. */
static void
scan(jt_breaker *b, const jt_breaker_conf *c, uint32_t e, int64_t *calls, int64_t *failed, int64_t *slow)
{
    int64_t i, n = 0, f = 0, s = 0, win = window_of(c);
    uint32_t tag = R_TAG(e) | R_USED;

    for (i = 0; i < win; i++) {
        uint32_t v = __atomic_load_n(&b->ring[i], __ATOMIC_RELAXED);
        if ((v & (R_TAG_MASK | R_USED)) == tag) {
            n++;
            f += (v & R_FAILED) != 0;
            s += (v & R_SLOW) != 0;
        }
    }
    *calls = n;
    *failed = f;
    *slow = s;
}

void
jt_breaker_record(jt_breaker *b, const jt_breaker_conf *c, const jt_breaker_permit *p,
                  jt_call_outcome o, int64_t duration_ms, int64_t now_ms)
{
    int failed = o == JT_CALL_FAILED, slow = duration_ms > c->slow_ms;
    uint64_t w;

    if (!p->allowed) {
        return;
    }
    switch (o) {
    case JT_CALL_OK:      __atomic_fetch_add(&b->calls_ok, 1, __ATOMIC_RELAXED); break;
    case JT_CALL_REFUSED: __atomic_fetch_add(&b->calls_refused, 1, __ATOMIC_RELAXED); break;
    default:              __atomic_fetch_add(&b->calls_failed, 1, __ATOMIC_RELAXED); break;
    }
    if (slow) {
        __atomic_fetch_add(&b->calls_slow, 1, __ATOMIC_RELAXED);
    }

    w = __atomic_load_n(&b->word, __ATOMIC_ACQUIRE);
    if (W_EPOCH(w) != p->epoch) {
        return;    /* granted in a state that has since ended */
    }

    if (W_STATE(w) == JT_BREAKER_CLOSED && !p->trial) {
        int64_t calls, nfailed, nslow;
        uint64_t i = __atomic_fetch_add(&b->pos, 1, __ATOMIC_RELAXED) % (uint64_t) window_of(c);

        __atomic_store_n(&b->ring[i], R_TAG(p->epoch) | R_USED | (slow ? R_SLOW : 0) | (failed ? R_FAILED : 0),
                         __ATOMIC_RELAXED);
        scan(b, c, p->epoch, &calls, &nfailed, &nslow);
        if (calls >= c->min_calls && rates_reached(c, calls, nfailed, nslow)) {
            /* fails harmlessly if another worker moved it first */
            (void) transition(b, &w, W_MAKE(JT_BREAKER_OPEN, 0, 0, 0, 0, p->epoch + 1), now_ms);
        }
        return;
    }

    while (W_STATE(w) == JT_BREAKER_HALF_OPEN && p->trial && W_EPOCH(w) == p->epoch) {
        int done = W_DONE(w) + 1, nf = W_FAILED(w) + failed, ns = W_SLOW(w) + slow;
        uint64_t next;

        if (done >= c->half_open_calls) {
            int verdict = rates_reached(c, done, nf, ns) ? JT_BREAKER_OPEN : JT_BREAKER_CLOSED;
            if (transition(b, &w, W_MAKE(verdict, 0, 0, 0, 0, p->epoch + 1), now_ms)) {
                return;
            }
            continue;
        }
        next = W_MAKE(JT_BREAKER_HALF_OPEN, W_ISSUED(w), done, nf, ns, p->epoch);
        if (__atomic_compare_exchange_n(&b->word, &w, next, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            return;
        }
    }
}

void
jt_breaker_inspect(jt_breaker *b, const jt_breaker_conf *c, jt_breaker_view *v)
{
    uint64_t w = __atomic_load_n(&b->word, __ATOMIC_ACQUIRE);
    uint64_t s = __atomic_load_n(&b->since, __ATOMIC_ACQUIRE);

    v->state = W_STATE(w);
    /* 0: never stamped (a process-local breaker no call has moved) */
    v->since_ms = s != 0 && (s & ~S_MS_MASK) == S_TAG(W_EPOCH(w)) ? (int64_t) (s & S_MS_MASK) : -1;
    if (v->state == JT_BREAKER_CLOSED) {
        scan(b, c, W_EPOCH(w), &v->calls, &v->failed, &v->slow);
    } else if (v->state == JT_BREAKER_HALF_OPEN) {
        v->calls = W_DONE(w);
        v->failed = W_FAILED(w);
        v->slow = W_SLOW(w);
    } else {
        v->calls = v->failed = v->slow = 0;
    }
}
