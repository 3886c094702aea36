//! Lifecycle hooks: each gets the container's state JSON on stdin, its own args and env, and an
//! optional timeout. Which process runs a hook (and so in which namespaces) is decided by the
//! caller, at the point of the lifecycle the runtime-spec names.

use anyhow::{Context, Result, bail};
use oci_spec::runtime::{Hook, Hooks};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Prestart => "prestart",
            Phase::CreateRuntime => "createRuntime",
            Phase::CreateContainer => "createContainer",
            Phase::StartContainer => "startContainer",
            Phase::Poststart => "poststart",
            Phase::Poststop => "poststop",
        }
    }
}

#[allow(deprecated)] // prestart is deprecated in the spec but still used (e.g. by Docker).
pub fn of(hooks: Option<&Hooks>, phase: Phase) -> &[Hook] {
    let Some(h) = hooks else { return &[] };
    let v = match phase {
        Phase::Prestart => h.prestart(),
        Phase::CreateRuntime => h.create_runtime(),
        Phase::CreateContainer => h.create_container(),
        Phase::StartContainer => h.start_container(),
        Phase::Poststart => h.poststart(),
        Phase::Poststop => h.poststop(),
    };
    v.as_deref().unwrap_or(&[])
}

/// Runs the hooks of one phase in order; the first failure stops the phase.
pub fn run(hooks: Option<&Hooks>, phase: Phase, state: &serde_json::Value) -> Result<()> {
    run_with_env(hooks, phase, state, None)
}

/// `run`, where a hook without `env` gets `default_env` instead of rt's environment (runc
/// gives startContainer hooks the container process's environment so).
pub fn run_with_env(
    hooks: Option<&Hooks>,
    phase: Phase,
    state: &serde_json::Value,
    default_env: Option<&[String]>,
) -> Result<()> {
    let list = of(hooks, phase);
    if list.is_empty() {
        return Ok(());
    }
    let input = serde_json::to_vec(state)?;
    for (i, h) in list.iter().enumerate() {
        run_one(h, &input, default_env).map_err(|e| {
            anyhow::anyhow!("{} hook #{i} ({}): {e:#}", phase.name(), h.path().display())
        })?;
    }
    Ok(())
}

/// Like `run`, but failures are logged and the rest continue (poststart and poststop: the
/// runtime-spec says they must not change the lifecycle's outcome).
pub fn run_warn(hooks: Option<&Hooks>, phase: Phase, state: &serde_json::Value) {
    let Ok(input) = serde_json::to_vec(state) else {
        return;
    };
    for (i, h) in of(hooks, phase).iter().enumerate() {
        if let Err(e) = run_one(h, &input, None) {
            crate::logging::warn(&format!(
                "{} hook #{i} ({}): {e:#}",
                phase.name(),
                h.path().display()
            ));
        }
    }
}

/// An anonymous file holding `input`, positioned at its start.
fn state_file(input: &[u8]) -> Result<std::fs::File> {
    // SAFETY: valid C string; a new fd we own.
    let fd = unsafe { libc::memfd_create(c"rt-hook-state".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("memfd for the hook's stdin");
    }
    // SAFETY: fd was just created and is owned by nobody else.
    let mut f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    f.write_all(input).context("write the hook's stdin")?;
    std::io::Seek::rewind(&mut f).context("rewind the hook's stdin")?;
    Ok(f)
}

fn run_one(h: &Hook, input: &[u8], default_env: Option<&[String]>) -> Result<()> {
    let mut cmd = Command::new(h.path());
    if let Some((argv0, rest)) = h.args().as_deref().and_then(|a| a.split_first()) {
        cmd.arg0(argv0).args(rest);
    }
    // As runc: a hook without `env` inherits rt's environment (or the given default), one
    // with `env` gets exactly it.
    if let Some(env) = h.env().as_deref().or(default_env) {
        cmd.env_clear();
        for kv in env {
            if let Some((k, v)) = kv.split_once('=') {
                cmd.env(k, v);
            }
        }
    }
    // The state comes from a memfd, not a pipe: writing it can never block on a hook that
    // doesn't read (however large the annotations), and the timeout covers the whole run.
    cmd.stdin(Stdio::from(state_file(input)?))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| anyhow::anyhow!("start: {}", crate::sys::errno_str(&e)))?;
    let deadline = h
        .timeout()
        .filter(|t| *t > 0)
        // Bounded at create (spec.rs); checked anyway, so no input can make this panic.
        .and_then(|t| {
            std::time::Instant::now().checked_add(std::time::Duration::from_secs(t as u64))
        });
    let pidfd = crate::sys::pidfd_open(child.id() as i32)?;
    let mut out = Vec::new();
    let as_file = |fd: std::os::fd::OwnedFd| std::fs::File::from(fd);
    let mut stdout = child.stdout.take().map(|s| as_file(s.into()));
    let mut stderr = child.stderr.take().map(|s| as_file(s.into()));
    // Read output while waiting, so a chatty hook can't block on a full pipe.
    loop {
        let timeout_ms = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("timed out after {}s", h.timeout().unwrap_or(0));
                }
                left.as_millis().min(i32::MAX as u128) as i32
            }
            None => -1,
        };
        let fds = [
            pidfd.as_raw_fd(),
            stdout.as_ref().map_or(-1, |s| s.as_raw_fd()),
            stderr.as_ref().map_or(-1, |s| s.as_raw_fd()),
        ];
        let ev = crate::sys::poll_in(&fds, timeout_ms)?;
        for (i, pipe) in [(1, &mut stdout), (2, &mut stderr)] {
            if ev[i] != 0
                && let Some(p) = pipe.as_mut()
            {
                let mut buf = [0u8; 4096];
                match p.read(&mut buf) {
                    Ok(0) | Err(_) => *pipe = None,
                    Ok(n) => {
                        if out.len() < 4096 {
                            out.extend_from_slice(&buf[..n]);
                        }
                    }
                }
            }
        }
        if ev[0] != 0 && stdout.is_none() && stderr.is_none() {
            break;
        }
        if ev[0] != 0 {
            // Exited; drain what is left without blocking on a grandchild holding the pipes.
            for p in [&mut stdout, &mut stderr].into_iter().flatten() {
                let fd = p.as_raw_fd();
                // SAFETY: fcntl on a pipe fd we own.
                unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) };
                let _ = p.read_to_end(&mut out);
            }
            break;
        }
    }
    let status = child.wait()?;
    if !status.success() {
        let text = String::from_utf8_lossy(&out);
        let text = text.trim();
        bail!(
            "{status}{}{}",
            if text.is_empty() { "" } else { ": " },
            text.lines().collect::<Vec<_>>().join(" | ")
        );
    }
    Ok(())
}
