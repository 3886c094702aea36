//! uid/gid maps of a new user namespace, written by rt from outside: as root any ranges; as
//! a user through newuidmap/newgidmap, as rootless Podman does.

use anyhow::{Context, Result, anyhow, bail};
use oci_spec::runtime::Spec;

use crate::sys::{self};

/// The parent writes the maps: it is root in the user namespace's parent, so any ranges are
/// allowed and setgroups stays available to the container.
pub(crate) fn write_id_maps(pid: i32, spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref().context("no linux section")?;
    if sys::rootless() {
        return write_id_maps_rootless(pid, linux);
    }
    let fmt = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.iter()
            .flatten()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect::<String>()
    };
    for (file, maps, field) in [
        ("uid_map", fmt(linux.uid_mappings()), "linux.uidMappings"),
        ("gid_map", fmt(linux.gid_mappings()), "linux.gidMappings"),
    ] {
        if maps.is_empty() {
            continue;
        }
        crate::sys::write_file(format!("/proc/{pid}/{file}"), &maps)
            .map_err(|e| anyhow!("{field}: write /proc/{pid}/{file}: {}", sys::errno_str(&e)))?;
    }
    Ok(())
}

/// Without root, a user may map only itself (after denying setgroups), or use the setuid
/// newuidmap/newgidmap helpers for the ranges /etc/subuid and /etc/subgid grant it.
fn write_id_maps_rootless(pid: i32, linux: &oci_spec::runtime::Linux) -> Result<()> {
    // SAFETY: geteuid/getegid cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let uids = linux.uid_mappings().clone().unwrap_or_default();
    let gids = linux.gid_mappings().clone().unwrap_or_default();
    let only_self = |m: &[oci_spec::runtime::LinuxIdMapping], id: u32| {
        m.len() == 1 && m[0].size() == 1 && m[0].host_id() == id
    };
    for (maps, own, file, helper, field) in [
        (&uids, uid, "uid_map", "newuidmap", "linux.uidMappings"),
        (&gids, gid, "gid_map", "newgidmap", "linux.gidMappings"),
    ] {
        if only_self(maps, own) {
            if file == "gid_map" {
                crate::sys::write_file(format!("/proc/{pid}/setgroups"), "deny")
                    .map_err(|e| anyhow!("{field}: deny setgroups: {}", sys::errno_str(&e)))?;
            }
            let line = format!("{} {} 1\n", maps[0].container_id(), own);
            crate::sys::write_file(format!("/proc/{pid}/{file}"), line)
                .map_err(|e| anyhow!("{field}: write {file}: {}", sys::errno_str(&e)))?;
            continue;
        }
        let mut cmd = std::process::Command::new(helper);
        cmd.arg(pid.to_string());
        for m in maps.iter() {
            cmd.args([
                m.container_id().to_string(),
                m.host_id().to_string(),
                m.size().to_string(),
            ]);
        }
        let out = cmd.output().map_err(|e| {
            anyhow!(
                "{field}: mapping ids other than your own needs {helper} (Debian package uidmap): {}",
                sys::errno_str(&e)
            )
        })?;
        if !out.status.success() {
            bail!(
                "{field}: {helper}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(())
}
