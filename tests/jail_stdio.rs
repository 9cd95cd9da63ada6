//! isolate's `-i/-o/-r`: stdio files opened inside the box by the box's
//! user, before the working directory is entered; and runs without cgroups.

mod common;

use std::fs;
use std::path::PathBuf;

use common::{assert_status, skip_unless_privileged, Brief, TestBox};
use isobox::ExecutionStatus;

/// stdin, stdout and stderr files are relative to /box even when the
/// program starts elsewhere, and stderr can follow stdout.
#[test]
fn stdio_files_are_opened_in_the_box_before_chdir() {
    skip_unless_privileged!();
    let mut test_box = TestBox::new();
    fs::write(test_box.workdir().join("in.txt"), "21\n").unwrap();
    test_box.config.stdin_file = Some(PathBuf::from("in.txt"));
    test_box.config.stdout_file = Some(PathBuf::from("out.txt"));
    test_box.config.stderr_to_stdout = true;
    test_box.config.inner_workdir = PathBuf::from("/tmp");
    let result = test_box.run(&[
        "/bin/sh",
        "-c",
        "read n; echo $((n * 2)); echo to-stderr >&2; pwd",
    ]);
    assert_status(&result, ExecutionStatus::Success);
    let written = fs::read_to_string(test_box.workdir().join("out.txt")).unwrap();
    assert_eq!(written, "42\nto-stderr\n/tmp\n");
    assert!(result.stdout.is_empty() && result.stderr.is_empty());
}

/// A stdio file the box's user may not read is a sandbox error, not a crash.
#[test]
fn unreadable_stdin_file_is_an_internal_error() {
    skip_unless_privileged!();
    use std::os::unix::fs::PermissionsExt;
    let mut test_box = TestBox::new();
    let secret = test_box.workdir().join("secret.txt");
    fs::write(&secret, "root only\n").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    test_box.config.stdin_file = Some(PathBuf::from("secret.txt"));
    let result = test_box.run(&["/bin/cat"]);
    assert_status(&result, ExecutionStatus::InternalError);
    assert!(
        result.message.contains("opening secret.txt")
            && result.message.contains("Permission denied"),
        "{:?}",
        Brief(&result)
    );
    assert!(result.stdout.is_empty());
}

/// Without cgroups (isolate without --cg) the run is still limited and
/// measured: rusage CPU time, max RSS as peak, RLIMIT_CPU as the CPU limit.
#[test]
fn without_cgroups_limits_and_measurements_fall_back() {
    skip_unless_privileged!();
    let mut test_box = TestBox::new();
    test_box.config.use_cgroups = false;
    test_box.config.time_limit = Some(std::time::Duration::from_secs(1));
    let result = test_box.run(&["/bin/sh", "-c", "while :; do :; done"]);
    assert_status(&result, ExecutionStatus::TimeLimit);
    // rusage (tick-sampled user/system split) can read below the kernel's
    // own RLIMIT_CPU clock on a loaded machine; what matters is that the
    // CPU time of a killed run is reported at all.
    assert!(result.cpu_time >= 0.5, "{:?}", Brief(&result));
    assert!(result.memory_peak > 0, "{:?}", Brief(&result));
}

/// A process limit of N gives the program N tasks: the sandbox's own proxy
/// in the cgroup does not count.
#[test]
fn process_limit_counts_only_the_program() {
    skip_unless_privileged!();
    let mut test_box = TestBox::new();
    test_box.config.process_limit = Some(1);
    let alone = test_box.run(&["/bin/true"]);
    assert_status(&alone, ExecutionStatus::Success);
    let forking = test_box.run(&["/bin/sh", "-c", "/bin/true"]);
    if common::has_cgroup() {
        assert_status(&forking, ExecutionStatus::ProcessLimit);
    } else {
        // RLIMIT_NPROC refuses the fork; no pids counter says it was the
        // limit.
        assert_status(&forking, ExecutionStatus::RuntimeError);
        assert!(
            forking.stderr.contains("Cannot fork"),
            "{:?}",
            Brief(&forking)
        );
    }
}
