//! The command lines containerd, conmon and Podman send on every container's hot path
//! (`create`, `start`, `state`, `kill`, `delete`, `run`, `exec`, with the flags they pass),
//! recognised without clap. clap stays the definition of the command line: it parses every
//! other line, and prints help and errors. Building its parser for one subcommand and running
//! it was 0.43 M instructions of the 0.81 M rt's side runs before it clones the init, and
//! 0.05 ms of every `rt run` here (A/B of 400 runs each).
//!
//! The rule that keeps the two in agreement: this parser answers only when it is sure of
//! clap's answer, and gives up (None, so clap parses) on anything else: an option it doesn't
//! know, a repeated option, `--`, `=` forms of short options, combined short flags, an empty
//! or non-UTF-8 argument, a value that clap would have to convert and might refuse. The test
//! below compares both on every form it accepts and on forms it must leave to clap.

use std::ffi::OsString;
use std::path::PathBuf;

use super::{Cli, Cmd, CreateArgs, ExecArgs, LogFormat};

/// The parsed command line, or None: clap's to parse.
pub fn parse(argv: &[OsString]) -> Option<Cli> {
    let args: Vec<&str> = argv
        .iter()
        .skip(1)
        .map(|a| a.to_str().filter(|s| !s.is_empty()))
        .collect::<Option<_>>()?;
    let mut a = Args {
        rest: &args,
        seen: Vec::new(),
    };
    let mut cli = Cli {
        root: None,
        log: None,
        log_format: LogFormat::Text,
        debug: false,
        systemd_cgroup: false,
        rootless: None,
        version: false,
        cmd: None,
    };
    let sub = loop {
        let (name, value) = a.option()?;
        match name {
            "--root" => cli.root = Some(PathBuf::from(a.value(name, value)?)),
            "--log" => cli.log = Some(PathBuf::from(a.value(name, value)?)),
            "--log-format" => {
                cli.log_format = match a.value(name, value)? {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    _ => return None,
                }
            }
            "--debug" => cli.debug = a.flag(name, value)?,
            "--systemd-cgroup" => cli.systemd_cgroup = a.flag(name, value)?,
            _ if name.starts_with('-') => return None,
            sub => break sub,
        }
    };
    a.seen.clear();
    cli.cmd = Some(match sub {
        "start" | "state" => {
            let id = a.last_id()?;
            if sub == "start" {
                Cmd::Start { id }
            } else {
                Cmd::State { id }
            }
        }
        "delete" => {
            let (force, id) = a.flag_then_id("-f", "--force")?;
            a.end()?;
            Cmd::Delete { force, id }
        }
        "kill" => {
            let (all, id) = a.flag_then_id("-a", "--all")?;
            let signal = match a.rest {
                [] => "SIGTERM".to_string(),
                [s] if !s.starts_with('-') => s.to_string(),
                _ => return None,
            };
            Cmd::Kill { all, id, signal }
        }
        "create" => Cmd::Create(create_args(&mut a, |_, _, _| None)?),
        "run" => {
            let (mut detach, mut keep, mut no_subreaper) = (false, false, false);
            let create = create_args(&mut a, |a, n, v| {
                let slot = match n {
                    "-d" | "--detach" => &mut detach,
                    "--keep" => &mut keep,
                    "--no-subreaper" => &mut no_subreaper,
                    _ => return None,
                };
                *slot = a.flag(n, v)?;
                Some(())
            })?;
            Cmd::Run {
                create,
                detach,
                keep,
                no_subreaper,
            }
        }
        "exec" => Cmd::Exec(Box::new(exec_args(&mut a)?)),
        _ => return None,
    });
    Some(cli)
}

/// What is left of the command line, and the options seen in the current group (clap refuses
/// one given twice).
struct Args<'a> {
    rest: &'a [&'a str],
    seen: Vec<&'a str>,
}

impl<'a> Args<'a> {
    /// The next argument, split at `=` when it is a long option: (name, inline value).
    fn option(&mut self) -> Option<(&'a str, Option<&'a str>)> {
        let (first, rest) = self.rest.split_first()?;
        self.rest = rest;
        if *first == "--" {
            return None;
        }
        Some(match first.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v)),
            _ => (*first, None),
        })
    }

    /// Marks an option as given; None if it was already.
    fn once(&mut self, name: &'a str) -> Option<()> {
        let long = match name {
            "-b" => "--bundle",
            "-d" => "--detach",
            "-f" => "--force",
            "-a" => "--all",
            "-p" => "--process",
            "-t" => "--tty",
            n => n,
        };
        if self.seen.contains(&long) {
            return None;
        }
        self.seen.push(long);
        Some(())
    }

    /// A flag: no value of its own.
    fn flag(&mut self, name: &'a str, inline: Option<&str>) -> Option<bool> {
        self.once(name)?;
        inline.is_none().then_some(true)
    }

    /// An option's value, inline (`--root=DIR`) or the next argument; one that looks like an
    /// option is clap's to judge.
    fn value(&mut self, name: &'a str, inline: Option<&'a str>) -> Option<&'a str> {
        self.once(name)?;
        let v = match inline {
            Some(v) => v,
            None => {
                let (v, rest) = self.rest.split_first()?;
                self.rest = rest;
                v
            }
        };
        (!v.is_empty() && !v.starts_with('-')).then_some(v)
    }

    /// One optional flag (short or long), then the id.
    fn flag_then_id(&mut self, short: &str, long: &str) -> Option<(bool, String)> {
        let mut set = false;
        loop {
            match self.option()? {
                (n, v) if n == short || n == long => set = self.flag(n, v)?,
                (id, None) if !id.starts_with('-') => return Some((set, id.to_string())),
                _ => return None,
            }
        }
    }

    /// The id as the one argument left.
    fn last_id(&mut self) -> Option<String> {
        match self.rest {
            [id] if !id.starts_with('-') => Some(id.to_string()),
            _ => None,
        }
    }

    fn end(&self) -> Option<()> {
        self.rest.is_empty().then_some(())
    }
}

/// create's options (run's too, whose own flags `more` takes), then the id, last.
fn create_args<'a>(
    a: &mut Args<'a>,
    mut more: impl FnMut(&mut Args<'a>, &'a str, Option<&'a str>) -> Option<()>,
) -> Option<CreateArgs> {
    let mut c = CreateArgs {
        bundle: PathBuf::from("."),
        console_socket: None,
        pid_file: None,
        no_pivot: false,
        no_new_keyring: false,
        preserve_fds: 0,
        pidfd_socket: None,
        id: String::new(),
    };
    loop {
        let (n, v) = a.option()?;
        match n {
            "-b" | "--bundle" => c.bundle = PathBuf::from(a.value(n, v)?),
            "--console-socket" => c.console_socket = Some(PathBuf::from(a.value(n, v)?)),
            "--pid-file" => c.pid_file = Some(PathBuf::from(a.value(n, v)?)),
            "--pidfd-socket" => c.pidfd_socket = Some(PathBuf::from(a.value(n, v)?)),
            "--no-pivot" => c.no_pivot = a.flag(n, v)?,
            "--no-new-keyring" => c.no_new_keyring = a.flag(n, v)?,
            "--preserve-fds" => c.preserve_fds = number(a.value(n, v)?)?,
            _ if n.starts_with('-') => more(a, n, v)?,
            id if v.is_none() => {
                c.id = id.to_string();
                a.end()?;
                return Some(c);
            }
            _ => return None,
        }
    }
}

/// exec's options as the shims pass them, the id, then the command, taken as it is (clap's
/// trailing arguments) once its first word is not an option.
fn exec_args(a: &mut Args<'_>) -> Option<ExecArgs> {
    let mut e = ExecArgs {
        process: None,
        tty: false,
        console_socket: None,
        detach: false,
        pid_file: None,
        cwd: None,
        env: Vec::new(),
        user: None,
        additional_gids: Vec::new(),
        cap: Vec::new(),
        no_new_privs: false,
        preserve_fds: 0,
        apparmor: None,
        process_label: None,
        pidfd_socket: None,
        cgroup: None,
        ignore_paused: false,
        id: String::new(),
        command: Vec::new(),
    };
    loop {
        let (n, v) = a.option()?;
        match n {
            "-p" | "--process" => e.process = Some(PathBuf::from(a.value(n, v)?)),
            "-t" | "--tty" => e.tty = a.flag(n, v)?,
            "-d" | "--detach" => e.detach = a.flag(n, v)?,
            "--console-socket" => e.console_socket = Some(PathBuf::from(a.value(n, v)?)),
            "--pid-file" => e.pid_file = Some(PathBuf::from(a.value(n, v)?)),
            "--pidfd-socket" => e.pidfd_socket = Some(PathBuf::from(a.value(n, v)?)),
            "--preserve-fds" => e.preserve_fds = number(a.value(n, v)?)?,
            _ if n.starts_with('-') => return None,
            id if v.is_none() => {
                e.id = id.to_string();
                break;
            }
            _ => return None,
        }
    }
    if a.rest.first().is_some_and(|w| w.starts_with('-')) {
        return None;
    }
    e.command = a.rest.iter().map(|s| s.to_string()).collect();
    Some(e)
}

/// A u32 written plainly: digits only, so that clap would take it the same.
fn number(v: &str) -> Option<u32> {
    if v.bytes().all(|b| b.is_ascii_digit()) {
        v.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    fn argv(line: &[&str]) -> Vec<OsString> {
        std::iter::once("rt")
            .chain(line.iter().copied())
            .map(OsString::from)
            .collect()
    }

    fn clap(a: &[OsString]) -> Option<String> {
        let m = Cli::command().try_get_matches_from(a).ok()?;
        Cli::from_arg_matches(&m).ok().map(|c| format!("{c:?}"))
    }

    /// Lines the fast path must take, each giving exactly what clap gives.
    #[test]
    fn the_shims_lines_parse_as_clap_parses_them() {
        let lines: &[&[&str]] = &[
            &["--root", "/run/r", "run", "-b", "/b", "c1"],
            &["--root=/run/r", "run", "--bundle=/b", "c1"],
            &["run", "c1"],
            &[
                "run",
                "-d",
                "--keep",
                "--no-subreaper",
                "--bundle",
                "/b",
                "c1",
            ],
            &[
                "--root",
                "/r",
                "--log",
                "/l.json",
                "--log-format",
                "json",
                "--systemd-cgroup",
                "create",
                "--bundle",
                "/b",
                "--pid-file",
                "/p",
                "--console-socket",
                "/s",
                "--no-pivot",
                "--no-new-keyring",
                "--preserve-fds",
                "3",
                "--pidfd-socket",
                "/ps",
                "c1",
            ],
            &[
                "--debug",
                "--log-format=text",
                "create",
                "--preserve-fds=0",
                "c1",
            ],
            &["--root", "/r", "start", "c1"],
            &["state", "c1"],
            &["delete", "c1"],
            &["delete", "-f", "c1"],
            &["delete", "--force", "c1"],
            &["kill", "c1"],
            &["kill", "c1", "9"],
            &["kill", "--all", "c1", "SIGKILL"],
            &["kill", "-a", "c1", "KILL"],
            &["exec", "c1", "/bin/true"],
            &["exec", "c1"],
            &[
                "exec",
                "--process",
                "/p.json",
                "--detach",
                "--pid-file",
                "/pid",
                "c1",
            ],
            &[
                "exec",
                "-t",
                "-d",
                "--console-socket",
                "/s",
                "-p",
                "/p.json",
                "c1",
            ],
            &[
                "exec",
                "--preserve-fds",
                "2",
                "--pidfd-socket",
                "/s",
                "c1",
                "sh",
                "-c",
                "echo --x; exit 3",
            ],
            &["exec", "c1", "ls", "--", "-l"],
            &["state", "run"],
            &["state", "a=b"],
            &["--root", "/r", "delete", "-f", "kill"],
            &["run", "-b", "/b", "create"],
        ];
        for l in lines {
            let a = argv(l);
            let fast = parse(&a).map(|c| format!("{c:?}"));
            assert!(fast.is_some(), "the fast path gave up on {l:?}");
            assert_eq!(fast, clap(&a), "{l:?}");
        }
    }

    /// Lines it must leave to clap (which parses some of them, refuses others).
    #[test]
    fn anything_else_is_left_to_clap() {
        let lines: &[&[&str]] = &[
            &[],
            &["--help"],
            &["-v"],
            &["--version"],
            &["--rootless", "run", "c1"],
            &["--root", "/a", "--root", "/b", "state", "c1"],
            &["--root"],
            &["--root", "--debug", "state", "c1"],
            &["--debug=true", "state", "c1"],
            &["--log-format", "xml", "state", "c1"],
            &["state"],
            &["state", "c1", "c2"],
            &["state", "--", "c1"],
            &["state", "-x"],
            &["state", ""],
            &["run", "-b", "/a", "-b", "/b", "c1"],
            &["run", "-b=/b", "c1"],
            &["run", "-bd", "c1"],
            &["run", "--bundle", "/b"],
            &["run", "c1", "--keep"],
            &["run", "--preserve-fds", "+3", "c1"],
            &["run", "--preserve-fds", "99999999999", "c1"],
            &["run", "--keep=yes", "c1"],
            &["create", "--detach", "c1"],
            &["delete", "-f", "-f", "c1"],
            &["delete", "-ff", "c1"],
            &["kill", "c1", "-9"],
            &["kill", "c1", "TERM", "extra"],
            &["exec", "c1", "-x"],
            &["exec", "--env", "A=1", "c1", "true"],
            &["exec", "--user", "1000", "c1", "id"],
            &["list"],
            &["ps", "c1"],
            &["features"],
            &["update", "--memory", "1M", "c1"],
        ];
        for l in lines {
            assert!(parse(&argv(l)).is_none(), "the fast path took {l:?}");
        }
        // And a line that is not UTF-8.
        use std::os::unix::ffi::OsStringExt;
        let mut a = argv(&["state"]);
        a.push(OsString::from_vec(vec![b'c', 0xff]));
        assert!(parse(&a).is_none());
    }
}
