//! rt: a daemonless OCI container runtime with runc's command line. Every call is one short
//! synchronous process; see docs/ARCHITECTURE.md for how the modules fit together.

use clap::Parser;
use rt::{cli, logging};

fn main() {
    // A caller that ignores SIGCHLD would have the kernel reap our children, and `rt run`
    // could not collect the container's exit status.
    // SAFETY: restoring the default disposition of one signal.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help and friends print and exit 0; usage errors exit 1 like runc's.
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    // Before the --log file (or anything else of rt's) can take a number the caller left free.
    rt::container::note_passed_fds(cli.preserve_fds());
    let format = match cli.log_format {
        cli::LogFormat::Text => logging::Format::Text,
        cli::LogFormat::Json => logging::Format::Json,
    };
    if let Err(e) = logging::init(cli.log.as_deref(), format, cli.debug) {
        eprintln!("{e:#}");
        std::process::exit(1);
    }
    // runc's exec exits 255 when it could not run the process, so that callers can tell
    // that from the process's own exit status (conmon and the shims do).
    let failure = if matches!(cli.cmd, Some(cli::Cmd::Exec(_))) {
        255
    } else {
        1
    };
    match cli::dispatch(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let msg = format!("{e:#}");
            logging::error(&msg);
            eprintln!("{msg}");
            std::process::exit(failure);
        }
    }
}
