//! cgroup v1, on v1 and hybrid hosts: where each hierarchy is mounted, the container's cgroup
//! in every one of them (membership, as runc does, so a later `update` finds them), the v1
//! files for the limits cgroup v2 can't take, the devices allow/deny lists and the freezer
//! where there is no cgroup v2, attaching the init, and removal.

use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use crate::cgroups::cgfs;
use crate::cgroups::resources::Write;

/// One mounted v1 hierarchy: where, and the controllers (or `name=...`) bound to it.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    pub mount: PathBuf,
    /// The cgroup the mount shows (mountinfo's root field): "/" on a host, the container's own
    /// cgroup when rt runs in a container without a cgroup namespace.
    pub root: PathBuf,
    pub controllers: Vec<String>,
}

/// Every v1 hierarchy, each once (the first mount of it), from /proc/self/mountinfo, read once
/// per call of rt.
pub fn hierarchies() -> &'static [Hierarchy] {
    static H: std::sync::OnceLock<Vec<Hierarchy>> = std::sync::OnceLock::new();
    H.get_or_init(|| {
        let info = crate::sys::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut out: Vec<Hierarchy> = Vec::new();
        for line in info.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mut r = right.split(' ');
            if r.next() != Some("cgroup") {
                continue;
            }
            let super_opts = r.nth(1).unwrap_or("");
            let mut l = left.split(' ');
            let (Some(root), Some(mp)) = (l.nth(3), l.next()) else {
                continue;
            };
            let controllers: Vec<String> = super_opts
                .split(',')
                .filter(|o| {
                    !matches!(*o, "rw" | "ro" | "clone_children" | "noprefix" | "xattr")
                        && (!o.contains('=') || o.starts_with("name="))
                        && !o.starts_with("release_agent")
                })
                .map(str::to_string)
                .collect();
            if controllers.is_empty() || out.iter().any(|h| h.controllers == controllers) {
                continue;
            }
            out.push(Hierarchy {
                mount: PathBuf::from(mp),
                root: PathBuf::from(root),
                controllers,
            });
        }
        out
    })
}

/// controller name → mount point of its v1 hierarchy.
pub fn mounts() -> &'static HashMap<String, PathBuf> {
    static M: std::sync::OnceLock<HashMap<String, PathBuf>> = std::sync::OnceLock::new();
    M.get_or_init(|| {
        let mut m = HashMap::new();
        for h in hierarchies() {
            for c in &h.controllers {
                m.insert(c.clone(), h.mount.clone());
            }
        }
        m
    })
}

/// The v1 name of a controller the limits name by their v2 name.
pub fn v1_name(controller: &str) -> &str {
    match controller {
        "io" => "blkio",
        c => c,
    }
}

/// rt's own cgroup in the v1 hierarchy that has `controller`.
fn own(controller: &str) -> String {
    for l in super::own_cgroups().lines() {
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

/// The container's directory in hierarchy `h`: an absolute cgroupsPath from the hierarchy's
/// root, a relative one (or `<id>`) under rt's own cgroup there, never above it. Where the
/// mount shows only part of the hierarchy (rt in a container), paths are taken from its root.
pub fn dir(h: &Hierarchy, cgroups_path: Option<&Path>, id: &str) -> Result<PathBuf> {
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
    // A path outside the part of the hierarchy mounted here is taken from the mount, as runc
    // does (Docker in Docker passes /docker/<id> without a cgroup namespace).
    let within = |abs: &Path| -> Result<PathBuf> {
        let rel = abs
            .strip_prefix(&h.root)
            .unwrap_or_else(|_| abs.strip_prefix("/").unwrap_or(abs));
        Ok(h.mount.join(rel))
    };
    if p.is_absolute() {
        within(&p)
    } else {
        within(&Path::new(&own(&h.controllers[0])).join(&p))
    }
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

/// The container's v1 cgroups: every one it is in, and those rt made (removed on delete).
#[derive(Debug, Default)]
pub struct Joined {
    pub dirs: Vec<PathBuf>,
    pub created: Vec<PathBuf>,
    /// The device rules are written to a v1 devices controller, which enforces exactly them.
    pub devices_exact: bool,
}

/// Makes the container's cgroup in every v1 hierarchy and writes the limits v2 can't take
/// (`writes`) and the device rules (with whether v1 alone enforces them).
/// On error, what was made is removed again.
pub fn join(
    writes: &[&Write],
    devices: Option<(&[crate::cgroups::devices::Rule], bool)>,
    cgroups_path: Option<&Path>,
    id: &str,
) -> Result<Joined> {
    let mut j = Joined::default();
    let result = (|| {
        let hier = hierarchies();
        for w in writes {
            let name = v1_name(w.controller);
            if !hier.iter().any(|h| h.controllers.iter().any(|c| c == name)) {
                match w.v2_missing {
                    Some(why) => bail!(
                        "{}: {why}, and this host has no v1 {name} controller",
                        w.field
                    ),
                    None => bail!(
                        "{}: the {} controller is not available on this host (neither cgroup v2 nor v1 {name})",
                        w.field,
                        w.controller
                    ),
                }
            }
        }
        for h in hier {
            let mine: Vec<&&Write> = writes
                .iter()
                .filter(|w| h.controllers.iter().any(|c| c == v1_name(w.controller)))
                .collect();
            let d = dir(h, cgroups_path, id)?;
            match make(&d, &mut j.created) {
                Ok(()) => {}
                // Rootless: membership where we may, limits nowhere we may not.
                Err(e) if mine.is_empty() && crate::sys::tolerate_cgroup_errors() => {
                    crate::logging::debug(&format!("cgroup v1 {}: {e:#}", d.display()));
                    continue;
                }
                Err(e) => return Err(e),
            }
            // As on v2: two containers in one cgroup would kill each other's processes on
            // delete.
            if !j.created.contains(&d)
                && cgfs::read_to_string(d.join("cgroup.procs")).is_ok_and(|p| !p.trim().is_empty())
            {
                bail!(
                    "cgroup {} already has processes: is another container using it?",
                    d.display()
                );
            }
            if h.controllers.iter().any(|c| c == "cpuset") {
                inherit_cpuset(&d, j.created.contains(&d))?;
            }
            for w in &mine {
                for (file, value) in translate(w)? {
                    write(&d, &file, &value, w.field)?;
                }
            }
            if let Some((rules, exact_required)) = devices
                && h.controllers.iter().any(|c| c == "devices")
            {
                j.devices_exact = write_device_rules(&d, rules, exact_required)?;
            }
            j.dirs.push(d);
        }
        Ok(())
    })();
    if let Err(e) = result {
        remove_made(&j);
        return Err(e);
    }
    Ok(j)
}

/// mkdir -p, recording each directory made (parents first). The mkdir comes first and the
/// parents only when it says they are missing: a container's cgroup is nearly always new, in
/// a parent that exists, and looking first cost two lookups per hierarchy.
fn make(d: &Path, created: &mut Vec<PathBuf>) -> Result<()> {
    let context = || format!("create cgroup {}", d.display());
    match cgfs::create_dir(d) {
        Ok(()) => created.push(d.to_path_buf()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent = d.parent().ok_or(e).with_context(context)?;
            make(parent, created)?;
            match cgfs::create_dir(d) {
                Ok(()) => created.push(d.to_path_buf()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).with_context(context),
            }
        }
        Err(e) => return Err(e).with_context(context),
    }
    Ok(())
}

/// Writes one limit file, failing with the field and the file's path. With BFQ (and no CFQ)
/// the weights live in blkio.bfq.*, as runc also finds them.
pub fn write(d: &Path, file: &str, value: &str, field: &str) -> Result<()> {
    let bfq = match file {
        "blkio.weight" => Some("blkio.bfq.weight"),
        "blkio.weight_device" => Some("blkio.bfq.weight_device"),
        _ => None,
    };
    let file = match bfq {
        Some(b) if !cgfs::exists(d.join(file)) && cgfs::exists(d.join(b)) => b,
        _ => file,
    };
    if !cgfs::exists(d.join(file)) {
        bail!(
            "{field}: {} does not exist: this kernel's {} controller lacks it",
            d.join(file).display(),
            file.split('.').next().unwrap_or(file)
        );
    }
    cgfs::write(d.join(file), value).map_err(|e| {
        anyhow::anyhow!(
            "{field}: write {value:?} to {}: {}",
            d.join(file).display(),
            crate::sys::errno_str(&e)
        )
    })
}

/// One allowed device range in the v1 devices controller's list.
#[derive(Debug, Clone, PartialEq)]
struct Exception {
    typ: char,
    major: Option<i64>,
    minor: Option<i64>,
    access: u32,
}

/// The device rules as the v1 controller's lines: `deny a`, then the exceptions left after
/// applying the rules in order (the controller keeps an allow list, and a deny only removes
/// the exceptions it covers). Also says whether that list is exact: a deny narrower than an
/// earlier, wider allow (deny c 10:200 after allow c 10:*) can't be expressed in v1.
pub fn device_lines(
    rules: &[crate::cgroups::devices::Rule],
) -> (Vec<(&'static str, String)>, bool) {
    let mut list: Vec<Exception> = Vec::new();
    let mut exact = true;
    let covers = |outer: Option<i64>, inner: Option<i64>| outer.is_none() || outer == inner;
    for r in rules {
        // "a" in a v1 line means every device with every access, whatever follows: a rule
        // for all types is written as its char and block halves.
        let types: &[char] = match r.typ {
            None => &['c', 'b'],
            Some(crate::cgroups::devices::DEV_BLOCK) => &['b'],
            Some(_) => &['c'],
        };
        for &typ in types {
            if r.allow {
                match list
                    .iter_mut()
                    .find(|e| e.typ == typ && e.major == r.major && e.minor == r.minor)
                {
                    Some(e) => e.access |= r.access,
                    None => list.push(Exception {
                        typ,
                        major: r.major,
                        minor: r.minor,
                        access: r.access,
                    }),
                }
                continue;
            }
            // Two ranges meet when each number is equal or a wildcard on either side.
            let meet = |a: Option<i64>, b: Option<i64>| a.is_none() || b.is_none() || a == b;
            for e in list.iter_mut().filter(|e| e.typ == typ) {
                if covers(r.major, e.major) && covers(r.minor, e.minor) {
                    e.access &= !r.access;
                } else if meet(e.major, r.major)
                    && meet(e.minor, r.minor)
                    && e.access & r.access != 0
                {
                    // Part of this allow is denied, and v1 can only drop whole entries.
                    exact = false;
                }
            }
            list.retain(|e| e.access != 0);
        }
    }
    let num = |n: Option<i64>| n.map_or("*".to_string(), |n| n.to_string());
    let mut out = vec![("devices.deny", "a".to_string())];
    for e in &list {
        let mut acc = String::new();
        for (bit, c) in [
            (crate::cgroups::devices::ACC_READ, 'r'),
            (crate::cgroups::devices::ACC_WRITE, 'w'),
            (crate::cgroups::devices::ACC_MKNOD, 'm'),
        ] {
            if e.access & bit != 0 {
                acc.push(c);
            }
        }
        out.push((
            "devices.allow",
            format!("{} {}:{} {acc}", e.typ, num(e.major), num(e.minor)),
        ));
    }
    (out, exact)
}

/// Writes the device rules; where v1 alone enforces them (`exact_required`: no eBPF filter
/// on a v2 cgroup), rules it can't express are an error rather than a wider list. Whether the
/// list written is exactly the rules.
fn write_device_rules(
    d: &Path,
    rules: &[crate::cgroups::devices::Rule],
    exact_required: bool,
) -> Result<bool> {
    let (lines, exact) = device_lines(rules);
    if !exact && exact_required {
        bail!(
            "linux.resources.devices: a deny rule narrower than an earlier allow rule can't be expressed in the cgroup v1 devices controller, and this host has no cgroup v2 for a device filter"
        );
    }
    // One open per file: the controller takes each write(2) as one rule, and a dozen opens of
    // the same two files were most of the cost (the rules are written for every container).
    let mut files: Vec<(&str, std::fs::File)> = Vec::new();
    for (file, line) in lines {
        let i = match files.iter().position(|(f, _)| *f == file) {
            Some(i) => i,
            None => {
                let path = d.join(file);
                let f = cgfs::open_write(&path)
                    .with_context(|| format!("linux.resources.devices: open {}", path.display()))?;
                files.push((file, f));
                files.len() - 1
            }
        };
        std::io::Write::write_all(&mut files[i].1, line.as_bytes()).map_err(|e| {
            anyhow::anyhow!(
                "linux.resources.devices: write {line:?} to {}: {}",
                d.join(file).display(),
                crate::sys::errno_str(&e)
            )
        })?;
    }
    Ok(exact)
}

/// A new v1 cpuset starts with no cpus and mems, and no task can join it until they are set:
/// start from the parent's. One rt just made (`fresh`) is not asked first: it is empty, or
/// already has its parent's (cgroup.clone_children), which are written again.
fn inherit_cpuset(d: &Path, fresh: bool) -> Result<()> {
    let parent = d.parent().context("cpuset cgroup has no parent")?;
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let mine = if fresh {
            String::new()
        } else {
            cgfs::read_to_string(d.join(f)).unwrap_or_default()
        };
        if mine.trim().is_empty() {
            // The parent may be new and empty too: fill it from its own parent first.
            let mut v = cgfs::read_to_string(parent.join(f)).unwrap_or_default();
            if v.trim().is_empty() && parent.parent().is_some() {
                inherit_cpuset(parent, false)?;
                v = cgfs::read_to_string(parent.join(f)).unwrap_or_default();
            }
            cgfs::write(d.join(f), v.trim())
                .with_context(|| format!("set {}", d.join(f).display()))?;
        }
    }
    Ok(())
}

/// Puts `pid` in each of the container's v1 cgroups.
pub fn attach(dirs: &[PathBuf], pid: i32) -> Result<()> {
    for d in dirs {
        cgfs::write(d.join("cgroup.procs"), pid.to_string())
            .with_context(|| format!("join cgroup {}", d.display()))?;
    }
    Ok(())
}

/// The container's directory in the hierarchy of `controller`, if it joined one.
pub fn dir_for<'a>(dirs: &'a [PathBuf], controller: &str) -> Option<&'a PathBuf> {
    let mount = mounts().get(controller)?;
    dirs.iter().find(|d| d.starts_with(mount))
}

/// The processes of the container's v1 cgroup (any hierarchy holds them all).
pub fn procs(dirs: &[PathBuf]) -> Result<Vec<i32>> {
    let d = dirs
        .iter()
        .find(|d| cgfs::exists(d.join("cgroup.procs")))
        .context("container has no cgroup")?;
    let text = cgfs::read_to_string(d.join("cgroup.procs"))
        .with_context(|| format!("read {}/cgroup.procs", d.display()))?;
    Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// The cgroup and every cgroup below it, parents first.
fn tree(d: &Path) -> Vec<PathBuf> {
    let mut out = vec![d.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(rd) = std::fs::read_dir(&out[i]) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    out.push(e.path());
                }
            }
        }
        i += 1;
    }
    out
}

fn members(d: &Path) -> Vec<i32> {
    tree(d)
        .iter()
        .flat_map(|c| {
            cgfs::read_to_string(c.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// Signals every process in the container's v1 cgroup and the cgroups below it (a systemd or
/// Docker inside makes some), each through a pidfd taken before checking it is still a member
/// (a reused pid is never hit). v1 has no cgroup.kill: for SIGKILL the freezer holds the
/// cgroup still, so a fork loop can't outrun us, and is thawed after.
pub fn signal_all(dirs: &[PathBuf], sig: i32) -> Result<()> {
    let d = dirs
        .iter()
        .find(|d| cgfs::exists(d.join("cgroup.procs")))
        .context("container has no cgroup")?;
    let froze = sig == libc::SIGKILL && !is_frozen(dirs) && freeze(dirs, true).is_ok();
    for pid in members(d) {
        let Ok(fd) = crate::sys::pidfd_open(pid) else {
            continue;
        };
        if members(d).contains(&pid) {
            let _ = crate::sys::pidfd_send_signal(&fd, sig);
        }
    }
    if froze {
        freeze(dirs, false)?;
    }
    Ok(())
}

/// Whether the container's v1 freezer cgroup is frozen.
pub fn is_frozen(dirs: &[PathBuf]) -> bool {
    dir_for(dirs, "freezer")
        .and_then(|d| cgfs::read_to_string(d.join("freezer.state")).ok())
        .is_some_and(|s| s.trim() == "FROZEN")
}

/// Freezes or thaws through the v1 freezer and waits until freezer.state says it is done
/// (FREEZING means some task has not stopped yet).
pub fn freeze(dirs: &[PathBuf], frozen: bool) -> Result<()> {
    let d = dir_for(dirs, "freezer").context("container has no freezer cgroup")?;
    let want = if frozen { "FROZEN" } else { "THAWED" };
    let state = d.join("freezer.state");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        // Writing again is how v1 retries a freeze that is stuck on a task in the kernel.
        cgfs::write(&state, want).with_context(|| format!("write {}", state.display()))?;
        let now =
            cgfs::read_to_string(&state).with_context(|| format!("read {}", state.display()))?;
        if now.trim() == want {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            if frozen {
                let _ = cgfs::write(&state, "THAWED");
            }
            bail!("{} did not become {want} within 10 s", d.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Removes the container's own v1 cgroups and any the container made below them (deepest
/// first), waiting briefly for exited tasks to leave.
pub fn remove(leaves: &[PathBuf]) {
    for leaf in leaves {
        // Nearly always the container made no cgroups of its own and its tasks are gone: one
        // rmdir, without listing the directory's dozens of files for sub-cgroups first.
        match cgfs::remove_dir(leaf) {
            Ok(()) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(_) => {}
        }
        for d in tree(leaf).iter().rev() {
            for _ in 0..200 {
                match cgfs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        }
    }
}

/// Undoes a failed create: the container's cgroups, then the parents made for them (once
/// each, deepest first: a parent that meanwhile holds another container's cgroup stays).
pub fn remove_made(j: &Joined) {
    let (leaves, mut parents): (Vec<PathBuf>, Vec<PathBuf>) =
        j.created.iter().cloned().partition(|d| j.dirs.contains(d));
    remove(&leaves);
    parents.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for p in parents {
        let _ = cgfs::remove_dir(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::devices::{ACC_MKNOD, ACC_READ, ACC_WRITE, DEV_CHAR, Rule};

    fn rule(allow: bool, typ: Option<i32>, major: Option<i64>, minor: Option<i64>) -> Rule {
        Rule {
            allow,
            typ,
            major,
            minor,
            access: ACC_READ | ACC_WRITE | ACC_MKNOD,
        }
    }

    fn lines(rules: &[Rule]) -> (Vec<String>, bool) {
        let (l, exact) = device_lines(rules);
        (
            l.into_iter().map(|(f, v)| format!("{f} {v}")).collect(),
            exact,
        )
    }

    #[test]
    fn type_a_with_numbers_is_split_not_written_as_a() {
        let (l, exact) = lines(&[rule(true, None, Some(1), Some(3))]);
        assert!(exact);
        assert_eq!(
            l,
            [
                "devices.deny a",
                "devices.allow c 1:3 rwm",
                "devices.allow b 1:3 rwm"
            ]
        );
    }

    #[test]
    fn a_covering_deny_removes_access_and_a_narrower_one_is_inexact() {
        let mut r = rule(false, Some(DEV_CHAR), Some(1), Some(3));
        r.access = ACC_WRITE;
        let (l, exact) = lines(&[rule(true, Some(DEV_CHAR), Some(1), Some(3)), r]);
        assert!(exact);
        assert_eq!(l, ["devices.deny a", "devices.allow c 1:3 rm"]);
        let (_, exact) = lines(&[
            rule(true, Some(DEV_CHAR), Some(10), None),
            rule(false, Some(DEV_CHAR), Some(10), Some(200)),
        ]);
        assert!(!exact);
        // Overlapping without either covering the other: allow c *:5, deny c 10:*.
        let (_, exact) = lines(&[
            rule(true, Some(DEV_CHAR), None, Some(5)),
            rule(false, Some(DEV_CHAR), Some(10), None),
        ]);
        assert!(!exact);
        // A deny of everything clears the list.
        let (l, exact) = lines(&[
            rule(true, Some(DEV_CHAR), Some(10), None),
            rule(false, None, None, None),
        ]);
        assert!(exact);
        assert_eq!(l, ["devices.deny a"]);
    }
}
