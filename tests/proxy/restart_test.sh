#!/usr/bin/env bash
# restart_test.sh BIN_DIR INDEX — the primary restarted (pg_ctl restart -m
# fast) under shadow-proxy, with clients connected through it: an idle
# session, one inside a transaction that wrote, one in the middle of a
# statement. Each gets the server's own error — the FATAL 57P01 "terminating
# connection due to administrator command" the server sends as it shuts
# down, relayed as it was, not the proxy's 08006 — and its connection
# closes; the open transaction's unit and the statement in flight are
# dropped and counted (primary_gone), the transaction's write is not on the
# primary; the same proxy process serves new sessions after the restart
# (writes and reads recorded). The proxy relays to one primary, so another
# primary's clients cannot share its process: what the test asks of the
# process is that it keeps serving. A cluster of the test's own
# (SHADOWPIPE_PRIVATE_PG_PORT or a free port), trust authentication.
# INDEX picks the proxy's ports (16700+INDEX, metrics 16750+INDEX; moved by
# SHADOWPIPE_PROXY_METRICS_BASE).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/private_primary.sh"
private_primary_setup restart "$1" "$2"
private_primary_start
psql "$direct" -XAtqc "CREATE TABLE marks (id int PRIMARY KEY, what text)" >/dev/null || fail "schema"
proxy_start

# The restart, run by the clients once they are in place.
echo "${as_pg[*]} $pg_bin/pg_ctl -D $work/data -l $work/server.log -m fast -w -t 60 restart >>$work/pg_ctl.log 2>&1" \
  >"$work/restart.sh"
# The clients connect and get to their places; the primary restarts; each
# reports what it got (one line each, in order).
PYTHONPATH=$root/.cache/clients/python python3 - "$port" "$work/restart.sh" >"$work/clients.log" 2>&1 <<'PY' \
  || fail "the clients across the restart"
import socket, struct, subprocess, sys, threading, time
import psycopg

port, restart = int(sys.argv[1]), sys.argv[2]
dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
failures = []

def check(condition, what):
    print(("ok: " if condition else "FAIL: ") + what, flush=True)
    if not condition:
        failures.append(what)

def messages(data):
    out = []
    while len(data) >= 5:
        length = struct.unpack("!i", data[1:5])[0]
        if len(data) < 1 + length:
            break
        out.append((data[:1], data[5:1 + length]))
        data = data[1 + length:]
    return out

def fields(body):
    return {f[:1].decode(): f[1:].decode() for f in body.split(b"\0") if f}

# An idle session on a raw socket: everything the proxy sends it after the
# restart, byte for byte.
raw = socket.create_connection(("127.0.0.1", port), timeout=30)
startup = struct.pack("!i", 196608) + b"user\0postgres\0database\0postgres\0\0"
raw.sendall(struct.pack("!i", len(startup) + 4) + startup)
received = b""
while not any(t == b"Z" for t, _ in messages(received)):
    received += raw.recv(65536)

idle = psycopg.connect(dsn, autocommit=True)
idle.execute("SELECT 1")
in_transaction = psycopg.connect(dsn)
in_transaction.execute("INSERT INTO marks VALUES (1, 'written in the transaction cut by the restart')")
running = psycopg.connect(dsn, autocommit=True)
outcome = {}
def long_statement():
    try:
        running.execute("SELECT pg_sleep(60)")
        outcome["running"] = None
    except psycopg.Error as e:
        outcome["running"] = e
thread = threading.Thread(target=long_statement)
thread.start()
time.sleep(0.5)  # the statement is in flight

started = time.monotonic()
subprocess.run(["bash", restart], check=True)
print("restarted in %.1f s" % (time.monotonic() - started), flush=True)
thread.join(30)

after = b""
while True:
    chunk = raw.recv(65536)
    if not chunk:
        break
    after += chunk
got = messages(after)
check(len(got) == 1 and got[0][0] == b"E" and fields(got[0][1]).get("S") == "FATAL"
      and fields(got[0][1]).get("C") == "57P01",
      "an idle session gets the server's FATAL 57P01 and the connection closes: %r" % after[:120])
check(b"shadow-proxy" not in after, "the error is the server's, not the proxy's")

e = outcome.get("running")
check(isinstance(e, psycopg.errors.AdminShutdown),
      "the statement in flight fails with the server's 57P01: %r" % (e,))
for name, conn in (("the idle session", idle), ("the transaction", in_transaction)):
    try:
        conn.execute("SELECT 1")
        check(False, name + " goes on after the restart")
    except psycopg.OperationalError as e:
        check("terminating connection due to administrator command" in str(e),
              name + " gets the server's error: " + " / ".join(str(e).split("\n"))[:150])

# The same proxy process: new sessions work, and their units are recorded.
with psycopg.connect(dsn, autocommit=True) as fresh:
    fresh.execute("INSERT INTO marks VALUES (2, 'after the restart')")
    rows = fresh.execute("SELECT id, what FROM marks ORDER BY id").fetchall()
    check(rows == [(2, "after the restart")],
          "a new session after the restart writes and reads; the cut transaction's write is gone: %r" % rows)
sys.exit(1 if failures else 0)
PY
cat "$work/clients.log"

kill -0 "$proxy_pid" || fail "shadow-proxy died"
for _ in $(seq 1 30); do
  recorded=$(curl -sf "127.0.0.1:$metrics_port/metrics" | sed -n 's/^shadowpipe_proxy_units_recorded_total //p')
  [ "${recorded:-0}" -ge 3 ] && break
  sleep 0.2
done
proxy_stop
# The transaction cut by the restart and the statement in flight; the idle
# sessions had nothing open.
[ "$(value dropped_primary_gone)" = 2 ] || fail "units dropped as primary_gone: $(value dropped_primary_gone), expected 2"
[ "$(value protocol_errors)" = 0 ] || fail "protocol errors: $(value protocol_errors)"
[ "$(value dropped_unmatched)" = 0 ] || fail "the capture lost its place"
# The idle session's SELECT 1 before the restart, the new session's INSERT and SELECT after it.
[ "$(value units)" = 3 ] || fail "units recorded: $(value units), expected 3"
echo "PASS: the primary restarted under shadow-proxy: its clients got the server's 57P01, new sessions work"
