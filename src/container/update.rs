//! `rt update`: a running container's limits changed, merged with their current values, in
//! its cgroup files (v2, v1) and, under the systemd driver, its unit's properties.

use anyhow::{Context, Result, bail};
use oci_spec::runtime::LinuxResources;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

use crate::cgroups::stats::{Cgroups, read_limit, read_u64};
use crate::state::{Dir, State, Status};

/// runc's individual `update` flags, merged into a LinuxResources document.
#[derive(Default)]
pub struct UpdateFlags {
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_share: Option<u64>,
    pub cpu_burst: Option<u64>,
    pub cpu_idle: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u16>,
}

/// The container (locked, for `update`) and its cgroups.
fn container_cgroup(root: &Path, id: &str) -> Result<(Dir, State, Cgroups)> {
    let dir = Dir::open(root, id)?;
    let st = dir.load()?;
    let cg = cgroups_of(&dir.path, &st)?;
    Ok((dir, st, cg))
}

/// The cgroups of a running container.
pub(crate) fn cgroups_of(dir: &Path, st: &State) -> Result<Cgroups> {
    if st.status(dir) == Status::Stopped {
        bail!("container not running");
    }
    let v2 = match (&st.cgroup, crate::cgroups::v2::v2_mount()) {
        (Some(rel), Some(m)) => Some((m, rel.clone())),
        _ => None,
    };
    if v2.is_none() && st.cgroup_v1.is_empty() {
        bail!("container has no cgroup");
    }
    Ok(Cgroups {
        v2,
        v1: st.cgroup_v1.clone(),
    })
}

pub fn update(root: &Path, id: &str, resources: Option<&Path>, f: &UpdateFlags) -> Result<()> {
    let mut v = requested(resources, f)?;
    let (dir, st, cgs) = container_cgroup(root, id)?;
    fill_from_current(&mut v, cgs.v2_dir().as_deref(), &st.cgroup_v1);
    let r: LinuxResources = serde_json::from_value(v).context("update: resources")?;
    let writes = crate::cgroups::resources::plan(&r)?;
    // memory.checkBeforeUpdate: never set a limit below what the container already uses.
    if r.memory().as_ref().and_then(|m| m.check_before_update()) == Some(true)
        && let Some(l) = r
            .memory()
            .as_ref()
            .and_then(|m| m.limit())
            .filter(|l| *l > 0)
    {
        let used = cgs
            .file("memory.current", "memory", "memory.usage_in_bytes")
            .and_then(|p: PathBuf| read_u64(&p))
            .unwrap_or(0);
        if used > l as u64 {
            bail!("linux.resources.memory.limit {l} is below the container's current usage {used}");
        }
    }
    let (on_v2, on_v1) =
        crate::cgroups::resources::split(cgs.v2.as_ref().map(|(m, _)| m.as_path()), &writes);
    if let Some(unit) = &st.systemd_unit {
        // systemd owns the ancestors (their controllers are its business) and re-applies a
        // unit's properties on reload: the new limits go to both.
        crate::cgroups::systemd::set_resources(unit, st.systemd_user, &r)?;
        if let Some((mount, rel)) = cgs.v2.as_ref() {
            crate::cgroups::resources::write_files(mount, rel, &on_v2)?;
        }
    } else if !on_v2.is_empty() {
        let (mount, rel) = cgs.v2.as_ref().context("container has no cgroup v2")?;
        crate::cgroups::v2::enable_controllers(mount, rel, false);
        crate::cgroups::resources::apply(mount, rel, &on_v2, false)?;
    }
    write_v1(&st, &cgs, on_v1)?;
    drop(dir);
    Ok(())
}

/// The update asked for: the --resources document (a file, or - for stdin), with runc's
/// individual flags set over it.
fn requested(resources: Option<&Path>, f: &UpdateFlags) -> Result<Value> {
    let mut v: Value = match resources {
        Some(p) if p == Path::new("-") => {
            let mut text = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut text).context("read stdin")?;
            serde_json::from_slice(&text).context("--resources -: not a JSON LinuxResources")?
        }
        Some(p) => {
            let text =
                crate::sys::read(p).with_context(|| format!("--resources {}", p.display()))?;
            serde_json::from_slice(&text).with_context(|| {
                format!("--resources {}: not a JSON LinuxResources", p.display())
            })?
        }
        None => json!({}),
    };
    if !v.is_object() {
        bail!("--resources: a JSON object (LinuxResources) is expected");
    }
    let mut set = |path: &[&str], val: Value| {
        let mut cur = &mut v;
        for k in &path[..path.len() - 1] {
            let Some(o) = cur.as_object_mut() else {
                return Err(anyhow::anyhow!("--resources: {k} must be an object"));
            };
            cur = o.entry(k.to_string()).or_insert(json!({}));
        }
        match cur.as_object_mut() {
            Some(o) => {
                o.insert(path[path.len() - 1].to_string(), val);
                Ok(())
            }
            None => Err(anyhow::anyhow!(
                "--resources: {} must be an object",
                path[0]
            )),
        }
    };
    if let Some(x) = f.memory {
        set(&["memory", "limit"], json!(x))?;
    }
    if let Some(x) = f.memory_swap {
        set(&["memory", "swap"], json!(x))?;
    }
    if let Some(x) = f.memory_reservation {
        set(&["memory", "reservation"], json!(x))?;
    }
    if let Some(x) = f.cpu_period {
        set(&["cpu", "period"], json!(x))?;
    }
    if let Some(x) = f.cpu_quota {
        set(&["cpu", "quota"], json!(x))?;
    }
    if let Some(x) = f.cpu_share {
        set(&["cpu", "shares"], json!(x))?;
    }
    if let Some(x) = f.cpu_burst {
        set(&["cpu", "burst"], json!(x))?;
    }
    if let Some(x) = f.cpu_idle {
        set(&["cpu", "idle"], json!(x))?;
    }
    if let Some(x) = &f.cpuset_cpus {
        set(&["cpu", "cpus"], json!(x))?;
    }
    if let Some(x) = &f.cpuset_mems {
        set(&["cpu", "mems"], json!(x))?;
    }
    if let Some(x) = f.pids_limit {
        set(&["pids", "limit"], json!(x))?;
    }
    if let Some(x) = f.blkio_weight {
        set(&["blockIO", "weight"], json!(x))?;
    }
    Ok(v)
}

/// The limits only v1 hierarchies take here, written to the v1 cgroups the container joined
/// at create (the only ones an update can reach).
fn write_v1(
    st: &State,
    cgs: &Cgroups,
    on_v1: Vec<&crate::cgroups::resources::Write>,
) -> Result<()> {
    let mut on_v1 = on_v1;
    // v1 wants memory.limit_in_bytes <= memory.memsw.limit_in_bytes at every step: when the
    // new limit is above the current memsw limit, memsw goes first (it is raised too).
    let memsw_now = cgs
        .v1_file("memory", "memory.memsw.limit_in_bytes")
        .and_then(|p| read_limit(&p));
    let pos = |f: &str| on_v1.iter().position(|w| w.file == f);
    if let (Some(l), Some(sw)) = (pos("memory.max"), pos("memory.swap.max"))
        && l < sw
        && let Some(new_limit) = match on_v1[l].value.as_str() {
            "max" => Some(u64::MAX),
            v => v.parse::<u64>().ok(),
        }
        && memsw_now.is_some_and(|now| new_limit > now)
    {
        on_v1.swap(l, sw);
    }
    for w in on_v1 {
        // Only the v1 hierarchies the container joined at create can be updated.
        let mounts = crate::cgroups::v1::mounts();
        let d = st
            .cgroup_v1
            .iter()
            .find(|d| {
                mounts
                    .get(crate::cgroups::v1::v1_name(w.controller))
                    .is_some_and(|m| d.starts_with(m))
            })
            .with_context(|| {
                format!(
                    "{}: the {} controller is only on cgroup v1 here, and the container has no v1 {} cgroup",
                    w.field, w.controller, w.controller
                )
            })?;
        for (file, value) in crate::cgroups::v1::translate(w)? {
            crate::cgroups::v1::write(d, &file, &value, w.field)?;
        }
    }
    Ok(())
}

/// Fields whose files pair up (quota with period, memory+swap with memory): when an update
/// gives one, the other keeps its current value, as runc's merge with the saved config does.
fn fill_from_current(v: &mut Value, cg: Option<&Path>, v1: &[PathBuf]) {
    // Without a v2 cgroup every read falls back to v1.
    let v2_file = |name: &str| cg.map(|c| c.join(name)).unwrap_or_default();
    let v1_file = |name: &str| v1.iter().map(|d| d.join(name)).find(|p| p.exists());
    let read_i64 = |p: &Path| -> Option<i64> {
        match crate::sys::read_to_string(p).ok()?.trim() {
            "max" | "-1" => Some(-1),
            s => s.parse().ok(),
        }
    };
    if let Some(cpu) = v.get_mut("cpu").and_then(Value::as_object_mut) {
        let (quota, period) = match crate::sys::read_to_string(v2_file("cpu.max")) {
            Ok(s) => {
                let mut f = s.split_whitespace();
                let q = f.next().map(|q| {
                    if q == "max" {
                        -1
                    } else {
                        q.parse().unwrap_or(-1)
                    }
                });
                (q, f.next().and_then(|p| p.parse::<i64>().ok()))
            }
            Err(_) => (
                v1_file("cpu.cfs_quota_us").and_then(|p| read_i64(&p)),
                v1_file("cpu.cfs_period_us").and_then(|p| read_i64(&p)),
            ),
        };
        if cpu.contains_key("period")
            && !cpu.contains_key("quota")
            && let Some(q) = quota
        {
            cpu.insert("quota".into(), json!(q));
        }
        if cpu.contains_key("quota")
            && !cpu.contains_key("period")
            && let Some(p) = period
        {
            cpu.insert("period".into(), json!(p));
        }
    }
    if let Some(mem) = v.get_mut("memory").and_then(Value::as_object_mut)
        && mem.contains_key("swap")
        && !mem.contains_key("limit")
    {
        let limit = read_i64(&v2_file("memory.max"))
            .or_else(|| v1_file("memory.limit_in_bytes").and_then(|p| read_i64(&p)));
        if let Some(l) = limit.filter(|l| *l > 0) {
            mem.insert("limit".into(), json!(l));
        }
    }
}
