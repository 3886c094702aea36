//! Bind mounts: detached copies of the source (open_tree) given their flags and id mapping
//! before anyone can see them, attached through fds, and remounts of their flags.

use anyhow::{Context, Result};
use oci_spec::runtime::Mount;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use crate::sys::{self, fd_path};

use super::*;

pub(super) fn is_bind(m: &Mount, o: &Options) -> bool {
    m.typ().as_deref() == Some("bind") || o.flags & libc::MS_BIND != 0
}

/// Copies the directory `from` into `to` (tmpcopyup): subdirectories, files, symlinks and
/// device nodes, with their modes and owners. Everything is opened relative to an fd already
/// held, never followed through a symlink, so the image can't point the copy elsewhere.
pub(super) fn copy_tree(from: OwnedFd, to: OwnedFd) -> Result<()> {
    let to_raw = to.as_raw_fd();
    let mut dir =
        nix::dir::Dir::from_fd(from).map_err(|e| anyhow::anyhow!("read directory: {e}"))?;
    let from_raw = dir.as_raw_fd();
    let names: Vec<std::ffi::CString> = dir
        .iter()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect();
    for name in names {
        let shown = String::from_utf8_lossy(name.as_bytes()).into_owned();
        let st = sys::fstatat_nofollow(from_raw, &name).with_context(|| shown.clone())?;
        let mode = st.st_mode & 0o7777;
        // SAFETY (all blocks below): *at() calls on directory fds we hold, with a name that
        // is one path component (a directory entry).
        let kind = st.st_mode & libc::S_IFMT;
        match kind {
            libc::S_IFDIR => {
                if unsafe { libc::mkdirat(to_raw, name.as_ptr(), 0o700) } != 0 {
                    return Err(std::io::Error::last_os_error()).with_context(|| shown);
                }
                let dir_flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
                let sub_from =
                    sys::openat_c(from_raw, &name, dir_flags).with_context(|| shown.clone())?;
                let sub_to =
                    sys::openat_c(to_raw, &name, dir_flags).with_context(|| shown.clone())?;
                copy_tree(sub_from, sub_to).with_context(|| shown.clone())?;
            }
            libc::S_IFREG => {
                let src = sys::openat_c(from_raw, &name, libc::O_RDONLY | libc::O_NOFOLLOW)
                    .with_context(|| shown.clone())?;
                let dst = sys::openat_c_mode(
                    to_raw,
                    &name,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                    0o600,
                )
                .with_context(|| shown.clone())?;
                let (mut src, mut dst) = (std::fs::File::from(src), std::fs::File::from(dst));
                std::io::copy(&mut src, &mut dst).with_context(|| shown.clone())?;
            }
            libc::S_IFLNK => {
                let target = sys::readlinkat(from_raw, &name).with_context(|| shown.clone())?;
                if unsafe { libc::symlinkat(target.as_ptr(), to_raw, name.as_ptr()) } != 0 {
                    return Err(std::io::Error::last_os_error()).with_context(|| shown);
                }
            }
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
                if unsafe { libc::mknodat(to_raw, name.as_ptr(), st.st_mode, st.st_rdev) } != 0 {
                    return Err(std::io::Error::last_os_error()).with_context(|| shown);
                }
            }
            // Sockets belong to whoever listened on them: nothing to copy.
            _ => continue,
        }
        // Owner and mode last, for every kind alike: a read-only directory was still filled,
        // and no umask trims the mode (a symlink has none to set).
        unsafe {
            libc::fchownat(
                to_raw,
                name.as_ptr(),
                st.st_uid,
                st.st_gid,
                libc::AT_SYMLINK_NOFOLLOW,
            );
            if kind != libc::S_IFLNK {
                libc::fchmodat(to_raw, name.as_ptr(), mode, 0);
            }
        }
    }
    Ok(())
}

/// `remount`, as runc: the entry changes the flags (and, for a filesystem, the data) of what is
/// already mounted at its destination, typically by an earlier entry; with `bind`, only that
/// mount's own flags. Nothing new is mounted and nothing is created.
pub(super) fn remount_entry(root: &Root, m: &Mount, o: &Options) -> Result<()> {
    let dest = m.destination();
    let target = root
        .resolve(dest, false)
        .with_context(|| format!("remount: {}", dest.display()))?;
    let bind = is_bind(m, o);
    let flags = o.flags & !(libc::MS_REC | if bind { 0 } else { libc::MS_BIND });
    let data = o.data.join(",");
    sys::mount(
        None,
        &fd_path(target.as_raw_fd()),
        None,
        flags | libc::MS_REMOUNT,
        (!bind && !data.is_empty()).then_some(data.as_str()),
    )
    .context("remount")?;
    Ok(())
}

/// open_tree(OPEN_TREE_CLONE) of `src` with the entry's flags, and the id mapping of `userns`
/// when given. Idmapping needs CAP_SYS_ADMIN over the source's superblock, which a container
/// in its own user namespace lacks: rt calls this itself before the clone and hands the
/// detached tree to the init, which only attaches it.
pub fn detached_bind(
    src: &Path,
    o: &Options,
    userns: Option<std::os::fd::RawFd>,
) -> Result<OwnedFd> {
    let tree = sys::open_tree_clone(src, o.flags & libc::MS_REC != 0)
        .with_context(|| format!("bind {}", src.display()))?;
    configure_tree(tree, o, userns)
}

/// Gives a detached tree the entry's flags, and the id mapping of `userns` when given.
pub(super) fn configure_tree(
    tree: OwnedFd,
    o: &Options,
    userns: Option<std::os::fd::RawFd>,
) -> Result<OwnedFd> {
    let (set, clr) = top_attrs(o.flags, o.cleared);
    if set != 0 || clr != 0 {
        sys::mount_setattr(tree.as_raw_fd(), false, set, clr, 0).context("mount_setattr")?;
    }
    if o.rec_set != 0 || o.rec_clr != 0 {
        sys::mount_setattr(tree.as_raw_fd(), true, o.rec_set, o.rec_clr, 0)
            .context("mount_setattr (recursive)")?;
    }
    if let Some(userns) = userns {
        sys::mount_setattr_idmap(tree.as_raw_fd(), o.idmap_recursive, userns)
            .context("idmap the mount")?;
    }
    Ok(tree)
}

/// A user namespace carrying `uid`/`gid` maps, for MOUNT_ATTR_IDMAP: a short-lived child
/// creates it, rt writes its maps and keeps a handle on it, and the child goes.
pub fn idmap_userns(
    uid: &[oci_spec::runtime::LinuxIdMapping],
    gid: &[oci_spec::runtime::LinuxIdMapping],
) -> Result<OwnedFd> {
    let mut p = [0; 2];
    // SAFETY: pipe2 into a valid array.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe");
    }
    // SAFETY: both fds are new and ours.
    let (r, w) = unsafe {
        use std::os::fd::FromRawFd;
        (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1]))
    };
    match sys::clone3(libc::CLONE_NEWUSER as u64, None, false).context("clone3 for an idmap")? {
        sys::Forked::Child => {
            drop(w);
            let mut b = [0u8; 1];
            // SAFETY: wait for rt to close the pipe, then leave without running anything else.
            unsafe {
                libc::read(r.as_raw_fd(), b.as_mut_ptr().cast(), 1);
                libc::_exit(0)
            }
        }
        sys::Forked::Parent { pid, .. } => {
            drop(r);
            let fmt = |m: &[oci_spec::runtime::LinuxIdMapping]| {
                m.iter()
                    .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
                    .collect::<String>()
            };
            let result = (|| {
                crate::sys::write_file(format!("/proc/{pid}/uid_map"), fmt(uid))
                    .context("idmap uid_map")?;
                crate::sys::write_file(format!("/proc/{pid}/gid_map"), fmt(gid))
                    .context("idmap gid_map")?;
                sys::open(
                    Path::new(&format!("/proc/{pid}/ns/user")),
                    libc::O_RDONLY,
                    0,
                )
                .context("open the idmap user namespace")
            })();
            drop(w);
            // SAFETY: reaping our own child.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            result
        }
    }
}

/// A host tree bound in place of a filesystem the container may not mount fresh: recursive,
/// since it has submounts (/sys/fs/cgroup, debugfs...), and ro and the other restrictions of
/// `o` must reach them too, not just the top.
pub(super) fn recursive_bind(mut o: Options) -> Options {
    o.flags |= libc::MS_BIND | libc::MS_REC;
    let (set, clr) = top_attrs(o.flags, 0);
    o.rec_set |= set;
    o.rec_clr |= clr & sys::MOUNT_ATTR__ATIME;
    o
}

/// The per-mount flags of mount(2) options as mount_setattr attributes (set, clear).
pub(super) fn top_attrs(flags: libc::c_ulong, cleared: libc::c_ulong) -> (u64, u64) {
    let mut set = 0;
    let mut clr = 0;
    for (ms, attr) in [
        (libc::MS_RDONLY, sys::MOUNT_ATTR_RDONLY),
        (libc::MS_NOSUID, sys::MOUNT_ATTR_NOSUID),
        (libc::MS_NODEV, sys::MOUNT_ATTR_NODEV),
        (libc::MS_NOEXEC, sys::MOUNT_ATTR_NOEXEC),
        (libc::MS_NODIRATIME, sys::MOUNT_ATTR_NODIRATIME),
        (libc::MS_NOSYMFOLLOW, sys::MOUNT_ATTR_NOSYMFOLLOW),
    ] {
        if flags & ms != 0 {
            set |= attr;
        } else if cleared & ms != 0 {
            clr |= attr;
        }
    }
    // Access-time modes are one field: setting one clears the others.
    for (ms, attr) in [
        (libc::MS_NOATIME, sys::MOUNT_ATTR_NOATIME),
        (libc::MS_STRICTATIME, sys::MOUNT_ATTR_STRICTATIME),
        (libc::MS_RELATIME, sys::MOUNT_ATTR_RELATIME),
    ] {
        if flags & ms != 0 {
            set |= attr;
            clr |= sys::MOUNT_ATTR__ATIME;
        }
    }
    (set, clr)
}

/// statvfs's f_flag bit for relatime: the kernel's, which musl's libc crate does not name.
const ST_RELATIME: libc::c_ulong = 0x1000;

/// Remounts a bind mount with new flags, keeping the flags the kernel would refuse to drop
/// (those locked by a less privileged mount namespace).
pub(super) fn remount_bind(target: &OwnedFd, flags: libc::c_ulong) -> Result<()> {
    // SAFETY: zeroed statvfs is a valid out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, st is a valid out pointer.
    if unsafe { libc::fstatvfs(target.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error()).context("statvfs");
    }
    let locked = st.f_flag
        & (libc::ST_NOSUID
            | libc::ST_NODEV
            | libc::ST_NOEXEC
            | libc::ST_NOATIME
            | libc::ST_NODIRATIME
            | ST_RELATIME);
    let mut keep: libc::c_ulong = 0;
    for (st_flag, ms_flag) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (ST_RELATIME, libc::MS_RELATIME),
    ] {
        if locked & st_flag != 0 {
            keep |= ms_flag;
        }
    }
    let first = sys::mount(
        None,
        &fd_path(target.as_raw_fd()),
        None,
        libc::MS_BIND | libc::MS_REMOUNT | flags,
        None,
    );
    if first.is_err() {
        sys::mount(
            None,
            &fd_path(target.as_raw_fd()),
            None,
            libc::MS_BIND | libc::MS_REMOUNT | flags | keep,
            None,
        )
        .context("remount bind mount")?;
    }
    Ok(())
}

impl Setup<'_> {
    pub(super) fn bind_entry(&self, root: &Root, m: &Mount, o: &Options) -> Result<()> {
        let src = m.source().as_ref().context("a bind mount needs a source")?;
        let src = if src.is_absolute() {
            src.clone()
        } else {
            self.bundle.join(src)
        };
        self.bind(root, &src, m.destination(), o)
    }

    pub(super) fn bind(&self, root: &Root, src: &Path, dest: &Path, o: &Options) -> Result<()> {
        let source_error =
            |e: std::io::Error| anyhow::anyhow!("source {}: {}", src.display(), sys::errno_str(&e));
        let fd_is_dir = |fd: std::os::fd::RawFd| -> Result<bool> {
            let st = sys::fstat(fd).with_context(|| format!("source {}", src.display()))?;
            Ok(st.st_mode & libc::S_IFMT == libc::S_IFDIR)
        };
        let mut by_host = None;
        let is_dir = if let Some(tree) = o.prepared {
            fd_is_dir(tree)?
        } else {
            match std::fs::metadata(src) {
                Ok(meta) => meta.is_dir(),
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    let open = self.host_source.ok_or_else(|| source_error(e))?;
                    let fd = open(src)?;
                    let is_dir = fd_is_dir(fd.as_raw_fd())?;
                    by_host = Some(fd);
                    is_dir
                }
                Err(e) => return Err(source_error(e)),
            }
        };
        let target = root.mkdir_all(dest, if is_dir { Kind::Dir } else { Kind::File })?;
        // A detached copy of the source, given its flags before anyone can see it, attached to
        // the destination fd, then adjusted through its own fd: no path is looked up twice,
        // so a rename race can't move any of it onto another mount. Idmapped ones were made
        // by rt beforehand (see detached_bind).
        let own;
        let tree = match (o.prepared, by_host) {
            (Some(fd), _) => fd,
            (None, Some(fd)) => {
                let tree = sys::open_tree_clone_fd(fd.as_raw_fd(), o.flags & libc::MS_REC != 0)
                    .with_context(|| format!("bind {}", src.display()))?;
                own = configure_tree(tree, o, None)?;
                own.as_raw_fd()
            }
            (None, None) => {
                own = detached_bind(src, o, None)?;
                own.as_raw_fd()
            }
        };
        sys::move_mount_fd(tree, target.as_raw_fd()).context("attach the bind mount")?;
        for p in &o.propagation {
            sys::mount_setattr(tree, p & libc::MS_REC != 0, 0, 0, p & !libc::MS_REC)
                .context("set mount propagation")?;
        }
        Ok(())
    }

    pub(super) fn finish(&self, target: &OwnedFd, o: &Options) -> Result<()> {
        if o.rec_set != 0 || o.rec_clr != 0 {
            sys::mount_setattr_recursive(target.as_raw_fd(), o.rec_set, o.rec_clr)
                .context("mount_setattr")?;
        }
        for p in &o.propagation {
            sys::mount(None, &fd_path(target.as_raw_fd()), None, *p, None)
                .context("set mount propagation")?;
        }
        Ok(())
    }
}
