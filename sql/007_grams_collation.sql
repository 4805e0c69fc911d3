-- Search grams compare the way the name they index does. The gram column
-- was utf8mb4_bin while `products.name LIKE ?` folds case and accents
-- (utf8mb4_unicode_ci), so q=CAFÉ or q=cafe creme missed "Café Crème".
-- Under the name's collation 'É' and 'é' are one key: the table is rebuilt
-- and collation-equal rows collapse into one (INSERT IGNORE).
CREATE TABLE product_name_grams_ci (
    gram        VARCHAR(2)      CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL,
    product_id  BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (gram, product_id),
    KEY product_name_grams_product (product_id)
) ENGINE=InnoDB;
INSERT IGNORE INTO product_name_grams_ci (gram, product_id) SELECT gram, product_id FROM product_name_grams;
RENAME TABLE product_name_grams TO product_name_grams_bin, product_name_grams_ci TO product_name_grams;
DROP TABLE product_name_grams_bin;
