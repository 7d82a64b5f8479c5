#!/usr/bin/env bash
# The whole pipeline at rising rates: the shop workload recorded by the
# in-application recorder (shop-loadgen), two shadow executors and a
# comparator on the stack, against a shadow with the safe migration. For
# each offered rate it prints the rate achieved, capture->decision latency
# p50/p99 (a request's primary commit time to the comparator's decision,
# from the comparator's shadowpipe_comparator_decision_lag_seconds
# histogram; quantiles are the upper bound of the bucket they fall in) and
# whether lag stayed bounded (every request of the step decided within
# --settle seconds after its load stopped). Then the highest rate sustained
# (achieved within 5 % and bounded), as a ratio to the ceiling of this
# machine: the same workload on the primary alone (shop-loadgen --no-shadow
# --rate 0, run last since it writes to the primary the shadow no longer
# follows).
#
#   eval "$(scripts/stack env)"
#   bench/pipeline.sh [--rates "100 200 400 800 1600"] [--seconds 20] [--settle 30] [--warmup 10] [--concurrency 4] [--bin build/bin]
#                     [--recorder-arg ARG]... [--executor-arg ARG]... [--comparator-arg ARG]...
#
# --warmup S (default 10; 0 for none): a run at the first rate, waited for and
# not reported, before the steps: a broker started a moment before compiles
# its produce and fetch paths during the first runs (docs/BENCHMARKS.md), and
# the executors and comparator join their groups then too.
# --recorder-arg / --executor-arg / --comparator-arg pass one argument to
# every shop-loadgen / shadow-executor / shadow-comparator run (e.g.
# --executor-arg -X --executor-arg linger.ms=5), to weigh a setting's cost
# against capture->decision latency.
# The comparator's /metrics is on SHADOWPIPE_BENCH_METRICS_PORT (16795).
#
# Where the machine's CPU goes (bench/cpu_snapshot.py), per step from its
# start until all its units are decided, in microseconds a unit: the load
# generator with the recorder (and this script's own short commands), the
# primary's and the shadow's servers (postmaster, backends, background
# workers), the broker, the executors, the comparator, and whatever else ran.
# The ceiling run gets the same line, so the two compare part by part.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rates="100 200 400 800 1600" seconds=20 settle=30 warmup=10 concurrency=4 bin=${SHADOWPIPE_BIN:-$root/build/bin}
recorder_args=() executor_args=() comparator_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rates) rates=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --settle) settle=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --recorder-arg) recorder_args+=("$2"); shift 2 ;;
    --executor-arg) executor_args+=("$2"); shift 2 ;;
    --comparator-arg) comparator_args+=("$2"); shift 2 ;;
    *) echo "pipeline: unknown argument $1" >&2; exit 2 ;;
  esac
done
: "${PRIMARY_DSN:?set PRIMARY_DSN (eval \"\$(scripts/stack env)\")}" "${SHADOW_DSN:?}" "${SHADOWPIPE_BROKERS:?}"
for program in shop-loadgen shadow-executor shadow-comparator shadowctl; do
  [ -x "$bin/$program" ] || { echo "pipeline: $bin/$program is not built" >&2; exit 2; }
done
metrics_port=${SHADOWPIPE_BENCH_METRICS_PORT:-16795}
run=bench-pipeline-$(date +%s)
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "pipeline: logs in $work" >&2
}
trap cleanup EXIT
# The shop's database: "shop" unless the DSN names one.
with_shop_database() { case " $1" in *" dbname="*) echo "$1" ;; *) echo "$1 dbname=shop" ;; esac; }
export PRIMARY_DSN=$(with_shop_database "$PRIMARY_DSN") SHADOW_DSN=$(with_shop_database "$SHADOW_DSN")

echo "pipeline: preparing the shop (primary, shadow clone, safe migration)" >&2
"$root/scripts/shop-prepare" --migration safe >"$work/prepare.log" 2>&1
topics=(--requests-topic "$run.requests" --results-topic "$run.results" --mismatches-topic "$run.mismatches"
        --summary-topic "$run.summary" --dlq-topic "$run.dlq")
"$bin/shadowctl" topics create --partitions 6 "${topics[@]}" >"$work/topics.log"
for n in 1 2; do
  "$bin/shadow-executor" --shadow "$SHADOW_DSN" --group "$run-executor" --executor-id "executor-$n" \
      --requests-topic "$run.requests" --results-topic "$run.results" --dlq-topic "$run.dlq" \
      ${executor_args[@]+"${executor_args[@]}"} >"$work/executor-$n.log" 2>&1 &
  pids+=($!)
done
"$bin/shadow-comparator" --group "$run-comparator" --comparator-id comparator-1 "${topics[@]}" \
    --metrics-port "127.0.0.1:$metrics_port" ${comparator_args[@]+"${comparator_args[@]}"} >"$work/comparator.log" 2>&1 &
pids+=($!)
sleep 3

# The processes whose CPU is counted (a process not found counts 0).
postmaster_of() { local dir; dir=$(psql "$1" -qtAc "SHOW data_directory" 2>/dev/null) && head -1 "$dir/postmaster.pid" 2>/dev/null || echo 0; }
broker_pid=$(cat "${SHADOWPIPE_STACK_DIR:-$root/.stack}/kafka/kafka.pid" 2>/dev/null || echo 0)
parts=(loadgen=reaped:$$ primary=tree:$(postmaster_of "$PRIMARY_DSN") shadow=tree:$(postmaster_of "$SHADOW_DSN")
       broker=self:$broker_pid executors=self:${pids[0]},${pids[1]} comparator=self:${pids[2]})
cpu_snapshot() { python3 "$root/bench/cpu_snapshot.py" "${parts[@]}" >"$1"; }
cpu_lines=()

scrape() { curl -sf "127.0.0.1:$metrics_port/metrics" >"$1" || { echo "pipeline: no /metrics from the comparator" >&2; exit 1; }; }
# Decisions so far (joined pairs and shadow_missing alike) from a scrape.
decided_in() { sed -n 's/^shadowpipe_comparator_decision_lag_seconds_count //p' "$1" | cut -d. -f1; }

published_total=0 sustained=0
if [ "$warmup" -gt 0 ]; then
  first_rate=${rates%% *}
  out=$("$bin/shop-loadgen" --primary "$PRIMARY_DSN" --topic "$run.requests" --rate "$first_rate" \
          --concurrency "$concurrency" --duration "$warmup" --seed 1 ${recorder_args[@]+"${recorder_args[@]}"} \
          2>>"$work/loadgen.log")
  published=$(printf '%s\n' "$out" | sed -n 's/.* published=\([0-9]*\).*/\1/p')
  [ -n "$published" ] || { echo "pipeline: shop-loadgen (warm-up) said: $out" >&2; exit 1; }
  published_total=$((published_total + published))
  warmed=no
  for _ in $(seq 1 "$settle"); do
    scrape "$work/warmup.prom"
    if [ "$(decided_in "$work/warmup.prom")" -ge "$published_total" ]; then warmed=yes; break; fi
    sleep 1
  done
  echo "pipeline: warm-up at $first_rate units/s for $warmup s: $published units, all decided: $warmed (not counted)" >&2
fi
printf '%-8s %10s %10s %10s %10s %8s\n' offered achieved p50_ms p99_ms decided bounded
declare -A p99_at=()
for rate in $rates; do
  scrape "$work/before-$rate.prom"
  cpu_snapshot "$work/cpu-before-$rate.json"
  out=$("$bin/shop-loadgen" --primary "$PRIMARY_DSN" --topic "$run.requests" --rate "$rate" \
          --concurrency "$concurrency" --duration "$seconds" --seed "$rate" \
          ${recorder_args[@]+"${recorder_args[@]}"} 2>>"$work/loadgen.log")
  achieved=$(printf '%s\n' "$out" | sed -n 's/.*s: \([0-9.]*\) units\/s.*/\1/p')
  published=$(printf '%s\n' "$out" | sed -n 's/.* published=\([0-9]*\).*/\1/p')
  [ -n "$achieved" ] && [ -n "$published" ] || { echo "pipeline: shop-loadgen said: $out" >&2; exit 1; }
  published_total=$((published_total + published))
  bounded=no
  for _ in $(seq 1 "$settle"); do
    scrape "$work/after-$rate.prom"
    if [ "$(decided_in "$work/after-$rate.prom")" -ge "$published_total" ]; then bounded=yes; break; fi
    sleep 1
  done
  cpu_snapshot "$work/cpu-after-$rate.json"
  cpu_lines+=("$(printf '%-8s ' "$rate")$(python3 "$root/bench/cpu_snapshot.py" --per-unit "$work/cpu-before-$rate.json" "$work/cpu-after-$rate.json" "$published")")
  read -r p50 p99 decided < <(python3 - "$work/before-$rate.prom" "$work/after-$rate.prom" <<'PY'
import re, sys
def buckets(path):
    out = {}
    for line in open(path):
        m = re.match(r'shadowpipe_comparator_decision_lag_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
        if m:
            out[float(m.group(1))] = float(m.group(2))
    return out
before, after = buckets(sys.argv[1]), buckets(sys.argv[2])
bounds = sorted(after)
delta = [after[b] - before.get(b, 0) for b in bounds]
total = delta[-1] if delta else 0
def quantile(q):
    for bound, count in zip(bounds, delta):
        if total and count >= q * total:
            return "inf" if bound == float("inf") else "%g" % (bound * 1000)
    return "-"
print(quantile(0.5), quantile(0.99), int(total))
PY
)
  printf '%-8s %10.0f %10s %10s %10s %8s\n' "$rate" "$achieved" "$p50" "$p99" "$decided" "$bounded"
  p99_at[$rate]=$p99
  if [ "$bounded" = yes ] && python3 -c "import sys; sys.exit(0 if $achieved >= 0.95 * $rate else 1)"; then
    sustained=$rate
  fi
done

echo "pipeline: the ceiling, the shop workload on the primary alone (--no-shadow --rate 0)" >&2
cpu_snapshot "$work/cpu-before-ceiling.json"
ceiling_out=$("$bin/shop-loadgen" --primary "$PRIMARY_DSN" --no-shadow --rate 0 --concurrency "$concurrency" \
                --duration "$seconds" --seed 7 2>>"$work/loadgen.log")
cpu_snapshot "$work/cpu-after-ceiling.json"
ceiling=$(printf '%s\n' "$ceiling_out" | sed -n 's/.*s: \([0-9.]*\) units\/s.*/\1/p')
ceiling_units=$(printf '%s\n' "$ceiling_out" | sed -n 's/^shop-loadgen: \([0-9]*\) units .*/\1/p')
echo "CPU per unit by part (us; each step from its start until all its units were decided):"
for line in "${cpu_lines[@]}"; do echo "  $line"; done
if [ -n "$ceiling_units" ]; then
  echo "  ceiling  $(python3 "$root/bench/cpu_snapshot.py" --per-unit "$work/cpu-before-ceiling.json" "$work/cpu-after-ceiling.json" "$ceiling_units")"
  # The ceiling's CPU a unit over the highest step's, summed over the parts
  # (the machine's own total is tick-counted and rough, cpu_snapshot.py):
  # when that step kept every core busy, the sustained ratio cannot pass
  # it; below saturation fixed costs (polling, background work) inflate
  # the step's.
  ceiling_cpu=$(python3 "$root/bench/cpu_snapshot.py" --parts-per-unit "$work/cpu-before-ceiling.json" "$work/cpu-after-ceiling.json" "$ceiling_units")
  top_cpu=$(python3 "$root/bench/cpu_snapshot.py" --parts-per-unit "$work/cpu-before-$rate.json" "$work/cpu-after-$rate.json" "$published")
  python3 -c "print('CPU a unit of the parts, ceiling / highest step: %.2f (%.1f / %.1f us; the bound of the sustained ratio when that step saturated the machine)' % ($ceiling_cpu / $top_cpu, $ceiling_cpu, $top_cpu))"
fi
python3 - "$sustained" "$ceiling" <<'PY'
import sys
sustained, ceiling = float(sys.argv[1]), float(sys.argv[2])
print("ceiling (primary alone): %.0f units/s; highest rate sustained through the pipeline: %.0f units/s = %.2fx the ceiling"
      % (ceiling, sustained, sustained / ceiling if ceiling else 0))
PY
