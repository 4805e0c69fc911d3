-- The attempt that delivered is kept in its delivery row (its status code
-- was already there as last_status_code, its time as delivered_at; this
-- adds how long it took). webhook_attempts keeps the attempts that failed.
-- Most deliveries succeed at the first call, so most now cost the
-- database one row instead of two (bench/RESULTS.md, issue 14). Deliveries
-- made before this keep their attempt rows, the delivering one included;
-- GET .../deliveries shows each attempt once either way
-- (domain/webhooks.c, delivery_item).
ALTER TABLE webhook_deliveries
    ADD COLUMN last_duration_ms INT NULL AFTER last_status_code;
