/* The payment sweeper: a process in the daemon's tree, supervised by the
 * master like the bid consumers (respawned when it dies, stopped with the
 * pool, a new one per generation on reload). Every sweep_interval_ms it
 * runs one sweep (domain/payments.h: expired holds, checkouts whose request
 * died, refunds still due). Any number of them, on any number of hosts,
 * may sweep at once: payments.h says why that is safe. */
#ifndef JT_SWEEPER_H
#define JT_SWEEPER_H

#include "core/config.h"

void jt_sweeper_run(const jt_conf *c, int slot) __attribute__((noreturn));

#endif
