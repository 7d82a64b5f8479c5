#!/usr/bin/env python3
"""CPU seconds used so far by each part of a run on this machine, as JSON.

    cpu_snapshot.py NAME=KIND:PID[,PID...] ... > snapshot.json
    cpu_snapshot.py --per-unit BEFORE.json AFTER.json UNITS
    cpu_snapshot.py --parts-per-unit BEFORE.json AFTER.json UNITS
    cpu_snapshot.py --jvm PID

KIND says what of a process counts:
  tree     the process, its live children and the children it reaped (a
           PostgreSQL postmaster: backends that exited are in its cutime)
  self     the process alone (a broker, an executor)
  reaped   only the children the process reaped (a script's short-lived
           commands, e.g. the load generator it waited for)
A missing process counts 0. "machine" (busy time of every core, from
/proc/stat) is always written. --per-unit prints, for each part, the
microseconds of CPU per unit between two snapshots, and "other": the
machine's busy time that no part accounts for. --parts-per-unit prints
only the parts' sum.

"other" and "machine" are rough: the kernel counts the machine's busy time
in ticks (/proc/stat) and each process's time from its scheduler runtime,
and with the many short runs of this workload the two disagreed by up to
~15 % of the machine's time (other from -280 to +190 us a unit in runs of
the same programs, 2026-11-30). The parts' own figures, and their sum, are
the steadier measure of what the pipeline costs.

--jvm prints "total=<ticks> jit=<ticks> gc=<ticks>" of a JVM (the stack's
Kafka broker): its CPU so far in clock ticks and the share of its JIT
compiler threads ("C1/C2 CompilerThre") and GC threads ("GC Thread#N",
"G1 ..."); zeros for a process that is gone. A broker compiles its request
paths for many minutes after it starts (its C2 thread still took 1.2 s of
the broker's 3 s in an executor_vs_pgbench run 8 minutes after a start,
2026-11-30): the JVM warming up, not what a client costs a broker that has
run for days, so the benches print it apart. Threads that already exited
are in total only: where the JVM starts and stops extra compiler threads
(CICompilerCount 3 or more) a share can fall between two readings; with 2
(this machine) they live as long as the JVM.
"""
import json
import os
import sys

TICK = os.sysconf("SC_CLK_TCK")


def stat_fields(pid, path=None):
    """utime, stime, cutime, cstime, ppid and comm of a process (or of the
    thread whose stat file is `path`), or None."""
    try:
        with open(path or f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    return {"ppid": int(fields[1]), "utime": int(fields[11]), "stime": int(fields[12]),
            "cutime": int(fields[13]), "cstime": int(fields[14]),
            "comm": text[text.index("(") + 1:text.rindex(")")]}


def jvm_ticks(pid):
    """A JVM's ticks: in all, its JIT compiler threads' and its GC threads'."""
    own = stat_fields(pid)
    if own is None:
        return 0, 0, 0
    jit = gc = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        tasks = []
    for task in tasks:
        thread = stat_fields(pid, f"/proc/{pid}/task/{task}/stat")
        if thread is None:  # ended meanwhile
            continue
        used = thread["utime"] + thread["stime"]
        if "CompilerThre" in thread["comm"]:
            jit += used
        elif thread["comm"].startswith(("GC Thread", "G1 ")):
            gc += used
    return own["utime"] + own["stime"], jit, gc


def children_of(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = stat_fields(entry)
            if fields and fields["ppid"] == pid:
                found.append(fields)
    return found


def ticks(kind, pid):
    own = stat_fields(pid)
    if own is None:
        return 0
    if kind == "self":
        return own["utime"] + own["stime"]
    if kind == "reaped":
        return own["cutime"] + own["cstime"]
    if kind == "tree":
        live = sum(c["utime"] + c["stime"] + c["cutime"] + c["cstime"] for c in children_of(pid))
        return own["utime"] + own["stime"] + own["cutime"] + own["cstime"] + live
    raise SystemExit(f"cpu_snapshot: unknown kind {kind!r} (tree, self or reaped)")


def machine_busy_ticks():
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle, iowait = values[3], values[4]
    return sum(values[:8]) - idle - iowait  # user..softirq and steal; guest is inside user


def snapshot(specs):
    parts = {}
    for spec in specs:
        name, _, what = spec.partition("=")
        kind, _, pids = what.partition(":")
        parts[name] = sum(ticks(kind, int(pid)) for pid in pids.split(",") if pid) / TICK
    parts["machine"] = machine_busy_ticks() / TICK
    return parts


def used_seconds(before_path, after_path):
    """Each part's CPU seconds between two snapshots, and the machine's."""
    before, after = json.load(open(before_path)), json.load(open(after_path))
    used = {name: after[name] - before.get(name, 0) for name in after}
    return used, used.pop("machine")


def per_unit(before_path, after_path, units):
    used, machine = used_seconds(before_path, after_path)
    units = max(int(units), 1)
    shown = [f"{name} {seconds * 1e6 / units:.1f}" for name, seconds in used.items()]
    other = machine - sum(used.values())
    print(", ".join(shown) + f", other {other * 1e6 / units:.1f}; machine {machine * 1e6 / units:.1f} us a unit")


def parts_per_unit(before_path, after_path, units):
    used, _ = used_seconds(before_path, after_path)
    print(f"{sum(used.values()) * 1e6 / max(int(units), 1):.1f}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--per-unit":
        per_unit(*sys.argv[2:])
    elif len(sys.argv) == 5 and sys.argv[1] == "--parts-per-unit":
        parts_per_unit(*sys.argv[2:])
    elif len(sys.argv) == 3 and sys.argv[1] == "--jvm":
        print("total=%d jit=%d gc=%d" % jvm_ticks(int(sys.argv[2])))
    else:
        json.dump(snapshot(sys.argv[1:]), sys.stdout)
