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

/// A compiled, not yet loaded filter.
pub struct Filter {
    ctx: ScmpFilterContext,
    pub notify: bool,
}

/// Does the profile use SCMP_ACT_NOTIFY anywhere (then a listener gets the notify fd)?
pub fn uses_notify(s: &LinuxSeccomp) -> bool {
    s.default_action() == LinuxSeccompAction::ScmpActNotify
        || s.syscalls()
            .iter()
            .flatten()
            .any(|r| r.action() == LinuxSeccompAction::ScmpActNotify)
}

pub fn build(s: &LinuxSeccomp) -> Result<Filter> {
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
    Ok(Filter {
        ctx,
        notify: uses_notify(s),
    })
}

impl Filter {
    /// Loads the filter into the calling thread (and, with TSYNC, all threads); returns the
    /// notify fd when the profile has SCMP_ACT_NOTIFY rules.
    pub fn load(&self) -> Result<Option<std::os::fd::RawFd>> {
        self.ctx.load().context("linux.seccomp: load filter")?;
        if self.notify {
            return Ok(Some(
                self.ctx
                    .get_notify_fd()
                    .context("linux.seccomp: get notify fd")?,
            ));
        }
        Ok(None)
    }
}
