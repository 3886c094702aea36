#!/bin/sh
# Run inside the VM that boots systemd (make test-vm): the cgroup tests under both drivers,
# then the systemd driver's own. $1: tests/cgroup_v2.rs's binary, $2: tests/systemd_cgroup.rs's.
set -u
rc=0
echo "== cgroup_v2, cgroupfs driver"
"$1" --ignored --test-threads=1 || rc=1
echo "== cgroup_v2, systemd driver (every rt call with --systemd-cgroup)"
RT_TEST_CGROUP_DRIVER=systemd "$1" --include-ignored --test-threads=1 || rc=1
echo "== systemd_cgroup"
"$2" --include-ignored --test-threads=1 || rc=1
exit $rc
