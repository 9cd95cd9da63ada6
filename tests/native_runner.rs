//! `isobox runner`: root's `isobox run` handed whole, before the C library
//! starts, to a resident process with a warm box
//! (`src/cli/native/runner.rs`). What a caller sees must not change: the
//! same output, exit status and files as the command line's own run;
//! whatever the runner would not do identically runs the ordinary way; a
//! run leaves nothing for the next; the runner serves root only, one runs
//! at a time, and it leaves clean.
//!
//! An invocation run under a seccomp filter that kills at glibc's first
//! `arch_prctl` gets through only if it never started the C library: the
//! runner carried it out. Run as root (privileged tests). The runner's
//! socket is the machine's, so the tests here take turns.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{died_at_glibc_start, eventually, skip_unless_privileged};

const SOCKET: &str = "/run/isobox/runner/runner.sock";
const RUNNER_DIR: &str = "/run/isobox/runner";

/// One runner at a time on the machine: the tests here take turns.
static TURN: Mutex<()> = Mutex::new(());

fn isobox() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_isobox"))
}

/// A running `isobox runner`, stopped (and waited for) when dropped.
struct Runner {
    child: Option<Child>,
    _turn: MutexGuard<'static, ()>,
}

impl Runner {
    fn start(extra: &[&str]) -> Self {
        let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // A socket left by a killed runner; the new one is put in place
        // only once it listens.
        let _ = fs::remove_file(SOCKET);
        let child = Command::new(isobox())
            .arg("runner")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut runner = Runner {
            child: Some(child),
            _turn: turn,
        };
        eventually("the runner listens", || {
            if let Some(Ok(Some(status))) = runner.child.as_mut().map(Child::try_wait) {
                panic!("isobox runner exited: {status} (is another one running?)");
            }
            Path::new(SOCKET).exists()
        });
        runner
    }

    /// The runner's workers (its children), by pid.
    fn workers(&self) -> Vec<i32> {
        let pid = self.child.as_ref().unwrap().id();
        fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|child| child.parse().ok())
            .collect()
    }

    /// Stops the runner with `SIGTERM` and returns how it ended.
    fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: signals this test's own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().unwrap()
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
    }
}

/// How an invocation is made: as which caller, with what environment,
/// and which executable (the runner's by default).
#[derive(Clone, Default)]
struct Caller {
    front: common::Caller,
    env: Vec<(&'static str, String)>,
    program: Option<PathBuf>,
}

fn filtered() -> Caller {
    Caller {
        front: common::FILTERED,
        ..Caller::default()
    }
}

/// Runs `isobox args` as `caller` from `dir`.
fn invoke(dir: &Path, args: &[&str], caller: &Caller) -> Output {
    spawn(dir, args, caller).wait_with_output().unwrap()
}

fn spawn(dir: &Path, args: &[&str], caller: &Caller) -> Child {
    let mut command = Command::new(caller.program.clone().unwrap_or_else(isobox));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("ISOBOX_LOG")
        .env_remove("TMPDIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in &caller.env {
        command.env(name, value);
    }
    caller.front.apply(&mut command);
    command.spawn().expect("running isobox")
}

/// Exit status, stdout and stderr with every number written as `N`: the
/// times, sizes and the box's uid differ from run to run.
fn seen(output: &Output) -> (Option<i32>, String, String) {
    let text = |bytes: &[u8]| {
        let mut text = String::new();
        let mut in_number = false;
        for character in String::from_utf8_lossy(bytes).chars() {
            if character.is_ascii_digit() || (in_number && character == '.') {
                if !in_number {
                    text.push('N');
                }
                in_number = true;
            } else {
                in_number = false;
                text.push(character);
            }
        }
        // A peak near a unit's boundary is printed in either (1020 KiB
        // in one run, 1.0 MiB in the next).
        for unit in ["NKiB", "NMiB", "NGiB"] {
            text = text.replace(unit, "N?iB");
        }
        text
    };
    (
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

/// Every file in `dir` with its mode, owner and content.
fn files_in(dir: &Path) -> Vec<(String, u32, u32, u32, Vec<u8>)> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let meta = fs::symlink_metadata(entry.path()).unwrap();
            (
                entry.file_name().to_string_lossy().into_owned(),
                meta.mode() & 0o7777,
                meta.uid(),
                meta.gid(),
                fs::read(entry.path()).unwrap_or_default(),
            )
        })
        .collect();
    files.sort();
    files
}

/// A scratch directory holding the files the cases read.
fn scratch() -> tempfile::TempDir {
    let dir = common::temp_dir("isobox-runner-test-", 0o755);
    fs::write(dir.path().join("in.txt"), "from stdin\n").unwrap();
    fs::write(dir.path().join("data.txt"), "copied in\n").unwrap();
    dir
}

/// An invocation and the caller it is made as.
struct Case {
    args: &'static [&'static str],
    caller: Caller,
}

fn cases() -> Vec<Case> {
    let plain = |args| Case {
        args,
        caller: filtered(),
    };
    vec![
        plain(&["run", "--", "/bin/echo", "hello"]),
        plain(&[
            "run",
            "--json",
            "--",
            "/bin/sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ]),
        Case {
            args: &[
                "run",
                "--stdin",
                "in.txt",
                "--stdout",
                "out.txt",
                "--stderr",
                "err.txt",
                "--",
                "/bin/sh",
                "-c",
                "cat; echo to stderr >&2",
            ],
            caller: Caller {
                front: common::Caller {
                    umask: Some(0o027),
                    ..common::FILTERED
                },
                ..filtered()
            },
        },
        Case {
            args: &[
                "run",
                "--copy-in",
                "data.txt",
                "--copy-out",
                "result.txt",
                "--",
                "/bin/sh",
                "-c",
                "tr a-z A-Z < data.txt > result.txt",
            ],
            caller: Caller {
                front: common::Caller {
                    umask: Some(0o077),
                    ..common::FILTERED
                },
                ..filtered()
            },
        },
        Case {
            args: &[
                "run",
                "--env",
                "GREETING",
                "--",
                "/bin/sh",
                "-c",
                "echo $GREETING",
            ],
            caller: Caller {
                env: vec![("GREETING", "bonjour".into())],
                ..filtered()
            },
        },
        plain(&[
            "run",
            "--time",
            "0.2",
            "--",
            "/bin/sh",
            "-c",
            "while :; do :; done",
        ]),
        plain(&[
            "run",
            "--mem",
            "64M",
            "--processes",
            "4",
            "--",
            "/bin/sh",
            "-c",
            "echo limited",
        ]),
        plain(&["run", "--dir", "/etc", "--", "/bin/cat", "/etc/hostname"]),
        plain(&["run", "--", "/no/such/program"]),
        plain(&["run", "--stdin", "missing.txt", "--", "/bin/true"]),
        plain(&["run", "--", "/bin/sh", "-c", "exit 7"]),
    ]
}

/// Each case carried out by the runner gives what the command line's own
/// run gives: status, output, and the files it writes, with their modes
/// and owners (the caller's umask).
#[test]
fn a_served_run_is_the_command_lines() {
    skip_unless_privileged!();
    let mut runner = Runner::start(&[]);
    let mut served = Vec::new();
    for case in cases() {
        let dir = scratch();
        let output = invoke(dir.path(), case.args, &case.caller);
        assert!(
            !died_at_glibc_start(&output),
            "{:?} was not served: {output:?}",
            case.args
        );
        served.push((seen(&output), files_in(dir.path())));
    }
    assert!(runner.stop().success());
    for (case, served) in cases().into_iter().zip(served) {
        let dir = scratch();
        let mut ordinary = case.caller;
        ordinary.front.filtered = false;
        let output = invoke(dir.path(), case.args, &ordinary);
        assert_eq!(
            served,
            (seen(&output), files_in(dir.path())),
            "{:?}: served (left) and ordinary (right) differ",
            case.args
        );
    }
}

/// A root directory with `isobox` at `/isobox` and the runner's directory
/// at its place, both bind mounts, unmounted when dropped.
struct Chroot {
    root: tempfile::TempDir,
    mounts: Vec<PathBuf>,
}

impl Chroot {
    fn new() -> Self {
        let root = common::temp_dir("isobox-runner-chroot-", 0o755);
        let mut chroot = Chroot {
            root,
            mounts: Vec::new(),
        };
        let binary = chroot.root.path().join("isobox");
        fs::write(&binary, "").unwrap();
        chroot.bind(&isobox(), &binary);
        let runner_dir = chroot.root.path().join("run/isobox/runner");
        fs::create_dir_all(&runner_dir).unwrap();
        chroot.bind(Path::new(RUNNER_DIR), &runner_dir);
        chroot
    }

    fn bind(&mut self, source: &Path, target: &Path) {
        let status = Command::new("mount")
            .arg("--bind")
            .arg(source)
            .arg(target)
            .status()
            .unwrap();
        assert!(status.success(), "mount --bind {}", source.display());
        self.mounts.push(target.to_path_buf());
    }
}

impl Drop for Chroot {
    fn drop(&mut self) {
        for mount in self.mounts.iter().rev() {
            let _ = Command::new("umount").arg(mount).status();
        }
    }
}

/// Whatever the runner would not carry out as the caller's own process
/// would goes the ordinary way: the filtered caller then dies at glibc's
/// start.
#[test]
fn what_the_runner_would_not_do_identically_runs_the_ordinary_way() {
    skip_unless_privileged!();
    let _runner = Runner::start(&["--boxes", "1"]);
    let dir = scratch();
    let true_run: &[&str] = &["run", "--", "/bin/true"];
    let served = invoke(dir.path(), true_run, &filtered());
    assert!(served.status.success(), "{served:?}");

    let copy_dir = common::temp_dir("isobox-runner-copy-", 0o755);
    let copy = copy_dir.path().join("isobox");
    fs::copy(isobox(), &copy).unwrap();
    // Another root directory in the same mount namespace, holding the same
    // executable (the static binary needs nothing else) and the runner's
    // socket, each bound there for the test.
    let jail = Chroot::new();
    let mut declined: Vec<(&str, &[&str], Caller)> = vec![
        (
            "another TMPDIR",
            true_run,
            Caller {
                env: vec![("TMPDIR", dir.path().display().to_string())],
                ..filtered()
            },
        ),
        (
            "logs asked for",
            true_run,
            Caller {
                env: vec![("ISOBOX_LOG", "warn".into())],
                ..filtered()
            },
        ),
        (
            "another mount namespace",
            true_run,
            Caller {
                front: common::Caller {
                    own_mount_namespace: true,
                    ..common::FILTERED
                },
                ..filtered()
            },
        ),
        (
            "a group other than root's",
            true_run,
            Caller {
                front: common::Caller {
                    group: Some(100),
                    ..common::FILTERED
                },
                ..filtered()
            },
        ),
        (
            "another executable",
            true_run,
            Caller {
                program: Some(copy),
                ..filtered()
            },
        ),
        (
            "another root directory",
            true_run,
            Caller {
                program: Some(PathBuf::from("/isobox")),
                front: common::Caller {
                    chroot: Some(jail.root.path().to_path_buf()),
                    ..common::FILTERED
                },
                ..filtered()
            },
        ),
        (
            "another nice value",
            true_run,
            Caller {
                front: common::Caller {
                    nice: Some(5),
                    ..common::FILTERED
                },
                ..Caller::default()
            },
        ),
        ("--lang", &["run", "--lang", "c", "main.c"], filtered()),
        ("--help", &["run", "--help"], filtered()),
        (
            "a bad option",
            &["run", "--no-such-option", "--", "/bin/true"],
            filtered(),
        ),
    ];
    // Pinned to one CPU, where the runner may use more.
    if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
        declined.push((
            "other CPUs",
            true_run,
            Caller {
                front: common::Caller {
                    cpu: Some(0),
                    ..common::FILTERED
                },
                ..Caller::default()
            },
        ));
    } else {
        eprintln!("one CPU: a caller on other CPUs than the runner's cannot be made here");
    }
    for (what, args, caller) in declined {
        let output = invoke(dir.path(), args, &caller);
        assert!(
            died_at_glibc_start(&output),
            "{what}: served, or failed otherwise: {output:?}"
        );
    }

    // Busy: a run under way in the runner, another comes.
    let mut long = spawn(
        dir.path(),
        &["run", "--", "/bin/sleep", "1"],
        &Caller::default(),
    );
    eventually("the long run is under way", || {
        common::processes_with_command_line("/bin/sleep\x001\x00")
            .iter()
            .any(|(_, uid)| *uid != 0)
    });
    let output = invoke(dir.path(), true_run, &filtered());
    assert!(
        died_at_glibc_start(&output),
        "served while busy: {output:?}"
    );
    assert!(long.wait().unwrap().success());
    let output = invoke(dir.path(), true_run, &filtered());
    assert!(output.status.success(), "not served again: {output:?}");
}

/// Callers at once, more than the runner has boxes: every one gets its
/// own program's output and status (from the runner, or the ordinary way
/// when every box was busy), and the runner leaves nothing afterwards.
#[test]
fn many_callers_at_once_each_get_their_own_result() {
    skip_unless_privileged!();
    let mut runner = Runner::start(&["--boxes", "2"]);
    let dir = scratch();
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let dir = dir.path();
            scope.spawn(move || {
                for round in 0..15 {
                    let word = format!("caller{thread}-{round}");
                    let status = (thread + round) % 3;
                    let script = format!("echo $WORD; exit {status}");
                    let caller = Caller {
                        env: vec![("WORD", word.clone())],
                        ..Caller::default()
                    };
                    let output = invoke(
                        dir,
                        &["run", "--env", "WORD", "--", "/bin/sh", "-c", &script],
                        &caller,
                    );
                    assert_eq!(String::from_utf8_lossy(&output.stdout), format!("{word}\n"));
                    let expected = if status == 0 { 0 } else { 1 };
                    assert_eq!(output.status.code(), Some(expected), "{output:?}");
                }
            });
        }
    });
    let workers = runner.workers();
    let box_dirs: Vec<PathBuf> = workers
        .iter()
        .flat_map(|pid| runner_box_dirs(*pid))
        .collect();
    let cgroups: Vec<PathBuf> = workers
        .iter()
        .flat_map(|pid| runner_cgroups(*pid))
        .collect();
    assert!(!box_dirs.is_empty(), "no run was served");
    assert!(runner.stop().success());
    assert_paths_gone(&box_dirs);
    common::assert_paths_gone(&cgroups);
}

/// What a run leaves in the box (files, a link to a host file, processes,
/// files in `/tmp`) is gone before the next run, and root follows no link
/// the program planted.
#[test]
fn a_run_leaves_nothing_for_the_next() {
    skip_unless_privileged!();
    // One box: the next run is in the same box.
    let _runner = Runner::start(&["--boxes", "1"]);
    let dir = scratch();
    let passwd = fs::read("/etc/passwd").unwrap();
    let output = invoke(
        dir.path(),
        &[
            "run",
            "--json",
            "--processes",
            "8",
            "--",
            "/bin/sh",
            "-c",
            "echo x > /box/left; mkdir -p /box/d/e; ln -s /etc/passwd /box/link; \
             ln -s /etc /box/d/e/up; echo t > /tmp/left; (/bin/sleep 100 &); id -u",
        ],
        &filtered(),
    );
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let uid: u32 = report["stdout"].as_str().unwrap().trim().parse().unwrap();
    assert!(uid >= 59000, "the box's uid: {uid}");
    common::assert_no_process_of_uid(uid);
    let output = invoke(
        dir.path(),
        &["run", "--", "/bin/sh", "-c", "ls -A /box /tmp; id -u"],
        &filtered(),
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("/box:\n\n/tmp:\n{uid}\n")
    );
    assert_eq!(fs::read("/etc/passwd").unwrap(), passwd);
    assert!(Path::new("/etc").is_dir());
}

/// An interrupted run (the caller's `SIGINT`) ends as the command line's
/// interrupted run does, and the runner serves the next one.
#[test]
fn an_interrupted_run_ends_as_the_command_lines_and_the_runner_serves_on() {
    skip_unless_privileged!();
    let mut runner = Runner::start(&[]);
    let dir = scratch();
    let interrupted = |caller: &Caller| {
        let child = spawn(dir.path(), &["run", "--", "/bin/sleep", "30"], caller);
        eventually("the run is under way", || {
            common::processes_with_command_line("/bin/sleep\x0030\x00")
                .iter()
                .any(|(_, uid)| *uid != 0)
        });
        // SAFETY: signals this test's own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let started = Instant::now();
        let output = child.wait_with_output().unwrap();
        assert!(started.elapsed() < Duration::from_secs(10));
        output
    };
    let served = interrupted(&Caller::default());
    assert!(
        String::from_utf8_lossy(&served.stderr).contains("Interrupted"),
        "{served:?}"
    );
    let output = invoke(dir.path(), &["run", "--", "/bin/true"], &filtered());
    assert!(output.status.success(), "not served after: {output:?}");
    assert!(runner.stop().success());
    let ordinary = interrupted(&Caller::default());
    assert_eq!(seen(&served), seen(&ordinary));
}

/// The runner carries out nothing for a peer that is not root, and the
/// front talks to no listener that is not root.
#[test]
fn the_runner_and_the_front_trust_only_root() {
    skip_unless_privileged!();
    let mut runner = Runner::start(&[]);
    let dir = scratch();
    let written = dir.path().join("written.txt");
    let message = common::forwarded_message(
        &[
            "isobox",
            "run",
            "--stdout",
            "written.txt",
            "--",
            "/bin/echo",
            "for nobody",
        ],
        &[],
    );
    let directory = fs::File::open(dir.path()).unwrap();
    // `/run/isobox` may be root's only too (made 0700 by whichever part
    // of isobox came first on this boot): opened for the test as well.
    let run_dir = Path::new(RUNNER_DIR).parent().unwrap();
    let run_dir_mode = fs::metadata(run_dir).unwrap().permissions().mode() & 0o7777;
    fs::set_permissions(run_dir, fs::Permissions::from_mode(run_dir_mode | 0o011)).unwrap();
    fs::set_permissions(RUNNER_DIR, fs::Permissions::from_mode(0o711)).unwrap();
    fs::set_permissions(SOCKET, fs::Permissions::from_mode(0o777)).unwrap();
    let status = common::forward_as_nobody(Path::new(SOCKET), message, &directory);
    fs::set_permissions(RUNNER_DIR, fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(run_dir, fs::Permissions::from_mode(run_dir_mode)).unwrap();
    assert!(
        matches!(status.code(), Some(0 | 5)),
        "the runner answered nobody, or the test could not ask: {status:?}"
    );
    assert!(!written.exists(), "the runner ran a program for nobody");
    assert!(runner.stop().success());

    // An impostor listening at the runner's place.
    let mut impostor = common::impostor_listener(Path::new(SOCKET));
    let started = Instant::now();
    let output = invoke(dir.path(), &["run", "--", "/bin/true"], &filtered());
    let _ = impostor.kill();
    let _ = impostor.wait();
    let _ = fs::remove_file(SOCKET);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the front waited"
    );
    assert!(died_at_glibc_start(&output), "{output:?}");
}

/// One runner at a time, root only; stopped (by a signal, or idle), it
/// leaves no socket, box directory, cgroup or process behind.
#[test]
fn one_runner_at_a_time_and_it_leaves_clean() {
    skip_unless_privileged!();
    let mut runner = Runner::start(&["--boxes", "2"]);
    let dir = scratch();
    let output = invoke(dir.path(), &["run", "--", "/bin/true"], &filtered());
    assert!(output.status.success(), "{output:?}");
    let workers = runner.workers();
    assert_eq!(workers.len(), 2, "{workers:?}");
    let box_dirs: Vec<PathBuf> = workers
        .iter()
        .flat_map(|pid| runner_box_dirs(*pid))
        .collect();
    assert_eq!(
        box_dirs.len(),
        1,
        "one box made, by the worker that served: {box_dirs:?}"
    );
    let cgroups: Vec<PathBuf> = workers
        .iter()
        .flat_map(|pid| runner_cgroups(*pid))
        .collect();
    if common::has_cgroup() {
        assert!(!cgroups.is_empty(), "the runner's box has no cgroup");
    }

    let second = Command::new(isobox()).arg("runner").output().unwrap();
    assert_eq!(second.status.code(), Some(2), "{second:?}");
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("already running"),
        "{second:?}"
    );
    let as_nobody = Command::new(isobox())
        .arg("runner")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(as_nobody.status.code(), Some(2), "{as_nobody:?}");

    assert!(runner.stop().success());
    assert!(!Path::new(SOCKET).exists());
    assert_paths_gone(&box_dirs);
    common::assert_paths_gone(&cgroups);
    for worker in &workers {
        assert!(!alive(*worker), "worker {worker} is left");
    }
    drop(runner);

    // Killed: its workers leave with their boxes all the same.
    let mut runner = Runner::start(&[]);
    let output = invoke(dir.path(), &["run", "--", "/bin/true"], &filtered());
    assert!(output.status.success(), "{output:?}");
    let workers = runner.workers();
    let box_dirs: Vec<PathBuf> = workers
        .iter()
        .flat_map(|pid| runner_box_dirs(*pid))
        .collect();
    assert_eq!(box_dirs.len(), 1, "{box_dirs:?}");
    let mut child = runner.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    eventually("the workers leave", || {
        workers.iter().all(|pid| !alive(*pid))
    });
    assert_paths_gone(&box_dirs);
    drop(runner);

    let mut idle = Runner::start(&["--idle", "1"]);
    let started = Instant::now();
    let status = idle.child.as_mut().unwrap().wait().unwrap();
    idle.child = None;
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!Path::new(SOCKET).exists());
}

/// Each box serves one run at a time: with two, two runs at once are both
/// served, and a third that comes meanwhile runs the ordinary way.
#[test]
fn two_boxes_serve_two_runs_at_once() {
    skip_unless_privileged!();
    let _runner = Runner::start(&["--boxes", "2"]);
    let dir = scratch();
    let sleep: &[&str] = &["run", "--", "/bin/sleep", "1"];
    let first = spawn(dir.path(), sleep, &filtered());
    let second = spawn(dir.path(), sleep, &filtered());
    eventually("both runs are under way", || {
        common::processes_with_command_line("/bin/sleep\x001\x00")
            .iter()
            .filter(|(_, uid)| *uid != 0)
            .count()
            == 2
    });
    let third = invoke(dir.path(), &["run", "--", "/bin/true"], &filtered());
    assert!(
        died_at_glibc_start(&third),
        "served while both boxes were busy: {third:?}"
    );
    for run in [first, second] {
        let output = run.wait_with_output().unwrap();
        assert!(output.status.success(), "not served: {output:?}");
    }
}

/// A worker killed with `SIGKILL` leaves its box directory and cgroups
/// (the runner starts another worker); the next runner removes them, and
/// nothing else: not what a user of the shared temporary directory put
/// there under the same name, nor what a link there points to.
#[test]
fn a_killed_workers_remains_go_with_the_next_runner() {
    skip_unless_privileged!();
    let mut runner = Runner::start(&["--boxes", "1"]);
    let dir = scratch();
    let output = invoke(dir.path(), &["run", "--", "/bin/true"], &filtered());
    assert!(output.status.success(), "{output:?}");
    let [pid] = runner.workers()[..] else {
        panic!("not one worker: {:?}", runner.workers());
    };
    // SAFETY: kills the runner's worker this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    eventually("another worker", || {
        runner
            .workers()
            .first()
            .is_some_and(|worker| *worker != pid)
    });
    let output = invoke(dir.path(), &["run", "--", "/bin/true"], &filtered());
    assert!(output.status.success(), "not served after: {output:?}");
    assert!(runner.stop().success());
    let box_dirs = runner_box_dirs(pid);
    assert_eq!(box_dirs.len(), 1, "{box_dirs:?}");
    let cgroups = runner_cgroups(pid);
    if common::has_cgroup() {
        assert!(!cgroups.is_empty());
    }
    // Planted under the dead worker's name: a user's directory, and a
    // link to a directory of root's.
    let tmp = std::env::temp_dir();
    let planted = tmp.join(format!("isobox-runner-{pid}-planted"));
    fs::create_dir(&planted).unwrap();
    fs::write(planted.join("keep"), "mine").unwrap();
    std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
    let target = common::temp_dir("isobox-runner-target-", 0o700);
    fs::write(target.path().join("keep"), "root's").unwrap();
    let link = tmp.join(format!("isobox-runner-{pid}-link"));
    std::os::unix::fs::symlink(target.path(), &link).unwrap();
    drop(runner);

    let _next = Runner::start(&[]);
    let left = runner_box_dirs(pid);
    let _ = fs::remove_file(&link);
    let _ = fs::remove_dir_all(&planted);
    assert_eq!(
        left,
        {
            let mut expected = vec![link.clone(), planted.clone()];
            expected.sort();
            expected
        },
        "removed something else than the dead worker's box, or not that"
    );
    assert!(target.path().join("keep").exists());
    common::assert_paths_gone(&cgroups);
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn assert_paths_gone(paths: &[PathBuf]) {
    let left: Vec<_> = paths.iter().filter(|path| path.exists()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Runner `pid`'s box directories.
fn runner_box_dirs(pid: i32) -> Vec<PathBuf> {
    let prefix = format!("isobox-runner-{pid}-");
    fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(&prefix))
        .map(|entry| entry.path())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The cgroup directories of runner `pid`'s boxes, in every hierarchy.
fn runner_cgroups(pid: i32) -> Vec<PathBuf> {
    let prefix = format!("{pid}-");
    let Ok(hierarchies) = fs::read_dir("/sys/fs/cgroup") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut parents: Vec<PathBuf> = hierarchies
        .filter_map(|entry| Some(entry.ok()?.path().join("isobox")))
        .collect();
    parents.push(PathBuf::from("/sys/fs/cgroup/isobox"));
    for parent in parents {
        let Ok(entries) = fs::read_dir(&parent) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                found.push(entry.path());
            }
        }
    }
    found
}
