//! `linux.resources.devices` on cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE program of our own,
//! attached to the container's cgroup. The kernel runs it on every open and mknod of a device
//! node by a process in the cgroup (on hybrid hosts too: the hook follows the v2 cgroup).
//!
//! Semantics are runc's: nothing is allowed unless a rule says so (an `allow a *:* rwm` rule
//! allows everything), and a later rule overrides an earlier one; so the program checks the
//! rules from last to first and the first that matches decides. An allow rule matches when it
//! grants *every* access asked for, a deny rule when it denies *any* of them. After the
//! config's rules come allows for the devices every container gets (as runc does: mknod of
//! any node, and the usual /dev set) and for `linux.devices`. The filter is always attached,
//! even when the config lists no rules.

use anyhow::{Context, Result, bail};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub const ACC_MKNOD: u32 = 1;
pub const ACC_READ: u32 = 2;
pub const ACC_WRITE: u32 = 4;
pub const DEV_BLOCK: i32 = 1;
pub const DEV_CHAR: i32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    /// None: any type ('a').
    pub typ: Option<i32>,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: u32,
}

fn access_bits(s: &str) -> Result<u32> {
    let mut bits = 0;
    for c in s.chars() {
        bits |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => bail!("linux.resources.devices: access {s:?}: only r, w and m are allowed"),
        };
    }
    Ok(bits)
}

fn from_config(d: &LinuxDeviceCgroup) -> Result<Rule> {
    let typ = match d.typ() {
        None | Some(LinuxDeviceType::A) => None,
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => Some(DEV_CHAR),
        Some(LinuxDeviceType::B) => Some(DEV_BLOCK),
        Some(LinuxDeviceType::P) => bail!("linux.resources.devices: type p can't be filtered"),
    };
    Ok(Rule {
        allow: d.allow(),
        typ,
        major: d.major().filter(|m| *m >= 0),
        minor: d.minor().filter(|m| *m >= 0),
        access: match d.access() {
            Some(a) if !a.is_empty() => access_bits(a)?,
            _ => ACC_READ | ACC_WRITE | ACC_MKNOD,
        },
    })
}

fn allow_char(major: i64, minor: Option<i64>) -> Rule {
    Rule {
        allow: true,
        typ: Some(DEV_CHAR),
        major: Some(major),
        minor,
        access: ACC_READ | ACC_WRITE | ACC_MKNOD,
    }
}

/// The full rule list: the config's, then the defaults and `linux.devices`.
pub fn rules(config: &[LinuxDeviceCgroup], devices: &[LinuxDevice]) -> Result<Option<Vec<Rule>>> {
    let mut rules = config.iter().map(from_config).collect::<Result<Vec<_>>>()?;
    // Making a node is harmless when opening it is not allowed (runc allows it too).
    for typ in [DEV_CHAR, DEV_BLOCK] {
        rules.push(Rule {
            allow: true,
            typ: Some(typ),
            major: None,
            minor: None,
            access: ACC_MKNOD,
        });
    }
    // What every container needs: null, zero, full, random, urandom, tty, console, ptmx, the
    // pts of its own devpts.
    for (major, minor) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
    ] {
        rules.push(allow_char(major, Some(minor)));
    }
    rules.push(allow_char(136, None));
    for d in devices {
        let typ = match d.typ() {
            LinuxDeviceType::B => DEV_BLOCK,
            LinuxDeviceType::C | LinuxDeviceType::U => DEV_CHAR,
            _ => continue,
        };
        rules.push(Rule {
            allow: true,
            typ: Some(typ),
            major: Some(d.major()),
            minor: Some(d.minor()),
            access: ACC_READ | ACC_WRITE | ACC_MKNOD,
        });
    }
    Ok(Some(rules))
}

/// One eBPF instruction (struct bpf_insn).
#[repr(C)]
#[derive(Clone, Copy)]
struct Insn {
    code: u8,
    regs: u8, // dst in the low nibble, src in the high one
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

// Opcodes used (class | op | source).
const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND_K: u8 = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const RSH_K: u8 = 0x77; // BPF_ALU64 | BPF_RSH | BPF_K
const MOV_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const EXIT: u8 = 0x95;

/// Compiles the rules. Registers: r2 = device type, r3 = access asked for, r4 = major,
/// r5 = minor (from struct bpf_cgroup_dev_ctx at r1), r1 scratch, r0 verdict.
fn compile(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(MOV_X, 3, 2, 0, 0),
        insn(AND_K, 2, 0, 0, 0xffff),
        insn(RSH_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        // Each test jumps past the end of this rule's block when it fails; the offsets are
        // filled in once the block's length is known.
        let mut block: Vec<(Insn, bool)> = Vec::new();
        if let Some(t) = r.typ {
            block.push((insn(JNE_K, 2, 0, 0, t), true));
        }
        if let Some(m) = r.major {
            block.push((insn(JNE_K, 4, 0, 0, m as i32), true));
        }
        if let Some(m) = r.minor {
            block.push((insn(JNE_K, 5, 0, 0, m as i32), true));
        }
        block.push((insn(MOV_X, 1, 3, 0, 0), false));
        if r.allow {
            // Anything asked for outside the rule's access: not this rule.
            block.push((insn(AND_K, 1, 0, 0, (!r.access & 7) as i32), false));
            block.push((insn(JNE_K, 1, 0, 0, 0), true));
        } else {
            // Nothing asked for that the rule denies: not this rule.
            block.push((insn(AND_K, 1, 0, 0, r.access as i32), false));
            block.push((insn(JEQ_K, 1, 0, 0, 0), true));
        }
        block.push((insn(MOV_K, 0, 0, 0, i32::from(r.allow)), false));
        block.push((insn(EXIT, 0, 0, 0, 0), false));
        let len = block.len();
        for (i, (mut ins, is_jump)) in block.into_iter().enumerate() {
            if is_jump {
                ins.off = (len - i - 1) as i16;
            }
            p.push(ins);
        }
    }
    // No rule matched: denied.
    p.push(insn(MOV_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// Loads the program and attaches it to the cgroup directory `cgroup_dir`.
pub fn attach(rules: &[Rule], cgroup_dir: &std::path::Path) -> Result<()> {
    let prog = compile(rules);
    let license = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..9].copy_from_slice(b"rt_device");
    // Without a verifier log first (a log that overflows its buffer fails the load itself);
    // only a refused program is loaded again to say why.
    let load = |log: &mut [u8]| {
        let attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: prog.len() as u32,
            insns: prog.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: u32::from(!log.is_empty()),
            log_size: log.len() as u32,
            log_buf: if log.is_empty() {
                0
            } else {
                log.as_mut_ptr() as u64
            },
            kern_version: 0,
            prog_flags: 0,
            prog_name: name,
            prog_ifindex: 0,
            expected_attach_type: 0,
        };
        // SAFETY: attr and the buffers it points to live across the call.
        unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_LOAD,
                &attr as *const ProgLoadAttr,
                std::mem::size_of::<ProgLoadAttr>(),
            )
        }
    };
    let fd = load(&mut []);
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        let mut log = vec![0u8; 1 << 20];
        load(&mut log);
        let verifier = String::from_utf8_lossy(&log);
        let verifier = verifier.trim_end_matches('\0').trim();
        bail!(
            "linux.resources.devices: load the device filter: {e}: {}",
            verifier.lines().last().unwrap_or("")
        );
    }
    // SAFETY: the kernel returned a new program fd we own.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let dir = crate::sys::open(cgroup_dir, libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .with_context(|| format!("open {}", cgroup_dir.display()))?;
    let attach = ProgAttachAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: prog_fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    // SAFETY: attach lives across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attach as *const ProgAttachAttr,
            std::mem::size_of::<ProgAttachAttr>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error())
            .context("linux.resources.devices: attach the device filter");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the compiled program on one request, as the kernel would (a tiny interpreter of
    /// just the opcodes we emit), so the rule semantics are checked without root.
    fn eval(rules: &[Rule], typ: i32, major: i64, minor: i64, access: u32) -> bool {
        let prog = compile(rules);
        let ctx = [(access << 16) | typ as u32, major as u32, minor as u32];
        let mut r = [0u64; 11];
        let mut pc = 0;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_W => r[dst] = ctx[i.off as usize / 4] as u64,
                AND_K => r[dst] &= i.imm as i64 as u64,
                RSH_K => r[dst] >>= i.imm,
                MOV_X => r[dst] = r[src],
                MOV_K => r[dst] = i.imm as i64 as u64,
                JNE_K if r[dst] != i.imm as i64 as u64 => pc += i.off as usize,
                JEQ_K if r[dst] == i.imm as i64 as u64 => pc += i.off as usize,
                JNE_K | JEQ_K => {}
                EXIT => return r[0] == 1,
                _ => panic!("unexpected opcode {:#x}", i.code),
            }
        }
    }

    fn rule(
        allow: bool,
        typ: Option<i32>,
        major: Option<i64>,
        minor: Option<i64>,
        acc: &str,
    ) -> Rule {
        Rule {
            allow,
            typ,
            major,
            minor,
            access: access_bits(acc).unwrap(),
        }
    }

    #[test]
    fn deny_all_then_allow_specific() {
        let rules = vec![
            rule(false, None, None, None, "rwm"),
            rule(true, Some(DEV_CHAR), Some(1), Some(3), "rwm"),
            rule(true, Some(DEV_CHAR), Some(10), None, "r"),
        ];
        assert!(eval(&rules, DEV_CHAR, 1, 3, ACC_READ | ACC_WRITE));
        assert!(!eval(&rules, DEV_CHAR, 1, 5, ACC_READ));
        assert!(!eval(&rules, DEV_BLOCK, 8, 0, ACC_READ));
        assert!(eval(&rules, DEV_CHAR, 10, 200, ACC_READ));
        assert!(!eval(&rules, DEV_CHAR, 10, 200, ACC_READ | ACC_WRITE));
    }

    #[test]
    fn later_rules_override_earlier_and_default_is_deny() {
        assert!(!eval(&[], DEV_CHAR, 4, 4, ACC_READ));
        let rules = vec![
            rule(true, None, None, None, "rwm"),
            rule(false, Some(DEV_BLOCK), Some(8), None, "w"),
            rule(true, Some(DEV_BLOCK), Some(8), Some(1), "rw"),
        ];
        assert!(eval(&rules, DEV_CHAR, 4, 4, ACC_READ | ACC_WRITE));
        assert!(eval(&rules, DEV_BLOCK, 8, 0, ACC_READ));
        assert!(!eval(&rules, DEV_BLOCK, 8, 0, ACC_WRITE));
        assert!(eval(&rules, DEV_BLOCK, 8, 1, ACC_WRITE));
        assert!(!eval(&rules, DEV_BLOCK, 8, 2, ACC_READ | ACC_WRITE));
    }
}
