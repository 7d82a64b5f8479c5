#!/usr/bin/env bash
# tls_test.sh BIN_DIR — shadow-proxy's TLS, with a self-signed certificate
# made here by `openssl req`:
#  * with --tls-cert/--tls-key: SSLRequest answered 'S'; psql (sslmode=require)
#    and node-postgres (ssl, certificate not verified) run through TLS and the
#    capture records their units as in plain text (/metrics and the topic);
#    a StartupMessage of 8 KB in one TLS record arrives whole; bytes sent after an SSLRequest
#    before the handshake are refused (08P01), so is a second SSLRequest
#    inside TLS; a CancelRequest through TLS (libpq 18) reaches its backend;
#    a failed handshake is counted and leaves the other sessions alone;
#  * a ~330 MB result through TLS, read slowly, with the proxy's peak RSS
#    (VmHWM) small: backpressure holds with TLS; with 9 KiB buffers, 200 KB
#    each way through both TLS hops (records larger than the room left);
#  * without the options: 'N' (sslmode=require refused, prefer in plain text);
#  * a certificate that cannot be read or is not PEM: the proxy does not start
#    and says which file;
#  * TLS to the primary: a cluster of the test's own with ssl=on and hostssl
#    lines only, reached with --primary-sslmode require (pg_stat_ssl says so;
#    SCRAM works with channel_binding=disable), refused without it; require
#    against a primary without TLS refuses the client, prefer goes on plain.
set -euo pipefail
bin=$1
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[ -n "${SHADOWPIPE_BROKERS:-}" ] || eval "$("$root/scripts/stack" env)"
run=proxy-tls-$(date +%s)-$$
db=px_tls_$$
pg_bin=${SHADOWPIPE_PG_BIN:-/usr/lib/postgresql/15/bin}
as_pg=()
[ "$(id -u)" -ne 0 ] || as_pg=(runuser -u postgres --)
work=$(mktemp -d)
chmod 755 "$work"
cluster=$work/cluster
pids=()
fail() { echo "FAIL: $*"; for log in "$work"/*.log; do echo "--- $log"; tail -n 15 "$log"; done; exit 1; }
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ -f "$cluster/postmaster.pid" ] && "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$cluster" -m immediate -w stop >/dev/null 2>&1
  psql "$PRIMARY_DSN" -XAtqc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
ok() { echo "ok: $*"; }
primary_port=$(echo "$PRIMARY_DSN" | sed -n 's/.*port=\([0-9]*\).*/\1/p')
# Free loopback ports, chosen by the kernel: nothing to collide with.
read -r tls_port plain_port metrics_port cluster_port both_port no_primary_tls_port require_port prefer_port \
  <<<"$(python3 -c 'import socket
s=[socket.socket() for _ in range(8)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))')"

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost -keyout "$work/key.pem" -out "$work/cert.pem" \
    >"$work/openssl.out" 2>&1 || fail "openssl req: $(tail -3 "$work/openssl.out")"
# The primary's own (channel binding hashes the certificate the client sees).
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=primary -keyout "$work/primary-key.pem" \
    -out "$work/primary-cert.pem" >>"$work/openssl.out" 2>&1 || fail "openssl req: $(tail -3 "$work/openssl.out")"
"$bin/shadowctl" topics create --partitions 1 --requests-topic "$run.requests" --results-topic "$run.results" \
    --mismatches-topic "$run.mismatches" --summary-topic "$run.summary" --dlq-topic "$run.dlq" \
    >"$work/topics.log" 2>&1 || fail "topics create"
psql "$PRIMARY_DSN" -XAtqc "CREATE DATABASE $db TEMPLATE template0" >/dev/null || fail "create database"
psql "$PRIMARY_DSN dbname=$db" -XAtqc "CREATE TABLE marks (id int PRIMARY KEY, what text)" >/dev/null || fail "schema"

started() { for _ in $(seq 1 50); do grep -q "listening on" "$1" && return 0; sleep 0.1; done; fail "$1: not started"; }
tls=(--tls-cert "$work/cert.pem" --tls-key "$work/key.pem")
"$bin/shadow-proxy" --listen "127.0.0.1:$tls_port" --primary "127.0.0.1:$primary_port" --topic "$run.requests" \
    --metrics-port "127.0.0.1:$metrics_port" "${tls[@]}" >"$work/proxy.log" 2>&1 &
proxy_pid=$!
pids+=("$proxy_pid")
"$bin/shadow-proxy" --listen "127.0.0.1:$plain_port" --primary "127.0.0.1:$primary_port" --no-capture \
    >"$work/plain-proxy.log" 2>&1 &
pids+=($!)
"$bin/shadow-proxy" --listen "127.0.0.1:$require_port" --primary "127.0.0.1:$primary_port" --no-capture \
    --primary-sslmode require >"$work/require-proxy.log" 2>&1 &
pids+=($!)
"$bin/shadow-proxy" --listen "127.0.0.1:$prefer_port" --primary "127.0.0.1:$primary_port" --no-capture \
    --primary-sslmode prefer >"$work/prefer-proxy.log" 2>&1 &
pids+=($!)
for log in proxy plain-proxy require-proxy prefer-proxy; do started "$work/$log.log"; done

metrics() { curl -sf "127.0.0.1:$metrics_port/metrics" || fail "no /metrics"; }
metric() { metrics | sed -n "s/^$1 //p"; }
# The recording thread hands units over asynchronously: wait for the count.
units_reach() {
  for _ in $(seq 1 100); do [ "$(metric shadowpipe_proxy_units_recorded_total)" = "$1" ] && return 0; sleep 0.1; done
  fail "units recorded: $(metric shadowpipe_proxy_units_recorded_total), expected $1"
}
tls_dsn="host=127.0.0.1 port=$tls_port user=postgres dbname=$db"

# psql through TLS: three units (an insert, a transaction, a select).
cat >"$work/psql.sql" <<'SQL'
\conninfo
INSERT INTO marks VALUES (1, 'psql over tls');
BEGIN;
INSERT INTO marks VALUES (2, 'psql over tls, in a transaction');
UPDATE marks SET what = what || '!' WHERE id = 2;
COMMIT;
SELECT count(*) FROM marks;
SQL
psql "$tls_dsn sslmode=require" -X -v ON_ERROR_STOP=1 -f "$work/psql.sql" >"$work/psql.log" 2>&1 || fail "psql over TLS"
grep -q "SSL connection (protocol: TLSv1" "$work/psql.log" || fail "psql's connection is not TLS: $(head -3 "$work/psql.log")"
units_reach 3
ok "psql sslmode=require through the proxy: TLS ($(grep -o 'protocol: [^,]*' "$work/psql.log")), 3 units recorded"

# A StartupMessage over 8 KiB (a long option) in one TLS record: read in
# parts, the rest would wait inside OpenSSL, where no readiness announces it.
padding=$(head -c 8000 /dev/zero | tr '\0' a)
answer=$(PGOPTIONS="-c shadowtest.padding=$padding" timeout 10 psql "$tls_dsn sslmode=require connect_timeout=5" \
  -XAtc "SELECT 'long startup', length(current_setting('shadowtest.padding'))" 2>"$work/long-startup.log") \
  || fail "a StartupMessage of 8 KB over TLS: ${answer:0:200}"
[ "$answer" = "long startup|8000" ] || fail "long startup answered: ${answer:0:200}"
ok "a StartupMessage of 8 KB through TLS arrives whole"
units_reach 4

# node-postgres through TLS (its own TLS stack, not libpq's).
NODE_PATH=$root/.cache/clients/node/node_modules node - "$tls_port" "$db" >"$work/node.log" 2>&1 <<'JS' || fail "node-postgres over TLS"
const { Client } = require('pg');
(async () => {
  const client = new Client({ host: '127.0.0.1', port: Number(process.argv[2]), user: 'postgres',
                              database: process.argv[3], ssl: { rejectUnauthorized: false } });
  await client.connect();
  if (!client.connection.stream.encrypted) throw new Error('node-postgres connection is not TLS');
  console.log('cipher', JSON.stringify(client.connection.stream.getCipher()));
  await client.query('INSERT INTO marks VALUES ($1, $2)', [3, 'node over tls']);
  const result = await client.query('SELECT what FROM marks WHERE id = $1', [3]);
  if (result.rows[0].what !== 'node over tls') throw new Error('read back ' + JSON.stringify(result.rows));
  await client.end();
})().catch((e) => { console.error(e); process.exit(1); });
JS
units_reach 6
ok "node-postgres with ssl through the proxy: $(grep cipher "$work/node.log" | head -c 80), 2 units recorded"

PYTHONPATH=$root/.cache/clients/python python3 - "$tls_port" "$plain_port" "$db" "$proxy_pid" <<'PY' || fail "raw TLS checks and the large result"
import socket, ssl, struct, sys, time
import psycopg

tls_port, plain_port, db, proxy_pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
failures = []
def check(condition, what):
    print(("ok: " if condition else "FAIL: ") + what, flush=True)
    if not condition:
        failures.append(what)

def first_answer(port, payload):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(payload)
    out = s.recv(1 << 16)
    s.close()
    return out

ssl_request = struct.pack("!ii", 8, 80877103)
startup = struct.pack("!i", 196608) + b"user\0postgres\0database\0" + db.encode() + b"\0\0"
startup = struct.pack("!i", len(startup) + 4) + startup
check(first_answer(tls_port, ssl_request) == b"S", "with --tls-cert, SSLRequest is answered S")
check(first_answer(plain_port, ssl_request) == b"N", "without --tls-cert, SSLRequest is answered N")
# A StartupMessage sent with the SSLRequest, before any handshake: refused in
# plain text, as PostgreSQL refuses it (CVE-2021-23214).
answer = first_answer(tls_port, ssl_request + startup)
check(answer[:1] == b"E" and b"C08P01" in answer and b"unencrypted data after SSL request" in answer,
      "bytes after SSLRequest before the handshake: 08P01 in plain text: %r" % answer[:60])

# A client whose handshake is garbage: the proxy closes it; others go on.
s = socket.create_connection(("127.0.0.1", tls_port), timeout=5)
s.sendall(ssl_request)
check(s.recv(1) == b"S", "SSLRequest answered S before a bad handshake")
s.sendall(b"\x16\x03\x01\x00\x05hello" + b"not a ClientHello" * 4)
rest = b""
try:
    while chunk := s.recv(4096):
        rest += chunk
except (socket.timeout, ConnectionResetError):
    pass
s.close()
check(not rest.startswith(b"E"), "a failed handshake closes the connection without a plain-text answer")

check(first_answer(tls_port, struct.pack("!ii", 8, 80877104)) == b"N", "with --tls-cert, GSSENCRequest is still answered N")

# A second SSLRequest inside TLS: 08P01 (through TLS), as PostgreSQL refuses it.
raw = socket.create_connection(("127.0.0.1", tls_port), timeout=5)
raw.sendall(ssl_request)
check(raw.recv(1) == b"S", "SSLRequest answered S")
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
wrapped = context.wrap_socket(raw)
wrapped.sendall(ssl_request)
answer = wrapped.recv(4096)
wrapped.close()
check(answer[:1] == b"E" and b"C08P01" in answer, "a second SSLRequest inside TLS: 08P01: %r" % answer[:50])

# CancelRequest through TLS (libpq 17 and later send it encrypted, as the
# session was): the proxy ends the TLS and forwards the 16 bytes.
import threading
with psycopg.connect(f"host=127.0.0.1 port={tls_port} user=postgres dbname={db} sslmode=require") as c:
    threading.Timer(0.5, c.cancel_safe).start()
    started = time.time()
    try:
        c.execute("SELECT pg_sleep(20)")
        check(False, "pg_sleep cancelled through TLS")
    except psycopg.errors.QueryCanceled:
        check(time.time() - started < 10, "pg_sleep cancelled through TLS (57014) in %.1fs, libpq %d" % (time.time() - started, psycopg.pq.version()))

with psycopg.connect(f"host=127.0.0.1 port={plain_port} user=postgres dbname={db} sslmode=prefer") as c:
    check(c.execute("SELECT 1").fetchone() == (1,) and not c.pgconn.ssl_in_use,
          "a proxy without TLS: sslmode=prefer goes on in plain text")
try:
    psycopg.connect(f"host=127.0.0.1 port={plain_port} user=postgres dbname={db} sslmode=require").close()
    check(False, "a proxy without TLS refuses sslmode=require")
except psycopg.OperationalError as e:
    check("SSL" in str(e), "a proxy without TLS: sslmode=require refused: " + str(e).strip()[:70])

# A large result through TLS, read slowly (every row parsed in Python).
rows = 0
started = time.time()
with psycopg.connect(f"host=127.0.0.1 port={tls_port} user=postgres dbname={db} sslmode=require", autocommit=True) as c:
    check(c.pgconn.ssl_in_use, "the large result's connection is TLS")
    for row in c.cursor().stream("SELECT g, repeat('x', 100) FROM generate_series(1, 3000000) g"):
        rows += 1
check(rows == 3000000, "3,000,000 rows (~330 MB on the wire) through TLS in %.1fs" % (time.time() - started))
hwm = next(int(line.split()[1]) for line in open(f"/proc/{proxy_pid}/status") if line.startswith("VmHWM"))
check(hwm < 64 * 1024, "the proxy's peak RSS stayed small with TLS: VmHWM %d kB (bound 65536 kB)" % hwm)
sys.exit(1 if failures else 0)
PY
units_reach 8  # and the cancelled statement, with its error
[ "$(metric shadowpipe_proxy_cancel_requests_total)" = 1 ] \
  || fail "cancels forwarded: $(metric shadowpipe_proxy_cancel_requests_total), expected 1"
# Failed: the client that closed after its 'S', and the garbage handshake.
[ "$(metric 'shadowpipe_proxy_tls_failures_total{side="client"}')" = 2 ] \
  || fail "client TLS failures: $(metric 'shadowpipe_proxy_tls_failures_total{side="client"}'), expected 2"
# Completed: psql, the long startup, node-postgres, the second SSLRequest's,
# the cancelled session and its CancelRequest, the large result.
[ "$(metric 'shadowpipe_proxy_tls_handshakes_total{side="client"}')" = 7 ] \
  || fail "client TLS handshakes: $(metric 'shadowpipe_proxy_tls_handshakes_total{side="client"}'), expected 7"
ok "/metrics: 7 client TLS handshakes completed, 2 failed; 8 units recorded, 1 cancel forwarded"

# A certificate that cannot be used: no start, and the message names the file.
for case in "missing:$work/no-such-cert.pem:$work/key.pem:no-such-cert.pem" \
            "not-pem:$work/psql.sql:$work/key.pem:is not a PEM certificate" \
            "not-a-key:$work/cert.pem:$work/cert.pem:is not the PEM private key of --tls-cert" \
            "other-key:$work/cert.pem:$work/primary-key.pem:key values mismatch"; do
  IFS=: read -r name cert key expected <<<"$case"
  status=0
  timeout 10 "$bin/shadow-proxy" --listen 127.0.0.1:0 --primary "127.0.0.1:$primary_port" --no-capture \
      --tls-cert "$cert" --tls-key "$key" >"$work/bad-$name.log" 2>&1 || status=$?
  [ "$status" -ne 0 ] && [ "$status" -ne 124 ] || fail "shadow-proxy with a $name certificate: exit $status"
  grep -q -- "$expected" "$work/bad-$name.log" || fail "$name certificate: $(cat "$work/bad-$name.log")"
  ok "a $name certificate: exit $status: $(head -1 "$work/bad-$name.log" | cut -c1-110)"
done

# TLS to the primary. The stack's primary has none: require refuses, prefer goes on.
answer=$(psql "host=127.0.0.1 port=$require_port user=postgres dbname=$db" -XAtc "SELECT 1" 2>&1) \
  && fail "--primary-sslmode require to a primary without TLS let the client in"
echo "$answer" | grep -q "does not accept TLS" || fail "require to a plain primary: $answer"
ok "--primary-sslmode require, primary without TLS: the client is told: $(echo "$answer" | head -1 | cut -c1-100)"
answer=$(psql "host=127.0.0.1 port=$prefer_port user=postgres dbname=$db" -XAtc "SELECT 'prefer went on'" 2>&1) \
  || fail "--primary-sslmode prefer to a plain primary: $answer"
[ "$answer" = "prefer went on" ] || fail "prefer answered: $answer"
ok "--primary-sslmode prefer, primary without TLS: plain text"

# A primary of the test's own that accepts TLS connections only.
mkdir "$cluster"
[ "$(id -u)" -ne 0 ] || chown postgres "$cluster" "$work"
"${as_pg[@]}" "$pg_bin/initdb" -D "$cluster" -U postgres --auth=trust -E UTF8 --no-locale >"$work/initdb.log" 2>&1 \
  || fail "initdb"
cp "$work/primary-cert.pem" "$cluster/cert.pem"
cp "$work/primary-key.pem" "$cluster/key.pem"
chmod 600 "$cluster/key.pem"
[ "$(id -u)" -ne 0 ] || chown postgres "$cluster/cert.pem" "$cluster/key.pem"
cat >>"$cluster/postgresql.conf" <<CONF
ssl = on
ssl_cert_file = 'cert.pem'
ssl_key_file = 'key.pem'
listen_addresses = '127.0.0.1'
unix_socket_directories = '$cluster'
password_encryption = 'scram-sha-256'
CONF
cat >"$cluster/pg_hba.conf" <<'HBA'
local   all  all                     trust
hostssl all  scram_user 127.0.0.1/32 scram-sha-256
host    all  scram_plain 127.0.0.1/32 scram-sha-256
hostssl all  postgres   127.0.0.1/32 trust
HBA
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$cluster" -o "-p $cluster_port" -l "$work/cluster.log" -w -t 60 start \
    >"$work/pg_ctl.log" 2>&1 || fail "the TLS-only cluster did not start"
psql "host=$cluster port=$cluster_port user=postgres dbname=postgres" -XAtqc \
    "CREATE ROLE scram_user LOGIN PASSWORD 'scram-secret'; CREATE ROLE scram_plain LOGIN PASSWORD 'scram-secret'" \
    >/dev/null || fail "create roles"
"$bin/shadow-proxy" --listen "127.0.0.1:$both_port" --primary "127.0.0.1:$cluster_port" --no-capture \
    --primary-sslmode require "${tls[@]}" --buffer-kb 9 >"$work/both-proxy.log" 2>&1 &
both_pid=$!
pids+=($!)
"$bin/shadow-proxy" --listen "127.0.0.1:$no_primary_tls_port" --primary "127.0.0.1:$cluster_port" --no-capture \
    "${tls[@]}" >"$work/no-primary-tls-proxy.log" 2>&1 &
pids+=($!)
started "$work/both-proxy.log"; started "$work/no-primary-tls-proxy.log"

answer=$(psql "host=127.0.0.1 port=$both_port user=postgres dbname=postgres sslmode=require" -XAt \
  -c '\conninfo' -c "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()" 2>&1) \
  || fail "the TLS-only primary through --primary-sslmode require: $answer"
echo "$answer" | grep -q "SSL connection" || fail "client side not TLS: $answer"
[ "$(echo "$answer" | tail -1)" = t ] || fail "pg_stat_ssl on the primary says: $answer"
ok "a hostssl-only primary through --primary-sslmode require: TLS on both hops (the primary's pg_stat_ssl: t)"
# A 208 KB statement and a 200 KB result through both TLS hops, with 9 KiB
# buffers (--buffer-kb 9): libpq's 16 KB records and the server's 8 KB ones
# are larger than the room left. Read in parts, a record's rest would wait
# inside OpenSSL, where no readiness announces it. The statement is 13 full
# records, so its last one arrives with nothing after it on the socket.
# (A Query message: type, length and a NUL around the text.)
head="SELECT length('" tail="'), repeat('y', 200000)"
x_count=$((13 * 16384 - 6 - ${#head} - ${#tail}))
{ printf %s "$head"; head -c "$x_count" /dev/zero | tr '\0' x; printf %s "$tail"; } >"$work/big.sql"
answer=$(timeout 20 psql "host=127.0.0.1 port=$both_port user=postgres dbname=postgres sslmode=require" -XAt \
  -f "$work/big.sql" 2>&1) || fail "200 KB each way through both TLS hops with 9 KiB buffers: ${answer:0:200}"
[ "$answer" = "$x_count|$(head -c 200000 /dev/zero | tr '\0' y)" ] \
  || fail "200 KB each way answered: ${answer:0:100} (${#answer} characters)"
ok "200 KB each way through both TLS hops with 9 KiB buffers"
# A result read slowly through both TLS hops: the primary's records are
# decrypted into what room there is, the rest held by OpenSSL until there is more.
PYTHONPATH=$root/.cache/clients/python python3 - "$both_port" "$both_pid" <<'PY' || fail "a large result through both TLS hops"
import sys, time
import psycopg
port, pid = int(sys.argv[1]), int(sys.argv[2])
rows, started = 0, time.time()
with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=require", autocommit=True) as c:
    for row in c.cursor().stream("SELECT g, repeat('x', 100) FROM generate_series(1, 1000000) g"):
        rows += 1
hwm = next(int(line.split()[1]) for line in open(f"/proc/{pid}/status") if line.startswith("VmHWM"))
print("ok: %d rows (~110 MB) through both TLS hops in %.1fs, the proxy's VmHWM %d kB (bound 65536 kB)"
      % (rows, time.time() - started, hwm))
sys.exit(0 if rows == 1000000 and hwm < 64 * 1024 else 1)
PY
answer=$(PGPASSWORD=scram-secret psql "host=127.0.0.1 port=$both_port user=scram_user dbname=postgres sslmode=require channel_binding=disable" \
  -XAtc "SELECT current_user" 2>&1) || fail "SCRAM through both TLS hops, channel_binding=disable: $answer"
[ "$answer" = scram_user ] || fail "SCRAM answered: $answer"
ok "SCRAM through both TLS hops with channel_binding=disable"
# Channel binding hashes the certificate the client sees (the proxy's), which
# the primary compares with its own: it cannot pass. libpq's default (prefer)
# binds whenever the primary offers it, which it does over TLS.
for binding in prefer require; do
  answer=$(PGPASSWORD=scram-secret psql "host=127.0.0.1 port=$both_port user=scram_user dbname=postgres sslmode=require channel_binding=$binding" \
    -XAtc "SELECT current_user" 2>&1) && fail "channel_binding=$binding through a TLS-terminating proxy succeeded: $answer"
  echo "$answer" | grep -q "channel binding" || fail "channel_binding=$binding: $answer"
  ok "SCRAM with channel_binding=$binding over both TLS hops fails: $(echo "$answer" | grep -o 'FATAL.*' | head -1)"
done
# With the primary's hop in plain text the primary offers no channel binding:
# libpq's default goes through.
answer=$(PGPASSWORD=scram-secret psql "host=127.0.0.1 port=$no_primary_tls_port user=scram_plain dbname=postgres sslmode=require" \
  -XAtc "SELECT current_user" 2>&1) || fail "SCRAM, TLS to the proxy only, default channel_binding: $answer"
[ "$answer" = scram_plain ] || fail "SCRAM answered: $answer"
ok "SCRAM with libpq's default channel_binding when only the client's hop is TLS"
answer=$(psql "host=127.0.0.1 port=$no_primary_tls_port user=postgres dbname=postgres" -XAtc "SELECT 1" 2>&1) \
  && fail "the TLS-only primary let a plain connection in"
echo "$answer" | grep -q "no encryption" || fail "without --primary-sslmode: $answer"
ok "the same primary without --primary-sslmode: refused by its pg_hba ($(echo "$answer" | grep -o 'no pg_hba.conf entry[^"]*' | head -1 | cut -c1-60)...)"

kill -TERM "$proxy_pid"; wait "$proxy_pid" || fail "shadow-proxy exited with $?"
pids=("${pids[@]:1}")
kcat -b "$SHADOWPIPE_BROKERS" -C -t "$run.requests" -e -q -f '%s\n' >"$work/requests.jsonl"
for marker in "psql over tls" "psql over tls, in a transaction" "node over tls" "long startup"; do
  grep -qF "$marker" "$work/requests.jsonl" || fail "'$marker' is not on the requests topic"
done
ok "the requests topic holds the statements sent through TLS"
echo "PASS: TLS terminated and to the primary, the capture unchanged, memory flat"
