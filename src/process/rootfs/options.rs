//! Mount options: the spec's strings to mount(2) and mount_setattr(2) flags, propagation
//! and data.

use crate::sys::{self};

/// Propagation options and their mount(2) flags.
pub const PROPAGATION_OPTIONS: &[(&str, libc::c_ulong)] = &[
    ("private", libc::MS_PRIVATE),
    ("rprivate", libc::MS_PRIVATE | libc::MS_REC),
    ("shared", libc::MS_SHARED),
    ("rshared", libc::MS_SHARED | libc::MS_REC),
    ("slave", libc::MS_SLAVE),
    ("rslave", libc::MS_SLAVE | libc::MS_REC),
    ("unbindable", libc::MS_UNBINDABLE),
    ("runbindable", libc::MS_UNBINDABLE | libc::MS_REC),
];

pub fn propagation_flag(name: &str) -> Option<libc::c_ulong> {
    PROPAGATION_OPTIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
}

/// Options that are mount(2) flags: (name, flags set, flags cleared).
pub const FLAG_OPTIONS: &[(&str, libc::c_ulong, libc::c_ulong)] = &[
    ("ro", libc::MS_RDONLY, 0),
    ("rw", 0, libc::MS_RDONLY),
    ("nosuid", libc::MS_NOSUID, 0),
    ("suid", 0, libc::MS_NOSUID),
    ("nodev", libc::MS_NODEV, 0),
    ("dev", 0, libc::MS_NODEV),
    ("noexec", libc::MS_NOEXEC, 0),
    ("exec", 0, libc::MS_NOEXEC),
    ("sync", libc::MS_SYNCHRONOUS, 0),
    ("async", 0, libc::MS_SYNCHRONOUS),
    ("dirsync", libc::MS_DIRSYNC, 0),
    ("remount", libc::MS_REMOUNT, 0),
    ("mand", libc::MS_MANDLOCK, 0),
    ("nomand", 0, libc::MS_MANDLOCK),
    ("atime", 0, libc::MS_NOATIME),
    ("noatime", libc::MS_NOATIME, 0),
    ("diratime", 0, libc::MS_NODIRATIME),
    ("nodiratime", libc::MS_NODIRATIME, 0),
    ("bind", libc::MS_BIND, 0),
    ("rbind", libc::MS_BIND | libc::MS_REC, 0),
    ("relatime", libc::MS_RELATIME, 0),
    ("norelatime", 0, libc::MS_RELATIME),
    ("strictatime", libc::MS_STRICTATIME, 0),
    ("nostrictatime", 0, libc::MS_STRICTATIME),
    ("lazytime", libc::MS_LAZYTIME, 0),
    ("nolazytime", 0, libc::MS_LAZYTIME),
    ("silent", libc::MS_SILENT, 0),
    ("loud", 0, libc::MS_SILENT),
    ("iversion", libc::MS_I_VERSION, 0),
    ("noiversion", 0, libc::MS_I_VERSION),
    ("nosymfollow", libc::MS_NOSYMFOLLOW, 0),
    ("symfollow", 0, libc::MS_NOSYMFOLLOW),
];

/// runtime-spec 1.2 idmapped bind mounts (the mapping reaches submounts with `ridmap`).
pub const IDMAP_OPTIONS: &[&str] = &["idmap", "ridmap"];

/// runtime-spec 1.1 recursive attributes, applied with mount_setattr: (name, set, clear).
pub const RECURSIVE_OPTIONS: &[(&str, u64, u64)] = &[
    ("rro", sys::MOUNT_ATTR_RDONLY, 0),
    ("rrw", 0, sys::MOUNT_ATTR_RDONLY),
    ("rnosuid", sys::MOUNT_ATTR_NOSUID, 0),
    ("rsuid", 0, sys::MOUNT_ATTR_NOSUID),
    ("rnodev", sys::MOUNT_ATTR_NODEV, 0),
    ("rdev", 0, sys::MOUNT_ATTR_NODEV),
    ("rnoexec", sys::MOUNT_ATTR_NOEXEC, 0),
    ("rexec", 0, sys::MOUNT_ATTR_NOEXEC),
    ("rnodiratime", sys::MOUNT_ATTR_NODIRATIME, 0),
    ("rdiratime", 0, sys::MOUNT_ATTR_NODIRATIME),
    (
        "rrelatime",
        sys::MOUNT_ATTR_RELATIME,
        sys::MOUNT_ATTR__ATIME,
    ),
    ("rnoatime", sys::MOUNT_ATTR_NOATIME, sys::MOUNT_ATTR__ATIME),
    (
        "rstrictatime",
        sys::MOUNT_ATTR_STRICTATIME,
        sys::MOUNT_ATTR__ATIME,
    ),
    ("rnosymfollow", sys::MOUNT_ATTR_NOSYMFOLLOW, 0),
    ("rsymfollow", 0, sys::MOUNT_ATTR_NOSYMFOLLOW),
];

/// A mount entry's options split into what mount(2) takes as flags, the propagation changes
/// that need calls of their own, recursive attributes for mount_setattr, and fs data.
#[derive(Default, Debug)]
pub struct Options {
    pub flags: libc::c_ulong,
    /// Flags explicitly cleared (e.g. `rw`, `suid`): matter when remounting a bind mount.
    pub cleared: libc::c_ulong,
    pub propagation: Vec<libc::c_ulong>,
    pub rec_set: u64,
    pub rec_clr: u64,
    pub data: Vec<String>,
    /// `ridmap` (vs `idmap`): the id mapping reaches submounts too.
    pub idmap_recursive: bool,
    /// A detached mount tree already made for this entry (idmapped binds; see detached_bind).
    pub prepared: Option<std::os::fd::RawFd>,
    /// `tmpcopyup`: the new tmpfs starts with a copy of what the directory held.
    pub copyup: bool,
}

pub fn parse_options(opts: &[String]) -> Options {
    let mut o = Options::default();
    for opt in opts {
        let opt = opt.as_str();
        if let Some((_, set, clear)) = FLAG_OPTIONS.iter().find(|(n, _, _)| *n == opt) {
            o.flags = (o.flags | set) & !clear;
            o.cleared = (o.cleared | clear) & !set;
        } else if IDMAP_OPTIONS.contains(&opt) {
            o.idmap_recursive = opt == "ridmap";
        } else if opt == "tmpcopyup" {
            o.copyup = true;
        } else if let Some(p) = propagation_flag(opt) {
            o.propagation.push(p);
        } else if let Some((_, set, clr)) = RECURSIVE_OPTIONS.iter().find(|(n, _, _)| *n == opt) {
            o.rec_set |= set;
            o.rec_clr |= clr;
        } else {
            o.data.push(opt.to_string());
        }
    }
    o
}
