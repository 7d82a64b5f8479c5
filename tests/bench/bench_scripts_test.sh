#!/usr/bin/env bash
# The benchmark commands docs/BENCHMARKS.md records figures with still run
# on the stack and print their figures: each briefly and small (this checks
# that they work, not what they measure), in databases of their own.
#   bench_scripts_test.sh <build dir>
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=$1
: "${PRIMARY_DSN:?}" "${SHADOW_DSN:?}" "${SHADOWPIPE_BROKERS:?}"
db=bench_scripts_$$
export PRIMARY_DSN="$PRIMARY_DSN dbname=$db" SHADOW_DSN="$SHADOW_DSN dbname=$db"
cleanup() {
  for dsn in "$PRIMARY_DSN" "$SHADOW_DSN"; do
    psql "$dsn dbname=postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT
failed=0
run() {  # label, command...: sets $out; a command that fails fails the test, with what it said
  local label=$1 status=0
  shift
  out=$("$@" 2>&1) || status=$?
  if (( status != 0 )); then
    echo "FAILED: $label exited $status:"; echo "$out" | tail -n 30
    failed=1
  fi
}
expect() {  # what, pattern, output
  if grep -qE "$2" <<<"$3"; then
    echo "ok: $1"
  else
    echo "FAILED: $1: no line matching /$2/ in:"; echo "$3" | tail -n 30; failed=1
  fi
}

"$root/scripts/shop-prepare" --migration safe >/dev/null 2>&1

run loadgen_overhead "$root/bench/loadgen_overhead.sh" --seconds 2 --rounds 1 --concurrency 2 --warmup 1 \
    --bin "$build/bin"
expect "loadgen_overhead: the ratio" 'ratio on/off [0-9]+\.[0-9]+' "$out"
expect "loadgen_overhead: the cost per statement" 'recording per recorded statement: \+-?[0-9]+\.[0-9] us' "$out"
expect "loadgen_overhead: the broker and its JIT" 'broker JVM CPU per unit: off [0-9.]+ us, on [0-9.]+ us \(of which its JIT compiler threads: off [0-9.]+ us, on [0-9.]+ us; its GC threads: off [0-9.]+ us, on [0-9.]+ us\)' "$out"

# The broker's JIT compiler share is read from its threads: a JVM that has
# served requests has compiled something, and the shares are within the
# whole. (The loadgen printed a JIT figure that was never measured: 0.0.)
broker_pid=$(cat "${SHADOWPIPE_STACK_DIR:-$root/.stack}/kafka/kafka.pid" 2>/dev/null || true)
if [[ -n $broker_pid ]]; then
  run jvm_cpu python3 "$root/bench/cpu_snapshot.py" --jvm "$broker_pid"
  total='' jit=0 gc=0
  read -r total jit gc < <(sed -n 's/^total=\([0-9]*\) jit=\([0-9]*\) gc=\([0-9]*\)$/\1 \2 \3/p' <<<"$out") || true
  if [[ -n ${total:-} ]] && (( jit > 0 && jit + gc <= total )); then
    echo "ok: cpu_snapshot --jvm: the broker's JIT compiler threads ($jit of $total ticks, GC $gc)"
  else
    echo "FAILED: cpu_snapshot --jvm: no JIT compiler time, or shares above the whole, for the broker: $out"; failed=1
  fi
else
  echo "FAILED: cpu_snapshot --jvm: no broker pid file under ${SHADOWPIPE_STACK_DIR:-$root/.stack}"; failed=1
fi
run jvm_cpu_gone python3 "$root/bench/cpu_snapshot.py" --jvm 999999999
expect "cpu_snapshot --jvm: a process that is gone reads as zeros" '^total=0 jit=0 gc=0$' "$out"

# Enough units that neither run applies them all before it is measured (the
# script refuses to divide by a run it could not time).
BENCH_PGBENCH_SECONDS=2 BENCH_WARMUP_UNITS=2000 run executor_vs_pgbench "$root/bench/executor_vs_pgbench.sh" 2 30000 \
    "$build"
expect "executor_vs_pgbench: plain" 'ratio executor/pgbench: +[0-9]+\.[0-9]+' "$out"
expect "executor_vs_pgbench: pipelined" 'ratio executor --pipeline/pgbench: +[0-9]+\.[0-9]+' "$out"
expect "executor_vs_pgbench: the CPU ceiling" 'CPU-bound ceiling of the ratios' "$out"
expect "executor_vs_pgbench: the ceiling without the broker's warm-up" "the same without the broker's JIT compiler and GC threads: [0-9]+\.[0-9]+, --pipeline [0-9]+\.[0-9]+" "$out"
expect "executor_vs_pgbench: what its own polling cost" "^  this script polling for progress \\([1-9][0-9]* polls\\): [0-9.]+ us a unit \\(its shell, psql and psql's backend\\)$" "$out"
expect "executor_vs_pgbench: the sessions sampled every fourth poll" '^  partition sessions on the server \([1-9][0-9]* samples\): running' "$out"
expect "executor_vs_pgbench: the broker's JIT and GC apart" '^  CPU per unit: executor [0-9.]+ us, its [0-9]+ server backends [0-9.]+ us, broker [0-9.]+ us \(its JIT compiler and GC threads [0-9.]+\)$' "$out"

# Enough pairs for two stats refreshes of the two-worker run after its first commit
# (150 000 were not always: its stats refresh once a second).
BUILD_DIR=$build run comparator_throughput "$root/bench/comparator_throughput.sh" --pairs 300000 --pending 2000
expect "comparator_throughput: the decoding consumer" '^bare consumer that decodes each record: 300000 pairs in [0-9.]+ s = [0-9]+ pairs/s; [0-9.]+ us CPU per pair' "$out"
expect "comparator_throughput: one worker, with what waited" '^comparator, 1 worker \(on the consumer.s thread\), 300000 decided \(3000 mismatches, at most [0-9]+ records waiting for their other side at a stats refresh\), steady: [1-9][0-9]* pairs' "$out"
expect "comparator_throughput: two workers" '^comparator, 2 workers, 300000 decided \(3000 mismatches, at most [0-9]+ records waiting' "$out"
# Each run's CPU by thread: the comparator's own threads read apart from
# librdkafka's and from the bench's sampling, never zero.
for workers in "1 worker" "2 workers"; do
  expect "comparator_throughput: the CPU by thread, $workers" '^  of it, per pair: [0-9.]*[1-9][0-9.]* us in the comparator.s threads, [0-9.]+ us in librdkafka.s, [0-9.]+ us in this bench.s sampling, -?[0-9.]+ us unattributed \(threads that ended meanwhile, accounting skew\)$' \
      "$(grep -A1 "^comparator, $workers" <<<"$out" | tail -n 1)"
done
expect "comparator_throughput: the decoding consumer's CPU by thread" '^  of it, per pair: [0-9.]*[1-9][0-9.]* us in the polling thread, [0-9.]+ us in librdkafka.s$' \
    "$(grep -A1 '^bare consumer that decodes' <<<"$out" | tail -n 1)"
expect "comparator_throughput: the CPU ratio" 'CPU per pair, decoding consumer / comparator with 2 workers: [0-9]+\.[0-9]+' "$out"
expect "comparator_throughput: bytes per pending request" '^pending: 2000 requests, estimated [0-9]+ bytes = [0-9]+ bytes per pending request; heap in use grew' "$out"

run broker_requests "$root/bench/broker_requests.sh" -- kcat -L -b "$SHADOWPIPE_BROKERS"
expect "broker_requests: the requests the command made" '^  Metadata +[1-9][0-9]* +[0-9.]+/s$' "$out"

run pipeline "$root/bench/pipeline.sh" --rates "100" --seconds 2 --settle 60 --warmup 1 --bin "$build/bin"
expect "pipeline: a bounded step" '^100 +[0-9]+ +[0-9.]+ +[0-9.]+ +[0-9]+ +yes$' "$out"
expect "pipeline: the ceiling" 'highest rate sustained through the pipeline: [0-9]+ units/s' "$out"
# Every part's CPU found: a part whose process was not found would read 0.0.
expect "pipeline: CPU by part" '^  100 +loadgen [1-9][0-9.]*, primary [1-9][0-9.]*, shadow [1-9][0-9.]*, broker [1-9][0-9.]*, executors [1-9][0-9.]*, comparator [1-9][0-9.]*, other -?[0-9.]+; machine [0-9.]+ us a unit$' "$out"
expect "pipeline: the ceiling's CPU" '^  ceiling +loadgen [1-9][0-9.]*, primary [1-9][0-9.]*,' "$out"
expect "pipeline: the CPU a unit, ceiling over the highest step" '^CPU a unit of the parts, ceiling / highest step: [0-9]+\.[0-9]+ \([1-9][0-9.]* / [1-9][0-9.]* us; ' "$out"

exit "$failed"
