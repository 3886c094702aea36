#!/bin/sh
# Run inside the VM that boots systemd (make test-vm): the cgroup tests under both drivers,
# then the systemd driver's own, and restore under it. $1: tests/cgroup_v2.rs's binary, $2:
# tests/systemd_cgroup.rs's, $3: tests/checkpoint.rs's.
set -u
rc=0
# With the cgroupfs driver on a systemd host, a container manager runs as a Delegate=yes
# service (containerd.service and docker.service do) and keeps its containers in the subtree
# systemd delegates: the tests run so, from a leaf of that subtree (a cgroup with processes
# gives its children no domain controllers), with their containers beside it. (systemd expands
# $$ in a unit's command line: writing 0 to cgroup.procs moves the writer itself.)
echo "== cgroup_v2, cgroupfs driver (in a Delegate=yes service)"
systemd-run --quiet --unit=rt-vm-delegated --property=Delegate=yes --pipe --wait --collect \
    --same-dir --setenv=PATH="$PATH" --setenv=HOME="$HOME" sh -c '
    cg=$(sed -n "s/^0:://p" /proc/self/cgroup)
    mkdir "/sys/fs/cgroup$cg/tests" && echo 0 > "/sys/fs/cgroup$cg/tests/cgroup.procs" || exit 1
    RT_TEST_CGROUP_PARENT=$cg exec "$@"' sh "$1" --ignored --test-threads=1 || rc=1
echo "== cgroup_v2, systemd driver (every rt call with --systemd-cgroup)"
RT_TEST_CGROUP_DRIVER=systemd "$1" --include-ignored --test-threads=1 || rc=1
echo "== systemd_cgroup"
"$2" --include-ignored --test-threads=1 || rc=1
echo "== checkpoint, systemd driver"
"$3" --ignored --test-threads=1 systemd || rc=1
exit $rc
