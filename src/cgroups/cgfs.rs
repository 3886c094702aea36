//! File operations on cgroup paths, resolved below one descriptor of /sys/fs/cgroup.
//!
//! Each lookup of a sysfs or cgroupfs path component takes its kernfs root's rwsem (kernfs
//! refuses the lock-free RCU path walk), so a walk from "/" through /sys and /sys/fs queues
//! behind every sysfs writer: each new network namespace registering its loopback device, each
//! one torn down. With 100 containers made at once, half of the times an rt process slept were
//! in those lookups (perf, sched_switch). Below an fd of the cgroup mount, a path starts at
//! the hierarchies. Paths elsewhere are resolved as given. Reads and writes take the few
//! system calls of crate::sys's whole-file helpers.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::OnceLock;

const MOUNT: &str = "/sys/fs/cgroup";

/// The cgroup mount's fd (close-on-exec, so no container inherits it), opened once per rt
/// process; the init, a clone, inherits it until its exec.
fn mount_fd() -> Option<RawFd> {
    static FD: OnceLock<Option<OwnedFd>> = OnceLock::new();
    FD.get_or_init(|| {
        crate::sys::openat(
            libc::AT_FDCWD,
            Path::new(MOUNT),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        )
        .ok()
    })
    .as_ref()
    .map(|fd| fd.as_raw_fd())
}

/// Where `p` is to be resolved: (the mount's fd, the path below it) for a path under
/// /sys/fs/cgroup, else (AT_FDCWD, `p`).
fn at(p: &Path) -> (RawFd, &Path) {
    match (p.strip_prefix(MOUNT), mount_fd()) {
        (Ok(rest), Some(fd)) if !rest.as_os_str().is_empty() => (fd, rest),
        _ => (libc::AT_FDCWD, p),
    }
}

/// As std::fs::read_to_string.
pub fn read_to_string(p: impl AsRef<Path>) -> io::Result<String> {
    let (fd, rest) = at(p.as_ref());
    crate::sys::read_string_at(fd, rest)
}

/// As std::fs::write.
/// Below the mount, a plain O_WRONLY: a cgroup file always exists, and O_CREAT would make the
/// lookup take its directory's lock exclusively, O_TRUNC a setattr that kernfs takes its
/// rwsem for. With both, the nine writes that join a container's v1 cgroups took twice as
/// long (0.26 against 0.12 ms here).
pub fn write(p: impl AsRef<Path>, data: impl AsRef<[u8]>) -> io::Result<()> {
    let (fd, rest) = at(p.as_ref());
    let flags = if fd == libc::AT_FDCWD {
        libc::O_CREAT | libc::O_TRUNC
    } else {
        0
    };
    crate::sys::write_at(fd, rest, data.as_ref(), flags, 0o666)
}

/// A file opened for writing, to write several lines to one at a time.
pub fn open_write(p: impl AsRef<Path>) -> io::Result<std::fs::File> {
    let (fd, rest) = at(p.as_ref());
    crate::sys::openat(fd, rest, libc::O_WRONLY, 0).map(std::fs::File::from)
}

/// An O_PATH fd of a cgroup directory (for CLONE_INTO_CGROUP and fstatfs).
pub fn open_dir(p: impl AsRef<Path>) -> io::Result<OwnedFd> {
    let (fd, rest) = at(p.as_ref());
    crate::sys::openat(fd, rest, libc::O_PATH | libc::O_DIRECTORY, 0)
}

/// The filesystem type (statfs's f_type) at `p`; the mount itself through the fd already open.
pub fn fs_magic(p: impl AsRef<Path>) -> io::Result<i64> {
    match mount_fd().filter(|_| p.as_ref() == Path::new(MOUNT)) {
        Some(fd) => crate::sys::fstatfs_magic(fd),
        None => crate::sys::fstatfs_magic(open_dir(p)?.as_raw_fd()),
    }
}

/// As Path::exists.
pub fn exists(p: impl AsRef<Path>) -> bool {
    let (fd, rest) = at(p.as_ref());
    let Ok(rest) = crate::sys::cstring(rest) else {
        return false;
    };
    // SAFETY: zeroed stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: rest is a valid NUL-terminated path; st is written by the kernel only.
    unsafe { libc::fstatat(fd, rest.as_ptr(), &mut st, 0) == 0 }
}

/// As std::fs::create_dir.
pub fn create_dir(p: impl AsRef<Path>) -> io::Result<()> {
    let (fd, rest) = at(p.as_ref());
    let rest = crate::sys::cstring(rest)?;
    // SAFETY: rest is a valid NUL-terminated path.
    crate::sys::check_int(unsafe { libc::mkdirat(fd, rest.as_ptr(), 0o777) }).map(drop)
}

/// As std::fs::remove_dir.
pub fn remove_dir(p: impl AsRef<Path>) -> io::Result<()> {
    let (fd, rest) = at(p.as_ref());
    let rest = crate::sys::cstring(rest)?;
    // SAFETY: rest is a valid NUL-terminated path.
    crate::sys::check_int(unsafe { libc::unlinkat(fd, rest.as_ptr(), libc::AT_REMOVEDIR) })
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_below_the_mount_are_split() {
        let Some(mount) = mount_fd() else {
            return; // no /sys/fs/cgroup here: every path is resolved as given
        };
        let rest = |p: &'static str| {
            let (fd, r) = at(Path::new(p));
            (fd == mount).then(|| r.to_str().unwrap())
        };
        assert_eq!(
            rest("/sys/fs/cgroup/cpu/c1/cgroup.procs"),
            Some("cpu/c1/cgroup.procs")
        );
        assert_eq!(rest("/sys/fs/cgroup"), None);
        assert_eq!(rest("/sys/fs/cgroupx/a"), None);
        assert_eq!(rest("/tmp/sys/fs/cgroup/a"), None);
    }

    #[test]
    fn other_paths_are_resolved_as_given() {
        let dir = std::env::temp_dir().join(format!("rt-cgfs-{}", std::process::id()));
        create_dir(&dir).unwrap();
        let f = dir.join("f");
        write(&f, "a").unwrap();
        assert!(exists(&f));
        assert_eq!(read_to_string(&f).unwrap(), "a");
        assert!(remove_dir(&dir).is_err(), "not empty");
        std::fs::remove_file(&f).unwrap();
        remove_dir(&dir).unwrap();
        assert!(!exists(&dir));
    }
}
