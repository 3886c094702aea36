//! `--log` / `--log-format`: runc writes logrus lines, and containerd shows users the message of
//! the last `error` line of the JSON log, so rt writes the same shapes.

use std::io::Write;
use std::sync::Mutex;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

struct Logger {
    file: Option<std::fs::File>,
    format: Format,
    debug: bool,
}

static LOGGER: Mutex<Logger> = Mutex::new(Logger {
    file: None,
    format: Format::Text,
    debug: false,
});

pub fn init(path: Option<&std::path::Path>, format: Format, debug: bool) -> anyhow::Result<()> {
    let file = match path {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| anyhow::anyhow!("open log file {}: {e}", p.display()))?,
        ),
        None => None,
    };
    let mut l = LOGGER.lock().unwrap_or_else(|e| e.into_inner());
    l.file = file;
    l.format = format;
    l.debug = debug;
    Ok(())
}

fn emit(level: &str, msg: &str) {
    let mut l = LOGGER.lock().unwrap_or_else(|e| e.into_inner());
    if level == "debug" && !l.debug {
        return;
    }
    let line = match l.format {
        Format::Json => {
            let v = serde_json::json!({"level": level, "msg": msg, "time": rfc3339_now()});
            format!("{v}\n")
        }
        Format::Text => format!(
            "time=\"{}\" level={level} msg={}\n",
            rfc3339_now(),
            serde_json::Value::String(msg.to_string())
        ),
    };
    match l.file.as_mut() {
        Some(f) => {
            let _ = f.write_all(line.as_bytes());
        }
        // Without --log, warnings and debug output go to stderr; errors are printed by main.
        None if level != "error" => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
        None => {}
    }
}

pub fn error(msg: &str) {
    emit("error", msg)
}

pub fn warn(msg: &str) {
    emit("warning", msg)
}

pub fn debug(msg: &str) {
    emit("debug", msg)
}

/// A debug line marking where a command has got to: `--debug` output read by
/// bench/breakdown.py for the per-phase breakdown of a `run` (its timestamps are what count).
pub fn phase(name: &str) {
    if LOGGER.lock().unwrap_or_else(|e| e.into_inner()).debug {
        emit("debug", &format!("phase: {name}"));
    }
}

/// Current UTC time as RFC 3339 with nanoseconds, like Go's time.RFC3339Nano.
pub fn rfc3339_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_known_instants() {
        assert_eq!(super::rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            super::rfc3339(1_709_251_199, 5),
            "2024-02-29T23:59:59.000000005Z"
        );
    }
}
