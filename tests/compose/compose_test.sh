#!/usr/bin/env bash
# compose_test.sh BIN_DIR — docker-compose up for real, twice, from a clean
# state of this test's compose project:
#   1. the risky migration with two executors: the verdict FAILs, naming
#      truncation (22001) on customer inserts, price rounding on product reads
#      and the sequential scan of orders behind orders-by-customer;
#   2. the safe migration with --scale shadow-executor=3: the verdict PASSes
#      with 0 discrepancies, every published request compared, and the
#      partitions spread over three executors;
# after each, docker-compose down -v leaves no container, network or volume.
# Uses docker-compose.local.yml (no image registry here) and the programs
# in BIN_DIR (build/bin) through the Dockerfile's prebuilt target; keeps
# each run's logs in BIN_DIR/../compose-test. Starts dockerd if none
# answers, and stops only that one.
# Environment: SHADOWPIPE_COMPOSE_LOAD_SECONDS (40), SHADOWPIPE_COMPOSE_KAFKA_PORT,
# _PRIMARY_PORT, _SHADOW_PORT (17092, 17432, 17433: loopback ports on the host).
set -euo pipefail
bin=$1
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
say() { printf '\ncompose_test: %s (%ds)\n' "$*" "$SECONDS"; }
fail() { printf 'compose_test: FAIL: %s\n' "$*"; exit 1; }

project=shadowpipe-compose-test
compose=(docker-compose -p "$project" -f docker-compose.yml -f docker-compose.local.yml)
export SHADOWPIPE_LOAD_SECONDS=${SHADOWPIPE_COMPOSE_LOAD_SECONDS:-40} SHADOWPIPE_LOAD_RATE=300
# Each run's logs, report and results stay for reading after a failure.
work=$(cd "$bin/.." && pwd)/compose-test
rm -rf "$work"
mkdir -p "$work"

engine_was_up=yes
docker info >/dev/null 2>&1 || engine_was_up=no
cleanup() {
  local status=$?
  trap - EXIT
  if docker info >/dev/null 2>&1; then
    "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
  fi
  [ "$engine_was_up" = yes ] || scripts/docker down || true
  [ "$status" -eq 0 ] || echo "compose_test: logs, reports and results of each run are in $work"
  exit "$status"
}
trap cleanup EXIT

say "engine and debian:12 base (scripts/docker up)"
scripts/docker up
say "images: shadowpipe:dev from $bin, Kafka and PostgreSQL 15 from the base"
[ "$(cd "$bin" && pwd)" = "$root/build/bin" ] || fail "BIN_DIR must be this checkout's build/bin, not $bin"
scripts/docker image
"${compose[@]}" build -q kafka primary shadow 2>&1 | { grep -v -i -e 'legacy builder' -e buildx -e 'docs.docker.com' -e '^ *$' || true; }

project_leftovers() {
  {
    docker ps -aq --filter "label=com.docker.compose.project=$project" | sed 's/^/container /'
    docker network ls -q --filter "label=com.docker.compose.project=$project" | sed 's/^/network /'
  } | tr '\n' ' '
}

# One pipeline run: up, wait for the verdict, collect the report, the
# results and the load generator's count, then down -v.
run_pipeline() {  # name, migration, executors expected, up options...
  local name=$1 migration=$2 executors=$3; shift 3
  local out=$work/$name
  mkdir -p "$out"
  say "$name: clean state"
  "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1
  [ -z "$(project_leftovers)" ] || fail "leftovers of $project before the run: $(project_leftovers)"
  docker volume ls -q | sort >"$out/volumes.before"

  say "$name: docker-compose up -d $* (migration $migration; returns when the load has run)"
  local started=$SECONDS
  SHADOWPIPE_MIGRATION=$migration timeout 900 "${compose[@]}" up -d --no-build "$@" >"$out/up.log" 2>&1 \
    || { cat "$out/up.log"; "${compose[@]}" logs --no-color --tail 30; fail "$name: docker-compose up failed"; }
  local verdict_container
  verdict_container=$("${compose[@]}" ps -q verdict)
  [ -n "$verdict_container" ] || fail "$name: no verdict container"
  verdict_status=$(timeout 600 docker wait "$verdict_container") || fail "$name: the verdict did not end in 600 s"
  say "$name: verdict exited $verdict_status, $((SECONDS - started)) s after up"
  docker logs "$verdict_container" >"$out/verdict.log" 2>&1
  "${compose[@]}" logs --no-color loadgen >"$out/loadgen.log"
  "${compose[@]}" run --rm -T --no-deps shadowctl report --format json >"$out/report.json" \
    || fail "$name: shadowctl report failed"
  "${compose[@]}" run --rm -T --no-deps --entrypoint kcat shadowctl -b kafka:9092 -C -t shadow.results \
      -e -q -f '%s\n' >"$out/results.jsonl" || fail "$name: reading shadow.results failed"
  "${compose[@]}" ps >"$out/ps.log"
  cat "$out/verdict.log"

  say "$name: docker-compose down -v"
  "${compose[@]}" down -v --remove-orphans >"$out/down.log" 2>&1 || { cat "$out/down.log"; fail "$name: down failed"; }
  [ -z "$(project_leftovers)" ] || fail "$name: down -v left $(project_leftovers)"
  docker volume ls -q | sort >"$out/volumes.after"
  local new_volumes
  new_volumes=$(comm -13 "$out/volumes.before" "$out/volumes.after" | tr '\n' ' ')
  [ -z "$new_volumes" ] || fail "$name: down -v left volumes $new_volumes"
  echo "ok: down -v left no container, network or volume of $project"

  local published
  published=$(sed -n 's/.*recorder: .*published=\([0-9]*\).*/\1/p' "$out/loadgen.log" | tail -n 1)
  python3 "$root/tests/compose/check_run.py" --migration "$migration" --verdict-status "$verdict_status" \
      --published "${published:-0}" --report "$out/report.json" --results "$out/results.jsonl" \
      --verdict-log "$out/verdict.log" --executors "$executors" || fail "$name: checks failed (above)"
}

run_pipeline risky risky 2
run_pipeline safe-scaled safe 3 --scale shadow-executor=3
say "passed"
