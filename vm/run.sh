#!/usr/bin/env bash
# Runs a command inside a throwaway VM with a pure cgroup v2 host: Debian's kernel under
# qemu (TCG: KVM does not work on the build machines), cgroup v1 disabled, cgroup2 mounted at
# /sys/fs/cgroup. The VM sees this machine's / read-only through 9p, with a tmpfs overlay on
# top, so the host's binaries (rt, the test binaries, busybox) run unchanged. The command's
# output and exit status come back through a second, writable 9p export.
#
#   vm/run.sh CMD [ARGS...]      exit status = the command's; its output on stdout
#
# VM_INIT picks the VM's PID 1: sh (default) mounts cgroup2 by hand and runs the command;
# systemd boots Debian's systemd as a distribution would (pure cgroup v2, D-Bus system bus,
# rt-vm.target from vm/systemd instead of multi-user.target) and runs the command as a
# service once the boot is over. VM_APPEND adds to the kernel command line (for instance
# systemd.log_level=debug to see the boot on the console, which vm/run.sh shows on failure).
#
# Needs: qemu-system-x86, busybox-static, and the kernel package (fetched with apt-get
# download into $VM_CACHE, default target/vm).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${VM_CACHE:-$repo/target/vm}
mem=${VM_MEM:-2048}
timeout_s=${VM_TIMEOUT:-1200}
append="console=ttyS0 quiet loglevel=3 panic=-1 cgroup_no_v1=all rdinit=/init"
case ${VM_INIT:-sh} in
    sh) ;;
    systemd) append="$append systemd.unified_cgroup_hierarchy=1 systemd.unit=rt-vm.target rtvm.init=systemd" ;;
    *) echo "vm: VM_INIT must be sh or systemd, not '$VM_INIT'" >&2; exit 2 ;;
esac
append="$append ${VM_APPEND:-}"
mkdir -p "$cache"

# The kernel modules the VMs load, in dependency order: 9p and overlay for the root, a disk
# for the device-filter tests, tun (slirp4netns), bridge and veth (dockerd's network), and
# soft-RoCE (an RDMA device over a veth, for the rdma controller's test), and what CRIU's
# checkpoint/restore needs (nftables, the socket diag modules).
modules="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci netfs fscache
9pnet 9pnet_virtio 9p overlay virtio_blk tun llc stp bridge veth
crc32_generic udp_tunnel ip6_udp_tunnel ib_core ib_uverbs rdma_rxe
crc32c_generic libcrc32c nfnetlink nf_tables nf_defrag_ipv4 nf_defrag_ipv6 nf_conntrack nf_conntrack_netlink unix_diag inet_diag tcp_diag udp_diag netlink_diag
af_packet_diag"
modules=$(echo $modules)

# The kernel Debian's linux-image-amd64 currently points to, unpacked once (again when the
# module list changes).
if [ ! -f "$cache/vmlinuz" ] || [ "$(cat "$cache/modules/list" 2>/dev/null)" != "$modules" ]; then
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    [ -n "$pkg" ] || { echo "vm: no linux-image package found (apt-get update?)" >&2; exit 2; }
    rm -rf "$cache/deb" "$cache/modules" && mkdir -p "$cache/deb" "$cache/modules"
    (cd "$cache/deb" && apt-get download "$pkg" >/dev/null 2>&1)
    dpkg -x "$cache"/deb/*.deb "$cache/deb/x"
    cp "$cache"/deb/x/boot/vmlinuz-* "$cache/vmlinuz"
    mods=$(ls -d "$cache"/deb/x/lib/modules/*)
    for m in $modules; do
        # Built into the kernel when there is no file.
        f=$(find "$mods" -name "$m.ko" | head -n 1)
        [ -n "$f" ] && cp "$f" "$cache/modules/"
    done
    echo "$modules" > "$cache/modules/list"
    rm -rf "$cache/deb"
    rm -f "$cache/initrd.gz"
fi

# The initramfs: busybox, the modules, an init that assembles the root and switches to it,
# and the files it adds to the root for systemd. Rebuilt when any of those changes.
if [ ! -f "$cache/initrd.gz" ] || [ -n "$(find "$here/init" "$here/systemd" -newer "$cache/initrd.gz")" ]; then
    work=$(mktemp -d)
    mkdir -p "$work"/{bin,proc,sys,dev,mnt/host,mnt/rw,mnt/res,newroot,lib/modules}
    cp /bin/busybox "$work/bin/busybox"
    for a in sh mount mkdir insmod switch_root cat echo poweroff sleep cp rm ln; do
        ln -s busybox "$work/bin/$a"
    done
    cp "$cache"/modules/*.ko "$cache/modules/list" "$work/lib/modules/" 2>/dev/null || true
    cp -R "$here/systemd" "$work/systemd"
    cp "$here/init" "$work/init"
    chmod 755 "$work/init"
    (cd "$work" && find . | cpio -o -H newc --quiet | gzip -1) > "$cache/initrd.gz"
    rm -rf "$work"
fi

results=$(mktemp -d /tmp/rt-vm.XXXXXX)
trap 'rm -rf "$results"' EXIT
# A small empty disk: tests of the device filter need a real block device to be refused.
truncate -s 4M "$results/disk.img"
# The command, run from the current directory inside the VM.
{
    echo "cd $(printf %q "$PWD")"
    printf '%q ' "$@"
    echo
} > "$results/cmd"

timeout "$timeout_s" qemu-system-x86_64 -accel tcg -m "$mem" -smp 2 -no-reboot \
    -kernel "$cache/vmlinuz" -initrd "$cache/initrd.gz" \
    -append "$append" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs local,path="$results",mount_tag=results,security_model=none \
    -drive file="$results/disk.img",format=raw,if=virtio \
    -serial file:"$results/console" -monitor none -display none \
    </dev/null >/dev/null 2>&1 || true

if [ -f "$results/log" ]; then cat "$results/log"; fi
if [ ! -f "$results/rc" ]; then
    echo "vm: the VM did not report an exit status; console follows" >&2
    tail -n 40 "$results/console" >&2 2>/dev/null || true
    exit 2
fi
exit "$(cat "$results/rc")"
