-- The demo shop: customers, products, orders, order items.
-- Idempotent: drops and recreates the shop's objects (and nothing else, so
-- the shadow executor's bookkeeping in the same database survives).
--
-- Every id is given by the client (shop-loadgen draws new ids from a range
-- of its own), never by a sequence: sequence values diverge between primary
-- and shadow as soon as inserts of different consistency keys interleave in
-- a different order on the two sides.
DROP TABLE IF EXISTS order_items, orders, products, customers CASCADE;

CREATE TABLE customers (
  id          bigint PRIMARY KEY,
  email       varchar(255) NOT NULL UNIQUE,
  name        text NOT NULL,
  created_at  timestamptz NOT NULL
);

CREATE TABLE products (
  id        bigint PRIMARY KEY,
  sku       text NOT NULL UNIQUE,
  name      text NOT NULL,
  category  text NOT NULL,
  price     numeric(10,2) NOT NULL,
  stock     integer NOT NULL
);

CREATE TABLE orders (
  id           bigint PRIMARY KEY,
  customer_id  bigint NOT NULL REFERENCES customers (id),
  status       text NOT NULL,
  total        numeric(12,2) NOT NULL,
  created_at   timestamptz NOT NULL
);
-- What "the orders of a customer" reads depend on (risky.sql drops it).
CREATE INDEX orders_customer_id_idx ON orders (customer_id);

CREATE TABLE order_items (
  order_id    bigint NOT NULL REFERENCES orders (id),
  line        integer NOT NULL,
  product_id  bigint NOT NULL REFERENCES products (id),
  quantity    integer NOT NULL,
  unit_price  numeric(10,2) NOT NULL,
  PRIMARY KEY (order_id, line)
);
