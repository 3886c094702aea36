//! `rt create`: the bundle checked, the state directory, cgroup and init made, the init left waiting
//! on the exec fifo. Every step has a guard that undoes it if a later one fails.

use anyhow::{Context, Result, bail};
use std::cell::RefCell;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::cgroups::Driver;
use crate::state::{self, Dir, State};
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

/// Compiled seccomp programs, in the state root (see process::security::seccomp): a name no
/// container id can take.
pub const SECCOMP_CACHE: &str = "@seccomp";

/// A freshly created container, still locked by this rt process.
pub struct Created {
    pub dir: Dir,
    pub state: State,
    pub pidfd: OwnedFd,
    /// The pty master when rt drives a foreground terminal itself.
    pub console_master: Option<OwnedFd>,
    /// The exec fifo's read side, opened before the init existed: a `run` whose create has
    /// nothing left to do once the init is ready (no pid file, pidfd socket, terminal, notify
    /// socket or seccomp listener; the state written while the init mounts, so the init is the
    /// first child and the cgroupfs driver is used). Its init then goes on to
    /// exec without waiting for rt to open the fifo after "ready": one round trip less.
    pub fifo_reader: Option<OwnedFd>,
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

/// `rt create`. One function on purpose, for all its length: the guards that undo each step
/// (state dir, shared-namespace mounts, v1 cgroups, the cgroup or unit, the init) live in this
/// frame, so a failure at any point unwinds exactly what was made, in reverse order.
/// `start_at_once`: `run`'s create, whose start follows at once (see `fifo_reader`).
pub fn create(
    root: &Path,
    id: &str,
    o: &CreateOpts,
    detached: bool,
    start_at_once: bool,
) -> Result<Created> {
    state::validate_id(id)?;
    crate::process::fds::note_passed_fds(o.preserve_fds);
    let mut bundle = crate::spec::load(&o.bundle)?;
    crate::logging::phase("config loaded");
    let preserve_fds = o.preserve_fds + socket_activation(&mut bundle.spec);
    let terminal = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    crate::process::console::check_usage(terminal, o.console_socket.as_ref(), detached)?;
    let cgroups_path = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone());
    let mut systemd = driver_plan(&bundle.spec, id, o.systemd_cgroup, cgroups_path.as_deref())?;
    let cgroup_rel = crate::cgroups::v2::resolve(cgroups_path.as_deref(), id)?;
    let (console, console_rx) = console_for(o.console_socket.as_deref(), terminal, detached)?;

    let dir = Dir::create(root, id)?;
    let dir_guard = DirGuard(Some(&dir.path));
    let (shared_root, mounts_before) = shared_root_mounts(&bundle)?;
    let mount_guard = MountGuard(shared_root.as_deref().zip(mounts_before.as_ref()));
    crate::notify::setup_spec(&mut bundle.spec, &dir.path)?;
    let fifo = make_fifo(&dir)?;
    let fifo_reader = if start_at_once
        && o.pid_file.is_none()
        && o.pidfd_socket.is_none()
        && !terminal
        && systemd.is_none()
        && crate::process::spawn::init_is_first_child(&bundle.spec)
        && !crate::notify::configured()
        // A seccomp agent must have the listener before the program runs.
        && !bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
            .is_some_and(crate::process::security::seccomp::uses_notify)
    {
        Some(
            sys::open(&dir.fifo(), libc::O_RDONLY | libc::O_NONBLOCK, 0)
                .context("open exec fifo")?,
        )
    } else {
        None
    };
    let hostproc = open_hostproc()?;
    let trampoline = crate::process::security::exeguard::trampoline()?;
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
        .map(|s| crate::process::security::seccomp::build(s, Some(&root.join(SECCOMP_CACHE))))
        .transpose()?;
    let device_rules = device_rules(&bundle.spec)?;
    if let Some(sd) = systemd.as_mut() {
        sd.filter_devices(device_rules.as_deref());
    }
    let limits = match bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
    {
        Some(r) => crate::cgroups::resources::plan(r)?,
        None => Vec::new(),
    };
    crate::logging::phase("state dir, fifo, trampoline, filters ready");

    let v2_mount = crate::cgroups::v2::v2_mount();
    let (on_v2, on_v1) = crate::cgroups::resources::split(v2_mount.as_deref(), &limits);
    let mut driver: Box<dyn Driver + '_> = match &systemd {
        Some(sd) => Box::new(crate::cgroups::systemd::Scope::new(sd, &on_v2)),
        None => Box::new(crate::cgroups::v2::Cgroupfs(make_v2_cgroup(
            &cgroup_rel,
            &on_v2,
            v2_mount.as_deref(),
        )?)),
    };
    // Rootless with no cgroup: a user namespace can't create device nodes anyway (mknod of a
    // device is refused outside the initial user namespace), so there is nothing to filter.
    let device_rules =
        device_rules.filter(|_| !(crate::sys::rootless() && driver.clone_into().is_none()));
    // The cgroupfs driver's, made by now; systemd's comes with its unit.
    let v2_dir = driver
        .rel()
        .and_then(|rel| crate::cgroups::v2::dir_of(&rel));
    // The v1 hierarchies and the device filter: made while the init makes its namespaces
    // where it can wait for them (most containers), else now.
    let after_clone = systemd.is_none() && crate::process::spawn::init_is_first_child(&bundle.spec);
    let v1_cell: RefCell<Option<crate::cgroups::v1::Joined>> = RefCell::new(None);
    let v1_guard = V1Guard(&v1_cell);
    let make_v1 = || -> Result<Vec<PathBuf>> {
        let v1 = join_v1(
            &on_v1,
            device_rules.as_deref(),
            v2_dir.is_none(),
            cgroups_path.as_deref(),
            id,
        )?;
        let dirs = v1.dirs.clone();
        let mut cell = v1_cell.borrow_mut();
        let v1 = cell.insert(v1);
        if let Some(rules) = device_rules.as_ref().filter(|_| systemd.is_none()) {
            attach_device_filter(rules, v2_dir.as_deref(), v1, &bundle.spec)?;
        }
        Ok(dirs)
    };
    // The init joins them itself once it has their directories (process::init::join_v1_self).
    let make_v1_for = |_pid: i32| make_v1();
    let v1_dirs = if after_clone { Vec::new() } else { make_v1()? };
    crate::logging::phase("cgroups ready");

    // The systemd driver: once the init (or the first stage it comes from) exists, systemd
    // moves it into a new unit; its limits and device filter follow before the init goes on.
    let adopt = |pid: i32| driver.adopt(pid);
    let cgroup_by_parent: Option<&dyn Fn(i32) -> Result<()>> = driver.adopts().then_some(&adopt);
    // The state files. rt's side has nothing to do while the init mounts its rootfs, so they
    // are written then (0.1 ms less of every create here); with the systemd driver, whose
    // unit exists only once it has adopted the init, after the init is ready.
    let record = |pid: i32| -> Result<State> {
        let (start_time, _) =
            sys::proc_start_time(pid).context("container init exited during setup")?;
        let mut st = state_of(
            &bundle,
            id,
            pid,
            start_time,
            v1_cell
                .borrow()
                .as_ref()
                .context("internal: state before the v1 cgroups")?,
        );
        st.cgroup = driver.rel();
        st.cgroup_owned = driver.owned();
        (st.systemd_unit, st.systemd_user) = match driver.unit() {
            Some((name, user)) => (Some(name), user),
            None => (None, false),
        };
        // What was mounted under the rootfs before: everything else there is the container's,
        // including what its program mounts later.
        st.shared_mounts = shared_root
            .as_ref()
            .zip(mounts_before.as_ref())
            .map(|(r, before)| crate::state::SharedMounts {
                root: r.clone(),
                before: before.clone(),
            });
        dir.save(&st)?;
        // exec needs the container's config as it was at create, whatever the bundle holds
        // later.
        crate::sys::write_file(dir.path.join(state::CONFIG_COPY), &bundle.raw)
            .context("save config")?;
        Ok(st)
    };
    let recorded = RefCell::new(None);
    let record_early = |pid: i32| -> Result<()> {
        *recorded.borrow_mut() = Some(record(pid)?);
        Ok(())
    };
    let close_in_child: Vec<i32> = std::iter::once(dir.lock_fd())
        .chain(fifo_reader.as_ref().map(|f| f.as_raw_fd()))
        .collect();
    let args = crate::process::InitArgs {
        id,
        bundle: &bundle,
        fifo: fifo.as_raw_fd(),
        hostproc: hostproc.as_raw_fd(),
        console_socket: console.as_ref().map(|c| c.as_raw_fd()),
        preserve_fds,
        no_pivot: o.no_pivot,
        no_new_keyring: o.no_new_keyring,
        cgroup_fd: driver.clone_into(),
        close_in_child: &close_in_child,
        seccomp: seccomp.as_ref(),
        trampoline: trampoline.as_raw_fd(),
        idmaps: &idmaps,
        v2_cgroup: v2_dir.clone(),
        v1_cgroups: &v1_dirs,
        cgroups_after_clone: after_clone.then_some(&make_v1_for),
        cgroup_by_parent,
        meanwhile: (!driver.adopts()).then_some(&record_early),
    };
    let spawned = crate::process::spawn(&args)?;
    let kill_init = scopeguard(spawned.pid);
    crate::failpoint("create");
    crate::logging::phase("init ready, waiting for start");
    let st = match recorded.into_inner() {
        Some(st) => st,
        None => record(spawned.pid)?,
    };
    if let Some(p) = &o.pid_file {
        state::write_pid_file(p, spawned.pid)?;
    }
    if let Some(p) = &o.pidfd_socket {
        send_pidfd(p, &spawned.pidfd)?;
    }
    driver.disarm();
    kill_init.disarm();
    std::mem::forget(v1_guard);
    std::mem::forget(mount_guard);
    std::mem::forget(dir_guard);
    drop(console);
    let console_master = console_rx
        .map(|rx| crate::process::console::receive_master(&rx))
        .transpose()?;
    crate::logging::phase("created");
    Ok(Created {
        dir,
        state: st,
        pidfd: spawned.pidfd,
        console_master,
        fifo_reader,
    })
}

/// The systemd driver's plan with --systemd-cgroup; without it, a systemd-style cgroupsPath
/// is refused rather than taken for a directory name.
fn driver_plan(
    spec: &oci_spec::runtime::Spec,
    id: &str,
    systemd_cgroup: bool,
    cgroups_path: Option<&Path>,
) -> Result<Option<crate::cgroups::systemd::Plan>> {
    if systemd_cgroup {
        return Ok(Some(crate::cgroups::systemd::Plan::new(spec, id)?));
    }
    if let Some(p) = cgroups_path.and_then(|p| p.to_str())
        && crate::cgroups::systemd::looks_like_systemd_path(p)
    {
        bail!(
            "config.json: linux.cgroupsPath {p:?} is systemd's slice:prefix:name form: run rt with --systemd-cgroup"
        );
    }
    Ok(None)
}

/// The console socket the init sends its pty master to: the caller's, or, for a foreground
/// terminal without one, a socket pair whose other end rt keeps to relay it (see run).
pub(crate) fn console_for(
    socket: Option<&Path>,
    terminal: bool,
    detached: bool,
) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    Ok(match socket {
        Some(p) => (
            Some(crate::process::console::connect(p).context("--console-socket")?),
            None,
        ),
        None if terminal && !detached => {
            let (ours, theirs) = crate::process::console::pair()?;
            (Some(theirs), Some(ours))
        }
        None => (None, None),
    })
}

/// Without a mount namespace of its own the container mounts in ours: what is at and under its
/// rootfs (as mountinfo names it: symlinks resolved) now, so delete (or a failed create)
/// detaches only what it added.
fn shared_root_mounts(bundle: &crate::spec::Bundle) -> Result<(Option<PathBuf>, Option<Vec<u64>>)> {
    if crate::spec::has_namespace(&bundle.spec, oci_spec::runtime::LinuxNamespaceType::Mount) {
        return Ok((None, None));
    }
    let root = std::fs::canonicalize(&bundle.rootfs)
        .with_context(|| format!("config.json: root.path {}", bundle.rootfs.display()))?;
    let before = crate::process::rootfs::mounts_under(&root)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    Ok((Some(root), Some(before)))
}

/// The exec fifo the init blocks on until `start`, as an O_PATH fd.
fn make_fifo(dir: &Dir) -> Result<OwnedFd> {
    let fifo_path = dir.fifo();
    let c = sys::cstring(&fifo_path)?;
    // 0622: the init may run as any uid and must open it to write. The mode is made exact by
    // clearing the umask around the mkfifo (rt runs no other thread) rather than by a chmod
    // after it, which is one more inode update on the state's filesystem.
    // SAFETY: c is a valid path; umask cannot fail.
    let made = unsafe {
        let old = libc::umask(0);
        let made = sys::check_int(libc::mkfifo(c.as_ptr(), 0o622));
        libc::umask(old);
        made
    };
    made.context("create exec fifo")?;
    sys::open(&fifo_path, libc::O_PATH, 0).context("open exec fifo")
}

/// The cgroupfs driver's cgroup, made (with the controllers its limits need) and given its v2
/// limits before the init exists, so the init is cloned straight into it.
fn make_v2_cgroup(
    rel: &str,
    on_v2: &[&crate::cgroups::resources::Write],
    v2_mount: Option<&Path>,
) -> Result<Option<crate::cgroups::v2::Created>> {
    let cgroup = crate::cgroups::v2::create(rel, crate::cgroups::resources::domain_limit(on_v2))?;
    if !on_v2.is_empty() {
        let (Some(c), Some(mount)) = (&cgroup, v2_mount) else {
            bail!(
                "linux.resources: limits need a writable cgroup v2 hierarchy, and there is none here"
            );
        };
        crate::cgroups::resources::apply(mount, &c.rel, on_v2, false)?;
    }
    Ok(cgroup)
}

/// v1 and hybrid hosts: the container joins its cgroup in every v1 hierarchy (as runc does,
/// so `update` finds them later); what v2 can't take is written there. Where the devices
/// controller is a v1 one the rules are written to it too, as runc does: tools that read
/// devices.list see them, and v1 enforces them where no eBPF filter can be attached. Root of
/// a user namespace may not write them (the kernel wants CAP_SYS_ADMIN in the initial one).
fn join_v1(
    on_v1: &[&crate::cgroups::resources::Write],
    device_rules: Option<&[crate::cgroups::devices::Rule]>,
    no_v2: bool,
    cgroups_path: Option<&Path>,
    id: &str,
) -> Result<crate::cgroups::v1::Joined> {
    let v1_devices = device_rules
        .filter(|_| !crate::sys::rootless() && !crate::sys::in_user_namespace())
        .map(|r| (r, no_v2));
    if crate::cgroups::v1::hierarchies().is_empty() {
        if !on_v1.is_empty() {
            crate::cgroups::v1::join(on_v1, None, cgroups_path, id)?;
        }
        return Ok(crate::cgroups::v1::Joined::default());
    }
    if device_rules.is_some() && v1_devices.is_none() {
        crate::logging::debug("in a user namespace: the v1 devices controller is left as it is");
    }
    crate::cgroups::v1::join(on_v1, v1_devices, cgroups_path, id)
}

/// The cgroupfs driver's device filter: rt's eBPF program on the v2 cgroup, or the v1 devices
/// controller's rules (written by join_v1); an error only if the config asked for rules and
/// neither exists. On a hybrid host whose v1 devices controller holds exactly the rules, it
/// alone enforces them, as with runc there: loading and verifying the program as well was 4%
/// of rt's CPU time in 100 concurrent creates (perf). Where v1 can't express them, the program
/// enforces them.
fn attach_device_filter(
    rules: &[crate::cgroups::devices::Rule],
    v2_dir: Option<&Path>,
    v1: &crate::cgroups::v1::Joined,
    spec: &oci_spec::runtime::Spec,
) -> Result<()> {
    let v1_has_devices = crate::cgroups::v1::dir_for(&v1.dirs, "devices").is_some();
    match v2_dir {
        Some(_) if v1_has_devices && v1.devices_exact => {
            crate::logging::debug("device rules: enforced by the v1 devices controller")
        }
        Some(dir) => crate::cgroups::devices::attach(rules, dir)?,
        None if v1_has_devices => {}
        None if asks_for_device_rules(spec) => {
            bail!(
                "linux.resources.devices: needs a cgroup v2 hierarchy or a v1 devices controller, and this host has neither"
            )
        }
        // Only the defaults, and nowhere to put them: as before any filter.
        None => crate::logging::debug("no device cgroup: the default device rules are not applied"),
    }
    Ok(())
}

/// The state of a just-created container; its cgroup fields are the caller's to fill in.
fn state_of(
    bundle: &crate::spec::Bundle,
    id: &str,
    pid: i32,
    start_time: u64,
    v1: &crate::cgroups::v1::Joined,
) -> State {
    State {
        id: id.to_string(),
        pid,
        start_time,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: crate::logging::rfc3339_now(),
        annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        owner: String::new(),
        cgroup: None,
        cgroup_owned: false,
        systemd_unit: None,
        systemd_user: false,
        cgroup_v1: v1.dirs.clone(),
        // Only its own: parents rt made stay after a successful create, as with runc.
        cgroup_v1_created: v1
            .created
            .iter()
            .filter(|d| v1.dirs.contains(d))
            .cloned()
            .collect(),
        has_hooks: bundle.spec.hooks().is_some(),
        shared_mounts: None,
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
    }
}

/// systemd socket activation, as runc: with LISTEN_FDS=N in rt's environment, fds 3..3+N go
/// to the container (before any --preserve-fds ones) and its process is told LISTEN_FDS=N,
/// LISTEN_PID=1.
fn socket_activation(spec: &mut oci_spec::runtime::Spec) -> u32 {
    let n = crate::process::fds::listen_fds();
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
    let sock = crate::process::console::connect(path)
        .map_err(|e| anyhow::anyhow!("--pidfd-socket {e:#}"))?;
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
        let userns = crate::process::rootfs::idmap_userns(&uid, &gid).with_context(what)?;
        let src = m
            .source()
            .as_ref()
            .with_context(|| format!("{}: no source", what()))?;
        let src = if src.is_absolute() {
            src.clone()
        } else {
            bundle_dir.join(src)
        };
        let o = crate::process::rootfs::parse_options(m.options().as_deref().unwrap_or(&[]));
        let tree = crate::process::rootfs::detached_bind(&src, &o, Some(userns.as_raw_fd()))
            .with_context(what)?;
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
) -> Result<Option<Vec<crate::cgroups::devices::Rule>>> {
    let Some(linux) = spec.linux() else {
        return crate::cgroups::devices::rules(&[], &[]);
    };
    let config = linux
        .resources()
        .as_ref()
        .and_then(|r| r.devices().clone())
        .unwrap_or_default();
    crate::cgroups::devices::rules(&config, linux.devices().as_deref().unwrap_or(&[]))
}

/// Detaches what a failed create of a container without its own mount namespace mounted.
struct MountGuard<'a>(Option<(&'a Path, &'a Vec<u64>)>);

impl Drop for MountGuard<'_> {
    fn drop(&mut self) {
        if let Some((rootfs, before)) = self.0 {
            crate::process::rootfs::detach_mounts(rootfs, |id| !before.contains(&id));
        }
    }
}

/// Removes the v1 cgroups a failed create made.
struct V1Guard<'a>(&'a RefCell<Option<crate::cgroups::v1::Joined>>);

impl Drop for V1Guard<'_> {
    fn drop(&mut self) {
        if let Some(j) = self.0.borrow().as_ref() {
            crate::cgroups::v1::remove_made(j);
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
