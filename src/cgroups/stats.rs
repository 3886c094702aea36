//! A running container's resource usage, shaped like runc's `events --stats` data, and its
//! OOM count: read from cgroup v2's files where the container's v2 cgroup has them, else from
//! the v1 controllers'.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// A running container's cgroups: v2 (mount and path in it) and v1 directories.
pub struct Cgroups {
    pub v2: Option<(PathBuf, String)>,
    pub v1: Vec<PathBuf>,
}

impl Cgroups {
    pub fn v2_dir(&self) -> Option<PathBuf> {
        self.v2
            .as_ref()
            .map(|(m, rel)| m.join(rel.trim_start_matches('/')))
    }

    /// `v2` in the v2 cgroup if it exists there, else `v1` in the v1 hierarchy of `controller`.
    pub fn file(&self, v2: &str, controller: &str, v1: &str) -> Option<PathBuf> {
        self.v2_dir()
            .map(|d| d.join(v2))
            .filter(|p| p.exists())
            .or_else(|| self.v1_file(controller, v1))
    }

    pub fn v1_file(&self, controller: &str, name: &str) -> Option<PathBuf> {
        crate::cgroups::v1::dir_for(&self.v1, controller)
            .map(|d| d.join(name))
            .filter(|p| p.exists())
    }
}

pub fn read_u64(p: &Path) -> Option<u64> {
    crate::sys::read_to_string(p).ok()?.trim().parse().ok()
}

pub fn read_limit(p: &Path) -> Option<u64> {
    match crate::sys::read_to_string(p).ok()?.trim() {
        "max" => Some(u64::MAX),
        v => v.parse().ok(),
    }
}

/// "key value" lines (cpu.stat, memory.stat, memory.events) as a map.
fn flat(p: &Path) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    for l in crate::sys::read_to_string(p).unwrap_or_default().lines() {
        if let Some((k, v)) = l.split_once(' ')
            && let Ok(n) = v.trim().parse::<u64>()
        {
            m.insert(k.to_string(), json!(n));
        }
    }
    m
}

/// One stats sample, shaped like runc's `events --stats` data: from cgroup v2's files where
/// the container's v2 cgroup has them, else from the v1 controllers' files. Built as one JSON
/// literal, so its shape can be checked against runc's at a glance.
pub fn stats(cg: &Cgroups) -> Value {
    let n =
        |m: &serde_json::Map<String, Value>, k: &str| m.get(k).and_then(Value::as_u64).unwrap_or(0);
    let u = |p: Option<PathBuf>| p.and_then(|p| read_u64(&p)).unwrap_or(0);
    let lim = |p: Option<PathBuf>| p.and_then(|p| read_limit(&p)).unwrap_or(u64::MAX);
    let v2 = cg.v2_dir().filter(|d| d.join("cgroup.procs").exists());
    let v2_file = |name: &str| v2.as_ref().map(|d| d.join(name)).filter(|p| p.exists());

    let cpu_v2 = v2_file("cpu.stat").map(|p| flat(&p)).unwrap_or_default();
    let cpu_v1 = cg
        .v1_file("cpu", "cpu.stat")
        .map(|p| flat(&p))
        .unwrap_or_default();
    let cpu = if cpu_v2.contains_key("usage_usec") {
        json!({"total": n(&cpu_v2, "usage_usec") * 1000,
               "kernel": n(&cpu_v2, "system_usec") * 1000,
               "user": n(&cpu_v2, "user_usec") * 1000})
    } else {
        // cpuacct.stat counts clock ticks.
        let ticks = cg
            .v1_file("cpuacct", "cpuacct.stat")
            .map(|p| flat(&p))
            .unwrap_or_default();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let ns = |k: &str| n(&ticks, k) * (1_000_000_000 / hz);
        json!({"total": u(cg.v1_file("cpuacct", "cpuacct.usage")),
               "kernel": ns("system"), "user": ns("user")})
    };
    let throttling = if cpu_v2.contains_key("nr_periods") {
        json!({"periods": n(&cpu_v2, "nr_periods"),
               "throttledPeriods": n(&cpu_v2, "nr_throttled"),
               "throttledTime": n(&cpu_v2, "throttled_usec") * 1000})
    } else {
        json!({"periods": n(&cpu_v1, "nr_periods"),
               "throttledPeriods": n(&cpu_v1, "nr_throttled"),
               "throttledTime": n(&cpu_v1, "throttled_time")})
    };

    let memory = if v2_file("memory.current").is_some() {
        let mem = v2_file("memory.stat").map(|p| flat(&p)).unwrap_or_default();
        let events = v2_file("memory.events")
            .map(|p| flat(&p))
            .unwrap_or_default();
        json!({
            "usage": {"usage": u(v2_file("memory.current")), "max": u(v2_file("memory.peak")),
                      "limit": lim(v2_file("memory.max")), "failcnt": n(&events, "max")},
            "swap": {"usage": u(v2_file("memory.swap.current")),
                     "limit": lim(v2_file("memory.swap.max"))},
            "cache": n(&mem, "file"),
            "raw": Value::Object(mem),
        })
    } else {
        let f = |name: &str| cg.v1_file("memory", name);
        let mem = f("memory.stat").map(|p| flat(&p)).unwrap_or_default();
        json!({
            "usage": {"usage": u(f("memory.usage_in_bytes")), "max": u(f("memory.max_usage_in_bytes")),
                      "limit": lim(f("memory.limit_in_bytes")), "failcnt": u(f("memory.failcnt"))},
            "swap": {"usage": u(f("memory.memsw.usage_in_bytes")),
                     "limit": lim(f("memory.memsw.limit_in_bytes"))},
            "cache": n(&mem, "cache"),
            "raw": Value::Object(mem),
        })
    };

    let mut hugetlb = serde_json::Map::new();
    if let Some(d) = &v2 {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(size) = name
                .strip_prefix("hugetlb.")
                .and_then(|s| s.strip_suffix(".current"))
            {
                hugetlb.insert(
                    size.to_string(),
                    json!({
                    "usage": read_u64(&e.path()).unwrap_or(0),
                    "max": read_u64(&d.join(format!("hugetlb.{size}.max"))).unwrap_or(0),
                    "failcnt": n(&flat(&d.join(format!("hugetlb.{size}.events"))), "max")}),
                );
            }
        }
    }
    if hugetlb.is_empty()
        && let Some(d) = crate::cgroups::v1::dir_for(&cg.v1, "hugetlb")
    {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(size) = name
                .strip_prefix("hugetlb.")
                .and_then(|s| s.strip_suffix(".usage_in_bytes"))
            {
                hugetlb.insert(size.to_string(), json!({
                    "usage": read_u64(&e.path()).unwrap_or(0),
                    "max": read_u64(&d.join(format!("hugetlb.{size}.max_usage_in_bytes"))).unwrap_or(0),
                    "failcnt": read_u64(&d.join(format!("hugetlb.{size}.failcnt"))).unwrap_or(0)}));
            }
        }
    }
    let pids_limit = lim(cg.file("pids.max", "pids", "pids.max"));
    json!({
        "cpu": {"usage": cpu, "throttling": throttling},
        "memory": memory,
        "pids": {
            "current": u(cg.file("pids.current", "pids", "pids.current")),
            "limit": if pids_limit == u64::MAX { 0 } else { pids_limit },
        },
        "blkio": blkio(cg, v2.as_deref()),
        "hugetlb": Value::Object(hugetlb),
    })
}

/// Block I/O per device, shaped like runc's: from io.stat on v2, else from v1 blkio's
/// throttle counters (which count every bio the cgroup issued).
fn blkio(cg: &Cgroups, v2: Option<&Path>) -> Value {
    let entry = |dev: &str, op: &str, value: u64| -> Option<Value> {
        let (major, minor) = dev.split_once(':')?;
        Some(
            json!({"major": major.parse::<u64>().ok()?, "minor": minor.parse::<u64>().ok()?,
                    "op": op, "value": value}),
        )
    };
    let (mut bytes, mut ios) = (Vec::new(), Vec::new());
    if let Some(text) = v2.and_then(|d| crate::sys::read_to_string(d.join("io.stat")).ok()) {
        for l in text.lines() {
            let mut f = l.split_whitespace();
            let Some(dev) = f.next() else { continue };
            for kv in f {
                let Some((k, v)) = kv.split_once('=') else {
                    continue;
                };
                let Ok(v) = v.parse::<u64>() else { continue };
                let (list, op) = match k {
                    "rbytes" => (&mut bytes, "Read"),
                    "wbytes" => (&mut bytes, "Write"),
                    "rios" => (&mut ios, "Read"),
                    "wios" => (&mut ios, "Write"),
                    _ => continue,
                };
                list.extend(entry(dev, op, v));
            }
        }
    } else {
        for (file, list) in [
            ("blkio.throttle.io_service_bytes_recursive", &mut bytes),
            ("blkio.throttle.io_serviced_recursive", &mut ios),
        ] {
            let text = cg
                .v1_file("blkio", file)
                .and_then(|p| crate::sys::read_to_string(p).ok())
                .unwrap_or_default();
            for l in text.lines() {
                // "8:0 Read 4096"; the last line is an unattributed "Total N".
                if let [dev, op, v] = l.split_whitespace().collect::<Vec<_>>()[..]
                    && let Ok(v) = v.parse()
                {
                    list.extend(entry(dev, op, v));
                }
            }
        }
    }
    json!({"ioServiceBytesRecursive": bytes, "ioServicedRecursive": ios})
}

/// OOMs so far: memory.events' oom count on v2, memory.oom_control's oom_kill on v1.
pub fn oom_kills(cg: &Cgroups) -> u64 {
    let key = |p: Option<PathBuf>, k: &str| p.and_then(|p| flat(&p).get(k).and_then(Value::as_u64));
    key(
        cg.v2_dir()
            .map(|d| d.join("memory.events"))
            .filter(|p| p.exists()),
        "oom",
    )
    .or_else(|| key(cg.v1_file("memory", "memory.oom_control"), "oom_kill"))
    .unwrap_or(0)
}

/// The `oom` count of memory.events, read through an fd held open on it (None once the cgroup
/// is gone).
pub fn read_oom(fd: &std::os::fd::OwnedFd) -> Option<u64> {
    let mut buf = [0u8; 512];
    // SAFETY: pread into a buffer we own, of its length.
    let n = unsafe {
        libc::pread(
            std::os::fd::AsRawFd::as_raw_fd(fd),
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
        )
    };
    let text = std::str::from_utf8(buf.get(..usize::try_from(n).ok()?)?).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("oom "))
        .and_then(|v| v.trim().parse().ok())
}
