#!/usr/bin/env python3
"""Benchmark `RUNTIME run` of a busybox container running /bin/true: rt vs runc vs crun.

Python 3 standard library only (works with Debian 12's python3.11). Run as root:

    python3 bench/bench.py [--runtimes rt,runc,crun] [--iterations 50]

A runtime named NAME+systemd is NAME with --systemd-cgroup (its cgroup a transient systemd
unit; each runtime's default slice and unit name): only where systemd is PID 1 (make bench-vm).

Each run is one `RUNTIME --root STATE run -b BUNDLE ID` (create, start, wait, delete).
Iteration i runs every runtime once, in an order rotated by i, after a few warm-up runs.

Two interleaved passes:
  * timing: the driver fork/execs the runtime itself and takes time.perf_counter_ns()
    around fork ... os.wait4(), so nothing else is on the measured path;
  * peak RSS: ru_maxrss from os.wait4() of the runtime process. This needs its own pass:
    a process created by fork() from this Python driver inherits the driver's page tables,
    and execve() folds that old address space's high-water mark into ru_maxrss, so every
    runtime would read as at least the driver's own RSS (~5 MiB). In the RSS pass the
    runtime is instead forked by a tiny static busybox shell which exits at once; the
    driver is a child subreaper, so the runtime is reparented to it and it os.wait4()s the
    runtime's own rusage. ru_maxrss is the max over the runtime process and the children
    it reaped (e.g. `runc init`), in KiB.

crun 1.8 refuses hybrid cgroup hosts (cgroup v1 controllers plus a cgroup2 mount at
/sys/fs/cgroup/unified). When that mount exists, the driver starts one holder process in a
private mount namespace with /sys/fs/cgroup/unified unmounted, and setns()es itself into
that namespace just before spawning crun and back right after (the host's mounts are not
touched, and no extra process is on crun's measured path). rt and runc run in the host's
mount namespace.
"""

import argparse
import copy
import ctypes
import datetime
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLONE_NEWNS = 0x00020000
PR_SET_CHILD_SUBREAPER = 36
UNIFIED = "/sys/fs/cgroup/unified"
BUSYBOX = "/bin/busybox"

_libc = ctypes.CDLL(None, use_errno=True)


def die(msg):
    raise SystemExit(f"bench: error: {msg}")


def setns(fd, nstype):
    if hasattr(os, "setns"):  # Python >= 3.12
        os.setns(fd, nstype)
        return
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def set_subreaper(on):
    if _libc.prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")


def find_binary(name):
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None)
    if not path:
        die(f"{name} not found (make deps installs it)")
    return path


class MountNs:
    """A holder process in a private mount namespace where /sys/fs/cgroup/unified is unmounted."""

    def __init__(self):
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             f"umount {UNIFIED} && echo ready && exec sleep infinity"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        line = self.holder.stdout.readline().strip()
        self.holder.stdout.close()
        if line != b"ready":
            self.close()
            die(f"could not start the mount-namespace holder (umount {UNIFIED} failed?)")
        self.target = os.open(f"/proc/{self.holder.pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        self.home = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        self.cwd = os.getcwd()
        # Verify the switch really hides the cgroup2 mount, and that we can come back.
        self.enter()
        inside = os.path.ismount(UNIFIED)
        self.leave()
        if inside or not os.path.ismount(UNIFIED):
            self.close()
            die("mount-namespace switch for crun does not work as expected")

    def enter(self):
        setns(self.target, CLONE_NEWNS)

    def leave(self):
        setns(self.home, CLONE_NEWNS)
        os.chdir(self.cwd)  # setns(CLONE_NEWNS) resets cwd and root

    def close(self):
        for fd in (getattr(self, "target", None), getattr(self, "home", None)):
            if fd is not None:
                os.close(fd)
        if self.holder.poll() is None:
            self.holder.kill()
        self.holder.wait()


class Runtime:
    def __init__(self, name, binary, workdir, config, ns):
        self.name, self.binary, self.ns = name, binary, ns
        self.flags = ["--systemd-cgroup"] if name.endswith("+systemd") else []
        self.bundle = os.path.join(workdir, name, "bundle")
        self.state = os.path.join(workdir, name, "state")
        os.makedirs(self.bundle)
        os.makedirs(self.state)
        with open(os.path.join(self.bundle, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
        self.times_ns, self.rss_kib = [], []

    def argv(self, cid, bundle=None):
        return [self.binary, *self.flags, "--root", self.state, "run", "-b", bundle or self.bundle, cid]

    def check(self, config, workdir):
        """Run the container once with `echo` to prove the runtime really runs it."""
        marker = f"rt-bench-ok-{os.getpid()}"
        config = copy.deepcopy(config)
        config["process"]["args"] = ["/bin/echo", marker]
        bundle = os.path.join(workdir, self.name, "check")
        os.makedirs(bundle)
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
        argv = self.argv(f"bench-check-{os.getpid()}", bundle)
        if self.ns:
            self.ns.enter()
        try:
            out = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        finally:
            if self.ns:
                self.ns.leave()
        if out.returncode != 0 or out.stdout.strip() != marker:
            die(f"{self.name} does not run the container correctly: {' '.join(argv)}\n"
                f"exit {out.returncode}, expected stdout {marker!r}, got {out.stdout.strip()!r}\n"
                f"--- stderr ---\n{out.stderr.strip() or '(empty)'}")


def bench_config(bundle_dir):
    if not os.path.isfile(os.path.join(bundle_dir, "config.json")):
        die(f"{bundle_dir}/config.json not found")
    with open(os.path.join(bundle_dir, "config.json")) as f:
        config = json.load(f)
    rootfs = os.path.join(bundle_dir, config["root"]["path"])
    if not os.path.exists(os.path.join(rootfs, "bin", "true")):
        die(f"{rootfs}/bin/true missing (run `make rootfs`)")
    config = copy.deepcopy(config)
    # crun 1.8 only accepts ociVersion 1.0.x; nothing in this config needs a later version.
    config["ociVersion"] = "1.0.2"
    config["process"]["args"] = ["/bin/true"]
    config["process"]["terminal"] = False
    config["root"]["path"] = os.path.abspath(rootfs)
    config["mounts"] = [m for m in config.get("mounts", [])
                        if m.get("type") != "cgroup" and m.get("destination") != "/sys/fs/cgroup"]
    config.get("linux", {}).pop("cgroupsPath", None)
    return config


class Runner:
    def __init__(self, workdir):
        self.errpath = os.path.join(workdir, "stderr")
        self.errfd = os.open(self.errpath, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        self.nullfd = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        self.seq = 0

    def next_id(self, rt):
        self.seq += 1
        return f"bench-{os.getpid()}-{rt.name.replace('+', '-')}-{self.seq}"

    def _reset_stderr(self):
        os.ftruncate(self.errfd, 0)
        os.lseek(self.errfd, 0, os.SEEK_SET)

    def _child(self, argv, stdout=None):
        """In a forked child: stdin and stdout /dev/null (or stdout), stderr to the capture file."""
        try:
            os.dup2(self.nullfd, 0)
            os.dup2(self.nullfd if stdout is None else stdout, 1)
            os.dup2(self.errfd, 2)
            os.execv(argv[0], argv)
        finally:
            os._exit(127)

    def _check(self, rt, cid, argv, status):
        code = os.waitstatus_to_exitcode(status)
        if code == 0:
            return
        with open(self.errpath, errors="replace") as f:
            err = f.read().strip()
        # Best effort: do not leave a half-created container behind.
        subprocess.run([rt.binary, *rt.flags, "--root", rt.state, "delete", "-f", cid],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        die(f"{rt.name} run failed (exit {code}): {' '.join(argv)}\n--- stderr ---\n{err or '(empty)'}")

    def timed(self, rt):
        """One run, fork/exec'd by this process: wall time in ns."""
        cid = self.next_id(rt)
        argv = rt.argv(cid)
        self._reset_stderr()
        if rt.ns:
            rt.ns.enter()
        try:
            t0 = time.perf_counter_ns()
            pid = os.fork()
            if pid == 0:
                self._child(argv)
            _, status, _ = os.wait4(pid, 0)
            t1 = time.perf_counter_ns()
        finally:
            if rt.ns:
                rt.ns.leave()
        self._check(rt, cid, argv, status)
        return t1 - t0

    def rss(self, rt):
        """One run forked by a short-lived busybox sh, reaped here as subreaper: ru_maxrss KiB."""
        cid = self.next_id(rt)
        argv = rt.argv(cid)
        launcher = [BUSYBOX, "sh", "-c", '"$@" >/dev/null & echo $!', "sh"] + argv
        self._reset_stderr()
        r, w = os.pipe()
        if rt.ns:
            rt.ns.enter()
        try:
            pid = os.fork()
            if pid == 0:
                self._child(launcher, stdout=w)
        finally:
            if rt.ns:
                rt.ns.leave()
        os.close(w)
        with os.fdopen(r) as f:
            out = f.read().strip()
        _, status, _ = os.wait4(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0 or not out.isdigit():
            die(f"busybox launcher failed for {rt.name} (output {out!r})")
        _, status, usage = os.wait4(int(out), 0)
        self._check(rt, cid, argv, status)
        return usage.ru_maxrss

    def close(self):
        os.close(self.errfd)
        os.close(self.nullfd)


def rotated(runtimes, i):
    k = i % len(runtimes)
    return runtimes[k:] + runtimes[:k]


def p90(values):
    s = sorted(values)
    return s[max(0, math.ceil(0.9 * len(s)) - 1)]


def version(binary):
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
        return (out.stdout.strip().splitlines() or ["?"])[0] if out.returncode == 0 else "?"
    except OSError:
        return "?"


def report(runtimes, args, crun_ns):
    rows = []
    for rt in runtimes:
        ms = [t / 1e6 for t in rt.times_ns]
        rows.append((rt.name, statistics.median(ms), p90(ms), min(ms),
                     statistics.median(rt.rss_kib) / 1024))
    header = ["runtime", "median ms", "p90 ms", "min ms", "median peak RSS MiB"]
    table = [header] + [[n, f"{a:.2f}", f"{b:.2f}", f"{c:.2f}", f"{d:.2f}"] for n, a, b, c, d in rows]
    by_name = {r[0]: r for r in rows}
    ratios = []
    if "rt" in by_name:
        for other in ("runc", "crun"):
            if other in by_name:
                t = by_name["rt"][1] / by_name[other][1]
                m = by_name["rt"][4] / by_name[other][4]
                ratios.append(f"rt/{other}: median time {t:.2f}x, median peak RSS {m:.2f}x")

    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    print()
    for j, r in enumerate(table):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if j == 0:
            print("  ".join("-" * w for w in widths))
    for line in ratios:
        print(line)

    md = [
        "# rt benchmark: `run` of a busybox container running /bin/true",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- host: {platform.node()}, kernel {platform.release()}, {os.cpu_count()} CPUs",
        f"- cgroups: {'hybrid (crun run in a mount namespace without ' + UNIFIED + ')' if crun_ns else 'as found'}",
        f"- iterations: {args.iterations} timed + {args.rss_iterations} RSS per runtime "
        f"(interleaved, rotating order), {args.warmup} warm-up runs each",
        "- versions: " + "; ".join(f"{rt.name}: {version(rt.binary)}" for rt in runtimes),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
    ]
    md += ["| " + " | ".join(r) + " |" for r in table[1:]]
    if ratios:
        md += [""] + [f"- {line}" for line in ratios]
    md += ["", "Produced by `make bench` (bench/bench.py); method described at the top of that script.", ""]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(md))
    print(f"\nwrote {os.path.relpath(args.out)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runtimes", default="rt,runc,crun",
                    help="comma-separated subset of rt,runc,crun, each optionally with +systemd")
    ap.add_argument("--iterations", type=int, default=50, help="timed runs per runtime (default 50)")
    ap.add_argument("--rss-iterations", type=int, default=10, help="RSS runs per runtime (default 10)")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up runs per runtime (default 3)")
    ap.add_argument("--rt", default=os.path.join(REPO, "target/x86_64-unknown-linux-gnu/release/rt"), help="rt binary")
    ap.add_argument("--bundle", default=os.path.join(REPO, "bundles/busybox"), help="source bundle")
    ap.add_argument("--out", default=os.path.join(REPO, "bench-results/latest.md"), help="markdown output")
    args = ap.parse_args()
    args.out = os.path.abspath(args.out)

    names = [n.strip() for n in args.runtimes.split(",") if n.strip()]
    base = lambda n: n.removesuffix("+systemd")
    if not names or any(base(n) not in ("rt", "runc", "crun") for n in names) or len(set(names)) != len(names):
        die(f"--runtimes must be a comma-separated subset of rt,runc,crun (each may end in +systemd), "
            f"got {args.runtimes!r}")
    if any(n.endswith("+systemd") for n in names) and not os.path.isdir("/run/systemd/system"):
        die("+systemd runtimes need systemd as PID 1 (make bench-vm)")
    if args.iterations < 1 or args.rss_iterations < 1 or args.warmup < 0:
        die("--iterations and --rss-iterations must be >= 1, --warmup >= 0")
    if os.geteuid() != 0:
        die("must run as root")
    if not os.access(BUSYBOX, os.X_OK):
        die(f"{BUSYBOX} not found (apt-get install busybox-static)")
    binaries = {}
    for n in names:
        if base(n) == "rt":
            if not os.access(args.rt, os.X_OK):
                die(f"{args.rt} not found: build it first (make build)")
            binaries[n] = os.path.abspath(args.rt)
        else:
            binaries[n] = find_binary(base(n))
    config = bench_config(os.path.abspath(args.bundle))

    workdir = tempfile.mkdtemp(prefix="rt-bench-")
    crun_ns = runner = None
    try:
        if any(base(n) == "crun" for n in names) and os.path.ismount(UNIFIED):
            crun_ns = MountNs()
            print(f"hybrid cgroups: crun runs in mount namespace of holder pid {crun_ns.holder.pid} "
                  f"(no {UNIFIED})")
        runtimes = [Runtime(n, binaries[n], workdir, config, crun_ns if base(n) == "crun" else None)
                    for n in names]
        runner = Runner(workdir)

        for rt in runtimes:
            rt.check(config, workdir)
        print(f"checked: {', '.join(names)} run the container (echo through the runtime)")

        print(f"warm-up: {args.warmup} run(s) per runtime")
        for i in range(args.warmup):
            for rt in rotated(runtimes, i):
                runner.timed(rt)

        print(f"timing: {args.iterations} iterations x {len(runtimes)} runtimes ({', '.join(names)})")
        for i in range(args.iterations):
            for rt in rotated(runtimes, i):
                rt.times_ns.append(runner.timed(rt))

        print(f"peak RSS: {args.rss_iterations} iterations x {len(runtimes)} runtimes")
        set_subreaper(True)
        try:
            for i in range(args.rss_iterations):
                for rt in rotated(runtimes, i):
                    rt.rss_kib.append(runner.rss(rt))
        finally:
            set_subreaper(False)

        report(runtimes, args, crun_ns)
    finally:
        if runner:
            runner.close()
        if crun_ns:
            crun_ns.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
