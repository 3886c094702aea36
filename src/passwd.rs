//! Reading /etc/passwd without NSS: rt is a static binary, and inside the container the file is
//! the image's, so glibc's getpwuid (which may load NSS modules) is not an option either way.

use std::os::fd::AsRawFd;
use std::path::Path;

/// The fields of one /etc/passwd line that rt uses.
pub struct Entry {
    pub name: String,
    pub home: String,
}

/// The entry of `uid` in /etc/passwd of the current root. The file may be an image's: a FIFO
/// or a device there must not block or feed us forever, so only a regular file's first MiB
/// is read.
pub fn lookup(uid: u32) -> Option<Entry> {
    let f = crate::sys::open(
        Path::new("/etc/passwd"),
        libc::O_RDONLY | libc::O_NONBLOCK,
        0,
    )
    .ok()
    .filter(|f| {
        crate::sys::fstat(f.as_raw_fd()).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG)
    })?;
    let text = crate::sys::read_fd_up_to(f.as_raw_fd(), 1 << 20).ok()?;
    find(&String::from_utf8_lossy(&text), uid)
}

fn find(text: &str, uid: u32) -> Option<Entry> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid)).then(|| Entry {
            name: f[0].to_string(),
            home: f[5].to_string(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::find;

    #[test]
    fn finds_by_uid_and_skips_short_lines() {
        let text = "root:x:0:0:root:/root:/bin/sh\nbad:1000\nme:x:1000:1000::/home/me:/bin/sh\n";
        let e = find(text, 1000).expect("entry");
        assert_eq!((e.name.as_str(), e.home.as_str()), ("me", "/home/me"));
        assert_eq!(find(text, 0).expect("root").home, "/root");
        assert!(find(text, 5).is_none());
    }
}
