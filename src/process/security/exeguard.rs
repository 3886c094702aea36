//! Keeping the host's rt binary out of the container's reach (runc's CVE-2019-5736).
//!
//! rt's init is a clone of rt, so until it execs, /proc/<init>/exe is the host binary; an
//! entrypoint of `/proc/self/exe` (or a script or ELF interpreter pointing there) would make
//! the container *run* rt's binary, and a process of the container could then reopen it through
//! /proc/<pid>/exe for writing once it is no longer running. Non-dumpable covers the setup
//! window only.
//!
//! So the final exec goes through a trampoline: a 158-byte static ELF kept in a sealed memfd,
//! which does `execve(argv[1], &argv[2], envp)`. At the moment the user's program is resolved,
//! /proc/self/exe is that memfd: `/proc/self/exe` entrypoints get the trampoline again, never
//! rt, and the memfd can't be written (F_SEAL_WRITE) and lives on no filesystem. It is created
//! by rt before the clone, so its page is charged to rt's cgroup, not the container's, and the
//! cost is one memfd and one extra exec of a binary with a single page (see `make bench`).

use anyhow::{Context, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// x86_64 code: rdi = argv[1]; rsi = &argv[2]; rdx = envp (= &argv[argc+1]); execve;
/// exit_group(127) if execve returned.
#[cfg(target_arch = "x86_64")]
const CODE: [u8; 38] = [
    0x48, 0x8b, 0x7c, 0x24, 0x10, // mov rdi, [rsp+16]
    0x48, 0x8d, 0x74, 0x24, 0x18, // lea rsi, [rsp+24]
    0x48, 0x8b, 0x04, 0x24, // mov rax, [rsp]
    0x48, 0x8d, 0x54, 0xc4, 0x10, // lea rdx, [rsp+rax*8+16]
    0xb8, 0x3b, 0x00, 0x00, 0x00, // mov eax, 59 (execve)
    0x0f, 0x05, // syscall
    0xbf, 0x7f, 0x00, 0x00, 0x00, // mov edi, 127
    0xb8, 0xe7, 0x00, 0x00, 0x00, // mov eax, 231 (exit_group)
    0x0f, 0x05, // syscall
];

const BASE: u64 = 0x40_0000;
const EHDR: usize = 64;
const PHDR: usize = 56;

/// The ELF image: one header, one PT_LOAD segment (R+X) mapping the whole file.
#[cfg(target_arch = "x86_64")]
fn image() -> Vec<u8> {
    let total = (EHDR + PHDR + CODE.len()) as u64;
    let mut v = Vec::with_capacity(total as usize);
    v.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    v.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    v.extend_from_slice(&0x3eu16.to_le_bytes()); // EM_X86_64
    v.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    v.extend_from_slice(&(BASE + (EHDR + PHDR) as u64).to_le_bytes()); // e_entry
    v.extend_from_slice(&(EHDR as u64).to_le_bytes()); // e_phoff
    v.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    v.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    v.extend_from_slice(&(EHDR as u16).to_le_bytes());
    v.extend_from_slice(&(PHDR as u16).to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    v.extend_from_slice(&[0; 6]); // no section headers
    v.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    v.extend_from_slice(&5u32.to_le_bytes()); // PF_R | PF_X
    v.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    v.extend_from_slice(&BASE.to_le_bytes()); // p_vaddr
    v.extend_from_slice(&BASE.to_le_bytes()); // p_paddr
    v.extend_from_slice(&total.to_le_bytes()); // p_filesz
    v.extend_from_slice(&total.to_le_bytes()); // p_memsz
    v.extend_from_slice(&0x1000u64.to_le_bytes()); // p_align
    v.extend_from_slice(&CODE);
    v
}

/// The sealed trampoline memfd (close-on-exec: execveat runs it without inheriting it).
#[cfg(target_arch = "x86_64")]
pub fn trampoline() -> Result<OwnedFd> {
    const MFD_EXEC: libc::c_uint = 0x10;
    let name = c"rt-exec";
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: valid C string; MFD_EXEC (kernels >= 6.3) says we mean to execute it, which
    // vm.memfd_noexec may otherwise forbid; older kernels reject the flag, so retry without.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), flags | MFD_EXEC) };
    if fd < 0 {
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    }
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .context("memfd_create for the exec trampoline");
    }
    // SAFETY: a new fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let img = image();
    crate::sys::write_fd(fd.as_raw_fd(), &img).context("write the exec trampoline")?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on our memfd.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(std::io::Error::last_os_error()).context("seal the exec trampoline");
    }
    Ok(fd)
}

#[cfg(not(target_arch = "x86_64"))]
pub fn trampoline() -> Result<OwnedFd> {
    anyhow::bail!("rt's exec trampoline exists for x86_64 only")
}

/// execveat(trampoline, "", [rt-exec, exe, args...], env): never returns on success.
pub fn exec_via(
    trampoline: std::os::fd::RawFd,
    exe: &std::ffi::CStr,
    args: &[std::ffi::CString],
    env: &[std::ffi::CString],
) -> std::io::Error {
    let argv0 = c"rt-exec";
    let mut argv: Vec<*const libc::c_char> = Vec::with_capacity(args.len() + 3);
    argv.push(argv0.as_ptr());
    argv.push(exe.as_ptr());
    argv.extend(args.iter().map(|a| a.as_ptr()));
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let empty = c"";
    // SAFETY: argv and envp are NUL-terminated arrays of live C strings; AT_EMPTY_PATH
    // executes the fd itself.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            trampoline,
            empty.as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    std::io::Error::last_os_error()
}
