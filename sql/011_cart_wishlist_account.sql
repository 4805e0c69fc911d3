-- A buyer's cart and wishlist (찜), and what the account endpoints need.
--
-- Lines keep what the buyer chose (product, option, quantity), never a
-- price: every read prices them from the catalog as it is now, and an
-- order made from them is priced by the order path (src/domain/orders.c).
-- option_id is 0 for a product without options, so (user, product,
-- option) is one unique line.
--
-- baskets holds one head row per user and list, whose version counts the
-- list's changes. Every write of a list locks it first (the writers of one
-- list queue on it) and stamps what it writes with the new version: a
-- line's id is the version that added it, its rev the version that last
-- set it. Versions grow, so an order made from a list reads the lines and
-- takes exactly those of rev <= the highest it read, and knows whether any
-- changed since (src/domain/basket.h).
CREATE TABLE baskets (
    user_id     BIGINT UNSIGNED NOT NULL,
    kind        ENUM('CART','WISHLIST') NOT NULL,
    version     BIGINT UNSIGNED NOT NULL DEFAULT 0,
    updated_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (user_id, kind),
    CONSTRAINT baskets_user_fk FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB;

-- Clustered by (user, id): a list is one contiguous range, read in the
-- order its lines were added and taken by one range delete.
CREATE TABLE cart_items (
    user_id     BIGINT UNSIGNED NOT NULL,
    id          BIGINT UNSIGNED NOT NULL,   -- the lineId: the head's version that added it
    rev         BIGINT UNSIGNED NOT NULL,   -- the head's version that last set it
    product_id  BIGINT UNSIGNED NOT NULL,
    option_id   BIGINT UNSIGNED NOT NULL DEFAULT 0,
    quantity    INT             NOT NULL,
    created_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (user_id, id),
    UNIQUE KEY cart_items_line (user_id, product_id, option_id),
    CONSTRAINT cart_items_quantity CHECK (quantity BETWEEN 1 AND 999)
) ENGINE=InnoDB;

-- wishlist_items_product: GET /api/v1/products/{id}'s wishCount (the
-- buyers who wish for the product, under any option).
CREATE TABLE wishlist_items (
    user_id     BIGINT UNSIGNED NOT NULL,
    id          BIGINT UNSIGNED NOT NULL,
    rev         BIGINT UNSIGNED NOT NULL,
    product_id  BIGINT UNSIGNED NOT NULL,
    option_id   BIGINT UNSIGNED NOT NULL DEFAULT 0,
    quantity    INT             NOT NULL DEFAULT 1,
    created_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (user_id, id),
    UNIQUE KEY wishlist_items_line (user_id, product_id, option_id),
    KEY wishlist_items_product (product_id, user_id),
    CONSTRAINT wishlist_items_quantity CHECK (quantity BETWEEN 1 AND 999)
) ENGINE=InnoDB;

-- Sessions as the buyer sees them: a public id (the token itself, and its
-- hash, are never shown) and when the token was last used (written at most
-- once per [auth] touch_interval). Existing tokens are numbered as they are.
ALTER TABLE auth_tokens
    ADD COLUMN id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT FIRST,
    ADD COLUMN last_used_at DATETIME(6)     NULL AFTER created_at,
    ADD UNIQUE KEY auth_tokens_id (id),
    ADD KEY auth_tokens_user_id (user_id, id);
