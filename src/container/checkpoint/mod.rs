//! `checkpoint` and `restore`: a running container saved to disk and brought back, by CRIU
//! (the `criu` binary, driven through its command line). rt describes the container to CRIU:
//! its root, the bind mounts whose sources live outside it (external mounts, mapped back to
//! the bundle's sources on restore), its cgroup, and which of the init's stdio fds to hand
//! over on restore (`descriptors.json` in the image directory, as runc writes).

mod dump;
mod restore;

pub use dump::{CheckpointOpts, checkpoint};
pub use restore::{RestoreOpts, restore};

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// CRIU options shared by checkpoint and restore (runc's flags of the same names).
#[derive(Default, Clone)]
pub struct CriuOpts {
    pub image_path: PathBuf,
    pub work_path: Option<PathBuf>,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub manage_cgroups_mode: Option<String>,
    pub empty_ns: Vec<String>,
    pub auto_dedup: bool,
    pub lazy_pages: bool,
}

const DESCRIPTORS: &str = "descriptors.json";

/// The image's terminal, if the init's stdio was one: CRIU's key for it (`tty[rdev:dev]`),
/// left out of the dump as external, for restore to put a new pty in its place.
const TERMINAL: &str = "rt-terminal";

fn criu_binary() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join("criu"))
        .find(|p| p.is_file())
        .context(
            "checkpoint and restore need CRIU: no criu binary in PATH (install the criu package)",
        )
}

/// The bind mounts CRIU can't see the source of from inside the container: their
/// destinations, each with its host source.
fn external_mounts(spec: &oci_spec::runtime::Spec, bundle: &Path) -> Vec<(String, PathBuf)> {
    spec.mounts()
        .iter()
        .flatten()
        .filter(|m| {
            m.typ().as_deref() == Some("bind")
                || m.options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind")
        })
        .filter_map(|m| {
            let src = m.source().as_ref()?;
            let src = if src.is_absolute() {
                src.clone()
            } else {
                bundle.join(src)
            };
            Some((m.destination().to_string_lossy().into_owned(), src))
        })
        .chain(device_binds(spec))
        .collect()
}

/// In a user namespace, where mknod is not allowed, the container's device nodes are bind
/// mounts of the host's (rootfs.rs): external too, each from the host node of its path.
fn device_binds(spec: &oci_spec::runtime::Spec) -> Vec<(String, PathBuf)> {
    if !crate::spec::has_namespace(spec, oci_spec::runtime::LinuxNamespaceType::User) {
        return Vec::new();
    }
    let defaults =
        ["null", "zero", "full", "random", "urandom", "tty"].map(|n| format!("/dev/{n}"));
    let listed = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
        .map(|d| d.path().to_string_lossy().into_owned());
    let mut all: Vec<(String, PathBuf)> = Vec::new();
    for d in defaults.into_iter().chain(listed) {
        if !all.iter().any(|(seen, _)| *seen == d) {
            all.push((d.clone(), PathBuf::from(d)));
        }
    }
    all
}

impl CriuOpts {
    /// The option values CRIU would refuse, checked before anything is made or run.
    fn check(&self) -> Result<()> {
        let mode = self.manage_cgroups_mode.as_deref().unwrap_or("soft");
        if !["soft", "full", "strict", "ignore"].contains(&mode) {
            bail!("--manage-cgroups-mode {mode:?}: must be soft, full, strict or ignore");
        }
        if let Some(ns) = self.empty_ns.iter().find(|ns| *ns != "network") {
            bail!("--empty-ns {ns:?}: only network is supported (as with runc)");
        }
        Ok(())
    }

    fn common_args(&self, cmd: &mut Command, log: &str) -> Result<()> {
        std::fs::create_dir_all(&self.image_path)
            .with_context(|| format!("--image-path {}", self.image_path.display()))?;
        let work = self.work_path.as_ref().unwrap_or(&self.image_path);
        std::fs::create_dir_all(work).with_context(|| format!("--work-path {}", work.display()))?;
        cmd.arg("--images-dir")
            .arg(&self.image_path)
            .arg("--work-dir")
            .arg(work)
            .args(["--log-file", log, "-v4"]);
        for (on, flag) in [
            (self.tcp_established, "--tcp-established"),
            (self.ext_unix_sk, "--ext-unix-sk"),
            (self.shell_job, "--shell-job"),
            (self.file_locks, "--file-locks"),
            (self.auto_dedup, "--auto-dedup"),
        ] {
            if on {
                cmd.arg(flag);
            }
        }
        let mode = self.manage_cgroups_mode.as_deref().unwrap_or("soft");
        if mode != "ignore" {
            cmd.arg(format!("--manage-cgroups={mode}"));
        }
        for _ in &self.empty_ns {
            cmd.args(["--empty-ns", "net"]);
        }
        if self.lazy_pages {
            cmd.arg("--lazy-pages");
        }
        Ok(())
    }

    fn log_tail(&self, log: &str) -> String {
        let work = self.work_path.as_ref().unwrap_or(&self.image_path);
        let text = crate::sys::read_to_string(work.join(log)).unwrap_or_default();
        let errors: Vec<&str> = text.lines().filter(|l| l.contains("Error")).collect();
        let pick = if errors.is_empty() {
            text.lines().rev().take(3).collect::<Vec<_>>()
        } else {
            errors.into_iter().rev().take(3).collect()
        };
        let mut pick = pick;
        pick.reverse();
        format!("{} (see {})", pick.join("; "), work.join(log).display())
    }
}

fn run_criu(mut cmd: Command, what: &str, opts: &CriuOpts, log: &str) -> Result<()> {
    crate::logging::debug(&format!("criu: {cmd:?}"));
    let status = cmd.status().with_context(|| format!("run criu {what}"))?;
    if !status.success() {
        bail!("criu {what} failed ({status}): {}", opts.log_tail(log));
    }
    Ok(())
}

/// The namespaces the container joined by path (a network namespace Podman or CNI made, a
/// pod's pid namespace): not the container's to save. CRIU leaves them out as external, under
/// runc's keys, and restore hands it the bundle's namespace in their place. CRIU's kind,
/// the key, and the spec's path.
fn external_namespaces(
    spec: &oci_spec::runtime::Spec,
) -> Vec<(&'static str, &'static str, PathBuf)> {
    use oci_spec::runtime::LinuxNamespaceType as T;
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .filter_map(|ns| {
            let (kind, key) = match ns.typ() {
                T::Network => ("net", "extRootNetNS"),
                T::Pid => ("pid", "extRootPidNS"),
                _ => return None,
            };
            Some((kind, key, ns.path().clone()?))
        })
        .collect()
}

fn has_console(spec: &oci_spec::runtime::Spec) -> bool {
    spec.process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false)
}
