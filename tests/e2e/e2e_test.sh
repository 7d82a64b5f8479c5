#!/usr/bin/env bash
# e2e_test.sh safe|risky BIN_DIR [library|proxy] — runs scripts/demo with that
# migration (and capture: the in-app recorder, or shadow-proxy) and checks the
# JSON report and the verdict's exit code (see check_report.py).
set -euo pipefail
migration=$1 bin=$2 capture=${3:-library}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run=e2e-$migration-$(date +%s)-$$
# ~22,000 units with concurrent writes: above the 20,000 the proof asks for.
SHADOWPIPE_BIN=$bin "$root/scripts/demo" --migration "$migration" --capture "$capture" --duration 55 --rate 400 \
    --run-id "$run" --report-json "$work/report.json" >"$work/demo.out" 2>"$work/demo.err" || {
  echo "scripts/demo failed:"; tail -n 40 "$work/demo.err"; tail -n 40 "$work/demo.out"; exit 1; }
set +e
"$bin/shadowctl" verdict --requests-topic "$run.requests" --mismatches-topic "$run.mismatches" \
    --summary-topic "$run.summary" --comparator-group "$run-comparator" --min-requests 20000 --max-mismatch-rate 0 --max-latency-ratio 3 >"$work/verdict.out" 2>&1
verdict=$?
set -e
cat "$work/verdict.out"
# Every record the producer, the executors and the comparator published in
# this run validates against schemas/.
[ -n "${SHADOWPIPE_BROKERS:-}" ] || eval "$("$root/scripts/stack" env)"
files=()
for topic in requests results mismatches summary dlq; do
  kcat -b "$SHADOWPIPE_BROKERS" -C -t "$run.$topic" -e -q -f '%s\n' > "$work/$topic.jsonl"
  files+=("$topic=$work/$topic.jsonl")
done
required=(--require requests --require results --require summary)
[ "$migration" = risky ] && required+=(--require mismatches)
python3 "$root/tests/schemas/validate_records.py" --schemas "$root/schemas" --max-per-topic 5000 \
    "${required[@]}" "${files[@]}"

# What the load generator published is the yardstick for "every request
# compared": without it the check below would compare against nothing.
published=$(sed -n 's/.*published=\([0-9]*\).*/\1/p' "$work/demo.out" | tail -n 1)
if [ -z "$published" ]; then
  echo "e2e: the demo's output has no published count from shop-loadgen:"; tail -n 20 "$work/demo.out"; exit 1
fi
python3 "$root/tests/e2e/check_report.py" "$migration" "$work/report.json" "$verdict" "$published"
