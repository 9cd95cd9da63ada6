//! The library's warm pool (`isobox::pool`) with real boxes: reuse, reset,
//! replacement after a failed reset, the bounded queue, shutdown.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::skip_unless_privileged;
use isobox::cpus::CpuList;
use isobox::pool::{Lease, Pool, PoolConfig, PoolError};
use isobox::{ExecutionStatus, IsolateConfig};

fn pool(name: &str, size: usize, queue: usize) -> (Pool, PathBuf) {
    pool_on(name, size, queue, None, false)
}

/// A pool whose boxes are spread over `box_cpus`; `cpu_controls` has them
/// join the cpu and cpuset controllers (a run may then get a cpuset).
fn pool_on(
    name: &str,
    size: usize,
    queue: usize,
    box_cpus: Option<CpuList>,
    cpu_controls: bool,
) -> (Pool, PathBuf) {
    let base_dir = PathBuf::from(format!(
        "/run/isobox/test-pool-{}-{name}",
        std::process::id()
    ));
    let pool = Pool::new(PoolConfig {
        template: IsolateConfig {
            strict_mode: true,
            time_limit: Some(Duration::from_secs(2)),
            wall_time_limit: Some(Duration::from_secs(5)),
            memory_limit: Some(128 << 20),
            process_limit: Some(16),
            cpu_controllers: cpu_controls,
            ..IsolateConfig::default()
        },
        base_dir: base_dir.clone(),
        size,
        warm: size,
        queue,
        box_size: Some(16 << 20),
        box_cpus,
    })
    .unwrap();
    (pool, base_dir)
}

fn sh(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

#[test]
fn a_box_comes_back_empty_with_its_own_limits() {
    skip_unless_privileged!();
    let (pool, base_dir) = pool("reuse", 1, 4);
    let mut lease = pool.acquire().unwrap();
    let workdir = lease.workdir().to_path_buf();
    lease.executor().config_mut().memory_limit = Some(8 << 20);
    let result = lease
        .executor()
        .execute(&sh("echo x > left; mkdir -p d/e; chmod 000 d"), None)
        .unwrap();
    assert_eq!(result.status, ExecutionStatus::Success, "{result:?}");
    assert!(workdir.join("left").exists());
    drop(lease);

    let mut lease = pool.acquire().unwrap();
    assert_eq!(lease.workdir(), workdir, "one box, reused");
    assert_eq!(std::fs::read_dir(&workdir).unwrap().count(), 0);
    assert_eq!(lease.executor().config().memory_limit, Some(128 << 20));
    drop(lease);
    assert_eq!(pool.stats().replaced, 0);
    pool.shutdown();
    assert!(!base_dir.exists());
}

#[test]
fn a_box_whose_reset_fails_is_replaced() {
    skip_unless_privileged!();
    let (pool, base_dir) = pool("replace", 1, 4);
    let lease = pool.acquire().unwrap();
    let workdir = lease.workdir().to_path_buf();
    // A mount point inside the box cannot be removed: the wipe fails.
    let inner = workdir.join("busy");
    std::fs::create_dir(&inner).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "none"])
        .arg(&inner)
        .status()
        .unwrap();
    assert!(status.success());
    drop(lease);
    let stats = pool.stats();
    assert_eq!(stats.replaced, 1, "{stats:?}");
    assert_eq!(stats.alive, 0, "{stats:?}");
    assert!(!workdir.exists(), "the failed box is gone");

    let mut lease = pool.acquire().unwrap();
    assert_ne!(lease.workdir(), workdir, "a new box");
    let result = lease.executor().execute(&sh("ls -A"), None).unwrap();
    assert_eq!(result.status, ExecutionStatus::Success, "{result:?}");
    assert_eq!(result.stdout, "");
    drop(lease);
    pool.shutdown();
    assert!(!base_dir.exists());
}

#[test]
fn the_wait_queue_is_bounded() {
    skip_unless_privileged!();
    let (pool, _) = pool("queue", 1, 1);
    let held = pool.acquire().unwrap();
    assert!(matches!(
        pool.acquire_timeout(Duration::from_millis(100)),
        Err(PoolError::Timeout(_))
    ));
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| pool.acquire_timeout(Duration::from_secs(5)).map(drop));
        while pool.stats().waiting == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        // One waiting already: the queue of one is full.
        assert!(matches!(pool.acquire(), Err(PoolError::QueueFull { .. })));
        drop(held);
        waiting.join().unwrap().unwrap();
    });
    assert!(matches!(pool.acquire_many(2), Err(PoolError::Isolate(_))));
    pool.shutdown();
    assert!(matches!(pool.acquire(), Err(PoolError::Closed)));
}

#[test]
fn several_boxes_at_once() {
    skip_unless_privileged!();
    let (pool, base_dir) = pool("many", 2, 2);
    let mut leases = pool.acquire_many(2).unwrap();
    assert_ne!(leases[0].workdir(), leases[1].workdir());
    std::thread::scope(|scope| {
        for lease in &mut leases {
            scope.spawn(move || {
                let result = lease.executor().execute(&sh("echo hi"), None).unwrap();
                assert_eq!(result.stdout, "hi\n");
            });
        }
    });
    let cgroups: Vec<PathBuf> = leases
        .iter()
        .flat_map(|lease| lease.cgroup_paths())
        .collect();
    assert!(!cgroups.is_empty());
    drop(leases);
    assert_eq!(pool.stats().idle, 2);
    pool.shutdown();
    assert!(!base_dir.exists());
    assert!(cgroups.iter().all(|path| !path.exists()), "{cgroups:?}");
}

#[test]
fn a_pool_that_cannot_make_its_boxes_fails_cleanly() {
    skip_unless_privileged!();
    let base_dir = PathBuf::from(format!("/run/isobox/test-pool-{}-bad", std::process::id()));
    let made = Pool::new(PoolConfig {
        // tmp_size 0 is refused by every executor.
        template: IsolateConfig {
            strict_mode: true,
            tmp_size: 0,
            ..IsolateConfig::default()
        },
        base_dir: base_dir.clone(),
        size: 2,
        warm: 2,
        queue: 1,
        box_size: Some(1 << 20),
        box_cpus: None,
    });
    assert!(matches!(made, Err(PoolError::Isolate(_))), "{made:?}");
    assert!(!base_dir.exists());
}

/// Pids in the box's holder cgroup (`warm-<n>`) below each of `dirs`.
fn holder_pids(dirs: &[PathBuf]) -> Vec<String> {
    let mut pids = Vec::new();
    for dir in dirs {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            if entry.file_name().to_string_lossy().starts_with("warm-") {
                let procs = std::fs::read_to_string(entry.path().join("cgroup.procs")).unwrap();
                pids.extend(procs.lines().map(str::to_owned));
            }
        }
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// A box made ahead of time is built ahead of time too: its holder is alive
/// before anything ran, and the first run is born in it (pid 2 of the
/// holder's namespace, the holder staying the same).
#[test]
fn a_box_made_ahead_is_warm_before_its_first_run() {
    skip_unless_privileged!();
    let (pool, base_dir) = pool("ahead", 1, 4);
    let mut lease = pool.acquire().unwrap();
    let holders = holder_pids(&lease.cgroup_paths());
    assert_eq!(holders.len(), 1, "one holder before any run: {holders:?}");
    let result = lease.executor().execute(&sh("echo $$"), None).unwrap();
    assert_eq!(result.status, ExecutionStatus::Success, "{result:?}");
    assert_eq!(result.stdout, "2\n", "the first process of the held box");
    assert_eq!(
        holder_pids(&lease.cgroup_paths()),
        holders,
        "the same holder"
    );
    let result = lease.executor().execute(&sh("echo $$"), None).unwrap();
    assert_ne!(result.stdout, "2\n", "the second run is in the same box");
    drop(lease);
    pool.shutdown();
    assert!(!base_dir.exists());
}

/// The CPUs the program of a run in `lease` may run on, as it sees them.
fn cpus_seen(lease: &mut Lease) -> String {
    let command = ["/bin/grep", "Cpus_allowed_list", "/proc/self/status"].map(String::from);
    let result = lease.executor().execute(&command, None).unwrap();
    assert_eq!(result.status, ExecutionStatus::Success, "{result:?}");
    result
        .stdout
        .trim()
        .strip_prefix("Cpus_allowed_list:")
        .unwrap_or_else(|| panic!("{result:?}"))
        .trim()
        .to_string()
}

#[test]
fn boxes_are_spread_over_the_pools_cpus_and_their_runs_stay_there() {
    skip_unless_privileged!();
    let mine = CpuList::of_this_thread().unwrap();
    let cpus: CpuList = mine.iter().take(2).collect();
    if cpus.count() < 2 {
        eprintln!("NOTE: one CPU here ({mine}): both boxes share it, no spread to see");
    }
    let (pool, base_dir) = pool_on("cpus", 2, 4, Some(cpus.clone()), true);
    let mut leases = [pool.acquire().unwrap(), pool.acquire().unwrap()];
    let mut placed = Vec::new();
    for lease in &mut leases {
        let cpu = lease.cpu().expect("a box of a pool with CPUs has one");
        // Run after run of a warm box, on its CPU alone.
        for _ in 0..3 {
            assert_eq!(cpus_seen(lease), cpu.to_string());
        }
        placed.push(cpu);
    }
    let placed: CpuList = placed.into_iter().collect();
    assert_eq!(placed, cpus, "one box on each CPU");

    if let Some(other) = mine.iter().find(|cpu| Some(*cpu) != leases[0].cpu()) {
        // A run's cpuset is a limit and decides; the next run is back on
        // the box's CPU.
        let lease = &mut leases[0];
        lease.executor().config_mut().cpuset_cpus = Some(other.to_string());
        assert_eq!(cpus_seen(lease), other.to_string());
        lease.executor().config_mut().cpuset_cpus = None;
        assert_eq!(cpus_seen(lease), lease.cpu().unwrap().to_string());
    }
    drop(leases);
    pool.shutdown();
    assert!(!base_dir.exists());
}

#[test]
fn a_pool_without_cpus_leaves_its_boxes_where_the_caller_runs() {
    skip_unless_privileged!();
    let (pool, base_dir) = pool("floating", 1, 4);
    let mut lease = pool.acquire().unwrap();
    assert_eq!(lease.cpu(), None);
    let seen = CpuList::parse(&cpus_seen(&mut lease)).unwrap();
    assert_eq!(seen, CpuList::of_this_thread().unwrap());
    drop(lease);
    pool.shutdown();
    assert!(!base_dir.exists());
}

/// `Lease::run_killer` stops the box's run from another thread, and the
/// box serves the next run.
#[test]
fn a_run_killed_from_another_thread_ends_and_the_box_serves_on() {
    skip_unless_privileged!();
    let (pool, base_dir) = pool("killer", 1, 4);
    let mut lease = pool.acquire().unwrap();
    let killer = lease.run_killer();
    let started = std::time::Instant::now();
    let killed = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            killer.kill();
        });
        lease.executor().execute(&sh("sleep 4"), None).unwrap()
    });
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}: {killed:?}",
        started.elapsed()
    );
    assert_ne!(killed.status, ExecutionStatus::Success, "{killed:?}");
    assert_eq!(killed.signal, Some(libc::SIGKILL), "{killed:?}");
    let next = lease.executor().execute(&sh("echo on"), None).unwrap();
    assert_eq!(next.stdout, "on\n", "{next:?}");
    drop(lease);
    pool.shutdown();
    assert!(!base_dir.exists());
}

/// Mount points at or below `dir`.
fn mounts_below(dir: &std::path::Path) -> usize {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| std::path::Path::new(point).starts_with(dir))
        .count()
}

/// A pool dropped without `shutdown` (a caller that returned early or
/// panicked) leaves nothing behind: its idle box goes at once, holder,
/// mount and cgroups, while a leased box serves on until it comes back,
/// and the last box back takes the base directory along.
#[test]
fn a_pool_dropped_without_shutdown_leaves_nothing_behind() {
    skip_unless_privileged!();
    let (pool, base_dir) = pool("dropped", 2, 4);
    let mut leased = pool.acquire().unwrap();
    let idle = pool.acquire().unwrap();
    let idle_cgroups = idle.cgroup_paths();
    let idle_holders = holder_pids(&idle_cgroups);
    assert_eq!(
        idle_holders.len(),
        1,
        "the idle box is warm: {idle_holders:?}"
    );
    drop(idle);
    assert_eq!(mounts_below(&base_dir), 2, "each box has its tmpfs");
    let leased_cgroups = leased.cgroup_paths();

    drop(pool);
    assert_eq!(mounts_below(&base_dir), 1, "the idle box's tmpfs is gone");
    for dir in &idle_cgroups {
        assert!(!dir.exists(), "{} survived", dir.display());
    }
    for pid in idle_holders {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "the idle box's holder {pid} survived"
        );
    }
    let result = leased.executor().execute(&sh("echo on"), None).unwrap();
    assert_eq!(result.status, ExecutionStatus::Success, "{result:?}");
    assert_eq!(result.stdout, "on\n");

    drop(leased);
    assert_eq!(mounts_below(&base_dir), 0);
    for dir in &leased_cgroups {
        assert!(!dir.exists(), "{} survived", dir.display());
    }
    assert!(!base_dir.exists(), "{} survived", base_dir.display());
}
