//! The cgroup v1 side of hybrid (and v1) hosts: where each v1 controller is mounted, the
//! container's cgroup in the hierarchies its limits need, the v1 files for those limits,
//! attaching the init, and removal. A limit goes to v1 only when cgroup v2 can't take it
//! (its controller is bound to a v1 hierarchy); rt joins only the v1 hierarchies a limit needs.

use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use crate::resources::Write;

/// controller name → mount point of its v1 hierarchy.
pub fn mounts() -> HashMap<String, PathBuf> {
    let mut m = HashMap::new();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut r = right.split(' ');
        if r.next() != Some("cgroup") {
            continue;
        }
        let super_opts = r.nth(1).unwrap_or("");
        let Some(mp) = left.split(' ').nth(4) else {
            continue;
        };
        for opt in super_opts.split(',') {
            if !matches!(opt, "rw" | "ro") && !opt.contains('=') {
                m.insert(opt.to_string(), PathBuf::from(mp));
            }
        }
    }
    m
}

/// rt's own cgroup in the v1 hierarchy that has `controller`.
fn own(controller: &str) -> String {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for l in text.lines() {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next(), parts.next(), parts.next());
        if let (Some(c), Some(p)) = (ctrls, path)
            && c.split(',').any(|x| x == controller)
        {
            return p.to_string();
        }
    }
    "/".into()
}

/// The container's directory in `controller`'s hierarchy: an absolute cgroupsPath from the
/// hierarchy's root, a relative one (or `<id>`) under rt's own cgroup there, never above it.
pub fn dir(
    mount: &Path,
    controller: &str,
    cgroups_path: Option<&Path>,
    id: &str,
) -> Result<PathBuf> {
    let p = match cgroups_path {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from(id),
    };
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        bail!(
            "config.json: linux.cgroupsPath {}: must not contain '..'",
            p.display()
        );
    }
    let rel = p.strip_prefix("/").unwrap_or(&p);
    Ok(if p.is_absolute() {
        mount.join(rel)
    } else {
        mount
            .join(own(controller).trim_start_matches('/'))
            .join(rel)
    })
}

/// The v1 writes for one planned write, or an error naming the field when v1 has none.
pub fn translate(w: &Write) -> Result<Vec<(String, String)>> {
    match w.v1.as_ref() {
        Some(list) if !list.is_empty() => Ok(list.clone()),
        _ => bail!(
            "{}: {} has no cgroup v1 equivalent, and the host's cgroup v2 lacks the {} controller",
            w.field,
            w.file,
            w.controller
        ),
    }
}

/// Creates the container's cgroup in each v1 hierarchy the writes need (not offered by v2)
/// and writes the limits. Returns the directories created, for attaching and removal.
pub fn apply(writes: &[&Write], cgroups_path: Option<&Path>, id: &str) -> Result<Vec<PathBuf>> {
    let mounts = mounts();
    let mut created: Vec<PathBuf> = Vec::new();
    let result = (|| {
        for w in writes {
            let Some(mount) = mounts.get(w.controller) else {
                bail!(
                    "{}: the {} controller is not available on this host (neither cgroup v2 nor v1)",
                    w.field,
                    w.controller
                );
            };
            let d = dir(mount, w.controller, cgroups_path, id)?;
            if !d.exists() {
                std::fs::create_dir_all(&d)
                    .with_context(|| format!("create cgroup {}", d.display()))?;
                if w.controller == "cpuset" {
                    inherit_cpuset(&d)?;
                }
                created.push(d.clone());
            }
            for (file, value) in translate(w)? {
                std::fs::write(d.join(&file), &value).map_err(|e| {
                    anyhow::anyhow!(
                        "{}: write {value:?} to {}: {}",
                        w.field,
                        d.join(&file).display(),
                        crate::sys::errno_str(&e)
                    )
                })?;
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        remove(&created);
        return Err(e);
    }
    created.dedup();
    Ok(created)
}

/// A new v1 cpuset starts with no cpus and mems, and no task can join it until they are set:
/// start from the parent's.
fn inherit_cpuset(d: &Path) -> Result<()> {
    let parent = d.parent().context("cpuset cgroup has no parent")?;
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let mine = std::fs::read_to_string(d.join(f)).unwrap_or_default();
        if mine.trim().is_empty() {
            let v = std::fs::read_to_string(parent.join(f)).unwrap_or_default();
            std::fs::write(d.join(f), v.trim())
                .with_context(|| format!("set {}", d.join(f).display()))?;
        }
    }
    Ok(())
}

/// Puts `pid` in each of the container's v1 cgroups.
pub fn attach(dirs: &[PathBuf], pid: i32) -> Result<()> {
    for d in dirs {
        std::fs::write(d.join("cgroup.procs"), pid.to_string())
            .with_context(|| format!("join cgroup {}", d.display()))?;
    }
    Ok(())
}

/// Removes the container's v1 cgroups (deepest first), waiting for exited tasks to leave.
pub fn remove(dirs: &[PathBuf]) {
    for d in dirs.iter().rev() {
        for _ in 0..200 {
            match std::fs::remove_dir(d) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
    }
}
