# Shared by the e2e scripts: a private work dir, a logged rt, one PASS/FAIL line per step,
# and cleanup on exit, failure or Ctrl-C. Sourced; the caller sets E2E_NAME first.
set -uo pipefail

E2E_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The Makefile passes the rt it built; by hand, the musl build, else the glibc one.
if [ -z "${RT_REAL:-}" ]; then
    RT_REAL=$E2E_TOP/target/x86_64-unknown-linux-musl/release/rt
    [ -x "$RT_REAL" ] || RT_REAL=$E2E_TOP/target/x86_64-unknown-linux-gnu/release/rt
fi
[ -x "$RT_REAL" ] || { echo "$E2E_NAME: $RT_REAL not built (make build)" >&2; exit 1; }
WORK=$(mktemp -d "/tmp/rt-e2e-$E2E_NAME.XXXXXX")
chmod 755 "$WORK"
export WORK
# In the VM the root is an overlayfs, which can't hold the tools' overlay storage: the work dir
# gets a tmpfs of its own there (cleanup detaches it with everything else under it).
if [ "$(stat -f -c %T "$WORK")" = overlayfs ]; then
    mount -t tmpfs -o size=1536m,mode=755 tmpfs "$WORK"
fi
# cgroupfs (the default) or systemd: the cgroup driver each tool is told to use. With systemd
# the tools call rt with --systemd-cgroup, which needs systemd as PID 1 (make test-vm).
E2E_CGROUP_MANAGER=${E2E_CGROUP_MANAGER:-cgroupfs}
FAILED=0
PASSED=0
CLEANUPS=()

# The tools are given $WORK/bin/rt: it records each call (argv) before it execs the real rt, so
# the script can prove that the tool ran rt and not its default runtime.
mkdir -p "$WORK/bin"
RT="$WORK/bin/rt"
RT_LOG="$WORK/rt-invocations.log"
cat > "$RT" <<WRAP
#!/bin/sh
printf ' %s\n' "\$*" >> "$RT_LOG"
exec "$RT_REAL" "\$@"
WRAP
chmod 755 "$RT"
: > "$RT_LOG"

# on_exit CMD: run CMD (a string) at exit, most recent first.
on_exit() { CLEANUPS=("$1" "${CLEANUPS[@]}"); }

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for c in "${CLEANUPS[@]}"; do eval "$c" >/dev/null 2>&1 || true; done
    # Nothing may stay mounted under the work dir (mount points only: field 5).
    awk -v w="$WORK" 'index($5, w "/") == 1 || $5 == w {print $5}' /proc/self/mountinfo | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null; done
    rm -rf "$WORK" 2>/dev/null || true
    exit $rc
}
trap cleanup EXIT
trap 'echo "$E2E_NAME: interrupted" >&2; exit 130' INT TERM

# step NAME CMD...: run CMD, print one PASS/FAIL line; its output goes to the step log and is
# shown only on failure.
step() {
    local name=$1
    shift
    local out="$WORK/step.out"
    if "$@" >"$out" 2>&1; then
        echo "PASS $E2E_NAME: $name"
        PASSED=$((PASSED + 1))
    else
        echo "FAIL $E2E_NAME: $name"
        sed 's/^/    | /' "$out" | tail -n 15
        FAILED=$((FAILED + 1))
    fi
}

# expect_eq WANT CMD...: CMD's stdout (trimmed) must equal WANT.
expect_eq() {
    local want=$1
    shift
    local got
    got=$("$@") || { echo "command failed: $*"; return 1; }
    got=$(printf '%s' "$got" | tr -d '\r' | sed -e 's/[[:space:]]*$//')
    [ "$got" = "$want" ] || { echo "want: $want"; echo "got:  $got"; return 1; }
}

# expect_rc WANT CMD...: CMD must exit with WANT.
expect_rc() {
    local want=$1
    shift
    "$@"
    local rc=$?
    [ "$rc" = "$want" ] || { echo "exit code $rc, want $want: $*"; return 1; }
}

# rt_called PATTERN: some call of rt had PATTERN (an extended regex) in its argv.
rt_called() {
    grep -Eq -- "$1" "$RT_LOG" || { echo "no call of rt matched /$1/; calls:"; tail -n 20 "$RT_LOG"; return 1; }
}

# retry N CMD...: CMD until it succeeds, N tries 0.2 s apart.
retry() {
    local n=$1
    shift
    for _ in $(seq "$n"); do "$@" && return 0; sleep 0.2; done
    "$@"
}

# busybox_tar FILE: the sample busybox rootfs as a tarball (the base image's only layer).
busybox_tar() {
    tar -C "$E2E_TOP/bundles/busybox/rootfs" --numeric-owner -cf "$1" .
}

# web_context DIR FILE [EXTRA_RUN]: the seed article's build context in DIR: the tiny web
# server, its index.html, and FILE (Containerfile or Dockerfile) built on the busybox base
# image. Its RUN step runs in a container, so the file it writes proves the runtime ran.
web_context() {
    local dir=$1 file=$2 extra=${3:-}
    mkdir -p "$dir"
    cp "$E2E_TOP/bundles/hello-web/rootfs/home/tiny" "$E2E_TOP/bundles/hello-web/rootfs/home/index.html" "$dir/"
    {
        echo 'FROM localhost/rt-e2e-busybox:latest'
        echo 'COPY tiny index.html /home/'
        echo 'RUN echo "written by RUN" > /home/run.txt'
        [ -z "$extra" ] || echo "RUN $extra"
        echo 'WORKDIR /home'
        echo 'EXPOSE 8082'
        echo 'CMD ["/home/tiny", "8082"]'
    } > "$dir/$file"
}

# stop_daemon PIDFILE NAME [SECONDS]: SIGTERM, then SIGKILL after SECONDS (5), to the pid in
# PIDFILE if that process is still NAME (a stale pidfile's number may be reused); true once it
# is gone.
stop_daemon() {
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 0
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || return 0
    set -- "$1" "$2" "${3:-5}"
    kill "$pid" 2>/dev/null
    for _ in $(seq $(($3 * 10))); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    sleep 0.1
    ! kill -0 "$pid" 2>/dev/null
}

# no_leftovers: no process of ours still runs from the work dir, no mount under it.
no_leftovers() {
    local bad=0
    if awk -v w="$WORK" 'index($5, w "/") == 1 {found=1} END {exit !found}' /proc/self/mountinfo; then
        echo "mounts left under $WORK:"; awk -v w="$WORK" 'index($5, w "/") == 1' /proc/self/mountinfo; bad=1
    fi
    local p
    for p in /proc/[0-9]*; do
        [ "${p#/proc/}" = "$$" ] && continue
        # Its command line names the work dir, or its root is a rootfs in it.
        if tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -qF "$WORK/" ||
            case $(readlink "$p/root" 2>/dev/null) in "$WORK"/*) true ;; *) false ;; esac; then
            echo "process left: ${p#/proc/} $(tr '\0' ' ' < "$p/cmdline")"; bad=1
        fi
    done
    return $bad
}

# host_memory_limit PID: the memory limit of PID's cgroup, read from the host side
# (memory.max on cgroup v2, memory.limit_in_bytes where memory is a v1 controller).
host_memory_limit() {
    local line path
    line=$(grep -E '^[0-9]+:([^:]*,)?memory(,[^:]*)?:' "/proc/$1/cgroup")
    if [ -n "$line" ]; then
        path=${line#*:*:}
        cat "/sys/fs/cgroup/memory$path/memory.limit_in_bytes"
    else
        path=$(sed -n 's/^0:://p' "/proc/$1/cgroup")
        cat "$(grep -m1 ' - cgroup2 ' /proc/self/mountinfo | awk '{print $5}')$path/memory.max"
    fi
}

# not_left PATH: PATH, if it does not exist now, is removed at exit (a tool's cache it writes
# outside the private roots, such as containers/image's blob-info cache).
not_left() {
    [ -e "$1" ] || on_exit "rm -rf '$1'"
}

# What a program in the container runs to read its memory limit (v1 file, else v2's).
INSIDE_MEMORY_LIMIT='cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max'

# The host's cgroup directories (every hierarchy), to tell which ones a tool or rt made.
cgroup_dirs() {
    find /sys/fs/cgroup -mindepth 1 -maxdepth 6 -type d 2>/dev/null | sort
}

# cg_rel DIR: DIR's path inside its hierarchy (/sys/fs/cgroup is the only hierarchy on a pure
# cgroup v2 host, one of several directories under it otherwise).
if [ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ]; then
    cg_rel() { echo "${1#/sys/fs/cgroup/}"; }
else
    cg_rel() { echo "${1#/sys/fs/cgroup/*/}"; }
fi
cgroup_dirs > "$WORK/cgroups.before"

# new_cgroups: cgroup dirs made since the script started (deepest first).
new_cgroups() {
    cgroup_dirs | comm -13 "$WORK/cgroups.before" - | sort -r
}

# The parent cgroups the tool makes for its containers (a regex on the path under the
# hierarchy), set by the script: theirs to keep, but empty, and removed at the end.
CGROUP_PARENTS=${CGROUP_PARENTS:-^$}

# our_new_cgroups: cgroups made since the start that are ours: a container's (its path names
# an id this script's rt created) or the tool's parents. Cgroups made by anything else running
# on the machine are not this script's business.
our_new_cgroups() {
    local ids
    ids=$(awk '/ create / {print $NF}' "$RT_LOG" | sort -u)
    new_cgroups | while read -r d; do
        local rel
        rel=$(cg_rel "$d")
        if echo "$rel" | grep -Eq "$CGROUP_PARENTS" ||
            { [ -n "$ids" ] && grep -qF -f <(echo "$ids") <<< "$rel"; }; then
            echo "$d"
        fi
    done
}

# no_new_cgroups: no container cgroup is left, and the tool's parents are empty.
no_new_cgroups() {
    local bad=0 d
    while read -r d; do
        [ -n "$d" ] || continue
        if cg_rel "$d" | grep -Eq "$CGROUP_PARENTS" && [ ! -s "$d/cgroup.procs" ]; then
            continue
        fi
        echo "cgroup left: $d ($(wc -l < "$d/cgroup.procs" 2>/dev/null) processes)"
        bad=1
    done < <(our_new_cgroups)
    return $bad
}

# unit_of PID: the systemd unit whose cgroup holds PID (its cgroup's last component).
unit_of() {
    basename "$(sed -n 's/^0:://p' "/proc/$1/cgroup")"
}

# unit_prop UNIT PROP: a property of a unit, as systemd reports it.
unit_prop() {
    systemctl show -P "$2" "$1"
}

# no_units GLOB: no unit matching GLOB is loaded (active, failed or otherwise), within 5 s:
# systemd unloads a container's dead scope by itself, a moment after rt's delete.
no_units() {
    local left
    for _ in $(seq 50); do
        left=$(systemctl list-units --all --plain --no-legend "$1")
        [ -z "$left" ] && return 0
        sleep 0.1
    done
    echo "units left: $left"
    return 1
}

# The tools' parent cgroups are theirs to keep, but not on this machine after the run.
on_exit 'our_new_cgroups | xargs -r rmdir'

finish() {
    echo "$E2E_NAME: $PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}
