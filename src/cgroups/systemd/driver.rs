//! The systemd driver's side of making a container: the plan checked before anything is
//! touched, and the `Scope` that starts the unit around the init's first process.

use anyhow::{Context, Result, bail};

use super::Manager;
use super::{CgroupsPath, Property, Unit, device_properties, unit_properties, user_manager};

/// What the systemd driver needs to make a container's unit, all checked before anything is
/// touched: the unit's name and slice, which manager, and its properties but its PIDs (the
/// init does not exist yet).
pub struct Plan {
    pub path: CgroupsPath,
    pub user: bool,
    pub props: Vec<Property>,
    device_rules: Option<Vec<crate::cgroups::devices::Rule>>,
}

impl Plan {
    pub fn new(spec: &oci_spec::runtime::Spec, id: &str) -> Result<Plan> {
        let linux = spec.linux().as_ref();
        let user = user_manager();
        let path = CgroupsPath::parse(
            linux
                .and_then(|l| l.cgroups_path().as_deref())
                .and_then(|p| p.to_str()),
            id,
            user,
        )?;
        if crate::cgroups::v2::v2_mount().as_deref() != Some(std::path::Path::new("/sys/fs/cgroup"))
        {
            bail!(
                "--systemd-cgroup: rt's systemd driver needs a host with cgroup v2 alone mounted at /sys/fs/cgroup (as systemd sets up with its unified hierarchy); use the cgroupfs driver here"
            );
        }
        let props = unit_properties(
            &path,
            id,
            linux.and_then(|l| l.resources().as_ref()),
            spec.annotations().as_ref().unwrap_or(&Default::default()),
        )?;
        Ok(Plan {
            path,
            user,
            props,
            device_rules: None,
        })
    }

    /// The unit's device filter: as DeviceAllow properties, and as rt's own eBPF program once
    /// the unit exists. In a user namespace (a user's own rt, or Podman's rootless one) none
    /// can be loaded for a unit, and none is needed: such a container can't make device nodes.
    pub fn filter_devices(&mut self, rules: Option<&[crate::cgroups::devices::Rule]>) {
        if let Some(rules) =
            rules.filter(|_| !crate::sys::rootless() && !crate::sys::in_user_namespace())
        {
            self.props.extend(device_properties(rules));
            self.device_rules = Some(rules.to_vec());
        }
    }

    /// The unit, started with `pid` as its first process, its controllers enabled, the limits
    /// systemd leaves to rt (`on_v2`) written and the device filter attached. A unit that got
    /// this far and then failed is stopped again (Unit's drop).
    pub fn start(&self, pid: i32, on_v2: &[&crate::cgroups::resources::Write]) -> Result<Unit> {
        let manager = Manager::connect(self.user)?;
        let u = Unit::start(manager, &self.path, self.props.clone(), pid)?;
        let mount = crate::cgroups::v2::v2_mount().context("no cgroup v2 mount")?;
        crate::cgroups::v2::enable_controllers(&mount, &u.rel, true);
        crate::cgroups::resources::apply(&mount, &u.rel, on_v2, true)?;
        if let Some(rules) = &self.device_rules {
            crate::cgroups::devices::attach(rules, &mount.join(u.rel.trim_start_matches('/')))?;
        }
        Ok(u)
    }
}

/// A connection to the systemd manager: the system one, or the caller's own user manager
/// (rootless), each over its bus.
/// The systemd driver: a unit started around the init's first process once it exists, with
/// the limits and device filter of `plan` (see Plan::start). Stopped again on drop unless
/// disarmed.
pub struct Scope<'a> {
    plan: &'a Plan,
    on_v2: &'a [&'a crate::cgroups::resources::Write],
    unit: std::cell::RefCell<Option<Unit>>,
}

impl<'a> Scope<'a> {
    pub fn new(plan: &'a Plan, on_v2: &'a [&'a crate::cgroups::resources::Write]) -> Scope<'a> {
        Scope {
            plan,
            on_v2,
            unit: Default::default(),
        }
    }
}

impl crate::cgroups::Driver for Scope<'_> {
    fn clone_into(&self) -> Option<std::os::fd::RawFd> {
        None
    }
    fn adopts(&self) -> bool {
        true
    }
    fn adopt(&self, pid: i32) -> Result<()> {
        *self.unit.borrow_mut() = Some(self.plan.start(pid, self.on_v2)?);
        Ok(())
    }
    fn rel(&self) -> Option<String> {
        self.unit.borrow().as_ref().map(|u| u.rel.clone())
    }
    fn owned(&self) -> bool {
        self.unit.borrow().is_some()
    }
    fn unit(&self) -> Option<(String, bool)> {
        self.unit
            .borrow()
            .as_ref()
            .map(|u| (u.name.clone(), u.user))
    }
    fn disarm(&mut self) {
        if let Some(u) = self.unit.get_mut().as_mut() {
            u.disarm();
        }
    }
}
