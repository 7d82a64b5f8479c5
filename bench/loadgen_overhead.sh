#!/usr/bin/env bash
# The cost of shadowing to the application: shop-loadgen at full speed
# (--rate 0) with the recorder off and on, alternating, against the same
# primary in the same run; prints both throughputs and their ratio (on/off;
# the goal is >= 0.97). Also the loadgen process's own CPU time per unit, on
# and off: the application-side cost, apart from the broker's CPU (which on a
# one-machine stack competes with PostgreSQL and skews the throughput ratio).
#
#   eval "$(scripts/stack env)"; scripts/shop-prepare --migration risky
#   bench/loadgen_overhead.sh [--seconds 20] [--rounds 2] [--concurrency 4] [--bin build/bin]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=20 rounds=2 concurrency=4 bin=${SHADOWPIPE_BIN:-$root/build/bin} topic=bench.loadgen
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --topic) topic=$2; shift 2 ;;
    *) echo "loadgen_overhead: unknown argument $1" >&2; exit 2 ;;
  esac
done
: "${PRIMARY_DSN:?set PRIMARY_DSN (eval \"\$(scripts/stack env)\")}"
: "${SHADOWPIPE_BROKERS:?set SHADOWPIPE_BROKERS (eval \"\$(scripts/stack env)\")}"
[ -x "$bin/shop-loadgen" ] || { echo "loadgen_overhead: $bin/shop-loadgen is not built" >&2; exit 2; }

run() {  # on|off -> "units/s cpu_us_per_unit"
  local flags=(--primary "$PRIMARY_DSN" --rate 0 --concurrency "$concurrency" --duration "$seconds" --seed 42)
  if [ "$1" = off ]; then flags+=(--no-shadow); else flags+=(--topic "$topic" --create-topic 6); fi
  local out
  out=$("$bin/shop-loadgen" "${flags[@]}" 2>/dev/null)
  printf '%s\n' "$out" | sed -n 's/^recorder: /    recorder: /p' >&2
  printf '%s\n' "$out" | sed -n 's/.*s: \([0-9.]*\) units\/s.*, \([0-9.]*\) us CPU per unit.*/\1 \2/p'
}

off_total=0 on_total=0 off_cpu=0 on_cpu=0
for round in $(seq 1 "$rounds"); do
  read -r off off_us < <(run off); echo "round $round: shadowing off: $off units/s, $off_us us CPU per unit" >&2
  read -r on on_us < <(run on);    echo "round $round: shadowing on:  $on units/s, $on_us us CPU per unit" >&2
  off_total=$(awk -v a="$off_total" -v b="$off" 'BEGIN { print a + b }')
  on_total=$(awk -v a="$on_total" -v b="$on" 'BEGIN { print a + b }')
  off_cpu=$(awk -v a="$off_cpu" -v b="$off_us" 'BEGIN { print a + b }')
  on_cpu=$(awk -v a="$on_cpu" -v b="$on_us" 'BEGIN { print a + b }')
done
awk -v off="$off_total" -v on="$on_total" -v offc="$off_cpu" -v onc="$on_cpu" -v n="$rounds" -v c="$concurrency" \
    -v s="$seconds" 'BEGIN {
  printf "shop-loadgen, %d workers, %d s x %d rounds each: off %.1f units/s, on %.1f units/s, ratio on/off %.3f\n",
         c, s, n, off / n, on / n, on / off
  printf "loadgen CPU per unit: off %.1f us, on %.1f us (+%.1f us for recording)\n", offc / n, onc / n, (onc - offc) / n }'
