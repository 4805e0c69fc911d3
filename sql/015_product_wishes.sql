-- How many buyers wish for each product (under any of its options): the
-- product detail's wishCount. Counting wishlist_items in the detail
-- statement (a dependent COUNT(DISTINCT) subquery) cost the uncached detail
-- about a quarter of its rate; the count is kept here instead, written in
-- the wishlist's own transaction when a buyer's first item of a product
-- comes or the last one goes (domain/basket.c), and checked by the audit.
-- A product nobody wishes for may have no row (read as 0).
CREATE TABLE product_wishes (
    product_id  BIGINT UNSIGNED NOT NULL,
    wishers     INT             NOT NULL DEFAULT 0,
    PRIMARY KEY (product_id),
    CONSTRAINT product_wishes_wishers CHECK (wishers >= 0)
) ENGINE=InnoDB;
INSERT INTO product_wishes (product_id, wishers)
    SELECT product_id, COUNT(DISTINCT user_id) FROM wishlist_items GROUP BY product_id;
