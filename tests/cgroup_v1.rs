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

/// Where rt puts a relative cgroupsPath in cgroup v2: beside our own cgroup (runc's rule).
fn v2_relative_dir(rel: &str) -> PathBuf {
    let own = own_cgroup2();
    PathBuf::from(cgroup2_mount())
        .join(
            own.rsplit_once('/')
                .map_or("", |(p, _)| p)
                .trim_start_matches('/'),
        )
        .join(rel)
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

/// Every v1 hierarchy mounted here (mount point, controllers), once each.
fn v1_hierarchies() -> Vec<(PathBuf, String)> {
    let mut out: Vec<(PathBuf, String)> = Vec::new();
    for l in fs::read_to_string("/proc/self/mountinfo").unwrap().lines() {
        let Some((left, right)) = l.split_once(" - ") else {
            continue;
        };
        let r: Vec<&str> = right.split(' ').collect();
        let f: Vec<&str> = left.split(' ').collect();
        if r[0] != "cgroup" || f[3] != "/" {
            continue;
        }
        let ctrls: Vec<&str> = r[2]
            .split(',')
            .filter(|o| !matches!(*o, "rw" | "ro") && (!o.contains('=') || o.starts_with("name=")))
            .collect();
        let ctrls = ctrls.join(",");
        if !ctrls.is_empty() && !out.iter().any(|(_, c)| *c == ctrls) {
            out.push((PathBuf::from(f[4]), ctrls));
        }
    }
    out
}

/// This process's cgroup in the v1 hierarchy with these controllers.
fn own_v1(ctrls: &str) -> String {
    fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .find_map(|l| {
            let mut p = l.splitn(3, ':');
            let (_, c, path) = (p.next(), p.next()?, p.next()?);
            (c == ctrls).then(|| path.to_string())
        })
        .unwrap_or_else(|| "/".into())
}

/// The container's v1 directory for `rel` in every hierarchy; removed on drop (deepest
/// first), so a failing test leaves none behind.
struct V1Dirs(Vec<(String, PathBuf)>);

impl V1Dirs {
    fn new(rel: &str) -> V1Dirs {
        V1Dirs(
            v1_hierarchies()
                .into_iter()
                .map(|(m, c)| {
                    let d = m.join(own_v1(&c).trim_start_matches('/')).join(rel);
                    (c, d)
                })
                .collect(),
        )
    }

    fn of(&self, controller: &str) -> &PathBuf {
        &self
            .0
            .iter()
            .find(|(c, _)| c.split(',').any(|x| x == controller))
            .unwrap_or_else(|| panic!("no v1 {controller} hierarchy"))
            .1
    }

    fn none_left(&self) -> bool {
        self.0.iter().all(|(_, d)| !d.exists())
    }
}

impl Drop for V1Dirs {
    fn drop(&mut self) {
        fn rm_tree(d: &std::path::Path) {
            for e in fs::read_dir(d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    rm_tree(&e.path());
                }
            }
            let _ = fs::remove_dir(d);
        }
        for (_, d) in &self.0 {
            rm_tree(d);
        }
    }
}

/// A bundle with a relative cgroupsPath (under our own cgroup in every hierarchy), for rt as
/// on a pure v1 host: nothing is made in cgroup v2.
fn pure_v1_bundle(script: &str) -> (Bundle, String, V1Dirs) {
    let mut b = Bundle::sh(script);
    let rel = unique("rt-test-purev1");
    b.linux()["cgroupsPath"] = json!(rel);
    let dirs = V1Dirs::new(&rel);
    (b, rel, dirs)
}

/// As runc does, a container joins its cgroup in every v1 hierarchy, limits or not, so a
/// later `update` (Docker's `update --memory`) has a cgroup to write to.
#[test]
fn container_joins_every_v1_hierarchy_and_update_reaches_them() {
    if v1_hierarchies().is_empty() || v1_base("memory").is_none() {
        return;
    }
    let rt = Rt::new();
    let (mut b, rel) = v1_bundle(&rt, "true");
    b.process()["args"] = json!(["sleep", "1000"]);
    let dirs = V1Dirs::new(&rel);
    let c = rt.start_ok(&b);
    let cg = fs::read_to_string(format!("/proc/{}/cgroup", c.pid)).unwrap();
    for (_, ctrls) in v1_hierarchies() {
        assert!(
            cg.lines()
                .any(|l| l.split(':').nth(1) == Some(ctrls.as_str()) && l.ends_with(&rel)),
            "not in its {ctrls} cgroup: {cg}"
        );
    }
    // An exec'd process joins the same cgroups.
    let pidfile = b.dir.join("exec.pid");
    rt.cmd(&[
        "exec",
        "-d",
        "--pid-file",
        pidfile.to_str().unwrap(),
        &c.id,
        "sleep",
        "1000",
    ])
    .ok();
    let epid = read(&pidfile);
    let ecg = fs::read_to_string(format!("/proc/{epid}/cgroup")).unwrap();
    for (_, ctrls) in v1_hierarchies() {
        assert!(
            ecg.lines()
                .any(|l| l.split(':').nth(1) == Some(ctrls.as_str()) && l.ends_with(&rel)),
            "exec'd process not in its {ctrls} cgroup: {ecg}"
        );
    }
    // The devices controller is a v1 one here: the rules are there too, not allow-all.
    let list = read(&dirs.of("devices").join("devices.list"));
    assert!(!list.contains("a *:* rwm"), "{list}");
    assert!(list.lines().any(|l| l == "c 1:3 rwm"), "{list}");
    rt.cmd(&["update", "--memory", "67108864", &c.id]).ok();
    assert_eq!(
        read(&dirs.of("memory").join("memory.limit_in_bytes")),
        "67108864"
    );
    rt.delete_force(&c.id).ok();
    assert!(dirs.none_left(), "delete left v1 cgroups");
}

/// Settings only v1 has go to the v1 memory controller; a file this kernel lacks (kmem) is
/// an error naming it, and nothing is left behind.
#[test]
fn v1_only_memory_settings() {
    if v1_base("memory").is_none() {
        return;
    }
    let rt = Rt::new();
    let (mut b, rel) = v1_bundle(&rt, "true");
    b.process()["args"] = json!(["sleep", "1000"]);
    b.linux()["resources"] = json!({"memory": {"swappiness": 10, "disableOOMKiller": true}});
    let dirs = V1Dirs::new(&rel);
    let c = rt.create_ok(&b);
    let mem = dirs.of("memory");
    assert_eq!(read(&mem.join("memory.swappiness")), "10");
    assert_eq!(stat(&mem.join("memory.oom_control"), "oom_kill_disable"), 1);
    rt.delete_force(&c.id).ok();
    assert!(dirs.none_left());

    if !mem
        .parent()
        .unwrap()
        .join("memory.kmem.limit_in_bytes")
        .exists()
    {
        let (mut b, rel) = v1_bundle(&rt, "true");
        b.linux()["resources"] = json!({"memory": {"kernel": 67108864}});
        let dirs = V1Dirs::new(&rel);
        let id = rt.new_id();
        rt.create(&b, &id, &[]).fails_with(&[
            "linux.resources.memory.kernel",
            "memory.kmem.limit_in_bytes",
        ]);
        assert!(dirs.none_left(), "a failed create left v1 cgroups");
        rt.assert_no_leftovers(&id, &b, &[]);
    }
}

/// Pure v1: the device rules become devices.deny/devices.allow lines; a disk node made in
/// the container can't be opened, /dev/null can.
#[test]
fn pure_v1_devices_cgroup_denies_a_disk() {
    let Some(rt) = Rt::pure_v1() else { return };
    let (mut b, _rel, dirs) = pure_v1_bundle(&with_disk(
        "mknod /dev/xdisk b DISK && { head -c1 /dev/xdisk 2>&1 | grep -q 'not permitted' && echo denied; }; echo x > /dev/null && echo null-ok",
    ));
    b.process()["capabilities"] = json!({
        "bounding": ["CAP_MKNOD"], "effective": ["CAP_MKNOD"], "permitted": ["CAP_MKNOD"]
    });
    let id = rt.new_id();
    b.save();
    let out = rt.cmd(&["run", "--bundle", b.path(), &id]);
    assert!(out.stdout.contains("denied"), "{}", out.stdout);
    assert!(out.stdout.contains("null-ok"), "{}", out.stdout);
    assert!(dirs.none_left(), "run left v1 cgroups");

    // From the host: the container's list is an allow list, not "a *:* rwm".
    let (mut b, _rel, dirs) = pure_v1_bundle("true");
    b.process()["args"] = json!(["sleep", "1000"]);
    let c = rt.create_ok(&b);
    let list = read(&dirs.of("devices").join("devices.list"));
    assert!(!list.contains("a *:* rwm"), "{list}");
    assert!(list.lines().any(|l| l == "c 1:3 rwm"), "{list}");
    rt.delete_force(&c.id).ok();
    assert!(dirs.none_left());
}

fn cpu_ticks(pid: i32) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<&str> = s[s.rfind(')').unwrap_or(0) + 1..]
        .split_whitespace()
        .collect();
    f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Pure v1: pause and resume go through the freezer; a busy loop gets no CPU while frozen.
#[test]
fn pure_v1_pause_resume_through_freezer() {
    let Some(rt) = Rt::pure_v1() else { return };
    let (b, _rel, dirs) = pure_v1_bundle("while :; do :; done");
    let c = rt.create_ok(&b);
    rt.start(&c.id).ok();
    let freezer = dirs.of("freezer").join("freezer.state");
    rt.cmd(&["pause", &c.id]).ok();
    assert_eq!(read(&freezer), "FROZEN");
    assert_eq!(rt.state(&c.id)["status"], "paused");
    let before = cpu_ticks(c.pid);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cpu_ticks(c.pid), before, "a frozen task ran");
    rt.cmd(&["resume", &c.id]).ok();
    assert_eq!(read(&freezer), "THAWED");
    assert_eq!(rt.state(&c.id)["status"], "running");
    assert!(
        wait_for(Duration::from_secs(5), || cpu_ticks(c.pid) > before),
        "the loop did not run after resume"
    );
    // delete --force of a paused container thaws and kills it.
    rt.cmd(&["pause", &c.id]).ok();
    rt.delete_force(&c.id).ok();
    assert!(dirs.none_left());
    rt.assert_no_leftovers(&c.id, &b, &[]);
}

/// Pure v1: ps, events --stats and kill --all read and signal the v1 cgroup.
#[test]
fn pure_v1_ps_events_and_kill_all() {
    let Some(rt) = Rt::pure_v1() else { return };
    let (mut b, _rel, dirs) = pure_v1_bundle("sleep 1000 & sleep 1000 & exec sleep 1000");
    b.linux()["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 20}});
    b.linux()["namespaces"] = json!([{"type": "mount"}, {"type": "ipc"}, {"type": "uts"}]);
    let c = rt.create_ok(&b);
    rt.start(&c.id).ok();
    assert!(wait_for(Duration::from_secs(5), || {
        read(&dirs.of("pids").join("cgroup.procs")).lines().count() == 3
    }));
    let ps = rt.cmd(&["ps", "--format", "json", &c.id]);
    let pids: Vec<i32> = serde_json::from_str(ps.ok().stdout.trim()).unwrap();
    assert_eq!(pids.len(), 3, "{pids:?}");
    let ev = rt.cmd(&["events", "--stats", &c.id]);
    let v: serde_json::Value = serde_json::from_str(ev.ok().stdout.trim()).unwrap();
    let d = &v["data"];
    assert_eq!(d["memory"]["usage"]["limit"], 67108864, "{v}");
    assert!(d["memory"]["usage"]["usage"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(d["pids"]["current"], 3, "{v}");
    assert_eq!(d["pids"]["limit"], 20, "{v}");
    // No pid namespace: killing the init alone would leave the other two.
    rt.cmd(&["kill", "--all", &c.id, "KILL"]).ok();
    assert!(wait_for(Duration::from_secs(5), || pids
        .iter()
        .all(|p| !pid_alive(*p))));
    rt.cmd(&["delete", &c.id]).ok();
    assert!(dirs.none_left());
    rt.assert_no_leftovers(&c.id, &b, &[]);
}

/// A limit only v1 has, on a host without that v1 controller (net_cls is not mounted here):
/// an error naming the field and the controller, and nothing left behind.
#[test]
fn v1_only_limit_without_its_controller_fails_clearly() {
    if v1_hierarchies()
        .iter()
        .any(|(_, c)| c.split(',').any(|x| x == "net_cls"))
    {
        return;
    }
    let rt = Rt::new();
    let mut b = Bundle::new(&["true"]);
    b.linux()["resources"] = json!({"network": {"classID": 1048577}});
    let id = rt.new_id();
    rt.create(&b, &id, &[])
        .fails_with(&["linux.resources.network.classID", "net_cls"]);
    rt.assert_no_leftovers(&id, &b, &[]);
}

/// blockIO goes to the v1 blkio controller: a throttle and the weight (blkio.weight, or
/// blkio.bfq.weight with BFQ) reach their files.
#[test]
fn blkio_through_v1_throttle_and_weight() {
    let Some(base) = v1_base("blkio") else { return };
    let disk = with_disk("DISK").replace(' ', ":");
    let (major, minor) = disk.split_once(':').unwrap();
    let (major, minor): (i64, i64) = (major.parse().unwrap(), minor.parse().unwrap());
    let rt = Rt::new();
    let (mut b, rel) = v1_bundle(&rt, "true");
    b.process()["args"] = json!(["sleep", "1000"]);
    b.linux()["resources"] = json!({"blockIO": {"weight": 500, "throttleReadBpsDevice": [
        {"major": major, "minor": minor, "rate": 1048576}]}});
    let dirs = V1Dirs::new(&rel);
    let id = rt.new_id();
    let o = rt.create(&b, &id, &[]);
    let d = base.join(&rel);
    if o.code != 0 {
        // A kernel with neither CFQ nor BFQ: the error names the file.
        o.fails_with(&[
            "linux.resources.blockIO.weight",
            "blkio.weight",
            "does not exist",
        ]);
        assert!(dirs.none_left());
        return;
    }
    assert_eq!(
        read(&d.join("blkio.throttle.read_bps_device")),
        format!("{disk} 1048576")
    );
    let weight = ["blkio.weight", "blkio.bfq.weight"]
        .iter()
        .map(|f| d.join(f))
        .find(|p| p.exists())
        .expect("a weight file");
    assert!(read(&weight).ends_with("500"), "{}", read(&weight));
    rt.delete_force(&id).ok();
    assert!(dirs.none_left());
}

/// A failed create removes the parent cgroups it made, in every hierarchy (the config asks
/// for kernel memory, which this kernel has no file for).
#[test]
fn failed_create_removes_the_parent_cgroups_it_made() {
    let Some(base) = v1_base("memory") else {
        return;
    };
    if base.join("memory.kmem.limit_in_bytes").exists() {
        return;
    }
    let rt = Rt::new();
    let parent = unique("rt-test-parent");
    let mut b = Bundle::sh("true");
    b.linux()["cgroupsPath"] = json!(format!("{parent}/leaf"));
    b.linux()["resources"] = json!({"memory": {"kernel": 67108864}});
    let parents = V1Dirs::new(&parent);
    let id = rt.new_id();
    rt.create(&b, &id, &[]).fails_with(&[
        "linux.resources.memory.kernel",
        "memory.kmem.limit_in_bytes",
    ]);
    assert!(parents.none_left(), "a failed create left parent cgroups");
    let v2_parent = v2_relative_dir(&parent);
    assert!(!v2_parent.exists(), "{} left", v2_parent.display());
}

/// v1 wants the memory limit at or below memory+swap at every step: raising both at once
/// (docker update --memory 128m --memory-swap 256m on a 32m/48m container) writes memsw first.
#[test]
fn v1_update_raises_memory_and_memsw_together() {
    let Some(base) = v1_base("memory") else {
        return;
    };
    if !base.join("memory.memsw.limit_in_bytes").exists() {
        return;
    }
    let rt = Rt::new();
    let (mut b, rel) = v1_bundle(&rt, "true");
    b.process()["args"] = json!(["sleep", "1000"]);
    b.linux()["resources"] = json!({"memory": {"limit": 33554432, "swap": 50331648}});
    let dirs = V1Dirs::new(&rel);
    let c = rt.create_ok(&b);
    rt.cmd(&[
        "update",
        "--memory",
        "134217728",
        "--memory-swap",
        "268435456",
        &c.id,
    ])
    .ok();
    let mem = dirs.of("memory");
    assert_eq!(read(&mem.join("memory.limit_in_bytes")), "134217728");
    assert_eq!(read(&mem.join("memory.memsw.limit_in_bytes")), "268435456");
    rt.delete_force(&c.id).ok();
    assert!(dirs.none_left());
}

/// Pure v1: a container that made cgroups of its own below its cgroup (as a systemd or Docker
/// inside does) is killed and removed whole by delete --force: v1 has no cgroup.kill, so rt
/// walks the tree (under the freezer) and removes it deepest first.
#[test]
fn pure_v1_delete_kills_and_removes_sub_cgroups() {
    let Some(rt) = Rt::pure_v1() else { return };
    let (mut b, _rel, dirs) = pure_v1_bundle("sleep 1000 & exec sleep 1000");
    // No pid namespace: the init's death alone would not take the other process along.
    b.linux()["namespaces"] = json!([{"type": "mount"}, {"type": "ipc"}, {"type": "uts"}]);
    let c = rt.create_ok(&b);
    rt.start(&c.id).ok();
    let pids_dir = dirs.of("pids").clone();
    assert!(wait_for(Duration::from_secs(5), || {
        read(&pids_dir.join("cgroup.procs")).lines().count() == 2
    }));
    let other: i32 = read(&pids_dir.join("cgroup.procs"))
        .lines()
        .map(|l| l.parse().unwrap())
        .find(|p| *p != c.pid)
        .unwrap();
    for (ctrls, d) in &dirs.0 {
        let sub = d.join("sub");
        fs::create_dir(&sub).unwrap();
        if ctrls.split(',').any(|x| x == "cpuset") {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                fs::write(sub.join(f), read(&d.join(f))).unwrap();
            }
        }
        fs::write(sub.join("cgroup.procs"), other.to_string()).unwrap();
    }
    rt.delete_force(&c.id).ok();
    assert!(
        wait_for(Duration::from_secs(5), || !pid_alive(other)),
        "the process in the sub-cgroup survived delete --force"
    );
    assert!(dirs.none_left(), "delete left the cgroup tree");
    rt.assert_no_leftovers(&c.id, &b, &[]);
}

/// The config's `cgroup` mount on a v1 or hybrid host shows what runc shows: a read-only
/// tmpfs with one directory per v1 hierarchy (and `unified` on hybrid hosts), each rooted at
/// the container's own cgroup, with or without a cgroup namespace. So a program inside reads
/// its memory limit where cgroup v1 tools look for it.
#[test]
fn cgroup_mount_shows_the_v1_hierarchies_at_the_containers_cgroups() {
    if v1_hierarchies().is_empty() || v1_base("memory").is_none() {
        return;
    }
    let hybrid = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(" - cgroup2 ");
    for cgroupns in [true, false] {
        let rt = Rt::new();
        let (mut b, _rel) = v1_bundle(
            &rt,
            "ls /sys/fs/cgroup | tr '\\n' ' '; echo; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; \
             cat /sys/fs/cgroup/pids/pids.max; touch /sys/fs/cgroup/x 2>/dev/null || echo ro",
        );
        b.add_mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        );
        let mut ns = vec![
            json!({"type": "mount"}),
            json!({"type": "pid"}),
            json!({"type": "uts"}),
        ];
        if cgroupns {
            ns.push(json!({"type": "cgroup"}));
        }
        b.linux()["namespaces"] = json!(ns);
        b.linux()["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 33}});
        let out = rt.run_stdout(&b);
        let lines: Vec<&str> = out.lines().collect();
        let names: Vec<&str> = lines[0].split_whitespace().collect();
        for (mount, _) in v1_hierarchies() {
            let n = mount.file_name().unwrap().to_str().unwrap().to_string();
            assert!(
                names.contains(&n.as_str()),
                "cgroupns={cgroupns}: no {n} in {names:?}"
            );
        }
        assert_eq!(names.contains(&"unified"), hybrid, "{names:?}");
        assert_eq!(
            lines[1..],
            ["67108864", "33", "ro"],
            "cgroupns={cgroupns}: {out}"
        );
    }
}

/// A loop device over a fresh file (nothing of it is cached), detached on drop.
struct Loop {
    dev: String,
    file: PathBuf,
}

impl Loop {
    fn new() -> Option<Loop> {
        let file = std::env::temp_dir().join(unique("rt-test-loop"));
        fs::write(&file, vec![7u8; 16 << 20]).ok()?;
        let o = std::process::Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&file)
            .output()
            .ok()?;
        let dev = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if !o.status.success() || dev.is_empty() {
            let _ = fs::remove_file(&file);
            return None;
        }
        Some(Loop { dev, file })
    }

    /// (major, minor)
    fn numbers(&self) -> (i64, i64) {
        let name = self.dev.rsplit('/').next().unwrap();
        let mm = read(&PathBuf::from(format!("/sys/block/{name}/dev")));
        let (a, b) = mm.split_once(':').unwrap();
        (a.parse().unwrap(), b.parse().unwrap())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .args(["-d", &self.dev])
            .status();
        let _ = fs::remove_file(&self.file);
    }
}

/// events --stats reports block I/O from v1 blkio: a container that reads 4 MiB of a block
/// device (a fresh loop device, so nothing of it is cached) shows at least that much read.
#[test]
fn events_report_block_io_through_v1() {
    if v1_base("blkio").is_none() {
        return;
    }
    let Some(lo) = Loop::new() else { return };
    let (major, minor) = lo.numbers();
    let rt = Rt::new();
    let (mut b, _rel) = v1_bundle(
        &rt,
        "dd if=/dev/xdisk of=/dev/null bs=1M count=4 2>/dev/null && exec sleep 1000",
    );
    b.linux()["devices"] =
        json!([{"path": "/dev/xdisk", "type": "b", "major": major, "minor": minor}]);
    // The kernel counts a cgroup's bios on a device in these files once the device has a
    // throttle there: a generous one.
    b.linux()["resources"] = json!({"blockIO": {"throttleReadBpsDevice": [
        {"major": major, "minor": minor, "rate": 1u64 << 30}]}});
    let c = rt.create_ok(&b);
    rt.start(&c.id).ok();
    assert!(
        wait_for(Duration::from_secs(10), || cmdline(c.pid)
            .first()
            .is_some_and(|a| a.ends_with("sleep"))),
        "the read failed"
    );
    let o = rt.cmd(&["events", "--stats", &c.id]);
    let v: serde_json::Value = serde_json::from_str(o.ok().stdout.trim()).unwrap();
    let read_bytes: u64 = v["data"]["blkio"]["ioServiceBytesRecursive"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["major"] == major && e["minor"] == minor && e["op"] == "Read")
        .filter_map(|e| e["value"].as_u64())
        .sum();
    assert!(
        read_bytes >= 4 << 20,
        "read {read_bytes} bytes: {}",
        v["data"]["blkio"]
    );
    rt.delete_force(&c.id).ok();
}

/// The container's cgroup namespace is rooted at its own v1 cgroups, also when the init is
/// set up in stages (a namespace joined by path, a user namespace among them): inside, every
/// v1 line of /proc/self/cgroup says "/".
#[test]
fn cgroup_namespace_is_rooted_at_the_containers_v1_cgroups() {
    if v1_hierarchies().is_empty() {
        return;
    }
    let mut holder = spawn_cmd(
        std::process::Command::new("unshare")
            .args(["--net", "sleep", "1000"])
            .stdin(std::process::Stdio::null()),
    );
    let holder_pid = holder.pid();
    assert!(wait_for(Duration::from_secs(5), || {
        fs::read_link(format!("/proc/{holder_pid}/ns/net")).ok()
            != fs::read_link("/proc/self/ns/net").ok()
    }));
    // A user namespace to join: another container's (0 → 100000).
    let rt0 = Rt::new();
    let mut ub = Bundle::new(&["sleep", "1000"]);
    ub.add_namespace("user", None);
    ub.linux()["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    ub.linux()["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let owner = rt0.start_ok(&ub);
    for joined in ["none", "network", "user"] {
        let rt = Rt::new();
        let (mut b, _rel) = v1_bundle(&rt, "cat /proc/self/cgroup");
        let mut ns = vec![
            json!({"type": "mount"}),
            json!({"type": "pid"}),
            json!({"type": "uts"}),
            json!({"type": "ipc"}),
            json!({"type": "cgroup"}),
        ];
        match joined {
            "network" => {
                ns.push(json!({"type": "network", "path": format!("/proc/{holder_pid}/ns/net")}))
            }
            // Joining a user namespace: the init can't write the host's cgroup files itself.
            "user" => {
                ns.push(json!({"type": "user", "path": format!("/proc/{}/ns/user", owner.pid)}))
            }
            _ => {}
        }
        b.linux()["namespaces"] = json!(ns);
        let out = rt.run_stdout(&b);
        for l in out.lines().filter(|l| !l.starts_with("0::")) {
            assert!(l.ends_with(":/"), "joined={joined}: {l} in {out}");
        }
    }
    let _ = holder.finished();
}
