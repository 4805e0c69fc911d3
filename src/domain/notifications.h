/* Notifications: what each event tells its recipient (domain/events.h),
 * recorded by the notification consumers (server/notifier.c) and read by
 * the user.
 *
 * Exactly once per (event, recipient), however often an event arrives: a
 * redelivery by the stream, a reclaim of a dead consumer's entries, the
 * sweep of events Redis lost, two consumers at once. The unique key
 * (event_id, user_id) is the guarantee: the insert of a second copy is a
 * no-op (ON DUPLICATE KEY), and a concurrent first copy makes it wait for
 * that transaction, then a no-op. An event is "consumed" exactly when its
 * notifications are committed; the stream entries are acknowledged only
 * after that COMMIT, so an entry whose transaction failed is delivered
 * again. */
#ifndef JT_NOTIFICATIONS_H
#define JT_NOTIFICATIONS_H

#include <stdint.h>

#include "core/arena.h"
#include "core/config.h"
#include "domain/events.h"
#include "http/request.h"
#include "store/tx.h"

struct jt_db;

/* GET /api/v1/users/{userId}/notifications?cursor=&limit=&unread= */
jt_err notifications_list(jt_req *r);
/* POST /api/v1/users/{userId}/notifications/{notificationId}/read */
jt_err notifications_read(jt_req *r);

/* Records the notifications of events ids[0..n-1] (outbox ids) in one
 * transaction; *created counts the rows that were new. JT_TX_OK when
 * committed (the caller may then acknowledge every one of them). copies:
 * NULL, or the stream entries' copies of the events (in the same order);
 * when every one has its copy and its recipient, the events are not read
 * from MariaDB. */
jt_tx_rc notifications_record(const jt_conf *c, struct jt_db *db, jt_arena *a, const int64_t *ids, int n,
                              const jt_event_copy *copies, int64_t *created);
/* The sweep for events published [events] lost_after ago that no
 * notification consumer recorded (their stream entries were lost):
 * events_lost() with it. */
void notifications_lost_sweep(jt_event_sweep *sw);

#endif
