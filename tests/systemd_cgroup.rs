//! The systemd cgroup driver (`rt --systemd-cgroup`). Its bad-input checks run anywhere; the
//! rest needs systemd as PID 1 on a pure cgroup v2 host, so those tests are ignored by a plain
//! `cargo test` and `make test-vm` runs them in a VM that boots systemd (vm/run.sh with
//! VM_INIT=systemd). Every rt call here passes the driver flag itself.
//! (tests/cgroup_v2.rs runs there too, under both drivers.)

mod common;
use common::*;

use serde_json::json;
use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

const SD: &str = "--systemd-cgroup";

/// `rt --root R --systemd-cgroup ARGS...`
fn sd(rt: &Rt, args: &[&str]) -> Output {
    let mut a = vec!["--root", rt.root_str(), SD];
    a.extend_from_slice(args);
    rt.cmd_raw(&a)
}

fn systemd_is_pid1() -> bool {
    fs::read_to_string("/proc/1/comm").is_ok_and(|c| c.trim() == "systemd")
}

/// `systemctl show -P PROP UNIT`, trimmed.
fn show(unit: &str, prop: &str) -> String {
    let o = Command::new("systemctl")
        .args(["show", "-P", prop, unit])
        .stdin(Stdio::null())
        .output()
        .expect("systemctl");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A bundle with a unique `slice:prefix:name` path; returns its unit and cgroup.
fn sd_bundle(args: &[&str], slice: &str) -> (Bundle, String) {
    let mut b = Bundle::new(args);
    let name = unique("sdtest");
    let unit = format!("rt-test-{name}.scope");
    b.linux()["cgroupsPath"] = json!(format!("{slice}:rt-test:{name}"));
    let mut parent = String::new();
    let stem = slice.trim_end_matches(".slice");
    let mut prefix = String::new();
    for part in stem.split('-') {
        parent.push_str(&format!("/{prefix}{part}.slice"));
        prefix.push_str(&format!("{part}-"));
    }
    b.cgroup = format!("{parent}/{unit}");
    (b, unit)
}

/// The unit is gone from systemd (not merely stopped) and so is its cgroup.
fn assert_unit_gone(unit: &str, b: &Bundle) {
    assert!(
        wait_for(Duration::from_secs(10), || show(unit, "LoadState")
            == "not-found"
            && !b.cgroup_dir().exists()),
        "unit {unit} left behind: LoadState={} ActiveState={}, cgroup exists: {}",
        show(unit, "LoadState"),
        show(unit, "ActiveState"),
        b.cgroup_dir().exists()
    );
}

#[test]
fn cgroupfs_driver_refuses_a_systemd_cgroups_path() {
    if systemd_driver() {
        return;
    }
    let rt = Rt::new();
    let mut b = Bundle::new(&["true"]);
    b.linux()["cgroupsPath"] = json!("system.slice:rt-test:x1");
    let id = rt.new_id();
    rt.create(&b, &id, &[])
        .fails_with(&["linux.cgroupsPath", "--systemd-cgroup"]);
    rt.assert_no_leftovers(&id, &b, &[]);
}

#[test]
fn systemd_driver_refuses_paths_that_are_not_slice_prefix_name() {
    let rt = Rt::new();
    for bad in [
        "/rt-test/x",
        "a:b",
        "notaslice:x:y",
        "system.slice:x:",
        "a--b.slice:x:y",
    ] {
        let mut b = Bundle::new(&["true"]);
        b.linux()["cgroupsPath"] = json!(bad);
        b.save();
        let id = rt.new_id();
        let o = sd(&rt, &["create", "-b", b.path(), &id]);
        o.fails_with(&["linux.cgroupsPath"]);
        assert_eq!(o.stderr.trim().lines().count(), 1, "{bad}: {}", o.stderr);
        rt.assert_no_leftovers(&id, &b, &[]);
    }
}

/// On a host without systemd's unified cgroup tree (this build machine is hybrid) the driver
/// says so before doing anything.
#[test]
fn systemd_driver_on_a_host_without_pure_cgroup_v2_is_a_clear_error() {
    if cgroup2_mount() == "/sys/fs/cgroup" {
        return;
    }
    let rt = Rt::new();
    let (b, _) = sd_bundle(&["true"], "system.slice");
    b.save();
    let id = rt.new_id();
    sd(&rt, &["create", "-b", b.path(), &id]).fails_with(&["--systemd-cgroup", "cgroup v2"]);
    rt.assert_no_leftovers(&id, &b, &[]);
}

#[test]
#[ignore = "needs systemd as PID 1 with pure cgroup v2: make test-vm"]
fn a_container_gets_a_delegated_scope_with_its_limits_as_unit_properties() {
    assert!(systemd_is_pid1());
    let rt = Rt::new();
    // The claim this test (with e2e/podman-rootless.sh for the user manager) backs.
    let f: serde_json::Value = serde_json::from_str(&rt.cmd(&["features"]).ok().stdout).unwrap();
    assert_eq!(f["linux"]["cgroup"]["systemd"], true);
    assert_eq!(f["linux"]["cgroup"]["systemdUser"], true);
    let (mut b, unit) = sd_bundle(&["sleep", "1000"], "system.slice");
    b.linux()["resources"] = json!({
        "memory": {"limit": 67108864},
        "pids": {"limit": 20},
        "cpu": {"quota": 50000, "period": 100000, "shares": 1024}
    });
    b.save();
    let id = rt.new_id();
    rt.track_cgroup(&b.cgroup);
    sd(&rt, &["create", "-b", b.path(), &id]).ok();
    let pid = rt.pid(&id);
    assert_eq!(proc_cgroup2(pid).as_deref(), Some(b.cgroup.as_str()));
    assert_eq!(show(&unit, "ActiveState"), "active");
    assert_eq!(show(&unit, "Delegate"), "yes");
    assert_eq!(show(&unit, "Slice"), "system.slice");
    assert_eq!(show(&unit, "MemoryMax"), "67108864");
    assert_eq!(show(&unit, "TasksMax"), "20");
    assert_eq!(show(&unit, "CPUQuotaPerSecUSec"), "500ms");
    assert_eq!(show(&unit, "CPUWeight"), "39");
    // systemd's view of the device rules matches rt's filter: the defaults (/dev/null, pts...).
    assert_eq!(show(&unit, "DevicePolicy"), "strict");
    let allow = show(&unit, "DeviceAllow");
    for entry in ["/dev/char/1:3 rwm", "char-pts rwm"] {
        assert!(allow.contains(entry), "{allow}");
    }
    let read = |f: &str| {
        fs::read_to_string(b.cgroup_dir().join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(read("memory.max"), "67108864");
    assert_eq!(read("pids.max"), "20");
    assert_eq!(read("cpu.max"), "50000 100000");
    assert_eq!(read("cpu.weight"), "39");
    // Every controller, whatever the limits (update and events need them).
    let controllers = read("cgroup.controllers");
    for c in ["cpu", "io", "memory", "pids"] {
        assert!(
            controllers.split_whitespace().any(|x| x == c),
            "{controllers}"
        );
    }

    sd(&rt, &["start", &id]).ok();
    // The container's cgroup namespace is rooted at the scope.
    let o = sd(&rt, &["exec", &id, "cat", "/proc/self/cgroup"]);
    assert_eq!(o.ok().stdout.trim(), "0::/");
    let log = rt.cmd(&["ps", &id]);
    log.ok();
    assert!(log.stdout.lines().count() >= 2, "{}", log.stdout);
    sd(&rt, &["pause", &id]).ok();
    assert_eq!(read("cgroup.freeze"), "1");
    assert!(rt.wait_status(&id, "paused", WAIT));
    sd(&rt, &["resume", &id]).ok();
    assert!(rt.wait_status(&id, "running", WAIT));
    let ev = sd(&rt, &["events", "--stats", &id]);
    let ev: serde_json::Value = serde_json::from_str(ev.ok().stdout.trim()).unwrap();
    assert_eq!(ev["data"]["memory"]["usage"]["limit"], 67108864, "{ev}");
    assert_eq!(ev["data"]["pids"]["limit"], 20, "{ev}");

    // update reaches the files and the unit (which systemd re-applies on reload).
    sd(
        &rt,
        &["update", "--memory", "128m", "--pids-limit", "30", &id],
    )
    .ok();
    assert_eq!(show(&unit, "MemoryMax"), "134217728");
    assert_eq!(show(&unit, "TasksMax"), "30");
    assert_eq!(read("memory.max"), "134217728");
    let reload = Command::new("systemctl")
        .arg("daemon-reload")
        .status()
        .unwrap();
    assert!(reload.success());
    assert_eq!(
        read("memory.max"),
        "134217728",
        "systemd reset the limit on reload"
    );
    assert_eq!(read("pids.max"), "30");

    // exec lands in the scope.
    let pidfile = b.dir.join("exec.pid");
    sd(
        &rt,
        &[
            "exec",
            "-d",
            "--pid-file",
            pidfile.to_str().unwrap(),
            &id,
            "sleep",
            "1000",
        ],
    )
    .ok();
    let epid: i32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(proc_cgroup2(epid).as_deref(), Some(b.cgroup.as_str()));
    sd(&rt, &["kill", "--all", &id, "KILL"]).ok();
    assert!(rt.wait_status(&id, "stopped", Duration::from_secs(10)));
    sd(&rt, &["delete", &id]).ok();
    assert_unit_gone(&unit, &b);
    rt.assert_no_leftovers(&id, &b, &[]);
}

#[test]
#[ignore = "needs systemd as PID 1 with pure cgroup v2: make test-vm"]
fn default_and_nested_slices() {
    assert!(systemd_is_pid1());
    let rt = Rt::new();
    // No cgroupsPath: system.slice, prefix rt.
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.linux().as_object_mut().unwrap().remove("cgroupsPath");
    b.save();
    let id = rt.new_id();
    b.cgroup = format!("/system.slice/rt-{id}.scope");
    rt.track_cgroup(&b.cgroup);
    sd(&rt, &["create", "-b", b.path(), &id]).ok();
    assert_eq!(
        proc_cgroup2(rt.pid(&id)).as_deref(),
        Some(b.cgroup.as_str())
    );
    sd(&rt, &["delete", "-f", &id]).ok();
    assert_unit_gone(&format!("rt-{id}.scope"), &b);

    // A nested slice: rttest-a.slice lives in rttest.slice.
    let (b, unit) = sd_bundle(&["sleep", "1000"], "rttest-a.slice");
    assert!(
        b.cgroup.starts_with("/rttest.slice/rttest-a.slice/"),
        "{}",
        b.cgroup
    );
    b.save();
    let id = rt.new_id();
    rt.track_cgroup(&b.cgroup);
    sd(&rt, &["run", "-d", "-b", b.path(), &id]).ok();
    assert_eq!(
        proc_cgroup2(rt.pid(&id)).as_deref(),
        Some(b.cgroup.as_str())
    );
    assert_eq!(show(&unit, "Slice"), "rttest-a.slice");
    sd(&rt, &["delete", "-f", &id]).ok();
    assert_unit_gone(&unit, &b);

    // A name that is a slice makes the container a slice unit, which systemd never stops by
    // itself: delete does (systemd keeps the stopped slice loaded; see the README).
    let mut b = Bundle::new(&["sleep", "1000"]);
    let name = unique("rttest").replace('-', "_");
    let unit = format!("rttest-{name}.slice");
    b.linux()["cgroupsPath"] = json!(format!("rttest.slice:x:{unit}"));
    b.cgroup = format!("/rttest.slice/{unit}");
    b.save();
    let id = rt.new_id();
    rt.track_cgroup(&b.cgroup);
    sd(&rt, &["run", "-d", "-b", b.path(), &id]).ok();
    assert_eq!(
        proc_cgroup2(rt.pid(&id)).as_deref(),
        Some(b.cgroup.as_str())
    );
    assert_eq!(show(&unit, "ActiveState"), "active");
    sd(&rt, &["delete", "-f", &id]).ok();
    assert!(
        wait_for(Duration::from_secs(10), || show(&unit, "ActiveState")
            == "inactive"
            && !b.cgroup_dir().exists()),
        "slice {unit} not stopped: {}",
        show(&unit, "ActiveState")
    );
}

/// systemd enables only the controllers it knows for its units; hugetlb (Kubernetes sets a
/// hugepage limit on every container) is enabled by rt, as runc does.
#[test]
#[ignore = "needs systemd as PID 1 with pure cgroup v2: make test-vm"]
fn hugepage_limits_work_under_systemd() {
    assert!(systemd_is_pid1());
    let offered = fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap();
    assert!(
        offered.split_whitespace().any(|c| c == "hugetlb"),
        "{offered}"
    );
    let rt = Rt::new();
    let (mut b, unit) = sd_bundle(&["sleep", "1000"], "system.slice");
    b.linux()["resources"] = json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]});
    b.save();
    let id = rt.new_id();
    rt.track_cgroup(&b.cgroup);
    sd(&rt, &["create", "-b", b.path(), &id]).ok();
    let max = fs::read_to_string(b.cgroup_dir().join("hugetlb.2MB.max")).unwrap();
    assert_eq!(max.trim(), "0");
    sd(&rt, &["delete", "-f", &id]).ok();
    assert_unit_gone(&unit, &b);
}

#[test]
#[ignore = "needs systemd as PID 1 with pure cgroup v2: make test-vm"]
fn run_passes_the_exit_status_and_leaves_no_unit() {
    assert!(systemd_is_pid1());
    let rt = Rt::new();
    let (b, unit) = sd_bundle(&["sh", "-c", "exit 3"], "system.slice");
    b.save();
    let id = rt.new_id();
    rt.track_cgroup(&b.cgroup);
    sd(&rt, &["run", "-b", b.path(), &id]).code_is(3);
    assert_unit_gone(&unit, &b);
    rt.assert_no_leftovers(&id, &b, &[]);
}

#[test]
#[ignore = "needs systemd as PID 1 with pure cgroup v2: make test-vm"]
fn annotations_set_extra_unit_properties() {
    assert!(systemd_is_pid1());
    let rt = Rt::new();
    let (mut b, unit) = sd_bundle(&["sleep", "1000"], "system.slice");
    b.config["annotations"] = json!({
        "org.systemd.property.TimeoutStopSec": "uint64 123",
        "org.systemd.property.CollectMode": "'inactive-or-failed'"
    });
    b.save();
    let id = rt.new_id();
    rt.track_cgroup(&b.cgroup);
    sd(&rt, &["create", "-b", b.path(), &id]).ok();
    assert_eq!(show(&unit, "TimeoutStopUSec"), "2min 3s");
    assert_eq!(show(&unit, "CollectMode"), "inactive-or-failed");
    sd(&rt, &["delete", "-f", &id]).ok();
    assert_unit_gone(&unit, &b);

    // A value systemd can't take is an error naming it, and nothing is left.
    let (mut b, unit) = sd_bundle(&["sleep", "1000"], "system.slice");
    b.config["annotations"] = json!({"org.systemd.property.CPUWeight": "'lots'"});
    b.save();
    let id = rt.new_id();
    rt.track_cgroup(&b.cgroup);
    sd(&rt, &["create", "-b", b.path(), &id]).fails_with(&[&unit]);
    assert_unit_gone(&unit, &b);
    rt.assert_no_leftovers(&id, &b, &[]);
}

#[test]
#[ignore = "needs systemd as PID 1 with pure cgroup v2: make test-vm"]
fn an_existing_unit_is_refused_and_left_untouched() {
    assert!(systemd_is_pid1());
    let rt = Rt::new();
    let (b, unit) = sd_bundle(&["sleep", "1000"], "system.slice");
    b.save();
    let mut first = rt.new_id();
    rt.track_cgroup(&b.cgroup);
    sd(&rt, &["run", "-d", "-b", b.path(), &first]).ok();
    let pid = rt.pid(&first);
    let second = rt.new_id();
    let o = sd(&rt, &["create", "-b", b.path(), &second]);
    o.fails_with(&["already exists", &unit]);
    assert!(!rt.state_dir(&second).exists());
    assert_eq!(show(&unit, "ActiveState"), "active");
    assert!(pid_alive(pid), "the first container's init was hurt");
    assert_eq!(proc_cgroup2(pid).as_deref(), Some(b.cgroup.as_str()));
    // delete leaves the dead unit to systemd: a create of the same unit right after it waits
    // for systemd to let go of the old one instead of failing.
    for _ in 0..5 {
        let id = rt.new_id();
        sd(&rt, &["delete", "-f", &first]).ok();
        sd(&rt, &["run", "-d", "-b", b.path(), &id]).ok();
        assert_eq!(
            proc_cgroup2(rt.pid(&id)).as_deref(),
            Some(b.cgroup.as_str())
        );
        first = id;
    }
    sd(&rt, &["delete", "-f", &first]).ok();
    assert_unit_gone(&unit, &b);
}

#[test]
#[ignore = "needs systemd as PID 1 with pure cgroup v2: make test-vm"]
fn an_unreachable_bus_or_a_failed_create_leaves_nothing() {
    assert!(systemd_is_pid1());
    let rt = Rt::new();
    let (b, unit) = sd_bundle(&["sleep", "1000"], "system.slice");
    b.save();
    let id = rt.new_id();
    rt.track_cgroup(&b.cgroup);
    let mut c = rt.command(&[SD, "create", "-b", b.path(), &id]);
    c.env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    let o = run_cmd(&mut c);
    o.fails_with(&["cannot reach systemd"]);
    rt.assert_no_leftovers(&id, &b, &[]);
    assert_unit_gone(&unit, &b);

    // The unit exists by the time the program turns out not to run: it goes too.
    let (b, unit) = sd_bundle(&["/no/such/program"], "system.slice");
    b.save();
    let id = rt.new_id();
    rt.track_cgroup(&b.cgroup);
    sd(&rt, &["create", "-b", b.path(), &id]).fails_with(&["/no/such/program"]);
    rt.assert_no_leftovers(&id, &b, &[]);
    assert_unit_gone(&unit, &b);
}

/// A transient unit the test started, stopped again on drop.
struct Transient(String);

impl Transient {
    /// `systemd-run --unit NAME ARGS...` (no --wait: it runs on once started).
    fn start(name: &str, args: &[&str]) -> Transient {
        let st = Command::new("systemd-run")
            .args(["--quiet", "--collect", "--unit", name])
            .args(args)
            .stdin(Stdio::null())
            .status()
            .expect("systemd-run");
        assert!(st.success(), "systemd-run --unit {name}: {st}");
        Transient(name.to_string())
    }
}

impl Drop for Transient {
    fn drop(&mut self) {
        let _ = Command::new("systemctl")
            .args(["stop", &self.0])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn words(file: &std::path::Path) -> Vec<String> {
    let mut w: Vec<String> = fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("read {}: {e}", file.display()))
        .split_whitespace()
        .map(str::to_string)
        .collect();
    w.sort();
    w
}

const SYSTEMD_MANAGED: [&str; 5] = ["cpu", "cpuset", "io", "memory", "pids"];

/// The controllers systemd manages that `cgroup`'s subtree_control has.
fn managed_enabled(cgroup: &str) -> Vec<String> {
    words(&cgroup_dir(cgroup).join("cgroup.subtree_control"))
        .into_iter()
        .filter(|c| SYSTEMD_MANAGED.contains(&c.as_str()))
        .collect()
}

/// With the cgroupfs driver, a cgroupsPath inside systemd's own cgroups (a slice, here) is
/// allowed, but the controllers systemd manages are its business there: it enables what its
/// units need and takes away the rest the next time it realizes the cgroup. rt never writes
/// them into a cgroup systemd owns (runc does, and loses them again); a limit that needs one
/// systemd did not enable is refused, saying what to do.
#[test]
#[ignore = "needs systemd as PID 1 with pure cgroup v2: make test-vm"]
fn cgroupfs_driver_leaves_the_controllers_of_systemds_cgroups_alone() {
    assert!(systemd_is_pid1());
    let rt = Rt::new();
    let name = unique("rttestowned").replace('-', "_");
    let slice = format!("{name}.slice");
    // A unit in the slice (with only the default accounting) makes systemd realize it.
    let _svc = Transient::start(
        &format!("{name}.service"),
        &["--slice", &slice, "sleep", "1000"],
    );
    let _slice = Transient(slice.clone());
    let slice_cg = format!("/{slice}");
    assert!(wait_for(WAIT, || cgroup_dir(&slice_cg).exists()));
    let (root_before, slice_before) = (managed_enabled("/"), managed_enabled(&slice_cg));
    let (off, limit) = [
        ("cpu", json!({"cpu": {"quota": 10000, "period": 100000}})),
        ("io", json!({"blockIO": {"weight": 100}})),
        ("cpuset", json!({"cpu": {"cpus": "0"}})),
    ]
    .into_iter()
    .find(|(c, _)| !slice_before.iter().any(|h| h == c))
    .expect("systemd enabled cpu, io and cpuset in a slice whose unit needs none of them");

    let mut b = Bundle::new(&["sleep", "1000"]);
    b.cgroup = format!("{slice_cg}/{}", unique("ctr"));
    b.linux()["cgroupsPath"] = json!(b.cgroup);
    let c = rt.start_ok(&b);
    let have = words(&b.cgroup_dir().join("cgroup.controllers"));
    assert_eq!(
        have,
        words(&cgroup_dir(&slice_cg).join("cgroup.subtree_control")),
        "the container has what the slice enables"
    );
    assert!(
        have.iter().any(|c| c == "memory") && have.iter().any(|c| c == "pids"),
        "{have:?}"
    );
    rt.delete_force(&c.id).ok();

    let mut b = Bundle::new(&["sleep", "1000"]);
    b.cgroup = format!("{slice_cg}/{}", unique("ctr"));
    b.linux()["cgroupsPath"] = json!(b.cgroup);
    b.linux()["resources"] = limit;
    let id = rt.new_id();
    rt.create(&b, &id, &[]).fails_with(&[
        &format!("the {off} controller is not enabled"),
        "systemd",
        "--systemd-cgroup",
    ]);
    rt.assert_no_leftovers(&id, &b, &[]);
    assert_eq!(
        managed_enabled("/"),
        root_before,
        "the root cgroup's controllers"
    );
    assert_eq!(
        managed_enabled(&slice_cg),
        slice_before,
        "{slice}'s controllers"
    );
}

/// A Delegate=yes service running `sh -c SCRIPT` with `env` (KEY=VALUE) set.
fn delegated(unit: &str, env: &str, script: &str) -> Transient {
    Transient::start(
        unit,
        &["-p", "Delegate=yes", "--setenv", env, "sh", "-c", script],
    )
}

/// rt started by a Delegate=yes service (as containerd.service and docker.service start runc),
/// with the cgroupfs driver and its containers in the service's delegated cgroup.
/// While the service's own processes sit in that cgroup, cgroup v2 refuses its children the
/// domain controllers (EBUSY): a memory limit is refused naming why, and a pids-only container
/// runs in a threaded cgroup (runc's handling). Once the service moved its processes to a leaf
/// (as systemd's delegation rules ask), its containers get every controller it was delegated.
#[test]
#[ignore = "needs systemd as PID 1 with pure cgroup v2: make test-vm"]
fn cgroupfs_containers_in_a_delegate_yes_service() {
    assert!(systemd_is_pid1());
    let rt = Rt::new();
    let out = std::env::temp_dir().join(unique("rt-test-deleg"));
    fs::create_dir(&out).unwrap();
    let out_s = out.to_str().unwrap().to_string();
    let create = |bundle: &Bundle, id: &str, tag: &str| {
        format!(
            "{} --root {} create -b {} {id} > {out_s}/{tag}.err 2>&1; echo $? > {out_s}/{tag}.rc; ",
            rt_bin().display(),
            rt.root_str(),
            bundle.path()
        )
    };
    let rc = |tag: &str| -> i32 {
        let f = out.join(format!("{tag}.rc"));
        assert!(
            wait_for(Duration::from_secs(30), || f.exists()),
            "no {tag}.rc"
        );
        wait_for(WAIT, || {
            fs::read_to_string(&f).is_ok_and(|s| s.ends_with('\n'))
        });
        fs::read_to_string(&f).unwrap().trim().parse().unwrap()
    };
    let err = |tag: &str| fs::read_to_string(out.join(format!("{tag}.err"))).unwrap();
    let bundle = |cgroup: String, resources: serde_json::Value| {
        let mut b = Bundle::new(&["sleep", "1000"]);
        b.cgroup = cgroup;
        b.linux()["cgroupsPath"] = json!(b.cgroup);
        b.linux()["resources"] = resources;
        b.save();
        rt.track_cgroup(&b.cgroup);
        b
    };
    let marker = format!("{MARKER_VAR}={}", rt.marker);

    // The service's processes stay in its cgroup.
    let unit = format!("{}.service", unique("rt-test-deleg"));
    let svc = format!("/system.slice/{unit}");
    let mem = bundle(format!("{svc}/mem"), json!({"memory": {"limit": 67108864}}));
    let pids = bundle(format!("{svc}/pids"), json!({"pids": {"limit": 10}}));
    let (mem_id, pids_id) = (rt.new_id(), rt.new_id());
    let script = format!(
        "{}{}exec sleep 1000",
        create(&mem, &mem_id, "mem"),
        create(&pids, &pids_id, "pids")
    );
    let _a = delegated(&unit, &marker, &script);
    assert_ne!(rc("mem"), 0, "{}", err("mem"));
    let e = err("mem");
    assert!(
        e.contains("linux.resources.memory") && e.contains("processes of its own"),
        "{e}"
    );
    assert_eq!(rc("pids"), 0, "{}", err("pids"));
    assert!(
        !mem.cgroup_dir().exists(),
        "the refused container left its cgroup"
    );
    let pid = rt.pid(&pids_id);
    assert_eq!(proc_cgroup2(pid).as_deref(), Some(pids.cgroup.as_str()));
    let file = |b: &Bundle, f: &str| {
        fs::read_to_string(b.cgroup_dir().join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(file(&pids, "cgroup.type"), "threaded");
    assert_eq!(file(&pids, "pids.max"), "10");
    rt.cmd(&["delete", "-f", &pids_id]).ok();

    // The service moves its processes to a leaf first.
    let unit = format!("{}.service", unique("rt-test-deleg"));
    let svc = format!("/system.slice/{unit}");
    let mem2 = bundle(format!("{svc}/ctr"), json!({"memory": {"limit": 67108864}}));
    let mem2_id = rt.new_id();
    let script = format!(
        "mkdir /sys/fs/cgroup{svc}/supervisor && echo 0 > /sys/fs/cgroup{svc}/supervisor/cgroup.procs; {}exec sleep 1000",
        create(&mem2, &mem2_id, "mem2")
    );
    let _b = delegated(&unit, &marker, &script);
    assert_eq!(rc("mem2"), 0, "{}", err("mem2"));
    assert_eq!(file(&mem2, "memory.max"), "67108864");
    let have = words(&mem2.cgroup_dir().join("cgroup.controllers"));
    assert_eq!(
        have,
        words(&cgroup_dir(&svc).join("cgroup.controllers")),
        "every delegated controller"
    );
    rt.cmd(&["delete", "-f", &mem2_id]).ok();
    let _ = fs::remove_dir_all(&out);
}
