//! The container's cgroup: made by the kernel's files (`v2`, with `v1` beside it on hybrid and
//! v1 hosts) or by systemd (`systemd`, a transient unit), given its limits (`resources`) and
//! device filter (`devices`), and read back for `events` (`stats`).

pub mod devices;
pub mod resources;
pub mod stats;
pub mod systemd;
pub mod v1;
pub mod v2;
