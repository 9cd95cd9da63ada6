//! Box lifecycle through isobox as `isolate`: many runs in one box with
//! nothing carried between them, boxes used concurrently, two runs racing
//! for one box, a keeper killed in the middle of a run, resets, cleanup
//! that never follows the program's symlinks, quotas, and isolate's limits
//! and options in isolate's units.
//!
//! Run as root with cgroups (privileged tests).

mod common;
mod isolate_support;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::skip_unless_privileged;
use isolate_support::{assert_box_gone, box_cgroups, slot_id, CmsLog, Isolate};

#[test]
fn twenty_runs_with_alternating_limits_carry_nothing_over() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(20, 0), true);
    let alloc = sandbox.install(&common::program("alloc_touch"), "alloc");
    let spin = sandbox.install(&common::program("spin_cpu"), "spin");
    for run in 0..20 {
        let (outcome, meta) = match run % 4 {
            // 64 MiB against a 32 MiB limit: the OOM killer.
            0 => sandbox.run(&["-w", "30", "--cg-mem=32768"], &[&alloc, "64"]),
            // Nothing: no limit, peak or OOM flag of the last run shows.
            1 => sandbox.run(&["-w", "30"], &["/bin/true"]),
            // A CPU time-out.
            2 => sandbox.run(&["-t", "0.3", "-w", "30", "-p4"], &[&spin, "100"]),
            // 48 MiB without a memory limit: the 32 MiB one is gone.
            _ => sandbox.run(&["-w", "30", "-p"], &[&alloc, "48"]),
        };
        let log = CmsLog::parse(&meta);
        let cg_mem_kib: u64 = log.get("cg-mem").unwrap().parse().unwrap();
        let context = format!("run {run}: {outcome:?}\n{meta}");
        match run % 4 {
            0 => {
                assert_eq!(log.exit_status(), "memory limit", "{context}");
                assert_eq!(outcome.code, 1, "{context}");
            }
            1 => {
                assert_eq!(log.exit_status(), "ok", "{context}");
                assert_eq!(log.get("cg-oom-killed"), None, "{context}");
                assert!(cg_mem_kib < 16 * 1024, "{context}");
            }
            2 => {
                assert_eq!(log.exit_status(), "timeout", "{context}");
                assert_eq!(log.get("cg-oom-killed"), None, "{context}");
                assert!(log.time() >= 0.3, "{context}");
                assert!(cg_mem_kib < 16 * 1024, "{context}");
            }
            _ => {
                assert_eq!(log.exit_status(), "ok", "{context}");
                assert_eq!(log.get("cg-oom-killed"), None, "{context}");
                assert!(cg_mem_kib >= 48 * 1024, "{context}");
            }
        }
        let wall: f64 = log.get("time-wall").unwrap().parse().unwrap();
        assert!(wall >= 0.0, "{context}");
    }
    let id = sandbox.id;
    drop(sandbox);
    assert_box_gone(&isolate, id);
}

#[test]
fn eight_boxes_init_run_and_clean_up_concurrently() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|index| {
                let isolate = &isolate;
                scope.spawn(move || {
                    let id = slot_id(21, index);
                    let sandbox = isolate.open_box(id, true);
                    for run in 0..5 {
                        let text = format!("box {id} run {run}");
                        let (outcome, meta) = sandbox.run(
                            &["-t", "5", "-w", "60", "-o", "out.txt"],
                            &["/bin/echo", &text],
                        );
                        assert_eq!(outcome.code, 0, "{outcome:?}\n{meta}");
                        assert_eq!(CmsLog::parse(&meta).exit_status(), "ok");
                        assert_eq!(sandbox.read("out.txt"), format!("{text}\n"));
                        // Files go back to the box's owner after the run.
                        let owner = fs::metadata(sandbox.box_dir().join("out.txt")).unwrap();
                        assert_eq!(owner.uid(), 0);
                    }
                    let cleanup = sandbox.isolate(&["--cleanup"]);
                    assert_eq!(cleanup.code, 0, "{cleanup:?}");
                    assert_box_gone(isolate, id);
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("a box worker failed");
        }
    });
}

#[test]
fn two_runs_racing_for_one_box_never_share_it() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(22, 0), true);
    let mut first = sandbox.start_script(
        &["-p", "-w", "60"],
        "touch /box/started; sleep 2; echo first > /box/order",
    );

    // Without --wait: refused, with isolate's exit status and a clear line.
    let refused = sandbox.isolate(&["--run", "--", "/bin/true"]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("in use"), "{refused:?}");
    assert!(refused.stderr.contains("--wait"), "{refused:?}");
    assert_eq!(refused.stderr.lines().count(), 1, "{refused:?}");
    // --cleanup and --init are refused as well while the box runs.
    assert_eq!(sandbox.isolate(&["--cleanup"]).code, 2);
    assert_eq!(sandbox.isolate(&["--init"]).code, 2);

    // With --wait: runs only after the first run is over.
    let waiting = isolate
        .command()
        .args(sandbox.with_box(&[
            "--wait",
            "-p",
            "--run",
            "--",
            "/bin/sh",
            "-c",
            "echo second >> /box/order",
        ]))
        .output()
        .unwrap();
    assert_eq!(waiting.status.code(), Some(0), "{waiting:?}");
    assert_eq!(first.wait().unwrap().code(), Some(0));
    assert_eq!(sandbox.read("order"), "first\nsecond\n");
}

#[test]
fn keeper_killed_mid_run_leaves_nothing_running_and_the_box_usable() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(23, 0), true);
    let mut keeper = sandbox.start_script(
        &["-p", "-t", "60", "-w", "120"],
        "sleep 300 & sleep 300 & touch /box/started; while :; do :; done",
    );
    assert!(!common::processes_of_uid(sandbox.uid()).is_empty());
    keeper.kill().unwrap();
    keeper.wait().unwrap();
    // Every process of the box dies with its keeper.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !common::processes_of_uid(sandbox.uid()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "processes of the box survived its keeper: {:?}",
            common::processes_of_uid(sandbox.uid())
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The lock died with the keeper: the box runs again at once.
    let (outcome, meta) = sandbox.run(&["-w", "30"], &["/bin/true"]);
    assert_eq!(outcome.code, 0, "{outcome:?}\n{meta}");
    // And cleanup, then init, work.
    let cleanup = sandbox.isolate(&["--cleanup"]);
    assert_eq!(cleanup.code, 0, "{cleanup:?}");
    assert_box_gone(&isolate, sandbox.id);
    let init = sandbox.isolate(&["--init"]);
    assert_eq!(init.code, 0, "{init:?}");
    let (outcome, _) = sandbox.run(&["-w", "30"], &["/bin/true"]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
}

/// A cold run is held by the box's cgroup itself, made for it and removed
/// after it. A run whose keeper is killed leaves that cgroup behind, with
/// its limits and its counters: the next run counts neither its CPU time
/// nor its memory, and is not bound by its memory limit.
#[test]
fn a_cold_runs_cgroup_goes_with_it_and_a_killed_run_never_counts_in_the_next() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(33, 0), true);
    let cgroups = box_cgroups(&isolate, sandbox.id);
    let (outcome, meta) = sandbox.run(&["-w", "30"], &["/bin/true"]);
    assert_eq!(outcome.code, 0, "{outcome:?}\n{meta}");
    let kept: Vec<_> = cgroups.iter().filter(|dir| dir.exists()).collect();
    assert!(kept.is_empty(), "the cold run left its cgroup: {kept:?}");

    // A run that burns CPU and holds memory, whose keeper is killed.
    let mut keeper = sandbox.start_script(
        &["-p", "-t", "60", "-w", "120", "--cg-mem", "200000"],
        "head -c 50000000 /dev/zero >/box/held; touch /box/started; while :; do :; done",
    );
    std::thread::sleep(Duration::from_millis(300));
    keeper.kill().unwrap();
    keeper.wait().unwrap();
    // At once, without waiting for the box to die: the next run is
    // measured alone, neither the spinner's CPU time nor its memory.
    let (outcome, meta) = sandbox.run(&["-w", "30"], &["/bin/true"]);
    assert_eq!(outcome.code, 0, "{outcome:?}\n{meta}");
    let log = CmsLog::parse(&meta);
    assert!(
        log.time() < 0.1,
        "the killed run's CPU time counted:\n{meta}"
    );
    let memory: u64 = log.get("cg-mem").unwrap().parse().unwrap();
    assert!(memory < 20_000, "the killed run's memory counted:\n{meta}");
    assert!(
        common::processes_of_uid(sandbox.uid()).is_empty(),
        "processes of the killed run survived the next run"
    );

    let cleanup = sandbox.isolate(&["--cleanup"]);
    assert_eq!(cleanup.code, 0, "{cleanup:?}");
    assert_box_gone(&isolate, sandbox.id);

    // The same with the box's first run, which is cold (the later ones
    // go to the box's agent): killed with a small memory limit, and a
    // next run that needs more than that.
    let init = sandbox.isolate(&["--init"]);
    assert_eq!(init.code, 0, "{init:?}");
    let mut keeper = sandbox.start_script(
        &["-p", "-t", "60", "-w", "120", "--cg-mem", "30000"],
        "touch /box/started; while :; do :; done",
    );
    std::thread::sleep(Duration::from_millis(300));
    keeper.kill().unwrap();
    keeper.wait().unwrap();
    let (outcome, meta) = sandbox.run(
        &["-p", "-w", "30", "--cg-mem", "200000"],
        &[
            "/bin/sh",
            "-c",
            "head -c 80000000 /dev/zero >/box/big; rm /box/big",
        ],
    );
    assert_eq!(
        outcome.code, 0,
        "the killed run's limit held:\n{outcome:?}\n{meta}"
    );
    let memory: u64 = CmsLog::parse(&meta).get("cg-mem").unwrap().parse().unwrap();
    assert!(memory >= 78_000, "the run did not hold its file:\n{meta}");
    let cleanup = sandbox.isolate(&["--cleanup"]);
    assert_eq!(cleanup.code, 0, "{cleanup:?}");
    assert_box_gone(&isolate, sandbox.id);
}

/// The box's network namespace, as the program sees it.
fn network_namespace_of_run(sandbox: &isolate_support::BoxGuard<'_>) -> String {
    let (outcome, meta) = sandbox.run(&["-w", "30"], &["/bin/readlink", "/proc/self/ns/net"]);
    assert_eq!(outcome.code, 0, "{outcome:?}\n{meta}");
    outcome.stdout.trim().to_string()
}

/// `--init` makes no network namespace (an init and cleanup without a run
/// never pays for one); the box's first run makes one, pinned in the box's
/// directory, which its later runs join and `--cleanup` releases. One
/// left unpinned by a command killed halfway is made again.
#[test]
fn the_first_run_makes_the_boxs_network_namespace_and_later_runs_join_it() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let host = fs::read_link("/proc/self/ns/net").unwrap();
    let host = host.to_string_lossy();
    // Without --cg every run is cold: each makes its own keeper.
    let sandbox = isolate.open_box(slot_id(34, 0), false);
    let pinned = sandbox.dir.join(".isobox-netns");
    assert!(
        fs::symlink_metadata(&pinned).is_err(),
        "--init made a network namespace"
    );
    let first = network_namespace_of_run(&sandbox);
    assert!(first.starts_with("net:["), "{first}");
    assert_ne!(first, host, "the box runs in the host's network namespace");
    assert!(pinned.is_file(), "the first run did not pin its namespace");
    assert_eq!(network_namespace_of_run(&sandbox), first);
    assert_eq!(network_namespace_of_run(&sandbox), first);
    let other = isolate.open_box(slot_id(34, 1), false);
    let others = network_namespace_of_run(&other);
    assert_ne!(others, first, "two boxes share a network namespace");
    assert_ne!(others, host);

    // A plain file where the namespace should be pinned.
    let cleanup = sandbox.isolate(&["--cleanup"]);
    assert_eq!(cleanup.code, 0, "{cleanup:?}");
    assert_box_gone(&isolate, sandbox.id);
    let init = sandbox.isolate(&["--init"]);
    assert_eq!(init.code, 0, "{init:?}");
    fs::write(&pinned, "").unwrap();
    let renewed = network_namespace_of_run(&sandbox);
    assert!(renewed.starts_with("net:["), "{renewed}");
    assert_ne!(renewed, host);
    assert_ne!(renewed, others);
    assert_eq!(network_namespace_of_run(&sandbox), renewed);
    for guard in [&sandbox, &other] {
        let cleanup = guard.isolate(&["--cleanup"]);
        assert_eq!(cleanup.code, 0, "{cleanup:?}");
        assert_box_gone(&isolate, guard.id);
    }
}

/// A box whose later runs go to its agent (`--cg`): its first run gets a
/// network namespace of its own and pins none (a box used once never
/// pays for one); the second run pins the box's, which the agent's runs
/// join. None of them is the host's.
#[test]
fn with_an_agent_the_first_run_pins_no_network_namespace() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let host = fs::read_link("/proc/self/ns/net").unwrap();
    let host = host.to_string_lossy();
    let sandbox = isolate.open_box(slot_id(34, 2), true);
    let pinned = sandbox.dir.join(".isobox-netns");
    let first = network_namespace_of_run(&sandbox);
    assert!(first.starts_with("net:["), "{first}");
    assert_ne!(first, host, "the box runs in the host's network namespace");
    assert!(
        fs::symlink_metadata(&pinned).is_err(),
        "the box's first run pinned a network namespace"
    );
    let second = network_namespace_of_run(&sandbox);
    assert!(second.starts_with("net:["), "{second}");
    assert_ne!(second, host);
    assert!(pinned.is_file(), "the second run did not pin the namespace");
    assert_eq!(network_namespace_of_run(&sandbox), second);
    assert_eq!(network_namespace_of_run(&sandbox), second);
    let cleanup = sandbox.isolate(&["--cleanup"]);
    assert_eq!(cleanup.code, 0, "{cleanup:?}");
    assert_box_gone(&isolate, sandbox.id);
}

#[test]
fn warnings_are_one_line_each_with_level_and_target() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(33, 1), true);
    sandbox.write("a", "x");
    fs::hard_link(sandbox.box_dir().join("a"), sandbox.box_dir().join("b")).unwrap();
    let (outcome, meta) = sandbox.run(&["-w", "30"], &["/bin/true"]);
    assert_eq!(outcome.code, 0, "{outcome:?}\n{meta}");
    let id = sandbox.id;
    // (An ISOBOX_LOG in the environment may add lines of other levels.)
    let warnings: Vec<&str> = outcome
        .stderr
        .lines()
        .filter(|line| line.contains("WARN"))
        .collect();
    assert_eq!(
        warnings,
        [
            format!(" WARN isobox::boxes::lifecycle: box {id}: 2 file(s) with more than one link left untouched"),
            format!(" WARN isobox::boxes::lifecycle: box {id}: 1 file(s) with more than one link unlinked from the box"),
        ],
        "{outcome:?}"
    );
    assert!(outcome.stderr.ends_with(" sec wall)\n"), "{outcome:?}");
}

#[test]
fn init_resets_and_cleanup_is_fine_with_missing_or_half_boxes() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(24, 0), false);
    sandbox.write("leftover.txt", "x");
    let again = sandbox.isolate(&["--init"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(!sandbox.box_dir().join("leftover.txt").exists());
    assert_eq!(sandbox.isolate(&["--cleanup"]).code, 0);
    assert_eq!(sandbox.isolate(&["--cleanup"]).code, 0);
    assert_box_gone(&isolate, sandbox.id);

    // A box never initialized: cleanup is fine, run is refused.
    let never = slot_id(24, 1);
    let id = never.to_string();
    assert_eq!(isolate.isolate(&["-b", &id, "--cleanup"]).code, 0);
    let run = isolate.isolate(&["-b", &id, "--run", "--", "/bin/true"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("not initialized"), "{run:?}");
    assert!(run.stderr.contains("--init"), "{run:?}");

    // Half-initialized (an init that died half-way): refused, and removed.
    let half = slot_id(24, 2);
    fs::create_dir_all(isolate.box_root.join(half.to_string()).join("box")).unwrap();
    let id = half.to_string();
    let run = isolate.isolate(&["-b", &id, "--run", "--", "/bin/true"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("not initialized completely"), "{run:?}");
    assert_eq!(isolate.isolate(&["-b", &id, "--cleanup"]).code, 0);
    assert_box_gone(&isolate, half);

    // A box initialized without --cg is not run with it.
    let plain = isolate.open_box(slot_id(24, 3), false);
    let run = isolate.isolate(&[
        "--cg",
        "-b",
        &plain.id.to_string(),
        "--run",
        "--",
        "/bin/true",
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("without control groups"), "{run:?}");
}

#[test]
fn cleanup_never_follows_the_programs_symlinks() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let victim = isolate.root().join("victim");
    fs::create_dir(&victim).unwrap();
    fs::write(victim.join("precious"), "keep me").unwrap();
    let sandbox = isolate.open_box(slot_id(25, 0), true);
    let plant = format!(
        "ln -s {victim} /box/dir-link && ln -s {victim}/precious /box/file-link && \
         mkdir /box/sub && ln -s {victim} /box/sub/deep && mkfifo /box/fifo",
        victim = victim.display()
    );
    // With --special-files the links stay in the box...
    let (outcome, meta) = sandbox.run(&["-p", "--special-files"], &["/bin/sh", "-c", &plant]);
    assert_eq!(outcome.code, 0, "{outcome:?}\n{meta}");
    for name in ["dir-link", "file-link", "sub/deep", "fifo"] {
        let meta = fs::symlink_metadata(sandbox.box_dir().join(name)).unwrap();
        assert!(!meta.is_file() && !meta.is_dir(), "{name}");
        // ...and handing the files back changed the links, not their targets.
        assert_eq!(meta.uid(), 0, "{name}");
    }
    let target = fs::metadata(victim.join("precious")).unwrap();
    assert_eq!((target.uid(), target.gid()), (0, 0));
    // ...and cleanup removes them, not what they point to.
    assert_eq!(sandbox.isolate(&["--cleanup"]).code, 0);
    assert_box_gone(&isolate, sandbox.id);
    assert_eq!(
        fs::read_to_string(victim.join("precious")).unwrap(),
        "keep me"
    );

    // Without --special-files, isolate removes them after the run.
    let init = sandbox.isolate(&["--init"]);
    assert_eq!(init.code, 0, "{init:?}");
    let (outcome, _) = sandbox.run(&["-p"], &["/bin/sh", "-c", &plant]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    for name in ["dir-link", "file-link", "sub/deep", "fifo"] {
        assert!(
            fs::symlink_metadata(sandbox.box_dir().join(name)).is_err(),
            "{name} survived"
        );
    }
    assert!(sandbox.box_dir().join("sub").is_dir());
    assert!(victim.join("precious").is_file());
}

#[test]
fn quota_limits_the_box_in_blocks_and_inodes() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let id = slot_id(26, 0);
    let init = isolate.isolate(&["-b", &id.to_string(), "-q", "1024,20", "--init"]);
    assert_eq!(init.code, 0, "{init:?}");
    let sandbox = isolate.adopt_box(id, false);
    let (outcome, meta) = sandbox.run(
        &["-p"],
        &[
            "/bin/sh",
            "-c",
            "head -c 2000000 /dev/zero > big; echo size=$(wc -c < big); rm big; \
             n=0; while touch f$n 2>/dev/null; do n=$((n+1)); done; echo files=$n",
        ],
    );
    assert_eq!(outcome.code, 0, "{outcome:?}\n{meta}");
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    let size: u64 = lines[0].trim_start_matches("size=").parse().unwrap();
    assert!(size <= 1024 * 1024, "{outcome:?}");
    let files: u64 = lines[1].trim_start_matches("files=").parse().unwrap();
    assert!((10..20).contains(&files), "{outcome:?}");
    assert_eq!(sandbox.isolate(&["--cleanup"]).code, 0);
    assert_box_gone(&isolate, id);
}

#[test]
fn limits_and_stdio_in_isolates_units_and_places() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(27, 0), true);
    let ulimit = |options: &[&str], what: &str| {
        let script = format!("ulimit {what}");
        let (outcome, meta) = sandbox.run(options, &["/bin/bash", "-c", &script]);
        assert_eq!(outcome.code, 0, "{outcome:?}\n{meta}");
        outcome.stdout.trim().to_string()
    };
    // isolate 2.6's default.
    assert_eq!(ulimit(&[], "-n"), "1024");
    assert_eq!(ulimit(&["-n", "5"], "-n"), "5");
    assert_eq!(ulimit(&[], "-Hn"), "1024");
    // 0 is no limit: more than the default (how much exactly is
    // isolate_parity::open_files_zero_is_no_limit's part).
    let unlimited: u64 = ulimit(&["-n", "0"], "-Hn").parse().unwrap();
    assert!(unlimited > 1024, "-n 0 gave {unlimited}");
    assert_eq!(ulimit(&["-m", "1000000"], "-v"), "1000000");
    assert_eq!(ulimit(&["-k", "8192"], "-s"), "8192");
    assert_eq!(ulimit(&[], "-s"), "unlimited");
    assert_eq!(ulimit(&["-f", "100"], "-f"), "100");
    assert_eq!(ulimit(&[], "-c"), "0");
    assert_eq!(ulimit(&["--core=64"], "-c"), "64");

    // -i/-o/-r are opened relative to /box, before --chdir applies.
    fs::create_dir(sandbox.box_dir().join("sub")).unwrap();
    sandbox.write("in.txt", "from the box\n");
    let (outcome, meta) = sandbox.run(
        &[
            "-p", "-c", "sub", "-i", "in.txt", "-o", "out.txt", "-r", "err.txt",
        ],
        &["/bin/sh", "-c", "cat; pwd; echo oops >&2"],
    );
    assert_eq!(outcome.code, 0, "{outcome:?}\n{meta}");
    assert_eq!(sandbox.read("out.txt"), "from the box\n/box/sub\n");
    assert_eq!(sandbox.read("err.txt"), "oops\n");
    assert!(!sandbox.box_dir().join("sub/out.txt").exists());

    // -M - puts the meta file on stdout, after the program's own output.
    let outcome = sandbox.isolate(&["-s", "-M", "-", "--run", "--", "/bin/echo", "hi"]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    let (program, meta) = outcome.stdout.split_once('\n').unwrap();
    assert_eq!(program, "hi");
    let log = CmsLog::parse(meta);
    assert_eq!(log.exit_status(), "ok");
    assert_eq!(outcome.stderr, "");
    // Without -s the status line is isolate's.
    let outcome = sandbox.isolate(&["--run", "--", "/bin/true"]);
    assert!(outcome.stderr.starts_with("OK ("), "{outcome:?}");
    assert!(outcome.stderr.contains(" sec real, "), "{outcome:?}");

    // --inherit-fds: the program writes to a descriptor of the caller's.
    let fd_file = isolate.root().join("fd5.txt");
    let isolate_cmd = format!(
        "exec 5>{file}; exec \"$0\" --cg -b {id} -p --inherit-fds --run -- /bin/sh -c 'echo via-fd >&5'",
        file = fd_file.display(),
        id = sandbox.id
    );
    let status = std::process::Command::new("/bin/bash")
        .arg("-c")
        .arg(&isolate_cmd)
        .arg(&isolate.link)
        .env("ISOBOX_CONFIG", &isolate.config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(0), "{status:?}");
    assert_eq!(fs::read_to_string(&fd_file).unwrap(), "via-fd\n");
    let closed = isolate_cmd.replace(" --inherit-fds", "");
    let status = std::process::Command::new("/bin/bash")
        .arg("-c")
        .arg(&closed)
        .arg(&isolate.link)
        .env("ISOBOX_CONFIG", &isolate.config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(1), "{status:?}");
}

#[test]
fn without_cg_isolation_holds_and_rusage_measures() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(28, 0), false);
    let spin = sandbox.install(&common::program("spin_cpu"), "spin");
    let (outcome, meta) = sandbox.run(&["-t", "0.5", "-w", "30"], &[&spin, "100"]);
    assert_eq!(outcome.code, 1, "{outcome:?}\n{meta}");
    let log = CmsLog::parse(&meta);
    assert_eq!(log.exit_status(), "timeout", "{meta}");
    // isolate 1.x reported time:0.000 here.
    assert!(log.time() >= 0.5, "{meta}");
    assert_eq!(log.get("cg-mem"), None, "{meta}");

    // -p without cgroups is RLIMIT_NPROC of the box user: -p1 cannot fork.
    let script = ["/bin/sh", "-c", "/bin/true && echo forked"];
    let (outcome, meta) = sandbox.run(&["-p1"], &script);
    assert_eq!(
        CmsLog::parse(&meta).exit_status(),
        "nonzero return",
        "{outcome:?}"
    );
    let (outcome, meta) = sandbox.run(&["-p2"], &script);
    assert_eq!(outcome.code, 0, "{outcome:?}\n{meta}");
    assert_eq!(outcome.stdout, "forked\n");

    // Still a jail: a private network and no view of the host's files.
    let (outcome, _) = sandbox.run(
        &["-p"],
        &[
            "/bin/sh",
            "-c",
            "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; ls /etc 2>&1 | head -1",
        ],
    );
    assert_eq!(outcome.code, 0, "{outcome:?}");
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    assert_eq!(lines[0], "lo", "{outcome:?}");
    assert!(lines[1].contains("No such file"), "{outcome:?}");
}

#[test]
fn as_uid_owns_the_box_and_gets_the_files_back() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let id = slot_id(29, 0).to_string();
    let owner = ["--as-uid=4242", "--as-gid=4343"];
    let init = isolate.isolate(&[owner[0], owner[1], "-b", &id, "--init"]);
    assert_eq!(init.code, 0, "{init:?}");
    let sandbox = isolate.adopt_box(id.parse().unwrap(), false);
    let meta = fs::metadata(sandbox.box_dir()).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (4242, 4343));
    let (outcome, _) = sandbox.run(&[], &["/bin/sh", "-c", "echo x > /box/made"]);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    let made = fs::metadata(sandbox.box_dir().join("made")).unwrap();
    assert_eq!((made.uid(), made.gid()), (4242, 4343));
}

#[test]
fn a_meta_file_inside_the_box_is_refused() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(30, 0), true);
    // The program owns the box during the run: a meta file there could be
    // forged or swapped, so isobox refuses it (tests/hostile_box_walk.rs
    // attacks the other places a meta file can be).
    let meta = sandbox.box_dir().join("metadata.txt");
    let meta_arg = format!("-M{}", meta.display());
    let outcome = sandbox.isolate(&[&meta_arg, "--run", "--", "/bin/true"]);
    assert_eq!(outcome.code, 2, "{outcome:?}");
    assert!(outcome.stderr.contains("inside the box"), "{outcome:?}");
    assert!(fs::symlink_metadata(&meta).is_err());
}

#[test]
fn directories_nested_past_path_max_neither_break_the_box_nor_its_cleanup() {
    skip_unless_privileged!();
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(31, 0), true);
    let nest = sandbox.install(&common::hostile("inodes"), "nest");
    // 10,000 levels of d/: a path of 20,000 bytes, five times PATH_MAX.
    let (outcome, meta) = sandbox.run(
        &["-t", "20", "-w", "120"],
        &[&nest, "deep", "/box", "10000"],
    );
    assert_eq!(outcome.code, 0, "{outcome:?}\n{meta}");
    assert!(outcome.stdout.contains("reached 10000"), "{outcome:?}");
    // The files went back to their owner, and the next run has its box.
    let (outcome, meta) = sandbox.run(&["-w", "30"], &["/bin/true"]);
    assert_eq!(outcome.code, 0, "{outcome:?}\n{meta}");
    let cleanup = sandbox.isolate(&["--cleanup"]);
    assert_eq!(cleanup.code, 0, "{cleanup:?}");
    assert_box_gone(&isolate, sandbox.id);
}

#[test]
fn share_net_keeps_the_hosts_network() {
    skip_unless_privileged!();
    let interfaces = |text: &str| -> Vec<String> {
        text.lines()
            .skip(2)
            .filter_map(|line| line.split(':').next())
            .map(|name| name.trim().to_string())
            .collect()
    };
    let host = interfaces(&fs::read_to_string("/proc/net/dev").unwrap());
    let isolate = Isolate::new();
    let sandbox = isolate.open_box(slot_id(32, 0), true);
    let (outcome, meta) = sandbox.run(&[], &["/bin/cat", "/proc/net/dev"]);
    assert_eq!(outcome.code, 0, "{outcome:?}\n{meta}");
    assert_eq!(interfaces(&outcome.stdout), ["lo"]);
    let (outcome, meta) = sandbox.run(&["--share-net"], &["/bin/cat", "/proc/net/dev"]);
    assert_eq!(outcome.code, 0, "{outcome:?}\n{meta}");
    let mut shared = interfaces(&outcome.stdout);
    let mut expected = host;
    shared.sort();
    expected.sort();
    assert_eq!(shared, expected);
}
