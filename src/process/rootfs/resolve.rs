//! Paths inside the rootfs: every lookup with openat2(RESOLVE_IN_ROOT) against a dirfd of
//! the rootfs, every missing component made without following a symlink out of it.

use anyhow::{Context, Result, bail};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use crate::sys::{self, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS};

/// Normalises a container path to its components, refusing nothing: `..` can't escape because
/// resolution happens with RESOLVE_IN_ROOT anyway.
pub(super) fn rel_components(p: &Path) -> Vec<PathBuf> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(PathBuf::from(s)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// The rootfs as a directory fd; every container path is resolved relative to it.
pub struct Root {
    pub fd: OwnedFd,
}

impl Root {
    pub fn open(path: &Path) -> Result<Root> {
        let fd = sys::open(path, libc::O_PATH | libc::O_DIRECTORY, 0)
            .with_context(|| format!("open rootfs {}", path.display()))?;
        Ok(Root { fd })
    }

    /// Opens `path` inside the root (O_PATH); symlinks are followed but stay inside.
    pub fn resolve(&self, path: &Path, nofollow: bool) -> std::io::Result<OwnedFd> {
        let rel: PathBuf = rel_components(path).iter().collect();
        let rel = if rel.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            rel
        };
        let flags = libc::O_PATH | if nofollow { libc::O_NOFOLLOW } else { 0 };
        sys::openat2(
            self.fd.as_raw_fd(),
            &rel,
            flags,
            0,
            RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        )
    }

    /// `path` as a real directory of the rootfs (made if missing), opened without following a
    /// last symlink: a symlink there, as anything but a directory, is refused.
    pub fn real_dir(&self, path: &Path) -> Result<OwnedFd> {
        let open = || {
            let rel: PathBuf = rel_components(path).iter().collect();
            let rel = if rel.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                rel
            };
            sys::openat2(
                self.fd.as_raw_fd(),
                &rel,
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_DIRECTORY,
                0,
                RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
            )
        };
        let fd = match open() {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                drop(self.mkdir_all(path, Kind::Dir)?);
                open()
            }
            r => r,
        };
        match fd {
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                bail!("destination must be a real directory, not a symlink or file")
            }
            r => r.with_context(|| format!("open {}", path.display())),
        }
    }

    /// Resolves `path` inside the root, creating what is missing (directories, and the last
    /// component as `kind`). Each new entry is made with *at() calls on an already resolved
    /// parent, so a racing symlink swap can't redirect the creation out of the rootfs.
    pub fn mkdir_all(&self, path: &Path, kind: Kind) -> Result<OwnedFd> {
        let missing = match self.resolve(path, false) {
            Ok(fd) => return Ok(fd),
            Err(e) => e.raw_os_error() == Some(libc::ENOENT),
        };
        let mut comps = rel_components(path);
        // Mostly only the last component is missing (a mount point in a fresh /dev): start at
        // its parent when that resolves, instead of walking down from the root. Only then: any
        // other failure (a magic link, ELOOP) is the walk's to report.
        let mut start = match comps.len() {
            n if n > 1 && missing => {
                let parent: PathBuf = comps[..n - 1].iter().collect();
                self.resolve(&parent, false).ok().map(|fd| (n - 1, fd))
            }
            _ => None,
        };
        // A dangling symlink on the way (`/evil -> /somewhere/new`) is followed inside the
        // root and its missing target created there, as runc does; 40 links at most, as the
        // kernel allows.
        for _ in 0..40 {
            let walk = match start.take() {
                Some((from, parent)) => self.mkdir_walk(&comps, from, parent, true, kind)?,
                None => {
                    let root = self.resolve(Path::new("."), false)?;
                    self.mkdir_walk(&comps, 0, root, false, kind)?
                }
            };
            match walk {
                Walk::Done(fd) => return Ok(fd),
                Walk::Relink(next) => comps = next,
            }
        }
        bail!("{}: too many levels of symbolic links", path.display())
    }

    /// Walks `comps` from the `from`th, whose parent is `parent` (and which is known to be
    /// missing if `missing`), making what is missing.
    fn mkdir_walk(
        &self,
        comps: &[PathBuf],
        from: usize,
        mut parent: OwnedFd,
        mut missing: bool,
        kind: Kind,
    ) -> Result<Walk> {
        let mut sofar: PathBuf = comps[..from].iter().collect();
        for (i, c) in comps.iter().enumerate().skip(from) {
            sofar.push(c);
            let last = i + 1 == comps.len();
            let found = if missing {
                Err(std::io::Error::from_raw_os_error(libc::ENOENT))
            } else {
                self.resolve(&sofar, false)
            };
            missing = false;
            let fd = match found {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    let name = sys::cstring(c)?;
                    // Neither call follows a symlink in the last place: on a dangling one, both
                    // fail with EEXIST.
                    let made = if last && kind == Kind::File {
                        sys::create_excl(parent.as_raw_fd(), &name).map(drop)
                    } else {
                        // SAFETY: parent is a valid dirfd, name a valid C string.
                        sys::check_int(unsafe {
                            libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o755)
                        })
                        .map(drop)
                    };
                    match made {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                            if let Some(target) = readlink_at(&parent, &name) {
                                // Re-plan from the link's target: absolute targets start at
                                // the root.
                                let mut next = if target.is_absolute() {
                                    Vec::new()
                                } else {
                                    comps[..i].to_vec()
                                };
                                next.extend(rel_components(&target));
                                next.extend(comps[i + 1..].iter().cloned());
                                return Ok(Walk::Relink(next));
                            }
                            // Made by someone else meanwhile: use it.
                        }
                        Err(e) => {
                            return Err(e).with_context(|| {
                                format!("create {} in the rootfs", sofar.display())
                            });
                        }
                    }
                    self.resolve(&sofar, false)
                        .with_context(|| format!("open {} in the rootfs", sofar.display()))?
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("open {} in the rootfs", sofar.display()));
                }
            };
            parent = fd;
        }
        Ok(Walk::Done(parent))
    }
}

enum Walk {
    Done(OwnedFd),
    Relink(Vec<PathBuf>),
}

/// The target of `name` in `dir` if it is a symlink.
pub(super) fn readlink_at(dir: &OwnedFd, name: &std::ffi::CStr) -> Option<PathBuf> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: buf is valid for its length; dir is an O_PATH dirfd.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n <= 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(PathBuf::from(
        <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(buf),
    ))
}
