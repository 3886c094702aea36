//! rt's side of starting the init: the namespace plan, clone3 in either shape, the staged
//! first child (joins, unshares, time offsets), and the conversation that follows (id maps,
//! host bind sources, hooks, errors, "ready").

use anyhow::{Context, Result, anyhow, bail};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::convert::Infallible;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use crate::spec::namespace_flag;
use crate::sys::{self, Forked};

use super::finalize::send_to_seccomp_agent;
use super::idmap::write_id_maps;
use super::init::{become_root, init, join_v1_self, wait_for_cgroup};
use super::{Channel, InitArgs, child_main};

pub struct Spawned {
    pub pid: i32,
    pub pidfd: OwnedFd,
}

pub(crate) struct NsPlan {
    /// CLONE_NEW* flags of namespaces to create (cgroup excluded: the init unshares it once
    /// it sits in its cgroup, so the namespace is rooted there).
    pub(crate) new_flags: i32,
    pub(crate) new_cgroupns: bool,
    joins: Vec<(LinuxNamespaceType, PathBuf)>,
    offsets: Vec<(String, i64, u32)>,
    /// Whether the init may ask rt for bind sources it can't reach (see rootfs::Setup): in a
    /// user namespace, from an rt that has privileges the init lacks. A rootless rt's are no
    /// more than the init's.
    pub(crate) host_sources: bool,
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

/// Whether clone3 makes the container's init itself, not a first child that joins namespaces
/// (or sets time offsets) and forks it, and no new user namespace needs its id maps first:
/// then rt's side can make the rest of the cgroups while the init makes its namespaces
/// (`InitArgs::cgroups_after_clone`).
pub fn init_is_first_child(spec: &Spec) -> bool {
    let p = plan(spec);
    p.joins.is_empty() && p.offsets.is_empty() && p.new_flags & libc::CLONE_NEWUSER == 0
}

/// The namespaces the init unshares itself when rt's side has cgroup work to do meanwhile
/// (the network namespace alone costs more than all of it). Not the pid and time namespaces,
/// which unshare gives only to children, nor a user namespace, which must come first.
pub(crate) const UNSHARED_BY_INIT: i32 =
    libc::CLONE_NEWNS | libc::CLONE_NEWNET | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;

/// Creates the container's init and returns once it is blocked waiting for `start`. The
/// conversation with the init (id maps, network devices, hooks, errors, "ready") is one loop
/// here, in the order the init asks, so both sides of the protocol can be read side by side.
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
    let after_clone = a.cgroups_after_clone;
    if after_clone.is_some() && (staged || new_userns) {
        bail!("internal: cgroups after clone3 asked of an init that is not the first child");
    }
    let first_flags = match (staged, after_clone) {
        (true, _) => 0,
        (false, Some(_)) => (plan.new_flags & !UNSHARED_BY_INIT) as u64,
        (false, None) => plan.new_flags as u64,
    };
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
    if let Some(make) = after_clone {
        // An init that failed first (its unshare, say): its reason is the one to give.
        let dirs = make(first_pid).map_err(|e| match parent_end.pending_error() {
            Some(why) => anyhow!("{why}"),
            None => e,
        })?;
        let tasks = dirs
            .iter()
            .map(|d| {
                crate::cgroups::cgfs::open_write(d.join("tasks"))
                    .map(OwnedFd::from)
                    .with_context(|| format!("join cgroup {}", d.display()))
            })
            .collect::<Result<Vec<_>>>()?;
        // A send that finds the init gone leaves its reason to the loop below.
        if let Err(e) = parent_end.send_dirs(&dirs, &tasks)
            && !has_errno(&e, libc::EPIPE)
        {
            return Err(e);
        }
    }
    if let Some(work) = a.meanwhile.filter(|_| !staged && !new_userns) {
        work(first_pid)?;
    }
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
pub(crate) fn host_source(chan: &Channel, path: &Path) -> Result<OwnedFd> {
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

fn has_errno(e: &anyhow::Error, errno: i32) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.raw_os_error() == Some(errno))
}
