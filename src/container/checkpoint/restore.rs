//! `rt restore`: a new container from a bundle, whose processes are those of a checkpoint.

use anyhow::{Context, Result, bail};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{
    CriuOpts, DESCRIPTORS, TERMINAL, criu_binary, external_mounts, external_namespaces,
    has_console, run_criu,
};
use crate::cgroups::Driver;
use crate::state::{self, Dir, State};

pub struct RestoreOpts {
    pub criu: CriuOpts,
    /// `--systemd-cgroup`: the restored container gets a unit of its own.
    pub systemd_cgroup: bool,
    pub bundle: PathBuf,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub subreaper: bool,
    pub tcp_close: bool,
    pub console_socket: Option<PathBuf>,
    pub lsm_profile: Option<String>,
    pub lsm_mount_context: Option<String>,
}

/// The restored container's terminal: a new pty in the place of the image's external one.
struct Terminal {
    key: String,
    pty: crate::process::console::Pty,
    slave_path: PathBuf,
    /// The caller's --console-socket, connected; None: rt relays it (foreground restore).
    socket: Option<std::os::fd::OwnedFd>,
}

/// The terminal a restore needs, refused before anything is made when the image, the bundle
/// and the flags disagree.
fn restore_terminal(o: &RestoreOpts, spec: &oci_spec::runtime::Spec) -> Result<Option<Terminal>> {
    let terminal = has_console(spec);
    crate::process::console::check_usage(terminal, o.console_socket.as_ref(), o.detach)?;
    let key = crate::sys::read_to_string(o.criu.image_path.join(TERMINAL)).ok();
    let key = match (terminal, key) {
        (false, None) => return Ok(None),
        (true, Some(k)) => k,
        (true, None) => bail!(
            "process.terminal is true but the checkpoint in {} has no terminal",
            o.criu.image_path.display()
        ),
        (false, Some(_)) => bail!(
            "the checkpoint in {} has a terminal: the bundle needs process.terminal true",
            o.criu.image_path.display()
        ),
    };
    let socket = o
        .console_socket
        .as_deref()
        .map(crate::process::console::connect)
        .transpose()
        .context("--console-socket")?;
    let (pty, slave_path) = crate::process::console::open_host_pty()?;
    Ok(Some(Terminal {
        key,
        pty,
        slave_path,
        socket,
    }))
}

/// `rt restore`: a new container from the bundle whose processes are those of the image.
pub fn restore(root: &Path, id: &str, o: &RestoreOpts) -> Result<i32> {
    let mut plan = Plan::new(id, o)?;
    let terminal = plan.terminal.take();
    let dir = Dir::create(root, id)?;
    let guard = RestoreGuard {
        dir: Some(dir.path.clone()),
    };
    let v2_mount = crate::cgroups::v2::v2_mount();
    let (on_v2, _) = crate::cgroups::resources::split(v2_mount.as_deref(), &plan.limits);
    let mut home = Home::make(&plan, id, &on_v2, v2_mount.as_deref())?;
    let criu_root = dir.path.join("criu-root");
    std::fs::create_dir(&criu_root).context("create criu-root")?;
    let pidfile = dir.path.join("criu.pid");
    let (cmd, _inherited) = criu_command(
        &plan,
        terminal.as_ref(),
        o,
        &criu_root,
        &pidfile,
        home.driver.rel().as_deref(),
    )?;
    if o.subreaper && !o.detach {
        crate::sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1).context("become a subreaper")?;
    }
    let mask = crate::container::run::forwarded_signals();
    if !o.detach {
        // SAFETY: mask is a valid sigset_t.
        unsafe { libc::sigprocmask(libc::SIG_BLOCK, &mask, std::ptr::null_mut()) };
    }
    // On failure the guards undo, in this order: placeholder, unit or cgroup, state dir.
    let pid = run_criu(cmd, "restore", &o.criu, LOG).and_then(|_| {
        crate::sys::read_to_string(&pidfile)
            .context("criu restore wrote no pid")?
            .trim()
            .parse::<i32>()
            .context("criu restore: bad pid file")
    })?;
    let _ = std::fs::remove_dir(&criu_root);
    drop(home.placeholder.take());
    let console_master = hand_over_terminal(terminal, pid)?;
    let st = home.state(&plan, id, pid)?;
    dir.save(&st)?;
    crate::sys::write_file(dir.path.join(state::CONFIG_COPY), &plan.bundle.raw)
        .context("save config")?;
    if let Some(p) = &o.pid_file {
        state::write_pid_file(p, pid)?;
    }
    home.driver.disarm();
    std::mem::forget(guard);
    if o.detach {
        return Ok(0);
    }
    let pidfd = crate::sys::pidfd_open(pid).context("pidfd of the restored init")?;
    drop(dir);
    let status = {
        let _raw = console_master
            .as_ref()
            .map(|_| crate::process::console::RawMode::enter());
        crate::container::run::wait_forwarding(pid, &pidfd, console_master.as_ref(), &mask)
    };
    if let Ok(dir) = Dir::open(root, id)
        && let Ok(st2) = dir.load()
        && st2.pid == st.pid
        && let Err(e) = crate::container::delete::destroy(dir, &st2)
    {
        crate::logging::warn(&format!("clean up after the container: {e:#}"));
    }
    status
}

const LOG: &str = "restore.log";

/// Everything a restore needs, checked before anything is made.
struct Plan {
    bundle: crate::spec::Bundle,
    criu: PathBuf,
    terminal: Option<Terminal>,
    systemd: Option<crate::cgroups::systemd::Plan>,
    limits: Vec<crate::cgroups::resources::Write>,
    device_rules: Option<Vec<crate::cgroups::devices::Rule>>,
    /// What the init's stdio were at checkpoint (descriptors.json).
    descriptors: Vec<String>,
}

impl Plan {
    fn new(id: &str, o: &RestoreOpts) -> Result<Plan> {
        o.criu.check()?;
        if let Some(p) = &o.lsm_profile {
            match p.split_once(':') {
                Some(("apparmor" | "selinux", name)) if !name.is_empty() => {}
                _ => bail!("--lsm-profile {p:?}: must be apparmor:NAME or selinux:LABEL"),
            }
        }
        state::validate_id(id)?;
        let bundle = crate::spec::load(&o.bundle)?;
        let criu = criu_binary()?;
        let spec = &bundle.spec;
        let terminal = restore_terminal(o, spec)?;
        let mut systemd = o
            .systemd_cgroup
            .then(|| crate::cgroups::systemd::Plan::new(spec, id))
            .transpose()?;
        let limits = match spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
            Some(r) => crate::cgroups::resources::plan(r)?,
            None => Vec::new(),
        };
        let device_rules = crate::container::create::device_rules(spec)?;
        if let Some(sd) = systemd.as_mut() {
            sd.filter_devices(device_rules.as_deref());
        }
        let descriptors = crate::sys::read_to_string(o.criu.image_path.join(DESCRIPTORS))
            .with_context(|| {
                format!(
                    "--image-path {}: no {DESCRIPTORS} (not an image of rt checkpoint?)",
                    o.criu.image_path.display()
                )
            })
            .and_then(|t| serde_json::from_str(&t).context(DESCRIPTORS))?;
        Ok(Plan {
            bundle,
            criu,
            terminal,
            systemd,
            limits,
            device_rules,
            descriptors,
        })
    }
}

/// The restored container's cgroup, made before CRIU runs: a cgroup with the bundle's limits
/// and device filter (cgroupfs), or a unit holding a placeholder process (systemd), so CRIU
/// restores the processes straight into it, their cgroup namespace rooted there. Undone on
/// drop unless disarmed.
struct Home<'a> {
    driver: Box<dyn Driver + 'a>,
    placeholder: Option<Placeholder>,
}

impl<'a> Home<'a> {
    fn make(
        plan: &'a Plan,
        id: &str,
        on_v2: &'a [&'a crate::cgroups::resources::Write],
        v2_mount: Option<&Path>,
    ) -> Result<Home<'a>> {
        if let Some(sd) = &plan.systemd {
            let placeholder = Placeholder::spawn()?;
            let driver = Box::new(crate::cgroups::systemd::Scope::new(sd, on_v2));
            driver.adopt(placeholder.pid)?;
            return Ok(Home {
                driver,
                placeholder: Some(placeholder),
            });
        }
        let spec = &plan.bundle.spec;
        let cgroups_path = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
        let cgroup = crate::cgroups::v2::create(
            &crate::cgroups::v2::resolve(cgroups_path.as_deref(), id)?,
            crate::cgroups::resources::domain_limit(on_v2),
        )?;
        // The same limits and device filter as create gives, before any restored process runs.
        match (&cgroup, v2_mount) {
            (Some(c), Some(mount)) => {
                crate::cgroups::resources::apply(mount, &c.rel, on_v2, false)?;
                if let Some(rules) = &plan.device_rules {
                    let dir = mount.join(c.rel.trim_start_matches('/'));
                    crate::cgroups::devices::attach(rules, &dir)?;
                }
            }
            _ if !on_v2.is_empty() => bail!(
                "linux.resources: limits need a writable cgroup v2 hierarchy, and there is none here"
            ),
            _ => {}
        }
        Ok(Home {
            driver: Box::new(crate::cgroups::v2::Cgroupfs(cgroup)),
            placeholder: None,
        })
    }

    fn state(&self, plan: &Plan, id: &str, pid: i32) -> Result<State> {
        let spec = &plan.bundle.spec;
        let (start_time, _) =
            crate::sys::proc_start_time(pid).context("the restored init is gone already")?;
        let (systemd_unit, systemd_user) = match self.driver.unit() {
            Some((name, user)) => (Some(name), user),
            None => (None, false),
        };
        Ok(State {
            id: id.to_string(),
            pid,
            start_time,
            bundle: plan.bundle.dir.clone(),
            rootfs: plan.bundle.rootfs.clone(),
            created: crate::logging::rfc3339_now(),
            annotations: spec.annotations().clone().unwrap_or_default(),
            owner: String::new(),
            cgroup: self.driver.rel(),
            cgroup_owned: self.driver.owned(),
            systemd_unit,
            systemd_user,
            cgroup_v1: Vec::new(),
            cgroup_v1_created: Vec::new(),
            shared_mounts: None,
            own_pidns: crate::spec::has_namespace(spec, oci_spec::runtime::LinuxNamespaceType::Pid),
            has_hooks: spec.hooks().is_some(),
        })
    }
}

impl Drop for Home<'_> {
    fn drop(&mut self) {
        // The placeholder first: a unit can't be stopped cleanly with it still inside. The
        // driver's own drop then undoes the cgroup or unit, unless disarmed.
        drop(self.placeholder.take());
    }
}

/// criu restore's command line: the image, the cgroup, and in place of what the dump left out
/// the bundle's bind sources, namespaces, a new terminal and rt's own stdio. The fds it
/// inherits come back with it, to be held until criu has run.
fn criu_command(
    plan: &Plan,
    terminal: Option<&Terminal>,
    o: &RestoreOpts,
    criu_root: &Path,
    pidfile: &Path,
    cgroup: Option<&str>,
) -> Result<(Command, Vec<OwnedFd>)> {
    let spec = &plan.bundle.spec;
    let mut cmd = Command::new(&plan.criu);
    cmd.arg("restore")
        .arg("--root")
        .arg(criu_root)
        .arg("--pidfile")
        .arg(pidfile)
        .args(["--restore-detached", "--restore-sibling"]);
    o.criu.common_args(&mut cmd, LOG)?;
    if o.tcp_close {
        cmd.arg("--tcp-close");
    }
    if let Some(p) = &o.lsm_profile {
        cmd.arg("--lsm-profile").arg(p);
    }
    if let Some(c) = &o.lsm_mount_context {
        cmd.arg("--lsm-mount-context").arg(c);
    }
    if let Some(rel) = cgroup {
        cmd.arg("--cgroup-root").arg(rel);
    }
    for (dest, src) in external_mounts(spec, &plan.bundle.dir) {
        cmd.arg("--ext-mount-map")
            .arg(format!("{dest}:{}", src.display()));
    }
    // The fds CRIU inherits: the new terminal's slave, the namespaces to restore into.
    let mut inherit = Vec::new();
    if let Some(t) = terminal {
        let fd = t.pty.slave.as_raw_fd();
        cmd.arg("--inherit-fd").arg(format!("fd[{fd}]:{}", t.key));
        if has_console(spec) {
            cmd.arg("--ext-mount-map")
                .arg(format!("/dev/console:{}", t.slave_path.display()));
        }
        inherit.push(fd);
    }
    let mut namespaces = Vec::new();
    for (kind, key, path) in external_namespaces(spec) {
        let ns =
            crate::sys::open(&path, libc::O_RDONLY | libc::O_CLOEXEC, 0).with_context(|| {
                format!("linux.namespaces: the {kind} namespace {}", path.display())
            })?;
        cmd.arg("--inherit-fd")
            .arg(format!("fd[{}]:{key}", ns.as_raw_fd()));
        inherit.push(ns.as_raw_fd());
        namespaces.push(ns);
    }
    // The init's pipes and sockets come back as rt's own stdio (runc does the same).
    for (n, what) in plan.descriptors.iter().enumerate() {
        if what.starts_with("pipe:") || what.starts_with("socket:") {
            cmd.arg("--inherit-fd").arg(format!("fd[{n}]:{what}"));
        }
    }
    // CRIU needs the rootfs as a mount point of its own: bound there in a mount namespace of
    // criu's own, so nothing is left on the host whatever happens to it.
    let rootfs = plan.bundle.rootfs.clone();
    let target = criu_root.to_path_buf();
    // SAFETY: the closure only makes syscalls (fcntl, unshare, mount) before exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            for &fd in &inherit {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            bind_root_privately(&rootfs, &target)
        });
    }
    Ok((cmd, namespaces))
}

/// The restored processes hold the new terminal's slave now; its master goes to the caller,
/// as at create, or stays with rt to relay (returned). A container nobody can reach is killed.
fn hand_over_terminal(terminal: Option<Terminal>, pid: i32) -> Result<Option<OwnedFd>> {
    let Some(t) = terminal else {
        return Ok(None);
    };
    let Some(sock) = &t.socket else {
        return Ok(Some(t.pty.master));
    };
    if let Err(e) = crate::process::console::send_master(sock.as_raw_fd(), &t.pty.master) {
        // SAFETY: the restored init is rt's child (CRIU restores it as criu's sibling) and
        // unreaped, so the pid is still its.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        return Err(e);
    }
    Ok(None)
}

/// A child of rt that only waits to be killed: a new unit's first process (systemd starts a
/// scope with at least one), killed and reaped on drop.
struct Placeholder {
    pid: i32,
}

impl Placeholder {
    fn spawn() -> Result<Placeholder> {
        // SAFETY: rt is single-threaded, so the child may run anything; it only pauses.
        match unsafe { libc::fork() } {
            -1 => Err(std::io::Error::last_os_error()).context("fork a placeholder"),
            0 => loop {
                // SAFETY: pause has no preconditions; the child never returns into rt.
                unsafe { libc::pause() };
            },
            pid => Ok(Placeholder { pid }),
        }
    }
}

impl Drop for Placeholder {
    fn drop(&mut self) {
        // SAFETY: our own unreaped child, so the pid can't have been reused.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

/// In criu's process, before exec: a mount namespace of its own with the rootfs bound onto
/// `target`. Slave, not private: nothing propagates back to the host, and the bind keeps the
/// host's peer group as its master, which CRIU copies to the restored mounts that had it (on
/// a systemd host, where / is shared).
fn bind_root_privately(rootfs: &Path, target: &Path) -> std::io::Result<()> {
    crate::sys::unshare(libc::CLONE_NEWNS)?;
    crate::sys::mount(None, "/", None, libc::MS_REC | libc::MS_SLAVE, None)?;
    let (Some(src), Some(dst)) = (rootfs.to_str(), target.to_str()) else {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    };
    crate::sys::mount(Some(src), dst, None, libc::MS_BIND | libc::MS_REC, None)
}

/// Removes the state dir of a restore that failed.
struct RestoreGuard {
    dir: Option<PathBuf>,
}

impl Drop for RestoreGuard {
    fn drop(&mut self) {
        if let Some(d) = self.dir.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
