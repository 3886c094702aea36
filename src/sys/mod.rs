//! Thin, safe wrappers over the raw system calls rt needs and libc/nix do not wrap (or wrap
//! differently across versions). Every wrapper returns `io::Result` so callers can add context.

pub mod alloc;
mod fd;
mod file;
mod mount;
mod process;

pub use fd::*;
pub use file::*;
pub use mount::*;
pub use process::*;

use std::ffi::{CStr, CString};
use std::io;
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

pub fn check_int(ret: libc::c_int) -> io::Result<libc::c_int> {
    check(ret as libc::c_long).map(|r| r as libc::c_int)
}

pub fn cstring(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

pub fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
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
