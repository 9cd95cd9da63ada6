//! Choosing the isolate face, and bad input to it: each mistake is one
//! clear line on stderr and isolate's exit status 2 (with `status:XX` in
//! the meta file when one was asked for).
//!
//! Parsing errors need no privileges; everything that touches a box runs
//! as root (privileged tests).

mod common;
mod isolate_support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use common::skip_unless_privileged;
use isolate_support::{slot_id, CmsLog, Isolate, Outcome};

/// Runs the isobox binary under its own name.
fn isobox(args: &[&str]) -> Outcome {
    Command::new(env!("CARGO_BIN_EXE_isobox"))
        .args(args)
        .env("ISOBOX_CONFIG", "/nonexistent/isobox-test.conf")
        .stdin(Stdio::null())
        .output()
        .expect("running isobox")
        .into()
}

/// Asserts a usage or sandbox error: exit status 2, nothing on stdout, one
/// line on stderr containing `expected`.
fn assert_one_line_error(outcome: &Outcome, expected: &str) {
    assert_eq!(outcome.code, 2, "{outcome:?}");
    assert_eq!(outcome.stdout, "", "{outcome:?}");
    assert_eq!(outcome.stderr.lines().count(), 1, "{outcome:?}");
    assert!(outcome.stderr.contains(expected), "{outcome:?}");
}

#[test]
fn the_face_follows_the_name_and_the_first_argument() {
    let isolate = Isolate::new();
    // As `isolate`: isolate's options, even --help and --version.
    let version = isolate.isolate(&["--version"]);
    assert_eq!(version.code, 0, "{version:?}");
    assert!(version.stdout.contains("isolate"), "{version:?}");
    let help = isolate.isolate(&["--help"]);
    assert_eq!(help.code, 0, "{help:?}");
    for option in ["--init", "--run", "--cleanup", "--cg-mem", "--processes"] {
        assert!(help.stdout.contains(option), "{option}: {help:?}");
    }
    // As `isolate`, a native subcommand is just a stray word.
    let native = isolate.isolate(&["run", "--", "/bin/true"]);
    assert_one_line_error(&native, "unexpected argument 'run'");

    // As isobox: a leading option means isolate's command line.
    let version = isobox(&["--cg", "--version"]);
    assert_eq!(version.code, 0, "{version:?}");
    assert!(version.stdout.contains("isolate"), "{version:?}");
    let version = isobox(&["--version"]);
    assert_eq!(version.code, 0, "{version:?}");
    assert!(version.stdout.starts_with("isobox "), "{version:?}");
    // isobox --help explains both faces.
    let help = isobox(&["--help"]);
    assert_eq!(help.code, 0, "{help:?}");
    assert!(help.stdout.contains("run"), "{help:?}");
    assert!(help.stdout.contains("isolate"), "{help:?}");
    assert!(help.stdout.contains("--init"), "{help:?}");
    assert!(help.stdout.contains("ISOBOX_CONFIG"), "{help:?}");
}

#[test]
fn parsing_mistakes_are_one_line_and_exit_2() {
    let isolate = Isolate::new();
    for (args, expected) in [
        (&["--bogus", "--init"][..], "unrecognized option '--bogus'"),
        (&["-y", "--init"], "invalid option -- 'y'"),
        (&["--st=1", "--init"], "ambiguous"),
        (&["-b", "1", "--run", "/bin/true"], "goes after '--'"),
        (&["-b", "1", "--run"], "needs a command after '--'"),
        (&["-b", "1"], "please specify an isolate command"),
        (&["--init", "--cleanup"], "only one command"),
        (&["-b", "x", "--init"], "not a whole number"),
        (&["-t", "-1", "--run", "--", "a"], "negative"),
        (&["--cg-mem=1000", "--run", "--", "a"], "needs --cg"),
        (
            &["-E", "=x", "--run", "--", "a"],
            "invalid environment rule",
        ),
        (&["-d", "/a=b", "--run", "--", "a"], "directory rule"),
    ] {
        let outcome = isolate.isolate(args);
        assert_one_line_error(&outcome, expected);
        assert!(outcome.stderr.contains("isolate --help"), "{outcome:?}");
    }
}

#[test]
fn box_id_out_of_range() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    for action in ["--init", "--cleanup"] {
        let outcome = isolate.isolate(&["-b", "1000", action]);
        assert_one_line_error(&outcome, "box id 1000 is out of range (allowed: 0-999)");
    }
    let meta = isolate.root().join("meta");
    let meta_arg = format!("-M{}", meta.display());
    let outcome = isolate.isolate(&[&meta_arg, "-b", "5000", "--run", "--", "/bin/true"]);
    assert_one_line_error(&outcome, "out of range");
    let log = CmsLog::parse(&fs::read_to_string(&meta).unwrap());
    assert_eq!(log.exit_status(), "sandbox error");
}

#[test]
fn run_on_a_box_never_initialized() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let id = slot_id(40, 0).to_string();
    let meta = isolate.root().join("meta");
    let meta_arg = format!("--meta={}", meta.display());
    let outcome = isolate.isolate(&["--cg", "-b", &id, &meta_arg, "--run", "--", "/bin/true"]);
    assert_one_line_error(&outcome, &format!("box {id} is not initialized"));
    assert!(
        outcome
            .stderr
            .contains(&format!("isolate --cg -b {id} --init")),
        "{outcome:?}"
    );
    let log = CmsLog::parse(&fs::read_to_string(&meta).unwrap());
    assert_eq!(log.keys(), ["status", "message"]);
    assert_eq!(log.exit_status(), "sandbox error");
    // Nothing was created by the attempt.
    assert!(!isolate.box_root.join(&id).exists());
}

#[test]
fn missing_or_unreadable_stdin_file_is_a_sandbox_error() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let secret = isolate.root().join("secret");
    fs::create_dir(&secret).unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(secret.join("input.txt"), "root only").unwrap();
    fs::set_permissions(secret.join("input.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    let sandbox = isolate.open_box(slot_id(41, 0), true);

    let (outcome, meta) = sandbox.run(&["-i", "nothere.txt"], &["/bin/cat"]);
    assert_one_line_error(&outcome, "nothere.txt");
    assert!(outcome.stderr.contains("No such file"), "{outcome:?}");
    let log = CmsLog::parse(&meta);
    assert_eq!(log.exit_status(), "sandbox error", "{meta}");

    // Opened by the box's user, who may not read it.
    let rule = format!("--dir=/secret={}", secret.display());
    let (outcome, meta) = sandbox.run(&[&rule, "-i", "/secret/input.txt"], &["/bin/cat"]);
    assert_one_line_error(&outcome, "Permission denied");
    assert_eq!(CmsLog::parse(&meta).exit_status(), "sandbox error");
    // The box still works afterwards.
    let (outcome, _) = sandbox.run(&[], &["/bin/true"]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
}

#[test]
fn a_bad_configuration_line_names_the_file_and_line() {
    skip_unless_privileged!();
    let isolate = Isolate::with_extra_config("first_gid = 63000\nbox_size = 5\n");
    let config = isolate.config.display().to_string();
    for args in [
        &["-b", "1", "--init"][..],
        &["-b", "1", "--cleanup"],
        &["--check-config"],
    ] {
        let outcome = isolate.isolate(args);
        assert_one_line_error(&outcome, &format!("{config}, line 8: "));
        assert!(
            outcome.stderr.contains("unknown configuration item"),
            "{outcome:?}"
        );
    }
    let bad_number = Isolate::with_extra_config("num_boxes = many\n");
    let outcome = bad_number.isolate(&["--check-config"]);
    assert_one_line_error(&outcome, "line 7: num_boxes must be a whole number");
}

#[test]
fn a_missing_configuration_means_defaults() {
    skip_unless_privileged!();
    let outcome = isobox(&["--check-config"]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert!(
        outcome
            .stdout
            .contains("1000 boxes in /var/local/lib/isobox"),
        "{outcome:?}"
    );
    let root = isobox(&["--print-cg-root"]);
    assert_eq!(root.code, 0, "{root:?}");
    assert!(
        std::path::Path::new(root.stdout.trim_end()).is_dir(),
        "{root:?}"
    );
}

#[test]
fn an_unwritable_meta_file_is_an_error_before_anything_runs() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(42, 0), false);
    let outcome = sandbox.isolate(&[
        "-M",
        "/nonexistent-dir/meta",
        "--run",
        "--",
        "/bin/sh",
        "-c",
        "touch /box/ran",
    ]);
    assert_one_line_error(&outcome, "cannot open the meta file /nonexistent-dir/meta");
    assert!(!sandbox.box_dir().join("ran").exists());
}

/// Started with its standard output closed (a careless caller of a
/// set-user-ID program), the command gets `/dev/null` there before it
/// opens anything: what `--init` prints must not land in the box's lock
/// file, which would otherwise take descriptor 1.
#[test]
fn closed_standard_descriptors_are_not_taken_by_the_commands_files() {
    use std::os::unix::process::CommandExt;
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.adopt_box(slot_id(43, 0), false);
    let mut command = isolate.command();
    command.args(["-b", &sandbox.id.to_string(), "--init"]);
    // SAFETY: close is async-signal-safe; the child closes its own copies.
    unsafe {
        command.pre_exec(|| {
            libc::close(1);
            Ok(())
        });
    }
    let status = command.status().expect("running isolate --init");
    assert!(status.success(), "{status:?}");
    assert!(sandbox.dir.join("box").is_dir());
    let lock = isolate.root().join("locks").join(sandbox.id.to_string());
    assert_eq!(fs::read(&lock).expect("the box's lock file"), b"");
}
