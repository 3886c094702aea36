//! `rt delete`: a stopped (or, with --force, killed) container's cgroup, mounts and state
//! removed, poststop hooks run.

use anyhow::{Result, bail};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use crate::state::{self, Dir, State, Status};
use crate::sys;

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

/// Waits until the init is gone (zombie or reaped): pidfds become readable at exit.
fn wait_gone(fd: &OwnedFd, timeout_ms: i32) -> bool {
    crate::sys::poll_in(&[fd.as_raw_fd()], timeout_ms).is_ok_and(|e| e[0] != 0)
}

pub(crate) fn kill_and_wait(st: &State) -> Result<()> {
    if let Some(cg) = &st.cgroup {
        let _ = crate::cgroups::v2::signal_all(cg, libc::SIGKILL);
        // SIGKILL reaches frozen tasks on v2, but thaw anyway so nothing stays stuck.
        if crate::cgroups::v2::is_frozen(cg) {
            let _ = crate::cgroups::v2::freeze(cg, false);
        }
    } else if !st.cgroup_v1.is_empty() {
        let _ = crate::cgroups::v1::signal_all(&st.cgroup_v1, libc::SIGKILL);
        // A v1 freezer holds even SIGKILLed tasks until thawed.
        if crate::cgroups::v1::is_frozen(&st.cgroup_v1) {
            let _ = crate::cgroups::v1::freeze(&st.cgroup_v1, false);
        }
    }
    if let Some(fd) = super::init_pidfd(st) {
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
        crate::cgroups::v2::empty(cg)?;
        if unit.ends_with(".slice") {
            crate::cgroups::systemd::Manager::connect(st.systemd_user)?.stop_unit(unit)?;
        }
    } else if let Some(cg) = st.cgroup.as_ref().filter(|_| st.cgroup_owned) {
        if !st.own_pidns {
            let _ = crate::cgroups::v2::signal_all(cg, libc::SIGKILL);
        }
        crate::cgroups::v2::remove(cg)?;
    } else if !st.cgroup_v1_created.is_empty() && !st.own_pidns {
        let _ = crate::cgroups::v1::signal_all(&st.cgroup_v1, libc::SIGKILL);
    }
    crate::cgroups::v1::remove(&st.cgroup_v1_created);
    if let Some(m) = &st.shared_mounts {
        crate::process::rootfs::detach_mounts(&m.root, |id| !m.before.contains(&id));
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
