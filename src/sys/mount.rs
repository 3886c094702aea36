//! Mounts, old and new API: mount(2), mount_setattr (flags, id mapping), open_tree and
//! move_mount, and mount ids.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::*;

/// The id of the mount `fd` is on (statx STATX_MNT_ID), as /proc/self/mountinfo numbers it.
pub fn mount_id(fd: RawFd) -> io::Result<u64> {
    const STATX_MNT_ID: u32 = 0x1000;
    // SAFETY: statx is plain data; all-zero is a valid value.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: empty path with AT_EMPTY_PATH on a valid fd; st is a valid out-parameter.
    check_int(unsafe {
        libc::statx(fd, c"".as_ptr(), libc::AT_EMPTY_PATH, STATX_MNT_ID, &mut st)
    })?;
    if st.stx_mask & STATX_MNT_ID == 0 {
        return Err(io::Error::from_raw_os_error(libc::ENOSYS));
    }
    Ok(st.stx_mnt_id)
}

fn opt_cstr(s: Option<&str>) -> io::Result<Option<CString>> {
    s.map(cstr).transpose()
}

pub fn mount(
    source: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let source = opt_cstr(source)?;
    let target = cstr(target)?;
    let fstype = opt_cstr(fstype)?;
    let data = opt_cstr(data)?;
    let p = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either null or a live NUL-terminated string.
    check_int(unsafe {
        libc::mount(
            p(&source),
            target.as_ptr(),
            p(&fstype),
            flags,
            p(&data) as *const libc::c_void,
        )
    })
    .map(drop)
}

pub fn umount2(target: &str, flags: i32) -> io::Result<()> {
    let t = cstr(target)?;
    // SAFETY: valid C string.
    check_int(unsafe { libc::umount2(t.as_ptr(), flags) }).map(drop)
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;

pub const MOUNT_ATTR_NOSUID: u64 = 0x2;

pub const MOUNT_ATTR_NODEV: u64 = 0x4;

pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;

pub const MOUNT_ATTR_RELATIME: u64 = 0x0;

pub const MOUNT_ATTR_NOATIME: u64 = 0x10;

pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;

pub const MOUNT_ATTR__ATIME: u64 = 0x70;

pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;

pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x200000;

/// mount_setattr(2) on the mount at `fd`, recursively: how `rro` and friends reach submounts,
/// which a plain MS_REMOUNT cannot do.
pub fn mount_setattr_recursive(fd: RawFd, set: u64, clr: u64) -> io::Result<()> {
    mount_setattr(fd, true, set, clr, 0)
}

/// mount_setattr(2) on the mount `fd` refers to (an O_PATH fd or an open_tree fd).
pub fn mount_setattr(
    fd: RawFd,
    recursive: bool,
    set: u64,
    clr: u64,
    propagation: u64,
) -> io::Result<()> {
    setattr(
        fd,
        recursive,
        &MountAttr {
            attr_set: set,
            attr_clr: clr,
            propagation,
            userns_fd: 0,
        },
    )
}

/// MOUNT_ATTR_IDMAP with the user namespace `userns` on a detached mount.
pub fn mount_setattr_idmap(fd: RawFd, recursive: bool, userns: RawFd) -> io::Result<()> {
    const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
    setattr(
        fd,
        recursive,
        &MountAttr {
            attr_set: MOUNT_ATTR_IDMAP,
            attr_clr: 0,
            propagation: 0,
            userns_fd: userns as u64,
        },
    )
}

fn setattr(fd: RawFd, recursive: bool, attr: &MountAttr) -> io::Result<()> {
    let empty = c"";
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: valid fd, empty path with AT_EMPTY_PATH, attr lives across the call.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            empty.as_ptr(),
            flags as libc::c_uint,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// open_tree(OPEN_TREE_CLONE): a detached copy of the mount(s) at `path`, to be configured
/// and then attached with move_mount.
pub fn open_tree_clone(path: &Path, recursive: bool) -> io::Result<OwnedFd> {
    open_tree_clone_at(libc::AT_FDCWD, &cstring(path)?, recursive)
}

/// open_tree(OPEN_TREE_CLONE) of what the (O_PATH) fd `fd` refers to.
pub fn open_tree_clone_fd(fd: RawFd, recursive: bool) -> io::Result<OwnedFd> {
    open_tree_clone_at(fd, c"", recursive)
}

fn open_tree_clone_at(dirfd: RawFd, path: &CStr, recursive: bool) -> io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    if path.is_empty() {
        flags |= libc::AT_EMPTY_PATH as libc::c_uint;
    }
    // SAFETY: valid C string; the kernel returns a new fd.
    let fd = check(unsafe { libc::syscall(libc::SYS_open_tree, dirfd, path.as_ptr(), flags) })?;
    // SAFETY: new fd owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// move_mount(2) of the detached mount `from` onto the directory or file `to` (both fds), so
/// the destination is exactly what was resolved, with no second lookup.
pub fn move_mount_fd(from: RawFd, to: RawFd) -> io::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    let empty = c"";
    // SAFETY: valid fds and empty paths with the EMPTY_PATH flags.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from,
            empty.as_ptr(),
            to,
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })
    .map(drop)
}
