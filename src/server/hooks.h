/* A webhook consumer: a member of the consumer group `webhooks` on the
 * stream `events` that turns each event into the deliveries of the
 * webhooks that want it (a batch per transaction, acknowledged after
 * COMMIT), and makes the calls: up to [events] webhook_concurrency at
 * once with libcurl's multi interface, at most webhook_per_receiver to
 * one receiver, each bounded by webhook_connect_timeout_ms and
 * webhook_timeout_ms, so a receiver that hangs holds a few calls of its
 * own and nothing else
 * (domain/webhooks.h says how a delivery is claimed and recorded once). */
#ifndef JT_HOOKS_H
#define JT_HOOKS_H

#include "core/config.h"

void jt_hooks_run(const jt_conf *c, int slot) __attribute__((noreturn));

#endif
