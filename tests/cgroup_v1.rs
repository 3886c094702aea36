//! Limits on a hybrid host (this one): what cgroup v2 can't take (its hierarchy only has
//! hugetlb) goes through the v1 controllers. Test cgroups are placed under the test process's
//! own cgroup in each hierarchy (a relative cgroupsPath), never at a hierarchy root, and each
//! limit is proven by its effect.

mod common;
use common::*;

use serde_json::json;
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

/// The v1 mount of `controller` and this process's cgroup in it, when it is a v1 controller
/// here that v2 does not offer.
fn v1_base(controller: &str) -> Option<PathBuf> {
    let offered =
        fs::read_to_string(format!("{}/cgroup.controllers", cgroup2_mount())).unwrap_or_default();
    if offered.split_whitespace().any(|c| c == controller) {
        return None;
    }
    let mount = PathBuf::from(format!("/sys/fs/cgroup/{controller}"));
    if !mount.join("cgroup.procs").exists() {
        return None;
    }
    let own = fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .find_map(|l| {
            let mut p = l.splitn(3, ':');
            let (_, c, path) = (p.next(), p.next()?, p.next()?);
            c.split(',')
                .any(|x| x == controller)
                .then(|| path.to_string())
        })?;
    Some(mount.join(own.trim_start_matches('/')))
}

/// A bundle whose cgroupsPath is relative (under our own cgroup in every hierarchy).
fn v1_bundle(rt: &Rt, script: &str) -> (Bundle, String) {
    let mut b = Bundle::sh(script);
    let rel = unique("rt-test-v1");
    b.linux()["cgroupsPath"] = json!(rel);
    // Its v2 cgroup is beside our own (runc's rule); track it for cleanup.
    let own = own_cgroup2();
    let parent = match own.rfind('/') {
        Some(0) | None => String::new(),
        Some(i) => own[..i].to_string(),
    };
    b.cgroup = format!("{parent}/{rel}");
    rt.track_cgroup(&b.cgroup);
    (b, rel)
}

fn read(p: &std::path::Path) -> String {
    fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

fn stat(p: &std::path::Path, key: &str) -> u64 {
    read(p)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn memory_limit_through_v1_oom_kills_a_hog() {
    let Some(base) = v1_base("memory") else {
        return;
    };
    let rt = Rt::new();
    let (mut b, rel) = v1_bundle(
        &rt,
        "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived",
    );
    b.linux()["resources"] = json!({"memory": {"limit": 33554432, "swap": 33554432}});
    let dir = base.join(&rel);
    let c = rt.create_ok(&b);
    assert_eq!(read(&dir.join("memory.limit_in_bytes")), "33554432");
    assert_eq!(read(&dir.join("memory.memsw.limit_in_bytes")), "33554432");
    let line = fs::read_to_string(format!("/proc/{}/cgroup", c.pid)).unwrap();
    assert!(
        line.lines()
            .any(|l| l.contains(":memory:") && l.ends_with(&rel)),
        "{line}"
    );
    rt.start(&c.id).ok();
    assert!(rt.wait_status(&c.id, "stopped", Duration::from_secs(30)));
    assert!(
        stat(&dir.join("memory.oom_control"), "oom_kill") >= 1,
        "{}",
        read(&dir.join("memory.oom_control"))
    );
    rt.delete(&c.id).ok();
    assert!(!dir.exists(), "delete must remove the v1 cgroup");
}

#[test]
fn pids_limit_through_v1_stops_a_fork_loop_and_update_changes_it() {
    let Some(base) = v1_base("pids") else { return };
    let rt = Rt::new();
    let (mut b, rel) = v1_bundle(&rt, "for i in $(seq 40); do sleep 30 & done; exec sleep 30");
    b.linux()["resources"] = json!({"pids": {"limit": 10}});
    let dir = base.join(&rel);
    let c = rt.create_ok(&b);
    assert_eq!(read(&dir.join("pids.max")), "10");
    rt.start(&c.id).ok();
    assert!(wait_for(Duration::from_secs(10), || stat(
        &dir.join("pids.events"),
        "max"
    ) > 0));
    assert!(read(&dir.join("pids.current")).parse::<u64>().unwrap() <= 10);
    rt.delete_force(&c.id).ok();
    assert!(!dir.exists());

    // update on a live container changes the v1 limit.
    let (mut b, rel) = v1_bundle(&rt, "true");
    b.process()["args"] = json!(["sleep", "1000"]);
    b.linux()["resources"] = json!({"pids": {"limit": 10}});
    let dir = base.join(&rel);
    let c = rt.start_ok(&b);
    rt.cmd(&["update", "--pids-limit", "50", &c.id]).ok();
    assert_eq!(read(&dir.join("pids.max")), "50");
    rt.delete_force(&c.id).ok();
    assert!(!dir.exists());
}

#[test]
fn cpu_quota_through_v1_throttles() {
    let Some(base) = v1_base("cpu") else { return };
    let rt = Rt::new();
    let (mut b, rel) = v1_bundle(&rt, "while true; do :; done");
    b.linux()["resources"] = json!({"cpu": {"quota": 10000, "period": 100000, "shares": 512}});
    let dir = base.join(&rel);
    let c = rt.create_ok(&b);
    assert_eq!(read(&dir.join("cpu.cfs_quota_us")), "10000");
    assert_eq!(read(&dir.join("cpu.shares")), "512");
    rt.start(&c.id).ok();
    assert!(
        wait_for(Duration::from_secs(10), || stat(
            &dir.join("cpu.stat"),
            "nr_throttled"
        ) > 0),
        "{}",
        read(&dir.join("cpu.stat"))
    );
    rt.delete_force(&c.id).ok();
    assert!(!dir.exists());
}

/// v1-only joins happen only for limits: a container without them creates no v1 cgroups,
/// and a failed create removes the ones it made.
#[test]
fn failed_create_removes_its_v1_cgroups() {
    let Some(base) = v1_base("pids") else { return };
    let rt = Rt::new();
    let (mut b, rel) = v1_bundle(&rt, "true");
    b.linux()["resources"] = json!({"pids": {"limit": 10}});
    b.process()["args"] = json!(["/no/such/binary"]);
    let id = rt.new_id();
    rt.create(&b, &id, &[]).fails_with(&["/no/such/binary"]);
    assert!(
        !base.join(&rel).exists(),
        "a failed create left its v1 cgroup"
    );
    rt.assert_no_leftovers(&id, &b, &[]);
}
