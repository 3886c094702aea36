//! The process's privileges: rlimits, the user and groups it runs as, its five capability sets
//! and no_new_privs. Applied by the init in the order that keeps each step permitted.

use anyhow::{Context, Result, bail};
use caps::{CapSet, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities, PosixRlimit, PosixRlimitType, User};
use std::str::FromStr;

fn rlimit_resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

pub fn set_rlimits(limits: &[PosixRlimit]) -> Result<()> {
    for l in limits {
        let rl = libc::rlimit {
            rlim_cur: l.soft(),
            rlim_max: l.hard(),
        };
        // SAFETY: rl is a valid rlimit.
        if unsafe { libc::setrlimit(rlimit_resource(l.typ()), &rl) } != 0 {
            let e = std::io::Error::last_os_error();
            bail!(
                "process.rlimits {} (soft {}, hard {}): {}",
                l.typ(),
                l.soft(),
                l.hard(),
                crate::sys::errno_str(&e)
            );
        }
    }
    Ok(())
}

/// A capability the running kernel doesn't have (newer than it) is left out with a warning,
/// as runc does: asking for it would fail the whole capset.
fn to_caps(set: Option<&Capabilities>, field: &str, kernel: &CapsHashSet) -> Result<CapsHashSet> {
    let mut out = CapsHashSet::new();
    for c in set.into_iter().flatten() {
        let name = format!("CAP_{c}");
        let cap = caps::Capability::from_str(&name).map_err(|_| {
            anyhow::anyhow!("process.capabilities.{field}: unknown capability {name}")
        })?;
        if kernel.contains(&cap) {
            out.insert(cap);
        } else {
            crate::logging::warn(&format!(
                "process.capabilities.{field}: {name} is unknown to this kernel: ignored"
            ));
        }
    }
    Ok(out)
}

/// The capability sets the process will end with, converted (and checked) up front.
pub struct CapPlan {
    bounding: CapsHashSet,
    effective: CapsHashSet,
    permitted: CapsHashSet,
    inheritable: CapsHashSet,
    ambient: CapsHashSet,
}

impl CapPlan {
    pub fn new(c: Option<&LinuxCapabilities>) -> Result<CapPlan> {
        let Some(c) = c else {
            // No capabilities object: the process gets none, like runc.
            return Ok(CapPlan {
                bounding: CapsHashSet::new(),
                effective: CapsHashSet::new(),
                permitted: CapsHashSet::new(),
                inheritable: CapsHashSet::new(),
                ambient: CapsHashSet::new(),
            });
        };
        let kernel = caps::runtime::thread_all_supported();
        Ok(CapPlan {
            bounding: to_caps(c.bounding().as_ref(), "bounding", &kernel)?,
            effective: to_caps(c.effective().as_ref(), "effective", &kernel)?,
            permitted: to_caps(c.permitted().as_ref(), "permitted", &kernel)?,
            inheritable: to_caps(c.inheritable().as_ref(), "inheritable", &kernel)?,
            ambient: to_caps(c.ambient().as_ref(), "ambient", &kernel)?,
        })
    }

    /// Drops what leaves the bounding set; needs CAP_SETPCAP, so it runs while still root.
    pub fn apply_bounding(&self) -> Result<()> {
        let supported = caps::runtime::thread_all_supported();
        for cap in supported {
            if !self.bounding.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap)
                    .with_context(|| format!("drop {cap} from the bounding set"))?;
            }
        }
        Ok(())
    }

    /// Sets the final sets after the uid change (which keepcaps preserved them across), in one
    /// capset(2): set by set, an intermediate state (effective beyond permitted) is refused.
    pub fn apply(&self) -> Result<()> {
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        #[derive(Clone, Copy, Default)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        let mut data = [Data::default(); 2];
        let mut put = |set: &CapsHashSet, f: fn(&mut Data) -> &mut u32| {
            for cap in set {
                let bit = cap.index() as usize;
                *f(&mut data[bit / 32]) |= 1 << (bit % 32);
            }
        };
        put(&self.effective, |d| &mut d.effective);
        put(&self.permitted, |d| &mut d.permitted);
        put(&self.inheritable, |d| &mut d.inheritable);
        let mut hdr = Header {
            version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
            pid: 0,
        };
        // SAFETY: header and two data records, as capset(2) version 3 expects.
        if unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut Header, data.as_ptr()) } != 0 {
            let e = std::io::Error::last_os_error();
            bail!(
                "process.capabilities: set effective/permitted/inheritable: {} (effective must be \
                 a subset of permitted)",
                crate::sys::errno_str(&e)
            );
        }
        caps::clear(None, CapSet::Ambient).context("clear ambient capabilities")?;
        for cap in &self.ambient {
            // As runc: an ambient capability the other sets don't allow is skipped, not fatal.
            if let Err(e) = caps::raise(None, CapSet::Ambient, *cap) {
                crate::logging::debug(&format!("cannot raise ambient {cap}: {e}"));
            }
        }
        Ok(())
    }
}

/// setgroups + setresgid + setresuid. Keepcaps must be on so the capability sets survive a
/// switch away from uid 0; CapPlan::apply then sets them exactly.
pub fn set_user(user: &User, userns_setgroups_denied: bool) -> Result<()> {
    let groups: Vec<libc::gid_t> = user.additional_gids().clone().unwrap_or_default();
    if !userns_setgroups_denied {
        // SAFETY: groups is a valid array of its length.
        if unsafe { libc::setgroups(groups.len(), groups.as_ptr()) } != 0 {
            let e = std::io::Error::last_os_error();
            bail!(
                "process.user.additionalGids {groups:?}: {}",
                crate::sys::errno_str(&e)
            );
        }
    } else if !groups.is_empty() {
        bail!("process.user.additionalGids: setgroups is denied in this user namespace");
    }
    let (uid, gid) = (user.uid(), user.gid());
    // Raw syscalls, not libc wrappers: glibc's setxid broadcast is for threaded programs and
    // rt's init is a single thread.
    // SAFETY: plain syscalls with integer arguments.
    unsafe {
        if libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0 {
            let e = std::io::Error::last_os_error();
            bail!("process.user.gid {gid}: {}", crate::sys::errno_str(&e));
        }
        if libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0 {
            let e = std::io::Error::last_os_error();
            bail!("process.user.uid {uid}: {}", crate::sys::errno_str(&e));
        }
    }
    Ok(())
}

pub fn set_no_new_privs() -> Result<()> {
    crate::sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1).context("set no_new_privs")
}
