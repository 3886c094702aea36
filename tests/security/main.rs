//! Security regression suite: one test per class of runc CVE, each with a hostile bundle.
//! Every test asserts the host is untouched and the container failed safely or ran confined.

#[path = "../common/mod.rs"]
mod common;
use common::*;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::time::Duration;

fn canary() -> TempDir {
    let c = TempDir::new("rt-canary");
    fs::write(c.path().join("canary"), "original").unwrap();
    c
}

#[track_caller]
fn assert_untouched(c: &TempDir) {
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

/// CVE-2021-30465 class: mount destinations that are symlinks in the image (absolute and
/// `../` relative) resolve inside the rootfs, for tmpfs and bind mounts alike.
#[test]
fn symlinked_mount_destinations_stay_in_the_rootfs() {
    let rt = Rt::new();
    let abs = canary();
    let rel = canary();
    let src = TempDir::new("rt-src");
    fs::write(src.path().join("payload"), "x").unwrap();
    let mut b = Bundle::sh("ls /evil/sub /evil2/sub >/dev/null; echo pwned > /evil/sub/x; true");
    let rootfs = b.private_rootfs();
    symlink(abs.path(), rootfs.join("evil")).unwrap();
    symlink(
        format!("../../../../../../../..{}", rel.path().display()),
        rootfs.join("evil2"),
    )
    .unwrap();
    b.add_mount("/evil/sub", "tmpfs", "tmpfs", &["size=1m"]);
    b.add_bind(src.path(), "/evil2/sub", &["rbind", "ro"]);
    rt.run_new(&b).ok();
    assert_untouched(&abs);
    assert_untouched(&rel);
}

/// CVE-2025-31133 class: maskedPaths must not bind whatever the image calls /dev/null.
#[test]
fn dev_null_replaced_by_a_symlink_is_not_used_for_masking() {
    let rt = Rt::new();
    let c = canary();
    let mut b = Bundle::sh("cat /proc/kcore >/dev/null 2>&1; true");
    let rootfs = b.private_rootfs();
    // No /dev tmpfs: the image's own /dev is used.
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
    fs::create_dir_all(rootfs.join("dev")).unwrap();
    let _ = fs::remove_file(rootfs.join("dev/null"));
    symlink(c.path().join("canary"), rootfs.join("dev/null")).unwrap();
    b.linux()["maskedPaths"] = serde_json::json!(["/proc/kcore", "/proc/keys"]);
    let id = rt.new_id();
    let o = rt.run(&b, &id, &[]);
    o.fails_with(&["/dev/null"]);
    assert_untouched(&c);
    rt.assert_no_leftovers(&id, &b, &[]);
}

#[test]
fn dev_null_replaced_by_a_regular_file_is_not_used_for_masking() {
    let rt = Rt::new();
    let mut b = Bundle::sh("true");
    let rootfs = b.private_rootfs();
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
    fs::create_dir_all(rootfs.join("dev")).unwrap();
    fs::write(rootfs.join("dev/null"), "not a device").unwrap();
    b.linux()["maskedPaths"] = serde_json::json!(["/proc/kcore"]);
    let id = rt.new_id();
    rt.run(&b, &id, &[]).fails_with(&["/dev/null"]);
    rt.assert_no_leftovers(&id, &b, &[]);
}

/// CVE-2019-19921 / CVE-2023-27561 class: a /proc that is a symlink or not a directory.
#[test]
fn symlinked_proc_is_refused() {
    let rt = Rt::new();
    let c = canary();
    let mut b = Bundle::sh("true");
    let rootfs = b.private_rootfs();
    fs::remove_dir(rootfs.join("proc")).unwrap();
    symlink(c.path(), rootfs.join("proc")).unwrap();
    let id = rt.new_id();
    rt.run(&b, &id, &[]).fails_with(&["/proc"]);
    assert_untouched(&c);
    rt.assert_no_leftovers(&id, &b, &[]);
}

#[test]
fn proc_that_is_a_file_is_refused() {
    let rt = Rt::new();
    let mut b = Bundle::sh("true");
    let rootfs = b.private_rootfs();
    fs::remove_dir(rootfs.join("proc")).unwrap();
    fs::write(rootfs.join("proc"), "").unwrap();
    let id = rt.new_id();
    rt.run(&b, &id, &[]).fails_with(&["/proc"]);
    rt.assert_no_leftovers(&id, &b, &[]);
}

fn file_digest(p: &Path) -> (u64, Vec<u8>) {
    let data = fs::read(p).unwrap();
    (fs::metadata(p).unwrap().mtime() as u64, data)
}

/// CVE-2019-5736: an entrypoint of /proc/self/exe must never run (or expose) the host's rt.
#[test]
fn entrypoint_proc_self_exe_never_runs_rt() {
    let rt = Rt::new();
    let before = file_digest(&rt_bin());
    let b = Bundle::new(&["/proc/self/exe", "--version"]);
    let o = rt.run_new(&b);
    assert!(
        !o.stdout.contains("rt version") && !o.stderr.contains("rt version"),
        "the host rt binary ran inside the container: {}",
        o.stdout
    );
    assert_ne!(o.code, 0, "{o:?}");
    assert_eq!(file_digest(&rt_bin()), before, "the rt binary changed");
}

#[test]
fn script_interpreter_proc_self_exe_never_runs_rt() {
    let rt = Rt::new();
    let before = file_digest(&rt_bin());
    let mut b = Bundle::new(&["/evil.sh"]);
    let rootfs = b.private_rootfs();
    fs::write(rootfs.join("evil.sh"), "#!/proc/self/exe --version\n").unwrap();
    fs::set_permissions(rootfs.join("evil.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    let id = rt.new_id();
    b.save();
    rt.track_cgroup(&b.cgroup);
    // The script loops through the trampoline (harmless); give it a moment, then stop it.
    let mut c = rt.command(&["run", "--bundle", b.path(), &id]);
    let mut s = spawn_cmd(&mut c);
    let o = s.try_wait_for(Duration::from_millis(500));
    let _ = rt.cmd(&["kill", &id, "KILL"]);
    let o = o.unwrap_or_else(|| s.wait(CMD_TIMEOUT));
    assert!(
        !o.stdout.contains("rt version"),
        "the host rt binary ran inside the container: {}",
        o.stdout
    );
    assert_eq!(file_digest(&rt_bin()), before, "the rt binary changed");
}

/// While the init waits for start it is rt's own clone: it must be non-dumpable (its /proc
/// files owned by root whatever its uid), and dumpable again only after exec.
#[test]
fn init_is_non_dumpable_until_exec() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.process()["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
    let c = rt.create_ok(&b);
    let owner = fs::metadata(format!("/proc/{}/status", c.pid))
        .unwrap()
        .uid();
    assert_eq!(
        owner, 0,
        "init (uid 1000, not yet exec'd) must be non-dumpable"
    );
    rt.start(&c.id).ok();
    assert!(wait_exec(c.pid, &["sleep", "1000"]));
    let owner = fs::metadata(format!("/proc/{}/status", c.pid))
        .unwrap()
        .uid();
    assert_eq!(
        owner, 1000,
        "after exec the process is an ordinary dumpable one"
    );
    rt.delete_force(&c.id).ok();
}

fn open_fds(pid: i32) -> Vec<i32> {
    let mut v: Vec<i32> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    v.sort();
    v
}

/// No fd of rt (host /proc handle, lock, sync socket, trampoline...) reaches the container.
#[test]
fn fd_audit_of_init_and_exec() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.start_ok(&b);
    assert_eq!(open_fds(c.pid), [0, 1, 2], "init fds");
    let pidfile = b.dir.join("exec.pid");
    rt.cmd(&[
        "exec",
        "-d",
        "--pid-file",
        pidfile.to_str().unwrap(),
        &c.id,
        "sleep",
        "999",
    ])
    .ok();
    let pid: i32 = fs::read_to_string(&pidfile).unwrap().parse().unwrap();
    assert!(wait_exec(pid, &["sleep", "999"]));
    assert_eq!(open_fds(pid), [0, 1, 2], "exec'd process fds");
    rt.delete_force(&c.id).ok();
}

/// CVE-2024-21626: a cwd through /proc/self/fd/N must never leave the process in a host
/// directory via one of rt's fds, nor make the link's target (a host path, or
/// "memfd:...") in the rootfs.
#[test]
fn cwd_through_proc_self_fd_never_lands_outside() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    let rootfs = b.private_rootfs();
    let listing = || {
        let mut l: Vec<_> = fs::read_dir(&rootfs)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        l.sort();
        l
    };
    let before = listing();
    for n in 3..12 {
        b.process()["cwd"] = serde_json::json!(format!("/proc/self/fd/{n}"));
        let id = rt.new_id();
        let o = rt.create(&b, &id, &[]);
        if o.code != 0 {
            assert!(
                !rt.state_dir(&id).exists(),
                "fd {n}: failed create left state"
            );
            continue;
        }
        let pid = rt.pid(&id);
        let cwd = fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
        assert!(
            cwd.starts_with(&rootfs),
            "fd {n}: the container's cwd {} is outside its rootfs",
            cwd.display()
        );
        rt.delete_force(&id).ok();
    }
    assert_eq!(listing(), before, "the rootfs gained entries");
}

/// CVE-2022-29162: inheritable (and ambient) capabilities stay empty unless asked for.
#[test]
fn inheritable_and_ambient_empty_unless_asked() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.start_ok(&b);
    let status = fs::read_to_string(format!("/proc/{}/status", c.pid)).unwrap();
    for field in ["CapInh:", "CapAmb:"] {
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        assert!(line.ends_with("0000000000000000"), "{line}");
    }
    rt.delete_force(&c.id).ok();
}

/// A mount destination swapped for a symlink to a host dir by a concurrent rename loop while
/// containers are created: the mount never lands on the host.
#[test]
fn mount_destination_swapped_during_create_never_reaches_host() {
    let rt = Rt::new();
    let c = canary();
    let mut b = Bundle::sh("true");
    let rootfs = b.private_rootfs();
    fs::create_dir(rootfs.join("data")).unwrap();
    fs::create_dir(rootfs.join("data/sub")).unwrap();
    b.add_mount("/data/sub", "tmpfs", "tmpfs", &["size=1m"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let racer = {
        let stop = stop.clone();
        let root = rootfs.clone();
        let target = c.path().to_path_buf();
        std::thread::spawn(move || {
            let (dir, dir2, link) = (
                root.join("data"),
                root.join("data.real"),
                root.join("data.link"),
            );
            let _ = symlink(&target, &link);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = fs::rename(&dir, &dir2);
                let _ = fs::rename(&link, &dir);
                let _ = fs::rename(&dir, &link);
                let _ = fs::rename(&dir2, &dir);
            }
        })
    };
    for _ in 0..15 {
        let id = rt.new_id();
        let _ = rt.run(&b, &id, &[]);
        let _ = rt.cmd(&["delete", "--force", &id]);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    racer.join().unwrap();
    assert_untouched(&c);
}

/// runc's --no-pivot hardening: without pivot_root the host's full /proc and /sys stay in the
/// container's mount namespace, outside its chroot. A process that makes itself a user and
/// mount namespace (which locks the container's masks in place) could then mount a fresh,
/// unmasked procfs: the kernel allows that when a fully visible instance exists in the
/// namespace. rt detaches (or covers) the host's first, so the mount is refused, as with
/// pivot_root (the control). runc's no_pivot.bats, with busybox's unshare.
#[test]
fn no_pivot_leaves_no_full_proc_for_a_fresh_unmasked_mount() {
    let rt = Rt::new();
    for no_pivot in [true, false] {
        let mut b = Bundle::new(&[
            "unshare",
            "-mrpf",
            "sh",
            "-c",
            "mount -t proc none /proc && echo MOUNTED; \
             mount -t sysfs none /sys && echo SYS-MOUNTED; true",
        ]);
        for set in ["bounding", "effective", "permitted"] {
            b.process()["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!("CAP_SETFCAP"));
        }
        let id = rt.new_id();
        let flags: &[&str] = if no_pivot { &["--no-pivot"] } else { &[] };
        let o = rt.run(&b, &id, flags);
        o.ok();
        assert_eq!(o.stdout, "", "no_pivot {no_pivot}: {o:?}");
        assert!(
            o.stderr.contains("ermission denied"),
            "no_pivot {no_pivot}: {o:?}"
        );
    }
}
