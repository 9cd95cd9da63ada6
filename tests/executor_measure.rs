//! What the executor measures, checked against programs that use a known
//! amount of CPU time and memory by their own clocks, and how it reports the
//! way a program ended.

mod common;

use common::{assert_output, assert_status, program, skip_unless_privileged, Brief, TestBox, MIB};
use isobox::ExecutionStatus;

/// A 0.5 s CPU busy loop reports cpu_time 0.45–0.60 and a consistent wall_time.
#[test]
fn cpu_time_of_a_half_second_busy_loop() {
    skip_unless_privileged!();
    let test_box = TestBox::new();
    let spin = test_box.install(&program("spin_cpu"));
    let result = test_box.run(&[&spin, "0.5"]);
    assert_status(&result, ExecutionStatus::Success);
    assert_eq!(result.exit_code, Some(0), "{:?}", Brief(&result));
    assert!(
        (0.45..=0.60).contains(&result.cpu_time),
        "cpu_time {} for a 0.5 s loop",
        result.cpu_time
    );
    assert!(result.wall_time > 0.0, "{:?}", Brief(&result));
    assert!(
        result.wall_time >= result.cpu_time / 2.0,
        "{:?}",
        Brief(&result)
    );
    assert!(!result.killed && !result.oom_killed, "{:?}", Brief(&result));
    assert_eq!(result.message, "", "{:?}", Brief(&result));
}

/// Two threads spinning 0.4 s of their own CPU each report cpu_time ≈ 0.8.
#[test]
fn cpu_time_adds_up_over_threads() {
    skip_unless_privileged!();
    let test_box = TestBox::new();
    let spin_threads = test_box.install(&program("spin_threads"));
    let result = test_box.run(&[&spin_threads, "2", "0.4"]);
    assert_status(&result, ExecutionStatus::Success);
    assert!(
        (0.7..=0.95).contains(&result.cpu_time),
        "cpu_time {} for two 0.4 s threads",
        result.cpu_time
    );
    // Two threads can at most halve the wall time.
    assert!(
        result.wall_time * 2.0 + 0.05 >= result.cpu_time,
        "{:?}",
        Brief(&result)
    );
}

/// Touching exactly 100 MiB reports memory_peak 100–115 MiB and max_rss ≥ 100 MiB.
#[test]
fn memory_peak_of_100_mib() {
    skip_unless_privileged!();
    let test_box = TestBox::new();
    let alloc_touch = test_box.install(&program("alloc_touch"));
    let result = test_box.run(&[&alloc_touch, "100"]);
    assert_status(&result, ExecutionStatus::Success);
    assert!(
        (100 * MIB..=115 * MIB).contains(&result.memory_peak),
        "memory_peak {} MiB for 100 MiB touched",
        result.memory_peak as f64 / MIB as f64
    );
    assert!(
        result.max_rss >= 100 * MIB,
        "max_rss {} MiB for 100 MiB touched",
        result.max_rss as f64 / MIB as f64
    );
    assert!(!result.oom_killed, "{:?}", Brief(&result));
}

/// A program that sleeps a few times has voluntary context switches counted.
#[test]
fn sleeping_program_has_voluntary_context_switches() {
    skip_unless_privileged!();
    let test_box = TestBox::new();
    let sleeper = test_box.install(&program("sleeper"));
    let result = test_box.run(&[&sleeper, "5", "20"]);
    assert_output(&result, "sleeping\n");
    assert!(
        result.voluntary_context_switches > 0,
        "{:?}",
        Brief(&result)
    );
    assert!(result.wall_time >= 0.1, "{:?}", Brief(&result));
}

/// `exit 3` is RuntimeError with exit_code 3 and no signal.
#[test]
fn nonzero_exit_is_runtime_error_with_its_code() {
    skip_unless_privileged!();
    let test_box = TestBox::new();
    let result = test_box.run(&["/bin/sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_status(&result, ExecutionStatus::RuntimeError);
    assert_eq!(result.exit_code, Some(3), "{:?}", Brief(&result));
    assert_eq!(result.signal, None, "{:?}", Brief(&result));
    assert!(!result.killed, "{:?}", Brief(&result));
    assert_eq!(result.exec_errno, None, "{:?}", Brief(&result));
    assert_eq!(result.stdout, "out\n", "{:?}", Brief(&result));
    assert_eq!(result.stderr, "err\n", "{:?}", Brief(&result));
}

/// A program that SIGKILLs itself is Signaled with signal 9, not killed by the sandbox.
#[test]
fn self_sigkill_is_signaled_not_a_sandbox_kill() {
    skip_unless_privileged!();
    let test_box = TestBox::new();
    let self_kill = test_box.install(&program("self_kill"));
    let result = test_box.run(&[&self_kill]);
    assert_status(&result, ExecutionStatus::Signaled);
    assert_eq!(result.signal, Some(libc::SIGKILL), "{:?}", Brief(&result));
    assert_eq!(result.exit_code, None, "{:?}", Brief(&result));
    assert!(!result.killed, "{:?}", Brief(&result));
    assert!(!result.oom_killed, "{:?}", Brief(&result));
}

/// get_resource_usage() returns the last run's CPU seconds and peak bytes.
#[test]
fn resource_usage_is_the_last_runs() {
    skip_unless_privileged!();
    let test_box = TestBox::new();
    let alloc_touch = test_box.install(&program("alloc_touch"));
    let spin = test_box.install(&program("spin_cpu"));
    let mut executor = test_box.executor();

    let big = executor
        .execute(&common::argv(&[&alloc_touch, "100"]), None)
        .expect("execute");
    assert_status(&big, ExecutionStatus::Success);
    let (cpu, peak) = executor.get_resource_usage();
    if !executor.has_cgroup() {
        // Rootless without a delegated cgroup: nothing to read it from, as
        // documented.
        assert_eq!((cpu, peak), (0.0, 0));
        assert!(big.memory_peak >= 100 * MIB, "{:?}", Brief(&big));
        executor.cleanup().expect("cleanup");
        common::assert_no_process_of_uid(test_box.uid);
        return;
    }
    assert!(peak >= 100 * MIB, "peak {peak} after touching 100 MiB");
    assert!(
        (cpu - big.cpu_time).abs() < 0.05,
        "usage cpu {cpu} vs result {}",
        big.cpu_time
    );

    let busy = executor
        .execute(&common::argv(&[&spin, "0.3"]), None)
        .expect("execute");
    assert_status(&busy, ExecutionStatus::Success);
    let (cpu, peak) = executor.get_resource_usage();
    assert!((0.28..=0.45).contains(&cpu), "cpu {cpu} after a 0.3 s loop");
    assert!(peak > 0, "no peak after a run");
    assert!(
        peak < 20 * MIB,
        "peak {peak} still holds the previous run's"
    );
    assert!(
        (cpu - busy.cpu_time).abs() < 0.05,
        "usage cpu {cpu} vs result {}",
        busy.cpu_time
    );

    let paths = executor.cgroup_paths();
    executor.cleanup().expect("cleanup");
    common::assert_paths_gone(&paths);
    common::assert_no_process_of_uid(test_box.uid);
}
