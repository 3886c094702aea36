//! The privilege and environment steps shared by the init and `rt exec`, up to execve
//! through the sealed trampoline.

use anyhow::{Context, Result, anyhow, bail};
use oci_spec::runtime::Spec;
use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::sys::{self};

/// A process ready to exec: everything that can fail before execve has been done.
pub struct Ready<'a> {
    exe: CString,
    args: Vec<CString>,
    pub(crate) env: Vec<CString>,
    /// A seccomp filter still to load, as the very last step before execve.
    seccomp_late: Option<&'a crate::process::security::seccomp::Filter>,
    /// The seccomp notify fd, for the caller to hand to the listener.
    pub notify_fd: Option<RawFd>,
    /// The sealed exec trampoline (see exeguard).
    trampoline: RawFd,
}

impl Ready<'_> {
    pub fn exec(&self) -> Result<Infallible> {
        // Before the filter, which may not allow its write.
        crate::logging::phase("init: exec");
        if let Some(f) = self.seccomp_late {
            f.load()?;
        }
        exec(self.trampoline, &self.exe, &self.args, &self.env)
    }

    /// Loads a filter that was waiting for execve now (for startContainer hooks).
    pub(crate) fn load_seccomp_now(&mut self) -> Result<()> {
        if let Some(f) = self.seccomp_late.take() {
            f.load()?;
        }
        Ok(())
    }
}

/// The seccomp agent protocol (runc's): one message on a stream socket at listenerPath,
/// the notify fd as SCM_RIGHTS and a JSON `ContainerProcessState` naming it.
pub fn send_to_seccomp_agent(
    spec: &Spec,
    state: &serde_json::Value,
    pid: i32,
    fd: &OwnedFd,
) -> Result<()> {
    let s = spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .context("seccomp fd without linux.seccomp")?;
    let path = s
        .listener_path()
        .as_ref()
        .context("linux.seccomp.listenerPath is required with SCMP_ACT_NOTIFY")?;
    let msg = serde_json::json!({
        "ociVersion": crate::spec::SPEC_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": s.listener_metadata().clone().unwrap_or_default(),
        "state": state,
    });
    let sock = crate::process::console::connect(path)
        .map_err(|e| anyhow!("linux.seccomp.listenerPath: {e:#}"))?;
    sys::send_fds(
        sock.as_raw_fd(),
        msg.to_string().as_bytes(),
        &[fd.as_raw_fd()],
    )
    .with_context(|| format!("linux.seccomp.listenerPath {}: send", path.display()))
}

/// The privilege and environment steps shared by the init and `rt exec`: rlimits, then the
/// bounding set while still root, then the user (keepcaps preserves the capabilities across the
/// switch), the final capability sets, cwd (checked with the user's permissions, and checked to
/// be inside the container: CVE-2024-21626), no_new_privs, umask, fds, signals. One function
/// on purpose: the order of these steps is the security argument, and reads top to bottom.
pub fn finalize<'a>(
    process: &oci_spec::runtime::Process,
    hostproc: RawFd,
    preserve_fds: u32,
    userns: bool,
    seccomp: Option<&'a crate::process::security::seccomp::Filter>,
    trampoline: RawFd,
) -> Result<Ready<'a>> {
    let nnp = process.no_new_privileges().unwrap_or(false);
    // Before any seccomp filter (which may forbid them) and while still privileged (a
    // real-time policy or a lower nice value needs CAP_SYS_NICE).
    if let Some(sched) = process.scheduler() {
        crate::process::security::apply_scheduler(sched)?;
    }
    if let Some(io) = process.io_priority() {
        crate::process::security::apply_io_priority(io)?;
    }
    // Nothing of rt's may reach the container: every fd past stdio and the preserved ones is
    // close-on-exec; the preserved ones must not be. First of all, before a seccomp filter
    // that may refuse close_range or fcntl governs us; what is opened later is O_CLOEXEC.
    let passed = crate::process::fds::note_passed_fds(0);
    for fd in (3..3 + preserve_fds as RawFd).filter(|fd| passed.contains(fd)) {
        sys::set_cloexec(fd, false).with_context(|| format!("--preserve-fds: fd {fd}"))?;
    }
    sys::cloexec_from(3 + preserve_fds).context("mark fds close-on-exec")?;
    let mut notify_fd = None;
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it while we have it
    // (the filter then also governs the rest of this setup, as in runc).
    if let Some(f) = seccomp.filter(|_| !nnp) {
        notify_fd = f.load()?;
    }
    crate::process::security::set_rlimits(process.rlimits().as_deref().unwrap_or(&[]))?;
    let caps = crate::process::security::CapPlan::new(process.capabilities().as_ref())?;
    let mut env = dedup_env(process.env().as_deref().unwrap_or(&[]));
    // As runc: a process without HOME gets its user's home from the container's /etc/passwd
    // (read here, inside the container's root), or "/".
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_of(process.user().uid())));
    }
    let args = process.args().as_ref().context("process.args")?;
    if args.is_empty() || args[0].is_empty() {
        bail!("process.args must not be empty");
    }

    crate::process::security::lsm::apply(
        hostproc,
        process.apparmor_profile().as_deref(),
        process.selinux_label().as_deref(),
    )?;
    caps.apply_bounding()?;
    // As runc: chdir while still privileged, so a cwd the user can't reach (a 0700 home, an
    // `exec --user 0` into a container whose user has no access) works; a cwd only the user
    // can reach (a volume chowned to it, on root_squash NFS) is tried again as the user.
    let cwd_error = |e: std::io::Error| {
        anyhow!(
            "process.cwd {}: {}",
            process.cwd().display(),
            sys::errno_str(&e)
        )
    };
    let chdir_as_user = match std::env::set_current_dir(process.cwd()) {
        Ok(()) => false,
        Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) => true,
        Err(e) => return Err(cwd_error(e)),
    };
    give_stdio_to(process.user().uid())?;
    sys::prctl(libc::PR_SET_KEEPCAPS, 1).context("set keepcaps")?;
    let setgroups_denied = userns && setgroups_denied(hostproc);
    crate::process::security::set_user(process.user(), setgroups_denied)?;
    sys::prctl(libc::PR_SET_KEEPCAPS, 0).context("clear keepcaps")?;
    caps.apply()?;

    if chdir_as_user {
        std::env::set_current_dir(process.cwd()).map_err(cwd_error)?;
    }
    let cwd = std::env::current_dir().context("process.cwd: getcwd")?;
    if !cwd.is_absolute() || cwd.as_os_str().as_bytes().starts_with(b"(unreachable)") {
        bail!(
            "process.cwd {} is outside the container",
            process.cwd().display()
        );
    }
    // After chdir, so a relative args[0] (WORKDIR /app, CMD ./server) resolves like the
    // process would see it, with the process's own permissions.
    let exe = find_executable(&args[0], &env)?;
    if nnp {
        crate::process::security::set_no_new_privs()?;
    }
    // A notify filter is loaded now, so its fd can reach the listener before we block.
    let mut seccomp_late = None;
    if let Some(f) = seccomp.filter(|_| nnp) {
        if f.notify {
            notify_fd = f.load()?;
        } else {
            seccomp_late = Some(f);
        }
    }
    let umask = process.user().umask().unwrap_or(0o022);
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(umask as libc::mode_t) };

    reset_signals(hostproc);

    let to_c = |v: &[String], what: &str| {
        v.iter()
            .map(|s| CString::new(s.as_str()))
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{what} contains a NUL byte"))
    };
    Ok(Ready {
        exe: CString::new(exe.as_os_str().as_bytes()).context("process.args[0]")?,
        args: to_c(args, "process.args")?,
        env: to_c(&env, "process.env")?,
        seccomp_late,
        notify_fd,
        trampoline,
    })
}

fn exec(trampoline: RawFd, exe: &CString, args: &[CString], env: &[CString]) -> Result<Infallible> {
    let e = crate::process::security::exeguard::exec_via(trampoline, exe, args, env);
    // The parent is gone by now; say it where the container's output goes.
    eprintln!("rt: exec {}: {}", exe.to_string_lossy(), sys::errno_str(&e));
    // SAFETY: exiting the failed init.
    unsafe { libc::_exit(127) }
}

/// As runc: stdin, stdout and stderr become the process user's (the owner only: the group is
/// the one devpts or the caller chose), so a non-root process can use its terminal and reopen
/// /dev/stdout (images link log files there). /dev/null stays root's; a file rt may not
/// change (an unmapped owner, a read-only /dev) is left as it is.
fn give_stdio_to(uid: u32) -> Result<()> {
    for fd in 0..3 {
        let Ok(st) = sys::fstat(fd) else { continue };
        let null = st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == libc::makedev(1, 3);
        if st.st_uid == uid || null {
            continue;
        }
        // SAFETY: fchown on one of our own stdio fds.
        if unsafe { libc::fchown(fd, uid, u32::MAX) } != 0 {
            let e = std::io::Error::last_os_error();
            if !matches!(
                e.raw_os_error(),
                Some(libc::EPERM) | Some(libc::EROFS) | Some(libc::EINVAL)
            ) {
                return Err(e).with_context(|| format!("give fd {fd} to uid {uid}"));
            }
        }
    }
    Ok(())
}

/// The home directory /etc/passwd gives `uid`, or "/" (runc's fallback).
fn home_of(uid: u32) -> String {
    crate::passwd::lookup(uid)
        .map(|e| e.home)
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".into())
}

/// One entry per variable, the last value winning, in first-seen order: what runc's init
/// gives a process (so `exec -e FOO=x` overrides the config's FOO).
fn dedup_env(env: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(env.len());
    for e in env {
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
        match out
            .iter_mut()
            .find(|o| o.split_once('=').map_or(o.as_str(), |(k, _)| k) == key)
        {
            Some(slot) => *slot = e.clone(),
            None => out.push(e.clone()),
        }
    }
    out
}

/// PATH lookup with the container's environment, inside the container's root (we have
/// pivoted), so a missing binary fails `create` rather than `start`.
fn find_executable(name: &str, env: &[String]) -> Result<PathBuf> {
    let usable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| {
            use std::os::unix::fs::PermissionsExt;
            m.is_file() && m.permissions().mode() & 0o111 != 0
        })
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        if !usable(&p) {
            bail!("process.args[0] {name:?}: no such executable in the container");
        }
        return Ok(p);
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(name);
        if usable(&p) {
            return Ok(p);
        }
    }
    bail!("process.args[0] {name:?}: executable file not found in $PATH")
}

/// rt ignores SIGPIPE (Rust's default) and blocks signals while it forwards them; the container
/// must start with default dispositions and an empty mask. execve itself resets every handled
/// signal, so only the ignored ones need it: /proc's SigIgn names them (one read, where asking
/// each of the 64 signals is 64 traps).
fn reset_signals(hostproc: RawFd) {
    let ignored = sys::read_string_at(hostproc, Path::new("self/status"))
        .ok()
        .and_then(|s| {
            let hex = s.lines().find_map(|l| l.strip_prefix("SigIgn:"))?.trim();
            u64::from_str_radix(hex, 16).ok()
        })
        .unwrap_or(u64::MAX);
    // The kernel's struct sigaction. The raw call, since musl's signal() refuses 32 to 34,
    // which it keeps for itself, and the caller may have left those ignored as well.
    #[repr(C)]
    struct KSigaction {
        handler: libc::sighandler_t,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }
    let default = KSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: resetting dispositions to SIG_DFL and clearing the mask are always valid; the
    // action is the kernel's layout, with the 8-byte mask rt_sigaction expects.
    unsafe {
        for sig in (1..=64).filter(|s| ignored & 1 << (s - 1) != 0) {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                let act: *const KSigaction = &default;
                libc::syscall(libc::SYS_rt_sigaction, sig, act, 0usize, 8usize);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

fn setgroups_denied(hostproc: RawFd) -> bool {
    let Ok(fd) = sys::openat(hostproc, Path::new("self/setgroups"), libc::O_RDONLY, 0) else {
        return false;
    };
    let mut buf = [0u8; 8];
    // SAFETY: buf is valid for its length.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    n > 0 && buf.starts_with(b"deny")
}
