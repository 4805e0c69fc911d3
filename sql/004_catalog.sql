-- Catalog management: owners, descriptions, timed sale windows, soft delete,
-- the stock movement journal (initial stock and every restock/correction),
-- and an n-gram index for name search that works for Korean as well as Latin
-- names (InnoDB FULLTEXT has no n-gram parser in MariaDB).
ALTER TABLE products
    ADD COLUMN seller_id      BIGINT UNSIGNED NULL AFTER id,
    ADD COLUMN description    VARCHAR(2000)   NULL AFTER name,
    ADD COLUMN sale_starts_at DATETIME(6)     NULL,
    ADD COLUMN sale_ends_at   DATETIME(6)     NULL,
    ADD COLUMN deleted_at     DATETIME(6)     NULL,
    ADD KEY products_seller (seller_id),
    ADD KEY products_live (deleted_at, id),
    ADD KEY products_sale_starts (sale_starts_at),
    ADD KEY products_sale_ends (sale_ends_at);

-- One row per stock change that is not an order: the initial stock of a
-- product or option, restocks and corrections. With order lines this lets
-- the audit recompute every stock figure.
CREATE TABLE stock_movements (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    product_id  BIGINT UNSIGNED NOT NULL,
    option_id   BIGINT UNSIGNED NULL,
    delta       INT             NOT NULL,
    kind        VARCHAR(16)     NOT NULL,   -- INITIAL, RESTOCK, CORRECTION
    created_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY stock_movements_product (product_id, option_id)
) ENGINE=InnoDB;

INSERT INTO stock_movements (product_id, option_id, delta, kind)
    SELECT id, NULL, stock, 'INITIAL' FROM products
     WHERE NOT EXISTS (SELECT 1 FROM product_options o WHERE o.product_id = products.id);
INSERT INTO stock_movements (product_id, option_id, delta, kind)
    SELECT product_id, id, stock, 'INITIAL' FROM product_options;

-- Name search: every 1- and 2-character substring of a name.
CREATE TABLE product_name_grams (
    gram        VARCHAR(2)      CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    product_id  BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (gram, product_id),
    KEY product_name_grams_product (product_id)
) ENGINE=InnoDB;

-- Popular products read PAID order lines of the last days by order time.
ALTER TABLE orders ADD KEY orders_status_created (status, created_at);
