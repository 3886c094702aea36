#!/usr/bin/env python3
"""Where one `rt run` of /bin/true spends its time, phase by phase.

Python 3 standard library only. Run as root:

    python3 bench/breakdown.py [--iterations 50] [--out bench-results/breakdown.md]

rt marks the phases of a command in its `--debug` output ("phase: NAME" lines, written by
rt and by the container's init, each with a nanosecond timestamp; see logging::phase). Each
iteration runs `rt --debug --root STATE run -b BUNDLE ID`, and the time between consecutive
marks is charged to the phase that ends at the later one; the medians over the iterations make
the table. The marks cost a few microseconds each (one write), so the total is a little above
a plain `make bench` run.

Beside it, the kernel's floor for the same container: bench/floor.c (built here with gcc, no C
library) makes the kernel do what any runtime must for this config and nothing else: the
cgroups (v2, and one in each v1 hierarchy on v1 and hybrid hosts), the same namespaces (split
between clone3 and the child's unshare as rt splits them, the v1 cgroups made meanwhile), the
config's mounts, device nodes, masked and read-only paths, pivot_root, the
hostname, execve of /bin/true, the wait and the cgroups' removal. No state, checks, device
filter or capabilities: a lower bound for any runtime, timed the same way as rt (fork, exec,
wait), so what rt takes above it is rt's own cost.

Then both side by side, phase by phase, from the kernel's view: a tracefs instance records
the process events (exec, fork, exit) and the system calls that mark the same steps in rt and
in the floor (clone3, the init's two unshares, pivot_root, the first exec), with no mark of
rt's own; each phase's median for rt, for the floor, and the difference: where rt's own cost
is. Skipped (with a note) where tracefs or those events are missing.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import bench_config, default_rt  # noqa: E402  (the same bundle and rt as the benchmark)

MARK = re.compile(r'time="\d{4}-\d\d-\d\dT(\d\d):(\d\d):(\d\d\.\d+)Z" level=debug msg="phase: (.*)"')

# What happens between the previous mark and this one.
WHAT = {
    "rt started": "exec of rt, argument parsing, logging",
    "config loaded": "config.json read and checked",
    "state dir, fifo, trampoline, filters ready": "state dir and lock, exec fifo, trampoline memfd, seccomp and device filters compiled",
    "cgroups ready": "cgroup v2 made (controllers, limits); the rest follows the clone",
    "init: in its namespaces": "clone3 into the pid namespace and the v2 cgroup; the init unshares its mount, network, UTS and IPC namespaces while rt's side makes the v1 cgroups and the device filter; it joins them, and its cgroup namespace",
    "init: rootfs mounted": "mounts: rootfs, /proc, /sys, /dev and its nodes, the bundle's mounts (meanwhile rt's side writes the state files)",
    "init: pivoted": "pivot_root, old root detached",
    "init: ready (user, caps, seccomp next)": "hostname, sysctls, rlimits and the rest before the credentials",
    "init ready, waiting for start": "rt hears 'ready' (the init has gone on: see the line above)",
    "created": "pid file and console, if any (create's work is done)",
    "init: exec": "user, groups, capabilities, seccomp, fd closing, 'ready' sent; the exec fifo, whose read side run opened before the init existed (so the init does not wait for rt), startContainer hooks",
    "started": "rt hears the init's answer and the exec (fifo closed), removes the fifo",
    "container exited": "trampoline exec of /bin/true, /bin/true, the wait",
    "rt done": "delete: cgroups removed, state dir removed",
}


def seconds(h, m, s):
    return int(h) * 3600 + int(m) * 60 + float(s)


def one_run(rt, bundle, state, cid):
    p = subprocess.run([rt, "--debug", "--root", state, "run", "-b", bundle, cid],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True, timeout=60)
    if p.returncode != 0:
        raise SystemExit(f"breakdown: rt run failed ({p.returncode}):\n{p.stderr}")
    marks = [(seconds(*m.groups()[:3]), m.group(4)) for m in map(MARK.search, p.stderr.splitlines()) if m]
    return [(name, (t - t0) * 1000) for (t0, _), (t, name) in zip(marks, marks[1:])]


def build_floor(work):
    exe = os.path.join(work, "floor")
    subprocess.run(["gcc", "-O2", "-static", "-no-pie", "-nostdlib", "-ffreestanding", "-fno-stack-protector",
                    "-o", exe, os.path.join(REPO, "bench/floor.c")], check=True)
    return exe


def cgroup_dirs():
    """The cgroup2 mount and the v1 hierarchies' mounts (where the floor makes its cgroups)."""
    v2, v1 = None, []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype == "cgroup2" and v2 is None:
                v2 = fields[4]
            elif fstype == "cgroup":
                v1.append(fields[4])
    if v2 is None:
        raise SystemExit("breakdown: no cgroup2 mount")
    return v2, v1


TRACEFS = "/sys/kernel/tracing"
TRACE_EVENTS = ["sched/sched_process_exec", "sched/sched_process_fork", "sched/sched_process_exit",
                "syscalls/sys_enter_clone3", "syscalls/sys_enter_unshare", "syscalls/sys_enter_pivot_root",
                "syscalls/sys_enter_execve", "syscalls/sys_enter_execveat"]
# The steps both programs take, in order, and what happens between one and the next.
STEPS = [
    ("start", "exec'd", ""),
    ("clone3", "clone3 called", "the runtime starts, reads its input, makes the state and the v2 cgroup"),
    ("forked", "init forked", "clone3: a copy of the caller's memory map, the pid namespace"),
    ("unshare1", "init unshares", "the init starts running"),
    ("unshare2", "init unshares its cgroup ns", "mount, network, UTS and IPC namespaces; the v1 cgroups made meanwhile and joined"),
    ("pivot", "pivot_root", "mounts, devices, masked and read-only paths"),
    ("exec1", "first exec", "old root detached, hostname, credentials, capabilities, the handshakes"),
    ("true", "/bin/true exec'd", "rt: the trampoline's exec (the init's memory map goes); the floor: none"),
    ("true_exit", "/bin/true exits", "/bin/true runs"),
    ("end", "runtime exits", "the container's exit (its namespaces go), the wait, cgroups and state removed"),
]
TRACE_LINE = re.compile(r"^\s*(.+)-(\d+)\s+\[\d+\]\s+\S+\s+([\d.]+):\s+(\w+)[:(]\s*(.*)$")


def trace_runs(argvs, n):
    """Runs each argv n times, alternating, under a tracefs instance of our own: the steps of
    STEPS per run, as {name: [(step -> seconds)]}, or None without tracefs."""
    if not os.path.isdir(os.path.join(TRACEFS, "instances")):
        return None
    inst = os.path.join(TRACEFS, "instances", f"rt-breakdown-{os.getpid()}")
    try:
        os.mkdir(inst)
    except OSError:
        return None
    try:
        for e in TRACE_EVENTS:
            path = os.path.join(inst, "events", e, "enable")
            if not os.path.exists(path):
                return None
            with open(path, "w") as f:
                f.write("1")
        with open(os.path.join(inst, "buffer_size_kb"), "w") as f:
            f.write("8192")
        for _ in range(n):
            for argv in argvs.values():
                subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
        with open(os.path.join(inst, "tracing_on"), "w") as f:
            f.write("0")
        with open(os.path.join(inst, "trace")) as f:
            lines = f.read().splitlines()
    finally:
        os.rmdir(inst)
    events = [m.groups() for m in map(TRACE_LINE.match, lines) if m]
    runs = {name: [] for name in argvs}
    # The kernel names the file as execve was given it: subprocess passes a path as it is and
    # resolves a bare name through PATH.
    exe = {os.path.realpath(shutil.which(argv[0]) or argv[0]): name for name, argv in argvs.items()}
    i = 0
    while i < len(events):
        _, pid, t, ev, rest = events[i]
        i += 1
        m = re.search(r"filename=(.+) pid=\d+ old_pid=\d+$", rest) if ev == "sched_process_exec" else None
        if not m or os.path.realpath(m.group(1)) not in exe:
            continue
        name = exe[os.path.realpath(m.group(1))]
        marks, child = {"start": float(t)}, None
        while i < len(events):
            _, p, t, ev, rest = events[i]
            if ev == "sched_process_exec" and p != child:
                nm = re.search(r"filename=(.+) pid=\d+ old_pid=\d+$", rest)
                if nm and os.path.realpath(nm.group(1)) in exe:
                    break  # the next run: this one's exit was lost, so it is left out
            i += 1
            t = float(t)
            if p == pid:
                if ev == "sys_clone3":
                    marks.setdefault("clone3", t)
                elif ev == "sched_process_fork" and child is None:
                    cm = re.search(r"child_pid=(\d+)", rest)
                    child = cm.group(1) if cm else None
                    marks["forked"] = t
                elif ev == "sched_process_exit":
                    marks["end"] = t
                    break
            elif p == child:
                if ev == "sys_unshare":
                    marks["unshare2" if "unshare1" in marks else "unshare1"] = t
                elif ev == "sys_pivot_root":
                    marks["pivot"] = t
                elif ev in ("sys_execve", "sys_execveat"):
                    marks.setdefault("exec1", t)
                elif ev == "sched_process_exec" and rest.startswith("filename=/bin/true"):
                    marks["true"] = t
                elif ev == "sched_process_exit":
                    marks["true_exit"] = t
        if all(s in marks for s, _, _ in STEPS):
            runs[name].append(marks)
    return runs


def timed(argv, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return statistics.median(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--rt", default=default_rt())
    ap.add_argument("--bundle", default=os.path.join(REPO, "bundles/busybox"))
    ap.add_argument("--out", default=os.path.join(REPO, "bench-results/breakdown.md"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("breakdown: run as root")
    work = tempfile.mkdtemp(prefix="rt-breakdown.")
    try:
        bundle = os.path.join(work, "bundle")
        os.makedirs(bundle)
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(bench_config(args.bundle), f)
        state = os.path.join(work, "state")
        phases, totals = {}, []
        order = []
        for i in range(args.iterations + 3):
            runs = one_run(args.rt, bundle, state, f"breakdown-{os.getpid()}-{i}")
            if i < 3:  # warm-up
                continue
            totals.append(sum(ms for _, ms in runs))
            for name, ms in runs:
                if name not in phases:
                    order.append(name)
                phases.setdefault(name, []).append(ms)
        v2, v1 = cgroup_dirs()
        rootfs = bench_config(args.bundle)["root"]["path"]
        floor = timed([build_floor(work), rootfs, v2, *v1], args.iterations)
        whole = timed([args.rt, "--root", state, "run", "-b", bundle, f"breakdown-{os.getpid()}"],
                      args.iterations)
        plain = timed([os.path.join(rootfs, "bin/true")], args.iterations)
        side = trace_runs({"rt": [args.rt, "--root", state, "run", "-b", bundle, f"breakdown-tr-{os.getpid()}"],
                           "floor": [os.path.join(work, "floor"), rootfs, v2, *v1]}, args.iterations)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows = [(n, statistics.median(phases[n]), WHAT.get(n, "")) for n in order]
    total = statistics.median(totals)
    lines = [
        "# Where `rt run` of /bin/true spends its time",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- host: {platform.node()}, kernel {platform.release()}, {os.cpu_count()} CPUs",
        f"- {args.iterations} runs of `rt --debug run` (medians; from the first mark to the last)",
        "",
        "| phase ends at | median ms | what happens in it |",
        "|---|---:|---|",
    ]
    lines += [f"| {n} | {ms:.2f} | {what} |" for n, ms, what in rows]
    lines += [
        f"| **total** (median of sums) | **{total:.2f}** | |",
        "",
        f"- the kernel's floor for this container (bench/floor.c, cgroups in {1 + len(v1)} hierarchies): "
        f"{floor:.2f} ms, against {whole:.2f} ms for `rt run` timed the same way (without `--debug`): "
        f"rt's own cost is {whole - floor:.2f} ms (the container's `/bin/true` alone: {plain:.2f} ms)",
        "",
    ]
    if side and side["rt"] and side["floor"]:
        def med(name, a, b):
            return statistics.median([(r[b] - r[a]) * 1000 for r in side[name]])
        lines += [
            f"## rt beside the floor, from the kernel's view ({len(side['rt'])} and {len(side['floor'])} runs, "
            "tracepoints, no marks of rt's; medians)",
            "",
            "| until | rt ms | floor ms | rt's own ms | what happens before it |",
            "|---|---:|---:|---:|---|",
        ]
        for (a, _, _), (b, label, what) in zip(STEPS, STEPS[1:]):
            r, f = med("rt", a, b), med("floor", a, b)
            lines.append(f"| {label} | {r:.3f} | {f:.3f} | {r - f:+.3f} | {what} |")
        r, f = med("rt", "start", "end"), med("floor", "start", "end")
        lines += [f"| **whole** (median of the whole) | **{r:.3f}** | **{f:.3f}** | **{r - f:+.3f}** | |", ""]
    elif side is None:
        lines += ["(no tracefs instance or events here: the side-by-side table is left out)", ""]
    else:
        lines += ["(the trace held no complete run of rt or of the floor: the side-by-side table is left out)", ""]
    lines += [
        "Produced by `make bench` (bench/breakdown.py); method described at the top of that script.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
