//! The command line: runc's contract (subcommands, flags, output formats), nothing else.
//! Parsing and printing live here; the work is in `container`.

mod args;
pub mod fast;
mod output;

pub use args::*;
use output::*;

use crate::container::{self, CreateOpts};
use anyhow::{Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[cfg_attr(test, derive(Debug))]
#[command(
    name = "rt",
    about = "A daemonless OCI container runtime with runc's command line",
    disable_version_flag = true
)]
pub struct Cli {
    /// Directory for the containers' state [default: /run/rt, or $XDG_RUNTIME_DIR/rt when
    /// not run as root]
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Append log messages to FILE instead of stderr
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Log format: text or json
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Also log debug messages
    #[arg(long)]
    pub debug: bool,
    /// Use systemd to manage cgroups: the container's cgroup is a transient unit (a scope),
    /// and linux.cgroupsPath is slice:prefix:name
    #[arg(long)]
    pub systemd_cgroup: bool,
    /// Rootless mode: true, false or auto
    #[arg(long, value_name = "MODE", default_missing_value = "true", num_args = 0..=1)]
    pub rootless: Option<String>,
    /// Print the version
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
}

#[derive(Clone, Copy, ValueEnum)]
#[cfg_attr(test, derive(Debug))]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
#[cfg_attr(test, derive(Debug))]
pub enum Format {
    Table,
    Json,
}

/// Each subcommand's arguments are defined only when it is the one called: building all
/// seventeen of them was 80% of the instructions of an `rt --version` (1.1 M of 1.4 M).
#[derive(Subcommand)]
#[cfg_attr(test, derive(Debug))]
#[command(defer = true)]
pub enum Cmd {
    /// Write a template config.json
    Spec {
        #[arg(short, long, default_value = ".", value_name = "DIR")]
        bundle: PathBuf,
        #[arg(long)]
        rootless: bool,
    },
    /// Create a container and leave its init waiting for start
    Create(CreateArgs),
    /// Run the process of a created container
    Start { id: String },
    /// Print a container's state as JSON
    State { id: String },
    /// Send a signal to a container's init (or all its processes)
    Kill {
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container and everything it holds
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Create, start and wait for a container
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once the container started
        #[arg(short, long)]
        detach: bool,
        /// Keep the container's state after it exits
        #[arg(long)]
        keep: bool,
        /// Don't make rt the subreaper of the container's orphaned processes (a container
        /// without its own pid namespace leaves them to the host's init then)
        #[arg(long)]
        no_subreaper: bool,
    },
    /// List containers
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Print the runtime-spec features document of this rt
    Features,
    /// Change a running container's resource limits
    Update(Box<UpdateArgs>),
    /// Resource usage and OOM events of a container, as JSON lines
    Events {
        /// Print one stats event and exit
        #[arg(long)]
        stats: bool,
        /// Time between stats events (e.g. 5s, 500ms, 1m)
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// Freeze every process of a container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// Run a new process inside a running container
    Exec(Box<ExecArgs>),
    /// Save a running container's processes to disk with CRIU
    Checkpoint {
        #[command(flatten)]
        criu: CriuArgs,
        /// Images of an earlier (pre-)dump to build on, relative to the image path
        #[arg(long, value_name = "DIR")]
        parent_path: Option<PathBuf>,
        /// Leave the container running after the dump
        #[arg(long)]
        leave_running: bool,
        /// Dump memory only, leaving the container running (for a later dump)
        #[arg(long)]
        pre_dump: bool,
        /// Send the memory pages to a CRIU page server (with --lazy-pages: serve them there)
        #[arg(long, value_name = "ADDRESS:PORT")]
        page_server: Option<String>,
        /// With --lazy-pages: a writable fd CRIU writes \0 to once the pages can be fetched
        #[arg(long, value_name = "FD", default_value_t = -1, allow_hyphen_values = true)]
        status_fd: i32,
        /// Skip in-flight TCP connections
        #[arg(long)]
        tcp_skip_in_flight: bool,
        /// Allow CRIU to link unlinked files back
        #[arg(long)]
        link_remap: bool,
        id: String,
    },
    /// Restore a container from a checkpoint's images
    Restore {
        #[command(flatten)]
        criu: CriuArgs,
        /// Path to the bundle directory
        #[arg(short, long, default_value = ".", value_name = "DIR")]
        bundle: PathBuf,
        /// Return once the container is restored
        #[arg(short, long)]
        detach: bool,
        /// Write the restored init's pid here
        #[arg(long, value_name = "PATH")]
        pid_file: Option<PathBuf>,
        /// Don't make rt the subreaper of the container's orphaned processes
        #[arg(long)]
        no_subreaper: bool,
        /// Close restored TCP connections
        #[arg(long)]
        tcp_close: bool,
        /// Unix socket to send the restored terminal's pty master to (a container with a terminal)
        #[arg(long, value_name = "PATH")]
        console_socket: Option<PathBuf>,
        /// Accepted for runc's callers: the restored mounts are CRIU's image of them, made at
        /// create with or without pivot_root, so there is nothing to pivot
        #[arg(long)]
        no_pivot: bool,
        /// LSM profile of the restored processes, TYPE:NAME (apparmor or selinux)
        #[arg(long, value_name = "TYPE:NAME")]
        lsm_profile: Option<String>,
        /// LSM mount context of the restored mounts (SELinux)
        #[arg(long, value_name = "CONTEXT")]
        lsm_mount_context: Option<String>,
        id: String,
    },
    /// List the processes of a container
    Ps {
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
        id: String,
        /// Arguments for ps(1) (default -ef). As runc, everything after the id is passed on,
        /// with or without a `--` before it
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
}

pub fn version_text() -> String {
    format!(
        "rt version {}\nspec: {}\n",
        env!("CARGO_PKG_VERSION"),
        crate::spec::SPEC_VERSION
    )
}

impl Cli {
    /// How many fds past stdio the command hands to a container (--preserve-fds).
    pub fn preserve_fds(&self) -> u32 {
        match &self.cmd {
            Some(Cmd::Create(a)) => a.preserve_fds,
            Some(Cmd::Run { create, .. }) => create.preserve_fds,
            Some(Cmd::Exec(a)) => a.preserve_fds,
            _ => 0,
        }
    }
}

/// Runs the parsed command; returns the process exit status. Long, as a table is: one arm per
/// subcommand, each only turning flags into a call, so runc's whole command set reads in one
/// place.
pub fn dispatch(cli: Cli) -> Result<i32> {
    if cli.version {
        print!("{}", version_text());
        return Ok(0);
    }
    let Some(cmd) = cli.cmd else {
        bail!("no command given; see rt --help");
    };
    crate::sys::set_rootless_flag(match cli.rootless.as_deref() {
        Some("true") => Some(true),
        Some("false") => Some(false),
        _ => None,
    });
    let root = &cli.root.clone().unwrap_or_else(default_root);
    let needs_features = |name: &str| -> Result<()> {
        match cli.rootless.as_deref() {
            None | Some("auto") | Some("true") | Some("false") => Ok(()),
            Some(other) => bail!("{name}: --rootless {other:?}: use true, false or auto"),
        }
    };
    match cmd {
        Cmd::Create(a) => {
            needs_features("create")?;
            container::create(
                root,
                &a.id,
                &create_opts(&a, cli.systemd_cgroup)?,
                true,
                false,
            )?;
        }
        Cmd::Start { id } => container::start(root, &id)?,
        Cmd::State { id } => {
            let v = container::state_json(root, &id)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Cmd::Kill { all, id, signal } => {
            container::kill(root, &id, parse_signal(&signal)?, all)?;
        }
        Cmd::Delete { force, id } => container::delete(root, &id, force)?,
        Cmd::Run {
            create,
            detach,
            keep,
            no_subreaper,
        } => {
            needs_features("run")?;
            let o = create_opts(&create, cli.systemd_cgroup)?;
            let wait = container::RunWait {
                detach,
                keep,
                subreaper: !no_subreaper,
            };
            return container::run(root, &create.id, &o, wait);
        }
        other => return dispatch_more(other, root, cli.systemd_cgroup),
    }
    Ok(0)
}

/// The subcommands off the containers' hot path, out of line: inlined into `dispatch`, their
/// locals made its stack frame, whose every page is touched on each call, several pages deep.
#[inline(never)]
fn dispatch_more(cmd: Cmd, root: &Path, systemd_cgroup: bool) -> Result<i32> {
    match cmd {
        Cmd::Spec { bundle, rootless } => {
            write_spec(&bundle, rootless)?;
        }
        Cmd::Update(a) => {
            let size = |v: &Option<String>| v.as_deref().map(parse_size).transpose();
            let f = crate::container::update::UpdateFlags {
                memory: size(&a.memory)?,
                memory_swap: size(&a.memory_swap)?,
                memory_reservation: size(&a.memory_reservation)?,
                cpu_period: a.cpu_period,
                cpu_quota: a.cpu_quota,
                cpu_share: a.cpu_share,
                cpu_burst: a.cpu_burst,
                cpu_idle: a.cpu_idle,
                cpuset_cpus: a.cpuset_cpus,
                cpuset_mems: a.cpuset_mems,
                pids_limit: a.pids_limit,
                blkio_weight: a.blkio_weight,
            };
            crate::container::update::update(root, &a.id, a.resources.as_deref(), &f)?;
        }
        Cmd::Events {
            stats,
            interval,
            id,
        } => crate::container::events::events(root, &id, stats, parse_duration(&interval)?)?,
        Cmd::Checkpoint {
            criu,
            parent_path,
            leave_running,
            pre_dump,
            page_server,
            status_fd,
            tcp_skip_in_flight,
            link_remap,
            id,
        } => crate::container::checkpoint::checkpoint(
            root,
            &id,
            &crate::container::checkpoint::CheckpointOpts {
                criu: criu.opts(),
                parent_path,
                leave_running,
                pre_dump,
                page_server,
                status_fd: (status_fd >= 0).then_some(status_fd),
                tcp_skip_in_flight,
                link_remap,
            },
        )?,
        Cmd::Restore {
            criu,
            bundle,
            detach,
            pid_file,
            no_subreaper,
            tcp_close,
            console_socket,
            no_pivot: _,
            lsm_profile,
            lsm_mount_context,
            id,
        } => {
            return crate::container::checkpoint::restore(
                root,
                &id,
                &crate::container::checkpoint::RestoreOpts {
                    criu: criu.opts(),
                    systemd_cgroup,
                    bundle,
                    detach,
                    pid_file,
                    subreaper: !no_subreaper,
                    tcp_close,
                    console_socket,
                    lsm_profile,
                    lsm_mount_context,
                },
            );
        }
        Cmd::Pause { id } => container::pause(root, &id)?,
        Cmd::Resume { id } => container::resume(root, &id)?,
        Cmd::Features => {
            println!(
                "{}",
                serde_json::to_string_pretty(&crate::features::document())?
            );
        }
        Cmd::Exec(a) => {
            let o = crate::container::exec::ExecOpts {
                process_file: a.process,
                args: a.command,
                tty: a.tty,
                console_socket: a.console_socket,
                detach: a.detach,
                pid_file: a.pid_file,
                cwd: a.cwd,
                env: a.env,
                user: a.user,
                additional_gids: a.additional_gids,
                caps: a.cap,
                no_new_privs: a.no_new_privs,
                preserve_fds: a.preserve_fds,
                cgroup: a.cgroup,
                pidfd_socket: a.pidfd_socket,
                apparmor: a.apparmor,
                process_label: a.process_label,
                ignore_paused: a.ignore_paused,
            };
            return crate::container::exec::exec(root, &a.id, &o);
        }
        Cmd::List { format, quiet } => print_list(root, format, quiet)?,
        Cmd::Ps {
            format,
            id,
            ps_args,
        } => print_ps(root, &id, format, &ps_args)?,
        Cmd::Create(_)
        | Cmd::Start { .. }
        | Cmd::State { .. }
        | Cmd::Kill { .. }
        | Cmd::Delete { .. }
        | Cmd::Run { .. } => bail!("internal: a hot subcommand reached dispatch_more"),
    }
    Ok(0)
}

/// runc's defaults: /run/<name> for root; for anyone else their runtime dir, which only they
/// can write. Root of a user namespace made by a user (rootless Podman runs its runtime so)
/// is that user, unless it says it is root (USER): runc's rule.
fn default_root() -> PathBuf {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty());
    let userns_user = crate::sys::in_user_namespace()
        && xdg.is_some()
        && std::env::var("USER").map_or(true, |u| u != "root");
    if !crate::sys::rootless() && !userns_user {
        return PathBuf::from("/run/rt");
    }
    match xdg {
        Some(d) => PathBuf::from(d).join("rt"),
        // SAFETY: geteuid cannot fail.
        None => PathBuf::from(format!("/tmp/rt-{}", unsafe { libc::geteuid() })),
    }
}

fn create_opts(a: &CreateArgs, systemd_cgroup: bool) -> Result<CreateOpts> {
    Ok(CreateOpts {
        pidfd_socket: a.pidfd_socket.clone(),
        bundle: a.bundle.clone(),
        console_socket: a.console_socket.clone(),
        pid_file: a.pid_file.clone(),
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
        systemd_cgroup,
    })
}
