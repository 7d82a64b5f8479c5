"""asyncpg through shadow-proxy: named prepared statements with binary
parameters and binary results everywhere, transactions with a savepoint
(nested transaction) rolled back to, a rollback, COPY both ways, an error.
Binary integers and text are recorded in text; numeric, date and
timestamptz parameters stay binary with their types, and results of those
types are digested over their binary bytes (requests v2): the executor
replays them alike, so they compare with 0 discrepancies. fetchval/fetchrow
are row-limited (dropped as row_limited), COPY TO STDOUT as copy_data (its
binary COPY FROM STDIN is recorded with its data): the test
expects exactly those."""
import asyncio
import datetime
import decimal
import io
import sys

import asyncpg


async def main(url):
    c = await asyncpg.connect(url)
    await c.fetch("SELECT id, owner FROM accounts WHERE id <= $1 ORDER BY id", 20)
    await c.fetchval("SELECT count(*) FROM accounts")
    await c.execute("UPDATE accounts SET balance = balance + 5 WHERE id = $1", 3)
    await c.execute("INSERT INTO notes VALUES ($1, $2, $3)", 1, 3, "first")
    async with c.transaction():
        await c.execute("UPDATE accounts SET balance = balance - 1 WHERE id = $1", 4)
        try:
            async with c.transaction():  # SAVEPOINT ... ROLLBACK TO SAVEPOINT
                await c.execute("INSERT INTO notes VALUES ($1, $2, $3)", 1, 4, "a duplicate")
        except asyncpg.UniqueViolationError:
            pass
        await c.execute("INSERT INTO notes VALUES ($1, $2, $3)", 2, 4, "second")
    rolled_back = c.transaction()
    await rolled_back.start()
    await c.execute("DELETE FROM notes WHERE id = $1", 1)
    await rolled_back.rollback()
    try:
        await c.fetch("SELECT no_such_column FROM accounts")
    except asyncpg.UndefinedColumnError:
        pass
    for account in (6, 7, 8):
        await c.fetchrow("SELECT owner, id FROM accounts WHERE id = $1", account)
    await c.fetchval("SELECT balance FROM accounts WHERE id = $1", 5)  # dropped: row_limited
    # Binary numeric, date and timestamptz both ways: recorded as v2 requests.
    rows = await c.fetch("SELECT id, balance, opened FROM accounts WHERE balance > $1 AND opened < $2 ORDER BY id",
                         decimal.Decimal("100.50"), datetime.date(2024, 1, 20))
    assert [r["id"] for r in rows] == list(range(10, 19)), rows
    due = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc)
    rows = await c.fetch("SELECT id, $1::timestamptz + interval '1 day' * id AS due FROM accounts WHERE id <= 3 "
                         "ORDER BY id", due)
    assert rows[0]["due"] == due + datetime.timedelta(days=1), rows
    await c.execute("UPDATE accounts SET balance = balance + $1, opened = $2 WHERE id = $3",
                    decimal.Decimal("2.25"), datetime.date(2024, 2, 29), 9)
    await c.copy_from_query("SELECT id, owner FROM accounts WHERE id <= 5 ORDER BY id", output=io.BytesIO())
    await c.copy_records_to_table("imports", records=[(1, "one"), (2, "two")])
    rows = await c.fetch("SELECT * FROM notes ORDER BY id")
    assert [tuple(r) for r in rows] == [(1, 3, "first"), (2, 4, "second")], rows
    await c.close()


asyncio.run(main(sys.argv[1]))
