//! `isobox runner`: a resident root process with warm boxes, which carries
//! out root's `isobox run` handed to it whole before the C library starts
//! ([`forward`], through the front door the faces share).
//!
//! A one-shot `isobox run` builds a box and tears it down: a clone into new
//! namespaces (the network namespace most of it), the mounts, the teardown,
//! and the process's own start-up, about 5 ms here where `/bin/true` takes
//! 0.8. The runner keeps its boxes for its life (namespaces, filesystem
//! and cgroup built once), so a forwarded run costs what a run in a warm
//! box costs plus the caller's process before glibc.
//!
//! The process started is a dispatcher ([`main`]): it accepts the callers
//! and hands each to an idle worker, or declines it at once when every
//! worker is busy. A worker (`isobox runner --worker`, one per box, started
//! by the dispatcher) holds one box of a [`Pool`] and serves one run at a
//! time: for the run, the process's directory, umask and standard output
//! and error are the caller's. It leaves with the dispatcher, even a killed
//! one (a parent-death signal), removing its box.
//!
//! What a forwarded run does is `isobox run`'s own code ([`run_in`]), with
//! the box the worker gives ([`Leased`]) and the caller's directory, umask,
//! environment and standard input, output and error. The worker declines
//! (and the caller's own process runs it the ordinary way) whatever it
//! would not do identically: a caller whose peer credentials are not
//! root's, who runs another executable or stands in another mount
//! namespace or root directory, whose CPUs or nice value are not the
//! worker's (the run's processes would inherit the caller's), who asks
//! for logs (`ISOBOX_LOG`) or names
//! another temporary directory (`TMPDIR`, where the ordinary path makes its
//! box); arguments that are not a valid run; and a run with `--lang` (two
//! boxes, a compiler's and the program's).
//!
//! Between runs the box is reset as a pool's box is: the directory emptied
//! and checked, the run's processes gone, its counters started over; a box
//! that fails its reset is replaced. The box's user (a uid claimed for the
//! worker's life) is the same from run to run, as a pool's box's is.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use isobox::pool::{Lease, Pool, PoolConfig};
use isobox::sys;
use isobox::sys::early::{self, Start};
use isobox::{ExecutionResult, IsolateConfig, OutsideEvent, ProcessExecutor, Stdin};
use rustix::net::{RecvFlags, SendFlags, SocketFlags};
use serde::Deserialize;

use super::args::{Cli, Command, RunArgs, RunnerArgs};
use super::{build_config, run_in, RunBox};
use crate::cli::front::{self, DECLINED, FINISHED, FORWARD_MAGIC};
use crate::cli::resident::{self, scheduling_of, Forward, Place};
use crate::cli::{print_error, EXIT_TROUBLE};

/// The runner's directory (only root can enter it) and its socket.
pub const RUNNER_DIR: &str = "/run/isobox/runner";
/// See [`RUNNER_DIR`].
pub const SOCKET_PATH: &str = "/run/isobox/runner/runner.sock";

/// The runner's box directory is `<temp dir>/isobox-runner-<pid>-XXXXXX`.
const BOX_DIR_PREFIX: &str = "isobox-runner-";

/// The most boxes a runner keeps: each is a worker process, and each
/// claims a uid of `isobox run`'s thousand for the runner's life.
const MAX_BOXES: usize = 256;

/// Held by the running runner, next to its socket.
const LOCK_NAME: &str = "runner.lock";

/// How long the runner waits for a connected caller's invocation.
const SILENT_CALLER: Duration = Duration::from_secs(1);

/// How often the runner looks for a signal, its socket and its idle time.
const TICK: Duration = Duration::from_millis(200);

/// Hands root's `isobox run` to the runner, if one is up; returns when the
/// ordinary path must run it. Keeps the rules of `isobox::sys::early`.
pub fn forward(start: &Start) {
    // What the runner creates (copied-out files) is root's, with root's
    // group: it serves only callers whose are too.
    if !early::caller_is_root() || !early::caller_group_is_root() {
        return;
    }
    front::hand_over(
        start,
        SOCKET_PATH.as_bytes(),
        b": the runner ended before it answered\n",
    );
}

/// `isobox runner`: serves until stopped. This process accepts the
/// callers and hands each to an idle worker (`isobox runner --worker`, one
/// per box), or declines it when every worker is busy.
pub(super) fn main(args: RunnerArgs) -> Result<u8> {
    if sys::real_ids() != (0, 0) || !sys::is_root() {
        bail!("isobox runner must run as root (it serves root's isobox run)");
    }
    if args.worker {
        return worker();
    }
    let idle = args.idle.map(Duration::from_secs);
    let boxes = match args.boxes {
        Some(boxes) if !(1..=MAX_BOXES).contains(&boxes) => {
            bail!("--boxes {boxes}: give 1 to {MAX_BOXES}")
        }
        Some(boxes) => boxes,
        None => std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_BOXES)),
    };
    let dir = Path::new(RUNNER_DIR);
    if let Some(parent) = dir.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    resident::private_directory(dir)?;
    let lock = sys::open_lock_file(&dir.join(LOCK_NAME)).context("opening the runner's lock")?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => bail!("a runner is already running"),
        Err(std::fs::TryLockError::Error(error)) => {
            return Err(error).context("locking the runner's lock")
        }
    }
    sweep(&std::env::temp_dir());
    let socket = Path::new(SOCKET_PATH);
    // Nobody holds the lock, so a socket left there is a dead runner's.
    let listener = resident::listen_at(socket)?;
    crate::cli::catch_interruptions();
    let mut dispatcher = Dispatcher {
        socket: socket.to_path_buf(),
        socket_id: file_id(socket).context("the runner's socket")?,
        workers: Vec::new(),
    };
    for _ in 0..boxes {
        let worker = Worker::start()?;
        dispatcher.workers.push(worker);
    }
    tracing::debug!("the runner listens at {SOCKET_PATH} with {boxes} boxes");
    let mut last_run = Instant::now();
    loop {
        let wake = sys::interruption_fd().context("no interruption pipe")?;
        let mut entries = vec![
            sys::poll_entry(listener.as_raw_fd(), sys::POLLIN),
            sys::poll_entry(wake.as_raw_fd(), sys::POLLIN),
        ];
        entries.extend(
            dispatcher
                .workers
                .iter()
                .map(|worker| sys::poll_entry(worker.socket.as_raw_fd(), sys::POLLIN)),
        );
        sys::poll(&mut entries, Some(TICK))?;
        // Last first: a worker that cannot be started again is removed,
        // which moves only the workers after it, already seen to.
        for (index, entry) in entries.iter().enumerate().skip(2).rev() {
            if entry.revents != 0 {
                dispatcher.worker_answered(index - 2);
                last_run = Instant::now();
            }
        }
        if entries[0].revents != 0 {
            if let Ok(connection) = rustix::net::accept_with(&listener, SocketFlags::CLOEXEC) {
                dispatcher.dispatch(connection);
                last_run = Instant::now();
            }
        }
        let busy = dispatcher.workers.iter().any(|worker| worker.busy);
        if sys::interruption().is_some()
            || (!busy && idle.is_some_and(|idle| last_run.elapsed() >= idle))
            || file_id(&dispatcher.socket).ok() != Some(dispatcher.socket_id)
        {
            dispatcher.leave();
            return Ok(0);
        }
    }
}

/// The accepting process: its socket and its workers.
struct Dispatcher {
    /// Where it listens, and the socket file's device and inode there.
    socket: PathBuf,
    socket_id: (u64, u64),
    workers: Vec<Worker>,
}

/// One worker process, its box, and the socket the dispatcher hands it
/// callers through.
struct Worker {
    child: std::process::Child,
    socket: OwnedFd,
    busy: bool,
}

impl Worker {
    /// Starts `isobox runner --worker`, with its end of a socket pair as
    /// its standard input.
    fn start() -> Result<Self> {
        let (ours, theirs) = resident::packet_pair()?;
        let child = std::process::Command::new("/proc/self/exe")
            .arg0(crate::cli::program_name())
            .args(["runner", "--worker"])
            .stdin(std::process::Stdio::from(theirs))
            .spawn()
            .context("starting a runner's worker")?;
        Ok(Self {
            child,
            socket: ours,
            busy: false,
        })
    }
}

impl Dispatcher {
    /// Hands `connection` to an idle worker, or declines it.
    fn dispatch(&mut self, connection: OwnedFd) {
        // A front sends its invocation as soon as it is connected; a caller
        // that connects and sends nothing must not hold up its worker.
        let _ = rustix::net::sockopt::set_socket_timeout(
            &connection,
            rustix::net::sockopt::Timeout::Recv,
            Some(SILENT_CALLER),
        );
        for worker in self.workers.iter_mut().filter(|worker| !worker.busy) {
            if resident::send_descriptor(&worker.socket, connection.as_fd()).is_ok() {
                worker.busy = true;
                return;
            }
        }
        tracing::debug!("every box is busy: a run declined");
        // Read before the answer: a connection closed with its message
        // unread is reset, and the reset could overtake the answer.
        let _ = resident::receive_bytes(&connection);
        let _ = rustix::net::send(&connection, &[DECLINED], SendFlags::NOSIGNAL);
    }

    /// Worker `index` finished a caller, or ended (then it is started
    /// again: a caller it had gets an error, not a second run).
    fn worker_answered(&mut self, index: usize) {
        let Some(worker) = self.workers.get_mut(index) else {
            return;
        };
        let mut answer = [0u8; 1];
        match rustix::net::recv(&worker.socket, &mut answer, RecvFlags::DONTWAIT) {
            Ok((1, _)) => worker.busy = false,
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {}
            _ => {
                let _ = worker.child.wait();
                tracing::warn!("a runner's worker ended; starting another");
                match Worker::start() {
                    Ok(started) => *worker = started,
                    Err(error) => {
                        tracing::warn!("{error:#}");
                        self.workers.remove(index);
                    }
                }
            }
        }
    }

    /// Removes the socket (when it is still this runner's), then stops the
    /// workers, which remove their boxes, and waits for them.
    fn leave(&mut self) {
        if file_id(&self.socket).ok() == Some(self.socket_id) {
            let _ = std::fs::remove_file(&self.socket);
        }
        for worker in &self.workers {
            let pid = rustix::process::Pid::from_child(&worker.child);
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        for worker in &mut self.workers {
            let _ = worker.child.wait();
        }
    }
}

/// `isobox runner --worker`: serves the callers the dispatcher hands it
/// (through its standard input) in a box of its own, until the dispatcher
/// goes or a signal comes.
fn worker() -> Result<u8> {
    let (dispatcher, _null) = resident::take_stdin()?;
    // Gone with the dispatcher, even a killed one: the box is removed.
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))?;
    if rustix::process::getppid().is_none_or(|parent| parent.as_raw_nonzero().get() == 1) {
        bail!("the runner is gone");
    }
    crate::cli::catch_interruptions();
    let mut runner = Runner {
        place: Place::own()?,
        executable: file_id(Path::new("/proc/self/exe"))?,
        scheduling: scheduling_of(None),
        temp_dir: std::env::temp_dir(),
        pool: None,
        stdio: (
            io::stdout().as_fd().try_clone_to_owned()?,
            io::stderr().as_fd().try_clone_to_owned()?,
        ),
        parser: <Cli as clap::CommandFactory>::command(),
    };
    loop {
        let wake = sys::interruption_fd().context("no interruption pipe")?;
        let mut entries = [
            sys::poll_entry(dispatcher.as_raw_fd(), sys::POLLIN),
            sys::poll_entry(wake.as_raw_fd(), sys::POLLIN),
        ];
        sys::poll(&mut entries, None)?;
        if sys::interruption().is_some() {
            break;
        }
        if entries[0].revents == 0 {
            continue;
        }
        match resident::receive_bytes(&dispatcher) {
            Ok(Some((_, mut fds))) if fds.len() == 1 => {
                let connection = fds.remove(0);
                let reply = runner.serve_one(&connection);
                // The dispatcher learns that this box is free before the
                // caller learns that its run is over: the caller's next run
                // finds it free.
                let told = rustix::net::send(&dispatcher, b"d", SendFlags::NOSIGNAL).is_ok();
                if let Some(reply) = reply {
                    let _ = rustix::net::send(&connection, &reply, SendFlags::NOSIGNAL);
                }
                if !told {
                    break;
                }
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    runner.leave();
    Ok(0)
}

/// What a worker keeps between runs.
struct Runner {
    place: Place,
    /// This executable's device and inode: callers must run the same.
    executable: (u64, u64),
    /// This process's CPUs and nice value: callers must have the same.
    scheduling: Option<(rustix::thread::CpuSet, i32)>,
    /// Where the ordinary path would make its box.
    temp_dir: PathBuf,
    /// The box, and the part of the configuration it was made for.
    pool: Option<(IsolateConfig, Pool)>,
    /// Standard output and error between runs: the runner's own.
    stdio: (OwnedFd, OwnedFd),
    /// `isobox`'s parser, built once: building it costs more than a parse.
    parser: clap::Command,
}

impl Runner {
    /// Removes the box.
    fn leave(&mut self) {
        if let Some((_, pool)) = self.pool.take() {
            pool.shutdown();
        }
    }

    /// Serves or declines one caller, and returns the answer to send it:
    /// root peers only (others get none).
    fn serve_one(&mut self, connection: &OwnedFd) -> Option<Vec<u8>> {
        let peer = rustix::net::sockopt::socket_peercred(connection).ok()?;
        if !peer.uid.is_root() {
            return None;
        }
        let Ok(Some((bytes, fds))) = resident::receive_bytes(connection) else {
            return None;
        };
        let pid = peer.pid.as_raw_nonzero().get();
        let answer = match bytes
            .starts_with(&FORWARD_MAGIC)
            .then(|| Forward::decode(&bytes, fds))
            .flatten()
        {
            Some(forward) => self.check_caller(pid, &forward).and_then(|args| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.carry_out(connection, forward, args)
                }))
                .unwrap_or(Ok(EXIT_TROUBLE))
            }),
            None => Err("not a forwarded invocation".into()),
        };
        // An interruption the front passed on after the run ended is read,
        // not left in the queue (see `Dispatcher::dispatch`).
        let mut unread = [0u8; 64];
        while rustix::net::recv(connection, &mut unread, RecvFlags::DONTWAIT)
            .is_ok_and(|(length, _)| length > 0)
        {}
        Some(match answer {
            Ok(code) => vec![FINISHED, code],
            Err(why) => {
                tracing::debug!("the runner declined a run: {why}");
                vec![DECLINED]
            }
        })
    }

    /// The run's arguments, when the runner can carry the invocation out
    /// as the caller's process would; otherwise why not.
    fn check_caller(
        &mut self,
        pid: i32,
        forward: &Forward,
    ) -> std::result::Result<RunArgs, String> {
        if Place::of(pid).ok().as_ref() != Some(&self.place) {
            return Err("another mount namespace or root directory".into());
        }
        if file_id(Path::new(&format!("/proc/{pid}/exe"))).ok() != Some(self.executable) {
            return Err("another executable".into());
        }
        // The run's processes would inherit the caller's CPUs and nice
        // value (a judge pins its runs with `taskset`), where the runner's
        // inherit its own.
        if scheduling_of(Some(pid)) != self.scheduling {
            return Err("other CPUs or another nice value".into());
        }
        if forward.env("ISOBOX_LOG").is_some() {
            return Err("logs asked for".into());
        }
        // As `std::env::temp_dir` reads it in the caller's process.
        let temp_dir = forward.env("TMPDIR").map_or("/tmp", |dir| dir);
        if Path::new(temp_dir) != self.temp_dir {
            return Err("another temporary directory".into());
        }
        let words = std::iter::once(forward.program.clone()).chain(forward.words.iter().cloned());
        let parsed = self
            .parser
            .try_get_matches_from_mut(words)
            .and_then(|matches| <Cli as clap::FromArgMatches>::from_arg_matches(&matches));
        let args = match parsed {
            Ok(Cli {
                command: Command::Run(args),
            }) => args,
            // Help, errors and other subcommands are the command line's.
            _ => return Err("not a valid run".into()),
        };
        if args.lang.is_some() {
            return Err("a run with --lang".into());
        }
        Ok(args)
    }

    /// Carries out the run with the caller's directory, umask and standard
    /// output and error, and returns its exit status.
    fn carry_out(
        &mut self,
        connection: &OwnedFd,
        forward: Forward,
        args: RunArgs,
    ) -> std::result::Result<u8, String> {
        rustix::process::fchdir(&forward.directory).map_err(|error| error.to_string())?;
        let umask = rustix::process::umask(rustix::fs::Mode::from_raw_mode(forward.umask));
        let environment: Vec<(OsString, OsString)> = forward
            .environment
            .iter()
            .map(|(name, value)| (name.into(), value.into()))
            .collect();
        let lookup = |name: &str| {
            environment
                .iter()
                .find(|(entry, _)| entry == name)
                .map(|(_, value)| value.clone())
        };
        let answer = self.carry_out_in(connection, &forward, args, &lookup);
        rustix::process::umask(umask);
        let _ = rustix::process::chdir("/");
        answer
    }

    fn carry_out_in(
        &mut self,
        connection: &OwnedFd,
        forward: &Forward,
        args: RunArgs,
        lookup: &dyn Fn(&str) -> Option<OsString>,
    ) -> std::result::Result<u8, String> {
        // The box is made for what of the configuration runs cannot change;
        // a configuration that does not build is the command line's to
        // report.
        let wanted = IsolateConfig {
            // Each configuration is made with a name of its own; the box
            // has its own.
            instance_id: String::new(),
            ..build_config(&args, Path::new(""), lookup).map_err(|error| error.to_string())?
        }
        .settled_part();
        let pool = self.pool_for(wanted)?;
        let lease = pool.acquire().map_err(|error| error.to_string())?;
        rustix::stdio::dup2_stdout(&forward.stdout).map_err(|error| error.to_string())?;
        if let Err(error) = rustix::stdio::dup2_stderr(&forward.stderr) {
            self.give_back_stdio();
            return Err(error.to_string());
        }
        let mut leased = Leased {
            lease: Some(lease),
            connection,
        };
        let code = run_in(args, &mut leased, lookup).unwrap_or_else(|error| {
            print_error(&crate::cli::error_text(&error));
            EXIT_TROUBLE
        });
        drop(leased);
        // What went to the caller's stdout through Rust's buffer goes
        // before the descriptor is taken back.
        let _ = io::Write::flush(&mut io::stdout());
        self.give_back_stdio();
        Ok(code)
    }

    /// The pool whose box fits `wanted`, made anew when the last one does
    /// not.
    fn pool_for(&mut self, wanted: IsolateConfig) -> std::result::Result<&Pool, String> {
        let fits = self
            .pool
            .as_ref()
            .is_some_and(|(settled, _)| *settled == wanted);
        if !fits {
            if let Some((_, pool)) = self.pool.take() {
                pool.shutdown();
            }
            // A directory of its own, made by this process (not one a user
            // of the shared temporary directory put there first).
            let base_dir = tempfile::Builder::new()
                .prefix(&format!("{BOX_DIR_PREFIX}{}-", std::process::id()))
                .tempdir_in(&self.temp_dir)
                .map_err(|error| format!("cannot make the runner's box directory: {error}"))?
                .keep();
            // Only root enters it (the box sees its own directory through a
            // mount), and a later runner's sweep knows it by that.
            std::fs::set_permissions(&base_dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|error| format!("cannot make the runner's box directory: {error}"))?;
            let pool = Pool::new(PoolConfig {
                template: IsolateConfig {
                    // `<pid>-<n>`, which a later runner's sweep recognizes.
                    instance_id: IsolateConfig::default().instance_id,
                    ..wanted.clone()
                },
                base_dir: base_dir.clone(),
                size: 1,
                warm: 1,
                queue: 0,
                box_size: None,
                box_cpus: None,
            })
            .map_err(|error| {
                let _ = std::fs::remove_dir(&base_dir);
                format!("cannot make the runner's box: {error}")
            })?;
            self.pool = Some((wanted, pool));
        }
        Ok(&self.pool.as_ref().expect("made above").1)
    }

    /// Standard output and error are the runner's own again.
    fn give_back_stdio(&self) {
        let _ = rustix::stdio::dup2_stdout(&self.stdio.0);
        let _ = rustix::stdio::dup2_stderr(&self.stdio.1);
    }
}

/// The runner's box for one run.
struct Leased<'a> {
    lease: Option<Lease>,
    /// The caller's connection: its interruption, or its end, stops the run.
    connection: &'a OwnedFd,
}

/// What a front sends while the run is under way.
#[derive(Deserialize)]
enum Message {
    Interrupt(i32),
}

impl Leased<'_> {
    fn lease(&mut self) -> Result<&mut Lease> {
        self.lease
            .as_mut()
            .ok_or_else(|| anyhow!("the runner's box is gone"))
    }
}

impl RunBox for Leased<'_> {
    fn directory(&mut self) -> Result<PathBuf> {
        Ok(self.lease()?.workdir().to_path_buf())
    }

    fn executor(&mut self, config: IsolateConfig) -> Result<&mut ProcessExecutor> {
        let executor = self.lease()?.executor();
        // What the box settled stays; everything a run reads is this run's.
        let box_own = executor.config().clone();
        let config = IsolateConfig {
            workdir: box_own.workdir.clone(),
            instance_id: box_own.instance_id.clone(),
            warm: box_own.warm,
            cpu_affinity: box_own.cpu_affinity.clone(),
            ..config
        };
        if config.settled_part() != box_own.settled_part() {
            bail!("the runner's box was not made for this run");
        }
        *executor.config_mut() = config;
        Ok(executor)
    }

    fn execute(&mut self, command: &[String], stdin: Stdin) -> isobox::Result<ExecutionResult> {
        let client = OutsideEvent {
            fd: self
                .connection
                .try_clone()
                .map_err(|error| isobox::IsolateError::Config(error.to_string()))?,
            on_ready: Box::new(|connection| {
                let mut message = [0u8; 64];
                let signal = match rustix::net::recv(connection, &mut message, RecvFlags::empty()) {
                    Ok((length, _)) if length > 0 => {
                        match serde_json::from_slice::<Message>(&message[..length.min(64)]) {
                            Ok(Message::Interrupt(signal))
                                if sys::INTERRUPTION_SIGNALS.contains(&signal) =>
                            {
                                signal
                            }
                            _ => libc::SIGTERM,
                        }
                    }
                    // The caller is gone (killed): the run goes too.
                    _ => libc::SIGTERM,
                };
                Some(signal)
            }),
        };
        let lease = self
            .lease
            .as_mut()
            .ok_or_else(|| isobox::IsolateError::Config("the runner's box is gone".into()))?;
        lease.executor().execute_watching(command, stdin, client)
    }

    fn settle(&mut self) -> isobox::Result<()> {
        // The box's holder killed and reaped every process of the run
        // before the run's answer (a cold run's ended with its namespace).
        Ok(())
    }

    fn release(&mut self) -> std::result::Result<(), String> {
        // Emptied and checked by the pool; a box that fails its reset is
        // replaced there.
        self.lease = None;
        Ok(())
    }
}

/// Removes what runners killed before they could leave (`SIGKILL`) left:
/// their box directories in `temp_dir` and their boxes' cgroups. Only one
/// runner runs at a time, and this one holds the lock.
fn sweep(temp_dir: &Path) {
    for path in isobox::pool::sweep_dead_cgroups(None) {
        tracing::debug!("removed a dead runner's cgroup {}", path.display());
    }
    let Ok(entries) = std::fs::read_dir(temp_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix(BOX_DIR_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        // Only a directory root made: anyone may put things in /tmp.
        let path = entry.path();
        let made_by_root = std::fs::symlink_metadata(&path)
            .is_ok_and(|meta| meta.is_dir() && meta.uid() == 0 && meta.mode() & 0o077 == 0);
        if !made_by_root || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Err(error) = isobox::fstree::remove_tree(&path) {
            tracing::warn!("removing {}: {error}", path.display());
        }
    }
}

/// A file's device and inode.
fn file_id(path: &Path) -> io::Result<(u64, u64)> {
    let meta = std::fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}
