#!/usr/bin/env python3
"""Benchmark busybox containers driven through a runtime's command line: rt vs runc vs crun.

Python 3 standard library only (works with Debian 12's python3.11). Run as root:

    python3 bench/bench.py [--runtimes rt,runc,crun] [--scenarios run,lifecycle,exec,parallel,cycles]
                           [--iterations 50] [--rss-iterations 10] [--parallel-iterations 3] [--cycles 1000]

A runtime named NAME+systemd is NAME with --systemd-cgroup (its cgroup a transient systemd
unit; each runtime's default slice and unit name): only where systemd is PID 1 (make bench-vm).

Every scenario interleaves the runtimes: iteration i runs every runtime once, in an order
rotated by i, after a few warm-up rounds (run, lifecycle, exec, cycles). Each runtime has its
own state directory and bundles (/bin/true, or `sleep 1000000` for the long-running scenarios).
The scenarios (--scenarios, default all; each has its own table):

  * run: one `RUNTIME --root STATE run -b BUNDLE ID` of /bin/true (create, start, wait,
    delete in one call); --iterations timed and --rss-iterations peak-RSS runs (see below).
  * lifecycle: the separate calls containerd's shim and conmon make for a /bin/true container:
    `create --pid-file`, `start`, wait for the init to exit, `state` until it says "stopped"
    (1 ms sleeps between calls, in practice one call), `delete`; the time is the whole
    sequence, wait included, and each call is also timed on its own.
  * exec: one `sleep` container per runtime, created and started before the loop; each
    iteration times `RUNTIME exec ID /bin/true` (exit 0 required), plus a peak-RSS pass of
    exec like run's.
  * parallel: 100 `sleep` containers, each `create` then `start`, from N concurrent chains
    (N=8 and N=100: at most N runtime processes at once), then `delete -f` of all of them N at
    a time; wall time of each phase; --parallel-iterations rounds, every failure fatal.
  * cycles: --cycles lifecycle cycles per runtime (interleaved); median time per cycle of the
    first and of the last 100 cycles, and their ratio, which should stay near 1; afterwards
    the runtime's state directory must be empty and this driver's open fds must not grow.

For every scenario but run, the driver is a child subreaper, as containerd's shim and conmon
are: the containers' init processes are reparented to it when the runtime call that created
them exits, and it reaps them as soon as they exit (this host's PID 1 reaps orphans only
every few seconds, which would stall a runtime that waits for its container to be gone). In
lifecycle and cycles it waits for the init with a pidfd (opened on the --pid-file pid before
start), so the wait costs no runtime call.

Timing and peak RSS are two separate passes:
  * timing: the driver starts the runtime itself with posix_spawn (a vfork-style clone, as
    Go's os/exec starts runc for containerd's shim; a fork of this Python process would add
    its page-table copy, ~0.8 ms here, to every call) and takes time.perf_counter_ns()
    around posix_spawn ... os.wait4(), so nothing else is on the measured path. The
    report's "spawn floor" line is the same path with a static program that only exits;
  * peak RSS: ru_maxrss from os.wait4() of the runtime process. This needs its own pass:
    a process started from this Python driver (fork or vfork) starts in the driver's
    address space, and execve() folds that address space's high-water mark into ru_maxrss, so every
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
import collections
import contextlib
import copy
import ctypes
import datetime
import json
import math
import os
import platform
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_rt():
    """The release rt `make build` made: for musl, or for glibc where rustup had no musl target."""
    paths = [os.path.join(REPO, f"target/x86_64-unknown-linux-{env}/release/rt") for env in ("musl", "gnu")]
    return next((p for p in paths if os.access(p, os.X_OK)), paths[0])


CLONE_NEWNS = 0x00020000
PR_SET_CHILD_SUBREAPER = 36
UNIFIED = "/sys/fs/cgroup/unified"
BUSYBOX = "/bin/busybox"
SCENARIOS = ("run", "lifecycle", "exec", "parallel", "cycles")
SLEEP_ARGS = ["/bin/sleep", "1000000"]
PARALLEL_CONTAINERS = 100
PARALLEL_WIDTHS = (8, 100)
CYCLES_WINDOW = 100  # cycles: compare the first and the last this many
EXIT_TIMEOUT_S = 30  # lifecycle: longest wait for /bin/true's init to exit
STOPPED_TIMEOUT_S = 10  # lifecycle: longest time `state` may take to say "stopped"

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


def open_fds():
    return len(os.listdir("/proc/self/fd"))


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


def write_bundle(path, config):
    os.makedirs(path)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


class Runtime:
    def __init__(self, name, binary, workdir, config, ns):
        self.name, self.binary, self.ns = name, binary, ns
        self.flags = ["--systemd-cgroup"] if name.endswith("+systemd") else []
        self.bundle = os.path.join(workdir, name, "bundle")
        self.sleep_bundle = os.path.join(workdir, name, "bundle-sleep")
        self.state = os.path.join(workdir, name, "state")
        write_bundle(self.bundle, config)
        sleep_config = copy.deepcopy(config)
        sleep_config["process"]["args"] = SLEEP_ARGS
        write_bundle(self.sleep_bundle, sleep_config)
        os.makedirs(self.state)
        self.times_ns, self.rss_kib = [], []
        # lifecycle: per call ns lists ("total", "create", "start", "wait", "state", "delete")
        # and the number of state calls per cycle ("polls").
        self.lifecycle = collections.defaultdict(list)
        self.lifecycle_rss_kib = collections.defaultdict(list)  # per call: "create", "start", ...
        self.exec_ns, self.exec_rss_kib = [], []
        self.parallel = collections.defaultdict(list)  # (N, "up" | "down" | "total") -> [ns]
        self.cycles_ns, self.cycles_leftover = [], None

    def argv(self, cid, bundle=None):
        return [self.binary, *self.flags, "--root", self.state, "run", "-b", bundle or self.bundle, cid]

    def cmd(self, *args):
        return [self.binary, *self.flags, "--root", self.state, *args]

    @contextlib.contextmanager
    def mntns(self):
        """The mount namespace this runtime's processes are forked in (crun's holder's, or ours)."""
        if self.ns:
            self.ns.enter()
        try:
            yield
        finally:
            if self.ns:
                self.ns.leave()

    def containers(self):
        return sorted(os.listdir(self.state)) if os.path.isdir(self.state) else []

    def check(self, config, workdir):
        """Run the container once with `echo` to prove the runtime really runs it."""
        marker = f"rt-bench-ok-{os.getpid()}"
        config = copy.deepcopy(config)
        config["process"]["args"] = ["/bin/echo", marker]
        bundle = os.path.join(workdir, self.name, "check")
        write_bundle(bundle, config)
        argv = self.argv(f"bench-check-{os.getpid()}", bundle)
        with self.mntns():
            out = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
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
    for prog in ("true", SLEEP_ARGS[0].rsplit("/", 1)[1]):
        if not os.path.exists(os.path.join(rootfs, "bin", prog)):
            die(f"{rootfs}/bin/{prog} missing (run `make rootfs`)")
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


def seccomp_from_docker_profile(path):
    """linux.seccomp from a Docker/Podman seccomp.json (what those tools give every container
    by default: /usr/share/containers/seccomp.json with Podman), for this machine's arch: the
    rules for amd64 and no capability, as the tools keep for a container without added
    capabilities."""
    with open(path) as f:
        p = json.load(f)
    out = {"defaultAction": p["defaultAction"],
           "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], "syscalls": []}
    if "defaultErrnoRet" in p:
        out["defaultErrnoRet"] = p["defaultErrnoRet"]
    for r in p.get("syscalls", []):
        inc, exc = r.get("includes", {}), r.get("excludes", {})
        if inc.get("caps") or (inc.get("arches") and "amd64" not in inc["arches"]) \
                or "amd64" in exc.get("arches", []):
            continue
        rule = {"names": r["names"], "action": r["action"]}
        for k in ("args", "errnoRet"):
            if r.get(k):
                rule[k] = r[k]
        out["syscalls"].append(rule)
    return out


class Runner:
    def __init__(self, workdir, protected=()):
        self.workdir = workdir
        self.errpath = os.path.join(workdir, "stderr")
        self.errfd = os.open(self.errpath, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        self.nullfd = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        self.pidfile = os.path.join(workdir, "pid")
        self.protected = set(protected)  # children that are not ours to reap (crun's ns holder)
        self.inflight = set()  # runtime processes forked and not yet reaped
        self.seq = 0

    def next_id(self, rt):
        self.seq += 1
        return f"bench-{os.getpid()}-{rt.name.replace('+', '-')}-{self.seq}"

    def _reset_stderr(self):
        os.ftruncate(self.errfd, 0)
        os.lseek(self.errfd, 0, os.SEEK_SET)

    def _spawn(self, argv, stdout=None, stderr=None, fd3=None):
        """Start argv with stdin and stdout /dev/null (or stdout), stderr to the capture file (or
        stderr): its pid. posix_spawn (a vfork-style clone, as Go's os/exec does for containerd's
        shim) rather than fork: forking this Python process copies its page tables and then
        takes copy-on-write faults, about 0.8 ms per call on the build machine, the same for
        every runtime, which would be timed as part of each call."""
        actions = [
            (os.POSIX_SPAWN_DUP2, self.nullfd, 0),
            (os.POSIX_SPAWN_DUP2, self.nullfd if stdout is None else stdout, 1),
            (os.POSIX_SPAWN_DUP2, self.errfd if stderr is None else stderr, 2),
        ] + ([] if fd3 is None else [(os.POSIX_SPAWN_DUP2, fd3, 3)])
        return os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)

    def spawn_floor(self, n=200):
        """Median ns of the timing path (posix_spawn ... wait4) with the cheapest possible
        program: a 129-byte static ELF whose only instructions are exit(0). What every timed
        call above includes before the runtime does anything."""
        base = 0x400000
        code = bytes.fromhex("31ff" "b83c000000" "0f05")  # xor edi,edi; mov eax,60 (exit); syscall
        size = 64 + 56 + len(code)
        ehdr = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + bytes(9), 2, 0x3E, 1,
                           base + 64 + 56, 64, 0, 0, 64, 56, 1, 0, 0, 0)
        phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)
        path = os.path.join(self.workdir, "exit0")
        with open(path, "wb") as f:
            f.write(ehdr + phdr + code)
        os.chmod(path, 0o755)
        times = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            pid = self._spawn([path])
            _, status, _ = os.wait4(pid, 0)
            times.append(time.perf_counter_ns() - t0)
            if os.waitstatus_to_exitcode(status) != 0:
                die(f"the spawn-floor program exited with status {status}")
        return statistics.median(times)

    def _check(self, rt, cid, argv, status, what="run"):
        code = os.waitstatus_to_exitcode(status)
        if code == 0:
            return
        with open(self.errpath, errors="replace") as f:
            err = f.read().strip()
        # Best effort: do not leave a half-created container behind.
        self.batch(rt, [(cid, [("delete", "-f", cid)])], 1, strict=False)
        die(f"{rt.name} {what} failed (exit {code}): {' '.join(argv)}\n--- stderr ---\n{err or '(empty)'}")

    def call(self, rt, cid, *args, capture=False):
        """One `RUNTIME --root STATE ARGS...`, fork/exec'd by this process, exit 0 required:
        (wall time in ns, its stdout as bytes if capture)."""
        argv = rt.cmd(*args)
        out = None
        self._reset_stderr()
        r, w = os.pipe() if capture else (None, None)
        with rt.mntns():
            t0 = time.perf_counter_ns()
            pid = self._spawn(argv, stdout=w)
            self.inflight.add(pid)
            if capture:
                os.close(w)
                with os.fdopen(r, "rb") as f:
                    out = f.read()
            _, status, _ = os.wait4(pid, 0)
            t1 = time.perf_counter_ns()
        self.inflight.discard(pid)
        self._check(rt, cid, argv, status, args[0])
        return t1 - t0, out

    def timed(self, rt):
        """One run, fork/exec'd by this process: wall time in ns."""
        cid = self.next_id(rt)
        return self.call(rt, cid, "run", "-b", rt.bundle, cid)[0]

    def rss(self, rt, cid=None, args=None):
        """One run (or ARGS on container cid) forked by a short-lived busybox sh, reaped here as
        subreaper: ru_maxrss KiB."""
        if args is None:
            cid = self.next_id(rt)
            argv, what = rt.argv(cid), "run"
        else:
            argv, what = rt.cmd(*args), args[0]
        # The runtime waits on fd 3 until the shell has exited: a call faster than the shell's
        # exit (`state`) would otherwise be reaped by the shell, not by this subreaper.
        launcher = [BUSYBOX, "sh", "-c", '{ read -r _ <&3; exec "$@" 3<&-; } >/dev/null & echo $!', "sh"] + argv
        self._reset_stderr()
        r, w = os.pipe()
        gate_r, gate_w = os.pipe()
        with rt.mntns():
            pid = self._spawn(launcher, stdout=w, fd3=gate_r)
        os.close(w)
        os.close(gate_r)
        with os.fdopen(r) as f:
            out = f.read().strip()
        _, status, _ = os.wait4(pid, 0)
        os.close(gate_w)
        if os.waitstatus_to_exitcode(status) != 0 or not out.isdigit():
            die(f"busybox launcher failed for {rt.name} (output {out!r})")
        _, status, usage = os.wait4(int(out), 0)
        self._check(rt, cid, argv, status, what)
        return usage.ru_maxrss

    def reap_orphans(self, strict=True):
        """Reap every child that has exited (as subreaper: the containers' inits), without waiting."""
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            os.waitpid(info.si_pid, 0)
            if info.si_pid in self.protected and strict:
                die(f"process {info.si_pid} (the mount-namespace holder) exited")

    def lifecycle(self, rt, bundle=None):
        """create, start, wait for the init to exit, state until "stopped", delete: ns per step."""
        cid = self.next_id(rt)
        t0 = time.perf_counter_ns()
        create, _ = self.call(rt, cid, "create", "--pid-file", self.pidfile, "-b", bundle or rt.bundle, cid)
        with open(self.pidfile) as f:
            pid = int(f.read().strip())
        os.unlink(self.pidfile)
        pidfd = os.pidfd_open(pid)
        try:
            start, _ = self.call(rt, cid, "start", cid)
            t_started = time.perf_counter_ns()
            if not select.select([pidfd], [], [], EXIT_TIMEOUT_S)[0]:
                die(f"{rt.name}: the init ({pid}) of container {cid} did not exit within {EXIT_TIMEOUT_S} s")
        finally:
            os.close(pidfd)
        self.reap_orphans()
        polls, states = 0, []
        while True:
            ns, out = self.call(rt, cid, "state", cid, capture=True)
            polls += 1
            states.append(ns)
            try:
                status = json.loads(out)["status"]
            except (ValueError, KeyError, TypeError):
                die(f"{rt.name} state {cid}: not a state document: {out[:200]!r}")
            if status == "stopped":
                break
            if time.perf_counter_ns() - t_started > STOPPED_TIMEOUT_S * 10**9:
                die(f"{rt.name} state {cid}: still {status!r} {STOPPED_TIMEOUT_S} s after its init exited")
            time.sleep(0.001)
        t_stopped = time.perf_counter_ns()
        delete, _ = self.call(rt, cid, "delete", cid)
        t1 = time.perf_counter_ns()
        return {"total": t1 - t0, "create": create, "start": start, "wait": t_stopped - t_started,
                "state": statistics.median(states), "delete": delete, "polls": polls}

    def lifecycle_rss(self, rt):
        """create, start, wait, state, delete, each call forked as rss() does: KiB per call."""
        cid = self.next_id(rt)
        out = {"create": self.rss(rt, cid, ("create", "--pid-file", self.pidfile, "-b", rt.bundle, cid))}
        with open(self.pidfile) as f:
            pid = int(f.read().strip())
        os.unlink(self.pidfile)
        pidfd = os.pidfd_open(pid)
        try:
            out["start"] = self.rss(rt, cid, ("start", cid))
            if not select.select([pidfd], [], [], EXIT_TIMEOUT_S)[0]:
                die(f"{rt.name}: the init ({pid}) of container {cid} did not exit within {EXIT_TIMEOUT_S} s")
        finally:
            os.close(pidfd)
        self.reap_orphans()
        out["state"] = self.rss(rt, cid, ("state", cid))
        out["delete"] = self.rss(rt, cid, ("delete", "-f", cid))
        return out

    def batch(self, rt, jobs, n, strict=True):
        """Run jobs [(cid, [args, ...]), ...], each job's runtime calls one after the other, with at
        most n runtime processes at a time (one fork per call, stderr to a file per job). Every
        other child that exits meanwhile is reaped (as subreaper: the containers' inits). Returns
        (wall time in ns, failure messages); strict: any failure is fatal, once the calls in flight
        have ended (no new call is started after a failure)."""
        jobs = collections.deque(jobs)
        running, failures = {}, []

        def launch(cid, calls, k, errfd):
            argv = rt.cmd(*calls[k])
            with rt.mntns():
                pid = self._spawn(argv, stderr=errfd)
            running[pid] = (cid, calls, k, errfd, argv)
            self.inflight.add(pid)

        t0 = time.perf_counter_ns()
        while running or (jobs and not failures):
            while jobs and not failures and len(running) < n:
                cid, calls = jobs.popleft()
                errfd = os.open(os.path.join(self.workdir, f"stderr-{cid}"),
                                os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
                launch(cid, calls, 0, errfd)
            pid, status, _ = os.wait4(-1, 0)
            self.inflight.discard(pid)
            job = running.pop(pid, None)
            if job is None:  # an orphan reparented to this subreaper
                if pid in self.protected and strict:
                    die(f"process {pid} (the mount-namespace holder) exited")
                continue
            cid, calls, k, errfd, argv = job
            code = os.waitstatus_to_exitcode(status)
            if code == 0 and k + 1 < len(calls) and not failures:
                launch(cid, calls, k + 1, errfd)
                continue
            if code != 0:
                os.lseek(errfd, 0, os.SEEK_SET)
                err = os.read(errfd, 4096).decode(errors="replace").strip()
                failures.append(f"{rt.name} {calls[k][0]} failed (exit {code}): {' '.join(argv)}\n"
                                f"--- stderr ---\n{err or '(empty)'}")
            os.close(errfd)
            os.unlink(os.path.join(self.workdir, f"stderr-{cid}"))
        t1 = time.perf_counter_ns()
        if failures and strict:
            more = f"\n({len(failures) - 1} more failures)" if len(failures) > 1 else ""
            die(failures[0] + more)
        return t1 - t0, failures

    def drain(self):
        """After an interruption: wait for the runtime calls still running, so that none of them
        creates a container after the cleanup looked."""
        for pid in list(self.inflight):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.inflight.clear()

    def cleanup(self, rt):
        """delete -f every container left in rt's state directory: the ids that could not be deleted."""
        ids = rt.containers()
        if ids:
            self.batch(rt, [(cid, [("delete", "-f", cid)]) for cid in ids], 8, strict=False)
        return rt.containers()

    def close(self):
        os.close(self.errfd)
        os.close(self.nullfd)


@contextlib.contextmanager
def subreaper(runner):
    set_subreaper(True)
    try:
        yield
    finally:
        set_subreaper(False)
        runner.reap_orphans(strict=False)


def rotated(runtimes, i):
    k = i % len(runtimes)
    return runtimes[k:] + runtimes[:k]


def p90(values):
    s = sorted(values)
    return s[max(0, math.ceil(0.9 * len(s)) - 1)]


def ms(ns):
    return ns / 1e6


def version(binary):
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
        return (out.stdout.strip().splitlines() or ["?"])[0] if out.returncode == 0 else "?"
    except OSError:
        return "?"


# ---- scenarios (each leaves its results on the Runtime objects) ----

def scenario_run(runtimes, runner, args):
    print(f"warm-up: {args.warmup} run(s) per runtime")
    for i in range(args.warmup):
        for rt in rotated(runtimes, i):
            runner.timed(rt)

    print(f"timing: {args.iterations} iterations x {len(runtimes)} runtimes")
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


def scenario_lifecycle(runtimes, runner, args):
    print(f"lifecycle: {args.warmup} warm-up + {args.iterations} timed create/start/state/delete "
          f"x {len(runtimes)} runtimes")
    for i in range(args.warmup):
        for rt in rotated(runtimes, i):
            runner.lifecycle(rt)
    for i in range(args.iterations):
        for rt in rotated(runtimes, i):
            for k, v in runner.lifecycle(rt).items():
                rt.lifecycle[k].append(v)
    for i in range(args.rss_iterations):
        for rt in rotated(runtimes, i):
            for k, v in runner.lifecycle_rss(rt).items():
                rt.lifecycle_rss_kib[k].append(v)


def scenario_exec(runtimes, runner, args):
    print(f"exec: {args.warmup} warm-up + {args.iterations} timed + {args.rss_iterations} RSS "
          f"exec of /bin/true x {len(runtimes)} runtimes")
    cids = {}
    for rt in runtimes:
        cid = cids[rt.name] = runner.next_id(rt) + "-exec"
        runner.call(rt, cid, "create", "-b", rt.sleep_bundle, cid)
        runner.call(rt, cid, "start", cid)
    for i in range(args.warmup):
        for rt in rotated(runtimes, i):
            runner.call(rt, cids[rt.name], "exec", cids[rt.name], "/bin/true")
    for i in range(args.iterations):
        for rt in rotated(runtimes, i):
            rt.exec_ns.append(runner.call(rt, cids[rt.name], "exec", cids[rt.name], "/bin/true")[0])
    for i in range(args.rss_iterations):
        for rt in rotated(runtimes, i):
            cid = cids[rt.name]
            rt.exec_rss_kib.append(runner.rss(rt, cid, ("exec", cid, "/bin/true")))
    for rt in runtimes:
        runner.batch(rt, [(cids[rt.name], [("delete", "-f", cids[rt.name])])], 1)


def scenario_parallel(runtimes, runner, args):
    print(f"parallel: {args.parallel_iterations} iteration(s) x {len(runtimes)} runtimes x "
          f"N={','.join(map(str, PARALLEL_WIDTHS))}, {PARALLEL_CONTAINERS} containers each")
    for i in range(args.parallel_iterations):
        for rt in rotated(runtimes, i):
            for n in PARALLEL_WIDTHS:
                ids = [runner.next_id(rt) for _ in range(PARALLEL_CONTAINERS)]
                up, _ = runner.batch(rt, [(cid, [("create", "-b", rt.sleep_bundle, cid), ("start", cid)])
                                          for cid in ids], n)
                if sorted(rt.containers()) != sorted(ids):
                    die(f"{rt.name}: {len(rt.containers())} containers in the state directory after "
                        f"creating {len(ids)}")
                down, _ = runner.batch(rt, [(cid, [("delete", "-f", cid)]) for cid in ids], n)
                if rt.containers():
                    die(f"{rt.name}: left {len(rt.containers())} containers after delete -f of all: "
                        f"{', '.join(rt.containers()[:5])}")
                rt.parallel[n, "up"].append(up)
                rt.parallel[n, "down"].append(down)
                rt.parallel[n, "total"].append(up + down)


def scenario_cycles(runtimes, runner, args):
    print(f"cycles: {args.cycles} create/start/state/delete cycles x {len(runtimes)} runtimes "
          f"(interleaved), after {args.warmup} warm-up")
    for i in range(args.warmup):
        for rt in rotated(runtimes, i):
            runner.lifecycle(rt)
    args.fds_before = open_fds()
    step = max(1, args.cycles // 4)
    for i in range(args.cycles):
        for rt in rotated(runtimes, i):
            rt.cycles_ns.append(runner.lifecycle(rt)["total"])
        if (i + 1) % step == 0 and i + 1 < args.cycles:
            print(f"  {i + 1}/{args.cycles}")
    args.fds_after = open_fds()
    for rt in runtimes:
        rt.cycles_leftover = len(rt.containers())


SCENARIO_FUNCS = {"run": scenario_run, "lifecycle": scenario_lifecycle, "exec": scenario_exec,
                  "parallel": scenario_parallel, "cycles": scenario_cycles}


# ---- report ----

def ratio_lines(by_name, metrics):
    """rt vs runc and crun (and rt+systemd vs runc+systemd, crun+systemd): 'label Ax' per metric."""
    lines = []
    for sfx in ("", "+systemd"):
        a = by_name.get("rt" + sfx)
        if not a:
            continue
        for other in ("runc", "crun"):
            b = by_name.get(other + sfx)
            if b:
                lines.append(f"rt{sfx}/{other}{sfx}: " +
                             ", ".join(f"{label} {a[k] / b[k]:.2f}x" for label, k in metrics))
    return lines


def section(title, method, header, rows, notes):
    """Print one table to the console; its markdown lines."""
    table = [header] + rows
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    print(f"\n== {title}")
    for j, r in enumerate(table):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if j == 0:
            print("  ".join("-" * w for w in widths))
    for line in notes:
        print(line)
    md = [f"## {title}", "", method, "",
          "| " + " | ".join(header) + " |",
          "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    if notes:
        md += [""] + [f"- {line}" for line in notes]
    return md + [""]


def report_timed(runtimes, title, text, times, rss):
    """A table of one timed call per iteration with its peak RSS; times(rt) and rss(rt) give
    the samples (ns, KiB)."""
    by_name, rows = {}, []
    for rt in runtimes:
        t = [ms(x) for x in times(rt)]
        by_name[rt.name] = {"time": statistics.median(t), "rss": statistics.median(rss(rt)) / 1024}
        rows.append([rt.name, f"{statistics.median(t):.2f}", f"{p90(t):.2f}", f"{min(t):.2f}",
                     f"{by_name[rt.name]['rss']:.2f}"])
    return section(title, text, ["runtime", "median ms", "p90 ms", "min ms", "median peak RSS MiB"], rows,
                   ratio_lines(by_name, [("median time", "time"), ("median peak RSS", "rss")]))


def report_run(runtimes, args):
    return report_timed(
        runtimes, "run: `RUNTIME run` of /bin/true",
        f"One `RUNTIME --root STATE run -b BUNDLE ID` (create, start, wait, delete in one call); "
        f"{args.iterations} timed + {args.rss_iterations} RSS runs per runtime (interleaved, rotating order), "
        f"{args.warmup} warm-up runs each.",
        lambda rt: rt.times_ns, lambda rt: rt.rss_kib)


def report_lifecycle(runtimes, args):
    by_name, rows, notes = {}, [], []
    for rt in runtimes:
        lc = {k: [ms(x) for x in v] for k, v in rt.lifecycle.items() if k != "polls"}
        med = {k: statistics.median(v) for k, v in lc.items()}
        by_name[rt.name] = med
        rows.append([rt.name, f"{med['total']:.2f}", f"{p90(lc['total']):.2f}", f"{min(lc['total']):.2f}"] +
                    [f"{med[k]:.2f}" for k in ("create", "start", "wait", "state", "delete")])
        polls = rt.lifecycle["polls"]
        if max(polls) > 1:
            notes.append(f"{rt.name}: `state` said \"stopped\" only after {max(polls)} calls in some cycles "
                         f"(mean {statistics.mean(polls):.2f} per cycle)")
    notes = ratio_lines(by_name, [("median total", "total"), ("create", "create"), ("start", "start"),
                                  ("delete", "delete")]) + notes
    calls = ("create", "start", "state", "delete")
    rss_rows = [[rt.name] + [f"{statistics.median(rt.lifecycle_rss_kib[k]) / 1024:.2f}" for k in calls] +
                [f"{max(max(rt.lifecycle_rss_kib[k]) for k in calls) / 1024:.2f}"] for rt in runtimes]
    return section(
        "lifecycle: create, start, state, delete of /bin/true",
        f"Separate calls per container: `create --pid-file`, `start`, wait for the init to exit (pidfd; "
        f"reaped by the driver as subreaper), `state` until \"stopped\", `delete`. The total is the whole "
        f"sequence, wait included; wait = from start's return to state saying \"stopped\" (incl. the state "
        f"call); the per-call columns are medians of each call alone. {args.iterations} iterations per runtime "
        f"(interleaved, rotating order), {args.warmup} warm-up each.",
        ["runtime", "median ms", "p90 ms", "min ms", "create ms", "start ms", "wait ms", "state ms",
         "delete ms"], rows, notes) + section(
        "lifecycle: peak RSS per call",
        f"The same calls ({args.rss_iterations} sequences per runtime, `delete -f`), each forked as in run's "
        f"RSS pass: median peak RSS of each call, and the largest of all of them.",
        ["runtime"] + [f"{k} MiB" for k in calls] + ["max MiB"], rss_rows, [])


def report_exec(runtimes, args):
    return report_timed(
        runtimes, "exec: `RUNTIME exec ID /bin/true` in a running container",
        f"One `{' '.join(SLEEP_ARGS)}` container per runtime, created and started before the loop; "
        f"{args.iterations} timed + {args.rss_iterations} RSS execs per runtime (interleaved, rotating order), "
        f"{args.warmup} warm-up each; exit 0 required.",
        lambda rt: rt.exec_ns, lambda rt: rt.exec_rss_kib)


def report_parallel(runtimes, args):
    rows, notes = [], []
    for n in PARALLEL_WIDTHS:
        by_name = {}
        for rt in runtimes:
            med = {k: ms(statistics.median(rt.parallel[n, k])) for k in ("up", "down", "total")}
            by_name[rt.name] = med
            rows.append([rt.name, str(n), f"{med['up']:.0f}", f"{med['down']:.0f}", f"{med['total']:.0f}",
                         f"{ms(min(rt.parallel[n, 'total'])):.0f}", f"{med['total'] / PARALLEL_CONTAINERS:.2f}"])
        notes += [f"N={n}: {line}" for line in ratio_lines(
            by_name, [("create+start", "up"), ("delete", "down"), ("total", "total")])]
    return section(
        f"parallel: {PARALLEL_CONTAINERS} containers, N at a time",
        f"{PARALLEL_CONTAINERS} `{' '.join(SLEEP_ARGS)}` containers: `create` then `start` each, at most N "
        f"runtime processes at once; then `delete -f` of all, N at a time. Wall time of each phase, "
        f"medians over {args.parallel_iterations} iteration(s) (runtimes interleaved, rotating order).",
        ["runtime", "N", "create+start ms", "delete ms", "total ms", "min total ms", "total ms per container"],
        rows, notes)


def cycles_problems(runtimes, args):
    """What the cycles scenario must not show: leftover state, a growing fd count in the driver."""
    problems = [f"{rt.name} left {rt.cycles_leftover} entries in its state directory after the cycles"
                for rt in runtimes if rt.cycles_leftover]
    if args.fds_after > args.fds_before:
        problems.append(f"the driver's open fds grew from {args.fds_before} to {args.fds_after} over the cycles")
    return problems


def report_cycles(runtimes, args):
    k = max(1, min(CYCLES_WINDOW, args.cycles // 2))
    by_name, rows = {}, []
    for rt in runtimes:
        t = [ms(x) for x in rt.cycles_ns]
        first, last = statistics.median(t[:k]), statistics.median(t[-k:])
        by_name[rt.name] = {"all": statistics.median(t)}
        rows.append([rt.name, str(len(t)), f"{statistics.median(t):.2f}", f"{first:.2f}", f"{last:.2f}",
                     f"{last / first:.2f}", str(rt.cycles_leftover)])
    notes = [f"driver's open fds: {args.fds_before} before, {args.fds_after} after"]
    notes += ratio_lines(by_name, [("median cycle", "all")])
    notes += [f"PROBLEM: {p}" for p in cycles_problems(runtimes, args)]
    return section(
        f"cycles: {args.cycles} create/start/state/delete cycles",
        f"The lifecycle sequence, {args.cycles} times per runtime (interleaved, rotating order, after "
        f"{args.warmup} warm-up); median time per cycle over all, the first {k} and the last {k} cycles; "
        f"state-dir entries left afterwards (must be 0).",
        ["runtime", "cycles", "median ms", f"first {k} ms", f"last {k} ms", "last/first", "state-dir entries"],
        rows, notes)


REPORTS = {"run": report_run, "lifecycle": report_lifecycle, "exec": report_exec,
           "parallel": report_parallel, "cycles": report_cycles}


def aslr():
    """As the kernel has it. Off matters under an emulator (the VM's TCG): code it translated
    for one process is reused by the next only at the same addresses, so with randomization on
    every call pays for translating all the code it runs again, and that dominates its time."""
    try:
        with open("/proc/sys/kernel/randomize_va_space") as f:
            v = f.read().strip()
    except OSError:
        return "unknown"
    return "off (randomize_va_space=0)" if v == "0" else f"on (randomize_va_space={v})"


def probes():
    """Dynamic probes left registered (a debugging session's `perf probe`, say). With one uprobe
    left behind here (on another copy of rt), rt's start took twice as long until it was
    removed: numbers taken so are not comparable with others."""
    found, read = [], False
    for name in ("uprobe_events", "kprobe_events", "dynamic_events"):
        try:
            with open(os.path.join("/sys/kernel/tracing", name)) as f:
                found += [line.split()[0] for line in f if line.strip()]
            read = True
        except OSError:
            pass
    if not read:
        return "unknown (no tracefs at /sys/kernel/tracing)"
    return "none registered" if not found else "REGISTERED, the times below are not comparable: " + ", ".join(sorted(set(found)))


def report(runtimes, args, crun_ns):
    md = [
        "# rt benchmark: busybox containers, rt vs runc vs crun",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- host: {platform.node()}, kernel {platform.release()}, {os.cpu_count()} CPUs",
        f"- cgroups: {'hybrid (crun run in a mount namespace without ' + UNIFIED + ')' if crun_ns else 'as found'}",
        "- versions: " + "; ".join(f"{rt.name}: {version(rt.binary)}" for rt in runtimes),
        f"- scenarios: {', '.join(args.scenarios)}",
        f"- seccomp: {args.seccomp or 'none (the bundle has no linux.seccomp)'}",
        f"- address space layout randomization: {aslr()}",
        f"- uprobes and kprobes: {probes()}",
        f"- spawn floor: {ms(args.spawn_floor_ns):.2f} ms (posix_spawn ... wait4 of a static program that "
        f"only exits: part of every timed call below, whatever the runtime)",
        "",
    ]
    for name in args.scenarios:
        md += REPORTS[name](runtimes, args)
    md += ["Produced by `make bench` (bench/bench.py); method described at the top of that script.", ""]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(md))
    print(f"\nwrote {os.path.relpath(args.out)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runtimes", default="rt,runc,crun",
                    help="comma-separated subset of rt,runc,crun, each optionally with +systemd")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help=f"comma-separated subset of {','.join(SCENARIOS)} (default: all)")
    ap.add_argument("--iterations", type=int, default=50,
                    help="timed runs per runtime in run, lifecycle and exec (default 50)")
    ap.add_argument("--rss-iterations", type=int, default=10, help="RSS runs per runtime in run and exec (default 10)")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up rounds per runtime and scenario (default 3)")
    ap.add_argument("--parallel-iterations", type=int, default=3,
                    help=f"parallel: rounds of {PARALLEL_CONTAINERS} containers per runtime and N (default 3)")
    ap.add_argument("--cycles", type=int, default=1000, help="cycles: lifecycle cycles per runtime (default 1000)")
    ap.add_argument("--rt", default=default_rt(), help="rt binary")
    ap.add_argument("--bundle", default=os.path.join(REPO, "bundles/busybox"), help="source bundle")
    ap.add_argument("--out", default=os.path.join(REPO, "bench-results/latest.md"), help="markdown output")
    ap.add_argument("--seccomp", metavar="SECCOMP_JSON",
                    help="give the container this Docker/Podman seccomp profile, as those tools do "
                         "(e.g. /usr/share/containers/seccomp.json)")
    args = ap.parse_args()
    args.out = os.path.abspath(args.out)

    names = [n.strip() for n in args.runtimes.split(",") if n.strip()]
    base = lambda n: n.removesuffix("+systemd")
    if not names or any(base(n) not in ("rt", "runc", "crun") for n in names) or len(set(names)) != len(names):
        die(f"--runtimes must be a comma-separated subset of rt,runc,crun (each may end in +systemd), "
            f"got {args.runtimes!r}")
    wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if not wanted or any(s not in SCENARIOS for s in wanted) or len(set(wanted)) != len(wanted):
        die(f"--scenarios must be a comma-separated subset of {','.join(SCENARIOS)}, got {args.scenarios!r}")
    args.scenarios = [s for s in SCENARIOS if s in wanted]  # always run in this order
    if any(n.endswith("+systemd") for n in names) and not os.path.isdir("/run/systemd/system"):
        die("+systemd runtimes need systemd as PID 1 (make bench-vm)")
    if args.iterations < 1 or args.rss_iterations < 1 or args.warmup < 0:
        die("--iterations and --rss-iterations must be >= 1, --warmup >= 0")
    if args.parallel_iterations < 1 or args.cycles < 2:
        die("--parallel-iterations must be >= 1, --cycles >= 2")
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
    if args.seccomp:
        config.setdefault("linux", {})["seccomp"] = seccomp_from_docker_profile(args.seccomp)

    # Terminated (e.g. a timeout): clean up as on any error, in the finally below.
    signal.signal(signal.SIGTERM, lambda *_: die("terminated"))
    workdir = tempfile.mkdtemp(prefix="rt-bench-")
    crun_ns = runner = None
    runtimes = []
    problems = []
    try:
        if any(base(n) == "crun" for n in names) and os.path.ismount(UNIFIED):
            crun_ns = MountNs()
            print(f"hybrid cgroups: crun runs in mount namespace of holder pid {crun_ns.holder.pid} "
                  f"(no {UNIFIED})")
        for n in names:
            runtimes.append(Runtime(n, binaries[n], workdir, config, crun_ns if base(n) == "crun" else None))
        runner = Runner(workdir, [crun_ns.holder.pid] if crun_ns else [])

        if probes().startswith("REGISTERED"):
            print(f"warning: uprobes or kprobes are registered ({probes()}): times are not comparable", file=sys.stderr)
        args.spawn_floor_ns = runner.spawn_floor()
        print(f"spawn floor: {ms(args.spawn_floor_ns):.2f} ms")
        for rt in runtimes:
            rt.check(config, workdir)
        print(f"checked: {', '.join(names)} run the container (echo through the runtime)")
        print(f"scenarios: {', '.join(args.scenarios)}; runtimes: {', '.join(names)}")

        if "run" in args.scenarios:
            scenario_run(runtimes, runner, args)
        # The rest as subreaper of the containers' inits, as containerd's shim and conmon are.
        rest = [s for s in args.scenarios if s != "run"]
        if rest:
            with subreaper(runner):
                for name in rest:
                    SCENARIO_FUNCS[name](runtimes, runner, args)

        report(runtimes, args, crun_ns)
        if "cycles" in args.scenarios:
            problems = cycles_problems(runtimes, args)
    finally:
        if runner:
            with subreaper(runner):
                runner.drain()
                for rt in runtimes:
                    left = runner.cleanup(rt)
                    if left:
                        print(f"bench: warning: {rt.name} could not delete: {', '.join(left)}", file=sys.stderr)
            runner.close()
        if crun_ns:
            crun_ns.close()
        shutil.rmtree(workdir, ignore_errors=True)
    if problems:
        die("; ".join(problems))


if __name__ == "__main__":
    main()
