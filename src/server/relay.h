/* The relay: the outbox (domain/events.h) to the Redis Stream `events`,
 * at least once, in commit order, with nothing lost when Redis is down.
 *
 * One step (events_publish) is one transaction: lock the oldest rows not
 * yet published (SELECT ... WHERE published_at IS NULL ORDER BY id LIMIT
 * batch FOR UPDATE), XADD each in id order, then mark exactly the ones
 * XADD accepted published_at = NOW(6), and COMMIT.
 *
 * Invariant: every committed outbox row is eventually XADDed, and a row
 * marked published has been XADDed at least once.
 *
 *   - Redis down: the first XADD fails, nothing is marked, the rows wait;
 *     the relay tries again every relay_interval_ms. Redis failing in the
 *     middle of a batch: the rows XADDed so far are marked, the rest wait.
 *   - the relay killed (or MariaDB lost) after an XADD and before COMMIT:
 *     the transaction rolls back, the rows are unpublished again and are
 *     XADDed a second time. Hence at least once: every consumer is
 *     idempotent on the event id.
 *   - "commit order" when ids are handed out before COMMIT: a row with a
 *     smaller id may commit after a larger one (two orders committing side
 *     by side). The relay has no high-water mark that could step over it:
 *     it always asks for the rows *not yet published*, so a late row is
 *     simply in the next batch; the stream's order is the order rows
 *     became visible to the relay, by id within a batch. For the events of
 *     one order (what a consumer can care about) that is their commit
 *     order and their id order alike: every move of an order reads the
 *     order's version written by the move before it (domain/lifecycle.h),
 *     so its own outbox row gets its id only after the earlier move
 *     committed, and a snapshot that shows the later row shows the
 *     earlier one too.
 *   - two relays (two hosts): the second one's locking read waits for the
 *     first one's rows, then finds them published and takes the next
 *     ones; the per-order order above holds for either. READ COMMITTED
 *     (every session, store/db.c) locks rows, not gaps, so an order
 *     inserting its event never waits for a relay.
 *
 * Every minute it also purges published rows older than [events]
 * retention. */
#ifndef JT_RELAY_H
#define JT_RELAY_H

#include "core/config.h"

void jt_relay_run(const jt_conf *c, int slot) __attribute__((noreturn));

#endif
