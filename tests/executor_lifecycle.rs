//! The life of an executor: construction (strict or not), several runs in
//! one executor without state leaking between them, killing the whole
//! process tree, standard input, cleanup and Drop.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{
    argv, assert_no_process_of_uid, assert_output, assert_paths_gone, assert_status, program,
    skip_unless_privileged, Brief, TestBox, MIB,
};
use isobox::{ExecutionStatus, IsolateConfig, IsolateError, ProcessExecutor, Stdin};

/// An empty command is a configuration error.
#[test]
fn empty_command_is_a_config_error() {
    let workdir = tempfile::tempdir().unwrap();
    let config = IsolateConfig {
        workdir: workdir.path().join("box"),
        wall_time_limit: Some(Duration::from_secs(5)),
        ..IsolateConfig::default()
    };
    let mut executor = ProcessExecutor::new(config).expect("non-strict new");
    let outcome = executor.execute(&[], None);
    assert!(
        matches!(outcome, Err(IsolateError::Config(_))),
        "{outcome:?}"
    );
    executor.cleanup().expect("cleanup");
}

/// Strict mode refuses a cgroup root that does not exist.
#[test]
fn strict_mode_refuses_a_missing_cgroup_root() {
    let workdir = tempfile::tempdir().unwrap();
    let config = IsolateConfig {
        workdir: workdir.path().join("box"),
        strict_mode: true,
        cgroup_root: Some(PathBuf::from("/nonexistent")),
        ..IsolateConfig::default()
    };
    let outcome = ProcessExecutor::new(config);
    assert!(
        matches!(outcome, Err(IsolateError::Config(_))),
        "{outcome:?}"
    );
}

/// Strict mode starts as root with cgroups, and cleanup() removes its cgroup.
#[test]
fn strict_mode_starts_and_cleanup_removes_the_cgroup() {
    skip_unless_privileged!();
    let test_box = TestBox::new();
    let mut executor = test_box.executor();
    if !common::has_cgroup() {
        // Rootless without a delegated cgroup: no strict mode, no cgroup.
        assert!(!test_box.config.strict_mode);
        assert!(!executor.has_cgroup() && executor.cgroup_paths().is_empty());
        return;
    }
    assert!(executor.has_cgroup());
    let result = executor
        .execute(&argv(&["/bin/echo", "hi"]), None)
        .expect("execute");
    assert_output(&result, "hi\n");
    let paths = executor.cgroup_paths();
    assert!(!paths.is_empty(), "a strict executor without cgroup paths");
    for path in &paths {
        assert!(path.is_dir(), "{} does not exist", path.display());
    }
    executor.cleanup().expect("cleanup");
    assert_paths_gone(&paths);
    drop(executor);
    assert_paths_gone(&paths);
}

/// Dropping an executor without cleanup() removes its cgroup.
#[test]
fn drop_without_cleanup_removes_the_cgroup() {
    skip_unless_privileged!();
    let test_box = TestBox::new();
    let mut executor = test_box.executor();
    let result = executor
        .execute(&argv(&["/bin/true"]), None)
        .expect("execute");
    assert_status(&result, ExecutionStatus::Success);
    let paths = executor.cgroup_paths();
    if !common::has_cgroup() {
        assert!(paths.is_empty(), "{paths:?}");
        return;
    }
    assert!(!paths.is_empty(), "a strict executor without cgroup paths");
    assert!(paths.iter().all(|path| path.is_dir()), "{paths:?}");
    drop(executor);
    assert_paths_gone(&paths);
}

/// Without a usable cgroup root, non-strict mode still runs and measures with rusage.
#[test]
fn non_strict_mode_runs_without_cgroup() {
    skip_unless_privileged!();
    let mut test_box = TestBox::new();
    test_box.config.strict_mode = false;
    test_box.config.cgroup_root = Some(PathBuf::from("/nonexistent"));
    // Rootless, a delegated cgroup named is no degrade but a refusal.
    test_box.config.cgroup_parent = None;
    let mut executor = ProcessExecutor::new(test_box.config.clone()).expect("non-strict new");
    assert!(!executor.has_cgroup());
    assert!(executor.cgroup_paths().is_empty());
    assert_eq!(executor.get_resource_usage(), (0.0, 0));
    let result = executor
        .execute(&argv(&["/bin/echo", "hi"]), None)
        .expect("execute");
    assert_output(&result, "hi\n");
    assert!(
        result.memory_peak > 0,
        "no peak from max_rss: {:?}",
        Brief(&result)
    );
    assert!(result.max_rss > 0, "{:?}", Brief(&result));
    assert!(result.cpu_time >= 0.0, "{:?}", Brief(&result));
    assert_eq!(executor.get_resource_usage(), (0.0, 0));
    executor.cleanup().expect("cleanup");
    assert_no_process_of_uid(test_box.uid);
}

/// Children that setsid, double-fork, ignore SIGTERM or stop themselves die when the program exits.
#[test]
fn orphans_die_when_the_program_exits() {
    skip_unless_privileged!();
    let mut test_box = TestBox::new();
    test_box.config.wall_time_limit = Some(Duration::from_secs(20));
    let escape = test_box.install(&program("escape"));
    let started = Instant::now();
    // run() asserts that no process of the box uid survives and the cgroup is gone.
    let result = test_box.run(&[&escape, "exit"]);
    assert_output(&result, "ready 4\n");
    assert_eq!(result.exit_code, Some(0), "{:?}", Brief(&result));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the run waited for the orphans: {:?}",
        started.elapsed()
    );
}

/// At the wall limit the whole tree dies, however its members try to escape.
#[test]
fn whole_tree_dies_at_the_wall_limit() {
    skip_unless_privileged!();
    let mut test_box = TestBox::new();
    test_box.config.wall_time_limit = Some(Duration::from_secs(2));
    let escape = test_box.install(&program("escape"));
    let result = test_box.run(&[&escape, "spin"]);
    assert_eq!(result.stdout, "ready 4\n", "{:?}", Brief(&result));
    assert_status(&result, ExecutionStatus::TimeLimit);
    assert!(result.killed, "{:?}", Brief(&result));
    assert!(
        result.message.to_lowercase().contains("wall"),
        "{:?}",
        Brief(&result)
    );
}

/// Without namespaces the cgroup still takes the whole tree down.
#[test]
fn whole_tree_dies_without_namespaces() {
    skip_unless_privileged!();
    let mut test_box = TestBox::new();
    test_box.config.namespaces = false;
    test_box.config.wall_time_limit = Some(Duration::from_secs(20));
    let escape = test_box.install(&program("escape"));
    let result = test_box.run(&[&escape, "exit"]);
    assert_output(&result, "ready 4\n");

    test_box.config.wall_time_limit = Some(Duration::from_secs(2));
    let result = test_box.run(&[&escape, "sleep"]);
    assert_eq!(result.stdout, "ready 4\n", "{:?}", Brief(&result));
    assert_status(&result, ExecutionStatus::TimeLimit);
}

/// After an OOM run, the next run of the same executor is clean: no OOM, small peak.
#[test]
fn oom_does_not_leak_into_the_next_run() {
    skip_unless_privileged!();
    let mut test_box = TestBox::new();
    test_box.config.memory_limit = Some(64 * MIB);
    test_box.config.wall_time_limit = Some(Duration::from_secs(20));
    let bomb = test_box.install(&program("memory_bomb"));
    let mut executor = test_box.executor();

    let first = executor.execute(&argv(&[&bomb]), None).expect("execute");
    if common::has_cgroup() {
        assert_status(&first, ExecutionStatus::MemoryLimit);
        assert!(first.oom_killed, "{:?}", Brief(&first));
    } else {
        // RLIMIT_AS refuses the allocation: no OOM kill without a cgroup.
        assert_status(&first, ExecutionStatus::RuntimeError);
        assert!(
            first.stderr.contains("malloc failed"),
            "{:?}",
            Brief(&first)
        );
    }
    assert_no_process_of_uid(test_box.uid);

    let second = executor
        .execute(&argv(&["/bin/true"]), None)
        .expect("execute");
    assert_status(&second, ExecutionStatus::Success);
    assert!(!second.oom_killed, "{:?}", Brief(&second));
    assert!(second.memory_peak < 10 * MIB, "{:?}", Brief(&second));
    let paths = executor.cgroup_paths();
    executor.cleanup().expect("cleanup");
    assert_paths_gone(&paths);
}

/// Peak memory and CPU time are per run: a big run does not inflate the next one's.
#[test]
fn peak_and_cpu_reset_between_runs() {
    skip_unless_privileged!();
    let test_box = TestBox::new();
    let alloc_touch = test_box.install(&program("alloc_touch"));
    let spin = test_box.install(&program("spin_cpu"));
    let mut executor = test_box.executor();

    let big = executor
        .execute(&argv(&[&alloc_touch, "80"]), None)
        .expect("execute");
    assert_status(&big, ExecutionStatus::Success);
    assert!(big.memory_peak >= 80 * MIB, "{:?}", Brief(&big));
    let small = executor
        .execute(&argv(&["/bin/true"]), None)
        .expect("execute");
    assert_status(&small, ExecutionStatus::Success);
    assert!(small.memory_peak < 10 * MIB, "{:?}", Brief(&small));
    assert!(executor.get_resource_usage().1 < 10 * MIB);

    let busy = executor
        .execute(&argv(&[&spin, "0.4"]), None)
        .expect("execute");
    assert!(busy.cpu_time >= 0.4, "{:?}", Brief(&busy));
    let idle = executor
        .execute(&argv(&["/bin/true"]), None)
        .expect("execute");
    assert_status(&idle, ExecutionStatus::Success);
    assert!(idle.cpu_time < 0.1, "{:?}", Brief(&idle));
    assert!(executor.get_resource_usage().0 < 0.1);

    let paths = executor.cgroup_paths();
    executor.cleanup().expect("cleanup");
    assert_paths_gone(&paths);
    assert_no_process_of_uid(test_box.uid);
}

/// A new executor's first run is limited and measured by the executor's
/// own cgroup (no child is made for it); neither the next run of the same
/// executor nor the next executor of the same instance may find that
/// run's limit or its counters.
#[test]
fn a_first_runs_limit_and_peak_stay_with_it() {
    skip_unless_privileged!();
    if !common::has_cgroup() {
        eprintln!("SKIPPED: rootless without a delegated cgroup, the executor has no cgroup");
        return;
    }
    let mut test_box = TestBox::new();
    test_box.config.memory_limit = Some(48 * MIB);
    let alloc_touch = test_box.install(&program("alloc_touch"));
    let mut executor = test_box.executor();
    let paths = executor.cgroup_paths();

    let first = executor
        .execute(&argv(&[&alloc_touch, "80"]), None)
        .expect("execute");
    assert_status(&first, ExecutionStatus::MemoryLimit);
    executor.config_mut().memory_limit = Some(256 * MIB);
    let second = executor
        .execute(&argv(&[&alloc_touch, "100"]), None)
        .expect("execute");
    assert_status(&second, ExecutionStatus::Success);
    assert!(second.memory_peak >= 100 * MIB, "{:?}", Brief(&second));
    let third = executor
        .execute(&argv(&["/bin/true"]), None)
        .expect("execute");
    assert!(third.memory_peak < 10 * MIB, "{:?}", Brief(&third));
    executor.cleanup().expect("cleanup");
    assert_paths_gone(&paths);

    // Across executors: the first one's run, in its own cgroup, is not
    // handed on to the next one of the same instance with its limit.
    test_box.config.instance_id = format!("first-run-{}", test_box.uid);
    test_box.config.memory_limit = Some(256 * MIB);
    let mut config = test_box.config.clone();
    config.memory_limit = Some(48 * MIB);
    let mut first_executor = ProcessExecutor::new(config).expect("new");
    let paths = first_executor.cgroup_paths();
    let first = first_executor
        .execute(&argv(&[&alloc_touch, "80"]), None)
        .expect("execute");
    assert_status(&first, ExecutionStatus::MemoryLimit);
    first_executor.close_keeping_cgroups().expect("close");
    let mut next = test_box.executor();
    let big = next
        .execute(&argv(&[&alloc_touch, "100"]), None)
        .expect("execute");
    assert_status(&big, ExecutionStatus::Success);
    assert!(!big.oom_killed, "{:?}", Brief(&big));
    next.cleanup().expect("cleanup");
    assert_paths_gone(&paths);
    assert_no_process_of_uid(test_box.uid);
}

/// An executor whose run was killed at the wall limit runs the next program normally.
#[test]
fn executor_is_reusable_after_a_kill() {
    skip_unless_privileged!();
    let mut test_box = TestBox::new();
    test_box.config.wall_time_limit = Some(Duration::from_secs(1));
    let sleeper = test_box.install(&program("sleeper"));
    let mut executor = test_box.executor();

    let first = executor
        .execute(&argv(&[&sleeper, "-1", "1000"]), None)
        .expect("execute");
    assert_status(&first, ExecutionStatus::TimeLimit);
    assert_no_process_of_uid(test_box.uid);

    let second = executor
        .execute(&argv(&["/bin/echo", "again"]), None)
        .expect("execute");
    assert_output(&second, "again\n");
    assert!(!second.killed, "{:?}", Brief(&second));
    executor.cleanup().expect("cleanup");
}

/// 100 MB through /bin/cat and back does not deadlock and arrives intact.
#[test]
fn hundred_megabytes_through_cat() {
    skip_unless_privileged!();
    let mut test_box = TestBox::new();
    test_box.config.wall_time_limit = Some(Duration::from_secs(60));
    test_box.config.time_limit = Some(Duration::from_secs(30));
    test_box.config.output_limit = None;
    let input = printable_noise(100_000_000);
    let mut executor = test_box.executor();
    let result = executor
        .execute_bytes(&argv(&["/bin/cat"]), Some(&input))
        .expect("execute");
    assert_eq!(
        result.status,
        ExecutionStatus::Success,
        "{:?}",
        result.message
    );
    assert_eq!(result.stdout.len(), input.len(), "output length");
    if let Some(at) = result
        .stdout
        .as_bytes()
        .iter()
        .zip(&input)
        .position(|(out, inp)| out != inp)
    {
        panic!("output differs from input at byte {at}");
    }
    executor.cleanup().expect("cleanup");
    assert_no_process_of_uid(test_box.uid);
}

/// Stdin from a string, from an open file, and from /dev/null reaches the program.
#[test]
fn stdin_from_string_file_and_null() {
    skip_unless_privileged!();
    let test_box = TestBox::new();
    let mut executor = test_box.executor();
    let cat = argv(&["/bin/cat"]);

    let result = executor
        .execute(&cat, Some("hello\nworld\n"))
        .expect("execute");
    assert_eq!(result.stdout, "hello\nworld\n", "{:?}", Brief(&result));

    let mut file = tempfile::tempfile().unwrap();
    file.write_all(b"from a file\n").unwrap();
    std::io::Seek::rewind(&mut file).unwrap();
    let result = executor
        .execute_with_stdin(&cat, Stdin::File(file))
        .expect("execute");
    assert_eq!(result.stdout, "from a file\n", "{:?}", Brief(&result));

    let result = executor
        .execute_with_stdin(&cat, Stdin::Null)
        .expect("execute");
    assert_output(&result, "");
    executor.cleanup().expect("cleanup");
}

/// `len` pseudo-random printable ASCII bytes (valid UTF-8, unlike random bytes).
fn printable_noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b' ' + (state % 95) as u8
        })
        .collect()
}

/// An outside event (`execute_watching`): a run ends as interrupted once
/// the watched descriptor turns readable and the callback says so, cold
/// (the executor's first run) and warm (its third) alike; a callback that
/// lets the run go on is asked once and the run finishes on its own.
#[test]
fn an_outside_event_stops_the_run_when_its_callback_says_so() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    skip_unless_privileged!();
    let test_box = TestBox::new();
    let mut executor = test_box.executor();
    let event = |stop: bool, calls: Arc<AtomicU32>| {
        let (read, write) = isobox::sys::pipe().unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            rustix::io::write(&write, b"x").unwrap();
            // Held open until the run has seen the byte.
            std::thread::sleep(Duration::from_millis(700));
        });
        let outside = isobox::OutsideEvent {
            fd: read,
            on_ready: Box::new(move |fd| {
                calls.fetch_add(1, Ordering::SeqCst);
                let mut byte = [0u8; 1];
                assert_eq!(rustix::io::read(fd, &mut byte).unwrap(), 1);
                stop.then_some(libc::SIGTERM)
            }),
        };
        (outside, writer)
    };
    for run in 1..=3 {
        let calls = Arc::new(AtomicU32::new(0));
        let (outside, writer) = event(true, calls.clone());
        let started = Instant::now();
        let result = executor
            .execute_watching(&argv(&["/bin/sleep", "10"]), Stdin::Null, outside)
            .unwrap();
        writer.join().unwrap();
        assert!(result.killed, "run {run}: {:?}", Brief(&result));
        assert_eq!(
            result.message,
            "Interrupted",
            "run {run}: {:?}",
            Brief(&result)
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "run {run} took {:?}",
            started.elapsed()
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1, "run {run}");
    }
    let calls = Arc::new(AtomicU32::new(0));
    let (outside, writer) = event(false, calls.clone());
    let result = executor
        .execute_watching(
            &argv(&["/bin/sh", "-c", "sleep 0.6; echo done"]),
            Stdin::Null,
            outside,
        )
        .unwrap();
    writer.join().unwrap();
    assert_status(&result, ExecutionStatus::Success);
    assert_output(&result, "done\n");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Without an event the executor's next run is an ordinary one.
    let result = executor.execute(&argv(&["/bin/true"]), None).unwrap();
    assert_status(&result, ExecutionStatus::Success);
    executor.cleanup().unwrap();
}
