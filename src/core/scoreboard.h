/* The scoreboard: one shared anonymous mapping created by the master before
 * it forks. Each worker writes only its own slot; the master and /status
 * read all of them. Counters shared by all workers are updated atomically. */
#ifndef JT_SCOREBOARD_H
#define JT_SCOREBOARD_H

#include <stdint.h>
#include <sys/types.h>

enum { JT_SLOT_FREE = 0, JT_SLOT_STARTING, JT_SLOT_IDLE, JT_SLOT_BUSY, JT_SLOT_EXITING };

/* what a process of the daemon's tree is (server/master.c keeps each
 * kind at its configured number) */
enum {
    JT_KIND_WORKER = 0,
    JT_KIND_CONSUMER,     /* bids */
    JT_KIND_SCHEDULER,    /* the order lifecycle's sweeps */
    JT_KIND_RELAY,        /* outbox -> stream */
    JT_KIND_NOTIFIER,     /* events -> notifications */
    JT_KIND_HOOKS,        /* events -> webhook calls */
    JT_KIND_SWEEPER,      /* card payments and refunds left unsettled */
    JT_KIND__COUNT
};

typedef struct {
    pid_t    pid;
    int      state;
    int      kind;             /* JT_KIND_* */
    uint32_t generation;
    int64_t  started_at;       /* wall clock, s */
    uint64_t requests;
    int64_t  req_start_us;     /* monotonic, 0 when idle */
    int64_t  last_duration_us;
    char     method[8];
    char     uri[200];
    char     request_id[72];
    int32_t  leading;          /* orders in the batch it is committing now, 0 if none */
} jt_slot;

typedef struct {
    int64_t  start_time;           /* wall clock, s */
    uint64_t accepted;
    uint64_t slow_requests;
    uint64_t max_children_reached;
    uint64_t max_active;
    uint64_t timeout_kills;
    uint64_t worker_starts;
    uint64_t abnormal_exits;
    uint64_t recycles;
    int64_t  busy;                 /* workers serving a request now */
    int      configured_workers;
    int      nslots;
    jt_slot  slots[];
} jt_scoreboard;

jt_scoreboard *jt_scoreboard_create(int nslots);
jt_scoreboard *jt_scoreboard_get(void);
/* This process's own slot (set by a worker when it starts), or NULL. */
jt_slot       *jt_scoreboard_self(void);
void           jt_scoreboard_set_self(jt_slot *s);
int            jt_scoreboard_alloc_slot(jt_scoreboard *sb);   /* -1 when full */
void           jt_scoreboard_count(jt_scoreboard *sb, int *active, int *idle, int *total);

#define JT_SB_INC(field) __atomic_fetch_add(&(field), 1, __ATOMIC_RELAXED)

#endif
