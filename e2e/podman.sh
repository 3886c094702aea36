#!/usr/bin/env bash
# Podman with rt as its OCI runtime: the seed article's story (build, run -p, curl) and the
# container lifecycle commands, all with private storage and state.
E2E_NAME=podman
source "$(dirname "$0")/lib.sh"
# containers/image keeps a blob-info cache here whatever the storage root.
not_left /var/lib/containers
CGROUP_PARENTS='^(libpod_parent(/conmon)?|machine\.slice)$'

# Facts of the build host (see issue 6): no systemd, so cgroupfs (systemd, Podman's default,
# where systemd is PID 1: E2E_CGROUP_MANAGER=systemd in the VM); root lacks
# CAP_SYS_RESOURCE, so Podman's default rlimits (nofile 1048576) would fail for any runtime;
# JSON runtime logs only for runtimes Podman knows to support them; slirp4netns, so no bridge
# or iptables rule is added to the host.
cat > "$WORK/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
netns = "slirp4netns"
log_driver = "k8s-file"
[engine]
cgroup_manager = "$E2E_CGROUP_MANAGER"
events_logger = "file"
runtime = "rt"
runtime_supports_json = ["crun", "runc", "kata", "runsc", "krun", "rt"]
tmp_dir = "$WORK/tmp"
[engine.runtimes]
rt = ["$RT"]
CONF
export CONTAINERS_CONF="$WORK/containers.conf"
podman() {
    command podman --root "$WORK/storage" --runroot "$WORK/run" --storage-driver overlay "$@"
}
export -f podman
# Not `podman system reset`: it also deletes the host's Podman networks, which --root does not
# make private. Storage goes with the work dir (its mounts are detached first).
on_exit "podman rm -a -f -t 0; podman rmi -a -f"

IMG=localhost/rt-e2e-busybox
WEB=localhost/rt-e2e-web
CTX="$WORK/ctx"
web_context "$CTX" Containerfile

calls() { wc -l < "$RT_LOG"; }
# since N PATTERN: some call of rt after the first N had PATTERN.
since() { tail -n +"$(($1 + 1))" "$RT_LOG" | grep -Eq -- "$2" || { echo "no call of rt matched /$2/"; return 1; }; }
status() { podman inspect --format '{{.State.Status}}' "$1"; }

step "podman uses rt as its runtime" expect_eq "rt $RT" podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.OCIRuntime.Path}}'
step "tar the sample busybox rootfs" busybox_tar "$WORK/busybox.tar"
step "podman import" podman import "$WORK/busybox.tar" "$IMG:latest"

n=$(calls)
step "podman build (RUN step in rt)" podman build --pull=never --network none -t "$WEB" "$CTX"
step "the RUN step ran through rt" since "$n" " create .*--bundle| run "
step "the build left no container cgroup" no_new_cgroups
step "the RUN step's file is in the image" expect_eq "written by RUN" podman run --rm "$WEB" cat /home/run.txt

step "run --rm left no container cgroup" no_new_cgroups
step "podman run -d -p 127.0.0.1:8082:8082" podman run -d --name web -p 127.0.0.1:8082:8082 "$WEB"
step "curl 127.0.0.1:8082/index.html says Hello World" expect_eq "Hello World" retry 50 curl -fsS http://127.0.0.1:8082/index.html
step "rt was called with --log-format json" rt_called "--log-format[= ]json"
n=$(calls)
step "podman exec" expect_eq "written by RUN" podman exec web cat run.txt
step "podman exec went through rt exec" since "$n" " exec "
step "podman exec -t gets a terminal" bash -c "podman exec -t web sh -c 'tty; stty size' | tr -d '\r' | grep -q '^/dev/pts/'"
step "podman exec exit code" expect_rc 7 podman exec web sh -c 'exit 7'
step "podman top lists the server" bash -c "podman top web | grep -q 'tiny 8082'"
step "podman pause" podman pause web
step "paused" expect_eq paused status web
step "rt pause was called" rt_called " pause "
step "podman unpause" podman unpause web
step "running again and serving" expect_eq "Hello World" retry 20 curl -fsS http://127.0.0.1:8082/index.html
step "podman stop (SIGTERM)" podman stop -t 5 web
step "stopped with exit code 0" expect_eq "exited 0" podman inspect --format '{{.State.Status}} {{.State.ExitCode}}' web
step "podman rm" podman rm web
step "rt delete was called" rt_called " delete "

step "podman run --rm exit code" expect_rc 3 podman run --rm "$IMG" sh -c 'exit 3'
step "podman run -t gets a terminal" bash -c "podman run --rm -t '$IMG' tty | tr -d '\r' | grep -q '^/dev/pts/'"
step "podman run --rm with stdin (-i)" expect_eq "piped" bash -c "echo piped | podman run --rm -i '$IMG' cat"

# --memory: the limit must reach the container's memory cgroup (v2, or v1 on hybrid/v1 hosts).
memory_limit() {
    podman run -d --name mem --memory 64m "$IMG" sleep 1000 >/dev/null || return 1
    local pid
    pid=$(podman inspect --format '{{.State.Pid}}' mem) || return 1
    local got
    got=$(host_memory_limit "$pid") || return 1
    echo "memory limit seen from the host: $got"
    [ "$got" = 67108864 ]
}
step "podman run --memory 64m sets the cgroup's limit" memory_limit
step "the container reads its limit in its /sys/fs/cgroup" expect_eq 67108864 podman exec mem sh -c "$INSIDE_MEMORY_LIMIT"
if [ "$E2E_CGROUP_MANAGER" = systemd ]; then
    mem_unit() { unit_of "$(podman inspect --format '{{.State.Pid}}' mem)"; }
    is_libpod_scope() { mem_unit | grep -Eq '^libpod-[0-9a-f]+\.scope$' || { mem_unit; return 1; }; }
    step "rt was called with --systemd-cgroup" rt_called "--systemd-cgroup .*create"
    step "the container is a libpod scope" is_libpod_scope
    step "its unit has MemoryMax=64M" expect_eq 67108864 unit_prop "$(mem_unit)" MemoryMax
fi
step "podman rm -f" podman rm -f -t 0 mem

# podman container checkpoint / restore through rt's (CRIU): where criu works on the running
# kernel (the VMs' 6.1, not the build machines' 6.18). Podman's own network namespace (a
# path in the config: external to the dump, rejoined on restore), a terminal (-t: a new pty
# through --console-socket), and the seed's web server answering again.
if criu check >/dev/null 2>&1; then
    count() { podman exec "$1" cat /tmp/count; }
    counted() { [ "$(count "$1")" -ge "$2" ] 2>/dev/null; }
    COUNTER='i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done'
    for ck in ck ckt; do
        tty=; [ $ck = ckt ] && tty=-t
        step "podman run -d ${tty:+$tty }a counter ($ck)" podman run -d $tty --name $ck "$IMG" sh -c "$COUNTER"
        # Far enough that a fresh start could not catch up while restore runs.
        step "it counts to 50" retry 100 counted $ck 50
        c0=$(count $ck)
        n=$(calls)
        step "podman container checkpoint $ck" podman container checkpoint $ck
        step "rt checkpoint was called" since "$n" " checkpoint "
        at=$(podman inspect --format '{{.State.Status}}' $ck)
        step "checkpointed: it stopped" expect_eq exited echo "$at"
        step "podman container restore $ck" podman container restore $ck
        step "rt restore was called" since "$n" " restore "
        step "it goes on from its count ($c0), not from 1" counted $ck "$c0"
        step "podman rm -f the restored container" podman rm -f -t 0 $ck
    done
    step "tty: rt restore was given a console socket" rt_called "restore .*--console-socket"
    step "podman run -d -p 127.0.0.1:8083:8082 the web server" podman run -d --name ckweb -p 127.0.0.1:8083:8082 "$WEB"
    step "it says Hello World" expect_eq "Hello World" retry 50 curl -fsS http://127.0.0.1:8083/index.html
    step "podman container checkpoint ckweb" podman container checkpoint ckweb
    step "checkpointed: nobody answers" bash -c '! curl -fsS -m 2 http://127.0.0.1:8083/index.html'
    step "podman container restore ckweb" podman container restore ckweb
    step "restored: it says Hello World again" expect_eq "Hello World" retry 50 curl -fsS http://127.0.0.1:8083/index.html
    step "podman rm -f the restored web server" podman rm -f -t 0 ckweb
else
    echo "SKIP $E2E_NAME: checkpoint/restore (criu does not work on this kernel)"
fi

step "every container is gone" expect_eq "" podman ps -a -q
step "no container cgroup left" no_new_cgroups
if [ "$E2E_CGROUP_MANAGER" = systemd ]; then
    step "no libpod unit left" no_units 'libpod-*'
fi
step "nothing left behind" no_leftovers
finish
