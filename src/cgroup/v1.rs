//! cgroup v1: one directory per controller hierarchy, all at the same
//! relative path (`<parent>/<name>[/<child>...]`, the parent `isobox` or
//! an installation's own tree below it).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use super::files::{self, CpuCounter, CpuFormat, KeptFiles, WritePolicy};
use super::{CgroupError, CgroupLimits, CgroupUsage, OptionalControllers};

/// Where each controller isobox uses is mounted.
#[derive(Debug)]
struct Hierarchies {
    memory: PathBuf,
    pids: PathBuf,
    cpuacct: PathBuf,
    cpu: Option<PathBuf>,
    cpuset: Option<PathBuf>,
    /// The distinct mounts among the above: co-mounted controllers (such as
    /// `cpu,cpuacct`) share one directory, which must be created, joined
    /// and removed once.
    distinct: Vec<PathBuf>,
}

/// Every hierarchy isobox may use, by the name it is mounted under.
pub(super) const CONTROLLERS: [&str; 5] = ["memory", "pids", "cpuacct", "cpu", "cpuset"];

/// Whether `dir` is the top of a v1 hierarchy (or any cgroup directory).
pub(super) fn is_hierarchy(dir: &Path) -> bool {
    dir.join("cgroup.procs").is_file()
}

/// [`Hierarchies::find`]'s findings (see [`super::remember_layout`]).
static FOUND: super::Remembered<(PathBuf, OptionalControllers), Arc<Hierarchies>> =
    super::Remembered::new();

impl Hierarchies {
    /// [`find`](Self::find), or what it found before when the process
    /// keeps the layout.
    fn known(root: &Path, optional: OptionalControllers) -> Result<Arc<Self>, CgroupError> {
        let remember = super::REMEMBER_LAYOUT.load(std::sync::atomic::Ordering::Relaxed);
        FOUND.get_or_find(remember, (root.to_path_buf(), optional), || {
            Self::find(root, optional).map(Arc::new)
        })
    }

    /// The hierarchies under `root`; `cpu` and `cpuset` only when
    /// `optional` asks for them, since every hierarchy joined costs a
    /// directory and a move per run.
    fn find(root: &Path, optional: OptionalControllers) -> Result<Self, CgroupError> {
        use std::os::unix::fs::MetadataExt;
        // Co-mounted controllers (such as `cpu -> cpu,cpuacct`) are one
        // hierarchy under two names: told apart by the mount's device and
        // the directory's inode, each named by the first path found for
        // it. (Resolving every path instead cost a readlink per component
        // of each of the five paths, on every command-line run.)
        let mut distinct: Vec<(PathBuf, (u64, u64))> = Vec::new();
        let mut resolve = |controller: &str| -> Option<PathBuf> {
            let dir = root.join(controller);
            let meta = std::fs::metadata(&dir).ok()?;
            if !meta.is_dir() || !is_hierarchy(&dir) {
                return None;
            }
            let identity = (meta.dev(), meta.ino());
            if let Some((known, _)) = distinct.iter().find(|(_, seen)| *seen == identity) {
                return Some(known.clone());
            }
            distinct.push((dir.clone(), identity));
            Some(dir)
        };
        let (memory, pids, cpuacct) = match (resolve("memory"), resolve("pids"), resolve("cpuacct"))
        {
            (Some(memory), Some(pids), Some(cpuacct)) => (memory, pids, cpuacct),
            _ => {
                return Err(CgroupError::Unavailable(format!(
                    "{} lacks one of the v1 hierarchies memory, pids, cpuacct",
                    root.display()
                )))
            }
        };
        // Looked up only when wanted, so that a hierarchy left out is not
        // among the distinct ones either.
        let cpu = optional.cpu_weight.then(|| resolve("cpu")).flatten();
        let cpuset = optional.cpuset.then(|| resolve("cpuset")).flatten();
        let distinct = distinct.into_iter().map(|(dir, _)| dir).collect();
        Ok(Self {
            memory,
            pids,
            cpuacct,
            cpu,
            cpuset,
            distinct,
        })
    }
}

/// One cgroup in every v1 hierarchy.
#[derive(Debug)]
pub(super) struct V1Cgroup {
    hierarchies: Arc<Hierarchies>,
    /// Path below each hierarchy's mount point.
    relative: PathBuf,
    policy: WritePolicy,
    cpu: CpuCounter,
    /// The counters read and reset on every run.
    counters: KeptFiles,
}

impl V1Cgroup {
    /// Creates or reuses `<parent>/<name>` in every hierarchy under
    /// `root`, creating the levels of `parent` as needed; with whether
    /// every hierarchy's directory was created here.
    pub(super) fn new(
        root: &Path,
        parent: &Path,
        name: &str,
        policy: WritePolicy,
        optional: OptionalControllers,
    ) -> Result<(Self, bool), CgroupError> {
        let hierarchies = Hierarchies::known(root, optional)?;
        let cgroup = Self::at(hierarchies, parent.join(name), policy);
        let mut created = Vec::new();
        let outcome = cgroup.create_instance(&mut created);
        if outcome.is_err() {
            files::undo_created(&created);
        }
        let fresh = created.len() == cgroup.hierarchies.distinct.len();
        outcome.map(|()| (cgroup, fresh))
    }

    /// `<parent>/<name>` when it exists in some hierarchy under `root`.
    pub(super) fn existing(
        root: &Path,
        parent: &Path,
        name: &str,
        policy: WritePolicy,
    ) -> Result<Option<Self>, CgroupError> {
        let hierarchies = Hierarchies::known(root, OptionalControllers::ALL)?;
        let cgroup = Self::at(hierarchies, parent.join(name), policy);
        let exists = cgroup.paths().iter().any(|dir| dir.is_dir());
        Ok(exists.then_some(cgroup))
    }

    fn at(hierarchies: Arc<Hierarchies>, relative: PathBuf, policy: WritePolicy) -> Self {
        let cpu = CpuCounter::new(
            hierarchies.cpuacct.join(&relative).join("cpuacct.usage"),
            CpuFormat::Nanoseconds,
        );
        Self {
            hierarchies,
            relative,
            policy,
            cpu,
            counters: KeptFiles::new(),
        }
    }

    fn create_instance(&self, created: &mut Vec<PathBuf>) -> Result<(), CgroupError> {
        let parent = self.relative.parent().unwrap_or(Path::new(""));
        for hierarchy in &self.hierarchies.distinct {
            // The parent's levels stay: other instances use them.
            let mut shared = hierarchy.clone();
            for level in parent.components() {
                shared.push(level);
                files::make_dir(&shared)?;
                self.fill_cpuset(hierarchy, &shared)?;
            }
            let dir = hierarchy.join(&self.relative);
            if files::make_dir(&dir)? {
                created.push(dir.clone());
            } else if !files::is_empty(std::slice::from_ref(&dir))? {
                return Err(CgroupError::InUse(dir));
            }
            self.fill_cpuset(hierarchy, &dir)?;
        }
        Ok(())
    }

    /// A new v1 cpuset cgroup starts with no CPUs and no memory nodes, and
    /// no task can join it until both are set; inherit the parent's.
    fn fill_cpuset(&self, hierarchy: &Path, dir: &Path) -> Result<(), CgroupError> {
        if self.hierarchies.cpuset.as_deref() != Some(hierarchy) {
            return Ok(());
        }
        let Some(parent) = dir.parent() else {
            return Ok(());
        };
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let own = dir.join(file);
            let current = files::read_optional(&own)?;
            if current.as_deref().is_some_and(|c| !c.trim().is_empty()) {
                continue;
            }
            let inherited = files::read_required(&parent.join(file))?;
            self.policy.write(&own, inherited.trim())?;
        }
        Ok(())
    }

    /// Creates a fresh child cgroup `name` in every hierarchy.
    pub(super) fn create_child(&self, name: &str) -> Result<Self, CgroupError> {
        let child = Self::at(
            Arc::clone(&self.hierarchies),
            self.relative.join(name),
            self.policy,
        );
        let mut created = Vec::new();
        let outcome = (|| {
            for hierarchy in &self.hierarchies.distinct {
                let dir = hierarchy.join(&child.relative);
                files::make_fresh_dir(&dir)?;
                created.push(dir.clone());
                child.fill_cpuset(hierarchy, &dir)?;
            }
            Ok(())
        })();
        if outcome.is_err() {
            files::undo_created(&created);
        }
        outcome.map(|()| child)
    }

    /// Every directory of this cgroup, one per distinct hierarchy.
    pub(super) fn paths(&self) -> Vec<PathBuf> {
        self.hierarchies
            .distinct
            .iter()
            .map(|hierarchy| hierarchy.join(&self.relative))
            .collect()
    }

    fn dir(&self, hierarchy: &Path) -> PathBuf {
        hierarchy.join(&self.relative)
    }

    /// Writes a limit into a controller that may not be mounted: a limit
    /// that cannot be written is a failed write like any other.
    fn write_optional(
        &self,
        hierarchy: Option<&PathBuf>,
        controller: &str,
        file: &str,
        value: &str,
    ) -> Result<(), CgroupError> {
        match hierarchy {
            Some(hierarchy) => self.policy.write(&self.dir(hierarchy).join(file), value),
            None => self.policy.settle(
                Path::new(file),
                value,
                Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no v1 {controller} hierarchy is mounted"),
                )),
            ),
        }
    }

    pub(super) fn apply_limits(&self, limits: &CgroupLimits) -> Result<(), CgroupError> {
        let memory = limits
            .memory
            .map_or_else(|| "-1".to_owned(), |bytes| bytes.to_string());
        self.set_memory(&memory)?;

        let pids = limits
            .pids
            .map_or_else(|| "max".to_owned(), |count| count.to_string());
        self.policy
            .write(&self.dir(&self.hierarchies.pids).join("pids.max"), &pids)?;

        match (limits.cpu_shares, &self.hierarchies.cpu) {
            (Some(shares), cpu) => {
                self.write_optional(cpu.as_ref(), "cpu", "cpu.shares", &shares.to_string())?
            }
            // Unset means the kernel's default weight, as in a new cgroup.
            (None, Some(cpu)) => self
                .policy
                .write(&self.dir(cpu).join("cpu.shares"), "1024")?,
            (None, None) => {}
        }

        match (&limits.cpu_bandwidth, &self.hierarchies.cpu) {
            (Some(bandwidth), cpu) => {
                let cpu = cpu.as_ref();
                // The period first: a new cgroup has no quota to check it against.
                let period = files::micros(bandwidth.period);
                self.write_optional(cpu, "cpu", "cpu.cfs_period_us", &period)?;
                let quota = files::micros(bandwidth.quota);
                self.write_optional(cpu, "cpu", "cpu.cfs_quota_us", &quota)?;
            }
            // A cgroup kept from run to run (a warm box) must not keep an
            // earlier run's quota.
            (None, Some(cpu)) => self
                .policy
                .write(&self.dir(cpu).join("cpu.cfs_quota_us"), "-1")?,
            (None, None) => {}
        }

        let cpuset = self.hierarchies.cpuset.as_ref();
        for (file, wanted) in [
            ("cpuset.cpus", &limits.cpuset_cpus),
            ("cpuset.mems", &limits.cpuset_mems),
        ] {
            match (wanted, cpuset) {
                (Some(value), _) => self.write_optional(cpuset, "cpuset", file, value)?,
                // Unset means the parent's set, also in a kept cgroup whose
                // earlier run had one of its own.
                (None, Some(hierarchy)) => self.inherit_cpuset(hierarchy, file)?,
                (None, None) => {}
            }
        }
        Ok(())
    }

    /// Gives the cgroup its parent's `file` (`cpuset.cpus` or `cpuset.mems`)
    /// when they differ.
    fn inherit_cpuset(&self, hierarchy: &Path, file: &str) -> Result<(), CgroupError> {
        let own = self.dir(hierarchy).join(file);
        let Some(parent) = own.parent().and_then(Path::parent) else {
            return Ok(());
        };
        let inherited = files::read_required(&parent.join(file))?;
        if files::read_optional(&own)?.as_deref().map(str::trim) != Some(inherited.trim()) {
            self.policy.write(&own, inherited.trim())?;
        }
        Ok(())
    }

    /// Sets memory and memory+swap to the same value, so swap cannot be
    /// used to exceed the limit.
    fn set_memory(&self, value: &str) -> Result<(), CgroupError> {
        let dir = self.dir(&self.hierarchies.memory);
        let limit = dir.join("memory.limit_in_bytes");
        let memsw = dir.join("memory.memsw.limit_in_bytes");
        if !memsw.exists() {
            // Swap accounting is off (swapaccount=0), so the limit cannot
            // include swap; keep the box out of swap instead.
            static WARN: Once = Once::new();
            WARN.call_once(|| {
                tracing::warn!(
                    "memory.memsw.limit_in_bytes is missing (swap accounting off); \
                     using memory.swappiness=0 so swap does not extend the memory limit"
                )
            });
            self.policy.write(&limit, value)?;
            return self.policy.write(&dir.join("memory.swappiness"), "0");
        }
        // The kernel keeps limit <= memsw limit at all times: lowering must
        // go limit first, raising memsw first. Try the lowering order; if
        // the limit is refused, it was a raise.
        match files::write_file(&limit, value) {
            Ok(()) => self.policy.write(&memsw, value),
            Err(first) => {
                tracing::debug!(file = %limit.display(), error = %first, "retrying with memsw first");
                let outcome = files::write_file(&memsw, value);
                self.policy.settle(&memsw, value, outcome)?;
                self.policy.write(&limit, value)
            }
        }
    }

    pub(super) fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        let pid = pid.to_string();
        for dir in self.paths() {
            self.policy.write(&dir.join("cgroup.procs"), &pid)?;
        }
        Ok(())
    }

    pub(super) fn task_files(&self) -> Result<Vec<std::fs::File>, CgroupError> {
        self.paths()
            .into_iter()
            .map(|dir| {
                let path = dir.join("tasks");
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|source| files::io_error(&path, source))
            })
            .collect()
    }

    pub(super) fn cpu_time(&self) -> Result<std::time::Duration, CgroupError> {
        self.cpu.read()
    }

    pub(super) fn usage(&self) -> Result<CgroupUsage, CgroupError> {
        let memory = self.dir(&self.hierarchies.memory);
        let peak_path = memory.join("memory.max_usage_in_bytes");
        let memory_peak =
            files::parse_single(&peak_path, &self.counters.read_required(&peak_path)?)?;
        let oom_path = memory.join("memory.oom_control");
        let oom_kills = files::parse_keyed(
            &oom_path,
            &self.counters.read_required(&oom_path)?,
            "oom_kill",
        )?
        .unwrap_or(0);
        let pids = self.dir(&self.hierarchies.pids);
        let events_path = pids.join("pids.events");
        let pids_limit_hits = files::keyed_or_zero(
            &events_path,
            self.counters.read_optional(&events_path)?,
            "max",
        )?;
        // Only some kernels offer it on v1 (6.18 does).
        let peak_path = pids.join("pids.peak");
        let pids_peak = files::report_only(&peak_path, self.counters.read_optional(&peak_path));
        Ok(CgroupUsage {
            cpu_time: self.cpu_time()?,
            memory_peak,
            oom_kills,
            pids_limit_hits,
            pids_peak,
        })
    }

    pub(super) fn reset_counters(&self) -> Result<(), CgroupError> {
        // Strict whatever the policy: a counter left running would put an
        // earlier run's figures into the next one.
        let cpu = self.dir(&self.hierarchies.cpuacct).join("cpuacct.usage");
        self.counters
            .write(&cpu, "0")
            .map_err(|source| files::io_error(&cpu, source))?;
        let peak = self
            .dir(&self.hierarchies.memory)
            .join("memory.max_usage_in_bytes");
        self.counters
            .write(&peak, "0")
            .map_err(|source| files::io_error(&peak, source))
    }

    /// Bytes the cgroup's memory holds now.
    pub(super) fn memory_usage(&self) -> Result<u64, CgroupError> {
        let path = self.memory_file("memory.usage_in_bytes");
        files::parse_single(&path, &self.counters.read_required(&path)?)
    }

    pub(super) fn memory_file(&self, name: &str) -> PathBuf {
        self.dir(&self.hierarchies.memory).join(name)
    }

    /// v1 has no `cgroup.kill`: signal every task until none is left.
    pub(super) fn kill_all(&self) -> Result<(), CgroupError> {
        files::kill_and_wait(&self.paths(), true)
    }
}
