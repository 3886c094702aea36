//! File operations on cgroup paths, resolved below one descriptor of /sys/fs/cgroup.
//!
//! Each lookup of a sysfs or cgroupfs path component takes its kernfs root's rwsem (kernfs
//! refuses the lock-free RCU path walk), so a walk from "/" through /sys and /sys/fs queues
//! behind every sysfs writer: each new network namespace registering its loopback device, each
//! one torn down. With 100 containers made at once, half of the times an rt process slept were
//! in those lookups (perf, sched_switch). Below an fd of the cgroup mount, a path starts at
//! the hierarchies. Paths elsewhere take the plain std::fs route.

use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
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

/// (the mount's fd, the path below it) for a path under /sys/fs/cgroup.
fn below(p: &Path) -> Option<(RawFd, CString)> {
    let rest = p.strip_prefix(MOUNT).ok()?;
    if rest.as_os_str().is_empty() {
        return None;
    }
    let rest = crate::sys::cstring(rest).ok()?;
    Some((mount_fd()?, rest))
}

fn open(p: &Path, flags: i32) -> io::Result<std::fs::File> {
    let Some((fd, rest)) = below(p) else {
        return if flags & libc::O_ACCMODE == libc::O_RDONLY {
            std::fs::File::open(p)
        } else {
            let create = flags & libc::O_CREAT != 0;
            std::fs::OpenOptions::new()
                .write(true)
                .create(create)
                .truncate(create)
                .open(p)
        };
    };
    // SAFETY: rest is a valid NUL-terminated path; the fd returned is ours alone.
    let new = unsafe { libc::openat(fd, rest.as_ptr(), flags | libc::O_CLOEXEC, 0o666) };
    crate::sys::check_int(new)?;
    // SAFETY: new is an fd just opened, owned by nothing else.
    Ok(unsafe { std::fs::File::from_raw_fd(new) })
}

/// As std::fs::read_to_string.
pub fn read_to_string(p: impl AsRef<Path>) -> io::Result<String> {
    let mut s = String::new();
    open(p.as_ref(), libc::O_RDONLY)?.read_to_string(&mut s)?;
    Ok(s)
}

/// As std::fs::write.
pub fn write(p: impl AsRef<Path>, data: impl AsRef<[u8]>) -> io::Result<()> {
    use std::io::Write;
    open(p.as_ref(), libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC)?.write_all(data.as_ref())
}

/// A file opened for writing, to write several lines to one at a time.
pub fn open_write(p: impl AsRef<Path>) -> io::Result<std::fs::File> {
    open(p.as_ref(), libc::O_WRONLY)
}

/// An O_PATH fd of a cgroup directory (for CLONE_INTO_CGROUP and fstatfs).
pub fn open_dir(p: impl AsRef<Path>) -> io::Result<OwnedFd> {
    let p = p.as_ref();
    let flags = libc::O_PATH | libc::O_DIRECTORY;
    match below(p) {
        Some((fd, rest)) => {
            use std::os::unix::ffi::OsStrExt;
            let rest = Path::new(std::ffi::OsStr::from_bytes(rest.as_bytes()));
            crate::sys::openat(fd, rest, flags, 0)
        }
        None => crate::sys::open(p, flags, 0),
    }
}

/// As Path::exists.
pub fn exists(p: impl AsRef<Path>) -> bool {
    let p = p.as_ref();
    let Some((fd, rest)) = below(p) else {
        return p.exists();
    };
    // SAFETY: rest is a valid NUL-terminated path; st is written by the kernel only.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    unsafe { libc::fstatat(fd, rest.as_ptr(), &mut st, 0) == 0 }
}

/// As std::fs::create_dir.
pub fn create_dir(p: impl AsRef<Path>) -> io::Result<()> {
    let p = p.as_ref();
    let Some((fd, rest)) = below(p) else {
        return std::fs::create_dir(p);
    };
    // SAFETY: rest is a valid NUL-terminated path.
    crate::sys::check_int(unsafe { libc::mkdirat(fd, rest.as_ptr(), 0o777) }).map(drop)
}

/// As std::fs::remove_dir.
pub fn remove_dir(p: impl AsRef<Path>) -> io::Result<()> {
    let p = p.as_ref();
    let Some((fd, rest)) = below(p) else {
        return std::fs::remove_dir(p);
    };
    // SAFETY: rest is a valid NUL-terminated path.
    crate::sys::check_int(unsafe { libc::unlinkat(fd, rest.as_ptr(), libc::AT_REMOVEDIR) })
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_below_the_mount_are_split() {
        let rest = |p: &str| below(Path::new(p)).map(|(_, r)| r.into_string().unwrap());
        if mount_fd().is_none() {
            return; // no /sys/fs/cgroup here: everything takes std::fs
        }
        assert_eq!(
            rest("/sys/fs/cgroup/cpu/c1/cgroup.procs").as_deref(),
            Some("cpu/c1/cgroup.procs")
        );
        assert_eq!(rest("/sys/fs/cgroup"), None);
        assert_eq!(rest("/sys/fs/cgroupx/a"), None);
        assert_eq!(rest("/tmp/sys/fs/cgroup/a"), None);
    }

    #[test]
    fn other_paths_take_std_fs() {
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
