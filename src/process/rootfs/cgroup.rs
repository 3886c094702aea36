//! The container's /sys/fs/cgroup: cgroup2 (its own namespace's view) or, on v1 and hybrid
//! hosts, a tmpfs with a bind of each v1 hierarchy's container cgroup, as runc mounts it.

use anyhow::{Context, Result};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::sys::{self, fd_path};

use super::*;

impl Setup<'_> {
    /// The container's v2 cgroup directory, else the host's v2 mount.
    pub(super) fn v2_cgroup_source(&self) -> Option<PathBuf> {
        self.v2_cgroup.clone().or_else(crate::cgroups::v2::v2_mount)
    }

    /// A `cgroup` mount on a v1 or hybrid host: a tmpfs at `dest` holding each v1 hierarchy
    /// (mounted fresh in a cgroup namespace, else the container's own directory bound), names
    /// for co-mounted controllers as symlinks, and cgroup v2 as `unified` on hybrid hosts. The
    /// entry's flags (ro, nosuid...) apply to all of it.
    pub(super) fn cgroup_v1_tree(&self, root: &Root, dest: &Path, o: &Options) -> Result<()> {
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
}
