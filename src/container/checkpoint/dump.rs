//! `rt checkpoint`: the container's processes dumped by CRIU, with what restore will need to
//! put back in place of what was outside the dump (stdio, the terminal, namespaces, mounts).

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{
    CriuOpts, DESCRIPTORS, TERMINAL, criu_binary, external_mounts, external_namespaces,
    has_console, run_criu,
};
use crate::state::{self, Dir, Status};

pub struct CheckpointOpts {
    pub criu: CriuOpts,
    pub parent_path: Option<PathBuf>,
    pub leave_running: bool,
    pub pre_dump: bool,
    /// `ADDRESS:PORT`: pages go to (or, lazily, are served from) there.
    pub page_server: Option<String>,
    pub status_fd: Option<i32>,
    pub tcp_skip_in_flight: bool,
    pub link_remap: bool,
}

impl CheckpointOpts {
    /// `--page-server` as CRIU's address and port.
    fn page_server(&self) -> Result<Option<(&str, u16)>> {
        let Some(ps) = &self.page_server else {
            return Ok(None);
        };
        let bad = || anyhow::anyhow!("--page-server {ps:?}: must be ADDRESS:PORT");
        let (addr, port) = ps.rsplit_once(':').ok_or_else(bad)?;
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(bad)?;
        if addr.is_empty() {
            return Err(bad());
        }
        Ok(Some((addr, port)))
    }

    fn check(&self) -> Result<()> {
        self.criu.check()?;
        self.page_server()?;
        if let Some(fd) = self.status_fd {
            // SAFETY: F_GETFL on any number is harmless; a closed one gives EBADF.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
            if flags < 0 {
                bail!("--status-fd {fd}: not an open file descriptor");
            }
            if flags & libc::O_ACCMODE == libc::O_RDONLY {
                bail!("--status-fd {fd}: not writable");
            }
            if !self.criu.lazy_pages {
                bail!(
                    "--status-fd {fd}: only with --lazy-pages (CRIU says when pages can be fetched)"
                );
            }
        }
        if self.criu.lazy_pages && self.pre_dump {
            bail!(
                "--lazy-pages and --pre-dump: a pre-dump leaves the container running, nothing to serve"
            );
        }
        Ok(())
    }
}

/// CRIU's key for the init's terminal (`tty[rdev:dev]`, hex), if its stdio is a pty slave.
fn terminal_key(pid: i32) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    (0..3).find_map(|n| {
        let m = std::fs::metadata(format!("/proc/{pid}/fd/{n}")).ok()?;
        // UNIX98 pty slaves: majors 136 to 143.
        let major = libc::major(m.rdev());
        (std::os::unix::fs::FileTypeExt::is_char_device(&m.file_type())
            && (136..=143).contains(&major))
        .then(|| format!("tty[{:x}:{:x}]", m.rdev(), m.dev()))
    })
}

/// `rt checkpoint`: the container's processes dumped into the image directory; the container
/// is then gone (as with runc), unless --leave-running or --pre-dump.
pub fn checkpoint(root: &Path, id: &str, o: &CheckpointOpts) -> Result<()> {
    o.check()?;
    let dir = Dir::open(root, id)?;
    let st = dir.load()?;
    match st.status(&dir.path) {
        Status::Running | Status::Paused => {}
        s => bail!(
            "container {id} is {}: only a running container can be checkpointed",
            s.as_str()
        ),
    }
    let spec = state::load_spec(&dir.path)?;
    let (what, log) = if o.pre_dump {
        ("pre-dump", "pre-dump.log")
    } else {
        ("dump", "dump.log")
    };
    let mut cmd = Command::new(criu_binary()?);
    cmd.arg(what)
        .arg("--tree")
        .arg(st.pid.to_string())
        .arg("--root")
        .arg(&st.rootfs);
    o.criu.common_args(&mut cmd, log)?;
    dump_args(&mut cmd, o)?;
    let tty = describe_outside(&mut cmd, &spec, &st)?;
    record_outside(&o.criu, st.pid, tty.as_deref())?;
    run_criu(cmd, what, &o.criu, log)?;
    if !o.leave_running && !o.pre_dump {
        // CRIU killed the processes: what is left of the container goes, as runc does.
        crate::container::delete::destroy(dir, &st)?;
    }
    Ok(())
}

/// The dump's own options: incremental images, leaving it running, the page server.
fn dump_args(cmd: &mut Command, o: &CheckpointOpts) -> Result<()> {
    if let Some(parent) = &o.parent_path {
        cmd.arg("--prev-images-dir").arg(parent).arg("--track-mem");
    }
    if o.pre_dump {
        cmd.arg("--track-mem");
    }
    if o.leave_running && !o.pre_dump {
        cmd.arg("--leave-running");
    }
    for (on, flag) in [
        (o.tcp_skip_in_flight, "--skip-in-flight"),
        (o.link_remap, "--link-remap"),
    ] {
        if on {
            cmd.arg(flag);
        }
    }
    if let Some((addr, port)) = o.page_server()? {
        // Lazily, CRIU serves the pages there itself; otherwise it sends them to a page server.
        if !o.criu.lazy_pages {
            cmd.arg("--page-server");
        }
        cmd.arg("--address")
            .arg(addr)
            .arg("--port")
            .arg(port.to_string());
    }
    if let Some(fd) = o.status_fd {
        cmd.arg("--status-fd").arg(fd.to_string());
    }
    Ok(())
}

/// What the container has from outside, described to CRIU as external: bind sources,
/// namespaces joined by path, and the terminal (its master is held by the console socket's
/// reader), with /dev/console bound to its slave. The terminal's key, if it has one.
fn describe_outside(
    cmd: &mut Command,
    spec: &oci_spec::runtime::Spec,
    st: &crate::state::State,
) -> Result<Option<String>> {
    for (dest, _) in external_mounts(spec, &st.bundle) {
        cmd.arg("--ext-mount-map").arg(format!("{dest}:{dest}"));
    }
    for (kind, key, _) in external_namespaces(spec) {
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata(format!("/proc/{}/ns/{kind}", st.pid))
            .with_context(|| format!("the container's {kind} namespace"))?
            .ino();
        cmd.arg("--external").arg(format!("{kind}[{ino}]:{key}"));
    }
    let tty = terminal_key(st.pid);
    if let Some(key) = &tty {
        cmd.arg("--external").arg(key);
        if has_console(spec) {
            cmd.args(["--ext-mount-map", "/dev/console:/dev/console"]);
        }
    }
    Ok(tty)
}

/// Beside the images, for restore: what the init's stdio were (descriptors.json, as runc
/// writes it) and the terminal's key.
fn record_outside(criu: &CriuOpts, pid: i32, tty: Option<&str>) -> Result<()> {
    let fds: Vec<String> = (0..3)
        .map(|n| {
            std::fs::read_link(format!("/proc/{pid}/fd/{n}"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    std::fs::create_dir_all(&criu.image_path)
        .with_context(|| format!("--image-path {}", criu.image_path.display()))?;
    crate::sys::write_file(
        criu.image_path.join(DESCRIPTORS),
        serde_json::to_string(&fds)?,
    )
    .context("write descriptors.json")?;
    let terminal = criu.image_path.join(TERMINAL);
    match tty {
        Some(key) => {
            crate::sys::write_file(&terminal, key).context("write the image's terminal key")?
        }
        None => {
            let _ = std::fs::remove_file(&terminal);
        }
    }
    Ok(())
}
