#!/usr/bin/env bash
# scripts/stack on ports and a folder of its own (the suite's stack keeps
# running): up twice leaves one broker and two servers; a taken port is a
# clear error naming it; down leaves nothing running.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dir=$(mktemp -d /tmp/shadowpipe-stack-test.XXXXXX)
chmod 755 "$dir"
export SHADOWPIPE_STACK_DIR=$dir
export SHADOWPIPE_KAFKA_PORT=${STACK_TEST_KAFKA_PORT:-29092}
export SHADOWPIPE_KAFKA_CONTROLLER_PORT=${STACK_TEST_CONTROLLER_PORT:-29093}
export SHADOWPIPE_PRIMARY_PORT=${STACK_TEST_PRIMARY_PORT:-25432}
export SHADOWPIPE_SHADOW_PORT=${STACK_TEST_SHADOW_PORT:-25433}
stack="$root/scripts/stack"
failures=0
check() {  # description, command...
  local what=$1; shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; failures=$((failures + 1)); fi
}
cleanup() {
  "$stack" down >/dev/null 2>&1 || true
  [ -n "${listener:-}" ] && kill "$listener" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

brokers_running() { pgrep -f "kafka.Kafka $dir/" | wc -l; }
servers_running() { pgrep -f "postgres -D $dir/" | wc -l; }

out=$("$stack" up 2>"$dir/up1.err") || { cat "$dir/up1.err"; echo "FAIL: first up"; exit 1; }
check "up prints the broker export" grep -q "export SHADOWPIPE_BROKERS=127.0.0.1:$SHADOWPIPE_KAFKA_PORT" <<<"$out"
check "up prints the primary DSN" grep -q "export PRIMARY_DSN=.*port=$SHADOWPIPE_PRIMARY_PORT" <<<"$out"
check "up prints the shadow DSN" grep -q "export SHADOW_DSN=.*port=$SHADOWPIPE_SHADOW_PORT" <<<"$out"
kafka_pid=$(cat "$dir/kafka/kafka.pid")
check "status says all three run" "$stack" status

"$stack" up >/dev/null 2>"$dir/up2.err" || { cat "$dir/up2.err"; echo "FAIL: second up"; failures=$((failures + 1)); }
check "second up keeps the same broker" test "$kafka_pid" = "$(cat "$dir/kafka/kafka.pid")"
check "second up says it was running" grep -q "already running" "$dir/up2.err"
check "one broker after two ups" test "$(brokers_running)" -eq 1
check "two servers after two ups" test "$(servers_running)" -eq 2
eval "$out"
check "the primary answers a query" psql "$PRIMARY_DSN" -XAtqc "select 1" -o /dev/null
check "the broker answers a metadata request" kcat -b "$SHADOWPIPE_BROKERS" -L -m 5 -q

"$stack" down 2>/dev/null
check "down leaves no broker" test "$(brokers_running)" -eq 0
check "down leaves no server" test "$(servers_running)" -eq 0
check "status after down is non-zero" bash -c "! '$stack' status >/dev/null"

python3 -c "
import socket, time, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); time.sleep(120)" "$SHADOWPIPE_PRIMARY_PORT" &
listener=$!
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$SHADOWPIPE_PRIMARY_PORT") 2>/dev/null && break; sleep 0.1; done
if "$stack" up >/dev/null 2>"$dir/taken.err"; then
  echo "FAIL: up succeeded although port $SHADOWPIPE_PRIMARY_PORT was taken"; failures=$((failures + 1))
else
  check "a taken port is named in the error" grep -q "port $SHADOWPIPE_PRIMARY_PORT (primary PostgreSQL) is already in use" "$dir/taken.err"
  check "the error says which variable picks another port" grep -q "SHADOWPIPE_PRIMARY_PORT" "$dir/taken.err"
fi
kill "$listener" 2>/dev/null; listener=

echo "stack script: $failures failed"
[ "$failures" -eq 0 ]
