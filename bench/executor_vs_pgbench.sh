#!/usr/bin/env bash
# Executor throughput against pgbench: the same statement mix (one statement
# per unit: half a keyed UPDATE, half a keyed SELECT, extended protocol), on
# the same shadow server, with as many connections as the executor has
# partitions, in the same run. Order: pgbench, the executor without and with
# --pipeline (each its own consumer group over the same requests topic, so
# both replay exactly the same units), pgbench again; the ratios are against
# the mean of the two pgbench runs (both printed, so drift on a shared machine
# shows).
#
#   eval "$(scripts/stack env)"; bench/executor_vs_pgbench.sh [connections] [units] [build dir] [executor args...]
#
# Extra arguments go to both executor runs (e.g. --batch-units 1 for one
# transaction per unit).
set -euo pipefail
connections=${1:-4}
units=${2:-60000}
build=${3:-build}
shift $(( $# < 3 ? $# : 3 ))
extra_args=("$@")
: "${SHADOW_DSN:?run eval \"\$(scripts/stack env)\" first}" "${SHADOWPIPE_BROKERS:?}"
rows=10000
seconds=15
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

# pgbench: the same two statements, extended protocol like the executor's.
cat >"$work/update.sql" <<SQL
\set id random(1, $rows)
\set delta random(-100, 100)
UPDATE accounts SET balance = balance + :delta WHERE id = :id;
SQL
cat >"$work/select.sql" <<SQL
\set id random(1, $rows)
SELECT balance FROM accounts WHERE id = :id;
SQL
run_pgbench() {
  pgbench -n -M extended -c "$connections" -j "$connections" -T "$seconds" \
    -f "$work/update.sql@1" -f "$work/select.sql@1" "$dsn" 2>/dev/null |
    sed -n 's/^tps = \([0-9.]*\).*/\1/p'
}

"$build/bin/shadow-executor-bench-load" --brokers "$SHADOWPIPE_BROKERS" --topic "$topic" \
  --partitions "$connections" --count "$units" --rows "$rows"
# The results topics must exist (auto-create is off on the stack).
"$build/bin/shadow-executor-bench-load" --brokers "$SHADOWPIPE_BROKERS" --topic "$topic-results" \
  --partitions "$connections" --count 0
"$build/bin/shadow-executor-bench-load" --brokers "$SHADOWPIPE_BROKERS" --topic "$topic-dlq" \
  --partitions 1 --count 0

# Statements per second of one executor run over the whole topic, timed from
# its first applied unit (after the group join) to its last. Progress is read
# through one long-lived psql session, so polling costs no process starts.
run_executor() {
  local group=bench-$stamp-$1
  shift
  "$build/bin/shadow-executor" --shadow "$dsn" --brokers "$SHADOWPIPE_BROKERS" --group "$group" \
    --requests-topic "$topic" --results-topic "$topic-results" --dlq-topic "$topic-dlq" \
    --plans-per-minute 0 "$@" 2>"$work/executor-$group.log" &
  executor_pid=$!
  until psql "$dsn" -qtAc "SELECT 1 FROM shadowpipe.applied LIMIT 0" >/dev/null 2>&1; do sleep 0.1; done
  coproc PSQL { psql "$dsn" -qtA 2>/dev/null; }
  applied() {
    echo "SELECT coalesce(sum(next_offset), 0) FROM shadowpipe.applied WHERE consumer_group = '$group';" >&"${PSQL[1]}"
    local value
    read -r value <&"${PSQL[0]}"
    echo "$value"
  }
  until (( $(applied) > 0 )); do sleep 0.02; done
  local start_units start end
  start_units=$(applied); start=$(date +%s.%N)
  until (( $(applied) >= units )); do sleep 0.02; done
  end=$(date +%s.%N)
  echo '\q' >&"${PSQL[1]}"
  wait "$PSQL_PID" 2>/dev/null || true
  kill "$executor_pid" && wait "$executor_pid" || true
  executor_pid=
  echo "($units - $start_units) / ($end - $start)" | bc -l
}

pgbench_before=$(run_pgbench)
plain=$(run_executor plain "${extra_args[@]}")
pipeline=$(run_executor pipeline --pipeline "${extra_args[@]}")
pgbench_after=$(run_pgbench)
pgbench=$(echo "($pgbench_before + $pgbench_after) / 2" | bc -l)

printf 'connections: %s, units: %s (1 statement each), executor args: %s\n' "$connections" "$units" "${extra_args[*]:-(none)}"
printf 'pgbench:             %.0f statements/s (before %.0f, after %.0f)\n' "$pgbench" "$pgbench_before" "$pgbench_after"
printf 'executor:            %.0f statements/s (exactly-once bookkeeping, results published)\n' "$plain"
printf 'executor --pipeline: %.0f statements/s\n' "$pipeline"
printf 'ratio executor/pgbench:            %.2f\n' "$(echo "$plain / $pgbench" | bc -l)"
printf 'ratio executor --pipeline/pgbench: %.2f\n' "$(echo "$pipeline / $pgbench" | bc -l)"
