#!/usr/bin/env bash
# buildah bud with rt as the runtime: the Containerfile's RUN steps run in rt containers.
E2E_NAME=buildah
source "$(dirname "$0")/lib.sh"
# containers/image keeps a blob-info cache here whatever the storage root.
not_left /var/lib/containers

buildah() {
    command buildah --root "$WORK/storage" --runroot "$WORK/run" --storage-driver overlay "$@"
}
export -f buildah
export CONTAINERS_CONF="$WORK/containers.conf"
cat > "$CONTAINERS_CONF" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024"]
[engine]
cgroup_manager = "$E2E_CGROUP_MANAGER"
CONF
on_exit "buildah rm -a; buildah rmi -a -f"

CTX="$WORK/ctx"
web_context "$CTX" Containerfile 'test "$(cat /proc/1/comm)" = sh && echo "uid $(id -u) in $(hostname)" > /home/who.txt'

step "tar the sample busybox rootfs" busybox_tar "$WORK/busybox.tar"
base() {
    local c
    c=$(buildah from scratch) && buildah add "$c" "$WORK/busybox.tar" / &&
        buildah commit --rm "$c" localhost/rt-e2e-busybox:latest
}
step "base image from the busybox rootfs" base
step "buildah bud --runtime rt (network none, isolation oci)" \
    buildah bud --runtime "$RT" --isolation oci --network none --pull=never -t localhost/rt-e2e-web "$CTX"
step "both RUN steps went through rt" bash -c "[ \$(grep -c '^ create ' '$RT_LOG') -ge 2 ] && grep -q '^ delete ' '$RT_LOG'"
check_image() {
    local c m
    c=$(buildah from --pull=never localhost/rt-e2e-web) || return 1
    m=$(buildah mount "$c") || return 1
    local ok=0
    grep -qx "written by RUN" "$m/home/run.txt" && grep -q "^uid 0 in " "$m/home/who.txt" || ok=1
    cat "$m/home/run.txt" "$m/home/who.txt"
    buildah umount "$c" >/dev/null
    buildah rm "$c" >/dev/null
    return $ok
}
step "the RUN steps' files are in the image" check_image
step "buildah run --runtime rt" expect_eq "written by RUN" bash -c "c=\$(buildah from --pull=never localhost/rt-e2e-web) && buildah run --runtime '$RT' --isolation oci --network none \$c cat /home/run.txt; rc=\$?; buildah rm \$c >/dev/null; exit \$rc"
step "no container cgroup left" no_new_cgroups
step "nothing left behind" no_leftovers
finish
