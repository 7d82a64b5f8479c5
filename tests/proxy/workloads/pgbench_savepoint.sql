-- pgbench script: a transaction with a savepoint rolled back to, and a rollback.
\set aid random(1, 100000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;
SAVEPOINT s;
UPDATE pgbench_accounts SET abalance = abalance + 1000 WHERE aid = :aid;
ROLLBACK TO SAVEPOINT s;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
COMMIT;
BEGIN;
UPDATE pgbench_tellers SET tbalance = tbalance - 1 WHERE tid = 1;
ROLLBACK;
