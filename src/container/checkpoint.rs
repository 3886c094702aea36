//! `checkpoint` and `restore`: a running container saved to disk and brought back, by CRIU
//! (the `criu` binary, driven through its command line). rt describes the container to CRIU:
//! its root, the bind mounts whose sources live outside it (external mounts, mapped back to
//! the bundle's sources on restore), its cgroup, and which of the init's stdio fds to hand
//! over on restore (`descriptors.json` in the image directory, as runc writes).

use anyhow::{Context, Result, bail};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::state::{self, Dir, State, Status};

/// CRIU options shared by checkpoint and restore (runc's flags of the same names).
#[derive(Default, Clone)]
pub struct CriuOpts {
    pub image_path: PathBuf,
    pub work_path: Option<PathBuf>,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub manage_cgroups_mode: Option<String>,
    pub empty_ns: Vec<String>,
    pub auto_dedup: bool,
    pub lazy_pages: bool,
}

pub struct CheckpointOpts {
    pub criu: CriuOpts,
    pub parent_path: Option<PathBuf>,
    pub leave_running: bool,
    pub pre_dump: bool,
    /// `ADDRESS:PORT`: pages go to (or, lazily, are served from) there.
    pub page_server: Option<String>,
    pub status_fd: Option<i32>,
    pub tcp_skip_in_flight: bool,
    pub link_remap: bool,
}

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

const DESCRIPTORS: &str = "descriptors.json";
/// The image's terminal, if the init's stdio was one: CRIU's key for it (`tty[rdev:dev]`),
/// left out of the dump as external, for restore to put a new pty in its place.
const TERMINAL: &str = "rt-terminal";

fn criu_binary() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join("criu"))
        .find(|p| p.is_file())
        .context(
            "checkpoint and restore need CRIU: no criu binary in PATH (install the criu package)",
        )
}

/// The bind mounts CRIU can't see the source of from inside the container: their
/// destinations, each with its host source.
fn external_mounts(spec: &oci_spec::runtime::Spec, bundle: &Path) -> Vec<(String, PathBuf)> {
    spec.mounts()
        .iter()
        .flatten()
        .filter(|m| {
            m.typ().as_deref() == Some("bind")
                || m.options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind")
        })
        .filter_map(|m| {
            let src = m.source().as_ref()?;
            let src = if src.is_absolute() {
                src.clone()
            } else {
                bundle.join(src)
            };
            Some((m.destination().to_string_lossy().into_owned(), src))
        })
        .chain(device_binds(spec))
        .collect()
}

/// In a user namespace, where mknod is not allowed, the container's device nodes are bind
/// mounts of the host's (rootfs.rs): external too, each from the host node of its path.
fn device_binds(spec: &oci_spec::runtime::Spec) -> Vec<(String, PathBuf)> {
    if !crate::spec::has_namespace(spec, oci_spec::runtime::LinuxNamespaceType::User) {
        return Vec::new();
    }
    let defaults =
        ["null", "zero", "full", "random", "urandom", "tty"].map(|n| format!("/dev/{n}"));
    let listed = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
        .map(|d| d.path().to_string_lossy().into_owned());
    let mut all: Vec<(String, PathBuf)> = Vec::new();
    for d in defaults.into_iter().chain(listed) {
        if !all.iter().any(|(seen, _)| *seen == d) {
            all.push((d.clone(), PathBuf::from(d)));
        }
    }
    all
}

impl CriuOpts {
    /// The option values CRIU would refuse, checked before anything is made or run.
    fn check(&self) -> Result<()> {
        let mode = self.manage_cgroups_mode.as_deref().unwrap_or("soft");
        if !["soft", "full", "strict", "ignore"].contains(&mode) {
            bail!("--manage-cgroups-mode {mode:?}: must be soft, full, strict or ignore");
        }
        if let Some(ns) = self.empty_ns.iter().find(|ns| *ns != "network") {
            bail!("--empty-ns {ns:?}: only network is supported (as with runc)");
        }
        Ok(())
    }

    fn common_args(&self, cmd: &mut Command, log: &str) -> Result<()> {
        std::fs::create_dir_all(&self.image_path)
            .with_context(|| format!("--image-path {}", self.image_path.display()))?;
        let work = self.work_path.as_ref().unwrap_or(&self.image_path);
        std::fs::create_dir_all(work).with_context(|| format!("--work-path {}", work.display()))?;
        cmd.arg("--images-dir")
            .arg(&self.image_path)
            .arg("--work-dir")
            .arg(work)
            .args(["--log-file", log, "-v4"]);
        for (on, flag) in [
            (self.tcp_established, "--tcp-established"),
            (self.ext_unix_sk, "--ext-unix-sk"),
            (self.shell_job, "--shell-job"),
            (self.file_locks, "--file-locks"),
            (self.auto_dedup, "--auto-dedup"),
        ] {
            if on {
                cmd.arg(flag);
            }
        }
        let mode = self.manage_cgroups_mode.as_deref().unwrap_or("soft");
        if mode != "ignore" {
            cmd.arg(format!("--manage-cgroups={mode}"));
        }
        for _ in &self.empty_ns {
            cmd.args(["--empty-ns", "net"]);
        }
        if self.lazy_pages {
            cmd.arg("--lazy-pages");
        }
        Ok(())
    }

    fn log_tail(&self, log: &str) -> String {
        let work = self.work_path.as_ref().unwrap_or(&self.image_path);
        let text = std::fs::read_to_string(work.join(log)).unwrap_or_default();
        let errors: Vec<&str> = text.lines().filter(|l| l.contains("Error")).collect();
        let pick = if errors.is_empty() {
            text.lines().rev().take(3).collect::<Vec<_>>()
        } else {
            errors.into_iter().rev().take(3).collect()
        };
        let mut pick = pick;
        pick.reverse();
        format!("{} (see {})", pick.join("; "), work.join(log).display())
    }
}

fn run_criu(mut cmd: Command, what: &str, opts: &CriuOpts, log: &str) -> Result<()> {
    crate::logging::debug(&format!("criu: {cmd:?}"));
    let status = cmd.status().with_context(|| format!("run criu {what}"))?;
    if !status.success() {
        bail!("criu {what} failed ({status}): {}", opts.log_tail(log));
    }
    Ok(())
}

impl CheckpointOpts {
    /// `--page-server` as CRIU's address and port.
    fn page_server(&self) -> Result<Option<(&str, u16)>> {
        let Some(ps) = &self.page_server else {
            return Ok(None);
        };
        let bad = || anyhow::anyhow!("--page-server {ps:?}: must be ADDRESS:PORT");
        let (addr, port) = ps.rsplit_once(':').ok_or_else(bad)?;
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(bad)?;
        if addr.is_empty() {
            return Err(bad());
        }
        Ok(Some((addr, port)))
    }

    fn check(&self) -> Result<()> {
        self.criu.check()?;
        self.page_server()?;
        if let Some(fd) = self.status_fd {
            // SAFETY: F_GETFL on any number is harmless; a closed one gives EBADF.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
            if flags < 0 {
                bail!("--status-fd {fd}: not an open file descriptor");
            }
            if flags & libc::O_ACCMODE == libc::O_RDONLY {
                bail!("--status-fd {fd}: not writable");
            }
            if !self.criu.lazy_pages {
                bail!(
                    "--status-fd {fd}: only with --lazy-pages (CRIU says when pages can be fetched)"
                );
            }
        }
        if self.criu.lazy_pages && self.pre_dump {
            bail!(
                "--lazy-pages and --pre-dump: a pre-dump leaves the container running, nothing to serve"
            );
        }
        Ok(())
    }
}

/// CRIU's key for the init's terminal (`tty[rdev:dev]`, hex), if its stdio is a pty slave.
fn terminal_key(pid: i32) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    (0..3).find_map(|n| {
        let m = std::fs::metadata(format!("/proc/{pid}/fd/{n}")).ok()?;
        // UNIX98 pty slaves: majors 136 to 143.
        let major = libc::major(m.rdev());
        (std::os::unix::fs::FileTypeExt::is_char_device(&m.file_type())
            && (136..=143).contains(&major))
        .then(|| format!("tty[{:x}:{:x}]", m.rdev(), m.dev()))
    })
}

/// `rt checkpoint`: the container's processes dumped into the image directory; the container
/// is then gone (as with runc), unless --leave-running or --pre-dump.
pub fn checkpoint(root: &Path, id: &str, o: &CheckpointOpts) -> Result<()> {
    o.check()?;
    let dir = Dir::open(root, id)?;
    let st = dir.load()?;
    match st.status(&dir.path) {
        Status::Running | Status::Paused => {}
        s => bail!(
            "container {id} is {}: only a running container can be checkpointed",
            s.as_str()
        ),
    }
    let spec = state::load_spec(&dir.path)?;
    let criu = criu_binary()?;
    let log = if o.pre_dump {
        "pre-dump.log"
    } else {
        "dump.log"
    };
    let mut cmd = Command::new(criu);
    cmd.arg(if o.pre_dump { "pre-dump" } else { "dump" })
        .arg("--tree")
        .arg(st.pid.to_string())
        .arg("--root")
        .arg(&st.rootfs);
    o.criu.common_args(&mut cmd, log)?;
    if let Some(parent) = &o.parent_path {
        cmd.arg("--prev-images-dir").arg(parent).arg("--track-mem");
    }
    if o.pre_dump {
        cmd.arg("--track-mem");
    }
    if o.leave_running && !o.pre_dump {
        cmd.arg("--leave-running");
    }
    for (on, flag) in [
        (o.tcp_skip_in_flight, "--skip-in-flight"),
        (o.link_remap, "--link-remap"),
    ] {
        if on {
            cmd.arg(flag);
        }
    }
    if let Some((addr, port)) = o.page_server()? {
        // Lazily, CRIU serves the pages there itself; otherwise it sends them to a page server.
        if !o.criu.lazy_pages {
            cmd.arg("--page-server");
        }
        cmd.arg("--address")
            .arg(addr)
            .arg("--port")
            .arg(port.to_string());
    }
    if let Some(fd) = o.status_fd {
        cmd.arg("--status-fd").arg(fd.to_string());
    }
    for (dest, _) in external_mounts(&spec, &st.bundle) {
        cmd.arg("--ext-mount-map").arg(format!("{dest}:{dest}"));
    }
    for (kind, key, _) in external_namespaces(&spec) {
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata(format!("/proc/{}/ns/{kind}", st.pid))
            .with_context(|| format!("the container's {kind} namespace"))?
            .ino();
        cmd.arg("--external").arg(format!("{kind}[{ino}]:{key}"));
    }
    // The terminal's master is held outside (by the console socket's reader), so the pty is
    // left out as external, and /dev/console (bound to its slave) with it.
    let tty = terminal_key(st.pid);
    if let Some(key) = &tty {
        cmd.arg("--external").arg(key);
        if has_console(&spec) {
            cmd.args(["--ext-mount-map", "/dev/console:/dev/console"]);
        }
    }
    // What the init's stdio are, for restore to hand its own in their place.
    let fds: Vec<String> = (0..3)
        .map(|n| {
            std::fs::read_link(format!("/proc/{}/fd/{n}", st.pid))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    std::fs::create_dir_all(&o.criu.image_path)
        .with_context(|| format!("--image-path {}", o.criu.image_path.display()))?;
    std::fs::write(
        o.criu.image_path.join(DESCRIPTORS),
        serde_json::to_string(&fds)?,
    )
    .context("write descriptors.json")?;
    let terminal = o.criu.image_path.join(TERMINAL);
    match &tty {
        Some(key) => std::fs::write(&terminal, key).context("write the image's terminal key")?,
        None => {
            let _ = std::fs::remove_file(&terminal);
        }
    }
    run_criu(
        cmd,
        if o.pre_dump { "pre-dump" } else { "dump" },
        &o.criu,
        log,
    )?;
    if !o.leave_running && !o.pre_dump {
        // CRIU killed the processes: what is left of the container goes, as runc does.
        crate::container::delete::destroy(dir, &st)?;
    }
    Ok(())
}

/// The namespaces the container joined by path (a network namespace Podman or CNI made, a
/// pod's pid namespace): not the container's to save. CRIU leaves them out as external, under
/// runc's keys, and restore hands it the bundle's namespace in their place. CRIU's kind,
/// the key, and the spec's path.
fn external_namespaces(
    spec: &oci_spec::runtime::Spec,
) -> Vec<(&'static str, &'static str, PathBuf)> {
    use oci_spec::runtime::LinuxNamespaceType as T;
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .filter_map(|ns| {
            let (kind, key) = match ns.typ() {
                T::Network => ("net", "extRootNetNS"),
                T::Pid => ("pid", "extRootPidNS"),
                _ => return None,
            };
            Some((kind, key, ns.path().clone()?))
        })
        .collect()
}

fn has_console(spec: &oci_spec::runtime::Spec) -> bool {
    spec.process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false)
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
    let key = std::fs::read_to_string(o.criu.image_path.join(TERMINAL)).ok();
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
    let systemd = o
        .systemd_cgroup
        .then(|| crate::container::create::systemd_plan(spec, id))
        .transpose()?;
    let cgroups_path = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
    let limits = match spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
        Some(r) => crate::cgroups::resources::plan(r)?,
        None => Vec::new(),
    };
    let v2_mount = crate::cgroups::v2::v2_mount();
    let (on_v2, _) = crate::cgroups::resources::split(v2_mount.as_deref(), &limits);
    let device_rules = crate::container::create::device_rules(spec)?;
    let descriptors: Vec<String> = std::fs::read_to_string(o.criu.image_path.join(DESCRIPTORS))
        .with_context(|| {
            format!(
                "--image-path {}: no {DESCRIPTORS} (not an image of rt checkpoint?)",
                o.criu.image_path.display()
            )
        })
        .and_then(|t| serde_json::from_str(&t).context(DESCRIPTORS))?;

    let dir = Dir::create(root, id)?;
    let guard = RestoreGuard {
        dir: Some(dir.path.clone()),
    };
    let mut cgroup = match systemd {
        Some(_) => None,
        None => crate::cgroups::v2::create(
            &crate::cgroups::v2::resolve(cgroups_path.as_deref(), id)?,
            crate::cgroups::resources::domain_limit(&on_v2),
        )?,
    };
    // The same limits and device filter as create gives, before any restored process runs.
    if let (Some(c), Some(mount)) = (&cgroup, &v2_mount) {
        crate::cgroups::resources::apply(mount, &c.rel, &on_v2, false)?;
        if let Some(rules) = &device_rules {
            crate::cgroups::devices::attach(rules, &mount.join(c.rel.trim_start_matches('/')))?;
        }
    } else if !on_v2.is_empty() && systemd.is_none() {
        bail!(
            "linux.resources: limits need a writable cgroup v2 hierarchy, and there is none here"
        );
    }
    // The systemd driver: the unit is made first, holding a placeholder process, so that CRIU
    // restores the processes straight into its cgroup (their cgroup namespace rooted there).
    let mut placeholder = None;
    let unit = match &systemd {
        Some(sd) => {
            let p = Placeholder::spawn()?;
            let u = enter_unit(sd, p.pid, &on_v2, device_rules.as_deref())?;
            placeholder = Some(p);
            Some(u)
        }
        None => None,
    };
    let criu_root = dir.path.join("criu-root");
    std::fs::create_dir(&criu_root).context("create criu-root")?;
    let pidfile = dir.path.join("criu.pid");
    let log = "restore.log";

    let mut cmd = Command::new(criu);
    cmd.arg("restore")
        .arg("--root")
        .arg(&criu_root)
        .arg("--pidfile")
        .arg(&pidfile)
        .args(["--restore-detached", "--restore-sibling"]);
    o.criu.common_args(&mut cmd, log)?;
    if o.tcp_close {
        cmd.arg("--tcp-close");
    }
    if let Some(p) = &o.lsm_profile {
        cmd.arg("--lsm-profile").arg(p);
    }
    if let Some(c) = &o.lsm_mount_context {
        cmd.arg("--lsm-mount-context").arg(c);
    }
    // The fds CRIU inherits: the new terminal's slave, the namespaces to restore into.
    let mut inherit = Vec::new();
    if let Some(t) = &terminal {
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
    if let Some(rel) = unit
        .as_ref()
        .map(|u| &u.rel)
        .or(cgroup.as_ref().map(|c| &c.rel))
    {
        cmd.arg("--cgroup-root").arg(rel);
    }
    for (dest, src) in external_mounts(spec, &bundle.dir) {
        cmd.arg("--ext-mount-map")
            .arg(format!("{dest}:{}", src.display()));
    }
    // The init's pipes and sockets come back as rt's own stdio (runc does the same).
    for (n, what) in descriptors.iter().enumerate() {
        if what.starts_with("pipe:") || what.starts_with("socket:") {
            cmd.arg("--inherit-fd").arg(format!("fd[{n}]:{what}"));
        }
    }
    // CRIU needs the rootfs as a mount point of its own: bound there in a mount namespace of
    // criu's own, so nothing is left on the host whatever happens to it.
    let rootfs = bundle.rootfs.clone();
    let target = criu_root.clone();
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
    if o.subreaper && !o.detach {
        crate::sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1).context("become a subreaper")?;
    }
    let mask = crate::container::run::forwarded_signals();
    if !o.detach {
        // SAFETY: mask is a valid sigset_t.
        unsafe { libc::sigprocmask(libc::SIG_BLOCK, &mask, std::ptr::null_mut()) };
    }
    let restored = run_criu(cmd, "restore", &o.criu, log).and_then(|_| {
        std::fs::read_to_string(&pidfile)
            .context("criu restore wrote no pid")?
            .trim()
            .parse::<i32>()
            .context("criu restore: bad pid file")
    });
    let pid = match restored {
        Ok(pid) => pid,
        Err(e) => {
            drop(placeholder);
            drop(unit);
            drop(cgroup);
            drop(guard);
            return Err(e);
        }
    };
    let _ = std::fs::remove_dir(&criu_root);
    drop(placeholder);
    // The restored processes hold the new terminal's slave now; its master goes to the
    // caller, as at create, or stays with rt to relay.
    let mut console_master = None;
    if let Some(t) = terminal {
        match &t.socket {
            Some(sock) => {
                if let Err(e) =
                    crate::process::console::send_master(sock.as_raw_fd(), &t.pty.master)
                {
                    // A container nobody can reach: gone again, with what was made for it.
                    // SAFETY: the restored init is rt's child (CRIU restores it as criu's
                    // sibling) and unreaped, so the pid is still its.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                        libc::waitpid(pid, std::ptr::null_mut(), 0);
                    }
                    return Err(e);
                }
            }
            None => console_master = Some(t.pty.master),
        }
    }
    let (start_time, _) =
        crate::sys::proc_start_time(pid).context("the restored init is gone already")?;
    let st = State {
        id: id.to_string(),
        pid,
        start_time,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: crate::logging::rfc3339_now(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        owner: String::new(),
        cgroup: match &unit {
            Some(u) => Some(u.rel.clone()),
            None => cgroup.as_ref().map(|c| c.rel.clone()),
        },
        cgroup_owned: cgroup.as_ref().is_some_and(|c| c.owned) || unit.is_some(),
        systemd_unit: unit.as_ref().map(|u| u.name.clone()),
        systemd_user: unit.as_ref().is_some_and(|u| u.user),
        cgroup_v1: Vec::new(),
        cgroup_v1_created: Vec::new(),
        shared_mounts: None,
        own_pidns: crate::spec::has_namespace(spec, oci_spec::runtime::LinuxNamespaceType::Pid),
        has_hooks: spec.hooks().is_some(),
    };
    dir.save(&st)?;
    std::fs::write(dir.path.join(state::CONFIG_COPY), &bundle.raw).context("save config")?;
    // The exec fifo is long gone in a restored container: start must find it started.
    if let Some(p) = &o.pid_file {
        state::write_pid_file(p, pid)?;
    }
    if let Some(c) = cgroup.as_mut() {
        c.disarm();
    }
    if let Some(mut u) = unit {
        u.disarm();
    }
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

/// The systemd driver: a new unit for the container (its first process `pid`), with the
/// limits systemd leaves to rt and the device filter, as at create.
fn enter_unit(
    sd: &crate::container::create::SystemdPlan,
    pid: i32,
    on_v2: &[&crate::cgroups::resources::Write],
    device_rules: Option<&[crate::cgroups::devices::Rule]>,
) -> Result<crate::cgroups::systemd::Unit> {
    let manager = crate::cgroups::systemd::Manager::connect(sd.user)?;
    let u = crate::cgroups::systemd::Unit::start(manager, &sd.path, sd.props.clone(), pid)?;
    let mount = crate::cgroups::v2::v2_mount().context("no cgroup v2 mount")?;
    crate::cgroups::v2::enable_controllers(&mount, &u.rel, true);
    crate::cgroups::resources::apply(&mount, &u.rel, on_v2, true)?;
    if let Some(rules) = device_rules.filter(|_| !crate::sys::rootless()) {
        crate::cgroups::devices::attach(rules, &mount.join(u.rel.trim_start_matches('/')))?;
    }
    Ok(u)
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
