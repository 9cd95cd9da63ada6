//! The native command line, run as the real `isobox` binary.
//!
//! Every run gets its own TMPDIR, so the tests can check that no throwaway
//! box directory is left behind whatever happened. Tests that run programs
//! need root and cgroups; the ones that fail before anything runs do not.

mod common;

use common::{skip_unless_privileged, temp_dir};
use std::fmt;
use std::fs;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

/// The keys of the `--json` object, in their documented order.
const JSON_KEYS: [&str; 12] = [
    "status",
    "exit_code",
    "signal",
    "cpu_time",
    "wall_time",
    "memory_peak",
    "max_rss",
    "oom_killed",
    "stdout",
    "stderr",
    "message",
    "absent_protections",
];

/// What one invocation of isobox did.
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Outcome {
    /// The non-empty lines isobox and the program wrote to stderr.
    fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }

    /// The summary line, which isobox writes last.
    fn summary(&self) -> &str {
        self.stderr.lines().last().unwrap_or_default()
    }

    /// The `--json` object, checked to be the only thing on stdout and to
    /// have exactly the documented keys in order.
    fn json(&self) -> serde_json::Value {
        let value: serde_json::Value = serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {self:?}"));
        let KeyOrder(keys) = serde_json::from_str(&self.stdout).unwrap();
        assert_eq!(keys, JSON_KEYS, "{self:?}");
        value
    }

    /// Asserts the shape of a usage error: exit status 2 and exactly one
    /// non-empty line on stderr, starting with `isobox: `.
    fn assert_usage_error(&self) {
        assert_eq!(self.code, Some(2), "{self:?}");
        let lines = self.stderr_lines();
        assert_eq!(lines.len(), 1, "{self:?}");
        assert!(lines[0].starts_with("isobox: "), "{self:?}");
        assert!(lines[0].len() > "isobox: ".len(), "{self:?}");
    }
}

/// The keys of a JSON object in the order they appear in the text (a
/// `serde_json::Value` does not keep it).
struct KeyOrder(Vec<String>);

impl<'de> Deserialize<'de> for KeyOrder {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = KeyOrder;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyOrder, A::Error> {
                let mut keys = Vec::new();
                while let Some((key, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                    keys.push(key);
                }
                Ok(KeyOrder(keys))
            }
        }
        deserializer.deserialize_map(Keys)
    }
}

/// Runs isobox with `args` and the extra environment `env`, then checks
/// that no box directory was left behind.
fn isobox_with(
    args: &[&str],
    env: &[(&str, &str)],
    configure: impl FnOnce(&mut Command),
) -> Outcome {
    let tmp = temp_dir("isobox-cli-tmp-", 0o755);
    let mut command = Command::new(env!("CARGO_BIN_EXE_isobox"));
    command
        .args(args)
        .env("TMPDIR", tmp.path())
        // A debug filter in the caller's environment would add log lines.
        .env_remove("ISOBOX_LOG")
        .stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    configure(&mut command);
    let output = command.output().expect("isobox runs");
    let outcome = Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    let left: Vec<String> = fs::read_dir(tmp.path())
        .expect("read TMPDIR")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.starts_with("isobox-run-"))
        .collect();
    assert!(left.is_empty(), "left behind {left:?}: {outcome:?}");
    outcome
}

/// Runs isobox with `args`.
fn isobox(args: &[&str]) -> Outcome {
    isobox_with(args, &[], |_| {})
}

#[test]
fn echo_succeeds_and_streams_its_output() {
    skip_unless_privileged!();
    let run = isobox(&["run", "--time", "1", "--", "/bin/echo", "hello"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout, "hello\n", "{run:?}");
    assert!(run.summary().starts_with("Success cpu "), "{run:?}");
    assert!(run.summary().contains(" wall "), "{run:?}");
    assert!(run.summary().contains(" mem "), "{run:?}");
}

#[test]
fn json_gives_exactly_the_documented_keys() {
    skip_unless_privileged!();
    let run = isobox(&["run", "--json", "--time", "1", "--", "/bin/echo", "hello"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let json = run.json();
    assert_eq!(json["status"], "Success", "{run:?}");
    assert_eq!(json["exit_code"], 0, "{run:?}");
    assert!(json["signal"].is_null(), "{run:?}");
    assert_eq!(json["stdout"], "hello\n", "{run:?}");
    assert_eq!(json["stderr"], "", "{run:?}");
    assert_eq!(json["oom_killed"], false, "{run:?}");
    assert_eq!(json["absent_protections"], serde_json::json!([]), "{run:?}");
    assert!(json["cpu_time"].is_f64(), "{run:?}");
    assert!(json["wall_time"].is_f64(), "{run:?}");
    assert!(json["memory_peak"].is_u64(), "{run:?}");
    assert!(json["max_rss"].is_u64(), "{run:?}");
    assert!(json["message"].is_string(), "{run:?}");
}

#[test]
fn failing_program_is_a_runtime_error_with_exit_1() {
    skip_unless_privileged!();
    let run = isobox(&["run", "--json", "--time", "1", "--", "/bin/false"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    let json = run.json();
    assert_eq!(json["status"], "RuntimeError", "{run:?}");
    assert_eq!(json["exit_code"], 1, "{run:?}");

    let run = isobox(&["run", "--time", "1", "--", "/bin/false"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.summary().starts_with("RuntimeError "), "{run:?}");
}

#[test]
fn endless_loop_hits_the_time_limit() {
    skip_unless_privileged!();
    let spin = ["/bin/sh", "-c", "while :; do :; done"];
    let run = isobox(&[&["run", "--time", "0.2", "--"][..], &spin].concat());
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.summary().starts_with("TimeLimit cpu "), "{run:?}");

    let run = isobox(&[&["run", "--json", "--time", "0.2", "--"][..], &spin].concat());
    assert_eq!(run.code, Some(1), "{run:?}");
    let json = run.json();
    assert_eq!(json["status"], "TimeLimit", "{run:?}");
    let cpu = json["cpu_time"].as_f64().unwrap_or_default();
    assert!(cpu >= 0.2, "{run:?}");
    // The default wall-clock limit (2 × 0.2 + 1 s) must not be what ended
    // a program that only computes.
    let wall = json["wall_time"].as_f64().unwrap_or_default();
    assert!(wall < 1.4, "{run:?}");
}

#[test]
fn stdin_file_is_fed_to_the_program() {
    skip_unless_privileged!();
    let dir = temp_dir("isobox-cli-input-", 0o700);
    let input = dir.path().join("input.txt");
    fs::write(&input, "first line\nsecond line\n").expect("write input");
    let input = input.to_str().expect("UTF-8 path");
    let run = isobox(&["run", "--time", "1", "--stdin", input, "--", "/bin/cat"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout, "first line\nsecond line\n", "{run:?}");

    // Without --stdin the program reads an empty input, not isobox's.
    let run = isobox(&["run", "--time", "1", "--wall-time", "3", "--", "/bin/cat"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout, "", "{run:?}");
}

#[test]
fn only_the_chosen_environment_reaches_the_program() {
    skip_unless_privileged!();
    let secret = [("ISOBOX_TEST_SECRET", "s3cret")];
    let run = isobox_with(
        &[
            "run",
            "--time",
            "1",
            "--env",
            "FOO=bar",
            "--",
            "/usr/bin/env",
        ],
        &secret,
        |_| {},
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines.contains(&"FOO=bar"), "{run:?}");
    assert!(
        lines.contains(&"PATH=/usr/local/bin:/usr/bin:/bin"),
        "{run:?}"
    );
    assert!(lines.contains(&"LIBC_FATAL_STDERR_=1"), "{run:?}");
    assert!(lines.contains(&"HOME=/box"), "{run:?}");
    assert!(!run.stdout.contains("ISOBOX_TEST_SECRET"), "{run:?}");
    assert!(!run.stdout.contains("s3cret"), "{run:?}");

    let run = isobox_with(
        &[
            "run",
            "--time",
            "1",
            "--env",
            "ISOBOX_TEST_SECRET",
            "--env",
            "LIBC_FATAL_STDERR_=",
            "--",
            "/usr/bin/env",
        ],
        &secret,
        |_| {},
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines.contains(&"ISOBOX_TEST_SECRET=s3cret"), "{run:?}");
    assert!(!run.stdout.contains("LIBC_FATAL_STDERR_"), "{run:?}");
}

#[test]
fn missing_program_is_one_clear_line_and_exit_2() {
    skip_unless_privileged!();
    let missing = "/nonexistent/isobox-test-program";
    let run = isobox(&["run", "--time", "1", "--", missing]);
    run.assert_usage_error();
    assert_eq!(
        run.stderr.trim(),
        format!("isobox: cannot execute {missing}: No such file or directory"),
        "{run:?}"
    );
    assert_eq!(run.stdout, "", "{run:?}");

    // With --json the result still comes first, on stdout.
    let run = isobox(&["run", "--json", "--time", "1", "--", missing]);
    run.assert_usage_error();
    assert!(run.stderr.contains("cannot execute"), "{run:?}");
    assert_eq!(run.json()["status"], "RuntimeError", "{run:?}");
}

#[test]
fn strict_mode_without_root_is_refused() {
    skip_unless_privileged!();
    // isobox itself runs as nobody, so the box directory must be creatable
    // by anyone.
    let tmp = temp_dir("isobox-cli-tmp-", 0o777);
    let run = isobox_with(
        &["run", "--strict", "--time", "1", "--", "/bin/true"],
        &[("TMPDIR", tmp.path().to_str().expect("UTF-8 path"))],
        |command| {
            command.uid(65534).gid(65534);
        },
    );
    run.assert_usage_error();
    let left = fs::read_dir(tmp.path()).expect("read TMPDIR").count();
    assert_eq!(left, 0, "{run:?}");
}

#[test]
fn empty_command_is_a_usage_error() {
    isobox(&["run", "--"]).assert_usage_error();
    isobox(&["run"]).assert_usage_error();
    isobox(&["run", "--time", "1", "--"]).assert_usage_error();
    isobox(&["run", "--time", "1", "--", ""]).assert_usage_error();
}

#[test]
fn malformed_sizes_are_usage_errors() {
    for size in [
        "12Q",
        "",
        "-5",
        "1.5G",
        "64 M",
        "M",
        "99999999999999999999",
        "16777216T",
    ] {
        for option in ["--mem", "--fsize", "--stack", "--output-limit"] {
            let option = format!("{option}={size}");
            let run = isobox(&["run", &option, "--time", "1", "--", "/bin/true"]);
            run.assert_usage_error();
        }
    }
}

#[test]
fn malformed_times_are_usage_errors() {
    for time in [
        "-1",
        "-0.5",
        "NaN",
        "inf",
        "-inf",
        "",
        "abc",
        "1s",
        "1e3",
        "1e999",
        "99999999999999999999999",
    ] {
        for option in ["--time", "--wall-time", "--extra-time"] {
            let run = isobox(&["run", option, time, "--", "/bin/true"]);
            run.assert_usage_error();
        }
    }
}

#[test]
fn malformed_counts_are_usage_errors() {
    for count in ["-1", "x", "1.5", ""] {
        for option in ["--processes", "--open-files"] {
            let option = format!("{option}={count}");
            let run = isobox(&["run", &option, "--time", "1", "--", "/bin/true"]);
            run.assert_usage_error();
        }
    }
}

#[test]
fn unknown_flags_and_misplaced_programs_are_usage_errors() {
    isobox(&["run", "--bogus", "--time", "1", "--", "/bin/true"]).assert_usage_error();
    isobox(&["run", "-x", "--", "/bin/true"]).assert_usage_error();
    isobox(&["run", "--time", "1", "/bin/true"]).assert_usage_error();
    isobox(&["frobnicate"]).assert_usage_error();
    isobox(&[]).assert_usage_error();
}

#[test]
fn unreadable_stdin_file_is_a_usage_error() {
    let run = isobox(&[
        "run",
        "--time",
        "1",
        "--stdin",
        "/nonexistent/isobox-input",
        "--",
        "/bin/cat",
    ]);
    run.assert_usage_error();
    assert!(run.stderr.contains("/nonexistent/isobox-input"), "{run:?}");
    isobox(&["run", "--time", "1", "--stdin", "/", "--", "/bin/cat"]).assert_usage_error();
}

#[test]
fn lang_without_a_source_asks_for_the_source() {
    for args in [
        &["run", "--lang", "c"][..],
        &["run", "--lang=c", "--time", "1"],
    ] {
        let run = isobox(args);
        run.assert_usage_error();
        assert!(run.stderr.contains("--lang needs a source file"), "{run:?}");
    }
    let run = isobox(&["run", "--time", "1"]);
    run.assert_usage_error();
    assert!(run.stderr.contains("no command given"), "{run:?}");
}

#[test]
fn malformed_env_is_a_usage_error() {
    isobox(&["run", "--env", "=x", "--time", "1", "--", "/bin/true"]).assert_usage_error();
    isobox(&["run", "--env=", "--time", "1", "--", "/bin/true"]).assert_usage_error();
}

/// A reader that stops early (`isobox help | head -1`) closes the pipe under
/// the help text: the binary must end quietly, not report a panic.
#[test]
fn help_into_a_closed_pipe_is_not_an_internal_error() {
    let isolate_name = temp_dir("isobox-cli-name-", 0o755);
    let isolate = isolate_name.path().join("isolate");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_isobox"), &isolate).expect("symlink");
    // A completion script cut short is an error worth a line and exit 2 (the
    // file it was meant for is incomplete); help text cut short is not.
    let cases: [(&std::path::Path, &[&str], i32); 5] = [
        (env!("CARGO_BIN_EXE_isobox").as_ref(), &["help"], 0),
        (env!("CARGO_BIN_EXE_isobox").as_ref(), &["--help"], 0),
        (env!("CARGO_BIN_EXE_isobox").as_ref(), &["run", "--help"], 0),
        (
            env!("CARGO_BIN_EXE_isobox").as_ref(),
            &["generate", "completions", "bash"],
            2,
        ),
        (&isolate, &["--help"], 0),
    ];
    for (program, args, code) in cases {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let output = Command::new(program)
            .args(args)
            .env_remove("ISOBOX_LOG")
            .stdin(Stdio::null())
            .stdout(writer)
            .output()
            .expect("isobox runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stderr.contains("internal error"),
            "{program:?} {args:?}: {stderr}"
        );
        assert_eq!(
            output.status.code(),
            Some(code),
            "{program:?} {args:?}: {stderr}"
        );
        assert!(
            stderr.lines().count() <= 1,
            "{program:?} {args:?}: {stderr}"
        );
    }
}

#[test]
fn help_and_version_print_normally() {
    let run = isobox(&["--help"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("run"), "{run:?}");
    let run = isobox(&["run", "--help"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    for option in [
        "--time",
        "--wall-time",
        "--mem",
        "--env",
        "--json",
        "--strict",
    ] {
        assert!(run.stdout.contains(option), "{option}: {run:?}");
    }
    for flag in ["--version", "-V"] {
        let run = isobox(&[flag]);
        assert_eq!(run.code, Some(0), "{run:?}");
        assert_eq!(
            run.stdout,
            format!(
                "isobox {} (commit {})\n",
                env!("CARGO_PKG_VERSION"),
                env!("ISOBOX_COMMIT")
            ),
            "{run:?}"
        );
    }
    // Anything more goes through the parser, which still knows the flag.
    let run = isobox(&["--version", "run"]);
    assert!(run.stdout.starts_with("isobox "), "{run:?}");
}
