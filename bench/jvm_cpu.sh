#!/usr/bin/env bash
# The CPU a JVM (the stack's Kafka broker) has used so far, in clock ticks,
# with the share of the JVM's own service threads apart:
#
#   bench/jvm_cpu.sh PID   ->   total=<ticks> jit=<ticks> gc=<ticks>
#
# jit: its JIT compiler threads ("C1 CompilerThre", "C2 CompilerThre"); gc:
# its garbage collector's ("GC Thread#N", "G1 ..."). A broker compiles its
# request paths for many minutes after it starts: with the executor bench
# run back to back its C2 thread alone still took 1.2 s of the broker's 3 s
# in a run 8 minutes after the start (2026-11-30). That is the JVM warming
# up, not what a client costs a broker that has run for days, so the
# benches print it apart. Threads that already exited are in total only.
# Prints zeros for a process that is gone (a run must not fail on it).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: bench/jvm_cpu.sh PID" >&2; exit 2; }
pid=$1
ticks() { sed 's/.*) //' "$1" 2>/dev/null | awk '{ print $12 + $13 }'; }
total=$(ticks "/proc/$pid/stat" || true)
[ -n "$total" ] || { echo "total=0 jit=0 gc=0"; exit 0; }
jit=0 gc=0
for task in /proc/"$pid"/task/*; do
  case "$(cat "$task/comm" 2>/dev/null)" in
    *CompilerThre*) jit=$((jit + $(ticks "$task/stat" || echo 0))) ;;
    "GC Thread"* | "G1 "*) gc=$((gc + $(ticks "$task/stat" || echo 0))) ;;
  esac
done
echo "total=$total jit=$jit gc=$gc"
