//! `rt exec`: a new process inside a running container. rt joins the container's pid namespace
//! for its children only, then clone3s straight into the container's cgroup; the child joins
//! every other namespace of the init through its pidfd in one setns(2) and goes through the same
//! privilege steps as the init (process::finalize) before execve.

use anyhow::{Context, Result, bail};
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};
use std::convert::Infallible;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use crate::state::{Dir, Status};
use crate::sys::{self, Forked};

/// What the command line asks for, before it is merged with the container's process.
#[derive(Default)]
pub struct ExecOpts {
    pub process_file: Option<PathBuf>,
    pub args: Vec<String>,
    pub tty: bool,
    pub console_socket: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub preserve_fds: u32,
    pub cgroup: Option<String>,
    pub pidfd_socket: Option<PathBuf>,
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
    pub ignore_paused: bool,
}

/// A `--process` document (runtime-spec `process`), checked. Must never panic or hang on any
/// input (fuzzed: fuzz/fuzz_targets/process.rs).
pub fn parse_process(text: &[u8]) -> Result<Process> {
    // Capabilities rt does not know are dropped with a warning, as in config.json.
    let p: Process = match serde_json::from_slice(text) {
        Err(e) if e.to_string().starts_with("no variant for ") => {
            let mut v: serde_json::Value =
                serde_json::from_slice(text).map_err(|e| anyhow::anyhow!("{e}"))?;
            crate::spec::drop_unknown_capabilities(
                &mut v["capabilities"],
                "--process capabilities",
            );
            serde_json::from_value(v).map_err(|e| anyhow::anyhow!("{e}"))?
        }
        other => other.map_err(|e| anyhow::anyhow!("{e}"))?,
    };
    crate::spec::check_process(&p, "process")?;
    crate::process::security::CapPlan::new(p.capabilities().as_ref())?;
    Ok(p)
}

/// The process to run: the `--process` file as given, or (like runc) the container's own
/// process with the command line's overrides.
fn build_process(spec: &Spec, o: &ExecOpts) -> Result<Process> {
    if let Some(path) = &o.process_file {
        let text = crate::sys::read(path)
            .map_err(|e| anyhow::anyhow!("--process {}: {}", path.display(), sys::errno_str(&e)))?;
        return parse_process(&text).with_context(|| format!("--process {}", path.display()));
    }
    if o.args.is_empty() {
        bail!("exec needs a command (or --process FILE)");
    }
    let mut p = spec
        .process()
        .clone()
        .context("the container's config has no process")?;
    p.set_args(Some(o.args.clone()));
    p.set_terminal(Some(o.tty));
    if let Some(cwd) = &o.cwd {
        if !cwd.is_absolute() {
            bail!("--cwd {cwd:?} must be an absolute path");
        }
        p.set_cwd(cwd.clone());
    }
    // As runc (and as create checks process.env): a bare name is refused, not dropped.
    if let Some(e) = o
        .env
        .iter()
        .find(|e| !e.contains('=') || e.starts_with('='))
    {
        bail!("--env {e:?} is not of the form KEY=VALUE");
    }
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(o.env.iter().cloned());
    p.set_env(Some(env));
    if o.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(a) = &o.apparmor {
        p.set_apparmor_profile(Some(a.clone()));
    }
    if let Some(l) = &o.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    crate::process::security::lsm::check(
        p.apparmor_profile().as_deref(),
        p.selinux_label().as_deref(),
        None,
    )?;
    if let Some(u) = &o.user {
        let (uid, gid) = match u.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (u.as_str(), None),
        };
        let uid: u32 = uid
            .parse()
            .with_context(|| format!("--user {u:?}: uid must be a number"))?;
        let user = p.user_mut();
        user.set_uid(uid);
        if let Some(g) = gid {
            user.set_gid(
                g.parse()
                    .with_context(|| format!("--user {u:?}: gid must be a number"))?,
            );
        }
    }
    if !o.additional_gids.is_empty() {
        let user = p.user_mut();
        let mut gids = user.additional_gids().clone().unwrap_or_default();
        gids.extend(&o.additional_gids);
        user.set_additional_gids(Some(gids));
    }
    if !o.caps.is_empty() {
        // runc warns (once) and goes on without a capability it does not know.
        let extra: Vec<oci_spec::runtime::Capability> = o
            .caps
            .iter()
            .filter_map(|c| {
                serde_json::from_value(serde_json::Value::String(c.clone()))
                    .map_err(|_| {
                        crate::logging::warn(&format!("--cap {c}: unknown capability: ignored"))
                    })
                    .ok()
            })
            .collect();
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let add = |set: Option<oci_spec::runtime::Capabilities>| {
            let mut set = set.unwrap_or_default();
            set.extend(extra.iter().copied());
            set
        };
        caps.set_bounding(Some(add(caps.bounding().clone())));
        caps.set_effective(Some(add(caps.effective().clone())));
        caps.set_permitted(Some(add(caps.permitted().clone())));
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

/// Runs the exec; returns the process's exit status (0 when detached).
pub fn exec(root: &Path, id: &str, o: &ExecOpts) -> Result<i32> {
    exec_in(root, id, o).map_err(|e| {
        // A container that stopped (or went) while we set up, as a racing kill or delete
        // makes it, is told as such, whichever step noticed first.
        match crate::state::snapshot(root, id) {
            Err(gone) => gone,
            Ok((dir, st)) if st.status(&dir) == Status::Stopped => {
                anyhow::anyhow!("cannot exec in a stopped container")
            }
            Ok(_) => e,
        }
    })
}

/// `rt exec` proper. The steps around clone3 stay in one frame: everything the child is
/// handed (pidfds, the host /proc handle, the trampoline, the cgroup, the console socket)
/// must be alive and owned here when it forks, and is closed here after.
fn exec_in(root: &Path, id: &str, o: &ExecOpts) -> Result<i32> {
    crate::process::fds::note_passed_fds(o.preserve_fds);
    let dir = Dir::open(root, id)?;
    let st = dir.load()?;
    match st.status(&dir.path) {
        Status::Stopped => bail!("cannot exec in a stopped container"),
        // The new process would join the frozen cgroup and freeze before it could exec.
        Status::Paused if !o.ignore_paused => {
            bail!("cannot exec in a paused container (resume it, or pass --ignore-paused)")
        }
        Status::Created | Status::Running | Status::Paused => {}
    }
    let spec = crate::state::load_spec(&dir.path)?;
    let process = build_process(&spec, o)?;
    let terminal = process.terminal().unwrap_or(false);
    crate::process::console::check_usage(terminal, o.console_socket.as_ref(), o.detach)?;

    let pidfd = crate::container::init_pidfd(&st).context("container not running")?;
    let hostproc = crate::container::create::open_hostproc()?;
    // A container without a mount namespace of its own shares ours and is chrooted: the new
    // process goes to the init's root (taken now, while the init is known to be the one).
    let chroot = match st.shared_mounts {
        Some(_) => Some(
            sys::openat(
                hostproc.as_raw_fd(),
                Path::new(&format!("{}/root", st.pid)),
                libc::O_PATH | libc::O_DIRECTORY,
                0,
            )
            .context("open the container's root")?,
        ),
        None => None,
    };
    let trampoline = crate::process::security::exeguard::trampoline()?;
    let cgroup_fd = match &st.cgroup {
        Some(cg) => Some(open_cgroup(cg, o.cgroup.as_deref())?),
        None => None,
    };
    let v1_cgroups = v1_cgroups(&st.cgroup_v1, o.cgroup.as_deref())?;
    let (console, console_rx) =
        crate::container::create::console_for(o.console_socket.as_deref(), terminal, o.detach)?;
    let (flags, userns) = namespaces_to_join(&spec);
    let staged = join_pid_namespace(&pidfd, flags, userns)?;
    let seccomp = spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(|s| {
            let cache = root.join(crate::container::create::SECCOMP_CACHE);
            crate::process::security::seccomp::build(s, Some(&cache))
        })
        .transpose()?;
    let (parent_end, child_end) = crate::process::Channel::pair()?;
    crate::process::security::initial_affinity(&process)?;
    // Block the signals we forward before the child exists: one arriving while it is set up
    // (a Ctrl-C) waits for wait_forwarding to pass it on, instead of killing rt and leaving
    // the process running without anyone to wait for it. The child clears its mask before
    // execve (process::finalize).
    let mask = crate::container::run::forwarded_signals();
    // SAFETY: mask is a valid sigset_t.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &mask, std::ptr::null_mut()) };
    // Inherited by the child, which becomes visible in the container's pid namespace at once.
    sys::prctl(libc::PR_SET_DUMPABLE, 0).context("set non-dumpable")?;
    let forked =
        sys::clone3(0, cgroup_fd.as_ref().map(|f| f.as_raw_fd()), true).context("clone3")?;
    let (pid, child_pidfd) = match forked {
        Forked::Child => {
            drop(parent_end);
            // SAFETY: closing the inherited state lock, which must stay rt's alone.
            unsafe { libc::close(dir.lock_fd()) };
            let a = ChildArgs {
                pidfd: pidfd.as_raw_fd(),
                ns_flags: if staged {
                    flags
                } else {
                    flags & !libc::CLONE_NEWPID
                },
                staged,
                userns,
                hostproc: hostproc.as_raw_fd(),
                console: console.as_ref().map(|c| c.as_raw_fd()),
                process: &process,
                personality: spec.linux().as_ref().and_then(|l| l.personality().as_ref()),
                memory_policy: spec
                    .linux()
                    .as_ref()
                    .and_then(|l| l.memory_policy().as_ref()),
                preserve_fds: o.preserve_fds,
                seccomp: seccomp.as_ref(),
                chan: &child_end,
                trampoline: trampoline.as_raw_fd(),
                chroot: chroot.as_ref().map(|f| f.as_raw_fd()),
                v1_cgroups: &v1_cgroups,
            };
            crate::process::child_main(&child_end, || child(&a))
        }
        Forked::Parent { pid, pidfd } => (pid, pidfd.context("clone3 returned no pidfd")?),
    };
    drop(child_end);
    drop(console);
    let followed = Followed {
        pid,
        pidfd: child_pidfd,
    };
    let setup = followed.set_up(&parent_end, &st, &dir, &spec, console_rx, o);
    let (
        Followed {
            pid,
            pidfd: child_pidfd,
        },
        master,
    ) = setup?;
    drop(dir);
    if o.detach {
        return Ok(0);
    }
    let _raw = master
        .as_ref()
        .map(|_| crate::process::console::RawMode::enter());
    crate::container::run::wait_forwarding(pid, &child_pidfd, master.as_ref(), &mask)
}

/// The namespaces the container has (new or joined): those are the init's to join. A type
/// the config leaves out is the host's, which we are in already. The CLONE_NEW* flags, and
/// whether a user namespace is among them.
fn namespaces_to_join(spec: &oci_spec::runtime::Spec) -> (i32, bool) {
    let mut flags = 0;
    let mut userns = false;
    for ns in spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
    {
        userns |= ns.typ() == LinuxNamespaceType::User;
        flags |= crate::spec::namespace_flag(ns.typ());
    }
    (flags, userns)
}

/// Joins the init's pid namespace, so rt's next child is born in it (only rt's future
/// children move). Rootless, rt has no rights over a pid namespace its container's user
/// namespace owns; then the child joins everything (user first) and forks once more: true,
/// staged.
fn join_pid_namespace(pidfd: &OwnedFd, flags: i32, userns: bool) -> Result<bool> {
    if flags & libc::CLONE_NEWPID == 0 {
        return Ok(false);
    }
    match sys::setns(pidfd.as_raw_fd(), libc::CLONE_NEWPID) {
        Ok(()) => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) && userns => Ok(true),
        // The init died since the state was read (a racing kill or delete).
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
            bail!("cannot exec in a stopped container")
        }
        Err(e) => Err(e).context("join the container's pid namespace"),
    }
}

/// The exec'd process as rt follows it: its pid and pidfd (the grandchild's, when staged).
struct Followed {
    pid: i32,
    pidfd: OwnedFd,
}

impl Followed {
    /// Until the child has exec'd and the caller has its pid file, pidfd and terminal, a
    /// failure must not leave the process running: it is killed and reaped, and the error
    /// returned. On success, the process and its terminal's master (if rt relays it).
    fn set_up(
        mut self,
        parent_end: &crate::process::Channel,
        st: &crate::state::State,
        dir: &Dir,
        spec: &oci_spec::runtime::Spec,
        console_rx: Option<OwnedFd>,
        o: &ExecOpts,
    ) -> Result<(Followed, Option<OwnedFd>)> {
        match self.follow(parent_end, st, dir, spec, console_rx, o) {
            Ok(master) => Ok((self, master)),
            Err(e) => {
                let _ = sys::pidfd_send_signal(&self.pidfd, libc::SIGKILL);
                // SAFETY: reaping our own child (already reaped is fine: waitpid just fails).
                unsafe { libc::waitpid(self.pid, std::ptr::null_mut(), 0) };
                Err(e)
            }
        }
    }

    fn follow(
        &mut self,
        parent_end: &crate::process::Channel,
        st: &crate::state::State,
        dir: &Dir,
        spec: &oci_spec::runtime::Spec,
        console_rx: Option<OwnedFd>,
        o: &ExecOpts,
    ) -> Result<Option<OwnedFd>> {
        // The child says nothing on success (its end closes at execve, close-on-exec), except
        // to hand over a seccomp notify fd.
        while let Some((msg, fd)) = parent_end.recv_fd()? {
            if let Some(n) = msg.strip_prefix("pid ") {
                // Staged: the process that execs is the grandchild (our child, by CLONE_PARENT).
                let n: i32 = n.parse().context("sync: bad pid")?;
                // SAFETY: reaping the intermediate child, which exits right after saying this.
                unsafe { libc::waitpid(self.pid, std::ptr::null_mut(), 0) };
                self.pid = n;
                self.pidfd = sys::pidfd_open(n).context("pidfd_open")?;
                continue;
            }
            if msg == "seccomp"
                && let Some(fd) = fd
            {
                let state = st.to_json(st.status(&dir.path));
                crate::process::send_to_seccomp_agent(spec, &state, self.pid, &fd)?;
                continue;
            }
            // SAFETY: reaping our own failed child.
            unsafe { libc::waitpid(self.pid, std::ptr::null_mut(), 0) };
            bail!("{}", msg.strip_prefix("error ").unwrap_or(&msg));
        }
        let master = console_rx
            .map(|rx| crate::process::console::receive_master(&rx))
            .transpose()?;
        if let Some(p) = &o.pid_file {
            crate::state::write_pid_file(p, self.pid)?;
        }
        if let Some(p) = &o.pidfd_socket {
            crate::container::create::send_pidfd(p, &self.pidfd)?;
        }
        Ok(master)
    }
}

/// The v1 cgroups an exec'd process joins: the container's, or with `--cgroup
/// [controller[,controller]:]path` a sub-cgroup of them where it exists (only in the named
/// controllers' hierarchies, if any are named).
fn v1_cgroups(dirs: &[std::path::PathBuf], sub: Option<&str>) -> Result<Vec<std::path::PathBuf>> {
    let Some(s) = sub else {
        return Ok(dirs.to_vec());
    };
    let (ctrls, path) = match s.rsplit_once(':') {
        Some((c, p)) => (Some(c), p),
        None => (None, s),
    };
    if Path::new(path)
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        bail!("--cgroup {s}: must be a relative path below the container's cgroup");
    }
    let named: Vec<&std::path::PathBuf> = ctrls
        .map(|c| {
            c.split(',')
                .filter_map(|c| crate::cgroups::v1::dir_for(dirs, c))
                .collect()
        })
        .unwrap_or_default();
    // A sub-cgroup made in only some hierarchies (typically only the v2 one on a hybrid
    // host) leaves the process in the container's own cgroup in the others.
    Ok(dirs
        .iter()
        .map(|d| {
            let sub = d.join(path);
            if (ctrls.is_none() || named.contains(&d)) && sub.is_dir() {
                sub
            } else {
                d.clone()
            }
        })
        .collect())
}

fn open_cgroup(container: &str, sub: Option<&str>) -> Result<OwnedFd> {
    let rel = match sub {
        None => container.to_string(),
        Some(s) => {
            // runc's `[controller:]path`; on cgroup v2 the controller part names nothing.
            let path = s.rsplit_once(':').map_or(s, |(_, p)| p);
            if Path::new(path)
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                bail!("--cgroup {s}: must be a relative path below the container's cgroup");
            }
            format!("{container}/{path}")
        }
    };
    let dir = crate::cgroups::v2::v2_mount()
        .context("no cgroup v2 mount")?
        .join(rel.trim_start_matches('/'));
    crate::cgroups::cgfs::open_dir(&dir).with_context(|| format!("open cgroup {}", dir.display()))
}

struct ChildArgs<'a> {
    pidfd: RawFd,
    ns_flags: i32,
    userns: bool,
    hostproc: RawFd,
    console: Option<RawFd>,
    process: &'a Process,
    /// The container's linux.personality and memoryPolicy, which its exec'd processes get too.
    personality: Option<&'a oci_spec::runtime::LinuxPersonality>,
    memory_policy: Option<&'a oci_spec::runtime::LinuxMemoryPolicy>,
    preserve_fds: u32,
    seccomp: Option<&'a crate::process::security::seccomp::Filter>,
    chan: &'a crate::process::Channel,
    trampoline: RawFd,
    /// Whether this child must fork once more to enter the pid namespace it joined.
    staged: bool,
    /// The container's root to chroot into (a container sharing the runtime's mount
    /// namespace).
    chroot: Option<RawFd>,
    /// The container's v1 cgroups (v1 and hybrid hosts), which the child joins itself.
    v1_cgroups: &'a [std::path::PathBuf],
}

fn child(a: &ChildArgs) -> Result<Infallible> {
    sys::prctl(libc::PR_SET_DUMPABLE, 0).context("set non-dumpable")?;
    // The v1 cgroups first, while their host paths still resolve (before joining the mount
    // namespace): "0" moves the writer itself. The v2 one came with clone3.
    crate::process::init::join_v1_self(a.v1_cgroups)?;
    if a.ns_flags != 0 {
        match sys::setns(a.pidfd, a.ns_flags) {
            Ok(()) => {}
            // The init died since the state was read (a racing kill or delete).
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                bail!("cannot exec in a stopped container")
            }
            Err(e) => return Err(e).context("join the container's namespaces"),
        }
    }
    if let Some(fd) = a.chroot {
        // SAFETY: fchdir on an fd we hold.
        if unsafe { libc::fchdir(fd) } != 0 {
            return Err(std::io::Error::last_os_error()).context("chdir to the container's root");
        }
        crate::process::rootfs::chroot_into(Path::new("."))?;
    }
    if a.staged {
        match sys::clone_parent_gated().context("clone3")? {
            Forked::Child => {}
            Forked::Parent { pid, .. } => {
                a.chan.send(&format!("pid {pid}"))?;
                // SAFETY: the intermediate process leaves without running anything else.
                unsafe { libc::_exit(0) }
            }
        }
    }
    // As for the init: the exec'd process would otherwise keep rt's own score.
    if let Some(adj) = a.process.oom_score_adj() {
        crate::process::security::set_oom_score_adj(a.hostproc, adj)?;
    }
    if a.process.terminal().unwrap_or(false) {
        // SAFETY: setsid has no arguments; the new session gets the pty as its terminal.
        unsafe { libc::setsid() };
        let root = crate::process::rootfs::Root::open(Path::new("/"))?;
        let pty = crate::process::console::open_pty(&root, a.process)?;
        if let Some(sock) = a.console {
            crate::process::console::send_master(sock, &pty.master)?;
        }
        crate::process::console::make_controlling(&pty.slave)?;
    }
    if let Some(p) = a.personality {
        crate::process::security::apply_personality(p)?;
    }
    if let Some(m) = a.memory_policy {
        crate::process::security::apply_memory_policy(m)?;
    }
    // In the container's cgroups by now (v2 from birth, v1 joined above).
    crate::process::security::exec_final_affinity(a.process)?;
    let ready = crate::process::finalize(
        a.process,
        a.hostproc,
        a.preserve_fds,
        a.userns,
        a.seccomp,
        a.trampoline,
    )?;
    if let Some(fd) = ready.notify_fd {
        a.chan.send_fd("seccomp", fd)?;
    }
    ready.exec()
}
