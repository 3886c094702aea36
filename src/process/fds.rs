//! The fds a caller passes to the container: `--preserve-fds N` and systemd's socket
//! activation (LISTEN_FDS).

/// Which of the fds a caller asks to pass (3..3+N for --preserve-fds N, plus LISTEN_FDS) are
/// open, noted once before rt opens any fd of its own (main does it before the --log file):
/// only those reach the container. A gap stays a gap, as in runc, and an fd of rt's that lands
/// in one (the log, the host /proc handle, the lock) is never handed over.
static PASSED_FDS: std::sync::OnceLock<Vec<i32>> = std::sync::OnceLock::new();

pub fn note_passed_fds(preserve_fds: u32) -> &'static [i32] {
    PASSED_FDS.get_or_init(|| {
        (3..3i64 + i64::from(preserve_fds) + i64::from(listen_fds()))
            .filter_map(|fd| i32::try_from(fd).ok())
            // SAFETY: F_GETFD on an fd number only reads its flags.
            .filter(|fd| unsafe { libc::fcntl(*fd, libc::F_GETFD) } >= 0)
            .collect()
    })
}

/// How many fds systemd passed rt (LISTEN_FDS), counted only when LISTEN_PID names rt itself,
/// as the protocol says: variables inherited from a socket-activated parent (a shell started
/// by a service, say) describe fds that parent had, not ours, and must not send whatever sits
/// at 3, 4, ... into a container.
pub fn listen_fds() -> u32 {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        == Some(std::process::id());
    if !ours {
        return 0;
    }
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
