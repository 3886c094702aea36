//! The systemd cgroup driver (`--systemd-cgroup`): on hosts where systemd is PID 1 it owns the
//! cgroup tree, so the container's cgroup is a transient unit that systemd makes for us
//! (`StartTransientUnit` over D-Bus: a scope with `Delegate=yes` holding the init), with the
//! limits systemd can express as unit properties (so a `daemon-reload` keeps them). What it
//! can't express is written into the scope's cgroup files by `resources`, as with cgroupfs.
//! Everything after create (ps, kill --all, events, pause, exec) works on the scope's cgroup
//! directory; `update` also sets the unit's properties, and delete stops the unit.
//!
//! D-Bus goes through `dbus`, rt's own small client (why not a library: see there): one
//! blocking socket, no threads.

pub mod dbus;

use crate::cgroups::systemd::dbus::Value;
use anyhow::{Context, Result, bail};
use oci_spec::runtime::LinuxResources;
use std::collections::HashMap;
use std::time::Duration;

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// How long systemd may take to run a start or stop job (runc waits as long).
const JOB_TIMEOUT: Duration = Duration::from_secs(30);
/// `USEC_INFINITY` / `CGROUP_LIMIT_MAX`: systemd's "no limit".
const INFINITY: u64 = u64::MAX;

/// `linux.cgroupsPath` under the systemd driver: `slice:prefix:name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupsPath {
    pub slice: String,
    pub prefix: String,
    pub name: String,
}

impl CgroupsPath {
    /// runc's rules: empty means `<default slice>:rt:<id>`; an empty slice is the default one
    /// (system.slice for root, user.slice for a user's manager).
    pub fn parse(path: Option<&str>, id: &str, user: bool) -> Result<CgroupsPath> {
        let default_slice = if user { "user.slice" } else { "system.slice" };
        let path = path.unwrap_or("");
        if path.is_empty() {
            // An id may hold '+', which unit names can't: escaped as systemd-escape does.
            let name = id
                .chars()
                .map(|c| match c {
                    c if unit_char(c) && c != '\\' => c.to_string(),
                    c => format!("\\x{:02x}", c as u32),
                })
                .collect();
            return Ok(CgroupsPath {
                slice: default_slice.into(),
                prefix: "rt".into(),
                name,
            });
        }
        let parts: Vec<&str> = path.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            bail!(
                "config.json: linux.cgroupsPath {path:?}: the systemd cgroup driver wants slice:prefix:name (e.g. system.slice:rt:{id})"
            );
        };
        let bad = |what: &str| anyhow::anyhow!("config.json: linux.cgroupsPath {path:?}: {what}");
        if name.is_empty() {
            return Err(bad("the name (after the second ':') is empty"));
        }
        for (part, what) in [(prefix, "prefix"), (name, "name")] {
            if !part.chars().all(unit_char) {
                return Err(bad(&format!(
                    "the {what} {part:?} may only hold letters, digits and :_.\\-"
                )));
            }
        }
        let slice = if slice.is_empty() {
            default_slice
        } else {
            slice
        };
        expand_slice(slice).map_err(|e| bad(&format!("{e:#}")))?;
        if name.ends_with(".slice") {
            expand_slice(name).map_err(|e| bad(&format!("{e:#}")))?;
        }
        Ok(CgroupsPath {
            slice: slice.into(),
            prefix: prefix.into(),
            name: name.into(),
        })
    }

    /// The unit rt asks for: a scope `prefix-name.scope`, or the slice itself when the name
    /// is one (runc's convention).
    pub fn unit(&self) -> String {
        if self.name.ends_with(".slice") {
            self.name.clone()
        } else if self.prefix.is_empty() {
            format!("{}.scope", self.name)
        } else {
            format!("{}-{}.scope", self.prefix, self.name)
        }
    }
}

/// The characters systemd accepts in a unit name.
fn unit_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || ":-_.\\".contains(c)
}

/// Whether a cgroupfs-driver cgroupsPath is really meant for systemd (`system.slice:x:y`):
/// such a path would otherwise become a directory with colons in its name.
pub fn looks_like_systemd_path(p: &str) -> bool {
    let parts: Vec<&str> = p.split(':').collect();
    parts.len() == 3 && !p.contains('/') && (parts[0].is_empty() || parts[0].ends_with(".slice"))
}

/// A slice's cgroup path: `a-b.slice` nests as `/a.slice/a-b.slice`; `-.slice` is the root.
pub fn expand_slice(slice: &str) -> Result<String> {
    let bad = || anyhow::anyhow!("{slice:?} is not a valid slice name");
    let stem = slice.strip_suffix(".slice").ok_or_else(bad)?;
    if stem.is_empty() || slice.contains('/') || !slice.chars().all(unit_char) {
        return Err(bad());
    }
    if stem == "-" {
        return Ok("/".into());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        if part.is_empty() {
            return Err(bad());
        }
        path.push('/');
        path.push_str(&prefix);
        path.push_str(part);
        path.push_str(".slice");
        prefix.push_str(part);
        prefix.push('-');
    }
    Ok(path)
}

/// One unit property, as StartTransientUnit and SetUnitProperties take it.
pub type Property = (String, Value);

fn prop(name: &str, v: impl Into<Value>) -> Property {
    (name.to_string(), v.into())
}

/// A limit in bytes or a count: negative means none.
fn limit(v: i64) -> u64 {
    if v < 0 { INFINITY } else { v as u64 }
}

/// The unit properties for `linux.resources`: what systemd manages itself. Values were
/// checked by `resources::plan` already; a write of the same value into the cgroup file
/// follows, so a property systemd doesn't know never loses a limit.
pub fn resource_properties(r: &LinuxResources) -> Result<Vec<Property>> {
    let mut p = Vec::new();
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit().filter(|l| *l != 0) {
            p.push(prop("MemoryMax", limit(l)));
        }
        if let Some(l) = m.reservation().filter(|l| *l != 0) {
            p.push(prop("MemoryLow", limit(l)));
        }
        if let Some(s) = m.swap().filter(|s| *s != 0) {
            // The spec counts memory+swap; systemd (like cgroup v2) swap alone.
            let swap = match (s, m.limit()) {
                (s, _) if s < 0 => INFINITY,
                (s, Some(l)) if l > 0 && s >= l => (s - l) as u64,
                _ => bail!("linux.resources.memory.swap needs a memory.limit not above it"),
            };
            p.push(prop("MemorySwapMax", swap));
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            p.push(prop(
                "CPUWeight",
                crate::cgroups::resources::shares_to_weight(s),
            ));
        }
        let period = c.period().filter(|p| *p != 0);
        if let Some(q) = c.quota().filter(|q| *q != 0) {
            // systemd keeps a quota per second in whole percents: round up to the next 10 ms,
            // as runc does, so the cgroup's own quota stays reachable below it.
            let per_sec = if q < 0 {
                INFINITY
            } else {
                let v = (q as u64).saturating_mul(1_000_000) / period.unwrap_or(100_000);
                v.div_ceil(10_000) * 10_000
            };
            p.push(prop("CPUQuotaPerSecUSec", per_sec));
        }
        if let Some(period) = period {
            p.push(prop("CPUQuotaPeriodUSec", period));
        }
        if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.trim().is_empty()) {
            p.push(prop(
                "AllowedCPUs",
                list_to_mask(cpus).context("linux.resources.cpu.cpus")?,
            ));
        }
        if let Some(mems) = c.mems().as_deref().filter(|s| !s.trim().is_empty()) {
            p.push(prop(
                "AllowedMemoryNodes",
                list_to_mask(mems).context("linux.resources.cpu.mems")?,
            ));
        }
    }
    if let Some(l) = r.pids().as_ref().map(|p| p.limit()).filter(|l| *l != 0) {
        p.push(prop("TasksMax", limit(l)));
    }
    if let Some(w) = r.block_io().as_ref().and_then(|b| b.weight()) {
        let w = crate::cgroups::resources::blkio_to_io_weight(w);
        if w != 0 {
            p.push(prop("IOWeight", w));
        }
    }
    // The unified keys systemd has properties for; the rest are only files.
    for (key, value) in r.unified().iter().flatten() {
        let name = match key.as_str() {
            "memory.min" => "MemoryMin",
            "memory.low" => "MemoryLow",
            "memory.high" => "MemoryHigh",
            "memory.max" => "MemoryMax",
            "memory.swap.max" => "MemorySwapMax",
            "pids.max" => "TasksMax",
            _ => continue,
        };
        let v = match value.trim() {
            "max" => INFINITY,
            v => v.parse().with_context(|| {
                format!("linux.resources.unified.{key}: {value:?} is not a number or \"max\"")
            })?,
        };
        p.retain(|(n, _)| n != name);
        p.push(prop(name, v));
    }
    Ok(p)
}

/// The device rules as systemd's DevicePolicy=strict and DeviceAllow, so systemd's own view of
/// the unit matches rt's eBPF filter (attached to the scope as well). The allow list is the one
/// the rules leave in order (as for the v1 controller); a list systemd can't write (`c *:5`, a
/// major /proc/devices has no name for) gives no device properties at all: rt's filter then
/// rules alone, never a systemd policy that would deny what the config allows.
pub fn device_properties(rules: &[crate::cgroups::devices::Rule]) -> Vec<Property> {
    let (lines, _) = crate::cgroups::v1::device_lines(rules);
    let groups = std::fs::read_to_string("/proc/devices").unwrap_or_default();
    let mut allow: Vec<(String, String)> = Vec::new();
    for (file, line) in &lines {
        if *file != "devices.allow" {
            continue;
        }
        // "c 1:3 rwm", "c 136:* rwm", "b *:* m"
        let mut f = line.split_whitespace();
        let (Some(typ), Some(nums), Some(access)) = (f.next(), f.next(), f.next()) else {
            return Vec::new();
        };
        let kind = if typ == "b" { "block" } else { "char" };
        let path = match nums.split_once(':') {
            Some(("*", "*")) => format!("{kind}-*"),
            Some(("*", _)) | None => return Vec::new(),
            Some((major, "*")) => match device_group(&groups, kind, major) {
                Some(g) => format!("{kind}-{g}"),
                None => return Vec::new(),
            },
            Some((major, minor)) => format!("/dev/{kind}/{major}:{minor}"),
        };
        allow.push((path, access.to_string()));
    }
    vec![
        prop("DevicePolicy", "strict"),
        ("DeviceAllow".to_string(), Value::from(allow)),
    ]
}

/// The name /proc/devices gives a major number of a kind ("136" → "pts" for char).
fn device_group<'a>(proc_devices: &'a str, kind: &str, major: &str) -> Option<&'a str> {
    let header = if kind == "block" {
        "Block devices:"
    } else {
        "Character devices:"
    };
    proc_devices
        .split("\n\n")
        .find(|section| section.trim_start().starts_with(header))?
        .lines()
        .skip(1)
        .find_map(|l| {
            let (n, name) = l.trim().split_once(' ')?;
            (n == major).then_some(name.trim())
        })
}

/// "0-2,7" → systemd's CPU/NUMA mask: byte i, bit j is number 8i+j.
fn list_to_mask(list: &str) -> Result<Vec<u8>> {
    let mut mask = Vec::new();
    for part in list.trim().split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let bad = || anyhow::anyhow!("{list:?} is not a list like 0-3,5");
        let a: usize = a.trim().parse().map_err(|_| bad())?;
        let b: usize = b.trim().parse().map_err(|_| bad())?;
        if a > b || b >= 8192 {
            return Err(bad());
        }
        for n in a..=b {
            if mask.len() <= n / 8 {
                mask.resize(n / 8 + 1, 0u8);
            }
            mask[n / 8] |= 1 << (n % 8);
        }
    }
    Ok(mask)
}

/// `org.systemd.property.NAME` annotations (runc's contract): extra unit properties whose values
/// are in GVariant text form (`uint64 1000`, `'text'`, `true`). `...Sec` names with a number
/// become `...USec` in microseconds, as runc converts them.
pub fn annotation_properties(annotations: &HashMap<String, String>) -> Result<Vec<Property>> {
    let mut keys: Vec<&String> = annotations.keys().collect();
    keys.sort();
    let mut out = Vec::new();
    for key in keys {
        let Some(name) = key.strip_prefix("org.systemd.property.") else {
            continue;
        };
        let text = &annotations[key];
        let bad = |why: &str| anyhow::anyhow!("config.json: annotations.{key}: {why}");
        if !name.starts_with(|c: char| c.is_ascii_uppercase())
            || !name.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(bad(
                "not a systemd property name (letters and digits, capitalised)",
            ));
        }
        let value = parse_gvariant(text).map_err(|e| bad(&format!("{text:?}: {e}")))?;
        let sec_stem = name
            .strip_suffix("Sec")
            .filter(|s| s.ends_with(|c: char| c.is_ascii_lowercase()));
        match sec_stem {
            Some(stem) => {
                let usec = match value {
                    Value::U64(v) => v.checked_mul(1_000_000),
                    Value::U32(v) => u64::from(v).checked_mul(1_000_000),
                    Value::I64(v) if v >= 0 => (v as u64).checked_mul(1_000_000),
                    Value::I32(v) if v >= 0 => (v as u64).checked_mul(1_000_000),
                    Value::F64(v) if (0.0..1.8e13).contains(&v) => Some((v * 1_000_000.0) as u64),
                    _ => None,
                }
                .ok_or_else(|| bad("a ...Sec property needs a non-negative number of seconds"))?;
                out.push(prop(&format!("{stem}USec"), usec));
            }
            None => out.push((name.to_string(), value)),
        }
    }
    Ok(out)
}

/// The part of GVariant's text format that unit properties use: booleans, numbers with an
/// optional type (`uint64 5`, `@t 5`), strings in single or double quotes, and arrays of
/// strings (`['a', 'b']`).
fn parse_gvariant(text: &str) -> std::result::Result<Value, String> {
    let t = text.trim();
    let (ty, rest) = match t.split_once(char::is_whitespace) {
        Some((ty, rest))
            if ty.starts_with('@')
                || ty
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) =>
        {
            (Some(ty), rest.trim())
        }
        _ => (None, t),
    };
    let num = |s: &str| -> std::result::Result<i128, String> {
        s.parse::<i128>()
            .map_err(|_| format!("{s:?} is not a number"))
    };
    let fits = |v: i128, lo: i128, hi: i128| {
        if (lo..=hi).contains(&v) {
            Ok(v)
        } else {
            Err(format!("{v} is out of range"))
        }
    };
    match ty {
        Some("uint64" | "@t") => Ok(Value::U64(fits(num(rest)?, 0, u64::MAX as i128)? as u64)),
        Some("uint32" | "@u") => Ok(Value::U32(fits(num(rest)?, 0, u32::MAX as i128)? as u32)),
        Some("int64" | "@x") => Ok(Value::I64(
            fits(num(rest)?, i64::MIN as i128, i64::MAX as i128)? as i64,
        )),
        Some("int32" | "@i") => Ok(Value::I32(
            fits(num(rest)?, i32::MIN as i128, i32::MAX as i128)? as i32,
        )),
        Some("uint16" | "@q") => Ok(Value::U16(fits(num(rest)?, 0, u16::MAX as i128)? as u16)),
        Some("int16" | "@n") => Ok(Value::I16(
            fits(num(rest)?, i16::MIN as i128, i16::MAX as i128)? as i16,
        )),
        Some("byte" | "@y") => Ok(Value::U8(fits(num(rest)?, 0, 255)? as u8)),
        Some("double" | "@d") => rest
            .parse::<f64>()
            .map(Value::F64)
            .map_err(|_| format!("{rest:?} is not a number")),
        Some(_)
            if rest.starts_with('@')
                || (rest.split_whitespace().count() > 1 && !rest.starts_with(['\'', '"'])) =>
        {
            Err(format!("{t:?}: one type annotation at most"))
        }
        Some("boolean" | "@b") => parse_gvariant(rest).and_then(|v| match v {
            Value::Bool(b) => Ok(Value::Bool(b)),
            _ => Err(format!("{rest:?} is not true or false")),
        }),
        Some("@s") => parse_gvariant(rest).and_then(|v| match v {
            Value::Str(s) => Ok(Value::Str(s)),
            _ => Err(format!("{rest:?} is not a quoted string")),
        }),
        Some(other) => Err(format!("unknown type {other:?}")),
        None => {
            if t == "true" || t == "false" {
                return Ok(Value::Bool(t == "true"));
            }
            if let Some(s) = unquote(t) {
                return Ok(Value::from(s));
            }
            if let Some(inner) = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                let items: std::result::Result<Vec<String>, String> = inner
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| unquote(s).ok_or_else(|| format!("{s:?} is not a quoted string")))
                    .collect();
                return Ok(Value::from(items?));
            }
            if t.contains('.') {
                return t
                    .parse::<f64>()
                    .map(Value::F64)
                    .map_err(|_| format!("{t:?} is not a value"));
            }
            // GVariant's untyped integers are int32.
            Ok(Value::I32(
                fits(num(t)?, i32::MIN as i128, i32::MAX as i128)? as i32,
            ))
        }
    }
}

fn unquote(s: &str) -> Option<String> {
    let q = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let inner = s.strip_prefix(q)?.strip_suffix(q)?;
    (!inner.contains(q)).then(|| inner.to_string())
}

/// A connection to the systemd manager: the system one, or the caller's own user manager
/// (rootless), each over its bus.
pub struct Manager {
    bus: crate::cgroups::systemd::dbus::Bus,
    user: bool,
}

/// Whether the container's unit belongs to the caller's user manager (runc's rule): rt runs as
/// a user, or as root of a user namespace made by a user whose session it has (rootless Podman
/// runs its runtime so, with XDG_RUNTIME_DIR and USER set). Root of a system container's user
/// namespace (LXC, whose root maps to a high host uid) has no session: the system manager.
pub fn user_manager() -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return true;
    }
    crate::sys::in_user_namespace()
        && host_uid() != 0
        && std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| !d.is_empty())
        && std::env::var("USER").map_or(true, |u| u != "root")
}

/// rt's effective uid as the host sees it: the bus checks the uid a client claims against its
/// socket's credentials, which are the host's.
fn host_uid() -> u32 {
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    let Ok(map) = std::fs::read_to_string("/proc/self/uid_map") else {
        return euid;
    };
    map.lines()
        .filter_map(|l| {
            let f: Vec<u32> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (f.len() == 3).then(|| (f[0], f[1], f[2]))
        })
        .find(|(inside, _, len)| euid >= *inside && euid - inside < *len)
        .map_or(euid, |(inside, outside, _)| outside + (euid - inside))
}

/// The D-Bus error name a failed call carried (see `dbus::Bus::call`).
fn is_error(e: &anyhow::Error, name: &str) -> bool {
    e.to_string().starts_with(&format!("{name}:"))
}

impl Manager {
    pub fn connect(user: bool) -> Result<Manager> {
        crate::logging::debug("systemd: connecting");
        // The uid the bus daemon sees: a session bus is the host user's, a system bus the one
        // of rt's own namespace (a system container's, say).
        // SAFETY: geteuid cannot fail.
        let uid = if user {
            host_uid()
        } else {
            unsafe { libc::geteuid() }
        };
        let bus = crate::cgroups::systemd::dbus::Bus::connect(user, uid, JOB_TIMEOUT).map_err(|e| {
            anyhow::anyhow!(
                "--systemd-cgroup: cannot reach systemd over the {} bus (is systemd running?): {e:#}",
                if user { "user's session" } else { "system" }
            )
        })?;
        crate::logging::debug("systemd: connected to the manager's bus");
        Ok(Manager { bus, user })
    }

    fn call(
        &mut self,
        method: &str,
        body: crate::cgroups::systemd::dbus::Body,
    ) -> Result<crate::cgroups::systemd::dbus::Message> {
        self.bus.call(DEST, PATH, MANAGER, method, body)
    }

    /// Runs `method` (a job-returning call on `unit`) and waits for its job to finish,
    /// returning the job's result ("done" on success); Err for a call systemd refused.
    fn run_job(
        &mut self,
        unit: &str,
        method: &str,
        body: crate::cgroups::systemd::dbus::Body,
    ) -> Result<String> {
        // Listen before asking, so a fast job's JobRemoved can't be missed. No Subscribe:
        // systemd sends a job's signals to the client that made the job anyway, and a call
        // to systemd costs a wait behind whatever it is doing (a dying scope, say).
        let rule = format!(
            "type='signal',sender='{DEST}',path='{PATH}',interface='{MANAGER}',member='JobRemoved'"
        );
        self.bus
            .call(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "AddMatch",
                crate::cgroups::systemd::dbus::Body::default().str(&rule),
            )
            .context("systemd: AddMatch")?;
        let reply = self.call(method, body)?;
        let job = crate::cgroups::systemd::dbus::Reader::new(&reply.body).str()?;
        let deadline = std::time::Instant::now() + JOB_TIMEOUT;
        while let Some(m) = self.bus.next_signal(deadline)? {
            if m.member.as_deref() != Some("JobRemoved") {
                continue;
            }
            let mut r = crate::cgroups::systemd::dbus::Reader::new(&m.body);
            let (Ok(_id), Ok(path), Ok(name), Ok(result)) = (r.u32(), r.str(), r.str(), r.str())
            else {
                continue;
            };
            if path == job && name == unit {
                return Ok(result);
            }
        }
        Ok("timeout".into())
    }

    /// Creates the transient unit and waits until systemd has started it. A unit of that name
    /// that is only on its way out (a deleted container's scope systemd has not collected yet)
    /// is waited for; a live one is an error, and left alone.
    pub fn start_unit(&mut self, unit: &str, props: &[Property]) -> Result<()> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let body = crate::cgroups::systemd::dbus::Body::default()
                .str(unit)
                .str("replace")
                .props(props)
                .no_aux_units();
            match self.run_job(unit, "StartTransientUnit", body) {
                Ok(r) if r == "done" => {
                    crate::logging::debug(&format!("systemd: unit {unit} started"));
                    return Ok(());
                }
                Ok(r) => {
                    // A job still queued (a timeout) must not run later with a pid that may
                    // be someone else's by then.
                    let _ = self.stop_unit(unit);
                    bail!("systemd could not start unit {unit}: job result {r:?}")
                }
                Err(e) if is_error(&e, "org.freedesktop.systemd1.UnitExists") => {
                    let state = self.active_state(unit);
                    let dying = matches!(
                        state.as_deref(),
                        None | Some("inactive" | "failed" | "deactivating")
                    );
                    if !dying || std::time::Instant::now() > deadline {
                        bail!(
                            "systemd unit {unit} already exists ({}): another container (or a leftover) has this linux.cgroupsPath",
                            state.as_deref().unwrap_or("gone since")
                        );
                    }
                    crate::logging::debug(&format!(
                        "systemd: unit {unit} is still going away ({}); waiting",
                        state.as_deref().unwrap_or("gone")
                    ));
                    if state.as_deref() == Some("failed") {
                        self.reset_failed(unit);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e).with_context(|| format!("systemd: start unit {unit}")),
            }
        }
    }

    /// The unit's ActiveState, None if systemd has no such unit (any more).
    fn active_state(&mut self, unit: &str) -> Option<String> {
        let reply = self
            .call(
                "GetUnit",
                crate::cgroups::systemd::dbus::Body::default().str(unit),
            )
            .ok()?;
        let path = crate::cgroups::systemd::dbus::Reader::new(&reply.body)
            .str()
            .ok()?;
        let v = self
            .bus
            .call(
                DEST,
                &path,
                "org.freedesktop.DBus.Properties",
                "Get",
                crate::cgroups::systemd::dbus::Body::default()
                    .str("org.freedesktop.systemd1.Unit")
                    .str("ActiveState"),
            )
            .ok()?;
        crate::cgroups::systemd::dbus::Reader::new(&v.body)
            .variant_str()
            .ok()?
    }

    /// Stops the unit (killing what is left in it) and waits; a unit systemd already
    /// collected (its processes all exited) is fine.
    pub fn stop_unit(&mut self, unit: &str) -> Result<()> {
        let body = crate::cgroups::systemd::dbus::Body::default()
            .str(unit)
            .str("replace");
        let r = match self.run_job(unit, "StopUnit", body) {
            Ok(r) if r == "done" => Ok(()),
            Ok(r) => Err(anyhow::anyhow!(
                "systemd could not stop unit {unit}: job result {r:?}"
            )),
            Err(e) if is_error(&e, "org.freedesktop.systemd1.NoSuchUnit") => Ok(()),
            Err(e) => Err(e).with_context(|| format!("systemd: stop unit {unit}")),
        };
        // A unit that ended failed would stay loaded (and its name taken) until reset.
        self.reset_failed(unit);
        r
    }

    pub fn set_properties(&mut self, unit: &str, props: &[Property]) -> Result<()> {
        let body = crate::cgroups::systemd::dbus::Body::default()
            .str(unit)
            .bool(true)
            .props(props);
        self.call("SetUnitProperties", body)
            .with_context(|| format!("systemd: set properties of unit {unit}"))?;
        Ok(())
    }

    fn reset_failed(&mut self, unit: &str) {
        let _ = self.call(
            "ResetFailedUnit",
            crate::cgroups::systemd::dbus::Body::default().str(unit),
        );
    }

    pub fn user(&self) -> bool {
        self.user
    }
}

/// The unit properties of a new container's unit, but its PIDs (see `Unit::start`).
pub fn unit_properties(
    path: &CgroupsPath,
    id: &str,
    resources: Option<&LinuxResources>,
    annotations: &HashMap<String, String>,
) -> Result<Vec<Property>> {
    let mut p = vec![prop("Description", format!("rt container {id}"))];
    if path.name.ends_with(".slice") {
        // A slice can't hold processes by PIDs nor be delegated: rt moves the init itself.
        p.push(prop("Wants", vec![path.slice.clone()]));
    } else {
        p.push(prop("Slice", path.slice.clone()));
        p.push(prop("Delegate", true));
    }
    // Every controller, whatever the limits: update and events need them later.
    for acct in [
        "MemoryAccounting",
        "CPUAccounting",
        "IOAccounting",
        "TasksAccounting",
    ] {
        p.push(prop(acct, true));
    }
    // Like runc: no implicit ordering against shutdown.target and friends.
    p.push(prop("DefaultDependencies", false));
    // Gone from systemd once its processes are, even if it ended failed (an OOM kill under
    // OOMPolicy=stop, say): delete leaves the unit to systemd.
    p.push(prop("CollectMode", "inactive-or-failed"));
    if let Some(r) = resources {
        p.extend(resource_properties(r)?);
    }
    for (name, v) in annotation_properties(annotations)? {
        p.retain(|(n, _)| *n != name);
        p.push((name, v));
    }
    Ok(p)
}

/// A unit rt started for a create in progress: stopped again on drop unless disarmed.
pub struct Unit {
    pub name: String,
    pub user: bool,
    /// Its cgroup, relative to the cgroup v2 mount.
    pub rel: String,
    manager: Manager,
    armed: bool,
}

impl Unit {
    /// Starts the container's unit with `pid` (the init, or the first stage it will be
    /// forked from) in it, and finds its cgroup.
    pub fn start(
        mut manager: Manager,
        path: &CgroupsPath,
        mut props: Vec<Property>,
        pid: i32,
    ) -> Result<Unit> {
        let name = path.unit();
        let pid = u32::try_from(pid).context("bad pid")?;
        if !path.name.ends_with(".slice") {
            props.push(prop("PIDs", vec![pid]));
        }
        manager.start_unit(&name, &props)?;
        let user = manager.user();
        let mut unit = Unit {
            name,
            user,
            rel: String::new(),
            manager,
            armed: true,
        };
        if path.name.ends_with(".slice") {
            let mount = crate::cgroups::v2::v2_mount().context("no cgroup v2 mount")?;
            let rel = expand_slice(&path.name)?;
            let own = own_cgroup(pid)?;
            // A user manager's slices live under its own cgroup.
            let base = if unit.user {
                user_manager_base(&own)
            } else {
                String::new()
            };
            unit.rel = format!("{base}{rel}");
            let procs = mount
                .join(unit.rel.trim_start_matches('/'))
                .join("cgroup.procs");
            std::fs::write(&procs, pid.to_string())
                .with_context(|| format!("join {}", procs.display()))?;
        } else {
            unit.rel = own_cgroup(pid)?;
            if !unit.rel.ends_with(&format!("/{}", unit.name)) {
                bail!(
                    "systemd put the container's init in {} instead of its unit {}",
                    unit.rel,
                    unit.name
                );
            }
        }
        Ok(unit)
    }

    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.manager.stop_unit(&self.name);
        }
    }
}

/// The cgroup v2 path of `pid` (its `0::` line).
fn own_cgroup(pid: u32) -> Result<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .with_context(|| format!("read /proc/{pid}/cgroup"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|s| s.trim().to_string())
        .with_context(|| format!("/proc/{pid}/cgroup has no cgroup v2 line"))
}

/// `/user.slice/user-1000.slice/user@1000.service` of a cgroup path under a user manager.
fn user_manager_base(path: &str) -> String {
    match path.find(".service/") {
        Some(i) if path[..i].contains("/user@") => path[..i + ".service".len()].to_string(),
        _ => String::new(),
    }
}

/// Sets new limits on a running container's unit (update).
pub fn set_resources(unit: &str, user: bool, r: &LinuxResources) -> Result<()> {
    let props = resource_properties(r)?;
    if props.is_empty() {
        return Ok(());
    }
    Manager::connect(user)?.set_properties(unit, &props)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_expand_as_systemd_nests_them() {
        assert_eq!(expand_slice("system.slice").unwrap(), "/system.slice");
        assert_eq!(
            expand_slice("a-b-c.slice").unwrap(),
            "/a.slice/a-b.slice/a-b-c.slice"
        );
        assert_eq!(expand_slice("-.slice").unwrap(), "/");
        for bad in [
            "foo",
            ".slice",
            "a--b.slice",
            "-a.slice",
            "a/b.slice",
            "a-.slice",
        ] {
            assert!(expand_slice(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cgroups_paths_follow_runc() {
        let p = CgroupsPath::parse(Some("machine.slice:libpod:abc"), "x", false).unwrap();
        assert_eq!(p.unit(), "libpod-abc.scope");
        assert_eq!(p.slice, "machine.slice");
        let p = CgroupsPath::parse(None, "a+b", false).unwrap();
        assert_eq!(p.unit(), "rt-a\\x2bb.scope");
        let p = CgroupsPath::parse(None, "c1", false).unwrap();
        assert_eq!(
            (p.slice.as_str(), p.unit().as_str()),
            ("system.slice", "rt-c1.scope")
        );
        let p = CgroupsPath::parse(Some(":x:c1"), "c1", true).unwrap();
        assert_eq!(p.slice, "user.slice");
        let p = CgroupsPath::parse(Some("system.slice::c1"), "c1", false).unwrap();
        assert_eq!(p.unit(), "c1.scope");
        let p = CgroupsPath::parse(Some("a.slice:x:a-b.slice"), "c1", false).unwrap();
        assert_eq!(p.unit(), "a-b.slice");
        for bad in [
            "/a/b",
            "a:b",
            "system.slice:x:",
            "bad:x:y",
            "system.slice:x:y/z",
            "a:b:c:d",
        ] {
            let e = CgroupsPath::parse(Some(bad), "c1", false).unwrap_err();
            assert!(
                format!("{e:#}").contains("linux.cgroupsPath"),
                "{bad}: {e:#}"
            );
        }
        assert!(looks_like_systemd_path("system.slice:docker:abc"));
        assert!(looks_like_systemd_path(":rt:abc"));
        assert!(!looks_like_systemd_path("/docker/abc"));
        assert!(!looks_like_systemd_path("a:b"));
    }

    #[test]
    fn resources_become_unit_properties() {
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 67108864, "swap": 134217728, "reservation": 1048576},
            "cpu": {"shares": 1024, "quota": 33333, "period": 100000, "cpus": "0-2,9"},
            "pids": {"limit": -1},
            "blockIO": {"weight": 500},
            "unified": {"memory.high": "max"}
        }))
        .unwrap();
        let p = resource_properties(&r).unwrap();
        let get = |n: &str| p.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(get("MemoryMax"), Some(Value::U64(67108864)));
        assert_eq!(get("MemorySwapMax"), Some(Value::U64(67108864)));
        assert_eq!(get("MemoryLow"), Some(Value::U64(1048576)));
        assert_eq!(get("CPUWeight"), Some(Value::U64(39)));
        assert_eq!(get("CPUQuotaPerSecUSec"), Some(Value::U64(340_000)));
        assert_eq!(get("CPUQuotaPeriodUSec"), Some(Value::U64(100_000)));
        assert_eq!(
            get("AllowedCPUs"),
            Some(Value::from(vec![0b0000_0111u8, 0b10]))
        );
        assert_eq!(get("TasksMax"), Some(Value::U64(u64::MAX)));
        assert_eq!(get("IOWeight"), Some(Value::U64(4950)));
        assert_eq!(get("MemoryHigh"), Some(Value::U64(u64::MAX)));
    }

    #[test]
    fn device_rules_become_strict_allow_lists() {
        use crate::cgroups::devices::{ACC_MKNOD, ACC_READ, ACC_WRITE, DEV_CHAR, Rule};
        let rule = |allow, major, minor| Rule {
            allow,
            typ: Some(DEV_CHAR),
            major,
            minor,
            access: ACC_READ | ACC_WRITE | ACC_MKNOD,
        };
        let deny_all = Rule {
            allow: false,
            typ: None,
            major: None,
            minor: None,
            access: ACC_READ | ACC_WRITE | ACC_MKNOD,
        };
        let p = device_properties(&[
            deny_all,
            rule(true, Some(1), Some(3)),
            rule(true, Some(136), None),
        ]);
        assert_eq!(p[0], prop("DevicePolicy", "strict"));
        let allow = Value::from(vec![
            ("/dev/char/1:3".to_string(), "rwm".to_string()),
            ("char-pts".to_string(), "rwm".to_string()),
        ]);
        assert_eq!(p[1], ("DeviceAllow".to_string(), allow));
        // "c *:3" has no systemd spelling: no device properties at all.
        assert!(device_properties(&[deny_all, rule(true, None, Some(3))]).is_empty());
        let groups = "Character devices:\n  1 mem\n136 pts\n\nBlock devices:\n  8 sd\n";
        assert_eq!(device_group(groups, "char", "136"), Some("pts"));
        assert_eq!(device_group(groups, "block", "8"), Some("sd"));
        assert_eq!(device_group(groups, "block", "1"), None);
    }

    #[test]
    fn annotations_parse_as_runc_does() {
        let a: HashMap<String, String> = [
            ("org.systemd.property.TimeoutStopSec", "uint64 7"),
            ("org.systemd.property.CollectMode", "'inactive-or-failed'"),
            ("org.systemd.property.CPUQuotaPeriodUSec", "@t 20000"),
            ("org.systemd.property.SendSIGHUP", "true"),
            ("unrelated", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let p = annotation_properties(&a).unwrap();
        let get = |n: &str| p.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(get("TimeoutStopUSec"), Some(Value::U64(7_000_000)));
        assert_eq!(get("CollectMode"), Some(Value::from("inactive-or-failed")));
        assert_eq!(get("CPUQuotaPeriodUSec"), Some(Value::U64(20000)));
        assert_eq!(get("SendSIGHUP"), Some(Value::Bool(true)));
        assert_eq!(p.len(), 4);
        for (k, v) in [
            ("org.systemd.property.bad-name", "true"),
            ("org.systemd.property.X", "uint64 -1"),
            ("org.systemd.property.X", "'unterminated"),
            ("org.systemd.property.TimeoutSec", "'soon'"),
            ("org.systemd.property.X", "@b @b true"),
            ("org.systemd.property.X", "boolean boolean true"),
        ] {
            let a = HashMap::from([(k.to_string(), v.to_string())]);
            let e = annotation_properties(&a).unwrap_err();
            assert!(format!("{e:#}").contains(k), "{e:#}");
        }
    }
}
