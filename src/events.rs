//! `rt update` (change a running container's limits) and `rt events` (its resource usage and
//! OOM events, in runc's JSON shapes, read from the cgroup v2 files).

use anyhow::{Context, Result, bail};
use oci_spec::runtime::LinuxResources;
use serde_json::{Value, json};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::state::{Dir, Status};

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

fn container_cgroup(root: &Path, id: &str) -> Result<(Dir, PathBuf, String)> {
    let dir = Dir::open(root, id)?;
    let st = dir.load()?;
    if st.status(&dir.path) == Status::Stopped {
        bail!("container not running");
    }
    let rel = st.cgroup.clone().context("container has no cgroup")?;
    let mount = crate::cgroups::v2_mount().context("no cgroup v2 mount")?;
    Ok((dir, mount, rel))
}

pub fn update(root: &Path, id: &str, resources: Option<&Path>, f: &UpdateFlags) -> Result<()> {
    let mut v: Value = match resources {
        Some(p) if p == Path::new("-") => {
            let mut text = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut text).context("read stdin")?;
            serde_json::from_slice(&text).context("--resources -: not a JSON LinuxResources")?
        }
        Some(p) => {
            let text = std::fs::read(p).with_context(|| format!("--resources {}", p.display()))?;
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
    let (dir, mount, rel) = container_cgroup(root, id)?;
    let st = dir.load()?;
    let cgdir = mount.join(rel.trim_start_matches('/'));
    fill_from_current(&mut v, &cgdir, &st.cgroup_v1);
    let r: LinuxResources = serde_json::from_value(v).context("update: resources")?;
    let writes = crate::resources::plan(&r)?;
    // memory.checkBeforeUpdate: never set a limit below what the container already uses.
    if r.memory().as_ref().and_then(|m| m.check_before_update()) == Some(true)
        && let Some(l) = r
            .memory()
            .as_ref()
            .and_then(|m| m.limit())
            .filter(|l| *l > 0)
    {
        let used = read_u64(&cgdir.join("memory.current")).unwrap_or(0);
        if used > l as u64 {
            bail!("linux.resources.memory.limit {l} is below the container's current usage {used}");
        }
    }
    let (on_v2, on_v1) = crate::resources::split(Some(&mount), &writes);
    crate::resources::apply(&mount, &rel, &on_v2)?;
    for w in on_v1 {
        // Only the v1 hierarchies the container joined at create can be updated.
        let mounts = crate::cgroupv1::mounts();
        let d = st
            .cgroup_v1
            .iter()
            .find(|d| mounts.get(w.controller).is_some_and(|m| d.starts_with(m)))
            .with_context(|| {
                format!(
                    "{}: the {} controller is only on cgroup v1 here, and the container has no v1 {} cgroup (it was created without such a limit)",
                    w.field, w.controller, w.controller
                )
            })?;
        for (file, value) in crate::cgroupv1::translate(w)? {
            std::fs::write(d.join(&file), &value).with_context(|| {
                format!(
                    "{}: write {value:?} to {}",
                    w.field,
                    d.join(&file).display()
                )
            })?;
        }
    }
    drop(dir);
    Ok(())
}

/// Fields whose files pair up (quota with period, memory+swap with memory): when an update
/// gives one, the other keeps its current value, as runc's merge with the saved config does.
fn fill_from_current(v: &mut Value, cg: &Path, v1: &[PathBuf]) {
    let v1_file = |name: &str| v1.iter().map(|d| d.join(name)).find(|p| p.exists());
    let read_i64 = |p: &Path| -> Option<i64> {
        match std::fs::read_to_string(p).ok()?.trim() {
            "max" | "-1" => Some(-1),
            s => s.parse().ok(),
        }
    };
    if let Some(cpu) = v.get_mut("cpu").and_then(Value::as_object_mut) {
        let (quota, period) = match std::fs::read_to_string(cg.join("cpu.max")) {
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
        let limit = read_i64(&cg.join("memory.max"))
            .or_else(|| v1_file("memory.limit_in_bytes").and_then(|p| read_i64(&p)));
        if let Some(l) = limit.filter(|l| *l > 0) {
            mem.insert("limit".into(), json!(l));
        }
    }
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn read_limit(p: &Path) -> Option<u64> {
    match std::fs::read_to_string(p).ok()?.trim() {
        "max" => Some(u64::MAX),
        v => v.parse().ok(),
    }
}

/// "key value" lines (cpu.stat, memory.stat, memory.events) as a map.
fn flat(p: &Path) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    for l in std::fs::read_to_string(p).unwrap_or_default().lines() {
        if let Some((k, v)) = l.split_once(' ')
            && let Ok(n) = v.trim().parse::<u64>()
        {
            m.insert(k.to_string(), json!(n));
        }
    }
    m
}

/// One stats sample, shaped like runc's `events --stats` data (v2 fields mapped to it).
pub fn stats(cg: &Path) -> Value {
    let cpu = flat(&cg.join("cpu.stat"));
    let mem = flat(&cg.join("memory.stat"));
    let events = flat(&cg.join("memory.events"));
    let n =
        |m: &serde_json::Map<String, Value>, k: &str| m.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mut hugetlb = serde_json::Map::new();
    if let Ok(rd) = std::fs::read_dir(cg) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(size) = name
                .strip_prefix("hugetlb.")
                .and_then(|s| s.strip_suffix(".current"))
            {
                hugetlb.insert(
                    size.to_string(),
                    json!({"usage": read_u64(&e.path()).unwrap_or(0),
                           "max": read_u64(&cg.join(format!("hugetlb.{size}.max"))).unwrap_or(0),
                           "failcnt": n(&flat(&cg.join(format!("hugetlb.{size}.events"))), "max")}),
                );
            }
        }
    }
    json!({
        "cpu": {
            "usage": {
                "total": n(&cpu, "usage_usec") * 1000,
                "kernel": n(&cpu, "system_usec") * 1000,
                "user": n(&cpu, "user_usec") * 1000,
            },
            "throttling": {
                "periods": n(&cpu, "nr_periods"),
                "throttledPeriods": n(&cpu, "nr_throttled"),
                "throttledTime": n(&cpu, "throttled_usec") * 1000,
            }
        },
        "memory": {
            "usage": {
                "usage": read_u64(&cg.join("memory.current")).unwrap_or(0),
                "max": read_u64(&cg.join("memory.peak")).unwrap_or(0),
                "limit": read_limit(&cg.join("memory.max")).unwrap_or(u64::MAX),
                "failcnt": n(&events, "max"),
            },
            "swap": {
                "usage": read_u64(&cg.join("memory.swap.current")).unwrap_or(0),
                "limit": read_limit(&cg.join("memory.swap.max")).unwrap_or(u64::MAX),
            },
            "cache": n(&mem, "file"),
            "raw": Value::Object(mem),
        },
        "pids": {
            "current": read_u64(&cg.join("pids.current")).unwrap_or(0),
            "limit": read_limit(&cg.join("pids.max")).map(|l| if l == u64::MAX { 0 } else { l }).unwrap_or(0),
        },
        "blkio": {},
        "hugetlb": Value::Object(hugetlb),
    })
}

/// `events`: one stats event with `--stats`; otherwise a stats event every `interval` and an
/// `oom` event whenever memory.events' oom count grows, until the container stops.
pub fn events(root: &Path, id: &str, once: bool, interval: Duration) -> Result<()> {
    let (dir, mount, rel) = container_cgroup(root, id)?;
    let cg = mount.join(rel.trim_start_matches('/'));
    drop(dir);
    let mut out = std::io::stdout().lock();
    let emit = |out: &mut std::io::StdoutLock, v: Value| -> Result<()> {
        writeln!(out, "{v}").context("write event")?;
        out.flush().context("write event")
    };
    if once {
        return emit(
            &mut out,
            json!({"type": "stats", "id": id, "data": stats(&cg)}),
        );
    }
    let oom_count = || {
        flat(&cg.join("memory.events"))
            .get("oom")
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let mut ooms = oom_count();
    let mut next = std::time::Instant::now();
    loop {
        let alive = Dir::open(root, id)
            .and_then(|d| d.load().map(|s| s.status(&d.path) != Status::Stopped))
            .unwrap_or(false);
        // Checked after the liveness test, so an OOM kill that ended the container is still
        // reported before events returns.
        let now_ooms = oom_count();
        if now_ooms > ooms {
            ooms = now_ooms;
            emit(&mut out, json!({"type": "oom", "id": id}))?;
        }
        if !alive {
            return Ok(());
        }
        if std::time::Instant::now() >= next {
            emit(
                &mut out,
                json!({"type": "stats", "id": id, "data": stats(&cg)}),
            )?;
            next += interval;
        }
        std::thread::sleep(Duration::from_millis(100).min(interval));
    }
}
