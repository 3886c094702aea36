//! Bad input must fail with exit 1, one line naming the file/field/value, and leave
//! nothing behind (state dir, cgroup, process, mount).
mod common;
use common::*;
use serde_json::json;

/// create must fail mentioning every needle, then nothing may be left.
#[track_caller]
fn create_fails_cleanly(rt: &Rt, b: &Bundle, needles: &[&str]) {
    let id = rt.new_id();
    rt.create(b, &id, &[]).fails_with(needles);
    rt.assert_no_leftovers(&id, b, &[]);
    rt.cmd(&["state", &id]).fails_with(&["does not exist"]);
}

#[test]
fn missing_config_json() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["true"]);
    b.remove_config();
    create_fails_cleanly(&rt, &b, &["config.json"]);
}

#[test]
fn missing_bundle_dir() {
    let rt = Rt::new();
    let b = Bundle::new(&["true"]);
    let id = rt.new_id();
    let missing = b.dir.join("does-not-exist");
    rt.cmd(&["create", "--bundle", missing.to_str().unwrap(), &id])
        .fails();
    rt.assert_no_leftovers(&id, &b, &[]);
}

#[test]
fn invalid_json() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["true"]);
    b.write_raw_config("{ \"ociVersion\": \"1.2.0\", \"process\": ");
    create_fails_cleanly(&rt, &b, &["config.json"]);
}

#[test]
fn field_of_wrong_type() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["true"]);
    b.process()["args"] = json!("not-a-list");
    let id = rt.new_id();
    let o = rt.create(&b, &id, &[]);
    o.fails_with(&["config.json"]);
    assert!(
        o.stderr.contains("args") || o.stderr.contains("not-a-list"),
        "error should name the field or the value: {o:?}"
    );
    rt.assert_no_leftovers(&id, &b, &[]);
}

#[test]
fn empty_args() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["true"]);
    b.process()["args"] = json!([]);
    create_fails_cleanly(&rt, &b, &["args"]);
}

/// runc's behaviour (issue 17): a capability rt does not know (one newer than its table) is
/// left out with a warning naming it; the known ones still apply.
#[test]
fn unknown_capabilities_are_ignored_with_a_warning() {
    let rt = Rt::new();
    let mut b = Bundle::sh("grep -E '^Cap(Bnd|Amb)' /proc/self/status");
    b.process()["capabilities"]["bounding"]
        .as_array_mut()
        .unwrap()
        .push(json!("CAP_FOO"));
    b.process()["capabilities"]["ambient"] = json!(["CAP_NOT_A_CAP"]);
    let o = rt.run_new(&b);
    o.ok();
    // CAP_KILL (5), CAP_NET_BIND_SERVICE (10) and CAP_AUDIT_WRITE (29), and nothing else.
    assert!(o.stdout.contains("CapBnd:\t0000000020000420"), "{o:?}");
    assert!(o.stdout.contains("CapAmb:\t0000000000000000"), "{o:?}");
    for name in ["CAP_FOO", "CAP_NOT_A_CAP"] {
        assert!(
            o.stderr.contains(name) && o.stderr.contains("ignored"),
            "no warning for {name}: {o:?}"
        );
    }
}

/// As runc and crun: ociVersion is not a gate. A config without one, or with a version rt
/// doesn't know, runs (a hand-written config, or one from a newer tool); an unknown major
/// version gets a warning naming it.
#[test]
fn any_oci_version_runs_and_an_unknown_major_is_warned_about() {
    let rt = Rt::new();
    for (version, warned) in [
        (None, true),
        (Some("0.1.0"), true),
        (Some("1.3.0"), false),
        (Some("1.0.2-dev"), false),
    ] {
        let mut b = Bundle::sh("echo ran");
        match version {
            Some(v) => b.config["ociVersion"] = json!(v),
            None => {
                b.config.as_object_mut().unwrap().remove("ociVersion");
            }
        }
        let o = rt.run_new(&b);
        o.ok();
        assert_eq!(o.stdout, "ran\n", "{version:?}: {o:?}");
        assert_eq!(
            o.stderr.contains("ociVersion"),
            warned,
            "{version:?}: {o:?}"
        );
    }
}

/// As runc: `hostname` and `kernel.hostname` (likewise domainname) must agree, since rt can't
/// honour both; the error names both fields.
#[test]
fn uts_sysctl_contradicting_hostname_or_domainname() {
    let rt = Rt::new();
    for (field, key) in [
        ("hostname", "kernel.hostname"),
        ("domainname", "kernel/domainname"),
    ] {
        let mut b = Bundle::new(&["true"]);
        b.config[field] = json!("from-field");
        b.linux()["sysctl"] = json!({ key: "from-sysctl" });
        create_fails_cleanly(&rt, &b, &[field, key, "from-field", "from-sysctl"]);
    }
}

#[test]
fn bad_container_ids() {
    let rt = Rt::new();
    let b = Bundle::new(&["true"]);
    let escape = unique("escaped");
    let dotdot = format!("../{escape}");
    b.save();
    rt.track_cgroup(&b.cgroup);
    for id in [dotdot.as_str(), "a/b", "..", "."] {
        // deliberately not tracked: never run `delete --force ..` on a buggy runtime
        let o = rt.cmd(&["create", "--bundle", b.path(), id]);
        o.fails_with(&[id]);
        assert!(
            !rt.root.parent().unwrap().join(&escape).exists(),
            "create of {id:?} wrote outside --root"
        );
        if id != "." && id != ".." {
            rt.assert_no_leftovers(id, &b, &[]);
        } else {
            assert!(!b.cgroup_dir().exists());
            assert!(rt.marked_procs().is_empty());
        }
    }
    // empty id
    let o = rt.cmd(&["create", "--bundle", b.path(), ""]);
    o.fails();
    assert!(!b.cgroup_dir().exists());
}

#[test]
fn mount_with_unknown_fs_type() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["true"]);
    b.add_mount("/tmp/x", "nosuchfs", "none", &[]);
    let id = rt.new_id();
    let o = rt.create(&b, &id, &[]);
    o.fails_with(&[]);
    assert!(
        o.stderr.contains("nosuchfs") || o.stderr.contains("/tmp/x"),
        "error should name the mount: {o:?}"
    );
    rt.assert_no_leftovers(&id, &b, &[]);
}

#[test]
fn bind_mount_of_missing_source() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["true"]);
    let missing = b.dir.join("no-such-source");
    b.add_bind(&missing, "/tmp/x", &["rbind"]);
    create_fails_cleanly(&rt, &b, &[missing.to_str().unwrap()]);
}

#[test]
fn mount_with_invalid_options() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["true"]);
    b.add_mount("/tmp/badopts", "tmpfs", "tmpfs", &["size=not-a-size"]);
    create_fails_cleanly(&rt, &b, &["/tmp/badopts"]);
}

#[test]
fn missing_rootfs() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["true"]);
    let missing = b.dir.join("no-rootfs");
    b.config["root"]["path"] = json!(missing.to_str().unwrap());
    create_fails_cleanly(&rt, &b, &[missing.to_str().unwrap()]);
}

#[test]
fn unknown_namespace_type() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["true"]);
    b.add_namespace("bogusns", None);
    create_fails_cleanly(&rt, &b, &["bogusns"]);
}

#[test]
fn namespace_path_does_not_exist() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["true"]);
    let p = b.dir.join("no-such-netns");
    b.add_namespace("network", Some(p.to_str().unwrap()));
    create_fails_cleanly(&rt, &b, &[p.to_str().unwrap()]);
}

#[test]
fn unknown_rlimit() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["true"]);
    b.process()["rlimits"] = json!([{ "type": "RLIMIT_BOGUS", "soft": 1, "hard": 1 }]);
    create_fails_cleanly(&rt, &b, &["RLIMIT_BOGUS"]);
}

#[test]
fn missing_executable() {
    let rt = Rt::new();
    let b = Bundle::new(&["/no/such/binary"]);
    let id = rt.new_id();
    // may be detected by create or by start; either way the error names it
    let o = rt.create(&b, &id, &[]);
    if o.success() {
        let o = rt.start(&id);
        o.fails_with(&["/no/such/binary"]);
        rt.delete_force(&id).ok();
    } else {
        o.fails_with(&["/no/such/binary"]);
    }
    rt.assert_no_leftovers(&id, &b, &[]);
}

#[test]
fn run_of_missing_executable_leaves_nothing() {
    let rt = Rt::new();
    let b = Bundle::new(&["no-such-command-in-path"]);
    let id = rt.new_id();
    let o = rt.run(&b, &id, &[]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("no-such-command-in-path"), "{o:?}");
    rt.assert_no_leftovers(&id, &b, &[]);
}

#[test]
fn failed_create_does_not_disturb_other_containers() {
    let rt = Rt::new();
    let good = Bundle::new(&["sleep", "1000"]);
    let c = rt.create_ok(&good);
    let mut bad = Bundle::new(&["true"]);
    bad.process()["rlimits"] = json!([{"type": "RLIMIT_BOGUS", "hard": 1, "soft": 1}]);
    let id = rt.new_id();
    rt.create(&bad, &id, &[]).fails_with(&["RLIMIT_BOGUS"]);
    rt.assert_no_leftovers(&id, &bad, &[c.pid]);
    assert_eq!(rt.status(&c.id).as_deref(), Some("created"));
    let o = rt.cmd(&["list", "-q"]);
    o.ok();
    assert_eq!(o.lines(), vec![c.id.clone()]);
}

#[test]
fn invalid_signal() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.start_ok(&b);
    rt.kill(&c.id, "SIGNOPE").fails_with(&["SIGNOPE"]);
    assert_eq!(rt.status(&c.id).as_deref(), Some("running"));
}

/// Numbers past any use are clear errors, never a panic in the deadline arithmetic.
#[test]
fn huge_hook_timeout_and_events_interval_are_errors() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["true"]);
    b.config["hooks"] = json!({"prestart": [{"path": "/bin/true", "timeout": i64::MAX}]});
    create_fails_cleanly(&rt, &b, &["hooks.prestart[0].timeout", "too large"]);
    // The largest accepted one runs.
    b.config["hooks"] = json!({"prestart": [{"path": "/bin/true", "timeout": i32::MAX}]});
    rt.run_new(&b).ok();
    let id = unique("no-such");
    for interval in ["10000000000000000000s", "99999999999999999999h"] {
        rt.cmd(&["events", "--interval", interval, &id])
            .fails_with(&["--interval", "too long"]);
    }
    rt.cmd(&["events", "--interval", "1e30h", &id])
        .fails_with(&["--interval", "invalid duration"]);
}

/// A bug's panic in `create`, in rt or in the forked init, still undoes everything (the
/// cleanup guards run as it unwinds; the init's is caught before it could unwind into rt's
/// copied stack) and is reported like an error. The panics come from `rt::failpoint`, which
/// only test builds have; release builds unwind the same way (Cargo.toml).
#[test]
fn a_panic_during_create_leaves_nothing_behind() {
    // "init-unshared": while rt's side makes the v1 cgroups, puts the init in them and sends it
    // their directories. The init's reason, not the join that found it gone nor the reset of
    // the connection it left with rt's message unread, is what is said; ten times, since which
    // of those rt meets first is a race.
    let points = [
        ("create", "rt panicked"),
        ("init", "container init panicked"),
    ]
    .into_iter()
    .chain(std::iter::repeat_n(
        ("init-unshared", "container init panicked"),
        10,
    ));
    for (point, says) in points {
        let rt = Rt::new();
        let b = Bundle::new(&["sleep", "1000"]);
        let id = rt.new_id();
        b.save();
        rt.track(&id);
        rt.track_cgroup(&b.cgroup);
        let log = b.host_dir("log").join("rt.json");
        let log_s = log.to_str().unwrap();
        let mut c = rt.command(&[
            "--log",
            log_s,
            "--log-format",
            "json",
            "create",
            "--bundle",
            b.path(),
            &id,
        ]);
        c.env("RT_TEST_PANIC", point);
        let o = run_cmd(&mut c);
        o.code_is(1);
        assert!(o.stderr.contains(says), "{point}: {}", o.stderr);
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(
            logged
                .lines()
                .any(|l| l.contains(r#""level":"error""#) && l.contains(says)),
            "{point}: {logged}"
        );
        rt.assert_no_leftovers(&id, &b, &[]);
    }
}

/// linux.intelRdt on a host without resctrl (this one: no RDT in the CPU, none in QEMU's
/// either) is refused as runc refuses it there, and nothing is left behind.
#[test]
fn intel_rdt_without_resctrl_is_refused_as_runc_does() {
    let resctrl = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(" - resctrl ");
    let rt = Rt::new();
    let mut b = Bundle::new(&["true"]);
    b.linux()["intelRdt"] = json!({"closID": "rt-test", "l3CacheSchema": "L3:0=f"});
    let id = rt.new_id();
    let o = rt.create(&b, &id, &[]);
    if resctrl {
        o.fails_with(&["linux.intelRdt", "not supported"]);
    } else {
        o.fails_with(&["linux.intelRdt", "Intel RDT is not enabled"]);
    }
    rt.assert_no_leftovers(&id, &b, &[]);
    let f: serde_json::Value = serde_json::from_str(&rt.cmd(&["features"]).ok().stdout).unwrap();
    assert_eq!(f["linux"]["intelRdt"]["enabled"], false);
    assert_eq!(f["ociVersionMax"], "1.3.0");
}
