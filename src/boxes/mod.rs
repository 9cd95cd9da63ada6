//! Boxes in isolate's model: numbered, long-lived sandboxes on disk.
//!
//! Box N lives at `<box_root>/<N>`: its program sees `<box_root>/<N>/box`
//! as `/box`, runs as uid `first_uid + N` and gid `first_gid + N`, and is
//! measured in the cgroup `box-<N>` (the executor's instance, see
//! [`IsolateConfig::instance_id`]) below the installation's own cgroup
//! ([`CgRoot`]), so that two installations never share a box cgroup; each
//! run has a fresh cgroup of its own below it. The box's cgroup is made by
//! its first run and stays until cleanup. A box is created by
//! [`LockedBox::init`], used by any number of runs, and removed by
//! [`LockedBox::cleanup`].
//!
//! Every operation on a box holds its lock: an exclusive `flock` on
//! `<lock_root>/<N>` ([`Sandbox::lock`]). The kernel drops the lock when its
//! holder dies, so a keeper killed in the middle of a run never leaves its
//! box locked, and two runs never share a box.
//!
//! The layout comes from a configuration file in isolate's syntax
//! ([`BoxesConfig`], in `config`); taking the lock and what a box goes
//! through from `--init` to `--cleanup` is `lifecycle`; finding what a dead
//! keeper left on the host (mounts, processes) is `inspect`.
//!
//! [`IsolateConfig::instance_id`]: crate::IsolateConfig::instance_id

use std::io;
use std::path::{Path, PathBuf};

use crate::cgroup::{CgroupError, Placement};

mod config;
mod inspect;
mod lifecycle;

pub use config::{
    config_path, BoxesConfig, CgRoot, PerBoxConfig, Quota, CONFIG_ENV, DEFAULT_BOX_ROOT,
    DEFAULT_CONFIG_PATH, DEFAULT_LOCK_ROOT, DEFAULT_NUM_BOXES, DEFAULT_QUOTA, SUBGID_PATH,
    SUBUID_PATH,
};
pub use lifecycle::{BoxState, LockedBox};

/// Errors of the box layer.
#[derive(Debug, thiserror::Error)]
pub enum BoxError {
    /// The configuration file cannot be read.
    #[error("cannot read the configuration file {path}: {source}")]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A line of the configuration file is wrong.
    #[error("{path}, line {line}: {reason}")]
    ConfigLine {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The configuration as a whole cannot be used.
    #[error("{path}: {reason}")]
    ConfigInvalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The box id is not below `num_boxes`.
    #[error("box id {id} is out of range (allowed: 0-{max})")]
    OutOfRange {
        /// The requested id.
        id: u64,
        /// The largest allowed id.
        max: u32,
    },
    /// A quota of zero blocks or inodes (tmpfs would read it as "no
    /// limit").
    #[error("a box quota of {blocks} KiB and {inodes} inodes is refused: both must be at least 1")]
    BadQuota {
        /// The size asked for, in KiB.
        blocks: u64,
        /// The number of inodes asked for.
        inodes: u64,
    },
    /// The box has no file system of its own, so nothing bounds what a
    /// program leaves in it.
    #[error("box {0} has no size-limited file system of its own (it was initialized by an older isobox)")]
    Unbounded(u32),
    /// Another process holds the box's lock.
    #[error("box {0} is in use by another process")]
    Busy(u32),
    /// The box does not exist.
    #[error("box {0} is not initialized")]
    NotInitialized(u32),
    /// The box exists, but its initialization never completed.
    #[error("box {0} was not initialized completely")]
    HalfInitialized(u32),
    /// The box was initialized in the other cgroup mode.
    #[error("box {id} was initialized {}", if *.initialized_with_cgroups { "with control groups" } else { "without control groups" })]
    CgroupMode {
        /// The box.
        id: u32,
        /// The mode of its initialization.
        initialized_with_cgroups: bool,
    },
    /// A file system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `cg_root = auto:FILE`: FILE cannot be read.
    // The system's error in the message only, as for the variants below.
    #[error("cg_root = auto:{}: cannot read the cgroup path (isolate's systemd service writes it; is it running?): {error}", file.display())]
    CgRootUnreadable {
        /// The file named by `auto:`.
        file: PathBuf,
        /// The system's error.
        error: io::Error,
    },
    /// `cg_root = auto:FILE`: FILE names no absolute path.
    #[error("cg_root = auto:{}: {found:?} is not an absolute path", file.display())]
    CgRootRelative {
        /// The file named by `auto:`.
        file: PathBuf,
        /// What its first line holds.
        found: PathBuf,
    },
    // The variants below carry the system's error in their message, not as
    // a `source`: a face prints the chain on one line, and the error would
    // show twice.
    /// The box's quota file system cannot be mounted.
    #[error("mounting the quota file system on {}: {error}", path.display())]
    QuotaMount {
        /// The box directory.
        path: PathBuf,
        /// The system's error.
        error: io::Error,
    },
    /// The box's network namespace cannot be made or pinned.
    #[error("keeping the box's network namespace at {}: {error}", path.display())]
    NetnsMount {
        /// The file the namespace is pinned at.
        path: PathBuf,
        /// The system's error.
        error: io::Error,
    },
    /// A file system mounted in the box's tree cannot be unmounted.
    #[error("unmounting {}: {error}", path.display())]
    Unmount {
        /// The mount point.
        path: PathBuf,
        /// The system's error.
        error: io::Error,
    },
    /// The recorded proxy of a box's run cannot be killed.
    #[error("cannot kill process {pid} of box {id}: {error}")]
    ProxyKill {
        /// The box.
        id: u32,
        /// The proxy's pid.
        pid: i32,
        /// The system's error.
        error: io::Error,
    },
    /// Waiting for the recorded proxy to end failed.
    #[error("waiting for the processes of box {id} to end: {error}")]
    ProxyWait {
        /// The box.
        id: u32,
        /// The system's error.
        error: io::Error,
    },
    /// The recorded proxy of a box's run survives SIGKILL.
    #[error("the processes of box {id} survive SIGKILL (proxy pid {pid})")]
    ProxySurvives {
        /// The box.
        id: u32,
        /// The proxy's pid.
        pid: i32,
    },
    /// Processes in the box's cgroup survive SIGKILL.
    #[error("processes of box {id} survive SIGKILL in {}", dir.display())]
    CgroupSurvives {
        /// The box.
        id: u32,
        /// The cgroup directory they are in.
        dir: PathBuf,
    },
    /// A cgroup operation failed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
}

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> BoxError {
    let context = context.into();
    move |source| BoxError::Io { context, source }
}

/// One box: its paths, ids and cgroup. Nothing on disk is touched until it
/// is locked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    id: u32,
    dir: PathBuf,
    box_dir: PathBuf,
    lock_root: PathBuf,
    lock_path: PathBuf,
    uid: u32,
    gid: u32,
    cg_root: CgRoot,
    installation: String,
    per_box: PerBoxConfig,
    default_quota: Quota,
}

impl Sandbox {
    /// The box number.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// `<box_root>/<N>`, the directory isolate's `--init` prints.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<box_root>/<N>/box`, which the program sees as `/box`.
    pub fn box_dir(&self) -> &Path {
        &self.box_dir
    }

    /// uid of the box's program.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// gid of the box's program.
    pub fn gid(&self) -> u32 {
        self.gid
    }

    /// Name of the box's cgroup (the executor's instance) below the
    /// installation's cgroup ([`cgroup_placement`](Self::cgroup_placement)).
    pub fn cgroup_name(&self) -> String {
        format!("box-{}", self.id)
    }

    /// Where the installation keeps its box cgroups (see [`CgRoot`]).
    pub fn cgroup_placement(&self) -> Result<Placement, BoxError> {
        self.cg_root.placement(&self.installation)
    }
}
