/* A member of a consumer group on the Redis Stream `events` (the relay
 * publishes to it, server/relay.c): what the notification and webhook
 * consumers share. Each entry carries its event's id (the outbox row id)
 * and a copy of its type, time and payload; a consumer that needs more
 * (a recipient) reads the event itself from MariaDB, the truth.
 *
 * Delivery is at least once, and every consumer is idempotent on the
 * event id (domain/notifications.h, domain/webhooks.h), so:
 *   - entries are acknowledged only after the transaction that recorded
 *     them committed; one that failed stays pending and comes back;
 *   - entries another member took and never acknowledged (it was killed)
 *     are reclaimed with XAUTOCLAIM once idle [events] claim_idle_ms;
 *   - a group or a stream Redis lost (a restart without persistence) is
 *     created again from the start of what the stream now holds: events
 *     that were in it are found in MariaDB by the consumer's own sweep of
 *     events published long ago and never recorded (lost_after). */
#ifndef JT_STREAM_H
#define JT_STREAM_H

#include <stdint.h>

#include "core/arena.h"
#include "core/config.h"
#include "domain/events.h"
#include "store/redis.h"

#define JT_STREAM_BATCH_MAX 1000

typedef struct {
    const char *group;
    char        name[96];        /* host:slot: the same again after a respawn */
    int         group_ready;
    int64_t     next_claim_ms;   /* monotonic */
    char        claim_cursor[48];
} jt_stream_reader;

typedef struct {
    int         n;                              /* entries read */
    int64_t     ids[JT_STREAM_BATCH_MAX];       /* their events (0: not an event: acknowledged as is) */
    const char *entries[JT_STREAM_BATCH_MAX];   /* their entry ids (arena memory) */
    jt_event_copy copies[JT_STREAM_BATCH_MAX];  /* what the relay copied into them (arena memory) */
} jt_stream_batch;

void jt_stream_init(jt_stream_reader *s, const char *group, int slot);
/* New entries (waiting up to block_ms for one; 0: not at all), else, when
 * it is time, entries idle too long in another member's hands. 0 with the
 * batch filled (maybe empty), -1 when Redis is unreachable. */
int  jt_stream_read(jt_stream_reader *s, const jt_conf *c, jt_redis *r, jt_arena *a, int64_t block_ms, int max,
                    jt_stream_batch *b);
void jt_stream_ack(jt_stream_reader *s, jt_redis *r, jt_arena *a, const jt_stream_batch *b);

#endif
