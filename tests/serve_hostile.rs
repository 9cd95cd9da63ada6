//! The hostile suite through `isobox serve`: every program of
//! `tests/programs/hostile/` runs once in a library box with the hostile
//! suite's limits (`TestBox::hostile`, a shorter wall clock) and once
//! through `POST /run` with the same limits, side by side; the service must give the library's
//! verdict in go-judge's words, and that verdict must be the one the
//! program earns.
#![cfg(feature = "serve")]

mod common;
#[path = "common/server.rs"]
mod server;

use std::path::Path;

use common::{hostile, skip_unless_privileged, TestBox};
use isobox::{ExecutionResult, ExecutionStatus};
use serde_json::{json, Value};
use server::{dir_of, Server};

/// The hostile suite's CPU limit (2 s) and the Python one (30 s); the
/// wall clock 5 s instead of the suite's 10 (a program that sleeps or
/// stops itself waits for it, twice per case).
const CPU: u64 = 2_000_000_000;
const PYTHON_CPU: u64 = 30_000_000_000;
const CLOCK: u64 = 5_000_000_000;
const MIB: u64 = 1 << 20;

/// The service's verdict for what the library measured, as `isobox
/// serve` names it (go-judge's strings), so that the two can be compared.
fn go_judge(result: &ExecutionResult, cpu_limit_ns: u64) -> &'static str {
    let time = (result.cpu_time * 1e9) as u64;
    let status = match result.status {
        ExecutionStatus::Success => "Accepted",
        ExecutionStatus::TimeLimit => "Time Limit Exceeded",
        ExecutionStatus::MemoryLimit => "Memory Limit Exceeded",
        ExecutionStatus::OutputLimit | ExecutionStatus::FileSizeLimit => "Output Limit Exceeded",
        ExecutionStatus::SecurityViolation => "Dangerous Syscall",
        ExecutionStatus::RuntimeError if result.exec_errno.is_some() => "Internal Error",
        ExecutionStatus::RuntimeError => "Nonzero Exit Status",
        ExecutionStatus::Signaled => "Signalled",
        ExecutionStatus::ProcessLimit if result.signal.is_some() => "Signalled",
        ExecutionStatus::ProcessLimit => "Nonzero Exit Status",
        ExecutionStatus::InternalError => return "Internal Error",
    };
    // As the service: over the limit is over the limit.
    if time > cpu_limit_ns {
        "Time Limit Exceeded"
    } else if result.memory_peak > 128 * MIB {
        "Memory Limit Exceeded"
    } else {
        status
    }
}

/// One hostile program and what it may earn.
struct Case {
    /// A file of `tests/programs/hostile/` (a `.c` without its extension).
    program: &'static str,
    args: Vec<String>,
    /// The verdicts the program may earn. With one, library and service
    /// must both give it; with several (races the kernel decides, such as
    /// which of the memory and the tmpfs limit comes first), each must
    /// give one of them.
    expected: &'static [&'static str],
    /// Writes `input.txt` into the box first.
    input: bool,
}

const TLE: &str = "Time Limit Exceeded";
const MLE: &str = "Memory Limit Exceeded";
const OLE: &str = "Output Limit Exceeded";
const ACCEPTED: &str = "Accepted";
const NONZERO: &str = "Nonzero Exit Status";
const SIGNALLED: &str = "Signalled";
const DANGEROUS: &str = "Dangerous Syscall";

fn case(program: &'static str, args: &[&str], expected: &'static [&'static str]) -> Case {
    Case {
        program,
        args: args.iter().map(|arg| arg.to_string()).collect(),
        expected,
        input: false,
    }
}

fn cases(host_dir: &str) -> Vec<Case> {
    let keeper = std::process::id().to_string();
    let mut cases = vec![
        case("bomb.sh", &[], &[TLE, NONZERO, SIGNALLED]),
        case("cpu", &["spin"], &[TLE]),
        case("cpu", &["sigxcpu"], &[TLE]),
        case("cpu", &["stop"], &[TLE]),
        case("creds", &[], &[ACCEPTED]),
        // The daemon dies with the box when its parent's exit ends the run.
        case("daemon", &["serve-hostile"], &[ACCEPTED]),
        case("dns.py", &[], &[ACCEPTED]),
        case("fds", &[], &[ACCEPTED]),
        case("forkbomb", &[], &[TLE]),
        case("inodes", &["files", "/tmp"], &[NONZERO, TLE, MLE]),
        // The library's /box is on the host's disk (no inode limit), the
        // service's a tmpfs (ENOSPC after 131070 levels). A tree that deep
        // once overflowed the stack of the thread that wiped the box and
        // took the service down: the cases after it would see no answer.
        case("inodes", &["deep", "/box"], &[TLE, NONZERO]),
        case("int80", &[], &[DANGEROUS]),
        case("ipc", &["48879"], &[ACCEPTED]),
        case("killall", &[&keeper, "999999"], &[ACCEPTED]),
        case("memfd", &[], &[ACCEPTED]),
        case("memory", &["heap"], &[MLE]),
        // The service's stack limit is the memory limit (go-judge's
        // stackLimit 0), the library box's unlimited: SIGSEGV or OOM.
        case("memory", &["stack"], &[MLE, SIGNALLED]),
        case("memory", &["mmap"], &[MLE]),
        case("memory", &["shared"], &[MLE]),
        case(
            "memory",
            &["files", "/tmp", "serve-hostile"],
            &[NONZERO, MLE],
        ),
        case("net", &["ifaces", "tcp", "127.0.0.1", "9"], &[ACCEPTED]),
        // 1.8 s of CPU under a 2 s limit: a busy machine may tip it.
        case("orphans", &["600"], &[ACCEPTED, TLE]),
        case("plant_links.sh", &[host_dir], &[ACCEPTED]),
        case(
            "policy",
            &["unix", "inet", "vsock", "modify_ldt", "tiocsti"],
            &[ACCEPTED],
        ),
        case(
            "probe",
            &["up", "20", "cwd", "read", "etc/passwd", "list", "."],
            &[ACCEPTED],
        ),
        case("pyescape.py", &[], &[ACCEPTED]),
        case("pymemory.py", &[], &[MLE]),
        case("review3_hog", &["sock"], &[MLE, ACCEPTED]),
        // 32 MiB against the 16 MiB file size limit.
        case("review3_hog", &["file", "/box/hog", "32"], &[OLE]),
        case("review3_i386_lock", &["lockfile"], &[DANGEROUS]),
        case("review3_verdict", &["xcpu"], &[SIGNALLED]),
        case("review3_verdict", &["xfsz"], &[OLE]),
        case(
            "syscalls",
            &[
                "ptrace_init",
                "mount",
                "unshare_user",
                "bpf",
                "fork",
                "thread",
            ],
            &[ACCEPTED],
        ),
        case("threadbomb", &[], &[NONZERO]),
        case("tmp_exec.sh", &["serve-hostile"], &[ACCEPTED]),
        case("tty", &[], &[ACCEPTED]),
        case("whoami", &[], &[ACCEPTED]),
        case("x32", &[], &[DANGEROUS]),
    ];
    for program in ["ordinary", "ordinary.sh", "ordinary.py"] {
        cases.push(Case {
            input: true,
            ..case(program, &[], &[ACCEPTED])
        });
    }
    cases
}

const INPUT: &str = "5\n3\n11\n";

fn is_python(program: &str) -> bool {
    program.ends_with(".py")
}

/// The library's verdict, in go-judge's words.
fn through_the_library(case: &Case, path: &str) -> (&'static str, String) {
    let mut test_box = TestBox::hostile();
    let cpu = if is_python(case.program) {
        test_box.allow_python();
        PYTHON_CPU
    } else {
        test_box.config.wall_time_limit = Some(std::time::Duration::from_nanos(CLOCK));
        CPU
    };
    if case.input {
        std::fs::write(test_box.workdir().join("input.txt"), INPUT).unwrap();
    }
    let installed = test_box.install(path);
    let mut words: Vec<&str> = Vec::new();
    if is_python(case.program) {
        words.push("/usr/bin/python3");
    }
    words.push(&installed);
    words.extend(case.args.iter().map(String::as_str));
    let result = test_box.run_hostile(&words);
    let verdict = go_judge(&result, cpu);
    test_box.remove();
    (verdict, format!("{result:?}"))
}

/// The service's answer to the same program with the same limits.
fn through_the_service(server: &Server, case: &Case, path: &str) -> Value {
    let python = is_python(case.program);
    let mut args = Vec::new();
    if python {
        args.push("/usr/bin/python3".to_string());
    }
    args.push("prog".to_string());
    args.extend(case.args.iter().cloned());
    let mut copy_in = json!({"prog": {"src": path}});
    if case.input {
        copy_in["input.txt"] = json!({"content": INPUT});
    }
    server.run(json!({
        "args": args,
        "env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
        "files": [null, {"name": "stdout", "max": 65536}, {"name": "stderr", "max": 65536}],
        "copyIn": copy_in,
        "cpuLimit": if python { PYTHON_CPU } else { CPU },
        "clockLimit": if python { 60_000_000_000u64 } else { CLOCK },
        "memoryLimit": 128 * MIB,
        "procLimit": 16,
    }))
}

#[test]
fn every_hostile_program_gets_the_library_verdict() {
    skip_unless_privileged!();
    let host_dir = tempfile::tempdir().unwrap();
    std::fs::write(host_dir.path().join("precious"), "keep me").unwrap();
    let cases = cases(&host_dir.path().display().to_string());
    let paths: Vec<String> = cases.iter().map(|case| hostile(case.program)).collect();
    // Compiled programs live in the test programs directory, scripts in
    // the source tree.
    let mut prefixes: Vec<String> = paths.iter().map(|path| dir_of(path)).collect();
    prefixes.sort();
    prefixes.dedup();
    let mut flags = vec!["--limits-cap", "filesize=16M", "--parallelism", "1"];
    for prefix in &prefixes {
        flags.extend(["--src-prefix", prefix.as_str()]);
    }
    let server = Server::start(&flags);

    let mut failures = Vec::new();
    for (case, path) in cases.iter().zip(&paths) {
        let name = format!("{} {}", case.program, case.args.join(" "));
        // Side by side: the verdicts are of CPU time and memory, which
        // the other run does not change.
        let ((library, details), service) = std::thread::scope(|scope| {
            let library = scope.spawn(|| through_the_library(case, path));
            let service = through_the_service(&server, case, path);
            (library.join().expect("the library run"), service)
        });
        let served = service["status"].as_str().unwrap_or("(none)").to_string();
        eprintln!("{name}: library {library}, service {served}");
        if !case.expected.contains(&library) {
            failures.push(format!(
                "{name}: the library gave {library}, expected one of {:?}: {details}",
                case.expected
            ));
        }
        if !case.expected.contains(&served.as_str()) {
            failures.push(format!(
                "{name}: the service gave {served}, expected one of {:?}: {service}",
                case.expected
            ));
        }
        if case.expected.len() == 1 && served != library {
            failures.push(format!(
                "{name}: the service gave {served}, the library {library}: {service}"
            ));
        }
    }
    // The host directory the links pointed at is untouched, and the box
    // is clean for the next request.
    assert_eq!(
        std::fs::read_to_string(host_dir.path().join("precious")).unwrap(),
        "keep me"
    );
    let after = server.run(json!({
        "args": ["/bin/sh", "-c", "ls -A /w /tmp"],
        "env": ["PATH=/usr/bin:/bin"],
        "files": [null, {"name": "stdout", "max": 4096}, {"name": "stderr", "max": 4096}],
        "cpuLimit": CPU,
        "memoryLimit": 64 * MIB,
        "procLimit": 4,
    }));
    assert_eq!(after["files"]["stdout"], "/tmp:\n\n/w:\n", "{after}");
    assert!(
        Path::new(&host_dir.path().join("precious")).is_file(),
        "the link target is gone"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
