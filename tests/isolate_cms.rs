//! CMS (`cms/grading/Sandbox.py`) driving isobox as `isolate`: the exact
//! argument lists CMS passes, the meta file read the way CMS reads it, and
//! every verdict CMS derives from it.
//!
//! Run as root with cgroups (privileged tests).

mod common;
mod isolate_support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use common::skip_unless_privileged;
use isolate_support::{cms_box_ok, slot_id, CmsLog, Isolate, Outcome};
use tempfile::TempDir;

/// One CMS sandbox: its box and its outer directory, whose `home` is bound
/// read-write at `/tmp` inside the box and is the program's working
/// directory.
struct CmsSandbox<'a> {
    isolate: &'a Isolate,
    id: u32,
    outer: TempDir,
    runs: std::cell::Cell<u32>,
}

/// The optional arguments CMS adds, in the order CMS adds them.
#[derive(Default)]
struct Limits<'a> {
    full_env: bool,
    fsize_kib: Option<u64>,
    stdin: Option<&'a str>,
    stack_kib: Option<u64>,
    cg_mem_kib: Option<u64>,
    stdout: Option<&'a str>,
    many_processes: bool,
    stderr: Option<&'a str>,
    time: Option<&'a str>,
    verbose: bool,
    wall_time: Option<&'a str>,
    extra_time: Option<&'a str>,
}

impl<'a> CmsSandbox<'a> {
    /// `isolate --box-id=N --cg --init`.
    fn new(isolate: &'a Isolate, id: u32) -> Self {
        let outer = common::temp_dir("isobox-cms-", 0o755);
        let home = outer.path().join("home");
        fs::create_dir(&home).unwrap();
        fs::set_permissions(&home, fs::Permissions::from_mode(0o777)).unwrap();
        let init = isolate.isolate(&[&format!("--box-id={id}"), "--cg", "--init"]);
        assert_eq!(init.code, 0, "{init:?}");
        assert_eq!(
            init.stdout.trim_end(),
            isolate.box_root.join(id.to_string()).display().to_string()
        );
        Self {
            isolate,
            id,
            outer,
            runs: std::cell::Cell::new(0),
        }
    }

    fn home(&self) -> PathBuf {
        self.outer.path().join("home")
    }

    /// Copies a host program into the home directory; it is `/tmp/<name>`
    /// inside the box.
    fn install(&self, host_path: &str, name: &str) -> String {
        let target = self.home().join(name);
        fs::copy(host_path, &target).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).unwrap();
        format!("/tmp/{name}")
    }

    /// CMS's `--run` argument list, then parses the meta file as CMS does.
    fn run(&self, limits: &Limits<'_>, command: &[&str]) -> (Outcome, CmsLog) {
        let run = self.runs.get();
        self.runs.set(run + 1);
        let meta = self.outer.path().join(format!("run.meta.{run}"));
        let mut args: Vec<String> = vec![
            "--cg".into(),
            format!("--box-id={}", self.id),
            "--chdir=/tmp".into(),
            format!("--dir=/tmp={}:rw", self.home().display()),
            "--dir=/dev/shm:tmp".into(),
            "--dir=/etc/alternatives=/etc/alternatives".into(),
            "--env=HOME=/tmp".into(),
        ];
        if limits.full_env {
            args.push("--full-env".into());
        }
        if let Some(kib) = limits.fsize_kib {
            args.push(format!("--fsize={kib}"));
        }
        if let Some(file) = limits.stdin {
            args.push(format!("--stdin={file}"));
        }
        if let Some(kib) = limits.stack_kib {
            args.push(format!("--stack={kib}"));
        }
        if let Some(kib) = limits.cg_mem_kib {
            args.push(format!("--cg-mem={kib}"));
        }
        if let Some(file) = limits.stdout {
            args.push(format!("--stdout={file}"));
        }
        args.push(format!(
            "--processes={}",
            if limits.many_processes { 1000 } else { 1 }
        ));
        if let Some(file) = limits.stderr {
            args.push(format!("--stderr={file}"));
        }
        if let Some(time) = limits.time {
            args.push(format!("--time={time}"));
        }
        if limits.verbose {
            args.push("-v".into());
        }
        if let Some(time) = limits.wall_time {
            args.push(format!("--wall-time={time}"));
        }
        if let Some(time) = limits.extra_time {
            args.push(format!("--extra-time={time}"));
        }
        args.push(format!("--meta={}", meta.display()));
        args.push("--run".into());
        args.push("--".into());
        args.extend(command.iter().map(|word| word.to_string()));
        let outcome: Outcome = self
            .isolate
            .command()
            .args(&args)
            .output()
            .expect("running isolate")
            .into();
        let text = fs::read_to_string(&meta).unwrap_or_default();
        (outcome, CmsLog::parse(&text))
    }
}

impl Drop for CmsSandbox<'_> {
    fn drop(&mut self) {
        // `isolate --box-id=N --cg --cleanup`, checked only when the test
        // has not failed already.
        let cleanup =
            self.isolate
                .isolate(&[&format!("--box-id={}", self.id), "--cg", "--cleanup"]);
        if !std::thread::panicking() {
            assert_eq!(cleanup.code, 0, "{cleanup:?}");
            isolate_support::assert_box_gone(self.isolate, self.id);
        }
    }
}

fn generous() -> Limits<'static> {
    Limits {
        time: Some("5"),
        wall_time: Some("30"),
        extra_time: Some("0.5"),
        cg_mem_kib: Some(256 * 1024),
        fsize_kib: Some(16 * 1024),
        stack_kib: Some(64 * 1024),
        ..Limits::default()
    }
}

#[test]
fn cms_ok_run_with_redirected_files_and_measurements() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = CmsSandbox::new(&isolate, slot_id(1, 0));
    fs::write(sandbox.home().join("input.txt"), "20 22\n").unwrap();
    let limits = Limits {
        stdin: Some("/tmp/input.txt"),
        stdout: Some("/tmp/output.txt"),
        stderr: Some("/tmp/error.txt"),
        verbose: true,
        ..generous()
    };
    let (outcome, log) = sandbox.run(
        &limits,
        &[
            "/bin/sh",
            "-c",
            "read a b; echo $((a + b)); echo \"$HOME $PWD\" >&2",
        ],
    );
    assert!(cms_box_ok(outcome.code), "{outcome:?}");
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert_eq!(log.exit_status(), "ok", "{log:?}");
    assert_eq!(log.get("status"), None);
    assert_eq!(log.get("exitcode"), Some("0"));
    assert_eq!(
        log.keys(),
        [
            "time",
            "time-wall",
            "max-rss",
            "csw-voluntary",
            "csw-forced",
            "cg-mem",
            "exitcode"
        ]
    );
    assert!(log.time() >= 0.0 && log.time() < 5.0, "{log:?}");
    assert!(log.memory() > 0, "{log:?}");
    let home = sandbox.home();
    assert_eq!(fs::read_to_string(home.join("output.txt")).unwrap(), "42\n");
    assert_eq!(
        fs::read_to_string(home.join("error.txt")).unwrap(),
        "/tmp /tmp\n"
    );
}

#[test]
fn cms_cpu_timeout_reports_the_time_used() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = CmsSandbox::new(&isolate, slot_id(2, 0));
    let spin = sandbox.install(&common::program("spin_cpu"), "spin");
    let limits = Limits {
        time: Some("0.5"),
        extra_time: Some("0.7"),
        ..generous()
    };
    let (outcome, log) = sandbox.run(&limits, &[&spin, "100"]);
    assert_eq!(outcome.code, 1, "{outcome:?}");
    assert_eq!(log.exit_status(), "timeout", "{log:?}");
    assert_eq!(log.get("message"), Some("Time limit exceeded"));
    assert_eq!(log.get("killed"), Some("1"));
    assert_eq!(log.keys()[..3], ["status", "message", "killed"]);
    // Killed at the absolute extra time, and the time used is reported.
    assert!(log.time() >= 0.7 && log.time() < 3.0, "{log:?}");
}

#[test]
fn cms_wall_timeout_says_wall() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = CmsSandbox::new(&isolate, slot_id(3, 0));
    let limits = Limits {
        wall_time: Some("1"),
        ..generous()
    };
    let (outcome, log) = sandbox.run(&limits, &["/bin/sleep", "20"]);
    assert_eq!(outcome.code, 1, "{outcome:?}");
    assert_eq!(log.exit_status(), "wall timeout", "{log:?}");
    assert_eq!(log.get("message"), Some("Time limit exceeded (wall clock)"));
    let wall: f64 = log.get("time-wall").unwrap().parse().unwrap();
    assert!((1.0..10.0).contains(&wall), "{log:?}");
}

#[test]
fn cms_memory_limit_and_no_oom_flag_in_the_next_run() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = CmsSandbox::new(&isolate, slot_id(4, 0));
    let bomb = sandbox.install(&common::program("memory_bomb"), "bomb");
    let limits = Limits {
        cg_mem_kib: Some(64 * 1024),
        ..generous()
    };
    let (outcome, log) = sandbox.run(&limits, &[&bomb]);
    assert_eq!(outcome.code, 1, "{outcome:?}");
    assert_eq!(log.exit_status(), "memory limit", "{log:?}");
    assert_eq!(log.get("cg-oom-killed"), Some("1"));
    assert_eq!(log.get("exitsig"), Some("9"));
    assert!(log.memory() >= 60 << 20, "{log:?}");

    // isolate's bug: the flag and the peak stick to the box. Not here.
    let (outcome, log) = sandbox.run(&generous(), &["/bin/true"]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert_eq!(log.exit_status(), "ok", "{log:?}");
    assert_eq!(log.get("cg-oom-killed"), None);
    assert!(log.memory() < 16 << 20, "{log:?}");
}

#[test]
fn cms_nonzero_return_and_signal() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = CmsSandbox::new(&isolate, slot_id(5, 0));
    let (outcome, log) = sandbox.run(&generous(), &["/bin/sh", "-c", "exit 3"]);
    assert_eq!(outcome.code, 1, "{outcome:?}");
    assert_eq!(log.exit_status(), "nonzero return", "{log:?}");
    assert_eq!(log.get("exitcode"), Some("3"));
    assert_eq!(log.get("message"), Some("Exited with error status 3"));

    let (outcome, log) = sandbox.run(&generous(), &["/bin/sh", "-c", "kill -SEGV $$"]);
    assert_eq!(outcome.code, 1, "{outcome:?}");
    assert_eq!(log.exit_status(), "signal", "{log:?}");
    assert_eq!(log.get("exitsig"), Some("11"));
    assert_eq!(log.get("message"), Some("Caught fatal signal 11"));

    // A program that cannot be executed is RE 127, as in isolate.
    let (outcome, log) = sandbox.run(&generous(), &["/tmp/no-such-program"]);
    assert_eq!(outcome.code, 1, "{outcome:?}");
    assert_eq!(log.exit_status(), "nonzero return", "{log:?}");
    assert_eq!(log.get("exitcode"), Some("127"));
    assert!(outcome.stderr.contains("execve"), "{outcome:?}");
}

#[test]
fn cms_sandbox_error_is_exit_2_and_xx() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = CmsSandbox::new(&isolate, slot_id(6, 0));
    let limits = Limits {
        stdin: Some("/tmp/missing-input.txt"),
        ..generous()
    };
    let (outcome, log) = sandbox.run(&limits, &["/bin/cat"]);
    assert_eq!(outcome.code, 2, "{outcome:?}");
    assert!(!cms_box_ok(outcome.code));
    assert_eq!(log.exit_status(), "sandbox error", "{log:?}");
    assert_eq!(log.keys(), ["status", "message"]);
    assert!(
        log.get("message").unwrap().contains("missing-input.txt"),
        "{log:?}"
    );
    assert_eq!(outcome.stderr.lines().count(), 1, "{outcome:?}");
}

#[test]
fn cms_processes_one_means_one() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = CmsSandbox::new(&isolate, slot_id(7, 0));
    // The shell must fork for /bin/true: refused with --processes=1.
    let script = ["/bin/sh", "-c", "/bin/true && echo forked"];
    let (outcome, log) = sandbox.run(&generous(), &script);
    assert_eq!(log.exit_status(), "nonzero return", "{log:?} {outcome:?}");
    let limits = Limits {
        many_processes: true,
        stdout: Some("/tmp/out.txt"),
        full_env: true,
        ..generous()
    };
    let (outcome, log) = sandbox.run(&limits, &script);
    assert_eq!(log.exit_status(), "ok", "{log:?} {outcome:?}");
    assert_eq!(
        fs::read_to_string(sandbox.home().join("out.txt")).unwrap(),
        "forked\n"
    );
}
