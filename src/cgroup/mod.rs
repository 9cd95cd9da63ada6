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
use std::time::Duration;

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

/// Controllers beyond memory, pids and CPU accounting, which every cgroup
/// of isobox has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalControllers {
    /// The `cpu` controller, for a CPU weight other than the default.
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
}

/// One cgroup, present in every hierarchy isobox uses.
#[derive(Debug)]
pub struct CgroupController {
    backend: Backend,
    /// Set once `remove` has succeeded, so that it and `Drop` are no-ops.
    removed: bool,
}

#[derive(Debug)]
enum Backend {
    V1(v1::V1Cgroup),
    V2(v2::V2Cgroup),
}

/// Where cgroups live on a normal system.
const DEFAULT_ROOT: &str = "/sys/fs/cgroup";
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
    let missing: Vec<&str> = v2::REQUIRED
        .into_iter()
        .filter(|needed| !available.iter().any(|c| c == needed))
        .collect();
    if !missing.is_empty() {
        return Err(CgroupError::Unavailable(format!(
            "the cgroup {} lacks the {} controller(s): enable them in its parent's \
             cgroup.subtree_control (isolate's service does this for its own tree)",
            given.display(),
            missing.join(", ")
        )));
    }
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
            let missing: Vec<&str> = v2::REQUIRED
                .into_iter()
                .filter(|needed| !available.iter().any(|c| c == needed))
                .collect();
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

    /// Creates (or reuses, when it exists and is empty) the cgroup
    /// `isobox/<name>` in the hierarchy found under `root`. With `strict`,
    /// every failed write is an error; otherwise it is logged and skipped.
    ///
    /// An existing `isobox/<name>` that still holds processes is
    /// [`CgroupError::Busy`]: it belongs to someone else.
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
        let backend = match version {
            CgroupVersion::V1 => {
                Backend::V1(v1::V1Cgroup::new(root, parent, name, policy, optional)?)
            }
            CgroupVersion::V2 => {
                Backend::V2(v2::V2Cgroup::new(root, parent, *given, name, policy)?)
            }
        };
        Ok(Self {
            backend,
            removed: false,
        })
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
        let backend = match &self.backend {
            Backend::V1(cgroup) => Backend::V1(cgroup.create_child(name)?),
            Backend::V2(cgroup) => Backend::V2(cgroup.create_child(name)?),
        };
        Ok(Self {
            backend,
            removed: false,
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
    /// (v1 1024, v2 100); unset cpuset values are left as inherited.
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

impl Drop for CgroupController {
    fn drop(&mut self) {
        if let Err(error) = self.remove() {
            tracing::warn!(%error, "cannot remove a cgroup on drop");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// No process can have this pid (PID_MAX_LIMIT is 4194304), so a fake
    /// `cgroup.procs` holding it can never make `kill_all` hit anyone.
    const IMPOSSIBLE_PID: i32 = 999_999_999;

    fn touch(dir: &Path, files: &[(&str, &str)]) {
        fs::create_dir_all(dir).unwrap();
        for (name, content) in files {
            fs::write(dir.join(name), content).unwrap();
        }
    }

    fn read(path: impl AsRef<Path>) -> String {
        fs::read_to_string(path).unwrap()
    }

    /// Files a fake v1 cgroup of `controller` holds.
    fn v1_files(controller: &str) -> Vec<(&'static str, &'static str)> {
        let mut files = vec![("cgroup.procs", "")];
        files.extend_from_slice(match controller {
            "memory" => &[
                ("memory.limit_in_bytes", "9223372036854771712\n"),
                ("memory.memsw.limit_in_bytes", "9223372036854771712\n"),
                ("memory.swappiness", "60\n"),
                ("memory.max_usage_in_bytes", "0\n"),
                (
                    "memory.oom_control",
                    "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
                ),
            ][..],
            "pids" => &[("pids.max", "max\n"), ("pids.events", "max 0\n")][..],
            "cpuacct" => &[("cpuacct.usage", "0\n")][..],
            "cpu" => &[("cpu.shares", "1024\n")][..],
            "cpuset" => &[("cpuset.cpus", "\n"), ("cpuset.mems", "\n")][..],
            _ => &[][..],
        });
        files
    }

    const V1_CONTROLLERS: [&str; 5] = ["memory", "pids", "cpuacct", "cpu", "cpuset"];

    #[test]
    fn an_owners_subtree_and_the_parent_that_finds_a_placement_again() {
        assert_eq!(own_subtree("boxes-1"), Path::new("isobox/boxes-1"));
        let made = Placement {
            version: CgroupVersion::V1,
            root: PathBuf::from("/sys/fs/cgroup"),
            parent: own_subtree("boxes-1"),
            given: false,
        };
        assert_eq!(made.parent_argument(), Path::new("isobox/boxes-1"));
        let given = Placement {
            version: CgroupVersion::V2,
            given: true,
            parent: PathBuf::from("system.slice/isolate.service"),
            ..made
        };
        assert_eq!(
            given.parent_argument(),
            Path::new("/sys/fs/cgroup/system.slice/isolate.service")
        );
    }

    /// A v1 layout with `isobox/` in every hierarchy and, with `instance`,
    /// a pre-made `isobox/<instance>` holding the control files.
    fn fake_v1(instance: Option<&str>) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for controller in V1_CONTROLLERS {
            let top = root.path().join(controller);
            touch(&top, &v1_files(controller));
            touch(&top.join("isobox"), &v1_files(controller));
            if let Some(name) = instance {
                touch(&top.join("isobox").join(name), &v1_files(controller));
            }
        }
        touch(
            &root.path().join("cpuset"),
            &[("cpuset.cpus", "0-3\n"), ("cpuset.mems", "0\n")],
        );
        root
    }

    #[test]
    fn parents_must_stay_below_the_root_or_be_a_real_v2_cgroup() {
        let root = fake_v1(None);
        let placement = place(Some(root.path()), Some(Path::new("isobox/boxes-1"))).unwrap();
        assert_eq!(placement.version, CgroupVersion::V1);
        assert_eq!(placement.parent, Path::new("isobox/boxes-1"));
        assert!(!placement.given);
        assert_eq!(
            placement.parent_dirs()[0],
            root.path().join("memory/isobox/boxes-1")
        );
        let default = place(Some(root.path()), None).unwrap();
        assert_eq!(default.parent, Path::new(DEFAULT_PARENT));
        for bad in ["isobox/../..", "../x", ""] {
            let err = place(Some(root.path()), Some(Path::new(bad))).unwrap_err();
            assert!(matches!(err, CgroupError::Unavailable(_)), "{bad:?}: {err}");
        }
        // An absolute parent must be an existing cgroup v2 directory.
        let err = place(None, Some(&root.path().join("memory"))).unwrap_err();
        assert!(err.to_string().contains("cgroup v2"), "{err}");
        let err = place(None, Some(Path::new("/nonexistent/cgroup"))).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }

    const V2_FILES: [(&str, &str); 14] = [
        ("cgroup.procs", ""),
        ("cgroup.subtree_control", ""),
        ("cgroup.kill", ""),
        ("memory.max", "max\n"),
        ("memory.swap.max", "max\n"),
        ("pids.max", "max\n"),
        ("cpu.weight", "100\n"),
        ("cpuset.cpus", "\n"),
        ("cpuset.mems", "\n"),
        ("cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n"),
        ("memory.peak", "0\n"),
        ("memory.current", "0\n"),
        ("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"),
        ("pids.events", "max 0\n"),
    ];

    /// A v2 layout; with `instance`, a pre-made `isobox/<instance>`.
    fn fake_v2(instance: Option<&str>) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        touch(
            root.path(),
            &[
                (
                    "cgroup.controllers",
                    "cpuset cpu io memory hugetlb pids rdma misc\n",
                ),
                ("cgroup.subtree_control", ""),
                ("cgroup.procs", "1\n"),
            ],
        );
        touch(
            &root.path().join("isobox"),
            &[("cgroup.subtree_control", "")],
        );
        if let Some(name) = instance {
            touch(&root.path().join("isobox").join(name), &V2_FILES);
        }
        root
    }

    #[test]
    fn detects_v1() {
        let root = fake_v1(None);
        let (version, found) = CgroupController::detect(Some(root.path())).unwrap();
        assert_eq!(version, CgroupVersion::V1);
        assert_eq!(found, root.path());
    }

    #[test]
    fn detects_v2() {
        let root = fake_v2(None);
        let (version, _) = CgroupController::detect(Some(root.path())).unwrap();
        assert_eq!(version, CgroupVersion::V2);
    }

    #[test]
    fn hybrid_root_with_v1_memory_is_v1() {
        let root = fake_v1(None);
        touch(root.path(), &[("cgroup.controllers", "")]);
        let (version, _) = CgroupController::detect(Some(root.path())).unwrap();
        assert_eq!(version, CgroupVersion::V1);
    }

    #[test]
    fn detects_neither() {
        let empty = tempfile::tempdir().unwrap();
        let error = CgroupController::detect(Some(empty.path())).unwrap_err();
        assert!(
            matches!(&error, CgroupError::Unavailable(why) if why.contains("memory, pids, cpuacct")),
            "{error}"
        );

        // A v1 layout missing pids is not usable either.
        let partial = fake_v1(None);
        fs::remove_file(partial.path().join("pids/cgroup.procs")).unwrap();
        let error = CgroupController::detect(Some(partial.path())).unwrap_err();
        assert!(
            matches!(&error, CgroupError::Unavailable(why) if why.contains("pids")),
            "{error}"
        );

        // Like a hybrid system's `unified` mount: cgroup2 without controllers.
        let bare = tempfile::tempdir().unwrap();
        touch(bare.path(), &[("cgroup.controllers", "\n")]);
        let error = CgroupController::detect(Some(bare.path())).unwrap_err();
        assert!(
            matches!(&error, CgroupError::Unavailable(why) if why.contains("memory, pids")),
            "{error}"
        );

        let missing = empty.path().join("nowhere");
        assert!(matches!(
            CgroupController::detect(Some(&missing)),
            Err(CgroupError::Unavailable(_))
        ));
    }

    #[test]
    fn refuses_names_that_leave_the_parent() {
        let root = fake_v2(None);
        for name in ["", ".", "..", "a/b", "../x"] {
            assert!(
                CgroupController::new(Some(root.path()), name, true).is_err(),
                "{name:?}"
            );
        }
    }

    #[test]
    fn v1_instance_inherits_cpuset_and_lists_every_hierarchy() {
        let root = fake_v1(Some("box"));
        let cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
        assert_eq!(cgroup.version(), CgroupVersion::V1);
        assert!(cgroup.directory_fd().is_none());
        let canonical = root.path().canonicalize().unwrap();
        let expected: Vec<PathBuf> = V1_CONTROLLERS
            .iter()
            .map(|c| canonical.join(c).join("isobox/box"))
            .collect();
        assert_eq!(cgroup.paths(), expected);
        let cpuset = root.path().join("cpuset/isobox");
        assert_eq!(read(cpuset.join("cpuset.cpus")), "0-3");
        assert_eq!(read(cpuset.join("cpuset.mems")), "0");
        assert_eq!(read(cpuset.join("box/cpuset.cpus")), "0-3");
        assert_eq!(read(cpuset.join("box/cpuset.mems")), "0");
    }

    #[test]
    fn v1_refuses_a_populated_instance() {
        let root = fake_v1(Some("box"));
        let procs = root.path().join("pids/isobox/box/cgroup.procs");
        fs::write(&procs, format!("{IMPOSSIBLE_PID}\n")).unwrap();
        let error = CgroupController::new(Some(root.path()), "box", false).unwrap_err();
        assert!(matches!(error, CgroupError::Busy(_)), "{error}");
        fs::write(&procs, "").unwrap();
    }

    #[test]
    fn v1_writes_limits() {
        let root = fake_v1(Some("box"));
        let cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
        let dir = |controller: &str| root.path().join(controller).join("isobox/box");
        cgroup
            .apply_limits(&CgroupLimits {
                memory: Some(64 << 20),
                pids: Some(10),
                cpu_shares: Some(512),
                cpuset_cpus: Some("1".into()),
                cpuset_mems: Some("0".into()),
            })
            .unwrap();
        assert_eq!(
            read(dir("memory").join("memory.limit_in_bytes")),
            "67108864"
        );
        assert_eq!(
            read(dir("memory").join("memory.memsw.limit_in_bytes")),
            "67108864"
        );
        assert_eq!(read(dir("pids").join("pids.max")), "10");
        assert_eq!(read(dir("cpu").join("cpu.shares")), "512");
        assert_eq!(read(dir("cpuset").join("cpuset.cpus")), "1");
        assert_eq!(read(dir("cpuset").join("cpuset.mems")), "0");

        cgroup.apply_limits(&CgroupLimits::default()).unwrap();
        assert_eq!(read(dir("memory").join("memory.limit_in_bytes")), "-1");
        assert_eq!(
            read(dir("memory").join("memory.memsw.limit_in_bytes")),
            "-1"
        );
        assert_eq!(read(dir("pids").join("pids.max")), "max");
        assert_eq!(read(dir("cpu").join("cpu.shares")), "1024");
        // Unset cpuset values stay as inherited.
        assert_eq!(read(dir("cpuset").join("cpuset.cpus")), "1");
    }

    #[test]
    fn v1_without_swap_accounting_turns_swappiness_off() {
        let root = fake_v1(Some("box"));
        let memory = root.path().join("memory/isobox/box");
        fs::remove_file(memory.join("memory.memsw.limit_in_bytes")).unwrap();
        let cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
        let limits = CgroupLimits {
            memory: Some(1 << 20),
            ..CgroupLimits::default()
        };
        cgroup.apply_limits(&limits).unwrap();
        assert_eq!(read(memory.join("memory.limit_in_bytes")), "1048576");
        assert_eq!(read(memory.join("memory.swappiness")), "0");
        assert!(!memory.join("memory.memsw.limit_in_bytes").exists());
    }

    #[test]
    fn v1_reads_usage() {
        let root = fake_v1(Some("box"));
        let cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
        let dir = |controller: &str| root.path().join(controller).join("isobox/box");
        touch(&dir("cpuacct"), &[("cpuacct.usage", "2500000000\n")]);
        touch(
            &dir("memory"),
            &[
                ("memory.max_usage_in_bytes", "1048576\n"),
                (
                    "memory.oom_control",
                    "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
                ),
            ],
        );
        touch(&dir("pids"), &[("pids.events", "max 4\n")]);
        let expected = CgroupUsage {
            cpu_time: Duration::from_millis(2500),
            memory_peak: 1 << 20,
            oom_kills: 3,
            pids_limit_hits: 4,
        };
        assert_eq!(cgroup.usage().unwrap(), expected);
        assert_eq!(cgroup.cpu_time().unwrap(), Duration::from_millis(2500));

        // Older kernels lack pids.events and the oom_kill line.
        fs::remove_file(dir("pids").join("pids.events")).unwrap();
        touch(
            &dir("memory"),
            &[("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n")],
        );
        let usage = cgroup.usage().unwrap();
        assert_eq!((usage.oom_kills, usage.pids_limit_hits), (0, 0));

        touch(&dir("memory"), &[("memory.max_usage_in_bytes", "lots\n")]);
        assert!(matches!(cgroup.usage(), Err(CgroupError::Parse { .. })));
    }

    #[test]
    fn v1_add_process_joins_every_hierarchy() {
        let root = fake_v1(Some("box"));
        let cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
        cgroup.add_process(IMPOSSIBLE_PID).unwrap();
        for dir in cgroup.paths() {
            assert_eq!(read(dir.join("cgroup.procs")), IMPOSSIBLE_PID.to_string());
            // Empty again, so that dropping the controller finds no task.
            fs::write(dir.join("cgroup.procs"), "").unwrap();
        }
    }

    #[test]
    fn v1_failed_write_is_an_error_only_when_strict() {
        for strict in [true, false] {
            let root = fake_v1(Some("box"));
            let pids_max = root.path().join("pids/isobox/box/pids.max");
            fs::remove_file(&pids_max).unwrap();
            fs::create_dir(&pids_max).unwrap();
            let cgroup = CgroupController::new(Some(root.path()), "box", strict).unwrap();
            let outcome = cgroup.apply_limits(&CgroupLimits::default());
            assert_eq!(outcome.is_err(), strict, "strict={strict}: {outcome:?}");
            // The writes after the failed one still happen when not strict.
            let shares = root.path().join("cpu/isobox/box/cpu.shares");
            assert_eq!(read(shares) == "1024", !strict);
        }
    }

    #[test]
    fn v2_instance_enables_controllers_top_down() {
        let root = fake_v2(Some("box"));
        let cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
        assert_eq!(cgroup.version(), CgroupVersion::V2);
        assert_eq!(cgroup.paths(), [root.path().join("isobox/box")]);
        assert!(cgroup.directory_fd().is_some());
        for dir in ["", "isobox", "isobox/box"] {
            let control = root.path().join(dir).join("cgroup.subtree_control");
            assert_eq!(read(control), "+memory +pids +cpu +cpuset", "{dir}");
        }
    }

    #[test]
    fn v2_enables_only_offered_controllers() {
        let root = fake_v2(Some("box"));
        touch(root.path(), &[("cgroup.controllers", "memory io pids\n")]);
        let _cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
        assert_eq!(
            read(root.path().join("cgroup.subtree_control")),
            "+memory +pids"
        );
    }

    #[test]
    fn v2_writes_limits() {
        let root = fake_v2(Some("box"));
        let cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
        let dir = root.path().join("isobox/box");
        cgroup
            .apply_limits(&CgroupLimits {
                memory: Some(64 << 20),
                pids: Some(10),
                cpu_shares: Some(1024),
                cpuset_cpus: Some("0-1".into()),
                cpuset_mems: Some("0".into()),
            })
            .unwrap();
        assert_eq!(read(dir.join("memory.max")), "67108864");
        assert_eq!(read(dir.join("memory.swap.max")), "0");
        assert_eq!(read(dir.join("pids.max")), "10");
        assert_eq!(read(dir.join("cpu.weight")), "100");
        assert_eq!(read(dir.join("cpuset.cpus")), "0-1");
        assert_eq!(read(dir.join("cpuset.mems")), "0");

        for (shares, weight) in [(2, "1"), (262_144, "10000")] {
            let limits = CgroupLimits {
                cpu_shares: Some(shares),
                ..CgroupLimits::default()
            };
            cgroup.apply_limits(&limits).unwrap();
            assert_eq!(read(dir.join("cpu.weight")), weight, "shares {shares}");
        }

        cgroup.apply_limits(&CgroupLimits::default()).unwrap();
        assert_eq!(read(dir.join("memory.max")), "max");
        assert_eq!(read(dir.join("memory.swap.max")), "max");
        assert_eq!(read(dir.join("pids.max")), "max");
        assert_eq!(read(dir.join("cpu.weight")), "100");

        // Without swap accounting there is no memory.swap.max to write.
        fs::remove_file(dir.join("memory.swap.max")).unwrap();
        let limits = CgroupLimits {
            memory: Some(1 << 20),
            ..CgroupLimits::default()
        };
        cgroup.apply_limits(&limits).unwrap();
        assert_eq!(read(dir.join("memory.max")), "1048576");
        assert!(!dir.join("memory.swap.max").exists());
    }

    #[test]
    fn v2_reads_usage() {
        let root = fake_v2(Some("box"));
        let cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
        let dir = root.path().join("isobox/box");
        touch(
            &dir,
            &[
                (
                    "cpu.stat",
                    "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n",
                ),
                ("memory.peak", "8388608\n"),
                ("memory.current", "4096\n"),
                ("memory.events", "low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\n"),
                ("pids.events", "max 7\n"),
            ],
        );
        let expected = CgroupUsage {
            cpu_time: Duration::from_millis(1500),
            memory_peak: 8 << 20,
            oom_kills: 1,
            pids_limit_hits: 7,
        };
        assert_eq!(cgroup.usage().unwrap(), expected);

        // Before Linux 5.19 there is no memory.peak.
        fs::remove_file(dir.join("memory.peak")).unwrap();
        assert_eq!(cgroup.usage().unwrap().memory_peak, 4096);

        // Controllers that are off leave their counters at 0.
        for file in ["memory.current", "memory.events", "pids.events"] {
            fs::remove_file(dir.join(file)).unwrap();
        }
        let usage = cgroup.usage().unwrap();
        assert_eq!(
            (usage.memory_peak, usage.oom_kills, usage.pids_limit_hits),
            (0, 0, 0)
        );

        touch(&dir, &[("pids.events", "max many\n")]);
        assert!(matches!(cgroup.usage(), Err(CgroupError::Parse { .. })));
    }

    #[test]
    fn v2_without_memory_peak_keeps_the_largest_sample() {
        let root = fake_v2(Some("box"));
        let dir = root.path().join("isobox/box");
        // Before Linux 5.19: no memory.peak from the start.
        fs::remove_file(dir.join("memory.peak")).unwrap();
        let cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
        for current in ["5000000\n", "7000000\n", "100\n"] {
            touch(&dir, &[("memory.current", current)]);
            cgroup.cpu_time().unwrap();
        }
        assert_eq!(cgroup.usage().unwrap().memory_peak, 7_000_000);
        // A final reading above every sample wins.
        touch(&dir, &[("memory.current", "9000000\n")]);
        assert_eq!(cgroup.usage().unwrap().memory_peak, 9_000_000);
    }

    #[test]
    fn v2_enables_only_missing_controllers() {
        let root = fake_v2(Some("box"));
        // As the kernel lists them: no `+`, some already enabled.
        touch(root.path(), &[("cgroup.subtree_control", "cpu memory\n")]);
        let _cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
        assert_eq!(
            read(root.path().join("cgroup.subtree_control")),
            "+pids +cpuset"
        );
        // Everything enabled already: nothing is written (which would need
        // write permission on a delegated cgroup).
        let shared = root.path().join("isobox/cgroup.subtree_control");
        touch(
            &root.path().join("isobox"),
            &[("cgroup.subtree_control", "cpuset cpu memory pids\n")],
        );
        let _again = CgroupController::new(Some(root.path()), "other", false);
        assert_eq!(read(&shared), "cpuset cpu memory pids\n");
    }

    #[test]
    fn v2_add_process_writes_the_pid() {
        let root = fake_v2(Some("box"));
        let cgroup = CgroupController::new(Some(root.path()), "box", true).unwrap();
        let procs = root.path().join("isobox/box/cgroup.procs");
        cgroup.add_process(IMPOSSIBLE_PID).unwrap();
        assert_eq!(read(&procs), IMPOSSIBLE_PID.to_string());
        fs::write(&procs, "").unwrap();
    }

    #[test]
    fn v2_failed_write_is_an_error_only_when_strict() {
        for strict in [true, false] {
            let root = fake_v2(Some("box"));
            let memory_max = root.path().join("isobox/box/memory.max");
            fs::remove_file(&memory_max).unwrap();
            fs::create_dir(&memory_max).unwrap();
            let cgroup = CgroupController::new(Some(root.path()), "box", strict).unwrap();
            let limits = CgroupLimits {
                pids: Some(3),
                ..CgroupLimits::default()
            };
            let outcome = cgroup.apply_limits(&limits);
            assert_eq!(outcome.is_err(), strict, "strict={strict}: {outcome:?}");
            let pids_max = read(root.path().join("isobox/box/pids.max"));
            assert_eq!(pids_max == "3", !strict);
        }
    }

    #[test]
    fn v2_strict_new_fails_when_controllers_cannot_be_enabled() {
        let root = fake_v2(Some("box"));
        fs::remove_file(root.path().join("isobox/cgroup.subtree_control")).unwrap();
        assert!(CgroupController::new(Some(root.path()), "box", true).is_err());
        // Not strict: the failure is logged and the cgroup is usable.
        assert!(CgroupController::new(Some(root.path()), "box", false).is_ok());
    }

    #[test]
    fn v2_remove_takes_children_along_and_is_idempotent() {
        // Created by new() itself, hence empty directories that rmdir can
        // take; the control files are missing, so only non-strict works.
        let root = fake_v2(None);
        let mut cgroup = CgroupController::new(Some(root.path()), "box", false).unwrap();
        let mut child = cgroup.create_child("run").unwrap();
        assert_eq!(child.paths(), [root.path().join("isobox/box/run")]);
        assert!(child.directory_fd().is_some());
        let paths = cgroup.paths();
        cgroup.remove().unwrap();
        assert!(paths.iter().all(|p| !p.exists()));
        assert!(
            root.path().join("isobox").is_dir(),
            "the shared parent stays"
        );
        cgroup.remove().unwrap();
        child.remove().unwrap();
    }

    #[test]
    fn v2_new_rolls_back_what_it_created() {
        let root = fake_v2(None);
        // The instance directory is created, then subtree_control fails.
        assert!(CgroupController::new(Some(root.path()), "box", true).is_err());
        assert!(!root.path().join("isobox/box").exists());
    }
}
