//! [`ProcessExecutor`]: spawns the program in its jail, watches it, kills it
//! at a limit, measures it and turns all of it into an [`ExecutionResult`].
//!
//! One run, from the keeper's side:
//! 1. a fresh child cgroup for the run, with this run's limits (so no peak,
//!    OOM count or limit of an earlier run can show);
//! 2. the proxy is cloned into new namespaces (on v2 directly into the
//!    cgroup), moved into the cgroup on v1, then released;
//! 3. one `poll` loop feeds stdin, drains stdout and stderr, and wakes in
//!    time for the wall-clock deadline and the next CPU-time check;
//! 4. at a limit the proxy (pid 1 of the box) is killed, which takes the
//!    whole box with it; afterwards the cgroup is emptied and removed;
//! 5. the verdict is derived from what the kernel measured.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::cgroup::{CgroupController, CgroupLimits, CgroupUsage, OptionalControllers};
use crate::dirs;
use crate::jail::sys::{self, Rusage};
use crate::jail::{
    self, BoxFds, ChildReport, Credentials, JailError, JailSpec, MountPlan, PolicyOptions, Rlimits,
    RunPaths, SeccompPolicy, Stage, TmpfsSizes,
};
use crate::types::{
    ExecutionResult, ExecutionStatus, IsolateConfig, IsolateError, Protection, Result,
};

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

/// Runs programs under one [`IsolateConfig`].
///
/// Each [`execute`](Self::execute) is independent: limits, peak memory and
/// the OOM flag of one run never show in the next.
#[derive(Debug)]
pub struct ProcessExecutor {
    config: IsolateConfig,
    cgroup: Option<CgroupController>,
    namespaces: bool,
    seccomp: Option<SeccompPolicy>,
    /// The empty network namespace every run of this executor joins.
    network: Option<OwnedFd>,
    /// CPUs the box may run on at once: CPU time can grow this much faster
    /// than the wall clock.
    cpus: u32,
    credentials: Option<Credentials>,
    /// The uid of `credentials` when this executor claimed it (held until
    /// the executor is dropped).
    _uid_claim: Option<UidClaim>,
    /// The working directory, open from the first run on.
    workdir: Option<Workdir>,
    last_usage: (f64, u64),
    runs: u64,
}

/// The working directory as the keeper holds it: a descriptor opened
/// without following links, through which it is changed and restored.
#[derive(Debug)]
struct Workdir {
    dir: sys::HostPath,
    /// Made by this executor (and so removed by its cleanup).
    created: bool,
    /// Owner, group and mode before the run, put back after it.
    saved: Option<(u32, u32, u32)>,
}

/// A name no other executor of this host uses at the same time.
pub(crate) fn unique_instance_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Shortest and longest pause between two CPU-time checks. The pause is the
/// remaining CPU budget spread over every CPU, so the check can never be
/// late by more than the shortest pause.
const MIN_CPU_CHECK: Duration = Duration::from_millis(1);
const MAX_CPU_CHECK: Duration = Duration::from_millis(100);

/// How long output may keep flowing after the box is gone (only without
/// namespaces can anything outlive the proxy and hold a pipe open).
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// How long the proxy gets to kill the inmate and report before it is
/// killed itself.
const STOP_GRACE: Duration = Duration::from_millis(50);

const READ_CHUNK: usize = 64 * 1024;

/// Why the keeper killed the box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillReason {
    WallTime,
    CpuTime,
}

/// How the program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProgramEnd {
    Exited(i32),
    Signaled(i32),
}

impl ProgramEnd {
    fn from_wait_status(status: i32) -> Self {
        if libc::WIFSIGNALED(status) {
            Self::Signaled(libc::WTERMSIG(status))
        } else {
            Self::Exited(libc::WEXITSTATUS(status))
        }
    }
}

/// Everything measured about a run, before it is judged.
#[derive(Debug, Default)]
struct RunFacts {
    /// The failed step, its errno, and which part of it failed.
    setup_failure: Option<(Stage, i32, String)>,
    /// A seccomp filter was installed (so SIGSYS means a refused call).
    seccomp: bool,
    killed_for: Option<KillReason>,
    end: Option<ProgramEnd>,
    /// CPU time of every process of the run.
    cpu_time: Duration,
    /// The `RLIMIT_CPU` soft limit the program ran under: the kernel sends
    /// `SIGXCPU` only once this much CPU time is used.
    cpu_rlimit: Option<Duration>,
    /// The proxy saw the kernel's `SIGXCPU` end the program (its CPU
    /// rlimit raised by the kernel when sent).
    kernel_sigxcpu: bool,
    oom_kills: u64,
    pids_limit_hits: u64,
    output_dropped: bool,
}

/// The verdict and its one-line explanation.
///
/// A time limit is only ever a measurement: the keeper killed the run at a
/// clock, or the measured CPU time is past the limit, or the program died
/// of the `SIGXCPU` the kernel sends at the `RLIMIT_CPU` soft limit (seen by
/// the proxy, or failing that, measured CPU time at least that limit). A
/// `SIGXCPU` the program sent itself (`kill -XCPU $$`) is just a signal.
fn judge(facts: &RunFacts, time_limit: Option<Duration>) -> (ExecutionStatus, String) {
    use ExecutionStatus::*;
    let failed = facts.end != Some(ProgramEnd::Exited(0));
    if let Some((stage, errno, detail)) = &facts.setup_failure {
        let text = sys::strerror(*errno);
        return match stage {
            Stage::Exec => (RuntimeError, format!("exec failed: {text}")),
            other if detail.is_empty() => (
                InternalError,
                format!("{} failed: {text}", other.describe()),
            ),
            other => (
                InternalError,
                format!("{} failed ({detail}): {text}", other.describe()),
            ),
        };
    }
    if facts.killed_for == Some(KillReason::WallTime) {
        return (TimeLimit, "Time limit exceeded (wall clock)".into());
    }
    let over_cpu = time_limit.is_some_and(|limit| facts.cpu_time > limit);
    // The kernel's clock for RLIMIT_CPU counts ticks and can run ahead of
    // the rusage figures, so the proxy's sighting is the better proof.
    let cpu_rlimit_signal = facts.end == Some(ProgramEnd::Signaled(libc::SIGXCPU))
        && (facts.kernel_sigxcpu || facts.cpu_rlimit.is_some_and(|soft| facts.cpu_time >= soft));
    if facts.killed_for == Some(KillReason::CpuTime) || over_cpu || cpu_rlimit_signal {
        return (TimeLimit, "Time limit exceeded".into());
    }
    if facts.oom_kills > 0 && failed {
        return (MemoryLimit, "Memory limit exceeded".into());
    }
    if facts.end == Some(ProgramEnd::Signaled(libc::SIGXFSZ)) {
        return (FileSizeLimit, "File size limit exceeded".into());
    }
    if facts.output_dropped {
        return (OutputLimit, "Output limit exceeded".into());
    }
    if facts.pids_limit_hits > 0 && failed {
        return (ProcessLimit, "Process limit exceeded".into());
    }
    match facts.end {
        // The default policy kills only for the foreign ABIs; anything else
        // it refuses with an errno, so a SIGSYS death names its cause.
        Some(ProgramEnd::Signaled(libc::SIGSYS)) if facts.seccomp => (
            SecurityViolation,
            "Forbidden system call: i386 or x32 system-call ABI, or a call a policy file kills"
                .into(),
        ),
        Some(ProgramEnd::Signaled(signal)) => (Signaled, format!("Caught fatal signal {signal}")),
        Some(ProgramEnd::Exited(0)) => (Success, String::new()),
        Some(ProgramEnd::Exited(code)) => {
            (RuntimeError, format!("Exited with error status {code}"))
        }
        None => (
            InternalError,
            "the sandbox ended without reporting how the program ended".into(),
        ),
    }
}

/// Collects one output stream, keeping at most `limit` bytes.
struct OutputSink {
    limit: Option<u64>,
    accepted: u64,
    dropped: u64,
    kept: Vec<u8>,
    /// Forward to the keeper's own stdout (1) or stderr (2) instead of keeping.
    forward_to: Option<i32>,
}

impl OutputSink {
    fn new(limit: Option<u64>, forward_to: Option<i32>) -> Self {
        Self {
            limit,
            accepted: 0,
            dropped: 0,
            kept: Vec::new(),
            forward_to,
        }
    }

    fn accept(&mut self, bytes: &[u8]) {
        let room = self
            .limit
            .map_or(u64::MAX, |limit| limit.saturating_sub(self.accepted));
        let take = (bytes.len() as u64).min(room) as usize;
        self.accepted += take as u64;
        self.dropped += (bytes.len() - take) as u64;
        let bytes = &bytes[..take];
        match self.forward_to {
            // A closed terminal must not kill the run: forwarding is best effort.
            Some(1) => drop(std::io::stdout().lock().write_all(bytes)),
            Some(_) => drop(std::io::stderr().lock().write_all(bytes)),
            None => self.kept.extend_from_slice(bytes),
        }
    }

    fn into_string(self) -> String {
        String::from_utf8(self.kept)
            .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
    }
}

/// The keeper's ends of one run's pipes, and what flowed through them.
struct Streams {
    stdin: Option<(File, Vec<u8>, usize)>,
    stdout: Option<File>,
    stderr: Option<File>,
    stdout_sink: OutputSink,
    stderr_sink: OutputSink,
}

impl Streams {
    fn is_drained(&self) -> bool {
        self.stdout.is_none() && self.stderr.is_none()
    }

    /// Reads whatever is available; `None`s the stream at end of file.
    fn pump_output(stream: &mut Option<File>, sink: &mut OutputSink, buffer: &mut [u8]) {
        while let Some(file) = stream {
            match file.read(buffer) {
                Ok(0) => *stream = None,
                Ok(n) => sink.accept(&buffer[..n]),
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) if err.kind() == ErrorKind::WouldBlock => return,
                Err(err) => {
                    tracing::warn!("reading the program's output failed: {err}");
                    *stream = None;
                }
            }
        }
    }

    /// Writes as much stdin as the pipe takes; closes it when done or when
    /// the program stopped reading.
    fn pump_stdin(&mut self) {
        while let Some((file, data, written)) = &mut self.stdin {
            if *written == data.len() {
                self.stdin = None;
                return;
            }
            match file.write(&data[*written..]) {
                Ok(n) => *written += n,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) if err.kind() == ErrorKind::WouldBlock => return,
                // EPIPE: the program closed its stdin; that is its right.
                Err(_) => self.stdin = None,
            }
        }
    }
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
        // tmpfs reads a size of 0 as "no limit": refuse it rather than give
        // the box an unlimited /tmp or /dev/shm.
        if config.tmp_size == 0 || config.shm_size == 0 {
            return Err(IsolateError::Config(format!(
                "tmp_size and shm_size must be at least 1 byte (got {} and {})",
                config.tmp_size, config.shm_size
            )));
        }
        let root = sys::is_root();
        if config.strict_mode && !root {
            return Err(IsolateError::Config(
                "strict mode needs root (run isobox as root or without strict mode)".into(),
            ));
        }
        let cgroup = if !config.use_cgroups {
            None
        } else {
            let placed = crate::cgroup::place(
                config.cgroup_root.as_deref(),
                config.cgroup_parent.as_deref(),
            )
            .and_then(|placement| {
                CgroupController::placed(
                    &placement,
                    &config.instance_id,
                    config.strict_mode,
                    OptionalControllers {
                        cpu_weight: config.cpu_shares != crate::types::DEFAULT_CPU_SHARES,
                        cpuset: config.cpuset_cpus.is_some() || config.cpuset_mems.is_some(),
                    },
                )
            });
            match placed {
                Ok(cgroup) => Some(cgroup),
                Err(err) if config.strict_mode => {
                    return Err(IsolateError::Config(format!(
                        "strict mode needs a usable cgroup hierarchy: {err}"
                    )))
                }
                Err(err) => {
                    tracing::warn!(
                        "running without cgroups (limits by rlimit, measurements by rusage): {err}"
                    );
                    None
                }
            }
        };
        let namespaces = config.namespaces && root;
        if config.namespaces && !root {
            tracing::warn!("not root: running without namespaces");
        }
        let wants_credentials = config.uid.is_some() || config.gid.is_some();
        let mut uid_claim = None;
        let credentials = if wants_credentials && !root {
            tracing::warn!("not root: running as the caller, not as the configured uid/gid");
            None
        } else if !root {
            None
        } else if let Some(uid) = config.uid {
            Some(Credentials {
                uid,
                gid: config.gid.unwrap_or(current_ids().1),
            })
        } else {
            let claim = UidClaim::take()?;
            let uid = claim.uid;
            uid_claim = Some(claim);
            Some(Credentials {
                uid,
                gid: config.gid.unwrap_or(uid),
            })
        };
        if namespaces {
            jail::mounts::ensure_new_root()?;
        }
        let network = match &config.network_namespace {
            _ if !namespaces || config.share_net => None,
            Some(path) => {
                let file = File::open(path).map_err(|source| {
                    IsolateError::io(
                        format!("opening the network namespace {}", path.display()),
                        source,
                    )
                })?;
                Some(OwnedFd::from(file))
            }
            None => {
                let netns = jail::namespaces::new_network_namespace().map_err(|source| {
                    JailError::Syscall {
                        call: "unshare(CLONE_NEWNET)",
                        source,
                    }
                })?;
                Some(netns)
            }
        };
        let seccomp = if config.seccomp {
            let options = PolicyOptions {
                syscall_flags: config.syscall_flags,
                share_net: config.share_net,
                memory_without_cgroup: jail::ipc::rlimit_only_memory(&config, cgroup.is_some())
                    .is_some(),
            };
            let policy = SeccompPolicy::with_options(config.seccomp_policy.as_deref(), &options)
                .map_err(|err| IsolateError::Config(err.to_string()))?;
            Some(policy)
        } else {
            None
        };
        Ok(Self {
            config,
            cgroup,
            namespaces,
            seccomp,
            network,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()) as u32,
            credentials,
            _uid_claim: uid_claim,
            workdir: None,
            last_usage: (0.0, 0),
            runs: 0,
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

    /// Runs `command` with any [`Stdin`].
    pub fn execute_with_stdin(
        &mut self,
        command: &[String],
        stdin: Stdin,
    ) -> Result<ExecutionResult> {
        if command.first().is_none_or(|program| program.is_empty()) {
            return Err(IsolateError::Config("empty command".into()));
        }
        self.setup_workdir()?;
        self.runs += 1;
        let run_cgroup = match &self.cgroup {
            Some(cgroup) => {
                let run = cgroup.create_child(&format!("run-{}", self.runs))?;
                run.apply_limits(&CgroupLimits {
                    memory: self.config.memory_limit,
                    // The proxy (pid 1 of the box) sits in the cgroup too; the
                    // program gets the whole limit.
                    pids: self
                        .config
                        .process_limit
                        .map(|count| count.saturating_add(1)),
                    // The default weight is what a new cgroup has anyway.
                    cpu_shares: (self.config.cpu_shares != crate::types::DEFAULT_CPU_SHARES)
                        .then_some(self.config.cpu_shares),
                    cpuset_cpus: self.config.cpuset_cpus.clone(),
                    cpuset_mems: self.config.cpuset_mems.clone(),
                })?;
                Some(run)
            }
            None => None,
        };
        let outcome = self.run_in_box(command, stdin, run_cgroup.as_ref());
        self.restore_workdir_owner();
        let usage = match run_cgroup {
            Some(mut run) => {
                // Read before removal: removing empties the accounting. With
                // a PID namespace the box died with its proxy; without one,
                // stragglers are killed first so they stop consuming.
                let usage = if self.namespaces {
                    run.usage()
                } else {
                    run.kill_all().and_then(|()| run.usage())
                };
                run.remove()?;
                Some(usage?)
            }
            None => None,
        };
        let (facts, result) = outcome?;
        Ok(self.finish(facts, result, usage))
    }

    /// Fills in the measurements and the verdict.
    fn finish(
        &mut self,
        mut facts: RunFacts,
        mut result: ExecutionResult,
        usage: Option<CgroupUsage>,
    ) -> ExecutionResult {
        if let Some(usage) = usage {
            facts.cpu_time = usage.cpu_time;
            facts.oom_kills = usage.oom_kills;
            facts.pids_limit_hits = usage.pids_limit_hits;
            result.memory_peak = usage.memory_peak;
            self.last_usage = (usage.cpu_time.as_secs_f64(), usage.memory_peak);
        } else {
            result.memory_peak = result.max_rss;
        }
        result.cpu_time = facts.cpu_time.as_secs_f64();
        result.oom_killed = facts.oom_kills > 0;
        result.killed = facts.killed_for.is_some();
        if let Some((Stage::Exec, errno, _)) = facts.setup_failure {
            result.exec_errno = Some(errno);
        }
        match facts.end {
            Some(ProgramEnd::Exited(code)) => result.exit_code = Some(code),
            Some(ProgramEnd::Signaled(signal)) => result.signal = Some(signal),
            None => {}
        }
        let (status, message) = judge(&facts, self.config.time_limit);
        result.status = status;
        result.message = message;
        result.absent_protections = self.absent_protections();
        result
    }

    /// What runs of this executor go without, whether the configuration
    /// turned it off or the executor had to degrade.
    pub fn absent_protections(&self) -> Vec<Protection> {
        let absent = [
            (!self.namespaces, Protection::Namespaces),
            (self.cgroup.is_none(), Protection::Cgroup),
            (self.seccomp.is_none(), Protection::Seccomp),
            (self.credentials.is_none(), Protection::SeparateUser),
        ];
        absent
            .into_iter()
            .filter_map(|(absent, protection)| absent.then_some(protection))
            .collect()
    }

    /// Starts the box, watches it to its end and collects the raw facts.
    fn run_in_box(
        &self,
        command: &[String],
        stdin: Stdin,
        cgroup: Option<&CgroupController>,
    ) -> Result<(RunFacts, ExecutionResult)> {
        let io_err = |context: &str| {
            let context = context.to_string();
            move |source| IsolateError::io(context, source)
        };
        let mut environment = self.config.environment.clone();
        if !environment.iter().any(|(name, _)| name == "PATH") {
            environment.push(("PATH".into(), crate::types::DEFAULT_PATH.into()));
        }
        let isolation = self.isolation()?;
        let jailed = isolation.mounts.is_some();
        let seccomp = isolation.seccomp.is_some();
        let (box_dir, cwd) = if jailed {
            (
                Path::new(crate::types::BOX_MOUNT_POINT),
                self.config.inner_workdir.as_path(),
            )
        } else {
            let workdir = self.workdir_path();
            (workdir, workdir)
        };
        let stdio_files = [
            self.config.stdin_file.as_deref(),
            self.config.stdout_file.as_deref(),
            self.config.stderr_file.as_deref(),
        ];
        let paths = RunPaths {
            box_dir,
            cwd,
            stdio_files,
            stderr_to_stdout: self.config.stderr_to_stdout,
            inherit_fds: self.config.inherit_fds,
            keep_terminal: self.config.keep_terminal,
        };
        let rlimits = Rlimits::for_config(&self.config, cgroup.is_some());
        let spec = JailSpec::new(
            command,
            &environment,
            &paths,
            rlimits,
            self.credentials,
            isolation,
        )?;

        let (stdin_child, stdin_keeper): (OwnedFd, Option<(File, Vec<u8>)>) = match stdin {
            Stdin::Null => {
                let null = File::open("/dev/null").map_err(io_err("opening /dev/null"))?;
                (
                    sys::above_stdio(OwnedFd::from(null)).map_err(io_err("dup"))?,
                    None,
                )
            }
            Stdin::File(file) => (
                sys::dup_for_child(file.as_fd()).map_err(io_err("dup"))?,
                None,
            ),
            Stdin::Bytes(data) => {
                let (read, write) = sys::pipe().map_err(io_err("pipe"))?;
                (read, Some((File::from(write), data)))
            }
        };
        let (stdout_read, stdout_write) = self.output_channel(1)?;
        let (stderr_read, stderr_write) = self.output_channel(2)?;
        let (report_read, report_write) = sys::pipe().map_err(io_err("pipe"))?;
        let (go_read, go_write) = sys::pipe().map_err(io_err("pipe"))?;

        let start = Instant::now();
        let proxy = jail::spawn(
            &spec,
            BoxFds {
                stdin: stdin_child.as_fd(),
                stdout: stdout_write.as_fd(),
                stderr: stderr_write.as_fd(),
                report: report_write.as_fd(),
                go: go_read.as_fd(),
            },
            cgroup.and_then(CgroupController::directory_fd),
        )?;
        // The box holds its own copies now; ours would keep the pipes from
        // ever reporting end of file.
        drop((
            stdin_child,
            stdout_write,
            stderr_write,
            report_write,
            go_read,
        ));

        let released = match cgroup {
            Some(cgroup) if !proxy.in_cgroup => {
                cgroup.add_process(proxy.pid).map_err(IsolateError::from)
            }
            _ => Ok(()),
        }
        .and_then(|()| self.record_proxy(proxy.pid))
        .and_then(|()| {
            File::from(go_write)
                .write_all(&[1])
                .map_err(io_err("releasing the box"))
        });
        if let Err(err) = released {
            // Without the go-ahead the proxy exits by itself; make sure and reap it.
            let _ = sys::pidfd_send_signal(proxy.pidfd.as_fd(), libc::SIGKILL);
            let _ = sys::wait4(proxy.pid);
            return Err(err);
        }

        let mut streams = Streams {
            stdin: stdin_keeper.map(|(file, data)| (file, data, 0)),
            stdout: stdout_read.map(File::from),
            stderr: stderr_read.map(File::from),
            stdout_sink: OutputSink::new(
                self.config.output_limit,
                self.config.pass_through_output.then_some(1),
            ),
            stderr_sink: OutputSink::new(
                self.config.output_limit,
                self.config.pass_through_output.then_some(2),
            ),
        };
        for file in [&streams.stdout, &streams.stderr].into_iter().flatten() {
            sys::set_nonblocking(file.as_fd()).map_err(io_err("fcntl"))?;
        }
        if let Some((file, _, _)) = &streams.stdin {
            sys::set_nonblocking(file.as_fd()).map_err(io_err("fcntl"))?;
        }

        let watched = self.watch(&proxy, cgroup, &mut streams, start);
        // Whatever happened while watching, the proxy is reaped exactly once.
        let (killed_for, wall) = match watched {
            Ok(done) => done,
            Err(err) => {
                let _ = sys::pidfd_send_signal(proxy.pidfd.as_fd(), libc::SIGKILL);
                let _ = sys::wait4(proxy.pid);
                return Err(err);
            }
        };
        // The proxy reaped every process of the box before it exited, so
        // its children's rusage is the CPU time of the whole run.
        let (proxy_status, proxy_usage) = sys::wait4(proxy.pid).map_err(io_err("wait4"))?;
        self.forget_proxy();
        if self.config.keep_terminal {
            jail::take_back_terminal();
        }
        if !self.namespaces {
            // Without a PID namespace the box's leftovers are in its group.
            let _ = sys::kill_process_group(proxy.pid, libc::SIGKILL);
        }
        let reports =
            jail::report::read_reports(report_read).map_err(io_err("reading the box's status"))?;

        let mut facts = RunFacts {
            killed_for,
            seccomp,
            cpu_time: proxy_usage.cpu_time(),
            cpu_rlimit: rlimits.cpu_soft_limit(),
            output_dropped: streams.stdout_sink.dropped + streams.stderr_sink.dropped > 0,
            ..RunFacts::default()
        };
        let mut inmate_usage = Rusage::default();
        for report in reports {
            match report {
                ChildReport::SetupFailed {
                    stage,
                    errno,
                    detail,
                } => {
                    let detail = match stage {
                        Stage::Filesystem => spec.describe_mount_step(detail).to_string(),
                        Stage::Stdio => stdio_files
                            .get(detail as usize)
                            .copied()
                            .flatten()
                            .map(|file| format!("opening {}", file.display()))
                            .unwrap_or_default(),
                        _ => String::new(),
                    };
                    facts.setup_failure.get_or_insert((stage, errno, detail));
                }
                ChildReport::InmateExited {
                    wait_status,
                    rusage,
                    kernel_sigxcpu,
                } => {
                    facts.end = Some(ProgramEnd::from_wait_status(wait_status));
                    facts.kernel_sigxcpu = kernel_sigxcpu;
                    inmate_usage = rusage;
                }
            }
        }
        if facts.end.is_none() && facts.setup_failure.is_none() {
            // The proxy died before it could report: killed by us, by the OOM
            // killer, or by something else. Its own signal tells which.
            let proxy_end = ProgramEnd::from_wait_status(proxy_status);
            if killed_for.is_some() || matches!(proxy_end, ProgramEnd::Signaled(_)) {
                facts.end = Some(proxy_end);
            }
        }

        let result = ExecutionResult {
            status: ExecutionStatus::InternalError,
            exit_code: None,
            signal: None,
            stdout_dropped: streams.stdout_sink.dropped,
            stderr_dropped: streams.stderr_sink.dropped,
            stdout: std::mem::replace(&mut streams.stdout_sink, OutputSink::new(None, None))
                .into_string(),
            stderr: std::mem::replace(&mut streams.stderr_sink, OutputSink::new(None, None))
                .into_string(),
            cpu_time: 0.0,
            wall_time: wall.as_secs_f64(),
            memory_peak: 0,
            max_rss: inmate_usage.max_rss,
            oom_killed: false,
            killed: false,
            voluntary_context_switches: inmate_usage.voluntary_switches,
            involuntary_context_switches: inmate_usage.involuntary_switches,
            exec_errno: None,
            message: String::new(),
            absent_protections: Vec::new(),
        };
        Ok((facts, result))
    }

    /// The keeper's loop: moves data, enforces the clocks, and returns once
    /// the proxy has exited and the output is drained. Returns why the box
    /// was killed, if it was, and the wall time until the proxy ended.
    fn watch(
        &self,
        proxy: &jail::Proxy,
        cgroup: Option<&CgroupController>,
        streams: &mut Streams,
        start: Instant,
    ) -> Result<(Option<KillReason>, Duration)> {
        // Blocked for this thread while it feeds stdin, so a program that
        // closes its stdin costs an EPIPE, not the keeper's life.
        let _sigpipe = sys::SigpipeBlocked::new()
            .map_err(|err| tracing::warn!("cannot block SIGPIPE: {err}"))
            .ok();
        let cpu_cap = self.config.cpu_kill_threshold();
        let cpus = self.cpus;
        let wall_deadline = self.config.wall_time_limit.map(|limit| start + limit);
        let mut next_cpu_check = start;
        let mut killed_for = None;
        let mut hard_kill_at: Option<Instant> = None;
        let mut ended: Option<(Duration, Instant)> = None;
        let mut buffer = vec![0u8; READ_CHUNK];

        loop {
            let now = Instant::now();
            if let Some((wall, drain_deadline)) = ended {
                if streams.is_drained() || now >= drain_deadline {
                    return Ok((killed_for, wall));
                }
            } else {
                let mut kill = None;
                if wall_deadline.is_some_and(|deadline| now >= deadline) {
                    kill = Some(KillReason::WallTime);
                }
                if let (Some(cap), Some(cgroup)) = (cpu_cap, cgroup) {
                    if kill.is_none() && now >= next_cpu_check {
                        let used = cgroup.cpu_time().unwrap_or_else(|err| {
                            tracing::warn!("reading CPU time failed: {err}");
                            Duration::ZERO
                        });
                        if used > cap {
                            kill = Some(KillReason::CpuTime);
                        } else {
                            let pause = ((cap - used) / cpus).clamp(MIN_CPU_CHECK, MAX_CPU_CHECK);
                            next_cpu_check = now + pause;
                        }
                    }
                }
                if let Some(reason) = kill {
                    if killed_for.is_none() {
                        killed_for = Some(reason);
                        sys::pidfd_send_signal(proxy.pidfd.as_fd(), jail::STOP_SIGNAL)
                            .map_err(|source| IsolateError::io("stopping the box", source))?;
                        hard_kill_at = Some(now + STOP_GRACE);
                    }
                }
                if hard_kill_at.is_some_and(|at| now >= at) {
                    hard_kill_at = None;
                    sys::pidfd_send_signal(proxy.pidfd.as_fd(), libc::SIGKILL)
                        .map_err(|source| IsolateError::io("killing the box", source))?;
                    if !self.namespaces {
                        let _ = sys::kill_process_group(proxy.pid, libc::SIGKILL);
                    }
                }
            }

            let mut entries = Vec::with_capacity(4);
            if ended.is_none() {
                entries.push(sys::poll_entry(proxy.pidfd.as_raw_fd(), sys::POLLIN));
            }
            if let Some(file) = &streams.stdout {
                entries.push(sys::poll_entry(file.as_raw_fd(), sys::POLLIN));
            }
            if let Some(file) = &streams.stderr {
                entries.push(sys::poll_entry(file.as_raw_fd(), sys::POLLIN));
            }
            if let Some((file, _, _)) = &streams.stdin {
                entries.push(sys::poll_entry(file.as_raw_fd(), sys::POLLOUT));
            }
            let timeout = match ended {
                Some((_, drain_deadline)) => Some(drain_deadline.saturating_duration_since(now)),
                None if killed_for.is_some() => {
                    hard_kill_at.map(|at| at.saturating_duration_since(now))
                }
                None => {
                    let mut wake = wall_deadline;
                    if cpu_cap.is_some() && cgroup.is_some() {
                        wake = Some(wake.map_or(next_cpu_check, |w| w.min(next_cpu_check)));
                    }
                    wake.map(|at| at.saturating_duration_since(now))
                }
            };
            sys::poll(&mut entries, timeout).map_err(|source| IsolateError::io("poll", source))?;

            let ready = |fd: i32| {
                entries
                    .iter()
                    .any(|entry| entry.fd == fd && entry.revents != 0)
            };
            if streams
                .stdout
                .as_ref()
                .is_some_and(|f| ready(f.as_raw_fd()))
            {
                Streams::pump_output(&mut streams.stdout, &mut streams.stdout_sink, &mut buffer);
            }
            if streams
                .stderr
                .as_ref()
                .is_some_and(|f| ready(f.as_raw_fd()))
            {
                Streams::pump_output(&mut streams.stderr, &mut streams.stderr_sink, &mut buffer);
            }
            if streams
                .stdin
                .as_ref()
                .is_some_and(|(f, _, _)| ready(f.as_raw_fd()))
            {
                streams.pump_stdin();
            }
            if ended.is_none() && ready(proxy.pidfd.as_raw_fd()) {
                let now = Instant::now();
                ended = Some((now - start, now + DRAIN_GRACE));
                streams.stdin = None;
            }
        }
    }

    /// The keeper's read end (if it reads) and the program's end of output
    /// stream `fd` (1 or 2): a pipe, or the caller's own descriptor when
    /// the program writes there directly.
    fn output_channel(&self, fd: i32) -> Result<(Option<OwnedFd>, OwnedFd)> {
        let io_err = |source| IsolateError::io("preparing the program's output", source);
        if self.config.inherit_stdout_stderr {
            let own = if fd == 1 {
                std::io::stdout().as_fd().try_clone_to_owned()
            } else {
                std::io::stderr().as_fd().try_clone_to_owned()
            };
            let own = own.map_err(io_err)?;
            return Ok((None, sys::dup_for_child(own.as_fd()).map_err(io_err)?));
        }
        let (read, write) = sys::pipe().map_err(io_err)?;
        Ok((Some(read), write))
    }

    /// Namespaces, filesystem and seccomp filter of the next run.
    fn isolation(&self) -> Result<jail::Isolation> {
        if !self.namespaces {
            return Ok(jail::Isolation {
                seccomp: self.seccomp.clone(),
                ..jail::Isolation::default()
            });
        }
        // The box joins the executor's own empty network namespace, or
        // (with share_net) stays in the host's.
        let namespaces = jail::namespaces::BOX_NAMESPACES & !(libc::CLONE_NEWNET as u64);
        // Relative sources follow isolate: the directory holding the box.
        // A temporary workdir has no meaningful parent, so there they are
        // refused rather than looked up in the temporary directory.
        let base = if self.config.workdir.as_os_str().is_empty() {
            None
        } else {
            std::path::absolute(&self.config.workdir)
                .ok()
                .and_then(|path| path.parent().map(Path::to_path_buf))
        };
        let rules = dirs::effective_rules(
            self.config.default_dirs,
            &self.config.dir_rules,
            base.as_deref(),
        )
        .map_err(|err| IsolateError::Config(err.to_string()))?;
        // Without a memory cgroup, tmpfs pages and the IPC namespace's pools
        // are memory no rlimit sees: each is kept within the limit.
        let rlimit_memory = jail::ipc::rlimit_only_memory(&self.config, self.cgroup.is_some());
        let cap = |size: u64| rlimit_memory.map_or(size, |bytes| size.min(bytes));
        let sizes = TmpfsSizes {
            tmp: cap(self.config.tmp_size),
            shm: cap(self.config.shm_size),
        };
        let workdir = &self
            .workdir
            .as_ref()
            .expect("the workdir is set up before a run")
            .dir;
        let mounts = MountPlan::new(&rules, workdir, sizes).map_err(|err| match err {
            JailError::MissingSource { .. } | JailError::UnsafeSource { .. } => {
                IsolateError::Config(err.to_string())
            }
            other => other.into(),
        })?;
        Ok(jail::Isolation {
            namespaces,
            mounts: Some(mounts),
            seccomp: self.seccomp.clone(),
            network_namespace: self.network.as_ref().map(AsRawFd::as_raw_fd),
            ipc_limits: rlimit_memory.map(jail::ipc::IpcLimits::for_memory),
        })
    }

    /// The working directory on the host (after the first setup).
    fn workdir_path(&self) -> &Path {
        self.workdir
            .as_ref()
            .map_or(self.config.workdir.as_path(), |workdir| {
                workdir.dir.path.as_path()
            })
    }

    /// Opens the working directory, creating it when needed: a fresh
    /// directory with an unpredictable name (`mkdtemp`) when the
    /// configuration names none, else the configured path, which is
    /// created if missing and never followed if it is a symbolic link.
    fn open_workdir(&self) -> Result<Workdir> {
        let open = sys::Resolve {
            follow_last: false,
            create: true,
            open_last: true,
        };
        let failed = |path: &Path| {
            let context = format!("opening the working directory {}", path.display());
            move |source| IsolateError::io(context, source)
        };
        if self.config.workdir.as_os_str().is_empty() {
            let parent = std::env::temp_dir();
            let made = tempfile::Builder::new()
                .prefix("isobox-")
                .tempdir_in(&parent)
                .map_err(failed(&parent))?;
            let dir = sys::resolve_host_path(made.path(), open).map_err(failed(made.path()))?;
            // From here on the executor's cleanup removes it.
            let _ = made.keep();
            return Ok(Workdir {
                dir,
                created: true,
                saved: None,
            });
        }
        let path =
            std::path::absolute(&self.config.workdir).map_err(failed(&self.config.workdir))?;
        let dir = sys::resolve_host_path(&path, open).map_err(failed(&path))?;
        Ok(Workdir {
            created: dir.created,
            dir,
            saved: None,
        })
    }

    /// Makes the working directory 0755 and hands it to the box's user,
    /// through its descriptor; [`restore_workdir_owner`] undoes both.
    ///
    /// [`restore_workdir_owner`]: Self::restore_workdir_owner
    fn setup_workdir(&mut self) -> Result<()> {
        use rustix::fs::{Gid, Mode, Uid};
        if self.workdir.is_none() {
            self.workdir = Some(self.open_workdir()?);
        }
        let credentials = self.credentials;
        let workdir = self.workdir.as_mut().expect("opened above");
        let context = |what: &str| format!("{what} {}", workdir.dir.path.display());
        let stat = rustix::fs::fstat(&workdir.dir.fd)
            .map_err(|err| IsolateError::io(context("stat"), err.into()))?;
        if workdir.created && stat.st_uid != sys::effective_uid() {
            return Err(IsolateError::Config(format!(
                "{} was replaced by someone else's directory",
                workdir.dir.path.display()
            )));
        }
        if workdir.saved.is_none() {
            workdir.saved = Some((stat.st_uid, stat.st_gid, stat.st_mode & 0o7777));
        }
        rustix::fs::fchmod(&workdir.dir.fd, Mode::from_raw_mode(0o755))
            .map_err(|err| IsolateError::io(context("chmod"), err.into()))?;
        if let Some(credentials) = credentials {
            rustix::fs::fchown(
                &workdir.dir.fd,
                Some(Uid::from_raw(credentials.uid)),
                Some(Gid::from_raw(credentials.gid)),
            )
            .map_err(|err| IsolateError::io(context("chown"), err.into()))?;
        }
        Ok(())
    }

    /// Gives the working directory its owner and mode from before the run
    /// back, through its descriptor.
    fn restore_workdir_owner(&mut self) {
        use rustix::fs::{Gid, Mode, Uid};
        let Some(workdir) = self.workdir.as_mut() else {
            return;
        };
        let Some((uid, gid, mode)) = workdir.saved.take() else {
            return;
        };
        let restored = rustix::fs::fchown(
            &workdir.dir.fd,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
        )
        .and_then(|()| rustix::fs::fchmod(&workdir.dir.fd, Mode::from_raw_mode(mode)));
        if let Err(err) = restored {
            tracing::warn!(
                "giving {} back its owner and mode failed: {err}",
                workdir.dir.path.display()
            );
        }
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

    /// The cgroup directories of this executor (empty without cgroups).
    pub fn cgroup_paths(&self) -> Vec<PathBuf> {
        self.cgroup
            .as_ref()
            .map_or_else(Vec::new, CgroupController::paths)
    }

    /// Removes the executor's cgroup, and the working directory when the
    /// executor created it. Called by `Drop` when not called.
    pub fn cleanup(&mut self) -> Result<()> {
        if let Some(mut cgroup) = self.cgroup.take() {
            cgroup.remove()?;
        }
        if let Some(workdir) = self.workdir.take().filter(|workdir| workdir.created) {
            let path = workdir.dir.path;
            drop(workdir.dir.fd);
            crate::cleanup::remove_tree(&path).map_err(|source| {
                IsolateError::io(format!("removing {}", path.display()), source)
            })?;
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

fn current_ids() -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    // The keeper's own ids, read without unsafe: /proc/self belongs to us.
    std::fs::metadata("/proc/self")
        .map(|meta| (meta.uid(), meta.gid()))
        .unwrap_or((0, 0))
}

/// A uid of [`ONE_SHOT_UIDS`](crate::types::ONE_SHOT_UIDS) that no other
/// live executor holds: an exclusive `flock` on
/// `<UID_CLAIM_DIR>/<uid>`, released when dropped or, if the process dies,
/// by the kernel. `flock` locks belong to the open file, so two executors
/// of one process exclude each other too.
#[derive(Debug)]
struct UidClaim {
    uid: u32,
    _lock: File,
}

impl UidClaim {
    fn take() -> Result<Self> {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
        let range = crate::types::ONE_SHOT_UIDS;
        let dir = Path::new(crate::types::UID_CLAIM_DIR);
        let failed = |what: &str| {
            let what = format!("{what} {}", dir.display());
            move |source| IsolateError::io(what, source)
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(failed("creating"))?;
        // Anyone who could write here could hold every uid, or plant links.
        let meta = std::fs::symlink_metadata(dir).map_err(failed("checking"))?;
        if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
            return Err(IsolateError::Config(format!(
                "{} must be a directory only root can write",
                dir.display()
            )));
        }
        let count = range.end - range.start;
        // Start somewhere else in each process, so that concurrent
        // executors seldom try the same files.
        let first = std::process::id().wrapping_mul(2_654_435_761) % count;
        for step in 0..count {
            let uid = range.start + (first + step) % count;
            let path = dir.join(uid.to_string());
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .map_err(|source| {
                    IsolateError::io(format!("opening {}", path.display()), source)
                })?;
            match file.try_lock() {
                Ok(()) => return Ok(Self { uid, _lock: file }),
                Err(std::fs::TryLockError::WouldBlock) => continue,
                Err(std::fs::TryLockError::Error(source)) => {
                    return Err(IsolateError::io(
                        format!("locking {}", path.display()),
                        source,
                    ))
                }
            }
        }
        Err(IsolateError::Config(format!(
            "every uid of {}..{} is held by a live run",
            range.start, range.end
        )))
    }
}

/// The proxy record ([`IsolateConfig::proxy_record`]).
impl ProcessExecutor {
    /// Records the proxy before the box is released, so no moment of the
    /// run goes unrecorded. The directory is root's: a link there is not
    /// the box's doing, but is refused all the same.
    fn record_proxy(&self, pid: libc::pid_t) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let Some(path) = &self.config.proxy_record else {
            return Ok(());
        };
        let failed =
            |source| IsolateError::io(format!("recording the box at {}", path.display()), source);
        let started = sys::start_time(pid).map_err(failed)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(failed)?;
        writeln!(file, "{pid} {started}").map_err(failed)
    }

    /// Drops the record of a proxy that has been reaped.
    fn forget_proxy(&self) {
        if let Some(path) = &self.config.proxy_record {
            if let Err(error) = std::fs::remove_file(path) {
                if error.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), %error, "cannot remove the proxy record");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(end: ProgramEnd) -> RunFacts {
        RunFacts {
            end: Some(end),
            ..RunFacts::default()
        }
    }

    #[test]
    fn clean_exit_is_success_and_nonzero_is_runtime_error() {
        assert_eq!(
            judge(&facts(ProgramEnd::Exited(0)), None).0,
            ExecutionStatus::Success
        );
        let (status, message) = judge(&facts(ProgramEnd::Exited(3)), None);
        assert_eq!(status, ExecutionStatus::RuntimeError);
        assert_eq!(message, "Exited with error status 3");
    }

    #[test]
    fn oom_kill_is_memory_limit_not_signal() {
        let mut run = facts(ProgramEnd::Signaled(libc::SIGKILL));
        run.oom_kills = 1;
        assert_eq!(judge(&run, None).0, ExecutionStatus::MemoryLimit);
    }

    #[test]
    fn wall_kill_says_wall_clock() {
        let mut run = facts(ProgramEnd::Signaled(libc::SIGKILL));
        run.killed_for = Some(KillReason::WallTime);
        let (status, message) = judge(&run, Some(Duration::from_secs(1)));
        assert_eq!(status, ExecutionStatus::TimeLimit);
        assert!(message.contains("wall clock"));
    }

    #[test]
    fn cpu_over_the_limit_is_time_limit_even_after_a_clean_exit() {
        let mut run = facts(ProgramEnd::Exited(0));
        run.cpu_time = Duration::from_millis(300);
        assert_eq!(
            judge(&run, Some(Duration::from_millis(200))).0,
            ExecutionStatus::TimeLimit
        );
        assert_eq!(
            judge(&run, Some(Duration::from_millis(400))).0,
            ExecutionStatus::Success
        );
    }

    #[test]
    fn limit_signals_map_to_their_verdicts() {
        let cases = [
            (libc::SIGXFSZ, ExecutionStatus::FileSizeLimit),
            (libc::SIGSYS, ExecutionStatus::SecurityViolation),
            (libc::SIGSEGV, ExecutionStatus::Signaled),
        ];
        for (signal, expected) in cases {
            let mut run = facts(ProgramEnd::Signaled(signal));
            run.seccomp = true;
            assert_eq!(judge(&run, None).0, expected, "signal {signal}");
        }
        // Without a filter, SIGSYS came from the program itself.
        assert_eq!(
            judge(&facts(ProgramEnd::Signaled(libc::SIGSYS)), None).0,
            ExecutionStatus::Signaled
        );
    }

    #[test]
    fn a_sigxcpu_is_a_time_limit_only_past_the_cpu_rlimit() {
        // `kill -XCPU $$` after 3 ms of CPU under a 1 s limit.
        let mut run = facts(ProgramEnd::Signaled(libc::SIGXCPU));
        run.cpu_time = Duration::from_millis(3);
        run.cpu_rlimit = Some(Duration::from_secs(1));
        let limit = Some(Duration::from_secs(1));
        let (status, message) = judge(&run, limit);
        assert_eq!(status, ExecutionStatus::Signaled);
        assert_eq!(message, "Caught fatal signal 24");
        // The kernel's SIGXCPU: the soft limit was used up. Exactly at an
        // integral limit is still a time limit.
        run.cpu_time = Duration::from_secs(1);
        assert_eq!(judge(&run, limit).0, ExecutionStatus::TimeLimit);
        // Only --extra-time given: the soft limit is the measure.
        run.cpu_rlimit = Some(Duration::from_secs(2));
        run.cpu_time = Duration::from_millis(2001);
        assert_eq!(judge(&run, None).0, ExecutionStatus::TimeLimit);
        run.cpu_time = Duration::from_millis(1999);
        assert_eq!(judge(&run, None).0, ExecutionStatus::Signaled);
        // No CPU rlimit at all: nothing in the kernel sends SIGXCPU.
        run.cpu_rlimit = None;
        run.cpu_time = Duration::from_secs(9);
        assert_eq!(judge(&run, None).0, ExecutionStatus::Signaled);
        // The proxy saw the kernel's signal: rusage may read a little low.
        run.cpu_rlimit = Some(Duration::from_secs(1));
        run.cpu_time = Duration::from_millis(940);
        run.kernel_sigxcpu = true;
        assert_eq!(judge(&run, limit).0, ExecutionStatus::TimeLimit);
    }

    #[test]
    fn a_self_sent_kill_is_not_a_time_limit() {
        let mut run = facts(ProgramEnd::Signaled(libc::SIGKILL));
        run.cpu_time = Duration::from_millis(5);
        run.cpu_rlimit = Some(Duration::from_secs(1));
        assert_eq!(
            judge(&run, Some(Duration::from_secs(1))).0,
            ExecutionStatus::Signaled
        );
        // The keeper's kill at the CPU limit is one.
        run.killed_for = Some(KillReason::CpuTime);
        assert_eq!(
            judge(&run, Some(Duration::from_secs(1))).0,
            ExecutionStatus::TimeLimit
        );
    }

    #[test]
    fn process_limit_only_when_the_program_failed() {
        let mut run = facts(ProgramEnd::Exited(1));
        run.pids_limit_hits = 3;
        assert_eq!(judge(&run, None).0, ExecutionStatus::ProcessLimit);
        run.end = Some(ProgramEnd::Exited(0));
        assert_eq!(judge(&run, None).0, ExecutionStatus::Success);
    }

    #[test]
    fn exec_failure_is_runtime_error_and_setup_failure_internal() {
        let mut run = RunFacts {
            setup_failure: Some((Stage::Exec, libc::ENOENT, String::new())),
            ..RunFacts::default()
        };
        let (status, message) = judge(&run, None);
        assert_eq!(status, ExecutionStatus::RuntimeError);
        assert_eq!(message, "exec failed: No such file or directory");
        run.setup_failure = Some((Stage::Chdir, libc::ENOENT, String::new()));
        assert_eq!(judge(&run, None).0, ExecutionStatus::InternalError);
    }

    #[test]
    fn output_sink_keeps_at_most_the_limit() {
        let mut sink = OutputSink::new(Some(5), None);
        sink.accept(b"abc");
        sink.accept(b"defgh");
        assert_eq!(sink.dropped, 3);
        assert_eq!(sink.into_string(), "abcde");
    }

    #[test]
    fn unknown_end_is_an_internal_error() {
        assert_eq!(
            judge(&RunFacts::default(), None).0,
            ExecutionStatus::InternalError
        );
    }
}
