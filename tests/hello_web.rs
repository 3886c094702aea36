//! The seed article's story: the tiny C web server from bundles/hello-web, run detached by rt,
//! answers Hello World over TCP from the host.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn web_rootfs() -> std::path::PathBuf {
    let p = manifest_dir().join("bundles/hello-web/rootfs");
    assert!(
        p.join("home/tiny").exists(),
        "bundles/hello-web/rootfs is missing: run `make rootfs` first"
    );
    p
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = Vec::new();
    // The server closes right after answering; a reset after the data still leaves the data.
    let _ = s.read_to_end(&mut out);
    (!out.is_empty()).then(|| String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn hello_web_answers_hello_world() {
    let rt = Rt::new();
    let mut b = Bundle::new(&["true"]);
    let sample: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(manifest_dir().join("bundles/hello-web/config.json")).unwrap(),
    )
    .unwrap();
    let port = free_port();
    let cgroup = b.config["linux"]["cgroupsPath"].clone();
    b.config = sample;
    b.config["root"]["path"] = serde_json::json!(web_rootfs());
    b.config["process"]["args"] = serde_json::json!(["/home/tiny", port.to_string()]);
    b.config["linux"]["cgroupsPath"] = cgroup;
    let id = rt.new_id();
    rt.run(&b, &id, &["-d"]).ok();

    let deadline = Instant::now() + Duration::from_secs(5);
    let page = loop {
        if let Some(p) = get(port, "/index.html") {
            break p;
        }
        assert!(Instant::now() < deadline, "the web server never answered");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(page.starts_with("HTTP/1.0 200 OK"), "{page:?}");
    assert!(page.ends_with("Hello World\n"), "{page:?}");
    let missing = get(port, "/nope").unwrap();
    assert!(missing.starts_with("HTTP/1.0 404"), "{missing:?}");

    // It runs as nobody, with no capabilities, in its own pid namespace.
    let pid = rt.pid(&id);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status.lines().any(|l| l.starts_with("Uid:\t65534\t")),
        "{status}"
    );
    assert!(
        status.lines().any(|l| l == "CapEff:\t0000000000000000"),
        "{status}"
    );
    assert_ne!(
        std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap(),
        std::fs::read_link("/proc/self/ns/pid").unwrap()
    );
    rt.delete_force(&id).ok();
    assert!(
        get(port, "/index.html").is_none(),
        "the server outlived delete"
    );
    rt.assert_no_leftovers(&id, &b, &[]);
}
