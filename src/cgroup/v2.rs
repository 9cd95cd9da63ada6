//! cgroup v2: one unified hierarchy. Controllers are enabled top-down in
//! `cgroup.subtree_control`; only leaves hold processes.

use std::fs::OpenOptions;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

use super::files::{self, CpuCounter, CpuFormat, WritePolicy};
use super::{CgroupError, CgroupLimits, CgroupUsage};

/// Controllers isobox enables when the hierarchy offers them.
const WANTED: [&str; 4] = ["memory", "pids", "cpu", "cpuset"];
/// Controllers without which a v2 hierarchy cannot limit a box.
pub(super) const REQUIRED: [&str; 2] = ["memory", "pids"];

/// The controllers listed in a `cgroup.controllers` file.
pub(super) fn controllers(root: &Path) -> Result<Vec<String>, CgroupError> {
    let path = root.join("cgroup.controllers");
    Ok(files::read_required(&path)?
        .split_ascii_whitespace()
        .map(str::to_owned)
        .collect())
}

/// Converts v1 `cpu.shares` (2..=262144, default 1024) to v2 `cpu.weight`
/// (1..=10000) with the linear mapping runc and systemd use, so that a
/// configuration means the same on both versions.
pub(super) fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    (1 + ((shares - 2) * 9999) / 262_142).clamp(1, 10_000)
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
}

impl V2Cgroup {
    /// Creates or reuses `<root>/isobox/<name>`, with the available
    /// controllers enabled for its children.
    pub(super) fn new(root: &Path, name: &str, policy: WritePolicy) -> Result<Self, CgroupError> {
        let available = controllers(root)?;
        let enable = WANTED
            .iter()
            .filter(|wanted| available.iter().any(|c| c == *wanted))
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(" ");
        let shared = root.join("isobox");
        let dir = shared.join(name);

        let mut created = Vec::new();
        let outcome = (|| {
            enable_below(policy, root, &enable)?;
            files::make_dir(&shared)?;
            enable_below(policy, &shared, &enable)?;
            if files::make_dir(&dir)? {
                created.push(dir.clone());
            } else if !files::is_empty(std::slice::from_ref(&dir))? {
                return Err(CgroupError::Busy(dir.clone()));
            }
            // The instance never holds processes itself, so it can pass
            // the controllers on to the per-run children.
            enable_below(policy, &dir, &enable)?;
            Self::open(dir.clone(), enable.clone(), policy)
        })();
        if outcome.is_err() {
            files::undo_created(&created);
        }
        outcome
    }

    fn open(dir: PathBuf, enable: String, policy: WritePolicy) -> Result<Self, CgroupError> {
        let dir_fd = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(&dir)
            .map_err(|e| files::io_error(&dir, e))?
            .into();
        let cpu = CpuCounter::new(dir.join("cpu.stat"), CpuFormat::UsageUsec);
        Ok(Self {
            dir,
            dir_fd,
            enable,
            policy,
            cpu,
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

        if let Some(cpus) = &limits.cpuset_cpus {
            write("cpuset.cpus", cpus)?;
        }
        if let Some(mems) = &limits.cpuset_mems {
            write("cpuset.mems", mems)?;
        }
        Ok(())
    }

    pub(super) fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        self.policy
            .write(&self.dir.join("cgroup.procs"), &pid.to_string())
    }

    pub(super) fn cpu_time(&self) -> Result<Duration, CgroupError> {
        self.cpu.read()
    }

    pub(super) fn usage(&self) -> Result<CgroupUsage, CgroupError> {
        // memory.peak is recent (Linux 5.19); memory.current is the best
        // approximation before it.
        let mut memory_peak = 0;
        for file in ["memory.peak", "memory.current"] {
            let path = self.dir.join(file);
            if let Some(content) = files::read_optional(&path)? {
                memory_peak = files::parse_single(&path, &content)?;
                break;
            }
        }
        Ok(CgroupUsage {
            cpu_time: self.cpu_time()?,
            memory_peak,
            oom_kills: files::read_keyed_or_zero(&self.dir.join("memory.events"), "oom_kill")?,
            pids_limit_hits: files::read_keyed_or_zero(&self.dir.join("pids.events"), "max")?,
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
        files::kill_and_wait(&self.paths(), !killed)
    }
}

/// Enables `enable` for the children of `dir`.
fn enable_below(policy: WritePolicy, dir: &Path, enable: &str) -> Result<(), CgroupError> {
    if enable.is_empty() {
        return Ok(());
    }
    policy.write(&dir.join("cgroup.subtree_control"), enable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_follows_the_runc_mapping() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(0), 1);
        assert_eq!(shares_to_weight(u64::MAX), 10_000);
    }
}
