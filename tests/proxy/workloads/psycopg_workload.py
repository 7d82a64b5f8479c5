"""psycopg 3 through shadow-proxy: extended protocol (server-side binding),
transactions and savepoints from conn.transaction(), a pipeline (several
Syncs in flight), a prepared statement, COPY both ways, an error.

Parameters are passed in text format (%t): the wire record carries text
parameters only, so a binary one (%b, or what %s picks for a Python int)
makes the proxy drop its unit as binary_parameters; the one %b statement
below checks that it does, and counts."""
import sys

import psycopg

with psycopg.connect(sys.argv[1]) as conn:
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT id, owner, balance, opened FROM accounts WHERE id <= %t ORDER BY id", (20,))
    cur.fetchall()
    cur.execute("SELECT count(*), sum(balance) FROM accounts")
    cur.execute("UPDATE accounts SET balance = balance + %t WHERE id = %t", ("5", 3))
    cur.execute("INSERT INTO notes VALUES (%t, %t, %t)", (1, 3, "first"))
    with conn.transaction():
        cur.execute("UPDATE accounts SET balance = balance - 1 WHERE id = %t", (4,))
        try:
            with conn.transaction():  # SAVEPOINT ... ROLLBACK TO SAVEPOINT
                cur.execute("INSERT INTO notes VALUES (%t, %t, %t)", (1, 4, "a duplicate"))
        except psycopg.errors.UniqueViolation:
            pass
        cur.execute("INSERT INTO notes VALUES (%t, %t, %t)", (2, 4, "second"))
    try:
        with conn.transaction():
            cur.execute("DELETE FROM notes WHERE id = %t", (1,))
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    with conn.pipeline():
        for account in (6, 7, 8):
            cur.execute("SELECT owner, balance FROM accounts WHERE id = %t", (account,))
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
        cur.execute("SELECT owner FROM accounts WHERE id = %t", (9,))
    cur.execute("SELECT owner FROM accounts WHERE id = %b", (10,))  # dropped: binary_parameters
    cur.execute("SELECT * FROM notes ORDER BY id")
    cur.execute("SELECT id, balance FROM accounts WHERE id IN (3, 4, 5) ORDER BY id")
