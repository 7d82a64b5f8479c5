#!/usr/bin/env bash
# issue 10: a shadow-executor and a shadow-comparator started within 100 ms of
# `shadowctl topics create` on a broker that has just come up must wait out
# what a fresh broker answers at first (unknown topic or partition, not
# leader, coordinator load in progress), not exit. Ten times, each on a freshly
# formatted private broker (scripts/stack in a folder of its own, on free
# ports), against that stack's shadow server.
# Usage: fresh_broker_test.sh <shadow-executor> <shadowctl> <shadow-comparator> [iterations]
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
executor=$1 shadowctl=$2 comparator=$3 iterations=${4:-10}
source "$root/tests/support/private_stack.sh" fresh-broker
dir=$private_stack_dir
executor_pid= comparator_pid=
cleanup() {
  [ -n "$executor_pid" ] && kill -KILL "$executor_pid" 2>/dev/null
  [ -n "$comparator_pid" ] && kill -KILL "$comparator_pid" 2>/dev/null
  "$stack" down >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

failures=0
# A program that still runs, logged its assignment, and stops cleanly on
# SIGTERM passes; one that exited (or ran with nothing assigned) fails.
check_program() {  # name pid log assigned-pattern
  local name=$1 pid=$2 log=$3 pattern=$4
  if kill -0 "$pid" 2>/dev/null; then
    if grep -q "$pattern" "$log"; then
      echo "ok: iteration $i: the $name runs and was assigned its partitions"
    else
      echo "FAIL: iteration $i: the $name runs but was assigned nothing"; failures=$((failures + 1))
    fi
    kill -TERM "$pid"
    wait "$pid" || { echo "FAIL: iteration $i: the $name did not stop cleanly"; failures=$((failures + 1)); }
  else
    local status=0
    wait "$pid" || status=$?
    echo "FAIL: iteration $i: the $name exited with $status:"; grep -v '^%' "$log" | tail -5
    failures=$((failures + 1))
  fi
}

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
  "$comparator" --brokers "$SHADOWPIPE_BROKERS" --group "fresh-cmp-$i" --comparator-id "fresh-cmp-$i" \
      >"$dir/comparator-$i.log" 2>&1 &
  comparator_pid=$!
  wait "$topics_pid" || { cat "$dir/topics.log"; echo "FAIL: topics create (iteration $i)"; exit 1; }
  # Until both are assigned or one exits, a minute at most: a fresh broker
  # creates __consumer_offsets before the first group forms, which on a
  # loaded machine took longer than a fixed 8 s once. Then a few seconds
  # more for the first commits on the new topics.
  for _ in $(seq 1 120); do
    kill -0 "$executor_pid" 2>/dev/null && kill -0 "$comparator_pid" 2>/dev/null || break
    grep -q "assigned" "$dir/executor-$i.log" && grep -q "assigned partition pairs: [1-9]" "$dir/comparator-$i.log" && break
    sleep 0.5
  done
  sleep 3
  check_program executor "$executor_pid" "$dir/executor-$i.log" "assigned"
  executor_pid=
  check_program comparator "$comparator_pid" "$dir/comparator-$i.log" "assigned partition pairs: [1-9]"
  comparator_pid=
done
[ "$failures" -eq 0 ] && echo "PASS: $iterations executors and comparators started next to a fresh broker's topic creation" || exit 1
