//! rt as a library: the modules behind the `rt` binary (see docs/ARCHITECTURE.md). The
//! binary is the product; the library exists so fuzz targets and tests can reach the parsers.

pub mod cgroups;
pub mod cgroupv1;
pub mod checkpoint;
pub mod cli;
pub mod console;
pub mod container;
pub mod dbus;
pub mod devices;
pub mod events;
pub mod exec;
pub mod exeguard;
pub mod features;
pub mod hooks;
pub mod logging;
pub mod lsm;
pub mod netdev;
pub mod notify;
pub mod passwd;
pub mod process;
pub mod resources;
pub mod rootfs;
pub mod seccomp;
pub mod security;
pub mod spec;
pub mod state;
pub mod sys;
pub mod systemd;

/// Test builds only: panics at `point` when `RT_TEST_PANIC` names it, so the tests can prove a
/// bug's panic still undoes what the command did (tests/errors.rs). Release builds have none.
#[cfg(debug_assertions)]
pub fn failpoint(point: &str) {
    if std::env::var("RT_TEST_PANIC").is_ok_and(|v| v == point) {
        panic!("RT_TEST_PANIC at {point}");
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn failpoint(_point: &str) {}
