//! The command line: runc's contract (subcommands, flags, output formats), nothing else.
//! Parsing and printing live here; the work is in `container`.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::container::{self, CreateOpts};

#[derive(Parser)]
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
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

#[derive(Args)]
pub struct CreateArgs {
    /// Path to the bundle directory
    #[arg(short, long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,
    /// Unix socket that receives the pty master of a terminal container
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Write the init's pid here (atomically, before returning)
    #[arg(long, value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
    /// Use MS_MOVE and chroot instead of pivot_root
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not create a session keyring for the container
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass N more fds (3 .. 3+N-1) to the container
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    /// Send a pidfd of the init to this unix socket (SCM_RIGHTS)
    #[arg(long, value_name = "PATH")]
    pub pidfd_socket: Option<PathBuf>,
    pub id: String,
}

#[derive(Args)]
pub struct ExecArgs {
    /// JSON file with the whole process (runtime-spec `process`)
    #[arg(short, long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Return once the process started
    #[arg(short, long)]
    pub detach: bool,
    #[arg(long, value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
    /// Working directory in the container
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Extra environment variable KEY=VALUE (repeatable)
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// UID[:GID] to run as
    #[arg(short, long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Additional group ids (repeatable or comma-separated)
    #[arg(short = 'g', long, value_delimiter = ',', value_name = "GID")]
    pub additional_gids: Vec<u32>,
    /// Add a capability (repeatable)
    #[arg(long, value_name = "CAP")]
    pub cap: Vec<String>,
    /// Set no_new_privs for the process
    #[arg(long)]
    pub no_new_privs: bool,
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    /// AppArmor profile to run the process under
    #[arg(long, value_name = "PROFILE")]
    pub apparmor: Option<String>,
    /// SELinux label to run the process with
    #[arg(long, value_name = "LABEL")]
    pub process_label: Option<String>,
    /// Send a pidfd of the process to this unix socket (SCM_RIGHTS)
    #[arg(long, value_name = "PATH")]
    pub pidfd_socket: Option<PathBuf>,
    /// Sub-cgroup of the container's cgroup to run in: [controller:]path
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,
    /// Allow exec in a paused container (the process joins the frozen cgroup)
    #[arg(long)]
    pub ignore_paused: bool,
    pub id: String,
    /// Command and arguments (unless --process)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// CRIU options of both checkpoint and restore (runc's).
#[derive(Args)]
pub struct CriuArgs {
    /// Directory for the image files
    #[arg(long, value_name = "DIR", default_value = "checkpoint")]
    pub image_path: PathBuf,
    /// Directory for CRIU's log and work files [default: the image path]
    #[arg(long, value_name = "DIR")]
    pub work_path: Option<PathBuf>,
    /// Allow open TCP connections
    #[arg(long)]
    pub tcp_established: bool,
    /// Allow external unix sockets
    #[arg(long)]
    pub ext_unix_sk: bool,
    /// Allow a shell job (a terminal container)
    #[arg(long)]
    pub shell_job: bool,
    /// Handle file locks
    #[arg(long)]
    pub file_locks: bool,
    /// Cgroups mode: soft (default), full, strict or ignore
    #[arg(long, value_name = "MODE")]
    pub manage_cgroups_mode: Option<String>,
    /// Namespace to leave empty rather than save or restore (network)
    #[arg(long, value_name = "NS")]
    pub empty_ns: Vec<String>,
    /// Deduplicate the memory pages of incremental images
    #[arg(long)]
    pub auto_dedup: bool,
    /// Memory pages served on demand (userfaultfd) rather than all at once: a checkpoint
    /// serves them (see --page-server), a restore asks `criu lazy-pages` for them
    #[arg(long)]
    pub lazy_pages: bool,
}

impl CriuArgs {
    fn opts(&self) -> crate::container::checkpoint::CriuOpts {
        crate::container::checkpoint::CriuOpts {
            image_path: self.image_path.clone(),
            work_path: self.work_path.clone(),
            tcp_established: self.tcp_established,
            ext_unix_sk: self.ext_unix_sk,
            shell_job: self.shell_job,
            file_locks: self.file_locks,
            manage_cgroups_mode: self.manage_cgroups_mode.clone(),
            empty_ns: self.empty_ns.clone(),
            auto_dedup: self.auto_dedup,
            lazy_pages: self.lazy_pages,
        }
    }
}

#[derive(Args)]
pub struct UpdateArgs {
    /// JSON LinuxResources file, or - for stdin
    #[arg(short, long, value_name = "FILE")]
    pub resources: Option<PathBuf>,
    /// Memory limit (bytes, or with k/m/g suffix; -1 for none)
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory plus swap limit (same units)
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit (same units)
    #[arg(long, allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    #[arg(long)]
    pub cpu_period: Option<u64>,
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    #[arg(long)]
    pub cpu_share: Option<u64>,
    #[arg(long)]
    pub cpu_burst: Option<u64>,
    #[arg(long)]
    pub cpu_idle: Option<i64>,
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    pub id: String,
}

/// "512m", "1G", "1048576", "-1": runc's memory sizes (binary units).
pub fn parse_size(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size {s:?}"))?;
    if n < 0.0 {
        bail!("invalid size {s:?}");
    }
    Ok((n * mult as f64) as i64)
}

const MAX_INTERVAL_SECS: f64 = i32::MAX as f64;

/// "5s", "250ms", "1m", "2h": Go-style durations for --interval.
pub fn parse_duration(s: &str) -> Result<std::time::Duration> {
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| s.split_at(i))
        .context("--interval needs a unit (ms, s, m, h)")?;
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("--interval {s:?}: invalid duration"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("--interval {s:?}: invalid duration"),
    };
    if secs.is_nan() || secs <= 0.0 {
        bail!("--interval {s:?}: invalid duration");
    }
    // Beyond any use, and the clock arithmetic on it would overflow.
    if secs > MAX_INTERVAL_SECS {
        bail!("--interval {s:?} is too long (at most {MAX_INTERVAL_SECS}s)");
    }
    std::time::Duration::try_from_secs_f64(secs)
        .map_err(|_| anyhow::anyhow!("--interval {s:?}: invalid duration"))
}

#[derive(Subcommand)]
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

/// Runs the parsed command; returns the process exit status.
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
        Cmd::Spec { bundle, rootless } => {
            write_spec(&bundle, rootless)?;
        }
        Cmd::Create(a) => {
            needs_features("create")?;
            container::create(root, &a.id, &create_opts(&a, cli.systemd_cgroup)?, true)?;
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
                    systemd_cgroup: cli.systemd_cgroup,
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

fn write_spec(bundle: &Path, rootless: bool) -> Result<()> {
    let path = bundle.join("config.json");
    let text = serde_json::to_string_pretty(&crate::spec::template(rootless))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                anyhow::anyhow!("File {} exists. Remove it first", path.display())
            }
            _ => anyhow::anyhow!("{}: {}", path.display(), crate::sys::errno_str(&e)),
        })?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .with_context(|| format!("write {}", path.display()))
}

/// `9`, `KILL`, `SIGKILL`, `sigkill`: what runc accepts. `0` sends nothing and only checks
/// that the container is still running, as kill(2) and runc do.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (0..=libc::SIGRTMAX()).contains(&n) {
            return Ok(n);
        }
        bail!("invalid signal {s:?}");
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" | "CLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => {
            if let Some(off) = name
                .strip_prefix("RTMIN+")
                .and_then(|n| n.parse::<i32>().ok())
            {
                libc::SIGRTMIN() + off
            } else if let Some(off) = name
                .strip_prefix("RTMAX-")
                .and_then(|n| n.parse::<i32>().ok())
            {
                libc::SIGRTMAX() - off
            } else {
                bail!("unknown signal {s:?}");
            }
        }
    };
    Ok(n)
}

fn print_list(root: &Path, format: Format, quiet: bool) -> Result<()> {
    let items = container::list(root)?;
    let mut out = std::io::stdout().lock();
    if quiet {
        for v in &items {
            writeln!(out, "{}", v["id"].as_str().unwrap_or(""))?;
        }
        return Ok(());
    }
    if format == Format::Json {
        // runc prints a nil list as `null`; callers parse either.
        if items.is_empty() {
            writeln!(out, "null")?;
        } else {
            writeln!(out, "{}", serde_json::to_string(&items)?)?;
        }
        return Ok(());
    }
    let mut rows = vec![vec![
        "ID".to_string(),
        "PID".into(),
        "STATUS".into(),
        "BUNDLE".into(),
        "CREATED".into(),
        "OWNER".into(),
    ]];
    for v in &items {
        rows.push(vec![
            v["id"].as_str().unwrap_or("").to_string(),
            v["pid"].to_string(),
            v["status"].as_str().unwrap_or("").to_string(),
            v["bundle"].as_str().unwrap_or("").to_string(),
            v["created"].as_str().unwrap_or("").to_string(),
            v["owner"].as_str().unwrap_or("").to_string(),
        ]);
    }
    write!(out, "{}", table(&rows))?;
    Ok(())
}

/// Columns padded like runc's Go tabwriter: minimum width 12, padding 3.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut s = String::new();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}", w = (widths[i] + 3).max(12)));
            }
        }
        s.push('\n');
    }
    s
}

fn print_ps(root: &Path, id: &str, format: Format, ps_args: &[String]) -> Result<()> {
    let pids = container::pids(root, id)?;
    if format == Format::Json {
        // runc's Go encoder prints no processes (a stopped container) as `null`.
        if pids.is_empty() {
            println!("null");
        } else {
            println!("{}", serde_json::to_string(&pids)?);
        }
        return Ok(());
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let pid_col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps output has no PID column")?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{header}")?;
    for l in lines {
        let pid = l
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            writeln!(stdout, "{l}")?;
        }
    }
    Ok(())
}
