//! The hostile suite's table: every program of `tests/programs/hostile/`
//! with its arguments and the verdicts it may earn (in go-judge's words,
//! as `isobox serve` gives them), the limits it runs under, and its run
//! through the library. Shared by `tests/serve_hostile.rs` (the service
//! side by side with the library) and `tests/native_lang.rs` (the
//! language presets side by side with the library), which include it with
//! `#[path]`.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use crate::common::TestBox;
use isobox::{ExecutionResult, ExecutionStatus};

/// The hostile suite's CPU limit (2 s) and the Python one (30 s); the
/// wall clock 5 s instead of the suite's 10 (a program that sleeps or
/// stops itself waits for it, twice per case).
pub const CPU: u64 = 2_000_000_000;
pub const PYTHON_CPU: u64 = 30_000_000_000;
pub const CLOCK: u64 = 5_000_000_000;
pub const MIB: u64 = 1 << 20;

/// What a run measured that decides its verdict in go-judge's words: the
/// library's [`ExecutionResult`] or the JSON of `isobox run --json`.
pub struct Measured {
    pub status: ExecutionStatus,
    pub signal: Option<i32>,
    /// The program never started (`exec` failed).
    pub exec_failed: bool,
    /// Seconds.
    pub cpu_time: f64,
    /// Bytes.
    pub memory_peak: u64,
}

impl From<&ExecutionResult> for Measured {
    fn from(result: &ExecutionResult) -> Self {
        Self {
            status: result.status,
            signal: result.signal,
            exec_failed: result.exec_errno.is_some(),
            cpu_time: result.cpu_time,
            memory_peak: result.memory_peak,
        }
    }
}

/// The service's verdict for what the library measured, as `isobox
/// serve` names it (go-judge's strings), so that the two can be compared.
pub fn go_judge(result: &ExecutionResult, cpu_limit_ns: u64) -> &'static str {
    go_judge_of(&Measured::from(result), cpu_limit_ns)
}

/// [`go_judge`] of any run's measurements.
pub fn go_judge_of(result: &Measured, cpu_limit_ns: u64) -> &'static str {
    let time = (result.cpu_time * 1e9) as u64;
    let status = match result.status {
        ExecutionStatus::Success => "Accepted",
        ExecutionStatus::TimeLimit => "Time Limit Exceeded",
        ExecutionStatus::MemoryLimit => "Memory Limit Exceeded",
        ExecutionStatus::OutputLimit | ExecutionStatus::FileSizeLimit => "Output Limit Exceeded",
        ExecutionStatus::SecurityViolation => "Dangerous Syscall",
        ExecutionStatus::RuntimeError if result.exec_failed => "Internal Error",
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
pub struct Case {
    /// A file of `tests/programs/hostile/` (a `.c` without its extension).
    pub program: &'static str,
    pub args: Vec<String>,
    /// The verdicts the program may earn. With one, library and service
    /// must both give it; with several (races the kernel decides, such as
    /// which of the memory and the tmpfs limit comes first), each must
    /// give one of them.
    pub expected: &'static [&'static str],
    /// Writes `input.txt` into the box first.
    pub input: bool,
}

pub const TLE: &str = "Time Limit Exceeded";
pub const MLE: &str = "Memory Limit Exceeded";
pub const OLE: &str = "Output Limit Exceeded";
pub const ACCEPTED: &str = "Accepted";
pub const NONZERO: &str = "Nonzero Exit Status";
pub const SIGNALLED: &str = "Signalled";
pub const DANGEROUS: &str = "Dangerous Syscall";

pub fn case(program: &'static str, args: &[&str], expected: &'static [&'static str]) -> Case {
    Case {
        program,
        args: args.iter().map(|arg| arg.to_string()).collect(),
        expected,
        input: false,
    }
}

pub fn cases(host_dir: &str) -> Vec<Case> {
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
        // The library's directories and their dentries are kernel memory
        // charged to the run: on a slow machine the memory limit can come
        // before the CPU limit (seen: 128 MiB at 1.94 s of 2 s).
        case("inodes", &["deep", "/box"], &[TLE, NONZERO, MLE]),
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

pub const INPUT: &str = "5\n3\n11\n";

pub fn is_python(program: &str) -> bool {
    program.ends_with(".py")
}

/// The library's verdict, in go-judge's words.
pub fn through_the_library(case: &Case, path: &str) -> (&'static str, String) {
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
