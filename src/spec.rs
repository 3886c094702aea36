//! Reading a bundle's config.json and checking it before anything touches the system, so every
//! mistake is reported as one line naming the field, with nothing left to clean up.

use crate::hooks::Phase;
use anyhow::{Context, Result, bail};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The runtime-spec version rt implements.
pub const SPEC_VERSION: &str = "1.3.0";

/// A loaded, validated bundle.
pub struct Bundle {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    /// Boxed: a Spec is 3 KiB, and a Bundle moves through create's frame and the init's.
    pub spec: Box<Spec>,
    /// config.json as read, saved in the state dir for exec.
    pub raw: Vec<u8>,
}

pub fn load(bundle: &Path) -> Result<Bundle> {
    let dir =
        std::path::absolute(bundle).with_context(|| format!("bundle {}", bundle.display()))?;
    let cfg = dir.join("config.json");
    let text = crate::sys::read(&cfg)
        .map_err(|e| anyhow::anyhow!("{}: {}", cfg.display(), crate::sys::errno_str(&e)))?;
    let spec: Spec = spec_from_slice(&text)
        .map_err(|e| anyhow::anyhow!("{}: {}", cfg.display(), tidy_serde_error(&e)))?;
    let root = spec
        .root()
        .as_ref()
        .context("config.json: root.path is required")?;
    if root.path().as_os_str().is_empty() {
        bail!("config.json: root.path is required");
    }
    let rootfs = dir.join(root.path());
    match std::fs::metadata(&rootfs) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!(
            "config.json: root.path {}: not a directory",
            rootfs.display()
        ),
        Err(e) => bail!(
            "config.json: root.path {}: {}",
            rootfs.display(),
            crate::sys::errno_str(&e)
        ),
    }
    let b = Bundle {
        dir,
        rootfs,
        spec: Box::new(spec),
        raw: text,
    };
    validate(&b.spec)?;
    Ok(b)
}

/// config.json bytes to a validated spec: everything that can be checked without the bundle
/// directory. Must never panic or hang on any input (fuzzed: fuzz/fuzz_targets/config.rs).
pub fn parse(text: &[u8]) -> Result<Spec> {
    let spec: Spec =
        spec_from_slice(text).map_err(|e| anyhow::anyhow!("{}", tidy_serde_error(&e)))?;
    validate(&spec)?;
    Ok(spec)
}

/// config.json to a Spec. A capability rt does not know (newer than its table) is dropped
/// with a warning, as runc does, so configs from newer tools keep working; only a config
/// that fails on one takes the slower way through a JSON value.
/// Out of line, as is its slower way: inlined into `load`, serde's visitors took their frames
/// with them, 19 KiB of stack touched on every create.
#[inline(never)]
fn spec_from_slice(text: &[u8]) -> serde_json::Result<Spec> {
    match serde_json::from_slice(text) {
        Err(e) if e.to_string().starts_with("no variant for ") => spec_without_unknown_caps(text),
        other => other,
    }
}

#[cold]
#[inline(never)]
fn spec_without_unknown_caps(text: &[u8]) -> serde_json::Result<Spec> {
    let mut v: serde_json::Value = serde_json::from_slice(text)?;
    drop_unknown_capabilities(&mut v["process"]["capabilities"], "process.capabilities");
    serde_json::from_value(v)
}

/// Removes (and warns about) the capability names rt does not know from each set of a
/// capabilities object.
pub fn drop_unknown_capabilities(caps: &mut serde_json::Value, field: &str) {
    let Some(sets) = caps.as_object_mut() else {
        return;
    };
    for (set, names) in sets.iter_mut() {
        let Some(list) = names.as_array_mut() else {
            continue;
        };
        list.retain(|n| {
            let known = serde_json::from_value::<oci_spec::runtime::Capability>(n.clone()).is_ok();
            if !known {
                crate::logging::warn(&format!("{field}.{set}: unknown capability {n}: ignored"));
            }
            known || !n.is_string()
        });
    }
}

/// serde's messages list every accepted variant; keep the part that names the offending value.
fn tidy_serde_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    // oci-spec's wording for a capability name it does not know.
    if let Some(rest) = msg.strip_prefix("no variant for ")
        && let Some(name) = rest.split(" (converted").next()
    {
        return format!(
            "unknown capability {name} (line {} column {})",
            e.line(),
            e.column()
        );
    }
    let head = match msg.find(", expected") {
        Some(i) => msg[..i].to_string(),
        None => match msg.rfind(" at line ") {
            Some(i) => msg[..i].to_string(),
            None => msg,
        },
    };
    format!("{head} (line {} column {})", e.line(), e.column())
}

pub fn namespace_flag(t: LinuxNamespaceType) -> i32 {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

pub fn namespace_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

/// Does the config ask for a namespace of this type (new or joined)?
pub fn has_namespace(spec: &Spec, t: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == t))
}

fn validate(spec: &Spec) -> Result<()> {
    // runc and crun run whatever ociVersion says (or a config without one): the fields are
    // what counts, and each is checked below. A major version rt doesn't know is worth a word.
    if !spec.version().starts_with("1.") {
        crate::logging::warn(&format!(
            "config.json: ociVersion {:?} is not one rt knows (it implements {SPEC_VERSION}); \
             running it as {SPEC_VERSION}",
            spec.version()
        ));
    }
    let process = spec
        .process()
        .as_ref()
        .context("config.json: process is required")?;
    check_process(process, "config.json: process")?;
    for m in spec.mounts().iter().flatten() {
        if m.destination().as_os_str().is_empty() {
            bail!("config.json: mounts: an entry has an empty destination");
        }
    }

    refuse_unsupported(spec)?;
    check_hooks(spec)?;
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    check_namespaces(linux)?;
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty())
        && !has_namespace(spec, LinuxNamespaceType::Uts)
    {
        bail!("config.json: hostname needs a uts namespace in linux.namespaces");
    }
    if spec.domainname().as_ref().is_some_and(|h| !h.is_empty())
        && !has_namespace(spec, LinuxNamespaceType::Uts)
    {
        bail!("config.json: domainname needs a uts namespace in linux.namespaces");
    }
    if let Some(off) = linux.time_offsets() {
        if !off.is_empty() && !has_namespace(spec, LinuxNamespaceType::Time) {
            bail!("config.json: linux.timeOffsets needs a time namespace in linux.namespaces");
        }
        for k in off.keys() {
            if k != "monotonic" && k != "boottime" {
                bail!(
                    "config.json: linux.timeOffsets: unknown clock {k:?} (monotonic or boottime)"
                );
            }
        }
    }
    for (key, value) in linux.sysctl().iter().flatten() {
        check_sysctl(spec, key)?;
        check_uts_sysctl(spec, key, value)?;
    }
    if let Some(p) = linux.rootfs_propagation()
        && crate::process::rootfs::propagation_flag(p).is_none()
    {
        bail!("config.json: linux.rootfsPropagation {p:?} is not a propagation mode");
    }
    if let Some(r) = linux.resources() {
        crate::cgroups::resources::plan(r).map_err(|e| anyhow::anyhow!("config.json: {e:#}"))?;
    }
    if let Some(s) = linux.seccomp()
        && crate::process::security::seccomp::uses_notify(s)
        && s.listener_path()
            .as_ref()
            .is_none_or(|p| p.as_os_str().is_empty())
    {
        bail!("config.json: linux.seccomp.listenerPath is required with SCMP_ACT_NOTIFY");
    }
    Ok(())
}

/// Every hook's path absolute and timeout positive and within what a deadline can count.
fn check_hooks(spec: &Spec) -> Result<()> {
    for phase in [
        Phase::Prestart,
        Phase::CreateRuntime,
        Phase::CreateContainer,
        Phase::StartContainer,
        Phase::Poststart,
        Phase::Poststop,
    ] {
        for (i, h) in crate::hooks::of(spec.hooks().as_ref(), phase)
            .iter()
            .enumerate()
        {
            if !h.path().is_absolute() {
                bail!(
                    "config.json: hooks.{}[{i}].path {} must be absolute",
                    phase.name(),
                    h.path().display()
                );
            }
            if h.timeout().is_some_and(|t| t <= 0) {
                bail!(
                    "config.json: hooks.{}[{i}].timeout must be positive",
                    phase.name()
                );
            }
            // Past any use, and the deadline arithmetic would overflow.
            if let Some(t) = h.timeout().filter(|t| *t > i64::from(i32::MAX)) {
                bail!(
                    "config.json: hooks.{}[{i}].timeout {t} is too large (at most {} seconds)",
                    phase.name(),
                    i32::MAX
                );
            }
        }
    }
    Ok(())
}

/// Each namespace listed once, paths absolute and there, and id maps exactly with a new user
/// namespace.
fn check_namespaces(linux: &oci_spec::runtime::Linux) -> Result<()> {
    let mut seen = HashSet::new();
    for ns in linux.namespaces().iter().flatten() {
        let name = namespace_name(ns.typ());
        if !seen.insert(name) {
            bail!("config.json: linux.namespaces: {name} is listed twice");
        }
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                bail!(
                    "config.json: linux.namespaces: {name} path {} must be absolute",
                    p.display()
                );
            }
            std::fs::metadata(p).map_err(|e| {
                anyhow::anyhow!(
                    "config.json: linux.namespaces: {name} path {}: {}",
                    p.display(),
                    crate::sys::errno_str(&e)
                )
            })?;
        }
    }
    let new_userns = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if new_userns && !has_maps {
        bail!("config.json: linux.uidMappings/gidMappings are required with a new user namespace");
    }
    if has_maps && !new_userns {
        bail!(
            "config.json: linux.uidMappings/gidMappings need a new user namespace in linux.namespaces"
        );
    }
    for m in linux
        .uid_mappings()
        .iter()
        .flatten()
        .chain(linux.gid_mappings().iter().flatten())
    {
        if m.size() == 0 {
            bail!("config.json: linux id mapping with size 0");
        }
    }
    Ok(())
}

/// Fields rt does not implement yet. Running without them would silently weaken the container
/// or skip work the caller relies on, so they are refused. LSM labels are refused when the host
/// lacks the LSM.
/// What a process must be, in config.json or in `exec --process` (`field` names where it came
/// from in errors): the same checks and the same refusals for both, so nothing refused at
/// create is silently dropped at exec.
pub fn check_process(process: &oci_spec::runtime::Process, field: &str) -> Result<()> {
    match process.args() {
        Some(a) if !a.is_empty() && !a[0].is_empty() => {}
        _ => bail!("{field}.args must not be empty"),
    }
    if !process.cwd().is_absolute() {
        bail!("{field}.cwd {:?} must be an absolute path", process.cwd());
    }
    if let Some(env) = process.env() {
        for e in env {
            if !e.contains('=') || e.starts_with('=') {
                bail!("{field}.env entry {e:?} is not of the form KEY=VALUE");
            }
        }
    }
    for rl in process.rlimits().iter().flatten() {
        if rl.soft() > rl.hard() {
            bail!(
                "{field}.rlimits {:?}: soft limit {} exceeds hard limit {}",
                rl.typ(),
                rl.soft(),
                rl.hard()
            );
        }
    }
    crate::process::security::lsm::check(
        process.apparmor_profile().as_deref(),
        process.selinux_label().as_deref(),
        None,
    )?;
    if let Some(a) = process.exec_cpu_affinity() {
        for (name, list) in [("initial", a.initial()), ("final", a.cpu_affinity_final())] {
            if let Some(list) = list {
                crate::process::security::cpu_set(
                    list,
                    &format!("{field}.execCPUAffinity.{name}"),
                )?;
            }
        }
    }
    Ok(())
}

fn resctrl_mounted() -> bool {
    crate::sys::read_to_string("/proc/self/mountinfo").is_ok_and(|m| {
        m.lines().any(|l| {
            l.split(" - ")
                .nth(1)
                .is_some_and(|t| t.starts_with("resctrl "))
        })
    })
}

fn refuse_unsupported(spec: &Spec) -> Result<()> {
    let l = spec.linux().as_ref();
    if let Some(m) = l.and_then(|l| l.memory_policy().as_ref()) {
        crate::process::security::check_memory_policy(m)
            .map_err(|e| anyhow::anyhow!("config.json: {e:#}"))?;
    }
    crate::process::security::lsm::check(None, None, l.and_then(|l| l.mount_label().as_deref()))?;
    if let Some(d) = l.and_then(|l| l.net_devices().as_ref()) {
        crate::process::netdev::check(d, has_namespace(spec, LinuxNamespaceType::Network))?;
    }
    if l.is_some_and(|l| l.intel_rdt().is_some()) {
        // runc refuses it the same way where the host has no resctrl; where it has one, rt
        // can't yet do what runc would (no RDT hardware to prove it on: see the README).
        if resctrl_mounted() {
            bail!("config.json: linux.intelRdt is not supported by this rt yet");
        }
        bail!(
            "config.json: linux.intelRdt is specified, but Intel RDT is not enabled on this host (no resctrl filesystem mounted)"
        );
    }
    for m in spec.mounts().iter().flatten() {
        let idmap_opt = m
            .options()
            .iter()
            .flatten()
            .any(|o| o == "idmap" || o == "ridmap");
        let has_maps = m.uid_mappings().is_some() || m.gid_mappings().is_some();
        if has_maps || idmap_opt {
            let d = m.destination().display();
            let opts = crate::process::rootfs::parse_options(m.options().as_deref().unwrap_or(&[]));
            if m.typ().as_deref() != Some("bind") && opts.flags & libc::MS_BIND == 0 {
                bail!("config.json: mounts: {d}: id mappings need a bind mount");
            }
            if has_maps
                && (m.uid_mappings().as_ref().is_none_or(|v| v.is_empty())
                    || m.gid_mappings().as_ref().is_none_or(|v| v.is_empty()))
            {
                bail!("config.json: mounts: {d}: uidMappings and gidMappings go together");
            }
            let container_maps =
                l.is_some_and(|l| l.uid_mappings().as_ref().is_some_and(|v| !v.is_empty()));
            if !has_maps && !container_maps {
                bail!(
                    "config.json: mounts: {d}: idmap without uidMappings/gidMappings needs the \
                     container's linux.uidMappings"
                );
            }
        }
    }
    Ok(())
}

/// A sysctl is only safe to set when it lives in a namespace the container owns; otherwise it
/// would change the host (runc refuses the same ones).
fn check_sysctl(spec: &Spec, key: &str) -> Result<()> {
    if key.contains("..") || key.contains('\0') || key.starts_with('/') || key.is_empty() {
        bail!("config.json: linux.sysctl: invalid key {key:?}");
    }
    let k = key.replace('/', ".");
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let needs = if ipc.contains(&k.as_str()) || k.starts_with("fs.mqueue.") {
        LinuxNamespaceType::Ipc
    } else if k.starts_with("net.") {
        LinuxNamespaceType::Network
    } else if k == "kernel.hostname" || k == "kernel.domainname" {
        LinuxNamespaceType::Uts
    } else if k.starts_with("user.") {
        // The ucounts limits are per user namespace (runc 1.4 allows them with one).
        LinuxNamespaceType::User
    } else {
        bail!("config.json: linux.sysctl: {key:?} is not namespaced and would change the host");
    };
    if !has_namespace(spec, needs) {
        bail!(
            "config.json: linux.sysctl: {key:?} needs a {} namespace in linux.namespaces",
            namespace_name(needs)
        );
    }
    Ok(())
}

/// `kernel.hostname` and `kernel.domainname` set the same thing as `hostname` and `domainname`;
/// which one wins would depend on the order rt applies them, so a config that gives both with
/// different values is refused (as runc does) rather than silently picking one.
fn check_uts_sysctl(spec: &Spec, key: &str, value: &str) -> Result<()> {
    let (field, given) = match key.replace('/', ".").as_str() {
        "kernel.hostname" => ("hostname", spec.hostname()),
        "kernel.domainname" => ("domainname", spec.domainname()),
        _ => return Ok(()),
    };
    match given.as_deref() {
        Some(v) if !v.is_empty() && v != value => {
            bail!("config.json: linux.sysctl {key:?}={value:?} contradicts {field} {v:?}")
        }
        _ => Ok(()),
    }
}

/// The config.json `rt spec` writes: runc's template, so tools and people get what they expect.
pub fn template(rootless: bool) -> serde_json::Value {
    let caps = serde_json::json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let mut v = serde_json::json!({
        "ociVersion": SPEC_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "rt",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    });
    if rootless {
        // As runc: own user namespace mapping the caller to root, no network namespace, and
        // /sys bound from the host since a fresh sysfs needs a network namespace we own.
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let linux = &mut v["linux"];
        linux["resources"] = serde_json::Value::Null;
        linux["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        linux["gidMappings"] = serde_json::json!([{"containerID": 0, "hostID": gid, "size": 1}]);
        linux["namespaces"] = serde_json::json!([
            {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
            {"type": "cgroup"}, {"type": "user"}
        ]);
        if let Some(obj) = linux.as_object_mut() {
            obj.remove("resources");
        }
        let mounts = v["mounts"]
            .as_array_mut()
            .expect("template mounts is an array");
        mounts.retain(|m| m["destination"] != "/sys/fs/cgroup");
        for m in mounts.iter_mut() {
            if m["destination"] == "/sys" {
                *m = serde_json::json!({"destination": "/sys", "type": "none", "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            }
            if m["destination"] == "/dev/pts"
                && let Some(opts) = m["options"].as_array_mut()
            {
                opts.retain(|o| o != "gid=5");
            }
        }
    }
    v
}
