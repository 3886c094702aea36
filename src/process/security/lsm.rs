//! AppArmor profiles and SELinux labels. Both are set by writing the *next exec's* context
//! into /proc/thread-self/attr, through the host procfs handle the parent verified (an image
//! can't redirect that write: CVE-2019-16884). A label asked for on a host without the LSM is
//! an error, never silently dropped.

use anyhow::{Context, Result, bail};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

pub fn apparmor_enabled() -> bool {
    crate::sys::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// Checks at validation time, before anything is created.
pub fn check(
    apparmor: Option<&str>,
    selinux: Option<&str>,
    mount_label: Option<&str>,
) -> Result<()> {
    if apparmor.is_some_and(|p| !p.is_empty()) && !apparmor_enabled() {
        bail!("process.apparmorProfile: AppArmor is not enabled on this host");
    }
    if selinux.is_some_and(|l| !l.is_empty()) && !selinux_enabled() {
        bail!("process.selinuxLabel: SELinux is not enabled on this host");
    }
    if mount_label.is_some_and(|l| !l.is_empty()) && !selinux_enabled() {
        bail!("linux.mountLabel: SELinux is not enabled on this host");
    }
    Ok(())
}

fn write_attr(hostproc: RawFd, rel: &str, value: &str, field: &str) -> Result<()> {
    let f = crate::sys::openat(hostproc, Path::new(rel), libc::O_WRONLY, 0)
        .with_context(|| format!("{field}: open /proc/{rel}"))?;
    crate::sys::write_fd(f.as_raw_fd(), value.as_bytes())
        .with_context(|| format!("{field}: write {value:?}"))?;
    Ok(())
}

/// Sets the contexts the process will have after execve.
pub fn apply(hostproc: RawFd, apparmor: Option<&str>, selinux: Option<&str>) -> Result<()> {
    if let Some(p) = apparmor.filter(|p| !p.is_empty()) {
        // The AppArmor-specific attr dir (kernels >= 5.1, stacked LSMs), else the legacy one.
        let r = write_attr(
            hostproc,
            "thread-self/attr/apparmor/exec",
            &format!("exec {p}"),
            "process.apparmorProfile",
        );
        if r.is_err() {
            write_attr(
                hostproc,
                "thread-self/attr/exec",
                &format!("exec {p}"),
                "process.apparmorProfile",
            )?;
        }
    }
    if let Some(l) = selinux.filter(|l| !l.is_empty()) {
        write_attr(hostproc, "thread-self/attr/exec", l, "process.selinuxLabel")?;
    }
    Ok(())
}

/// linux.mountLabel as the `context=` option SELinux-aware filesystems take.
pub fn mount_data(data: &str, label: Option<&str>) -> String {
    match label.filter(|l| !l.is_empty()) {
        Some(l) if data.is_empty() => format!("context=\"{l}\""),
        Some(l) => format!("{data},context=\"{l}\""),
        None => data.to_string(),
    }
}
