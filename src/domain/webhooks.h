/* Webhooks: what shop platforms offer their integrators. An admin
 * registers a URL, the topics it wants and a secret; every matching event
 * is POSTed to it as JSON with the Standard Webhooks headers (webhook-id,
 * webhook-timestamp, webhook-signature: v1,<base64 HMAC-SHA256 of
 * id.timestamp.body>), retried with exponential backoff and jitter up to
 * [events] webhook_max_attempts, then marked FAILED.
 *
 * The rows, and what makes each step happen once:
 *
 *   webhook_deliveries  one per (webhook, event), unique: the webhook
 *                       consumer (server/hooks.c) creates them from a
 *                       batch of events, locked, in one transaction, then
 *                       acknowledges the stream entries; a redelivered
 *                       event finds its deliveries made and makes none.
 *   an attempt          a consumer claims a webhook's oldest due
 *                       deliveries (a few at a time) in one transaction:
 *                       locked FOR UPDATE SKIP LOCKED, their versions
 *                       bumped and a lease set (lease_until, on the
 *                       database's clock: every host sees the same one;
 *                       next_attempt_at moves to the lease's end too, the
 *                       earliest another consumer may try);
 *                       it makes the calls outside any transaction, one
 *                       after another, and records the outcomes (a batch
 *                       per transaction, two statements for all) each
 *                       fenced by the version its claim wrote: the
 *                       attempt row, the count, the status code, the
 *                       next try or DELIVERED / FAILED.
 *                       Two consumers (two hosts) cannot both claim one
 *                       delivery (the row is locked, then its version and
 *                       lease have moved); one whose lease ran out while
 *                       its call hung finds the version moved by the next
 *                       claimant and records nothing.
 *
 * Delivery is at least once (a consumer killed after the receiver
 * answered calls again: the webhook-id is the same, for the receiver to
 * drop the copy). A few calls per receiver at once per consumer
 * (webhook_per_receiver), many receivers at once (webhook_concurrency): a
 * receiver that hangs holds those few calls of its own until
 * webhook_timeout_ms, never another receiver's and never an order (orders
 * only write the event). */
#ifndef JT_WEBHOOKS_H
#define JT_WEBHOOKS_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/config.h"
#include "domain/events.h"
#include "http/request.h"
#include "store/tx.h"

struct jt_db;

#define JT_WEBHOOK_URL_MAX 2048
#define JT_WEBHOOK_BODY_MAX (1024 * 1024)

/* POST /api/v1/admin/webhooks {"url","events":[...],"secret"} */
jt_err webhooks_create(jt_req *r);
/* GET /api/v1/admin/webhooks */
jt_err webhooks_list(jt_req *r);
/* GET /api/v1/admin/webhooks/{webhookId}/deliveries */
jt_err webhooks_deliveries(jt_req *r);

/* The consumer's side. */


/* The sweep for events published lost_after ago that no webhook consumer
 * recorded: events_lost() with it, then webhooks_hook() with what it found. */
void webhooks_lost_sweep(jt_event_sweep *sw);

/* One claimed call, self-contained (it outlives the arena it was read
 * in): free it with webhooks_call_free. */
typedef struct {
    int64_t delivery_id;
    int64_t webhook_id;
    int64_t version;        /* the version our claim wrote: the fence of the outcome */
    int     attempt;        /* 1-based: this call's number */
    char    url[JT_WEBHOOK_URL_MAX + 1];
    char    id_header[48];  /* webhook-id: evt_<event id> */
    char    ts_header[48];  /* webhook-timestamp */
    char    sig_header[80]; /* webhook-signature */
    char   *body;           /* malloc'd JSON */
    size_t  body_len;
    int     unsendable;     /* it can never be made (the event purged, the secret unreadable) */
} jt_webhook_call;

/* The most deliveries of one webhook claimed at once. They are called
 * webhook_per_receiver at a time, so they are leased for as many
 * webhook_timeout_ms as that takes, plus one, plus 5 s. */
#define JT_WEBHOOK_CLAIM_MAX 16

/* Claims due deliveries, oldest first, up to JT_WEBHOOK_CLAIM_MAX per
 * webhook and max in all, of webhooks not in busy[0..nbusy-1] (the ones
 * this consumer is calling or about to); returns how many calls it
 * filled (in the order they are to be made). */
int  webhooks_claim(const jt_conf *c, struct jt_db *db, jt_arena *a, const int64_t *busy, int nbusy,
                    jt_webhook_call *calls, int max);

/* Creates the deliveries of events ids[0..n-1] for every active webhook
 * that wants their topic, in one transaction (JT_TX_OK: committed). Up to
 * max of them are created claimed by this consumer, each leased for the
 * calls queued ahead of it to its webhook (queued[0..nqueued-1]: a
 * webhook id per call this consumer has waiting or in flight), and their
 * calls filled into calls (*ncalls, in the order they are to be made): a
 * new event's first call needs no claim of its own. *more: some were left
 * due, for the next claim. copies: NULL, or what the stream entries of
 * ids[0..n-1] copied of their events (in the same order); when every one
 * has its copy the events are not read from MariaDB. */
jt_tx_rc webhooks_hook(const jt_conf *c, struct jt_db *db, jt_arena *a, const int64_t *ids, int n,
                       const jt_event_copy *copies, const int64_t *queued, int nqueued, jt_webhook_call *calls,
                       int max, int *ncalls, int *more);

/* How a call went: its status code (0: no answer, `error` says why) and
 * how long it took. */
typedef struct {
    const jt_webhook_call *call;
    int                    status_code;
    const char            *error;
    int64_t                duration_ms;
} jt_webhook_outcome;

/* Records outcomes, all in one transaction: the attempt, the count, the
 * next try or DELIVERED / FAILED. */
void webhooks_finish(const jt_conf *c, struct jt_db *db, jt_arena *a, const jt_webhook_outcome *o, int n);
/* Gives back claimed calls that will not be made (a graceful stop): the
 * next consumer need not wait for their leases. */
void webhooks_release(const jt_conf *c, struct jt_db *db, jt_arena *a, const jt_webhook_outcome *o, int n);
void webhooks_call_free(jt_webhook_call *call);

/* The Standard Webhooks signature "v1,<base64>" of id.timestamp.body
 * under a secret "whsec_<base64 key>" into out (>= 64 bytes). 0, or -1
 * for a malformed secret. */
int  webhooks_sign(const char *secret, const char *id, const char *ts, const char *body, size_t len, char *out,
                   size_t outlen);

#endif
