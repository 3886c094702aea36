//! Idmapped bind mounts (runtime-spec 1.2: mount uidMappings/gidMappings, `idmap`/`ridmap`):
//! ids are translated through the mapping both ways, checked from the host with stat.

mod common;
use common::*;

use serde_json::json;
use std::fs;
use std::os::unix::fs::MetadataExt;

fn userns_bundle(script: &str) -> Bundle {
    let mut b = Bundle::sh(script);
    b.add_namespace("user", None);
    b.linux()["uidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    b.linux()["gidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    b
}

fn chown(p: &std::path::Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
}

/// `idmap` with the container's own mappings: host root's files are root's in the container,
/// and what the container's root writes lands as host root, where a plain bind shows the
/// overflow id and refuses the write.
#[test]
fn idmap_with_the_containers_mappings() {
    let rt = Rt::new();
    let mut b = userns_bundle(
        "stat -c %u:%g /tmp/idm/f /tmp/plain/f; touch /tmp/idm/new && echo IDM-WRITE; \
         touch /tmp/plain/new 2>/dev/null || echo PLAIN-DENIED",
    );
    let vol = b.host_dir("vol");
    fs::write(vol.join("f"), "x").unwrap();
    chown(&vol, 0, 0);
    chown(&vol.join("f"), 0, 0);
    b.add_bind(&vol, "/tmp/idm", &["rbind", "idmap"]);
    b.add_bind(&vol, "/tmp/plain", &["rbind"]);
    let out = rt.run_stdout(&b);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0:0", "{out:?}");
    assert_eq!(lines[1], "65534:65534", "{out:?}");
    assert!(
        out.contains("IDM-WRITE") && out.contains("PLAIN-DENIED"),
        "{out:?}"
    );
    let m = fs::metadata(vol.join("new")).unwrap();
    assert_eq!(
        (m.uid(), m.gid()),
        (0, 0),
        "written through the idmapped mount"
    );
}

/// Mappings of the mount's own: a host file of uid 123 shows as 123 in the container (0 in
/// the container is 100000 on the host; the mount maps on-disk 123 to 100123).
#[test]
fn mount_specific_mappings() {
    let rt = Rt::new();
    let mut b = userns_bundle("stat -c %u:%g /tmp/m/f; touch /tmp/m/by-root");
    let vol = b.host_dir("vol");
    fs::write(vol.join("f"), "x").unwrap();
    chown(&vol.join("f"), 123, 456);
    chown(&vol, 0, 0);
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/tmp/m", "type": "bind", "source": vol, "options": ["rbind"],
        "uidMappings": [{ "containerID": 0, "hostID": 100000, "size": 65536 }],
        "gidMappings": [{ "containerID": 0, "hostID": 100000, "size": 65536 }]
    }));
    let out = rt.run_stdout(&b);
    assert_eq!(out.lines().next(), Some("123:456"), "{out:?}");
    let m = fs::metadata(vol.join("by-root")).unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 0));
}

#[test]
fn idmap_without_any_mapping_is_refused() {
    let rt = Rt::new();
    let mut b = Bundle::sh("true");
    let vol = b.host_dir("vol");
    b.add_bind(&vol, "/tmp/idm", &["rbind", "idmap"]);
    let id = rt.new_id();
    rt.run(&b, &id, &[]).fails_with(&["idmap", "uidMappings"]);
    rt.assert_no_leftovers(&id, &b, &[]);
}

#[test]
fn mappings_on_a_non_bind_mount_are_refused() {
    let rt = Rt::new();
    let mut b = userns_bundle("true");
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/tmp/t", "type": "tmpfs", "source": "tmpfs",
        "uidMappings": [{ "containerID": 0, "hostID": 100000, "size": 1 }],
        "gidMappings": [{ "containerID": 0, "hostID": 100000, "size": 1 }]
    }));
    let id = rt.new_id();
    rt.run(&b, &id, &[]).fails_with(&["/tmp/t", "bind"]);
    rt.assert_no_leftovers(&id, &b, &[]);
}

/// Bind sources inside a host directory the container's root cannot search (0700, host root's),
/// as runc allows: rt opens them from the host side. A plain bind of a directory, of a file,
/// of a symlink to a directory, and an idmapped bind all work, and a missing source still
/// fails, naming it.
#[test]
fn bind_sources_behind_a_directory_the_containers_root_cannot_search() {
    use std::os::unix::fs::PermissionsExt;
    let rt = Rt::new();
    let mut b = userns_bundle(
        "cat /tmp/b-dir/f /tmp/b-file /tmp/b-link/f /tmp/b-idm/f; stat -c %u /tmp/b-idm/f",
    );
    let secret = b.host_dir("secret");
    fs::create_dir(secret.join("data")).unwrap();
    fs::write(secret.join("data/f"), "in-dir\n").unwrap();
    fs::write(secret.join("file"), "a-file\n").unwrap();
    std::os::unix::fs::symlink("data", secret.join("link")).unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o700)).unwrap();
    chown(&secret, 0, 0);
    b.add_bind(&secret.join("data"), "/tmp/b-dir", &["rbind", "ro"]);
    b.add_bind(&secret.join("file"), "/tmp/b-file", &["bind"]);
    b.add_bind(&secret.join("link"), "/tmp/b-link", &["rbind"]);
    b.add_bind(&secret.join("data"), "/tmp/b-idm", &["rbind", "idmap"]);
    assert_eq!(rt.run_stdout(&b), "in-dir\na-file\nin-dir\nin-dir\n0\n");

    b.add_bind(&secret.join("missing"), "/tmp/b-missing", &["bind"]);
    let id = rt.new_id();
    rt.run(&b, &id, &[])
        .fails_with(&["/tmp/b-missing", "missing"]);
    rt.assert_no_leftovers(&id, &b, &[]);
}
