//! rt-check: a small static program the conformance suite (tests/conformance) bind-mounts into
//! containers. It reports, as one JSON object on stdout, what the process sees of the settings
//! the runtime-spec defines, so the suite can compare them with the config. Not shipped.

use std::collections::BTreeMap;

fn read(p: &str) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

/// `rt-check --syscall NR...`: makes each system call with all-zero arguments and prints
/// `{"NR": errno}` (0 for success), for seccomp tests. Only numbers that are harmless with
/// zero arguments belong here (unassigned ones, or calls that fail on a NULL argument).
fn syscalls(nrs: &[String]) {
    let mut out = serde_json::Map::new();
    for nr in nrs {
        let n: libc::c_long = nr.parse().expect("syscall number");
        // SAFETY: a raw system call with zero arguments; the caller picks calls for which
        // that touches no memory of ours.
        let r = unsafe { libc::syscall(n, 0, 0, 0, 0, 0, 0) };
        let errno = if r < 0 {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
        } else {
            0
        };
        out.insert(nr.clone(), errno.into());
    }
    println!("{}", serde_json::Value::Object(out));
}

/// One arm per check the tests can ask for: a table, kept in one place.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--syscall") {
        return syscalls(&args[1..]);
    }
    let mut out = serde_json::Map::new();
    let mut ns = BTreeMap::new();
    for t in ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"] {
        if let Ok(l) = std::fs::read_link(format!("/proc/self/ns/{t}")) {
            ns.insert(t.to_string(), l.to_string_lossy().into_owned());
        }
    }
    out.insert("namespaces".into(), serde_json::json!(ns));
    let status = read("/proc/self/status");
    for k in [
        "Uid",
        "Gid",
        "Groups",
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
        "NoNewPrivs",
        "Seccomp",
    ] {
        out.insert(k.into(), serde_json::json!(status_field(&status, k)));
    }
    out.insert("pid".into(), serde_json::json!(std::process::id()));
    // SAFETY: utsname is plain data; all-zero is a valid value.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uts is a valid out-parameter.
    if unsafe { libc::uname(&mut uts) } == 0 {
        let s = |f: &[libc::c_char]| {
            // SAFETY: uname fills NUL-terminated strings.
            unsafe { std::ffi::CStr::from_ptr(f.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        };
        out.insert("hostname".into(), serde_json::json!(s(&uts.nodename)));
        out.insert("domainname".into(), serde_json::json!(s(&uts.domainname)));
    }
    out.insert(
        "cwd".into(),
        serde_json::json!(
            std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ),
    );
    let env: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    out.insert("env".into(), serde_json::json!(env));
    // SAFETY: umask is read by setting it and restoring it.
    let mask = unsafe {
        let m = libc::umask(0);
        libc::umask(m);
        m
    };
    out.insert("umask".into(), serde_json::json!(mask));
    // SAFETY: plain integer syscalls about this process (IOPRIO_WHO_PROCESS = 1, pid 0). The
    // policy by the raw syscall: musl's sched_getscheduler wrapper always fails with ENOSYS.
    let (policy, nice, ioprio) = unsafe {
        (
            libc::syscall(libc::SYS_sched_getscheduler, 0),
            libc::getpriority(libc::PRIO_PROCESS, 0),
            libc::syscall(libc::SYS_ioprio_get, 1, 0),
        )
    };
    out.insert(
        "sched".into(),
        serde_json::json!({"policy": policy, "nice": nice, "ioprio": ioprio}),
    );
    out.insert(
        "personality".into(),
        serde_json::json!(read("/proc/self/personality").trim()),
    );
    out.insert(
        "Cpus_allowed_list".into(),
        serde_json::json!(status_field(&status, "Cpus_allowed_list")),
    );
    out.insert(
        "oom_score_adj".into(),
        serde_json::json!(read("/proc/self/oom_score_adj").trim()),
    );
    let mut limits = BTreeMap::new();
    for (name, res) in [
        ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
        ("RLIMIT_NPROC", libc::RLIMIT_NPROC),
        ("RLIMIT_CORE", libc::RLIMIT_CORE),
        ("RLIMIT_STACK", libc::RLIMIT_STACK),
    ] {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: rl is a valid out-parameter.
        if unsafe { libc::getrlimit(res, &mut rl) } == 0 {
            limits.insert(name, [rl.rlim_cur, rl.rlim_max]);
        }
    }
    out.insert("rlimits".into(), serde_json::json!(limits));
    // Mount points and their options, from our own mount table.
    let mut mounts = Vec::new();
    for l in read("/proc/self/mountinfo").lines() {
        let f: Vec<&str> = l.split(' ').collect();
        if f.len() > 5 {
            let sep = f.iter().position(|x| *x == "-").unwrap_or(f.len());
            mounts.push(serde_json::json!({
                "target": f[4], "options": f[5],
                "propagation": f.get(6..sep).map(|o| o.join(" ")).unwrap_or_default(),
                "type": f.get(sep + 1).copied().unwrap_or(""),
                "super": f.get(sep + 3).copied().unwrap_or(""),
            }));
        }
    }
    out.insert("mounts".into(), serde_json::json!(mounts));
    // Paths the caller asks about: whether they exist, their type, size, and writability.
    let mut paths = BTreeMap::new();
    for p in std::env::args().skip(1) {
        let meta = std::fs::symlink_metadata(&p);
        // Contents and writability of regular files only: opening a device (ptmx, zero) to
        // look would have side effects or never end.
        let regular = meta.as_ref().is_ok_and(|m| m.is_file());
        let writable = regular && std::fs::OpenOptions::new().append(true).open(&p).is_ok();
        let bytes = regular.then(|| std::fs::read(&p).ok()).flatten();
        let content = bytes.as_ref().map(Vec::len);
        // Small files' text too (sysctls, id maps): what the suite compares with the config.
        let text = bytes
            .as_ref()
            .filter(|b| b.len() <= 4096)
            .map(|b| String::from_utf8_lossy(b).into_owned());
        let info = match meta {
            Ok(m) => {
                use std::os::unix::fs::{FileTypeExt, MetadataExt};
                let t = m.file_type();
                let kind = if t.is_dir() {
                    "dir"
                } else if t.is_symlink() {
                    "symlink"
                } else if t.is_char_device() {
                    "char"
                } else if t.is_block_device() {
                    "block"
                } else {
                    "file"
                };
                serde_json::json!({
                    "exists": true, "kind": kind, "mode": m.mode() & 0o7777,
                    "uid": m.uid(), "gid": m.gid(), "rdev": m.rdev(),
                    "readable_len": content, "writable": writable, "text": text,
                    "link": std::fs::read_link(&p).ok().map(|l| l.display().to_string()),
                })
            }
            Err(_) => serde_json::json!({"exists": false}),
        };
        paths.insert(p, info);
    }
    out.insert("paths".into(), serde_json::json!(paths));
    // Open descriptors and what they are, but for the one reading /proc/self/fd.
    let mut fds = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir("/proc/self/fd") {
        for e in rd.flatten() {
            let target = std::fs::read_link(e.path())
                .map(|l| l.display().to_string())
                .unwrap_or_default();
            if let Ok(n) = e.file_name().to_string_lossy().parse::<i32>()
                && !target.ends_with("/fd")
            {
                fds.insert(n, target);
            }
        }
    }
    out.insert("fds".into(), serde_json::json!(fds));
    println!("{}", serde_json::Value::Object(out));
}
