//! A warm pool of boxes: executors made ahead of time, handed out one run
//! at a time, reset between runs and replaced when a reset fails.
//!
//! A box is a [`ProcessExecutor`] (its cgroup, network namespace and uid
//! already settled) with a working directory of its own below the pool's
//! base directory. A [`Lease`] hands it out; dropping the lease resets it:
//! the configuration goes back to the box's own, everything the run left in
//! the working directory is removed, and the directory is checked to be
//! empty, owned by root and not a link. Boxes are warm from their first run
//! ([`IsolateConfig::warm`], built with the box by
//! [`ProcessExecutor::prepare_warm_box`]): their namespaces, filesystem and
//! cgroup outlive a run, and the box itself renews `/tmp` and `/dev/shm`, kills
//! what a run left and starts its counters over between runs. A box that
//! fails its reset is destroyed and a new one is made in its place when
//! next needed.
//!
//! At most `size` boxes exist and are leased at once; at most `queue`
//! callers wait for one, and one more is refused with
//! [`PoolError::QueueFull`] rather than queued without bound.
//!
//! [`Pool::shutdown`] waits for every leased box to come back, then
//! destroys them all; a pool dropped without it destroys its idle boxes at
//! once and each leased one when it comes back, so an early return or a
//! panic leaves no holder, mount or cgroup behind.
//!
//! ```no_run
//! use isobox::pool::{Pool, PoolConfig};
//! use isobox::IsolateConfig;
//!
//! let pool = Pool::new(PoolConfig {
//!     template: IsolateConfig::default(),
//!     base_dir: "/run/isobox/pool-example".into(),
//!     size: 2,
//!     warm: 2,
//!     queue: 16,
//!     box_size: Some(256 << 20),
//!     box_cpus: None,
//! })?;
//! let mut lease = pool.acquire()?;
//! let result = lease.executor().execute(&["/bin/true".to_string()], None)?;
//! drop(lease); // reset, back in the pool
//! pool.shutdown();
//! # Ok::<(), isobox::pool::PoolError>(())
//! ```

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::cpus::CpuList;
use crate::{IsolateConfig, IsolateError, ProcessExecutor};

/// How a pool is made.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The configuration of every box. Its `workdir` is ignored (each box
    /// gets `<base_dir>/box-<n>`) and its `instance_id` is a prefix: box
    /// `n` is `<instance_id>-box<n>`.
    pub template: IsolateConfig,
    /// Directory holding the boxes' working directories; created (0700,
    /// only root needs to reach it: the box sees its directory through a
    /// mount) and removed again by [`Pool::shutdown`].
    pub base_dir: PathBuf,
    /// Most boxes alive, and so most runs at once.
    pub size: usize,
    /// Boxes made ahead of time by [`Pool::new`] (at most `size`); the
    /// rest are made on first need and then kept.
    pub warm: usize,
    /// Most callers waiting for a box at once.
    pub queue: usize,
    /// Mount a tmpfs of at most this many bytes (and one inode per 4 KiB)
    /// on each box directory, so that what a program writes is bounded
    /// in total, not only per file; `None` leaves the directory on the
    /// base directory's file system.
    pub box_size: Option<u64>,
    /// Spread the boxes over these CPUs, one CPU each (the one fewest live
    /// boxes have), as their [`IsolateConfig::cpu_affinity`]: a box's runs
    /// then stay on one CPU, and with no more boxes than CPUs no two boxes
    /// share one. `None` keeps the template's affinity.
    pub box_cpus: Option<CpuList>,
}

/// Errors of the pool.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Every box is busy and the wait queue is full.
    #[error("all {size} boxes are busy and {queue} requests are already waiting")]
    QueueFull {
        /// Boxes of the pool.
        size: usize,
        /// Length of the wait queue.
        queue: usize,
    },
    /// No box came free in time.
    #[error("no box came free within {0:?}")]
    Timeout(Duration),
    /// The pool is shutting down.
    #[error("the pool is shut down")]
    Closed,
    /// Making a box failed.
    #[error(transparent)]
    Isolate(#[from] IsolateError),
    /// A file operation of the pool failed.
    #[error("{context}: {source}")]
    Io {
        /// What the pool was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PoolError {
    let context = context.into();
    move |source| PoolError::Io { context, source }
}

/// One box: an executor and its working directory on the host.
#[derive(Debug)]
struct WarmBox {
    executor: ProcessExecutor,
    /// The configuration the box was made with, put back after every run.
    config: IsolateConfig,
    workdir: PathBuf,
    /// The box's CPU of [`PoolConfig::box_cpus`].
    cpu: Option<u32>,
}

#[derive(Debug, Default)]
struct State {
    idle: Vec<WarmBox>,
    /// Boxes alive: idle, leased, or being made.
    alive: usize,
    waiting: usize,
    closed: bool,
    next_id: u64,
    /// Boxes destroyed after a failed reset.
    replaced: u64,
    /// Live boxes placed on each CPU of [`PoolConfig::box_cpus`].
    boxes_per_cpu: Vec<(u32, usize)>,
}

impl State {
    /// Takes a place in the bounded wait queue, or refuses at once when it
    /// is full (waiting requests must not grow without bound).
    fn join_queue(&mut self, config: &PoolConfig) -> Result<(), PoolError> {
        if self.waiting >= config.queue {
            return Err(PoolError::QueueFull {
                size: config.size,
                queue: config.queue,
            });
        }
        self.waiting += 1;
        Ok(())
    }
}

#[derive(Debug)]
struct Shared {
    config: PoolConfig,
    state: Mutex<State>,
    /// Signalled whenever a box comes free or the pool closes.
    changed: Condvar,
}

/// A warm pool of boxes (see the [module documentation](self)).
#[derive(Debug, Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

/// Figures of a pool at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Boxes alive.
    pub alive: usize,
    /// Boxes idle in the pool.
    pub idle: usize,
    /// Callers waiting for a box.
    pub waiting: usize,
    /// Boxes destroyed and replaced after a failed reset.
    pub replaced: u64,
}

impl Pool {
    /// Makes the base directory and `warm` boxes.
    pub fn new(config: PoolConfig) -> Result<Self, PoolError> {
        if config.size == 0 {
            return Err(PoolError::Isolate(IsolateError::Config(
                "a pool needs at least one box".into(),
            )));
        }
        fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&config.base_dir)
            .map_err(io_error(format!(
                "creating the pool directory {}",
                config.base_dir.display()
            )))?;
        let warm = config.warm.min(config.size);
        let pool = Self {
            shared: Arc::new(Shared {
                config,
                state: Mutex::new(State::default()),
                changed: Condvar::new(),
            }),
        };
        for _ in 0..warm {
            let id = {
                let mut state = pool.shared.lock();
                state.alive += 1;
                state.next_id += 1;
                state.next_id
            };
            match pool.shared.make_box(id) {
                Ok(warm_box) => pool.shared.lock().idle.push(warm_box),
                Err(err) => {
                    // Counted alive above, never made: shutdown must not
                    // wait for it.
                    pool.shared.lock().alive -= 1;
                    pool.shutdown();
                    return Err(err);
                }
            }
        }
        Ok(pool)
    }

    /// Takes a box, waiting as long as it takes for one to come free.
    pub fn acquire(&self) -> Result<Lease, PoolError> {
        self.acquire_within(None)
    }

    /// Takes a box, waiting at most `timeout` for one to come free.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Lease, PoolError> {
        self.acquire_within(Some(timeout))
    }

    fn acquire_within(&self, timeout: Option<Duration>) -> Result<Lease, PoolError> {
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        let shared = &self.shared;
        let mut state = shared.lock();
        let mut queued = false;
        let id = loop {
            if state.closed {
                if queued {
                    state.waiting -= 1;
                }
                return Err(PoolError::Closed);
            }
            if let Some(warm_box) = state.idle.pop() {
                if queued {
                    state.waiting -= 1;
                }
                return Ok(Lease {
                    shared: shared.clone(),
                    warm_box: Some(warm_box),
                });
            }
            if state.alive < shared.config.size {
                if queued {
                    state.waiting -= 1;
                }
                state.alive += 1;
                state.next_id += 1;
                break state.next_id;
            }
            if !queued {
                state.join_queue(&shared.config)?;
                queued = true;
            }
            state = match deadline {
                None => shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        state.waiting -= 1;
                        return Err(PoolError::Timeout(timeout.unwrap_or_default()));
                    }
                    shared
                        .changed
                        .wait_timeout(state, left)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0
                }
            };
        };
        drop(state);
        match shared.make_box(id) {
            Ok(warm_box) => Ok(Lease {
                shared: shared.clone(),
                warm_box: Some(warm_box),
            }),
            Err(err) => {
                shared.lock().alive -= 1;
                // Room for a box again: wake every waiter, including
                // those of acquire_many.
                shared.changed.notify_all();
                Err(err)
            }
        }
    }

    /// Takes `count` boxes at once (commands wired together must run
    /// together): waits until that many can be had, so that two callers
    /// each holding part of what they need never wait for each other.
    pub fn acquire_many(&self, count: usize) -> Result<Vec<Lease>, PoolError> {
        let shared = &self.shared;
        if count > shared.config.size {
            return Err(PoolError::Isolate(IsolateError::Config(format!(
                "{count} boxes asked for at once, the pool has {}",
                shared.config.size
            ))));
        }
        let mut state = shared.lock();
        let mut queued = false;
        loop {
            if state.closed {
                if queued {
                    state.waiting -= 1;
                }
                return Err(PoolError::Closed);
            }
            let can_make = shared.config.size - state.alive;
            if state.idle.len() + can_make >= count {
                if queued {
                    state.waiting -= 1;
                }
                break;
            }
            if !queued {
                state.join_queue(&shared.config)?;
                queued = true;
            }
            state = shared
                .changed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        let mut leases = Vec::with_capacity(count);
        let mut to_make = Vec::new();
        for _ in 0..count {
            match state.idle.pop() {
                Some(warm_box) => leases.push(Lease {
                    shared: shared.clone(),
                    warm_box: Some(warm_box),
                }),
                None => {
                    state.alive += 1;
                    state.next_id += 1;
                    to_make.push(state.next_id);
                }
            }
        }
        drop(state);
        for (made, id) in to_make.iter().enumerate() {
            match shared.make_box(*id) {
                Ok(warm_box) => leases.push(Lease {
                    shared: shared.clone(),
                    warm_box: Some(warm_box),
                }),
                Err(err) => {
                    // This one and the ones not tried yet were counted alive.
                    shared.lock().alive -= to_make.len() - made;
                    shared.changed.notify_all();
                    return Err(err);
                }
            }
        }
        Ok(leases)
    }

    /// Figures of the pool now.
    pub fn stats(&self) -> PoolStats {
        let state = self.shared.lock();
        PoolStats {
            alive: state.alive,
            idle: state.idle.len(),
            waiting: state.waiting,
            replaced: state.replaced,
        }
    }

    /// Refuses new leases, waits for the leased boxes to come back, then
    /// destroys every box (cgroups, working directories) and the base
    /// directory.
    pub fn shutdown(&self) {
        let shared = &self.shared;
        let mut state = shared.close();
        while state.alive != 0 {
            state = shared
                .changed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        shared.remove_base_dir_once_empty(&state);
    }
}

impl Drop for Pool {
    /// A pool dropped without [`shutdown`](Pool::shutdown) (a caller that
    /// returned early or panicked) still leaves nothing behind: its idle
    /// boxes (holders, mounts, cgroups) are destroyed now, and each leased
    /// one when it comes back, the last of them taking the base directory
    /// along. It never waits for a lease, which may belong to the thread
    /// dropping the pool.
    fn drop(&mut self) {
        let state = self.shared.close();
        self.shared.remove_base_dir_once_empty(&state);
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves counters, never memory,
        // inconsistent: keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The CPU a new box goes on: of the pool's CPUs, one with the fewest
    /// live boxes.
    fn take_cpu(&self) -> Option<u32> {
        let cpus = self.config.box_cpus.as_ref()?;
        let mut state = self.lock();
        if state.boxes_per_cpu.is_empty() {
            state.boxes_per_cpu = cpus.iter().map(|cpu| (cpu, 0)).collect();
        }
        let (cpu, boxes) = state
            .boxes_per_cpu
            .iter_mut()
            .min_by_key(|(_, boxes)| *boxes)?;
        *boxes += 1;
        Some(*cpu)
    }

    fn release_cpu(&self, cpu: Option<u32>) {
        if let Some(cpu) = cpu {
            let mut state = self.lock();
            if let Some((_, boxes)) = state.boxes_per_cpu.iter_mut().find(|(at, _)| *at == cpu) {
                *boxes -= 1;
            }
        }
    }

    fn make_box(&self, id: u64) -> Result<WarmBox, PoolError> {
        let cpu = self.take_cpu();
        let made = self.make_box_on(id, cpu);
        if made.is_err() {
            self.release_cpu(cpu);
        }
        made
    }

    fn make_box_on(&self, id: u64, cpu: Option<u32>) -> Result<WarmBox, PoolError> {
        let workdir = self.config.base_dir.join(format!("box-{id}"));
        match fs::symlink_metadata(&workdir) {
            Ok(_) => crate::fstree::remove_tree(&workdir)
                .map_err(io_error(format!("removing {}", workdir.display())))?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_error(format!("looking at {}", workdir.display()))(err)),
        }
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&workdir)
            .map_err(io_error(format!("creating {}", workdir.display())))?;
        if let Some(size) = self.config.box_size {
            if let Err(err) = mount_box_tmpfs(&workdir, size) {
                let _ = fs::remove_dir(&workdir);
                return Err(io_error(format!(
                    "mounting a tmpfs on {}",
                    workdir.display()
                ))(err));
            }
        }
        let config = IsolateConfig {
            workdir: workdir.clone(),
            instance_id: format!("{}-box{id}", self.config.template.instance_id),
            // A pooled box serves run after run: keep it built.
            warm: true,
            cpu_affinity: cpu
                .map(|cpu| std::iter::once(cpu).collect())
                .or_else(|| self.config.template.cpu_affinity.clone()),
            ..self.config.template.clone()
        };
        let mut executor = match ProcessExecutor::new(config.clone()) {
            Ok(executor) => executor,
            Err(err) => {
                remove_box_dir(&workdir, self.config.box_size.is_some());
                return Err(err.into());
            }
        };
        // Built here rather than in the box's second run, so that a run
        // never waits for it; a box that cannot be built runs cold.
        if let Err(err) = executor.prepare_warm_box() {
            tracing::warn!("box {id} runs cold: {err}");
        }
        Ok(WarmBox {
            executor,
            config,
            workdir,
            cpu,
        })
    }

    fn destroy(&self, mut warm_box: WarmBox) {
        if let Err(err) = warm_box.executor.cleanup() {
            tracing::warn!("cleaning up box {}: {err}", warm_box.workdir.display());
        }
        drop(warm_box.executor);
        remove_box_dir(&warm_box.workdir, self.config.box_size.is_some());
        self.release_cpu(warm_box.cpu);
    }

    /// Takes a box back: reset and idle, or destroyed when the reset fails
    /// or the pool is closing.
    fn give_back(&self, mut warm_box: WarmBox) {
        let reset = reset(&mut warm_box);
        let mut state = self.lock();
        match reset {
            Ok(()) if !state.closed => {
                state.idle.push(warm_box);
                drop(state);
            }
            outcome => {
                if let Err(err) = outcome {
                    tracing::warn!(
                        "box {} failed its reset, replacing it: {err}",
                        warm_box.workdir.display()
                    );
                    state.replaced += 1;
                }
                drop(state);
                self.destroy(warm_box);
                let mut state = self.lock();
                state.alive -= 1;
                // The last box of a closed pool takes the base directory.
                self.remove_base_dir_once_empty(&state);
            }
        }
        self.changed.notify_all();
    }

    /// Refuses new leases and destroys the idle boxes (a leased box is
    /// destroyed when it comes back, see [`give_back`](Self::give_back));
    /// the state afterwards, still locked.
    fn close(&self) -> MutexGuard<'_, State> {
        let mut state = self.lock();
        state.closed = true;
        self.changed.notify_all();
        for warm_box in std::mem::take(&mut state.idle) {
            state.alive -= 1;
            drop(state);
            self.destroy(warm_box);
            state = self.lock();
        }
        state
    }

    /// Removes the pool's base directory and whatever is left in it once
    /// the pool is closed and no box is left. Called with the state locked
    /// (`state`), so that a shutdown and the last lease to come back never
    /// walk the directory at once; the later of them finds nothing.
    fn remove_base_dir_once_empty(&self, state: &State) {
        if !state.closed || state.alive != 0 {
            return;
        }
        if let Err(err) = crate::fstree::remove_tree(&self.config.base_dir) {
            if err.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(
                    "removing the pool directory {}: {err}",
                    self.config.base_dir.display()
                );
            }
        }
    }
}

/// Mounts the box's own tmpfs on `dir`.
fn mount_box_tmpfs(dir: &Path, size: u64) -> std::io::Result<()> {
    use rustix::mount::MountFlags;
    let size = size.max(4096);
    let inodes = (size / 4096).max(64);
    let options = std::ffi::CString::new(format!("size={size},nr_inodes={inodes},mode=0755"))
        .expect("no NUL in numbers");
    rustix::mount::mount(
        "isobox-pool-box",
        dir,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        options.as_c_str(),
    )?;
    Ok(())
}

/// Removes a box directory, unmounting its tmpfs first.
fn remove_box_dir(dir: &Path, mounted: bool) {
    if mounted {
        // Detached: nothing of the box runs any more, but a descriptor
        // left open somewhere must not keep the directory in place.
        if let Err(err) = rustix::mount::unmount(dir, rustix::mount::UnmountFlags::DETACH) {
            tracing::warn!("unmounting {}: {err}", dir.display());
        }
    }
    if let Err(err) = crate::fstree::remove_tree(dir) {
        if err.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("removing {}: {err}", dir.display());
        }
    }
}

/// Brings a box back to the state of a fresh one: its own configuration and
/// an empty working directory owned by root.
fn reset(warm_box: &mut WarmBox) -> std::io::Result<()> {
    *warm_box.executor.config_mut() = warm_box.config.clone();
    empty_directory(&warm_box.workdir)?;
    let meta = fs::symlink_metadata(&warm_box.workdir)?;
    let wrong = if !meta.is_dir() {
        Some("is no longer a directory")
    } else if meta.uid() != 0 && meta.uid() != rustix::process::geteuid().as_raw() {
        Some("has a foreign owner")
    } else if fs::read_dir(&warm_box.workdir)?.next().is_some() {
        Some("is not empty after the wipe")
    } else {
        None
    };
    match wrong {
        Some(what) => Err(std::io::Error::other(format!(
            "{} {what}",
            warm_box.workdir.display()
        ))),
        None => Ok(()),
    }
}

/// Removes everything inside `dir`, never following a link: no process of
/// the run is left (a cold box's PID namespace ended with the run, a warm
/// box's holder killed and reaped them all before answering), and
/// [`crate::fstree::remove_tree`] walks by descriptor, without following
/// links and without recursion, so a tree nested as deep as the box's
/// inodes allow cannot overflow the stack of the thread resetting it.
fn empty_directory(dir: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            crate::fstree::remove_tree(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// A box handed out by [`Pool::acquire`]; dropping it resets the box and
/// returns it to the pool.
#[derive(Debug)]
pub struct Lease {
    shared: Arc<Shared>,
    warm_box: Option<WarmBox>,
}

impl Lease {
    fn warm_box(&self) -> &WarmBox {
        // Only Drop takes the box out.
        self.warm_box.as_ref().expect("a lease holds its box")
    }

    /// The box's executor. Per-run settings may be changed through
    /// [`ProcessExecutor::config_mut`]; they are undone on return.
    pub fn executor(&mut self) -> &mut ProcessExecutor {
        &mut self
            .warm_box
            .as_mut()
            .expect("a lease holds its box")
            .executor
    }

    /// The CPU the box is placed on, if any.
    pub fn cpu(&self) -> Option<u32> {
        self.warm_box().cpu
    }

    /// The box's working directory on the host (empty when handed out).
    pub fn workdir(&self) -> &Path {
        &self.warm_box().workdir
    }

    /// Kills the box's run from another thread (see
    /// [`RunKiller`](crate::executor::RunKiller)).
    pub fn run_killer(&self) -> crate::executor::RunKiller {
        self.warm_box().executor.run_killer()
    }

    /// The cgroup directories of the box (empty without cgroups); each run
    /// makes a child cgroup below them.
    pub fn cgroup_paths(&self) -> Vec<PathBuf> {
        self.warm_box().executor.cgroup_paths()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(warm_box) = self.warm_box.take() {
            self.shared.give_back(warm_box);
        }
    }
}

/// Removes the cgroups of pool boxes whose process is gone (a pool
/// dropped by a `SIGKILL` never removes them): `<pid>-<n>-box<k>`, as a
/// template with the default [`IsolateConfig::instance_id`] names them,
/// below `cgroup_parent` when the pool was given one, else below `isobox`
/// in every hierarchy. What is left in them is killed first. Returns what
/// it removed.
pub fn sweep_dead_cgroups(cgroup_parent: Option<&Path>) -> Vec<PathBuf> {
    let own = std::process::id();
    let dead = |pid: u32| pid != own && !Path::new(&format!("/proc/{pid}")).exists();
    let hierarchies = match cgroup_parent {
        Some(parent) => vec![parent.to_path_buf()],
        None => cgroup_dirs(),
    };
    let mut removed = Vec::new();
    for hierarchy in hierarchies {
        for entry in fs::read_dir(&hierarchy).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !box_cgroup_pid(&name).is_some_and(dead) {
                continue;
            }
            if remove_cgroup(&entry.path()) {
                removed.push(entry.path());
            }
        }
    }
    removed
}

/// The pid of a pool box's cgroup name, `<pid>-<n>-box<k>`.
fn box_cgroup_pid(name: &str) -> Option<u32> {
    let (pid, rest) = name.split_once('-')?;
    let (_, k) = rest.split_once("-box")?;
    k.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// `isobox` below the root of every hierarchy that has one.
fn cgroup_dirs() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut dirs = vec![root.join("isobox")];
    for entry in fs::read_dir(root).into_iter().flatten().flatten() {
        dirs.push(entry.path().join("isobox"));
    }
    dirs.into_iter().filter(|dir| dir.is_dir()).collect()
}

/// Kills what is left in a cgroup and its children, then removes them,
/// children first.
fn remove_cgroup(dir: &Path) -> bool {
    for child in fs::read_dir(dir).into_iter().flatten().flatten() {
        if child.file_type().is_ok_and(|kind| kind.is_dir()) {
            remove_cgroup(&child.path());
        }
    }
    if fs::write(dir.join("cgroup.kill"), "1").is_err() {
        let pids = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in pids
            .lines()
            .filter_map(|line| line.trim().parse::<i32>().ok())
        {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
    // A killed process leaves its cgroup a moment after the signal.
    for _ in 0..50 {
        if fs::remove_dir(dir).is_ok() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    tracing::warn!("could not remove the cgroup {}", dir.display());
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_pool_box_cgroups() {
        assert_eq!(box_cgroup_pid("123-0-box4"), Some(123));
        // Runs of `isobox run` and isolate boxes are not the pool's.
        assert_eq!(box_cgroup_pid("123-0"), None);
        assert_eq!(box_cgroup_pid("box-4"), None);
    }
}
