//! Many rt calls on one container at once, as shims, health checks and users make them: no
//! call hangs, none fails with anything but the errors a racing caller must expect, and
//! nothing is left behind (issue 18's lock rules).

mod common;
use common::*;
use std::time::Duration;

/// What a call racing start, kill and delete may legitimately be told.
const EXPECTED: &[&str] = &[
    "does not exist",
    "container not running",
    "cannot start a container that has stopped",
    "cannot start an already running container",
    "container init exited before it could be started",
    "cannot exec in a stopped container",
    "that is not stopped",
];

/// 16 concurrent calls (state, ps, exec, kill, delete) on one id while `start` runs, repeated
/// RT_CONCURRENCY_ROUNDS times (1,000 by default).
#[test]
fn sixteen_calls_racing_start_never_hang_or_leave_anything() {
    let rounds: usize = std::env::var("RT_CONCURRENCY_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let rt = Rt::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let limit = Duration::from_secs(30);
    let mut unexpected = Vec::new();
    for round in 0..rounds {
        let id = format!("{}-{round}", unique("race"));
        rt.create(&b, &id, &[]).ok();
        let mut calls: Vec<Vec<String>> = vec![vec!["start".into(), id.clone()]];
        for i in 0..16 {
            let args: Vec<&str> = match i % 8 {
                0 | 1 => vec!["state", &id],
                2 => vec!["ps", &id],
                3 => vec!["exec", &id, "true"],
                4 => vec!["kill", &id, "0"],
                5 => vec!["kill", &id, "KILL"],
                6 => vec!["delete", &id],
                _ => vec!["delete", "--force", &id],
            };
            calls.push(args.into_iter().map(String::from).collect());
        }
        let running: Vec<_> = calls
            .iter()
            .map(|a| {
                let args: Vec<&str> = a.iter().map(String::as_str).collect();
                (a.join(" "), spawn_cmd(&mut rt.command(&args)))
            })
            .collect();
        for (what, s) in running {
            let o = s.wait(limit);
            // An exec'd process a racing kill or delete --force killed: 128 + SIGKILL.
            let killed_exec = what.starts_with("exec ") && o.code == 128 + libc::SIGKILL;
            if o.code != 0 && !killed_exec && !EXPECTED.iter().any(|e| o.stderr.contains(e)) {
                unexpected.push(format!("round {round}: {what}: {o:?}"));
            }
        }
        rt.cmd(&["delete", "--force", &id]).ok();
        rt.assert_no_leftovers(&id, &b, &[]);
        assert!(unexpected.is_empty(), "unexpected errors: {unexpected:#?}");
    }
}
