-- Whether a product keeps its stock on options, on the product row itself.
-- A product's options are made with it (POST /api/v1/products) and never
-- added or removed later, so the flag is set once, when the row is
-- inserted. The product detail, the catalog's hottest uncached read, reads
-- the product alone and its options only when it has some: a join for
-- every product costs MariaDB more than the second query costs the few
-- products with options. The audit checks the flag against the options.
ALTER TABLE products ADD COLUMN has_options TINYINT(1) NOT NULL DEFAULT 0 AFTER stock;
UPDATE products p SET has_options = EXISTS (SELECT 1 FROM product_options o WHERE o.product_id = p.id);
