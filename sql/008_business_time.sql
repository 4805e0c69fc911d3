-- One representation of business time: DATETIME(6), UTC, as sale windows
-- have been since sql/004. Auction windows and a bid's acceptance were
-- BIGINT epoch milliseconds compared with the app's clock in C, while sale
-- windows were compared with MariaDB's NOW(6); now every business time is
-- a DATETIME(6) compared with the app's clock bound as a parameter
-- (src/domain/common.h), so the test clock moves sale windows and auctions
-- alike. DATETIME(6) rather than milliseconds: it keeps the microseconds a
-- sale window may be given, reads as a time in SQL, and holds every
-- millisecond value exactly.
--
-- The conversion is exact (1970-01-01 + ms * 1000 microseconds, no session
-- time zone involved), and a receipt's updated_at is kept as it was. Like
-- every migration it is applied once and recorded in schema_migrations.

ALTER TABLE auctions
    ADD COLUMN starts_at DATETIME(6) NULL AFTER variation_seconds,
    ADD COLUMN ends_at   DATETIME(6) NULL AFTER starts_at;
UPDATE auctions
   SET starts_at = TIMESTAMP'1970-01-01 00:00:00' + INTERVAL starts_at_ms * 1000 MICROSECOND,
       ends_at   = TIMESTAMP'1970-01-01 00:00:00' + INTERVAL ends_at_ms * 1000 MICROSECOND;
ALTER TABLE auctions
    MODIFY starts_at DATETIME(6) NOT NULL,
    MODIFY ends_at   DATETIME(6) NOT NULL,
    DROP INDEX auctions_window,
    DROP COLUMN starts_at_ms,
    DROP COLUMN ends_at_ms,
    ADD KEY auctions_window (deleted_at, starts_at);

ALTER TABLE receipts
    ADD COLUMN accepted_at DATETIME(6) NULL AFTER failure_code;
UPDATE receipts
   SET accepted_at = TIMESTAMP'1970-01-01 00:00:00' + INTERVAL accepted_at_ms * 1000 MICROSECOND,
       updated_at = updated_at;
ALTER TABLE receipts
    MODIFY accepted_at DATETIME(6) NOT NULL COMMENT 'the price was checked at this instant',
    DROP COLUMN accepted_at_ms;
