//! Where the time of one command goes, stage by stage, without changing
//! isobox: `perf record` of a handful of kernel tracepoints (process exec,
//! fork and exit, cgroup mkdir/attach/rmdir, and the entry or exit of the
//! few system calls that mark a stage: clone3, unshare, setns, the mount
//! calls, pivot_root, umount, seccomp, execve, wait4/waitid, exit_group)
//! around each run of a command, as root: `cargo bench --bench stages`.
//!
//! For each command, every run becomes a timeline of events relative to the
//! `execve` of the command, by process role (`K` the command itself, `K.1`
//! its first child or thread, `K.2.1` the first child of its second...);
//! runs of the same family of event in one process (the three cgroup
//! hierarchies of v1, the dozen mount calls) are folded into one line with
//! a count. Runs whose timeline has the most common shape are kept, and
//! each event's time is the median over them. A final line compares the
//! traced command's median with the same command run untraced in the same
//! rounds: the tracing's own cost (a few microseconds an event).
//!
//! Knobs: `ISOBOX_STAGES_RUNS` (default 40), `ISOBOX_BENCH_ISOLATE` (a
//! reference isolate, as for `overhead`), `ISOBOX_STAGES_ONLY` (a substring
//! of the command names to trace only some of them).
//! Needs `perf` (linux-perf) and tracefs.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

mod support;

const EVENTS: &[&str] = &[
    "sched:sched_process_exec",
    "sched:sched_process_fork",
    "sched:sched_process_exit",
    "cgroup:cgroup_mkdir",
    "cgroup:cgroup_rmdir",
    "cgroup:cgroup_attach_task",
    "syscalls:sys_enter_clone3",
    "syscalls:sys_exit_clone3",
    "syscalls:sys_enter_clone",
    "syscalls:sys_enter_unshare",
    "syscalls:sys_exit_unshare",
    "syscalls:sys_enter_setns",
    "syscalls:sys_enter_mount",
    "syscalls:sys_enter_open_tree",
    "syscalls:sys_enter_mount_setattr",
    "syscalls:sys_enter_move_mount",
    "syscalls:sys_enter_mknodat",
    "syscalls:sys_enter_pivot_root",
    "syscalls:sys_enter_umount",
    "syscalls:sys_exit_umount",
    "syscalls:sys_enter_seccomp",
    "syscalls:sys_enter_execve",
    "syscalls:sys_exit_wait4",
    "syscalls:sys_exit_waitid",
    "syscalls:sys_enter_flock",
    "syscalls:sys_enter_exit_group",
];

/// One event of a run.
struct Event {
    tid: u32,
    time: f64,
    name: String,
    trace: String,
}

fn parse(script: &str) -> Vec<Event> {
    // "  2788/2790  3930.100044:  syscalls:sys_exit_clone3: 0x0"
    script
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let (ids, rest) = line.split_once(char::is_whitespace)?;
            let tid = ids.split('/').nth(1)?.parse().ok()?;
            let rest = rest.trim_start();
            let (time, rest) = rest.split_once(':')?;
            let rest = rest.trim_start();
            let (name, trace) = rest
                .split_once(": ")
                .unwrap_or((rest.trim_end_matches(':'), ""));
            Some(Event {
                tid,
                time: time.trim().parse().ok()?,
                name: name.to_string(),
                trace: trace.to_string(),
            })
        })
        .collect()
}

fn field<'a>(trace: &'a str, key: &str) -> Option<&'a str> {
    trace
        .split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
}

/// A cgroup path with its numbers replaced by N (run-17 → run-N).
fn shape(path: &str) -> String {
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let mut out = String::new();
    for c in last.chars() {
        if c.is_ascii_digit() {
            if !out.ends_with('N') {
                out.push('N');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One line of a timeline: a process role, what happened, when it first
/// and last happened (ms after the command's exec), and how many times.
#[derive(Clone)]
struct Step {
    role: String,
    what: String,
    first: f64,
    last: f64,
    count: usize,
}

fn timeline(events: &[Event]) -> Option<Vec<Step>> {
    let start = events
        .iter()
        .find(|e| e.name == "sched:sched_process_exec")?;
    let (t0, root) = (start.time, start.tid);
    let mut roles: HashMap<u32, String> = HashMap::from([(root, "K".to_string())]);
    let mut children: HashMap<String, usize> = HashMap::new();
    let mut steps: Vec<Step> = Vec::new();
    for event in events.iter().filter(|e| e.time >= t0) {
        if event.name == "sched:sched_process_fork" {
            let parent = field(&event.trace, "pid").and_then(|p| p.parse().ok());
            let child = field(&event.trace, "child_pid").and_then(|p| p.parse::<u32>().ok());
            // The tracepoint names the parent by its thread group; the
            // event's own thread is the parent's thread.
            let parent_role = roles
                .get(&event.tid)
                .or_else(|| parent.and_then(|p| roles.get(&p)))
                .cloned();
            if let (Some(parent_role), Some(child)) = (parent_role, child) {
                let n = children.entry(parent_role.clone()).or_default();
                *n += 1;
                roles.insert(child, format!("{parent_role}.{n}"));
            }
        }
        let Some(role) = roles.get(&event.tid).cloned() else {
            continue;
        };
        let short = event
            .name
            .rsplit(':')
            .next()
            .unwrap()
            .trim_start_matches("sys_")
            .trim_start_matches("sched_")
            .trim_start_matches("cgroup_");
        let what = match short {
            "enter_mount"
            | "enter_open_tree"
            | "enter_mount_setattr"
            | "enter_move_mount"
            | "enter_mknodat" => "mount calls".to_string(),
            "process_exec" => format!(
                "exec {}",
                field(&event.trace, "filename")
                    .map(|f| f.rsplit('/').next().unwrap_or(f))
                    .unwrap_or("?")
            ),
            "mkdir" | "rmdir" => format!(
                "cgroup {short} {}",
                shape(field(&event.trace, "path").unwrap_or(""))
            ),
            "attach_task" => format!(
                "cgroup attach to {}",
                shape(field(&event.trace, "dst_path").unwrap_or(""))
            ),
            "process_fork" => "fork/clone (child born)".to_string(),
            "process_exit" => "exit".to_string(),
            other => other.replace('_', " "),
        };
        let time = (event.time - t0) * 1000.0;
        match steps.last_mut() {
            Some(last) if last.role == role && last.what == what => {
                last.last = time;
                last.count += 1;
            }
            _ => steps.push(Step {
                role,
                what,
                first: time,
                last: time,
                count: 1,
            }),
        }
    }
    Some(steps)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

/// A command to trace.
struct Case {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(&'static str, OsString)>,
    /// Run before every traced and untraced run (not timed).
    before: Vec<Vec<String>>,
    /// Run after every run (not timed).
    after: Vec<Vec<String>>,
}

impl Case {
    fn command(&self, program: &Path, args: &[String]) -> Command {
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    fn helpers(&self, list: &[Vec<String>]) {
        for args in list {
            let _ = self.command(&self.program, args).status();
        }
    }

    fn untraced(&self) -> f64 {
        self.helpers(&self.before);
        let start = Instant::now();
        let status = self.command(&self.program, &self.args).status().unwrap();
        let elapsed = start.elapsed();
        assert!(status.success(), "{}: {status}", self.name);
        self.helpers(&self.after);
        elapsed.as_secs_f64() * 1000.0
    }

    fn traced(&self, data: &Path) -> Option<Vec<Step>> {
        self.helpers(&self.before);
        let mut args: Vec<String> = vec![
            "record".into(),
            "-q".into(),
            "-o".into(),
            data.display().to_string(),
            "-e".into(),
            EVENTS.join(","),
            "--".into(),
            self.program.display().to_string(),
        ];
        args.extend(self.args.iter().cloned());
        let status = self.command(Path::new("perf"), &args).status().unwrap();
        self.helpers(&self.after);
        assert!(status.success(), "perf record of {}: {status}", self.name);
        let output = Command::new("perf")
            .args(["script", "-i"])
            .arg(data)
            .args(["-F", "pid,tid,time,event,trace"])
            .stderr(Stdio::null())
            .output()
            .unwrap();
        timeline(&parse(&String::from_utf8_lossy(&output.stdout)))
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn face_cases(cases: &mut Vec<Case>, tool: &str, program: &Path, env: &[(&'static str, OsString)]) {
    let run = strings(&[
        "--cg",
        "-b",
        "1",
        "-t",
        "1",
        "-w",
        "2",
        "--run",
        "--",
        "/bin/true",
    ]);
    let init = strings(&["--cg", "-b", "1", "--init"]);
    let cleanup = strings(&["--cg", "-b", "1", "--cleanup"]);
    let case =
        |what: &str, args: &[String], before: &[&Vec<String>], after: &[&Vec<String>]| Case {
            name: format!("{tool} {what}"),
            program: program.to_path_buf(),
            args: args.to_vec(),
            env: env.to_vec(),
            before: before.iter().map(|a| a.to_vec()).collect(),
            after: after.iter().map(|a| a.to_vec()).collect(),
        };
    cases.push(case(
        "--run -- /bin/true (initialized box)",
        &run,
        &[&init],
        &[&cleanup],
    ));
    cases.push(case("--init", &init, &[], &[&cleanup]));
    cases.push(case("--cleanup", &cleanup, &[&init], &[]));
    cases.push(case("--version", &strings(&["--version"]), &[], &[]));
}

fn main() {
    if !isobox::sys::is_root() {
        eprintln!("the stage trace needs root (perf tracepoints, boxes)");
        std::process::exit(2);
    }
    if Command::new("perf").arg("--version").output().is_err() {
        eprintln!("the stage trace needs perf (apt-get install linux-perf)");
        std::process::exit(2);
    }
    let runs: usize = std::env::var("ISOBOX_STAGES_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let only = std::env::var("ISOBOX_STAGES_ONLY").unwrap_or_default();
    let root = tempfile::Builder::new()
        .prefix("isobox-stages-")
        .tempdir()
        .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let config = root.path().join("isobox.conf");
    std::fs::write(
        &config,
        format!(
            "box_root = {0}/boxes\nlock_root = {0}/locks\nfirst_uid = 61960\nfirst_gid = 61960\nnum_boxes = 4\n",
            root.path().display()
        ),
    )
    .unwrap();
    let isobox = support::shipped_isobox();
    let isobox_env = vec![("ISOBOX_CONFIG", config.clone().into_os_string())];
    let mut cases = vec![Case {
        name: "isobox run -- /bin/true".into(),
        program: isobox.clone(),
        args: strings(&["run", "--", "/bin/true"]),
        env: isobox_env.clone(),
        before: vec![],
        after: vec![],
    }];
    face_cases(&mut cases, "isobox", &isobox, &isobox_env);
    if let Some(reference) = std::env::var_os("ISOBOX_BENCH_ISOLATE") {
        face_cases(&mut cases, "isolate", Path::new(&reference), &[]);
    }
    cases.push(Case {
        name: "floor: /bin/true".into(),
        program: "/bin/true".into(),
        args: vec![],
        env: vec![],
        before: vec![],
        after: vec![],
    });
    cases.retain(|case| case.name.contains(&only));
    let data = root.path().join("perf.data");

    for case in &cases {
        let mut timelines = Vec::new();
        let mut untraced = Vec::new();
        for _ in 0..runs {
            untraced.push(case.untraced());
            if let Some(steps) = case.traced(&data) {
                timelines.push(steps);
            }
        }
        // The most common shape.
        let key = |steps: &Vec<Step>| {
            steps
                .iter()
                .map(|s| format!("{}|{}|{}", s.role, s.what, s.count))
                .collect::<Vec<_>>()
                .join(";")
        };
        let mut shapes: HashMap<String, usize> = HashMap::new();
        for steps in &timelines {
            *shapes.entry(key(steps)).or_default() += 1;
        }
        let Some((best, kept)) = shapes.iter().max_by_key(|(_, n)| **n) else {
            println!("## {}: no trace", case.name);
            continue;
        };
        let chosen: Vec<&Vec<Step>> = timelines.iter().filter(|s| &key(s) == best).collect();
        println!();
        println!(
            "## {} ({kept} of {} traced runs have this shape; medians, ms after its exec)",
            case.name,
            timelines.len()
        );
        println!();
        println!("| at (ms) | since previous | process | event | last at (count) |");
        println!("|---|---|---|---|---|");
        let mut previous = 0.0;
        for (index, step) in chosen[0].iter().enumerate() {
            let first = median(chosen.iter().map(|s| s[index].first).collect());
            let last = median(chosen.iter().map(|s| s[index].last).collect());
            let folded = if step.count > 1 {
                format!("{last:.3} ({}×)", step.count)
            } else {
                String::new()
            };
            println!(
                "| {first:.3} | {:+.3} | {} | {} | {folded} |",
                first - previous,
                step.role,
                step.what
            );
            previous = last.max(first);
        }
        println!(
            "\nuntraced median {:.3} ms (same rounds); traced, exec to exit, {:.3} ms",
            median(untraced),
            previous
        );
    }
    support::stop_installation_service(&config);
    support::remove_installation_cgroups(&config);
}
