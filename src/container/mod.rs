//! The lifecycle operations (create, start, state, kill, delete, run, list, ps), each composed
//! from the state directory, the cgroup and the process modules. Each runs under the
//! container's directory lock, so concurrent calls on one id are serialised.

pub mod checkpoint;
pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod kill;
pub mod list;
pub mod pause;
pub mod run;
pub mod start;
pub mod update;

pub use create::{CreateOpts, Created, create};
pub use delete::delete;
pub use kill::kill;
pub use list::{list, pids, state_json};
pub use pause::{pause, resume};
pub use run::{RunWait, run};
pub use start::start;

use std::os::fd::OwnedFd;

use crate::state::State;

/// A pidfd for the state's init, opened and then checked against the recorded start time, so
/// a signal can never reach a process that merely reused the pid.
pub fn init_pidfd(st: &State) -> Option<OwnedFd> {
    if st.pid <= 0 {
        return None;
    }
    let fd = crate::sys::pidfd_open(st.pid).ok()?;
    st.init_alive().then_some(fd)
}
