//! Rootless mode: `isobox run` called by a user who is not root builds the
//! box in a user namespace (the caller's uid mapped to 1000 inside), with
//! the same PID, mount, network, IPC and UTS namespaces, filesystem and
//! filter as root's boxes; without a delegated cgroup the limits are
//! rlimits and the result names what was absent.
//!
//! The tests start as root only to become an unprivileged caller: each
//! runs the binary as a test uid of its own, then checks that nothing of
//! that uid is left.

mod common;
#[path = "common/hostile_cases.rs"]
mod hostile_cases;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::{skip_unless_privileged, temp_dir};
use hostile_cases::{
    cases, go_judge_of, is_python, Case, Measured, INPUT, MLE, NONZERO, SIGNALLED, TLE,
};
use serde_json::Value;

/// An unprivileged caller: its uid, and a directory it can read and
/// execute from holding a copy of the binary and the test programs.
struct Caller {
    uid: u32,
    dir: tempfile::TempDir,
}

impl Caller {
    fn new() -> Self {
        let caller = Self {
            uid: common::next_uid(),
            dir: temp_dir("isobox-rootless-", 0o755),
        };
        common::copy_executable(env!("CARGO_BIN_EXE_isobox"), &caller.path("isobox"));
        caller
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Installs a hostile test program next to the binary.
    fn install(&self, name: &str) -> String {
        common::copy_executable(&common::hostile(name), &self.path(name));
        format!("./{name}")
    }

    /// A command that runs `isobox ARGS` as this caller, from its
    /// directory, with a bare environment.
    fn isobox(&self, args: &[&str]) -> Command {
        let mut command = Command::new(self.path("isobox"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            // std clears the supplementary groups when root changes uid.
            .uid(self.uid)
            .gid(self.uid);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.isobox(args).output().expect("running isobox")
    }

    /// `isobox run --json ARGS`, parsed.
    fn run_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["run", "--json"];
        all.extend_from_slice(args);
        let output = self.run(&all);
        serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
            panic!(
                "{err}: stdout {:?} stderr {:?}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        })
    }
}

impl Drop for Caller {
    fn drop(&mut self) {
        // The directory box roots are mounted on (in each box's own mount
        // namespace) is the caller's, made at its first run.
        let _ = std::fs::remove_dir(format!("/tmp/isobox-root-{}", self.uid));
        if !std::thread::panicking() {
            common::assert_no_process_of_uid(self.uid);
        }
    }
}

fn stdout_lines(result: &Value) -> Vec<String> {
    result["stdout"]
        .as_str()
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// What a run without root and without a delegated cgroup goes without.
fn expected_absent() -> Value {
    serde_json::json!(["cgroup", "separate_user"])
}

#[test]
fn a_caller_without_root_gets_a_box_of_its_own() {
    skip_unless_privileged!();
    let caller = Caller::new();
    let result = caller.run_json(&[
        "--",
        "/bin/sh",
        "-c",
        "id -u; id -g; hostname; echo $$; ls /proc | grep -c '^[0-9]'; ls /; \
         cat /proc/self/uid_map",
    ]);
    assert_eq!(result["status"], "Success", "{result}");
    assert_eq!(result["absent_protections"], expected_absent(), "{result}");
    let lines = stdout_lines(&result);
    assert_eq!(lines[0..2], ["1000", "1000"], "{result}");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_ne!(lines[2], host.trim(), "the box has its own hostname");
    assert_eq!(
        lines[3], "2",
        "the shell is the first process after the proxy"
    );
    let processes: u32 = lines[4].parse().unwrap();
    assert!(
        processes <= 4,
        "the box sees only its own processes: {result}"
    );
    let root: Vec<&str> = lines[5..lines.len() - 1]
        .iter()
        .map(String::as_str)
        .collect();
    for private in ["home", "root", "etc", "run", "var"] {
        assert!(
            !root.contains(&private),
            "/{private} of the host is not in the box: {root:?}"
        );
    }
    let map: Vec<&str> = lines.last().unwrap().split_whitespace().collect();
    assert_eq!(map, ["1000", &caller.uid.to_string(), "1"], "{result}");
}

/// Everything a program could try against its own user namespace:
/// rewriting its maps, regaining groups or uid 0, a nested user or mount
/// namespace, mounting, joining another namespace, renaming the host.
#[test]
fn attacks_on_the_user_namespace_are_refused() {
    skip_unless_privileged!();
    let caller = Caller::new();
    let program = caller.install("userns");
    let result = caller.run_json(&["--time", "2", "--", &program]);
    assert_eq!(result["status"], "Success", "{result}");
    let lines = stdout_lines(&result);
    let attempts: Vec<&String> = lines.iter().filter(|l| !l.starts_with("capeff")).collect();
    assert!(attempts.len() >= 14, "{result}");
    for attempt in attempts {
        assert!(
            attempt.contains(" errno "),
            "succeeded: {attempt}\n{result}"
        );
    }
    let capabilities = lines
        .iter()
        .find_map(|line| line.strip_prefix("capeff "))
        .unwrap_or_else(|| panic!("no capeff line: {result}"));
    assert_eq!(capabilities, "0000000000000000", "{result}");
}

/// The program runs as the caller's uid on the host, so the PID namespace
/// and the private filesystem are all that keep it from the caller's other
/// processes and files: a kill of everything it can see spares them, and
/// the caller's files in the host's /tmp are not there.
#[test]
fn the_callers_processes_and_files_are_out_of_reach() {
    skip_unless_privileged!();
    let caller = Caller::new();
    let secret = PathBuf::from(format!("/tmp/isobox-rootless-secret-{}", caller.uid));
    std::fs::write(&secret, "secret\n").unwrap();
    std::os::unix::fs::chown(&secret, Some(caller.uid), Some(caller.uid)).unwrap();
    let mut outside = Command::new("/bin/sleep")
        .arg("60")
        .uid(caller.uid)
        .gid(caller.uid)
        .spawn()
        .unwrap();
    let script = format!(
        "kill -9 -1; cat {} || echo no secret; ls /tmp | wc -l",
        secret.display()
    );
    let result = caller.run_json(&["--", "/bin/sh", "-c", &script]);
    let still_there = outside.try_wait().unwrap().is_none();
    let _ = outside.kill();
    let _ = outside.wait();
    let _ = std::fs::remove_file(&secret);
    assert!(still_there, "the caller's own process was killed: {result}");
    let lines = stdout_lines(&result);
    assert_eq!(lines, ["no secret", "0"], "{result}");
}

/// Without a cgroup the limits are rlimits, and they hold: CPU time,
/// output, file size, processes; nothing of the caller's uid is left.
#[test]
fn limits_hold_without_a_cgroup() {
    skip_unless_privileged!();
    let caller = Caller::new();
    let spin = caller.run_json(&[
        "--time",
        "0.3",
        "--",
        "/bin/sh",
        "-c",
        "while :; do :; done",
    ]);
    assert_eq!(spin["status"], "TimeLimit", "{spin}");
    let flood = caller.run_json(&[
        "--output-limit",
        "4K",
        "--",
        "/bin/sh",
        "-c",
        "yes | head -c 100000",
    ]);
    assert_eq!(flood["status"], "OutputLimit", "{flood}");
    let big = caller.run_json(&[
        "--fsize",
        "64K",
        "--",
        "/bin/sh",
        "-c",
        "head -c 200000 /dev/zero > /tmp/big",
    ]);
    assert_ne!(big["status"], "Success", "{big}");
    let forks = caller.install("forkbomb");
    let bomb = caller.run_json(&["--processes", "8", "--time", "1", "--", &forks]);
    assert_ne!(bomb["status"], "Success", "{bomb}");
    assert_eq!(bomb["absent_protections"], expected_absent(), "{bomb}");
}

#[test]
fn strict_mode_without_a_delegated_cgroup_is_refused_in_one_line() {
    skip_unless_privileged!();
    let caller = Caller::new();
    let output = caller.run(&["run", "--strict", "--", "/bin/true"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("delegated"), "{stderr}");
}

#[test]
fn check_environment_says_what_rootless_mode_has() {
    skip_unless_privileged!();
    let caller = Caller::new();
    let output = caller.run(&["check-environment"]);
    let report = String::from_utf8_lossy(&output.stdout);
    let line = |topic: &str| {
        report
            .lines()
            .find(|line| line.split_whitespace().nth(1) == Some(topic))
            .unwrap_or_else(|| panic!("no {topic} line in:\n{report}"))
            .to_string()
    };
    let userns = line("rootless:");
    assert!(userns.starts_with("OK"), "{report}");
    assert!(
        userns.contains("isolate boxes in a user namespace"),
        "{report}"
    );
    // No subtree is delegated to a test uid, on v1 or in the v2 VM.
    let cgroup = report
        .lines()
        .find(|line| line.contains("rootless cgroup:"))
        .unwrap_or_else(|| panic!("no rootless cgroup line in:\n{report}"));
    assert!(cgroup.starts_with("WARN"), "{report}");
}

/// A cgroup v2 subtree root made for a test caller, as an operator (or
/// systemd's `Delegate=yes`) would: owned by the caller, with the memory,
/// pids and cpu controllers available, and a leaf `caller` for the
/// caller's own processes (a cgroup with controllers for its children may
/// hold no process itself). Removed when dropped.
struct Delegated {
    dir: PathBuf,
}

impl Delegated {
    fn new(uid: u32) -> Self {
        let root = std::path::Path::new("/sys/fs/cgroup");
        std::fs::write(root.join("cgroup.subtree_control"), "+memory +pids +cpu")
            .expect("enabling controllers at the root");
        let dir = root.join(format!("isobox-test-rootless-{uid}"));
        std::fs::create_dir(&dir).expect("mkdir of the delegated cgroup");
        let delegated = Self { dir };
        for path in [
            delegated.dir.clone(),
            delegated.dir.join("cgroup.procs"),
            delegated.dir.join("cgroup.subtree_control"),
            delegated.dir.join("cgroup.threads"),
        ] {
            std::os::unix::fs::chown(&path, Some(uid), Some(uid)).expect("chown");
        }
        std::fs::create_dir(delegated.dir.join("caller")).expect("mkdir caller");
        delegated
    }

    /// `isobox run --cgroup DIR ARGS` as `caller`, started in the leaf.
    fn run_json(&self, caller: &Caller, args: &[&str]) -> Value {
        self.run_json_in(caller, caller.dir.path(), args)
    }

    /// [`Delegated::run_json`] from the directory `cwd`.
    fn run_json_in(&self, caller: &Caller, cwd: &std::path::Path, args: &[&str]) -> Value {
        self.run_json_from(&self.dir.join("caller"), caller, cwd, args)
    }

    /// [`Delegated::run_json_in`], with isobox started in the cgroup
    /// `start` (the caller's leaf, or the delegated root itself).
    fn run_json_from(
        &self,
        start: &std::path::Path,
        caller: &Caller,
        cwd: &std::path::Path,
        args: &[&str],
    ) -> Value {
        let leaf = start.join("cgroup.procs");
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(r#"echo $$ > "$1" && shift && exec "$@""#)
            .arg("sh")
            .arg(&leaf)
            .args(["setpriv", "--reuid", &caller.uid.to_string()])
            .args(["--regid", &caller.uid.to_string(), "--clear-groups", "--"])
            .arg(caller.path("isobox"))
            .args(["run", "--json", "--cgroup"])
            .arg(&self.dir)
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null());
        let output = command.output().expect("running isobox");
        serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
            panic!(
                "{err}: stdout {:?} stderr {:?}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        })
    }

    /// The cgroups below the delegated root other than the caller's leaf
    /// and the keeper's (see `the_keeper_leaves_its_own_delegated_cgroup`).
    fn leftovers(&self) -> Vec<String> {
        std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .filter(|entry| {
                entry.path().is_dir()
                    && entry.file_name() != "caller"
                    && entry.file_name() != isobox::cgroup::KEEPER_LEAF
            })
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect()
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(self.dir.join("caller"));
        let _ = std::fs::remove_dir(self.dir.join(isobox::cgroup::KEEPER_LEAF));
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// With a cgroup v2 subtree delegated to the caller, a rootless box has
/// cgroup limits and measurements exactly as root's: a memory limit is an
/// OOM kill with the peak measured, the process limit holds, strict mode
/// is allowed, and only the separate uid is absent. On cgroup v1 there is
/// no delegation: naming a directory there is refused in one line.
#[test]
fn a_delegated_cgroup_gives_rootless_boxes_cgroup_limits() {
    skip_unless_privileged!();
    let caller = Caller::new();
    if !std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let output = caller.run(&[
            "run",
            "--cgroup",
            "/sys/fs/cgroup/memory",
            "--",
            "/bin/true",
        ]);
        assert_eq!(output.status.code(), Some(2), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("cgroup v2"), "{stderr}");
        return;
    }
    let delegated = Delegated::new(caller.uid);
    let plain = delegated.run_json(&caller, &["--", "/bin/true"]);
    assert_eq!(plain["status"], "Success", "{plain}");
    assert_eq!(
        plain["absent_protections"],
        serde_json::json!(["separate_user"]),
        "{plain}"
    );
    let memory = caller.install("memory");
    let hog = delegated.run_json(
        &caller,
        &["--mem", "32M", "--time", "5", "--", &memory, "heap"],
    );
    assert_eq!(hog["status"], "MemoryLimit", "{hog}");
    assert_eq!(hog["oom_killed"], true, "{hog}");
    let peak = hog["memory_peak"].as_u64().unwrap();
    assert!(peak > 16 << 20 && peak <= 40 << 20, "{hog}");
    let forks = caller.install("forkbomb");
    let bomb = delegated.run_json(&caller, &["--processes", "8", "--time", "1", "--", &forks]);
    assert_ne!(bomb["status"], "Success", "{bomb}");
    let strict = delegated.run_json(&caller, &["--strict", "--", "/bin/true"]);
    assert_eq!(strict["status"], "Success", "{strict}");
    assert_eq!(delegated.leftovers(), Vec::<String>::new());
}

/// `isobox serve` without root: refused in one line without a delegated
/// cgroup (its boxes are always strict); with one (cgroup v2), it serves
/// go-judge requests from rootless boxes, limits memory, and leaves
/// nothing behind when stopped.
#[test]
fn the_service_runs_rootless_in_a_delegated_cgroup() {
    skip_unless_privileged!();
    let caller = Caller::new();
    let refused = caller.run(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--cgroup"), "{stderr}");
    if !std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        return;
    }
    let delegated = Delegated::new(caller.uid);
    let run_dir = PathBuf::from(format!("/tmp/isobox-{}", caller.uid));
    let mut server = Command::new("/bin/sh")
        .arg("-c")
        .arg(r#"echo $$ > "$1" && shift && exec "$@""#)
        .arg("sh")
        .arg(delegated.dir.join("caller/cgroup.procs"))
        .args(["setpriv", "--reuid", &caller.uid.to_string()])
        .args(["--regid", &caller.uid.to_string(), "--clear-groups", "--"])
        .arg(caller.path("isobox"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--parallelism",
            "2",
            "--cgroup",
        ])
        .arg(&delegated.dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(server.stderr.take().unwrap()));
    let address = lines.by_ref().map_while(Result::ok).find_map(|line| {
        line.strip_prefix("isobox serve: listening on ")
            .map(str::to_string)
    });
    std::thread::spawn(move || lines.for_each(drop));
    let stop = |server: &mut std::process::Child| {
        // SAFETY: kill sends a signal to the server this test started and
        // has not reaped yet.
        unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
        server.wait().unwrap()
    };
    let Some(address) = address else {
        let status = stop(&mut server);
        panic!("the rootless server did not start: {status}");
    };
    let client = reqwest::blocking::Client::new();
    let post = |cmd: Value| -> Value {
        let answer = client
            .post(format!("http://{address}/run"))
            .json(&serde_json::json!({ "cmd": [cmd] }))
            .send()
            .unwrap()
            .json::<Value>()
            .unwrap();
        answer[0].clone()
    };
    let who = post(serde_json::json!({
        "args": ["/bin/sh", "-c", "id -u"],
        "env": ["PATH=/usr/bin:/bin"],
        "files": [{"content": ""}, {"name": "stdout", "max": 1000}, {"name": "stderr", "max": 1000}],
        "cpuLimit": 1_000_000_000u64, "memoryLimit": 64u64 << 20, "procLimit": 10,
    }));
    let hog = post(serde_json::json!({
        "args": ["/usr/bin/python3", "-c", "x = bytearray(200 << 20)"],
        "env": ["PATH=/usr/bin:/bin"],
        "files": [{"content": ""}, {"name": "stdout", "max": 1000}, {"name": "stderr", "max": 1000}],
        "cpuLimit": 5_000_000_000u64, "memoryLimit": 64u64 << 20, "procLimit": 10,
    }));
    let status = stop(&mut server);
    assert!(status.success(), "the server stopped with {status}");
    assert_eq!(who["status"], "Accepted", "{who}");
    assert_eq!(who["files"]["stdout"], "1000\n", "{who}");
    assert_eq!(hog["status"], "Memory Limit Exceeded", "{hog}");
    assert_eq!(delegated.leftovers(), Vec::<String>::new());
    let left: Vec<_> = std::fs::read_dir(&run_dir)
        .map(|dir| dir.flatten().map(|entry| entry.file_name()).collect())
        .unwrap_or_default();
    let _ = std::fs::remove_dir(&run_dir);
    assert!(left.is_empty(), "left in {}: {left:?}", run_dir.display());
}

/// The hostile suite's table through `isobox run` by a caller without
/// root. With a delegated cgroup (cgroup v2) every case must earn what it
/// earns as root. Without one (cgroup v1 here) the limits are rlimits, as
/// for root without a cgroup: every attack must still fail exactly as
/// there; only the memory cases may end otherwise (see
/// [`without_cgroup_also`]).
#[test]
fn the_hostile_suite_holds_rootless() {
    skip_unless_privileged!();
    let caller = Caller::new();
    let host_dir = temp_dir("isobox-rootless-host-", 0o755);
    let delegated = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers")
        .exists()
        .then(|| Delegated::new(caller.uid));
    let mut failures = Vec::new();
    for case in cases(&host_dir.path().display().to_string()) {
        let name = format!("{} {}", case.program, case.args.join(" "));
        let (verdict, details) = rootless_run(&caller, delegated.as_ref(), &case);
        eprintln!("{name}: {verdict}");
        let right = case.expected.contains(&verdict)
            || (delegated.is_none() && without_cgroup_also(&case).contains(&verdict));
        if !right {
            failures.push(format!(
                "{name}: {verdict}, expected one of {:?}: {details}",
                case.expected
            ));
        }
    }
    if let Some(delegated) = &delegated {
        assert_eq!(delegated.leftovers(), Vec::<String>::new());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One case of the table as `isobox run --json` by `caller`, under the
/// hostile suite's limits, in go-judge's words; and the JSON.
fn rootless_run(
    caller: &Caller,
    delegated: Option<&Delegated>,
    case: &Case,
) -> (&'static str, String) {
    let dir = temp_dir("isobox-rootless-case-", 0o755);
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/programs/hostile")
        .join(case.program);
    let script = case.program.ends_with(".sh") || is_python(case.program);
    let program = if script {
        std::fs::copy(&source, dir.path().join(case.program)).unwrap();
        case.program.to_string()
    } else {
        common::copy_executable(
            &common::hostile(case.program),
            &dir.path().join(case.program),
        );
        format!("./{}", case.program)
    };
    let (cpu, wall) = if is_python(case.program) {
        (hostile_cases::PYTHON_CPU, 60_000_000_000u64)
    } else {
        (hostile_cases::CPU, hostile_cases::CLOCK)
    };
    let time = format!("{}", cpu as f64 / 1e9);
    let wall = format!("{}", wall as f64 / 1e9);
    let mut args: Vec<&str> = vec![
        "--time",
        &time,
        "--wall-time",
        &wall,
        "--mem",
        "128M",
        "--processes",
        "16",
        "--fsize",
        "16M",
        "--open-files",
        "256",
        "--output-limit",
        "64K",
    ];
    if case.input {
        std::fs::write(dir.path().join("input.txt"), INPUT).unwrap();
        args.extend(["--copy-in", "input.txt"]);
    }
    if script {
        args.extend(["--copy-in", case.program, "--"]);
        args.push(if is_python(case.program) {
            "/usr/bin/python3"
        } else {
            "/bin/sh"
        });
    } else {
        args.push("--");
    }
    args.push(&program);
    args.extend(case.args.iter().map(String::as_str));
    let result = match delegated {
        Some(delegated) => delegated.run_json_in(caller, dir.path(), &args),
        None => {
            let mut all = vec!["run", "--json"];
            all.extend_from_slice(&args);
            let output = caller
                .isobox(&all)
                .current_dir(dir.path())
                .output()
                .unwrap();
            serde_json::from_slice(&output.stdout)
                .unwrap_or_else(|err| panic!("{err}: {}", String::from_utf8_lossy(&output.stderr)))
        }
    };
    let Ok(status) = serde_json::from_value::<isobox::ExecutionStatus>(result["status"].clone())
    else {
        return ("(no status)", result.to_string());
    };
    let measured = Measured {
        status,
        signal: result["signal"].as_i64().map(|signal| signal as i32),
        // Every program of the table exists in the box: a failed exec is
        // not an outcome here.
        exec_failed: false,
        cpu_time: result["cpu_time"].as_f64().unwrap_or_default(),
        memory_peak: result["memory_peak"].as_u64().unwrap_or_default(),
    };
    (go_judge_of(&measured, cpu), result.to_string())
}

/// What a case may also earn where no cgroup limits memory: a memory hog
/// meets `RLIMIT_AS` (a failed allocation, or a signal) or spins into the
/// CPU limit, and `memfd_create` is refused outright (its pages are in no
/// address space an rlimit bounds).
fn without_cgroup_also(case: &Case) -> &'static [&'static str] {
    if case.program == "memfd" {
        &[NONZERO]
    } else if case.expected.contains(&MLE) {
        &[NONZERO, SIGNALLED, TLE]
    } else {
        &[]
    }
}

/// Set in the copy of this test binary that
/// [`the_library_isolates_a_caller_without_root`] runs as the caller.
const LIBRARY_CHILD: &str = "ISOBOX_ROOTLESS_LIBRARY_CHILD";

/// `ProcessExecutor` in a process without root: the test binary runs
/// itself as the caller, and that copy uses the library directly.
#[test]
fn the_library_isolates_a_caller_without_root() {
    if std::env::var_os(LIBRARY_CHILD).is_some() {
        library_as_the_caller();
        return;
    }
    skip_unless_privileged!();
    let caller = Caller::new();
    let me = caller.path("rootless-tests");
    common::copy_executable(std::env::current_exe().unwrap().to_str().unwrap(), &me);
    let output = Command::new(&me)
        .args(["--exact", "the_library_isolates_a_caller_without_root"])
        .args(["--nocapture", "--test-threads", "1"])
        .current_dir(caller.dir.path())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env(LIBRARY_CHILD, "1")
        .uid(caller.uid)
        .gid(caller.uid)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("library as the caller: done"),
        "{output:?}"
    );
}

/// What [`the_library_isolates_a_caller_without_root`]'s copy checks.
fn library_as_the_caller() {
    use isobox::{ExecutionStatus, IsolateConfig, ProcessExecutor, Protection};
    assert_ne!(
        isobox::sys::effective_uid(),
        0,
        "the copy runs without root"
    );
    let workdir = tempfile::tempdir().unwrap();
    let config = IsolateConfig {
        workdir: workdir.path().to_path_buf(),
        time_limit: Some(std::time::Duration::from_millis(300)),
        wall_time_limit: Some(std::time::Duration::from_secs(10)),
        ..IsolateConfig::default()
    };
    let mut executor = ProcessExecutor::new(config).unwrap();
    assert_eq!(
        executor.absent_protections(),
        [Protection::Cgroup, Protection::SeparateUser]
    );
    let command =
        |script: &str| -> Vec<String> { ["/bin/sh", "-c", script].map(str::to_string).to_vec() };
    let who = executor
        .execute(
            &command("id -u; echo $$; ls /proc | grep -c '^[0-9]'"),
            None,
        )
        .unwrap();
    assert_eq!(who.status, ExecutionStatus::Success, "{who:?}");
    let lines: Vec<&str> = who.stdout.lines().collect();
    assert_eq!(lines[..2], ["1000", "2"], "{who:?}");
    assert!(lines[2].parse::<u32>().unwrap() <= 4, "{who:?}");
    let spin = executor
        .execute(&command("while :; do :; done"), None)
        .unwrap();
    assert_eq!(spin.status, ExecutionStatus::TimeLimit, "{spin:?}");
    executor.cleanup().unwrap();
    println!("library as the caller: done");
}

/// systemd's `Delegate=yes` hands a service or scope the cgroup its
/// processes are in; a keeper started there, alone, given that cgroup,
/// moves into a leaf of its own so that the cgroup can give controllers to
/// the boxes (cgroup v2 only).
#[test]
fn the_keeper_leaves_its_own_delegated_cgroup() {
    skip_unless_privileged!();
    if !std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        // No delegation on cgroup v1: a_delegated_cgroup_gives_rootless_
        // boxes_cgroup_limits checks the refusal there.
        return;
    }
    let caller = Caller::new();
    let delegated = Delegated::new(caller.uid);
    let memory = caller.install("memory");
    let hog = delegated.run_json_from(
        &delegated.dir,
        &caller,
        caller.dir.path(),
        &["--mem", "32M", "--time", "5", "--", &memory, "heap"],
    );
    assert_eq!(hog["status"], "MemoryLimit", "{hog}");
    assert_eq!(
        hog["absent_protections"],
        serde_json::json!(["separate_user"]),
        "{hog}"
    );
    let procs = std::fs::read_to_string(delegated.dir.join("cgroup.procs")).unwrap();
    assert_eq!(procs, "", "nothing is left in the delegated root");
    assert_eq!(delegated.leftovers(), Vec::<String>::new());
}

/// The library-face integration and hostile test binaries that the
/// rootless pass ([`the_suites_hold_rootless`]) runs again as an
/// unprivileged user, each with the tests it leaves out and why.
///
/// Not in the pass at all, by their nature: the isolate face (`isolate_*`,
/// `cli`: box ids, `/etc/isobox.conf`, uids of isolate's boxes, all
/// root's), setuid and installation tests (`isolate_setuid_flows`,
/// `hostile_installations`, `packaging`), the cgroup hierarchy's own tests
/// (`cgroup_real`), the warm boxes (`warm`, `isolate_warm`, `pool`: none
/// without root), and `serve`, which `the_service_runs_rootless_in_a_
/// delegated_cgroup` covers. Of `hostile_resources` the four slowest tests
/// are left out for time; the hostile table that
/// `the_hostile_suite_holds_rootless` runs has their limits. The longest
/// binaries come first (see [`the_suites_hold_rootless`]).
const PASS: &[(&str, &[(&str, &str)])] = &[
    (
        "hostile_resources",
        &[
            ("output_floods", SLOW),
            ("endless_programs", SLOW),
            ("deep_directory_nesting", SLOW),
            ("catching_sigxcpu_without_a_cgroup", SLOW),
        ],
    ),
    ("executor_lifecycle", &[]),
    ("executor_limits", &[]),
    (
        "hostile_process",
        &[
            ("orphans_cannot_hide_cpu_time_from_isolate", ISOLATE_FACE),
            (
                "self_sent_sigxcpu_is_no_time_limit_for_isolate",
                ISOLATE_FACE,
            ),
            ("tiocsti_through_the_isolate_face", ISOLATE_FACE),
            (
                "tty_hack_lends_the_terminal_and_takes_it_back",
                ISOLATE_FACE,
            ),
            (
                "non_root_gets_a_rootless_box",
                "becomes `nobody` itself to test rootless runs: root's test",
            ),
            (
                "rlimits_are_set_not_inherited",
                "gives isobox raised hard limits and a raised priority, which only root can",
            ),
        ],
    ),
    ("hostile_cleanup", &[]),
    ("executor_measure", &[]),
    (
        "jail_stdio",
        &[(
            "unreadable_stdin_file_is_an_internal_error",
            "rootless, the box's user owns every file the caller puts in the box: none is \
             unreadable to it",
        )],
    ),
    ("hostile_privilege", &[]),
    (
        "hostile_syscalls_policy",
        &[
            (
                "isolate_face_syscalls_option_and_configuration_key",
                ISOLATE_FACE,
            ),
            (
                "memory_outside_the_address_space_without_a_cgroup",
                "root's memory guard without --cg; rootless, the hostile table's memfd case \
                 and host_system_v_ipc cover the path without a cgroup",
            ),
        ],
    ),
    (
        "hostile_filesystem",
        &[(
            "hard_link_to_a_setuid_binary",
            "plants a set-user-ID root binary, which only root can make",
        )],
    ),
    ("hostile_network", &[]),
    ("hostile_ordinary", &[]),
    (
        "hostile_review3",
        &[
            (
                "a_raised_cpu_rlimit_and_sigxcpu_is_no_time_limit_for_isolate",
                ISOLATE_FACE,
            ),
            ("memory_in_the_box_tmpfs_without_a_cgroup", ISOLATE_FACE),
            ("setuid_callers_bind_only_what_they_can_read", SETUID),
            ("setuid_callers_use_only_their_own_boxes", SETUID),
            (
                "setuid_install_never_writes_the_meta_file_as_root_for_a_user",
                SETUID,
            ),
            (
                "memory_in_socket_buffers_without_a_cgroup",
                "root's memory guard cgroup bounds kernel memory without --cg; rootless there \
                 is none and kernel memory is unbounded (docs/SECURITY.md)",
            ),
        ],
    ),
    ("hostile_env", &[]),
];

/// Why the slowest tests of `hostile_resources` are left out: 8 to 21 s
/// each as root, one test at a time, and about four times that in the VM.
const SLOW: &str = "time: one of the four slowest, 55 s of the binary's 80; the hostile table \
                    above runs its limits rootless";

/// Why the isolate face's tests are root's only.
const ISOLATE_FACE: &str = "the isolate face (box ids, isolate's uids) needs root";

/// Why the set-user-ID installation's tests are root's only.
const SETUID: &str = "a set-user-ID root installation, which only root can make";

/// The newest test binary `<name>-<hash>` in `deps`, cargo's directory of
/// test binaries, where this one is too.
fn sibling(deps: &std::path::Path, name: &str) -> Option<(PathBuf, std::time::SystemTime)> {
    let prefix = format!("{name}-");
    std::fs::read_dir(deps)
        .ok()?
        .flatten()
        .filter(|entry| {
            let file = entry.file_name();
            let file = file.to_string_lossy();
            file.strip_prefix(&prefix)
                .is_some_and(|hash| hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()))
        })
        .filter_map(|entry| Some((entry.path(), entry.metadata().ok()?.modified().ok()?)))
        .max_by_key(|(_, modified)| *modified)
}

/// The newest change to the sources under `dir` (the crate's `src` and
/// `tests`). A test binary older than that may predate what it should test:
/// `cargo test --test rootless` builds only this binary.
fn newest_source(dir: &std::path::Path) -> std::time::SystemTime {
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        let modified = if meta.is_dir() {
            newest_source(&entry.path())
        } else {
            meta.modified().unwrap()
        };
        newest = newest.max(modified);
    }
    newest
}

/// The rootless pass: the binaries of [`PASS`] run again, as users
/// without root, each binary one test at a time, with
/// `ISOBOX_REQUIRE_PRIVILEGED=1`: only the listed exclusions are left out.
/// The shared helpers (`tests/common`) see [`common::ROOTLESS_PASS`] and
/// build rootless boxes; on cgroup v2 (the VM) the user gets a delegated
/// subtree, made as an operator would, and the tests start in a leaf of
/// it; on cgroup v1 (no delegation) the boxes have rlimits only and the
/// tests whose verdicts depend on it assert that path. Two workers share
/// the binaries, each with a test uid of its own with its own home, runtime
/// and temporary directories (and cgroup), so that a leftover of one is
/// never taken for the other's.
#[test]
fn the_suites_hold_rootless() {
    skip_unless_privileged!();
    let deps = std::env::current_exe().unwrap();
    let deps = deps.parent().unwrap().to_path_buf();
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let sources = newest_source(&manifest.join("src")).max(newest_source(&manifest.join("tests")));
    let binaries: Vec<PassBinary> = PASS
        .iter()
        .map(|(name, excluded)| {
            let (path, built) = sibling(&deps, name).unwrap_or_else(|| {
                panic!(
                    "no test binary {name} in {}: build them all (cargo test)",
                    deps.display()
                )
            });
            assert!(
                built >= sources,
                "{} is older than the sources: build every test binary (cargo test)",
                path.display()
            );
            PassBinary {
                name,
                path,
                excluded,
            }
        })
        .collect();
    for binary in &binaries {
        for (test, why) in binary.excluded {
            eprintln!("*** rootless pass: {}::{test} left out: {why}", binary.name);
        }
    }
    // Each worker takes the next binary when it is done with one: with
    // the longest first, the two end at about the same time.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| pass_as_a_user(&binaries, &next)))
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("a worker of the rootless pass"))
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A test binary of the rootless pass.
struct PassBinary {
    name: &'static str,
    path: PathBuf,
    excluded: &'static [(&'static str, &'static str)],
}

/// Runs binaries of `binaries`, the next one not yet taken (`next`) each
/// time, as a new test uid (see [`the_suites_hold_rootless`]) and returns
/// what failed; panics if anything of the uid is left behind.
fn pass_as_a_user(binaries: &[PassBinary], next: &std::sync::atomic::AtomicUsize) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let uid = common::next_uid();
    let id = uid.to_string();
    let base = temp_dir("isobox-rootless-pass-", 0o755);
    let private = |name: &str, mode: u32| {
        let dir = base.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(uid), Some(uid)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        dir
    };
    let home = private("home", 0o700);
    let runtime = private("run", 0o700);
    // The test programs are built here, and must be searchable by others.
    let tmp = private("tmp", 0o755);
    let delegated = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers")
        .exists()
        .then(|| Delegated::new(uid));
    let mut failures = Vec::new();
    while let Some(binary) = binaries.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
        let mut command = match &delegated {
            Some(delegated) => {
                let mut command = Command::new("/bin/sh");
                command
                    .arg("-c")
                    .arg(r#"echo $$ > "$1" && shift && exec "$@""#)
                    .arg("sh")
                    .arg(delegated.dir.join("caller/cgroup.procs"))
                    .arg("setpriv");
                command
            }
            None => Command::new("setpriv"),
        };
        command
            .args(["--reuid", &id, "--regid", &id, "--clear-groups", "--"])
            .arg(&binary.path)
            .args(["--test-threads", "1", "-q"]);
        for (test, _) in binary.excluded {
            command.args(["--skip", test]);
        }
        if !binary.excluded.is_empty() {
            command.arg("--exact");
        }
        command
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("TMPDIR", &tmp)
            .env("RUST_BACKTRACE", "1")
            .env("ISOBOX_REQUIRE_PRIVILEGED", "1")
            .env(common::ROOTLESS_PASS, "1")
            .stdin(Stdio::null());
        if let Some(delegated) = &delegated {
            command.env(common::ROOTLESS_CGROUP, &delegated.dir);
        }
        let start = std::time::Instant::now();
        let output = command.output().expect("running a test binary");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let summary = stdout
            .lines()
            .rfind(|line| line.starts_with("test result:"))
            .unwrap_or("no result");
        eprintln!(
            "rootless pass: {} as uid {uid}: {summary} ({:.1} s)",
            binary.name,
            start.elapsed().as_secs_f64()
        );
        if !output.status.success() {
            failures.push(format!(
                "{} as uid {uid}: {}\n{stdout}\n{}",
                binary.name,
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        common::assert_no_process_of_uid(uid);
    }
    if let Some(delegated) = &delegated {
        assert_eq!(delegated.leftovers(), Vec::<String>::new());
    }
    drop(delegated);
    drop(base);
    let roots = PathBuf::from(format!("/tmp/isobox-root-{uid}"));
    assert!(!roots.exists(), "{} was made", roots.display());
    let mut left = Vec::new();
    for dir in ["/tmp", "/var/tmp", "/dev/shm"] {
        files_of_uid(std::path::Path::new(dir), uid, 2, &mut left);
    }
    for path in &left {
        let _ = common::remove_tree(path);
    }
    assert!(left.is_empty(), "uid {uid} left files: {left:?}");
    failures
}

/// Collects what belongs to `uid` under `dir`, `depth` levels down, without
/// following links or descending into what it collects.
fn files_of_uid(dir: &std::path::Path, uid: u32, depth: u32, found: &mut Vec<PathBuf>) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if meta.uid() == uid {
            found.push(entry.path());
        } else if meta.is_dir() && depth > 0 {
            files_of_uid(&entry.path(), uid, depth - 1, found);
        }
    }
}
