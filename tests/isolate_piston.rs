//! Piston (engineer-man/piston, `api/src/job.js`) driving isobox as
//! `isolate`: its exact argument lists for `--init`, `--run` (compile and
//! run stages alike) and `--cleanup`, stdin written to isolate's pipe, the
//! meta file read the way `safe_call` reads it, and the signals Piston
//! sends to a running isolate (an interactive job's kill).
//!
//! Run as root with cgroups (privileged tests).

mod common;
mod isolate_support;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use common::skip_unless_privileged;
use isolate_support::{slot_id, Isolate, Outcome};

/// A Piston runtime: its package directory (bound in with `--dir`) holding
/// the `run` script that `safe_call` hands to `/bin/bash`, and its limits.
struct Runtime {
    pkgdir: PathBuf,
    env_vars: Vec<String>,
    max_process_count: u32,
    max_open_files: u32,
    /// Bytes, as in Piston's configuration.
    max_file_size: u64,
}

impl Runtime {
    /// A runtime whose `run` script is `script`, with Piston's default
    /// limits (64 processes, 2048 open files, 10 MB files).
    fn new(isolate: &Isolate, script: &str) -> Self {
        let pkgdir = isolate.root().join("packages/bash/5.2.0");
        fs::create_dir_all(&pkgdir).unwrap();
        fs::write(pkgdir.join("run"), script).unwrap();
        Self {
            pkgdir,
            env_vars: vec!["PATH=/usr/local/bin:/usr/bin:/bin".into()],
            max_process_count: 64,
            max_open_files: 2048,
            max_file_size: 10_000_000,
        }
    }
}

/// What `safe_call` makes of the meta file: each non-empty line split at
/// every `:`, the first two parts key and value (a line without `:` is
/// Piston's "Failed to parse metadata file").
#[derive(Debug, Default)]
struct PistonResult {
    memory: Option<u64>,
    code: Option<i64>,
    signal: Option<i32>,
    message: Option<String>,
    status: Option<String>,
    cpu_time: Option<f64>,
    wall_time: Option<f64>,
}

fn piston_parse_meta(text: &str) -> PistonResult {
    let mut result = PistonResult::default();
    for line in text.split('\n') {
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split(':');
        let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
            panic!("Failed to parse metadata file, received: {line}");
        };
        match key {
            "cg-mem" => result.memory = Some(value.parse::<u64>().unwrap() * 1000),
            "exitcode" => result.code = Some(value.parse().unwrap()),
            "exitsig" => result.signal = Some(value.parse().unwrap()),
            "message" => result.message = result.message.or(Some(value.to_string())),
            "status" => result.status = result.status.or(Some(value.to_string())),
            "time" => result.cpu_time = Some(value.parse::<f64>().unwrap() * 1000.0),
            "time-wall" => result.wall_time = Some(value.parse::<f64>().unwrap() * 1000.0),
            _ => {}
        }
    }
    result
}

/// One Piston job's box: `isolate --init --cg -b<ID>` (as one shell
/// command, as `exec` runs it), the printed directory plus `/box` as the
/// job's directory, and `isolate --cleanup --cg -b<ID>` at the end.
struct PistonBox<'a> {
    isolate: &'a Isolate,
    id: u32,
    dir: PathBuf,
    metadata_file_path: PathBuf,
}

impl<'a> PistonBox<'a> {
    fn new(isolate: &'a Isolate, id: u32) -> Self {
        let init = isolate.isolate(&["--init", "--cg", &format!("-b{id}")]);
        assert_eq!(init.code, 0, "{init:?}");
        assert!(
            !init.stdout.is_empty(),
            "Received empty stdout from isolate --init"
        );
        let dir = PathBuf::from(format!("{}/box", init.stdout.trim()));
        assert!(dir.is_dir(), "{init:?}");
        Self {
            isolate,
            id,
            dir,
            metadata_file_path: isolate.root().join(format!("{id}-metadata.txt")),
        }
    }

    /// `prime`: the submission's files under `<box>/submission`, written
    /// by Piston as root.
    fn prime(&self, files: &[(&str, &str)]) {
        let submission = self.dir.join("submission");
        fs::create_dir(&submission).unwrap();
        for (name, content) in files {
            fs::write(submission.join(name), content).unwrap();
        }
    }

    /// `safe_call`'s argument list, word for word.
    fn args(
        &self,
        runtime: &Runtime,
        file: &str,
        args: &[&str],
        limits: Limits,
        disable_networking: bool,
    ) -> Vec<String> {
        let Limits {
            timeout_ms,
            cpu_time_ms,
            memory_limit,
        } = limits;
        let mut words: Vec<String> = vec![
            "--run".into(),
            format!("-b{}", self.id),
            format!("--meta={}", self.metadata_file_path.display()),
            "--cg".into(),
            "-s".into(),
            "-c".into(),
            "/box/submission".into(),
            "-E".into(),
            "HOME=/tmp".into(),
        ];
        for var in &runtime.env_vars {
            words.extend(["-E".into(), var.clone()]);
        }
        words.extend([
            "-E".into(),
            "PISTON_LANGUAGE=bash".into(),
            format!("--dir={}", runtime.pkgdir.display()),
            "--dir=/etc:noexec".into(),
            format!("--processes={}", runtime.max_process_count),
            format!("--open-files={}", runtime.max_open_files),
            format!("--fsize={}", runtime.max_file_size / 1000),
            format!("--wall-time={}", seconds(timeout_ms)),
            format!("--time={}", seconds(cpu_time_ms)),
            "--extra-time=0".into(),
        ]);
        if memory_limit >= 0 {
            words.push(format!("--cg-mem={}", memory_limit / 1000));
        }
        if !disable_networking {
            words.push("--share-net".into());
        }
        words.push("--".into());
        words.push("/bin/bash".into());
        words.push(runtime.pkgdir.join(file).display().to_string());
        words.extend(args.iter().map(|arg| arg.to_string()));
        words
    }

    /// Spawns isolate with stdin, stdout and stderr piped, as `cp.spawn`
    /// with `stdio: 'pipe'` does.
    fn spawn(&self, words: &[String]) -> Child {
        self.isolate
            .command()
            .args(words)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning isolate")
    }

    /// A non-interactive `safe_call`: stdin written and closed, then the
    /// exit awaited and the meta file read.
    fn call(&self, words: &[String], stdin: &str) -> (Outcome, PistonResult) {
        let mut child = self.spawn(words);
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(stdin.as_bytes()).unwrap();
        drop(pipe);
        let outcome: Outcome = child.wait_with_output().unwrap().into();
        let meta = fs::read_to_string(&self.metadata_file_path)
            .unwrap_or_else(|err| panic!("Error reading metadata file: {err}\n{outcome:?}"));
        (outcome, piston_parse_meta(&meta))
    }
}

impl Drop for PistonBox<'_> {
    /// `cleanup`: `isolate --cleanup --cg -b<ID>`, then the meta file goes.
    fn drop(&mut self) {
        let cleanup = self
            .isolate
            .isolate(&["--cleanup", "--cg", &format!("-b{}", self.id)]);
        let _ = fs::remove_file(&self.metadata_file_path);
        common::kill_processes_of_uid(isolate_support::FIRST_UID + self.id);
        if !std::thread::panicking() {
            assert_eq!(cleanup.code, 0, "{cleanup:?}");
            isolate_support::assert_box_gone(self.isolate, self.id);
        }
    }
}

/// A stage's limits as `safe_call` gets them: wall and CPU time in ms,
/// memory in bytes (-1: none).
#[derive(Clone, Copy)]
struct Limits {
    timeout_ms: u64,
    cpu_time_ms: u64,
    memory_limit: i64,
}

const fn limits(timeout_ms: u64, cpu_time_ms: u64, memory_limit: i64) -> Limits {
    Limits {
        timeout_ms,
        cpu_time_ms,
        memory_limit,
    }
}

/// Piston's `timeout / 1000` as JavaScript prints it: `3`, `0.5`.
fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        (ms / 1000).to_string()
    } else {
        format!("{}", ms as f64 / 1000.0)
    }
}

const RUN_SCRIPT: &str = "#!/bin/bash\nbash \"$@\"\n";

#[test]
fn piston_runs_a_job_and_reads_its_meta_file() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let runtime = Runtime::new(&isolate, RUN_SCRIPT);
    let job = PistonBox::new(&isolate, slot_id(70, 0));
    job.prime(&[(
        "main.sh",
        "read name\n\
         echo \"hello $name from $PISTON_LANGUAGE in $PWD, HOME=$HOME\"\n\
         echo warn >&2\n\
         echo \"files $(ulimit -n) fsize $(ulimit -f)\"\n\
         ( echo child ) | cat\n\
         touch /etc/x 2>/dev/null && echo wrote-etc\n\
         exit 0\n",
    )]);
    let words = job.args(
        &runtime,
        "run",
        &["main.sh"],
        limits(3000, 3000, 128_000_000),
        true,
    );
    let (outcome, result) = job.call(&words, "piston\n");
    assert_eq!(outcome.code, 0, "{outcome:?}\n{result:?}");
    assert_eq!(
        outcome.stdout,
        "hello piston from bash in /box/submission, HOME=/tmp\n\
         files 2048 fsize 10000\n\
         child\n"
    );
    // -s: the program's own stderr only, no "OK (...)" line.
    assert_eq!(outcome.stderr, "warn\n");
    assert_eq!(result.code, Some(0));
    assert_eq!(result.status, None);
    assert_eq!(result.signal, None);
    assert!(result.memory.is_some_and(|bytes| bytes > 0), "{result:?}");
    assert!(result.cpu_time.is_some() && result.wall_time.is_some());

    // The compile stage and a second run reuse the box, as Piston does.
    let words = job.args(
        &runtime,
        "run",
        &["-c", "exit 3"],
        limits(3000, 3000, -1),
        false,
    );
    let (outcome, result) = job.call(&words, "");
    assert_eq!(outcome.code, 1, "{outcome:?}");
    assert_eq!(result.code, Some(3));
    assert_eq!(result.status.as_deref(), Some("RE"));
    assert_eq!(
        result.message.as_deref(),
        Some("Exited with error status 3")
    );
}

#[test]
fn piston_sees_time_limits_as_sigkill() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let runtime = Runtime::new(&isolate, RUN_SCRIPT);
    let job = PistonBox::new(&isolate, slot_id(70, 1));
    job.prime(&[
        ("spin.sh", "while :; do :; done\n"),
        ("nap.sh", "sleep 30\n"),
    ]);
    let words = job.args(
        &runtime,
        "run",
        &["spin.sh"],
        limits(10_000, 500, 128_000_000),
        true,
    );
    let (outcome, result) = job.call(&words, "");
    assert_eq!(outcome.code, 1, "{outcome:?}");
    assert_eq!(result.status.as_deref(), Some("TO"), "{result:?}");
    assert_eq!(result.message.as_deref(), Some("Time limit exceeded"));
    assert!(result.cpu_time.unwrap() >= 500.0, "{result:?}");

    let words = job.args(
        &runtime,
        "run",
        &["nap.sh"],
        limits(500, 3000, 128_000_000),
        true,
    );
    let (outcome, result) = job.call(&words, "");
    assert_eq!(outcome.code, 1, "{outcome:?}");
    assert_eq!(result.status.as_deref(), Some("TO"), "{result:?}");
    assert_eq!(
        result.message.as_deref(),
        Some("Time limit exceeded (wall clock)")
    );
}

#[test]
fn piston_kill_of_an_interactive_job_is_reported_and_cleaned_up() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let runtime = Runtime::new(&isolate, RUN_SCRIPT);
    let job = PistonBox::new(&isolate, slot_id(70, 2));
    job.prime(&[(
        "wait.sh",
        "touch /box/started\nread line\necho \"got $line\"\n",
    )]);
    let words = job.args(
        &runtime,
        "run",
        &["wait.sh"],
        limits(30_000, 30_000, 128_000_000),
        true,
    );
    // An interactive job: stdin stays open, and the client's kill event
    // becomes `proc.kill(signal)`.
    let mut child = job.spawn(&words);
    // Held open until isolate has exited: `wait_with_output` would close
    // it at once, and the job, reading end of file, could finish before
    // the signal stops it (seen on one virtual CPU).
    let stdin = child.stdin.take();
    common::wait_for(&job.dir.join("started"));
    // SAFETY: signals the isolate process this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let outcome: Outcome = child.wait_with_output().unwrap().into();
    drop(stdin);
    let meta = fs::read_to_string(&job.metadata_file_path).unwrap();
    let result = piston_parse_meta(&meta);
    assert_eq!(outcome.code, 1, "{outcome:?}\n{meta}");
    assert_eq!(result.status.as_deref(), Some("SG"), "{meta}");
    assert_eq!(result.signal, Some(libc::SIGTERM), "{meta}");
    assert_eq!(result.message.as_deref(), Some("Interrupted"));
    assert!(result.wall_time.is_some(), "{meta}");
    common::assert_no_process_of_uid(isolate_support::FIRST_UID + job.id);
    assert!(
        Path::new(&job.dir).is_dir(),
        "the box stays until --cleanup"
    );
}
