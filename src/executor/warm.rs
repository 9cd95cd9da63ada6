//! Warm runs ([`IsolateConfig::warm`]): the box's namespaces, filesystem
//! and cgroup are built once by a [`Holder`] and outlive a run; each run
//! is a fork of the holder.
//!
//! The holder lives in a cgroup of its own below the executor's
//! (`warm-<n>`). No run is ever moved between cgroups:
//!
//! - cgroup v1: every run the holder forks is born in `warm-<n>` too.
//!   Before a run the keeper writes the run's limits into it and starts
//!   its CPU-time and peak-memory counters over; the counters that cannot
//!   start over (OOM kills, pids-limit hits) are read before and after the
//!   run. Memory the cgroup still holds from earlier runs (files left in
//!   the working directory) is added to the limit and taken off the peak,
//!   so the program gets its whole limit and its own peak.
//! - cgroup v2: counters cannot start over (`memory.peak` is resettable
//!   only from Linux 6.12), so each run gets a fresh cgroup `held-<run>`
//!   with its limits, a sibling of `warm-<n>` below the executor's cgroup
//!   (which holds no process and hands the controllers down to both). The
//!   keeper sends its directory with the run's descriptors and the holder
//!   creates the inmate straight into it (`clone3(CLONE_INTO_CGROUP)`): every
//!   figure of the run is its own, read and the cgroup removed as after a
//!   cold run.
//!
//! A run that cannot be held (see [`JailSpec::can_be_held`]), whose plan
//! does not fit the holder's shared memory, or whose box could not be built
//! runs cold. A holder that died, failed to renew the box or
//! ran into a keeper error is dropped (killed, its cgroup removed) and the
//! next run builds a new one.
//!
//! [`IsolateConfig::warm`]: crate::config::IsolateConfig::warm
//! [`JailSpec::can_be_held`]: crate::jail::JailSpec::can_be_held

use std::os::fd::AsFd;
use std::time::Instant;

use super::spawn::{io_err, KeeperEnds};
use super::verdict::RunFacts;
use super::watch::Streams;
use super::{ProcessExecutor, Stdin};
use crate::cgroup::{CgroupController, CgroupLimits, CgroupUsage, CgroupVersion};
use crate::config::IsolateConfig;
use crate::dirs::DirRule;
use crate::error::{IsolateError, Result};
use crate::jail::CgroupEntry;
use crate::jail::{self, Holder};

/// The name of a holder's cgroup starts so; a run's does not.
const HOLDER_CGROUP_PREFIX: &str = "warm-";

/// Whether a cgroup directory named `name` is a holder's (not a run's).
pub(super) fn is_holder_cgroup(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes()
        .starts_with(HOLDER_CGROUP_PREFIX.as_bytes())
}

/// What of the configuration is built into a warm box: when it changes,
/// the box is built anew.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct BoxKey {
    default_dirs: bool,
    dir_rules: Vec<DirRule>,
    tmp_size: u64,
    shm_size: u64,
    share_net: bool,
    /// The memory bound no memory cgroup enforces: it sizes the box's
    /// tmpfs mounts and its IPC pools, which the holder sets up.
    unenforced_memory: Option<u64>,
    /// The holder is placed on these CPUs when it starts.
    cpu_affinity: Option<crate::cpus::CpuList>,
}

impl BoxKey {
    fn of(config: &IsolateConfig) -> Self {
        Self {
            default_dirs: config.default_dirs,
            dir_rules: config.dir_rules.clone(),
            tmp_size: config.tmp_size,
            shm_size: config.shm_size,
            share_net: config.share_net,
            // Only a box with a cgroup is held.
            unenforced_memory: config.rlimit_only_memory(true),
            cpu_affinity: config.cpu_affinity.clone(),
        }
    }
}

/// A built box and its holder.
#[derive(Debug)]
pub(super) struct WarmBox {
    // Dropped first: the holder is killed and reaped before its cgroup
    // is removed.
    holder: Holder,
    cgroup: CgroupController,
    key: BoxKey,
    /// Memory the cgroup held with the holder alone, just after the build.
    footprint: u64,
    /// The limits last written into the cgroup (unchanged ones are not
    /// written again).
    limits: Option<CgroupLimits>,
    /// The cgroup's OOM kills and pids-limit hits so far: counters that
    /// never start over, so a run's are what it adds.
    counted: (u64, u64),
    /// The holder can be given another working directory before its first
    /// run (see [`SpareBox`]).
    workdir_replaceable: bool,
}

/// A warm box built before the box it is to serve is known, with only a
/// mount point where a box's directory comes: a resident process keeps one
/// ready so that a box made on request (isolate's `--init`) has a warm
/// first run, with none of the box's building on the request's path.
///
/// What differs from box to box is left out of it: the working directory
/// is put in place by [`into_executor`](Self::into_executor) (a detached
/// mount of the box's own directory, made private), the user is each
/// run's, and the executor keeps the spare's own cgroup (on cgroup v1,
/// where runs are counted in the holder's cgroup, its counters start over
/// before each run as in any warm box; on v2 each run has a fresh cgroup
/// below it). Every namespace of the box is new and served no run before.
#[derive(Debug)]
pub struct SpareBox {
    executor: ProcessExecutor,
}

impl SpareBox {
    /// Builds a spare box for executors configured like `config` (see
    /// [`fits`](Self::fits)); `config.workdir` is a stand-in directory of
    /// the caller's, opened but never mounted in the box (only its mount
    /// point is made), and closed once the box is built: the caller may
    /// remove it then. The holder keeps the calling thread's priority
    /// until [`into_executor`](Self::into_executor) gives it the caller's
    /// then. `None` when such a box cannot be held.
    pub fn build(config: IsolateConfig) -> Result<Option<Self>> {
        let mut executor = ProcessExecutor::new(config)?;
        executor.builds_spare = true;
        let built = executor.prepare_warm_box();
        executor.builds_spare = false;
        if !built? {
            return Ok(None);
        }
        // The stand-in is never used again: closed now, while the spare
        // waits, rather than when its box is handed over.
        executor.workdir = None;
        let replaceable = executor
            .warmth
            .warm_box
            .as_ref()
            .is_some_and(|warm| warm.workdir_replaceable);
        Ok(replaceable.then_some(Self { executor }))
    }

    /// Whether an executor configured like `config` can be this box's
    /// (see [`into_executor`](Self::into_executor)): the same configuration
    /// but for the box's own directory, user, cgroup name and proxy
    /// record, the same box layout, and the holder alive.
    pub fn fits(&self, config: &IsolateConfig) -> bool {
        let executor = &self.executor;
        executor.warmth.warm_box.as_ref().is_some_and(|warm| {
            warm.workdir_replaceable
                && warm.key == BoxKey::of(config)
                && spare_part(&executor.config) == spare_part(config)
                && config.proxy_record.is_none()
                && warm.holder.is_alive()
        })
    }

    /// The executor of runs configured like `config`, with this box as its
    /// warm box, when it [`fits`](Self::fits): `config`'s working directory
    /// is attached at the box's mount point (a detached mount of it, made
    /// private, attached in the box's mount namespace), and its first run
    /// is a warm one. The executor keeps the spare's cgroup (removed with
    /// it, also by [`ProcessExecutor::close_keeping_cgroups`]) and its
    /// network namespace; `config`'s cgroup is made only if a run ever
    /// goes cold.
    pub fn into_executor(self, config: IsolateConfig) -> Result<ProcessExecutor> {
        if !self.fits(&config) {
            return Err(IsolateError::Config(
                "the spare box does not fit this configuration".into(),
            ));
        }
        let mut executor = self.executor;
        let (credentials, claim) = super::uid::box_credentials(&config, crate::sys::is_root())?;
        let workdir = super::workdir::Workdir::open(&config.workdir)?;
        let tree = crate::sys::detached_copy(workdir.dir.fd.as_fd())
            .map_err(|source| IsolateError::io("open_tree of the working directory", source))?;
        if let Some(warm) = &mut executor.warmth.warm_box {
            // A spare built at a low priority (so as not to slow the runs
            // under way) serves its box at the caller's, from the
            // attachment of the box's directory on.
            let holder = rustix::process::Pid::from_raw(warm.holder.proxy().pid);
            if let Ok(nice) = rustix::process::getpriority_process(None) {
                let _ = rustix::process::setpriority_process(holder, nice);
            }
            warm.holder.attach_workdir(tree.as_fd())?;
        }
        executor.config = config;
        executor.credentials = credentials;
        executor._uid_claim = claim;
        executor.workdir = Some(workdir);
        executor.cgroup_is_spares = true;
        Ok(executor)
    }
}

/// What a spare box and the executor adopting it must agree on: their
/// settled configuration but for what is the box's own (its directory,
/// user, cgroup name and proxy record).
fn spare_part(config: &IsolateConfig) -> IsolateConfig {
    IsolateConfig {
        instance_id: String::new(),
        workdir: std::path::PathBuf::new(),
        uid: None,
        gid: None,
        proxy_record: None,
        ..config.settled_part()
    }
}

/// Builds of one configuration that may fail in a row before its runs go
/// cold for good: each failed build costs a run the time of a build.
const BUILD_ATTEMPTS: u32 = 3;

/// The executor's warm box, if any, and what it knows about building one.
#[derive(Debug, Default)]
pub(super) struct Warmth {
    warm_box: Option<WarmBox>,
    /// A box of this configuration cannot be held, or failed to build
    /// [`BUILD_ATTEMPTS`] times in a row: its runs go cold until the
    /// configuration changes.
    refused: Option<BoxKey>,
    /// Builds that failed in a row (a transient failure, such as running
    /// out of descriptors, must not cost the warm path for good).
    failed_builds: u32,
    /// Boxes built so far (names their cgroups).
    built: u64,
}

impl Warmth {
    /// Kills the holder and removes its cgroup.
    pub(super) fn drop_box(&mut self) {
        self.warm_box = None;
    }
}

impl ProcessExecutor {
    /// Runs `command` in the warm box, building it first when needed; gives
    /// `stdin` back when the run must go cold instead.
    pub(super) fn run_warm(
        &mut self,
        command: &[String],
        stdin: Stdin,
    ) -> std::result::Result<Result<RunFacts>, Stdin> {
        let holdable = self.holdable();
        let key = BoxKey::of(&self.config);
        if !holdable || self.warmth.refused.as_ref() == Some(&key) {
            return Err(stdin);
        }
        let mut warm = match self.warmth.warm_box.take() {
            Some(warm) if warm.key == key && warm.holder.is_alive() => warm,
            // A box costs what a cold run costs: built only for an
            // executor that is being reused.
            _ if self.runs < 2 => return Err(stdin),
            _ => match self.build_or_refuse(command, key) {
                Ok(Some(warm)) => warm,
                Ok(None) => return Err(stdin),
                Err(err) => {
                    tracing::warn!("cannot build a warm box, running cold: {err}");
                    return Err(stdin);
                }
            },
        };
        // The box's own isolation is in the holder; the run brings only
        // its command, environment, paths and rlimits.
        let plan = match self.plan_with(command, true, jail::Isolation::default(), true) {
            Ok(plan) => plan,
            Err(err) => {
                self.warmth.warm_box = Some(warm);
                return Ok(Err(err));
            }
        };
        if !warm.holder.prepare(&plan.spec) {
            self.warmth.warm_box = Some(warm);
            return Err(stdin);
        }
        match self.run_held(&mut warm, &plan.spec, stdin) {
            Ok((facts, healthy)) => {
                if healthy {
                    self.warmth.warm_box = Some(warm);
                }
                Ok(facts)
            }
            // The box goes with `warm`; the run after this cold one builds
            // a new one.
            Err(stdin) => {
                tracing::debug!("the warm box died before the run started: running cold");
                Err(stdin)
            }
        }
    }

    /// Builds the warm box now rather than on the executor's second run,
    /// for an executor that is known to serve run after run (a pool's box
    /// made ahead of time, an isolate box's agent between two runs): the
    /// next run then starts in a ready box. `Ok(false)` when this
    /// configuration runs cold (see [`IsolateConfig::warm`]); a box that
    /// is already built and alive is kept.
    ///
    /// The working directory is opened but not handed to the box's user:
    /// that stays the business of each run, and an isolate box's client
    /// may still be giving the files of the last run back to their owner.
    ///
    /// [`IsolateConfig::warm`]: crate::config::IsolateConfig::warm
    pub fn prepare_warm_box(&mut self) -> Result<bool> {
        let key = BoxKey::of(&self.config);
        if !self.holdable() || self.warmth.refused.as_ref() == Some(&key) {
            return Ok(false);
        }
        if let Some(warm) = &self.warmth.warm_box {
            if warm.key == key && warm.holder.is_alive() {
                return Ok(true);
            }
        }
        self.warmth.drop_box();
        self.renew_spent_instance()?;
        self.make_network()?;
        if self.workdir.is_none() {
            self.workdir = Some(super::workdir::Workdir::open(&self.config.workdir)?);
        }
        // The holder's plan needs a command only to be a whole plan: the
        // holder never runs it, every run brings its own.
        let placeholder = [String::from("/bin/true")];
        let warm = self.build_or_refuse(&placeholder, key)?;
        let built = warm.is_some();
        self.warmth.warm_box = warm;
        Ok(built)
    }

    /// [`build_warm_box`](Self::build_warm_box), keeping count: a
    /// configuration that cannot be held, or whose builds failed
    /// [`BUILD_ATTEMPTS`] times in a row, is refused from then on.
    fn build_or_refuse(&mut self, command: &[String], key: BoxKey) -> Result<Option<WarmBox>> {
        let built = self.build_warm_box(command, key.clone());
        match &built {
            Ok(Some(_)) => self.warmth.failed_builds = 0,
            Ok(None) => self.warmth.refused = Some(key),
            Err(_) => {
                self.warmth.failed_builds += 1;
                if self.warmth.failed_builds >= BUILD_ATTEMPTS {
                    self.warmth.refused = Some(key);
                }
            }
        }
        built
    }

    /// Whether this executor's runs can be held at all: a holder is built
    /// by root (its id maps and cgroup moves), so a box in a user namespace
    /// runs cold, as does one without a cgroup or with a proxy record.
    fn holdable(&self) -> bool {
        self.config.warm
            && self.namespaces
            && self.user_namespace.is_none()
            && self.config.proxy_record.is_none()
            && self.cgroup.is_some()
    }

    /// Builds the box for runs like `command`: its cgroup, then the holder
    /// in it. `None` when this configuration cannot be held.
    fn build_warm_box(&mut self, command: &[String], key: BoxKey) -> Result<Option<WarmBox>> {
        let Some(parent) = &self.cgroup else {
            return Ok(None);
        };
        self.warmth.built += 1;
        let cgroup =
            parent.create_child(&format!("{HOLDER_CGROUP_PREFIX}{}", self.warmth.built))?;
        cgroup.apply_limits(&self.run_limits())?;
        let plan = self.plan(command, true)?;
        if !plan.spec.can_be_held() {
            return Ok(None);
        }
        let holder = match (cgroup.self_join_files()?, cgroup.directory_fd()) {
            (Some(tasks), _) => Holder::spawn(&plan.spec, CgroupEntry::Join(&tasks))?,
            (None, Some(dir)) => Holder::spawn(&plan.spec, CgroupEntry::Born(dir))?,
            (None, None) => return Ok(None),
        };
        let footprint = cgroup.memory_usage()?;
        let usage = cgroup.usage()?;
        tracing::debug!(pid = holder.proxy().pid, footprint, "warm box built");
        Ok(Some(WarmBox {
            holder,
            cgroup,
            key,
            footprint,
            limits: None,
            counted: (usage.oom_kills, usage.pids_limit_hits),
            workdir_replaceable: plan.spec.workdir_replaceable(),
        }))
    }

    /// One run in `warm`: the facts, and whether the box can serve another;
    /// or, when the holder was gone before the program started, `stdin`
    /// back for a cold run.
    fn run_held(
        &self,
        warm: &mut WarmBox,
        spec: &jail::JailSpec,
        stdin: Stdin,
    ) -> std::result::Result<(Result<RunFacts>, bool), Stdin> {
        // v2: the run's own cgroup; v1: the box's, made ready for the run.
        let (run_cgroup, leftover) = if warm.cgroup.version() == CgroupVersion::V2 {
            match self.open_held_cgroup() {
                Ok(run_cgroup) => (Some(run_cgroup), 0),
                // Nothing of the run started: the box is as good as before.
                Err(err) => return Ok((Err(err), true)),
            }
        } else {
            match self.ready_cgroup(warm) {
                Ok(leftover) => (None, leftover),
                Err(err) => return Ok((Err(err), false)),
            }
        };
        // A file is shared with the box by descriptor: a copy of it gives
        // the stdin of a run that never started back (bytes come back from
        // the streams).
        let spare_file = match &stdin {
            Stdin::File(file) => file.try_clone().ok(),
            _ => None,
        };
        let stdin_was_file = matches!(stdin, Stdin::File(_));
        let (box_ends, keeper) = match self.pipes(stdin) {
            Ok(pipes) => pipes,
            // Nothing of the run started: the box is as good as before.
            Err(err) => return Ok((Err(err), true)),
        };
        let KeeperEnds {
            mut streams,
            report,
            ..
        } = keeper;
        let start = Instant::now();
        let started = warm.holder.go(
            [
                box_ends.stdin.as_fd(),
                box_ends.stdout.as_fd(),
                box_ends.stderr.as_fd(),
                box_ends.report.as_fd(),
            ],
            run_cgroup.as_ref().and_then(CgroupController::directory_fd),
        );
        // The holder has its own copies now; ours would keep the pipes
        // from ever reporting end of file.
        drop(box_ends);
        // A holder gone before it took up the run (killed between runs,
        // and not yet seen dead) leaves the run to a cold box: never an
        // error or a verdict of its own.
        let not_started = |warm: &mut WarmBox, streams: &mut Streams, run_cgroup| {
            warm.holder.kill();
            if let Some(run_cgroup) = run_cgroup {
                if let Err(err) = self.close_run_cgroup(run_cgroup) {
                    tracing::warn!("removing a warm run's cgroup: {err}");
                }
            }
            let stdin = match (stdin_was_file, streams.take_stdin_data()) {
                (true, _) => spare_file.map(Stdin::File),
                (false, data) if data.is_empty() => Some(Stdin::Null),
                (false, data) => Some(Stdin::Bytes(data)),
            };
            stdin.ok_or_else(|| {
                IsolateError::Config("the warm box died and its stdin cannot be reopened".into())
            })
        };
        if let Err(err) = started {
            tracing::debug!("the warm box is gone: {err}");
            return match not_started(warm, &mut streams, run_cgroup) {
                Ok(stdin) => Err(stdin),
                Err(err) => Ok((Err(err), false)),
            };
        }
        let watched = self.watch(
            warm.holder.proxy(),
            warm.holder.ended_fd(),
            Some(run_cgroup.as_ref().unwrap_or(&warm.cgroup)),
            &mut streams,
            start,
        );
        let (killed_for, wall, hard_killed) = match watched {
            Ok(watched) => watched,
            Err(err) => {
                warm.holder.kill();
                return Ok((Err(err), false));
            }
        };
        // A holder sent SIGKILL may have answered just before it: it is
        // dead or dying all the same, and must not serve the next run.
        let healthy = warm.holder.finish() && !hard_killed;
        // Dead before it started the inmate: nothing of the run ran, not
        // even when a limit passed while the keeper waited for it.
        if !healthy && !warm.holder.started() {
            return match not_started(warm, &mut streams, run_cgroup) {
                Ok(stdin) => Err(stdin),
                Err(err) => Ok((Err(err), false)),
            };
        }
        // A holder that did not finish the run is killed: with it goes
        // every process of the box, and its end tells how the run ended.
        let holder_status = if healthy { 0 } else { warm.holder.kill() };
        let reports = match jail::report::read_reports(report) {
            Ok(reports) => reports,
            Err(err) => {
                warm.holder.kill();
                return Ok((Err(io_err("reading the box's status")(err)), false));
            }
        };
        let (stdout, stderr) = streams.finish();
        let mut facts = RunFacts {
            killed_for,
            seccomp: self.seccomp.is_some(),
            cpu_kill: self.config.cpu_kill_threshold(),
            file_size_limited: self.config.file_size_limit.is_some(),
            wall,
            stdout,
            stderr,
            ..RunFacts::default()
        };
        self.take_reports(&mut facts, spec, reports, holder_status);
        if let Some(run_cgroup) = run_cgroup {
            // The holder reaped every process of the run: its cgroup is
            // empty (else `remove` kills what is left).
            return match self.close_run_cgroup(run_cgroup) {
                Ok(usage) => {
                    // A cold run's cgroup also holds its proxy, which the
                    // process peak leaves out; this one holds the program
                    // alone.
                    facts.measured_by(&CgroupUsage {
                        pids_peak: usage.pids_peak.map(|peak| peak.saturating_add(1)),
                        ..usage
                    });
                    Ok((Ok(facts), healthy))
                }
                Err(err) => Ok((Err(err), false)),
            };
        }
        let after = match warm.cgroup.usage() {
            Ok(after) => after,
            Err(err) => return Ok((Err(err.into()), false)),
        };
        let (oom_kills, pids_limit_hits) = warm.counted;
        warm.counted = (after.oom_kills, after.pids_limit_hits);
        facts.measured_by(&CgroupUsage {
            cpu_time: after.cpu_time,
            memory_peak: after.memory_peak.saturating_sub(leftover),
            oom_kills: after.oom_kills.saturating_sub(oom_kills),
            pids_limit_hits: after.pids_limit_hits.saturating_sub(pids_limit_hits),
            // The kernel's peak covers every run the box has held and
            // cannot be started over: no figure rather than a wrong one.
            pids_peak: None,
        });
        Ok((Ok(facts), healthy))
    }

    /// cgroup v2: a fresh cgroup for the next run, a sibling of the
    /// holder's, with the run's limits. Unlike a cold run's, the holder
    /// (pid 1 of the box) is not in it: the program's process limit is the
    /// cgroup's.
    fn open_held_cgroup(&self) -> Result<CgroupController> {
        let Some(parent) = &self.cgroup else {
            return Err(crate::error::IsolateError::Config(
                "a warm box without a cgroup".into(),
            ));
        };
        let run = parent.create_child(&format!("held-{}", self.runs))?;
        run.apply_limits(&CgroupLimits {
            pids: self.config.process_limit,
            ..self.run_limits()
        })?;
        Ok(run)
    }

    /// Writes the run's limits into the box's cgroup (where they changed)
    /// and starts its counters over. Returns the memory the cgroup holds
    /// beyond the holder's own: it is added to the limit (in whole MiB, so
    /// that a few pages more or less do not mean a write) and taken off the
    /// peak.
    fn ready_cgroup(&self, warm: &mut WarmBox) -> Result<u64> {
        const MIB: u64 = 1 << 20;
        let leftover = warm.cgroup.memory_usage()?.saturating_sub(warm.footprint);
        let allowance = if leftover < MIB {
            0
        } else {
            leftover.div_ceil(MIB) * MIB
        };
        let limits = self.run_limits();
        let limits = CgroupLimits {
            memory: limits.memory.map(|bytes| bytes.saturating_add(allowance)),
            ..limits
        };
        if warm.limits.as_ref() != Some(&limits) {
            warm.limits = None;
            warm.cgroup.apply_limits(&limits)?;
            warm.limits = Some(limits);
        }
        if !warm.cgroup.reset_counters()? {
            return Err(crate::error::IsolateError::Config(
                "the warm box's cgroup cannot reset its counters".into(),
            ));
        }
        Ok(leftover)
    }
}
