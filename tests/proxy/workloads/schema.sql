-- The same schema and rows on the primary and the shadow (no migration):
-- every compared request must agree.
CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric(12,2) NOT NULL, opened date NOT NULL);
CREATE TABLE notes (id int PRIMARY KEY, account int NOT NULL REFERENCES accounts, body text);
CREATE TABLE imports (id int, body text);
CREATE TABLE bulk (id int, line text);  -- psql's COPY above the proxy's bound: dropped, announced as a gap
INSERT INTO accounts SELECT g, 'owner ' || g, g * 10.5, date '2024-01-01' + g FROM generate_series(1, 200) g;
-- A second table of the same name, for a session that moves its search_path.
CREATE SCHEMA archive;
CREATE TABLE archive.accounts (id int PRIMARY KEY, owner text NOT NULL);
INSERT INTO archive.accounts SELECT g, 'archived ' || g FROM generate_series(1, 20) g;
