/* The scheduler: a process in the daemon's tree that runs one sweep of the
 * order lifecycle (domain/lifecycle.h) every [lifecycle] sweep_interval
 * seconds. Safe beside another host's scheduler and with Redis down: the
 * sweep lock only saves the second host the work, every move is fenced by
 * the order's version. Sites that prefer a timer set scheduler = no and
 * run `jangteo-admin sweep` (conf/systemd/jangteo-sweep.timer). */
#ifndef JT_SCHEDULER_H
#define JT_SCHEDULER_H

#include "core/config.h"

void jt_scheduler_run(const jt_conf *c, int slot) __attribute__((noreturn));

#endif
