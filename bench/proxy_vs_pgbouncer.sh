#!/usr/bin/env bash
# shadow-proxy against PgBouncer and a direct connection: pgbench (-c 8 -j 2,
# select-only and the default TPC-B-like mix) to the stack's primary, direct,
# through PgBouncer 1.18 (Debian; session mode, like the proxy) and through
# shadow-proxy with recording on, in the same run. Prints throughput, the
# ratios against direct and PgBouncer, and per-transaction latency p50/p99
# (pgbench's transaction log). relay-only is shadow-proxy with --no-capture:
# the relay's own cost, apart from capture and recording.
#
#   eval "$(scripts/stack env)"; bench/proxy_vs_pgbouncer.sh [seconds per run] [build dir]
#
# Ports: PgBouncer and the proxy listen on SHADOWPIPE_BENCH_PORT (16790) and
# the next one.
set -euo pipefail
seconds=${1:-20}
build=${2:-build}
: "${PRIMARY_DSN:?run eval \"\$(scripts/stack env)\" first}" "${SHADOWPIPE_BROKERS:?}"
bouncer_port=${SHADOWPIPE_BENCH_PORT:-16790}
proxy_port=$((bouncer_port + 1))
relay_port=$((bouncer_port + 2))
primary_port=$(echo "$PRIMARY_DSN" | sed -n 's/.*port=\([0-9]*\).*/\1/p')
stamp=$(date +%s)
db=bench_proxy_$stamp
topic=bench-proxy-$stamp
work=$(mktemp -d)
chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  psql "$PRIMARY_DSN" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

psql "$PRIMARY_DSN" -qc "CREATE DATABASE $db"
pgbench -i -q -s 10 "$PRIMARY_DSN dbname=$db" >/dev/null 2>&1

# PgBouncer in session mode, trusting as the stack's primary does. It
# refuses to run as root: as the postgres user, which runs the stack's servers.
cat >"$work/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=$primary_port
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bouncer_port
unix_socket_dir =
auth_type = trust
auth_file = $work/users.txt
pool_mode = session
max_client_conn = 100
default_pool_size = 20
INI
echo '"postgres" ""' >"$work/users.txt"
chmod 644 "$work/pgbouncer.ini" "$work/users.txt"
as_postgres=()
[ "$(id -u)" -eq 0 ] && as_postgres=(runuser -u postgres --)
"${as_postgres[@]}" pgbouncer "$work/pgbouncer.ini" >"$work/pgbouncer.out" 2>&1 &
pids+=($!)
"$build/bin/shadowctl" topics create --partitions 1 --requests-topic "$topic.requests" \
    --results-topic "$topic.results" --mismatches-topic "$topic.mismatches" --summary-topic "$topic.summary" \
    --dlq-topic "$topic.dlq" >/dev/null
"$build/bin/shadow-proxy" --listen "127.0.0.1:$proxy_port" --primary "127.0.0.1:$primary_port" \
    --topic "$topic.requests" >"$work/proxy.log" 2>&1 &
proxy_pid=$!
pids+=("$proxy_pid")
# The relay alone (--no-capture): what recording costs is the difference.
"$build/bin/shadow-proxy" --listen "127.0.0.1:$relay_port" --primary "127.0.0.1:$primary_port" --no-capture \
    >"$work/relay.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do
  pg_isready -q -h 127.0.0.1 -p "$bouncer_port" && grep -q "listening on" "$work/proxy.log" && break
  sleep 0.1
done
pg_isready -q -h 127.0.0.1 -p "$bouncer_port" || { echo "PgBouncer did not start:"; cat "$work/pgbouncer.out"; exit 1; }

declare -A dsn=(
  [direct]="$PRIMARY_DSN dbname=$db"
  [pgbouncer]="host=127.0.0.1 port=$bouncer_port user=postgres dbname=$db"
  [shadow-proxy]="host=127.0.0.1 port=$proxy_port user=postgres dbname=$db"
  [relay-only]="host=127.0.0.1 port=$relay_port user=postgres dbname=$db"
)
results=$work/results.tsv
for mode in select-only tpcb-like; do
  for target in direct pgbouncer shadow-proxy relay-only; do
    rm -f "$work"/txlog*
    out=$(pgbench -n -c 8 -j 2 -T "$seconds" -b "$mode" -l --log-prefix="$work/txlog" "${dsn[$target]}" 2>&1) \
      || { echo "$out"; exit 1; }
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -n 1)
    # Column 3 of pgbench's transaction log: the transaction's latency in microseconds.
    read -r p50 p99 < <(cat "$work"/txlog* | python3 -c '
import sys
lat = sorted(int(line.split()[2]) for line in sys.stdin)
print("%.3f %.3f" % (lat[len(lat) // 2] / 1000, lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1000))')
    printf '%s\t%s\t%s\t%s\t%s\n' "$mode" "$target" "$tps" "$p50" "$p99" >>"$results"
  done
done
kill -TERM "$proxy_pid"
wait "$proxy_pid" || true
pids=("${pids[@]:0:1}" "${pids[@]:2}")
recorded=$(grep '^shadow-proxy: connections=' "$work/proxy.log" | tail -n 1)

python3 - "$results" "$seconds" <<'PY'
import sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
by = {(m, t): (float(tps), float(p50), float(p99)) for m, t, tps, p50, p99 in rows}
print("pgbench -c 8 -j 2 -T %s, simple protocol, scale 10" % sys.argv[2])
print("%-12s %-13s %10s %9s %9s %10s %12s" % ("mix", "through", "tps", "p50 ms", "p99 ms", "vs direct", "vs pgbouncer"))
for mode in ("select-only", "tpcb-like"):
    direct, bouncer = by[(mode, "direct")][0], by[(mode, "pgbouncer")][0]
    for target in ("direct", "pgbouncer", "shadow-proxy", "relay-only"):
        tps, p50, p99 = by[(mode, target)]
        print("%-12s %-13s %10.0f %9.3f %9.3f %9.2fx %11.2fx" % (mode, target, tps, p50, p99, tps / direct, tps / bouncer))
PY
echo "$recorded"
