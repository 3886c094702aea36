//! create / start / state / kill / delete / run: state transitions and their effects.
mod common;
use common::*;
use std::time::Duration;

#[test]
fn create_start_kill_delete_transitions() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.config["annotations"] = serde_json::json!({"org.rt-test.key": "value-42"});
    let c = rt.create_ok(&b);

    // created: the init exists, is blocked, and has not exec'd the user process yet
    let st = rt.state(&c.id);
    assert_eq!(st["status"], "created", "state: {st}");
    assert_eq!(st["id"], c.id.as_str());
    assert!(
        pid_alive(c.pid),
        "init {} not alive in created state",
        c.pid
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_ne!(
        cmdline(c.pid),
        vec!["sleep", "1000"],
        "the user process ran before `start`"
    );
    assert!(
        st["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with('1')),
        "{st}"
    );
    assert_eq!(st["bundle"], b.path(), "bundle must be absolute: {st}");
    assert_eq!(st["rootfs"], rootfs().to_str().unwrap(), "{st}");
    assert!(
        st["created"].as_str().is_some_and(is_rfc3339),
        "created is not RFC3339: {st}"
    );
    assert_eq!(st["annotations"]["org.rt-test.key"], "value-42", "{st}");
    assert!(st["owner"].is_string(), "owner missing: {st}");
    assert!(rt.state_dir(&c.id).is_dir(), "no state dir under --root");

    // the init is fully set up already: cgroup, namespaces, rootfs
    assert_eq!(proc_cgroup2(c.pid).as_deref(), Some(b.cgroup.as_str()));
    assert!(cgroup_procs(&b.cgroup).contains(&c.pid));
    for ns in ["net", "uts", "ipc", "mnt", "cgroup"] {
        assert_ne!(
            ns_link(c.pid, ns),
            host_ns(ns),
            "created init not yet in its own {ns} ns"
        );
    }
    assert!(
        find_mount(c.pid, "/proc").is_some(),
        "rootfs not set up at create: {:#?}",
        mountinfo(c.pid)
    );

    // start: exec the user process, status running, same pid
    rt.start(&c.id).ok();
    assert!(
        wait_exec(c.pid, &["sleep", "1000"]),
        "did not exec: {:?}",
        cmdline(c.pid)
    );
    let st = rt.state(&c.id);
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(st["pid"].as_i64(), Some(c.pid as i64));

    // kill -> stopped, pid 0
    rt.kill(&c.id, "KILL").ok();
    rt.assert_status(&c.id, "stopped");
    assert!(wait_for(WAIT, || !pid_alive(c.pid)));
    let st = rt.state(&c.id);
    assert_eq!(
        st["pid"].as_i64(),
        Some(0),
        "stopped container must report pid 0: {st}"
    );

    // delete -> gone, including the state dir and the cgroup (removed by rt itself)
    rt.delete(&c.id).ok();
    rt.cmd(&["state", &c.id])
        .fails_with(&[&format!("container \"{}\" does not exist", c.id)]);
    assert!(!rt.state_dir(&c.id).exists(), "state dir left after delete");
    assert!(
        !b.cgroup_dir().exists(),
        "rt did not remove cgroup {}",
        b.cgroup
    );
}

#[test]
fn start_twice_fails() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.start_ok(&b);
    rt.start(&c.id).fails();
    assert_eq!(rt.status(&c.id).as_deref(), Some("running"));
    assert!(pid_alive(c.pid));
}

#[test]
fn start_of_stopped_container_fails() {
    let rt = Rt::new();
    let b = Bundle::new(&["true"]);
    let c = rt.create_ok(&b);
    rt.start(&c.id).ok();
    rt.assert_status(&c.id, "stopped");
    rt.start(&c.id).fails();
}

#[test]
fn process_exit_makes_container_stopped() {
    let rt = Rt::new();
    let b = Bundle::sh("exit 0");
    let c = rt.create_ok(&b);
    rt.start(&c.id).ok();
    rt.assert_status(&c.id, "stopped");
    assert_eq!(rt.state(&c.id)["pid"].as_i64(), Some(0));
    rt.delete(&c.id).ok();
    assert!(!b.cgroup_dir().exists());
}

#[test]
fn bundle_defaults_to_cwd_and_relative_bundle_is_made_absolute() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    b.save();
    rt.track_cgroup(&b.cgroup);

    // no --bundle: current directory
    let id = rt.new_id();
    let mut c = rt.command(&["create", &id]);
    c.current_dir(&b.dir);
    run_cmd(&mut c).ok();
    assert_eq!(rt.state(&id)["bundle"], b.path());
    rt.delete(&id).ok();

    // relative -b
    let mut b2 = b;
    b2.new_cgroup();
    b2.save();
    rt.track_cgroup(&b2.cgroup);
    let id2 = rt.new_id();
    let name = b2.dir.file_name().unwrap().to_str().unwrap().to_string();
    let mut c = rt.command(&["create", "-b", &name, &id2]);
    c.current_dir(b2.dir.parent().unwrap());
    run_cmd(&mut c).ok();
    assert_eq!(rt.state(&id2)["bundle"], b2.path());
}

#[test]
fn kill_signal_names_and_numbers() {
    let rt = Rt::new();
    let b = Bundle::sh(
        "trap 'echo USR1 >> /tmp/sig' USR1; trap 'echo USR2 >> /tmp/sig' USR2; \
         trap 'echo TERM >> /tmp/sig; exit 0' TERM; echo ready > /tmp/ready; \
         while :; do sleep 0.05; done",
    );
    let c = rt.start_ok(&b);
    assert!(
        wait_for(WAIT, || read_in_container(c.pid, "/tmp/ready").is_some()),
        "container shell never got ready"
    );
    let log = || read_in_container(c.pid, "/tmp/sig").unwrap_or_default();
    let count = |s: &str| log().lines().filter(|l| *l == s).count();

    rt.kill(&c.id, "USR1").ok();
    assert!(
        wait_for(WAIT, || count("USR1") == 1),
        "USR1 not delivered: {:?}",
        log()
    );
    rt.kill(&c.id, "SIGUSR2").ok();
    assert!(
        wait_for(WAIT, || count("USR2") == 1),
        "SIGUSR2 not delivered: {:?}",
        log()
    );
    rt.kill(&c.id, &(libc::SIGUSR1).to_string()).ok();
    assert!(
        wait_for(WAIT, || count("USR1") == 2),
        "signal 10 not delivered: {:?}",
        log()
    );
    assert_eq!(count("TERM"), 0);
    assert_eq!(rt.status(&c.id).as_deref(), Some("running"));

    // default signal is SIGTERM: the trap exits the init
    rt.cmd(&["kill", &c.id]).ok();
    rt.assert_status(&c.id, "stopped");
}

#[test]
fn kill_with_sigkill_forms() {
    for sig in ["KILL", "SIGKILL", "9"] {
        let rt = Rt::new();
        let b = Bundle::new(&["sleep", "1000"]);
        let c = rt.start_ok(&b);
        rt.kill(&c.id, sig).ok();
        rt.assert_status(&c.id, "stopped");
        assert!(
            wait_for(WAIT, || !pid_alive(c.pid)),
            "init survived kill {sig}"
        );
    }
}

#[test]
fn kill_all_signals_every_process_of_the_cgroup() {
    let rt = Rt::new();
    // no pid namespace: killing the init alone would leave the children running
    let mut b = Bundle::sh("sleep 1000 & sleep 1001 & wait");
    b.remove_namespace("pid");
    let c = rt.start_ok(&b);
    assert!(
        wait_for(WAIT, || cgroup_procs(&b.cgroup).len() == 3),
        "expected 3 processes in the cgroup, got {:?}",
        cgroup_procs(&b.cgroup)
    );
    let pids = cgroup_procs(&b.cgroup);
    assert!(pids.contains(&c.pid));
    rt.cmd(&["kill", "--all", &c.id, "KILL"]).ok();
    assert!(
        wait_for(WAIT, || pids.iter().all(|p| !pid_alive(*p))),
        "still alive after kill --all: {:?}",
        pids.iter().filter(|p| pid_alive(**p)).collect::<Vec<_>>()
    );
    rt.assert_status(&c.id, "stopped");
    rt.delete(&c.id).ok();
    assert!(!b.cgroup_dir().exists());
}

#[test]
fn kill_of_stopped_container_fails() {
    let rt = Rt::new();
    let b = Bundle::new(&["true"]);
    let c = rt.create_ok(&b);
    rt.start(&c.id).ok();
    rt.assert_status(&c.id, "stopped");
    rt.kill(&c.id, "KILL")
        .fails_with(&["container not running"]);
    rt.kill(&c.id, "0").fails_with(&["container not running"]);
    // runc 1.4 keeps --all for old callers that kill whatever is left: a stopped container
    // is not an error there.
    rt.cmd(&["kill", "--all", &c.id, "KILL"]).ok();
    rt.assert_status(&c.id, "stopped");
}

/// Signal 0 is kill(2)'s "are you there": it succeeds on a running container, changes
/// nothing, and fails once the container has stopped (what runc does).
#[test]
fn kill_zero_checks_that_the_container_runs() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.start_ok(&b);
    rt.kill(&c.id, "0").ok();
    rt.cmd(&["kill", "--all", &c.id, "0"]).ok();
    rt.assert_status(&c.id, "running");
    assert!(pid_alive(c.pid));
    rt.kill(&c.id, "KILL").ok();
    rt.assert_status(&c.id, "stopped");
    rt.kill(&c.id, "0").fails_with(&["container not running"]);
    rt.kill(&c.id, "65").fails_with(&["invalid signal"]);
}

#[test]
fn delete_of_created_container_kills_it() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.create_ok(&b);
    rt.delete(&c.id).ok();
    assert!(
        wait_for(WAIT, || !pid_alive(c.pid)),
        "init of deleted container still alive"
    );
    assert!(!rt.state_dir(&c.id).exists());
    assert!(!b.cgroup_dir().exists(), "cgroup left after delete");
    rt.cmd(&["state", &c.id]).fails_with(&["does not exist"]);
}

#[test]
fn delete_of_running_container_needs_force() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.start_ok(&b);
    rt.delete(&c.id).fails();
    assert_eq!(rt.status(&c.id).as_deref(), Some("running"));
    assert!(pid_alive(c.pid));
    assert!(b.cgroup_dir().exists());

    rt.delete_force(&c.id).ok();
    assert!(
        wait_for(WAIT, || !pid_alive(c.pid)),
        "init survived delete --force"
    );
    assert!(!rt.state_dir(&c.id).exists());
    assert!(!b.cgroup_dir().exists(), "cgroup left after delete --force");
    rt.cmd(&["state", &c.id]).fails_with(&["does not exist"]);
}

#[test]
fn delete_of_stopped_container() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.start_ok(&b);
    rt.kill(&c.id, "9").ok();
    rt.assert_status(&c.id, "stopped");
    rt.delete(&c.id).ok();
    assert!(!rt.state_dir(&c.id).exists());
    assert!(!b.cgroup_dir().exists());
}

#[test]
fn nonexistent_container_errors() {
    let rt = Rt::new();
    let id = rt.new_id();
    let msg = format!("container \"{id}\" does not exist");
    rt.cmd(&["state", &id]).fails_with(&[&msg]);
    rt.cmd(&["start", &id]).fails_with(&[&msg]);
    rt.cmd(&["kill", &id, "KILL"]).fails_with(&[&msg]);
    rt.cmd(&["delete", &id]).fails_with(&[&msg]);
    rt.cmd(&["ps", &id]).fails_with(&[&msg]);
    assert!(!rt.state_dir(&id).exists());
}

#[test]
fn create_duplicate_id_fails_and_keeps_the_first() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.create_ok(&b);
    let mut b2 = Bundle::new(&["sleep", "1000"]);
    b2.new_cgroup();
    rt.create(&b2, &c.id, &[])
        .fails_with(&[&format!("container \"{}\" already exists", c.id)]);
    let st = rt.state(&c.id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["pid"].as_i64(), Some(c.pid as i64));
    assert_eq!(st["bundle"], b.path());
    assert!(pid_alive(c.pid));
    assert!(!b2.cgroup_dir().exists(), "the failed create left a cgroup");
    let leftovers: Vec<i32> = rt
        .marked_procs()
        .into_iter()
        .filter(|p| *p != c.pid)
        .collect();
    assert!(
        leftovers.is_empty(),
        "failed create left processes {leftovers:?}"
    );
}

#[test]
fn concurrent_create_of_same_id_has_one_winner() {
    let rt = Rt::new();
    for _round in 0..3 {
        let id = rt.new_id();
        let ba = Bundle::new(&["sleep", "1000"]);
        let bb = Bundle::new(&["sleep", "1000"]);
        ba.save();
        bb.save();
        rt.track_cgroup(&ba.cgroup);
        rt.track_cgroup(&bb.cgroup);
        let pa = rt.spawn(&["create", "--bundle", ba.path(), &id]);
        let pb = rt.spawn(&["create", "--bundle", bb.path(), &id]);
        let oa = pa.wait(CMD_TIMEOUT);
        let ob = pb.wait(CMD_TIMEOUT);
        assert!(
            oa.success() != ob.success(),
            "exactly one create must win:\nA: {oa:?}\nB: {ob:?}"
        );
        let (win_b, lose_b, lose_o) = if oa.success() {
            (&ba, &bb, &ob)
        } else {
            (&bb, &ba, &oa)
        };
        assert_eq!(lose_o.code, 1, "loser: {lose_o:?}");
        let st = rt.state(&id);
        assert_eq!(st["status"], "created");
        assert_eq!(st["bundle"], win_b.path());
        let pid = st["pid"].as_i64().unwrap() as i32;
        assert!(pid_alive(pid));
        assert_eq!(proc_cgroup2(pid).as_deref(), Some(win_b.cgroup.as_str()));
        assert!(
            wait_for(WAIT, || !lose_b.cgroup_dir().exists()),
            "loser left its cgroup {}",
            lose_b.cgroup
        );
        assert!(procs_in_cgroup(&lose_b.cgroup).is_empty());
        let others: Vec<i32> = rt
            .marked_procs()
            .into_iter()
            .filter(|p| *p != pid)
            .collect();
        assert!(others.is_empty(), "loser left processes: {others:?}");
        rt.delete(&id).ok();
        assert!(!win_b.cgroup_dir().exists());
    }
}

#[test]
fn pid_file_is_written_before_create_returns() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let pidfile = b.dir.join("init.pid");
    let c = rt.create_ok_with(&b, &["--pid-file", pidfile.to_str().unwrap()]);
    let content = std::fs::read_to_string(&pidfile).expect("pid file not written by create");
    assert_eq!(
        content,
        c.pid.to_string(),
        "pid file must be the decimal pid, no newline"
    );
}

#[test]
fn run_passes_exit_code_through() {
    let rt = Rt::new();
    let b = Bundle::sh("exit 3");
    rt.run_new(&b).code_is(3);
    let b = Bundle::sh("exit 0");
    rt.run_new(&b).code_is(0);
}

#[test]
fn run_reports_128_plus_signal_when_process_killed_itself() {
    let rt = Rt::new();
    // without a pid namespace, so that the shell is not a (signal-protected) pid 1
    let mut b = Bundle::sh("kill -9 $$");
    b.remove_namespace("pid");
    rt.run_new(&b).code_is(137);
}

/// Wait until a process of the cgroup runs `args`; returns its pid.
fn wait_cgroup_exec(cg: &str, args: &[&str]) -> i32 {
    let mut found = 0;
    assert!(
        wait_for(WAIT, || {
            found = cgroup_procs(cg)
                .into_iter()
                .find(|p| cmdline(*p) == args)
                .unwrap_or(0);
            found != 0
        }),
        "no process running {args:?} in cgroup {cg}"
    );
    found
}

#[test]
fn run_reports_128_plus_signal_when_killed_from_outside() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    b.save();
    let id = rt.new_id();
    rt.track_cgroup(&b.cgroup);
    let running = rt.spawn(&["run", "--bundle", b.path(), &id]);
    let pid = wait_cgroup_exec(&b.cgroup, &["sleep", "1000"]);
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let o = running.wait(Duration::from_secs(10));
    o.code_is(137);
    // not --keep: deleted after exit
    rt.cmd(&["state", &id]).fails_with(&["does not exist"]);
    assert!(!b.cgroup_dir().exists());
}

#[test]
fn state_and_kill_work_while_run_is_in_foreground() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    b.save();
    let id = rt.new_id();
    rt.track_cgroup(&b.cgroup);
    let running = rt.spawn(&["run", "--bundle", b.path(), &id]);
    let pid = wait_cgroup_exec(&b.cgroup, &["sleep", "1000"]);
    let st = rt.state(&id);
    assert_eq!(st["status"], "running");
    assert_eq!(st["pid"].as_i64(), Some(pid as i64));
    rt.kill(&id, "KILL").ok();
    running.wait(Duration::from_secs(10)).code_is(137);
}

#[test]
fn run_captures_stdout_and_deletes_container() {
    let rt = Rt::new();
    let b = Bundle::sh("echo hello $((40+2)); echo to-stderr >&2");
    let id = rt.new_id();
    let o = rt.run(&b, &id, &[]);
    o.ok();
    assert_eq!(o.stdout, "hello 42\n");
    assert!(o.stderr.contains("to-stderr"), "stderr: {:?}", o.stderr);
    rt.cmd(&["state", &id]).fails_with(&["does not exist"]);
    assert!(!rt.state_dir(&id).exists());
    assert!(!b.cgroup_dir().exists(), "run left the cgroup");
}

#[test]
fn run_passes_stdin() {
    let rt = Rt::new();
    let b = Bundle::new(&["sh", "-c", "tr a-z A-Z"]);
    b.save();
    rt.track_cgroup(&b.cgroup);
    let input = b.dir.join("stdin.txt");
    std::fs::write(&input, "hello stdin\n").unwrap();
    let id = rt.new_id();
    let mut cmd = rt.command(&["run", "--bundle", b.path(), &id]);
    cmd.stdin(std::fs::File::open(&input).unwrap());
    let o = run_cmd(&mut cmd);
    o.ok();
    assert_eq!(o.stdout, "HELLO STDIN\n");
}

#[test]
fn run_keep_leaves_stopped_container() {
    let rt = Rt::new();
    let b = Bundle::sh("exit 5");
    let id = rt.new_id();
    rt.run(&b, &id, &["--keep"]).code_is(5);
    let st = rt.state(&id);
    assert_eq!(st["status"], "stopped", "{st}");
    assert_eq!(st["pid"].as_i64(), Some(0));
    rt.delete(&id).ok();
    assert!(!rt.state_dir(&id).exists());
    assert!(!b.cgroup_dir().exists());
}

#[test]
fn run_detach_returns_with_running_container() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = rt.new_id();
    let pidfile = b.dir.join("pid");
    let t0 = std::time::Instant::now();
    rt.run(
        &b,
        &id,
        &["--detach", "--pid-file", pidfile.to_str().unwrap()],
    )
    .ok();
    assert!(t0.elapsed() < Duration::from_secs(5));
    let st = rt.state(&id);
    assert_eq!(st["status"], "running", "{st}");
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), pid.to_string());
    assert!(wait_exec(pid, &["sleep", "1000"]));
    rt.kill(&id, "KILL").ok();
    rt.assert_status(&id, "stopped");
    rt.delete(&id).ok();
    assert!(!b.cgroup_dir().exists());

    // short form -d
    let b = Bundle::new(&["sleep", "1000"]);
    let id = rt.new_id();
    rt.run(&b, &id, &["-d"]).ok();
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
}

#[test]
fn cgroup_path_absolute() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.start_ok(&b);
    assert_eq!(proc_cgroup2(c.pid).as_deref(), Some(b.cgroup.as_str()));
    assert!(cgroup_procs(&b.cgroup).contains(&c.pid));
    rt.delete_force(&c.id).ok();
    assert!(!b.cgroup_dir().exists(), "delete must remove {}", b.cgroup);
}

fn join_cg(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// Runs `rt args...` from inside a fresh cgroup `/rt-test-own-*` (as a shell that moves itself
/// there first), so rt's own cgroup differs from the test's; returns that cgroup.
fn rt_in_own_cgroup(rt: &Rt, args: &[&str]) -> (String, Output) {
    let own = format!("/{}", unique("rt-test-own"));
    rt.track_cgroup(&own);
    std::fs::create_dir(cgroup_dir(&own)).unwrap();
    let mut script = format!(
        "echo $$ > {}/cgroup.procs && exec \"$0\" --root {}",
        cgroup_dir(&own).display(),
        rt.root_str()
    );
    for a in args {
        script.push_str(&format!(" '{a}'"));
    }
    let mut c = std::process::Command::new("sh");
    c.arg("-c").arg(script).arg(rt_bin());
    c.stdin(std::process::Stdio::null());
    let o = run_cmd(&mut c);
    (own, o)
}

fn parent_cg(p: &str) -> String {
    match p.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => p[..i].to_string(),
    }
}

/// runc's rule on cgroup v2: a relative cgroupsPath is placed under the *parent* of the
/// runtime's own cgroup (its own has processes, so it can't delegate controllers).
#[test]
fn cgroup_path_relative_is_beside_rt_own_cgroup() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    let rel = unique("rt-test-rel");
    b.linux()["cgroupsPath"] = serde_json::json!(rel);
    b.save();
    let id = rt.new_id();
    let (own, o) = rt_in_own_cgroup(&rt, &["create", "--bundle", b.path(), &id]);
    o.ok();
    b.cgroup = join_cg(&parent_cg(&own), &rel);
    rt.track_cgroup(&b.cgroup);
    let pid = rt.pid(&id);
    assert_eq!(proc_cgroup2(pid).as_deref(), Some(b.cgroup.as_str()));
    assert_ne!(parent_cg(&own), own);
    rt.delete_force(&id).ok();
    assert!(!b.cgroup_dir().exists(), "delete must remove {}", b.cgroup);
}

#[test]
fn cgroup_path_default_is_id_beside_rt_own_cgroup() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.linux().as_object_mut().unwrap().remove("cgroupsPath");
    b.save();
    let id = rt.new_id();
    let (own, o) = rt_in_own_cgroup(&rt, &["create", "--bundle", b.path(), &id]);
    o.ok();
    b.cgroup = join_cg(&parent_cg(&own), &id);
    rt.track_cgroup(&b.cgroup);
    let pid = rt.pid(&id);
    assert_eq!(proc_cgroup2(pid).as_deref(), Some(b.cgroup.as_str()));
    rt.delete(&id).ok();
    assert!(!b.cgroup_dir().exists(), "delete must remove {}", b.cgroup);
}

#[test]
fn no_pivot_runs_in_rootfs() {
    let rt = Rt::new();
    let b = Bundle::sh(
        "ls /; test -e /bin/busybox && echo HAS_BUSYBOX; test -e /work && echo HOST_VISIBLE; true",
    );
    let id = rt.new_id();
    let o = rt.run(&b, &id, &["--no-pivot"]);
    o.ok();
    assert!(o.stdout.contains("HAS_BUSYBOX"), "{}", o.stdout);
    assert!(!o.stdout.contains("HOST_VISIBLE"), "{}", o.stdout);
}

#[test]
fn no_new_keyring_is_accepted() {
    let rt = Rt::new();
    let b = Bundle::sh("echo ok");
    let id = rt.new_id();
    let o = rt.run(&b, &id, &["--no-new-keyring"]);
    o.ok();
    assert_eq!(o.stdout, "ok\n");
}

#[test]
fn kill_of_created_container() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.create_ok(&b);
    rt.kill(&c.id, "KILL").ok();
    rt.assert_status(&c.id, "stopped");
    assert!(wait_for(WAIT, || !pid_alive(c.pid)));
    rt.delete(&c.id).ok();
    assert!(!b.cgroup_dir().exists());
}

#[test]
fn state_notices_init_killed_behind_rts_back() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.start_ok(&b);
    unsafe { libc::kill(c.pid, libc::SIGKILL) };
    rt.assert_status(&c.id, "stopped");
    assert_eq!(rt.state(&c.id)["pid"].as_i64(), Some(0));
    // not running any more: kill fails, delete without --force works
    rt.kill(&c.id, "KILL")
        .fails_with(&["container not running"]);
    rt.delete(&c.id).ok();
    assert!(!b.cgroup_dir().exists());
}

#[test]
fn delete_force_of_created_container() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.create_ok(&b);
    rt.delete_force(&c.id).ok();
    assert!(wait_for(WAIT, || !pid_alive(c.pid)));
    assert!(!rt.state_dir(&c.id).exists());
    assert!(!b.cgroup_dir().exists());
    let o = rt.cmd(&["list", "-q"]);
    o.ok();
    assert_eq!(o.stdout.trim(), "");
}

/// A detached container writes to the stdio `rt create` was given.
#[test]
fn created_container_inherits_create_stdio() {
    let rt = Rt::new();
    let token = unique("stdio-token");
    let b = Bundle::sh(&format!("echo out-{token}; echo err-{token} >&2"));
    b.save();
    rt.track_cgroup(&b.cgroup);
    let id = rt.new_id();
    let out = b.dir.join("create.out");
    let err = b.dir.join("create.err");
    let mut cmd = rt.command(&["create", "--bundle", b.path(), &id]);
    cmd.stdout(std::fs::File::create(&out).unwrap());
    cmd.stderr(std::fs::File::create(&err).unwrap());
    let mut child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + CMD_TIMEOUT;
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("create did not return");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(
        st.success(),
        "create failed: {}",
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    rt.start(&id).ok();
    rt.assert_status(&id, "stopped");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("out-{token}\n")
    );
    assert!(
        std::fs::read_to_string(&err)
            .unwrap()
            .contains(&format!("err-{token}"))
    );
}

/// As runc: `rt run` adopts what its container orphans (a container without a pid namespace
/// of its own: a double fork), unless --no-subreaper leaves them to the host's init.
#[test]
fn run_is_the_subreaper_of_orphans_unless_told_not_to() {
    for no_subreaper in [false, true] {
        let rt = Rt::new();
        let mut b = Bundle::sh(
            "(sleep 30 & echo $! > /tmp/orphan); sleep 0.3; \
             o=$(cat /tmp/orphan); grep PPid /proc/$o/status | cut -f2; kill $o",
        );
        b.remove_namespace("pid");
        b.save();
        rt.track_cgroup(&b.cgroup);
        let id = rt.new_id();
        let mut args = vec!["run", "--bundle", b.path()];
        if no_subreaper {
            args.push("--no-subreaper");
        }
        args.push(&id);
        let s = spawn_cmd(&mut rt.command(&args));
        let rt_pid = s.pid();
        let o = s.wait(Duration::from_secs(20));
        o.ok();
        let ppid: i32 = o.stdout.trim().parse().unwrap_or_else(|_| panic!("{o:?}"));
        assert_eq!(
            ppid == rt_pid,
            !no_subreaper,
            "orphan's parent {ppid}, rt {rt_pid}"
        );
    }
}

/// An error while cleaning up after `rt run` is reported, but the exit status stays the
/// container's (here the state directory can't be removed: a mount sits in it).
#[test]
fn run_keeps_the_containers_exit_status_when_cleanup_fails() {
    let rt = Rt::new();
    let b = Bundle::sh("sleep 0.5; exit 7");
    b.save();
    rt.track_cgroup(&b.cgroup);
    let id = rt.new_id();
    let s = spawn_cmd(&mut rt.command(&["run", "--bundle", b.path(), &id]));
    let blocker = rt.state_dir(&id).join("blocker");
    assert!(wait_for(WAIT, || rt
        .state_dir(&id)
        .join("state.json")
        .exists()));
    std::fs::create_dir(&blocker).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &blocker,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    let o = s.wait(Duration::from_secs(20));
    let _ = nix::mount::umount2(&blocker, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir_all(rt.state_dir(&id));
    o.code_is(7);
    assert!(o.stderr.contains("clean up"), "{o:?}");
}
