//! The process's privileges: rlimits, the user and groups it runs as, its five capability sets
//! and no_new_privs. Applied by the init in the order that keeps each step permitted.

pub mod exeguard;
pub mod lsm;
pub mod seccomp;

use anyhow::{Context, Result, bail};
use caps::{CapSet, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities, PosixRlimit, PosixRlimitType, User};
use std::str::FromStr;

// glibc and musl type setrlimit's resource differently (an enum's u32, an int).
#[cfg(target_env = "gnu")]
type RlimitResource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type RlimitResource = libc::c_int;

fn rlimit_resource(t: PosixRlimitType) -> RlimitResource {
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

/// The highest capability number the running kernel knows. They are numbered without gaps,
/// and PR_CAPBSET_READ refuses a number past the last (EINVAL), so two probes from the highest
/// the caps crate names find it; caps' thread_all_supported reads every one of them instead.
fn last_cap() -> u8 {
    // SAFETY: PR_CAPBSET_READ only reads; a number the kernel doesn't know is EINVAL.
    let known = |n: u8| unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(n)) } >= 0;
    let mut n = caps::all().iter().map(|c| c.index()).max().unwrap_or(0);
    if known(n) {
        while n < 63 && known(n + 1) {
            n += 1;
        }
    } else {
        while n > 0 && !known(n) {
            n -= 1;
        }
    }
    n
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
    /// The kernel's highest capability number.
    last: u8,
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
                last: last_cap(),
                bounding: CapsHashSet::new(),
                effective: CapsHashSet::new(),
                permitted: CapsHashSet::new(),
                inheritable: CapsHashSet::new(),
                ambient: CapsHashSet::new(),
            });
        };
        let last = last_cap();
        let kernel: CapsHashSet = caps::all()
            .into_iter()
            .filter(|c| c.index() <= last)
            .collect();
        Ok(CapPlan {
            last,
            bounding: to_caps(c.bounding().as_ref(), "bounding", &kernel)?,
            effective: to_caps(c.effective().as_ref(), "effective", &kernel)?,
            permitted: to_caps(c.permitted().as_ref(), "permitted", &kernel)?,
            inheritable: to_caps(c.inheritable().as_ref(), "inheritable", &kernel)?,
            ambient: to_caps(c.ambient().as_ref(), "ambient", &kernel)?,
        })
    }

    /// Drops what leaves the bounding set; needs CAP_SETPCAP, so it runs while still root.
    /// By number, up to the kernel's last: a capability newer than the caps crate knows is
    /// dropped too, and dropping one that is already out is no error, so nothing is read first.
    pub fn apply_bounding(&self) -> Result<()> {
        let wanted: u64 = self.bounding.iter().fold(0, |m, c| m | 1 << c.index());
        for n in (0..=self.last).filter(|n| wanted & 1 << n == 0) {
            crate::sys::prctl(libc::PR_CAPBSET_DROP, n.into()).with_context(|| {
                let name = caps::all().into_iter().find(|c| c.index() == n);
                match name {
                    Some(c) => format!("drop {c} from the bounding set"),
                    None => format!("drop capability {n} from the bounding set"),
                }
            })?;
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
        // The raw syscall, as for the ids below: libc's wrappers broadcast to every thread the
        // library knows of, and in a clone3 child that list is the parent's.
        // SAFETY: groups is a valid array of its length.
        if unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) } != 0 {
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

/// `process.scheduler` through sched_setattr(2), which alone takes every field the spec has
/// (nice, priority, flags, and the deadline policy's runtime, deadline and period).
pub fn apply_scheduler(s: &oci_spec::runtime::Scheduler) -> Result<()> {
    use oci_spec::runtime::{LinuxSchedulerFlag as F, LinuxSchedulerPolicy as P};
    // The kernel's struct sched_attr, up to sched_period (SCHED_ATTR_SIZE_VER0).
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    let policy = match s.policy() {
        P::SchedOther => libc::SCHED_OTHER,
        P::SchedFifo => libc::SCHED_FIFO,
        P::SchedRr => libc::SCHED_RR,
        P::SchedBatch => libc::SCHED_BATCH,
        P::SchedIdle => libc::SCHED_IDLE,
        P::SchedDeadline => 6,
        P::SchedIso => bail!("process.scheduler.policy: SCHED_ISO is not a Linux policy"),
    } as u32;
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            F::SchedResetOnFork => 0x01,
            F::SchedFlagReclaim => 0x02,
            F::SchedFlagDLOverrun => 0x04,
            F::SchedFlagKeepPolicy => 0x08,
            F::SchedFlagKeepParams => 0x10,
            F::SchedFlagUtilClampMin => 0x20,
            F::SchedFlagUtilClampMax => 0x40,
        };
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: u32::try_from(s.priority().unwrap_or(0))
            .map_err(|_| anyhow::anyhow!("process.scheduler.priority must not be negative"))?,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    };
    // SAFETY: attr is a valid sched_attr of the size it declares; pid 0 is this thread.
    if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).context("process.scheduler: sched_setattr");
    }
    Ok(())
}

/// `process.ioPriority` through ioprio_set(2) for this process.
pub fn apply_io_priority(p: &oci_spec::runtime::LinuxIOPriority) -> Result<()> {
    use oci_spec::runtime::IOPriorityClass as C;
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    const IOPRIO_CLASS_SHIFT: u32 = 13;
    let class: u32 = match p.class() {
        C::IoprioClassRt => 1,
        C::IoprioClassBe => 2,
        C::IoprioClassIdle => 3,
    };
    let prio = u32::try_from(p.priority())
        .ok()
        .filter(|v| *v < 8)
        .ok_or_else(|| anyhow::anyhow!("process.ioPriority.priority must be 0 to 7"))?;
    let value = (class << IOPRIO_CLASS_SHIFT) | prio;
    // SAFETY: ioprio_set with plain integer arguments; who 0 is this process.
    if unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) } != 0 {
        return Err(std::io::Error::last_os_error()).context("process.ioPriority: ioprio_set");
    }
    Ok(())
}

/// `linux.personality`: the execution domain (LINUX or LINUX32). The spec defines no flag
/// values yet; one rt doesn't know is an error naming it rather than ignored.
pub fn apply_personality(p: &oci_spec::runtime::LinuxPersonality) -> Result<()> {
    use oci_spec::runtime::LinuxPersonalityDomain as D;
    if let Some(f) = p.flags().iter().flatten().next() {
        bail!("linux.personality.flags: {f:?} is not a flag rt knows");
    }
    let domain: libc::c_ulong = match p.domain() {
        D::PerLinux => 0x0000,
        D::PerLinux32 => 0x0008,
    };
    // SAFETY: personality takes a plain integer.
    if unsafe { libc::personality(domain) } < 0 {
        return Err(std::io::Error::last_os_error()).context("linux.personality");
    }
    Ok(())
}

/// A cpu list ("0-3,6") as a cpu_set_t; `field` names it in errors.
pub fn cpu_set(list: &str, field: &str) -> Result<libc::cpu_set_t> {
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = match (a.trim().parse(), b.trim().parse()) {
            (Ok(a), Ok(b)) if a <= b && b < max => (a, b),
            _ => bail!("{field}: {list:?} is not a list of CPUs (0 to {})", max - 1),
        };
        for cpu in a..=b {
            // SAFETY: cpu < the set's capacity, checked above.
            unsafe { libc::CPU_SET(cpu, &mut set) };
        }
    }
    Ok(set)
}

/// Pins the calling thread (and what it forks from now on) to `list`.
pub fn set_affinity(list: &str, field: &str) -> Result<()> {
    let set = cpu_set(list, field)?;
    // SAFETY: set is a valid cpu_set_t of the size given; pid 0 is this thread.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("{field} {list}"));
    }
    Ok(())
}

/// process.execCPUAffinity.initial, set on rt itself before it forks the process, so the
/// process starts there until it is in the container's cgroup.
pub fn initial_affinity(p: &oci_spec::runtime::Process) -> Result<()> {
    match p
        .exec_cpu_affinity()
        .as_ref()
        .and_then(|a| a.initial().as_deref())
    {
        Some(list) if !list.is_empty() => set_affinity(list, "process.execCPUAffinity.initial"),
        _ => Ok(()),
    }
}

/// After the exec'd process is in the container's cgroup: execCPUAffinity.final if given;
/// with no execCPUAffinity at all, every CPU (the cgroup's cpuset still bounds it), so the
/// process never inherits rt's caller's pinning; with only `initial`, the kernel's choice.
/// As runc.
pub fn exec_final_affinity(p: &oci_spec::runtime::Process) -> Result<()> {
    let a = p.exec_cpu_affinity().as_ref();
    let initial = a
        .and_then(|a| a.initial().as_deref())
        .filter(|l| !l.is_empty());
    let last = a
        .and_then(|a| a.cpu_affinity_final().as_deref())
        .filter(|l| !l.is_empty());
    match (initial, last) {
        (_, Some(list)) => set_affinity(list, "process.execCPUAffinity.final"),
        (None, None) => {
            reset_affinity();
            Ok(())
        }
        (Some(_), None) => Ok(()),
    }
}

/// Every CPU the kernel may ever have (the cgroup's cpuset still applies), best effort: the
/// container's init never keeps the affinity of whoever called rt (runc does the same).
pub fn reset_affinity() {
    // SAFETY: a cpu_set_t with every bit set is a valid mask; the kernel clamps it to its CPUs
    // and the task's cpuset.
    let full: libc::cpu_set_t = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        std::ptr::write_bytes(
            &mut set as *mut libc::cpu_set_t as *mut u8,
            0xff,
            std::mem::size_of::<libc::cpu_set_t>(),
        );
        set
    };
    // SAFETY: full is a valid cpu_set_t of the size given; pid 0 is this thread.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &full) } != 0 {
        crate::logging::debug("reset the CPU affinity: refused; the caller's stays");
    }
}

/// A list of numbers ("0-3,6") as a bitmask of `words` u64s; `field` names it in errors.
fn bit_list(list: &str, words: usize, field: &str) -> Result<Vec<u64>> {
    let max = words * 64;
    let mut mask = vec![0u64; words];
    for part in list.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        match (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
            (Ok(a), Ok(b)) if a <= b && b < max => {
                for n in a..=b {
                    mask[n / 64] |= 1 << (n % 64);
                }
            }
            _ => bail!("{field}: {list:?} is not a list of numbers below {max}"),
        }
    }
    Ok(mask)
}

/// linux.memoryPolicy's mode and flags as set_mempolicy(2) numbers, checked as runc checks
/// them (which modes need nodes, which take none).
fn mempolicy_mode(p: &oci_spec::runtime::LinuxMemoryPolicy) -> Result<(libc::c_int, Vec<u64>)> {
    use oci_spec::runtime::{MemoryPolicyFlagType as F, MemoryPolicyModeType as M};
    const NODE_WORDS: usize = 16; // 1,024 nodes, the kernel's largest MAX_NUMNODES
    let nodes = bit_list(
        p.nodes().as_deref().unwrap_or(""),
        NODE_WORDS,
        "linux.memoryPolicy.nodes",
    )?;
    let any = nodes.iter().any(|w| *w != 0);
    let (mode, needs) = match p.mode() {
        M::MpolDefault => (0, Some(false)),
        M::MpolPreferred => (1, None),
        M::MpolBind => (2, Some(true)),
        M::MpolInterleave => (3, Some(true)),
        M::MpolLocal => (4, Some(false)),
        M::MpolPreferredMany => (5, Some(true)),
        M::MpolWeightedInterleave => (6, Some(true)),
    };
    match needs {
        Some(true) if !any => bail!("linux.memoryPolicy: mode {} needs nodes", p.mode()),
        Some(false) if any => bail!("linux.memoryPolicy: mode {} takes no nodes", p.mode()),
        _ => {}
    }
    let mut flags = 0;
    for f in p.flags().iter().flatten() {
        flags |= match f {
            F::MpolFNumaBalancing => 1 << 13,
            F::MpolFRelativeNodes => 1 << 14,
            F::MpolFStaticNodes => 1 << 15,
        };
    }
    Ok((mode | flags, nodes))
}

/// Checks linux.memoryPolicy at create (nothing is applied).
pub fn check_memory_policy(p: &oci_spec::runtime::LinuxMemoryPolicy) -> Result<()> {
    mempolicy_mode(p).map(drop)
}

/// linux.memoryPolicy for this process (the init, or an exec'd one) through set_mempolicy(2).
pub fn apply_memory_policy(p: &oci_spec::runtime::LinuxMemoryPolicy) -> Result<()> {
    let (mode, nodes) = mempolicy_mode(p)?;
    let maxnode = (nodes.len() * 64) as libc::c_ulong;
    let ptr = if nodes.iter().any(|w| *w != 0) {
        nodes.as_ptr()
    } else {
        std::ptr::null()
    };
    // SAFETY: ptr is null or points at `nodes`, maxnode bits long; the kernel only reads it.
    if unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) } != 0 {
        return Err(std::io::Error::last_os_error()).context("linux.memoryPolicy: set_mempolicy");
    }
    Ok(())
}

/// process.oomScoreAdj for the calling process, through rt's checked host procfs handle.
pub fn set_oom_score_adj(hostproc: std::os::fd::RawFd, adj: i32) -> Result<()> {
    use std::os::fd::AsRawFd;
    let f = crate::sys::openat(
        hostproc,
        std::path::Path::new("self/oom_score_adj"),
        libc::O_WRONLY,
        0,
    )
    .context("process.oomScoreAdj")?;
    crate::sys::write_fd(f.as_raw_fd(), adj.to_string().as_bytes())
        .with_context(|| format!("process.oomScoreAdj {adj}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn last_cap_is_the_kernels() {
        let kernel: u8 = crate::sys::read_to_string("/proc/sys/kernel/cap_last_cap")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(super::last_cap(), kernel);
    }
}
