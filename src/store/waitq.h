/* A deadline queue in Redis: requests that wait for a busy lock line up
 * here, and the holder of the lock takes them (domain/combine.c runs a hot
 * product's queued orders in one transaction this way).
 *
 * An entry is the element "DEADLINE|ID" of the list `queue`, its payload
 * (what the request wants done) in wq:p:ID and its answer, once there is
 * one, in the list wq:r:ID. DEADLINE is Redis's own clock (TIME), so every
 * host and process compares one clock.
 *
 * The promise: an entry is executed exactly once and its waiter hears the
 * result, or it is never executed and its waiter is told so. It rests on
 * three atomic scripts over the one list:
 *   - withdraw (the waiter, at its deadline): LREM of its element. 1: it was
 *     still queued and now never runs; 0: a leader took it, and an answer
 *     will follow (or the leader died with the batch uncommitted: no answer,
 *     nothing done).
 *   - claim (a leader): LPOP up to n elements; one whose deadline has passed
 *     (or whose payload expired) is not taken: its waiter gets the answer
 *     "X" (not executed) in the same script, so it never waits for a leader
 *     that will not come.
 *   - requeue (a leader that cannot run a taken entry now): LPUSH it back at
 *     the head, deadline unchanged.
 * A waiter that withdrew cannot be claimed (its element is gone), and a
 * claimed one cannot be withdrawn: LREM and LPOP of one element exclude each
 * other in Redis's single thread. */
#ifndef JT_WAITQ_H
#define JT_WAITQ_H

#include <stdint.h>

#include "core/arena.h"
#include "store/lock.h"
#include "store/redis.h"

#define JT_WAITQ_MAX_CLAIM 64

typedef struct {
    char id[33];
    char element[64];       /* as queued: "DEADLINE|ID" */
    char reply_key[48];
    char payload_key[48];
    int queued;             /* LOCKED: the queue held entries at the join */
} jt_waitq_entry;

typedef struct {
    const char *element;
    const char *id;
    const char *payload;
    const char *reply_key;
    const char *payload_key;
} jt_waitq_item;

typedef enum {
    JT_WAITQ_OK = 0,
    JT_WAITQ_DOWN          /* Redis unreachable */
} jt_waitq_rc;

/* Take the locks, or queue: in one round trip, every key of locks (at
 * most 4, in order) is taken with token for lease_ms if all are free, and
 * then nothing is queued (LOCKED); otherwise none is kept and e (with a
 * fresh random id unless e->id is set) is queued with payload, due within
 * wait_ms, its keys living ttl_ms (QUEUED); *first_free tells whether
 * locks[0] alone was free (someone may lead at once). When LOCKED,
 * e->queued says whether anybody was queued at that moment: when nobody
 * was, there is nothing to claim, and whoever queues later is woken by the
 * release (store/lock.h) and leads, exactly as one who queues during the
 * holder's transaction always is. */
typedef enum { JT_WAITQ_JOIN_LOCKED = 0, JT_WAITQ_JOIN_QUEUED, JT_WAITQ_JOIN_DOWN } jt_waitq_join_rc;
jt_waitq_join_rc jt_waitq_join(jt_redis *r, jt_arena *a, const char *queue, jt_waitq_entry *e, const char *payload,
                               int64_t wait_ms, int64_t ttl_ms, const char *const *locks, int nlocks,
                               const char *token, int64_t lease_ms, int *first_free);

/* 1: withdrawn (it will never run); 0: a leader took it; -1: Redis down. */
int jt_waitq_withdraw(jt_redis *r, jt_arena *a, const char *queue, const jt_waitq_entry *e);

/* Takes up to max (<= JT_WAITQ_MAX_CLAIM) live entries, oldest first, into
 * out; the number taken, or -1 when Redis is down. */
int jt_waitq_claim(jt_redis *r, jt_arena *a, const char *queue, int max, int64_t reply_ttl_ms, jt_waitq_item *out);

/* Puts taken entries back at the head of the queue, in their order. */
jt_waitq_rc jt_waitq_requeue(jt_redis *r, jt_arena *a, const char *queue, const jt_waitq_item *items, int n);

/* Answers taken entries (answers[i] for items[i]) and drops their payloads;
 * then, in the same round trip, releases ls (NULL: none) as
 * jt_lock_release_all does. */
jt_waitq_rc jt_waitq_answer(jt_redis *r, jt_arena *a, const jt_waitq_item *const *items, const char *const *answers,
                            int n, int64_t ttl_ms, jt_lockset *ls);

typedef enum {
    JT_WAITQ_ANSWERED = 0,  /* *answer is set */
    JT_WAITQ_WOKEN,         /* the lock's wake list fired: try to lead */
    JT_WAITQ_QUIET,         /* nothing within ms */
    JT_WAITQ_GONE           /* Redis unreachable */
} jt_waitq_wait;

/* e's answer if it is there now, without waiting: 1 (*answer set), 0 none,
 * -1 Redis unreachable. */
int jt_waitq_answer_now(jt_redis *r, jt_arena *a, const jt_waitq_entry *e, const char **answer);

/* Waits up to ms for e's answer or a token on wake_key. */
jt_waitq_wait jt_waitq_await(jt_redis *r, jt_arena *a, const jt_waitq_entry *e, const char *wake_key, int64_t ms,
                             const char **answer);

#endif
