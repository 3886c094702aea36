//! Leaving the host: pivot_root (or chroot without a mount namespace), the old root detached,
//! and the mounts a shared-namespace container added, found again for delete.

use anyhow::{Context, Result, bail};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::sys::{self};

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
    let info = crate::sys::read_to_string("/proc/self/mountinfo").unwrap_or_default();
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
pub(super) fn hide_host_proc_and_sys(rootfs: &Path) -> Result<()> {
    let info = crate::sys::read_to_string("/proc/self/mountinfo").context("read mountinfo")?;
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

/// pivot_root needs the rootfs's parent mount not to be shared.
pub(super) fn make_parent_private(rootfs: &Path) -> Result<()> {
    let info = crate::sys::read_to_string("/proc/self/mountinfo").context("read mountinfo")?;
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

pub(super) fn unescape_mountinfo(s: &str) -> String {
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

pub(super) fn ensure_magic(fd: &OwnedFd, magic: i64, what: &str) -> Result<()> {
    if sys::fstatfs_magic(fd.as_raw_fd())? != magic {
        bail!("the {what} mount is not a real {what} filesystem");
    }
    Ok(())
}
