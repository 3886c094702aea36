//! `process.terminal`: a pty from the container's own devpts, its master sent to the caller's
//! `--console-socket` in one SCM_RIGHTS message (as runc does), its slave the init's stdio and
//! controlling terminal, and bound over /dev/console.

use anyhow::{Context, Result, bail};
use oci_spec::runtime::{Process, Spec};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use crate::process::rootfs::{Kind, Root};
use crate::sys::{self, fd_path};

/// The pty pair; the master goes to the console socket, the slave becomes stdio.
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// Opens a pty from the container's devpts (so the slave is /dev/pts/N inside). The slave
/// comes from TIOCGPTPEER on the master, never from a path lookup an image could redirect
/// (CVE-2025-52565).
pub fn open_pty(root: &Root, process: &Process) -> Result<Pty> {
    let ptmx = root
        .resolve(Path::new("/dev/pts/ptmx"), false)
        .or_else(|_| root.resolve(Path::new("/dev/ptmx"), false))
        .context("terminal: no /dev/pts/ptmx in the container")?;
    let master = sys::open(
        Path::new(&fd_path(ptmx.as_raw_fd())),
        libc::O_RDWR | libc::O_NOCTTY,
        0,
    )
    .context("terminal: open ptmx")?;
    let slave = peer_of(&master)?;
    if let Some(size) = process.console_size() {
        let ws = libc::winsize {
            ws_row: size.height() as u16,
            ws_col: size.width() as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: ws is a valid winsize.
        if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
            return Err(std::io::Error::last_os_error()).context("terminal: set window size");
        }
    } else {
        // A foreground `rt run`/`exec -t` from a terminal: the process inherited that terminal
        // as stdin, so give the new pty its size now, before the program can ask for it.
        copy_winsize_from(libc::STDIN_FILENO, &master);
    }
    Ok(Pty { master, slave })
}

/// Unlocks a new pty master and opens its slave through it (TIOCGPTPEER): no path lookup.
fn peer_of(master: &OwnedFd) -> Result<OwnedFd> {
    let mut unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK takes a pointer to an int that lives through the call; TIOCGPTPEER
    // returns a new fd, owned from here on.
    unsafe {
        if libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &mut unlock) != 0 {
            return Err(std::io::Error::last_os_error()).context("terminal: unlock pty");
        }
        let fd = libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("terminal: open pty peer");
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// A pty from the host's devpts, for a restored container whose terminal was outside its
/// checkpoint: the pair and the slave's path. The slave is close-on-exec; whoever hands it
/// on clears that in the child.
pub fn open_host_pty() -> Result<(Pty, PathBuf)> {
    let master = sys::open(
        Path::new("/dev/ptmx"),
        libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        0,
    )
    .context("terminal: open /dev/ptmx")?;
    let mut index: libc::c_uint = 0;
    // SAFETY: TIOCGPTN takes a pointer to an int that lives through the call.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut index) } != 0 {
        return Err(std::io::Error::last_os_error()).context("terminal: pty number");
    }
    let slave = peer_of(&master)?;
    Ok((
        Pty { master, slave },
        PathBuf::from(format!("/dev/pts/{index}")),
    ))
}

/// The init's terminal: a pty as above, with the slave bound over /dev/console.
pub fn open_in(root: &Root, spec: &Spec) -> Result<Pty> {
    let process = spec
        .process()
        .as_ref()
        .context("config.json: process is required")?;
    let pty = open_pty(root, process)?;
    let console = root.mkdir_all(Path::new("/dev/console"), Kind::File)?;
    sys::mount(
        Some(&fd_path(pty.slave.as_raw_fd())),
        &fd_path(console.as_raw_fd()),
        None,
        libc::MS_BIND,
        None,
    )
    .context("terminal: bind /dev/console")?;
    Ok(pty)
}

/// Sends the master to the console socket: one message, the fd as SCM_RIGHTS, the pty's name
/// as payload, which is what runc sends and what containerd and conmon read.
pub fn send_master(socket: RawFd, master: &OwnedFd) -> Result<()> {
    sys::send_fds(socket, b"/dev/ptmx", &[master.as_raw_fd()])
        .context("send pty master to the console socket")
}

/// Connects to `--console-socket` in the caller's (host) context, before any namespace change.
/// Connects to a unix stream socket (console socket, pidfd socket, seccomp agent); the caller
/// says which in its error context.
pub fn connect(path: &Path) -> Result<OwnedFd> {
    let s = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), sys::errno_str(&e)))?;
    Ok(OwnedFd::from(s))
}

/// Makes the slave the process's stdio and controlling terminal (the init called setsid).
pub fn make_controlling(slave: &OwnedFd) -> Result<()> {
    // SAFETY: dup2 onto stdio numbers and an ioctl without pointer arguments.
    unsafe {
        for target in 0..3 {
            if libc::dup2(slave.as_raw_fd(), target) < 0 {
                return Err(std::io::Error::last_os_error()).context("terminal: dup2 pty");
            }
        }
        if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
            return Err(std::io::Error::last_os_error()).context("terminal: set controlling tty");
        }
    }
    Ok(())
}

/// The socket pair rt uses as its own console socket for a foreground terminal.
pub fn pair() -> Result<(OwnedFd, OwnedFd)> {
    let (a, b) = std::os::unix::net::UnixStream::pair().context("console socketpair")?;
    Ok((OwnedFd::from(a), OwnedFd::from(b)))
}

pub fn receive_master(sock: &OwnedFd) -> Result<OwnedFd> {
    sys::recv_fd(sock.as_raw_fd()).context("receive the container's pty master")
}

/// Copies what is readable from `from` to `to`; false at EOF or error.
pub fn pump(from: RawFd, to: RawFd) -> bool {
    let mut buf = [0u8; 4096];
    // SAFETY: buf is valid for its length.
    let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 && would_block() {
        // A non-blocking master with nothing after all: not closed.
        return true;
    }
    if n <= 0 {
        return false;
    }
    let mut off = 0;
    while off < n as usize {
        match sys::write_fd(to, &buf[off..n as usize]) {
            Ok(w) => off += w,
            Err(_) => return false,
        }
    }
    true
}

fn would_block() -> bool {
    matches!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EAGAIN) | Some(libc::EINTR)
    )
}

/// The caller's stdin into the pty master without ever blocking on the master. A blocking
/// write there deadlocks as soon as the container writes back as much as it is sent (the
/// pty's echo, `cat`): rt would sit in the write while the container sits in its own, on an
/// output side nobody reads. So the master is non-blocking, one read of stdin is kept until
/// the master takes it, and stdin is only read again once it has.
pub struct InputRelay {
    master: RawFd,
    pending: Vec<u8>,
    stdin_open: bool,
}

impl InputRelay {
    pub fn new(master: RawFd) -> InputRelay {
        // SAFETY: fcntl on an fd the caller owns; only the status flags change.
        unsafe {
            let fl = libc::fcntl(master, libc::F_GETFL);
            if fl >= 0 {
                libc::fcntl(master, libc::F_SETFL, fl | libc::O_NONBLOCK);
            }
        }
        InputRelay {
            master,
            pending: Vec::new(),
            stdin_open: true,
        }
    }

    pub fn master(&self) -> RawFd {
        self.master
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    pub fn wants_stdin(&self) -> bool {
        self.stdin_open && self.pending.is_empty()
    }

    /// Stdin is readable: take one buffer of it. EOF (or an error) ends the input for good
    /// (the container sees no more).
    pub fn from_stdin(&mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && would_block() {
            return;
        }
        if n <= 0 {
            self.stdin_open = false;
            return;
        }
        buf.truncate(n as usize);
        self.pending = buf;
        self.to_master();
    }

    /// The master has room: hand over what it takes of the pending input.
    pub fn to_master(&mut self) {
        while !self.pending.is_empty() {
            // SAFETY: pending is valid for its length.
            let n = unsafe {
                libc::write(
                    self.master,
                    self.pending.as_ptr().cast(),
                    self.pending.len(),
                )
            };
            if n < 0 {
                if !would_block() {
                    // The container's side is gone: its input with it.
                    self.pending.clear();
                    self.stdin_open = false;
                }
                return;
            }
            self.pending.drain(..n as usize);
        }
    }
}

/// After the container exited, copy what is still on its way through the pty: the kernel
/// moves data from the slave to the master asynchronously, so wait for it briefly (until the
/// master reports the slave closed, or nothing more comes for 100 ms).
pub fn drain(master: RawFd, to: RawFd) {
    loop {
        let mut p = libc::pollfd {
            fd: master,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, 100) } <= 0 || !pump(master, to) {
            return;
        }
    }
}

/// Gives the container's terminal our terminal's size (at start and on SIGWINCH).
pub fn copy_winsize(master: &OwnedFd) {
    copy_winsize_from(libc::STDIN_FILENO, master)
}

fn copy_winsize_from(from: RawFd, master: &OwnedFd) {
    // SAFETY: winsize is a valid out/in parameter for these ioctls; a `from` that is no
    // terminal just fails the first one.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_row != 0 {
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Our terminal in raw mode while relaying (keys go to the container unprocessed); restored
/// on drop, including on error paths.
pub struct RawMode(Option<libc::termios>);

impl RawMode {
    pub fn enter() -> RawMode {
        // SAFETY: termios calls on stdin with valid out-parameters.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::isatty(libc::STDIN_FILENO) != 1
                || libc::tcgetattr(libc::STDIN_FILENO, &mut t) != 0
            {
                return RawMode(None);
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t);
            RawMode(Some(saved))
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            // SAFETY: restoring the attributes we read from stdin.
            unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, t) };
        }
    }
}

pub fn check_usage(terminal: bool, console_socket: Option<&PathBuf>, detached: bool) -> Result<()> {
    if console_socket.is_some() && !terminal {
        bail!("--console-socket was given but process.terminal is false");
    }
    if terminal && console_socket.is_none() && detached {
        bail!("process.terminal needs --console-socket when rt detaches from the container");
    }
    Ok(())
}
