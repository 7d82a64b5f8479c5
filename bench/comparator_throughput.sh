#!/usr/bin/env bash
# Comparator throughput through the real broker against a bare librdkafka
# consumer of the same two topics, and bytes per pending request.
# Usage: bench/comparator_throughput.sh [--pairs N] [--pending N] [--partitions N] [--short-ids]
# (ids are the recorder's UUIDs unless --short-ids)
# Needs the local stack (eval "$(scripts/stack up)") and a build with
# SHADOWPIPE_BENCH=ON (BUILD_DIR, default build/).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
cmake --build "$build_dir" --target comparator_throughput >/dev/null
: "${SHADOWPIPE_BROKERS:?run eval \"\$(scripts/stack up)\" first}"
exec "$build_dir/bin/comparator_throughput" --brokers "$SHADOWPIPE_BROKERS" "$@"
