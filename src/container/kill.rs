//! `rt kill`: a signal to the init through its pidfd, or to every process of the cgroup.

use anyhow::{Context, Result, bail};
use std::path::Path;

use crate::state::{Dir, State, Status};
use crate::sys;

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
    let fd = super::init_pidfd(&st).context("container not running")?;
    sys::pidfd_send_signal(&fd, sig).with_context(|| format!("signal {sig} to the container init"))
}

/// Signals every process of the container's cgroup (v2, else v1).
fn signal_all(st: &State, sig: i32) -> Result<()> {
    match st.cgroup.as_deref() {
        Some(cg) => crate::cgroups::v2::signal_all(cg, sig),
        None => crate::cgroups::v1::signal_all(&st.cgroup_v1, sig),
    }
}
