//! pause / resume through the cgroup v2 freezer (cgroup.freeze, cgroup.events).

mod common;
use common::*;

use std::fs;
use std::time::Duration;

/// A container that writes an increasing counter to a host file every 50 ms.
fn counter(rt: &Rt) -> (Bundle, Ctr, std::path::PathBuf) {
    let mut b =
        Bundle::sh("i=0; while true; do i=$((i+1)); echo $i > /tmp/out/count; sleep 0.05; done");
    let out = b.host_dir("out");
    b.add_bind(&out, "/tmp/out", &["rbind", "rw"]);
    let c = rt.create_ok(&b);
    rt.start(&c.id).ok();
    let file = out.join("count");
    assert!(
        wait_for(WAIT, || read_count(&file) > 2),
        "counter never ran"
    );
    (b, c, file)
}

fn read_count(p: &std::path::Path) -> u64 {
    fs::read_to_string(p)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn frozen(b: &Bundle) -> bool {
    fs::read_to_string(b.cgroup_dir().join("cgroup.events"))
        .unwrap()
        .lines()
        .any(|l| l == "frozen 1")
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let rt = Rt::new();
    let (b, c, file) = counter(&rt);
    rt.cmd(&["pause", &c.id]).ok();
    assert_eq!(rt.status(&c.id).as_deref(), Some("paused"));
    assert!(frozen(&b), "pause returned before the cgroup was frozen");
    let at_pause = read_count(&file);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        read_count(&file),
        at_pause,
        "the counter moved while paused"
    );
    rt.cmd(&["resume", &c.id]).ok();
    assert_eq!(rt.status(&c.id).as_deref(), Some("running"));
    assert!(!frozen(&b));
    assert!(
        wait_for(WAIT, || read_count(&file) > at_pause + 2),
        "the counter did not move after resume"
    );
    rt.delete_force(&c.id).ok();
}

#[test]
fn pause_and_resume_errors() {
    let rt = Rt::new();
    let (_b, c, _file) = counter(&rt);
    rt.cmd(&["resume", &c.id]).fails_with(&["not paused"]);
    rt.cmd(&["pause", &c.id]).ok();
    rt.cmd(&["pause", &c.id]).fails_with(&["already paused"]);
    rt.cmd(&["resume", &c.id]).ok();
    rt.kill(&c.id, "KILL").ok();
    assert!(rt.wait_status(&c.id, "stopped", WAIT));
    rt.cmd(&["pause", &c.id]).fails_with(&["not running"]);
    rt.cmd(&["pause", "no-such-container"])
        .fails_with(&["does not exist"]);
}

#[test]
fn paused_container_refuses_exec_and_plain_delete_but_force_delete_cleans_up() {
    let rt = Rt::new();
    let (b, c, _file) = counter(&rt);
    rt.cmd(&["pause", &c.id]).ok();
    rt.cmd(&["exec", &c.id, "true"])
        .exec_fails_with(&["paused"]);
    rt.delete(&c.id).fails_with(&["paused"]);
    rt.delete_force(&c.id).ok();
    rt.assert_no_leftovers(&c.id, &b, &[]);
}

#[test]
fn kill_of_a_paused_container_stops_it() {
    let rt = Rt::new();
    let (_b, c, _file) = counter(&rt);
    rt.cmd(&["pause", &c.id]).ok();
    rt.kill(&c.id, "KILL").ok();
    assert!(
        rt.wait_status(&c.id, "stopped", WAIT),
        "{:?}",
        rt.status(&c.id)
    );
    rt.delete(&c.id).ok();
}
