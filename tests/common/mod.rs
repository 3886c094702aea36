//! Shared harness for rt's integration tests.
//!
//! * [`Bundle`]: a unique temp bundle dir (/tmp/rt-test-...) whose config.json is
//!   built from a JSON template (same shape as bundles/busybox/config.json) using
//!   the shared busybox rootfs read-only, a unique absolute `linux.cgroupsPath`.
//! * [`Rt`]: wraps the rt binary with a unique `--root`; records every container
//!   id / cgroup it is handed and cleans everything on drop (also on panic).
//! * helpers to inspect processes from the outside (/proc), cgroups, mounts.
//!
//! Set `RT_TEST_BIN=/path/to/runtime` to run the suite against another binary
//! (e.g. `runc`) to sanity-check the tests themselves.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Where cgroup v2 is mounted: /sys/fs/cgroup on a pure v2 host (the test VM),
/// /sys/fs/cgroup/unified on a hybrid one (the build machines).
pub fn cgroup2_mount() -> &'static str {
    static MOUNT: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    MOUNT.get_or_init(|| {
        if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            "/sys/fs/cgroup"
        } else {
            "/sys/fs/cgroup/unified"
        }
    })
}
/// Whether the tests drive rt's systemd cgroup driver (`RT_TEST_CGROUP_DRIVER=systemd`, set by
/// `make test-vm` in the VM that boots systemd): every rt call gets `--systemd-cgroup`, and
/// bundles get a `slice:prefix:name` cgroupsPath whose scope the tests find as usual.
pub fn systemd_driver() -> bool {
    std::env::var("RT_TEST_CGROUP_DRIVER").is_ok_and(|v| v == "systemd")
}

/// A fresh cgroupsPath for a bundle, and its cgroup relative to the cgroup2 mount. With the
/// cgroupfs driver, under `RT_TEST_CGROUP_PARENT` when set: in the VM that boots systemd, the
/// tests run in a `Delegate=yes` service, as containerd and dockerd do, and put their
/// containers in the cgroup it delegates (rt leaves the controllers of systemd's own cgroups
/// alone).
pub fn new_cgroups_path() -> (String, String) {
    let name = unique("rt-test-cg");
    if systemd_driver() {
        (
            format!("system.slice:rt-test:{name}"),
            format!("/system.slice/rt-test-{name}.scope"),
        )
    } else {
        let parent = std::env::var("RT_TEST_CGROUP_PARENT").unwrap_or_default();
        let path = format!("{}/{name}", parent.trim_end_matches('/'));
        (path.clone(), path)
    }
}

/// Default timeout for a single rt invocation.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(10);
/// Default timeout for waiting on a state change.
pub const WAIT: Duration = Duration::from_secs(5);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique across test threads and test binaries: `<prefix>-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    format!(
        "{}-{}-{}",
        prefix,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared busybox rootfs (absolute). Panics if it was not built.
pub fn rootfs() -> PathBuf {
    let p = manifest_dir().join("bundles/busybox/rootfs");
    if !p.join("bin/busybox").exists() {
        panic!(
            "the shared busybox rootfs is missing ({}): run `make rootfs` first",
            p.display()
        );
    }
    p.canonicalize().expect("canonicalize rootfs")
}

/// The runtime under test (RT_TEST_BIN overrides, for checking the tests against runc).
pub fn rt_bin() -> PathBuf {
    match std::env::var_os("RT_TEST_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_rt")),
    }
}

// ---------------------------------------------------------------------------
// running commands

/// Result of a finished command. `code` is the exit code, or 128+N when the
/// command itself was killed by signal N.
#[derive(Debug, Clone)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub cmdline: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == 0
    }

    fn describe(&self) -> String {
        format!(
            "`{}` exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline, self.code, self.stdout, self.stderr
        )
    }

    /// Assert exit status 0.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "expected success: {}", self.describe());
        self
    }

    /// Assert the given exit status.
    #[track_caller]
    pub fn code_is(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            code,
            "unexpected exit status: {}",
            self.describe()
        );
        self
    }

    /// Assert failure (any non-zero status) with a non-empty stderr.
    #[track_caller]
    pub fn fails(&self) -> &Self {
        assert_ne!(self.code, 0, "expected failure: {}", self.describe());
        assert!(
            !self.stderr.trim().is_empty(),
            "expected an error message on stderr: {}",
            self.describe()
        );
        self
    }

    /// Assert the error contract: exit code 1, exactly one line on stderr,
    /// and that line contains every needle.
    #[track_caller]
    pub fn fails_with(&self, needles: &[&str]) -> &Self {
        self.fails_with_code(1, needles)
    }

    /// The error contract of `rt exec`, which exits 255 when it could not run the process
    /// (runc's code, so callers can tell it from the process's own status).
    #[track_caller]
    pub fn exec_fails_with(&self, needles: &[&str]) -> &Self {
        self.fails_with_code(255, needles)
    }

    #[track_caller]
    fn fails_with_code(&self, code: i32, needles: &[&str]) -> &Self {
        assert_eq!(
            self.code,
            code,
            "expected exit code {code}: {}",
            self.describe()
        );
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "expected exactly one line on stderr: {}",
            self.describe()
        );
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "stderr should mention {:?}: {}",
                n,
                self.describe()
            );
        }
        self
    }

    /// Non-empty stdout lines.
    pub fn lines(&self) -> Vec<String> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.to_string())
            .collect()
    }
}

/// A command running in the background; its stdout/stderr go to files (so that
/// container processes inheriting them never block us). Killed on drop.
pub struct Spawned {
    child: Option<Child>,
    dir: PathBuf,
    cmdline: String,
}

fn describe_cmd(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Spawn `cmd` with stdout/stderr captured into files (stdin must be set by the caller
/// or is /dev/null).
pub fn spawn_cmd(cmd: &mut Command) -> Spawned {
    let dir = std::env::temp_dir().join(unique("rt-test-out"));
    fs::create_dir_all(&dir).unwrap();
    let out = fs::File::create(dir.join("stdout")).unwrap();
    let err = fs::File::create(dir.join("stderr")).unwrap();
    cmd.stdout(out).stderr(err);
    let cmdline = describe_cmd(cmd);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = fs::remove_dir_all(&dir);
            panic!("cannot spawn `{cmdline}`: {e}")
        }
    };
    Spawned {
        child: Some(child),
        dir,
        cmdline,
    }
}

impl Spawned {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Has the command exited (without reaping it for good: the status is kept by std)?
    pub fn finished(&mut self) -> bool {
        matches!(self.child.as_mut().unwrap().try_wait(), Ok(Some(_)))
    }

    /// Wait at most `timeout`; None if still running (the command is left running).
    pub fn try_wait_for(&mut self, timeout: Duration) -> Option<Output> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut().unwrap();
            if let Some(st) = child.try_wait().expect("try_wait") {
                let code = st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0));
                let stdout = read_lossy(&self.dir.join("stdout"));
                let stderr = read_lossy(&self.dir.join("stderr"));
                self.child = None;
                return Some(Output {
                    code,
                    stdout,
                    stderr,
                    cmdline: self.cmdline.clone(),
                });
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Wait for the command; on timeout kill it and panic.
    #[track_caller]
    pub fn wait(mut self, timeout: Duration) -> Output {
        match self.try_wait_for(timeout) {
            Some(o) => o,
            None => {
                let cmdline = self.cmdline.clone();
                let child = self.child.as_mut().unwrap();
                let _ = child.kill();
                let _ = child.wait();
                let stdout = read_lossy(&self.dir.join("stdout"));
                let stderr = read_lossy(&self.dir.join("stderr"));
                self.child = None;
                panic!(
                    "`{cmdline}` did not finish within {timeout:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
                );
            }
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn read_lossy(p: &Path) -> String {
    let mut v = Vec::new();
    if let Ok(mut f) = fs::File::open(p) {
        let _ = f.read_to_end(&mut v);
    }
    String::from_utf8_lossy(&v).into_owned()
}

/// Run a command to completion (timeout: panic), capturing (status, stdout, stderr).
#[track_caller]
pub fn run_cmd(cmd: &mut Command) -> Output {
    run_cmd_timeout(cmd, CMD_TIMEOUT)
}

#[track_caller]
pub fn run_cmd_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    spawn_cmd(cmd).wait(timeout)
}

/// Make the child see `fds[i].0` as fd `fds[i].1` (inheritable, no CLOEXEC).
pub fn pass_fds(cmd: &mut Command, fds: &[(RawFd, RawFd)]) {
    let fds = fds.to_vec();
    // SAFETY: only async-signal-safe libc calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // first move every source out of the way to avoid clobbering
            let mut tmp = Vec::new();
            for (i, (src, _)) in fds.iter().enumerate() {
                let t = 200 + i as RawFd;
                if libc::dup2(*src, t) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                tmp.push(t);
            }
            for (i, (_, dst)) in fds.iter().enumerate() {
                if libc::dup2(tmp[i], *dst) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(tmp[i]);
            }
            Ok(())
        });
    }
}

/// Poll `cond` every 10ms until true or `timeout` passes. Returns the last value.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------
// bundles

/// The config template: same shape as bundles/busybox/config.json, but with the
/// shared rootfs by absolute path (read-only) and the given args.
pub fn config_template(args: &[&str], rootfs: &Path, cgroups_path: &str) -> Value {
    json!({
      "ociVersion": "1.2.0",
      "process": {
        "terminal": false,
        "user": { "uid": 0, "gid": 0 },
        "args": args,
        "env": [
          "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
          "TERM=xterm"
        ],
        "cwd": "/",
        "capabilities": {
          "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
          "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
          "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
        },
        "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
        "noNewPrivileges": true
      },
      "root": { "path": rootfs.to_str().unwrap(), "readonly": true },
      "hostname": "rt-test",
      "mounts": [
        { "destination": "/proc", "type": "proc", "source": "proc" },
        { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
          "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
        { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
          "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
        { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
          "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
        { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
          "options": ["nosuid", "noexec", "nodev"] },
        { "destination": "/sys", "type": "sysfs", "source": "sysfs",
          "options": ["nosuid", "noexec", "nodev", "ro"] },
        { "destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
          "options": ["nosuid", "nodev", "mode=1777", "size=16m"] }
      ],
      "linux": {
        "cgroupsPath": cgroups_path,
        "namespaces": [
          { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
          { "type": "uts" }, { "type": "mount" }, { "type": "cgroup" }
        ],
        "maskedPaths": [
          "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
          "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
        ],
        "readonlyPaths": [
          "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
        ]
      }
    })
}

/// A unique bundle directory under /tmp with a config.json built from the template.
/// The config is (re)written by [`Bundle::save`], which [`Rt::create`] / [`Rt::run`]
/// call automatically unless [`Bundle::write_raw_config`] was used.
pub struct Bundle {
    pub dir: PathBuf,
    pub config: Value,
    /// absolute cgroupsPath (relative to the cgroup2 mount) of the config
    pub cgroup: String,
    raw: bool,
}

impl Bundle {
    pub fn new(args: &[&str]) -> Bundle {
        let rootfs = rootfs();
        let dir = std::env::temp_dir().join(unique("rt-test-bundle"));
        fs::create_dir_all(&dir).expect("create bundle dir");
        let dir = dir.canonicalize().unwrap();
        let (cgroups_path, cgroup) = new_cgroups_path();
        let config = config_template(args, &rootfs, &cgroups_path);
        Bundle {
            dir,
            config,
            cgroup,
            raw: false,
        }
    }

    /// Bundle running `/bin/sh -c script`.
    pub fn sh(script: &str) -> Bundle {
        Bundle::new(&["/bin/sh", "-c", script])
    }

    pub fn path(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// Write config.json (no-op when a raw config was written).
    pub fn save(&self) {
        if self.raw {
            return;
        }
        fs::write(
            self.config_path(),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .expect("write config.json");
    }

    /// Write config.json verbatim; later saves are suppressed.
    pub fn write_raw_config(&mut self, text: &str) {
        self.raw = true;
        fs::write(self.config_path(), text).unwrap();
    }

    /// Remove config.json and suppress saving it.
    pub fn remove_config(&mut self) {
        self.raw = true;
        let _ = fs::remove_file(self.config_path());
    }

    pub fn set_args(&mut self, args: &[&str]) -> &mut Self {
        self.config["process"]["args"] = json!(args);
        self
    }

    pub fn set_sh(&mut self, script: &str) -> &mut Self {
        self.set_args(&["/bin/sh", "-c", script])
    }

    pub fn process(&mut self) -> &mut Value {
        &mut self.config["process"]
    }

    pub fn linux(&mut self) -> &mut Value {
        &mut self.config["linux"]
    }

    pub fn set_env(&mut self, env: &[&str]) -> &mut Self {
        self.config["process"]["env"] = json!(env);
        self
    }

    pub fn add_env(&mut self, kv: &str) -> &mut Self {
        self.config["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!(kv));
        self
    }

    /// Append a mount (after the template's mounts).
    pub fn add_mount(
        &mut self,
        dest: &str,
        typ: &str,
        source: &str,
        options: &[&str],
    ) -> &mut Self {
        self.config["mounts"].as_array_mut().unwrap().push(json!({
            "destination": dest, "type": typ, "source": source, "options": options
        }));
        self
    }

    /// Bind-mount a host path (options e.g. ["rbind", "ro"]).
    pub fn add_bind(&mut self, host: &Path, dest: &str, options: &[&str]) -> &mut Self {
        self.add_mount(dest, "bind", host.to_str().unwrap(), options)
    }

    /// Replace the namespace list by these types (all new namespaces).
    pub fn set_namespaces(&mut self, types: &[&str]) -> &mut Self {
        let v: Vec<Value> = types.iter().map(|t| json!({ "type": t })).collect();
        self.config["linux"]["namespaces"] = Value::Array(v);
        self
    }

    pub fn namespace_types(&self) -> Vec<String> {
        self.config["linux"]["namespaces"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|n| n["type"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Add (or replace) a namespace of `typ`, optionally joining `path`.
    pub fn add_namespace(&mut self, typ: &str, path: Option<&str>) -> &mut Self {
        self.remove_namespace(typ);
        let mut ns = json!({ "type": typ });
        if let Some(p) = path {
            ns["path"] = json!(p);
        }
        if !self.config["linux"]["namespaces"].is_array() {
            self.config["linux"]["namespaces"] = json!([]);
        }
        self.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(ns);
        self
    }

    pub fn remove_namespace(&mut self, typ: &str) -> &mut Self {
        if let Some(a) = self.config["linux"]["namespaces"].as_array_mut() {
            a.retain(|n| n["type"] != typ);
        }
        self
    }

    /// Use a fresh unique absolute cgroupsPath (e.g. to reuse the bundle).
    pub fn new_cgroup(&mut self) -> String {
        let (cgroups_path, cgroup) = new_cgroups_path();
        self.cgroup = cgroup;
        self.config["linux"]["cgroupsPath"] = json!(cgroups_path);
        self.cgroup.clone()
    }

    /// The cgroup v2 directory for this bundle's (absolute) cgroupsPath.
    pub fn cgroup_dir(&self) -> PathBuf {
        cgroup_dir(&self.cgroup)
    }

    /// Copy the shared rootfs into `<bundle>/rootfs` (for tests that need to change
    /// the image) and point root.path at it (relative path "rootfs").
    pub fn private_rootfs(&mut self) -> PathBuf {
        let dst = self.dir.join("rootfs");
        let st = Command::new("cp")
            .arg("-a")
            .arg(rootfs())
            .arg(&dst)
            .status()
            .expect("cp");
        assert!(st.success(), "cp -a rootfs failed");
        self.config["root"]["path"] = json!("rootfs");
        dst
    }

    /// A fresh host directory inside the bundle (e.g. as a bind-mount source).
    pub fn host_dir(&self, name: &str) -> PathBuf {
        let d = self.dir.join(name);
        fs::create_dir_all(&d).unwrap();
        d
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        // Never let remove_dir_all walk into a mount leaked on the host.
        detach_mounts_under(&self.dir);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Lazily unmount every host mount at or under `dir` (deepest first).
pub fn detach_mounts_under(dir: &Path) {
    let d = dir.to_str().unwrap();
    for _ in 0..8 {
        let mut mps: Vec<String> = mountinfo("self")
            .into_iter()
            .map(|m| m.mount_point)
            .filter(|mp| mp == d || mp.starts_with(&format!("{d}/")))
            .collect();
        if mps.is_empty() {
            return;
        }
        mps.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mp in mps {
            let _ = nix::mount::umount2(mp.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

// ---------------------------------------------------------------------------
// the runtime wrapper

/// A container created through [`Rt::create_ok`].
#[derive(Debug, Clone)]
pub struct Ctr {
    pub id: String,
    pub pid: i32,
}

/// rt with a unique `--root`. Records container ids / cgroups and cleans up on drop.
pub struct Rt {
    pub root: PathBuf,
    /// set in the environment of every rt invocation (RT_TEST_MARKER=...), so that
    /// leftover rt/init processes that did not exec yet can be found.
    pub marker: String,
    ids: Mutex<Vec<String>>,
    cgroups: Mutex<Vec<String>>,
    /// A shell script every rt runs under, in a new private mount namespace (the host's own
    /// mounts are never touched), before it execs rt: see `pure_v1` and `ro_cgroups`.
    wrap: Option<&'static str>,
}

/// Unmounts every cgroup2 mount (in the caller's new mount namespace), then execs argv.
const PURE_V1_SH: &str = r#"for m in $(awk '{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i+1) == "cgroup2") print $5; break } }' /proc/self/mountinfo | sort -r); do umount -l "$m" || exit 125; done; exec "$0" "$@""#;

/// Remounts every cgroup and cgroup2 mount read-only (in the caller's new mount namespace),
/// then execs argv.
const RO_CGROUPS_SH: &str = r#"for m in $(awk '{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i+1) ~ /^cgroup2?$/) print $5; break } }' /proc/self/mountinfo); do mount -o remount,bind,ro "$m" || exit 125; done; exec "$0" "$@""#;

pub const MARKER_VAR: &str = "RT_TEST_MARKER";

impl Default for Rt {
    fn default() -> Self {
        Self::new()
    }
}

impl Rt {
    pub fn new() -> Rt {
        let _ = rootfs(); // fail early with a clear message
        let root = std::env::temp_dir().join(unique("rt-test-root"));
        fs::create_dir_all(&root).unwrap();
        let root = root.canonicalize().unwrap();
        let marker = unique("rt-test-marker");
        Rt {
            root,
            marker,
            ids: Mutex::new(Vec::new()),
            cgroups: Mutex::new(Vec::new()),
            wrap: None,
        }
    }

    /// rt as in a container whose cgroup mounts are read-only (every cgroup mount remounted
    /// read-only in its own mount namespace).
    pub fn ro_cgroups() -> Rt {
        let mut rt = Rt::new();
        rt.wrap = Some(RO_CGROUPS_SH);
        rt
    }

    /// rt as on a pure cgroup v1 host: each call runs in a new mount namespace (propagation
    /// private, so nothing reaches the host) where the cgroup2 mount is unmounted. None when
    /// this host has no v1 hierarchies to test with.
    pub fn pure_v1() -> Option<Rt> {
        let v1 = fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains(" - cgroup "));
        v1.then(|| {
            let mut rt = Rt::new();
            rt.wrap = Some(PURE_V1_SH);
            rt
        })
    }

    fn base_command(&self) -> Command {
        let mut c = if let Some(script) = self.wrap {
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "sh", "-c"])
                .arg(script)
                .arg(rt_bin());
            c
        } else {
            Command::new(rt_bin())
        };
        if systemd_driver() {
            c.arg("--systemd-cgroup");
        }
        c
    }

    pub fn root_str(&self) -> &str {
        self.root.to_str().unwrap()
    }

    /// A `Command` for `rt --root <root> args...` (stdin /dev/null, marker env).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = self.base_command();
        c.arg("--root").arg(&self.root).args(args);
        c.env(MARKER_VAR, &self.marker);
        c.stdin(Stdio::null());
        c
    }

    /// Run `rt --root <root> args...` to completion.
    #[track_caller]
    pub fn cmd(&self, args: &[&str]) -> Output {
        run_cmd(&mut self.command(args))
    }

    /// Run rt without the `--root` flag (global flags are up to the caller).
    #[track_caller]
    pub fn cmd_raw(&self, args: &[&str]) -> Output {
        let mut c = self.base_command();
        c.args(args)
            .env(MARKER_VAR, &self.marker)
            .stdin(Stdio::null());
        run_cmd(&mut c)
    }

    /// A fresh unique id, recorded for cleanup.
    pub fn new_id(&self) -> String {
        let id = unique("ctr");
        self.track(&id);
        id
    }

    /// Record an id for cleanup.
    pub fn track(&self, id: &str) {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
    }

    /// Record a cgroup path (relative to the cgroup2 mount) for cleanup.
    pub fn track_cgroup(&self, path: &str) {
        let mut cgs = self.cgroups.lock().unwrap_or_else(|e| e.into_inner());
        if !cgs.iter().any(|c| c == path) {
            cgs.push(path.to_string());
        }
    }

    pub fn track_bundle(&self, b: &Bundle, id: &str) {
        self.track(id);
        self.track_cgroup(&b.cgroup);
    }

    /// `rt create --bundle <b> [extra...] <id>` (saves the config first).
    #[track_caller]
    pub fn create(&self, b: &Bundle, id: &str, extra: &[&str]) -> Output {
        b.save();
        self.track_bundle(b, id);
        let mut args = vec!["create", "--bundle", b.path()];
        args.extend_from_slice(extra);
        args.push(id);
        self.cmd(&args)
    }

    /// Create a container with a fresh id, assert success, return id + init pid.
    #[track_caller]
    pub fn create_ok(&self, b: &Bundle) -> Ctr {
        self.create_ok_with(b, &[])
    }

    #[track_caller]
    pub fn create_ok_with(&self, b: &Bundle, extra: &[&str]) -> Ctr {
        let id = self.new_id();
        self.create(b, &id, extra).ok();
        let pid = self.pid(&id);
        assert!(pid > 0, "created container {id} has pid {pid}");
        Ctr { id, pid }
    }

    /// create + start, waiting until the init exec'd the configured args.
    #[track_caller]
    pub fn start_ok(&self, b: &Bundle) -> Ctr {
        let c = self.create_ok(b);
        self.start(&c.id).ok();
        let args: Vec<String> = b.config["process"]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let argv: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        assert!(
            wait_exec(c.pid, &argv),
            "container {} (pid {}) did not exec {:?}; cmdline {:?}",
            c.id,
            c.pid,
            argv,
            cmdline(c.pid)
        );
        c
    }

    #[track_caller]
    pub fn start(&self, id: &str) -> Output {
        self.cmd(&["start", id])
    }

    /// `rt run --bundle <b> [extra...] <id>`.
    #[track_caller]
    pub fn run(&self, b: &Bundle, id: &str, extra: &[&str]) -> Output {
        b.save();
        self.track_bundle(b, id);
        let mut args = vec!["run", "--bundle", b.path()];
        args.extend_from_slice(extra);
        args.push(id);
        self.cmd(&args)
    }

    /// `rt run` with a fresh id.
    #[track_caller]
    pub fn run_new(&self, b: &Bundle) -> Output {
        let id = self.new_id();
        self.run(b, &id, &[])
    }

    /// `rt run` with a fresh id; asserts exit 0 and returns stdout.
    #[track_caller]
    pub fn run_stdout(&self, b: &Bundle) -> String {
        let o = self.run_new(b);
        o.ok();
        o.stdout
    }

    /// `rt state <id>` parsed (asserts success).
    #[track_caller]
    pub fn state(&self, id: &str) -> Value {
        let o = self.cmd(&["state", id]);
        o.ok();
        serde_json::from_str(&o.stdout)
            .unwrap_or_else(|e| panic!("state output is not JSON ({e}): {:?}", o.stdout))
    }

    /// Status string from `rt state`, None if state fails.
    pub fn status(&self, id: &str) -> Option<String> {
        let o = self.cmd(&["state", id]);
        if !o.success() {
            return None;
        }
        let v: Value = serde_json::from_str(&o.stdout).ok()?;
        v["status"].as_str().map(|s| s.to_string())
    }

    #[track_caller]
    pub fn pid(&self, id: &str) -> i32 {
        self.state(id)["pid"]
            .as_i64()
            .expect("state.pid is a number") as i32
    }

    /// Wait until `rt state` reports `status`.
    pub fn wait_status(&self, id: &str, status: &str, timeout: Duration) -> bool {
        wait_for(timeout, || self.status(id).as_deref() == Some(status))
    }

    #[track_caller]
    pub fn assert_status(&self, id: &str, status: &str) {
        assert!(
            self.wait_status(id, status, WAIT),
            "container {id} did not reach status {status:?}; last: {:?}",
            self.status(id)
        );
    }

    #[track_caller]
    pub fn kill(&self, id: &str, sig: &str) -> Output {
        self.cmd(&["kill", id, sig])
    }

    #[track_caller]
    pub fn delete(&self, id: &str) -> Output {
        self.cmd(&["delete", id])
    }

    #[track_caller]
    pub fn delete_force(&self, id: &str) -> Output {
        self.cmd(&["delete", "--force", id])
    }

    /// Start `rt args...` in the background.
    pub fn spawn(&self, args: &[&str]) -> Spawned {
        spawn_cmd(&mut self.command(args))
    }

    /// State directory of a container.
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Pids of live processes that still carry this Rt's marker in their environment
    /// (rt itself or a container init that has not exec'd yet).
    pub fn marked_procs(&self) -> Vec<i32> {
        procs_with_env(&format!("{}={}", MARKER_VAR, self.marker))
    }

    /// After a failed command: nothing may remain: no state dir, no cgroup dir, no
    /// process (in the cgroup or carrying the marker, except `except`), no mount on
    /// the host mentioning the bundle or the state root.
    #[track_caller]
    pub fn assert_no_leftovers(&self, id: &str, b: &Bundle, except: &[i32]) {
        let state_dir = self.state_dir(id);
        let cg = b.cgroup.clone();
        let marked = || -> Vec<i32> {
            self.marked_procs()
                .into_iter()
                .filter(|p| !except.contains(p))
                .collect()
        };
        wait_for(Duration::from_secs(3), || {
            !state_dir.exists()
                && !cgroup_dir(&cg).exists()
                && marked().is_empty()
                && procs_in_cgroup(&cg).is_empty()
        });
        assert!(
            !state_dir.exists(),
            "state dir {} left behind",
            state_dir.display()
        );
        assert!(
            !cgroup_dir(&cg).exists(),
            "cgroup dir {} left behind",
            cgroup_dir(&cg).display()
        );
        let procs = procs_in_cgroup(&cg);
        assert!(procs.is_empty(), "processes left in cgroup {cg}: {procs:?}");
        let m = marked();
        assert!(
            m.is_empty(),
            "rt/init processes left behind: {:?}",
            m.iter().map(|p| (p, cmdline(*p))).collect::<Vec<_>>()
        );
        let mounts = host_mounts_mentioning(&[b.path(), self.root_str()]);
        assert!(mounts.is_empty(), "mounts left on the host: {mounts:#?}");
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        let ids = std::mem::take(&mut *self.ids.lock().unwrap_or_else(|e| e.into_inner()));
        for id in &ids {
            let mut c = self.command(&["delete", "--force", id]);
            let mut s = spawn_cmd(&mut c);
            let _ = s.try_wait_for(Duration::from_secs(10));
        }
        // safety net: kill whatever still carries our marker
        for p in self.marked_procs() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let cgs = std::mem::take(&mut *self.cgroups.lock().unwrap_or_else(|e| e.into_inner()));
        for cg in &cgs {
            // A unit a failed test left: stopped, so systemd removes its cgroup.
            if let Some(unit) = cg.rsplit('/').next().filter(|u| u.ends_with(".scope")) {
                let _ = Command::new("systemctl")
                    .args(["stop", unit])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
            cleanup_cgroup(cg);
        }
        detach_mounts_under(&self.root);
        let _ = fs::remove_dir_all(&self.root);
    }
}

// ---------------------------------------------------------------------------
// cgroups

/// cgroup2 directory of `path` (relative to the cgroup2 mount, leading '/').
pub fn cgroup_dir(path: &str) -> PathBuf {
    Path::new(cgroup2_mount()).join(path.trim_start_matches('/'))
}

/// Pids listed in the cgroup2 `cgroup.procs` of `path` (empty if none/missing).
pub fn cgroup_procs(path: &str) -> Vec<i32> {
    fs::read_to_string(cgroup_dir(path).join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Pids whose /proc/<pid>/cgroup v2 line is `path` or below it (scan of /proc).
pub fn procs_in_cgroup(path: &str) -> Vec<i32> {
    let path = path.trim_end_matches('/');
    if path.is_empty() {
        return vec![];
    }
    all_pids()
        .into_iter()
        .filter(|p| match proc_cgroup2(*p) {
            Some(cg) => cg == path || cg.starts_with(&format!("{path}/")),
            None => false,
        })
        .filter(|p| pid_alive(*p))
        .collect()
}

/// The rt process's own cgroup v2 path as a child of this test process would see it.
pub fn own_cgroup2() -> String {
    proc_cgroup2_of("self").expect("no 0:: line in /proc/self/cgroup")
}

/// Kill everything in the cgroup and remove it (and sub-cgroups), in cgroup2 and in
/// any v1 hierarchy (so the suite can also be pointed at runc).
pub fn cleanup_cgroup(path: &str) {
    let rel = path.trim_matches('/');
    if rel.is_empty() || rel.contains("..") {
        return;
    }
    let v2 = cgroup_dir(path);
    if v2.exists() {
        let _ = fs::write(v2.join("cgroup.kill"), "1");
        for p in cgroup_procs(path) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        wait_for(Duration::from_secs(2), || cgroup_procs(path).is_empty());
    }
    let mut bases = vec![PathBuf::from(cgroup2_mount())];
    if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            if e.path() != Path::new(cgroup2_mount()) {
                bases.push(e.path());
            }
        }
    }
    for base in bases {
        let d = base.join(rel);
        if d.is_dir() {
            rmdir_tree(&d);
        }
    }
}

fn rmdir_tree(d: &Path) {
    if let Ok(rd) = fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                rmdir_tree(&e.path());
            }
        }
    }
    for _ in 0..50 {
        if fs::remove_dir(d).is_ok() || !d.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// /proc helpers

pub fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Process state letter from /proc/<pid>/stat (None if gone).
pub fn proc_state(pid: i32) -> Option<char> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 1..];
    after.trim_start().chars().next()
}

/// Exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    matches!(proc_state(pid), Some(c) if c != 'Z' && c != 'X')
}

pub fn ppid(pid: i32) -> Option<i32> {
    proc_status(pid, "PPid")?.parse().ok()
}

/// argv of a process.
pub fn cmdline(pid: i32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|v| {
            v.split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Wait until the process' argv equals `args` (i.e. the container process exec'd).
pub fn wait_exec(pid: i32, args: &[&str]) -> bool {
    wait_for(WAIT, || cmdline(pid) == args)
}

/// A field of /proc/<pid>/status ("CapEff", "Uid", ...), value trimmed.
pub fn proc_status(pid: i32, field: &str) -> Option<String> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == field).then(|| v.trim().to_string())
    })
}

/// Numbers of a whitespace-separated status field ("Uid" -> [r, e, s, fs]).
pub fn proc_status_nums(pid: i32, field: &str) -> Vec<u64> {
    proc_status(pid, field)
        .unwrap_or_default()
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect()
}

/// A capability field of /proc/<pid>/status as a bitmask.
pub fn proc_caps(pid: i32, field: &str) -> u64 {
    let v = proc_status(pid, field).unwrap_or_else(|| panic!("no {field} for pid {pid}"));
    u64::from_str_radix(&v, 16).unwrap()
}

/// Bitmask of capability numbers.
pub fn cap_mask(caps: &[u32]) -> u64 {
    caps.iter().fold(0, |m, c| m | (1u64 << c))
}

/// readlink /proc/<pid>/ns/<ns> (e.g. "net:[4026531840]"). `pid` may be "self".
pub fn ns_link(pid: impl std::fmt::Display, ns: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .unwrap_or_else(|e| panic!("readlink /proc/{pid}/ns/{ns}: {e}"))
        .to_string_lossy()
        .into_owned()
}

/// The host's namespace (this test process is in the host namespaces).
pub fn host_ns(ns: &str) -> String {
    ns_link("self", ns)
}

/// OCI namespace type -> /proc/<pid>/ns entry name.
pub fn ns_file(typ: &str) -> &'static str {
    match typ {
        "pid" => "pid",
        "network" => "net",
        "mount" => "mnt",
        "ipc" => "ipc",
        "uts" => "uts",
        "user" => "user",
        "cgroup" => "cgroup",
        "time" => "time",
        other => panic!("unknown namespace type {other}"),
    }
}

pub const ALL_NS_TYPES: &[&str] = &[
    "pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time",
];

fn proc_cgroup2_of(pid: &str) -> Option<String> {
    let s = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("0::").map(|p| p.to_string()))
}

/// The cgroup v2 path of a process (the `0::` line of /proc/<pid>/cgroup).
pub fn proc_cgroup2(pid: i32) -> Option<String> {
    proc_cgroup2_of(&pid.to_string())
}

/// Pids (other than us) whose environment contains exactly `kv` ("K=V").
pub fn procs_with_env(kv: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let needle = kv.as_bytes();
    all_pids()
        .into_iter()
        .filter(|p| *p != me)
        .filter(|p| {
            fs::read(format!("/proc/{p}/environ"))
                .map(|env| env.split(|b| *b == 0).any(|e| e == needle))
                .unwrap_or(false)
        })
        .filter(|p| pid_alive(*p))
        .collect()
}

/// Open fd numbers of a process.
pub fn proc_fds(pid: i32) -> BTreeSet<i32> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// One line of /proc/<pid>/mountinfo.
#[derive(Debug, Clone)]
pub struct MountInfo {
    pub root: String,
    pub mount_point: String,
    /// per-mount options (rw/ro, nosuid, ...)
    pub opts: Vec<String>,
    pub fstype: String,
    pub source: String,
    /// superblock options (size=..., mode=...)
    pub super_opts: Vec<String>,
    pub line: String,
}

impl MountInfo {
    pub fn has_opt(&self, o: &str) -> bool {
        self.opts.iter().any(|x| x == o)
    }
    pub fn has_super_opt(&self, o: &str) -> bool {
        self.super_opts.iter().any(|x| x == o)
    }
    pub fn is_ro(&self) -> bool {
        self.has_opt("ro")
    }
}

fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Parse /proc/<pid>/mountinfo (`pid` may be "self").
pub fn mountinfo(pid: impl std::fmt::Display) -> Vec<MountInfo> {
    let s = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    s.lines()
        .filter_map(|line| {
            let (a, b) = line.split_once(" - ")?;
            let f: Vec<&str> = a.split(' ').collect();
            let g: Vec<&str> = b.split(' ').collect();
            if f.len() < 6 || g.len() < 3 {
                return None;
            }
            Some(MountInfo {
                root: unescape_mount(f[3]),
                mount_point: unescape_mount(f[4]),
                opts: f[5].split(',').map(|s| s.to_string()).collect(),
                fstype: g[0].to_string(),
                source: unescape_mount(g[1]),
                super_opts: g[2].split(',').map(|s| s.to_string()).collect(),
                line: line.to_string(),
            })
        })
        .collect()
}

/// The last (topmost) mount at `mount_point` in a process' mount table.
pub fn find_mount(pid: impl std::fmt::Display, mount_point: &str) -> Option<MountInfo> {
    mountinfo(pid)
        .into_iter()
        .rfind(|m| m.mount_point == mount_point)
}

/// Lines of the host's /proc/self/mountinfo mentioning any of `needles`.
pub fn host_mounts_mentioning(needles: &[&str]) -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| needles.iter().any(|n| l.contains(n)))
        .map(|l| l.to_string())
        .collect()
}

/// Parse /proc/<pid>/limits: name ("Max open files") -> (soft, hard) as strings.
pub fn proc_limit(pid: i32, name: &str) -> Option<(String, String)> {
    let s = fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    s.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let mut it = rest.split_whitespace();
        Some((it.next()?.to_string(), it.next()?.to_string()))
    })
}

/// Read a file inside the container's root (through /proc/<pid>/root).
pub fn read_in_container(pid: i32, path: &str) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/root/{}", path.trim_start_matches('/'))).ok()
}

/// Basic RFC 3339 check: "YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)".
pub fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 20 {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| r.clone().all(|i| b[i].is_ascii_digit());
    if !(digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && (b[10] == b'T' || b[10] == b't')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19))
    {
        return false;
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == st {
            return false;
        }
    }
    let tz = &s[i..];
    tz == "Z"
        || tz == "z"
        || (tz.len() == 6
            && (tz.starts_with('+') || tz.starts_with('-'))
            && tz.as_bytes()[3] == b':')
}

/// A child process killed (and reaped) on drop: e.g. `unshare --net sleep 1000`.
pub struct Helper(pub Child);

impl Helper {
    pub fn spawn(cmd: &mut Command) -> Helper {
        Helper(
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn helper"),
        )
    }
    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Raw fd of anything.
pub fn raw(f: &impl AsRawFd) -> RawFd {
    f.as_raw_fd()
}

/// A unique host temp dir outside any bundle, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let p = std::env::temp_dir().join(unique(prefix));
        fs::create_dir_all(&p).unwrap();
        TempDir(p.canonicalize().unwrap())
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    /// Sorted names of the entries in the dir.
    pub fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&self.0)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        detach_mounts_under(&self.0);
        let _ = fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------
// scripts, environments, ptys (added for exec/hooks/features tests)

/// Write an executable (0755) file.
pub fn write_script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, body).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The environment of a process (/proc/<pid>/environ), in order.
pub fn proc_environ(pid: i32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/environ"))
        .map(|v| {
            v.split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Quote a word for /bin/sh.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Read a pid file: decimal, no trailing newline (asserted).
#[track_caller]
pub fn read_pid_file(p: &Path) -> i32 {
    let s = fs::read_to_string(p).unwrap_or_else(|e| panic!("read pid file {}: {e}", p.display()));
    assert!(
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()),
        "pid file {} should hold a bare decimal pid, got {s:?}",
        p.display()
    );
    s.parse().unwrap()
}

impl Rt {
    /// Run `rt --root <root> args...` in the foreground on a real pty, through
    /// `script -qec`. The output is what the pty showed (\r\n line ends); the code is
    /// the command's exit status (script -e passes it through).
    #[track_caller]
    pub fn cmd_on_pty(&self, args: &[&str]) -> Output {
        let mut line = shell_quote(rt_bin().to_str().unwrap());
        line.push_str(" --root ");
        line.push_str(&shell_quote(self.root_str()));
        for a in args {
            line.push(' ');
            line.push_str(&shell_quote(a));
        }
        self.shell_on_pty(&line)
    }

    /// Run a shell command line on a real pty, through `script -qec` (see `cmd_on_pty`).
    #[track_caller]
    pub fn shell_on_pty(&self, line: &str) -> Output {
        let mut c = Command::new("script");
        c.args(["-qec", line, "/dev/null"])
            .env(MARKER_VAR, &self.marker)
            .env("SHELL", "/bin/sh")
            .stdin(Stdio::null());
        run_cmd(&mut c)
    }
}

/// `script` with DISK replaced by a real disk's "major minor" (from /proc/partitions).
pub fn with_disk(script: &str) -> String {
    let parts = fs::read_to_string("/proc/partitions").unwrap();
    let disk = parts
        .lines()
        .skip(2)
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 4).then(|| format!("{} {}", f[0], f[1]))
        })
        .expect("a disk in /proc/partitions");
    script.replace("DISK", &disk)
}

/// Accept one connection on the listener and receive one SCM_RIGHTS message: its fds.
pub fn receive_console(
    listener: &std::os::unix::net::UnixListener,
) -> Result<Vec<std::os::fd::OwnedFd>, String> {
    receive_message(listener).map(|(fds, _)| fds)
}

/// Accept one connection on the listener (10 s at most) and receive one message: the fds it
/// carried as SCM_RIGHTS, and its payload.
pub fn receive_message(
    listener: &std::os::unix::net::UnixListener,
) -> Result<(Vec<std::os::fd::OwnedFd>, Vec<u8>), String> {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return Err("nobody connected to the console socket".into());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    };
    recv_with_fds(&stream)
}

/// One message on a connected unix stream (10 s at most): the fds it carried as SCM_RIGHTS,
/// and its payload.
pub fn recv_with_fds(
    stream: &std::os::unix::net::UnixStream,
) -> Result<(Vec<std::os::fd::OwnedFd>, Vec<u8>), String> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut cmsg = nix::cmsg_space!([RawFd; 8]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| format!("recvmsg: {e}"))?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(|e| format!("cmsgs: {e}"))? {
        if let ControlMessageOwned::ScmRights(v) = c {
            for fd in v {
                // SAFETY: fresh fds received via SCM_RIGHTS, owned by us now.
                fds.push(unsafe {
                    <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
                });
            }
        }
    }
    let n = msg.bytes;
    Ok((fds, buf[..n].to_vec()))
}

pub fn is_pty_master(fd: RawFd) -> bool {
    let mut n: libc::c_uint = 0;
    unsafe { libc::ioctl(fd, libc::TIOCGPTN, &mut n) == 0 }
}

pub fn read_master_until(fd: RawFd, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while !String::from_utf8_lossy(&out).contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(500) as i32) };
        if r <= 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
    String::from_utf8_lossy(&out).into_owned()
}
