"""psycopg 3 through shadow-proxy: extended protocol (server-side binding),
transactions and savepoints from conn.transaction(), a pipeline (several
Syncs in flight), a prepared statement, COPY both ways, an error.

Parameters go as psycopg picks (%s: Python ints in binary, which the proxy
records in text). A binary numeric (a Decimal with %b) stays binary with its
type in a v2 record, as does the COPY FROM STDIN with its data; COPY TO
STDOUT is the one unit dropped (copy_data), and the test expects exactly
that."""
import sys
from decimal import Decimal

import psycopg

with psycopg.connect(sys.argv[1]) as conn:
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT id, owner, balance, opened FROM accounts WHERE id <= %s ORDER BY id", (20,))
    cur.fetchall()
    cur.execute("SELECT count(*), sum(balance) FROM accounts")
    cur.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", ("5", 3))
    cur.execute("INSERT INTO notes VALUES (%s, %s, %s)", (1, 3, "first"))
    with conn.transaction():
        cur.execute("UPDATE accounts SET balance = balance - 1 WHERE id = %s", (4,))
        try:
            with conn.transaction():  # SAVEPOINT ... ROLLBACK TO SAVEPOINT
                cur.execute("INSERT INTO notes VALUES (%s, %s, %s)", (1, 4, "a duplicate"))
        except psycopg.errors.UniqueViolation:
            pass
        cur.execute("INSERT INTO notes VALUES (%s, %s, %s)", (2, 4, "second"))
    try:
        with conn.transaction():
            cur.execute("DELETE FROM notes WHERE id = %s", (1,))
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    with conn.pipeline():
        for account in (6, 7, 8):
            cur.execute("SELECT owner, balance FROM accounts WHERE id = %s", (account,))
    try:
        cur.execute("SELECT no_such_column FROM accounts")
    except psycopg.errors.UndefinedColumn:
        pass
    with cur.copy("COPY (SELECT id, owner FROM accounts WHERE id <= 5 ORDER BY id) TO STDOUT") as copy:
        for _ in copy:
            pass
    with cur.copy("COPY imports FROM STDIN") as copy:
        copy.write_row((1, "one"))
    for _ in range(6):  # past psycopg's prepare threshold (5): a named prepared statement
        cur.execute("SELECT owner FROM accounts WHERE id = %s", (9,))
    cur.execute("SELECT owner FROM accounts WHERE id = %b", (10,))
    cur.execute("SELECT owner FROM accounts WHERE balance = %b", (Decimal("73.50"),))  # binary numeric: v2
    cur.execute("SELECT * FROM notes ORDER BY id")
    cur.execute("SELECT id, balance FROM accounts WHERE id IN (3, 4, 5) ORDER BY id")
