//! `linux.resources` → cgroup v2 files. Everything is computed first (so a bad value fails
//! before any write), then the needed controllers are enabled down the tree, then the files
//! are written, all before the init is cloned into the cgroup. A limit whose controller the
//! host doesn't offer is an error naming both, never a silent skip.

mod plan;

pub use plan::{blkio_to_io_weight, plan, shares_to_weight};

use anyhow::Result;
use std::path::Path;

/// One file to write in the container's cgroup, and the controller that owns it.
#[derive(Debug, PartialEq, Eq)]
pub struct Write {
    pub controller: &'static str,
    pub file: String,
    pub value: String,
    /// The config field, for error messages.
    pub field: &'static str,
    /// For io.weight: the value to write instead when the cgroup uses io.bfq.weight.
    pub bfq_value: Option<String>,
    /// The cgroup v1 files and values for the same limit (None: v1 has no equivalent).
    pub v1: Option<Vec<(String, String)>>,
    /// Set for a limit only cgroup v1 has: why v2 can't take it. Such a write always goes to
    /// v1, and fails where the controller is not a v1 one.
    pub v2_missing: Option<&'static str>,
}

/// The writes cgroup v2 at `mount` can take (its controllers), and those it can't.
pub fn split<'a>(mount: Option<&Path>, writes: &'a [Write]) -> (Vec<&'a Write>, Vec<&'a Write>) {
    // Read only when a limit asks (most containers are made without any).
    let offered = mount
        .filter(|_| writes.iter().any(|w| !w.controller.is_empty()))
        .and_then(|m| crate::cgroups::cgfs::read_to_string(m.join("cgroup.controllers")).ok())
        .unwrap_or_default();
    writes.iter().partition(|w| {
        w.v2_missing.is_none()
            && (w.controller.is_empty() || offered.split_whitespace().any(|c| c == w.controller))
    })
}

/// Writes the limits into the container's cgroup after checking it has each controller they
/// need (`cgroups::enable_controllers` gave it those its parent offers); a missing one is an
/// error naming the limit and why the controller isn't there. `systemd_unit`: the cgroup is a
/// unit of the systemd driver.
pub fn apply(mount: &Path, rel: &str, writes: &[&Write], systemd_unit: bool) -> Result<()> {
    let have = crate::cgroups::cgfs::read_to_string(
        mount
            .join(rel.trim_start_matches('/'))
            .join("cgroup.controllers"),
    )
    .unwrap_or_default();
    for w in writes {
        if !w.controller.is_empty() && !have.split_whitespace().any(|c| c == w.controller) {
            return Err(crate::cgroups::v2::missing_controller(
                mount,
                rel,
                w.field,
                w.controller,
                systemd_unit,
            ));
        }
    }
    write_files(mount, rel, writes)
}

/// The first limit (field, controller) that needs a controller threaded cgroups can't have.
pub fn domain_limit(writes: &[&Write]) -> Option<(&'static str, &'static str)> {
    writes
        .iter()
        .find(|w| crate::cgroups::v2::DOMAIN_ONLY.contains(&w.controller))
        .map(|w| (w.field, w.controller))
}

/// Writes the files into the container's cgroup, whose controllers are there already (its
/// ancestors enabled them: rt, or systemd for its units).
pub fn write_files(mount: &Path, rel: &str, writes: &[&Write]) -> Result<()> {
    let dir = mount.join(rel.trim_start_matches('/'));
    for w in writes {
        let mut file = w.file.clone();
        let mut value = w.value.clone();
        // With the BFQ scheduler, weights live in io.bfq.weight, in blkio's own 1..1000 range.
        if file == "io.weight" && crate::cgroups::cgfs::exists(dir.join("io.bfq.weight")) {
            file = "io.bfq.weight".into();
            value = w.bfq_value.clone().unwrap_or(value);
        }
        let path = dir.join(&file);
        crate::cgroups::cgfs::write(&path, &value).map_err(|e| {
            anyhow::anyhow!(
                "{}: write {:?} to {}: {}",
                w.field,
                value,
                path.display(),
                crate::sys::errno_str(&e)
            )
        })?;
        // Reserved hugepages are limited the same (runc): the .rsvd file exists on kernels
        // that account reservations.
        if let Some(size) = file
            .strip_prefix("hugetlb.")
            .and_then(|f| f.strip_suffix(".max"))
        {
            let rsvd = dir.join(format!("hugetlb.{size}.rsvd.max"));
            if crate::cgroups::cgfs::exists(&rsvd) {
                crate::cgroups::cgfs::write(&rsvd, &value).map_err(|e| {
                    anyhow::anyhow!(
                        "{}: write {}: {}",
                        w.field,
                        rsvd.display(),
                        crate::sys::errno_str(&e)
                    )
                })?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxResources;

    #[test]
    fn conversions_match_runc() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
        assert_eq!(blkio_to_io_weight(500), 4950);
    }

    #[test]
    fn plans_the_files() {
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 1048576, "swap": 2097152, "reservation": 524288},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0"},
            "pids": {"limit": 16},
            "unified": {"memory.high": "900000"}
        }))
        .unwrap();
        let w = plan(&r).unwrap();
        let v1 = |f: &str| w.iter().find(|x| x.file == f).and_then(|x| x.v1.clone());
        assert_eq!(
            v1("cpu.max"),
            Some(vec![
                ("cpu.cfs_period_us".into(), "100000".into()),
                ("cpu.cfs_quota_us".into(), "50000".into())
            ])
        );
        assert_eq!(
            v1("memory.swap.max"),
            Some(vec![(
                "memory.memsw.limit_in_bytes".into(),
                "2097152".into()
            )])
        );
        assert_eq!(v1("memory.high"), None);
        let get = |f: &str| w.iter().find(|x| x.file == f).map(|x| x.value.as_str());
        assert_eq!(get("memory.max"), Some("1048576"));
        assert_eq!(get("memory.swap.max"), Some("1048576"));
        assert_eq!(get("memory.low"), Some("524288"));
        assert_eq!(get("cpu.weight"), Some("39"));
        assert_eq!(get("cpu.max"), Some("50000 100000"));
        assert_eq!(get("cpuset.cpus"), Some("0"));
        assert_eq!(get("pids.max"), Some("16"));
        assert_eq!(get("memory.high"), Some("900000"));
    }

    #[test]
    fn refuses_bad_values() {
        let bad = |v: serde_json::Value| plan(&serde_json::from_value(v).unwrap()).is_err();
        assert!(bad(
            serde_json::json!({"memory": {"limit": 100, "swap": 50}})
        ));
        assert!(bad(serde_json::json!({"memory": {"swap": 50}})));
        assert!(bad(serde_json::json!({"unified": {"../../etc": "x"}})));
        assert!(bad(serde_json::json!({"unified": {"memory.max/x": "x"}})));
        assert!(bad(serde_json::json!({"unified": {"foo.bar": "x"}})));
        assert!(bad(serde_json::json!({"memory": {"swappiness": 101}})));
    }

    #[test]
    fn v1_only_limits_always_go_to_v1() {
        let w = plan(
            &serde_json::from_value(serde_json::json!({
                "memory": {"limit": 1048576, "swappiness": 10, "disableOOMKiller": true},
                "cpu": {"realtimePeriod": 1000000, "realtimeRuntime": 100}
            }))
            .unwrap(),
        )
        .unwrap();
        let (v2, v1) = split(None, &w);
        assert_eq!(v2.len(), 0);
        let files: Vec<&str> = v1
            .iter()
            .filter(|w| w.v2_missing.is_some())
            .flat_map(|w| w.v1.iter().flatten().map(|(f, _)| f.as_str()))
            .collect();
        assert_eq!(
            files,
            [
                "memory.swappiness",
                "memory.oom_control",
                "cpu.rt_period_us",
                "cpu.rt_runtime_us"
            ]
        );
    }
}
