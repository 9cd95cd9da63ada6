//! One command of a request: checked and capped ([`prepare`], in the async
//! handler, so that a bad request is a 400 before any box is taken), then
//! run in a leased box ([`execute`], on a blocking thread).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use isobox::config::CpuBandwidth;
pub use isobox::cpus::CpuList;
use isobox::executor::RunKiller;
use isobox::pool::Lease;
use isobox::{ExecutionResult, ExecutionStatus, Stdin};

use super::confine::{self, BoxPath, CopyInFailure, CopyInStep, CopyOutFailure};
use super::model::{Cmd, CmdFile, CmdResult, FileError, FileErrorType, Verdict};
use super::store::FileStore;

/// The server's ceilings: a request may ask for less, never for more, and
/// gets these when it asks for nothing (go-judge's 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caps {
    pub cpu: Duration,
    pub clock: Duration,
    pub memory: u64,
    pub procs: u64,
    /// Largest collector (`{name, max}`).
    pub output: u64,
    /// Largest file copied out (`copyOutMax`).
    pub copy_out: u64,
    /// Most bytes copied out by one command, all files together (the
    /// same file named twice counts twice).
    pub copy_out_total: u64,
    /// Largest file the program may write (`RLIMIT_FSIZE`): the box
    /// directory is on the host's disk.
    pub file_size: u64,
    /// Most `copyIn` entries of one command.
    pub copy_in_files: usize,
    /// Most commands in one request: what one request may hold in memory
    /// is this many times two collectors and `copy_out_total`.
    pub cmds: usize,
    /// Largest `cpuRateLimit` (thousandths of a CPU); `None`: no ceiling
    /// (a run may use every CPU of its cpuset).
    pub cpu_rate: Option<u64>,
    /// The CPUs runs may use (`cpuSetLimit` must name a subset); `None`:
    /// every CPU of the host.
    pub cpuset: Option<CpuList>,
}

impl Default for Caps {
    fn default() -> Self {
        Self {
            cpu: Duration::from_secs(10),
            clock: Duration::from_secs(30),
            memory: 1 << 30,
            procs: 64,
            output: 64 << 20,
            copy_out: 64 << 20,
            copy_out_total: 256 << 20,
            file_size: 256 << 20,
            copy_in_files: 1024,
            cmds: 16,
            cpu_rate: None,
            cpuset: None,
        }
    }
}

/// What the server was started with that preparing a command needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub caps: Caps,
    /// Canonical `--src-prefix` directories; `src` is refused without one.
    pub src_prefixes: Vec<PathBuf>,
    /// The boxes have the `cpu` and `cpuset` controllers (`--cpu-controls`):
    /// without them `cpuRateLimit` and `cpuSetLimit` are refused.
    pub cpu_controls: bool,
    /// The CPUs of the host (`/sys/devices/system/cpu/online`).
    pub host_cpus: CpuList,
}

/// Where an input comes from.
#[derive(Debug)]
pub enum Source {
    Content(Vec<u8>),
    /// A host file under a `--src-prefix`, already resolved.
    Host(PathBuf),
    Stored(String),
}

/// Where an output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Discard,
    Collect { name: String, max: u64 },
}

/// A command checked, capped and ready to run. The fields are visible to
/// the crate so that `tests/fuzz_parsers.rs`, which compiles this module,
/// can check that what [`prepare`] accepts stays within the caps.
#[derive(Debug)]
pub struct Job {
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) stdin: Option<Source>,
    pub(crate) stdout: Output,
    pub(crate) stderr: Output,
    pub(crate) cpu: Duration,
    pub(crate) clock: Duration,
    pub(crate) memory: u64,
    pub(crate) stack: u64,
    pub(crate) procs: u64,
    pub(crate) address_space: bool,
    /// `RLIMIT_DATA` at the memory limit (go-judge's `dataSegmentLimit`, and
    /// `strictMemoryLimit`, its older name).
    pub(crate) data_segment: bool,
    pub(crate) cpu_bandwidth: Option<CpuBandwidth>,
    pub(crate) cpuset: Option<String>,
    pub(crate) copy_in: Vec<(String, BoxPath, Source)>,
    pub(crate) symlinks: Vec<(String, BoxPath, String)>,
    /// (name as given without `?`, path, optional, cached)
    pub(crate) copy_out: Vec<(String, BoxPath, bool, bool)>,
    /// Collector names whose output goes to the file store.
    pub(crate) cached_collectors: BTreeSet<String>,
    pub(crate) copy_out_max: u64,
    pub(crate) copy_out_total: u64,
    pub(crate) copy_out_truncate: bool,
    /// copyOut names that could not be parsed: reported as file errors.
    pub(crate) bad_copy_out: Vec<(String, String)>,
}

fn nanos(ns: u64) -> Duration {
    Duration::from_nanos(ns)
}

fn capped(asked: u64, cap: u64) -> u64 {
    if asked == 0 {
        cap
    } else {
        asked.min(cap)
    }
}

fn source(file: &CmdFile, what: &str, settings: &Settings) -> Result<Source, String> {
    if let Some(content) = &file.content {
        return Ok(Source::Content(content.clone().into_bytes()));
    }
    if let Some(id) = &file.file_id {
        return Ok(Source::Stored(id.clone()));
    }
    if let Some(src) = &file.src {
        return host_source(src, settings).map(Source::Host);
    }
    Err(format!("{what}: needs content, src or fileId"))
}

/// Resolves `src` (links of the host followed: the host is the admin's)
/// and checks it is under a `--src-prefix`.
fn host_source(src: &str, settings: &Settings) -> Result<PathBuf, String> {
    if settings.src_prefixes.is_empty() {
        return Err(format!(
            "src {src:?}: host files are refused (the server has no --src-prefix)"
        ));
    }
    let resolved = std::fs::canonicalize(src).map_err(|err| format!("src {src:?}: {err}"))?;
    if settings
        .src_prefixes
        .iter()
        .any(|prefix| resolved.starts_with(prefix))
    {
        Ok(resolved)
    } else {
        Err(format!("src {src:?} is not under a --src-prefix"))
    }
}

fn output(file: &Option<CmdFile>, fd: usize, caps: &Caps) -> Result<Output, String> {
    let Some(file) = file else {
        return Ok(Output::Discard);
    };
    match (&file.name, file.max) {
        (Some(name), Some(max)) => {
            if name.is_empty() {
                return Err(format!("files[{fd}]: a collector needs a name"));
            }
            let max = u64::try_from(max).map_err(|_| format!("files[{fd}]: negative max"))?;
            Ok(Output::Collect {
                name: name.clone(),
                max: max.min(caps.output),
            })
        }
        _ => Err(format!(
            "files[{fd}]: only a collector ({{name, max}}) or null can take output"
        )),
    }
}

/// `cpuRateLimit` and `cpuSetLimit` as go-judge applies them (a CFS
/// quota of rate/1000 CPUs per 100 ms period, a cgroup cpuset), capped by
/// the server's; `None` where nothing needs enforcing.
fn cpu_controls(
    cmd: &Cmd,
    settings: &Settings,
) -> Result<(Option<CpuBandwidth>, Option<String>), String> {
    let caps = &settings.caps;
    let asked_set = !cmd.cpu_set_limit.trim().is_empty();
    if !settings.cpu_controls && (cmd.cpu_rate_limit > 0 || asked_set) {
        return Err(
            "cpuRateLimit/cpuSetLimit: the server was started without --cpu-controls".into(),
        );
    }
    let allowed = caps.cpuset.as_ref().unwrap_or(&settings.host_cpus);
    let cpuset = if asked_set {
        let asked =
            CpuList::parse(&cmd.cpu_set_limit).map_err(|err| format!("cpuSetLimit: {err}"))?;
        if !asked.is_subset(allowed) {
            return Err(format!(
                "cpuSetLimit: {asked} is not within the CPUs runs may use ({allowed})"
            ));
        }
        Some(asked)
    } else {
        caps.cpuset.clone()
    };
    // The kernel's smallest quota is 1 ms: 10 thousandths of a 100 ms
    // period.
    if cmd.cpu_rate_limit > 0 && cmd.cpu_rate_limit < 10 {
        return Err(format!(
            "cpuRateLimit: {} is below 10 (1% of a CPU), the smallest quota the kernel takes",
            cmd.cpu_rate_limit
        ));
    }
    let rate = match (cmd.cpu_rate_limit, caps.cpu_rate) {
        (0, cap) => cap,
        (asked, Some(cap)) => Some(asked.min(cap)),
        (asked, None) => Some(asked),
    };
    // A rate of every CPU the run may use throttles nothing: no quota.
    let cpus = cpuset.as_ref().unwrap_or(allowed).count();
    let rate = rate.filter(|rate| *rate < cpus.saturating_mul(1000));
    Ok((
        rate.map(CpuBandwidth::from_thousandths),
        cpuset.map(|cpus| cpus.to_string()),
    ))
}

/// Checks one command and applies the caps; `Err` is the 400 reason.
pub fn prepare(cmd: &Cmd, settings: &Settings) -> Result<Job, String> {
    let caps = &settings.caps;
    if cmd.args.first().is_none_or(String::is_empty) {
        return Err("args: empty command".into());
    }
    if cmd.args.iter().any(|arg| arg.contains('\0')) {
        return Err("args: NUL byte in an argument".into());
    }
    let mut env = Vec::new();
    for entry in &cmd.env {
        match entry.split_once('=') {
            Some((name, value)) if !name.is_empty() && !entry.contains('\0') => {
                env.push((name.to_string(), value.to_string()))
            }
            _ => return Err(format!("env: {entry:?} is not NAME=value")),
        }
    }
    if !env.iter().any(|(name, _)| name == "HOME") {
        env.push(("HOME".into(), confine::BOX_DIR.into()));
    }
    if cmd.files.len() > 3 {
        return Err(
            "files: more than 3 descriptors need a pipeMapping, which is not supported yet".into(),
        );
    }
    if cmd.tty {
        return Err("tty: a terminal for the program is not supported".into());
    }
    let (cpu_bandwidth, cpuset) = cpu_controls(cmd, settings)?;
    let stdin = match cmd.files.first() {
        None | Some(None) => None,
        Some(Some(file)) if file.name.is_some() || file.max.is_some() => {
            return Err("files[0]: a collector cannot be standard input".into())
        }
        Some(Some(file)) => Some(source(file, "files[0]", settings)?),
    };
    let none = None;
    let stdout = output(cmd.files.get(1).unwrap_or(&none), 1, caps)?;
    let stderr = output(cmd.files.get(2).unwrap_or(&none), 2, caps)?;
    if let (Output::Collect { name: a, .. }, Output::Collect { name: b, .. }) = (&stdout, &stderr) {
        if a == b {
            return Err(format!("files: two collectors named {a:?}"));
        }
    }
    let collectors: BTreeSet<String> = [&stdout, &stderr]
        .into_iter()
        .filter_map(|out| match out {
            Output::Collect { name, .. } => Some(name.clone()),
            Output::Discard => None,
        })
        .collect();

    if cmd.copy_in.len() > caps.copy_in_files {
        return Err(format!("copyIn: more than {} files", caps.copy_in_files));
    }
    let mut copy_in = Vec::new();
    let mut symlinks = Vec::new();
    for (name, file) in &cmd.copy_in {
        let path = BoxPath::parse(name).map_err(|err| format!("copyIn: {err}"))?;
        match &file.symlink {
            Some(target) => {
                if target.contains('\0') {
                    return Err(format!("copyIn {name:?}: NUL byte in the link"));
                }
                symlinks.push((name.clone(), path, target.clone()))
            }
            None => copy_in.push((
                name.clone(),
                path,
                source(file, &format!("copyIn {name:?}"), settings)?,
            )),
        }
    }

    let cpu = capped(cmd.cpu_limit, caps.cpu.as_nanos() as u64);
    let clock_asked = if cmd.real_cpu_limit > 0 {
        cmd.real_cpu_limit
    } else if cmd.clock_limit > 0 {
        cmd.clock_limit
    } else {
        cpu
    };
    let clock = capped(clock_asked, caps.clock.as_nanos() as u64);
    let memory = capped(cmd.memory_limit, caps.memory);
    let mut copy_out = Vec::new();
    let mut bad_copy_out = Vec::new();
    let mut cached_collectors = BTreeSet::new();
    let cached: Vec<(&String, bool)> = cmd
        .copy_out
        .iter()
        .map(|name| (name, false))
        .chain(cmd.copy_out_cached.iter().map(|name| (name, true)))
        .collect();
    for (raw, cached) in cached {
        let (name, optional) = match raw.strip_suffix('?') {
            Some(name) => (name, true),
            None => (raw.as_str(), false),
        };
        if collectors.contains(name) {
            if cached {
                cached_collectors.insert(name.to_string());
            }
            continue;
        }
        match BoxPath::parse(name) {
            Ok(path) => copy_out.push((name.to_string(), path, optional, cached)),
            Err(err) => bad_copy_out.push((name.to_string(), err)),
        }
    }
    Ok(Job {
        args: cmd.args.clone(),
        env,
        stdin,
        stdout,
        stderr,
        cpu: nanos(cpu),
        clock: nanos(clock),
        memory,
        stack: capped(cmd.stack_limit, memory),
        procs: capped(cmd.proc_limit, caps.procs),
        address_space: cmd.address_space_limit,
        data_segment: cmd.data_segment_limit || cmd.strict_memory_limit,
        cpu_bandwidth,
        cpuset,
        copy_in,
        symlinks,
        copy_out,
        cached_collectors,
        copy_out_max: capped(cmd.copy_out_max, caps.copy_out),
        copy_out_total: caps.copy_out_total,
        copy_out_truncate: cmd.copy_out_truncate,
        bad_copy_out,
    })
}

/// Lets a request that lost its client kill its run.
#[derive(Debug, Default)]
pub struct Cancel {
    cancelled: AtomicBool,
    done: AtomicBool,
    /// What kills the runs of the boxes this request is running in.
    killers: Mutex<Vec<RunKiller>>,
}

impl Cancel {
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }

    pub fn set_done(&self) {
        self.done.store(true, Ordering::SeqCst);
    }

    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// Adds a box this request is running in.
    fn add_box(&self, killer: &RunKiller) {
        self.killers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(killer.clone());
    }

    /// Forgets a box once its run is over: the box goes back to the pool
    /// and its next run is someone else's.
    fn forget_box(&self, killer: &RunKiller) {
        self.killers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|known| known != killer);
    }

    /// Kills the runs of the boxes this request is running in.
    pub fn kill_runs(&self) {
        let killers = self
            .killers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        for killer in killers {
            killer.kill();
        }
    }
}

fn file_error(name: &str, kind: FileErrorType, message: impl Into<String>) -> FileError {
    FileError {
        name: name.to_string(),
        kind,
        message: message.into(),
    }
}

fn open_source(source: Source, store: &FileStore) -> std::io::Result<Box<dyn Read + Send>> {
    Ok(match source {
        Source::Content(bytes) => Box::new(std::io::Cursor::new(bytes)),
        Source::Host(path) => Box::new(open_host(&path)?),
        Source::Stored(id) => Box::new(open_stored(store, &id)?),
    })
}

/// Opens a file of the store by id.
fn open_stored(store: &FileStore, id: &str) -> std::io::Result<File> {
    match store.open(id) {
        Some((_, file)) => Ok(file),
        None => Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no file with id {id:?} in the store"),
        )),
    }
}

/// Opens an already resolved host file, refusing a link swapped in since
/// and anything but a regular file (a FIFO would wedge the copy, a device
/// would hand the box the host's hardware).
fn open_host(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    // Back to blocking reads: the file may become the program's stdin.
    let flags = rustix::fs::fcntl_getfl(&file)?;
    rustix::fs::fcntl_setfl(&file, flags - rustix::fs::OFlags::NONBLOCK)?;
    Ok(file)
}

fn stdin_of(source: Source, store: &FileStore) -> std::io::Result<Stdin> {
    Ok(match source {
        Source::Content(bytes) => Stdin::Bytes(bytes),
        Source::Host(path) => Stdin::File(open_host(&path)?),
        Source::Stored(id) => Stdin::File(open_stored(store, &id)?),
    })
}

/// Descriptors of a command wired to others (`pipeMapping`).
#[derive(Debug, Default)]
pub struct Wiring {
    /// Standard input: the read end of a pipe the server feeds.
    pub stdin: Option<File>,
    /// Paths inside the box (FIFOs the server reads) for stdout, stderr.
    pub outputs: [Option<PathBuf>; 2],
}

/// Runs `job` in the leased box and reads back what the request asked for.
pub fn execute(
    job: Job,
    lease: &mut Lease,
    store: &FileStore,
    cancel: &Cancel,
    wiring: Wiring,
) -> CmdResult {
    let killer = lease.run_killer();
    cancel.add_box(&killer);
    let result = execute_in(job, lease, store, cancel, wiring);
    cancel.forget_box(&killer);
    // The box is emptied by the pool when the lease goes back.
    result
}

fn execute_in(
    job: Job,
    lease: &mut Lease,
    store: &FileStore,
    cancel: &Cancel,
    wiring: Wiring,
) -> CmdResult {
    let root = match confine::open_box(lease.workdir()) {
        Ok(root) => root,
        Err(err) => return CmdResult::failed(Verdict::InternalError, format!("box: {err}")),
    };

    // copyIn, then links (go-judge's order): files are never written
    // through a link, not even one this request made.
    let mut file_errors = Vec::new();
    for (name, path, source) in job.copy_in {
        let copied = open_source(source, store)
            .map_err(|error| (FileErrorType::CopyInOpenFile, error))
            .and_then(|mut reader| {
                confine::copy_in(&root, &path, &mut reader).map_err(
                    |CopyInFailure { step, error }| {
                        let kind = match step {
                            CopyInStep::Dir => FileErrorType::CopyInCreateDir,
                            CopyInStep::Create => FileErrorType::CopyInCreateFile,
                            CopyInStep::Copy => FileErrorType::CopyInCopyContent,
                        };
                        (kind, error)
                    },
                )
            });
        if let Err((kind, error)) = copied {
            file_errors.push(file_error(&name, kind, format!("copyIn {name:?}: {error}")));
        }
    }
    for (name, path, target) in &job.symlinks {
        if let Err(error) = confine::symlink(&root, path, target) {
            file_errors.push(file_error(
                name,
                FileErrorType::Symlink,
                format!("symlink {name:?}: {error}"),
            ));
        }
    }
    let stdin = match job.stdin.map(|source| stdin_of(source, store)).transpose() {
        Ok(None) if wiring.stdin.is_some() => Stdin::File(wiring.stdin.expect("checked")),
        Ok(stdin) => stdin.unwrap_or(Stdin::Null),
        Err(error) => {
            file_errors.push(file_error(
                "stdin",
                FileErrorType::CopyInOpenFile,
                format!("stdin: {error}"),
            ));
            Stdin::Null
        }
    };
    if !file_errors.is_empty() {
        let mut result = CmdResult::failed(Verdict::FileError, file_errors[0].message.clone());
        result.file_error = file_errors;
        return result;
    }

    let mut args = job.args;
    if !args[0].contains('/') && confine::is_box_executable(&root, &args[0]) {
        args[0] = format!("./{}", args[0]);
    }
    let executor = lease.executor();
    let config = executor.config_mut();
    config.time_limit = Some(job.cpu);
    config.wall_time_limit = Some(job.clock);
    config.memory_limit = Some(job.memory);
    config.address_space_limit = job.address_space.then_some(job.memory);
    config.data_segment_limit = job.data_segment.then_some(job.memory);
    config.stack_limit = Some(job.stack);
    config.process_limit = Some(job.procs);
    config.cpu_bandwidth = job.cpu_bandwidth;
    if job.cpuset.is_some() {
        config.cpuset_cpus = job.cpuset;
    }
    config.environment = job.env;
    let max_of = |out: &Output| match out {
        Output::Collect { max, .. } => Some(*max),
        Output::Discard => None,
    };
    // The keeper keeps at most the larger collector's max of each stream;
    // the smaller one is cut below.
    config.output_limit = Some(
        max_of(&job.stdout)
            .into_iter()
            .chain(max_of(&job.stderr))
            .max()
            .unwrap_or(0),
    );
    let null = || Some(PathBuf::from("/dev/null"));
    let [stdout_wire, stderr_wire] = wiring.outputs;
    config.stdout_file = stdout_wire.or((job.stdout == Output::Discard).then(null).flatten());
    config.stderr_file = stderr_wire.or((job.stderr == Output::Discard).then(null).flatten());
    if cancel.is_cancelled() {
        return CmdResult::failed(Verdict::InternalError, "cancelled: the client went away");
    }
    let ran = executor.execute_with_stdin(&args, stdin);
    let mut ran = match ran {
        Ok(ran) => ran,
        Err(err) => return CmdResult::failed(Verdict::InternalError, err.to_string()),
    };
    let mut result = verdict(&ran, job.cpu, job.memory);

    let mut collector_over = Vec::new();
    let streams = [
        (
            &job.stdout,
            std::mem::take(&mut ran.stdout),
            ran.stdout_dropped,
        ),
        (
            &job.stderr,
            std::mem::take(&mut ran.stderr),
            ran.stderr_dropped,
        ),
    ];
    for (output, captured, dropped) in streams {
        let Output::Collect { name, max } = output else {
            continue;
        };
        let mut bytes = captured.into_bytes();
        if bytes.len() as u64 > *max || dropped > 0 {
            bytes.truncate(*max as usize);
            collector_over.push(name.clone());
        }
        keep(
            &mut result,
            name,
            bytes,
            job.cached_collectors.contains(name),
            store,
        );
    }
    for name in collector_over {
        if matches!(
            result.status,
            Verdict::Accepted | Verdict::OutputLimitExceeded
        ) {
            result.status = Verdict::OutputLimitExceeded;
        }
        result.file_error.push(file_error(
            &name,
            FileErrorType::CollectSizeExceeded,
            format!("{name}: output beyond the collector's max"),
        ));
    }

    for (name, error) in job.bad_copy_out {
        result
            .file_error
            .push(file_error(&name, FileErrorType::CopyOutOpen, error));
    }
    let mut left = job.copy_out_total;
    for (name, path, optional, cached) in job.copy_out {
        let max = job.copy_out_max.min(left);
        let truncate = job.copy_out_truncate && max == job.copy_out_max;
        match confine::copy_out(&root, &path, max, truncate) {
            Ok((bytes, truncated)) => {
                left -= bytes.len() as u64;
                keep(&mut result, &name, bytes, cached, store);
                if truncated {
                    result.file_error.push(file_error(
                        &name,
                        FileErrorType::CopyOutSizeExceeded,
                        format!("copyOut {name:?}: larger than {} bytes", job.copy_out_max),
                    ));
                }
            }
            Err(CopyOutFailure::Open(error)) if optional && confine::is_missing(&error) => {}
            Err(failure) => {
                let (kind, message) = match failure {
                    CopyOutFailure::Open(error) => (FileErrorType::CopyOutOpen, error.to_string()),
                    CopyOutFailure::NotRegular => (
                        FileErrorType::CopyOutNotRegularFile,
                        "not a regular file".into(),
                    ),
                    CopyOutFailure::TooLarge(size) => (
                        FileErrorType::CopyOutSizeExceeded,
                        format!(
                            "size {size} exceeds the limit of {max} (copyOutMax {}, {} left of the command's total)",
                            job.copy_out_max, left
                        ),
                    ),
                    CopyOutFailure::Read(error) => {
                        (FileErrorType::CopyOutCopyContent, error.to_string())
                    }
                };
                result.file_error.push(file_error(
                    &name,
                    kind,
                    format!("copyOut {name:?}: {message}"),
                ));
            }
        }
    }
    // As go-judge: a file error decides only when the program itself
    // ended well.
    if result.status == Verdict::Accepted {
        if let Some(first) = result.file_error.first() {
            result.status = Verdict::FileError;
            result.error = first.message.clone();
        }
    }
    result
}

/// Puts a file into `files`, or into the store and `fileIds`.
fn keep(result: &mut CmdResult, name: &str, bytes: Vec<u8>, cached: bool, store: &FileStore) {
    if !cached {
        result.files.insert(
            name.to_string(),
            String::from_utf8_lossy(&bytes).into_owned(),
        );
        return;
    }
    match store.add(name, &bytes) {
        Ok(id) => {
            result.file_ids.insert(name.to_string(), id);
        }
        Err(err) => {
            result.file_error.push(file_error(
                name,
                FileErrorType::CopyOutCreateFile,
                format!("copyOutCached {name:?}: {err}"),
            ));
        }
    }
}

/// go-judge's verdict for what the library measured.
fn verdict(ran: &ExecutionResult, cpu: Duration, memory: u64) -> CmdResult {
    let mut error = String::new();
    let mut status = match ran.status {
        ExecutionStatus::Success => Verdict::Accepted,
        ExecutionStatus::TimeLimit => Verdict::TimeLimitExceeded,
        ExecutionStatus::MemoryLimit => Verdict::MemoryLimitExceeded,
        ExecutionStatus::OutputLimit | ExecutionStatus::FileSizeLimit => {
            Verdict::OutputLimitExceeded
        }
        ExecutionStatus::SecurityViolation => {
            error = ran.message.clone();
            Verdict::DangerousSyscall
        }
        ExecutionStatus::RuntimeError if ran.exec_errno.is_some() => {
            error = ran.message.clone();
            Verdict::InternalError
        }
        ExecutionStatus::RuntimeError => Verdict::NonzeroExitStatus,
        ExecutionStatus::Signaled => Verdict::Signalled,
        ExecutionStatus::ProcessLimit if ran.signal.is_some() => Verdict::Signalled,
        ExecutionStatus::ProcessLimit => Verdict::NonzeroExitStatus,
        ExecutionStatus::InternalError => {
            error = ran.message.clone();
            Verdict::InternalError
        }
    };
    let time = (ran.cpu_time * 1e9) as u64;
    // go-judge's own last word: over the limit is over the limit.
    if status != Verdict::InternalError {
        if time > cpu.as_nanos() as u64 {
            status = Verdict::TimeLimitExceeded;
        } else if ran.memory_peak > memory {
            status = Verdict::MemoryLimitExceeded;
        }
    }
    let mut result = CmdResult::failed(status, error);
    result.exit_status = ran
        .exit_code
        .map(i64::from)
        .or(ran.signal.map(i64::from))
        .unwrap_or(0);
    result.time = time;
    result.run_time = (ran.wall_time * 1e9) as u64;
    result.memory = ran.memory_peak;
    // Absent (0, left out of the answer) where the kernel does not count.
    result.proc_peak = ran.process_peak.unwrap_or(0);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(cpu_controls: bool) -> Settings {
        Settings {
            caps: Caps::default(),
            src_prefixes: Vec::new(),
            cpu_controls,
            host_cpus: CpuList::first(4),
        }
    }

    fn cmd(rate: u64, set: &str) -> Cmd {
        Cmd {
            args: vec!["/bin/true".into()],
            cpu_rate_limit: rate,
            cpu_set_limit: set.into(),
            ..Cmd::default()
        }
    }

    #[test]
    fn cpu_rate_and_set_follow_go_judge_within_the_caps() {
        let open = settings(true);
        assert_eq!(cpu_controls(&cmd(0, ""), &open).unwrap(), (None, None));
        let (bandwidth, set) = cpu_controls(&cmd(500, " "), &open).unwrap();
        assert_eq!(
            bandwidth,
            Some(CpuBandwidth {
                quota: Duration::from_millis(50),
                period: Duration::from_millis(100),
            })
        );
        assert_eq!(set, None);
        // Every CPU of the run's set is no throttle at all.
        assert_eq!(cpu_controls(&cmd(4000, ""), &open).unwrap().0, None);
        let (bandwidth, set) = cpu_controls(&cmd(1500, "1"), &open).unwrap();
        assert_eq!((bandwidth, set.as_deref()), (None, Some("1")));
        for refused in [cmd(5, ""), cmd(0, "4"), cmd(0, "x")] {
            assert!(cpu_controls(&refused, &open).is_err(), "{refused:?}");
        }
        assert!(cpu_controls(&cmd(500, ""), &settings(false)).is_err());
        assert!(cpu_controls(&cmd(0, "0"), &settings(false)).is_err());

        let mut capped = settings(true);
        capped.caps.cpu_rate = Some(250);
        capped.caps.cpuset = Some(CpuList::parse("2-3").unwrap());
        let (bandwidth, set) = cpu_controls(&cmd(0, ""), &capped).unwrap();
        assert_eq!(bandwidth.map(|b| b.quota), Some(Duration::from_millis(25)));
        assert_eq!(set.as_deref(), Some("2-3"));
        let (bandwidth, set) = cpu_controls(&cmd(900, "3"), &capped).unwrap();
        assert_eq!(bandwidth.map(|b| b.quota), Some(Duration::from_millis(25)));
        assert_eq!(set.as_deref(), Some("3"));
        assert!(cpu_controls(&cmd(0, "0-1"), &capped).is_err());
    }

    #[test]
    fn limits_without_a_mechanism_are_refused_and_the_rest_reach_the_job() {
        let open = settings(true);
        let cmd: Cmd =
            serde_json::from_value(serde_json::json!({"args": ["/bin/true"], "tty": true}))
                .unwrap();
        let reason = prepare(&cmd, &open).unwrap_err();
        assert!(!reason.contains('\n'), "{reason}");
        let cmd: Cmd = serde_json::from_value(serde_json::json!({
            "args": ["/bin/true"], "strictMemoryLimit": false, "addressSpaceLimit": true
        }))
        .unwrap();
        let job = prepare(&cmd, &open).unwrap();
        assert!(job.address_space && !job.data_segment);
        for flag in ["dataSegmentLimit", "strictMemoryLimit"] {
            let cmd: Cmd =
                serde_json::from_value(serde_json::json!({"args": ["/bin/true"], flag: true}))
                    .unwrap();
            assert!(prepare(&cmd, &open).unwrap().data_segment, "{flag}");
        }
    }
}
