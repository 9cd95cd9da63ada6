//! Warm boxes (`IsolateConfig::warm`, on by default) under attack: each
//! test runs something through a box that is meant to survive into the next
//! run, then checks from the next run (and from the host) that it did not.
//! A box stays warm when its holder (pid 1 of the box) lives on: the shell's
//! pid grows from run to run instead of being 2 every time. Boxes are held
//! on cgroup v1 and v2 alike (on v2 each run in a cgroup of its own).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{copy_executable, hostile, program, skip_unless_privileged};
use isobox::cpus::CpuList;
use isobox::pool::{Lease, Pool, PoolConfig};
use isobox::{ExecutionResult, ExecutionStatus, IsolateConfig, IsolateError, ProcessExecutor};

/// A pool of one warm box made from `template`, and its directory.
fn new_pool(name: &str, template: IsolateConfig) -> (Pool, PathBuf) {
    let base_dir = PathBuf::from(format!(
        "/run/isobox/test-warm-{}-{name}",
        std::process::id()
    ));
    let pool = Pool::new(PoolConfig {
        template,
        base_dir: base_dir.clone(),
        size: 1,
        warm: 1,
        queue: 4,
        box_size: Some(16 << 20),
        box_cpus: None,
    })
    .unwrap();
    (pool, base_dir)
}

fn pool(name: &str) -> (Pool, PathBuf) {
    let (pool, base_dir) = new_pool(name, template());
    // The pool builds the box when it makes it; one run shows it works.
    let first = run(&pool, "true");
    assert_eq!(first.status, ExecutionStatus::Success, "{first:?}");
    (pool, base_dir)
}

fn template() -> IsolateConfig {
    IsolateConfig {
        strict_mode: true,
        time_limit: Some(Duration::from_secs(2)),
        wall_time_limit: Some(Duration::from_secs(5)),
        memory_limit: Some(128 << 20),
        process_limit: Some(16),
        ..IsolateConfig::default()
    }
}

fn sh(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

/// Runs `script` with `/bin/sh` in a box of `pool`, after `prepare` had the
/// lease (to install programs or change limits).
fn run_in(pool: &Pool, prepare: impl FnOnce(&mut Lease), command: Vec<String>) -> ExecutionResult {
    let mut lease = pool.acquire().unwrap();
    prepare(&mut lease);
    lease.executor().execute(&command, None).unwrap()
}

fn run(pool: &Pool, script: &str) -> ExecutionResult {
    run_in(pool, |_| {}, sh(script))
}

/// Installs the host program `host_path` in the lease's box as `name`;
/// its path inside the box.
fn install(lease: &Lease, host_path: &str, name: &str) -> String {
    copy_executable(host_path, &lease.workdir().join(name));
    format!("/box/{name}")
}

/// Whether the executor's cgroups are cgroup v2's: each warm run then has
/// a cgroup of its own (`held-<n>`), a sibling of the holder's.
fn cgroup_v2() -> bool {
    matches!(
        isobox::cgroup::CgroupController::detect(None),
        Ok((isobox::cgroup::CgroupVersion::V2, _))
    )
}

/// The shell's pid inside the box: 2 in a fresh box, more in a warm one.
fn box_pid(pool: &Pool) -> u32 {
    let result = run(pool, "echo $$");
    assert_eq!(result.status, ExecutionStatus::Success, "{result:?}");
    result.stdout.trim().parse().unwrap()
}

/// Host pids of every process in the executor's cgroups whose names start
/// with `prefix`: `warm-` for the box's holder, `held-` for the cgroups of
/// warm runs (v2).
fn pids_in(pool: &Pool, prefix: &str) -> Vec<i32> {
    let lease = pool.acquire().unwrap();
    let mut pids = Vec::new();
    for dir in lease.cgroup_paths() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.file_name().to_string_lossy().starts_with(prefix) {
                let procs = std::fs::read_to_string(entry.path().join("cgroup.procs")).unwrap();
                pids.extend(procs.lines().map(|line| line.parse::<i32>().unwrap()));
            }
        }
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

fn holder_pids(pool: &Pool) -> Vec<i32> {
    pids_in(pool, "warm-")
}

/// Names of the cgroups of warm runs (`held-<n>`) left in the executor's.
fn run_cgroups_left(pool: &Pool) -> Vec<String> {
    let lease = pool.acquire().unwrap();
    let mut left = Vec::new();
    for dir in lease.cgroup_paths() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("held-") {
                left.push(name);
            }
        }
    }
    left
}

fn finish(pool: Pool, base_dir: &Path) {
    assert_eq!(pool.stats().replaced, 0, "{:?}", pool.stats());
    pool.shutdown();
    assert!(!base_dir.exists());
}

#[test]
fn a_pooled_box_stays_warm_and_its_holder_is_alone_between_runs() {
    skip_unless_privileged!();
    let (pool, base_dir) = pool("alive");
    let first = box_pid(&pool);
    let holders = holder_pids(&pool);
    let second = box_pid(&pool);
    assert!(
        second > first,
        "the box was rebuilt: pids {first}, {second}"
    );
    assert_eq!(holders.len(), 1, "only the holder between runs");
    assert_eq!(holder_pids(&pool), holders, "the same holder");
    assert_eq!(run_cgroups_left(&pool), Vec::<String>::new());
    finish(pool, &base_dir);
}

/// Runs `grep -E pattern /proc/self/status` in three runs of one warm box:
/// each finds `lines` fields, every one all zeros.
fn every_warm_run_shows_zeros(name: &str, pattern: &str, lines: usize) {
    let (pool, base_dir) = pool(name);
    let first = box_pid(&pool);
    for _ in 0..3 {
        let command = ["/bin/grep", "-E", pattern, "/proc/self/status"];
        let result = run_in(&pool, |_| {}, command.map(String::from).to_vec());
        assert_eq!(result.status, ExecutionStatus::Success, "{result:?}");
        let found: Vec<&str> = result.stdout.lines().collect();
        assert_eq!(found.len(), lines, "{result:?}");
        for line in found {
            assert!(line.ends_with("\t0000000000000000"), "{line}");
        }
    }
    assert!(box_pid(&pool) > first, "the box was rebuilt between runs");
    finish(pool, &base_dir);
}

/// The holder empties the capability bounding set once for all its runs
/// (the inmate no longer does it per run): every run's program still has
/// no capability of any kind, in the bounding set included.
#[test]
fn every_warm_run_has_no_capability_at_all() {
    skip_unless_privileged!();
    every_warm_run_shows_zeros("caps", "^Cap(Inh|Prm|Eff|Bnd|Amb)", 5);
}

/// The holder sets every signal back to its default once when it starts
/// (its keeper may have been started with some ignored) but for its own
/// two handlers and an ignored SIGPIPE, which an inmate undoes: every
/// run's program still starts with no signal ignored and none blocked.
#[test]
fn every_warm_run_starts_with_no_signal_ignored_or_blocked() {
    skip_unless_privileged!();
    every_warm_run_shows_zeros("signals", "^Sig(Ign|Blk)", 2);
}

#[test]
fn a_background_process_dies_with_its_run_and_costs_the_next_nothing() {
    skip_unless_privileged!();
    let (pool, base_dir) = pool("background");
    // Double fork and a session of its own, spinning on the CPU.
    let result = run(
        &pool,
        "setsid sh -c 'sh -c \"while :; do :; done\" & exit 0' & sleep 0.2; echo left",
    );
    assert_eq!(result.stdout, "left\n", "{result:?}");
    assert_eq!(holder_pids(&pool).len(), 1, "the spinner outlived its run");
    assert_eq!(run_cgroups_left(&pool), Vec::<String>::new());
    let result = run(&pool, "sleep 0.5; ls /proc | grep -c '^[0-9]'");
    assert_eq!(result.status, ExecutionStatus::Success, "{result:?}");
    // The shell, ls and grep (the holder runs as root: hidden by hidepid).
    assert_eq!(result.stdout, "3\n", "{result:?}");
    assert!(result.cpu_time < 0.2, "another run's CPU time: {result:?}");
    finish(pool, &base_dir);
}

#[test]
fn files_of_one_run_are_gone_in_the_next() {
    skip_unless_privileged!();
    let (pool, base_dir) = pool("files");
    let result = run(
        &pool,
        "echo a > /tmp/a; mkdir /tmp/d; echo b > /dev/shm/b; echo c > c; find /tmp /dev/shm . -mindepth 1 | sort | tr '\\n' ' '",
    );
    assert_eq!(result.stdout, "./c /dev/shm/b /tmp/a /tmp/d ", "{result:?}");
    let result = run(&pool, "find /tmp /dev/shm . -mindepth 1");
    assert_eq!(result.stdout, "", "{result:?}");
    // The renewed /tmp is a tmpfs with its size limit, writable as before.
    let result = run(&pool, "df -k /tmp | tail -1; touch /tmp/ok && echo ok");
    assert!(result.stdout.ends_with("ok\n"), "{result:?}");
    finish(pool, &base_dir);
}

#[test]
fn system_v_ipc_of_one_run_is_gone_in_the_next() {
    skip_unless_privileged!();
    let (pool, base_dir) = pool("ipc");
    let result = run(
        &pool,
        "ipcmk -M 4096 -Q -S 1 >/dev/null && ipcs -m -q -s | grep -c '^0x'",
    );
    assert_eq!(result.stdout, "3\n", "{result:?}");
    let result = run(&pool, "ipcs -m -q -s | grep -c '^0x'");
    assert_eq!(result.stdout, "0\n", "{result:?}");
    finish(pool, &base_dir);
}

/// With a memory bound that no memory cgroup enforces (an address-space
/// limit alone), the box's System V pools are sized from it: in the box's
/// first run and in every warm run after it, each in a fresh IPC namespace;
/// and a box whose bound changes is another box (pools and /tmp).
#[test]
fn warm_runs_keep_the_ipc_pools_sized_without_a_memory_cgroup() {
    skip_unless_privileged!();
    let limit: u64 = 256 << 20;
    let (pool, base_dir) = new_pool(
        "ipc-sized",
        IsolateConfig {
            memory_limit: None,
            address_space_limit: Some(limit),
            ..template()
        },
    );
    let mut pids = Vec::new();
    for _ in 0..3 {
        let result = run(
            &pool,
            "ipcmk -M 4096 >/dev/null; echo $$ $(cat /proc/sys/kernel/shmmax) $(ipcs -m | grep -c '^0x')",
        );
        assert_eq!(result.status, ExecutionStatus::Success, "{result:?}");
        let words: Vec<&str> = result.stdout.split_whitespace().collect();
        assert_eq!(words[1..], [limit.to_string().as_str(), "1"], "{result:?}");
        pids.push(words[0].parse::<u32>().unwrap());
    }
    assert!(pids[2] > 2, "the runs were not warm: shell pids {pids:?}");
    // A smaller bound is a box of another size, and its pools follow.
    let smaller: u64 = 128 << 20;
    let result = run_in(
        &pool,
        |lease| lease.executor().config_mut().address_space_limit = Some(smaller),
        sh("cat /proc/sys/kernel/shmmax; df -k /tmp | tail -n 1"),
    );
    assert_eq!(result.status, ExecutionStatus::Success, "{result:?}");
    let lines: Vec<&str> = result.stdout.lines().collect();
    assert_eq!(lines[0], smaller.to_string(), "{result:?}");
    let tmp_kib: u64 = lines[1].split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(tmp_kib <= smaller / 1024, "{result:?}");
    finish(pool, &base_dir);
}

#[test]
fn peak_memory_is_the_runs_own() {
    skip_unless_privileged!();
    let (pool, base_dir) = pool("peak");
    let alloc = program("alloc_touch");
    let before = box_pid(&pool);
    let big = run_in(
        &pool,
        |lease| {
            lease.executor().config_mut().memory_limit = Some(512 << 20);
            install(lease, &alloc, "alloc");
        },
        vec!["/box/alloc".into(), "200".into()],
    );
    assert_eq!(big.status, ExecutionStatus::Success, "{big:?}");
    assert!(big.memory_peak >= 200 << 20, "{big:?}");
    let small = run(&pool, "true");
    assert_eq!(small.status, ExecutionStatus::Success, "{small:?}");
    assert!(small.memory_peak < 32 << 20, "{small:?}");
    assert!(box_pid(&pool) > before, "the box was rebuilt");
    finish(pool, &base_dir);
}

#[test]
fn cpu_time_and_process_peak_are_the_runs_own() {
    skip_unless_privileged!();
    let (pool, base_dir) = pool("counters");
    let before = box_pid(&pool);
    let busy = run(
        &pool,
        "sleep 1 & sleep 1 & sleep 1 & i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; wait",
    );
    assert_eq!(busy.status, ExecutionStatus::Success, "{busy:?}");
    assert!(busy.cpu_time >= 0.01, "{busy:?}");
    let small = run(&pool, "true");
    assert_eq!(small.status, ExecutionStatus::Success, "{small:?}");
    assert!(
        small.cpu_time < busy.cpu_time / 2.0,
        "{busy:?} then {small:?}"
    );
    // A v1 warm box's cgroup outlives its runs: no process peak there.
    // v2 (Linux 6.1 and later) counts each run's own.
    if let Some(peak) = busy.process_peak {
        assert!(peak >= 4, "{busy:?}");
        assert_eq!(small.process_peak, Some(1), "{small:?}");
    }
    if cgroup_v2() {
        let lease = pool.acquire().unwrap();
        let counted = lease.cgroup_paths()[0].join("pids.peak").exists();
        drop(lease);
        assert_eq!(busy.process_peak.is_some(), counted, "{busy:?}");
    }
    assert!(box_pid(&pool) > before, "the box was rebuilt");
    finish(pool, &base_dir);
}

#[test]
fn a_limit_hit_leaves_no_flag_for_the_next_run() {
    skip_unless_privileged!();
    let (pool, base_dir) = pool("flags");
    let alloc = program("alloc_touch");
    let oom = run_in(
        &pool,
        |lease| {
            lease.executor().config_mut().memory_limit = Some(32 << 20);
            install(lease, &alloc, "alloc");
        },
        vec!["/box/alloc".into(), "100".into()],
    );
    assert_eq!(oom.status, ExecutionStatus::MemoryLimit, "{oom:?}");
    // A failing run after it: its own failure, not the earlier OOM.
    let after = run(&pool, "exit 3");
    assert_eq!(after.status, ExecutionStatus::RuntimeError, "{after:?}");
    assert!(!after.oom_killed, "{after:?}");

    let forks = run_in(
        &pool,
        |lease| lease.executor().config_mut().process_limit = Some(4),
        sh("for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait"),
    );
    assert_eq!(forks.status, ExecutionStatus::ProcessLimit, "{forks:?}");
    let after = run(&pool, "exit 3");
    assert_eq!(after.status, ExecutionStatus::RuntimeError, "{after:?}");
    finish(pool, &base_dir);
}

#[test]
fn the_program_can_neither_kill_nor_trace_the_holder() {
    skip_unless_privileged!();
    let (pool, base_dir) = pool("holder");
    let syscalls = hostile("syscalls");
    let killall = hostile("killall");
    let before = box_pid(&pool);
    let result = run_in(
        &pool,
        |lease| {
            install(lease, &syscalls, "syscalls");
        },
        vec!["/box/syscalls".into(), "ptrace_init".into()],
    );
    assert!(
        result.stdout.starts_with("ptrace_init: E"),
        "ptrace of pid 1: {result:?}"
    );
    let result = run_in(
        &pool,
        |lease| {
            install(lease, &killall, "killall");
        },
        vec!["/box/killall".into()],
    );
    assert!(result.stdout.contains("kill 1: EPERM\n"), "{result:?}");
    let result = run(&pool, "kill -USR1 1; kill -KILL 1; kill -STOP 1; echo $?");
    assert!(result.stdout.ends_with("1\n"), "{result:?}");
    assert!(
        box_pid(&pool) > before,
        "the holder was hurt: the box was rebuilt"
    );
    finish(pool, &base_dir);
}

#[test]
fn a_holder_killed_from_outside_is_replaced() {
    skip_unless_privileged!();
    let (pool, base_dir) = pool("killed");
    assert!(box_pid(&pool) >= 2);
    let holders = holder_pids(&pool);
    assert_eq!(holders.len(), 1);
    // SAFETY: kill on the holder's host pid, found in its cgroup.
    assert_eq!(unsafe { libc::kill(holders[0], libc::SIGKILL) }, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while holder_pids(&pool).contains(&holders[0]) {
        assert!(Instant::now() < deadline, "the holder does not die");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(box_pid(&pool), 2, "a new box");
    assert!(box_pid(&pool) > 2, "warm again");
    finish(pool, &base_dir);
}

/// Host pids of the processes in the `warm-*` cgroups of `lease`'s executor.
fn lease_holders(lease: &Lease) -> Vec<i32> {
    let mut pids = Vec::new();
    for dir in lease.cgroup_paths() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.file_name().to_string_lossy().starts_with("warm-") {
                let procs = std::fs::read_to_string(entry.path().join("cgroup.procs")).unwrap();
                pids.extend(procs.lines().map(|line| line.parse::<i32>().unwrap()));
            }
        }
    }
    pids
}

/// A holder killed just before a run, too recently for the keeper to see
/// it dead (its socket may be closed or still open, its GO lost): the run
/// goes cold and is right, stdin included, never an error or a SIGKILL.
#[test]
fn a_holder_killed_just_before_a_run_leaves_the_run_right() {
    skip_unless_privileged!();
    let (pool, base_dir) = pool("killed-before");
    let mut lease = pool.acquire().unwrap();
    for round in 0..30 {
        let warm = lease.executor().execute(&sh("echo $$"), None).unwrap();
        assert_eq!(warm.status, ExecutionStatus::Success, "{warm:?}");
        let holders = lease_holders(&lease);
        if holders.is_empty() {
            // The first run of a new executor, or of a rebuilt box, is cold.
            continue;
        }
        for pid in holders {
            // SAFETY: kill on a holder's host pid, found in its cgroup.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let after = if round % 2 == 0 {
            lease.executor().execute(&sh("echo after"), None).unwrap()
        } else {
            lease
                .executor()
                .execute(&["/bin/cat".to_string()], Some("fed\n"))
                .unwrap()
        };
        assert_eq!(
            after.status,
            ExecutionStatus::Success,
            "round {round}: {after:?}"
        );
        let expected = if round % 2 == 0 { "after\n" } else { "fed\n" };
        assert_eq!(after.stdout, expected, "round {round}: {after:?}");
    }
    drop(lease);
    finish(pool, &base_dir);
}

/// Stops that land at every point of a warm run (before the inmate
/// exists, while it starts, while it runs, while the holder reaps and
/// renews the box): each run gets its own verdict, and the run after it
/// too (the stop's race with the holder's answer is made certain by
/// `a_holder_killed_just_after_it_answered_is_not_used_again`).
#[test]
fn stops_at_every_point_of_warm_runs_leave_every_verdict_right() {
    skip_unless_privileged!();
    let (pool, base_dir) = pool("stops");
    let mut lease = pool.acquire().unwrap();
    for round in 0..120u64 {
        let config = lease.executor().config_mut();
        // Wall limits from 1 to 40 ms: the stop comes anywhere from before
        // the inmate is started to long after; files and sleepers left in
        // the box make the holder's reaping and renewal take a while.
        config.wall_time_limit = Some(Duration::from_millis(1 + round * 7 % 40));
        let killed = lease
            .executor()
            .execute(
                &sh("for i in 1 2 3 4 5 6; do sleep 9 & done; \
                     for i in $(seq 200); do : > /tmp/f$i; done; while :; do :; done"),
                None,
            )
            .unwrap();
        assert_eq!(
            killed.status,
            ExecutionStatus::TimeLimit,
            "round {round}: {killed:?}"
        );
        lease.executor().config_mut().wall_time_limit = template().wall_time_limit;
        let next = lease.executor().execute(&sh("echo next"), None).unwrap();
        assert_eq!(
            (next.status, next.stdout.as_str()),
            (ExecutionStatus::Success, "next\n"),
            "round {round}: {next:?}"
        );
    }
    drop(lease);
    finish(pool, &base_dir);
}

/// A run the keeper must kill (the holder takes longer than the stop's
/// grace to reap it and renew the box: 300 MiB of `/tmp` to free) while
/// the holder finishes just before the kill lands. The keeper's test hook
/// holds the kill back, so that the holder answers in between every time;
/// in real use this needs a holder answering within microseconds of the
/// grace's end (4 runs in 34,000 of the long soak). The killed holder must
/// never serve the next run: it used to, and the next run died of SIGKILL.
#[test]
fn a_holder_killed_just_after_it_answered_is_not_used_again() {
    skip_unless_privileged!();
    let (pool, base_dir) = pool("answered");
    let mut lease = pool.acquire().unwrap();
    let config = lease.executor().config_mut();
    config.memory_limit = Some(1 << 30);
    config.tmp_size = 1 << 30;
    config.time_limit = Some(Duration::from_secs(10));
    isobox::executor::HARD_KILL_DELAY_FOR_TESTS
        .store(1_000_000, std::sync::atomic::Ordering::Relaxed);
    let mut replaced = 0;
    for round in 0..3 {
        lease.executor().config_mut().wall_time_limit = Some(Duration::from_secs(3));
        let killed = lease
            .executor()
            .execute(
                &sh("head -c 300000000 /dev/zero > /tmp/big; : > /tmp/written; sleep 60"),
                None,
            )
            .unwrap();
        assert_eq!(
            killed.status,
            ExecutionStatus::TimeLimit,
            "round {round}: {killed:?}"
        );
        let next = lease.executor().execute(&sh("echo $$"), None).unwrap();
        assert_eq!(
            next.status,
            ExecutionStatus::Success,
            "round {round}: {next:?}"
        );
        if next.stdout == "2\n" {
            replaced += 1;
        }
    }
    isobox::executor::HARD_KILL_DELAY_FOR_TESTS.store(0, std::sync::atomic::Ordering::Relaxed);
    // Where the holder could not free 300 MiB within the grace, its box was
    // killed and replaced, and the next run (asserted above) was right. On
    // a fast, quiet machine the holder may beat the grace every time: then
    // the kill path was not taken, which says nothing against it, so the
    // test says so instead of failing.
    if replaced == 0 {
        eprintln!(
            "a_holder_killed_just_after_it_answered_is_not_used_again: no run outlasted \
             the stop's grace here; the hard-kill path was not exercised"
        );
    }
    drop(lease);
    finish(pool, &base_dir);
}

#[test]
fn a_killed_run_leaves_a_working_box() {
    skip_unless_privileged!();
    let (pool, base_dir) = pool("timeout");
    let before = box_pid(&pool);
    let wall = run_in(
        &pool,
        |lease| lease.executor().config_mut().wall_time_limit = Some(Duration::from_millis(300)),
        sh("sleep 5 & sleep 5"),
    );
    assert_eq!(wall.status, ExecutionStatus::TimeLimit, "{wall:?}");
    let cpu = run_in(
        &pool,
        |lease| lease.executor().config_mut().time_limit = Some(Duration::from_millis(200)),
        sh("while :; do :; done"),
    );
    assert_eq!(cpu.status, ExecutionStatus::TimeLimit, "{cpu:?}");
    assert!(cpu.cpu_time >= 0.2 && cpu.cpu_time < 1.0, "{cpu:?}");
    assert!(box_pid(&pool) > before, "the box survived its killed runs");
    assert_eq!(run_cgroups_left(&pool), Vec::<String>::new());
    finish(pool, &base_dir);
}

/// The verdicts of the pool's programs, warm and cold, side by side.
#[test]
fn warm_and_cold_runs_agree() {
    skip_unless_privileged!();
    let (pool, base_dir) = pool("agree");
    let cases: &[(&str, ExecutionStatus)] = &[
        ("true", ExecutionStatus::Success),
        ("echo hi; echo err >&2", ExecutionStatus::Success),
        ("exit 3", ExecutionStatus::RuntimeError),
        ("kill -SEGV $$", ExecutionStatus::Signaled),
        ("while :; do :; done", ExecutionStatus::TimeLimit),
        ("/nonexistent", ExecutionStatus::RuntimeError),
        ("hostname; id -u | grep -cvx 0", ExecutionStatus::Success),
        ("head -c 100000 /dev/zero | wc -c", ExecutionStatus::Success),
    ];
    let workdir = common::temp_dir("isobox-warm-cold-", 0o755);
    let mut cold = ProcessExecutor::new(IsolateConfig {
        workdir: workdir.path().join("box"),
        ..template()
    })
    .unwrap();
    for (script, expected) in cases {
        let warm = run(&pool, script);
        let cold = cold.execute(&sh(script), None).unwrap();
        assert_eq!(warm.status, *expected, "warm {script}: {warm:?}");
        assert_eq!(cold.status, *expected, "cold {script}: {cold:?}");
        assert_eq!(
            (&warm.stdout, &warm.stderr, warm.exit_code, warm.signal),
            (&cold.stdout, &cold.stderr, cold.exit_code, cold.signal),
            "{script}"
        );
    }
    let stdin = pool
        .acquire()
        .unwrap()
        .executor()
        .execute(&["/bin/cat".to_string()], Some("fed\n"))
        .unwrap();
    assert_eq!(stdin.stdout, "fed\n", "{stdin:?}");
    cold.cleanup().unwrap();
    finish(pool, &base_dir);
}

/// `IsolateConfig::cpu_affinity` places every process of the box, in cold
/// runs (an executor's first run, or every run with `warm` off) and warm
/// ones alike; a CPU no affinity mask holds is refused before anything runs.
#[test]
fn cold_and_warm_runs_are_placed_on_the_configured_cpus() {
    skip_unless_privileged!();
    let last = CpuList::of_this_thread().unwrap().iter().last().unwrap();
    let workdir = common::temp_dir("isobox-warm-cpus-", 0o755);
    for warm in [false, true] {
        let mut executor = ProcessExecutor::new(IsolateConfig {
            workdir: workdir.path().join("box"),
            cpu_affinity: Some(std::iter::once(last).collect()),
            warm,
            ..template()
        })
        .unwrap();
        for run in 0..3 {
            let command = ["/bin/grep", "Cpus_allowed_list", "/proc/self/status"].map(String::from);
            let result = executor.execute(&command, None).unwrap();
            assert_eq!(
                result.stdout,
                format!("Cpus_allowed_list:\t{last}\n"),
                "warm {warm}, run {run}: {result:?}"
            );
        }
        executor.cleanup().unwrap();
    }
    let mut beyond = ProcessExecutor::new(IsolateConfig {
        workdir: workdir.path().join("box"),
        cpu_affinity: Some(CpuList::parse("5000").unwrap()),
        ..template()
    })
    .unwrap();
    let refused = beyond.execute(&sh("true"), None).unwrap_err();
    assert!(
        matches!(&refused, IsolateError::Config(text) if text.contains("5000")),
        "{refused}"
    );
    beyond.cleanup().unwrap();
}

/// `isobox serve --parallelism 1` on a free port: the child and its URL.
fn start_server() -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_isobox"))
        .args(["serve", "--listen", "127.0.0.1:0", "--parallelism", "1"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let address = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            line.strip_prefix("isobox serve: listening on ")
                .map(str::to_string)
        })
        .expect("isobox serve did not start");
    std::thread::spawn(move || lines.for_each(drop));
    (child, format!("http://{address}/run"))
}

fn post(url: &str, script: &str) -> serde_json::Value {
    let body = serde_json::json!({"cmd": [{
        "args": ["/bin/sh", "-c", script],
        "env": ["PATH=/usr/bin:/bin"],
        "files": [{"content": ""}, {"name": "stdout", "max": 10240}, {"name": "stderr", "max": 10240}],
        "cpuLimit": 60_000_000_000u64, "clockLimit": 60_000_000_000u64,
        "memoryLimit": 268_435_456, "procLimit": 50
    }]});
    reqwest::blocking::Client::new()
        .post(url)
        .body(body.to_string())
        .send()
        .and_then(|response| response.json())
        .unwrap_or_default()
}

fn processes_with_argument(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            if cmdline
                .split(|b| *b == 0)
                .any(|arg| arg == needle.as_bytes())
            {
                found.push(pid);
            }
        }
    }
    found
}

/// The keeper dies in the middle of a warm run: the holder hears its
/// socket close, kills the run and goes, taking the box with it.
#[test]
fn a_warm_box_dies_with_its_keeper() {
    skip_unless_privileged!();
    let (mut server, url) = start_server();
    for _ in 0..2 {
        assert_eq!(post(&url, "true")[0]["status"], "Accepted");
    }
    let running = {
        let url = url.clone();
        std::thread::spawn(move || post(&url, "exec sleep 31.25"))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_with_argument("31.25").is_empty() {
        assert!(Instant::now() < deadline, "the run never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_with_argument("31.25").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the run outlived its keeper by 5 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = running.join();
    // A new server sweeps what the killed one left (its cgroups, mounts
    // and directories), then stops cleanly.
    let (mut sweeper, url) = start_server();
    assert_eq!(post(&url, "true")[0]["status"], "Accepted");
    // SAFETY: a signal to the server this test started and has not reaped.
    unsafe { libc::kill(sweeper.id() as i32, libc::SIGTERM) };
    sweeper.wait().unwrap();
}
