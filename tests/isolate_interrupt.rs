//! An interrupted keeper: `SIGTERM` or `SIGINT` (and isolate's other
//! interruption signals) to `isolate --run` stops the program, writes what
//! isolate writes (`exitsig`, `status:SG`, `message:Interrupted`,
//! `killed:1` and the figures) and leaves nothing of the run behind: no
//! process, no run cgroup; the box itself stays for its next run until
//! `--cleanup`, as every run leaves it.
//!
//! Run as root with cgroups (privileged tests).

mod common;
mod isolate_support;

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::skip_unless_privileged;
use isolate_support::{box_cgroups, slot_id, CmsLog, Isolate, Outcome, FIRST_UID};

/// Sends `signal` to the isolate process `child` and waits for it.
fn interrupt(child: Child, signal: i32) -> Outcome {
    // SAFETY: signals the isolate process this test started.
    unsafe { libc::kill(child.id() as i32, signal) };
    child
        .wait_with_output()
        .expect("waiting for isolate")
        .into()
}

/// The subdirectories (run cgroups) left below the cgroups of box `id`.
fn run_cgroups_left(isolate: &Isolate, id: u32) -> Vec<PathBuf> {
    box_cgroups(isolate, id)
        .iter()
        .filter_map(|dir| fs::read_dir(dir).ok())
        .flatten()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .map(|entry| entry.path())
        .collect()
}

#[test]
fn sigterm_and_sigint_stop_the_run_and_report_it_as_isolate_does() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    for (index, cg, signal) in [
        (0, true, libc::SIGTERM),
        (1, true, libc::SIGINT),
        (2, false, libc::SIGTERM),
        (3, false, libc::SIGHUP),
    ] {
        let id = slot_id(71, index);
        let sandbox = isolate.open_box(id, cg);
        let meta = isolate.root().join(format!("meta-{id}"));
        let meta_arg = format!("--meta={}", meta.display());
        // No time limit at all: only the signal can end this run.
        let child = sandbox.start_script(
            &[&meta_arg, "-p"],
            "touch /box/started; sleep 1000 & sleep 1000; wait",
        );
        let started = Instant::now();
        let outcome = interrupt(child, signal);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the run outlived the signal"
        );
        let text = fs::read_to_string(&meta).unwrap_or_default();
        assert_eq!(outcome.code, 1, "{outcome:?}\n{text}");
        assert_eq!(outcome.stderr, "Interrupted\n", "{outcome:?}");
        let log = CmsLog::parse(&text);
        assert_eq!(
            log.get("exitsig"),
            Some(signal.to_string().as_str()),
            "{text}"
        );
        assert_eq!(log.get("status"), Some("SG"), "{text}");
        assert_eq!(log.get("message"), Some("Interrupted"), "{text}");
        assert_eq!(log.get("killed"), Some("1"), "{text}");
        assert!(log.get("time-wall").is_some(), "{text}");
        assert_eq!(log.get("cg-mem").is_some(), cg, "{text}");
        assert!(log.get("exitcode").is_none(), "{text}");
        common::assert_no_process_of_uid(FIRST_UID + id);
        let left = run_cgroups_left(&isolate, id);
        assert!(left.is_empty(), "run cgroups survived: {left:?}");

        // The box runs again as after any run, then goes entirely.
        let (again, again_meta) = sandbox.run(&[], &["/bin/true"]);
        assert_eq!(again.code, 0, "{again:?}\n{again_meta}");
        drop(sandbox);
        isolate_support::assert_box_gone(&isolate, id);
    }
}

#[test]
fn an_interruption_before_the_program_starts_still_stops_it() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let id = slot_id(71, 4);
    let sandbox = isolate.open_box(id, true);
    // A burst of signals, the first while the keeper may still be setting
    // up: the first counts, the run ends as interrupted, not as killed by
    // the default action of a later one.
    let meta = isolate.root().join(format!("meta-{id}"));
    let child = isolate
        .command()
        .args(sandbox.with_box(&[
            &format!("--meta={}", meta.display()),
            "-s",
            "--run",
            "--",
            "/bin/sleep",
            "1000",
        ]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting isolate --run");
    // The meta file is made once the keeper has the box and catches the
    // signals; the program has not necessarily started yet.
    common::wait_for(&meta);
    let pid = child.id() as i32;
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGQUIT] {
        // SAFETY: signals the isolate process this test started.
        unsafe { libc::kill(pid, signal) };
    }
    let outcome: Outcome = child.wait_with_output().unwrap().into();
    let text = fs::read_to_string(&meta).unwrap_or_default();
    assert_eq!(outcome.code, 1, "{outcome:?}\n{text}");
    // -s: isolate's err() prints nothing then.
    assert_eq!(outcome.stderr, "", "{outcome:?}");
    let log = CmsLog::parse(&text);
    assert_eq!(log.get("status"), Some("SG"), "{text}");
    assert_eq!(log.get("exitsig"), Some("2"), "{text}");
    common::assert_no_process_of_uid(FIRST_UID + id);
    assert!(run_cgroups_left(&isolate, id).is_empty());
}

/// `isobox run` interrupted: the program stops and its throwaway box
/// directory and cgroups go; so do the compile box's, when `--lang`'s
/// compile step is what the interruption stops (no run follows it).
#[test]
fn isobox_run_interrupted_leaves_nothing_behind() {
    skip_unless_privileged!();
    let presets = common::temp_dir("isobox-interrupt-presets-", 0o755);
    let source = presets.path().join("a.txt");
    fs::write(&source, "never run\n").unwrap();
    let preset_file = presets.path().join("slow.toml");
    fs::write(
        &preset_file,
        "[slow]\nname = \"Slow\"\nrequires = []\nsource = \"a.txt\"\n\
         compile.command = [\"/bin/sleep\", \"1000\"]\ncompile.output = [\"a.txt\"]\n\
         run.command = [\"/bin/cat\", \"a.txt\"]\n",
    )
    .unwrap();
    let compile: Vec<&str> = vec![
        "run",
        "--presets",
        preset_file.to_str().unwrap(),
        "--lang",
        "slow",
        source.to_str().unwrap(),
    ];
    for args in [vec!["run", "--", "/bin/sleep", "1000"], compile] {
        interrupted_run_leaves_nothing_behind(&args);
    }
}

fn interrupted_run_leaves_nothing_behind(args: &[&str]) {
    let before = throwaway_boxes();
    let child = Command::new(env!("CARGO_BIN_EXE_isobox"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting isobox run");
    let pid = child.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !has_a_child_named(pid, "sleep") {
        assert!(Instant::now() < deadline, "the program never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let outcome = interrupt(child, libc::SIGTERM);
    assert_ne!(outcome.code, 0, "{args:?}: {outcome:?}");
    assert!(
        outcome.stderr.contains("Interrupted"),
        "{args:?}: {outcome:?}"
    );
    assert!(!outcome.stdout.contains("never run"), "{outcome:?}");
    let left: Vec<_> = throwaway_boxes().difference(&before).cloned().collect();
    assert!(left.is_empty(), "throwaway boxes survived: {left:?}");
    let cgroups: Vec<_> = ["/sys/fs/cgroup/isobox".to_string()]
        .into_iter()
        .chain(
            fs::read_dir("/sys/fs/cgroup")
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .map(|entry| format!("{}/isobox", entry.path().display())),
        )
        .filter_map(|dir| fs::read_dir(dir).ok())
        .flatten()
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with(&format!("{pid}-"))
        })
        .map(|entry| entry.path())
        .collect();
    assert!(
        cgroups.is_empty(),
        "cgroups of the run survived: {cgroups:?}"
    );
    assert!(!has_a_child_named(pid, "sleep"));
}

/// The `isobox run` box directories in the temporary directory.
fn throwaway_boxes() -> std::collections::BTreeSet<PathBuf> {
    fs::read_dir(std::env::temp_dir())
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| {
                    entry
                        .file_name()
                        .to_string_lossy()
                        .starts_with("isobox-run-")
                })
                .map(|entry| entry.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a descendant of `pid` runs a program named `name`.
fn has_a_child_named(pid: i32, name: &str) -> bool {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .any(|other| {
            let status = fs::read_to_string(format!("/proc/{other}/status")).unwrap_or_default();
            status.lines().any(|line| line == format!("Name:\t{name}")) && descends_from(other, pid)
        })
}

fn descends_from(mut pid: i32, ancestor: i32) -> bool {
    for _ in 0..64 {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let Some(parent) = status
            .lines()
            .find_map(|line| line.strip_prefix("PPid:\t"))
            .and_then(|value| value.trim().parse::<i32>().ok())
        else {
            return false;
        };
        if parent == ancestor {
            return true;
        }
        if parent <= 1 {
            return false;
        }
        pid = parent;
    }
    false
}
