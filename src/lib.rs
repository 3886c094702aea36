//! rt as a library: the modules behind the `rt` binary (see docs/ARCHITECTURE.md). The
//! binary is the product; the library exists so fuzz targets and tests can reach the parsers.

pub mod cgroups;
pub mod cgroupv1;
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
