//! `isobox run` as a newcomer uses it: `./solution` from the working
//! directory, files copied in and out, output to files, zero limits and
//! options written before the subcommand. Copy-out is attacked with what a
//! hostile program leaves in its box.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{skip_unless_privileged, temp_dir};

/// Runs isobox in `cwd` with its own TMPDIR and checks that no box
/// directory is left behind.
fn isobox_in(cwd: &Path, args: &[&str]) -> Output {
    let tmp = temp_dir("isobox-native-tmp-", 0o755);
    let output = Command::new(env!("CARGO_BIN_EXE_isobox"))
        .args(args)
        .current_dir(cwd)
        .env("TMPDIR", tmp.path())
        .env_remove("ISOBOX_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("isobox runs");
    let left = fs::read_dir(tmp.path()).expect("read TMPDIR").count();
    assert_eq!(left, 0, "a box directory is left behind: {output:?}");
    output
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A shell script `name` in `dir`, executable.
fn script(dir: &Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_program_in_the_working_directory_runs_with_its_files() {
    skip_unless_privileged!();
    let dir = temp_dir("isobox-native-", 0o755);
    script(
        dir.path(),
        "solution",
        "read a b; echo $((a + b)); cat data/input.txt; echo err >&2",
    );
    fs::write(dir.path().join("in.txt"), "2 3\n").unwrap();
    fs::write(dir.path().join("input.txt"), "from a file\n").unwrap();
    let run = isobox_in(
        dir.path(),
        &[
            "run",
            "--time",
            "1",
            "--mem",
            "256M",
            "--stdin",
            "in.txt",
            "--file",
            "input.txt:data/input.txt",
            "--",
            "./solution",
        ],
    );
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    assert_eq!(stdout(&run), "5\nfrom a file\n", "{run:?}");
    assert!(stderr(&run).starts_with("err\nSuccess "), "{run:?}");
}

#[test]
fn output_goes_to_files_and_copies_come_back_out() {
    skip_unless_privileged!();
    let dir = temp_dir("isobox-native-", 0o755);
    script(
        dir.path(),
        "solution",
        "echo out; echo err >&2; printf 'no newline'; mkdir -p sub; echo result > sub/result.txt",
    );
    let run = isobox_in(
        dir.path(),
        &[
            "run",
            "--time",
            "1",
            "--stdout",
            "out.txt",
            "--stderr",
            "err.txt",
            "--copy-out",
            "sub/result.txt",
            "--copy-out",
            "/box/sub/result.txt:again.txt",
            "--",
            "./solution",
        ],
    );
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    assert_eq!(stdout(&run), "", "{run:?}");
    assert!(stderr(&run).starts_with("Success "), "{run:?}");
    let read = |name: &str| fs::read_to_string(dir.path().join(name)).unwrap();
    assert_eq!(read("out.txt"), "out\nno newline");
    assert_eq!(read("err.txt"), "err\n");
    assert_eq!(read("result.txt"), "result\n");
    assert_eq!(read("again.txt"), "result\n");
}

#[test]
fn copy_out_follows_no_link_and_takes_only_small_regular_files() {
    skip_unless_privileged!();
    let dir = temp_dir("isobox-native-", 0o755);
    let secret = temp_dir("isobox-native-secret-", 0o700);
    fs::write(secret.path().join("secret"), "host secret\n").unwrap();
    let secret_file = secret.path().join("secret");
    script(
        dir.path(),
        "solution",
        &format!(
            "ln -s {file} link; ln -s {dir} dirlink; mkfifo fifo; mkdir d; \
             head -c 5000 /dev/zero > big",
            file = secret_file.display(),
            dir = secret.path().display(),
        ),
    );
    for (spec, why) in [
        ("link", "links are not followed"),
        ("dirlink/secret", "links are not followed"),
        ("fifo", "not a regular file"),
        ("d", "not a regular file"),
        ("big", "larger than the limit"),
        ("missing", "No such file"),
    ] {
        let run = isobox_in(
            dir.path(),
            &[
                "run",
                "--time",
                "1",
                "--output-limit",
                "4K",
                "--copy-out",
                &format!("{spec}:copied"),
                "--",
                "./solution",
            ],
        );
        assert_eq!(run.status.code(), Some(2), "{spec}: {run:?}");
        let err = stderr(&run);
        assert!(
            err.contains("Success "),
            "{spec}: the result comes first: {run:?}"
        );
        assert!(err.contains(why), "{spec}: {run:?}");
        assert!(!dir.path().join("copied").exists(), "{spec}: {run:?}");
    }
    for spec in ["../x", "/etc/passwd", "/box/../x"] {
        let run = isobox_in(dir.path(), &["run", "--copy-out", spec, "--", "/bin/true"]);
        assert_eq!(run.status.code(), Some(2), "{spec}: {run:?}");
        assert!(stderr(&run).contains("--copy-out"), "{spec}: {run:?}");
    }
}

#[test]
fn copy_in_refuses_what_is_not_a_regular_file() {
    skip_unless_privileged!();
    let dir = temp_dir("isobox-native-", 0o755);
    fs::create_dir(dir.path().join("sub")).unwrap();
    for (args, why) in [
        (
            &["--copy-in", "sub", "--", "/bin/true"][..],
            "not a regular file",
        ),
        (&["--copy-in", "missing", "--", "/bin/true"], "No such file"),
        (&["--", "./missing"], "No such file"),
        (&["--", "../outside"], "climbs out"),
        (&["--copy-in", "a:../b", "--", "/bin/true"], "climbs out"),
    ] {
        let run = isobox_in(dir.path(), &[&["run"][..], args].concat());
        assert_eq!(run.status.code(), Some(2), "{args:?}: {run:?}");
        assert!(stderr(&run).contains(why), "{args:?}: {run:?}");
    }
}

#[test]
fn zero_is_no_limit() {
    skip_unless_privileged!();
    let dir = temp_dir("isobox-native-", 0o755);
    for option in [
        "--time",
        "--wall-time",
        "--extra-time",
        "--mem",
        "--processes",
        "--fsize",
        "--stack",
        "--open-files",
        "--output-limit",
    ] {
        let run = isobox_in(dir.path(), &["run", option, "0", "--", "/bin/echo", "hi"]);
        assert_eq!(run.status.code(), Some(0), "{option}: {run:?}");
        assert_eq!(stdout(&run), "hi\n", "{option}: {run:?}");
    }
}

#[test]
fn options_before_the_subcommand_are_read_as_its_own() {
    skip_unless_privileged!();
    let dir = temp_dir("isobox-native-", 0o755);
    let run = isobox_in(
        dir.path(),
        &["--json", "--time", "1", "run", "--", "/bin/echo", "hi"],
    );
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(json["stdout"], "hi\n", "{run:?}");
    let run = isobox_in(dir.path(), &["--bogus", "run", "--", "/bin/true"]);
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    assert!(
        stderr(&run).contains("usage: isobox run [OPTIONS] -- CMD [ARGS...]"),
        "{run:?}"
    );
}

#[test]
fn help_and_the_help_subcommand_agree() {
    let dir = temp_dir("isobox-native-", 0o755);
    let long = isobox_in(dir.path(), &["--help"]);
    let word = isobox_in(dir.path(), &["help"]);
    assert_eq!(long.status.code(), Some(0), "{long:?}");
    assert_eq!(stdout(&long), stdout(&word));
    let run = isobox_in(dir.path(), &["run", "/bin/true"]);
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    assert!(
        stderr(&run).contains("a program goes after `--` (isobox run [OPTIONS] -- /bin/true)"),
        "{run:?}"
    );
    let run = isobox_in(dir.path(), &["run"]);
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    assert_eq!(
        stderr(&run),
        "isobox: no command given; usage: isobox run [OPTIONS] -- CMD [ARGS...]\n"
    );
}
