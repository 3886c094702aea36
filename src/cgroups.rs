//! cgroup v2 membership: where the container's cgroup lives, creating it so the init can be
//! cloned straight into it, listing and signalling its processes, and removing it.
//! The limits themselves are written by `resources`.

use anyhow::{Context, Result, bail};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

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
                .find(|p| {
                    crate::sys::open(p, libc::O_PATH | libc::O_DIRECTORY, 0)
                        .and_then(|fd| {
                            crate::sys::fstatfs_magic(std::os::fd::AsRawFd::as_raw_fd(&fd))
                        })
                        .is_ok_and(|m| m == CGROUP2_SUPER_MAGIC)
                })
        })
        .clone()
}

/// rt's own cgroup v2 path (the `0::` line of /proc/self/cgroup).
fn own_cgroup() -> String {
    std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("0::").map(|p| p.trim().to_string()))
        })
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

impl Drop for Created {
    fn drop(&mut self) {
        if self.armed && self.owned {
            let _ = remove(&self.rel);
            for p in self.parents.iter().rev() {
                let _ = std::fs::remove_dir(p);
            }
        }
    }
}

/// Makes the container's cgroup (and missing parents). An existing non-empty cgroup is an error:
/// two containers sharing one would kill each other's processes on delete.
pub fn create(rel: &str) -> Result<Option<Created>> {
    let Some(mount) = v2_mount() else {
        crate::logging::debug("no cgroup v2 mount: the container gets no cgroup of its own");
        return Ok(None);
    };
    let dir = mount.join(rel.trim_start_matches('/'));
    // A cgroup that exists already (a pod's, say) is joined but never removed by rt. mkdir of
    // the leaf decides, so of two concurrent creates only one owns it.
    let mut parents = Vec::new();
    let made = make_parents(&dir, &mut parents).and_then(|_| std::fs::create_dir(&dir));
    let owned = made.is_ok();
    let made = match made {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    };
    if let Err(e) = made {
        for p in parents.iter().rev() {
            let _ = std::fs::remove_dir(p);
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
    if !procs(rel).unwrap_or_default().is_empty() {
        bail!("cgroup {rel} already has processes: is another container using it?");
    }
    let fd = crate::sys::open(&dir, libc::O_PATH | libc::O_DIRECTORY, 0)
        .with_context(|| format!("open cgroup {}", dir.display()))?;
    Ok(Some(Created {
        rel: rel.to_string(),
        fd,
        owned,
        parents,
        armed: true,
    }))
}

/// Makes the missing parents of `dir`, outermost first, recording each one made.
fn make_parents(dir: &Path, made: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut cur = dir.parent();
    while let Some(p) = cur.filter(|p| !p.exists()) {
        missing.push(p.to_path_buf());
        cur = p.parent();
    }
    for p in missing.into_iter().rev() {
        match std::fs::create_dir(&p) {
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
    let text = std::fs::read_to_string(dir.join("cgroup.procs"))
        .with_context(|| format!("read {}/cgroup.procs", dir.display()))?;
    Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// Signals every process in the cgroup; SIGKILL goes through cgroup.kill, which also catches
/// processes forked while we iterate.
pub fn signal_all(rel: &str, sig: i32) -> Result<()> {
    let dir = dir_of(rel).context("no cgroup v2 mount")?;
    if sig == libc::SIGKILL && std::fs::write(dir.join("cgroup.kill"), "1").is_ok() {
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
        let in_cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
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
        std::fs::read_to_string(dir.join("cgroup.events"))
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
        .and_then(|d| std::fs::read_to_string(d.join("cgroup.events")).ok())
        .is_some_and(|e| e.lines().any(|l| l == "frozen 1"))
}

/// Freezes or thaws the cgroup through cgroup.freeze and waits until cgroup.events reports the
/// new state: the kernel freezes asynchronously, and `pause` must not return before it is done.
pub fn freeze(rel: &str, frozen: bool) -> Result<()> {
    let dir = dir_of(rel).context("no cgroup v2 mount")?;
    std::fs::write(dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })
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
    // Sub-cgroups the container made (systemd or Docker inside it) go first, deepest first.
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove(&format!("{rel}/{}", e.file_name().to_string_lossy()))?;
            }
        }
    }
    for i in 0..200 {
        match std::fs::remove_dir(&dir) {
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
