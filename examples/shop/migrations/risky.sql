-- A risky migration, each change with the discrepancy shadowing must find:
--  1. customers.email varchar(255) -> varchar(64): existing long addresses are
--     cut (USING left(...)), and signups with a long address now fail with
--     22001 (shadow_error).
--  2. the index behind "orders of a customer" is dropped: those reads turn
--     into sequential scans of 240,000 orders (latency_regression).
--  3. products.price numeric(10,2) -> numeric(10,1): cents are rounded, so
--     every read that returns a price differs (value_mismatch).
ALTER TABLE customers ALTER COLUMN email TYPE varchar(64) USING left(email, 64);
DROP INDEX orders_customer_id_idx;
ALTER TABLE products ALTER COLUMN price TYPE numeric(10,1);
