//! rt as a library: the modules behind the `rt` binary (see docs/ARCHITECTURE.md). The
//! binary is the product; the library exists so fuzz targets and tests can reach the parsers.
//!
//! Read it top down: `cli` parses runc's command line and calls a lifecycle operation in
//! `container`; those read the bundle (`spec`), keep `state`, make the cgroup (`cgroups`) and
//! start the init (`process`), which sets up the rootfs and security and execs. `sys` wraps
//! the raw syscalls underneath all of them.

pub mod cgroups;
pub mod cli;
pub mod container;
pub mod features;
pub mod hooks;
pub mod logging;
pub mod notify;
pub mod passwd;
pub mod process;
pub mod spec;
pub mod state;
pub mod sys;

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
