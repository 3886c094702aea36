//! The lifecycle operations (create, start, state, kill, delete, run, list, ps), each composed
//! from the state directory, the cgroup and the process modules. Each runs under the
//! container's directory lock, so concurrent calls on one id are serialised.

use anyhow::{Context, Result, bail};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::state::{self, Dir, State, Status};
use crate::sys;

const PROC_SUPER_MAGIC: i64 = 0x9fa0;

pub struct CreateOpts {
    pub bundle: PathBuf,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    pub pidfd_socket: Option<PathBuf>,
    /// `--systemd-cgroup`: the cgroup is a transient systemd unit (see `systemd`).
    pub systemd_cgroup: bool,
}

/// What the systemd driver needs to make a container's unit, all checked before create
/// touches anything.
pub(crate) struct SystemdPlan {
    pub(crate) path: crate::systemd::CgroupsPath,
    pub(crate) user: bool,
    /// The unit's properties but its PIDs (the init does not exist yet).
    pub(crate) props: Vec<crate::systemd::Property>,
}

pub(crate) fn systemd_plan(spec: &oci_spec::runtime::Spec, id: &str) -> Result<SystemdPlan> {
    let linux = spec.linux().as_ref();
    let user = crate::systemd::user_manager();
    let path = crate::systemd::CgroupsPath::parse(
        linux
            .and_then(|l| l.cgroups_path().as_deref())
            .and_then(|p| p.to_str()),
        id,
        user,
    )?;
    if crate::cgroups::v2_mount().as_deref() != Some(Path::new("/sys/fs/cgroup")) {
        bail!(
            "--systemd-cgroup: rt's systemd driver needs a host with cgroup v2 alone mounted at /sys/fs/cgroup (as systemd sets up with its unified hierarchy); use the cgroupfs driver here"
        );
    }
    let props = crate::systemd::unit_properties(
        &path,
        id,
        linux.and_then(|l| l.resources().as_ref()),
        spec.annotations().as_ref().unwrap_or(&Default::default()),
    )?;
    Ok(SystemdPlan { path, user, props })
}

/// A freshly created container, still locked by this rt process.
pub struct Created {
    pub dir: Dir,
    pub state: State,
    pub pidfd: OwnedFd,
    /// The pty master when rt drives a foreground terminal itself.
    pub console_master: Option<OwnedFd>,
}

/// Undoes a half-made create: removes the state directory (the cgroup has its own guard and
/// the init is killed by the process module).
struct DirGuard<'a>(Option<&'a Path>);

impl Drop for DirGuard<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.0 {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

pub fn open_hostproc() -> Result<OwnedFd> {
    let fd =
        sys::open(Path::new("/proc"), libc::O_PATH | libc::O_DIRECTORY, 0).context("open /proc")?;
    if sys::fstatfs_magic(fd.as_raw_fd())? != PROC_SUPER_MAGIC {
        bail!("/proc is not a procfs mount");
    }
    Ok(fd)
}

pub fn create(root: &Path, id: &str, o: &CreateOpts, detached: bool) -> Result<Created> {
    state::validate_id(id)?;
    note_passed_fds(o.preserve_fds);
    let mut bundle = crate::spec::load(&o.bundle)?;
    crate::logging::phase("config loaded");
    let preserve_fds = o.preserve_fds + socket_activation(&mut bundle.spec);
    let terminal = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    crate::console::check_usage(terminal, o.console_socket.as_ref(), detached)?;
    let cgroups_path = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone());
    let mut systemd = if o.systemd_cgroup {
        Some(systemd_plan(&bundle.spec, id)?)
    } else {
        if let Some(p) = cgroups_path.as_deref().and_then(|p| p.to_str())
            && crate::systemd::looks_like_systemd_path(p)
        {
            bail!(
                "config.json: linux.cgroupsPath {p:?} is systemd's slice:prefix:name form: run rt with --systemd-cgroup"
            );
        }
        None
    };
    let cgroup_rel = crate::cgroups::resolve(cgroups_path.as_deref(), id)?;
    // A foreground terminal without --console-socket: rt itself receives the master and
    // relays it (see console::relay).
    let mut console_rx = None;
    let console = match o.console_socket.as_deref() {
        Some(p) => Some(crate::console::connect(p).context("--console-socket")?),
        None if terminal && !detached => {
            let (ours, theirs) = crate::console::pair()?;
            console_rx = Some(ours);
            Some(theirs)
        }
        None => None,
    };

    let dir = Dir::create(root, id)?;
    let dir_guard = DirGuard(Some(&dir.path));
    // Without a mount namespace of its own the container mounts in ours: note what is at and
    // under its rootfs (as mountinfo names it: symlinks resolved) now, so delete (or a failed
    // create) detaches only what it added.
    let shared_root =
        if crate::spec::has_namespace(&bundle.spec, oci_spec::runtime::LinuxNamespaceType::Mount) {
            None
        } else {
            Some(
                std::fs::canonicalize(&bundle.rootfs).with_context(|| {
                    format!("config.json: root.path {}", bundle.rootfs.display())
                })?,
            )
        };
    let mounts_before: Option<Vec<u64>> = shared_root.as_ref().map(|r| {
        crate::rootfs::mounts_under(r)
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    });
    let mount_guard = MountGuard(shared_root.as_deref().zip(mounts_before.as_ref()));
    crate::notify::setup_spec(&mut bundle.spec, &dir.path)?;
    let fifo_path = dir.fifo();
    let c = sys::cstring(&fifo_path)?;
    // SAFETY: c is a valid path. 0622: the init may run as any uid and must open it to write.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o622) } != 0 {
        return Err(std::io::Error::last_os_error()).context("create exec fifo");
    }
    std::fs::set_permissions(
        &fifo_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o622),
    )
    .context("chmod exec fifo")?;
    let fifo = sys::open(&fifo_path, libc::O_PATH, 0).context("open exec fifo")?;
    let hostproc = open_hostproc()?;
    let trampoline = crate::exeguard::trampoline()?;
    let idmap_fds = idmapped_binds(&bundle.spec, &bundle.dir)?;
    let idmaps: Vec<Option<i32>> = idmap_fds
        .iter()
        .map(|f| f.as_ref().map(|f| f.as_raw_fd()))
        .collect();
    let seccomp = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(crate::seccomp::build)
        .transpose()?;
    let device_rules = device_rules(&bundle.spec)?;
    // In a user namespace (a user's own rt, or Podman's rootless one) no device filter can be
    // loaded for a systemd unit, and none is needed: such a container can't make device nodes.
    let unit_device_rules = device_rules
        .clone()
        .filter(|_| systemd.is_some() && !sys::rootless() && !sys::in_user_namespace());
    if let (Some(sd), Some(rules)) = (systemd.as_mut(), &unit_device_rules) {
        sd.props.extend(crate::systemd::device_properties(rules));
    }
    let limits = match bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
    {
        Some(r) => crate::resources::plan(r)?,
        None => Vec::new(),
    };
    crate::logging::phase("state dir, fifo, trampoline, filters ready");
    let v2_mount = crate::cgroups::v2_mount();
    let (on_v2, on_v1) = crate::resources::split(v2_mount.as_deref(), &limits);
    let mut cgroup = match systemd {
        Some(_) => None,
        None => crate::cgroups::create(&cgroup_rel, crate::resources::domain_limit(&on_v2))?,
    };
    if !on_v2.is_empty() && systemd.is_none() {
        let (Some(c), Some(mount)) = (&cgroup, &v2_mount) else {
            bail!(
                "linux.resources: limits need a writable cgroup v2 hierarchy, and there is none here"
            );
        };
        crate::resources::apply(mount, &c.rel, &on_v2, false)?;
    }
    // v1 and hybrid hosts: the container joins its cgroup in every v1 hierarchy (as runc does,
    // so `update` finds them later); what v2 can't take is written there.
    // Rootless with no cgroup: a user namespace can't create device nodes anyway (mknod of a
    // device is refused outside the initial user namespace), so there is nothing to filter.
    let device_rules = device_rules.filter(|_| !(crate::sys::rootless() && cgroup.is_none()));
    let v2_dir = cgroup.as_ref().and_then(|c| crate::cgroups::dir_of(&c.rel));
    // Where the devices controller is a v1 one (v1 and hybrid hosts) the rules are written to
    // it too, as runc does: tools that read devices.list see them, and v1 enforces them where
    // no eBPF filter can be attached. Root of a user namespace may not write them (the kernel
    // wants CAP_SYS_ADMIN in the initial one).
    let v1_devices = device_rules
        .as_deref()
        .filter(|_| !crate::sys::rootless() && !crate::sys::in_user_namespace())
        .map(|r| (r, v2_dir.is_none()));
    if device_rules.is_some() && v1_devices.is_none() && !crate::cgroupv1::hierarchies().is_empty()
    {
        crate::logging::debug("in a user namespace: the v1 devices controller is left as it is");
    }
    let v1 = if crate::cgroupv1::hierarchies().is_empty() {
        if !on_v1.is_empty() {
            crate::cgroupv1::join(&on_v1, None, cgroups_path.as_deref(), id)?;
        }
        crate::cgroupv1::Joined::default()
    } else {
        crate::cgroupv1::join(&on_v1, v1_devices, cgroups_path.as_deref(), id)?
    };
    let v1_guard = V1Guard(Some(&v1));
    if let Some(rules) = device_rules.as_ref().filter(|_| systemd.is_none()) {
        let v1_has_devices = crate::cgroupv1::dir_for(&v1.dirs, "devices").is_some();
        match &v2_dir {
            Some(dir) => crate::devices::attach(rules, dir)?,
            None if v1_has_devices => {}
            None if asks_for_device_rules(&bundle.spec) => {
                bail!(
                    "linux.resources.devices: needs a cgroup v2 hierarchy or a v1 devices controller, and this host has neither"
                )
            }
            // Only the defaults, and nowhere to put them: as before any filter.
            None => {
                crate::logging::debug("no device cgroup: the default device rules are not applied")
            }
        }
    }

    crate::logging::phase("cgroups ready");
    // The systemd driver: once the init (or the first stage it comes from) exists, systemd
    // moves it into a new unit; its limits and device filter follow before the init goes on.
    let unit: std::cell::RefCell<Option<crate::systemd::Unit>> = Default::default();
    let enter_unit;
    let cgroup_by_parent: Option<&dyn Fn(i32) -> Result<()>> = match &systemd {
        None => None,
        Some(sd) => {
            enter_unit = |pid: i32| -> Result<()> {
                let manager = crate::systemd::Manager::connect(sd.user)?;
                let u = crate::systemd::Unit::start(manager, &sd.path, sd.props.clone(), pid)?;
                let rel = u.rel.clone();
                // Ours from here: stopped again if anything below fails.
                *unit.borrow_mut() = Some(u);
                let mount = v2_mount.as_deref().context("no cgroup v2 mount")?;
                crate::cgroups::enable_controllers(mount, &rel, true);
                crate::resources::apply(mount, &rel, &on_v2, true)?;
                if let Some(rules) = &unit_device_rules {
                    crate::devices::attach(rules, &mount.join(rel.trim_start_matches('/')))?;
                }
                Ok(())
            };
            Some(&enter_unit)
        }
    };
    let args = crate::process::InitArgs {
        id,
        bundle: &bundle,
        fifo: fifo.as_raw_fd(),
        hostproc: hostproc.as_raw_fd(),
        console_socket: console.as_ref().map(|c| c.as_raw_fd()),
        preserve_fds,
        no_pivot: o.no_pivot,
        no_new_keyring: o.no_new_keyring,
        cgroup_fd: cgroup.as_ref().map(|c| c.fd.as_raw_fd()),
        close_in_child: &[dir.lock_fd()],
        seccomp: seccomp.as_ref(),
        trampoline: trampoline.as_raw_fd(),
        idmaps: &idmaps,
        v2_cgroup: v2_dir.clone(),
        v1_cgroups: &v1.dirs,
        cgroup_by_parent,
    };
    let spawned = crate::process::spawn(&args)?;
    let kill_init = scopeguard(spawned.pid);
    crate::failpoint("create");
    crate::logging::phase("init ready, waiting for start");
    // Normally joined already (see InitArgs::v1_cgroups); this covers an init that could not
    // join by itself. The init waits for start, so this is still before the user's program.
    crate::cgroupv1::attach(&v1.dirs, spawned.pid)?;

    let (start_time, _) =
        sys::proc_start_time(spawned.pid).context("container init exited during setup")?;
    let st = State {
        id: id.to_string(),
        pid: spawned.pid,
        start_time,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: crate::logging::rfc3339_now(),
        annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        owner: String::new(),
        cgroup: match unit.borrow().as_ref() {
            Some(u) => Some(u.rel.clone()),
            None => cgroup.as_ref().map(|c| c.rel.clone()),
        },
        cgroup_owned: cgroup.as_ref().is_some_and(|c| c.owned) || unit.borrow().is_some(),
        systemd_unit: unit.borrow().as_ref().map(|u| u.name.clone()),
        systemd_user: unit.borrow().as_ref().is_some_and(|u| u.user),
        cgroup_v1: v1.dirs.clone(),
        // Only its own: parents rt made stay after a successful create, as with runc.
        cgroup_v1_created: v1
            .created
            .iter()
            .filter(|d| v1.dirs.contains(d))
            .cloned()
            .collect(),
        has_hooks: bundle.spec.hooks().is_some(),
        // What was mounted under the rootfs before: everything else there is the container's,
        // including what its program mounts later.
        shared_mounts: shared_root
            .as_ref()
            .zip(mounts_before.as_ref())
            .map(|(r, before)| crate::state::SharedMounts {
                root: r.clone(),
                before: before.clone(),
            }),
        own_pidns: bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|ns| {
                ns.iter().any(|n| {
                    n.typ() == oci_spec::runtime::LinuxNamespaceType::Pid && n.path().is_none()
                })
            }),
    };
    dir.save(&st)?;
    // exec needs the container's config as it was at create, whatever the bundle holds later.
    std::fs::write(dir.path.join(state::CONFIG_COPY), &bundle.raw).context("save config")?;
    if let Some(p) = &o.pid_file {
        state::write_pid_file(p, spawned.pid)?;
    }
    if let Some(p) = &o.pidfd_socket {
        send_pidfd(p, &spawned.pidfd)?;
    }
    if let Some(c) = cgroup.as_mut() {
        c.disarm();
    }
    if let Some(u) = unit.borrow_mut().as_mut() {
        u.disarm();
    }
    kill_init.disarm();
    std::mem::forget(v1_guard);
    std::mem::forget(mount_guard);
    std::mem::forget(dir_guard);
    drop(console);
    let console_master = console_rx
        .map(|rx| crate::console::receive_master(&rx))
        .transpose()?;
    crate::logging::phase("created");
    Ok(Created {
        dir,
        state: st,
        pidfd: spawned.pidfd,
        console_master,
    })
}

/// Which of the fds a caller asks to pass (3..3+N for --preserve-fds N, plus LISTEN_FDS) are
/// open, noted once before rt opens any fd of its own (main does it before the --log file):
/// only those reach the container. A gap stays a gap, as in runc, and an fd of rt's that lands
/// in one (the log, the host /proc handle, the lock) is never handed over.
static PASSED_FDS: std::sync::OnceLock<Vec<i32>> = std::sync::OnceLock::new();

pub fn note_passed_fds(preserve_fds: u32) -> &'static [i32] {
    PASSED_FDS.get_or_init(|| {
        (3..3i64 + i64::from(preserve_fds) + i64::from(listen_fds()))
            .filter_map(|fd| i32::try_from(fd).ok())
            // SAFETY: F_GETFD on an fd number only reads its flags.
            .filter(|fd| unsafe { libc::fcntl(*fd, libc::F_GETFD) } >= 0)
            .collect()
    })
}

/// How many fds systemd passed rt (LISTEN_FDS), counted only when LISTEN_PID names rt itself,
/// as the protocol says: variables inherited from a socket-activated parent (a shell started
/// by a service, say) describe fds that parent had, not ours, and must not send whatever sits
/// at 3, 4, ... into a container.
fn listen_fds() -> u32 {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        == Some(std::process::id());
    if !ours {
        return 0;
    }
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// systemd socket activation, as runc: with LISTEN_FDS=N in rt's environment, fds 3..3+N go
/// to the container (before any --preserve-fds ones) and its process is told LISTEN_FDS=N,
/// LISTEN_PID=1.
fn socket_activation(spec: &mut oci_spec::runtime::Spec) -> u32 {
    let n = listen_fds();
    if n == 0 {
        return 0;
    }
    if let Some(p) = spec.process_mut() {
        let mut env = p.env().clone().unwrap_or_default();
        env.retain(|e| !e.starts_with("LISTEN_FDS=") && !e.starts_with("LISTEN_PID="));
        env.push(format!("LISTEN_FDS={n}"));
        env.push("LISTEN_PID=1".into());
        p.set_env(Some(env));
    }
    n
}

/// `--pidfd-socket`: hands the caller a pidfd of the process, which stays valid (and never
/// names another process) whatever happens to the pid number.
pub fn send_pidfd(path: &Path, pidfd: &OwnedFd) -> Result<()> {
    let sock =
        crate::console::connect(path).map_err(|e| anyhow::anyhow!("--pidfd-socket {e:#}"))?;
    sys::send_fds(sock.as_raw_fd(), b"pidfd", &[pidfd.as_raw_fd()])
        .with_context(|| format!("--pidfd-socket {}: send", path.display()))
}

/// One detached, idmapped mount tree per idmapped bind entry (None for the others), mapped
/// with the mount's own uidMappings/gidMappings, or the container's for a bare `idmap`.
fn idmapped_binds(
    spec: &oci_spec::runtime::Spec,
    bundle_dir: &Path,
) -> Result<Vec<Option<OwnedFd>>> {
    let linux = spec.linux().as_ref();
    let mut out = Vec::new();
    for m in spec.mounts().iter().flatten() {
        let opt = m
            .options()
            .iter()
            .flatten()
            .any(|o| o == "idmap" || o == "ridmap");
        let (uid, gid) = match (m.uid_mappings(), m.gid_mappings()) {
            (Some(u), Some(g)) => (u.clone(), g.clone()),
            _ if opt => (
                linux
                    .and_then(|l| l.uid_mappings().clone())
                    .unwrap_or_default(),
                linux
                    .and_then(|l| l.gid_mappings().clone())
                    .unwrap_or_default(),
            ),
            _ => {
                out.push(None);
                continue;
            }
        };
        let what = || format!("mounts: {}: id mappings", m.destination().display());
        let userns = crate::rootfs::idmap_userns(&uid, &gid).with_context(what)?;
        let src = m
            .source()
            .as_ref()
            .with_context(|| format!("{}: no source", what()))?;
        let src = if src.is_absolute() {
            src.clone()
        } else {
            bundle_dir.join(src)
        };
        let o = crate::rootfs::parse_options(m.options().as_deref().unwrap_or(&[]));
        let tree =
            crate::rootfs::detached_bind(&src, &o, Some(userns.as_raw_fd())).with_context(what)?;
        out.push(Some(tree));
    }
    Ok(out)
}

fn asks_for_device_rules(spec: &oci_spec::runtime::Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().as_ref())
        .is_some_and(|d| !d.is_empty())
}

pub(crate) fn device_rules(
    spec: &oci_spec::runtime::Spec,
) -> Result<Option<Vec<crate::devices::Rule>>> {
    let Some(linux) = spec.linux() else {
        return crate::devices::rules(&[], &[]);
    };
    let config = linux
        .resources()
        .as_ref()
        .and_then(|r| r.devices().clone())
        .unwrap_or_default();
    crate::devices::rules(&config, linux.devices().as_deref().unwrap_or(&[]))
}

/// Detaches what a failed create of a container without its own mount namespace mounted.
struct MountGuard<'a>(Option<(&'a Path, &'a Vec<u64>)>);

impl Drop for MountGuard<'_> {
    fn drop(&mut self) {
        if let Some((rootfs, before)) = self.0 {
            crate::rootfs::detach_mounts(rootfs, |id| !before.contains(&id));
        }
    }
}

/// Removes the v1 cgroups a failed create made.
struct V1Guard<'a>(Option<&'a crate::cgroupv1::Joined>);

impl Drop for V1Guard<'_> {
    fn drop(&mut self) {
        if let Some(j) = self.0 {
            crate::cgroupv1::remove_made(j);
        }
    }
}

/// Kills the init if create fails after it was spawned.
struct InitGuard(Option<i32>);

fn scopeguard(pid: i32) -> InitGuard {
    InitGuard(Some(pid))
}

impl InitGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for InitGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // SAFETY: the init is our child and not reaped yet, so the pid is still its own.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// A pidfd for the state's init, opened and then checked against the recorded start time, so
/// a signal can never reach a process that merely reused the pid.
pub fn init_pidfd(st: &State) -> Option<OwnedFd> {
    if st.pid <= 0 {
        return None;
    }
    let fd = sys::pidfd_open(st.pid).ok()?;
    st.init_alive().then_some(fd)
}

pub fn poll_in(fds: &[i32], timeout_ms: i32) -> Result<Vec<i16>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: p is a valid array of pollfd of its length.
        let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e).context("poll");
        }
        return Ok(p.iter().map(|x| x.revents).collect());
    }
}

pub fn start(root: &Path, id: &str) -> Result<()> {
    let dir = Dir::open(root, id)?;
    let st = dir.load()?;
    let started = start_locked(&dir, &st)?;
    let path = dir.path.clone();
    // The container runs: unlocked from here, so kill, state and delete work while poststart
    // hooks run and while we wait for READY=1 (which may never come).
    drop(dir);
    started.finish(&path, &st)
}

/// A container whose init has been told to exec; what `start` still owes its caller.
struct Started {
    pidfd: OwnedFd,
    notify: Option<std::os::unix::net::UnixDatagram>,
}

impl Started {
    /// Poststart hooks, then (with NOTIFY_SOCKET) the wait for READY=1.
    fn finish(self, dir: &Path, st: &State) -> Result<()> {
        poststart(dir, st);
        if let Some(sock) = self.notify {
            crate::notify::wait_ready(&sock, &self.pidfd, st.pid)?;
        }
        Ok(())
    }
}

/// poststart hooks: after the user process started, before `start` returns; a failure is
/// a warning (runtime-spec).
fn poststart(dir: &Path, st: &State) {
    if st.has_hooks
        && let Ok(spec) = state::load_spec(dir)
    {
        crate::hooks::run_warn(
            spec.hooks().as_ref(),
            crate::hooks::Phase::Poststart,
            &st.to_json(Status::Running),
        );
    }
}

fn start_locked(dir: &Dir, st: &State) -> Result<Started> {
    match st.status(&dir.path) {
        Status::Created => {}
        Status::Running | Status::Paused => bail!("cannot start an already running container"),
        Status::Stopped => bail!("cannot start a container that has stopped"),
    }
    let pidfd = init_pidfd(st).context("container not running")?;
    let notify = crate::notify::listen(&dir.path)?;
    let fifo_path = dir.fifo();
    let fifo =
        sys::open(&fifo_path, libc::O_RDONLY | libc::O_NONBLOCK, 0).context("open exec fifo")?;
    // Opening the read side released the init's blocking open; it now writes one byte and
    // execs, which closes its end (EOF here). If it dies instead, the pidfd says so.
    // The init answers "0" (going on to exec) or "E<error>" (a startContainer hook failed).
    let mut answer = Vec::new();
    loop {
        let ev = poll_in(&[fifo.as_raw_fd(), pidfd.as_raw_fd()], -1)?;
        if ev[0] != 0 {
            let mut b = [0u8; 4096];
            // SAFETY: b is valid for its length.
            let n = unsafe { libc::read(fifo.as_raw_fd(), b.as_mut_ptr().cast(), b.len()) };
            if n > 0 {
                answer.extend_from_slice(&b[..n as usize]);
                continue;
            }
            if n == 0 && !answer.is_empty() {
                break;
            }
            if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN) {
                continue;
            }
        }
        if ev[1] != 0 {
            // Gone: after answering (a short-lived program, or a failed hook), or before.
            break;
        }
    }
    std::fs::remove_file(&fifo_path).context("remove exec fifo")?;
    match answer.first() {
        Some(b'0') => {}
        Some(b'E') => bail!("{}", String::from_utf8_lossy(&answer[1..])),
        _ => bail!("container init exited before it could be started"),
    }
    Ok(Started { pidfd, notify })
}

/// Read-only: never waits on the container's lock (see state::snapshot).
pub fn state_json(root: &Path, id: &str) -> Result<serde_json::Value> {
    let (dir, st) = state::snapshot(root, id)?;
    Ok(st.to_json(st.status(&dir)))
}

/// `pause`: freeze every process of the container (runc allows it for created and running).
pub fn pause(root: &Path, id: &str) -> Result<()> {
    let dir = Dir::open(root, id)?;
    let st = dir.load()?;
    match st.status(&dir.path) {
        Status::Created | Status::Running => {}
        Status::Paused => bail!("container {id:?} is already paused"),
        Status::Stopped => bail!("container not running"),
    }
    freeze(&st, true)
}

/// Freezes or thaws through cgroup v2, or the v1 freezer on hosts without v2.
fn freeze(st: &State, frozen: bool) -> Result<()> {
    match st.cgroup.as_deref() {
        Some(cg) => crate::cgroups::freeze(cg, frozen),
        None if !st.cgroup_v1.is_empty() => crate::cgroupv1::freeze(&st.cgroup_v1, frozen),
        None => bail!("container has no cgroup to freeze"),
    }
}

/// Signals every process of the container's cgroup (v2, else v1).
fn signal_all(st: &State, sig: i32) -> Result<()> {
    match st.cgroup.as_deref() {
        Some(cg) => crate::cgroups::signal_all(cg, sig),
        None => crate::cgroupv1::signal_all(&st.cgroup_v1, sig),
    }
}

pub fn resume(root: &Path, id: &str) -> Result<()> {
    let dir = Dir::open(root, id)?;
    let st = dir.load()?;
    if st.status(&dir.path) != Status::Paused {
        bail!("container not paused");
    }
    freeze(&st, false)
}

pub fn kill(root: &Path, id: &str, sig: i32, all: bool) -> Result<()> {
    let dir = Dir::open(root, id)?;
    let st = dir.load()?;
    if st.status(&dir.path) == Status::Stopped {
        // runc 1.4 keeps --all only so that old callers killing what is left of a stopped
        // container don't fail.
        if all {
            return Ok(());
        }
        bail!("container not running");
    }
    if all && (st.cgroup.is_some() || !st.cgroup_v1.is_empty()) {
        return signal_all(&st, sig);
    }
    let fd = init_pidfd(&st).context("container not running")?;
    sys::pidfd_send_signal(&fd, sig).with_context(|| format!("signal {sig} to the container init"))
}

/// Waits until the init is gone (zombie or reaped): pidfds become readable at exit.
fn wait_gone(fd: &OwnedFd, timeout_ms: i32) -> bool {
    poll_in(&[fd.as_raw_fd()], timeout_ms).is_ok_and(|e| e[0] != 0)
}

pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let dir = match Dir::open(root, id) {
        Ok(d) => d,
        Err(e) => {
            // A create that died before writing state.json leaves a bare directory; removed
            // under its lock, so a create of the same id that is under way is left alone.
            if state::remove_stale(root, id).unwrap_or(false) && force {
                return Ok(());
            }
            if force && e.to_string().contains("does not exist") {
                return Ok(());
            }
            return Err(e);
        }
    };
    let st = dir.load()?;
    match st.status(&dir.path) {
        Status::Stopped => {}
        Status::Created => kill_and_wait(&st)?,
        Status::Running | Status::Paused if force => kill_and_wait(&st)?,
        s @ (Status::Running | Status::Paused) => bail!(
            "cannot delete container {id:?} that is not stopped: {}",
            s.as_str()
        ),
    }
    destroy(dir, &st)
}

fn kill_and_wait(st: &State) -> Result<()> {
    if let Some(cg) = &st.cgroup {
        let _ = crate::cgroups::signal_all(cg, libc::SIGKILL);
        // SIGKILL reaches frozen tasks on v2, but thaw anyway so nothing stays stuck.
        if crate::cgroups::is_frozen(cg) {
            let _ = crate::cgroups::freeze(cg, false);
        }
    } else if !st.cgroup_v1.is_empty() {
        let _ = crate::cgroupv1::signal_all(&st.cgroup_v1, libc::SIGKILL);
        // A v1 freezer holds even SIGKILLed tasks until thawed.
        if crate::cgroupv1::is_frozen(&st.cgroup_v1) {
            let _ = crate::cgroupv1::freeze(&st.cgroup_v1, false);
        }
    }
    if let Some(fd) = init_pidfd(st) {
        let _ = sys::pidfd_send_signal(&fd, libc::SIGKILL);
        if !wait_gone(&fd, 10_000) {
            bail!("container init (pid {}) did not die after SIGKILL", st.pid);
        }
    }
    Ok(())
}

/// Removes everything the container left: processes still in its cgroup (when it had no pid
/// namespace of its own, the init's death did not take them along), the cgroup, the state.
pub(crate) fn destroy(dir: Dir, st: &State) -> Result<()> {
    let spec = if st.has_hooks {
        state::load_spec(&dir.path).ok()
    } else {
        None
    };
    // A cgroup rt made is the container's alone: empty it and remove it. One it joined may
    // hold others' processes: leave it be.
    if let (Some(unit), Some(cg)) = (&st.systemd_unit, &st.cgroup) {
        // A scope whose processes are all gone is stopped, its cgroup removed and the unit
        // unloaded by systemd itself (CollectMode=inactive-or-failed): rt only empties it.
        // StopUnit would make every delete wait for systemd's whole bookkeeping of the dying
        // unit; a create of the same unit meanwhile waits for it instead (systemd::Unit::start).
        // A slice is never stopped by systemd when it empties: that one rt stops.
        crate::cgroups::empty(cg)?;
        if unit.ends_with(".slice") {
            crate::systemd::Manager::connect(st.systemd_user)?.stop_unit(unit)?;
        }
    } else if let Some(cg) = st.cgroup.as_ref().filter(|_| st.cgroup_owned) {
        if !st.own_pidns {
            let _ = crate::cgroups::signal_all(cg, libc::SIGKILL);
        }
        crate::cgroups::remove(cg)?;
    } else if !st.cgroup_v1_created.is_empty() && !st.own_pidns {
        let _ = crate::cgroupv1::signal_all(&st.cgroup_v1, libc::SIGKILL);
    }
    crate::cgroupv1::remove(&st.cgroup_v1_created);
    if let Some(m) = &st.shared_mounts {
        crate::rootfs::detach_mounts(&m.root, |id| !m.before.contains(&id));
    }
    dir.remove()?;
    if let Some(spec) = spec {
        crate::hooks::run_warn(
            spec.hooks().as_ref(),
            crate::hooks::Phase::Poststop,
            &st.to_json(Status::Stopped),
        );
    }
    Ok(())
}

/// How `rt run` stays with its container.
pub struct RunWait {
    /// Return once it runs.
    pub detach: bool,
    /// Leave the stopped container's state behind.
    pub keep: bool,
    /// Adopt (and reap) the processes the container orphans, as runc does unless
    /// --no-subreaper: without a pid namespace of its own, they would go to the host's init.
    pub subreaper: bool,
}

/// `rt run`: create, start, then wait, forwarding signals; the exit status is the container's.
pub fn run(root: &Path, id: &str, o: &CreateOpts, w: RunWait) -> Result<i32> {
    let RunWait {
        detach,
        keep,
        subreaper,
    } = w;
    if detach {
        let c = create(root, id, o, true)?;
        if let Err(e) = start_locked(&c.dir, &c.state).and_then(|s| s.finish(&c.dir.path, &c.state))
        {
            undo_run(c, o);
            return Err(e);
        }
        return Ok(0);
    }
    // Block the signals we forward before the init exists, so none is lost in between; the
    // init clears its mask before exec.
    let mask = forwarded_signals();
    // SAFETY: mask is a valid sigset_t.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &mask, std::ptr::null_mut()) };
    if subreaper {
        sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1).context("become a subreaper")?;
    }
    let c = create(root, id, o, false)?;
    if let Err(e) = start_locked(&c.dir, &c.state).and_then(|s| s.finish(&c.dir.path, &c.state)) {
        undo_run(c, o);
        return Err(e);
    }
    crate::logging::phase("started");
    let Created {
        dir,
        state,
        pidfd,
        console_master,
    } = c;
    // Unlock while waiting: state, kill and exec on this container must work meanwhile.
    drop(dir);
    let status = {
        let _raw = console_master
            .as_ref()
            .map(|_| crate::console::RawMode::enter());
        wait_forwarding(state.pid, &pidfd, console_master.as_ref(), &mask)
    };
    crate::logging::phase("container exited");
    if !keep {
        // Someone may have deleted it meanwhile (delete --force), even made a new container
        // with the id: only what is still ours is removed.
        if let Ok(dir) = Dir::open(root, id)
            && let Ok(st) = dir.load()
            && st.pid == state.pid
            && st.start_time == state.start_time
            && let Err(e) = destroy(dir, &st)
        {
            // The container's own status is what the caller waits for: a failed clean-up is
            // said, not put in its place.
            crate::logging::warn(&format!("clean up after the container: {e:#}"));
        }
    }
    status
}

/// A `run` whose start failed leaves nothing: no process, cgroup, state or pid file.
fn undo_run(c: Created, o: &CreateOpts) {
    let _ = kill_and_wait(&c.state);
    let _ = destroy(c.dir, &c.state);
    if let Some(p) = &o.pid_file {
        let _ = std::fs::remove_file(p);
    }
}

pub fn forwarded_signals() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a local value.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        for s in [
            libc::SIGKILL,
            libc::SIGSTOP,
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGILL,
            libc::SIGFPE,
            libc::SIGTRAP,
            libc::SIGSYS,
        ] {
            libc::sigdelset(&mut set, s);
        }
        set
    }
}

/// One poll over the signalfd, the init's pidfd and, with a terminal, the pty master (output
/// to copy; room for pending input) and stdin (only while no input is pending, so a container
/// that doesn't read can't make rt buffer without end). Returns the revents, in that order.
fn poll_relay(
    sfd: i32,
    pidfd: i32,
    relay: Option<&crate::console::InputRelay>,
    master_open: bool,
) -> Result<Vec<i16>> {
    let pfd = |fd, events| libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let mut p = vec![pfd(sfd, libc::POLLIN), pfd(pidfd, libc::POLLIN)];
    if let Some(r) = relay {
        let mut events = if master_open { libc::POLLIN } else { 0 };
        if r.has_pending() {
            events |= libc::POLLOUT;
        }
        let master = if events != 0 { r.master() } else { -1 };
        p.push(pfd(master, events));
        let stdin = if r.wants_stdin() {
            libc::STDIN_FILENO
        } else {
            -1
        };
        p.push(pfd(stdin, libc::POLLIN));
    }
    loop {
        // SAFETY: p is a valid array of pollfd of its length.
        let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, -1) };
        if r >= 0 {
            return Ok(p.iter().map(|x| x.revents).collect());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e).context("poll");
        }
    }
}

pub fn wait_forwarding(
    pid: i32,
    pidfd: &OwnedFd,
    console_master: Option<&OwnedFd>,
    mask: &libc::sigset_t,
) -> Result<i32> {
    // SAFETY: mask is valid; signalfd returns a new fd we own.
    let sfd = unsafe { libc::signalfd(-1, mask, libc::SFD_CLOEXEC) };
    if sfd < 0 {
        return Err(std::io::Error::last_os_error()).context("signalfd");
    }
    // SAFETY: sfd was just created.
    let sfd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(sfd) };
    let mut relay = console_master.map(|m| {
        crate::console::copy_winsize(m);
        crate::console::InputRelay::new(m.as_raw_fd())
    });
    let mut master_open = true;
    loop {
        let ev = poll_relay(
            sfd.as_raw_fd(),
            pidfd.as_raw_fd(),
            relay.as_ref(),
            master_open,
        )?;
        if let (Some(m), Some(r)) = (console_master, relay.as_mut()) {
            if master_open
                && ev[2] & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
                && !crate::console::pump(m.as_raw_fd(), libc::STDOUT_FILENO)
            {
                // EIO: the container closed its side; the pidfd will report the exit.
                master_open = false;
            }
            if ev[2] & (libc::POLLOUT | libc::POLLERR) != 0 {
                r.to_master();
            }
            if ev[3] != 0 {
                r.from_stdin();
            }
        }
        if ev[1] != 0 {
            if let Some(m) = console_master {
                crate::console::drain(m.as_raw_fd(), libc::STDOUT_FILENO);
            }
            let mut status = 0;
            // SAFETY: the init is our child (directly, or via CLONE_PARENT).
            let r = unsafe { libc::waitpid(pid, &mut status, 0) };
            if r != pid {
                return Err(std::io::Error::last_os_error()).context("wait for the container");
            }
            return Ok(if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                libc::WEXITSTATUS(status)
            });
        }
        if ev[0] != 0 {
            // SAFETY: zeroed siginfo is a valid buffer for one record.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            // SAFETY: info is valid for its size.
            let n = unsafe {
                libc::read(
                    sfd.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    std::mem::size_of::<libc::signalfd_siginfo>(),
                )
            };
            if n as usize == std::mem::size_of::<libc::signalfd_siginfo>() {
                let sig = info.ssi_signo as i32;
                if sig == libc::SIGWINCH
                    && let Some(m) = console_master
                {
                    crate::console::copy_winsize(m);
                } else if sig == libc::SIGCHLD {
                    reap_orphans(pid);
                } else if sig != libc::SIGURG {
                    let _ = sys::pidfd_send_signal(pidfd, sig);
                }
            }
        }
    }
}

/// Reaps the container's orphans that became rt's (as subreaper) and exited, leaving the
/// init's status for the pidfd path: waitid with WNOWAIT looks before anything is reaped.
fn reap_orphans(init: i32) {
    loop {
        // SAFETY: zeroed siginfo is a valid out-parameter.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid on our own children with a valid siginfo pointer.
        let r = unsafe {
            libc::waitid(
                libc::P_ALL,
                0,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: si_pid is valid for the CLD_* records waitid fills in.
        let pid = unsafe { info.si_pid() };
        if r != 0 || pid == 0 || pid == init {
            return;
        }
        let mut status = 0;
        // SAFETY: reaping a child we know has exited.
        unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    }
}

pub fn list(root: &Path) -> Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for id in state::list_ids(root)? {
        let dir = root.join(&id);
        // Unlocked read: list must not wait behind a long create.
        if let Ok(st) = state::read_state(&dir) {
            let mut v = st.to_json(st.status(&dir));
            // As runc's list: the owner is whoever owns the state directory.
            if let Ok(m) = std::fs::metadata(&dir) {
                use std::os::unix::fs::MetadataExt;
                v["owner"] = crate::passwd::lookup(m.uid())
                    .map_or_else(|| format!("#{}", m.uid()), |e| e.name)
                    .into();
            }
            out.push(v);
        }
    }
    Ok(out)
}

/// The container's processes; none once it has stopped (runc's `ps` then prints only the
/// header, and so does rt's).
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>> {
    let (dir, st) = state::snapshot(root, id)?;
    if st.status(&dir) == Status::Stopped {
        return Ok(Vec::new());
    }
    let procs = match &st.cgroup {
        Some(cg) => crate::cgroups::procs(cg),
        None if !st.cgroup_v1.is_empty() => crate::cgroupv1::procs(&st.cgroup_v1),
        None => Ok(vec![st.pid]),
    };
    // Read without the lock: a delete may have removed the cgroup meanwhile. Then the
    // container is gone, or stopped with nothing left to list.
    procs.or_else(|e| {
        if !dir.join(state::STATE_FILE).exists() {
            bail!("container {id:?} does not exist");
        }
        if st.status(&dir) == Status::Stopped {
            return Ok(Vec::new());
        }
        Err(e)
    })
}
