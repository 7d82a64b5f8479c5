#!/usr/bin/env bash
# Executor throughput against pgbench: the same statement mix (one statement
# per unit: half a keyed UPDATE, half a keyed SELECT, extended protocol), on
# the same shadow server, with as many connections as the executor has
# partitions, in the same run. Prints both rates and their ratio.
#
#   eval "$(scripts/stack env)"; bench/executor_vs_pgbench.sh [connections] [units] [build dir]
set -euo pipefail
connections=${1:-4}
units=${2:-40000}
build=${3:-build}
: "${SHADOW_DSN:?run eval \"\$(scripts/stack env)\" first}" "${SHADOWPIPE_BROKERS:?}"
rows=10000
stamp=$(date +%s%N)
db=bench_exec_$stamp
topic=bench-requests-$stamp
work=$(mktemp -d)
executor_pid=
cleanup() {
  [[ -n $executor_pid ]] && kill "$executor_pid" 2>/dev/null && wait "$executor_pid" 2>/dev/null
  psql "$SHADOW_DSN" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

psql "$SHADOW_DSN" -qc "CREATE DATABASE $db"
dsn="$SHADOW_DSN dbname=$db"
psql "$dsn" -q -c "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL)" \
  -c "INSERT INTO accounts SELECT g, 0 FROM generate_series(1, $rows) g" -c "VACUUM ANALYZE accounts"

# pgbench: the same two statements, extended protocol like the executor's PQexecParams.
cat >"$work/update.sql" <<SQL
\set id random(1, $rows)
\set delta random(-100, 100)
UPDATE accounts SET balance = balance + :delta WHERE id = :id;
SQL
cat >"$work/select.sql" <<SQL
\set id random(1, $rows)
SELECT balance FROM accounts WHERE id = :id;
SQL
pgbench_tps=$(pgbench -n -M extended -c "$connections" -j "$connections" -T 15 \
  -f "$work/update.sql@1" -f "$work/select.sql@1" "$dsn" 2>/dev/null |
  sed -n 's/^tps = \([0-9.]*\).*/\1/p')

"$build/bin/shadow-executor-bench-load" --brokers "$SHADOWPIPE_BROKERS" --topic "$topic" \
  --partitions "$connections" --count "$units" --rows "$rows"
# The results topics must exist (auto-create is off on the stack).
"$build/bin/shadow-executor-bench-load" --brokers "$SHADOWPIPE_BROKERS" --topic "$topic-results" \
  --partitions "$connections" --count 0
"$build/bin/shadow-executor-bench-load" --brokers "$SHADOWPIPE_BROKERS" --topic "$topic-dlq" \
  --partitions 1 --count 0
"$build/bin/shadow-executor" --shadow "$dsn" --brokers "$SHADOWPIPE_BROKERS" --group "bench-$stamp" \
  --requests-topic "$topic" --results-topic "$topic-results" --dlq-topic "$topic-dlq" \
  --plans-per-minute 0 2>"$work/executor.log" &
executor_pid=$!

applied() { psql "$dsn" -qtAc "SELECT coalesce(sum(next_offset), 0) FROM shadowpipe.applied" 2>/dev/null || echo 0; }
# Timed from the first applied unit (after the group join) to the last.
until (( $(applied) > 0 )); do sleep 0.05; done
start_units=$(applied); start=$(date +%s.%N)
until (( $(applied) >= units )); do sleep 0.05; done
end=$(date +%s.%N)
executor_rate=$(echo "($units - $start_units) / ($end - $start)" | bc -l)

printf 'connections: %s, units: %s (1 statement each)\n' "$connections" "$units"
printf 'pgbench:  %.0f statements/s\n' "$pgbench_tps"
printf 'executor: %.0f statements/s (exactly-once bookkeeping, results published)\n' "$executor_rate"
printf 'ratio executor/pgbench: %.2f\n' "$(echo "$executor_rate / $pgbench_tps" | bc -l)"
