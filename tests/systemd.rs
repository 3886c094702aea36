//! systemd passthrough: NOTIFY_SOCKET proxying, LISTEN_FDS socket activation, --pidfd-socket.

mod common;
use common::*;

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::Path;
use std::time::{Duration, Instant};

/// A static C program that sends READY=1 to $NOTIFY_SOCKET after argv[1] ms, then sleeps:
/// busybox has no sd_notify client.
const NOTIFY_C: &str = r#"
#include <sys/socket.h>
#include <sys/un.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    const char *p = getenv("NOTIFY_SOCKET");
    if (!p) return 2;
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    strncpy(a.sun_path, p, sizeof a.sun_path - 1);
    if (argc > 1) usleep(atoi(argv[1]) * 1000);
    if (sendto(fd, "READY=1", 7, 0, (struct sockaddr *)&a, sizeof a) < 0) return 3;
    pause();
    return 0;
}
"#;

fn build_notifier(rootfs: &Path) {
    let src = rootfs.join("notify.c");
    std::fs::write(&src, NOTIFY_C).unwrap();
    let st = std::process::Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(rootfs.join("bin/notify"))
        .arg(&src)
        .status()
        .expect("gcc (installed by make deps)");
    assert!(st.success(), "gcc -static failed");
    std::fs::remove_file(src).unwrap();
}

#[test]
fn notify_socket_ready_is_forwarded_with_mainpid_and_start_waits_for_it() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["/bin/notify", "400"]);
    let rootfs = b.private_rootfs();
    build_notifier(&rootfs);
    let host_sock = b.dir.join("host.sock");
    let host = UnixDatagram::bind(&host_sock).unwrap();
    host.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let sock = host_sock.to_str().unwrap();

    let id = rt.new_id();
    b.save();
    rt.track_cgroup(&b.cgroup);
    let mut c = rt.command(&["create", "--bundle", b.path(), &id]);
    c.env("NOTIFY_SOCKET", sock);
    run_cmd(&mut c).ok();
    let pid = rt.pid(&id);

    let t = Instant::now();
    let mut s = rt.command(&["start", &id]);
    s.env("NOTIFY_SOCKET", sock);
    run_cmd(&mut s).ok();
    // start returns only once the container said READY=1 (after its 400 ms delay).
    assert!(
        t.elapsed() >= Duration::from_millis(350),
        "start returned after {:?}, before the container was ready",
        t.elapsed()
    );
    let mut buf = [0u8; 256];
    let n = host
        .recv(&mut buf)
        .expect("the host socket got a notification");
    let msg = String::from_utf8_lossy(&buf[..n]);
    assert!(msg.contains("READY=1"), "message {msg:?}");
    assert!(
        msg.contains(&format!("MAINPID={pid}")),
        "message {msg:?} (init pid {pid})"
    );
    // Inside, NOTIFY_SOCKET is rt's proxy, not the host's path.
    let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let env = String::from_utf8_lossy(&env);
    assert!(
        env.contains("NOTIFY_SOCKET=/run/notify/notify.sock"),
        "env {env:?}"
    );
    rt.delete_force(&id).ok();
}

#[test]
fn notify_socket_start_fails_when_container_exits_before_ready() {
    let rt = Rt::new();
    let b = Bundle::sh("exit 0");
    let dir = b.dir.clone();
    let host_sock = dir.join("host.sock");
    let _host = UnixDatagram::bind(&host_sock).unwrap();
    let id = rt.new_id();
    b.save();
    rt.track_cgroup(&b.cgroup);
    let mut c = rt.command(&["create", "--bundle", b.path(), &id]);
    c.env("NOTIFY_SOCKET", host_sock.to_str().unwrap());
    run_cmd(&mut c).ok();
    let mut s = rt.command(&["start", &id]);
    s.env("NOTIFY_SOCKET", host_sock.to_str().unwrap());
    run_cmd(&mut s).fails_with(&["READY=1"]);
}

#[test]
fn listen_fds_are_passed_with_listen_env() {
    let rt = Rt::new();
    let b = Bundle::sh("echo \"$LISTEN_FDS $LISTEN_PID\"; cat <&3; ls /proc/self/fd");
    let mut fds = [0; 2];
    // SAFETY: pipe2 into a valid array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds are fresh and ours.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut wf = std::fs::File::from(w);
    std::io::Write::write_all(&mut wf, b"activated\n").unwrap();
    drop(wf);

    b.save();
    rt.track_cgroup(&b.cgroup);
    // LISTEN_PID must name rt itself (systemd's protocol): the shell sets it to its own pid,
    // which rt keeps by exec.
    let run = |listen_pid: &str| {
        let id = rt.new_id();
        let c = rt.command(&["run", "--bundle", b.path(), &id]);
        let rt_cmd: Vec<String> = std::iter::once(c.get_program())
            .chain(c.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let mut sh = std::process::Command::new("/bin/sh");
        sh.arg("-c")
            .arg(format!("LISTEN_PID={listen_pid} exec \"$@\""))
            .arg("sh")
            .args(&rt_cmd);
        for (k, v) in c.get_envs() {
            if let Some(v) = v {
                sh.env(k, v);
            }
        }
        sh.env("LISTEN_FDS", "1").stdin(std::process::Stdio::null());
        pass_fds(&mut sh, &[(r.as_raw_fd(), 3)]);
        run_cmd(&mut sh)
    };
    let o = run("$$");
    o.ok();
    let lines = o.lines();
    assert_eq!(lines[0], "1 1", "LISTEN_FDS/LISTEN_PID inside: {lines:?}");
    assert_eq!(lines[1], "activated");
    // fd 3 was passed; nothing past it (ls itself opens one fd for the directory).
    let fds: Vec<i32> = lines[2..].iter().filter_map(|l| l.parse().ok()).collect();
    assert!(fds.contains(&3), "fds {fds:?}");
    assert!(fds.iter().all(|f| *f <= 4), "unexpected fds {fds:?}");

    // Variables meant for another process (a socket-activated parent's): nothing is passed,
    // and the container is not told it was activated.
    let o = run("1");
    o.ok();
    assert!(!o.stdout.contains("activated"), "{o:?}");
    assert!(!o.stdout.contains("1 1"), "told it was activated: {o:?}");
    // `cat <&3` finds no fd 3 (the 3 ls lists is its own directory).
    assert!(o.stderr.contains("Bad file descriptor"), "{o:?}");
    let fds: Vec<i32> = o.lines().iter().filter_map(|l| l.parse().ok()).collect();
    assert!(fds.iter().all(|f| *f <= 3), "unexpected fds {fds:?}");
}

/// Receives one fd over SCM_RIGHTS from a connection on `l`.
fn receive_fd(l: &UnixListener) -> OwnedFd {
    let (conn, _) = l.accept().unwrap();
    let mut data = [0u8; 64];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: zeroed msghdr, pointers to live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    // SAFETY: valid socket and msghdr.
    let n = unsafe { libc::recvmsg(conn.as_raw_fd(), &mut msg, 0) };
    assert!(n >= 0, "recvmsg failed");
    // SAFETY: reading the header the kernel wrote.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        assert!(!cmsg.is_null(), "no SCM_RIGHTS message");
        assert_eq!((*cmsg).cmsg_type, libc::SCM_RIGHTS);
        OwnedFd::from_raw_fd(std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const i32))
    }
}

fn pidfd_pid(fd: &OwnedFd) -> i32 {
    let mut s = String::new();
    std::fs::File::open(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .map(|p| p.trim().parse().unwrap())
        .expect("fdinfo of a pidfd has Pid:")
}

#[test]
fn pidfd_socket_receives_a_pidfd_of_the_init_and_of_an_exec() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let sock = b.dir.join("pidfd.sock");
    let l = UnixListener::bind(&sock).unwrap();
    let id = rt.new_id();
    let sock_s = sock.to_str().unwrap().to_string();
    let t = std::thread::spawn(move || receive_fd(&l));
    rt.create(&b, &id, &["--pidfd-socket", &sock_s]).ok();
    let fd = t.join().unwrap();
    assert_eq!(pidfd_pid(&fd), rt.pid(&id));
    rt.start(&id).ok();

    std::fs::remove_file(&sock).unwrap();
    let l = UnixListener::bind(&sock).unwrap();
    let t = std::thread::spawn(move || receive_fd(&l));
    let pidfile = b.dir.join("exec.pid");
    rt.cmd(&[
        "exec",
        "-d",
        "--pid-file",
        pidfile.to_str().unwrap(),
        "--pidfd-socket",
        &sock_s,
        &id,
        "sleep",
        "999",
    ])
    .ok();
    let fd = t.join().unwrap();
    let exec_pid: i32 = std::fs::read_to_string(&pidfile).unwrap().parse().unwrap();
    assert_eq!(pidfd_pid(&fd), exec_pid);
    rt.delete_force(&id).ok();
}

#[test]
fn pidfd_socket_that_does_not_exist_fails_create_cleanly() {
    let rt = Rt::new();
    let b = Bundle::new(&["true"]);
    let id = rt.new_id();
    let missing = b.dir.join("nope.sock");
    rt.create(&b, &id, &["--pidfd-socket", missing.to_str().unwrap()])
        .fails_with(&["--pidfd-socket"]);
    rt.assert_no_leftovers(&id, &b, &[]);
}

/// While `start` waits for READY=1 (which this container never sends), the container is not
/// locked: state, ps, events and kill work, and delete --force ends it; start then fails
/// naming READY=1 instead of hanging.
#[test]
fn state_kill_and_delete_work_while_start_waits_for_ready() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let host_sock = b.dir.join("host.sock");
    let _host = UnixDatagram::bind(&host_sock).unwrap();
    let id = rt.new_id();
    b.save();
    rt.track_cgroup(&b.cgroup);
    let mut c = rt.command(&["create", "--bundle", b.path(), &id]);
    c.env("NOTIFY_SOCKET", host_sock.to_str().unwrap());
    run_cmd(&mut c).ok();
    let mut s = rt.command(&["start", &id]);
    s.env("NOTIFY_SOCKET", host_sock.to_str().unwrap());
    let mut start = spawn_cmd(&mut s);
    assert!(
        rt.wait_status(&id, "running", WAIT),
        "the container never ran"
    );
    let quick = Duration::from_secs(5);
    for args in [
        &["state", id.as_str()][..],
        &["ps", id.as_str()],
        &["events", "--stats", id.as_str()],
        &["kill", id.as_str(), "0"],
    ] {
        let o = run_cmd_timeout(&mut rt.command(args), quick);
        o.ok();
    }
    assert!(
        start.try_wait_for(Duration::from_millis(200)).is_none(),
        "start gave up early"
    );
    run_cmd_timeout(&mut rt.command(&["delete", "--force", &id]), quick).ok();
    let o = start.wait(quick);
    o.fails();
    assert!(o.stderr.contains("READY=1"), "{o:?}");
    assert!(!rt.state_dir(&id).exists());
}
