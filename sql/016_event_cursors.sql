-- The consumers no longer stamp the outbox. notified_at and hooked_at
-- were written once per event by each consumer, and published_at was in
-- all three of the outbox's secondary keys, so an event cost the database
-- three row updates and eight index entries besides its own insert
-- (bench/RESULTS.md, issue 14: about half of what the event path cost
-- MariaDB). What an event's consumers did is already recorded where they
-- did it: its notification rows (unique on event and recipient) and its
-- webhook deliveries (unique on webhook and event), and those keys are
-- what makes consumption exactly-once.
--
-- Finding events Redis lost (published, never consumed) walks the outbox
-- by id from a cursor per consumer kind instead: every event up to
-- through_id was consumed, or was handed to a consumer by a sweep that
-- committed (domain/events.c, events_lost). Several hosts share a cursor;
-- it only moves forward.
ALTER TABLE outbox
    DROP KEY outbox_notify,
    DROP KEY outbox_hook,
    DROP COLUMN notified_at,
    DROP COLUMN hooked_at;

CREATE TABLE event_cursors (
    name        VARCHAR(32)     NOT NULL,
    through_id  BIGINT UNSIGNED NOT NULL,
    updated_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
