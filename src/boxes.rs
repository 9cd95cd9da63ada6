//! Boxes in isolate's model: numbered, long-lived sandboxes on disk.
//!
//! Box N lives at `<box_root>/<N>`: its program sees `<box_root>/<N>/box`
//! as `/box`, runs as uid `first_uid + N` and gid `first_gid + N`, and is
//! measured in the cgroup `box-<N>` (the executor's instance, see
//! [`IsolateConfig::instance_id`]) below the installation's own cgroup
//! ([`CgRoot`]), so that two installations never share a box cgroup. A box is created by [`LockedBox::init`],
//! used by any number of runs, and removed by [`LockedBox::cleanup`].
//!
//! Every operation on a box holds its lock: an exclusive `flock` on
//! `<lock_root>/<N>` ([`Sandbox::lock`]). The kernel drops the lock when its
//! holder dies, so a keeper killed in the middle of a run never leaves its
//! box locked, and two runs never share a box.
//!
//! The layout comes from a configuration file in isolate's syntax
//! ([`BoxesConfig`]).
//!
//! [`IsolateConfig::instance_id`]: crate::IsolateConfig::instance_id

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cgroup::{CgroupController, CgroupError, CgroupVersion, Placement};
use crate::config::IsolateConfig;
use crate::fstree::{Linked, Reset, ResetReport};

/// Where the configuration file is unless [`CONFIG_ENV`] names another.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/isobox.conf";

/// The environment variable naming another configuration file.
pub const CONFIG_ENV: &str = "ISOBOX_CONFIG";

/// Default directory holding the boxes.
pub const DEFAULT_BOX_ROOT: &str = "/var/local/lib/isobox";

/// Default directory holding the lock files of the boxes.
pub const DEFAULT_LOCK_ROOT: &str = "/run/isobox/locks";

/// Default number of boxes (ids `0..num_boxes`).
pub const DEFAULT_NUM_BOXES: u32 = 1000;

/// The file system every box gets when `--init` is not given `-q`: 1 GiB
/// and 65536 inodes. Whatever a program leaves in its box, the keeper's
/// work on it (handing it over before a run, back after it, removing it)
/// is bounded by these numbers.
pub const DEFAULT_QUOTA: Quota = Quota {
    blocks: 1 << 20,
    inodes: 65536,
};

/// Name of the file, next to the `box` directory, that marks a completely
/// initialized box and records how it was initialized. The program never
/// sees it: only `box` is mounted into the sandbox.
const STATE_FILE: &str = ".isobox-state";

/// The box's empty network namespace, kept by a bind mount from `--init`
/// to `--cleanup`: making one costs about a millisecond, on every run.
const NETNS_FILE: &str = ".isobox-netns";

/// `<pid> <start time>` of the proxy of the run in progress, written by the
/// keeper ([`IsolateConfig::proxy_record`]): cleanup's handle on a box's
/// processes when the box has no cgroup.
const PROXY_FILE: &str = ".isobox-proxy";

/// How long cleanup waits for leftover processes to disappear.
const LEFTOVER_GRACE: Duration = Duration::from_secs(5);

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
    #[error("{0}")]
    BadQuota(String),
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
    /// The box tree holds something that cleanup must not touch.
    #[error("{0}")]
    Unsafe(String),
    /// Mounting or unmounting the box's file system failed.
    #[error("{0}")]
    Mount(String),
    /// Processes of the box could not be stopped.
    #[error("{0}")]
    Leftovers(String),
    /// A cgroup operation failed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
}

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> BoxError {
    let context = context.into();
    move |source| BoxError::Io { context, source }
}

/// Settings of one box from the configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PerBoxConfig {
    /// CPUs the box may use (cpuset syntax).
    pub cpus: Option<String>,
    /// Memory nodes the box may use (cpuset syntax).
    pub mems: Option<String>,
}

/// The configuration file: where boxes live and who they run as.
///
/// The syntax is isolate's: `key = value` lines, blank lines and lines
/// starting with `#` ignored. Keys: `box_root`, `lock_root`, `cg_root`
/// (see [`CgRoot`]), `first_uid`, `first_gid`, `num_boxes`,
/// `restricted_init` (0 or 1), `syscall_flags` (isolate's system-call
/// restrictions, a number as in isolate: 65535 all, 0 none), and per box
/// `box<N>.cpus` and `box<N>.mems`; isobox adds `box_quota = BLOCKS,INODES`,
/// the file system of a box made without `-q`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxesConfig {
    /// Directory holding box N at `<box_root>/<N>`.
    pub box_root: PathBuf,
    /// Directory holding the lock file of box N at `<lock_root>/<N>`.
    pub lock_root: PathBuf,
    /// Where the boxes' cgroups live.
    pub cg_root: CgRoot,
    /// uid of box 0.
    pub first_uid: u32,
    /// gid of box 0.
    pub first_gid: u32,
    /// Number of boxes: ids are `0..num_boxes`.
    pub num_boxes: u32,
    /// Only root may initialize boxes.
    pub restricted_init: bool,
    /// isolate's `syscall_flags`, the default of `--syscalls`.
    pub syscall_flags: u32,
    /// Settings of single boxes, by id.
    pub per_box: BTreeMap<u32, PerBoxConfig>,
    /// The file system of a box initialized without `-q` (key
    /// `box_quota = BLOCKS,INODES`, an isobox extension).
    pub default_quota: Quota,
}

impl Default for BoxesConfig {
    fn default() -> Self {
        Self {
            box_root: PathBuf::from(DEFAULT_BOX_ROOT),
            lock_root: PathBuf::from(DEFAULT_LOCK_ROOT),
            cg_root: CgRoot::Installation,
            first_uid: crate::config::DEFAULT_BOX_ID_BASE,
            first_gid: crate::config::DEFAULT_BOX_ID_BASE,
            num_boxes: DEFAULT_NUM_BOXES,
            restricted_init: false,
            syscall_flags: crate::config::syscall_flags::ALL,
            per_box: BTreeMap::new(),
            default_quota: DEFAULT_QUOTA,
        }
    }
}

/// The configuration file to use: [`CONFIG_ENV`] when set and not empty,
/// [`DEFAULT_CONFIG_PATH`] otherwise.
pub fn config_path(env_value: Option<&std::ffi::OsStr>) -> PathBuf {
    match env_value {
        Some(value) if !value.is_empty() => PathBuf::from(value),
        _ => PathBuf::from(DEFAULT_CONFIG_PATH),
    }
}

impl BoxesConfig {
    /// Reads the configuration file at `path`; a missing file means the
    /// built-in defaults.
    pub fn load(path: &Path) -> Result<Self, BoxError> {
        match fs::read(path) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|_| BoxError::ConfigInvalid {
                    path: path.to_path_buf(),
                    reason: "the file is not valid UTF-8".into(),
                })?;
                Self::parse(&text, path)
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(BoxError::ConfigRead {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parses the text of a configuration file; `path` only names it in
    /// errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, BoxError> {
        let mut config = Self::default();
        for (index, raw) in text.lines().enumerate() {
            let line_error = |reason: String| BoxError::ConfigLine {
                path: path.to_path_buf(),
                line: index + 1,
                reason,
            };
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(line_error(format!(
                    "expected 'key = value', found {line:?}"
                )));
            };
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() || key.contains(char::is_whitespace) {
                return Err(line_error(format!("{key:?} is not a configuration key")));
            }
            config.set(key, value).map_err(line_error)?;
        }
        config.check().map_err(|reason| BoxError::ConfigInvalid {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(config)
    }

    /// Applies one `key = value` entry.
    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let absolute = |value: &str| {
            if value.starts_with('/') {
                Ok(PathBuf::from(value))
            } else {
                Err(format!("{key} must be an absolute path, not {value:?}"))
            }
        };
        match key {
            "box_root" => self.box_root = absolute(value)?,
            "lock_root" => self.lock_root = absolute(value)?,
            "cg_root" => {
                self.cg_root = match value.strip_prefix("auto:") {
                    _ if value == "auto" => CgRoot::Installation,
                    Some(file) => CgRoot::Auto(absolute(file)?),
                    None => CgRoot::Path(absolute(value)?),
                }
            }
            "box_quota" => {
                let (blocks, inodes) = value
                    .split_once(',')
                    .ok_or_else(|| format!("box_quota must be BLOCKS,INODES, not {value:?}"))?;
                let quota = Quota {
                    blocks: number(key, blocks.trim())?.into(),
                    inodes: number(key, inodes.trim())?.into(),
                };
                quota.check().map_err(|err| err.to_string())?;
                self.default_quota = quota;
            }
            "first_uid" => self.first_uid = number(key, value)?,
            "first_gid" => self.first_gid = number(key, value)?,
            "num_boxes" => self.num_boxes = number(key, value)?,
            "restricted_init" => {
                self.restricted_init = match value {
                    "0" => false,
                    "1" => true,
                    _ => return Err(format!("restricted_init must be 0 or 1, not {value:?}")),
                }
            }
            // isolate reads it as a C int; a negative one is all bits.
            "syscall_flags" => {
                self.syscall_flags = value
                    .parse::<i32>()
                    .map_err(|_| format!("syscall_flags must be a whole number, not {value:?}"))?
                    as u32
            }
            _ => {
                let Some((section, item)) = key.split_once('.') else {
                    return Err(format!("unknown configuration item {key:?}"));
                };
                let id = section
                    .strip_prefix("box")
                    .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        format!("unknown configuration section {section:?} (expected box<N>)")
                    })?;
                let id: u32 = number(section, id)?;
                let per_box = self.per_box.entry(id).or_default();
                match item {
                    "cpus" => per_box.cpus = Some(value.to_string()),
                    "mems" => per_box.mems = Some(value.to_string()),
                    _ => return Err(format!("unknown per-box configuration item {item:?}")),
                }
            }
        }
        Ok(())
    }

    /// Checks the whole configuration.
    fn check(&self) -> Result<(), String> {
        if self.first_uid == 0 || self.first_gid == 0 {
            return Err("first_uid and first_gid must not be 0 (box 0 would run as root)".into());
        }
        if self.num_boxes == 0 {
            return Err("num_boxes must be at least 1".into());
        }
        if self.first_uid.checked_add(self.num_boxes).is_none()
            || self.first_gid.checked_add(self.num_boxes).is_none()
        {
            return Err("first_uid/first_gid + num_boxes is beyond the largest id".into());
        }
        Ok(())
    }

    /// Box `id`, when it is below `num_boxes`.
    pub fn sandbox(&self, id: u64) -> Result<Sandbox, BoxError> {
        let out_of_range = || BoxError::OutOfRange {
            id,
            max: self.num_boxes.saturating_sub(1),
        };
        let index = u32::try_from(id).map_err(|_| out_of_range())?;
        if index >= self.num_boxes {
            return Err(out_of_range());
        }
        let dir = self.box_root.join(index.to_string());
        let per_box = self.per_box.get(&index).cloned().unwrap_or_default();
        Ok(Sandbox {
            id: index,
            box_dir: dir.join("box"),
            dir,
            lock_path: self.lock_root.join(index.to_string()),
            lock_root: self.lock_root.clone(),
            uid: self.first_uid + index,
            gid: self.first_gid + index,
            cg_root: self.cg_root.clone(),
            installation: self.installation_name(),
            per_box,
            default_quota: self.default_quota,
        })
    }
}

impl BoxesConfig {
    /// The name of this installation's own cgroup below `isobox`:
    /// `boxes-` and a hash of `box_root` and `lock_root`. Two
    /// configurations that differ in either can run the same box number
    /// at once, so they get different names; the hash is FNV-1a, fixed
    /// here so that the name never changes with the compiler.
    pub fn installation_name(&self) -> String {
        use std::os::unix::ffi::OsStrExt;
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let roots = [self.box_root.as_os_str(), self.lock_root.as_os_str()];
        for byte in roots.join(std::ffi::OsStr::new("\0")).as_bytes() {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("boxes-{hash:016x}")
    }

    /// Where this installation's box cgroups go (see [`CgRoot`]).
    pub fn cgroup_placement(&self) -> Result<Placement, BoxError> {
        self.cg_root.placement(&self.installation_name())
    }
}

/// `cg_root` of the configuration file: the cgroup under which the boxes'
/// cgroups `box-<N>` live.
///
/// Every installation gets a subtree of its own, so that one
/// installation's `--cleanup` of box 7 never touches another's box 7:
///
/// - not set, or `auto` ([`Installation`](Self::Installation)):
///   `isobox/boxes-<hash>` below the root of the hierarchy (of every v1
///   hierarchy), named by [`BoxesConfig::installation_name`];
/// - a path on cgroup v2 ([`Path`](Self::Path)): isolate 2.x's meaning,
///   an existing cgroup (such as the subtree systemd delegates to
///   isolate's service) holding `box-<N>` directly; isobox writes only in
///   it and below. Two installations given the same path share it, as
///   they would under isolate;
/// - a path holding cgroup v1 hierarchies: isolate 1.x's meaning, the
///   root of the cgroup file system (`/sys/fs/cgroup`); the boxes then go
///   in the installation's own subtree below it, as when not set, because
///   a v1 cgroup is one directory per hierarchy, not one path;
/// - `auto:FILE` ([`Auto`](Self::Auto)): isolate 2.x's service writes the
///   path of its delegated cgroup into FILE; it is read at each use and
///   must name a cgroup v2 directory. A missing FILE is an error for
///   anything that uses cgroups (as in isolate: boxes must not land
///   outside the subtree the service keeps), and is ignored otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CgRoot {
    /// The installation's own subtree below `isobox`.
    #[default]
    Installation,
    /// A cgroup v2 directory, or the root of the v1 hierarchies.
    Path(PathBuf),
    /// The file from which the cgroup v2 directory is read.
    Auto(PathBuf),
}

impl CgRoot {
    /// Where the box cgroups of the installation `installation` go.
    pub fn placement(&self, installation: &str) -> Result<Placement, BoxError> {
        let own = Path::new(crate::cgroup::DEFAULT_PARENT).join(installation);
        let placement = match self {
            Self::Installation => crate::cgroup::place(None, Some(&own))?,
            Self::Path(path) => match CgroupController::detect(Some(path))? {
                (CgroupVersion::V1, _) => crate::cgroup::place(Some(path), Some(&own))?,
                (CgroupVersion::V2, _) => crate::cgroup::place(None, Some(path))?,
            },
            Self::Auto(file) => {
                let text = fs::read_to_string(file).map_err(|source| BoxError::Io {
                    context: format!(
                        "cg_root = auto:{}: cannot read the cgroup path (isolate's systemd \
                         service writes it; is it running?)",
                        file.display()
                    ),
                    source,
                })?;
                let path = Path::new(text.lines().next().unwrap_or("").trim());
                if !path.is_absolute() {
                    return Err(BoxError::Unsafe(format!(
                        "cg_root = auto:{}: {path:?} is not an absolute path",
                        file.display()
                    )));
                }
                crate::cgroup::place(None, Some(path))?
            }
        };
        Ok(placement)
    }
}

fn number(key: &str, value: &str) -> Result<u32, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{key} must be a whole number, not {value:?}"));
    }
    value
        .parse()
        .map_err(|_| format!("{key} {value} is out of range"))
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

/// How a box was initialized, as recorded in its state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxState {
    /// Initialized for runs with cgroups (isolate's `--cg`).
    pub cgroups: bool,
    /// uid of the box's owner, who gets the files back after each run.
    pub owner_uid: u32,
    /// gid of the box's owner.
    pub owner_gid: u32,
}

impl BoxState {
    fn render(&self) -> String {
        format!(
            "cgroups={}\nowner={}:{}\n",
            u8::from(self.cgroups),
            self.owner_uid,
            self.owner_gid
        )
    }

    fn parse(text: &str) -> Option<Self> {
        let mut cgroups = None;
        let mut owner = None;
        for line in text.lines() {
            match line.split_once('=')? {
                ("cgroups", "0") => cgroups = Some(false),
                ("cgroups", "1") => cgroups = Some(true),
                ("owner", ids) => {
                    let (uid, gid) = ids.split_once(':')?;
                    owner = Some((uid.parse().ok()?, gid.parse().ok()?));
                }
                _ => return None,
            }
        }
        let (owner_uid, owner_gid) = owner?;
        Some(Self {
            cgroups: cgroups?,
            owner_uid,
            owner_gid,
        })
    }
}

/// The file system of a box: the box directory becomes a tmpfs of at most
/// `blocks` KiB and `inodes` files and directories. Both must be positive
/// (tmpfs reads 0 as "no limit", which is never what a quota means).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Size in KiB.
    pub blocks: u64,
    /// Number of inodes.
    pub inodes: u64,
}

impl Quota {
    /// Refuses a zero size or inode count.
    pub fn check(&self) -> Result<(), BoxError> {
        if self.blocks == 0 || self.inodes == 0 {
            return Err(BoxError::BadQuota(format!(
                "a box quota of {} KiB and {} inodes is refused: both must be at least 1",
                self.blocks, self.inodes
            )));
        }
        Ok(())
    }
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

    /// Takes the box's lock; with `wait`, blocks until it is free,
    /// otherwise fails with [`BoxError::Busy`] when someone holds it.
    pub fn lock(self, wait: bool) -> Result<LockedBox, BoxError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&self.lock_root)
            .map_err(io_error(format!(
                "cannot create the lock directory {}",
                self.lock_root.display()
            )))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&self.lock_path)
            .map_err(io_error(format!(
                "cannot open the lock file {}",
                self.lock_path.display()
            )))?;
        let locked = if wait {
            file.lock()
        } else {
            match file.try_lock() {
                Ok(()) => Ok(()),
                Err(fs::TryLockError::WouldBlock) => return Err(BoxError::Busy(self.id)),
                Err(fs::TryLockError::Error(err)) => Err(err),
            }
        };
        locked.map_err(io_error(format!(
            "cannot lock {}",
            self.lock_path.display()
        )))?;
        Ok(LockedBox {
            sandbox: self,
            _lock: file,
        })
    }
}

/// A box whose lock this process holds (released when dropped, or by the
/// kernel when the process dies).
#[derive(Debug)]
pub struct LockedBox {
    sandbox: Sandbox,
    _lock: File,
}

impl std::ops::Deref for LockedBox {
    type Target = Sandbox;

    fn deref(&self) -> &Sandbox {
        &self.sandbox
    }
}

impl LockedBox {
    /// Creates the box, after removing whatever was there (isolate 2.x
    /// resets an existing box): `<box_root>/<N>` (0755) and `box` (0700,
    /// owned by `state`'s owner), a size- and inode-limited file system of
    /// its own: `quota`, or the configuration's default quota. With
    /// cgroups, first checks that a cgroup hierarchy is usable.
    pub fn init(&self, state: BoxState, quota: Option<Quota>) -> Result<(), BoxError> {
        let quota = quota.unwrap_or(self.default_quota);
        quota.check()?;
        if state.cgroups {
            self.cgroup_placement()?;
        }
        self.cleanup()?;
        let create = |path: &Path, recursive: bool, mode: u32| {
            fs::DirBuilder::new()
                .recursive(recursive)
                .mode(mode)
                .create(path)
                .map_err(io_error(format!("cannot create {}", path.display())))
        };
        if let Some(root) = self.dir.parent() {
            create(root, true, 0o755)?;
        }
        create(&self.dir, false, 0o755)?;
        create(&self.box_dir, false, 0o700)?;
        mount_quota(&self.box_dir, self.id, quota)?;
        let owner = (Some(state.owner_uid), Some(state.owner_gid));
        std::os::unix::fs::chown(&self.box_dir, owner.0, owner.1)
            .map_err(io_error(format!("cannot chown {}", self.box_dir.display())))?;
        fs::set_permissions(&self.box_dir, fs::Permissions::from_mode(0o700))
            .map_err(io_error(format!("cannot chmod {}", self.box_dir.display())))?;
        self.keep_network_namespace()?;
        let state_path = self.dir.join(STATE_FILE);
        fs::write(&state_path, state.render())
            .map_err(io_error(format!("cannot write {}", state_path.display())))?;
        Ok(())
    }

    /// How the box was initialized, or why it cannot be used.
    pub fn state(&self) -> Result<BoxState, BoxError> {
        let is_dir = |path: &Path| fs::symlink_metadata(path).is_ok_and(|meta| meta.is_dir());
        if !is_dir(&self.dir) {
            return Err(BoxError::NotInitialized(self.id));
        }
        let state = fs::read_to_string(self.dir.join(STATE_FILE))
            .ok()
            .and_then(|text| BoxState::parse(&text));
        let state = match state {
            Some(state) if is_dir(&self.box_dir) => state,
            _ => return Err(BoxError::HalfInitialized(self.id)),
        };
        // Only a file system of its own bounds what the keeper walks.
        let device = |path: &Path| fs::symlink_metadata(path).map(|meta| meta.dev()).ok();
        if device(&self.box_dir) == device(&self.dir) {
            return Err(BoxError::Unbounded(self.id));
        }
        Ok(state)
    }

    /// [`state`](Self::state), checking that the box was initialized in
    /// the same cgroup mode as the run wants.
    pub fn ready_for_run(&self, cgroups: bool) -> Result<BoxState, BoxError> {
        let state = self.state()?;
        if state.cgroups != cgroups {
            return Err(BoxError::CgroupMode {
                id: self.id,
                initialized_with_cgroups: state.cgroups,
            });
        }
        Ok(state)
    }

    /// Removes the box: stops any process left of it, removes its cgroup,
    /// unmounts its quota file system and deletes `<box_root>/<N>` without
    /// following any symlink in it. A box that does not exist, or exists
    /// only in part, is fine.
    pub fn cleanup(&self) -> Result<(), BoxError> {
        self.stop_proxy()?;
        self.remove_cgroup()?;
        self.unmount_all()?;
        match fs::symlink_metadata(&self.dir) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(BoxError::Io {
                context: format!("cannot stat {}", self.dir.display()),
                source,
            }),
            // The walk never follows symlinks: a link planted in the box is
            // removed, not what it points to.
            Ok(meta) if meta.is_dir() => crate::fstree::remove_tree(&self.dir)
                .map_err(io_error(format!("cannot remove {}", self.dir.display()))),
            Ok(_) => fs::remove_file(&self.dir)
                .map_err(io_error(format!("cannot remove {}", self.dir.display()))),
        }
    }

    /// Hands the box to its program before a run: every file and
    /// directory (the box itself included) to the box's uid and gid, with
    /// set-id bits and group/other write permission stripped; special
    /// files (symlinks, fifos, sockets, devices) removed, so no planted
    /// link or fifo waits for the run. Files with more than one link are
    /// left alone (they may be host files hard-linked into the box; the
    /// program can only use them as their own permissions allow).
    ///
    /// See [`crate::fstree::reset_tree`] for how each change is made.
    pub fn prepare_for_run(&self) -> Result<ResetReport, BoxError> {
        self.reset(Reset {
            uid: self.uid,
            gid: self.gid,
            root_mode: 0o700,
            keep_special: false,
            linked: Linked::Skip,
        })
    }

    /// Gives the box back to its owner after a run: everything to the
    /// owner, the box directory 0700, set-id bits and group/other write
    /// permission stripped everywhere; special files removed unless
    /// `keep_special` (isolate's `--special-files`), and files with more
    /// than one link unlinked from the box (the program may have linked
    /// its files to each other; none of them may stay set-id or writable
    /// by the box's uid).
    pub fn give_back(&self, state: &BoxState, keep_special: bool) -> Result<ResetReport, BoxError> {
        self.reset(Reset {
            uid: state.owner_uid,
            gid: state.owner_gid,
            root_mode: 0o700,
            keep_special,
            linked: Linked::Remove,
        })
    }

    fn reset(&self, reset: Reset) -> Result<ResetReport, BoxError> {
        let failed = io_error(format!("cannot reset {}", self.box_dir.display()));
        let root = crate::fstree::open_root(&self.box_dir)
            .map_err(io_error(format!("cannot open {}", self.box_dir.display())))?;
        let report = crate::fstree::reset_tree(root, &reset).map_err(failed)?;
        if report.linked > 0 {
            tracing::warn!(
                "box {}: {} file(s) with more than one link {}",
                self.id,
                report.linked,
                match reset.linked {
                    Linked::Skip => "left untouched",
                    Linked::Remove => "unlinked from the box",
                }
            );
        }
        Ok(report)
    }

    /// The device of the box's own file system (what `st_dev` says of
    /// every file inside the box).
    pub fn box_device(&self) -> Result<u64, BoxError> {
        fs::symlink_metadata(&self.box_dir)
            .map(|meta| meta.dev())
            .map_err(io_error(format!("cannot stat {}", self.box_dir.display())))
    }

    /// Makes the box's empty network namespace and pins it at
    /// [`NETNS_FILE`] (unmounted by cleanup with the box's other mounts).
    fn keep_network_namespace(&self) -> Result<(), BoxError> {
        let target = self.dir.join(NETNS_FILE);
        let failed = |err: io::Error| {
            BoxError::Mount(format!(
                "keeping the box's network namespace at {}: {err}",
                target.display()
            ))
        };
        let netns = crate::sys::new_network_namespace().map_err(failed)?;
        File::create(&target).map_err(failed)?;
        use std::os::fd::AsRawFd;
        let source = PathBuf::from(format!("/proc/self/fd/{}", netns.as_raw_fd()));
        crate::sys::bind_mount(&source, &target).map_err(|err| {
            // An unmounted file would be taken for the namespace later.
            let _ = fs::remove_file(&target);
            failed(err)
        })
    }

    /// Points `config` at this box: its directory as the working
    /// directory, its uid and gid, its cgroup name and place (when the run
    /// uses cgroups), its proxy record, and its cpuset from the
    /// configuration file. Runs join the box's own empty network namespace.
    pub fn configure(&self, config: &mut IsolateConfig) -> Result<(), BoxError> {
        config.instance_id = self.cgroup_name();
        let netns = self.dir.join(NETNS_FILE);
        // A box made before namespaces were kept gets a fresh one per run.
        config.network_namespace = netns.exists().then_some(netns);
        config.workdir = self.box_dir.clone();
        config.uid = Some(self.uid);
        config.gid = Some(self.gid);
        config.proxy_record = Some(self.dir.join(PROXY_FILE));
        if config.use_cgroups {
            let placement = self.cgroup_placement()?;
            config.cgroup_parent = Some(if placement.given {
                placement.root.join(&placement.parent)
            } else {
                placement.parent.clone()
            });
            config.cgroup_root = Some(placement.root);
        }
        config.cpuset_cpus = self.per_box.cpus.clone();
        config.cpuset_mems = self.per_box.mems.clone();
        Ok(())
    }

    /// Kills what is left of a run whose keeper died, through the proxy it
    /// recorded: the proxy is pid 1 of the box's PID namespace, so killing
    /// it kills every process of the box, and nothing of any other box or
    /// installation. A record whose process is gone, or whose pid now
    /// belongs to a process started at another time, is stale.
    ///
    /// (Every process of a box dies with its keeper anyway: the proxy has
    /// `PR_SET_PDEATHSIG`, and exits when the keeper's go-ahead pipe
    /// closes unread. This is the handle for when that fails.)
    fn stop_proxy(&self) -> Result<(), BoxError> {
        let path = self.dir.join(PROXY_FILE);
        let text = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .and_then(io::read_to_string)
        {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(BoxError::Io {
                    context: format!("cannot read {}", path.display()),
                    source,
                })
            }
        };
        let mut fields = text.split_ascii_whitespace().map(str::parse::<u64>);
        if let (Some(Ok(pid)), Some(Ok(started))) = (fields.next(), fields.next()) {
            if let Ok(pid) = libc::pid_t::try_from(pid) {
                self.kill_recorded(pid, started)?;
            }
        }
        fs::remove_file(&path).or_else(|err| match err.kind() {
            io::ErrorKind::NotFound => Ok(()),
            _ => Err(BoxError::Io {
                context: format!("cannot remove {}", path.display()),
                source: err,
            }),
        })
    }

    /// Kills process `pid` if it is still the one that started at
    /// `started`, and waits until it is gone.
    fn kill_recorded(&self, pid: libc::pid_t, started: u64) -> Result<(), BoxError> {
        use crate::sys;
        use std::os::fd::{AsFd, AsRawFd};
        let Ok(pidfd) = sys::pidfd_open(pid) else {
            return Ok(());
        };
        // Checked after the pidfd is open: if the start time still matches,
        // the pidfd names the recorded process, whatever happens to the pid.
        if sys::start_time(pid).ok() != Some(started) {
            return Ok(());
        }
        tracing::warn!(
            "killing what is left of box {} (its proxy, pid {pid})",
            self.id
        );
        if let Err(err) = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL) {
            if err.raw_os_error() != Some(libc::ESRCH) {
                return Err(BoxError::Leftovers(format!(
                    "cannot kill process {pid} of box {}: {err}",
                    self.id
                )));
            }
        }
        // The pidfd turns readable once the proxy has exited, which for
        // pid 1 of a namespace is after every other process of it.
        let mut entries = [sys::poll_entry(pidfd.as_raw_fd(), sys::POLLIN)];
        match sys::poll(&mut entries, Some(LEFTOVER_GRACE)) {
            Ok(0) => Err(BoxError::Leftovers(format!(
                "the processes of box {} survive SIGKILL (proxy pid {pid})",
                self.id
            ))),
            Ok(_) => Ok(()),
            Err(err) => Err(BoxError::Leftovers(format!(
                "waiting for the processes of box {} to end: {err}",
                self.id
            ))),
        }
    }

    /// Removes the box's cgroup when it exists, killing whatever is in it:
    /// the box's cgroup is in this installation's own subtree, so nothing
    /// of another installation is ever touched.
    fn remove_cgroup(&self) -> Result<(), BoxError> {
        let placement = match self.cgroup_placement() {
            Ok(placement) => placement,
            // A box without cgroups has none to remove; one made with
            // cgroups must find its own.
            Err(error) if !self.state().is_ok_and(|state| state.cgroups) => {
                tracing::debug!(%error, "no cgroup place; box {} has no cgroup", self.id);
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        let Some(mut cgroup) = CgroupController::existing(&placement, &self.cgroup_name())? else {
            return Ok(());
        };
        let left = cgroup.pids()?;
        if !left.is_empty() {
            tracing::warn!("killing leftover processes of box {}: {left:?}", self.id);
        }
        cgroup.remove().map_err(|error| match error {
            CgroupError::Busy(dir) => BoxError::Leftovers(format!(
                "processes of box {} survive SIGKILL in {}",
                self.id,
                dir.display()
            )),
            other => other.into(),
        })
    }

    /// Unmounts every file system mounted on or below `<box_root>/<N>`,
    /// deepest first.
    fn unmount_all(&self) -> Result<(), BoxError> {
        let mut points: Vec<PathBuf> = mount_points()?
            .into_iter()
            .filter(|point| point.starts_with(&self.dir))
            .collect();
        points.sort_by_key(|point| std::cmp::Reverse(point.components().count()));
        points.dedup();
        for point in points {
            // A path mounted twice needs two unmounts; mount_points lists
            // it twice, and the second attempt finds it still mounted.
            crate::sys::unmount(&point)
                .map_err(|err| BoxError::Mount(format!("unmounting {}: {err}", point.display())))?;
        }
        Ok(())
    }
}

/// Mounts the quota file system (a size- and inode-limited tmpfs) on
/// `target`.
fn mount_quota(target: &Path, id: u32, quota: Quota) -> Result<(), BoxError> {
    let options = format!(
        "size={}k,nr_inodes={},mode=0700",
        quota.blocks, quota.inodes
    );
    crate::sys::mount_tmpfs(&format!("isobox-box-{id}"), target, &options).map_err(|err| {
        BoxError::Mount(format!(
            "mounting the quota file system on {}: {err}",
            target.display()
        ))
    })
}

/// Every mount point of this process's mount namespace.
fn mount_points() -> Result<Vec<PathBuf>, BoxError> {
    let text = fs::read_to_string("/proc/self/mountinfo")
        .map_err(io_error("cannot read /proc/self/mountinfo"))?;
    Ok(text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mount_field(field)))
        .collect())
}

/// Undoes the octal escapes (`\040` for a space...) of a mountinfo field.
fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = bytes
            .get(i + 1..i + 4)
            .filter(|digits| bytes[i] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        match escape {
            Some(digits) => {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                out.push(value as u8);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BoxesConfig, BoxError> {
        BoxesConfig::parse(text, Path::new("/etc/isobox.conf"))
    }

    #[test]
    fn defaults_match_the_documentation() {
        let config = BoxesConfig::default();
        assert_eq!(config.box_root, Path::new("/var/local/lib/isobox"));
        assert_eq!(config.first_uid, 60000);
        assert_eq!(config.first_gid, 60000);
        assert_eq!(config.num_boxes, 1000);
        assert_eq!(config.cg_root, CgRoot::Installation);
        assert_eq!(parse("").unwrap(), config);
    }

    #[test]
    fn isolate_syntax_is_accepted() {
        let config = parse(
            "# isolate's own file\n\
             box_root = /srv/boxes\n\
             lock_root=/run/boxes\n\
             \tcg_root = /sys/fs/cgroup  \n\
             first_uid = 70000\n\
             first_gid = 71000\n\
             num_boxes = 16\n\
             \n\
             box3.cpus = 2-3\n\
             box3.mems = 0\n\
             restricted_init = 1\n\
             syscall_flags = 27\n",
        )
        .unwrap();
        assert_eq!(config.syscall_flags, 27);
        assert_eq!(BoxesConfig::default().syscall_flags, 65535);
        let all_bits = BoxesConfig::parse("syscall_flags = -1\n", Path::new("x")).unwrap();
        assert_eq!(all_bits.syscall_flags, u32::MAX);
        assert!(BoxesConfig::parse("syscall_flags = lots\n", Path::new("x")).is_err());
        assert_eq!(config.box_root, Path::new("/srv/boxes"));
        assert_eq!(config.lock_root, Path::new("/run/boxes"));
        assert_eq!(config.cg_root, CgRoot::Path("/sys/fs/cgroup".into()));
        assert_eq!((config.first_uid, config.first_gid), (70000, 71000));
        assert_eq!(config.num_boxes, 16);
        assert!(config.restricted_init);
        let box3 = &config.per_box[&3];
        assert_eq!(box3.cpus.as_deref(), Some("2-3"));
        assert_eq!(box3.mems.as_deref(), Some("0"));
        // isolate 2.x's delegated cgroup, read from the service's file.
        assert_eq!(
            parse("cg_root = auto:/run/isolate/cgroup").unwrap().cg_root,
            CgRoot::Auto("/run/isolate/cgroup".into())
        );
        assert_eq!(
            parse("cg_root = auto").unwrap().cg_root,
            CgRoot::Installation
        );
        assert!(parse("cg_root = auto:relative").is_err());
    }

    #[test]
    fn bad_lines_name_the_file_and_the_line() {
        for (text, line, reason) in [
            ("box_root = /a\nnonsense\n", 2, "expected 'key = value'"),
            ("first_uid = -5", 1, "whole number"),
            ("first_uid = 99999999999", 1, "out of range"),
            ("\n\ncolour = blue", 3, "unknown configuration item"),
            ("boxy3.cpus = 1", 1, "unknown configuration section"),
            ("box3.cpu = 1", 1, "unknown per-box configuration item"),
            ("boxA.cpus = 1", 1, "unknown configuration section"),
            ("box99999999999.cpus = 1", 1, "out of range"),
            ("box_root = relative", 1, "absolute path"),
            ("restricted_init = yes", 1, "0 or 1"),
            ("first uid = 3", 1, "not a configuration key"),
        ] {
            let err = parse(text).unwrap_err();
            let shown = err.to_string();
            assert!(
                shown.starts_with(&format!("/etc/isobox.conf, line {line}: ")),
                "{text:?}: {shown}"
            );
            assert!(shown.contains(reason), "{text:?}: {shown}");
        }
    }

    #[test]
    fn unusable_configurations_are_refused() {
        for text in ["first_uid = 0", "num_boxes = 0", "first_gid = 4294967290"] {
            let err = parse(text).unwrap_err();
            assert!(
                matches!(err, BoxError::ConfigInvalid { .. }),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn a_missing_file_means_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let config = BoxesConfig::load(&dir.path().join("absent.conf")).unwrap();
        assert_eq!(config, BoxesConfig::default());
    }

    #[test]
    fn the_environment_can_name_another_file() {
        assert_eq!(config_path(None), Path::new(DEFAULT_CONFIG_PATH));
        assert_eq!(
            config_path(Some("".as_ref())),
            Path::new(DEFAULT_CONFIG_PATH)
        );
        assert_eq!(
            config_path(Some("/tmp/x.conf".as_ref())),
            Path::new("/tmp/x.conf")
        );
    }

    #[test]
    fn installations_differing_in_either_root_get_their_own_cgroup() {
        let name = |text: &str| parse(text).unwrap().installation_name();
        let a = name("box_root = /srv/a\nlock_root = /run/a");
        assert_eq!(a.len(), "boxes-".len() + 16, "{a}");
        assert!(a.starts_with("boxes-"));
        assert_eq!(
            a,
            name("box_root = /srv/a\nlock_root = /run/a\nfirst_uid = 7")
        );
        assert_ne!(a, name("box_root = /srv/b\nlock_root = /run/a"));
        assert_ne!(a, name("box_root = /srv/a\nlock_root = /run/b"));
        // The separator keeps ("/a", "b/c") and ("/a/b", "c")-like splits apart.
        assert_ne!(
            name("box_root = /x\nlock_root = /yz"),
            name("box_root = /xy\nlock_root = /z")
        );
        // Fixed forever: existing installations must find their cgroups
        // after an upgrade.
        assert_eq!(
            BoxesConfig::default().installation_name(),
            "boxes-4b211dcdb60af6a4"
        );
    }

    #[test]
    fn an_unreadable_auto_file_is_a_clear_error() {
        let config = parse("cg_root = auto:/nonexistent/isolate/cgroup").unwrap();
        let shown = config.cgroup_placement().unwrap_err().to_string();
        assert!(
            shown.contains("auto:/nonexistent/isolate/cgroup"),
            "{shown}"
        );
        assert!(shown.contains("service"), "{shown}");
    }

    #[test]
    fn box_paths_ids_and_range() {
        let config =
            parse("box_root = /srv/b\nlock_root = /run/l\nnum_boxes = 10\nbox7.cpus = 1").unwrap();
        let sandbox = config.sandbox(7).unwrap();
        assert_eq!(sandbox.dir(), Path::new("/srv/b/7"));
        assert_eq!(sandbox.box_dir(), Path::new("/srv/b/7/box"));
        assert_eq!((sandbox.uid(), sandbox.gid()), (60007, 60007));
        assert_eq!(sandbox.cgroup_name(), "box-7");
        assert_eq!(sandbox.lock_path, Path::new("/run/l/7"));
        assert_eq!(sandbox.per_box.cpus.as_deref(), Some("1"));
        let err = config.sandbox(10).unwrap_err();
        assert_eq!(err.to_string(), "box id 10 is out of range (allowed: 0-9)");
        assert!(config.sandbox(u64::MAX).is_err());
    }

    #[test]
    fn state_round_trips_and_rejects_garbage() {
        let state = BoxState {
            cgroups: true,
            owner_uid: 1000,
            owner_gid: 100,
        };
        assert_eq!(BoxState::parse(&state.render()), Some(state));
        assert_eq!(BoxState::parse(""), None);
        assert_eq!(BoxState::parse("cgroups=2\nowner=1:1\n"), None);
        assert_eq!(BoxState::parse("cgroups=1\n"), None);
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mount_field("/a\\040b"), "/a b");
        assert_eq!(unescape_mount_field("/tab\\011x\\134y"), "/tab\tx\\y");
        assert_eq!(unescape_mount_field("/plain\\"), "/plain\\");
    }

    fn locked_test_box(root: &Path, id: u64) -> LockedBox {
        let config = BoxesConfig {
            box_root: root.join("boxes"),
            lock_root: root.join("locks"),
            ..BoxesConfig::default()
        };
        config.sandbox(id).unwrap().lock(false).unwrap()
    }

    #[test]
    fn the_lock_is_exclusive_and_released_on_drop() {
        let root = tempfile::tempdir().unwrap();
        let first = locked_test_box(root.path(), 5);
        let config = BoxesConfig {
            box_root: root.path().join("boxes"),
            lock_root: root.path().join("locks"),
            ..BoxesConfig::default()
        };
        let err = config.sandbox(5).unwrap().lock(false).unwrap_err();
        assert!(matches!(err, BoxError::Busy(5)), "{err}");
        // Another box is independent.
        let _other = config.sandbox(6).unwrap().lock(false).unwrap();
        drop(first);
        config.sandbox(5).unwrap().lock(false).unwrap();
    }

    #[test]
    fn cleanup_of_a_missing_box_is_fine() {
        let root = tempfile::tempdir().unwrap();
        let locked = locked_test_box(root.path(), 900);
        locked.cleanup().unwrap();
        assert!(matches!(locked.state(), Err(BoxError::NotInitialized(900))));
    }

    #[test]
    fn half_initialized_boxes_are_recognized_and_removed() {
        let root = tempfile::tempdir().unwrap();
        let locked = locked_test_box(root.path(), 901);
        fs::create_dir_all(locked.box_dir()).unwrap();
        assert!(matches!(
            locked.state(),
            Err(BoxError::HalfInitialized(901))
        ));
        locked.cleanup().unwrap();
        assert!(!locked.dir().exists());
    }

    #[test]
    fn cleanup_does_not_follow_symlinks() {
        let root = tempfile::tempdir().unwrap();
        let outside = root.path().join("precious");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), "x").unwrap();
        let locked = locked_test_box(root.path(), 902);
        fs::create_dir_all(locked.box_dir()).unwrap();
        std::os::unix::fs::symlink(&outside, locked.box_dir().join("link")).unwrap();
        std::os::unix::fs::symlink(outside.join("keep"), locked.box_dir().join("file")).unwrap();
        locked.cleanup().unwrap();
        assert!(!locked.dir().exists());
        assert_eq!(fs::read_to_string(outside.join("keep")).unwrap(), "x");
    }

    /// Nests `chains * 400` directories `d` below `dir/top` (far past
    /// PATH_MAX) with a file at every 400th level, never using a long path.
    fn nest_deeply(dir: &Path, chains: usize) {
        let chain = "d/".repeat(400);
        fs::create_dir_all(dir.join("top").join(&chain)).unwrap();
        fs::write(dir.join("top").join(&chain).join("f"), "x").unwrap();
        for _ in 1..chains {
            fs::create_dir_all(dir.join("next").join(&chain)).unwrap();
            fs::write(dir.join("next").join(&chain).join("f"), "x").unwrap();
            fs::rename(dir.join("top"), dir.join("next").join(&chain).join("top")).unwrap();
            fs::rename(dir.join("next"), dir.join("top")).unwrap();
        }
    }

    #[test]
    fn trees_deeper_than_path_max_are_walked_and_removed() {
        let root = tempfile::tempdir().unwrap();
        let locked = locked_test_box(root.path(), 904);
        let me = fs::metadata("/proc/self").unwrap();
        let state = BoxState {
            cgroups: false,
            owner_uid: me.uid(),
            owner_gid: me.gid(),
        };
        locked.init(state, None).unwrap();
        nest_deeply(locked.box_dir(), 8);
        let report = locked.prepare_for_run().unwrap();
        // Per chain: a `top`, 400 `d` and a file.
        assert_eq!(report.entries, 8 * 402);
        locked.give_back(&state, false).unwrap();
        locked.cleanup().unwrap();
        assert!(!locked.dir().exists());
    }

    #[test]
    fn special_files_go_unless_kept_and_the_box_is_its_own_file_system() {
        let root = tempfile::tempdir().unwrap();
        let locked = locked_test_box(root.path(), 903);
        let me = fs::metadata("/proc/self").unwrap();
        let state = BoxState {
            cgroups: false,
            owner_uid: me.uid(),
            owner_gid: me.gid(),
        };
        locked.init(state, None).unwrap();
        assert_ne!(locked.box_device().unwrap(), me.dev());
        assert_eq!(locked.ready_for_run(false).unwrap(), state);
        assert!(matches!(
            locked.ready_for_run(true),
            Err(BoxError::CgroupMode {
                initialized_with_cgroups: false,
                ..
            })
        ));
        let sub = locked.box_dir().join("sub");
        fs::create_dir(&sub).unwrap();
        fs::write(sub.join("data"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", sub.join("link")).unwrap();
        locked.give_back(&state, true).unwrap();
        assert!(fs::symlink_metadata(sub.join("link")).is_ok());
        locked.give_back(&state, false).unwrap();
        assert!(fs::symlink_metadata(sub.join("link")).is_err());
        assert!(sub.join("data").is_file());
        locked.cleanup().unwrap();
        assert!(!locked.dir().exists());
    }

    #[test]
    fn zero_quotas_are_refused() {
        assert!(parse("box_quota = 0,100").is_err());
        assert!(parse("box_quota = 100,0").is_err());
        assert_eq!(
            parse("box_quota = 2048,64").unwrap().default_quota,
            Quota {
                blocks: 2048,
                inodes: 64
            }
        );
        let root = tempfile::tempdir().unwrap();
        let locked = locked_test_box(root.path(), 905);
        let state = BoxState {
            cgroups: false,
            owner_uid: 0,
            owner_gid: 0,
        };
        let zero = Quota {
            blocks: 0,
            inodes: 0,
        };
        assert!(matches!(
            locked.init(state, Some(zero)),
            Err(BoxError::BadQuota(_))
        ));
        assert!(!locked.dir().exists());
    }
}
