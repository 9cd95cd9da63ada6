//! What to run with which limits: [`IsolateConfig`], its defaults and the
//! constants they are built from. The bottom of the crate: nothing here
//! imports from the layers above (executor, jail, cgroup).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use crate::dirs::{DirAction, DirOptions, DirRule, BOX_MOUNT_POINT};

/// `PATH` given to the program when the configuration does not set one.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// uid and gid of box 0; box N runs as `DEFAULT_BOX_ID_BASE + N`.
pub const DEFAULT_BOX_ID_BASE: u32 = 60000;

/// uids (and gids) of runs that name none ([`IsolateConfig::uid`] `None`,
/// `isobox run`): below isolate's default boxes (`60000..61000`), so an
/// isolate installation's `--cleanup` never meets one, and each claimed by
/// one executor at a time (see [`UID_CLAIM_DIR`]), so that two live runs
/// never share a uid or its per-uid kernel limits.
pub const ONE_SHOT_UIDS: std::ops::Range<u32> = 59000..60000;

/// Where an executor claims its uid from [`ONE_SHOT_UIDS`]: an exclusive
/// `flock` on the file named after the uid, held for the executor's life
/// and dropped by the kernel if the process dies. Only root writes here.
pub const UID_CLAIM_DIR: &str = "/run/isobox/uids";

/// The environment a program gets when the configuration names no other.
pub fn default_environment() -> Vec<(String, String)> {
    vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        ("HOME".into(), BOX_MOUNT_POINT.into()),
        ("LIBC_FATAL_STDERR_".into(), "1".into()),
    ]
}

/// The `PATH` a program named without a `/` is looked up along: the last
/// `PATH` of `environment`, or [`DEFAULT_PATH`] when it has none.
pub fn search_path(environment: &[(String, String)]) -> &str {
    environment
        .iter()
        .rev()
        .find(|(name, _)| name == "PATH")
        .map_or(DEFAULT_PATH, |(_, value)| value.as_str())
}

/// [`IsolateConfig::open_files_limit`] for as many open files as the kernel
/// lets a process have (`fs.nr_open`): what a limit of 0 asks for in both
/// command-line faces. A caller that may not raise its own hard limit gets
/// that hard limit instead.
pub const OPEN_FILES_UNLIMITED: u64 = u64::MAX;

/// Bytes of each of stdout and stderr a run keeps by default
/// ([`IsolateConfig::output_limit`]; `isobox run` uses the same): the keeper
/// holds captured output in its own memory, outside every limit of the box.
pub const DEFAULT_OUTPUT_LIMIT: u64 = 64 << 20;

/// isolate's `syscall_flags` bits (isolate 2.6, `isolate.h`;
/// [`IsolateConfig::syscall_flags`]): a set bit turns a restriction on.
pub mod syscall_flags {
    /// `keyctl`, `add_key`, `request_key` refused.
    pub const KEYCTL: u32 = 1;
    /// `AF_VSOCK` sockets refused.
    pub const VSOCK: u32 = 2;
    /// `fcntl` locks, leases and `F_NOTIFY`, and `flock`, refused.
    pub const FCNTL: u32 = 4;
    /// io_uring refused.
    pub const IO_URING: u32 = 8;
    /// System calls of foreign architectures (i386 on x86_64) refused.
    pub const LEGACY_ARCH: u32 = 16;
    /// Every restriction (isolate's default, 65535).
    pub const ALL: u32 = 0xffff;
}

/// A name no other executor of this host uses at the same time (the
/// default [`IsolateConfig::instance_id`]).
pub(crate) fn unique_instance_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// CPU weight in cgroup v1 units (`cpu.shares`); the kernel's own default.
pub const DEFAULT_CPU_SHARES: u64 = 1024;

/// A CPU bandwidth limit (CFS bandwidth control, cgroup v1
/// `cpu.cfs_quota_us`/`cpu.cfs_period_us`, v2 `cpu.max`): the run may use
/// `quota` of CPU time, all its processes together, in every `period` of
/// wall-clock time, and is throttled for the rest of the period once it
/// has. A quota of half the period is half a CPU; twice the period, two
/// CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuBandwidth {
    /// CPU time per period; the kernel takes 1 ms to about 17 minutes.
    pub quota: Duration,
    /// Length of a period; the kernel takes 1 ms to 1 s.
    pub period: Duration,
}

impl CpuBandwidth {
    /// The kernel's default period (100 ms), which go-judge uses too.
    pub const DEFAULT_PERIOD: Duration = Duration::from_millis(100);

    /// `thousandths` of a CPU (1000 is one whole CPU) over
    /// [`DEFAULT_PERIOD`](Self::DEFAULT_PERIOD): go-judge's
    /// `cpuRateLimit`.
    pub fn from_thousandths(thousandths: u64) -> Self {
        let period = Self::DEFAULT_PERIOD;
        // An absurd rate saturates instead of wrapping.
        let quota_us = (period.as_micros() as u64).saturating_mul(thousandths) / 1000;
        Self {
            quota: Duration::from_micros(quota_us),
            period,
        }
    }
}

/// Everything the sandbox needs to know to run one program.
///
/// Limits left at `None` are not enforced. Sizes are bytes, times are
/// [`Duration`]s.
#[derive(Debug, Clone, PartialEq)]
pub struct IsolateConfig {
    /// Name of this executor's cgroup (`isobox/<instance_id>`); unique per
    /// executor so that concurrent executors never share accounting.
    pub instance_id: String,
    /// Working directory of the program on the host. Empty (the default):
    /// a fresh directory with an unpredictable name is made in the
    /// temporary directory (`mkdtemp`). A path given here is created if
    /// missing; either way a directory the executor made is removed again
    /// by [`ProcessExecutor::cleanup`]. The directory is opened without
    /// following a symbolic link (a link there is an error), is 0755 and
    /// owned by the box's user during a run, and gets its owner and mode
    /// back afterwards.
    ///
    /// [`ProcessExecutor::cleanup`]: crate::ProcessExecutor::cleanup
    pub workdir: PathBuf,
    /// Refuse to start unless running as root with a usable cgroup
    /// hierarchy, and treat every failed cgroup write as an error.
    pub strict_mode: bool,
    /// Root of the cgroup file system; `None` detects `/sys/fs/cgroup`.
    pub cgroup_root: Option<PathBuf>,
    /// The cgroup under which this executor's `<instance_id>` is made.
    /// `None` is `isobox` below the root of every hierarchy; a relative
    /// path is below the root of every hierarchy too, created as needed
    /// (an installation's own tree, so that two installations never share
    /// a cgroup); an absolute path is an existing cgroup v2 directory, such
    /// as a subtree systemd delegated, in which isobox writes only below.
    pub cgroup_parent: Option<PathBuf>,
    /// CPU time limit (user + system of every process of the run).
    pub time_limit: Option<Duration>,
    /// Absolute CPU time after which the program is killed; the run is
    /// killed once its CPU time exceeds `max(time_limit, extra_time)`, and
    /// the verdict is [`ExecutionStatus::TimeLimit`](crate::ExecutionStatus::TimeLimit) whenever it used more
    /// than `time_limit`.
    pub extra_time: Option<Duration>,
    /// Wall-clock limit, measured from the start of the sandbox.
    pub wall_time_limit: Option<Duration>,
    /// Memory limit of the whole run in bytes (cgroup, swap included).
    pub memory_limit: Option<u64>,
    /// Address-space limit per process in bytes (`RLIMIT_AS`); also used for
    /// `memory_limit` when no cgroup is available.
    pub address_space_limit: Option<u64>,
    /// Data-segment limit per process in bytes (`RLIMIT_DATA`: the heap and,
    /// since Linux 4.7, every private writable mapping); go-judge's
    /// `dataSegmentLimit`.
    pub data_segment_limit: Option<u64>,
    /// Maximum number of processes and threads alive at once.
    pub process_limit: Option<u64>,
    /// Largest file the program may write, in bytes (`RLIMIT_FSIZE`).
    pub file_size_limit: Option<u64>,
    /// Stack size limit in bytes (`RLIMIT_STACK`); `None` leaves it unlimited.
    pub stack_limit: Option<u64>,
    /// Maximum number of open file descriptors (`RLIMIT_NOFILE`); `None`
    /// is the kernel's default for a fresh process (1024, hard 4096),
    /// [`OPEN_FILES_UNLIMITED`] the kernel's maximum.
    pub open_files_limit: Option<u64>,
    /// Largest core dump in bytes; 0 (the default) turns core dumps off.
    pub core_limit: u64,
    /// Bytes kept of each of stdout and stderr; the rest is read and dropped
    /// and the verdict becomes [`ExecutionStatus::OutputLimit`](crate::ExecutionStatus::OutputLimit). By default
    /// [`DEFAULT_OUTPUT_LIMIT`]; `None` keeps everything the program writes
    /// in the keeper's memory, which only a caller that bounds the run some
    /// other way should ask for.
    pub output_limit: Option<u64>,
    /// Relative CPU weight in `cpu.shares` units (v2 converts to `cpu.weight`).
    pub cpu_shares: u64,
    /// CPUs the run may use (cpuset syntax, e.g. `0-1`); `None` inherits.
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the run may use (cpuset syntax); `None` inherits.
    pub cpuset_mems: Option<String>,
    /// CPUs the box's processes are placed on (their scheduler affinity,
    /// set before anything of the box runs); `None` leaves them where the
    /// keeper's are. A placement, not a limit: the program may move itself,
    /// and a cgroup cpuset ([`cpuset_cpus`](Self::cpuset_cpus)) decides
    /// where both apply. A warm box keeps its processes on one CPU this
    /// way, instead of each run hopping between CPUs.
    pub cpu_affinity: Option<crate::cpus::CpuList>,
    /// A CPU bandwidth limit of the run (needs the `cpu` controller);
    /// `None` (the default) leaves it unthrottled.
    pub cpu_bandwidth: Option<CpuBandwidth>,
    /// Join the `cpu` and `cpuset` controllers even when this
    /// configuration sets neither a weight, a bandwidth nor CPUs, so that
    /// later runs of the same executor, changed through
    /// [`ProcessExecutor::config_mut`](crate::ProcessExecutor::config_mut)
    /// (as a warm pool's are), can set them. On cgroup v1 each of these
    /// hierarchies costs a directory and a move per run; on v2 nothing.
    pub cpu_controllers: bool,
    /// The program's whole environment (by default [`default_environment`]);
    /// `PATH` is added when missing. Nothing of the caller's leaks in.
    pub environment: Vec<(String, String)>,
    /// User id the program runs as. `None` (the default): as root, a uid
    /// of this executor's own from [`ONE_SHOT_UIDS`], claimed for the
    /// executor's life; otherwise the caller's.
    pub uid: Option<u32>,
    /// Group id the program runs as. `None` (the default): the claimed uid
    /// when `uid` is `None`, the caller's gid otherwise.
    pub gid: Option<u32>,
    /// Give the program fresh PID, mount, network, IPC and UTS namespaces.
    /// Needs root; turned off with a warning outside strict mode otherwise.
    pub namespaces: bool,
    /// Send the program's output to the caller's own stdout and stderr as it
    /// arrives (still subject to `output_limit`) instead of keeping it in
    /// the result.
    pub pass_through_output: bool,
    /// Start from the default directory rules (see [`crate::dirs`]); turned
    /// off, only `dir_rules` and the box itself are mounted.
    pub default_dirs: bool,
    /// Directory rules applied over the defaults, isolate-style.
    pub dir_rules: Vec<DirRule>,
    /// Working directory inside the box (`/box` by default).
    pub inner_workdir: PathBuf,
    /// Size limit of the box's private `/tmp` in bytes (at least 1: the
    /// executor refuses 0, which tmpfs would read as "no limit").
    pub tmp_size: u64,
    /// Size limit of the box's private `/dev/shm` in bytes (at least 1).
    pub shm_size: u64,
    /// Filter system calls with the default seccomp policy.
    pub seccomp: bool,
    /// A policy file whose rules extend the default seccomp policy.
    pub seccomp_policy: Option<PathBuf>,
    /// isolate's `syscall_flags`: which of isolate 2.6's system-call
    /// restrictions are on (bits in [`syscall_flags`];
    /// all by default). They add to the default policy's allowlist.
    pub syscall_flags: u32,
    /// Keep the host's network namespace instead of an empty one.
    pub share_net: bool,
    /// An empty network namespace to join (an nsfs file kept by a bind
    /// mount, as `ip netns` makes them) instead of creating one per
    /// executor, which costs about a millisecond. See [`crate::boxes`].
    pub network_namespace: Option<PathBuf>,
    /// A file in a directory only root can write where the keeper keeps
    /// `<pid> <start time>` of the box's first process (the proxy, pid 1
    /// of the box's PID namespace) while a run lasts, so that a later
    /// cleanup finds what is left of the box by that handle instead of
    /// scanning the host (isolate face: next to the box, see
    /// [`crate::boxes`]). Removed when the run ends.
    pub proxy_record: Option<PathBuf>,
    /// Limit and measure with a cgroup. Turned off, limits are rlimits and
    /// measurements come from rusage (isolate without `--cg`).
    pub use_cgroups: bool,
    /// File opened as stdin by the program's user, relative to the box
    /// directory (`/box`) unless absolute, before `inner_workdir` is entered.
    pub stdin_file: Option<PathBuf>,
    /// File (created or truncated) for stdout, like `stdin_file`.
    pub stdout_file: Option<PathBuf>,
    /// File (created or truncated) for stderr, like `stdin_file`.
    pub stderr_file: Option<PathBuf>,
    /// Send stderr wherever stdout goes.
    pub stderr_to_stdout: bool,
    /// The program writes straight to the caller's stdout and stderr: no
    /// pipe, no capture, no output limit (isolate's behaviour without
    /// `-o/-r`).
    pub inherit_stdout_stderr: bool,
    /// Let the program inherit the caller's descriptors that are not
    /// close-on-exec (isolate's `--inherit-fds`).
    pub inherit_fds: bool,
    /// Keep the caller's controlling terminal: the box stays in the
    /// caller's session and becomes the terminal's foreground process group
    /// for the run (isolate's `--tty-hack`). The program can then push
    /// input into the terminal (where the filter allows it) and change its
    /// settings. Off, the box runs in a session of its own with no
    /// controlling terminal, even when its stdio is a terminal.
    pub keep_terminal: bool,
    /// Keep the box warm between runs of one executor (on by default):
    /// from an executor's second run on (or ahead of time, with
    /// [`ProcessExecutor::prepare_warm_box`]), its namespaces, filesystem
    /// and cgroup are built once, by a long-lived holder process (pid 1 of
    /// the box), and each run is a fork of it; a one-shot executor never
    /// builds one. Between runs every
    /// process of the run is killed, `/tmp` and `/dev/shm` are mounted
    /// afresh, each run gets a new IPC namespace, and the cgroup's counters
    /// start over, so a run sees and measures nothing of the one before.
    /// The directory rules' host paths are looked up when the box is built,
    /// not at each run. Used where the box can be held (cgroup v1 with
    /// namespaces and a cgroup, no `inherit_fds`, `keep_terminal` or
    /// `proxy_record`); any other run, and any run after the holder failed,
    /// builds its box anew as without this setting. [`crate::pool`] keeps
    /// it on for its boxes and builds them ahead of time.
    ///
    /// [`ProcessExecutor::prepare_warm_box`]: crate::ProcessExecutor::prepare_warm_box
    pub warm: bool,
}

impl Default for IsolateConfig {
    fn default() -> Self {
        let instance_id = unique_instance_id();
        Self {
            workdir: PathBuf::new(),
            instance_id,
            strict_mode: false,
            cgroup_root: None,
            cgroup_parent: None,
            time_limit: None,
            extra_time: None,
            wall_time_limit: None,
            memory_limit: None,
            address_space_limit: None,
            data_segment_limit: None,
            process_limit: None,
            file_size_limit: None,
            stack_limit: None,
            open_files_limit: None,
            core_limit: 0,
            output_limit: Some(DEFAULT_OUTPUT_LIMIT),
            cpu_shares: DEFAULT_CPU_SHARES,
            cpuset_cpus: None,
            cpuset_mems: None,
            cpu_affinity: None,
            cpu_bandwidth: None,
            cpu_controllers: false,
            environment: default_environment(),
            uid: None,
            gid: None,
            namespaces: true,
            pass_through_output: false,
            default_dirs: true,
            dir_rules: Vec::new(),
            inner_workdir: PathBuf::from(BOX_MOUNT_POINT),
            tmp_size: 128 << 20,
            shm_size: 64 << 20,
            seccomp: true,
            seccomp_policy: None,
            syscall_flags: syscall_flags::ALL,
            share_net: false,
            network_namespace: None,
            proxy_record: None,
            use_cgroups: true,
            stdin_file: None,
            stdout_file: None,
            stderr_file: None,
            stderr_to_stdout: false,
            inherit_fds: false,
            inherit_stdout_stderr: false,
            keep_terminal: false,
            warm: true,
        }
    }
}

impl IsolateConfig {
    /// The part of this configuration an executor settles when it is made
    /// (see [`ProcessExecutor::config_mut`]), every per-run setting reset:
    /// configurations whose settled parts differ need different executors.
    ///
    /// [`ProcessExecutor::config_mut`]: crate::ProcessExecutor::config_mut
    pub fn settled_part(&self) -> IsolateConfig {
        IsolateConfig {
            time_limit: None,
            extra_time: None,
            wall_time_limit: None,
            memory_limit: None,
            address_space_limit: None,
            process_limit: None,
            file_size_limit: None,
            stack_limit: None,
            open_files_limit: None,
            core_limit: 0,
            environment: Vec::new(),
            default_dirs: true,
            dir_rules: Vec::new(),
            inner_workdir: PathBuf::new(),
            stdin_file: None,
            stdout_file: None,
            stderr_file: None,
            stderr_to_stdout: false,
            ..self.clone()
        }
    }

    /// CPU time at which the run is killed, if any CPU limit is set.
    pub fn cpu_kill_threshold(&self) -> Option<Duration> {
        match (self.time_limit, self.extra_time) {
            (Some(limit), Some(extra)) => Some(limit.max(extra)),
            (limit, extra) => limit.or(extra),
        }
    }

    /// The memory bound a run has only through rlimits: the address-space
    /// or data-segment limit, or the memory limit when no cgroup enforces
    /// it. `None` when a memory cgroup limits the run, or nothing does.
    pub fn rlimit_only_memory(&self, have_cgroup: bool) -> Option<u64> {
        if have_cgroup && self.memory_limit.is_some() {
            return None;
        }
        [
            self.address_space_limit,
            self.data_segment_limit,
            self.memory_limit,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_threshold_is_the_larger_of_limit_and_extra() {
        let mut config = IsolateConfig {
            time_limit: Some(Duration::from_secs(1)),
            ..IsolateConfig::default()
        };
        assert_eq!(config.cpu_kill_threshold(), Some(Duration::from_secs(1)));
        config.extra_time = Some(Duration::from_millis(1500));
        assert_eq!(
            config.cpu_kill_threshold(),
            Some(Duration::from_millis(1500))
        );
        config.extra_time = Some(Duration::from_millis(500));
        assert_eq!(config.cpu_kill_threshold(), Some(Duration::from_secs(1)));
        config.time_limit = None;
        assert_eq!(
            config.cpu_kill_threshold(),
            Some(Duration::from_millis(500))
        );
    }

    #[test]
    fn the_default_output_limit_is_finite() {
        assert_eq!(
            IsolateConfig::default().output_limit,
            Some(DEFAULT_OUTPUT_LIMIT)
        );
    }

    #[test]
    fn only_a_bound_no_cgroup_enforces_counts() {
        let mut config = IsolateConfig {
            memory_limit: Some(100),
            ..IsolateConfig::default()
        };
        assert_eq!(config.rlimit_only_memory(true), None);
        assert_eq!(config.rlimit_only_memory(false), Some(100));
        config.address_space_limit = Some(50);
        assert_eq!(config.rlimit_only_memory(false), Some(50));
        config.memory_limit = None;
        assert_eq!(config.rlimit_only_memory(true), Some(50));
        config.address_space_limit = None;
        assert_eq!(config.rlimit_only_memory(false), None);
    }
}
