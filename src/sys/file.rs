//! Whole-file reads and writes in as few system calls as the kernel allows.
//!
//! std::fs::read, read_to_string and write go through musl's open(), which sets FD_CLOEXEC a
//! second time with fcntl; the reads add an fstat and an lseek for a size hint that procfs,
//! sysfs and cgroupfs files never give (st_size 0), then read in steps growing from 32 bytes.
//! A 300-byte /proc file took eight or nine calls; here it takes four (openat, a read, the
//! read that sees the end, close). rt reads and writes a few dozen such files per container,
//! and each call is a trap: cheap on bare metal, the dearest thing a virtual machine does.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use super::{check, openat};

/// What one read asks for at first: more than any /proc, cgroup or state file rt reads whole
/// usually holds, so those take a single read and the one that sees their end.
const FIRST_READ: usize = 4096;

/// Everything left to read from `fd`.
pub fn read_fd_to_end(fd: RawFd) -> io::Result<Vec<u8>> {
    read_fd_up_to(fd, usize::MAX)
}

/// What is left to read from `fd`, up to `limit` bytes.
pub fn read_fd_up_to(fd: RawFd, limit: usize) -> io::Result<Vec<u8>> {
    let mut v: Vec<u8> = Vec::with_capacity(FIRST_READ.min(limit));
    loop {
        if v.len() == limit {
            return Ok(v);
        }
        if v.len() == v.capacity() {
            v.reserve(v.capacity().min(limit - v.len()));
        }
        let spare = (v.capacity() - v.len()).min(limit - v.len());
        // SAFETY: the kernel writes at most `spare` bytes into the vector's unused capacity.
        let n = unsafe { libc::read(fd, v.as_mut_ptr().add(v.len()).cast(), spare) };
        match check(n as libc::c_long) {
            Ok(0) => return Ok(v),
            // SAFETY: the kernel initialised n more bytes right after the vector's length.
            Ok(n) => unsafe { v.set_len(v.len() + n as usize) },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The whole file at `path` below `dirfd` (AT_FDCWD for an ordinary path); `flags` adds to
/// O_RDONLY | O_CLOEXEC (O_NONBLOCK, say, so a FIFO planted in its place can't block).
pub fn read_at(dirfd: RawFd, path: &Path, flags: i32) -> io::Result<Vec<u8>> {
    let fd = openat(dirfd, path, libc::O_RDONLY | flags, 0)?;
    read_fd_to_end(fd.as_raw_fd())
}

/// As std::fs::read.
pub fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    read_at(libc::AT_FDCWD, path.as_ref(), 0)
}

/// As std::fs::read_to_string (invalid UTF-8 is InvalidData).
pub fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    utf8(read(path)?)
}

/// read_at, as a string.
pub fn read_string_at(dirfd: RawFd, path: &Path) -> io::Result<String> {
    utf8(read_at(dirfd, path, 0)?)
}

fn utf8(v: Vec<u8>) -> io::Result<String> {
    String::from_utf8(v).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes all of `data` to `path` below `dirfd`, opened with `flags` | O_WRONLY | O_CLOEXEC
/// (and `mode` if it is created).
pub fn write_at(dirfd: RawFd, path: &Path, data: &[u8], flags: i32, mode: u32) -> io::Result<()> {
    let fd = openat(dirfd, path, libc::O_WRONLY | flags, mode)?;
    write_all(fd.as_raw_fd(), data)
}

/// As std::fs::write: created 0666 (less the umask) if missing, truncated.
pub fn write_file(path: impl AsRef<Path>, data: impl AsRef<[u8]>) -> io::Result<()> {
    write_at(
        libc::AT_FDCWD,
        path.as_ref(),
        data.as_ref(),
        libc::O_CREAT | libc::O_TRUNC,
        0o666,
    )
}

/// All of `data` to `fd`, however many writes it takes.
pub fn write_all(fd: RawFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match super::write_fd(fd, data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_whole_files_of_any_size() {
        let dir = std::env::temp_dir().join(format!("rt-sys-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for len in [
            0,
            1,
            FIRST_READ - 1,
            FIRST_READ,
            FIRST_READ + 1,
            5 * FIRST_READ + 7,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let p = dir.join(format!("f{len}"));
            write_file(&p, &data).unwrap();
            assert_eq!(read(&p).unwrap(), data, "length {len}");
            assert_eq!(std::fs::read(&p).unwrap(), data, "length {len}");
        }
        let big = dir.join(format!("f{}", 5 * FIRST_READ + 7));
        let f = std::fs::File::open(&big).unwrap();
        let head = read_fd_up_to(f.as_raw_fd(), 5000).unwrap();
        assert_eq!(head, read(&big).unwrap()[..5000]);
        // Overwriting truncates, as std::fs::write does.
        let p = dir.join("t");
        write_file(&p, b"longer text").unwrap();
        write_file(&p, b"short").unwrap();
        assert_eq!(read_to_string(&p).unwrap(), "short");
        write_file(&p, [0xffu8, 0xfe]).unwrap();
        assert_eq!(
            read_to_string(&p).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert_eq!(
            read(dir.join("missing")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_procfs_files_whose_size_is_zero() {
        let mine = read_to_string("/proc/self/status").unwrap();
        assert!(mine.starts_with("Name:"), "{mine}");
        assert!(mine.contains("\nSigIgn:"), "{mine}");
    }
}
