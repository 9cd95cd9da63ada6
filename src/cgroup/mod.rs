//! The thin cgroup layer: one [`CgroupController`] over the v1 and v2
//! backends, chosen at run time.
//!
//! INTERFACE STUB — to be implemented (see v1.rs / v2.rs).

use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod v1;
mod v2;

/// Errors of the cgroup layer.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No cgroup hierarchy with the needed controllers was found.
    #[error("no usable cgroup hierarchy: {0}")]
    Unavailable(String),
    /// Reading or writing a cgroup file or directory failed.
    #[error("cgroup {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A cgroup file held something unexpected.
    #[error("cgroup {path}: cannot parse {content:?}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What it held.
        content: String,
    },
    /// Processes were still in the cgroup after it was killed.
    #[error("cgroup {0} still has processes after being killed")]
    Busy(PathBuf),
}

/// Which cgroup interface the kernel offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Separate hierarchies per controller under `<root>/<controller>`.
    V1,
    /// One unified hierarchy at `<root>`.
    V2,
}

/// Limits of one cgroup. `None` means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupLimits {
    /// Memory limit in bytes, swap included.
    pub memory: Option<u64>,
    /// Maximum number of tasks (processes and threads).
    pub pids: Option<u64>,
    /// CPU weight in v1 `cpu.shares` units.
    pub cpu_shares: Option<u64>,
    /// cpuset CPUs.
    pub cpuset_cpus: Option<String>,
    /// cpuset memory nodes.
    pub cpuset_mems: Option<String>,
}

/// What the processes of one cgroup used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupUsage {
    /// User + system CPU time of every task.
    pub cpu_time: Duration,
    /// Peak memory usage in bytes.
    pub memory_peak: u64,
    /// How many times the OOM killer killed a task of this cgroup.
    pub oom_kills: u64,
    /// How many forks or clones the pids limit refused.
    pub pids_limit_hits: u64,
}

/// One cgroup, present in every hierarchy isobox uses.
#[derive(Debug)]
pub struct CgroupController {
    _private: (),
}

impl CgroupController {
    /// Finds the cgroup hierarchy under `root` (`/sys/fs/cgroup` when `None`).
    pub fn detect(root: Option<&Path>) -> Result<(CgroupVersion, PathBuf), CgroupError> {
        let _ = root;
        unimplemented!()
    }

    /// Creates (or reuses, when it exists and is empty) the cgroup
    /// `isobox/<name>` in the hierarchy found under `root`. With `strict`,
    /// every failed write is an error; otherwise it is logged and skipped.
    pub fn new(root: Option<&Path>, name: &str, strict: bool) -> Result<Self, CgroupError> {
        let _ = (root, name, strict);
        unimplemented!()
    }

    /// Creates a fresh child cgroup `name` below this one.
    pub fn create_child(&self, name: &str) -> Result<Self, CgroupError> {
        let _ = name;
        unimplemented!()
    }

    /// The detected version.
    pub fn version(&self) -> CgroupVersion {
        unimplemented!()
    }

    /// Every directory this cgroup occupies (one per v1 hierarchy).
    pub fn paths(&self) -> Vec<PathBuf> {
        unimplemented!()
    }

    /// Writes every limit (unset ones as unlimited).
    pub fn apply_limits(&self, limits: &CgroupLimits) -> Result<(), CgroupError> {
        let _ = limits;
        unimplemented!()
    }

    /// Moves process `pid` into this cgroup in every hierarchy.
    pub fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        let _ = pid;
        unimplemented!()
    }

    /// v2 only: the directory fd for `clone3(CLONE_INTO_CGROUP)`.
    pub fn directory_fd(&self) -> Option<BorrowedFd<'_>> {
        unimplemented!()
    }

    /// CPU time used so far (cheap: a pread on a kept file descriptor).
    pub fn cpu_time(&self) -> Result<Duration, CgroupError> {
        unimplemented!()
    }

    /// Everything measured for this cgroup.
    pub fn usage(&self) -> Result<CgroupUsage, CgroupError> {
        unimplemented!()
    }

    /// Kills every task and waits until the cgroup is empty.
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        unimplemented!()
    }

    /// Kills what is left, waits until empty and removes the directories.
    /// Idempotent.
    pub fn remove(&mut self) -> Result<(), CgroupError> {
        unimplemented!()
    }
}
