//! What the query commands print: `list` and `ps` tables (or JSON) and `spec`'s template.

use crate::container::{self};
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::Path;

use super::*;

pub(super) fn write_spec(bundle: &Path, rootless: bool) -> Result<()> {
    let path = bundle.join("config.json");
    let text = serde_json::to_string_pretty(&crate::spec::template(rootless))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                anyhow::anyhow!("File {} exists. Remove it first", path.display())
            }
            _ => anyhow::anyhow!("{}: {}", path.display(), crate::sys::errno_str(&e)),
        })?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .with_context(|| format!("write {}", path.display()))
}

pub(super) fn print_list(root: &Path, format: Format, quiet: bool) -> Result<()> {
    let items = container::list(root)?;
    let mut out = std::io::stdout().lock();
    if quiet {
        for v in &items {
            writeln!(out, "{}", v["id"].as_str().unwrap_or(""))?;
        }
        return Ok(());
    }
    if format == Format::Json {
        // runc prints a nil list as `null`; callers parse either.
        if items.is_empty() {
            writeln!(out, "null")?;
        } else {
            writeln!(out, "{}", serde_json::to_string(&items)?)?;
        }
        return Ok(());
    }
    let mut rows = vec![vec![
        "ID".to_string(),
        "PID".into(),
        "STATUS".into(),
        "BUNDLE".into(),
        "CREATED".into(),
        "OWNER".into(),
    ]];
    for v in &items {
        rows.push(vec![
            v["id"].as_str().unwrap_or("").to_string(),
            v["pid"].to_string(),
            v["status"].as_str().unwrap_or("").to_string(),
            v["bundle"].as_str().unwrap_or("").to_string(),
            v["created"].as_str().unwrap_or("").to_string(),
            v["owner"].as_str().unwrap_or("").to_string(),
        ]);
    }
    write!(out, "{}", table(&rows))?;
    Ok(())
}

/// Columns padded like runc's Go tabwriter: minimum width 12, padding 3.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut s = String::new();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}", w = (widths[i] + 3).max(12)));
            }
        }
        s.push('\n');
    }
    s
}

pub(super) fn print_ps(root: &Path, id: &str, format: Format, ps_args: &[String]) -> Result<()> {
    let pids = container::pids(root, id)?;
    if format == Format::Json {
        // runc's Go encoder prints no processes (a stopped container) as `null`.
        if pids.is_empty() {
            println!("null");
        } else {
            println!("{}", serde_json::to_string(&pids)?);
        }
        return Ok(());
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let pid_col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps output has no PID column")?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{header}")?;
    for l in lines {
        let pid = l
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            writeln!(stdout, "{l}")?;
        }
    }
    Ok(())
}
