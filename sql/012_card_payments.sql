-- Card payments through the payment gateway (PortOne REST V1), beside
-- points. src/domain/payments.h says which state exists between which two
-- steps and who moves each; src/domain/order_status.c is the one list of
-- order statuses and the moves between them.
--
-- orders.status becomes text: the statuses are listed once, in C
-- (order_status.c), which the card statuses of this file and the lifecycle's
-- join there; a text column takes the two lists in either order, where an
-- ENUM altered by two migrations would drop whatever the other added. Every
-- value written is bound from that table.
ALTER TABLE orders
    MODIFY status VARCHAR(24) CHARACTER SET ascii COLLATE ascii_bin NOT NULL
        COMMENT 'one of the statuses of src/domain/order_status.c',
    ADD COLUMN payment_method ENUM('POINTS','CARD') NOT NULL DEFAULT 'POINTS' AFTER status;

-- One row per card order: what the gateway must be paid (the order's total,
-- registered there by `prepare` under merchant_uid) and until when the stock
-- is held. due_at is when the sweeper looks at a PAYMENT_PENDING order: the
-- end of the placing request's life until that request has registered the
-- amount, the hold's end after, NULL once the order has left
-- PAYMENT_PENDING (so the sweeper's index scan sees live rows only); a
-- sweeper claims a row by moving it (a versioned UPDATE), so several
-- sweepers never work on one row at once.
-- Business times (hold_expires_at, due_at) are on the app's clock.
CREATE TABLE card_payments (
    order_id         BIGINT UNSIGNED NOT NULL,
    merchant_uid     VARCHAR(40) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    card_company     ENUM('NH','SHINHAN','KAKAOBANK') NOT NULL,
    amount           BIGINT          NOT NULL,
    prepared         TINYINT         NOT NULL DEFAULT 0 COMMENT '1: the gateway holds the amount for merchant_uid',
    hold_expires_at  DATETIME(6)     NOT NULL,
    due_at           DATETIME(6)     NULL COMMENT 'NULL once the order is no longer PAYMENT_PENDING',
    failure_code     VARCHAR(40) CHARACTER SET ascii NULL COMMENT 'why the order failed (a problem code)',
    version          BIGINT UNSIGNED NOT NULL DEFAULT 0,
    created_at       DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at       DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (order_id),
    UNIQUE KEY card_payments_merchant (merchant_uid),
    KEY card_payments_due (due_at),
    CONSTRAINT card_payments_order_fk FOREIGN KEY (order_id) REFERENCES orders (id),
    CONSTRAINT card_payments_amount_pos CHECK (amount > 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Every payment the gateway reported paid for one of our merchant uids,
-- once (imp_uid is the gateway's id). CAPTURED: it pays its order (a PAID
-- order has exactly one); REFUND_DUE: it must go back (a tampered amount,
-- a payment too late for its stock, a cancel), and due_at is when the
-- sweeper tries; REFUNDED: the gateway confirmed the refund.
CREATE TABLE gateway_payments (
    imp_uid          VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    order_id         BIGINT UNSIGNED NOT NULL,
    merchant_uid     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    amount           BIGINT          NOT NULL,
    refunded         BIGINT          NOT NULL DEFAULT 0,
    state            ENUM('CAPTURED','REFUND_DUE','REFUNDED') NOT NULL,
    reason           VARCHAR(40) CHARACTER SET ascii NULL COMMENT 'why it is refunded (a problem code, or CANCELLED)',
    card_name        VARCHAR(64)     NOT NULL DEFAULT '',
    paid_at          DATETIME(6)     NULL COMMENT 'the gateway''s paid_at',
    due_at           DATETIME(6)     NULL COMMENT 'set while REFUND_DUE',
    version          BIGINT UNSIGNED NOT NULL DEFAULT 0,
    created_at       DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at       DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (imp_uid),
    KEY gateway_payments_order (order_id),
    KEY gateway_payments_due (state, due_at),
    CONSTRAINT gateway_payments_order_fk FOREIGN KEY (order_id) REFERENCES orders (id),
    CONSTRAINT gateway_payments_refund_range CHECK (refunded >= 0 AND refunded <= amount)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Each refund the gateway confirmed. checksum is what was refundable when it
-- was asked (PortOne's cancel checksum), so one (imp_uid, checksum) is one
-- refund, however often a crash made us ask.
CREATE TABLE card_refunds (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    imp_uid          VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    order_id         BIGINT UNSIGNED NOT NULL,
    amount           BIGINT          NOT NULL,
    checksum         BIGINT          NOT NULL,
    reason           VARCHAR(40) CHARACTER SET ascii NOT NULL,
    created_at       DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY card_refunds_once (imp_uid, checksum),
    KEY card_refunds_order (order_id),
    CONSTRAINT card_refunds_payment_fk FOREIGN KEY (imp_uid) REFERENCES gateway_payments (imp_uid),
    CONSTRAINT card_refunds_amount_pos CHECK (amount > 0 AND amount <= checksum)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The audit counts the units held by orders per stock row: per product by
-- order_items_product, per option by this (it walked every order line for
-- each option, seconds on a day of orders: seen when the card benchmark's
-- audit ran into max_statement_time).
CREATE INDEX order_items_option ON order_items (option_id);
