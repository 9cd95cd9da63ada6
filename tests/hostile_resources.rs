//! Hostile programs against the limits: bombs of processes, threads,
//! memory, tmpfs, files, inodes and descriptors, CPU burners, sleepers,
//! signal games and output floods. Each run asserts the verdict and then
//! the host: no process of the box uid left, the run's cgroups emptied and
//! removed, nothing left in the host's /tmp or /dev/shm, the box directory
//! given back to the keeper and removable.

mod common;

use std::time::{Duration, Instant};

use common::{
    assert_output, assert_status, each_case, hostile, program, skip_unless_privileged, Brief,
    TestBox, MIB,
};
use isobox::{ExecutionResult, ExecutionStatus};

/// The number after `prefix` in the first line of `text` that starts with it.
fn number_after(text: &str, prefix: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|word| word.trim_end_matches(':').parse().ok())
        .unwrap_or_else(|| panic!("no number after {prefix:?} in {text:?}"))
}

/// The run was killed by the memory limit, or died of SIGSEGV on its way
/// there, and the whole run never held more memory than the limit.
fn assert_memory_contained(result: &ExecutionResult, limit: u64, segv_allowed: bool) {
    if !common::has_cgroup() {
        // Rootless without a delegated cgroup: RLIMIT_AS refuses the
        // allocation, which the program reports by failing (or dies of it),
        // within the limit all the same; no OOM kill to tell of.
        assert!(
            matches!(
                result.status,
                ExecutionStatus::RuntimeError | ExecutionStatus::Signaled
            ),
            "{:?}",
            Brief(result)
        );
        assert!(!result.oom_killed, "{:?}", Brief(result));
        assert!(result.memory_peak <= limit + MIB, "{:?}", Brief(result));
        return;
    }
    let segv = result.status == ExecutionStatus::Signaled && result.signal == Some(libc::SIGSEGV);
    assert!(
        result.status == ExecutionStatus::MemoryLimit || (segv_allowed && segv),
        "{:?}",
        Brief(result)
    );
    if result.status == ExecutionStatus::MemoryLimit {
        assert!(result.oom_killed, "{:?}", Brief(result));
    }
    assert!(
        result.memory_peak <= limit + MIB,
        "peak {} MiB over a {} MiB limit",
        result.memory_peak / MIB,
        limit / MIB
    );
}

/// Attack: a C fork bomb, every process forking forever.
#[test]
fn fork_bomb() {
    skip_unless_privileged!();
    let mut test_box = TestBox::hostile();
    test_box.config.time_limit = Some(Duration::from_secs(1));
    let bomb = test_box.install(&hostile("forkbomb"));
    let result = test_box.run_hostile(&[&bomb]);
    assert_status(&result, ExecutionStatus::TimeLimit);
    assert!(result.killed, "{:?}", Brief(&result));
    // The process limit bit: fork was refused while the bomb ran.
    assert_eq!(
        result.stdout,
        "fork refused: EAGAIN\n",
        "{:?}",
        Brief(&result)
    );
    // The whole bomb's CPU time is bounded where a cgroup counts it. Without
    // one (rootless, no delegated subtree) each process has an RLIMIT_CPU
    // of its own and the wall-time limit ends the whole: the total then
    // depends on how the machine shares its CPUs among the bomb's processes.
    if common::has_cgroup() {
        assert!(result.cpu_time < 2.0, "{:?}", Brief(&result));
    }
    test_box.remove();
}

/// Attack: the shell fork bomb `bomb() { bomb | bomb & }; bomb`.
#[test]
fn shell_fork_bomb() {
    skip_unless_privileged!();
    let mut test_box = TestBox::hostile();
    test_box.config.time_limit = Some(Duration::from_secs(1));
    let bomb = test_box.install(&hostile("bomb.sh"));
    let result = test_box.run_hostile(&[&bomb]);
    // dash forks both halves of the first pipeline from the main shell; when
    // the first half's descendants fill the process limit before the second
    // fork, the main shell itself cannot fork and exits 2 at once: then the
    // verdict is the process limit, otherwise the shell spins into the CPU
    // limit. Either way the bomb is contained and the kernel refused forks.
    // Without a cgroup (rootless, no delegated subtree) the CPU limit is
    // RLIMIT_CPU, the kernel's kill and not the keeper's, and no pids
    // counter makes the main shell's exit a process limit.
    let cgroup = common::has_cgroup();
    match result.status {
        ExecutionStatus::TimeLimit => assert_eq!(result.killed, cgroup, "{:?}", Brief(&result)),
        ExecutionStatus::ProcessLimit if cgroup => {
            assert!(!result.killed, "{:?}", Brief(&result))
        }
        ExecutionStatus::RuntimeError if !cgroup => {
            assert_eq!(result.exit_code, Some(2), "{:?}", Brief(&result))
        }
        _ => panic!("neither time nor process limit: {:?}", Brief(&result)),
    }
    // dash says "Cannot fork" when the process limit refuses it.
    assert!(result.stderr.contains("fork"), "{:?}", Brief(&result));
    test_box.remove();
}

/// Attack: a thread bomb, creating threads until refused.
#[test]
fn thread_bomb() {
    skip_unless_privileged!();
    let test_box = TestBox::hostile();
    let bomb = test_box.install(&hostile("threadbomb"));
    let result = test_box.run_hostile(&[&bomb]);
    // RLIMIT_NPROC refuses the thread just the same without a cgroup, but
    // no pids counter tells the keeper it was the limit.
    let verdict = if common::has_cgroup() {
        ExecutionStatus::ProcessLimit
    } else {
        ExecutionStatus::RuntimeError
    };
    assert_status(&result, verdict);
    assert!(
        result.stdout.ends_with(": EAGAIN\n"),
        "{:?}",
        Brief(&result)
    );
    let threads = number_after(&result.stdout, "threads ");
    let limit = test_box.config.process_limit.unwrap();
    assert!(
        threads < limit,
        "{threads} threads with a limit of {limit} tasks"
    );
    test_box.remove();
}

/// One memory bomb of the table in [`memory_bombs`].
struct MemoryBomb {
    /// The case's name in a failure (the test it was before the table).
    name: &'static str,
    /// The `memory` program's mode, or `python` for `pymemory.py`.
    mode: &'static str,
    /// No stack rlimit: only the memory limit can stop the stack growing,
    /// and the bomb may die of SIGSEGV on its way there.
    unlimited_stack: bool,
}

/// Attack: memory bombs of every kind under a 64 MiB limit: killed by the
/// memory limit (the stack bomb: or SIGSEGV), the peak never above it.
#[test]
fn memory_bombs() {
    skip_unless_privileged!();
    let bombs = [
        // malloc and touch 1 MiB at a time, forever.
        MemoryBomb {
            name: "heap_memory_bomb",
            mode: "heap",
            unlimited_stack: false,
        },
        // 1 MiB frames, forever.
        MemoryBomb {
            name: "stack_memory_bomb",
            mode: "stack",
            unlimited_stack: true,
        },
        // Private anonymous 4 MiB mappings, touched.
        MemoryBomb {
            name: "mmap_memory_bomb",
            mode: "mmap",
            unlimited_stack: false,
        },
        // Shared anonymous mappings, which live in shmem.
        MemoryBomb {
            name: "shared_mmap_memory_bomb",
            mode: "shared",
            unlimited_stack: false,
        },
        // A Python list of 1 MiB bytearrays.
        MemoryBomb {
            name: "python_memory_bomb",
            mode: "python",
            unlimited_stack: false,
        },
    ];
    each_case(
        &bombs,
        |bomb| bomb.name,
        |bomb| {
            let mut test_box = TestBox::hostile();
            test_box.config.memory_limit = Some(64 * MIB);
            if bomb.unlimited_stack {
                test_box.config.stack_limit = None;
            }
            let result = if bomb.mode == "python" {
                test_box.allow_python();
                let script = test_box.install(&hostile("pymemory.py"));
                test_box.run_hostile(&["/usr/bin/python3", &script])
            } else {
                let memory = test_box.install(&hostile("memory"));
                test_box.run_hostile(&[&memory, bomb.mode])
            };
            assert_memory_contained(&result, 64 * MIB, bomb.unlimited_stack);
            test_box.remove();
        },
    );
}

/// The end of a tmpfs bomb: killed by the memory limit (tmpfs pages are
/// charged to the run), or refused with ENOSPC at the tmpfs size.
fn assert_tmpfs_bomb_contained(result: &ExecutionResult, memory: u64, size_mib: u64) {
    match result.status {
        ExecutionStatus::MemoryLimit => assert!(result.oom_killed, "{:?}", Brief(result)),
        ExecutionStatus::RuntimeError => {
            assert_eq!(result.exit_code, Some(4), "{:?}", Brief(result));
            assert!(
                result.stdout.starts_with("files: ENOSPC after "),
                "{:?}",
                Brief(result)
            );
            let written = number_after(&result.stdout, "files: ENOSPC after ");
            assert!(
                written <= size_mib,
                "{written} MiB in a {size_mib} MiB tmpfs"
            );
        }
        _ => panic!("a tmpfs bomb was not stopped: {:?}", Brief(result)),
    }
    assert!(result.memory_peak <= memory + MIB, "{:?}", Brief(result));
}

/// One tmpfs bomb of the table in [`tmpfs_bombs`].
struct TmpfsBomb {
    /// The case's name in a failure (the test it was before the table).
    name: &'static str,
    /// The private tmpfs it fills: `/tmp` or `/dev/shm`.
    dir: &'static str,
    /// That tmpfs's size, in MiB.
    size_mib: u64,
    /// The memory limit, in MiB.
    memory_mib: u64,
}

/// Attack: fill the private /tmp and /dev/shm. A tmpfs smaller than the
/// memory limit stops the bomb with ENOSPC; a larger one is charged to the
/// memory limit.
#[test]
fn tmpfs_bombs() {
    skip_unless_privileged!();
    let bombs = [
        TmpfsBomb {
            name: "tmp_bomb_stops_at_the_tmpfs_size",
            dir: "/tmp",
            size_mib: 24,
            memory_mib: 128,
        },
        TmpfsBomb {
            name: "tmp_bomb_is_charged_to_the_memory_limit",
            dir: "/tmp",
            size_mib: 512,
            memory_mib: 64,
        },
        TmpfsBomb {
            name: "dev_shm_bomb",
            dir: "/dev/shm",
            size_mib: 16,
            memory_mib: 128,
        },
    ];
    each_case(
        &bombs,
        |bomb| bomb.name,
        |bomb| {
            let mut test_box = TestBox::hostile();
            let size = bomb.size_mib * MIB;
            match bomb.dir {
                "/tmp" => test_box.config.tmp_size = size,
                _ => test_box.config.shm_size = size,
            }
            test_box.config.memory_limit = Some(bomb.memory_mib * MIB);
            let memory = test_box.install(&hostile("memory"));
            let result = test_box.run_hostile(&[&memory, "files", bomb.dir, &test_box.marker]);
            if bomb.size_mib < bomb.memory_mib {
                // Smaller than the memory limit: the tmpfs size is what stops it.
                assert_status(&result, ExecutionStatus::RuntimeError);
            }
            assert_tmpfs_bomb_contained(&result, bomb.memory_mib * MIB, bomb.size_mib);
            test_box.remove();
        },
    );
}

/// What ends an endless program of the table in [`endless_programs`].
enum Limit {
    /// The CPU limit, at 1 s.
    Cpu,
    /// The wall clock, at 2 s.
    Wall,
}

/// No bound on a measured time.
const ANY: std::ops::Range<f64> = 0.0..f64::INFINITY;

/// One endless program of the table in [`endless_programs`]: the `cpu`
/// program in one of its modes.
struct Endless {
    /// The case's name in a failure (the test it was before the table).
    name: &'static str,
    /// The `cpu` program's mode.
    mode: &'static str,
    /// The limit that must end it.
    limit: Limit,
    /// What it prints before the limit, where that is checked.
    stdout: Option<&'static str>,
    /// Where the measured CPU time must be.
    cpu_time: std::ops::Range<f64>,
    /// Where the measured wall time must be.
    wall_time: std::ops::Range<f64>,
    /// How long the run, with its checks of the host, may take at most.
    elapsed: Duration,
}

/// Attack: programs that never end on their own (burning CPU, sleeping,
/// catching SIGXCPU, ignoring SIGTERM, stopped): each is killed at its time
/// limit, soon after it.
#[test]
fn endless_programs() {
    skip_unless_privileged!();
    let programs = [
        // Burn CPU forever.
        Endless {
            name: "cpu_spin",
            mode: "spin",
            limit: Limit::Cpu,
            stdout: Some("spin: started\n"),
            cpu_time: 1.0..1.6,
            wall_time: ANY,
            elapsed: Duration::MAX,
        },
        // Catch SIGXCPU (the CPU rlimit's warning) and keep burning.
        Endless {
            name: "catching_sigxcpu",
            mode: "sigxcpu",
            limit: Limit::Cpu,
            stdout: None,
            cpu_time: 0.0..1.6,
            wall_time: ANY,
            elapsed: Duration::MAX,
        },
        // Sleep forever (no CPU used, so only the wall clock can stop it).
        Endless {
            name: "sleep_forever",
            mode: "sleep",
            limit: Limit::Wall,
            stdout: None,
            cpu_time: 0.0..0.5,
            wall_time: ANY,
            elapsed: Duration::from_secs(5),
        },
        // Ignore SIGTERM, SIGINT, SIGHUP and every other catchable signal.
        Endless {
            name: "ignoring_sigterm",
            mode: "sigterm",
            limit: Limit::Wall,
            stdout: Some("sigterm: started\n"),
            cpu_time: ANY,
            wall_time: 0.0..4.0,
            elapsed: Duration::MAX,
        },
        // Stop itself with SIGSTOP (a stopped process uses no CPU).
        Endless {
            name: "sigstop_self",
            mode: "stop",
            limit: Limit::Wall,
            stdout: Some("stop: started\n"),
            cpu_time: ANY,
            wall_time: 0.0..4.0,
            elapsed: Duration::MAX,
        },
    ];
    each_case(
        &programs,
        |program| program.name,
        |program| {
            let mut test_box = TestBox::hostile();
            match program.limit {
                Limit::Cpu => test_box.config.time_limit = Some(Duration::from_secs(1)),
                Limit::Wall => test_box.config.wall_time_limit = Some(Duration::from_secs(2)),
            }
            let cpu = test_box.install(&hostile("cpu"));
            let started = Instant::now();
            let result = test_box.run_hostile(&[&cpu, program.mode]);
            let elapsed = started.elapsed();
            assert_status(&result, ExecutionStatus::TimeLimit);
            assert!(result.killed, "{:?}", Brief(&result));
            if let Limit::Wall = program.limit {
                assert!(result.message.contains("wall"), "{:?}", Brief(&result));
            }
            if let Some(stdout) = program.stdout {
                assert_eq!(result.stdout, stdout, "{:?}", Brief(&result));
            }
            assert!(
                program.cpu_time.contains(&result.cpu_time),
                "{:?}",
                Brief(&result)
            );
            assert!(
                program.wall_time.contains(&result.wall_time),
                "{:?}",
                Brief(&result)
            );
            assert!(elapsed < program.elapsed, "{elapsed:?}");
            test_box.remove();
        },
    );
}

/// Attack: catch SIGXCPU where RLIMIT_CPU is the only CPU limit (no cgroup).
#[test]
fn catching_sigxcpu_without_a_cgroup() {
    skip_unless_privileged!();
    let mut test_box = TestBox::hostile();
    test_box.config.strict_mode = false;
    test_box.config.cgroup_root = Some("/nonexistent".into());
    test_box.config.time_limit = Some(Duration::from_secs(1));
    let cpu = test_box.install(&hostile("cpu"));
    let result = test_box.run_hostile(&[&cpu, "sigxcpu"]);
    assert_status(&result, ExecutionStatus::TimeLimit);
    // Soft and hard limit 2 s: no SIGXCPU ever comes, SIGKILL at 2 s of
    // the kernel's tick clock, which on a busy machine runs a tenth or more
    // ahead of the measured time; so only "past the limit" is asserted.
    assert_eq!(result.signal, Some(libc::SIGKILL), "{:?}", Brief(&result));
    assert!(!result.killed, "{:?}", Brief(&result));
    assert!(
        (1.0..3.0).contains(&result.cpu_time),
        "{:?}",
        Brief(&result)
    );
    test_box.remove();
}

/// Attack: setsid + double fork, leaving a daemon behind after exiting 0.
#[test]
fn setsid_double_fork_daemon() {
    skip_unless_privileged!();
    let test_box = TestBox::hostile();
    let daemon = test_box.install(&hostile("daemon"));
    let result = test_box.run_hostile(&[&daemon, &test_box.marker]);
    assert_output(&result, "daemon: detached\n");
    assert!(result.wall_time < 2.0, "{:?}", Brief(&result));
    // The daemon would write this two seconds after detaching.
    std::thread::sleep(Duration::from_millis(2500));
    let alive = test_box
        .workdir()
        .join(format!("{}-alive", test_box.marker));
    assert!(!alive.exists(), "the daemon outlived the run");
    test_box.remove();
}

/// An endless flood on one stream: cut at the output limit, stopped by the
/// CPU limit (the keeper keeps draining, so the program never blocks).
fn assert_flood_contained(result: &ExecutionResult, kept: &str, dropped: u64, limit: usize) {
    assert!(
        matches!(
            result.status,
            ExecutionStatus::TimeLimit | ExecutionStatus::OutputLimit
        ),
        "{:?}",
        Brief(result)
    );
    assert!(result.killed, "{:?}", Brief(result));
    assert_eq!(kept.len(), limit, "{:?}", Brief(result));
    assert!(dropped > 0, "{:?}", Brief(result));
    // Never past the wall limit (10 s), however busy the machine is.
    assert!(result.wall_time < 11.0, "{:?}", Brief(result));
}

/// Attack: flood stdout, then stderr, forever: the flooded stream is cut
/// at the output limit (64 KiB) and the other stays empty.
#[test]
fn output_floods() {
    skip_unless_privileged!();
    // (case, the flood program's stream, the byte it writes)
    let floods = [("stdout_flood", "out", b'o'), ("stderr_flood", "err", b'e')];
    each_case(
        &floods,
        |(name, _, _)| name,
        |&(_, stream, byte)| {
            let mut test_box = TestBox::hostile();
            test_box.config.time_limit = Some(Duration::from_secs(1));
            let flood = test_box.install(&program("flood"));
            let result = test_box.run_hostile(&[&flood, stream, "1000000000000000"]);
            let (kept, dropped, other) = match stream {
                "out" => (&result.stdout, result.stdout_dropped, &result.stderr),
                _ => (&result.stderr, result.stderr_dropped, &result.stdout),
            };
            assert_flood_contained(&result, kept, dropped, 64 * 1024);
            assert!(kept.bytes().all(|written| written == byte));
            assert_eq!(other, "", "{:?}", Brief(&result));
            test_box.remove();
        },
    );
}

/// Attack: a file-size bomb, one file in /box growing forever.
#[test]
fn file_size_bomb() {
    skip_unless_privileged!();
    let mut test_box = TestBox::hostile();
    test_box.config.file_size_limit = Some(4 * MIB);
    let write_file = test_box.install(&program("write_file"));
    let result = test_box.run_hostile(&[&write_file, "/box/big.bin", "1000000000000000"]);
    assert_status(&result, ExecutionStatus::FileSizeLimit);
    assert_eq!(result.signal, Some(libc::SIGXFSZ), "{:?}", Brief(&result));
    let size = std::fs::metadata(test_box.workdir().join("big.bin"))
        .expect("big.bin on the host")
        .len();
    assert_eq!(size, 4 * MIB);
    test_box.remove();
}

/// Attack: an inode bomb in /box (empty files forever; only the CPU limit ends it).
#[test]
fn inode_bomb_in_the_box() {
    skip_unless_privileged!();
    let mut test_box = TestBox::hostile();
    test_box.config.time_limit = Some(Duration::from_millis(500));
    let inodes = test_box.install(&hostile("inodes"));
    let result = test_box.run_hostile(&[&inodes, "files", "/box"]);
    assert_status(&result, ExecutionStatus::TimeLimit);
    let created = std::fs::read_dir(test_box.workdir()).unwrap().count();
    assert!(
        created > 1,
        "the bomb created nothing: {:?}",
        Brief(&result)
    );
    test_box.remove();
}

/// Attack: an inode bomb in the private /tmp.
#[test]
fn inode_bomb_in_tmp() {
    skip_unless_privileged!();
    let mut test_box = TestBox::hostile();
    test_box.config.time_limit = Some(Duration::from_secs(1));
    test_box.config.memory_limit = Some(64 * MIB);
    let inodes = test_box.install(&hostile("inodes"));
    let result = test_box.run_hostile(&[&inodes, "files", "/tmp"]);
    // Inodes cost kernel memory, charged to the run; or the tmpfs runs out
    // of inodes; or the CPU limit comes first.
    let out_of_inodes = result.status == ExecutionStatus::RuntimeError
        && (result.stdout.starts_with("files: ENOSPC")
            || result.stdout.starts_with("files: ENOMEM"));
    assert!(
        out_of_inodes
            || matches!(
                result.status,
                ExecutionStatus::TimeLimit | ExecutionStatus::MemoryLimit
            ),
        "{:?}",
        Brief(&result)
    );
    assert!(result.memory_peak <= 65 * MIB, "{:?}", Brief(&result));
    test_box.remove();
}

/// Attack: directories nested as deep as the CPU limit allows, to make the box unremovable.
#[test]
fn deep_directory_nesting() {
    skip_unless_privileged!();
    let mut test_box = TestBox::hostile();
    test_box.config.time_limit = Some(Duration::from_millis(500));
    let inodes = test_box.install(&hostile("inodes"));
    let result = test_box.run_hostile(&[&inodes, "deep", "/box"]);
    assert!(
        matches!(
            result.status,
            ExecutionStatus::TimeLimit | ExecutionStatus::RuntimeError
        ),
        "{:?}",
        Brief(&result)
    );
    assert!(
        test_box.workdir().join("d/d/d/d").is_dir(),
        "no nesting: {:?}",
        Brief(&result)
    );
    // remove() asserts that the keeper can remove it all.
    test_box.remove();
}

/// Attack: open descriptors until refused, then try to raise the limit.
#[test]
fn fd_exhaustion() {
    skip_unless_privileged!();
    let mut test_box = TestBox::hostile();
    test_box.config.open_files_limit = Some(64);
    let fds = test_box.install(&hostile("fds"));
    let result = test_box.run_hostile(&[&fds]);
    assert_status(&result, ExecutionStatus::Success);
    // stdin, stdout and stderr are open already.
    assert_eq!(
        result.stdout,
        "open 61: EMFILE\nraise RLIMIT_NOFILE: EPERM\n",
        "{:?}",
        Brief(&result)
    );
    test_box.remove();
}
