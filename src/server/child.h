/* What every process of the daemon's tree that is not a FastCGI worker
 * shares (the bid consumers, the scheduler, the relay, the event
 * consumers): its signals, its scoreboard slot and how it leaves.
 *
 *   QUIT, HUP  finish the step in hand, then leave (graceful stop, reload)
 *   TERM, INT  leave now (their default action)
 *
 * Each such process is one loop of bounded steps that checks
 * jt_child_quitting() between them; it never blocks longer than a second
 * or so on anything but its own bounded calls. */
#ifndef JT_CHILD_H
#define JT_CHILD_H

#include "core/arena.h"
#include "core/config.h"
#include "store/db.h"
#include "store/redis.h"

/* Signals, the slot's start time and state, and what /status shows for
 * the process (label, at most 7 characters). */
void jt_child_setup(int slot, const char *label);
int  jt_child_quitting(void);

/* A copy of the settings for a process whose Redis commands block for up
 * to block_ms (XREADGROUP): the command timeout must outlast the block. */
void jt_child_conf(jt_conf *out, const jt_conf *c, int64_t block_ms);

/* A process's own arena and connections, on settings c (which must
 * outlive them); it exits when there is no memory for the arena. */
typedef struct {
    jt_arena arena;
    jt_db    db;
    jt_redis redis;
} jt_child_res;

void jt_child_open(jt_child_res *res, const jt_conf *c);
/* Closes them and leaves (the sanitizer build checks for leaks first). */
void jt_child_close(jt_child_res *res) __attribute__((noreturn));

#endif
