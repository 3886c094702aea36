//! `rt start`: the exec fifo opened, so the waiting init execs the user's program; poststart
//! hooks after.

use anyhow::{Context, Result, bail};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use crate::state::{self, Dir, State, Status};
use crate::sys;

pub fn start(root: &Path, id: &str) -> Result<()> {
    let dir = Dir::open(root, id)?;
    let st = dir.load()?;
    let started = start_locked(&dir, &st)?;
    let path = dir.path.clone();
    // The container runs: unlocked from here, so kill, state and delete work while poststart
    // hooks run and while we wait for READY=1 (which may never come).
    drop(dir);
    started.finish(&path, &st)
}

/// A container whose init has been told to exec; what `start` still owes its caller.
pub(crate) struct Started {
    pidfd: OwnedFd,
    notify: Option<std::os::unix::net::UnixDatagram>,
}

impl Started {
    /// Poststart hooks, then (with NOTIFY_SOCKET) the wait for READY=1.
    pub(crate) fn finish(self, dir: &Path, st: &State) -> Result<()> {
        poststart(dir, st);
        if let Some(sock) = self.notify {
            crate::notify::wait_ready(&sock, &self.pidfd, st.pid)?;
        }
        Ok(())
    }
}

/// poststart hooks: after the user process started, before `start` returns; a failure is
/// a warning (runtime-spec).
fn poststart(dir: &Path, st: &State) {
    if st.has_hooks
        && let Ok(spec) = state::load_spec(dir)
    {
        crate::hooks::run_warn(
            spec.hooks().as_ref(),
            crate::hooks::Phase::Poststart,
            &st.to_json(Status::Running),
        );
    }
}

pub(crate) fn start_locked(dir: &Dir, st: &State) -> Result<Started> {
    match st.status(&dir.path) {
        Status::Created => {}
        Status::Running | Status::Paused => bail!("cannot start an already running container"),
        Status::Stopped => bail!("cannot start a container that has stopped"),
    }
    let pidfd = super::init_pidfd(st).context("container not running")?;
    release(dir, pidfd, None)
}

/// `run`'s start: this process made the container a moment ago, and the pidfd clone3 gave it
/// tells whether the init is still there, so neither the status nor the init's identity is
/// read back from /proc and the cgroup.
/// `reader`: the fifo's read side if create opened it already.
pub(crate) fn start_created(
    dir: &Dir,
    pidfd: &OwnedFd,
    reader: Option<OwnedFd>,
) -> Result<Started> {
    release(
        dir,
        pidfd.try_clone().context("duplicate the init's pidfd")?,
        reader,
    )
}

/// Opens the exec fifo, which lets the waiting init exec, and hears how that went.
fn release(dir: &Dir, pidfd: OwnedFd, reader: Option<OwnedFd>) -> Result<Started> {
    let notify = crate::notify::listen(&dir.path)?;
    let fifo_path = dir.fifo();
    let fifo = match reader {
        Some(r) => r,
        None => {
            sys::open(&fifo_path, libc::O_RDONLY | libc::O_NONBLOCK, 0).context("open exec fifo")?
        }
    };
    // Opening the read side released the init's blocking open; it now writes one byte and
    // execs, which closes its end (EOF here). If it dies instead, the pidfd says so.
    // The init answers "0" (going on to exec) or "E<error>" (a startContainer hook failed).
    let mut answer = Vec::new();
    loop {
        let ev = crate::sys::poll_in(&[fifo.as_raw_fd(), pidfd.as_raw_fd()], -1)?;
        if ev[0] != 0 {
            let mut b = [0u8; 4096];
            // SAFETY: b is valid for its length.
            let n = unsafe { libc::read(fifo.as_raw_fd(), b.as_mut_ptr().cast(), b.len()) };
            if n > 0 {
                answer.extend_from_slice(&b[..n as usize]);
                continue;
            }
            if n == 0 && !answer.is_empty() {
                break;
            }
            if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN) {
                continue;
            }
        }
        if ev[1] != 0 {
            // Gone: after answering (a short-lived program, or a failed hook), or before.
            break;
        }
    }
    std::fs::remove_file(&fifo_path).context("remove exec fifo")?;
    match answer.first() {
        Some(b'0') => {}
        Some(b'E') => bail!("{}", String::from_utf8_lossy(&answer[1..])),
        _ => bail!("container init exited before it could be started"),
    }
    Ok(Started { pidfd, notify })
}
