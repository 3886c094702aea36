//! After the mounts: masked and read-only paths, read-only bind remounts, a read-only root.

use anyhow::{Context, Result, bail};
use oci_spec::runtime::{Mount, Spec};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::sys::{self, fd_path};

use super::*;

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
pub(super) fn read_only_later(m: &Mount, o: &Options) -> bool {
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

/// `root.readonly`: the rootfs bind mount itself becomes read-only (submounts keep their own
/// flags, as in runc).
pub fn readonly_root(root: &Root) -> Result<()> {
    remount_bind(&root.fd, libc::MS_RDONLY).context("remount the rootfs read-only")
}
