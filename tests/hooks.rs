//! config `hooks`: phases, order, namespaces, state on stdin, args/env/timeout, failures.
mod common;
use common::*;
use serde_json::{Value, json};
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const ALL_PHASES: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// A directory with a logging hook script and its log. The directory is bind-mounted
/// into the container at the same path, so one absolute path works for every phase
/// (startContainer runs after pivot_root, inside the container's root).
struct Hooks {
    script: PathBuf,
    log: PathBuf,
}

/// One line of the hook log.
#[derive(Debug)]
struct Entry {
    phase: String,
    /// "$0 $*"
    args: String,
    hookvar: String,
    marker: String,
    net: String,
    mnt: String,
    state: Value,
}

impl Hooks {
    fn new(b: &mut Bundle) -> Hooks {
        let dir = b.host_dir("hooks");
        let log = dir.join("log");
        fs::write(&log, "").unwrap();
        let script = dir.join("hook.sh");
        write_script(
            &script,
            &format!(
                r#"#!/bin/sh
input=$(cat)
net=$(readlink /proc/self/ns/net)
mnt=$(readlink /proc/self/ns/mnt)
printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$0 $*" "${{HOOKVAR-unset}}" "${{{MARKER_VAR}-unset}}" "$net" "$mnt" "$input" >> {log}
"#,
                log = log.display()
            ),
        );
        b.add_bind(&dir, dir.to_str().unwrap(), &["rbind", "rw"]);
        Hooks { script, log }
    }

    /// A hook entry for `phase` running the logging script.
    fn hook(&self, phase: &str) -> Value {
        json!({
            "path": self.script,
            "args": [self.script, phase, "two words"],
            "env": [format!("HOOKVAR=val-{phase}"), "PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            "timeout": 10
        })
    }

    fn entries(&self) -> Vec<Entry> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let f: Vec<&str> = l.splitn(7, '\t').collect();
                assert_eq!(f.len(), 7, "bad log line {l:?}");
                Entry {
                    phase: f[0].to_string(),
                    args: f[1].to_string(),
                    hookvar: f[2].to_string(),
                    marker: f[3].to_string(),
                    net: f[4].to_string(),
                    mnt: f[5].to_string(),
                    state: serde_json::from_str(f[6])
                        .unwrap_or_else(|e| panic!("hook stdin is not JSON ({e}): {:?}", f[6])),
                }
            })
            .collect()
    }

    fn phases(&self) -> Vec<String> {
        self.entries().into_iter().map(|e| e.phase).collect()
    }

    /// Wait until the log holds `n` entries; return the phases.
    fn wait_phases(&self, n: usize) -> Vec<String> {
        wait_for(WAIT, || self.entries().len() >= n);
        self.phases()
    }
}

/// Set `hooks.<phase>` to the given list.
fn set_hooks(b: &mut Bundle, phase: &str, list: Vec<Value>) {
    if !b.config["hooks"].is_object() {
        b.config["hooks"] = json!({});
    }
    b.config["hooks"][phase] = Value::Array(list);
}

fn bundle_with_all_hooks(args: &[&str]) -> (Bundle, Hooks) {
    let mut b = Bundle::new(args);
    let h = Hooks::new(&mut b);
    for p in ALL_PHASES {
        let hook = h.hook(p);
        set_hooks(&mut b, p, vec![hook]);
    }
    b.config["annotations"] = json!({ "org.test.hooks": "annotated" });
    (b, h)
}

/// A hook that fails (exit 1) with a message on stderr.
fn failing_hook(b: &Bundle, phase: &str) -> Value {
    let p = b.dir.join(format!("fail-{phase}.sh"));
    write_script(&p, &format!("#!/bin/sh\necho boom-{phase} >&2\nexit 1\n"));
    json!({ "path": p, "args": [p] })
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn phases_order_namespaces_and_state_over_create_start_delete() {
    let rt = Rt::new();
    let (b, h) = bundle_with_all_hooks(&["sleep", "1000"]);
    let c = rt.create_ok(&b);
    assert_eq!(
        h.phases(),
        strs(&["prestart", "createRuntime", "createContainer"]),
        "hooks run by create"
    );
    let init_net = ns_link(c.pid, "net");
    let init_mnt = ns_link(c.pid, "mnt");
    assert_ne!(init_net, host_ns("net"));
    assert_ne!(init_mnt, host_ns("mnt"));

    rt.start(&c.id).ok();
    assert!(wait_exec(c.pid, &["sleep", "1000"]));
    assert_eq!(
        h.wait_phases(5),
        strs(&[
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart"
        ]),
        "hooks run by create + start"
    );
    rt.kill(&c.id, "KILL").ok();
    rt.assert_status(&c.id, "stopped");
    rt.delete(&c.id).ok();
    assert_eq!(
        h.wait_phases(6),
        strs(ALL_PHASES),
        "hooks run by create + start + delete"
    );

    for e in h.entries() {
        let p = e.phase.as_str();
        // args (args[0] is argv0, lost through the #! interpreter; the rest pass)
        assert_eq!(
            e.args,
            format!("{} {p} two words", h.script.display()),
            "{p}: args"
        );
        // env is exactly the hook's env: HOOKVAR set, rt's own environment not passed
        assert_eq!(e.hookvar, format!("val-{p}"), "{p}: env");
        assert_eq!(
            e.marker, "unset",
            "{p}: rt's environment leaked into the hook"
        );
        // namespaces
        let (net, mnt, where_) = match p {
            "createContainer" | "startContainer" => (&init_net, &init_mnt, "container"),
            _ => (&host_ns("net"), &host_ns("mnt"), "host"),
        };
        assert_eq!(
            &e.net, net,
            "{p} should run in the {where_}'s net namespace"
        );
        assert_eq!(
            &e.mnt, mnt,
            "{p} should run in the {where_}'s mount namespace"
        );
        // state on stdin
        let s = &e.state;
        assert!(s["ociVersion"].is_string(), "{p}: state {s}");
        assert_eq!(s["id"], json!(c.id), "{p}: state.id");
        assert_eq!(s["bundle"], json!(b.path()), "{p}: state.bundle");
        assert!(s["status"].is_string(), "{p}: state {s}");
        assert_eq!(
            s["annotations"]["org.test.hooks"],
            json!("annotated"),
            "{p}: state.annotations {s}"
        );
        if matches!(p, "prestart" | "createRuntime" | "poststart") {
            assert_eq!(
                s["pid"],
                json!(c.pid),
                "{p}: state.pid is the init's host pid"
            );
        }
        match p {
            "poststart" => assert_eq!(s["status"], json!("running"), "{p}: {s}"),
            "poststop" => assert_eq!(s["status"], json!("stopped"), "{p}: {s}"),
            "prestart" | "createRuntime" | "createContainer" => assert!(
                s["status"] == json!("creating") || s["status"] == json!("created"),
                "{p}: {s}"
            ),
            _ => {}
        }
    }
}

#[test]
fn run_runs_the_whole_sequence_including_poststop() {
    let rt = Rt::new();
    let (b, h) = bundle_with_all_hooks(&["sh", "-c", "echo from-container; exit 3"]);
    let id = rt.new_id();
    let o = rt.run(&b, &id, &[]);
    o.code_is(3);
    assert_eq!(o.stdout, "from-container\n");
    assert_eq!(h.wait_phases(6), strs(ALL_PHASES));
    let entries = h.entries();
    assert_eq!(entries[5].state["status"], json!("stopped"));
    assert_eq!(entries[5].state["id"], json!(id));
    assert!(!rt.state_dir(&id).exists());
}

/// args[0] is the hook's argv[0]; env is exactly the hook's env.
#[test]
fn hook_argv0_and_exact_env() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["true"]);
    let dir = b.host_dir("argv");
    let log = dir.join("log");
    let script = dir.join("argv.sh");
    write_script(
        &script,
        &format!(
            "#!/bin/sh\ncat >/dev/null\n{{ tr '\\0' ' ' </proc/$$/cmdline; printf '|'; tr '\\0' ' ' </proc/$$/environ; echo; }} >> {}\n",
            log.display()
        ),
    );
    for p in ["prestart", "createRuntime", "poststart", "poststop"] {
        set_hooks(
            &mut b,
            p,
            vec![json!({
                "path": "/bin/sh",
                "args": [format!("argv0-{p}"), script, p, "a b"],
                "env": [format!("ONLY={p}"), "SECOND=x y"]
            })],
        );
    }
    let id = rt.new_id();
    rt.run(&b, &id, &[]).ok();
    wait_for(WAIT, || {
        fs::read_to_string(&log).unwrap_or_default().lines().count() >= 4
    });
    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    for (line, p) in lines
        .iter()
        .zip(["prestart", "createRuntime", "poststart", "poststop"])
    {
        assert_eq!(
            *line,
            format!(
                "argv0-{p} {} {p} a b |ONLY={p} SECOND=x y ",
                script.display()
            ),
            "{p}: argv|environ"
        );
    }
}

fn assert_create_fails_naming(phase: &str) {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    let hook = failing_hook(&b, phase);
    set_hooks(&mut b, phase, vec![hook]);
    let id = rt.new_id();
    let o = rt.create(&b, &id, &[]);
    o.fails_with(&[phase]);
    rt.assert_no_leftovers(&id, &b, &[]);
    rt.cmd(&["state", &id]).fails_with(&["does not exist"]);
}

#[test]
fn failing_prestart_fails_create_and_leaves_nothing() {
    assert_create_fails_naming("prestart");
}

#[test]
fn failing_create_runtime_fails_create_and_leaves_nothing() {
    assert_create_fails_naming("createRuntime");
}

#[test]
fn failing_create_container_fails_create_and_leaves_nothing() {
    assert_create_fails_naming("createContainer");
}

#[test]
fn failing_hook_stops_the_phase_before_later_hooks() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    let h = Hooks::new(&mut b);
    let fail = failing_hook(&b, "createRuntime");
    let after = h.hook("after-failure");
    set_hooks(&mut b, "createRuntime", vec![fail, after]);
    let later = h.hook("createContainer");
    set_hooks(&mut b, "createContainer", vec![later]);
    let id = rt.new_id();
    rt.create(&b, &id, &[]).fails_with(&["createRuntime"]);
    assert!(
        h.phases().is_empty(),
        "hooks ran after a failure: {:?}",
        h.phases()
    );
    rt.assert_no_leftovers(&id, &b, &[]);
}

#[test]
fn failing_start_container_fails_start_and_the_program_never_runs() {
    let rt = Rt::new();
    // the program would leave a mark in a host dir
    let mut b = Bundle::sh("touch /tmp/mark/program-ran; sleep 1000");
    let mark = b.host_dir("mark");
    b.add_bind(&mark, "/tmp/mark", &["rbind", "rw"]);
    // runs inside the container's root: the path must exist there
    set_hooks(
        &mut b,
        "startContainer",
        vec![json!({ "path": "/bin/sh", "args": ["sh", "-c", "echo boom >&2; exit 1"] })],
    );
    let c = rt.create_ok(&b);
    rt.start(&c.id).fails_with(&["startContainer"]);
    rt.assert_status(&c.id, "stopped");
    assert!(
        !pid_alive(c.pid),
        "init still alive after a failed startContainer"
    );
    assert!(
        !mark.join("program-ran").exists(),
        "the container's program ran although startContainer failed"
    );
    rt.delete(&c.id).ok();
    rt.assert_no_leftovers(&c.id, &b, &[]);
}

/// As runc: a startContainer hook without `env` gets the container process's environment
/// (HOME included), not rt's; a createRuntime hook without one keeps rt's.
#[test]
fn start_container_hook_without_env_gets_the_process_env() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["true"]);
    let out = b.host_dir("out");
    b.add_bind(&out, "/out", &["rbind", "rw"]);
    b.add_env("FROM_PROCESS=yes");
    set_hooks(
        &mut b,
        "startContainer",
        vec![json!({"path": "/bin/sh", "args": ["sh", "-c", "env > /out/start"]})],
    );
    set_hooks(
        &mut b,
        "createRuntime",
        vec![json!({"path": "/bin/sh", "args": ["sh", "-c",
            format!("env > {}/runtime", out.display())]})],
    );
    rt.run_new(&b).ok();
    let start = fs::read_to_string(out.join("start")).unwrap();
    for want in ["FROM_PROCESS=yes", "HOME=/root", "TERM=xterm"] {
        assert!(start.lines().any(|l| l == want), "{want} in {start:?}");
    }
    assert!(
        !start.contains(MARKER_VAR),
        "rt's environment reached the hook: {start:?}"
    );
    let runtime = fs::read_to_string(out.join("runtime")).unwrap();
    assert!(runtime.contains(MARKER_VAR), "{runtime:?}");
    assert!(!runtime.contains("FROM_PROCESS"), "{runtime:?}");
}

#[test]
fn failing_poststart_does_not_fail_start() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    let hook = failing_hook(&b, "poststart");
    set_hooks(&mut b, "poststart", vec![hook]);
    let c = rt.create_ok(&b);
    rt.start(&c.id).ok();
    assert!(wait_exec(c.pid, &["sleep", "1000"]));
    assert_eq!(rt.status(&c.id).as_deref(), Some("running"));
}

#[test]
fn failing_poststop_does_not_fail_delete() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    let hook = failing_hook(&b, "poststop");
    set_hooks(&mut b, "poststop", vec![hook]);
    let c = rt.start_ok(&b);
    rt.kill(&c.id, "KILL").ok();
    rt.assert_status(&c.id, "stopped");
    rt.delete(&c.id).ok();
    rt.assert_no_leftovers(&c.id, &b, &[]);
}

#[test]
fn hook_timeout_kills_the_hook_and_fails_create() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    set_hooks(
        &mut b,
        "createRuntime",
        vec![json!({ "path": "/bin/sleep", "args": ["sleep", "5"], "timeout": 1 })],
    );
    let id = rt.new_id();
    let t0 = Instant::now();
    let o = rt.create(&b, &id, &[]);
    let took = t0.elapsed();
    o.fails_with(&["createRuntime"]);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "create with a 1 s hook timeout took {took:?}"
    );
    rt.assert_no_leftovers(&id, &b, &[]);
}

#[test]
fn relative_hook_path_is_refused_at_create() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    set_hooks(&mut b, "prestart", vec![json!({ "path": "hook.sh" })]);
    let id = rt.new_id();
    rt.create(&b, &id, &[])
        .fails_with(&["hooks.prestart[0].path"]);
    rt.assert_no_leftovers(&id, &b, &[]);

    let mut b = Bundle::new(&["sleep", "1000"]);
    set_hooks(
        &mut b,
        "poststop",
        vec![
            json!({ "path": "/bin/true" }),
            json!({ "path": "bin/true" }),
        ],
    );
    let id = rt.new_id();
    rt.create(&b, &id, &[])
        .fails_with(&["hooks.poststop[1].path"]);
    rt.assert_no_leftovers(&id, &b, &[]);
}

/// A hook that never reads its stdin, with a state larger than a pipe holds (big
/// annotations): the timeout still ends it, and create fails instead of hanging.
#[test]
fn timeout_holds_with_a_large_state_and_a_hook_that_does_not_read_it() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.config["annotations"] = json!({"big": "x".repeat(200_000)});
    set_hooks(
        &mut b,
        "createRuntime",
        vec![json!({"path": "/bin/sleep", "args": ["sleep", "5"], "timeout": 1})],
    );
    let id = rt.new_id();
    let t = std::time::Instant::now();
    rt.create(&b, &id, &[]).fails_with(&["createRuntime"]);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(4),
        "{:?}",
        t.elapsed()
    );
    rt.assert_no_leftovers(&id, &b, &[]);
}
