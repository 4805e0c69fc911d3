/* A notification consumer: a member of the consumer group `notifiers` on
 * the stream `events` (server/stream.h) that records each event's
 * notifications, a batch per transaction, and acknowledges the batch after
 * COMMIT (domain/notifications.h: exactly once per event and recipient).
 * Every second it also takes, from MariaDB, events published [events]
 * lost_after ago that no notifier recorded: the ones Redis lost. */
#ifndef JT_NOTIFIER_H
#define JT_NOTIFIER_H

#include "core/config.h"

void jt_notifier_run(const jt_conf *c, int slot) __attribute__((noreturn));

#endif
