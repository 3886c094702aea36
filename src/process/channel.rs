//! The parent/child channel: one SOCK_SEQPACKET pair, small text messages (and the odd fd)
//! in both directions; every wait on it has an error path (the other side gone).

use anyhow::{Context, Result, bail};
use std::convert::Infallible;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::sys::{self};

/// More v1 hierarchies than the kernel has controllers (and named ones) is not a host.
const MAX_V1_HIERARCHIES: usize = 64;

/// The parent/child channel: a SOCK_SEQPACKET pair, one message per datagram.
pub struct Channel(OwnedFd);

impl Channel {
    pub fn pair() -> Result<(Channel, Channel)> {
        let mut fds = [0; 2];
        // SAFETY: fds is a valid out array of two ints.
        if unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        } != 0
        {
            return Err(std::io::Error::last_os_error()).context("socketpair");
        }
        // SAFETY: both fds were just created and are owned by nobody else.
        unsafe {
            Ok((
                Channel(OwnedFd::from_raw_fd(fds[0])),
                Channel(OwnedFd::from_raw_fd(fds[1])),
            ))
        }
    }

    pub fn send(&self, msg: &str) -> Result<()> {
        sys::write_fd(self.0.as_raw_fd(), msg.as_bytes())
            .map(drop)
            .context("sync: send")
    }

    /// None when the other side is gone.
    pub fn recv(&self) -> Result<Option<String>> {
        Ok(self.recv_fd()?.map(|(m, _)| m))
    }

    /// A message and the fd it carries, if any (the seccomp notify fd travels this way).
    pub fn recv_fd(&self) -> Result<Option<(String, Option<OwnedFd>)>> {
        loop {
            match sys::recv_msg(self.0.as_raw_fd()) {
                Ok((data, _)) if data.is_empty() => return Ok(None),
                Ok((data, fd)) => {
                    return Ok(Some((String::from_utf8_lossy(&data).into_owned(), fd)));
                }
                // A peer that exits with a message of ours unread resets the connection, and
                // the kernel reports that before the messages it had sent us: they follow.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::ECONNRESET)) => {
                    continue;
                }
                Err(e) => return Err(e).context("sync: receive"),
            }
        }
    }

    /// The container's v1 cgroup directories, as bytes (a mount point need not be UTF-8),
    /// with an fd of each one's `tasks` open for writing: the init joins them with one write
    /// each instead of a path walk through cgroupfs, on its critical path, for each.
    pub fn send_dirs(&self, dirs: &[PathBuf], tasks: &[OwnedFd]) -> Result<()> {
        let mut msg = b"cgroups".to_vec();
        for d in dirs {
            msg.push(0);
            msg.extend_from_slice(d.as_os_str().as_bytes());
        }
        let fds: Vec<RawFd> = tasks.iter().map(|f| f.as_raw_fd()).collect();
        if fds.is_empty() {
            sys::write_fd(self.0.as_raw_fd(), &msg).map(drop)
        } else {
            sys::send_fds(self.0.as_raw_fd(), &msg, &fds)
        }
        .context("sync: send")
    }

    /// The directories and `tasks` fds of send_dirs, one fd per directory.
    pub fn expect_dirs(&self) -> Result<(Vec<PathBuf>, Vec<OwnedFd>)> {
        let (data, fds) = loop {
            match sys::recv_msg_fds(self.0.as_raw_fd(), MAX_V1_HIERARCHIES) {
                Ok(m) => break m,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => return Err(e).context("sync: receive"),
            }
        };
        let mut parts = data.split(|b| *b == 0);
        match parts.next() {
            Some(b"cgroups") => {
                let dirs: Vec<PathBuf> = parts
                    .map(|p| PathBuf::from(std::ffi::OsStr::from_bytes(p)))
                    .collect();
                if fds.len() != dirs.len() {
                    bail!(
                        "sync: {} cgroup directories came with {} fds",
                        dirs.len(),
                        fds.len()
                    );
                }
                Ok((dirs, fds))
            }
            Some(b"") if data.is_empty() => bail!("sync: rt went away"),
            _ => bail!(
                "sync: expected cgroups, got {}",
                String::from_utf8_lossy(&data)
            ),
        }
    }

    /// The other side's error report, if one is waiting (never blocks): why a step of ours
    /// that involved it failed, when it failed first.
    pub fn pending_error(&self) -> Option<String> {
        let mut buf = [0u8; 4096];
        let recv = |buf: &mut [u8]| {
            // SAFETY: buf is valid for its length.
            unsafe {
                libc::recv(
                    self.0.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            }
        };
        let mut n = recv(&mut buf);
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECONNRESET) {
            n = recv(&mut buf); // as in recv_fd
        }
        let msg = String::from_utf8_lossy(&buf[..usize::try_from(n).ok()?]).into_owned();
        msg.strip_prefix("error ").map(str::to_string)
    }

    pub fn send_fd(&self, msg: &str, fd: RawFd) -> Result<()> {
        sys::send_fds(self.0.as_raw_fd(), msg.as_bytes(), &[fd]).context("sync: send fd")
    }

    pub fn expect(&self, what: &str) -> Result<()> {
        match self.recv()? {
            Some(m) if m == what => Ok(()),
            Some(m) => bail!("sync: expected {what}, got {m}"),
            None => bail!("sync: rt went away"),
        }
    }
}

/// Runs `f` as a forked child: errors go to the parent over the channel, and the child never
/// returns into the parent's stack (whose Drop guards would undo the parent's work).
pub fn child_main(chan: &Channel, f: impl FnOnce() -> Result<Infallible>) -> ! {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    let msg = match r {
        Ok(Err(e)) => format!("error {e:#}"),
        Ok(Ok(never)) => match never {},
        Err(_) => "error container init panicked".to_string(),
    };
    let _ = chan.send(&msg);
    // SAFETY: _exit never returns and skips atexit handlers and destructors on purpose.
    unsafe { libc::_exit(1) }
}
