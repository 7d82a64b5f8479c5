#!/usr/bin/env bash
# type_names_test.sh BIN_DIR [--without-catalog] — user types named through
# shadow-proxy's own catalog connection (--catalog-dsn), then compared by name.
#
# The shadow's enums get other OIDs than the primary's (a type created first
# shifts them, as a restore does), and its migration retyped one enum column
# to text. With the proxy naming the primary's types, the comparator must
# report exactly one notice, type_changed on `feeling` naming mood and text,
# no discrepancy, and nothing on `size_label`, whose enum is the same by name
# under another OID. The records must carry the names, the lookups must be
# cached (one catalog query for the whole session), and each session's
# database must be the one asked (two databases with the same type names
# under different OIDs).
#
# --without-catalog runs the proxy without --catalog-dsn, to see this test
# fail: the primary's enum then goes unnamed and its type change unreported.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/proxy_summary.sh"
bin=$1 mode=${2:-}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[ -n "${SHADOWPIPE_BROKERS:-}" ] || eval "$("$root/scripts/stack" env)"
run=proxy-types-$(date +%s)-$$
db=px_types_$$ other_db=px_types_other_$$
port=16880 metrics_port=16881
work=$(mktemp -d)
pids=()
fail() { echo "FAIL: $*"; for log in "$work"/*.log; do echo "--- $log"; tail -n 30 "$log"; done; exit 1; }
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for name in "$db" "$other_db"; do
    psql "$PRIMARY_DSN" -XAtqc "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1 || true
    psql "$SHADOW_DSN" -XAtqc "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
primary_port=$(echo "$PRIMARY_DSN" | sed -n 's/.*port=\([0-9]*\).*/\1/p')
pipeline_topics_create

sql() { psql "$1" -XAtq -v ON_ERROR_STOP=1 -c "$2" >>"$work/init.log" 2>&1 || fail "$2"; }
schema="CREATE TYPE size AS ENUM ('s', 'm', 'l');
        CREATE TABLE people (id int PRIMARY KEY, feeling mood NOT NULL, size_label size NOT NULL);
        INSERT INTO people VALUES (1, 'sad', 's'), (2, 'ok', 'm'), (3, 'happy', 'l')"
sql "$PRIMARY_DSN" "CREATE DATABASE $db TEMPLATE template0"
sql "$PRIMARY_DSN dbname=$db" "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy'); $schema"
# Another database of the primary: the same names under other OIDs, asked of its own catalog.
sql "$PRIMARY_DSN" "CREATE DATABASE $other_db TEMPLATE template0"
sql "$PRIMARY_DSN dbname=$other_db" "CREATE TYPE padding AS ENUM ('p'); CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy'); $schema"
sql "$SHADOW_DSN" "CREATE DATABASE $db TEMPLATE template0"
sql "$SHADOW_DSN dbname=$db" "CREATE TYPE restored_first AS ENUM ('x');
     CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy'); $schema;
     ALTER TABLE people ALTER COLUMN feeling TYPE text"  # the migration under test
oid() { psql "$1" -XAtqc "SELECT '$2'::regtype::oid"; }
[ "$(oid "$PRIMARY_DSN dbname=$db" size)" != "$(oid "$SHADOW_DSN dbname=$db" size)" ] || fail "the enum OIDs agree: the test proves nothing"
[ "$(oid "$PRIMARY_DSN dbname=$db" mood)" != "$(oid "$PRIMARY_DSN dbname=$other_db" mood)" ] || fail "the databases' OIDs agree"

catalog=(--catalog-dsn "$PRIMARY_DSN")
[ "$mode" = --without-catalog ] && catalog=()
"$bin/shadow-proxy" --listen "127.0.0.1:$port" --primary "127.0.0.1:$primary_port" --topic "$run.requests" \
    --metrics-port "127.0.0.1:$metrics_port" "${catalog[@]}" >"$work/proxy.log" 2>&1 &
proxy_pid=$!
pids+=("$proxy_pid")
for _ in $(seq 1 50); do grep -q "listening on" "$work/proxy.log" && break; sleep 0.1; done
grep -q "listening on" "$work/proxy.log" || fail "shadow-proxy did not start"

through() { psql "host=127.0.0.1 port=$port user=postgres dbname=$1" -XAtq -v ON_ERROR_STOP=1 -c "$2" >>"$work/client.log" 2>&1 \
              || fail "through the proxy: $2"; }
for i in 1 2 3; do
  through "$db" "SELECT id, feeling, size_label FROM people ORDER BY id"
  through "$db" "SELECT feeling FROM people WHERE id = $i"
done
through "$other_db" "SELECT id, feeling FROM people ORDER BY id"
through "$db" "UPDATE people SET feeling = 'happy' WHERE id = 1 RETURNING id, feeling"
expected_units=8

for _ in $(seq 1 50); do
  recorded=$(curl -sf "127.0.0.1:$metrics_port/metrics" | sed -n 's/^shadowpipe_proxy_units_recorded_total //p')
  [ "${recorded%.*}" = "$expected_units" ] && break
  sleep 0.2
done
proxy_stop
[ "$(value units)" = "$expected_units" ] || fail "recorded $(value units) units, expected $expected_units"
if [ "$mode" != --without-catalog ]; then
  # One lookup per database: every later OID is answered from the cache.
  [ "$(value catalog_queries)" = 2 ] || fail "catalog queries: $(value catalog_queries), expected 2 (one per database)"
  [ "$(value catalog_failures)" = 0 ] || fail "catalog failures: $(value catalog_failures)"
fi

kcat -b "$SHADOWPIPE_BROKERS" -C -t "$run.requests" -e -q -f '%s\n' >"$work/requests.jsonl"
python3 - "$work/requests.jsonl" <<'PY' || fail "the records do not name the primary's types"
import json, sys
seen = {}
for line in open(sys.argv[1]):
    record = json.loads(line)
    for statement in record.get("statements", []):
        for column in statement["result"].get("columns", []):
            seen.setdefault(column["name"], set()).add(column.get("type_name", ""))
print("type names recorded:", {name: sorted(names) for name, names in seen.items()})
expected = {"id": {"integer"}, "feeling": {"mood"}, "size_label": {"size"}}
sys.exit(0 if seen == expected else 1)
PY

# A catalog that cannot be reached costs names, never units: recorded all the
# same (three more units to compare), the failure counted and said once per streak.
if [ "$mode" != --without-catalog ]; then
  "$bin/shadow-proxy" --listen "127.0.0.1:$port" --primary "127.0.0.1:$primary_port" --topic "$run.requests" \
      --catalog-dsn "host=127.0.0.1 port=1 user=postgres" >"$work/proxy-unreachable.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 50); do grep -q "listening on" "$work/proxy-unreachable.log" && break; sleep 0.1; done
  for i in 1 2 3; do through "$db" "SELECT id, feeling FROM people WHERE id = $i"; done
  kill -TERM "${pids[0]}"; wait "${pids[0]}" || fail "shadow-proxy with an unreachable catalog exited with $?"
  pids=()
  summary=$(grep '^shadow-proxy: connections=' "$work/proxy-unreachable.log" | tail -n 1)
  [ "$(value units)" = 3 ] && [ "$(value published)" = 3 ] || fail "an unreachable catalog cost units: $summary"
  [ "$(value catalog_failures)" = 1 ] || fail "catalog failures $(value catalog_failures), expected 1 (retried after 5 s)"
  [ "$(grep -c 'recorded without names' "$work/proxy-unreachable.log")" = 1 ] || fail "the failure is not said once"
  expected_units=$((expected_units + 3))
fi

# The unit of the other database runs on this shadow too (one executor, one
# shadow database): its rows are the same, and it ran before the update.
pipeline_compare "$db" "$expected_units"
python3 - "$work/report.json" "$expected_units" <<'PY' || fail "report check"
import json, sys
report, units = json.load(open(sys.argv[1])), int(sys.argv[2])
notices = {}
for f in report["fingerprints"]:
    for kind, details in f.get("notices", {}).items():
        for detail in details:
            notices.setdefault(kind, set()).add(detail)
print("compared %d; discrepancies %d %s; notices %s" % (report["compared"], report["discrepancies"],
      report["discrepancies_by_kind"], notices))
ok = report["compared"] >= units and report["discrepancies"] == 0
changed = notices.get("type_changed", set())
ok = ok and changed and all("feeling" in d and "mood" in d and "text" in d and "size" not in d for d in changed)
sys.exit(0 if ok else 1)
PY
echo "PASS: user types named through the proxy's catalog connection; the retyped enum is one type_changed notice"
