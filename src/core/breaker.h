/* A circuit breaker shared by every worker: one anonymous shared mapping
 * made by the master before it forks (a process-local one otherwise, e.g.
 * in the admin tool), so all workers see one gateway's health.
 *
 * The state machine (Resilience4j's, count-based):
 *
 *   CLOSED     every call goes through. Each finished call is written into
 *              a ring of the last `window` calls. When the ring holds at
 *              least `min_calls` calls of this CLOSED period and either
 *              failed * 100 >= failure_rate * calls, or
 *              slow   * 100 >= slow_rate * calls       -> OPEN.
 *   OPEN       every call is refused at once (no I/O) for `open_ms`; the
 *              first call after that becomes the first trial  -> HALF_OPEN.
 *   HALF_OPEN  `half_open_calls` trial calls go through, the rest are
 *              refused. When all trials are recorded, the same two rates
 *              over the trials decide: reached -> OPEN, else -> CLOSED
 *              (with an empty ring). A round whose trials are all out
 *              but whose verdict has not come `trial_timeout_ms` after it
 *              began (a worker holding a trial was killed) is started
 *              again by the next call, which becomes its first trial.
 *
 * A failure is a call the gateway did not answer properly: no connection,
 * a reset, a timeout, a 5xx, an answer that is not PortOne's JSON. A 4xx or
 * a `code != 0` refusal is an answer from a healthy gateway: it counts as
 * a good call. A slow call is one slower than `slow_ms`, whatever its end.
 *
 * Why concurrent workers may update it without a lock (a worker can be
 * SIGKILLed anywhere, so a lock could be left held forever):
 *
 *  - Everything a transition reads and writes lives in one 64-bit word:
 *    the state, an epoch that every transition increments, and the trial
 *    counters (issued, recorded, failed, slow). Each transition and each
 *    trial grant or record is one compare-and-swap on that word, so two
 *    workers can never both move the breaker from the same state: the
 *    loser reloads and sees the new state.
 *  - Every permit carries the epoch it was granted in, and a record with
 *    an older epoch changes no state (only the counters /metrics shows).
 *    So a slow call granted while CLOSED that ends while HALF_OPEN can
 *    neither pass for a trial nor reopen the breaker, and a trial of a
 *    finished round cannot count in the next one.
 *  - Ring slots are tagged with the epoch of the CLOSED period they were
 *    recorded in, and the rates count only slots of the current epoch.
 *    Entering CLOSED therefore empties the window without touching the
 *    ring, and a record racing the transition writes a slot nobody counts.
 *    Two records that land together both scan the ring and may both ask
 *    to open; the CAS lets one through.
 *  - The time a state began is a second word, tagged with the epoch it
 *    belongs to. The CAS winner stamps it just after its CAS; a caller that
 *    finds a stamp of an older epoch (the winner has not got there yet, or
 *    was killed in between) stamps it with its own clock. Both stamp with a
 *    CAS from the old value, so the first stamp stays and none is later
 *    overwritten. Every stamp is a clock reading taken just around the
 *    transition by a caller that saw it, and an age below zero (another
 *    worker's later reading) counts as zero: OPEN lasts open_ms, never
 *    half-opens early, and cannot stay open for ever.
 *  - A SIGKILL between two steps loses at most one ring slot (one call not
 *    judged) or one trial record; a trial round that lost one restarts
 *    after trial_timeout_ms.
 *
 * Every function takes the time (CLOCK_MONOTONIC milliseconds) from the
 * caller, so the unit tests drive the machine with a clock of their own.
 *
 * Beside the breaker, a bulkhead: at most `limit` workers inside a gateway
 * call at once (the places are pid cells in the same shared page), so a
 * gateway that hangs holds a bounded number of workers for its timeouts
 * and the rest keep serving everything else, long before the breaker has
 * seen enough calls to open. A place is taken with a CAS from 0 to the
 * caller's pid and given back with a store of 0. A worker killed inside a
 * call would keep its place: the master gives back the places of every
 * child it reaps (jt_breaker_forget, before its pid can be reused), and a
 * caller that finds every place taken also takes over one whose holder no
 * longer exists (kill(pid, 0) fails with ESRCH), so places never leak. Two
 * callers racing for the last free place: one CAS wins, the other finds
 * none, waits a little for one (store/pg.c: in_flight_wait_ms, as a healthy
 * gateway frees places in milliseconds) and is then refused (crowded),
 * which is the limit doing its job. */
#ifndef JT_BREAKER_H
#define JT_BREAKER_H

#include <stdint.h>

#define JT_BREAKER_MAX_WINDOW 1000
#define JT_BREAKER_MAX_IN_FLIGHT 64

enum { JT_BREAKER_CLOSED = 0, JT_BREAKER_OPEN = 1, JT_BREAKER_HALF_OPEN = 2 };

typedef enum {
    JT_CALL_OK = 0,        /* answered, code 0 */
    JT_CALL_REFUSED,       /* answered: a 4xx or code != 0; not a failure */
    JT_CALL_FAILED         /* no proper answer */
} jt_call_outcome;

typedef struct {
    int64_t window;            /* calls judged, <= JT_BREAKER_MAX_WINDOW */
    int64_t min_calls;
    int64_t failure_rate;      /* percent */
    int64_t slow_rate;         /* percent */
    int64_t slow_ms;
    int64_t open_ms;
    int64_t half_open_calls;   /* <= 255 */
    int64_t trial_timeout_ms;  /* a trial round with no verdict by then restarts */
} jt_breaker_conf;

typedef struct {
    uint64_t word;             /* state | trial counters | epoch, see breaker.c */
    uint64_t since;            /* epoch tag << 48 | ms the state began */
    uint64_t pos;              /* ring slots handed out */
    uint32_t ring[JT_BREAKER_MAX_WINDOW];
    /* what /metrics shows: calls by outcome, and transitions */
    uint64_t calls_ok;
    uint64_t calls_refused;
    uint64_t calls_failed;
    uint64_t calls_slow;
    uint64_t calls_rejected;   /* not let through */
    uint64_t calls_crowded;    /* not let through: every in-flight place stayed taken */
    int32_t  in_flight[JT_BREAKER_MAX_IN_FLIGHT];   /* the bulkhead: holders' pids, 0 = free */
    uint64_t opened;
    uint64_t half_opened;
    uint64_t closed;
} jt_breaker;

typedef struct {
    int      allowed;
    int      trial;            /* a half-open trial */
    uint32_t epoch;
    int64_t  retry_after_ms;   /* when refused: when to try again */
} jt_breaker_permit;

typedef struct {
    int     state;
    int64_t since_ms;          /* -1 when not yet known */
    int64_t calls, failed, slow;   /* in the window (CLOSED) or among the trials */
} jt_breaker_view;

/* The process's breaker: shared once jt_breaker_init_shared ran (master,
 * before forking), process-local otherwise. */
int         jt_breaker_init_shared(int64_t now_ms);
jt_breaker *jt_breaker_get(void);
void        jt_breaker_reset(jt_breaker *b);

/* May a call go out now? Every allowed permit must be recorded exactly
 * once with jt_breaker_record, however the call ends. */
jt_breaker_permit jt_breaker_acquire(jt_breaker *b, const jt_breaker_conf *c, int64_t now_ms);
void jt_breaker_record(jt_breaker *b, const jt_breaker_conf *c, const jt_breaker_permit *p,
                       jt_call_outcome o, int64_t duration_ms, int64_t now_ms);
/* Would acquire refuse a call now? 0 when a call would go through (or be
 * a trial), else the milliseconds until one may; with `count`, a refusal
 * is counted as rejected, as acquire counts it (the caller gives the call
 * up). Takes no permit and makes no transition,
 * so a caller can fail fast before any work of its own (a card checkout
 * reserves no stock while the breaker is open). */
int64_t jt_breaker_refusing(jt_breaker *b, const jt_breaker_conf *c, int64_t now_ms, int count);
void jt_breaker_inspect(jt_breaker *b, const jt_breaker_conf *c, jt_breaker_view *v);

/* The bulkhead. enter: a place among the first `limit` for pid, or -1
 * when all are held by live processes (the caller may wait and try again,
 * and counts calls_crowded when it gives up); leave gives it back. forget:
 * the master's, for a child it reaped. in_flight: places held now. */
int  jt_breaker_enter(jt_breaker *b, int limit, int32_t pid);
void jt_breaker_leave(jt_breaker *b, int place, int32_t pid);
void jt_breaker_forget(jt_breaker *b, int32_t pid);
int  jt_breaker_in_flight(jt_breaker *b);
const char *jt_breaker_state_name(int state);

#endif
