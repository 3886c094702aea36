//! Unit properties: the limits systemd can express, the device allow-list and the
//! `org.systemd.property.*` annotations, as D-Bus values.

use anyhow::{Context, Result, bail};
use oci_spec::runtime::LinuxResources;
use std::collections::HashMap;

use super::dbus::Value;
use super::path::CgroupsPath;

/// `USEC_INFINITY` / `CGROUP_LIMIT_MAX`: systemd's "no limit".
const INFINITY: u64 = u64::MAX;

/// One unit property, as StartTransientUnit and SetUnitProperties take it.
pub type Property = (String, Value);

pub(super) fn prop(name: &str, v: impl Into<Value>) -> Property {
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
    let groups = crate::sys::read_to_string("/proc/devices").unwrap_or_default();
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
pub(super) fn device_group<'a>(proc_devices: &'a str, kind: &str, major: &str) -> Option<&'a str> {
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
pub(super) fn list_to_mask(list: &str) -> Result<Vec<u8>> {
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
pub(super) fn parse_gvariant(text: &str) -> std::result::Result<Value, String> {
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
