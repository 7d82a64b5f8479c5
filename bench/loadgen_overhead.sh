#!/usr/bin/env bash
# The cost of shadowing to the application: shop-loadgen at full speed
# (--rate 0) with the recorder off and on, alternating, against the same
# primary in the same run. Per round and in sum it prints:
#   - throughput off and on, and the ratio on/off (the goal is >= 0.97);
#   - the loadgen process's CPU per unit, off and on, split by thread group
#     (workers: libpq plus, when on, digest, analysis, encoding and the
#     hand-off to librdkafka; recorder-poller: delivery reports; rdk:main and
#     rdk:broker: librdkafka's own threads; other: main thread, libpq-free idle);
#   - the recording's cost per recorded statement (on minus off, process CPU);
#   - the Kafka broker's CPU per unit (its JVM, over the whole loadgen run,
#     startup and final flush included): on a one-machine stack the broker
#     takes its CPU from the same cores as PostgreSQL and the loadgen, which
#     is why the throughput ratio moves with it, and with the neighbours.
# CPU per unit is the steadier figure on a shared machine; the load average
# is printed with every round so a noisy round shows.
# A broker started a moment before compiles its produce path for minutes:
# its JIT compiler threads took 8-12 us a unit and the broker 56-65 us in
# all in the first rounds on a fresh stack, 12-17 us once warm (2026-11-30).
# So one "on" run of --warmup seconds goes first and is not counted, and the
# broker's CPU is printed with its JIT compiler and GC threads' shares apart
# (bench/cpu_snapshot.py --jvm).
#
#   eval "$(scripts/stack env)"; scripts/shop-prepare --migration risky
#   bench/loadgen_overhead.sh [--seconds 20] [--rounds 2] [--concurrency 4] [--bin build/bin] [--warmup 15]
#       [--kafka-pid PID]   (default: the pid file of scripts/stack, .stack/kafka/kafka.pid)
#       [-- extra shop-loadgen arguments for the "on" rounds, e.g. -X linger.ms=20]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=20 rounds=2 concurrency=4 warmup=15 bin=${SHADOWPIPE_BIN:-$root/build/bin} topic=bench.loadgen
kafka_pid_file=${SHADOWPIPE_STACK_DIR:-$root/.stack}/kafka/kafka.pid kafka_pid=
on_extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --topic) topic=$2; shift 2 ;;
    --kafka-pid) kafka_pid=$2; shift 2 ;;
    --) shift; on_extra=("$@"); break ;;
    *) echo "loadgen_overhead: unknown argument $1" >&2; exit 2 ;;
  esac
done
: "${PRIMARY_DSN:?set PRIMARY_DSN (eval \"\$(scripts/stack env)\")}"
: "${SHADOWPIPE_BROKERS:?set SHADOWPIPE_BROKERS (eval \"\$(scripts/stack env)\")}"
[ -x "$bin/shop-loadgen" ] || { echo "loadgen_overhead: $bin/shop-loadgen is not built" >&2; exit 2; }
if [ -z "$kafka_pid" ] && [ -f "$kafka_pid_file" ]; then kafka_pid=$(cat "$kafka_pid_file"); fi
if [ -n "$kafka_pid" ] && ! [ -r "/proc/$kafka_pid/stat" ]; then kafka_pid=; fi
[ -n "$kafka_pid" ] || echo "loadgen_overhead: the broker's pid is unknown (--kafka-pid): its CPU is not shown" >&2

broker_cpu() {  # "total=<ticks> jit=<ticks> gc=<ticks>" of the broker (zeros when unknown)
  if [ -z "$kafka_pid" ]; then echo "total=0 jit=0 gc=0"; return; fi
  python3 "$root/bench/cpu_snapshot.py" --jvm "$kafka_pid"
}
tick=$(getconf CLK_TCK)
load() { cut -d' ' -f1 /proc/loadavg; }

# One run; prints one line of key=value fields:
#   ups= cpu= stmts= units= broker= load= and g_<group>= per thread group (us per unit).
run() {
  local flags=(--primary "$PRIMARY_DSN" --rate 0 --concurrency "$concurrency" --duration "$seconds" --seed 42)
  if [ "$1" = off ]; then flags+=(--no-shadow); else flags+=(--topic "$topic" --create-topic 6 "${on_extra[@]}"); fi
  local out before after la
  la=$(load)
  before=$(broker_cpu)
  local errors; errors=$(mktemp)
  if ! out=$("$bin/shop-loadgen" "${flags[@]}" 2>"$errors"); then
    # A run that did not happen must not read as 0 units/s.
    echo "loadgen_overhead: shop-loadgen failed ($1):" >&2; cat "$errors" >&2; rm -f "$errors"; exit 1
  fi
  rm -f "$errors"
  after=$(broker_cpu)
  printf '%s\n' "$out" | sed -n 's/^recorder: /    recorder: /p' >&2
  printf '%s\n' "$out" | awk -v before="$before" -v after="$after" -v tick="$tick" -v la="$la" -v known="${kafka_pid:+1}" '
    /^shop-loadgen: / {
      units = $2; stmts = $6
      for (i = 1; i <= NF; i++) {
        if ($i == "units/s,") ups = $(i - 1)
        if ($i == "CPU" && $(i + 1) == "per") cpu = $(i - 2)
      }
    }
    /^cpu_us_per_unit_by_thread:/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); groups = groups " g_" kv[1] "=" kv[2] } }
    function field(fields, name,   n, i, kv) {
      n = split(fields, kv, /[ =]/)
      for (i = 1; i < n; i += 2) if (kv[i] == name) return kv[i + 1]
      return 0
    }
    function per_unit(name) {
      return (known && units > 0) ? (field(after, name) - field(before, name)) / tick * 1e6 / units : -1
    }
    END {
      printf "ups=%s cpu=%s units=%s stmts=%s broker=%.1f jit=%.1f gc=%.1f load=%s%s\n", ups, cpu, units, stmts,
             per_unit("total"), per_unit("jit"), per_unit("gc"), la, groups
    }'
}

describe() {  # label, fields -> a readable line on stderr
  printf '%s\n' "$2" | awk -v label="$1" '{
    for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2]; if (kv[1] ~ /^g_/) order[++n] = kv[1] }
    line = sprintf("%s: %8.1f units/s  %5.2f unit stmts/unit  loadgen CPU %5.1f us/unit (", label, v["ups"],
                   v["units"] > 0 ? v["stmts"] / v["units"] : 0, v["cpu"])
    for (i = 1; i <= n; i++) line = line sprintf("%s%s %.1f", i > 1 ? ", " : "", substr(order[i], 3), v[order[i]])
    line = line ")"
    if (v["broker"] >= 0) line = line sprintf("  broker JVM %5.1f us/unit (JIT %.1f, GC %.1f)", v["broker"], v["jit"], v["gc"])
    printf "%s  load %s\n", line, v["load"] }' >&2
}

if [ "$warmup" -gt 0 ]; then
  warm=$(seconds=$warmup run on); describe "warm-up on (not counted)" "$warm"
fi
results=()
for round in $(seq 1 "$rounds"); do
  off=$(run off); describe "round $round off" "$off"
  on=$(run on);   describe "round $round on " "$on"
  results+=("off $off" "on $on")
  printf '%s\n%s\n' "off $off" "on $on" | awk -v r="$round" '
    { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[$1, kv[1]] = kv[2] } }
    END { printf "round %d: ratio on/off %.3f\n", r, v["on", "ups"] / v["off", "ups"] }' >&2
done

printf '%s\n' "${results[@]}" | awk -v c="$concurrency" -v s="$seconds" -v n="$rounds" '
  {
    side = $1; count[side]++
    for (i = 2; i <= NF; i++) {
      split($i, kv, "="); sum[side, kv[1]] += kv[2]
      if (kv[1] ~ /^g_/ && !(kv[1] in seen)) { seen[kv[1]] = 1; groups[++g] = kv[1] }
    }
  }
  function mean(side, key) { return count[side] ? sum[side, key] / count[side] : 0 }
  END {
    printf "shop-loadgen, %d workers, %d s x %d rounds each: off %.1f units/s, on %.1f units/s, ratio on/off %.3f\n",
           c, s, n, mean("off", "ups"), mean("on", "ups"), mean("on", "ups") / mean("off", "ups")
    printf "loadgen CPU per unit: off %.1f us, on %.1f us (+%.1f us for recording)\n",
           mean("off", "cpu"), mean("on", "cpu"), mean("on", "cpu") - mean("off", "cpu")
    printf "  by thread group, us per unit (off -> on):"
    for (i = 1; i <= g; i++) {
      k = groups[i]; printf "%s %s %.1f -> %.1f", (i > 1 ? "," : ""), substr(k, 3), mean("off", k), mean("on", k)
    }
    printf "\n"
    per_stmt = mean("on", "stmts") > 0 ? (mean("on", "cpu") - mean("off", "cpu")) * mean("on", "units") / mean("on", "stmts") : 0
    printf "recording per recorded statement: +%.1f us of loadgen CPU (%.2f statements per unit, BEGIN/COMMIT not counted)\n",
           per_stmt, (mean("on", "units") > 0 ? mean("on", "stmts") / mean("on", "units") : 0)
    if (mean("on", "broker") >= 0 && mean("off", "broker") >= 0)
      printf "broker JVM CPU per unit: off %.1f us, on %.1f us (of which its JIT compiler threads: off %.1f us, on %.1f us; its GC threads: off %.1f us, on %.1f us)\n",
             mean("off", "broker"), mean("on", "broker"), mean("off", "jit"), mean("on", "jit"), mean("off", "gc"), mean("on", "gc")
  }'
