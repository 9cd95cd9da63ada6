//! Judge0 (`isolate_job.rb`) driving isobox as `isolate`: its argument
//! list, its shell-redirected stdin, stdout and stderr, the meta file read
//! the way Judge0 reads it, and the status Judge0 derives.
//!
//! Run as root with cgroups (privileged tests).

mod common;
mod isolate_support;

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::PathBuf;

use common::skip_unless_privileged;
use isolate_support::{slot_id, Isolate, Outcome};

/// Judge0's `parse_meta`: each line split at `:`, the first part the key,
/// the rest joined back with `:`.
fn judge0_parse_meta(text: &str) -> HashMap<String, String> {
    text.split('\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let mut parts = line.split(':');
            let key = parts.next().unwrap_or_default().to_string();
            (key, parts.collect::<Vec<_>>().join(":"))
        })
        .collect()
}

/// Judge0's `determine_status`.
fn judge0_status(meta: &HashMap<String, String>, expected: &str, stdout: &str) -> String {
    let strip = |text: &str| {
        text.split('\n')
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join("\n")
            .trim_end()
            .to_string()
    };
    match meta.get("status").map(String::as_str) {
        Some("TO") => "Time Limit Exceeded".into(),
        Some("SG") => {
            let signal: i32 = meta
                .get("exitsig")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            match signal {
                11 => "Runtime Error (SIGSEGV)".into(),
                25 => "Runtime Error (SIGXFSZ)".into(),
                8 => "Runtime Error (SIGFPE)".into(),
                6 => "Runtime Error (SIGABRT)".into(),
                _ => "Runtime Error (Other)".into(),
            }
        }
        Some("RE") => "Runtime Error (NZEC)".into(),
        Some("XX") => "Internal Error".into(),
        _ if strip(expected) == strip(stdout) => "Accepted".into(),
        _ => "Wrong Answer".into(),
    }
}

/// One Judge0 submission run in a box.
struct Submission<'a> {
    isolate: &'a Isolate,
    id: u32,
    workdir: PathBuf,
}

/// What Judge0 ends up with.
#[derive(Debug)]
struct Verdict {
    outcome: Outcome,
    meta: HashMap<String, String>,
    stdout: String,
    stderr: String,
}

impl<'a> Submission<'a> {
    /// `isolate --cg -b ID --init`; the printed line is Judge0's workdir.
    fn new(isolate: &'a Isolate, id: u32) -> Self {
        let init = isolate.isolate(&["--cg", "-b", &id.to_string(), "--init"]);
        assert_eq!(init.code, 0, "{init:?}");
        let workdir = PathBuf::from(init.stdout.trim_end());
        assert!(workdir.join("box").is_dir(), "{init:?}");
        Self {
            isolate,
            id,
            workdir,
        }
    }

    /// Writes `run.sh` into the box and the input into `stdin.txt`.
    fn write(&self, script: &str, input: &str) {
        fs::write(self.workdir.join("box/run.sh"), script).unwrap();
        fs::write(self.workdir.join("stdin.txt"), input).unwrap();
    }

    /// Judge0's `--run` command line, with `extra` after its fixed options
    /// (for `--stderr-to-stdout`, `--share-net`, different limits), and
    /// `< stdin.txt > stdout.txt 2> stderr.txt` done as the shell does.
    fn run(&self, limits: &[&str], extra: &[&str]) -> Verdict {
        let meta = self.workdir.join("metadata.txt");
        let id = self.id.to_string();
        let meta_arg = meta.display().to_string();
        let mut args: Vec<&str> = vec!["--cg", "-s", "-b", &id, "-M", &meta_arg];
        args.extend_from_slice(extra);
        args.extend_from_slice(limits);
        args.extend_from_slice(&[
            "--cg-timing",
            "-E",
            "HOME=/tmp",
            "-E",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "-E",
            "LANG",
            "-E",
            "LANGUAGE",
            "-E",
            "LC_ALL",
            "-E",
            "JUDGE0_HOMEPAGE",
            "-E",
            "JUDGE0_SOURCE_CODE",
            "-E",
            "JUDGE0_MAINTAINER",
            "-E",
            "JUDGE0_VERSION",
            "-d",
            "/etc:noexec",
            "--run",
            "--",
            "/bin/bash",
            "run.sh",
        ]);
        let output = self
            .isolate
            .command()
            .args(&args)
            .current_dir(&self.workdir)
            .env("LANG", "C.UTF-8")
            .env("JUDGE0_VERSION", "1.13.1")
            .env_remove("LANGUAGE")
            .env_remove("LC_ALL")
            .stdin(File::open(self.workdir.join("stdin.txt")).unwrap())
            .stdout(File::create(self.workdir.join("stdout.txt")).unwrap())
            .stderr(File::create(self.workdir.join("stderr.txt")).unwrap())
            .output()
            .expect("running isolate");
        Verdict {
            outcome: output.into(),
            meta: judge0_parse_meta(&fs::read_to_string(&meta).unwrap_or_default()),
            stdout: fs::read_to_string(self.workdir.join("stdout.txt")).unwrap(),
            stderr: fs::read_to_string(self.workdir.join("stderr.txt")).unwrap(),
        }
    }
}

impl Drop for Submission<'_> {
    fn drop(&mut self) {
        let cleanup = self
            .isolate
            .isolate(&["--cg", "-b", &self.id.to_string(), "--cleanup"]);
        if !std::thread::panicking() {
            assert_eq!(cleanup.code, 0, "{cleanup:?}");
            isolate_support::assert_box_gone(self.isolate, self.id);
        }
    }
}

/// Judge0's defaults: 5 s CPU, 1 s extra, 10 s wall (raised here for a
/// loaded machine), 64000 KiB stack, 60 processes, 128000 KiB memory,
/// 1024 KiB files.
const LIMITS: [&str; 14] = [
    "-t",
    "5",
    "-x",
    "1",
    "-w",
    "30",
    "-k",
    "64000",
    "-p60",
    "--cg-mem=128000",
    "-f",
    "1024",
    "-E",
    "LANG",
];

#[test]
fn judge0_accepted_with_shell_redirected_streams() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let submission = Submission::new(&isolate, slot_id(10, 0));
    submission.write(
        "read n\necho $((n * 2))\necho \"to stderr\" >&2\nenv >&2\n",
        "21\n",
    );
    let verdict = submission.run(&LIMITS, &[]);
    assert_eq!(verdict.outcome.code, 0, "{verdict:?}");
    assert_eq!(
        judge0_status(&verdict.meta, "42", &verdict.stdout),
        "Accepted",
        "{verdict:?}"
    );
    assert_eq!(verdict.stdout, "42\n");
    // -s: nothing of isobox's own in the program's stderr.
    assert!(verdict.stderr.starts_with("to stderr\n"), "{verdict:?}");
    assert!(!verdict.stderr.contains("OK ("), "{verdict:?}");
    let env: Vec<&str> = verdict.stderr.lines().skip(1).collect();
    for expected in [
        "HOME=/tmp",
        "LANG=C.UTF-8",
        "JUDGE0_VERSION=1.13.1",
        "LIBC_FATAL_STDERR_=1",
    ] {
        assert!(env.contains(&expected), "{expected} missing: {env:?}");
    }
    assert!(
        !env.iter().any(|line| line.starts_with("ISOBOX_CONFIG=")),
        "the caller's environment leaked: {env:?}"
    );
    assert!(verdict.meta["time"].parse::<f64>().unwrap() >= 0.0);
    assert!(verdict.meta["cg-mem"].parse::<u64>().unwrap() > 0);
}

#[test]
fn judge0_stderr_to_stdout() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let submission = Submission::new(&isolate, slot_id(11, 0));
    submission.write("echo out\necho err >&2\n", "");
    let verdict = submission.run(&LIMITS, &["--stderr-to-stdout"]);
    assert_eq!(verdict.outcome.code, 0, "{verdict:?}");
    assert_eq!(verdict.stdout, "out\nerr\n");
    assert_eq!(verdict.stderr, "");
}

#[test]
fn judge0_time_limit_cpu_and_wall() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let submission = Submission::new(&isolate, slot_id(12, 0));
    let cpu_limits = [
        "-t",
        "0.5",
        "-x",
        "1",
        "-w",
        "30",
        "-p60",
        "--cg-mem=128000",
    ];
    submission.write("while :; do :; done\n", "");
    let verdict = submission.run(&cpu_limits, &[]);
    assert_eq!(verdict.outcome.code, 1, "{verdict:?}");
    assert_eq!(
        judge0_status(&verdict.meta, "", &verdict.stdout),
        "Time Limit Exceeded"
    );
    let time: f64 = verdict.meta["time"].parse().unwrap();
    assert!((1.0..3.0).contains(&time), "{verdict:?}");

    let wall_limits = ["-t", "5", "-x", "1", "-w", "1", "-p60", "--cg-mem=128000"];
    submission.write("sleep 20\n", "");
    let verdict = submission.run(&wall_limits, &[]);
    assert_eq!(verdict.outcome.code, 1, "{verdict:?}");
    assert_eq!(
        judge0_status(&verdict.meta, "", &verdict.stdout),
        "Time Limit Exceeded"
    );
    assert_eq!(
        verdict.meta["message"], "Time limit exceeded (wall clock)",
        "{verdict:?}"
    );
}

#[test]
fn judge0_runtime_errors() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let submission = Submission::new(&isolate, slot_id(13, 0));
    let status = |script: &str| {
        submission.write(script, "");
        let verdict = submission.run(&LIMITS, &[]);
        assert_eq!(verdict.outcome.code, 1, "{verdict:?}");
        (
            judge0_status(&verdict.meta, "", &verdict.stdout),
            verdict.meta,
        )
    };
    assert_eq!(status("exit 3\n").0, "Runtime Error (NZEC)");
    assert_eq!(status("kill -SEGV $$\n").0, "Runtime Error (SIGSEGV)");
    assert_eq!(status("kill -FPE $$\n").0, "Runtime Error (SIGFPE)");
    // -f 1024: writing 2 MiB dies of SIGXFSZ.
    let (name, meta) = status("exec head -c 2097152 /dev/zero > big\n");
    assert_eq!(name, "Runtime Error (SIGXFSZ)", "{meta:?}");
    // Over --cg-mem: killed by the OOM killer, which Judge0 sees as a
    // SIGKILL; the meta file says why.
    let bomb = common::program("memory_bomb");
    fs::copy(&bomb, submission.workdir.join("box/bomb")).unwrap();
    let (name, meta) = status("exec ./bomb\n");
    assert_eq!(name, "Runtime Error (Other)", "{meta:?}");
    assert_eq!(meta["exitsig"], "9");
    assert_eq!(meta["cg-oom-killed"], "1");
}

#[test]
fn judge0_internal_error() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let submission = Submission::new(&isolate, slot_id(14, 0));
    submission.write("echo never\n", "");
    let verdict = submission.run(&LIMITS, &["-d", "/isobox-no-such-directory"]);
    assert_eq!(verdict.outcome.code, 2, "{verdict:?}");
    assert_eq!(
        judge0_status(&verdict.meta, "never", &verdict.stdout),
        "Internal Error"
    );
    assert!(
        verdict.meta["message"].contains("isobox-no-such-directory"),
        "{verdict:?}"
    );
    // Judge0 appends the message to stderr; isobox says it there too.
    assert!(
        verdict.stderr.contains("isobox-no-such-directory"),
        "{verdict:?}"
    );
}
