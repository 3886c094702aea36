//! Processes: clone3 (and the CLONE_PARENT fallback), pidfds, namespaces, prctl, and what
//! /proc says about a pid.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::*;

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

pub fn setns(fd: RawFd, nstype: i32) -> io::Result<()> {
    // SAFETY: plain syscall.
    check_int(unsafe { libc::setns(fd, nstype) }).map(drop)
}

pub fn unshare(flags: i32) -> io::Result<()> {
    // SAFETY: plain syscall.
    check_int(unsafe { libc::unshare(flags) }).map(drop)
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

/// Whether rt runs in a user namespace other than the initial one (whose uid map is the whole
/// range). Asked once: rt never changes its own user namespace, and a container's init that
/// gets a new one knows so from its config (the answer it inherits stays rt's).
pub fn in_user_namespace() -> bool {
    static IN_USERNS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IN_USERNS.get_or_init(|| {
        crate::sys::read_to_string("/proc/self/uid_map")
            .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
    })
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
    let stat = crate::sys::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3 (state), so field 22 is index 19 from here.
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state))
}
