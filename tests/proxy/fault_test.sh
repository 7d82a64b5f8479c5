#!/usr/bin/env bash
# fault_test.sh BIN_DIR INDEX — shadow-proxy under faults, each beside a
# healthy session that must not notice:
#  * Terminate: the connection closes with no error from the proxy;
#  * malformed startups (bad length, unknown protocol code) and a message
#    length below 4 later: that connection gets ErrorResponse 08P01 and is
#    closed;
#  * SSLRequest answered 'N' (sslmode=prefer works, require is refused);
#  * CancelRequest reaches the right backend (pg_sleep cancelled, 57014);
#  * the primary ends one backend (pg_terminate_backend): that client gets
#    the server's error, the other keeps working; a primary that cannot be
#    reached gets the client a 08006 error;
#  * a client killed inside a transaction: its unit is dropped and counted
#    (client_gone), nothing of it reaches the topic;
#  * a ~1 GB result read by the client streams through with the
#    proxy's peak RSS (VmHWM) small: the proxy stops reading from the primary
#    while the client's buffer is full.
set -euo pipefail
bin=$1 index=$2
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[ -n "${SHADOWPIPE_BROKERS:-}" ] || eval "$("$root/scripts/stack" env)"
run=proxy-faults-$(date +%s)-$$
db=px_faults_$$
port=$((16700 + index)) metrics_port=$((${SHADOWPIPE_PROXY_METRICS_BASE:-16750} + index)) dead_port=$((16700 + index + 20))
work=$(mktemp -d)
pids=()
fail() { echo "FAIL: $*"; for log in "$work"/*.log; do echo "--- $log"; tail -n 15 "$log"; done; exit 1; }
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  psql "$PRIMARY_DSN" -XAtqc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
primary_port=$(echo "$PRIMARY_DSN" | sed -n 's/.*port=\([0-9]*\).*/\1/p')
"$bin/shadowctl" topics create --partitions 1 --requests-topic "$run.requests" --results-topic "$run.results" \
    --mismatches-topic "$run.mismatches" --summary-topic "$run.summary" --dlq-topic "$run.dlq" \
    >"$work/topics.log" 2>&1 || fail "topics create"
psql "$PRIMARY_DSN" -XAtqc "CREATE DATABASE $db TEMPLATE template0" >/dev/null || fail "create database"
psql "$PRIMARY_DSN dbname=$db" -XAtqc "CREATE TABLE marks (id int PRIMARY KEY, what text)" >/dev/null || fail "schema"

"$bin/shadow-proxy" --listen "127.0.0.1:$port" --primary "127.0.0.1:$primary_port" --topic "$run.requests" \
    --metrics-port "127.0.0.1:$metrics_port" >"$work/proxy.log" 2>&1 &
proxy_pid=$!
pids+=("$proxy_pid")
# A proxy whose primary is a port nothing listens on.
"$bin/shadow-proxy" --listen "127.0.0.1:$dead_port" --primary 127.0.0.1:9 --no-capture >"$work/dead-proxy.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do grep -q "listening on" "$work/proxy.log" && grep -q "listening on" "$work/dead-proxy.log" && break; sleep 0.1; done
grep -q "listening on" "$work/proxy.log" || fail "shadow-proxy did not start"

PYTHONPATH=$root/.cache/clients/python python3 - "$port" "$db" "$dead_port" "$proxy_pid" "$work" <<'PY' || fail "faults"
import os, signal, socket, struct, subprocess, sys, threading, time
import psycopg

port, db, dead_port, proxy_pid, work = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
dsn = f"host=127.0.0.1 port={port} user=postgres dbname={db}"
failures = []

def check(condition, what):
    print(("ok: " if condition else "FAIL: ") + what, flush=True)
    if not condition:
        failures.append(what)

def raw(payload, limit=1 << 20):
    """Sends bytes as a client's first packet; returns what the proxy answers
    before closing (or the first `limit` bytes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(payload)
    out = b""
    try:
        while len(out) < limit:
            chunk = s.recv(limit - len(out))
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        out += b"<timeout>"
    s.close()
    return out

def sqlstate(answer):
    if not answer.startswith(b"E"):
        return None
    fields = answer[5:].split(b"\0")
    return next((f[1:].decode() for f in fields if f[:1] == b"C"), None)

def messages(data):
    """(type, body) of each whole message in a server's byte stream."""
    out = []
    while len(data) >= 5:
        length = struct.unpack("!i", data[1:5])[0]
        out.append((data[:1], data[5:1 + length]))
        data = data[1 + length:]
    return out

def after_ready(message):
    """Opens a session (trust: startup, then ReadyForQuery), sends `message`
    and returns all the proxy sends until it closes the connection."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    startup = struct.pack("!i", 196608) + b"user\0postgres\0database\0" + db.encode() + b"\0\0"
    s.sendall(struct.pack("!i", len(startup) + 4) + startup)
    received = b""
    while not any(t == b"Z" for t, _ in messages(received)):
        received += s.recv(65536)
    s.sendall(message)
    after = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        after += chunk
    s.close()
    return after

# Terminate, then read on: the primary closing is the answer, not an error.
after = after_ready(b"X\0\0\0\4")
check(after == b"", "after Terminate the connection closes without an error: %r" % after[:60])
# A message length below 4 after startup: 08P01 to that client, then closed.
after = after_ready(b"Q\0\0\0\2")
check(sqlstate(after) == "08P01", "a message length of 2 after startup: 08P01 and closed: %r" % after[:40])

# A healthy session, inside a transaction, across every fault below.
healthy = psycopg.connect(dsn)
healthy.execute("INSERT INTO marks VALUES (1, 'healthy before')")

check(sqlstate(raw(struct.pack("!ii", 3, 0))) == "08P01", "startup length 3: 08P01 and closed")
check(sqlstate(raw(struct.pack("!ii", 1 << 30, 196608))) == "08P01", "startup length 1 GiB: 08P01 and closed")
check(sqlstate(raw(struct.pack("!ii", 8, 0x04D2162E))) == "08P01", "unknown protocol code: 08P01 and closed")
check(raw(struct.pack("!ii", 8, 80877103), limit=1) == b"N", "SSLRequest answered N")
check(raw(struct.pack("!ii", 8, 80877104), limit=1) == b"N", "GSSENCRequest answered N")
with psycopg.connect(dsn + " sslmode=prefer") as c:
    check(c.execute("SELECT 1").fetchone() == (1,), "sslmode=prefer goes on in plain text")
try:
    psycopg.connect(dsn + " sslmode=require").close()
    check(False, "sslmode=require refused")
except psycopg.OperationalError as e:
    check("SSL" in str(e), "sslmode=require refused: " + str(e).strip()[:60])

# CancelRequest: the key data passed through unchanged, so the cancel reaches the backend.
with psycopg.connect(dsn) as c:
    threading.Timer(0.5, c.cancel).start()
    started = time.time()
    try:
        c.execute("SELECT pg_sleep(20)")
        check(False, "pg_sleep cancelled")
    except psycopg.errors.QueryCanceled:
        check(time.time() - started < 10, "pg_sleep cancelled through the proxy (57014) in %.1fs" % (time.time() - started))

# The primary ends one session: that client gets the server's error; the healthy one goes on.
victim = psycopg.connect(dsn)
pid = victim.info.backend_pid
with psycopg.connect(dsn, autocommit=True) as admin:
    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
try:
    victim.execute("SELECT 1")
    check(False, "terminated session fails")
except psycopg.OperationalError as e:
    check("terminating connection" in str(e) or "closed" in str(e), "terminated session gets the server's error: " + str(e).strip().splitlines()[0][:70])
try:
    psycopg.connect(f"host=127.0.0.1 port={dead_port} user=postgres dbname={db} connect_timeout=5").close()
    check(False, "unreachable primary refused")
except psycopg.OperationalError as e:
    check("cannot reach the primary" in str(e), "unreachable primary: the client is told: " + str(e).strip()[:70])

# A client killed inside a transaction.
killed = subprocess.Popen([sys.executable, "-c", f"""
import os, signal, psycopg
c = psycopg.connect({dsn!r})
c.execute("INSERT INTO marks VALUES (2, 'killed inside its transaction')")
os.kill(os.getpid(), signal.SIGKILL)
"""], env=dict(os.environ))
killed.wait()
check(killed.returncode == -signal.SIGKILL, "the client was killed inside its transaction")

# A large result, read slowly (the client parses every row in Python).
rows = 0
started = time.time()
with psycopg.connect(dsn, autocommit=True) as c:
    for row in c.cursor().stream("SELECT g, repeat('x', 1000) FROM generate_series(1, 1000000) g"):
        rows += 1
check(rows == 1000000, "1,000,000 rows (~1 GB on the wire) streamed in %.1fs" % (time.time() - started))
hwm = next(int(line.split()[1]) for line in open(f"/proc/{proxy_pid}/status") if line.startswith("VmHWM"))
check(hwm < 64 * 1024, "the proxy's peak RSS stayed small: VmHWM %d kB (bound 65536 kB)" % hwm)

healthy.execute("INSERT INTO marks VALUES (3, 'healthy after')")
healthy.commit()
check(healthy.execute("SELECT count(*) FROM marks").fetchone() == (2,), "the healthy session's transaction committed, the killed one's did not")
healthy.commit()
healthy.close()
sys.exit(1 if failures else 0)
PY
sleep 0.5
metrics=$(curl -sf "127.0.0.1:$metrics_port/metrics") || fail "no /metrics"
metric() { echo "$metrics" | sed -n "s/^$1 //p"; }
[ "$(metric shadowpipe_proxy_protocol_errors_total)" = 4 ] || fail "protocol errors: $(metric shadowpipe_proxy_protocol_errors_total), expected 4"
[ "$(metric shadowpipe_proxy_cancel_requests_total)" = 1 ] || fail "cancels forwarded: $(metric shadowpipe_proxy_cancel_requests_total)"
[ "$(metric 'shadowpipe_proxy_units_dropped_total{reason="client_gone"}')" = 1 ] \
  || fail "client_gone drops: $(metric 'shadowpipe_proxy_units_dropped_total{reason="client_gone"}'), expected 1 (the killed client)"
[ "$(metric shadowpipe_proxy_connections_active)" = 0 ] || fail "connections still open: $(metric shadowpipe_proxy_connections_active)"
echo "ok: /metrics counts 4 protocol errors, 1 cancel, 1 unit dropped as client_gone, 0 open connections"
kill -TERM "$proxy_pid"; wait "$proxy_pid" || fail "shadow-proxy exited with $?"
pids=("${pids[@]:1}")
kcat -b "$SHADOWPIPE_BROKERS" -C -t "$run.requests" -e -q -f '%s\n' >"$work/requests.jsonl"
grep -q "killed inside its transaction" "$work/requests.jsonl" && fail "the killed client's unit reached the topic"
grep -q "healthy after" "$work/requests.jsonl" || fail "the healthy session's transaction is not on the topic"
echo "PASS: faults stayed with their own connection; the killed client's unit was dropped and counted"
