//! `rt pause` and `rt resume`: the container's cgroup frozen and thawed (v2 freezer, or v1's).

use anyhow::{Result, bail};
use std::path::Path;

use crate::state::{Dir, State, Status};

/// `pause`: freeze every process of the container (runc allows it for created and running).
pub fn pause(root: &Path, id: &str) -> Result<()> {
    let dir = Dir::open(root, id)?;
    let st = dir.load()?;
    match st.status(&dir.path) {
        Status::Created | Status::Running => {}
        Status::Paused => bail!("container {id:?} is already paused"),
        Status::Stopped => bail!("container not running"),
    }
    freeze(&st, true)
}

/// Freezes or thaws through cgroup v2, or the v1 freezer on hosts without v2.
fn freeze(st: &State, frozen: bool) -> Result<()> {
    match st.cgroup.as_deref() {
        Some(cg) => crate::cgroups::v2::freeze(cg, frozen),
        None if !st.cgroup_v1.is_empty() => crate::cgroups::v1::freeze(&st.cgroup_v1, frozen),
        None => bail!("container has no cgroup to freeze"),
    }
}

pub fn resume(root: &Path, id: &str) -> Result<()> {
    let dir = Dir::open(root, id)?;
    let st = dir.load()?;
    if st.status(&dir.path) != Status::Paused {
        bail!("container not paused");
    }
    freeze(&st, false)
}
