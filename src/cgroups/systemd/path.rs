//! `linux.cgroupsPath` in systemd's `slice:prefix:name` form, and slices expanded as systemd
//! nests them.

use anyhow::{Result, bail};

/// `linux.cgroupsPath` under the systemd driver: `slice:prefix:name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupsPath {
    pub slice: String,
    pub prefix: String,
    pub name: String,
}

impl CgroupsPath {
    /// runc's rules: empty means `<default slice>:rt:<id>`; an empty slice is the default one
    /// (system.slice for root, user.slice for a user's manager).
    pub fn parse(path: Option<&str>, id: &str, user: bool) -> Result<CgroupsPath> {
        let default_slice = if user { "user.slice" } else { "system.slice" };
        let path = path.unwrap_or("");
        if path.is_empty() {
            // An id may hold '+', which unit names can't: escaped as systemd-escape does.
            let name = id
                .chars()
                .map(|c| match c {
                    c if unit_char(c) && c != '\\' => c.to_string(),
                    c => format!("\\x{:02x}", c as u32),
                })
                .collect();
            return Ok(CgroupsPath {
                slice: default_slice.into(),
                prefix: "rt".into(),
                name,
            });
        }
        let parts: Vec<&str> = path.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            bail!(
                "config.json: linux.cgroupsPath {path:?}: the systemd cgroup driver wants slice:prefix:name (e.g. system.slice:rt:{id})"
            );
        };
        let bad = |what: &str| anyhow::anyhow!("config.json: linux.cgroupsPath {path:?}: {what}");
        if name.is_empty() {
            return Err(bad("the name (after the second ':') is empty"));
        }
        for (part, what) in [(prefix, "prefix"), (name, "name")] {
            if !part.chars().all(unit_char) {
                return Err(bad(&format!(
                    "the {what} {part:?} may only hold letters, digits and :_.\\-"
                )));
            }
        }
        let slice = if slice.is_empty() {
            default_slice
        } else {
            slice
        };
        expand_slice(slice).map_err(|e| bad(&format!("{e:#}")))?;
        if name.ends_with(".slice") {
            expand_slice(name).map_err(|e| bad(&format!("{e:#}")))?;
        }
        Ok(CgroupsPath {
            slice: slice.into(),
            prefix: prefix.into(),
            name: name.into(),
        })
    }

    /// The unit rt asks for: a scope `prefix-name.scope`, or the slice itself when the name
    /// is one (runc's convention).
    pub fn unit(&self) -> String {
        if self.name.ends_with(".slice") {
            self.name.clone()
        } else if self.prefix.is_empty() {
            format!("{}.scope", self.name)
        } else {
            format!("{}-{}.scope", self.prefix, self.name)
        }
    }
}

/// The characters systemd accepts in a unit name.
fn unit_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || ":-_.\\".contains(c)
}

/// Whether a cgroupfs-driver cgroupsPath is really meant for systemd (`system.slice:x:y`):
/// such a path would otherwise become a directory with colons in its name.
pub fn looks_like_systemd_path(p: &str) -> bool {
    let parts: Vec<&str> = p.split(':').collect();
    parts.len() == 3 && !p.contains('/') && (parts[0].is_empty() || parts[0].ends_with(".slice"))
}

/// A slice's cgroup path: `a-b.slice` nests as `/a.slice/a-b.slice`; `-.slice` is the root.
pub fn expand_slice(slice: &str) -> Result<String> {
    let bad = || anyhow::anyhow!("{slice:?} is not a valid slice name");
    let stem = slice.strip_suffix(".slice").ok_or_else(bad)?;
    if stem.is_empty() || slice.contains('/') || !slice.chars().all(unit_char) {
        return Err(bad());
    }
    if stem == "-" {
        return Ok("/".into());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        if part.is_empty() {
            return Err(bad());
        }
        path.push('/');
        path.push_str(&prefix);
        path.push_str(part);
        path.push_str(".slice");
        prefix.push_str(part);
        prefix.push('-');
    }
    Ok(path)
}
