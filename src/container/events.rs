//! `rt events`: a running container's resource usage and OOM events, in runc's JSON shapes.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::cgroups::stats::{oom_kills, read_oom, stats};
use crate::state::Status;

/// `events`: one stats event with `--stats`; otherwise a stats event every `interval` and an
/// `oom` event whenever memory.events' oom count grows, until the container stops.
pub fn events(root: &Path, id: &str, once: bool, interval: Duration) -> Result<()> {
    // Read-only: never waits on the container's lock (see state::snapshot).
    let (dir, st) = crate::state::snapshot(root, id)?;
    let cg = super::update::cgroups_of(&dir, &st)?;
    let mut out = std::io::stdout().lock();
    let emit = |out: &mut std::io::StdoutLock, v: Value| -> Result<()> {
        writeln!(out, "{v}").context("write event")?;
        out.flush().context("write event")
    };
    if once {
        return emit(
            &mut out,
            json!({"type": "stats", "id": id, "data": stats(&cg)}),
        );
    }
    // memory.events, held open: the kernel wakes a poll on it when a counter changes, and it
    // is read through this fd at once. A container that an OOM kill ended may lose its cgroup
    // within milliseconds (systemd removes an empty unit's), so a sleep-and-reread could miss it.
    let watch = cg
        .v2_dir()
        .and_then(|d| crate::sys::open(&d.join("memory.events"), libc::O_RDONLY, 0).ok());
    let mut last_seen = 0;
    let mut oom_count = || match &watch {
        Some(fd) => {
            if let Some(n) = read_oom(fd) {
                last_seen = n;
            }
            last_seen
        }
        None => oom_kills(&cg),
    };
    let mut ooms = oom_count();
    let mut next = std::time::Instant::now();
    loop {
        let alive = crate::state::snapshot(root, id)
            .map(|(d, s)| s.status(&d) != Status::Stopped)
            .unwrap_or(false);
        // Checked after the liveness test, so an OOM kill that ended the container is still
        // reported before events returns.
        let now_ooms = oom_count();
        if now_ooms > ooms {
            ooms = now_ooms;
            emit(&mut out, json!({"type": "oom", "id": id}))?;
        }
        if !alive {
            return Ok(());
        }
        if std::time::Instant::now() >= next {
            emit(
                &mut out,
                json!({"type": "stats", "id": id, "data": stats(&cg)}),
            )?;
            next += interval;
        }
        let wait = Duration::from_millis(100).min(interval);
        match &watch {
            Some(fd) => {
                let mut p = libc::pollfd {
                    fd: std::os::fd::AsRawFd::as_raw_fd(fd),
                    events: libc::POLLPRI,
                    revents: 0,
                };
                // SAFETY: one valid pollfd. A wake-up is re-armed by the read in read_oom.
                unsafe { libc::poll(&mut p, 1, wait.as_millis() as i32) };
                if p.revents & libc::POLLPRI != 0 {
                    let n = oom_count();
                    if n > ooms {
                        ooms = n;
                        emit(&mut out, json!({"type": "oom", "id": id}))?;
                    }
                }
            }
            None => std::thread::sleep(wait),
        }
    }
}
