//! `linux.resources` checked and translated into cgroup v2 file writes (each with its v1
//! equivalent, for hosts that have v1 hierarchies), before anything is written.

use anyhow::{Result, bail};
use oci_spec::runtime::LinuxResources;

use super::Write;

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
    let mut p = Planner::default();
    if let Some(m) = r.memory() {
        p.memory(m)?;
    }
    if let Some(c) = r.cpu() {
        p.cpu(c);
    }
    if let Some(l) = r.pids().map(|p| p.limit()).filter(|l| *l != 0) {
        p.put("pids", "pids.max", max_or(l), "linux.resources.pids.limit");
    }
    if let Some(b) = r.block_io() {
        p.block_io(b);
    }
    p.hugepages_and_rdma(r)?;
    if let Some(n) = r.network() {
        p.network(n)?;
    }
    p.unified(r)?;
    let mut w = p.writes;
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
    w.extend(p.v1_only);
    Ok(w)
}

/// The writes planned so far: v2 files (each with its v1 equivalent, filled in at the end),
/// and the limits with no cgroup v2 file, which only a v1 hierarchy can take.
#[derive(Default)]
struct Planner {
    writes: Vec<Write>,
    v1_only: Vec<Write>,
}

impl Planner {
    fn put(&mut self, controller: &'static str, file: &str, value: String, field: &'static str) {
        self.writes.push(Write {
            controller,
            file: file.to_string(),
            value,
            field,
            bfq_value: None,
            v1: None,
            v2_missing: None,
        })
    }

    fn only_v1(
        &mut self,
        controller: &'static str,
        files: Vec<(&str, String)>,
        field: &'static str,
        why: &'static str,
    ) {
        self.v1_only.push(Write {
            controller,
            file: String::new(),
            value: String::new(),
            field,
            bfq_value: None,
            v1: Some(files.into_iter().map(|(f, v)| (f.to_string(), v)).collect()),
            v2_missing: Some(why),
        })
    }

    fn memory(&mut self, m: &oci_spec::runtime::LinuxMemory) -> Result<()> {
        if let Some(l) = m.limit().filter(|l| *l != 0) {
            self.put(
                "memory",
                "memory.max",
                max_or(l),
                "linux.resources.memory.limit",
            );
        }
        if let Some(l) = m.reservation().filter(|l| *l != 0) {
            self.put(
                "memory",
                "memory.low",
                max_or(l),
                "linux.resources.memory.reservation",
            );
        }
        if let Some(s) = m.swap().filter(|s| *s != 0) {
            self.put(
                "memory",
                "memory.swap.max",
                swap_max(s, m.limit())?,
                "linux.resources.memory.swap",
            );
        }
        // A kernel that dropped kmem (5.16 deprecated it) has no such file: the write's error
        // names it.
        if let Some(k) = m.kernel().filter(|k| *k != 0) {
            self.only_v1(
                "memory",
                vec![("memory.kmem.limit_in_bytes", k.to_string())],
                "linux.resources.memory.kernel",
                "cgroup v2 has no kernel memory limit",
            );
        }
        if let Some(k) = m.kernel_tcp().filter(|k| *k != 0) {
            self.only_v1(
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
            self.only_v1(
                "memory",
                vec![("memory.swappiness", s.to_string())],
                "linux.resources.memory.swappiness",
                "cgroup v2 has no per-cgroup swappiness",
            );
        }
        if m.disable_oom_killer() == Some(true) {
            self.only_v1(
                "memory",
                vec![("memory.oom_control", "1".to_string())],
                "linux.resources.memory.disableOOMKiller",
                "cgroup v2 can't disable the OOM killer",
            );
        }
        Ok(())
    }

    fn cpu(&mut self, c: &oci_spec::runtime::LinuxCpu) {
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            self.put(
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
            self.put(
                "cpu",
                "cpu.max",
                format!("{q} {}", period.unwrap_or(100_000)),
                "linux.resources.cpu.quota",
            );
        }
        if let Some(b) = c.burst() {
            self.put(
                "cpu",
                "cpu.max.burst",
                b.to_string(),
                "linux.resources.cpu.burst",
            );
        }
        if let Some(i) = c.idle() {
            self.put("cpu", "cpu.idle", i.to_string(), "linux.resources.cpu.idle");
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
            self.only_v1(
                "cpu",
                rt,
                "linux.resources.cpu.realtimeRuntime",
                "cgroup v2 has no realtime CPU limits",
            );
        }
        if let Some(s) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            self.put(
                "cpuset",
                "cpuset.cpus",
                s.to_string(),
                "linux.resources.cpu.cpus",
            );
        }
        if let Some(s) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            self.put(
                "cpuset",
                "cpuset.mems",
                s.to_string(),
                "linux.resources.cpu.mems",
            );
        }
    }

    fn block_io(&mut self, b: &oci_spec::runtime::LinuxBlockIo) {
        if let Some(wt) = b.weight().filter(|w| *w != 0) {
            self.put(
                "io",
                "io.weight",
                format!("default {}", blkio_to_io_weight(wt)),
                "linux.resources.blockIO.weight",
            );
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(wt) = d.weight().filter(|w| *w != 0) {
                self.put(
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
                self.put(
                    "io",
                    "io.max",
                    format!("{}:{} {key}={rate}", d.major(), d.minor()),
                    field,
                );
            }
        }
    }

    fn hugepages_and_rdma(&mut self, r: &LinuxResources) -> Result<()> {
        for h in r.hugepage_limits().iter().flatten() {
            let size = h.page_size();
            if size.is_empty() || !size.chars().all(|c| c.is_ascii_alphanumeric()) {
                bail!("linux.resources.hugepageLimits: bad pageSize {size:?}");
            }
            self.put(
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
            self.put("rdma", "rdma.max", v, "linux.resources.rdma");
        }
        Ok(())
    }

    fn network(&mut self, n: &oci_spec::runtime::LinuxNetwork) -> Result<()> {
        if let Some(id) = n.class_id() {
            self.only_v1(
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
            self.only_v1(
                "net_prio",
                prios,
                "linux.resources.network.priorities",
                "cgroup v2 has no net_prio",
            );
        }
        Ok(())
    }

    fn unified(&mut self, r: &LinuxResources) -> Result<()> {
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
            self.put(controller, k, v.clone(), "linux.resources.unified");
        }
        Ok(())
    }
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
