#!/usr/bin/env bash
# docker-compose.yml cannot run here (no Docker engine); this keeps it valid
# and keeps it running the same pipeline the suite runs.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
docker-compose -f docker-compose.yml config -q
services=$(docker-compose -f docker-compose.yml config --services | sort | tr '\n' ' ')
for service in kafka primary shadow topics executor-1 executor-2 comparator loadgen shadowctl; do
  grep -qw "$service" <<<"$services" || { echo "docker-compose.yml lacks the $service service (has: $services)"; exit 1; }
done
# Every image we build comes from the Dockerfile, which runs scripts/bootstrap.
grep -q 'scripts/bootstrap' Dockerfile || { echo "Dockerfile does not run scripts/bootstrap"; exit 1; }
echo "docker-compose.yml: valid, services: $services"
