#!/usr/bin/env bash
# bench/soak.sh --minutes N [--rate UNITS/S] [--partitions N]
#
# The shop workload through the recorder for N minutes, with the chaos the
# scale-out tests use, on the local stack: two shadow executors and two
# comparators; every N*60/8 seconds a random one of them is killed with
# SIGKILL and restarted (same id); once the broker is paused (SIGSTOP) for
# 10 s; once the shadow server is restarted. At the end it waits until the
# comparators have decided every request, and prints:
#   requests   what shop-loadgen published
#   decided    requests the comparators counted (whole-stream summaries)
#   lost       requests never decided or decided shadow_missing (must be 0)
#   duplicate  decisions published twice (must be 0)
# Exit 0 only when lost and duplicate are 0 and decided equals requests.
# The shadow gets no migration (--migration none): every discrepancy is the
# pipeline's fault, and the run reports any.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
minutes=10 rate=200 partitions=6
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --partitions) partitions=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "soak: unknown option $1" >&2; exit 2 ;;
  esac
done
say() { printf 'soak: %s\n' "$*" >&2; }
bin=${SHADOWPIPE_BIN:-$root/build/bin}
cmake --build build --target shadow-executor shadow-comparator shadowctl shop-loadgen >/dev/null
eval "$(scripts/stack up)"
stack_dir=${SHADOWPIPE_STACK_DIR:-$root/.stack}
run=soak-$(date +%Y%m%d-%H%M%S)-$$
run_dir=$stack_dir/runs/$run
mkdir -p "$run_dir"
topics=(--requests-topic "$run.requests" --results-topic "$run.results" --mismatches-topic "$run.mismatches"
        --summary-topic "$run.summary" --dlq-topic "$run.dlq")
export PRIMARY_DSN="$PRIMARY_DSN dbname=shop" SHADOW_DSN="$SHADOW_DSN dbname=shop"
"$bin/shadowctl" topics create --partitions "$partitions" "${topics[@]}" >/dev/null
scripts/shop-prepare --migration none

declare -A pids
start() {  # id
  case "$1" in
    executor-*) "$bin/shadow-executor" --shadow "$SHADOW_DSN" --group "$run-executor" --executor-id "$1" \
                    --requests-topic "$run.requests" --results-topic "$run.results" --dlq-topic "$run.dlq" \
                    >>"$run_dir/$1.log" 2>&1 & ;;
    comparator-*) "$bin/shadow-comparator" --group "$run-comparator" --comparator-id "$1" "${topics[@]}" \
                      --window 10000 --summary-interval 3000 >>"$run_dir/$1.log" 2>&1 & ;;
  esac
  pids[$1]=$!
}
cleanup() {
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  [ -n "${broker_pid:-}" ] && kill -CONT "$broker_pid" 2>/dev/null || true
}
trap cleanup EXIT
ids=(executor-1 executor-2 comparator-1 comparator-2)
for id in "${ids[@]}"; do start "$id"; done

say "$minutes min of shop load at $rate units/s with chaos (logs in ${run_dir#"$root"/})"
"$bin/shop-loadgen" --primary "$PRIMARY_DSN" --topic "$run.requests" --rate "$rate" --concurrency 4 \
    --duration $((minutes * 60)) >"$run_dir/loadgen.log" 2>&1 &
loadgen=$!
broker_pid=$(cat "$stack_dir/kafka/kafka.pid")
step_s=$((minutes * 60 / 8))
kills=0
for round in 1 2 3 4 5 6 7; do
  sleep "$step_s"
  kill -0 "$loadgen" 2>/dev/null || break
  victim=${ids[$((RANDOM % ${#ids[@]}))]}
  kill -KILL "${pids[$victim]}" 2>/dev/null || true
  wait "${pids[$victim]}" 2>/dev/null || true
  kills=$((kills + 1))
  say "round $round: killed $victim; restarting it"
  start "$victim"
  if [ "$round" = 3 ]; then
    say "pausing the broker for 10 s"
    kill -STOP "$broker_pid"; sleep 10; kill -CONT "$broker_pid"
  fi
  if [ "$round" = 5 ]; then
    say "restarting the shadow server"
    runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$stack_dir/pg/shadow" -m fast -w restart \
        >>"$run_dir/shadow-restart.log" 2>&1 || say "shadow restart failed (see shadow-restart.log)"
  fi
done
wait "$loadgen" || { say "shop-loadgen failed:"; tail -n 5 "$run_dir/loadgen.log" >&2; exit 1; }
requests=$(sed -n 's/.*published=\([0-9]*\).*/\1/p' "$run_dir/loadgen.log" | tail -n 1)
[ -n "$requests" ] || { say "shop-loadgen printed no published count"; exit 1; }

say "waiting until all $requests requests are decided"
decided=0
for _ in $(seq 1 300); do
  decided=$("$bin/shadowctl" report --format json "${topics[@]}" 2>/dev/null |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["compared"])' 2>/dev/null || echo 0)
  [ "$decided" -ge "$requests" ] && break
  sleep 2
done
"$bin/shadowctl" report --format json "${topics[@]}" -o "$run_dir/report.json"
read -r missing duplicates discrepancies < <(python3 - "$run_dir/report.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
kinds = {}
for fingerprint in report.get("fingerprints", []):
    for kind, count in fingerprint.get("discrepancies", {}).items():
        kinds[kind] = kinds.get(kind, 0) + count
print(kinds.get("shadow_missing", 0), report.get("duplicate_mismatch_records", 0),
      sum(c for k, c in kinds.items() if k != "latency_regression"))
PY
)
lost=$((requests - decided + missing))
[ "$lost" -ge 0 ] || lost=$missing
printf 'soak: %s min, %s kills, broker paused 10 s, shadow restarted once\n' "$minutes" "$kills"
printf 'requests %s\ndecided %s\nlost %s\nduplicate %s\ndiscrepancies %s\n' \
    "$requests" "$decided" "$lost" "$duplicates" "$discrepancies"
[ "$decided" -eq "$requests" ] && [ "$lost" -eq 0 ] && [ "$duplicates" -eq 0 ]
