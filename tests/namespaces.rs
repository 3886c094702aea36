//! Namespaces: new vs shared (compared by /proc/<pid>/ns/* inode), joining by path,
//! user/time namespaces, hostname/domainname, cgroup namespace.
mod common;
use common::*;
use serde_json::json;
use std::process::Command;

/// The template's namespaces are new, the absent ones (user, time) shared.
#[test]
fn template_namespaces_new_and_absent_ones_shared() {
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let c = rt.start_ok(&b);
    let new = b.namespace_types();
    for t in ALL_NS_TYPES {
        let f = ns_file(t);
        let (cns, hns) = (ns_link(c.pid, f), host_ns(f));
        if new.iter().any(|n| n == t) {
            assert_ne!(cns, hns, "{t} namespace should be new");
        } else {
            assert_eq!(
                cns, hns,
                "{t} namespace absent from config must be shared with the host"
            );
        }
    }
}

fn check_only_this_one_shared(shared: &str) {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.remove_namespace(shared);
    let c = rt.start_ok(&b);
    let f = ns_file(shared);
    assert_eq!(
        ns_link(c.pid, f),
        host_ns(f),
        "{shared} absent from config must be shared"
    );
    for t in b.namespace_types() {
        let f = ns_file(&t);
        assert_ne!(ns_link(c.pid, f), host_ns(f), "{t} should still be new");
    }
}

#[test]
fn absent_pid_namespace_is_shared() {
    check_only_this_one_shared("pid");
}

#[test]
fn absent_network_namespace_is_shared() {
    check_only_this_one_shared("network");
}

#[test]
fn absent_ipc_namespace_is_shared() {
    check_only_this_one_shared("ipc");
}

#[test]
fn absent_uts_namespace_is_shared() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.remove_namespace("uts");
    b.config.as_object_mut().unwrap().remove("hostname");
    let c = rt.start_ok(&b);
    assert_eq!(ns_link(c.pid, "uts"), host_ns("uts"));
    assert_ne!(ns_link(c.pid, "net"), host_ns("net"));
}

#[test]
fn absent_cgroup_namespace_is_shared() {
    check_only_this_one_shared("cgroup");
}

#[test]
fn pid_namespace_init_is_pid_1() {
    let rt = Rt::new();
    let b = Bundle::sh("echo $$");
    let out = rt.run_stdout(&b);
    assert_eq!(out, "1\n");
}

#[test]
fn join_network_namespace_of_helper_by_path() {
    let rt = Rt::new();
    let helper = Helper::spawn(Command::new("unshare").args(["--net", "sleep", "1000"]));
    let hp = helper.pid();
    assert!(
        wait_for(WAIT, || cmdline(hp) == ["sleep", "1000"]),
        "helper did not start"
    );
    let helper_net = ns_link(hp, "net");
    assert_ne!(helper_net, host_ns("net"));

    let mut b = Bundle::new(&["sleep", "1000"]);
    b.add_namespace("network", Some(&format!("/proc/{hp}/ns/net")));
    let c = rt.start_ok(&b);
    assert_eq!(
        ns_link(c.pid, "net"),
        helper_net,
        "did not join the helper's netns"
    );
}

/// A network namespace owned by the host's user namespace (the host's own, as with
/// `/proc/1/ns/net`, or a `unshare --net` one) joined by a container that creates its own user
/// namespace: it must be joined while rt still has the host's privileges over it, and sysfs,
/// which the new user namespace may not mount for a netns it doesn't own, comes from the host.
#[test]
fn join_host_owned_network_namespace_from_a_new_user_namespace() {
    let rt = Rt::new();
    for unshare_net in [false, true] {
        let mut cmd = Command::new(if unshare_net { "unshare" } else { "sleep" });
        if unshare_net {
            cmd.args(["--net", "sleep", "1000"]);
        } else {
            cmd.arg("1000");
        }
        let helper = Helper::spawn(&mut cmd);
        let hp = helper.pid();
        assert!(
            wait_for(WAIT, || cmdline(hp) == ["sleep", "1000"]),
            "helper did not start"
        );
        let helper_net = ns_link(hp, "net");
        assert_eq!(helper_net == host_ns("net"), !unshare_net);

        // Its /sys mount would fail the create if sysfs were not bound from the host.
        let mut b = Bundle::new(&["sleep", "1000"]);
        b.add_namespace("user", None);
        b.add_namespace("network", Some(&format!("/proc/{hp}/ns/net")));
        b.linux()["uidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
        b.linux()["gidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
        let c = rt.start_ok(&b);
        assert_eq!(ns_link(c.pid, "net"), helper_net, "did not join the netns");
        assert_ne!(ns_link(c.pid, "user"), host_ns("user"));
        assert_eq!(proc_status_nums(c.pid, "Uid"), vec![100000; 4]);
    }
}

#[test]
fn join_network_namespace_of_another_container() {
    let rt = Rt::new();
    let a = Bundle::new(&["sleep", "1000"]);
    let ca = rt.start_ok(&a);
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.add_namespace("network", Some(&format!("/proc/{}/ns/net", ca.pid)));
    let cb = rt.start_ok(&b);
    assert_eq!(ns_link(cb.pid, "net"), ns_link(ca.pid, "net"));
    assert_ne!(ns_link(cb.pid, "net"), host_ns("net"));
    // the other namespaces are still its own
    assert_ne!(ns_link(cb.pid, "uts"), ns_link(ca.pid, "uts"));
}

#[test]
fn join_ipc_and_uts_namespaces_by_path() {
    let rt = Rt::new();
    let mut a = Bundle::new(&["sleep", "1000"]);
    a.config["hostname"] = json!("shared-host");
    let ca = rt.start_ok(&a);
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.config.as_object_mut().unwrap().remove("hostname");
    b.add_namespace("ipc", Some(&format!("/proc/{}/ns/ipc", ca.pid)));
    b.add_namespace("uts", Some(&format!("/proc/{}/ns/uts", ca.pid)));
    let cb = rt.start_ok(&b);
    assert_eq!(ns_link(cb.pid, "ipc"), ns_link(ca.pid, "ipc"));
    assert_eq!(ns_link(cb.pid, "uts"), ns_link(ca.pid, "uts"));
}

#[test]
fn user_namespace_with_mappings() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.add_namespace("user", None);
    b.linux()["uidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    b.linux()["gidMappings"] = json!([{ "containerID": 0, "hostID": 200000, "size": 65536 }]);
    let c = rt.start_ok(&b);
    assert_ne!(ns_link(c.pid, "user"), host_ns("user"));
    let norm = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let uid_map = std::fs::read_to_string(format!("/proc/{}/uid_map", c.pid)).unwrap();
    let gid_map = std::fs::read_to_string(format!("/proc/{}/gid_map", c.pid)).unwrap();
    assert_eq!(norm(uid_map), "0 100000 65536");
    assert_eq!(norm(gid_map), "0 200000 65536");
    // container root is host uid 100000 / gid 200000
    assert_eq!(proc_status_nums(c.pid, "Uid"), vec![100000; 4]);
    assert_eq!(proc_status_nums(c.pid, "Gid"), vec![200000; 4]);
}

#[test]
fn user_namespace_id_inside() {
    let rt = Rt::new();
    let mut b = Bundle::sh("id -u; id -g; cat /proc/self/uid_map");
    b.add_namespace("user", None);
    b.linux()["uidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    b.linux()["gidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    let out = rt.run_stdout(&b);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0");
    assert_eq!(lines[1], "0");
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
}

fn time_ns_bundle(args: &[&str], mono: i64, boot: i64) -> Bundle {
    let mut b = Bundle::new(args);
    b.add_namespace("time", None);
    b.linux()["timeOffsets"] = json!({
        "monotonic": { "secs": mono, "nanosecs": 0 },
        "boottime": { "secs": boot, "nanosecs": 0 }
    });
    b
}

#[test]
fn time_namespace_offsets() {
    let rt = Rt::new();
    let (mono, boot) = (86400 * 7, 86400 * 30);
    let b = time_ns_bundle(&["sleep", "1000"], mono, boot);
    let c = rt.start_ok(&b);
    assert_ne!(
        ns_link(c.pid, "time"),
        host_ns("time"),
        "not in a new time namespace"
    );
    let offs = std::fs::read_to_string(format!("/proc/{}/timens_offsets", c.pid)).unwrap();
    let mut got = std::collections::BTreeMap::new();
    for l in offs.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        got.insert(
            f[0].to_string(),
            (f[1].parse::<i64>().unwrap(), f[2].parse::<i64>().unwrap()),
        );
    }
    assert_eq!(got.get("monotonic"), Some(&(mono, 0)), "{offs}");
    assert_eq!(got.get("boottime"), Some(&(boot, 0)), "{offs}");
}

fn host_uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn time_namespace_shifts_uptime_inside() {
    let rt = Rt::new();
    let boot = 86400 * 30;
    let b = time_ns_bundle(&["cat", "/proc/uptime"], 0, boot);
    let before = host_uptime();
    let out = rt.run_stdout(&b);
    let after = host_uptime();
    let inside: f64 = out
        .split_whitespace()
        .next()
        .expect("uptime")
        .parse()
        .unwrap();
    assert!(
        inside >= before + boot as f64 - 1.0 && inside <= after + boot as f64 + 1.0,
        "uptime inside {inside}, host {before}..{after}, offset {boot}"
    );
}

#[test]
fn hostname_and_domainname() {
    let rt = Rt::new();
    let host_before = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let mut b = Bundle::sh("hostname; cat /proc/sys/kernel/domainname");
    b.config["hostname"] = json!("box-7");
    b.config["domainname"] = json!("example.test");
    let out = rt.run_stdout(&b);
    assert_eq!(out, "box-7\nexample.test\n");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host_before
    );
}

#[test]
fn cgroup_namespace_root_inside() {
    let rt = Rt::new();
    let b = Bundle::sh("grep '^0::' /proc/self/cgroup");
    let out = rt.run_stdout(&b);
    assert_eq!(
        out.trim(),
        "0::/",
        "inside a cgroup ns the own cgroup is the root"
    );

    // without cgroup ns the full path is visible
    let mut b = Bundle::sh("grep '^0::' /proc/self/cgroup");
    b.remove_namespace("cgroup");
    let out = rt.run_stdout(&b);
    assert_eq!(out.trim(), format!("0::{}", b.cgroup));
}

#[test]
fn network_namespace_has_only_loopback() {
    let rt = Rt::new();
    let b = Bundle::sh("ls /sys/class/net");
    let out = rt.run_stdout(&b);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["lo"]);
}

/// A user namespace that does not own the network namespace may not mount a fresh sysfs:
/// rt binds the host's /sys instead (read-only as asked), as runc does.
#[test]
fn user_namespace_without_network_namespace_gets_the_hosts_sysfs() {
    let rt = Rt::new();
    let mut b = Bundle::sh(
        "ls /sys/class >/dev/null && echo SYS-OK; touch /sys/x 2>/dev/null || echo SYS-RO",
    );
    b.add_namespace("user", None);
    b.remove_namespace("network");
    b.linux()["uidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    b.linux()["gidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    let out = rt.run_stdout(&b);
    assert!(out.contains("SYS-OK"), "{out:?}");
    assert!(out.contains("SYS-RO"), "{out:?}");
}

/// Joining another container's user namespace by path (no mappings of its own): the new
/// namespaces are created inside it, and ids are the other container's.
#[test]
fn join_an_existing_user_namespace_by_path() {
    let rt = Rt::new();
    let mut a = Bundle::new(&["sleep", "1000"]);
    a.add_namespace("user", None);
    a.linux()["uidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    a.linux()["gidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    let ca = rt.start_ok(&a);
    let mut b = Bundle::new(&["sleep", "1000"]);
    let path = format!("/proc/{}/ns/user", ca.pid);
    b.add_namespace("user", Some(&path));
    let cb = rt.start_ok(&b);
    assert_eq!(ns_link(cb.pid, "user"), ns_link(ca.pid, "user"));
    assert_ne!(ns_link(cb.pid, "mnt"), ns_link(ca.pid, "mnt"));
    assert_eq!(proc_status_nums(cb.pid, "Uid"), vec![100000; 4]);
    rt.delete_force(&cb.id).ok();
    rt.delete_force(&ca.id).ok();
}

/// Another container's user namespace and the host's network namespace, both by path (as a
/// pod sharing its user namespace but using host networking): only rt's host privileges can
/// join the host's netns, so it is joined before the user namespace.
#[test]
fn join_another_user_namespace_and_the_hosts_network_namespace() {
    let rt = Rt::new();
    let mut a = Bundle::new(&["sleep", "1000"]);
    a.add_namespace("user", None);
    a.linux()["uidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    a.linux()["gidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    let ca = rt.start_ok(&a);
    let helper = Helper::spawn(Command::new("sleep").arg("1000"));
    let hp = helper.pid();
    assert!(wait_for(WAIT, || cmdline(hp) == ["sleep", "1000"]));
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.add_namespace("user", Some(&format!("/proc/{}/ns/user", ca.pid)));
    b.add_namespace("network", Some(&format!("/proc/{hp}/ns/net")));
    let cb = rt.start_ok(&b);
    assert_eq!(ns_link(cb.pid, "user"), ns_link(ca.pid, "user"));
    assert_eq!(ns_link(cb.pid, "net"), host_ns("net"));
    rt.delete_force(&cb.id).ok();
    rt.delete_force(&ca.id).ok();
}

/// A config listing no namespace at all: the container MUST share each of the runtime's
/// (runtime-spec). Without a mount namespace of its own it is chrooted into its rootfs, its
/// mounts are made in ours (visible on the host while it runs), exec lands in the same root,
/// and delete detaches every mount it added.
#[test]
fn no_namespaces_listed_shares_all_and_delete_detaches_its_mounts() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.private_rootfs();
    b.linux()["namespaces"] = serde_json::json!([]);
    b.config["hostname"] = serde_json::Value::Null;
    let c = rt.start_ok(&b);
    for t in ["mnt", "pid", "net", "ipc", "uts", "cgroup", "user"] {
        assert_eq!(
            std::fs::read_link(format!("/proc/{}/ns/{t}", c.pid)).unwrap(),
            std::fs::read_link(format!("/proc/self/ns/{t}")).unwrap(),
            "{t} namespace"
        );
    }
    let root = std::fs::read_link(format!("/proc/{}/root", c.pid)).unwrap();
    assert_eq!(root, b.dir.join("rootfs"));
    let mounted = host_mounts_mentioning(&[b.path()]);
    assert!(!mounted.is_empty(), "its mounts should be in our namespace");
    let out = rt.cmd(&[
        "exec",
        &c.id,
        "sh",
        "-c",
        "cat /etc/passwd | head -1; ls /proc/1/ns >/dev/null && echo proc-ok",
    ]);
    assert_eq!(out.ok().stdout, "root:x:0:0:root:/root:/bin/sh\nproc-ok\n");
    // What its program mounts later (here, through exec) is the container's too.
    rt.cmd(&[
        "exec",
        "--cap",
        "CAP_SYS_ADMIN",
        &c.id,
        "mount",
        "-t",
        "tmpfs",
        "later",
        "/root",
    ])
    .ok();
    assert!(
        host_mounts_mentioning(&[b.path()])
            .iter()
            .any(|m| m.contains("/rootfs/root ")),
        "the later mount should show in our namespace"
    );
    rt.delete_force(&c.id).ok();
    rt.assert_no_leftovers(&c.id, &b, &[]);
    assert!(host_mounts_mentioning(&[b.path()]).is_empty());
}
