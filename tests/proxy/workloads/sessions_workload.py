"""Three sessions through shadow-proxy, interleaved, each with settings of
its own that change what its reads return (the third from its
StartupMessage's options): extra_float_digits, TimeZone (a
timestamptz), bytea_output, search_path, a custom setting through
set_config(..., false). The proxy records each unit with the settings its
session had; the shadow replays every unit on one connection (one key), so
a setting that reached another session's unit, or one not applied, shows as
a value mismatch. Changes rolled back (a transaction, a savepoint) and SET
LOCAL must not outlive their transaction; RESET ALL and DISCARD ALL end them.

Nine units make or use state the shadow's shared connection cannot hold (a
role, statements PREPAREd by SQL, LISTEN, DISCARD ALL, which cannot run in
the executor's transaction, and the DEALLOCATE ALL psycopg sends after it):
the proxy drops them as session_state, and the test expects exactly those
nine drops."""
import sys

import psycopg

READ = ("SELECT 0.1::float8 + 0.2::float8 AS sum, 1 / 3::float8 AS third, "
        "timestamptz '2024-01-01 00:00:00+00' AS midnight, 'ab\\001'::bytea AS bytes, "
        "(SELECT owner FROM accounts WHERE id = 1) AS owner")
SETTINGS = ("SELECT current_setting('extra_float_digits') AS digits, current_setting('bytea_output') AS bytea, "
            "current_setting('search_path') AS path, current_setting('TimeZone') AS zone, "
            # A custom setting is NULL until a session sets it, and '' after a
            # RESET; on the shadow's shared connection another session's units
            # may have defined it: the two are not told apart here.
            "coalesce(current_setting('myapp.tenant', true), '') AS tenant")

a = psycopg.connect(sys.argv[1], autocommit=True)
b = psycopg.connect(sys.argv[1], autocommit=True)
# A third session gets its settings in the StartupMessage (options).
c = psycopg.connect(sys.argv[1], autocommit=True, options="-c search_path=archive,public -c bytea_output=escape")


def run(conn, sql):
    cur = conn.execute(sql)
    return cur.fetchall() if cur.description else None


def both_read():
    for conn in (a, b, c):
        run(conn, READ)
        run(conn, SETTINGS)


both_read()
run(a, "SET extra_float_digits = 0")
both_read()
run(b, "SET bytea_output = escape")
run(a, "SET TimeZone = 'Asia/Tokyo'")
run(b, "SET search_path TO archive, public")
both_read()
run(a, "SELECT set_config('myapp.tenant', 'acme', false)")
run(b, "SELECT set_config('myapp.tenant', 'globex', false)")
both_read()

# Rolled back: the SET goes with its transaction.
try:
    with a.transaction():
        run(a, "SET bytea_output = escape")
        run(a, READ)
        raise RuntimeError("roll back")
except RuntimeError:
    pass
# SET LOCAL ends with its transaction; a savepoint rolled back to undoes the SET after it.
with b.transaction():
    run(b, "SET LOCAL extra_float_digits = 0")
    run(b, READ)
    run(b, "SAVEPOINT s")
    run(b, "SET search_path TO public")
    run(b, "ROLLBACK TO SAVEPOINT s")
    run(b, READ)
both_read()
# Inside a transaction that commits, the SET holds for the rest of it and after.
with a.transaction():
    run(a, "SET extra_float_digits = 3")
    run(a, READ)
both_read()

# State the shadow cannot hold: dropped, counted (session_state), seven units
# (and the DISCARD ALL below, and psycopg's DEALLOCATE ALL after it).
run(a, "SET ROLE postgres")
run(a, "SELECT 1")
run(a, "RESET ROLE")
run(b, "PREPARE q AS SELECT 1")
run(b, "EXECUTE q")
run(b, "DEALLOCATE q")
run(b, "LISTEN shadow_test")

run(a, "RESET ALL")
run(b, "DISCARD ALL")
both_read()
run(c, "SET search_path = public")
run(c, READ)
run(c, "RESET search_path")  # back to the startup value
run(c, READ)
for conn in (a, b, c):
    conn.close()
print("three sessions done")
