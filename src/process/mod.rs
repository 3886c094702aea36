//! Starting a container's init: clone3 straight into the new namespaces and cgroup (no re-exec
//! of rt), the parent's side of the setup conversation (id maps, errors, "ready"), and the
//! child's ordered setup up to the wait for `start`.
//!
//! Two shapes, chosen by the config:
//! - fast: nothing to join and no time offsets. One clone3 with every CLONE_NEW* flag makes the
//!   init directly.
//! - staged: a first child joins the namespaces given by path (see join_namespaces), unshares
//!   the new ones, writes time offsets, then clone3s the init with CLONE_PARENT (so rt can still
//!   wait for it) and exits. pid and time namespaces only apply to children, hence the second
//!   clone.

pub mod console;
pub mod fds;
pub mod netdev;
pub mod rootfs;
pub mod security;

use anyhow::{Context, Result, anyhow, bail};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::hooks::Phase;
use crate::spec::{Bundle, namespace_flag};
use crate::sys::{self, Forked};

/// The parent/child channel: a SOCK_SEQPACKET pair, one message per datagram.
pub struct Channel(OwnedFd);

impl Channel {
    pub fn pair() -> Result<(Channel, Channel)> {
        let mut fds = [0; 2];
        // SAFETY: fds is a valid out array of two ints.
        if unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        } != 0
        {
            return Err(std::io::Error::last_os_error()).context("socketpair");
        }
        // SAFETY: both fds were just created and are owned by nobody else.
        unsafe {
            Ok((
                Channel(OwnedFd::from_raw_fd(fds[0])),
                Channel(OwnedFd::from_raw_fd(fds[1])),
            ))
        }
    }

    pub fn send(&self, msg: &str) -> Result<()> {
        sys::write_fd(self.0.as_raw_fd(), msg.as_bytes())
            .map(drop)
            .context("sync: send")
    }

    /// None when the other side is gone.
    pub fn recv(&self) -> Result<Option<String>> {
        Ok(self.recv_fd()?.map(|(m, _)| m))
    }

    /// A message and the fd it carries, if any (the seccomp notify fd travels this way).
    pub fn recv_fd(&self) -> Result<Option<(String, Option<OwnedFd>)>> {
        loop {
            match sys::recv_msg(self.0.as_raw_fd()) {
                Ok((data, _)) if data.is_empty() => return Ok(None),
                Ok((data, fd)) => {
                    return Ok(Some((String::from_utf8_lossy(&data).into_owned(), fd)));
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => return Err(e).context("sync: receive"),
            }
        }
    }

    pub fn send_fd(&self, msg: &str, fd: RawFd) -> Result<()> {
        sys::send_fds(self.0.as_raw_fd(), msg.as_bytes(), &[fd]).context("sync: send fd")
    }

    fn expect(&self, what: &str) -> Result<()> {
        match self.recv()? {
            Some(m) if m == what => Ok(()),
            Some(m) => bail!("sync: expected {what}, got {m}"),
            None => bail!("sync: rt went away"),
        }
    }
}

/// What the init needs beyond the spec, all prepared by the parent in the host's context.
pub struct InitArgs<'a> {
    pub id: &'a str,
    pub bundle: &'a Bundle,
    /// O_PATH fd of the exec fifo the init blocks on until `start`.
    pub fifo: RawFd,
    /// A verified procfs of the host, used for every /proc access of the init: the container
    /// could mount anything on its own /proc.
    pub hostproc: RawFd,
    pub console_socket: Option<RawFd>,
    pub preserve_fds: u32,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub cgroup_fd: Option<RawFd>,
    /// Per mount entry, the user namespace of its idmapped bind (made by rt beforehand).
    pub idmaps: &'a [Option<RawFd>],
    /// The sealed exec trampoline memfd.
    pub trampoline: RawFd,
    /// The compiled linux.seccomp filter, loaded by the init.
    pub seccomp: Option<&'a crate::process::security::seccomp::Filter>,
    /// fds of the parent the children must close at once (the state lock).
    pub close_in_child: &'a [RawFd],
    /// The container's cgroup v2 directory, if it has one.
    pub v2_cgroup: Option<PathBuf>,
    /// The container's v1 cgroups (v1 and hybrid hosts): joined before the init unshares its
    /// cgroup namespace, so that namespace is rooted at the container's cgroup in each.
    pub v1_cgroups: &'a [PathBuf],
    /// Set when rt's parent side puts the init in its cgroup (the systemd driver: systemd
    /// moves it into a new unit): called with the pid of the first child, which waits for it
    /// before anything else, so the init's cgroup namespace is rooted in its cgroup.
    pub cgroup_by_parent: Option<&'a dyn Fn(i32) -> Result<()>>,
}

pub struct Spawned {
    pub pid: i32,
    pub pidfd: OwnedFd,
}

struct NsPlan {
    /// CLONE_NEW* flags of namespaces to create (cgroup excluded: the init unshares it once
    /// it sits in its cgroup, so the namespace is rooted there).
    new_flags: i32,
    new_cgroupns: bool,
    joins: Vec<(LinuxNamespaceType, PathBuf)>,
    offsets: Vec<(String, i64, u32)>,
    /// Whether the init may ask rt for bind sources it can't reach (see rootfs::Setup): in a
    /// user namespace, from an rt that has privileges the init lacks. A rootless rt's are no
    /// more than the init's.
    host_sources: bool,
}

fn plan(spec: &Spec) -> NsPlan {
    let mut p = NsPlan {
        new_flags: 0,
        new_cgroupns: false,
        joins: Vec::new(),
        offsets: Vec::new(),
        host_sources: false,
    };
    let Some(linux) = spec.linux() else { return p };
    for ns in linux.namespaces().iter().flatten() {
        p.host_sources |= ns.typ() == LinuxNamespaceType::User && !sys::rootless();
        match ns.path() {
            Some(path) => p.joins.push((ns.typ(), path.clone())),
            None if ns.typ() == LinuxNamespaceType::Cgroup => p.new_cgroupns = true,
            None => p.new_flags |= namespace_flag(ns.typ()),
        }
    }
    for (clock, off) in linux.time_offsets().iter().flatten() {
        p.offsets.push((
            clock.clone(),
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0),
        ));
    }
    p.offsets.sort();
    p
}

/// stdio on the host's /dev/null (a detached container's, from conmon or `run -d`) is
/// reopened on the container's own, as runc does: a file of a mount the container can't see
/// is one CRIU can't checkpoint, and the container needn't hold the host's /dev open.
fn reopen_dev_null() {
    let is_null = |st: &libc::stat| {
        st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == libc::makedev(1, 3)
    };
    let Ok(null) = sys::open(Path::new("/dev/null"), libc::O_RDWR, 0) else {
        return;
    };
    if !sys::fstat(null.as_raw_fd()).is_ok_and(|st| is_null(&st)) {
        return;
    }
    for fd in 0..3 {
        if sys::fstat(fd).is_ok_and(|st| is_null(&st)) {
            // SAFETY: dup3 onto a stdio number; both fds are valid.
            unsafe { libc::dup3(null.as_raw_fd(), fd, 0) };
        }
    }
}

fn has_net_devices(spec: &oci_spec::runtime::Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.net_devices().as_ref())
        .is_some_and(|d| !d.is_empty())
}

/// Runs `f` as a forked child: errors go to the parent over the channel, and the child never
/// returns into the parent's stack (whose Drop guards would undo the parent's work).
pub fn child_main(chan: &Channel, f: impl FnOnce() -> Result<Infallible>) -> ! {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    let msg = match r {
        Ok(Err(e)) => format!("error {e:#}"),
        Ok(Ok(never)) => match never {},
        Err(_) => "error container init panicked".to_string(),
    };
    let _ = chan.send(&msg);
    // SAFETY: _exit never returns and skips atexit handlers and destructors on purpose.
    unsafe { libc::_exit(1) }
}

/// Creates the container's init and returns once it is blocked waiting for `start`.
pub fn spawn(a: &InitArgs) -> Result<Spawned> {
    let spec = &a.bundle.spec;
    let plan = plan(spec);
    let staged = !plan.joins.is_empty() || !plan.offsets.is_empty();
    let (parent_end, child_end) = Channel::pair()?;
    let new_userns = plan.new_flags & libc::CLONE_NEWUSER != 0;

    // Children inherit this: no window between clone3 and the init's own prctl in which a
    // process of a joined pid namespace could ptrace it or open its fds. Rootless, the child's
    // /proc files must stay ours until we have written its id maps; it turns non-dumpable
    // itself right after.
    if !sys::rootless() {
        sys::prctl(libc::PR_SET_DUMPABLE, 0).context("set non-dumpable")?;
    }
    let first_flags = if staged { 0 } else { plan.new_flags as u64 };
    let forked = sys::clone3(first_flags, a.cgroup_fd, true).context("clone3")?;
    let (first_pid, first_pidfd) = match forked {
        Forked::Child => {
            drop(parent_end);
            for fd in a.close_in_child {
                // SAFETY: closing an fd this child inherited and never uses.
                unsafe { libc::close(*fd) };
            }
            child_main(&child_end, || {
                if staged {
                    stage1(a, &plan, &child_end)
                } else {
                    init(a, &plan, &child_end, new_userns, false)
                }
            })
        }
        Forked::Parent { pid, pidfd } => (pid, pidfd.context("clone3 returned no pidfd")?),
    };
    drop(child_end);

    let mut guard = KillGuard {
        pids: vec![(first_pid, Some(first_pidfd))],
    };
    let mut init_pid = if staged { None } else { Some(first_pid) };
    loop {
        let (msg, fd) = match parent_end.recv_fd()? {
            Some(m) => m,
            None => bail!("container init exited during setup{}", exit_note(first_pid)),
        };
        if msg == "cgroup" {
            let enter = a
                .cgroup_by_parent
                .context("sync: cgroup request without a cgroup driver")?;
            enter(first_pid)?;
            parent_end.send("go")?;
        } else if msg == "seccomp" {
            let fd = fd.context("sync: seccomp message without an fd")?;
            let pid = init_pid.context("sync: seccomp before the init's pid was known")?;
            let st = crate::state::hook_state(a.id, pid, "creating", a.bundle);
            send_to_seccomp_agent(spec, &st, pid, &fd)?;
        } else if let Some(path) = msg.strip_prefix("source ") {
            let pid = init_pid.context("sync: source before the init's pid was known")?;
            match open_source_for(a.hostproc, pid, Path::new(path)) {
                Ok(fd) => parent_end.send_fd("source", fd.as_raw_fd())?,
                // The init reports it, with the mount entry it was for.
                Err(e) => parent_end.send(&format!("error {e:#}"))?,
            }
        } else if msg == "map" {
            // In a new user namespace the child can't write host cgroup files: we move it (its
            // init child, if any, is born there).
            crate::cgroups::v1::attach(a.v1_cgroups, first_pid)?;
            write_id_maps(first_pid, spec)?;
            parent_end.send("go")?;
        } else if msg == "netdevs" {
            let pid = init_pid.context("sync: netdevs before the init's pid was known")?;
            let devices = spec.linux().as_ref().and_then(|l| l.net_devices().as_ref());
            let netns = sys::openat(
                a.hostproc,
                Path::new(&format!("{pid}/ns/net")),
                libc::O_RDONLY,
                0,
            )
            .context("open the init's network namespace")?;
            crate::process::netdev::move_all(
                devices.context("sync: netdevs without any")?,
                &netns,
            )?;
            parent_end.send("go")?;
        } else if msg == "hooks" {
            // The namespaces and mounts exist, pivot_root has not happened: the point where
            // prestart and createRuntime hooks run, in rt's (the runtime's) namespaces.
            let pid = init_pid.context("sync: hooks before the init's pid was known")?;
            let st = crate::state::hook_state(a.id, pid, "creating", a.bundle);
            crate::hooks::run(spec.hooks().as_ref(), crate::hooks::Phase::Prestart, &st)?;
            crate::hooks::run(
                spec.hooks().as_ref(),
                crate::hooks::Phase::CreateRuntime,
                &st,
            )?;
            parent_end.send("go")?;
        } else if let Some(pid) = msg.strip_prefix("pid ") {
            let pid: i32 = pid.parse().context("sync: bad pid")?;
            reap(first_pid);
            guard.pids.push((pid, sys::pidfd_open(pid).ok()));
            init_pid = Some(pid);
        } else if msg == "ready" {
            break;
        } else if let Some(err) = msg.strip_prefix("error ") {
            bail!("{err}");
        } else {
            bail!("sync: unexpected message {msg:?}");
        }
    }
    let pid = init_pid.context("sync: ready before the init's pid was known")?;
    let pidfd = match guard.pids.pop() {
        Some((p, Some(fd))) if p == pid => fd,
        _ => sys::pidfd_open(pid).context("pidfd_open init")?,
    };
    guard.pids.clear();
    Ok(Spawned { pid, pidfd })
}

/// Kills and reaps half-made children when setup fails.
struct KillGuard {
    pids: Vec<(i32, Option<OwnedFd>)>,
}

impl Drop for KillGuard {
    fn drop(&mut self) {
        for (pid, fd) in self.pids.drain(..).rev() {
            match fd {
                Some(fd) => {
                    let _ = sys::pidfd_send_signal(&fd, libc::SIGKILL);
                }
                // SAFETY: pid is our own child, not yet reaped, so it can't have been reused.
                None => unsafe {
                    libc::kill(pid, libc::SIGKILL);
                },
            }
            reap(pid);
        }
    }
}

fn reap(pid: i32) -> Option<i32> {
    let mut status = 0;
    // SAFETY: waitpid on our own child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    (r == pid).then_some(status)
}

fn exit_note(pid: i32) -> String {
    let mut status = 0;
    // SAFETY: non-blocking waitpid on our own child; it is reaped again (harmlessly) later.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if r != pid {
        return String::new();
    }
    if libc::WIFSIGNALED(status) {
        format!(" (killed by signal {})", libc::WTERMSIG(status))
    } else {
        format!(" (exit status {})", libc::WEXITSTATUS(status))
    }
}

/// The parent writes the maps: it is root in the user namespace's parent, so any ranges are
/// allowed and setgroups stays available to the container.
fn write_id_maps(pid: i32, spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref().context("no linux section")?;
    if sys::rootless() {
        return write_id_maps_rootless(pid, linux);
    }
    let fmt = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.iter()
            .flatten()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect::<String>()
    };
    for (file, maps, field) in [
        ("uid_map", fmt(linux.uid_mappings()), "linux.uidMappings"),
        ("gid_map", fmt(linux.gid_mappings()), "linux.gidMappings"),
    ] {
        if maps.is_empty() {
            continue;
        }
        std::fs::write(format!("/proc/{pid}/{file}"), &maps)
            .map_err(|e| anyhow!("{field}: write /proc/{pid}/{file}: {}", sys::errno_str(&e)))?;
    }
    Ok(())
}

/// Without root, a user may map only itself (after denying setgroups), or use the setuid
/// newuidmap/newgidmap helpers for the ranges /etc/subuid and /etc/subgid grant it.
fn write_id_maps_rootless(pid: i32, linux: &oci_spec::runtime::Linux) -> Result<()> {
    // SAFETY: geteuid/getegid cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let uids = linux.uid_mappings().clone().unwrap_or_default();
    let gids = linux.gid_mappings().clone().unwrap_or_default();
    let only_self = |m: &[oci_spec::runtime::LinuxIdMapping], id: u32| {
        m.len() == 1 && m[0].size() == 1 && m[0].host_id() == id
    };
    for (maps, own, file, helper, field) in [
        (&uids, uid, "uid_map", "newuidmap", "linux.uidMappings"),
        (&gids, gid, "gid_map", "newgidmap", "linux.gidMappings"),
    ] {
        if only_self(maps, own) {
            if file == "gid_map" {
                std::fs::write(format!("/proc/{pid}/setgroups"), "deny")
                    .map_err(|e| anyhow!("{field}: deny setgroups: {}", sys::errno_str(&e)))?;
            }
            let line = format!("{} {} 1\n", maps[0].container_id(), own);
            std::fs::write(format!("/proc/{pid}/{file}"), line)
                .map_err(|e| anyhow!("{field}: write {file}: {}", sys::errno_str(&e)))?;
            continue;
        }
        let mut cmd = std::process::Command::new(helper);
        cmd.arg(pid.to_string());
        for m in maps.iter() {
            cmd.args([
                m.container_id().to_string(),
                m.host_id().to_string(),
                m.size().to_string(),
            ]);
        }
        let out = cmd.output().map_err(|e| {
            anyhow!(
                "{field}: mapping ids other than your own needs {helper} (Debian package uidmap): {}",
                sys::errno_str(&e)
            )
        })?;
        if !out.status.success() {
            bail!(
                "{field}: {helper}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(())
}

fn open_ns_files(
    joins: &[(LinuxNamespaceType, PathBuf)],
) -> Result<Vec<(LinuxNamespaceType, OwnedFd)>> {
    let mut fds = Vec::new();
    for (t, p) in joins {
        let fd = sys::open(p, libc::O_RDONLY, 0).with_context(|| {
            format!(
                "linux.namespaces: {} path {}",
                crate::spec::namespace_name(*t),
                p.display()
            )
        })?;
        fds.push((*t, fd));
    }
    // Mount last: it changes how paths resolve (the user namespace is join_namespaces' care).
    fds.sort_by_key(|(t, _)| *t == LinuxNamespaceType::Mount);
    Ok(fds)
}

/// Joins the namespaces given by path. Each is tried before the user namespace: rt's host
/// privileges cover namespaces the joined user namespace doesn't own (the host's network, say),
/// and once inside it they are gone. What that refuses (a rootless rt, which has privileges
/// only inside the user namespace) is joined after it. Mount comes last in each round, since
/// it changes how paths resolve.
fn join_namespaces(fds: Vec<(LinuxNamespaceType, OwnedFd)>) -> Result<()> {
    let join = |t: LinuxNamespaceType, fd: &OwnedFd| sys::setns(fd.as_raw_fd(), namespace_flag(t));
    let context = |t: LinuxNamespaceType| {
        format!(
            "linux.namespaces: join {} namespace",
            crate::spec::namespace_name(t)
        )
    };
    let (user, rest): (Vec<_>, Vec<_>) = fds
        .into_iter()
        .partition(|(t, _)| *t == LinuxNamespaceType::User);
    let mut later = Vec::new();
    for (t, fd) in rest {
        match join(t, &fd) {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) && !user.is_empty() => {
                later.push((t, fd))
            }
            r => r.with_context(|| context(t))?,
        }
    }
    for (t, fd) in user.iter().chain(&later) {
        join(*t, fd).with_context(|| context(*t))?;
    }
    Ok(())
}

fn stage1(a: &InitArgs, plan: &NsPlan, chan: &Channel) -> Result<Infallible> {
    // The init, forked from here, is born in the cgroup rt's parent side puts us in.
    wait_for_cgroup(a, chan)?;
    // Join the v1 cgroups while still in the runtime's namespaces, as its root: after joining
    // a user or mount namespace the host's cgroup files may be out of reach. The init, forked
    // from here, is born in them.
    join_v1_self(a.v1_cgroups)?;
    join_namespaces(open_ns_files(&plan.joins)?)?;
    let joined_user = plan
        .joins
        .iter()
        .any(|(t, _)| *t == LinuxNamespaceType::User);
    if plan.new_flags & libc::CLONE_NEWUSER != 0 {
        sys::unshare(libc::CLONE_NEWUSER).context("unshare user namespace")?;
        chan.send("map")?;
        chan.expect("go")?;
    }
    if joined_user || plan.new_flags & libc::CLONE_NEWUSER != 0 {
        become_root();
    }
    let rest = plan.new_flags & !libc::CLONE_NEWUSER;
    if rest != 0 {
        sys::unshare(rest).context("unshare namespaces")?;
    }
    if !plan.offsets.is_empty() {
        let text: String = plan
            .offsets
            .iter()
            .map(|(clock, s, ns)| format!("{clock} {s} {ns}\n"))
            .collect();
        let f = sys::openat(
            a.hostproc,
            Path::new("self/timens_offsets"),
            libc::O_WRONLY,
            0,
        )
        .context("linux.timeOffsets: open timens_offsets")?;
        sys::write_fd(f.as_raw_fd(), text.as_bytes())
            .context("linux.timeOffsets: write timens_offsets")?;
    }
    // CLONE_PARENT: the init becomes rt's child, so `rt run` can wait for its exit status.
    // Non-dumpable from here (the maps are written): the init becomes visible in a joined pid
    // namespace at once.
    sys::prctl(libc::PR_SET_DUMPABLE, 0).context("set non-dumpable")?;
    match sys::clone_parent_gated().context("clone3 init")? {
        Forked::Child => child_main(chan, || init(a, plan, chan, false, true)),
        Forked::Parent { pid, .. } => {
            chan.send(&format!("pid {pid}"))?;
            // SAFETY: leaving the intermediate process without running destructors.
            unsafe { libc::_exit(0) }
        }
    }
}

/// Asks rt for an O_PATH fd of the bind source `path` (see rootfs::Setup::host_source).
fn host_source(chan: &Channel, path: &Path) -> Result<OwnedFd> {
    let text = path
        .to_str()
        .with_context(|| format!("bind source {} is not UTF-8", path.display()))?;
    chan.send(&format!("source {text}"))?;
    match chan.recv_fd()? {
        Some((m, Some(fd))) if m == "source" => Ok(fd),
        Some((m, _)) => match m.strip_prefix("error ") {
            Some(e) => bail!("{e}"),
            None => bail!("sync: expected source, got {m}"),
        },
        None => bail!("sync: rt went away"),
    }
}

/// rt's side of host_source: a short-lived child joins the init's mount namespace (so the
/// mount the fd refers to is one the init may bind) and opens `path` there with rt's
/// credentials. Symlinks are followed, as mount(2) follows them.
fn open_source_for(hostproc: RawFd, pid: i32, path: &Path) -> Result<OwnedFd> {
    let ns = sys::openat(
        hostproc,
        Path::new(&format!("{pid}/ns/mnt")),
        libc::O_RDONLY,
        0,
    )
    .context("open the container's mount namespace")?;
    let (ours, theirs) = Channel::pair()?;
    match sys::clone3(0, None, false).context("clone3 for a bind source")? {
        Forked::Child => {
            drop(ours);
            child_main(&theirs, || {
                sys::setns(ns.as_raw_fd(), libc::CLONE_NEWNS)
                    .context("join the container's mount namespace")?;
                let fd = sys::open(path, libc::O_PATH, 0)
                    .map_err(|e| anyhow!("source {}: {}", path.display(), sys::errno_str(&e)))?;
                theirs.send_fd("source", fd.as_raw_fd())?;
                // SAFETY: leaving the helper without running the parent's destructors.
                unsafe { libc::_exit(0) }
            })
        }
        Forked::Parent { pid, .. } => {
            drop(theirs);
            let got = ours.recv_fd();
            reap(pid);
            match got? {
                Some((m, Some(fd))) if m == "source" => Ok(fd),
                Some((m, _)) => bail!("{}", m.strip_prefix("error ").unwrap_or(&m)),
                None => bail!("bind source helper exited{}", exit_note(pid)),
            }
        }
    }
}

/// With a cgroup driver on rt's side (systemd), asks rt to place us and waits until it has.
fn wait_for_cgroup(a: &InitArgs, chan: &Channel) -> Result<()> {
    if a.cgroup_by_parent.is_some() {
        chan.send("cgroup")?;
        chan.expect("go")?;
    }
    Ok(())
}

/// The cgroup v2 directory the calling process is in (before it unshares its cgroup namespace).
fn own_v2_cgroup() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    crate::cgroups::v2::v2_mount().map(|m| m.join(rel.trim_start_matches('/')))
}

/// Moves the calling process into each of the container's v1 cgroups ("0" is the writer).
fn join_v1_self(dirs: &[PathBuf]) -> Result<()> {
    for d in dirs {
        std::fs::write(d.join("cgroup.procs"), "0")
            .with_context(|| format!("join cgroup {}", d.display()))?;
    }
    Ok(())
}

/// In a new user namespace the init starts as the overflow uid until the maps exist; become
/// the namespace's root so the rest of the setup is privileged there.
fn become_root() {
    // SAFETY: plain syscalls; failure (0 not mapped) leaves us with the ns's full capabilities,
    // which is all the setup needs.
    unsafe {
        libc::syscall(libc::SYS_setresgid, 0, 0, 0);
        libc::syscall(libc::SYS_setresuid, 0, 0, 0);
    }
}

/// The container's init, from fresh namespaces to the blocking open of the exec fifo. The order
/// here is the security argument: filesystem and devices while privileged, then limits, then
/// the identity and capabilities the process will run with, then nothing but the wait and exec.
fn init(
    a: &InitArgs,
    plan: &NsPlan,
    chan: &Channel,
    needs_map: bool,
    staged: bool,
) -> Result<Infallible> {
    if !staged {
        wait_for_cgroup(a, chan)?;
    }
    crate::failpoint("init");
    crate::logging::phase("init: in its namespaces");
    if needs_map {
        chan.send("map")?;
        chan.expect("go")?;
        become_root();
    }
    // Before any hook: prestart and createRuntime hooks find the devices in place, as with
    // runc.
    if has_net_devices(&a.bundle.spec) {
        chan.send("netdevs")?;
        chan.expect("go")?;
    }
    // Until execve, /proc/<init> must not let anything in the container (or another user)
    // ptrace us or open our fds.
    sys::prctl(libc::PR_SET_DUMPABLE, 0).context("set non-dumpable")?;
    // SAFETY: umask cannot fail; 0 so modes in the config are applied exactly.
    unsafe { libc::umask(0) };
    // Join the v1 cgroups before the cgroup namespace is made, so its v1 roots are the
    // container's cgroups. Staged, stage1 did it already; in a new user namespace rt moved
    // us while we waited for the maps.
    if !needs_map && !staged {
        join_v1_self(a.v1_cgroups)?;
    }
    if plan.new_cgroupns {
        sys::unshare(libc::CLONE_NEWCGROUP).context("unshare cgroup namespace")?;
    }
    // SAFETY: setsid has no arguments; failing only means we already lead a session.
    unsafe { libc::setsid() };
    let spec = &a.bundle.spec;
    let process = spec
        .process()
        .as_ref()
        .context("config.json: process is required")?;
    let linux = spec.linux().as_ref();
    // A user namespace of the container's own, or rt's (rootless Podman runs its runtime in
    // one): either way mknod of devices and some mounts are refused.
    let userns =
        crate::spec::has_namespace(spec, LinuxNamespaceType::User) || sys::in_user_namespace();

    if !a.no_new_keyring {
        join_session_keyring(a.id);
    }

    let mut pty = None;
    let own_mntns = crate::spec::has_namespace(spec, LinuxNamespaceType::Mount);
    let ask_host = |p: &Path| host_source(chan, p);
    {
        let setup = crate::process::rootfs::Setup {
            spec,
            idmaps: a.idmaps,
            rootfs: &a.bundle.rootfs,
            bundle: &a.bundle.dir,
            userns,
            own_mntns,
            cgroupns: crate::spec::has_namespace(spec, LinuxNamespaceType::Cgroup),
            v2_cgroup: if a.cgroup_by_parent.is_some() {
                own_v2_cgroup()
            } else {
                a.v2_cgroup.clone()
            },
            v1_cgroups: a.v1_cgroups,
            host_source: plan.host_sources.then_some(&ask_host),
        };
        let root = setup.prepare()?;
        crate::logging::phase("init: rootfs mounted");
        let hooks = spec.hooks().as_ref();
        if !crate::hooks::of(hooks, Phase::Prestart).is_empty()
            || !crate::hooks::of(hooks, Phase::CreateRuntime).is_empty()
        {
            chan.send("hooks")?;
            chan.expect("go")?;
        }
        // createContainer: in the container's namespaces, before pivot_root.
        crate::hooks::run(hooks, Phase::CreateContainer, &own_state(a, "creating"))?;
        if process.terminal().unwrap_or(false) {
            pty = Some(crate::process::console::open_in(&root, spec)?);
        }
        if let Some(l) = linux {
            crate::process::rootfs::mask_paths(&root, l.masked_paths().as_deref().unwrap_or(&[]))?;
            crate::process::rootfs::readonly_paths(
                &root,
                l.readonly_paths().as_deref().unwrap_or(&[]),
            )?;
        }
        crate::process::rootfs::finish_read_only_mounts(&root, spec)?;
        if spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false)
        {
            crate::process::rootfs::readonly_root(&root)?;
        }
        drop(root);
        if !own_mntns {
            crate::process::rootfs::chroot_into(&a.bundle.rootfs)?;
        } else {
            crate::process::rootfs::pivot(&a.bundle.rootfs, a.no_pivot)?;
            // The requested propagation of "/" itself can only be set once it *is* "/".
            if let Some(p) = linux
                .and_then(|l| l.rootfs_propagation().as_deref())
                .and_then(crate::process::rootfs::propagation_flag)
            {
                sys::mount(None, "/", None, p, None).context("linux.rootfsPropagation")?;
            }
        }
        crate::logging::phase("init: pivoted");
        reopen_dev_null();
    }

    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).with_context(|| format!("hostname {h:?}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|h| !h.is_empty()) {
        let c = CString::new(d).context("domainname")?;
        // SAFETY: c is valid for len bytes.
        if unsafe { libc::setdomainname(c.as_ptr(), d.len()) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("domainname {d:?}"));
        }
    }
    for (k, v) in linux
        .and_then(|l| l.sysctl().as_ref())
        .into_iter()
        .flatten()
    {
        let rel = format!("sys/{}", k.replace('.', "/"));
        let f = sys::openat(
            a.hostproc,
            Path::new(&rel),
            libc::O_WRONLY | libc::O_TRUNC,
            0,
        )
        .with_context(|| format!("linux.sysctl {k}"))?;
        sys::write_fd(f.as_raw_fd(), v.as_bytes())
            .with_context(|| format!("linux.sysctl {k}={v}"))?;
    }
    if let Some(adj) = process.oom_score_adj() {
        crate::process::security::set_oom_score_adj(a.hostproc, adj)?;
    }
    if let Some(pty) = &pty {
        if let Some(sock) = a.console_socket {
            crate::process::console::send_master(sock, &pty.master)?;
        }
        crate::process::console::make_controlling(&pty.slave)?;
    }
    drop(pty);

    if let Some(p) = linux.and_then(|l| l.personality().as_ref()) {
        crate::process::security::apply_personality(p)?;
    }
    if let Some(m) = linux.and_then(|l| l.memory_policy().as_ref()) {
        crate::process::security::apply_memory_policy(m)?;
    }
    // execCPUAffinity is for exec'd processes; the init gets every CPU of its cpuset.
    crate::process::security::reset_affinity();
    // Before the seccomp filter, which may not allow its write.
    crate::logging::phase("init: ready (user, caps, seccomp next)");
    let mut ready = finalize(
        process,
        a.hostproc,
        a.preserve_fds,
        userns,
        a.seccomp,
        a.trampoline,
    )?;
    if let Some(fd) = ready.notify_fd {
        chan.send_fd("seccomp", fd)?;
    }

    chan.send("ready")?;
    // Blocks until `rt start` opens the fifo for reading; then one byte says "go".
    let fifo = sys::openat(
        a.hostproc,
        Path::new(&format!("self/fd/{}", a.fifo)),
        libc::O_WRONLY,
        0,
    )
    .context("open exec fifo")?;
    // startContainer: after start was called, in the container, right before the user's
    // program, and (as runc) under the container's seccomp filter, which is loaded for them
    // now rather than at execve. `start` learns the outcome through the fifo: "0" to go on,
    // "E<error>" if not.
    let hooks = spec.hooks().as_ref();
    let started = if crate::hooks::of(hooks, Phase::StartContainer).is_empty() {
        Ok(())
    } else {
        // Without an env of their own they get the process's, as in runc, not rt's.
        let env: Vec<String> = ready
            .env
            .iter()
            .map(|e| e.to_string_lossy().into_owned())
            .collect();
        ready.load_seccomp_now().and_then(|_| {
            crate::hooks::run_with_env(
                hooks,
                Phase::StartContainer,
                &own_state(a, "created"),
                Some(&env),
            )
        })
    };
    if let Err(e) = started {
        let _ = sys::write_fd(fifo.as_raw_fd(), format!("E{e:#}").as_bytes());
        // SAFETY: the init ends here; nothing of the parent's stack may run.
        unsafe { libc::_exit(1) }
    }
    sys::write_fd(fifo.as_raw_fd(), b"0").context("write exec fifo")?;
    ready.exec()
}

/// A process ready to exec: everything that can fail before execve has been done.
pub struct Ready<'a> {
    exe: CString,
    args: Vec<CString>,
    env: Vec<CString>,
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
    fn load_seccomp_now(&mut self) -> Result<()> {
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
/// be inside the container: CVE-2024-21626), no_new_privs, umask, fds, signals.
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

    reset_signals();

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

/// The state document the init gives its own hooks, with its host pid (read through the
/// host's procfs: in its pid namespace it is 1).
fn own_state(a: &InitArgs, status: &str) -> serde_json::Value {
    let pid = std::fs::read_link(format!("/proc/self/fd/{}/self", a.hostproc))
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0);
    crate::state::hook_state(a.id, pid, status, a.bundle)
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
/// must start with default dispositions and an empty mask.
fn reset_signals() {
    // SAFETY: resetting dispositions to SIG_DFL and clearing the mask are always valid.
    unsafe {
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
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

/// A session keyring of the container's own, so it can't read the host's keys (as runc).
fn join_session_keyring(id: &str) {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    if let Ok(name) = CString::new(format!("_ses.{id}")) {
        // SAFETY: keyctl with a valid C string; failure (no keyrings) is harmless.
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    }
}
