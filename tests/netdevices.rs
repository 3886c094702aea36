//! `linux.netDevices` (runtime-spec 1.3): host interfaces moved into the container's network
//! namespace, renamed, with their permanent global addresses, and up; each checked from outside
//! (`nsenter` into the container's network namespace, the host's /sys/class/net). The devices
//! are veth pairs made for each test (this host's kernel has no dummy driver); when the
//! container's namespace goes, the kernel destroys the moved end and with it its peer.

mod common;
use common::*;

use serde_json::json;
use std::path::Path;
use std::process::Command;

/// A veth pair on the host, deleted on drop if it is still there.
struct Veth(String);

impl Veth {
    fn new() -> Veth {
        // Interface names have at most 15 bytes.
        let id = unique("v").replace('-', "");
        let name = format!("rt{}", &id[id.len().saturating_sub(11)..]);
        sh(&format!("ip link add {name} type veth peer name {name}p"));
        Veth(name)
    }

    fn on_host(&self) -> bool {
        Path::new(&format!("/sys/class/net/{}", self.0)).exists()
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.0])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn sh(cmd: &str) -> String {
    let o = run_cmd(Command::new("sh").args(["-c", cmd]));
    o.ok();
    o.stdout
}

#[test]
fn host_devices_move_in_renamed_with_their_addresses_and_up() {
    let rt = Rt::new();
    let (a, b) = (Veth::new(), Veth::new());
    let n = &a.0;
    sh(&format!(
        "ip addr add 10.77.1.1/24 dev {n} && ip addr add fd00:77::1/64 dev {n} nodad && \
         ip addr add 169.254.77.1/16 scope link dev {n} && ip link set {n} up"
    ));
    let mut bundle = Bundle::new(&["sleep", "1000"]);
    bundle.linux()["netDevices"] = json!({ &a.0: {"name": "ctr0"}, &b.0: {} });
    let c = rt.start_ok(&bundle);
    assert!(!a.on_host() && !b.on_host(), "both left the host");
    let inside = |args: &str| {
        sh(&format!(
            "nsenter --net=/proc/{}/ns/net ip -o {args}",
            c.pid
        ))
    };
    let addrs = inside("addr show ctr0");
    assert!(addrs.contains("inet 10.77.1.1/24"), "{addrs}");
    assert!(addrs.contains("inet6 fd00:77::1/64"), "{addrs}");
    assert!(
        !addrs.contains("169.254.77.1"),
        "a link-scope address stays behind: {addrs}"
    );
    assert!(inside("link show ctr0").contains(",UP"), "ctr0 is up");
    assert!(
        inside(&format!("link show {}", b.0)).contains(",UP"),
        "kept its name"
    );
    rt.delete_force(&c.id).ok();
    // Virtual devices go with the namespace (physical ones would return to the host's).
    assert!(wait_for(WAIT, || !a.on_host()
        && !Path::new(&format!("/sys/class/net/{}p", a.0)).exists()));
}

#[test]
fn bad_net_devices_are_refused_and_leave_the_host_as_it_was() {
    let rt = Rt::new();
    let v = Veth::new();
    sh(&format!("ip link set {} up", v.0));
    let lo_needles = [
        "linux.netDevices",
        v.0.as_str(),
        "a device named lo already",
    ];
    let cases: Vec<(serde_json::Value, bool, &[&str])> = vec![
        (
            json!({"rtnosuchdev0": {}}),
            true,
            &["linux.netDevices", "rtnosuchdev0", "no network device"],
        ),
        (
            json!({ &v.0: {"name": "a/b"} }),
            true,
            &["linux.netDevices", "a/b", "not a valid interface name"],
        ),
        (
            json!({ &v.0: {"name": "x123456789012345"} }),
            true,
            &["not a valid interface name"],
        ),
        (
            json!({ &v.0: {"name": "z0"}, "other0": {"name": "z0"} }),
            true,
            &["would both be"],
        ),
        (
            json!({ &v.0: {} }),
            false,
            &["linux.netDevices", "network namespace"],
        ),
        // The container's namespace has a loopback already.
        (json!({ &v.0: {"name": "lo"} }), true, &lo_needles),
    ];
    for (devices, netns, needles) in cases {
        let mut b = Bundle::new(&["true"]);
        b.linux()["netDevices"] = devices.clone();
        if !netns {
            b.remove_namespace("network");
        }
        let id = rt.new_id();
        rt.create(&b, &id, &[]).fails_with(needles);
        rt.assert_no_leftovers(&id, &b, &[]);
        assert!(v.on_host(), "{devices}: the device stays on the host");
        let flags = std::fs::read_to_string(format!("/sys/class/net/{}/flags", v.0)).unwrap();
        let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap();
        assert!(flags & 1 != 0, "{devices}: still up");
    }
}

#[test]
fn features_lists_net_devices() {
    let rt = Rt::new();
    let f: serde_json::Value = serde_json::from_str(&rt.cmd(&["features"]).ok().stdout).unwrap();
    assert_eq!(f["linux"]["netDevices"]["enabled"], true);
}

/// In a container with a user namespace of its own (its network namespace belongs to it), and
/// into a network namespace joined by path, the same.
#[test]
fn devices_reach_a_user_namespaced_container_and_a_joined_namespace() {
    let rt = Rt::new();
    let (a, b) = (Veth::new(), Veth::new());
    sh(&format!("ip addr add 10.77.2.1/24 dev {}", a.0));
    let mut owner = Bundle::new(&["sleep", "1000"]);
    owner.add_namespace("user", None);
    owner.linux()["uidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    owner.linux()["gidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    owner.linux()["netDevices"] = json!({ &a.0: {"name": "eth1"} });
    let c = rt.start_ok(&owner);
    let inside = |pid: i32, dev: &str| {
        sh(&format!(
            "nsenter --net=/proc/{pid}/ns/net ip -o addr show {dev}; nsenter --net=/proc/{pid}/ns/net ip -o link show {dev}"
        ))
    };
    let seen = inside(c.pid, "eth1");
    assert!(
        seen.contains("inet 10.77.2.1/24") && seen.contains(",UP"),
        "{seen}"
    );

    let mut joiner = Bundle::new(&["sleep", "1000"]);
    joiner.add_namespace("network", Some(&format!("/proc/{}/ns/net", c.pid)));
    joiner.linux()["netDevices"] = json!({ &b.0: {"name": "eth2"} });
    let j = rt.start_ok(&joiner);
    assert!(
        inside(c.pid, "eth2").contains(",UP"),
        "moved into the joined namespace"
    );
    rt.delete_force(&j.id).ok();
    rt.delete_force(&c.id).ok();
}
