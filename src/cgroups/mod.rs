//! The container's cgroup: made by the kernel's files (`v2`, with `v1` beside it on hybrid and
//! v1 hosts) or by systemd (`systemd`, a transient unit), given its limits (`resources`) and
//! device filter (`devices`), and read back for `events` (`stats`).
//!
//! The two drivers differ in when the cgroup comes to be, and that is what [`Driver`] says;
//! once it exists, every operation (ps, kill --all, pause, events, exec, update's files)
//! works on its v2 directory either way, and the unit's name is kept in the state for update
//! and delete.

pub mod cgfs;
pub mod devices;
pub mod resources;
pub mod stats;
pub mod systemd;
pub mod v1;
pub mod v2;

use anyhow::Result;
use std::os::fd::RawFd;

/// rt's own cgroups, as /proc/self/cgroup lists them (read once: they can't change within one
/// call of rt; the init, which moves, reads its own).
pub fn own_cgroups() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| crate::sys::read_to_string("/proc/self/cgroup").unwrap_or_default())
}

/// How a container's cgroup is made while rt starts its init (create and restore).
pub trait Driver {
    /// The cgroup made before the init exists, to clone it straight into (CLONE_INTO_CGROUP):
    /// cgroupfs. None when there is none yet.
    fn clone_into(&self) -> Option<RawFd>;
    /// Whether the cgroup is made around the init's first process once that exists (systemd:
    /// a new unit), the init waiting for it before anything else.
    fn adopts(&self) -> bool;
    /// The init's first process exists: `pid` put into the container's cgroup (by `adopts`
    /// drivers; a no-op for the others).
    fn adopt(&self, pid: i32) -> Result<()>;
    /// The container's cgroup, relative to the v2 mount, once made.
    fn rel(&self) -> Option<String>;
    /// Whether rt made it (and so removes it with the container).
    fn owned(&self) -> bool;
    /// The unit (name, under the user's manager) the cgroup belongs to, if a driver made one.
    fn unit(&self) -> Option<(String, bool)>;
    /// The create went through: what was made stays (until then, dropping undoes it).
    fn disarm(&mut self);
}
