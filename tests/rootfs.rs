//! Root filesystem: mounts, readonly root, pivot_root, masked/readonly paths,
//! devices, sysctl, symlink-escape protection.
mod common;
use common::*;
use serde_json::json;
use std::fs;

const WRITE_PROBE: &str = "2>/dev/null && echo WRITABLE || echo READONLY";

#[test]
fn template_mounts_have_expected_types() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.start_ok(&b);
    for (mp, fstype) in [
        ("/proc", "proc"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
        ("/sys", "sysfs"),
        ("/tmp", "tmpfs"),
    ] {
        let m = find_mount(c.pid, mp)
            .unwrap_or_else(|| panic!("no mount at {mp}: {:#?}", mountinfo(c.pid)));
        assert_eq!(m.fstype, fstype, "{}", m.line);
    }
    let sys = find_mount(c.pid, "/sys").unwrap();
    assert!(
        sys.is_ro() && sys.has_opt("nosuid") && sys.has_opt("noexec") && sys.has_opt("nodev"),
        "{}",
        sys.line
    );
    let shm = find_mount(c.pid, "/dev/shm").unwrap();
    assert!(
        shm.has_opt("noexec") && shm.has_super_opt("size=65536k"),
        "{}",
        shm.line
    );
    let tmp = find_mount(c.pid, "/tmp").unwrap();
    assert!(
        tmp.has_super_opt("size=16384k") && tmp.has_opt("nosuid"),
        "{}",
        tmp.line
    );
    // devpts is a new instance with the requested options
    let pts = find_mount(c.pid, "/dev/pts").unwrap();
    assert!(
        pts.has_super_opt("gid=5")
            && pts.has_super_opt("mode=620")
            && pts.has_super_opt("ptmxmode=666"),
        "{}",
        pts.line
    );
}

#[test]
fn tmpfs_options_visible_in_mountinfo() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.add_mount(
        "/tmp/tt",
        "tmpfs",
        "tmpfs",
        &["nosuid", "nodev", "noexec", "size=1m", "mode=750"],
    );
    let c = rt.start_ok(&b);
    let m = find_mount(c.pid, "/tmp/tt")
        .unwrap_or_else(|| panic!("no /tmp/tt mount: {:#?}", mountinfo(c.pid)));
    assert_eq!(m.fstype, "tmpfs");
    for o in ["nosuid", "nodev", "noexec", "rw"] {
        assert!(m.has_opt(o), "missing {o}: {}", m.line);
    }
    assert!(m.has_super_opt("size=1024k"), "{}", m.line);
    assert!(m.has_super_opt("mode=750"), "{}", m.line);
}

#[test]
fn readonly_root() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.start_ok(&b);
    let root = find_mount(c.pid, "/").expect("no / mount");
    assert!(root.is_ro(), "root not read-only: {}", root.line);

    let b = Bundle::sh(&format!(
        "touch /should-fail {WRITE_PROBE}; touch /tmp/ok {WRITE_PROBE}"
    ));
    let out = rt.run_stdout(&b);
    assert_eq!(out, "READONLY\nWRITABLE\n");
    assert!(!rootfs().join("should-fail").exists());
}

#[test]
fn writable_root_when_not_readonly() {
    let rt = Rt::new();
    let mut b = Bundle::sh(&format!("touch /created-inside {WRITE_PROBE}"));
    let rootfs = b.private_rootfs();
    b.config["root"]["readonly"] = json!(false);
    let out = rt.run_stdout(&b);
    assert_eq!(out, "WRITABLE\n");
    assert!(
        rootfs.join("created-inside").exists(),
        "write did not land in the bundle's rootfs"
    );
}

#[test]
fn bind_mount_read_only_host_dir() {
    let rt = Rt::new();
    let mut b = Bundle::sh(&format!("cat /tmp/ro/f; touch /tmp/ro/new {WRITE_PROBE}"));
    let host = b.host_dir("robind");
    fs::write(host.join("f"), "from-host\n").unwrap();
    b.add_bind(&host, "/tmp/ro", &["rbind", "ro"]);
    let out = rt.run_stdout(&b);
    assert_eq!(out, "from-host\nREADONLY\n");
    assert!(!host.join("new").exists());
    let leaked = host_mounts_mentioning(&[b.path()]);
    assert!(leaked.is_empty(), "mount leaked to the host: {leaked:?}");
}

#[test]
fn bind_mount_read_write_host_dir() {
    let rt = Rt::new();
    let mut b = Bundle::sh(&format!("echo written > /tmp/rw/new {WRITE_PROBE}"));
    let host = b.host_dir("rwbind");
    b.add_bind(&host, "/tmp/rw", &["bind"]);
    let out = rt.run_stdout(&b);
    assert_eq!(out, "WRITABLE\n");
    assert_eq!(fs::read_to_string(host.join("new")).unwrap(), "written\n");
    assert!(host_mounts_mentioning(&[b.path()]).is_empty());
}

#[test]
fn bind_mount_single_file() {
    let rt = Rt::new();
    let mut b = Bundle::sh("cat /tmp/conf/app.conf; cat /etc/motd-rt");
    let host = b.host_dir("files");
    fs::write(host.join("app.conf"), "key=value\n").unwrap();
    fs::write(host.join("motd"), "motd-line\n").unwrap();
    b.add_bind(
        &host.join("app.conf"),
        "/tmp/conf/app.conf",
        &["bind", "ro"],
    );
    b.add_bind(&host.join("motd"), "/etc/motd-rt", &["bind", "ro"]);
    b.private_rootfs();
    assert_eq!(rt.run_stdout(&b), "key=value\nmotd-line\n");
}

#[test]
fn bind_mount_ro_visible_in_mountinfo() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    let host = b.host_dir("robind");
    b.add_bind(&host, "/tmp/ro", &["rbind", "ro", "nosuid"]);
    let c = rt.start_ok(&b);
    let m = find_mount(c.pid, "/tmp/ro").expect("no /tmp/ro mount");
    assert!(m.is_ro() && m.has_opt("nosuid"), "{}", m.line);
}

#[test]
fn mounts_are_applied_in_order() {
    let rt = Rt::new();
    let mut b = Bundle::sh("cat /tmp/a/b/f");
    let host = b.host_dir("nested");
    fs::write(host.join("f"), "nested-ok\n").unwrap();
    b.add_mount("/tmp/a", "tmpfs", "tmpfs", &["size=1m"]);
    b.add_bind(&host, "/tmp/a/b", &["rbind"]);
    assert_eq!(rt.run_stdout(&b), "nested-ok\n");
}

#[test]
fn pivot_root_hides_host_mounts() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.start_ok(&b);
    let mi = mountinfo(c.pid);
    let rootfs = rootfs();
    for m in &mi {
        assert!(
            !m.mount_point.starts_with("/sys/fs/cgroup")
                && !m.mount_point.starts_with(rootfs.to_str().unwrap()),
            "host mount visible in the container: {}",
            m.line
        );
    }
    assert!(mi.iter().any(|m| m.mount_point == "/"), "{mi:#?}");
}

#[test]
fn masked_paths() {
    let rt = Rt::new();
    assert!(fs::metadata(rootfs().join("etc/passwd")).unwrap().len() > 0);
    assert!(fs::read_dir(rootfs().join("sbin")).unwrap().count() > 0);
    // A masked file reads empty; a masked directory is an empty read-only tmpfs that can be
    // listed (as runc: programs walking it see nothing rather than failing), also by a user
    // without CAP_DAC_OVERRIDE (the template's capabilities have none).
    let mut b = Bundle::sh(
        "wc -c < /etc/passwd; ls -A /sbin | wc -l; wc -c < /proc/timer_list; \
         touch /sbin/x 2>/dev/null && echo WRITABLE || echo READONLY; \
         ls -A /sbin > /dev/null && echo LISTED || echo UNLISTABLE; \
         ls -A /proc/acpi > /dev/null && echo LISTED || echo UNLISTABLE",
    );
    b.linux()["maskedPaths"].as_array_mut().unwrap().extend([
        json!("/etc/passwd"),
        json!("/sbin"),
        json!("/proc/acpi"),
    ]);
    let out = rt.run_stdout(&b);
    let v: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        v,
        ["0", "0", "0", "READONLY", "LISTED", "LISTED"],
        "{out:?}"
    );
}

/// As runc: a read-only /dev (or tmpfs) is made read-only last, after the mounts, devices and
/// symlinks beneath it exist; before, creating /dev/pts in it failed the create.
#[test]
fn read_only_dev_and_tmpfs_get_their_submounts_first() {
    let rt = Rt::new();
    let mut b = Bundle::sh(
        "ls -d /dev/pts /dev/shm /dev/mqueue /dev/fd /run/sub/x; test -c /dev/null && echo NULL; \
         touch /dev/x 2>/dev/null && echo WRITABLE || echo READONLY; \
         touch /run/y 2>/dev/null && echo WRITABLE || echo READONLY; \
         touch /run/sub/x/z && echo SUB-WRITABLE; \
         grep -E ' /dev | /run ' /proc/self/mountinfo | cut -d' ' -f5,6",
    );
    let host = b.host_dir("sub");
    for m in b.config["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/dev" {
            m["options"].as_array_mut().unwrap().push(json!("ro"));
        }
    }
    b.add_mount("/run", "tmpfs", "tmpfs", &["ro", "nosuid"]);
    // A mount point rt has to create inside the read-only tmpfs.
    b.add_bind(&host, "/run/sub/x", &["rbind"]);
    let out = rt.run_stdout(&b);
    for want in [
        "/dev/pts\n",
        "/dev/shm\n",
        "/run/sub/x\n",
        "NULL\nREADONLY\nREADONLY\nSUB-WRITABLE\n",
    ] {
        assert!(out.contains(want), "{want:?} in {out:?}");
    }
    for dest in ["/dev", "/run"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{dest} ")))
            .unwrap_or_else(|| panic!("{dest} in {out:?}"));
        assert!(
            line.split(' ')
                .nth(1)
                .unwrap()
                .split(',')
                .any(|o| o == "ro"),
            "{line}"
        );
    }
    assert!(
        host.join("z").exists(),
        "the bind beneath the read-only tmpfs is the host dir"
    );
}

/// `remount` (as runc): an entry that changes what an earlier entry mounted at the same
/// destination: a tmpfs made read-only and noexec, a bind mount made read-only.
#[test]
fn remount_changes_an_earlier_mount() {
    let rt = Rt::new();
    let mut b = Bundle::sh(
        "touch /mnt/t/x 2>/dev/null && echo T-WRITABLE || echo T-READONLY; \
         touch /mnt/b/x 2>/dev/null && echo B-WRITABLE || echo B-READONLY; \
         grep -E ' /mnt/(t|b) ' /proc/self/mountinfo | cut -d' ' -f5,6",
    );
    let host = b.host_dir("b");
    b.add_mount("/mnt/t", "tmpfs", "tmpfs", &["size=1m"]);
    b.add_mount("/mnt/t", "tmpfs", "tmpfs", &["remount", "ro", "noexec"]);
    b.add_bind(&host, "/mnt/b", &["rbind"]);
    b.add_bind(&host, "/mnt/b", &["bind", "remount", "ro"]);
    let out = rt.run_stdout(&b);
    assert!(out.starts_with("T-READONLY\nB-READONLY\n"), "{out:?}");
    for (dest, flags) in [("/mnt/t", &["ro", "noexec"][..]), ("/mnt/b", &["ro"])] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{dest} ")))
            .unwrap_or_else(|| panic!("{dest} in {out:?}"));
        let opts: Vec<&str> = line.split(' ').nth(1).unwrap().split(',').collect();
        for f in flags {
            assert!(opts.contains(f), "{f} on {line}");
        }
    }
    assert!(!host.join("x").exists());
    // Nothing mounted there before: a clear error naming the entry.
    let mut b = Bundle::new(&["true"]);
    b.add_mount("/mnt/none", "tmpfs", "tmpfs", &["remount", "ro"]);
    let id = rt.new_id();
    rt.create(&b, &id, &[])
        .fails_with(&["/mnt/none", "remount"]);
    rt.assert_no_leftovers(&id, &b, &[]);
}

#[test]
fn masked_paths_in_mountinfo() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.start_ok(&b);
    let fw = find_mount(c.pid, "/sys/firmware").expect("/sys/firmware not masked");
    assert_eq!(fw.fstype, "tmpfs", "{}", fw.line);
    assert!(fw.is_ro(), "{}", fw.line);
    // every masked path that exists on this kernel is covered by a mount
    for p in b.config["linux"]["maskedPaths"].as_array().unwrap() {
        let p = p.as_str().unwrap();
        if std::path::Path::new(p).exists() {
            assert!(find_mount(c.pid, p).is_some(), "{p} not masked");
        }
    }
}

#[test]
fn readonly_paths() {
    let rt = Rt::new();
    let mut b = Bundle::sh(&format!("echo 1 > /tmp/w/x {WRITE_PROBE}; cat /tmp/w/f"));
    let host = b.host_dir("w");
    fs::write(host.join("f"), "still-readable\n").unwrap();
    b.add_bind(&host, "/tmp/w", &["rbind"]);
    b.linux()["readonlyPaths"]
        .as_array_mut()
        .unwrap()
        .push(json!("/tmp/w"));
    let out = rt.run_stdout(&b);
    assert_eq!(out, "READONLY\nstill-readable\n");
    assert!(!host.join("x").exists());
}

#[test]
fn readonly_paths_in_mountinfo() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.start_ok(&b);
    for p in [
        "/proc/sys",
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sysrq-trigger",
    ] {
        if !std::path::Path::new(p).exists() {
            continue; // not on this kernel
        }
        let m = find_mount(c.pid, p).unwrap_or_else(|| panic!("{p} not remounted"));
        assert!(m.is_ro(), "{}", m.line);
    }
}

#[test]
fn default_devices() {
    let rt = Rt::new();
    let b = Bundle::sh(
        "for d in null zero full random urandom tty; do stat -c '%n %F %t:%T' /dev/$d; done; \
         echo x > /dev/null && head -c 3 /dev/zero | wc -c",
    );
    let out = rt.run_stdout(&b);
    let want = [
        ("null", "1:3"),
        ("zero", "1:5"),
        ("full", "1:7"),
        ("random", "1:8"),
        ("urandom", "1:9"),
        ("tty", "5:0"),
    ];
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), want.len() + 1, "{out}");
    for (i, (n, mm)) in want.iter().enumerate() {
        assert_eq!(lines[i], format!("/dev/{n} character special file {mm}"));
    }
    assert_eq!(lines[6].trim(), "3");
}

#[test]
fn default_dev_symlinks() {
    let rt = Rt::new();
    let b = Bundle::sh(
        "for l in ptmx fd stdin stdout stderr; do echo \"$l -> $(readlink /dev/$l)\"; done",
    );
    let out = rt.run_stdout(&b);
    assert_eq!(
        out,
        "ptmx -> pts/ptmx\nfd -> /proc/self/fd\nstdin -> /proc/self/fd/0\nstdout -> /proc/self/fd/1\nstderr -> /proc/self/fd/2\n"
    );
}

#[test]
fn linux_devices_created_with_mode_and_owner() {
    let rt = Rt::new();
    let mut b = Bundle::sh(
        "stat -c '%n %F %t:%T %a %u %g' /dev/rt-null /dev/rt-blk; echo hi > /dev/rt-null && echo WROTE",
    );
    // (the container's root has no CAP_DAC_OVERRIDE: rt-null must be world-writable)
    b.linux()["devices"] = json!([
        { "path": "/dev/rt-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666, "uid": 0, "gid": 0 },
        { "path": "/dev/rt-blk", "type": "b", "major": 7, "minor": 200, "fileMode": 0o640, "uid": 1000, "gid": 1001 }
    ]);
    let out = rt.run_stdout(&b);
    assert_eq!(
        out,
        format!(
            "/dev/rt-null character special file 1:3 666 0 0\n/dev/rt-blk block special file 7:{:x} 640 1000 1001\nWROTE\n",
            200
        )
    );
}

#[test]
fn sysctl_in_new_network_namespace() {
    let rt = Rt::new();
    let host_before = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let want = if host_before.trim() == "1" { "0" } else { "1" };
    let mut b = Bundle::new(&["cat", "/proc/sys/net/ipv4/ip_forward"]);
    b.linux()["sysctl"] = json!({ "net.ipv4.ip_forward": want });
    assert_eq!(rt.run_stdout(&b).trim(), want);
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_before
    );
}

#[test]
fn sysctl_in_new_ipc_namespace() {
    let rt = Rt::new();
    let host_before = fs::read_to_string("/proc/sys/kernel/shmmax").unwrap();
    let mut b = Bundle::new(&["cat", "/proc/sys/kernel/shmmax"]);
    b.linux()["sysctl"] = json!({ "kernel.shmmax": "123456789" });
    assert_eq!(rt.run_stdout(&b).trim(), "123456789");
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/shmmax").unwrap(),
        host_before
    );
}

/// A `kernel.domainname` sysctl that agrees with `domainname` (or stands alone for the hostname)
/// is applied, not refused.
#[test]
fn uts_sysctls_agreeing_with_the_config() {
    let rt = Rt::new();
    let mut b = Bundle::sh("hostname; cat /proc/sys/kernel/domainname");
    b.config["domainname"] = json!("same.example");
    b.linux()["sysctl"] =
        json!({ "kernel.domainname": "same.example", "kernel.hostname": "via-sysctl" });
    b.config.as_object_mut().unwrap().remove("hostname");
    assert_eq!(rt.run_stdout(&b), "via-sysctl\nsame.example\n");
}

/// Private rootfs with `evil -> <abs host dir>`, `evil2 -> ../../../..<host dir>` and
/// `evil3 -> <abs host dir>/last`, tmpfs mounts on /evil/sub, /evil2/sub and /evil3 (a dangling
/// link as the last component, in a parent that exists); the host dirs hold only a "canary"
/// file.
fn symlink_escape_setup(script: &str) -> (Bundle, TempDir, TempDir) {
    let canary_abs = TempDir::new("rt-canary");
    let canary_rel = TempDir::new("rt-canary");
    for c in [&canary_abs, &canary_rel] {
        fs::write(c.path().join("canary"), "original").unwrap();
    }
    let mut b = Bundle::sh(script);
    let rootfs = b.private_rootfs();
    std::os::unix::fs::symlink(canary_abs.path(), rootfs.join("evil")).unwrap();
    let rel = format!(
        "../../../../../../../../..{}",
        canary_rel.path().to_str().unwrap()
    );
    std::os::unix::fs::symlink(&rel, rootfs.join("evil2")).unwrap();
    std::os::unix::fs::symlink(canary_abs.path().join("last"), rootfs.join("evil3")).unwrap();
    b.add_mount("/evil/sub", "tmpfs", "tmpfs", &["size=1m"]);
    b.add_mount("/evil2/sub", "tmpfs", "tmpfs", &["size=1m"]);
    b.add_mount("/evil3", "tmpfs", "tmpfs", &["size=1m"]);
    (b, canary_abs, canary_rel)
}

#[track_caller]
fn assert_canaries_untouched(canaries: &[&TempDir]) {
    for c in canaries {
        assert_eq!(
            c.entries(),
            ["canary"],
            "host dir {} was modified",
            c.path().display()
        );
        assert_eq!(
            fs::read_to_string(c.path().join("canary")).unwrap(),
            "original"
        );
        assert!(
            host_mounts_mentioning(&[c.path().to_str().unwrap()]).is_empty(),
            "host dir {} got a mount",
            c.path().display()
        );
    }
}

/// Whatever rt does with such a config, the host directories stay untouched.
#[test]
fn symlink_mount_destination_never_touches_host() {
    let rt = Rt::new();
    let (b, c1, c2) = symlink_escape_setup(
        "echo pwned > /evil/sub/x; echo pwned > /evil2/sub/x; echo pwned > /evil3/x; true",
    );
    let _ = rt.run_new(&b);
    assert_canaries_untouched(&[&c1, &c2]);
}

/// The symlinks are resolved inside the rootfs (like runc's securejoin): the mounts land
/// on <rootfs>/<host dir path>/sub, created as needed, and work through the symlinks.
#[test]
fn symlink_mount_destination_resolved_inside_rootfs() {
    let rt = Rt::new();
    let (b, c1, c2) = symlink_escape_setup(
        "echo pwned > /evil/sub/x && echo pwned > /evil2/sub/x && echo pwned > /evil3/x && \
         cat /evil/sub/x /evil2/sub/x /evil3/x && grep -c ' /tmp/.*/last tmpfs' /proc/mounts",
    );
    let o = rt.run_new(&b);
    assert_canaries_untouched(&[&c1, &c2]);
    o.ok();
    assert_eq!(o.stdout, "pwned\npwned\npwned\n1\n");
}

/// The `tmpcopyup` mount option (runtime-spec 1.3, as runc): a tmpfs over a directory starts
/// with a copy of it (subdirectories, files, symlinks, FIFOs, with modes and owners); writes go
/// to the tmpfs, never to the image; with `ro`, read-only once filled.
#[test]
fn tmpcopyup_seeds_the_tmpfs_with_the_directory() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let rt = Rt::new();
    let mut b = Bundle::sh(
        "cat /data/sub/file /data/link; stat -c '%a %u:%g' /data/sub/file /data/sub; \
         test -p /data/fifo && echo FIFO; touch /data/new && echo WRITABLE; \
         touch /ro/new 2>/dev/null && echo RO-WRITABLE || echo RO-READONLY; cat /ro/sub/file; \
         grep -E ' /(data|ro) ' /proc/mounts | cut -d' ' -f2,3",
    );
    let rootfs = b.private_rootfs();
    for top in ["data", "ro"] {
        let sub = rootfs.join(top).join("sub");
        fs::create_dir_all(&sub).unwrap();
        fs::write(sub.join("file"), "seeded\n").unwrap();
        fs::set_permissions(sub.join("file"), fs::Permissions::from_mode(0o604)).unwrap();
        std::os::unix::fs::chown(sub.join("file"), Some(1000), Some(1001)).unwrap();
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o751)).unwrap();
    }
    symlink("sub/file", rootfs.join("data/link")).unwrap();
    nix::unistd::mkfifo(
        &rootfs.join("data/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    b.add_mount("/data", "tmpfs", "tmpfs", &["tmpcopyup", "size=1m"]);
    b.add_mount("/ro", "tmpfs", "tmpfs", &["tmpcopyup", "ro"]);
    let out = rt.run_stdout(&b);
    assert_eq!(
        out,
        "seeded\nseeded\n604 1000:1001\n751 0:0\nFIFO\nWRITABLE\nRO-READONLY\nseeded\n\
         /data tmpfs\n/ro tmpfs\n",
        "{out:?}"
    );
    assert!(
        !rootfs.join("data/new").exists(),
        "a write reached the image"
    );

    // Only a tmpfs can be seeded: anything else is refused by name.
    let mut bad = Bundle::new(&["true"]);
    bad.add_mount("/mnt", "proc", "proc", &["tmpcopyup"]);
    let id = rt.new_id();
    rt.create(&bad, &id, &[]).fails_with(&["/mnt", "tmpcopyup"]);
    rt.assert_no_leftovers(&id, &bad, &[]);
}

/// user.* sysctls (the ucounts limits) are per user namespace: set in a user-namespaced
/// container (runc 1.4), refused without one, and the host's value never changes.
#[test]
fn user_sysctls_in_a_new_user_namespace() {
    let rt = Rt::new();
    let host = fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap();
    let mut b = Bundle::sh("cat /proc/sys/user/max_user_namespaces");
    b.add_namespace("user", None);
    b.linux()["uidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    b.linux()["gidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    b.linux()["sysctl"] = json!({"user.max_user_namespaces": "7"});
    assert_eq!(rt.run_stdout(&b), "7\n");
    assert_eq!(
        fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap(),
        host
    );

    let mut bad = Bundle::new(&["true"]);
    bad.linux()["sysctl"] = json!({"user.max_user_namespaces": "7"});
    let id = rt.new_id();
    rt.create(&bad, &id, &[])
        .fails_with(&["user.max_user_namespaces", "user namespace"]);
    rt.assert_no_leftovers(&id, &bad, &[]);
}
