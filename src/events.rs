//! `rt update` (change a running container's limits) and `rt events` (its resource usage and
//! OOM events, in runc's JSON shapes, read from the cgroup v2 files).

use anyhow::{Context, Result, bail};
use oci_spec::runtime::LinuxResources;
use serde_json::{Value, json};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// A running container's cgroups: v2 (mount and path in it) and v1 directories.
struct Cgroups {
    v2: Option<(PathBuf, String)>,
    v1: Vec<PathBuf>,
}

impl Cgroups {
    fn v2_dir(&self) -> Option<PathBuf> {
        self.v2
            .as_ref()
            .map(|(m, rel)| m.join(rel.trim_start_matches('/')))
    }

    /// `v2` in the v2 cgroup if it exists there, else `v1` in the v1 hierarchy of `controller`.
    fn file(&self, v2: &str, controller: &str, v1: &str) -> Option<PathBuf> {
        self.v2_dir()
            .map(|d| d.join(v2))
            .filter(|p| p.exists())
            .or_else(|| self.v1_file(controller, v1))
    }

    fn v1_file(&self, controller: &str, name: &str) -> Option<PathBuf> {
        crate::cgroupv1::dir_for(&self.v1, controller)
            .map(|d| d.join(name))
            .filter(|p| p.exists())
    }
}

/// The container (locked, for `update`) and its cgroups.
fn container_cgroup(root: &Path, id: &str) -> Result<(Dir, State, Cgroups)> {
    let dir = Dir::open(root, id)?;
    let st = dir.load()?;
    let cg = cgroups_of(&dir.path, &st)?;
    Ok((dir, st, cg))
}

/// The cgroups of a running container.
fn cgroups_of(dir: &Path, st: &State) -> Result<Cgroups> {
    if st.status(dir) == Status::Stopped {
        bail!("container not running");
    }
    let v2 = match (&st.cgroup, crate::cgroups::v2_mount()) {
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
    let (dir, st, cgs) = container_cgroup(root, id)?;
    fill_from_current(&mut v, cgs.v2_dir().as_deref(), &st.cgroup_v1);
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
        let used = cgs
            .file("memory.current", "memory", "memory.usage_in_bytes")
            .and_then(|p: PathBuf| read_u64(&p))
            .unwrap_or(0);
        if used > l as u64 {
            bail!("linux.resources.memory.limit {l} is below the container's current usage {used}");
        }
    }
    let (on_v2, on_v1) =
        crate::resources::split(cgs.v2.as_ref().map(|(m, _)| m.as_path()), &writes);
    if let Some(unit) = &st.systemd_unit {
        // systemd owns the ancestors (their controllers are its business) and re-applies a
        // unit's properties on reload: the new limits go to both.
        crate::systemd::set_resources(unit, st.systemd_user, &r)?;
        if let Some((mount, rel)) = cgs.v2.as_ref() {
            crate::resources::write_files(mount, rel, &on_v2)?;
        }
    } else if !on_v2.is_empty() {
        let (mount, rel) = cgs.v2.as_ref().context("container has no cgroup v2")?;
        crate::cgroups::enable_controllers(mount, rel, false);
        crate::resources::apply(mount, rel, &on_v2, false)?;
    }
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
        let mounts = crate::cgroupv1::mounts();
        let d = st
            .cgroup_v1
            .iter()
            .find(|d| {
                mounts
                    .get(crate::cgroupv1::v1_name(w.controller))
                    .is_some_and(|m| d.starts_with(m))
            })
            .with_context(|| {
                format!(
                    "{}: the {} controller is only on cgroup v1 here, and the container has no v1 {} cgroup",
                    w.field, w.controller, w.controller
                )
            })?;
        for (file, value) in crate::cgroupv1::translate(w)? {
            crate::cgroupv1::write(d, &file, &value, w.field)?;
        }
    }
    drop(dir);
    Ok(())
}

/// Fields whose files pair up (quota with period, memory+swap with memory): when an update
/// gives one, the other keeps its current value, as runc's merge with the saved config does.
fn fill_from_current(v: &mut Value, cg: Option<&Path>, v1: &[PathBuf]) {
    // Without a v2 cgroup every read falls back to v1.
    let v2_file = |name: &str| cg.map(|c| c.join(name)).unwrap_or_default();
    let v1_file = |name: &str| v1.iter().map(|d| d.join(name)).find(|p| p.exists());
    let read_i64 = |p: &Path| -> Option<i64> {
        match std::fs::read_to_string(p).ok()?.trim() {
            "max" | "-1" => Some(-1),
            s => s.parse().ok(),
        }
    };
    if let Some(cpu) = v.get_mut("cpu").and_then(Value::as_object_mut) {
        let (quota, period) = match std::fs::read_to_string(v2_file("cpu.max")) {
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

/// One stats sample, shaped like runc's `events --stats` data: from cgroup v2's files where
/// the container's v2 cgroup has them, else from the v1 controllers' files.
fn stats(cg: &Cgroups) -> Value {
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
        && let Some(d) = crate::cgroupv1::dir_for(&cg.v1, "hugetlb")
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
    if let Some(text) = v2.and_then(|d| std::fs::read_to_string(d.join("io.stat")).ok()) {
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
                .and_then(|p| std::fs::read_to_string(p).ok())
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
fn oom_kills(cg: &Cgroups) -> u64 {
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

/// `events`: one stats event with `--stats`; otherwise a stats event every `interval` and an
/// `oom` event whenever memory.events' oom count grows, until the container stops.
pub fn events(root: &Path, id: &str, once: bool, interval: Duration) -> Result<()> {
    // Read-only: never waits on the container's lock (see state::snapshot).
    let (dir, st) = crate::state::snapshot(root, id)?;
    let cg = cgroups_of(&dir, &st)?;
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
    // memory.events, held open: the kernel wakes a poll on it when a counter changes, and it
    // is read through this fd at once. A container that an OOM kill ended may lose its cgroup
    // within milliseconds (systemd removes an empty unit's), so a sleep-and-reread could miss it.
    let watch = cg
        .v2_dir()
        .and_then(|d| crate::sys::open(&d.join("memory.events"), libc::O_RDONLY, 0).ok());
    let mut last_seen = 0;
    let mut oom_count = || match &watch {
        Some(fd) => {
            if let Some(n) = read_oom(fd) {
                last_seen = n;
            }
            last_seen
        }
        None => oom_kills(&cg),
    };
    let mut ooms = oom_count();
    let mut next = std::time::Instant::now();
    loop {
        let alive = crate::state::snapshot(root, id)
            .map(|(d, s)| s.status(&d) != Status::Stopped)
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
        let wait = Duration::from_millis(100).min(interval);
        match &watch {
            Some(fd) => {
                let mut p = libc::pollfd {
                    fd: std::os::fd::AsRawFd::as_raw_fd(fd),
                    events: libc::POLLPRI,
                    revents: 0,
                };
                // SAFETY: one valid pollfd. A wake-up is re-armed by the read in read_oom.
                unsafe { libc::poll(&mut p, 1, wait.as_millis() as i32) };
                if p.revents & libc::POLLPRI != 0 {
                    let n = oom_count();
                    if n > ooms {
                        ooms = n;
                        emit(&mut out, json!({"type": "oom", "id": id}))?;
                    }
                }
            }
            None => std::thread::sleep(wait),
        }
    }
}

/// The `oom` count of memory.events, read through an fd held open on it (None once the cgroup
/// is gone).
fn read_oom(fd: &std::os::fd::OwnedFd) -> Option<u64> {
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
