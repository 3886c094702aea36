//! rt: a daemonless OCI container runtime with runc's command line. Every call is one short
//! synchronous process; see docs/ARCHITECTURE.md for how the modules fit together.

use clap::{CommandFactory, FromArgMatches};
use rt::{cli, logging};

// Why rt brings its own: see sys/alloc.rs.
#[global_allocator]
static HEAP: rt::sys::alloc::Heap = rt::sys::alloc::Heap::new();

/// clap's parse, in a frame of its own: inlined, its command definitions took 20 KiB of main's
/// stack frame, each page of it touched (stack probes) on every call, fast path or not.
/// clap's parser and matches are left allocated, not dropped: freeing them walks every
/// argument's definition only to put blocks on free lists that this short process would not
/// use again (with musl's allocator it also cost 40 system calls; see sys/alloc.rs).
#[inline(never)]
#[cold]
fn parse_with_clap(argv: Vec<std::ffi::OsString>) -> Result<cli::Cli, clap::Error> {
    let mut cmd = cli::Cli::command();
    let parsed = cmd.try_get_matches_from_mut(argv).and_then(|mut m| {
        let r = cli::Cli::from_arg_matches_mut(&mut m);
        std::mem::forget(m);
        r
    });
    std::mem::forget(cmd);
    parsed
}

fn main() {
    // A caller that ignores SIGCHLD would have the kernel reap our children, and `rt run`
    // could not collect the container's exit status.
    // SAFETY: restoring the default disposition of one signal.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The shims' lines on every container's path are recognised without clap (cli/fast.rs).
    let parsed = cli::fast::parse(&argv).map_or_else(|| parse_with_clap(argv), Ok);
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            // --help and friends print and exit 0; usage errors exit 1 like runc's.
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    // Before the --log file (or anything else of rt's) can take a number the caller left free.
    rt::process::fds::note_passed_fds(cli.preserve_fds());
    let format = match cli.log_format {
        cli::LogFormat::Text => logging::Format::Text,
        cli::LogFormat::Json => logging::Format::Json,
    };
    if let Err(e) = logging::init(cli.log.as_deref(), format, cli.debug) {
        eprintln!("{e:#}");
        std::process::exit(1);
    }
    logging::phase("rt started");
    // runc's exec exits 255 when it could not run the process, so that callers can tell
    // that from the process's own exit status (conmon and the shims do).
    let failure = if matches!(cli.cmd, Some(cli::Cmd::Exec(_))) {
        255
    } else {
        1
    };
    // A panic is a bug: it is logged like an error (where --log points, for the shims) and
    // exits like one, after the cleanup guards ran as it unwound.
    std::panic::set_hook(Box::new(|info| {
        let msg = format!("rt panicked (a bug; please report it): {info}");
        logging::error(&msg);
        eprintln!("{msg}");
    }));
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cli::dispatch(cli))) {
        Ok(Ok(code)) => {
            logging::phase("rt done");
            std::process::exit(code)
        }
        Ok(Err(e)) => {
            let msg = format!("{e:#}");
            logging::error(&msg);
            eprintln!("{msg}");
            std::process::exit(failure);
        }
        Err(_) => std::process::exit(failure),
    }
}
