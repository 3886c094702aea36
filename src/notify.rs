//! sd_notify passthrough, as runc does it: when rt is called with NOTIFY_SOCKET (systemd, or
//! `podman --sdnotify=container`), the container gets a socket of rt's at /run/notify/notify.sock,
//! and `start` (or `run`) waits for the container's READY=1, then tells the host's socket the
//! container's main pid and that it is ready.

use anyhow::{Context, Result, bail};
use oci_spec::runtime::{Mount, Spec};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

const DIR: &str = "notify";
const SOCK: &str = "notify.sock";
const IN_CONTAINER: &str = "/run/notify/notify.sock";

fn host_socket() -> Option<PathBuf> {
    std::env::var_os("NOTIFY_SOCKET")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// At create: the directory for rt's socket, bound read-only into the container, and the
/// container's NOTIFY_SOCKET pointing at it.
pub fn setup_spec(spec: &mut Spec, state_dir: &Path) -> Result<()> {
    if host_socket().is_none() {
        return Ok(());
    }
    let dir = state_dir.join(DIR);
    std::fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
    let mut m = Mount::default();
    m.set_destination(PathBuf::from("/run/notify"));
    m.set_typ(Some("bind".into()));
    m.set_source(Some(dir));
    m.set_options(Some(
        ["bind", "nosuid", "noexec", "nodev", "ro"]
            .map(String::from)
            .to_vec(),
    ));
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(m);
    spec.set_mounts(Some(mounts));
    if let Some(p) = spec.process_mut() {
        let mut env = p.env().clone().unwrap_or_default();
        env.retain(|e| !e.starts_with("NOTIFY_SOCKET="));
        env.push(format!("NOTIFY_SOCKET={IN_CONTAINER}"));
        p.set_env(Some(env));
    }
    Ok(())
}

/// Before start: rt's end of the socket, if create prepared one and NOTIFY_SOCKET is set now.
/// Whether the caller passed NOTIFY_SOCKET on to the container.
pub fn configured() -> bool {
    host_socket().is_some()
}

pub fn listen(state_dir: &Path) -> Result<Option<UnixDatagram>> {
    if host_socket().is_none() || !state_dir.join(DIR).is_dir() {
        return Ok(None);
    }
    let path = state_dir.join(DIR).join(SOCK);
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).with_context(|| format!("bind {}", path.display()))?;
    // The container's process may run as any user.
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(Some(sock))
}

/// After start: wait for READY=1 (or the init's exit), then pass MAINPID and READY=1 on.
pub fn wait_ready(sock: &UnixDatagram, init_pidfd: &std::os::fd::OwnedFd, pid: i32) -> Result<()> {
    let Some(host) = host_socket() else {
        return Ok(());
    };
    let mut buf = vec![0u8; 4096];
    loop {
        let ev = crate::sys::poll_in(&[sock.as_raw_fd(), init_pidfd.as_raw_fd()], -1)?;
        if ev[0] != 0 {
            let n = sock
                .recv(&mut buf)
                .context("read the container's notify socket")?;
            let msg = String::from_utf8_lossy(&buf[..n]);
            if msg.lines().any(|l| l.trim() == "READY=1") {
                break;
            }
            continue;
        }
        if ev[1] != 0 {
            bail!("the container exited before it reported READY=1");
        }
    }
    let client = UnixDatagram::unbound().context("notify: socket")?;
    let host_s = host.to_string_lossy();
    // An abstract socket is written with a leading '@'.
    let r = if let Some(name) = host_s.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .context("notify: abstract address")?;
        client.send_to_addr(format!("MAINPID={pid}\nREADY=1\n").as_bytes(), &addr)
    } else {
        client.send_to(format!("MAINPID={pid}\nREADY=1\n").as_bytes(), &host)
    };
    r.with_context(|| format!("notify the host socket {host_s}"))?;
    Ok(())
}
