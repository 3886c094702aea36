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
mod driver;
mod path;
mod properties;

pub use driver::{Plan, Scope};
pub use path::{CgroupsPath, expand_slice, looks_like_systemd_path};
use properties::prop;
pub use properties::{
    Property, annotation_properties, device_properties, resource_properties, unit_properties,
};

use anyhow::{Context, Result, bail};
use oci_spec::runtime::LinuxResources;
use std::time::Duration;

const DEST: &str = "org.freedesktop.systemd1";

const PATH: &str = "/org/freedesktop/systemd1";

const MANAGER: &str = "org.freedesktop.systemd1.Manager";

/// How long systemd may take to run a start or stop job (runc waits as long).
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

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
    let Ok(map) = crate::sys::read_to_string("/proc/self/uid_map") else {
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
            crate::cgroups::cgfs::write(&procs, pid.to_string())
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
    let text = crate::sys::read_to_string(format!("/proc/{pid}/cgroup"))
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
    use super::dbus::Value;
    use super::properties::device_group;
    use super::*;
    use std::collections::HashMap;

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
