//! `linux.resources` → cgroup v2 files. Everything is computed first (so a bad value fails
//! before any write), then the needed controllers are enabled down the tree, then the files
//! are written, all before the init is cloned into the cgroup. A limit whose controller the
//! host doesn't offer is an error naming both, never a silent skip.

use anyhow::{Result, bail};
use oci_spec::runtime::LinuxResources;
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

fn max_or(v: i64) -> String {
    if v < 0 { "max".into() } else { v.to_string() }
}

/// runc's and crun's conversion of cgroup v1 cpu.shares (2..262144) to v2 cpu.weight (1..10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

/// blkio.weight (10..1000) to io.weight (1..10000), as runc does.
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (u64::from(w).clamp(10, 1000) - 10) * 9999 / 990
}

/// The spec's memory.swap is memory+swap; v2's memory.swap.max is swap alone.
fn swap_max(swap: i64, limit: Option<i64>) -> Result<String> {
    if swap < 0 {
        return Ok("max".into());
    }
    match limit {
        Some(l) if l > 0 => {
            if swap < l {
                bail!(
                    "linux.resources.memory.swap ({swap}) must not be below memory.limit ({l}): it counts memory plus swap"
                );
            }
            Ok((swap - l).to_string())
        }
        _ => bail!("linux.resources.memory.swap needs memory.limit (it counts memory plus swap)"),
    }
}

/// Translates the resources into writes, checking every value.
pub fn plan(r: &LinuxResources) -> Result<Vec<Write>> {
    let mut w = Vec::new();
    let mut put = |controller, file: &str, value: String, field| {
        w.push(Write {
            controller,
            file: file.to_string(),
            value,
            field,
            bfq_value: None,
            v1: None,
            v2_missing: None,
        })
    };
    // Limits with no cgroup v2 file: only a v1 hierarchy can take them.
    let mut v1_only: Vec<Write> = Vec::new();
    let mut only_v1 = |controller, files: Vec<(&str, String)>, field, why| {
        v1_only.push(Write {
            controller,
            file: String::new(),
            value: String::new(),
            field,
            bfq_value: None,
            v1: Some(files.into_iter().map(|(f, v)| (f.to_string(), v)).collect()),
            v2_missing: Some(why),
        })
    };
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit().filter(|l| *l != 0) {
            put(
                "memory",
                "memory.max",
                max_or(l),
                "linux.resources.memory.limit",
            );
        }
        if let Some(l) = m.reservation().filter(|l| *l != 0) {
            put(
                "memory",
                "memory.low",
                max_or(l),
                "linux.resources.memory.reservation",
            );
        }
        if let Some(s) = m.swap().filter(|s| *s != 0) {
            put(
                "memory",
                "memory.swap.max",
                swap_max(s, m.limit())?,
                "linux.resources.memory.swap",
            );
        }
        // A kernel that dropped kmem (5.16 deprecated it) has no such file: the write's error
        // names it.
        if let Some(k) = m.kernel().filter(|k| *k != 0) {
            only_v1(
                "memory",
                vec![("memory.kmem.limit_in_bytes", k.to_string())],
                "linux.resources.memory.kernel",
                "cgroup v2 has no kernel memory limit",
            );
        }
        if let Some(k) = m.kernel_tcp().filter(|k| *k != 0) {
            only_v1(
                "memory",
                vec![("memory.kmem.tcp.limit_in_bytes", k.to_string())],
                "linux.resources.memory.kernelTCP",
                "cgroup v2 has no kernel TCP memory limit",
            );
        }
        if let Some(s) = m.swappiness().filter(|s| *s != u64::MAX) {
            if s > 100 {
                bail!("linux.resources.memory.swappiness: {s} is above 100");
            }
            only_v1(
                "memory",
                vec![("memory.swappiness", s.to_string())],
                "linux.resources.memory.swappiness",
                "cgroup v2 has no per-cgroup swappiness",
            );
        }
        if m.disable_oom_killer() == Some(true) {
            only_v1(
                "memory",
                vec![("memory.oom_control", "1".to_string())],
                "linux.resources.memory.disableOOMKiller",
                "cgroup v2 can't disable the OOM killer",
            );
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            put(
                "cpu",
                "cpu.weight",
                shares_to_weight(s).to_string(),
                "linux.resources.cpu.shares",
            );
        }
        let quota = c.quota().filter(|q| *q != 0);
        let period = c.period().filter(|p| *p != 0);
        if quota.is_some() || period.is_some() {
            let q = quota.map_or("max".to_string(), max_or);
            put(
                "cpu",
                "cpu.max",
                format!("{q} {}", period.unwrap_or(100_000)),
                "linux.resources.cpu.quota",
            );
        }
        if let Some(b) = c.burst() {
            put(
                "cpu",
                "cpu.max.burst",
                b.to_string(),
                "linux.resources.cpu.burst",
            );
        }
        if let Some(i) = c.idle() {
            put("cpu", "cpu.idle", i.to_string(), "linux.resources.cpu.idle");
        }
        // The period first: a runtime above the current period is refused by the kernel.
        let mut rt = Vec::new();
        if let Some(p) = c.realtime_period().filter(|v| *v != 0) {
            rt.push(("cpu.rt_period_us", p.to_string()));
        }
        if let Some(r) = c.realtime_runtime().filter(|v| *v != 0) {
            rt.push(("cpu.rt_runtime_us", r.to_string()));
        }
        if !rt.is_empty() {
            only_v1(
                "cpu",
                rt,
                "linux.resources.cpu.realtimeRuntime",
                "cgroup v2 has no realtime CPU limits",
            );
        }
        if let Some(s) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            put(
                "cpuset",
                "cpuset.cpus",
                s.to_string(),
                "linux.resources.cpu.cpus",
            );
        }
        if let Some(s) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            put(
                "cpuset",
                "cpuset.mems",
                s.to_string(),
                "linux.resources.cpu.mems",
            );
        }
    }
    if let Some(p) = r.pids()
        && p.limit() != 0
    {
        put(
            "pids",
            "pids.max",
            max_or(p.limit()),
            "linux.resources.pids.limit",
        );
    }
    if let Some(b) = r.block_io() {
        if let Some(wt) = b.weight().filter(|w| *w != 0) {
            put(
                "io",
                "io.weight",
                format!("default {}", blkio_to_io_weight(wt)),
                "linux.resources.blockIO.weight",
            );
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(wt) = d.weight().filter(|w| *w != 0) {
                put(
                    "io",
                    "io.weight",
                    format!("{}:{} {}", d.major(), d.minor(), blkio_to_io_weight(wt)),
                    "linux.resources.blockIO.weightDevice",
                );
            }
        }
        for (list, key, field) in [
            (
                b.throttle_read_bps_device(),
                "rbps",
                "linux.resources.blockIO.throttleReadBpsDevice",
            ),
            (
                b.throttle_write_bps_device(),
                "wbps",
                "linux.resources.blockIO.throttleWriteBpsDevice",
            ),
            (
                b.throttle_read_iops_device(),
                "riops",
                "linux.resources.blockIO.throttleReadIOPSDevice",
            ),
            (
                b.throttle_write_iops_device(),
                "wiops",
                "linux.resources.blockIO.throttleWriteIOPSDevice",
            ),
        ] {
            for d in list.iter().flatten() {
                let rate = if d.rate() == 0 {
                    "max".to_string()
                } else {
                    d.rate().to_string()
                };
                put(
                    "io",
                    "io.max",
                    format!("{}:{} {key}={rate}", d.major(), d.minor()),
                    field,
                );
            }
        }
    }
    for h in r.hugepage_limits().iter().flatten() {
        let size = h.page_size();
        if size.is_empty() || !size.chars().all(|c| c.is_ascii_alphanumeric()) {
            bail!("linux.resources.hugepageLimits: bad pageSize {size:?}");
        }
        put(
            "hugetlb",
            &format!("hugetlb.{size}.max"),
            max_or(h.limit()),
            "linux.resources.hugepageLimits",
        );
    }
    for (dev, l) in r.rdma().iter().flatten() {
        let mut v = dev.clone();
        if let Some(n) = l.hca_handles() {
            v.push_str(&format!(" hca_handle={n}"));
        }
        if let Some(n) = l.hca_objects() {
            v.push_str(&format!(" hca_object={n}"));
        }
        put("rdma", "rdma.max", v, "linux.resources.rdma");
    }
    if let Some(n) = r.network() {
        if let Some(id) = n.class_id() {
            only_v1(
                "net_cls",
                vec![("net_cls.classid", id.to_string())],
                "linux.resources.network.classID",
                "cgroup v2 has no net_cls",
            );
        }
        let prios: Vec<(&str, String)> = n
            .priorities()
            .iter()
            .flatten()
            .map(|p| {
                if p.name().is_empty() || p.name().contains(char::is_whitespace) {
                    bail!(
                        "linux.resources.network.priorities: bad interface name {:?}",
                        p.name()
                    );
                }
                Ok((
                    "net_prio.ifpriomap",
                    format!("{} {}", p.name(), p.priority()),
                ))
            })
            .collect::<Result<_>>()?;
        if !prios.is_empty() {
            only_v1(
                "net_prio",
                prios,
                "linux.resources.network.priorities",
                "cgroup v2 has no net_prio",
            );
        }
    }
    let mut unified: Vec<_> = r.unified().iter().flatten().collect();
    unified.sort();
    for (k, v) in unified {
        // A plain file name of the cgroup, owned by a controller ("memory.high") or the core
        // ("cgroup.max.depth"): never a path.
        if k.is_empty() || k.contains('/') || k.starts_with('.') || !k.contains('.') {
            bail!("linux.resources.unified: {k:?} is not a cgroup file name");
        }
        let prefix = k.split('.').next().unwrap_or("");
        let controller: &'static str = match prefix {
            "cgroup" => "",
            "memory" => "memory",
            "cpu" => "cpu",
            "cpuset" => "cpuset",
            "io" => "io",
            "pids" => "pids",
            "hugetlb" => "hugetlb",
            "rdma" => "rdma",
            "misc" => "misc",
            _ => bail!("linux.resources.unified: {k:?}: unknown controller {prefix:?}"),
        };
        put(controller, k, v.clone(), "linux.resources.unified");
    }
    // With BFQ the same weights go to io.bfq.weight unconverted (blkio's 1..1000), in the
    // order the io.weight writes were planned.
    if let Some(b) = r.block_io() {
        let bfq = b
            .weight()
            .filter(|w| *w != 0)
            .map(|wt| format!("default {wt}"))
            .into_iter()
            .chain(b.weight_device().iter().flatten().filter_map(|d| {
                d.weight()
                    .filter(|w| *w != 0)
                    .map(|wt| format!("{}:{} {wt}", d.major(), d.minor()))
            }));
        for (wr, v) in w.iter_mut().filter(|x| x.file == "io.weight").zip(bfq) {
            wr.bfq_value = Some(v);
        }
    }
    for wr in w.iter_mut() {
        wr.v1 = v1_equivalent(wr, r);
    }
    w.extend(v1_only);
    Ok(w)
}

/// The v1 files for a planned v2 write (v1 uses -1 for "no limit" and counts memory+swap in
/// memsw, like the spec).
fn v1_equivalent(w: &Write, r: &LinuxResources) -> Option<Vec<(String, String)>> {
    let one = |f: &str, v: String| Some(vec![(f.to_string(), v)]);
    let v1num = |v: &str| {
        if v == "max" {
            "-1".to_string()
        } else {
            v.to_string()
        }
    };
    let mem = r.memory().as_ref();
    let cpu = r.cpu().as_ref();
    match w.file.as_str() {
        "memory.max" => one("memory.limit_in_bytes", v1num(&w.value)),
        "memory.low" => one("memory.soft_limit_in_bytes", v1num(&w.value)),
        "memory.swap.max" => one("memory.memsw.limit_in_bytes", mem?.swap()?.to_string()),
        "cpu.weight" => one("cpu.shares", cpu?.shares()?.to_string()),
        "cpu.max" => Some(vec![
            (
                "cpu.cfs_period_us".into(),
                cpu?.period()
                    .filter(|p| *p != 0)
                    .unwrap_or(100_000)
                    .to_string(),
            ),
            (
                "cpu.cfs_quota_us".into(),
                cpu?.quota().filter(|q| *q != 0).unwrap_or(-1).to_string(),
            ),
        ]),
        "cpu.max.burst" => one("cpu.cfs_burst_us", w.value.clone()),
        "cpuset.cpus" | "cpuset.mems" | "pids.max" | "rdma.max" => one(
            &w.file,
            if w.file == "pids.max" {
                v1num(&w.value)
            } else {
                w.value.clone()
            },
        ),
        "io.weight" => {
            let raw = w.bfq_value.as_deref()?;
            match raw.strip_prefix("default ") {
                Some(n) => one("blkio.weight", n.to_string()),
                None => one("blkio.weight_device", raw.to_string()),
            }
        }
        "io.max" => {
            let (dev, kv) = w.value.split_once(' ')?;
            let (key, rate) = kv.split_once('=')?;
            let file = match key {
                "rbps" => "blkio.throttle.read_bps_device",
                "wbps" => "blkio.throttle.write_bps_device",
                "riops" => "blkio.throttle.read_iops_device",
                "wiops" => "blkio.throttle.write_iops_device",
                _ => return None,
            };
            one(
                file,
                format!("{dev} {}", if rate == "max" { "0" } else { rate }),
            )
        }
        f => {
            let size = f.strip_prefix("hugetlb.")?.strip_suffix(".max")?;
            one(&format!("hugetlb.{size}.limit_in_bytes"), v1num(&w.value))
        }
    }
}

/// The writes cgroup v2 at `mount` can take (its controllers), and those it can't.
pub fn split<'a>(mount: Option<&Path>, writes: &'a [Write]) -> (Vec<&'a Write>, Vec<&'a Write>) {
    let offered = mount
        .and_then(|m| std::fs::read_to_string(m.join("cgroup.controllers")).ok())
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
    let have = std::fs::read_to_string(
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
        if file == "io.weight" && dir.join("io.bfq.weight").exists() {
            file = "io.bfq.weight".into();
            value = w.bfq_value.clone().unwrap_or(value);
        }
        let path = dir.join(&file);
        std::fs::write(&path, &value).map_err(|e| {
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
            if rsvd.exists() {
                std::fs::write(&rsvd, &value).map_err(|e| {
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
