-- Descending-price auctions and their receipts. Price and status are
-- computed from the clock on every request (src/domain/auctions.c): no job
-- flips anything.
CREATE TABLE auctions (
    id                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    seller_id          BIGINT UNSIGNED NOT NULL,
    product_name       VARCHAR(100)    NOT NULL,
    origin_price       BIGINT          NOT NULL,
    initial_stock      INT             NOT NULL,
    stock              INT             NOT NULL,
    max_per_buyer      INT             NOT NULL,
    policy             ENUM('CONSTANT','PERCENTAGE') NOT NULL,
    variation_width    BIGINT          NULL,      -- CONSTANT: KRW per step
    discount_rate_bp   INT             NULL,      -- PERCENTAGE: hundredths of a percent
    variation_seconds  INT             NOT NULL,
    starts_at_ms       BIGINT          NOT NULL,  -- epoch milliseconds (UTC)
    ends_at_ms         BIGINT          NOT NULL,
    show_stock         TINYINT(1)      NOT NULL DEFAULT 1,
    version            BIGINT UNSIGNED NOT NULL DEFAULT 0,
    deleted_at         DATETIME(6)     NULL,
    created_at         DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY auctions_window (deleted_at, starts_at_ms),
    KEY auctions_seller (seller_id),
    CONSTRAINT auctions_stock_nonneg CHECK (stock >= 0 AND stock <= initial_stock)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- A bid's receipt. `uuid` is the public id and the idempotency anchor of an
-- asynchronous bid: processing a receipt twice changes nothing the second time.
CREATE TABLE receipts (
    id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    uuid           CHAR(36)        NOT NULL,
    auction_id     BIGINT UNSIGNED NOT NULL,
    buyer_id       BIGINT UNSIGNED NOT NULL,
    seller_id      BIGINT UNSIGNED NOT NULL,
    product_name   VARCHAR(100)    NOT NULL,
    price          BIGINT          NOT NULL,
    quantity       INT             NOT NULL,
    status         ENUM('PENDING','PURCHASED','FAILED','REFUNDED') NOT NULL,
    failure_code   VARCHAR(40)     NULL,
    accepted_at_ms BIGINT          NOT NULL,  -- the price was checked at this instant
    version        BIGINT UNSIGNED NOT NULL DEFAULT 0,
    created_at     DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at     DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY receipts_uuid (uuid),
    KEY receipts_auction_buyer (auction_id, buyer_id),
    KEY receipts_buyer (buyer_id, id),
    KEY receipts_seller (seller_id, id),
    KEY receipts_pending (status, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
