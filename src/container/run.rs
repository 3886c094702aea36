//! `rt run`: create and start, then rt waits for the container, forwarding signals (and
//! relaying its terminal), and exits with its status.

use anyhow::{Context, Result};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use crate::sys;

use super::create::{CreateOpts, Created, create};
use super::delete::{destroy, kill_and_wait};
use super::start::start_created;

/// How `rt run` stays with its container.
pub struct RunWait {
    /// Return once it runs.
    pub detach: bool,
    /// Leave the stopped container's state behind.
    pub keep: bool,
    /// Adopt (and reap) the processes the container orphans, as runc does unless
    /// --no-subreaper: without a pid namespace of its own, they would go to the host's init.
    pub subreaper: bool,
}

/// `rt run`: create, start, then wait, forwarding signals; the exit status is the container's.
pub fn run(root: &Path, id: &str, o: &CreateOpts, w: RunWait) -> Result<i32> {
    let RunWait {
        detach,
        keep,
        subreaper,
    } = w;
    if detach {
        let mut c = create(root, id, o, true, true)?;
        let reader = c.fifo_reader.take();
        if let Err(e) =
            start_created(&c.dir, &c.pidfd, reader).and_then(|s| s.finish(&c.dir.path, &c.state))
        {
            undo_run(c, o);
            return Err(e);
        }
        return Ok(0);
    }
    // Block the signals we forward before the init exists, so none is lost in between; the
    // init clears its mask before exec.
    let mask = forwarded_signals();
    // SAFETY: mask is a valid sigset_t.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &mask, std::ptr::null_mut()) };
    if subreaper {
        sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1).context("become a subreaper")?;
    }
    let mut c = create(root, id, o, false, true)?;
    let reader = c.fifo_reader.take();
    if let Err(e) =
        start_created(&c.dir, &c.pidfd, reader).and_then(|s| s.finish(&c.dir.path, &c.state))
    {
        undo_run(c, o);
        return Err(e);
    }
    crate::logging::phase("started");
    let Created {
        dir,
        state,
        pidfd,
        console_master,
        ..
    } = c;
    // Unlock while waiting: state, kill and exec on this container must work meanwhile.
    dir.unlock();
    let status = {
        let _raw = console_master
            .as_ref()
            .map(|_| crate::process::console::RawMode::enter());
        wait_forwarding(state.pid, &pidfd, console_master.as_ref(), &mask)
    };
    crate::logging::phase("container exited");
    if !keep {
        // Someone may have deleted it meanwhile (delete --force), even made a new container
        // with the id: only what is still ours is removed.
        if let Ok(Some(dir)) = dir.relock()
            && let Err(e) = destroy(dir, &state)
        {
            // The container's own status is what the caller waits for: a failed clean-up is
            // said, not put in its place.
            crate::logging::warn(&format!("clean up after the container: {e:#}"));
        }
    }
    status
}

/// A `run` whose start failed leaves nothing: no process, cgroup, state or pid file.
fn undo_run(c: Created, o: &CreateOpts) {
    let _ = kill_and_wait(&c.state);
    let _ = destroy(c.dir, &c.state);
    if let Some(p) = &o.pid_file {
        let _ = std::fs::remove_file(p);
    }
}

pub fn forwarded_signals() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a local value.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        for s in [
            libc::SIGKILL,
            libc::SIGSTOP,
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGILL,
            libc::SIGFPE,
            libc::SIGTRAP,
            libc::SIGSYS,
        ] {
            libc::sigdelset(&mut set, s);
        }
        set
    }
}

/// One poll over the signalfd, the init's pidfd and, with a terminal, the pty master (output
/// to copy; room for pending input) and stdin (only while no input is pending, so a container
/// that doesn't read can't make rt buffer without end). Returns the revents, in that order.
fn poll_relay(
    sfd: i32,
    pidfd: i32,
    relay: Option<&crate::process::console::InputRelay>,
    master_open: bool,
) -> Result<Vec<i16>> {
    let pfd = |fd, events| libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let mut p = vec![pfd(sfd, libc::POLLIN), pfd(pidfd, libc::POLLIN)];
    if let Some(r) = relay {
        let mut events = if master_open { libc::POLLIN } else { 0 };
        if r.has_pending() {
            events |= libc::POLLOUT;
        }
        let master = if events != 0 { r.master() } else { -1 };
        p.push(pfd(master, events));
        let stdin = if r.wants_stdin() {
            libc::STDIN_FILENO
        } else {
            -1
        };
        p.push(pfd(stdin, libc::POLLIN));
    }
    loop {
        // SAFETY: p is a valid array of pollfd of its length.
        let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, -1) };
        if r >= 0 {
            return Ok(p.iter().map(|x| x.revents).collect());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e).context("poll");
        }
    }
}

pub fn wait_forwarding(
    pid: i32,
    pidfd: &OwnedFd,
    console_master: Option<&OwnedFd>,
    mask: &libc::sigset_t,
) -> Result<i32> {
    // SAFETY: mask is valid; signalfd returns a new fd we own.
    let sfd = unsafe { libc::signalfd(-1, mask, libc::SFD_CLOEXEC) };
    if sfd < 0 {
        return Err(std::io::Error::last_os_error()).context("signalfd");
    }
    // SAFETY: sfd was just created.
    let sfd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(sfd) };
    let mut relay = console_master.map(|m| {
        crate::process::console::copy_winsize(m);
        crate::process::console::InputRelay::new(m.as_raw_fd())
    });
    let mut master_open = true;
    loop {
        let ev = poll_relay(
            sfd.as_raw_fd(),
            pidfd.as_raw_fd(),
            relay.as_ref(),
            master_open,
        )?;
        if let (Some(m), Some(r)) = (console_master, relay.as_mut()) {
            if master_open
                && ev[2] & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
                && !crate::process::console::pump(m.as_raw_fd(), libc::STDOUT_FILENO)
            {
                // EIO: the container closed its side; the pidfd will report the exit.
                master_open = false;
            }
            if ev[2] & (libc::POLLOUT | libc::POLLERR) != 0 {
                r.to_master();
            }
            if ev[3] != 0 {
                r.from_stdin();
            }
        }
        if ev[1] != 0 {
            if let Some(m) = console_master {
                crate::process::console::drain(m.as_raw_fd(), libc::STDOUT_FILENO);
            }
            let mut status = 0;
            // SAFETY: the init is our child (directly, or via CLONE_PARENT).
            let r = unsafe { libc::waitpid(pid, &mut status, 0) };
            if r != pid {
                return Err(std::io::Error::last_os_error()).context("wait for the container");
            }
            return Ok(if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                libc::WEXITSTATUS(status)
            });
        }
        if ev[0] != 0 {
            // SAFETY: zeroed siginfo is a valid buffer for one record.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            // SAFETY: info is valid for its size.
            let n = unsafe {
                libc::read(
                    sfd.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    std::mem::size_of::<libc::signalfd_siginfo>(),
                )
            };
            if n as usize == std::mem::size_of::<libc::signalfd_siginfo>() {
                let sig = info.ssi_signo as i32;
                if sig == libc::SIGWINCH
                    && let Some(m) = console_master
                {
                    crate::process::console::copy_winsize(m);
                } else if sig == libc::SIGCHLD {
                    reap_orphans(pid);
                } else if sig != libc::SIGURG {
                    let _ = sys::pidfd_send_signal(pidfd, sig);
                }
            }
        }
    }
}

/// Reaps the container's orphans that became rt's (as subreaper) and exited, leaving the
/// init's status for the pidfd path: waitid with WNOWAIT looks before anything is reaped.
fn reap_orphans(init: i32) {
    loop {
        // SAFETY: zeroed siginfo is a valid out-parameter.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid on our own children with a valid siginfo pointer.
        let r = unsafe {
            libc::waitid(
                libc::P_ALL,
                0,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: si_pid is valid for the CLD_* records waitid fills in.
        let pid = unsafe { info.si_pid() };
        if r != 0 || pid == 0 || pid == init {
            return;
        }
        let mut status = 0;
        // SAFETY: reaping a child we know has exited.
        unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    }
}
