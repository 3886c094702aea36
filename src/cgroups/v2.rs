//! cgroup v2 membership: where the container's cgroup lives, creating it so the init can be
//! cloned straight into it, listing and signalling its processes, and removing it.
//! Which controllers reach it is decided here (`enable_controllers`); the limits themselves are
//! written by `resources`.

use anyhow::{Context, Result, bail};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use crate::cgroups::cgfs;

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// The cgroup v2 mount: /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones.
pub fn v2_mount() -> Option<PathBuf> {
    // Asked several times on the create path; the answer can't change within one call of rt.
    static MOUNT: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    MOUNT
        .get_or_init(|| {
            ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
                .into_iter()
                .map(PathBuf::from)
                .find(|p| cgfs::fs_magic(p).is_ok_and(|m| m == CGROUP2_SUPER_MAGIC))
        })
        .clone()
}

/// rt's own cgroup v2 path (the `0::` line of /proc/self/cgroup).
fn own_cgroup() -> String {
    super::own_cgroups()
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(|p| p.trim().to_string()))
        .unwrap_or_else(|| "/".into())
}

/// Resolves linux.cgroupsPath as runc does on v2 with the cgroupfs driver: absolute paths start
/// at the mount, relative ones (and the empty default, `<id>`) beside rt's own cgroup, i.e.
/// under its parent: rt's own cgroup has processes (rt), and a cgroup with processes can't give
/// controllers to children.
pub fn resolve(path: Option<&Path>, id: &str) -> Result<String> {
    let p = match path {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from(id),
    };
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::RootDir | Component::CurDir => {}
            _ => bail!(
                "config.json: linux.cgroupsPath {}: must not contain '..'",
                p.display()
            ),
        }
    }
    if parts.is_empty() {
        bail!(
            "config.json: linux.cgroupsPath {}: names the root cgroup",
            p.display()
        );
    }
    let base = if p.is_absolute() {
        String::new()
    } else {
        let own = own_cgroup();
        let parent = Path::new(&own).parent().unwrap_or(Path::new("/"));
        parent.to_string_lossy().trim_end_matches('/').to_string()
    };
    Ok(format!("{base}/{}", parts.join("/")))
}

/// A container cgroup that rt made for this create; removed again on drop unless disarmed.
pub struct Created {
    pub rel: String,
    pub fd: OwnedFd,
    /// Whether rt made the directory (only then does it remove it).
    pub owned: bool,
    /// Parents rt made for it, deepest last: removed too if the create fails. After a
    /// successful create they stay, as with runc: other containers may come to share them.
    parents: Vec<PathBuf>,
    armed: bool,
}

impl Created {
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

/// The cgroupfs driver: the cgroup made by rt in the v2 files before the init exists (None
/// where there is no writable v2 hierarchy: a rootless rt without a delegated cgroup).
pub struct Cgroupfs(pub Option<Created>);

impl super::Driver for Cgroupfs {
    fn clone_into(&self) -> Option<std::os::fd::RawFd> {
        self.0
            .as_ref()
            .map(|c| std::os::fd::AsRawFd::as_raw_fd(&c.fd))
    }
    fn adopts(&self) -> bool {
        false
    }
    fn adopt(&self, _pid: i32) -> Result<()> {
        Ok(())
    }
    fn rel(&self) -> Option<String> {
        self.0.as_ref().map(|c| c.rel.clone())
    }
    fn owned(&self) -> bool {
        self.0.as_ref().is_some_and(|c| c.owned)
    }
    fn unit(&self) -> Option<(String, bool)> {
        None
    }
    fn disarm(&mut self) {
        if let Some(c) = self.0.as_mut() {
            c.disarm();
        }
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        if self.armed && self.owned {
            let _ = remove(&self.rel);
            for p in self.parents.iter().rev() {
                let _ = cgfs::remove_dir(p);
            }
        }
    }
}

/// Makes the container's cgroup (and missing parents) and gives it the controllers its parent
/// can offer (see `enable_controllers`). An existing non-empty cgroup is an error: two
/// containers sharing one would kill each other's processes on delete. `domain_limit` is the
/// first limit (field, controller) that needs a controller threaded cgroups lack (see
/// `settle_thread_mode`).
pub fn create(rel: &str, domain_limit: Option<(&str, &str)>) -> Result<Option<Created>> {
    let Some(mount) = v2_mount() else {
        crate::logging::debug("no cgroup v2 mount: the container gets no cgroup of its own");
        return Ok(None);
    };
    let dir = mount.join(rel.trim_start_matches('/'));
    // A cgroup that exists already (a pod's, say) is joined but never removed by rt. mkdir of
    // the leaf decides, so of two concurrent creates only one owns it.
    let mut parents = Vec::new();
    let made = match cgfs::create_dir(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            make_parents(&dir, &mut parents).and_then(|_| cgfs::create_dir(&dir))
        }
        r => r,
    };
    let owned = made.is_ok();
    let made = match made {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    };
    if let Err(e) = made {
        for p in parents.iter().rev() {
            let _ = cgfs::remove_dir(p);
        }
        // Rootless without a delegated cgroup: run without one, as runc does.
        if crate::sys::tolerate_cgroup_errors()
            && matches!(
                e.raw_os_error(),
                Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS)
            )
        {
            crate::logging::debug(&format!(
                "rootless: cgroup {} is not writable; the container gets no cgroup v2 cgroup",
                dir.display()
            ));
            return Ok(None);
        }
        return Err(e).with_context(|| format!("create cgroup {}", dir.display()));
    }
    // Armed from here: a refusal below leaves nothing behind.
    let created = Created {
        rel: rel.to_string(),
        fd: cgfs::open_dir(&dir).with_context(|| format!("open cgroup {}", dir.display()))?,
        owned,
        parents,
        armed: true,
    };
    // One that rt just made is empty.
    if !owned && !procs(rel).unwrap_or_default().is_empty() {
        bail!("cgroup {rel} already has processes: is another container using it?");
    }
    // A domain controller can't reach the container past a cgroup with processes of its own;
    // refused before enabling the threaded ones there, which would turn that cgroup into a
    // threaded domain for nothing.
    if let Some((field, c)) = domain_limit
        && let Some((dir, _)) = ancestors(&mount, rel)
            .into_iter()
            .find(|(d, top)| !top && has_processes(d))
    {
        return Err(crowded(field, c, &dir));
    }
    enable_controllers(&mount, rel, false);
    settle_thread_mode(&mount, rel, domain_limit.map(|(field, _)| field))?;
    Ok(Some(created))
}

/// The controllers systemd switches on and off by itself in the cgroups it manages, from its
/// units' accounting and limits: there they are systemd's alone, and a change rt made would be
/// undone the next time systemd realizes the cgroup (it writes `-cpu` where no unit of its
/// needs cpu). The others (hugetlb, rdma, misc) systemd never touches, so rt enables them
/// wherever runc does.
pub const SYSTEMD_MANAGED: [&str; 5] = ["cpu", "cpuset", "io", "memory", "pids"];

/// The controllers a threaded cgroup can't have.
pub const DOMAIN_ONLY: [&str; 5] = ["hugetlb", "io", "memory", "misc", "rdma"];

/// Whether systemd booted this host (sd_booted(3)'s test): only then do unit cgroups belong
/// to it.
fn systemd_booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Whether the cgroup `dir` (`top`: the mount's root) is systemd's to configure: on a host
/// systemd booted, the root and every unit's cgroup (a name with a unit suffix), but for a
/// unit that delegates its subtree (`Delegate=yes`, which systemd marks with a
/// `trusted.delegate` or, for unprivileged owners, `user.delegate` xattr).
fn systemd_owns(dir: &Path, top: bool) -> bool {
    if !systemd_booted() {
        return false;
    }
    if top {
        return true;
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let unit = [".slice", ".scope", ".service", ".socket", ".mount", ".swap"]
        .iter()
        .any(|s| name.ends_with(s));
    unit && !["trusted.delegate", "user.delegate"]
        .iter()
        .any(|x| crate::sys::getxattr(dir, x).is_some_and(|v| v == b"1"))
}

fn words(file: &Path) -> Vec<String> {
    cgfs::read_to_string(file)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The cgroups from the mount's root down to the container's parent, each with whether it is
/// the root.
fn ancestors(mount: &Path, rel: &str) -> Vec<(PathBuf, bool)> {
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    let mut dir = mount.to_path_buf();
    let mut out = vec![(dir.clone(), true)];
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        dir.push(part);
        out.push((dir.clone(), false));
    }
    out
}

/// Gives the container's cgroup every controller its parent can offer, as runc does, not only
/// those its limits name: Docker and containerd create containers without limits and set them
/// later with `update`, and `events`, `docker stats` and cAdvisor read usage from any
/// container. Each ancestor's subtree_control gets the controllers it has: all at once, or
/// else one at a time, leaving out one that can't be enabled (a domain controller in a cgroup
/// with processes of its own, say); a limit that needs it fails later, saying why
/// (`missing_controller`). Controllers systemd manages are left to it in its cgroups, and
/// everywhere under the systemd driver (`systemd_unit`).
pub fn enable_controllers(mount: &Path, rel: &str, systemd_unit: bool) {
    for (dir, top) in ancestors(mount, rel) {
        let have = words(&dir.join("cgroup.subtree_control"));
        let mut missing: Vec<String> = words(&dir.join("cgroup.controllers"))
            .into_iter()
            .filter(|c| !have.contains(c))
            .collect();
        if missing
            .iter()
            .any(|c| SYSTEMD_MANAGED.contains(&c.as_str()))
            && (systemd_unit || systemd_owns(&dir, top))
        {
            missing.retain(|c| !SYSTEMD_MANAGED.contains(&c.as_str()));
        }
        if missing.is_empty() {
            continue;
        }
        let control = dir.join("cgroup.subtree_control");
        let all: Vec<String> = missing.iter().map(|c| format!("+{c}")).collect();
        if cgfs::write(&control, all.join(" ")).is_ok() {
            continue;
        }
        for c in &all {
            if let Err(e) = cgfs::write(&control, c) {
                crate::logging::debug(&format!(
                    "cgroup: {c} in {}: {}",
                    control.display(),
                    crate::sys::errno_str(&e)
                ));
            }
        }
    }
}

/// cgroup v2's thread mode, handled as runc does. Enabling a threaded controller (cpu, pids,
/// cpuset) in a cgroup that has processes of its own makes it a threaded domain, and a cgroup
/// made beneath it is then "domain invalid": it can hold no process until it is made threaded.
/// That is done when the container's limits need only threaded controllers; a limit that needs
/// a domain one (`domain_limit`) is refused, as it is in a cgroup that is threaded already.
fn settle_thread_mode(mount: &Path, rel: &str, domain_limit: Option<&str>) -> Result<()> {
    let mut dir = mount.to_path_buf();
    for part in rel.split('/').filter(|p| !p.is_empty()) {
        dir.push(part);
        let Ok(kind) = cgfs::read_to_string(dir.join("cgroup.type")) else {
            continue;
        };
        let kind = kind.trim();
        match (kind, domain_limit) {
            ("domain invalid" | "threaded" | "domain threaded", Some(field)) => bail!(
                "{field}: cgroup {} is in cgroup v2's thread mode ({kind:?}), which has no domain controllers (memory, io, hugetlb)",
                dir.display()
            ),
            ("domain invalid", None) => {
                cgfs::write(dir.join("cgroup.type"), "threaded").with_context(|| {
                    format!(
                        "make cgroup {} threaded (it is \"domain invalid\")",
                        dir.display()
                    )
                })?;
                crate::logging::debug(&format!(
                    "cgroup {} was \"domain invalid\": made threaded",
                    dir.display()
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The error for a limit whose controller the container's cgroup lacks, naming the cgroup
/// that didn't pass it down and why.
pub fn missing_controller(
    mount: &Path,
    rel: &str,
    field: &str,
    c: &str,
    systemd_unit: bool,
) -> anyhow::Error {
    for (dir, top) in ancestors(mount, rel) {
        if words(&dir.join("cgroup.subtree_control"))
            .iter()
            .any(|h| h == c)
        {
            continue;
        }
        let offered = words(&dir.join("cgroup.controllers"));
        let d = dir.display();
        if !offered.iter().any(|o| o == c) {
            return anyhow::anyhow!(
                "{field}: the {c} controller is not available on this host (cgroup v2 at {d} offers: {})",
                if offered.is_empty() {
                    "none".to_string()
                } else {
                    offered.join(" ")
                }
            );
        }
        if SYSTEMD_MANAGED.contains(&c) && systemd_unit {
            return anyhow::anyhow!(
                "{field}: systemd did not enable the {c} controller in {d} for the container's unit"
            );
        }
        if SYSTEMD_MANAGED.contains(&c) && systemd_owns(&dir, top) {
            return anyhow::anyhow!(
                "{field}: the {c} controller is not enabled in {d}, which systemd manages (rt leaves its controllers to systemd): use --systemd-cgroup, or a cgroupsPath inside a cgroup delegated to you (Delegate=yes)"
            );
        }
        if !top && has_processes(&dir) {
            return crowded(field, c, &dir);
        }
        let why = cgfs::write(dir.join("cgroup.subtree_control"), format!("+{c}"))
            .err()
            .map_or("it was off".to_string(), |e| crate::sys::errno_str(&e));
        return anyhow::anyhow!(
            "{field}: could not enable the {c} controller in {d}/cgroup.subtree_control: {why}"
        );
    }
    anyhow::anyhow!("{field}: the container's cgroup {rel} has no {c} controller")
}

fn has_processes(dir: &Path) -> bool {
    cgfs::read_to_string(dir.join("cgroup.procs")).is_ok_and(|p| !p.trim().is_empty())
}

/// The error for a domain controller a cgroup with processes of its own can't pass down.
fn crowded(field: &str, c: &str, dir: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{field}: the {c} controller can't reach the container through {}: it has processes of its own, and cgroup v2 gives such a cgroup's children no domain controllers (move its processes into a child cgroup, as a Delegate=yes service should)",
        dir.display()
    )
}

/// Makes the missing parents of `dir`, outermost first, recording each one made.
fn make_parents(dir: &Path, made: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut cur = dir.parent();
    while let Some(p) = cur.filter(|p| !cgfs::exists(p)) {
        missing.push(p.to_path_buf());
        cur = p.parent();
    }
    for p in missing.into_iter().rev() {
        match cgfs::create_dir(&p) {
            Ok(()) => made.push(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub fn dir_of(rel: &str) -> Option<PathBuf> {
    v2_mount().map(|m| m.join(rel.trim_start_matches('/')))
}

pub fn procs(rel: &str) -> Result<Vec<i32>> {
    let dir = dir_of(rel).context("no cgroup v2 mount")?;
    let text = cgfs::read_to_string(dir.join("cgroup.procs"))
        .with_context(|| format!("read {}/cgroup.procs", dir.display()))?;
    Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// Signals every process in the cgroup; SIGKILL goes through cgroup.kill, which also catches
/// processes forked while we iterate.
pub fn signal_all(rel: &str, sig: i32) -> Result<()> {
    let dir = dir_of(rel).context("no cgroup v2 mount")?;
    if sig == libc::SIGKILL && cgfs::write(dir.join("cgroup.kill"), "1").is_ok() {
        return Ok(());
    }
    // Without cgroup.kill (kernels before 5.14), sub-cgroups the container made are walked.
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let _ = signal_all(&format!("{rel}/{}", e.file_name().to_string_lossy()), sig);
            }
        }
    }
    let member = format!("0::{rel}\n");
    for pid in procs(rel)? {
        // pidfd first, then check the process is (still) in this cgroup: a pid that exited and
        // was reused between reading cgroup.procs and signalling is never hit.
        let Ok(fd) = crate::sys::pidfd_open(pid) else {
            continue;
        };
        let in_cgroup = crate::sys::read_to_string(format!("/proc/{pid}/cgroup"))
            .is_ok_and(|c| c.lines().any(|l| format!("{l}\n") == member));
        if in_cgroup {
            let _ = crate::sys::pidfd_send_signal(&fd, sig);
        }
    }
    Ok(())
}

/// Kills everything in the cgroup and waits until it is empty (or gone), leaving the cgroup
/// itself to its owner (systemd, for its units).
pub fn empty(rel: &str) -> Result<()> {
    let Some(dir) = dir_of(rel) else {
        return Ok(());
    };
    let populated = || {
        cgfs::read_to_string(dir.join("cgroup.events"))
            .is_ok_and(|e| e.lines().any(|l| l == "populated 1"))
    };
    for i in 0..2000 {
        if !populated() {
            return Ok(());
        }
        if i % 20 == 0 {
            let _ = signal_all(rel, libc::SIGKILL);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    bail!("cgroup {rel} still has processes 10 s after SIGKILL")
}

/// Whether the cgroup is frozen (cgroup.events says so once every task has stopped).
pub fn is_frozen(rel: &str) -> bool {
    dir_of(rel)
        .and_then(|d| cgfs::read_to_string(d.join("cgroup.events")).ok())
        .is_some_and(|e| e.lines().any(|l| l == "frozen 1"))
}

/// Freezes or thaws the cgroup through cgroup.freeze and waits until cgroup.events reports the
/// new state: the kernel freezes asynchronously, and `pause` must not return before it is done.
pub fn freeze(rel: &str, frozen: bool) -> Result<()> {
    let dir = dir_of(rel).context("no cgroup v2 mount")?;
    cgfs::write(dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })
        .with_context(|| format!("write {}/cgroup.freeze", dir.display()))?;
    let events = crate::sys::open(&dir.join("cgroup.events"), libc::O_RDONLY, 0)
        .with_context(|| format!("open {}/cgroup.events", dir.display()))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if is_frozen(rel) == frozen {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            bail!(
                "cgroup {rel} did not become {} within 10 s",
                if frozen { "frozen" } else { "thawed" }
            );
        }
        // cgroup.events signals changes as POLLPRI.
        let mut p = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&events),
            events: libc::POLLPRI,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, left.as_millis().min(100) as i32) };
    }
}

/// Removes the cgroup, killing stragglers first and waiting briefly for the kernel to notice
/// they are gone (rmdir fails with EBUSY until then).
pub fn remove(rel: &str) -> Result<()> {
    let Some(dir) = dir_of(rel) else {
        return Ok(());
    };
    // Nearly always there is nothing below it and nothing left in it: one rmdir, without
    // listing the directory's files for sub-cgroups first.
    match cgfs::remove_dir(&dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    // Sub-cgroups the container made (systemd or Docker inside it) go first, deepest first.
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove(&format!("{rel}/{}", e.file_name().to_string_lossy()))?;
            }
        }
    }
    for i in 0..200 {
        match cgfs::remove_dir(&dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && i < 199 => {
                let _ = signal_all(rel, libc::SIGKILL);
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => {
                return Err(e).with_context(|| format!("remove cgroup {}", dir.display()));
            }
        }
    }
    Ok(())
}
