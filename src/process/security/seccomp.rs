//! linux.seccomp → a libseccomp filter. Built before anything is loaded, so a bad profile fails
//! `create` with the field named; loaded by the init (or an exec'd process) as late as its
//! privileges allow: right before execve with no_new_privs, otherwise while still privileged.

use anyhow::{Context, Result, bail};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use std::collections::HashSet;
use std::str::FromStr;

fn action(a: LinuxSeccompAction, errno: Option<u32>, field: &str) -> Result<ScmpAction> {
    Ok(match a {
        // runtime-spec: SCMP_ACT_KILL is the thread-killing action.
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => {
            let e = errno.unwrap_or(libc::EPERM as u32);
            if e > u16::MAX as u32 {
                bail!("{field}: errnoRet {e} is out of range");
            }
            ScmpAction::Errno(e as i32)
        }
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        LinuxSeccompAction::ScmpActTrace => {
            ScmpAction::Trace(errno.unwrap_or(libc::EPERM as u32).min(u16::MAX as u32) as u16)
        }
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
    })
}

fn compare(op: LinuxSeccompOperator, index: usize, value: u64, two: Option<u64>) -> ScmpArgCompare {
    let idx = index as u32;
    match op {
        LinuxSeccompOperator::ScmpCmpNe => ScmpArgCompare::new(idx, ScmpCompareOp::NotEqual, value),
        LinuxSeccompOperator::ScmpCmpLt => ScmpArgCompare::new(idx, ScmpCompareOp::Less, value),
        LinuxSeccompOperator::ScmpCmpLe => {
            ScmpArgCompare::new(idx, ScmpCompareOp::LessOrEqual, value)
        }
        LinuxSeccompOperator::ScmpCmpEq => ScmpArgCompare::new(idx, ScmpCompareOp::Equal, value),
        LinuxSeccompOperator::ScmpCmpGe => {
            ScmpArgCompare::new(idx, ScmpCompareOp::GreaterEqual, value)
        }
        LinuxSeccompOperator::ScmpCmpGt => ScmpArgCompare::new(idx, ScmpCompareOp::Greater, value),
        // runtime-spec: value is the mask, valueTwo the value compared with.
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            ScmpArgCompare::new(idx, ScmpCompareOp::MaskedEqual(value), two.unwrap_or(0))
        }
    }
}

/// The `linux.seccomp` part of `rt features`. supportedFlags is asked of libseccomp and the
/// kernel right now, so it is true of this machine.
pub fn features() -> serde_json::Value {
    let supported: Vec<&str> = ScmpFilterContext::new(ScmpAction::Allow)
        .map(|mut ctx| {
            let mut v = Vec::new();
            if ctx.set_ctl_tsync(true).is_ok() {
                v.push("SECCOMP_FILTER_FLAG_TSYNC");
            }
            if ctx.set_ctl_log(true).is_ok() {
                v.push("SECCOMP_FILTER_FLAG_LOG");
            }
            if ctx.set_ctl_ssb(true).is_ok() {
                v.push("SECCOMP_FILTER_FLAG_SPEC_ALLOW");
            }
            if ctx.set_ctl_waitkill(true).is_ok() {
                v.push("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV");
            }
            v
        })
        .unwrap_or_default();
    serde_json::json!({
        "enabled": true,
        "actions": [
            "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
            "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE",
            "SCMP_ACT_TRAP"
        ],
        "operators": [
            "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
            "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"
        ],
        "archs": [
            "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64",
            "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
            "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE",
            "SCMP_ARCH_RISCV64", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_X32",
            "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"
        ],
        "knownFlags": [
            "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
        ],
        "supportedFlags": supported
    })
}

/// A compiled, not yet loaded filter: the program (libseccomp's, behind rt's ENOSYS stub when
/// the profile needs one: see `enosys_stub`) and the seccomp(2) flags rt loads it with.
/// Loading it is one system call: the init (or exec'd process) never runs libseccomp, which
/// would generate the program again there, on the container's critical path (4.5 ms for
/// Podman's default profile on the build machine).
pub struct Filter {
    pub notify: bool,
    prog: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
}

/// Does the profile use SCMP_ACT_NOTIFY anywhere (then a listener gets the notify fd)?
pub fn uses_notify(s: &LinuxSeccomp) -> bool {
    s.default_action() == LinuxSeccompAction::ScmpActNotify
        || s.syscalls()
            .iter()
            .flatten()
            .any(|r| r.action() == LinuxSeccompAction::ScmpActNotify)
}

/// Compiles `s`, or takes the program an earlier call compiled from the same profile out of
/// `cache` (the state root's `@seccomp`: see `cache`).
pub fn build(s: &LinuxSeccomp, cache: Option<&std::path::Path>) -> Result<Filter> {
    let notify = uses_notify(s);
    let flags = load_flags(s, notify);
    let key = cache.and_then(|_| cache::key(s));
    if let (Some(dir), Some(key)) = (cache, &key)
        && let Some(prog) = cache::get(dir, key)
    {
        return Ok(Filter {
            notify,
            prog,
            flags,
        });
    }
    let prog = compile(s)?;
    if let (Some(dir), Some(key)) = (cache, &key) {
        cache::put(dir, key, &prog);
    }
    Ok(Filter {
        notify,
        prog,
        flags,
    })
}

fn compile(s: &LinuxSeccomp) -> Result<Vec<libc::sock_filter>> {
    let default = action(
        s.default_action(),
        s.default_errno_ret(),
        "linux.seccomp.defaultAction",
    )?;
    let mut ctx = ScmpFilterContext::new(default).context("linux.seccomp: create filter")?;
    // no_new_privs is rt's decision (process.noNewPrivileges), not libseccomp's.
    ctx.set_ctl_nnp(false)
        .context("linux.seccomp: nnp attribute")?;
    for a in s.architectures().iter().flatten() {
        let name = a.to_string();
        let arch = ScmpArch::from_str(&name)
            .map_err(|_| anyhow::anyhow!("linux.seccomp.architectures: unknown {name}"))?;
        ctx.add_arch(arch)
            .with_context(|| format!("linux.seccomp.architectures: add {name}"))?;
    }
    for f in s.flags().iter().flatten() {
        let r = match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true).map(drop),
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true).map(drop),
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true).map(drop),
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                ctx.set_ctl_waitkill(true).map(drop)
            }
        };
        r.map_err(|e| anyhow::anyhow!("linux.seccomp.flags: {f}: not supported here ({e})"))?;
    }
    for (i, rule) in s.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let act = action(rule.action(), rule.errno_ret(), &field)?;
        // libseccomp refuses a rule whose action is the default one; it would change nothing.
        if act == default {
            continue;
        }
        let args = rule.args().clone().unwrap_or_default();
        let conds: Vec<ScmpArgCompare> = args
            .iter()
            .map(|a| compare(a.op(), a.index(), a.value(), a.value_two()))
            .collect();
        if args.iter().any(|a| a.index() > 5) {
            bail!("{field}: argument index must be 0 to 5");
        }
        // Two conditions on one argument can't be ANDed in one libseccomp rule; runc makes
        // them alternatives (one rule each), and so does rt.
        let mut seen = HashSet::new();
        let same_arg_twice = args.iter().any(|a| !seen.insert(a.index()));
        for name in rule.names() {
            let sc = match ScmpSyscall::from_name(name) {
                Ok(sc) => sc,
                Err(_) => {
                    crate::logging::debug(&format!("{field}: unknown syscall {name:?} skipped"));
                    continue;
                }
            };
            let r = if conds.is_empty() {
                ctx.add_rule(act, sc)
            } else if same_arg_twice {
                conds
                    .iter()
                    .try_for_each(|c| ctx.add_rule_conditional(act, sc, &[*c]).map(drop))
                    .map(|_| &mut ctx)
            } else {
                ctx.add_rule_conditional(act, sc, &conds)
            };
            r.map_err(|e| anyhow::anyhow!("{field}: {name}: {e}"))?;
        }
    }
    let mut prog = match highest_named_syscalls(s)? {
        Some(last) if !last.is_empty() => enosys_stub(&last),
        _ => Vec::new(),
    };
    prog.extend(instructions(&export(&ctx)?));
    if prog.len() > BPF_MAXINSNS {
        bail!(
            "linux.seccomp: the filter has {} instructions, more than the kernel's {BPF_MAXINSNS}",
            prog.len()
        );
    }
    Ok(prog)
}

fn instructions(bytes: &[u8]) -> impl Iterator<Item = libc::sock_filter> + '_ {
    bytes.chunks_exact(8).map(|c| libc::sock_filter {
        code: u16::from_ne_bytes([c[0], c[1]]),
        jt: c[2],
        jf: c[3],
        k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
    })
}

fn bytes(prog: &[libc::sock_filter]) -> Vec<u8> {
    prog.iter()
        .flat_map(|i| {
            let mut b = [0u8; 8];
            b[..2].copy_from_slice(&i.code.to_ne_bytes());
            b[2] = i.jt;
            b[3] = i.jf;
            b[4..].copy_from_slice(&i.k.to_ne_bytes());
            b
        })
        .collect()
}

/// Compiled programs by profile, in the state root's `@seccomp` directory (a name no container
/// id can take): compiling Podman's default profile took 5.6 ms with libseccomp on the build
/// machine, and nearly every container of a host uses the same few profiles. An entry holds
/// its whole key, compared in full on every hit (the file name is only a hash of it), so no
/// collision can hand one profile another's program. The key is the profile as rt parsed it,
/// this rt binary (its device, inode, size and change time: a rebuilt or upgraded rt compiles
/// afresh) and the kernel release. Best effort: any failure means compiling, as without it.
mod cache {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
    use std::path::{Path, PathBuf};

    const MAGIC: &[u8] = b"rt seccomp cache 1\n";
    /// Entries kept before the directory is emptied (a host with ever-new profiles).
    const MAX_ENTRIES: usize = 64;

    pub(super) fn key(s: &LinuxSeccomp) -> Option<Vec<u8>> {
        let exe = std::fs::metadata("/proc/self/exe").ok()?;
        let release = nix::sys::utsname::uname().ok()?.release().to_owned();
        let mut key = serde_json::to_vec(s).ok()?;
        key.extend_from_slice(
            format!(
                "\n{} {} {} {}.{} ",
                exe.dev(),
                exe.ino(),
                exe.size(),
                exe.ctime(),
                exe.ctime_nsec()
            )
            .as_bytes(),
        );
        key.extend_from_slice(release.as_encoded_bytes());
        Some(key)
    }

    fn path(dir: &Path, key: &[u8]) -> PathBuf {
        use std::hash::{Hash, Hasher};
        // Only a name (see above): stable across calls of one rt build is all it needs.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        dir.join(format!("{:016x}", h.finish()))
    }

    /// Only rt's own: a directory and an entry owned by this user that nobody else may write,
    /// not reached through a symlink.
    fn ours(md: &std::fs::Metadata) -> bool {
        // SAFETY: geteuid cannot fail.
        md.uid() == unsafe { libc::geteuid() } && md.mode() & 0o022 == 0
    }

    pub(super) fn get(dir: &Path, key: &[u8]) -> Option<Vec<libc::sock_filter>> {
        let md = std::fs::symlink_metadata(dir).ok()?;
        if !md.is_dir() || !ours(&md) {
            return None;
        }
        let file = std::fs::File::from(
            crate::sys::open(&path(dir, key), libc::O_RDONLY | libc::O_NOFOLLOW, 0).ok()?,
        );
        let fmd = file.metadata().ok()?;
        if !fmd.is_file() || !ours(&fmd) {
            return None;
        }
        let data = crate::sys::read_fd_to_end(std::os::fd::AsRawFd::as_raw_fd(&file)).ok()?;
        let rest = data.strip_prefix(MAGIC)?;
        let len = u32::from_ne_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let (stored, prog) = rest.get(4..)?.split_at_checked(len)?;
        if stored != key || prog.is_empty() || prog.len() % 8 != 0 || prog.len() / 8 > BPF_MAXINSNS
        {
            return None;
        }
        Some(instructions(prog).collect())
    }

    pub(super) fn put(dir: &Path, key: &[u8], prog: &[libc::sock_filter]) {
        let _ = (|| -> std::io::Result<()> {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .recursive(true)
                .create(dir)?;
            if !ours(&std::fs::symlink_metadata(dir)?) {
                return Err(std::io::ErrorKind::PermissionDenied.into());
            }
            if std::fs::read_dir(dir)?.count() >= MAX_ENTRIES {
                for e in std::fs::read_dir(dir)?.flatten() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
            let file = path(dir, key);
            let tmp = file.with_extension(format!("tmp{}", std::process::id()));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            let len = u32::try_from(key.len()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
            let mut data = MAGIC.to_vec();
            data.extend_from_slice(&len.to_ne_bytes());
            data.extend_from_slice(key);
            data.extend_from_slice(&bytes(prog));
            let written = f
                .write_all(&data)
                .and_then(|_| std::fs::rename(&tmp, &file));
            if written.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            written
        })();
    }
}

const BPF_MAXINSNS: usize = 4096;
/// x32 system calls arrive with x86_64's audit arch and this bit set in their number.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

/// For each architecture of the filter (by audit arch), the highest syscall number the
/// profile names; None when the profile needs no ENOSYS stub.
///
/// Why: a syscall newer than the profile (clone3, openat2, faccessat2 for an older profile)
/// must fail with ENOSYS, not with the default errno: glibc, musl and Go fall back to the old
/// call only on ENOSYS. As runc does, anything above the highest number the profile names
/// counts as newer. A permissive default (allow, log) or a default errno of ENOSYS already
/// gives that; so does a profile that names nothing.
fn highest_named_syscalls(s: &LinuxSeccomp) -> Result<Option<Vec<(u32, u32)>>> {
    match s.default_action() {
        LinuxSeccompAction::ScmpActAllow | LinuxSeccompAction::ScmpActLog => return Ok(None),
        LinuxSeccompAction::ScmpActErrno if s.default_errno_ret() == Some(libc::ENOSYS as u32) => {
            return Ok(None);
        }
        _ => {}
    }
    let mut arches = vec![ScmpArch::native()];
    for a in s.architectures().iter().flatten() {
        let arch = ScmpArch::from_str(&a.to_string())
            .map_err(|_| anyhow::anyhow!("linux.seccomp.architectures: unknown {a}"))?;
        if !arches.contains(&arch) {
            arches.push(arch);
        }
    }
    let mut out: Vec<(u32, u32)> = Vec::new();
    for arch in arches {
        // x32 shares x86_64's audit arch; its numbers are left to libseccomp (below).
        if arch == ScmpArch::X32 {
            continue;
        }
        let highest = s
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|r| r.names())
            .filter_map(|n| ScmpSyscall::from_name_by_arch(n, arch).ok())
            .map(|sc| sc.as_raw_syscall())
            // libseccomp's pseudo-numbers (negative) are calls this arch lacks.
            .filter_map(|nr| u32::try_from(nr).ok())
            .max();
        if let (Some(h), Some(audit)) = (highest, audit_arch(arch)) {
            out.push((audit, h));
        }
    }
    Ok(Some(out))
}

/// The kernel's AUDIT_ARCH_* value for the arches rt is built for (and their compat ones);
/// others get no stub, and keep libseccomp's behaviour.
fn audit_arch(a: ScmpArch) -> Option<u32> {
    Some(match a {
        ScmpArch::X8664 => AUDIT_ARCH_X86_64,
        ScmpArch::X86 => 0x4000_0003,
        ScmpArch::Aarch64 => 0xc000_00b7,
        ScmpArch::Arm => 0x4000_0028,
        ScmpArch::Riscv64 => 0xc000_00f3,
        ScmpArch::Ppc64Le => 0xc000_0015,
        ScmpArch::S390X => 0x8000_0016,
        _ => return None,
    })
}

/// libseccomp's compiled program, as raw bytes (its in-memory export needs libseccomp 2.6).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>> {
    use std::io::{Read, Seek};
    // SAFETY: memfd_create with a NUL-terminated name; the fd is owned right away.
    let fd = unsafe { libc::memfd_create(c"rt-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("linux.seccomp: memfd for export");
    }
    // SAFETY: fd was just created and nothing else owns it.
    let mut f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    ctx.export_bpf(&f)
        .context("linux.seccomp: export the filter")?;
    let mut bytes = Vec::new();
    f.rewind()
        .and_then(|_| f.read_to_end(&mut bytes))
        .context("linux.seccomp: read the exported filter")?;
    Ok(bytes)
}

/// cBPF run before libseccomp's program: for a listed arch, a number above the highest the
/// profile names returns ENOSYS; everything else falls through to the profile unchanged.
fn enosys_stub(last: &[(u32, u32)]) -> Vec<libc::sock_filter> {
    const LD_ABS_W: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGT: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
    const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    // Offsets of seccomp_data: nr at 0, arch at 4.
    let ins = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    // Jumps are relative; the targets (the ENOSYS return, the profile) are only known at the
    // end, so the blocks are built first with placeholders.
    enum To {
        Next(u8),
        Enosys,
        Profile,
    }
    let mut body: Vec<(u16, To, To, u32)> = vec![(LD_ABS_W, To::Next(0), To::Next(0), 4)];
    for &(arch, highest) in last {
        let x86_64 = arch == AUDIT_ARCH_X86_64;
        // Not this arch: skip the block (2 instructions, 3 on x86_64).
        body.push((JEQ, To::Next(0), To::Next(if x86_64 { 3 } else { 2 }), arch));
        body.push((LD_ABS_W, To::Next(0), To::Next(0), 0));
        if x86_64 {
            body.push((JGE, To::Profile, To::Next(0), X32_SYSCALL_BIT));
        }
        body.push((JGT, To::Enosys, To::Profile, highest));
    }
    let enosys_at = body.len() + 1; // after the final "ja profile"
    let profile_at = enosys_at + 1;
    let mut prog: Vec<libc::sock_filter> = body
        .into_iter()
        .enumerate()
        .map(|(i, (code, jt, jf, k))| {
            let off = |t: To| match t {
                To::Next(n) => n,
                // The stub is a few instructions per arch: every offset fits in a u8.
                To::Enosys => (enosys_at - i - 1) as u8,
                To::Profile => (profile_at - i - 1) as u8,
            };
            ins(code, off(jt), off(jf), k)
        })
        .collect();
    // An arch the stub doesn't list: straight to the profile (which decides about it).
    prog.push(ins(JA, 0, 0, 1));
    prog.push(ins(
        RET,
        0,
        0,
        libc::SECCOMP_RET_ERRNO | (libc::ENOSYS as u32 & libc::SECCOMP_RET_DATA),
    ));
    prog
}

/// The seccomp(2) flags libseccomp would have used for this profile.
fn load_flags(s: &LinuxSeccomp, notify: bool) -> libc::c_ulong {
    let mut flags: libc::c_ulong = 0;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 1 << 5,
        };
    }
    if notify {
        flags |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        // TSYNC and a listener both use the return value; TSYNC_ESRCH frees it for the fd.
        if flags & libc::SECCOMP_FILTER_FLAG_TSYNC != 0 {
            flags |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
        }
    }
    flags
}

impl Filter {
    /// Loads the filter into the calling thread (and, with TSYNC, all threads); returns the
    /// notify fd when the profile has SCMP_ACT_NOTIFY rules.
    pub fn load(&self) -> Result<Option<std::os::fd::RawFd>> {
        let fprog = libc::sock_fprog {
            len: self.prog.len() as u16,
            filter: self.prog.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: fprog points at `self.prog`, which outlives the call; the kernel copies the
        // program and only reads it.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                &fprog as *const libc::sock_fprog,
            )
        };
        if r < 0 {
            return Err(std::io::Error::last_os_error()).context("linux.seccomp: load filter");
        }
        // With TSYNC (and no listener, whose fd the return value is then), a thread that
        // could not take the filter is named by a positive return, and none got it.
        if !self.notify && r > 0 {
            bail!("linux.seccomp: load filter: thread {r} could not be synchronized");
        }
        Ok(self.notify.then_some(r as std::os::fd::RawFd))
    }
}
