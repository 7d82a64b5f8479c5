-- A safe migration: a nullable column nobody reads yet and an index that
-- changes plans, not results. Shadowing it should report nothing.
-- (A SELECT * on customers would see the new column: the shop names its
-- columns, as applications should.) The index is on products, which the
-- workload never writes: an index on a table taking inserts adds a little
-- cost to each, which on sub-millisecond inserts on a busy machine can read
-- as a latency regression.
ALTER TABLE customers ADD COLUMN loyalty_tier text;
CREATE INDEX products_category_idx ON products (category);
