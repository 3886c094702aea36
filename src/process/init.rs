//! The container's init, from fresh namespaces to the blocking open of the exec fifo, in the
//! order the steps must run in: that order is the security argument.

use anyhow::{Context, Result};
use oci_spec::runtime::LinuxNamespaceType;
use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::hooks::Phase;
use crate::sys::{self};

use super::finalize::finalize;
use super::spawn::{NsPlan, host_source};
use super::{Channel, InitArgs};

/// The container's init, from fresh namespaces to the blocking open of the exec fifo. The order
/// here is the security argument: filesystem and devices while privileged, then limits, then
/// the identity and capabilities the process will run with, then nothing but the wait and exec.
pub(crate) fn init(
    a: &InitArgs,
    plan: &NsPlan,
    chan: &Channel,
    needs_map: bool,
    staged: bool,
) -> Result<Infallible> {
    let spec = &a.bundle.spec;
    let process = spec
        .process()
        .as_ref()
        .context("config.json: process is required")?;
    let v1_cgroups = settle_in_namespaces(a, plan, chan, needs_map, staged)?;
    // Read now, through the host's view of /proc: after pivot_root /proc is the container's.
    let userns = in_user_namespace(spec);
    if !a.no_new_keyring {
        join_session_keyring(a.id);
    }
    let pty = build_rootfs(a, plan, chan, userns, &v1_cgroups)?;
    set_names_and_sysctls(a)?;
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
    set_execution_domain(spec)?;
    // Before the seccomp filter, which may not allow its write.
    crate::logging::phase("init: ready (user, caps, seccomp next)");
    let ready = finalize(
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
    wait_for_start(a, ready)?.exec()
}

/// A user namespace of the container's own, or rt's (rootless Podman runs its runtime in one):
/// either way mknod of devices and some mounts are refused.
fn in_user_namespace(spec: &oci_spec::runtime::Spec) -> bool {
    crate::spec::has_namespace(spec, LinuxNamespaceType::User) || sys::in_user_namespace()
}

/// In the cgroup and namespaces, as root of a new user namespace, non-dumpable, a session
/// leader: the state every later step assumes. Returns the container's v1 cgroups.
fn settle_in_namespaces(
    a: &InitArgs,
    plan: &NsPlan,
    chan: &Channel,
    needs_map: bool,
    staged: bool,
) -> Result<Vec<PathBuf>> {
    if !staged {
        wait_for_cgroup(a, chan)?;
    }
    // rt's side is making the rest of the cgroups meanwhile, and sends their directories.
    let (v1_cgroups, v1_tasks) = if a.cgroups_after_clone.is_some() {
        let flags = plan.new_flags & super::spawn::UNSHARED_BY_INIT;
        if flags != 0 {
            sys::unshare(flags).context("unshare the container's namespaces")?;
        }
        crate::failpoint("init-unshared");
        chan.expect_dirs()?
    } else {
        (a.v1_cgroups.to_vec(), Vec::new())
    };
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
        if v1_tasks.is_empty() {
            join_v1_self(&v1_cgroups)?;
        } else {
            join_v1_tasks(&v1_cgroups, v1_tasks)?;
        }
    }
    if plan.new_cgroupns {
        sys::unshare(libc::CLONE_NEWCGROUP).context("unshare cgroup namespace")?;
    }
    // SAFETY: setsid has no arguments; failing only means we already lead a session.
    unsafe { libc::setsid() };
    Ok(v1_cgroups)
}

/// The container's filesystem: mounts (with the prestart/createRuntime hooks run by rt and
/// createContainer's here, before pivot_root), the terminal, masked and read-only paths, then
/// pivot_root (or chroot) and "/"'s propagation. The terminal's pty, if it has one.
fn build_rootfs(
    a: &InitArgs,
    plan: &NsPlan,
    chan: &Channel,
    userns: bool,
    v1_cgroups: &[PathBuf],
) -> Result<Option<crate::process::console::Pty>> {
    use crate::process::rootfs;
    let spec = &a.bundle.spec;
    let linux = spec.linux().as_ref();
    let own_mntns = crate::spec::has_namespace(spec, LinuxNamespaceType::Mount);
    let ask_host = |p: &Path| host_source(chan, p);
    let setup = rootfs::Setup {
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
        v1_cgroups,
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
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let pty = if terminal {
        Some(crate::process::console::open_in(&root, spec)?)
    } else {
        None
    };
    if let Some(l) = linux {
        rootfs::mask_paths(&root, l.masked_paths().as_deref().unwrap_or(&[]))?;
        rootfs::readonly_paths(&root, l.readonly_paths().as_deref().unwrap_or(&[]))?;
    }
    rootfs::finish_read_only_mounts(&root, spec)?;
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        rootfs::readonly_root(&root)?;
    }
    drop(root);
    if !own_mntns {
        rootfs::chroot_into(&a.bundle.rootfs)?;
    } else {
        rootfs::pivot(&a.bundle.rootfs, a.no_pivot)?;
        // The requested propagation of "/" itself can only be set once it *is* "/".
        if let Some(p) = linux
            .and_then(|l| l.rootfs_propagation().as_deref())
            .and_then(rootfs::propagation_flag)
        {
            sys::mount(None, "/", None, p, None).context("linux.rootfsPropagation")?;
        }
    }
    crate::logging::phase("init: pivoted");
    reopen_dev_null();
    Ok(pty)
}

/// hostname, domainname and linux.sysctl (through the host's procfs handle: the container's
/// /proc could be anything).
fn set_names_and_sysctls(a: &InitArgs) -> Result<()> {
    let spec = &a.bundle.spec;
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
    for (k, v) in spec
        .linux()
        .as_ref()
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
    Ok(())
}

/// linux.personality and linux.memoryPolicy, and every CPU of the cpuset (execCPUAffinity is
/// for exec'd processes).
fn set_execution_domain(spec: &oci_spec::runtime::Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    if let Some(p) = linux.and_then(|l| l.personality().as_ref()) {
        crate::process::security::apply_personality(p)?;
    }
    if let Some(m) = linux.and_then(|l| l.memory_policy().as_ref()) {
        crate::process::security::apply_memory_policy(m)?;
    }
    crate::process::security::reset_affinity();
    Ok(())
}

/// Blocks until `rt start` opens the fifo for reading, runs the startContainer hooks, and
/// tells start the outcome: "0" to go on, "E<error>" if not (the init then ends here).
fn wait_for_start<'r>(a: &InitArgs, mut ready: super::Ready<'r>) -> Result<super::Ready<'r>> {
    let fifo = sys::openat(
        a.hostproc,
        Path::new(&format!("self/fd/{}", a.fifo)),
        libc::O_WRONLY,
        0,
    )
    .context("open exec fifo")?;
    // startContainer: after start was called, in the container, right before the user's
    // program, and (as runc) under the container's seccomp filter, which is loaded for them
    // now rather than at execve.
    let hooks = a.bundle.spec.hooks().as_ref();
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
    Ok(ready)
}

/// With a cgroup driver on rt's side (systemd), asks rt to place us and waits until it has.
pub(crate) fn wait_for_cgroup(a: &InitArgs, chan: &Channel) -> Result<()> {
    if a.cgroup_by_parent.is_some() {
        chan.send("cgroup")?;
        chan.expect("go")?;
    }
    Ok(())
}

/// The cgroup v2 directory the calling process is in (before it unshares its cgroup namespace).
fn own_v2_cgroup() -> Option<PathBuf> {
    let text = crate::sys::read_to_string("/proc/self/cgroup").ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    crate::cgroups::v2::v2_mount().map(|m| m.join(rel.trim_start_matches('/')))
}

/// Moves the calling process into each of the container's v1 cgroups: "0" (the writer) into
/// `tasks`, which moves the calling thread, all of a process of rt's (rt runs no threads).
/// Not `cgroup.procs`: a write there, or of another pid, takes the kernel's global
/// cgroup_threadgroup_rwsem for writing, which first waits for an RCU grace period unless
/// another such write came within the last one: 10 to 15 ms on the build machine for any
/// create or exec not right behind another (`perf trace` of `rt exec` 50 ms apart). Moving
/// only the current thread needs no such lock.
pub(crate) fn join_v1_self(dirs: &[PathBuf]) -> Result<()> {
    for d in dirs {
        crate::cgroups::cgfs::write(d.join("tasks"), "0")
            .with_context(|| format!("join cgroup {}", d.display()))?;
    }
    Ok(())
}

/// join_v1_self through the `tasks` fds rt's side opened, one per directory (each closed
/// once written: no host cgroup file stays open in the container).
fn join_v1_tasks(dirs: &[PathBuf], tasks: Vec<std::os::fd::OwnedFd>) -> Result<()> {
    for (d, fd) in dirs.iter().zip(tasks) {
        sys::write_fd(fd.as_raw_fd(), b"0")
            .with_context(|| format!("join cgroup {}", d.display()))?;
    }
    Ok(())
}

/// In a new user namespace the init starts as the overflow uid until the maps exist; become
/// the namespace's root so the rest of the setup is privileged there.
pub(crate) fn become_root() {
    // SAFETY: plain syscalls; failure (0 not mapped) leaves us with the ns's full capabilities,
    // which is all the setup needs.
    unsafe {
        libc::syscall(libc::SYS_setresgid, 0, 0, 0);
        libc::syscall(libc::SYS_setresuid, 0, 0, 0);
    }
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

/// The state document the init gives its own hooks, with its host pid (read through the
/// host's procfs: in its pid namespace it is 1).
fn own_state(a: &InitArgs, status: &str) -> serde_json::Value {
    let pid = std::fs::read_link(format!("/proc/self/fd/{}/self", a.hostproc))
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0);
    crate::state::hook_state(a.id, pid, status, a.bundle)
}

/// A session keyring of the container's own, so it can't read the host's keys (as runc).
fn join_session_keyring(id: &str) {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    if let Ok(name) = CString::new(format!("_ses.{id}")) {
        // SAFETY: keyctl with a valid C string; failure (no keyrings) is harmless.
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    }
}
