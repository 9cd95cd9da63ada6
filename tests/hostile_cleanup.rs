//! A box can nest directories far deeper than any call stack of the keeper
//! goes. Removing such a box directory must neither fail nor crash the
//! keeper. The attack runs in a child process (this test binary again), so
//! that a crash of the keeper shows as one failed test, with the host
//! cleaned up after it, instead of taking every other test with it.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{assert_status, hostile, remove_tree, skip_unless_privileged, TestBox};
use isobox::dirs::DirRule;
use isobox::ExecutionStatus;

/// Set in the child's environment by the parent test.
const CHILD_ENV: &str = "ISOBOX_CLEANUP_CHILD";

/// Attack: 100,000 nested directories for the executor's cleanup to crash on.
#[test]
fn deep_nesting_does_not_crash_executor_cleanup() {
    skip_unless_privileged!();
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "cleanup_after_deep_nesting",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .expect("running the child test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Whatever happened to the child, leave nothing of it behind.
    for line in stdout.lines() {
        if let Some(workdir) = line.strip_prefix("workdir: ") {
            if Path::new(workdir).exists() {
                remove_tree(Path::new(workdir)).expect("removing the child's box");
            }
        }
        if let Some(paths) = line.strip_prefix("cgroups: ") {
            for path in paths.split(' ').filter(|path| !path.is_empty()) {
                let _ = std::fs::remove_dir(path);
            }
        }
    }
    assert!(
        stdout.contains("workdir: "),
        "the child did not start:\n{stdout}\n{stderr}"
    );
    let tail: String = stderr.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
    assert!(
        output.status.success(),
        "the keeper failed removing a deeply nested box ({}): {tail}",
        output.status
    );
}

/// How many `d` directories are nested in `dir`, counted without long paths.
fn nesting_depth(dir: &Path) -> usize {
    let start = std::env::current_dir().unwrap();
    std::env::set_current_dir(dir).unwrap();
    let mut depth = 0;
    while Path::new("d").is_dir() {
        std::env::set_current_dir("d").unwrap();
        depth += 1;
    }
    std::env::set_current_dir(start).unwrap();
    depth
}

/// The child half of the test above; does nothing unless that test runs it.
#[test]
#[ignore = "run by deep_nesting_does_not_crash_executor_cleanup in a child process"]
fn cleanup_after_deep_nesting() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let mut test_box = TestBox::hostile();
    println!("workdir: {}", test_box.workdir().display());
    // On tmpfs, nesting is cheap and fast; on a disk it can take many
    // seconds and much page cache.
    let parent = tempfile::Builder::new()
        .prefix("isobox-nest-")
        .tempdir_in("/dev/shm")
        .expect("a directory in /dev/shm")
        .keep();
    println!("workdir: {}", parent.display());
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let fresh = parent.join("fresh");
    test_box.config.workdir = fresh.clone();
    test_box.config.time_limit = Some(Duration::from_secs(5));
    test_box.config.wall_time_limit = Some(Duration::from_secs(20));
    test_box.config.memory_limit = Some(256 << 20);
    // The executor creates the box directory itself, so the program comes
    // from a read-only bind of the directory it was built in.
    let inodes = hostile("inodes");
    let tools = Path::new(&inodes).parent().unwrap().display().to_string();
    let rule: DirRule = format!("/tools={tools}").parse().unwrap();
    test_box.config.dir_rules = vec![rule];
    let mut executor = test_box.executor();
    let result = executor
        .execute(
            &common::argv(&["/tools/hostile-inodes", "deep", "/box", "100000"]),
            None,
        )
        .expect("execute");
    let paths = executor.cgroup_paths();
    let listed: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    println!("cgroups: {}", listed.join(" "));
    assert_status(&result, ExecutionStatus::Success);
    assert_eq!(result.stdout, "deep: reached 100000\n");
    assert_eq!(nesting_depth(&fresh), 100000);
    common::assert_no_process_of_uid(test_box.uid);
    executor.cleanup().expect("cleanup of a deeply nested box");
    common::assert_paths_gone(&paths);
    assert!(!fresh.exists(), "the executor left its box directory");
    std::fs::remove_dir(&parent).unwrap();
    test_box.remove();
}
