//! Building the container's filesystem view inside its new mount namespace: the bundle's mounts
//! in order, devices, /dev symlinks, the console, masked and read-only paths, then pivot_root.
//!
//! Every destination comes from the image or the config, so it is resolved with
//! openat2(RESOLVE_IN_ROOT) against a dirfd of the rootfs and mounted through /proc/self/fd/N:
//! a symlink planted in the image can never make rt mount over a host path. All of this runs
//! before pivot_root, while "/proc" is still the host's procfs, which the image cannot touch.

mod bind;
mod cgroup;
mod devices;
mod options;
mod paths;
mod pivot;
mod resolve;

pub use bind::{detached_bind, idmap_userns};
pub use options::{
    FLAG_OPTIONS, IDMAP_OPTIONS, Options, PROPAGATION_OPTIONS, RECURSIVE_OPTIONS, parse_options,
    propagation_flag,
};
pub use paths::{finish_read_only_mounts, mask_paths, readonly_paths, readonly_root};
pub use pivot::{chroot_into, detach_mounts, mounts_under, pivot};
pub use resolve::{Kind, Root};

use bind::{copy_tree, is_bind, recursive_bind, remount_bind, remount_entry};
use devices::dev_symlinks;
use paths::read_only_later;
use pivot::{ensure_magic, make_parent_private};
use resolve::rel_components;

use anyhow::{Context, Result, bail};
use oci_spec::runtime::{Mount, Spec};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::sys::{self, fd_path};

const PROC_SUPER_MAGIC: i64 = 0x9fa0;

const SYSFS_MAGIC: i64 = 0x6265_6572;

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

    /// One mount entry: its options parsed, its destination resolved inside the rootfs, then
    /// one arm per kind (bind, cgroup, the special filesystems, any other). Kept whole so the
    /// order of those checks, which CVE fixes depend on, reads in one place.
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
        // A symlinked or non-directory /proc or /sys is how CVE-2019-19921 style attacks start.
        let target = if typ == "proc" || typ == "sysfs" {
            root.real_dir(dest)?
        } else {
            root.mkdir_all(dest, Kind::Dir)?
        };
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
        // The new mount, for what still acts on it; most entries need nothing more.
        let verify = matches!(typ, "proc" | "sysfs");
        let refine = o.rec_set != 0 || o.rec_clr != 0 || !o.propagation.is_empty();
        if lower.is_none() && !verify && !refine {
            return Ok(());
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
}
