//! `rt exec`: runc's contract (flags and `--process FILE`), checked from outside:
//! exit status, stdio, namespaces, cgroup, credentials, env, cwd, fds, ttys.
mod common;
use common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CAP_KILL: u32 = 5;
const CAP_NET_BIND_SERVICE: u32 = 10;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_AUDIT_WRITE: u32 = 29;

/// The template's capability set.
fn template_caps() -> u64 {
    cap_mask(&[CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE])
}

/// A running `sleep 1000` container.
fn sleeper(rt: &Rt) -> (Bundle, Ctr) {
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.start_ok(&b);
    (b, c)
}

/// `rt exec -d --pid-file P [flags] ID args...`; returns the exec'd pid once it exec'd `args`.
#[track_caller]
fn exec_detached(rt: &Rt, b: &Bundle, id: &str, flags: &[&str], args: &[&str]) -> i32 {
    let pid_file = b.dir.join(unique("exec.pid"));
    let mut a = vec!["exec", "--detach", "--pid-file", pid_file.to_str().unwrap()];
    a.extend_from_slice(flags);
    a.push(id);
    a.extend_from_slice(args);
    rt.cmd(&a).ok();
    let pid = read_pid_file(&pid_file);
    assert!(
        wait_exec(pid, args),
        "exec'd pid {pid} did not exec {args:?}; cmdline {:?}",
        cmdline(pid)
    );
    pid
}

fn environ_set(pid: i32) -> BTreeSet<String> {
    proc_environ(pid).into_iter().collect()
}

fn cwd_of(pid: i32) -> String {
    fs::read_link(format!("/proc/{pid}/cwd"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn exit_status_passes_through() {
    let rt = Rt::new();
    let (_b, c) = sleeper(&rt);
    rt.cmd(&["exec", &c.id, "sh", "-c", "exit 7"]).code_is(7);
    rt.cmd(&["exec", &c.id, "true"]).code_is(0);
    rt.cmd(&["exec", &c.id, "false"]).code_is(1);
}

#[test]
fn killed_by_signal_reports_128_plus_n() {
    let rt = Rt::new();
    let (_b, c) = sleeper(&rt);
    rt.cmd(&["exec", &c.id, "sh", "-c", "kill -TERM $$; sleep 5"])
        .code_is(128 + 15);
    rt.cmd(&["exec", &c.id, "sh", "-c", "kill -KILL $$; sleep 5"])
        .code_is(128 + 9);
    // the container itself is unaffected
    assert!(pid_alive(c.pid));
    assert_eq!(rt.status(&c.id).as_deref(), Some("running"));
}

#[test]
fn stdio_passes_through() {
    let rt = Rt::new();
    let (b, c) = sleeper(&rt);
    let input = b.dir.join("stdin.txt");
    fs::write(&input, "hello exec stdin\n").unwrap();
    let mut cmd = rt.command(&["exec", &c.id, "sh", "-c", "tr a-z A-Z; echo to-stderr >&2"]);
    cmd.stdin(fs::File::open(&input).unwrap());
    let o = run_cmd(&mut cmd);
    o.ok();
    assert_eq!(o.stdout, "HELLO EXEC STDIN\n");
    assert!(o.stderr.contains("to-stderr"), "stderr: {:?}", o.stderr);
}

#[test]
fn exec_joins_the_init_namespaces_and_cgroup() {
    let rt = Rt::new();
    let (b, c) = sleeper(&rt);
    let pid = exec_detached(&rt, &b, &c.id, &[], &["sleep", "999"]);
    for ns in ["pid", "mnt", "net", "ipc", "uts", "cgroup"] {
        assert_eq!(
            ns_link(pid, ns),
            ns_link(c.pid, ns),
            "exec'd process is not in the container's {ns} namespace"
        );
        assert_ne!(ns_link(pid, ns), host_ns(ns), "{ns} is the host's");
    }
    assert_eq!(proc_cgroup2(pid).as_deref(), Some(b.cgroup.as_str()));
    assert!(cgroup_procs(&b.cgroup).contains(&pid));
    // same root: the container's rootfs
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/root")).unwrap(),
        fs::read_link(format!("/proc/{}/root", c.pid)).unwrap()
    );
    // inside the container's pid namespace it is not pid 1, and the init is
    let inner: Vec<String> = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("NSpid:"))
        .map(|l| l.to_string())
        .collect();
    let nspid: Vec<i64> = inner[0]
        .split_whitespace()
        .skip(1)
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(nspid.len(), 2, "NSpid: {inner:?}");
    assert_eq!(nspid[0], pid as i64);
    assert!(nspid[1] > 1, "exec'd process is pid {} inside", nspid[1]);
}

#[test]
fn exec_joins_the_user_namespace() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.add_namespace("user", None);
    b.linux()["uidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    b.linux()["gidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    let c = rt.start_ok(&b);
    let pid = exec_detached(&rt, &b, &c.id, &[], &["sleep", "999"]);
    for ns in ["user", "pid", "mnt", "net", "ipc", "uts", "cgroup"] {
        assert_eq!(
            ns_link(pid, ns),
            ns_link(c.pid, ns),
            "{ns} namespace differs"
        );
    }
    assert_ne!(ns_link(pid, "user"), host_ns("user"));
    // container root = host uid 100000
    assert_eq!(proc_status_nums(pid, "Uid"), vec![100000; 4]);
    assert_eq!(proc_status_nums(pid, "Gid"), vec![100000; 4]);
    // and from inside
    let o = rt.cmd(&["exec", &c.id, "sh", "-c", "id -u; id -g"]);
    o.ok();
    assert_eq!(o.stdout, "0\n0\n");
}

#[test]
fn exec_inherits_the_config_process() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.add_env("FROM_CONFIG=yes it is");
    b.process()["cwd"] = json!("/tmp");
    b.process()["user"] = json!({ "uid": 1000, "gid": 1001, "additionalGids": [2000, 2001] });
    let c = rt.start_ok(&b);
    let pid = exec_detached(&rt, &b, &c.id, &[], &["sleep", "999"]);
    assert_eq!(proc_status_nums(pid, "Uid"), vec![1000; 4]);
    assert_eq!(proc_status_nums(pid, "Gid"), vec![1001; 4]);
    let groups: BTreeSet<u64> = proc_status_nums(pid, "Groups").into_iter().collect();
    assert_eq!(groups, BTreeSet::from([2000, 2001]));
    for f in ["CapBnd", "CapPrm", "CapEff", "CapInh", "CapAmb"] {
        assert_eq!(
            proc_caps(pid, f),
            proc_caps(c.pid, f),
            "{f} differs from the init's"
        );
    }
    // (uid 1000 without ambient caps: execve leaves only the bounding set)
    assert_eq!(proc_caps(pid, "CapBnd"), template_caps());
    assert_eq!(proc_status(pid, "NoNewPrivs").as_deref(), Some("1"));
    let env = environ_set(pid);
    assert!(env.contains("FROM_CONFIG=yes it is"), "{env:?}");
    assert!(env.contains("TERM=xterm"), "{env:?}");
    assert!(
        env.iter().any(|e| e.starts_with("PATH=")),
        "no PATH: {env:?}"
    );
    assert!(
        !env.iter().any(|e| e.starts_with(MARKER_VAR)),
        "rt's environment leaked into the exec'd process: {env:?}"
    );
    assert_eq!(cwd_of(pid), "/tmp");
}

#[test]
fn exec_flags_override_the_config_process() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.process()["noNewPrivileges"] = json!(false);
    let c = rt.start_ok(&b);
    assert_eq!(proc_status(c.pid, "NoNewPrivs").as_deref(), Some("0"));
    let pid = exec_detached(
        &rt,
        &b,
        &c.id,
        &[
            "--cwd",
            "/dev/shm",
            "-e",
            "EXTRA=1",
            "--env",
            "TERM=dumb",
            "-u",
            "1234:5678",
            "-g",
            "10,11",
            "--additional-gids",
            "12",
            "--cap",
            "CAP_SYS_ADMIN",
            "--no-new-privs",
        ],
        &["sleep", "999"],
    );
    assert_eq!(proc_status_nums(pid, "Uid"), vec![1234; 4]);
    assert_eq!(proc_status_nums(pid, "Gid"), vec![5678; 4]);
    let groups: BTreeSet<u64> = proc_status_nums(pid, "Groups").into_iter().collect();
    assert_eq!(groups, BTreeSet::from([10, 11, 12]));
    // non-root: only the bounding set survives execve (no ambient caps configured)
    let want = template_caps() | cap_mask(&[CAP_SYS_ADMIN]);
    assert_eq!(proc_caps(pid, "CapBnd"), want, "CapBnd");
    // the container's own process is untouched
    assert_eq!(proc_caps(c.pid, "CapBnd"), template_caps());
    assert_eq!(proc_status(pid, "NoNewPrivs").as_deref(), Some("1"));
    assert_eq!(cwd_of(pid), "/dev/shm");
    let env = proc_environ(pid);
    assert!(env.contains(&"EXTRA=1".to_string()), "{env:?}");
    assert!(env.contains(&"TERM=dumb".to_string()), "{env:?}");
    assert!(env.iter().any(|e| e.starts_with("PATH=")), "{env:?}");
}

/// `-e K=V` for a K the config sets replaces it (runc keeps the last value): the
/// process must not get both, or getenv(3) in C programs finds the config's one first.
#[test]
fn env_flag_replaces_a_config_variable() {
    let rt = Rt::new();
    let (b, c) = sleeper(&rt);
    let pid = exec_detached(&rt, &b, &c.id, &["-e", "TERM=dumb"], &["sleep", "991"]);
    let env = proc_environ(pid);
    let terms: Vec<&String> = env.iter().filter(|e| e.starts_with("TERM=")).collect();
    assert_eq!(
        terms,
        vec!["TERM=dumb"],
        "-e TERM=dumb should replace the config's TERM=xterm: {env:?}"
    );
}

#[test]
fn exec_inherits_root_caps_and_cap_flag_adds() {
    let rt = Rt::new();
    let (b, c) = sleeper(&rt);
    let pid = exec_detached(&rt, &b, &c.id, &[], &["sleep", "993"]);
    for f in ["CapBnd", "CapPrm", "CapEff"] {
        assert_eq!(proc_caps(pid, f), template_caps(), "{f}");
    }
    let pid = exec_detached(
        &rt,
        &b,
        &c.id,
        &["--cap", "CAP_SYS_ADMIN", "--cap", "CAP_CHOWN"],
        &["sleep", "992"],
    );
    let want = template_caps() | cap_mask(&[CAP_SYS_ADMIN, 0]);
    for f in ["CapBnd", "CapPrm", "CapEff"] {
        assert_eq!(proc_caps(pid, f), want, "{f}");
    }
    // As runc: an unknown --cap is left out with one warning; the known ones still apply.
    let o = rt.cmd(&[
        "exec",
        "--cap",
        "CAP_BOGUS",
        "--cap",
        "CAP_SYS_ADMIN",
        &c.id,
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    o.ok();
    assert_eq!(o.stderr.matches("CAP_BOGUS").count(), 1, "{o:?}");
    assert_eq!(
        u64::from_str_radix(o.stdout.trim().trim_start_matches("CapEff:").trim(), 16).ok(),
        Some(template_caps() | cap_mask(&[CAP_SYS_ADMIN])),
        "{o:?}"
    );
}

#[test]
fn user_without_gid_keeps_the_config_gid() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.process()["user"] = json!({ "uid": 0, "gid": 33 });
    let c = rt.start_ok(&b);
    let o = rt.cmd(&["exec", "-u", "4321", &c.id, "sh", "-c", "id -u; id -g"]);
    o.ok();
    assert_eq!(o.stdout, "4321\n33\n");
}

#[test]
fn env_override_is_what_the_process_sees() {
    let rt = Rt::new();
    let (_b, c) = sleeper(&rt);
    let o = rt.cmd(&[
        "exec",
        "-e",
        "TERM=dumb",
        "-e",
        "NEW=v",
        &c.id,
        "sh",
        "-c",
        "echo $TERM $NEW",
    ]);
    o.ok();
    assert_eq!(o.stdout, "dumb v\n");
}

/// A conmon-style exec: `exec --process F --detach --pid-file P ID`.
#[test]
fn process_file_detached_with_pid_file() {
    let rt = Rt::new();
    let (b, c) = sleeper(&rt);
    let proc_file = b.dir.join("process.json");
    let process = json!({
        "terminal": false,
        "user": { "uid": 7, "gid": 8, "additionalGids": [9] },
        "args": ["sleep", "4242"],
        "env": ["PATH=/bin:/usr/bin", "FROM_PROCESS_FILE=1"],
        "cwd": "/dev",
        "capabilities": {
            "bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]
        },
        "noNewPrivileges": true
    });
    fs::write(&proc_file, serde_json::to_vec_pretty(&process).unwrap()).unwrap();
    let pid_file = b.dir.join("exec.pid");
    let t0 = Instant::now();
    rt.cmd(&[
        "exec",
        "--process",
        proc_file.to_str().unwrap(),
        "--detach",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &c.id,
    ])
    .ok();
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "detached exec did not return at once ({:?})",
        t0.elapsed()
    );
    let pid = read_pid_file(&pid_file);
    assert!(wait_exec(pid, &["sleep", "4242"]), "{:?}", cmdline(pid));
    assert!(pid_alive(pid));
    assert_eq!(proc_cgroup2(pid).as_deref(), Some(b.cgroup.as_str()));
    assert_eq!(ns_link(pid, "pid"), ns_link(c.pid, "pid"));
    assert_eq!(ns_link(pid, "mnt"), ns_link(c.pid, "mnt"));
    // the process file, not the config, decides
    assert_eq!(proc_status_nums(pid, "Uid"), vec![7; 4]);
    assert_eq!(proc_status_nums(pid, "Gid"), vec![8; 4]);
    assert_eq!(proc_status_nums(pid, "Groups"), vec![9]);
    assert_eq!(proc_caps(pid, "CapBnd"), cap_mask(&[CAP_KILL]));
    assert_eq!(cwd_of(pid), "/dev");
    let env = environ_set(pid);
    assert!(env.contains("PATH=/bin:/usr/bin"), "{env:?}");
    assert!(env.contains("FROM_PROCESS_FILE=1"), "{env:?}");
    assert!(
        !env.iter()
            .any(|e| e.starts_with("TERM=") || e.starts_with(MARKER_VAR)),
        "env of the process file only: {env:?}"
    );

    // rt ps lists it
    let o = rt.cmd(&["ps", "--format", "json", &c.id]);
    o.ok();
    let v: Value = serde_json::from_str(&o.stdout).expect("ps json");
    let pids: Vec<i64> = v
        .as_array()
        .expect("ps json is an array")
        .iter()
        .map(|p| p.as_i64().expect("pid"))
        .collect();
    assert!(pids.contains(&(pid as i64)), "ps {pids:?} lacks {pid}");
    assert!(pids.contains(&(c.pid as i64)), "ps {pids:?} lacks the init");

    // killing it works and leaves the container running
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        wait_for(WAIT, || !pid_alive(pid)),
        "exec'd process survived SIGKILL"
    );
    assert!(pid_alive(c.pid));
    assert_eq!(rt.status(&c.id).as_deref(), Some("running"));
}

#[test]
fn process_file_foreground_exit_code_and_output() {
    let rt = Rt::new();
    let (b, c) = sleeper(&rt);
    let proc_file = b.dir.join("process.json");
    let process = json!({
        "user": { "uid": 0, "gid": 0 },
        "args": ["sh", "-c", "echo \"$MSG\"; pwd; exit 3"],
        "env": ["PATH=/bin", "MSG=from process file"],
        "cwd": "/proc"
    });
    fs::write(&proc_file, process.to_string()).unwrap();
    let o = rt.cmd(&["exec", "--process", proc_file.to_str().unwrap(), &c.id]);
    o.code_is(3);
    assert_eq!(o.stdout, "from process file\n/proc\n");
}

#[test]
fn pid_file_is_written_before_a_foreground_exec_returns() {
    let rt = Rt::new();
    let (b, c) = sleeper(&rt);
    let pid_file = b.dir.join("fg.pid");
    let o = rt.cmd(&[
        "exec",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &c.id,
        "sh",
        "-c",
        "echo $$",
    ]);
    o.ok();
    let pid = read_pid_file(&pid_file);
    assert!(pid > 0);
    assert_ne!(pid, c.pid);
}

// ---------------------------------------------------------------------------
// terminals

#[test]
fn tty_with_console_socket_sends_the_master() {
    let rt = Rt::new();
    let (b, c) = sleeper(&rt);
    let sock = b.dir.join("exec-console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let token = unique("exec-tty");
    let pid_file = b.dir.join("tty.pid");
    let mut cmd = rt.command(&[
        "exec",
        "-t",
        "--console-socket",
        sock.to_str().unwrap(),
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &c.id,
        "sh",
        "-c",
        &format!("tty; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo ALL-TTY; read x; echo {token}-$x"),
    ]);
    let mut running = spawn_cmd(&mut cmd);
    let fds = receive_console(&listener).unwrap_or_else(|e| panic!("{e}"));
    let o = running
        .try_wait_for(Duration::from_secs(10))
        .expect("exec -d did not return");
    o.ok();
    assert_eq!(fds.len(), 1, "exactly one fd expected");
    let master = fds[0].as_raw_fd();
    assert!(is_pty_master(master), "received fd is not a pty master");
    let pid = read_pid_file(&pid_file);
    let out = read_master_until(master, "ALL-TTY", Duration::from_secs(5));
    assert!(out.contains("/dev/pts/"), "tty output: {out:?}");
    assert!(out.contains("ALL-TTY"), "stdio not all on the pty: {out:?}");
    // input goes through the master
    let line = b"typed\n";
    let n = unsafe { libc::write(master, line.as_ptr() as *const libc::c_void, line.len()) };
    assert_eq!(n, line.len() as isize);
    let out = read_master_until(master, &format!("{token}-typed"), Duration::from_secs(5));
    assert!(out.contains(&format!("{token}-typed")), "{out:?}");
    assert!(wait_for(WAIT, || !pid_alive(pid)));
}

/// conmon's tty exec: `exec --process F --console-socket S --detach --pid-file P ID`
/// with `terminal: true` in the process file.
#[test]
fn process_file_with_terminal_and_console_socket() {
    let rt = Rt::new();
    let (b, c) = sleeper(&rt);
    let sock = b.dir.join("pf-console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let token = unique("pf-tty");
    let proc_file = b.dir.join("process.json");
    let process = json!({
        "terminal": true,
        "user": { "uid": 0, "gid": 0 },
        "args": ["sh", "-c", format!("tty; echo {token}; sleep 0.5")],
        "env": ["PATH=/bin"],
        "cwd": "/"
    });
    fs::write(&proc_file, process.to_string()).unwrap();
    let pid_file = b.dir.join("pf.pid");
    let mut cmd = rt.command(&[
        "exec",
        "--process",
        proc_file.to_str().unwrap(),
        "--console-socket",
        sock.to_str().unwrap(),
        "--detach",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &c.id,
    ]);
    let mut running = spawn_cmd(&mut cmd);
    let fds = receive_console(&listener).unwrap_or_else(|e| panic!("{e}"));
    running
        .try_wait_for(Duration::from_secs(10))
        .expect("exec --detach did not return")
        .ok();
    assert_eq!(fds.len(), 1);
    assert!(is_pty_master(fds[0].as_raw_fd()));
    let pid = read_pid_file(&pid_file);
    assert_eq!(proc_cgroup2(pid).as_deref(), Some(b.cgroup.as_str()));
    let out = read_master_until(fds[0].as_raw_fd(), &token, Duration::from_secs(5));
    assert!(out.contains("/dev/pts/"), "{out:?}");
    assert!(out.contains(&format!("{token}\r\n")), "{out:?}");
}

#[test]
fn tty_in_the_foreground_on_a_real_pty() {
    let rt = Rt::new();
    let (_b, c) = sleeper(&rt);
    let o = rt.cmd_on_pty(&[
        "exec",
        "-t",
        &c.id,
        "sh",
        "-c",
        "tty; [ -t 0 ] && echo STDIN-IS-TTY; exit 4",
    ]);
    o.code_is(4);
    assert!(o.stdout.contains("/dev/pts/"), "output: {:?}", o.stdout);
    assert!(o.stdout.contains("STDIN-IS-TTY"), "output: {:?}", o.stdout);
}

#[test]
fn no_tty_means_stdin_is_not_a_tty() {
    let rt = Rt::new();
    let (_b, c) = sleeper(&rt);
    let o = rt.cmd_on_pty(&["exec", &c.id, "sh", "-c", "tty; true"]);
    o.ok();
    assert!(!o.stdout.contains("/dev/pts/"), "output: {:?}", o.stdout);
}

// ---------------------------------------------------------------------------
// errors

#[test]
fn exec_in_a_stopped_container_fails() {
    let rt = Rt::new();
    let b = Bundle::new(&["true"]);
    let c = rt.create_ok(&b);
    rt.start(&c.id).ok();
    rt.assert_status(&c.id, "stopped");
    rt.cmd(&["exec", &c.id, "true"])
        .exec_fails_with(&["cannot exec in a stopped container"]);
}

/// As runc: an --env without `=` and a relative --cwd are refused, naming the flag, and no
/// process is started.
#[test]
fn malformed_env_and_relative_cwd_are_refused() {
    let rt = Rt::new();
    let (b, c) = sleeper(&rt);
    rt.cmd(&["exec", "-e", "FOO", &c.id, "true"])
        .exec_fails_with(&["--env", "FOO", "KEY=VALUE"]);
    rt.cmd(&["exec", "-e", "=x", &c.id, "true"])
        .exec_fails_with(&["--env", "=x"]);
    rt.cmd(&["exec", "--cwd", "tmp", &c.id, "pwd"])
        .exec_fails_with(&["--cwd", "tmp", "absolute"]);
    assert_eq!(procs_in_cgroup(&b.cgroup), vec![c.pid]);
    // An empty value is a value.
    let o = rt.cmd(&[
        "exec",
        "-e",
        "FOO=",
        &c.id,
        "sh",
        "-c",
        "echo ${FOO-unset}.",
    ]);
    assert_eq!(o.ok().stdout, ".\n");
}

/// `exec --process` gets the checks and refusals of config.json's process (a field create
/// refuses is never silently dropped at exec), and its oomScoreAdj is applied to the exec'd
/// process (which would otherwise keep rt's score).
#[test]
fn process_file_is_checked_as_create_checks_and_gets_its_oom_score() {
    let rt = Rt::new();
    let (b, c) = sleeper(&rt);
    let proc_file = b.dir.join("process.json");
    let base = json!({
        "user": { "uid": 0, "gid": 0 },
        "args": ["sh", "-c", "cat /proc/self/oom_score_adj"],
        "env": ["PATH=/bin"],
        "cwd": "/"
    });
    let exec = |p: &serde_json::Value| {
        fs::write(&proc_file, p.to_string()).unwrap();
        rt.cmd(&["exec", "--process", proc_file.to_str().unwrap(), &c.id])
    };
    for (field, value, needle) in [
        (
            "execCPUAffinity",
            json!({"final": "99999"}),
            "execCPUAffinity.final",
        ),
        ("env", json!(["NOEQ"]), "KEY=VALUE"),
        (
            "rlimits",
            json!([{"type": "RLIMIT_NOFILE", "soft": 200, "hard": 100}]),
            "exceeds",
        ),
    ] {
        let mut p = base.clone();
        p[field] = value;
        exec(&p).exec_fails_with(&["--process", needle]);
    }
    assert_eq!(procs_in_cgroup(&b.cgroup), vec![c.pid]);

    let mut p = base.clone();
    p["oomScoreAdj"] = json!(321);
    assert_eq!(exec(&p).ok().stdout, "321\n");
}

#[test]
fn exec_in_a_nonexistent_container_fails() {
    let rt = Rt::new();
    let id = unique("no-such-ctr");
    rt.cmd(&["exec", &id, "true"])
        .exec_fails_with(&["does not exist"]);
}

#[test]
fn exec_of_a_missing_command_fails_and_leaves_nothing() {
    let rt = Rt::new();
    let (b, c) = sleeper(&rt);
    let o = rt.cmd(&["exec", &c.id, "no-such-command-xyz"]);
    o.fails().code_is(255);
    assert!(
        o.stderr.contains("no-such-command-xyz"),
        "error should name the command: {:?}",
        o.stderr
    );
    assert!(wait_for(WAIT, || procs_in_cgroup(&b.cgroup) == vec![c.pid]));
    assert_eq!(procs_in_cgroup(&b.cgroup), vec![c.pid]);
    assert!(rt.marked_procs().is_empty(), "{:?}", rt.marked_procs());
    // absolute path too
    let o = rt.cmd(&["exec", "-d", &c.id, "/bin/no-such-binary"]);
    o.fails().code_is(255);
    assert!(o.stderr.contains("/bin/no-such-binary"), "{:?}", o.stderr);
    assert_eq!(procs_in_cgroup(&b.cgroup), vec![c.pid]);
    assert_eq!(rt.status(&c.id).as_deref(), Some("running"));
}

#[test]
/// Neither LSM is enabled on this host: asking for a label is a clear error naming the LSM,
/// never a silently unconfined process.
fn apparmor_and_process_label_are_refused() {
    let rt = Rt::new();
    let (b, c) = sleeper(&rt);
    rt.cmd(&["exec", "--apparmor", "unconfined", &c.id, "true"])
        .exec_fails_with(&["AppArmor is not enabled"]);
    rt.cmd(&[
        "exec",
        "--process-label",
        "system_u:system_r:x:s0",
        &c.id,
        "true",
    ])
    .exec_fails_with(&["SELinux is not enabled"]);
    assert_eq!(procs_in_cgroup(&b.cgroup), vec![c.pid]);
}

#[test]
fn ignore_paused_is_accepted() {
    let rt = Rt::new();
    let (_b, c) = sleeper(&rt);
    let o = rt.cmd(&["exec", "--ignore-paused", &c.id, "echo", "ok"]);
    o.ok();
    assert_eq!(o.stdout, "ok\n");
}

// ---------------------------------------------------------------------------
// cgroups, fds, dumpability

#[test]
fn cgroup_flag_runs_in_an_existing_sub_cgroup() {
    let rt = Rt::new();
    let (b, c) = sleeper(&rt);
    fs::create_dir(b.cgroup_dir().join("sub")).unwrap();
    fs::create_dir(b.cgroup_dir().join("sub2")).unwrap();
    let pid = exec_detached(&rt, &b, &c.id, &["--cgroup", "sub"], &["sleep", "998"]);
    assert_eq!(
        proc_cgroup2(pid).as_deref(),
        Some(format!("{}/sub", b.cgroup).as_str())
    );
    let pid2 = exec_detached(
        &rt,
        &b,
        &c.id,
        &["--cgroup", "memory:sub2"],
        &["sleep", "997"],
    );
    assert_eq!(
        proc_cgroup2(pid2).as_deref(),
        Some(format!("{}/sub2", b.cgroup).as_str())
    );
    // the init stays where it was
    assert_eq!(proc_cgroup2(c.pid).as_deref(), Some(b.cgroup.as_str()));
    // delete kills the processes in the sub-cgroups and removes them with the container's
    rt.delete_force(&c.id).ok();
    assert!(
        !b.cgroup_dir().exists(),
        "{} left behind",
        b.cgroup_dir().display()
    );
}

#[test]
fn cgroup_flag_with_missing_or_escaping_sub_cgroup_fails() {
    let rt = Rt::new();
    let (b, c) = sleeper(&rt);
    rt.cmd(&["exec", "--cgroup", "does-not-exist", &c.id, "true"])
        .fails();
    rt.cmd(&["exec", "--cgroup", "../..", &c.id, "true"])
        .fails();
    assert!(!b.cgroup_dir().join("does-not-exist").exists());
    assert_eq!(procs_in_cgroup(&b.cgroup), vec![c.pid]);
}

/// Open a file as an fd the test process owns (CLOEXEC by std).
fn open_fd(p: &Path) -> fs::File {
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(p)
        .unwrap()
}

#[test]
fn exec_process_has_only_stdio_open() {
    let rt = Rt::new();
    let (b, c) = sleeper(&rt);
    let leak: PathBuf = b.dir.join("leak");
    let f = open_fd(&leak);
    let pid_file = b.dir.join("p.pid");
    let mut cmd = rt.command(&[
        "exec",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &c.id,
        "sleep",
        "996",
    ]);
    pass_fds(&mut cmd, &[(f.as_raw_fd(), 3), (f.as_raw_fd(), 7)]);
    run_cmd(&mut cmd).ok();
    let pid = read_pid_file(&pid_file);
    assert!(wait_exec(pid, &["sleep", "996"]));
    assert_eq!(proc_fds(pid), BTreeSet::from([0, 1, 2]));
}

#[test]
fn preserve_fds_passes_the_next_n_fds() {
    let rt = Rt::new();
    let (b, c) = sleeper(&rt);
    let f3 = open_fd(&b.dir.join("three"));
    let f4 = open_fd(&b.dir.join("four"));
    let f5 = open_fd(&b.dir.join("five"));
    let pid_file = b.dir.join("p.pid");
    let mut cmd = rt.command(&[
        "exec",
        "-d",
        "--preserve-fds",
        "2",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &c.id,
        "sleep",
        "995",
    ]);
    pass_fds(
        &mut cmd,
        &[
            (f3.as_raw_fd(), 3),
            (f4.as_raw_fd(), 4),
            (f5.as_raw_fd(), 5),
        ],
    );
    run_cmd(&mut cmd).ok();
    let pid = read_pid_file(&pid_file);
    assert!(wait_exec(pid, &["sleep", "995"]));
    assert_eq!(proc_fds(pid), BTreeSet::from([0, 1, 2, 3, 4]));
    let ino = |p: String| fs::metadata(p).unwrap().ino();
    assert_eq!(
        ino(format!("/proc/{pid}/fd/3")),
        fs::metadata(b.dir.join("three")).unwrap().ino()
    );
    assert_eq!(
        ino(format!("/proc/{pid}/fd/4")),
        fs::metadata(b.dir.join("four")).unwrap().ino()
    );
    // and the process can use them
    let o = {
        let mut cmd = rt.command(&[
            "exec",
            "--preserve-fds",
            "1",
            &c.id,
            "sh",
            "-c",
            "echo via-fd3 >&3",
        ]);
        pass_fds(&mut cmd, &[(f3.as_raw_fd(), 3)]);
        run_cmd(&mut cmd)
    };
    o.ok();
    assert_eq!(
        fs::read_to_string(b.dir.join("three")).unwrap(),
        "via-fd3\n"
    );
}

/// The exec'd process is made non-dumpable while rt sets it up, but after execve it
/// is an ordinary process: its /proc files belong to its own uid.
#[test]
fn exec_process_is_dumpable_after_exec() {
    let rt = Rt::new();
    let (b, c) = sleeper(&rt);
    let pid = exec_detached(&rt, &b, &c.id, &["-u", "1000:1000"], &["sleep", "994"]);
    let st = fs::metadata(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(
        (st.uid(), st.gid()),
        (1000, 1000),
        "/proc/{pid}/status owned by {}:{} (still non-dumpable?)",
        st.uid(),
        st.gid()
    );
}

/// A Ctrl-C that reaches `rt exec` while it is still setting the process up is held and then
/// passed on (exit 130), never killing rt and leaving the process running with nobody waiting
/// for it. The window is made deterministic: the pid file rt writes during setup (through a
/// temporary `.NAME.<rt's pid>`) is a FIFO nobody reads until the signal has been sent.
#[test]
fn sigint_during_exec_setup_is_forwarded_not_fatal() {
    let rt = Rt::new();
    let (b, c) = sleeper(&rt);
    let pid_file = b.dir.join("exec.pid");
    let exec = rt.command(&[
        "exec",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &c.id,
        "sleep",
        "997",
    ]);
    let argv: Vec<String> = std::iter::once(exec.get_program())
        .chain(exec.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut sh = std::process::Command::new("/bin/sh");
    sh.arg("-c")
        .arg(format!(
            "mkfifo {}/.exec.pid.$$ && exec \"$@\"",
            b.dir.display()
        ))
        .arg("sh")
        .args(&argv)
        .stdin(std::process::Stdio::null());
    for (k, v) in exec.get_envs() {
        if let Some(v) = v {
            sh.env(k, v);
        }
    }
    let s = spawn_cmd(&mut sh);
    let rt_pid = s.pid();
    assert!(
        wait_for(WAIT, || procs_in_cgroup(&b.cgroup).len() == 2),
        "the exec'd process never appeared"
    );
    // SAFETY: signalling the rt exec process this test started.
    unsafe { libc::kill(rt_pid, libc::SIGINT) };
    std::thread::sleep(Duration::from_millis(100));
    // Let the pid file write through.
    let fifo = b.dir.join(format!(".exec.pid.{rt_pid}"));
    // Non-blocking: a killed rt (the bug) never opens its end, and the test must not hang.
    use std::os::unix::fs::OpenOptionsExt;
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while std::time::Instant::now() < deadline {
        let mut buf = [0u8; 64];
        match std::io::Read::read(&mut &f, &mut buf) {
            Ok(0) if !got.is_empty() => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("read the pid fifo: {e}"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let o = s.wait(Duration::from_secs(20));
    o.code_is(128 + libc::SIGINT);
    assert!(
        wait_for(WAIT, || procs_in_cgroup(&b.cgroup) == vec![c.pid]),
        "the exec'd process outlived rt exec: {:?}",
        procs_in_cgroup(&b.cgroup)
    );
}

fn cpus_allowed(pid: i32) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string()
}

/// process.execCPUAffinity (runtime-spec 1.3, as runc 1.4): `final` pins the exec'd process
/// once it is in the container's cgroup; without execCPUAffinity neither the init nor an
/// exec'd process keeps the affinity of whoever ran rt (here `taskset -c 0`).
#[test]
fn exec_cpu_affinity_and_no_inherited_pinning() {
    let all = cpus_allowed(std::process::id() as i32);
    if all == "0" {
        return; // one CPU: nothing to tell apart
    }
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    b.save();
    rt.track_cgroup(&b.cgroup);
    let id = rt.new_id();
    let pinned = |args: &[&str]| {
        let c = rt.command(args);
        let mut t = std::process::Command::new("taskset");
        t.args(["-c", "0"]).arg(c.get_program()).args(c.get_args());
        for (k, v) in c.get_envs() {
            if let Some(v) = v {
                t.env(k, v);
            }
        }
        t.stdin(std::process::Stdio::null());
        run_cmd(&mut t)
    };
    pinned(&["run", "-d", "--bundle", b.path(), &id]).ok();
    let init = rt.pid(&id);
    assert_eq!(cpus_allowed(init), all, "the init kept rt's pinning");

    let pid_file = b.dir.join("exec.pid");
    let exec_pid = |flags: &[&str], cmd: &[&str]| {
        let _ = fs::remove_file(&pid_file);
        let mut args = vec!["exec", "-d", "--pid-file", pid_file.to_str().unwrap()];
        args.extend_from_slice(flags);
        args.push(&id);
        args.extend_from_slice(cmd);
        pinned(&args).ok();
        fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse::<i32>()
            .unwrap()
    };
    let plain = exec_pid(&[], &["sleep", "998"]);
    assert_eq!(
        cpus_allowed(plain),
        all,
        "an exec'd process kept rt's pinning"
    );
    let proc_file = b.dir.join("process.json");
    for (affinity, want) in [
        (json!({"initial": "0", "final": "1"}), "1".to_string()),
        (json!({"final": "0-1"}), all.clone()),
    ] {
        let process = json!({
            "user": { "uid": 0, "gid": 0 }, "args": ["sleep", "997"], "cwd": "/",
            "execCPUAffinity": affinity
        });
        fs::write(&proc_file, process.to_string()).unwrap();
        let pid = exec_pid(&["--process", proc_file.to_str().unwrap()], &[]);
        assert_eq!(cpus_allowed(pid), want, "{affinity}");
    }
    // A list that names no CPUs is refused by name.
    let process = json!({
        "user": { "uid": 0, "gid": 0 }, "args": ["true"], "cwd": "/",
        "execCPUAffinity": {"final": "5000000"}
    });
    fs::write(&proc_file, process.to_string()).unwrap();
    rt.cmd(&["exec", "--process", proc_file.to_str().unwrap(), &id])
        .exec_fails_with(&["execCPUAffinity.final"]);
    rt.delete_force(&id).ok();
}
