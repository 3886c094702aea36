//! `rt features`: what this binary implements, in the runtime-spec's features document.
//! Every list is derived from the code that implements it (the option tables, the hook phases,
//! the namespace table), so a claim can't drift from the truth; a test checks the rest.

use crate::hooks::Phase;
use crate::process::rootfs::{FLAG_OPTIONS, IDMAP_OPTIONS, PROPAGATION_OPTIONS, RECURSIVE_OPTIONS};

pub fn document() -> serde_json::Value {
    let mut mount_options: Vec<&str> = FLAG_OPTIONS
        .iter()
        .map(|(n, _, _)| *n)
        .chain(PROPAGATION_OPTIONS.iter().map(|(n, _)| *n))
        .chain(RECURSIVE_OPTIONS.iter().map(|(n, _, _)| *n))
        .chain(IDMAP_OPTIONS.iter().copied())
        .chain(["tmpcopyup"])
        .collect();
    mount_options.sort_unstable();
    let hooks: Vec<&str> = [
        Phase::Prestart,
        Phase::CreateRuntime,
        Phase::CreateContainer,
        Phase::StartContainer,
        Phase::Poststart,
        Phase::Poststop,
    ]
    .iter()
    .map(|p| p.name())
    .collect();
    // Those the running kernel has: a newer one in rt's table would only be skipped.
    let kernel = caps::runtime::thread_all_supported();
    let mut caps: Vec<String> = caps::all()
        .iter()
        .filter(|c| kernel.contains(c))
        .map(|c| c.to_string())
        .collect();
    caps.sort();
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::spec::SPEC_VERSION,
        "hooks": hooks,
        "mountOptions": mount_options,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            // systemd: the --systemd-cgroup driver (src/systemd.rs), on the system manager for
            // root and on the caller's user manager otherwise. rdma: linux.resources.rdma
            // (resources.rs; proven on a soft-RoCE device in the VM, tests/cgroup_v2.rs).
            "cgroup": {"v1": true, "v2": true, "systemd": true, "systemdUser": true, "rdma": true},
            "seccomp": crate::process::security::seccomp::features(),
            "apparmor": {"enabled": crate::process::security::lsm::apparmor_enabled()},
            "selinux": {"enabled": crate::process::security::lsm::selinux_enabled()},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": true}},
            "netDevices": {"enabled": true}
        },
        "annotations": {
            "io.github.rt.version": env!("CARGO_PKG_VERSION"),
            // checkpoint and restore, by the criu binary (as runc's annotation says it).
            "io.github.rt.checkpoint.enabled": "true"
        }
    })
}
