//! The thin cgroup layer: one [`CgroupController`] over the v1 and v2
//! backends, chosen at run time.
//!
//! Layout: every executor owns `<parent>/<name>` (the instance) in each
//! hierarchy it uses, and each run gets a fresh child below it from
//! [`CgroupController::create_child`]. The parent is `isobox` unless the
//! caller names another ([`CgroupController::placed`]): a path below the
//! root of every hierarchy, or (cgroup v2) an existing cgroup such as a
//! subtree systemd delegated, as isolate's `cg_root` names one. The keeper
//! process never joins these cgroups, which v2's no-internal-processes rule
//! requires of the instance and which keeps `kill_all` from killing the
//! keeper.
//!
//! No write to a cgroup file is ever dropped silently: with `strict` a
//! failed write is an error, otherwise it is logged with `tracing::warn!`.

use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use crate::config::CpuBandwidth;

mod files;
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
    /// An instance cgroup to be created already holds processes: another
    /// executor's of the same instance id, or those of a run still ending.
    /// Nothing was killed.
    #[error("cgroup {0} already holds processes (of another executor with the same instance id, or of a run still ending)")]
    InUse(PathBuf),
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
    /// CPU bandwidth (CFS quota and period).
    pub cpu_bandwidth: Option<CpuBandwidth>,
}

/// Controllers beyond memory, pids and CPU accounting, which every cgroup
/// of isobox has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalControllers {
    /// The `cpu` controller, for a CPU weight other than the default or a
    /// bandwidth limit.
    pub cpu_weight: bool,
    /// The `cpuset` controller, for pinning CPUs or memory nodes.
    pub cpuset: bool,
}

impl OptionalControllers {
    /// Every controller isobox knows.
    pub const ALL: Self = Self {
        cpu_weight: true,
        cpuset: true,
    };
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
    /// Most tasks (processes and threads) alive at once (`pids.peak`, Linux
    /// 6.1 on v2 and, where the kernel offers it there too, v1); `None`
    /// where the kernel keeps no such count.
    pub pids_peak: Option<u64>,
}

/// One cgroup, present in every hierarchy isobox uses.
#[derive(Debug)]
pub struct CgroupController {
    backend: Backend,
    /// Set once `remove` has succeeded, or the cgroup was handed on by
    /// [`keep`](Self::keep), so that `remove` and `Drop` are no-ops.
    removed: bool,
    /// Every directory was made by this handle and nothing has used it
    /// yet (no child, no run): no counter or limit of anyone shows in it.
    fresh: AtomicBool,
}

#[derive(Debug)]
enum Backend {
    V1(v1::V1Cgroup),
    V2(v2::V2Cgroup),
}

/// Where cgroups live on a normal system.
const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

/// Whether this process keeps what it found of the hierarchies (see
/// [`remember_layout`]).
static REMEMBER_LAYOUT: AtomicBool = AtomicBool::new(false);

/// Makes this process keep, from now on, what it finds of the cgroup
/// hierarchies under a root (their version and, on v1, where each
/// controller is mounted) instead of looking again at every use. For a
/// long-lived process that serves many short commands (the isolate face's
/// installation service), where the look (about fifteen `stat`s of
/// cgroup files per box) costs more than the command's own cgroup work.
/// The layout is the host's mount table, which a running system does not
/// change; a process that must see it change does not call this.
pub fn remember_layout() {
    REMEMBER_LAYOUT.store(true, Ordering::Relaxed);
}

/// What was found under each root, by key, while [`remember_layout`] holds.
struct Remembered<K, V> {
    found: std::sync::Mutex<Vec<(K, V)>>,
}

impl<K: PartialEq, V: Clone> Remembered<K, V> {
    const fn new() -> Self {
        Self {
            found: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// What `find` finds for `key`: kept when `remember` and it succeeds.
    fn get_or_find<E>(
        &self,
        remember: bool,
        key: K,
        find: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        if !remember {
            return find();
        }
        let known = self.found.lock().ok().and_then(|found| {
            found
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone())
        });
        if let Some(value) = known {
            return Ok(value);
        }
        let value = find()?;
        if let Ok(mut found) = self.found.lock() {
            found.push((key, value.clone()));
        }
        Ok(value)
    }
}

/// [`CgroupController::detect`]'s findings, by root.
static DETECTED: Remembered<PathBuf, (CgroupVersion, PathBuf)> = Remembered::new();
/// `f_type` of a cgroup2 file system (`CGROUP2_SUPER_MAGIC` in
/// `linux/magic.h`; libc does not export it).
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
/// The v1 hierarchies without which isobox can neither limit nor measure.
const V1_REQUIRED: [&str; 3] = ["memory", "pids", "cpuacct"];

/// Whether `path` is the mount point (or any directory) of a cgroup2 file
/// system.
fn is_cgroup2_mount(path: &Path) -> std::io::Result<bool> {
    let c_path = crate::sys::c_path(path)?;
    // SAFETY: statfs is plain old data, for which all-zero bytes are valid.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is a NUL-terminated string that outlives the call, and
    // buf is a valid, writable statfs the kernel fills in.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &mut buf) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // f_type is i64, i32 or u32 depending on the target.
    #[allow(clippy::unnecessary_cast)]
    let f_type = buf.f_type as i64;
    Ok(f_type == CGROUP2_SUPER_MAGIC)
}

/// The parent of every instance when the caller names none.
pub const DEFAULT_PARENT: &str = "isobox";

/// The parent cgroup of the subtree that belongs to `owner` alone (an
/// installation of isolate's boxes), relative to the root of every
/// hierarchy: `isobox/<owner>`. Two owners never share a cgroup in it.
pub fn own_subtree(owner: &str) -> PathBuf {
    Path::new(DEFAULT_PARENT).join(owner)
}

/// Where instances are made: the hierarchy and the parent cgroup in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The detected version.
    pub version: CgroupVersion,
    /// Root of the hierarchy (v2) or of the v1 hierarchies.
    pub root: PathBuf,
    /// The parent cgroup, relative to `root` (to each hierarchy on v1).
    pub parent: PathBuf,
    /// The parent was given as an existing cgroup: isobox creates nothing
    /// above it and writes nothing above it.
    pub given: bool,
}

impl Placement {
    /// The `parent` that gives this placement again, as [`place`] and the
    /// executor's `cgroup_parent` take it: a given cgroup's absolute
    /// directory, or the parent made below the root, relative to it.
    pub fn parent_argument(&self) -> PathBuf {
        if self.given {
            self.root.join(&self.parent)
        } else {
            self.parent.clone()
        }
    }

    /// The parent cgroup's directories (one per v1 hierarchy; only those
    /// that exist are of use to a caller looking for instances).
    pub fn parent_dirs(&self) -> Vec<PathBuf> {
        match self.version {
            CgroupVersion::V2 => vec![self.root.join(&self.parent)],
            CgroupVersion::V1 => v1::CONTROLLERS
                .iter()
                .map(|controller| self.root.join(controller).join(&self.parent))
                .collect(),
        }
    }
}

/// Finds where instances go: the hierarchy under `root` (`/sys/fs/cgroup`
/// when `None`) and `parent` in it.
///
/// `parent` `None` is [`DEFAULT_PARENT`]; a relative path is created as
/// needed below the root of every hierarchy; an absolute path must be an
/// existing cgroup v2 directory (then `root` is ignored: the hierarchy is
/// the cgroup2 mount holding it), under which isobox creates and writes
/// only below, the way isolate 2.x uses its `cg_root`. cgroup v1 has no
/// single directory for a cgroup, so an absolute parent is refused there.
pub fn place(root: Option<&Path>, parent: Option<&Path>) -> Result<Placement, CgroupError> {
    let Some(parent) = parent else {
        let (version, root) = CgroupController::detect(root)?;
        return Ok(Placement {
            version,
            root,
            parent: PathBuf::from(DEFAULT_PARENT),
            given: false,
        });
    };
    if parent.is_relative() {
        let normal = parent
            .components()
            .all(|part| matches!(part, std::path::Component::Normal(_)));
        if !normal || parent.as_os_str().is_empty() {
            return Err(CgroupError::Unavailable(format!(
                "the parent cgroup {} must be plain names below the root (no `..`, not empty)",
                parent.display()
            )));
        }
        let (version, root) = CgroupController::detect(root)?;
        return Ok(Placement {
            version,
            root,
            parent: parent.to_path_buf(),
            given: false,
        });
    }
    let given = parent;
    if !given.is_dir() {
        return Err(CgroupError::Unavailable(format!(
            "the cgroup {} does not exist",
            given.display()
        )));
    }
    if !is_cgroup2_mount(given).unwrap_or(false) {
        return Err(CgroupError::Unavailable(format!(
            "{} is not in a cgroup v2 hierarchy (an existing parent cgroup needs cgroup v2; \
             on v1 name the directory holding the hierarchies instead)",
            given.display()
        )));
    }
    let given = given.canonicalize().map_err(|source| CgroupError::Io {
        path: given.to_path_buf(),
        source,
    })?;
    let mut mount = given.as_path();
    while let Some(up) = mount.parent() {
        if !is_cgroup2_mount(up).unwrap_or(false) {
            break;
        }
        mount = up;
    }
    let (version, root) = CgroupController::detect(Some(mount))?;
    let available = v2::controllers(&given)?;
    let missing = v2::missing_required(&available);
    if !missing.is_empty() {
        return Err(CgroupError::Unavailable(format!(
            "the cgroup {} lacks the {} controller(s): enable them in its parent's \
             cgroup.subtree_control (isolate's service does this for its own tree)",
            given.display(),
            missing.join(", ")
        )));
    }
    leave_for_a_leaf(&root, &given)?;
    let parent = given
        .strip_prefix(&root)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    Ok(Placement {
        version,
        root,
        parent,
        given: true,
    })
}

/// The cgroup v2 directory (below the hierarchy mounted at `root`) this
/// process is in, from `/proc/self/cgroup`; `None` without a v2 entry.
pub fn own_cgroup(root: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = text.lines().find_map(|line| line.strip_prefix("0::"))?;
    Some(root.join(own.trim_start_matches('/')))
}

/// The leaf a keeper moves into when it runs in the very cgroup it was
/// given: a systemd scope or service with `Delegate=yes` holds its own
/// processes, and a cgroup that holds any cannot give controllers to its
/// children.
pub const KEEPER_LEAF: &str = "isobox-keeper";

/// A cgroup handed to a service or scope with systemd's `Delegate=yes`
/// holds its processes, the keeper among them; cgroup v2 lets a cgroup
/// give controllers to its children only while it holds no process. So a
/// keeper that runs in `given` itself moves (its whole process) into the
/// leaf [`KEEPER_LEAF`] below it, made if missing and kept for the next
/// keeper. Processes other than the keeper left in `given` still stop
/// the controllers from being enabled; the error then says so.
fn leave_for_a_leaf(root: &Path, given: &Path) -> Result<(), CgroupError> {
    if own_cgroup(root).as_deref() != Some(given) {
        return Ok(());
    }
    let leaf = given.join(KEEPER_LEAF);
    let failed = |source| CgroupError::Io {
        path: leaf.clone(),
        source,
    };
    match std::fs::create_dir(&leaf) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(failed(err)),
    }
    // "0" is the writer's whole thread group.
    std::fs::write(leaf.join("cgroup.procs"), "0").map_err(failed)
}

/// Refuses names that would leave the parent cgroup or be ambiguous.
fn check_name(name: &str) -> Result<(), CgroupError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(CgroupError::Io {
            path: PathBuf::from(name),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a cgroup name must be one non-empty path component",
            ),
        });
    }
    Ok(())
}

impl CgroupController {
    /// Finds the cgroup hierarchy under `root` (`/sys/fs/cgroup` when `None`).
    ///
    /// v2 when `root` is a cgroup2 mount (or, for a tree of plain files,
    /// holds `cgroup.controllers` and no v1 `memory` hierarchy) offering
    /// the memory and pids controllers; v1 when `root/memory`, `root/pids`
    /// and `root/cpuacct` are hierarchies. A hybrid system's controller-less
    /// `unified` mount is therefore never chosen.
    pub fn detect(root: Option<&Path>) -> Result<(CgroupVersion, PathBuf), CgroupError> {
        let root = root.unwrap_or(Path::new(DEFAULT_ROOT)).to_path_buf();
        let remember = REMEMBER_LAYOUT.load(Ordering::Relaxed);
        DETECTED.get_or_find(remember, root.clone(), || Self::detect_at(root))
    }

    /// [`detect`](Self::detect), looking.
    fn detect_at(root: PathBuf) -> Result<(CgroupVersion, PathBuf), CgroupError> {
        if !root.is_dir() {
            return Err(CgroupError::Unavailable(format!(
                "{} is not a directory",
                root.display()
            )));
        }
        let cgroup2 = is_cgroup2_mount(&root).map_err(|e| {
            CgroupError::Unavailable(format!("cannot statfs {}: {e}", root.display()))
        })?;
        let looks_v2 =
            root.join("cgroup.controllers").is_file() && !v1::is_hierarchy(&root.join("memory"));
        if cgroup2 || looks_v2 {
            let available = v2::controllers(&root).map_err(|e| {
                CgroupError::Unavailable(format!("cgroup2 at {}: {e}", root.display()))
            })?;
            let missing = v2::missing_required(&available);
            if !missing.is_empty() {
                return Err(CgroupError::Unavailable(format!(
                    "cgroup2 at {} lacks the {} controller(s) (it offers: {:?})",
                    root.display(),
                    missing.join(", "),
                    available.join(" "),
                )));
            }
            return Ok((CgroupVersion::V2, root));
        }
        let missing: Vec<&str> = V1_REQUIRED
            .into_iter()
            .filter(|controller| !v1::is_hierarchy(&root.join(controller)))
            .collect();
        if missing.is_empty() {
            return Ok((CgroupVersion::V1, root));
        }
        Err(CgroupError::Unavailable(format!(
            "{} is not a cgroup2 mount and lacks the v1 hierarchies {} \
             (no cgroup.procs in {})",
            root.display(),
            missing.join(", "),
            missing
                .iter()
                .map(|c| root.join(c).display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        )))
    }

    /// Creates (or reuses, when it exists and is empty, with its limits
    /// cleared) the cgroup `isobox/<name>` in the hierarchy found under
    /// `root`. With `strict`, every failed write is an error; otherwise it
    /// is logged and skipped.
    ///
    /// An existing `isobox/<name>` that still holds processes is
    /// [`CgroupError::InUse`]: it belongs to someone else.
    pub fn new(root: Option<&Path>, name: &str, strict: bool) -> Result<Self, CgroupError> {
        Self::with_controllers(root, name, strict, OptionalControllers::ALL)
    }

    /// Like [`new`](Self::new), joining only the optional controllers
    /// `optional` names. On v1 each hierarchy left out saves a directory
    /// and a move per run; v2 enables every available controller anyway.
    pub fn with_controllers(
        root: Option<&Path>,
        name: &str,
        strict: bool,
        optional: OptionalControllers,
    ) -> Result<Self, CgroupError> {
        Self::placed(&place(root, None)?, name, strict, optional)
    }

    /// Like [`with_controllers`](Self::with_controllers), making the
    /// instance `name` below the parent `placement` names (see [`place`]).
    pub fn placed(
        placement: &Placement,
        name: &str,
        strict: bool,
        optional: OptionalControllers,
    ) -> Result<Self, CgroupError> {
        check_name(name)?;
        let policy = files::WritePolicy { strict };
        let Placement {
            version,
            root,
            parent,
            given,
        } = placement;
        let (backend, fresh) = match version {
            CgroupVersion::V1 => {
                let (cgroup, fresh) = v1::V1Cgroup::new(root, parent, name, policy, optional)?;
                (Backend::V1(cgroup), fresh)
            }
            CgroupVersion::V2 => {
                let (cgroup, fresh) = v2::V2Cgroup::new(root, parent, *given, name, policy)?;
                (Backend::V2(cgroup), fresh)
            }
        };
        let cgroup = Self {
            backend,
            removed: false,
            fresh: AtomicBool::new(fresh),
        };
        if !fresh {
            // A run may have held the instance itself (see `claim_fresh`)
            // and its keeper died before removing it: its limits would
            // bound every run below.
            cgroup.clear_limits()?;
        }
        Ok(cgroup)
    }

    /// Gives the cgroup the limits of a new one: none of its own.
    fn clear_limits(&self) -> Result<(), CgroupError> {
        self.apply_limits(&CgroupLimits::default())?;
        if let Backend::V2(cgroup) = &self.backend {
            cgroup.inherit_cpuset()?;
        }
        Ok(())
    }

    /// Whether this instance was just made, by this handle, and nothing
    /// has used it yet; the first caller to ask gets `true` and the
    /// instance for itself (to hold a run directly, instead of a child
    /// cgroup made for it), every later one `false`. Making a child also
    /// ends the freshness.
    pub fn claim_fresh(&self) -> bool {
        self.fresh.swap(false, Ordering::Relaxed)
    }

    /// The instance `name` below the parent `placement` names, when it
    /// exists in some hierarchy; nothing is created. Meant for removing
    /// what an earlier keeper left (with [`remove`](Self::remove)).
    pub fn existing(placement: &Placement, name: &str) -> Result<Option<Self>, CgroupError> {
        check_name(name)?;
        let policy = files::WritePolicy { strict: false };
        let backend = match placement.version {
            CgroupVersion::V1 => {
                v1::V1Cgroup::existing(&placement.root, &placement.parent, name, policy)?
                    .map(Backend::V1)
            }
            CgroupVersion::V2 => {
                v2::V2Cgroup::existing(&placement.root.join(&placement.parent), name, policy)?
                    .map(Backend::V2)
            }
        };
        Ok(backend.map(|backend| Self {
            backend,
            removed: false,
            fresh: AtomicBool::new(false),
        }))
    }

    /// Host pids of every task in this cgroup and the cgroups below it.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let mut pids = Vec::new();
        for dir in self.paths() {
            files::subtree_pids(&dir, &mut pids)?;
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// Creates a fresh child cgroup `name` below this one.
    ///
    /// A leftover child of that name is killed and removed first, so the
    /// new one starts with zeroed counters. The child is an independent
    /// controller: remove it before its parent.
    pub fn create_child(&self, name: &str) -> Result<Self, CgroupError> {
        check_name(name)?;
        // A cgroup with children cannot hold a run itself (on v2 its
        // controllers are handed down now), and a child's limits live
        // below this one's.
        self.fresh.store(false, Ordering::Relaxed);
        let backend = match &self.backend {
            Backend::V1(cgroup) => Backend::V1(cgroup.create_child(name)?),
            Backend::V2(cgroup) => Backend::V2(cgroup.create_child(name)?),
        };
        Ok(Self {
            backend,
            removed: false,
            fresh: AtomicBool::new(false),
        })
    }

    /// The detected version.
    pub fn version(&self) -> CgroupVersion {
        match self.backend {
            Backend::V1(_) => CgroupVersion::V1,
            Backend::V2(_) => CgroupVersion::V2,
        }
    }

    /// Every directory this cgroup occupies (one per v1 hierarchy).
    pub fn paths(&self) -> Vec<PathBuf> {
        match &self.backend {
            Backend::V1(cgroup) => cgroup.paths(),
            Backend::V2(cgroup) => cgroup.paths(),
        }
    }

    /// Writes every limit (unset ones as unlimited).
    ///
    /// The memory limit includes swap (v1 `memory.memsw.limit_in_bytes`,
    /// v2 `memory.swap.max` = 0). An unset CPU weight is the kernel default
    /// (v1 1024, v2 100); unset cpuset values are left as inherited, and
    /// an unset CPU bandwidth as a new cgroup has it (unthrottled).
    pub fn apply_limits(&self, limits: &CgroupLimits) -> Result<(), CgroupError> {
        match &self.backend {
            Backend::V1(cgroup) => cgroup.apply_limits(limits),
            Backend::V2(cgroup) => cgroup.apply_limits(limits),
        }
    }

    /// Moves process `pid` into this cgroup in every hierarchy.
    pub fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        match &self.backend {
            Backend::V1(cgroup) => cgroup.add_process(pid),
            Backend::V2(cgroup) => cgroup.add_process(pid),
        }
    }

    /// v1 only: the `tasks` file of every hierarchy, open for writing, for
    /// a new process to join the cgroup itself by writing `0` to each.
    ///
    /// Moving another process (a pid written to `cgroup.procs`) write-locks
    /// the kernel's global `cgroup_threadgroup_rwsem`, which waits for an
    /// RCU grace period when no other move came just before: several
    /// milliseconds. A thread moving itself through `tasks` takes no such
    /// lock (Linux 4.20 and later); for a single-threaded process it is the
    /// same move.
    pub fn self_join_files(&self) -> Result<Option<Vec<std::fs::File>>, CgroupError> {
        match &self.backend {
            Backend::V1(cgroup) => cgroup.task_files().map(Some),
            Backend::V2(_) => Ok(None),
        }
    }

    /// v2 only: the directory fd for `clone3(CLONE_INTO_CGROUP)`.
    pub fn directory_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.backend {
            Backend::V1(_) => None,
            Backend::V2(cgroup) => Some(cgroup.directory_fd()),
        }
    }

    /// CPU time used so far (cheap: a pread on a kept file descriptor).
    ///
    /// On v2 kernels without `memory.peak` (before 5.19) this also samples
    /// `memory.current`, so that [`usage`](Self::usage) can report the
    /// largest usage seen while the caller polled.
    pub fn cpu_time(&self) -> Result<Duration, CgroupError> {
        match &self.backend {
            Backend::V1(cgroup) => cgroup.cpu_time(),
            Backend::V2(cgroup) => cgroup.cpu_time(),
        }
    }

    /// Everything measured for this cgroup.
    ///
    /// Counters whose file is absent (a controller that is off, an older
    /// kernel) read as 0.
    pub fn usage(&self) -> Result<CgroupUsage, CgroupError> {
        match &self.backend {
            Backend::V1(cgroup) => cgroup.usage(),
            Backend::V2(cgroup) => cgroup.usage(),
        }
    }

    /// Starts the cgroup's CPU-time and peak-memory counters over, for a
    /// cgroup that outlives one run (a warm box): `cpuacct.usage` to 0 and
    /// `memory.max_usage_in_bytes` to the current usage. Counters that
    /// cannot be reset (OOM kills, pids-limit hits) are read before and
    /// after a run instead. `Ok(false)` where the counters cannot be reset
    /// this way: on cgroup v2 a warm box gives each run a cgroup of its own
    /// instead.
    pub fn reset_counters(&self) -> Result<bool, CgroupError> {
        match &self.backend {
            Backend::V1(cgroup) => cgroup.reset_counters().map(|()| true),
            Backend::V2(_) => Ok(false),
        }
    }

    /// Memory the cgroup's tasks and files hold now, in bytes (v1
    /// `memory.usage_in_bytes`, v2 `memory.current`).
    pub fn memory_usage(&self) -> Result<u64, CgroupError> {
        match &self.backend {
            Backend::V1(cgroup) => cgroup.memory_usage(),
            Backend::V2(cgroup) => {
                let path = cgroup.paths()[0].join("memory.current");
                files::parse_single(&path, &files::read_required(&path)?)
            }
        }
    }

    /// Kills every task and waits until the cgroup is empty.
    ///
    /// Tasks of cgroups below this one are killed too: on v2 at once with
    /// `cgroup.kill` (Linux 5.14; SIGKILL task by task before it), on v1 by
    /// SIGKILL task by task. v2 then also waits for `cgroup.events` to say
    /// `populated 0`, after which the directory can be removed. Gives up
    /// with [`CgroupError::Busy`] after about five seconds.
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        match &self.backend {
            Backend::V1(cgroup) => cgroup.kill_all(),
            Backend::V2(cgroup) => cgroup.kill_all(),
        }
    }

    /// Kills what is left, waits until empty and removes the directories.
    /// Idempotent.
    ///
    /// Cgroups left below this one are removed as well; the shared
    /// `isobox` directory stays for other instances.
    pub fn remove(&mut self) -> Result<(), CgroupError> {
        if self.removed {
            return Ok(());
        }
        // The usual cgroup here is empty already (a box dies with its PID
        // namespace): one rmdir per directory removes it, and the kernel
        // refuses (EBUSY) while a task or a child cgroup is left, so only
        // then is the tree killed, waited for and walked.
        let mut gone = true;
        for dir in self.paths() {
            gone &= files::rmdir_if_empty(&dir);
        }
        if gone {
            self.removed = true;
            return Ok(());
        }
        self.kill_all()?;
        let mut first_error = None;
        for dir in self.paths() {
            // Keep going: one stuck hierarchy should not strand the others.
            if let Err(error) = files::rmdir_cgroups(&dir) {
                first_error.get_or_insert(error);
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => {
                self.removed = true;
                Ok(())
            }
        }
    }
}

impl CgroupController {
    /// Lets go of this cgroup without removing it: its directories stay
    /// for a later keeper to reuse ([`placed`](Self::placed) takes an
    /// existing, empty instance) or to remove
    /// ([`existing`](Self::existing)). A numbered box keeps its cgroup from
    /// its first run to its cleanup: made and removed on every run in every
    /// v1 hierarchy, it cost six `mkdir`/`rmdir` a run, and a v1 memory
    /// cgroup's removal is slow.
    pub fn keep(mut self) {
        self.removed = true;
    }
}

impl Drop for CgroupController {
    fn drop(&mut self) {
        if let Err(error) = self.remove() {
            tracing::warn!(%error, "cannot remove a cgroup on drop");
        }
    }
}

#[cfg(test)]
mod tests;
