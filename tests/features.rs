//! `rt features`: the document's shape, and every claim checked against the binary.
mod common;
use common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::fs;

fn features() -> Value {
    let rt = Rt::new();
    let o = rt.cmd(&["features"]);
    o.ok();
    serde_json::from_str(&o.stdout)
        .unwrap_or_else(|e| panic!("features output is not JSON ({e}): {}", o.stdout))
}

fn str_list(v: &Value, what: &str) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("{what} should be an array: {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("{what}: {s} is not a string"))
                .to_string()
        })
        .collect()
}

fn semver(s: &str) -> (u64, u64, u64) {
    let core = s.split(['-', '+']).next().unwrap();
    let p: Vec<u64> = core
        .split('.')
        .map(|x| x.parse().unwrap_or_else(|_| panic!("not semver: {s}")))
        .collect();
    assert_eq!(p.len(), 3, "not semver: {s}");
    (p[0], p[1], p[2])
}

/// `linux.<key>.enabled` (or `linux.mountExtensions.idmap.enabled`) as a bool.
fn enabled(f: &Value, ptr: &str) -> bool {
    f.pointer(ptr)
        .unwrap_or_else(|| panic!("features lacks {ptr}"))
        .as_bool()
        .unwrap_or_else(|| panic!("{ptr} is not a bool"))
}

#[test]
fn document_shape() {
    let f = features();
    let min = f["ociVersionMin"].as_str().expect("ociVersionMin");
    let max = f["ociVersionMax"].as_str().expect("ociVersionMax");
    assert!(semver(min) <= semver(max), "{min} > {max}");
    let hooks = str_list(&f["hooks"], "hooks");
    assert!(!hooks.is_empty());
    for h in &hooks {
        assert!(
            [
                "prestart",
                "createRuntime",
                "createContainer",
                "startContainer",
                "poststart",
                "poststop"
            ]
            .contains(&h.as_str()),
            "unknown hook phase {h}"
        );
    }
    let opts = str_list(&f["mountOptions"], "mountOptions");
    assert!(!opts.is_empty());
    let uniq: BTreeSet<&String> = opts.iter().collect();
    assert_eq!(uniq.len(), opts.len(), "duplicate mount options");
    let ns = str_list(&f["linux"]["namespaces"], "linux.namespaces");
    for n in &ns {
        assert!(ALL_NS_TYPES.contains(&n.as_str()), "unknown namespace {n}");
    }
    let caps = str_list(&f["linux"]["capabilities"], "linux.capabilities");
    assert!(caps.iter().all(|c| c.starts_with("CAP_")), "{caps:?}");
    assert!(f["linux"]["cgroup"].is_object(), "linux.cgroup");
    for k in ["v1", "v2", "systemd", "systemdUser"] {
        assert!(
            f["linux"]["cgroup"][k].is_boolean() || f["linux"]["cgroup"][k].is_null(),
            "linux.cgroup.{k}"
        );
    }
    for p in [
        "/linux/seccomp/enabled",
        "/linux/apparmor/enabled",
        "/linux/selinux/enabled",
        "/linux/mountExtensions/idmap/enabled",
    ] {
        enabled(&f, p);
    }
    assert_eq!(
        f["linux"]["cgroup"]["v2"],
        json!(true),
        "rt manages cgroup v2 (every test relies on it)"
    );
}

/// The v1 claim: on a host with v1 hierarchies, a container joins its cgroup in each of them
/// and a limit lands in the v1 file (tests/cgroup_v1.rs proves each limit by its effect).
#[test]
fn cgroup_v1_claim_holds() {
    let f = features();
    assert_eq!(f["linux"]["cgroup"]["v1"], json!(true));
    let v1_pids = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.contains(" - cgroup ") && l.ends_with(",pids"))
        .and_then(|l| l.split(' ').nth(4).map(str::to_string));
    let Some(mount) = v1_pids else { return };
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.linux()["resources"] = json!({"pids": {"limit": 42}});
    let c = rt.start_ok(&b);
    let line = fs::read_to_string(format!("/proc/{}/cgroup", c.pid))
        .unwrap()
        .lines()
        .find(|l| l.split(':').nth(1) == Some("pids"))
        .map(|l| l.splitn(3, ':').nth(2).unwrap().to_string())
        .unwrap();
    let max = fs::read_to_string(format!("{mount}{line}/pids.max")).unwrap();
    assert_eq!(max.trim(), "42");
    rt.delete_force(&c.id).ok();
}

#[test]
fn min_and_max_oci_versions_are_accepted() {
    let f = features();
    let rt = Rt::new();
    for key in ["ociVersionMin", "ociVersionMax"] {
        let mut b = Bundle::new(&["true"]);
        b.config["ociVersion"] = f[key].clone();
        rt.run_new(&b).ok();
    }
}

#[test]
fn every_listed_hook_phase_runs() {
    let f = features();
    let hooks = str_list(&f["hooks"], "hooks");
    let rt = Rt::new();
    let mut b = Bundle::new(&["true"]);
    // bind-mounted at the same path: startContainer runs inside the container's root
    let dir = b.host_dir("hooks");
    let log = dir.join("log");
    fs::write(&log, "").unwrap();
    let script = dir.join("hook.sh");
    write_script(
        &script,
        &format!(
            "#!/bin/sh\ncat >/dev/null\necho \"$1\" >> {}\n",
            log.display()
        ),
    );
    b.add_bind(&dir, dir.to_str().unwrap(), &["rbind", "rw"]);
    let mut hk = json!({});
    for h in &hooks {
        hk[h] = json!([{ "path": script, "args": [script, h] }]);
    }
    b.config["hooks"] = hk;
    rt.run_new(&b).ok();
    wait_for(WAIT, || {
        fs::read_to_string(&log).unwrap().lines().count() >= hooks.len()
    });
    let ran: BTreeSet<String> = fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|s| s.to_string())
        .collect();
    let listed: BTreeSet<String> = hooks.into_iter().collect();
    assert_eq!(ran, listed, "listed hook phases vs the ones that ran");
}

fn namespace_bundle(types: &[&str]) -> Bundle {
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.set_namespaces(types);
    if types.contains(&"user") {
        b.linux()["uidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
        b.linux()["gidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    }
    if !types.contains(&"uts") {
        // a hostname needs a uts namespace
        b.config.as_object_mut().unwrap().remove("hostname");
    }
    if !types.contains(&"mount") {
        // without a mount namespace the template's mounts would land on the host
        b.config["mounts"] = json!([]);
    }
    b
}

#[test]
fn every_listed_namespace_can_be_created() {
    let f = features();
    let ns = str_list(&f["linux"]["namespaces"], "linux.namespaces");
    let rt = Rt::new();
    // all together
    let all: Vec<&str> = ns.iter().map(|s| s.as_str()).collect();
    let b = namespace_bundle(&all);
    let c = rt.start_ok(&b);
    for t in &all {
        assert_ne!(
            ns_link(c.pid, ns_file(t)),
            host_ns(ns_file(t)),
            "{t}: not a new namespace"
        );
    }
    rt.delete_force(&c.id).ok();
    // each alone (plus mount, which keeps the template's mounts off the host)
    for t in &all {
        let types: Vec<&str> = if *t == "mount" {
            vec!["mount"]
        } else {
            vec!["mount", t]
        };
        let mut b = namespace_bundle(&types);
        // only the namespace matters here: no mounts that need other namespaces (proc
        // needs the pid namespace's owner, sysfs the network's, ...)
        b.config["mounts"] = json!([{ "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] }]);
        b.linux()["maskedPaths"] = json!([]);
        b.linux()["readonlyPaths"] = json!([]);
        let c = rt.start_ok(&b);
        assert_ne!(
            ns_link(c.pid, ns_file(t)),
            host_ns(ns_file(t)),
            "{t}: not a new namespace"
        );
        rt.delete_force(&c.id).ok();
    }
}

#[test]
fn every_listed_capability_is_accepted_and_applied() {
    let f = features();
    let caps = str_list(&f["linux"]["capabilities"], "linux.capabilities");
    let last: u32 = fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        caps.len() as u32,
        last + 1,
        "the kernel knows {} capabilities, features lists {}",
        last + 1,
        caps.len()
    );
    // names -> numbers: the listed names, in the kernel's numbering, via capsh-free
    // lookup in the order of linux/capability.h
    let number = |name: &str| -> u32 {
        CAP_NAMES
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("{name} is not a Linux capability name")) as u32
    };
    let full = if last >= 63 {
        u64::MAX
    } else {
        (1u64 << (last + 1)) - 1
    };
    let listed: Vec<u32> = caps.iter().map(|c| number(c)).collect();
    assert_eq!(
        cap_mask(&listed),
        full,
        "features must list every kernel capability"
    );
    // the container can only get what this (test) process has in its bounding set
    let ours = proc_caps(std::process::id() as i32, "CapBnd");
    let grantable: Vec<&String> = caps
        .iter()
        .filter(|c| ours & (1u64 << number(c)) != 0)
        .collect();
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.process()["capabilities"] = json!({
        "bounding": caps, "effective": grantable, "permitted": grantable,
        "inheritable": grantable, "ambient": grantable
    });
    let c = rt.start_ok(&b);
    for field in ["CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"] {
        assert_eq!(proc_caps(c.pid, field), full & ours, "{field}");
    }
}

/// linux/capability.h order.
const CAP_NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// One container with one bind mount per listed option (rbind + the option, so that a
/// submount shows the recursive ones), then the visible effects in mountinfo.
#[test]
fn every_listed_mount_option_is_accepted() {
    let f = features();
    // idmap/ridmap need a user namespace with mappings: idmap_claim_holds and tests/idmap.rs
    // check those two; tmpcopyup is for tmpfs mounts (tests/rootfs.rs checks it).
    let opts: Vec<String> = str_list(&f["mountOptions"], "mountOptions")
        .into_iter()
        .filter(|o| o != "idmap" && o != "ridmap" && o != "tmpcopyup")
        .collect();
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    let src = b.host_dir("src");
    fs::write(src.join("file"), "x").unwrap();
    let sub = src.join("sub");
    fs::create_dir(&sub).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &sub,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=64k"),
    )
    .expect("mount a tmpfs submount on the host");
    let dest = |o: &str| format!("/tmp/mnt-opt/{o}");
    for o in &opts {
        let mut list = vec![o.as_str()];
        if o != "bind" && o != "rbind" {
            list.insert(0, "rbind");
        }
        // remount changes what is mounted there already: an earlier entry.
        if o == "remount" {
            b.add_bind(&src, &dest(o), &["rbind"]);
            list.push("ro");
        }
        b.add_bind(&src, &dest(o), &list);
    }
    let c = rt.start_ok(&b);
    let m = |o: &str| {
        find_mount(c.pid, &dest(o)).unwrap_or_else(|| panic!("no mount at {} ({o})", dest(o)))
    };
    let ms = |o: &str| find_mount(c.pid, &format!("{}/sub", dest(o)));
    let has = |o: &str| opts.iter().any(|x| x == o);
    // per-mount flags visible in mountinfo
    for (o, flag) in [
        ("ro", "ro"),
        ("nosuid", "nosuid"),
        ("nodev", "nodev"),
        ("noexec", "noexec"),
        ("noatime", "noatime"),
        ("nodiratime", "nodiratime"),
        ("nosymfollow", "nosymfollow"),
    ] {
        if has(o) {
            assert!(m(o).has_opt(flag), "{o}: {}", m(o).line);
        }
    }
    if has("rw") {
        assert!(!m("rw").is_ro(), "rw: {}", m("rw").line);
    }
    // The remount entry made the earlier bind read-only.
    if has("remount") {
        assert!(m("remount").is_ro(), "remount: {}", m("remount").line);
    }
    // recursive variants reach the submount; the plain ones need not
    for (o, flag) in [
        ("rro", "ro"),
        ("rnosuid", "nosuid"),
        ("rnodev", "nodev"),
        ("rnoexec", "noexec"),
        ("rnoatime", "noatime"),
        ("rnosymfollow", "nosymfollow"),
    ] {
        if has(o) {
            assert!(m(o).has_opt(flag), "{o}: {}", m(o).line);
            let s = ms(o).unwrap_or_else(|| panic!("{o}: submount missing"));
            assert!(s.has_opt(flag), "{o} should reach the submount: {}", s.line);
        }
    }
    if has("bind") {
        assert!(ms("bind").is_none(), "bind (not rbind) copied the submount");
    }
    if has("rbind") {
        assert!(ms("rbind").is_some(), "rbind lost the submount");
    }
    // propagation
    if has("shared") {
        assert!(
            m("shared").line.contains(" shared:"),
            "shared: {}",
            m("shared").line
        );
    }
    if has("unbindable") {
        assert!(
            m("unbindable").line.contains(" unbindable"),
            "unbindable: {}",
            m("unbindable").line
        );
    }
    if has("private") {
        let l = &m("private").line;
        assert!(
            !l.contains(" shared:") && !l.contains(" master:"),
            "private: {l}"
        );
    }
    // the file is there through every mount
    for o in &opts {
        assert_eq!(
            read_in_container(c.pid, &format!("{}/file", dest(o))).as_deref(),
            Some("x"),
            "{o}"
        );
    }
}

/// `ro` / `rro` effects seen from inside: writes fail on the mount (and the submount).
#[test]
fn ro_and_rro_are_enforced() {
    let rt = Rt::new();
    let mut b = Bundle::sh(
        "touch /tmp/ro/new 2>/dev/null && echo ro-writable; \
         touch /tmp/ro/sub/new 2>/dev/null && echo ro-sub-writable; \
         touch /tmp/rro/new 2>/dev/null && echo rro-writable; \
         touch /tmp/rro/sub/new 2>/dev/null && echo rro-sub-writable; \
         echo done",
    );
    let src = b.host_dir("src");
    let sub = src.join("sub");
    fs::create_dir(&sub).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &sub,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=64k"),
    )
    .unwrap();
    b.add_bind(&src, "/tmp/ro", &["rbind", "ro"]);
    b.add_bind(&src, "/tmp/rro", &["rbind", "rro"]);
    let out = rt.run_stdout(&b);
    // (plain `ro` need not reach the submount: runc's is not recursive)
    let lines: BTreeSet<&str> = out.lines().collect();
    assert!(lines.contains("done"), "{out:?}");
    for bad in ["ro-writable", "rro-writable", "rro-sub-writable"] {
        assert!(!lines.contains(bad), "{bad}: {out:?}");
    }
}

/// A feature marked enabled=false must be refused at create with an error naming it.
#[track_caller]
fn assert_refused(ptr: &str, needle: &str, apply: impl Fn(&mut Bundle)) {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    apply(&mut b);
    let id = rt.new_id();
    let o = rt.create(&b, &id, &[]);
    assert!(
        !o.success(),
        "features says {ptr} = false, but a config using it was accepted by create"
    );
    o.fails_with(&[]);
    assert!(
        o.stderr.to_lowercase().contains(needle),
        "the error should name {needle}: {:?}",
        o.stderr
    );
    rt.assert_no_leftovers(&id, &b, &[]);
}

fn seccomp_deny_mkdir(b: &mut Bundle) {
    b.linux()["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1 }]
    });
}

/// seccomp: enabled=false -> refused; enabled=true -> a simple filter applies.
#[test]
fn seccomp_claim_holds() {
    let f = features();
    if !enabled(&f, "/linux/seccomp/enabled") {
        assert_refused("linux.seccomp.enabled", "seccomp", seccomp_deny_mkdir);
        return;
    }
    let rt = Rt::new();
    let mut b = Bundle::sh("mkdir /tmp/x 2>/dev/null && echo mkdir-worked; echo done");
    seccomp_deny_mkdir(&mut b);
    assert_eq!(rt.run_stdout(&b), "done\n");
}

#[test]
fn apparmor_claim_holds() {
    if enabled(&features(), "/linux/apparmor/enabled") {
        return; // no AppArmor on this host to check a profile against
    }
    assert_refused("linux.apparmor.enabled", "apparmor", |b| {
        b.process()["apparmorProfile"] = json!("rt-test-profile");
    });
}

#[test]
fn selinux_claim_holds() {
    if enabled(&features(), "/linux/selinux/enabled") {
        return; // no SELinux on this host
    }
    assert_refused("linux.selinux.enabled", "selinux", |b| {
        b.process()["selinuxLabel"] = json!("system_u:system_r:container_t:s0");
    });
}

#[test]
fn idmap_claim_holds() {
    if enabled(&features(), "/linux/mountExtensions/idmap/enabled") {
        // Claimed: an idmapped bind must work (tests/idmap.rs checks the mapping itself).
        let rt = Rt::new();
        let mut b = Bundle::sh("stat -c %u /tmp/idm");
        b.add_namespace("user", None);
        b.linux()["uidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
        b.linux()["gidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
        let src = b.host_dir("idmap-src");
        b.add_bind(&src, "/tmp/idm", &["rbind", "idmap"]);
        assert_eq!(rt.run_stdout(&b).trim(), "0");
        return;
    }
    assert_refused("linux.mountExtensions.idmap.enabled", "idmap", |b| {
        let src = b.host_dir("idmap-src");
        b.add_bind(&src, "/idmapped", &["rbind", "idmap"]);
    });
}
