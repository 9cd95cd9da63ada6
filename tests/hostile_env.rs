//! The program's environment holds what the configuration names and
//! nothing of the keeper's: a secret variable set in the keeper (this test
//! process for the library, the isobox process for the command line) must
//! never reach the program.

mod common;

use std::process::Command;

use common::{assert_status, skip_unless_privileged, Brief, TestBox};
use isobox::ExecutionStatus;

const SECRET_NAME: &str = "ISOBOX_TEST_SECRET";
const SECRET_VALUE: &str = "hunter2-keeper-only";

/// The environment as `/usr/bin/env` prints it, one `NAME=value` a line.
fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// Attack: read the keeper's environment (a secret is set in the keeper).
#[test]
fn keeper_secret_never_reaches_the_program() {
    skip_unless_privileged!();
    // The other test of this binary reads the environment only through
    // std, under the same lock as set_var.
    std::env::set_var(SECRET_NAME, SECRET_VALUE);
    let mut test_box = TestBox::hostile();
    let result = test_box.run_hostile(&["/usr/bin/env"]);
    assert_status(&result, ExecutionStatus::Success);
    assert!(
        !result.stdout.contains(SECRET_VALUE),
        "{:?}",
        Brief(&result)
    );
    assert_eq!(
        sorted_lines(&result.stdout),
        [
            "HOME=/box",
            "LIBC_FATAL_STDERR_=1",
            "PATH=/usr/local/bin:/usr/bin:/bin"
        ]
    );

    // Exactly what the configuration names, plus PATH when it names none.
    test_box.config.environment = vec![("ONLY".into(), "this".into())];
    let result = test_box.run_hostile(&["/usr/bin/env"]);
    assert_eq!(
        sorted_lines(&result.stdout),
        ["ONLY=this", "PATH=/usr/local/bin:/usr/bin:/bin"],
        "{:?}",
        Brief(&result)
    );
    test_box.remove();
}

/// Attack: read isobox's own environment through the command line.
#[test]
fn command_line_keeps_its_secret() {
    skip_unless_privileged!();
    let output = Command::new(env!("CARGO_BIN_EXE_isobox"))
        .env(SECRET_NAME, SECRET_VALUE)
        .args(["run", "--json"])
        .args(common::strict_run_args())
        .args([
            "--time",
            "1",
            "--wall-time",
            "5",
            "--mem",
            "64M",
            "--processes",
            "8",
            "--",
            "/usr/bin/env",
        ])
        .output()
        .expect("running isobox");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout} {output:?}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    let program_stdout = report["stdout"].as_str().expect("the program's stdout");
    assert!(!program_stdout.contains(SECRET_VALUE), "{program_stdout}");
    assert_eq!(
        sorted_lines(program_stdout),
        [
            "HOME=/box",
            "LIBC_FATAL_STDERR_=1",
            "PATH=/usr/local/bin:/usr/bin:/bin"
        ]
    );
}
