#!/usr/bin/env bash
# issue 10: a shadow-executor started within 100 ms of `shadowctl topics
# create` on a broker that has just come up must wait out what a fresh
# broker answers at first (unknown topic or partition, not leader,
# coordinator load in progress), not exit. Ten times, each on a freshly
# formatted private broker (scripts/stack in a folder of its own, on free
# ports), against that stack's shadow server.
# Usage: fresh_broker_test.sh <shadow-executor> <shadowctl> [iterations]
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
executor=$1 shadowctl=$2 iterations=${3:-10}
dir=$(mktemp -d /tmp/shadowpipe-fresh-broker.XXXXXX)
chmod 755 "$dir"
free_ports() {  # four ports nobody listens on now
  python3 -c 'import socket
s=[socket.socket() for _ in range(4)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))'
}
read -r kafka_port controller_port primary_port shadow_port <<<"$(free_ports)"
export SHADOWPIPE_STACK_DIR=$dir SHADOWPIPE_KAFKA_PORT=$kafka_port SHADOWPIPE_KAFKA_CONTROLLER_PORT=$controller_port
export SHADOWPIPE_PRIMARY_PORT=$primary_port SHADOWPIPE_SHADOW_PORT=$shadow_port SHADOWPIPE_KAFKA_HEAP=384m
stack="$root/scripts/stack"
executor_pid=
cleanup() {
  [ -n "$executor_pid" ] && kill -KILL "$executor_pid" 2>/dev/null
  "$stack" down >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

failures=0
for i in $(seq 1 "$iterations"); do
  # A fresh broker each time: stop it, forget its data, start it again (the
  # PostgreSQL servers keep running).
  if [ -f "$dir/kafka/kafka.pid" ]; then
    pid=$(cat "$dir/kafka/kafka.pid")
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null
    rm -rf "$dir/kafka"
  fi
  env_lines=$("$stack" up 2>"$dir/up.err") || { cat "$dir/up.err"; echo "FAIL: stack up"; exit 1; }
  eval "$env_lines"
  "$shadowctl" topics create --brokers "$SHADOWPIPE_BROKERS" --partitions 6 >"$dir/topics.log" 2>&1 &
  topics_pid=$!
  sleep 0.05
  "$executor" --brokers "$SHADOWPIPE_BROKERS" --shadow "$SHADOW_DSN" --group "fresh-$i" --executor-id "fresh-$i" \
      --shutdown-deadline 2000 >"$dir/executor-$i.log" 2>&1 &
  executor_pid=$!
  wait "$topics_pid" || { cat "$dir/topics.log"; echo "FAIL: topics create (iteration $i)"; exit 1; }
  # Long enough for the assignment and the first commits on the new topics.
  sleep 8
  if kill -0 "$executor_pid" 2>/dev/null; then
    if grep -q "assigned" "$dir/executor-$i.log"; then
      echo "ok: iteration $i: the executor runs and was assigned its partitions"
    else
      echo "FAIL: iteration $i: the executor runs but was assigned nothing"; failures=$((failures + 1))
    fi
    kill -TERM "$executor_pid"
    wait "$executor_pid" || { echo "FAIL: iteration $i: the executor did not stop cleanly"; failures=$((failures + 1)); }
  else
    wait "$executor_pid"
    echo "FAIL: iteration $i: the executor exited with $?:"; grep -v '^%' "$dir/executor-$i.log" | tail -5
    failures=$((failures + 1))
  fi
  executor_pid=
done
[ "$failures" -eq 0 ] && echo "PASS: $iterations executors started next to a fresh broker's topic creation" || exit 1
