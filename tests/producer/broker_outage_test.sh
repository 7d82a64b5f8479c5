#!/usr/bin/env bash
# issue 10: a recorder that drops write units while the broker is stopped
# (SIGSTOP) announces them once it can publish again, one gap record per
# partition with the exact count; and its counters tell the truth: records
# counted delivery_failed are not in the topic, possibly_delivered ones may
# be. A private broker (scripts/stack in a folder of its own, free ports),
# shadow-replay writing at 200 units/s for 16 s, the broker stopped for 8 s
# with records timing out after 3 s.
# Usage: broker_outage_test.sh <shadow-replay> <shadowctl>
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
replay=$1 shadowctl=$2
source "$root/tests/support/private_stack.sh" outage
dir=$private_stack_dir
kafka_pid=
cleanup() {
  [ -n "$kafka_pid" ] && kill -CONT "$kafka_pid" 2>/dev/null
  "$stack" down >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

env_lines=$("$stack" up 2>"$dir/up.err") || { cat "$dir/up.err"; fail "stack up"; }
eval "$env_lines"
kafka_pid=$(cat "$dir/kafka/kafka.pid")
topic=outage.requests
"$shadowctl" topics create --brokers "$SHADOWPIPE_BROKERS" --partitions 3 --requests-topic "$topic" \
    --results-topic outage.results --mismatches-topic outage.mismatches --summary-topic outage.summary \
    --dlq-topic outage.dlq >"$dir/topics.log" 2>&1 || { cat "$dir/topics.log"; fail "topics create"; }
psql "$PRIMARY_DSN" -XAtqc "CREATE TABLE events (id int PRIMARY KEY, key text NOT NULL)" >/dev/null \
  || fail "create table"
python3 - "$dir/units.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as out:
    for i in range(3200):
        out.write(json.dumps({"sql": "INSERT INTO events VALUES ($1, $2)", "params": [str(i), "k%d" % (i % 40)],
                              "key": "k%d" % (i % 40)}) + "\n")
PY
"$replay" --primary "$PRIMARY_DSN" --brokers "$SHADOWPIPE_BROKERS" --topic "$topic" --rate 200 \
    -X message.timeout.ms=3000 "$dir/units.jsonl" >"$dir/replay.out" 2>"$dir/replay.err" &
replay_pid=$!
sleep 4
kill -STOP "$kafka_pid"
sleep 8
kill -CONT "$kafka_pid"
wait "$replay_pid" || { cat "$dir/replay.err"; fail "shadow-replay exited with $?"; }
counters=$(grep '^recorder:' "$dir/replay.out" "$dir/replay.err" | tail -1)
[ -n "$counters" ] || { cat "$dir/replay.out" "$dir/replay.err"; fail "no counters from shadow-replay"; }
echo "$counters"
kcat -C -b "$SHADOWPIPE_BROKERS" -t "$topic" -o beginning -e -q -f '%p\t%s\n' >"$dir/topic.tsv" 2>"$dir/kcat.err" \
  || { cat "$dir/kcat.err"; fail "kcat"; }
python3 - "$dir/topic.tsv" "$counters" <<'PY'
import json, sys

def murmur2(data):
    m, r = 0x5bd1e995, 24
    h = (0x9747b28c ^ len(data)) & 0xffffffff
    n = len(data) // 4
    for i in range(n):
        k = data[4*i] | (data[4*i+1] << 8) | (data[4*i+2] << 16) | (data[4*i+3] << 24)
        k = (k * m) & 0xffffffff; k ^= k >> r; k = (k * m) & 0xffffffff
        h = (h * m) & 0xffffffff; h ^= k
    rest = len(data) % 4; t = n * 4
    if rest == 3: h ^= data[t+2] << 16
    if rest >= 2: h ^= data[t+1] << 8
    if rest >= 1: h ^= data[t]; h = (h * m) & 0xffffffff
    h ^= h >> 13; h = (h * m) & 0xffffffff; h ^= h >> 15
    return h

counters = dict(part.split("=") for part in sys.argv[2].split() if "=" in part)
c = {k: int(v) for k, v in counters.items()}
present, gaps = set(), {}
for line in open(sys.argv[1]):
    partition, payload = line.rstrip("\n").split("\t", 1)
    record = json.loads(payload)
    if record.get("record") == "gap":
        assert record["partition"] == int(partition), line
        gaps[int(partition)] = gaps.get(int(partition), 0) + record["units"]
    else:
        present.add(int(record["statements"][0]["params"][0]))
missing = [i for i in range(3200) if i not in present]
expected = {}
for i in missing:
    p = (murmur2(("k%d" % (i % 40)).encode()) & 0x7fffffff) % 3
    expected[p] = expected.get(p, 0) + 1
dropped = c["queue_full"] + c["delivery_failed"] + c["possibly_delivered"]
problems = []
print("in topic: %d of 3200; gap units by partition %s; missing by partition %s" % (len(present), gaps, expected))
if dropped == 0: problems.append("nothing was dropped: the outage proved nothing")
if c["pending"] != 0: problems.append("pending=%d at the end" % c["pending"])
if c["gap_units_pending"] != 0: problems.append("gap_units_pending=%d" % c["gap_units_pending"])
if sum(gaps.values()) != dropped: problems.append("gap units %d != dropped %d" % (sum(gaps.values()), dropped))
if c["gap_units_announced"] != dropped: problems.append("gap_units_announced %d != dropped %d" % (c["gap_units_announced"], dropped))
# Counted failed means not written; possibly delivered may be either.
if not (c["published"] <= len(present) <= c["published"] + c["possibly_delivered"]):
    problems.append("in topic %d, published %d, possibly_delivered %d" % (len(present), c["published"], c["possibly_delivered"]))
if c["possibly_delivered"] == 0 and gaps != expected:
    problems.append("gap units by partition %s != units missing by partition %s" % (gaps, expected))
for p in problems: print("FAIL: " + p)
sys.exit(1 if problems else 0)
PY
status=$?
[ $status -eq 0 ] && echo "PASS: dropped write units announced per partition, counters exact" || exit 1
