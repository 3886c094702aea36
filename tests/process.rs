//! The container process: args/PATH, env, cwd, user, umask, rlimits, capabilities,
//! noNewPrivileges, oomScoreAdj, file descriptors.
mod common;
use common::*;
use serde_json::json;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;

#[test]
fn args_are_looked_up_in_container_path() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["mycmd", "arg1"]);
    let host = b.host_dir("pbin");
    let script = host.join("mycmd");
    fs::write(&script, "#!/bin/sh\necho \"from-mycmd $1\"\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    b.add_bind(&host, "/tmp/pbin", &["rbind", "ro"]);
    b.set_env(&["PATH=/tmp/pbin:/bin"]);
    assert_eq!(rt.run_stdout(&b), "from-mycmd arg1\n");
}

#[test]
fn relative_command_found_via_default_path() {
    let rt = Rt::new();
    let b = Bundle::new(&["echo", "via", "path"]);
    assert_eq!(rt.run_stdout(&b), "via path\n");
}

#[test]
fn env_is_exactly_the_configured_one() {
    let rt = Rt::new();
    let mut b = Bundle::sh("echo \"$A|$B|${RT_TEST_MARKER:-unset}|$PATH\"");
    b.set_env(&["PATH=/bin:/sbin", "A=1", "B=hello world"]);
    assert_eq!(rt.run_stdout(&b), "1|hello world|unset|/bin:/sbin\n");
}

#[test]
fn env_from_host_view() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.set_env(&["PATH=/bin", "FOO=bar=baz"]);
    let c = rt.start_ok(&b);
    let env = fs::read(format!("/proc/{}/environ", c.pid)).unwrap();
    let vars: BTreeSet<String> = env
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    assert!(
        vars.contains("PATH=/bin") && vars.contains("FOO=bar=baz"),
        "{vars:?}"
    );
    assert!(
        !vars.iter().any(|v| v.starts_with(MARKER_VAR)),
        "host env leaked: {vars:?}"
    );
}

#[test]
fn cwd() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["pwd"]);
    b.process()["cwd"] = json!("/dev/shm");
    assert_eq!(rt.run_stdout(&b), "/dev/shm\n");
}

/// As runc: the chdir to process.cwd happens while the process is still privileged, so a cwd
/// its user can't search works: a 0700 root-owned cwd for uid 1000, and `exec --user 0` into
/// a container whose cwd only its user (1000) may enter (the container's root has no
/// CAP_DAC_OVERRIDE in the end, but the chdir is done before the capabilities drop).
#[test]
fn cwd_the_user_cannot_search_is_entered_while_privileged() {
    use std::os::unix::fs::chown;
    let rt = Rt::new();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "pwd; id -u; ls . > /dev/null 2>&1 || echo NO-READ",
    ]);
    let rootfs = b.private_rootfs();
    fs::create_dir_all(rootfs.join("private")).unwrap();
    fs::set_permissions(rootfs.join("private"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::create_dir_all(rootfs.join("home/u")).unwrap();
    chown(rootfs.join("home/u"), Some(1000), Some(1000)).unwrap();
    fs::set_permissions(rootfs.join("home/u"), fs::Permissions::from_mode(0o700)).unwrap();
    b.process()["cwd"] = json!("/private");
    b.process()["user"] = json!({ "uid": 1000, "gid": 1000 });
    // In, though the user can't read it afterwards.
    assert_eq!(rt.run_stdout(&b), "/private\n1000\nNO-READ\n");

    b.process()["cwd"] = json!("/home/u");
    b.set_args(&["sleep", "1000"]);
    let c = rt.start_ok(&b);
    let o = rt.cmd(&["exec", "--user", "0", &c.id, "sh", "-c", "pwd; id -u"]);
    assert_eq!(o.ok().stdout, "/home/u\n0\n");
}

/// As runc: the process's stdio becomes its user's, so a non-root process can reopen
/// /dev/stdout (images link their log files there); /dev/null stays root's.
#[test]
fn stdio_belongs_to_the_process_user() {
    let rt = Rt::new();
    let mut b = Bundle::sh(
        "stat -L -c %u /proc/self/fd/1; stat -L -c %u /proc/self/fd/0; \
         echo via-dev-stdout >> /dev/stdout",
    );
    b.process()["user"] = json!({ "uid": 1000, "gid": 1000 });
    let o = rt.run_new(&b);
    o.ok();
    // stdin is /dev/null in the tests. (Appended: the reopened file has its own offset.)
    assert_eq!(o.stdout, "1000\n0\nvia-dev-stdout\n", "{o:?}");
}

#[test]
fn user_uid_gid_and_additional_gids() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.process()["user"] = json!({ "uid": 1000, "gid": 1001, "additionalGids": [2000, 2001] });
    let c = rt.start_ok(&b);
    assert_eq!(proc_status_nums(c.pid, "Uid"), vec![1000; 4]);
    assert_eq!(proc_status_nums(c.pid, "Gid"), vec![1001; 4]);
    let groups: BTreeSet<u64> = proc_status_nums(c.pid, "Groups").into_iter().collect();
    assert_eq!(groups, BTreeSet::from([2000, 2001]));
}

#[test]
fn user_inside_id() {
    let rt = Rt::new();
    let mut b = Bundle::sh("id -u; id -g; id -G");
    b.process()["user"] = json!({ "uid": 1234, "gid": 4321, "additionalGids": [7] });
    let out = rt.run_stdout(&b);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1234");
    assert_eq!(lines[1], "4321");
    let g: BTreeSet<&str> = lines[2].split_whitespace().collect();
    assert!(g.contains("7") && g.contains("4321"), "{out}");
}

#[test]
fn root_user_has_no_supplementary_groups_from_host() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.start_ok(&b);
    assert_eq!(proc_status_nums(c.pid, "Uid"), vec![0; 4]);
    let groups = proc_status_nums(c.pid, "Groups");
    assert!(
        groups.iter().all(|g| *g == 0),
        "unexpected groups {groups:?}"
    );
}

#[test]
fn umask() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.process()["user"]["umask"] = json!(0o027);
    let c = rt.start_ok(&b);
    assert_eq!(proc_status(c.pid, "Umask").as_deref(), Some("0027"));

    let mut b = Bundle::sh("umask; touch /tmp/f; stat -c %a /tmp/f");
    b.process()["user"]["umask"] = json!(0o077);
    assert_eq!(rt.run_stdout(&b), "0077\n600\n");
}

#[test]
fn rlimits() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.process()["rlimits"] = json!([
        { "type": "RLIMIT_NOFILE", "soft": 777, "hard": 888 },
        { "type": "RLIMIT_CORE", "soft": 1234, "hard": 5678 },
        { "type": "RLIMIT_NPROC", "soft": 4321, "hard": 4322 }
    ]);
    let c = rt.start_ok(&b);
    let l = |n| proc_limit(c.pid, n).unwrap_or_else(|| panic!("no {n} in limits"));
    assert_eq!(l("Max open files"), ("777".into(), "888".into()));
    assert_eq!(l("Max core file size"), ("1234".into(), "5678".into()));
    assert_eq!(l("Max processes"), ("4321".into(), "4322".into()));
}

const CAP_CHOWN: u32 = 0;
const CAP_KILL: u32 = 5;
const CAP_NET_BIND_SERVICE: u32 = 10;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_AUDIT_WRITE: u32 = 29;

#[test]
fn capabilities_root_process() {
    let rt = Rt::new();
    // template: bounding = effective = permitted = AUDIT_WRITE, KILL, NET_BIND_SERVICE
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.start_ok(&b);
    let want = cap_mask(&[CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE]);
    assert_eq!(proc_caps(c.pid, "CapBnd"), want, "CapBnd");
    assert_eq!(proc_caps(c.pid, "CapEff"), want, "CapEff");
    assert_eq!(proc_caps(c.pid, "CapPrm"), want, "CapPrm");
    assert_eq!(proc_caps(c.pid, "CapInh"), 0, "CapInh");
    assert_eq!(proc_caps(c.pid, "CapAmb"), 0, "CapAmb");
}

#[test]
fn capabilities_non_root_with_ambient() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.process()["user"] = json!({ "uid": 1000, "gid": 1000 });
    b.process()["capabilities"] = json!({
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"],
        "effective": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    });
    let c = rt.start_ok(&b);
    let amb = cap_mask(&[CAP_KILL, CAP_NET_BIND_SERVICE]);
    assert_eq!(
        proc_caps(c.pid, "CapBnd"),
        cap_mask(&[CAP_CHOWN, CAP_KILL, CAP_NET_BIND_SERVICE, CAP_SYS_ADMIN]),
        "CapBnd"
    );
    assert_eq!(proc_caps(c.pid, "CapInh"), amb, "CapInh");
    assert_eq!(proc_caps(c.pid, "CapAmb"), amb, "CapAmb");
    // exec by a non-root user of a file without file caps: permitted = effective = ambient
    assert_eq!(proc_caps(c.pid, "CapPrm"), amb, "CapPrm");
    assert_eq!(proc_caps(c.pid, "CapEff"), amb, "CapEff");
}

#[test]
fn capabilities_empty_sets() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.process()["capabilities"] = json!({});
    let c = rt.start_ok(&b);
    for f in ["CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"] {
        assert_eq!(proc_caps(c.pid, f), 0, "{f}");
    }
}

#[test]
fn no_new_privileges() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.start_ok(&b);
    assert_eq!(proc_status(c.pid, "NoNewPrivs").as_deref(), Some("1"));

    let mut b = Bundle::new(&["sleep", "1000"]);
    b.process()["noNewPrivileges"] = json!(false);
    let c = rt.start_ok(&b);
    assert_eq!(proc_status(c.pid, "NoNewPrivs").as_deref(), Some("0"));
}

#[test]
fn oom_score_adj() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.process()["oomScoreAdj"] = json!(345);
    let c = rt.start_ok(&b);
    let v = fs::read_to_string(format!("/proc/{}/oom_score_adj", c.pid)).unwrap();
    assert_eq!(v.trim(), "345");
}

#[test]
fn init_has_only_stdio_fds_even_if_rt_inherits_more() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    b.save();
    rt.track_cgroup(&b.cgroup);
    let id = rt.new_id();
    // hand rt two inheritable extra fds (3 and 7) without --preserve-fds
    let f = fs::File::open(b.config_path()).unwrap();
    let mut cmd = rt.command(&["create", "--bundle", b.path(), &id]);
    pass_fds(&mut cmd, &[(raw(&f), 3), (raw(&f), 7)]);
    run_cmd(&mut cmd).ok();
    let pid = rt.pid(&id);
    rt.start(&id).ok();
    assert!(wait_exec(pid, &["sleep", "1000"]));
    assert_eq!(
        proc_fds(pid),
        BTreeSet::from([0, 1, 2]),
        "fds: {:?}",
        fd_targets(pid)
    );
}

fn fd_targets(pid: i32) -> Vec<(i32, String)> {
    proc_fds(pid)
        .into_iter()
        .map(|fd| {
            let t = fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            (fd, t)
        })
        .collect()
}

#[test]
fn run_inside_sees_only_stdio_fds() {
    let rt = Rt::new();
    // ls opens one fd itself to read the directory: expect 0 1 2 and that one
    let b = Bundle::sh("exec ls /proc/self/fd");
    let out = rt.run_stdout(&b);
    let fds: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fds, ["0", "1", "2", "3"], "{out:?}");
}

#[test]
fn preserve_fds_passes_extra_fds() {
    let rt = Rt::new();
    let b = Bundle::sh("cat <&3; cat <&4");
    b.save();
    rt.track_cgroup(&b.cgroup);
    let token3 = unique("token3");
    let token4 = unique("token4");
    fs::write(b.dir.join("f3"), format!("{token3}\n")).unwrap();
    fs::write(b.dir.join("f4"), format!("{token4}\n")).unwrap();
    let f3 = fs::File::open(b.dir.join("f3")).unwrap();
    let f4 = fs::File::open(b.dir.join("f4")).unwrap();
    let id = rt.new_id();
    let mut cmd = rt.command(&["run", "--preserve-fds", "2", "--bundle", b.path(), &id]);
    pass_fds(&mut cmd, &[(raw(&f3), 3), (raw(&f4), 4)]);
    let o = run_cmd(&mut cmd);
    o.ok();
    assert_eq!(o.stdout, format!("{token3}\n{token4}\n"));
}

#[test]
fn preserve_fds_visible_from_host() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    b.save();
    rt.track_cgroup(&b.cgroup);
    let fpath = b.dir.join("f3");
    fs::write(&fpath, "x").unwrap();
    let f3 = fs::File::open(&fpath).unwrap();
    let id = rt.new_id();
    let mut cmd = rt.command(&["create", "--preserve-fds", "1", "--bundle", b.path(), &id]);
    // fd 4 is passed too but not preserved
    pass_fds(&mut cmd, &[(raw(&f3), 3), (raw(&f3), 4)]);
    run_cmd(&mut cmd).ok();
    let pid = rt.pid(&id);
    rt.start(&id).ok();
    assert!(wait_exec(pid, &["sleep", "1000"]));
    assert_eq!(
        proc_fds(pid),
        BTreeSet::from([0, 1, 2, 3]),
        "{:?}",
        fd_targets(pid)
    );
    let t = fs::read_link(format!("/proc/{pid}/fd/3")).unwrap();
    assert_eq!(t, fpath);
}

/// runc's behaviour (issue 17): a process whose env has no HOME gets its user's home from the
/// container's /etc/passwd, or "/" for a uid it doesn't list; a HOME given is kept. The same
/// for exec.
#[test]
fn home_comes_from_the_containers_passwd() {
    let rt = Rt::new();
    for (uid, want) in [(0, "/root"), (65534, "/nonexistent"), (4321, "/")] {
        let mut b = Bundle::sh("echo \"HOME=$HOME\"");
        b.process()["user"] = serde_json::json!({"uid": uid, "gid": uid});
        let out = rt.run_stdout(&b);
        assert_eq!(out.trim(), format!("HOME={want}"), "uid {uid}");
    }
    let mut b = Bundle::sh("echo \"HOME=$HOME\"");
    b.add_env("HOME=/custom");
    assert_eq!(rt.run_stdout(&b).trim(), "HOME=/custom");

    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.start_ok(&b);
    let o = rt.cmd(&["exec", "--user", "65534", &c.id, "sh", "-c", "echo $HOME"]);
    assert_eq!(o.ok().stdout.trim(), "/nonexistent");
    let o = rt.cmd(&["exec", "--env", "HOME=/x", &c.id, "sh", "-c", "echo $HOME"]);
    assert_eq!(o.ok().stdout.trim(), "/x");
    rt.delete_force(&c.id).ok();
}

/// runc's behaviour (issue 17): --preserve-fds N passes the fds of 3..3+N that are open and
/// skips the gaps; and an fd rt opens itself (here the --log file, opened before anything
/// else) never stands in for a missing one.
#[test]
fn preserve_fds_skips_gaps_and_never_passes_rts_own_fds() {
    let rt = Rt::new();
    let b = Bundle::sh(
        "for f in 3 4; do if [ -e /proc/self/fd/$f ]; then readlink /proc/self/fd/$f; else echo none; fi; done; cat <&5",
    );
    b.save();
    rt.track_cgroup(&b.cgroup);
    let token = unique("token5");
    fs::write(b.dir.join("f5"), format!("{token}\n")).unwrap();
    let f5 = fs::File::open(b.dir.join("f5")).unwrap();
    let log = b.dir.join("rt.log");
    let id = rt.new_id();
    let mut cmd = rt.command(&["--log", log.to_str().unwrap(), "run", "--preserve-fds", "3"]);
    cmd.args(["--bundle", b.path(), &id]);
    pass_fds(&mut cmd, &[(raw(&f5), 5)]);
    // fds 3 and 4 free (whatever this test inherited there): the log file takes one of them.
    // SAFETY: close is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::close(3);
            libc::close(4);
            Ok(())
        });
    }
    let o = run_cmd(&mut cmd);
    o.ok();
    assert_eq!(o.stdout, format!("none\nnone\n{token}\n"), "{o:?}");
}

/// sched_getscheduler, the nice value (stat field 19) and ioprio_get of a host pid.
fn sched_of(pid: i32) -> (i64, i64, i64) {
    // SAFETY: plain integer syscalls about another process. The raw syscall: musl's
    // sched_getscheduler wrapper always fails with ENOSYS.
    let policy = unsafe { libc::syscall(libc::SYS_sched_getscheduler, pid) };
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let nice: i64 = after.split(' ').nth(16).unwrap().parse().unwrap();
    // SAFETY: as above; IOPRIO_WHO_PROCESS = 1.
    let io = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, pid) };
    (policy, nice, io)
}

/// runtime-spec 1.3's process.scheduler and process.ioPriority (issue 13), seen from outside:
/// the init's policy, nice value and I/O priority, and an exec'd process's from its own
/// process document.
#[test]
fn scheduler_and_io_priority_apply_to_the_init_and_exec() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.process()["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
    b.process()["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
    let c = rt.start_ok(&b);
    assert_eq!(
        sched_of(c.pid),
        (libc::SCHED_BATCH.into(), 7, (2 << 13) | 6)
    );

    let proc_file = b.dir.join("process.json");
    let process = json!({
        "user": { "uid": 0, "gid": 0 },
        "args": ["sleep", "999"],
        "cwd": "/",
        "scheduler": {"policy": "SCHED_IDLE"},
        "ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 0}
    });
    fs::write(&proc_file, process.to_string()).unwrap();
    let pid_file = b.dir.join("exec.pid");
    rt.cmd(&[
        "exec",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "--process",
        proc_file.to_str().unwrap(),
        &c.id,
    ])
    .ok();
    let pid: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let (policy, _, io) = sched_of(pid);
    assert_eq!((policy, io >> 13), (libc::SCHED_IDLE.into(), 3));

    // What the kernel refuses is an error naming the field, and nothing is left.
    let mut bad = Bundle::new(&["true"]);
    bad.process()["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 9});
    let id = rt.new_id();
    rt.create(&bad, &id, &[])
        .fails_with(&["process.ioPriority"]);
    rt.assert_no_leftovers(&id, &bad, &[]);
    let mut bad = Bundle::new(&["true"]);
    bad.process()["scheduler"] = json!({"policy": "SCHED_FIFO", "priority": 500});
    let id = rt.new_id();
    rt.create(&bad, &id, &[]).fails_with(&["process.scheduler"]);
    rt.assert_no_leftovers(&id, &bad, &[]);
}

/// linux.personality (issue 13): LINUX32 for the init and for exec'd processes, as
/// /proc/PID/personality shows; a flag rt doesn't know is an error naming it.
#[test]
fn personality_applies_to_the_init_and_exec() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.linux()["personality"] = json!({"domain": "LINUX32"});
    let c = rt.start_ok(&b);
    let personality = |pid: i32| fs::read_to_string(format!("/proc/{pid}/personality")).unwrap();
    assert_eq!(personality(c.pid).trim(), "00000008");
    let o = rt.cmd(&["exec", &c.id, "cat", "/proc/self/personality"]);
    assert_eq!(o.ok().stdout.trim(), "00000008");

    let mut bad = Bundle::new(&["true"]);
    bad.linux()["personality"] = json!({"domain": "LINUX", "flags": ["NO_SUCH_FLAG"]});
    let id = rt.new_id();
    rt.create(&bad, &id, &[])
        .fails_with(&["linux.personality", "NO_SUCH_FLAG"]);
    rt.assert_no_leftovers(&id, &bad, &[]);
}

/// linux.memoryPolicy (issue 13): MPOL_BIND to node 0 for the init and exec'd processes, as
/// /proc/PID/numa_maps shows the task policy; a mode without the nodes it needs, and a node
/// this machine lacks, are errors naming the field.
#[test]
fn memory_policy_applies_to_the_init_and_exec() {
    if !std::path::Path::new("/proc/self/numa_maps").exists() {
        return; // a kernel without NUMA support has no memory policies
    }
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.linux()["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"});
    let c = rt.start_ok(&b);
    let maps = fs::read_to_string(format!("/proc/{}/numa_maps", c.pid)).unwrap();
    assert!(maps.contains(" bind:0 "), "{maps}");
    let o = rt.cmd(&[
        "exec",
        &c.id,
        "grep",
        "-c",
        " bind:0 ",
        "/proc/self/numa_maps",
    ]);
    assert_ne!(o.ok().stdout.trim(), "0");

    for (policy, needle) in [
        (json!({"mode": "MPOL_BIND"}), "needs nodes"),
        (
            json!({"mode": "MPOL_LOCAL", "nodes": "0"}),
            "takes no nodes",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "1000"}),
            "set_mempolicy",
        ),
    ] {
        let mut bad = Bundle::new(&["true"]);
        bad.linux()["memoryPolicy"] = policy;
        let id = rt.new_id();
        rt.create(&bad, &id, &[])
            .fails_with(&["linux.memoryPolicy", needle]);
        rt.assert_no_leftovers(&id, &bad, &[]);
    }
}

/// The mount id an fd is on (/proc/PID/fdinfo/FD).
fn fd_mnt_id(pid: u32, fd: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// stdio on the host's /dev/null (a detached container's) is reopened on the container's own
/// /dev/null, as runc does (CRIU can't checkpoint a file of a mount the container can't see).
#[test]
fn stdio_on_the_hosts_dev_null_is_reopened_in_the_container() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.start_ok(&b);
    let host_null = std::fs::File::open("/dev/null").unwrap();
    let host = fd_mnt_id(
        std::process::id(),
        std::os::fd::AsRawFd::as_raw_fd(&host_null),
    );
    for fd in 0..3 {
        let link = std::fs::read_link(format!("/proc/{}/fd/{fd}", c.pid)).unwrap();
        if link.to_str() == Some("/dev/null") {
            assert_ne!(
                fd_mnt_id(c.pid as u32, fd),
                host,
                "fd {fd} is still the host's /dev/null"
            );
        }
    }
    // start_ok's stdin is /dev/null: at least that one was checked.
    let link = std::fs::read_link(format!("/proc/{}/fd/0", c.pid)).unwrap();
    assert_eq!(link.to_str(), Some("/dev/null"));
    rt.delete_force(&c.id).ok();
}

/// A caller that ignores signals (nohup, a shell's `trap '' HUP`) passes that on through exec:
/// the container's process must still start with every disposition at its default and
/// nothing blocked, as runc gives it. Checked from outside in /proc/<pid>/status.
#[test]
fn process_starts_with_default_signals_whatever_the_caller_ignores() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    b.save();
    let id = rt.new_id();
    rt.track_bundle(&b, &id);
    let mut cmd = rt.command(&["create", "--bundle", b.path(), &id]);
    // SAFETY: signal and sigprocmask are async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            // The raw call: libc's signal() refuses the signals the C library keeps (32-34).
            let ignore = [libc::SIG_IGN, 0, 0, 0];
            for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGUSR2, 32, 33, 40, 64] {
                libc::syscall(libc::SYS_rt_sigaction, sig, ignore.as_ptr(), 0usize, 8usize);
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    run_cmd(&mut cmd).ok();
    rt.start(&id).ok();
    let pid = rt.pid(&id);
    assert!(wait_exec(pid, &["sleep", "1000"]), "{:?}", cmdline(pid));
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {status}"))
            .trim()
            .to_string()
    };
    assert_eq!(field("SigIgn:"), "0000000000000000", "{status}");
    assert_eq!(field("SigBlk:"), "0000000000000000", "{status}");
    rt.cmd(&["delete", "-f", &id]).ok();
}
