#!/usr/bin/env bash
# The requests the stack's Kafka broker served while a command ran, by type
# (Fetch, Produce, ...), and per second: the broker's CPU follows the number
# of requests more than the bytes (issue 14, stop 16), so this is how a
# client setting's cost on the broker is measured.
#
#   eval "$(scripts/stack env)"
#   bench/broker_requests.sh [--jmx-port PORT] [--pid PID] -- COMMAND [ARGS...]
#
# It opens a local JMX port on the running broker (jcmd
# ManagementAgent.start, no authentication, bound to loopback; once per
# broker process; by default the broker's port in SHADOWPIPE_BROKERS + 6) and reads the request meters before and after COMMAND
# (bench/kafka/BrokerRequestCounts.java). COMMAND's output goes to stdout as
# it runs; the counts follow. Every client of the broker is counted, so run
# nothing else against it meanwhile.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
broker_port=${SHADOWPIPE_BROKERS:-127.0.0.1:19092}
broker_port=${broker_port%%,*}
port=$(( ${broker_port##*:} + 6 ))
pid=
while [ $# -gt 0 ]; do
  case $1 in
    --jmx-port) port=$2; shift 2 ;;
    --pid) pid=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "broker_requests: unknown option $1 (usage: [--jmx-port P] [--pid PID] -- COMMAND...)" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "broker_requests: no command given (usage: [--jmx-port P] [--pid PID] -- COMMAND...)" >&2; exit 2; }
if [ -z "$pid" ]; then
  pid_file=${SHADOWPIPE_STACK_DIR:-$root/.stack}/kafka/kafka.pid
  [ -f "$pid_file" ] || { echo "broker_requests: no broker pid file at $pid_file: start the stack (scripts/stack up) or give --pid" >&2; exit 1; }
  pid=$(cat "$pid_file")
fi
command -v jcmd >/dev/null || { echo "broker_requests: jcmd not found: it comes with the JDK (scripts/bootstrap installs it)" >&2; exit 1; }

counts() { java "$root/bench/kafka/BrokerRequestCounts.java" "$port"; }
if ! counts >/dev/null 2>&1; then
  jcmd "$pid" ManagementAgent.start "jmxremote.port=$port" "jmxremote.rmi.port=$port" jmxremote.authenticate=false \
    jmxremote.ssl=false jmxremote.host=127.0.0.1 >/dev/null ||
    { echo "broker_requests: could not open JMX on the broker (pid $pid) at port $port; if jcmd said the agent is already started, it listens on the port given the first time: pass that one with --jmx-port" >&2; exit 1; }
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
counts >"$work/before"
start=$(date +%s%N)
status=0
"$@" || status=$?
seconds=$(awk -v ns="$(( $(date +%s%N) - start ))" 'BEGIN { printf "%.3f", ns / 1e9 }')
counts >"$work/after"
echo "broker requests while the command ran ($seconds s; type, count, per second):"
join -a 2 "$work/before" "$work/after" | awk -v seconds="$seconds" '
  { count = (NF == 3) ? $3 - $2 : $2 }
  count > 0 { printf "  %-32s %8d %8.1f/s\n", $1, count, count / seconds }'
exit "$status"
