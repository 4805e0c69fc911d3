-- Orders after payment (issue 14): the delivery lifecycle, its history, and
-- the events every committed change leaves in the outbox, delivered to
-- notifications and webhooks.
--
-- The statuses an order may have, and the moves between them, are the
-- transition table of src/domain/lifecycle.c: the column is a plain string
-- so that a later migration (payments' PAYMENT_PENDING, ...) adds statuses
-- to that table without rewriting this column, and so no ENUM here can
-- disagree with it. The audit checks that every order's status agrees with
-- its history.
--
-- Times of the lifecycle are business time (DATETIME(6), UTC, the app's
-- clock bound as a parameter, src/domain/common.h): the scheduler compares
-- them with that clock, so a test that moves the clock moves the schedule.
-- paid_at defaults to the database's clock for writers that do not name it
-- (every order paid by points is paid when it is placed).
ALTER TABLE orders
    MODIFY status VARCHAR(24) NOT NULL,
    ADD COLUMN paid_at             DATETIME(6)  NULL DEFAULT CURRENT_TIMESTAMP(6) AFTER created_at,
    ADD COLUMN preparing_at        DATETIME(6)  NULL AFTER paid_at,
    ADD COLUMN shipped_at          DATETIME(6)  NULL AFTER preparing_at,
    ADD COLUMN delivered_at        DATETIME(6)  NULL AFTER shipped_at,
    ADD COLUMN return_requested_at DATETIME(6)  NULL AFTER delivered_at,
    ADD COLUMN returned_at         DATETIME(6)  NULL AFTER return_requested_at,
    ADD COLUMN tracking_number     VARCHAR(64)  NULL,
    ADD COLUMN return_reason       VARCHAR(500) NULL;
UPDATE orders SET paid_at = created_at;
-- the scheduler's sweeps: orders of one status due by their paid (or
-- return-requested) time, oldest first; a buyer's orders of one status
ALTER TABLE orders
    ADD KEY orders_due (status, paid_at, id),
    ADD KEY orders_return_due (status, return_requested_at, id),
    ADD KEY orders_user_status (user_id, status, id);

-- One row per move of an order, written in the move's transaction: from,
-- to, when (business time) and who (a user, or the scheduler: actor_id
-- NULL). An order placed has no row: it starts PAID.
CREATE TABLE order_events (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    order_id     BIGINT UNSIGNED NOT NULL,
    from_status  VARCHAR(24)     NOT NULL,
    to_status    VARCHAR(24)     NOT NULL,
    at           DATETIME(6)     NOT NULL,
    actor        VARCHAR(16)     NOT NULL,   -- BUYER, SELLER, ADMIN, SCHEDULER
    actor_id     BIGINT UNSIGNED NULL,
    PRIMARY KEY (id),
    KEY order_events_order (order_id, id),
    CONSTRAINT order_events_order_fk FOREIGN KEY (order_id) REFERENCES orders (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The relay (src/server/relay.c) publishes unpublished rows and stamps
-- published_at; each consumer stamps its own column in the transaction
-- that records what it did with the event, so an event Redis lost after
-- it was published is found again in MariaDB.
ALTER TABLE outbox
    ADD COLUMN notified_at DATETIME(6) NULL,
    ADD COLUMN hooked_at   DATETIME(6) NULL,
    ADD KEY outbox_notify (notified_at, published_at),
    ADD KEY outbox_hook (hooked_at, published_at);

-- What a user is told (ho-commerce's KakaoTalk message), one row per
-- (event, recipient) whatever the number of deliveries of the event.
CREATE TABLE notifications (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    event_id    BIGINT UNSIGNED NOT NULL,
    user_id     BIGINT UNSIGNED NOT NULL,
    topic       VARCHAR(64)     NOT NULL,
    ref_id      BIGINT UNSIGNED NOT NULL,
    message     VARCHAR(500)    NOT NULL,
    created_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    read_at     DATETIME(6)     NULL,
    PRIMARY KEY (id),
    UNIQUE KEY notifications_event_user (event_id, user_id),
    KEY notifications_user (user_id, id),
    KEY notifications_unread (user_id, read_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Webhooks registered by an admin. The secret signs every delivery, so it
-- is kept (sealed like personal data, src/core/pii.c), never hashed, and
-- never shown again. `events` is a comma-separated list of topics.
CREATE TABLE webhooks (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    url         VARCHAR(2048)   NOT NULL,
    events      VARCHAR(1024)   NOT NULL,
    secret_enc  VARBINARY(200)  NOT NULL,
    created_by  BIGINT UNSIGNED NOT NULL,
    active      TINYINT(1)      NOT NULL DEFAULT 1,
    version     BIGINT UNSIGNED NOT NULL DEFAULT 0,
    created_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One delivery per (webhook, event); attempts are its history. Retry times
-- and leases are on the database's clock (they are durations, shared by
-- every host), not business time.
CREATE TABLE webhook_deliveries (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    webhook_id       BIGINT UNSIGNED NOT NULL,
    event_id         BIGINT UNSIGNED NOT NULL,
    topic            VARCHAR(64)     NOT NULL,
    status           ENUM('PENDING','DELIVERED','FAILED') NOT NULL DEFAULT 'PENDING',
    attempts         INT             NOT NULL DEFAULT 0,
    next_attempt_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    lease_until      DATETIME(6)     NULL,
    last_status_code INT             NULL,
    delivered_at     DATETIME(6)     NULL,
    version          BIGINT UNSIGNED NOT NULL DEFAULT 0,
    created_at       DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY webhook_deliveries_event (webhook_id, event_id),
    KEY webhook_deliveries_due (webhook_id, status, next_attempt_at, id),
    CONSTRAINT webhook_deliveries_webhook_fk FOREIGN KEY (webhook_id) REFERENCES webhooks (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE webhook_attempts (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    delivery_id  BIGINT UNSIGNED NOT NULL,
    attempt_no   INT             NOT NULL,
    status_code  INT             NULL,       -- NULL: no HTTP answer (timeout, refused)
    error        VARCHAR(120)    NULL,
    duration_ms  INT             NOT NULL,
    at           DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY webhook_attempts_delivery (delivery_id, id),
    CONSTRAINT webhook_attempts_delivery_fk FOREIGN KEY (delivery_id) REFERENCES webhook_deliveries (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
