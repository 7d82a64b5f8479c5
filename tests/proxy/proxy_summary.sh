# Sourced by the proxy's shell tests: proxy_stop stops the shadow-proxy they
# started ($proxy_pid, its log in $work/proxy.log), fails (the caller's
# `fail`) unless it exits cleanly, and prints its stop summary ($summary);
# `value NAME` reads one figure of it. pipeline_topics_create and
# pipeline_compare run the real executor and comparator over what a proxy
# recorded.
proxy_stop() {
  kill -TERM "$proxy_pid"
  wait "$proxy_pid" || fail "shadow-proxy exited with $? when stopped"
  pids=()
  summary=$(grep '^shadow-proxy: connections=' "$work/proxy.log" | tail -n 1)
  echo "$summary"
}

value() { echo "$summary" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

# The requests topic a test's proxy records to and the pipeline's other four,
# named after $run, created with two partitions; `${topics[@]}` passes them on.
pipeline_topics_create() {
  topics=(--requests-topic "$run.requests" --results-topic "$run.results" --mismatches-topic "$run.mismatches"
          --summary-topic "$run.summary" --dlq-topic "$run.dlq")
  "$bin/shadowctl" topics create --partitions 2 "${topics[@]}" >"$work/topics.log" 2>&1 || fail "topics create"
}

# The real executor on shadow database $1 and a comparator over what was
# recorded; waits until $2 requests are compared (60 s at most) and writes
# the report to $work/report.json.
pipeline_compare() {
  "$bin/shadow-executor" --shadow "$SHADOW_DSN dbname=$1" --group "$run-executor" --executor-id executor-1 \
      --requests-topic "$run.requests" --results-topic "$run.results" --dlq-topic "$run.dlq" >"$work/executor.log" 2>&1 &
  pids+=($!)
  "$bin/shadow-comparator" --group "$run-comparator" --comparator-id comparator-1 "${topics[@]}" \
      --window 10000 --summary-interval 1000 >"$work/comparator.log" 2>&1 &
  pids+=($!)
  local compared=0
  for _ in $(seq 1 60); do
    compared=$("$bin/shadowctl" report --format json "${topics[@]}" 2>/dev/null |
               python3 -c 'import json,sys; print(json.load(sys.stdin)["compared"])' 2>/dev/null || echo 0)
    [ "$compared" -ge "$2" ] && break
    sleep 1
  done
  "$bin/shadowctl" report --format json "${topics[@]}" -o "$work/report.json" >/dev/null 2>&1 || fail "report"
}
