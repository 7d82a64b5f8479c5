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
# benches print it apart.
# Threads that already exited are in total only: where the JVM starts and
# stops extra compiler threads (CICompilerCount 3 or more) a share can fall
# between two readings; with 2 (this machine) they live as long as the JVM.
# Every figure is read in one pass (one awk over /proc, no process a thread:
# a broker has ~110 threads). Prints zeros for a process that is gone.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: bench/jvm_cpu.sh PID" >&2; exit 2; }
pid=$1
[ -r "/proc/$pid/stat" ] || { echo "total=0 jit=0 gc=0"; exit 0; }
shopt -s nullglob
tasks=(/proc/"$pid"/task/*/stat)
# getline, not file arguments: a thread that ends meanwhile is skipped (mawk
# stops at a file it cannot open).
awk '
  # A stat line is "pid (comm) state ...": comm may hold spaces, so the
  # fields are counted after the last ")"; utime and stime are the 12th and
  # 13th of those.
  function ticks(line,   rest, field) {
    rest = substr(line, match(line, /\) [^)]*$/) + 2)
    split(rest, field, " ")
    return field[12] + field[13]
  }
  function comm(line,   name) {
    name = substr(line, index(line, "(") + 1)
    return substr(name, 1, match(name, /\) [^)]*$/) - 1)
  }
  BEGIN {
    for (i = 1; i < ARGC; i++) {
      if ((getline line < ARGV[i]) <= 0) continue
      close(ARGV[i])
      if (i == 1) { total = ticks(line); continue }
      name = comm(line)
      if (name ~ /CompilerThre/) jit += ticks(line)
      else if (name ~ /^GC Thread/ || name ~ /^G1 /) gc += ticks(line)
    }
    printf "total=%d jit=%d gc=%d\n", total, jit, gc
  }
' "/proc/$pid/stat" "${tasks[@]}"
