//! The read-only queries: `rt state`, `rt list` and `rt ps`.

use anyhow::{Result, bail};
use std::path::Path;

use crate::state::{self, Status};

/// Read-only: never waits on the container's lock (see state::snapshot).
pub fn state_json(root: &Path, id: &str) -> Result<serde_json::Value> {
    let (dir, st) = state::snapshot(root, id)?;
    Ok(st.to_json(st.status(&dir)))
}

pub fn list(root: &Path) -> Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for id in state::list_ids(root)? {
        let dir = root.join(&id);
        // Unlocked read: list must not wait behind a long create.
        if let Ok(st) = state::read_state(&dir) {
            let mut v = st.to_json(st.status(&dir));
            // As runc's list: the owner is whoever owns the state directory.
            if let Ok(m) = std::fs::metadata(&dir) {
                use std::os::unix::fs::MetadataExt;
                v["owner"] = crate::passwd::lookup(m.uid())
                    .map_or_else(|| format!("#{}", m.uid()), |e| e.name)
                    .into();
            }
            out.push(v);
        }
    }
    Ok(out)
}

/// The container's processes; none once it has stopped (runc's `ps` then prints only the
/// header, and so does rt's).
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>> {
    let (dir, st) = state::snapshot(root, id)?;
    if st.status(&dir) == Status::Stopped {
        return Ok(Vec::new());
    }
    let procs = match &st.cgroup {
        Some(cg) => crate::cgroups::v2::procs(cg),
        None if !st.cgroup_v1.is_empty() => crate::cgroups::v1::procs(&st.cgroup_v1),
        None => Ok(vec![st.pid]),
    };
    // Read without the lock: a delete may have removed the cgroup meanwhile. Then the
    // container is gone, or stopped with nothing left to list.
    procs.or_else(|e| {
        if !dir.join(state::STATE_FILE).exists() {
            bail!("container {id:?} does not exist");
        }
        if st.status(&dir) == Status::Stopped {
            return Ok(Vec::new());
        }
        Err(e)
    })
}
