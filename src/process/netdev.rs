//! `linux.netDevices` (runtime-spec 1.3): host network interfaces moved into the container's
//! network namespace, renamed if asked, with their addresses, and brought up. A small
//! rtnetlink client of rt's own: a handful of fixed-layout messages, no library needed.
//!
//! Nothing is moved back on delete: when the namespace goes, the kernel returns physical
//! devices to the host's and destroys virtual ones, as the spec says.

use anyhow::{Context, Result, bail};
use oci_spec::runtime::LinuxNetDevice;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Checked at create: the names the kernel would take (dev_valid_name: at most 15 bytes, no
/// '/', ':' or whitespace, not "." or ".."), each container name once, a network namespace to
/// move them into, and privileges over the host's devices.
pub fn check(devices: &HashMap<String, LinuxNetDevice>, has_netns: bool) -> Result<()> {
    if devices.is_empty() {
        return Ok(());
    }
    if !has_netns {
        bail!(
            "config.json: linux.netDevices: devices can only be moved into a network namespace, and linux.namespaces has none"
        );
    }
    if crate::sys::rootless() || crate::sys::in_user_namespace() {
        bail!(
            "config.json: linux.netDevices: moving the host's network devices needs root on the host"
        );
    }
    let mut targets: HashMap<&str, &str> = HashMap::new();
    for (host, d) in devices {
        let target = d.name().as_deref().unwrap_or(host);
        for n in [host.as_str(), target] {
            if !valid_name(n) {
                bail!(
                    "config.json: linux.netDevices: {n:?} is not a valid interface name (1 to 15 bytes, no '/', ':' or whitespace)"
                );
            }
        }
        if let Some(other) = targets.insert(target, host) {
            bail!(
                "config.json: linux.netDevices: {other:?} and {host:?} would both be {target:?} in the container"
            );
        }
    }
    Ok(())
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() < libc::IFNAMSIZ
        && n != "."
        && n != ".."
        && !n
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace())
}

/// Moves each device into the network namespace `netns` (an fd of it), in name order.
pub fn move_all(devices: &HashMap<String, LinuxNetDevice>, netns: &OwnedFd) -> Result<()> {
    let mut names: Vec<&String> = devices.keys().collect();
    names.sort();
    for host in names {
        let target = devices[host].name().as_deref().unwrap_or(host);
        move_one(host, target, netns).with_context(|| format!("linux.netDevices: {host}"))?;
    }
    Ok(())
}

/// An address to take along: the attributes it had, less its label (which names the old
/// interface).
struct Addr {
    family: u8,
    prefixlen: u8,
    attrs: Vec<(u16, Vec<u8>)>,
}

fn move_one(host: &str, target: &str, netns: &OwnedFd) -> Result<()> {
    let index = if_index(host).with_context(|| format!("no network device {host} on the host"))?;
    // The kernel moves the device before it renames it, and a failed rename leaves it moved:
    // a name the container's namespace has already is refused first.
    if in_netns(netns, || Ok(if_index(target).is_ok()))? {
        bail!("the container's network namespace has a device named {target} already");
    }
    let was_up = crate::sys::read_to_string(format!("/sys/class/net/{host}/flags"))
        .ok()
        .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
        .is_some_and(|f| f & libc::IFF_UP as u32 != 0);
    let mut nl = Netlink::open()?;
    // Listed while it is up: setting it down flushes its IPv6 addresses (unless the host set
    // keep_addr_on_down).
    let addrs = nl.addresses(index).context("list its addresses")?;
    // Down, as runc does: nothing on the host keeps using it while it changes.
    nl.set_up(index, false).context("set it down")?;
    // Renamed and moved in one request, so the new name never meets the host's names.
    let mut m = Msg::new(libc::RTM_NEWLINK, libc::NLM_F_ACK);
    m.ifinfo(index, 0, 0);
    m.attr(libc::IFLA_IFNAME, &nul_terminated(target));
    m.attr(
        libc::IFLA_NET_NS_FD,
        &(netns.as_raw_fd() as u32).to_ne_bytes(),
    );
    if let Err(e) = nl.call(m) {
        // Still the host's: left as it was found.
        if was_up {
            let _ = nl.set_up(index, true);
        }
        return Err(e).with_context(|| {
            format!("move it into the container's network namespace as {target}")
        });
    }
    // The kernel drops a device's addresses when it changes namespace: those the host gave it
    // (permanent, global scope) are added again there; dynamic and link-scope ones belong to
    // the host's network.
    in_netns(netns, || {
        let index = if_index(target)
            .with_context(|| format!("{target} is not in the container's network namespace"))?;
        let mut nl = Netlink::open()?;
        for a in &addrs {
            let mut m = Msg::new(
                libc::RTM_NEWADDR,
                libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL,
            );
            m.ifaddr(a.family, a.prefixlen, index);
            for (t, v) in &a.attrs {
                m.attr(*t, v);
            }
            nl.call(m).context("add its address back")?;
        }
        nl.set_up(index, true)
            .with_context(|| format!("set {target} up"))
    })
}

fn nul_terminated(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn if_index(name: &str) -> Result<u32> {
    let c = crate::sys::cstr(name)?;
    // SAFETY: c is NUL-terminated.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(std::io::Error::last_os_error().into()),
        i => Ok(i),
    }
}

/// Runs `f` with rt in the network namespace `ns`, then returns rt to its own. rt is
/// single-threaded, so the whole process switches; sockets made meanwhile stay in `ns`.
fn in_netns<T>(ns: &OwnedFd, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let home = crate::sys::open(
        std::path::Path::new("/proc/thread-self/ns/net"),
        libc::O_RDONLY,
        0,
    )
    .context("open rt's network namespace")?;
    crate::sys::setns(ns.as_raw_fd(), libc::CLONE_NEWNET)
        .context("enter the container's network namespace")?;
    let r = f();
    crate::sys::setns(home.as_raw_fd(), libc::CLONE_NEWNET)
        .context("return to rt's network namespace")?;
    r
}

const NLMSG_HDRLEN: usize = 16;

/// One request: nlmsghdr, a fixed header, then attributes, each 4-byte aligned.
struct Msg(Vec<u8>);

impl Msg {
    fn new(typ: u16, flags: i32) -> Msg {
        let mut b = vec![0u8; NLMSG_HDRLEN];
        b[4..6].copy_from_slice(&typ.to_ne_bytes());
        b[6..8].copy_from_slice(&((libc::NLM_F_REQUEST | flags) as u16).to_ne_bytes());
        Msg(b)
    }

    /// struct ifinfomsg: family, type, index, flags, change.
    fn ifinfo(&mut self, index: u32, flags: u32, change: u32) {
        self.0.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
        self.0.extend_from_slice(&index.to_ne_bytes());
        self.0.extend_from_slice(&flags.to_ne_bytes());
        self.0.extend_from_slice(&change.to_ne_bytes());
    }

    /// struct ifaddrmsg: family, prefix length, flags, scope, index.
    fn ifaddr(&mut self, family: u8, prefixlen: u8, index: u32) {
        self.0.extend_from_slice(&[family, prefixlen, 0, 0]);
        self.0.extend_from_slice(&index.to_ne_bytes());
    }

    fn attr(&mut self, typ: u16, data: &[u8]) {
        let len = 4 + data.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&typ.to_ne_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().next_multiple_of(4), 0);
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.0[0..4].copy_from_slice(&len.to_ne_bytes());
        self.0[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.0
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A run of attributes, as after a message's fixed header.
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while let (Some(len), Some(typ)) = (u16_at(b, 0), u16_at(b, 2)) {
        let len = len as usize;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((typ, &b[4..len]));
        b = &b[len.next_multiple_of(4).min(b.len())..];
    }
    out
}

struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    /// A NETLINK_ROUTE socket in rt's current network namespace.
    fn open() -> Result<Netlink> {
        // SAFETY: plain socket(2); the fd is owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("netlink socket");
        }
        // SAFETY: fd is a new descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Netlink { fd, seq: 0 })
    }

    /// Sends the request and returns the payloads of the replies (a dump's messages), after
    /// the kernel's acknowledgement or the end of the dump; a netlink error is an io::Error.
    fn call(&mut self, m: Msg) -> Result<Vec<Vec<u8>>> {
        self.seq += 1;
        let req = m.finish(self.seq);
        crate::sys::write_fd(self.fd.as_raw_fd(), &req).context("netlink send")?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            // SAFETY: buf is writable for its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(std::io::Error::last_os_error()).context("netlink receive");
            }
            let mut b = &buf[..n as usize];
            while let (Some(len), Some(typ)) = (u32_at(b, 0), u16_at(b, 4)) {
                let len = len as usize;
                if len < NLMSG_HDRLEN || len > b.len() {
                    bail!("netlink: truncated reply");
                }
                let body = &b[NLMSG_HDRLEN..len];
                match typ as i32 {
                    libc::NLMSG_DONE => return Ok(out),
                    libc::NLMSG_ERROR => {
                        let errno = u32_at(body, 0).map_or(libc::EIO, |e| -(e as i32));
                        if errno == 0 {
                            return Ok(out);
                        }
                        return Err(std::io::Error::from_raw_os_error(errno).into());
                    }
                    _ => out.push(body.to_vec()),
                }
                b = &b[len.next_multiple_of(4).min(b.len())..];
            }
        }
    }

    fn set_up(&mut self, index: u32, up: bool) -> Result<()> {
        let mut m = Msg::new(libc::RTM_NEWLINK, libc::NLM_F_ACK);
        let flag = libc::IFF_UP as u32;
        m.ifinfo(index, if up { flag } else { 0 }, flag);
        self.call(m).map(drop)
    }

    /// The permanent, global-scope addresses of the interface.
    fn addresses(&mut self, index: u32) -> Result<Vec<Addr>> {
        let mut m = Msg::new(libc::RTM_GETADDR, libc::NLM_F_DUMP);
        m.ifaddr(libc::AF_UNSPEC as u8, 0, 0);
        let mut out = Vec::new();
        for body in self.call(m)? {
            let (Some(&family), Some(&prefixlen), Some(&flags8), Some(&scope), Some(idx)) = (
                body.first(),
                body.get(1),
                body.get(2),
                body.get(3),
                u32_at(&body, 4),
            ) else {
                continue;
            };
            let list = attrs(&body[8..]);
            // IFA_FLAGS holds all 32 bits where the kernel sends it; the header's 8 otherwise.
            let flags = list
                .iter()
                .find(|(t, _)| *t == libc::IFA_FLAGS)
                .and_then(|(_, v)| u32_at(v, 0))
                .unwrap_or(flags8 as u32);
            if idx != index
                || flags & libc::IFA_F_PERMANENT == 0
                || scope != libc::RT_SCOPE_UNIVERSE
            {
                continue;
            }
            let attrs = list
                .into_iter()
                .filter(|(t, _)| {
                    [libc::IFA_ADDRESS, libc::IFA_LOCAL, libc::IFA_BROADCAST].contains(t)
                })
                .map(|(t, v)| (t, v.to_vec()))
                .collect();
            out.push(Addr {
                family,
                prefixlen,
                attrs,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_the_kernel_takes_them() {
        for ok in ["eth0", "a", "123456789012345", "net-1.2"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "1234567890123456"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn attributes_parse_back() {
        let mut m = Msg::new(libc::RTM_NEWADDR, 0);
        m.attr(1, &[1, 2, 3]);
        m.attr(2, &[9, 9, 9, 9]);
        let b = m.finish(7);
        let a = attrs(&b[NLMSG_HDRLEN..]);
        assert_eq!(a, vec![(1, &[1u8, 2, 3][..]), (2, &[9u8, 9, 9, 9][..])]);
        assert_eq!(u32_at(&b, 0), Some(b.len() as u32));
        // Truncated input never panics.
        assert!(attrs(&[8, 0, 1]).is_empty());
    }
}
