//! The cgroup layer against the machine's real cgroups (v1 or v2): limits,
//! membership, measurements, killing and removal. Needs root.

mod common;

use common::skip_unless_privileged;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use isobox::cgroup::{CgroupController, CgroupLimits, CgroupVersion};

/// A cgroup name no other test or process uses.
fn unique_name(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("test-{test}-{}-{nanos}", std::process::id())
}

/// Everything a test creates, cleaned up however the test ends: processes
/// are killed and reaped first, then the run cgroup and the instance are
/// removed by their own `Drop` (fields drop in declaration order).
struct Sandbox {
    children: Vec<Child>,
    run: CgroupController,
    instance: CgroupController,
}

impl Sandbox {
    fn new(test: &str) -> Self {
        let instance = CgroupController::new(None, &unique_name(test), true)
            .expect("create the instance cgroup");
        // Processes go into a child, as the executor does: on v2 the
        // instance hands controllers down and so cannot hold processes.
        let run = instance.create_child("run").expect("create the run cgroup");
        Sandbox {
            children: Vec::new(),
            run,
            instance,
        }
    }

    /// Spawns `command` and moves it into the run cgroup.
    fn spawn(&mut self, command: &mut Command) -> u32 {
        let child = command.spawn().expect("spawn");
        let pid = child.id();
        self.children.push(child);
        self.run
            .add_process(i32::try_from(pid).unwrap())
            .expect("add the process to the cgroup");
        pid
    }

    fn procs(&self) -> Vec<Vec<u32>> {
        self.run
            .paths()
            .iter()
            .map(|dir| {
                std::fs::read_to_string(dir.join("cgroup.procs"))
                    .unwrap()
                    .lines()
                    .map(|line| line.trim().parse().unwrap())
                    .collect()
            })
            .collect()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn read_limit(sandbox: &Sandbox, v1: (&str, &str), v2: &str) -> String {
    let path = match sandbox.run.version() {
        CgroupVersion::V1 => sandbox
            .run
            .paths()
            .into_iter()
            .find(|p| p.components().any(|c| c.as_os_str() == v1.0))
            .unwrap()
            .join(v1.1),
        CgroupVersion::V2 => sandbox.run.paths()[0].join(v2),
    };
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_owned()
}

/// Polls `condition` for up to ten seconds.
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn limits_membership_kill_and_removal() {
    skip_unless_privileged!();
    let mut sandbox = Sandbox::new("lifecycle");
    let limits = CgroupLimits {
        memory: Some(64 << 20),
        pids: Some(16),
        cpu_shares: Some(512),
        ..CgroupLimits::default()
    };
    sandbox.run.apply_limits(&limits).expect("apply limits");
    assert_eq!(
        read_limit(&sandbox, ("memory", "memory.limit_in_bytes"), "memory.max"),
        "67108864"
    );
    assert_eq!(read_limit(&sandbox, ("pids", "pids.max"), "pids.max"), "16");
    if sandbox.run.version() == CgroupVersion::V1 {
        assert_eq!(
            read_limit(&sandbox, ("memory", "memory.memsw.limit_in_bytes"), ""),
            "67108864"
        );
    }

    // Raising needs a different write order than lowering on v1.
    let raised = CgroupLimits {
        memory: Some(256 << 20),
        ..limits.clone()
    };
    sandbox
        .run
        .apply_limits(&raised)
        .expect("raise the memory limit");
    assert_eq!(
        read_limit(&sandbox, ("memory", "memory.limit_in_bytes"), "memory.max"),
        "268435456"
    );
    sandbox.run.apply_limits(&limits).expect("lower it again");
    assert_eq!(
        read_limit(&sandbox, ("memory", "memory.limit_in_bytes"), "memory.max"),
        "67108864"
    );

    let pid = sandbox.spawn(Command::new("/bin/sleep").arg("30"));
    for procs in sandbox.procs() {
        assert_eq!(procs, [pid], "the sleeper is in every hierarchy");
    }

    let usage = sandbox.run.usage().expect("usage");
    assert!(usage.cpu_time < Duration::from_secs(5), "{usage:?}");
    assert!(usage.memory_peak <= 64 << 20, "{usage:?}");
    assert_eq!(
        (usage.oom_kills, usage.pids_limit_hits),
        (0, 0),
        "{usage:?}"
    );
    assert!(sandbox.run.cpu_time().expect("cpu time") <= Duration::from_secs(5));

    sandbox.run.kill_all().expect("kill_all");
    let status = sandbox.children[0].wait().expect("reap the sleeper");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert!(sandbox.procs().iter().all(Vec::is_empty));

    let mut paths: Vec<PathBuf> = sandbox.run.paths();
    paths.extend(sandbox.instance.paths());
    assert!(paths.iter().all(|p| p.is_dir()));
    sandbox.run.remove().expect("remove the run cgroup");
    sandbox
        .instance
        .remove()
        .expect("remove the instance cgroup");
    for path in &paths {
        assert!(!path.exists(), "{} is still there", path.display());
    }
    sandbox.run.remove().expect("a second remove is a no-op");
    sandbox
        .instance
        .remove()
        .expect("a second remove is a no-op");
}

#[test]
fn measures_cpu_and_memory_of_a_busy_tree() {
    skip_unless_privileged!();
    let mut sandbox = Sandbox::new("busy");
    let limits = CgroupLimits {
        memory: Some(128 << 20),
        pids: Some(16),
        ..CgroupLimits::default()
    };
    sandbox.run.apply_limits(&limits).expect("apply limits");
    // The shell waits for "go" so that its memory is charged to the cgroup
    // it has joined, then builds an 8 MB string and spins.
    let script =
        "read go; x=$(head -c 8000000 /dev/zero | tr '\\0' a); echo built; while :; do :; done";
    sandbox.spawn(
        Command::new("/bin/sh")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    let stdin = sandbox.children[0].stdin.as_mut().unwrap();
    stdin.write_all(b"go\n").unwrap();
    // Wait for the work itself, not a CPU-time stand-in: building the
    // string takes 50 ms here and most of a second under emulation.
    let stdout = sandbox.children[0].stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    assert_eq!(line, "built\n");

    let mut last = Duration::ZERO;
    eventually("200 ms of CPU time", || {
        let now = sandbox.run.cpu_time().expect("cpu time");
        assert!(now >= last, "CPU time went back from {last:?} to {now:?}");
        last = now;
        now >= Duration::from_millis(200)
    });
    let usage = sandbox.run.usage().expect("usage");
    assert!(usage.cpu_time >= last, "{usage:?}");
    assert!(usage.memory_peak >= 8_000_000, "{usage:?}");
    assert!(usage.memory_peak <= 128 << 20, "{usage:?}");

    sandbox.run.kill_all().expect("kill_all");
    let status = sandbox.children[0].wait().expect("reap the shell");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
}

#[test]
fn counts_forks_refused_by_the_pids_limit() {
    skip_unless_privileged!();
    let mut sandbox = Sandbox::new("pids");
    let limits = CgroupLimits {
        pids: Some(2),
        ..CgroupLimits::default()
    };
    sandbox.run.apply_limits(&limits).expect("apply limits");
    let script = "read go; for i in 1 2 3 4 5 6; do sleep 30 & done; sleep 30";
    sandbox.spawn(
        Command::new("/bin/sh")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let stdin = sandbox.children[0].stdin.as_mut().unwrap();
    stdin.write_all(b"go\n").unwrap();
    eventually("a refused fork", || {
        sandbox.run.usage().expect("usage").pids_limit_hits > 0
    });
    // dash gives up when a fork is refused, but the sleeper it started
    // first stays behind: remove() must find and kill it by itself.
    assert!(
        sandbox.procs().iter().any(|procs| !procs.is_empty()),
        "a sleeper should be left in the cgroup"
    );
    let paths = sandbox.run.paths();
    sandbox.run.remove().expect("remove a populated cgroup");
    for path in &paths {
        assert!(!path.exists(), "{} is still there", path.display());
    }
    sandbox.children[0].wait().expect("reap the shell");
}
