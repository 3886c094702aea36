//! process.terminal + --console-socket: rt sends the pty master over a unix socket.
mod common;
use common::*;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// What the receiver got from the single message on the console socket.
struct Received {
    fds: Vec<OwnedFd>,
    payload: Vec<u8>,
}

/// Listen on `path`; a thread accepts one connection and receives one message with
/// SCM_RIGHTS. The result (or an error string) arrives on the returned channel.
fn console_receiver(path: &Path) -> mpsc::Receiver<Result<Received, String>> {
    let listener = UnixListener::bind(path).expect("bind console socket");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let got = receive_message(&listener).map(|(fds, payload)| Received { fds, payload });
        let _ = tx.send(got);
    });
    rx
}

#[test]
fn console_socket_receives_pty_master() {
    let rt = Rt::new();
    let token = unique("tty-token");
    let mut b = Bundle::sh(&format!(
        "echo {token}; tty; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo ALL-TTY; sleep 0.2"
    ));
    b.process()["terminal"] = serde_json::json!(true);
    let sock = b.dir.join("console.sock");
    let rx = console_receiver(&sock);
    let c = rt.create_ok_with(&b, &["--console-socket", sock.to_str().unwrap()]);
    let got = rx
        .recv_timeout(Duration::from_secs(15))
        .expect("receiver thread died")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        got.fds.len(),
        1,
        "exactly one fd expected, payload {:?}",
        got.payload
    );
    let master = got.fds[0].as_raw_fd();
    assert!(is_pty_master(master), "received fd is not a pty master");

    rt.start(&c.id).ok();
    let out = read_master_until(master, "ALL-TTY", Duration::from_secs(5));
    assert!(
        out.contains(&token),
        "container output via the pty: {out:?}"
    );
    assert!(
        out.contains("/dev/pts/"),
        "tty should be a devpts slave: {out:?}"
    );
    assert!(
        out.contains("ALL-TTY"),
        "stdio not all on the terminal: {out:?}"
    );
    // the pty turns \n into \r\n: proves it went through a terminal
    assert!(out.contains(&format!("{token}\r\n")), "{out:?}");
    rt.assert_status(&c.id, "stopped");
}

#[test]
fn console_input_reaches_the_container() {
    let rt = Rt::new();
    let mut b = Bundle::sh("read line; echo \"got:$line\"");
    b.process()["terminal"] = serde_json::json!(true);
    let sock = b.dir.join("console.sock");
    let rx = console_receiver(&sock);
    let c = rt.create_ok_with(&b, &["--console-socket", sock.to_str().unwrap()]);
    let got = rx
        .recv_timeout(Duration::from_secs(15))
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    let master = got.fds[0].as_raw_fd();
    rt.start(&c.id).ok();
    let line = b"hello-input\n";
    let n = unsafe { libc::write(master, line.as_ptr() as *const libc::c_void, line.len()) };
    assert_eq!(n, line.len() as isize);
    let out = read_master_until(master, "got:hello-input", Duration::from_secs(5));
    assert!(out.contains("got:hello-input"), "{out:?}");
}

#[test]
fn console_init_has_only_the_pty_as_stdio() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.process()["terminal"] = serde_json::json!(true);
    let sock = b.dir.join("console.sock");
    let rx = console_receiver(&sock);
    let c = rt.create_ok_with(&b, &["--console-socket", sock.to_str().unwrap()]);
    let _got = rx
        .recv_timeout(Duration::from_secs(15))
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.start(&c.id).ok();
    assert!(wait_exec(c.pid, &["sleep", "1000"]));
    assert_eq!(proc_fds(c.pid), std::collections::BTreeSet::from([0, 1, 2]));
    // 0, 1, 2 all refer to the same pty slave (same device)
    let rdev = |fd: i32| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/proc/{}/fd/{fd}", c.pid))
            .unwrap()
            .rdev()
    };
    assert_eq!(rdev(0), rdev(1));
    assert_eq!(rdev(1), rdev(2));
    let major = ((rdev(0) >> 8) & 0xfff) | ((rdev(0) >> 32) & !0xfff);
    assert_eq!(major, 136, "stdio is not a pts device");
}

/// As runc: with a non-root process.user the pty slave is that user's (the group stays tty,
/// devpts's gid=5), for the init and for `exec -t`, so the user can use its terminal.
#[test]
fn the_terminal_belongs_to_the_process_user() {
    use std::os::unix::fs::MetadataExt;
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.process()["terminal"] = serde_json::json!(true);
    b.process()["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
    let sock = b.dir.join("console.sock");
    let rx = console_receiver(&sock);
    let c = rt.create_ok_with(&b, &["--console-socket", sock.to_str().unwrap()]);
    let _got = rx
        .recv_timeout(Duration::from_secs(15))
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.start(&c.id).ok();
    assert!(wait_exec(c.pid, &["sleep", "1000"]));
    let owner = |pid: i32| {
        let m = std::fs::metadata(format!("/proc/{pid}/fd/0")).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(owner(c.pid), (1000, 5));

    let sock2 = b.dir.join("exec-console.sock");
    let rx2 = console_receiver(&sock2);
    let pidfile = b.dir.join("exec.pid");
    rt.cmd(&[
        "exec",
        "-t",
        "-d",
        "--console-socket",
        sock2.to_str().unwrap(),
        "--pid-file",
        pidfile.to_str().unwrap(),
        "--user",
        "1001:1001",
        &c.id,
        "sleep",
        "999",
    ])
    .ok();
    let _got2 = rx2
        .recv_timeout(Duration::from_secs(15))
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(wait_exec(pid, &["sleep", "999"]));
    assert_eq!(owner(pid), (1001, 5));
}

#[test]
fn console_socket_that_does_not_exist_fails_cleanly() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.process()["terminal"] = serde_json::json!(true);
    let sock = b.dir.join("no-such.sock");
    let id = rt.new_id();
    rt.create(&b, &id, &["--console-socket", sock.to_str().unwrap()])
        .fails();
    rt.assert_no_leftovers(&id, &b, &[]);
}

#[test]
fn run_detach_with_console_socket() {
    let rt = Rt::new();
    let token = unique("tty-token");
    let mut b = Bundle::sh(&format!("echo {token}; sleep 1000"));
    b.process()["terminal"] = serde_json::json!(true);
    let sock = b.dir.join("console.sock");
    let rx = console_receiver(&sock);
    let id = rt.new_id();
    rt.run(
        &b,
        &id,
        &["--detach", "--console-socket", sock.to_str().unwrap()],
    )
    .ok();
    let got = rx
        .recv_timeout(Duration::from_secs(15))
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.fds.len(), 1);
    let master = got.fds[0].as_raw_fd();
    assert!(is_pty_master(master));
    let out = read_master_until(master, &token, Duration::from_secs(5));
    assert!(out.contains(&token), "{out:?}");
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
}

/// `rt run` of a terminal config without --console-socket, in the foreground on a real
/// pty (`script -qec`): rt relays the container's pty; `tty` names a devpts slave and the
/// exit code passes through.
#[test]
fn run_in_foreground_with_terminal_and_no_console_socket() {
    let rt = Rt::new();
    let token = unique("fg-tty");
    let mut b = Bundle::sh(&format!(
        "tty; [ -t 0 ] && [ -t 1 ] && echo STDIO-TTY; echo {token}; exit 5"
    ));
    b.process()["terminal"] = serde_json::json!(true);
    b.save();
    rt.track_cgroup(&b.cgroup);
    let id = rt.new_id();
    let o = rt.cmd_on_pty(&["run", "--bundle", b.path(), &id]);
    o.code_is(5);
    assert!(o.stdout.contains("/dev/pts/"), "output: {:?}", o.stdout);
    assert!(o.stdout.contains("STDIO-TTY"), "output: {:?}", o.stdout);
    assert!(o.stdout.contains(&token), "output: {:?}", o.stdout);
    assert!(!rt.state_dir(&id).exists(), "run left its state behind");
}

/// process.consoleSize is the pty's size from the start.
#[test]
fn console_size_is_honoured() {
    let rt = Rt::new();
    let mut b = Bundle::sh("stty size; echo SIZE-DONE; sleep 0.2");
    b.process()["terminal"] = serde_json::json!(true);
    b.process()["consoleSize"] = serde_json::json!({"height": 33, "width": 111});
    let sock = b.dir.join("console.sock");
    let rx = console_receiver(&sock);
    let c = rt.create_ok_with(&b, &["--console-socket", sock.to_str().unwrap()]);
    let got = rx
        .recv_timeout(Duration::from_secs(15))
        .expect("receiver thread died")
        .unwrap_or_else(|e| panic!("{e}"));
    rt.start(&c.id).ok();
    let out = read_master_until(got.fds[0].as_raw_fd(), "SIZE-DONE", Duration::from_secs(5));
    assert!(
        out.contains("33 111"),
        "stty size in the container: {out:?}"
    );
}

/// A foreground `rt run` relaying its own pty gives the container the caller's window size,
/// and puts the caller's terminal back as it was.
#[test]
fn foreground_terminal_gets_the_callers_window_size_and_restores_the_terminal() {
    let rt = Rt::new();
    let mut b = Bundle::sh("stty size");
    b.process()["terminal"] = serde_json::json!(true);
    b.save();
    rt.track_cgroup(&b.cgroup);
    let id = rt.new_id();
    let line = format!(
        "stty rows 27 cols 93; stty -g > {dir}/before; {rt} --root {root} run --bundle {b} {id}; \
         stty -g > {dir}/after",
        dir = b.dir.display(),
        rt = rt_bin().display(),
        root = rt.root_str(),
        b = b.path(),
    );
    let o = rt.shell_on_pty(&line);
    assert!(
        o.stdout.contains("27 93"),
        "stty size in the container: {:?}",
        o.stdout
    );
    let before = std::fs::read_to_string(b.dir.join("before")).unwrap();
    let after = std::fs::read_to_string(b.dir.join("after")).unwrap();
    assert_eq!(before, after, "rt left the terminal in another mode");
}

/// SIGWINCH while `rt run` relays the pty: the caller's new window size reaches the
/// container's terminal, whose foreground process gets its own SIGWINCH from the kernel.
#[test]
fn window_size_changes_reach_the_container_while_it_runs() {
    let rt = Rt::new();
    let mut b = Bundle::sh(
        "trap 'stty size; exit 0' WINCH; stty size; i=0; \
         while [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; echo NO-WINCH",
    );
    b.process()["terminal"] = serde_json::json!(true);
    b.save();
    rt.track_cgroup(&b.cgroup);
    let id = rt.new_id();
    let line = format!(
        "stty rows 27 cols 93; {rt} --root {root} run --bundle {b} {id} </dev/tty & pid=$!; \
         sleep 1; stty rows 40 cols 100; kill -WINCH $pid; wait $pid",
        rt = rt_bin().display(),
        root = rt.root_str(),
        b = b.path(),
    );
    let o = rt.shell_on_pty(&line);
    let sizes: Vec<&str> = o
        .stdout
        .lines()
        // A NUL byte sometimes reaches the container's terminal from the outer one under
        // `script` (echoed as ^@); it is not what this test is about.
        .map(|l| l.trim_end_matches('\r').trim_start_matches("^@"))
        .filter(|l| *l == "27 93" || *l == "40 100" || *l == "NO-WINCH")
        .collect();
    assert_eq!(
        sizes,
        ["27 93", "40 100"],
        "container output: {:?}",
        o.stdout
    );
}

/// 10 MiB piped into `run -t` and `exec -t`, with a container that writes back all it reads:
/// the relay must keep taking the container's output while its input waits, or rt and the
/// container each block on a full pty buffer forever.
#[test]
fn ten_mib_through_the_terminal_relay_does_not_deadlock() {
    let mut data = Vec::new();
    let mut i = 0u64;
    while data.len() < 10 << 20 {
        data.extend_from_slice(format!("{i}\n").as_bytes());
        i += 1;
    }
    let n = data.len();
    let script = format!("stty raw -echo; head -c {n}; echo; echo END");
    let rt = Rt::new();
    let mut b = Bundle::sh(&script);
    b.process()["terminal"] = serde_json::json!(true);
    let input = b.dir.join("input");
    std::fs::write(&input, &data).unwrap();
    b.save();
    rt.track_cgroup(&b.cgroup);
    let check = |what: &str, o: &Output| {
        let tail = &data[n - 64..];
        let out = o.stdout.as_bytes();
        assert!(
            out.len() >= n,
            "{what}: {} of {n} bytes came back",
            out.len()
        );
        assert!(
            out.windows(tail.len()).any(|w| w == tail) && o.stdout.contains("END"),
            "{what}: the end of the input never came back"
        );
    };
    let id = rt.new_id();
    let mut c = rt.command(&["run", "--bundle", b.path(), &id]);
    c.stdin(std::fs::File::open(&input).unwrap());
    let o = spawn_cmd(&mut c).wait(Duration::from_secs(120));
    o.ok();
    check("run -t", &o);

    let mut b2 = Bundle::new(&["sleep", "1000"]);
    b2.process()["terminal"] = serde_json::json!(false);
    let c2 = rt.start_ok(&b2);
    let mut c = rt.command(&["exec", "-t", &c2.id, "sh", "-c", &script]);
    c.stdin(std::fs::File::open(&input).unwrap());
    let o = spawn_cmd(&mut c).wait(Duration::from_secs(120));
    o.ok();
    check("exec -t", &o);
}
