#!/usr/bin/env bash
# A private containerd (its own root, state and socket; no CRI) runs rt through its runc shim:
# ctr run --runc-binary rt, task exec/ps/pause/resume/kill/delete, exit codes, a memory limit.
E2E_NAME=containerd
source "$(dirname "$0")/lib.sh"
CGROUP_PARENTS='^rt-e2e$'

SOCK="$WORK/containerd.sock"
NS=rt-e2e
cat > "$WORK/config.toml" <<CONF
version = 2
root = "$WORK/root"
state = "$WORK/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
CONF
ctr() { command ctr --address "$SOCK" --namespace "$NS" "$@"; }
export -f ctr
export SOCK NS
RUNC_ARGS=(--runc-binary "$RT" --runc-root "$WORK/rt-root")
# run_args NAME: ctr run's flags for rt, and for the systemd cgroup driver when that is the one
# (the runc shim's SystemdCgroup option, what Kubernetes sets; the cgroup is then a unit).
run_args() {
    RUN_ARGS=("${RUNC_ARGS[@]}")
    if [ "$E2E_CGROUP_MANAGER" = systemd ]; then
        RUN_ARGS+=(--runc-systemd-cgroup --cgroup "system.slice:rt-e2e:$1")
    fi
}

start_containerd() {
    containerd --config "$WORK/config.toml" > "$WORK/containerd.log" 2>&1 &
    echo $! > "$WORK/containerd.pid"
    retry 100 ctr version >/dev/null
}
stop_containerd() {
    stop_daemon "$WORK/containerd.pid" containerd 5 || return 1
    # Its shims outlive it on purpose; ours must not.
    pkill -f "containerd-shim.*-address $SOCK" 2>/dev/null
    return 0
}
on_exit stop_containerd
on_exit "for t in \$(ctr task ls -q); do ctr task kill -s KILL \$t; ctr task delete -f \$t; done; for c in \$(ctr container ls -q); do ctr container delete \$c; done"

# Images: the busybox rootfs, and the web server on top of it, made with umoci and handed to
# containerd as docker archives (skopeo).
images() {
    local l="$WORK/layout"
    umoci init --layout "$l" && umoci new --image "$l:busybox" &&
        umoci insert --image "$l:busybox" "$E2E_TOP/bundles/busybox/rootfs" / &&
        umoci config --image "$l:busybox" --config.cmd sh &&
        umoci tag --image "$l:busybox" web &&
        umoci insert --image "$l:web" "$E2E_TOP/bundles/hello-web/rootfs/home" /home &&
        umoci config --image "$l:web" --config.workingdir /home --config.cmd /home/tiny --config.cmd 8082 &&
        skopeo copy "oci:$l:busybox" "docker-archive:$WORK/busybox.tar:localhost/rt-e2e-busybox:latest" &&
        skopeo copy "oci:$l:web" "docker-archive:$WORK/web.tar:localhost/rt-e2e-web:latest"
}
step "build the images (umoci, skopeo)" images
step "start a private containerd (no CRI)" start_containerd
step "ctr image import" bash -c "ctr image import '$WORK/busybox.tar' && ctr image import '$WORK/web.tar'"
BB=localhost/rt-e2e-busybox:latest
WEB=localhost/rt-e2e-web:latest

run_args web
step "ctr run -d --runc-binary rt (host network)" ctr run -d "${RUN_ARGS[@]}" --net-host "$WEB" web
step "curl 127.0.0.1:8082/index.html says Hello World" expect_eq "Hello World" retry 50 curl -fsS http://127.0.0.1:8082/index.html
step "the shim ran rt create and start" bash -c "grep -q ' create ' '$RT_LOG' && grep -q ' start ' '$RT_LOG'"
step "ctr task exec" expect_eq "Hello World" ctr task exec --exec-id e1 web cat /home/index.html
step "ctr task exec exit code" expect_rc 4 ctr task exec --exec-id e2 web sh -c 'exit 4'
step "rt exec was called" rt_called " exec "
step "ctr task ps lists the server" bash -c "pid=\$(ctr task ls | awk '\$1==\"web\"{print \$2}'); ctr task ps web | grep -qw \"\$pid\""
step "ctr task pause" ctr task pause web
step "paused" bash -c "ctr task ls | grep -E '^web .*PAUSED'"
step "ctr task resume" ctr task resume web
step "running and serving again" expect_eq "Hello World" retry 20 curl -fsS http://127.0.0.1:8082/index.html
step "rt pause and resume were called" bash -c "grep -q ' pause ' '$RT_LOG' && grep -q ' resume ' '$RT_LOG'"
step "ctr task kill (SIGTERM)" ctr task kill web
step "stopped" bash -c "for i in \$(seq 50); do ctr task ls | grep -Eq '^web .*STOPPED' && exit 0; sleep 0.1; done; ctr task ls; exit 1"
step "ctr task delete" ctr task delete web
step "ctr container delete" ctr container delete web
step "rt delete was called" rt_called " delete "

run_args rm1
step "ctr run --rm exit code" expect_rc 5 ctr run --rm "${RUN_ARGS[@]}" "$BB" rm1 sh -c 'exit 5'
run_args rm2
step "ctr run --rm output" expect_eq "hello from rt" ctr run --rm "${RUN_ARGS[@]}" "$BB" rm2 echo hello from rt

memory_limit() {
    run_args mem
    ctr run -d "${RUN_ARGS[@]}" --memory-limit 67108864 "$BB" mem sleep 1000 || return 1
    local pid got
    pid=$(ctr task ls | awk '$1=="mem"{print $2}')
    got=$(host_memory_limit "$pid") || return 1
    echo "memory limit seen from the host: $got"
    [ "$got" = 67108864 ]
}
step "ctr run --memory-limit sets the cgroup's limit" memory_limit
if [ "$E2E_CGROUP_MANAGER" = systemd ]; then
    step "rt was called with --systemd-cgroup" rt_called "--systemd-cgroup .*create"
    step "the container is the unit rt-e2e-mem.scope" expect_eq rt-e2e-mem.scope unit_of "$(ctr task ls | awk '$1=="mem"{print $2}')"
    step "its unit has MemoryMax=64M" expect_eq 67108864 unit_prop rt-e2e-mem.scope MemoryMax
fi
step "ctr task kill -s KILL, delete" bash -c "ctr task kill -s KILL mem && sleep 0.3 && ctr task delete mem && ctr container delete mem"

step "no task left" expect_eq "" ctr task ls -q
step "no container cgroup left" no_new_cgroups
if [ "$E2E_CGROUP_MANAGER" = systemd ]; then
    step "no rt-e2e unit left" no_units 'rt-e2e-*'
fi
step "stop containerd" stop_containerd
step "nothing left behind" no_leftovers
finish
