#!/usr/bin/env bash
# client_test.sh BIN_DIR CLIENT INDEX — one client's scripted workload through
# shadow-proxy to the stack's primary, then the real shadow-executor and
# shadow-comparator over what the proxy recorded, with the same schema and
# rows on the shadow: every recorded request must be compared, with zero
# discrepancies, and the proxy must have dropped only what it says it cannot
# record (COPY TO STDOUT, and what each client's comment below says); COPY
# FROM STDIN is recorded with its data (requests v2) and compared like the rest;
# a dropped unit that wrote must reach the comparator as a shadow_gap.
# CLIENT: psql, pgbench-simple, pgbench-extended, pgbench-prepared, psycopg, node-pg, asyncpg, pgjdbc, and
# sessions (three psycopg sessions with settings of their own, on one shadow connection).
# INDEX picks the proxy's ports (16700+INDEX, metrics 16750+INDEX; the bases can be
# moved with SHADOWPIPE_PROXY_PORT_BASE and SHADOWPIPE_PROXY_METRICS_BASE).
set -euo pipefail
bin=$1 client=$2 index=$3
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$root/tests/proxy
source "$here/proxy_summary.sh"
[ -n "${SHADOWPIPE_BROKERS:-}" ] || eval "$("$root/scripts/stack" env)"
run=proxy-$client-$(date +%s)-$$
db=px_$(echo "$client" | tr -c 'a-z0-9\n' '_')_$$
port=$((${SHADOWPIPE_PROXY_PORT_BASE:-16700} + index)) metrics_port=$((${SHADOWPIPE_PROXY_METRICS_BASE:-16750} + index))
work=$(mktemp -d)
pids=()
fail() { echo "FAIL: $*"; for log in "$work"/*.log; do echo "--- $log"; head -n 20 "$log"; echo "[...]"; tail -n 20 "$log"; done; exit 1; }
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  psql "$PRIMARY_DSN" -XAtqc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  psql "$SHADOW_DSN" -XAtqc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
primary_port=$(echo "$PRIMARY_DSN" | sed -n 's/.*port=\([0-9]*\).*/\1/p')
pipeline_topics_create

# The same schema and rows on both sides.
for dsn in "$PRIMARY_DSN" "$SHADOW_DSN"; do
  psql "$dsn" -XAtqc "CREATE DATABASE $db TEMPLATE template0" >/dev/null || fail "create database"
  case $client in
    pgbench-*) pgbench -i -q -s 1 "$dsn dbname=$db" >>"$work/init.log" 2>&1 || fail "pgbench -i" ;;
    *) psql "$dsn dbname=$db" -XAtq -v ON_ERROR_STOP=1 -f "$here/workloads/schema.sql" >>"$work/init.log" 2>&1 \
         || fail "schema" ;;
  esac
done

# psql's second COPY FROM STDIN is over this bound: its unit is dropped and announced.
"$bin/shadow-proxy" --listen "127.0.0.1:$port" --primary "127.0.0.1:$primary_port" --topic "$run.requests" \
    --metrics-port "127.0.0.1:$metrics_port" --copy-max-bytes 256 >"$work/proxy.log" 2>&1 &
proxy_pid=$!
pids+=("$proxy_pid")
for _ in $(seq 1 50); do grep -q "listening on" "$work/proxy.log" && break; sleep 0.1; done
grep -q "listening on" "$work/proxy.log" || fail "shadow-proxy did not start"

url="postgresql://postgres@127.0.0.1:$port/$db"
dsn="host=127.0.0.1 port=$port user=postgres dbname=$db"
# Units each workload makes that the proxy must drop and count (the rest: 0),
# and of those the units that wrote (COPY FROM STDIN): the shadow misses
# their rows, so each must be announced as a gap, and the comparator must
# report exactly that many shadow_gap units and nothing else.
declare -A expected_drops=()
expected_write_drops=0
# Requests recorded as v2 at least (binary parameters or results of types
# without a text rendering, COPY data): they must be replayed alike.
min_v2=0
case $client in
  psql)
    psql "$dsn" -X -v ON_ERROR_STOP=0 -f "$here/workloads/psql.sql" >"$work/client.log" 2>&1 || fail "psql"
    # COPY TO STDOUT, and the COPY into bulk over --copy-max-bytes: a write, so a gap.
    expected_drops=([copy_data]=2) expected_write_drops=1 min_v2=1 ;;
  pgbench-*)
    mode=${client#pgbench-}
    pgbench -n -M "$mode" -c 4 -j 2 -t 40 -b tpcb-like -b select-only -f "$here/workloads/pgbench_savepoint.sql" \
        "$dsn" >"$work/client.log" 2>&1 || fail "pgbench -M $mode" ;;
  psycopg)
    PYTHONPATH=$root/.cache/clients/python python3 "$here/workloads/psycopg_workload.py" "$url" \
        >"$work/client.log" 2>&1 || fail "psycopg workload"
    expected_drops=([copy_data]=1) min_v2=2 ;;
  node-pg)
    NODE_PATH=$root/.cache/clients/node/node_modules node "$here/workloads/node_workload.js" "$url" \
        >"$work/client.log" 2>&1 || fail "node-pg workload"
    expected_drops=([copy_data]=1) min_v2=1 ;;
  asyncpg)
    PYTHONPATH=$root/.cache/clients/python python3 "$here/workloads/asyncpg_workload.py" "$url" \
        >"$work/client.log" 2>&1 || fail "asyncpg workload"
    # fetchval/fetchrow run Execute with a row limit of 1: the client sees
    # part of a result, which the shadow cannot be compared with (row_limited).
    # Binary numeric, date and timestamptz values are recorded (requests v2).
    expected_drops=([copy_data]=1 [row_limited]=5) min_v2=4 ;;
  sessions)
    PYTHONPATH=$root/.cache/clients/python python3 "$here/workloads/sessions_workload.py" "$url" \
        >"$work/client.log" 2>&1 || fail "sessions workload"
    expected_drops=([session_state]=9) ;;
  pgjdbc)
    java -cp "$root/.cache/clients/java/*" "$here/workloads/JdbcWorkload.java" \
        "jdbc:postgresql://127.0.0.1:$port/$db?user=postgres" >"$work/client.log" 2>&1 || fail "PgJDBC workload"
    # Its numeric parameters are binary (8 updates, 8 reads), and past the
    # prepare threshold the reads' numeric, date and timestamptz results too.
    expected_drops=([copy_data]=1) min_v2=12 ;;
  *) fail "unknown client $client" ;;
esac
# The client is done; once the recording thread has handed everything over,
# /metrics stops moving (it runs at a lower priority than the relay).
metrics= previous=
for _ in $(seq 1 50); do
  metrics=$(curl -sf "127.0.0.1:$metrics_port/metrics") || fail "no /metrics from shadow-proxy"
  current=$(echo "$metrics" | grep '^shadowpipe_proxy_units_recorded_total')
  [ -n "$current" ] && [ "$current" = "$previous" ] && break
  previous=$current
  sleep 0.3
done

proxy_stop
units=$(value units)
[ "${units:-0}" -gt 0 ] || fail "the proxy recorded no unit"
[ "$(value published)" = "$units" ] || fail "published $(value published) of $units units"
for reason in client_gone primary_gone binary_parameters binary_results copy_data function_call oversized \
              row_limited unmatched queue_full session_state; do
  [ "$(value "dropped_$reason")" = "${expected_drops[$reason]:-0}" ] \
    || fail "units dropped as $reason: $(value "dropped_$reason"), expected ${expected_drops[$reason]:-0}"
done
[ "$(value write_units_dropped)" = "$expected_write_drops" ] \
  || fail "write units dropped $(value write_units_dropped), expected $expected_write_drops"
[ "$(value gap_units_announced)" = "$expected_write_drops" ] \
  || fail "gap units announced $(value gap_units_announced), expected $expected_write_drops"
echo "$metrics" | grep -q "^shadowpipe_proxy_units_recorded_total $units\$" \
  || fail "/metrics does not count $units recorded units: $(echo "$metrics" | grep units_recorded)"

published=$(kcat -b "$SHADOWPIPE_BROKERS" -C -t "$run.requests" -e -q -f '%s\n' | grep -vc '"record":"gap"' || true)
[ "$published" = "$units" ] || fail "$published records on $run.requests, the proxy recorded $units"
published_v2=$(kcat -b "$SHADOWPIPE_BROKERS" -C -t "$run.requests" -e -q -f '%s\n' | grep -c '^{"v":2,' || true)
[ "$published_v2" -ge "$min_v2" ] || fail "$published_v2 v2 records on $run.requests, expected at least $min_v2"
if [ "$client" = sessions ]; then
  # Each session's settings went with its own units: the reads of the session
  # that set extra_float_digits carry it, the other session's never do.
  kcat -b "$SHADOWPIPE_BROKERS" -C -t "$run.requests" -e -q -f '%s\n' >"$work/requests.jsonl"
  python3 - "$work/requests.jsonl" <<'PY' || fail "the recorded sessions"
import json, sys
carried = {}
for line in open(sys.argv[1]):
    record = json.loads(line)
    if record.get("record") == "gap":
        continue
    extra, path = record["session"]["extra"], record["session"]["search_path"]
    for name in ("extra_float_digits", "bytea_output", "myapp.tenant"):
        if name in extra:
            carried.setdefault(name, set()).add(extra[name])
    if "bytea_output" in extra and extra.get("extra_float_digits") == "0":
        sys.exit("one unit carries both sessions' settings: %s" % record["session"])
    if path:
        carried.setdefault("search_path", set()).add(path)
print("carried: %s" % {name: sorted(values) for name, values in sorted(carried.items())})
expected = {"extra_float_digits": {"0", "3"}, "bytea_output": {"escape"}, "myapp.tenant": {"acme", "globex"},
            "search_path": {"archive, public", "archive,public", "public"}}
sys.exit(0 if carried == expected else "expected %s" % expected)
PY
fi

pipeline_compare "$db" "$published"
python3 - "$work/report.json" "$published" "$expected_write_drops" <<'PY' || fail "report check"
import json, sys
report, published, gaps = json.load(open(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3])
print("compared %d of %d published; discrepancies %d %s" % (report["compared"], published, report["discrepancies"],
      report["discrepancies_by_kind"]))
for f in report["fingerprints"]:
    if f["discrepancies"]:
        print("  %s: %s" % (f["sql"][:100], f["discrepancies"]))
expected = {"shadow_gap": gaps} if gaps else {}
sys.exit(0 if report["compared"] >= published and report["discrepancies_by_kind"] == expected else 1)
PY
# The rows COPY FROM STDIN wrote reached the shadow too (replayed from the record).
case $client in
  pgbench-*|sessions) ;;  # no COPY in their workloads
  *)
    imports() { psql "$1 dbname=$db" -XAtqc "SELECT count(*) || ' ' || md5(coalesce(string_agg(id || ':' || body, ',' ORDER BY id, body), '')) FROM imports"; }
    primary_imports=$(imports "$PRIMARY_DSN") shadow_imports=$(imports "$SHADOW_DSN")
    [ "${primary_imports%% *}" -gt 0 ] || fail "the workload's COPY FROM STDIN wrote no row on the primary"
    [ "$primary_imports" = "$shadow_imports" ] \
      || fail "imports differ: primary $primary_imports, shadow $shadow_imports (COPY data not replayed)" ;;
esac
echo "PASS: $client through shadow-proxy: $units units recorded ($published_v2 as v2), all compared, 0 discrepancies" \
     "($expected_write_drops dropped write unit(s) announced and reported as shadow_gap)"
