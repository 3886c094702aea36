//! Thin, safe wrappers over the raw system calls rt needs and libc/nix do not wrap (or wrap
//! differently across versions). Every wrapper returns `io::Result` so callers can add context.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Turns a `-1` return into the thread's errno.
pub fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn check_int(ret: libc::c_int) -> io::Result<libc::c_int> {
    check(ret as libc::c_long).map(|r| r as libc::c_int)
}

pub fn cstring(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

pub fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `struct clone_args` of clone3(2), version 2 (with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// The result of a successful clone3: in the parent the child's pid (and a pidfd when asked);
/// in the child `Child`.
pub enum Forked {
    Parent {
        pid: libc::pid_t,
        pidfd: Option<OwnedFd>,
    },
    Child,
}

/// clone3 without CLONE_VM: a fork that can create namespaces, hand back a pidfd and start the
/// child directly in a cgroup. The caller must be single-threaded (rt never starts threads), so
/// the child may keep using the allocator and everything else like after fork(2).
pub fn clone3(flags: u64, cgroup: Option<RawFd>, want_pidfd: bool) -> io::Result<Forked> {
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags,
        // With CLONE_PARENT the kernel reuses the caller's own exit signal and refuses another.
        exit_signal: if flags & libc::CLONE_PARENT as u64 != 0 {
            0
        } else {
            libc::SIGCHLD as u64
        },
        ..Default::default()
    };
    if want_pidfd {
        args.flags |= libc::CLONE_PIDFD as u64;
        args.pidfd = &mut pidfd as *mut libc::c_int as u64;
    }
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: args is a valid clone_args of the size we pass; without CLONE_VM the child gets
    // its own copy of the address space, so returning twice is like fork(2).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match check(ret)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            pid: pid as libc::pid_t,
            // SAFETY: the kernel stored a fresh pidfd we now own when CLONE_PIDFD was set.
            pidfd: want_pidfd.then(|| unsafe { OwnedFd::from_raw_fd(pidfd) }),
        }),
    }
}

pub const CLONE_INTO_CGROUP: u64 = 0x200000000;

/// For a staged start: clone3(CLONE_PARENT), so the new process is rt's child, and hold it
/// back until the caller (the intermediate process) has exited. Whatever the child then sends
/// rt arrives after the intermediate's own last message ("pid N").
pub fn clone_parent_gated() -> io::Result<Forked> {
    let mut p = [0; 2];
    // SAFETY: pipe2 into a valid array.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds are new and ours.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
    let forked = clone3(libc::CLONE_PARENT as u64, None, false)?;
    if let Forked::Child = forked {
        drop(w);
        let mut b = [0u8; 1];
        // SAFETY: blocks until every write end is closed: the intermediate's, at its exit.
        unsafe { libc::read(r.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
    } else {
        // The write end stays open in the intermediate until it exits.
        std::mem::forget(w);
    }
    Ok(forked)
}

pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: the kernel returned a new fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub fn pidfd_send_signal(pidfd: &OwnedFd, sig: i32) -> io::Result<()> {
    // SAFETY: valid fd, null siginfo is allowed.
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })
    .map(drop)
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_IN_ROOT: u64 = 0x10;

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

/// openat2(2): the only sound way to resolve a path chosen by an image inside its rootfs, since
/// RESOLVE_IN_ROOT keeps `..` and absolute symlinks from leaving `dirfd`.
pub fn openat2(
    dirfd: RawFd,
    path: &Path,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let c = cstring(path)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: mode as u64,
        resolve,
    };
    loop {
        // SAFETY: c and how live across the call; size matches struct open_how v0.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd,
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        match check(r) {
            // SAFETY: new fd owned by us.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
            // EAGAIN: a concurrent rename raced the lookup; the kernel asks us to retry.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
            Err(e) => return Err(e),
        }
    }
}

pub fn open(path: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = cstring(path)?;
    // SAFETY: c is a valid NUL-terminated path.
    let fd = check_int(unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, mode) })?;
    // SAFETY: new fd owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn openat(dirfd: RawFd, path: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = cstring(path)?;
    // SAFETY: c is a valid NUL-terminated path.
    let fd = check_int(unsafe { libc::openat(dirfd, c.as_ptr(), flags | libc::O_CLOEXEC, mode) })?;
    // SAFETY: new fd owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `/proc/self/fd/N`: lets path-based syscalls (mount, chmod) act on an fd we resolved safely.
pub fn fd_path(fd: RawFd) -> String {
    format!("/proc/self/fd/{fd}")
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

pub fn setns(fd: RawFd, nstype: i32) -> io::Result<()> {
    // SAFETY: plain syscall.
    check_int(unsafe { libc::setns(fd, nstype) }).map(drop)
}

pub fn unshare(flags: i32) -> io::Result<()> {
    // SAFETY: plain syscall.
    check_int(unsafe { libc::unshare(flags) }).map(drop)
}

pub fn write_fd(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for buf.len() bytes.
    check(unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) as libc::c_long })
        .map(|n| n as usize)
}

/// Marks every fd from `first` on close-on-exec, so the container inherits none of rt's fds,
/// while rt can keep using the ones it still needs until execve.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: plain syscall with integer arguments.
    match check(unsafe {
        libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC)
    }) {
        Ok(_) => Ok(()),
        // Kernels before 5.11 lack CLOSE_RANGE_CLOEXEC: mark each possible fd instead (no
        // /proc is needed, which a container's config may not mount).
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) => {
            let mut rl = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: rl is a valid out-parameter.
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) };
            let end = rl.rlim_cur.clamp(1024, 1 << 20) as RawFd;
            for fd in first as RawFd..end {
                match set_cloexec(fd, true) {
                    Err(e) if e.raw_os_error() == Some(libc::EBADF) => {}
                    other => other?,
                }
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

pub fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl on an fd number; an invalid fd just errors.
    let flags = check_int(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    let new = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    // SAFETY: as above.
    check_int(unsafe { libc::fcntl(fd, libc::F_SETFD, new) }).map(drop)
}

pub fn prctl(option: i32, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: the prctl options rt uses take integer arguments only.
    check_int(unsafe {
        libc::prctl(
            option,
            arg,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })
    .map(drop)
}

pub fn fstatfs_magic(fd: RawFd) -> io::Result<i64> {
    // SAFETY: zeroed statfs is a valid out-parameter.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid out pointer.
    check_int(unsafe { libc::fstatfs(fd, &mut st) })?;
    Ok(st.f_type as i64)
}

/// An extended attribute's value (up to 64 bytes: rt reads only short flags), or None when
/// it is unset or unreadable.
pub fn getxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = cstring(path).ok()?;
    let n = cstr(name).ok()?;
    let mut buf = [0u8; 64];
    // SAFETY: both strings are NUL-terminated, and buf is writable for its length.
    let len = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(len).ok().map(|l| buf[..l].to_vec())
}

pub fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: zeroed stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid out pointer.
    check_int(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

pub fn errno_str(e: &io::Error) -> String {
    match e.raw_os_error() {
        // SAFETY: strerror returns a static string for any errno.
        Some(n) => unsafe { CStr::from_ptr(libc::strerror(n)) }
            .to_string_lossy()
            .to_lowercase(),
        None => e.to_string(),
    }
}

/// Sends `fds` with one message over a unix socket (SCM_RIGHTS).
pub fn send_fds(sock: RawFd, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of_val(fds) as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: zeroed msghdr is valid; we fill in pointers to live buffers below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: msg_control points at `space` bytes, enough for one cmsg carrying `fds`.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as usize;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg) as *mut RawFd, fds.len());
    }
    // SAFETY: msg and everything it points to are live.
    check(unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) } as libc::c_long).map(drop)
}

/// Receives one message and the fd it carries, if any.
pub fn recv_msg(sock: RawFd) -> io::Result<(Vec<u8>, Option<OwnedFd>)> {
    let mut data = vec![0u8; 8192];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    // SAFETY: zeroed msghdr is valid; pointers below refer to live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: msg points to live buffers of the sizes given.
    let n =
        check(unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) } as libc::c_long)?;
    data.truncate(n as usize);
    // SAFETY: the control buffer was filled by the kernel; we only read what it wrote.
    let fd = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if !cmsg.is_null()
            && (*cmsg).cmsg_level == libc::SOL_SOCKET
            && (*cmsg).cmsg_type == libc::SCM_RIGHTS
        {
            Some(OwnedFd::from_raw_fd(std::ptr::read_unaligned(
                libc::CMSG_DATA(cmsg) as *const RawFd,
            )))
        } else {
            None
        }
    };
    Ok((data, fd))
}

/// Receives one fd sent with SCM_RIGHTS (the payload is ignored).
pub fn recv_fd(sock: RawFd) -> io::Result<OwnedFd> {
    let mut data = [0u8; 256];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    // SAFETY: zeroed msghdr is valid; pointers below refer to live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: msg points to live buffers of the sizes given.
    check(unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) } as libc::c_long)?;
    // SAFETY: the control buffer was filled by the kernel; we only read a header it wrote.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Err(io::Error::from_raw_os_error(libc::EBADMSG));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const RawFd);
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// `--rootless`: Some(true|false) when given as such, None for auto (the default).
static ROOTLESS_FLAG: std::sync::OnceLock<Option<bool>> = std::sync::OnceLock::new();

pub fn set_rootless_flag(flag: Option<bool>) {
    let _ = ROOTLESS_FLAG.set(flag);
}

/// Whether a cgroup rt may not create is run without rather than an error: `--rootless true`,
/// or auto and either not root or root of a user namespace (whose cgroups are its parent's
/// to delegate), as runc decides.
pub fn tolerate_cgroup_errors() -> bool {
    match ROOTLESS_FLAG.get().copied().flatten() {
        Some(f) => f,
        None => rootless() || in_user_namespace(),
    }
}

/// Whether this process is in a user namespace other than the initial one (whose uid map is
/// the whole range).
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
}

/// Running without root (rootless mode): maps, cgroups and devices are limited to what an
/// unprivileged user may do.
pub fn rootless() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() != 0 }
}

/// Reads the start time (clock ticks since boot, field 22 of /proc/PID/stat) and the state
/// letter: together with the pid they identify a process even after its pid is reused.
pub fn proc_start_time(pid: libc::pid_t) -> Option<(u64, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3 (state), so field 22 is index 19 from here.
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state))
}

/// openat of one directory entry given as a C string (no path parsing of ours).
pub fn openat_c(dirfd: RawFd, name: &std::ffi::CStr, flags: i32) -> io::Result<OwnedFd> {
    openat_c_mode(dirfd, name, flags, 0)
}

pub fn openat_c_mode(
    dirfd: RawFd,
    name: &std::ffi::CStr,
    flags: i32,
    mode: u32,
) -> io::Result<OwnedFd> {
    // SAFETY: name is NUL-terminated; the new fd is owned right away.
    let fd =
        check_int(unsafe { libc::openat(dirfd, name.as_ptr(), flags | libc::O_CLOEXEC, mode) })?;
    // SAFETY: new fd owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// fstatat without following a final symlink.
pub fn fstatat_nofollow(dirfd: RawFd, name: &std::ffi::CStr) -> io::Result<libc::stat> {
    // SAFETY: zeroed stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: name is NUL-terminated, st a valid out pointer.
    check_int(unsafe { libc::fstatat(dirfd, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
}

/// A symlink's target, as bytes.
pub fn readlinkat(dirfd: RawFd, name: &std::ffi::CStr) -> io::Result<CString> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: buf is valid for its length; name is NUL-terminated.
    let n = unsafe { libc::readlinkat(dirfd, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    CString::new(buf).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// poll(2) for POLLIN on `fds`, retried on EINTR: the revents, in order.
pub fn poll_in(fds: &[i32], timeout_ms: i32) -> io::Result<Vec<i16>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: p is a valid array of pollfd of its length.
        let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        return Ok(p.iter().map(|x| x.revents).collect());
    }
}
