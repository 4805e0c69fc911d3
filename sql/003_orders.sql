-- Orders: product options, orders and their lines (with price snapshots),
-- and the outbox of domain events for a later consumer.
CREATE TABLE product_options (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    product_id   BIGINT UNSIGNED NOT NULL,
    name         VARCHAR(100)    NOT NULL,
    extra_price  BIGINT          NOT NULL DEFAULT 0,
    stock        INT             NOT NULL DEFAULT 0,
    version      BIGINT UNSIGNED NOT NULL DEFAULT 0,
    created_at   DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at   DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY product_options_product (product_id, id),
    CONSTRAINT product_options_product_fk FOREIGN KEY (product_id) REFERENCES products (id),
    CONSTRAINT product_options_extra_nonneg CHECK (extra_price >= 0),
    CONSTRAINT product_options_stock_nonneg CHECK (stock >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Shipping data is personal: one sealed blob (recipient, phone, zip code,
-- address, request), key id in its first byte (src/core/pii.c).
CREATE TABLE orders (
    id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    user_id        BIGINT UNSIGNED NOT NULL,
    status         ENUM('PAID','CANCELLED') NOT NULL,
    items_total    BIGINT          NOT NULL,
    shipping_fee   BIGINT          NOT NULL,
    total          BIGINT          NOT NULL,
    shipping_enc   VARBINARY(2048) NOT NULL,
    version        BIGINT UNSIGNED NOT NULL DEFAULT 0,
    created_at     DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    cancelled_at   DATETIME(6)     NULL,
    PRIMARY KEY (id),
    KEY orders_user (user_id, id),
    KEY orders_created (created_at),
    CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE order_items (
    order_id     BIGINT UNSIGNED NOT NULL,
    line_no      SMALLINT        NOT NULL,
    product_id   BIGINT UNSIGNED NOT NULL,
    option_id    BIGINT UNSIGNED NULL,
    name         VARCHAR(210)    NOT NULL,   -- snapshot: product / option name
    unit_price   BIGINT          NOT NULL,   -- snapshot: price + extra price
    quantity     INT             NOT NULL,
    line_total   BIGINT          NOT NULL,
    PRIMARY KEY (order_id, line_no),
    KEY order_items_product (product_id),
    CONSTRAINT order_items_order_fk FOREIGN KEY (order_id) REFERENCES orders (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Transactional outbox: written in the same transaction as the change.
CREATE TABLE outbox (
    id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    topic         VARCHAR(64)     NOT NULL,
    aggregate_id  BIGINT UNSIGNED NOT NULL,
    payload       MEDIUMTEXT      NOT NULL,
    created_at    DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    published_at  DATETIME(6)     NULL,
    PRIMARY KEY (id),
    KEY outbox_unpublished (published_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
