-- Sent by psql through shadow-proxy: each statement is a simple Query
-- (`\;` joins two into one Query).
SELECT id, owner, balance, opened FROM accounts WHERE id <= 20 ORDER BY id;
SELECT count(*), sum(balance) FROM accounts;
SELECT owner FROM accounts WHERE balance > 1000 ORDER BY id LIMIT 5;
UPDATE accounts SET balance = balance + 5 WHERE id = 3;
INSERT INTO notes VALUES (1, 3, 'first');
BEGIN;
UPDATE accounts SET balance = balance - 1 WHERE id = 4;
SAVEPOINT before_note;
INSERT INTO notes VALUES (1, 4, 'a duplicate');
ROLLBACK TO SAVEPOINT before_note;
INSERT INTO notes VALUES (2, 4, 'second');
COMMIT;
BEGIN;
DELETE FROM notes WHERE id = 1;
UPDATE accounts SET balance = 0 WHERE id = 5;
ROLLBACK;
SELECT 1 AS one \; SELECT owner FROM accounts WHERE id = 7;
SELECT no_such_column FROM accounts;
COPY (SELECT id, owner FROM accounts WHERE id <= 5 ORDER BY id) TO STDOUT;
\copy imports FROM STDIN
1	one
2	two
\.
\copy bulk FROM STDIN
1	line 1 of a COPY over the proxy's --copy-max-bytes in this test (256)
2	line 2 of a COPY over the proxy's --copy-max-bytes in this test (256)
3	line 3 of a COPY over the proxy's --copy-max-bytes in this test (256)
4	line 4 of a COPY over the proxy's --copy-max-bytes in this test (256)
5	line 5 of a COPY over the proxy's --copy-max-bytes in this test (256)
\.
SELECT * FROM notes ORDER BY id;
SELECT id, balance FROM accounts WHERE id IN (3, 4, 5) ORDER BY id;
