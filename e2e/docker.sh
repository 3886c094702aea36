#!/usr/bin/env bash
# A private dockerd, in its own network namespace, with rt as its default runtime: build with
# the legacy builder (RUN runs in rt), run -d -p, curl, exec, update, stop, rm.
E2E_NAME=docker
source "$(dirname "$0")/lib.sh"
CGROUP_PARENTS='^docker$'

SOCK="$WORK/docker.sock"
# The docker CLI installed beside Debian's dockerd (a newer one elsewhere on PATH may not talk
# to this daemon).
DOCKER_CLI=$(dirname "$(readlink -f "$(command -v dockerd)")")/../bin/docker
[ -x "$DOCKER_CLI" ] || DOCKER_CLI=/usr/bin/docker
docker() { "$DOCKER_CLI" -H "unix://$SOCK" "$@"; }
export -f docker
export SOCK DOCKER_CLI
export DOCKER_BUILDKIT=0
# dockerd writes its key to /etc/docker unless told otherwise.
cat > "$WORK/daemon.json" <<CONF
{ "deprecated-key-path": "$WORK/key.json" }
CONF

# dockerd in a new network namespace: its bridge and port proxies stay there, and with
# --iptables=false it adds no rule anywhere. The published port is reached with nsenter.
start_dockerd() {
    unshare --net --fork sh -c 'ip link set lo up && exec "$@"' dockerd dockerd \
        --config-file "$WORK/daemon.json" \
        --data-root "$WORK/data" --exec-root "$WORK/exec" --pidfile "$WORK/dockerd.pid" \
        -H "unix://$SOCK" --iptables=false --ip-forward=false --ip-masq=false \
        --exec-opt "native.cgroupdriver=$E2E_CGROUP_MANAGER" \
        --add-runtime "rt=$RT" --default-runtime rt > "$WORK/dockerd.log" 2>&1 &
    retry 150 docker version >/dev/null 2>&1 || { tail -n 20 "$WORK/dockerd.log"; return 1; }
}
stop_dockerd() {
    stop_daemon "$WORK/dockerd.pid" dockerd 10 || return 1
    # The containerd it started, and its shims.
    pkill -f "containerd.*$WORK/exec" 2>/dev/null
    return 0
}
in_netns() { nsenter --net="/proc/$(cat "$WORK/dockerd.pid")/ns/net" "$@"; }
on_exit stop_dockerd
on_exit 'docker rm -f $(docker ps -a -q)'

CTX="$WORK/ctx"
web_context "$CTX" Dockerfile
IMG=localhost/rt-e2e-busybox:latest
WEB=localhost/rt-e2e-web:latest

step "start a private dockerd (own netns, --iptables=false, default runtime rt)" start_dockerd
step "docker info names rt as the default runtime" expect_eq rt docker info --format '{{.DefaultRuntime}}'
step "tar the sample busybox rootfs" busybox_tar "$WORK/busybox.tar"
step "docker import" docker import "$WORK/busybox.tar" "$IMG"
n=$(wc -l < "$RT_LOG")
step "docker build (legacy builder, RUN in rt)" docker build --network none -t "$WEB" "$CTX"
step "the RUN step ran through rt" bash -c "tail -n +$((n + 1)) '$RT_LOG' | grep -q ' create '"
step "docker run -d -p 8082:8082" docker run -d --name web -p 8082:8082 "$WEB"
step "curl 127.0.0.1:8082/index.html (in dockerd's netns) says Hello World" \
    expect_eq "Hello World" retry 50 in_netns curl -fsS http://127.0.0.1:8082/index.html
step "docker exec" expect_eq "written by RUN" docker exec web cat run.txt
step "docker exec exit code" expect_rc 6 docker exec web sh -c 'exit 6'
step "rt exec was called" rt_called " exec "
step "docker top lists the server" bash -c "docker top web | grep -q 'tiny 8082'"

update_memory() {
    docker update --memory 64m --memory-swap 128m web || return 1
    local pid got
    pid=$(docker inspect --format '{{.State.Pid}}' web)
    got=$(host_memory_limit "$pid") || return 1
    echo "memory limit seen from the host: $got"
    [ "$got" = 67108864 ]
}
step "docker update --memory 64m reaches the cgroup" update_memory
if [ "$E2E_CGROUP_MANAGER" = systemd ]; then
    web_unit() { unit_of "$(docker inspect --format '{{.State.Pid}}' web)"; }
    is_docker_scope() { web_unit | grep -Eq '^docker-[0-9a-f]+\.scope$' || { web_unit; return 1; }; }
    step "rt was called with --systemd-cgroup" rt_called "--systemd-cgroup .*create"
    step "the container is a docker scope" is_docker_scope
    step "the update reached its unit (MemoryMax=64M)" expect_eq 67108864 unit_prop "$(web_unit)" MemoryMax
fi
step "rt update was called" rt_called " update "
step "the container reads its new limit in its /sys/fs/cgroup" expect_eq 67108864 docker exec web sh -c "$INSIDE_MEMORY_LIMIT"
step "docker pause / unpause" bash -c "docker pause web && [ \"\$(docker inspect --format '{{.State.Status}}' web)\" = paused ] && docker unpause web"
step "docker stop (SIGTERM)" docker stop -t 5 web
step "exited with code 0" expect_eq "exited 0" docker inspect --format '{{.State.Status}} {{.State.ExitCode}}' web
step "docker rm" docker rm web
step "rt delete was called" rt_called " delete "
step "docker run --rm exit code" expect_rc 9 docker run --rm "$IMG" sh -c 'exit 9'
step "docker run --rm -i (stdin)" expect_eq "piped" bash -c "echo piped | docker run --rm -i '$IMG' cat"
step "docker run --memory 32m" bash -c "docker run -d --name mem --memory 32m '$IMG' sleep 1000 >/dev/null && pid=\$(docker inspect --format '{{.State.Pid}}' mem) && [ \"\$($(declare -f host_memory_limit); host_memory_limit \$pid)\" = 33554432 ]"
step "docker rm -f" docker rm -f mem
step "every container is gone" expect_eq "" docker ps -a -q
step "no container cgroup left" no_new_cgroups
if [ "$E2E_CGROUP_MANAGER" = systemd ]; then
    step "no docker unit left" no_units 'docker-*.scope'
fi
step "stop dockerd" stop_dockerd
step "nothing left behind" no_leftovers
finish
