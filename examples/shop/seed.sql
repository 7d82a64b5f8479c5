-- Deterministic seed data (no random()): the same rows on every run.
--   20,000 customers (2 % with e-mail addresses longer than 64 characters)
--    2,000 products with prices in cents, 8 categories
--  240,000 orders: customer c owns orders c, c + 20000, c + 40000, ... (12 each)
--  ~600,000 order items, priced as the product was at the time
-- shop-loadgen relies on these shapes (see README.md); change both together.
BEGIN;

INSERT INTO customers (id, email, name, created_at)
SELECT c,
       CASE WHEN c % 50 = 0
            -- > 64 characters, and unique within the first 64 (the id comes first),
            -- so risky.sql's left(email, 64) truncates without colliding.
            THEN 'customer.' || c || '.with.a.rather.long.mailbox.name.for.testing@subdomain.example-shop.com'
            ELSE 'customer' || c || '@example.com' END,
       'Customer ' || c,
       timestamptz '2023-01-01 00:00:00+00' + c * interval '17 minutes'
FROM generate_series(1, 20000) AS c;

INSERT INTO products (id, sku, name, category, price, stock)
SELECT p,
       'SKU-' || lpad(p::text, 6, '0'),
       'Product ' || p,
       (ARRAY['books', 'garden', 'kitchen', 'toys', 'tools', 'games', 'music', 'sports'])[1 + p % 8],
       -- cents that numeric(10,1) cannot hold: ends in 1..9 for 9 of 10 products
       ((p * 7919) % 20000 + 99) / 100.0 + (p % 10) / 100.0,
       (p * 37) % 500
FROM generate_series(1, 2000) AS p;

-- An order's total is the sum of its items, computed from the same formulas
-- as the items below (computed here, not by a later UPDATE, so the primary's
-- tables start without dead rows, like the shadow's fresh copy).
INSERT INTO orders (id, customer_id, status, total, created_at)
SELECT o,
       (o - 1) % 20000 + 1,
       (ARRAY['delivered', 'delivered', 'delivered', 'shipped', 'cancelled'])[1 + o % 5],
       (SELECT sum((1 + (o + l) % 4) * p.price)
          FROM generate_series(1, 1 + o % 4) AS l
          JOIN products p ON p.id = (o * 31 + l * 977) % 2000 + 1),
       timestamptz '2024-01-01 00:00:00+00' + o * interval '2 minutes'
FROM generate_series(1, 240000) AS o;

INSERT INTO order_items (order_id, line, product_id, quantity, unit_price)
SELECT o.id, l.line, p.id, 1 + (o.id + l.line) % 4, p.price
FROM orders o
CROSS JOIN LATERAL generate_series(1, 1 + o.id % 4) AS l(line)
JOIN products p ON p.id = (o.id * 31 + l.line * 977) % 2000 + 1;

COMMIT;
ANALYZE customers, products, orders, order_items;
