//! Files and fds: openat2 with RESOLVE_* (paths inside a root), open/openat, fstat and
//! friends, close-on-exec, and unix-socket messages with fds (SCM_RIGHTS).

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::*;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;

pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;

pub const RESOLVE_IN_ROOT: u64 = 0x10;

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

/// open(2) by way of openat: musl's open() follows an O_CLOEXEC open with an fcntl setting
/// the flag again (for kernels older than 2.6.23), one trap too many.
pub fn open(path: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    openat(libc::AT_FDCWD, path, flags, mode)
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
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points at `space` bytes, enough for one cmsg carrying `fds`.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg) as *mut RawFd, fds.len());
    }
    // SAFETY: msg and everything it points to are live.
    check(unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) } as libc::c_long).map(drop)
}

/// Receives one message and the fd it carries, if any. A message longer than 64 KiB (a path
/// list is the longest rt sends) is an error, never a cut one.
pub fn recv_msg(sock: RawFd) -> io::Result<(Vec<u8>, Option<OwnedFd>)> {
    let (data, fds) = recv_msg_fds(sock, 1)?;
    Ok((data, fds.into_iter().next()))
}

/// Receives one message and up to `max_fds` fds sent with it. More fds than that (which the
/// kernel closes) or a message longer than 64 KiB is an error, never a cut one.
pub fn recv_msg_fds(sock: RawFd, max_fds: usize) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    // Not zeroed: a reused 64 KiB block would be written over in full (16 pages touched) for
    // the few bytes a message has; the kernel writes what it received and only that is kept.
    let mut data: Vec<u8> = Vec::with_capacity(64 << 10);
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.capacity(),
    };
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE((max_fds.max(1) * std::mem::size_of::<RawFd>()) as u32) }
        as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    // SAFETY: zeroed msghdr is valid; pointers below refer to live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg points to live buffers of the sizes given.
    let n =
        check(unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) } as libc::c_long)?;
    // SAFETY: recvmsg wrote n bytes (at most the capacity it was given) at the start of data.
    unsafe { data.set_len(n as usize) };
    let mut fds = Vec::new();
    // SAFETY: the control buffer was filled by the kernel (msg_controllen says how much, and
    // CMSG_NXTHDR stays within it); we read each header and, for SCM_RIGHTS, the fds it
    // counts, each taken once into an OwnedFd, so every fd received is closed if unused. All
    // messages are walked: another kind (credentials) may come first.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let len = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let first = libc::CMSG_DATA(cmsg) as *const RawFd;
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(first.add(i))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_TRUNC != 0 {
        return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADMSG));
    }
    Ok((data, fds))
}

/// Receives one fd sent with SCM_RIGHTS (the payload is ignored); EBADMSG without one.
pub fn recv_fd(sock: RawFd) -> io::Result<OwnedFd> {
    recv_msg(sock)?
        .1
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADMSG))
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

/// A new empty file `name` in `dirfd` (0644), never following a symlink planted there: EEXIST
/// if anything is at that name already.
pub fn create_excl(dirfd: RawFd, name: &std::ffi::CStr) -> io::Result<OwnedFd> {
    openat_c_mode(
        dirfd,
        name,
        libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_WRONLY,
        0o644,
    )
}

pub fn unlinkat(dirfd: RawFd, name: &std::ffi::CStr, flags: i32) -> io::Result<()> {
    // SAFETY: name is NUL-terminated.
    check_int(unsafe { libc::unlinkat(dirfd, name.as_ptr(), flags) }).map(drop)
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
