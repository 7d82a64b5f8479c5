-- A safe migration: a nullable column nobody reads yet and an index that
-- changes plans, not results. Shadowing it should report nothing.
-- (A SELECT * on customers would see the new column: the shop names its
-- columns, as applications should.)
ALTER TABLE customers ADD COLUMN loyalty_tier text;
CREATE INDEX orders_created_at_idx ON orders (created_at);
