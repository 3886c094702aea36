//! Starting a container's init: clone3 straight into the new namespaces and cgroup (no re-exec
//! of rt), the parent's side of the setup conversation (id maps, errors, "ready"), and the
//! child's ordered setup up to the wait for `start`.
//!
//! Two shapes, chosen by the config:
//! - fast: nothing to join and no time offsets. One clone3 with every CLONE_NEW* flag makes the
//!   init directly.
//! - staged: a first child joins the namespaces given by path (see join_namespaces), unshares
//!   the new ones, writes time offsets, then clone3s the init with CLONE_PARENT (so rt can still
//!   wait for it) and exits. pid and time namespaces only apply to children, hence the second
//!   clone.

pub mod channel;
pub mod console;
pub mod fds;
pub mod finalize;
pub mod idmap;
pub mod init;
pub mod netdev;
pub mod rootfs;
pub mod security;
pub mod spawn;

pub use channel::{Channel, child_main};
pub use finalize::{Ready, finalize, send_to_seccomp_agent};
pub use spawn::{Spawned, spawn};

use anyhow::Result;
use std::os::fd::RawFd;
use std::path::PathBuf;

use crate::spec::Bundle;

/// What the init needs beyond the spec, all prepared by the parent in the host's context.
pub struct InitArgs<'a> {
    pub id: &'a str,
    pub bundle: &'a Bundle,
    /// O_PATH fd of the exec fifo the init blocks on until `start`.
    pub fifo: RawFd,
    /// A verified procfs of the host, used for every /proc access of the init: the container
    /// could mount anything on its own /proc.
    pub hostproc: RawFd,
    pub console_socket: Option<RawFd>,
    pub preserve_fds: u32,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub cgroup_fd: Option<RawFd>,
    /// Per mount entry, the user namespace of its idmapped bind (made by rt beforehand).
    pub idmaps: &'a [Option<RawFd>],
    /// The sealed exec trampoline memfd.
    pub trampoline: RawFd,
    /// The compiled linux.seccomp filter, loaded by the init.
    pub seccomp: Option<&'a crate::process::security::seccomp::Filter>,
    /// fds of the parent the children must close at once (the state lock).
    pub close_in_child: &'a [RawFd],
    /// The container's cgroup v2 directory, if it has one.
    pub v2_cgroup: Option<PathBuf>,
    /// The container's v1 cgroups (v1 and hybrid hosts): joined before the init unshares its
    /// cgroup namespace, so that namespace is rooted at the container's cgroup in each.
    pub v1_cgroups: &'a [PathBuf],
    /// Set when rt's parent side puts the init in its cgroup (the systemd driver: systemd
    /// moves it into a new unit): called with the pid of the first child, which waits for it
    /// before anything else, so the init's cgroup namespace is rooted in its cgroup.
    pub cgroup_by_parent: Option<&'a dyn Fn(i32) -> Result<()>>,
    /// The cgroups rt's side makes while the init makes its namespaces (v1 hierarchies,
    /// device filter): called with the init's pid right after clone3, it returns the v1
    /// directories, which the init waits for and joins before it unshares its cgroup
    /// namespace. Set only when the init is the first child
    /// (`spawn::init_is_first_child`) and rt makes the cgroups (cgroupfs driver).
    pub cgroups_after_clone: Option<&'a dyn Fn(i32) -> Result<Vec<PathBuf>>>,
    /// rt's side's own work, done while the init sets itself up: called once with the init's
    /// pid right after clone3 (when the first child is the init itself and needs nothing from
    /// rt first). A failure kills the init.
    pub meanwhile: Option<&'a dyn Fn(i32) -> Result<()>>,
}
