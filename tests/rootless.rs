//! Rootless mode: rt run by an unprivileged user (created by the test setup), with the
//! config `rt spec --rootless` writes. Ids are checked from the host side.

mod common;
use common::*;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Once;

const USER: &str = "rt-tester";

fn user_ids() -> (u32, u32) {
    static CREATE: Once = Once::new();
    CREATE.call_once(|| {
        let exists = Command::new("id")
            .arg(USER)
            .output()
            .unwrap()
            .status
            .success();
        if !exists {
            let st = Command::new("useradd")
                .args(["-M", "-s", "/bin/sh", USER])
                .status()
                .expect("useradd");
            assert!(st.success(), "useradd {USER} failed");
        }
    });
    // Subordinate ids for newuidmap/newgidmap (useradd usually adds them; make sure).
    for file in ["/etc/subuid", "/etc/subgid"] {
        let text = fs::read_to_string(file).unwrap_or_default();
        if !text.lines().any(|l| l.starts_with(&format!("{USER}:"))) {
            fs::write(file, format!("{text}{USER}:200000:65536\n")).unwrap();
        }
    }
    let id = |flag: &str| -> u32 {
        let o = Command::new("id").args([flag, USER]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

/// A per-test runtime dir owned by the user (its XDG_RUNTIME_DIR); removed on drop.
struct UserDir(PathBuf);

impl UserDir {
    fn new() -> UserDir {
        let (uid, gid) = user_ids();
        let d = std::env::temp_dir().join(unique("rt-test-xdg"));
        fs::create_dir(&d).unwrap();
        std::os::unix::fs::chown(&d, Some(uid), Some(gid)).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
        UserDir(d)
    }
}

impl Drop for UserDir {
    fn drop(&mut self) {
        // Containers left by a failed test: delete them as root, then the dir.
        if let Ok(rd) = fs::read_dir(self.0.join("rt")) {
            for e in rd.flatten() {
                let _ = Command::new(rt_bin())
                    .arg("--root")
                    .arg(self.0.join("rt"))
                    .args(["delete", "--force"])
                    .arg(e.file_name())
                    .output();
            }
        }
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `rt args...` as the unprivileged user, with its own XDG_RUNTIME_DIR (so the default
/// --root is used).
fn as_user(xdg: &Path, args: &[&str]) -> Output {
    let mut c = Command::new("runuser");
    c.args(["-u", USER, "--", "env"])
        .arg(format!("XDG_RUNTIME_DIR={}", xdg.display()))
        .arg(rt_bin())
        .args(args)
        .stdin(Stdio::null());
    run_cmd(&mut c)
}

/// The rootless template of `rt spec --rootless`, written by the user, with the shared
/// busybox rootfs and the given command.
fn rootless_bundle(xdg: &Path, script: &str) -> PathBuf {
    let (uid, gid) = user_ids();
    let dir = xdg.join(unique("bundle"));
    fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
    as_user(
        xdg,
        &["spec", "--rootless", "--bundle", dir.to_str().unwrap()],
    )
    .ok();
    let path = dir.join("config.json");
    let mut c: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    c["root"]["path"] = serde_json::json!(rootfs());
    c["process"]["terminal"] = serde_json::json!(false);
    c["process"]["args"] = serde_json::json!(["sh", "-c", script]);
    fs::write(&path, c.to_string()).unwrap();
    dir
}

#[test]
fn rootless_run_maps_the_user_to_root_inside() {
    let (uid, gid) = user_ids();
    let xdg = UserDir::new();
    let b = rootless_bundle(
        &xdg.0,
        "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map",
    );
    let id = unique("rl");
    let o = as_user(&xdg.0, &["run", "--bundle", b.to_str().unwrap(), &id]);
    o.ok();
    let words: Vec<&str> = o.stdout.split_whitespace().collect();
    assert_eq!(&words[..2], ["0", "0"], "{:?}", o.stdout);
    assert_eq!(
        words[2..5],
        ["0".to_string(), uid.to_string(), "1".into()],
        "{:?}",
        o.stdout
    );
    assert_eq!(
        words[5..8],
        ["0".to_string(), gid.to_string(), "1".into()],
        "{:?}",
        o.stdout
    );
    // State lived under the user's runtime dir and is gone.
    assert!(xdg.0.join("rt").is_dir());
    assert!(!xdg.0.join("rt").join(&id).exists());
}

#[test]
fn rootless_lifecycle_and_exec() {
    let (uid, _) = user_ids();
    let xdg = UserDir::new();
    let b = rootless_bundle(&xdg.0, "sleep 1000");
    let id = unique("rl");
    as_user(&xdg.0, &["create", "--bundle", b.to_str().unwrap(), &id]).ok();
    as_user(&xdg.0, &["start", &id]).ok();
    let st: serde_json::Value =
        serde_json::from_str(&as_user(&xdg.0, &["state", &id]).ok().stdout).unwrap();
    assert_eq!(st["status"], "running");
    let pid = st["pid"].as_i64().unwrap();
    let owner = fs::metadata(format!("/proc/{pid}/status")).unwrap().uid();
    assert_eq!(owner, uid, "the container's root is the user on the host");
    let o = as_user(
        &xdg.0,
        &["exec", &id, "sh", "-c", "id -u; cat /proc/1/cmdline"],
    );
    o.ok();
    assert!(o.stdout.starts_with("0\n"), "{:?}", o.stdout);
    assert!(o.stdout.contains("sleep"), "{:?}", o.stdout);
    // A device node can't be made in a user namespace.
    let o = as_user(
        &xdg.0,
        &[
            "exec",
            &id,
            "sh",
            "-c",
            "mknod /tmp/sda b 8 0 || echo DENIED",
        ],
    );
    assert!(o.stdout.contains("DENIED"), "{:?}", o.stdout);
    as_user(&xdg.0, &["kill", &id, "KILL"]).ok();
    assert!(wait_for(WAIT, || !pid_alive(pid as i32)));
    as_user(&xdg.0, &["delete", &id]).ok();
    assert!(!xdg.0.join("rt").join(&id).exists());
}

/// A rootless container joining another's user and network namespaces by path: the user may
/// join the network namespace only from inside its owner, the user namespace, so rt must join
/// that first here (a privileged rt joins the others first; see the namespaces tests).
#[test]
fn rootless_join_another_containers_user_and_network_namespaces() {
    let xdg = UserDir::new();
    let edit = |b: &Path, f: &dyn Fn(&mut serde_json::Value)| {
        let path = b.join("config.json");
        let mut c: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        f(&mut c);
        fs::write(&path, c.to_string()).unwrap();
    };
    let a = rootless_bundle(&xdg.0, "sleep 1000");
    edit(&a, &|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "network"}))
    });
    let ida = unique("rl");
    as_user(
        &xdg.0,
        &["run", "-d", "--bundle", a.to_str().unwrap(), &ida],
    )
    .ok();
    let st: serde_json::Value =
        serde_json::from_str(&as_user(&xdg.0, &["state", &ida]).ok().stdout).unwrap();
    let pa = st["pid"].as_i64().unwrap();

    let b = rootless_bundle(
        &xdg.0,
        "readlink /proc/self/ns/user; readlink /proc/self/ns/net",
    );
    edit(&b, &|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "user" && n["type"] != "network");
        for t in ["user", "net"] {
            let typ = if t == "net" { "network" } else { t };
            ns.push(serde_json::json!({"type": typ, "path": format!("/proc/{pa}/ns/{t}")}));
        }
        let l = c["linux"].as_object_mut().unwrap();
        l.remove("uidMappings");
        l.remove("gidMappings");
    });
    let o = as_user(
        &xdg.0,
        &["run", "--bundle", b.to_str().unwrap(), &unique("rl")],
    );
    o.ok();
    let want: Vec<String> = ["user", "net"]
        .iter()
        .map(|t| {
            fs::read_link(format!("/proc/{pa}/ns/{t}"))
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(o.stdout.lines().collect::<Vec<_>>(), want);
    as_user(&xdg.0, &["delete", "-f", &ida]).ok();
}

#[test]
fn rootless_ranges_other_than_your_own_id_fail_clearly() {
    let (uid, _) = user_ids();
    let xdg = UserDir::new();
    let b = rootless_bundle(&xdg.0, "true");
    let path = b.join("config.json");
    let mut c: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    // Two ranges: only newuidmap with /etc/subuid entries could grant the second.
    c["linux"]["uidMappings"] = serde_json::json!([
        { "containerID": 0, "hostID": uid, "size": 1 },
        { "containerID": 1, "hostID": 300000, "size": 1000 }
    ]);
    fs::write(&path, c.to_string()).unwrap();
    let id = unique("rl");
    as_user(&xdg.0, &["run", "--bundle", b.to_str().unwrap(), &id])
        .fails_with(&["linux.uidMappings"]);
    assert!(!xdg.0.join("rt").join(&id).exists(), "state left behind");
}

/// Several ranges: the user's own id plus its subordinate ids, through newuidmap/newgidmap.
#[test]
fn rootless_multi_range_mapping_through_newuidmap() {
    let (uid, gid) = user_ids();
    let sub = |file: &str| -> u32 {
        fs::read_to_string(file)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{USER}:")))
            .and_then(|r| r.split(':').next())
            .unwrap()
            .parse()
            .unwrap()
    };
    let (su, sg) = (sub("/etc/subuid"), sub("/etc/subgid"));
    let xdg = UserDir::new();
    let b = rootless_bundle(
        &xdg.0,
        "cat /proc/self/uid_map /proc/self/gid_map; chown 1000:1000 /dev/shm && stat -c %u /dev/shm",
    );
    let path = b.join("config.json");
    let mut c: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    c["linux"]["uidMappings"] = serde_json::json!([
        { "containerID": 0, "hostID": uid, "size": 1 },
        { "containerID": 1, "hostID": su, "size": 65536 }
    ]);
    c["linux"]["gidMappings"] = serde_json::json!([
        { "containerID": 0, "hostID": gid, "size": 1 },
        { "containerID": 1, "hostID": sg, "size": 65536 }
    ]);
    // chown to a subordinate id needs CAP_CHOWN (the rootless template has none).
    let caps = serde_json::json!(["CAP_CHOWN"]);
    c["process"]["capabilities"] =
        serde_json::json!({"bounding": caps, "effective": caps, "permitted": caps});
    fs::write(&path, c.to_string()).unwrap();
    let id = unique("rl");
    let o = as_user(&xdg.0, &["run", "--bundle", b.to_str().unwrap(), &id]);
    o.ok();
    let norm: Vec<String> = o
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert!(norm.contains(&format!("1 {su} 65536")), "{norm:?}");
    assert!(norm.contains(&format!("1 {sg} 65536")), "{norm:?}");
    assert_eq!(norm.last().map(String::as_str), Some("1000"), "{norm:?}");
}

/// `--rootless true` as root (runc's contract): a cgroup rt may not create is run without, not
/// an error; without the flag it is an error naming the cgroup. Cgroup mounts are made
/// read-only for rt (in its own mount namespace) to get there as root.
#[test]
fn rootless_true_as_root_runs_without_an_unwritable_cgroup() {
    let rt = Rt::ro_cgroups();
    let b = Bundle::new(&["sh", "-c", "echo ran"]);
    b.save();
    let id = rt.new_id();
    rt.cmd(&["run", "--bundle", b.path(), &id])
        .fails_with(&["create cgroup", "Read-only file system"]);
    rt.assert_no_leftovers(&id, &b, &[]);

    let id = rt.new_id();
    let out = rt.cmd_raw(&[
        "--root",
        rt.root_str(),
        "--rootless",
        "true",
        "run",
        "--bundle",
        b.path(),
        &id,
    ]);
    assert_eq!(out.ok().stdout, "ran\n");
    rt.assert_no_leftovers(&id, &b, &[]);
}

/// Rootless Podman runs its runtime as root of a user namespace the user made: rt is uid 0
/// there, yet it must act as the user (runc's rule): state under $XDG_RUNTIME_DIR/rt unless
/// USER says root, and /dev nodes bound from the host, since mknod is refused.
#[test]
fn root_of_a_users_namespace_acts_as_that_user() {
    let xdg = UserDir::new();
    let b = rootless_bundle(&xdg.0, "echo in-userns; ls -l /dev/null");
    // The config Podman writes there: no user namespace of the container's own.
    let path = b.join("config.json");
    let mut c: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "user");
    let linux = c["linux"].as_object_mut().unwrap();
    linux.remove("uidMappings");
    linux.remove("gidMappings");
    fs::write(&path, c.to_string()).unwrap();
    let id = unique("rl-ns");
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", USER, "--", "env"])
        .arg(format!("XDG_RUNTIME_DIR={}", xdg.0.display()))
        .arg(format!("USER={USER}"))
        .args([
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
        ])
        .arg(r#"id -u; exec "$@""#)
        .arg("sh")
        .arg(rt_bin())
        .args(["run", "--bundle", b.to_str().unwrap(), &id])
        .stdin(Stdio::null());
    let o = run_cmd(&mut cmd);
    o.ok();
    assert!(o.stdout.starts_with("0\nin-userns\n"), "{:?}", o.stdout);
    assert!(o.stdout.contains("/dev/null"), "{:?}", o.stdout);
    // The state went to the user's runtime dir (and is gone again), not to /run/rt.
    assert!(
        xdg.0.join("rt").is_dir(),
        "no state root under XDG_RUNTIME_DIR"
    );
    assert!(!xdg.0.join("rt").join(&id).exists());
    assert!(!Path::new("/run/rt").join(&id).exists());
}
