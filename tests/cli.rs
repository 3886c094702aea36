//! Command-line surface: --version, spec, list, ps, global flags, logging.
mod common;
use common::*;
use serde_json::Value;
use std::fs;
use std::process::Command;

#[test]
fn version_format() {
    let o = run_cmd(Command::new(rt_bin()).arg("--version"));
    o.ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    let first = lines.first().copied().unwrap_or("");
    let ver = first
        .strip_prefix("rt version ")
        .unwrap_or_else(|| panic!("first line must be `rt version X`: {:?}", o.stdout));
    assert!(!ver.trim().is_empty(), "empty version: {first:?}");
    let spec = lines
        .iter()
        .find_map(|l| l.strip_prefix("spec: "))
        .unwrap_or_else(|| panic!("no `spec: 1.x.y` line: {:?}", o.stdout));
    let parts: Vec<&str> = spec.trim().split('.').collect();
    assert!(
        parts.len() >= 3 && parts[0] == "1",
        "bad spec version {spec:?}"
    );
    assert!(
        parts[1].parse::<u32>().is_ok()
            && parts[2].chars().next().is_some_and(|c| c.is_ascii_digit()),
        "bad spec version {spec:?}"
    );
}

#[test]
fn spec_writes_config_and_refuses_to_overwrite() {
    let rt = Rt::new();
    let b = Bundle::new(&["true"]);
    let cfg = b.config_path();
    assert!(!cfg.exists());
    rt.cmd(&["spec", "--bundle", b.path()]).ok();
    let text = fs::read_to_string(&cfg).expect("spec did not write config.json");
    let v: Value = serde_json::from_str(&text).expect("spec output is not valid JSON");
    assert!(
        v["ociVersion"]
            .as_str()
            .is_some_and(|s| s.starts_with("1.")),
        "{v}"
    );
    assert!(
        v["process"]["args"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{v}"
    );
    assert_eq!(v["root"]["path"], "rootfs");
    let ns: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .expect("linux.namespaces")
        .iter()
        .filter_map(|n| n["type"].as_str())
        .collect();
    for t in ["pid", "mount"] {
        assert!(ns.contains(&t), "default spec lacks {t} namespace: {ns:?}");
    }

    // second time: refuse, keep the file as it is
    fs::write(&cfg, "{\"sentinel\": true}").unwrap();
    rt.cmd(&["spec", "--bundle", b.path()]).fails();
    assert_eq!(fs::read_to_string(&cfg).unwrap(), "{\"sentinel\": true}");
}

#[test]
fn spec_defaults_to_current_directory() {
    let rt = Rt::new();
    let b = Bundle::new(&["true"]);
    let mut c = rt.command(&["spec"]);
    c.current_dir(&b.dir);
    run_cmd(&mut c).ok();
    let v: Value = serde_json::from_str(&fs::read_to_string(b.config_path()).unwrap()).unwrap();
    assert!(v["process"].is_object());
}

#[test]
fn spec_rootless() {
    let rt = Rt::new();
    let b = Bundle::new(&["true"]);
    rt.cmd(&["spec", "--rootless", "--bundle", b.path()]).ok();
    let v: Value =
        serde_json::from_str(&fs::read_to_string(b.config_path()).unwrap()).expect("valid JSON");
    let ns: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["type"].as_str())
        .collect();
    assert!(
        ns.contains(&"user"),
        "rootless spec needs a user namespace: {ns:?}"
    );
    let uid = unsafe { libc::geteuid() } as u64;
    let gid = unsafe { libc::getegid() } as u64;
    let um = v["linux"]["uidMappings"].as_array().expect("uidMappings");
    let gm = v["linux"]["gidMappings"].as_array().expect("gidMappings");
    assert!(
        um.iter()
            .any(|m| m["hostID"].as_u64() == Some(uid) && m["containerID"] == 0),
        "{um:?}"
    );
    assert!(
        gm.iter()
            .any(|m| m["hostID"].as_u64() == Some(gid) && m["containerID"] == 0),
        "{gm:?}"
    );
}

#[test]
fn global_flags_both_syntaxes() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    b.save();
    rt.track_cgroup(&b.cgroup);
    let id = rt.new_id();
    let root_eq = format!("--root={}", rt.root_str());
    let bundle_eq = format!("--bundle={}", b.path());
    rt.cmd_raw(&[&root_eq, "--debug", "create", &bundle_eq, &id])
        .ok();
    let o = rt.cmd_raw(&["--root", rt.root_str(), "state", &id]);
    o.ok();
    let st: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(st["status"], "created");
    assert!(
        rt.state_dir(&id).exists(),
        "--root=DIR was not used as the state dir"
    );
}

fn json_log_lines(path: &std::path::Path) -> Vec<Value> {
    let text =
        fs::read_to_string(path).unwrap_or_else(|e| panic!("log file {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l:?}"));
            for k in ["level", "msg", "time"] {
                assert!(v[k].is_string(), "log line lacks string {k:?}: {l}");
            }
            v
        })
        .collect()
}

#[test]
fn log_format_json_records_the_error() {
    let rt = Rt::new();
    let dir = Bundle::new(&["true"]);
    let log = dir.dir.join("rt.log");
    let id = unique("missing");
    let o = rt.cmd_raw(&[
        "--root",
        rt.root_str(),
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        &id,
    ]);
    assert_eq!(o.code, 1, "{o:?}");
    let lines = json_log_lines(&log);
    let last_err = lines
        .iter()
        .rfind(|v| v["level"] == "error")
        .unwrap_or_else(|| panic!("no error-level line in {lines:?}"));
    assert!(
        last_err["msg"]
            .as_str()
            .unwrap()
            .contains(&format!("container \"{id}\" does not exist")),
        "last error line: {last_err}"
    );
    assert!(
        is_rfc3339(last_err["time"].as_str().unwrap()),
        "time: {last_err}"
    );
}

#[test]
fn log_format_json_equals_syntax_with_debug_lifecycle() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    b.save();
    rt.track_cgroup(&b.cgroup);
    let log = b.dir.join("rt.log");
    let id = rt.new_id();
    let logf = format!("--log={}", log.display());
    rt.cmd_raw(&[
        "--root",
        rt.root_str(),
        &logf,
        "--log-format=json",
        "--debug",
        "create",
        "--bundle",
        b.path(),
        &id,
    ])
    .ok();
    rt.cmd_raw(&[
        "--root",
        rt.root_str(),
        &logf,
        "--log-format=json",
        "delete",
        &id,
    ])
    .ok();
    // may be empty without errors, but every line must be a JSON object
    if log.exists() {
        json_log_lines(&log);
    }
    // and now an error with the same file: appended, last error carries the message
    let o = rt.cmd_raw(&[
        "--root",
        rt.root_str(),
        &logf,
        "--log-format=json",
        "kill",
        &id,
        "KILL",
    ]);
    assert_eq!(o.code, 1);
    let lines = json_log_lines(&log);
    let last_err = lines
        .iter()
        .rfind(|v| v["level"] == "error")
        .expect("error line");
    assert!(
        last_err["msg"].as_str().unwrap().contains(&id),
        "{last_err}"
    );
}

#[test]
fn log_text_format_mentions_the_error() {
    let rt = Rt::new();
    let dir = Bundle::new(&["true"]);
    let log = dir.dir.join("rt.log");
    let id = unique("missing");
    let o = rt.cmd_raw(&[
        "--root",
        rt.root_str(),
        "--log",
        log.to_str().unwrap(),
        "state",
        &id,
    ]);
    assert_eq!(o.code, 1);
    let text = fs::read_to_string(&log).expect("log file not written");
    assert!(text.contains(&id), "log: {text:?}");
}

#[test]
fn list_table_quiet_and_json() {
    let rt = Rt::new();
    // empty root
    let o = rt.cmd(&["list", "-q"]);
    o.ok();
    assert_eq!(o.stdout.trim(), "");

    let b1 = Bundle::new(&["sleep", "1000"]);
    let b2 = Bundle::new(&["sleep", "1000"]);
    let c1 = rt.create_ok(&b1);
    let c2 = rt.start_ok(&b2);

    let o = rt.cmd(&["list"]);
    o.ok();
    let lines = o.lines();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
        "{:?}",
        o.stdout
    );
    assert_eq!(lines.len(), 3, "{:?}", o.stdout);
    for (c, b, status) in [(&c1, &b1, "created"), (&c2, &b2, "running")] {
        let row: Vec<&str> = lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(c.id.as_str()))
            .unwrap_or_else(|| panic!("no row for {}: {:?}", c.id, o.stdout))
            .split_whitespace()
            .collect();
        assert_eq!(row[1], c.pid.to_string());
        assert_eq!(row[2], status);
        assert_eq!(row[3], b.path());
        assert!(is_rfc3339(row[4]), "CREATED column: {row:?}");
        // As runc: the name of the state directory's owner (the tests run as root).
        assert_eq!(row.get(5).copied(), Some("root"), "OWNER column: {row:?}");
    }

    let o = rt.cmd(&["list", "-q"]);
    o.ok();
    let mut q = o.lines();
    q.sort();
    let mut want = vec![c1.id.clone(), c2.id.clone()];
    want.sort();
    assert_eq!(q, want);

    let o = rt.cmd(&["list", "--format", "json"]);
    o.ok();
    let v: Value = serde_json::from_str(&o.stdout).expect("list json");
    let arr = v.as_array().expect("array");
    assert_eq!(arr.len(), 2);
    for (c, b, status) in [(&c1, &b1, "created"), (&c2, &b2, "running")] {
        let e = arr
            .iter()
            .find(|e| e["id"] == c.id.as_str())
            .expect("entry");
        assert_eq!(e["pid"].as_i64(), Some(c.pid as i64));
        assert_eq!(e["status"], status);
        assert_eq!(e["bundle"], b.path());
        assert_eq!(e["owner"], "root", "{e}");
    }
}

#[test]
fn ps_json_and_table() {
    let rt = Rt::new();
    let b = Bundle::sh("sleep 1000 & wait");
    let c = rt.start_ok(&b);
    assert!(wait_for(WAIT, || cgroup_procs(&b.cgroup).len() == 2));
    let child = *cgroup_procs(&b.cgroup)
        .iter()
        .find(|p| **p != c.pid)
        .unwrap();

    let o = rt.cmd(&["ps", "--format", "json", &c.id]);
    o.ok();
    let v: Value = serde_json::from_str(&o.stdout).expect("ps json");
    let mut pids: Vec<i64> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|p| p.as_i64().unwrap())
        .collect();
    pids.sort();
    let mut want = vec![c.pid as i64, child as i64];
    want.sort();
    assert_eq!(pids, want);

    let o = rt.cmd(&["ps", &c.id]);
    o.ok();
    let lines = o.lines();
    assert!(lines[0].contains("PID"), "table header: {:?}", o.stdout);
    for p in [c.pid, child] {
        assert!(
            lines[1..]
                .iter()
                .any(|l| l.split_whitespace().any(|f| f == p.to_string())),
            "pid {p} missing from ps table: {:?}",
            o.stdout
        );
    }
}

#[test]
fn ps_passes_ps_arguments() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.start_ok(&b);
    // As runc: what follows the id goes to ps, with or without `--`.
    for args in [
        &["--", "-o", "pid,comm"][..],
        &["-o", "pid,comm"],
        &["-e", "-o", "pid,comm"],
    ] {
        let mut cmd = vec!["ps", c.id.as_str()];
        cmd.extend_from_slice(args);
        let o = rt.cmd(&cmd);
        o.ok();
        let lines = o.lines();
        assert!(
            lines[0].contains("PID") && lines[0].contains("COMMAND"),
            "{args:?}: {:?}",
            o.stdout
        );
        assert!(
            lines.iter().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.first() == Some(&c.pid.to_string().as_str()) && f.get(1) == Some(&"sleep")
            }),
            "{args:?}: {:?}",
            o.stdout
        );
        // Only the container's processes: the header and the one sleep.
        assert_eq!(lines.len(), 2, "{args:?}: {:?}", o.stdout);
    }
}

/// As runc: a stopped container has no processes; ps prints the header and nothing else
/// (JSON: null), and succeeds.
#[test]
fn ps_of_a_stopped_container_prints_only_the_header() {
    let rt = Rt::new();
    let b = Bundle::new(&["true"]);
    let c = rt.create_ok(&b);
    rt.start(&c.id).ok();
    rt.assert_status(&c.id, "stopped");
    let o = rt.cmd(&["ps", &c.id]);
    o.ok();
    let lines = o.lines();
    assert_eq!(lines.len(), 1, "{:?}", o.stdout);
    assert!(lines[0].contains("PID"), "{:?}", o.stdout);
    let o = rt.cmd(&["ps", "-f", "json", &c.id]);
    o.ok();
    assert_eq!(o.stdout.trim(), "null");
}

#[test]
fn unknown_subcommand_fails() {
    let rt = Rt::new();
    let o = rt.cmd(&["no-such-subcommand"]);
    assert_ne!(o.code, 0, "{o:?}");
}
