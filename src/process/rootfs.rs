//! Building the container's filesystem view inside its new mount namespace: the bundle's mounts
//! in order, devices, /dev symlinks, the console, masked and read-only paths, then pivot_root.
//!
//! Every destination comes from the image or the config, so it is resolved with
//! openat2(RESOLVE_IN_ROOT) against a dirfd of the rootfs and mounted through /proc/self/fd/N:
//! a symlink planted in the image can never make rt mount over a host path. All of this runs
//! before pivot_root, while "/proc" is still the host's procfs, which the image cannot touch.

use anyhow::{Context, Result, bail};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use crate::sys::{self, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, fd_path};

const PROC_SUPER_MAGIC: i64 = 0x9fa0;
const SYSFS_MAGIC: i64 = 0x6265_6572;

/// Propagation options and their mount(2) flags.
pub const PROPAGATION_OPTIONS: &[(&str, libc::c_ulong)] = &[
    ("private", libc::MS_PRIVATE),
    ("rprivate", libc::MS_PRIVATE | libc::MS_REC),
    ("shared", libc::MS_SHARED),
    ("rshared", libc::MS_SHARED | libc::MS_REC),
    ("slave", libc::MS_SLAVE),
    ("rslave", libc::MS_SLAVE | libc::MS_REC),
    ("unbindable", libc::MS_UNBINDABLE),
    ("runbindable", libc::MS_UNBINDABLE | libc::MS_REC),
];

pub fn propagation_flag(name: &str) -> Option<libc::c_ulong> {
    PROPAGATION_OPTIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
}

/// Options that are mount(2) flags: (name, flags set, flags cleared).
pub const FLAG_OPTIONS: &[(&str, libc::c_ulong, libc::c_ulong)] = &[
    ("ro", libc::MS_RDONLY, 0),
    ("rw", 0, libc::MS_RDONLY),
    ("nosuid", libc::MS_NOSUID, 0),
    ("suid", 0, libc::MS_NOSUID),
    ("nodev", libc::MS_NODEV, 0),
    ("dev", 0, libc::MS_NODEV),
    ("noexec", libc::MS_NOEXEC, 0),
    ("exec", 0, libc::MS_NOEXEC),
    ("sync", libc::MS_SYNCHRONOUS, 0),
    ("async", 0, libc::MS_SYNCHRONOUS),
    ("dirsync", libc::MS_DIRSYNC, 0),
    ("remount", libc::MS_REMOUNT, 0),
    ("mand", libc::MS_MANDLOCK, 0),
    ("nomand", 0, libc::MS_MANDLOCK),
    ("atime", 0, libc::MS_NOATIME),
    ("noatime", libc::MS_NOATIME, 0),
    ("diratime", 0, libc::MS_NODIRATIME),
    ("nodiratime", libc::MS_NODIRATIME, 0),
    ("bind", libc::MS_BIND, 0),
    ("rbind", libc::MS_BIND | libc::MS_REC, 0),
    ("relatime", libc::MS_RELATIME, 0),
    ("norelatime", 0, libc::MS_RELATIME),
    ("strictatime", libc::MS_STRICTATIME, 0),
    ("nostrictatime", 0, libc::MS_STRICTATIME),
    ("lazytime", libc::MS_LAZYTIME, 0),
    ("nolazytime", 0, libc::MS_LAZYTIME),
    ("silent", libc::MS_SILENT, 0),
    ("loud", 0, libc::MS_SILENT),
    ("iversion", libc::MS_I_VERSION, 0),
    ("noiversion", 0, libc::MS_I_VERSION),
    ("nosymfollow", libc::MS_NOSYMFOLLOW, 0),
    ("symfollow", 0, libc::MS_NOSYMFOLLOW),
];

/// runtime-spec 1.2 idmapped bind mounts (the mapping reaches submounts with `ridmap`).
pub const IDMAP_OPTIONS: &[&str] = &["idmap", "ridmap"];

/// runtime-spec 1.1 recursive attributes, applied with mount_setattr: (name, set, clear).
pub const RECURSIVE_OPTIONS: &[(&str, u64, u64)] = &[
    ("rro", sys::MOUNT_ATTR_RDONLY, 0),
    ("rrw", 0, sys::MOUNT_ATTR_RDONLY),
    ("rnosuid", sys::MOUNT_ATTR_NOSUID, 0),
    ("rsuid", 0, sys::MOUNT_ATTR_NOSUID),
    ("rnodev", sys::MOUNT_ATTR_NODEV, 0),
    ("rdev", 0, sys::MOUNT_ATTR_NODEV),
    ("rnoexec", sys::MOUNT_ATTR_NOEXEC, 0),
    ("rexec", 0, sys::MOUNT_ATTR_NOEXEC),
    ("rnodiratime", sys::MOUNT_ATTR_NODIRATIME, 0),
    ("rdiratime", 0, sys::MOUNT_ATTR_NODIRATIME),
    (
        "rrelatime",
        sys::MOUNT_ATTR_RELATIME,
        sys::MOUNT_ATTR__ATIME,
    ),
    ("rnoatime", sys::MOUNT_ATTR_NOATIME, sys::MOUNT_ATTR__ATIME),
    (
        "rstrictatime",
        sys::MOUNT_ATTR_STRICTATIME,
        sys::MOUNT_ATTR__ATIME,
    ),
    ("rnosymfollow", sys::MOUNT_ATTR_NOSYMFOLLOW, 0),
    ("rsymfollow", 0, sys::MOUNT_ATTR_NOSYMFOLLOW),
];

/// A mount entry's options split into what mount(2) takes as flags, the propagation changes
/// that need calls of their own, recursive attributes for mount_setattr, and fs data.
#[derive(Default, Debug)]
pub struct Options {
    pub flags: libc::c_ulong,
    /// Flags explicitly cleared (e.g. `rw`, `suid`): matter when remounting a bind mount.
    pub cleared: libc::c_ulong,
    pub propagation: Vec<libc::c_ulong>,
    pub rec_set: u64,
    pub rec_clr: u64,
    pub data: Vec<String>,
    /// `ridmap` (vs `idmap`): the id mapping reaches submounts too.
    pub idmap_recursive: bool,
    /// A detached mount tree already made for this entry (idmapped binds; see detached_bind).
    pub prepared: Option<std::os::fd::RawFd>,
    /// `tmpcopyup`: the new tmpfs starts with a copy of what the directory held.
    pub copyup: bool,
}

pub fn parse_options(opts: &[String]) -> Options {
    let mut o = Options::default();
    for opt in opts {
        let opt = opt.as_str();
        if let Some((_, set, clear)) = FLAG_OPTIONS.iter().find(|(n, _, _)| *n == opt) {
            o.flags = (o.flags | set) & !clear;
            o.cleared = (o.cleared | clear) & !set;
        } else if IDMAP_OPTIONS.contains(&opt) {
            o.idmap_recursive = opt == "ridmap";
        } else if opt == "tmpcopyup" {
            o.copyup = true;
        } else if let Some(p) = propagation_flag(opt) {
            o.propagation.push(p);
        } else if let Some((_, set, clr)) = RECURSIVE_OPTIONS.iter().find(|(n, _, _)| *n == opt) {
            o.rec_set |= set;
            o.rec_clr |= clr;
        } else {
            o.data.push(opt.to_string());
        }
    }
    o
}

/// Normalises a container path to its components, refusing nothing: `..` can't escape because
/// resolution happens with RESOLVE_IN_ROOT anyway.
fn rel_components(p: &Path) -> Vec<PathBuf> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(PathBuf::from(s)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// The rootfs as a directory fd; every container path is resolved relative to it.
pub struct Root {
    pub fd: OwnedFd,
}

impl Root {
    pub fn open(path: &Path) -> Result<Root> {
        let fd = sys::open(path, libc::O_PATH | libc::O_DIRECTORY, 0)
            .with_context(|| format!("open rootfs {}", path.display()))?;
        Ok(Root { fd })
    }

    /// Opens `path` inside the root (O_PATH); symlinks are followed but stay inside.
    pub fn resolve(&self, path: &Path, nofollow: bool) -> std::io::Result<OwnedFd> {
        let rel: PathBuf = rel_components(path).iter().collect();
        let rel = if rel.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            rel
        };
        let flags = libc::O_PATH | if nofollow { libc::O_NOFOLLOW } else { 0 };
        sys::openat2(
            self.fd.as_raw_fd(),
            &rel,
            flags,
            0,
            RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        )
    }

    /// Resolves `path` inside the root, creating what is missing (directories, and the last
    /// component as `kind`). Each new entry is made with *at() calls on an already resolved
    /// parent, so a racing symlink swap can't redirect the creation out of the rootfs.
    pub fn mkdir_all(&self, path: &Path, kind: Kind) -> Result<OwnedFd> {
        if let Ok(fd) = self.resolve(path, false) {
            return Ok(fd);
        }
        let mut comps = rel_components(path);
        // A dangling symlink on the way (`/evil -> /somewhere/new`) is followed inside the
        // root and its missing target created there, as runc does; 40 links at most, as the
        // kernel allows.
        for _ in 0..40 {
            match self.mkdir_walk(&comps, kind)? {
                Walk::Done(fd) => return Ok(fd),
                Walk::Relink(next) => comps = next,
            }
        }
        bail!("{}: too many levels of symbolic links", path.display())
    }

    fn mkdir_walk(&self, comps: &[PathBuf], kind: Kind) -> Result<Walk> {
        let mut parent = self.resolve(Path::new("."), false)?;
        let mut sofar = PathBuf::new();
        for (i, c) in comps.iter().enumerate() {
            sofar.push(c);
            let last = i + 1 == comps.len();
            let fd = match self.resolve(&sofar, false) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    let name = sys::cstring(c)?;
                    if let Some(target) = readlink_at(&parent, &name) {
                        // Re-plan from the link's target: absolute targets start at the root.
                        let mut next = if target.is_absolute() {
                            Vec::new()
                        } else {
                            comps[..i].to_vec()
                        };
                        next.extend(rel_components(&target));
                        next.extend(comps[i + 1..].iter().cloned());
                        return Ok(Walk::Relink(next));
                    }
                    let r = if last && kind == Kind::File {
                        // SAFETY: parent is a valid dirfd, name a valid C string.
                        let fd = unsafe {
                            libc::openat(
                                parent.as_raw_fd(),
                                name.as_ptr(),
                                libc::O_CREAT
                                    | libc::O_EXCL
                                    | libc::O_NOFOLLOW
                                    | libc::O_WRONLY
                                    | libc::O_CLOEXEC,
                                0o644,
                            )
                        };
                        if fd >= 0 {
                            // SAFETY: fd was just returned by openat.
                            unsafe { libc::close(fd) };
                        }
                        fd
                    } else {
                        // SAFETY: as above.
                        unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o755) }
                    };
                    if r < 0 {
                        let e = std::io::Error::last_os_error();
                        if e.raw_os_error() != Some(libc::EEXIST) {
                            return Err(e).with_context(|| {
                                format!("create {} in the rootfs", sofar.display())
                            });
                        }
                    }
                    self.resolve(&sofar, false)
                        .with_context(|| format!("open {} in the rootfs", sofar.display()))?
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("open {} in the rootfs", sofar.display()));
                }
            };
            parent = fd;
        }
        Ok(Walk::Done(parent))
    }
}

enum Walk {
    Done(OwnedFd),
    Relink(Vec<PathBuf>),
}

/// The target of `name` in `dir` if it is a symlink.
fn readlink_at(dir: &OwnedFd, name: &std::ffi::CStr) -> Option<PathBuf> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: buf is valid for its length; dir is an O_PATH dirfd.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n <= 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(PathBuf::from(
        <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(buf),
    ))
}

fn is_bind(m: &Mount, o: &Options) -> bool {
    m.typ().as_deref() == Some("bind") || o.flags & libc::MS_BIND != 0
}

/// Copies the directory `from` into `to` (tmpcopyup): subdirectories, files, symlinks and
/// device nodes, with their modes and owners. Everything is opened relative to an fd already
/// held, never followed through a symlink, so the image can't point the copy elsewhere.
fn copy_tree(from: OwnedFd, to: OwnedFd) -> Result<()> {
    let to_raw = to.as_raw_fd();
    let mut dir =
        nix::dir::Dir::from_fd(from).map_err(|e| anyhow::anyhow!("read directory: {e}"))?;
    let from_raw = dir.as_raw_fd();
    let names: Vec<std::ffi::CString> = dir
        .iter()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect();
    for name in names {
        let shown = String::from_utf8_lossy(name.as_bytes()).into_owned();
        let st = sys::fstatat_nofollow(from_raw, &name).with_context(|| shown.clone())?;
        let mode = st.st_mode & 0o7777;
        // SAFETY (all blocks below): *at() calls on directory fds we hold, with a name that
        // is one path component (a directory entry).
        let kind = st.st_mode & libc::S_IFMT;
        match kind {
            libc::S_IFDIR => {
                if unsafe { libc::mkdirat(to_raw, name.as_ptr(), 0o700) } != 0 {
                    return Err(std::io::Error::last_os_error()).with_context(|| shown);
                }
                let dir_flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
                let sub_from =
                    sys::openat_c(from_raw, &name, dir_flags).with_context(|| shown.clone())?;
                let sub_to =
                    sys::openat_c(to_raw, &name, dir_flags).with_context(|| shown.clone())?;
                copy_tree(sub_from, sub_to).with_context(|| shown.clone())?;
            }
            libc::S_IFREG => {
                let src = sys::openat_c(from_raw, &name, libc::O_RDONLY | libc::O_NOFOLLOW)
                    .with_context(|| shown.clone())?;
                let dst = sys::openat_c_mode(
                    to_raw,
                    &name,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                    0o600,
                )
                .with_context(|| shown.clone())?;
                let (mut src, mut dst) = (std::fs::File::from(src), std::fs::File::from(dst));
                std::io::copy(&mut src, &mut dst).with_context(|| shown.clone())?;
            }
            libc::S_IFLNK => {
                let target = sys::readlinkat(from_raw, &name).with_context(|| shown.clone())?;
                if unsafe { libc::symlinkat(target.as_ptr(), to_raw, name.as_ptr()) } != 0 {
                    return Err(std::io::Error::last_os_error()).with_context(|| shown);
                }
            }
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
                if unsafe { libc::mknodat(to_raw, name.as_ptr(), st.st_mode, st.st_rdev) } != 0 {
                    return Err(std::io::Error::last_os_error()).with_context(|| shown);
                }
            }
            // Sockets belong to whoever listened on them: nothing to copy.
            _ => continue,
        }
        // Owner and mode last, for every kind alike: a read-only directory was still filled,
        // and no umask trims the mode (a symlink has none to set).
        unsafe {
            libc::fchownat(
                to_raw,
                name.as_ptr(),
                st.st_uid,
                st.st_gid,
                libc::AT_SYMLINK_NOFOLLOW,
            );
            if kind != libc::S_IFLNK {
                libc::fchmodat(to_raw, name.as_ptr(), mode, 0);
            }
        }
    }
    Ok(())
}

/// `remount`, as runc: the entry changes the flags (and, for a filesystem, the data) of what is
/// already mounted at its destination, typically by an earlier entry; with `bind`, only that
/// mount's own flags. Nothing new is mounted and nothing is created.
fn remount_entry(root: &Root, m: &Mount, o: &Options) -> Result<()> {
    let dest = m.destination();
    let target = root
        .resolve(dest, false)
        .with_context(|| format!("remount: {}", dest.display()))?;
    let bind = is_bind(m, o);
    let flags = o.flags & !(libc::MS_REC | if bind { 0 } else { libc::MS_BIND });
    let data = o.data.join(",");
    sys::mount(
        None,
        &fd_path(target.as_raw_fd()),
        None,
        flags | libc::MS_REMOUNT,
        (!bind && !data.is_empty()).then_some(data.as_str()),
    )
    .context("remount")?;
    Ok(())
}

/// Opens a bind source on rt's host side (see Setup::host_source).
pub type SourceOpener<'a> = dyn Fn(&Path) -> Result<OwnedFd> + 'a;

/// Everything done in the new mount namespace before pivot_root.
pub struct Setup<'a> {
    pub spec: &'a Spec,
    /// Per mount entry: the user namespace fd its idmapped bind uses (see idmap_userns).
    pub idmaps: &'a [Option<std::os::fd::RawFd>],
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub userns: bool,
    /// Whether the container has a mount namespace of its own. Without one (the config lists
    /// none) the mounts are made in the runtime's, and "/"'s propagation is left alone.
    pub own_mntns: bool,
    /// Whether the container has a cgroup namespace of its own (then cgroup filesystems are
    /// mounted fresh, rooted at its cgroups; otherwise its cgroup directories are bound).
    pub cgroupns: bool,
    /// The container's cgroup v2 directory, if it has one.
    pub v2_cgroup: Option<PathBuf>,
    /// The container's v1 cgroup directories (v1 and hybrid hosts).
    pub v1_cgroups: &'a [PathBuf],
    /// In a user namespace, the container's root may not reach a bind source that the host's
    /// root can (a 0700 directory on the way): this asks rt's host side for an O_PATH fd of
    /// it, opened in the container's mount namespace.
    pub host_source: Option<&'a SourceOpener<'a>>,
}

impl Setup<'_> {
    /// Returns the rootfs handle, with every mount, device and path mask in place.
    pub fn prepare(&self) -> Result<Root> {
        let linux = self.spec.linux().as_ref();
        let prop = linux
            .and_then(|l| l.rootfs_propagation().as_deref())
            .and_then(propagation_flag);
        if self.own_mntns {
            // Never let our mounts propagate back to the host, unless the config asks for
            // sharing.
            sys::mount(
                None,
                "/",
                None,
                prop.unwrap_or(libc::MS_SLAVE | libc::MS_REC),
                None,
            )
            .context("make / a slave mount")?;
            // With an explicit (possibly non-recursive or shared) mode, other mounts may still
            // be shared with the host: a private parent keeps the rootfs's mounts from leaking
            // out and lets pivot_root work.
            if prop.is_some() {
                make_parent_private(self.rootfs)?;
            }
        } else if prop.is_some() {
            bail!("linux.rootfsPropagation: needs a mount namespace of the container's own");
        }
        let rootfs = self.rootfs.to_str().context("rootfs path is not UTF-8")?;
        sys::mount(
            Some(rootfs),
            rootfs,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )
        .with_context(|| format!("bind mount rootfs {rootfs}"))?;
        let root = Root::open(self.rootfs)?;

        let mut dev_bound = false;
        for (i, m) in self.spec.mounts().iter().flatten().enumerate() {
            self.mount_entry(&root, m, self.idmaps.get(i).copied().flatten())
                .with_context(|| {
                    format!(
                        "mounts: {} ({})",
                        m.destination().display(),
                        m.typ().as_deref().unwrap_or("bind")
                    )
                })?;
            let o = parse_options(m.options().as_deref().unwrap_or(&[]));
            if is_bind(m, &o) && rel_components(m.destination()) == [PathBuf::from("dev")] {
                dev_bound = true;
            }
        }
        if let Some(process) = self.spec.process() {
            root.mkdir_all(process.cwd(), Kind::Dir)
                .with_context(|| format!("process.cwd {}", process.cwd().display()))?;
        }
        if !dev_bound {
            self.default_devices(&root)?;
            dev_symlinks(&root)?;
        }
        for d in linux
            .and_then(|l| l.devices().as_ref())
            .into_iter()
            .flatten()
        {
            self.device(&root, d)
                .with_context(|| format!("linux.devices: {}", d.path().display()))?;
        }
        Ok(root)
    }

    fn mount_entry(&self, root: &Root, m: &Mount, idmap: Option<std::os::fd::RawFd>) -> Result<()> {
        let mut o = parse_options(m.options().as_deref().unwrap_or(&[]));
        let dest = m.destination();
        let typ = m.typ().as_deref().unwrap_or("");
        if o.copyup && typ != "tmpfs" {
            bail!("tmpcopyup is only for tmpfs mounts");
        }
        if o.flags & libc::MS_REMOUNT != 0 {
            return remount_entry(root, m, &o);
        }
        if is_bind(m, &o) {
            o.prepared = idmap;
            return self.bind_entry(root, m, &o);
        }
        if typ.is_empty() || typ == "none" {
            bail!("type is required for a non-bind mount");
        }
        let target = root.mkdir_all(dest, Kind::Dir)?;
        // A symlinked or non-directory /proc or /sys is how CVE-2019-19921 style attacks start.
        if typ == "proc" || typ == "sysfs" {
            let direct = root.resolve(dest, true)?;
            let st = sys::fstat(direct.as_raw_fd())?;
            if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                bail!("destination must be a real directory, not a symlink or file");
            }
        }
        // v1 and hybrid hosts: what runc shows, a tmpfs with one directory per hierarchy.
        // (A pure v2 host with only a named v1 hierarchy, such as name=systemd for old
        // images, keeps cgroup2: runc decides by what /sys/fs/cgroup is.)
        if typ == "cgroup"
            && !crate::cgroups::v1::hierarchies().is_empty()
            && crate::cgroups::v2::v2_mount().as_deref() != Some(Path::new("/sys/fs/cgroup"))
        {
            return self.cgroup_v1_tree(root, dest, &o);
        }
        let typ = if typ == "cgroup" { "cgroup2" } else { typ };
        let source = m
            .source()
            .as_ref()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| typ.to_string());
        let data = o.data.join(",");
        // linux.mountLabel applies to the filesystems that take a `context=` (not the
        // kernel's own views: proc, sysfs, cgroup, mqueue).
        let data = if matches!(typ, "proc" | "sysfs" | "cgroup2" | "mqueue") {
            data
        } else {
            crate::process::security::lsm::mount_data(
                &data,
                self.spec
                    .linux()
                    .as_ref()
                    .and_then(|l| l.mount_label().as_deref()),
            )
        };
        let mut flags = o.flags & !(libc::MS_REMOUNT | libc::MS_BIND | libc::MS_REC);
        if read_only_later(m, &o) {
            flags &= !libc::MS_RDONLY;
        }
        // tmpcopyup: the directory as it is before the tmpfs hides it, to copy from.
        let lower = if o.copyup {
            let fd = sys::openat(
                target.as_raw_fd(),
                Path::new("."),
                libc::O_RDONLY | libc::O_DIRECTORY,
                0,
            )
            .context("tmpcopyup: open the directory")?;
            Some(fd)
        } else {
            None
        };
        // Read-only comes after the copy.
        if lower.is_some() {
            flags &= !libc::MS_RDONLY;
        }
        let res = sys::mount(
            Some(&source),
            &fd_path(target.as_raw_fd()),
            Some(typ),
            flags,
            (!data.is_empty()).then_some(data.as_str()),
        );
        if let Err(e) = res {
            // Filesystems a user namespace may not mount fresh when it does not own the
            // matching namespace (sysfs: network, mqueue: ipc, cgroup2: cgroup, or a hybrid
            // host): bind the host's instead, as runc does, with the entry's flags.
            let denied = e.raw_os_error() == Some(libc::EPERM);
            let host: Option<PathBuf> = match typ {
                // The container's own cgroup, not the host's whole tree.
                "cgroup2" => self.v2_cgroup_source(),
                "sysfs" if denied && self.userns => Some("/sys".into()),
                "mqueue" if denied && self.userns => Some("/dev/mqueue".into()),
                _ => None,
            };
            let Some(host) = host else {
                return Err(e).with_context(|| format!("mount {typ}"));
            };
            let mut bind = parse_options(m.options().as_deref().unwrap_or(&[]));
            if typ == "cgroup2" {
                bind.flags |= libc::MS_RDONLY;
            }
            let bind = recursive_bind(bind);
            return self
                .bind(root, &host, dest, &bind)
                .with_context(|| format!("bind the host's {typ} ({})", host.display()));
        }
        let after = root.resolve(dest, false)?;
        if let Some(lower) = lower {
            let upper = sys::openat(
                after.as_raw_fd(),
                Path::new("."),
                libc::O_RDONLY | libc::O_DIRECTORY,
                0,
            )
            .context("tmpcopyup: open the tmpfs")?;
            copy_tree(lower, upper).context("tmpcopyup")?;
            if o.flags & libc::MS_RDONLY != 0 && !read_only_later(m, &o) {
                sys::mount_setattr(after.as_raw_fd(), false, sys::MOUNT_ATTR_RDONLY, 0, 0)
                    .context("tmpcopyup: make read-only")?;
            }
        }
        if typ == "proc" {
            ensure_magic(&after, PROC_SUPER_MAGIC, "proc")?;
        } else if typ == "sysfs" {
            ensure_magic(&after, SYSFS_MAGIC, "sysfs")?;
        }
        self.finish(&after, &o)
    }

    /// The container's v2 cgroup directory, else the host's v2 mount.
    fn v2_cgroup_source(&self) -> Option<PathBuf> {
        self.v2_cgroup.clone().or_else(crate::cgroups::v2::v2_mount)
    }

    /// A `cgroup` mount on a v1 or hybrid host: a tmpfs at `dest` holding each v1 hierarchy
    /// (mounted fresh in a cgroup namespace, else the container's own directory bound), names
    /// for co-mounted controllers as symlinks, and cgroup v2 as `unified` on hybrid hosts. The
    /// entry's flags (ro, nosuid...) apply to all of it.
    fn cgroup_v1_tree(&self, root: &Root, dest: &Path, o: &Options) -> Result<()> {
        let flags = o.flags & !(libc::MS_REMOUNT | libc::MS_BIND | libc::MS_REC);
        let target = root.mkdir_all(dest, Kind::Dir)?;
        sys::mount(
            Some("tmpfs"),
            &fd_path(target.as_raw_fd()),
            Some("tmpfs"),
            (flags & !libc::MS_RDONLY) | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some("mode=755"),
        )
        .context("mount tmpfs for the cgroup hierarchies")?;
        let tmpfs = root.resolve(dest, false)?;
        // One hierarchy at dest/name: a fresh mount (`fresh`: type and data) where the cgroup
        // namespace allows it, else `host` bound.
        let each = |name: &str, fresh: Option<(&str, &str)>, host: Option<PathBuf>| -> Result<()> {
            let sub = root.mkdir_all(&dest.join(name), Kind::Dir)?;
            let mounted = match fresh {
                Some((typ, data)) => sys::mount(
                    Some("cgroup"),
                    &fd_path(sub.as_raw_fd()),
                    Some(typ),
                    flags,
                    (!data.is_empty()).then_some(data),
                ),
                None => Err(std::io::Error::from_raw_os_error(libc::EPERM)),
            };
            match (mounted, host) {
                (Ok(()), _) => Ok(()),
                (Err(_), Some(host)) => {
                    let mut bind = parse_options(&[]);
                    bind.flags = flags;
                    self.bind(root, &host, &dest.join(name), &recursive_bind(bind))
                        .with_context(|| format!("bind cgroup {}", host.display()))
                }
                (Err(e), None) => Err(e).with_context(|| format!("mount cgroup {name}")),
            }
        };
        for h in crate::cgroups::v1::hierarchies() {
            let name = h
                .mount
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| h.controllers.join(","));
            // A hierarchy with only a name is mounted with "none" (no controller).
            let named_only = h.controllers.iter().all(|c| c.starts_with("name="));
            let data = if named_only {
                format!("none,{}", h.controllers.join(","))
            } else {
                h.controllers.join(",")
            };
            let own = self
                .v1_cgroups
                .iter()
                .find(|d| d.starts_with(&h.mount))
                .cloned();
            // Without a cgroup namespace a fresh mount would show the host's whole hierarchy:
            // bind the container's own directory instead.
            if self.cgroupns {
                each(&name, Some(("cgroup", &data)), own)?;
            } else if let Some(src) = own {
                each(&name, None, Some(src))?;
            } else {
                // No cgroup of its own there (rootless): an empty directory, never the host's.
                root.mkdir_all(&dest.join(&name), Kind::Dir)?;
            }
            for c in h
                .controllers
                .iter()
                .filter(|c| !c.starts_with("name=") && **c != name)
            {
                let t = sys::cstr(&name)?;
                let n = sys::cstr(c)?;
                // SAFETY: valid dirfd and C strings.
                if unsafe { libc::symlinkat(t.as_ptr(), tmpfs.as_raw_fd(), n.as_ptr()) } != 0 {
                    let e = std::io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(e).with_context(|| format!("symlink cgroup {c}"));
                    }
                }
            }
        }
        if crate::cgroups::v2::v2_mount().is_some() {
            // The container's own v2 cgroup, never the host's whole tree.
            let own = self.v2_cgroup.clone();
            if self.cgroupns {
                each("unified", Some(("cgroup2", "")), own)?;
            } else if own.is_some() {
                each("unified", None, own)?;
            } else {
                root.mkdir_all(&dest.join("unified"), Kind::Dir)?;
            }
        }
        if flags & libc::MS_RDONLY != 0 {
            sys::mount_setattr(tmpfs.as_raw_fd(), false, sys::MOUNT_ATTR_RDONLY, 0, 0)
                .context("make the cgroup tmpfs read-only")?;
        }
        // The entry's propagation and recursive attributes, as for any mount.
        self.finish(&tmpfs, o)
    }

    fn bind_entry(&self, root: &Root, m: &Mount, o: &Options) -> Result<()> {
        let src = m.source().as_ref().context("a bind mount needs a source")?;
        let src = if src.is_absolute() {
            src.clone()
        } else {
            self.bundle.join(src)
        };
        self.bind(root, &src, m.destination(), o)
    }

    fn bind(&self, root: &Root, src: &Path, dest: &Path, o: &Options) -> Result<()> {
        let source_error =
            |e: std::io::Error| anyhow::anyhow!("source {}: {}", src.display(), sys::errno_str(&e));
        let fd_is_dir = |fd: std::os::fd::RawFd| -> Result<bool> {
            let st = sys::fstat(fd).with_context(|| format!("source {}", src.display()))?;
            Ok(st.st_mode & libc::S_IFMT == libc::S_IFDIR)
        };
        let mut by_host = None;
        let is_dir = if let Some(tree) = o.prepared {
            fd_is_dir(tree)?
        } else {
            match std::fs::metadata(src) {
                Ok(meta) => meta.is_dir(),
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    let open = self.host_source.ok_or_else(|| source_error(e))?;
                    let fd = open(src)?;
                    let is_dir = fd_is_dir(fd.as_raw_fd())?;
                    by_host = Some(fd);
                    is_dir
                }
                Err(e) => return Err(source_error(e)),
            }
        };
        let target = root.mkdir_all(dest, if is_dir { Kind::Dir } else { Kind::File })?;
        // A detached copy of the source, given its flags before anyone can see it, attached to
        // the destination fd, then adjusted through its own fd: no path is looked up twice,
        // so a rename race can't move any of it onto another mount. Idmapped ones were made
        // by rt beforehand (see detached_bind).
        let own;
        let tree = match (o.prepared, by_host) {
            (Some(fd), _) => fd,
            (None, Some(fd)) => {
                let tree = sys::open_tree_clone_fd(fd.as_raw_fd(), o.flags & libc::MS_REC != 0)
                    .with_context(|| format!("bind {}", src.display()))?;
                own = configure_tree(tree, o, None)?;
                own.as_raw_fd()
            }
            (None, None) => {
                own = detached_bind(src, o, None)?;
                own.as_raw_fd()
            }
        };
        sys::move_mount_fd(tree, target.as_raw_fd()).context("attach the bind mount")?;
        for p in &o.propagation {
            sys::mount_setattr(tree, p & libc::MS_REC != 0, 0, 0, p & !libc::MS_REC)
                .context("set mount propagation")?;
        }
        Ok(())
    }

    fn finish(&self, target: &OwnedFd, o: &Options) -> Result<()> {
        if o.rec_set != 0 || o.rec_clr != 0 {
            sys::mount_setattr_recursive(target.as_raw_fd(), o.rec_set, o.rec_clr)
                .context("mount_setattr")?;
        }
        for p in &o.propagation {
            sys::mount(None, &fd_path(target.as_raw_fd()), None, *p, None)
                .context("set mount propagation")?;
        }
        Ok(())
    }

    fn default_devices(&self, root: &Root) -> Result<()> {
        let dev = root.mkdir_all(Path::new("/dev"), Kind::Dir)?;
        for (name, major, minor) in [
            ("null", 1, 3),
            ("zero", 1, 5),
            ("full", 1, 7),
            ("random", 1, 8),
            ("urandom", 1, 9),
            ("tty", 5, 0),
        ] {
            let host = format!("/dev/{name}");
            self.make_node(&dev, name, &host, libc::S_IFCHR | 0o666, major, minor, 0, 0)
                .with_context(|| format!("create /dev/{name}"))?;
        }
        Ok(())
    }

    fn device(&self, root: &Root, d: &LinuxDevice) -> Result<()> {
        let path = d.path();
        if !path.is_absolute() || !path.starts_with("/dev") {
            bail!("device path must be absolute and under /dev");
        }
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => bail!("type 'a' is only valid in device cgroup rules"),
        };
        let parent_path = path.parent().unwrap_or(Path::new("/dev"));
        let name = path.file_name().context("device path has no file name")?;
        let parent = root.mkdir_all(parent_path, Kind::Dir)?;
        let mode = d.file_mode().unwrap_or(0o666) & 0o7777;
        self.make_node(
            &parent,
            &name.to_string_lossy(),
            &path.to_string_lossy(),
            kind | mode,
            d.major() as u32,
            d.minor() as u32,
            d.uid().unwrap_or(0),
            d.gid().unwrap_or(0),
        )
    }

    /// mknod, or in a user namespace (where mknod is not allowed) a bind mount of the host node.
    #[allow(clippy::too_many_arguments)]
    fn make_node(
        &self,
        dir: &OwnedFd,
        name: &str,
        host: &str,
        mode: u32,
        major: u32,
        minor: u32,
        uid: u32,
        gid: u32,
    ) -> Result<()> {
        let cname = sys::cstr(name)?;
        if self.userns {
            // SAFETY: dir is a valid dirfd, cname a valid C string. A node the image already
            // has is only opened as a path (opening a device could block or fail).
            let mut fd = unsafe {
                libc::openat(
                    dir.as_raw_fd(),
                    cname.as_ptr(),
                    libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_NOFOLLOW
                        | libc::O_WRONLY
                        | libc::O_CLOEXEC,
                    0o644,
                )
            };
            if fd < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EEXIST) {
                // SAFETY: as above.
                fd = unsafe {
                    libc::openat(
                        dir.as_raw_fd(),
                        cname.as_ptr(),
                        libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                    )
                };
            }
            if fd < 0 {
                return Err(std::io::Error::last_os_error()).context("create bind target");
            }
            // SAFETY: fd was just opened by us.
            let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            return sys::mount(
                Some(host),
                &fd_path(fd.as_raw_fd()),
                None,
                libc::MS_BIND,
                None,
            )
            .with_context(|| format!("bind {host}"));
        }
        // SAFETY: valid dirfd and C string; makedev is pure.
        let r = unsafe {
            libc::mknodat(
                dir.as_raw_fd(),
                cname.as_ptr(),
                mode,
                libc::makedev(major, minor),
            )
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EEXIST) {
                return Ok(());
            }
            return Err(e).context("mknod");
        }
        // mknod honours the umask; the config's mode is what the node must have.
        // SAFETY: as above.
        unsafe {
            if libc::fchmodat(
                dir.as_raw_fd(),
                cname.as_ptr(),
                mode & 0o7777,
                libc::AT_SYMLINK_NOFOLLOW,
            ) != 0
                && libc::fchmodat(dir.as_raw_fd(), cname.as_ptr(), mode & 0o7777, 0) != 0
            {
                return Err(std::io::Error::last_os_error()).context("chmod");
            }
            if libc::fchownat(
                dir.as_raw_fd(),
                cname.as_ptr(),
                uid,
                gid,
                libc::AT_SYMLINK_NOFOLLOW,
            ) != 0
            {
                return Err(std::io::Error::last_os_error()).context("chown");
            }
        }
        Ok(())
    }
}

fn dev_symlinks(root: &Root) -> Result<()> {
    let dev = root.mkdir_all(Path::new("/dev"), Kind::Dir)?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        let t = sys::cstr(target)?;
        let n = sys::cstr(name)?;
        // SAFETY: valid dirfd and C strings.
        if unsafe { libc::symlinkat(t.as_ptr(), dev.as_raw_fd(), n.as_ptr()) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(e).with_context(|| format!("symlink /dev/{name}"));
            }
        }
    }
    Ok(())
}

/// open_tree(OPEN_TREE_CLONE) of `src` with the entry's flags, and the id mapping of `userns`
/// when given. Idmapping needs CAP_SYS_ADMIN over the source's superblock, which a container
/// in its own user namespace lacks: rt calls this itself before the clone and hands the
/// detached tree to the init, which only attaches it.
pub fn detached_bind(
    src: &Path,
    o: &Options,
    userns: Option<std::os::fd::RawFd>,
) -> Result<OwnedFd> {
    let tree = sys::open_tree_clone(src, o.flags & libc::MS_REC != 0)
        .with_context(|| format!("bind {}", src.display()))?;
    configure_tree(tree, o, userns)
}

/// Gives a detached tree the entry's flags, and the id mapping of `userns` when given.
fn configure_tree(
    tree: OwnedFd,
    o: &Options,
    userns: Option<std::os::fd::RawFd>,
) -> Result<OwnedFd> {
    let (set, clr) = top_attrs(o.flags, o.cleared);
    if set != 0 || clr != 0 {
        sys::mount_setattr(tree.as_raw_fd(), false, set, clr, 0).context("mount_setattr")?;
    }
    if o.rec_set != 0 || o.rec_clr != 0 {
        sys::mount_setattr(tree.as_raw_fd(), true, o.rec_set, o.rec_clr, 0)
            .context("mount_setattr (recursive)")?;
    }
    if let Some(userns) = userns {
        sys::mount_setattr_idmap(tree.as_raw_fd(), o.idmap_recursive, userns)
            .context("idmap the mount")?;
    }
    Ok(tree)
}

/// A user namespace carrying `uid`/`gid` maps, for MOUNT_ATTR_IDMAP: a short-lived child
/// creates it, rt writes its maps and keeps a handle on it, and the child goes.
pub fn idmap_userns(
    uid: &[oci_spec::runtime::LinuxIdMapping],
    gid: &[oci_spec::runtime::LinuxIdMapping],
) -> Result<OwnedFd> {
    let mut p = [0; 2];
    // SAFETY: pipe2 into a valid array.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe");
    }
    // SAFETY: both fds are new and ours.
    let (r, w) = unsafe {
        use std::os::fd::FromRawFd;
        (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1]))
    };
    match sys::clone3(libc::CLONE_NEWUSER as u64, None, false).context("clone3 for an idmap")? {
        sys::Forked::Child => {
            drop(w);
            let mut b = [0u8; 1];
            // SAFETY: wait for rt to close the pipe, then leave without running anything else.
            unsafe {
                libc::read(r.as_raw_fd(), b.as_mut_ptr().cast(), 1);
                libc::_exit(0)
            }
        }
        sys::Forked::Parent { pid, .. } => {
            drop(r);
            let fmt = |m: &[oci_spec::runtime::LinuxIdMapping]| {
                m.iter()
                    .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
                    .collect::<String>()
            };
            let result = (|| {
                std::fs::write(format!("/proc/{pid}/uid_map"), fmt(uid))
                    .context("idmap uid_map")?;
                std::fs::write(format!("/proc/{pid}/gid_map"), fmt(gid))
                    .context("idmap gid_map")?;
                sys::open(
                    Path::new(&format!("/proc/{pid}/ns/user")),
                    libc::O_RDONLY,
                    0,
                )
                .context("open the idmap user namespace")
            })();
            drop(w);
            // SAFETY: reaping our own child.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            result
        }
    }
}

/// A host tree bound in place of a filesystem the container may not mount fresh: recursive,
/// since it has submounts (/sys/fs/cgroup, debugfs...), and ro and the other restrictions of
/// `o` must reach them too, not just the top.
fn recursive_bind(mut o: Options) -> Options {
    o.flags |= libc::MS_BIND | libc::MS_REC;
    let (set, clr) = top_attrs(o.flags, 0);
    o.rec_set |= set;
    o.rec_clr |= clr & sys::MOUNT_ATTR__ATIME;
    o
}

/// The per-mount flags of mount(2) options as mount_setattr attributes (set, clear).
fn top_attrs(flags: libc::c_ulong, cleared: libc::c_ulong) -> (u64, u64) {
    let mut set = 0;
    let mut clr = 0;
    for (ms, attr) in [
        (libc::MS_RDONLY, sys::MOUNT_ATTR_RDONLY),
        (libc::MS_NOSUID, sys::MOUNT_ATTR_NOSUID),
        (libc::MS_NODEV, sys::MOUNT_ATTR_NODEV),
        (libc::MS_NOEXEC, sys::MOUNT_ATTR_NOEXEC),
        (libc::MS_NODIRATIME, sys::MOUNT_ATTR_NODIRATIME),
        (libc::MS_NOSYMFOLLOW, sys::MOUNT_ATTR_NOSYMFOLLOW),
    ] {
        if flags & ms != 0 {
            set |= attr;
        } else if cleared & ms != 0 {
            clr |= attr;
        }
    }
    // Access-time modes are one field: setting one clears the others.
    for (ms, attr) in [
        (libc::MS_NOATIME, sys::MOUNT_ATTR_NOATIME),
        (libc::MS_STRICTATIME, sys::MOUNT_ATTR_STRICTATIME),
        (libc::MS_RELATIME, sys::MOUNT_ATTR_RELATIME),
    ] {
        if flags & ms != 0 {
            set |= attr;
            clr |= sys::MOUNT_ATTR__ATIME;
        }
    }
    (set, clr)
}

/// Remounts a bind mount with new flags, keeping the flags the kernel would refuse to drop
/// (those locked by a less privileged mount namespace).
fn remount_bind(target: &OwnedFd, flags: libc::c_ulong) -> Result<()> {
    // SAFETY: zeroed statvfs is a valid out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, st is a valid out pointer.
    if unsafe { libc::fstatvfs(target.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error()).context("statvfs");
    }
    let locked = st.f_flag
        & (libc::ST_NOSUID
            | libc::ST_NODEV
            | libc::ST_NOEXEC
            | libc::ST_NOATIME
            | libc::ST_NODIRATIME
            | libc::ST_RELATIME);
    let mut keep: libc::c_ulong = 0;
    for (st_flag, ms_flag) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if locked & st_flag != 0 {
            keep |= ms_flag;
        }
    }
    let first = sys::mount(
        None,
        &fd_path(target.as_raw_fd()),
        None,
        libc::MS_BIND | libc::MS_REMOUNT | flags,
        None,
    );
    if first.is_err() {
        sys::mount(
            None,
            &fd_path(target.as_raw_fd()),
            None,
            libc::MS_BIND | libc::MS_REMOUNT | flags | keep,
            None,
        )
        .context("remount bind mount")?;
    }
    Ok(())
}

fn ensure_magic(fd: &OwnedFd, magic: i64, what: &str) -> Result<()> {
    if sys::fstatfs_magic(fd.as_raw_fd())? != magic {
        bail!("the {what} mount is not a real {what} filesystem");
    }
    Ok(())
}

/// pivot_root needs the rootfs's parent mount not to be shared.
fn make_parent_private(rootfs: &Path) -> Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").context("read mountinfo")?;
    let mut best: Option<String> = None;
    for line in info.lines() {
        let Some(mp) = line.split(' ').nth(4) else {
            continue;
        };
        let mp = unescape_mountinfo(mp);
        if rootfs.starts_with(&mp) && best.as_ref().is_none_or(|b| mp.len() > b.len()) {
            best = Some(mp);
        }
    }
    let mp = best.unwrap_or_else(|| "/".into());
    sys::mount(None, &mp, None, libc::MS_PRIVATE, None)
        .with_context(|| format!("make {mp} private"))
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// maskedPaths: files get the container's /dev/null bound over them (after checking it *is*
/// the 1:3 char device, CVE-2025-31133), directories an empty read-only tmpfs.
pub fn mask_paths(root: &Root, paths: &[String]) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let null = root
        .resolve(Path::new("/dev/null"), true)
        .context("maskedPaths: open /dev/null")?;
    let st = sys::fstat(null.as_raw_fd())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != libc::makedev(1, 3) {
        bail!("maskedPaths: /dev/null in the container is not the null device");
    }
    for p in paths {
        let target = match root.resolve(Path::new(p), true) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e).with_context(|| format!("maskedPaths: {p}")),
        };
        let st = sys::fstat(target.as_raw_fd())?;
        let r = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            // Empty and read-only, but listable (as runc): programs that walk a masked
            // directory see nothing instead of failing. One block and one inode (its root)
            // are all it can ever hold; some distribution kernels want two inodes.
            let mask = |data| {
                sys::mount(
                    Some("tmpfs"),
                    &fd_path(target.as_raw_fd()),
                    Some("tmpfs"),
                    libc::MS_RDONLY,
                    Some(data),
                )
            };
            mask("nr_blocks=1,nr_inodes=1").or_else(|_| mask("nr_blocks=1,nr_inodes=2"))
        } else if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            continue;
        } else {
            sys::mount(
                Some(&fd_path(null.as_raw_fd())),
                &fd_path(target.as_raw_fd()),
                None,
                libc::MS_BIND,
                None,
            )
        };
        r.with_context(|| format!("maskedPaths: {p}"))?;
    }
    Ok(())
}

/// A read-only tmpfs, or a read-only /dev, is mounted writable and made read-only only by
/// `finish_read_only_mounts`, once the mounts, devices, console and masks beneath it are in
/// place (a read-only /dev with /dev/pts, /dev/shm below is the common case). As runc.
fn read_only_later(m: &Mount, o: &Options) -> bool {
    o.flags & libc::MS_RDONLY != 0
        && !is_bind(m, o)
        && (m.typ().as_deref() == Some("tmpfs")
            || rel_components(m.destination()) == [PathBuf::from("dev")])
}

pub fn finish_read_only_mounts(root: &Root, spec: &Spec) -> Result<()> {
    for m in spec.mounts().iter().flatten() {
        let o = parse_options(m.options().as_deref().unwrap_or(&[]));
        if !read_only_later(m, &o) {
            continue;
        }
        let dest = m.destination();
        let fd = root
            .resolve(dest, false)
            .with_context(|| format!("mounts: {}: make read-only", dest.display()))?;
        sys::mount_setattr(fd.as_raw_fd(), false, sys::MOUNT_ATTR_RDONLY, 0, 0)
            .with_context(|| format!("mounts: {}: make read-only", dest.display()))?;
    }
    Ok(())
}

pub fn readonly_paths(root: &Root, paths: &[String]) -> Result<()> {
    for p in paths {
        let target = match root.resolve(Path::new(p), false) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e).with_context(|| format!("readonlyPaths: {p}")),
        };
        sys::mount(
            Some(&fd_path(target.as_raw_fd())),
            &fd_path(target.as_raw_fd()),
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )
        .with_context(|| format!("readonlyPaths: {p}"))?;
        let top = root.resolve(Path::new(p), false)?;
        sys::mount_setattr_recursive(top.as_raw_fd(), sys::MOUNT_ATTR_RDONLY, 0)
            .with_context(|| format!("readonlyPaths: {p}"))?;
    }
    Ok(())
}

/// Without a mount namespace of its own the container shares the runtime's: pivot_root would
/// move the host's root, so the process is chrooted into the rootfs instead (as runc does).
pub fn chroot_into(rootfs: &Path) -> Result<()> {
    std::env::set_current_dir(rootfs).context("chdir rootfs")?;
    let dot = sys::cstr(".")?;
    // SAFETY: valid C string.
    if unsafe { libc::chroot(dot.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error()).context("chroot rootfs");
    }
    std::env::set_current_dir("/").context("chdir /")
}

/// The mount ids at or under `rootfs` in this mount namespace, deepest path first.
pub fn mounts_under(rootfs: &Path) -> Vec<(u64, PathBuf)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<(u64, PathBuf)> = info
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let id = f.next()?.parse().ok()?;
            let mp = PathBuf::from(unescape_mountinfo(f.nth(3)?));
            (mp == rootfs || mp.starts_with(rootfs)).then_some((id, mp))
        })
        .collect();
    out.sort_by_key(|(id, mp)| {
        (
            std::cmp::Reverse(mp.components().count()),
            std::cmp::Reverse(*id),
        )
    });
    out
}

/// Detaches the mounts at or under `rootfs` whose mount id `ours` picks: what a container
/// without its own mount namespace mounted in the runtime's. Each is opened without following
/// symlinks and checked to still be that mount before it is detached through its fd, so a path
/// the container swapped for a symlink can't aim this at another mount.
pub fn detach_mounts(rootfs: &Path, ours: impl Fn(u64) -> bool) {
    // A mount made over another hides it: repeat until none of ours is left.
    for _ in 0..64 {
        let mine: Vec<(u64, PathBuf)> = mounts_under(rootfs)
            .into_iter()
            .filter(|(id, _)| ours(*id))
            .collect();
        if mine.is_empty() {
            return;
        }
        let mut progress = false;
        for (id, mp) in mine {
            let Ok(fd) = sys::openat2(
                libc::AT_FDCWD,
                &mp,
                libc::O_PATH | libc::O_NOFOLLOW,
                0,
                sys::RESOLVE_NO_SYMLINKS,
            ) else {
                continue;
            };
            if sys::mount_id(fd.as_raw_fd()).ok() != Some(id) {
                continue;
            }
            let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
            progress |= sys::umount2(&path, libc::MNT_DETACH).is_ok();
        }
        if !progress {
            return;
        }
    }
}

/// Makes the rootfs "/" and detaches the old root, so no host path stays reachable.
pub fn pivot(rootfs: &Path, no_pivot: bool) -> Result<()> {
    let rootfs_s = rootfs.to_str().context("rootfs path is not UTF-8")?;
    if no_pivot {
        hide_host_proc_and_sys(rootfs)?;
        std::env::set_current_dir(rootfs).context("chdir rootfs")?;
        sys::mount(Some(rootfs_s), "/", None, libc::MS_MOVE, None).context("move rootfs to /")?;
        let dot = sys::cstr(".")?;
        // SAFETY: valid C string.
        if unsafe { libc::chroot(dot.as_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error()).context("chroot");
        }
        std::env::set_current_dir("/").context("chdir /")?;
        return Ok(());
    }
    let old = sys::open(Path::new("/"), libc::O_DIRECTORY | libc::O_RDONLY, 0)?;
    let new = sys::open(rootfs, libc::O_DIRECTORY | libc::O_RDONLY, 0)?;
    // SAFETY: fchdir/pivot_root/umount2 on fds and literal paths we own.
    unsafe {
        if libc::fchdir(new.as_raw_fd()) != 0 {
            return Err(std::io::Error::last_os_error()).context("chdir rootfs");
        }
        let dot = c".";
        if libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) != 0 {
            return Err(std::io::Error::last_os_error()).context("pivot_root");
        }
        if libc::fchdir(old.as_raw_fd()) != 0 {
            return Err(std::io::Error::last_os_error()).context("chdir old root");
        }
    }
    // The old root is stacked under "."; make it a slave so unmounting it never reaches the
    // host, then detach it.
    sys::mount(None, ".", None, libc::MS_SLAVE | libc::MS_REC, None)
        .context("make old root slave")?;
    sys::umount2(".", libc::MNT_DETACH).context("detach old root")?;
    std::env::set_current_dir("/").context("chdir /")?;
    Ok(())
}

/// Without pivot_root the host's mounts stay in the container's mount namespace, outside its
/// chroot. A full (unmasked) procfs or sysfs among them would let a user-namespaced container
/// mount a fresh, unmasked one of its own (the kernel allows that when a fully visible
/// instance exists in the namespace), undoing maskedPaths. As runc: detach them, or cover
/// them with an empty tmpfs where detaching is refused.
fn hide_host_proc_and_sys(rootfs: &Path) -> Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").context("read mountinfo")?;
    let full_views: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| {
            let (before, after) = l.split_once(" - ")?;
            let mut f = before.split(' ');
            let root = f.nth(3)?;
            let mp = PathBuf::from(unescape_mountinfo(f.next()?));
            let fstype = after.split(' ').next()?;
            (root == "/" && matches!(fstype, "proc" | "sysfs") && !mp.starts_with(rootfs))
                .then_some(mp)
        })
        .collect();
    for mp in full_views {
        let p = mp.to_str().context("mount point is not UTF-8")?;
        // Never let the unmount reach the host.
        match sys::mount(None, p, None, libc::MS_SLAVE | libc::MS_REC, None) {
            // Gone with a parent detached before it.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            r => r.with_context(|| format!("--no-pivot: make {p} a slave"))?,
        }
        if let Err(e) = sys::umount2(p, libc::MNT_DETACH) {
            if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::EPERM)) {
                return Err(e).with_context(|| format!("--no-pivot: detach {p}"));
            }
            sys::mount(Some("tmpfs"), p, Some("tmpfs"), 0, None)
                .with_context(|| format!("--no-pivot: cover {p}"))?;
        }
    }
    Ok(())
}

/// `root.readonly`: the rootfs bind mount itself becomes read-only (submounts keep their own
/// flags, as in runc).
pub fn readonly_root(root: &Root) -> Result<()> {
    remount_bind(&root.fd, libc::MS_RDONLY).context("remount the rootfs read-only")
}
