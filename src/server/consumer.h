/* A bid consumer: reads queued bids from the Redis Stream as one member of
 * a consumer group, applies each (domain/bids.c), acknowledges it after
 * COMMIT, reclaims entries left pending by a consumer that died, and sweeps
 * PENDING receipts whose stream entry was lost. */
#ifndef JT_CONSUMER_H
#define JT_CONSUMER_H

#include "core/config.h"

void jt_consumer_run(const jt_conf *c, int slot) __attribute__((noreturn));

#endif
