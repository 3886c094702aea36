//! Runtime-spec conformance: for each requirement, a bundle whose container runs rt-check
//! (bind-mounted in), and a comparison of what it reports with the config; plus lifecycle,
//! state and error cases of runtime.md. Prints TAP and a final "N passed, M failed" line.
//! Our own suite (see the README's "Conformance" for runtime-tools' validation programs).

#[path = "../common/mod.rs"]
mod common;
use common::*;

use serde_json::{Value, json};
use std::path::Path;

struct Tap {
    n: usize,
    failed: usize,
}

impl Tap {
    fn case(&mut self, name: &str, f: impl FnOnce() -> Result<(), String>) {
        self.n += 1;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(Ok(())) => println!("ok {} - {name}", self.n),
            Ok(Err(why)) => {
                self.failed += 1;
                println!("not ok {} - {name}\n  # {why}", self.n);
            }
            Err(p) => {
                self.failed += 1;
                let why = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                println!(
                    "not ok {} - {name}\n  # panicked: {}",
                    self.n,
                    why.replace('\n', " ")
                );
            }
        }
    }
}

fn check(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(what()) }
}

/// Runs rt-check in a container made from `b` (asking about `paths`), returns its report.
fn report(rt: &Rt, b: &mut Bundle, paths: &[&str]) -> Value {
    let checker = Path::new(env!("CARGO_BIN_EXE_rt-check"));
    b.add_bind(checker, "/rt-check", &["bind", "ro"]);
    let mut args = vec!["/rt-check"];
    args.extend_from_slice(paths);
    b.set_args(&args);
    let out = rt.run_stdout(b);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("rt-check output {out:?}: {e}"))
}

fn host_ns(t: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{t}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn caps_mask(names: &[&str]) -> String {
    let all = caps::all();
    let mut m: u64 = 0;
    for n in names {
        let c: caps::Capability = n.parse().unwrap();
        if all.contains(&c) {
            m |= 1 << c.index();
        }
    }
    format!("{m:016x}")
}

fn main() {
    let rt = Rt::new();
    let mut t = Tap { n: 0, failed: 0 };

    t.case(
        "config: process.env is the configured environment (HOME added only where absent, as runc)",
        || {
            let env_of = |vars: &[&str]| -> Vec<String> {
                let mut b = Bundle::new(&["true"]);
                b.set_env(vars);
                let r = report(&rt, &mut b, &[]);
                r["env"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect()
            };
            let without = env_of(&["PATH=/bin:/usr/bin", "A=1", "B=two words"]);
            let with = env_of(&["PATH=/bin:/usr/bin", "HOME=/h", "B=two words"]);
            check(
                without == ["PATH=/bin:/usr/bin", "A=1", "B=two words", "HOME=/root"]
                    && with == ["PATH=/bin:/usr/bin", "HOME=/h", "B=two words"],
                || format!("{without:?} {with:?}"),
            )
        },
    );
    t.case("config: process.cwd is the working directory", || {
        let mut b = Bundle::new(&["true"]);
        b.process()["cwd"] = json!("/tmp");
        let r = report(&rt, &mut b, &[]);
        check(r["cwd"] == "/tmp", || format!("{}", r["cwd"]))
    });
    t.case(
        "config: process.user uid, gid, additionalGids and umask",
        || {
            let mut b = Bundle::new(&["true"]);
            b.process()["user"] =
                json!({"uid": 1234, "gid": 567, "additionalGids": [8, 9], "umask": 63});
            let r = report(&rt, &mut b, &[]);
            check(r["Uid"].as_str().unwrap().starts_with("1234\t"), || {
                format!("Uid {}", r["Uid"])
            })?;
            check(r["Gid"].as_str().unwrap().starts_with("567\t"), || {
                format!("Gid {}", r["Gid"])
            })?;
            check(r["Groups"] == "8 9", || format!("Groups {}", r["Groups"]))?;
            check(r["umask"] == 63, || format!("umask {}", r["umask"]))
        },
    );
    t.case(
        "config: capability sets (root: permitted and effective are the bounding set after exec)",
        || {
            let mut b = Bundle::new(&["true"]);
            let set = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
            b.process()["capabilities"] = json!({
                "bounding": set, "effective": ["CAP_KILL"], "permitted": set,
                "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]
            });
            let r = report(&rt, &mut b, &[]);
            check(r["CapBnd"] == caps_mask(&set), || {
                format!("CapBnd {}", r["CapBnd"])
            })?;
            check(r["CapPrm"] == caps_mask(&set), || {
                format!("CapPrm {}", r["CapPrm"])
            })?;
            check(r["CapInh"] == caps_mask(&["CAP_KILL"]), || {
                format!("CapInh {}", r["CapInh"])
            })?;
            check(r["CapAmb"] == caps_mask(&["CAP_KILL"]), || {
                format!("CapAmb {}", r["CapAmb"])
            })
        },
    );
    t.case(
        "config: capability sets (non-root: only ambient capabilities survive exec)",
        || {
            let mut b = Bundle::new(&["true"]);
            let set = ["CAP_CHOWN", "CAP_KILL"];
            b.process()["user"] = json!({"uid": 1000, "gid": 1000});
            b.process()["capabilities"] = json!({
                "bounding": set, "effective": set, "permitted": set,
                "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]
            });
            let r = report(&rt, &mut b, &[]);
            check(r["CapBnd"] == caps_mask(&set), || {
                format!("CapBnd {}", r["CapBnd"])
            })?;
            check(r["CapEff"] == caps_mask(&["CAP_KILL"]), || {
                format!("CapEff {}", r["CapEff"])
            })?;
            check(r["CapAmb"] == caps_mask(&["CAP_KILL"]), || {
                format!("CapAmb {}", r["CapAmb"])
            })
        },
    );
    t.case("config: noNewPrivileges, rlimits, oomScoreAdj", || {
        let mut b = Bundle::new(&["true"]);
        b.process()["noNewPrivileges"] = json!(true);
        b.process()["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}]);
        b.process()["oomScoreAdj"] = json!(250);
        let r = report(&rt, &mut b, &[]);
        check(r["NoNewPrivs"] == "1", || {
            format!("NoNewPrivs {}", r["NoNewPrivs"])
        })?;
        check(r["rlimits"]["RLIMIT_NOFILE"] == json!([100, 200]), || {
            format!("{}", r["rlimits"])
        })?;
        check(r["oom_score_adj"] == "250", || {
            format!("{}", r["oom_score_adj"])
        })
    });
    t.case("config: hostname and domainname", || {
        let mut b = Bundle::new(&["true"]);
        b.config["hostname"] = json!("conf-host");
        b.config["domainname"] = json!("conf.example");
        let r = report(&rt, &mut b, &[]);
        check(
            r["hostname"] == "conf-host" && r["domainname"] == "conf.example",
            || format!("{} {}", r["hostname"], r["domainname"]),
        )
    });
    t.case(
        "config-linux: each listed namespace is new, each absent one is the runtime's",
        || {
            let mut b = Bundle::new(&["true"]);
            b.set_namespaces(&["pid", "mount", "ipc", "uts"]);
            let r = report(&rt, &mut b, &[]);
            for t in ["pid", "mnt", "ipc", "uts"] {
                check(r["namespaces"][t] != host_ns(t), || format!("{t} shared"))?;
            }
            for t in ["net", "cgroup", "user"] {
                check(r["namespaces"][t] == host_ns(t), || {
                    format!("{t} not shared")
                })?;
            }
            Ok(())
        },
    );
    t.case("config: root.readonly makes / read-only", || {
        let mut b = Bundle::new(&["true"]);
        b.config["root"]["readonly"] = json!(true);
        let r = report(&rt, &mut b, &[]);
        let root = r["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|m| m["target"] == "/")
            .cloned()
            .unwrap();
        check(
            root["options"]
                .as_str()
                .unwrap()
                .split(',')
                .any(|o| o == "ro"),
            || format!("{root}"),
        )
    });
    t.case(
        "config: mounts are mounted at their destinations with their types and options",
        || {
            let mut b = Bundle::new(&["true"]);
            b.add_mount(
                "/tmp/conf",
                "tmpfs",
                "tmpfs",
                &["nosuid", "noexec", "size=1m"],
            );
            let r = report(&rt, &mut b, &[]);
            let m = r["mounts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["target"] == "/tmp/conf")
                .cloned()
                .ok_or("no mount at /tmp/conf")?;
            let opts: Vec<&str> = m["options"].as_str().unwrap().split(',').collect();
            check(
                m["type"] == "tmpfs" && opts.contains(&"nosuid") && opts.contains(&"noexec"),
                || format!("{m}"),
            )
        },
    );
    t.case(
        "config-linux: maskedPaths are covered by /dev/null, readonlyPaths are read-only",
        || {
            let mut b = Bundle::new(&["true"]);
            b.linux()["maskedPaths"] = json!(["/proc/timer_list", "/proc/acpi"]);
            b.linux()["readonlyPaths"] = json!(["/proc/sys"]);
            let r = report(
                &rt,
                &mut b,
                &["/proc/timer_list", "/proc/sys/kernel/hostname"],
            );
            // A masked file is the null device bound over it.
            let tl = &r["paths"]["/proc/timer_list"];
            check(tl["kind"] == "char" && tl["rdev"] == 259, || {
                format!("{tl}")
            })?;
            check(
                r["paths"]["/proc/sys/kernel/hostname"]["writable"] == false,
                || "writable".into(),
            )
        },
    );
    t.case("config-linux: default devices and linux.devices with mode and owner", || {
        let mut b = Bundle::new(&["true"]);
        b.linux()["devices"] = json!([{"path": "/dev/conf-null", "type": "c", "major": 1, "minor": 3, "fileMode": 416, "uid": 7, "gid": 8}]);
        let r = report(&rt, &mut b, &["/dev/null", "/dev/zero", "/dev/conf-null", "/dev/ptmx", "/dev/fd"]);
        let p = &r["paths"];
        check(p["/dev/null"]["kind"] == "char" && p["/dev/null"]["mode"] == 0o666, || format!("{}", p["/dev/null"]))?;
        check(p["/dev/zero"]["kind"] == "char", || format!("{}", p["/dev/zero"]))?;
        let c = &p["/dev/conf-null"];
        check(c["kind"] == "char" && c["mode"] == 416 && c["uid"] == 7 && c["gid"] == 8, || format!("{c}"))?;
        check(p["/dev/ptmx"]["link"] == "pts/ptmx", || format!("{}", p["/dev/ptmx"]))?;
        check(p["/dev/fd"]["link"] == "/proc/self/fd", || format!("{}", p["/dev/fd"]))
    });
    t.case("config-linux: seccomp filters the process", || {
        let mut b = Bundle::new(&["true"]);
        b.linux()["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["swapon"], "action": "SCMP_ACT_ERRNO"}]});
        let r = report(&rt, &mut b, &[]);
        check(r["Seccomp"] == "2", || format!("Seccomp {}", r["Seccomp"]))
    });

    t.case(
        "config (1.3): process.scheduler, ioPriority and linux.personality, memoryPolicy",
        || {
            let mut b = Bundle::new(&["true"]);
            b.process()["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 3});
            b.process()["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
            b.linux()["personality"] = json!({"domain": "LINUX32"});
            let numa = Path::new("/proc/self/numa_maps").exists();
            if numa {
                b.linux()["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"});
            }
            let r = report(&rt, &mut b, &["/proc/self/numa_maps"]);
            let s = &r["sched"];
            check(
                s["policy"] == libc::SCHED_BATCH
                    && s["nice"] == 3
                    && s["ioprio"] == 3 << 13
                    && r["personality"] == "00000008",
                || format!("sched {s}, personality {}", r["personality"]),
            )?;
            let maps = r["paths"]["/proc/self/numa_maps"]["text"]
                .as_str()
                .unwrap_or("");
            check(!numa || maps.contains(" bind:0 "), || {
                format!("numa_maps {maps:?}")
            })
        },
    );

    // runtime.md: lifecycle, state and errors.
    t.case(
        "config-linux: sysctls are set in the container's namespaces",
        || {
            let mut b = Bundle::new(&["true"]);
            b.linux()["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.msgmax": "4096"});
            let r = report(
                &rt,
                &mut b,
                &["/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/msgmax"],
            );
            let text = |p: &str| {
                r["paths"][p]["text"]
                    .as_str()
                    .unwrap_or("")
                    .trim()
                    .to_string()
            };
            check(
                text("/proc/sys/net/ipv4/ip_forward") == "1"
                    && text("/proc/sys/kernel/msgmax") == "4096",
                || format!("{}", r["paths"]),
            )
        },
    );
    t.case(
        "runtime-linux: /dev/fd, /dev/stdin, /dev/stdout, /dev/stderr links and /dev/ptmx",
        || {
            let mut b = Bundle::new(&["true"]);
            let r = report(
                &rt,
                &mut b,
                &[
                    "/dev/fd",
                    "/dev/stdin",
                    "/dev/stdout",
                    "/dev/stderr",
                    "/dev/ptmx",
                ],
            );
            let link = |p: &str| r["paths"][p]["link"].as_str().unwrap_or("").to_string();
            check(
                link("/dev/fd") == "/proc/self/fd"
                    && link("/dev/stdin") == "/proc/self/fd/0"
                    && link("/dev/stdout") == "/proc/self/fd/1"
                    && link("/dev/stderr") == "/proc/self/fd/2",
                || format!("{}", r["paths"]),
            )?;
            let ptmx = &r["paths"]["/dev/ptmx"];
            check(
                ptmx["kind"] == "symlink" && ptmx["link"] == "pts/ptmx" || ptmx["kind"] == "char",
                || format!("/dev/ptmx: {ptmx}"),
            )
        },
    );
    t.case(
        "runtime-linux: the process gets only the stdio descriptors",
        || {
            let mut b = Bundle::new(&["true"]);
            let r = report(&rt, &mut b, &[]);
            let fds: Vec<String> = r["fds"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            check(fds == ["0", "1", "2"], || format!("open fds: {}", r["fds"]))
        },
    );
    t.case(
        "config-linux: user namespace uidMappings and gidMappings",
        || {
            let mut b = Bundle::new(&["true"]);
            b.add_namespace("user", None);
            b.linux()["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            b.linux()["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 1000}]);
            let r = report(&rt, &mut b, &["/proc/self/uid_map", "/proc/self/gid_map"]);
            let map = |p: &str| -> Vec<String> {
                r["paths"][p]["text"]
                    .as_str()
                    .unwrap_or("")
                    .split_whitespace()
                    .map(str::to_string)
                    .collect()
            };
            check(
                map("/proc/self/uid_map") == ["0", "100000", "65536"]
                    && map("/proc/self/gid_map") == ["0", "200000", "1000"],
                || format!("{}", r["paths"]),
            )?;
            check(r["Uid"].as_str().unwrap_or("").starts_with("0\t"), || {
                format!("uid in the namespace: {}", r["Uid"])
            })
        },
    );
    t.case("config-linux: a namespace with a path is joined", || {
        let mut holder = spawn_cmd(
            std::process::Command::new("unshare")
                .args(["--uts", "sleep", "1000"])
                .stdin(std::process::Stdio::null()),
        );
        let pid = holder.pid();
        let mut want = String::new();
        wait_for(WAIT, || {
            want = std::fs::read_link(format!("/proc/{pid}/ns/uts"))
                .map(|l| l.display().to_string())
                .unwrap_or_default();
            want != host_ns("uts") && !want.is_empty()
        });
        let mut b = Bundle::new(&["true"]);
        b.remove_namespace("uts");
        b.add_namespace("uts", Some(&format!("/proc/{pid}/ns/uts")));
        b.config["hostname"] = Value::Null;
        let r = report(&rt, &mut b, &[]);
        let _ = holder.finished();
        check(r["namespaces"]["uts"] == want.as_str(), || {
            format!("uts {} want {want}", r["namespaces"]["uts"])
        })
    });
    t.case(
        "config-linux: the container's process is in the cgroup cgroupsPath names",
        || {
            let b = Bundle::new(&["sleep", "1000"]);
            let c = rt.start_ok(&b);
            let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", c.pid)).unwrap_or_default();
            rt.delete_force(&c.id).ok();
            check(cg.lines().any(|l| l == format!("0::{}", b.cgroup)), || {
                format!("{cg} (cgroupsPath {})", b.cgroup)
            })
        },
    );
    t.case(
        "runtime: kill delivers the signal to the container process; state has the annotations",
        || {
            let mut b = Bundle::sh("trap 'exit 42' TERM; while :; do sleep 0.05; done");
            b.config["annotations"] = json!({"org.example.key": "value"});
            let c = rt.start_ok(&b);
            let s = rt.state(&c.id);
            check(s["annotations"]["org.example.key"] == "value", || {
                format!("state: {s}")
            })?;
            rt.kill(&c.id, "TERM").ok();
            check(rt.wait_status(&c.id, "stopped", WAIT), || {
                "TERM did not stop it".into()
            })?;
            rt.delete(&c.id).ok();
            Ok(())
        },
    );
    t.case(
        "config-linux: resources are applied to the container's cgroup",
        || {
            let mut b = Bundle::new(&["sleep", "1000"]);
            b.linux()["resources"] = json!({"pids": {"limit": 77}});
            let c = rt.start_ok(&b);
            // pids.max in the container's cgroup, v2 or (hybrid and v1 hosts) v1.
            let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", c.pid)).unwrap_or_default();
            let file = cg
                .lines()
                .find_map(|l| {
                    let mut f = l.splitn(3, ':');
                    let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
                    ctrls
                        .split(',')
                        .any(|x| x == "pids")
                        .then(|| format!("/sys/fs/cgroup/pids{path}/pids.max"))
                })
                .unwrap_or_else(|| format!("{}{}/pids.max", cgroup2_mount(), b.cgroup));
            let got = std::fs::read_to_string(&file).unwrap_or_default();
            rt.delete_force(&c.id).ok();
            check(got.trim() == "77", || format!("{file}: {got:?}"))
        },
    );
    t.case(
        "config-linux: rootfsPropagation applies to the container's root mount",
        || {
            let mut b = Bundle::new(&["true"]);
            b.linux()["rootfsPropagation"] = json!("shared");
            let r = report(&rt, &mut b, &[]);
            let root = r["mounts"]
                .as_array()
                .into_iter()
                .flatten()
                .rfind(|m| m["target"] == "/")
                .cloned()
                .unwrap_or_default();
            // mountinfo's optional fields: "shared:N" for a shared mount.
            check(
                root["propagation"]
                    .as_str()
                    .is_some_and(|p| p.split(' ').any(|t| t.starts_with("shared:"))),
                || format!("/ is not shared: {root}"),
            )
        },
    );
    t.case(
        "runtime: create fails when process.args[0] can't be executed, leaving nothing",
        || {
            let b = Bundle::new(&["/no/such/program"]);
            let id = rt.new_id();
            let o = rt.create(&b, &id, &[]);
            check(o.code != 0 && o.stderr.contains("/no/such/program"), || {
                format!("create: {} {}", o.code, o.stderr)
            })?;
            check(!rt.state_dir(&id).exists(), || "state dir left".into())
        },
    );
    t.case(
        "runtime: state reports created, then running, then stopped",
        || {
            let b = Bundle::new(&["sleep", "1000"]);
            let c = rt.create_ok(&b);
            let s = rt.state(&c.id);
            check(
                s["status"] == "created" && s["pid"].as_i64().unwrap() > 0,
                || format!("{s}"),
            )?;
            check(
                s["ociVersion"]
                    .as_str()
                    .is_some_and(|v| v.starts_with("1.")),
                || format!("{s}"),
            )?;
            check(s["bundle"] == b.path(), || format!("{s}"))?;
            rt.start(&c.id).ok();
            check(rt.status(&c.id).as_deref() == Some("running"), || {
                "not running".into()
            })?;
            rt.kill(&c.id, "KILL").ok();
            check(rt.wait_status(&c.id, "stopped", WAIT), || {
                "not stopped".into()
            })?;
            rt.delete(&c.id).ok();
            check(!rt.state_dir(&c.id).exists(), || "state left".into())
        },
    );
    t.case(
        "runtime: start of a running container and kill of a stopped one fail",
        || {
            let b = Bundle::new(&["sleep", "1000"]);
            let c = rt.start_ok(&b);
            check(rt.start(&c.id).code != 0, || {
                "second start succeeded".into()
            })?;
            rt.kill(&c.id, "KILL").ok();
            check(rt.wait_status(&c.id, "stopped", WAIT), || {
                "not stopped".into()
            })?;
            check(rt.kill(&c.id, "TERM").code != 0, || {
                "kill of a stopped container succeeded".into()
            })?;
            rt.delete(&c.id).ok();
            Ok(())
        },
    );
    t.case(
        "runtime: create with an id in use fails; invalid ids are refused",
        || {
            let b = Bundle::new(&["sleep", "1000"]);
            let c = rt.create_ok(&b);
            check(rt.create(&b, &c.id, &[]).code != 0, || {
                "duplicate id accepted".into()
            })?;
            for bad in ["../x", "a/b", ""] {
                check(
                    rt.cmd(&["create", "--bundle", b.path(), bad]).code != 0,
                    || format!("id {bad:?} accepted"),
                )?;
            }
            rt.delete_force(&c.id).ok();
            Ok(())
        },
    );
    t.case(
        "runtime: delete of a running container fails; operations on unknown ids fail",
        || {
            let b = Bundle::new(&["sleep", "1000"]);
            let c = rt.start_ok(&b);
            check(rt.delete(&c.id).code != 0, || {
                "deleted a running container".into()
            })?;
            rt.delete_force(&c.id).ok();
            for op in ["state", "start", "delete"] {
                check(rt.cmd(&[op, "conformance-no-such-id"]).code != 0, || {
                    format!("{op} of an unknown id")
                })?;
            }
            Ok(())
        },
    );

    t.case(
        "runtime: hooks run in order (create, start, delete) with the state on stdin",
        || {
            let mut b = Bundle::new(&["true"]);
            let dir = b.host_dir("hooks");
            let log = dir.join("log");
            std::fs::write(&log, "").map_err(|e| e.to_string())?;
            let script = dir.join("hook.sh");
            // Each hook logs its phase with the id and status read from the state on stdin.
            write_script(
                &script,
                &format!(
                    "#!/bin/sh\nstate=$(tr -d ' \\n')\nid=$(echo \"$state\" | grep -o '\"id\":\"[^\"]*\"' | cut -d'\"' -f4)\nst=$(echo \"$state\" | grep -o '\"status\":\"[^\"]*\"' | cut -d'\"' -f4)\necho \"$1 $id $st\" >> {}\n",
                    log.display()
                ),
            );
            b.add_bind(&dir, dir.to_str().unwrap(), &["rbind", "rw"]);
            let mut hooks = serde_json::Map::new();
            for phase in [
                "prestart",
                "createRuntime",
                "createContainer",
                "startContainer",
                "poststart",
                "poststop",
            ] {
                hooks.insert(
                    phase.into(),
                    json!([{"path": script, "args": ["hook.sh", phase]}]),
                );
            }
            b.config["hooks"] = Value::Object(hooks);
            b.set_sh(&format!("echo program >> {}", log.display()));
            let lines = || -> Vec<String> {
                std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_string)
                    .collect()
            };
            let c = rt.create_ok(&b);
            let want_create = ["prestart", "createRuntime", "createContainer"];
            let got = lines();
            check(
                got.iter()
                    .map(|l| l.split(' ').next().unwrap_or(""))
                    .eq(want_create),
                || format!("after create: {got:?}"),
            )?;
            rt.start(&c.id).ok();
            check(rt.wait_status(&c.id, "stopped", WAIT), || {
                "not stopped".into()
            })?;
            rt.delete(&c.id).ok();
            let got = lines();
            let phases: Vec<&str> = got.iter().map(|l| l.split(' ').next().unwrap_or("")).collect();
            check(
                phases
                    == [
                        "prestart",
                        "createRuntime",
                        "createContainer",
                        "startContainer",
                        "program",
                        "poststart",
                        "poststop",
                    ]
                    || phases
                        == [
                            "prestart",
                            "createRuntime",
                            "createContainer",
                            "startContainer",
                            "poststart",
                            "program",
                            "poststop",
                        ],
                || format!("order: {got:?}"),
            )?;
            for l in got.iter().filter(|l| !l.starts_with("program")) {
                let f: Vec<&str> = l.split(' ').collect();
                check(f.get(1) == Some(&c.id.as_str()), || {
                    format!("hook state names another id: {l}")
                })?;
                let want = match f[0] {
                    "poststop" => "stopped",
                    "poststart" => "running",
                    _ => "",
                };
                check(want.is_empty() || f.get(2) == Some(&want), || {
                    format!("hook state status: {l}")
                })?;
            }
            Ok(())
        },
    );
    t.case(
        "runtime: the container's stdin is the caller's (run)",
        || {
            let b = Bundle::new(&["cat"]);
            b.save();
            let id = rt.new_id();
            let mut c = rt.command(&["run", "--bundle", b.path(), &id]);
            c.stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped());
            let mut child = c.spawn().map_err(|e| e.to_string())?;
            {
                use std::io::Write;
                let mut stdin = child.stdin.take().ok_or("no stdin")?;
                stdin
                    .write_all(b"through stdin\n")
                    .map_err(|e| e.to_string())?;
            }
            let out = child.wait_with_output().map_err(|e| e.to_string())?;
            check(
                out.status.success() && out.stdout == b"through stdin\n",
                || {
                    format!(
                        "{:?} {:?}",
                        out.status,
                        String::from_utf8_lossy(&out.stdout)
                    )
                },
            )
        },
    );

    let passed = t.n - t.failed;
    println!("1..{}", t.n);
    println!("{passed} passed, {} failed", t.failed);
    drop(rt);
    if t.failed > 0 {
        std::process::exit(1);
    }
}
