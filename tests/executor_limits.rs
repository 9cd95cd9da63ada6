//! Every limit of `IsolateConfig`, enforced on real programs in real boxes:
//! the verdict, the figures that explain it, and a clean host afterwards.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{
    assert_output, assert_status, each_case, program, skip_unless_privileged, Brief, TestBox, MIB,
};
use isobox::ExecutionStatus;

/// A missing program is a prompt RuntimeError carrying ENOENT, not a hang.
#[test]
fn missing_program_is_runtime_error_with_enoent() {
    skip_unless_privileged!();
    let test_box = TestBox::new();
    let started = Instant::now();
    let result = test_box.run(&["/nonexistent/isobox-no-such-program", "arg"]);
    assert_status(&result, ExecutionStatus::RuntimeError);
    assert!(
        result
            .message
            .contains("exec failed: No such file or directory"),
        "message: {:?}",
        result.message
    );
    assert_eq!(
        result.exec_errno,
        Some(libc::ENOENT),
        "{:?}",
        Brief(&result)
    );
    assert!(!result.killed, "{:?}", Brief(&result));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

/// A file without execute permission is a RuntimeError carrying EACCES.
#[test]
fn non_executable_file_is_runtime_error_with_eacces() {
    skip_unless_privileged!();
    let test_box = TestBox::new();
    let file = test_box.workdir().join("not_executable");
    fs::write(&file, "#!/bin/sh\necho should not run\n").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let result = test_box.run(&["./not_executable"]);
    assert_status(&result, ExecutionStatus::RuntimeError);
    assert_eq!(
        result.exec_errno,
        Some(libc::EACCES),
        "{:?}",
        Brief(&result)
    );
    assert!(
        result.message.contains("exec failed"),
        "{:?}",
        Brief(&result)
    );
    assert_eq!(result.stdout, "", "{:?}", Brief(&result));
}

/// The wall-clock limit kills a sleeping program, says "wall", keeps its output.
#[test]
fn wall_time_limit_kills_a_sleeper_and_keeps_output() {
    skip_unless_privileged!();
    let mut test_box = TestBox::new();
    test_box.config.wall_time_limit = Some(Duration::from_secs(1));
    let sleeper = test_box.install(&program("sleeper"));
    let started = Instant::now();
    let result = test_box.run(&[&sleeper, "-1", "1000"]);
    assert_status(&result, ExecutionStatus::TimeLimit);
    assert!(result.killed, "{:?}", Brief(&result));
    assert!(
        result.message.to_lowercase().contains("wall"),
        "message: {:?}",
        result.message
    );
    assert_eq!(result.stdout, "sleeping\n", "{:?}", Brief(&result));
    assert!(result.wall_time >= 0.99, "{:?}", Brief(&result));
    assert!(result.wall_time < 4.0, "{:?}", Brief(&result));
    assert!(result.cpu_time < 0.5, "{:?}", Brief(&result));
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
}

/// One run of `spin_cpu` in the table of [`cpu_time_limits`].
struct Spin {
    /// The case's name in a failure (the test it was before the table).
    name: &'static str,
    /// `time_limit`, in milliseconds.
    time_limit_ms: u64,
    /// `extra_time`, in milliseconds, if any.
    extra_time_ms: Option<u64>,
    /// How many seconds of CPU the program burns before it exits.
    seconds: &'static str,
    /// Whether the keeper must kill it (or it exits on its own, still
    /// over the limit).
    killed: bool,
    /// Where the measured CPU time must be.
    cpu_time: std::ops::Range<f64>,
}

/// The CPU time limit and `extra_time`: a spinner is killed soon after the
/// limit; extra_time is absolute (the kill comes at max(time_limit,
/// extra_time), not their sum); a run over time_limit but under extra_time
/// finishes, yet is TimeLimit. A killed program is still measured: the
/// proxy reaps it and reports.
#[test]
fn cpu_time_limits() {
    skip_unless_privileged!();
    let spins = [
        Spin {
            name: "cpu_time_limit_kills_a_spinner",
            time_limit_ms: 500,
            extra_time_ms: None,
            seconds: "1000",
            killed: true,
            cpu_time: 0.5..1.0,
        },
        // Killing at time_limit + extra_time would mean 1.3 s.
        Spin {
            name: "extra_time_is_an_absolute_kill_threshold",
            time_limit_ms: 500,
            extra_time_ms: Some(800),
            seconds: "1000",
            killed: true,
            cpu_time: 0.8..1.2,
        },
        Spin {
            name: "finishing_within_extra_time_is_still_time_limit",
            time_limit_ms: 200,
            extra_time_ms: Some(1000),
            seconds: "0.3",
            killed: false,
            cpu_time: 0.3..1.0,
        },
    ];
    each_case(
        &spins,
        |spin| spin.name,
        |spin| {
            let mut test_box = TestBox::new();
            test_box.config.time_limit = Some(Duration::from_millis(spin.time_limit_ms));
            test_box.config.extra_time = spin.extra_time_ms.map(Duration::from_millis);
            test_box.config.wall_time_limit = Some(Duration::from_secs(20));
            let spin_cpu = test_box.install(&program("spin_cpu"));
            let result = test_box.run(&[&spin_cpu, spin.seconds]);
            assert_status(&result, ExecutionStatus::TimeLimit);
            // Without a cgroup (rootless, no delegated subtree) the keeper
            // has no CPU time of the box to watch: RLIMIT_CPU, in whole
            // seconds, ends the spinner, by the kernel's SIGKILL at the
            // hard limit a second later (at most 2 s of CPU for these).
            let (killed, cpu_time) = if common::has_cgroup() {
                (spin.killed, spin.cpu_time.clone())
            } else {
                (false, spin.cpu_time.start..2.5)
            };
            assert_eq!(result.killed, killed, "{:?}", Brief(&result));
            assert!(
                cpu_time.contains(&result.cpu_time),
                "CPU time out of {:?}: {:?}",
                cpu_time,
                Brief(&result)
            );
            if spin.killed {
                assert!(result.wall_time < 10.0, "{:?}", Brief(&result));
                assert_eq!(result.signal, Some(libc::SIGKILL), "{:?}", Brief(&result));
                assert!(
                    result.max_rss > 0,
                    "no max RSS after a kill: {:?}",
                    Brief(&result)
                );
            } else {
                assert_eq!(result.exit_code, Some(0), "{:?}", Brief(&result));
            }
        },
    );
}

/// A memory bomb is MemoryLimit with oom_killed, and its peak stays at the limit.
#[test]
fn memory_bomb_is_memory_limit() {
    skip_unless_privileged!();
    let limit = 64 * MIB;
    let mut test_box = TestBox::new();
    test_box.config.memory_limit = Some(limit);
    test_box.config.wall_time_limit = Some(Duration::from_secs(20));
    let bomb = test_box.install(&program("memory_bomb"));
    let result = test_box.run(&[&bomb]);
    if common::has_cgroup() {
        assert_status(&result, ExecutionStatus::MemoryLimit);
        assert!(result.oom_killed, "{:?}", Brief(&result));
    } else {
        // Rootless without a delegated cgroup: RLIMIT_AS refuses the
        // allocation, which the bomb reports; no OOM kill to tell of.
        assert_status(&result, ExecutionStatus::RuntimeError);
        assert!(
            result.stderr.contains("malloc failed"),
            "{:?}",
            Brief(&result)
        );
        assert!(!result.oom_killed, "{:?}", Brief(&result));
    }
    assert!(result.memory_peak >= limit / 2, "{:?}", Brief(&result));
    assert!(result.memory_peak <= limit + MIB, "{:?}", Brief(&result));
}

/// Forking or creating threads past process_limit is ProcessLimit (the
/// program reports the refusal); under it, both succeed.
#[test]
fn process_limit_counts_forks_and_threads() {
    skip_unless_privileged!();
    // (case, fork_many's mode, what it says when the kernel refuses)
    let modes = [
        (
            "forks_beyond_process_limit_are_process_limit",
            "fork",
            "fork refused",
        ),
        (
            "threads_beyond_process_limit_are_process_limit",
            "thread",
            "pthread_create refused",
        ),
    ];
    each_case(
        &modes,
        |(name, _, _)| name,
        |&(_, mode, refused)| {
            let mut test_box = TestBox::new();
            test_box.config.process_limit = Some(8);
            let fork_many = test_box.install(&program("fork_many"));

            let result = test_box.run(&[&fork_many, mode, "50"]);
            // Without a cgroup, RLIMIT_NPROC refuses the fork just the
            // same, but no pids counter tells the keeper it was the limit.
            let verdict = if common::has_cgroup() {
                ExecutionStatus::ProcessLimit
            } else {
                ExecutionStatus::RuntimeError
            };
            assert_status(&result, verdict);
            assert!(result.stderr.contains(refused), "{:?}", Brief(&result));

            let result = test_box.run(&[&fork_many, mode, "3"]);
            assert_output(&result, "created 3\n");
        },
    );
}

/// Writing past file_size_limit is FileSizeLimit by SIGXFSZ at exactly the limit.
#[test]
fn file_size_limit_is_sigxfsz() {
    skip_unless_privileged!();
    let limit = MIB;
    let mut test_box = TestBox::new();
    test_box.config.file_size_limit = Some(limit);
    let write_file = test_box.install(&program("write_file"));

    let big = (16 * MIB).to_string();
    let result = test_box.run(&[&write_file, "big.bin", &big]);
    assert_status(&result, ExecutionStatus::FileSizeLimit);
    assert_eq!(result.signal, Some(libc::SIGXFSZ), "{:?}", Brief(&result));
    let written = fs::metadata(test_box.workdir().join("big.bin"))
        .expect("big.bin in the workdir")
        .len();
    assert_eq!(written, limit);

    let small = (limit / 2).to_string();
    let result = test_box.run(&[&write_file, "small.bin", &small]);
    assert_status(&result, ExecutionStatus::Success);
}

/// Recursing past stack_limit dies (SIGSEGV or RuntimeError), never succeeds.
#[test]
fn recursion_beyond_stack_limit_fails() {
    skip_unless_privileged!();
    let mut test_box = TestBox::new();
    // 6 MiB fits in the usual 8 MiB default, so only the limit can stop it.
    test_box.config.stack_limit = Some(2 * MIB);
    let recurse = test_box.install(&program("recurse"));
    let result = test_box.run(&[&recurse, "6"]);
    let segv = result.status == ExecutionStatus::Signaled && result.signal == Some(libc::SIGSEGV);
    assert!(
        segv || result.status == ExecutionStatus::RuntimeError,
        "{:?}",
        Brief(&result)
    );
    assert_eq!(result.stdout, "", "{:?}", Brief(&result));
}

/// Recursion within stack_limit succeeds, and no stack_limit means unlimited.
#[test]
fn recursion_within_stack_limit_succeeds() {
    skip_unless_privileged!();
    let mut test_box = TestBox::new();
    let recurse = test_box.install(&program("recurse"));

    test_box.config.stack_limit = Some(64 * MIB);
    let result = test_box.run(&[&recurse, "16"]);
    assert_status(&result, ExecutionStatus::Success);
    assert!(
        result.stdout.starts_with("depth 16384"),
        "{:?}",
        Brief(&result)
    );

    // 32 MiB is beyond the usual 8 MiB default, so this needs "unlimited".
    test_box.config.stack_limit = None;
    let result = test_box.run(&[&recurse, "32"]);
    assert_status(&result, ExecutionStatus::Success);
    assert!(
        result.stdout.starts_with("depth 32768"),
        "{:?}",
        Brief(&result)
    );
}

/// open_files_limit caps the descriptors a program can hold.
#[test]
fn open_files_limit_caps_descriptors() {
    skip_unless_privileged!();
    let limit = 50;
    let mut test_box = TestBox::new();
    test_box.config.open_files_limit = Some(limit);
    let dup_fds = test_box.install(&program("dup_fds"));
    let result = test_box.run(&[&dup_fds]);
    assert_status(&result, ExecutionStatus::Success);
    let reached: u64 = result.stdout.trim().parse().expect("a count on stdout");
    assert!(
        (limit - 5..=limit).contains(&reached),
        "reached {reached} descriptors with a limit of {limit}"
    );
}

/// Core dumps are off (RLIMIT_CORE 0, soft and hard), and abort leaves no core.
#[test]
fn core_dumps_are_off() {
    skip_unless_privileged!();
    let test_box = TestBox::new();
    // Installed under a name that a core file could not have.
    let core_limit = test_box.install_as(&program("core_limit"), "abort_program");
    let result = test_box.run(&[&core_limit]);
    assert_eq!(result.stdout, "core 0 0\n", "{:?}", Brief(&result));
    assert_status(&result, ExecutionStatus::Signaled);
    assert_eq!(result.signal, Some(libc::SIGABRT), "{:?}", Brief(&result));
    let cores: Vec<_> = fs::read_dir(test_box.workdir())
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("core"))
        .collect();
    assert!(cores.is_empty(), "core files: {cores:?}");
}

/// A 50 MB flood with a 1 KiB output limit keeps 1 KiB, drops the rest, never blocks.
#[test]
fn output_flood_is_cut_at_the_limit_without_blocking() {
    skip_unless_privileged!();
    let total: u64 = 50_000_000;
    let mut test_box = TestBox::new();
    test_box.config.output_limit = Some(1024);
    test_box.config.wall_time_limit = Some(Duration::from_secs(30));
    test_box.config.time_limit = Some(Duration::from_secs(20));
    let flood = test_box.install(&program("flood"));
    let result = test_box.run(&[&flood, "out", &total.to_string()]);
    assert_status(&result, ExecutionStatus::OutputLimit);
    assert_eq!(
        result.exit_code,
        Some(0),
        "the flood did not finish: {:?}",
        Brief(&result)
    );
    assert!(!result.killed, "{:?}", Brief(&result));
    assert_eq!(result.stdout, "o".repeat(1024));
    assert_eq!(result.stdout_dropped, total - 1024, "{:?}", Brief(&result));
    assert_eq!(result.stderr_dropped, 0, "{:?}", Brief(&result));
    assert!(result.wall_time < 15.0, "{:?}", Brief(&result));
}

/// Floods on stdout and stderr at once are both capped and read concurrently.
#[test]
fn both_streams_are_capped_independently() {
    skip_unless_privileged!();
    let total = 8 * MIB;
    let mut test_box = TestBox::new();
    test_box.config.output_limit = Some(1024);
    test_box.config.wall_time_limit = Some(Duration::from_secs(30));
    let flood = test_box.install(&program("flood"));

    let result = test_box.run(&[&flood, "both", &total.to_string()]);
    assert_status(&result, ExecutionStatus::OutputLimit);
    assert_eq!(result.exit_code, Some(0), "{:?}", Brief(&result));
    assert_eq!(result.stdout, "o".repeat(1024));
    assert_eq!(result.stderr, "e".repeat(1024));
    assert_eq!(result.stdout_dropped, total - 1024, "{:?}", Brief(&result));
    assert_eq!(result.stderr_dropped, total - 1024, "{:?}", Brief(&result));

    // Within the limit nothing is dropped and the verdict is Success.
    let result = test_box.run(&[&flood, "err", "1000"]);
    assert_status(&result, ExecutionStatus::Success);
    assert_eq!(result.stderr, "e".repeat(1000));
    assert_eq!(result.stderr_dropped, 0, "{:?}", Brief(&result));
    assert_eq!(result.stdout_dropped, 0, "{:?}", Brief(&result));
}
