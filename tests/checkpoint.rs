//! `checkpoint` and `restore` (CRIU). Debian's criu 3.17 can't run on the build machines'
//! 6.18 kernel, so these are ignored by a plain `cargo test`: `make test-vm` runs them in the
//! VM (Debian's 6.1 kernel, with nf_conntrack_netlink loaded: CRIU dumps each network
//! namespace's conntrack table, and fails with EINVAL without it).
//! Each effect is read from outside: the container's counter through /proc/PID/root.

mod common;
use common::*;

use std::fs;
use std::process::{Child, Stdio};
use std::time::Duration;

/// A container counting ten times a second into /tmp/count (a tmpfs CRIU saves with it), in
/// network namespace of its own, its stdio pipes held by the test as a shim would.
fn counter() -> Bundle {
    Bundle::sh("i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done")
}

/// `rt ARGS` with its stdio on pipes this test keeps open (a detached container inherits
/// them), waited for.
fn with_pipes(rt: &Rt, args: &[&str]) -> (Output, Child) {
    let mut c = rt.command(args);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn rt");
    assert!(
        wait_for(Duration::from_secs(60), || child
            .try_wait()
            .ok()
            .flatten()
            .is_some()),
        "rt {args:?} did not return"
    );
    let code = child.try_wait().unwrap().unwrap().code().unwrap_or(-1);
    // What rt said: the container holds the pipe open, so read what is there, not to EOF.
    let mut stderr = String::new();
    if let Some(e) = child.stderr.as_mut() {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        // SAFETY: fcntl on a pipe fd this Child owns.
        unsafe { libc::fcntl(e.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        let _ = e.read_to_string(&mut stderr);
    }
    let o = Output {
        code,
        stdout: String::new(),
        stderr,
        cmdline: format!("rt {}", args.join(" ")),
    };
    (o, child)
}

/// `rt restore -d EXTRA --image-path IMG -b BUNDLE ID` with its stdio on the test's pipes (see
/// with_pipes), for the restored processes to inherit.
fn restore_piped(rt: &Rt, img: &str, b: &Bundle, id: &str, extra: &[&str]) -> (Output, Child) {
    let mut args = vec!["restore", "-d"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--image-path", img, "-b", b.path(), id]);
    with_pipes(rt, &args)
}

fn count(pid: i32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/root/tmp/count"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn images(b: &Bundle, name: &str) -> String {
    b.host_dir(name).to_str().unwrap().to_string()
}

fn criu_log(dir: &str, log: &str) -> String {
    fs::read_to_string(format!("{dir}/{log}"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("Error"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A CRIU-driving rt call that must have worked; CRIU's errors from `log` in `dir` if not.
fn criu_ok(o: &Output, dir: &str, log: &str) {
    assert!(o.success(), "{}\n{}", o.stderr, criu_log(dir, log));
}

/// The counter run detached with its stdio on the test's pipes, once it has counted to `n`:
/// its id and pid, and the pipes (kept open while it runs).
fn run_counter(rt: &Rt, b: &Bundle, n: u64) -> (String, i32, Child) {
    b.save();
    let id = rt.new_id();
    rt.track_cgroup(&b.cgroup);
    let (o, pipes) = with_pipes(rt, &["run", "-d", "-b", b.path(), &id]);
    o.ok();
    let pid = rt.pid(&id);
    assert!(wait_for(Duration::from_secs(20), || count(pid) >= n));
    (id, pid, pipes)
}

#[test]
#[ignore = "needs CRIU on a kernel it supports: make test-vm"]
fn a_counting_container_goes_on_from_its_count_after_restore_under_a_new_id() {
    let rt = Rt::new();
    let mut b = counter();
    b.linux()["resources"] =
        serde_json::json!({"memory": {"limit": 67108864}, "pids": {"limit": 20}});
    let (id, pid, _pipes) = run_counter(&rt, &b, 5);
    let img = images(&b, "img");
    let o = rt.cmd(&["checkpoint", "--image-path", &img, &id]);
    criu_ok(&o, &img, "dump.log");
    let saved = fs::read_to_string(format!("{img}/descriptors.json")).unwrap();
    assert!(saved.contains("pipe:"), "{saved}");
    assert!(!pid_alive(pid), "checkpoint ends the container");
    rt.cmd(&["state", &id]).fails_with(&["does not exist"]);

    let id2 = rt.new_id();
    let (o, _pipes2) = restore_piped(&rt, &img, &b, &id2, &[]);
    criu_ok(&o, &img, "restore.log");
    let pid2 = rt.pid(&id2);
    let at = count(pid2);
    // A fresh start would count from 1: it goes on from where the checkpoint left it.
    assert!(at >= 5, "restored at {at}");
    assert!(wait_for(Duration::from_secs(20), || count(pid2) > at + 3));
    assert_eq!(proc_cgroup2(pid2).as_deref(), Some(b.cgroup.as_str()));
    // The bundle's limits, as create gives them.
    let file = |f: &str| fs::read_to_string(b.cgroup_dir().join(f)).unwrap();
    assert_eq!(file("memory.max").trim(), "67108864");
    assert_eq!(file("pids.max").trim(), "20");
    let st: serde_json::Value =
        serde_json::from_str(&rt.cmd(&["state", &id2]).ok().stdout).unwrap();
    assert_eq!(st["status"], "running");
    rt.delete_force(&id2).ok();
    rt.assert_no_leftovers(&id2, &b, &[]);
}

#[test]
#[ignore = "needs CRIU on a kernel it supports: make test-vm"]
fn pre_dump_then_dump_and_leave_running() {
    let rt = Rt::new();
    let b = counter();
    let (id, pid, _pipes) = run_counter(&rt, &b, 3);
    let pre = images(&b, "pre");
    let o = rt.cmd(&["checkpoint", "--pre-dump", "--image-path", &pre, &id]);
    criu_ok(&o, &pre, "pre-dump.log");
    assert!(pid_alive(pid), "a pre-dump leaves it running");
    let img = images(&b, "img");
    let o = rt.cmd(&[
        "checkpoint",
        "--leave-running",
        "--parent-path",
        "../pre",
        "--image-path",
        &img,
        &id,
    ]);
    criu_ok(&o, &img, "dump.log");
    let at = count(pid);
    assert!(
        wait_for(Duration::from_secs(20), || count(pid) > at + 2),
        "still counting"
    );
    rt.delete_force(&id).ok();

    let (o, _pipes2) = restore_piped(&rt, &img, &b, &id, &[]);
    criu_ok(&o, &img, "restore.log");
    let pid2 = rt.pid(&id);
    assert!(
        count(pid2) >= at,
        "restored at {} (dumped at {at} or later)",
        count(pid2)
    );
    rt.delete_force(&id).ok();
}

/// A checkpoint CRIU refuses (the init's stdout is a file on the host, of a mount the
/// container can't see) leaves the container running; a restore that fails leaves nothing.
#[test]
#[ignore = "needs CRIU on a kernel it supports: make test-vm"]
fn failures_leave_the_container_running_or_nothing_behind() {
    let rt = Rt::new();
    let b = counter();
    b.save();
    let id = rt.new_id();
    rt.track_cgroup(&b.cgroup);
    let mut c = rt.command(&["run", "-d", "-b", b.path(), &id]);
    let out = fs::File::create(b.host_dir("out").join("stdout")).unwrap();
    c.stdout(out).stderr(Stdio::null());
    assert!(c.status().unwrap().success());
    let pid = rt.pid(&id);
    let img = images(&b, "img");
    rt.cmd(&["checkpoint", "--image-path", &img, &id])
        .fails_with(&["criu dump failed"]);
    assert!(pid_alive(pid));
    let at = count(pid);
    assert!(
        wait_for(Duration::from_secs(20), || count(pid) > at + 2),
        "still counting"
    );
    rt.delete_force(&id).ok();

    let empty = images(&b, "empty");
    let id2 = rt.new_id();
    let restore = || {
        rt.cmd(&[
            "restore",
            "-d",
            "--image-path",
            &empty,
            "-b",
            b.path(),
            &id2,
        ])
    };
    restore().fails_with(&["descriptors.json"]);
    rt.assert_no_leftovers(&id2, &b, &[]);
    // An image CRIU can't use: the same, and no cgroup either.
    fs::write(
        format!("{empty}/descriptors.json"),
        "[\"/dev/null\",\"/dev/null\",\"/dev/null\"]",
    )
    .unwrap();
    restore().fails_with(&["criu restore failed"]);
    rt.assert_no_leftovers(&id2, &b, &[]);
}

/// Without criu (anywhere, this host included): a clear error naming it, and the container
/// is left as it was.
#[test]
fn without_criu_checkpoint_says_so() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.start_ok(&b);
    let mut cmd = rt.command(&["checkpoint", "--image-path", "/nonexistent-img", &c.id]);
    cmd.env("PATH", "/nonexistent");
    run_cmd(&mut cmd).fails_with(&["CRIU", "criu"]);
    assert!(pid_alive(c.pid));
    let f: serde_json::Value = serde_json::from_str(&rt.cmd(&["features"]).ok().stdout).unwrap();
    assert_eq!(f["annotations"]["io.github.rt.checkpoint.enabled"], "true");
    rt.delete_force(&c.id).ok();
}

fn get(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").ok()?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    (!out.is_empty()).then(|| String::from_utf8_lossy(&out).into_owned())
}

/// The seed article's web server (bundles/hello-web, on the host's network as its config
/// says) checkpointed with --leave-running, killed, restored: it answers Hello World again.
#[test]
#[ignore = "needs CRIU on a kernel it supports: make test-vm"]
fn hello_web_answers_again_after_restore() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["true"]);
    let sample: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(manifest_dir().join("bundles/hello-web/config.json")).unwrap(),
    )
    .unwrap();
    let cgroup = b.config["linux"]["cgroupsPath"].clone();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    b.config = sample;
    b.config["root"]["path"] = serde_json::json!(manifest_dir().join("bundles/hello-web/rootfs"));
    b.config["process"]["args"] = serde_json::json!(["/home/tiny", port.to_string()]);
    b.config["linux"]["cgroupsPath"] = cgroup;
    b.save();
    let id = rt.new_id();
    rt.track_cgroup(&b.cgroup);
    let (o, _pipes) = with_pipes(&rt, &["run", "-d", "-b", b.path(), &id]);
    o.ok();
    let hello = || get(port).is_some_and(|p| p.ends_with("Hello World\n"));
    assert!(wait_for(Duration::from_secs(10), hello), "never answered");
    let img = images(&b, "img");
    let o = rt.cmd(&["checkpoint", "--leave-running", "--image-path", &img, &id]);
    criu_ok(&o, &img, "dump.log");
    assert!(hello(), "answers on after a --leave-running checkpoint");
    rt.delete_force(&id).ok();
    assert!(
        wait_for(Duration::from_secs(5), || get(port).is_none()),
        "killed"
    );

    let (o, _pipes2) = restore_piped(&rt, &img, &b, &id, &[]);
    criu_ok(&o, &img, "restore.log");
    assert!(
        wait_for(Duration::from_secs(10), hello),
        "answers after restore"
    );
    rt.delete_force(&id).ok();
    rt.assert_no_leftovers(&id, &b, &[]);
}

/// Under the systemd driver (users' default): the restored container is a scope unit of its
/// own, with its limits, and goes on from its count. Runs in the VM that boots systemd
/// (vm/systemd-tests.sh); elsewhere it has nothing to test.
#[test]
#[ignore = "needs CRIU and systemd as PID 1: make test-vm"]
fn restore_under_the_systemd_driver_makes_a_unit() {
    if !fs::read_to_string("/proc/1/comm").is_ok_and(|c| c.trim() == "systemd") {
        return;
    }
    // rt's global flags go after --root too.
    const SD: &str = "--systemd-cgroup";
    let rt = Rt::new();
    let mut b = counter();
    let name = unique("ck");
    b.linux()["cgroupsPath"] = serde_json::json!(format!("system.slice:rt-test:{name}"));
    b.linux()["resources"] = serde_json::json!({"memory": {"limit": 67108864}});
    b.cgroup = format!("/system.slice/rt-test-{name}.scope");
    b.save();
    let id = rt.new_id();
    rt.track_cgroup(&b.cgroup);
    let (o, _pipes) = with_pipes(&rt, &[SD, "run", "-d", "-b", b.path(), &id]);
    o.ok();
    let pid = rt.pid(&id);
    assert!(wait_for(Duration::from_secs(20), || count(pid) >= 5));
    let img = images(&b, "img");
    let o = rt.cmd(&[SD, "checkpoint", "--image-path", &img, &id]);
    criu_ok(&o, &img, "dump.log");
    // The unit went with the checkpointed container.
    assert!(wait_for(Duration::from_secs(10), || !b
        .cgroup_dir()
        .exists()));

    let (o, _pipes2) = with_pipes(
        &rt,
        &[
            SD,
            "restore",
            "-d",
            "--image-path",
            &img,
            "-b",
            b.path(),
            &id,
        ],
    );
    criu_ok(&o, &img, "restore.log");
    let pid2 = rt.pid(&id);
    assert!(count(pid2) >= 5, "restored at {}", count(pid2));
    assert_eq!(proc_cgroup2(pid2).as_deref(), Some(b.cgroup.as_str()));
    let max = fs::read_to_string(b.cgroup_dir().join("memory.max")).unwrap();
    assert_eq!(max.trim(), "67108864");
    let at = count(pid2);
    assert!(wait_for(Duration::from_secs(20), || count(pid2) > at + 2));
    rt.cmd(&[SD, "delete", "-f", &id]).ok();
    assert!(wait_for(Duration::from_secs(10), || !b
        .cgroup_dir()
        .exists()));
}

/// Option values CRIU would refuse are one-line errors naming the flag, before anything is
/// made: no image directory, no state, and the container runs on.
#[test]
fn bad_criu_options_are_refused_before_anything_is_made() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.start_ok(&b);
    let img = b.dir.join("never-made");
    let img = img.to_str().unwrap();
    for (flag, value) in [
        ("--manage-cgroups-mode", "sometimes"),
        ("--empty-ns", "pid"),
    ] {
        rt.cmd(&["checkpoint", flag, value, "--image-path", img, &c.id])
            .fails_with(&[flag, value]);
        let id2 = rt.new_id();
        rt.cmd(&[
            "restore",
            flag,
            value,
            "--image-path",
            img,
            "-b",
            b.path(),
            &id2,
        ])
        .fails_with(&[flag, value]);
        assert!(!rt.state_dir(&id2).exists());
    }
    let stdout_fd = "1";
    for args in [
        &["--page-server", "nowhere"][..],
        &["--page-server", "127.0.0.1:0"],
        &["--lazy-pages", "--status-fd", "999"],
        &["--status-fd", stdout_fd],
        &["--lazy-pages", "--pre-dump"],
    ] {
        let mut all = vec!["checkpoint"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--image-path", img, &c.id]);
        let flag = args.iter().rev().find(|a| a.starts_with("--")).unwrap();
        rt.cmd(&all).fails_with(&[flag]);
    }
    let id2 = rt.new_id();
    rt.cmd(&[
        "restore",
        "--lsm-profile",
        "smack",
        "--image-path",
        img,
        "-b",
        b.path(),
        &id2,
    ])
    .fails_with(&["--lsm-profile", "smack"]);
    assert!(!rt.state_dir(&id2).exists());
    assert!(
        !std::path::Path::new(img).exists(),
        "an image directory was made"
    );
    assert!(pid_alive(c.pid));
    rt.delete_force(&c.id).ok();
}

/// A restore whose bundle, image and console flags disagree about a terminal is refused
/// before anything is made.
#[test]
fn terminal_mismatches_are_refused_before_restore() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.process()["terminal"] = serde_json::json!(true);
    b.save();
    let img = b.host_dir("img");
    fs::write(img.join("descriptors.json"), "[]").unwrap();
    let img = img.to_str().unwrap();
    let sock = b.dir.join("console.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let dir = b.path().to_string();
    let restore = |extra: &[&str]| {
        let id = rt.new_id();
        let mut args = vec!["restore", "-d", "--image-path", img, "-b", &dir];
        args.extend_from_slice(extra);
        args.push(&id);
        let o = rt.cmd(&args);
        assert!(!rt.state_dir(&id).exists(), "state left by {args:?}");
        o
    };
    restore(&[]).fails_with(&["--console-socket"]);
    restore(&["--console-socket", sock.to_str().unwrap()])
        .fails_with(&["process.terminal", "no terminal"]);
    // An image with a terminal and a bundle without one.
    fs::write(format!("{img}/rt-terminal"), "tty[8800:d]").unwrap();
    b.process()["terminal"] = serde_json::json!(false);
    b.save();
    restore(&[]).fails_with(&["has a terminal", "process.terminal"]);
}

fn write_master(fd: std::os::fd::RawFd, text: &str) {
    // SAFETY: a write from a live buffer to an fd the test owns.
    let n = unsafe { libc::write(fd, text.as_ptr().cast(), text.len()) };
    assert_eq!(n, text.len() as isize);
}

/// A container with a terminal (`podman run -t`): its pty's master is outside the container,
/// so the dump leaves the pty out; restore puts a new one in its place and sends its master
/// to --console-socket. The same shell goes on from its count and answers on the new pty.
#[test]
#[ignore = "needs CRIU on a kernel it supports: make test-vm"]
fn a_terminal_container_goes_on_on_a_new_pty_after_restore() {
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixListener;
    let rt = Rt::new();
    let mut b = Bundle::sh(
        "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; \
         if read -t 1 line; then echo \"got:$line\"; fi; done",
    );
    b.remove_namespace("network");
    b.process()["terminal"] = serde_json::json!(true);
    b.save();
    let sock = b.dir.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let id = rt.new_id();
    rt.track_cgroup(&b.cgroup);
    rt.cmd(&[
        "run",
        "-d",
        "--console-socket",
        sock.to_str().unwrap(),
        "-b",
        b.path(),
        &id,
    ])
    .ok();
    let master = receive_console(&listener).unwrap_or_else(|e| panic!("{e}"));
    let master = master[0].as_raw_fd();
    let pid = rt.pid(&id);
    write_master(master, "before\n");
    let out = read_master_until(master, "got:before", Duration::from_secs(10));
    assert!(out.contains("got:before"), "{out:?}");

    let img = images(&b, "img");
    let o = rt.cmd(&["checkpoint", "--image-path", &img, &id]);
    criu_ok(&o, &img, "dump.log");
    assert!(!pid_alive(pid));
    let at = count(pid);
    let key = fs::read_to_string(format!("{img}/rt-terminal")).unwrap();
    assert!(key.starts_with("tty["), "{key}");

    let sock2 = b.dir.join("console2.sock");
    let listener2 = UnixListener::bind(&sock2).unwrap();
    let id2 = rt.new_id();
    let o = rt.cmd(&[
        "restore",
        "-d",
        "--console-socket",
        sock2.to_str().unwrap(),
        "--image-path",
        &img,
        "-b",
        b.path(),
        &id2,
    ]);
    criu_ok(&o, &img, "restore.log");
    let master2 = receive_console(&listener2).unwrap_or_else(|e| panic!("{e}"));
    let master2 = master2[0].as_raw_fd();
    assert!(is_pty_master(master2));
    let pid2 = rt.pid(&id2);
    assert!(count(pid2) >= at.max(1), "restored at {}", count(pid2));
    // The shell's stdin is the new pty: what is typed there reaches it, its answer comes back.
    write_master(master2, "after\n");
    let out = read_master_until(master2, "got:after", Duration::from_secs(10));
    assert!(out.contains("got:after"), "{out:?}");
    rt.delete_force(&id2).ok();
    rt.assert_no_leftovers(&id2, &b, &[]);
}

/// Lazy migration: the checkpoint serves the memory pages on a page server, CRIU saying on
/// --status-fd when it is ready; `criu lazy-pages` fetches them for a restore --lazy-pages,
/// and the counter goes on from its count.
#[test]
#[ignore = "needs CRIU on a kernel it supports: make test-vm"]
fn lazy_pages_come_from_the_checkpoints_page_server() {
    use std::io::Read;
    use std::os::fd::{AsRawFd, FromRawFd};
    let rt = Rt::new();
    let b = counter();
    let (id, pid, _pipes) = run_counter(&rt, &b, 5);
    let img = images(&b, "img");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-int array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fresh fds, owned from here on.
    let (mut ready, status_w) = unsafe {
        (
            fs::File::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    let ps = format!("127.0.0.1:{port}");
    let mut dump = rt.command(&[
        "checkpoint",
        "--lazy-pages",
        "--page-server",
        &ps,
        "--status-fd",
        "5",
        "--image-path",
        &img,
        &id,
    ]);
    pass_fds(&mut dump, &[(status_w.as_raw_fd(), 5)]);
    let mut dump = dump.spawn().unwrap();
    drop(status_w);
    let mut byte = [1u8; 1];
    ready
        .read_exact(&mut byte)
        .expect("CRIU said nothing on --status-fd");
    assert_eq!(byte[0], 0);

    // The dumped processes stay (frozen) until their pages are served: the restored ones get a
    // cgroup of their own, as on the other host of a migration.
    let mut b = b;
    let (path, cgroup) = new_cgroups_path();
    b.linux()["cgroupsPath"] = serde_json::json!(path);
    b.cgroup = cgroup;
    b.save();
    rt.track_cgroup(&b.cgroup);
    let mut lazy = std::process::Command::new("criu")
        .args(["lazy-pages", "--page-server", "--address", "127.0.0.1"])
        .args(["--port", &port.to_string(), "-D", &img, "-W", &img])
        .args(["-o", "lazy-pages.log", "-v4"])
        .spawn()
        .unwrap();
    let id2 = rt.new_id();
    let (o, _pipes2) = restore_piped(&rt, &img, &b, &id2, &["--lazy-pages"]);
    criu_ok(&o, &img, "restore.log");
    let pid2 = rt.pid(&id2);
    let at = count(pid2);
    assert!(at >= 5, "restored at {at}");
    assert!(wait_for(Duration::from_secs(20), || count(pid2) > at + 3));
    // Every page fetched: the page server and the lazy-pages daemon are done.
    assert!(
        wait_for(Duration::from_secs(30), || dump
            .try_wait()
            .unwrap()
            .is_some()),
        "the checkpoint's page server never finished"
    );
    assert!(
        dump.wait().unwrap().success(),
        "{}",
        criu_log(&img, "dump.log")
    );
    assert!(!pid_alive(pid));
    assert!(lazy.wait().unwrap().success(), "criu lazy-pages failed");
    rt.cmd(&["state", &id]).fails_with(&["does not exist"]);
    rt.delete_force(&id2).ok();
    rt.assert_no_leftovers(&id2, &b, &[]);
}

/// A container in a network namespace made for it outside (how Podman and CNI give
/// containers a network: `linux.namespaces` with a path): the namespace is left out of the
/// dump as external, and the restored container is put back into the bundle's namespace.
#[test]
#[ignore = "needs CRIU on a kernel it supports: make test-vm"]
fn a_container_in_a_joined_network_namespace_is_restored_into_it() {
    let rt = Rt::new();
    let netns =
        Helper::spawn(std::process::Command::new("unshare").args(["--net", "sleep", "1000"]));
    assert!(wait_for(Duration::from_secs(5), || ns_link(
        netns.pid(),
        "net"
    ) != host_ns("net")));
    let path = format!("/proc/{}/ns/net", netns.pid());
    let mut b = counter();
    b.remove_namespace("network");
    let ns = b.linux()["namespaces"].as_array_mut().unwrap();
    ns.push(serde_json::json!({"type": "network", "path": path}));
    let (id, pid, _pipes) = run_counter(&rt, &b, 5);
    assert_eq!(ns_link(pid, "net"), ns_link(netns.pid(), "net"));
    let img = images(&b, "img");
    let o = rt.cmd(&["checkpoint", "--image-path", &img, &id]);
    criu_ok(&o, &img, "dump.log");
    assert!(!pid_alive(pid));

    let id2 = rt.new_id();
    let (o, _pipes2) = restore_piped(&rt, &img, &b, &id2, &[]);
    criu_ok(&o, &img, "restore.log");
    let pid2 = rt.pid(&id2);
    assert!(count(pid2) >= 5, "restored at {}", count(pid2));
    assert_eq!(ns_link(pid2, "net"), ns_link(netns.pid(), "net"));
    rt.delete_force(&id2).ok();
    rt.assert_no_leftovers(&id2, &b, &[]);
}

/// A container in a user namespace: its device nodes are bind mounts of the host's (mknod is
/// not allowed there), described to CRIU as external mounts and bound again on restore; the
/// restored processes keep their mapped ids.
#[test]
#[ignore = "needs CRIU on a kernel it supports: make test-vm"]
fn a_user_namespace_container_goes_on_after_restore() {
    let rt = Rt::new();
    let mut b = counter();
    b.add_namespace("user", None);
    let map = serde_json::json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    b.linux()["uidMappings"] = map.clone();
    b.linux()["gidMappings"] = map;
    let (id, pid, _pipes) = run_counter(&rt, &b, 5);
    let img = images(&b, "img");
    let o = rt.cmd(&["checkpoint", "--image-path", &img, &id]);
    criu_ok(&o, &img, "dump.log");
    assert!(!pid_alive(pid));

    let id2 = rt.new_id();
    let (o, _pipes2) = restore_piped(&rt, &img, &b, &id2, &[]);
    criu_ok(&o, &img, "restore.log");
    let pid2 = rt.pid(&id2);
    let at = count(pid2);
    assert!(at >= 5, "restored at {at}");
    assert!(wait_for(Duration::from_secs(20), || count(pid2) > at + 3));
    assert_ne!(ns_link(pid2, "user"), host_ns("user"));
    assert_eq!(proc_status_nums(pid2, "Uid")[0], 100000);
    let null = find_mount(pid2, "/dev/null").expect("/dev/null is a mount in the container");
    assert_eq!(null.fstype, "devtmpfs", "{}", null.line);
    rt.delete_force(&id2).ok();
    rt.assert_no_leftovers(&id2, &b, &[]);
}
