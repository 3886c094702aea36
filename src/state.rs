//! The only thing rt keeps between calls: `<root>/<id>/state.json` (plus the exec fifo while a
//! container is created and not started). A directory lock serialises calls on one id.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

pub const EXEC_FIFO: &str = "exec.fifo";
pub const CONFIG_COPY: &str = "config.json";
pub const STATE_FILE: &str = "state.json";
// The same, for the calls that take C strings.
const FILES: [&std::ffi::CStr; 3] = [c"exec.fifo", c"config.json", c"state.json"];

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct State {
    pub id: String,
    /// Host pid of the container's init; 0 once it is known to be gone.
    pub pid: i32,
    /// Start time of the init in clock ticks (/proc/PID/stat field 22): a pid whose start time
    /// differs is a different process that reused the number.
    pub start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    #[serde(default)]
    pub owner: String,
    /// The container's cgroup, relative to the cgroup v2 mount.
    pub cgroup: Option<String>,
    /// Whether rt created that cgroup (and so removes it on delete).
    #[serde(default)]
    pub cgroup_owned: bool,
    /// Under the systemd driver: the container's unit, stopped on delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
    /// Whether that unit is the user manager's (rootless) rather than the system's.
    #[serde(default)]
    pub systemd_user: bool,
    /// The container's cgroups in the v1 hierarchies (v1 and hybrid hosts).
    #[serde(default)]
    pub cgroup_v1: Vec<std::path::PathBuf>,
    /// Those of them (and parents) rt made, so removes on delete.
    #[serde(default)]
    pub cgroup_v1_created: Vec<std::path::PathBuf>,
    /// For a container without a mount namespace of its own (its mounts are made in the
    /// runtime's): what delete needs to detach the mounts it added under its rootfs.
    #[serde(default)]
    pub shared_mounts: Option<SharedMounts>,
    /// Whether the init got its own pid namespace (then killing it kills the rest).
    #[serde(default)]
    pub own_pidns: bool,
    /// Whether the config has hooks: start and delete only read the saved config then.
    #[serde(default)]
    pub has_hooks: bool,
}

/// The mounts a container without its own mount namespace made in the runtime's.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SharedMounts {
    /// Its rootfs, symlinks resolved (as /proc/self/mountinfo names mount points).
    pub root: std::path::PathBuf,
    /// The ids of the mounts at and under it before create: the others are the container's.
    pub before: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// A locked container directory. The lock lives as long as this value.
pub struct Dir {
    pub path: PathBuf,
    _lock: File,
}

/// runc's rule for ids: letters, digits and `_+-.`, but never `.` or `..` themselves, so an id
/// is always one plain path component.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if !ok {
        bail!("invalid container id {id:?}: use letters, digits and _+-. only");
    }
    Ok(())
}

/// Locks the directory at `path` exclusively. The lock is only good if that directory is still
/// the one at `path` once we hold it: a delete (and a create of the same id) may have run while
/// we waited. Then the new one is locked instead; None if nothing is there any more.
fn lock(path: &Path) -> Result<Option<File>> {
    use std::os::unix::fs::MetadataExt;
    loop {
        let f = match crate::sys::open(path, libc::O_RDONLY, 0).map(File::from) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("open {}", path.display())),
        };
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error()).context("lock container state");
        }
        let held = f.metadata().context("lock container state")?;
        match std::fs::symlink_metadata(path) {
            Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => return Ok(Some(f)),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("stat {}", path.display())),
        }
    }
}

/// A state directory without a state file is a create that died before writing it (or one
/// still running, which holds the lock until it has written it). Removes it under the lock,
/// if it is still like that then; true if it did.
pub fn remove_stale(root: &Path, id: &str) -> Result<bool> {
    validate_id(id)?;
    let path = root.join(id);
    let Some(_lock) = lock(&path)? else {
        return Ok(false);
    };
    if path.join(STATE_FILE).exists() {
        return Ok(false);
    }
    std::fs::remove_dir_all(&path).with_context(|| format!("remove {}", path.display()))?;
    Ok(true)
}

/// The state of `id` as last saved, read without the lock: saves are atomic renames, so a
/// reader sees a whole state, and read-only commands (`state`, `ps`, `events`) never wait
/// behind a create, a start waiting for READY=1, or a delete.
pub fn snapshot(root: &Path, id: &str) -> Result<(PathBuf, State)> {
    validate_id(id)?;
    let path = root.join(id);
    match read_state(&path) {
        Ok(st) => Ok((path, st)),
        Err(_) if !path.join(STATE_FILE).exists() => bail!("container {id:?} does not exist"),
        Err(e) => Err(e),
    }
}

impl Dir {
    /// Creates `<root>/<id>` exclusively: of two concurrent creates of one id, one fails here.
    pub fn create(root: &Path, id: &str) -> Result<Dir> {
        validate_id(id)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(root)
            .with_context(|| format!("create state root {}", root.display()))?;
        let path = root.join(id);
        match std::fs::DirBuilder::new().mode(0o711).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!("container {id:?} already exists")
            }
            Err(e) => return Err(e).with_context(|| format!("create {}", path.display())),
        }
        // Just made by us: nobody can have replaced it but a delete of a half-made container.
        let lock = lock(&path)?.with_context(|| format!("{} vanished", path.display()))?;
        Ok(Dir { path, _lock: lock })
    }

    pub fn open(root: &Path, id: &str) -> Result<Dir> {
        validate_id(id)?;
        let path = root.join(id);
        let Some(lock) = lock(&path)? else {
            bail!("container {id:?} does not exist");
        };
        // A concurrent delete may have removed it while we waited for the lock.
        if !path.join(STATE_FILE).exists() {
            bail!("container {id:?} does not exist");
        }
        Ok(Dir { path, _lock: lock })
    }

    pub fn load(&self) -> Result<State> {
        read_state(&self.path)
    }

    /// Atomic write (temp + rename) so a crash never leaves half a state file.
    pub fn save(&self, st: &State) -> Result<()> {
        let tmp = self.path.join(".state.json.tmp");
        let flags = libc::O_CREAT | libc::O_TRUNC;
        crate::sys::write_at(libc::AT_FDCWD, &tmp, &serde_json::to_vec(st)?, flags, 0o600)
            .context("write state")?;
        std::fs::rename(&tmp, self.path.join(STATE_FILE)).context("write state")?;
        Ok(())
    }

    /// The lock's fd: the container's init must close it, since flock locks belong to the open
    /// file, which a forked child shares until exec.
    pub fn lock_fd(&self) -> std::os::fd::RawFd {
        self._lock.as_raw_fd()
    }

    pub fn fifo(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    /// Lets other calls lock the container while this one keeps its directory open: `run`
    /// waiting for its container, while `state`, `exec` and `kill` must work.
    pub fn unlock(&self) {
        // SAFETY: flock on an fd we own.
        unsafe { libc::flock(self.lock_fd(), libc::LOCK_UN) };
    }

    /// Locks the directory again after `unlock`. None if it was removed meanwhile (a delete,
    /// maybe followed by a create of the same id, whose directory is a new one): then the
    /// container is no longer this call's to touch.
    pub fn relock(self) -> Result<Option<Dir>> {
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(self.lock_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error()).context("lock container state");
        }
        let held = self._lock.metadata().context("lock container state")?;
        // A removed directory has no links left, even while open.
        Ok((std::os::unix::fs::MetadataExt::nlink(&held) > 0).then_some(self))
    }

    pub fn remove(self) -> Result<()> {
        // The files rt leaves there, then the directory: four calls, where walking it takes a
        // dozen. Anything else in it (a failed save's temporary file) is left to the walk.
        for name in FILES {
            let _ = crate::sys::unlinkat(self.lock_fd(), name, 0);
        }
        match std::fs::remove_dir(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {
                std::fs::remove_dir_all(&self.path)
                    .with_context(|| format!("remove {}", self.path.display()))
            }
            Err(e) => Err(e).with_context(|| format!("remove {}", self.path.display())),
        }
    }
}

pub fn read_state(dir: &Path) -> Result<State> {
    let text = crate::sys::read(dir.join(STATE_FILE))
        .with_context(|| format!("read {}", dir.join(STATE_FILE).display()))?;
    serde_json::from_slice(&text)
        .with_context(|| format!("parse {}", dir.join(STATE_FILE).display()))
}

impl State {
    /// Is the recorded init still this container's init (same pid *and* start time)?
    pub fn init_alive(&self) -> bool {
        self.pid > 0
            && matches!(crate::sys::proc_start_time(self.pid),
                Some((start, st)) if start == self.start_time && st != 'Z' && st != 'X')
    }

    pub fn status(&self, dir: &Path) -> Status {
        if !self.init_alive() {
            Status::Stopped
        } else if match self.cgroup.as_deref() {
            Some(cg) => crate::cgroups::v2::is_frozen(cg),
            None => crate::cgroups::v1::is_frozen(&self.cgroup_v1),
        } {
            Status::Paused
        } else if dir.join(EXEC_FIFO).exists() {
            Status::Created
        } else {
            Status::Running
        }
    }

    /// The runtime-spec state document, in the field order and format runc prints.
    pub fn to_json(&self, status: Status) -> serde_json::Value {
        let pid = if status == Status::Stopped {
            0
        } else {
            self.pid
        };
        serde_json::json!({
            "ociVersion": crate::spec::SPEC_VERSION,
            "id": self.id,
            "pid": pid,
            "status": status.as_str(),
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
            "annotations": self.annotations,
        })
    }
}

/// The container's config as saved by create.
pub fn load_spec(dir: &Path) -> Result<oci_spec::runtime::Spec> {
    let text = crate::sys::read(dir.join(CONFIG_COPY))
        .with_context(|| format!("read {}", dir.join(CONFIG_COPY).display()))?;
    serde_json::from_slice(&text)
        .with_context(|| format!("parse {}", dir.join(CONFIG_COPY).display()))
}

/// The state document given to hooks before state.json exists (status `creating`).
pub fn hook_state(
    id: &str,
    pid: i32,
    status: &str,
    bundle: &crate::spec::Bundle,
) -> serde_json::Value {
    serde_json::json!({
        "ociVersion": crate::spec::SPEC_VERSION,
        "id": id,
        "pid": pid,
        "status": status,
        "bundle": bundle.dir,
        "rootfs": bundle.rootfs,
        "annotations": bundle.spec.annotations().clone().unwrap_or_default(),
    })
}

/// Writes a pid file the way callers (containerd, conmon) expect: decimal, no newline, and
/// atomically, so a reader never sees a partial number.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let path = std::path::absolute(path).with_context(|| format!("pid file {}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .with_context(|| format!("pid file {}: not a file name", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    crate::sys::write_file(&tmp, pid.to_string())
        .with_context(|| format!("write pid file {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!("write pid file {}: {e}", path.display())
    })
}

/// Ids of all containers under root, sorted.
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(e).with_context(|| format!("read {}", root.display())),
    };
    for e in rd.flatten() {
        if e.path().join(STATE_FILE).exists() {
            ids.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_removed_by_name_are_the_files_rt_writes() {
        let mut names: Vec<_> = FILES.iter().map(|c| c.to_str().unwrap()).collect();
        names.sort();
        let mut expect = vec![EXEC_FIFO, CONFIG_COPY, STATE_FILE];
        expect.sort();
        assert_eq!(names, expect);
    }

    #[test]
    fn relock_tells_a_removed_directory_from_a_live_one() {
        let root = std::env::temp_dir().join(format!("rt-state-test-{}", std::process::id()));
        let dir = Dir::create(&root, "c").unwrap();
        dir.unlock();
        let dir = dir.relock().unwrap().expect("still there");
        dir.unlock();
        // A delete and a create of the same id meanwhile: a new directory at the same path.
        std::fs::remove_dir(root.join("c")).unwrap();
        std::fs::create_dir(root.join("c")).unwrap();
        assert!(dir.relock().unwrap().is_none());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
