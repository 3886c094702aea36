#!/usr/bin/env python3
"""Find the functions rt runs on its hot paths and write link/hot-text.ld, which puts them first.

Python 3 standard library plus binutils (readelf, nm). Run as root, after `make build`:

    python3 bench/hot-text.py [--rt UNSTRIPPED_RT] [--out link/hot-text.ld]

Why: every rt call maps its binary's code from the page cache, and the kernel maps a whole
window (fault-around, large folios) for each page fault, not just the page touched. With the
hot functions spread over the whole 2 MiB of code, nearly all of it became resident in every
call. With them packed together, a call maps little more than the code it runs.

How: a uprobe (tracefs) on the entry of every function of an unstripped rt; uprobes are per
file, so they fire in every rt process, including the container's init before its exec. Then
bench/bench.py drives rt through run, lifecycle and exec (what shims and `kubectl exec` call;
again with Podman's seccomp profile, as Docker and Podman give one to every container, and
on a v1 or hybrid host on a pure cgroup v2 view of it, as users' hosts are),
and a second phase through the rarer subcommands. A function whose probe fired is hot: first
those of the first phase, then those only the second phase ran, each in address order (which
keeps the compiler's neighbours together). The probes are removed on the way out.

The output is a linker script fragment (INSERT BEFORE .text) with one input-section pattern per
function. Rust's symbol hashes change with the compiler and the code, so a pattern keeps the
path and drops the hash (`_ZN2rt4main17h*`); a pattern that no longer matches anything is
ignored by the linker, so a stale file costs resident memory, never a build. C functions (musl's
libc.a, libseccomp.a) have no per-function sections: their pattern names the archive member.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))
from bench import default_rt, die  # noqa: E402

TRACEFS = "/sys/kernel/tracing"
CLONE_NEWNS = 0x00020000
GROUP = "rthot"
LEGACY_HASH = re.compile(r"17h[0-9a-f]{16}E")
# v0 mangling (std's): a crate's disambiguator (Cs<hash>_) is a hash, and a back-reference
# (B<offset>_) is a byte offset that moves with the hashes before it.
V0_VOLATILE = re.compile(r"(?<=C)s[0-9a-zA-Z]*_|B[0-9a-zA-Z]*_")


def run(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def functions(binary):
    """(file offset, symbol) of every function in the code sections, one per address."""
    sections = {}
    for line in run("readelf", "-SW", binary).splitlines():
        m = re.match(r"\s*\[\s*(\d+)\]\s+(\S+)", line)
        if m:
            sections[m.group(2)] = m.group(1)
    # .text, and .text.hot where the binary was linked with a hot-text.ld already
    code = {index for name, index in sections.items() if name == ".text" or name.startswith(".text.")}
    if not code:
        die(f"{binary}: no .text section")
    loads = []
    for line in run("readelf", "-lW", binary).splitlines():
        f = line.split()
        if f and f[0] == "LOAD":
            loads.append((int(f[1], 16), int(f[2], 16), int(f[4], 16)))
    seen, out = set(), []
    for line in run("readelf", "-sW", binary).splitlines():
        f = line.split()
        if len(f) < 8 or f[3] != "FUNC" or f[6] not in code or int(f[2], 0) == 0:
            continue
        addr = int(f[1], 16)
        if addr in seen:
            continue
        seen.add(addr)
        off = next((o + addr - v for o, v, size in loads if v <= addr < v + size), None)
        if off is not None:
            out.append((off, f[7]))
    if not out:
        die(f"{binary}: no function symbols (stripped: build it with Cargo.toml's release profile)")
    return sorted(out)


def archive_members(archives):
    """symbol -> 'archive:member' for the C archives linked into rt."""
    owner = {}
    for archive in archives:
        for line in run("nm", "-A", "--defined-only", archive).splitlines():
            # /path/libc.a:memcpy.lo:0000000000000000 T memcpy
            m = re.match(r"(.*?):([^:]+):\S*\s+[TtWw]\s+(\S+)$", line)
            if m:
                owner.setdefault(m.group(3), f"*{os.path.basename(m.group(1))}:{m.group(2)}")
    return owner


def loose(symbol):
    """The symbol with its compiler-made hashes wildcarded, or None for a C symbol."""
    if symbol.startswith("_ZN"):
        return LEGACY_HASH.sub("17h*", symbol)
    if symbol.startswith("_R"):
        return V0_VOLATILE.sub("*", symbol)
    return None


def pattern(symbol, owner, shared):
    """The input-section pattern for one function. Without its hash, a Rust name survives a new
    compiler or a changed dependency, but a generic function's instances differ only in their
    hash: where the loose name matches other functions too (shared), the exact name is kept."""
    name = loose(symbol)
    if name is not None:
        if name in shared:
            return f"*(.text.{symbol})"
        return f"*(.text.{name.rstrip('*')}*)"  # also the compiler's suffixed copies (.llvm.N)
    if symbol in owner:
        return f"{owner[symbol]}(.text .text.*)"
    return None


class Probes:
    """One uprobe per function entry, removed again by close()."""

    def __init__(self, binary, funcs):
        self.index = {}
        for i, (off, _) in enumerate(funcs):
            try:
                self.event(f"p:{GROUP}/f{i} {binary}:{off:#x}")
                self.index[f"f{i}"] = i
            except OSError:
                pass  # an entry the kernel cannot probe: that function stays where it is
        self.write(f"events/{GROUP}/enable", "1")

    def event(self, line):
        # One unbuffered write per probe: the kernel takes or refuses each line on its own.
        fd = os.open(os.path.join(TRACEFS, "uprobe_events"), os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, line.encode() + b"\n")
        finally:
            os.close(fd)

    def write(self, path, text):
        with open(os.path.join(TRACEFS, path), "w") as f:
            f.write(text)

    def hits(self):
        """probe index -> hits; uprobe_profile's lines are `FILE EVENT HITS`."""
        counts = {}
        with open(os.path.join(TRACEFS, "uprobe_profile")) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[1] in self.index:
                    counts[self.index[parts[1]]] = int(parts[2])
        return counts

    def close(self):
        try:
            self.write(f"events/{GROUP}/enable", "0")
        except OSError:
            pass
        try:
            self.event(f"-:{GROUP}/")  # an empty event name removes the whole group at once
        except OSError as e:
            print(f"warning: removing the uprobes of group {GROUP}: {e}", file=sys.stderr)


def rare_calls(rt, bundle_src):
    """The subcommands bench.py does not drive, once each, on a sleeping container."""
    with tempfile.TemporaryDirectory(prefix="rt-hot-") as tmp:
        root, bundle, cid = os.path.join(tmp, "state"), os.path.join(tmp, "bundle"), f"hot-{os.getpid()}"
        os.mkdir(bundle)
        os.symlink(os.path.join(bundle_src, "rootfs"), os.path.join(bundle, "rootfs"))
        with open(os.path.join(bundle_src, "config.json")) as src, \
                open(os.path.join(bundle, "config.json"), "w") as dst:
            config = json.load(src)
            config["process"]["args"] = ["/bin/sleep", "1000000"]
            config["process"]["terminal"] = False
            json.dump(config, dst)
        base = [rt, "--root", root]
        try:
            subprocess.run(base + ["run", "-d", "-b", bundle, cid], check=True,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            for args in (["list"], ["ps", cid], ["pause", cid], ["resume", cid],
                         ["events", "--stats", cid], ["update", "--pids-limit", "100", cid],
                         ["kill", cid, "TERM"], ["features"], ["spec", "--bundle", tmp]):
                subprocess.run(base + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            subprocess.run(base + ["delete", "-f", cid], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rt", default=default_rt(), help="the release rt (make build), symbols kept")
    ap.add_argument("--out", default=os.path.join(REPO, "link/hot-text.ld"))
    ap.add_argument("--bundle", default=os.path.join(REPO, "bundles/busybox"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        die("run as root (uprobes, containers)")
    global TRACEFS
    if not os.path.exists(os.path.join(TRACEFS, "uprobe_events")):
        # tracefs is not mounted here: mount it in a mount namespace of our own, so the host's
        # mounts stay as they are (bench.py and rt inherit the namespace, which is harmless).
        import ctypes
        if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNS) != 0:
            die(f"unshare(CLONE_NEWNS): {os.strerror(ctypes.get_errno())}")
        run("mount", "--make-rprivate", "/")
        TRACEFS = tempfile.mkdtemp(prefix="rt-tracefs-")
        run("mount", "-t", "tracefs", "tracefs", TRACEFS)
    if not os.path.exists(os.path.join(TRACEFS, "uprobe_events")):
        die(f"{TRACEFS}/uprobe_events is missing: the kernel lacks CONFIG_UPROBE_EVENTS")
    binary = os.path.realpath(args.rt)
    funcs = functions(binary)
    libdir = run("rustc", "--print", "target-libdir", "--target", "x86_64-unknown-linux-musl").strip()
    archives = [p for p in (os.path.join(libdir, "self-contained/libc.a"),
                            os.path.join(REPO, ".cargo/libseccomp/libseccomp.a")) if os.path.exists(p)]
    owner = archive_members(archives)

    print(f"{time.strftime('%T')} probing {len(funcs)} functions")
    probes = Probes(binary, funcs)
    try:
        print(f"{time.strftime('%T')} {len(probes.index)} of {len(funcs)} functions probed; phase 1: bench.py run,lifecycle,exec")
        with tempfile.TemporaryDirectory() as tmp:
            bench = [sys.executable, os.path.join(REPO, "bench/bench.py"), "--runtimes", "rt",
                     "--rt", binary, "--scenarios", "run,lifecycle,exec", "--iterations", "3",
                     "--rss-iterations", "1", "--warmup", "0", "--out", os.path.join(tmp, "b.md")]
            subprocess.run(bench, check=True, stdout=subprocess.DEVNULL)
            profile = "/usr/share/containers/seccomp.json"
            if os.path.exists(profile):
                # Docker and Podman give every container a seccomp profile: its paths too.
                print(f"{time.strftime('%T')} phase 1, again with {profile}")
                subprocess.run(bench + ["--seccomp", profile], check=True, stdout=subprocess.DEVNULL)
            if any(line.split()[2] == "cgroup" for line in open("/proc/self/mounts")):
                # Users' hosts are pure cgroup v2, whose paths (the device filter's eBPF program,
                # say) a v1 or hybrid host never runs: the same again in a mount namespace of its
                # own with cgroup2 at /sys/fs/cgroup (the probes fire in any namespace).
                print(f"{time.strftime('%T')} phase 1, again on a pure cgroup v2 view")
                subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                'umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec "$@"',
                                "sh", *bench], check=True, stdout=subprocess.DEVNULL)
        first = {i for i, n in probes.hits().items() if n}
        print(f"{time.strftime('%T')} phase 2: the other subcommands")
        rare_calls(binary, os.path.realpath(args.bundle))
        second = {i for i, n in probes.hits().items() if n} - first
    finally:
        print(f"{time.strftime('%T')} removing the probes")
        probes.close()

    counts = {}
    for _, symbol in funcs:
        name = loose(symbol)
        counts[name] = counts.get(name, 0) + 1
    shared = {name for name, n in counts.items() if n > 1}
    lines = []
    for tier in (first, second):
        for i in sorted(tier):
            p = pattern(funcs[i][1], owner, shared)
            if p and p not in lines:
                lines.append(p)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("/* Generated by bench/hot-text.py: the functions rt runs on its hot paths, packed at the\n"
                "   start of its code so that a call maps little more than what it runs. */\n"
                "SECTIONS\n{\n  .text.hot :\n  {\n")
        for p in lines:
            f.write(f"    {p}\n")
        f.write("  }\n}\nINSERT BEFORE .text;\n")
    print(f"{len(first)} functions in phase 1, {len(second)} more in phase 2: {len(lines)} patterns in {args.out}")


if __name__ == "__main__":
    main()
