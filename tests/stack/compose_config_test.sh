#!/usr/bin/env bash
# Keeps docker-compose.yml (and its override for machines without a registry)
# valid and running the same pipeline the suite runs, without an engine; the
# compose test (tests/compose) runs it for real.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
docker-compose -f docker-compose.yml config -q
docker-compose -f docker-compose.yml -f docker-compose.local.yml config -q
services=$(docker-compose -f docker-compose.yml config --services | sort | tr '\n' ' ')
for service in kafka primary shadow topics prepare shadow-executor comparator loadgen verdict shadowctl; do
  grep -qw "$service" <<<"$services" || { echo "docker-compose.yml lacks the $service service (has: $services)"; exit 1; }
done
local_services=$(docker-compose -f docker-compose.yml -f docker-compose.local.yml config --services | sort | tr '\n' ' ')
[ "$local_services" = "$services" ] || { echo "the override changes the services: $local_services vs $services"; exit 1; }
# Published ports bind loopback only, in the override too.
if docker-compose -f docker-compose.yml -f docker-compose.local.yml config | python3 -c '
import sys, yaml
config = yaml.safe_load(sys.stdin)
bad = [f"{name}: {port}" for name, service in config["services"].items() for port in service.get("ports", [])
       if (port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]) != "127.0.0.1"]
if bad: print("\n".join(bad))
sys.exit(1 if bad else 0)'; then :; else
  echo "a port is published beyond 127.0.0.1 (above)"; exit 1
fi
# Every image we build comes from the Dockerfile, which runs scripts/bootstrap.
grep -q 'scripts/bootstrap' Dockerfile || { echo "Dockerfile does not run scripts/bootstrap"; exit 1; }
# /dev/tcp is a bash feature; debian-slim's /bin/sh (dash) lacks it, so a
# CMD-SHELL health check using it never turns healthy.
if docker-compose -f docker-compose.yml config | grep -A2 'CMD-SHELL' | grep -q '/dev/tcp'; then
  echo "a CMD-SHELL health check uses /dev/tcp, which /bin/sh (dash) lacks: use [\"CMD\", \"bash\", \"-c\", ...]"; exit 1
fi
# Every program option the compose file passes exists (checked against --help).
bin=${SHADOWPIPE_BIN:-$root/build/bin}
if [ -n "${SHADOWPIPE_BIN:-}" ] && [ ! -x "$bin/shadow-executor" ]; then
  echo "the programs are not built in $bin"; exit 1
fi
if [ -x "$bin/shadow-executor" ]; then
  docker-compose -f docker-compose.yml config | python3 -c '
import subprocess, sys, yaml
config = yaml.safe_load(sys.stdin)
bad = []
for name, service in config["services"].items():
    command = service.get("command") or []
    entry = service.get("entrypoint") or []
    argv = (entry + command) if entry else command
    if not argv or argv[0].startswith("scripts/"):
        continue
    program = sys.argv[1] + "/" + argv[0]
    help_text = subprocess.run([program] + argv[1:2] + ["--help"] if argv[0] == "shadowctl" and len(argv) > 1 and not argv[1].startswith("-") else [program, "--help"],
                               capture_output=True, text=True).stdout
    if argv[0] == "shadowctl" and len(argv) > 2 and argv[1] == "topics":
        help_text = subprocess.run([program, "topics", argv[2], "--help"], capture_output=True, text=True).stdout
    for word in argv[1:]:
        if word.startswith("--") and word not in help_text:
            bad.append(f"{name}: {argv[0]} has no option {word}")
print("\n".join(bad))
sys.exit(1 if bad else 0)
' "$bin"
fi
echo "docker-compose.yml: valid, services: $services"
