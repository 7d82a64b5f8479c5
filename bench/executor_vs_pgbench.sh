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
#
# BENCH_ROWS=by-key keys the executor's rows: each of the 64 keys updates and
# reads only its own rows, so no two partitions touch the same row (as a
# recorder keyed by the owner of the rows produces). By default rows are
# drawn from all 10 000 for every key, as pgbench's clients draw them, and the
# executor's batches wait on each other's row locks until their COMMITs.
#
# Besides throughput (which moves with whatever else runs on the machine) it
# prints figures that depend less on the load, per unit: the executor's CPU
# (utime + stime from /proc), the CPU of its server backends, and, when the
# shadow has pg_stat_statements in shared_preload_libraries, the commands the
# server ran per unit and their execution time, the top ones by calls (the
# same for pgbench per statement). The load average is printed with each.
# BENCH_PGBENCH_SECONDS (default 15): the length of each pgbench run.
# BENCH_WARMUP_UNITS (default 10000; 0 for none): an executor run over a
# topic of its own goes first and is not counted. A broker started a moment
# before compiles its fetch and transaction paths during the first run: its
# CPU per unit in that run was 36 us against 9 in the next (2026-11-30).
# EXECUTOR_PERF=<dir> also records `perf record -g` of each executor run's
# measured window into <dir>/<run>.data; EXECUTOR_PERF_EVENTS adds perf's
# event options, e.g. "-e sched:sched_switch" to record where every thread
# went to sleep (each wait on the shadow, a lock, a queue) with its stack;
# perf's own messages go to <dir>/<run>.perf.log.
#
# Where the executor's wall time goes, per run: the state of its partition
# sessions on the server (pg_stat_activity, sampled every fourth progress
# poll, ~12 a second: running a command, waiting for a row lock, idle in a
# transaction = waiting for the executor's next command, idle = between
# transactions), and with EXECUTOR_METRICS_PORT=<port> the partition
# workers' own split (shadowpipe_executor_worker_seconds_total: waiting for
# units, reading them, on the shadow, publishing) over the measured window.
set -euo pipefail
connections=${1:-4}
units=${2:-60000}
build=${3:-build}
shift $(( $# < 3 ? $# : 3 ))
extra_args=("$@")
: "${SHADOW_DSN:?run eval \"\$(scripts/stack env)\" first}" "${SHADOWPIPE_BROKERS:?}"
rows=10000
seconds=${BENCH_PGBENCH_SECONDS:-15}  # each pgbench run
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
stats=$(psql "$dsn" -qtAc "SELECT current_setting('shared_preload_libraries') LIKE '%pg_stat_statements%'")
[[ $stats == t ]] && psql "$dsn" -qc "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
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
# Per-unit figures go to $work/report, printed at the end.
load() { cut -d' ' -f1-3 /proc/loadavg; }
statement_stats_reset() { [[ $stats == t ]] && psql "$dsn" -qtAc "SELECT pg_stat_statements_reset()" >/dev/null; return 0; }
# Commands per unit and server execution time per unit, and the top commands.
statement_stats() {  # label, units
  [[ $stats == t ]] || { echo "  $1: (no pg_stat_statements on the shadow)"; return; }
  psql "$dsn" -qtA -F' ' -c "SELECT round(sum(calls)::numeric / $2, 2), round((sum(total_exec_time) * 1000 / $2)::numeric, 1)
      FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())" |
    while read -r commands micros; do
      echo "  $1: $commands server commands per unit, $micros us server execution per unit (pg_stat_statements)"
    done
  psql "$dsn" -qtA -F' | ' -c "SELECT round(calls::numeric / $2, 3), round(mean_exec_time::numeric * 1000, 1),
      left(regexp_replace(query, '\s+', ' ', 'g'), 70)
      FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
      ORDER BY calls DESC, total_exec_time DESC LIMIT 8" | sed 's/^/      per unit | mean us | /'
}

# The executor's bookkeeping per batch (batches = its COMMITs): each
# command's calls per batch, mean execution and, with
# pg_stat_statements.track_planning on, mean planning time (the DELETE of
# delivered results runs on the executor's control connection every commit
# interval; this script's own progress queries are left out). Execution
# leaves out parsing, which the backends' CPU per unit includes.
bookkeeping_stats() {
  [[ $stats == t ]] || return 0
  psql "$dsn" -qtA -F' | ' -c "WITH own AS (SELECT * FROM pg_stat_statements
        WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())),
      batches AS (SELECT greatest(sum(calls), 1) AS n FROM own WHERE query = 'COMMIT')
      SELECT round(calls::numeric / n, 2), round(mean_exec_time::numeric * 1000, 1),
        round(mean_plan_time::numeric * 1000, 1), left(regexp_replace(query, '\s+', ' ', 'g'), 60)
      FROM own, batches
      WHERE query ~ '(shadowpipe\.|^BEGIN|^COMMIT|^SET LOCAL|set_config)' AND query !~ 'sum\(next_offset\)'
      ORDER BY total_exec_time DESC" |
    sed 's/^/      per batch | mean exec us | mean plan us | /'
  psql "$dsn" -qtA -F' ' -c "WITH own AS (SELECT * FROM pg_stat_statements
        WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())),
      batches AS (SELECT greatest(sum(calls), 1) AS n FROM own WHERE query = 'COMMIT')
      SELECT round(sum(calls) / min(n), 2), round((sum(total_exec_time) * 1000 / min(n))::numeric),
        round((sum(total_plan_time) * 1000 / min(n))::numeric)
      FROM own, batches WHERE query ~ '(shadowpipe\.|^BEGIN|^COMMIT|^SET LOCAL|set_config)' AND query !~ 'sum\(next_offset\)'" |
    while read -r commands exec_us plan_us; do
      echo "  bookkeeping per batch: $commands commands, $exec_us us execution, $plan_us us planning (pg_stat_statements)"
    done
}

# The server's CPU under pgbench: its backends exit when it ends, and the
# postmaster then adds their time to its cutime + cstime.
postmaster=$(head -1 "$(psql "$dsn" -qtAc 'SHOW data_directory')/postmaster.pid" 2>/dev/null || true)
bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The broker's CPU (the executor fetches requests and produces results; pgbench needs no broker).
broker=$(ss -Hltnp "sport = :${SHADOWPIPE_BROKERS##*:}" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1)
process_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# The broker's JIT compiler and GC threads: a broker warms up for many
# minutes, and that is printed apart from what the clients cost it.
broker_service_ticks() {
  [[ -n $broker ]] || { echo 0; return; }
  python3 "$bench_dir/cpu_snapshot.py" --jvm "$broker" | sed 's/.* jit=\([0-9]*\) gc=\([0-9]*\)/\1 + \2/' | bc
}
reaped_ticks() { awk '{print $16 + $17}' "/proc/$postmaster/stat" 2>/dev/null || echo 0; }
run_pgbench() {
  statement_stats_reset
  sleep 1  # the previous run's backends are gone and reaped
  local out reaped_start broker_start service_start client
  reaped_start=$(reaped_ticks); broker_start=$(process_ticks "$broker"); service_start=$(broker_service_ticks)
  out=$(TIMEFORMAT='%U %S'; { time pgbench -n -M extended -c "$connections" -j "$connections" -T "$seconds" \
    -f "$work/update.sql@1" -f "$work/select.sql@1" "$dsn" 2>"$work/pgbench-errors"; } 2>"$work/pgbench-time")
  client=$(awk '{print $1 + $2}' "$work/pgbench-time")
  local count tps
  count=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out")
  if [[ -z $count || $count == 0 ]]; then
    # A run that did not happen must not read as a ratio.
    echo "executor_vs_pgbench: pgbench ($1) ran no transaction:" >&2
    tail -n 20 "$work/pgbench-errors" >&2
    exit 1
  fi
  sleep 1
  {
    echo "pgbench $1: $(printf '%.0f' "$tps") statements/s, load average $(load)"
    local client_us backends_us broker_us service_us
    client_us=$(echo "$client * 1000000 / $count" | bc -l)
    backends_us=$(echo "($(reaped_ticks) - $reaped_start) * 1000000 / $(getconf CLK_TCK) / $count" | bc -l)
    broker_us=$(echo "($(process_ticks "$broker") - $broker_start) * 1000000 / $(getconf CLK_TCK) / $count" | bc -l)
    service_us=$(echo "($(broker_service_ticks) - $service_start) * 1000000 / $(getconf CLK_TCK) / $count" | bc -l)
    echo "$client_us + $backends_us + $broker_us" | bc -l >"$work/cpu-pgbench-$1"
    echo "$service_us" >"$work/service-pgbench-$1"
    printf '  CPU per statement: pgbench %.1f us, its %s server backends %.1f us, broker %.1f us (its JIT compiler and GC threads %.1f)\n' \
      "$client_us" "$connections" "$backends_us" "$broker_us" "$service_us"
    statement_stats "pgbench $1" "$count"
  } >>"$work/report"
  echo "$tps"
}

"$build/bin/shadow-executor-bench-load" --brokers "$SHADOWPIPE_BROKERS" --topic "$topic" \
  --partitions "$connections" --count "$units" --rows "$rows" ${BENCH_ROWS:+--rows-$BENCH_ROWS}
# The results topics must exist (auto-create is off on the stack).
"$build/bin/shadow-executor-bench-load" --brokers "$SHADOWPIPE_BROKERS" --topic "$topic-results" \
  --partitions "$connections" --count 0
"$build/bin/shadow-executor-bench-load" --brokers "$SHADOWPIPE_BROKERS" --topic "$topic-dlq" \
  --partitions 1 --count 0
warmup_units=${BENCH_WARMUP_UNITS:-10000}
if (( warmup_units > 0 )); then
  for suffix in "" -results; do
    "$build/bin/shadow-executor-bench-load" --brokers "$SHADOWPIPE_BROKERS" --topic "$topic-warmup$suffix" \
      --partitions "$connections" --count "$([[ -z $suffix ]] && echo "$warmup_units" || echo 0)" --rows "$rows" \
      ${BENCH_ROWS:+--rows-$BENCH_ROWS}
  done
fi

# Statements per second of one executor run over the whole topic, timed from
# its first applied unit (after the group join) to its last. Progress is read
# through one long-lived psql session every 20 ms, and the wait between polls
# is a read with a timeout on a pipe nothing writes to: the polling must not
# take from the two cores the executor shares with its shadow what pgbench's
# runs, timed by pgbench itself, are not charged. (It did: a `sleep 0.02`
# process, a subshell and a pg_stat_activity scan a poll cost 2.3 ms of CPU,
# about 5 % of this machine during the executor's runs only.) The sessions'
# states are sampled every fourth poll; what the polling cost is printed.
run_executor() {
  local label=$1 group=bench-$stamp-$1 run_topic=${run_topic:-$topic} units=${run_units:-$units}
  shift
  local metrics_args=()
  [[ -n ${EXECUTOR_METRICS_PORT:-} ]] && metrics_args=(--metrics-port "127.0.0.1:$EXECUTOR_METRICS_PORT")
  "$build/bin/shadow-executor" --shadow "$dsn" --brokers "$SHADOWPIPE_BROKERS" --group "$group" \
    --requests-topic "$run_topic" --results-topic "$run_topic-results" --dlq-topic "$topic-dlq" \
    --plans-per-minute 0 "${metrics_args[@]}" "$@" 2>"$work/executor-$group.log" &
  executor_pid=$!
  until psql "$dsn" -qtAc "SELECT 1 FROM shadowpipe.applied LIMIT 0" >/dev/null 2>&1; do sleep 0.1; done
  coproc PSQL { exec psql "$dsn" -qtA 2>/dev/null; }
  local psql_pid=$PSQL_PID  # bash unsets PSQL_PID once it reaps the coprocess
  applied() {
    echo "SELECT coalesce(sum(next_offset), 0) FROM shadowpipe.applied WHERE consumer_group = '$group';" >&"${PSQL[1]}"
    local value
    read -r value <&"${PSQL[0]}"
    echo "$value"
  }
  # Progress into $progress_units and, with sample=1, one letter per
  # partition session into $sessions_sample: A running a command, L waiting
  # for a lock, T idle in a transaction (waiting for the executor), I idle
  # between transactions. Runs in this shell: no subshell, no process.
  local sessions_sample='' progress_units=0
  progress() {
    if (( $1 )); then
      echo "SELECT coalesce(sum(next_offset), 0), (SELECT coalesce(string_agg(CASE WHEN state = 'active' AND wait_event_type = 'Lock' THEN 'L'
          WHEN state = 'active' THEN 'A' WHEN state LIKE 'idle in transaction%' THEN 'T' ELSE 'I' END, ''), '')
          FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'shadow-executor/p%')
          FROM shadowpipe.applied WHERE consumer_group = '$group';" >&"${PSQL[1]}"
    else
      echo "SELECT coalesce(sum(next_offset), 0), '' FROM shadowpipe.applied WHERE consumer_group = '$group';" >&"${PSQL[1]}"
    fi
    IFS='|' read -r progress_units sessions_sample <&"${PSQL[0]}"
  }
  worker_seconds() {
    [[ -n ${EXECUTOR_METRICS_PORT:-} ]] || return 0
    curl -s "127.0.0.1:$EXECUTOR_METRICS_PORT/metrics" |
      sed -n 's/^shadowpipe_executor_worker_seconds_total{state="\([a-z_]*\)"} \(.*\)/\1 \2/p'
  }
  end_run() {  # the progress session and the executor
    echo '\q' >&"${PSQL[1]}"
    wait "$psql_pid" 2>/dev/null || true
    kill "$executor_pid" && wait "$executor_pid" || true
    executor_pid=
  }
  # Every partition has applied a unit, so each worker has opened its
  # session and its catalog session: sampled at the first applied unit, a
  # run once counted 2 of its 9 backends and printed a quarter of their CPU.
  partitions_started() {
    echo "SELECT count(*) FROM shadowpipe.applied WHERE consumer_group = '$group' AND next_offset > 0;" >&"${PSQL[1]}"
    local value
    read -r value <&"${PSQL[0]}"
    echo "$value"
  }
  # Bounded: a partition that gets no units (more partitions than the load's
  # 64 keys) must not hold the run; its late session is then said below.
  local sessions_deadline=$(( SECONDS + 30 ))
  until (( $(partitions_started) >= connections || SECONDS >= sessions_deadline )); do
    kill -0 "$executor_pid" 2>/dev/null ||
      { echo "executor_vs_pgbench: the executor exited before every partition applied a unit: $work/executor-$group.log" >&2; exit 1; }
    sleep 0.02
  done
  # The executor's sessions: every client backend of the database but this one.
  echo "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE datname = current_database()
        AND backend_type = 'client backend' AND pid <> pg_backend_pid();" >&"${PSQL[1]}"
  local backends
  read -r backends <&"${PSQL[0]}"
  echo "SELECT pg_backend_pid();" >&"${PSQL[1]}"
  local progress_backend
  read -r progress_backend <&"${PSQL[0]}"
  # What the polling costs: this shell, its psql and psql's backend. The
  # shell's reaped children count too (the old loop's sleeps were children),
  # so the processes of one reading are in it: a few ms a run.
  local polling_shell=$BASHPID  # this (sub)shell; inside $(...) BASHPID would be that subshell's
  polling_ticks() {
    echo $(( $(awk '{print $14 + $15 + $16 + $17}' "/proc/$polling_shell/stat") + $(ticks "$psql_pid" "$progress_backend") ))
  }
  local idle_fd
  exec {idle_fd}<> <(:)  # never written: `read -t` on it waits without a process
  ticks() { local sum=0 pid; for pid in "$@"; do sum=$(( sum + $(process_ticks "$pid") )); done; echo "$sum"; }
  statement_stats_reset
  local start_units start end load_start executor_start backends_start perf_pid=
  if [[ -n ${EXECUTOR_PERF:-} ]]; then
    mkdir -p "$EXECUTOR_PERF"
    local perf_events=()
    read -r -a perf_events <<<"${EXECUTOR_PERF_EVENTS:-}"  # words, never globbed ('sched:*')
    perf record ${perf_events[@]+"${perf_events[@]}"} -g -o "$EXECUTOR_PERF/$group.data" -p "$executor_pid" \
      2>"$EXECUTOR_PERF/$group.perf.log" >/dev/null &
    perf_pid=$!
  fi
  # The broker's service threads first: reading them starts processes,
  # which must not fall inside the measured window.
  local broker_start service_start
  service_start=$(broker_service_ticks)
  start_units=$(applied); start=$(date +%s.%N); load_start=$(load)
  broker_start=$(process_ticks "$broker")
  executor_start=$(ticks "$executor_pid"); read -r -a backend_pids <<<"$backends"; backends_start=$(ticks "${backend_pids[@]}")
  local workers_start workers_end
  workers_start=$(worker_seconds)
  local sessions='' polls=0 polling_start
  polling_start=$(polling_ticks)
  until (( progress_units >= units )); do
    progress $(( polls++ % 4 == 0 ))
    sessions+=$sessions_sample
    (( progress_units >= units )) || read -r -t 0.02 -u "$idle_fd" || true
  done
  end=$(date +%s.%N)
  local polling_used=$(( $(polling_ticks) - polling_start ))
  # A session opened inside the window is not in the CPU figure: said, not hidden.
  echo "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'
        AND pid <> pg_backend_pid() AND pid <> ALL (string_to_array('$backends', ' ')::int[]);" >&"${PSQL[1]}"
  local late_sessions
  read -r late_sessions <&"${PSQL[0]}"
  exec {idle_fd}<&-
  workers_end=$(worker_seconds)
  local executor_ticks=$(( $(ticks "$executor_pid") - executor_start )) backend_ticks=$(( $(ticks "${backend_pids[@]}") - backends_start ))
  local broker_ticks=$(( $(process_ticks "$broker") - broker_start )) service_ticks=$(( $(broker_service_ticks) - service_start ))
  [[ -n $perf_pid ]] && { kill -INT "$perf_pid"; wait "$perf_pid" || true; }
  local measured=$(( units - start_units )) hz
  hz=$(getconf CLK_TCK)
  if (( measured <= 0 )); then
    # All applied before the measurement began: nothing to divide by. Fine
    # for the warm-up, which only has to have run.
    end_run
    [[ $label == warmup ]] && { echo 0; return; }
    echo "executor_vs_pgbench: the $label run applied all $units units before it could be measured: give it more" >&2
    exit 1
  fi
  {
    printf 'executor %s: %.0f statements/s over %s units, load average %s at start, %s at end\n' "$label" \
      "$(echo "$measured / ($end - $start)" | bc -l)" "$measured" "$load_start" "$(load)"
    printf '  CPU per unit: executor %.1f us, its %s server backends %.1f us, broker %.1f us (its JIT compiler and GC threads %.1f)\n' \
      "$(echo "$executor_ticks * 1000000 / $hz / $measured" | bc -l)" "${#backend_pids[@]}" \
      "$(echo "$backend_ticks * 1000000 / $hz / $measured" | bc -l)" \
      "$(echo "$broker_ticks * 1000000 / $hz / $measured" | bc -l)" \
      "$(echo "$service_ticks * 1000000 / $hz / $measured" | bc -l)"
    (( late_sessions > 0 )) &&
      echo "  sessions opened inside the measured window and open at its end: $late_sessions (their CPU is not in these figures)"
    echo "$service_ticks * 1000000 / $hz / $measured" | bc -l >"$work/service-$label"
    echo "($executor_ticks + $backend_ticks + $broker_ticks) * 1000000 / $hz / $measured" | bc -l >"$work/cpu-$label"
    local total=${#sessions}
    if (( total > 0 )); then
      share() { local only=${sessions//[^$1]/}; echo "${#only} * 100 / $total" | bc -l; }
      printf '  partition sessions on the server (%s samples): running %.0f %%, waiting for a row lock %.0f %%, idle in transaction (waiting for the executor) %.0f %%, idle between transactions %.0f %%\n' \
        "$total" "$(share A)" "$(share L)" "$(share T)" "$(share I)"
    fi
    printf '  this script polling for progress (%s polls): %.1f us a unit (its shell, psql and psql'"'"'s backend)\n' "$polls" \
      "$(echo "$polling_used * 1000000 / $hz / $measured" | bc -l)"
    if [[ -n $workers_start && -n $workers_end ]]; then
      join <(sort <<<"$workers_start") <(sort <<<"$workers_end") |
        awk -v wall="$(echo "$end - $start" | bc -l)" '{ d[$1] = $3 - $2; sum += $3 - $2 }
          END { printf "  partition workers (%.1f worker-seconds in %.1f s): waiting for units %.0f %%, reading units %.0f %%, on the shadow %.0f %%, publishing %.0f %%\n",
                sum, wall, 100 * d["waiting_for_units"] / sum, 100 * d["reading_units"] / sum, 100 * d["on_the_shadow"] / sum, 100 * d["publishing"] / sum }'
    fi
    statement_stats "executor" "$measured"
    bookkeeping_stats
  } >>"$work/report"
  end_run
  echo "($units - $start_units) / ($end - $start)" | bc -l
}

if (( warmup_units > 0 )); then
  run_topic=$topic-warmup run_units=$warmup_units run_executor warmup --pipeline "${extra_args[@]}" >/dev/null
fi
: >"$work/report"
pgbench_before=$(run_pgbench before)
plain=$(run_executor plain "${extra_args[@]}")
pipeline=$(run_executor pipeline --pipeline "${extra_args[@]}")
pgbench_after=$(run_pgbench after)
pgbench=$(echo "($pgbench_before + $pgbench_after) / 2" | bc -l)

printf 'connections: %s, units: %s (1 statement each), executor args: %s, rows: %s\n' "$connections" "$units" \
  "${extra_args[*]:-(none)}" "${BENCH_ROWS:-any key any row}"
printf 'pgbench:             %.0f statements/s (before %.0f, after %.0f)\n' "$pgbench" "$pgbench_before" "$pgbench_after"
printf 'executor:            %.0f statements/s (exactly-once bookkeeping, results published)\n' "$plain"
printf 'executor --pipeline: %.0f statements/s\n' "$pipeline"
printf 'ratio executor/pgbench:            %.2f\n' "$(echo "$plain / $pgbench" | bc -l)"
printf 'ratio executor --pipeline/pgbench: %.2f\n' "$(echo "$pipeline / $pgbench" | bc -l)"
# On a CPU-bound machine the ratio is at most the CPU pgbench spends per
# statement over what a unit costs in all (executor, its backends, broker).
cpu_pgbench=$(echo "($(cat "$work/cpu-pgbench-before") + $(cat "$work/cpu-pgbench-after")) / 2" | bc -l)
printf 'CPU per statement in all: pgbench %.0f us, executor %.0f us, executor --pipeline %.0f us\n' \
  "$cpu_pgbench" "$(cat "$work/cpu-plain")" "$(cat "$work/cpu-pipeline")"
printf 'CPU-bound ceiling of the ratios (pgbench CPU / executor CPU): %.2f, --pipeline %.2f\n' \
  "$(echo "$cpu_pgbench / $(cat "$work/cpu-plain")" | bc -l)" "$(echo "$cpu_pgbench / $(cat "$work/cpu-pipeline")" | bc -l)"
# The same without what the broker spent warming up (its JIT compiler and GC
# threads) in each run: what a long-running broker would leave.
warm() { echo "$(cat "$work/cpu-$1") - $(cat "$work/service-$1")" | bc -l; }
cpu_pgbench_warm=$(echo "($(warm pgbench-before) + $(warm pgbench-after)) / 2" | bc -l)
printf 'the same without the broker'"'"'s JIT compiler and GC threads: %.2f, --pipeline %.2f\n' \
  "$(echo "$cpu_pgbench_warm / $(warm plain)" | bc -l)" "$(echo "$cpu_pgbench_warm / $(warm pipeline)" | bc -l)"
printf 'nproc %s; per run (commands per unit do not depend on the load; CPU per unit moves less than throughput, but rises on a saturated machine too):\n' "$(nproc)"
cat "$work/report"
