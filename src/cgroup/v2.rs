//! cgroup v2: one unified hierarchy. Controllers are enabled top-down in
//! `cgroup.subtree_control`; only leaves hold processes.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;
use std::thread;
use std::time::{Duration, Instant};

use super::files::{self, CpuCounter, CpuFormat, WritePolicy};
use super::{CgroupError, CgroupLimits, CgroupUsage};

/// Controllers isobox enables when the hierarchy offers them.
const WANTED: [&str; 4] = ["memory", "pids", "cpu", "cpuset"];
/// Controllers without which a v2 hierarchy cannot limit a box.
pub(super) const REQUIRED: [&str; 2] = ["memory", "pids"];
/// How long `kill_all` waits for `cgroup.events` to say `populated 0`
/// after the tasks are gone from `cgroup.procs` (exiting tasks leave the
/// list before they stop counting).
const UNPOPULATED_TIMEOUT: Duration = Duration::from_secs(5);

/// The controllers listed in a `cgroup.controllers` file.
pub(super) fn controllers(root: &Path) -> Result<Vec<String>, CgroupError> {
    let path = root.join("cgroup.controllers");
    Ok(files::read_required(&path)?
        .split_ascii_whitespace()
        .map(str::to_owned)
        .collect())
}

/// The controllers of [`REQUIRED`] that `available` lacks.
pub(super) fn missing_required(available: &[String]) -> Vec<&'static str> {
    REQUIRED
        .into_iter()
        .filter(|needed| !available.iter().any(|c| c == needed))
        .collect()
}

/// Converts v1 `cpu.shares` (2..=262144, default 1024) to v2 `cpu.weight`
/// (1..=10000, default 100), so that a configuration means the same on
/// both versions: the default weight stays the default, and the ends of the
/// ranges meet. The curve is the quadratic fit in log space that current
/// runc and crun use; the older linear mapping turned the default 1024
/// into 39, putting every box behind the host's other cgroups.
pub(super) fn shares_to_weight(shares: u64) -> u64 {
    if shares <= 2 {
        return 1;
    }
    if shares >= 262_144 {
        return 10_000;
    }
    // 2..262144 fits f64 exactly; the result is within 1..=10000.
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    let weight = 10f64.powf(exponent).ceil();
    // The cast saturates; the clamp only guards the ends of the range.
    (weight as u64).clamp(1, 10_000)
}

/// One cgroup of the unified hierarchy.
#[derive(Debug)]
pub(super) struct V2Cgroup {
    dir: PathBuf,
    /// Kept open from creation so `clone3(CLONE_INTO_CGROUP)` needs no
    /// path lookup per run.
    dir_fd: OwnedFd,
    /// What to write into `cgroup.subtree_control` to hand the enabled
    /// controllers down, e.g. `+memory +pids +cpu`.
    enable: String,
    policy: WritePolicy,
    cpu: CpuCounter,
    /// Kernels before 5.19 have no `memory.peak`: then `memory.current` is
    /// sampled whenever the CPU time is polled, and this keeps the maximum.
    sampled_peak: Option<AtomicU64>,
}

impl V2Cgroup {
    /// Creates or reuses `<root>/<parent>/<name>`, with the available
    /// controllers enabled for it (its children get them at the first
    /// [`create_child`](Self::create_child)); with whether the directory
    /// was created here.
    ///
    /// The levels of `parent` are created as needed, each handing the
    /// controllers down, unless `given`: then `parent` is an existing
    /// cgroup someone delegated, and only it and what is below it are
    /// written.
    pub(super) fn new(
        root: &Path,
        parent: &Path,
        given: bool,
        name: &str,
        policy: WritePolicy,
    ) -> Result<(Self, bool), CgroupError> {
        let top = if given {
            root.join(parent)
        } else {
            root.to_path_buf()
        };
        let available = controllers(&top)?;
        let enable = WANTED
            .iter()
            .filter(|wanted| available.iter().any(|c| c == *wanted))
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(" ");
        let dir = root.join(parent).join(name);
        // isobox's own tree must not hold the keeper: it enables controllers
        // at every level and kills instances. In a given parent only the
        // instance is isobox's (a keeper sitting in the parent itself gets
        // enable_below's EBUSY explanation).
        let tree: PathBuf = if given {
            parent.join(name)
        } else {
            parent.components().take(1).collect()
        };
        refuse_keeper_inside(root, &tree)?;

        let mut created = Vec::new();
        let outcome = (|| {
            enable_below(policy, &top, &enable)?;
            if !given {
                // The parent's levels stay: other instances use them.
                let mut level = root.to_path_buf();
                for part in parent.components() {
                    level.push(part);
                    files::make_dir(&level)?;
                    enable_below(policy, &level, &enable)?;
                }
            }
            if files::make_dir(&dir)? {
                created.push(dir.clone());
            } else if !files::is_empty(std::slice::from_ref(&dir))? {
                return Err(CgroupError::InUse(dir.clone()));
            }
            // The controllers are not handed on below the instance yet: a
            // cgroup that does so cannot hold processes itself, and a fresh
            // instance may hold its one run directly
            // ([`CgroupController::claim_fresh`]).
            let fresh = !created.is_empty();
            Self::open(dir.clone(), enable.clone(), policy).map(|cgroup| (cgroup, fresh))
        })();
        if outcome.is_err() {
            files::undo_created(&created);
        }
        outcome
    }

    /// `<parent_dir>/<name>` when it exists.
    pub(super) fn existing(
        parent_dir: &Path,
        name: &str,
        policy: WritePolicy,
    ) -> Result<Option<Self>, CgroupError> {
        let dir = parent_dir.join(name);
        if !dir.is_dir() {
            return Ok(None);
        }
        let enable = controllers(&dir)
            .unwrap_or_default()
            .iter()
            .filter(|c| WANTED.contains(&c.as_str()))
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(" ");
        Self::open(dir, enable, policy).map(Some)
    }

    fn open(dir: PathBuf, enable: String, policy: WritePolicy) -> Result<Self, CgroupError> {
        let dir_fd = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(&dir)
            .map_err(|e| files::io_error(&dir, e))?
            .into();
        let cpu = CpuCounter::new(dir.join("cpu.stat"), CpuFormat::UsageUsec);
        let sampled_peak = (!dir.join("memory.peak").exists()).then(|| AtomicU64::new(0));
        Ok(Self {
            dir,
            dir_fd,
            enable,
            policy,
            cpu,
            sampled_peak,
        })
    }

    /// Creates a fresh child cgroup `name`.
    pub(super) fn create_child(&self, name: &str) -> Result<Self, CgroupError> {
        // Idempotent for the instance; makes a child of a child work too.
        enable_below(self.policy, &self.dir, &self.enable)?;
        let dir = self.dir.join(name);
        files::make_fresh_dir(&dir)?;
        Self::open(dir.clone(), self.enable.clone(), self.policy).inspect_err(|_| {
            files::undo_created(std::slice::from_ref(&dir));
        })
    }

    pub(super) fn paths(&self) -> Vec<PathBuf> {
        vec![self.dir.clone()]
    }

    pub(super) fn directory_fd(&self) -> BorrowedFd<'_> {
        self.dir_fd.as_fd()
    }

    pub(super) fn apply_limits(&self, limits: &CgroupLimits) -> Result<(), CgroupError> {
        let write = |file: &str, value: &str| self.policy.write(&self.dir.join(file), value);
        let memory = limits
            .memory
            .map_or_else(|| "max".to_owned(), |bytes| bytes.to_string());
        write("memory.max", &memory)?;

        let swap = self.dir.join("memory.swap.max");
        if swap.exists() {
            // The memory limit includes swap: no swap at all under a limit.
            let value = if limits.memory.is_some() { "0" } else { "max" };
            self.policy.write(&swap, value)?;
        } else if limits.memory.is_some() {
            static WARN: Once = Once::new();
            WARN.call_once(|| {
                tracing::warn!(
                    "memory.swap.max is missing (swap accounting off); swap is not limited"
                )
            });
        }

        let pids = limits
            .pids
            .map_or_else(|| "max".to_owned(), |count| count.to_string());
        write("pids.max", &pids)?;

        // Unset means the kernel's default weight, as in a new cgroup.
        let weight = limits.cpu_shares.map_or(100, shares_to_weight);
        write("cpu.weight", &weight.to_string())?;

        if let Some(bandwidth) = &limits.cpu_bandwidth {
            let quota = files::micros(bandwidth.quota);
            write(
                "cpu.max",
                &format!("{quota} {}", files::micros(bandwidth.period)),
            )?;
        } else if self.dir.join("cpu.max").exists() {
            // A cgroup kept from run to run must not keep an earlier quota.
            write("cpu.max", "max")?;
        }

        if let Some(cpus) = &limits.cpuset_cpus {
            write("cpuset.cpus", cpus)?;
        }
        if let Some(mems) = &limits.cpuset_mems {
            write("cpuset.mems", mems)?;
        }
        Ok(())
    }

    /// Makes the cgroup's CPUs and memory nodes its parent's again (an
    /// empty `cpuset.cpus` or `cpuset.mems` inherits them).
    pub(super) fn inherit_cpuset(&self) -> Result<(), CgroupError> {
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let path = self.dir.join(file);
            if files::read_optional(&path)?.is_some_and(|value| !value.trim().is_empty()) {
                self.policy.write(&path, "")?;
            }
        }
        Ok(())
    }

    pub(super) fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        self.policy
            .write(&self.dir.join("cgroup.procs"), &pid.to_string())
    }

    pub(super) fn cpu_time(&self) -> Result<Duration, CgroupError> {
        self.sample_memory();
        self.cpu.read()
    }

    /// Without `memory.peak`, records the current usage if it is a new
    /// maximum. Best effort: a failed read only makes the peak coarser.
    fn sample_memory(&self) -> u64 {
        let Some(peak) = &self.sampled_peak else {
            return 0;
        };
        let path = self.dir.join("memory.current");
        let current = files::read_optional(&path)
            .ok()
            .flatten()
            .and_then(|content| files::parse_single(&path, &content).ok())
            .unwrap_or(0);
        peak.fetch_max(current, Ordering::Relaxed).max(current)
    }

    pub(super) fn usage(&self) -> Result<CgroupUsage, CgroupError> {
        // memory.peak is recent (Linux 5.19). Before it, the best there is
        // is the largest memory.current seen while the program ran.
        let peak_path = self.dir.join("memory.peak");
        let memory_peak = match files::read_optional(&peak_path)? {
            Some(content) => files::parse_single(&peak_path, &content)?,
            None => {
                let path = self.dir.join("memory.current");
                let current = match files::read_optional(&path)? {
                    Some(content) => files::parse_single(&path, &content)?,
                    None => 0,
                };
                let sampled = self
                    .sampled_peak
                    .as_ref()
                    .map_or(0, |peak| peak.load(Ordering::Relaxed));
                current.max(sampled)
            }
        };
        Ok(CgroupUsage {
            cpu_time: self.cpu_time()?,
            memory_peak,
            oom_kills: files::read_keyed_or_zero(&self.dir.join("memory.events"), "oom_kill")?,
            pids_limit_hits: files::read_keyed_or_zero(&self.dir.join("pids.events"), "max")?,
            // Linux 6.1.
            pids_peak: files::read_report_only(&self.dir.join("pids.peak")),
        })
    }

    pub(super) fn kill_all(&self) -> Result<(), CgroupError> {
        let kill = self.dir.join("cgroup.kill");
        // cgroup.kill (Linux 5.14) kills the whole subtree atomically, so
        // nothing can fork away and no pid can be reused under our feet.
        let killed = kill.exists()
            && match files::write_file(&kill, "1") {
                Ok(()) => true,
                Err(error) => {
                    // Not ignored: the signal loop below does the same job.
                    tracing::warn!(file = %kill.display(), %error, "cgroup.kill failed; killing task by task");
                    false
                }
            };
        files::kill_and_wait(&self.paths(), !killed)?;
        self.wait_unpopulated()
    }

    /// Waits until `cgroup.events` says `populated 0`: only then has every
    /// task of the subtree stopped counting and `rmdir` can succeed. A
    /// task that is exiting has already left `cgroup.procs` but may still
    /// be populating the cgroup for a moment.
    fn wait_unpopulated(&self) -> Result<(), CgroupError> {
        let events = self.dir.join("cgroup.events");
        let deadline = Instant::now() + UNPOPULATED_TIMEOUT;
        let mut sleep = Duration::from_millis(1);
        loop {
            // Missing (a cgroup removed meanwhile, or a fake tree): empty.
            if files::read_keyed_or_zero(&events, "populated")? == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(CgroupError::Busy(self.dir.clone()));
            }
            thread::sleep(sleep);
            sleep = (sleep * 2).min(Duration::from_millis(50));
        }
    }
}

/// The controllers listed in `cgroup.subtree_control` of `dir`; none when
/// it cannot be read. A `+` in front is tolerated (fake trees of plain files
/// keep what was written).
fn enabled_below(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("cgroup.subtree_control"))
        .unwrap_or_default()
        .split_ascii_whitespace()
        .map(|c| c.trim_start_matches('+').to_owned())
        .collect()
}

/// Enables the controllers of `enable` (`+memory +pids ...`) for the
/// children of `dir`, writing only those not enabled yet: an enabled
/// controller needs no write permission on a delegated `dir`.
fn enable_below(policy: WritePolicy, dir: &Path, enable: &str) -> Result<(), CgroupError> {
    let enabled = enabled_below(dir);
    let missing = enable
        .split_ascii_whitespace()
        .filter(|c| !enabled.iter().any(|e| e == c.trim_start_matches('+')))
        .collect::<Vec<_>>()
        .join(" ");
    if missing.is_empty() {
        return Ok(());
    }
    let path = dir.join("cgroup.subtree_control");
    let outcome = files::write_file(&path, &missing).map_err(|error| {
        if error.raw_os_error() != Some(libc::EBUSY) {
            return error;
        }
        io::Error::new(
            error.kind(),
            format!(
                "{error}: {} holds processes, and cgroup v2 enables controllers for the \
                 children of a cgroup only while it holds none (the root cgroup \
                 excepted); run isobox from a leaf cgroup such as a systemd service \
                 or scope, or move the processes of {} into a child cgroup",
                dir.display(),
                dir.display()
            ),
        )
    });
    policy.settle(&path, &missing, outcome)
}

/// The keeper's own cgroup as a path relative to the v2 mount, from
/// `/proc/self/cgroup` (`0::/path`); `None` when it cannot be told.
fn own_cgroup() -> Option<PathBuf> {
    let content = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    own_cgroup_from(&content)
}

fn own_cgroup_from(content: &str) -> Option<PathBuf> {
    content
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(|path| PathBuf::from(path.trim().trim_start_matches('/')))
}

/// Refuses to build isobox's tree when the keeper itself lives in it:
/// controllers are enabled for the children of every cgroup of that tree,
/// which v2 forbids while the cgroup holds processes, and `kill_all` would
/// kill the keeper. Only checked for the real cgroup2 mount, which is what
/// `/proc/self/cgroup` describes.
fn refuse_keeper_inside(root: &Path, tree: &Path) -> Result<(), CgroupError> {
    if !super::is_cgroup2_mount(root).unwrap_or(false) {
        return Ok(());
    }
    match own_cgroup() {
        Some(own) if own.starts_with(tree) => Err(CgroupError::Unavailable(format!(
            "isobox runs inside its own cgroup tree ({}), where it would be killed with \
             the programs it runs; start it from another cgroup",
            root.join(own).display()
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cgroup_is_the_unified_line() {
        let content = "12:pids:/user.slice\n0::/system.slice/x.service\n";
        assert_eq!(
            own_cgroup_from(content),
            Some(PathBuf::from("system.slice/x.service"))
        );
        assert_eq!(own_cgroup_from("0::/\n"), Some(PathBuf::new()));
        assert_eq!(own_cgroup_from("3:memory:/a\n"), None);
    }

    #[test]
    fn weight_keeps_the_default_and_the_ends() {
        assert_eq!(shares_to_weight(1024), 100, "default to default");
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(0), 1);
        assert_eq!(shares_to_weight(u64::MAX), 10_000);
        // Values of runc's and crun's tables.
        assert_eq!(shares_to_weight(512), 59);
        assert_eq!(shares_to_weight(2048), 174);
        assert_eq!(shares_to_weight(100_000), 4340);
        // Monotonic and in range over the whole v1 domain.
        let mut last = 1;
        for shares in 2..=262_144 {
            let weight = shares_to_weight(shares);
            assert!((last..=10_000).contains(&weight), "{shares} -> {weight}");
            last = weight;
        }
    }
}
