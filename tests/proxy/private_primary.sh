# Sourced by the proxy's shell tests that put shadow-proxy in front of a
# PostgreSQL 15 cluster of their own (restarted, or with an authentication
# of its own): the stack's servers are shared by the tests running beside it.
#   private_primary_setup NAME BIN_DIR INDEX
#     sets bin, root, run, port (16700+INDEX), metrics_port (16750+INDEX, or
#     SHADOWPIPE_PROXY_METRICS_BASE+INDEX), pg_port (SHADOWPIPE_PRIVATE_PG_PORT
#     or a free port), work (a fresh folder), direct (a DSN to the cluster as
#     postgres), fail and the EXIT trap that stops and removes everything;
#   private_primary_start [HBA [CONF]]  initdb (as postgres when root), start;
#     HBA replaces pg_hba.conf, CONF is added to postgresql.conf
#   pg_ctl ARGS...                pg_ctl on the cluster (-w, its log)
#   proxy_start                   topics and one shadow-proxy to the cluster ($proxy_pid)
#   proxy_stop, value             (proxy_summary.sh) the stop and its summary
private_primary_setup() {
  local name=$1
  bin=$2
  local index=$3
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  [ -n "${SHADOWPIPE_BROKERS:-}" ] || eval "$("$root/scripts/stack" env)"
  run=proxy-$name-$(date +%s)-$$
  port=$((16700 + index)) metrics_port=$((${SHADOWPIPE_PROXY_METRICS_BASE:-16750} + index))
  pg_port=${SHADOWPIPE_PRIVATE_PG_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
  pg_bin=/usr/lib/postgresql/15/bin
  work=$(mktemp -d "/tmp/shadowpipe-proxy-$name.XXXXXX")
  chmod 755 "$work"
  as_pg=()
  if [ "$(id -u)" -eq 0 ]; then as_pg=(runuser -u postgres --); chown postgres: "$work"; fi
  direct="host=127.0.0.1 port=$pg_port user=postgres dbname=postgres"
  pids=()
  trap private_primary_cleanup EXIT
}

fail() { echo "FAIL: $*"; for log in "$work"/*.log; do echo "--- $log"; tail -n 15 "$log"; done; exit 1; }

private_primary_cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$work"
}

pg_ctl() { "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/data" -l "$work/server.log" -w -t 60 "$@" >>"$work/pg_ctl.log" 2>&1; }

private_primary_start() {
  "${as_pg[@]}" "$pg_bin/initdb" -D "$work/data" -U postgres --auth=trust -E UTF8 --no-locale >"$work/initdb.log" 2>&1 \
    || fail "initdb"
  {
    printf "listen_addresses = '127.0.0.1'\nport = %s\nunix_socket_directories = ''\n" "$pg_port"
    printf "max_connections = 20\nshared_buffers = 16MB\nfsync = off\n%s\n" "${2:-}"
  } >>"$work/data/postgresql.conf"
  if [ -n "${1:-}" ]; then echo "$1" >"$work/data/pg_hba.conf"; fi
  pg_ctl start || fail "the private cluster did not start on port $pg_port"
}

proxy_start() {
  "$bin/shadowctl" topics create --partitions 1 --requests-topic "$run.requests" --results-topic "$run.results" \
      --mismatches-topic "$run.mismatches" --summary-topic "$run.summary" --dlq-topic "$run.dlq" \
      >"$work/topics.log" 2>&1 || fail "topics create"
  "$bin/shadow-proxy" --listen "127.0.0.1:$port" --primary "127.0.0.1:$pg_port" --topic "$run.requests" \
      --metrics-port "127.0.0.1:$metrics_port" >"$work/proxy.log" 2>&1 &
  proxy_pid=$!
  pids+=("$proxy_pid")
  for _ in $(seq 1 50); do grep -qs "listening on" "$work/proxy.log" && break; sleep 0.1; done
  grep -qs "listening on" "$work/proxy.log" || fail "shadow-proxy did not start"
}

source "$(dirname "${BASH_SOURCE[0]}")/proxy_summary.sh"
