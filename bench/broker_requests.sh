#!/usr/bin/env bash
# The requests the stack's Kafka broker served while a command ran, by type
# (Fetch, Produce, ...), and per second: the broker's CPU follows the number
# of requests more than the bytes (issue 14, stop 16), so this is how a
# client setting's cost on the broker is measured.
#
#   eval "$(scripts/stack env)"
#   bench/broker_requests.sh [--pid PID] -- COMMAND [ARGS...]
#
# It reads the broker's request meters before and after COMMAND through the
# JVM's local management agent (bench/kafka/BrokerRequestCounts.java attaches
# to the broker, which must run as this user; no port is opened). COMMAND's
# output goes to stdout as it runs; the counts follow. Every client of the
# broker is counted, so run nothing else against it meanwhile. Kafka counts
# each fetch under Fetch and again under FetchConsumer (or FetchFollower).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
usage="usage: bench/broker_requests.sh [--pid PID] -- COMMAND [ARGS...]"
pid=
while [ $# -gt 0 ]; do
  case $1 in
    --pid) [ $# -ge 2 ] || { echo "broker_requests: --pid needs a value ($usage)" >&2; exit 2; }; pid=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "broker_requests: unknown option $1 ($usage)" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "broker_requests: no command given ($usage)" >&2; exit 2; }
if [ -z "$pid" ]; then
  pid_file=${SHADOWPIPE_STACK_DIR:-$root/.stack}/kafka/kafka.pid
  [ -f "$pid_file" ] || { echo "broker_requests: no broker pid file at $pid_file: start the stack (scripts/stack up) or give --pid" >&2; exit 1; }
  pid=$(cat "$pid_file")
fi
kill -0 "$pid" 2>/dev/null || { echo "broker_requests: no broker runs as pid $pid: start the stack (scripts/stack up) or give --pid" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
counts() {  # file: the broker's counts, sorted as join wants them
  if ! java "$root/bench/kafka/BrokerRequestCounts.java" "$pid" >"$work/java.out" 2>&1; then
    echo "broker_requests: could not read the request meters of the broker (pid $pid): it needs a JDK (scripts/bootstrap installs one) and the broker running as this user; java said:" >&2
    tail -n 5 "$work/java.out" >&2
    exit 1
  fi
  LC_ALL=C sort "$work/java.out" >"$1"
}
counts "$work/before"
start=$(date +%s%N)
status=0
"$@" || status=$?
seconds=$(awk -v ns="$(( $(date +%s%N) - start ))" 'BEGIN { printf "%.3f", ns / 1e9 }')
counts "$work/after"
echo "broker requests while the command ran ($seconds s; type, count, per second):"
LC_ALL=C join -a 2 "$work/before" "$work/after" | awk -v seconds="$seconds" '
  { count = (NF == 3) ? $3 - $2 : $2 }
  count > 0 { printf "  %-32s %8d %8.1f/s\n", $1, count, count / seconds }'
exit "$status"
