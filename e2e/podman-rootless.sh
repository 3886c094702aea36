#!/usr/bin/env bash
# Rootless Podman with rt, as a user with a systemd user session (systemd --user and its
# delegated cgroup v2 subtree): Podman's defaults there (cgroup_manager systemd) give rt the
# user's manager to make the container's scope in. Needs systemd as PID 1: make e2e-vm.
E2E_NAME=podman-rootless
source "$(dirname "$0")/lib.sh"
if [ ! -d /run/systemd/system ]; then
    echo "$E2E_NAME: needs systemd as PID 1 (make e2e-vm runs it in a VM that boots systemd)" >&2
    exit 1
fi

# A user of its own, made here and removed at exit (with its manager and everything it ran).
USERNAME=rt-e2e-user
# (A test-only name: one an interrupted run left is this script's to remove too.)
on_exit "userdel '$USERNAME'; sed -i '/^$USERNAME:/d' /etc/subuid /etc/subgid"
id -u "$USERNAME" >/dev/null 2>&1 ||
    useradd --no-create-home --home-dir "$WORK/home" --shell /bin/sh "$USERNAME" || exit 1
U=$(id -u "$USERNAME")
# Subordinate ids for the user namespace Podman makes (newuidmap reads them).
grep -q "^$USERNAME:" /etc/subuid || echo "$USERNAME:300000:65536" >> /etc/subuid
grep -q "^$USERNAME:" /etc/subgid || echo "$USERNAME:300000:65536" >> /etc/subgid
mkdir -p "$WORK/home"
chown "$USERNAME:" "$WORK/home"
chmod 666 "$RT_LOG"
cat > "$WORK/home/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024"]
log_driver = "k8s-file"
[engine]
cgroup_manager = "systemd"
events_logger = "file"
runtime = "rt"
runtime_supports_json = ["crun", "runc", "kata", "runsc", "krun", "rt"]
tmp_dir = "$WORK/home/tmp"
[engine.runtimes]
rt = ["$RT"]
CONF

# Lingering starts the user's manager (user@UID.service) without a login.
start_session() {
    loginctl enable-linger "$USERNAME" && retry 150 test -S "/run/user/$U/bus"
}
on_exit "loginctl disable-linger '$USERNAME'; systemctl stop 'user@$U.service'"
as_user() {
    runuser -u "$USERNAME" -- env HOME="$WORK/home" XDG_RUNTIME_DIR="/run/user/$U" \
        DBUS_SESSION_BUS_ADDRESS="unix:path=/run/user/$U/bus" \
        CONTAINERS_CONF="$WORK/home/containers.conf" "$@"
}
upodman() {
    as_user podman --root "$WORK/home/storage" --runroot "$WORK/home/run" --storage-driver overlay "$@"
}
on_exit "upodman rm -a -f -t 0; upodman rmi -a -f"

IMG=localhost/rt-e2e-busybox
step "start the user's systemd session (linger)" start_session
step "rootless podman uses rt, the systemd cgroup manager" expect_eq "rt systemd true" \
    upodman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}} {{.Host.Security.Rootless}}'
step "tar the sample busybox rootfs" busybox_tar "$WORK/busybox.tar"
chmod 644 "$WORK/busybox.tar"
step "podman import" upodman import "$WORK/busybox.tar" "$IMG:latest"
step "podman run -d --memory 64m (rootless)" upodman run -d --name mem --network none --memory 64m "$IMG" sleep 1000
step "rt was called with --systemd-cgroup" rt_called "--systemd-cgroup .*create"
mem_pid() { upodman inspect --format '{{.State.Pid}}' mem; }
in_user_scope() {
    local cg
    cg=$(sed -n 's/^0:://p' "/proc/$(mem_pid)/cgroup")
    echo "cgroup: $cg"
    case $cg in */user@"$U".service/*/libpod-*.scope) true ;; *) false ;; esac
}
step "the container is a libpod scope of the user's manager" in_user_scope
step "its cgroup has the 64M limit (from the host)" expect_eq 67108864 host_memory_limit "$(mem_pid)"
step "its unit has MemoryMax=64M (systemctl --user)" expect_eq 67108864 \
    as_user systemctl --user show -P MemoryMax "$(unit_of "$(mem_pid)")"
step "the container reads its limit" expect_eq 67108864 upodman exec mem cat /sys/fs/cgroup/memory.max
step "podman rm -f" upodman rm -f -t 0 mem
step "podman run --rm exit code" expect_rc 3 upodman run --rm --network none "$IMG" sh -c 'exit 3'
step "no libpod unit left in the user's manager" retry 25 expect_eq "" \
    as_user systemctl --user list-units --all --plain --no-legend 'libpod-*'
step "nothing left behind" no_leftovers
finish
