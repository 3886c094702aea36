//! Device nodes: the defaults and linux.devices, made with mknod, or in a user namespace bound
//! from the host's; the /dev symlinks.

use anyhow::{Context, Result, bail};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use crate::sys::{self, fd_path};

use super::*;

pub(super) fn dev_symlinks(root: &Root) -> Result<()> {
    let dev = root.mkdir_all(Path::new("/dev"), Kind::Dir)?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        let t = sys::cstr(target)?;
        let n = sys::cstr(name)?;
        // SAFETY: valid dirfd and C strings.
        if unsafe { libc::symlinkat(t.as_ptr(), dev.as_raw_fd(), n.as_ptr()) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(e).with_context(|| format!("symlink /dev/{name}"));
            }
        }
    }
    Ok(())
}

impl Setup<'_> {
    pub(super) fn default_devices(&self, root: &Root) -> Result<()> {
        let dev = root.mkdir_all(Path::new("/dev"), Kind::Dir)?;
        for (name, major, minor) in [
            ("null", 1, 3),
            ("zero", 1, 5),
            ("full", 1, 7),
            ("random", 1, 8),
            ("urandom", 1, 9),
            ("tty", 5, 0),
        ] {
            let host = format!("/dev/{name}");
            self.make_node(&dev, name, &host, libc::S_IFCHR | 0o666, major, minor, 0, 0)
                .with_context(|| format!("create /dev/{name}"))?;
        }
        Ok(())
    }

    pub(super) fn device(&self, root: &Root, d: &LinuxDevice) -> Result<()> {
        let path = d.path();
        if !path.is_absolute() || !path.starts_with("/dev") {
            bail!("device path must be absolute and under /dev");
        }
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => bail!("type 'a' is only valid in device cgroup rules"),
        };
        let parent_path = path.parent().unwrap_or(Path::new("/dev"));
        let name = path.file_name().context("device path has no file name")?;
        let parent = root.mkdir_all(parent_path, Kind::Dir)?;
        let mode = d.file_mode().unwrap_or(0o666) & 0o7777;
        self.make_node(
            &parent,
            &name.to_string_lossy(),
            &path.to_string_lossy(),
            kind | mode,
            d.major() as u32,
            d.minor() as u32,
            d.uid().unwrap_or(0),
            d.gid().unwrap_or(0),
        )
    }

    /// mknod, or in a user namespace (where mknod is not allowed) a bind mount of the host node.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn make_node(
        &self,
        dir: &OwnedFd,
        name: &str,
        host: &str,
        mode: u32,
        major: u32,
        minor: u32,
        uid: u32,
        gid: u32,
    ) -> Result<()> {
        let cname = sys::cstr(name)?;
        if self.userns {
            // A node the image already has is only opened as a path (opening a device could
            // block or fail).
            let fd = match sys::create_excl(dir.as_raw_fd(), &cname) {
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                    sys::openat_c(dir.as_raw_fd(), &cname, libc::O_PATH | libc::O_NOFOLLOW)
                }
                r => r,
            }
            .context("create bind target")?;
            return sys::mount(
                Some(host),
                &fd_path(fd.as_raw_fd()),
                None,
                libc::MS_BIND,
                None,
            )
            .with_context(|| format!("bind {host}"));
        }
        // SAFETY: valid dirfd and C string; makedev is pure.
        let r = unsafe {
            libc::mknodat(
                dir.as_raw_fd(),
                cname.as_ptr(),
                mode,
                libc::makedev(major, minor),
            )
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EEXIST) {
                return Ok(());
            }
            return Err(e).context("mknod");
        }
        // mknod honours the umask; the config's mode is what the node must have.
        // SAFETY: as above.
        unsafe {
            if libc::fchmodat(
                dir.as_raw_fd(),
                cname.as_ptr(),
                mode & 0o7777,
                libc::AT_SYMLINK_NOFOLLOW,
            ) != 0
                && libc::fchmodat(dir.as_raw_fd(), cname.as_ptr(), mode & 0o7777, 0) != 0
            {
                return Err(std::io::Error::last_os_error()).context("chmod");
            }
            if libc::fchownat(
                dir.as_raw_fd(),
                cname.as_ptr(),
                uid,
                gid,
                libc::AT_SYMLINK_NOFOLLOW,
            ) != 0
            {
                return Err(std::io::Error::last_os_error()).context("chown");
            }
        }
        Ok(())
    }
}
