//! [`ProcessExecutor`]: spawns the program in its jail, watches it, kills it
//! at a limit, measures it and turns all of it into an [`ExecutionResult`].
//!
//! One run, from the keeper's side, a module per step:
//! 1. `plan`: the box's jail is decided before anything is cloned;
//! 2. `spawn`: a fresh child cgroup for the run, with this run's limits (so
//!    no peak, OOM count or limit of an earlier run can show); the proxy is
//!    cloned into new namespaces (on v2 directly into the cgroup; on v1 it
//!    joins the cgroup as its first step), then released;
//! 3. `watch`: one `poll` loop feeds stdin, drains stdout and stderr, and
//!    wakes in time for the wall-clock deadline and the next CPU-time
//!    check; at a limit the proxy (pid 1 of the box) is killed, which takes
//!    the whole box with it; afterwards the cgroup is emptied and removed;
//! 4. `verdict`: the verdict is derived from what the kernel measured.
//!
//! `workdir` holds the working directory, `uid` the one-shot uid claim,
//! `warm` the box that outlives a run (`IsolateConfig::warm`).

mod plan;
mod spawn;
mod uid;
mod verdict;
mod warm;
mod watch;
mod workdir;
pub use warm::SpareBox;

use std::fs::File;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::PathBuf;

use crate::cgroup::{CgroupController, OptionalControllers};
use crate::config::IsolateConfig;
use crate::error::{IsolateError, Result};
use crate::jail::{self, Credentials, PolicyOptions, SeccompPolicy};
use crate::result::{ExecutionResult, Protection};
use crate::sys;
use spawn::RunCgroup;
use uid::UidClaim;
use workdir::Workdir;

/// Not an API, a test hook: microseconds the keeper waits between deciding
/// to kill a box that did not stop in time and sending the `SIGKILL`. It
/// widens the window in which a warm box's holder can finish the run just
/// before the kill, so that a test can show that such a holder is never
/// used again. Always 0 outside tests.
#[doc(hidden)]
pub static HARD_KILL_DELAY_FOR_TESTS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

/// Where the program's standard input comes from.
#[derive(Debug, Default)]
pub enum Stdin {
    /// `/dev/null`.
    #[default]
    Null,
    /// These bytes, fed through a pipe while output is read.
    Bytes(Vec<u8>),
    /// An open file, handed to the program as it is.
    File(File),
}

/// Something outside the box that a run must answer to as well: a
/// client's connection whose end, or whose message, stops the run. The
/// executor's loop polls `fd` beside the run and, the first time it turns
/// readable, calls `on_ready` with it on the executor's own thread, once;
/// `Some(signal)` stops the run as an interruption by `signal` would
/// (`KillReason::Interrupted`), `None` lets it go on, and `fd` is not
/// polled again during that run. This costs a run nothing a thread of the
/// caller's watching `fd` would.
pub struct OutsideEvent {
    /// Polled for `POLLIN` (which end of file and a hang-up also raise).
    pub fd: OwnedFd,
    /// Decides what the event means for the run.
    pub on_ready: Box<dyn Fn(BorrowedFd<'_>) -> Option<i32> + Send>,
}

impl std::fmt::Debug for OutsideEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutsideEvent")
            .field("fd", &self.fd)
            .finish_non_exhaustive()
    }
}

/// Runs programs under one [`IsolateConfig`].
///
/// Each [`execute`](Self::execute) is independent: limits, peak memory and
/// the OOM flag of one run never show in the next.
#[derive(Debug)]
pub struct ProcessExecutor {
    config: IsolateConfig,
    cgroup: Option<CgroupController>,
    /// Without `cgroup`, a cgroup used for memory only, so that a memory
    /// bound covers the whole box (tmpfs pages, kernel buffers), not just
    /// each process's address space: see [`memory_bound`].
    memory_guard: Option<CgroupController>,
    namespaces: bool,
    /// A caller without root: the box's namespaces sit in a user namespace
    /// of their own, with these ids.
    user_namespace: Option<sys::IdMapping>,
    /// The host directory box roots are mounted on (in each box's own
    /// mount namespace).
    new_root: PathBuf,
    seccomp: Option<SeccompPolicy>,
    /// The empty network namespace every run of this executor joins.
    network: Option<OwnedFd>,
    /// The runs are to join an empty network namespace of the executor's
    /// own that is not made yet: the first run's box makes one at birth
    /// instead (an executor used once, such as `isobox run`'s, never pays
    /// for a thread to make one), and the second run makes the one the
    /// later runs join.
    network_pending: bool,
    /// CPUs the box may run on at once: CPU time can grow this much faster
    /// than the wall clock.
    cpus: u32,
    credentials: Option<Credentials>,
    /// The uid of `credentials` when this executor claimed it (held until
    /// the executor is dropped).
    _uid_claim: Option<UidClaim>,
    /// `cgroup` held a run itself (see [`Self::open_run_cgroup`]): it
    /// carries that run's limits and counters, so it is replaced before
    /// anything else uses it, and never handed on.
    instance_spent: bool,
    /// The working directory, open from the first run on.
    workdir: Option<Workdir>,
    last_usage: (f64, u64),
    runs: u64,
    /// The warm box, when the configuration asks for one.
    warmth: warm::Warmth,
    /// What the run under way also answers to (see
    /// [`execute_watching`](Self::execute_watching)).
    outside: Option<OutsideEvent>,
    /// `cgroup` is a spare box's (see [`SpareBox::into_executor`]), not
    /// the one the configuration names: never kept.
    cgroup_is_spares: bool,
    /// The warm box built next is a spare's: its working directory is
    /// only a mount point (see [`SpareBox::build`]).
    builds_spare: bool,
}

impl ProcessExecutor {
    /// Checks the environment and prepares the executor's cgroup.
    ///
    /// In strict mode this fails with [`IsolateError::Config`] unless the
    /// caller is root and a cgroup hierarchy is usable. Otherwise whatever is
    /// missing is logged as a warning and the executor degrades: rlimits
    /// instead of cgroup limits, rusage instead of cgroup measurements, no
    /// namespaces without root.
    pub fn new(config: IsolateConfig) -> Result<Self> {
        check_tmpfs_sizes(&config)?;
        let root = sys::is_root();
        let delegated = config
            .cgroup_parent
            .as_deref()
            .is_some_and(|parent| parent.is_absolute());
        if config.strict_mode && !root && !delegated {
            return Err(IsolateError::Config(
                "strict mode needs root, or without root a cgroup v2 subtree delegated to the \
                 caller (see isobox check-environment)"
                    .into(),
            ));
        }
        // Without root only a subtree delegated to the caller can be
        // written; the hierarchy's own tree is not tried.
        let cgroup = if root || delegated {
            place_cgroup(&config)?
        } else {
            tracing::debug!("not root and no delegated cgroup: limits are rlimits");
            None
        };
        let memory_guard = match memory_bound(&config) {
            Some(_) if root && !config.use_cgroups => place_memory_guard(&config),
            _ => None,
        };
        // Without root, the namespaces are built inside a user namespace
        // where the kernel allows one.
        let user_namespace = (config.namespaces && !root && sys::user_namespaces_usable())
            .then(sys::IdMapping::for_caller);
        let namespaces = config.namespaces && (root || user_namespace.is_some());
        if config.strict_mode && config.namespaces && !namespaces {
            return Err(IsolateError::Config(
                "strict mode without root needs user namespaces, which this host does not \
                 allow the caller (see isobox check-environment)"
                    .into(),
            ));
        }
        if config.namespaces && !namespaces {
            tracing::warn!(
                "not root and no usable user namespaces: running without namespaces \
                 (see isobox check-environment)"
            );
        }
        let (credentials, uid_claim) = uid::box_credentials(&config, root)?;
        let new_root = if namespaces {
            jail::mounts::new_root(user_namespace.is_some())?
        } else {
            PathBuf::new()
        };
        // A box in a user namespace makes its network namespace at birth:
        // one the keeper made could not be joined from there (and a caller
        // without root cannot make one outside).
        let network = network_namespace(&config, namespaces && user_namespace.is_none())?;
        let network_pending =
            network.is_none() && namespaces && user_namespace.is_none() && !config.share_net;
        let seccomp = seccomp_policy(&config, cgroup.is_some(), user_namespace.is_some())?;
        Ok(Self {
            config,
            cgroup,
            memory_guard,
            namespaces,
            user_namespace,
            new_root,
            seccomp,
            network,
            network_pending,
            cpus: online_cpus(),
            credentials,
            _uid_claim: uid_claim,
            instance_spent: false,
            workdir: None,
            last_usage: (0.0, 0),
            runs: 0,
            warmth: warm::Warmth::default(),
            outside: None,
            cgroup_is_spares: false,
            builds_spare: false,
        })
    }

    /// The configuration runs use.
    pub fn config(&self) -> &IsolateConfig {
        &self.config
    }

    /// The configuration of the next runs, to change per-run settings
    /// between runs (a warm pool reuses one executor for requests with
    /// different limits).
    ///
    /// Only what each run reads takes effect: limits, environment, stdio
    /// files, directory rules, the inner working directory and the tmpfs
    /// sizes. What the executor settled when it was made keeps its value:
    /// the cgroup and its optional controllers, namespaces, uid and gid,
    /// the seccomp policy, the network namespace and the working directory.
    pub fn config_mut(&mut self) -> &mut IsolateConfig {
        &mut self.config
    }

    /// Whether this executor's cgroup is a spare box's (see
    /// [`SpareBox::into_executor`]) rather than the one its configuration
    /// names: nothing of its runs is ever in the named one.
    pub fn cgroup_is_a_spares(&self) -> bool {
        self.cgroup_is_spares
    }

    /// Runs `command` with `stdin` as its standard input.
    ///
    /// An empty command is [`IsolateError::Config`]. Everything the program
    /// does, including not existing, is an `Ok` result with a verdict; `Err`
    /// means the sandbox itself failed.
    pub fn execute(&mut self, command: &[String], stdin: Option<&str>) -> Result<ExecutionResult> {
        self.execute_bytes(command, stdin.map(str::as_bytes))
    }

    /// Like [`execute`](Self::execute) with binary standard input.
    pub fn execute_bytes(
        &mut self,
        command: &[String],
        stdin: Option<&[u8]>,
    ) -> Result<ExecutionResult> {
        let stdin = stdin.map_or(Stdin::Null, |bytes| Stdin::Bytes(bytes.to_vec()));
        self.execute_with_stdin(command, stdin)
    }

    /// Like [`execute_with_stdin`](Self::execute_with_stdin), stopping the
    /// run when `outside` says so (see [`OutsideEvent`]).
    pub fn execute_watching(
        &mut self,
        command: &[String],
        stdin: Stdin,
        outside: OutsideEvent,
    ) -> Result<ExecutionResult> {
        self.outside = Some(outside);
        let result = self.execute_with_stdin(command, stdin);
        self.outside = None;
        result
    }

    /// Runs `command` with any [`Stdin`].
    pub fn execute_with_stdin(
        &mut self,
        command: &[String],
        stdin: Stdin,
    ) -> Result<ExecutionResult> {
        if command.first().is_none_or(|program| program.is_empty()) {
            return Err(IsolateError::Config("empty command".into()));
        }
        self.hand_over_workdir()?;
        self.renew_spent_instance()?;
        self.runs += 1;
        if self.runs >= 2 {
            self.make_network()?;
        }
        let stdin = match self.run_warm(command, stdin) {
            Ok(facts) => return self.finish_warm_run(facts),
            Err(stdin) => stdin,
        };
        let run_cgroup = self.open_run_cgroup()?;
        let guard = match run_cgroup {
            RunCgroup::None => self.open_memory_guard()?,
            _ => None,
        };
        let measured = match &run_cgroup {
            RunCgroup::Instance => self.cgroup.as_ref(),
            RunCgroup::Child(run) => Some(run),
            RunCgroup::None => None,
        };
        let facts = self.run_in_box(command, stdin, measured, guard.as_ref());
        if let Some(workdir) = &mut self.workdir {
            workdir.restore_owner();
        }
        let usage = match run_cgroup {
            RunCgroup::Instance => self.cgroup.as_ref().map(|run| self.measure(run)),
            RunCgroup::Child(run) => Some(self.close_run_cgroup(run)),
            RunCgroup::None => None,
        }
        .transpose()?;
        let guarded = guard.map(|run| self.close_run_cgroup(run)).transpose()?;
        let mut facts = facts?;
        if let Some(usage) = &usage {
            facts.measured_by(usage);
            self.last_usage = (usage.cpu_time.as_secs_f64(), usage.memory_peak);
        }
        if let Some(usage) = &guarded {
            // Only what the bound did: time and peak stay the rusage
            // figures of a run without cgroups.
            facts.oom_kills = usage.oom_kills;
        }
        Ok(facts.into_result(self.config.time_limit, self.absent_protections()))
    }

    /// The result of a run in the warm box.
    fn finish_warm_run(&mut self, facts: Result<verdict::RunFacts>) -> Result<ExecutionResult> {
        if let Some(workdir) = &mut self.workdir {
            workdir.restore_owner();
        }
        let facts = facts?;
        self.last_usage = (
            facts.cpu_time.as_secs_f64(),
            facts.memory_peak.unwrap_or_default(),
        );
        Ok(facts.into_result(self.config.time_limit, self.absent_protections()))
    }

    /// Opens the working directory on the first run, then hands it to the
    /// box's user for this one.
    fn hand_over_workdir(&mut self) -> Result<()> {
        if self.workdir.is_none() {
            self.workdir = Some(Workdir::open(&self.config.workdir)?);
        }
        let workdir = self.workdir.as_mut().expect("opened above");
        workdir.hand_over(self.credentials)
    }

    /// What runs of this executor go without, whether the configuration
    /// turned it off or the executor had to degrade.
    pub fn absent_protections(&self) -> Vec<Protection> {
        let absent = [
            (!self.namespaces, Protection::Namespaces),
            (self.cgroup.is_none(), Protection::Cgroup),
            (self.seccomp.is_none(), Protection::Seccomp),
            // In a user namespace the program's uid is the caller's own on
            // the host.
            (self.credentials.is_none(), Protection::SeparateUser),
        ];
        absent
            .into_iter()
            .filter_map(|(absent, protection)| absent.then_some(protection))
            .collect()
    }

    /// CPU seconds and peak memory bytes of the last run, from its cgroup;
    /// `(0.0, 0)` without one.
    pub fn get_resource_usage(&self) -> (f64, u64) {
        self.last_usage
    }

    /// Whether runs are measured and limited by a cgroup.
    pub fn has_cgroup(&self) -> bool {
        self.cgroup.is_some()
    }

    /// Whether a memory cgroup bounds the memory of every run's whole box
    /// (the run's cgroup, or a memory-only one when the configuration
    /// turned cgroups off). Without one a memory limit is only
    /// `RLIMIT_AS` per process: kernel memory (socket and pipe buffers)
    /// and what a box's tmpfs holds are not bounded by it.
    pub fn has_memory_cgroup(&self) -> bool {
        self.cgroup.is_some() || self.memory_guard.is_some()
    }

    /// The cgroup directories of this executor (empty without cgroups).
    pub fn cgroup_paths(&self) -> Vec<PathBuf> {
        self.cgroup
            .as_ref()
            .map_or_else(Vec::new, CgroupController::paths)
    }

    /// A handle that kills this executor's run from another thread (see
    /// [`RunKiller`]).
    pub fn run_killer(&self) -> RunKiller {
        RunKiller {
            cgroups: self.cgroup_paths(),
        }
    }

    /// Like [`cleanup`](Self::cleanup) and drop, but hands the executor's
    /// cgroup (and memory-only cgroup) on instead of removing it: it stays
    /// for the next executor of the same
    /// [`instance_id`](IsolateConfig::instance_id), which reuses it when it
    /// is empty, or for whoever owns that name to remove. Each run still
    /// gets a fresh cgroup of its own below it, so nothing of one run shows
    /// in the next; a cgroup that held a run itself (the first run of an
    /// executor that made it) carries that run's limits and is removed
    /// instead. The isolate face keeps a box's cgroup from the agent's
    /// first run to `--cleanup`; the box's lock keeps two keepers off it.
    pub fn close_keeping_cgroups(mut self) -> Result<()> {
        if let Some(cgroup) = self
            .cgroup
            .take_if(|_| !self.instance_spent && !self.cgroup_is_spares)
        {
            cgroup.keep();
        }
        if let Some(guard) = self.memory_guard.take() {
            guard.keep();
        }
        self.cleanup()
    }

    /// Removes the executor's cgroup, and the working directory when the
    /// executor created it. Called by `Drop` when not called.
    pub fn cleanup(&mut self) -> Result<()> {
        self.warmth.drop_box();
        if let Some(mut cgroup) = self.cgroup.take() {
            cgroup.remove()?;
        }
        if let Some(mut guard) = self.memory_guard.take() {
            guard.remove()?;
        }
        if let Some(workdir) = self.workdir.take() {
            workdir.remove_if_created()?;
        }
        Ok(())
    }
}

impl Drop for ProcessExecutor {
    fn drop(&mut self) {
        if let Err(err) = self.cleanup() {
            tracing::warn!("cleaning up the executor failed: {err}");
        }
    }
}

/// tmpfs reads a size of 0 as "no limit": refuse it rather than give the
/// box an unlimited /tmp or /dev/shm.
fn check_tmpfs_sizes(config: &IsolateConfig) -> Result<()> {
    if config.tmp_size == 0 || config.shm_size == 0 {
        return Err(IsolateError::Config(format!(
            "tmp_size and shm_size must be at least 1 byte (got {} and {})",
            config.tmp_size, config.shm_size
        )));
    }
    Ok(())
}

/// The executor's cgroup, when the configuration asks for one and a
/// hierarchy is usable; outside strict mode a missing one is a warning.
fn place_cgroup(config: &IsolateConfig) -> Result<Option<CgroupController>> {
    if !config.use_cgroups {
        return Ok(None);
    }
    let placed = place_instance(
        config,
        config.strict_mode,
        OptionalControllers {
            cpu_weight: config.cpu_controllers
                || config.cpu_shares != crate::config::DEFAULT_CPU_SHARES
                || config.cpu_bandwidth.is_some(),
            cpuset: config.cpu_controllers
                || config.cpuset_cpus.is_some()
                || config.cpuset_mems.is_some(),
        },
    );
    let named = config
        .cgroup_parent
        .as_deref()
        .filter(|parent| parent.is_absolute());
    match placed {
        Ok(cgroup) => Ok(Some(cgroup)),
        // A hierarchy that works, with someone in the cgroup: that is
        // what to say, in strict mode or not.
        Err(err @ crate::cgroup::CgroupError::InUse(_)) => Err(err.into()),
        Err(err) if config.strict_mode => Err(IsolateError::Config(format!(
            "strict mode needs a usable cgroup hierarchy: {err}"
        ))),
        // A cgroup the caller named is what they asked for: not a run
        // without one.
        Err(err) if named.is_some() => Err(IsolateError::Config(format!(
            "the cgroup {} cannot hold boxes: {err}",
            named
                .map(|parent| parent.display().to_string())
                .unwrap_or_default()
        ))),
        Err(err) => {
            tracing::warn!(
                "running without cgroups (limits by rlimit, measurements by rusage): {err}"
            );
            Ok(None)
        }
    }
}

/// The executor's instance cgroup where the configuration places it.
fn place_instance(
    config: &IsolateConfig,
    strict: bool,
    optional: OptionalControllers,
) -> std::result::Result<CgroupController, crate::cgroup::CgroupError> {
    let placement = crate::cgroup::place(
        config.cgroup_root.as_deref(),
        config.cgroup_parent.as_deref(),
    )?;
    CgroupController::placed(&placement, &config.instance_id, strict, optional)
}

/// The memory every run of the executor may hold in all, box included,
/// when a memory cgroup can enforce it: the memory limit, or else the
/// address-space limit (isolate's `-m` without `--cg`, which stays an
/// `RLIMIT_AS` per process as well). RLIMIT_AS alone misses tmpfs pages
/// (the box, `/tmp`, `/dev/shm`) and kernel buffers (sockets, pipes).
fn memory_bound(config: &IsolateConfig) -> Option<u64> {
    config.memory_limit.or(config.address_space_limit)
}

/// The memory-only cgroup of an executor whose configuration turned
/// cgroups off but has a [`memory_bound`]; `None` (with a warning) when no
/// hierarchy is usable: the run's `absent_protections` then name the
/// cgroup, and kernel memory is unbounded.
fn place_memory_guard(config: &IsolateConfig) -> Option<CgroupController> {
    // Strict: a memory limit that cannot be written is an error, not a run
    // without it.
    let placed = place_instance(
        config,
        true,
        OptionalControllers {
            cpu_weight: false,
            cpuset: false,
        },
    );
    placed
        .inspect_err(|err| {
            tracing::warn!("no memory cgroup: the memory limit is RLIMIT_AS only: {err}");
        })
        .ok()
}

/// The configured network namespace every run of the executor joins;
/// none without namespaces, with `share_net`, or when none is configured
/// (the executor then makes its own, see `network_pending`).
fn network_namespace(config: &IsolateConfig, namespaces: bool) -> Result<Option<OwnedFd>> {
    if !namespaces || config.share_net {
        return Ok(None);
    }
    let Some(path) = &config.network_namespace else {
        return Ok(None);
    };
    let file = File::open(path).map_err(|source| {
        IsolateError::io(
            format!("opening the network namespace {}", path.display()),
            source,
        )
    })?;
    Ok(Some(OwnedFd::from(file)))
}

impl ProcessExecutor {
    /// Makes the empty network namespace the runs join, if it is still to
    /// be made (see `network_pending`).
    fn make_network(&mut self) -> Result<()> {
        if self.network_pending {
            let netns = sys::new_network_namespace()
                .map_err(|source| IsolateError::io("unshare(CLONE_NEWNET)", source))?;
            self.network = Some(netns);
            self.network_pending = false;
        }
        Ok(())
    }
}

/// How many CPUs are online: an upper bound of how many the box can use at
/// once (its affinity is the keeper's, within the online ones), so CPU
/// checks paced by it come early rather than late. Read from one sysfs
/// file: `available_parallelism` reads the keeper's own cgroup quota too
/// (four files and a `sched_getaffinity`), which does not bound the box,
/// and cost every command-line run a few dozen µs. 1 when unreadable.
fn online_cpus() -> u32 {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|list| count_cpu_list(list.trim()))
        .filter(|&count| count > 0)
        .unwrap_or(1)
}

/// The number of CPUs in a kernel CPU list such as `0-3,5,8-9`.
fn count_cpu_list(list: &str) -> Option<u32> {
    list.split(',').try_fold(0u32, |count, part| {
        let (first, last) = match part.split_once('-') {
            Some((first, last)) => (first.parse::<u32>().ok()?, last.parse::<u32>().ok()?),
            None => {
                let only = part.parse::<u32>().ok()?;
                (only, only)
            }
        };
        count.checked_add(last.checked_sub(first)?.checked_add(1)?)
    })
}

/// Compiles the system-call filter an executor of `config` with cgroups
/// would install, and keeps it for this process: an executor made later
/// by this process, or by a process it forks (with no exec) after, finds
/// it compiled. For a process that forks workers which each make an
/// executor, such as the isolate face's service and its spare agents.
pub fn compile_filter_ahead(config: &IsolateConfig) -> Result<()> {
    seccomp_policy(config, true, false).map(drop)
}

/// The system-call filter of every run, compiled once.
fn seccomp_policy(
    config: &IsolateConfig,
    has_cgroup: bool,
    in_user_namespace: bool,
) -> Result<Option<SeccompPolicy>> {
    if !config.seccomp {
        return Ok(None);
    }
    let memory_without_cgroup = config.rlimit_only_memory(has_cgroup).is_some();
    let options = PolicyOptions {
        syscall_flags: config.syscall_flags,
        share_net: config.share_net,
        memory_without_cgroup,
        ipc_unsized: memory_without_cgroup && in_user_namespace,
    };
    let policy = SeccompPolicy::with_options(config.seccomp_policy.as_deref(), &options)?;
    Ok(Some(policy))
}

/// Kills whatever runs in an executor's box, from any thread, while the
/// executor's own thread waits for the run: for a caller whose client went
/// away. The run then ends killed (its verdict says so), and a warm box
/// stays usable. Needs the executor's cgroups; without them it does
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunKiller {
    cgroups: Vec<PathBuf>,
}

impl RunKiller {
    /// Kills every process of the runs below the executor's cgroups: with
    /// `cgroup.kill` (v2) at once, otherwise each pid listed. A cold run's
    /// proxy (pid 1 of the box) is among them, and the box dies with it.
    pub fn kill(&self) {
        for path in &self.cgroups {
            let Ok(children) = std::fs::read_dir(path) else {
                continue;
            };
            for child in children.flatten() {
                if !child.file_type().is_ok_and(|kind| kind.is_dir()) {
                    continue;
                }
                let run = child.path();
                // On cgroup v2 a warm run has a cgroup of its own and the
                // box's holder another: killing the run's ends it, and the
                // holder reaps it, answers and serves the next run.
                // `cgroup.kill` on the holder's would kill it
                // asynchronously, and the next run could start in a holder
                // still dying. On v1 a warm run shares the holder's cgroup,
                // so both die, at once, and the next run builds a new box.
                let holders = warm::is_holder_cgroup(&child.file_name());
                if holders && run.join("cgroup.kill").exists() {
                    continue;
                }
                if std::fs::write(run.join("cgroup.kill"), "1").is_ok() {
                    continue;
                }
                let Ok(pids) = std::fs::read_to_string(run.join("cgroup.procs")) else {
                    continue;
                };
                for pid in pids
                    .lines()
                    .filter_map(|line| line.trim().parse::<i32>().ok())
                    .filter_map(rustix::process::Pid::from_raw)
                {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::count_cpu_list;

    #[test]
    fn cpu_lists_are_counted_and_garbage_is_refused() {
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list("0-1"), Some(2));
        assert_eq!(count_cpu_list("0-3,5,8-9"), Some(7));
        assert_eq!(count_cpu_list(""), None);
        assert_eq!(count_cpu_list("3-1"), None);
        assert_eq!(count_cpu_list("0-x"), None);
        assert!(super::online_cpus() >= 1);
    }
}
