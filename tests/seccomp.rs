//! linux.seccomp: actions (ERRNO, KILL*, TRAP, TRACE, LOG, ALLOW, NOTIFY), argument
//! conditions, architectures, flags, unknown syscall names, loading with and without
//! noNewPrivileges, `rt exec`, the seccomp agent protocol (listenerPath), and bad profiles.
//!
//! Busybox `sh` needs uname, getpid, ... at startup, so the filters here target syscalls it
//! does not need: mkdir/mkdirat, chmod, rmdir (applets sh forks), sync (run in the shell
//! process itself when it is the script's last command).

mod common;
use common::*;

use serde_json::{Value, json};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// exit status of a command killed by SIGSYS, as the shell (and rt run) report it.
const SIGSYS_STATUS: i32 = 128 + libc::SIGSYS;

fn set_seccomp(b: &mut Bundle, profile: Value) {
    b.linux()["seccomp"] = profile;
}

fn set_nnp(b: &mut Bundle, nnp: bool) {
    b.config["process"]["noNewPrivileges"] = json!(nnp);
}

/// A profile allowing everything except `rules`.
fn allow_but(rules: Value) -> Value {
    json!({ "defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules })
}

const MKDIR: [&str; 2] = ["mkdir", "mkdirat"];

/// Shell snippet: try mkdir, print its error (on stdout) and status.
fn try_mkdir(path: &str) -> String {
    format!("mkdir {path} 2>&1; echo \"mkdir {path} rc=$?\"; ")
}

fn try_rmdir(path: &str) -> String {
    format!("rmdir {path} 2>&1; echo \"rmdir {path} rc=$?\"; ")
}

fn try_chmod(mode: &str, path: &str) -> String {
    format!("chmod {mode} {path} 2>&1; echo \"chmod {mode} rc=$?\"; ")
}

#[track_caller]
fn assert_contains(hay: &str, needle: &str) {
    assert!(
        hay.contains(needle),
        "expected {needle:?} in output:\n{hay}"
    );
}

/// `rt run` the bundle; asserts success and returns stdout.
#[track_caller]
fn run_ok(rt: &Rt, b: &Bundle) -> String {
    let o = rt.run_new(b);
    o.ok();
    o.stdout
}

// ---------------------------------------------------------------------------
// actions

fn errno_with_ret(nnp: bool) {
    let rt = Rt::new();
    // sync is not filtered: it must still work.
    let mut b = Bundle::sh(&format!("{}sync && echo sync-ok", try_mkdir("/tmp/a")));
    set_nnp(&mut b, nnp);
    set_seccomp(
        &mut b,
        allow_but(json!([{ "names": MKDIR, "action": "SCMP_ACT_ERRNO", "errnoRet": 13 }])),
    );
    let out = run_ok(&rt, &b);
    assert_contains(&out, "Permission denied");
    assert_contains(&out, "mkdir /tmp/a rc=1");
    assert_contains(&out, "sync-ok");
}

#[test]
fn errno_action_returns_the_given_errno_with_no_new_privileges() {
    errno_with_ret(true);
}

#[test]
fn errno_action_returns_the_given_errno_without_no_new_privileges() {
    errno_with_ret(false);
}

#[test]
fn errno_action_defaults_to_eperm() {
    let rt = Rt::new();
    let mut b = Bundle::sh(&try_mkdir("/tmp/a"));
    set_seccomp(
        &mut b,
        allow_but(json!([{ "names": MKDIR, "action": "SCMP_ACT_ERRNO" }])),
    );
    let out = run_ok(&rt, &b);
    assert_contains(&out, "Operation not permitted");
    assert_contains(&out, "mkdir /tmp/a rc=1");
}

/// The compiled program is kept in the state root (`@seccomp`) and taken from there by later
/// containers with the same profile, never by one with another profile, and a damaged entry
/// is compiled afresh.
#[test]
fn compiled_profiles_are_cached_per_profile() {
    let rt = Rt::new();
    let cache = Path::new(rt.root_str()).join("@seccomp");
    let entries = || std::fs::read_dir(&cache).map_or(0, |d| d.count());
    let profile = |errno: u32| {
        allow_but(json!([{ "names": MKDIR, "action": "SCMP_ACT_ERRNO", "errnoRet": errno }]))
    };
    let run = |errno: u32| {
        let mut b = Bundle::sh(&try_mkdir("/tmp/a"));
        set_seccomp(&mut b, profile(errno));
        run_ok(&rt, &b)
    };
    assert_contains(&run(13), "Permission denied");
    assert_eq!(entries(), 1, "one entry for the profile");
    assert_contains(&run(13), "Permission denied");
    assert_eq!(
        entries(),
        1,
        "the second container took the first one's program"
    );
    // Another profile: its own program, not the cached one.
    assert_contains(&run(28), "No space left on device");
    assert_eq!(entries(), 2);
    // Entries damaged: compiled again, and right.
    for e in std::fs::read_dir(&cache).unwrap() {
        let p = e.unwrap().path();
        let mut data = std::fs::read(&p).unwrap();
        let n = data.len();
        data[n - 3] ^= 0xff;
        data.truncate(n - 1);
        std::fs::write(&p, data).unwrap();
    }
    assert_contains(&run(13), "Permission denied");
    assert_contains(&run(28), "No space left on device");
    // A cache others may write to is not rt's: neither read nor written.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_contains(&run(1), "Operation not permitted");
    assert_eq!(
        entries(),
        2,
        "nothing written to a cache others may write to"
    );
    let o = rt.cmd(&["list"]);
    o.ok();
    assert!(
        !o.stdout.contains("seccomp"),
        "not a container: {}",
        o.stdout
    );
}

#[test]
fn control_without_seccomp_mkdir_works() {
    // The same script with no linux.seccomp: proves the other tests' failures come from
    // the filter.
    let rt = Rt::new();
    let b = Bundle::sh(&format!(
        "{}{}",
        try_mkdir("/tmp/a"),
        try_chmod("0700", "/tmp/a")
    ));
    let out = run_ok(&rt, &b);
    assert_contains(&out, "mkdir /tmp/a rc=0");
    assert_contains(&out, "chmod 0700 rc=0");
}

fn killed_child(action: &str) {
    let rt = Rt::new();
    let mut b = Bundle::sh(&format!("{}echo still-alive", try_mkdir("/tmp/a")));
    set_seccomp(
        &mut b,
        allow_but(json!([{ "names": MKDIR, "action": action }])),
    );
    let out = run_ok(&rt, &b);
    // The forked mkdir applet dies of SIGSYS; the shell survives and reports 128+31.
    assert_contains(&out, &format!("mkdir /tmp/a rc={SIGSYS_STATUS}"));
    assert_contains(&out, "still-alive");
}

#[test]
fn kill_action_kills_the_caller_with_sigsys() {
    killed_child("SCMP_ACT_KILL");
}

#[test]
fn kill_thread_action_kills_the_caller_with_sigsys() {
    killed_child("SCMP_ACT_KILL_THREAD");
}

#[test]
fn kill_process_action_kills_the_caller_with_sigsys() {
    killed_child("SCMP_ACT_KILL_PROCESS");
}

#[test]
fn trap_action_delivers_sigsys() {
    killed_child("SCMP_ACT_TRAP");
}

#[test]
fn kill_process_on_the_container_init_makes_run_exit_with_sigsys_status() {
    let rt = Rt::new();
    // As the last command, `sync` runs in the shell process (the init) itself.
    let mut b = Bundle::sh("echo before; sync");
    set_seccomp(
        &mut b,
        allow_but(json!([{ "names": ["sync"], "action": "SCMP_ACT_KILL_PROCESS" }])),
    );
    let o = rt.run_new(&b);
    o.code_is(SIGSYS_STATUS);
    assert_contains(&o.stdout, "before");
}

#[test]
fn trace_action_without_a_tracer_fails_the_syscall_with_enosys() {
    let rt = Rt::new();
    let mut b = Bundle::sh(&try_mkdir("/tmp/a"));
    set_seccomp(
        &mut b,
        allow_but(json!([{ "names": MKDIR, "action": "SCMP_ACT_TRACE", "errnoRet": 1 }])),
    );
    let out = run_ok(&rt, &b);
    // No ptracer attached: the kernel fails the syscall with ENOSYS.
    assert_contains(&out, "Function not implemented");
    assert_contains(&out, "mkdir /tmp/a rc=1");
}

#[test]
fn log_and_allow_actions_let_the_syscall_through() {
    let rt = Rt::new();
    let mut b = Bundle::sh(&format!(
        "{}{}{}",
        try_mkdir("/tmp/a"),
        try_chmod("0700", "/tmp/a"),
        try_rmdir("/tmp/a")
    ));
    set_seccomp(
        &mut b,
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                { "names": MKDIR, "action": "SCMP_ACT_LOG" },
                { "names": ["chmod"], "action": "SCMP_ACT_ALLOW" },
                // proves the filter is loaded at all
                { "names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13 }
            ]
        }),
    );
    let out = run_ok(&rt, &b);
    assert_contains(&out, "mkdir /tmp/a rc=0");
    assert_contains(&out, "chmod 0700 rc=0");
    assert_contains(&out, "rmdir /tmp/a rc=1");
    assert_contains(&out, "Permission denied");
}

/// The syscalls a static busybox `sh -c 'echo; mkdir; ...'` needs after rt's final execveat.
const BUSYBOX_ALLOW: &[&str] = &[
    "execve",
    "execveat",
    "arch_prctl",
    "brk",
    "mmap",
    "munmap",
    "mprotect",
    "mremap",
    "set_tid_address",
    "set_robust_list",
    "rseq",
    "prlimit64",
    "getrlimit",
    "readlink",
    "readlinkat",
    "getrandom",
    "uname",
    "getpid",
    "getppid",
    "gettid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getpgrp",
    "getpgid",
    "setpgid",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sigaltstack",
    "prctl",
    "write",
    "writev",
    "read",
    "readv",
    "pread64",
    "exit",
    "exit_group",
    "close",
    "close_range",
    "fcntl",
    "dup",
    "dup2",
    "dup3",
    "open",
    "openat",
    "stat",
    "lstat",
    "fstat",
    "newfstatat",
    "statx",
    "access",
    "faccessat",
    "faccessat2",
    "ioctl",
    "clone",
    "clone3",
    "fork",
    "vfork",
    "wait4",
    "waitid",
    "getcwd",
    "chdir",
    "getdents64",
    "lseek",
    "umask",
    "futex",
    "poll",
    "ppoll",
    "pipe",
    "pipe2",
    "kill",
    "tgkill",
    "nanosleep",
    "clock_nanosleep",
    "clock_gettime",
    "gettimeofday",
    "time",
    "sysinfo",
    "madvise",
];

#[test]
fn default_errno_with_an_allow_list_runs_busybox_and_denies_the_rest() {
    let rt = Rt::new();
    let mut b = Bundle::sh(&format!("echo hello; {}", try_mkdir("/tmp/a")));
    set_seccomp(
        &mut b,
        json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 13,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{ "names": BUSYBOX_ALLOW, "action": "SCMP_ACT_ALLOW" }]
        }),
    );
    let out = run_ok(&rt, &b);
    assert_contains(&out, "hello");
    // mkdir is not in the allow list: defaultErrnoRet (EACCES).
    assert_contains(&out, "Permission denied");
    assert_contains(&out, "mkdir /tmp/a rc=1");
}

#[test]
fn default_errno_without_errno_ret_is_eperm() {
    let rt = Rt::new();
    let mut b = Bundle::sh(&try_mkdir("/tmp/a"));
    set_seccomp(
        &mut b,
        json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{ "names": BUSYBOX_ALLOW, "action": "SCMP_ACT_ALLOW" }]
        }),
    );
    let out = run_ok(&rt, &b);
    assert_contains(&out, "Operation not permitted");
    assert_contains(&out, "mkdir /tmp/a rc=1");
}

// ---------------------------------------------------------------------------
// argument conditions (chmod(path, mode): the mode is argument 1)

fn chmod_script() -> String {
    let mut s = String::from("mkdir /tmp/d; ");
    for m in ["0700", "0750", "0755", "0600"] {
        s.push_str(&try_chmod(m, "/tmp/d"));
    }
    s
}

/// Runs the chmod script under a profile denying chmod (EACCES) when `args` match; returns
/// for each of 0700, 0750, 0755, 0600 whether chmod was denied.
fn chmod_denied(args: Value) -> [bool; 4] {
    let rt = Rt::new();
    let mut b = Bundle::sh(&chmod_script());
    set_seccomp(
        &mut b,
        allow_but(json!([{
            "names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "args": args
        }])),
    );
    let out = run_ok(&rt, &b);
    let mut r = [false; 4];
    for (i, m) in ["0700", "0750", "0755", "0600"].iter().enumerate() {
        if out.contains(&format!("chmod {m} rc=1")) {
            r[i] = true;
        } else {
            assert_contains(&out, &format!("chmod {m} rc=0"));
        }
    }
    if r.iter().any(|d| *d) {
        assert_contains(&out, "Permission denied");
    }
    r
}

#[test]
fn arg_condition_eq() {
    let d = chmod_denied(json!([{ "index": 1, "value": 0o700, "op": "SCMP_CMP_EQ" }]));
    assert_eq!(
        d,
        [true, false, false, false],
        "denied for 0700, 0750, 0755, 0600"
    );
}

#[test]
fn arg_condition_ne() {
    let d = chmod_denied(json!([{ "index": 1, "value": 0o700, "op": "SCMP_CMP_NE" }]));
    assert_eq!(
        d,
        [false, true, true, true],
        "denied for 0700, 0750, 0755, 0600"
    );
}

#[test]
fn arg_conditions_lt_le_gt_ge() {
    let d = chmod_denied(json!([{ "index": 1, "value": 0o750, "op": "SCMP_CMP_LT" }]));
    assert_eq!(d, [true, false, false, true], "LT 0750");
    let d = chmod_denied(json!([{ "index": 1, "value": 0o750, "op": "SCMP_CMP_LE" }]));
    assert_eq!(d, [true, true, false, true], "LE 0750");
    let d = chmod_denied(json!([{ "index": 1, "value": 0o750, "op": "SCMP_CMP_GT" }]));
    assert_eq!(d, [false, false, true, false], "GT 0750");
    let d = chmod_denied(json!([{ "index": 1, "value": 0o750, "op": "SCMP_CMP_GE" }]));
    assert_eq!(d, [false, true, true, false], "GE 0750");
}

#[test]
fn arg_condition_masked_eq_uses_value_as_mask_and_value_two_as_datum() {
    // (mode & 0o077) == 0: no group/other bits -> 0700 and 0600.
    let d = chmod_denied(json!([{
        "index": 1, "value": 0o077, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"
    }]));
    assert_eq!(d, [true, false, false, true], "mask 077 == 0");
    // (mode & 0o070) == 0o050: 0750 and 0755.
    let d = chmod_denied(json!([{
        "index": 1, "value": 0o070, "valueTwo": 0o050, "op": "SCMP_CMP_MASKED_EQ"
    }]));
    assert_eq!(d, [false, true, true, false], "mask 070 == 050");
}

#[test]
fn two_conditions_on_the_same_argument_are_alternatives() {
    let d = chmod_denied(json!([
        { "index": 1, "value": 0o700, "op": "SCMP_CMP_EQ" },
        { "index": 1, "value": 0o755, "op": "SCMP_CMP_EQ" }
    ]));
    assert_eq!(d, [true, false, true, false], "EQ 0700 or EQ 0755");
}

#[test]
fn conditions_on_different_arguments_must_all_hold() {
    // arg 0 (the path pointer) is never 0: AND with it can only narrow the rule.
    let d = chmod_denied(json!([
        { "index": 0, "value": 0, "op": "SCMP_CMP_NE" },
        { "index": 1, "value": 0o700, "op": "SCMP_CMP_EQ" }
    ]));
    assert_eq!(
        d,
        [true, false, false, false],
        "path != NULL && mode == 0700"
    );
    let d = chmod_denied(json!([
        { "index": 0, "value": 0, "op": "SCMP_CMP_EQ" },
        { "index": 1, "value": 0o700, "op": "SCMP_CMP_EQ" }
    ]));
    assert_eq!(
        d,
        [false, false, false, false],
        "path == NULL && mode == 0700"
    );
}

// ---------------------------------------------------------------------------
// profile fields

#[test]
fn architectures_are_accepted() {
    let rt = Rt::new();
    let mut b = Bundle::sh(&try_mkdir("/tmp/a"));
    set_seccomp(
        &mut b,
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{ "names": MKDIR, "action": "SCMP_ACT_ERRNO", "errnoRet": 13 }]
        }),
    );
    let out = run_ok(&rt, &b);
    assert_contains(&out, "Permission denied");
}

#[test]
fn supported_flags_are_accepted() {
    for flags in [
        json!(["SECCOMP_FILTER_FLAG_TSYNC"]),
        json!(["SECCOMP_FILTER_FLAG_LOG"]),
        json!(["SECCOMP_FILTER_FLAG_SPEC_ALLOW"]),
        json!([
            "SECCOMP_FILTER_FLAG_TSYNC",
            "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW"
        ]),
    ] {
        let rt = Rt::new();
        let mut b = Bundle::sh(&try_mkdir("/tmp/a"));
        set_seccomp(
            &mut b,
            json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "flags": flags,
                "syscalls": [{ "names": MKDIR, "action": "SCMP_ACT_ERRNO", "errnoRet": 13 }]
            }),
        );
        let o = rt.run_new(&b);
        assert_eq!(o.code, 0, "flags {flags}: {o:?}");
        assert!(
            o.stdout.contains("Permission denied"),
            "flags {flags}: filter not applied: {o:?}"
        );
    }
}

#[test]
fn wait_killable_recv_flag_is_refused_with_no_leftovers() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["true"]);
    set_seccomp(
        &mut b,
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls": [{ "names": MKDIR, "action": "SCMP_ACT_ERRNO" }]
        }),
    );
    let id = rt.new_id();
    rt.create(&b, &id, &[])
        .fails_with(&["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]);
    rt.assert_no_leftovers(&id, &b, &[]);
}

#[test]
fn unknown_syscall_names_are_skipped() {
    let rt = Rt::new();
    let mut b = Bundle::sh(&format!(
        "{}{}",
        try_mkdir("/tmp/a"),
        try_chmod("0700", "/tmp")
    ));
    set_seccomp(
        &mut b,
        allow_but(json!([
            { "names": ["rt_no_such_syscall", "mkdir", "mkdirat", "another_bogus_one"],
              "action": "SCMP_ACT_ERRNO", "errnoRet": 13 },
            { "names": ["only_unknown_names_here"], "action": "SCMP_ACT_KILL" }
        ])),
    );
    let out = run_ok(&rt, &b);
    assert_contains(&out, "Permission denied");
    assert_contains(&out, "chmod 0700 rc=0");
}

fn bad_profile(profile: Value, needles: &[&str]) {
    let rt = Rt::new();
    let mut b = Bundle::new(&["true"]);
    set_seccomp(&mut b, profile);
    let id = rt.new_id();
    rt.create(&b, &id, &[]).fails_with(needles);
    rt.assert_no_leftovers(&id, &b, &[]);
}

#[test]
fn unknown_action_fails_create_naming_the_file_and_value() {
    bad_profile(
        allow_but(json!([{ "names": MKDIR, "action": "SCMP_ACT_BOGUS" }])),
        &["config.json", "SCMP_ACT_BOGUS"],
    );
}

#[test]
fn unknown_default_action_fails_create() {
    bad_profile(
        json!({ "defaultAction": "SCMP_ACT_NOPE" }),
        &["config.json", "SCMP_ACT_NOPE"],
    );
}

#[test]
fn unknown_operator_fails_create() {
    bad_profile(
        allow_but(json!([{
            "names": ["chmod"], "action": "SCMP_ACT_ERRNO",
            "args": [{ "index": 1, "value": 1, "op": "SCMP_CMP_ALMOST" }]
        }])),
        &["config.json", "SCMP_CMP_ALMOST"],
    );
}

#[test]
fn argument_index_out_of_range_fails_create() {
    bad_profile(
        allow_but(json!([{
            "names": ["chmod"], "action": "SCMP_ACT_ERRNO",
            "args": [{ "index": 6, "value": 1, "op": "SCMP_CMP_EQ" }]
        }])),
        &["index"],
    );
}

// ---------------------------------------------------------------------------
// /proc view, exec

fn own_filters() -> u64 {
    proc_status(std::process::id() as i32, "Seccomp_filters")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn status_shows_filter(nnp: bool) {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    set_nnp(&mut b, nnp);
    set_seccomp(
        &mut b,
        allow_but(json!([{ "names": MKDIR, "action": "SCMP_ACT_ERRNO" }])),
    );
    let c = rt.start_ok(&b);
    assert_eq!(
        proc_status(c.pid, "Seccomp").as_deref(),
        Some("2"),
        "Seccomp mode of the init (noNewPrivileges {nnp})"
    );
    let n: u64 = proc_status(c.pid, "Seccomp_filters")
        .expect("Seccomp_filters")
        .parse()
        .unwrap();
    assert_eq!(
        n,
        own_filters() + 1,
        "one filter more than the test runner has"
    );
    assert_eq!(
        proc_status(c.pid, "NoNewPrivs").as_deref(),
        Some(if nnp { "1" } else { "0" }),
        "NoNewPrivs follows process.noNewPrivileges"
    );
    rt.delete_force(&c.id).ok();
}

#[test]
fn proc_status_shows_the_filter_with_no_new_privileges() {
    status_shows_filter(true);
}

#[test]
fn proc_status_shows_the_filter_without_no_new_privileges() {
    status_shows_filter(false);
}

#[test]
fn without_seccomp_the_init_is_not_filtered() {
    if own_filters() > 0 {
        eprintln!("skipped: the test runner itself is under seccomp");
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.start_ok(&b);
    assert_eq!(proc_status(c.pid, "Seccomp").as_deref(), Some("0"));
    rt.delete_force(&c.id).ok();
}

#[test]
fn exec_processes_get_the_container_profile() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    set_seccomp(
        &mut b,
        allow_but(json!([{ "names": MKDIR, "action": "SCMP_ACT_ERRNO", "errnoRet": 13 }])),
    );
    let c = rt.start_ok(&b);
    let o = rt.cmd(&[
        "exec",
        &c.id,
        "/bin/sh",
        "-c",
        &format!("{}grep Seccomp /proc/self/status", try_mkdir("/tmp/e")),
    ]);
    o.ok();
    assert_contains(&o.stdout, "Permission denied");
    assert_contains(&o.stdout, "mkdir /tmp/e rc=1");
    assert!(
        o.stdout
            .lines()
            .any(|l| l.starts_with("Seccomp:") && l.ends_with('2')),
        "exec'd process is not in seccomp filter mode:\n{}",
        o.stdout
    );
    // detached exec: checked from outside
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
    let epid = read_pid_file(&pidfile);
    assert_eq!(proc_status(epid, "Seccomp").as_deref(), Some("2"));
    rt.delete_force(&c.id).ok();
}

// ---------------------------------------------------------------------------
// NOTIFY and the seccomp agent

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct SeccompData {
    nr: i32,
    arch: u32,
    instruction_pointer: u64,
    args: [u64; 6],
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct SeccompNotif {
    id: u64,
    pid: u32,
    flags: u32,
    data: SeccompData,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct SeccompNotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

const SECCOMP_IOCTL_NOTIF_RECV: u64 = 0xc050_2100;
const SECCOMP_IOCTL_NOTIF_SEND: u64 = 0xc018_2101;
const SECCOMP_USER_NOTIF_FLAG_CONTINUE: u32 = 1;

#[derive(Clone, Copy)]
enum Reply {
    /// fail the syscall with this errno
    Errno(i32),
    /// let the syscall run
    Continue,
}

#[derive(Debug, Default)]
struct AgentReport {
    /// The JSON message, if one arrived.
    msg: Option<Value>,
    /// Number of fds that came with it.
    nfds: usize,
    /// Syscall numbers of the notifications answered.
    answered: Vec<i64>,
    errors: Vec<String>,
    /// connections accepted
    connections: usize,
}

/// A seccomp agent: accepts connections at a unix socket path, reads the state message and
/// the notify fd, and answers every notification with `reply` until stopped. Never blocks
/// for long: every wait has a timeout, so a broken runtime can't hang the test.
struct Agent {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<AgentReport>>,
}

impl Agent {
    fn start(path: &Path, reply: Reply) -> Agent {
        let l = UnixListener::bind(path).expect("bind the agent socket");
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || agent_main(l, s, reply));
        Agent {
            stop,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> AgentReport {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.take().unwrap().join().expect("agent thread")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// recvmsg one message with up to 8 fds.
fn recv_with_fds(sock: RawFd) -> Result<(Vec<u8>, Vec<OwnedFd>), String> {
    let mut data = vec![0u8; 1 << 16];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut cbuf = [0u64; 32];
    // SAFETY: zeroed msghdr, pointers to live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    // SAFETY: valid socket and msghdr.
    let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(format!("recvmsg: {}", std::io::Error::last_os_error()));
    }
    data.truncate(n as usize);
    let mut fds = Vec::new();
    // SAFETY: walking the control messages the kernel wrote.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let len = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let p = libc::CMSG_DATA(cmsg) as *const i32;
                for i in 0..len / 4 {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(p.add(i))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err("control data truncated".into());
    }
    Ok((data, fds))
}

fn agent_main(l: UnixListener, stop: Arc<AtomicBool>, reply: Reply) -> AgentReport {
    let mut rep = AgentReport::default();
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut notify_fds: Vec<OwnedFd> = Vec::new();
    loop {
        if Instant::now() >= deadline {
            rep.errors.push("agent deadline reached".into());
            break;
        }
        // new connections
        match l.accept() {
            Ok((conn, _)) => {
                rep.connections += 1;
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(3)));
                match recv_with_fds(conn.as_raw_fd()) {
                    Ok((mut data, fds)) => {
                        // the message may (in theory) arrive in pieces: read until EOF if
                        // it does not parse yet
                        if serde_json::from_slice::<Value>(&data).is_err() {
                            use std::io::Read;
                            let mut rest = Vec::new();
                            let _ = (&conn).read_to_end(&mut rest);
                            data.extend_from_slice(&rest);
                        }
                        match serde_json::from_slice::<Value>(&data) {
                            Ok(v) => rep.msg = Some(v),
                            Err(e) => rep.errors.push(format!(
                                "message is not JSON ({e}): {:?}",
                                String::from_utf8_lossy(&data)
                            )),
                        }
                        rep.nfds += fds.len();
                        notify_fds.extend(fds);
                    }
                    Err(e) => rep.errors.push(e),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => rep.errors.push(format!("accept: {e}")),
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
        if notify_fds.is_empty() {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let mut pfds: Vec<libc::pollfd> = notify_fds
            .iter()
            .map(|f| libc::pollfd {
                fd: f.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: poll on a live array.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 20) };
        if n <= 0 {
            continue;
        }
        for p in &pfds {
            if p.revents & libc::POLLIN == 0 {
                continue;
            }
            let mut req = SeccompNotif::default();
            // SAFETY: the kernel fills the zeroed struct.
            let r = unsafe { libc::ioctl(p.fd, SECCOMP_IOCTL_NOTIF_RECV as _, &mut req) };
            if r < 0 {
                // e.g. ENOENT: the caller died meanwhile
                continue;
            }
            let mut resp = SeccompNotifResp {
                id: req.id,
                ..Default::default()
            };
            match reply {
                Reply::Errno(e) => resp.error = -e,
                Reply::Continue => resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE,
            }
            // SAFETY: a response for the notification we just received.
            let r = unsafe { libc::ioctl(p.fd, SECCOMP_IOCTL_NOTIF_SEND as _, &mut resp) };
            if r < 0 {
                rep.errors
                    .push(format!("NOTIF_SEND: {}", std::io::Error::last_os_error()));
            }
            rep.answered.push(req.data.nr as i64);
        }
        // A notify fd whose processes are all gone reports POLLHUP: keep it anyway (cheap),
        // the loop ends at `stop` or the deadline.
        if pfds.iter().all(|p| p.revents & libc::POLLHUP != 0) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    rep
}

fn notify_profile(sock: &Path) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock.to_str().unwrap(),
        "listenerMetadata": "rt-test-agent-metadata",
        "syscalls": [{ "names": MKDIR, "action": "SCMP_ACT_NOTIFY" }]
    })
}

/// A bundle whose script writes its results to a host directory (bind-mounted at /tmp/out):
/// with create + start, the container's stdout is not ours to read.
fn bundle_with_outdir(script: &str) -> (Bundle, PathBuf) {
    let mut b = Bundle::sh(&format!(
        "{{ {script}\n}} >/tmp/out/result 2>&1; echo done >/tmp/out/done"
    ));
    let out = b.host_dir("out");
    b.add_bind(&out, "/tmp/out", &["rbind", "rw"]);
    (b, out)
}

/// The container's result once it wrote `done` (None on timeout).
fn wait_result(out: &Path) -> Option<String> {
    let done = out.join("done");
    let finished = wait_for(WAIT, || done.exists());
    let result = std::fs::read_to_string(out.join("result")).unwrap_or_default();
    finished.then_some(result)
}

fn notify_agent_answers(nnp: bool) {
    let rt = Rt::new();
    let (mut b, out) = bundle_with_outdir(&format!("{}echo after", try_mkdir("/tmp/n")));
    set_nnp(&mut b, nnp);
    let sock = b.dir.join("agent.sock");
    set_seccomp(&mut b, notify_profile(&sock));
    let agent = Agent::start(&sock, Reply::Errno(libc::EROFS));
    let id = rt.new_id();
    rt.create(&b, &id, &[]).ok();
    let pid = rt.pid(&id);
    rt.start(&id).ok();
    let result = wait_result(&out);
    let rep = agent.finish();
    let result = result.unwrap_or_else(|| {
        panic!(
            "the container did not finish; result so far: {:?}; agent: {rep:?}",
            std::fs::read_to_string(out.join("result")).unwrap_or_default()
        )
    });

    assert!(rep.errors.is_empty(), "agent errors: {:?}", rep.errors);
    assert_eq!(rep.connections, 1, "one connection to listenerPath");
    let msg = rep.msg.expect("the agent got a message");
    assert_eq!(msg["fds"], json!(["seccompFd"]), "message {msg}");
    assert_eq!(rep.nfds, 1, "exactly one fd with the message");
    assert_eq!(msg["pid"], json!(pid), "pid is the init's host pid: {msg}");
    assert_eq!(
        msg["metadata"],
        json!("rt-test-agent-metadata"),
        "message {msg}"
    );
    assert_eq!(msg["state"]["id"], json!(id), "message {msg}");
    assert!(msg["ociVersion"].is_string(), "message {msg}");
    assert!(msg["state"]["ociVersion"].is_string(), "message {msg}");
    assert!(
        msg["state"]["bundle"].as_str() == Some(b.path()),
        "state.bundle: {msg}"
    );

    assert!(
        !rep.answered.is_empty(),
        "no notification reached the agent"
    );
    assert!(
        rep.answered
            .iter()
            .all(|nr| *nr == libc::SYS_mkdir || *nr == libc::SYS_mkdirat),
        "notified syscalls {:?}",
        rep.answered
    );
    assert_contains(&result, "Read-only file system");
    assert_contains(&result, "mkdir /tmp/n rc=1");
    assert_contains(&result, "after");
}

#[test]
fn notify_sends_the_fd_to_the_agent_which_answers_with_nnp() {
    notify_agent_answers(true);
}

#[test]
fn notify_sends_the_fd_to_the_agent_which_answers_without_nnp() {
    notify_agent_answers(false);
}

#[test]
fn notify_agent_can_let_the_syscall_continue() {
    let rt = Rt::new();
    let (mut b, out) = bundle_with_outdir(&format!(
        "{}test -d /tmp/n && echo exists",
        try_mkdir("/tmp/n")
    ));
    let sock = b.dir.join("agent.sock");
    set_seccomp(&mut b, notify_profile(&sock));
    let agent = Agent::start(&sock, Reply::Continue);
    let id = rt.new_id();
    rt.create(&b, &id, &[]).ok();
    rt.start(&id).ok();
    let result = wait_result(&out);
    let rep = agent.finish();
    let result = result.unwrap_or_else(|| {
        panic!(
            "the container did not finish; result so far: {:?}; agent: {rep:?}",
            std::fs::read_to_string(out.join("result")).unwrap_or_default()
        )
    });
    assert!(rep.errors.is_empty(), "agent errors: {:?}", rep.errors);
    assert!(
        !rep.answered.is_empty(),
        "no notification reached the agent"
    );
    assert_contains(&result, "mkdir /tmp/n rc=0");
    assert_contains(&result, "exists");
}

#[test]
fn notify_with_exec_hands_the_exec_fd_to_the_agent() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    let sock = b.dir.join("agent.sock");
    set_seccomp(&mut b, notify_profile(&sock));
    let agent = Agent::start(&sock, Reply::Errno(libc::EROFS));
    let c = rt.start_ok(&b);
    let o = rt.cmd(&["exec", &c.id, "/bin/sh", "-c", &try_mkdir("/tmp/x")]);
    let rep = agent.finish();
    o.ok();
    assert!(rep.errors.is_empty(), "agent errors: {:?}", rep.errors);
    assert_eq!(
        rep.connections, 2,
        "one connection for the init, one for the exec"
    );
    assert_eq!(rep.nfds, 2);
    assert!(
        !rep.answered.is_empty(),
        "no notification reached the agent"
    );
    assert_contains(&o.stdout, "Read-only file system");
    rt.delete_force(&c.id).ok();
}

#[test]
fn notify_without_listener_path_fails_create_with_no_leftovers() {
    bad_profile(
        allow_but(json!([{ "names": MKDIR, "action": "SCMP_ACT_NOTIFY" }])),
        &["listenerPath"],
    );
}

#[test]
fn notify_with_no_agent_listening_fails_create_with_no_leftovers() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["true"]);
    let sock = b.dir.join("nobody.sock");
    set_seccomp(&mut b, notify_profile(&sock));
    let id = rt.new_id();
    let o = rt.create(&b, &id, &[]);
    o.fails_with(&["listenerPath", sock.to_str().unwrap()]);
    rt.assert_no_leftovers(&id, &b, &[]);
    // The error is about the config's listenerPath, not about a command-line option.
    assert!(
        !o.stderr.contains("--console-socket"),
        "the error names an option that was not used: {:?}",
        o.stderr
    );
}

/// A profile that refuses close_range (runtime-tools' default profile does, and it is loaded
/// early without no_new_privs): rt marks its fds close-on-exec before the filter governs it,
/// so the container still starts, and rt's fds still don't reach it.
#[test]
fn a_profile_refusing_close_range_still_starts_without_leaking_fds() {
    for nnp in [false, true] {
        let rt = Rt::new();
        let mut b = Bundle::sh("ls /proc/self/fd | tr '\\n' ' '");
        set_nnp(&mut b, nnp);
        set_seccomp(
            &mut b,
            allow_but(json!([{"names": ["close_range"], "action": "SCMP_ACT_ERRNO"}])),
        );
        let out = run_ok(&rt, &b);
        // 0-2, and 3: the directory ls reads.
        assert_eq!(out.trim(), "0 1 2 3", "nnp={nnp}");
    }
}

// ---------------------------------------------------------------------------
// syscalls newer than the profile: ENOSYS (runc's stub), so libcs fall back

/// Every x86_64 syscall name numbered 0..=`highest`, except `except`.
fn names_up_to(highest: i32, except: &[&str]) -> Vec<String> {
    (0..=highest)
        .filter_map(|nr| {
            libseccomp::ScmpSyscall::from_raw_syscall(nr)
                .get_name_by_arch(libseccomp::ScmpArch::X8664)
                .ok()
        })
        .filter(|n| !except.contains(&n.as_str()))
        .collect()
}

/// What rt-check reports for raw syscalls made in a container with `profile`.
fn syscall_errnos(profile: Value, nrs: &[&str]) -> Value {
    let rt = Rt::new();
    let mut b = Bundle::new(&["/rt-check", "--syscall"]);
    b.process()["args"]
        .as_array_mut()
        .unwrap()
        .extend(nrs.iter().map(|n| json!(n)));
    b.add_bind(
        Path::new(env!("CARGO_BIN_EXE_rt-check")),
        "/rt-check",
        &["bind", "ro"],
    );
    set_seccomp(&mut b, profile);
    let o = rt.run_new(&b);
    o.ok();
    serde_json::from_str(o.stdout.trim()).unwrap_or_else(|e| panic!("{o:?}: {e}"))
}

const EPERM: i64 = libc::EPERM as i64;
const ENOSYS: i64 = libc::ENOSYS as i64;

/// A profile that allows every syscall up to rseq (334) but acct: acct, below the highest
/// named, gets the default errno; clone3 (435) and an unassigned number, above it, get ENOSYS,
/// as runc's stub gives them, so glibc falls back from clone3 to clone (busybox's fork runs).
#[test]
fn syscalls_newer_than_the_profile_fail_with_enosys() {
    let allowed = names_up_to(334, &["acct"]);
    let profile = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{ "names": allowed, "action": "SCMP_ACT_ALLOW" }]
    });
    let r = syscall_errnos(profile.clone(), &["163", "435", "1000"]);
    assert_eq!(r["163"], EPERM, "acct is known to the profile: {r}");
    assert_eq!(r["435"], ENOSYS, "clone3 is newer than the profile: {r}");
    assert_eq!(r["1000"], ENOSYS, "{r}");

    // The same with an explicit default errno, and with a rule that names a newer call: the
    // highest named number moves up with it (openat2, 437, is now known and gets its rule).
    let mut p = profile.clone();
    p["defaultErrnoRet"] = json!(libc::EACCES);
    p["syscalls"]
        .as_array_mut()
        .unwrap()
        .push(json!({"names": ["openat2"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EXDEV}));
    let r = syscall_errnos(p, &["163", "435", "437", "438", "1000"]);
    assert_eq!(r["163"], libc::EACCES as i64, "{r}");
    assert_eq!(
        r["435"],
        libc::EACCES as i64,
        "clone3 is below openat2 now: {r}"
    );
    assert_eq!(r["437"], libc::EXDEV as i64, "{r}");
    assert_eq!(r["438"], ENOSYS, "{r}");
    assert_eq!(r["1000"], ENOSYS, "{r}");

    // A shell forks under it (glibc's clone3 → clone fallback needs the ENOSYS).
    let rt = Rt::new();
    let mut b = Bundle::sh("echo $(echo forked)");
    set_seccomp(&mut b, profile);
    assert_contains(&run_ok(&rt, &b), "forked");
}

/// No stub where the profile already answers: a permissive default lets unknown calls reach
/// the kernel, and a default of ENOSYS is ENOSYS everywhere.
#[test]
fn permissive_or_enosys_defaults_need_no_stub() {
    let r = syscall_errnos(
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{ "names": ["acct"], "action": "SCMP_ACT_ERRNO" }]
        }),
        &["163", "435", "1000"],
    );
    assert_eq!(r["163"], EPERM, "{r}");
    // clone3 with a NULL struct reaches the kernel: EFAULT or EINVAL, not a filter's answer.
    assert!(r["435"] != ENOSYS && r["435"] != EPERM, "{r}");
    assert_eq!(r["1000"], ENOSYS, "the kernel's own answer: {r}");
    let r = syscall_errnos(
        json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": libc::ENOSYS,
            "syscalls": [{ "names": names_up_to(334, &["acct"]), "action": "SCMP_ACT_ALLOW" }]
        }),
        &["163", "435"],
    );
    assert_eq!(r["163"], ENOSYS, "{r}");
    assert_eq!(r["435"], ENOSYS, "{r}");
}

// ---------------------------------------------------------------------------
// startContainer hooks run under the container's filter (as runc)

/// A startContainer hook runs in the container under its seccomp filter, as runc runs it: a
/// hook making a killed syscall dies of SIGSYS and `run` fails naming the hook.
#[test]
fn start_container_hooks_run_under_the_filter() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["true"]);
    set_seccomp(
        &mut b,
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{ "names": MKDIR, "action": "SCMP_ACT_KILL" }]
        }),
    );
    b.config["hooks"] = json!({"startContainer": [
        {"path": "/bin/sh", "args": ["sh", "-c", "mkdir /dev/shm/foo"]}
    ]});
    let id = rt.new_id();
    let o = rt.run(&b, &id, &[]);
    o.fails();
    assert!(o.stderr.contains("startContainer"), "{o:?}");
    assert!(o.stderr.contains(&libc::SIGSYS.to_string()), "{o:?}");
    // Without the killed call, the same hook setup runs.
    b.config["hooks"] = json!({"startContainer": [
        {"path": "/bin/sh", "args": ["sh", "-c", "touch /dev/shm/foo"]}
    ]});
    rt.run_new(&b).ok();
}

/// With SCMP_ACT_NOTIFY, a startContainer hook gets no fd of rt's or the filter's: only its
/// stdio (runc's seccomp-notify test).
#[test]
fn start_container_hook_with_a_notify_filter_has_only_stdio() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["true"]);
    let sock = b.dir.join("agent.sock");
    set_seccomp(&mut b, notify_profile(&sock));
    b.config["hooks"] = json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c",
        "n=$(ls /proc/self/fd/ | wc -l); [ $n -eq 4 ] || { echo fds: $n >&2; ls -l /proc/self/fd >&2; exit 1; }"]}]});
    let agent = Agent::start(&sock, Reply::Continue);
    rt.run_new(&b).ok();
    let rep = agent.finish();
    assert!(rep.errors.is_empty(), "agent errors: {:?}", rep.errors);
}
