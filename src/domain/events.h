/* Domain events: the one place an outbox row is written, the topics there
 * are, whom each one concerns, and what a notification of it says.
 *
 * An event is a row of `outbox` written in the same transaction as the
 * change it reports (events_emit), so it exists exactly when the change
 * committed. Its id (the row id) is its stable identity everywhere after:
 * the relay publishes it to the Redis Stream `events` (server/relay.c),
 * the notification consumer turns it into one notification per recipient
 * (domain/notifications.c) and the webhook consumer into one delivery per
 * matching webhook (domain/webhooks.c); each of those is unique on the
 * event id, which is what makes a redelivered event change nothing.
 *
 * The recipient of an event is not stored with it: it is the owner of the
 * row the event is about (the order's buyer, the ledger row's user, the
 * receipt's buyer), read by JT_EVENT_RECIPIENT in SQL, by the consumer and
 * the audit alike, so the two can never disagree. */
#ifndef JT_EVENTS_H
#define JT_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/config.h"
#include "store/tx.h"

/* The Redis Stream the relay publishes to, and its consumer groups. */
#define JT_EVENT_STREAM "events"
#define JT_EVENT_GROUP_NOTIFY "notifiers"
#define JT_EVENT_GROUP_HOOKS "webhooks"

#define JT_EVENT_TOPIC_MAX 64

/* Every topic an event may have, NULL-terminated. */
extern const char *const jt_event_topics[];
int events_known_topic(const char *topic);

/* Inside a transaction: the event `topic` about row `aggregate_id`, with
 * its JSON payload (no personal data: webhooks carry it out of the house). */
jt_tx_step events_emit(jt_tx *tx, const char *topic, int64_t aggregate_id, const char *payload, size_t len);

/* The recipient of event row `x` (an outbox alias) as an SQL expression:
 * a user id, or NULL for a topic that concerns nobody. */
#define JT_EVENT_RECIPIENT(x)                                                                              \
    "(CASE WHEN " x ".topic LIKE 'order.%' THEN (SELECT r_o.user_id FROM orders r_o WHERE r_o.id = " x    \
    ".aggregate_id) WHEN " x ".topic = 'points.charged' THEN (SELECT r_l.user_id FROM point_ledger r_l"   \
    " WHERE r_l.id = " x ".aggregate_id) WHEN " x ".topic IN ('bid.purchased', 'receipt.refunded') THEN" \
    " (SELECT r_r.buyer_id FROM receipts r_r WHERE r_r.id = " x ".aggregate_id) END)"

struct jt_db;
struct jt_redis;

/* The relay's step (server/relay.h says why it is safe): publishes up to
 * [events] batch unpublished rows, oldest id first, to the stream, and
 * marks them published in the transaction that locked them. The number
 * published, or -1 when MariaDB or Redis is down (nothing is then marked:
 * the rows wait). */
int     events_publish(const jt_conf *c, struct jt_db *db, struct jt_redis *redis, jt_arena *a);
/* Deletes published rows older than [events] retention, in bounded
 * batches; the number deleted. */
int64_t events_purge(const jt_conf *c, struct jt_db *db, jt_arena *a);

/* A consumer kind's sweep for the events Redis lost: published [events]
 * lost_after ago, and never recorded by a consumer of the kind (their
 * stream entries are gone). It walks the outbox by id from the kind's
 * cursor (sql/016), and stops at the first event not published that long
 * ago: the cursor never passes an event that may still arrive by the
 * stream. `sql` is JT_EVENTS_LOST_SQL(missing), `missing` a condition on
 * outbox row x that is true while the kind never recorded it.
 * What it rests on: ids are handed out in time order, and no transaction
 * that writes an event stays open for lost_after (30 s; every statement is
 * bounded by max_statement_time, a transaction by [tx] deadline_ms), so an
 * event the walk cannot see yet (not committed) never has a smaller id
 * than one it passes. Should one ever, and its stream entry be lost too,
 * the audit's event_notifications names it. */
typedef struct {
    const char *name;      /* the cursor's name */
    const char *sql;
    int64_t     from;      /* the cursor as the sweep read it */
    int64_t     through;   /* where it may move once the ids found are recorded */
} jt_event_sweep;
#define JT_EVENTS_LOST_SQL(missing)                                                                      \
    "SELECT x.id, x.published_at < NOW(6) - INTERVAL ? SECOND, IF(x.published_at < NOW(6) - INTERVAL ?" \
    " SECOND, " missing ", 0) FROM outbox x WHERE x.id > ? ORDER BY x.id LIMIT ?"
/* The lost events' ids, oldest first, at most max (the number, or -1 when
 * MariaDB is down); sw->through is set to the last event walked. */
int     events_lost(const jt_conf *c, struct jt_db *db, jt_arena *a, jt_event_sweep *sw, int64_t *ids, int max);
/* Moves the kind's cursor to sw->through: call it once what events_lost
 * found is committed (and at once when it found none). */
void    events_lost_done(const jt_conf *c, struct jt_db *db, jt_arena *a, jt_event_sweep *sw);

/* What the notification of an event says, in Korean as the seeds' users
 * read it, built from its payload (arena memory); NULL when the topic
 * notifies nobody. */
const char *events_message(jt_arena *a, const char *topic, int64_t aggregate_id, const char *payload);

/* An event as the relay copied it into its stream entry (its outbox row's
 * id, type, aggregate, time and payload: a row never changed once
 * written; and its recipient, JT_EVENT_RECIPIENT as the relay read it:
 * who that is never changes either), enough for a consumer that needs
 * nothing else of MariaDB. topic is NULL when the entry had no copy, and
 * has_recipient 0 when it named no recipient (the relay found none, or an
 * entry of a relay before it did): read the event from MariaDB. */
typedef struct {
    int64_t     id;
    const char *topic;
    int64_t     aggregate;
    const char *at;
    const char *payload;
    size_t      payload_len;
    int         has_recipient;
    int64_t     recipient;
} jt_event_copy;

/* "[1,2,3]": event ids as a JSON array, the parameter a batch of events
 * is bound with (JOIN JSON_TABLE(?, JT_EVENT_IDS_TABLE) j ON j.id = ...). */
const char *events_ids_json(jt_arena *a, const int64_t *ids, int n);
#define JT_EVENT_IDS_TABLE "'$[*]' COLUMNS (id BIGINT UNSIGNED PATH '$')"

/* 23000 -> "23,000" (KRW as Koreans write it), into out[32]. */
void events_won(char out[32], int64_t amount);

#endif
