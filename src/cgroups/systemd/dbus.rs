//! The few D-Bus calls the systemd driver makes, over one blocking unix socket: SASL EXTERNAL,
//! Hello, method calls and the signals that arrive meanwhile. Only what systemd's manager
//! interface needs is marshalled (little-endian, no fds).
//!
//! Why not a D-Bus library: zbus (the Rust one) was tried first. Its connection runs threads,
//! while rt clones with raw clone3 and relies on being single-threaded; and its code made the
//! static binary a megabyte larger, which on this kernel costs every rt call, systemd or not,
//! about 0.5 MiB of peak RSS and half a millisecond (measured with bench/bench.py).

use anyhow::{Context, Result, bail};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// A value inside a variant, as unit properties use them.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    U8(u8),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(String),
    Strs(Vec<String>),
    U32s(Vec<u32>),
    Bytes(Vec<u8>),
    /// a(ss): DeviceAllow's (path, access) pairs.
    StrPairs(Vec<(String, String)>),
}

impl Value {
    fn signature(&self) -> &'static str {
        match self {
            Value::Bool(_) => "b",
            Value::U8(_) => "y",
            Value::I16(_) => "n",
            Value::U16(_) => "q",
            Value::I32(_) => "i",
            Value::U32(_) => "u",
            Value::I64(_) => "x",
            Value::U64(_) => "t",
            Value::F64(_) => "d",
            Value::Str(_) => "s",
            Value::Strs(_) => "as",
            Value::U32s(_) => "au",
            Value::Bytes(_) => "ay",
            Value::StrPairs(_) => "a(ss)",
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::U64(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Str(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Str(v)
    }
}
impl From<Vec<String>> for Value {
    fn from(v: Vec<String>) -> Value {
        Value::Strs(v)
    }
}
impl From<Vec<u32>> for Value {
    fn from(v: Vec<u32>) -> Value {
        Value::U32s(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Bytes(v)
    }
}
impl From<Vec<(String, String)>> for Value {
    fn from(v: Vec<(String, String)>) -> Value {
        Value::StrPairs(v)
    }
}

/// A message body (or header) under construction: D-Bus aligns every value to its size,
/// counted from the message's start; bodies start 8-aligned, so offsets in here suffice.
#[derive(Default)]
pub struct Body {
    buf: Vec<u8>,
    sig: String,
}

impl Body {
    fn pad(&mut self, align: usize) {
        while !self.buf.len().is_multiple_of(align) {
            self.buf.push(0);
        }
    }
    fn raw_u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn raw_str(&mut self, s: &str) {
        self.raw_u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
    fn raw_sig(&mut self, s: &str) {
        self.buf.push(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
    /// An array: length, padding to the elements' alignment, elements (the length counts
    /// neither the padding before the first element nor itself).
    fn array(&mut self, elem_align: usize, f: impl FnOnce(&mut Body)) {
        self.raw_u32(0);
        let len_at = self.buf.len() - 4;
        self.pad(elem_align);
        let start = self.buf.len();
        f(self);
        let len = (self.buf.len() - start) as u32;
        self.buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
    }
    fn value(&mut self, v: &Value) {
        match v {
            Value::Bool(b) => self.raw_u32(u32::from(*b)),
            Value::U8(x) => self.buf.push(*x),
            Value::I16(x) => {
                self.pad(2);
                self.buf.extend_from_slice(&x.to_le_bytes());
            }
            Value::U16(x) => {
                self.pad(2);
                self.buf.extend_from_slice(&x.to_le_bytes());
            }
            Value::I32(x) => self.raw_u32(*x as u32),
            Value::U32(x) => self.raw_u32(*x),
            Value::I64(x) => {
                self.pad(8);
                self.buf.extend_from_slice(&x.to_le_bytes());
            }
            Value::U64(x) => {
                self.pad(8);
                self.buf.extend_from_slice(&x.to_le_bytes());
            }
            Value::F64(x) => {
                self.pad(8);
                self.buf.extend_from_slice(&x.to_le_bytes());
            }
            Value::Str(s) => self.raw_str(s),
            Value::Strs(v) => self.array(4, |b| v.iter().for_each(|s| b.raw_str(s))),
            Value::U32s(v) => self.array(4, |b| v.iter().for_each(|x| b.raw_u32(*x))),
            Value::Bytes(v) => self.array(1, |b| b.buf.extend_from_slice(v)),
            Value::StrPairs(v) => self.array(8, |b| {
                for (x, y) in v {
                    b.pad(8);
                    b.raw_str(x);
                    b.raw_str(y);
                }
            }),
        }
    }
    fn variant(&mut self, v: &Value) {
        self.raw_sig(v.signature());
        self.value(v);
    }

    pub fn str(mut self, s: &str) -> Body {
        self.raw_str(s);
        self.sig.push('s');
        self
    }
    pub fn bool(mut self, b: bool) -> Body {
        self.raw_u32(u32::from(b));
        self.sig.push('b');
        self
    }
    /// a(sv): unit properties.
    pub fn props(mut self, props: &[(String, Value)]) -> Body {
        self.array(8, |b| {
            for (name, v) in props {
                b.pad(8);
                b.raw_str(name);
                b.variant(v);
            }
        });
        self.sig.push_str("a(sv)");
        self
    }
    /// a(sa(sv)) with no element: StartTransientUnit's auxiliary units.
    pub fn no_aux_units(mut self) -> Body {
        self.array(8, |_| {});
        self.sig.push_str("a(sa(sv))");
        self
    }
}

/// A received message: its header fields that matter here, and its body.
#[derive(Debug, Default)]
pub struct Message {
    pub kind: u8,
    pub reply_serial: Option<u32>,
    pub error_name: Option<String>,
    pub member: Option<String>,
    pub signature: String,
    pub body: Vec<u8>,
}

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
pub const SIGNAL: u8 = 4;

/// Reads values from a received body, in its signature's order.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }
    fn align(&mut self, a: usize) {
        self.pos = self.pos.next_multiple_of(a);
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        let end = end.context("D-Bus message: truncated")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub fn u32(&mut self) -> Result<u32> {
        self.align(4);
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// s or o.
    pub fn str(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        let s = self.take(n)?;
        self.take(1)?;
        String::from_utf8(s.to_vec()).context("D-Bus message: a string is not UTF-8")
    }
    fn sig(&mut self) -> Result<String> {
        let n = self.take(1)?[0] as usize;
        let s = self.take(n)?;
        self.take(1)?;
        String::from_utf8(s.to_vec()).context("D-Bus message: a signature is not UTF-8")
    }
    /// A variant holding a string or object path (None for other types).
    pub fn variant_str(&mut self) -> Result<Option<String>> {
        match self.sig()?.as_str() {
            "s" | "o" => Ok(Some(self.str()?)),
            _ => Ok(None),
        }
    }
}

/// One connection to a bus.
pub struct Bus {
    sock: UnixStream,
    serial: u32,
    /// How long one reply may take.
    timeout: Duration,
    /// Signals that arrived while waiting for a reply.
    queued: VecDeque<Message>,
}

/// The socket path of a `unix:path=...` bus address (the first such entry).
fn socket_path(address: &str) -> Option<String> {
    address.split(';').find_map(|a| {
        let rest = a.strip_prefix("unix:")?;
        rest.split(',')
            .find_map(|kv| kv.strip_prefix("path=").map(unescape))
    })
}

/// D-Bus addresses escape bytes as %XX.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Bus {
    /// The system bus, or the caller's session bus; `uid` is the one the bus will see on the
    /// socket (the host's, for root of a user namespace).
    pub fn connect(session: bool, uid: u32, timeout: Duration) -> Result<Bus> {
        let path = if session {
            match std::env::var("DBUS_SESSION_BUS_ADDRESS") {
                Ok(a) => socket_path(&a).with_context(|| {
                    format!("DBUS_SESSION_BUS_ADDRESS {a:?}: no unix:path= address")
                })?,
                Err(_) => format!(
                    "{}/bus",
                    std::env::var("XDG_RUNTIME_DIR")
                        .context("no DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR")?
                ),
            }
        } else {
            match std::env::var("DBUS_SYSTEM_BUS_ADDRESS") {
                Ok(a) => socket_path(&a).with_context(|| {
                    format!("DBUS_SYSTEM_BUS_ADDRESS {a:?}: no unix:path= address")
                })?,
                Err(_) => "/run/dbus/system_bus_socket".into(),
            }
        };
        let sock = UnixStream::connect(&path).with_context(|| format!("connect to {path}"))?;
        sock.set_read_timeout(Some(timeout))?;
        sock.set_write_timeout(Some(timeout))?;
        let mut bus = Bus {
            sock,
            serial: 0,
            timeout,
            queued: VecDeque::new(),
        };
        bus.auth(uid)
            .with_context(|| format!("authenticate on {path}"))?;
        bus.call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "Hello",
            Body::default(),
        )
        .with_context(|| format!("Hello on {path}"))?;
        Ok(bus)
    }

    fn auth(&mut self, uid: u32) -> Result<()> {
        let hex: String = uid
            .to_string()
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.sock
            .write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())?;
        let line = self.read_line()?;
        if !line.starts_with("OK ") {
            bail!("the bus refused uid {uid}: {line}");
        }
        self.sock.write_all(b"BEGIN\r\n")?;
        Ok(())
    }

    fn read_line(&mut self) -> Result<String> {
        let mut line = Vec::new();
        let mut byte = [0u8];
        while !line.ends_with(b"\r\n") {
            if self.sock.read(&mut byte)? == 0 {
                bail!("the bus closed the connection");
            }
            line.push(byte[0]);
            if line.len() > 4096 {
                bail!("the bus sent an overlong line");
            }
        }
        Ok(String::from_utf8_lossy(&line).trim_end().to_string())
    }

    /// Sends a method call and returns its reply; a D-Bus error reply is an error whose
    /// message starts with the error's name.
    pub fn call(
        &mut self,
        dest: &str,
        path: &str,
        iface: &str,
        member: &str,
        body: Body,
    ) -> Result<Message> {
        self.sock.set_read_timeout(Some(self.timeout))?;
        self.serial += 1;
        let serial = self.serial;
        let mut h = Body::default();
        h.buf.extend_from_slice(&[b'l', METHOD_CALL, 0, 1]);
        h.raw_u32(body.buf.len() as u32);
        h.raw_u32(serial);
        let field = |h: &mut Body, code: u8, sig: &str, v: &str| {
            h.pad(8);
            h.buf.push(code);
            h.raw_sig(sig);
            if sig == "g" {
                h.raw_sig(v);
            } else {
                h.raw_str(v);
            }
        };
        h.array(8, |h| {
            field(h, 1, "o", path);
            field(h, 2, "s", iface);
            field(h, 3, "s", member);
            field(h, 6, "s", dest);
            if !body.sig.is_empty() {
                field(h, 8, "g", &body.sig);
            }
        });
        h.pad(8);
        h.buf.extend_from_slice(&body.buf);
        self.sock.write_all(&h.buf).context("write to the bus")?;
        loop {
            let m = self.read_message()?;
            match m.kind {
                METHOD_RETURN | ERROR if m.reply_serial == Some(serial) => {
                    if m.kind == ERROR {
                        let text = if m.signature.starts_with('s') {
                            Reader::new(&m.body).str().unwrap_or_default()
                        } else {
                            String::new()
                        };
                        bail!(
                            "{}: {text}",
                            m.error_name.as_deref().unwrap_or("D-Bus error")
                        );
                    }
                    return Ok(m);
                }
                SIGNAL => self.queued.push_back(m),
                _ => {}
            }
        }
    }

    /// The next signal (queued or new), or None when `deadline` passes first.
    pub fn next_signal(&mut self, deadline: Instant) -> Result<Option<Message>> {
        if let Some(m) = self.queued.pop_front() {
            return Ok(Some(m));
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.sock.set_read_timeout(Some(left))?;
            match self.read_message() {
                Ok(m) if m.kind == SIGNAL => return Ok(Some(m)),
                Ok(_) => {}
                Err(e)
                    if e.downcast_ref::<std::io::Error>().is_some_and(|e| {
                        matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        )
                    }) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn read_message(&mut self) -> Result<Message> {
        let mut fixed = [0u8; 16];
        self.sock
            .read_exact(&mut fixed)
            .map_err(anyhow::Error::from)?;
        if fixed[0] != b'l' {
            bail!("the bus sent a big-endian message, which rt does not read");
        }
        let body_len = u32::from_le_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]) as usize;
        let fields_len = u32::from_le_bytes([fixed[12], fixed[13], fixed[14], fixed[15]]) as usize;
        if body_len > 64 << 20 || fields_len > 64 << 20 {
            bail!("the bus sent an oversized message");
        }
        let rest_len = fields_len.next_multiple_of(8) + body_len;
        let mut rest = vec![0u8; rest_len];
        self.sock.read_exact(&mut rest)?;
        let mut m = Message {
            kind: fixed[1],
            ..Default::default()
        };
        // Header fields, read with offsets relative to the message start (16 bytes in).
        let mut all = fixed.to_vec();
        all.extend_from_slice(&rest[..fields_len]);
        let mut r = Reader::new(&all);
        r.pos = 16;
        while r.pos < all.len() {
            r.align(8);
            if r.pos >= all.len() {
                break;
            }
            let code = r.take(1)?[0];
            let sig = r.sig()?;
            match (code, sig.as_str()) {
                (5, "u") => m.reply_serial = Some(r.u32()?),
                (4, "s") => m.error_name = Some(r.str()?),
                (3, "s") => m.member = Some(r.str()?),
                (8, "g") => m.signature = r.sig()?,
                (_, "s" | "o") => {
                    r.str()?;
                }
                (_, "u") => {
                    r.u32()?;
                }
                (_, "g") => {
                    r.sig()?;
                }
                (c, s) => bail!("D-Bus message: header field {c} of type {s:?}"),
            }
        }
        m.body = rest[fields_len.next_multiple_of(8)..].to_vec();
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_aligned_as_dbus_wants() {
        let b = Body::default()
            .str("a")
            .props(&[("X".into(), Value::U64(7)), ("Y".into(), Value::Bool(true))])
            .no_aux_units();
        assert_eq!(b.sig, "sa(sv)a(sa(sv))");
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &[1, 0, 0, 0, b'a', 0, 0, 0][..],
            // array length 40, then the first struct at 8
            &[40, 0, 0, 0, 0, 0, 0, 0],
            &[1, 0, 0, 0, b'X', 0, 1, b't', 0, 0, 0, 0, 0, 0, 0, 0],
            &[7, 0, 0, 0, 0, 0, 0, 0],
            &[1, 0, 0, 0, b'Y', 0, 1, b'b', 0, 0, 0, 0, 1, 0, 0, 0],
            // empty array: length 0, padded to 8
            &[0, 0, 0, 0, 0, 0, 0, 0],
        ]
        .concat();
        assert_eq!(b.buf, want);
    }

    #[test]
    fn arrays_of_pairs_and_strings() {
        let b = Body::default()
            .props(&[("D".into(), Value::StrPairs(vec![("p".into(), "rw".into())]))]);
        let mut r = Reader::new(&b.buf);
        assert_eq!(r.u32().unwrap() as usize, b.buf.len() - 8);
        r.align(8);
        assert_eq!(r.str().unwrap(), "D");
        assert_eq!(r.sig().unwrap(), "a(ss)");
        r.u32().unwrap();
        r.align(8);
        assert_eq!(r.str().unwrap(), "p");
        assert_eq!(r.str().unwrap(), "rw");
    }

    #[test]
    fn addresses() {
        assert_eq!(
            socket_path("unix:path=/run/dbus/system_bus_socket").as_deref(),
            Some("/run/dbus/system_bus_socket")
        );
        assert_eq!(
            socket_path("unix:abstract=x;unix:guid=1,path=/a%20b").as_deref(),
            Some("/a b")
        );
        assert_eq!(socket_path("tcp:host=x"), None);
    }

    #[test]
    fn truncated_bodies_are_errors_not_panics() {
        let mut r = Reader::new(&[5, 0, 0, 0, b'a']);
        assert!(r.str().is_err());
        let mut r = Reader::new(&[200]);
        assert!(r.sig().is_err());
    }
}
